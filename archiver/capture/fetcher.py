"""Fetching one task: its request (headers, credentials, cookies, the request budget
and the capture's deadline), the redirects it follows, and what went wrong."""

from __future__ import annotations

import time
from dataclasses import replace
from urllib.parse import quote, urljoin

from archiver.capture.recorder import _Recorder
from archiver.capture.state import ArchiveWriteError, CaptureInterrupted, Fetched, Task
from archiver.core.model import VideoFound
from archiver.core.urls import URL_SAFE, InvalidURL, check_url, origin, referer
from archiver.web.discover import is_dash, is_hls
from archiver.web.http import (
    FetchError,
    FetchSettings,
    Interrupted,
    build_request,
    open_exchange,
)


class _Fetcher(_Recorder):
    """Fetches a task's URL, following and recording its redirects."""

    def _settings(self) -> FetchSettings:
        """The fetch settings of one exchange: cut at the capture's deadline at the latest
        (a body cut there is marked ``WARC-Truncated: time``)."""
        left = self.budget.time_left()
        settings = self.c.settings
        if left is None or (settings.max_time is not None and settings.max_time <= left):
            return settings
        return replace(settings, max_time=left)

    def _cookie_for(self, url: str) -> str | None:
        """The Cookie header ``--cookies`` gives for ``url`` (recorded redacted)."""
        if self.cookies is None:
            return None
        import urllib.request

        probe = urllib.request.Request(url)
        with self.seen_lock:
            self.cookies.add_cookie_header(probe)
        return probe.get_header("Cookie")

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
