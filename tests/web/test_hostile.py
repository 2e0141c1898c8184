"""Servers that misbehave: the capture records what it can and never falls over."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from archiver.capture.run import Capturer
from archiver.core.model import CaptureStatus
from archiver.warc.writer import WarcSeries
from archiver.web.http import FetchSettings, build_request, open_exchange
from tests.support.rawserver import ok, raw_server, site
from tests.support.runner import command, run
from tests.support.warcs import read_all, read_warc, responses_by_url


def test_a_broken_status_line_on_a_requisite_is_that_requisite_s_error(
    make_capturer: Callable[..., Capturer],
) -> None:
    page = b'<img src="/bad.png"><img src="/good.png">'
    routes = {
        b"/": ok(page),
        b"/bad.png": "HTTP/1.1 2² OK\r\nContent-Length: 1\r\n\r\nx".encode(),
        b"/good.png": ok(b"png", b"image/png"),
    }
    with raw_server(site(routes)) as base:
        capture = make_capturer().capture(base + "/")
    assert capture.status is CaptureStatus.PARTIAL
    assert [(e.url, "not an HTTP response" in e.reason) for e in capture.errors] == [
        (base + "/bad.png", True)
    ]
    assert base + "/good.png" in responses_by_url(read_all(capture.warc_files))


def test_a_negative_chunk_size_ends_the_body_instead_of_looping() -> None:
    data = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n-5\r\nxx\r\n"
    with raw_server(lambda conn, req: (conn.sendall(data), time.sleep(3))) as base:
        start = time.monotonic()
        response = open_exchange(build_request(base + "/", []), FetchSettings(timeout=5))
        body = response.read_all()
        assert time.monotonic() - start < 2
    assert body.startswith(b"5\r\nhello\r\n")
    assert response.truncated == "disconnect"
    assert response.error is not None and "invalid chunk size" in response.error


def test_a_utf8_location_is_followed_as_utf8(make_capturer: Callable[..., Capturer]) -> None:
    routes = {
        b"/": "HTTP/1.1 301 Moved\r\nLocation: /статья\r\nContent-Length: 0\r\n\r\n".encode(),
        b"/%D1%81%D1%82%D0%B0%D1%82%D1%8C%D1%8F": ok(b"<title>ok</title>"),
    }
    with raw_server(site(routes)) as base:
        capture = make_capturer().capture(base + "/")
    assert capture.status is CaptureStatus.COMPLETE
    assert capture.final_url == base + "/%D1%81%D1%82%D0%B0%D1%82%D1%8C%D1%8F"
    assert capture.title == "ok"


def test_a_redirect_to_a_broken_url_is_an_error_not_a_crash(
    make_capturer: Callable[..., Capturer],
) -> None:
    routes = {
        b"/": ok(b'<img src="/r.png">'),
        b"/r.png": b"HTTP/1.1 302 Found\r\nLocation: http://[::1\r\nContent-Length: 0\r\n\r\n",
    }
    with raw_server(site(routes)) as base:
        capture = make_capturer().capture(base + "/")
    assert capture.status is CaptureStatus.PARTIAL
    assert capture.errors[0].url == base + "/r.png"
    assert "redirect not followed" in capture.errors[0].reason


def test_max_size_reached_exactly_before_a_pause_is_a_length_cut() -> None:
    body = b"a" * (1024 * 1024)

    def serve(conn: socket.socket, request: bytes) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (2 * len(body)) + body)
        time.sleep(3)

    with raw_server(serve) as base:
        response = open_exchange(build_request(base + "/", []), FetchSettings(timeout=1))
        got = response.read_all(max_size=len(body))
    assert got == body
    assert response.truncated == "length" and response.error is None


def test_a_meta_refresh_page_is_followed_and_parsed(
    make_capturer: Callable[..., Capturer],
) -> None:
    routes = {
        b"/": ok(b'<meta http-equiv="refresh" content="0; url=/real">'),
        b"/real": ok(b'<title>Real</title><video src="/v.mp4"></video>'),
        b"/v.mp4": ok(b"video", b"video/mp4"),
    }
    with raw_server(site(routes)) as base:
        capture = make_capturer().capture(base + "/")
    assert capture.status is CaptureStatus.COMPLETE
    assert [v.url for v in capture.videos] == [base + "/v.mp4"]
    assert capture.title == "Real"


def test_a_slow_large_video_does_not_hold_up_small_requisites(
    make_capturer: Callable[..., Capturer],
) -> None:
    images = [f"/i{n}.png".encode() for n in range(8)]
    page = b'<video src="/slow.mp4"></video>' + b"".join(b'<img src="%s">' % i for i in images)
    served_at: dict[bytes, float] = {}
    start = time.monotonic()

    def slow(conn: socket.socket) -> None:
        conn.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Type: video/mp4\r\nContent-Length: 3000000\r\n\r\n"
        )
        for n in range(30):
            if n == 29:
                served_at[b"/slow.mp4"] = time.monotonic() - start
            conn.sendall(b"v" * 100_000)
            time.sleep(0.1)

    def image(name: bytes) -> Callable[[socket.socket], None]:
        def send(conn: socket.socket) -> None:
            time.sleep(0.05)
            conn.sendall(ok(b"png" + name, b"image/png"))
            served_at[name] = time.monotonic() - start

        return send

    routes: dict[bytes, bytes | Callable[[socket.socket], None]] = {b"/": ok(page)}
    routes[b"/slow.mp4"] = slow
    routes.update({name: image(name) for name in images})
    with raw_server(site(routes)) as base:
        capture = make_capturer(concurrency=2, timeout=5).capture(base + "/")
    assert capture.status is CaptureStatus.COMPLETE
    # every image was answered long before the video finished trickling in
    assert max(served_at[name] for name in images) < served_at[b"/slow.mp4"] - 1
    responses = responses_by_url(read_all(capture.warc_files))
    assert all(base + name.decode() in responses for name in images)
    assert len(responses[base + "/slow.mp4"].payload) == 3_000_000


def test_ctrl_c_while_a_requisite_trickles_stops_at_once(tmp_path: Path) -> None:
    def trickle(conn: socket.socket) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")
        for _ in range(100):
            conn.sendall(b"x")
            time.sleep(0.5)

    routes = {b"/": ok(b'<img src="/t.png">'), b"/t.png": trickle}
    with raw_server(site(routes)) as base:
        proc = subprocess.Popen(
            command("capture", base + "/", "--timeout", "20", "--archive-dir", str(tmp_path / "a")),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        time.sleep(2)
        proc.send_signal(signal.SIGINT)
        start = time.monotonic()
        proc.communicate(timeout=15)
        assert time.monotonic() - start < 3
    assert proc.returncode == 130


def test_no_file_of_a_capture_gets_its_final_name_before_the_capture_ends(
    tmp_path: Path,
) -> None:
    def info(name: str) -> tuple[list[tuple[str, str]], bytes]:
        fields = [
            ("WARC-Type", "warcinfo"),
            ("WARC-Record-ID", f"<urn:uuid:{name}>"),
            ("WARC-Date", "2020-08-12T10:00:00Z"),
            ("WARC-Filename", name),
            ("Content-Type", "application/warc-fields"),
        ]
        return fields, b"software: test\r\n"

    def response(n: int) -> list[tuple[str, str]]:
        return [
            ("WARC-Type", "response"),
            ("WARC-Record-ID", f"<urn:uuid:r{n}>"),
            ("WARC-Date", "2020-08-12T10:00:00Z"),
            ("WARC-Target-URI", f"http://example.org/{n}"),
            ("Content-Type", "application/http;msgtype=response"),
        ]

    series = WarcSeries(tmp_path, "cap", 4000, info)
    head = b"HTTP/1.1 200 OK\r\n\r\n"
    for n in range(6):
        series.current(3000).write_record(response(n), head + os.urandom(3000), payload_offset=19)
    assert len(series.files) > 2
    assert list(tmp_path.glob("*.warc.gz")) == []  # rotated files are sealed, not named
    stream = series.current(0).begin_record(response(99), head)
    stream.write(b"cut off by the interruption")
    kept = series.abandon()
    assert kept and all(p.name.endswith(".warc.gz.open") for p in kept)
    assert list(tmp_path.glob("*.warc.gz")) == []
    whole = [r for p in sorted(tmp_path.glob("*.open")) for r in read_warc(p)]
    assert [r.get("WARC-Record-ID") for r in whole if r.type == "response"] == [
        f"<urn:uuid:r{n}>" for n in range(6)
    ]


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("--timeout", "nan"),
        ("--timeout", "inf"),
        ("--timeout", "0"),
        ("--max-time", "-1"),
        ("--max-size", "inf"),
        ("--max-size", "1e400"),
        ("--warc-size", "10"),
        ("--collection", "abc\n"),
        ("--collection", ".hidden"),
    ],
)
def test_bad_option_values_are_one_line_usage_errors(
    tmp_path: Path, option: str, value: str
) -> None:
    result = run(
        "capture", "http://127.0.0.1:9/", option, value, "--archive-dir", str(tmp_path / "a"),
        timeout=None,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "a").exists()


def test_nothing_runs_after_the_capture_returns() -> None:
    """No fetch, read-ahead or hash thread outlives its capture."""
    assert not [t for t in threading.enumerate() if t.name.startswith(("fetch", "read-ahead"))]


FULL_DISK = r"""
import json, resource, signal, sys, threading
from pathlib import Path
from archiver.capture.run import Capturer
from archiver.core.model import CaptureOptions
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit fail with EFBIG
resource.setrlimit(resource.RLIMIT_FSIZE, (300 * 1024, 300 * 1024))
options = CaptureOptions(archive_dir=Path(sys.argv[2]), concurrency=1, allow_private=True)
capture = Capturer(options).capture(sys.argv[1])
left = [t.name for t in threading.enumerate() if t.name.startswith(("read-ahead", "fetch"))]
print(json.dumps({"status": capture.status.value, "failure": capture.failure,
                  "kept": [str(p) for p in capture.incomplete_files], "threads": left}))
"""


def test_a_full_disk_fails_the_capture_and_keeps_only_whole_pairs(tmp_path: Path) -> None:
    big = os.urandom(500 * 1024)
    routes = {
        b"/": ok(b'<img src="/a.png"><img src="/big.png">'),
        b"/a.png": ok(b"small image", b"image/png"),
        b"/big.png": ok(big, b"image/png"),
    }
    archive = tmp_path / "archives"
    with raw_server(site(routes)) as base:
        result = subprocess.run(
            [sys.executable, "-c", FULL_DISK, base + "/", str(archive)],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 0, result.stderr
    import json

    outcome = json.loads(result.stdout)
    assert outcome["status"] == "failed"
    assert "cannot write the archive" in outcome["failure"]
    assert outcome["threads"] == []
    assert list(archive.rglob("*.warc.gz")) == []  # nothing looks finished
    (kept,) = [Path(p) for p in outcome["kept"]]
    # whole gzip members only, up to the last byte, and warcio reads every record
    assert subprocess.run(["gzip", "-t", str(kept)]).returncode == 0
    records = read_warc(kept)
    requests = {r.get("WARC-Concurrent-To") for r in records if r.type == "request"}
    responses = {r.get("WARC-Record-ID") for r in records if r.type == "response"}
    assert requests == responses and responses  # every request kept has its response
    assert base + "/" in {r.url for r in records if r.type == "response"}


def test_a_stalled_tls_record_cannot_outlast_the_time_limit(tmp_path: Path) -> None:
    import ssl

    from tests.support.tls import self_signed

    cert, key = self_signed(tmp_path)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)

    def serve() -> None:
        while True:  # the first handshake, which checks the certificate, is refused
            conn, _ = listener.accept()
            try:
                tls = ctx.wrap_socket(conn, server_side=True)
                break
            except ssl.SSLError:
                conn.close()
        data = b""
        while b"\r\n\r\n" not in data:
            data += tls.recv(4096)
        tls.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n")
        os.write(tls.fileno(), b"\x17\x03\x03\x00\x40")  # a TLS record header, then silence
        time.sleep(8)
        tls.close()

    threading.Thread(target=serve, daemon=True).start()
    url = f"https://127.0.0.1:{listener.getsockname()[1]}/"
    settings = FetchSettings(timeout=6, max_time=1.0, insecure=True)
    start = time.monotonic()
    response = open_exchange(build_request(url, []), settings)
    response.read_all()
    assert time.monotonic() - start < 3
    assert response.truncated == "time"
    listener.close()


def test_a_latin1_location_is_percent_encoded_byte_for_byte(
    make_capturer: Callable[..., Capturer],
) -> None:
    routes = {
        b"/": b"HTTP/1.1 302 Found\r\nLocation: /caf\xe9\r\nContent-Length: 0\r\n\r\n",
        b"/caf%E9": ok(b"<title>latin-1</title>"),
    }
    with raw_server(site(routes)) as base:
        capture = make_capturer().capture(base + "/")
    assert capture.final_url == base + "/caf%E9"
    assert capture.status is CaptureStatus.COMPLETE


def test_small_records_wait_for_the_writer_once_the_backlog_is_full(
    make_capturer: Callable[..., Capturer], monkeypatch: pytest.MonkeyPatch
) -> None:
    import archiver.capture.recorder

    monkeypatch.setattr(archiver.capture.recorder, "BACKLOG_LIMIT", 1)
    images = [f"/i{n}.png".encode() for n in range(5)]
    page = b'<video src="/slow.mp4"></video>' + b"".join(b'<img src="%s">' % i for i in images)

    def slow(conn: socket.socket) -> None:
        conn.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Type: video/mp4\r\nContent-Length: 2000000\r\n\r\n"
        )
        for _ in range(10):
            conn.sendall(b"v" * 200_000)
            time.sleep(0.05)

    routes: dict[bytes, bytes | Callable[[socket.socket], None]] = {b"/": ok(page)}
    routes[b"/slow.mp4"] = slow
    routes.update({name: ok(b"png" + name, b"image/png") for name in images})
    with raw_server(site(routes)) as base:
        capture = make_capturer(concurrency=3).capture(base + "/")
    assert capture.status is CaptureStatus.COMPLETE
    responses = responses_by_url(read_all(capture.warc_files))
    assert all(base + name.decode() in responses for name in images)


# more hostile servers (issue 6) ----------------------------------------------------------
def redirect(to: bytes) -> bytes:
    return b"HTTP/1.1 302 Found\r\nLocation: " + to + b"\r\nContent-Length: 0\r\n\r\n"


def test_a_redirect_loop_stops_at_the_limit_and_is_recorded(
    make_capturer: Callable[..., Capturer],
) -> None:
    with raw_server(site({b"/a": redirect(b"/b"), b"/b": redirect(b"/a")})) as base:
        capture = make_capturer(max_redirects=5).capture(base + "/a")
    assert capture.status is CaptureStatus.FAILED and "redirect" in (capture.failure or "")
    hops = [r for r in capture.records if r.warc_type == "response"]
    assert len(hops) == 6 and all(r.role == "redirect" for r in hops)


def test_a_redirect_to_another_scheme_is_refused_and_named(
    make_capturer: Callable[..., Capturer],
) -> None:
    with raw_server(site({b"/": redirect(b"file:///etc/passwd")})) as base:
        capture = make_capturer().capture(base + "/")
    assert capture.status is CaptureStatus.FAILED
    assert "file:///etc/passwd" in (capture.failure or "")
    assert not any(r.url and r.url.startswith("file:") for r in capture.records)


def test_a_content_length_that_lies(make_capturer: Callable[..., Capturer]) -> None:
    short = (
        b"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nContent-Length: 5000\r\n\r\n" + b"x" * 10
    )
    longer = b"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nContent-Length: 4\r\n\r\n" + b"y" * 99
    page = b'<html><img src="/short.png"><img src="/long.png"></html>'
    routes = {b"/": ok(page), b"/short.png": short, b"/long.png": longer}
    with raw_server(site(routes)) as base:
        capture = make_capturer().capture(base + "/")
    rows = {r.url: r for r in capture.records if r.warc_type == "response"}
    cut = rows[base + "/short.png"]
    assert cut.truncated == "disconnect" and cut.payload_length == 10
    assert any(e.url == base + "/short.png" for e in capture.errors)
    assert rows[base + "/long.png"].payload_length == 4  # what was announced, no more
    assert capture.status is CaptureStatus.PARTIAL


def test_enormous_and_malformed_headers_are_errors_not_crashes(
    make_capturer: Callable[..., Capturer],
) -> None:
    huge = b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * (2 * 1024 * 1024) + b"\r\n\r\n"
    garbage = b"\x00\x01\x02 not http at all\r\n\r\n"
    page = b'<html><img src="/huge.png"><img src="/garbage.png"></html>'
    routes = {b"/": ok(page), b"/huge.png": huge, b"/garbage.png": garbage}
    with raw_server(site(routes)) as base:
        capture = make_capturer().capture(base + "/")
    assert capture.status is CaptureStatus.PARTIAL
    assert {e.url for e in capture.errors} == {base + "/huge.png", base + "/garbage.png"}


def test_a_gzip_bomb_is_stored_raw_and_parsed_within_bounds(
    make_capturer: Callable[..., Capturer],
) -> None:
    import gzip

    bomb = gzip.compress(b"<html>" + b" " * (200 * 1024 * 1024) + b"</html>", 9)
    answer = (
        b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Encoding: gzip\r\n"
        b"Content-Length: %d\r\n\r\n" % len(bomb) + bomb
    )
    with raw_server(site({b"/": answer})) as base:
        capture = make_capturer().capture(base + "/")
    assert capture.status is CaptureStatus.COMPLETE
    (page,) = [r for r in capture.records if r.warc_type == "response"]
    assert page.payload_length == len(bomb)  # the bytes as served, not inflated


def test_a_connection_reset_mid_body(make_capturer: Callable[..., Capturer]) -> None:
    def reset(conn: socket.socket) -> None:
        conn.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Type: video/mp4\r\nContent-Length: 900000\r\n\r\n"
        )
        conn.sendall(b"v" * 100_000)
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        conn.close()

    page = b'<html><video src="/v.mp4"></video></html>'
    with raw_server(site({b"/": ok(page), b"/v.mp4": reset})) as base:
        capture = make_capturer().capture(base + "/")
    rows = {r.url: r for r in capture.records if r.warc_type == "response"}
    assert rows[base + "/v.mp4"].truncated == "disconnect"
    assert capture.status is CaptureStatus.PARTIAL and capture.errors
