"""Large bodies stream with flat memory; a terminal sees progress, a pipe does not."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.support.site import FixtureSite
from tests.support.terminal import stderr_on_terminal
from tests.support.warcs import read_all, responses_by_url

MEASURE_RSS = (
    "import resource, subprocess, sys\n"
    "code = subprocess.run(sys.argv[1:]).returncode\n"
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr)\n"
    "sys.exit(code)\n"
)


def capture_measuring_rss(url: str, archive: Path) -> tuple[dict[str, object], int]:
    """Run ``archiver capture`` in its own process; return its summary and peak RSS (KB)."""
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            MEASURE_RSS,
            sys.executable,
            "-m",
            "archiver",
            "capture",
            url,
            "--archive-dir",
            str(archive),
            "--format",
            "json",
            "--timeout",
            "10",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    peak_kb = int(result.stderr.strip().splitlines()[-1])
    return json.loads(result.stdout), peak_kb


@pytest.mark.slow
def test_a_large_video_is_captured_exactly_with_flat_memory(tmp_path: Path) -> None:
    size = int(os.environ.get("ARCHIVER_LARGE_MB", "300")) * 1024 * 1024
    with FixtureSite(slow_seconds=0.1, large_video_bytes=size) as site:
        url = site.url(site.LARGE_VIDEO)
        summary, peak_kb = capture_measuring_rss(url, tmp_path / "archives")
        expected = site.expected_payload_sha256(site.LARGE_VIDEO)
    assert summary["status"] == "complete"
    assert summary["total_bytes"] == size
    assert peak_kb < 150 * 1024, f"peak RSS {peak_kb / 1024:.0f} MB"
    files = [Path(p) for p in summary["warc_files"]]  # type: ignore[union-attr]
    response = responses_by_url(read_all(files))[url]
    assert response.payload_sha256 == expected
    check = subprocess.run([Path(sys.executable).parent / "warcio", "check", str(files[0])])
    assert check.returncode == 0


def test_memory_stays_small_for_a_page_with_a_video(tmp_path: Path) -> None:
    """The default-run version: a 24 MB video, well past every in-memory threshold."""
    with FixtureSite(slow_seconds=0.1, large_video_bytes=24 * 1024 * 1024) as site:
        summary, peak_kb = capture_measuring_rss(site.url(site.ENTRY), tmp_path / "archives")
        expected = site.expected_payload_sha256(site.LARGE_VIDEO)
        url = site.url(site.LARGE_VIDEO)
    assert summary["status"] == "partial"  # the fixture's never-answering script
    assert peak_kb < 150 * 1024
    videos = {v["url"]: v for v in summary["videos"]}  # type: ignore[union-attr]
    assert videos[url]["payload_sha256"] == expected


def test_a_batch_shows_how_many_pages_are_done(tmp_path: Path, site: FixtureSite) -> None:
    urls = [site.url(site.PLAIN), site.url(site.PLAIN) + "?2", site.url(site.PLAIN) + "?3"]
    status, text = stderr_on_terminal("capture", *urls, "--archive-dir", str(tmp_path / "a"))
    assert status == 0
    assert "1/3 pages" in text and "2/3 pages" in text and "3/3 pages" in text
    assert "batch of 3: 3 complete" in text


def test_progress_is_drawn_on_a_terminal_only(tmp_path: Path, site: FixtureSite) -> None:
    status, text = stderr_on_terminal(
        "capture", site.url(site.PLAIN), "--archive-dir", str(tmp_path / "a")
    )
    assert status == 0
    assert "fetched" in text and "/s" in text  # counts, bytes and rate
    piped = subprocess.run(
        [
            sys.executable,
            "-m",
            "archiver",
            "capture",
            site.url(site.PLAIN),
            "--archive-dir",
            str(tmp_path / "b"),
        ],
        capture_output=True,
        text=True,
    )
    assert piped.returncode == 0 and piped.stderr == ""


class _Trickle(BaseHTTPRequestHandler):
    """A 96 kB video with its Content-Length, sent in 12 pieces over about 1.2 s."""

    protocol_version = "HTTP/1.1"
    BODY = bytes(range(256)) * 384

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "video/mp4")
        self.send_header("Content-Length", str(len(self.BODY)))
        self.end_headers()
        step = len(self.BODY) // 12
        for start in range(0, len(self.BODY), step):
            self.wfile.write(self.BODY[start : start + step])
            self.wfile.flush()
            time.sleep(0.1)

    def log_message(self, *args: object) -> None:
        pass


def test_progress_shows_the_total_and_a_percentage_when_the_size_is_known(
    tmp_path: Path,
) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Trickle)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/clip.mp4"
        status, text = stderr_on_terminal("capture", url, "--archive-dir", str(tmp_path / "a"))
    finally:
        server.shutdown()
        server.server_close()
    assert status == 0, text
    percents = [int(p) for p in re.findall(r" of 98\.3 KB \((\d+)%\)", text)]
    assert percents, text
    assert percents == sorted(percents) and all(0 <= p <= 100 for p in percents)
