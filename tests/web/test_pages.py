"""Pages that are malformed, huge, deeply nested or in an unexpected encoding.

Each is served by a local server and captured whole: the page is stored byte for byte,
the resources that can be found in it are captured, nothing crashes, and a limit that
was reached is said, never silent.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable

import pytest

from archiver.capture.run import PARSE_LIMIT, Capturer
from archiver.core.model import Capture, CaptureStatus
from tests.support.rawserver import ok, raw_server, site
from tests.support.warcs import read_all, responses_by_url

PNG = b"\x89PNG\r\n\x1a\n small image"


def capture_of(
    make_capturer: Callable[..., Capturer], page: bytes, kind: bytes = b"text/html", **more: bytes
) -> tuple[str, Capture]:
    routes: dict[bytes, bytes | Callable[..., None]] = {b"/": ok(page, kind)}
    for path in ("/a.png", "/b.png", "/c.png", "/end.png"):
        routes[path.encode()] = ok(PNG, b"image/png")
    for path, answer in more.items():
        routes[path.encode()] = answer
    with raw_server(site(routes)) as base:
        capture = make_capturer().capture(base + "/")
    return base, capture


def stored_page(base: str, capture: Capture) -> bytes:
    return responses_by_url(read_all(capture.warc_files))[base + "/"].payload


MALFORMED = [
    b"<html><head><title>t</title><body><img src='/a.png'><div><p><b><i></div></b>"
    b"<img src=/b.png alt=\"never closed\n<img src='/c.png'>",
    b"\x00\x01\x02<img src='/a.png'>\x00<\x00img src='/b.png'>\xff\xfe\xfd<img src=/c.png>",
    b"<!-- never closed comment <img src='/b.png'> <img src='/a.png'>",
    b"<html><<<>>><img/src='/a.png'/><img src='/b.png' src='/c.png'><script><!--</script>",
    b"<svg><foreignObject><img src='/a.png'><math><mi><img src='/b.png'></svg>",
    b"<table><tr><img src='/a.png'><td></tr></table></table></table><img src='/b.png'>",
    b"<!DOCTYPE html SYSTEM '\x00'><base href='javascript:alert(1)'><img src='/a.png'>",
    b"",
]


@pytest.mark.parametrize("page", MALFORMED, ids=range(len(MALFORMED)))
def test_malformed_html_is_stored_as_served_and_parsed_as_browsers_would(
    make_capturer: Callable[..., Capturer], page: bytes
) -> None:
    base, capture = capture_of(make_capturer, page)
    assert capture.status is CaptureStatus.COMPLETE, capture.failure or capture.errors
    assert stored_page(base, capture) == page
    fetched = {r.url for r in capture.records if r.warc_type == "response"}
    if b"/a.png" in page and b"<!--" not in page[: page.find(b"/a.png")]:
        assert base + "/a.png" in fetched


def test_deeply_nested_html_is_captured(make_capturer: Callable[..., Capturer]) -> None:
    depth = 200_000
    page = (
        b"<html><title>deep</title><img src='/a.png'>"
        + b"<div><span>" * depth
        + b"<img src='/b.png'>"
        + b"</span></div>" * depth
        + b"<table>" * 20_000
        + b"<img src='/c.png'>"
    )
    started = time.monotonic()
    base, capture = capture_of(make_capturer, page)
    assert time.monotonic() - started < 20  # quadratic in the depth, it took minutes
    assert capture.status is CaptureStatus.COMPLETE, capture.failure or capture.errors
    assert capture.title == "deep"
    assert stored_page(base, capture) == page
    fetched = {r.url for r in capture.records if r.warc_type == "response"}
    assert {base + "/a.png", base + "/b.png", base + "/c.png"} <= fetched


def test_deeply_nested_json_ld_and_css_are_not_a_crash(
    make_capturer: Callable[..., Capturer],
) -> None:
    nested = b"[" * 100_000 + b"]" * 100_000
    css = b"a{b:url(/b.png)}" + b"@media screen{" * 50_000 + b"x{y:url(/c.png)}" + b"}" * 50_000
    page = (
        b"<html><title>ld</title><script type='application/ld+json'>"
        + nested
        + b"</script><link rel=stylesheet href='/s.css'><img src='/a.png'></html>"
    )
    base, capture = capture_of(make_capturer, page, **{"/s.css": ok(css, b"text/css")})
    assert capture.status is CaptureStatus.COMPLETE, capture.failure or capture.errors
    fetched = {r.url for r in capture.records if r.warc_type == "response"}
    assert {base + "/a.png", base + "/s.css", base + "/b.png"} <= fetched


def test_a_page_larger_than_the_parse_limit_is_stored_whole_and_the_limit_said(
    make_capturer: Callable[..., Capturer],
) -> None:
    filler = b"<p>" + b"x" * 1022 + b"</p>"
    page = (
        b"<html><title>huge</title><img src='/a.png'>"
        + filler * (PARSE_LIMIT // len(filler) + 4096)
        + b"<img src='/end.png'></html>"
    )
    assert len(page) > PARSE_LIMIT + 4 * 1024 * 1024
    base, capture = capture_of(make_capturer, page)
    assert capture.status is CaptureStatus.COMPLETE, capture.failure or capture.errors
    stored = stored_page(base, capture)
    assert hashlib.sha256(stored).digest() == hashlib.sha256(page).digest()
    fetched = {r.url for r in capture.records if r.warc_type == "response"}
    assert base + "/a.png" in fetched
    assert base + "/end.png" not in fetched  # beyond what is parsed ...
    (said,) = [n for n in capture.not_followed if n["url"] == base + "/"]
    assert "only the first 16 MiB" in said["reason"]  # ... and that is said


def html(title: str, codec: str) -> bytes:
    return f"<html><title>{title}</title><img src='/a.png'></html>".encode(codec)


ENCODINGS = [
    # (bytes served, Content-Type, the title archiver must read; None: anything readable)
    (html("Новости", "cp1251"), b"text/html; charset=windows-1251", "Новости"),
    (html("ニュース", "shift_jis"), b"text/html; charset=Shift_JIS", "ニュース"),
    (html("Навіны", "koi8-u"), b"text/html; charset=koi8-u", "Навіны"),
    (html("Новости", "utf-16-le"), b"text/html; charset=utf-16le", "Новости"),
    (html("Новости", "cp1251"), b"text/html; charset=x-no-such-charset", None),
    (html("ok", "ascii").replace(b"ok", b"ok\xff\xfe\xc0"), b"text/html; charset=utf-8", None),
    (b"\xef\xbb\xbf" + html("Новости", "utf-8"), b"text/html; charset=iso-8859-1", "Новости"),
]


@pytest.mark.parametrize(("page", "kind", "expected"), ENCODINGS, ids=range(len(ENCODINGS)))
def test_pages_in_unexpected_encodings(
    make_capturer: Callable[..., Capturer], page: bytes, kind: bytes, expected: str | None
) -> None:
    base, capture = capture_of(make_capturer, page, kind)
    assert capture.status is CaptureStatus.COMPLETE, capture.failure or capture.errors
    assert stored_page(base, capture) == page  # the bytes as served, never re-encoded
    if expected is not None:
        assert capture.title == expected
    else:
        assert capture.title  # something readable, not a crash
    assert base + "/a.png" in {r.url for r in capture.records if r.warc_type == "response"}


def test_a_page_that_never_stops_is_cut_by_the_size_limit(
    make_capturer: Callable[..., Capturer],
) -> None:
    stop = threading.Event()

    def endless(conn: object) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\n<img src='/a.png'>")  # type: ignore[attr-defined]
        while not stop.is_set():
            conn.sendall(b"<div>" * 4096)  # type: ignore[attr-defined]

    routes: dict[bytes, bytes | Callable[..., None]] = {
        b"/": endless,
        b"/a.png": ok(PNG, b"image/png"),
    }
    with raw_server(site(routes)) as base:
        capture = make_capturer(max_size=3 * 1024 * 1024).capture(base + "/")
        stop.set()
    page = responses_by_url(read_all(capture.warc_files))[base + "/"]
    assert page.get("WARC-Truncated") == "length"
    assert capture.status is not CaptureStatus.FAILED
    assert base + "/a.png" in {r.url for r in capture.records if r.warc_type == "response"}
