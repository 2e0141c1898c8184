"""What a capture does with a page (archiver.web.browser.page), against real pages served
on loopback and the real Chromium: script-built content, lazy images, media, play
buttons, dialogs, pop-ups, a frame from another site, a download, screenshots, PDF, DOM,
text, the requests made, a page that never goes quiet, a crash.

One browser serves the whole module (launching costs ~0.3 s); each test has a page of its
own, in a browser context of its own.
"""

from __future__ import annotations

import base64
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from archiver.web.browser import Browser, CDPError, LaunchSettings
from archiver.web.browser.page import MAX_SCREENSHOT_HEIGHT, Page, PageCrashed, png_size
from tests.support.pages import FRAME_PAGES, PAGES, PageServer, Route

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = pytest.mark.skipif(
    not os.access(CHROMIUM, os.X_OK), reason="Debian's chromium is not installed here"
)
VIEWPORT = (640, 480)
SCALE = 2.0


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[PageServer, PageServer]]:
    """The pages, and a second server for the framed page: another port is another
    origin, and ``localhost`` (vs 127.0.0.1) another site."""
    routes = dict(PAGES)
    routes["/huge"] = Route(
        "<!doctype html><body style='margin:0'><div style='height:20000px'>huge</div>"
    )
    with PageServer(routes=FRAME_PAGES) as inner, PageServer(routes=routes) as outer:
        outer.other = f"http://localhost:{inner.port}"
        yield outer, inner


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with Browser(LaunchSettings(CHROMIUM, viewport=VIEWPORT, scale=SCALE)) as running:
        yield running


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    with Page.open(browser) as opened:
        yield opened


@pytest.fixture
def site(servers: tuple[PageServer, PageServer]) -> PageServer:
    return servers[0]


def eventually(predicate: object, seconds: float = 3.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.05)
    return bool(predicate())  # type: ignore[operator]


def test_a_page_built_by_script_is_read_as_rendered(page: Page, site: PageServer) -> None:
    result = page.navigate(site.url("/script"))
    assert result.loaded and result.error is None and result.status == 200
    assert result.final_url == site.url("/script") == page.url
    assert "built by script 42" in page.text()
    (main,) = page.dom()
    assert main.parent_id is None and main.frame_id == page.target_id
    assert main.html.startswith("<!DOCTYPE html>\n<html>")
    assert '<div id="out">built by script 42</div>' in main.html  # the DOM, not the source
    first = page.requests[0]
    assert (first.url, first.method, first.status) == (site.url("/script"), "GET", 200)
    assert first.resource_type == "Document" and first.mime_type == "text/html"
    assert first.frame_id == page.target_id and first.finished


def test_the_user_agent_and_cookies_given_are_sent(page: Page, site: PageServer) -> None:
    page.set_user_agent("Archiver Test/1.0", accept_language="de-CH")
    page.set_cookies([{"name": "consent", "value": "yes", "url": site.base}])
    page.navigate(site.url("/headers"))
    sent = page.text()
    assert "User-Agent: Archiver Test/1.0" in sent
    assert "Accept-Language: de-CH" in sent
    assert "Cookie: consent=yes" in sent


def test_a_redirect_is_one_entry_per_hop(page: Page, site: PageServer) -> None:
    result = page.navigate(site.url("/redirect"))
    assert result.status == 200 and result.final_url == site.url("/script")
    hops = [r for r in page.requests if r.resource_type == "Document"]
    assert [(h.url, h.status, h.redirected) for h in hops] == [
        (site.url("/redirect"), 302, True),
        (site.url("/script"), 200, False),
    ]
    assert hops[0].request_id == hops[1].request_id


def test_a_lazy_image_loads_only_when_scrolled_to(page: Page, site: PageServer) -> None:
    page.navigate(site.url("/lazy"))
    assert page.wait_quiet(timeout=5)
    assert "/lazy.png" not in site.paths()
    steps = page.scroll(20, pause=0.1)
    assert 1 <= steps < 20  # 4000 px at 480 px a step, then the bottom
    assert eventually(lambda: "/lazy.png" in site.paths())
    assert any(r.url == site.url("/lazy.png") for r in page.requests)


def test_an_infinite_scroll_is_bounded(page: Page, site: PageServer) -> None:
    page.navigate(site.url("/infinite"))
    assert page.scroll(5, pause=0.05) == 5
    assert page.scroll(0) == 0


def test_media_of_every_frame_is_played_muted(page: Page, servers: tuple[PageServer, ...]) -> None:
    site, inner = servers
    page.navigate(site.url("/media"))
    assert page.play_media() == 2
    html = page.dom()[0].html
    assert html.count('data-played="yes"') == 2  # the page's own play listeners fired
    # preload=none: only playing fetches them
    assert eventually(lambda: {"/tiny.webm", "/tiny.wav"} <= set(site.paths()))
    page.navigate(site.url("/frames"))
    assert page.play_media() == 1  # the framed page's video, in another site's frame
    assert eventually(lambda: "/tiny.webm" in inner.paths())


def test_play_buttons_and_placeholders_are_clicked_once(page: Page, site: PageServer) -> None:
    page.navigate(site.url("/buttons"))
    assert page.click_play_buttons() == 2
    html = page.dom()[0].html
    assert 'aria-label="Play video" onclick="this.dataset.hit=\'yes\'" data-hit="yes"' in html
    assert 'class="click-to-load"' in html and html.count('data-hit="yes"') == 2
    # not "Playlist", not "Pause", not a link away, not a hidden button
    assert page.url == site.url("/buttons")
    assert page.click_play_buttons() == 0


def test_dialogs_are_dismissed_and_noted(page: Page, site: PageServer) -> None:
    result = page.navigate(site.url("/alert"))
    assert result.loaded
    assert [(d.type, d.message) for d in page.dialogs] == [
        ("alert", "hello from the page"),
        ("confirm", "sure?"),
    ]
    assert "<title>after false</title>" in page.dom()[0].html  # confirm() was refused


def test_a_popup_is_noted_and_closed(page: Page, browser: Browser, site: PageServer) -> None:
    page.navigate(site.url("/popup"))
    assert eventually(lambda: page.popups == [site.url("/popped?from=opener")])

    def popups_open() -> list[dict[str, str]]:
        targets = browser.cdp.send("Target.getTargets")["targetInfos"]
        return [t for t in targets if t.get("openerId") == page.target_id]

    assert eventually(lambda: popups_open() == [])


def test_a_frame_from_another_site_is_in_the_dom_and_the_text(
    page: Page, servers: tuple[PageServer, ...]
) -> None:
    site, inner = servers
    page.navigate(site.url("/frames"))
    assert page.wait_quiet(timeout=5)
    main, framed = page.dom()
    inner_url = f"http://localhost:{inner.port}/inner"
    assert framed.url == inner_url and framed.parent_id == main.frame_id
    assert '<p id="p">inner frame text</p>' in framed.html
    assert "<iframe" in main.html and "inner frame text" not in main.html
    text = page.text()
    assert text.startswith("outer text")
    assert f"--- frame: {inner_url} ---\ninner frame text" in text
    framed_requests = [r for r in page.requests if r.url == inner_url]
    assert framed_requests and framed_requests[0].frame_id == framed.frame_id


def test_sandboxed_and_srcdoc_frames_are_seen_too(
    page: Page, servers: tuple[PageServer, ...]
) -> None:
    site, inner = servers
    page.navigate(site.url("/sandboxed"))
    assert page.wait_quiet(timeout=5)
    main, sandboxed, srcdoc = page.dom()
    assert sandboxed.url == f"http://localhost:{inner.port}/inner"
    assert "inner frame text" in sandboxed.html  # its script ran, in our session's view
    assert srcdoc.url == "about:srcdoc" and "<p>written in srcdoc</p>" in srcdoc.html
    assert {sandboxed.parent_id, srcdoc.parent_id} == {main.frame_id}


def test_a_download_is_denied_and_noted(page: Page, browser: Browser, site: PageServer) -> None:
    result = page.navigate(site.url("/download"), timeout=20)
    assert result.seconds < 5  # the load event never comes: the frame's stop ends the wait
    assert eventually(lambda: [d.url for d in page.downloads] == [site.url("/file.bin")])
    assert page.downloads[0].suggested_filename == "evidence.bin"
    direct = page.navigate(site.url("/file.bin?direct"))  # a download as the page itself
    assert direct.error == "net::ERR_ABORTED" and not direct.loaded
    assert eventually(lambda: len(page.downloads) == 2)
    assert "/file.bin" in site.paths()  # the request went out (a proxy would record it)
    assert list(browser.profile_dir.rglob("evidence.bin*")) == []  # nothing written


def test_screenshots_are_pngs_of_the_viewport_and_of_the_page(page: Page, site: PageServer) -> None:
    page.navigate(site.url("/tall"))
    view = page.screenshot(full_page=False)
    assert view.startswith(b"\x89PNG\r\n\x1a\n")
    assert png_size(view) == (VIEWPORT[0] * SCALE, VIEWPORT[1] * SCALE)
    full = page.shoot(full_page=True)
    assert (full.width, full.height) == (VIEWPORT[0] * SCALE, 3000 * SCALE)
    assert png_size(full.png) == (full.width, full.height)
    assert full.content_height == 3000 and not full.capped


def test_a_page_taller_than_the_cap_is_cut_and_says_so(page: Page, site: PageServer) -> None:
    page.navigate(site.url("/huge"))
    full = page.shoot(full_page=True)
    assert full.capped and full.content_height == 20000
    assert full.css_height == MAX_SCREENSHOT_HEIGHT
    assert png_size(full.png)[1] == MAX_SCREENSHOT_HEIGHT * SCALE


def test_the_pdf_is_a_pdf(page: Page, site: PageServer) -> None:
    page.navigate(site.url("/script"))
    assert page.pdf().startswith(b"%PDF-")


def test_open_shadow_roots_are_serialized(page: Page, site: PageServer) -> None:
    page.navigate(site.url("/shadow"))
    html = page.dom()[0].html
    assert '<template shadowrootmode="open"><b>inside the shadow</b></template>' in html


def test_a_page_that_never_goes_quiet_times_out(page: Page, site: PageServer) -> None:
    page.navigate(site.url("/busy"))
    began = time.monotonic()
    assert page.wait_quiet(timeout=1.0) is False
    assert 1.0 <= time.monotonic() - began < 3.0  # at its timeout, not much later
    # the caller's count rules when given (its proxy's in-flight requests)
    began = time.monotonic()
    assert page.wait_quiet(lambda: 0, quiet_ms=200, timeout=1.0) is True
    assert time.monotonic() - began < 1.0
    assert page.wait_quiet(lambda: 1, quiet_ms=100, timeout=0.3) is False


def test_a_quiet_page_is_quiet_soon(page: Page, site: PageServer) -> None:
    page.navigate(site.url("/busy"))  # what was in flight there must not count here
    page.navigate(site.url("/script"))
    began = time.monotonic()
    assert page.wait_quiet(quiet_ms=300, timeout=5)
    assert time.monotonic() - began < 4


def test_a_navigation_that_fails_says_why(page: Page) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    result = page.navigate(f"http://127.0.0.1:{closed}/")
    assert not result.loaded and result.error == "net::ERR_CONNECTION_REFUSED"
    assert result.status is None
    invalid = page.navigate("http://[not-a-host/")
    assert not invalid.loaded and invalid.error and "invalid" in invalid.error.lower()


def test_every_command_may_come_from_any_thread(browser: Browser, page: Page) -> None:
    """Many threads send at once; each gets its own answer."""
    answers: dict[int, object] = {}

    def ask(n: int) -> None:
        result = browser.cdp.send(
            "Runtime.evaluate",
            {"expression": f"{n} * 2", "returnByValue": True},
            session_id=page.session_id,
        )
        answers[n] = result["result"]["value"]

    threads = [threading.Thread(target=ask, args=(n,)) for n in range(40)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert answers == {n: n * 2 for n in range(40)}


def test_a_message_of_tens_of_megabytes_is_read_whole(browser: Browser, page: Page) -> None:
    size = 32 * 1024 * 1024
    began = time.monotonic()
    result = browser.cdp.send(
        "Runtime.evaluate",
        {"expression": f"btoa('x'.repeat({size // 4 * 3}))", "returnByValue": True},
        session_id=page.session_id,
        timeout=60,
    )
    value = result["result"]["value"]
    assert len(value) == size and base64.b64decode(value[:8]) == b"xxxxxx"
    assert time.monotonic() - began < 10


def test_a_crashed_page_says_so_and_the_browser_goes_on(browser: Browser, site: PageServer) -> None:
    page = Page.open(browser)
    page.navigate(site.url("/script"))
    with pytest.raises(CDPError):  # the renderer dies before it can answer
        browser.cdp.send("Page.crash", session_id=page.session_id, timeout=5)
    assert eventually(lambda: page.crashed)
    with pytest.raises(PageCrashed, match="crashed"):
        page.text()
    with pytest.raises(PageCrashed):
        page.navigate(site.url("/script"))
    page.close()
    with Page.open(browser) as another:
        assert another.navigate(site.url("/script")).loaded
