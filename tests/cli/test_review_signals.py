"""Adversarial review of SIGTERM (issue 15, point 11): a signal while a capture is published,
signed and indexed. Real processes, real signals, a real local web server."""

from __future__ import annotations

import functools
import json
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.support.rawserver import raw_server
from tests.support.runner import command, run

IMAGES = 300  # records enough that signing and indexing take a few tens of milliseconds


class Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def page(tmp_path: Path) -> Iterator[str]:
    root = tmp_path / "site"
    root.mkdir()
    imgs = "".join(f'<img src="i{i}.png">' for i in range(IMAGES))
    (root / "index.html").write_text(f"<html><title>t</title>{imgs}</html>", "utf-8")
    for i in range(IMAGES):
        (root / f"i{i}.png").write_bytes(b"\x89PNG" + i.to_bytes(4, "big"))
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=root))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def slow_video(conn: socket.socket, request: bytes) -> None:
    """A page whose video takes 30 s to send: a capture not stopped runs it out."""
    if request.split(b" ", 2)[1] == b"/v.mp4":
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: video/mp4\r\n")
        conn.sendall(b"Content-Length: 100000000\r\n\r\n")
        for _ in range(600):
            conn.sendall(b"v" * 8192)
            time.sleep(0.05)
        return
    body = b'<html><title>t</title><video src="/v.mp4"></video></html>'
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body)


def published(warcs: Path) -> bool:
    try:
        return any(e.name.endswith(".warc.gz") for e in os.scandir(warcs))
    except FileNotFoundError:
        return False


def test_sigterm_as_the_warc_is_published_leaves_it_signed_and_indexed(
    page: str, tmp_path: Path
) -> None:
    archive = tmp_path / "archives"
    warcs = archive / "warc" / "default"
    proc = subprocess.Popen(
        command("capture", page, "--archive-dir", str(archive), "--format", "json",
                installed=True),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while not published(warcs) and proc.poll() is None and time.monotonic() < deadline:
        pass  # no sleep: the signal must come within the commit's few milliseconds
    assert proc.poll() is None, "the capture ended before its WARC was seen published"
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 143, err
    assert "terminated (SIGTERM)" in err and "Traceback" not in err
    (capture,) = [json.loads(line) for line in out.splitlines()]
    assert capture["interrupted"] and capture["status"] == "complete", capture
    assert capture["index_error"] is None, capture
    assert not list(archive.rglob("*.open"))
    assert list(warcs.glob("*.manifest.json.sig"))  # the published WARC is signed
    verified = run("verify", "--archive-dir", str(archive), timeout=None, installed=True)
    assert verified.returncode == 0, verified.stdout + verified.stderr


@pytest.mark.parametrize("then", [signal.SIGTERM, signal.SIGINT])
def test_sigterm_twice_stops_as_once(tmp_path: Path, then: signal.Signals) -> None:
    """A second SIGTERM (a service manager, an impatient `kill`) while the first is being
    acted on: still every capture reported interrupted, 143, no traceback."""
    with raw_server(slow_video) as base:
        archive = tmp_path / "archives"
        urls = [f"{base}/", f"{base.replace('127.0.0.1', 'localhost')}/"]
        proc = subprocess.Popen(
            command("capture", *urls, "--jobs", "2", "--archive-dir", str(archive),
                    "--format", "json", installed=True),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        deadline = time.monotonic() + 20
        while len(list(archive.rglob("*.open"))) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)  # the videos are streaming now
        proc.send_signal(signal.SIGTERM)
        for _ in range(5):
            time.sleep(0.01)
            proc.send_signal(then)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 143, err
    assert "terminated (SIGTERM)" in err and "Traceback" not in err, err
    captures = [c for c in map(json.loads, out.splitlines()) if "batch" not in c]
    assert len(captures) == 2 and all(c["interrupted"] for c in captures), out
    assert not list(archive.rglob("*.warc.gz"))
    assert len(list(archive.rglob("*.warc.gz.open"))) == 2
