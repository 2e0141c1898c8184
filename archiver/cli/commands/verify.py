"""``archiver verify``: nothing captured has changed since it was signed, or where it has."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
from cryptography import x509

from archiver.archive import Archive
from archiver.cli.context import open_archive, say_logged
from archiver.cli.options import archive_dir_option, format_option
from archiver.cli.progress import scan_progress
from archiver.cli.render import show_verification
from archiver.core.errors import EXIT_FAILED, UsageProblem
from archiver.ops.wacz.check import is_wacz
from archiver.trust.timestamp import tsa_roots

EXIT_OK = 0


@click.command("verify")
@click.argument("paths", nargs=-1)
@click.option(
    "--trusted-key",
    "trusted",
    multiple=True,
    metavar="FILE_OR_FINGERPRINT",
    help="A public key file, or a 64-hex-digit fingerprint, that may sign (repeatable). "
    "A capture signed by any other key fails.",
)
@click.option(
    "--deep",
    is_flag=True,
    help="Also recompute every payload digest of a signed file (a third SHA-256 over the "
    "same bytes; about a third slower). By default a payload digest is compared with the "
    "signed one, and the file's SHA-256 covers its bytes.",
)
@click.option(
    "--tsa-ca",
    multiple=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Root certificate(s) of the time-stamping authorities you trust, PEM "
    "(repeatable). Without it, tokens are checked against the roots saved in the archive.",
)
@click.option(
    "--custody-head",
    "custody_heads",
    multiple=True,
    metavar="SHA256",
    help="The SHA-256 of a custody event kept outside the archive (`archiver custody` "
    "prints the last one; 16 or more hex digits), which must still be in the log: "
    "events cut from its end fail (repeatable).",
)
@archive_dir_option
@format_option("text", "json", default="text")
def verify_command(
    paths: tuple[str, ...],
    trusted: tuple[str, ...],
    deep: bool,
    tsa_ca: tuple[Path, ...],
    custody_heads: tuple[str, ...],
    archive_dir: Path,
    output_format: str,
) -> None:
    """Check that nothing captured has changed since it was signed, and say where it has.

    Checks every manifest's signature, every WARC file's size and SHA-256, every
    record's head and block digest (one pass per file; --deep recomputes payload digests
    too), and every index row against the signed manifests. PATHS may be WACZ files
    (each checked from the file alone, see docs/verifying.md), capture ids (an imported
    file's import-... id too), manifests, WARC files or directories; none means the
    whole archive. WARC files from other tools have no signature: their digests are
    checked, and the report says that only internal consistency was; their quirks that
    touch no digest are notes, not failures.
    The report ends with every signer's fingerprint and how many captures it
    signed; captures signed by more than one key fail unless --trusted-key names
    the keys that may sign.  A revisit counts only when its original is signed by
    the same key or a trusted one.  Captures still running are left out, and said.
    Exit status: 0 when everything holds, 1 otherwise.

    \b
    Examples:
      archiver verify
      archiver verify 20200812100000-0123456789 --trusted-key archivist.pub.pem
      archiver verify crawl.warc.gz --format json
    """
    interactive = output_format == "text" and sys.stderr.isatty()
    roots = tsa_roots(tsa_ca)
    if paths and all(is_wacz(Path(p)) for p in paths):
        verify_waczs(paths, trusted, roots, output_format)
    if any(is_wacz(Path(p)) for p in paths):
        raise UsageProblem("verify WACZ files on their own, not with captures or WARC files")
    archive = open_archive(archive_dir)
    with scan_progress(interactive) as progress:
        done = archive.verify(
            paths, trusted, progress, deep=deep, tsa_roots=roots, custody_heads=custody_heads
        )
    if output_format == "json":
        doc = done.result.to_json()
        say_logged(done.logged)
        doc["custody_logged"] = done.logged.written
        if done.logged.notes:
            doc["notes"] = done.logged.notes
        click.echo(json.dumps(doc, ensure_ascii=False))
    else:
        show_verification(done.result)
        say_logged(done.logged)
    sys.exit(EXIT_OK if done.result.ok else EXIT_FAILED)


def verify_waczs(
    paths: tuple[str, ...],
    trusted: tuple[str, ...],
    roots: list[x509.Certificate] | None,
    output_format: str,
) -> None:
    """``verify FILE.wacz…``: each checked from the file alone; exit 1 unless all hold."""
    from archiver.cli.commands.wacz import show_wacz_report

    reports = [Archive.verify_wacz(path, trusted, roots) for path in paths]
    for report in reports:
        if output_format == "json":
            click.echo(json.dumps(report.to_json(), ensure_ascii=False))
        else:
            show_wacz_report(report)
    sys.exit(EXIT_OK if all(r.ok for r in reports) else EXIT_FAILED)
