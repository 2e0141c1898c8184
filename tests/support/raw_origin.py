"""A raw-socket origin (from the review of browser capture) that logs every request and
response byte for byte, a browser capture through the library Capturer, and a raw WARC
reader (warcio, blocks unparsed) so stored bytes can be compared with what went over the
wire. Origin that logs every request and response byte for
byte, a browser capture through the library Capturer, and a raw WARC reader (warcio,
blocks unparsed) so stored bytes can be compared with what went over the wire."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from warcio.archiveiterator import ArchiveIterator

from archiver.capture.run import Capturer
from archiver.core.model import Capture, CaptureOptions
from tests.support.deterministic import fixed_signer

# A route gets (conn, raw_request, log) and writes to conn via send(); returns nothing.
Route = Callable[["Conn"], None]


@dataclass
class Exchange:
    path: str
    method: str
    request: bytes
    response: bytearray = field(default_factory=bytearray)
    started: float = 0.0
    ended: float | None = None
    reset: bool = False


class Conn:
    def __init__(self, sock: socket.socket, ex: Exchange) -> None:
        self.sock, self.ex = sock, ex

    def send(self, data: bytes, delay: float = 0.0) -> None:
        if delay:
            time.sleep(delay)
        self.sock.sendall(data)
        self.ex.response += data


@dataclass
class Origin:
    base: str
    port: int
    log: list[Exchange]

    def url(self, path: str) -> str:
        return self.base + path

    def by_path(self, path: str) -> list[Exchange]:
        return [e for e in self.log if e.path == path]


def _read_request(sock: socket.socket) -> bytes | None:
    data = b""
    while b"\r\n\r\n" not in data:
        piece = sock.recv(65536)
        if not piece:
            return data or None
        data += piece
    head, _, rest = data.partition(b"\r\n\r\n")
    length = 0
    chunked = False
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"content-length":
            length = int(v.strip())
        if k.strip().lower() == b"transfer-encoding" and b"chunked" in v.lower():
            chunked = True
    if chunked:
        while not rest.endswith(b"0\r\n\r\n"):
            piece = sock.recv(65536)
            if not piece:
                break
            rest += piece
    else:
        while len(rest) < length:
            piece = sock.recv(65536)
            if not piece:
                break
            rest += piece
    return head + b"\r\n\r\n" + rest


@contextmanager
def origin(routes: dict[str, Route], host: str = "127.0.0.1") -> Iterator[Origin]:
    """One request per connection is what archiver sends; we serve keep-alive anyway."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((host, 0))
    listener.listen(64)
    listener.settimeout(0.1)
    port = listener.getsockname()[1]
    name = f"[{host}]" if ":" in host else host
    o = Origin(f"http://{name}:{port}", port, [])
    stop = threading.Event()

    def serve(sock: socket.socket) -> None:
        with sock:
            raw = _read_request(sock)
            if not raw:
                return
            line = raw.split(b"\r\n", 1)[0].decode("latin-1")
            method, target = line.split(" ")[:2]
            path = target.split("?")[0]
            ex = Exchange(path, method, raw, started=time.monotonic())
            o.log.append(ex)
            route = routes.get(path) or routes.get("*")
            try:
                if route is None:
                    Conn(sock, ex).send(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
                else:
                    route(Conn(sock, ex))
            except OSError:
                ex.reset = True
            ex.ended = time.monotonic()

    def loop() -> None:
        while not stop.is_set():
            try:
                sock, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=serve, args=(sock,), daemon=True).start()

    t = threading.Thread(target=loop, daemon=True)
    t.start()
    try:
        yield o
    finally:
        stop.set()
        t.join(2)
        listener.close()


def fixed(data: bytes) -> Route:
    return lambda c: c.send(data)


def html(body: str, extra: str = "") -> Route:
    b = body.encode()
    return fixed(
        b"HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\n"
        + extra.encode()
        + b"Content-Length: %d\r\n\r\n" % len(b)
        + b
    )


@dataclass
class Rec:
    type: str
    url: str
    headers: dict[str, str]
    block: bytes  # the whole record block as stored (HTTP head + payload, raw)


def read_raw(paths: list[Path]) -> list[Rec]:
    out = []
    for p in paths:
        with open(p, "rb") as fh:
            for r in ArchiveIterator(fh, no_record_parse=True):
                out.append(
                    Rec(
                        r.rec_type,
                        r.rec_headers.get_header("WARC-Target-URI") or "",
                        dict(r.rec_headers.headers),
                        r.raw_stream.read(),
                    )
                )
    return out


def capture(url: str, archive: Path, **over: Any) -> tuple[Capture, list[Rec], float]:
    opts: dict[str, Any] = dict(
        archive_dir=archive,
        allow_private=True,
        browser=True,
        timeout=5,
        browser_timeout=5,
        max_scroll=0,
        platform_videos=False,
    )
    opts.update(over)
    t = time.monotonic()
    cap = Capturer(CaptureOptions(**opts), signer=fixed_signer(), hostname="review").capture(url)
    took = time.monotonic() - t
    recs = read_raw(cap.warc_files) if cap.warc_files else []
    return cap, recs, took


def responses(recs: list[Rec], url: str) -> list[Rec]:
    return [r for r in recs if r.type in ("response", "revisit") and r.url == url]


def requests(recs: list[Rec], url: str) -> list[Rec]:
    return [r for r in recs if r.type == "request" and r.url == url]


def dom_of(recs: list[Rec]) -> str:
    for r in recs:
        if r.url.startswith("urn:dom:"):
            return r.block.decode("utf-8", "replace")
    return ""


def http_mode(url: str, archive: Path, **over: Any) -> Capture:
    opts: dict[str, Any] = dict(
        archive_dir=archive, allow_private=True, timeout=5, platform_videos=False
    )
    opts.update(over)
    with suppress(Exception):
        pass
    return Capturer(CaptureOptions(**opts), signer=fixed_signer(), hostname="review").capture(url)
