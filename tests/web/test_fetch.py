"""HTTP as servers really send it: framing, lies, interim heads, trickles.

Each case is a real TCP server on loopback that writes exact bytes.
"""

from __future__ import annotations

import hashlib
import socket
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from archiver.capture.run import Capturer
from archiver.core.model import CaptureStatus
from archiver.web.http import FetchError, FetchSettings, Response, build_request, open_exchange
from tests.support.rawserver import Handler, raw_server
from tests.support.warcs import read_all, responses_by_url


def fetch(url: str, **settings: float) -> Response:
    request = build_request(url, [("User-Agent", "test")])
    return open_exchange(request, FetchSettings(**settings))  # type: ignore[arg-type]


def sends(data: bytes, *, linger: float = 0.0) -> Handler:
    def handler(conn: socket.socket, request: bytes) -> None:
        conn.sendall(data)
        if linger:
            time.sleep(linger)

    return handler


def test_request_is_sent_as_recorded() -> None:
    got: list[bytes] = []

    def handler(conn: socket.socket, request: bytes) -> None:
        got.append(request)
        conn.sendall(b"HTTP/1.1 204 No Content\r\n\r\n")

    with raw_server(handler) as base:
        request = build_request(base + "/a b/ü?q=x y", [("User-Agent", "ua")])
        response = open_exchange(request, FetchSettings())
        assert response.read_all() == b""
    raw = got[0]
    assert raw == request.raw
    assert raw.startswith(b"GET /a%20b/%C3%BC?q=x%20y HTTP/1.1\r\nHost: 127.0.0.1:")
    assert raw.endswith(b"Connection: close\r\n\r\n")


def test_content_length_body_ends_without_waiting_for_close() -> None:
    body = b"x" * 5000
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n"
    with raw_server(sends(head + body, linger=5)) as base:
        start = time.monotonic()
        response = fetch(base + "/", timeout=3)
        assert response.read_all() == body
        assert time.monotonic() - start < 2
        assert response.truncated is None and response.head == head


def test_chunked_body_kept_raw_and_ends_at_the_last_chunk() -> None:
    raw = b"5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\nX-Trailer: 1\r\n\r\n"
    head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    with raw_server(sends(head + raw + b"GARBAGE AFTER", linger=5)) as base:
        start = time.monotonic()
        response = fetch(base + "/", timeout=3)
        assert response.read_all() == raw
        assert time.monotonic() - start < 2
        assert response.truncated is None


def test_content_length_that_lies_short_is_a_disconnect() -> None:
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n"
    with raw_server(sends(head + b"only this")) as base:
        response = fetch(base + "/")
        assert response.read_all() == b"only this"
        assert response.truncated == "disconnect"
        assert response.error is not None and "991 bytes early" in response.error


def test_content_length_that_lies_long_stops_at_the_declared_length() -> None:
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\n"
    with raw_server(sends(head + b"abcdEXTRA")) as base:
        response = fetch(base + "/")
        assert response.read_all() == b"abcd"
        assert response.truncated is None


def test_close_delimited_body() -> None:
    with raw_server(sends(b"HTTP/1.0 200 OK\r\n\r\nuntil close")) as base:
        response = fetch(base + "/")
        assert response.read_all() == b"until close"
        assert response.version == "HTTP/1.0"


def test_interim_heads_are_skipped() -> None:
    data = (
        b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n"
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    )
    with raw_server(sends(data)) as base:
        response = fetch(base + "/")
        assert response.status == 200
        assert response.head == b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n"
        assert response.read_all() == b"ok"


def test_bare_lf_head_is_accepted() -> None:
    with raw_server(sends(b"HTTP/1.1 200 OK\nContent-Length: 2\nX-A: b\n\nok")) as base:
        response = fetch(base + "/")
        assert response.header("x-a") == "b"
        assert response.read_all() == b"ok"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"SSH-2.0-OpenSSH\r\n\r\n", "not an HTTP response"),
        (b"", "closed the connection without answering"),
        (b"HTTP/1.1 200 OK\r\nX: " + b"a" * 300_000, "larger than"),
    ],
)
def test_broken_heads_are_fetch_errors(data: bytes, message: str) -> None:
    with raw_server(sends(data)) as base, pytest.raises(FetchError) as info:
        fetch(base + "/")
    assert message in info.value.reason


def test_max_size_cuts_a_chunked_body() -> None:
    raw = b"".join(b"400\r\n" + b"z" * 1024 + b"\r\n" for _ in range(10)) + b"0\r\n\r\n"
    head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    with raw_server(sends(head + raw)) as base:
        response = fetch(base + "/")
        body = response.read_all(max_size=3000)
        assert body == raw[:3000]
        assert response.truncated == "length"


def test_max_size_equal_to_the_body_is_not_truncation() -> None:
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n"
    with raw_server(sends(head + b"0123456789")) as base:
        response = fetch(base + "/")
        assert response.read_all(max_size=10) == b"0123456789"
        assert response.truncated is None


def test_trickling_body_is_cut_by_the_time_limit() -> None:
    def trickle(conn: socket.socket, request: bytes) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n")
        for _ in range(100):
            conn.sendall(b".")
            time.sleep(0.1)

    with raw_server(trickle) as base:
        start = time.monotonic()
        response = fetch(base + "/", timeout=5, max_time=1.0)
        body = response.read_all()
        assert time.monotonic() - start < 3
        assert 0 < len(body) < 100
        assert response.truncated == "time"


def test_reset_mid_body_is_a_disconnect() -> None:
    def reset(conn: socket.socket, request: bytes) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + b"a" * 1000)
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")

    with raw_server(reset) as base:
        response = fetch(base + "/")
        body = response.read_all()
        assert len(body) <= 1000
        assert response.truncated == "disconnect"


def test_concurrent_large_bodies_use_the_spool_and_stay_exact(
    tmp_path: Path, make_capturer: Callable[..., Capturer]
) -> None:
    """Two large videos arriving at once: one streams into the WARC, one waits in a spool."""
    videos = {f"/v{n}.mp4": hashlib.sha256(str(n).encode()).digest() * 100_000 for n in (1, 2)}
    page = b'<html><video src="/v1.mp4"></video><video src="/v2.mp4"></video></html>'

    served = {"/": page, **videos}

    def handler(conn: socket.socket, request: bytes) -> None:
        path = request.split(b" ", 2)[1].decode()
        body = served.get(path, b"")
        kind = b"text/html" if path == "/" else b"video/mp4"
        length = str(len(body)).encode()
        conn.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Type: "
            + kind
            + b"\r\nContent-Length: "
            + length
            + b"\r\n\r\n"
        )
        for start in range(0, len(body), 256 * 1024):
            conn.sendall(body[start : start + 256 * 1024])
            if path != "/":
                time.sleep(0.05)  # slow enough for the two to overlap

    with raw_server(handler) as base:
        capture = make_capturer(concurrency=2, timeout=5).capture(base + "/")
    assert capture.status is CaptureStatus.COMPLETE
    responses = responses_by_url(read_all(capture.warc_files))
    for path, body in videos.items():
        assert responses[base + path].payload == body
    assert (tmp_path / "archives" / ".tmp").is_dir()  # the spool was used
    assert list((tmp_path / "archives" / ".tmp").iterdir()) == []  # and cleaned up
