"""The archive's custody log against what verify found: both ways, its events'
time-stamps, and the event hashes kept outside the archive (``--custody-head``)."""

from __future__ import annotations

from cryptography import x509

from archiver.core.text import counted
from archiver.ops.verify.reading import _shown
from archiver.ops.verify.report import Report
from archiver.ops.verify.targets import _Plan
from archiver.trust import custody, custody_audit, timestamp
from archiver.trust.manifest import Manifest


def _compare_custody(
    todo: _Plan,
    report: Report,
    signed: dict[str, Manifest],
    digests: dict[str, str],
    tsa_roots: list[x509.Certificate] | None,
    logged: dict[str, str],
    unchecked_tokens: set[str],
) -> None:
    """The custody log against the archive, both ways (:func:`custody_audit.compare`), and the
    time-stamps of its events (:func:`timestamp.check_head_tokens`).  An archive that
    holds captures and no log fails: a log removed looks just like that."""
    log = report.custody
    if log is None:
        return
    running = set(report.in_progress)
    held = sorted(set(todo.manifests) - running)
    if not log.exists:
        if held:
            log.problems.append(
                f"{log.path}: there is no custody log, and the archive holds "
                f"{counted(len(held), 'capture')}: the log was removed, or the archive was "
                "written before archiver kept one (then `archiver custody --adopt` records "
                "the captures it holds, as predating the log)"
            )
        return
    present = {
        capture_id: custody_audit.Present(
            manifest=_shown(todo.manifests[capture_id][0], todo.archive),
            manifest_sha256=digests[capture_id],
            signer=manifest.key_fingerprint,
            files={f.path: f.sha256 for f in manifest.files},
        )
        for capture_id, manifest in signed.items()
        if capture_id not in running
    }
    imported = {f.path: f.sha256 for f in report.unsigned if f.sha256 is not None}
    compared = custody_audit.compare(
        log, todo.archive, present, whole=todo.whole_archive, imported=imported
    )
    log.problems += compared.problems
    log.notes += compared.notes
    for result in report.captures:
        why = compared.uncovered.get(result.capture_id)
        if why is not None:
            result.problem(why, file=log.path)
    events = {
        custody.entry_hash(e): (e.event.seq, e.raw, e.event.time)
        for e in log.entries
        if e.event is not None
    }
    problems, notes = timestamp.check_head_tokens(
        todo.archive,
        events,
        tsa_roots,
        saved=timestamp.saved_certificates(todo.archive),
        logged=logged,
        unchecked=unchecked_tokens,
    )
    log.problems += problems
    log.notes += notes


def _check_heads_kept(report: Report, heads: list[str]) -> None:
    """Each event hash kept outside the archive (``--custody-head``) is in the log."""
    log = report.custody
    if not heads or log is None:
        return
    present = [custody.entry_hash(e) for e in log.entries if e.event is not None]
    for head in heads:
        if not any(h.startswith(head) for h in present):
            log.problems.append(
                f"{log.path}: no event with SHA-256 {head} (given with --custody-head) is in "
                "the log: events were removed from its end after that hash was kept, or the "
                "log was replaced"
            )
