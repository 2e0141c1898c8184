"""An article a browser can really show, for replay tests: text, a picture and a video
that decode, served on loopback, captured, and checked in headless Chromium.

The fixture site's media (tests/support/site.py) are stand-ins no decoder accepts; here
the picture is a real PNG, and the video a real H.264 MP4 made by ffmpeg.  ``/other`` is
a second page holding the same picture and video, so that its capture stores them as
revisits of the first's records.
"""

from __future__ import annotations

import functools
import random
import struct
import subprocess
import tempfile
import threading
import time
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any

from archiver.capture.run import Capturer
from archiver.core.model import Capture, CaptureOptions
from archiver.web.browser import Page
from tests.support.deterministic import FixedClock, fixed_signer, sequential_ids

HEADLINE = "Пратэст у Мінску: відэадоказ"  # noqa: RUF001 (Belarusian)
PARAGRAPH = "The replayed article keeps its words, its picture and its video."
ARTICLE = f"""<!doctype html>
<html lang="be"><head><meta charset="utf-8"><title>Replay article</title></head>
<body><h1 id="headline">{HEADLINE}</h1>
<p id="words">{PARAGRAPH}</p>
<img id="photo" src="/img/photo.png" alt="A photo" width="64" height="48">
<video id="clip" src="/media/clip.mp4" muted preload="auto" controls></video>
<p><a href="/other">Another article</a></p>
</body></html>
"""
OTHER = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Other article</title></head>
<body><h1 id="headline">The same video, elsewhere</h1>
<img id="photo" src="/img/photo.png" alt="The same photo" width="64" height="48">
<video id="clip" src="/media/clip.mp4" muted preload="auto" controls></video>
</body></html>
"""


@functools.cache
def clip_mp4() -> bytes:
    """A real H.264 MP4 (160x120, 1 s, ``moov`` first as sites serve it) made by ffmpeg
    (imageio-ffmpeg's binary, a core dependency): about 14 KB, in a tenth of a second."""
    import imageio_ffmpeg  # type: ignore[import-untyped,unused-ignore]

    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "clip.mp4"
        done = subprocess.run(
            [
                imageio_ffmpeg.get_ffmpeg_exe(),
                *("-hide_banner", "-loglevel", "error", "-y", "-bitexact"),
                *("-f", "lavfi", "-i", "testsrc2=size=160x120:rate=25:duration=1"),
                *("-c:v", "libx264", "-preset", "ultrafast", "-profile:v", "baseline"),
                *("-pix_fmt", "yuv420p", "-g", "25", "-crf", "38", "-movflags", "+faststart"),
                str(out),
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        return out.read_bytes()


def png(width: int = 64, height: int = 48, seed: str = "replay") -> bytes:
    """A real RGB PNG of noise (it does not compress: over 1 KiB, so it is deduplicated)."""
    pixels = random.Random(seed).randbytes(width * height * 3)
    raw = b"".join(
        b"\x00" + pixels[row * width * 3 : (row + 1) * width * 3] for row in range(height)
    )

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw))


def evaluate(page: Page, expression: str, *, timeout: float = 10.0) -> Any:
    """The value of ``expression`` in the page's main frame (promises awaited)."""
    answer = page.cdp.send(
        "Runtime.evaluate",
        {"expression": expression, "awaitPromise": True, "returnByValue": True},
        session_id=page.session_id,
        timeout=timeout,
    )
    if "exceptionDetails" in answer:
        raise AssertionError(f"script failed: {answer['exceptionDetails']}")
    return (answer.get("result") or {}).get("value")


class ReplaySite:
    """The article (``/article``), the other page (``/other``), the picture and the
    video, on 127.0.0.1; ``paths`` lists what was asked for."""

    def __init__(self, video: bytes) -> None:
        self.routes = {
            "/article": ("text/html; charset=utf-8", ARTICLE.encode()),
            "/other": ("text/html; charset=utf-8", OTHER.encode()),
            "/img/photo.png": ("image/png", png()),
            "/media/clip.mp4": ("video/mp4", video),
        }
        self.paths: list[str] = []
        site = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                site.paths.append(self.path)
                content_type, body = site.routes.get(self.path, ("text/plain", b"not found"))
                self.send_response(200 if self.path in site.routes else 404)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def __enter__(self) -> ReplaySite:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.server.shutdown()
        self.server.server_close()


def capture(archive_dir: Path, url: str, capture_id: str, day: int) -> Capture:
    """``url`` captured into ``archive_dir`` as ``capture_id``, on 2020-08-``day``
    at 10:00 UTC (a fixed clock and key, as tests/conftest.py's capturer)."""
    capturer = Capturer(
        CaptureOptions(archive_dir=archive_dir, timeout=5.0, allow_private=True),
        clock=FixedClock(datetime(2020, 8, day, 10, 0, tzinfo=UTC)),
        new_id=lambda moment: capture_id,
        new_record_id=sequential_ids(day * 1000),
        hostname="test-host",
        signer=fixed_signer(),
    )
    return capturer.capture(url)


@dataclass
class Captured:
    """An archive holding the article (capture ``first``, 2020-08-12) and the other page
    (``second``, 2020-08-13), taken from a site stopped since: whatever replay shows
    comes from the archive."""

    archive: Path
    base: str  # the stopped site's http://127.0.0.1:port
    article_url: str
    other_url: str
    first: Capture
    second: Capture
    video: bytes


FIRST = "20200812100000-00000000a1"
SECOND = "20200813100000-00000000b2"


def captured_archive(archive_dir: Path) -> Captured:
    video = clip_mp4()
    with ReplaySite(video) as site:
        first = capture(archive_dir, site.url("/article"), FIRST, 12)
        second = capture(archive_dir, site.url("/other"), SECOND, 13)
        assert first.status.value == "complete", first.errors
        assert second.status.value == "complete", second.errors
        urls = site.url(""), site.url("/article"), site.url("/other")
        return Captured(archive_dir, *urls, first, second, video)


SHOWN = """
(() => {
  const frame = document.querySelector('iframe');
  const doc = frame ? frame.contentDocument : document;
  if (!doc || !doc.body) return null;
  const img = doc.getElementById('photo'), video = doc.getElementById('clip');
  return {
    framed: !!frame,
    text: doc.body.innerText,
    image: img ? img.naturalWidth : -1,
    imageComplete: img ? img.complete : false,
    readyState: video ? video.readyState : -1,
    videoWidth: video ? video.videoWidth : -1,
    videoError: video && video.error ? video.error.message || String(video.error.code) : null,
    videoSrc: video ? video.currentSrc : null,
  };
})()
"""
"""What a person sees of the replayed page: in pywb's frame (its banner above), the
page's text, the picture's decoded width, the video's state and its decoded width."""


def shown(page: Page, url: str, *, seconds: float = 20.0) -> dict[str, Any]:
    """Open ``url`` and wait until the page's picture and video are decoded (or
    ``seconds`` pass); what :data:`SHOWN` says then."""
    page.navigate(url, timeout=seconds)
    deadline = time.monotonic() + seconds
    state: dict[str, Any] | None = None
    while time.monotonic() < deadline:
        state = evaluate(page, SHOWN)
        if state and state["image"] > 0 and state["readyState"] >= 2 and state["videoWidth"] > 0:
            return state
        time.sleep(0.1)
    return state or {}


def gone(pid: int, seconds: float = 10.0) -> bool:
    """Process ``pid`` ended within ``seconds`` (no longer in /proc, or a zombie that no
    one reaped yet: a container's first process may never reap orphans)."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            stat = Path(f"/proc/{pid}/stat").read_bytes()
        except OSError:
            return True
        if stat[stat.rfind(b")") + 2 :][:1] in (b"Z", b"X"):
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)


def vanished(path: Path, seconds: float = 10.0) -> bool:
    """``path`` is gone within ``seconds``."""
    deadline = time.monotonic() + seconds
    while path.exists():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True
