"""The capture proxy, with real clients through it: raw sockets, ``http.client``, curl and
``openssl s_client``; real TLS with the capture's interception CA; a real WebSocket echo
server behind a handler that forwards to it. The handlers answer from the test."""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import os
import shutil
import socket
import ssl
import struct
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from archiver.core.errors import UsageProblem
from archiver.trust.interception import InterceptionCA
from archiver.web.proxy import (
    Client,
    ClientGone,
    Handler,
    InterceptingProxy,
    NoResponse,
    ProxyRequest,
    socket_owner,
)

Start = Callable[..., InterceptingProxy]


def echo(request: ProxyRequest, client: Client) -> bool:
    """Answer with the request as the handler got it, as JSON."""
    body = json.dumps(
        {
            "method": request.method,
            "url": request.url,
            "headers": request.headers,
            "body": request.body.decode("latin-1"),
            "websocket": request.websocket,
            "tunnel": request.tunnel,
            "connection": client.connection,
        }
    ).encode("utf-8")
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
    client.send(head % len(body) + body)
    return True


@pytest.fixture
def ca() -> Iterator[InterceptionCA]:
    with InterceptionCA.create("proxy-tests") as authority:
        yield authority


@pytest.fixture
def start(ca: InterceptionCA) -> Iterator[Start]:
    """Start a proxy (echo unless told otherwise); every one is stopped after the test."""
    started: list[InterceptingProxy] = []

    def make(handler: Handler = echo, **options: object) -> InterceptingProxy:
        proxy = InterceptingProxy(handler, ca.server_context, **options)  # type: ignore[arg-type]
        proxy.start()
        started.append(proxy)
        return proxy

    yield make
    for proxy in started:
        proxy.stop()


class Wire:
    """A client's side of a connection: send bytes, read HTTP/1.1 responses."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _more(self) -> None:
        data = self.sock.recv(65536)
        if not data:
            raise EOFError
        self.buf += data

    def exact(self, size: int) -> bytes:
        while len(self.buf) < size:
            self._more()
        data, self.buf = self.buf[:size], self.buf[size:]
        return data

    def head(self) -> tuple[int, dict[str, str]]:
        while b"\r\n\r\n" not in self.buf:
            self._more()
        raw, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = raw.decode("latin-1").split("\r\n")
        fields = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            fields[name.strip().lower()] = value.strip()
        return int(lines[0].split(" ")[1]), fields

    def response(self) -> tuple[int, dict[str, str], bytes]:
        status, fields = self.head()
        return status, fields, self.exact(int(fields.get("content-length", "0")))

    def echoed(self) -> dict[str, object]:
        status, _, body = self.response()
        assert status == 200, body
        result: dict[str, object] = json.loads(body)
        return result

    def at_eof(self) -> bool:
        """True once the proxy closed the connection (EOF or reset) with nothing more."""
        try:
            return self.sock.recv(65536) == b""
        except ConnectionResetError:
            return True

    def close(self) -> None:
        self.sock.close()


def connect(proxy: InterceptingProxy, timeout: float = 5) -> Wire:
    return Wire(socket.create_connection(proxy.address, timeout=timeout))


def tunnel(
    proxy: InterceptingProxy,
    authority: str,
    *,
    tls_host: str | None = None,
    ca: InterceptionCA | None = None,
) -> Wire:
    """CONNECT through the proxy; with ``tls_host``, TLS inside, verified against the CA."""
    wire = connect(proxy)
    wire.send(f"CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n\r\n".encode())
    status, _ = wire.head()
    assert status == 200
    assert wire.buf == b""
    if tls_host is None:
        return wire
    assert ca is not None
    context = ssl.create_default_context(cadata=ca.cert_pem.decode("ascii"))
    return Wire(context.wrap_socket(wire.sock, server_hostname=tls_host))


def https_connection(
    proxy: InterceptingProxy, ca: InterceptionCA, host: str, port: int = 443
) -> http.client.HTTPSConnection:
    context = ssl.create_default_context(cadata=ca.cert_pem.decode("ascii"))
    assert context.check_hostname and context.verify_mode == ssl.CERT_REQUIRED
    connection = http.client.HTTPSConnection(*proxy.address, timeout=5, context=context)
    connection.set_tunnel(host, port)
    return connection


def get_json(
    connection: http.client.HTTPConnection, method: str, target: str, **kw: object
) -> dict[str, object]:
    connection.request(method, target, **kw)  # type: ignore[arg-type]
    response = connection.getresponse()
    body = response.read()
    assert response.status == 200, body
    result: dict[str, object] = json.loads(body)
    return result


def wait_for(condition: Callable[[], bool], seconds: float = 3) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


# -- plain HTTP and tunnels


def test_it_listens_on_loopback_only(ca: InterceptionCA) -> None:
    with pytest.raises(UsageProblem):
        InterceptingProxy(echo, ca.server_context, host="0.0.0.0")
    with pytest.raises(UsageProblem):
        InterceptingProxy(echo, ca.server_context, host="localhost")  # a name could be anything
    with InterceptingProxy(echo, ca.server_context) as proxy:
        host, port = proxy.address
        assert host == "127.0.0.1" and port > 0
        with pytest.raises(UsageProblem):
            proxy.start()


def test_an_absolute_form_request_reaches_the_handler_with_its_url(start: Start) -> None:
    proxy = start()
    connection = http.client.HTTPConnection(*proxy.address, timeout=5)
    got = get_json(connection, "GET", "http://example.test:8080/a/b?c=d&e", headers={"X-Test": "1"})
    assert got["method"] == "GET"
    assert got["url"] == "http://example.test:8080/a/b?c=d&e"
    assert got["tunnel"] is None and got["websocket"] is False and got["body"] == ""
    assert ["X-Test", "1"] in got["headers"]  # type: ignore[operator]
    assert ["Host", "example.test:8080"] in got["headers"]  # type: ignore[operator]
    # the same connection carries the next ones
    second = get_json(connection, "POST", "http://example.test/form", body=b"a=1")
    third = get_json(connection, "GET", "http://other.test/")
    assert second["url"] == "http://example.test/form" and second["body"] == "a=1"
    assert got["connection"] == second["connection"] == third["connection"]
    assert proxy.errors == [] and proxy.blocked == []


def test_connect_and_tls_verified_against_the_ca_for_names_and_addresses(
    start: Start, ca: InterceptionCA
) -> None:
    proxy = start()
    for host, port, url in (
        ("localhost", 443, "https://localhost/p/q?r=1"),
        ("localhost", 8443, "https://localhost:8443/p/q?r=1"),
        ("127.0.0.1", 443, "https://127.0.0.1/p/q?r=1"),
        ("www.example.org", 443, "https://www.example.org/p/q?r=1"),
    ):
        connection = https_connection(proxy, ca, host, port)
        got = get_json(connection, "GET", "/p/q?r=1")
        assert got["url"] == url
        assert got["tunnel"] == f"{host}:{port}"
        connection.close()
    wire = tunnel(proxy, "[::1]:443", tls_host="::1", ca=ca)  # the certificate names ::1
    wire.send(b"GET /six HTTP/1.1\r\nHost: [::1]\r\n\r\n")
    got = wire.echoed()
    assert got["url"] == "https://[::1]/six" and got["tunnel"] == "[::1]:443"
    assert proxy.errors == []


def test_a_client_that_does_not_trust_the_ca_gets_no_exchange(start: Start) -> None:
    calls: list[ProxyRequest] = []

    def handler(request: ProxyRequest, client: Client) -> bool:
        calls.append(request)
        return echo(request, client)

    proxy = start(handler)
    other = InterceptionCA.create("someone else")
    connection = https_connection(proxy, other, "localhost")
    with pytest.raises(ssl.SSLCertVerificationError):
        connection.request("GET", "/")
    assert calls == []
    # the browser's alert is kept: it says the CA is not trusted
    assert wait_for(lambda: any(isinstance(e, ssl.SSLError) for e in proxy.errors))


def test_three_requests_on_one_tunnel(start: Start, ca: InterceptionCA) -> None:
    proxy = start()
    connection = https_connection(proxy, ca, "localhost")
    answers = [get_json(connection, "GET", f"/{n}") for n in range(3)]
    sock = connection.sock
    assert [a["url"] for a in answers] == [f"https://localhost/{n}" for n in range(3)]
    assert len({a["connection"] for a in answers}) == 1
    assert connection.sock is sock  # http.client did not have to reconnect


def test_pipelined_requests_are_answered_in_order(start: Start) -> None:
    proxy = start()
    wire = connect(proxy)
    wire.send(
        b"GET http://a.test/1 HTTP/1.1\r\nHost: a.test\r\n\r\n"
        b"POST http://a.test/2 HTTP/1.1\r\nHost: a.test\r\nContent-Length: 3\r\n\r\nxyz"
        b"\r\nGET http://a.test/3 HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n"
    )
    assert wire.echoed()["url"] == "http://a.test/1"
    second = wire.echoed()
    assert second["url"] == "http://a.test/2" and second["body"] == "xyz"
    assert wire.echoed()["url"] == "http://a.test/3"
    assert wire.at_eof()  # Connection: close is honoured


def test_plain_http_inside_a_tunnel(start: Start) -> None:
    proxy = start()
    wire = tunnel(proxy, "chat.example:80")
    wire.send(b"GET /room?x HTTP/1.1\r\nHost: chat.example\r\n\r\n")
    got = wire.echoed()
    assert got["url"] == "http://chat.example/room?x" and got["tunnel"] == "chat.example:80"
    wire = tunnel(proxy, "chat.example:8000")
    wire.send(b"GET http://chat.example:8000/abs HTTP/1.1\r\nHost: chat.example:8000\r\n\r\n")
    assert wire.echoed()["url"] == "http://chat.example:8000/abs"
    wire = tunnel(proxy, "chat.example:8000")  # another host than the tunnel's: no
    wire.send(b"GET http://elsewhere.example:8000/ HTTP/1.1\r\nHost: elsewhere.example\r\n\r\n")
    assert wire.response()[0] == 400


# -- bodies


def test_a_chunked_post_is_handed_over_decoded(start: Start, ca: InterceptionCA) -> None:
    proxy = start()
    connection = https_connection(proxy, ca, "localhost")
    got = get_json(
        connection, "POST", "/upload", body=iter([b"abc", b"defgh"]), encode_chunked=True
    )
    assert got["body"] == "abcdefgh"
    assert ["Transfer-Encoding", "chunked"] in got["headers"]  # type: ignore[operator]
    # extensions, a trailer field, upper-case hex
    wire = connect(proxy)
    wire.send(
        b"POST http://a.test/ HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5;name=value\r\nhello\r\nB\r\n, chunked!!\r\n0\r\nX-Checksum: 1\r\n\r\n"
    )
    got = wire.echoed()
    assert got["body"] == "hello, chunked!!"
    assert all(name != "X-Checksum" for name, _ in got["headers"])  # type: ignore[attr-defined]


def test_expect_100_continue_is_answered_before_the_body_is_sent(start: Start) -> None:
    proxy = start()
    wire = connect(proxy)
    wire.send(
        b"PUT http://a.test/file HTTP/1.1\r\nHost: a.test\r\nContent-Length: 5\r\n"
        b"Expect: 100-continue\r\n\r\n"
    )
    assert wire.exact(25) == b"HTTP/1.1 100 Continue\r\n\r\n"  # before any body byte
    wire.send(b"hello")
    got = wire.echoed()
    assert got["method"] == "PUT" and got["body"] == "hello"


def test_an_oversize_body_is_413_and_never_reaches_the_handler(start: Start) -> None:
    calls: list[ProxyRequest] = []

    def handler(request: ProxyRequest, client: Client) -> bool:
        calls.append(request)
        return echo(request, client)

    proxy = start(handler, max_body=1000)
    wire = connect(proxy)
    wire.send(b"POST http://a.test/ HTTP/1.1\r\nHost: a.test\r\nContent-Length: 1000\r\n\r\n")
    wire.send(b"x" * 1000)
    assert len(wire.echoed()["body"]) == 1000  # type: ignore[arg-type]
    wire = connect(proxy)
    wire.send(b"POST http://a.test/ HTTP/1.1\r\nHost: a.test\r\nContent-Length: 5000\r\n\r\n")
    wire.send(b"x" * 5000)
    status, fields, _ = wire.response()
    assert status == 413 and fields["connection"] == "close"
    wire = connect(proxy)  # the proxy reads what is still sent, so that its answer is read
    wire.send(b"POST http://a.test/ HTTP/1.1\r\nHost: a.test\r\nContent-Length: 20000000\r\n\r\n")
    wire.send(b"x" * 20_000_000)
    assert wire.response()[0] == 413
    wire = connect(proxy)  # with 100-continue: refused before the body is asked for
    wire.send(
        b"POST http://a.test/ HTTP/1.1\r\nHost: a.test\r\nContent-Length: 5000\r\n"
        b"Expect: 100-continue\r\n\r\n"
    )
    assert wire.response()[0] == 413
    wire = connect(proxy)
    chunk = b"258\r\n" + b"y" * 600 + b"\r\n"
    wire.send(b"POST http://a.test/ HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\n\r\n")
    wire.send(chunk + chunk + b"0\r\n\r\n")
    assert wire.response()[0] == 413
    assert len(calls) == 1


# -- heads


def test_header_fields_keep_order_and_case_without_hop_by_hop_ones(start: Start) -> None:
    proxy = start()
    wire = connect(proxy)
    wire.send(
        b"GET http://a.test/ HTTP/1.1\r\n"
        b"Host: a.test\r\n"
        b"X-Zebra: 1\r\n"
        b"Proxy-Connection: keep-alive\r\n"
        b"x-lower:  spaced value \t\r\n"
        b"Connection: keep-alive, X-Drop-Me\r\n"
        b"X-Drop-Me: gone\r\n"
        b"Proxy-Authorization: Basic Zm9vOmJhcg==\r\n"
        b"Keep-Alive: timeout=5\r\n"
        b"TE: trailers\r\n"
        b"Trailer: X-Checksum\r\n"
        b"Upgrade: h2c\r\n"
        b"ACCEPT: */*\r\n"
        b"X-Zebra: 2\r\n"
        b"X-Latin: caf\xe9\r\n"
        b"Cookie: a=1; b=2\r\n"
        b"\r\n"
    )
    got = wire.echoed()
    assert got["headers"] == [
        ["Host", "a.test"],
        ["X-Zebra", "1"],
        ["x-lower", "spaced value"],
        ["ACCEPT", "*/*"],
        ["X-Zebra", "2"],
        ["X-Latin", "caf\xe9"],  # latin-1: the byte 0xE9 as sent
        ["Cookie", "a=1; b=2"],
    ]


def test_an_oversize_head_is_431(start: Start) -> None:
    proxy = start()
    wire = connect(proxy)
    wire.send(b"GET http://a.test/ HTTP/1.1\r\nX-Big: " + b"a" * 70_000 + b"\r\n\r\n")
    status, fields, body = wire.response()
    assert status == 431 and b"64 KiB" in body and fields["connection"] == "close"
    fields_200 = b"".join(b"X-F%d: v\r\n" % n for n in range(200))
    wire = connect(proxy)
    wire.send(b"GET http://a.test/ HTTP/1.1\r\n" + fields_200 + b"\r\n")
    assert len(wire.echoed()["headers"]) == 200  # type: ignore[arg-type]
    wire = connect(proxy)
    wire.send(b"GET http://a.test/ HTTP/1.1\r\n" + fields_200 + b"X-One-More: v\r\n\r\n")
    assert wire.response()[0] == 431


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GARBAGE\r\n\r\n",
        b"GET /relative HTTP/1.1\r\nHost: a.test\r\n\r\n",  # origin form outside a tunnel
        b"GET http://a.test/ HTTP/2.0\r\n\r\n",
        b"GET  http://a.test/ HTTP/1.1\r\n\r\n",
        b"GET ftp://a.test/ HTTP/1.1\r\n\r\n",
        b"GET http://a.test/ HTTP/1.1\r\nHost : a.test\r\n\r\n",
        b"GET http://a.test/ HTTP/1.1\r\nX-A: 1\r\n folded\r\n\r\n",
        b"GET http://a.test/ HTTP/1.1\r\nNoColon\r\n\r\n",
        b"POST http://a.test/ HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"POST http://a.test/ HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
        b"POST http://a.test/ HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
        b"POST http://a.test/ HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
        b"POST http://a.test/ HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"GET http://a b/ HTTP/1.1\r\n\r\n",
        b"CONNECT a.test HTTP/1.1\r\n\r\n",
        b"CONNECT a.test:99999 HTTP/1.1\r\n\r\n",
        b"CONNECT [zz]:443 HTTP/1.1\r\n\r\n",
    ],
)
def test_bad_syntax_is_400(start: Start, request_bytes: bytes) -> None:
    calls: list[ProxyRequest] = []

    def handler(request: ProxyRequest, client: Client) -> bool:
        calls.append(request)
        return echo(request, client)

    proxy = start(handler)
    wire = connect(proxy)
    wire.send(request_bytes)
    status, _, _ = wire.response()
    assert status == 400
    assert wire.at_eof()
    assert calls == []


# -- refusals


def test_a_refused_request_is_403_and_listed(start: Start, ca: InterceptionCA) -> None:
    asked: list[tuple[str, int]] = []

    def refuse(host: str, port: int) -> str | None:
        asked.append((host, port))
        return "on the test's list" if host == "blocked.example" or port == 444 else None

    proxy = start(refuse=refuse)
    wire = connect(proxy)
    wire.send(b"GET http://blocked.example/x HTTP/1.1\r\nHost: blocked.example\r\n\r\n")
    status, _, body = wire.response()
    assert status == 403 and b"on the test's list" in body
    wire = connect(proxy)
    wire.send(b"CONNECT blocked.example:443 HTTP/1.1\r\nHost: blocked.example:443\r\n\r\n")
    assert wire.response()[0] == 403
    assert [(b["target"], b["method"], b["reason"]) for b in proxy.blocked] == [
        ("http://blocked.example/x", "GET", "on the test's list"),
        ("blocked.example:443", "CONNECT", "on the test's list"),
    ]
    assert all(isinstance(b["time"], float) for b in proxy.blocked)
    asked.clear()
    connection = https_connection(proxy, ca, "localhost")
    get_json(connection, "GET", "/a")
    get_json(connection, "GET", "/b")
    assert asked == [("localhost", 443)] * 3  # at CONNECT, then before each request
    wire = connect(proxy)
    wire.send(b"CONNECT ok.example:444 HTTP/1.1\r\n\r\n")
    assert wire.response()[0] == 403


def test_requests_to_the_proxy_itself_are_always_refused(start: Start) -> None:
    calls: list[ProxyRequest] = []

    def handler(request: ProxyRequest, client: Client) -> bool:
        calls.append(request)
        return echo(request, client)

    proxy = start(handler, refuse=lambda host, port: None)
    port = proxy.address[1]
    for authority in (
        f"127.0.0.1:{port}",
        f"localhost:{port}",
        f"LocalHost.:{port}",
        f"[::1]:{port}",
        f"0.0.0.0:{port}",
        f"127.0.0.2:{port}",
        f"127.1:{port}",  # resolves to 127.0.0.1
        f"[::ffff:127.0.0.1]:{port}",
        f"app.localhost:{port}",
    ):
        wire = connect(proxy)
        wire.send(f"CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n\r\n".encode())
        status, _, body = wire.response()
        assert status == 403, authority
        assert b"capture proxy itself" in body
        wire = connect(proxy)
        wire.send(f"GET http://{authority}/loop HTTP/1.1\r\nHost: {authority}\r\n\r\n".encode())
        assert wire.response()[0] == 403, authority
    assert calls == []
    assert len(proxy.blocked) == 18
    wire = connect(proxy)  # another port of loopback is no loop
    wire.send(f"GET http://127.0.0.1:{port + 1 if port < 65535 else 1}/ HTTP/1.1\r\n\r\n".encode())
    assert wire.echoed()["method"] == "GET"


# -- handlers that fail


def test_a_handler_exception_is_502_and_kept(start: Start) -> None:
    def handler(request: ProxyRequest, client: Client) -> bool:
        if request.url.endswith("/late"):
            client.send(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial")
        if request.url.endswith("/silent"):
            return True
        raise RuntimeError("origin unreachable")

    proxy = start(handler)
    wire = connect(proxy)
    wire.send(b"GET http://a.test/early HTTP/1.1\r\nHost: a.test\r\n\r\n")
    status, _, body = wire.response()
    assert status == 502 and b"origin unreachable" not in body
    assert wire.at_eof()
    wire = connect(proxy)
    wire.send(b"GET http://a.test/late HTTP/1.1\r\nHost: a.test\r\n\r\n")
    status, _ = wire.head()
    assert status == 200  # what was sent stays; no 502 after it, the connection ends
    assert wire.buf == b"partial" and wire.at_eof()
    wire = connect(proxy)
    wire.send(b"GET http://a.test/silent HTTP/1.1\r\nHost: a.test\r\n\r\n")
    assert wire.response()[0] == 502
    assert [type(e) for e in proxy.errors] == [RuntimeError, RuntimeError, NoResponse]


def test_a_browser_that_leaves_is_no_error(start: Start) -> None:
    entered, closed, gone = threading.Event(), threading.Event(), threading.Event()

    def handler(request: ProxyRequest, client: Client) -> bool:
        entered.set()
        closed.wait(5)  # the browser closes meanwhile
        with pytest.raises(ClientGone):
            for _ in range(200):
                client.send(b"x" * 65536)
        gone.set()
        raise ClientGone("gone")

    proxy = start(handler)
    wire = connect(proxy)
    wire.send(b"GET http://a.test/ HTTP/1.1\r\nHost: a.test\r\n\r\n")
    assert entered.wait(5)
    wire.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    wire.close()  # a reset, as a browser leaving a page may do
    closed.set()
    assert gone.wait(5)
    assert wait_for(lambda: proxy.inflight == 0)
    assert proxy.errors == []
    assert issubclass(ClientGone, OSError)


# -- activity


def test_inflight_and_last_activity(start: Start) -> None:
    entered, release = threading.Event(), threading.Event()

    def handler(request: ProxyRequest, client: Client) -> bool:
        entered.set()
        release.wait(5)
        return echo(request, client)

    proxy = start(handler)
    assert proxy.inflight == 0
    before = proxy.last_activity
    wire = connect(proxy)
    wire.send(b"GET http://a.test/ HTTP/1.1\r\nHost: a.test\r\n\r\n")
    assert entered.wait(5)
    assert proxy.inflight == 1
    started = proxy.last_activity
    assert started > before
    release.set()
    wire.echoed()
    assert wait_for(lambda: proxy.inflight == 0)
    assert proxy.last_activity >= started


def test_idle_connections_time_out(start: Start) -> None:
    proxy = start(idle_timeout=0.3)
    wire = connect(proxy)
    wire.send(b"GET http://a.test/ HTTP/1.1\r\nHost: a.test\r\n\r\n")
    wire.echoed()
    began = time.monotonic()
    assert wire.at_eof()
    assert 0.2 < time.monotonic() - began < 2


def test_when_every_slot_is_taken_an_idle_connection_makes_room(start: Start) -> None:
    proxy = start(max_connections=2)
    idle = [connect(proxy) for _ in range(2)]
    for wire in idle:
        wire.send(b"GET http://a.test/ HTTP/1.1\r\nHost: a.test\r\n\r\n")
        wire.echoed()
    began = time.monotonic()
    third = connect(proxy)
    third.send(b"GET http://a.test/third HTTP/1.1\r\nHost: a.test\r\n\r\n")
    assert third.echoed()["url"] == "http://a.test/third"
    assert time.monotonic() - began < 2
    for wire in idle:
        wire.sock.settimeout(0.2)
    closed = []
    for wire in idle:
        with suppress(TimeoutError):
            closed.append(wire.at_eof())
    assert closed == [True]  # the one idle longest


# -- WebSocket


GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def ws_accept(key: str) -> str:
    return base64.b64encode(hashlib.sha1((key + GUID).encode("ascii")).digest()).decode("ascii")


def read_frame(wire: Wire) -> tuple[int, bytes]:
    first, second = wire.exact(2)
    size = second & 0x7F
    if size == 126:
        size = struct.unpack("!H", wire.exact(2))[0]
    elif size == 127:
        size = struct.unpack("!Q", wire.exact(8))[0]
    mask = wire.exact(4) if second & 0x80 else b""
    payload = wire.exact(size)
    if mask:
        payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return first & 0x0F, payload


def frame(opcode: int, payload: bytes, *, masked: bool) -> bytes:
    size = len(payload)
    length = bytes([size]) if size < 126 else b"\x7e" + struct.pack("!H", size)
    if not masked:
        return bytes([0x80 | opcode]) + length + payload
    key = os.urandom(4)
    length = bytes([length[0] | 0x80]) + length[1:]
    return (
        bytes([0x80 | opcode]) + length + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    )


@contextmanager
def websocket_echo_server() -> Iterator[tuple[str, int]]:
    """A WebSocket server by hand (RFC 6455): it checks the upgrade request, answers
    101 with the accept key, and sends every data frame back, unmasked."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.settimeout(0.1)
    stop = threading.Event()

    def serve(sock: socket.socket) -> None:
        wire = Wire(sock)
        with sock:
            while b"\r\n\r\n" not in wire.buf:
                wire._more()
            head, wire.buf = wire.buf.split(b"\r\n\r\n", 1)
            fields = {
                name.strip().lower(): value.strip()
                for name, _, value in (
                    line.partition(":") for line in head.decode().split("\r\n")[1:]
                )
            }
            if (
                fields.get("upgrade", "").lower() != "websocket"
                or "upgrade" not in fields.get("connection", "").lower()
            ):
                sock.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
                return
            sock.sendall(
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                + f"Sec-WebSocket-Accept: {ws_accept(fields['sec-websocket-key'])}\r\n\r\n".encode()
            )
            while True:
                opcode, payload = read_frame(wire)
                if opcode == 8:
                    sock.sendall(frame(8, payload, masked=False))
                    return
                sock.sendall(frame(opcode, payload, masked=False))

    def loop() -> None:
        while not stop.is_set():
            try:
                sock, _ = listener.accept()
            except TimeoutError:
                continue
            sock.settimeout(5)
            threading.Thread(target=suppress_all, args=(serve, sock), daemon=True).start()

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()
    finally:
        stop.set()
        thread.join(2)
        listener.close()


def suppress_all(function: Callable[[socket.socket], None], sock: socket.socket) -> None:
    with suppress(OSError, EOFError, KeyError):
        function(sock)


def forwarding_handler(origin: tuple[str, int], tunnels: list[tuple[int, int]]) -> Handler:
    """What the real handler will do for a WebSocket: send the upgrade to the origin,
    relay its 101 head, then tunnel."""

    def handler(request: ProxyRequest, client: Client) -> bool:
        if not request.websocket:
            return echo(request, client)
        parts = urlsplit(request.url)
        with socket.create_connection(origin, timeout=5) as upstream:
            head = f"GET {parts.path}?{parts.query} HTTP/1.1\r\n"
            head += "".join(f"{name}: {value}\r\n" for name, value in request.headers) + "\r\n"
            upstream.sendall(head.encode("latin-1"))
            response = b""
            while b"\r\n\r\n" not in response:
                data = upstream.recv(65536)
                if not data:
                    return False
                response += data
            end = response.index(b"\r\n\r\n") + 4
            client.send(response[:end])
            tunnels.append(client.tunnel(upstream, response[end:]))
        return False

    return handler


def upgrade(wire: Wire, host: str) -> None:
    key = base64.b64encode(os.urandom(16)).decode("ascii")
    wire.send(
        f"GET /chat?room=1 HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
        "Origin: http://example.org\r\n\r\n".encode()
    )
    status, fields = wire.head()
    assert status == 101
    assert fields["sec-websocket-accept"] == ws_accept(key)


@pytest.mark.parametrize("secure", [False, True], ids=["ws", "wss"])
def test_a_websocket_is_tunnelled_to_its_origin(
    start: Start, ca: InterceptionCA, secure: bool
) -> None:
    tunnels: list[tuple[int, int]] = []
    with websocket_echo_server() as origin:
        proxy = start(forwarding_handler(origin, tunnels))
        if secure:
            wire = tunnel(proxy, "chat.example:443", tls_host="chat.example", ca=ca)
        else:
            wire = tunnel(proxy, "chat.example:80")
        upgrade(wire, "chat.example")
        assert wait_for(lambda: proxy.inflight == 0)  # an open WebSocket is not in flight
        wire.send(frame(1, b"hello, origin", masked=True))
        assert read_frame(wire) == (1, b"hello, origin")
        big = os.urandom(3000)
        wire.send(frame(2, big, masked=True))
        assert read_frame(wire) == (2, big)
        wire.send(frame(8, b"\x03\xe8", masked=True))
        assert read_frame(wire) == (8, b"\x03\xe8")
        assert wire.at_eof()
        assert wait_for(lambda: len(tunnels) == 1)
    to_origin, to_browser = tunnels[0]
    assert to_origin == (6 + 13) + (8 + 3000) + (6 + 2)
    assert to_browser == (2 + 13) + (4 + 3000) + (2 + 2)
    assert proxy.errors == []


def test_bytes_sent_right_after_the_upgrade_request_reach_the_origin(start: Start) -> None:
    """A frame that arrives with the upgrade request (read already, with it) goes first."""
    tunnels: list[tuple[int, int]] = []
    with websocket_echo_server() as origin:
        proxy = start(forwarding_handler(origin, tunnels))
        wire = tunnel(proxy, "chat.example:80")
        key = base64.b64encode(os.urandom(16)).decode("ascii")
        wire.send(
            f"GET /chat HTTP/1.1\r\nHost: chat.example\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n\r\n".encode()
            + frame(1, b"eager", masked=True)
        )
        assert wire.head()[0] == 101
        assert read_frame(wire) == (1, b"eager")


def test_a_websocket_request_keeps_its_upgrade_fields(start: Start) -> None:
    proxy = start()
    wire = tunnel(proxy, "chat.example:80")
    wire.send(
        b"GET /chat HTTP/1.1\r\nHost: chat.example\r\nConnection: Upgrade, Keep-Alive\r\n"
        b"Keep-Alive: 5\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    got = wire.echoed()
    assert got["websocket"] is True
    assert got["headers"] == [
        ["Host", "chat.example"],
        ["Connection", "Upgrade, Keep-Alive"],
        ["Upgrade", "websocket"],
        ["Sec-WebSocket-Version", "13"],
    ]


# -- stopping and peers


def test_stop_closes_every_connection_at_once(start: Start, ca: InterceptionCA) -> None:
    tunnels: list[tuple[int, int]] = []
    with websocket_echo_server() as origin:
        proxy = start(forwarding_handler(origin, tunnels))
        wires = []
        for _ in range(3):  # idle after a request
            wire = connect(proxy)
            wire.send(b"GET http://a.test/ HTTP/1.1\r\nHost: a.test\r\n\r\n")
            wire.echoed()
            wires.append(wire)
        for _ in range(3):  # idle inside a TLS tunnel
            wires.append(tunnel(proxy, "localhost:443", tls_host="localhost", ca=ca))
        wire = tunnel(proxy, "x.example:443")  # CONNECT done, no handshake yet
        wires.append(wire)
        for _ in range(2):  # half a head
            wire = connect(proxy)
            wire.send(b"GET http://a.test/ HTTP/1.1\r\nHost: a")
            wires.append(wire)
        wires.append(connect(proxy))  # nothing sent
        ws = tunnel(proxy, "chat.example:80")
        upgrade(ws, "chat.example")
        wires.append(ws)
        time.sleep(0.1)
        began = time.monotonic()
        proxy.stop()
        took = time.monotonic() - began
        assert took < 1.0
        for wire in wires:
            wire.sock.settimeout(1)
            assert wire.at_eof()
        proxy.stop()  # twice is fine
        assert not [
            t
            for t in threading.enumerate()
            if t.name.startswith(f"archiver-proxy-{proxy.address[1]}")
        ]
        with pytest.raises(OSError):
            connect(proxy, timeout=1)


def test_stop_does_not_wait_for_a_handler_stuck_in_its_own_fetch(start: Start) -> None:
    entered, release = threading.Event(), threading.Event()
    outcome: list[type[BaseException]] = []

    def handler(request: ProxyRequest, client: Client) -> bool:
        entered.set()
        release.wait(10)  # a fetch of the handler's own that the proxy cannot interrupt
        try:
            return echo(request, client)
        except ClientGone as exc:
            outcome.append(type(exc))
            raise

    proxy = start(handler)
    wire = connect(proxy)
    wire.send(b"GET http://a.test/ HTTP/1.1\r\nHost: a.test\r\n\r\n")
    assert entered.wait(5)
    began = time.monotonic()
    proxy.stop()
    assert time.monotonic() - began < 1.0
    assert wire.at_eof()  # the browser is let go at once
    release.set()
    assert wait_for(lambda: outcome == [ClientGone])  # its answer finds nobody
    assert wait_for(lambda: proxy.inflight == 0)
    assert proxy.errors == []


SAY_HELLO = """
import socket, sys
sock = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
sock.sendall(b"GET http://a.test/ HTTP/1.1\\r\\nHost: a.test\\r\\nConnection: close\\r\\n\\r\\n")
try:
    data = sock.recv(65536)
except ConnectionResetError:
    data = b""
print(data[:12].decode("latin-1"))
"""


@pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("setpriv") or not Path("/proc/net/tcp").exists(),
    reason="needs root (to run a client as another user), setpriv and /proc/net/tcp",
)
def test_a_client_of_another_user_is_refused(start: Start) -> None:
    calls: list[ProxyRequest] = []

    def handler(request: ProxyRequest, client: Client) -> bool:
        calls.append(request)
        return echo(request, client)

    proxy = start(handler)
    port = str(proxy.address[1])
    python = "/usr/bin/python3"
    ours = subprocess.run(
        [python, "-I", "-c", SAY_HELLO, port], capture_output=True, text=True, cwd="/"
    )
    assert ours.stdout.strip() == "HTTP/1.1 200"
    theirs = subprocess.run(
        [
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            python,
            "-I",
            "-c",
            SAY_HELLO,
            port,
        ],
        capture_output=True,
        text=True,
        cwd="/",
    )
    assert theirs.returncode == 0, theirs.stderr
    assert theirs.stdout.strip() == ""  # closed without a byte
    assert len(calls) == 1
    assert [(p["uid"]) for p in proxy.refused_peers] == [65534]


def test_socket_owner_finds_our_own_sockets() -> None:
    if not Path("/proc/net/tcp").exists():
        assert socket_owner(("127.0.0.1", 1), ("127.0.0.1", 2)) is None
        return
    for family, address in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
        with socket.socket(family) as listener:
            listener.bind((address, 0))
            listener.listen(1)
            with socket.create_connection(listener.getsockname()[:2]) as client:
                server_side, _ = listener.accept()
                with server_side:
                    mine = client.getsockname()[:2]
                    assert socket_owner(mine, listener.getsockname()[:2]) == os.getuid()
                    assert socket_owner(mine, ("127.0.0.9", 1)) == -1


# -- real clients: curl and openssl


PAGE = b"""<!doctype html><title>t</title><p id=out>waiting</p><img src="/gate.png"><script>
const ws = new WebSocket("wss://chat.example/socket");
ws.onopen = () => ws.send("hello from the page");
ws.onmessage = (e) => {
  document.getElementById("out").textContent = "echo: " + e.data;
  fetch("/echoed");
};
</script>"""


def test_chromium_takes_the_spki_hashes_and_speaks_through_the_proxy(
    start: Start, ca: InterceptionCA, tmp_path: Path, chromium: str
) -> None:
    """The browser the proxy is for: HTTPS with the capture's leaf certificates accepted
    by SPKI hash alone, HTTP/1.1 inside the tunnel, a wss:// WebSocket tunnelled."""
    tunnels: list[tuple[int, int]] = []
    echoed = threading.Event()
    urls: list[str] = []
    with websocket_echo_server() as origin:
        forward = forwarding_handler(origin, tunnels)

        def handler(request: ProxyRequest, client: Client) -> bool:
            urls.append(request.url)
            if request.websocket:
                return forward(request, client)
            if request.url == "https://www.example.org/page":
                head = b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: %d\r\n\r\n"
                client.send(head % len(PAGE) + PAGE)
                return True
            if request.url == "https://www.example.org/echoed":
                echoed.set()
            if request.url == "https://www.example.org/gate.png":
                echoed.wait(10)  # the page's load waits for this image
            client.send(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
            return True

        proxy = start(handler)
        result = subprocess.run(
            [
                *(chromium, "--headless=new", "--no-sandbox", "--no-first-run"),
                f"--user-data-dir={tmp_path / 'profile'}",
                f"--proxy-server=http://{proxy.address[0]}:{proxy.address[1]}",
                f"--ignore-certificate-errors-spki-list={','.join(ca.spki_hashes)}",
                *("--dump-dom", "https://www.example.org/page"),
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert "echo: hello from the page" in result.stdout, result.stderr[-2000:]
    assert "https://chat.example/socket" in urls
    assert proxy.errors == []


needs_curl = pytest.mark.skipif(not shutil.which("curl"), reason="curl is not installed")


def curl(proxy: InterceptingProxy, ca_file: Path, *args: str) -> dict[str, object]:
    result = subprocess.run(
        [
            *("curl", "-sS", "--max-time", "10", "--noproxy", ""),
            *("--proxy", f"http://{proxy.address[0]}:{proxy.address[1]}"),
            *("--cacert", str(ca_file), *args),
        ],
        capture_output=True,
        timeout=20,
    )
    assert result.returncode == 0, result.stderr
    got: dict[str, object] = json.loads(result.stdout)
    return got


@needs_curl
def test_curl_through_the_proxy(start: Start, ca: InterceptionCA, tmp_path: Path) -> None:
    proxy = start()
    ca_file = tmp_path / "ca.pem"
    ca_file.write_bytes(ca.cert_pem)
    got = curl(proxy, ca_file, "https://localhost/curl?x=1")
    assert got["url"] == "https://localhost/curl?x=1" and got["tunnel"] == "localhost:443"
    got = curl(proxy, ca_file, "https://127.0.0.1:8443/ip")
    assert got["url"] == "https://127.0.0.1:8443/ip"
    got = curl(proxy, ca_file, "http://example.test:8080/plain")
    assert got["url"] == "http://example.test:8080/plain" and got["tunnel"] is None
    body = tmp_path / "body"
    body.write_bytes(os.urandom(100_000).hex().encode())
    got = curl(
        proxy,
        ca_file,
        *("-H", "Transfer-Encoding: chunked", "--data-binary", f"@{body}"),
        "https://localhost/chunked",
    )
    assert got["body"] == body.read_text() and got["method"] == "POST"
    got = curl(
        proxy,
        ca_file,
        *("-H", "Expect: 100-continue", "--data-binary", f"@{body}"),
        "https://localhost/continue",
    )
    assert got["body"] == body.read_text()
    assert proxy.errors == []


def test_openssl_s_client_through_the_proxy(
    start: Start, ca: InterceptionCA, tmp_path: Path
) -> None:
    proxy = start()
    (tmp_path / "ca.pem").write_bytes(ca.cert_pem)
    result = subprocess.run(
        [
            *("openssl", "s_client", "-proxy", f"{proxy.address[0]}:{proxy.address[1]}"),
            *("-connect", "localhost:443", "-servername", "localhost", "-CAfile", "ca.pem"),
            *("-verify_return_error", "-verify_hostname", "localhost"),
            *("-alpn", "h2,http/1.1", "-ign_eof"),
        ],
        input=b"GET /s_client HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
        capture_output=True,
        cwd=tmp_path,
        timeout=20,
    )
    out = result.stdout.decode("latin-1")
    assert result.returncode == 0, result.stderr
    assert "Verify return code: 0 (ok)" in out
    assert "ALPN protocol: http/1.1" in out
    assert '"url": "https://localhost/s_client"' in out
