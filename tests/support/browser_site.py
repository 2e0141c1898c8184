"""A page built only by scripts, for browser captures (real servers on loopback).

``ScriptSite`` runs two HTTP/1.1 servers on ``127.0.0.1`` (two ports: two origins).
The article at ``/article`` holds almost nothing in its HTML; ``/app.js`` (sent gzip
compressed and chunked, as many CDNs send scripts) builds the rest:

- a player that reads ``/player.json`` and creates a ``<video>`` from it (``/media/clip.webm``);
- an MSE-style player that reads the HLS playlist ``/stream/index.m3u8`` by script and
  fetches only its first segment (the capture must keep all four);
- a widget that turns ``<blockquote class="fixture-post">`` into an iframe from the
  second origin (``/embed/post``), whose page holds a video (``/embed/video.webm``);
- a picture loaded only when scrolled into view (``/lazy/photo.png``).

``served`` lists every path each server answered, in order, with the Range header.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, ClassVar

ARTICLE = """<!doctype html>
<html lang="be"><head><meta charset="utf-8"><title>Script-built article</title>
<script src="/app.js" defer></script></head>
<body><h1 id="headline">Loading...</h1>
<div id="player"></div><div id="mse"></div>
<blockquote class="fixture-post" data-post="{embed}/embed/post">A post</blockquote>
<div style="height:4000px">spacer</div>
<div id="lazy">lazy area</div>
</body></html>
"""

APP_JS = """
(async function () {
  document.getElementById('headline').textContent = 'Protest in Minsk: the video evidence';
  const p = document.createElement('p');
  p.id = 'built'; p.textContent = 'This paragraph was written by a script.';
  document.body.insertBefore(p, document.getElementById('player'));
  const config = await (await fetch('/player.json')).json();
  const video = document.createElement('video');
  video.src = config.src; video.muted = true; video.preload = 'auto';
  document.getElementById('player').appendChild(video);
  const playlist = await (await fetch('/stream/index.m3u8')).text();
  const first = playlist.split('\\n').find(l => l && !l.startsWith('#'));
  const seg = await fetch('/stream/' + first);
  const bytes = (await seg.arrayBuffer()).byteLength;
  document.getElementById('mse').textContent = 'segment bytes: ' + bytes;
  for (const q of document.querySelectorAll('blockquote.fixture-post')) {
    const frame = document.createElement('iframe');
    frame.src = q.dataset.post; frame.width = 400; frame.height = 300;
    q.replaceWith(frame);
  }
  new IntersectionObserver((entries, obs) => {
    for (const e of entries) if (e.isIntersecting) {
      const img = document.createElement('img'); img.src = '/lazy/photo.png';
      e.target.appendChild(img); obs.disconnect();
    }
  }).observe(document.getElementById('lazy'));
})();
"""

EMBED = """<!doctype html><html><head><title>embedded post</title></head>
<body><p>Embedded post from another origin</p>
<video src="/embed/video.webm" muted controls></video></body></html>"""

SEGMENTS = ("seg0.ts", "seg1.ts", "seg2.ts", "seg3.ts")
PLAYLIST = (
    "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:0\n"
    + "".join(f"#EXTINF:2.0,\n{s}\n" for s in SEGMENTS)
    + "#EXT-X-ENDLIST\n"
)


def blob(name: str, size: int) -> bytes:
    """Deterministic bytes standing for a media file."""
    out = bytearray()
    counter = 0
    while len(out) < size:
        out += hashlib.sha256(f"{name}:{counter}".encode()).digest()
        counter += 1
    return bytes(out[:size])


# 1x1 transparent PNG
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c63000100000500010d0a2db40000000049454e44ae426082"
)


class _Server:
    def __init__(self, routes: Callable[[str], tuple[int, list[tuple[str, str]], bytes] | None]):
        self.routes = routes
        self.served: list[tuple[str, str | None]] = []
        self.cookies: list[tuple[str, str | None]] = []  # (path, Cookie header)
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                outer.served.append((self.path, self.headers.get("Range")))
                outer.cookies.append((self.path, self.headers.get("Cookie")))
                found = outer.routes(self.path)
                if found is None:
                    self._send(404, [("Content-Type", "text/plain")], b"not found")
                    return
                status, headers, body = found
                if any(k == "X-Chunked-Gzip" for k, _ in headers):
                    self._chunked_gzip([h for h in headers if h[0] != "X-Chunked-Gzip"], body)
                    return
                rng = self.headers.get("Range")
                if rng and rng.startswith("bytes=") and status == 200:
                    start_text, _, end_text = rng[6:].partition("-")
                    start = int(start_text or 0)
                    end = min(int(end_text) if end_text else len(body) - 1, len(body) - 1)
                    part = body[start : end + 1]
                    headers = [
                        *headers,
                        ("Content-Range", f"bytes {start}-{end}/{len(body)}"),
                        ("Accept-Ranges", "bytes"),
                    ]
                    self._send(206, headers, part)
                    return
                self._send(status, headers, body)

            def _send(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
                self.send_response(status)
                for k, v in headers:
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                with contextlib.suppress(OSError):
                    self.wfile.write(body)

            def _chunked_gzip(self, headers: list[tuple[str, str]], body: bytes) -> None:
                packed = gzip.compress(body, mtime=0)
                self.send_response(200)
                for k, v in headers:
                    self.send_header(k, v)
                self.send_header("Content-Encoding", "gzip")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                for i in range(0, len(packed), 300):
                    piece = packed[i : i + 300]
                    self.wfile.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
                self.wfile.write(b"0\r\n\r\n")

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class ScriptSite:
    CLIP = blob("clip", 300_000)
    EMBED_VIDEO = blob("embed-video", 120_000)
    SEGMENT_BYTES: ClassVar[dict[str, bytes]] = {
        s: blob(s, 40_000 + i) for i, s in enumerate(SEGMENTS)
    }

    def __init__(self) -> None:
        self.main = _Server(self._main_routes)
        self.embed = _Server(self._embed_routes)

    def __enter__(self) -> ScriptSite:
        self.main.start()
        self.embed.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.main.stop()
        self.embed.stop()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.main.port}{path}"

    def embed_url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.embed.port}{path}"

    def served(self, path: str, server: str = "main") -> list[str | None]:
        """The Range header of each time ``path`` was served (None: no range)."""
        chosen = self.main if server == "main" else self.embed
        return [r for p, r in chosen.served if p == path]

    def _main_routes(self, path: str) -> tuple[int, list[tuple[str, str]], bytes] | None:
        html = [("Content-Type", "text/html; charset=utf-8")]
        if path == "/article":
            body = ARTICLE.format(embed=f"http://127.0.0.1:{self.embed.port}")
            return 200, html, body.encode()
        if path == "/app.js":
            return (
                200,
                [("Content-Type", "text/javascript"), ("X-Chunked-Gzip", "1")],
                APP_JS.encode(),
            )
        if path == "/player.json":
            return (
                200,
                [("Content-Type", "application/json")],
                json.dumps({"src": "/media/clip.webm"}).encode(),
            )
        if path == "/media/clip.webm":
            return 200, [("Content-Type", "video/webm")], self.CLIP
        if path == "/stream/index.m3u8":
            return 200, [("Content-Type", "application/vnd.apple.mpegurl")], PLAYLIST.encode()
        if path.startswith("/stream/") and path[8:] in self.SEGMENT_BYTES:
            return 200, [("Content-Type", "video/mp2t")], self.SEGMENT_BYTES[path[8:]]
        if path == "/lazy/photo.png":
            return 200, [("Content-Type", "image/png")], PNG
        return None

    def _embed_routes(self, path: str) -> tuple[int, list[tuple[str, str]], bytes] | None:
        if path == "/embed/post":
            return 200, [("Content-Type", "text/html; charset=utf-8")], EMBED.encode()
        if path == "/embed/video.webm":
            return 200, [("Content-Type", "video/webm")], self.EMBED_VIDEO
        return None
