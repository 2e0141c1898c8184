"""Videos beyond plain files: live HLS playlists (a snapshot, or followed a while with
``--live-duration``) and platform videos through yt-dlp, every exchange recorded."""

from __future__ import annotations

import functools
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from archiver.capture.fetcher import _Fetcher, _is_media, _too_slow
from archiver.capture.recorder import SPOOL_MEMORY
from archiver.capture.state import ArchiveWriteError, CaptureInterrupted, Fetched, Task
from archiver.core.model import VideoFound
from archiver.core.urls import InvalidURL, check_url
from archiver.web.discover import hls_playlist
from archiver.web.http import FetchError, Interrupted, build_request, open_exchange
from archiver.web.media import (
    Exchanged,
    MediaError,
    MediaLimits,
    MediaResult,
    body_sink,
    fetch_media,
    ytdlp_version,
)
from archiver.web.platforms import platform_of

# A live playlist is reloaded every target duration, within these bounds (seconds).
LIVE_POLL_MIN, LIVE_POLL_MAX = 0.5, 60.0


class _Videos(_Fetcher):
    """Follows live playlists and hands platform URLs to yt-dlp."""

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
