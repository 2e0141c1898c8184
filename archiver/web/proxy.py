"""A proxy on loopback that hands every request of a browser to archiver's own HTTP client.

A browser capture runs a real Chromium, but the browser never writes the evidence: its
proxy is this one, and every request it makes is handed whole (method, absolute URL,
header fields as the browser sent them, body) to a *handler*, which fetches it with
archiver's HTTP client (recording the exchange byte for byte) and sends the response
back through :class:`Client`. This module is the mechanics only: HTTP/1.1 framing,
``CONNECT`` tunnels, TLS interception with a context the caller supplies (the web layer
never imports the trust layer: ``tls_context_for`` is a callable, in practice
:meth:`archiver.trust.interception.InterceptionCA.server_context`), keep-alive, WebSocket
tunnels, refusals and limits.

What the proxy does with a connection:

- ``GET http://host:port/path HTTP/1.1`` (absolute form, ``http`` or ``https``): the
  handler gets that URL as sent.
- ``CONNECT host:port``: ``200 Connection Established``, then the first byte decides. A
  TLS handshake (0x16) is answered with ``tls_context_for(host)`` (the CONNECT host, not
  the SNI: it is the host the URL gets), and the HTTP/1.1 requests inside become
  ``https://host[:port]/path``; anything else is plain HTTP inside the tunnel (Chromium
  tunnels ``ws://`` so): ``http://host[:port]/path``. The default port is left out.
- A request in origin form (``GET /path``) outside a tunnel is answered ``400``.
- ``refuse(host, port)``, asked at CONNECT time and before each request, can refuse
  with a reason: ``403``, an entry in :attr:`InterceptingProxy.blocked`, no handler.
  Requests to the proxy itself (its port, on any name of a loopback address) are always
  refused: a page must never make the proxy fetch from itself.
- Limits: a request head over 64 KiB or 200 fields is ``431``; bad syntax ``400``; a
  body over ``max_body`` ``413``; ``Expect: 100-continue`` gets ``100 Continue`` before
  the body is read. The answers the proxy gives itself all close the connection.
- The handler's result says whether the connection may carry another request; it does
  when the browser wants it too (HTTP/1.1 without ``close``, or 1.0 with ``keep-alive``).
  An idle connection is closed after ``idle_timeout`` seconds; when every connection slot
  is taken, the longest idle one is closed to make room.
- An exception from the handler is kept in :attr:`InterceptingProxy.errors` (never
  printed); if nothing had been sent, the browser gets ``502``; the connection closes.
  :class:`ClientGone` (the browser left) is no error. A handler that returns without
  sending anything is one (:class:`NoResponse`, and ``502``).

Why the peer's user is checked: the proxy listens on loopback, where every local user
can connect. Whatever reaches the handler becomes evidence in the capture, so on Linux
each connection's peer socket is looked up in ``/proc/net/tcp`` (and ``tcp6``) and a
connection from a socket of another user id than this process's is closed at once,
before a byte is read (:attr:`InterceptingProxy.refused_peers`). Where ``/proc/net/tcp``
does not exist, the check is skipped; where it exists and the peer is not found in it,
the connection is refused.

Header fields reach the handler in their order and spelling, as ``latin-1`` strings (so
``value.encode("latin-1")`` gives back the bytes sent), without the hop-by-hop fields
(``Proxy-Connection``, ``Proxy-Authorization``, ``Keep-Alive``, ``TE``, ``Trailer``,
``Connection``, ``Upgrade``, and the fields ``Connection`` names) except that a WebSocket
upgrade keeps ``Connection`` and ``Upgrade``. ``Content-Length``, ``Transfer-Encoding``
and ``Expect`` stay as sent; a chunked body is handed over decoded.
"""

from __future__ import annotations

import contextlib
import ipaddress
import itertools
import os
import re
import selectors
import socket
import ssl
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from archiver.core.errors import Failure, UsageProblem

MAX_HEAD_BYTES = 64 * 1024
MAX_HEAD_FIELDS = 200
MAX_CONNECTIONS = 64
IDLE_TIMEOUT = 30.0
STOP_WAIT = 0.8  # seconds stop() waits for the connection threads
_RECV = 64 * 1024
_CHUNK_LINE = 4096
_LINGER_SECONDS = 1.0  # reading what a refused browser still sends, so it reads our answer
_LINGER_BYTES = 256 << 20

_HOP_BY_HOP = frozenset(
    {
        *("proxy-connection", "proxy-authorization", "keep-alive", "te", "trailer"),
        *("connection", "upgrade"),  # Upgrade is hop-by-hop too (RFC 9110 7.8)
    }
)
_WEBSOCKET_KEEPS = frozenset({"connection", "upgrade"})
_NEVER_NOMINATED = frozenset({"host", "content-length", "transfer-encoding"})
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_HEAD_END = re.compile(rb"\r?\n\r?\n")
_LINE_END = re.compile(r"\r?\n")
_CONNECT_TARGET = re.compile(r"(?:\[([0-9A-Fa-f:.]+)\]|([A-Za-z0-9_.-]+)):([0-9]{1,5})")
_HOST_NAME = re.compile(r"[A-Za-z0-9_.-]{1,253}")
_HEX = re.compile(r"[0-9A-Fa-f]{1,16}")
_DEFAULT_PORT = {"http": 80, "https": 443}
_REASONS = {
    400: "Bad Request",
    403: "Forbidden",
    413: "Content Too Large",
    431: "Request Header Fields Too Large",
    502: "Bad Gateway",
}


class ClientGone(Failure, ConnectionError):
    """The browser closed its connection (or the proxy stopped) while a response was
    being sent to it: the handler can stop; the proxy does not count it as an error."""


class NoResponse(Failure):
    """A handler returned without sending the browser anything (kept in ``errors``)."""


@dataclass
class ProxyRequest:
    """One request of the browser, read whole."""

    method: str
    url: str  # absolute: http://host:port/path, or https://host/path through a tunnel
    headers: list[tuple[str, str]]  # as sent, order and case kept, hop-by-hop fields out
    body: bytes  # decoded from chunked if it was
    websocket: bool  # an Upgrade: websocket request
    tunnel: str | None  # "host:port" of the CONNECT it came through


class _Reject(Exception):
    """The proxy answers this request itself (status, short text) and closes."""

    def __init__(self, status: int, text: str) -> None:
        super().__init__(text)
        self.status = status
        self.text = text


class _Closed(Exception):
    """The browser closed the connection in the middle of a request."""


@dataclass
class _Head:
    method: str
    target: str
    version: str  # "1.0" or "1.1"
    headers: list[tuple[str, str]]


@dataclass(frozen=True)
class _Tunnel:
    scheme: str  # "https" (TLS inside) or "http"
    host: str  # without brackets
    port: int
    target: str  # as in the CONNECT line

    @property
    def authority(self) -> str:
        return _authority(self.scheme, self.host, self.port)


def _authority(scheme: str, host: str, port: int) -> str:
    name = f"[{host}]" if ":" in host else host
    return name if _DEFAULT_PORT.get(scheme) == port else f"{name}:{port}"


class _Reader:
    """Bytes of one connection, read as they come; what was read past a request stays
    in ``buf`` for the next one (or for a WebSocket tunnel)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = bytearray()

    def _fill(self) -> None:
        data = self.sock.recv(_RECV)
        if not data:
            raise _Closed
        self.buf += data

    def head(self, on_first_byte: Callable[[], None]) -> _Head | None:
        """The next request head, or None when the connection closed between requests."""
        scanned = 0
        started = False
        while True:
            if self.buf and self.buf[0] in b"\r\n":  # empty lines before a request
                stripped = self.buf.lstrip(b"\r\n")
                del self.buf[: len(self.buf) - len(stripped)]
                scanned = 0
            if self.buf and not started:
                started = True
                on_first_byte()
            end = _HEAD_END.search(self.buf, max(0, scanned - 3))
            if end is not None:
                break
            if len(self.buf) > MAX_HEAD_BYTES:
                raise _Reject(431, "the request head is larger than 64 KiB")
            scanned = len(self.buf)
            try:
                self._fill()
            except _Closed:
                if not self.buf:
                    return None
                raise
        if end.end() > MAX_HEAD_BYTES:
            raise _Reject(431, "the request head is larger than 64 KiB")
        raw = bytes(self.buf[: end.start()])
        del self.buf[: end.end()]
        return _parse_head(raw.decode("latin-1"))

    def exact(self, size: int) -> bytes:
        while len(self.buf) < size:
            self._fill()
        data = bytes(self.buf[:size])
        del self.buf[:size]
        return data

    def line(self, limit: int) -> str:
        while (end := self.buf.find(b"\n")) < 0:
            if len(self.buf) > limit:
                raise _Reject(400, "a line of the chunked body is too long")
            self._fill()
        if end > limit:
            raise _Reject(400, "a line of the chunked body is too long")
        data = bytes(self.buf[:end])
        del self.buf[: end + 1]
        return data.removesuffix(b"\r").decode("latin-1")

    def chunked(self, max_body: int) -> bytes:
        body = bytearray()
        while True:
            size_text = self.line(_CHUNK_LINE).split(";", 1)[0].strip(" \t")
            if not _HEX.fullmatch(size_text):
                raise _Reject(400, "bad chunk size")
            size = int(size_text, 16)
            if size == 0:
                break
            if len(body) + size > max_body:
                raise _Reject(413, f"the request body is larger than {max_body} bytes")
            body += self.exact(size)
            if self.line(2) != "":
                raise _Reject(400, "a chunk does not end with CRLF")
        trailer_bytes = fields = 0
        while line := self.line(MAX_HEAD_BYTES):  # trailer fields: read, not forwarded
            trailer_bytes += len(line) + 2
            fields += 1
            if trailer_bytes > MAX_HEAD_BYTES or fields > MAX_HEAD_FIELDS:
                raise _Reject(431, "the trailer section is too large")
        return bytes(body)


def _parse_head(text: str) -> _Head:
    lines = _LINE_END.split(text)
    if len(lines) - 1 > MAX_HEAD_FIELDS:
        raise _Reject(431, f"the request head has more than {MAX_HEAD_FIELDS} fields")
    parts = lines[0].split(" ")
    if (
        len(parts) != 3
        or not _TOKEN.fullmatch(parts[0])
        or not parts[1]
        or any(c in parts[1] for c in "\t\r\x00")
        or parts[2] not in ("HTTP/1.1", "HTTP/1.0")
    ):
        raise _Reject(400, "bad request line")
    headers = []
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if not colon or not _TOKEN.fullmatch(name):  # obs-fold and spaces before ':' too
            raise _Reject(400, "bad header field")
        value = value.strip(" \t")
        if "\r" in value or "\x00" in value:
            raise _Reject(400, "bad header field value")
        headers.append((name, value))
    return _Head(parts[0], parts[1], parts[2][5:], headers)


def _tokens(headers: list[tuple[str, str]], *names: str) -> set[str]:
    return {
        token.strip().lower()
        for name, value in headers
        if name.lower() in names
        for token in value.split(",")
        if token.strip()
    }


def _forwarded(headers: list[tuple[str, str]], websocket: bool) -> list[tuple[str, str]]:
    """The fields the handler gets: hop-by-hop ones (and those Connection names) out."""
    drop = _HOP_BY_HOP | (_tokens(headers, "connection") - _NEVER_NOMINATED)
    if websocket:
        drop -= _WEBSOCKET_KEEPS
    return [(name, value) for name, value in headers if name.lower() not in drop]


def _loopback(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback or address.is_unspecified


def _proc_address(host: str, port: int) -> str:
    """An address as /proc/net/tcp writes it: 32-bit words in hex, each in the host's
    byte order, then the port in hex ("0100007F:1F90" for 127.0.0.1:8080 here)."""
    packed = ipaddress.ip_address(host.split("%")[0]).packed
    words = struct.unpack(f"={len(packed) // 4}I", packed)
    return "".join(f"{word:08X}" for word in words) + f":{port:04X}"


def socket_owner(client: tuple[str, int], server: tuple[str, int]) -> int | None:
    """The user id owning the TCP socket at ``client`` connected to ``server`` (both as
    seen from this host), read from ``/proc/net/tcp`` and ``/proc/net/tcp6``.

    None when there is no such table (not Linux); -1 when the tables exist and the socket
    is not in them (it closed already; never trusted)."""
    local, remote = _proc_address(*client[:2]), _proc_address(*server[:2])
    found_table = False
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table, encoding="ascii") as lines:
                found_table = True
                next(lines, None)  # the column names
                for line in lines:
                    fields = line.split(None, 8)
                    if len(fields) > 7 and fields[1] == local and fields[2] == remote:
                        return int(fields[7])
        except FileNotFoundError:
            continue
        except (OSError, ValueError):
            found_table = True  # unreadable or unexpected: the peer cannot be vouched for
    return -1 if found_table else None


class _Connection:
    """One browser connection: its socket (plain, then perhaps TLS), a duplicate of it
    for shutting it down from another thread, and whether it waits for a request."""

    def __init__(self, number: int, sock: socket.socket, peer: tuple[str, int]) -> None:
        self.number = number
        self.sock = sock
        self.killer = sock.dup()  # shutdown() of the same socket, however it is wrapped
        self.peer = peer
        self.reader = _Reader(sock)
        self.lock = threading.Lock()
        self.idle = True
        self.idle_since = time.monotonic()
        self.killed = False
        self.finished = False
        self.upstreams: set[socket.socket] = set()

    def rest(self) -> None:
        with self.lock:
            self.idle = not self.reader.buf
            self.idle_since = time.monotonic()

    def busy(self) -> None:
        with self.lock:
            if self.killed:
                raise _Closed
            self.idle = False

    def kill(self) -> None:
        with self.lock:
            self.killed = True
            for sock in (self.killer, *self.upstreams):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def wrap(self, sock: ssl.SSLSocket) -> None:
        self.sock = sock
        self.reader = _Reader(sock)

    def finish_writing(self) -> None:
        """Nothing more will be sent: TLS close_notify (strict clients such as OpenSSL 3
        call a close without it a truncation), then a FIN."""
        if self.finished:
            return
        self.finished = True
        if isinstance(self.sock, ssl.SSLSocket):
            timeout = self.sock.gettimeout()
            self.sock.settimeout(0)  # send close_notify, do not wait for the browser's
            with contextlib.suppress(OSError, ValueError):
                self.sock.unwrap()
            with contextlib.suppress(OSError):
                self.sock.settimeout(timeout)
        with contextlib.suppress(OSError):
            self.killer.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        if not self.killed:
            self.finish_writing()
        for sock in (self.sock, self.killer):
            with contextlib.suppress(OSError):
                sock.close()


class Client:
    """The browser's side of one connection, for the handler to answer on."""

    def __init__(self, proxy: InterceptingProxy, connection: _Connection) -> None:
        self._proxy = proxy
        self._connection = connection
        self.connection = connection.number  # the same for every request on it
        self.sent = 0  # bytes sent to the browser on this connection

    def send(self, data: bytes | memoryview) -> None:
        """Send bytes to the browser as they are; ClientGone if it went away."""
        try:
            self._connection.sock.sendall(data)
        except OSError as exc:
            raise ClientGone(f"the browser closed the connection: {exc}") from exc
        self.sent += memoryview(data).nbytes

    def abort(self) -> None:
        """End the connection with a reset, not an orderly close: a response cut short
        whose end the browser cannot otherwise tell (a body delimited by the close of the
        connection) must not look complete to it."""
        connection = self._connection
        linger = struct.pack("ii", 1, 0)
        with contextlib.suppress(OSError):
            connection.killer.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
        # no close_notify, no FIN (shutdown would send one): the connection, closed
        # when the handler returns, ends with the reset
        connection.finished = True

    def tunnel(self, upstream: socket.socket, leftover: bytes = b"") -> tuple[int, int]:
        """After a 101 response was sent: pipe bytes both ways until either side closes
        or the proxy stops; ``leftover`` (bytes already read from upstream) goes first.
        Returns (bytes browser to upstream, bytes upstream to browser). A tunnel does
        not count in ``inflight``: an open WebSocket is no request in flight."""
        connection, proxy = self._connection, self._proxy
        to_upstream = to_browser = 0
        if leftover:
            self.send(leftover)
            to_browser += len(leftover)
        with connection.lock:
            if connection.killed:
                return to_upstream, to_browser
            connection.upstreams.add(upstream)
        proxy._end()
        selector = selectors.DefaultSelector()
        try:
            if connection.reader.buf:  # sent by the browser right after the upgrade
                pending = bytes(connection.reader.buf)
                connection.reader.buf.clear()
                upstream.sendall(pending)
                to_upstream += len(pending)
            selector.register(connection.sock, selectors.EVENT_READ, "browser")
            selector.register(upstream, selectors.EVENT_READ, "upstream")
            selector.register(proxy._wake_r, selectors.EVENT_READ, "stop")
            while not proxy._stopping.is_set():
                ready = {
                    side
                    for side, sock in (("browser", connection.sock), ("upstream", upstream))
                    if isinstance(sock, ssl.SSLSocket) and sock.pending()
                }
                timeout = 0 if ready else None
                ready |= {key.data for key, _ in selector.select(timeout)}
                if "stop" in ready:
                    break
                if "browser" in ready:
                    data = connection.sock.recv(_RECV)
                    if not data:
                        break
                    upstream.sendall(data)
                    to_upstream += len(data)
                if "upstream" in ready:
                    data = upstream.recv(_RECV)
                    if not data:
                        break
                    self.send(data)
                    to_browser += len(data)
        except OSError:
            pass  # either side went away (ClientGone is one): the tunnel is over
        finally:
            selector.close()
            with connection.lock:
                connection.upstreams.discard(upstream)
            proxy._begin()
        return to_upstream, to_browser


Handler = Callable[[ProxyRequest, Client], bool]
"""Answers one request on the Client; True if the connection may carry another."""


class InterceptingProxy:
    """The proxy of one browser capture; see the module's documentation.

    ``blocked``: what was refused, ``{"target": URL or CONNECT's "host:port", "method",
    "reason", "time" (time.time())}``; ``refused_peers``: connections of other users,
    ``{"peer": "ip:port", "uid": int, "time"}``; ``errors``: the exceptions of handlers
    (and of ``refuse`` or ``tls_context_for``, and TLS handshakes the browser broke off
    with an alert), in the order they happened."""

    def __init__(
        self,
        handler: Handler,
        tls_context_for: Callable[[str], ssl.SSLContext],
        *,
        host: str = "127.0.0.1",
        max_body: int = 64 << 20,
        refuse: Callable[[str, int], str | None] | None = None,
        max_connections: int = MAX_CONNECTIONS,
        idle_timeout: float = IDLE_TIMEOUT,
    ) -> None:
        try:
            loopback = ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = False
        if not loopback:
            raise UsageProblem(f"the capture proxy listens on a loopback address, not {host!r}")
        self._handler = handler
        self._tls_context_for = tls_context_for
        self._host = host
        self.max_body = max_body
        self._refuse = refuse
        self.idle_timeout = idle_timeout
        self.address: tuple[str, int] = (host, 0)
        self.blocked: list[dict[str, str | float]] = []
        self.refused_peers: list[dict[str, str | int | float]] = []
        self.errors: list[BaseException] = []
        self._lock = threading.Lock()
        self._inflight = 0
        self._last_activity = time.monotonic()
        self._connections: set[_Connection] = set()
        self._threads: set[threading.Thread] = set()
        self._slots = threading.BoundedSemaphore(max_connections)
        self._numbers = itertools.count(1)
        self._stopping = threading.Event()
        self._listener: socket.socket | None = None
        self._acceptor: threading.Thread | None = None
        self._wake_r = self._wake_w = -1

    # -- life

    def start(self) -> tuple[str, int]:
        """Listen on an ephemeral port of the loopback address; returns (host, port)."""
        if self._listener is not None or self._stopping.is_set():
            raise UsageProblem("the capture proxy was started already")
        family = socket.AF_INET6 if ":" in self._host else socket.AF_INET
        listener = socket.socket(family, socket.SOCK_STREAM)
        try:
            listener.bind((self._host, 0))
            listener.listen(128)
            listener.setblocking(False)
            self._wake_r, self._wake_w = os.pipe()
        except OSError as exc:
            listener.close()
            raise Failure(f"the capture proxy cannot listen on {self._host}: {exc}") from exc
        self._listener = listener
        host, port = listener.getsockname()[:2]
        self.address = (host, port)
        self._acceptor = threading.Thread(
            target=self._accept_loop, name=f"archiver-proxy-{port}", daemon=True
        )
        self._acceptor.start()
        return self.address

    def stop(self) -> None:
        """Close the listener and every connection (idle, mid-request, in a tunnel),
        and wait for their threads, STOP_WAIT seconds at most: a handler still blocked
        in a fetch of its own is left to finish on its daemon thread. Idempotent."""
        with self._lock:
            if self._stopping.is_set():
                return
            self._stopping.set()
            connections = list(self._connections)
        if self._wake_w >= 0:
            os.write(self._wake_w, b"x")  # wakes the acceptor and every tunnel; never read
        for connection in connections:
            connection.kill()
        deadline = time.monotonic() + STOP_WAIT
        if self._acceptor is not None:
            self._acceptor.join(max(0.0, deadline - time.monotonic()))
        if self._listener is not None:
            self._listener.close()
        with self._lock:
            threads = list(self._threads)
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        with self._lock:
            finished = not self._threads and not (self._acceptor and self._acceptor.is_alive())
        if finished and self._wake_w >= 0:  # else a straggler may still select on it
            os.close(self._wake_r)
            os.close(self._wake_w)
            self._wake_r = self._wake_w = -1

    def __enter__(self) -> InterceptingProxy:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def inflight(self) -> int:
        """Requests being handled right now (WebSockets past their upgrade excluded)."""
        return self._inflight

    @property
    def last_activity(self) -> float:
        """time.monotonic() of the last start or end of a request."""
        return self._last_activity

    def _begin(self) -> None:
        with self._lock:
            self._inflight += 1
            self._last_activity = time.monotonic()

    def _end(self) -> None:
        with self._lock:
            self._inflight -= 1
            self._last_activity = time.monotonic()

    # -- connections

    def _accept_loop(self) -> None:
        assert self._listener is not None
        selector = selectors.DefaultSelector()
        selector.register(self._listener, selectors.EVENT_READ, "listener")
        selector.register(self._wake_r, selectors.EVENT_READ, "stop")
        try:
            while not self._stopping.is_set():
                if any(key.data == "stop" for key, _ in selector.select()):
                    return
                while not self._slots.acquire(timeout=0.05):  # every slot taken
                    if self._stopping.is_set():
                        return
                    self._evict_idle()
                try:
                    sock, peer = self._listener.accept()
                except OSError:  # gone before accepted, or out of descriptors for a moment
                    self._slots.release()
                    time.sleep(0.01)
                    continue
                self._spawn(sock, peer)
        finally:
            selector.close()

    def _spawn(self, sock: socket.socket, peer: tuple[str, int]) -> None:
        sock.setblocking(True)
        with contextlib.suppress(OSError):  # a response's pieces go out as handed over
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        number = next(self._numbers)
        thread = threading.Thread(
            target=self._serve,
            args=(sock, peer, number),
            name=f"archiver-proxy-{self.address[1]}-{number}",
            daemon=True,
        )
        with self._lock:
            self._threads.add(thread)
        try:
            thread.start()
        except RuntimeError:  # no thread to be had: the browser will retry
            with self._lock:
                self._threads.discard(thread)
            sock.close()
            self._slots.release()

    def _evict_idle(self) -> None:
        """Close the connection idle the longest, so that a new one gets its slot
        (a browser opens a new connection when a kept-alive one was closed)."""
        with self._lock:
            idle = [c for c in self._connections if c.idle and not c.killed]
        if idle:
            min(idle, key=lambda c: c.idle_since).kill()

    def _serve(self, sock: socket.socket, peer: tuple[str, int], number: int) -> None:
        connection: _Connection | None = None
        try:
            connection = _Connection(number, sock, peer)
            with self._lock:
                if self._stopping.is_set():
                    return
                self._connections.add(connection)
            if not self._peer_is_ours(sock, peer):
                return
            sock.settimeout(self.idle_timeout)
            self._requests(connection, Client(self, connection), None)
        except (OSError, _Closed):
            pass  # the browser went away, timed out, or the proxy stopped
        except Exception as exc:
            self.errors.append(exc)
        finally:
            if connection is not None:
                connection.close()
            else:
                sock.close()
            with self._lock:
                if connection is not None:
                    self._connections.discard(connection)
                self._threads.discard(threading.current_thread())
            self._slots.release()

    def _peer_is_ours(self, sock: socket.socket, peer: tuple[str, int]) -> bool:
        uid = socket_owner(peer, sock.getsockname()[:2])
        if uid is None or uid == os.getuid():
            return True
        self.refused_peers.append({"peer": f"{peer[0]}:{peer[1]}", "uid": uid, "time": time.time()})
        return False

    def _requests(self, connection: _Connection, client: Client, tunnel: _Tunnel | None) -> None:
        """Requests on one connection (or inside its tunnel), until one may not be
        followed by another."""
        while not self._stopping.is_set():
            connection.rest()
            try:
                head = connection.reader.head(connection.busy)
                if head is None:
                    return
                if head.method == "CONNECT":
                    if tunnel is not None:
                        raise _Reject(400, "CONNECT inside a tunnel")
                    self._connect(connection, client, head)
                    return
                request, browser_keeps = self._request(connection, head, tunnel)
            except _Reject as reject:
                self._answer(connection, reject)
                return
            if not (self._handle(connection, client, request) and browser_keeps):
                return

    def _connect(self, connection: _Connection, client: Client, head: _Head) -> None:
        target = _CONNECT_TARGET.fullmatch(head.target)
        if target is None or not 0 < int(target[3]) < 65536:
            raise _Reject(400, "CONNECT needs host:port")
        host, port = target[1] or target[2], int(target[3])
        if target[1] is not None:
            try:
                ipaddress.IPv6Address(host)
            except ValueError:
                raise _Reject(400, "CONNECT needs host:port") from None
        self._check(head.target, "CONNECT", host, port)
        connection.sock.sendall(b"HTTP/1.1 200 Connection Established\r\n\r\n")
        connection.rest()
        if connection.reader.buf:
            first = bytes(connection.reader.buf[:1])
        else:
            first = connection.sock.recv(1, socket.MSG_PEEK)
        if not first:
            return
        connection.busy()
        scheme = "http"
        if first == b"\x16":
            if connection.reader.buf:
                return  # a handshake sent before our 200 was read: no browser does that
            try:
                context = self._tls_context_for(host)
            except Exception as exc:
                self.errors.append(exc)
                return
            try:
                connection.wrap(context.wrap_socket(connection.sock, server_side=True))
            except ssl.SSLError as exc:
                if not isinstance(exc, ssl.SSLEOFError | ssl.SSLZeroReturnError):
                    self.errors.append(exc)  # the browser refused our certificate, say
                return
            scheme = "https"
        self._requests(connection, client, _Tunnel(scheme, host, port, head.target))

    def _request(
        self, connection: _Connection, head: _Head, tunnel: _Tunnel | None
    ) -> tuple[ProxyRequest, bool]:
        """Read the rest of one request (its body); (request, whether the browser wants
        the connection kept)."""
        url, host, port = self._target(head, tunnel)
        websocket = "websocket" in _tokens(head.headers, "upgrade")
        chunked, length = _framing(head.headers)
        self._check(url, head.method, host, port)
        if length > self.max_body:
            raise _Reject(413, f"the request body is larger than {self.max_body} bytes")
        if (
            head.version == "1.1"
            and (chunked or length)
            and "100-continue" in _tokens(head.headers, "expect")
        ):
            connection.sock.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
        body = (
            connection.reader.chunked(self.max_body) if chunked else connection.reader.exact(length)
        )
        wants = _tokens(head.headers, "connection", "proxy-connection")
        keeps = "keep-alive" in wants if head.version == "1.0" else "close" not in wants
        request = ProxyRequest(
            method=head.method,
            url=url,
            headers=_forwarded(head.headers, websocket),
            body=body,
            websocket=websocket,
            tunnel=tunnel.target if tunnel else None,
        )
        return request, keeps

    def _target(self, head: _Head, tunnel: _Tunnel | None) -> tuple[str, str, int]:
        """(absolute URL, host, port) of a request."""
        target = head.target
        if tunnel is not None and target.startswith("/"):
            return f"{tunnel.scheme}://{tunnel.authority}{target}", tunnel.host, tunnel.port
        scheme = target.split("://", 1)[0].lower() if "://" in target else ""
        if scheme not in _DEFAULT_PORT:
            where = "inside a tunnel" if tunnel else "outside a CONNECT tunnel"
            raise _Reject(400, f"a request {where} needs an absolute http(s) URL")
        try:
            parts = urlsplit(target)
            host, port = parts.hostname or "", parts.port or _DEFAULT_PORT[scheme]
        except ValueError:
            raise _Reject(400, "bad URL") from None
        if not _HOST_NAME.fullmatch(host):
            try:
                ipaddress.IPv6Address(host)
            except ValueError:
                raise _Reject(400, "bad host in URL") from None
        if tunnel is not None and (scheme, host, port) != (
            tunnel.scheme,
            tunnel.host.lower(),
            tunnel.port,
        ):
            raise _Reject(400, "the URL names another host than the tunnel")
        return target, host, port

    def _check(self, target: str, method: str, host: str, port: int) -> None:
        """Raise a 403 for a refused destination (the proxy itself, always)."""
        reason = "the capture proxy itself" if self._is_self(host, port) else None
        if reason is None and self._refuse is not None:
            try:
                reason = self._refuse(host, port)
            except Exception as exc:
                self.errors.append(exc)
                raise _Reject(502, "the capture proxy could not check this address") from None
        if reason is not None:
            self.blocked.append(
                {"target": target, "method": method, "reason": reason, "time": time.time()}
            )
            raise _Reject(403, f"archiver's capture proxy refused {target}: {reason}")

    def _is_self(self, host: str, port: int) -> bool:
        if port != self.address[1]:
            return False
        name = host.strip("[]").rstrip(".").lower()
        if name == "localhost" or name.endswith(".localhost"):
            return True
        try:
            return _loopback(ipaddress.ip_address(name))
        except ValueError:
            pass
        try:
            found = socket.getaddrinfo(name, port, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError):
            return False  # nothing to connect to, so no loop either
        return any(_loopback(ipaddress.ip_address(str(info[4][0]).split("%")[0])) for info in found)

    def _handle(self, connection: _Connection, client: Client, request: ProxyRequest) -> bool:
        before = client.sent
        self._begin()
        try:
            keep = bool(self._handler(request, client))
        except ClientGone:
            return False
        except Exception as exc:
            self.errors.append(exc)
            if client.sent == before:
                self._answer(connection, _Reject(502, "the capture proxy could not fetch this"))
            return False
        finally:
            self._end()
        if client.sent == before:
            self.errors.append(NoResponse(f"no response was sent for {request.url}"))
            self._answer(connection, _Reject(502, "the capture proxy could not fetch this"))
            return False
        return keep

    def _answer(self, connection: _Connection, reject: _Reject) -> None:
        """The proxy's own answer; then the connection closes, after reading for a
        moment what the browser still sends (closing a socket with unread bytes resets
        it, and the browser could lose the answer)."""
        body = (reject.text + "\n").encode("utf-8")
        head = (
            f"HTTP/1.1 {reject.status} {_REASONS[reject.status]}\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        )
        try:
            connection.sock.sendall(head.encode("ascii") + body)
            connection.finish_writing()
            connection.sock.settimeout(_LINGER_SECONDS)
            deadline, drained = time.monotonic() + _LINGER_SECONDS, 0
            while time.monotonic() < deadline and drained < _LINGER_BYTES:
                data = connection.sock.recv(_RECV)
                if not data:
                    break
                drained += len(data)
        except OSError:
            pass


def _framing(headers: list[tuple[str, str]]) -> tuple[bool, int]:
    """(chunked, Content-Length) of a request; both at once, or anything unclear, 400."""
    codings = [v for n, v in headers if n.lower() == "transfer-encoding"]
    lengths = [v for n, v in headers if n.lower() == "content-length"]
    if codings:
        if lengths:
            raise _Reject(400, "both Transfer-Encoding and Content-Length")
        if [t.strip().lower() for v in codings for t in v.split(",")] != ["chunked"]:
            raise _Reject(400, "a transfer coding other than chunked")
        return True, 0
    values = {t.strip() for v in lengths for t in v.split(",")}
    if not values:
        return False, 0
    if len(values) != 1 or not all(v.isdigit() and v.isascii() for v in values):
        raise _Reject(400, "bad Content-Length")
    return False, int(values.pop())
