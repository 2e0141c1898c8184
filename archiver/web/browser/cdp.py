"""A Chrome DevTools Protocol client over the two pipes of ``--remote-debugging-pipe``.

Chromium reads commands from its fd 3 and writes responses and events to its fd 4, each
message one JSON text ended by a NUL byte. Nothing listens on a port, so no other program
on the machine can drive the browser, and the pipe closing is the browser's death notice.

One daemon thread reads; any number of threads may :meth:`CDP.send` at once and each waits
for its own response. Events go to the callbacks given to :meth:`CDP.subscribe`, called on
the reader thread in the order the browser sent them: a callback must be short and must
never wait for a response (the reader would be waiting on itself; :meth:`CDP.send` from
the reader thread raises instead of hanging). To answer an event with a command, use
:meth:`CDP.post`, which sends and does not wait.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import threading
from collections.abc import Callable
from typing import Any

from archiver.core.errors import Failure

__all__ = ["CDP", "BrowserGone", "CDPError", "CDPTimeout", "EventCallback"]

EventCallback = Callable[[str, dict[str, Any], str | None], None]
"""``callback(method, params, session_id)``; ``session_id`` is None for browser events."""

READ_CHUNK = 1 << 20  # screenshots and PDFs arrive as base64 JSON of tens of MB


class CDPError(Failure):
    """The browser answered a command with an error, or never answered it."""

    def __init__(self, method: str, message: str, *, code: int | None = None) -> None:
        super().__init__(f"{method}: {message}")
        self.method = method
        self.message = message
        self.code = code


class CDPTimeout(CDPError):
    """No answer within the command's timeout (the browser may still be working on it)."""


class BrowserGone(CDPError):
    """The pipe closed: the browser exited or crashed. Every command still waiting fails
    with this at once, and so does every later one."""


class _Waiter:
    """One command in flight: the reader fills it in and wakes the sender."""

    __slots__ = ("done", "error", "method", "result", "session_id")

    def __init__(self, method: str, session_id: str | None) -> None:
        self.method = method
        self.session_id = session_id
        self.done = threading.Event()
        self.result: dict[str, Any] | None = None
        self.error: CDPError | None = None


class CDP:
    """The protocol over one browser's pipes. ``read_fd`` is our end of the browser's
    fd 4, ``write_fd`` our end of its fd 3; both are owned (and closed) by this object."""

    def __init__(self, read_fd: int, write_fd: int) -> None:
        self._read_fd = read_fd
        self._write_fd = write_fd
        self._ids = itertools.count(1)
        self._lock = threading.Lock()  # waiters, subscribers, gone
        self._write_lock = threading.Lock()  # one message at a time on the pipe
        self._waiters: dict[int, _Waiter] = {}
        self._subscribers: list[EventCallback] = []
        self._gone: BrowserGone | None = None
        self._closed = False
        self.callback_errors: list[BaseException] = []
        """Exceptions raised by event callbacks (kept, not raised: the reader must go on)."""
        self._reader = threading.Thread(target=self._read_loop, name="cdp-reader", daemon=True)
        self._reader.start()

    # ----------------------------------------------------------------- sending

    def send(
        self,
        method: str,
        params: dict[str, Any] | None = None,
        *,
        session_id: str | None = None,
        timeout: float = 30.0,
    ) -> dict[str, Any]:
        """Send one command and wait for its result (the ``result`` object).

        Raises :class:`CDPError` with the protocol's message when the browser refuses it,
        :class:`CDPTimeout` after ``timeout`` seconds, :class:`BrowserGone` when the
        browser is gone or goes while we wait."""
        if threading.current_thread() is self._reader:
            raise RuntimeError(f"CDP.send({method}) from an event callback would deadlock")
        waiter = _Waiter(method, session_id)
        with self._lock:
            if self._gone is not None:
                raise BrowserGone(method, self._gone.message)
            msg_id = next(self._ids)
            self._waiters[msg_id] = waiter
        try:
            self._write(msg_id, method, params, session_id)
            if not waiter.done.wait(timeout):
                raise CDPTimeout(method, f"no answer within {timeout:g} s")
        finally:
            with self._lock:
                self._waiters.pop(msg_id, None)
        if waiter.error is not None:
            raise waiter.error
        return waiter.result or {}

    def post(
        self, method: str, params: dict[str, Any] | None = None, *, session_id: str | None = None
    ) -> None:
        """Send one command without waiting for its answer (which is dropped): the way to
        act on an event from a callback. A browser already gone is ignored."""
        with self._lock:
            if self._gone is not None:
                return
            msg_id = next(self._ids)
        with contextlib.suppress(BrowserGone):
            self._write(msg_id, method, params, session_id)

    def _write(
        self, msg_id: int, method: str, params: dict[str, Any] | None, session_id: str | None
    ) -> None:
        message: dict[str, Any] = {"id": msg_id, "method": method, "params": params or {}}
        if session_id is not None:
            message["sessionId"] = session_id
        data = memoryview(json.dumps(message, separators=(",", ":")).encode("utf-8") + b"\0")
        with self._write_lock:
            try:
                while data:
                    data = data[os.write(self._write_fd, data) :]
            except OSError as exc:  # EPIPE (the browser died), EBADF (we closed)
                gone = self._mark_gone(f"the browser's pipe is closed ({exc.strerror})")
                raise BrowserGone(method, gone.message) from exc

    # ---------------------------------------------------------------- events

    def subscribe(self, callback: EventCallback) -> Callable[[], None]:
        """Call ``callback(method, params, session_id)`` for every event, on the reader
        thread (short work only; never :meth:`send`). Returns a function that unsubscribes."""
        with self._lock:
            self._subscribers.append(callback)

        def unsubscribe() -> None:
            with self._lock, contextlib.suppress(ValueError):
                self._subscribers.remove(callback)

        return unsubscribe

    def fail_session(self, session_id: str, error: CDPError) -> None:
        """Fail every command waiting on ``session_id`` (its target crashed or detached:
        the browser may never answer them)."""
        with self._lock:
            waiting = [w for w in self._waiters.values() if w.session_id == session_id]
        for waiter in waiting:
            if not waiter.done.is_set():
                waiter.error = type(error)(waiter.method, error.message, code=error.code)
                waiter.done.set()

    # ---------------------------------------------------------------- state

    @property
    def gone(self) -> bool:
        """True once the pipe has closed (or :meth:`close` was called)."""
        return self._gone is not None

    def close(self) -> None:
        """Close both pipes; waiting commands fail with :class:`BrowserGone`. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._mark_gone("the connection was closed")
        with self._write_lock, contextlib.suppress(OSError):
            os.close(self._write_fd)
        # the reader owns the read end: closing our write end does not wake it, the
        # browser's exit does. If the browser lives on, the reader is a daemon thread.
        if threading.current_thread() is not self._reader:
            self._reader.join(timeout=2.0)

    def _mark_gone(self, reason: str) -> BrowserGone:
        with self._lock:
            if self._gone is None:
                self._gone = BrowserGone("browser", reason)
            gone = self._gone
            waiting = list(self._waiters.values())
        for waiter in waiting:
            if not waiter.done.is_set():
                waiter.error = BrowserGone(waiter.method, gone.message)
                waiter.done.set()
        return gone

    # ---------------------------------------------------------------- reading

    def _read_loop(self) -> None:
        """Split the stream at NUL bytes. The buffer is a bytearray that only grows at the
        end and is trimmed at the front (cheap in CPython), and each search for the NUL
        starts where the last one stopped, so a 50 MB message costs one pass."""
        buffer = bytearray()
        scanned = 0
        try:
            while True:
                try:
                    chunk = os.read(self._read_fd, READ_CHUNK)
                except OSError:
                    chunk = b""
                if not chunk:
                    break
                buffer += chunk
                start = 0
                while True:
                    end = buffer.find(b"\0", scanned)
                    if end < 0:
                        scanned = len(buffer)
                        break
                    self._dispatch(buffer[start:end])  # one copy; json reads it
                    start = scanned = end + 1
                if start:
                    del buffer[:start]
                    scanned -= start
        finally:
            self._mark_gone("the browser closed its pipe (it exited or crashed)")
            with contextlib.suppress(OSError):
                os.close(self._read_fd)

    def _dispatch(self, raw: bytes | bytearray) -> None:
        try:
            message = json.loads(raw)
        except ValueError:
            return  # never seen; a damaged message must not stop the reader
        if not isinstance(message, dict):
            return
        msg_id = message.get("id")
        if msg_id is not None:
            with self._lock:
                waiter = self._waiters.get(msg_id)
            if waiter is None:
                return  # a post(), or a send() that timed out
            error = message.get("error")
            if error is not None:
                waiter.error = CDPError(
                    waiter.method, str(error.get("message", error)), code=error.get("code")
                )
                if error.get("data"):
                    waiter.error.message += f" ({error['data']})"
                    waiter.error.args = (f"{waiter.method}: {waiter.error.message}",)
            else:
                waiter.result = message.get("result") or {}
            waiter.done.set()
            return
        method = message.get("method")
        if not isinstance(method, str):
            return
        params = message.get("params") or {}
        session_id = message.get("sessionId")
        if method == "Target.detachedFromTarget" and params.get("sessionId"):
            self.fail_session(
                params["sessionId"], CDPError("Target.detachedFromTarget", "the page is gone")
            )
        with self._lock:
            subscribers = list(self._subscribers)
        for callback in subscribers:
            try:
                callback(method, params, session_id)
            except Exception as exc:  # one bad callback must not silence the browser
                if len(self.callback_errors) < 100:
                    self.callback_errors.append(exc)
