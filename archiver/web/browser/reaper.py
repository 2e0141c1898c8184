"""The watchdog that outlives us: when the process that started a browser dies, even by
SIGKILL, it kills the browser's process group and removes the browser's profile.

Started by :class:`archiver.web.browser.chromium.Browser` as
``python -m archiver.web.browser.reaper PGID PROFILE_DIR`` in a session of its own, with a
pipe on its stdin whose write end only the browser's owner holds. It says ``ready`` on
stdout, then reads stdin to the end. The owner writes ``done`` after closing the browser
itself; an end of file without ``done`` means the owner died without cleaning up (the
kernel closed its end of the pipe), so the reaper does it. SIGINT is ignored: Ctrl-C goes
to the terminal's foreground group, and the owner decides what it means.

This module imports the standard library only, and only it: it must start fast.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import sys
import time
from pathlib import Path

__all__ = [
    "PROFILE_PREFIX",
    "group_members",
    "kill_group",
    "kill_profile_users",
    "main",
    "profile_users",
    "remove_tree",
]

PROFILE_PREFIX = "archiver-browser-"  # the reaper removes only directories named so


def group_members(pgid: int) -> list[int]:
    """Live processes (zombies aside: they hold nothing) of process group ``pgid``,
    read from /proc."""
    members = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue  # gone meanwhile
        # pid (comm) state ppid pgrp ...: comm may hold spaces and parentheses
        fields = stat[stat.rfind(b")") + 2 :].split()
        if len(fields) >= 3 and int(fields[2]) == pgid and fields[0] not in (b"Z", b"X"):
            members.append(int(entry.name))
    return members


def kill_group(pgid: int, *, wait: float = 5.0) -> bool:
    """SIGKILL every process of the group, and wait up to ``wait`` seconds for them to be
    gone (dead processes write no more files). True when none is left."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)
    deadline = time.monotonic() + wait
    while group_members(pgid):
        if time.monotonic() > deadline:
            return False
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)  # a child forked meanwhile
        time.sleep(0.02)
    return True


def profile_users(profile: Path) -> list[int]:
    """Live processes (this one aside) whose command line names ``profile``: Chromium's
    crash handlers leave its process group and session, but name the profile."""
    needle = os.fsencode(str(profile))
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry.name}/cmdline", "rb") as f:
                cmdline = f.read()
            with open(f"/proc/{entry.name}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        state = stat[stat.rfind(b")") + 2 :][:1]
        if needle in cmdline and state not in (b"Z", b"X"):
            found.append(int(entry.name))
    return found


def kill_profile_users(profile: Path, *, wait: float = 2.0) -> bool:
    """SIGKILL what :func:`profile_users` finds, and wait for it to be gone."""
    deadline = time.monotonic() + wait
    while True:
        users = profile_users(profile)
        if not users:
            return True
        if time.monotonic() > deadline:
            return False
        for pid in users:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.02)


def remove_tree(path: Path, *, attempts: int = 10) -> bool:
    """Remove a browser profile, trying again a few times: a browser that is still dying
    writes files into it while it is being removed. True when it is gone."""
    for attempt in range(attempts):
        shutil.rmtree(path, ignore_errors=True)
        if not os.path.lexists(path):
            return True
        time.sleep(0.05 * (attempt + 1))
    return False


def main(argv: list[str]) -> int:
    """``PGID PROFILE_DIR``: wait for our stdin to end, and clean up unless told ``done``."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    if len(argv) != 2 or not argv[0].isdigit():
        return 2
    pgid, profile = int(argv[0]), Path(argv[1])
    os.chdir("/")
    with contextlib.suppress(OSError):
        sys.stdout.write("ready\n")
        sys.stdout.flush()
        sys.stdout.close()
    told = b""
    while True:
        try:
            chunk = os.read(0, 4096)
        except InterruptedError:
            continue
        except OSError:
            break
        if not chunk:
            break
        told += chunk
    if b"done" in told.split():
        return 0
    if pgid > 1:
        kill_group(pgid)
    if profile.name.startswith(PROFILE_PREFIX) and profile.is_absolute():
        kill_profile_users(profile)  # the crash handlers, outside the group
        remove_tree(profile)
    return 0


if __name__ == "__main__":
    main(sys.argv[1:])
