#!/usr/bin/env python3
"""Browser capture benchmark: what recording costs a page's load, and memory with a big video.

Usage::

    python benchmarks/bench_browser.py [--runs 5] [--video-mb 200] [--keep] [--json FILE]

Two measurements, in one run, on real servers on 127.0.0.1 (ephemeral ports), each in
a process of its own:

1. **Load time.** The script-built page of ``tests/support/browser_site.py``
   (``ScriptSite``: two origins, a script that builds the page, a player, an HLS
   playlist, a cross-origin iframe, a lazy image) captured with ``archiver capture URL
   --browser`` (the CLI as a child process, as users run it), against the *same*
   Chromium loading the same page with nothing recorded: ``archiver.web.browser.Browser``
   launched with no proxy, ``Page.open``, ``navigate``, ``wait_quiet``, from this
   process.  The recorded load time is read from the capture's own metadata record
   (``browser.behaviours``: ``load`` is the ``navigate`` call, ``network quiet`` the
   ``wait_quiet`` after it), and the unrecorded one is timed the same way around the
   same calls, so like is compared with like.  The issue's target: recording adds at
   most 30 % to the page's load time.
2. **Memory with a big video.** A page whose ``<video preload=auto>`` is a
   ``--video-mb`` MiB file of deterministic bytes (served with ``Content-Length``,
   honouring ``Range``, which Chromium's media stack sends) captured with ``--browser``:
   the archiver process's peak RSS (its ``VmHWM``, polled) and Chromium's (the sum over
   its processes, polled), time and MB/s, and a check that the WARC holds the video
   whole in a 200 response that archiver fetched after the browser's range request.
   Target: archiver's process under 200 MB RSS.

Each is repeated ``--runs`` times (medians printed; peaks: the largest run too).  See
``benchmarks/README.md``.

Exit status: 0 when every run finished and every check held (even if a target is
missed: a benchmark reports, it does not gate), 1 when a run or a check failed
(``BENCHMARK INVALID``), 2 for bad arguments or no Chromium.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import platform
import random
import re
import shutil
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import IO, Any, ClassVar

SCRIPT = Path(__file__).resolve()
if str(SCRIPT.parent.parent) not in sys.path:
    sys.path.insert(0, str(SCRIPT.parent.parent))  # `tests.support` and a source-tree `archiver`

from bench_capture import (  # noqa: E402 (after the path is set)
    MIB,
    PROJECT_ROOT,
    SERVER_START_TIMEOUT,
    BenchError,
    find_archiver,
    in_work_dir,
    last_json_line,
)

TARGET_LOAD_OVERHEAD = 0.30  # recorded load time at most 1.3x the unrecorded one
TARGET_RSS_MB = 200.0  # archiver's own process, with a big video
QUIET_WINDOW = 0.5  # Page.wait_quiet's default quiet_ms, which the capture uses
BROWSER_TIMEOUT = 60.0  # archiver's --browser-timeout default: navigate and wait_quiet
CAPTURE_TIMEOUT = 600.0  # a capture that takes longer is a failure of the run
HWM_POLL = 0.02  # seconds between reads of archiver's VmHWM
TREE_POLL = 0.1  # seconds between walks of /proc for Chromium's processes
VIDEO_PATH = "/big.webm"
VIDEO_PAGE = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>big video</title></head>
<body><h1>A big video</h1>
<video src="{VIDEO_PATH}" preload="auto" muted controls></video>
</body></html>
"""
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


def child_env(work: Path) -> dict[str, str]:
    """Keys and configuration of the benchmark's own, never the user's (as in
    ``bench_many_requisites.py``)."""
    env = dict(os.environ)
    env.pop("ARCHIVER_CONFIG", None)
    env.pop("ARCHIVER_KEY_PASSPHRASE", None)
    env["XDG_CONFIG_HOME"] = str(work / "config")
    env["ARCHIVER_KEY_STORE"] = str(work / "keys")
    return env


# --- child process 1: the script-built site ------------------------------------------


def internal_script_site() -> int:
    """Run ``ScriptSite`` (two servers) until stdin closes; print ``URL <article>``."""
    from tests.support.browser_site import ScriptSite

    with ScriptSite() as site:
        print(f"URL {site.url('/article')}", flush=True)
        sys.stdin.read()
    return 0


# --- child process 2: the video server ---------------------------------------------


class _VideoHandler(BaseHTTPRequestHandler):
    """GET/HEAD of the page and the video, ``Range`` honoured (one range, as players
    ask); every exchange is logged as a JSON line: who asked, which range, what went."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    video: ClassVar[Path]
    log_path: ClassVar[Path]
    log_lock: ClassVar[threading.Lock] = threading.Lock()

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._serve(body=True)

    def do_HEAD(self) -> None:
        self._serve(body=False)

    def _serve(self, body: bool) -> None:
        path = self.path.split("?", 1)[0]
        if path in ("/", "/video.html"):
            page = VIDEO_PAGE.encode()
            self._head(200, "text/html; charset=utf-8", len(page), [])
            if body:
                self.wfile.write(page)
            return
        if path != VIDEO_PATH:
            self._head(404, "text/plain", 0, [])
            return
        size = self.video.stat().st_size
        asked = self.headers.get("Range")
        span = _byte_range(asked, size)
        if span is None:
            self._head(416, "text/plain", 0, [("Content-Range", f"bytes */{size}")])
            return
        start, end, partial = span
        extra = [("Accept-Ranges", "bytes")]
        if partial:
            extra.append(("Content-Range", f"bytes {start}-{end}/{size}"))
        count = end - start + 1
        began = time.time()
        self._head(206 if partial else 200, "video/webm", count, extra)
        sent, error = 0, None
        if body:
            with self.video.open("rb") as fh:
                try:
                    while sent < count:
                        n = os.sendfile(
                            self.connection.fileno(), fh.fileno(), start + sent, count - sent
                        )
                        if n == 0:
                            break
                        sent += n
                except OSError as exc:  # the reader went away
                    error = exc.strerror or str(exc)
        self._log(
            {
                "path": path,
                "method": self.command,
                "range": asked,
                "status": 206 if partial else 200,
                "length": count,
                "sent": sent,
                "complete": sent == count,
                "error": error,
                "began": began,
                "ended": time.time(),
                "user_agent": self.headers.get("User-Agent", ""),
            }
        )
        if sent != count:
            self.close_connection = True

    def _head(self, status: int, kind: str, length: int, extra: list[tuple[str, str]]) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(length))
        for name, value in extra:
            self.send_header(name, value)
        self.end_headers()

    def _log(self, entry: dict[str, Any]) -> None:
        with self.log_lock, self.log_path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(entry) + "\n")


def _byte_range(asked: str | None, size: int) -> tuple[int, int, bool] | None:
    """(first, last, partial) for a ``Range`` field; None when unsatisfiable.  A field
    that is not one byte range is ignored (the whole body), as RFC 9110 allows."""
    if not asked or not asked.startswith("bytes=") or "," in asked:
        return 0, size - 1, False
    first, _, last = asked[6:].strip().partition("-")
    try:
        if not first:  # the last N bytes
            n = int(last)
            return (max(0, size - n), size - 1, True) if n > 0 else None
        start = int(first)
        end = min(int(last), size - 1) if last else size - 1
    except ValueError:
        return 0, size - 1, False
    return (start, end, True) if start <= end and start < size else None


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 64


def internal_serve(video: Path, log_path: Path) -> int:
    _VideoHandler.video = video
    _VideoHandler.log_path = log_path
    with _QuietServer(("127.0.0.1", 0), _VideoHandler) as server:
        print(f"PORT {server.server_address[1]}", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            server.serve_forever(poll_interval=0.5)
    return 0


@contextlib.contextmanager
def child_server(command: list[str], prefix: str) -> Iterator[str]:
    """Start a server child that prints ``<prefix> <value>``; yield the value; stop it
    (closing its stdin ends the script site; the video server is terminated)."""
    proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + SERVER_START_TIMEOUT
        line = ""
        while time.monotonic() < deadline and not line:
            line = proc.stdout.readline()
            if not line and proc.poll() is not None:
                break
        if not line.startswith(prefix + " "):
            raise BenchError(f"a benchmark server did not start (said {line!r})")
        yield line.split(" ", 1)[1].strip()
    finally:
        if proc.stdin is not None:
            with contextlib.suppress(OSError):
                proc.stdin.close()
        try:
            proc.wait(timeout=3)
        except subprocess.TimeoutExpired:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


# --- /proc: archiver's peak and Chromium's ---------------------------------------------


def _status_kb(pid: int, field_name: str) -> int | None:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith(field_name + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def _pss_kb(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/smaps_rollup", encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def _processes() -> dict[int, tuple[int, int, int]]:
    """pid -> (parent pid, session id, RSS KiB) of every process now."""
    out = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as fh:
                stat = fh.read()
        except OSError:
            continue
        # the command name is in parentheses and may hold spaces: split after it
        fields = stat[stat.rfind(b")") + 2 :].split()
        try:
            out[int(name)] = (int(fields[1]), int(fields[3]), int(fields[21]) * PAGE_SIZE // 1024)
        except (IndexError, ValueError):
            continue
    return out


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return fh.read().replace(b"\0", b" ").decode("utf-8", "replace")
    except OSError:
        return ""


class TreeWatch(threading.Thread):
    """Polls, while archiver runs: its own ``VmHWM`` (the kernel's peak RSS of that one
    process, so the last read before it exits is its peak, less what grew in the last
    ``HWM_POLL`` s), and the RSS and PSS summed over Chromium's processes (the
    descendants of archiver that are not its watchdog, anything else in the browser's
    session, and its crash handlers, which leave it): the largest sum seen.  RSS counts
    pages the processes share once per process; PSS shares them out, so its sum is what
    the browser really holds."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.stop = threading.Event()
        self.archiver_hwm_kb = 0
        self.archiver_rss_kb = 0  # the largest VmRSS seen (a check on VmHWM)
        self.chromium_rss_kb = 0
        self.chromium_pss_kb = 0
        self.chromium_processes = 0
        self.samples = 0
        self.sessions: set[int] = set()
        self.profiles: set[str] = set()  # the browser's --user-data-dir
        self.cmdlines: dict[int, str] = {}  # read once per process

    def run(self) -> None:
        next_tree = 0.0
        while not self.stop.is_set():
            hwm = _status_kb(self.pid, "VmHWM")
            if hwm is None:
                if not os.path.exists(f"/proc/{self.pid}"):
                    return
            else:
                self.archiver_hwm_kb = max(self.archiver_hwm_kb, hwm)
            rss = _status_kb(self.pid, "VmRSS")
            if rss is not None:
                self.archiver_rss_kb = max(self.archiver_rss_kb, rss)
            now = time.monotonic()
            if now >= next_tree:
                self._tree()
                next_tree = now + TREE_POLL
            self.stop.wait(HWM_POLL)

    def _tree(self) -> None:
        procs = _processes()
        children: dict[int, list[int]] = {}
        for pid, (ppid, _, _) in procs.items():
            children.setdefault(ppid, []).append(pid)
        own_session = procs[self.pid][1] if self.pid in procs else None
        chromium: set[int] = set()
        todo = list(children.get(self.pid, []))
        while todo:
            pid = todo.pop()
            command = self._cmdline(pid)
            if "archiver.web.browser.reaper" in command:
                continue  # the watchdog (and nothing below it)
            chromium.add(pid)
            self.profiles.update(re.findall(r"--user-data-dir=(\S+)", command))
            if procs[pid][1] != own_session:  # the browser's session (never ours)
                self.sessions.add(procs[pid][1])
            todo.extend(children.get(pid, []))
        # a browser process whose parent died is re-parented, but stays in the session
        chromium |= {p for p, (_, sid, _) in procs.items() if sid in self.sessions}
        # Chromium's crash handlers (started despite --disable-breakpad) leave its
        # session for init's care: they are known by the profile in their command line
        if self.profiles:
            for pid, (ppid, _, _) in procs.items():
                if ppid == 1 and pid not in chromium:
                    command = self._cmdline(pid)
                    if any(profile in command for profile in self.profiles):
                        chromium.add(pid)
        chromium.discard(self.pid)
        if not chromium:
            return
        self.samples += 1
        self.chromium_processes = max(self.chromium_processes, len(chromium))
        self.chromium_rss_kb = max(self.chromium_rss_kb, sum(procs[p][2] for p in chromium))
        pss = sum(_pss_kb(p) or 0 for p in chromium)
        self.chromium_pss_kb = max(self.chromium_pss_kb, pss)

    def _cmdline(self, pid: int) -> str:
        if pid not in self.cmdlines:
            self.cmdlines[pid] = _cmdline(pid)
        return self.cmdlines[pid]


# --- running archiver ------------------------------------------------------------------


@dataclass
class Finished:
    """One archiver command, run to its end."""

    seconds: float
    summary: dict[str, Any]
    stderr: str
    watch: TreeWatch | None
    began: float  # time.time() just before the process started
    ended: float  # time.time() once it had exited


def run_capture(
    archiver: list[str], url: str, scratch: Path, env: dict[str, str], watch: bool
) -> Finished:
    """``archiver capture URL --browser`` into a fresh archive under ``scratch``."""
    command = [
        *archiver,
        "capture",
        url,
        "--browser",
        "--allow-private",  # the servers are on 127.0.0.1
        "--archive-dir",
        str(scratch / "archive"),
        "--format",
        "json",
    ]
    out_path, err_path = scratch / "stdout.txt", scratch / "stderr.txt"
    with out_path.open("wb") as out, err_path.open("wb") as err:
        began = time.time()
        started = time.perf_counter()
        proc = subprocess.Popen(command, stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=env)
        watcher = TreeWatch(proc.pid) if watch else None
        if watcher is not None:
            watcher.start()
        try:
            code = proc.wait(timeout=CAPTURE_TIMEOUT)
        except subprocess.TimeoutExpired as exc:
            proc.kill()
            proc.wait()
            raise BenchError(
                f"archiver capture {url} took more than {CAPTURE_TIMEOUT:.0f} s"
            ) from exc
        finally:
            if watcher is not None:
                watcher.stop.set()
                watcher.join()
        seconds = time.perf_counter() - started
    stdout = out_path.read_text(encoding="utf-8", errors="replace")
    stderr = err_path.read_text(encoding="utf-8", errors="replace")
    if code != 0:
        raise BenchError(
            f"archiver capture {url} --browser failed (exit {code})\n"
            f"stdout: {stdout[-2000:]}\nstderr: {stderr[-2000:]}"
        )
    summary = last_json_line(stdout, "archiver capture --browser")
    if summary.get("status") != "complete":
        raise BenchError(
            f"archiver capture {url} --browser is {summary.get('status')!r}, not complete "
            f"(failure: {summary.get('failure')}, errors: {summary.get('errors')})"
        )
    return Finished(seconds, summary, stderr, watcher, began, began + seconds)


def capture_metadata(warcs: list[Path]) -> dict[str, Any]:
    """The capture's metadata record (``urn:archiver-metadata:``), read with warcio."""
    from warcio.archiveiterator import ArchiveIterator

    for path in warcs:
        with path.open("rb") as fh:
            for record in ArchiveIterator(fh):
                target = record.rec_headers.get_header("WARC-Target-URI") or ""
                if record.rec_type == "metadata" and target.startswith("urn:archiver-metadata:"):
                    value = json.loads(record.content_stream().read())
                    if isinstance(value, dict):
                        return value
    raise BenchError(f"no urn:archiver-metadata: record in {[str(p) for p in warcs]}")


def _epoch(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


# the phases of a browser capture's whole command, in order (see phases())
PHASES = (
    "interpreter start, imports, options",
    "browser launch, page open",
    "load + network quiet",
    "scroll, play media, network quiet again",
    "screenshots, PDF, DOM, text",
    "browser closed, records written, fetches after browsing",
    "WARC closed, metadata, signing, index, exit",
)


def phases(done: Finished, metadata: dict[str, Any]) -> dict[str, float]:
    """Where the whole command's time went, from the capture's own timestamps
    (``started_at``, each behaviour's ``started`` and ``seconds``, ``finished_at``) and
    the process's start and exit seen here (one clock: the same machine's)."""
    steps = (metadata.get("browser") or {}).get("behaviours") or []
    if not steps:
        raise BenchError("the capture's metadata has no browser behaviours")
    sums = dict.fromkeys(PHASES[2:5], 0.0)
    for step in steps:
        if step["name"] in ("load", "network quiet"):
            sums[PHASES[2]] += float(step["seconds"])
        elif step["name"] in ("scroll", "play media", "click play buttons", "network quiet again"):
            sums[PHASES[3]] += float(step["seconds"])
        else:
            sums[PHASES[4]] += float(step["seconds"])
    started, finished = _epoch(metadata["started_at"]), _epoch(metadata["finished_at"])
    first = _epoch(steps[0]["started"])
    last = _epoch(steps[-1]["started"]) + float(steps[-1]["seconds"])
    return {
        PHASES[0]: started - done.began,
        PHASES[1]: first - started,
        **sums,
        PHASES[5]: finished - last,
        PHASES[6]: done.ended - finished,
    }


def behaviour_seconds(metadata: dict[str, Any], name: str) -> float:
    browser = metadata.get("browser") or {}
    for entry in browser.get("behaviours") or []:
        if entry.get("name") == name:
            if entry.get("error"):
                raise BenchError(f"the capture's {name!r} step failed: {entry['error']}")
            return float(entry["seconds"])
    raise BenchError(f"the capture's metadata has no {name!r} behaviour: {browser}")


# --- measurement 1: load time, recorded and not ------------------------------------------


@dataclass
class Load:
    """One load of the script-built page."""

    load: float  # navigation start -> load event (the navigate call)
    quiet: float  # navigation start -> network quiet (navigate + wait_quiet)
    whole: float  # recorded: the whole command; unrecorded: launch .. close
    went_quiet: bool
    phases: dict[str, float] | None = None  # recorded: where the whole command's time went


def recorded_load(archiver: list[str], url: str, scratch: Path, env: dict[str, str]) -> Load:
    done = run_capture(archiver, url, scratch, env, watch=False)
    metadata = capture_metadata([Path(p) for p in done.summary.get("warc_files") or []])
    browser = metadata.get("browser") or {}
    if not browser.get("loaded"):
        raise BenchError(f"the recorded page did not reach its load event: {browser}")
    load = behaviour_seconds(metadata, "load")
    quiet = behaviour_seconds(metadata, "network quiet")
    went_quiet = bool(browser.get("network_quiet"))
    return Load(load, load + quiet, done.seconds, went_quiet, phases(done, metadata))


def unrecorded_load(url: str) -> Load:
    """The same Chromium, the same library calls, no proxy: nothing recorded."""
    from archiver.web.browser import Browser, LaunchSettings, Page, find_browser

    started = time.perf_counter()
    settings = LaunchSettings(executable=find_browser(), proxy=None)
    with Browser(settings) as browser, Page.open(browser) as page:
        # the capture sends the browser's own User-Agent without "HeadlessChrome"
        page.set_user_agent(browser.version.user_agent.replace("HeadlessChrome", "Chrome"))
        begun = time.monotonic()
        nav = page.navigate(url, BROWSER_TIMEOUT)
        load = time.monotonic() - begun
        went_quiet = page.wait_quiet(timeout=BROWSER_TIMEOUT)
        quiet = time.monotonic() - begun
        if not nav.loaded or nav.status != 200:
            raise BenchError(f"the unrecorded page did not load: {nav}")
        text = page.text()  # untimed: the page the scripts built, as in the capture
        if "Protest in Minsk" not in text:
            raise BenchError(f"the unrecorded page's script did not run: {text[:200]!r}")
    return Load(load, quiet, time.perf_counter() - started, went_quiet)


def measure_loads(
    args: argparse.Namespace, archiver: list[str], work: Path, env: dict[str, str]
) -> tuple[list[Load], list[Load]]:
    recorded: list[Load] = []
    unrecorded: list[Load] = []
    command = [sys.executable, str(SCRIPT), "--internal-script-site"]
    with child_server(command, "URL") as url:
        print(f"script-built page: {url} (ScriptSite, in its own process)", flush=True)
        print("warm-up (untimed): one recorded capture, one unrecorded load ...", flush=True)
        for index in range(args.runs + 1):
            order = ("recorded", "unrecorded") if index % 2 == 0 else ("unrecorded", "recorded")
            for side in order:
                if side == "recorded":
                    scratch = work / f"page-{index}"
                    scratch.mkdir()
                    got = recorded_load(archiver, url, scratch, env)
                    if not args.keep:
                        shutil.rmtree(scratch, ignore_errors=True)
                else:
                    got = unrecorded_load(url)
                if index == 0:
                    continue
                (recorded if side == "recorded" else unrecorded).append(got)
                print(
                    f"[{index}/{args.runs}] {side:<10} load {got.load:.3f} s, "
                    f"network quiet {got.quiet:.3f} s, whole {got.whole:.2f} s",
                    flush=True,
                )
    return recorded, unrecorded


# --- measurement 2: a big video ------------------------------------------------------------


def write_video(path: Path, size: int) -> str:
    """``size`` deterministic bytes (a seeded generator, 8 MiB at a time); their SHA-256."""
    rng = random.Random(f"archiver-bench-browser-{size}")
    digest = hashlib.sha256()
    with path.open("wb") as fh:
        left = size
        while left > 0:
            block = rng.randbytes(min(8 * MIB, left))
            digest.update(block)
            fh.write(block)
            left -= len(block)
    return digest.hexdigest()


@dataclass
class VideoRun:
    seconds: float
    archiver_hwm_mb: float
    archiver_rss_mb: float
    chromium_rss_mb: float
    chromium_pss_mb: float
    chromium_processes: int
    fetch_seconds: float  # archiver's own whole fetch of the video, by the server's clock
    browser_requests: list[dict[str, Any]]  # what the browser asked of the video
    records: list[dict[str, Any]]  # the video's response records in the WARC
    warc_bytes: int
    phases: dict[str, float]


def video_records(warcs: list[Path], url: str) -> list[dict[str, Any]]:
    """Every response record of ``url``: status, payload length and SHA-256 (read whole,
    as stored, with warcio), WARC-Truncated."""
    from warcio.archiveiterator import ArchiveIterator

    found = []
    for path in warcs:
        with path.open("rb") as fh:
            for record in ArchiveIterator(fh):
                if (
                    record.rec_type != "response"
                    or record.rec_headers.get_header("WARC-Target-URI") != url
                ):
                    continue
                digest = hashlib.sha256()
                length = 0
                stream: IO[bytes] = record.raw_stream
                while chunk := stream.read(MIB):
                    digest.update(chunk)
                    length += len(chunk)
                found.append(
                    {
                        "status": int(record.http_headers.get_statuscode()),
                        "payload_length": length,
                        "sha256": digest.hexdigest(),
                        "truncated": record.rec_headers.get_header("WARC-Truncated"),
                    }
                )
    return found


def video_run(
    archiver: list[str],
    base: str,
    scratch: Path,
    env: dict[str, str],
    size: int,
    sha256: str,
    log_path: Path,
) -> VideoRun:
    log_path.write_text("", encoding="utf-8")
    done = run_capture(archiver, f"{base}/video.html", scratch, env, watch=True)
    watch = done.watch
    assert watch is not None
    warcs = [Path(p) for p in done.summary.get("warc_files") or []]
    served = [json.loads(line) for line in log_path.read_text(encoding="utf-8").splitlines()]
    video = [s for s in served if s["path"] == VIDEO_PATH and s["method"] == "GET"]
    by_browser = [s for s in video if "archiver/" not in s["user_agent"]]
    by_archiver = [s for s in video if "archiver/" in s["user_agent"]]
    whole = [s for s in by_archiver if s["range"] is None and s["complete"]]
    if not by_browser:
        raise BenchError(f"the browser never asked for the video: {served}")
    if not whole:
        raise BenchError(f"archiver never fetched the video whole: {served}")
    if whole[0]["began"] < by_browser[0]["began"]:
        raise BenchError(f"archiver fetched the video before the browser asked: {served}")
    records = video_records(warcs, f"{base}{VIDEO_PATH}")
    good = [r for r in records if r["status"] == 200 and r["payload_length"] == size]
    if not good or good[0]["sha256"] != sha256 or good[0]["truncated"]:
        raise BenchError(
            f"the WARC does not hold the video whole in a 200 response: {records} "
            f"(expected {size} bytes, sha256 {sha256})"
        )
    return VideoRun(
        seconds=done.seconds,
        archiver_hwm_mb=watch.archiver_hwm_kb / 1024,
        archiver_rss_mb=watch.archiver_rss_kb / 1024,
        chromium_rss_mb=watch.chromium_rss_kb / 1024,
        chromium_pss_mb=watch.chromium_pss_kb / 1024,
        chromium_processes=watch.chromium_processes,
        fetch_seconds=whole[0]["ended"] - whole[0]["began"],
        browser_requests=by_browser,
        records=records,
        warc_bytes=sum(p.stat().st_size for p in warcs),
        phases=phases(done, capture_metadata(warcs)),
    )


def measure_video(
    args: argparse.Namespace, archiver: list[str], work: Path, env: dict[str, str]
) -> tuple[list[VideoRun], int]:
    size = args.video_mb * MIB
    site = work / "video-site"
    site.mkdir()
    print(f"writing {args.video_mb} MiB of deterministic bytes ...", flush=True)
    sha256 = write_video(site / "big.webm", size)
    log_path = work / "served.jsonl"
    command = [
        sys.executable,
        str(SCRIPT),
        "--internal-serve",
        str(site / "big.webm"),
        "--log",
        str(log_path),
    ]
    runs: list[VideoRun] = []
    with child_server(command, "PORT") as port:
        base = f"http://127.0.0.1:{int(port)}"
        print(f"video page: {base}/video.html (own process)", flush=True)
        for index in range(1, args.runs + 1):
            scratch = work / f"video-{index}"
            scratch.mkdir()
            run = video_run(archiver, base, scratch, env, size, sha256, log_path)
            runs.append(run)
            if not args.keep:
                shutil.rmtree(scratch, ignore_errors=True)
            os.sync()  # the WARC's dirty pages written back before the next run
            print(
                f"[{index}/{args.runs}] video: {run.seconds:.2f} s, archiver peak RSS "
                f"{run.archiver_hwm_mb:.1f} MB, Chromium {run.chromium_rss_mb:.0f} MB RSS "
                f"({run.chromium_pss_mb:.0f} MB PSS, {run.chromium_processes} processes)",
                flush=True,
            )
    return runs, size


# --- report ---------------------------------------------------------------------------------


def verdict(ok: bool) -> str:
    return "PASS" if ok else "OVER"


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def report_loads(recorded: list[Load], unrecorded: list[Load], runs: int) -> dict[str, Any]:
    rows = [
        (
            "navigation start -> load event",
            [r.load for r in recorded],
            [u.load for u in unrecorded],
        ),
        (
            "navigation start -> network quiet",
            [r.quiet for r in recorded],
            [u.quiet for u in unrecorded],
        ),
        (
            f"  the same less the {QUIET_WINDOW:g} s quiet window",
            [r.quiet - QUIET_WINDOW for r in recorded],
            [u.quiet - QUIET_WINDOW for u in unrecorded],
        ),
    ]
    print()
    print(f"1. script-built page (tests/support/browser_site.py), median of {runs} runs")
    header = f"{'seconds':<46} {'recorded':>9} {'unrecorded':>11} {'ratio':>7}  target <= 1.30"
    print(header)
    print("-" * len(header))
    out: dict[str, Any] = {}
    for label, ours, theirs in rows:
        a, b = median(ours), median(theirs)
        ratio = a / b if b > 0 else float("inf")
        ok = ratio <= 1 + TARGET_LOAD_OVERHEAD
        print(f"{label:<46} {a:9.3f} {b:11.3f} {ratio:7.2f}  {verdict(ok)} ({ratio - 1:+.0%})")
        out[label.strip()] = {
            "recorded": [round(x, 4) for x in ours],
            "unrecorded": [round(x, 4) for x in theirs],
            "recorded_median": round(a, 4),
            "unrecorded_median": round(b, 4),
            "ratio": round(ratio, 3),
            "pass": ok,
        }
    whole_a = median([r.whole for r in recorded])
    whole_b = median([u.whole for u in unrecorded])
    print(
        f"{'whole: archiver capture --browser (command)':<46} {whole_a:9.2f} "
        f"{'':>11} {'':>7}  not the load time"
    )
    print(f"{'whole: launch, load, quiet, text, close':<46} {'':>9} {whole_b:11.2f}")
    quiet_a = sum(r.went_quiet for r in recorded)
    quiet_b = sum(u.went_quiet for u in unrecorded)
    print(
        f"network went quiet within {BROWSER_TIMEOUT:g} s: recorded {quiet_a}/{len(recorded)}, "
        f"unrecorded {quiet_b}/{len(unrecorded)}"
    )
    print(
        "recorded: the capture's metadata (browser.behaviours 'load', 'network quiet'); "
        "unrecorded: the same Page.navigate / Page.wait_quiet calls timed here, no proxy"
    )
    out["whole_recorded_command_median"] = round(whole_a, 3)
    out["whole_unrecorded_session_median"] = round(whole_b, 3)
    out["recorded_phases_median"] = report_phases([r.phases for r in recorded if r.phases])
    return out


def report_phases(runs: list[dict[str, float]]) -> dict[str, float]:
    """The median of each phase of the whole command (from the capture's timestamps)."""
    print("where the whole command's time went (median s; the capture's own timestamps):")
    out = {}
    for name in PHASES:
        value = median([r[name] for r in runs])
        out[name] = round(value, 3)
        print(f"  {name:<58} {value:7.2f}")
    return out


def report_video(runs: list[VideoRun], size: int) -> dict[str, Any]:
    mb = size / MIB
    seconds = median([r.seconds for r in runs])
    fetch = median([r.fetch_seconds for r in runs])
    hwm = [r.archiver_hwm_mb for r in runs]
    crss = [r.chromium_rss_mb for r in runs]
    cpss = [r.chromium_pss_mb for r in runs]
    print()
    print(f"2. page with a {mb:.0f} MiB <video preload=auto> (--browser), {len(runs)} runs")
    header = f"{'':<52} {'median':>9} {'largest':>9}"
    print(header)
    print("-" * len(header))
    print(f"{'archiver process peak RSS (VmHWM), MB':<52} {median(hwm):9.1f} {max(hwm):9.1f}")
    print(
        f"{'Chromium peak RSS, summed over its processes, MB':<52} "
        f"{median(crss):9.1f} {max(crss):9.1f}"
    )
    print(
        f"{'  the same as PSS (shared pages shared out), MB':<52} "
        f"{median(cpss):9.1f} {max(cpss):9.1f}"
    )
    print(
        f"{'  Chromium processes at most':<52} {'':>9} {max(r.chromium_processes for r in runs):9d}"
    )
    print(f"{'whole command, s':<52} {seconds:9.2f} {max(r.seconds for r in runs):9.2f}")
    print(f"{'  MB/s (video MiB / whole command)':<52} {mb / seconds:9.1f}")
    print(f"{'archiver fetching the video whole (server clock), s':<52} {fetch:9.2f}")
    print(f"{'  MB/s of that fetch':<52} {mb / fetch:9.1f}")
    last = runs[-1]
    for asked in last.browser_requests:
        print(
            f"browser asked: Range {asked['range']!r} -> {asked['status']}, "
            f"{asked['sent'] / MIB:.1f} of {asked['length'] / MIB:.1f} MiB sent before it "
            f"{'finished' if asked['complete'] else 'stopped reading'}"
        )
    for rec in last.records:
        whole = rec["payload_length"] == size and rec["status"] == 200
        print(
            f"WARC response: HTTP {rec['status']}, payload {rec['payload_length']:,} bytes"
            f"{' = the whole video, SHA-256 matches' if whole and not rec['truncated'] else ''}"
            f"{', WARC-Truncated: ' + rec['truncated'] if rec['truncated'] else ''}"
        )
    print(f"WARC files: {last.warc_bytes / MIB:.1f} MiB in all (every run checked the same way)")
    spent = report_phases([r.phases for r in runs])
    ok = max(hwm) < TARGET_RSS_MB
    print()
    print(
        f"archiver process peak RSS < {TARGET_RSS_MB:.0f} MB: {verdict(ok)} "
        f"(largest {max(hwm):.1f} MB, median {median(hwm):.1f} MB)"
    )
    return {
        "video_mib": mb,
        "seconds": [round(r.seconds, 3) for r in runs],
        "fetch_seconds": [round(r.fetch_seconds, 3) for r in runs],
        "archiver_peak_rss_mb": [round(x, 1) for x in hwm],
        "archiver_largest_vmrss_seen_mb": [round(r.archiver_rss_mb, 1) for r in runs],
        "chromium_peak_rss_mb": [round(x, 1) for x in crss],
        "chromium_peak_pss_mb": [round(x, 1) for x in cpss],
        "browser_requests": last.browser_requests,
        "records": last.records,
        "phases_median": spent,
        "target_rss_mb": {"target": TARGET_RSS_MB, "value": round(max(hwm), 1), "pass": ok},
    }


# --- main -----------------------------------------------------------------------------------


def measure(args: argparse.Namespace, archiver: list[str], work: Path) -> int:
    from archiver.web.browser import browser_version, find_browser

    env = child_env(work)
    chromium = browser_version(find_browser())
    print(f"archiver = {' '.join(archiver)}; {chromium}; {os.cpu_count()} cores", flush=True)
    recorded, unrecorded = measure_loads(args, archiver, work, env)
    videos, size = measure_video(args, archiver, work, env)
    numbers = {"load": report_loads(recorded, unrecorded, args.runs)}
    numbers["video"] = report_video(videos, size)
    if args.json is not None:
        numbers["meta"] = {
            "runs": args.runs,
            "video_mib": args.video_mb,
            "chromium": chromium,
            "cpu_count": os.cpu_count(),
            "platform": platform.platform(),
            "python": sys.version.split()[0],
        }
        args.json.write_text(json.dumps(numbers, indent=2) + "\n", encoding="utf-8")
        print(f"\nwrote {args.json}")
    return 0


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="What recording costs a browser capture: load time, and memory with a "
        "big video.",
    )
    parser.add_argument("--runs", type=int, default=5, help="runs of each measurement (5)")
    parser.add_argument("--video-mb", type=int, default=200, help="video size in MiB (200)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write numbers as JSON")
    parser.add_argument(
        "--tmp-parent",
        type=Path,
        default=PROJECT_ROOT.parent,
        help="where the temporary directory goes (default: the project's parent directory)",
    )
    parser.add_argument("--internal-script-site", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--internal-serve", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--log", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.runs < 1 or args.video_mb < 1:
        parser.error("--runs and --video-mb must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(list(sys.argv[1:] if argv is None else argv))
    if args.internal_script_site:
        return internal_script_site()
    if args.internal_serve is not None:
        return internal_serve(args.internal_serve, args.log)
    from archiver.core.errors import UsageProblem
    from archiver.web.browser import find_browser

    try:
        find_browser()
    except UsageProblem as exc:
        print(f"refusing to run: {exc}", file=sys.stderr)
        return 2
    parent: Path = args.tmp_parent.resolve()
    needed = 3 * args.video_mb * MIB + 256 * MIB
    if shutil.disk_usage(parent).free < needed:
        print(
            f"refusing to run: less than {needed // MIB} MiB free under {parent}", file=sys.stderr
        )
        return 2
    return in_work_dir(parent, "archiver-bench-browser-", args.keep, measure, args, find_archiver())


if __name__ == "__main__":
    sys.exit(main())
