"""Adversarial review of recapture (revisit-only captures) and of small CLI details.

Each test is a bug found in review: it fails until the bug is fixed.  Everything runs
through the real command line against a real server on loopback; no mocks.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.paths import ROOT, TESTS
from tests.support.runner import run
from tests.support.unchanged_site import VIDEO, serve_unchanged


@pytest.fixture
def server() -> Iterator[str]:
    with serve_unchanged() as url:
        yield url


def cli(archive: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run(*args, "--archive-dir", str(archive))


def test_a_recapture_stores_the_bytes_when_the_original_warc_file_is_gone(
    server: str, tmp_path: Path
) -> None:
    """Dedup trusts the index alone: once the first capture's WARC files are gone
    (deleted, or moved out of the archive by hand), the index still lists its records,
    and a recapture writes revisits pointing at bytes the archive no longer holds.  The
    server delivered the whole video, yet the new capture is reported `complete`,
    signed, and nothing can be extracted from it: the evidence is lost.

    A payload the archive does not actually hold must be stored as a response (check
    that the original's WARC file exists, and is at least as long as the indexed
    offset + length, before writing a revisit; otherwise store the bytes)."""
    archive = tmp_path / "archives"
    first = cli(archive, "capture", server + "/v.mp4", "--collection", "old", "--format", "json")
    assert first.returncode == 0, first.stderr
    # the old collection leaves the archive (moved to other media, or deleted)
    shutil.move(str(archive / "warc" / "old"), str(tmp_path / "elsewhere"))

    again = cli(archive, "capture", server + "/v.mp4", "--format", "json")
    assert again.returncode == 0, again.stderr
    summary = json.loads(again.stdout)
    assert summary["status"] == "complete"

    target = tmp_path / "v.mp4"
    out = cli(
        archive,
        "extract",
        summary["capture_id"],
        "--url",
        server + "/v.mp4",
        "-o",
        str(target),
    )
    assert out.returncode == 0, out.stdout + out.stderr  # fails: "... does not exist"
    assert hashlib.sha256(target.read_bytes()).hexdigest() == hashlib.sha256(VIDEO).hexdigest()
    deep = cli(archive, "verify", summary["capture_id"], "--deep")
    assert deep.returncode == 0, deep.stdout + deep.stderr


def test_an_unsigned_capture_is_not_complete_after_index_rebuild_nor_skipped_by_a_batch(
    server: str, tmp_path: Path
) -> None:
    """A capture whose signing failed is reported `failed` (JSON summary and custody).
    Its WARC file stays in the archive, and `archiver list` then says "the index ... is
    empty, but it holds WARC files: run `archiver index rebuild`".  Doing so indexes the
    unsigned capture with status `complete` (taken from its metadata record, written
    before signing), so `list` shows it complete and running the batch again skips the
    URL as "captured completely already": an unsigned capture is never taken again.

    The rebuilt row of a capture without a valid signed manifest should not be
    `complete` (e.g. `failed`, failure "not signed"), and batch.completed() should only
    count captures with a manifest_sha256."""
    archive = tmp_path / "archives"
    archive.mkdir()
    (archive / "keys").write_text("a file where the public keys' folder should be")
    urls = tmp_path / "urls.txt"
    urls.write_text(server + "/page\n", encoding="utf-8")
    first = cli(archive, "capture", "--input", str(urls), "--format", "json")
    summary = json.loads(first.stdout.splitlines()[0])
    assert summary["status"] == "failed" and summary["manifest"] is None
    (archive / "keys").unlink()  # the problem is fixed

    listed = cli(archive, "list")
    assert listed.returncode == 1 and "index rebuild" in listed.stderr
    rebuilt = cli(archive, "index", "rebuild")
    assert rebuilt.returncode == 0, rebuilt.stderr

    listed = cli(archive, "list", "--format", "json")
    rows = json.loads(listed.stdout)
    assert [r["capture_id"] for r in rows] == [summary["capture_id"]]
    assert rows[0]["status"] != "complete", "an unsigned capture is listed as complete"

    again = cli(archive, "capture", "--input", str(urls), "--format", "json")
    # the unsigned capture is taken again (a batch of one prints no batch summary)
    assert "skipped" not in again.stderr, again.stderr
    (done,) = [json.loads(line) for line in again.stdout.splitlines()]
    assert done["status"] == "complete" and done["manifest"]
    assert done["capture_id"] != summary["capture_id"]


def test_cleanup_says_1_leftover_not_1_leftovers(tmp_path: Path) -> None:
    """The counts in the CLI now take the right plural (archiver.core.text.counted), but
    `archiver cleanup` still prints "1 leftovers, to do ...".  Use
    counted(len(report.leftovers), "leftover")."""
    archive = tmp_path / "archives"
    (archive / "index").mkdir(parents=True)
    (archive / "index" / ".tmp-interrupted").write_bytes(b"debris of a crash")
    out = cli(archive, "cleanup")
    assert out.returncode == 0, out.stderr
    assert "1 leftover," in out.stdout, out.stdout


def test_the_sdist_ships_either_a_runnable_test_suite_or_none(tmp_path: Path) -> None:
    """setuptools adds tests/test_*.py to the sdist by default, so it carried some 30 test
    modules but not tests/conftest.py, the fixture servers (now in tests/support/),
    tests/golden/ or tests/data/ that they import: `pytest` in an unpacked sdist failed at
    collection. Either leave tests/ out of the sdist (MANIFEST.in `prune tests`) or ship
    all of it (`graft tests`): every module of the suite, its subfolders and support/."""
    import tarfile

    subprocess.run(
        [
            sys.executable,
            "-m",
            "build",
            "--no-isolation",
            "--sdist",
            "-o",
            str(tmp_path),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (sdist,) = tmp_path.glob("*.tar.gz")
    with tarfile.open(sdist) as tar:
        names = {m.name.split("/", 1)[1] for m in tar.getmembers() if "/" in m.name}
    tests = {n for n in names if n.startswith("tests/")}
    if tests:
        suite = {p.relative_to(ROOT).as_posix() for p in TESTS.rglob("*.py")}
        assert {"tests/conftest.py", "tests/support/site.py", "tests/cli/conftest.py"} <= suite
        missing = sorted(suite - names)
        assert not missing, f"the sdist has {len(tests)} test files but not {missing}"
