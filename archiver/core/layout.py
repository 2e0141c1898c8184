"""Names in an archive that every layer shares: the capture id, and the capture locks.

Captures share ``.capture.lock`` while they run and cleanup needs it alone; each
capture also holds ``.running/<capture id>.lock`` until it has been signed, indexed and
logged, so verify can tell a capture still running from one that was interrupted.
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from archiver.core.atomic import flocked

CAPTURE_ID = re.compile(r"^\d{14}-[0-9a-f]{10}$")  # UTC start time, random digits
CAPTURE_LOCK = ".capture.lock"
RUNNING_DIR = ".running"  # <capture id>.lock: held by that capture while it runs
RUNNING_SUFFIX = ".lock"


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
