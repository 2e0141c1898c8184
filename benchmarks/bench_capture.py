#!/usr/bin/env python3
"""Capture throughput benchmark: archiver against its peers, measured in the same run.

Usage::

    python benchmarks/bench_capture.py [--size-mb 1024] [--repeat 1] [--keep] [--json FILE]

It writes a video of ``--size-mb`` MiB of incompressible bytes and an ``index.html``
that references it, serves both from a static HTTP/1.1 server running in its own
process (``socket.sendfile``), and times, against the same URL:

* a plain raw-socket reader that hashes the body with SHA-256 (the practical limit),
  also with a file write (and with a write plus fsync) for context;
* ``wget --warc-file`` (gzip, wget's default) and ``wget --warc-file --no-warc-compression``;
* ``archiver capture`` of the video URL and of the page (which pulls in the video);
* ``warcio check`` over archiver's output (a reader of the same WARC, for context).

Absolute figures vary between machines and runs; read the ratios.  See
``benchmarks/README.md``.  The same file also holds the helpers that run in child
processes (``--internal-serve``, ``--internal-read``, ``--internal-rss``), so the
benchmark is one self-contained script.

Exit status: 0 when every tool ran and every check held (even if a target is
missed: a benchmark reports, it does not gate), 1 when a tool failed or a digest or
size check failed, 2 for bad arguments or too little free disk.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import mimetypes
import os
import platform
import re
import resource
import shutil
import socket
import socketserver
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from email.utils import formatdate
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlsplit

MIB = 1024 * 1024
CHUNK = 8 * MIB  # block size used to write and pre-read the video
READ_BUFFER = MIB  # the plain reader's recv_into buffer
TIME_BIN = "/usr/bin/time"
WGET_BIN = "/usr/bin/wget"
SCRIPT = Path(__file__).resolve()
PROJECT_ROOT = SCRIPT.parent.parent
SERVER_START_TIMEOUT = 20.0

TARGET_VS_WGET = 3.0
TARGET_VS_PLAIN = 0.5
TARGET_RSS_MB = 150.0

PAGE_HTML = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>archiver benchmark page</title></head>
<body>
<h1>Benchmark video</h1>
<video src="video.mp4" controls></video>
</body>
</html>
"""


class BenchError(Exception):
    """A tool failed or a check did not hold: the run is not valid."""


# ---------------------------------------------------------------------------
# Child process 1: the static HTTP/1.1 server
# ---------------------------------------------------------------------------


class _StaticHandler(socketserver.BaseRequestHandler):
    """HTTP/1.1 GET/HEAD with keep-alive; bodies go out with ``socket.sendfile``."""

    files: ClassVar[dict[str, Path]] = {}

    def handle(self) -> None:
        sock: socket.socket = self.request
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        pending = b""
        while True:
            while b"\r\n\r\n" not in pending:
                data = sock.recv(65536)
                if not data or len(pending) > 65536:
                    return
                pending += data
            raw_head, pending = pending.split(b"\r\n\r\n", 1)
            lines = raw_head.decode("latin-1").split("\r\n")
            try:
                method, target, version = lines[0].split(" ", 2)
            except ValueError:
                self._send(sock, 400, "Bad Request", b"bad request\n", close=True, body=True)
                return
            headers: dict[str, str] = {}
            for line in lines[1:]:
                name, sep, value = line.partition(":")
                if sep:
                    headers[name.strip().lower()] = value.strip()
            close = headers.get("connection", "").lower() == "close" or version == "HTTP/1.0"
            if method not in ("GET", "HEAD"):
                self._send(sock, 405, "Method Not Allowed", b"", close=True, body=False)
                return
            path = urlsplit(target).path or "/"
            if path == "/":
                path = "/index.html"
            file = self.files.get(path)
            if file is None:
                self._send(sock, 404, "Not Found", b"not found\n", close, method == "GET")
            else:
                self._send_file(sock, file, close, method == "GET")
            if close:
                return

    @staticmethod
    def _head(status: int, reason: str, length: int, ctype: str, close: bool) -> bytes:
        return (
            f"HTTP/1.1 {status} {reason}\r\n"
            f"Date: {formatdate(usegmt=True)}\r\n"
            "Server: archiver-bench\r\n"
            f"Content-Type: {ctype}\r\n"
            f"Content-Length: {length}\r\n"
            f"Connection: {'close' if close else 'keep-alive'}\r\n"
            "\r\n"
        ).encode("latin-1")

    def _send(
        self, sock: socket.socket, status: int, reason: str, data: bytes, close: bool, body: bool
    ) -> None:
        sock.sendall(self._head(status, reason, len(data), "text/plain", close))
        if body and data:
            sock.sendall(data)

    def _send_file(self, sock: socket.socket, file: Path, close: bool, body: bool) -> None:
        ctype = mimetypes.guess_type(file.name)[0] or "application/octet-stream"
        if ctype.startswith("text/"):
            ctype += "; charset=utf-8"
        with file.open("rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            sock.sendall(self._head(200, "OK", size, ctype, close))
            if body:
                sock.sendfile(fh)


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


def internal_serve(root: Path) -> int:
    """Serve every file in ``root``; print ``PORT <n>`` once listening."""
    _StaticHandler.files = {"/" + p.name: p for p in root.iterdir() if p.is_file()}
    with _Server(("127.0.0.1", 0), _StaticHandler) as server:
        print(f"PORT {server.server_address[1]}", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            server.serve_forever(poll_interval=0.5)
    return 0


# ---------------------------------------------------------------------------
# Child process 2: the plain reader (raw socket, recv_into, SHA-256)
# ---------------------------------------------------------------------------


def internal_read(url: str, out: Path | None, fsync: bool) -> int:
    """GET ``url``; hash the body (and write it to ``out``); print a JSON line."""
    parts = urlsplit(url)
    host = parts.hostname or "127.0.0.1"
    port = parts.port or 80
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    buf = bytearray(READ_BUFFER)
    view = memoryview(buf)
    digest = hashlib.sha256()
    with socket.create_connection((host, port)) as sock:
        sock.sendall(
            (
                f"GET {target} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
                "User-Agent: archiver-bench-plain\r\nAccept: */*\r\n"
                "Accept-Encoding: identity\r\nConnection: close\r\n\r\n"
            ).encode("latin-1")
        )
        head = bytearray()
        while b"\r\n\r\n" not in head:
            n = sock.recv_into(buf)
            if n == 0:
                raise SystemExit("plain reader: connection closed before the end of the head")
            head += view[:n]
        end = head.index(b"\r\n\r\n") + 4
        lines = bytes(head[:end]).decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        length: int | None = None
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length":
                length = int(value.strip())
        if status != 200 or length is None:
            raise SystemExit(f"plain reader: HTTP {status}, Content-Length {length}")
        first = bytes(head[end:])
        received = len(first)
        digest.update(first)
        with contextlib.ExitStack() as stack:
            sink = stack.enter_context(out.open("wb")) if out is not None else None
            if sink is not None:
                sink.write(first)
            while received < length:
                n = sock.recv_into(view, min(READ_BUFFER, length - received))
                if n == 0:
                    break
                chunk = view[:n]
                digest.update(chunk)
                if sink is not None:
                    sink.write(chunk)
                received += n
            if sink is not None and fsync:
                sink.flush()
                os.fsync(sink.fileno())
    print(json.dumps({"status": status, "bytes": received, "sha256": digest.hexdigest()}))
    return 0 if received == length else 1


# ---------------------------------------------------------------------------
# Child process 3: peak-RSS wrapper, used only when /usr/bin/time is missing
# ---------------------------------------------------------------------------


def internal_rss(report: Path, command: list[str]) -> int:
    """Run ``command``; write the peak RSS (KiB) of its process tree to ``report``."""
    rc = subprocess.call(command)
    report.write_text(
        f"Maximum resident set size (kbytes): "
        f"{resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}\n"
    )
    return rc


# ---------------------------------------------------------------------------
# The benchmark proper
# ---------------------------------------------------------------------------


@dataclass
class Run:
    """One timed execution of one tool."""

    seconds: float
    cpu_seconds: float  # user + system time of the process tree
    rss_kb: int | None
    stdout: str
    stderr: str

    @property
    def cpu_percent(self) -> float:
        return 100 * self.cpu_seconds / self.seconds


@dataclass
class Tool:
    """A peer (or archiver) and every time it was measured."""

    key: str
    label: str
    runs: list[Run] = field(default_factory=list)
    startup_only: bool = False  # a context row that moves no payload

    @property
    def best(self) -> Run:
        return min(self.runs, key=lambda r: r.seconds)

    @property
    def peak_rss_kb(self) -> int | None:
        values = [r.rss_kb for r in self.runs if r.rss_kb is not None]
        return max(values) if values else None


@dataclass
class Bench:
    """State shared by the measurements of one benchmark run."""

    work: Path
    size: int
    video_sha256: str
    base_url: str
    archiver_cmd: list[str]
    keep: bool
    counter: int = 0

    @property
    def video_url(self) -> str:
        return f"{self.base_url}/video.mp4"

    @property
    def page_url(self) -> str:
        return f"{self.base_url}/index.html"

    def scratch(self, name: str) -> Path:
        self.counter += 1
        path = self.work / f"{name}-{self.counter}"
        path.mkdir()
        return path

    def done_with(self, path: Path) -> None:
        """Free the disk a run used (outside the timed part) and settle dirty pages."""
        if not self.keep:
            shutil.rmtree(path, ignore_errors=True)
        os.sync()


def timed(command: Sequence[str], scratch: Path, what: str) -> Run:
    """Run ``command``; return its wall time, peak RSS and stdout; raise if it fails."""
    report = scratch / "rusage.txt"
    if Path(TIME_BIN).exists():
        full = [TIME_BIN, "-v", "-o", str(report), *command]
    else:
        full = [sys.executable, str(SCRIPT), "--internal-rss", str(report), "--", *command]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(full, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if proc.returncode != 0:
        raise BenchError(
            f"{what} failed (exit {proc.returncode}): {' '.join(command)}\n"
            f"stdout: {proc.stdout[-2000:]}\nstderr: {proc.stderr[-2000:]}"
        )
    rss: int | None = None
    with contextlib.suppress(OSError):
        found = re.search(r"Maximum resident set size \(kbytes\): (\d+)", report.read_text())
        if found:
            rss = int(found.group(1))
    return Run(seconds, cpu, rss, proc.stdout, proc.stderr)


def last_json_line(text: str, what: str) -> dict[str, Any]:
    for line in reversed(text.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            value = json.loads(line)
            if isinstance(value, dict):
                return value
    raise BenchError(f"{what}: no JSON summary on stdout:\n{text[-2000:]}")


# --- the measurements ---------------------------------------------------------


def run_plain(bench: Bench, write: bool, fsync: bool) -> Run:
    what = "plain read+hash" + ("+write" if write else "") + ("+fsync" if fsync else "")
    scratch = bench.scratch("plain")
    command = [sys.executable, str(SCRIPT), "--internal-read", bench.video_url]
    if write:
        command += ["--out", str(scratch / "video.out")]
    if fsync:
        command.append("--fsync")
    run = timed(command, scratch, what)
    result = last_json_line(run.stdout, what)
    if result.get("bytes") != bench.size or result.get("sha256") != bench.video_sha256:
        raise BenchError(
            f"{what}: got {result.get('bytes')} bytes, sha256 {result.get('sha256')}; "
            f"expected {bench.size} bytes, sha256 {bench.video_sha256} (server broken?)"
        )
    bench.done_with(scratch)
    return run


def run_wget(bench: Bench, compress: bool) -> Run:
    what = "wget --warc-file" + ("" if compress else " --no-warc-compression")
    scratch = bench.scratch("wget")
    command = [
        WGET_BIN,
        "-q",
        f"--warc-file={scratch / 'out'}",
        "--no-warc-keep-log",
        "-O",
        "/dev/null",
    ]
    if not compress:
        command.append("--no-warc-compression")
    command.append(bench.video_url)
    run = timed(command, scratch, what)
    warc = scratch / ("out.warc.gz" if compress else "out.warc")
    written = warc.stat().st_size if warc.exists() else 0
    if written < bench.size:
        raise BenchError(f"{what}: {warc} holds {written} bytes, less than the {bench.size} sent")
    bench.done_with(scratch)
    return run


def payload_digest_in_warc(path: Path, url: str) -> str | None:
    """The WARC-Payload-Digest of the response for ``url`` (stops at that record's head)."""
    from warcio.archiveiterator import ArchiveIterator

    with path.open("rb") as fh:
        for record in ArchiveIterator(fh):
            if (
                record.rec_type == "response"
                and record.rec_headers.get_header("WARC-Target-URI") == url
            ):
                value = record.rec_headers.get_header("WARC-Payload-Digest")
                return str(value) if value is not None else None
    return None


def check_archiver(bench: Bench, summary: dict[str, Any], what: str) -> list[Path]:
    """Raise unless ``summary`` shows a complete capture with the right video digest."""
    if summary.get("status") != "complete":
        raise BenchError(
            f"{what}: status {summary.get('status')!r}, not 'complete' "
            f"(failure: {summary.get('failure')}, errors: {summary.get('errors')})"
        )
    total = summary.get("total_bytes")
    if not isinstance(total, int) or total < bench.size:
        raise BenchError(f"{what}: total_bytes {total} < video size {bench.size}")
    warcs = [Path(p) for p in summary.get("warc_files") or []]
    if not warcs:
        raise BenchError(f"{what}: the summary lists no WARC file")
    video = next((v for v in summary.get("videos") or [] if v.get("url") == bench.video_url), None)
    if video is not None:
        where, got = "summary videos[].payload_sha256", video.get("payload_sha256")
    else:
        # A video captured as the seed is the capture's own response, not a "video found";
        # its digest is in the record head.
        where = "WARC-Payload-Digest in the WARC"
        got = None
        for warc in warcs:
            label = payload_digest_in_warc(warc, bench.video_url)
            if label is not None:
                got = label.removeprefix("sha256:").lower()
                break
    if got != bench.video_sha256:
        raise BenchError(
            f"{what}: {where} is {got!r}, but the video's SHA-256 is {bench.video_sha256}"
        )
    return warcs


def run_archiver(bench: Bench, url: str, what: str, checker: Tool | None) -> Run:
    scratch = bench.scratch("archiver")
    command = [
        *bench.archiver_cmd,
        "capture",
        url,
        "--allow-private",  # the bench server is on 127.0.0.1
        "--archive-dir",
        str(scratch / "archive"),
        "--format",
        "json",
    ]
    run = timed(command, scratch, what)
    warcs = check_archiver(bench, last_json_line(run.stdout, what), what)
    if checker is not None:
        checker.runs.append(run_warcio_check(bench, warcs))
    bench.done_with(scratch)
    return run


def run_warcio_check(bench: Bench, warcs: list[Path]) -> Run:
    scratch = bench.scratch("warcio")
    warcio = Path(sys.executable).parent / "warcio"
    command = [str(warcio)] if warcio.exists() else [sys.executable, "-m", "warcio.cli"]
    run = timed([*command, "check", "-v", *map(str, warcs)], scratch, "warcio check")
    # warcio check can exit 0 after a decompression error, so read what it says: every
    # response record must be followed by "digest pass", and nothing on stderr.
    lines = [line.strip() for line in run.stdout.splitlines()]
    responses = [i for i, line in enumerate(lines) if line.endswith(" response")]
    failed = [lines[i] for i in responses if lines[i + 1 : i + 2] != ["digest pass"]]
    if not responses or failed or run.stderr.strip():
        raise BenchError(
            f"warcio check does not verify archiver's WARC {warcs}:\n"
            f"{run.stdout[-2000:]}\n{run.stderr[-2000:]}"
        )
    return run


def run_startup(bench: Bench) -> Run:
    scratch = bench.scratch("startup")
    run = timed([*bench.archiver_cmd, "--version"], scratch, "archiver --version")
    bench.done_with(scratch)
    return run


# --- set-up -------------------------------------------------------------------


def find_archiver() -> list[str]:
    beside = Path(sys.executable).parent / "archiver"
    if beside.exists():
        return [str(beside)]
    found = shutil.which("archiver")
    if found:
        return [found]
    return [sys.executable, "-m", "archiver"]


def write_inputs(root: Path, size: int) -> None:
    (root / "index.html").write_text(PAGE_HTML, encoding="utf-8")
    with (root / "video.mp4").open("wb") as fh:
        left = size
        while left > 0:
            n = min(CHUNK, left)
            fh.write(os.urandom(n))
            left -= n


def hash_and_warm(path: Path) -> str:
    """SHA-256 of ``path``, read once so that every run finds it in the page cache."""
    digest = hashlib.sha256()
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    with path.open("rb", buffering=0) as fh:
        while n := fh.readinto(buf):
            digest.update(view[:n])
    return digest.hexdigest()


@contextlib.contextmanager
def server_process(root: Path) -> Iterator[int]:
    proc = subprocess.Popen(
        [sys.executable, str(SCRIPT), "--internal-serve", str(root)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + SERVER_START_TIMEOUT
        line = ""
        while time.monotonic() < deadline and not line:
            line = proc.stdout.readline()
            if not line and proc.poll() is not None:
                break
        if not line.startswith("PORT "):
            raise BenchError(f"the benchmark server did not start (said {line!r})")
        yield int(line.split()[1])
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def tool_version(command: list[str]) -> str:
    try:
        out = subprocess.run(
            [*command, "--version"], capture_output=True, text=True, check=False, timeout=30
        )
    except OSError as exc:
        return f"unavailable ({exc})"
    return (out.stdout or out.stderr).strip().splitlines()[0] if (out.stdout or out.stderr) else "?"


# --- reporting ----------------------------------------------------------------


def mb_per_s(size: int, seconds: float) -> float:
    return size / MIB / seconds


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def report(tools: list[Tool], size: int, repeat: int) -> dict[str, Any]:
    """Print the table and the target lines; return the numbers for ``--json``."""
    by_key = {t.key: t for t in tools}
    wget_rate = mb_per_s(size, by_key["wget_gz"].best.seconds)
    plain_rate = mb_per_s(size, by_key["plain"].best.seconds)
    rows: dict[str, dict[str, Any]] = {}
    exact: dict[str, tuple[float, float]] = {}  # unrounded ratios for the target lines
    header = (
        f"{'tool':<46} {'seconds':>8} {'MB/s':>8} {'x wget':>7} {'x plain':>8} "
        f"{'peak RSS MB':>12} {'CPU %':>6}"
    )
    print()
    print(f"video: {size / MIB:.0f} MiB, best of {repeat} (MB = MiB; ratios are of MB/s)")
    print(header)
    print("-" * len(header))
    for tool in tools:
        best = tool.best
        rss_mb = tool.peak_rss_kb / 1024 if tool.peak_rss_kb is not None else None
        rss_text = f"{rss_mb:12.1f}" if rss_mb is not None else f"{'n/a':>12}"
        row: dict[str, Any] = {
            "label": tool.label,
            "seconds_best": round(best.seconds, 4),
            "seconds_all": [round(r.seconds, 4) for r in tool.runs],
            "peak_rss_mb": round(rss_mb, 1) if rss_mb is not None else None,
            "cpu_seconds_of_best": round(best.cpu_seconds, 3),
        }
        cpu_text = f"{best.cpu_percent:6.0f}"
        if tool.startup_only:
            print(
                f"{tool.label:<46} {best.seconds:8.2f} {'-':>8} {'-':>7} {'-':>8} "
                f"{rss_text} {cpu_text}"
            )
        else:
            rate = mb_per_s(size, best.seconds)
            exact[tool.key] = (rate / wget_rate, rate / plain_rate)
            row |= {
                "mb_per_s": round(rate, 1),
                "ratio_vs_wget": round(rate / wget_rate, 3),
                "ratio_vs_plain": round(rate / plain_rate, 3),
            }
            print(
                f"{tool.label:<46} {best.seconds:8.2f} {rate:8.1f} {rate / wget_rate:7.2f} "
                f"{rate / plain_rate:8.2f} {rss_text} {cpu_text}"
            )
        rows[tool.key] = row
    print()
    targets: dict[str, Any] = {}
    for key, name in (("archiver_video", "video URL"), ("archiver_page", "page + video")):
        row = rows[key]
        (vs_wget, vs_plain), rss = exact[key], row["peak_rss_mb"]
        ok_wget = vs_wget >= TARGET_VS_WGET
        ok_plain = vs_plain >= TARGET_VS_PLAIN
        ok_rss = rss is not None and rss < TARGET_RSS_MB
        rss_text = f"{rss:.1f} MB" if rss is not None else "not measured"
        print(f"archiver ({name}) / wget >= {TARGET_VS_WGET}: {verdict(ok_wget)} ({vs_wget:.2f})")
        print(
            f"archiver ({name}) / plain read+hash >= {TARGET_VS_PLAIN}: "
            f"{verdict(ok_plain)} ({vs_plain:.2f})"
        )
        print(
            f"archiver ({name}) peak RSS < {TARGET_RSS_MB:.0f} MB: {verdict(ok_rss)} ({rss_text})"
        )
        targets[key] = {
            "vs_wget": {"target": TARGET_VS_WGET, "value": round(vs_wget, 3), "pass": ok_wget},
            "vs_plain": {"target": TARGET_VS_PLAIN, "value": round(vs_plain, 3), "pass": ok_plain},
            "peak_rss_mb": {"target": TARGET_RSS_MB, "value": rss, "pass": ok_rss},
        }
    return {"results": rows, "targets": targets}


# --- main -----------------------------------------------------------------------


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Time archiver capture of a large video against wget and a plain reader.",
    )
    parser.add_argument("--size-mb", type=int, default=1024, help="video size in MiB (1024)")
    parser.add_argument("--repeat", type=int, default=1, help="runs per tool; best kept (1)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write numbers as JSON")
    parser.add_argument(
        "--tmp-parent",
        type=Path,
        default=PROJECT_ROOT.parent,
        help="where the temporary directory goes; same filesystem as the project "
        "(default: the project's parent directory)",
    )
    parser.add_argument(
        "--no-warcio-check",
        action="store_true",
        help="skip the 'warcio check' context row",
    )
    # Child-process modes (internal).
    parser.add_argument("--internal-serve", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--internal-read", metavar="URL", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--fsync", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.size_mb < 1 or args.repeat < 1:
        parser.error("--size-mb and --repeat must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--internal-rss"] and len(argv) >= 4 and argv[2] == "--":
        return internal_rss(Path(argv[1]), argv[3:])
    args = parse_args(argv)
    if args.internal_serve is not None:
        return internal_serve(args.internal_serve)
    if args.internal_read is not None:
        return internal_read(args.internal_read, args.out, args.fsync)
    return benchmark(args)


def benchmark(args: argparse.Namespace) -> int:
    size = args.size_mb * MIB
    parent: Path = args.tmp_parent.resolve()
    free = shutil.disk_usage(parent).free
    runs_kept = 6 * args.repeat if args.keep else 1
    needed = max(4 * size, (1 + runs_kept) * size + 256 * MIB)
    if free < needed:
        print(
            f"refusing to run: {free / MIB:.0f} MiB free under {parent}, "
            f"need at least {needed / MIB:.0f} MiB for a {args.size_mb} MiB video",
            file=sys.stderr,
        )
        return 2
    if not Path(WGET_BIN).exists():
        print(f"refusing to run: {WGET_BIN} not found", file=sys.stderr)
        return 2
    archiver_cmd = find_archiver()
    return in_work_dir(parent, "archiver-bench-", args.keep, measure, args, size, archiver_cmd)


def in_work_dir(
    parent: Path, prefix: str, keep: bool, measure: Callable[..., int], *args: Any
) -> int:
    """``measure(*args[:2], work, *args[2:])`` in a fresh temporary directory under
    ``parent``: removed afterwards unless ``keep``; a :class:`BenchError` is exit 1."""
    work = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    started = time.monotonic()
    try:
        return measure(*args[:2], work, *args[2:])
    except BenchError as exc:
        print(f"\nBENCHMARK INVALID: {exc}", file=sys.stderr)
        return 1
    finally:
        if keep:
            print(f"kept {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
        print(f"(benchmark took {time.monotonic() - started:.0f} s)", file=sys.stderr)


def measure(args: argparse.Namespace, size: int, work: Path, archiver_cmd: list[str]) -> int:
    site = work / "site"
    site.mkdir()
    print(f"writing {args.size_mb} MiB of random bytes to {site / 'video.mp4'} ...", flush=True)
    write_inputs(site, size)
    os.sync()
    video_sha256 = hash_and_warm(site / "video.mp4")
    print(f"video sha256 {video_sha256}", flush=True)
    tools = [
        Tool("plain", "plain read+hash (sha256)"),
        Tool("plain_write", "plain read+hash+write"),
        Tool("plain_write_fsync", "plain read+hash+write+fsync"),
        Tool("wget_gz", "wget --warc-file (gzip, default)"),
        Tool("wget_raw", "wget --warc-file --no-warc-compression"),
        Tool("archiver_video", "archiver capture video.mp4"),
        Tool("archiver_page", "archiver capture index.html (+video)"),
    ]
    checker = None if args.no_warcio_check else Tool("warcio_check", "warcio check (archiver WARC)")
    startup = Tool("archiver_startup", "archiver --version (startup only)", startup_only=True)
    with server_process(site) as port:
        bench = Bench(
            work=work,
            size=size,
            video_sha256=video_sha256,
            base_url=f"http://127.0.0.1:{port}",
            archiver_cmd=archiver_cmd,
            keep=args.keep,
        )
        print(
            f"server on 127.0.0.1:{port} (own process); archiver = {' '.join(archiver_cmd)}",
            flush=True,
        )
        actions = {
            "plain": lambda: run_plain(bench, write=False, fsync=False),
            "plain_write": lambda: run_plain(bench, write=True, fsync=False),
            "plain_write_fsync": lambda: run_plain(bench, write=True, fsync=True),
            "wget_gz": lambda: run_wget(bench, compress=True),
            "wget_raw": lambda: run_wget(bench, compress=False),
            "archiver_video": lambda: run_archiver(
                bench, bench.video_url, "archiver capture video.mp4", checker
            ),
            "archiver_page": lambda: run_archiver(
                bench, bench.page_url, "archiver capture index.html", None
            ),
        }
        # Untimed warm-up: the first run that fills a size's worth of fresh page cache was
        # seen to be ~2x slower than later ones (fresh guest memory), whichever tool it was.
        print("warm-up (untimed): plain read+hash+write ...", flush=True)
        run_plain(bench, write=True, fsync=False)
        for i in range(args.repeat):
            order = tools if i % 2 == 0 else list(reversed(tools))
            for tool in order:
                print(f"[{i + 1}/{args.repeat}] {tool.label} ...", end=" ", flush=True)
                run = actions[tool.key]()
                tool.runs.append(run)
                print(f"{run.seconds:.2f} s, {mb_per_s(size, run.seconds):.0f} MB/s", flush=True)
        startup.runs.append(run_startup(bench))
    shown = [*tools, *([checker] if checker is not None else []), startup]
    numbers = report(shown, size, args.repeat)
    if args.json is not None:
        numbers["meta"] = {
            "size_bytes": size,
            "size_mib": args.size_mb,
            "repeat": args.repeat,
            "video_sha256": video_sha256,
            "cpu_count": os.cpu_count(),
            "platform": platform.platform(),
            "python": sys.version.split()[0],
            "wget": tool_version([WGET_BIN]),
            "archiver": tool_version(archiver_cmd),
            "mb": "MiB (2**20 bytes)",
        }
        args.json.write_text(json.dumps(numbers, indent=2) + "\n", encoding="utf-8")
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
