"""The archivist's own network, as the private-address tests stand it up on loopback: a
listener that counts the connections made to it, a page server, and capture options that
let exactly one test server through."""

from __future__ import annotations

import socket
import threading
from http.server import BaseHTTPRequestHandler
from typing import Any, ClassVar


class Tripwire:
    """A listener on 127.0.0.1 that counts the connections made to it (and says nothing)."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.sock.getsockname()[1]
        self.connections = 0
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            conn.close()

    def close(self) -> None:
        self.sock.close()


class Page(BaseHTTPRequestHandler):
    """A page whose requisites are on the archivist's network (``other`` = the tripwire)."""

    body: ClassVar[dict[str, tuple[int, str, bytes]]] = {}

    def do_GET(self) -> None:
        status, kind, body = self.body.get(self.path, (404, "text/plain", b"no"))
        self.send_response(status)
        if status in (301, 302):
            self.send_header("Location", body.decode())
            body = b""
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


def only_seed(base: str) -> dict[str, Any]:
    """Options refusing private addresses, the seed's own server (address and port) aside."""
    port = int(base.rsplit(":", 1)[1])
    return {"allow_private": False, "allow_private_endpoints": frozenset({("127.0.0.1", port)})}
