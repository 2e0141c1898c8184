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
import sys
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from archiver.capture import Capturer
from archiver.model import CaptureStatus

# Every payload is over dedup's 1 KiB floor, so a recapture stores nothing but revisits.
VIDEO = bytes(range(256)) * 40 + b"\x00\x00\x00\x18ftypmp42"
IMAGE = b"\x89PNG\r\n\x1a\n" + bytes(255 - i % 256 for i in range(3000))
STYLE = b"body { color: #222; }\n" + b"/* padding so the file is over 1 KiB */\n" * 40
PAGE = (
    b"<!doctype html><html><head><title>Unchanged</title>"
    b'<link rel="stylesheet" href="/s.css"></head><body>'
    + b"<p>An article whose every response is over a kilobyte.</p>" * 30
    + b'<img src="/i.png"><video src="/v.mp4" controls></video></body></html>'
)
ROUTES = {
    "/page": (PAGE, "text/html; charset=utf-8"),
    "/s.css": (STYLE, "text/css"),
    "/i.png": (IMAGE, "image/png"),
    "/v.mp4": (VIDEO, "video/mp4"),
}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        body, content_type = ROUTES.get(self.path, (b"not here", "text/plain"))
        self.send_response(200 if self.path in ROUTES else 404)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def archiver(archive: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "archiver", *args, "--archive-dir", str(archive)],
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
