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

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from archiver.core.atomic import TEMP_MARK
from archiver.core.errors import Failure
from archiver.core.layout import (  # the capture locks; cleanup.capture_lock and the rest
    CAPTURE_ID,
    RUNNING_DIR,
    capture_lock,
    capture_running,
    running_captures,
)
from archiver.index.store import COMPACT_PREFIX, Index
from archiver.trust.manifest import MANIFEST_SUFFIX, signature_path
from archiver.warc.writer import OPEN_SUFFIX

__all__ = ["capture_lock", "capture_running", "running_captures"]  # kept here too

WARC_DIR = "warc"
ASIDE_DIR = "incomplete"
SPOOL_DIR = ".tmp"


class CaptureRunning(Failure):
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
