"""HTTP/1.1 chunked transfer coding: finding where a chunked message ends
(``_ChunkedEnd``), removing the framing as a body passes (:class:`Dechunker`) or
from a whole body (:func:`dechunk`)."""

from __future__ import annotations

import re
from collections.abc import Callable


class _ChunkedEnd:
    """Finds where a chunked message ends, without changing a byte of it."""

    def __init__(self, error: Callable[[str], Exception]) -> None:
        self.error = error  # makes the exception raised for a framing that breaks
        self.state = "size"
        self.line = bytearray()
        self.left = 0
        self.done = False
        self.overrun = 0  # bytes fed past the end of the message

    def feed(self, data: memoryview | bytes) -> bool:
        raw = bytes(data)  # one copy per call: line searches stay linear
        pos = 0
        n = len(raw)
        while pos < n and not self.done:
            if self.state == "data":
                take = min(self.left, n - pos)
                pos += take
                self.left -= take
                if self.left == 0:
                    self.state = "data-end"
                continue
            nl = raw.find(b"\n", pos)
            if nl < 0:
                self.line += raw[pos:]
                if len(self.line) > 64 * 1024:
                    raise self.error("chunk framing line too long")
                return False
            self.line += raw[pos:nl]
            pos = nl + 1
            line = bytes(self.line).strip()
            self.line.clear()
            if self.state == "size":
                size = chunk_size(line)
                if size is None:
                    raise self.error(f"invalid chunk size line {line[:40]!r}")
                if size == 0:
                    self.state = "trailer"
                else:
                    self.left = size
                    self.state = "data"
            elif self.state == "data-end":
                self.state = "size"
            elif self.state == "trailer" and not line:
                self.done = True
        if self.done:
            self.overrun = n - pos
        return self.done


_CHUNK_SIZE_LINE = re.compile(rb"([0-9A-Fa-f]{1,16})[ \t]*(?:;.*)?")


MAX_CHUNK_LINE = 64 * 1024


class Dechunker:
    """Removes HTTP/1.1 chunk framing from a body as it passes."""

    def __init__(
        self, out: Callable[[memoryview], None], error: Callable[[str], Exception]
    ) -> None:
        self.out = out
        self.error = error  # makes the exception raised for a body that is not well framed
        self.state = "size"
        self.line = bytearray()
        self.left = 0
        self.position = 0  # bytes of the framed body seen

    def _fail(self, what: str, pos: int) -> Exception:
        return self.error(f"the chunked body {what} (at byte {self.position + pos})")

    def feed(self, data: memoryview) -> None:
        raw = bytes(data)  # one copy: line searches stay linear
        view = memoryview(raw)
        pos, n = 0, len(raw)
        while pos < n:
            if self.state == "data":
                take = min(self.left, n - pos)
                self.out(view[pos : pos + take])
                pos += take
                self.left -= take
                if self.left == 0:
                    self.state = "data-end"
                continue
            if self.state == "done":
                raise self._fail("has bytes after its last chunk", pos)
            nl = raw.find(b"\n", pos)
            if nl < 0:
                self.line += view[pos:]
                if len(self.line) > MAX_CHUNK_LINE:
                    raise self._fail("has a framing line longer than 64 KiB", pos)
                break
            self.line += view[pos:nl]
            line = bytes(self.line).strip()
            self.line.clear()
            if self.state == "size":
                size = chunk_size(line)
                if size is None:
                    raise self._fail(f"has an invalid chunk-size line {line[:40]!r}", pos)
                self.left = size
                self.state = "data" if size else "trailer"
            elif self.state == "data-end":
                if line:
                    raise self._fail("has a chunk longer than its chunk-size line says", pos)
                self.state = "size"
            elif self.state == "trailer" and not line:
                self.state = "done"
            pos = nl + 1
        self.position += n

    @property
    def complete(self) -> bool:
        return self.state == "done"


def chunk_size(line: bytes) -> int | None:
    """The size on a chunk-size line (hex digits, optional extensions), else None."""
    match = _CHUNK_SIZE_LINE.fullmatch(line.strip())
    return int(match.group(1), 16) if match else None


def dechunk(raw: bytes) -> bytes:
    """The entity of a chunked body (tolerant of a missing last chunk)."""
    out = bytearray()
    pos = 0
    while pos < len(raw):
        nl = raw.find(b"\n", pos)
        if nl < 0:
            break
        size = chunk_size(raw[pos:nl])
        if not size:
            break
        start = nl + 1
        out += raw[start : start + size]
        pos = start + size
        if raw[pos : pos + 2] == b"\r\n":
            pos += 2
        elif raw[pos : pos + 1] == b"\n":
            pos += 1
    return bytes(out)
