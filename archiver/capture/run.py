"""Capture a page, everything it needs to render and every video it references.

The flow of one capture: fetch the seed URL (following and recording every
redirect), parse the page with :mod:`archiver.web.discover`, fetch what it found
concurrently (stylesheets and what they import, scripts, images, fonts, iframes
one level deep, videos, HLS/DASH manifests and their segments), and write every
exchange into the capture's own WARC files as it arrives.  A metadata record
summarising the capture closes the last file.

This module holds the run's flow; its parts live beside it: :mod:`.state` (what they
share), :mod:`.metadata` (our own records), :mod:`.recorder` (the exchanges' records),
:mod:`.fetcher` (one task's request and redirects), :mod:`.videos` (live playlists,
yt-dlp) and :mod:`.frontier` (the queue and what each body names).
"""

from __future__ import annotations

import contextlib
import json
import platform
import signal
import socket
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Protocol

from archiver import TOOL_NAME, __version__
from archiver.capture.browser import _Browse
from archiver.capture.metadata import METADATA_SCHEMA, _metadata_json, library_versions
from archiver.capture.recorder import PARSE_LIMIT
from archiver.capture.state import ArchiveWriteError, CaptureInterrupted, Fetched, Task
from archiver.core.layout import capture_lock, capture_running
from archiver.core.model import (
    Capture,
    CaptureOptions,
    CaptureStatus,
    RecordEntry,
    Stamp,
    StoredFile,
    new_capture_id,
    utcnow,
)
from archiver.core.urls import Credentials, hide_credentials, split_credentials
from archiver.index.store import CaptureRow, Index, RecordRow, relative_path, rows_for_capture
from archiver.trust import custody, manifest
from archiver.trust.keys import KeyProblem, Signer
from archiver.trust.manifest import FileEntry
from archiver.trust.timestamp import Timestamper
from archiver.warc.writer import new_record_id
from archiver.web.addresses import AddressPolicy
from archiver.web.http import FetchSettings, Interrupted

__all__ = [  # what other modules and the tests import from here
    "METADATA_SCHEMA",
    "PARSE_LIMIT",
    "ArchiveWriteError",
    "CaptureInterrupted",
    "Capturer",
    "Fetched",
    "NoProgress",
    "Progress",
    "Task",
    "_metadata_json",
    "library_versions",
]

WARC_SPEC = "https://iipc.github.io/warc-specifications/specifications/warc-format/warc-1.1/"


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


class _CaptureRun(_Browse):
    """One capture while it runs: its whole flow, from the seed to the published,
    signed and indexed WARC files (the parts it is made of: see ``state._RunState``)."""

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
                elif handler == signal.SIG_DFL:  # a program that kept the default: what
                    signal.raise_signal(signum)  # it would have done, now the capture stands

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
        browser = self.options.browser
        page = self._browse(page_task) if browser else self._fetch(page_task)
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
        if browser:  # what the browser's bodies and DOM name, and media it saw in part
            tasks += self._after_browsing()
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
            if browser:
                self._write_pageinfo()
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


def _arrived(records: Iterable[RecordEntry]) -> bool:
    """Whether any response arrived: as a ``response`` record, or as a ``revisit`` of a
    payload the archive holds already (a recapture is evidence in its own right)."""
    return any(r.warc_type in ("response", "revisit") for r in records)
