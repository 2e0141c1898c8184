"""A capture killed mid-video: what came before verifies, the rest is incomplete, cleanup.

Real processes and real signals: ``archiver capture`` runs as a child process against a
local server that trickles a large video, and is killed with SIGKILL in the middle.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest

from archiver.ops.cleanup import CaptureRunning, capture_lock, cleanup
from tests.support import runner
from tests.support.paths import ROOT, TESTS
from tests.support.rawserver import raw_server

PAGE = b'<html><title>t</title><img src="/i.png"><video src="/v.mp4"></video></html>'


def serve(conn: socket.socket, request: bytes) -> None:
    path = request.split(b" ", 2)[1]
    if path == b"/v.mp4":  # 100 MB announced, sent slowly: plenty of time to kill
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: video/mp4\r\n")
        conn.sendall(b"Content-Length: 100000000\r\n\r\n")
        for _ in range(1500):
            conn.sendall(b"v" * 65536)
            time.sleep(0.02)
        return
    body = {b"/": PAGE, b"/small": b"<html><title>small</title></html>"}.get(path, b"\x89PNG")
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body)


run = partial(runner.run, installed=True)  # the entry point pip installed


@pytest.fixture
def base() -> Iterator[str]:
    with raw_server(serve) as url:
        yield url


def test_killed_in_the_middle_of_a_video(base: str, tmp_path: Path) -> None:
    archive = tmp_path / "archives"
    first = run("capture", base + "/small", "--archive-dir", str(archive))
    assert first.returncode == 0, first.stderr
    proc = subprocess.Popen(
        runner.command("capture", base + "/", "--archive-dir", str(archive), installed=True),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        opened = list(archive.rglob("*.open"))
        if opened and opened[0].stat().st_size > 2_000_000:
            break
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    # the capture before is intact; the killed one is incomplete, not valid, not tampered
    out = run("verify", "--archive-dir", str(archive), "--format", "json")
    assert out.returncode == 1
    doc = json.loads(out.stdout)
    verdicts = {c["capture_id"]: c for c in doc["captures"]}
    assert sum(c["ok"] for c in verdicts.values()) == 1
    (killed,) = [c for c in verdicts.values() if not c["ok"]]
    assert killed["status"] == "incomplete"
    assert all("incomplete" in p["message"] for p in killed["problems"])
    assert not any("SHA-256 differs" in p["message"] for p in killed["problems"])
    # cleanup lists the leftovers, changes nothing; --apply puts them aside
    listed = run("cleanup", "--archive-dir", str(archive), "--format", "json")
    assert listed.returncode == 0
    leftovers = json.loads(listed.stdout)["leftovers"]
    assert any(x["path"].endswith(".open") and x["action"] == "move aside" for x in leftovers)
    assert list(archive.rglob("*.open"))
    applied = run("cleanup", "--apply", "--archive-dir", str(archive))
    assert applied.returncode == 0 and "done" in applied.stdout
    assert not list((archive / "warc").rglob("*.open"))
    kept = list((archive / "incomplete").rglob("*.open"))
    assert kept and kept[0].stat().st_size > 2_000_000  # nothing captured was lost
    assert run("verify", "--archive-dir", str(archive)).returncode == 0
    assert run("cleanup", "--archive-dir", str(archive)).stdout.startswith("nothing")
    # and the capture can be made again (the video cut short by --max-size this time)
    again = run("capture", base + "/", "--archive-dir", str(archive), "--max-size", "1M")
    assert again.returncode == 0, again.stderr
    assert run("verify", "--archive-dir", str(archive)).returncode == 0


def test_cleanup_waits_for_running_captures(tmp_path: Path) -> None:
    archive = tmp_path / "archives"
    archive.mkdir()
    with capture_lock(archive, exclusive=False), pytest.raises(CaptureRunning):
        cleanup(archive, apply=True)
    assert cleanup(archive, apply=False).leftovers == []


def test_a_capture_whose_signing_did_not_finish_is_put_aside(base: str, tmp_path: Path) -> None:
    archive = tmp_path / "archives"
    assert run("capture", base + "/small", "--archive-dir", str(archive)).returncode == 0
    (sig,) = archive.rglob("*.sig")
    sig.unlink()  # as if killed between the manifest and its signature
    assert run("verify", "--archive-dir", str(archive)).returncode == 1
    report = cleanup(archive, apply=True)
    assert {x.what for x in report.leftovers} == {"a capture whose signing did not finish"}
    assert not list((archive / "warc").rglob("*.warc.gz"))
    assert list((archive / "incomplete").rglob("*.warc.gz"))
    assert not list((archive / "index" / "captures").glob("*.parquet"))
    out = run("verify", "--archive-dir", str(archive))
    assert "nothing to verify" in out.stderr  # everything was put aside


def test_ctrl_c_stops_a_concurrent_batch(base: str, tmp_path: Path) -> None:
    archive = tmp_path / "archives"
    listing = tmp_path / "batch.txt"
    listing.write_text(f"{base}/\n{base.replace('127.0.0.1', 'localhost')}/\n", encoding="utf-8")
    proc = subprocess.Popen(
        runner.command("capture", "--input", str(listing), "--jobs", "2",
                       "--archive-dir", str(archive), "--format", "json", installed=True),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 20
    while len(list(archive.rglob("*.open"))) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    try:
        stdout, stderr = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:  # say where it hung (py-spy is not at hand)
        proc.kill()
        stdout, stderr = proc.communicate()
        raise AssertionError(f"no exit 60 s after Ctrl-C; stderr:\n{stderr}") from None
    assert proc.returncode == 130 and "Traceback" not in stderr
    *captures, summary = [json.loads(line) for line in stdout.splitlines()]
    assert len(captures) == 2 and all(c["interrupted"] for c in captures)
    assert not list(archive.rglob("*.warc.gz"))  # nothing looks finished
    assert len(list(archive.rglob("*.open"))) == 2  # what was received is kept
    assert summary["batch"]["counts"]["failed"] == 2


def test_two_processes_capturing_into_one_archive(base: str, tmp_path: Path) -> None:
    """Two `archiver capture` processes at once: both complete, verify and are indexed."""
    archive = tmp_path / "archives"
    command = runner.command(
        "capture", f"{base}/", "--archive-dir", str(archive),
        "--format", "json", "--max-size", "3M",  # about a second of video each, overlapping
        installed=True,
    )  # fmt: skip
    procs = [
        subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    results = [p.communicate(timeout=60) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [r[1] for r in results]
    ids = {json.loads(out)["capture_id"] for out, _ in results}
    assert len(ids) == 2
    assert run("verify", "--archive-dir", str(archive)).returncode == 0
    listed = run("query", "select capture_id from captures", "--archive-dir", str(archive),
                 "--format", "json")  # fmt: skip
    assert {row["capture_id"] for row in json.loads(listed.stdout)} == ids


def test_docs_reliability_names_only_tests_that_exist() -> None:
    """docs/reliability.md lists each case with its test: the names must stay true."""
    import re

    doc = (ROOT / "docs" / "reliability.md").read_text(encoding="utf-8")
    source = "".join(p.read_text(encoding="utf-8") for p in TESTS.rglob("test_*.py"))
    names = set(re.findall(r"::(test_[a-z0-9_]+)|`(test_[a-z0-9_]+)`", doc))
    found = {a or b for a, b in names}
    assert found and all(f"def {name}(" in source for name in found), sorted(found)
