"""The chain of custody: every action on an archive, in an append-only, signed, hash-chained log.

``custody/events.jsonl`` holds one event per line: when, what action, who (operator,
host, tool version), the captures and files concerned with their SHA-256, and the
result.  Each event carries ``prev``, the SHA-256 of the line before it (64 zeros for
the first), and an Ed25519 ``signature`` over the event without its signature (the
canonical JSON: keys sorted, ASCII, no spaces), by the key of whoever acted, whose
public key is in the archive's ``keys/``.  So editing an event breaks its signature,
and removing, reordering or inserting one breaks the ``prev`` of the next (and its
``seq``, which counts from 1).

Writers append under an exclusive lock on ``custody/.lock``: two processes never
read the same last event, so the chain never forks.  A line cut by a crash (the start
of an event, or the zeros a power loss can leave) is closed by the next writer, which
chains to the event before it; verify notes it as an interrupted write.  Any other
line that is not an event is damage.

An action taken without a usable key (``verify`` by someone without the archivist's
key) is logged unsigned: what it says rests on the log alone, though the next signed
event signs its hash; verify lists unsigned events.  With trusted keys given
(``--trusted-key``), an event that changes the archive signed by another key fails;
verify and extract events by others are notes (anyone may check an archive).  Only
signed events vouch for the files they list: verify compares each time-stamp token
with the SHA-256 its signed ``timestamp`` event recorded on receipt.

Events at the very end of the log can be removed without a trace in the log itself;
``archiver custody`` prints the hash of the last event, which whoever keeps a copy of
it can compare later, and ``archiver timestamp --custody`` anchors it: an RFC 3161
token over the last event's line, kept as ``custody/stamps/<seq>-<sha256>.<authority>.tsr``.
Verify fails when a stamped event is no longer in the log (a tail cut after a stamp).

The log is compared with the archive by verify (:mod:`archiver.trust.custody_audit`):
every signed capture event's files and manifest digest against what is there, and every
capture present against the log.  Captures an archive held before it had a log are
recorded by an ``adopt`` event (``archiver custody --adopt``), signed, listing each with its
files as found then; verify names them as predating the log.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from archiver import __version__
from archiver.core.atomic import flocked, fsync_dir
from archiver.core.model import Capture, isoformat, parse_timestamp, utcnow
from archiver.core.text import counted
from archiver.trust.custody_audit import compare as compare  # re-exported: custody.compare
from archiver.trust.custody_audit import covered_ids as covered_ids
from archiver.trust.keys import KeyProblem, PublicKey, Signer, load_public, signature_holds
from archiver.trust.manifest import public_key_name, signature_path

CUSTODY_DIR = "custody"
LOG_NAME = "events.jsonl"
FORMAT = "archiver/custody-event/1"
GENESIS = "0" * 64
ACTIONS = (
    "capture",
    "timestamp",
    "verify",
    "extract",
    "index import",
    "index rebuild",
    "index compact",
    "key generation",
    "cleanup",
    "export",
    "adopt",
    "report",
)
FIELDS = (
    "format",
    "seq",
    "time",
    "action",
    "operator",
    "host",
    "tool",
    "captures",
    "files",
    "result",
    "detail",
    "prev",
    "key_fingerprint",
    "signature",
)
_TAIL_CHUNK = 64 * 1024


def log_path(archive: Path) -> Path:
    return archive / CUSTODY_DIR / LOG_NAME


def file_sha256(path: Path) -> str | None:
    """The SHA-256 of a file, or None if it cannot be read."""
    digest = hashlib.sha256()
    try:
        with path.open("rb") as handle:
            while chunk := handle.read(1024 * 1024):
                digest.update(chunk)
    except OSError:
        return None
    return digest.hexdigest()


@dataclass(frozen=True)
class FileRef:
    """A file an event concerns: its path (relative to the archive when inside it)."""

    path: str
    sha256: str | None

    @classmethod
    def of(cls, path: Path, archive: Path, sha256: str | None = None) -> FileRef:
        try:
            shown = str(path.resolve().relative_to(archive.resolve()))
        except (ValueError, OSError):
            shown = str(path)
        return cls(shown, sha256 if sha256 is not None else file_sha256(path))


@dataclass(frozen=True)
class Event:
    seq: int
    time: datetime
    action: str
    operator: str | None
    host: str
    tool: str
    captures: tuple[str, ...]
    files: tuple[FileRef, ...]
    result: str
    detail: str | None
    prev: str
    key_fingerprint: str | None = None
    signature: str | None = None  # hex of the 64-byte Ed25519 signature

    def document(self, *, signed: bool = True) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "format": FORMAT,
            "seq": self.seq,
            "time": isoformat(self.time),
            "action": self.action,
            "operator": self.operator,
            "host": self.host,
            "tool": self.tool,
            "captures": list(self.captures),
            "files": [{"path": f.path, "sha256": f.sha256} for f in self.files],
            "result": self.result,
            "detail": self.detail,
            "prev": self.prev,
            "key_fingerprint": self.key_fingerprint,
        }
        if signed:
            doc["signature"] = self.signature
        return doc

    def signed_bytes(self) -> bytes:
        """What the signature covers: the event without its signature, canonical JSON."""
        return canonical(self.document(signed=False))

    def line(self) -> bytes:
        return canonical(self.document())

    def to_json(self) -> dict[str, Any]:
        return self.document()

    @classmethod
    def from_line(cls, line: bytes) -> Event:
        """Parse one line; a ValueError says what is wrong with it."""
        doc = json.loads(line.decode("utf-8"))
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise ValueError("not a custody event")
        if sorted(doc) != sorted(FIELDS):
            raise ValueError("its fields are not those of a custody event")
        if canonical(doc) != line:
            raise ValueError("it is not written as archiver writes events (edited by hand?)")
        files = []
        for item in doc["files"]:
            if (
                not isinstance(item, dict)
                or not isinstance(item.get("path"), str)
                or not isinstance(item.get("sha256"), str | None)
            ):
                raise ValueError("a file entry is not a path and a hash")
            files.append(FileRef(item["path"], item.get("sha256")))
        seq = doc["seq"]
        if not isinstance(seq, int) or isinstance(seq, bool):
            raise ValueError("its seq is not a number")
        strings = ("action", "host", "tool", "result", "prev")
        if not all(isinstance(doc[k], str) for k in strings):
            raise ValueError("a field is not text")
        optional = ("operator", "detail", "key_fingerprint", "signature")
        if not all(doc[k] is None or isinstance(doc[k], str) for k in optional):
            raise ValueError("a field is neither text nor null")
        if not isinstance(doc["captures"], list) or not isinstance(doc["files"], list):
            raise ValueError("captures or files is not a list")
        event = cls(
            seq=seq,
            time=parse_timestamp(str(doc["time"])),
            action=doc["action"],
            operator=doc["operator"],
            host=doc["host"],
            tool=doc["tool"],
            captures=tuple(str(c) for c in doc["captures"]),
            files=tuple(files),
            result=doc["result"],
            detail=doc["detail"],
            prev=doc["prev"],
            key_fingerprint=doc["key_fingerprint"],
            signature=doc["signature"],
        )
        # what is signed is the event as archiver writes it: a line that reads as the same
        # event but is written otherwise (another time format, a number for a text) would
        # carry a signature over bytes it does not hold
        if event.line() != line:
            raise ValueError("it is not written as archiver writes events (edited?)")
        return event


def canonical(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, sort_keys=True, ensure_ascii=True, separators=(",", ":")).encode()


class CustodyLog:
    """Appends events to an archive's custody log, signed with ``signer`` when there is one."""

    def __init__(
        self,
        archive: Path,
        signer: Signer | None = None,
        *,
        operator: str | None = None,
        hostname: str | None = None,
        clock: Any = utcnow,
    ) -> None:
        self.archive = archive
        self.signer = signer
        self.operator = operator
        self.hostname = hostname or socket.gethostname()
        self.clock = clock

    def append(
        self,
        action: str,
        *,
        captures: Iterable[str] = (),
        files: Iterable[FileRef] = (),
        result: str = "ok",
        detail: str | None = None,
        operator: str | None = None,
    ) -> Event:
        """Append one event (under the log's lock) and return it; an OSError if the log
        cannot be written."""
        path = log_path(self.archive)
        created = not path.parent.is_dir()
        path.parent.mkdir(parents=True, exist_ok=True)
        if created:
            fsync_dir(self.archive)
        if self.signer is not None:
            self.signer.publish(self.archive / public_key_name(self.signer.fingerprint))
        with flocked(path.parent / ".lock", exclusive=True):
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
            try:
                last, seq, ends_cleanly = _tail(fd)
                event = Event(
                    seq=seq + 1,
                    time=self.clock(),
                    action=action,
                    operator=operator if operator is not None else self.operator,
                    host=self.hostname,
                    tool=f"archiver/{__version__}",
                    captures=tuple(captures),
                    files=tuple(files),
                    result=result,
                    detail=detail,
                    prev=hashlib.sha256(last).hexdigest() if last is not None else GENESIS,
                    key_fingerprint=self.signer.fingerprint if self.signer else None,
                )
                if self.signer is not None:
                    signature = self.signer.sign(event.signed_bytes()).hex()
                    event = Event(**{**event.__dict__, "signature": signature})
                data = event.line() + b"\n"
                if not ends_cleanly:  # a line cut by a crash: closed, and skipped by the chain
                    data = b"\n" + data
                _write_all(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)
        if created:
            fsync_dir(path.parent)
        return event


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _tail(fd: int) -> tuple[bytes | None, int, bool]:
    """The last complete event line of the log, its seq, and whether the file ends with
    a newline (an empty file does)."""
    size = os.fstat(fd).st_size
    if size == 0:
        return None, 0, True
    ends_cleanly = os.pread(fd, 1, size - 1) == b"\n"
    for line in _lines_backwards(fd, size):
        try:
            event = Event.from_line(line)
        except (ValueError, KeyError, TypeError, UnicodeDecodeError, RecursionError):
            continue  # a cut or damaged line: the chain goes on from the last good event
        return line, event.seq, ends_cleanly
    return None, 0, ends_cleanly


def _lines_backwards(fd: int, size: int) -> Iterator[bytes]:
    """The file's lines, last first, reading fixed-size chunks from the end."""
    end = size
    pending = b""
    while end > 0:
        start = max(0, end - _TAIL_CHUNK)
        pending = os.pread(fd, end - start, start) + pending
        end = start
        parts = pending.split(b"\n")
        pending = parts[0]
        for part in reversed(parts[1:]):
            if part:
                yield part
    if pending:
        yield pending


# reading and checking ---------------------------------------------------------------
@dataclass
class Entry:
    """One line of the log as read: the event, or why it is not one."""

    line: int
    raw: bytes
    event: Event | None = None
    error: str | None = None
    signed: bool = False


@dataclass
class CustodyReport:
    """The log read and checked: its entries, the chain's problems, and notes."""

    path: str
    entries: list[Entry] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    exists: bool = True
    trusted: bool = False  # checked against trusted keys: only their events count as signed

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def events(self) -> list[Event]:
        return [e.event for e in self.entries if e.event is not None]

    @property
    def head(self) -> str | None:
        """The SHA-256 of the last event: keep it elsewhere to detect a truncated log."""
        good = [e for e in self.entries if e.event is not None]
        return hashlib.sha256(good[-1].raw).hexdigest() if good else None

    def to_json(self, capture: str | None = None) -> dict[str, Any]:
        events = [e for e in self.events if capture is None or capture in e.captures]
        return {
            "log": self.path,
            "ok": self.ok,
            "events": [e.to_json() for e in events],
            "head": self.head,
            "problems": self.problems,
            "notes": self.notes,
        }


READ_ONLY_ACTIONS = ("verify", "extract", "export", "report")  # they change no evidence; anyone may


def check(archive: Path, trusted: dict[str, PublicKey | None] | None = None) -> CustodyReport:
    """Read the log and check its chain: every line an event, seq counting up from 1,
    each ``prev`` the hash of the event before, each signature holding with the signer's
    key (a trusted key given, else the archive's ``keys/`` copy).

    With ``trusted`` keys, an event that changes the archive (anything but verify,
    extract, export and report, which anyone may run) signed by another key is a
    problem.  A line that is not an event is an interrupted write (a note) when the chain
    runs on across it, otherwise a problem."""
    path = log_path(archive)
    report = CustodyReport(str(path.relative_to(archive)))
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        report.exists = False
        return report
    except OSError as exc:
        report.problems.append(f"{report.path}: cannot be read ({exc.strerror or exc})")
        return report
    keys: dict[str, PublicKey | None] = dict(trusted or {})
    report.trusted = bool(trusted)
    trusted_fps = set(trusted) if trusted else None
    previous: bytes | None = None
    previous_seq = 0
    unsigned: list[int] = []
    others: dict[str, list[int]] = {}
    broken: list[tuple[str, str, bool]] = []  # lines that are not events (where, why, cut
    # short?), until the chain shows what they are
    for number, raw in enumerate(data.split(b"\n"), 1):
        if not raw:
            continue
        entry = Entry(number, raw)
        report.entries.append(entry)
        where = f"{report.path} line {number}"
        try:
            event = Event.from_line(raw)
        except (ValueError, KeyError, TypeError, UnicodeDecodeError, RecursionError) as exc:
            entry.error = str(exc)
            broken.append((where, str(exc), _cut_short(raw)))
            continue
        entry.event = event
        expected = hashlib.sha256(previous).hexdigest() if previous is not None else GENESIS
        label = f"{where} (event {event.seq}, {event.action} at {isoformat(event.time)})"
        chained = event.seq == previous_seq + 1 and event.prev == expected
        _settle(report, broken, chained)
        if event.seq != previous_seq + 1:
            report.problems.append(
                f"{label}: its number follows {previous_seq}: an event was removed, "
                "inserted or moved before it"
            )
        elif event.prev != expected:
            report.problems.append(
                f"{label}: it does not chain to the event before it (prev {event.prev[:16]}…, "
                f"that event hashes to {expected[:16]}…): an event was removed, inserted, "
                "moved or edited before it"
            )
        _check_signature(report, entry, event, label, keys, archive, unsigned)
        fp = event.key_fingerprint
        if entry.signed and trusted_fps is not None and fp not in trusted_fps and fp:
            entry.signed = False  # not by a key the verifier trusts
            if event.action in READ_ONLY_ACTIONS:
                others.setdefault(fp, []).append(event.seq)
            else:
                report.problems.append(f"{label}: signed by {fp}, which is not a trusted key")
        previous = raw
        previous_seq = event.seq
    _settle(report, broken, True)  # at the end: writes cut by a crash, or events removed
    if unsigned:
        shown = ", ".join(str(n) for n in unsigned[:10]) + (" …" if len(unsigned) > 10 else "")
        report.notes.append(
            f"{counted(len(unsigned), 'event')} not signed (taken without a signing key): {shown}; "
            "what they say rests on the log alone, and the chain covers them up to the last "
            "signed event"
        )
    for fp, seqs in sorted(others.items()):
        report.notes.append(
            f"{counted(len(seqs), 'verify or extract event')} signed by {fp}, not a trusted key "
            "(someone else checked or read the archive)"
        )
    return report


def _cut_short(raw: bytes) -> bool:
    """Whether a line is what a crash leaves of an event being written: the start of an
    event's canonical JSON that is not whole JSON, or the zeros a file system may leave
    past the last write after a power loss."""
    if not raw.strip(b"\0"):
        return True
    head = b'{"action":"'
    if not (raw.startswith(head) or head.startswith(raw)):
        return False
    try:
        json.loads(raw)
    except (ValueError, RecursionError):
        return True
    return False  # whole JSON: written whole, then changed


def _settle(report: CustodyReport, broken: list[tuple[str, str, bool]], chained: bool) -> None:
    """Lines that are not events.  A crash cuts at most the line being written, and the
    next writer closes it and chains to the event before it: one line cut short, with
    the chain running on across it (or at the very end), is an interrupted write;
    anything else is damage."""
    for where, why, cut in broken:
        if chained and cut and len(broken) == 1:
            report.notes.append(f"{where}: an interrupted write (skipped): {why}")
        else:
            report.problems.append(f"{where}: not a custody event: {why}")
    broken.clear()


def _check_signature(
    report: CustodyReport,
    entry: Entry,
    event: Event,
    label: str,
    keys: dict[str, PublicKey | None],
    archive: Path,
    unsigned: list[int],
) -> None:
    fp = event.key_fingerprint
    if fp is None and event.signature is None:
        unsigned.append(event.seq)
        return
    if fp is None or event.signature is None:
        report.problems.append(f"{label}: half signed (a key without a signature, or the reverse)")
        return
    if fp not in keys or keys[fp] is None:
        try:
            keys[fp] = load_public(archive / public_key_name(fp))
        except KeyProblem as exc:
            report.problems.append(f"{label}: signed by {fp}, whose public key is missing: {exc}")
            keys[fp] = None
            return
    public = keys[fp]
    try:
        signature = bytes.fromhex(event.signature)
    except ValueError:
        signature = b""
    if public is None or not signature_holds(public, signature, event.signed_bytes()):
        report.problems.append(
            f"{label}: its signature does not hold: the event was edited after it was written"
        )
        return
    entry.signed = True


def logged_files(report: CustodyReport, action: str) -> dict[str, str]:
    """The SHA-256 each file had when a signed ``action`` event logged it (by a trusted
    key, when keys were given; the latest event wins), by path."""
    found: dict[str, str] = {}
    for entry in report.entries:
        event = entry.event
        if event is not None and entry.signed and event.action == action and event.result == "ok":
            found.update({f.path: f.sha256 for f in event.files if f.sha256})
    return found


def logged_marked(report: CustodyReport, action: str, mark: str) -> set[str]:
    """The files whose latest signed ``action`` event (as :func:`logged_files` reads
    them) says ``mark`` in its detail."""
    details: dict[str, str] = {}
    for entry in report.entries:
        event = entry.event
        if event is not None and entry.signed and event.action == action and event.result == "ok":
            details.update({f.path: event.detail or "" for f in event.files if f.sha256})
    return {path for path, detail in details.items() if mark in detail}


def history(report: CustodyReport, capture: str | None) -> list[Event]:
    """The events of one capture (all events when None)."""
    return [e for e in report.events if capture is None or capture in e.captures]


def default_operator() -> str | None:
    """Who acts, for the custody log: ARCHIVER_OPERATOR, else the login name."""
    import getpass

    named = os.environ.get("ARCHIVER_OPERATOR")
    if named:
        return named
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return None


def capture_refs(capture: Capture, archive: Path) -> list[FileRef]:
    """A capture's files with their SHA-256, for its capture event: its WARC files, its
    manifest and signature once signed, and the ``.open`` files kept on failure."""
    refs = [FileRef.of(f.path, archive, f.sha256) for f in capture.files]
    if capture.manifest is not None:
        refs.append(FileRef.of(capture.manifest, archive, capture.manifest_sha256))
        refs.append(FileRef.of(signature_path(capture.manifest), archive))
    refs += [FileRef.of(p, archive, None) for p in capture.incomplete_files]
    return refs


def log_capture(
    capture: Capture, archive: Path, signer: Signer | None, hostname: str | None = None
) -> str | None:
    """Append ``capture``'s event (by whoever runs it: the capture's operator, else
    :func:`default_operator`); why it could not be written, or None."""
    trouble = capture.failure or capture.index_error or capture.sign_error
    operator = capture.options.operator or default_operator()
    try:
        CustodyLog(archive, signer, operator=operator, hostname=hostname).append(
            "capture",
            captures=[capture.capture_id],
            files=capture_refs(capture, archive),
            result=capture.status.value if capture.manifest else "failed",
            detail=capture.seed_url + (f": {trouble}" if trouble else ""),
        )
    except Exception as exc:  # a full disk, a damaged log: said, never the capture's end
        return f"the custody log was not written: {exc}"
    return None


# anchoring the head ---------------------------------------------------------------------
STAMPS_DIR = "stamps"  # custody/stamps/<seq>-<sha256>.<authority>.tsr: the head anchored


def stamps_dir(archive: Path) -> Path:
    return archive / CUSTODY_DIR / STAMPS_DIR


def entry_hash(entry: Entry) -> str:
    return hashlib.sha256(entry.raw).hexdigest()


def head_entry(report: CustodyReport) -> Entry | None:
    """The log's last event, as read."""
    good = [e for e in report.entries if e.event is not None]
    return good[-1] if good else None
