"""Reading an archive: ``query``, ``list``, ``show`` and ``extract``."""

from __future__ import annotations

import json
from pathlib import Path

import click

from archiver.cli.context import open_archive, say_logged, say_read_only
from archiver.cli.options import archive_dir_option, format_option
from archiver.cli.render import emit
from archiver.core.atomic import output_problem
from archiver.core.text import counted, printable
from archiver.index import query
from archiver.ops.extract import ExtractResult


@click.command("query")
@click.argument("sql")
@format_option(*query.FORMATS)
@click.option(
    "-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="Write to FILE."
)
@click.option("--force", is_flag=True, help="Replace --output if it exists.")
@archive_dir_option
def query_command(
    sql: str, output_format: str, output: Path | None, force: bool, archive_dir: Path
) -> None:
    """Run SQL over the index: the views `captures` and `records` (DuckDB).

    The same Parquet files can be read directly, e.g. in DuckDB:
    read_parquet('archives/index/records/*.parquet').

    \b
    Examples:
      archiver query "select url, payload_length from records where role = 'video'"
      archiver query "select * from captures" --format json
      archiver query "select * from records" --format parquet -o records.parquet
    """
    if output is not None and (problem := output_problem(archive_dir, output, force)):
        raise click.UsageError(problem)
    archive = open_archive(archive_dir)
    emit(archive.query(sql), output_format, output)
    say_read_only(archive, "query")


@click.command("list")
@click.option("-n", "--limit", type=click.IntRange(min=1), default=50, show_default=True)
@click.option("--collection", help="Only this collection.")
@format_option("table", "csv", "json")
@archive_dir_option
def list_command(limit: int, collection: str | None, output_format: str, archive_dir: Path) -> None:
    """Recent captures, newest first: time, status, URL, videos, size.

    \b
    Example:
      archiver list -n 20 --collection belarus-2020
    """
    archive = open_archive(archive_dir)
    emit(archive.list_captures(limit, collection), output_format, None)
    say_read_only(archive, "list")


@click.command("show")
@click.argument("capture_id")
@format_option("text", "json", default="text")
@archive_dir_option
def show_command(capture_id: str, output_format: str, archive_dir: Path) -> None:
    """Everything about one capture: provenance, files, records and errors.

    \b
    Example:
      archiver show 20200812100000-0123456789
    """
    archive = open_archive(archive_dir)
    row, captures, records = archive.show(capture_id)
    if output_format == "json":
        doc = {"capture": query.jsonable(row), "records": query.jsonable(records.rows)}
        if read_only := say_read_only(archive, "show"):
            doc["notes"] = read_only
        click.echo(json.dumps(doc, ensure_ascii=False, indent=1))
        return
    width = max(len(name) for name in captures.columns)  # browser_user_agent: 18
    for name in captures.columns:
        if name in ("errors", "outlinks", "libraries", "warc_files"):
            continue
        value = query.cell(row[name])
        if value:  # an operator, a note, a page title: escaped, never acted on
            click.echo(f"{name:>{width}}: {printable(value)}")
    click.echo("\nWARC files:")
    for name in row["warc_files"] or []:
        click.echo(f"  {printable(name)}")
    if row["errors"]:
        click.echo("\nErrors:")
        for err in row["errors"]:
            click.echo(f"  {printable(err['url'])}: {printable(err['reason'])}")
    click.echo(f"\nRecords ({len(records.rows)}):")
    columns = ["warc_type", "role", "http_status", "content_type", "payload_length", "url"]
    click.echo(query.as_text_table(query.Result(columns, records.table.select(columns))), nl=False)
    say_read_only(archive, "show")


@click.command("extract")
@click.argument("ident", metavar="CAPTURE_ID_OR_RECORD_ID")
@click.option(
    "--url",
    help="The response for this URL in the capture (redirects followed), or a record of a "
    "browser capture by its target URI (urn:view:PAGE_URL, as `archiver show` lists them).",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="File to write; it appears only once every digest has been checked.",
)
@click.option(
    "--segments",
    is_flag=True,
    help="For an HLS or DASH manifest: write the segments of one track, concatenated "
    "in playlist order (init segment first).",
)
@click.option(
    "--track",
    help="With --segments: video, audio, subtitles, or a track name (DASH Representation "
    "id, HLS playlist path). Default: the captured video track.",
)
@click.option("--raw", is_flag=True, help="Keep the chunked transfer framing of the body.")
@click.option("--force", is_flag=True, help="Replace OUTPUT if it exists.")
@archive_dir_option
@format_option("text", "json", default="text")
def extract(
    ident: str,
    url: str | None,
    output: Path,
    segments: bool,
    track: str | None,
    raw: bool,
    force: bool,
    archive_dir: Path,
    output_format: str,
) -> None:
    """Write the payload of a record (a video, the page) to a file, verified on the way out.

    CAPTURE_ID_OR_RECORD_ID is a capture id (the page, or with --url that URL's
    response) or a WARC-Record-ID. The record's stored bytes and its payload
    SHA-256 are checked against the index; if anything differs, no file is
    written and the exit status is 1. Chunked transfer coding is removed
    (--raw keeps it); Content-Encoding is kept as served. What a browser
    capture's browser showed is in resource records, written as stored:
    urn:view:PAGE_URL and urn:fullPage:PAGE_URL (screenshots, PNG), urn:pdf:,
    urn:dom:, urn:text: and urn:pageinfo: (PAGE_URL is the page's final URL).

    \b
    Examples:
      archiver extract 20200812100000-0123456789 -o article.html
      archiver extract 20200812100000-0123456789 --url https://example.org/v.mp4 -o v.mp4
      archiver extract "<urn:uuid:0b3f7a4e-5c1d-4e2a-9f3b-8d6c2a1e4f57>" -o v.mp4
      archiver extract 20200812100000-0123456789 \\
          --url urn:view:https://example.org/article -o screenshot.png
      archiver extract 20200812100000-0123456789 --segments \\
          --url https://example.org/hls/master.m3u8 -o video.ts
      archiver extract 20200812100000-0123456789 --segments \\
          --url https://example.org/dash/manifest.mpd -o video.mp4
    """
    archive = open_archive(archive_dir)
    done = archive.extract(
        ident, output, url=url, segments=segments, track=track, raw=raw, overwrite=force
    )
    result = done.result
    say_logged(done.logged)  # on a read-only copy: not logged, and a note says so
    if output_format == "json":
        doc = result.to_json()
        doc["custody_logged"] = done.logged.written
        doc["notes"] += done.logged.notes
        click.echo(json.dumps(doc, ensure_ascii=False))
    else:
        show_extracted(result)
    for note in result.notes:
        click.echo(f"note: {note}", err=True)


def show_extracted(result: ExtractResult) -> None:
    click.echo(
        f"wrote {result.path}: {counted(result.bytes_written, 'byte')}, sha256 {result.sha256}"
    )
    status = f"HTTP {result.http_status}, " if result.http_status is not None else ""
    what = f"{result.track} of " if result.track is not None else ""
    click.echo(
        f"  {what}{result.url} ({status}{result.content_type or 'no type'}), "
        f"record {result.record_id}, capture {result.capture_id}"
    )
    for part in result.parts if result.track is not None else ():
        click.echo(f"    {part.record_id} {part.url} ({counted(part.bytes_written, 'byte')})")
    if any(p.dechunked for p in result.parts):
        click.echo("  chunked transfer coding removed (--raw keeps it)")
