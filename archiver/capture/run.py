"""Capture a page, everything it needs to render and every video it references.

The flow of one capture: fetch the seed URL (following and recording every
redirect), parse the page with :mod:`archiver.web.discover`, fetch what it found
concurrently (stylesheets and what they import, scripts, images, fonts, iframes
one level deep, videos, HLS/DASH manifests and their segments), and write every
exchange into the capture's own WARC files as it arrives.  A metadata record
summarising the capture closes the last file.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import hashlib
import json
import mimetypes
import platform
import signal
import socket
import ssl
import sys
import tempfile
import threading
import time
import zlib
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import IO, Any, Protocol
from urllib.parse import quote, urljoin, urlsplit

from zlib_ng import zlib_ng

from archiver import TOOL_NAME, __version__
from archiver.capture.budget import Budget
from archiver.capture.dedup import DEDUP_MIN, REVISIT_PROFILE, KnownPayloads, Original
from archiver.core.layout import capture_lock, capture_running
from archiver.core.model import (
    Capture,
    CaptureError,
    CaptureOptions,
    CaptureStatus,
    RecordEntry,
    Stamp,
    StoredFile,
    UnverifiedTLS,
    VideoFound,
    isoformat,
    new_capture_id,
    utcnow,
)
from archiver.core.urls import (
    URL_SAFE,
    Credentials,
    InvalidURL,
    check_url,
    hide_credentials,
    origin,
    own_record_uri,
    referer,
    split_credentials,
)
from archiver.index.store import CaptureRow, Index, RecordRow, relative_path, rows_for_capture
from archiver.trust import custody, manifest
from archiver.trust.manifest import FileEntry
from archiver.trust.sign import KeyProblem, Signer
from archiver.trust.timestamp import Timestamper
from archiver.warc.writer import (
    HTTP_REQUEST_TYPE,
    HTTP_RESPONSE_TYPE,
    Fields,
    StreamingRecord,
    WarcFile,
    WarcSeries,
    WrittenRecord,
    compression_level,
    new_record_id,
    warc_date,
)
from archiver.web.addresses import AddressPolicy
from archiver.web.discover import (
    Found,
    PageInfo,
    Unfetched,
    hls_playlist,
    is_dash,
    is_hls,
    iter_dash,
    iter_hls,
    parse_css,
    parse_html,
)
from archiver.web.http import (
    FetchError,
    FetchSettings,
    Interrupted,
    Response,
    build_request,
    dechunk,
    open_exchange,
)
from archiver.web.media import (
    Exchanged,
    MediaError,
    MediaLimits,
    MediaResult,
    body_sink,
    fetch_media,
    ffmpeg,
    load_cookies,
    ytdlp_version,
)
from archiver.web.platforms import platform_of

# Bodies up to this size are collected in memory and written in one go.
SMALL_BODY = 1024 * 1024
# the longest the main thread waits on fetches before it runs Python code (and so any
# signal handler) again; batch.SIGNAL_POLL is the same for a batch's captures
SIGNAL_POLL = 0.2
# A body that waits for the WARC file spills to disk past this size.
SPOOL_MEMORY = 8 * 1024 * 1024
# Small records waiting for the writer are kept in memory up to this much in all.
BACKLOG_LIMIT = 32 * 1024 * 1024
# At most this much of a page, stylesheet or manifest is kept for parsing.
PARSE_LIMIT = 16 * 1024 * 1024
META_REFRESH = "meta[http-equiv=refresh]"
# References a budget left out are listed one by one up to this many, then counted.
BUDGET_LISTED = 1000
# References never followed for what they are (file:, javascript:, a nested iframe ...)
# are listed one by one up to this many a capture, then counted: 50,000 stylesheets of
# 1,000 javascript: URLs each made fifty million entries (500 of them: 762 MB RSS).
NOT_FOLLOWED_LISTED = 10_000
# A live playlist is reloaded every target duration, within these bounds (seconds).
LIVE_POLL_MIN, LIVE_POLL_MAX = 0.5, 60.0
# where a page names the video it is about: a platform URL there goes to yt-dlp
PLATFORM_META = ("meta[og:video", "meta[twitter")

HTML_TYPES = {"text/html", "application/xhtml+xml"}
CSS_TYPES = {"text/css"}

# The metadata record's format; its JSON Schema is schemas/capture-metadata.v2.json.
METADATA_SCHEMA = "archiver/capture-metadata/2"
TLS_SCHEMA = "archiver/tls-certificate/1"  # a certificate that did not verify (--insecure)
# yt-dlp's account of a platform URL, in a metadata record of its own.
MEDIA_INFO_SCHEMA = "archiver/media-info/1"
WARC_SPEC = "https://iipc.github.io/warc-specifications/specifications/warc-format/warc-1.1/"


RecordWriter = Callable[[WarcFile, Fields], WrittenRecord]


class Progress(Protocol):
    """What a capture reports while it runs (the CLI draws it; tests may record it)."""

    def started(self, url: str, role: str) -> None: ...
    def sized(self, url: str, total: int) -> None: ...
    def advanced(self, url: str, nbytes: int) -> None: ...
    def finished(self, url: str) -> None: ...


class NoProgress:
    def started(self, url: str, role: str) -> None:
        pass

    def sized(self, url: str, total: int) -> None:
        pass

    def advanced(self, url: str, nbytes: int) -> None:
        pass

    def finished(self, url: str) -> None:
        pass


class CaptureInterrupted(Exception):
    """The capture was stopped (Ctrl-C, or another fetch failed to write)."""


class ArchiveWriteError(Exception):
    """Writing the WARC failed (disk full, I/O error, or a fault mid-record): fatal."""


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


def library_versions() -> dict[str, str]:
    """Versions of what touched the bytes, for provenance."""
    versions = {
        "python": platform.python_version(),
        "zlib": zlib.ZLIB_RUNTIME_VERSION,
        "zlib-ng": str(zlib_ng.ZLIBNG_VERSION),
    }
    try:
        import ssl

        versions["openssl"] = ssl.OPENSSL_VERSION
    except ImportError:  # pragma: no cover - Python always has ssl here
        pass
    for name in ("selectolax", "tinycss2", "m3u8", "warcio", "pyarrow"):
        try:
            from importlib.metadata import version

            versions[name] = version(name)
        except Exception:
            continue
    return versions


def _decode_for_parsing(raw: bytes, response_headers: dict[str, str]) -> bytes:
    """The entity for parsing: de-chunked and decompressed, capped at PARSE_LIMIT."""
    body = raw
    if response_headers.get("transfer-encoding", "").lower().endswith("chunked"):
        body = dechunk(body)
    coding = response_headers.get("content-encoding", "").strip().lower()
    if coding in ("gzip", "x-gzip", "deflate"):
        wbits = 47 if coding != "deflate" else 15
        try:
            dec = zlib.decompressobj(wbits)
            out = dec.decompress(body, PARSE_LIMIT)
        except zlib.error:
            if coding != "deflate":
                return body
            try:
                dec = zlib.decompressobj(-15)
                out = dec.decompress(body, PARSE_LIMIT)
            except zlib.error:
                return body
        return out
    return body


class Capturer:
    """Runs captures with one set of options.

    ``clock`` and ``new_id`` are injectable so tests can produce reproducible output.
    With a ``signer``, each capture ends with its signed manifest (see
    :mod:`archiver.trust.manifest`); without one it is left unsigned, and verify says so.
    """

    def __init__(
        self,
        options: CaptureOptions,
        *,
        clock: Callable[[], datetime] = utcnow,
        new_id: Callable[[datetime], str] = new_capture_id,
        new_record_id: Callable[[], str] = new_record_id,
        hostname: str | None = None,
        progress: Progress | None = None,
        signer: Signer | None = None,
        timestamper: Timestamper | None = None,
    ) -> None:
        self.options = options
        self.signer = signer
        self.timestamper = timestamper
        self.clock = clock
        self.new_id = new_id
        self.new_record_id = new_record_id
        self.progress: Progress = progress or NoProgress()
        self.settings = FetchSettings(
            timeout=options.timeout,
            max_time=options.max_time,
            insecure=options.insecure,
            min_rate=options.min_rate or None,  # yt-dlp's exchanges too
            min_rate_window=options.min_rate_window,
            # every exchange, yt-dlp's included, connects through this check
            addresses=AddressPolicy(options.allow_private, options.allow_private_endpoints),
        )
        self.hostname = hostname or socket.gethostname()
        self._lock = threading.Lock()
        self._running: list[_CaptureRun] = []
        self._interrupted = False

    @property
    def warc_dir(self) -> Path:
        return self.options.archive_dir / "warc" / self.options.collection

    def capture(self, seed_url: str, credentials: Credentials | None = None) -> Capture:
        """Capture ``seed_url``; never raises for network trouble (see ``Capture.status``).

        A ``user:password@`` in the URL (or ``credentials``) is sent as HTTP Basic
        authentication to the seed's origin only, and stored nowhere in clear."""
        url, given = split_credentials(seed_url)
        credentials = credentials or given
        as_given = hide_credentials(seed_url.strip()).partition("#")[0]
        started = self.clock()
        capture = Capture(
            capture_id=self.new_id(started),
            seed_url=url,
            options=self.options,
            started_at=started,
            seed_url_unicode=None if as_given.isascii() else as_given,
            auth_origin=credentials.origin if credentials else None,
            hostname=self.hostname,
            platform=platform.platform(),
            libraries=library_versions(),
        )
        run = _CaptureRun(self, capture)
        run.credentials = credentials
        with self._lock:
            self._running.append(run)
            if self._interrupted:  # interrupted while this one was being set up
                run.stop.set()
        try:
            return run.run()
        finally:
            with self._lock:
                self._running.remove(run)

    def interrupt(self) -> None:
        """Stop the captures running now (from another thread): each ends as interrupted,
        keeping its whole records, as on Ctrl-C."""
        with self._lock:
            self._interrupted = True
            for run in self._running:
                run.stop.set()

    # warcinfo ---------------------------------------------------------------
    def warcinfo_block(self, capture: Capture, filename: str) -> bytes:
        opts = self.options
        fields: list[tuple[str, str | None]] = [
            ("software", f"{TOOL_NAME}/{__version__}"),
            ("format", "WARC File Format 1.1"),
            ("conformsTo", WARC_SPEC),
            ("capture-id", capture.capture_id),
            ("seed-url", capture.seed_url),
            ("isPartOf", opts.collection),
            ("operator", opts.operator),
            ("description", opts.note),
            ("hostname", capture.hostname),
            ("platform", capture.platform),
            ("http-header-user-agent", opts.user_agent),
            ("options", json.dumps(opts.recorded(), sort_keys=True)),
            ("libraries", json.dumps(capture.libraries, sort_keys=True)),
            ("payload-digest", "sha256 over the HTTP body as transferred (see README)"),
        ]
        lines = []
        for name, value in fields:
            if value is None:
                continue
            clean = "".join(ch if ch >= " " and ch != "\x7f" else " " for ch in value)
            lines.append(f"{name}: {clean}")
        return ("\r\n".join(lines) + "\r\n").encode("utf-8")


class _CaptureRun:
    """The state of one capture while it runs."""

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

    # main flow -----------------------------------------------------------
    @contextlib.contextmanager
    def _signals_held(self) -> Iterator[None]:
        """Ctrl-C and SIGTERM wait while the WARCs are published, signed, indexed and logged
        (a few milliseconds): a signal there left a published WARC without its manifest and
        a report naming a ``.open`` file that was not there. After it, the signal's own
        handler runs and the capture, which stands, is marked interrupted. Main thread
        only (a batch's captures run elsewhere; their main thread stops them by ``stop``)."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        held: list[int] = []
        kinds = (signal.SIGINT, signal.SIGTERM)
        before = {s: signal.signal(s, lambda signum, frame: held.append(signum)) for s in kinds}
        try:
            yield
        finally:
            for s, handler in before.items():
                signal.signal(s, handler)
            for signum in dict.fromkeys(held):
                handler = before[signal.Signals(signum)]
                if callable(handler):
                    try:
                        handler(signum, None)
                    except KeyboardInterrupt:
                        self.capture.interrupted = True

    def run(self) -> Capture:
        """Run the capture; whatever happens, leave nothing that looks complete."""
        try:
            with (
                capture_lock(self.options.archive_dir, exclusive=False),  # keeps cleanup off
                capture_running(self.options.archive_dir, self.capture.capture_id),  # verify
            ):
                captured = self._run_guarded()
                # its custody event, while the lock is held: verify never sees the
                # capture without it (see archiver.trust.custody.compare)
                with self._signals_held():
                    captured.custody_error = custody.log_capture(
                        captured, self.options.archive_dir, self.c.signer, self.c.hostname
                    )
                return captured
        except OSError as exc:  # the lock itself: the archive cannot be written
            self.capture.status = CaptureStatus.FAILED
            self.capture.finished_at = self.c.clock()
            self.capture.failure = f"cannot write the archive: {exc}"
            return self.capture

    def _run_guarded(self) -> Capture:
        capture = self.capture
        try:
            self._run()
        except BaseException as exc:
            self.stop.set()
            capture.status = CaptureStatus.FAILED
            capture.finished_at = self.c.clock()
            capture.warc_files = []
            if isinstance(exc, (KeyboardInterrupt, CaptureInterrupted, Interrupted)):
                capture.interrupted = True
                capture.failure = "interrupted"
            elif isinstance(exc, (OSError, ArchiveWriteError)):
                capture.failure = f"cannot write the archive{self._file_of(exc)}: {exc}"
            elif isinstance(exc, Exception):
                capture.failure = f"internal error: {exc!r}"
            else:
                raise  # SystemExit and the like
            capture.incomplete_files = self._keep_what_is_whole()
            if capture.incomplete_files:
                capture.failure += "; the records written so far are kept in " + ", ".join(
                    str(p) for p in capture.incomplete_files
                )
        return capture

    def _file_of(self, exc: BaseException) -> str:
        """`` (file)`` naming the WARC file being written, when the error does not."""
        if getattr(exc, "filename", None) or not self.series.files:
            return ""
        return f" ({self.series.files[-1].temp_path})"

    def _keep_what_is_whole(self) -> list[Path]:
        """After a failure: keep whole records under .open names, or nothing at all."""
        if self.capture.interrupted and self.series.lock.acquire(timeout=5):
            try:  # bodies received in full are written before the files are closed
                self._drain()
            except Exception:  # the capture has failed already; keep what is whole
                pass
            finally:
                self.series.lock.release()
        try:
            if _arrived(self.capture.records):
                return self.series.abandon()
            self.series.discard()
        except OSError:
            pass  # the disk may be what failed; the .open names still say "incomplete"
        return []

    def _run(self) -> None:
        capture = self.capture
        with self.series.lock:
            self.series.current()  # the warcinfo record comes first, dated at the start
        page_task = Task(capture.seed_url, "page", "seed", None, expand=True)
        self.seen.add(capture.seed_url)
        page = self._fetch(page_task)
        capture.final_url = page.final_url
        capture.http_status = page.status
        if page.error is not None:
            capture.failure = page.error
        elif page.status is not None and page.status >= 400:
            capture.failure = f"the page answered HTTP {page.status}"
        elif page.skipped is not None:
            capture.failure = f"the page was not fetched: {page.skipped}"
        tasks: list[Task] = []
        if page.error is None:
            tasks = self._expand_safely(page)
        self._fetch_all(tasks)
        del tasks  # tens of thousands on a large page: not held through what follows
        if self.stop.is_set():  # interrupted from outside (a batch stopping)
            raise CaptureInterrupted("stopped")
        if self.options.platform_videos:
            self._note_platform(capture.seed_url, "seed", None)
            if self.options.follow_video_links:
                for link in capture.outlinks:
                    self._note_platform(link, "a[href]", capture.final_url)
            self._platform_media()
        with self.series.lock:
            self._drain()  # small records still waiting for the writer
        capture.finished_at = self.c.clock()
        self._note_budget()
        if capture.failure:
            capture.status = CaptureStatus.FAILED
        elif capture.errors or capture.budget_spent:  # a budget left something out
            capture.status = CaptureStatus.PARTIAL
        else:
            capture.status = CaptureStatus.COMPLETE
        if not _arrived(capture.records):  # nothing answered: no evidence to keep
            self.series.discard()
            if capture.status is not CaptureStatus.FAILED:  # never "complete" with no files
                capture.status = CaptureStatus.FAILED
                capture.failure = "nothing was captured"
            return
        capture.videos = list(self.videos.values())
        index = Index(self.options.archive_dir)
        with contextlib.ExitStack() as held:
            try:
                held.enter_context(index.writing())
            except OSError as exc:  # the index is broken; the WARCs still count
                capture.index_error = (
                    f"the index is not writable ({exc}); run `archiver index rebuild` later"
                )
            with self.series.lock:
                self._write_metadata()
            with self._signals_held():  # published, then signed and indexed, or nothing
                with self.series.lock:
                    capture.warc_files = self.series.close()
                    capture.files = [StoredFile(*d) for d in self.series.digests()]
                self._note_warcinfo()
                row, records = rows_for_capture(capture)
                if self.c.signer is not None:
                    row = self._sign(self.c.signer, row, records)
                if capture.sign_error is None and capture.index_error is None:
                    self._index(index, row, records)
            if capture.manifest is not None and self.c.timestamper is not None:
                self._timestamp(self.c.timestamper, capture.manifest)
        if capture.sign_error is not None:  # stored but not signed: never reported as done
            capture.status = CaptureStatus.FAILED
            capture.failure = capture.failure or capture.sign_error

    def _sign(self, signer: Signer, row: CaptureRow, records: Sequence[RecordRow]) -> CaptureRow:
        """Write the capture's signed manifest; the index row that goes with it."""
        capture = self.capture
        archive = self.options.archive_dir
        entries = [
            FileEntry(relative_path(f.path, archive), f.size, f.sha256) for f in capture.files
        ]
        built = manifest.build(
            row, records, entries, signer.fingerprint, self.c.clock(), TOOL_NAME, __version__
        )
        path = manifest.manifest_path(archive, self.options.collection, capture.capture_id)
        try:
            signer.publish(archive / built.public_key)
            capture.manifest_sha256 = manifest.write_signed(path, built, signer.sign)
        except (OSError, KeyProblem) as exc:
            capture.sign_error = (
                f"the capture is not signed: {exc}; `archiver cleanup --apply` puts its"
                " files aside (nothing is deleted), then capture it again"
            )
            return row
        capture.manifest = path
        capture.key_fingerprint = signer.fingerprint
        return built.index_row(capture.manifest_sha256)

    def _timestamp(self, timestamper: Timestamper, path: Path) -> None:
        """Ask each authority for a token over the signature: the capture stands whatever
        they answer (see :mod:`archiver.trust.timestamp`)."""
        try:
            self.capture.timestamps = timestamper.stamp(path)
        except KeyboardInterrupt:  # signed and indexed: the capture stands
            self.capture.interrupted = True
            self.capture.timestamps = [
                Stamp(
                    self.capture.capture_id,
                    a.name,
                    a.url,
                    error="interrupted before the authority answered; "
                    "`archiver timestamp` asks again",
                )
                for a in timestamper.authorities
            ]
        except Exception as exc:  # stored and signed: a stamp's trouble never fails it
            self.capture.timestamps = [
                Stamp(
                    self.capture.capture_id,
                    a.name,
                    a.url,
                    error=f"the time-stamp failed ({exc!r}); `archiver timestamp` asks again",
                )
                for a in timestamper.authorities
            ]

    def _index(self, index: Index, row: CaptureRow, records: Sequence[RecordRow]) -> None:
        capture = self.capture
        try:
            index.write_capture(row, records, held=True)
        except Exception as exc:  # the WARCs are whole; the index can be rebuilt from them
            capture.index_error = f"the index was not updated ({exc}); run `archiver index rebuild`"
        except KeyboardInterrupt:  # the WARCs are published and whole: the capture stands
            capture.interrupted = True
            capture.index_error = (
                "interrupted before the index was updated; run `archiver index rebuild`"
            )

    def _note_warcinfo(self) -> None:
        for info in self.series.warcinfo_records:
            self.capture.records.append(
                placed(
                    info,
                    warc_type="warcinfo",
                    url=None,
                    fetched_at=self.warcinfo_dates[info.filename],
                    role="warcinfo",
                    content_type="application/warc-fields",
                    payload_sha256=info.block_sha256,
                    payload_length=info.content_length,
                )
            )

    def _fetch_all(self, initial: list[Task]) -> None:
        """Fetch ``initial`` and everything they lead to, ``concurrency`` at a time.

        Tasks wait in a queue, in the order found; only a few more than there are
        workers are handed to the pool at once, so each completion costs the same
        whatever the page's size (waiting on every pending future made a page of
        50,000 images quadratic in time, and each future held memory till the end).
        """
        workers = self.options.concurrency
        pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="fetch")
        waiting: deque[Task] = deque(initial)
        running: dict[Future[Fetched], Task] = {}
        in_flight = 2 * workers  # a worker that finishes finds the next task queued
        try:
            while waiting or running:
                while waiting and len(running) < in_flight:
                    task = waiting.popleft()
                    running[pool.submit(self._fetch, task)] = task
                # timed: a signal the kernel hands to a worker thread is only acted on
                # when this (main) thread runs Python code again
                done, _ = wait(running, timeout=SIGNAL_POLL, return_when=FIRST_COMPLETED)
                for fut in sorted(done, key=lambda f: self._order(running[f])):
                    running.pop(fut)
                    waiting.extend(self._expand_safely(fut.result()))
        except BaseException:
            # Ctrl-C, or a write error in a worker: stop every fetch at its next chunk.
            self.stop.set()
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        pool.shutdown(wait=True)

    def _order(self, task: Task) -> int:
        return self.order.get(task.url, 0)

    def _claim(self, url: str) -> bool:
        with self.seen_lock:
            if url in self.seen:
                return False
            self.seen.add(url)
            return True

    # the capture's budget ------------------------------------------------
    def _creation_refused(self) -> str | None:
        """Why no more tasks may be made (a budget ran out), or None.

        Each task needs a request at least, so no more are made than requests are left:
        what a page names past that is never held in memory, only listed."""
        reason = self.budget.spent()
        limit = self.options.max_requests
        if reason is None and limit is not None and self.planned >= limit:
            reason = self.budget.refuse_requests()
        return reason

    def _not_followed(self, entry: dict[str, str]) -> None:
        """List a reference not followed for what it is, up to NOT_FOLLOWED_LISTED a
        capture; count the rest (listed in one line by :meth:`_note_budget`)."""
        with self.seen_lock:
            if self.refs_listed < NOT_FOLLOWED_LISTED:
                self.refs_listed += 1
                self.capture.not_followed.append(entry)
            else:
                self.refs_unlisted[0] += 1
                self.refs_unlisted[1] = self.refs_unlisted[1] or entry["url"]

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

    def _left_out_rest(self, first: Found, rest: Iterator[Found], source: str, reason: str) -> None:
        """``first`` and what follows it in ``source``: listed up to BUDGET_LISTED, the
        remainder in one line (never enumerated: it may be millions of URLs)."""
        self._left_out(first.url, first.via, source, reason)
        for item in rest:
            if self.budget_listed >= BUDGET_LISTED:
                with self.seen_lock:
                    self.capture.not_followed.append(
                        {
                            "url": item.url,
                            "via": item.via,
                            "found_on": source,
                            "reason": f"{reason}; this and every later reference in"
                            f" {source} were not followed (not listed one by one)",
                        }
                    )
                return
            self._left_out(item.url, item.via, source, reason)

    def _note_budget(self) -> None:
        """The budgets that ran out, and the count of what they left out unlisted."""
        for reason, (count, url) in self.budget_unlisted.items():
            self.capture.not_followed.append(
                {
                    "url": url,
                    "via": "budget",
                    "found_on": "",
                    "reason": f"{reason}; this and {count - 1} more references were not"
                    " followed (not listed one by one)",
                }
            )
        self.budget_unlisted.clear()
        count, url = self.refs_unlisted
        if count:
            self.capture.not_followed.append(
                {
                    "url": url,
                    "via": "not followed",
                    "found_on": "",
                    "reason": f"this and {count - 1} more references not followed were not"
                    f" listed one by one (at most {NOT_FOLLOWED_LISTED} a capture)",
                }
            )
            self.refs_unlisted = [0, ""]
        self.capture.budget_spent = list(self.budget.reached)
        self.capture.live = [
            {k: v for k, v in e.items() if k != "started"} for e in self.live.values()
        ]

    def _settings(self) -> FetchSettings:
        """The fetch settings of one exchange: cut at the capture's deadline at the latest
        (a body cut there is marked ``WARC-Truncated: time``)."""
        left = self.budget.time_left()
        settings = self.c.settings
        if left is None or (settings.max_time is not None and settings.max_time <= left):
            return settings
        return replace(settings, max_time=left)

    def _metered(self, pieces: Iterable[memoryview], response: Response) -> Iterator[memoryview]:
        """A body as stored, counted against the size budget; cut where it runs out
        (marked ``WARC-Truncated: length``)."""
        for piece in pieces:
            allowed = self.budget.take_bytes(len(piece))
            if allowed < len(piece):
                if allowed:
                    yield piece[:allowed]
                response.truncated = "length"
                return
            yield piece

    # discovery -----------------------------------------------------------
    def _expand_safely(self, fetched: Fetched) -> list[Task]:
        """:meth:`_expand`, turning a parser failure into an error of that URL."""
        try:
            return self._expand(fetched)
        except Exception as exc:  # hostile input must not end the capture
            self._error(fetched.final_url, f"could not parse: {exc!r}", fetched.task.role)
            return []

    def _expand(self, fetched: Fetched) -> list[Task]:
        """Tasks for what a fetched body references."""
        task = fetched.task
        if fetched.body is None or not task.expand:
            return []
        found: Iterable[Found] = ()
        found_html = False
        poll: Task | None = None  # a live playlist's next reload (--live-duration)
        url = fetched.final_url
        media = fetched.media_type or ""
        unfetched: list[Unfetched] = []  # file:, javascript:, a large data: ...
        cut: list[str] = []  # what a parser's limit left unread: the capture is partial
        if task.role in ("page", "iframe") and (media in HTML_TYPES or not media):
            info = parse_html(fetched.body, url, fetched.charset_header)
            if task.role == "page":
                self._page_info(info, first=task.is_seed)
            found = info.resources
            found_html = True
            unfetched = list(info.unfetched)
        elif media in CSS_TYPES or urlsplit(url).path.lower().endswith(".css"):
            found = parse_css(fetched.body, url, unfetched)
        elif is_hls(url, media):  # segment URLs made one at a time, as the budget allows
            found = iter_hls(fetched.body, url)
            poll = self._live(fetched)
        elif is_dash(url, media):
            found = iter_dash(fetched.body, url, cut)
        for skipped in unfetched:
            self._not_followed(
                {"url": skipped.url, "via": skipped.via, "found_on": url, "reason": skipped.reason}
            )
        tasks = []
        items = iter(found)
        for item in items:
            reason = self._creation_refused()
            if reason is not None:  # the rest of the source is never made into tasks
                self._left_out_rest(item, items, url, reason)
                break
            new = self._task_for(item, task, url, from_html=found_html)
            if new is not None:
                tasks.append(new)
        for reason in cut:
            self._error(url, f"not read to the end: {reason}", task.role)
        if poll is not None:
            tasks.append(poll)
        return tasks

    def _task_for(
        self, item: Found, parent: Task, parent_url: str, *, from_html: bool
    ) -> Task | None:
        try:
            url = check_url(item.url)
        except InvalidURL:
            return None
        role: str = item.role
        if role == "redirect":  # <meta http-equiv=refresh>: the frame navigates on
            role = parent.role
        reason = None
        if item.via == META_REFRESH and parent.via == META_REFRESH:
            reason = "a second refresh"
        elif role == "iframe" and parent.role == "iframe" and item.via != META_REFRESH:
            reason = "nested iframe"
        if reason is not None:
            self._not_followed(
                {"url": url, "via": item.via, "found_on": parent_url, "reason": reason}
            )
            return None
        if item.role in ("video", "video-manifest") and from_html:
            with self.seen_lock:
                self.videos.setdefault(url, VideoFound(url, item.via, parent_url, item.role))
        if role in ("iframe", "video", "embed") or item.via.startswith(PLATFORM_META):
            self._note_platform(url, item.via, parent_url)
        if not self._claim(url):
            return None
        with self.seen_lock:
            self.planned += 1
        self.order[url] = len(self.order)
        expand = (
            item.expand
            or role == "video"
            or (role == "video-manifest" and item.via != "hls variant")
        )
        return Task(url, role, item.via, parent_url, expand=expand)

    def _live(self, fetched: Fetched) -> Task | None:
        """A live HLS media playlist (no ``#EXT-X-ENDLIST``): noted as live, and with
        ``--live-duration``, the task that reloads it after its target duration."""
        task, url = fetched.task, fetched.final_url
        info = hls_playlist(fetched.body or b"")
        # followed under its first URL: a reload redirected to a new URL each time
        # must not start the --live-duration afresh
        key = task.live_of or url
        entry = self.live.get(key)
        now = time.monotonic()
        if info is None or (not info.live and entry is None):
            return None
        if entry is None:
            entry = self.live[key] = {
                "url": url,
                "found_on": task.found_on,
                "target_duration": info.target_duration,
                "polls": 0,
                "followed_seconds": 0.0,
                "snapshot": True,
                "ended": False,
                "started": now,
            }
        entry["polls"] += 1
        if task.poll:
            entry["snapshot"] = False
            entry["followed_seconds"] = round(now - entry["started"], 3)
        if not info.live:  # the stream ended while it was followed
            entry["ended"] = True
            return None
        follow = self.options.live_duration
        interval = min(max(info.target_duration or 6.0, LIVE_POLL_MIN), LIVE_POLL_MAX)
        due = now + interval
        if not follow or due > entry["started"] + follow:
            return None
        left = self.budget.time_left()
        if left is not None and now + left <= due:
            self.budget.note_time()  # the capture's deadline cut the following short
            return None
        return replace(
            task, url=url, via="hls live reload", poll=task.poll + 1, not_before=due, live_of=key
        )

    def _cookie_for(self, url: str) -> str | None:
        """The Cookie header ``--cookies`` gives for ``url`` (recorded redacted)."""
        if self.cookies is None:
            return None
        import urllib.request

        probe = urllib.request.Request(url)
        with self.seen_lock:
            self.cookies.add_cookie_header(probe)
        return probe.get_header("Cookie")

    # platform videos (yt-dlp) ---------------------------------------------------
    def _note_platform(self, url: str, via: str, found_on: str | None) -> None:
        if not self.options.platform_videos:
            return
        if platform_of(url, self.options.platform_hosts) is None:
            return
        with self.seen_lock:
            self.platform_urls.setdefault(url, (via, found_on))

    def _platform_media(self) -> None:
        """Each platform URL found, through yt-dlp; every exchange recorded."""
        if not self.platform_urls:
            return
        opts = self.options
        limits = MediaLimits(
            max_size=opts.max_video_size,
            max_duration=opts.max_video_duration,
            allow_playlists=opts.allow_playlists,
            cookies=opts.cookies,
            timeout=opts.timeout,
            max_redirects=opts.max_redirects,
        )
        self.capture.libraries["yt-dlp"] = ytdlp_version()
        for url, (via, found_on) in list(self.platform_urls.items()):
            if self.stop.is_set():
                raise CaptureInterrupted("stopped before the platform videos")
            spent = self.budget.spent()
            if spent is not None:
                self._left_out(url, via, found_on, spent)
                continue
            self.c.progress.started(url, "platform video")
            exchange = functools.partial(self._media_exchange, url)
            self.spool_dir.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory(prefix="ytdlp-", dir=self.spool_dir) as work:
                result = fetch_media(url, exchange, limits, Path(work))
                if self.media_fatal is not None:  # yt-dlp saw it as a failed request only
                    raise self.media_fatal
                self.c.progress.finished(url)
                self._media_outcome(result, via, found_on)

    def _media_exchange(
        self, platform_url: str, url: str, method: str, headers: list[tuple[str, str]], body: bytes
    ) -> Exchanged:
        """One exchange yt-dlp asked for: sent, recorded, and handed back to it.

        An interruption or a failure to write the archive is kept and raised again
        once yt-dlp returns: yt-dlp would take it for a failed request and go on.
        """
        try:
            return self._media_exchange_unguarded(platform_url, url, method, headers, body)
        except (CaptureInterrupted, Interrupted, ArchiveWriteError, OSError) as exc:
            self.media_fatal = exc
            self.stop.set()
            raise MediaError(f"{url}: the capture stopped ({exc})") from exc

    def _media_exchange_unguarded(
        self, platform_url: str, url: str, method: str, headers: list[tuple[str, str]], body: bytes
    ) -> Exchanged:
        refused = self.budget.take_request()
        if refused is not None:  # yt-dlp is told the request failed, and why
            self._left_out(url, "yt-dlp", platform_url, refused, task=True)
            raise MediaError(f"{url}: not fetched: {refused}")
        try:
            check_url(url)
            request = build_request(
                url, headers, method=method, body=body, secret=("Cookie", "Authorization")
            )
            started = self.c.clock()
            response = open_exchange(request, self._settings(), self.stop)
        except (FetchError, InvalidURL) as exc:
            raise MediaError(str(exc)) from exc
        task = Task(url, "platform", "yt-dlp", platform_url)
        fetched = Fetched(task, url)
        self.spool_dir.mkdir(parents=True, exist_ok=True)
        # closed by yt-dlp when it has read the response (or below, on failure)
        spool = tempfile.SpooledTemporaryFile(  # noqa: SIM115
            max_size=SPOOL_MEMORY, dir=str(self.spool_dir)
        )
        limit = self.options.max_video_size
        declared = response.declared_length
        too_large = bool(
            limit and declared and declared > limit and _is_media(url, response.media_type)
        )
        broken: list[Exception] = []  # what yt-dlp cannot read must not stop the recording
        try:
            feed_body, finish_body = body_sink(spool.write, response.headers)

            def feed(piece: memoryview) -> None:
                if not broken:
                    try:
                        feed_body(piece)
                    except Exception as exc:
                        broken.append(exc)

            def finish() -> None:
                if not broken:
                    try:
                        finish_body()
                    except Exception as exc:
                        broken.append(exc)

            try:  # a video over the limit: its head recorded, the body marked truncated
                self._write_exchange(
                    task, url, "platform", response, started, False, fetched, feed,
                    max_size=0 if too_large else None,
                )  # fmt: skip
            finally:
                response.close()
            finish()
        except BaseException:
            spool.close()
            raise
        spool.seek(0)
        if broken:
            spool.close()
            raise MediaError(f"{url}: the body (recorded as served) cannot be decoded: {broken[0]}")
        if too_large:
            spool.close()
            raise MediaError(f"{url}: {declared} bytes, over --max-video-size {limit}")
        if response.error:
            spool.close()
            raise MediaError(f"{url}: incomplete response: {response.error}")
        if response.slow:
            spool.close()
            raise MediaError(f"{url}: {_too_slow(response.slow)}")
        return Exchanged(url, response.status, response.reason, response.headers, spool)

    def _media_outcome(self, result: MediaResult, via: str, found_on: str | None) -> None:
        capture = self.capture
        extractor = result.extractor or "yt-dlp"
        video = VideoFound(result.url, f"{via} (yt-dlp {extractor})", found_on or "", "platform")
        if result.error:
            video.error = f"yt-dlp: {result.error}"
            self._error(result.url, video.error, "platform video")
        elif result.skipped:
            video.error = f"skipped: {result.skipped}"
            capture.not_followed.append(
                {
                    "url": result.url,
                    "via": via,
                    "found_on": found_on or "",
                    "reason": f"platform video skipped: {result.skipped}",
                }
            )
        with self.seen_lock:
            self.videos[result.url] = video
        with self.series.lock:
            self._drain()
            conversion = self._write_conversion(result) if result.merged else None
            self._write_media_info(result, conversion)

    def _write_conversion(self, result: MediaResult) -> dict[str, Any]:
        """The playable file yt-dlp merged from separate streams, as a conversion record.

        It refers to the recorded response its first stream came from; the media-info
        record lists every source record and the tool that merged them.  The raw
        responses stay the evidence.
        """
        assert result.merged is not None
        recorded: dict[str, list[str]] = {}
        for entry in self.capture.records:
            if (
                entry.role == "platform"
                and entry.warc_type in ("response", "revisit")
                and entry.url
            ):
                recorded.setdefault(entry.url, []).append(entry.record_id)
        sources = []
        for source in result.sources:
            ids = [rid for u in source["urls"] for rid in recorded.get(u, [])[-1:]]
            sources.append({**source, "record_ids": ids})
        refers = next((s["record_ids"][0] for s in sources if s["record_ids"]), None)
        tool = ffmpeg()
        if tool is not None:
            self.capture.libraries["ffmpeg"] = tool[1]
        size = result.merged.stat().st_size
        wfile = self.series.current(size)
        now = self.c.clock()
        target = own_record_uri("conversion", result.url)  # a file of ours, not the page
        fields = self._own_fields(wfile, "conversion", target, now, refers)
        media_type = mimetypes.guess_type(result.merged.name)[0] or "application/octet-stream"
        fields.append(("Content-Type", media_type))
        stream = wfile.begin_record(fields, b"", level=compression_level(media_type))
        with result.merged.open("rb") as merged:
            _copy(merged, stream, self.stop)
        rec = stream.finish()
        self.capture.records.append(
            placed(
                rec,
                warc_type="conversion",
                url=target,
                fetched_at=now,
                role="conversion",
                content_type=media_type,
                payload_sha256=rec.payload_sha256,
                payload_length=rec.payload_length,
                discovered_via="yt-dlp merge",
                refers_to=refers,
            )
        )
        return {
            "record_id": rec.record_id,
            "file": result.merged.name,
            "tool": {"name": "ffmpeg (imageio-ffmpeg)", "version": tool[1] if tool else None},
            "merged_by": {"name": "yt-dlp", "version": self.capture.libraries.get("yt-dlp")},
            "sources": sources,
        }

    def _write_media_info(self, result: MediaResult, conversion: dict[str, Any] | None) -> None:
        """yt-dlp's account of one platform URL, as a metadata record."""
        body = {
            "schema": MEDIA_INFO_SCHEMA,
            "url": result.url,
            "extractor": result.extractor,
            "yt_dlp": self.capture.libraries.get("yt-dlp"),
            "skipped": result.skipped,
            "error": result.error,
            "warnings": result.warnings,
            "conversion": conversion,
            "info": result.info,
        }
        block = json.dumps(body, indent=1, ensure_ascii=False, default=str).encode("utf-8")
        # the response (or revisit) of the platform URL itself, when yt-dlp fetched it
        page = [
            r.record_id
            for r in self.capture.records
            if r.url == result.url and r.warc_type in ("response", "revisit")
        ]
        self._write_json_record(
            result.url,
            block,
            "media-info",
            self.c.clock(),
            len(block),
            refers_to=page[-1] if page else None,
            via="yt-dlp",
        )

    def _write_json_record(
        self,
        url: str,
        block: bytes,
        role: str,
        now: datetime,
        upcoming: int,
        *,
        refers_to: str | None = None,
        via: str | None = None,
    ) -> str:
        """A metadata record holding JSON about ``url``; the caller holds the writer.

        Its target URI is ``urn:archiver-<role>:<url>``, not ``url``: replay tools
        would serve it in place of the page (see :func:`archiver.core.urls.own_record_uri`).
        Returns its record id."""
        wfile = self.series.current(upcoming)
        target = own_record_uri(role, url)
        fields = self._own_fields(wfile, "metadata", target, now, refers_to)
        fields.append(("Content-Type", "application/json"))
        rec = wfile.write_record(fields, block)
        self.capture.records.append(
            placed(
                rec,
                warc_type="metadata",
                url=target,
                fetched_at=now,
                role=role,
                content_type="application/json",
                payload_sha256=rec.block_sha256,
                payload_length=rec.content_length,
                discovered_via=via,
                refers_to=refers_to,
            )
        )
        return rec.record_id

    def _page_info(self, info: PageInfo, first: bool) -> None:
        """What the page says about itself; a page reached by refresh only fills gaps."""
        capture = self.capture
        for name in ("title", "author", "published_at", "language"):
            if first or getattr(capture, name) is None:
                setattr(capture, name, getattr(info, name))
        seen = set(capture.outlinks)
        for link in info.outlinks:
            if link.url not in seen:
                seen.add(link.url)
                capture.outlinks.append(link.url)

    # fetching ------------------------------------------------------------
    def _fetch(self, task: Task) -> Fetched:
        """Fetch a task's URL, following and recording redirects.

        Anything that goes wrong before a record is being written (a hostile
        response, a bug in parsing it) becomes an error of this URL; a failure
        while writing ends the capture.
        """
        try:
            if task.not_before:  # a live playlist's reload: at its time
                wait = task.not_before - time.monotonic()
                if wait > 0 and self.stop.wait(wait):
                    raise CaptureInterrupted(f"stopped while waiting to reload {task.url}")
            return self._fetch_hops(task)
        except (ArchiveWriteError, CaptureInterrupted, Interrupted):
            raise
        except Exception as exc:
            fetched = Fetched(task, task.url, error=f"unexpected error: {exc!r}")
            self._fetch_failed(task, task.url, fetched.error or "")
            return fetched

    def _fetch_hops(self, task: Task) -> Fetched:
        url = task.url
        hops = 0
        same_origin = True  # the seed's credentials go no further than a cross-origin redirect
        while True:
            self.c.progress.started(url, task.role)
            try:
                fetched = self._exchange(task, url, authorised=same_origin)
            finally:
                self.c.progress.finished(url)
            if fetched.error is not None:
                self._fetch_failed(task, url, fetched.error)
                return fetched
            if fetched.skipped is not None:  # a budget ran out: listed in not_followed
                video = self.videos.get(task.url)
                if video is not None:
                    video.error = f"not fetched: {fetched.skipped}"
                return fetched
            if fetched.location is None:
                if task.is_seed and _is_media(url, fetched.media_type):
                    # the seed itself is a video (or a manifest): list it as one
                    kind = "video-manifest" if fetched.body is not None else "video"
                    self.videos.setdefault(task.url, VideoFound(url, "seed", task.url, kind))
                self._note_video(task, fetched)
                return fetched
            if task.is_seed:
                self.capture.redirects.append(url)
            hops += 1
            try:
                if hops > self.options.max_redirects:
                    raise InvalidURL(f"more than {self.options.max_redirects} redirects")
                next_url = check_url(fetched.location)
            except InvalidURL as exc:
                fetched.error = f"redirect not followed: {exc}"
                self._fetch_failed(task, url, fetched.error)
                return fetched
            if not self._claim(next_url) and not task.is_seed and not task.poll:
                return fetched  # already fetched for another reference
            same_origin = same_origin and origin(next_url) == origin(url)
            url = next_url

    def _fetch_failed(self, task: Task, url: str, reason: str) -> None:
        if task.is_seed:
            return  # the capture itself failed: reported as its failure
        self._error(url, reason, task.role)
        video = self.videos.get(task.url)
        if video is not None:
            video.error = reason

    def _error(self, url: str, reason: str, role: str) -> None:
        with self.seen_lock:
            self.capture.errors.append(CaptureError(url, reason, role))

    def _note_video(self, task: Task, fetched: Fetched) -> None:
        video = self.videos.get(task.url)
        if video is not None:
            video.http_status = fetched.status
            video.payload_sha256 = fetched.payload_sha256
            video.payload_length = fetched.payload_length

    def _exchange(self, task: Task, url: str, *, authorised: bool = True) -> Fetched:
        """One request and response, written to the WARC as the body arrives.

        The seed's credentials go with it (``authorised``: no cross-origin redirect
        led here) if ``url`` is of their origin, and are recorded redacted."""
        role = task.role
        headers = [("User-Agent", self.options.user_agent)]
        if role in ("page", "iframe"):
            headers.append(("Accept", "text/html,application/xhtml+xml,*/*;q=0.8"))
        else:
            headers.append(("Accept", "*/*"))
        if role in ("video", "video-segment"):
            headers.append(("Accept-Encoding", "identity"))
        else:
            headers.append(("Accept-Encoding", "gzip, deflate"))
        if task.found_on:
            headers.append(("Referer", referer(task.found_on)))
        credentials = self.credentials
        if authorised and credentials is not None and origin(url) == credentials.origin:
            headers.append(("Authorization", credentials.header()))
        cookie = self._cookie_for(url)
        if cookie:
            headers.append(("Cookie", cookie))
        fetched = Fetched(task, url)
        refused = self.budget.take_request()
        if refused is not None:  # listed, never fetched: the capture is partial
            fetched.skipped = refused
            self._left_out(url, task.via, task.found_on, refused, task=True)
            return fetched
        try:
            request = build_request(url, headers, secret=("Cookie", "Authorization"))
            started = self.c.clock()
            response = open_exchange(request, self._settings(), self.stop)
        except FetchError as exc:
            if self.budget.out_of_time():  # the capture's deadline came first
                fetched.skipped = self.budget.note_time()
                self._left_out(url, task.via, task.found_on, fetched.skipped, task=True)
                return fetched
            fetched.error = exc.reason
            return fetched
        fetched.status = response.status
        fetched.media_type = response.media_type
        fetched.charset_header = response.content_type
        location = response.header("Location")
        is_redirect = response.status in (301, 302, 303, 307, 308) and location
        keep = task.expand and not is_redirect
        try:
            self._write_exchange(task, url, role, response, started, keep, fetched)
        finally:
            response.close()  # stops a read-ahead thread at once, whatever happened
        if response.truncated == "time" and self.budget.out_of_time():
            self.budget.note_time()  # cut at the capture's deadline
        if is_redirect and location:
            fetched.location = _resolve_location(url, location)
        if response.error:
            reason = f"incomplete response: {response.error}"
            if task.is_seed:
                self.capture.failure = reason
            else:
                self._error(url, reason, role)
        if response.slow:  # what came is stored, marked truncated: the capture is partial
            self._error(url, _too_slow(response.slow), role)
        return fetched

    def _write_exchange(
        self,
        task: Task,
        url: str,
        role: str,
        response: Response,
        started: datetime,
        keep: bool,
        fetched: Fetched,
        tap: Callable[[memoryview], Any] | None = None,
        max_size: int | None = None,
    ) -> None:
        """Receive ``response`` into the WARC; fill in ``fetched``.

        ``tap``, if given, also receives every piece of the body as it arrives (for
        yt-dlp, which reads what was recorded).

        Small bodies are collected in memory and written when the writer is free
        (never waiting for it); large ones stream straight into the WARC when the
        writer is free, and into a spool file while it is busy with another.
        """
        declared = response.declared_length
        large = declared is None or declared > SMALL_BODY
        # Receiving overlaps hashing and writing for large bodies (a thread per body).
        limit = self.options.max_size if max_size is None else max_size
        body_iter: Iterable[memoryview] = response.iter_body(limit, read_ahead=2 if large else 0)
        body_iter = self._metered(body_iter, response)  # the capture's size budget
        if tap is not None:
            body_iter = _tapped(body_iter, tap)
        progress = self.c.progress
        if declared is not None:  # the size is known: the display shows a percentage
            progress.sized(url, declared)
        first = bytearray()
        complete = True
        for chunk in body_iter:
            first += chunk
            progress.advanced(url, len(chunk))
            if len(first) >= SMALL_BODY:
                complete = False
                break
        keep = keep and _parse_worthy(url, response, role, first)
        kept = bytearray(first[:PARSE_LIMIT]) if keep else None
        level = compression_level(response.content_type)
        head = response.head

        def streamed(source: Callable[[StreamingRecord], None]) -> RecordWriter:
            def write(wfile: WarcFile, fields: Fields) -> WrittenRecord:
                stream = wfile.begin_record(fields, head, level=level)
                source(stream)
                return stream.finish(response.truncated)

            return write

        def note(req: WrittenRecord, rec: WrittenRecord) -> None:
            self._entries(task, url, role, response, started, req, rec)

        try:
            if complete:
                block = head + bytes(first)
                fetched.payload_sha256 = hashlib.sha256(first).hexdigest()
                fetched.payload_length = len(first)

                def buffered(wfile: WarcFile, fields: Fields) -> WrittenRecord:
                    return wfile.write_record(
                        fields,
                        block,
                        payload_offset=len(head),
                        truncated=response.truncated,
                        level=level,
                    )

                self._write_soon(
                    lambda: note(*self._write_pair(response, url, started, len(block), buffered)),
                    len(block),
                )
            elif self.series.lock.acquire(blocking=False):
                # The writer is free: the body goes straight from the socket into the WARC.
                def direct(stream: StreamingRecord) -> None:
                    stream.write(memoryview(first))
                    self._pump(body_iter, stream.write, url, kept)

                try:
                    upcoming = (declared or 0) + len(head)
                    req, rec = self._write_pair(response, url, started, upcoming, streamed(direct))
                    note(req, rec)
                    self._drain()
                finally:
                    self.series.lock.release()
                fetched.payload_sha256 = rec.payload_sha256
                fetched.payload_length = rec.payload_length
            else:
                # The writer is busy with another large body: spool this one meanwhile.
                self.spool_dir.mkdir(parents=True, exist_ok=True)
                with tempfile.SpooledTemporaryFile(
                    max_size=SPOOL_MEMORY, dir=str(self.spool_dir)
                ) as spool:
                    spool.write(first)
                    self._pump(body_iter, spool.write, url, kept)
                    upcoming = spool.tell() + len(head)
                    spool.seek(0)
                    with self.series.lock:
                        req, rec = self._write_pair(
                            response,
                            url,
                            started,
                            upcoming,
                            streamed(lambda s: _copy(spool, s, self.stop)),
                        )
                        note(req, rec)
                        self._drain()
                fetched.payload_sha256 = rec.payload_sha256
                fetched.payload_length = rec.payload_length
        except (CaptureInterrupted, Interrupted):
            raise
        except Exception as exc:
            raise ArchiveWriteError(f"while writing {url}: {exc}") from exc
        if kept is not None:
            lowered = {k.lower(): v for k, v in response.headers}
            fetched.body = _decode_for_parsing(bytes(kept), lowered)
            if len(kept) < (fetched.payload_length or 0) or len(fetched.body) >= PARSE_LIMIT:
                self.capture.not_followed.append(
                    {
                        "url": url,
                        "via": "parse limit",
                        "found_on": url,
                        "reason": f"only the first {PARSE_LIMIT >> 20} MiB of it were searched"
                        " for resources and links (it is stored whole)",
                    }
                )

    def _write_soon(self, job: Callable[[], None], size: int) -> None:
        """Run ``job`` (which writes ``size`` bytes of records) soon, without waiting.

        If the writer is busy (another worker streaming a long body into the WARC),
        the job is queued and run by whoever holds the writer next, at the latest
        by the final drain.  Past BACKLOG_LIMIT bytes queued, the worker waits for
        the writer instead, so memory stays bounded.
        """
        with self.backlog_lock:
            queue_it = self.backlog_bytes + size <= BACKLOG_LIMIT
            if queue_it:
                self.backlog.append((job, size))
                self.backlog_bytes += size
        if queue_it:
            if self.series.lock.acquire(blocking=False):
                try:
                    self._drain()
                finally:
                    self.series.lock.release()
            return
        with self.series.lock:
            self._drain()
            job()

    def _drain(self) -> None:
        """Run the queued writes; the caller holds the writer lock."""
        while True:
            with self.backlog_lock:
                if not self.backlog:
                    return
                job, size = self.backlog.popleft()
                self.backlog_bytes -= size
            job()

    def _write_pair(
        self,
        response: Response,
        url: str,
        started: datetime,
        upcoming: int,
        write_response: RecordWriter,
    ) -> tuple[WrittenRecord, WrittenRecord]:
        """The request record, then the response record; the caller holds the lock."""
        pair = self._write_records(response, url, started, upcoming, write_response)
        if response.tls_error is not None and response.certificate is not None:
            self._note_unverified(response, url, started, pair[1].record_id)
        return pair

    def _note_unverified(self, response: Response, url: str, when: datetime, rec: str) -> None:
        """Under --insecure, the first response from a server whose certificate failed:
        a metadata record with the certificate and what was wrong with it."""
        request = response.request
        host = f"{request.host}:{request.port}"
        der = response.certificate or b""
        digest = hashlib.sha256(der).hexdigest()
        seen = self.capture.tls_unverified
        if any(t.host == host and t.certificate_sha256 == digest for t in seen):
            return
        body = {
            "schema": TLS_SCHEMA,
            "url": url,  # the first URL fetched from this server, whose response it refers to
            "host": host,
            "verified": False,
            "problem": response.tls_error,
            "protocols": response.protocols,
            "cipher_suite": response.cipher_suite,
            "certificate_sha256": digest,
            "certificate_pem": ssl.DER_cert_to_PEM_cert(der),
        }
        block = json.dumps(body, indent=1).encode("ascii")
        record_id = self._write_json_record(url, block, "certificate", when, 0, refers_to=rec)
        seen.append(UnverifiedTLS(host, response.tls_error or "", digest, record_id, url))

    def _write_records(
        self,
        response: Response,
        url: str,
        started: datetime,
        upcoming: int,
        write_response: RecordWriter,
    ) -> tuple[WrittenRecord, WrittenRecord]:
        wfile = self.series.current(upcoming)
        req_id, resp_id = self.c.new_record_id(), self.c.new_record_id()
        with wfile.unit():  # a request is kept only with its response
            req = wfile.write_record(
                self._exchange_fields(wfile, "request", (req_id, resp_id), url, started, response),
                response.request.as_recorded,
            )
            fields = self._exchange_fields(
                wfile, "response", (resp_id, req_id), url, started, response
            )
            rec = write_response(wfile, fields)
            original = self._duplicate_of(response, rec, url, started)
            if original is None:
                return req, rec
            # the payload is in the archive already: the pair again, as request and revisit
            wfile.retract(req.offset)
            req = wfile.write_record(
                self._exchange_fields(wfile, "request", (req_id, resp_id), url, started, response),
                response.request.as_recorded,
            )
            revisit = wfile.write_record(
                self._revisit_fields(
                    wfile, (resp_id, req_id), url, started, response, original, rec
                ),
                response.head,
            )
            return req, replace(
                revisit,
                payload_sha256=rec.payload_sha256,
                payload_length=rec.payload_length,
                refers_to=original.record_id,
            )

    def _duplicate_of(
        self, response: Response, rec: WrittenRecord, url: str, started: datetime
    ) -> Original | None:
        """The record that holds this response's payload already, if one does."""
        if not self.options.dedup or rec.truncated or response.status != 200:
            return None
        if rec.payload_sha256 is None or (rec.payload_length or 0) < DEDUP_MIN:
            return None
        original = self.known.find(rec.payload_sha256)
        if original is None:
            # the revisit's WARC-Refers-To-Date is the original's WARC-Date
            self.known.add(rec.payload_sha256, Original(rec.record_id, url, started))
        return original

    def _revisit_fields(
        self,
        wfile: WarcFile,
        ids: tuple[str, str],
        url: str,
        when: datetime,
        response: Response,
        original: Original,
        duplicate: WrittenRecord,
    ) -> Fields:
        """A revisit record of the identical-payload-digest profile (WARC 1.1, 6.7.2)."""
        fields = self._exchange_fields(wfile, "response", ids, url, when, response)
        fields[0] = ("WARC-Type", "revisit")
        fields += [
            ("WARC-Payload-Digest", f"sha256:{duplicate.payload_sha256}"),
            ("WARC-Profile", REVISIT_PROFILE),
            ("WARC-Refers-To", original.record_id),
            ("WARC-Refers-To-Target-URI", original.url),
            ("WARC-Refers-To-Date", warc_date(original.date)),
        ]
        return fields

    def _pump(
        self,
        body_iter: Iterable[memoryview],
        sink: Callable[[memoryview], Any],
        url: str,
        kept: bytearray | None,
    ) -> None:
        advanced = self.c.progress.advanced
        stop = self.stop
        for chunk in body_iter:
            if stop.is_set():
                raise CaptureInterrupted(f"stopped while fetching {url}")
            sink(chunk)
            if kept is not None and len(kept) < PARSE_LIMIT:
                kept += chunk[: PARSE_LIMIT - len(kept)]
            advanced(url, len(chunk))

    # records -------------------------------------------------------------
    def _own_fields(
        self,
        wfile: WarcFile,
        warc_type: str,
        target: str,
        now: datetime,
        refers: str | None,
    ) -> Fields:
        """The head of a record of ours (metadata, conversion), whose ``target`` is an
        ``urn:archiver-<role>:<url>`` (see :func:`archiver.core.urls.own_record_uri`)."""
        fields: Fields = [
            ("WARC-Type", warc_type),
            ("WARC-Record-ID", self.c.new_record_id()),
            ("WARC-Date", warc_date(now)),
            ("WARC-Target-URI", target),
            ("WARC-Warcinfo-ID", self.series.warcinfo_ids[wfile.name]),
        ]
        if refers:
            fields.append(("WARC-Refers-To", refers))
        return fields

    def _exchange_fields(
        self,
        wfile: WarcFile,
        warc_type: str,
        ids: tuple[str, str],
        url: str,
        when: datetime,
        response: Response,
    ) -> Fields:
        """Header fields of a request or response record; ``ids`` = (own, partner)."""
        fields: Fields = [
            ("WARC-Type", warc_type),
            ("WARC-Record-ID", ids[0]),
            ("WARC-Date", warc_date(when)),
            ("WARC-Target-URI", url),
            ("WARC-Warcinfo-ID", self.series.warcinfo_ids[wfile.name]),
            ("WARC-IP-Address", response.ip_address),
            ("WARC-Concurrent-To", ids[1]),
        ]
        if warc_type == "response":
            fields += [("WARC-Protocol", p) for p in response.protocols]
            if response.cipher_suite:
                fields.append(("WARC-Cipher-Suite", response.cipher_suite))
            fields.append(("Content-Type", HTTP_RESPONSE_TYPE))
        else:
            fields.append(("Content-Type", HTTP_REQUEST_TYPE))
        return fields

    def _entries(
        self,
        task: Task,
        url: str,
        role: str,
        response: Response,
        when: datetime,
        req: WrittenRecord,
        rec: WrittenRecord,
    ) -> None:
        is_redirect = response.status in (301, 302, 303, 307, 308) and response.header("Location")
        record_role = "redirect" if is_redirect else role
        via = task.via if url == task.url else f"{task.via} (redirected from {task.url})"
        common: dict[str, Any] = {
            "url": url,
            "fetched_at": when,
            "role": record_role,
            "ip_address": response.ip_address,
            "discovered_from": task.found_on,
            "discovered_via": via,
        }
        media = response.media_type
        entries = [
            placed(
                req,
                warc_type="request",
                concurrent_to=rec.record_id,
                **common,
            ),
            placed(
                rec,
                warc_type="response",
                http_status=response.status,
                content_type=media,
                payload_sha256=rec.payload_sha256,
                payload_length=rec.payload_length,
                truncated=rec.truncated,
                concurrent_to=req.record_id,
                **common,
            ),
        ]
        if rec.refers_to is not None:  # a revisit: the row as a reader of the WARC sees it
            entries[1] = replace(
                entries[1],
                warc_type="revisit",
                http_status=None,
                content_type=None,
                payload_length=None,
                refers_to=rec.refers_to,
            )
        with self.seen_lock:
            self.capture.records.extend(entries)
            if task.is_seed and not is_redirect:
                self.page_response_id = rec.record_id

    def _write_metadata(self) -> None:
        _give_back_memory()  # what the fetch threads freed
        capture = self.capture
        now = self.c.clock()
        body = {
            "schema": METADATA_SCHEMA,
            "capture_id": capture.capture_id,
            "seed_url": capture.seed_url,
            "seed_url_unicode": capture.seed_url_unicode,  # as given, if not ASCII
            "auth_origin": capture.auth_origin,  # Basic auth sent there, recorded redacted
            "final_url": capture.final_url,
            "http_status": capture.http_status,
            "status": capture.status.value,
            "failure": capture.failure,
            "started_at": isoformat(capture.started_at),
            "finished_at": isoformat(capture.finished_at or now),
            "operator": self.options.operator,
            "collection": self.options.collection,
            "note": self.options.note,
            "tool": {"name": TOOL_NAME, "version": __version__},
            "libraries": capture.libraries,
            "hostname": capture.hostname,
            "platform": capture.platform,
            "python": sys.version.split()[0],
            "user_agent": self.options.user_agent,
            "options": self.options.recorded(),
            "page": {
                "title": capture.title,
                "author": capture.author,
                "published_at": capture.published_at,
                "language": capture.language,
            },
            "redirects": capture.redirects,
            "videos": [v.to_json() for v in capture.videos],
            "outlinks": capture.outlinks,
            "errors": [e.to_json() for e in capture.errors],
            "not_followed": capture.not_followed,
            "budget_spent": capture.budget_spent,  # what ran out left things out: partial
            "live": capture.live,  # live HLS playlists: a snapshot, or followed a while
            "tls_unverified": [t.to_json() for t in capture.tls_unverified],
            "truncated": [
                {"url": r.url, "reason": r.truncated}
                for r in capture.records
                if r.truncated and r.warc_type == "response"
            ],
            "record_count": len(capture.records),
            # "records" comes last: what each record is to the capture, so the index can
            # be rebuilt from the WARCs (see _metadata_json)
        }
        block = _metadata_json(body, capture.records)
        self._write_json_record(
            capture.seed_url, block, "metadata", now, 0, refers_to=self.page_response_id
        )
        del block
        _give_back_memory()


def _metadata_json(body: dict[str, Any], records: Iterable[RecordEntry]) -> bytes:
    """The metadata record's block: ``body`` with a last key ``"records"`` listing each
    record's id, role and provenance (not the warcinfo records; media-info and conversion
    records too), as ``json.dumps(..., indent=1, ensure_ascii=False)`` in UTF-8 writes it,
    byte for byte.  The list is written entry by entry into one buffer: one dict per
    record and the pure-Python encoder's (``indent``) chunks of them, all held at once,
    took 40 MB for a page of 20,000 images."""
    head = json.dumps(body, indent=1, ensure_ascii=False, sort_keys=False)
    if not head.endswith("\n}"):  # an empty body: "{}"
        raise ValueError("the metadata record has no fields")
    value = json.JSONEncoder(ensure_ascii=False).encode  # a str, None: as dumps writes them
    out = bytearray(head[:-2].encode("utf-8"))
    out.extend(b',\n "records": [')
    empty = True
    for r in records:
        if r.warc_type == "warcinfo":
            continue
        item = (
            f'{"" if empty else ","}\n  {{\n   "record_id": {value(r.record_id)},'
            f'\n   "role": {value(r.role)},'
            f'\n   "discovered_from": {value(r.discovered_from)},'
            f'\n   "discovered_via": {value(r.discovered_via)}\n  }}'
        )
        out.extend(item.encode("utf-8"))
        empty = False
    out.extend(b"]\n}" if empty else b"\n ]\n}")
    return bytes(out)


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    try:
        return ctypes.CDLL(None).malloc_trim  # glibc only
    except (OSError, AttributeError):
        return None


def _give_back_memory() -> None:
    """Hand the C heap's free pages back to the system (glibc's ``malloc_trim``): what
    the fetch threads' arenas and the metadata record's buffers freed is otherwise kept,
    and the next step's peak adds to it (20 to 40 MB for a page of 50,000 images).
    Without glibc, nothing."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


def placed(rec: WrittenRecord, **provenance: Any) -> RecordEntry:
    """The index entry of a record just written: where it landed and its digests, with
    what the capture knows about it."""
    return RecordEntry(
        record_id=rec.record_id,
        warc_filename=rec.filename,
        warc_offset=rec.offset,
        warc_length=rec.length,
        block_sha256=rec.block_sha256,
        record_sha256=rec.record_sha256,
        **provenance,
    )


def _tapped(pieces: Iterable[memoryview], tap: Callable[[memoryview], Any]) -> Iterator[memoryview]:
    for piece in pieces:
        tap(piece)
        yield piece


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


def _arrived(records: Iterable[RecordEntry]) -> bool:
    """Whether any response arrived: as a ``response`` record, or as a ``revisit`` of a
    payload the archive holds already (a recapture is evidence in its own right)."""
    return any(r.warc_type in ("response", "revisit") for r in records)


def _too_slow(why: str) -> str:
    return (
        f"cut, too slow: {why} (--min-rate, --min-rate-window); what arrived is stored,"
        " marked WARC-Truncated: time"
    )


def _is_media(url: str, media_type: str | None) -> bool:
    media = media_type or ""
    return media.startswith(("video/", "audio/")) or is_hls(url, media) or is_dash(url, media)


def _resolve_location(url: str, location: str) -> str:
    """A Location header made absolute.  Sent as UTF-8 (as servers do), it is read as
    text: check_url then gives its host name in IDNA form and percent-encodes its
    path; other bytes outside ASCII are percent-encoded exactly as sent."""
    raw = location.strip().encode("latin-1", "replace")
    try:
        value = raw.decode("utf-8")
    except UnicodeDecodeError:
        value = quote(raw, safe=URL_SAFE)
    try:
        return urljoin(url, value)
    except ValueError:
        return value  # check_url refuses it with a message naming it


def _parse_worthy(url: str, response: Response, role: str, start: bytes | bytearray) -> bool:
    """Whether to keep a body for parsing (pages, stylesheets, manifests; never media)."""
    media = response.media_type or ""
    if role in ("page", "iframe"):
        if media in HTML_TYPES or is_hls(url, media) or is_dash(url, media):
            return True
        # no type, or text/*: parse unless it looks binary
        return (media == "" or media.startswith("text/")) and b"\x00" not in start[:1024]
    path = urlsplit(url).path.lower()
    return media in CSS_TYPES or path.endswith(".css") or is_hls(url, media) or is_dash(url, media)
