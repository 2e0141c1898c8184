"""What a capture fetches next: the queue of tasks and the pool that runs them, what a
body references (pages, stylesheets, HLS/DASH manifests) made into tasks within the
capture's scope and budget, and the list of what was not followed."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from urllib.parse import urlsplit

from archiver.capture.state import BUDGET_LISTED, CSS_TYPES, HTML_TYPES, Fetched, Task
from archiver.capture.videos import _Videos
from archiver.core.model import VideoFound
from archiver.core.urls import InvalidURL, check_url
from archiver.web.discover import (
    Found,
    PageInfo,
    Unfetched,
    is_dash,
    is_hls,
    iter_dash,
    iter_hls,
    parse_css,
    parse_html,
)
from archiver.web.discover.hls import Renditions
from archiver.web.discover.html import EMBED_VIAS

# the longest the main thread waits on fetches before it runs Python code (and so any
# signal handler) again; batch.SIGNAL_POLL is the same for a batch's captures
SIGNAL_POLL = 0.2
META_REFRESH = "meta[http-equiv=refresh]"
# References never followed for what they are (file:, javascript:, a nested iframe ...)
# are listed one by one up to this many a capture, then counted: 50,000 stylesheets of
# 1,000 javascript: URLs each made fifty million entries (500 of them: 762 MB RSS).
NOT_FOLLOWED_LISTED = 10_000
# where a page names the video it is about: a platform URL there goes to yt-dlp
PLATFORM_META = ("meta[og:video", "meta[twitter")


class _Frontier(_Videos):
    """Runs the queue of tasks and makes new ones from what each fetched body names."""

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
            found = iter_hls(fetched.body, url, renditions=self._renditions())
            poll = self._live(fetched)
        elif is_dash(url, media):
            found = iter_dash(fetched.body, url, cut, renditions=self._renditions())
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

    def _renditions(self) -> Renditions:
        """Which renditions of an HLS or DASH stream are fetched whole: every one with
        ``--all-renditions``; else the best, and any other a replay tool would play from
        the manifest as the capture's record of it names the best (see
        :data:`archiver.web.discover.hls.Renditions` and ``recorder._Adaptive``)."""
        return "all" if self.options.all_renditions else "replayed"

    def _task_for(
        self, item: Found, parent: Task, parent_url: str, *, from_html: bool
    ) -> Task | None:
        try:
            url = check_url(item.url)
        except InvalidURL:
            return None
        if item.via in EMBED_VIAS:  # a post a platform's widget shows: to yt-dlp only
            self._embedded_post(url, item.via, parent_url)
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

    def _embedded_post(self, url: str, via: str, found_on: str) -> None:
        """A post that a platform's widget script shows in the page (``EMBED_VIAS``): handed
        to yt-dlp, which lists it among the videos with what came of it, its error
        included. Never fetched as a file: no reader of the page loads that URL (the
        widget's player does, and yt-dlp records every request it makes). With platform
        videos off it is listed as not followed, so that the capture says what it left."""
        if self.options.platform_videos:
            self._note_platform(url, via, found_on)
            return
        reason = "a platform post embedded in the page: platform videos are off"
        self._not_followed({"url": url, "via": via, "found_on": found_on, "reason": reason})

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
