"""``archiver report``: one document per capture, for people who will never run archiver."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from archiver.cli.context import open_archive, say_logged
from archiver.cli.options import archive_dir_option, format_option
from archiver.core.errors import EXIT_FAILED
from archiver.core.text import counted, printable
from archiver.trust.timestamp import tsa_roots

EXIT_OK = 0


@click.command("report")
@click.argument("capture_id", metavar="CAPTURE")
@click.option(
    "-o",
    "--output",
    "outputs",
    multiple=True,
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="FILE.html or FILE.pdf (a PDF needs Chromium); give both, -o r.html -o r.pdf, for "
    "two documents of one verification. Each appears only once complete.",
)
@click.option("--force", is_flag=True, help="Replace an output file that exists.")
@click.option(
    "--trusted-key",
    "trusted",
    multiple=True,
    metavar="FILE_OR_FINGERPRINT",
    help="A key that may sign (repeatable), as for `archiver verify`.",
)
@click.option(
    "--tsa-ca",
    multiple=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Root certificate(s) of the time-stamping authorities you trust, PEM (repeatable): "
    "without it the report calls no time trusted.",
)
@click.option(
    "--browser-path",
    envvar="ARCHIVER_BROWSER",
    help="The Chromium that prints a PDF (default: chromium on PATH). "
    "Environment: ARCHIVER_BROWSER.",
)
@archive_dir_option
@format_option("text", "json", default="text")
def report_command(
    capture_id: str,
    outputs: tuple[Path, ...],
    force: bool,
    trusted: tuple[str, ...],
    tsa_ca: tuple[Path, ...],
    browser_path: str | None,
    archive_dir: Path,
    output_format: str,
) -> None:
    """Write a report of one capture that anyone can read: HTML, or PDF.

    What was captured (URL, final URL, redirects, start and end in UTC, operator,
    machine, tool and library versions), the screenshot of a browser capture, every
    video with its URL, size, SHA-256, duration and how it was found, the signer's
    fingerprint, each time-stamp, the custody history, the result of a verification
    made now, and the commands that check it all with OpenSSL and sha256sum. The HTML
    is one self-contained file (no script, nothing fetched); the PDF is that HTML
    printed by the system's Chromium. The facts are also in the HTML as JSON
    (<pre id="archiver-facts">). Making a report is logged in the custody log.

    Exit status: 0 when the verification found everything holding, 1 when it did not
    (the report is written all the same, and says so on its first page), 2 for a
    usage error (an unknown capture, an output that exists, a PDF without Chromium).

    \b
    Examples:
      archiver report 20200812100000-0123456789 -o report.pdf
      archiver report 20200812100000-0123456789 -o report.html -o report.pdf \\
          --trusted-key archivist.pub.pem --tsa-ca freetsa-root.pem
    """
    roots = tsa_roots(tsa_ca)
    archive = open_archive(archive_dir)
    done = archive.report(
        capture_id,
        list(outputs),
        trusted=trusted,
        tsa_roots=roots,
        overwrite=force,
        browser_path=browser_path,
    )
    result = done.result
    say_logged(done.logged)
    if output_format == "json":
        doc = result.to_json()
        doc["custody_logged"] = done.logged.written
        doc["notes"] += done.logged.notes
        click.echo(json.dumps(doc, ensure_ascii=False))
    else:
        for written in result.written:
            click.echo(
                f"wrote {printable(str(written.path))}: {written.format.upper()}, "
                f"{counted(written.bytes, 'byte')}, sha256 {written.sha256}"
            )
        if result.verified:
            click.echo(f"capture {capture_id}: verified when the report was made, everything holds")
        else:
            click.echo(
                f"capture {capture_id}: verification FAILED when the report was made "
                f"({counted(result.problems, 'problem')}, stated in the report); "
                "run `archiver verify` for details",
                err=True,
            )
    for note in result.notes:
        click.echo(f"note: {printable(note)}", err=True)
    sys.exit(EXIT_OK if result.verified else EXIT_FAILED)
