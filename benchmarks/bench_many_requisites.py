#!/usr/bin/env python3
"""Scheduling benchmark: a page with tens of thousands of images.

Usage::

    python benchmarks/bench_many_requisites.py [--counts 10000,50000] [--peer auto] [--json FILE]

It serves ``index.html`` with N ``<img src>`` tags and every image (a unique ~100-byte
body) from a threaded HTTP/1.1 server in its own process, then, for each N, times as
child processes against the same page:

* ``archiver capture PAGE --format json`` (the whole process: wall time, peak RSS);
* a peer fetching the same page and images: ``wget -p`` (page requisites, one
  connection, keep-alive) when wget is installed, else plain threaded ``urllib``
  fetches (as many threads as archiver's default concurrency).

The point is how archiver's time and memory grow with N (the issue-15 target: 50k
images in at most about 5x the 10k time, peak RSS under 300 MB); the peer shows what
the server and the machine allow in the same run.  Old code can be measured with
``PYTHONPATH=/path/to/old/checkout python benchmarks/bench_many_requisites.py``.

Exit status: 0 when every run finished and every check held (even if a target is
missed: a benchmark reports, it does not gate), 1 when a run failed or a check failed
(``BENCHMARK INVALID``), 2 for bad arguments.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import platform
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from bench_capture import (
    PROJECT_ROOT,
    SERVER_START_TIMEOUT,
    WGET_BIN,
    BenchError,
    Run,
    find_archiver,
    in_work_dir,
    last_json_line,
    timed,
)

SCRIPT = Path(__file__).resolve()
TARGET_TIME_RATIO = 5.0  # time(largest N) / time(smallest N), for a 5x larger page
TARGET_RSS_MB = 300.0
PEER_THREADS = 4  # archiver's default --concurrency


def image_path(n: int) -> str:
    return f"/i/{n:06d}.png"


def page_html(count: int) -> bytes:
    tags = "\n".join(f'<img src="{image_path(n)}" alt="">' for n in range(count))
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>many images</title>"
        f"</head><body>\n{tags}\n</body></html>\n"
    ).encode()


def image_body(path: str) -> bytes:
    return b"\x89PNG\r\n\x1a\n" + path.encode() * 6  # unique, so nothing is a revisit


# --- child process: the server ---------------------------------------------------


def internal_serve(count: int) -> int:
    page = page_html(count)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive for wget; archiver sends Connection: close
        disable_nagle_algorithm = True  # head and body are two writes: no delayed-ACK stall

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path in ("/", "/index.html"):
                body, kind = page, "text/html; charset=utf-8"
            elif path.startswith("/i/"):
                body, kind = image_body(path), "image/png"
            else:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    class Server(ThreadingHTTPServer):
        request_queue_size = 256
        daemon_threads = True

    server = Server(("127.0.0.1", 0), Handler)
    print(f"PORT {server.server_address[1]}", flush=True)
    server.serve_forever()
    return 0


@contextmanager
def server_process(count: int) -> Iterator[str]:
    proc = subprocess.Popen(
        [sys.executable, str(SCRIPT), "--internal-serve", str(count)],
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
        yield f"http://127.0.0.1:{int(line.split()[1])}/"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# --- child process: the plain peer ---------------------------------------------------


def internal_fetch(url: str, count: int) -> int:
    """Fetch the page and its ``count`` images with PEER_THREADS threads."""
    with urllib.request.urlopen(url) as answer:
        answer.read()
    base = url.rstrip("/")

    def get(n: int) -> int:
        with urllib.request.urlopen(base + image_path(n)) as answer:
            return len(answer.read())

    with concurrent.futures.ThreadPoolExecutor(PEER_THREADS) as pool:
        got = sum(1 for size in pool.map(get, range(count)) if size > 0)
    return 0 if got == count else 1


# --- the measurements ---------------------------------------------------------------


def child_env(work: Path) -> dict[str, str]:
    """Keys and configuration of the benchmark's own, never the user's."""
    env = dict(os.environ)
    env.pop("ARCHIVER_CONFIG", None)
    env["XDG_CONFIG_HOME"] = str(work / "config")
    env["ARCHIVER_KEY_STORE"] = str(work / "keys")
    env.pop("ARCHIVER_KEY_PASSPHRASE", None)
    return env


def run_archiver(archiver: list[str], url: str, count: int, work: Path) -> Run:
    scratch = work / f"archiver-{count}"
    scratch.mkdir()
    extra = capture_options(archiver, count)
    command = [
        *archiver,
        "capture",
        url,
        "--archive-dir",
        str(scratch / "archive"),
        "--format",
        "json",
        *extra,
    ]
    with env_of(child_env(work)):
        run = timed(command, scratch, f"archiver capture ({count} images)")
    summary = last_json_line(run.stdout, "archiver capture")
    if summary.get("status") != "complete":
        raise BenchError(f"archiver capture ({count} images) is {summary.get('status')}")
    shutil.rmtree(scratch / "archive", ignore_errors=True)
    return run


def run_peer(peer: str, url: str, count: int, work: Path) -> Run:
    scratch = work / f"{peer}-{count}"
    scratch.mkdir()
    if peer == "wget":
        command = [WGET_BIN, "-q", "-p", "-nd", "-P", str(scratch / "files"), url]
        run = timed(command, scratch, f"wget -p ({count} images)")
        files = len(list((scratch / "files").iterdir()))
        if files < count:
            raise BenchError(f"wget -p saved {files} files for {count} images")
    else:
        command = [sys.executable, str(SCRIPT), "--internal-fetch", url, "--count", str(count)]
        run = timed(command, scratch, f"plain urllib ({count} images)")
    shutil.rmtree(scratch, ignore_errors=True)
    return run


@contextmanager
def env_of(env: dict[str, str]) -> Iterator[None]:
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def capture_options(archiver: list[str], count: int) -> list[str]:
    """What this archiver needs to capture the whole page, if it has the option: the
    server is on loopback (``--allow-private``), and the page needs ``count`` + 1
    requests (``--max-requests``)."""
    out = subprocess.run(
        [*archiver, "capture", "--help"], capture_output=True, text=True, check=False
    ).stdout
    extra = ["--allow-private"] if "--allow-private" in out else []
    if "--max-requests" in out:
        extra += ["--max-requests", str(count + 10)]
    return extra


def rss_mb(run: Run) -> float | None:
    return run.rss_kb / 1024 if run.rss_kb is not None else None


def report(counts: list[int], ours: dict[int, Run], theirs: dict[int, Run], peer: str) -> dict:
    label = "wget -p" if peer == "wget" else f"urllib x{PEER_THREADS}"
    header = (
        f"{'images':>8} {'archiver s':>11} {'req/s':>8} {'peak RSS MB':>12} "
        f"{label + ' s':>16} {'x peer':>7}"
    )
    print()
    print(header)
    print("-" * len(header))
    rows = {}
    for n in counts:
        a, p = ours[n], theirs[n]
        rss = rss_mb(a)
        rss_text = f"{rss:12.1f}" if rss is not None else f"{'n/a':>12}"
        print(
            f"{n:8d} {a.seconds:11.2f} {n / a.seconds:8.0f} {rss_text} "
            f"{p.seconds:16.2f} {a.seconds / p.seconds:7.2f}"
        )
        rows[str(n)] = {
            "archiver_seconds": round(a.seconds, 3),
            "archiver_peak_rss_mb": round(rss, 1) if rss is not None else None,
            "peer_seconds": round(p.seconds, 3),
            "peer_peak_rss_mb": round(r, 1) if (r := rss_mb(p)) is not None else None,
            "archiver_over_peer": round(a.seconds / p.seconds, 3),
        }
    print()
    small, large = counts[0], counts[-1]
    ratio = ours[large].seconds / ours[small].seconds
    size_ratio = large / small
    allowed = TARGET_TIME_RATIO * size_ratio / 5  # "5x for 5x the images": linear plus slack
    ok_time = ratio <= allowed
    print(
        f"archiver time {large} / {small} images <= {allowed:.1f}: "
        f"{'PASS' if ok_time else 'FAIL'} ({ratio:.2f}; {size_ratio:.0f}x the images)"
    )
    peak = rss_mb(ours[large])
    ok_rss = peak is not None and peak < TARGET_RSS_MB
    print(
        f"archiver peak RSS at {large} images < {TARGET_RSS_MB:.0f} MB: "
        f"{'PASS' if ok_rss else 'FAIL'} ({peak if peak is None else round(peak, 1)} MB)"
    )
    return {
        "results": rows,
        "peer": label,
        "targets": {
            "time_ratio": {"target": allowed, "value": round(ratio, 3), "pass": ok_time},
            "peak_rss_mb": {"target": TARGET_RSS_MB, "value": peak, "pass": ok_rss},
        },
    }


def measure(args: argparse.Namespace, archiver: list[str], work: Path) -> int:
    peer = args.peer
    if peer == "auto":
        peer = "wget" if Path(WGET_BIN).exists() else "urllib"
    print(f"archiver = {' '.join(archiver)}; peer = {peer}", flush=True)
    if os.environ.get("PYTHONPATH"):
        print(f"PYTHONPATH = {os.environ['PYTHONPATH']}", flush=True)
    ours: dict[int, Run] = {}
    theirs: dict[int, Run] = {}
    for count in args.counts:
        with server_process(count) as url:
            print(f"[{count} images] {peer} ...", end=" ", flush=True)
            theirs[count] = run_peer(peer, url, count, work)
            print(f"{theirs[count].seconds:.2f} s; archiver ...", end=" ", flush=True)
            ours[count] = run_archiver(archiver, url, count, work)
            print(f"{ours[count].seconds:.2f} s", flush=True)
    numbers = report(args.counts, ours, theirs, peer)
    if args.json is not None:
        numbers["meta"] = {
            "counts": args.counts,
            "cpu_count": os.cpu_count(),
            "platform": platform.platform(),
            "python": sys.version.split()[0],
            "pythonpath": os.environ.get("PYTHONPATH"),
        }
        args.json.write_text(json.dumps(numbers, indent=2) + "\n", encoding="utf-8")
        print(f"\nwrote {args.json}")
    return 0


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Time archiver on a page with many images.")
    parser.add_argument(
        "--counts",
        type=lambda s: sorted({int(x) for x in s.split(",")}),
        default=[10_000, 50_000],
        help="image counts, comma-separated (10000,50000)",
    )
    parser.add_argument("--peer", choices=["auto", "wget", "urllib"], default="auto")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write numbers as JSON")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    parser.add_argument("--internal-serve", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--internal-fetch", metavar="URL", help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if any(n < 1 for n in args.counts):
        parser.error("--counts must be positive")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(list(sys.argv[1:] if argv is None else argv))
    if args.internal_serve is not None:
        return internal_serve(args.internal_serve)
    if args.internal_fetch is not None:
        return internal_fetch(args.internal_fetch, args.count or 0)
    if args.peer == "wget" and not Path(WGET_BIN).exists():
        print(f"refusing to run: {WGET_BIN} not found", file=sys.stderr)
        return 2
    return in_work_dir(
        PROJECT_ROOT.parent, "archiver-bench-many-", args.keep, measure, args, find_archiver()
    )


if __name__ == "__main__":
    sys.exit(main())
