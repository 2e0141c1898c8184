#!/usr/bin/env python3
"""Verification throughput benchmark: ``archiver verify`` against ``warcio check`` and hashlib.

Usage::

    python benchmarks/bench_verify.py [--size-mb 1024] [--repeat 3] [--keep] [--json FILE]

It makes one signed capture of a page whose ``<video src>`` is ``--size-mb`` MiB of
incompressible bytes (served from a local HTTP server in its own process, as
``bench_capture.py`` does), in a single WARC file, then times over that same file:

* ``archiver verify CAPTURE_ID`` (signature, file SHA-256, every record's digests, the
  index rows; it must exit 0);
* ``warcio check -v FILE`` (every record's declared digests; every response must pass);
* hashlib SHA-256 alone: ``python -c`` reading the file in 1 MiB chunks with
  ``readinto`` into one ``hashlib.sha256`` (its digest must equal the manifest's);
* ``sha256sum FILE`` and ``archiver --version`` for context.

Each tool is a child process; its time is the wall time of the whole process, startup
included, best of ``--repeat`` runs with the order alternated between rounds.  After
the timings, ``archiver verify`` is run once on the file with one byte flipped (it must
fail), and the byte is restored.  The set-up helpers and the timing come from
``bench_capture.py``.  See ``benchmarks/README.md``.

Exit status: 0 when every tool ran and every check held (even if a target is missed:
a benchmark reports, it does not gate), 1 when a tool failed or a check did not hold,
2 for bad arguments or too little free disk.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import ssl
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench_capture import (
    MIB,
    PROJECT_ROOT,
    Bench,
    BenchError,
    Run,
    Tool,
    check_archiver,
    find_archiver,
    hash_and_warm,
    in_work_dir,
    last_json_line,
    mb_per_s,
    run_startup,
    run_warcio_check,
    server_process,
    timed,
    tool_version,
    verdict,
    write_inputs,
)

WARC_SIZE = "1T"  # --warc-size for the capture: the video must land in one WARC file
MANIFEST_SUFFIX = ".manifest.json"
TARGET_VS_WARCIO = 1.5
TARGET_VS_HASHLIB = 0.60

# The hashlib row: what "reading each byte once" costs in Python, with nothing else.
HASH_CODE = """\
import hashlib, sys
buf = bytearray(1 << 20)
view = memoryview(buf)
digest = hashlib.sha256()
with open(sys.argv[1], "rb", buffering=0) as fh:
    while n := fh.readinto(buf):
        digest.update(view[:n])
print(digest.hexdigest())
"""


@dataclass(frozen=True)
class Capture:
    """The signed capture every tool reads."""

    capture_id: str
    archive: Path
    warc: Path
    warc_size: int
    warc_sha256: str  # as listed in the signed manifest
    seconds: float


# --- set-up -------------------------------------------------------------------


def make_capture(bench: Bench, archive: Path) -> Capture:
    """Capture the page (and its video) into one WARC file; check it and its manifest."""
    what = "archiver capture index.html (+video)"
    scratch = bench.scratch("capture")
    command = [
        *bench.archiver_cmd,
        "capture",
        bench.page_url,
        "--allow-private",  # the bench server is on 127.0.0.1
        "--archive-dir",
        str(archive),
        "--format",
        "json",
        "--warc-size",
        WARC_SIZE,
    ]
    run = timed(command, scratch, what)
    summary = last_json_line(run.stdout, what)
    warcs = check_archiver(bench, summary, what)  # complete, total_bytes, video digest
    capture_id = summary.get("capture_id")
    if not isinstance(capture_id, str) or not capture_id:
        raise BenchError(f"{what}: no capture_id in the summary")
    if summary.get("sign_error") is not None:
        raise BenchError(f"{what}: not signed: {summary.get('sign_error')}")
    if len(warcs) != 1:
        raise BenchError(f"{what}: {len(warcs)} WARC files ({warcs}), expected one")
    warc = warcs[0]
    warc_size = warc.stat().st_size
    if warc_size < bench.size:
        raise BenchError(f"{what}: {warc} holds {warc_size} bytes, less than the video")
    collection = summary.get("collection") or "default"
    manifest_path = archive / "warc" / str(collection) / f"{capture_id}{MANIFEST_SUFFIX}"
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BenchError(f"{what}: cannot read the manifest {manifest_path}: {exc}") from exc
    files = manifest.get("files") if isinstance(manifest, dict) else None
    if not isinstance(files, list) or len(files) != 1 or not isinstance(files[0], dict):
        raise BenchError(f"{what}: the manifest should list one file, it lists {files!r}")
    entry: dict[str, Any] = files[0]
    sha256 = entry.get("sha256")
    if (
        (archive / str(entry.get("path"))).resolve() != warc.resolve()
        or entry.get("size") != warc_size
        or not isinstance(sha256, str)
    ):
        raise BenchError(f"{what}: the manifest's file entry {entry} does not describe {warc}")
    bench.done_with(scratch)
    return Capture(capture_id, archive, warc, warc_size, sha256.lower(), run.seconds)


def verify_command(bench: Bench, cap: Capture, *extra: str) -> list[str]:
    return [
        *bench.archiver_cmd,
        "verify",
        cap.capture_id,
        "--archive-dir",
        str(cap.archive),
        *extra,
    ]


# --- the measurements ---------------------------------------------------------


def run_verify(bench: Bench, cap: Capture, *extra: str) -> Run:
    what = " ".join(("archiver verify", *extra))
    scratch = bench.scratch("verify")
    run = timed(verify_command(bench, cap, *extra), scratch, what)  # raises unless it exits 0
    ok_line = f"OK capture {cap.capture_id}"
    lines = run.stdout.splitlines()
    if not any(line.startswith(ok_line) for line in lines) or not any(
        line.startswith("verified: everything holds") for line in lines
    ):
        raise BenchError(
            f"{what} exited 0 but did not report '{ok_line}' and 'verified: everything "
            f"holds':\n{run.stdout[-2000:]}\n{run.stderr[-2000:]}"
        )
    bench.done_with(scratch)
    return run


def run_hashlib(bench: Bench, cap: Capture) -> Run:
    what = "hashlib sha256"
    scratch = bench.scratch("hashlib")
    run = timed([sys.executable, "-c", HASH_CODE, str(cap.warc)], scratch, what)
    got = run.stdout.strip()
    if got != cap.warc_sha256:
        raise BenchError(f"{what}: digest {got!r}, but the manifest lists {cap.warc_sha256}")
    bench.done_with(scratch)
    return run


def run_sha256sum(bench: Bench, cap: Capture, binary: str) -> Run:
    what = "sha256sum"
    scratch = bench.scratch("sha256sum")
    run = timed([binary, str(cap.warc)], scratch, what)
    got = run.stdout.split()[0].lower() if run.stdout.split() else ""
    if got != cap.warc_sha256:
        raise BenchError(f"{what}: digest {got!r}, but the manifest lists {cap.warc_sha256}")
    bench.done_with(scratch)
    return run


def tamper_check(bench: Bench, cap: Capture) -> list[str]:
    """Flip one byte in the middle of the WARC: verify must fail; then restore it.

    Returns the problem lines verify printed (where it located the change)."""
    offset = cap.warc_size // 2
    with cap.warc.open("r+b") as fh:
        fh.seek(offset)
        old = fh.read(1)
        fh.seek(offset)
        fh.write(bytes([old[0] ^ 0xFF]))
    try:
        proc = subprocess.run(verify_command(bench, cap), capture_output=True, text=True)
    finally:
        with cap.warc.open("r+b") as fh:
            fh.seek(offset)
            fh.write(old)
    if proc.returncode != 1 or f"FAILED capture {cap.capture_id}" not in proc.stdout:
        raise BenchError(
            f"archiver verify of the WARC with byte {offset} flipped: exit {proc.returncode} "
            f"(expected 1 and 'FAILED capture {cap.capture_id}'):\n"
            f"{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
        )
    if hash_and_warm(cap.warc) != cap.warc_sha256:
        raise BenchError(f"restoring byte {offset} of {cap.warc} did not restore its digest")
    return [line.strip() for line in proc.stdout.splitlines() if line.startswith("  - ")]


# --- reporting ----------------------------------------------------------------


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def report(tools: list[Tool], cap: Capture, repeat: int) -> dict[str, Any]:
    """Print the table and the target lines; return the numbers for ``--json``."""
    by_key = {t.key: t for t in tools}
    size = cap.warc_size
    warcio_rate = mb_per_s(size, by_key["warcio_check"].best.seconds)
    hashlib_rate = mb_per_s(size, by_key["hashlib"].best.seconds)
    rows: dict[str, dict[str, Any]] = {}
    header = (
        f"{'tool':<44} {'seconds':>8} {'MB/s':>8} {'x warcio':>9} {'x hashlib':>10} "
        f"{'peak RSS MB':>12} {'CPU %':>6}"
    )
    print()
    print(
        f"WARC file: {size:,} bytes ({size / MIB:.1f} MiB), best of {repeat} "
        "(MB = MiB of the WARC file; ratios are of MB/s)"
    )
    print(header)
    print("-" * len(header))
    for tool in tools:
        best = tool.best
        rss_mb = tool.peak_rss_kb / 1024 if tool.peak_rss_kb is not None else None
        rss_text = f"{rss_mb:12.1f}" if rss_mb is not None else f"{'n/a':>12}"
        cpu_text = f"{best.cpu_percent:6.0f}"
        row: dict[str, Any] = {
            "label": tool.label,
            "seconds_best": round(best.seconds, 4),
            "seconds_all": [round(r.seconds, 4) for r in tool.runs],
            "peak_rss_mb": round(rss_mb, 1) if rss_mb is not None else None,
            "cpu_seconds_of_best": round(best.cpu_seconds, 3),
        }
        if tool.startup_only:
            print(
                f"{tool.label:<44} {best.seconds:8.2f} {'-':>8} {'-':>9} {'-':>10} "
                f"{rss_text} {cpu_text}"
            )
        else:
            rate = mb_per_s(size, best.seconds)
            row |= {
                "mb_per_s": round(rate, 1),
                "ratio_vs_warcio_check": round(rate / warcio_rate, 3),
                "ratio_vs_hashlib": round(rate / hashlib_rate, 3),
            }
            print(
                f"{tool.label:<44} {best.seconds:8.2f} {rate:8.1f} {rate / warcio_rate:9.2f} "
                f"{rate / hashlib_rate:10.2f} {rss_text} {cpu_text}"
            )
        rows[tool.key] = row
    verify_rate = mb_per_s(size, by_key["verify"].best.seconds)
    vs_warcio = verify_rate / warcio_rate
    vs_hashlib = verify_rate / hashlib_rate
    ok_warcio = vs_warcio >= TARGET_VS_WARCIO
    ok_hashlib = vs_hashlib >= TARGET_VS_HASHLIB
    print()
    print(
        f"archiver verify / warcio check >= {TARGET_VS_WARCIO}: "
        f"{verdict(ok_warcio)} ({vs_warcio:.2f})"
    )
    print(
        f"archiver verify / hashlib sha256 >= {TARGET_VS_HASHLIB:.2f}: "
        f"{verdict(ok_hashlib)} ({vs_hashlib:.2f})"
    )
    targets = {
        "vs_warcio_check": {
            "target": TARGET_VS_WARCIO,
            "value": round(vs_warcio, 3),
            "pass": ok_warcio,
        },
        "vs_hashlib": {
            "target": TARGET_VS_HASHLIB,
            "value": round(vs_hashlib, 3),
            "pass": ok_hashlib,
        },
    }
    return {"results": rows, "targets": targets}


# --- main -----------------------------------------------------------------------


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Time archiver verify of a large signed capture against warcio check "
        "and hashlib SHA-256 over the same WARC file.",
    )
    parser.add_argument("--size-mb", type=int, default=1024, help="video size in MiB (1024)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per tool; best kept (3)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write numbers as JSON")
    parser.add_argument(
        "--tmp-parent",
        type=Path,
        default=PROJECT_ROOT.parent,
        help="where the temporary directory goes (default: the project's parent directory)",
    )
    args = parser.parse_args(argv)
    if args.size_mb < 1 or args.repeat < 1:
        parser.error("--size-mb and --repeat must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    size = args.size_mb * MIB
    parent: Path = args.tmp_parent.resolve()
    try:
        free = shutil.disk_usage(parent).free
    except OSError as exc:
        print(f"refusing to run: {parent}: {exc}", file=sys.stderr)
        return 2
    needed = 2 * size + 512 * MIB  # the video and the WARC file, at the same time
    if free < needed:
        print(
            f"refusing to run: {free / MIB:.0f} MiB free under {parent}, "
            f"need at least {needed / MIB:.0f} MiB for a {args.size_mb} MiB video",
            file=sys.stderr,
        )
        return 2
    archiver_cmd = find_archiver()
    return in_work_dir(
        parent, "archiver-bench-verify-", args.keep, measure, args, size, archiver_cmd
    )


def measure(args: argparse.Namespace, size: int, work: Path, archiver_cmd: list[str]) -> int:
    site = work / "site"
    site.mkdir()
    print(f"writing {args.size_mb} MiB of random bytes to {site / 'video.mp4'} ...", flush=True)
    write_inputs(site, size)
    os.sync()
    video_sha256 = hash_and_warm(site / "video.mp4")
    # A key store of our own: the first capture creates a key in it (and says so on stderr).
    os.environ["ARCHIVER_KEY_STORE"] = str(work / "keys")
    for name in ("ARCHIVER_KEY", "ARCHIVER_KEY_PASSPHRASE"):
        os.environ.pop(name, None)
    with server_process(site) as port:
        bench = Bench(
            work=work,
            size=size,
            video_sha256=video_sha256,
            base_url=f"http://127.0.0.1:{port}",
            archiver_cmd=archiver_cmd,
            keep=args.keep,
        )
        print(f"capturing {bench.page_url} (archiver = {' '.join(archiver_cmd)}) ...", flush=True)
        cap = make_capture(bench, work / "archive")
    if not args.keep:
        (site / "video.mp4").unlink()  # free its disk and page cache
    os.sync()
    print(
        f"capture {cap.capture_id}: {cap.warc.name}, {cap.warc_size:,} bytes, "
        f"captured and signed in {cap.seconds:.1f} s",
        flush=True,
    )
    # Read the WARC once: every run finds it in the page cache (dropping it needs root).
    warm = hash_and_warm(cap.warc)
    if warm != cap.warc_sha256:
        raise BenchError(f"the WARC's SHA-256 is {warm}, the manifest lists {cap.warc_sha256}")
    print(f"WARC sha256 {warm} (equals the signed manifest's)", flush=True)

    sha256sum = shutil.which("sha256sum")
    tools = [
        Tool("verify", "archiver verify CAPTURE_ID"),
        Tool("verify_deep", "archiver verify --deep CAPTURE_ID"),
        Tool("warcio_check", "warcio check -v FILE"),
        Tool("hashlib", "hashlib sha256 (python -c, 1 MiB readinto)"),
    ]
    actions: dict[str, Callable[[], Run]] = {
        "verify": lambda: run_verify(bench, cap),
        "verify_deep": lambda: run_verify(bench, cap, "--deep"),
        "warcio_check": lambda: run_warcio_check(bench, [cap.warc]),
        "hashlib": lambda: run_hashlib(bench, cap),
    }
    if sha256sum is not None:
        tools.append(Tool("sha256sum", "sha256sum FILE (coreutils)"))
        actions["sha256sum"] = lambda: run_sha256sum(bench, cap, sha256sum)
    else:
        print("note: sha256sum not found; its context row is left out", flush=True)
    for i in range(args.repeat):
        order = tools if i % 2 == 0 else list(reversed(tools))
        for tool in order:
            print(f"[{i + 1}/{args.repeat}] {tool.label} ...", end=" ", flush=True)
            run = actions[tool.key]()
            tool.runs.append(run)
            print(
                f"{run.seconds:.2f} s, {mb_per_s(cap.warc_size, run.seconds):.0f} MB/s", flush=True
            )
    startup = Tool("archiver_startup", "archiver --version (startup only)", startup_only=True)
    startup.runs.append(run_startup(bench))
    print("tamper check: one byte flipped in the middle of the WARC ...", end=" ", flush=True)
    located = tamper_check(bench, cap)
    print("archiver verify fails (exit 1), as it must; byte restored", flush=True)
    for line in located:
        print(f"  {line}")

    print(
        f"\nmachine: {os.cpu_count()} cores, {cpu_model()}; Python {sys.version.split()[0]}, "
        f"{ssl.OPENSSL_VERSION}, {platform.platform()}"
    )
    numbers = report([*tools, startup], cap, args.repeat)
    if args.json is not None:
        numbers["meta"] = {
            "size_mib": args.size_mb,
            "video_bytes": size,
            "video_sha256": video_sha256,
            "capture_id": cap.capture_id,
            "warc_bytes": cap.warc_size,
            "warc_sha256": cap.warc_sha256,
            "repeat": args.repeat,
            "tamper_check": located,
            "cpu_count": os.cpu_count(),
            "cpu_model": cpu_model(),
            "platform": platform.platform(),
            "python": sys.version.split()[0],
            "openssl": ssl.OPENSSL_VERSION,
            "archiver": tool_version(archiver_cmd),
            "warcio": tool_version([str(Path(sys.executable).parent / "warcio")]),
            "mb": "MiB (2**20 bytes)",
        }
        args.json.write_text(json.dumps(numbers, indent=2) + "\n", encoding="utf-8")
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
