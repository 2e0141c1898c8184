"""Browser capture (``--browser``): the page loaded in a system Chromium, every byte
recorded by us.

The browser never writes the evidence.  It runs with a fresh profile and talks to the
network only through an intercepting proxy on loopback (:mod:`archiver.web.proxy`),
trusting a CA made for this capture alone (:mod:`archiver.trust.interception`; its key
stays in memory and its fingerprint goes into the metadata).  Each request it makes is
sent on by our own HTTP client, exactly as in HTTP mode: the same address policy,
budgets and limits, the origin's real certificate checked, and the exchange recorded
byte for byte (status line, header order and case, content and transfer encodings)
while the same bytes are relayed to the browser.  Chromium's own background services
are refused and listed, never recorded.

A browser capture then goes on like an HTTP one: the page as served, every stylesheet,
frame and manifest the browser received, and the DOM it rendered in each frame are read
by :mod:`archiver.web.discover`, so the browser finds everything HTTP mode finds; every
media URL seen in its traffic is fetched whole by us (a player fetches only ranges); and
what the reader saw is kept as ``resource`` records: screenshots, a PDF, the rendered
DOM, the text, and ``urn:pageinfo:`` with every request.
"""

from __future__ import annotations

import contextlib
import http.cookiejar
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote, urljoin, urlsplit

from archiver.capture.frontier import _Frontier
from archiver.capture.metadata import placed
from archiver.capture.state import (
    Abandoned,
    ArchiveWriteError,
    CaptureInterrupted,
    Fetched,
    Task,
)
from archiver.core.model import DEFAULT_USER_AGENT, VideoFound, isoformat
from archiver.core.urls import InvalidURL, check_url
from archiver.trust.interception import InterceptionCA
from archiver.warc.writer import compression_level, warc_date
from archiver.web.browser import (
    Browser,
    BrowserFailed,
    BrowserGone,
    CDPError,
    LaunchSettings,
    Page,
    PageCrashed,
    find_browser,
)
from archiver.web.discover import is_dash, is_hls
from archiver.web.http import FetchError, Interrupted, build_request, open_exchange
from archiver.web.proxy import Client, InterceptingProxy, ProxyRequest

# Chromium's own services: refused at the proxy and listed, never recorded (the flags
# that turn them off do not catch every one).  A host here, or any subdomain of it.
BACKGROUND_HOSTS = (
    "clients1.google.com",
    "clients2.google.com",
    "clients3.google.com",
    "clients4.google.com",
    "clients5.google.com",
    "clients6.google.com",
    "clientservices.googleapis.com",
    "update.googleapis.com",
    "safebrowsing.googleapis.com",
    "safebrowsing.google.com",
    "sb-ssl.google.com",
    "optimizationguide-pa.googleapis.com",
    "content-autofill.googleapis.com",
    "chromewebstore.googleapis.com",
    "android.clients.google.com",
    "accounts.google.com",
    "mtalk.google.com",
    "redirector.gvt1.com",
    "edgedl.me.gvt1.com",
    "gvt2.com",
)
# Header fields the proxy's hop is about, not the origin's: never sent on.
_HOP = {"host", "connection", "proxy-connection", "keep-alive", "te", "trailer", "upgrade"}
# Content codings our readers decode; the browser's request asks for these only, so
# that what is stored can be read for discovery and extracted (``br`` and ``zstd``
# would be stored as served too, but nothing of ours could read them).
ACCEPT_ENCODING = "gzip, deflate"
# Sec-Fetch-Dest values and the role of what they fetch
_DEST_ROLES = {
    "document": "page",
    "iframe": "iframe",
    "frame": "iframe",
    "video": "video",
    "audio": "video",
    "track": "requisite",
}
_DEST_NAMES = {"empty": "fetch"}  # a script's fetch() or XMLHttpRequest
# what players fetch in pieces by script: segments of a stream, not videos of their own
SEGMENT_TYPES = {"video/mp2t", "video/iso.segment", "audio/mp2t"}
SEGMENT_SUFFIXES = (".ts", ".m4s", ".cmfv", ".cmfa")
PLAIN = "text/plain; charset=utf-8"
# seconds after a request of the page began or ended during which it is not quiet
# (longer than the 50 ms between two looks of Page.wait_quiet)
QUIET_LOOK = 0.1
# CSS px: no PDF of a page taller than this (about 450 A4 pages).  Printing takes ~6 s at
# this height and grows faster than the height: a 20 MB page of text (10 million px)
# had no PDF after 5 minutes, even asked for its first 20 pages only
PDF_MAX_HEIGHT = 500_000
# seconds the browser's last requests get to end once it closed (then halted, listed)
STOP_GRACE = 5.0
HALTED = f"still arriving {STOP_GRACE:g} s after the browser closed: halted, not recorded"
# requests of the browser's own (and others refused) listed one by one, then counted
BLOCKED_LISTED = 1000


@dataclass
class _Browsing:
    """What a browser capture gathers while the page runs (the proxy's threads write it,
    under the run's ``seen_lock``)."""

    seed: Task
    expect: str | None  # the next URL of the seed's redirect chain, while it lasts
    page: Fetched | None = None  # the seed's last hop: the page as served
    parse: list[Fetched] = field(default_factory=list)  # bodies read for references after
    media: dict[str, tuple[str, str | None, str]] = field(default_factory=dict)
    exchanges: list[dict[str, Any]] = field(default_factory=list)  # for urn:pageinfo:
    behaviours: list[dict[str, Any]] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)  # as the browser saw them
    fatal: BaseException | None = None  # ends the capture once the browser is closed
    closed: bool = False  # the browser is gone: a late request of it is refused
    # set when the browser's requests must end (the capture's stop, or the end of the
    # browser phase past its grace): theirs alone, the capture is not interrupted by it
    halt: threading.Event = field(default_factory=threading.Event)
    shown: str | None = None  # the document shown at the end, when not the seed's


class _Browse(_Frontier):
    """Loads the seed in a browser whose traffic the run records (``--browser``)."""

    browsing: _Browsing | None = None

    # the proxy's side -------------------------------------------------------
    def _browser_refusal(self, host: str, port: int) -> str | None:
        """Why the proxy refuses a host outright: Chromium's own services."""
        name = host.lower().rstrip(".")
        for blocked in BACKGROUND_HOSTS:
            if name == blocked or name.endswith("." + blocked):
                return "the browser's own service (never recorded)"
        return None

    def _proxied(self, request: ProxyRequest, client: Client) -> bool:
        """One request of the browser's: sent by our client, recorded, relayed back.
        Returns whether the browser's connection may carry another request.

        A failure to write the archive, or the capture being stopped, ends the capture
        (kept and raised again once the browser is closed: the proxy would only answer
        the browser with an error); a bug in handling one request is an error of its URL."""
        browsing = self.browsing
        if browsing is None or browsing.closed or self.stop.is_set():
            _answer(client, 503, "archiver: the capture is over")
            return False
        self.c.progress.started(request.url, "browser")
        try:
            return self._relayed(browsing, request, client)
        except (ArchiveWriteError, CaptureInterrupted, Interrupted) as exc:
            if isinstance(exc, Interrupted) and not self.stop.is_set():
                # halted at the end of the browser phase: this request's alone
                self._error(request.url, HALTED, "browser")
                return False
            with self.seen_lock:
                browsing.fatal = browsing.fatal or exc
            self.stop.set()
            browsing.halt.set()
            raise
        except Exception as exc:
            self._error(request.url, f"unexpected error: {exc!r}", "browser")
            raise
        finally:
            self.c.progress.finished(request.url)

    def _relayed(self, browsing: _Browsing, request: ProxyRequest, client: Client) -> bool:
        try:
            url = check_url(request.url)
        except InvalidURL as exc:
            _answer(client, 400, f"archiver: not fetched: {exc}")
            return False
        task = self._browser_task(browsing, request, url)
        refused = self.budget.take_request()
        if refused is not None:  # listed, never fetched: the capture is partial
            self._left_out(url, task.via, task.found_on, refused, task=True)
            self._browser_noted(url, request, None, error=refused)
            _answer(client, 503, f"archiver: not fetched: {refused}")
            return False
        try:
            sent = build_request(
                url,
                _forwarded(request.headers),
                method=request.method,
                body=request.body,
                secret=("Cookie", "Authorization"),
                connection="Upgrade" if request.websocket else "close",
            )
            started = self.c.clock()
            response = open_exchange(sent, self._settings(), browsing.halt)
        except FetchError as exc:
            if task.is_seed:
                self.capture.failure = exc.reason
            else:
                self._error(url, exc.reason, task.role)
            self._browser_noted(url, request, None, error=exc.reason)
            _answer(client, 502, f"archiver: not fetched: {exc.reason}")
            return False
        fetched = Fetched(task, url)
        fetched.status = response.status
        fetched.media_type = response.media_type
        fetched.charset_header = response.content_type
        role = _role_of(task.role, url, response.media_type)
        relay = _relay(client)
        if task is browsing.seed:  # before the browser has the head, and asks for the next hop
            self._seed_answered(browsing, url, response, fetched)
        with contextlib.suppress(Abandoned):  # the browser gave up: recorded all the same
            relay(memoryview(response.head))
        websocket = request.websocket and response.status == 101
        keep = task.expand and not websocket
        # the connection is taken before the (empty) body is read: reading it closes the
        # connection and drops the bytes read past the head (the server's first frames)
        upstream, rest = response.detach() if websocket else (None, b"")
        try:
            self._write_exchange(
                task, url, role, response, started, keep, fetched, None if websocket else relay
            )
            if upstream is not None:  # the handshake is recorded; the frames are tunnelled
                client.tunnel(upstream, rest)
            elif response.truncated:  # cut (a limit, a slow server): never complete to it
                client.abort()
        finally:
            if upstream is not None:
                upstream.close()
            response.close()
        self._browsed(browsing, task, url, request, response, fetched)
        return _reusable(response) and not websocket

    def _browser_task(self, browsing: _Browsing, request: ProxyRequest, url: str) -> Task:
        """The task a browser request stands for: a hop of the seed, or a resource."""
        headers = {k.lower(): v for k, v in request.headers}
        dest = headers.get("sec-fetch-dest", "").lower()
        page_url = self.capture.final_url or self.capture.seed_url
        with self.seen_lock:
            if _same_target(browsing.expect, url) and dest in ("document", ""):
                return browsing.seed  # the seed, or a redirect it led to
        referer = headers.get("referer") or page_url
        # one page per capture: a document the browser loads besides the seed's (a pop-up,
        # a script's navigation) is something the page fetched, read like a page
        role = _DEST_ROLES.get(dest, "requisite")
        via = f"browser {_DEST_NAMES.get(dest, dest or 'request')}"
        if role == "page":
            role, via = "requisite", "browser document (a pop-up or a navigation)"
        parse = dest in ("document", "iframe", "frame", "style", "") or _manifest_like(url)
        return Task(url, role, via, referer, expand=parse)

    def _seed_answered(
        self, browsing: _Browsing, url: str, response: Any, fetched: Fetched
    ) -> None:
        """The seed's chain: a redirect names the next hop the browser will ask for (said
        before the browser has the head: it asks at once), anything else is the page."""
        status = response.status
        location = response.header("Location") if 300 <= status < 400 else None
        with self.seen_lock:
            if location:
                self.capture.redirects.append(url)
                try:
                    browsing.expect = check_url(urljoin(url, location.strip()))
                except (InvalidURL, ValueError):
                    browsing.expect = None
            else:
                browsing.expect = None
                browsing.page = fetched
                self.capture.final_url = url
                self.capture.http_status = status
                fetched.final_url = url

    def _browsed(
        self,
        browsing: _Browsing,
        task: Task,
        url: str,
        request: ProxyRequest,
        response: Any,
        fetched: Fetched,
    ) -> None:
        """After a relayed exchange: what is fetched whole, media to fetch whole, bodies to
        read (the seed's chain is followed as its head arrives: :meth:`_seed_answered`)."""
        status = response.status
        whole = status == 200 and not response.truncated and not response.error
        media = response.media_type or ""
        manifest = is_hls(url, media) or is_dash(url, media)
        is_media = manifest or (media.startswith(("video/", "audio/")) and not _segment(url, media))
        ranged = any(k.lower() == "range" for k, _ in request.headers) or status == 206
        with self.seen_lock:
            if whole and not ranged:
                self.seen.add(url)  # fetched whole: static discovery need not fetch it again
            if fetched.body is not None and task is not browsing.seed:
                browsing.parse.append(fetched)
            if is_media:
                kind = "video-manifest" if manifest else "video"
                found = VideoFound(url, task.via, task.found_on or "", kind)
                video = self.videos.setdefault(url, found)
                if whole and not ranged:
                    video.http_status = status
                    video.payload_sha256 = fetched.payload_sha256
                    video.payload_length = fetched.payload_length
                else:  # a player's range or a cut body: fetched whole afterwards
                    browsing.media.setdefault(url, (task.via, task.found_on, kind))
        self._browser_noted(url, request, response, fetched=fetched)
        if response.error:
            self._error(url, f"incomplete response: {response.error}", task.role)
        if response.slow:
            self._error(url, f"cut, too slow: {response.slow}", task.role)

    def _browser_noted(
        self,
        url: str,
        request: ProxyRequest,
        response: Any,
        *,
        fetched: Fetched | None = None,
        error: str | None = None,
    ) -> None:
        entry: dict[str, Any] = {
            "url": url,
            "method": request.method,
            "fetched_by": "browser",
            "status": response.status if response is not None else None,
            "content_type": response.media_type if response is not None else None,
            "truncated": response.truncated if response is not None else None,
            "payload_sha256": fetched.payload_sha256 if fetched is not None else None,
            "error": error,
        }
        if self.browsing is not None:
            with self.seen_lock:
                self.browsing.exchanges.append(entry)

    # the run's side ---------------------------------------------------------
    def _browse(self, seed: Task) -> Fetched:
        """Load the seed in the browser; keep what it showed.  Returns the page as
        served (its last hop), like :meth:`_fetch` does in HTTP mode."""
        opts = self.options
        executable = find_browser(opts.browser_path)
        browsing = self.browsing = _Browsing(seed, expect=seed.url)
        ca = InterceptionCA.create(self.capture.capture_id)
        proxy = InterceptingProxy(self._proxied, ca.server_context, refuse=self._browser_refusal)
        # the browser's own traffic (its profile's, not the page's) has a proxy of its own
        # that refuses everything and lists it: never recorded, never sent on
        own = InterceptingProxy(_never, ca.server_context, refuse=_own_traffic)
        info: dict[str, Any] = {"interception_ca": ca.fingerprint}
        self.capture.browser = info
        shots: list[tuple[str, str, bytes, str]] = []
        try:
            host, port = proxy.start()
            own_host, own_port = own.start()
            settings = LaunchSettings(
                executable=executable,
                proxy=f"{host}:{port}",
                spki_hashes=ca.spki_hashes,
                viewport=opts.viewport,
                scale=opts.device_scale,
                own_traffic=f"{own_host}:{own_port}",
            )
            with Browser(settings) as browser:
                self._in_browser(browser, settings, proxy, browsing, shots, info)
        except BrowserFailed as exc:  # it would not start, or not answer: said as such
            self.capture.failure = f"the browser: {exc}"
        except BaseException:
            self.stop.set()  # the proxy's requests end at their next chunk
            browsing.halt.set()
            raise
        finally:
            proxy.stop()
            own.stop()
            self._requests_end(proxy)
            ca.close()
            info["blocked"] = _listed([*own.blocked, *proxy.blocked])
            info["behaviours"] = browsing.behaviours
            browsing.closed = True
            for problem in proxy.errors:  # a bug handling one request (its URL says it)
                if not isinstance(problem, ArchiveWriteError | CaptureInterrupted | Interrupted):
                    info.setdefault("proxy_errors", []).append(repr(problem))
        if browsing.fatal is not None:
            raise browsing.fatal
        with self.series.lock:
            self._drain()  # the page's response record first: the others name it
            for kind, role, block, media in shots:
                self._write_resource(kind, block, media, role)
        page_fetched = browsing.page or Fetched(seed, seed.url, error=self.capture.failure)
        if browsing.page is None and page_fetched.error is None:
            page_fetched.error = "the browser did not load the page"
        return page_fetched

    def _requests_end(self, proxy: InterceptingProxy) -> None:
        """Wait for the browser's requests still being handled when it closed: a server
        answering late is recorded (a large body cut past where the browser went,
        marked truncated), never left writing into a capture that has ended.  They get
        STOP_GRACE seconds; then they are halted, each listed as an error of its URL."""
        deadline = time.monotonic() + STOP_GRACE
        while proxy.inflight:
            if time.monotonic() > deadline:
                if self.browsing is not None:
                    self.browsing.halt.set()
                end = time.monotonic() + STOP_GRACE  # they end at their next read
                while proxy.inflight and time.monotonic() < end:
                    time.sleep(0.02)
                return
            time.sleep(0.02)

    def _in_browser(
        self,
        browser: Browser,
        settings: LaunchSettings,
        proxy: InterceptingProxy,
        browsing: _Browsing,
        shots: list[tuple[str, str, bytes, str]],
        info: dict[str, Any],
    ) -> None:
        """The page's life in the browser.  A crash of its renderer (or of the browser)
        fails the capture with a message; what was recorded until then is kept, signed
        and indexed like any failed capture's records."""
        page = Page.open(browser)
        try:
            user_agent = self._browser_user_agent(browser, page)
            self._browser_cookies(page)
            info.update(_provenance(browser, settings, user_agent))
            self._behave(page, proxy, browsing, shots, info)
        except CDPError as exc:
            during = next((b["name"] for b in reversed(browsing.behaviours) if "error" in b), None)
            when = f" during '{during}'" if during else ""
            what = "the page's renderer crashed" if page.crashed else f"the browser failed: {exc}"
            self.capture.failure = f"{what}{when}; what it had fetched is kept"
        finally:
            info.update(
                dialogs=[asdict(d) for d in page.dialogs],
                popups=list(page.popups),
                downloads=[asdict(d) for d in page.downloads],
                crashed=page.crashed,
            )
            browsing.requests = [asdict(r) for r in page.requests]

    def _browser_user_agent(self, browser: Browser, page: Page) -> str:
        """The User-Agent the browser sends: ``--user-agent`` if given, else the
        browser's own without the ``HeadlessChrome`` token (sites refuse it)."""
        if self.options.user_agent != DEFAULT_USER_AGENT:
            agent = self.options.user_agent
        else:
            agent = browser.version.user_agent.replace("HeadlessChrome", "Chrome")
        if agent:
            page.set_user_agent(agent)
        return agent

    def _browser_cookies(self, page: Page) -> None:
        """``--cookies``: the same cookies in the browser (sent as it sends cookies;
        the Cookie field is recorded redacted, as in HTTP mode)."""
        if self.cookies is None:
            return
        page.set_cookies(list(_cdp_cookies(self.cookies)))

    def _behave(
        self,
        page: Page,
        proxy: InterceptingProxy,
        browsing: _Browsing,
        shots: list[tuple[str, str, bytes, str]],
        info: dict[str, Any],
    ) -> None:
        """Load, wait, scroll, play, wait again; then keep what the reader saw.

        Every wait ends at ``--browser-timeout`` or at the capture's deadline
        (``--max-capture-time``), whichever comes first; past the deadline only what the
        browser shows is taken (screenshots, PDF, DOM, text), which asks nothing of the
        network.  A behaviour that fails (a page's script in the way) is listed with its
        error and the next goes on; a crash ends them all (see :meth:`_in_browser`)."""
        opts = self.options
        seed = browsing.seed.url

        def limit() -> float:
            left = self.budget.time_left()
            return (
                opts.browser_timeout if left is None else max(0.0, min(opts.browser_timeout, left))
            )

        def busy() -> int:
            # wait_quiet looks every 50 ms: a request begun or ended since the last look
            # counts as in flight, else a page polling every 100 ms (each answer taking a
            # millisecond) would be found quiet between two polls
            recent = time.monotonic() - proxy.last_activity < QUIET_LOOK
            return proxy.inflight or int(recent)

        def quiet() -> Any:
            return page.wait_quiet(busy, timeout=limit())

        navigated = self._step("load", lambda: page.navigate(seed, max(limit(), 1.0)))
        info["loaded"] = bool(navigated and navigated.loaded)
        if navigated is not None and navigated.error and not browsing.exchanges:
            # nothing reached the proxy: the browser could not even ask (a bad URL)
            self.capture.failure = self.capture.failure or f"the browser: {navigated.error}"
            return
        # a page that never goes quiet (polling, a socket) is captured as it stands
        info["network_quiet"] = bool(self._step("network quiet", quiet))
        if limit() > 0:
            info["scroll_steps"] = self._step("scroll", lambda: page.scroll(opts.max_scroll))
            self._step("play media", page.play_media)
            self._step("click play buttons", page.click_play_buttons)
            again = bool(self._step("network quiet again", quiet))
            info["network_quiet"] = info["network_quiet"] and again
        else:  # the capture's time is up: what the browser shows now is what is kept
            self.budget.note_time()
            info["behaviours_skipped"] = "the capture's time limit (--max-capture-time)"
        info["dialogs_opened"] = page.dialog_count
        if page.scripts_stopped:
            info["scripts_stopped"] = page.scripts_stopped
        self._keep_what_it_shows(page, browsing, shots, info)

    def _keep_what_it_shows(
        self,
        page: Page,
        browsing: _Browsing,
        shots: list[tuple[str, str, bytes, str]],
        info: dict[str, Any],
    ) -> None:
        """Screenshots, PDF, DOM and text, as ``resource`` records to be."""
        page_url = self.capture.final_url or browsing.seed.url
        shown = page.url  # a script or a refresh may have left the seed's document
        if shown != page_url and shown.startswith(("http://", "https://")):
            info["navigated"] = {"from": page_url, "to": shown}
            browsing.shown = shown
        view = self._step("screenshot", lambda: page.shoot(False))
        if view is not None:
            shots.append(("view", "screenshot", view.png, "image/png"))
        full = self._step("full-page screenshot", lambda: page.shoot(True))
        if full is not None:
            shots.append(("fullPage", "screenshot", full.png, "image/png"))
            info["full_page"] = {
                "width": full.width,
                "height": full.height,
                "content_height": full.content_height,
                "capped": full.capped,
            }
        if full is not None and full.content_height > PDF_MAX_HEIGHT:
            # Chromium lays out every page first: minutes, and the renderer is stuck
            info["pdf_skipped"] = (
                f"the page is {full.content_height} CSS px tall, more than {PDF_MAX_HEIGHT}"
            )
        else:
            pdf = self._step("pdf", page.pdf)
            if pdf is not None:
                shots.append(("pdf", "pdf", pdf, "application/pdf"))
        dom = self._step("dom", page.dom) or []
        shots.append(("dom", "dom", _dom_block(dom), "text/html; charset=utf-8"))
        browsing.parse.extend(_dom_fetched(dom, page_url))
        for frame in dom:  # a platform's player page in a frame goes to yt-dlp
            if frame.parent_id is not None:
                self._note_platform(frame.url, "iframe (browser)", page_url)
        text = self._step("text", page.text)
        if text is not None:
            shots.append(("text", "text", text.encode("utf-8"), "text/plain; charset=utf-8"))

    def _step(self, name: str, action: Callable[[], Any]) -> Any:
        """One behaviour, timed and listed in the provenance.  A behaviour that fails is
        listed with its error and gives None; a crash or a browser gone is raised."""
        assert self.browsing is not None
        begun = time.monotonic()
        entry: dict[str, Any] = {"name": name, "started": self._now()}
        try:
            result = action()
        except (PageCrashed, BrowserGone) as exc:
            entry.update(seconds=round(time.monotonic() - begun, 3), error=str(exc))
            self.browsing.behaviours.append(entry)
            raise
        except CDPError as exc:
            entry.update(seconds=round(time.monotonic() - begun, 3), error=str(exc))
            self.browsing.behaviours.append(entry)
            return None
        shown = result if isinstance(result, bool | int) else None
        entry.update(seconds=round(time.monotonic() - begun, 3), result=shown)
        self.browsing.behaviours.append(entry)
        return result

    def _now(self) -> str:
        return isoformat(self.c.clock())

    def _write_resource(self, kind: str, block: bytes, content_type: str, role: str) -> None:
        """A ``resource`` record of what the browser showed, named as Webrecorder's tools
        name them (``urn:view:``, ``urn:pdf:`` ... and the URL of the document shown: the
        page's, or the one a script or a refresh went on to), tied to that document's
        response by ``WARC-Concurrent-To``; the caller holds the writer."""
        page_url, response_id = self._shown()
        target = f"urn:{kind}:{page_url}"
        now = self.c.clock()
        wfile = self.series.current(len(block))
        fields = [
            ("WARC-Type", "resource"),
            ("WARC-Record-ID", self.c.new_record_id()),
            ("WARC-Date", warc_date(now)),
            ("WARC-Target-URI", target),
            ("WARC-Warcinfo-ID", self.series.warcinfo_ids[wfile.name]),
        ]
        if response_id:
            fields.append(("WARC-Concurrent-To", response_id))
        fields.append(("Content-Type", content_type))
        rec = wfile.write_record(fields, block, level=compression_level(content_type))
        self.capture.records.append(
            placed(
                rec,
                warc_type="resource",
                url=target,
                fetched_at=now,
                role=role,
                content_type=content_type.split(";")[0],
                payload_sha256=rec.block_sha256,
                payload_length=rec.content_length,
                discovered_from=page_url,
                discovered_via="browser",
                concurrent_to=response_id,
            )
        )

    def _shown(self) -> tuple[str, str | None]:
        """The URL of the document the browser showed at the end, and the record of its
        response (the page's, unless a script or a refresh navigated on)."""
        page_url = self.capture.final_url or self.capture.seed_url
        shown = self.browsing.shown if self.browsing is not None else None
        if not shown:
            return page_url, self.page_response_id
        for entry in reversed(self.capture.records):
            if entry.url == shown and entry.warc_type in ("response", "revisit"):
                return shown, entry.record_id
        return shown, None

    def _after_browsing(self) -> list[Task]:
        """Tasks for what the browser's bodies and DOM name, and the media it saw."""
        tasks: list[Task] = []
        browsing = self.browsing
        if browsing is None:
            return tasks
        for fetched in browsing.parse:
            tasks.extend(self._expand_safely(fetched))
        page_url = self.capture.final_url or self.capture.seed_url
        for url, (via, found_on, kind) in browsing.media.items():
            if not self._claim(url):
                continue
            with self.seen_lock:
                self.planned += 1
            self.order[url] = len(self.order)
            tasks.append(Task(url, kind, via, found_on or page_url, expand=True))
        return tasks

    def _write_pageinfo(self) -> None:
        """``urn:pageinfo:``: every request, by the browser (with its frame, initiator
        and type as the browser saw them) and by archiver; the caller holds the writer."""
        browsing = self.browsing
        if browsing is None:
            return
        seen_by_browser: dict[str, dict[str, Any]] = {}
        for seen in browsing.requests:
            seen_by_browser.setdefault(seen["url"], seen)
        requests = []
        for entry in browsing.exchanges:
            cdp = seen_by_browser.get(entry["url"], {})
            requests.append(
                {
                    **entry,
                    "frame_id": cdp.get("frame_id"),
                    "resource_type": cdp.get("resource_type"),
                    "initiator": {
                        "type": cdp.get("initiator_type"),
                        "url": cdp.get("initiator_url"),
                    },
                }
            )
        browsed = {e["url"] for e in requests}
        for record in self.capture.records:
            if record.warc_type in ("response", "revisit") and record.url not in browsed:
                requests.append(
                    {
                        "url": record.url,
                        "method": "GET",
                        "fetched_by": "archiver",
                        "status": record.http_status,
                        "content_type": record.content_type,
                        "role": record.role,
                        "discovered_via": record.discovered_via,
                    }
                )
        body = {
            "url": self.capture.final_url or self.capture.seed_url,
            "title": self.capture.title,
            "ts": self._now(),
            "requests": requests,
        }
        block = json.dumps(body, indent=1, ensure_ascii=False).encode("utf-8")
        self._write_resource("pageinfo", block, "application/json", "pageinfo")


def _same_target(expected: str | None, url: str) -> bool:
    """Whether the browser's request is for the URL a redirect named: the same, or
    spelt with other percent-escapes (a browser escapes ``'`` in a query, our URL
    rules leave it), so that the seed's chain is followed as the browser follows it."""
    if expected is None:
        return False
    return expected == url or unquote(expected) == unquote(url)


def _listed(blocked: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What the proxies refused, in order, dated in UTC: the first BLOCKED_LISTED, then
    one entry counting the rest."""
    entries = sorted(blocked, key=lambda e: e.get("time", 0))
    out = [
        {**e, "time": isoformat(datetime.fromtimestamp(e.get("time", 0), UTC))}
        for e in entries[:BLOCKED_LISTED]
    ]
    if len(entries) > BLOCKED_LISTED:
        rest = len(entries) - BLOCKED_LISTED
        out.append({"target": "", "reason": f"and {rest} more, not listed one by one"})
    return out


def _own_traffic(host: str, port: int) -> str:
    return "the browser's own traffic (not the page's): refused, never recorded"


def _never(request: ProxyRequest, client: Client) -> bool:
    raise AssertionError("the proxy of the browser's own traffic refuses every request")


def _provenance(browser: Browser, settings: LaunchSettings, user_agent: str) -> dict[str, Any]:
    version = browser.version
    return {
        "name": "Chromium",
        "product": version.product,  # e.g. Chrome/150.0.7871.100
        "revision": version.revision,
        "protocol": version.protocol,
        "executable": str(settings.executable),
        "flags": list(browser.flags),
        "page_proxy": "archiver's recorder on loopback (every request of the page)",
        "user_agent": user_agent,
        "viewport": {"width": settings.viewport[0], "height": settings.viewport[1]},
        "device_scale": settings.scale,
        "headless": settings.headless,
    }


def _forwarded(headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The browser's header fields as sent on: order and case kept, the proxy hop's
    own left out, and Accept-Encoding limited to what we can decode."""
    out = []
    for name, value in headers:
        lowered = name.lower()
        if lowered in _HOP and lowered != "upgrade":
            continue
        if lowered == "accept-encoding":
            value = ACCEPT_ENCODING
        out.append((name, value))
    return out


def _role_of(role: str, url: str, media: str | None) -> str:
    """A browser fetch's role, once its response says what it is."""
    if role not in ("requisite", "video"):
        return role
    media = media or ""
    if is_hls(url, media) or is_dash(url, media):
        return "video-manifest"
    if _segment(url, media):
        return "video-segment"
    if media.startswith(("video/", "audio/")):
        return "video"
    return role


def _segment(url: str, media: str) -> bool:
    return media in SEGMENT_TYPES or urlsplit(url).path.lower().endswith(SEGMENT_SUFFIXES)


def _manifest_like(url: str) -> bool:
    path = urlsplit(url).path.lower()
    return path.endswith((".m3u8", ".mpd", ".css"))


def _relay(client: Client) -> Callable[[memoryview], None]:
    def relay(piece: memoryview) -> None:
        try:
            client.send(piece)
        except OSError as exc:
            raise Abandoned(str(exc)) from exc

    return relay


def _reusable(response: Any) -> bool:
    """Whether the browser's connection can carry another request after this one."""
    if response.truncated or response.error or response.version != "HTTP/1.1":
        return False
    connection = (response.header("Connection") or "").lower()
    if "close" in connection:
        return False
    return response.chunked or response.declared_length is not None


def _answer(client: Client, status: int, text: str) -> None:
    """A short answer of the proxy's own to the browser (never recorded)."""
    body = text.encode("utf-8", "replace")
    reasons = {400: "Bad Request", 403: "Forbidden", 502: "Bad Gateway", 503: "Service Unavailable"}
    head = (
        f"HTTP/1.1 {status} {reasons.get(status, 'Error')}\r\nContent-Type: {PLAIN}\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode("ascii")
    with contextlib.suppress(OSError):
        client.send(head + body)


def _dom_block(frames: list[Any]) -> bytes:
    """The rendered DOM of every frame, main frame first, each after a comment naming it."""
    parts = []
    for frame in frames:
        parts.append(f"<!-- archiver: frame {frame.url} -->\n".encode())
        parts.append(frame.html.encode("utf-8", "surrogatepass"))
        parts.append(b"\n")
    return b"".join(parts)


def _dom_fetched(frames: list[Any], page_url: str) -> Iterator[Fetched]:
    """Each frame's rendered DOM as a body to read for references, like a page."""
    for frame in frames:
        if not frame.url.startswith(("http://", "https://")):
            continue
        main = frame.parent_id is None
        task = Task(
            frame.url,
            "page" if main else "iframe",
            "rendered DOM",
            None if main else page_url,
            expand=True,
        )
        yield Fetched(
            task,
            frame.url,
            media_type="text/html",
            body=frame.html.encode("utf-8", "surrogatepass"),
            charset_header="text/html; charset=utf-8",  # serialized by us, as UTF-8
        )


def _cdp_cookies(jar: http.cookiejar.CookieJar) -> Iterator[dict[str, Any]]:
    for cookie in jar:
        entry: dict[str, Any] = {
            "name": cookie.name,
            "value": cookie.value or "",
            "domain": cookie.domain,
            "path": cookie.path or "/",
            "secure": bool(cookie.secure),
            # a #HttpOnly_ line of the file: never readable by the page's scripts (which
            # could put its value in a URL, and so in the evidence)
            "httpOnly": cookie.has_nonstandard_attr("HTTPOnly")
            or cookie.has_nonstandard_attr("HttpOnly"),
        }
        if cookie.expires:
            entry["expires"] = cookie.expires
        yield entry
