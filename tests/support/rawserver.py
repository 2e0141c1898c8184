"""A TCP server on loopback that answers with exactly the bytes a test gives it, the
answers it gives by path (``site``, ``ok``), and a loopback port where nothing listens."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress

Handler = Callable[[socket.socket, bytes], None]


@contextmanager
def raw_server(handler: Handler) -> Iterator[str]:
    """Serve each connection with ``handler(conn, request_head)``."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    listener.settimeout(0.1)
    stop = threading.Event()

    def serve(conn: socket.socket) -> None:
        with conn:
            data = b""
            while b"\r\n\r\n" not in data:
                piece = conn.recv(65536)
                if not piece:
                    return
                data += piece
            with suppress(OSError):
                handler(conn, data)

    def loop() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(2)
        listener.close()


def ok(body: bytes, kind: bytes = b"text/html") -> bytes:
    return (
        b"HTTP/1.1 200 OK\r\nContent-Type: "
        + kind
        + b"\r\nContent-Length: %d\r\n\r\n" % len(body)
        + body
    )


def site(routes: dict[bytes, bytes | Callable[[socket.socket], None]]) -> Callable[..., None]:
    def serve(conn: socket.socket, request: bytes) -> None:
        path = request.split(b" ", 2)[1]
        answer = routes.get(path, b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
        if callable(answer):
            answer(conn)
        else:
            conn.sendall(answer)

    return serve


def closed_port() -> int:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port: int = sock.getsockname()[1]
    sock.close()
    return port
