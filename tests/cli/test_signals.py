"""SIGTERM and Ctrl-C stop a capture at once, whichever thread the kernel hands them to.

Real processes and real signals.  A process-directed signal is delivered by the kernel to
any thread that does not block it; Python runs its handler only when the main thread next
runs Python code.  The tests aim the signal at a worker thread (``tgkill``), the case that
used to leave the main thread asleep until a capture ended by itself.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.rawserver import raw_server
from tests.support.runner import command

PAGE = b'<html><title>t</title><img src="/i.png"><video src="/v.mp4"></video></html>'
VIDEO_SECONDS = 30  # the video takes this long to send: a capture not stopped runs it out


def serve(conn: socket.socket, request: bytes) -> None:
    path = request.split(b" ", 2)[1]
    if path == b"/v.mp4":
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: video/mp4\r\n")
        conn.sendall(b"Content-Length: 100000000\r\n\r\n")
        for _ in range(VIDEO_SECONDS * 20):
            conn.sendall(b"v" * 8192)
            time.sleep(0.05)
        return
    body = PAGE if path == b"/" else b"\x89PNG"
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body)


@pytest.fixture
def base() -> Iterator[str]:
    with raw_server(serve) as url:
        yield url


def to_a_worker_thread(pid: int, signum: int) -> None:
    """Send ``signum`` to one thread of ``pid`` other than its main thread."""
    workers = [int(t) for t in os.listdir(f"/proc/{pid}/task") if int(t) != pid]
    assert workers, "the capture runs no worker thread"
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.tgkill(pid, workers[-1], signum) != 0:
        raise OSError(ctypes.get_errno(), "tgkill failed")


def start(archive: Path, *urls: str, jobs: int = 1) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        command("capture", *urls, "--jobs", str(jobs), "--archive-dir", str(archive),
                "--format", "json", installed=True),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 20
    while len(list(archive.rglob("*.open"))) < len(urls) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)  # the video is streaming now
    return proc


def stopped(proc: subprocess.Popen[str], signum: int) -> tuple[float, str, str]:
    sent = time.monotonic()
    to_a_worker_thread(proc.pid, signum)
    try:
        out, err = proc.communicate(timeout=VIDEO_SECONDS * 2)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise AssertionError(f"no exit after the signal; stderr:\n{err}") from None
    return time.monotonic() - sent, out, err


@pytest.mark.parametrize("jobs", [1, 2])
def test_sigterm_stops_captures_at_once_with_143(base: str, tmp_path: Path, jobs: int) -> None:
    archive = tmp_path / "archives"
    urls = [f"{base}/", f"{base.replace('127.0.0.1', 'localhost')}/"][:jobs]
    proc = start(archive, *urls, jobs=jobs)
    took, out, err = stopped(proc, signal.SIGTERM)
    assert took < 5, f"took {took:.1f} s to stop"
    assert proc.returncode == 143, err
    assert "terminated (SIGTERM)" in err and "Traceback" not in err
    captures = [c for c in map(json.loads, out.splitlines()) if "batch" not in c]
    assert len(captures) == jobs and all(c["interrupted"] for c in captures)
    assert not list(archive.rglob("*.warc.gz"))  # nothing looks finished
    assert len(list(archive.rglob("*.warc.gz.open"))) == jobs  # what was received is kept


def test_ctrl_c_sent_to_a_worker_thread_stops_a_batch_at_once(base: str, tmp_path: Path) -> None:
    archive = tmp_path / "archives"
    proc = start(archive, f"{base}/", f"{base.replace('127.0.0.1', 'localhost')}/", jobs=2)
    took, out, err = stopped(proc, signal.SIGINT)
    assert took < 5, f"took {took:.1f} s to stop"
    assert proc.returncode == 130 and "Traceback" not in err
    *captures, summary = [json.loads(line) for line in out.splitlines()]
    assert len(captures) == 2 and all(c["interrupted"] for c in captures)
    assert summary["batch"]["counts"]["failed"] == 2
