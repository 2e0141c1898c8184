"""``archiver export`` and ``archiver import``: WACZ files out of the archive and into it;
``verify FILE.wacz`` is in :mod:`archiver.cli.commands.verify`."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import click

from archiver.cli.context import open_archive, passphrase_for, say_logged
from archiver.cli.options import archive_dir_option, format_option, key_option, key_store_option
from archiver.cli.progress import scan_progress
from archiver.cli.render import human_bytes
from archiver.core.errors import Failure
from archiver.core.text import counted
from archiver.ops.wacz.check import WaczReport
from archiver.ops.wacz.load import WaczImport
from archiver.trust import keys


class _ExportLine:
    """One line on stderr while the WARC files are copied: bytes of bytes, rate, file."""

    def __init__(self) -> None:
        self.start = time.monotonic()
        self.last = 0.0

    def __call__(self, done: int, total: int, name: str) -> None:
        now = time.monotonic()
        if now - self.last < 0.2 and done < total:
            return
        self.last = now
        rate = done / max(now - self.start, 1e-6)
        line = (
            f"exporting {human_bytes(done)} of {human_bytes(total)}, {human_bytes(rate)}/s  {name}"
        )
        sys.stderr.write("\r" + line[:118].ljust(118))
        sys.stderr.flush()

    def close(self) -> None:
        sys.stderr.write("\r" + " " * 118 + "\r")
        sys.stderr.flush()


@click.command("export")
@click.argument("captures", nargs=-1, required=True)
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The WACZ file to write (it appears whole or not at all).",
)
@click.option("--force", is_flag=True, help="Replace an existing file of that name.")
@key_option
@key_store_option
@archive_dir_option
@format_option("text", "json", default="text")
def export_command(
    captures: tuple[str, ...],
    output: Path,
    force: bool,
    key_path: Path | None,
    key_store: Path | None,
    archive_dir: Path,
    output_format: str,
) -> None:
    """Write captures as one signed WACZ file, for ReplayWeb.page and other archives.

    The WARC files are copied byte for byte (each checked against its signed manifest
    on the way), with a CDXJ index, the pages, and our own evidence: manifests,
    signatures, time-stamp tokens, public keys and the captures' custody events.  The
    WACZ is signed as ReplayWeb.page checks it (ECDSA P-384 in datapackage-digest.json);
    the P-384 key is made beside your signing key on first use and bound to it by a
    statement your Ed25519 key signs.  `archiver verify FILE.wacz` checks all of it.

    \b
    Example:
      archiver export 20261206101500-0123456789 -o belarus-report.wacz
    """
    archive = open_archive(archive_dir)
    store = key_store or keys.default_store()
    try:
        info = keys.find_key(store, key_path)
        passphrase = passphrase_for(info.path)
        signer = keys.Signer.load(info.path, passphrase)
    except (keys.KeyProblem, OSError) as exc:
        raise Failure(str(exc)) from exc
    line = _ExportLine() if output_format == "text" and sys.stderr.isatty() else None
    try:
        done = archive.export(
            captures, output, signer, info, passphrase, overwrite=force, progress=line
        )
    finally:
        if line is not None:
            line.close()
    result = done.result
    if output_format == "json":
        doc = result.to_json()
        doc["custody_logged"] = done.logged.written
        click.echo(json.dumps(doc, ensure_ascii=False))
    else:
        click.echo(
            f"{result.path}: {counted(len(result.captures), 'capture')}, "
            f"{counted(len(result.members), 'file')}, {human_bytes(result.size)} "
            f"in {result.seconds:.1f} s"
        )
        for added, needed_by in result.originals.items():
            click.echo(
                f"  also exported {added}: it holds the originals of {needed_by}'s revisits "
                "(identical payloads stored once)"
            )
        click.echo(f"  sha256 {result.sha256}")
        click.echo(f"  signed by the P-384 key bound to {result.signer}")
    say_logged(done.logged)


@click.command("import")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--collection",
    default="default",
    show_default=True,
    help="Collection to import into: the files land in warc/<collection>/imported/.",
)
@archive_dir_option
@format_option("text", "json", default="text")
def import_command(
    paths: tuple[Path, ...], collection: str, archive_dir: Path, output_format: str
) -> None:
    """Import WACZ files (or WARC files) made by any tool into the archive's index.

    A WACZ is checked first: its files against datapackage.json, and its signature,
    which is reported as it is (valid with an anonymous key, a domain whose
    certificate was not checked, invalid, or none): never as trust.  Its WARC files
    are then copied into warc/<collection>/imported/ and indexed as `index import`
    does.  Exit 1 if a file had a problem.

    \b
    Example:
      archiver import crawl-from-browsertrix.wacz --collection shared
    """
    from archiver.cli.commands.upkeep import index_import

    click.get_current_context().invoke(
        index_import,
        paths=paths,
        collection=collection,
        archive_dir=archive_dir,
        output_format=output_format,
    )


def import_waczs(
    paths: tuple[Path, ...], collection: str, archive_dir: Path, output_format: str
) -> int:
    """Import WACZ files, each said as it went; how many had a problem."""
    archive = open_archive(archive_dir)
    with scan_progress(output_format == "text" and sys.stderr.isatty()) as progress:
        done = archive.import_wacz(paths, collection, progress)
    say_logged(done.logged)
    for item in done.result:
        show_wacz_import(item, output_format)
    return sum(0 if item.ok else 1 for item in done.result)


def show_wacz_import(item: WaczImport, output_format: str) -> None:
    if output_format == "json":
        click.echo(json.dumps(item.to_json(), ensure_ascii=False))
        return
    click.echo(f"{item.source}: {item.signature_said()}")
    for problem in item.report.all_problems():
        click.echo(f"  {item.source}: {problem}", err=True)
    for result in item.results:
        if isinstance(result, tuple):
            click.echo(f"FAILED {result[1]}", err=True)
        else:
            from archiver.cli.commands.upkeep import show_import

            show_import(result, output_format)
    if not item.results:
        click.echo(f"FAILED {item.source}: no WARC file imported", err=True)


def show_wacz_report(report: WaczReport) -> None:
    """``verify FILE.wacz`` as text."""
    verdict = "OK" if report.ok else "FAILED"
    click.echo(f"{report.path}: {verdict}")
    click.echo(f"  signature: {_signature_line(report)}")
    if report.signer:
        click.echo(f"  P-384 key bound to the Ed25519 key {report.signer}")
    click.echo(f"  {counted(report.files, 'file')}, {human_bytes(report.bytes)} checked")
    for capture in report.captures:
        state = "ok" if not capture.problems else counted(len(capture.problems), "problem")
        stamps = [t for t in capture.timestamps if t.ok and t.time]
        times = ", ".join(
            f"{t.authority} {t.time:%Y-%m-%d %H:%M:%S} UTC"
            + ("" if t.anchored else " (its root came with the WACZ: give --tsa-ca to trust it)")
            for t in stamps
            if t.time
        )
        click.echo(
            f"  capture {capture.capture_id}: {state}, signed by {capture.signer}, "
            f"{counted(capture.files, 'WARC file')}, {counted(capture.records, 'record')}"
            + (f", time-stamped {times}" if times else "")
        )
    for problem in report.all_problems():
        click.echo(f"  problem: {problem}")
    for note in report.notes:
        click.echo(f"  note: {note}")


def _signature_line(report: WaczReport) -> str:
    check = report.digest
    return check.verdict if check is not None else "not signed (no datapackage-digest.json)"


def wacz_report_json(report: WaczReport) -> dict[str, Any]:
    return report.to_json()
