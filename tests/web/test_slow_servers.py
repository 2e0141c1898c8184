"""Servers that answer too slowly, and pages with very many requisites: every capture ends.

A response that trickles (a byte now and then, never idle long enough for the
timeout) is cut below a minimum transfer rate, stored truncated and reported; a page
with tens of thousands of images is fetched in time linear in their number.
"""

from __future__ import annotations

import gc
import json
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path

import pytest

from archiver.capture.run import Capturer
from archiver.core.model import CaptureStatus
from archiver.web.http import FetchError, FetchSettings, build_request, open_exchange
from tests.support.rawserver import ok, raw_server, site
from tests.support.runner import run
from tests.support.warcs import read_all, responses_by_url


def trickle(every: float, length: int = 100_000, kind: bytes = b"image/png") -> Callable:
    """A response that sends its head, then one byte every ``every`` seconds."""

    def send(conn: socket.socket) -> None:
        conn.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Type: " + kind + b"\r\nContent-Length: %d\r\n\r\n" % length
        )
        for _ in range(length):
            conn.sendall(b"x")
            time.sleep(every)

    return send


def steady(rate: int, seconds: float, kind: bytes = b"video/mp4") -> tuple[Callable, int]:
    """A response of ``rate`` bytes per second for ``seconds``, in ten pieces a second."""
    piece = rate // 10
    count = int(seconds * 10)

    def send(conn: socket.socket) -> None:
        conn.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Type: "
            + kind
            + b"\r\nContent-Length: %d\r\n\r\n" % (piece * count)
        )
        for _ in range(count):
            conn.sendall(b"v" * piece)
            time.sleep(0.1)

    return send, piece * count


# --- point 8: a minimum transfer rate --------------------------------------------------


def test_a_trickling_body_is_cut_below_the_minimum_rate() -> None:
    with raw_server(lambda conn, req: trickle(0.2)(conn)) as base:
        settings = FetchSettings(timeout=5, min_rate=100, min_rate_window=1.0)
        start = time.monotonic()
        response = open_exchange(build_request(base + "/", []), settings)
        body = response.read_all()
        assert time.monotonic() - start < 3
    assert 1 <= len(body) < 20
    assert response.truncated == "time" and response.error is None
    assert response.slow is not None
    assert "bytes/s" in response.slow and "minimum rate of 100 bytes/s over 1 s" in response.slow


def test_a_trickling_head_is_a_fetch_error_naming_the_rate() -> None:
    def serve(conn: socket.socket, request: bytes) -> None:
        for byte in b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n":
            conn.sendall(bytes([byte]))
            time.sleep(0.2)

    with raw_server(serve) as base:
        settings = FetchSettings(timeout=5, min_rate=100, min_rate_window=1.0)
        start = time.monotonic()
        with pytest.raises(FetchError) as caught:
            open_exchange(build_request(base + "/", []), settings)
        assert time.monotonic() - start < 3
    assert "too slowly" in caught.value.reason and "bytes/s" in caught.value.reason


def test_a_server_slow_to_start_answering_is_waited_for_as_long_as_timeout_says() -> None:
    """The rate's first window starts with the first byte: until then ``--timeout`` alone
    governs the wait (a review found a raised --timeout cut short by the window)."""

    def serve(conn: socket.socket, request: bytes) -> None:
        time.sleep(3)
        conn.sendall(ok(b"x" * 100_000, b"image/png"))

    with raw_server(serve) as base:
        settings = FetchSettings(timeout=5, min_rate=1024, min_rate_window=2.0)
        response = open_exchange(build_request(base + "/", []), settings)
        body = response.read_all()
    assert len(body) == 100_000 and response.truncated is None and response.slow is None


def test_a_trickling_image_ends_the_capture_truncated_and_reported(
    make_capturer: Callable[..., Capturer],
) -> None:
    routes = {b"/": ok(b'<img src="/t.png"><img src="/ok.png">'), b"/t.png": trickle(0.3)}
    routes[b"/ok.png"] = ok(b"png", b"image/png")
    with raw_server(site(routes)) as base:
        start = time.monotonic()
        capture = make_capturer(min_rate=100, min_rate_window=1.5).capture(base + "/")
        assert time.monotonic() - start < 8
    assert capture.status is CaptureStatus.PARTIAL
    [error] = capture.errors
    assert error.url == base + "/t.png"
    assert "too slow" in error.reason and "bytes/s" in error.reason
    assert "WARC-Truncated: time" in error.reason
    # the record says so, and so does the index entry, as for a --max-time cut
    response = responses_by_url(read_all(capture.warc_files))[base + "/t.png"]
    assert response.get("WARC-Truncated") == "time"
    assert 1 <= len(response.payload) < 20
    [entry] = [r for r in capture.records if r.url == base + "/t.png" and r.warc_type == "response"]
    assert entry.truncated == "time"
    assert base + "/ok.png" in responses_by_url(read_all(capture.warc_files))


def test_a_slow_but_steady_video_is_not_cut(make_capturer: Callable[..., Capturer]) -> None:
    send, length = steady(20 * 1024, 3.0)  # 20 KiB/s, for three one-second windows
    routes = {b"/": ok(b'<video src="/v.mp4"></video>'), b"/v.mp4": send}
    with raw_server(site(routes)) as base:
        capture = make_capturer(min_rate_window=1.0).capture(base + "/")  # default min rate
    assert capture.status is CaptureStatus.COMPLETE, capture.errors
    response = responses_by_url(read_all(capture.warc_files))[base + "/v.mp4"]
    assert response.get("WARC-Truncated") is None
    assert len(response.payload) == length


def test_a_video_trickling_to_ytdlp_is_cut_too(make_capturer: Callable[..., Capturer]) -> None:
    routes = {
        b"/p": ok(b"<html><video src=/v.mp4></video></html>"),
        b"/v.mp4": trickle(0.2, kind=b"video/mp4"),
    }
    with raw_server(site(routes)) as base:
        where = base.split("//", 1)[1]
        start = time.monotonic()
        capture = make_capturer(platform_hosts=(where,), min_rate=100, min_rate_window=1.0).capture(
            base + "/p"
        )
        assert time.monotonic() - start < 20
    cut = [
        r
        for r in capture.records
        if r.role == "platform" and r.warc_type == "response" and r.url == base + "/v.mp4"
    ]
    assert cut and all(r.truncated == "time" for r in cut)  # yt-dlp's exchanges, recorded
    assert any("too slow" in e.reason and "bytes/s" in e.reason for e in capture.errors)


@pytest.mark.slow
def test_with_default_options_a_trickle_ends_the_capture_within_two_minutes(
    tmp_path: Path,
) -> None:
    # one byte every two seconds: never idle for the 30 s timeout, for 55 hours in all
    routes = {b"/": ok(b'<img src="/t.png">'), b"/t.png": trickle(2.0)}
    with raw_server(site(routes)) as base:
        start = time.monotonic()
        proc = run(
            "capture", base + "/", "--format", "json", "--archive-dir", str(tmp_path / "a"),
            timeout=130,
        )  # fmt: skip
        took = time.monotonic() - start
    assert took < 120, took
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["status"] == "partial"
    assert any(
        e["url"] == base + "/t.png" and "bytes/s" in e["reason"] for e in summary["errors"]
    ), summary["errors"]


# --- point 9: scheduling in time linear in the number of requisites ---------------------


def images_page(count: int) -> dict[bytes, bytes | Callable[[socket.socket], None]]:
    tags = b"".join(b'<img src="/i/%d.png">' % n for n in range(count))
    routes: dict[bytes, bytes | Callable[[socket.socket], None]] = {b"/": ok(tags)}
    for n in range(count):
        routes[b"/i/%d.png" % n] = ok(b"png %d" % n, b"image/png")
    return routes


class FutureCounter:
    """A progress display that counts, now and then, the futures alive in the process."""

    def __init__(self) -> None:
        self.calls = 0
        self.most = 0
        self.lock = threading.Lock()

    def started(self, url: str, role: str) -> None:
        with self.lock:
            self.calls += 1
            if self.calls % 100:
                return
            alive = sum(1 for o in gc.get_objects() if isinstance(o, Future))
            self.most = max(self.most, alive)

    def sized(self, url: str, total: int) -> None:
        pass

    def advanced(self, url: str, nbytes: int) -> None:
        pass

    def finished(self, url: str) -> None:
        pass


def test_a_page_of_many_images_keeps_a_bounded_number_of_fetches_pending(
    make_capturer: Callable[..., Capturer],
) -> None:
    count = 1500
    counter = FutureCounter()
    with raw_server(site(images_page(count))) as base:
        capturer = make_capturer(concurrency=4)
        capturer.progress = counter
        capture = capturer.capture(base + "/")
    assert capture.status is CaptureStatus.COMPLETE, capture.errors[:3]
    assert sum(1 for r in capture.records if r.warc_type == "response") == count + 1
    assert counter.calls == count + 1
    # a few per worker, never one per image (each waited on after every completion)
    assert 0 < counter.most <= 16, counter.most


@pytest.mark.slow
def test_five_times_the_images_take_about_five_times_as_long(
    make_capturer: Callable[..., Capturer], tmp_path: Path
) -> None:
    seconds = {}
    for count in (4000, 20000):
        with raw_server(site(images_page(count))) as base:
            start = time.monotonic()
            capture = make_capturer(archive_dir=tmp_path / str(count)).capture(base + "/")
            seconds[count] = time.monotonic() - start
        assert capture.status is CaptureStatus.COMPLETE, capture.errors[:3]
    assert seconds[20000] < 6.5 * seconds[4000], seconds
