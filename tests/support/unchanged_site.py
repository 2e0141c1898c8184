"""A small site whose every response is over dedup's 1 KiB floor, served on loopback:
captured twice, the second capture stores nothing but revisits."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

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


@contextlib.contextmanager
def serve_unchanged() -> Iterator[str]:
    """The site on an ephemeral 127.0.0.1 port; yields its base URL."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
