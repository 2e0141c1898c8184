"""Live progress on a terminal: one line on stderr, redrawn at most five times a second;
nothing at all when output is JSON or stderr is not a terminal."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from archiver.cli.render import human_bytes
from archiver.ops import ingest


class TerminalProgress:
    """A one-line live display on stderr: bytes, rate and what is being fetched; for a
    batch, also how many of its pages are done."""

    def __init__(self, pages: int = 1) -> None:
        self.pages = pages
        self.pages_done = 0
        self._lock = threading.Lock()
        self._active: dict[str, int] = {}
        self._totals: dict[str, int] = {}  # declared sizes, where a response gave one
        self._bytes = 0
        self._done = 0
        self._start = time.monotonic()
        self._last = 0.0

    def started(self, url: str, role: str) -> None:
        with self._lock:
            self._active[url] = 0
        self._draw()

    def sized(self, url: str, total: int) -> None:
        with self._lock:
            self._totals[url] = total

    def advanced(self, url: str, nbytes: int) -> None:
        with self._lock:
            self._bytes += nbytes
            self._active[url] = self._active.get(url, 0) + nbytes
        self._draw()

    def finished(self, url: str) -> None:
        with self._lock:
            self._active.pop(url, None)
            self._totals.pop(url, None)
            self._done += 1
        self._draw()

    def _draw(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last < 0.2:
            return
        self._last = now
        with self._lock:
            elapsed = max(now - self._start, 1e-6)
            # the largest transfer of known size (a video, usually), else the first
            current = max(self._active, key=lambda u: self._totals.get(u, -1), default="")
            total = self._totals.get(current)
            share = ""
            if total:
                done = min(self._active[current], total)
                share = f" {human_bytes(done)} of {human_bytes(total)} ({100 * done // total}%)"
            batch = f"{self.pages_done}/{self.pages} pages, " if self.pages > 1 else ""
            line = (
                f"{batch}{self._done} fetched, {len(self._active)} active, "
                f"{human_bytes(self._bytes)}, {human_bytes(self._bytes / elapsed)}/s"
                f"{share}  {current}"
            )
        width = 118
        sys.stderr.write("\r" + line[:width].ljust(width))
        sys.stderr.flush()

    def redraw(self) -> None:
        self._draw(force=True)

    def page_done(self) -> None:
        """A page of the batch is done: clear the line for its report (drawn next)."""
        with self._lock:
            self.pages_done += 1
        self.close()

    def close(self) -> None:
        sys.stderr.write("\r" + " " * 118 + "\r")
        sys.stderr.flush()


class TerminalScanProgress:
    """A one-line display on stderr while WARC files are read: files, bytes, rate, file."""

    def __init__(self) -> None:
        self._files = 0
        self._bytes = 0
        self._current = ""
        self._start = time.monotonic()
        self._last = 0.0

    def file(self, path: Path) -> None:
        self._files += 1
        self._current = str(path)
        self._draw()

    def advanced(self, nbytes: int) -> None:
        self._bytes += nbytes
        self._draw()

    def _draw(self) -> None:
        now = time.monotonic()
        if now - self._last < 0.2:
            return
        self._last = now
        rate = self._bytes / max(now - self._start, 1e-6)
        line = (
            f"reading file {self._files}: {human_bytes(self._bytes)}, "
            f"{human_bytes(rate)}/s  {self._current}"
        )
        sys.stderr.write("\r" + line[:118].ljust(118))
        sys.stderr.flush()

    def close(self) -> None:
        sys.stderr.write("\r" + " " * 118 + "\r")
        sys.stderr.flush()


@contextmanager
def scan_progress(interactive: bool) -> Iterator[ingest.ScanProgress | None]:
    if not interactive:
        yield None
        return
    display = TerminalScanProgress()
    try:
        yield display
    finally:
        display.close()


@contextmanager
def progress_display(interactive: bool, pages: int = 1) -> Iterator[TerminalProgress | None]:
    if not interactive:
        yield None
        return
    display = TerminalProgress(pages)
    try:
        yield display
    finally:
        display.close()
