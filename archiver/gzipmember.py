"""One gzip member per WARC record, streamed, with its head written last.

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
from typing import BinaryIO

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
