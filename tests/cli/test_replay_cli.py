"""``archiver replay`` run as users run it: the URLs it prints open in a real headless
Chromium and show the article, its picture and its video; Ctrl-C, SIGTERM and even
SIGKILL of archiver leave no pywb process and no temporary files behind; a missing
extra, an unknown capture, a bad address and a busy port are said in one line."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from archiver.ops.replay import COLLECTION, EXTRA, NOT_VERIFIED, TEMP_PREFIX
from archiver.web.browser import Browser, LaunchSettings, Page
from tests.support.replay_site import (
    FIRST,
    HEADLINE,
    OTHER,
    SECOND,
    Captured,
    captured_archive,
    gone,
    shown,
    vanished,
)
from tests.support.runner import command, run

WAIT = 60.0  # pywb starts in about a second; CI machines are slower


@pytest.fixture(scope="module")
def replayable(tmp_path_factory: pytest.TempPathFactory) -> Captured:
    return captured_archive(tmp_path_factory.mktemp("replay-cli") / "archives")


@contextlib.contextmanager
def replaying(*args: str) -> Iterator[subprocess.Popen[str]]:
    """``archiver replay ARGS`` running (its output in pipes); killed at the end if it
    still runs."""
    proc = subprocess.Popen(
        command("replay", *args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=30)


def lines(proc: subprocess.Popen[str], count: int) -> list[str]:
    """The first ``count`` lines of its stdout (it prints them once pywb answers), read
    from the pipe itself (a buffered reader would hide lines from select)."""
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    said = b""
    deadline = time.monotonic() + WAIT
    while said.count(b"\n") < count:
        left = deadline - time.monotonic()
        assert select.select([fd], [], [], max(left, 0))[0], f"no URL within {WAIT} s: {said!r}"
        chunk = os.read(fd, 65536)
        assert chunk, f"archiver exited ({proc.wait()}): {proc.stderr and proc.stderr.read()}"
        said += chunk
    return said.decode("utf-8").splitlines()[:count]


def pywb_of(pid: int) -> tuple[int, Path]:
    """The pywb process archiver ``pid`` started, and its temporary directory."""
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry.name}/stat").read_bytes()
            argv = Path(f"/proc/{entry.name}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        parent = int(stat[stat.rfind(b")") + 2 :].split()[1])
        if parent == pid and len(argv) > 5 and argv[5] == TEMP_PREFIX.encode():
            return int(entry.name), Path(os.fsdecode(argv[4]))
    raise AssertionError(f"no pywb process started by {pid}")


def fetch(url: str) -> tuple[int, bytes]:
    """GET ``url`` (on loopback) straight, with no proxy from the environment."""
    rest = url.removeprefix("http://")
    hostport, _, path = rest.partition("/")
    host, _, port = hostport.rpartition(":")
    conn = http.client.HTTPConnection(host.strip("[]"), int(port), timeout=30)
    try:
        conn.request("GET", "/" + path)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def test_the_urls_printed_open_the_article_in_chromium_and_ctrl_c_stops_pywb(
    replayable: Captured, chromium: str
) -> None:
    with replaying("--archive-dir", str(replayable.archive), "--port", "0") as proc:
        urls = lines(proc, 2)
        port = int(urls[0].split("/")[2].rpartition(":")[2])
        base = f"http://127.0.0.1:{port}"
        assert urls == [
            f"{base}/{FIRST}/20200812100000/{replayable.article_url}",
            f"{base}/{SECOND}/20200813100000/{replayable.other_url}",
        ]
        child, temp_dir = pywb_of(proc.pid)
        assert temp_dir.name.startswith(TEMP_PREFIX) and temp_dir.is_dir()
        with Browser(LaunchSettings(Path(chromium))) as browser, Page.open(browser) as page:
            state = shown(page, urls[0])
        assert state["image"] == 64 and state["videoWidth"] == 160, state
        assert isinstance(state["readyState"], int) and state["readyState"] >= 2, state
        assert HEADLINE in str(state["text"])
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 130
        assert proc.stderr is not None
        said = proc.stderr.read()
    assert "Ctrl-C stops it" in said and said.rstrip().endswith("interrupted"), said
    assert f"all of them in http://127.0.0.1:{port}/{COLLECTION}/" in said, said
    assert said.startswith(f"note: {NOT_VERIFIED}\n"), said
    assert "id_/" not in said  # the raw URLs reach the live web: never printed
    assert "Traceback" not in said and "gevent" not in said, said
    assert gone(child) and not temp_dir.exists()


def test_json_names_the_port_and_the_pages_of_the_capture_named_and_sigterm_stops_it(
    replayable: Captured,
) -> None:
    args = ("--archive-dir", str(replayable.archive), "--port", "0", "--format", "json")
    with replaying(*args, "--bind", "0.0.0.0", SECOND) as proc:
        (line,) = lines(proc, 1)
        doc = json.loads(line)
        child, temp_dir = pywb_of(proc.pid)
        assert doc["host"] == "0.0.0.0" and doc["port"] > 0 and doc["captures"] == [SECOND]
        assert doc["base_url"] == f"http://127.0.0.1:{doc['port']}"
        assert [(p["capture_id"], p["url"], p["timestamp"]) for p in doc["pages"]] == [
            (SECOND, replayable.other_url, "20200813100000")
        ]
        assert "live web" in doc["raw_url_note"] and doc["notice"] == NOT_VERIFIED
        status, body = fetch(doc["pages"][0]["raw_url"])
        assert status == 200 and body == OTHER.encode()
        status, body = fetch(doc["pages"][0]["replay_url"])
        assert status == 200 and b"wb_frame.js" in body  # pywb's frame, its banner
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 143
        assert proc.stderr is not None
        said = proc.stderr.read()
    warning = "warning: listening on 0.0.0.0, not loopback: whoever can reach this machine"
    assert f"{warning} on port {doc['port']} can read the archive" in said, said
    assert said.rstrip().endswith("terminated (SIGTERM)"), said
    assert gone(child) and not temp_dir.exists()


def test_archiver_killed_leaves_no_pywb_and_no_files_behind(replayable: Captured) -> None:
    with replaying("--archive-dir", str(replayable.archive), "--port", "0", FIRST) as proc:
        (url,) = lines(proc, 1)
        child, temp_dir = pywb_of(proc.pid)
        assert fetch(url)[0] == 200
        proc.kill()  # SIGKILL: archiver cleans nothing up itself
        proc.wait(timeout=10)
        assert gone(child), "pywb outlived archiver"
        assert vanished(temp_dir)


def test_a_read_only_copy_replays(
    replayable: Captured, tmp_path: Path, read_only: Callable[[Path], Path]
) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(replayable.archive, copy)
    mounted = read_only(copy)
    with replaying("--archive-dir", str(mounted), "--port", "0", FIRST) as proc:
        (url,) = lines(proc, 1)
        status, body = fetch(url.replace("/20200812100000/", "/20200812100000id_/"))
        assert status == 200 and HEADLINE.encode() in body
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 130
        assert proc.stderr is not None
        said = proc.stderr.read()
    assert "cannot be written" in said and "read as it is" in said, said


def test_without_pywb_the_extra_to_install_is_said(replayable: Captured) -> None:
    """An interpreter where pywb cannot be imported (``sys.modules['pywb'] = None`` is
    Python's own way to say a module is absent)."""
    script = (
        "import sys; sys.modules['pywb'] = None; sys.argv[0] = 'archiver'; "
        "from archiver.cli.app import main; main()"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, "replay", "--archive-dir", str(replayable.archive)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1 and EXTRA in done.stderr, done.stderr
    assert "replay needs pywb" in done.stderr


def test_bad_requests_exit_2_and_a_busy_port_exits_1(replayable: Captured) -> None:
    where = ("--archive-dir", str(replayable.archive))
    done = run("replay", *where, "20990101000000-ffffffffff")
    assert done.returncode == 2 and done.stdout == ""
    assert "no capture '20990101000000-ffffffffff'" in done.stderr
    assert done.stderr.count("\n") == 1, done.stderr
    done = run("replay", *where, "--bind", "example.org")
    assert done.returncode == 2 and "--bind" in done.stderr and "not an IP address" in done.stderr
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        done = run("replay", *where, "--port", str(port))
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr == (
        f"note: {NOT_VERIFIED}\n"
        f"error: port {port} on 127.0.0.1 is in use: choose another with --port "
        "(0: any free port)\n"
    )
