"""A loopback server of pages and redirects made from its own URL, that records the head
of every request it receives; anything else it answers with a small PNG."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from tests.support.rawserver import raw_server

Routes = dict[str, Callable[[str], bytes]]  # path -> response bytes, given the server's URL


def response(status: str, body: bytes, *headers: str, kind: str = "text/html") -> bytes:
    head = [f"HTTP/1.1 {status}", f"Content-Type: {kind}", f"Content-Length: {len(body)}"]
    head += [*headers, "Connection: close"]
    return ("\r\n".join(head) + "\r\n\r\n").encode("utf-8") + body


def page(html: str) -> Callable[[str], bytes]:
    return lambda base: response("200 OK", html.replace("{base}", base).encode("utf-8"))


def redirect(location: str) -> Callable[[str], bytes]:
    # the Location header as servers send it: UTF-8 bytes, never percent-encoded by them
    return lambda base: response("302 Found", b"", f"Location: {location.format(base=base)}")


PNG = response("200 OK", b"\x89PNG\r\n\x1a\n" + bytes(32), kind="image/png")


@contextmanager
def server(routes: Routes) -> Iterator[tuple[str, list[tuple[str, bytes]]]]:
    """A loopback server answering ``routes`` (anything else: a small PNG); yields its
    URL and every (path, request head) it received."""
    received: list[tuple[str, bytes]] = []
    base: list[str] = []

    def handle(conn: socket.socket, head: bytes) -> None:
        path = head.split(b" ", 2)[1].decode("latin-1")
        received.append((path, head))
        answer = routes.get(path)
        conn.sendall(answer(base[0]) if answer else PNG)

    with raw_server(handle) as url:
        base.append(url)
        yield url, received


def header(head: bytes, name: str) -> str | None:
    for line in head.decode("latin-1").split("\r\n")[1:]:
        key, _, value = line.partition(":")
        if key.strip().lower() == name.lower():
            return value.strip()
    return None
