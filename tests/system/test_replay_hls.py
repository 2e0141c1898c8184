"""A captured HLS stream plays back in pywb, in real headless Chromium (issue 18, replay).

The stream is real (ffmpeg: three renditions, 320x180, 640x360 and 1920x1080, of a
2-second test pattern), served on loopback and captured in HTTP mode: by default the best
rendition's segments only, the master's response record naming it
(``WARC-JSON-Metadata``); with ``--all-renditions`` every one.  The origin server is then
stopped: what plays comes from the archive.  pywb (collections made by ``wb-manager``, its
app served by a child process) replays the captures, and Chromium, driven over its
DevTools pipe by archiver's own client, plays the page's ``<video src="hls/master.m3u8">``
(Chromium plays HLS natively) in pywb's framed replay.

What the tests show:

- Chromium's player asks for the master with ``Range: bytes=0-``, and pywb serves a range
  of a record as it was captured (it switches to ``id_``: rewriterapp's ``_add_range``),
  so it does not rewrite the master: the player then starts with the first variant
  listed, whose segments a default capture does not hold, and stays empty.  The issue's
  symptom, with pywb as it is.
- With that Range left out for manifests (the middleware :data:`MANIFESTS_WHOLE`, as
  ``archiver replay`` does: ``archiver.ops.replay``'s MANIFESTS_WHOLE), pywb rewrites
  the master to the rendition the record names, and it plays, at that rendition's size,
  asking for no other segment.
- pywb given the same record without the header keeps the highest bandwidth (its own
  fallback): the same rendition here.  (wabac.js, ReplayWeb.page's engine, rewrites
  before it cuts a range; without the header it would keep 640x360.)
- A capture with ``--all-renditions`` plays in pywb as it is: whatever the player asks
  for is there.
"""

from __future__ import annotations

import contextlib
import gzip
import re
import socket
import subprocess
import sys
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from archiver.capture.run import Capturer
from archiver.core.model import Capture, CaptureOptions, CaptureStatus
from archiver.web.browser import Browser, LaunchSettings
from archiver.web.browser.page import Page
from tests.support.deterministic import FixedClock, fixed_signer, sequential_ids
from tests.support.hls import BEST, LADDER, hls_routes, segments
from tests.support.pages import PageServer
from tests.support.runner import BIN

TIMESTAMP = "20200812100000"  # the test clock's (tests/support/deterministic.py FixedClock)
STARTUP_SECONDS = 60  # pywb imports gevent and its templates: a few seconds on CI
PLAYED = 0.8  # seconds of the stream played: it plays
PLAY_SECONDS = 10  # at most, for that

MANIFESTS_WHOLE = r"""
def manifests_whole(app, collections):
    '''A request for an HLS or DASH manifest reaches pywb without its Range header:
    Chromium's player asks for ``bytes=0-``, and pywb serves a range of a record
    unrewritten, so the player would see every variant, not the one captured.'''

    def wrapped(environ, start_response):
        path = environ.get("PATH_INFO", "")
        if path.split("/")[1:2] in ([c] for c in collections) and path.lower().endswith(
            (".m3u8", ".mpd")
        ):
            environ.pop("HTTP_RANGE", None)
        return app(environ, start_response)

    return wrapped
"""

SERVER = (
    """
import sys
from gevent import monkey

monkey.patch_all()
import os
from gevent.pywsgi import WSGIServer

port, root, collections = int(sys.argv[1]), sys.argv[2], sys.argv[3].split(",")
os.chdir(root)
from pywb.apps.frontendapp import FrontEndApp
from pywb.utils.geventserver import RequestURIWSGIHandler
"""
    + MANIFESTS_WHOLE
    + """
app = manifests_whole(FrontEndApp(), [c for c in collections if c])
WSGIServer(("127.0.0.1", port), app, handler_class=RequestURIWSGIHandler).serve_forever()
"""
)
"""pywb's app (what ``wayback`` serves), wrapped in :data:`MANIFESTS_WHOLE` for the
collections named in ``argv[3]``; the others are served by pywb as it is."""

# the <video>'s state in pywb's replay frame; the first call starts it (muted: allowed)
STATE = """(() => {
  const frame = document.querySelector('iframe');
  const doc = frame ? frame.contentDocument : document;
  const v = doc && doc.querySelector('video');
  if (!v) return null;
  if (v.paused) v.play().catch(() => {});
  return {ready: v.readyState, time: v.currentTime, width: v.videoWidth,
          height: v.videoHeight, error: v.error ? v.error.code : null};
})()"""


@dataclass(frozen=True)
class Replay:
    port: int
    origin: str  # the captured site's base URL (no longer served)
    log: Path

    def url(self, collection: str, path: str) -> str:
        """pywb's framed replay of the page (what ``archiver replay`` prints)."""
        return f"http://127.0.0.1:{self.port}/{collection}/{TIMESTAMP}/{self.origin}{path}"

    def segments_served(self, collection: str) -> list[tuple[str, int]]:
        """(segment path, status) of each segment request pywb answered in ``collection``."""
        found = re.findall(
            rf'"GET /{collection}/\d+\w*/http://[^/]+(/hls/\S+\.ts) HTTP/1.1" (\d+)',
            self.log.read_text("utf-8", "replace"),
        )
        return [(path, int(status)) for path, status in found]


def _strip_metadata(source: Path, target: Path) -> int:
    """A copy of a WARC file (one gzip member per record) without WARC-JSON-Metadata
    fields; the blocks and their digests are unchanged.  Returns how many were removed."""
    data = source.read_bytes()
    out = bytearray()
    removed = 0
    while data:
        inflater = zlib.decompressobj(31)
        member = inflater.decompress(data)
        data = inflater.unused_data
        head, sep, block = member.partition(b"\r\n\r\n")
        head, n = re.subn(rb"\r\nWARC-JSON-Metadata: [^\r\n]*", b"", head)
        removed += n
        out += gzip.compress(head + sep + block, mtime=0)
    target.write_bytes(bytes(out))
    return removed


def _collection(root: Path, name: str, files: list[Path]) -> None:
    for args in (["init", name], ["add", name, *map(str, files)]):
        done = subprocess.run(
            [str(BIN / "wb-manager"), *args], cwd=root, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stdout + done.stderr


def _capture(folder: Path, url: str, **options: Any) -> Capture:
    return Capturer(
        CaptureOptions(
            archive_dir=folder, allow_private=True, timeout=5, platform_videos=False, **options
        ),
        clock=FixedClock(),
        new_id=lambda moment: "20200812100000-0123456789",
        new_record_id=sequential_ids(),
        hostname="test-host",
        signer=fixed_signer(),
    ).capture(url)


@contextlib.contextmanager
def _pywb(root: Path, whole: tuple[str, ...]) -> Iterator[tuple[int, Path]]:
    """pywb serving the collections under ``root`` on 127.0.0.1, those in ``whole`` with
    :data:`MANIFESTS_WHOLE`; yields its port and log.  Stopped however the test ends."""
    log = root / "pywb.log"
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-c", SERVER, str(port), str(root), ",".join(whole)],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while True:
            assert proc.poll() is None, log.read_text("utf-8", "replace")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, f"pywb did not listen in {STARTUP_SECONDS} s"
                time.sleep(0.1)
        yield port, log
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@pytest.fixture(scope="module")
def replay(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Replay]:
    folder = tmp_path_factory.mktemp("replay-hls")
    routes = hls_routes(folder / "media")
    with PageServer(routes=routes) as site:
        best = _capture(folder / "best", site.url("/index.html"))
        asked = set(site.paths())
        everything = _capture(folder / "all", site.url("/index.html"), all_renditions=True)
        origin = site.base
    for capture in (best, everything):
        assert capture.status is CaptureStatus.COMPLETE, capture.errors
    assert segments(routes, BEST) <= asked
    assert not any(segments(routes, rung) & asked for rung in LADDER[:-1])
    root = folder / "pywb"
    root.mkdir()
    stripped = []
    for path in best.warc_files:
        stripped.append(folder / f"stripped-{path.name}")
        assert _strip_metadata(path, stripped[-1]) == (path == best.warc_files[0])
    collections = {
        "plain": best.warc_files,  # pywb as it is
        "evidence": best.warc_files,  # manifests asked for whole
        "stripped": stripped,  # the same, without WARC-JSON-Metadata
        "everything": everything.warc_files,  # --all-renditions, pywb as it is
    }
    for name, files in collections.items():
        _collection(root, name, files)
    with _pywb(root, ("evidence", "stripped")) as (port, log):
        yield Replay(port, origin, log)


@pytest.fixture(scope="module")
def browser(chromium: str) -> Iterator[Browser]:
    with Browser(LaunchSettings(Path(chromium), viewport=(800, 600))) as running:
        yield running


def _watch(browser: Browser, url: str, seconds: float) -> list[dict[str, Any]]:
    """Open ``url`` and sample its video's state until it has played PLAYED seconds,
    failed, or ``seconds`` pass."""
    with Page.open(browser) as page:
        page.navigate(url, timeout=seconds)  # pywb's frame may load later than its video
        samples: list[dict[str, Any]] = []
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            state = browser.cdp.send(
                "Runtime.evaluate",
                {"expression": STATE, "returnByValue": True},
                session_id=page.session_id,
            )["result"].get("value")
            if state is not None:
                samples.append(state)
                if state["time"] >= PLAYED or state["error"] is not None:
                    break
            time.sleep(0.1)
    return samples


def _played(samples: list[dict[str, Any]]) -> dict[str, Any]:
    assert samples, "no <video> in the replayed page"
    last = samples[-1]
    assert last["error"] is None, samples
    assert last["ready"] >= 2 and last["time"] >= PLAYED, samples  # HAVE_CURRENT_DATA, playing
    assert any(0 < s["time"] < last["time"] for s in samples), samples  # time advanced
    return last


def test_pywb_as_it_is_serves_chromium_the_master_unrewritten(
    replay: Replay, browser: Browser
) -> None:
    """The issue's symptom: the player starts with the first variant, not captured."""
    # watched until the player gives up (or PLAY_SECONDS: a loaded machine is slow to ask)
    samples = _watch(browser, replay.url("plain", "/index.html"), PLAY_SECONDS)
    assert samples and all(s["ready"] < 2 and s["time"] == 0 for s in samples), samples
    first = LADDER[0]
    served = replay.segments_served("plain")
    for _ in range(50):  # pywb writes its access log a moment after it answers
        if served:
            break
        time.sleep(0.1)
        served = replay.segments_served("plain")
    assert served and all(f"/{first.name}/" in path for path, _ in served), served
    assert {status for _, status in served} == {404}


def test_the_captured_rendition_plays_when_manifests_are_rewritten(
    replay: Replay, browser: Browser
) -> None:
    last = _played(_watch(browser, replay.url("evidence", "/index.html"), PLAY_SECONDS))
    assert (last["width"], last["height"]) == (BEST.width, BEST.height)
    served = replay.segments_served("evidence")
    assert served and all(f"/{BEST.name}/" in path for path, _ in served), served
    assert {status for _, status in served} <= {200, 206}


def test_without_the_header_pywb_keeps_the_highest_bandwidth(
    replay: Replay, browser: Browser
) -> None:
    last = _played(_watch(browser, replay.url("stripped", "/index.html"), PLAY_SECONDS))
    assert (last["width"], last["height"]) == (BEST.width, BEST.height)
    served = replay.segments_served("stripped")
    assert served and all(f"/{BEST.name}/" in path for path, _ in served), served


def test_all_renditions_play_in_pywb_as_it_is(replay: Replay, browser: Browser) -> None:
    last = _played(_watch(browser, replay.url("everything", "/index.html"), PLAY_SECONDS))
    assert (last["width"], last["height"]) in {(r.width, r.height) for r in LADDER}
    served = replay.segments_served("everything")
    assert served and {status for _, status in served} <= {200, 206}, served
