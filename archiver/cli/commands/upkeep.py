"""Keeping an archive in order: ``cleanup`` and the ``index`` group (rebuild, import,
compact)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from archiver.cli.context import open_archive, say_logged
from archiver.cli.options import archive_dir_option, format_option
from archiver.cli.progress import scan_progress
from archiver.cli.render import show_notes
from archiver.core.errors import EXIT_FAILED
from archiver.core.text import counted
from archiver.ops import ingest


@click.command("cleanup")
@click.option("--apply", "apply_", is_flag=True, help="Do it (without: only list).")
@archive_dir_option
@format_option("text", "json", default="text")
def cleanup_command(apply_: bool, archive_dir: Path, output_format: str) -> None:
    """List what crashed or interrupted captures left behind; --apply puts it aside.

    Files holding captured bytes that no signed manifest covers (.open files, a
    capture whose signing did not finish) are moved to ARCHIVE_DIR/incomplete/,
    never deleted; temporary files and spooled bodies are deleted; the index is
    repaired.  Refused while a capture runs in the archive.

    \b
    Examples:
      archiver cleanup
      archiver cleanup --apply
    """
    done = open_archive(archive_dir).cleanup(apply=apply_)
    say_logged(done.logged)
    report = done.result
    if output_format == "json":
        click.echo(json.dumps(report.to_json(), ensure_ascii=False))
        return
    if not report.leftovers:
        click.echo("nothing to clean up")
        return
    state = "done" if report.applied else "to do (dry run; --apply does it)"
    for item in report.leftovers:
        shown = item.to_json(archive_dir)
        click.echo(f"{item.action}: {shown['path']} ({item.what})")
    click.echo(f"{counted(len(report.leftovers), 'leftover')}, {state}")
    if report.rebuilt_index:
        click.echo("the index was rebuilt (merged index files held rows of what was moved)")


@click.group("index")
def index_group() -> None:
    """Maintain the Parquet index: rebuild it from the WARCs, import WARCs, compact it.

    \b
    Examples:
      archiver index rebuild
      archiver index import other-crawl.warc.gz
    """


@index_group.command("rebuild")
@archive_dir_option
@format_option("text", "json", default="text")
def index_rebuild(archive_dir: Path, output_format: str) -> None:
    """Regenerate the whole index from the archive's WARC files alone.

    \b
    Example:
      archiver index rebuild --archive-dir archives
    """
    archive = open_archive(archive_dir)
    with scan_progress(output_format == "text" and sys.stderr.isatty()) as progress:
        done = archive.rebuild(progress)
    say_logged(done.logged)
    count, reports = done.result
    problems = [(r.path, o, m) for r in reports for o, m in r.problems]
    if output_format == "json":
        doc = {
            "captures": count,
            "files": len(reports),
            "problems": [{"file": str(p), "offset": o, "problem": m} for p, o, m in problems],
        }
        click.echo(json.dumps(doc, ensure_ascii=False))
    else:
        click.echo(f"indexed {counted(count, 'capture')} from {counted(len(reports), 'WARC file')}")
        for path, offset, message in problems:
            click.echo(f"  {path} @{offset}: {message}", err=True)
    if problems:
        sys.exit(EXIT_FAILED)


@index_group.command("import")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--collection",
    default="default",
    show_default=True,
    help="Collection to import into: the files land in warc/<collection>/imported/.",
)
@archive_dir_option
@format_option("text", "json", default="text")
def index_import(
    paths: tuple[Path, ...], collection: str, archive_dir: Path, output_format: str
) -> None:
    """Copy WARC files (and the WARC files of WACZ files) made by other tools into the
    archive and index them.

    Every record is read and every digest it declares checked; broken records are
    reported by file and offset and indexed with their problem, and the records
    around them are indexed as usual.  Exit 1 if any file had a problem.

    \b
    Example:
      archiver index import crawl-2020.warc.gz --collection wget-crawls
    """
    from archiver.cli.commands.wacz import import_waczs
    from archiver.ops.wacz.check import is_wacz

    waczs = tuple(p for p in paths if is_wacz(p))
    bad = import_waczs(waczs, collection, archive_dir, output_format) if waczs else 0
    paths = tuple(p for p in paths if p not in waczs)
    if not paths:
        sys.exit(EXIT_FAILED if bad else 0)
    archive = open_archive(archive_dir)
    with scan_progress(output_format == "text" and sys.stderr.isatty()) as progress:
        done = archive.import_(paths, collection, progress)
    say_logged(done.logged)
    for item in done.result:
        if isinstance(item, tuple):
            bad += 1
            source, reason = item
            if output_format == "json":
                click.echo(json.dumps({"file": str(source), "imported": False, "error": reason}))
            else:
                click.echo(f"FAILED {reason}", err=True)
            continue
        bad += 0 if item.report.ok else 1
        show_import(item, output_format)
    if bad:
        sys.exit(EXIT_FAILED)


def show_import(item: ingest.ImportResult, output_format: str) -> None:
    rep = item.report
    if item.already and output_format != "json":
        click.echo(f"{item.source}: already imported as {item.capture_id} ({item.stored_as})")
        return
    if output_format == "json":
        doc: dict[str, Any] = {
            "file": str(item.source),
            "imported": True,
            "already": item.already,
            "stored_as": str(item.stored_as),
            "capture_id": item.capture_id,
            "records": rep.records,
            "ok": rep.ok,
            "problems": [{"offset": o, "problem": m} for o, m in rep.problems],
            "notes": [{"offset": o, "note": m} for o, m in rep.notes],
        }
        click.echo(json.dumps(doc, ensure_ascii=False))
        return
    verdict = "ok" if rep.ok else counted(len(rep.problems), "problem")
    click.echo(f"{item.source}: {counted(rep.records, 'record')}, {verdict} -> {item.capture_id}")
    for offset, message in rep.problems:
        click.echo(f"  {item.source} @{offset}: {message}", err=True)
    show_notes([f"{item.source} @{offset}: {message}" for offset, message in rep.notes], True)


@index_group.command("compact")
@archive_dir_option
def index_compact(archive_dir: Path) -> None:
    """Merge the per-capture index files into one file per table (faster queries).

    \b
    Example:
      archiver index compact
    """
    done = open_archive(archive_dir).compact()
    say_logged(done.logged)
    click.echo(
        ", ".join(f"{table}: {counted(n, 'file')} merged" for table, n in done.result.items())
    )
