#!/usr/bin/env python3
"""WACZ export benchmark: ``archiver export`` against py-wacz's ``wacz create``, in one run.

Usage::

    python benchmarks/bench_wacz.py [--size-mb 1024] [--small-mb 64] [--repeat 3]
                                    [--keep] [--json FILE]

For each of two video sizes (``--small-mb``, then ``--size-mb``) it captures a page
whose ``<video src>`` is that many MiB of incompressible bytes (served from
``bench_capture.py``'s static server in its own process) with ``archiver capture``,
then times, as child processes over that capture's WARC files:

* ``archiver export CAPTURE -o a.wacz`` (the WACZ, signed; every WARC byte copied,
  hashed and checked against the signed manifest);
* ``wacz create --detect-pages -o b.wacz WARC…`` (py-wacz, the peer: it indexes the
  WARC files, making pages.jsonl as archiver does, and copies them);
* ``archiver verify a.wacz`` and ``wacz validate -f a.wacz`` over one WACZ that
  ``archiver export`` made (both must accept it);
* hashlib SHA-256 over the same WARC bytes (reading each byte once: the practical
  limit), and a copy of them with SHA-256 and fsync (what an exporter must at least do).

Time is the wall time of the whole process, peak RSS and CPU come from
``/usr/bin/time -v``, all as in ``bench_capture.py`` (whose helpers it imports).  The
two sizes show whether the export streams: its peak RSS must not grow with the video.
See ``benchmarks/README.md``.

Exit status: 0 when every tool ran and every check held (even if a target is missed:
a benchmark reports, it does not gate), 1 when a tool failed or a check did not hold
(``archiver verify`` or ``wacz validate`` rejecting the WACZ among them), 2 for bad
arguments, a missing ``wacz`` command or too little free disk.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import ssl
import sys
import time
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
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
    server_process,
    timed,
    tool_version,
    verdict,
    write_inputs,
)
from bench_verify import cpu_model

FLAT_ALLOWANCE_MB = 16.0  # peak RSS may differ by this much between the sizes: "flat"
CONFIG = "[capture]\nallow_private = true\n"  # the bench server is on 127.0.0.1

# The limit: every WARC byte read once and hashed once, nothing else.
HASH_CODE = """\
import hashlib, sys
buf = bytearray(1 << 20)
view = memoryview(buf)
for name in sys.argv[1:]:
    digest = hashlib.sha256()
    with open(name, "rb", buffering=0) as fh:
        while n := fh.readinto(buf):
            digest.update(view[:n])
    print(digest.hexdigest())
"""

# The least an exporter does: read, hash, write a copy, fsync it.
COPY_CODE = """\
import hashlib, os, sys
buf = bytearray(1 << 20)
view = memoryview(buf)
out_dir = sys.argv[1]
for name in sys.argv[2:]:
    digest = hashlib.sha256()
    with open(name, "rb", buffering=0) as fh, open(
        os.path.join(out_dir, os.path.basename(name)), "wb", buffering=0
    ) as out:
        while n := fh.readinto(buf):
            digest.update(view[:n])
            out.write(view[:n])
        os.fsync(out.fileno())
    print(digest.hexdigest())
"""


@dataclass(frozen=True)
class Capture:
    """One signed capture of the page and its video: what every tool reads."""

    video_mib: int
    capture_id: str
    archive: Path
    warcs: list[Path]
    sizes: dict[str, int]  # WARC file name -> size, as the signed manifest lists it
    sha256: dict[str, str]  # WARC file name -> SHA-256, as the signed manifest lists it
    records: int
    seconds: float

    @property
    def warc_bytes(self) -> int:
        return sum(self.sizes.values())


@dataclass
class Row(Tool):
    """A tool measured at one size, with what it wrote and the writeback after it."""

    outputs: list[int] = field(default_factory=list)  # bytes written, per run
    syncs: list[float] = field(default_factory=list)  # seconds of `sync` right after, per run
    inner: list[float] = field(default_factory=list)  # archiver export's own "seconds"


@dataclass
class Sized:
    """Everything measured at one video size."""

    cap: Capture
    rows: list[Row]
    reference: Path  # a.wacz of the untimed warm-up export: verify and validate read it
    reference_bytes: int

    def row(self, key: str) -> Row:
        return next(r for r in self.rows if r.key == key)


# --- set-up -------------------------------------------------------------------


def find_wacz() -> list[str] | None:
    beside = Path(sys.executable).parent / "wacz"
    if beside.exists():
        return [str(beside)]
    found = shutil.which("wacz")
    return [found] if found else None


def make_capture(bench: Bench, archive: Path, video_mib: int) -> Capture:
    """Capture the page (and its video), as users do; check the capture and its manifest."""
    what = f"archiver capture index.html (+{video_mib} MiB video)"
    scratch = bench.scratch("capture")
    command = [
        *bench.archiver_cmd,
        "capture",
        bench.page_url,
        "--archive-dir",
        str(archive),
        "--format",
        "json",
    ]  # loopback is allowed by the benchmark's own config.toml, not by --allow-private
    run = timed(command, scratch, what)
    summary = last_json_line(run.stdout, what)
    warcs = check_archiver(bench, summary, what)  # complete, total_bytes, video digest
    capture_id = summary.get("capture_id")
    if not isinstance(capture_id, str) or not capture_id:
        raise BenchError(f"{what}: no capture_id in the summary")
    if summary.get("sign_error") is not None or not summary.get("manifest"):
        raise BenchError(f"{what}: not signed: {summary.get('sign_error')}")
    manifest_file = Path(str(summary["manifest"]))
    try:
        manifest = json.loads(manifest_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BenchError(f"{what}: cannot read the manifest {manifest_file}: {exc}") from exc
    files = manifest.get("files") if isinstance(manifest, dict) else None
    if not isinstance(files, list) or not files:
        raise BenchError(f"{what}: the manifest lists no file: {files!r}")
    sizes: dict[str, int] = {}
    digests: dict[str, str] = {}
    for entry in files:
        name = Path(str(entry.get("path"))).name
        sizes[name] = int(entry.get("size"))
        digests[name] = str(entry.get("sha256")).lower()
    if sorted(sizes) != sorted(w.name for w in warcs):
        raise BenchError(f"{what}: the manifest lists {sorted(sizes)}, the summary {warcs}")
    for warc in warcs:
        if warc.stat().st_size != sizes[warc.name]:
            raise BenchError(f"{what}: {warc} is not the size its manifest lists")
    bench.done_with(scratch)
    return Capture(
        video_mib=video_mib,
        capture_id=capture_id,
        archive=archive,
        warcs=warcs,
        sizes=sizes,
        sha256=digests,
        records=int(summary.get("record_count") or 0),
        seconds=run.seconds,
    )


def check_zip(path: Path, cap: Capture, what: str, needs: Sequence[str]) -> int:
    """Raise unless ``path`` is a ZIP holding each WARC file, whole and stored, under
    ``archive/``, and each of ``needs``; its size."""
    try:
        with zipfile.ZipFile(path) as zf:
            infos = {info.filename: info for info in zf.infolist()}
    except (OSError, zipfile.BadZipFile) as exc:
        raise BenchError(f"{what}: {path} is not a readable ZIP file: {exc}") from exc
    for name, size in cap.sizes.items():
        info = infos.get(f"archive/{name}")
        if info is None or info.file_size != size or info.compress_type != zipfile.ZIP_STORED:
            raise BenchError(f"{what}: {path} does not hold archive/{name} whole and stored")
    missing = [name for name in needs if name not in infos]
    if missing:
        raise BenchError(f"{what}: {path} lacks {', '.join(missing)}")
    return path.stat().st_size


def settle(bench: Bench, scratch: Path) -> float:
    """``sync`` (timed: what was left to write back), then free the run's disk."""
    start = time.perf_counter()
    os.sync()
    seconds = time.perf_counter() - start
    bench.done_with(scratch)
    return seconds


# --- the measurements ---------------------------------------------------------


def export_command(bench: Bench, cap: Capture, out: Path) -> list[str]:
    return [
        *bench.archiver_cmd,
        "export",
        cap.capture_id,
        "-o",
        str(out),
        "--archive-dir",
        str(cap.archive),
        "--format",
        "json",
    ]


def check_export(run: Run, cap: Capture, out: Path, what: str) -> tuple[int, float]:
    """Raise unless the export's summary and file hold every WARC file as signed;
    the WACZ's size and the export's own ``seconds``."""
    summary = last_json_line(run.stdout, what)
    members = {
        Path(str(m.get("path"))).name: m
        for m in summary.get("files") or []
        if str(m.get("path", "")).startswith("archive/")
    }
    for name, size in cap.sizes.items():
        member = members.get(name)
        if (
            member is None
            or member.get("size") != size
            or str(member.get("sha256")).lower() != cap.sha256[name]
        ):
            raise BenchError(f"{what}: archive/{name} is not listed as signed: {member}")
    size = check_zip(out, cap, what, ("datapackage.json", "datapackage-digest.json"))
    if summary.get("size") != size:
        raise BenchError(f"{what}: says {summary.get('size')} bytes, {out} has {size}")
    return size, float(summary.get("seconds") or 0.0)


def run_export(bench: Bench, cap: Capture, row: Row) -> None:
    what = "archiver export"
    scratch = bench.scratch("export")
    out = scratch / "a.wacz"
    run = timed(export_command(bench, cap, out), scratch, what)
    size, inner = check_export(run, cap, out, what)
    row.runs.append(run)
    row.outputs.append(size)
    row.inner.append(inner)
    row.syncs.append(settle(bench, scratch))


def run_create(bench: Bench, cap: Capture, wacz_cmd: list[str], row: Row) -> None:
    what = "wacz create"
    scratch = bench.scratch("create")
    out = scratch / "b.wacz"
    command = [*wacz_cmd, "create", "--detect-pages", "-o", str(out), *map(str, cap.warcs)]
    run = timed(command, scratch, what)
    needs = ("indexes/index.cdx.gz", "pages/pages.jsonl", "datapackage.json")
    row.runs.append(run)
    row.outputs.append(check_zip(out, cap, what, needs))
    row.syncs.append(settle(bench, scratch))


def run_verify(bench: Bench, cap: Capture, wacz_file: Path, row: Row) -> None:
    what = "archiver verify a.wacz"
    scratch = bench.scratch("verify")
    command = [*bench.archiver_cmd, "verify", str(wacz_file), "--format", "json"]
    run = timed(command, scratch, what)  # raises unless it exits 0
    report = last_json_line(run.stdout, what)
    checked = report.get("bytes")
    captures = report.get("captures") or []
    if (
        report.get("ok") is not True
        or report.get("signature") != "valid"
        or report.get("made_by_archiver") is not True
        or not isinstance(checked, int)
        or checked < cap.warc_bytes
        or [c.get("capture_id") for c in captures] != [cap.capture_id]
        or not all(c.get("ok") for c in captures)
    ):
        raise BenchError(f"{what} does not accept the WACZ:\n{run.stdout[-3000:]}")
    row.runs.append(run)
    bench.done_with(scratch)


def run_validate(bench: Bench, wacz_cmd: list[str], wacz_file: Path, row: Row) -> None:
    what = "wacz validate -f a.wacz"
    scratch = bench.scratch("validate")
    run = timed([*wacz_cmd, "validate", "-f", str(wacz_file)], scratch, what)
    if "Validation succeeded" not in run.stdout:
        raise BenchError(f"{what} does not accept the WACZ:\n{run.stdout[-3000:]}")
    row.runs.append(run)
    # It extracts the whole WACZ into a temporary folder ($TMPDIR, inside the work
    # directory); clear whatever it left, outside the timing.
    tmp = Path(os.environ["TMPDIR"])
    for leftover in tmp.iterdir():
        if leftover.is_dir():
            shutil.rmtree(leftover, ignore_errors=True)
        else:
            leftover.unlink(missing_ok=True)
    bench.done_with(scratch)


def check_digests(run: Run, cap: Capture, what: str) -> None:
    got = run.stdout.split()
    want = [cap.sha256[w.name] for w in cap.warcs]
    if got != want:
        raise BenchError(f"{what}: digests {got}, the signed manifest lists {want}")


def run_hashlib(bench: Bench, cap: Capture, row: Row) -> None:
    what = "hashlib sha256"
    scratch = bench.scratch("hashlib")
    run = timed([sys.executable, "-c", HASH_CODE, *map(str, cap.warcs)], scratch, what)
    check_digests(run, cap, what)
    row.runs.append(run)
    bench.done_with(scratch)


def run_copy(bench: Bench, cap: Capture, row: Row) -> None:
    what = "copy+sha256+fsync"
    scratch = bench.scratch("copy")
    out = scratch / "out"
    out.mkdir()
    command = [sys.executable, "-c", COPY_CODE, str(out), *map(str, cap.warcs)]
    run = timed(command, scratch, what)
    check_digests(run, cap, what)
    row.runs.append(run)
    row.outputs.append(sum(p.stat().st_size for p in out.iterdir()))
    row.syncs.append(settle(bench, scratch))


# --- one size -------------------------------------------------------------------


def new_rows() -> list[Row]:
    return [
        Row("export", "archiver export CAPTURE -o a.wacz"),
        Row("create", "wacz create --detect-pages -o b.wacz WARC..."),
        Row("verify", "archiver verify a.wacz"),
        Row("validate", "wacz validate -f a.wacz"),
        Row("hashlib", "hashlib sha256 of the WARCs (the limit)"),
        Row("copy", "copy+sha256+fsync of the WARCs"),
    ]


def measure_size(
    args: argparse.Namespace,
    work: Path,
    video_mib: int,
    archiver_cmd: list[str],
    wacz_cmd: list[str],
) -> Sized:
    size = video_mib * MIB
    site = work / f"site-{video_mib}"
    site.mkdir()
    print(f"\n== {video_mib} MiB video ==", flush=True)
    print(f"writing {video_mib} MiB of random bytes to {site / 'video.mp4'} ...", flush=True)
    write_inputs(site, size)
    os.sync()
    video_sha256 = hash_and_warm(site / "video.mp4")
    runs = work / f"runs-{video_mib}"  # each size's scratch folders (Bench numbers them)
    runs.mkdir()
    with server_process(site) as port:
        bench = Bench(
            work=runs,
            size=size,
            video_sha256=video_sha256,
            base_url=f"http://127.0.0.1:{port}",
            archiver_cmd=archiver_cmd,
            keep=args.keep,
        )
        print(f"capturing {bench.page_url} ...", flush=True)
        cap = make_capture(bench, work / f"archive-{video_mib}", video_mib)
    if not args.keep:
        (site / "video.mp4").unlink()  # free its disk and page cache
    os.sync()
    print(
        f"capture {cap.capture_id}: {len(cap.warcs)} WARC file(s), {cap.warc_bytes:,} bytes, "
        f"{cap.records} records, captured and signed in {cap.seconds:.1f} s",
        flush=True,
    )
    # Read the WARC files once: every run finds them in the page cache.
    for warc in cap.warcs:
        if hash_and_warm(warc) != cap.sha256[warc.name]:
            raise BenchError(f"{warc}: SHA-256 differs from the signed manifest's")
    # Untimed warm-up export: the first one makes the P-384 key; its WACZ is the one
    # archiver verify and wacz validate read in every round.
    print("warm-up (untimed): archiver export, copy+sha256+fsync ...", flush=True)
    reference = work / f"reference-{video_mib}.wacz"
    warm = timed(export_command(bench, cap, reference), bench.scratch("warm"), "archiver export")
    reference_bytes, _ = check_export(warm, cap, reference, "archiver export (warm-up)")
    hash_and_warm(reference)
    # And one copy of the WARC files, written and deleted: the first run to write a
    # size's worth of fresh page cache was seen to be ~2x slower than later ones (fresh
    # guest memory), whichever tool it was; the reference WACZ keeps the pages it took.
    run_copy(bench, cap, Row("warm-up", "copy (untimed)"))

    rows = new_rows()
    actions: dict[str, Callable[[Row], None]] = {
        "export": lambda row: run_export(bench, cap, row),
        "create": lambda row: run_create(bench, cap, wacz_cmd, row),
        "verify": lambda row: run_verify(bench, cap, reference, row),
        "validate": lambda row: run_validate(bench, wacz_cmd, reference, row),
        "hashlib": lambda row: run_hashlib(bench, cap, row),
        "copy": lambda row: run_copy(bench, cap, row),
    }
    for i in range(args.repeat):
        order = rows if i % 2 == 0 else list(reversed(rows))
        for row in order:
            print(f"[{video_mib} MiB {i + 1}/{args.repeat}] {row.label} ...", end=" ", flush=True)
            actions[row.key](row)
            run = row.runs[-1]
            rss = f", {run.rss_kb / 1024:.1f} MB RSS" if run.rss_kb is not None else ""
            print(
                f"{run.seconds:.2f} s, {mb_per_s(cap.warc_bytes, run.seconds):.0f} MB/s{rss}",
                flush=True,
            )
    return Sized(cap, rows, reference, reference_bytes)


# --- reporting ----------------------------------------------------------------


def rss_mb(row: Tool) -> float | None:
    return row.peak_rss_kb / 1024 if row.peak_rss_kb is not None else None


def best_index(row: Row) -> int:
    return row.runs.index(row.best)


def report_size(sized: Sized, repeat: int) -> dict[str, Any]:
    """Print one size's table and ratios; return its numbers for ``--json``."""
    cap = sized.cap
    size = cap.warc_bytes
    limit = mb_per_s(size, sized.row("hashlib").best.seconds)
    header = (
        f"{'tool':<46} {'seconds':>8} {'MB/s':>8} {'x limit':>8} {'output MB':>10} "
        f"{'sync s':>7} {'peak RSS MB':>12} {'CPU %':>6}"
    )
    print()
    print(
        f"{cap.video_mib} MiB video: capture {cap.capture_id}, {len(cap.warcs)} WARC file(s), "
        f"{size:,} bytes ({size / MIB:.1f} MiB); best of {repeat} "
        "(MB = MiB; MB/s of the WARC bytes; x limit = MB/s / hashlib's)"
    )
    print(header)
    print("-" * len(header))
    rows: dict[str, Any] = {}
    for row in sized.rows:
        best = row.best
        i = best_index(row)
        rate = mb_per_s(size, best.seconds)
        peak = rss_mb(row)
        output = row.outputs[i] if row.outputs else None
        sync = row.syncs[i] if row.syncs else None
        print(
            f"{row.label:<46} {best.seconds:8.2f} {rate:8.1f} {rate / limit:8.2f} "
            + (f"{output / MIB:10.1f} " if output is not None else f"{'-':>10} ")
            + (f"{sync:7.2f} " if sync is not None else f"{'-':>7} ")
            + (f"{peak:12.1f} " if peak is not None else f"{'n/a':>12} ")
            + f"{best.cpu_percent:6.0f}"
        )
        rows[row.key] = {
            "label": row.label,
            "seconds_best": round(best.seconds, 4),
            "seconds_all": [round(r.seconds, 4) for r in row.runs],
            "mb_per_s": round(rate, 1),
            "ratio_vs_hashlib": round(rate / limit, 3),
            "peak_rss_mb": round(peak, 1) if peak is not None else None,
            "rss_mb_all": [round(r.rss_kb / 1024, 1) if r.rss_kb else None for r in row.runs],
            "cpu_seconds_of_best": round(best.cpu_seconds, 3),
            "output_bytes": output,
            "sync_seconds_after_best": round(sync, 3) if sync is not None else None,
        }
        if row.inner:
            rows[row.key]["export_own_seconds_all"] = [round(s, 3) for s in row.inner]
    export, create = sized.row("export"), sized.row("create")
    verify, validate = sized.row("verify"), sized.row("validate")
    ex_out, cr_out = export.outputs[best_index(export)], create.outputs[best_index(create)]
    ratios = {
        "export_time_over_create_time": export.best.seconds / create.best.seconds,
        "export_size_over_create_size": ex_out / cr_out,
        "export_mb_per_s_over_limit": export_rate_over(sized, "hashlib"),
        "export_mb_per_s_over_copy": export_rate_over(sized, "copy"),
        "verify_time_over_validate_time": verify.best.seconds / validate.best.seconds,
    }
    ex_rss, cr_rss, ve_rss, va_rss = map(rss_mb, (export, create, verify, validate))
    print()
    print(f"ratios at {cap.video_mib} MiB (best runs):")
    print(
        f"  archiver export time / wacz create time     "
        f"{ratios['export_time_over_create_time']:.2f}  "
        f"({export.best.seconds:.2f} s / {create.best.seconds:.2f} s)"
    )
    print(
        f"  a.wacz size / b.wacz size                   "
        f"{ratios['export_size_over_create_size']:.5f}  ({ex_out:,} / {cr_out:,} bytes; "
        f"WARC bytes {size:,})"
    )
    print(
        f"  archiver export MB/s / hashlib MB/s (limit) {ratios['export_mb_per_s_over_limit']:.2f}"
    )
    print(
        f"  archiver export MB/s / copy+sha256+fsync    {ratios['export_mb_per_s_over_copy']:.2f}"
    )
    print(
        f"  archiver verify time / wacz validate time   "
        f"{ratios['verify_time_over_validate_time']:.2f}  "
        f"({verify.best.seconds:.2f} s / {validate.best.seconds:.2f} s)"
    )
    if None not in (ex_rss, cr_rss, ve_rss, va_rss):
        assert ex_rss and cr_rss and ve_rss and va_rss
        ratios["export_rss_over_create_rss"] = ex_rss / cr_rss
        ratios["verify_rss_over_validate_rss"] = ve_rss / va_rss
        print(
            f"  peak RSS: export {ex_rss:.1f} MB, wacz create {cr_rss:.1f} MB "
            f"({ex_rss / cr_rss:.2f}x); verify {ve_rss:.1f} MB, validate {va_rss:.1f} MB "
            f"({ve_rss / va_rss:.2f}x)"
        )
    print(
        f"  archiver export's own time (its JSON 'seconds', best run): "
        f"{export.inner[best_index(export)]:.2f} s of {export.best.seconds:.2f} s"
    )
    return {
        "video_mib": cap.video_mib,
        "capture_id": cap.capture_id,
        "capture_seconds": round(cap.seconds, 3),
        "records": cap.records,
        "warc_files": {
            w.name: {"bytes": cap.sizes[w.name], "sha256": cap.sha256[w.name]} for w in cap.warcs
        },
        "warc_bytes": size,
        "reference_wacz_bytes": sized.reference_bytes,
        "results": rows,
        "ratios": {k: round(v, 5) for k, v in ratios.items()},
    }


def export_rate_over(sized: Sized, key: str) -> float:
    """archiver export's MB/s over the MB/s of row ``key`` (same bytes: a time ratio)."""
    return sized.row(key).best.seconds / sized.row("export").best.seconds


def report_memory(small: Sized, big: Sized) -> dict[str, Any]:
    """Peak RSS of each tool at both sizes; the flat target for archiver export."""
    header = (
        f"{'peak RSS MB':<46} {small.cap.video_mib:>8} MiB {big.cap.video_mib:>8} MiB {'growth':>8}"
    )
    print()
    print(
        f"memory: peak RSS at {small.cap.video_mib} and {big.cap.video_mib} MiB of video "
        "(largest over the runs)"
    )
    print(header)
    print("-" * len(header))
    table: dict[str, Any] = {}
    for row_small, row_big in zip(small.rows, big.rows, strict=True):
        a, b = rss_mb(row_small), rss_mb(row_big)
        if a is None or b is None:
            print(f"{row_small.label:<46} {'n/a':>12} {'n/a':>12}")
            continue
        print(f"{row_small.label:<46} {a:12.1f} {b:12.1f} {b - a:+8.1f}")
        table[row_small.key] = {"small": round(a, 1), "big": round(b, 1), "growth": round(b - a, 1)}
    print()
    growth = table.get("export", {}).get("growth")
    ok = growth is not None and growth <= FLAT_ALLOWANCE_MB
    shown = f"{growth:+.1f} MB" if growth is not None else "not measured"
    print(
        f"archiver export memory flat (peak RSS at {big.cap.video_mib} MiB - at "
        f"{small.cap.video_mib} MiB <= {FLAT_ALLOWANCE_MB:.0f} MB): {verdict(ok)} ({shown})"
    )
    return {
        "peak_rss_mb": table,
        "flat_target": {"allowance_mb": FLAT_ALLOWANCE_MB, "growth_mb": growth, "pass": ok},
    }


# --- main -----------------------------------------------------------------------


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Time archiver export (WACZ) against py-wacz's wacz create over the same "
        "WARC files, with archiver verify against wacz validate, at two video sizes.",
    )
    parser.add_argument("--size-mb", type=int, default=1024, help="video size in MiB (1024)")
    parser.add_argument(
        "--small-mb",
        type=int,
        default=64,
        help="the second, smaller video size in MiB, for the memory-flat check (64)",
    )
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
    if args.size_mb < 1 or args.small_mb < 1 or args.repeat < 1:
        parser.error("--size-mb, --small-mb and --repeat must be at least 1")
    if args.small_mb >= args.size_mb:
        parser.error("--small-mb must be smaller than --size-mb")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    parent: Path = args.tmp_parent.resolve()
    try:
        free = shutil.disk_usage(parent).free
    except OSError as exc:
        print(f"refusing to run: {parent}: {exc}", file=sys.stderr)
        return 2
    both = (args.size_mb + args.small_mb) * MIB
    # At once: the WARC files, the reference a.wacz, one timed output (or wacz
    # validate's extraction), and the video while it is captured; --keep keeps the
    # video and three outputs per round.
    copies = 4 + 3 * args.repeat if args.keep else 4
    needed = copies * both + 512 * MIB
    if free < needed:
        print(
            f"refusing to run: {free / MIB:.0f} MiB free under {parent}, need at least "
            f"{needed / MIB:.0f} MiB for {args.size_mb} + {args.small_mb} MiB videos",
            file=sys.stderr,
        )
        return 2
    wacz_cmd = find_wacz()
    if wacz_cmd is None:
        print(
            "refusing to run: no `wacz` command (py-wacz) next to this Python or on PATH",
            file=sys.stderr,
        )
        return 2
    archiver_cmd = find_archiver()
    return in_work_dir(
        parent, "archiver-bench-wacz-", args.keep, measure, args, wacz_cmd, archiver_cmd
    )


def isolate(work: Path) -> None:
    """Keys, configuration and temporary files of the benchmark's own, for every child."""
    config = work / "config" / "archiver" / "config.toml"
    config.parent.mkdir(parents=True)
    config.write_text(CONFIG, encoding="utf-8")
    (work / "tmp").mkdir()
    for name in ("ARCHIVER_CONFIG", "ARCHIVER_KEY", "ARCHIVER_KEY_PASSPHRASE"):
        os.environ.pop(name, None)
    os.environ["XDG_CONFIG_HOME"] = str(work / "config")
    os.environ["ARCHIVER_KEY_STORE"] = str(work / "keys")
    os.environ["TMPDIR"] = str(work / "tmp")  # wacz validate extracts the whole WACZ there


def measure(
    args: argparse.Namespace, wacz_cmd: list[str], work: Path, archiver_cmd: list[str]
) -> int:
    isolate(work)
    print(f"archiver = {' '.join(archiver_cmd)}; wacz = {' '.join(wacz_cmd)}", flush=True)
    small = measure_size(args, work, args.small_mb, archiver_cmd, wacz_cmd)
    big = measure_size(args, work, args.size_mb, archiver_cmd, wacz_cmd)
    startup = Tool("archiver_startup", "archiver --version (startup only)", startup_only=True)
    (work / "startup").mkdir()
    # run_startup uses only the Bench's folder and archiver command.
    startup.runs.append(run_startup(Bench(work / "startup", 0, "", "", archiver_cmd, args.keep)))
    print(
        f"\nmachine: {os.cpu_count()} cores, {cpu_model()}; Python {sys.version.split()[0]}, "
        f"{ssl.OPENSSL_VERSION}, {platform.platform()}"
    )
    print(f"archiver: {tool_version(archiver_cmd)}; wacz: {tool_version(wacz_cmd)}")
    numbers: dict[str, Any] = {"sizes": [report_size(small, args.repeat)]}
    numbers["sizes"].append(report_size(big, args.repeat))
    rss = rss_mb(startup)
    print(
        f"\narchiver --version (startup only): {startup.best.seconds:.2f} s"
        + (f", {rss:.1f} MB peak RSS" if rss is not None else "")
    )
    numbers["memory"] = report_memory(small, big)
    numbers["startup"] = {"seconds": round(startup.best.seconds, 4), "peak_rss_mb": rss}
    if args.json is not None:
        numbers["meta"] = {
            "size_mib": args.size_mb,
            "small_mib": args.small_mb,
            "repeat": args.repeat,
            "wacz_create_options": ["--detect-pages"],
            "cpu_count": os.cpu_count(),
            "cpu_model": cpu_model(),
            "platform": platform.platform(),
            "python": sys.version.split()[0],
            "openssl": ssl.OPENSSL_VERSION,
            "archiver": tool_version(archiver_cmd),
            "wacz": tool_version(wacz_cmd),
            "mb": "MiB (2**20 bytes)",
        }
        args.json.write_text(json.dumps(numbers, indent=2) + "\n", encoding="utf-8")
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
