"""One gzip member per WARC record, streamed, with its head written last; and read back.

A WARC record states its length and digests in its header, before the body, but
those are known only once the body has been received.  Spooling the body and
copying it afterwards writes every byte twice.  Instead a member is laid out as::

    gzip header (FEXTRA padding) | stored blocks: record head | deflate: body | CRC32 ISIZE

The body is compressed and written first, after a gap reserved for the gzip
header and the record head; when the body is complete, the head is rendered and
written into the gap, and the gzip header's FEXTRA field (RFC 1952, 2.3.1.1)
absorbs whatever the gap has to spare.  The result is one ordinary gzip member:
zlib, warcio, FastWARC and ``gzip -t`` read it like any other.
"""

from __future__ import annotations

import io
import os
import struct
import zlib as std_zlib
from collections.abc import Generator, Iterator
from typing import Any, BinaryIO

# zlib-ng: the same deflate and CRC-32, an order of magnitude faster CRC (SIMD).
from zlib_ng import zlib_ng as zlib

GZIP_MAGIC = b"\x1f\x8b\x08"
_FLAG_FEXTRA = 0x04
_OS_UNKNOWN = 255
_STORED_MAX = 0xFFFF
_IOV_MAX = 1024
_PAD_SUBFIELD_ID = b"AP"  # "archiver padding"; readers skip unknown subfields


def write_all(fileobj: BinaryIO, parts: list[bytes | memoryview]) -> None:
    """Write ``parts`` in order, in as few system calls as the OS allows.

    Unbuffered files get one ``writev`` (no copy in Python); others a write each.
    """
    fileno = getattr(fileobj, "fileno", None)
    if not isinstance(fileobj, io.FileIO) or fileno is None or not hasattr(os, "writev"):
        for part in parts:
            fileobj.write(part)  # buffered and in-memory files write everything
        return
    fd = fileno()
    pending = [memoryview(p).cast("B") for p in parts if len(p)]
    while pending:
        written = os.writev(fd, pending[:_IOV_MAX])
        while written and pending:
            if written >= len(pending[0]):
                written -= len(pending[0])
                pending.pop(0)
            else:
                pending[0] = pending[0][written:]
                written = 0


def crc32_combine(crc1: int, crc2: int, len2: int) -> int:
    """CRC-32 of A+B from crc(A), crc(B) and len(B), as zlib's crc32_combine does."""

    def times(mat: list[int], vec: int) -> int:
        total = 0
        i = 0
        while vec:
            if vec & 1:
                total ^= mat[i]
            vec >>= 1
            i += 1
        return total

    def square(mat: list[int]) -> list[int]:
        return [times(mat, mat[n]) for n in range(32)]

    if len2 <= 0:
        return crc1
    one_bit = [0xEDB88320] + [1 << n for n in range(31)]
    op = square(square(square(one_bit)))  # appending one zero byte
    while len2:
        if len2 & 1:
            crc1 = times(op, crc1)
        len2 >>= 1
        if len2:
            op = square(op)  # twice as many zero bytes
    return crc1 ^ crc2


def stored_parts(data: bytes | memoryview, final: bool = False) -> list[bytes | memoryview]:
    """Raw deflate stored blocks holding ``data`` verbatim: block headers and views.

    Each block is byte aligned and holds at most 65535 bytes; empty data makes one
    empty block.
    """
    view = memoryview(data)
    parts: list[bytes | memoryview] = []
    pos = 0
    while True:
        piece = view[pos : pos + _STORED_MAX]
        pos += len(piece)
        last = final and pos >= len(view)
        parts.append(struct.pack("<BHH", 1 if last else 0, len(piece), len(piece) ^ 0xFFFF))
        parts.append(piece)
        if pos >= len(view):
            return parts


def stored_blocks(data: bytes, final: bool = False) -> bytes:
    """:func:`stored_parts` as one byte string."""
    return b"".join(stored_parts(data, final))


def stored_size(length: int) -> int:
    """Bytes taken by :func:`stored_blocks` for ``length`` bytes of data (non-final)."""
    blocks = max(1, -(-length // _STORED_MAX))
    return length + 5 * blocks


def gzip_header(pad: int) -> bytes:
    """A gzip member header whose FEXTRA field carries ``pad`` bytes of padding."""
    if not 0 <= pad <= _STORED_MAX - 4:
        raise ValueError(f"gzip padding out of range: {pad}")
    extra = _PAD_SUBFIELD_ID + struct.pack("<H", pad) + b"\x00" * pad
    return (
        GZIP_MAGIC
        + bytes([_FLAG_FEXTRA])
        + b"\x00\x00\x00\x00"  # MTIME unknown: members stay byte-reproducible
        + b"\x00"
        + bytes([_OS_UNKNOWN])
        + struct.pack("<H", len(extra))
        + extra
    )


HEADER_OVERHEAD = len(gzip_header(0))


def whole_member(data: bytes, level: int) -> bytes:
    """A complete gzip member for data already in memory."""
    comp = zlib.compressobj(level, zlib.DEFLATED, -15)
    body = comp.compress(data) + comp.flush(zlib.Z_FINISH)
    return (
        gzip_header(0)
        + body
        + struct.pack("<II", zlib.crc32(data) & 0xFFFFFFFF, len(data) & 0xFFFFFFFF)
    )


class GapMember:
    """A gzip member whose leading ``head`` is written after the rest.

    ``head_capacity`` bounds the head's length; the gap reserved for it is fixed
    when the member starts.  Call :meth:`write` with the data that follows the
    head, then :meth:`finish` with the head itself.  At level 0 the data is framed
    as stored blocks directly (zlib would copy every byte through its window).
    The CRC may be fed separately (:meth:`update_crc`), e.g. from another thread.
    """

    def __init__(self, fileobj: BinaryIO, head_capacity: int, level: int) -> None:
        self._f = fileobj
        self.offset = fileobj.tell()
        self._gap = HEADER_OVERHEAD + stored_size(head_capacity)
        self._f.seek(self.offset + self._gap)
        self._comp = None if level == 0 else zlib.compressobj(level, zlib.DEFLATED, -15)
        self._crc = 0
        self._size = 0
        self.prefix = b""  # the gzip header and head, once finish() has written them

    def update_crc(self, data: bytes | memoryview) -> None:
        self._crc = zlib.crc32(data, self._crc)

    def write(self, data: bytes | memoryview, *, crc: bool = True) -> None:
        """Append ``data``; with ``crc=False`` the caller feeds :meth:`update_crc` itself."""
        if crc:
            self.update_crc(data)
        self._size += len(data)
        if self._comp is not None:
            out = self._comp.compress(data)
            if out:
                write_all(self._f, [out])
            return
        if len(data):
            write_all(self._f, stored_parts(data))

    def finish(self, head: bytes) -> int:
        """Write the trailer and ``head`` into the gap; return the member length."""
        if self._comp is not None:
            tail = self._comp.flush(zlib.Z_FINISH)
        else:
            tail = stored_blocks(b"", final=True)
        crc = crc32_combine(zlib.crc32(head), self._crc, self._size)
        total = (len(head) + self._size) & 0xFFFFFFFF
        write_all(self._f, [tail, struct.pack("<II", crc & 0xFFFFFFFF, total)])
        end = self._f.tell()
        blocks = stored_blocks(head)
        pad = self._gap - HEADER_OVERHEAD - len(blocks)
        if pad < 0:
            raise ValueError("record head larger than the space reserved for it")
        prefix = gzip_header(pad) + blocks
        self.prefix = prefix
        self._f.seek(self.offset)
        write_all(self._f, [prefix])
        self._f.seek(end)
        return end - self.offset


class Inflater:
    """Inflates one gzip member as it is read; stored blocks pass through without a copy.

    Media is stored at level 0 (deflate "stored" blocks, as :class:`GapMember`
    writes them), where inflating is only copying, and zlib's copies and
    allocations (a new buffer for every piece of output) cost as much as a SHA-256.
    Stored blocks are passed on as views of the input and checked by CRC-32 and
    length as zlib checks them.  From the first compressed block on, zlib inflates
    the rest, primed with the last 32 KiB of output (the window a compressed block
    may refer back into), at most ``limit`` bytes at a time so that a decompression
    bomb stays a stream.  Errors are ``zlib.error``, as zlib's own.
    """

    _WINDOW = 32 * 1024
    _HEADER_LIMIT = 1024 * 1024

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.eof = False
        self.unused = b""  # input after the end of the member, in the last input fed
        self._state = "header"
        self._pending = bytearray()  # an incomplete header, block head or trailer
        self._stored_left = 0
        self._final = False
        self._zlib: Any = None
        self._window = b""
        self._crc = 0
        self._size = 0

    def feed(self, data: memoryview) -> Iterator[list[memoryview]]:
        """The output for ``data``, in lists of pieces valid until the next list is asked for."""
        if self._pending:
            self._pending += data
            data = memoryview(bytes(self._pending))
            self._pending.clear()
        out: list[memoryview] = []
        while len(data) and not self.eof:
            if self._state == "header":
                data = self._header(data)
            elif self._state == "block":
                data = self._block_head(data)
            elif self._state == "stored":
                piece = data[: self._stored_left]
                data = data[len(piece) :]
                self._stored_left -= len(piece)
                self._crc = zlib.crc32(piece, self._crc)
                self._size += len(piece)
                out.append(piece)
                if not self._stored_left:
                    self._state = "trailer" if self._final else "block"
            elif self._state == "inflate":
                if out:
                    self._keep_window(out)
                    yield out
                    out = []
                data = yield from self._inflate(data)
            else:
                data = self._trailer(data)
        if out:
            self._keep_window(out)
            yield out
        if self.eof:
            self.unused = bytes(data)

    def _header(self, data: memoryview) -> memoryview:
        end = _gzip_header_end(data)
        if end is None:
            if len(data) > self._HEADER_LIMIT:
                raise std_zlib.error("gzip header longer than 1 MiB")
            self._pending += data
            return data[len(data) :]
        self._state = "block"
        return data[end:]

    def _block_head(self, data: memoryview) -> memoryview:
        if (data[0] >> 1) & 3 != 0:  # a compressed block: zlib takes over, from this byte on
            self._zlib = std_zlib.decompressobj(-15, zdict=self._window)
            self._state = "inflate"
            return data
        if len(data) < 5:
            self._pending += data
            return data[len(data) :]
        length = data[1] | data[2] << 8
        if length ^ (data[3] | data[4] << 8) != 0xFFFF:
            raise std_zlib.error("invalid stored block lengths")
        self._final = bool(data[0] & 1)
        self._stored_left = length
        self._state = "stored" if length else ("trailer" if self._final else "block")
        return data[5:]

    def _inflate(self, data: memoryview) -> Generator[list[memoryview], None, memoryview]:
        """zlib's output for ``data``; returns what follows the deflate stream, if it ended."""
        inflater = self._zlib
        rest: Any = data
        while True:
            out = inflater.decompress(rest, self.limit)
            if out:
                self._crc = zlib.crc32(out, self._crc)
                self._size += len(out)
                yield [memoryview(out)]
            if inflater.eof:
                self._state = "trailer"
                return memoryview(inflater.unused_data)
            rest = inflater.unconsumed_tail
            if not rest and len(out) < self.limit:
                return memoryview(b"")  # it wants more input

    def _trailer(self, data: memoryview) -> memoryview:
        if len(data) < 8:
            self._pending += data
            return data[len(data) :]
        crc, size = struct.unpack("<II", data[:8])
        if crc != self._crc & 0xFFFFFFFF:
            raise std_zlib.error("incorrect data check (CRC-32 of the gzip member)")
        if size != self._size & 0xFFFFFFFF:
            raise std_zlib.error("incorrect length check (ISIZE of the gzip member)")
        self.eof = True
        return data[8:]

    def _keep_window(self, out: list[memoryview]) -> None:
        tail: list[bytes] = []
        kept = 0
        for piece in reversed(out):
            tail.append(bytes(piece[len(piece) - min(len(piece), self._WINDOW - kept) :]))
            kept += len(tail[-1])
            if kept >= self._WINDOW:
                break
        self._window = (self._window + b"".join(reversed(tail)))[-self._WINDOW :]


def _gzip_header_end(data: memoryview) -> int | None:
    """Where the gzip member header at the start of ``data`` ends (RFC 1952, 2.3), or
    None when ``data`` ends first; ``zlib.error`` when it is not a gzip header."""
    if len(data) < 10:
        if bytes(data[:3]) != GZIP_MAGIC[: len(data)]:
            raise std_zlib.error("incorrect header check")
        return None
    if bytes(data[:3]) != GZIP_MAGIC:
        raise std_zlib.error("incorrect header check")
    flags = data[3]
    if flags & 0xE0:
        raise std_zlib.error("unknown gzip header flags")
    pos = 10
    if flags & _FLAG_FEXTRA:
        if len(data) < pos + 2:
            return None
        pos += 2 + (data[pos] | data[pos + 1] << 8)
    for flag in (0x08, 0x10):  # FNAME, FCOMMENT: zero-terminated
        if flags & flag:
            end = bytes(data[pos:]).find(b"\x00") if pos < len(data) else -1
            if end < 0:
                return None
            pos += end + 1
    if flags & 0x02:  # FHCRC
        pos += 2
    return pos if pos <= len(data) else None
