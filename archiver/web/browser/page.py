"""What a capture does with one page of the browser, one step at a time.

:meth:`Page.open` makes a page in a browser context of its own (no cookie or storage of
an earlier page leaks in; its proxy is the caller's) and attaches one DevTools session to
it. The caller then goes step by step, timing each as it likes: :meth:`Page.navigate`,
:meth:`Page.wait_quiet`, :meth:`Page.scroll`, :meth:`Page.play_media`,
:meth:`Page.click_play_buttons`, :meth:`Page.screenshot`, :meth:`Page.pdf`,
:meth:`Page.dom`, :meth:`Page.text`; :attr:`Page.requests` lists what the page asked for.

While it runs, the page cannot stop us: dialogs are dismissed (and noted in
:attr:`Page.dialogs`), downloads are denied (noted in :attr:`Page.downloads`: the request
itself still goes out, through the proxy that records it), and windows it opens are
noted in :attr:`Page.popups` and closed. Site isolation is off (see
:mod:`.chromium`), so cross-origin frames live in the page's renderer and this one
session sees every frame's DOM and requests.

Scripts of ours run in an isolated world of each frame (``Page.createIsolatedWorld``):
they see the same DOM, but not the page's JavaScript globals, which a page could have
replaced. If the renderer crashes, :attr:`Page.crashed` is set and every later step
raises :class:`PageCrashed`.

The session's events are read on the CDP reader thread (:meth:`Page._on_event`): it only
keeps notes under a lock and answers dialogs and pop-ups without waiting; the steps run
on the caller's thread (pages of one browser may run in threads of their own).
"""

from __future__ import annotations

import base64
import contextlib
import json
import math
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from types import TracebackType
from typing import TYPE_CHECKING, Any

from archiver.web.browser.cdp import BrowserGone, CDPError, CDPTimeout

if TYPE_CHECKING:
    from archiver.web.browser.chromium import Browser

__all__ = [
    "GENERIC_PLAY",
    "MAX_SCREENSHOT_HEIGHT",
    "PLAY_SELECTORS",
    "Dialog",
    "Download",
    "FrameDOM",
    "NavResult",
    "Page",
    "PageCrashed",
    "RequestEntry",
    "Screenshot",
]

MAX_SCREENSHOT_HEIGHT = 16384  # CSS px: taller pages are cut there (GPU texture limits)
MAX_SCREENSHOT_WIDTH = 16384
WORLD = "archiver"

# Buttons that start a player, and placeholders that load an embed when clicked. Generic
# ones (aria-label, title) must also say "play" as a word ("Play video", not "Playlist"
# or "Display"); none may say "pause" (it would stop what play_media started).
GENERIC_PLAY = (
    'button[aria-label*="play" i]',
    '[role="button"][aria-label*="play" i]',
    'button[title*="play" i]',
)
PLAY_SELECTORS = (
    *GENERIC_PLAY,
    ".play-button",
    ".playbutton",
    ".play-btn",
    ".btn-play",
    ".video-play-button",
    ".vjs-big-play-button",
    ".ytp-large-play-button",
    ".ytp-cued-thumbnail-overlay",
    ".mejs__overlay-button",
    ".mejs-overlay-button",
    ".plyr__control--overlaid",
    ".jw-display-icon-display",
    '[data-testid="playButton"]',
    '[data-testid="play-button"]',
    ".click-to-load",
    "[data-click-to-load]",
    ".click-to-play",
    ".lazyframe",
    "lite-youtube",
    "lite-vimeo",
    ".lty-playbtn",
)


# dialogs listed one by one; past DIALOG_LIMIT the page's scripts are stopped (an alert
# in a loop holds the page, and every command to it, for ever)
MAX_DIALOGS = 100
DIALOG_LIMIT = 50


class PageCrashed(CDPError):
    """The page's renderer crashed (or the page was closed): nothing more can be done
    with it; open another page."""


@dataclass(frozen=True)
class NavResult:
    """How a navigation went. ``error`` is Chromium's (``net::ERR_NAME_NOT_RESOLVED``,
    ``net::ERR_ABORTED`` for a download) or says that no answer came in time;
    ``loaded`` says the main frame's load event came within the timeout."""

    url: str
    final_url: str
    loaded: bool
    error: str | None
    status: int | None  # of the main document's response, after redirects
    seconds: float
    frame_id: str = ""
    loader_id: str = ""


@dataclass(frozen=True)
class FrameDOM:
    """One frame's document as it stands (scripts' work included), serialized."""

    url: str
    frame_id: str
    parent_id: str | None
    html: str
    error: str | None = None  # why ``html`` is empty, when it could not be read


@dataclass
class RequestEntry:
    """One request the page made, from the session's Network events. A redirect ends an
    entry (``status`` is the redirect's) and starts the next, with the same id."""

    request_id: str
    url: str
    method: str
    frame_id: str | None
    resource_type: str | None
    initiator_type: str | None
    initiator_url: str | None
    wall_time: float | None  # seconds since the epoch, as the browser saw it
    status: int | None = None
    mime_type: str | None = None
    from_cache: bool = False
    failed: str | None = None  # net::ERR_..., or "canceled", "blocked: reason"
    finished: bool = False
    redirected: bool = False


@dataclass(frozen=True)
class Dialog:
    """An alert, confirm, prompt or beforeunload dialog the page opened (dismissed;
    a beforeunload is accepted, so that navigating away is never stopped)."""

    type: str
    message: str
    url: str


@dataclass(frozen=True)
class Download:
    """A download the page started (denied: nothing is saved; Chromium may hold it for a
    moment in its temporary folder, inside the profile that is removed)."""

    url: str
    suggested_filename: str
    frame_id: str
    guid: str


@dataclass(frozen=True)
class Screenshot:
    """A PNG of the page. ``width``/``height`` in device pixels (the PNG's), the CSS size
    shot, and for a full page its content height: ``capped`` when it was taller (or
    wider) than :data:`MAX_SCREENSHOT_HEIGHT` CSS px and the shot stops there."""

    png: bytes
    width: int
    height: int
    css_width: int
    css_height: int
    content_height: int
    full_page: bool
    capped: bool


def png_size(png: bytes) -> tuple[int, int]:
    """(width, height) from a PNG's IHDR."""
    if png[:8] != b"\x89PNG\r\n\x1a\n" or png[12:16] != b"IHDR":
        raise ValueError("not a PNG")
    width, height = struct.unpack(">II", png[16:24])
    return width, height


@dataclass
class _State:
    """What the event callback keeps; guarded by ``Page._cond``."""

    lifecycle: set[tuple[str, str, str]] = field(default_factory=set)  # frame, loader, name
    frame_urls: dict[str, str] = field(default_factory=dict)
    frame_ids: set[str] = field(default_factory=set)
    doc_status: dict[str, int] = field(default_factory=dict)  # loader id -> status
    requests: list[RequestEntry] = field(default_factory=list)
    latest: dict[str, RequestEntry] = field(default_factory=dict)  # request id -> entry
    inflight: set[str] = field(default_factory=set)
    dialogs: list[Dialog] = field(default_factory=list)
    dialog_count: int = 0  # all of them (the list keeps the first MAX_DIALOGS)
    scripts_stopped: str | None = None  # why the page's scripts were stopped, if they were
    downloads: list[Download] = field(default_factory=list)
    popups: list[str] = field(default_factory=list)
    worlds: dict[tuple[str, str], int] = field(default_factory=dict)  # frame, loader -> ctx
    frame_loaders: dict[str, str] = field(default_factory=dict)
    request_where: dict[str, tuple[str, str]] = field(default_factory=dict)  # frame, loader
    stopped: set[str] = field(default_factory=set)  # main-frame loaders that stopped loading


class Page:
    """One page target and its session; see the module's docstring. Use :meth:`open`."""

    def __init__(
        self,
        browser: Browser,
        target_id: str,
        session_id: str,
        context_id: str,
    ) -> None:
        self.browser = browser
        self.cdp = browser.cdp
        self.target_id = target_id
        self.session_id = session_id
        self.context_id = context_id
        self.crashed = False
        self.closed = False  # by close()
        self._detached: str | None = None  # why the session ended, if it did
        self._cond = threading.Condition()
        self._state = _State()
        self._state.frame_ids.add(target_id)  # a page's main frame has its target's id
        self._unsubscribe: Callable[[], None] = self.cdp.subscribe(self._on_event)

    # ------------------------------------------------------------------ life

    @classmethod
    def open(
        cls,
        browser: Browser,
        *,
        bypass_service_workers: bool = True,
        timeout: float = 30.0,
    ) -> Page:
        """A new blank page, its session attached and set up, in a browser context of its
        own (cookies, storage, cache: nothing of an earlier page leaks in), disposed of
        with the page. The context's proxy is the caller's (``LaunchSettings.proxy``) or
        a direct connection: the browser's own profile reaches nothing (see
        :mod:`.chromium`), so pages are opened here, never with ``Target.createTarget``
        alone. ``bypass_service_workers``: every request goes to the network (and so
        through the proxy) instead of being answered by a service worker of the page."""
        cdp = browser.cdp
        params = {
            "disposeOnDetach": True,
            "proxyServer": browser.page_proxy,
            "proxyBypassList": "<-loopback>",  # loopback through the proxy too
        }
        context_id: str = cdp.send("Target.createBrowserContext", params, timeout=timeout)[
            "browserContextId"
        ]
        try:
            create = {"url": "about:blank", "browserContextId": context_id}
            cdp.send("Target.setDiscoverTargets", {"discover": True}, timeout=timeout)
            target_id = cdp.send("Target.createTarget", create, timeout=timeout)["targetId"]
            session_id = cdp.send(
                "Target.attachToTarget", {"targetId": target_id, "flatten": True}, timeout=timeout
            )["sessionId"]
        except BaseException:
            with contextlib.suppress(CDPError):
                cdp.send("Target.disposeBrowserContext", {"browserContextId": context_id})
            raise
        page = cls(browser, target_id, session_id, context_id)
        try:
            page._setup(bypass_service_workers, timeout)
        except BaseException:
            page.close()
            raise
        return page

    def _setup(self, bypass_service_workers: bool, timeout: float) -> None:
        settings = self.browser.settings
        download = {
            "behavior": "deny",
            "eventsEnabled": True,
            "browserContextId": self.context_id,
        }
        self.cdp.send("Browser.setDownloadBehavior", download, timeout=timeout)
        for method, params in (
            ("Page.enable", {}),
            ("Page.setLifecycleEventsEnabled", {"enabled": True}),
            ("Network.enable", {}),
            ("Network.setBypassServiceWorker", {"bypass": bypass_service_workers}),
            (
                "Emulation.setDeviceMetricsOverride",
                {
                    "width": settings.viewport[0],
                    "height": settings.viewport[1],
                    "deviceScaleFactor": settings.scale,
                    "mobile": False,
                },
            ),
        ):
            self._send(method, params, timeout=timeout)

    def close(self) -> None:
        """Close the page (and its browser context). Idempotent; a browser gone is fine."""
        if self.closed:
            return
        self.closed = True
        self._unsubscribe()
        with self._cond:
            self._cond.notify_all()
        if self.cdp.gone:
            return
        with contextlib.suppress(CDPError):
            self.cdp.send("Target.closeTarget", {"targetId": self.target_id}, timeout=5.0)
        with contextlib.suppress(CDPError):
            self.cdp.send(
                "Target.disposeBrowserContext", {"browserContextId": self.context_id}, timeout=5.0
            )

    def __enter__(self) -> Page:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # --------------------------------------------------------------- what we saw

    @property
    def requests(self) -> list[RequestEntry]:
        """Every request of the page so far, in the order they were made (copies)."""
        with self._cond:
            return [replace(entry) for entry in self._state.requests]

    @property
    def dialogs(self) -> list[Dialog]:
        """The first MAX_DIALOGS dialogs the page opened (``dialog_count``: all)."""
        with self._cond:
            return list(self._state.dialogs)

    @property
    def dialog_count(self) -> int:
        with self._cond:
            return self._state.dialog_count

    @property
    def scripts_stopped(self) -> str | None:
        """Why the page's scripts were stopped (dialogs opened for ever), or None."""
        with self._cond:
            return self._state.scripts_stopped

    @property
    def downloads(self) -> list[Download]:
        with self._cond:
            return list(self._state.downloads)

    @property
    def popups(self) -> list[str]:
        """URLs of the windows the page opened (each closed at once)."""
        with self._cond:
            return list(self._state.popups)

    def inflight(self) -> int:
        """Requests of the page started and not yet finished or failed."""
        with self._cond:
            return len(self._state.inflight)

    @property
    def url(self) -> str:
        """The main frame's URL, as last committed."""
        with self._cond:
            return self._state.frame_urls.get(self.target_id, "")

    # ------------------------------------------------------------------ set-up

    def set_user_agent(self, user_agent: str, accept_language: str | None = None) -> None:
        """The User-Agent (and Accept-Language) this page's requests carry, and
        ``navigator.userAgent`` says, from now on (``LaunchSettings.user_agent`` sets it
        for the whole browser instead)."""
        params = {"userAgent": user_agent}
        if accept_language:
            params["acceptLanguage"] = accept_language
        self._send("Network.setUserAgentOverride", params)

    def set_cookies(self, cookies: list[dict[str, Any]]) -> None:
        """Cookies for the page's browser context, as the protocol's ``CookieParam``
        objects (name, value, and url or domain and path; secure, httpOnly, expires...)."""
        if cookies:
            self._send("Network.setCookies", {"cookies": cookies})

    # ------------------------------------------------------------------- steps

    def navigate(self, url: str, timeout: float = 30.0) -> NavResult:
        """Go to ``url`` and wait for the main frame's load event, at most ``timeout``
        seconds in all. Never raises for the page's own failures: they are in the result
        (a crash or a browser gone still raise)."""
        started = time.monotonic()
        deadline = started + timeout
        try:
            answer = self._send("Page.navigate", {"url": url}, timeout=timeout)
        except (CDPTimeout, PageCrashed, BrowserGone) as exc:
            if not isinstance(exc, CDPTimeout):
                raise
            return self._failed(url, f"no response within {timeout:g} s", started)
        except CDPError as exc:  # "Cannot navigate to invalid URL"
            return self._failed(url, exc.message, started)
        frame_id = str(answer.get("frameId", self.target_id))
        loader_id = str(answer.get("loaderId", ""))
        error = answer.get("errorText") or None
        loaded = False
        if error is None:
            if not loader_id:  # same document (a #fragment): nothing loads
                loaded = True
            else:
                with self._cond:
                    # the load event; or the frame stopped loading without one (a
                    # download began while the page was parsed); or the timeout; or the
                    # browser gone (it says nothing as it dies: looked at every 0.25 s)
                    def done() -> bool:
                        return bool(
                            (frame_id, loader_id, "load") in self._state.lifecycle
                            or loader_id in self._state.stopped
                            or self.crashed
                            or self.closed
                            or self._detached
                            or self.cdp.gone
                        )

                    while not done() and (left := deadline - time.monotonic()) > 0:
                        self._cond.wait_for(done, timeout=min(left, 0.25))
                    loaded = (frame_id, loader_id, "load") in self._state.lifecycle
                self._check()
        with self._cond:
            status = self._state.doc_status.get(loader_id)
        return NavResult(
            url=url,
            final_url=self.url,
            loaded=loaded,
            error=error,
            status=status,
            seconds=time.monotonic() - started,
            frame_id=frame_id,
            loader_id=loader_id,
        )

    def _failed(self, url: str, error: str, started: float) -> NavResult:
        return NavResult(
            url=url,
            final_url=self.url,
            loaded=False,
            error=error,
            status=None,
            seconds=time.monotonic() - started,
            frame_id=self.target_id,
        )

    def wait_quiet(
        self,
        inflight: Callable[[], int] | None = None,
        quiet_ms: int = 500,
        timeout: float = 10.0,
    ) -> bool:
        """Wait until ``inflight()`` (the caller's count of requests in flight, e.g. its
        proxy's) has been 0 for ``quiet_ms``; True then, False at ``timeout``. Without
        ``inflight``, the page's own requests in flight (Network events) are counted."""
        count = inflight if inflight is not None else self.inflight
        deadline = time.monotonic() + timeout
        quiet_since: float | None = None
        while True:
            self._check()
            now = time.monotonic()
            if count() == 0:
                if quiet_since is None:
                    quiet_since = now
                if (now - quiet_since) * 1000 >= quiet_ms:
                    return True
            else:
                quiet_since = None
            if now >= deadline:
                return False
            time.sleep(min(0.05, max(0.0, deadline - now)))

    def scroll(self, max_steps: int = 20, *, pause: float = 0.25, back_to_top: bool = True) -> int:
        """Scroll down a viewport height per step, pausing ``pause`` s after each so lazy
        content can load, until the bottom stops moving away or ``max_steps`` steps (an
        infinite scroll stays bounded). Scrolls the document, or the page's biggest
        scrolling box when the document does not scroll. Returns the steps that moved."""
        steps = 0
        for _ in range(max(0, max_steps)):
            moved = self._evaluate(self.target_id, _SCROLL_STEP)
            if not isinstance(moved, dict) or not moved.get("moved"):
                # at the bottom: give the page one pause to grow (infinite scroll)
                time.sleep(pause)
                height = self._evaluate(self.target_id, _SCROLL_HEIGHT)
                if not isinstance(moved, dict) or not (
                    isinstance(height, int | float) and height > moved.get("height", 0)
                ):
                    break
                continue
            steps += 1
            time.sleep(pause)
        if back_to_top:
            self._evaluate(self.target_id, _SCROLL_TOP)
        return steps

    def play_media(self) -> int:
        """Play every ``<video>`` and ``<audio>`` of every frame, muted; returns how many
        were asked to play (a source the browser cannot play still gets fetched)."""
        return sum(
            int(self._evaluate(frame_id, _PLAY, user_gesture=True) or 0)
            for frame_id, _, _ in self._frames()
        )

    def click_play_buttons(self) -> int:
        """Click the visible play buttons and click-to-load placeholders
        (:data:`PLAY_SELECTORS`) of every frame, each once per document; never a link
        that would leave the page, nor a button saying "pause". Returns the clicks."""
        script = _CLICK.replace("ALL", json.dumps(",".join(PLAY_SELECTORS))).replace(
            "GENERIC", json.dumps(",".join(GENERIC_PLAY))
        )
        return sum(
            int(self._evaluate(frame_id, script, user_gesture=True) or 0)
            for frame_id, _, _ in self._frames()
        )

    def screenshot(self, full_page: bool = False) -> bytes:
        """A PNG of the viewport, or of the whole page (see :meth:`shoot`)."""
        return self.shoot(full_page).png

    def shoot(self, full_page: bool = False, *, timeout: float = 120.0) -> Screenshot:
        """A PNG of the viewport, or of the whole page's content (up to
        :data:`MAX_SCREENSHOT_HEIGHT` CSS px, saying so when cut)."""
        width, height = self.browser.settings.viewport
        params: dict[str, Any] = {"format": "png"}
        content_height = height
        capped = False
        if full_page:
            metrics = self._send("Page.getLayoutMetrics", timeout=timeout)
            size = metrics.get("cssContentSize") or metrics.get("contentSize") or {}
            content_width = max(width, math.ceil(size.get("width", width)))
            content_height = max(1, math.ceil(size.get("height", height)))
            capped = content_height > MAX_SCREENSHOT_HEIGHT or content_width > MAX_SCREENSHOT_WIDTH
            width = min(content_width, MAX_SCREENSHOT_WIDTH)
            height = min(content_height, MAX_SCREENSHOT_HEIGHT)
            params.update(
                captureBeyondViewport=True,
                clip={"x": 0, "y": 0, "width": width, "height": height, "scale": 1},
            )
        data = self._send("Page.captureScreenshot", params, timeout=timeout)["data"]
        png = base64.b64decode(data)
        png_width, png_height = png_size(png)
        return Screenshot(
            png=png,
            width=png_width,
            height=png_height,
            css_width=width,
            css_height=height,
            content_height=content_height,
            full_page=full_page,
            capped=capped,
        )

    def pdf(self, *, timeout: float = 120.0) -> bytes:
        """The page printed to PDF, backgrounds included."""
        data = self._send(
            "Page.printToPDF",
            {"printBackground": True, "preferCSSPageSize": True},
            timeout=timeout,
        )["data"]
        return base64.b64decode(data)

    def dom(self, *, timeout: float = 60.0) -> list[FrameDOM]:
        """Every frame's document serialized as it stands, the main frame first, then
        its frames depth first. Open shadow roots are serialized too, as declarative
        ``<template shadowrootmode>``."""
        frames = []
        for frame_id, parent_id, url in self._frames():
            try:
                html = self._evaluate(frame_id, _OUTER_HTML, timeout=timeout)
            except (PageCrashed, BrowserGone):
                raise
            except CDPError as exc:
                frames.append(FrameDOM(url, frame_id, parent_id, "", error=exc.message))
                continue
            frames.append(FrameDOM(url, frame_id, parent_id, str(html or "")))
        return frames

    def text(self, *, timeout: float = 60.0) -> str:
        """The main frame's text as rendered (``innerText``), then each frame's after a
        line naming its URL."""
        parts = []
        for frame_id, parent_id, url in self._frames():
            try:
                text = str(self._evaluate(frame_id, _TEXT, timeout=timeout) or "")
            except (PageCrashed, BrowserGone):
                raise
            except CDPError:
                continue  # a frame gone meanwhile
            parts.append(text if parent_id is None else f"\n\n--- frame: {url} ---\n{text}")
        return "".join(parts)

    # ------------------------------------------------------------------ helpers

    def _check(self) -> None:
        if self.crashed:
            raise PageCrashed("page", "the page's renderer crashed; open a new page")
        if self.closed:
            raise PageCrashed("page", "the page is closed")
        if self._detached:
            raise PageCrashed("page", self._detached)
        if self.cdp.gone:
            raise BrowserGone("page", "the browser is gone")

    def _send(
        self, method: str, params: dict[str, Any] | None = None, *, timeout: float = 30.0
    ) -> dict[str, Any]:
        self._check()
        try:
            return self.cdp.send(method, params, session_id=self.session_id, timeout=timeout)
        except CDPError:
            self._check()  # the crash, said as such, rather than its consequence
            raise

    def _frames(self) -> list[tuple[str, str | None, str]]:
        """(frame id, parent id, url) of every frame, depth first from the main frame."""
        tree = self._send("Page.getFrameTree")["frameTree"]
        out: list[tuple[str, str | None, str]] = []

        def walk(node: dict[str, Any], parent: str | None) -> None:
            frame = node["frame"]
            out.append((frame["id"], parent, frame.get("url", "") + frame.get("urlFragment", "")))
            with self._cond:
                if frame.get("loaderId"):
                    self._state.frame_loaders[frame["id"]] = frame["loaderId"]
            for child in node.get("childFrames", []):
                walk(child, frame["id"])

        walk(tree, None)
        return out

    def _world(self, frame_id: str) -> int:
        """Our isolated world in the frame's current document (made once per document)."""
        with self._cond:
            key = (frame_id, self._state.frame_loaders.get(frame_id, ""))
            context = self._state.worlds.get(key)
        if context is None:
            context = int(
                self._send(
                    "Page.createIsolatedWorld",
                    {"frameId": frame_id, "worldName": WORLD, "grantUniveralAccess": False},
                )["executionContextId"]
            )
            with self._cond:
                self._state.worlds[key] = context
        return context

    def _evaluate(
        self,
        frame_id: str,
        expression: str,
        *,
        timeout: float = 30.0,
        user_gesture: bool = False,
    ) -> Any:
        """The value of ``expression`` in our world of the frame (promises awaited)."""
        for attempt in (1, 2):
            context = self._world(frame_id)
            try:
                answer = self._send(
                    "Runtime.evaluate",
                    {
                        "expression": expression,
                        "contextId": context,
                        "returnByValue": True,
                        "awaitPromise": True,
                        "userGesture": user_gesture,
                    },
                    timeout=timeout,
                )
            except CDPError as exc:
                if attempt == 1 and "context" in exc.message.lower():
                    with self._cond:  # the document changed under us: a new world
                        self._state.worlds = {
                            k: v for k, v in self._state.worlds.items() if v != context
                        }
                    continue
                raise
            details = answer.get("exceptionDetails")
            if details:
                exception = details.get("exception") or {}
                message = exception.get("description") or details.get("text", "exception")
                raise CDPError("Runtime.evaluate", str(message))
            return (answer.get("result") or {}).get("value")
        raise CDPError("Runtime.evaluate", "the frame's document kept changing")

    # ------------------------------------------------------------------- events

    def _on_event(self, method: str, params: dict[str, Any], session_id: str | None) -> None:
        """On the CDP reader thread: bookkeeping only, and commands without waiting."""
        if session_id == self.session_id:
            self._on_page_event(method, params)
        elif session_id is None:
            self._on_browser_event(method, params)

    def _on_browser_event(self, method: str, params: dict[str, Any]) -> None:
        if method == "Target.targetCreated":
            info = params.get("targetInfo", {})
            if info.get("openerId") == self.target_id and info.get("type") == "page":
                # its URL came with Page.windowOpen (the new target's is blank yet)
                self.cdp.post("Target.closeTarget", {"targetId": info["targetId"]})
        elif method == "Target.targetCrashed":
            if params.get("targetId") == self.target_id:
                self._crash()
        elif method == "Target.detachedFromTarget":
            if params.get("sessionId") == self.session_id:
                self._crash("the page was closed")
        elif method == "Browser.downloadWillBegin":
            self._note_download(params)

    def _on_page_event(self, method: str, params: dict[str, Any]) -> None:
        state = self._state
        if method.startswith("Network."):
            self._on_network(method, params)
        elif method == "Page.lifecycleEvent":
            with self._cond:
                state.lifecycle.add((params["frameId"], params["loaderId"], params["name"]))
                if params["frameId"] == self.target_id and params["name"] == "init":
                    state.frame_loaders[self.target_id] = params["loaderId"]
                self._cond.notify_all()
        elif method == "Page.frameStoppedLoading":
            with self._cond:
                if params.get("frameId") == self.target_id:
                    state.stopped.add(state.frame_loaders.get(self.target_id, ""))
                    self._cond.notify_all()
        elif method == "Page.frameNavigated":
            frame = params.get("frame", {})
            frame_id, loader_id = frame["id"], frame.get("loaderId", "")
            with self._cond:
                state.frame_ids.add(frame_id)
                state.frame_urls[frame_id] = frame.get("url", "") + frame.get("urlFragment", "")
                if loader_id:
                    state.frame_loaders[frame_id] = loader_id
                # the old document's requests in flight end with it, mostly without an
                # event to say so: they must not keep the page busy for ever
                self._forget_inflight(lambda where: where[0] == frame_id and where[1] != loader_id)
        elif method == "Page.frameDetached":
            with self._cond:
                gone = params.get("frameId")
                self._forget_inflight(lambda where: where[0] == gone)
        elif method == "Page.navigatedWithinDocument":
            with self._cond:
                state.frame_urls[params["frameId"]] = params.get("url", "")
        elif method == "Page.frameAttached":
            with self._cond:
                state.frame_ids.add(params["frameId"])
        elif method == "Page.javascriptDialogOpening":
            kind = params.get("type", "alert")
            with self._cond:
                state.dialog_count += 1
                if len(state.dialogs) < MAX_DIALOGS:
                    dialog = Dialog(kind, params.get("message", "")[:1000], params.get("url", ""))
                    state.dialogs.append(dialog)
                stop = state.dialog_count == DIALOG_LIMIT and state.scripts_stopped is None
                if stop:
                    state.scripts_stopped = f"after {DIALOG_LIMIT} dialogs"
            if stop:  # a page that opens dialogs for ever: its scripts end here
                self.cdp.post("Runtime.terminateExecution", session_id=self.session_id)
                self.cdp.post(
                    "Emulation.setScriptExecutionDisabled",
                    {"value": True},
                    session_id=self.session_id,
                )
            self.cdp.post(
                "Page.handleJavaScriptDialog",
                {"accept": kind == "beforeunload"},
                session_id=self.session_id,
            )
        elif method == "Page.downloadWillBegin":
            self._note_download(params)
        elif method == "Page.windowOpen":
            with self._cond:
                state.popups.append(params.get("url", ""))
        elif method == "Inspector.targetCrashed":
            self._crash()
        elif method == "Inspector.detached":
            self._crash(f"the page's session ended ({params.get('reason', '')})")

    def _on_network(self, method: str, params: dict[str, Any]) -> None:
        state = self._state
        request_id = params.get("requestId", "")
        with self._cond:
            entry = state.latest.get(request_id)
            if method == "Network.requestWillBeSent":
                redirect = params.get("redirectResponse")
                if entry is not None and redirect is not None:
                    entry.status = redirect.get("status")
                    entry.mime_type = redirect.get("mimeType")
                    entry.redirected = True
                    entry.finished = True
                request = params.get("request", {})
                initiator = params.get("initiator", {})
                initiator_url = initiator.get("url")
                if not initiator_url:
                    frames = (initiator.get("stack") or {}).get("callFrames") or []
                    initiator_url = frames[0].get("url") if frames else None
                entry = RequestEntry(
                    request_id=request_id,
                    url=request.get("url", "") + request.get("urlFragment", ""),
                    method=request.get("method", "GET"),
                    frame_id=params.get("frameId"),
                    resource_type=params.get("type"),
                    initiator_type=initiator.get("type"),
                    initiator_url=initiator_url or None,
                    wall_time=params.get("wallTime"),
                )
                state.requests.append(entry)
                state.latest[request_id] = entry
                state.inflight.add(request_id)
                state.request_where[request_id] = (
                    params.get("frameId", ""),
                    params.get("loaderId", ""),
                )
            elif entry is None:
                return
            elif method == "Network.responseReceived":
                response = params.get("response", {})
                entry.status = response.get("status")
                entry.mime_type = response.get("mimeType")
                entry.resource_type = params.get("type") or entry.resource_type
                if response.get("fromDiskCache") or response.get("fromPrefetchCache"):
                    entry.from_cache = True
                if params.get("type") == "Document" and params.get("loaderId"):
                    state.doc_status[params["loaderId"]] = int(response.get("status", 0))
            elif method == "Network.requestServedFromCache":
                entry.from_cache = True
            elif method == "Network.loadingFinished":
                entry.finished = True
                state.inflight.discard(request_id)
            elif method == "Network.loadingFailed":
                reason = params.get("errorText") or "failed"
                if params.get("canceled"):
                    reason = f"canceled ({reason})"
                if params.get("blockedReason"):
                    reason = f"blocked: {params['blockedReason']} ({reason})"
                entry.failed = reason
                state.inflight.discard(request_id)
            self._cond.notify_all()

    def _forget_inflight(self, which: Callable[[tuple[str, str]], bool]) -> None:
        """Drop requests in flight whose (frame id, loader id) ``which`` picks; the caller
        holds the lock."""
        state = self._state
        for request_id in [r for r in state.inflight if which(state.request_where[r])]:
            state.inflight.discard(request_id)
            state.latest[request_id].failed = state.latest[request_id].failed or "abandoned"

    def _note_download(self, params: dict[str, Any]) -> None:
        with self._cond:
            if params.get("frameId") not in self._state.frame_ids:
                return
            guid = params.get("guid", "")
            if any(d.guid == guid for d in self._state.downloads):
                return  # both Page. and Browser.downloadWillBegin
            self._state.downloads.append(
                Download(
                    url=params.get("url", ""),
                    suggested_filename=params.get("suggestedFilename", ""),
                    frame_id=params.get("frameId", ""),
                    guid=guid,
                )
            )

    def _crash(self, detached: str | None = None) -> None:
        """The renderer crashed (``detached`` None) or the session ended (why)."""
        with self._cond:
            if detached is None:
                self.crashed = True
            elif not self.crashed:
                self._detached = detached
            self._cond.notify_all()
        reason = detached or "the page's renderer crashed"
        self.cdp.fail_session(self.session_id, PageCrashed("page", reason))


_SCROLL_STEP = """(() => {
  const doc = document.scrollingElement || document.documentElement;
  let box = window.__archiverScroller;
  if (!box || !box.isConnected) {
    box = doc;
    if (doc.scrollHeight <= window.innerHeight + 1) {
      let best = 0;
      for (const el of document.querySelectorAll('*')) {
        if (el.scrollHeight <= el.clientHeight + 1) continue;
        const oy = getComputedStyle(el).overflowY;
        if (oy !== 'auto' && oy !== 'scroll') continue;
        const area = el.clientWidth * el.clientHeight;
        if (area > best) { best = area; box = el; }
      }
    }
    window.__archiverScroller = box;
  }
  const before = box.scrollTop;
  const step = box === doc ? window.innerHeight : box.clientHeight;
  box.scrollBy(0, step);
  return {moved: box.scrollTop > before, height: box.scrollHeight};
})()"""

_SCROLL_HEIGHT = """(() => {
  const box = window.__archiverScroller || document.scrollingElement || document.documentElement;
  return box.scrollHeight;
})()"""

_SCROLL_TOP = """(() => {
  const box = window.__archiverScroller || document.scrollingElement || document.documentElement;
  box.scrollTo(0, 0);
  return true;
})()"""

_PLAY = """(() => {
  let n = 0;
  for (const media of document.querySelectorAll('video, audio')) {
    try {
      media.muted = true;
      const started = media.play();
      if (started && started.catch) started.catch(() => {});
      n++;
    } catch (e) {}
  }
  return n;
})()"""

_CLICK = """(() => {
  const clicked = window.__archiverClicked || (window.__archiverClicked = new WeakSet());
  let n = 0;
  for (const el of document.querySelectorAll(ALL)) {
    if (clicked.has(el)) continue;
    const label = el.getAttribute('aria-label') || el.getAttribute('title') || '';
    if (/pause/i.test(label)) continue;
    if (el.matches(GENERIC) && !/\\bplay\\b/i.test(label)) continue;
    const link = el.closest('a[href]');
    if (link) {
      const href = (link.getAttribute('href') || '').trim().toLowerCase();
      if (href && !href.startsWith('#') && !href.startsWith('javascript:')) continue;
    }
    const box = el.getBoundingClientRect();
    if (box.width === 0 || box.height === 0) continue;
    clicked.add(el);
    try { el.click(); n++; } catch (e) {}
  }
  return n;
})()"""

_OUTER_HTML = """(() => {
  const root = document.documentElement;
  if (!root) return '';
  const type = document.doctype;
  const doctype = type ? new XMLSerializer().serializeToString(type) + '\\n' : '';
  const shadows = [];
  const walk = (node) => {
    for (const el of node.querySelectorAll('*')) {
      if (el.shadowRoot) { shadows.push(el.shadowRoot); walk(el.shadowRoot); }
    }
  };
  walk(document);
  if (!shadows.length || typeof root.getHTML !== 'function') return doctype + root.outerHTML;
  const shell = root.cloneNode(false).outerHTML;
  const cut = shell.lastIndexOf('</');
  return doctype + shell.slice(0, cut) + root.getHTML({shadowRoots: shadows}) + shell.slice(cut);
})()"""

_TEXT = """(() => {
  const el = document.body || document.documentElement;
  return el ? el.innerText : '';
})()"""
