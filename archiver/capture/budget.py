"""One budget per capture: requests made, bytes stored and wall time.

A page can name more than any archivist wants to fetch: a 23 kB DASH manifest names ten
million segments, an HLS playlist a million.  Whatever a page says, a capture makes at
most ``--max-requests`` requests, stores at most ``--max-capture-size`` bytes of bodies
and runs at most ``--max-capture-time`` seconds.  What a budget left out is listed in the
capture's ``not_followed`` and makes the capture partial; a body cut by it is marked
truncated (``length`` for the size budget, ``time`` at the deadline).

The defaults fit a news page with long videos: a three-hour HLS video in two-second
segments is 5,400 segments per rendition, and a capture takes the best video rendition,
the audio renditions of its group and the subtitles, so 16,200 to 27,000 requests with
two audio languages; 50,000 requests leave room for the page and a second video.  Three
hours of 1080p video at about 5 Mbit/s are about 7 GB: the size budget is 20 GiB.  Two
hours fetch those 7 GB on a 10 Mbit/s line.  A hostile manifest naming ten million tiny
segments ends at the request budget: 74 s and 470 MB on a 2-core machine
(``benchmarks/bench_budget.py``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

# the defaults (DEFAULT_MAX_REQUESTS, ...) live with the options, in archiver.core.model


class Budget:
    """What one capture may still spend; safe to use from every fetch thread."""

    def __init__(
        self,
        max_requests: int | None,
        max_bytes: int | None,
        max_seconds: float | None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_requests = max_requests
        self.max_bytes = max_bytes
        self.max_seconds = max_seconds
        self.clock = clock
        self.deadline = clock() + max_seconds if max_seconds else None
        self.requests = 0
        self.bytes = 0
        self.reached: list[str] = []  # what ran out, in the order it did
        self._lock = threading.Lock()

    # the reasons, as the user reads them in not_followed, truncated and the summary
    @property
    def requests_reason(self) -> str:
        return f"the capture's request budget ran out (--max-requests {self.max_requests})"

    @property
    def size_reason(self) -> str:
        return f"the capture's size budget ran out (--max-capture-size {self.max_bytes} bytes)"

    @property
    def time_reason(self) -> str:
        return f"the capture's time budget ran out (--max-capture-time {self.max_seconds:g} s)"

    def _note(self, reason: str) -> str:
        if reason not in self.reached:
            self.reached.append(reason)
        return reason

    def spent(self) -> str | None:
        """Why no new request may start now (a budget that ran out), or None."""
        with self._lock:
            return self._spent()

    def _spent(self) -> str | None:
        if self.deadline is not None and self.clock() >= self.deadline:
            return self._note(self.time_reason)
        if self.max_bytes is not None and self.bytes >= self.max_bytes:
            return self._note(self.size_reason)
        if self.max_requests is not None and self.requests >= self.max_requests:
            return self._note(self.requests_reason)
        return None

    def take_request(self) -> str | None:
        """Count one request about to be made; the reason it may not be, or None."""
        with self._lock:
            reason = self._spent()
            if reason is None:
                self.requests += 1
            return reason

    def take_bytes(self, n: int) -> int:
        """Count ``n`` bytes about to be stored; how many of them the budget allows."""
        with self._lock:
            if self.max_bytes is None:
                self.bytes += n
                return n
            room = max(0, self.max_bytes - self.bytes)
            allowed = min(n, room)
            self.bytes += allowed
            if allowed < n:
                self._note(self.size_reason)
            return allowed

    def time_left(self) -> float | None:
        """Seconds to the deadline (never below a hair above 0), or None without one."""
        if self.deadline is None:
            return None
        return max(0.001, self.deadline - self.clock())

    def out_of_time(self) -> bool:
        with self._lock:
            return self.deadline is not None and self.clock() >= self.deadline

    def note_time(self) -> str:
        """The deadline cut something: record that the time budget ran out."""
        with self._lock:
            return self._note(self.time_reason)

    def refuse_requests(self) -> str:
        """No more requests may be planned: record that the request budget ran out."""
        with self._lock:
            return self._note(self.requests_reason)
