"""HTTP/1.1 over a socket, keeping every byte exactly as sent and received.

Evidence needs the request as sent and the response as received: status line,
header fields in their order and spelling, and the body with its transfer coding
(chunked framing included) and content coding (gzip stays gzip).  General HTTP
libraries normalise all of that away, so this module speaks HTTP/1.1 itself:
one connection per exchange, ``Connection: close``, bodies handed out in
fixed-size chunks as they arrive, never read whole into memory.
"""

from __future__ import annotations

import queue
import re
import select
import socket
import ssl
import threading
import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from typing import TypeVar
from urllib.parse import urlsplit

from archiver.core.errors import Failure
from archiver.core.text import head_fields, warcio_blank
from archiver.core.urls import encode_path, encode_query
from archiver.web.addresses import AddressPolicy
from archiver.web.chunked import Dechunker as Dechunker  # imported from here elsewhere
from archiver.web.chunked import _ChunkedEnd
from archiver.web.chunked import dechunk as dechunk  # imported from here elsewhere

CHUNK_SIZE = 1024 * 1024
MAX_HEAD_BYTES = 256 * 1024


class FetchError(Failure):
    """The exchange failed before a response head was received."""

    unexpected = True  # the CLI hints at --debug (archiver.core.errors)

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"{url}: {reason}")
        self.url = url
        self.reason = reason


_T = TypeVar("_T")


class Interrupted(Exception):
    """The capture was asked to stop while this exchange was waiting for bytes."""


class ProtocolError(OSError):
    """The peer broke HTTP framing (treated like a broken connection)."""


class TooSlow(TimeoutError):
    """Fewer bytes arrived over the rate window than the minimum rate asks for."""


class Wire:
    """A connected socket with an idle timeout, an optional deadline and a stop flag.

    Every wait polls the stop flag, so a stopped capture never hangs on a quiet peer.
    With ``min_rate`` (bytes per second), every ``window`` seconds at least
    ``min_rate`` times the time since the last check must have arrived, else the next
    read raises :class:`TooSlow`: a peer that sends a byte now and then, never idle
    long enough for ``timeout``, cannot hold the exchange open for ever.
    """

    POLL = 0.25

    def __init__(
        self,
        sock: socket.socket | None,
        timeout: float,
        deadline: float | None,
        stop: threading.Event | None,
        min_rate: float | None = None,
        window: float = 60.0,
    ) -> None:
        self.sock = sock
        self.timeout = timeout
        self.deadline = deadline
        self.stop = stop
        self.min_rate = min_rate or None
        self.window = window
        # the first window starts with the first byte: until then ``timeout`` alone says
        # how long to wait (a user who raised it for a slow server to start answering)
        self.window_start: float | None = None
        self.window_bytes = 0  # received since window_start

    def _check_rate(self, now: float) -> None:
        """Raise :class:`TooSlow` when a window has passed with too few bytes."""
        rate = self.min_rate
        if rate is None or self.window_start is None:
            return
        elapsed = now - self.window_start
        if elapsed < self.window:
            return
        if self.window_bytes < rate * elapsed:
            raise TooSlow(
                f"{self.window_bytes} bytes in {elapsed:.0f} s "
                f"({self.window_bytes / elapsed:.1f} bytes/s), below the minimum rate of "
                f"{rate:g} bytes/s over {self.window:g} s"
            )
        self.window_start, self.window_bytes = now, 0

    def deadline_passed(self) -> bool:
        return self.deadline is not None and time.monotonic() >= self.deadline

    def ready(self) -> bool:
        """Whether bytes can be read now without waiting."""
        sock = self.sock
        if sock is None:
            return False
        if isinstance(sock, ssl.SSLSocket) and sock.pending():
            return True
        poller = select.poll()  # not select(): it fails for descriptors >= 1024
        poller.register(sock, select.POLLIN)
        return bool(poller.poll(0))

    def _read(self, call: Callable[[], _T]) -> _T:
        """Run a socket read, waking every POLL seconds to check stop and deadlines.

        The read itself carries the short timeout, so a TLS record that arrives
        only in part cannot block it past the stop flag or the deadline.
        """
        sock = self.sock
        assert sock is not None
        idle_end = time.monotonic() + self.timeout
        while True:
            if self.stop is not None and self.stop.is_set():
                raise Interrupted
            self._check_rate(time.monotonic())
            end = idle_end if self.deadline is None else min(idle_end, self.deadline)
            left = end - time.monotonic()
            if left <= 0:
                raise TimeoutError
            sock.settimeout(min(left, self.POLL))
            try:
                return call()
            except TimeoutError:
                continue

    def recv_into(self, target: memoryview) -> int:
        sock = self.sock
        if sock is None:
            return 0
        n = self._read(lambda: sock.recv_into(target))
        self._received(n)
        return n

    def _received(self, n: int) -> None:
        if self.window_start is None:
            self.window_start = time.monotonic()
        self.window_bytes += n

    def recv(self, size: int) -> bytes:
        sock = self.sock
        if sock is None:
            return b""
        data = self._read(lambda: sock.recv(size))
        self._received(len(data))
        return data

    def close(self) -> None:
        sock, self.sock = self.sock, None
        if sock is not None:
            sock.close()


@dataclass(frozen=True)
class Request:
    url: str
    raw: bytes  # the request exactly as sent
    host: str
    port: int
    secure: bool
    method: str = "GET"
    recorded: bytes | None = None  # what the WARC keeps, when secrets were redacted from raw

    @property
    def as_recorded(self) -> bytes:
        return self.raw if self.recorded is None else self.recorded


@dataclass
class Response:
    """A response head as received, and a stream of its raw body."""

    request: Request
    head: bytes  # status line and header fields, exactly as received, with the blank line
    status: int
    reason: str
    version: str
    headers: list[tuple[str, str]]
    ip_address: str
    protocols: list[str]  # WARC-Protocol values, higher layer first
    cipher_suite: str | None
    tls_error: str | None = None  # under --insecure: why the certificate did not verify
    certificate: bytes | None = None  # and the server's certificate (DER) in that case
    _wire: Wire = field(default_factory=lambda: Wire(None, 30.0, None, None), repr=False)
    _buffer: bytes = field(default=b"", repr=False)
    _body: Generator[memoryview, None, None] | None = field(default=None, repr=False)
    _deferred: OSError | None = field(default=None, repr=False)
    truncated: str | None = None  # set while reading: "length", "time" or "disconnect"
    error: str | None = None  # why the connection failed mid-body ("disconnect")
    slow: str | None = None  # why the body was cut below the minimum rate ("time")

    def header(self, name: str) -> str | None:
        lname = name.lower()
        for key, value in self.headers:
            if key.lower() == lname:
                return value
        return None

    @property
    def content_type(self) -> str | None:
        return self.header("Content-Type")

    @property
    def media_type(self) -> str | None:
        value = self.content_type
        if not value:
            return None
        return value.split(";", 1)[0].strip().lower() or None

    @property
    def chunked(self) -> bool:
        te = self.header("Transfer-Encoding") or ""
        return te.split(",")[-1].strip().lower() == "chunked"

    def _framing(self) -> tuple[str, int | None]:
        if self.status < 200 or self.status in (204, 304) or self.request.method == "HEAD":
            return "none", 0
        if self.chunked:
            return "chunked", None
        length = self.header("Content-Length")
        if length is not None:
            try:
                value = int(length.split(",")[0].strip())
            except ValueError:
                value = -1
            if value >= 0:
                return "length", value
        return "close", None

    @property
    def declared_length(self) -> int | None:
        kind, value = self._framing()
        return value if kind in ("length", "none") else None

    def iter_body(
        self, max_size: int | None = None, *, read_ahead: int = 0
    ) -> Iterator[memoryview]:
        """Yield the raw body (as on the wire) in chunks of up to CHUNK_SIZE.

        Stops at the end of the message, at ``max_size`` bytes (``truncated`` =
        "length"), at the deadline ("time") or when the peer goes away early
        ("disconnect", with ``error`` saying why), or when it arrives more slowly
        than the minimum rate ("time", with ``slow`` saying how slowly).  A yielded
        view is valid only until the next one is requested.  With ``read_ahead`` > 0
        a thread keeps receiving up to that many chunks ahead while the caller
        processes one.
        :meth:`close` stops the reading, that thread included, wherever it is.
        """
        body: Generator[memoryview, None, None] = self._iter_raw(max_size, buffers=1)
        if read_ahead > 0:
            body = _read_ahead(self._iter_raw(max_size, buffers=read_ahead + 2), read_ahead)
        self._body = body
        return body

    def _iter_raw(self, max_size: int | None, buffers: int) -> Generator[memoryview, None, None]:
        kind, remaining = self._framing()
        decoder = _ChunkedEnd(ProtocolError) if kind == "chunked" else None
        views = [memoryview(bytearray(CHUNK_SIZE)) for _ in range(buffers)]
        turn = 0
        pending = self._buffer
        self._buffer = b""
        sent = 0
        try:
            while kind != "none" and remaining != 0:
                if pending:
                    data = memoryview(pending)
                    pending = b""
                else:
                    view = views[turn]
                    turn = (turn + 1) % buffers
                    want = len(view) if remaining is None else min(len(view), remaining)
                    if max_size is not None:
                        room = max_size - sent
                        if room <= 0 and kind != "close":
                            # more is announced (length) or framed (chunked): a cut
                            self.truncated = "length"
                            break
                        want = min(want, max(room, 1))  # close-delimited: probe one byte
                    n = self._fill(view[:want], exact=kind == "length")
                    if n == 0:
                        if kind == "length":
                            self._fail_disconnect(f"connection closed {remaining} bytes early")
                        elif kind == "chunked":
                            self._fail_disconnect("connection closed before the last chunk")
                        break
                    data = view[:n]
                done = False
                if remaining is not None:
                    data = data[:remaining]
                    remaining -= len(data)
                    done = remaining == 0
                over = max_size is not None and sent + len(data) > max_size
                if max_size is not None and over:
                    data = data[: max_size - sent]  # bytes past the limit are not looked at
                if decoder is not None:
                    try:
                        if decoder.feed(data):
                            data = data[: len(data) - decoder.overrun]
                            done = True
                            over = False  # the message ended within the limit
                    except ProtocolError as exc:
                        # keep every byte received; the framing broke somewhere in them
                        self._fail_disconnect(str(exc))
                        done = True
                if over:
                    self.truncated = "length"
                    done = True
                if len(data):
                    yield data
                    sent += len(data)
                if done:
                    break
        except TooSlow as exc:
            self.truncated = "time"  # a limit, as --max-time is: what came is kept
            self.slow = str(exc)
        except TimeoutError:
            if self._wire.deadline_passed():
                self.truncated = "time"  # a limit the archivist set, not a failure
            else:
                self._fail_disconnect("timed out waiting for the body")
        except OSError as exc:
            self._fail_disconnect(f"connection error while reading the body: {exc}")
        finally:
            self._wire.close()  # not close(): this may run on the read-ahead thread

    def _fill(self, view: memoryview, exact: bool) -> int:
        """Read into ``view``: at least one byte (0 at EOF).

        With ``exact`` (the bytes are announced by Content-Length) it waits until
        the view is full; otherwise it takes only what is ready, so that the end
        of a chunked or close-delimited body is never waited for.  An error after
        some bytes arrived is raised at the next call, so those bytes are kept.
        """
        if self._deferred is not None:
            exc, self._deferred = self._deferred, None
            raise exc
        wire = self._wire
        fill = wire.recv_into(view)
        try:
            while fill and fill < len(view) and (exact or wire.ready()):
                got = wire.recv_into(view[fill:])
                if not got:
                    break
                fill += got
        except OSError as exc:  # TimeoutError included
            self._deferred = exc
        return fill

    def _fail_disconnect(self, reason: str) -> None:
        self.truncated = "disconnect"
        self.error = reason

    def read_all(self, max_size: int | None = None) -> bytes:
        return b"".join(bytes(c) for c in self.iter_body(max_size))

    def detach(self) -> tuple[socket.socket, bytes]:
        """After a ``101 Switching Protocols`` head: the connection and the bytes read
        past the head, handed to the caller (a WebSocket tunnel); this response no
        longer owns them."""
        sock, self._wire.sock = self._wire.sock, None
        if sock is None:
            raise ProtocolError("the connection is closed")
        rest, self._buffer = self._buffer, b""
        return sock, rest

    def close(self) -> None:
        """Stop reading the body (joining a read-ahead thread) and close the connection."""
        body, self._body = self._body, None
        if body is not None:
            body.close()
        self._wire.close()


_END = object()


def _read_ahead(
    source: Generator[memoryview, None, None], depth: int
) -> Generator[memoryview, None, None]:
    """Run ``source`` in a thread, ``depth`` chunks ahead of the consumer.

    ``source`` must rotate through at least depth + 2 buffers: one being consumed,
    ``depth`` queued, one being filled.  If the consumer stops early, the thread
    stops too and ``source`` is closed (which closes the connection).
    """
    box: queue.Queue[object] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: object) -> bool:
        while not stop.is_set():
            try:
                box.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        end: object = _END
        try:
            for chunk in source:
                if not put(chunk):
                    break
        except BaseException as exc:  # handed to the consumer, raised there
            end = exc
        finally:
            close = getattr(source, "close", None)
            if close is not None:
                close()
        put(end)

    thread = threading.Thread(target=produce, name="read-ahead", daemon=True)
    thread.start()
    try:
        while True:
            item = box.get()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            assert isinstance(item, memoryview)
            yield item
    finally:
        stop.set()
        thread.join()


def request_target(url: str) -> tuple[str, str, int, bool, str]:
    """Split ``url`` into (scheme, host, port, secure, origin-form target)."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise FetchError(url, f"unsupported scheme {scheme!r}")
    host = parts.hostname
    if not host:
        raise FetchError(url, "no host in URL")
    try:
        port = parts.port or (443 if scheme == "https" else 80)
    except ValueError as exc:
        raise FetchError(url, f"invalid port: {exc}") from exc
    path = encode_path(parts.path)
    target = path + ("?" + encode_query(parts.query) if parts.query else "")
    return scheme, host, port, scheme == "https", target


REDACTED = "[redacted by archiver]"


def build_request(
    url: str,
    headers: list[tuple[str, str]],
    *,
    method: str = "GET",
    body: bytes = b"",
    secret: tuple[str, ...] = (),
    connection: str = "close",
) -> Request:
    """The request to send, and the copy to record: the values of the ``secret``
    header fields (cookies, say) are replaced by :data:`REDACTED` in the copy.
    ``connection`` is the Connection field's value (``Upgrade`` for a WebSocket
    handshake the browser makes; else one exchange per connection)."""
    _, host, port, secure, target = request_target(url)
    try:
        ascii_host = host.encode("idna").decode("ascii")
    except UnicodeError as exc:
        raise FetchError(url, f"invalid host name: {exc}") from exc
    if ":" in ascii_host:  # IPv6 literal
        ascii_host = f"[{ascii_host}]"
    default_port = 443 if secure else 80
    host_field = ascii_host if port == default_port else f"{ascii_host}:{port}"
    if method not in _METHODS:
        raise FetchError(url, f"unsupported HTTP method {method!r}")
    if body or method in ("POST", "PUT", "PATCH"):
        headers = _framed(headers, len(body))
    hidden = {name.lower() for name in secret}

    def render(redact: bool) -> bytes:
        lines = [f"{method} {target} HTTP/1.1", f"Host: {host_field}"]
        for k, v in headers:
            shown = REDACTED if redact and k.lower() in hidden else v
            lines.append(f"{k}: {shown}")
        lines.append(f"Connection: {connection}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", "replace") + body

    raw = render(False)
    recorded = render(True) if any(k.lower() in hidden for k, _ in headers) else None
    return Request(
        url=url, raw=raw, host=host, port=port, secure=secure, method=method, recorded=recorded
    )


_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def _framed(headers: list[tuple[str, str]], length: int) -> list[tuple[str, str]]:
    """The fields with the body framed by one Content-Length: a given one (a browser's,
    relayed) keeps its place and gets the length sent, further ones and any
    Transfer-Encoding go (the body is sent whole, never chunked: two lengths or both
    framings make servers refuse the request)."""
    out: list[tuple[str, str]] = []
    framed = False
    for name, value in headers:
        lowered = name.lower()
        if lowered == "transfer-encoding" or (lowered == "content-length" and framed):
            continue
        if lowered == "content-length":
            framed = True
            value = str(length)
        out.append((name, value))
    if not framed:
        out.append(("Content-Length", str(length)))
    return out


@dataclass(frozen=True)
class FetchSettings:
    timeout: float = 30.0  # connect, and longest wait for any bytes
    max_time: float | None = None  # whole exchange, body included
    insecure: bool = False
    # which addresses may be connected to (a capture always sets one); None: any
    addresses: AddressPolicy | None = None
    # bytes per second a response must average over each min_rate_window seconds,
    # head included; None: no minimum (the idle timeout alone applies)
    min_rate: float | None = None
    min_rate_window: float = 60.0


def open_exchange(
    request: Request, settings: FetchSettings, stop: threading.Event | None = None
) -> Response:
    """Connect, send ``request`` and read the response head.

    Raises :class:`FetchError` when no response head arrives, and
    :class:`Interrupted` when ``stop`` is set while waiting.
    """
    url = request.url
    deadline = time.monotonic() + settings.max_time if settings.max_time else None
    sock = _connect(request, settings)
    protocols = ["http/1.1"]
    cipher = None
    tls_error = certificate = None
    try:
        ip = sock.getpeername()[0]
        if request.secure:
            try:
                sock = _tls(sock, request, verify=True)
            except ssl.SSLCertVerificationError as exc:
                tls_error = str(exc.verify_message or exc)
                if not settings.insecure:
                    raise FetchError(url, f"TLS certificate rejected: {tls_error}") from exc
                # --insecure: the same exchange on a new connection that does not check,
                # with what was wrong kept for the provenance
                sock = _connect(request, settings)
                sock = _tls(sock, request, verify=False)
                certificate = sock.getpeercert(binary_form=True)
            version = sock.version()
            if version:
                protocols.append(version.lower().replace("tlsv", "tls/"))
            info = sock.cipher()
            if info and info[0].startswith("TLS_"):
                cipher = info[0]  # OpenSSL uses the IANA name for TLS 1.3 suites
        sock.sendall(request.raw)
        wire = Wire(
            sock, settings.timeout, deadline, stop, settings.min_rate, settings.min_rate_window
        )
        head, rest = _read_head(wire, url)
        version, status, reason, headers = _parse_head(head, url)
    except BaseException as exc:
        sock.close()
        if isinstance(exc, (FetchError, Interrupted)):
            raise
        if isinstance(exc, TooSlow):
            raise FetchError(url, f"the response head arrived too slowly: {exc}") from exc
        if isinstance(exc, TimeoutError):
            if deadline is not None and time.monotonic() >= deadline:
                raise FetchError(url, "time limit reached waiting for the response") from exc
            raise FetchError(url, "timed out waiting for the response") from exc
        if isinstance(exc, OSError):
            raise FetchError(url, f"connection error: {_reason(exc)}") from exc
        raise
    return Response(
        request=request,
        head=head,
        status=status,
        reason=reason,
        version=version,
        headers=headers,
        ip_address=ip,
        protocols=protocols,
        cipher_suite=cipher,
        tls_error=tls_error,
        certificate=certificate,
        _wire=wire,
        _buffer=rest,
    )


def _connect(request: Request, settings: FetchSettings) -> socket.socket:
    """A socket connected to one of the host's addresses that ``settings.addresses`` allows.

    The host is resolved once; each address is checked before the socket connects to
    exactly that address, and the peer address is checked again once connected, so a
    name that resolves differently from one lookup to the next gains nothing.
    """
    url = request.url
    policy = settings.addresses
    try:
        found = socket.getaddrinfo(request.host, request.port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise FetchError(
            url, f"DNS lookup failed for {request.host}: {exc.strerror or exc}"
        ) from exc
    except (OSError, UnicodeError) as exc:
        raise FetchError(
            url, f"cannot connect to {request.host}:{request.port}: {_reason(exc)}"
        ) from exc
    refused: str | None = None
    failure: OSError | None = None
    for family, kind, proto, _, address in found:
        why = policy.refusal(str(address[0]), request.port, request.host) if policy else None
        if why:
            refused = refused or why
            continue
        sock = socket.socket(family, kind, proto)
        try:
            sock.settimeout(settings.timeout)
            sock.connect(address)
            peer = sock.getpeername()
        except OSError as exc:
            sock.close()
            failure = exc
            continue
        why = policy.refusal(str(peer[0]), int(peer[1]), request.host) if policy else None
        if why:  # cannot differ from the address checked; checked all the same
            sock.close()
            raise FetchError(url, why)
        return sock
    if failure is None:
        raise FetchError(url, refused or f"DNS lookup for {request.host} gave no address")
    if isinstance(failure, TimeoutError):
        raise FetchError(url, f"timed out connecting to {request.host}:{request.port}") from failure
    raise FetchError(
        url, f"cannot connect to {request.host}:{request.port}: {_reason(failure)}"
    ) from failure


def _tls(sock: socket.socket, request: Request, *, verify: bool) -> ssl.SSLSocket:
    """The TLS handshake; SSLCertVerificationError when ``verify`` and the certificate fails."""
    ctx = ssl.create_default_context()
    if not verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    try:
        return ctx.wrap_socket(sock, server_hostname=request.host)
    except ssl.SSLCertVerificationError:
        sock.close()
        raise
    except (ssl.SSLError, OSError) as exc:
        sock.close()
        raise FetchError(request.url, f"TLS handshake failed: {exc}") from exc


def _reason(exc: BaseException) -> str:
    return str(getattr(exc, "strerror", None) or exc)


def _read_head(wire: Wire, url: str) -> tuple[bytes, bytes]:
    """Read up to the end of the final response head.

    1xx interim heads (100 Continue, 103 Early Hints) are read and skipped: a WARC
    response record holds one HTTP response, the final one.  ``101 Switching
    Protocols`` is final: after it the connection speaks another protocol (a WebSocket
    a browser opened through the intercepting proxy).
    """
    data = bytearray()
    scanned = 0
    while True:
        interim = _INTERIM.match(data) is not None  # known once the status line is in
        end, scanned = _head_end(data, scanned, interim=interim)
        if end is not None:
            if interim:
                del data[:end]
                scanned = 0
                continue
            return bytes(data[:end]), bytes(data[end:])
        if len(data) > MAX_HEAD_BYTES:
            raise FetchError(url, f"response head larger than {MAX_HEAD_BYTES} bytes")
        piece = wire.recv(65536)
        if not piece:
            if not data:
                raise FetchError(url, "the server closed the connection without answering")
            raise FetchError(url, "the server closed the connection inside the response head")
        data += piece


_INTERIM = re.compile(rb"HTTP/1\.[01] 1(?!01)[0-9][0-9][ \r\n]")
_STATUS = re.compile(r"[1-9][0-9][0-9]")


def _head_end(data: bytearray, start: int, *, interim: bool = False) -> tuple[int | None, int]:
    """Where the head in ``data`` ends (None: not yet), and where to look next time.

    The head ends after the first line, the status line apart, that holds nothing but
    white space: the rule of warcio's parser, which pywb, cdxj-indexer and our own
    reader follow.  So the payload whose digest we write is the payload every WARC
    reader finds, even when a hostile server ends lines with CR CR LF or sends a line
    of spaces among its headers (CR LF CR LF alone would read on past them).
    ``start`` is the start of a line not read to its end yet.

    An ``interim`` (1xx) head is not stored, so no WARC reader sees it: it ends, as
    HTTP clients end it, at the first line holding nothing but CRs (a line of spaces in
    it must not make its next header line pass for the final status line).
    """
    pos = start
    while (newline := data.find(b"\n", pos)) >= 0:
        line = data[pos:newline]
        if pos > 0 and (not line.strip(b"\r") if interim else warcio_blank(line)):
            return newline + 1, newline + 1
        pos = newline + 1
    return None, pos


def _parse_head(head: bytes, url: str) -> tuple[str, int, str, list[tuple[str, str]]]:
    text = head.decode("latin-1")
    lines = text.replace("\r\n", "\n").split("\n")
    status_line = lines[0]
    parts = status_line.split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/") or not _STATUS.fullmatch(parts[1]):
        raise FetchError(url, f"not an HTTP response: {status_line[:80]!r}")
    status = int(parts[1])
    return parts[0], status, parts[2] if len(parts) > 2 else "", head_fields(lines)
