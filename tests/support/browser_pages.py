"""Pages that misbehave, for the bad cases of browser capture (real servers on loopback).

- :class:`WebSocketEcho`: a WebSocket server written by hand (RFC 6455) on raw sockets;
  it answers the upgrade with ``101`` and the accept key and echoes every data frame.
  It keeps each handshake it answered and each message it got, so a test can tell that
  the browser's socket really reached it (through the capture's proxy).
- :func:`bad_routes`: the pages, served by :class:`tests.support.pages.PageServer`:
  ``/busy`` never goes quiet (a fetch every 100 ms and an open WebSocket), ``/feed`` is
  an infinite scroll (each scroll down fetches one more item), ``/opener`` opens
  a pop-up on load, ``/download`` clicks a link to an attachment, ``/big`` is a 20 MB
  page, ``/reach`` fetches from another loopback port by script.
- :class:`TestCA`: a certificate authority and a leaf for ``127.0.0.1``, for an HTTPS
  origin on loopback that archiver's client does not trust unless told to.
- :func:`processes`: what /proc says of every process (for the tests that check no
  browser process outlives a capture).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import socket
import ssl
import struct
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from ipaddress import IPv4Address
from pathlib import Path
from types import TracebackType

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.support.pages import Route

__all__ = [
    "BIG_PAGE",
    "DOWNLOAD",
    "Proc",
    "TestCA",
    "WebSocketEcho",
    "bad_routes",
    "big_page",
    "processes",
]

WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


# -- a WebSocket echo server (RFC 6455), raw sockets ------------------------------------------


def ws_accept(key: str) -> str:
    """The Sec-WebSocket-Accept value for a Sec-WebSocket-Key (RFC 6455 4.2.2)."""
    digest = hashlib.sha1((key + WS_GUID).encode("ascii")).digest()  # the RFC's digest
    return base64.b64encode(digest).decode("ascii")


def _frame(opcode: int, payload: bytes) -> bytes:
    """One final frame from the server (never masked)."""
    size = len(payload)
    if size < 126:
        length = bytes([size])
    elif size < 1 << 16:
        length = b"\x7e" + struct.pack("!H", size)
    else:
        length = b"\x7f" + struct.pack("!Q", size)
    return bytes([0x80 | opcode]) + length + payload


class _Wire:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = b""

    def more(self) -> None:
        data = self.sock.recv(65536)
        if not data:
            raise EOFError
        self.buf += data

    def exact(self, size: int) -> bytes:
        while len(self.buf) < size:
            self.more()
        out, self.buf = self.buf[:size], self.buf[size:]
        return out

    def frame(self) -> tuple[int, bytes]:
        first, second = self.exact(2)
        size = second & 0x7F
        if size == 126:
            size = struct.unpack("!H", self.exact(2))[0]
        elif size == 127:
            size = struct.unpack("!Q", self.exact(8))[0]
        mask = self.exact(4) if second & 0x80 else b""
        payload = self.exact(size)
        if mask:
            payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        return first & 0x0F, payload


class WebSocketEcho:
    """A WebSocket echo server on 127.0.0.1 (a context manager). ``handshakes``: the
    request line of each upgrade it answered; ``messages``: the data frames it got."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.1)
        self.port: int = self.listener.getsockname()[1]
        self.handshakes: list[str] = []
        self.messages: list[bytes] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> WebSocketEcho:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join(2)
        self.listener.close()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                sock, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._serve_quietly, args=(sock,), daemon=True).start()

    def _serve_quietly(self, sock: socket.socket) -> None:
        # the browser (or the proxy, when it stopped) may go away at any point
        with sock, contextlib.suppress(OSError, EOFError, KeyError, ValueError):
            self._serve(sock)

    def _serve(self, sock: socket.socket) -> None:
        sock.settimeout(30)
        wire = _Wire(sock)
        while b"\r\n\r\n" not in wire.buf:
            wire.more()
        head, wire.buf = wire.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        fields = {
            name.strip().lower(): value.strip()
            for name, _, value in (line.partition(":") for line in lines[1:])
        }
        if (
            fields.get("upgrade", "").lower() != "websocket"
            or "upgrade" not in fields.get("connection", "").lower()
        ):
            sock.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
            return
        sock.sendall(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\n"
            + f"Sec-WebSocket-Accept: {ws_accept(fields['sec-websocket-key'])}\r\n\r\n".encode()
        )
        self.handshakes.append(lines[0])
        while True:
            opcode, payload = wire.frame()
            if opcode == 8:  # close: answered, and done
                sock.sendall(_frame(8, payload[:2]))
                return
            if opcode == 9:  # ping
                sock.sendall(_frame(10, payload))
                continue
            if opcode in (1, 2):
                self.messages.append(payload)
                sock.sendall(_frame(opcode, payload))


# -- pages ------------------------------------------------------------------------------------

DOWNLOAD = b"\x00\x01\x02 evidence, not a page\n" * 40  # the attachment's bytes


def big_page(size: int = 20 * 1024 * 1024, visible: int | None = None) -> bytes:
    """An HTML page of exactly ``size`` bytes of numbered paragraphs; past ``visible``
    bytes (default: all) they are in a ``hidden`` block: parsed, never laid out."""
    head = b"<!doctype html><html><head><meta charset=utf-8><title>big</title></head><body>\n"
    tail = b"<p id=last>the end of the big page</p></body></html>\n"
    parts = [head]
    total = len(head) + len(tail)
    limit = size if visible is None else visible
    hidden = False
    n = 0
    while True:
        if not hidden and total >= limit:
            parts.append(b"<div hidden>\n")
            total += len(parts[-1]) + len(b"</div>\n")
            hidden = True
        para = b"<p>Paragraph %d of a very long page of testimony, kept whole.</p>\n" % n
        if total + len(para) + 7 > size:  # room left for the comment that pads
            break
        parts.append(para)
        total += len(para)
        n += 1
    parts.append(b"<!--" + b"x" * (size - total - 7) + b"-->")
    if hidden:
        parts.append(b"</div>\n")
    parts.append(tail)
    body = b"".join(parts)
    assert len(body) == size, len(body)
    return body


# 20 MB: its first 1.2 MB shown (some 600,000 CSS px tall), the rest hidden
BIG_PAGE = big_page(20 * 1024 * 1024, visible=1_200_000)


def bad_routes(*, ws_port: int = 0, other: str = "") -> dict[str, Route]:
    """The misbehaving pages; ``ws_port``: the WebSocket server's, ``other``: the base URL
    of another server on loopback (which the page at ``/reach`` fetches from)."""
    return {
        # fetch every 100 ms, and a WebSocket kept open: the network never goes quiet
        "/busy": Route(
            "<!doctype html><title>busy</title><p id=polls>0</p><p id=ws>no socket</p><script>"
            "let polls = 0;"
            "setInterval(() => fetch('/poll?n=' + (++polls)).then(r => r.text())"
            ".then(() => { document.getElementById('polls').textContent = polls; }), 100);"
            f"const ws = new WebSocket('ws://127.0.0.1:{ws_port}/live');"
            "ws.onopen = () => ws.send('hello from the page');"
            "ws.onmessage = (e) => {"
            " document.getElementById('ws').textContent = 'echo: ' + e.data; };"
            "</script>"
        ),
        "/poll": Route("still here", "text/plain"),
        # an infinite feed: each scroll down fetches one more item and makes it taller
        "/feed": Route(
            "<!doctype html><title>feed</title><div id=feed>"
            "<div style='height:1500px'>first screenfuls</div></div><script>"
            "let last = 0, n = 0;"
            "addEventListener('scroll', async () => {"
            " if (scrollY <= last) { last = scrollY; return; }"
            " last = scrollY; const k = ++n;"
            " const text = await (await fetch('/item?n=' + k)).text();"
            " const d = document.createElement('div'); d.style.height = '1500px';"
            " d.className = 'item'; d.textContent = text + ' ' + k;"
            " document.getElementById('feed').appendChild(d); });"
            "</script>"
        ),
        "/item": Route("an item of the feed", "text/plain"),
        "/opener": Route(
            "<!doctype html><title>opener</title><p>the page that opens a window</p>"
            "<script>window.open('/popped?from=opener', '_blank');</script>"
        ),
        "/popped": Route(
            "<!doctype html><title>popped</title><p>the pop-up</p><img src='/popped.png' alt=p>"
        ),
        "/popped.png": Route(b"\x89PNG not really", "image/png"),
        "/download": Route(
            "<!doctype html><title>download</title><p>a page that downloads</p>"
            "<a id=dl href='/evidence.bin'>file</a>"
            "<script>document.getElementById('dl').click();</script>"
        ),
        "/evidence.bin": Route(
            DOWNLOAD,
            "application/octet-stream",
            headers=(("Content-Disposition", 'attachment; filename="evidence.bin"'),),
        ),
        "/big": Route(BIG_PAGE),
        "/reach": Route(
            "<!doctype html><title>reach</title><p id=out>waiting</p><script>"
            f"fetch('{other}/secret.json').then(r => r.text())"
            ".then(t => { document.getElementById('out').textContent = 'got ' + t; })"
            ".catch(e => { document.getElementById('out').textContent = 'refused'; });"
            "</script>"
        ),
        "/secret.json": Route('{"secret": "the archivist\'s own network"}', "application/json"),
        "/plain": Route("<!doctype html><title>plain</title><p>served over TLS</p>"),
    }


# -- a test certificate authority -------------------------------------------------------------


@dataclass
class TestCA:
    """A CA and a leaf certificate for ``127.0.0.1`` it signed (both ECDSA P-256), written
    to ``folder``: ``ca.pem`` (to trust), ``leaf.pem`` and ``leaf.key`` (to serve)."""

    __test__ = False  # not a test class, whatever its name says

    folder: Path
    ca_pem: Path = field(init=False)
    leaf_pem: Path = field(init=False)
    leaf_key: Path = field(init=False)
    leaf_der: bytes = field(init=False)

    def __post_init__(self) -> None:
        now = datetime.now(UTC)
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "archiver test CA")])
        ca = (
            x509.CertificateBuilder()
            .subject_name(ca_name)
            .issuer_name(ca_name)
            .public_key(ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=False,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
            )
            .sign(ca_key, hashes.SHA256())
        )
        leaf_key = ec.generate_private_key(ec.SECP256R1())
        leaf = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
            .issuer_name(ca_name)
            .public_key(leaf_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=2))
            .add_extension(
                x509.SubjectAlternativeName([x509.IPAddress(IPv4Address("127.0.0.1"))]),
                critical=False,
            )
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                critical=False,
            )
            .sign(ca_key, hashes.SHA256())
        )
        self.folder.mkdir(parents=True, exist_ok=True)
        self.ca_pem = self.folder / "ca.pem"
        self.leaf_pem = self.folder / "leaf.pem"
        self.leaf_key = self.folder / "leaf.key"
        self.ca_pem.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
        self.leaf_pem.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
        self.leaf_key.write_bytes(
            leaf_key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        self.leaf_der = leaf.public_bytes(serialization.Encoding.DER)

    @property
    def leaf_sha256(self) -> str:
        return hashlib.sha256(self.leaf_der).hexdigest()

    def server_context(self) -> ssl.SSLContext:
        """What the HTTPS origin serves: the leaf, TLS 1.2 or later."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(self.leaf_pem, self.leaf_key)
        return context


# -- processes --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Proc:
    pid: int
    ppid: int
    pgid: int
    state: str
    cmdline: str


def processes() -> Iterator[Proc]:
    """Every process /proc shows now (those that vanish while read are left out)."""
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as f:
                stat = f.read()
            with open(f"/proc/{entry.name}/cmdline", "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode("utf-8", "replace")
        except OSError:
            continue
        fields = stat[stat.rfind(b")") + 2 :].split()
        yield Proc(
            int(entry.name), int(fields[1]), int(fields[2]), fields[0].decode(), cmdline.strip()
        )
