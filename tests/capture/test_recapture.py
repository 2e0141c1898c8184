"""Capturing unchanged content again keeps the capture whole.

A recapture is evidence in its own right (the video was still online on that date): its
responses arrive as before, and dedup stores them as revisits of the first capture's
records.  Each capture must still have its WARC, a signed manifest, its index rows and a
custody event that agrees with the summary; it is listed, verifies and extracts the
original bytes through its revisits.  Everything runs through the real command line
against a real server on loopback.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from archiver.capture.run import Capturer
from archiver.core.model import CaptureStatus
from tests.support.runner import command
from tests.support.unchanged_site import VIDEO, serve_unchanged


@pytest.fixture
def server() -> Iterator[str]:
    with serve_unchanged() as url:
        yield url


def archiver(archive: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        command(*args, "--archive-dir", str(archive)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=os.environ.copy(),
    )


def finish(proc: subprocess.Popen[str]) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=120)
    return proc.returncode, out, err


def capture(archive: Path, url: str) -> dict[str, object]:
    code, out, err = finish(archiver(archive, "capture", url, "--format", "json"))
    assert code == 0, err
    summary: dict[str, object] = json.loads(out)
    return summary


def check_kept(archive: Path, summaries: list[dict[str, object]], url: str) -> None:
    """Every capture is whole: files, signed manifest, index rows, custody, verify, extract."""
    ids = [str(s["capture_id"]) for s in summaries]
    assert len(set(ids)) == len(ids)
    for s in summaries:
        assert s["status"] == "complete"
        assert s["warc_files"] and s["manifest"] and s["manifest_sha256"], s
        for path in s["warc_files"]:  # type: ignore[attr-defined]
            assert Path(path).is_file()
    code, out, err = finish(archiver(archive, "list", "--format", "json"))
    assert code == 0, err
    assert sorted(c["capture_id"] for c in json.loads(out)) == sorted(ids)

    events = [
        json.loads(line)
        for line in (archive / "custody" / "events.jsonl").read_text().splitlines()
        if line.strip()
    ]
    capture_events = {e["captures"][0]: e for e in events if e["action"] == "capture"}
    for s in summaries:
        event = capture_events[str(s["capture_id"])]
        assert event["result"] == s["status"]
        recorded = {f["path"] for f in event["files"]}
        assert any(p.endswith(".manifest.json") for p in recorded)

    code, out, err = finish(archiver(archive, "verify"))
    assert code == 0, out + err
    assert "everything holds" in out + err
    video = hashlib.sha256(VIDEO).hexdigest()
    for capture_id in ids:
        code, out, err = finish(archiver(archive, "verify", capture_id, "--deep"))
        assert code == 0, out + err
        target = archive.parent / f"{capture_id}.mp4"
        code, out, err = finish(
            archiver(archive, "extract", capture_id, "--url", f"{url}/v.mp4", "-o", str(target))
        )
        assert code == 0, out + err
        assert hashlib.sha256(target.read_bytes()).hexdigest() == video


def revisits(archive: Path, capture_id: str) -> int:
    code, out, err = finish(
        archiver(
            archive,
            "query",
            f"select count(*) as n from records where capture_id = '{capture_id}'"
            " and warc_type = 'revisit'",
            "--format",
            "json",
        )
    )
    assert code == 0, err
    n: int = json.loads(out)[0]["n"]
    return n


@pytest.mark.parametrize("path", ["/v.mp4", "/page"], ids=["direct-video", "page"])
def test_three_captures_in_a_row_are_all_kept(server: str, tmp_path: Path, path: str) -> None:
    archive = tmp_path / "archives"
    summaries = [capture(archive, server + path) for _ in range(3)]
    check_kept(archive, summaries, server)
    responses = 4 if path == "/page" else 1
    assert revisits(archive, str(summaries[0]["capture_id"])) == 0
    for later in summaries[1:]:  # nothing changed: every response is a revisit
        assert revisits(archive, str(later["capture_id"])) == responses
        assert later["video_count"] == 1


@pytest.mark.parametrize("path", ["/v.mp4", "/page"], ids=["direct-video", "page"])
def test_two_captures_at_once_are_both_kept(server: str, tmp_path: Path, path: str) -> None:
    archive = tmp_path / "archives"
    first = capture(archive, server + path)  # the originals, so both later ones may revisit
    running = [archiver(archive, "capture", server + path, "--format", "json") for _ in range(2)]
    results = [finish(p) for p in running]
    for code, _, err in results:
        assert code == 0, err
    check_kept(archive, [first, *(json.loads(out) for _, out, _ in results)], server)


def test_a_capture_that_could_not_be_signed_is_never_complete(
    server: str, make_capturer: Callable[..., Capturer], tmp_path: Path
) -> None:
    archive = tmp_path / "archives"
    archive.mkdir()
    (archive / "keys").write_text("a file where the public keys' folder should be")
    unsigned = make_capturer().capture(server + "/page")
    assert unsigned.warc_files and unsigned.manifest is None and unsigned.sign_error
    assert unsigned.status is CaptureStatus.FAILED
    assert unsigned.summary()["status"] == "failed"
    assert "not signed" in (unsigned.failure or "")
