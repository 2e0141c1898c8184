"""What crashes and interruptions leave in an archive, and putting it aside.

A capture killed mid-way leaves ``.open`` WARC files (whole records only, but not a
whole capture), perhaps spooled bodies in ``.tmp/`` and temporary ``.tmp-*`` files;
one killed between publishing its WARC files and signing them leaves files no
signed manifest covers; an interrupted rebuild or compaction leaves index debris.
``archiver cleanup`` lists all of it; with ``--apply`` it moves what holds captured
bytes to ``incomplete/`` (kept, out of the archive proper: nothing captured is
lost), deletes temporary files, drops the index rows of what it moved and finishes
the index's own repairs.  It refuses while a capture is running in the archive.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from archiver.core.atomic import TEMP_MARK, flocked
from archiver.index.store import COMPACT_PREFIX, Index
from archiver.trust.manifest import MANIFEST_SUFFIX, signature_path
from archiver.warc.writer import OPEN_SUFFIX

WARC_DIR = "warc"
ASIDE_DIR = "incomplete"
SPOOL_DIR = ".tmp"
CAPTURE_LOCK = ".capture.lock"
RUNNING_DIR = ".running"  # <capture id>.lock: held by that capture while it runs
RUNNING_SUFFIX = ".lock"


class CaptureRunning(Exception):
    """A capture is writing to the archive: its files are not leftovers."""


@dataclass(frozen=True)
class Leftover:
    path: Path
    what: str  # why it is a leftover
    action: str  # "move aside", "delete" or "repair"
    capture_id: str | None = None

    def to_json(self, archive: Path) -> dict[str, Any]:
        return {
            "path": _shown(self.path, archive),
            "what": self.what,
            "action": self.action,
            "capture_id": self.capture_id,
        }


@dataclass
class CleanupReport:
    archive: Path
    leftovers: list[Leftover] = field(default_factory=list)
    applied: bool = False
    rebuilt_index: bool = False
    repaired: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "archive": str(self.archive),
            "applied": self.applied,
            "leftovers": [x.to_json(self.archive) for x in self.leftovers],
            "index_rebuilt": self.rebuilt_index,
            "index_repaired": self.repaired,
        }


def capture_lock(
    archive: Path, *, exclusive: bool, blocking: bool = True, reading: bool = False
) -> Any:
    """Captures share this lock while they run; cleanup needs it alone (``reading``: a
    dry run, which works on a copy it may not write, see :func:`archiver.core.atomic.open_lock`)."""
    return flocked(archive / CAPTURE_LOCK, exclusive=exclusive, blocking=blocking, reading=reading)


@contextlib.contextmanager
def capture_running(archive: Path, capture_id: str) -> Iterator[None]:
    """Held by one capture while it runs (``.running/<capture id>.lock``, locked
    exclusively, removed at the end): verify tells a capture still running from one
    that was interrupted by it (see :func:`running_captures`)."""
    path = archive / RUNNING_DIR / f"{capture_id}{RUNNING_SUFFIX}"
    with flocked(path, exclusive=True):
        try:
            yield
        finally:  # removed while still held: a reader that opened it sees it free
            with contextlib.suppress(OSError):
                path.unlink()


def running_captures(archive: Path) -> set[str]:
    """The ids of the captures running in ``archive`` now: those holding their lock.

    Only reads (a read-only copy too): each lock file is opened read-only and tried
    with a shared lock, which a running capture's exclusive one refuses.  A lock file
    nobody holds was left by a capture that was killed: it is not running.
    """
    import fcntl

    try:
        entries = sorted((archive / RUNNING_DIR).iterdir())
    except OSError:
        return set()
    out: set[str] = set()
    from archiver.trust.manifest import CAPTURE_ID

    for path in entries:
        if not CAPTURE_ID.match(path.name.removesuffix(RUNNING_SUFFIX)):
            continue
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        except OSError:
            continue
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                out.add(path.name.removesuffix(RUNNING_SUFFIX))
            except OSError:
                continue
        finally:
            os.close(fd)
    return out


def find(archive: Path) -> list[Leftover]:
    """Every leftover in ``archive``, in a stable order."""
    out: list[Leftover] = []
    root = archive / WARC_DIR
    files = sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else []
    captures: dict[str, list[Path]] = {}
    for path in files:
        name = path.name
        if name.startswith(TEMP_MARK):
            out.append(Leftover(path, "a temporary file", "delete"))
        elif name.endswith(OPEN_SUFFIX):
            out.append(
                Leftover(path, "a WARC file of an interrupted capture", "move aside", _id_of(name))
            )
        elif not _imported(path, root) and _id_of(name) is not None:
            captures.setdefault(_id_of(name) or "", []).append(path)
    for capture_id, paths in sorted(captures.items()):
        manifests = [p for p in paths if p.name.endswith(MANIFEST_SUFFIX)]
        signed = any(signature_path(m).is_file() for m in manifests)
        if signed:
            continue
        what = (
            "a capture whose signing did not finish"
            if manifests
            else "a capture with no signed manifest"
        )
        out += [Leftover(p, what, "move aside", capture_id) for p in paths]
    for part in ("index", "keys"):
        folder = archive / part
        if folder.is_dir():
            out += [
                Leftover(p, "a temporary file", "delete")
                for p in sorted(folder.rglob(f"{TEMP_MARK}*"))
            ]
    running = archive / RUNNING_DIR  # cleanup runs alone: no capture holds these
    if running.is_dir():
        out += [
            Leftover(p, "the lock file of a capture that did not finish", "delete")
            for p in sorted(running.iterdir())
        ]
    spool = archive / SPOOL_DIR
    if spool.is_dir():
        out += [
            Leftover(p, "a spooled body of an interrupted capture", "delete")
            for p in sorted(spool.iterdir())
        ]
    if Index(archive).needs_repair():
        out.append(Leftover(archive / "index", "an interrupted rebuild or compaction", "repair"))
    return out


def cleanup(archive: Path, *, apply: bool) -> CleanupReport:
    """List the leftovers; with ``apply``, put them aside (see the module doc)."""
    report = CleanupReport(archive)
    with capture_lock(archive, exclusive=True, blocking=False, reading=not apply) as alone:
        if not alone:
            raise CaptureRunning(f"a capture is running in {archive}; clean up when it ends")
        report.leftovers = find(archive)
        if not apply:
            return report
        moved: set[str] = set()
        for item in report.leftovers:
            if item.action == "delete":
                _delete(item.path)
            elif item.action == "move aside":
                target = archive / ASIDE_DIR / item.path.relative_to(archive)
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(item.path, _free(target))
                if item.capture_id:
                    moved.add(item.capture_id)
        index = Index(archive)
        report.repaired = index.repair() if index.needs_repair() else []
        report.rebuilt_index = _drop_rows(archive, moved)
        report.applied = True
    return report


def _drop_rows(archive: Path, captures: set[str]) -> bool:
    """Remove the index rows of captures moved aside; rebuild if merged files hold them."""
    if not captures:
        return False
    index = Index(archive)
    merged = False
    for table in ("captures", "records"):
        for path in index.files(table):
            stem = path.name.removesuffix(".parquet")
            if stem in captures:
                path.unlink()
            elif stem.startswith(COMPACT_PREFIX):
                merged = True  # a compacted file: its rows may include them
    if merged:
        from archiver.ops.ingest import rebuild

        rebuild(archive)
    return merged


def _imported(path: Path, root: Path) -> bool:
    """Whether ``path`` is an imported file (``warc/<collection>/imported/<file>``)."""
    return path.parent.name == "imported" and path.parent.parent.parent == root


def _id_of(name: str) -> str | None:
    from archiver.trust.manifest import CAPTURE_ID

    stem = name.split(".", 1)[0]
    candidate = stem[:25]
    return candidate if CAPTURE_ID.match(candidate) else None


def _delete(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _free(target: Path) -> Path:
    """``target``, or a numbered variant of it if something is there already."""
    candidate, n = target, 1
    while candidate.exists():
        candidate = target.with_name(f"{target.name}.{n}")
        n += 1
    return candidate


def _shown(path: Path, archive: Path) -> str:
    try:
        return path.relative_to(archive).as_posix()
    except ValueError:
        return str(path)
