"""``archiver report``: one document per capture, for people who will never run archiver."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from archiver.cli.context import open_archive, say_logged
from archiver.cli.options import archive_dir_option, format_option
from archiver.core.errors import EXIT_FAILED, EXIT_USAGE, UsageProblem
from archiver.core.text import counted, printable
from archiver.trust.timestamp import tsa_roots

EXIT_OK = 0


class Refused(click.ClickException):
    """A request that cannot be done (an unknown capture, an output that exists, a PDF
    without Chromium), said as ``error: …`` as a failure is, with exit status 2: one
    plain line, not click's "Invalid value for …" (the message names what is wrong)."""

    exit_code = EXIT_USAGE

    def show(self, file: object = None) -> None:
        click.echo(f"error: {self.format_message()}", err=True)


@click.command("report")
@click.argument("capture_id", metavar="CAPTURE")
@click.option(
    "-o",
    "--output",
    "outputs",
    multiple=True,
    required=True,
    type=click.Path(path_type=Path),
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
    (the report is written all the same, and says so on its first page) or when a
    PDF could not be printed (the HTML asked for with it is written), 2 for a usage
    error (an unknown capture, an output that exists or cannot be written, a PDF
    without Chromium). A document that cannot be written leaves none written (but a
    PDF that Chromium cannot print leaves the HTML of the same run); never inside the
    archive.

    \b
    Examples:
      archiver report 20200812100000-0123456789 -o report.pdf
      archiver report 20200812100000-0123456789 -o report.html -o report.pdf \\
          --trusted-key archivist.pub.pem --tsa-ca freetsa-root.pem
    """
    try:
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
    except UsageProblem as exc:
        raise Refused(printable(str(exc))) from exc
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
        _say_verdict(capture_id, result.verified, result.imported, result.problems)
        if not done.logged.written and not done.logged.warning:
            click.echo(
                "note: the making of this report is not in the archive's custody log "
                "(the report says so)",
                err=True,
            )
    for path, why in result.not_written.items():
        click.echo(
            f"error: {printable(str(path))} was not written: {printable(why)}; the HTML report "
            "was (it needs no browser: try -o FILE.html alone)",
            err=True,
        )
    for note in result.notes:
        click.echo(f"note: {printable(note)}", err=True)
    sys.exit(EXIT_OK if result.ok else EXIT_FAILED)


def _say_verdict(capture_id: str, verified: bool, imported: bool, problems: int) -> None:
    """The verification made for the report, in one line (stderr when it failed)."""
    if imported:
        said = "an imported file, not signed by archiver: its own digests " + (
            "hold" if verified else f"do NOT hold ({counted(problems, 'problem')})"
        )
        click.echo(
            f"capture {capture_id}: {said}, checked when the report was made", err=not verified
        )
    elif verified:
        click.echo(f"capture {capture_id}: verified when the report was made, everything holds")
    else:
        click.echo(
            f"capture {capture_id}: verification FAILED when the report was made "
            f"({counted(problems, 'problem')}, stated in the report); "
            "run `archiver verify` for details",
            err=True,
        )
