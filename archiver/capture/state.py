"""What one capture run's parts share: its state (:class:`_RunState`, the base of every
part), the tasks and results they pass around, and the run's exceptions."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import IO, TYPE_CHECKING, Any

from archiver.capture.budget import Budget
from archiver.capture.dedup import KnownPayloads
from archiver.core.errors import Failure
from archiver.core.model import Capture, CaptureError, VideoFound
from archiver.core.urls import Credentials
from archiver.warc.writer import Fields, StreamingRecord, WarcSeries, warc_date
from archiver.web.media import load_cookies

if TYPE_CHECKING:
    from archiver.capture.run import Capturer

# References a budget left out are listed one by one up to this many, then counted.
BUDGET_LISTED = 1000

HTML_TYPES = {"text/html", "application/xhtml+xml"}
CSS_TYPES = {"text/css"}


class CaptureInterrupted(Failure):
    """The capture was stopped (Ctrl-C, or another fetch failed to write)."""

    unexpected = True  # the CLI hints at --debug (archiver.core.errors)


class ArchiveWriteError(Failure):
    """Writing the WARC failed (disk full, I/O error, or a fault mid-record): fatal."""

    unexpected = True  # the CLI hints at --debug (archiver.core.errors)


class Abandoned(Exception):  # control flow: never reaches a caller
    """The reader a body is relayed to (the browser) went away: stop reading it."""


@dataclass(frozen=True)
class Task:
    """One URL to fetch within a capture."""

    url: str
    role: str
    via: str
    found_on: str | None
    expand: bool = False
    poll: int = 0  # a live playlist fetched again: the how-manieth time
    not_before: float = 0.0  # and not before this time.monotonic()
    live_of: str = ""  # a reload: the URL the live playlist is followed under

    @property
    def is_seed(self) -> bool:
        return self.via == "seed"


@dataclass
class Fetched:
    """What fetching a task produced: records written, and the body kept for parsing."""

    task: Task
    final_url: str
    status: int | None = None
    media_type: str | None = None
    body: bytes | None = None
    charset_header: str | None = None
    payload_sha256: str | None = None
    payload_length: int | None = None
    error: str | None = None
    location: str | None = None  # where a redirect points, resolved
    skipped: str | None = None  # not fetched: the capture's budget had run out


class _RunState:
    """The state of one capture while it runs, and the bookkeeping every part does.

    The run is one object made of parts, each a class on the ones it uses:
    :class:`_RunState`, then ``metadata._Metadata``, ``recorder._Recorder``,
    ``fetcher._Fetcher``, ``videos._Videos``, ``frontier._Frontier`` and, last,
    ``run._CaptureRun``."""

    def __init__(self, capturer: Capturer, capture: Capture) -> None:
        self.c = capturer
        self.capture = capture
        self.options = capturer.options
        self.seen: set[str] = set()
        self.seen_lock = threading.Lock()
        self.order: dict[str, int] = {}  # discovery order, to expand results in a stable order
        self.stop = threading.Event()
        self.series = WarcSeries(
            capturer.warc_dir,
            capture.capture_id,
            self.options.warc_max_size,
            self._warcinfo,
        )
        self.page_response_id: str | None = None
        self.videos: dict[str, VideoFound] = {}
        # writes waiting for the writer, with their sizes
        self.backlog: deque[tuple[Callable[[], None], int]] = deque()
        self.backlog_bytes = 0
        self.backlog_lock = threading.Lock()
        self.spool_dir = self.options.archive_dir / ".tmp"
        self.warcinfo_dates: dict[str, datetime] = {}
        # platform URLs for yt-dlp, in the order found: url -> (via, found on)
        self.platform_urls: dict[str, tuple[str, str | None]] = {}
        self.media_fatal: BaseException | None = None  # stops the capture, not only yt-dlp
        own = self.c.signer.key.public_key() if self.c.signer is not None else None
        self.known = KnownPayloads(self.options.archive_dir, own)  # originals it signed
        opts = self.options  # one budget for the whole capture (see archiver.capture.budget)
        self.budget = Budget(opts.max_requests, opts.max_capture_size, opts.max_capture_time)
        self.planned = 1  # tasks made (the seed's included): each needs a request at least
        self.budget_listed = 0  # references a budget left out, listed one by one
        self.budget_unlisted: dict[str, list[Any]] = {}  # reason -> [count, first URL]
        self.refs_listed = 0  # references not followed for what they are, listed
        self.refs_unlisted: list[Any] = [0, ""]  # and past NOT_FOLLOWED_LISTED: [count, URL]
        self.live: dict[str, dict[str, Any]] = {}  # live HLS playlists, by URL
        self.cookies = load_cookies(self.options.cookies) if self.options.cookies else None
        self.credentials: Credentials | None = None  # the seed's user:password, for its origin

    def _warcinfo(self, filename: str) -> tuple[Fields, bytes]:
        now = self.c.clock()
        self.warcinfo_dates[filename] = now
        fields: Fields = [
            ("WARC-Type", "warcinfo"),
            ("WARC-Record-ID", self.c.new_record_id()),
            ("WARC-Date", warc_date(now)),
            ("WARC-Filename", filename),
            ("Content-Type", "application/warc-fields"),
        ]
        return fields, self.c.warcinfo_block(self.capture, filename)

    def _claim(self, url: str) -> bool:
        with self.seen_lock:
            if url in self.seen:
                return False
            self.seen.add(url)
            return True

    def _error(self, url: str, reason: str, role: str) -> None:
        with self.seen_lock:
            self.capture.errors.append(CaptureError(url, reason, role))

    def _left_out(
        self, url: str, via: str, found_on: str | None, reason: str, *, task: bool = False
    ) -> None:
        """List a reference a budget left out (the first BUDGET_LISTED; then counted);
        ``task``: one that was to be fetched, not a reference met after the budget ran out."""
        with self.seen_lock:
            if url in self.seen and not task:
                return  # fetched already for another reference
            if self.budget_listed < BUDGET_LISTED:
                self.budget_listed += 1
                self.capture.not_followed.append(
                    {"url": url, "via": via, "found_on": found_on or "", "reason": reason}
                )
            else:
                self.budget_unlisted.setdefault(reason, [0, url])[0] += 1


def _copy(spool: IO[bytes], stream: StreamingRecord, stop: threading.Event) -> None:
    buf = bytearray(1024 * 1024)
    view = memoryview(buf)
    while True:
        if stop.is_set():
            raise CaptureInterrupted("stopped while copying a spooled body")
        n = spool.readinto(view)  # type: ignore[attr-defined]
        if not n:
            return
        stream.write(view[:n])
