"""Tiny real HTTP servers on loopback for the browser tests: pages built by scripts, lazy
images, media, dialogs, pop-ups, frames from another origin, downloads, a page that never
goes quiet; and a recording HTTP proxy that answers everything itself.

``PageServer`` serves a dict of routes (path -> ``Route``), with ``{other}`` in a body
replaced by the base URL given as ``other`` (a second server: another origin), and keeps
every request path it saw, in order.
"""

from __future__ import annotations

import ssl
import struct
import threading
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

__all__ = ["FRAME_PAGES", "PAGES", "PageServer", "ProxyServer", "Route", "tiny_png"]


def tiny_png(width: int = 1, height: int = 1) -> bytes:
    """A valid grey PNG of the given size."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    raw = b"".join(b"\x00" + b"\x80" * width for _ in range(height))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


@dataclass(frozen=True)
class Route:
    body: bytes | str
    content_type: str = "text/html; charset=utf-8"
    status: int = 200
    headers: tuple[tuple[str, str], ...] = ()


PAGES: dict[str, Route] = {
    "/script": Route(
        "<!doctype html><title>script</title><p>static part</p><div id=out></div>"
        "<script>document.getElementById('out').textContent ="
        " 'built by script ' + (6 * 7);</script>"
    ),
    "/lazy": Route(
        "<!doctype html><title>lazy</title><div style='height:4000px'>tall</div>"
        "<img id=lazy alt=lazy width=10 height=10>"
        "<script>new IntersectionObserver((entries, obs) => {"
        " for (const e of entries) if (e.isIntersecting) {"
        " e.target.src = '/lazy.png'; obs.disconnect(); } })"
        ".observe(document.getElementById('lazy'));</script>"
    ),
    "/lazy.png": Route(tiny_png(), "image/png"),
    "/media": Route(
        "<!doctype html><title>media</title>"
        "<video id=v preload=none src='/tiny.webm' width=64 height=48></video>"
        "<audio id=a preload=none src='/tiny.wav'></audio>"
        "<script>for (const m of document.querySelectorAll('video, audio'))"
        " m.addEventListener('play', () => m.setAttribute('data-played', 'yes'));</script>"
    ),
    "/tiny.webm": Route(b"\x1aE\xdf\xa3" + b"\x00" * 60, "video/webm"),
    "/tiny.wav": Route(b"RIFF" + b"\x00" * 40, "audio/wav"),
    "/buttons": Route(
        "<!doctype html><title>buttons</title>"
        "<button aria-label='Play video' onclick=\"this.dataset.hit='yes'\">&#9654;</button>"
        "<button aria-label='Playlist' onclick=\"this.dataset.hit='yes'\">list</button>"
        "<button aria-label='Pause' onclick=\"this.dataset.hit='yes'\">||</button>"
        "<div class=click-to-load style='width:50px;height:20px'"
        " onclick=\"this.dataset.hit='yes'\">load</div>"
        "<a class=play-button href='/elsewhere' onclick=\"this.dataset.hit='yes'\">go</a>"
        "<button class=play-button style='display:none'"
        " onclick=\"this.dataset.hit='yes'\">hidden</button>"
    ),
    "/alert": Route(
        "<!doctype html><title>alert</title><script>alert('hello from the page');"
        "document.title = 'after ' + confirm('sure?');</script><p>after the alert</p>"
    ),
    "/popup": Route(
        "<!doctype html><title>popup</title><p>opener</p>"
        "<script>window.open('/popped?from=opener', '_blank');</script>"
    ),
    "/popped": Route("<!doctype html><title>popped</title><p>the pop-up</p>"),
    "/frames": Route(
        "<!doctype html><title>frames</title><p>outer text</p>"
        "<iframe src='{other}/inner' width=300 height=200></iframe>"
    ),
    "/sandboxed": Route(
        "<!doctype html><title>sandboxed</title><p>outer</p>"
        "<iframe sandbox='allow-scripts' src='{other}/inner'></iframe>"
        "<iframe srcdoc='<p>written in srcdoc</p>'></iframe>"
    ),
    "/download": Route(
        "<!doctype html><title>download</title><a id=dl href='/file.bin'>file</a>"
        "<script>document.getElementById('dl').click();</script>"
    ),
    "/file.bin": Route(
        b"\x00\x01\x02 not a page" * 10,
        "application/octet-stream",
        headers=(("Content-Disposition", 'attachment; filename="evidence.bin"'),),
    ),
    "/busy": Route(
        "<!doctype html><title>busy</title>"
        "<script>setInterval(() => fetch('/ping?' + Date.now()), 100);</script>"
    ),
    "/ping": Route("pong", "text/plain"),
    "/tall": Route(
        "<!doctype html><title>tall</title>"
        "<body style='margin:0'><div style='height:3000px;background:#c33'>tall</div>"
    ),
    "/infinite": Route(
        "<!doctype html><title>infinite</title><div id=feed></div><script>"
        "const feed = document.getElementById('feed');"
        "const more = () => { for (let i = 0; i < 5; i++) {"
        " const d = document.createElement('div'); d.style.height = '300px';"
        " d.textContent = 'item'; feed.appendChild(d); } };"
        "more(); addEventListener('scroll', () => {"
        " if (innerHeight + scrollY > document.body.scrollHeight - 400) more(); });</script>"
    ),
    "/redirect": Route("moved", "text/plain", status=302, headers=(("Location", "/script"),)),
    "/shadow": Route(
        "<!doctype html><title>shadow</title><div id=host></div>"
        "<script>document.getElementById('host').attachShadow({mode: 'open'})"
        ".innerHTML = '<b>inside the shadow</b>';</script>"
    ),
}

# served by the second server (another origin): the framed page
FRAME_PAGES: dict[str, Route] = {
    "/inner": Route(
        "<!doctype html><title>inner</title><p id=p></p>"
        "<script>document.getElementById('p').textContent = 'inner frame ' + 'text';</script>"
        "<video preload=none src='/tiny.webm'></video>"
    ),
    "/tiny.webm": PAGES["/tiny.webm"],
}


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        owner = self.server.owner
        with owner.lock:
            owner.seen.append(self.path)
        route = owner.routes.get(self.path.split("?", 1)[0])
        if self.path == "/headers":  # the request's header fields, as received
            route = Route(str(self.headers), "text/plain; charset=utf-8")
        if route is None:
            route = Route("not here", "text/plain", status=404)
        body = route.body
        if isinstance(body, str):
            body = body.replace("{other}", owner.other).encode("utf-8")
        self.send_response(route.status)
        self.send_header("Content-Type", route.content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for name, value in route.headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    owner: PageServer


@dataclass
class PageServer:
    """A real HTTP server on 127.0.0.1 (or HTTPS, given an SSL context)."""

    routes: Mapping[str, Route] = field(default_factory=lambda: PAGES)
    other: str = ""
    tls: ssl.SSLContext | None = None
    seen: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __enter__(self) -> PageServer:
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.owner = self
        if self.tls is not None:
            self._server.socket = self.tls.wrap_socket(self._server.socket, server_side=True)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._server.shutdown()
        self._server.server_close()

    @property
    def base(self) -> str:
        scheme = "https" if self.tls is not None else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    def url(self, path: str) -> str:
        return self.base + path

    def paths(self) -> list[str]:
        with self.lock:
            return list(self.seen)


class _ProxyHandler(BaseHTTPRequestHandler):
    server: _ProxyServer
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        with self.server.owner.lock:
            self.server.owner.seen.append(f"{self.command} {self.path}")
        body = b"<!doctype html><title>proxied</title><p>answered by the proxy</p>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_CONNECT(self) -> None:
        with self.server.owner.lock:
            self.server.owner.seen.append(f"{self.command} {self.path}")
        self.send_error(403)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _ProxyServer(ThreadingHTTPServer):
    daemon_threads = True
    owner: ProxyServer


@dataclass
class ProxyServer:
    """An HTTP proxy that forwards nothing: it answers every GET itself and keeps each
    request line (``GET http://host:port/path``), so a test sees what went through it."""

    seen: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __enter__(self) -> ProxyServer:
        self._server = _ProxyServer(("127.0.0.1", 0), _ProxyHandler)
        self._server.owner = self
        self.address = f"127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._server.shutdown()
        self._server.server_close()

    def lines(self) -> list[str]:
        with self.lock:
            return list(self.seen)
