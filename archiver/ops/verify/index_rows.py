"""Verify an archive: signatures, files, records and index rows; locate every change.

For each signed capture (see :mod:`archiver.trust.manifest`):

1. the manifest's signature, with the public key the archive holds for the signer
   (or a key given with ``--trusted-key``); a signer outside the trusted keys fails;
2. each WARC file the manifest lists: its size and SHA-256, and in the same single
   pass every record's WARC head (record id, type, target URI), block digest and
   payload digest.  When a file differs, a second pass hashes each record's stored
   bytes against the manifest to say which records changed, went missing or were
   added;
3. every ``captures`` and ``records`` row of the index against the signed manifest,
   column by column, so an edited, missing or added row is caught (the index is
   derived data: rebuilt or compacted, it still verifies);
4. that no WARC file, record or row claims the capture without the manifest listing it;
5. that each revisit's original is signed by the same key (or a trusted one) and
   still holds the payload: its digest recomputed from the stored bytes.

A capture of ours without a manifest or without a signature fails (unsigned, or
incomplete); one still running (holding its lock) is left out, as in progress.
WARC files written by other tools are checked for internal consistency only (every
declared digest), and the report says so.  Without trusted keys, captures signed by
more than one key fail: nothing says which is the archivist's.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import re
import stat
import time
from collections import Counter, defaultdict
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, fields, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography import x509

from archiver.core.layout import CAPTURE_ID
from archiver.core.model import isoformat
from archiver.core.text import counted
from archiver.index import schema
from archiver.index.store import (
    INDEX_DIR,
    CaptureRow,
    Index,
    RecordRow,
    from_table,
    read_table_file,
)
from archiver.ops import cleanup, ingest
from archiver.ops.ingest import NoProgress, ScanProgress
from archiver.trust import custody, sign, timestamp
from archiver.trust.manifest import (
    MANIFEST_SUFFIX,
    SIGNATURE_SUFFIX,
    Manifest,
    ManifestError,
    archive_of,
    capture_id_of,
    row_to_json,
    signature_path,
)
from archiver.warc.reader import HTTP_TYPES, StoredRecord, Unreadable, parse_digest, read_stored
from archiver.warc.rules import bare_target_uri
from archiver.warc.writer import OPEN_SUFFIX

_OUR_WARC = re.compile(r"^(\d{14}-[0-9a-f]{10})-\d{5}\.warc(\.gz)?$")
_CAPTURE_ID = CAPTURE_ID
_FINGERPRINT = re.compile(r"^[0-9a-f]{64}$")
SIGNATURE_LENGTH = 64
MANIFEST_LIMIT = 1024 * 1024 * 1024  # a manifest larger than this is not one of ours
SIGNERS_SHOWN = 5  # keys named in the one-line verdict (the summary lists them all)
SIGNING_WAIT = 2.0  # seconds a running capture's manifest may wait for its signature


def read_regular(path: Path, limit: int) -> bytes:
    """The bytes of ``path`` if it is a regular file of at most ``limit`` bytes.

    A FIFO, a device or a directory put in a file's place would hang the reader or
    feed it for ever: OSError, as for a file that cannot be read.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise OSError(errno.EINVAL, "not a regular file", str(path))
        if info.st_size > limit:
            raise OSError(errno.EFBIG, f"larger than {limit} bytes", str(path))
        with os.fdopen(os.dup(fd), "rb") as fh:
            return fh.read(limit + 1)
    finally:
        os.close(fd)


class VerifyUsage(ValueError):
    """The paths or keys given cannot be verified as asked (a user error, exit 2)."""


@dataclass(frozen=True)
class Problem:
    """Something that does not hold, and where: capture, file, offset, record, URL."""

    message: str
    capture_id: str | None = None
    file: str | None = None
    offset: int | None = None
    record_id: str | None = None
    url: str | None = None

    def text(self) -> str:
        where = []
        if self.file:
            where.append(self.file + (f" @ {self.offset}" if self.offset is not None else ""))
        if self.record_id:
            where.append(f"record {self.record_id}" + (f" ({self.url})" if self.url else ""))
        return (": ".join(where) + ": " if where else "") + self.message

    def to_json(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True)
class Check:
    """One check made and its result."""

    check: str
    target: str
    ok: bool
    detail: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"check": self.check, "target": self.target, "ok": self.ok, "detail": self.detail}


@dataclass
class CaptureResult:
    """The verdict on one capture of ours."""

    capture_id: str
    manifest: str | None = None
    status: str | None = None  # what the capture itself recorded: complete, partial, failed
    key_fingerprint: str | None = None
    trusted: bool | None = None  # None: no trusted key was given
    files: int = 0
    records: int = 0
    bytes: int = 0
    checks: list[Check] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    timestamps: list[timestamp.TokenCheck] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def trusted_time(self) -> datetime | None:
        """The earliest time an authority's valid token vouches the capture existed."""
        return timestamp.trusted_time(self.timestamps)

    @property
    def signature_holds(self) -> bool:
        return any(c.check == "signature" and c.ok for c in self.checks)

    def check(self, name: str, target: str, ok: bool, detail: str = "") -> bool:
        self.checks.append(Check(name, target, ok, detail))
        return ok

    def problem(self, message: str, **where: Any) -> None:
        self.problems.append(Problem(message, self.capture_id, **where))

    def to_json(self) -> dict[str, Any]:
        return {
            "capture_id": self.capture_id,
            "ok": self.ok,
            "manifest": self.manifest,
            "status": self.status,
            "signed": self.key_fingerprint is not None,
            "key_fingerprint": self.key_fingerprint,
            "trusted": self.trusted,
            "files": self.files,
            "records": self.records,
            "bytes": self.bytes,
            "checks": [c.to_json() for c in self.checks],
            "problems": [p.to_json() for p in self.problems],
            "timestamps": [t.to_json() for t in self.timestamps],
            "trusted_time": isoformat(self.trusted_time) if self.trusted_time else None,
        }


@dataclass
class FileResult:
    """The verdict on a WARC file no signature covers (written by another tool)."""

    path: str
    records: int = 0
    without_digest: int = 0
    imported_as: str | None = None
    claims: str | None = None  # the capture its warcinfo record names, if one of ours
    sha256: str | None = None  # of an imported file, as read (compared with the custody log)
    problems: list[Problem] = field(default_factory=list)
    # quirks of the writer that warcio accepts and that touch no digest: said, not failed
    notes: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "ok": self.ok,
            "signed": False,
            "imported_as": self.imported_as,
            "records": self.records,
            "records_without_digest": self.without_digest,
            "checked": "internal consistency only (no signature)",
            "problems": [p.to_json() for p in self.problems],
            "notes": [n.to_json() for n in self.notes],
        }


@dataclass
class Report:
    captures: list[CaptureResult] = field(default_factory=list)
    unsigned: list[FileResult] = field(default_factory=list)
    index_checks: list[Check] = field(default_factory=list)
    index_problems: list[Problem] = field(default_factory=list)  # rows claiming no signed capture
    nothing: bool = False  # nothing was found to verify
    custody: custody.CustodyReport | None = None  # the archive's custody log, checked
    archive: Path | None = None  # the archive whose custody log that is
    trusted_given: bool = False  # --trusted-key named the keys that may sign
    trusted: frozenset[str] = frozenset()  # their fingerprints
    # captures running now (holding their lock): left out of the verdict, said
    in_progress: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return (
            not self.nothing
            and all(c.ok for c in self.captures)
            and all(f.ok for f in self.unsigned)
            and not self.index_problems
            and (self.custody is None or self.custody.ok)
            and self.signers_problem is None
        )

    @property
    def signers(self) -> dict[str, int]:
        """Each key whose signature holds on a capture verified here: how many it signed
        (most first)."""
        counts = Counter(
            c.key_fingerprint for c in self.captures if c.key_fingerprint and c.signature_holds
        )
        return dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))

    @property
    def signers_problem(self) -> str | None:
        """Without --trusted-key, captures signed by more than one key: a failure.

        Nothing then says which key is the archivist's: a capture re-signed by someone
        who dropped their public key into ``keys/`` would hide among the good ones.
        Naming the keys that may sign (--trusted-key, repeatable) settles it.
        """
        signers = self.signers
        if self.trusted_given or len(signers) < 2:
            return None
        shown = ", ".join(
            f"{fp} ({counted(n, 'capture')})" for fp, n in list(signers.items())[:SIGNERS_SHOWN]
        )
        more = len(signers) - SIGNERS_SHOWN
        return (
            f"signed by {len(signers)} different keys: {shown}"
            + (f" and {more} more" if more > 0 else "")
            + "; give the keys that may sign with --trusted-key (repeatable)"
        )

    @property
    def problems(self) -> list[Problem]:
        out = [p for c in self.captures for p in c.problems]
        out += [p for f in self.unsigned for p in f.problems]
        if self.custody is not None:
            out += [Problem(m) for m in self.custody.problems]
        if self.signers_problem is not None:
            out.append(Problem(self.signers_problem))
        return out + self.index_problems

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "nothing_to_verify": self.nothing,
            "captures": [c.to_json() for c in self.captures],
            "unsigned_files": [f.to_json() for f in self.unsigned],
            "in_progress": self.in_progress,
            "signers": [
                {
                    "key_fingerprint": fp,
                    "captures": n,
                    "trusted": fp in self.trusted if self.trusted_given else None,
                }
                for fp, n in self.signers.items()
            ],
            "signers_problem": self.signers_problem,
            "index": {
                "checks": [c.to_json() for c in self.index_checks],
                "problems": [p.to_json() for p in self.index_problems],
            },
            "custody": None
            if self.custody is None
            else {
                "log": self.custody.path,
                "exists": self.custody.exists,
                "ok": self.custody.ok,
                "events": len(self.custody.events),
                "head": self.custody.head,
                "problems": self.custody.problems,
                "notes": self.custody.notes,
            },
        }


@dataclass(frozen=True)
class _Reading:
    """How files are read: the hashing thread, the progress display, and how deep."""

    pool: ThreadPoolExecutor
    progress: ScanProgress
    deep: bool
    # each archive's saved TSA certificates, read once for all its captures
    certificates: dict[Path, list[x509.Certificate]] = field(default_factory=dict)

    # the names in each folder of manifests, sorted, listed once for all its captures
    folders: dict[Path, list[str]] = field(default_factory=dict)

    def saved_certificates(self, archive: Path) -> list[x509.Certificate]:
        if archive not in self.certificates:
            self.certificates[archive] = timestamp.saved_certificates(archive)
        return self.certificates[archive]

    def listed(self, folder: Path) -> list[str]:
        if folder not in self.folders:
            try:
                self.folders[folder] = sorted(p.name for p in folder.iterdir())
            except OSError:
                self.folders[folder] = []
        return self.folders[folder]


# what to verify ------------------------------------------------------------------
@dataclass
class _Plan:
    archive: Path
    manifests: dict[str, list[Path]] = field(default_factory=dict)  # capture id -> manifests
    named: dict[str, list[Path]] = field(default_factory=dict)  # capture id -> its WARC files
    foreign: list[Path] = field(default_factory=list)
    interrupted: list[Path] = field(default_factory=list)  # .open files
    whole_archive: bool = False
    # imported files named by their id (import-...): the id their content must still have
    imported_ids: dict[Path, str] = field(default_factory=dict)
    missing: list[Problem] = field(default_factory=list)  # files the index names, gone

    @property
    def unsigned_ours(self) -> dict[str, list[Path]]:
        """WARC files named after one of our captures that has no manifest."""
        return {c: files for c, files in self.named.items() if c not in self.manifests}


def trusted_keys(values: Iterable[str]) -> dict[str, sign.PublicKey | None]:
    """``--trusted-key`` values (public key files or 64 hex digits): fingerprint -> the
    key itself when a file gave it (it then checks signatures in place of the archive's
    copy), else None."""
    out: dict[str, sign.PublicKey | None] = {}
    for value in values:
        path = Path(value)
        if path.is_file():
            try:
                key = sign.load_public(path)
            except sign.KeyProblem as exc:
                raise VerifyUsage(f"--trusted-key {value}: {exc}") from exc
            out[sign.fingerprint(key)] = key
        elif _FINGERPRINT.match(value.lower()):
            out.setdefault(value.lower(), None)
        else:
            raise VerifyUsage(
                f"--trusted-key {value}: not a public key file nor a 64-digit hex fingerprint"
            )
    return out


def plan(archive_dir: Path, paths: Iterable[str]) -> _Plan:
    """What the paths name: captures (by manifest), our unsigned files, foreign files."""
    given = list(paths)
    result = _Plan(archive_dir)
    if not given:
        if not archive_dir.is_dir():
            raise VerifyUsage(f"no archive at {archive_dir}")
        _add_tree(result, archive_dir / ingest.WARC_DIR)
        result.whole_archive = True
        return result
    for text in given:
        path = Path(text)
        if path.is_dir():
            if path.resolve() == archive_dir.resolve() or (path / ingest.WARC_DIR).is_dir():
                result.archive = path
                _add_tree(result, path / ingest.WARC_DIR)
                result.whole_archive = True
            else:
                _add_tree(result, path)
        elif path.is_file():
            if not _add_file(result, path):
                raise VerifyUsage(f"{text}: not a manifest, signature or WARC file")
        elif _CAPTURE_ID.match(text):
            manifests, files = _capture_files(archive_dir, text)
            if not manifests and not files:
                raise VerifyUsage(f"{text}: no such capture in {archive_dir}")
            for found in [*manifests, *files]:
                _add_file(result, found)
        elif ingest.IMPORT_ID.match(text):  # a file imported from another tool
            files, named = _imported_files(archive_dir, text)
            if not files and named:  # its rows name a file that is gone: a failure
                result.missing.append(
                    Problem(
                        f"the index names {', '.join(named)} as the file of imported capture "
                        f"{text}, and no such file is in the archive",
                        text,
                        ", ".join(named),
                    )
                )
            elif not files:
                raise VerifyUsage(f"{text}: no such imported file in {archive_dir}")
            for found in files:
                _add_file(result, found)
                result.imported_ids[found] = text
        else:
            raise VerifyUsage(f"{text}: no such file or directory, nor a capture id")
    homes = {archive_of(found[0]) for found in result.manifests.values()}
    if not result.whole_archive and len(homes) == 1:  # manifests of another archive: its
        result.archive = homes.pop()  # index and custody log are theirs
    if not result.whole_archive:  # every file that claims one of these captures by name
        for capture_id in list(result.manifests):
            for found in _capture_files(result.archive, capture_id)[1]:
                _add_file(result, found)
    return result


def _capture_files(archive: Path, capture_id: str) -> tuple[list[Path], list[Path]]:
    """The manifests and the WARC files named after ``capture_id``, in any folder."""
    root = archive / ingest.WARC_DIR
    if not root.is_dir():
        return [], []
    manifests = sorted(root.rglob(f"{capture_id}{MANIFEST_SUFFIX}"))
    files = sorted(
        p
        for p in root.rglob(f"{capture_id}-*")
        if ingest.is_warc(p) or ingest.is_warc(p.with_name(p.name.removesuffix(OPEN_SUFFIX)))
    )
    return manifests, files


def _imported_files(archive: Path, capture_id: str) -> tuple[list[Path], list[str]]:
    """The stored file of the imported capture ``capture_id`` (``import-`` and the first
    16 hex digits of the file's SHA-256), as ``show`` and ``extract`` name it.

    The index's ``captures`` row says where it is (read here, never repaired): that
    file is taken, even if its content no longer has the id (verify then says so, and
    what changed in it).  Without such a file, every imported file of the archive is
    hashed to find the one with the id.  Also returned: the files the row names.
    """
    prefix = capture_id.removeprefix("import-")
    named: list[str] = []
    stored: list[Path] = []
    for row, _name in _rows(Index(archive), "captures", {capture_id}, []):
        for relative in row.warc_files or []:
            named.append(relative)
            path = _inside(archive, relative)
            if path is None or path in stored or path.parent.name != ingest.IMPORTED_DIR:
                continue
            with contextlib.suppress(OSError):
                if path.is_file() and ingest.is_warc(path):
                    stored.append(path)
    if stored:
        return stored, named
    tree = archive / ingest.WARC_DIR
    for path in sorted(tree.glob(f"*/{ingest.IMPORTED_DIR}/*")):
        try:
            if (
                path.is_file()
                and ingest.is_warc(path)
                and ingest.file_sha256(path).startswith(prefix)
            ):
                return [path], named
        except OSError:
            continue
    return [], named


def _add_tree(result: _Plan, root: Path) -> None:
    if not root.is_dir():
        return
    try:
        paths = sorted(root.rglob("*"))
    except OSError as exc:
        raise VerifyUsage(f"{root}: cannot be read ({exc.strerror or exc})") from exc
    for path in paths:  # hidden names too: index rebuild reads them as well
        if path.is_file():
            _add_file(result, path)


def _add_file(result: _Plan, path: Path) -> bool:
    name = path.name
    stamped = timestamp.manifest_of_token(path)
    if stamped is not None:  # a time-stamp token: checked with its capture
        path, name = stamped, stamped.name
    if name.endswith(SIGNATURE_SUFFIX):
        path = path.with_name(name.removesuffix(".sig"))
        name = path.name
    if name.endswith(MANIFEST_SUFFIX):
        found = result.manifests.setdefault(capture_id_of(path), [])
        if path not in found:
            found.append(path)
        return True
    if name.endswith(OPEN_SUFFIX) and ingest.is_warc(path.with_name(name[: -len(OPEN_SUFFIX)])):
        if path not in result.interrupted:
            result.interrupted.append(path)
        return True
    if not ingest.is_warc(path):
        return False
    match = _OUR_WARC.match(name)
    if match is None or path.parent.name == ingest.IMPORTED_DIR:
        if path not in result.foreign:
            result.foreign.append(path)
        return True
    capture_id = match.group(1)
    manifest = path.with_name(capture_id + MANIFEST_SUFFIX)
    if manifest.exists():
        _add_file(result, manifest)
    named = result.named.setdefault(capture_id, [])
    if path not in named:
        named.append(path)
    return True


# verifying ------------------------------------------------------------------------
def verify(
    archive_dir: Path,
    paths: Iterable[str] = (),
    trusted: Iterable[str] = (),
    progress: ScanProgress | None = None,
    *,
    deep: bool = False,
    tsa_roots: list[x509.Certificate] | None = None,
    custody_heads: Iterable[str] = (),
) -> Report:
    """Verify what ``paths`` name (the whole archive when none); see the module doc.

    Time-stamp tokens are checked against ``tsa_roots`` when given, else against the
    roots saved in the archive.  ``custody_heads``: SHA-256s (or prefixes of at least 16
    hex digits) of custody events kept outside the archive, each of which must still be
    in the log: events removed from its end, or a log replaced, fail."""
    keys = trusted_keys(trusted)
    todo = plan(archive_dir, paths)
    progress = progress or NoProgress()
    report = Report(trusted_given=bool(keys), trusted=frozenset(keys))
    report.in_progress = _set_aside_running(todo)
    if (todo.archive / custody.CUSTODY_DIR).is_dir() or todo.whole_archive or todo.manifests:
        report.custody = custody.check(todo.archive, keys)
        report.archive = todo.archive
    # tokens as received: a token file changed since then fails even if it still holds
    logged = custody.logged_files(report.custody, "timestamp") if report.custody else {}
    # tokens kept on receipt with their chain not checked against a trusted root
    unchecked_tokens = (
        custody.logged_marked(report.custody, "timestamp", timestamp.UNCHECKED)
        if report.custody
        else set()
    )
    signed: dict[str, Manifest] = {}
    digests: dict[str, str] = {}
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="verify") as pool:
        reading = _Reading(pool, progress, deep)
        unchecked: set[str] = set()  # their manifest's signature does not hold
        for capture_id, found in sorted(todo.manifests.items()):
            named = todo.named.get(capture_id, [])
            result, manifest, data = _verify_capture(
                found[0], keys, reading, named, tsa_roots, logged, unchecked_tokens
            )
            for extra in found[1:]:
                result.problem(
                    "a second manifest for this capture", file=_shown(extra, todo.archive)
                )
            report.captures.append(result)
            if manifest is not None and data is not None and result.signature_holds:
                signed[capture_id] = manifest
                digests[capture_id] = hashlib.sha256(data).hexdigest()
            else:
                unchecked.add(capture_id)
        for capture_id, files in sorted(todo.unsigned_ours.items()):
            report.captures.append(_unsigned_capture(capture_id, files, todo.archive, progress))
        for path in todo.interrupted:
            report.captures.append(_interrupted(path, todo.archive))
        imported: dict[str, tuple[CaptureRow, list[RecordRow]]] = {}
        for path in todo.foreign:
            result_file, rows = _verify_foreign(path, todo.archive, progress)
            report.unsigned.append(result_file)
            asked = todo.imported_ids.get(path)  # verify import-<id> named it
            if asked is not None and result_file.imported_as != asked:
                _changed_import(result_file, path, asked)
            elif rows is not None:
                imported[rows[0].capture_id] = rows
    claimed = set(todo.manifests) | set(todo.named)
    for file_result in report.unsigned:
        if file_result.claims in claimed and file_result.imported_as is None:
            file_result.problems.append(
                Problem(
                    f"its warcinfo record names capture {file_result.claims}, whose signed "
                    "manifest does not list this file",
                    file_result.claims,
                    file_result.path,
                    0,
                )
            )
    _resolve_revisits(report, signed, todo.archive, keys)
    _compare_custody(todo, report, signed, digests, tsa_roots, logged, unchecked_tokens)
    _check_heads_kept(report, [h.lower() for h in custody_heads])
    report.index_problems += todo.missing
    if not report.captures and not report.unsigned and not todo.missing:
        report.nothing = True
    if todo.whole_archive:  # started since: the index rows it writes are its own business
        report.in_progress += sorted(
            cleanup.running_captures(todo.archive) - set(report.in_progress)
        )
    running = set(report.in_progress)  # their rows may not be written yet
    complete = {c: m for c, m in signed.items() if c not in running}
    _verify_index(todo, report, complete, digests, imported, unchecked | running)
    return report


def _set_aside_running(todo: _Plan) -> list[str]:
    """Take the captures running now out of ``todo``; their ids.

    A running capture holds its lock (see :func:`archiver.ops.cleanup.running_captures`):
    its ``.open`` files are being written, then published, signed and indexed, so it
    is neither interrupted nor finished.  A ``.open`` file listed but gone since was
    published meanwhile: its capture was running too.  Verifying the whole archive,
    every running capture is named, files or not (its index rows may come first).

    One whose manifest is written has published its files: it stays in ``todo`` and
    is verified (its index rows and custody event, which may not be written yet, are
    left out).  A lock proves nothing (anyone who can write the archive can hold one):
    it never hides a signed capture.
    """
    running = cleanup.running_captures(todo.archive)
    for path in list(todo.interrupted):
        match = _OUR_WARC.match(path.name.removesuffix(OPEN_SUFFIX))
        if match is not None and not path.exists():
            running.add(match.group(1))
    if not running:
        return []
    opened = {c for c in running if any(p.name.startswith(c + "-") for p in todo.interrupted)}
    found = opened | {c for c in running if c in todo.manifests or c in todo.named}
    signing = {c for c in running if c in todo.manifests}
    deadline = time.monotonic() + SIGNING_WAIT  # the signature follows the manifest at once
    while time.monotonic() < deadline and not all(
        signature_path(todo.manifests[c][0]).exists() for c in signing
    ):
        time.sleep(0.05)
    for capture_id in running - signing:
        todo.manifests.pop(capture_id, None)
        todo.named.pop(capture_id, None)
    todo.interrupted = [
        p
        for p in todo.interrupted
        if not any(p.name.startswith(c + "-") for c in running - signing)
    ]
    return sorted(running if todo.whole_archive else found)


def _compare_custody(
    todo: _Plan,
    report: Report,
    signed: dict[str, Manifest],
    digests: dict[str, str],
    tsa_roots: list[x509.Certificate] | None,
    logged: dict[str, str],
    unchecked_tokens: set[str],
) -> None:
    """The custody log against the archive, both ways (:func:`custody.compare`), and the
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
        capture_id: custody.Present(
            manifest=_shown(todo.manifests[capture_id][0], todo.archive),
            manifest_sha256=digests[capture_id],
            signer=manifest.key_fingerprint,
            files={f.path: f.sha256 for f in manifest.files},
        )
        for capture_id, manifest in signed.items()
        if capture_id not in running
    }
    imported = {f.path: f.sha256 for f in report.unsigned if f.sha256 is not None}
    compared = custody.compare(
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


def _verify_capture(
    path: Path,
    keys: dict[str, sign.PublicKey | None],
    reading: _Reading,
    named: list[Path],
    tsa_roots: list[x509.Certificate] | None = None,
    logged: dict[str, str] | None = None,
    unchecked: set[str] | None = None,
) -> tuple[CaptureResult, Manifest | None, bytes | None]:
    capture_id = capture_id_of(path)
    archive = path.resolve().parent.parent.parent
    result = CaptureResult(capture_id, manifest=_shown(path, archive))
    try:
        data = read_regular(path, MANIFEST_LIMIT)
    except OSError as exc:
        result.problem(f"incomplete: the manifest cannot be read ({exc.strerror or exc})")
        result.check("manifest", result.manifest or "", False, "missing")
        return result, None, None
    try:
        manifest = Manifest.from_bytes(data)
    except ManifestError as exc:
        result.problem(f"the manifest is not valid: {exc}", file=result.manifest)
        result.check("manifest", result.manifest or "", False, str(exc))
        return result, None, None
    result.check("manifest", result.manifest or "", True, "well-formed")
    if manifest.capture_id != capture_id:
        result.problem(f"the manifest describes capture {manifest.capture_id}, not {capture_id}")
    result.status = manifest.capture.status
    result.key_fingerprint = manifest.key_fingerprint
    signature = _check_signature(result, path, data, manifest, archive, keys)
    if signature is not None and result.signature_holds:
        saved = reading.saved_certificates(archive)
        marked = unchecked or set()
        _check_timestamps(
            result,
            path,
            signature,
            manifest,
            archive,
            tsa_roots,
            logged or {},
            saved,
            marked,
            reading.listed(path.parent),
        )
    elif timestamp.tokens_of(path, reading.listed(path.parent)):
        # the signature's failure is the problem already
        result.check("time-stamp", result.manifest or "", False, "not checked: unsigned")
    _check_files(result, manifest, archive, reading, named)
    return result, manifest, data


def _check_timestamps(
    result: CaptureResult,
    path: Path,
    signature: bytes,
    manifest: Manifest,
    archive: Path,
    roots: list[x509.Certificate] | None,
    logged: dict[str, str],
    saved: list[x509.Certificate],
    unchecked: set[str],
    listed: list[str] | None = None,
) -> None:
    result.timestamps = timestamp.check_tokens(
        path,
        signature,
        manifest.signed_at,
        archive,
        roots,
        saved=saved,
        unchecked=unchecked,
        listed=listed,
    )
    present = {check.file for check in result.timestamps}
    prefix = f"{_shown(path, archive)}.sig."
    for gone in sorted(p for p in logged if p.startswith(prefix) and p not in present):
        if gone.endswith(timestamp.TOKEN_SUFFIX):
            result.check("time-stamp", gone, False, "missing")
            result.problem(
                "a time-stamp token the custody log recorded on receipt is missing", file=gone
            )
    for check in result.timestamps:
        expected = logged.get(check.file)
        if check.ok and expected is not None and check.sha256 != expected:
            check.ok = False
            check.problem = (
                f"the token file is not the one received (SHA-256 {check.sha256}, the custody "
                f"log recorded {expected}): changed in the archive"
            )
        detail = check.detail if check.ok else (check.problem or "")
        result.check("time-stamp", check.file, check.ok, detail)
        if not check.ok:
            result.problem(f"time-stamp by {check.authority}: {check.problem}", file=check.file)


def _check_signature(
    result: CaptureResult,
    path: Path,
    data: bytes,
    manifest: Manifest,
    archive: Path,
    keys: dict[str, sign.PublicKey | None],
) -> bytes | None:
    """Check the manifest's signature; the signature's bytes, when they could be read."""
    fp = manifest.key_fingerprint
    sig_path = signature_path(path)
    sig_name = _shown(sig_path, archive)
    key_path = archive / manifest.public_key
    public = None
    try:
        public = sign.load_public(key_path)
    except sign.KeyProblem as exc:
        result.problem(f"the signer's public key cannot be used: {exc}", file=manifest.public_key)
    if public is not None:
        found = sign.fingerprint(public)
        if not result.check("public key", manifest.public_key, found == fp, f"fingerprint {found}"):
            result.problem(
                f"holds another key (fingerprint {found}) than the signer's {fp}",
                file=manifest.public_key,
            )
            public = None
    if keys:
        result.trusted = fp in keys
        if not result.check("trusted signer", fp, result.trusted):
            result.problem(f"signed by {fp}, which is not one of the trusted keys")
    try:
        signature = read_regular(sig_path, SIGNATURE_LENGTH)
    except FileNotFoundError:
        result.check("signature", sig_name, False, "missing")
        result.problem("unsigned: the manifest has no signature", file=sig_name)
        return None
    except OSError as exc:
        result.check("signature", sig_name, False, "unreadable")
        result.problem(f"unsigned: the signature cannot be read ({exc})", file=sig_name)
        return None
    if len(signature) != SIGNATURE_LENGTH:
        result.check("signature", sig_name, False, f"{len(signature)} bytes")
        result.problem(f"not an Ed25519 signature ({len(signature)} bytes, not 64)", file=sig_name)
        return None
    checker = keys.get(fp) or public  # a trusted key file stands in for the archive's copy
    if checker is None:
        result.check("signature", sig_name, False, "no usable public key for the signer")
        return signature
    holds = sign.signature_holds(checker, signature, data)
    source = "the trusted key given" if keys.get(fp) else manifest.public_key
    if not result.check("signature", sig_name, holds, f"Ed25519, key {fp} from {source}"):
        result.problem(
            "the signature does not match the manifest: the manifest or the signature was changed",
            file=sig_name,
        )
    return signature


def signature_problem(path: Path) -> str | None:
    """Why the signature of the manifest at ``path`` does not hold with the archive's copy
    of the signer's key; None when it holds (before time-stamping a signature)."""
    try:
        data = read_regular(path, MANIFEST_LIMIT)
        manifest = Manifest.from_bytes(data)
        public = sign.load_public(archive_of(path) / manifest.public_key)
        signature = read_regular(signature_path(path), SIGNATURE_LENGTH)
    except OSError as exc:
        return f"{exc.filename or path}: {exc.strerror or exc}"
    except (ManifestError, sign.KeyProblem) as exc:
        return str(exc)
    if not sign.signature_holds(public, signature, data):
        return "the signature does not match the manifest"
    return None


def _check_files(
    result: CaptureResult,
    manifest: Manifest,
    archive: Path,
    reading: _Reading,
    named: list[Path],
) -> None:
    by_file: dict[str, list[RecordRow]] = defaultdict(list)
    for row in manifest.records:
        by_file[row.warc_filename].append(row)
    listed = {f.path for f in manifest.files}
    for name in sorted(set(by_file) - listed):
        result.problem("the manifest lists records in a file it does not list", file=name)
    result.files = len(manifest.files)
    result.records = len(manifest.records)
    for entry in manifest.files:
        result.bytes += entry.size
        path = _inside(archive, entry.path)
        if path is None:
            result.problem("the manifest names a file outside the archive", file=entry.path)
            continue
        records = sorted(by_file.get(entry.path, []), key=lambda r: r.warc_offset)
        _check_file(result, path, entry.path, entry.size, entry.sha256, records, reading)
    # files named after the capture that the manifest does not list (added, or copied)
    for extra in named:
        shown = _shown(extra, archive)
        if shown not in listed:
            result.problem(
                "a file of this capture that the signed manifest does not list", file=shown
            )


def _check_file(
    result: CaptureResult,
    path: Path,
    name: str,
    size: int,
    sha256: str,
    records: list[RecordRow],
    reading: _Reading,
) -> None:
    reading.progress.file(path)
    try:
        info = path.stat()
    except OSError:
        result.check("file", name, False, "missing")
        result.problem("missing: the file is not in the archive", file=name)
        return
    if not stat.S_ISREG(info.st_mode):
        result.check("file", name, False, "not a regular file")
        result.problem("not a regular file", file=name)
        return
    actual = info.st_size
    end = 0
    for row in records:
        if row.warc_offset != end:
            result.problem(
                "the signed manifest's records overlap, or leave a gap, before this record",
                file=name,
                offset=row.warc_offset,
                record_id=row.record_id,
            )
        end = row.warc_offset + row.warc_length
    if end != size:
        result.problem(f"the signed records end at {end}, the signed size is {size}", file=name)
    if actual == size:
        try:
            problems, digest = _one_pass(path, name, records, reading)
        except OSError as exc:
            result.check("file", name, False, "unreadable")
            result.problem(f"cannot be read: {exc.strerror or exc}", file=name)
            return
        if digest == sha256:  # every byte as signed; the records' own digests checked
            result.check("file", name, True, f"size {size}, sha256 {sha256}")
            digests = "block and payload" if reading.deep else "block (payload: as signed)"
            result.check(
                "records",
                name,
                not problems,
                f"{counted(len(records), 'record')}; {digests} digests",
            )
            result.problems += [replace(p, capture_id=result.capture_id) for p in problems]
            return
    # it differs: say where, record by record
    result.check("file", name, False, f"size {actual} (signed {size})")
    if actual != size:
        more = "bytes were added" if actual > size else "bytes are missing (truncated?)"
        result.problem(f"size {actual}, signed {size}: {more}", file=name)
    else:
        result.problem(f"SHA-256 differs from the signed {sha256}", file=name)
    result.problems += [
        replace(p, capture_id=result.capture_id)
        for p in _locate(path, name, actual, records, reading.pool)
    ]


def _one_pass(
    path: Path,
    name: str,
    records: list[RecordRow],
    reading: _Reading,
) -> tuple[list[Problem], str]:
    """Read the file once: its SHA-256, and each record's heads and digests.

    The file's SHA-256 runs on one core and each record's block digest on the other.
    A record's payload is part of its block: its digest is compared with the signed
    one and, with ``deep``, recomputed too (a third SHA-256 over the same bytes).
    """
    digest = hashlib.sha256()
    problems: list[Problem] = []
    with open(path, "rb", buffering=0) as fh:
        for row in records:
            try:
                rec = read_stored(
                    path,
                    row.warc_offset,
                    row.warc_length,
                    pool=reading.pool,
                    fh=fh,
                    stored_digest=digest,
                    payload_digest=reading.deep,
                )
            except (Unreadable, OSError) as exc:
                problems.append(_at(row, name, f"unreadable: {exc}"))
                return problems, ""
            problems += _compare_record(rec, row, name)
            reading.progress.advanced(row.warc_length)
        while chunk := fh.read(1024 * 1024):  # bytes after the last record, if any
            digest.update(chunk)
    return problems, digest.hexdigest()


def _locate(
    path: Path, name: str, size: int, records: list[RecordRow], pool: ThreadPoolExecutor
) -> list[Problem]:
    """Which records differ from the signed ones (a second pass, only for a changed file)."""
    problems: list[Problem] = []
    for row in records:
        if row.warc_offset + row.warc_length > size:
            problems.append(_at(row, name, f"missing: the file ends at {size}, before this record"))
            continue
        try:
            rec = read_stored(path, row.warc_offset, row.warc_length, pool=pool)
        except Unreadable as exc:
            problems.append(_at(row, name, f"changed: {exc}"))
            continue
        except OSError as exc:
            problems.append(_at(row, name, f"cannot be read: {exc}"))
            continue
        found = _compare_record(rec, row, name)
        if rec.record_sha256 != row.record_sha256:
            if not found:
                found = [_at(row, name, "changed: its stored bytes differ from the signed ones")]
            problems += found
        else:
            problems += found
    end = max((r.warc_offset + r.warc_length for r in records), default=0)
    if size > end:
        problems.append(
            Problem(f"{size - end} bytes after the last signed record", file=name, offset=end)
        )
    return problems


def _compare_record(rec: StoredRecord, row: RecordRow, name: str) -> list[Problem]:
    problems = []
    record_id = rec.get("WARC-Record-ID")
    if record_id != row.record_id:
        return [_at(row, name, f"changed: the record here is {record_id}, not the signed one")]
    if rec.warc_type != row.warc_type:
        problems.append(_at(row, name, f"WARC-Type is {rec.warc_type!r}, signed {row.warc_type!r}"))
    target = rec.get("WARC-Target-URI")
    if target != row.url:
        problems.append(_at(row, name, f"WARC-Target-URI is {target!r}, signed {row.url!r}"))
    if rec.block_sha256 != row.block_sha256:
        problems.append(_at(row, name, "block SHA-256 differs from the signed one"))
    if rec.payload_sha256 != row.payload_sha256 and (
        rec.payload_sha256 is not None or _stated_payload(rec) != row.payload_sha256
    ):
        problems.append(_at(row, name, "payload SHA-256 differs from the signed one"))
    problems += [_at(row, name, p) for p in rec.problems]
    return problems


def _stated_payload(rec: StoredRecord) -> str | None:
    """The payload digest a record states, when its payload was not hashed: the declared
    WARC-Payload-Digest, or the block's digest when the payload is the whole block."""
    if rec.warc_type in HTTP_TYPES or rec.get("WARC-Payload-Digest"):
        declared = parse_digest(rec.get("WARC-Payload-Digest"))
        return declared[1].hex() if declared and declared[0] == "sha256" else None
    return rec.block_sha256


def _at(row: RecordRow, name: str, message: str) -> Problem:
    return Problem(message, row.capture_id, name, row.warc_offset, row.record_id, row.url)


def _unsigned_capture(
    capture_id: str, files: list[Path], archive: Path, progress: ScanProgress
) -> CaptureResult:
    """Files of one of our captures that has no manifest: unsigned or incomplete."""
    result = CaptureResult(capture_id)
    result.problem(
        "unsigned or incomplete: no signed manifest "
        f"({capture_id}{MANIFEST_SUFFIX}); only internal consistency was checked"
    )
    result.files = len(files)
    for path in sorted(files):
        name = _shown(path, archive)
        records, file_report = ingest.read_file(path, progress)
        result.records += len(records)
        result.bytes += path.stat().st_size
        for offset, message in file_report.problems:
            result.problem(message, file=name, offset=offset)
    return result


def _interrupted(path: Path, archive: Path) -> CaptureResult:
    """A ``.open`` file: a capture that never finished.  Incomplete, not tampered with."""
    match = _OUR_WARC.match(path.name[: -len(OPEN_SUFFIX)])
    result = CaptureResult(match.group(1) if match else path.name, status="incomplete")
    result.files = 1
    with contextlib.suppress(OSError):
        result.bytes = path.stat().st_size
    result.problem(
        "incomplete: the capture was interrupted before it finished (the file still has its "
        "'.open' name); `archiver cleanup --apply` moves it aside",
        file=_shown(path, archive),
    )
    return result


def _verify_foreign(
    path: Path, archive: Path, progress: ScanProgress
) -> tuple[FileResult, tuple[CaptureRow, list[RecordRow]] | None]:
    """A WARC file from another tool: every record read, every declared digest checked."""
    name = _shown(path, archive)
    result = FileResult(name)
    records, file_report = ingest.read_file(path, progress)
    result.records = len(records)
    result.without_digest = sum(
        1 for r in records if not r.get("WARC-Block-Digest") and not r.get("WARC-Payload-Digest")
    )
    info = next((r for r in records if r.warc_type == "warcinfo"), None)
    claimed = ingest.warcinfo_fields(info.block if info else None).get("capture-id", "")
    result.claims = claimed if _CAPTURE_ID.match(claimed) else None
    for found, said in ((file_report.problems, result.problems), (file_report.notes, result.notes)):
        for offset, message in found:
            rec = next((r for r in records if r.offset == offset), None)
            record_id = rec.get("WARC-Record-ID") if rec else None
            if record_id and message.startswith(f"{record_id}: "):
                message = message[len(record_id) + 2 :]
            said.append(
                Problem(
                    message,
                    file=name,
                    offset=offset,
                    record_id=record_id,
                    url=rec.target_uri if rec else None,
                )
            )
    rows = None
    inside = path.resolve().is_relative_to(archive.resolve())
    if inside and path.parent.name == ingest.IMPORTED_DIR and records:
        sha = ingest.file_sha256(path)
        collection = path.parent.parent.name
        rows = ingest.imported_rows(archive, path, sha, records, file_report, collection)
        result.imported_as = rows[0].capture_id
        result.sha256 = sha
    return result, rows


def _changed_import(result: FileResult, path: Path, capture_id: str) -> None:
    """The file the index names for ``capture_id`` no longer has the content the id was
    made from: changed since it was imported (or the index names another file)."""
    try:
        now = f"sha256 {ingest.file_sha256(path)}"
    except OSError as exc:
        now = f"unreadable ({exc.strerror or exc})"
    result.problems.append(
        Problem(
            f"the index names this file as imported capture {capture_id}, made from a file "
            f"whose SHA-256 starts with {capture_id.removeprefix('import-')}; this one's is "
            f"{now}: it changed after it was imported",
            capture_id,
            result.path,
        )
    )
    result.imported_as = None  # its rows are not this content's


# revisits ---------------------------------------------------------------------------
@dataclass
class _Original:
    """A record a revisit stands for, in a capture whose signature holds."""

    row: RecordRow
    capture_id: str
    signer: str  # the fingerprint of the key that signed its capture
    # its payload's SHA-256 recomputed from the stored bytes, or why it could not be
    recomputed: tuple[str | None, str] | None = None

    def where(self) -> str:
        return (
            f"record {self.row.record_id} of capture {self.capture_id} "
            f"({self.row.warc_filename} @ {self.row.warc_offset})"
        )


def _resolve_revisits(
    report: Report,
    signed: dict[str, Manifest],
    archive: Path,
    keys: dict[str, sign.PublicKey | None],
) -> None:
    """Every revisit of a signed capture must stand for a record that holds its payload.

    The original is looked for in the captures verified here, then (through the
    index) in the rest of the archive, where its manifest's signature is checked.  It
    counts only when the key that signed it is the one that signed the revisit's
    capture, or a trusted key (--trusted-key): a capture re-signed by another key
    vouches for nothing.  Its stored bytes are read, and its payload digest
    recomputed from them (never taken from its head): a body rewritten under the
    digest it declared fails.
    """
    held: dict[str, list[_Original]] = defaultdict(list)  # every candidate, not the first
    for capture_id, manifest in signed.items():
        for row in manifest.records:
            if row.warc_type != "revisit":
                held[row.record_id].append(_Original(row, capture_id, manifest.key_fingerprint))
    results = {c.capture_id: c for c in report.captures}
    wanted = {  # looked up elsewhere all at once: the index and each manifest read once
        row.refers_to
        for manifest in signed.values()
        for row in manifest.records
        if row.warc_type == "revisit"
        and row.refers_to
        and not any(
            o.signer == manifest.key_fingerprint or o.signer in keys
            for o in held.get(row.refers_to, [])
        )
    }
    elsewhere = _signed_originals(archive, wanted, keys, set(signed)) if wanted else {}
    for capture_id, manifest in signed.items():
        revisits = [r for r in manifest.records if r.warc_type == "revisit"]
        for row in revisits:
            refers_to = row.refers_to or ""
            found = held.get(refers_to, []) + elsewhere.get(refers_to, [])
            problem = _revisit_problem(row, manifest.key_fingerprint, found, archive, keys)
            if problem is not None:
                results[capture_id].problems.append(_at(row, row.warc_filename, problem))
        if revisits:
            results[capture_id].check(
                "revisits", capture_id, results[capture_id].ok, f"{len(revisits)} resolved"
            )


def _revisit_problem(
    row: RecordRow,
    signer: str,
    found: list[_Original],
    archive: Path,
    keys: dict[str, sign.PublicKey | None],
) -> str | None:
    """What is wrong with the revisit ``row`` of a capture signed by ``signer``, whose
    original is among ``found``; None when an original vouched for holds its payload."""
    refers_to = row.refers_to
    if not found:
        return (
            f"a revisit of {refers_to}, which no signed capture of the archive holds: the "
            "bytes it stands for are missing"
        )
    vouched = [o for o in found if o.signer == signer or o.signer in keys]
    if not vouched:
        other = found[0]
        who = "this capture's signer" + (" nor a trusted key" if keys else "")
        return (
            f"a revisit of {refers_to}, whose original, {other.where()}, is signed by "
            f"{other.signer}, not by {who} ({signer}): nothing this capture's signer "
            "vouched for holds the bytes it stands for"
        )
    original = vouched[0]
    if original.row.payload_sha256 != row.payload_sha256:
        return (
            f"a revisit of {refers_to}, whose payload digest {original.row.payload_sha256} "
            f"(signed, {original.where()}) is not the revisit's {row.payload_sha256}"
        )
    payload, why = _recompute(original, archive)
    if why:
        return f"a revisit of {refers_to}, whose original, {original.where()}, {why}"
    if payload != row.payload_sha256:
        return (
            f"a revisit of {refers_to}, whose original, {original.where()}, holds a payload "
            f"whose SHA-256, recomputed from its stored bytes, is {payload}, not the "
            f"revisit's {row.payload_sha256}: its body was changed"
        )
    return None


def _recompute(original: _Original, archive: Path) -> tuple[str | None, str]:
    """The SHA-256 of the original's payload, recomputed from its stored bytes (read
    once per record), or why it could not be: unreadable, or not the signed bytes."""
    if original.recomputed is None:
        row = original.row
        target = _inside(archive, row.warc_filename)
        if target is None:
            original.recomputed = (None, "is outside the archive")
        else:
            try:
                rec = read_stored(target, row.warc_offset, row.warc_length, block_digest=False)
            except (Unreadable, OSError) as exc:
                original.recomputed = (None, f"cannot be read: {exc}")
            else:
                if rec.record_sha256 != row.record_sha256:
                    why = "has stored bytes that differ from the signed ones"
                    original.recomputed = (None, why)
                elif rec.payload_sha256 is None:
                    original.recomputed = (None, "has no payload whose digest can be recomputed")
                else:
                    original.recomputed = (rec.payload_sha256, "")
    return original.recomputed


def _signed_originals(
    archive: Path,
    record_ids: set[str],
    keys: dict[str, sign.PublicKey | None],
    skip: set[str],
) -> dict[str, list[_Original]]:
    """The records ``record_ids`` in the other captures of the archive (found through
    the index; not those in ``skip``) whose manifest's signature holds: with a trusted
    key file given for the signer, with it; else with the archive's copy of the
    signer's key.  The index and each manifest are read once, however many revisits."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    ids = pa.array(sorted(record_ids), pa.string())
    capture_ids: dict[str, set[str]] = defaultdict(set)  # capture id -> record ids
    for path in Index(archive).files("records"):
        try:
            table = pq.read_table(path, columns=["record_id", "capture_id"])
            found = table.filter(pc.is_in(table["record_id"], value_set=ids))
        except Exception:
            continue
        for record_id, capture_id in zip(
            found.column("record_id").to_pylist(),
            found.column("capture_id").to_pylist(),
            strict=True,
        ):
            capture_ids[str(capture_id)].add(str(record_id))
    out: dict[str, list[_Original]] = defaultdict(list)
    for capture_id in sorted(capture_ids):
        if capture_id in skip or not _CAPTURE_ID.match(capture_id):
            continue
        for path in _capture_files(archive, capture_id)[0]:
            try:
                data = read_regular(path, MANIFEST_LIMIT)
                manifest = Manifest.from_bytes(data)
            except (OSError, ManifestError):
                continue
            probe = CaptureResult(capture_id)
            _check_signature(probe, path, data, manifest, archive, keys)
            if not probe.signature_holds:
                continue
            for row in manifest.records:
                if row.record_id in capture_ids[capture_id] and row.warc_type != "revisit":
                    out[row.record_id].append(_Original(row, capture_id, manifest.key_fingerprint))
    return out


# the index --------------------------------------------------------------------------
def _verify_index(
    todo: _Plan,
    report: Report,
    signed: dict[str, Manifest],
    digests: dict[str, str],
    imported: dict[str, tuple[CaptureRow, list[RecordRow]]],
    unchecked: set[str],
) -> None:
    index = Index(todo.archive)
    scope = None if todo.whole_archive else set(signed) | set(imported)
    if scope is not None and not scope:
        return
    if index.needs_repair():
        report.index_problems.append(
            Problem(
                "an interrupted rebuild or compaction left files behind (index.new, index.old "
                "or .compact-*.replaces): the next index command finishes or undoes it",
                file=INDEX_DIR,
            )
        )
    captures_rows = _rows(index, "captures", scope, report.index_problems)
    records_rows = _rows(index, "records", scope, report.index_problems)
    by_capture: dict[str, list[tuple[RecordRow, str]]] = defaultdict(list)
    for row, name in records_rows:
        by_capture[row.capture_id].append((row, name))
    capture_rows: dict[str, list[tuple[CaptureRow, str]]] = defaultdict(list)
    for crow, name in captures_rows:
        capture_rows[crow.capture_id].append((crow, name))
    results = {c.capture_id: c for c in report.captures}
    # an imported capture's notes are said with its file
    files = {f.imported_as: f for f in report.unsigned if f.imported_as is not None}
    for capture_id in unchecked:  # nothing signed to compare them with; said already
        capture_rows.pop(capture_id, None)
        by_capture.pop(capture_id, None)
        if capture_id in results and capture_id in report.in_progress:
            results[capture_id].check("index rows", capture_id, True, "not checked: running")
        elif capture_id in results:
            results[capture_id].check(
                "index rows", capture_id, False, "not checked: no valid signed manifest"
            )
    expected: dict[str, tuple[CaptureRow, list[RecordRow]]] = {
        cid: (m.index_row(digests[cid]), list(m.records)) for cid, m in signed.items()
    }
    expected.update(imported)
    for capture_id, (want_capture, want_records) in sorted(expected.items()):
        problems: list[Problem] = []
        notes: list[Problem] = []
        if capture_id not in capture_rows and capture_id not in by_capture:
            problems.append(
                Problem(
                    "no index rows for this capture: `archiver index rebuild` restores them "
                    "from the WARC files",
                    capture_id,
                    f"index/captures/{capture_id}.parquet, index/records/{capture_id}.parquet",
                )
            )
        else:
            _compare_all_rows(
                problems,
                capture_id,
                want_capture,
                want_records,
                capture_rows,
                by_capture,
                imported=capture_id in imported,
                notes=notes,
            )
        checked = counted(1 + len(want_records), "row")
        if notes:
            checked += f" ({counted(len(notes), 'stale URL')}: `archiver index rebuild`)"
        if capture_id in files:
            files[capture_id].notes += notes
        else:  # not reached: an imported capture is compared with its file
            problems += notes
        target = results.get(capture_id)
        if target is not None:
            target.check("index rows", capture_id, not problems, checked)
            target.problems += problems
        else:
            report.index_checks.append(Check("index rows", capture_id, not problems, checked))
            report.index_problems += problems
    _unclaimed_rows(report, results, capture_rows, by_capture)
    if todo.whole_archive:
        report.index_checks.append(
            Check(
                "index",
                str(index.root),
                not report.index_problems,
                f"{counted(len(captures_rows), 'captures row')}, "
                f"{counted(len(records_rows), 'records row')}",
            )
        )


def _compare_all_rows(
    problems: list[Problem],
    capture_id: str,
    want_capture: CaptureRow,
    want_records: list[RecordRow],
    capture_rows: dict[str, list[tuple[CaptureRow, str]]],
    by_capture: dict[str, list[tuple[RecordRow, str]]],
    *,
    imported: bool = False,
    notes: list[Problem] | None = None,
) -> None:
    _compare_rows(
        problems,
        capture_id,
        "captures",
        {capture_id: want_capture},
        capture_rows.pop(capture_id, []),
        key=lambda r: r.capture_id,
        imported=imported,
        notes=notes,
    )
    _compare_rows(
        problems,
        capture_id,
        "records",
        {r.record_id: r for r in want_records},
        by_capture.pop(capture_id, []),
        key=lambda r: r.record_id,
        imported=imported,
        notes=notes,
    )


def _unclaimed_rows(
    report: Report,
    results: dict[str, CaptureResult],
    capture_rows: dict[str, list[tuple[CaptureRow, str]]],
    by_capture: dict[str, list[tuple[RecordRow, str]]],
) -> None:
    """Rows left over: no signed manifest (nor imported file) stands behind them."""
    for capture_id in sorted(set(capture_rows) | set(by_capture)):
        rows = capture_rows.get(capture_id, [])
        names = sorted({n for _, n in rows} | {n for _, n in by_capture.get(capture_id, [])})
        problem = Problem(
            "index rows claim a capture that no signed manifest vouches for",
            capture_id,
            file=", ".join(names),
        )
        if capture_id in results:
            results[capture_id].problems.append(problem)
        else:
            report.index_problems.append(problem)


def _rows(
    index: Index, table: str, scope: set[str] | None, problems: list[Problem]
) -> list[tuple[Any, str]]:
    """Every row of ``table`` (of the captures in ``scope``), with the file it is in.

    A file that is not Parquet, or whose columns are not exactly the schema's (an
    added column would reach every query), is a problem; its rows are not read.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    expected = schema.arrow_schema(table)
    out: list[tuple[Any, str]] = []
    for path in index.files(table):
        name = f"{INDEX_DIR}/{table}/{path.name}"
        try:
            found = pq.read_schema(path)
            strange = [
                f"{f.name} ({f.type})"
                for f in found
                if f.name not in expected.names or expected.field(f.name).type != f.type
            ]
            if strange:
                problems.append(
                    Problem("columns not in the schema: " + ", ".join(strange), file=name)
                )
                continue
            data = read_table_file(path, table)
            if scope is not None:
                import pyarrow.compute as pc

                data = data.filter(pc.is_in(data.column("capture_id"), pa.array(sorted(scope))))
            rows = from_table(table, data)
        except (OSError, ValueError, TypeError, pa.ArrowException) as exc:
            # damaged: not Parquet, a page that does not decode, text that is not UTF-8
            problems.append(Problem(f"not a readable index file: {exc}", file=name))
            continue
        out += [(row, name) for row in rows]
    return out


def _compare_rows(
    problems: list[Problem],
    capture_id: str,
    table: str,
    want: dict[str, Any],
    have: list[tuple[Any, str]],
    key: Any,
    *,
    imported: bool = False,  # the rows are compared with what the imported file gives
    notes: list[Problem] | None = None,
) -> None:
    """Each row of ``have`` against the one ``want`` holds for its key: a difference is
    a problem, except (in ``notes``, when given) an imported file's URL that an index
    written before the angle brackets were dropped holds as wget wrote it."""
    seen: set[str] = set()
    for row, name in have:
        k = key(row)
        url = getattr(row, "url", None)
        record_id = getattr(row, "record_id", None)
        if k in seen:
            problems.append(
                Problem(f"a second {table} row", capture_id, name, None, record_id, url)
            )
            continue
        seen.add(k)
        signed = want.get(k)
        if signed is None:
            problems.append(
                Problem(
                    f"a {table} row the signed manifest does not list",
                    capture_id,
                    name,
                    None,
                    record_id,
                    url,
                )
            )
            continue
        got, expected = row_to_json(row, table), row_to_json(signed, table)
        for column, value in got.items():
            if value != expected[column]:
                if imported and notes is not None and _bracketed(column, value, expected[column]):
                    notes.append(
                        Problem(
                            f"{table} column {column} is {_short(value)} (as an index "
                            f"written before URLs lost their angle brackets holds it), "
                            f"reading the imported file gives {_short(expected[column])}: "
                            "`archiver index rebuild` rewrites the rows from the file",
                            capture_id,
                            name,
                            getattr(signed, "warc_offset", None),
                            record_id,
                            getattr(signed, "url", url),
                        )
                    )
                    continue
                says = (
                    f"reading the imported file gives {_short(expected[column])} "
                    "(`archiver index rebuild` rewrites the rows from the file)"
                    if imported
                    else f"the signed manifest says {_short(expected[column])}"
                )
                problems.append(
                    Problem(
                        f"{table} column {column} is {_short(value)}, {says}",
                        capture_id,
                        name,
                        getattr(signed, "warc_offset", None),
                        record_id,
                        getattr(signed, "url", url),
                    )
                )
    for k in sorted(set(want) - seen):
        signed = want[k]
        problems.append(
            Problem(
                f"no {table} row in the index (run `archiver index rebuild` to restore it)",
                capture_id,
                f"index/{table}",
                getattr(signed, "warc_offset", None),
                getattr(signed, "record_id", None),
                getattr(signed, "url", None),
            )
        )


_URL_COLUMNS = frozenset({"url", "seed_url", "final_url"})


def _bracketed(column: str, value: Any, expected: Any) -> bool:
    """Whether an imported file's row holds in ``column`` the WARC-Target-URI with the
    angle brackets wget wrote around it, where reading the file now gives it bare: the
    index of an archive imported into before the brackets were dropped.  The file and
    its digests are what they were; only the row is stale."""
    return (
        column in _URL_COLUMNS
        and isinstance(value, str)
        and isinstance(expected, str)
        and value.startswith("<")
        and value.endswith(">")
        and bare_target_uri(value) == expected
    )


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 120 else text[:117] + "..."


def _inside(archive: Path, relative: str) -> Path | None:
    """``archive / relative`` if that stays inside the archive, else None."""
    if relative.startswith("/") or "\\" in relative:
        return None
    path = archive / relative
    if ".." in Path(relative).parts:
        return None
    return path


def _shown(path: Path, archive: Path) -> str:
    """A path as reports show it: relative to the archive when inside it."""
    try:
        return path.resolve().relative_to(archive.resolve()).as_posix()
    except ValueError:
        return str(path)
