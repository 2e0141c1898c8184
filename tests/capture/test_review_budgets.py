"""An adversarial review of the capture budgets, lazy manifests and live HLS (issue 15,
points 7 and 10): hostile local servers that try to keep a capture running anyway.
"""

from __future__ import annotations

import itertools
import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from archiver.capture.run import Capturer
from archiver.cli import app as cli_module
from archiver.core.model import CaptureStatus
from archiver.web.discover import MAX_SEGMENTS, iter_dash
from tests.support.rawserver import ok, raw_server

HLS = b"application/vnd.apple.mpegurl"


def idle_mpd(periods: int = 150) -> bytes:
    """About 25 kB: periods of 100,000 one-second segments whose URLs are no http(s)
    URLs (each made, none given to the capture, so none counted by its budget), then a
    period of two real segments."""
    junk = "".join(
        f'<Period duration="PT100000S"><AdaptationSet><SegmentTemplate media="mailto:{p}-'
        '$Number$" duration="1"/><Representation id="v" bandwidth="1"/></AdaptationSet>'
        "</Period>"
        for p in range(periods)
    )
    real = (
        '<Period duration="PT2S"><AdaptationSet><SegmentTemplate media="real/$Number$.m4s"'
        ' duration="1"/><Representation id="v" bandwidth="1"/></AdaptationSet></Period>'
    )
    return f'<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" type="static">{junk}{real}</MPD>'.encode()


@pytest.mark.timeout(60)
def test_segment_urls_that_give_nothing_do_not_keep_a_capture_parsing(tmp_path: Path) -> None:
    """150 periods x 100,000 mailto: segments: the old parser turned for minutes
    (about 3 s a period) before the first URL the budget could count; now the
    manifest is read until 100,000 such URLs, the capture is partial and says why."""
    mpd = idle_mpd()
    assert len(mpd) < 30_000
    page = ok(b'<html><video src="/v.mpd"></video></html>', b"text/html")

    def serve(conn: socket.socket, request: bytes) -> None:
        path = request.split(b" ", 2)[1]
        if path == b"/":
            conn.sendall(page)
        elif path == b"/v.mpd":
            conn.sendall(ok(mpd, b"application/dash+xml"))
        else:
            conn.sendall(ok(b"\x00" * 100, b"video/mp4"))

    archive = tmp_path / "a"
    started = time.monotonic()
    with raw_server(serve) as base:
        got = CliRunner().invoke(
            cli_module.cli,
            ["capture", base + "/", "--archive-dir", str(archive), "--format", "json"],
        )
    took = time.monotonic() - started
    assert got.exit_code == 0, got.output
    assert took < 15, took
    summary = json.loads(got.stdout.splitlines()[0])
    assert summary["status"] == "partial"
    (error,) = summary["errors"]
    assert error["url"] == base + "/v.mpd"
    assert "repeat others or are no http(s) URLs: the rest of it was not read" in error["reason"]
    # what is stored holds: archiver verify and warcio check
    assert (
        CliRunner().invoke(cli_module.cli, ["verify", "--archive-dir", str(archive)]).exit_code == 0
    )
    for path in summary["warc_files"]:
        check = subprocess.run(
            [Path(sys.executable).parent / "warcio", "check", path], capture_output=True
        )
        assert check.returncode == 0, check.stdout


def test_a_representation_past_the_segment_limit_says_so() -> None:
    """More than MAX_SEGMENTS segments in one representation: the first ones, and a
    note of the cut (it was silent: with --max-requests 0 the rest vanished)."""
    mpd = (
        '<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" type="static"><Period duration="PT'
        f'{MAX_SEGMENTS + 5}S"><AdaptationSet><SegmentTemplate media="s/$Number$.m4s" '
        'duration="1"/><Representation id="v" bandwidth="1"/></AdaptationSet></Period></MPD>'
    ).encode()
    cut: list[str] = []
    items = iter_dash(mpd, "http://h/v.mpd", cut)
    last = next(itertools.islice(items, MAX_SEGMENTS - 1, None))
    assert last.url == f"http://h/s/{MAX_SEGMENTS}.m4s"
    assert cut == []
    assert list(items) == []
    assert cut == [f"representation 'v' names more than {MAX_SEGMENTS} segments: only the first"
                   f" {MAX_SEGMENTS} were taken"]  # fmt: skip


@pytest.mark.parametrize("value", ["nan", "NaN"])
def test_a_capture_time_of_nan_is_refused(tmp_path: Path, value: str) -> None:
    """``--max-capture-time nan`` passed click's range check: the deadline was never
    met (no budget ever said it ran out) yet every request was cut after a millisecond."""
    page = ok(b'<html><img src="/i.png"></html>', b"text/html")

    def serve(conn: socket.socket, request: bytes) -> None:
        if request.startswith(b"GET / "):
            conn.sendall(page)
        else:
            time.sleep(0.1)
            conn.sendall(ok(b"img", b"image/png"))

    with raw_server(serve) as base:
        args = ["capture", base + "/", "--archive-dir", str(tmp_path / "a")]
        got = CliRunner().invoke(cli_module.cli, [*args, "--max-capture-time", value])
        assert got.exit_code == 2, got.output
        assert "max_capture_time must be positive" in got.output
        config = tmp_path / "config.toml"
        config.write_text("[capture]\nallow_private = true\nmax_capture_time = nan\n", "utf-8")
        got = CliRunner().invoke(cli_module.cli, args, env={"ARCHIVER_CONFIG": str(config)})
        assert got.exit_code == 2, got.output


class Redirecting:
    """A live playlist whose every reload redirects to a URL never seen before, which
    serves it once."""

    def __init__(self) -> None:
        self.counter = itertools.count()
        self.served: set[bytes] = set()
        self.lock = threading.Lock()
        self.page = ok(b'<html><video src="/live.m3u8"></video></html>', b"text/html")
        self.playlist = ok(b"#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1,\nseg.ts\n", HLS)

    def __call__(self, conn: socket.socket, request: bytes) -> None:
        path = request.split(b" ", 2)[1]
        if path == b"/":
            conn.sendall(self.page)
        elif path.startswith(b"/live.m3u8"):
            with self.lock:
                fresh = path not in self.served
                self.served.add(path)
                n = next(self.counter)
            if fresh:
                conn.sendall(self.playlist)
            else:
                conn.sendall(
                    b"HTTP/1.1 302 Found\r\nLocation: /live.m3u8?n=%d\r\n"
                    b"Content-Length: 0\r\n\r\n" % n
                )
        else:
            conn.sendall(ok(b"\x00" * 100, b"video/mp2t"))


def test_live_duration_holds_when_each_reload_redirects_elsewhere(
    make_capturer: Callable[..., Capturer],
) -> None:
    """Each reload landed on a new URL, which started --live-duration afresh: the
    capture followed the stream until its time budget (two hours by default)."""
    started = time.monotonic()
    with raw_server(Redirecting()) as base:
        result = make_capturer(live_duration=2, max_capture_time=10).capture(base + "/")
    took = time.monotonic() - started
    assert took < 5, took
    assert result.status is CaptureStatus.COMPLETE
    (live,) = result.live
    assert live["snapshot"] is False and live["followed_seconds"] <= 2


class Live:
    """A live playlist that never changes and never ends."""

    def __call__(self, conn: socket.socket, request: bytes) -> None:
        path = request.split(b" ", 2)[1]
        if path == b"/":
            conn.sendall(ok(b'<html><video src="/live.m3u8"></video></html>', b"text/html"))
        elif path == b"/live.m3u8":
            conn.sendall(ok(b"#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1,\nseg.ts\n", HLS))
        else:
            conn.sendall(ok(b"\x00" * 100, b"video/mp2t"))


def test_a_deadline_that_cuts_live_following_short_makes_the_capture_partial(
    make_capturer: Callable[..., Capturer],
) -> None:
    """--live-duration 30 under a 2 s time budget: the following stopped at the
    deadline, yet the capture said complete and no budget ran out."""
    started = time.monotonic()
    with raw_server(Live()) as base:
        result = make_capturer(live_duration=30, max_capture_time=2).capture(base + "/")
    assert time.monotonic() - started < 5
    assert result.status is CaptureStatus.PARTIAL
    assert result.budget_spent == ["the capture's time budget ran out (--max-capture-time 2 s)"]
    assert result.summary()["budget_spent"] == result.budget_spent


def test_references_not_followed_are_listed_up_to_a_bound(
    make_capturer: Callable[..., Capturer],
) -> None:
    """Every stylesheet could list 1,000 javascript: URLs, and a capture could fetch
    50,000 stylesheets: fifty million not_followed entries (500 stylesheets took 762 MB).
    Now 10,000 are listed one by one, then one line counts the rest."""
    sheets = 11
    page = ok(
        b"<html>"
        + b"".join(b'<link rel="stylesheet" href="/c%d.css">' % i for i in range(sheets))
        + b"</html>",
        b"text/html",
    )
    css = ok(
        b"".join(b"a%d{background:url(javascript:%d)}" % (i, i) for i in range(1000)), b"text/css"
    )

    def serve(conn: socket.socket, request: bytes) -> None:
        conn.sendall(page if request.startswith(b"GET / ") else css)

    with raw_server(serve) as base:
        result = make_capturer().capture(base + "/")
    assert result.status is CaptureStatus.COMPLETE
    listed = result.not_followed
    assert len(listed) == 10_001
    assert listed[-1]["reason"] == (
        "this and 999 more references not followed were not listed one by one"
        " (at most 10000 a capture)"
    )
    assert result.summary()["not_followed"][-1] == listed[-1]
