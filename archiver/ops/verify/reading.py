"""How verify reads the archive's files: regular files only, paths kept inside the
archive and shown relative to it, and the reading state shared by every capture."""

from __future__ import annotations

import errno
import os
import stat
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509

from archiver.ops.ingest import ScanProgress
from archiver.trust import timestamp


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
