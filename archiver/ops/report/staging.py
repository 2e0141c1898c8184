"""Where a report's documents go: checked and reserved before any work, put in place
all together at the end, or none at all.

Before the verification (which may take minutes), each output's folder is made if
need be and a temporary file created beside the output (the name
:func:`archiver.core.atomic.atomic_path` uses, so that ``archiver cleanup`` knows it):
a folder that cannot be written, a path through a file, ``/proc``, are said then, and
nothing is done.  Each document is written into its temporary file; once all are
written, each is renamed to its name.  On any error (or Ctrl-C) every temporary file is
removed and the folders made for them too: a document never appears unless the
custody event that records it is about to be written.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from archiver.core.atomic import TEMP_MARK, fsync_dir, rename_no_replace
from archiver.core.errors import Failure, UsageProblem


@dataclass
class Slot:
    """One document's place: its name, its format, the temporary file that stands for
    it, and the folders made for it (to remove again when nothing is written)."""

    final: Path
    kind: str
    temp: Path
    made: list[Path] = field(default_factory=list)


def _why(exc: OSError) -> str:
    return exc.strerror or str(exc)


def place_problem(archive_dir: Path, output: Path) -> str | None:
    """Why ``output`` is no place for a report (said before any work), or None: inside
    the archive (anywhere: a report is not evidence, and its custody/, tsa/ and root
    are the archive's own), or below a file that is not a folder."""
    with contextlib.suppress(OSError, RuntimeError):
        if output.resolve().is_relative_to(archive_dir.resolve()):
            return (
                f"refusing to write {output} inside the archive {archive_dir}: "
                "write the report outside it"
            )
    for parent in output.parents:  # the nearest first
        if parent.is_symlink() or parent.exists():
            if not parent.is_dir():
                return f"cannot write {output}: {parent} is not a directory"
            return None
    return None


def reserve(targets: list[tuple[Path, str]]) -> list[Slot]:
    """A temporary file beside each output (its folders made if need be), or a
    UsageProblem naming the output whose folder cannot be written (nothing left)."""
    slots: list[Slot] = []
    try:
        for output, kind in targets:
            temp = output.with_name(f"{TEMP_MARK}{secrets.token_hex(6)}-{output.name}.part")
            slot = Slot(output, kind, temp)
            slots.append(slot)
            try:
                slot.made = _folders(output.parent)
                os.close(os.open(slot.temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
            except NotADirectoryError as exc:
                raise UsageProblem(
                    f"cannot write {output}: {exc.filename or output.parent} is not a directory",
                    hint="--output",
                ) from exc
            except OSError as exc:
                raise UsageProblem(
                    f"cannot write {output}: {_why(exc)} (in {output.parent})", hint="--output"
                ) from exc
    except BaseException:
        release(slots)
        raise
    return slots


def _folders(folder: Path) -> list[Path]:
    """Make ``folder`` and its missing parents; those made, the deepest first."""
    missing: list[Path] = []
    at = folder
    while not (at.is_dir() or at.is_symlink()) and at != at.parent:
        missing.append(at)
        at = at.parent
    made: list[Path] = []
    try:
        for path in reversed(missing):
            path.mkdir()
            made.insert(0, path)
    except BaseException:
        _remove_folders(made)
        raise
    return made


def _remove_folders(made: list[Path]) -> None:
    for path in made:  # the deepest first; a folder something else wrote into stays
        with contextlib.suppress(OSError):
            path.rmdir()


def fill(slot: Slot, data: bytes) -> None:
    """Write a document into its temporary file (synced): a Failure naming it if not."""
    try:
        with open(slot.temp, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
    except OSError as exc:
        raise Failure(f"cannot write {slot.final}: {_why(exc)}") from exc


def commit(slots: list[Slot], overwrite: bool) -> None:
    """Give each temporary file its name: all, or (an output that appeared meanwhile,
    a rename refused) none of those this call put in place.  (Renames within a folder
    do not fail but for those reasons; a file replaced with ``overwrite`` cannot be
    given back.)"""
    done: list[Slot] = []
    for slot in slots:
        try:
            if overwrite:
                os.replace(slot.temp, slot.final)
            else:
                rename_no_replace(slot.temp, slot.final)
        except FileExistsError as exc:
            _undo(done, overwrite)
            raise UsageProblem(
                f"{slot.final} appeared meanwhile; nothing written", hint="--output"
            ) from exc
        except OSError as exc:
            _undo(done, overwrite)
            raise Failure(f"cannot write {slot.final}: {_why(exc)}") from exc
        done.append(slot)
    for folder in {slot.final.parent for slot in slots}:
        with contextlib.suppress(OSError):
            fsync_dir(folder)


def _undo(done: list[Slot], overwrite: bool) -> None:
    """Take back the documents just put in place (never a file that was there before:
    with ``overwrite`` it is replaced already, and stays the new document)."""
    if overwrite:
        return
    for slot in done:
        with contextlib.suppress(OSError):
            slot.final.unlink()


def release(slots: list[Slot]) -> None:
    """Remove what is left of the temporary files, and the folders made for them if
    nothing else is in them."""
    for slot in slots:
        with contextlib.suppress(OSError):
            slot.temp.unlink(missing_ok=True)
    for slot in reversed(slots):  # a folder made for the first may hold the second's
        _remove_folders(slot.made)
