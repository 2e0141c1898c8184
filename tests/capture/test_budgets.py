"""Every capture ends: one budget of requests, bytes and time, lazy segment lists, live HLS.

A 23 kB DASH manifest can name ten million segments, an HLS playlist a million; the
parsers make them one at a time, and the capture stops making requests when its budget
runs out, lists what it left out and says the capture is partial (issue 15, points 7
and 10).  The same manifests with the default options: ``benchmarks/bench_budget.py``
(and the slow test at the end).
"""

from __future__ import annotations

import itertools
import json
import os
import socket
import subprocess
import sys
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from archiver.capture.run import Capturer
from archiver.cli import app as cli_module
from archiver.core.model import Capture, CaptureOptions, CaptureStatus
from archiver.web.discover import hls_playlist, iter_dash, iter_hls
from tests.support.paths import ROOT
from tests.support.rawserver import ok, raw_server
from tests.support.warcs import read_all

# ------------------------------------------------------------- hostile manifests


def hostile_mpd(periods: int = 100, per_period: int = 100_000) -> bytes:
    """About 18 kB naming periods x per_period segments (ten million by default): each
    period's SegmentTemplate gives one-second segments over its whole duration."""
    parts = ['<?xml version="1.0"?>\n<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" type="static">\n']
    for p in range(periods):
        parts.append(
            f'<Period id="p{p}" duration="PT{per_period}S">'
            f'<SegmentTemplate media="p{p}/$Number$.m4s" duration="1"/>'
            f'<AdaptationSet><Representation id="v{p}" bandwidth="9"/></AdaptationSet>'
            "</Period>\n"
        )
    parts.append("</MPD>\n")
    return "".join(parts).encode()


def hostile_mpd_repeats(asets: int = 10, repeats: int = 1_000_000) -> bytes:
    """The same with SegmentTimeline repeats: asets x (repeats) segments in one period."""
    body = "".join(
        f'<AdaptationSet><Representation id="a{i}" bandwidth="1"><SegmentTemplate '
        f'media="a{i}/$Time$.m4s"><SegmentTimeline><S t="0" d="1" r="{repeats - 1}"/>'
        "</SegmentTimeline></SegmentTemplate></Representation></AdaptationSet>"
        for i in range(asets)
    )
    return (f'<MPD xmlns="urn:mpeg:dash:schema:mpd:2011"><Period>{body}</Period></MPD>').encode()


def million_hls(segments: int = 1_000_000, *, live: bool = False) -> bytes:
    head = b"#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:0\n"
    lines = b"".join(b"#EXTINF:2.0,\ns%d.ts\n" % i for i in range(segments))
    return head + lines + (b"" if live else b"#EXT-X-ENDLIST\n")


SEGMENT = ok(b"\x00" * 200, b"video/mp4")


def fetched(result: Capture, role: str | None = None) -> list[str]:
    """The URLs of the responses a capture stored (of one role)."""
    return [
        r.url or ""
        for r in result.records
        if r.warc_type in ("response", "revisit") and (role is None or r.role == role)
    ]


class Counting:
    """Serves a page with a video, the video's manifest, and a small body for every
    other path; counts the requests it was sent."""

    def __init__(self, manifest: bytes, kind: bytes, name: bytes) -> None:
        self.page = ok(b'<html><video src="/%s"></video></html>' % name, b"text/html")
        self.manifest = ok(manifest, kind)
        self.name = b"/" + name
        self.requests = 0
        self.lock = threading.Lock()

    def __call__(self, conn: socket.socket, request: bytes) -> None:
        with self.lock:
            self.requests += 1
        path = request.split(b" ", 2)[1]
        if path == b"/":
            conn.sendall(self.page)
        elif path == self.name:
            conn.sendall(self.manifest)
        else:
            conn.sendall(SEGMENT)


# ----------------------------------------------------------------- the parsers


def _lazily(items: Iterator[object], n: int) -> tuple[list[object], float, int]:
    tracemalloc.start()
    started = time.perf_counter()
    try:
        first = list(itertools.islice(items, n))
        took = time.perf_counter() - started
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return first, took, peak


def test_the_first_segments_of_ten_million_come_at_once() -> None:
    mpd = hostile_mpd()
    assert len(mpd) < 25_000  # an 18 kB manifest ...
    first, took, peak = _lazily(iter_dash(mpd, "http://h/v.mpd"), 10)
    assert [f.url for f in first[:2]] == ["http://h/p0/1.m4s", "http://h/p0/2.m4s"]  # type: ignore[attr-defined]
    assert took < 0.5 and peak < 5_000_000, (took, peak)
    # ... naming ten million segments: far into it, still one at a time
    small = hostile_mpd(periods=3, per_period=1000)
    late = next(itertools.islice(iter_dash(small, "http://h/v.mpd"), 2500, None))
    assert late.url == "http://h/p2/501.m4s"
    repeats = hostile_mpd_repeats()
    first, took, peak = _lazily(iter_dash(repeats, "http://h/v.mpd"), 10)
    assert len(first) == 10 and took < 0.5 and peak < 5_000_000, (took, peak)
    assert [f.url for f in first[:2]] == ["http://h/a0/0.m4s", "http://h/a0/1.m4s"]  # type: ignore[attr-defined]


def test_the_first_segments_of_a_million_segment_playlist_come_at_once() -> None:
    playlist = million_hls()
    first, took, peak = _lazily(iter_hls(playlist, "http://h/m.m3u8"), 10)
    assert [f.url for f in first[:2]] == ["http://h/s0.ts", "http://h/s1.ts"]  # type: ignore[attr-defined]
    # the decoded text of the playlist itself (about 20 MB) and nothing per segment
    assert took < 1.0 and peak < 3 * len(playlist), (took, peak, len(playlist))


def test_a_playlist_without_endlist_is_live() -> None:
    live = hls_playlist(million_hls(3, live=True))
    assert live is not None and live.live and live.target_duration == 2.0
    ended = hls_playlist(million_hls(3))
    assert ended is not None and not ended.live
    assert hls_playlist(b"#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\nv.m3u8\n") is None
    assert hls_playlist(b"<html>") is None


# ------------------------------------------------------------ capture budgets


@pytest.mark.parametrize(
    ("manifest", "kind", "name"),
    [
        (hostile_mpd(), b"application/dash+xml", b"v.mpd"),
        (hostile_mpd_repeats(), b"application/dash+xml", b"v.mpd"),
        (million_hls(), b"application/vnd.apple.mpegurl", b"m.m3u8"),
    ],
    ids=["dash-periods", "dash-repeats", "hls-million"],
)
def test_a_request_budget_ends_a_hostile_manifest_s_capture(
    make_capturer: Callable[..., Capturer], manifest: bytes, kind: bytes, name: bytes
) -> None:
    server = Counting(manifest, kind, name)
    started = time.monotonic()
    with raw_server(server) as base:
        result = make_capturer(max_requests=50).capture(base + "/")
    assert time.monotonic() - started < 20
    assert server.requests == 50
    assert result.status is CaptureStatus.PARTIAL
    assert result.budget_spent == ["the capture's request budget ran out (--max-requests 50)"]
    responses = [r for r in result.records if r.warc_type in ("response", "revisit")]
    assert len(responses) == 50
    left = [n for n in result.not_followed if "request budget" in n["reason"]]
    # what was left out is listed, one by one up to a bound, then in one line
    assert 1000 <= len(left) <= 1002
    assert left[0]["found_on"] == base + "/" + name.decode()
    assert "every later reference" in left[-1]["reason"]
    summary = result.summary()
    assert summary["budget_spent"] == result.budget_spent
    assert left[0] in summary["not_followed"]
    (meta,) = [r for r in read_all(result.warc_files) if r.type == "metadata"]
    doc = meta.json()
    assert doc["budget_spent"] == result.budget_spent
    assert doc["options"]["max_requests"] == 50


def test_a_size_budget_cuts_the_body_that_reaches_it(
    make_capturer: Callable[..., Capturer],
) -> None:
    images = b"".join(b'<img src="/i%d.png">' % i for i in range(10))
    html = b"<html>" + images + b"</html>"
    page = ok(html, b"text/html")
    image = ok(b"\x89PNG" + b"\x00" * 996, b"image/png")

    def serve(conn: socket.socket, request: bytes) -> None:
        conn.sendall(page if request.startswith(b"GET / ") else image)

    with raw_server(serve) as base:
        result = make_capturer(max_capture_size=len(html) + 2500, concurrency=1).capture(base + "/")
    assert result.status is CaptureStatus.PARTIAL
    reason = f"the capture's size budget ran out (--max-capture-size {len(html) + 2500} bytes)"
    assert result.budget_spent == [reason]
    stored = [r for r in result.records if r.warc_type == "response" and r.role != "page"]
    assert [r.payload_length for r in stored] == [1000, 1000, 500]
    assert [r.truncated for r in stored] == [None, None, "length"]
    left = [n["url"] for n in result.not_followed if n["reason"] == reason]
    assert left == [f"{base}/i{i}.png" for i in range(3, 10)]


def test_the_time_budget_cuts_running_requests_and_starts_no_more(
    make_capturer: Callable[..., Capturer],
) -> None:
    def trickle(conn: socket.socket) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: video/mp4\r\nContent-Length: 9999\r\n\r\n")
        for _ in range(200):
            conn.sendall(b"x")
            time.sleep(0.05)

    page = ok(
        b'<html><video src="/slow.mp4"></video>'
        + b"".join(b'<img src="/i%d.png">' % i for i in range(5))
        + b"</html>",
        b"text/html",
    )

    def serve(conn: socket.socket, request: bytes) -> None:
        path = request.split(b" ", 2)[1]
        if path == b"/":
            conn.sendall(page)
        elif path == b"/slow.mp4":
            trickle(conn)
        else:
            time.sleep(0.6)  # the images come slowly: the deadline falls while they wait
            conn.sendall(ok(b"img", b"image/png"))

    started = time.monotonic()
    with raw_server(serve) as base:
        result = make_capturer(max_capture_time=1.0, concurrency=2).capture(base + "/")
    took = time.monotonic() - started
    assert took < 4, took
    assert result.status is CaptureStatus.PARTIAL
    reason = "the capture's time budget ran out (--max-capture-time 1 s)"
    assert result.budget_spent == [reason]
    (video,) = [
        r for r in result.records if r.url == f"{base}/slow.mp4" and r.warc_type == "response"
    ]
    assert video.truncated == "time"
    assert [n for n in result.not_followed if n["reason"] == reason]


def test_budget_options_on_the_command_line_and_in_the_config_file(tmp_path: Path) -> None:
    server = Counting(hostile_mpd(), b"application/dash+xml", b"v.mpd")
    config = tmp_path / "config.toml"
    config.write_text("[capture]\nallow_private = true\nmax_requests = 7\n", "utf-8")
    env = {"ARCHIVER_CONFIG": str(config)}
    with raw_server(server) as base:
        got = CliRunner().invoke(
            cli_module.cli,
            ["capture", base + "/", "--archive-dir", str(tmp_path / "a"), "--format", "json"],
            env=env,
        )
    assert got.exit_code == 0, got.output
    summary = json.loads(got.stdout.splitlines()[0])
    assert summary["status"] == "partial"
    assert summary["budget_spent"] == ["the capture's request budget ran out (--max-requests 7)"]
    assert summary["not_followed"][0]["url"].startswith(base + "/p0/")
    assert server.requests == 7
    config.write_text('[capture]\nmax_requests = "lots"\n', "utf-8")
    got = CliRunner().invoke(cli_module.cli, ["capture", "http://example.org/"], env=env)
    assert got.exit_code == 2
    assert "max_requests must be a whole number" in got.output
    got = CliRunner().invoke(
        cli_module.cli, ["capture", "http://example.org/", "--max-requests", "-1"]
    )
    assert got.exit_code == 2 and "--max-requests" in got.output


def test_default_budgets_are_recorded() -> None:
    options = CaptureOptions(archive_dir=Path("/nonexistent"))
    recorded = options.recorded()
    assert recorded["max_requests"] == 50_000
    assert recorded["max_capture_size"] == 20 * 1024**3
    assert recorded["max_capture_time"] == 7200.0
    assert recorded["live_duration"] == 0.0


# ------------------------------------------------------------------ live HLS


class LivePlaylist:
    """A live HLS media playlist: a new one-second segment every `every` seconds, the
    last five listed (a sliding window), never an #EXT-X-ENDLIST."""

    def __init__(self, every: float = 0.5) -> None:
        self.every = every
        self.started = time.monotonic()
        self.reloads = 0
        self.page = ok(b'<html><video src="/live.m3u8"></video></html>', b"text/html")

    def playlist(self) -> bytes:
        newest = int((time.monotonic() - self.started) / self.every) + 3
        first = max(0, newest - 5)
        lines = b"".join(b"#EXTINF:1.0,\nseg%d.ts\n" % i for i in range(first, newest))
        return (
            b"#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:1\n"
            b"#EXT-X-MEDIA-SEQUENCE:%d\n" % first + lines
        )

    def __call__(self, conn: socket.socket, request: bytes) -> None:
        path = request.split(b" ", 2)[1]
        if path == b"/":
            conn.sendall(self.page)
        elif path == b"/live.m3u8":
            self.reloads += 1
            conn.sendall(ok(self.playlist(), b"application/vnd.apple.mpegurl"))
        else:
            conn.sendall(SEGMENT)


def test_a_live_playlist_is_recorded_as_a_snapshot_marked_live(
    make_capturer: Callable[..., Capturer],
) -> None:
    server = LivePlaylist()
    with raw_server(server) as base:
        result = make_capturer().capture(base + "/")
    assert result.status is CaptureStatus.COMPLETE
    segments = fetched(result, "video-segment")
    assert sorted(segments) == [f"{base}/seg{i}.ts" for i in range(3)]
    assert server.reloads == 1
    (live,) = result.live
    assert live["url"] == base + "/live.m3u8"
    assert live["snapshot"] is True and live["polls"] == 1 and live["target_duration"] == 1.0
    assert result.summary()["live"] == result.live
    (meta,) = [r for r in read_all(result.warc_files) if r.type == "metadata"]
    assert meta.json()["live"] == result.live


def test_live_duration_follows_a_growing_playlist(
    make_capturer: Callable[..., Capturer],
) -> None:
    server = LivePlaylist(every=0.5)
    started = time.monotonic()
    with raw_server(server) as base:
        result = make_capturer(live_duration=2.5).capture(base + "/")
    took = time.monotonic() - started
    assert 2.0 <= took < 6, took
    assert result.status is CaptureStatus.COMPLETE
    (live,) = result.live
    assert live["snapshot"] is False and live["polls"] == server.reloads >= 3
    assert 2.0 <= live["followed_seconds"] <= 2.5
    segments = set(fetched(result, "video-segment"))
    # more than the first snapshot's three: the ones that appeared while it was followed
    assert {f"{base}/seg{i}.ts" for i in range(7)} <= segments
    assert fetched(result).count(base + "/live.m3u8") == server.reloads


def test_live_polling_stays_within_the_request_budget(
    make_capturer: Callable[..., Capturer],
) -> None:
    server = LivePlaylist(every=0.5)
    with raw_server(server) as base:
        result = make_capturer(live_duration=30, max_requests=8).capture(base + "/")
    assert server.reloads + 1 + len(fetched(result, "video-segment")) <= 8
    assert result.status is CaptureStatus.PARTIAL
    assert result.budget_spent == ["the capture's request budget ran out (--max-requests 8)"]


def test_the_text_report_says_live_and_partial(tmp_path: Path) -> None:
    server = LivePlaylist()
    with raw_server(server) as base:
        got = CliRunner().invoke(
            cli_module.cli,
            ["capture", base + "/", "--archive-dir", str(tmp_path / "a"), "--max-requests", "3"],
        )
    assert got.exit_code == 0, got.output
    assert f"live stream: {base}/live.m3u8: recorded once, as a snapshot" in got.stderr
    assert "partial: the capture's request budget ran out (--max-requests 3)" in got.stderr


# --------------------------------------------------- default options (slow)


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.parametrize("kind", ["dash", "hls"])
def test_default_options_end_a_hostile_capture_within_five_minutes(kind: str) -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_budget.py"), "--only", kind, "--json"],
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.returncode == 0, proc.stderr
    (figures,) = json.loads(proc.stdout)
    assert figures["status"] == "partial"
    assert figures["seconds"] < 300, figures
    assert figures["peak_rss_mb"] < 1024, figures
