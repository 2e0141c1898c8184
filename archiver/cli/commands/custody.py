"""The chain of custody and trusted time: ``custody`` and ``timestamp``."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from archiver.archive import Archive, check_capture_id
from archiver.cli.context import custody_signer, open_archive
from archiver.cli.options import archive_dir_option, format_option, tsa_options
from archiver.cli.render import event_count, show_stamp
from archiver.core.errors import EXIT_FAILED, ArchiverError, UsageProblem
from archiver.core.model import isoformat
from archiver.core.text import counted, printable
from archiver.trust import custody, timestamp
from archiver.trust.manifest import capture_id_of
from archiver.trust.timestamp import timestamper


@click.command("custody")
@click.argument("capture", required=False, metavar="[CAPTURE_ID]")
@click.option(
    "--adopt",
    is_flag=True,
    help="Record the signed captures no event of the log records (an archive written "
    "before it had a custody log): one event, signed with your key, lists each with its "
    "files as they are now; verify then names them as predating the log.",
)
@archive_dir_option
@format_option("text", "json", default="text")
def custody_command(
    capture: str | None, adopt: bool, archive_dir: Path, output_format: str
) -> None:
    """The chain of custody: every action on the archive, or on one capture, in order.

    Each event (capture, timestamp, verify, extract, index import/rebuild/compact,
    key generation, cleanup) says when, who, on which host, with which version,
    the captures and files concerned with their SHA-256, and the result.  Events
    are signed and each holds the hash of the one before, so the chain is checked
    as it is shown (verify also compares it with the archive).  Exit 1 if it is
    broken.  The last line gives the hash of the last event: removing events from
    the end leaves no trace in the log itself, so anchor it with `archiver timestamp
    --custody --tsa URL` (verify then fails if the log is cut before a stamped
    event), or keep the hash elsewhere.

    \b
    Examples:
      archiver custody
      archiver custody 20200812100000-0123456789 --format json
      archiver custody --adopt
    """
    archive = open_archive(archive_dir)
    if adopt:
        archive.require_dir()
        check_capture_id(capture)
        if capture is not None:
            raise click.UsageError("--adopt records every capture without an event; name none")
        adopt_captures(archive)
        return
    log, events = archive.custody(capture)
    if output_format == "json":
        click.echo(json.dumps(log.to_json(capture), ensure_ascii=False))
    elif not log.exists:
        click.echo(f"no custody log in {archive_dir} yet")
    else:
        show_events(events, capture)
        verdict = "intact" if log.ok else "BROKEN"
        click.echo(
            f"chain {verdict}: {event_count(len(log.events))} in {log.path}; "
            f"last event sha256 {log.head}"
        )
        stamped = sorted(custody.stamps_dir(archive_dir).glob("*.tsr"))
        last = f"last stamped: {stamped[-1].name.split('-')[0].lstrip('0')}" if stamped else ""
        click.echo(
            f"  anchor the end: `archiver timestamp --custody --tsa URL` ({last or 'never'})"
        )
        for message in log.problems:
            click.echo(f"  - {printable(message)}", err=True)
        for message in log.notes:
            click.echo(f"  note: {printable(message)}")
    if not log.ok:
        sys.exit(EXIT_FAILED)


def show_events(events: list[custody.Event], capture: str | None) -> None:
    """Every value from the log escaped: it cannot forge a line."""
    for event in events:
        who = printable(f"{event.operator or '-'}@{event.host}")
        signed = "" if event.signature else " (unsigned)"
        click.echo(
            f"{event.seq:>5}  {isoformat(event.time)}  {printable(event.action):<14} "
            f"{printable(event.result):<8} {who} {printable(event.tool)}{signed}"
        )
        if event.detail:
            click.echo(f"       {printable(event.detail)}")
        shown = event.captures if capture is None else ()
        if shown:
            more = f" and {len(shown) - 5} more" if len(shown) > 5 else ""
            click.echo(f"       captures: {printable(', '.join(shown[:5]))}{more}")
        for ref in event.files[:20] if capture is not None else ():
            click.echo(f"       {printable(ref.path)}  sha256 {printable(ref.sha256 or '-')}")
    if capture is not None and not events:
        click.echo(f"no event concerns capture {capture}")


def adopt_captures(archive: Archive) -> None:
    """``archiver custody --adopt``: say what was adopted, what refused; exit 1 if any was."""
    adopted = archive.adopt()
    for remark in adopted.remarks:
        click.echo(remark, err=True)
    if adopted.event is None:
        click.echo("nothing to adopt: every signed capture has its event in the log")
    else:
        assert archive.signer is not None
        click.echo(
            f"adopted {counted(len(adopted.capture_ids), 'capture')} as predating the custody "
            f"log: event {adopted.event.seq} (sha256 {adopted.digest}), signed by "
            f"{archive.signer.fingerprint}"
        )
    sys.exit(EXIT_FAILED if adopted.refused else 0)


@click.command("timestamp")
@click.argument("captures", nargs=-1, metavar="[CAPTURE_ID_OR_MANIFEST]...")
@tsa_options
@click.option(
    "--again",
    is_flag=True,
    help="Ask an authority that stamped a capture already for another token (both kept).",
)
@click.option(
    "--custody",
    "custody_head",
    is_flag=True,
    help="Time-stamp the custody log's last event (after the captures named, if any; "
    "alone, no capture is stamped): verify then fails if the log is ever cut before it. "
    "Kept as ARCHIVE_DIR/custody/stamps/<seq>-<sha256>.<authority>.tsr.",
)
@archive_dir_option
@format_option("text", "json", default="text")
def timestamp_command(
    captures: tuple[str, ...],
    tsa: tuple[str, ...],
    tsa_ca: tuple[Path, ...],
    tsa_timeout: float,
    again: bool,
    custody_head: bool,
    archive_dir: Path,
    output_format: str,
) -> None:
    """Get RFC 3161 time-stamp tokens for captures signed earlier (all when none named).

    Each authority's token over the capture's manifest signature is checked on
    receipt and kept beside it as <capture_id>.manifest.json.sig.<authority>.tsr,
    with the authority's certificate chain under ARCHIVE_DIR/tsa/.  Captures an
    authority stamped already are skipped (--again asks anew).  Exit 1 if an
    authority failed for a capture; its earlier tokens and the capture are kept.

    --custody anchors the custody log's end: a token over its last event, so that
    removing events from the end later (which leaves no trace in the log itself)
    makes verify fail.  Run it after a batch of work, or on a schedule.

    \b
    Examples:
      archiver timestamp --tsa https://freetsa.org/tsr --tsa-ca freetsa-cacert.pem
      archiver timestamp 20200812100000-0123456789 --tsa http://timestamp.digicert.com
      archiver timestamp --custody --tsa https://freetsa.org/tsr
    """
    if not tsa:
        raise click.UsageError(
            "no time-stamping authority: give --tsa URL (or tsa in the config file's "
            "[timestamp] table)"
        )
    archive = Archive(archive_dir, signer=custody_signer())
    archive.require_writable("timestamp")  # its tokens are kept in the archive
    stamper = timestamper(tsa, tsa_ca, tsa_timeout, mark_signed=archive.signer is not None)
    assert stamper is not None
    manifests = archive.signed_manifests(captures) if captures or not custody_head else []
    failed = False
    for manifest in manifests:
        try:
            stamps = archive.timestamp(manifest, stamper, again=again)
        except ArchiverError as exc:  # this capture's signature does not hold: the others go on
            if isinstance(exc, UsageProblem):
                raise
            click.echo(f"FAILED {exc}", err=True)
            failed = True
            continue
        failed = failed or not all(s.ok for s in stamps)
        if output_format == "json":
            for stamp in stamps:
                click.echo(json.dumps(stamp.to_json(), ensure_ascii=False))
            continue
        click.echo(f"capture {capture_id_of(manifest)}")
        for stamp in stamps:
            show_stamp(stamp)
    if custody_head and not stamp_custody_head(archive, stamper, again, output_format):
        failed = True
    if failed:
        sys.exit(EXIT_FAILED)


def stamp_custody_head(
    archive: Archive, stamper: timestamp.Timestamper, again: bool, output_format: str
) -> bool:
    """Time-stamp the custody log's last event and say so; whether every token held."""
    try:
        head = archive.timestamp_custody(stamper, again=again)
    except ArchiverError as exc:
        if isinstance(exc, UsageProblem):
            raise
        click.echo(f"FAILED {exc}", err=True)
        return False
    if output_format == "json":
        for stamp in head.stamps:
            doc = {
                "custody_event": head.seq,
                "custody_event_sha256": head.digest,
                **stamp.to_json(),
            }
            del doc["capture_id"]
            click.echo(json.dumps(doc, ensure_ascii=False))
        return all(s.ok for s in head.stamps)
    click.echo(f"custody log, event {head.seq} (sha256 {head.digest})")
    for stamp in head.stamps:
        if stamp.ok or stamp.already:
            show_stamp(stamp)
        else:
            click.echo(
                f"  NOT time-stamped by {stamp.authority}: {stamp.error}; "
                "`archiver timestamp --custody` asks again",
                err=True,
            )
    return all(s.ok for s in head.stamps)
