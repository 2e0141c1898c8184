"""How outcomes are shown: a capture's summary, a verification report, time-stamps, a
query's rows; text for people, the JSON is each outcome's own ``to_json``."""

from __future__ import annotations

from pathlib import Path

import click

from archiver.core.atomic import atomic_path
from archiver.core.model import Capture, CaptureStatus, Stamp, isoformat
from archiver.core.text import counted
from archiver.index import query
from archiver.ops import verify as verification
from archiver.trust import timestamp


def event_count(n: int) -> str:
    return counted(n, "event")


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"  # pragma: no cover


def report(result: Capture) -> None:
    """A short human summary of one capture (stdout), problems on stderr."""
    s = result.summary()
    if result.status is CaptureStatus.FAILED:
        click.echo(f"FAILED {result.seed_url}: {result.failure}", err=True)
    else:
        click.echo(
            f"{result.status.value} {result.seed_url} -> {result.capture_id}: "
            f"{counted(s['record_count'], 'record')}, {counted(len(result.videos), 'video')}, "
            f"{human_bytes(s['total_bytes'])}"
        )
    for err in result.errors:
        click.echo(f"  not captured: {err.url}: {err.reason}", err=True)
    for url in s["truncated"]:
        click.echo(f"  truncated: {url}", err=True)
    for spent in result.budget_spent:
        left = sum(1 for n in result.not_followed if n.get("reason", "").startswith(spent))
        listed = counted(left, "entry", "entries")
        click.echo(f"  partial: {spent}; {listed} in not_followed", err=True)
    for live in result.live:
        how = (
            "recorded once, as a snapshot (--live-duration follows it)"
            if live["snapshot"]
            else f"followed for {live['followed_seconds']:.0f} s, fetched {live['polls']} times"
        )
        ended = "; the stream ended" if live["ended"] else ""
        click.echo(f"  live stream: {live['url']}: {how}{ended}", err=True)
    if result.browser is not None and result.browser.get("product"):  # it ran
        say_browser(result)
    for tls in result.tls_unverified:
        click.echo(
            f"  certificate not verified (--insecure): {tls.host}: {tls.problem};"
            f" certificate sha256 {tls.certificate_sha256} recorded",
            err=True,
        )
    for path in result.warc_files:
        click.echo(f"  {path}")
    if result.manifest:
        click.echo(f"  signed by {result.key_fingerprint}: {result.manifest}")
    for stamp in result.timestamps:
        show_stamp(stamp)
    if result.sign_error and result.sign_error != result.failure:
        click.echo(f"  {result.sign_error}", err=True)
    if result.index_error:
        click.echo(f"  {result.index_error}", err=True)


def say_browser(result: Capture) -> None:
    """How the page went in the browser, and what it left: one line, problems apart."""
    info = result.browser_summary()
    quiet = info["network_quiet"]
    settled = "network quiet" if quiet else "still busy at --browser-timeout (captured as it stood)"
    kinds = sorted({url.split(":", 2)[1] for url in info["kept"] if url.count(":") >= 2})
    refused = info["blocked"]
    blocked = f"; {counted(refused, 'request')} of its own refused" if refused else ""
    click.echo(
        f"  browser: {info['product']}; {settled}; scrolled {info['scroll_steps'] or 0} steps;"
        f" kept {', '.join(kinds) or 'nothing it showed'}{blocked}"
    )
    for what, items in (("pop-up", info["popups"]), ("download", info["downloads"])):
        for item in items:
            click.echo(f"  browser {what}: {item}", err=True)


def show_stamp(stamp: Stamp) -> None:
    if stamp.already:
        when = isoformat(stamp.time) if stamp.time else "?"
        click.echo(f"  already time-stamped by {stamp.authority} ({when}): {stamp.token}")
    elif stamp.ok and stamp.time is not None:
        click.echo(f"  time-stamped by {stamp.authority} at {isoformat(stamp.time)}: {stamp.token}")
        if stamp.root_checked is False:
            click.echo(
                f"    {timestamp.UNCHECKED} (no --tsa-ca given, and it reaches none of this "
                f"machine's roots): it ends at {stamp.chain_end}; kept as received, "
                "`archiver verify --tsa-ca ROOT` judges it"
            )
    else:
        click.echo(
            f"  NOT time-stamped by {stamp.authority}: {stamp.error}; the capture is signed "
            f"and kept; `archiver timestamp {stamp.capture_id}` asks again",
            err=True,
        )


def emit(result: query.Result, output_format: str, output: Path | None) -> None:
    """Write a query result in ``output_format`` to ``output`` or stdout."""
    if output_format == "parquet":
        if output is None:
            raise click.UsageError("--format parquet needs --output FILE")
        try:  # a read-only place: said as for the other formats, not as a crash
            query.write_parquet(result, output)
        except OSError as exc:
            raise click.UsageError(f"cannot write {output}: {exc.strerror or exc}") from exc
        return
    if output_format == "json":
        text = query.as_json(result) + "\n"
    elif output_format == "csv":
        text = query.as_csv(result)
    else:
        text = query.as_text_table(result)
    if output is None:
        click.echo(text, nl=False)
        return
    try:
        with atomic_path(output, overwrite=True) as temp:
            temp.write_text(text, "utf-8")
    except OSError as exc:
        raise click.UsageError(f"cannot write {output}: {exc.strerror or exc}") from exc


NOTES_SHOWN = 10
"""Notes shown per file in text output (``--format json`` lists them all)."""


def show_notes(notes: list[str], err: bool = False) -> None:
    """Quirks of another tool's file that touch no digest: said, not failed."""
    for text in notes[:NOTES_SHOWN]:
        click.echo(f"  note: {text}", err=err)
    if len(notes) > NOTES_SHOWN:
        more = counted(len(notes) - NOTES_SHOWN, "more note")
        click.echo(f"  note: ... and {more} on this file (--format json lists them all)", err=err)


def show_verification(result: verification.Report) -> None:
    """The text report of ``archiver verify``: each capture, file, check and the custody
    log, what was left out, the signers, and a last line with the verdict."""
    for capture in result.captures:
        show_capture_verified(capture)
    for f in result.unsigned:
        verdict = "OK" if f.ok else "FAILED"
        click.echo(
            f"{verdict} {f.path}: {counted(f.records, 'record')}; unsigned, so only internal "
            "consistency (the digests the records declare) was checked"
            + (
                f"; {counted(f.without_digest, 'record declares', 'records declare')} no digest"
                if f.without_digest
                else ""
            )
        )
        for problem in f.problems:
            click.echo(f"  - {problem.text()}")
        show_notes([note.text() for note in f.notes])
    for check in result.index_checks:
        click.echo(f"{'OK' if check.ok else 'FAILED'} {check.check} {check.target}: {check.detail}")
    for problem in result.index_problems:
        where = f"capture {problem.capture_id}: " if problem.capture_id else ""
        click.echo(f"  - {where}{problem.text()}")
    show_custody_verified(result)
    show_in_progress(result)
    show_signers(result)
    show_verdict(result)


def show_capture_verified(c: verification.CaptureResult) -> None:
    verdict = "OK" if c.ok else "FAILED"
    status = f" ({c.status})" if c.status else ""
    click.echo(
        f"{verdict} capture {c.capture_id}{status}: {counted(c.files, 'file')}, "
        f"{counted(c.records, 'record')}, "
        f"{human_bytes(c.bytes)}"
    )
    if c.key_fingerprint:
        if c.trusted is None:
            click.echo(
                f"  signed by {c.key_fingerprint} (no --trusted-key given: compare this "
                "fingerprint with the signer's, obtained another way)"
            )
        else:
            trust = "a trusted key" if c.trusted else "NOT a trusted key"
            click.echo(f"  signed by {c.key_fingerprint}, {trust}")
    for token in c.timestamps:
        if not token.ok or token.time is None:
            continue
        click.echo(f"  time-stamped by {token.authority} at {isoformat(token.time)}")
        if token.unchecked_at_capture and token.root is None:
            click.echo(
                f"    {timestamp.UNCHECKED}, nor now (no --tsa-ca given): it ends at "
                f"{token.chain_end}, not at a root saved in the archive: compare it with "
                "the authority's, or give the authority's root with --tsa-ca"
            )
        elif token.unchecked_at_capture and not token.anchored:
            click.echo(
                f"    {timestamp.UNCHECKED}; it ends at a root saved in the archive, "
                f"{token.root}: compare it with the authority's, or give that with --tsa-ca"
            )
        elif not token.anchored:
            click.echo(
                f"    its chain ends at a root saved in the archive, {token.root}: "
                "compare it with the authority's, or give that with --tsa-ca"
            )
    if c.trusted_time is not None:
        click.echo(
            f"  trusted time: {isoformat(c.trusted_time)} (the capture existed, signed, "
            "by then: the authority's time plus its stated accuracy)"
        )
    for problem in c.problems:
        click.echo(f"  - {problem.text()}")


def show_custody_verified(result: verification.Report) -> None:
    if result.custody is None or not (result.custody.exists or result.custody.problems):
        return
    log = result.custody
    verdict = "OK" if log.ok else "FAILED"
    click.echo(
        f"{verdict} custody log {log.path}: {event_count(len(log.events))}, last {log.head}"
        if log.exists
        else f"FAILED custody log {log.path}: missing"
    )
    for message in log.problems:
        click.echo(f"  - {message}")
    for message in log.notes:
        click.echo(f"  note: {message}")


def show_in_progress(result: verification.Report) -> None:
    verified = {c.capture_id for c in result.captures}
    for capture_id in result.in_progress:
        if capture_id in verified:  # signed already: verified above, only its rows not
            click.echo(
                f"IN PROGRESS capture {capture_id}: still running (it holds its capture "
                "lock); its signed manifest and files are verified above, its index rows "
                "and custody event once it has ended"
            )
            continue
        click.echo(
            f"IN PROGRESS capture {capture_id}: running now (it holds its capture lock), so "
            "left out of this verification: verify it once it has ended"
        )


def show_verdict(result: verification.Report) -> None:
    verified = {c.capture_id for c in result.captures}
    problems = len(result.problems)
    left_out = [c for c in result.in_progress if c not in verified]
    aside = f" ({counted(len(left_out), 'capture')} in progress left out)" if left_out else ""
    if result.nothing and result.in_progress:
        click.echo(f"FAILED: nothing verified{aside}: verify once it has ended", err=True)
    elif result.nothing:
        click.echo("FAILED: nothing to verify (no manifest and no WARC file found)", err=True)
    elif result.ok and result.unsigned:
        click.echo(
            f"verified: no problem found{aside}; "
            f"{counted(len(result.unsigned), 'unsigned file was', 'unsigned files were')} "
            "checked for internal consistency only"
        )
    elif result.ok:
        click.echo(f"verified: everything holds{aside}")
    elif result.signers_problem is not None:  # said last, whatever else failed
        others = f"{counted(problems - 1, 'other problem')}; " if problems > 1 else ""
        click.echo(f"FAILED: {others}{result.signers_problem}{aside}", err=True)
    else:
        click.echo(f"FAILED: {problems} problem{'s' if problems != 1 else ''}{aside}", err=True)


def show_signers(result: verification.Report) -> None:
    """Every key whose signature holds on a capture verified, with how many it signed."""
    signers = result.signers
    if not signers:
        return
    if result.trusted_given:
        click.echo(f"signers: {counted(len(signers), 'key')}")
    else:
        click.echo(
            f"signers: {counted(len(signers), 'key')} (no --trusted-key given: compare each "
            "fingerprint with the signer's, obtained another way)"
        )
    for fp, n in signers.items():
        trust = ""
        if result.trusted_given:
            trust = ", a trusted key" if fp in result.trusted else ", NOT a trusted key"
        click.echo(f"  {fp}: {counted(n, 'capture')}{trust}")
