"""Files that appear whole or not at all: written under a temporary name, fsynced, renamed."""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

TEMP_MARK = ".tmp-"


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(final: Path, *, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``final``; on success it becomes ``final``.

    The caller writes the temporary file; it is fsynced and renamed into place,
    and the directory fsynced.  On an exception the temporary file is removed.
    Without ``overwrite`` an existing ``final`` is an error (FileExistsError).
    """
    final.parent.mkdir(parents=True, exist_ok=True)
    temp = final.with_name(f"{TEMP_MARK}{secrets.token_hex(6)}-{final.name}.part")
    try:
        yield temp
        fsync_file(temp)
        if overwrite:
            os.replace(temp, final)
        else:
            os.link(temp, final)  # fails if final exists, unlike rename
            os.unlink(temp)
        fsync_dir(final.parent)
    finally:
        temp.unlink(missing_ok=True)
