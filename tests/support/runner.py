"""The one way the tests run archiver's command line in a real process, as users do:
``python -m archiver`` (or, with ``installed=True``, the entry point pip installed)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

BIN = Path(sys.executable).parent  # the environment's scripts: archiver, warcio, fastwarc, ...


def command(*args: str, installed: bool = False) -> list[str]:
    """The command line running archiver with ``args``."""
    program = [str(BIN / "archiver")] if installed else [sys.executable, "-m", "archiver"]
    return [*program, *args]


def run(
    *args: str,
    env: Mapping[str, str | None] | None = None,
    cwd: Path | str | None = None,
    input: str | None = None,
    timeout: float | None = 120,
    installed: bool = False,
) -> subprocess.CompletedProcess[str]:
    """Run archiver with ``args`` and wait for it; its output is captured as text.

    ``env`` is laid over this process's environment (a value of None removes that name).
    """
    merged = {**os.environ, **(env or {})}
    return subprocess.run(
        command(*args, installed=installed),
        capture_output=True,
        text=True,
        env={name: value for name, value in merged.items() if value is not None},
        cwd=cwd,
        input=input,
        timeout=timeout,
    )
