"""A disk that fills up, for real: the archive lives on a small tmpfs mounted for the test.

The write errors are the kernel's own (ENOSPC), wherever they happen to fall: in the
middle of a video, in the manifest, its signature, the public key or the index. Whatever
the moment, nothing captured before is lost, nothing incomplete looks complete, and the
command the message names puts the archive back to a state that verifies.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path

import pytest

from archiver.core.atomic import TEMP_MARK
from tests.support import runner
from tests.support.rawserver import ok, raw_server, site
from tests.support.warcs import read_warc

BIN = Path(sys.executable).parent
VIDEO = os.urandom(4 * 1024 * 1024)  # random bytes: gzip cannot make them fit
ROUTES = {
    b"/": ok(b'<html><title>t</title><video src="/v.mp4"></video></html>'),
    b"/small": ok(b"<html><title>small</title><img src='/i.png'></html>"),
    b"/i.png": ok(b"\x89PNG small image", b"image/png"),
    b"/v.mp4": ok(VIDEO, b"video/mp4"),
}


run = partial(runner.run, installed=True)  # the entry point pip installed


@pytest.fixture
def base() -> Iterator[str]:
    with raw_server(site(ROUTES)) as url:
        yield url


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Callable[[str], Path]]:
    """Mount a tmpfs of the given size (needs root, as CI has); unmounted afterwards."""
    mounted: list[Path] = []

    def mount(size: str) -> Path:
        point = tmp_path / f"disk{len(mounted)}"
        point.mkdir()
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(point)],
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, f"cannot mount a tmpfs for this test: {done.stderr}"
        mounted.append(point)
        return point

    yield mount
    for point in mounted:
        subprocess.run(["umount", "-l", str(point)], check=False)


def free_bytes(path: Path) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def fill_leaving(disk: Path, left: int) -> Path:
    """Take all the free space of the disk but ``left`` bytes."""
    filler = disk / "filler"
    with open(filler, "wb") as fh:
        size = free_bytes(disk) - left
        fh.write(b"\0" * max(size, 0))
    return filler


def whole_files_check(archive: Path) -> None:
    """Every file with a finished name is whole: gzip and warcio read all of it."""
    for warc in archive.rglob("*.warc.gz"):
        assert subprocess.run(["gzip", "-t", str(warc)]).returncode == 0, warc
        check = subprocess.run(
            [str(BIN / "warcio"), "check", str(warc)], capture_output=True, text=True
        )
        assert check.returncode == 0, (warc, check.stdout)


def test_the_disk_fills_in_the_middle_of_a_video(
    base: str, tmp_path: Path, small_disk: Callable[[str], Path]
) -> None:
    archive = small_disk("2m") / "archives"
    first = run("capture", base + "/small", "--archive-dir", str(archive), "--format", "json")
    assert first.returncode == 0, first.stderr
    before = json.loads(first.stdout)["capture_id"]
    out = run("capture", base + "/", "--archive-dir", str(archive), "--format", "json")
    assert out.returncode == 1
    assert "Traceback" not in out.stderr
    doc = json.loads(out.stdout)
    assert doc["status"] == "failed"
    assert "cannot write the archive" in doc["failure"]
    assert "No space left on device" in doc["failure"]
    assert base + "/v.mp4" in doc["failure"]  # the URL and file being written are named
    assert ".warc.gz.open)" in doc["failure"]
    # nothing of the failed capture has a finished name; what is kept is whole records
    assert [p.name[: len(before)] for p in archive.rglob("*.warc.gz")] == [before]
    (kept,) = archive.rglob("*.open")
    assert subprocess.run(["gzip", "-t", str(kept)]).returncode == 0
    records = read_warc(kept)
    assert base + "/" in {r.url for r in records if r.type == "response"}
    whole_files_check(archive)
    # verify: the first capture holds, the failed one is incomplete (not tampered)
    verdict = run("verify", "--archive-dir", str(archive), "--format", "json")
    assert verdict.returncode == 1
    captures = json.loads(verdict.stdout)["captures"]
    assert [c["ok"] for c in captures].count(True) == 1
    (failed,) = [c for c in captures if not c["ok"]]
    assert failed["capture_id"] == doc["capture_id"]
    assert failed["status"] == "incomplete"
    # cleanup puts it aside (a rename: no space needed), then everything verifies
    assert run("cleanup", "--apply", "--archive-dir", str(archive)).returncode == 0
    assert run("verify", "--archive-dir", str(archive)).returncode == 0
    # with room again, the same capture succeeds and verifies
    subprocess.run(["mount", "-o", "remount,size=32m", str(archive.parent)], check=True)
    again = run("capture", base + "/", "--archive-dir", str(archive))
    assert again.returncode == 0, again.stderr
    assert run("verify", "--archive-dir", str(archive)).returncode == 0


# Free space left when the second capture starts: from less than its WARC file to enough
# for everything; the write error falls on the WARC, the manifest, the signature, the
# public key or the index files, in turn.
LEVELS = [1, 4, 8, 12, 16, 20, 24, 28, 32, 40, 48, 64]


def test_at_every_level_of_free_space_nothing_incomplete_looks_complete(
    base: str, tmp_path: Path, small_disk: Callable[[str], Path]
) -> None:
    failures: dict[int, str] = {}
    for kib in LEVELS:
        disk = small_disk("1m")
        archive = disk / "archives"
        first = run("capture", base + "/small", "--archive-dir", str(archive), "--format", "json")
        assert first.returncode == 0, first.stderr
        before = json.loads(first.stdout)["capture_id"]
        filler = fill_leaving(disk, kib * 1024)
        second = run("capture", base + "/small", "--archive-dir", str(archive), "--format", "json")
        filler.unlink()
        assert second.returncode in (0, 1), second.stderr
        assert "Traceback" not in second.stderr + second.stdout
        doc = json.loads(second.stdout)
        whole_files_check(archive)
        verdict = run("verify", "--archive-dir", str(archive), "--format", "json")
        verdicts = {c["capture_id"]: c for c in json.loads(verdict.stdout)["captures"]}
        assert verdicts[before]["ok"], (kib, verdicts[before])  # the capture before holds
        if second.returncode == 0:
            assert verdict.returncode == 0, (kib, verdict.stdout)
            continue
        trouble = doc["failure"] or doc["sign_error"] or doc["index_error"]
        failures[kib] = trouble
        if list(archive.rglob(doc["capture_id"] + "*")):  # it left files: never valid
            assert verdict.returncode == 1, (kib, trouble)
        # the message says what to run; running it makes the archive verify again
        if "cleanup --apply" in trouble or doc["failure"]:
            assert run("cleanup", "--apply", "--archive-dir", str(archive)).returncode == 0
        if "index rebuild" in trouble:
            assert run("index", "rebuild", "--archive-dir", str(archive)).returncode == 0
        assert not [p for p in archive.rglob("*") if TEMP_MARK in p.name]
        after = run("verify", "--archive-dir", str(archive))
        assert after.returncode == 0, (kib, trouble, after.stdout)
    # the levels reach both outcomes and each place a write can fail
    assert failures and len(failures) < len(LEVELS), failures
    said = " ".join(failures.values())
    assert "cannot write the archive" in said  # the WARC itself or the lock
    assert "the capture is not signed" in said  # the manifest, signature or key
    assert "the index was not updated" in said


def test_a_read_only_copy_verifies_and_says_the_custody_log_was_not_written(
    base: str, small_disk: Callable[[str], Path]
) -> None:
    """A court verifies from read-only media: verify works, nothing is written, and it
    says that its own custody event could not be."""
    disk = small_disk("32m")
    archive = disk / "archives"
    assert run("capture", base + "/small", "--archive-dir", str(archive)).returncode == 0
    log = archive / "custody" / "events.jsonl"
    before = log.read_bytes()
    remount = subprocess.run(["mount", "-o", "remount,ro", str(disk)], capture_output=True)
    assert remount.returncode == 0, remount.stderr
    out = run("verify", "--archive-dir", str(archive))
    assert out.returncode == 0, out.stdout + out.stderr
    assert "verified: everything holds" in out.stdout
    assert "this verify was not logged to its custody log" in out.stderr  # not tried
    assert "read-only file system" in out.stderr and "Traceback" not in out.stderr
    assert log.read_bytes() == before
    shown = run("custody", "--archive-dir", str(archive))
    assert shown.returncode == 0 and "chain intact: 2 events" in shown.stdout
