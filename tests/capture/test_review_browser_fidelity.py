"""The review of browser capture (`--browser`): each test failed on the code it was
written against and states the property it broke. Real Chromium, real raw-socket origins
on 127.0.0.1, the library Capturer, warcio to read the WARC.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.support.raw_origin import (
    Conn,
    capture,
    dom_of,
    fixed,
    html,
    http_mode,
    origin,
    responses,
)

pytestmark = pytest.mark.usefixtures("chromium")


def _ok(kind: bytes, body: bytes) -> bytes:
    return (
        b"HTTP/1.1 200 OK\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n" % (kind, len(body))
        + body
    )


# -- F1: a browser POST/PUT reaches the server with Content-Length twice -------------------


def test_f1_browser_post_is_sent_with_one_content_length(tmp_path: Path) -> None:
    page = """<!doctype html><title>post</title><pre id=out></pre><script>
    fetch('/api', {method: 'POST', body: 'q=evidence'}).then(r => r.text())
      .then(t => out.textContent = 'answer: ' + t);</script>"""
    with origin({"/": html(page), "/api": fixed(_ok(b"text/plain", b"fine"))}) as site:
        _cap, _recs, _ = capture(site.url("/"), tmp_path / "a", browser_timeout=4)
        (posted,) = site.by_path("/api")
    head = posted.request.split(b"\r\n\r\n", 1)[0].lower()
    # RFC 9112 6.3: a recipient MAY reject duplicate Content-Length; Node's llhttp and
    # nginx do (400): every form, XHR and fetch() with a body then fails in browser mode
    assert head.count(b"\r\ncontent-length:") == 1, posted.request


# -- F2: a request in flight when the browser closes: answered, never recorded, never said --


def test_f2_request_in_flight_at_close_is_recorded_or_listed(tmp_path: Path) -> None:
    delay = 4.0  # answered after the browser closed (browser_timeout=1: about 3 s)

    def late(c: Conn) -> None:
        time.sleep(delay)
        c.send(_ok(b"text/plain", b"late answer"))

    page = (
        "<!doctype html><title>late</title><script>setTimeout(() => fetch('/late'), 200)</script>"
    )
    with origin({"/": html(page), "/late": late}) as site:
        cap, recs, took = capture(site.url("/"), tmp_path / "a", browser_timeout=1, timeout=30)
        time.sleep(max(0.0, delay - took) + 0.5)
        (served,) = site.by_path("/late")
    assert served.ended is not None and served.response  # the server got it and answered
    recorded = any(r.url.endswith("/late") for r in recs)
    listed = any(e.url.endswith("/late") for e in cap.errors)
    info = json.dumps(cap.browser or {})
    # the capture waits for it: recorded as the server answered (the browser had gone)
    assert recorded and cap.status.value == "complete", (cap.errors, listed, info)
    assert recorded or listed or "/late" in info, (
        f"status={cap.status.value}: the browser's request reached the server and was answered,"
        " and the capture neither recorded it nor said so"
    )


# -- F3: a close-delimited body cut by --max-size reaches the browser as a complete one ------


def test_f3_cut_close_delimited_body_is_not_shown_as_complete(tmp_path: Path) -> None:
    big = b"x" * 200_000
    page = """<!doctype html><title>cut</title><pre id=out></pre><script>
    fetch('/big').then(r => r.arrayBuffer()).then(b => out.textContent = 'COMPLETE ' + b.byteLength,
                                                  e => out.textContent = 'ERROR ' + e);</script>"""
    routes = {
        "/": html(page),
        "/big": fixed(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\n" + big),
    }
    with origin(routes) as site:
        _cap, recs, _ = capture(site.url("/"), tmp_path / "a", browser_timeout=4, max_size=60_000)
    (stored,) = responses(recs, site.url("/big"))
    assert stored.headers.get("WARC-Truncated") == "length"  # the WARC tells the truth
    dom = dom_of(recs)
    # ... but the browser was handed a clean end of body: it rendered/ran the cut resource as
    # whole (the screenshot, PDF, DOM and text are made from it) with nothing to show it
    assert "COMPLETE 60000" not in dom, "the browser took a body cut at --max-size for a whole one"


# -- F4: a script/meta navigation: what the reader saw is named after the seed ---------------


def test_f4_view_records_name_the_document_they_show(tmp_path: Path) -> None:
    routes = {
        "/js": html(
            "<!doctype html><title>js</title><p>SEED</p>"
            "<script>setTimeout(() => location.href = '/js-target', 100)</script>"
        ),
        "/js-target": html("<!doctype html><title>target</title><p>TARGET BODY</p>"),
    }
    with origin(routes) as site:
        cap, recs, _ = capture(site.url("/js"), tmp_path / "a", browser_timeout=4)
    (text,) = [r for r in recs if r.url.startswith("urn:text:")]
    (view,) = [r for r in recs if r.url.startswith("urn:view:")]
    assert text.block == b"TARGET BODY"  # the reader saw /js-target
    # yet every view record, and capture.final_url, say /js; WARC-Concurrent-To ties the
    # screenshot of /js-target to the response of /js
    assert view.url == f"urn:view:{site.url('/js-target')}" or cap.final_url == site.url(
        "/js-target"
    ), (
        view.url,
        cap.final_url,
    )


# -- F5: a non-ASCII URL in the rendered DOM is fetched again as mojibake --------------------


def test_f5_rendered_dom_urls_are_read_as_utf8(tmp_path: Path) -> None:
    routes = {
        "/": html(
            "<!doctype html><title>u</title><img src='/\u00fc.png'>"
        ),  # charset in the header only
        "*": fixed(_ok(b"image/png", b"\x89PNG\r\n\x1a\n" + bytes(16))),
    }
    with origin(routes) as site:
        capture(site.url("/"), tmp_path / "b", browser_timeout=3)
        browser_paths = [e.request.split(b" ")[1] for e in site.log]
        del site.log[:]
        http_mode(site.url("/"), tmp_path / "h")
        http_paths = [e.request.split(b" ")[1] for e in site.log]
    assert b"/%C3%BC.png" in browser_paths and b"/%C3%BC.png" in http_paths
    # %C3%83%C2%BC is UTF-8 'ü' read as windows-1252 and encoded again: a URL no page named
    assert b"/%C3%83%C2%BC.png" not in browser_paths, (browser_paths, http_paths)
