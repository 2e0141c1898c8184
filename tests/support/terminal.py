"""Running the command with its stderr on a pseudo-terminal, as a user at a terminal would."""

from __future__ import annotations

import os
import pty
import subprocess

from tests.support.runner import command


def stderr_on_terminal(*args: str, timeout: float = 60) -> tuple[int, str]:
    """Run ``python -m archiver ARGS`` with stderr on a pty; (exit status, what it drew)."""
    primary, secondary = pty.openpty()
    proc = subprocess.Popen(command(*args), stdout=subprocess.PIPE, stderr=secondary)
    os.close(secondary)
    seen = b""
    while True:
        try:
            piece = os.read(primary, 4096)
        except OSError:  # the other end closed
            break
        if not piece:
            break
        seen += piece
    os.close(primary)
    return proc.wait(timeout), seen.decode(errors="replace")
