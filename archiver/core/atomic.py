"""Files that appear whole or not at all: written under a temporary name, fsynced, renamed."""

from __future__ import annotations

import contextlib
import ctypes
import errno
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


_RENAME_NOREPLACE = 1  # <linux/fs.h>
_AT_FDCWD = -100


def _renameat2_noreplace(source: Path, target: Path) -> None:
    """Linux renameat2(RENAME_NOREPLACE): rename unless the target exists, atomically."""
    libc = ctypes.CDLL(None, use_errno=True)
    renameat2 = getattr(libc, "renameat2", None)
    if renameat2 is None:
        raise OSError(errno.ENOSYS, "renameat2 is not available")
    result = renameat2(
        _AT_FDCWD, os.fsencode(source), _AT_FDCWD, os.fsencode(target), _RENAME_NOREPLACE
    )
    if result != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code), str(target))


def rename_no_replace(source: Path, target: Path) -> None:
    """Give ``source`` the name ``target``, never replacing an existing ``target``.

    A hard link does it atomically on POSIX file systems; file systems without hard
    links (exFAT, FAT, some network shares: common on evidence drives) get
    renameat2(RENAME_NOREPLACE), and where even that is missing, a rename after a
    check that the name is free.  FileExistsError when ``target`` exists.
    """
    try:
        os.link(source, target)
    except FileExistsError:
        raise
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EMLINK):
            raise
    else:
        os.unlink(source)
        return
    try:
        _renameat2_noreplace(source, target)
        return
    except FileExistsError:
        raise
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP):
            raise
    if target.exists():
        raise FileExistsError(errno.EEXIST, "file exists", str(target))
    os.rename(source, target)


ARCHIVE_PARTS = ("warc", "index", "keys", "custody", "tsa")  # where no exported file may land


def output_problem(archive_dir: Path, output: Path, overwrite: bool) -> str | None:
    """Why ``output`` may not be written (a user's export: query results, an extracted
    payload), or None.  Nothing is written inside the archive's evidence, index or keys,
    and no existing file is replaced unless ``overwrite``."""
    if str(output) == "-":
        return "the output must be a file (it appears only once complete)"
    target = output.resolve()
    for inside in ARCHIVE_PARTS:
        if target.is_relative_to((archive_dir / inside).resolve()):
            return f"refusing to write {output} inside the archive ({inside}/)"
    if output.is_dir():
        return f"{output} is a directory; give a file name"
    if output.exists() and not overwrite:
        return f"{output} exists; remove it, choose another name or use --force"
    return None


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
            rename_no_replace(temp, final)
        fsync_dir(final.parent)
    finally:
        temp.unlink(missing_ok=True)


# what opening or creating a file says on a copy that cannot be written
READ_ONLY_ERRNOS = frozenset({errno.EROFS, errno.EACCES, errno.EPERM})


def unwritable(directory: Path) -> str | None:
    """Why nothing can be written in ``directory``, or None when it can (or does not
    exist yet: writing will create it).

    A read-only mount (a write-blocked evidence drive) is told by the mount's flags,
    which hold for root too; a folder this user may not write, by its permissions.
    Other refusals (an immutable flag, a server that squashes root) show only on
    trying: :func:`open_lock` falls back then, and callers treat those errors alike.
    """
    try:
        flags = os.statvfs(directory).f_flag
    except OSError:
        return None
    if flags & os.ST_RDONLY:
        return "a read-only file system"
    effective = os.access in os.supports_effective_ids
    if not os.access(directory, os.W_OK | os.X_OK, effective_ids=effective):
        return "no permission to write it"
    return None


def open_lock(path: Path, *, reading: bool = False) -> int | None:
    """A descriptor of the lock file ``path`` to flock, the file created if need be.

    Where it cannot be created (a read-only copy), the existing file is opened
    read-only: flock works on such a descriptor, so the lock means the same.  If it
    does not exist there either: on a read-only file system nothing can write, so no
    lock is needed (None); elsewhere the error is raised, unless ``reading`` (a reader
    that may not write the folder goes on without the lock: None).

    A symbolic link where the lock file belongs (planted in an archive received from
    someone else) is never followed: opening it would create its target, anywhere the
    user may write (``/etc/nologin`` for root).  A reader goes on without the lock.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            if reading or unwritable(path.parent) is not None:
                return None
            raise OSError(
                errno.ELOOP, "a symbolic link where a lock file belongs; remove it", str(path)
            ) from None
        if exc.errno not in READ_ONLY_ERRNOS:
            raise
        try:
            return os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        except OSError:
            if reading or exc.errno == errno.EROFS:
                return None
            raise exc from None


@contextlib.contextmanager
def flocked(
    path: Path, *, exclusive: bool, blocking: bool = True, reading: bool = False
) -> Iterator[bool]:
    """Hold an advisory lock on ``path`` (created if need be); yields whether it was got.

    Without ``blocking``, yields False at once when another process holds it.  On a
    copy that cannot be written, see :func:`open_lock` (``reading``: only to read).
    """
    import fcntl

    fd = open_lock(path, reading=reading)
    if fd is None:  # nothing can hold it
        yield True
        return
    try:
        flags = fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH
        try:
            fcntl.flock(fd, flags if blocking else flags | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)  # releases the lock
