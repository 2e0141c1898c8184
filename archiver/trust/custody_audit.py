"""The custody log compared with the archive, both ways (by verify): every signed capture,
adopt or import event's files against what is there, and every signed capture present
against the events that vouch for it."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from archiver.core.model import isoformat
from archiver.core.text import counted
from archiver.trust.manifest import MANIFEST_SUFFIX

if TYPE_CHECKING:
    from archiver.trust.custody import CustodyReport, Entry, Event, FileRef

COVERING = ("capture", "adopt")  # the events that vouch for a capture's files
IMPORTING = "index import"  # vouches for the files it stored (another tool's WARC files)
_SHOWN = 3


@dataclass(frozen=True)
class Present:
    """A capture in the archive whose manifest's signature holds, as verify found it:
    its manifest (relative to the archive) and that file's SHA-256, its signer, and the
    SHA-256 its manifest gives each of its WARC files (checked against them by verify)."""

    manifest: str
    manifest_sha256: str
    signer: str
    files: dict[str, str]


@dataclass
class Comparison:
    """The log against the archive: problems naming an event; captures present that no
    signed event vouches for, with why; notes (captures adopted)."""

    problems: list[str] = field(default_factory=list)
    uncovered: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def event_label(entry: Entry, capture_id: str | None = None) -> str:
    """How a problem names an event: its number, action, time, hash, and the capture."""
    event = entry.event
    assert event is not None
    what = f"{event.action} of {capture_id}" if capture_id else event.action
    digest = hashlib.sha256(entry.raw).hexdigest()
    return f"custody event {event.seq} ({what} at {isoformat(event.time)}, sha256 {digest[:16]}…)"


def _by_capture(event: Event) -> dict[str, list[FileRef]]:
    """The signed captures an event records, each with its files (named after it)."""
    # each file's name matched against the ids by the lengths they have: linear in
    # files, for an adopt event of thousands of captures as for a capture event
    ids = set(event.captures)
    lengths = sorted({len(c) for c in ids})
    named: dict[str, list[FileRef]] = {c: [] for c in ids}
    for ref in event.files:
        name = ref.path.rsplit("/", 1)[-1]
        for size in lengths:
            if name[:size] in ids:
                named[name[:size]].append(ref)
    out: dict[str, list[FileRef]] = {}
    for capture_id in event.captures:
        refs = named[capture_id]
        if any(f.path.endswith(MANIFEST_SUFFIX) and f.sha256 for f in refs):
            out[capture_id] = refs
    return out


def compare(
    report: CustodyReport,
    archive: Path,
    present: dict[str, Present],
    *,
    whole: bool,
    imported: dict[str, str] | None = None,
) -> Comparison:
    """Compare the log with the archive, both ways.

    Every signed ``capture`` or ``adopt`` event that recorded a signed capture (its
    manifest with a SHA-256) is checked against what is there: each file it lists with
    a SHA-256 must be present with that SHA-256 (a capture gone, a manifest replaced,
    a signature changed: a problem naming the event).  Events of captures not in
    ``present`` are checked only when ``whole`` (the whole archive is verified).
    Every capture in ``present`` needs such an event, signed by the capture's own
    signer or by a trusted key (``report`` was checked with the trusted keys, if any:
    then only their events count as signed), whose files all still match.

    The files a signed ``index import`` event stored are checked the same way (all of
    them when ``whole``, else those in ``imported``: the SHA-256 verify read of the
    imported files it verified, by path)."""
    result = Comparison()
    covered: dict[str, tuple[Entry, str]] = {}
    why: dict[str, str] = {}
    for entry in report.entries:
        event = entry.event
        if event is not None and entry.signed and event.action == IMPORTING:
            result.problems += _compare_import(entry, archive, imported or {}, whole)
        if event is None or not entry.signed or event.action not in COVERING:
            continue
        for capture_id, refs in _by_capture(event).items():
            found = present.get(capture_id)
            if found is None and not whole:
                continue
            label = event_label(entry, capture_id)
            problems, unreadable = _refs_problems(archive, refs, found, label)
            result.problems += problems
            if unreadable:
                why[capture_id] = (
                    f"files its {event.action} event {event.seq} recorded cannot be read"
                )
            if found is None or problems:
                continue
            signer = event.key_fingerprint
            if signer != found.signer and not report.trusted:  # (entry.signed: by a trusted key)
                why[capture_id] = (
                    f"its {event.action} event {event.seq} is signed by {signer}, not by the "
                    f"capture's signer {found.signer}"
                )
                continue
            covered.setdefault(capture_id, (entry, event.action))
    for capture_id in sorted(present):
        if capture_id not in covered:
            result.uncovered[capture_id] = why.get(capture_id) or (
                f"no signed event of the custody log ({report.path}) records this capture: "
                "it was put in the archive without `archiver capture`, or its event was "
                "removed; if the archive held it before it had a custody log, "
                "`archiver custody --adopt` records it as predating the log"
            )
    result.notes += _adopted_notes(report, covered)
    return result


def _refs_problems(
    archive: Path, refs: list[FileRef], found: Present | None, label: str
) -> tuple[list[str], bool]:
    """What is wrong with the files an event recorded with their SHA-256 (gone, changed,
    unreadable: never taken as holding), and whether any could not be read."""
    gone, changed, unreadable = [], [], []
    for ref in refs:
        if ref.sha256 is None:
            continue
        try:
            now = _current(archive, ref.path, found)
        except OSError as exc:  # not there to check: never taken as holding
            unreadable.append(f"{ref.path} ({exc.strerror or exc})")
            continue
        if now is None:
            gone.append(ref.path)
        elif now != ref.sha256:
            changed.append(f"{ref.path} has SHA-256 {now}, the event recorded {ref.sha256}")
    problems = []
    if gone:
        whole_capture = len(gone) == len([r for r in refs if r.sha256])
        problems.append(
            f"{label}: {'the capture is gone: ' if whole_capture else ''}"
            f"{counted(len(gone), 'file')} it recorded with its SHA-256 "
            f"{'is' if len(gone) == 1 else 'are'} not in the archive: {_listed(gone)}"
        )
    problems += [f"{label}: changed since it was logged: {text}" for text in changed]
    if unreadable:
        problems.append(
            f"{label}: {counted(len(unreadable), 'file')} it recorded with its SHA-256 "
            f"cannot be read, so not checked: {_listed(unreadable)}"
        )
    return problems, bool(unreadable)


def _adopted_notes(report: CustodyReport, covered: dict[str, tuple[Entry, str]]) -> list[str]:
    """A note per adopt event that covers captures: they predate the log."""
    notes: list[str] = []
    adopted: dict[int, list[str]] = {}
    for capture_id, (entry, action) in covered.items():
        if action == "adopt" and entry.event is not None:
            adopted.setdefault(entry.event.seq, []).append(capture_id)
    for entry in report.entries:
        if entry.event is not None and entry.event.seq in adopted:
            ids = sorted(adopted[entry.event.seq])
            shown = ", ".join(ids[:_SHOWN]) + (
                f" and {len(ids) - _SHOWN} more" if len(ids) > _SHOWN else ""
            )
            notes.append(
                f"{counted(len(ids), 'capture')} predate the custody log (or had no capture "
                f"event): {event_label(entry)} recorded them as they were then, signed by "
                f"{entry.event.key_fingerprint}; what happened to them before is not "
                f"logged: {shown}"
            )
    return notes


def _compare_import(
    entry: Entry, archive: Path, imported: dict[str, str], whole: bool
) -> list[str]:
    """An ``index import`` event's stored files against the archive: each gone or
    changed is a problem naming the event and the imported capture (``import-`` and the
    first 16 hex digits of the file's SHA-256 as imported)."""
    event = entry.event
    assert event is not None
    problems = []
    for ref in event.files:
        if ref.sha256 is None or not (whole or ref.path in imported):
            continue
        label = event_label(entry, f"import-{ref.sha256[:16]}")
        try:
            now = imported.get(ref.path) or _current(archive, ref.path, None)
        except OSError as exc:
            problems.append(
                f"{label}: the file it imported, recorded with its SHA-256, cannot be read, "
                f"so not checked: {ref.path} ({exc.strerror or exc})"
            )
            continue
        if now is None:
            problems.append(
                f"{label}: the file it imported, recorded with its SHA-256, is not in the "
                f"archive: {ref.path}"
            )
        elif now != ref.sha256:
            problems.append(
                f"{label}: changed since it was logged: {ref.path} has SHA-256 {now}, the "
                f"event recorded {ref.sha256}"
            )
    return problems


def _listed(paths: list[str]) -> str:
    """The first few of ``paths``, and how many more."""
    more = len(paths) - _SHOWN
    return ", ".join(paths[:_SHOWN]) + (f" and {more} more" if more > 0 else "")


def _current(archive: Path, relative: str, found: Present | None) -> str | None:
    """The SHA-256 a file an event recorded has now (None: not there).  A present
    capture's manifest and WARC files are known from verify (which checks the WARC
    files against the manifest); other files are hashed (a signature is 64 bytes), and
    the WARC files of a capture not verified now are hashed only if they are there.
    A file (or folder on the way) that cannot be read: OSError."""
    if found is not None and relative == found.manifest:
        return found.manifest_sha256
    if found is not None and relative in found.files:
        return found.files[relative]
    if Path(relative).is_absolute() or ".." in Path(relative).parts:
        return None
    path = archive / relative
    if not path.is_file():
        return None
    digest = hashlib.sha256()
    with path.open("rb") as handle:  # one that cannot be read: OSError, never "gone"
        while chunk := handle.read(1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()


def covered_ids(report: CustodyReport) -> set[str]:
    """The captures some signed capture or adopt event records (as signed captures)."""
    out: set[str] = set()
    for entry in report.entries:
        if entry.event is not None and entry.signed and entry.event.action in COVERING:
            out.update(_by_capture(entry.event))
    return out
