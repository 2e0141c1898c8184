"""Writing WARC 1.1 files: one gzip member per record, digests computed as bytes pass.

A :class:`WarcFile` is written under a temporary name (``.open``) and renamed only
when closed cleanly, after an fsync.  A :class:`WarcSeries` starts a new file when
the current one reaches its size limit; no record is ever split across files.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

from archiver.core.atomic import fsync_dir
from archiver.warc.gzipmember import GapMember, whole_member, write_all

WARC_VERSION = b"WARC/1.1"
OPEN_SUFFIX = ".open"
HTTP_REQUEST_TYPE = "application/http;msgtype=request"
HTTP_RESPONSE_TYPE = "application/http;msgtype=response"

# Above this size a chunk's two digests are computed on two cores.
_PARALLEL_HASH_MIN = 256 * 1024
_SYNC_EVERY = 64 * 1024 * 1024
_READ_BACK_CHUNK = 1024 * 1024
# Room in a streamed record's head for the fields filled in at the end.
_LATE_FIELDS_MAX = 512
JSON_METADATA = "WARC-JSON-Metadata"
"""A record's metadata for replay tools, a JSON object on one line (pywb and wabac.js read
``adaptive_max_resolution`` and ``adaptive_max_bandwidth`` on an HLS or DASH manifest's
response record): not a field of WARC 1.1, which allows fields of its own to any writer."""

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

Fields = list[tuple[str, str]]


def new_record_id() -> str:
    return f"<urn:uuid:{uuid.uuid4()}>"


def warc_date(moment: datetime) -> str:
    """WARC-Date in UTC with microseconds (WARC 1.1 allows fractions of a second)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def field_value(value: str) -> str:
    """A header field value that cannot break the record: control characters escaped."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", value)


def render_head(fields: Fields) -> bytes:
    lines = [WARC_VERSION]
    for name, value in fields:
        lines.append(f"{name}: {field_value(value)}".encode())
    return b"\r\n".join(lines) + b"\r\n\r\n"


def sha256_label(digest: bytes) -> str:
    return "sha256:" + digest.hex()


@dataclass(frozen=True, slots=True)  # one per record: 100,000 for a page of 50,000 images
class WrittenRecord:
    """Where a record landed and what its digests are."""

    record_id: str
    warc_type: str
    filename: str
    offset: int
    length: int  # bytes of the gzip member in the file
    content_length: int
    block_sha256: str  # hex
    record_sha256: str  # hex, of the whole gzip member as stored in the file
    payload_sha256: str | None  # hex, None for records without a payload
    payload_length: int | None
    truncated: str | None
    refers_to: str | None = None  # the record a revisit stands for


class StreamingRecord:
    """A record whose block is written as it arrives; see :mod:`archiver.warc.gzipmember`."""

    def __init__(
        self,
        owner: WarcFile,
        fields: Fields,
        block_prefix: bytes,
        *,
        payload: bool,
        level: int,
        pool: ThreadPoolExecutor | None,
        late_room: int = 0,
    ) -> None:
        self._owner = owner
        self._fields = fields
        self._prefix = block_prefix
        capacity = len(render_head(fields)) + _LATE_FIELDS_MAX + late_room + len(block_prefix)
        self._owns_pending = owner.pending_from is None
        if self._owns_pending:
            owner.pending_from = owner.fileobj.tell()
        self._member = GapMember(owner.fileobj, capacity, level)
        self._block = hashlib.sha256(block_prefix)
        self._payload = hashlib.sha256() if payload else None
        self._pool = pool
        self._body_length = 0
        self._done = False

    @property
    def offset(self) -> int:
        return self._member.offset

    def _block_side(self, chunk: bytes | memoryview) -> None:
        self._block.update(chunk)
        self._member.update_crc(chunk)

    def write(self, chunk: bytes | memoryview) -> None:
        """Hash and write ``chunk``; large chunks are hashed on two cores.

        The block digest and the CRC go to the worker thread while this one
        computes the payload digest and writes; hashlib and zlib release the GIL.
        """
        self._body_length += len(chunk)
        if self._pool is not None and len(chunk) >= _PARALLEL_HASH_MIN:
            pending = self._pool.submit(self._block_side, chunk)
            try:
                if self._payload is not None:
                    self._payload.update(chunk)
                self._member.write(chunk, crc=False)
            finally:
                pending.result()
            self._owner.sync_behind()
            return
        self._block_side(chunk)
        if self._payload is not None:
            self._payload.update(chunk)
        self._member.write(chunk, crc=False)

    def finish(
        self, truncated: str | None = None, late: Sequence[tuple[str, str]] = ()
    ) -> WrittenRecord:
        """End the record: its head is written now, in the room kept before the block,
        with the digests and ``late``, fields known only once the block is whole (at most
        the ``late_room`` :meth:`WarcFile.begin_record` was given, rendered)."""
        if self._done:
            raise RuntimeError("record already finished")
        self._done = True
        self._member.write(b"\r\n\r\n")
        content_length = len(self._prefix) + self._body_length
        fields = list(self._fields)
        block = self._block.digest()
        fields.append(("Content-Length", str(content_length)))
        fields.append(("WARC-Block-Digest", sha256_label(block)))
        payload_hex = None
        if self._payload is not None:
            payload_hex = self._payload.hexdigest()
            fields.append(("WARC-Payload-Digest", "sha256:" + payload_hex))
        if truncated:
            fields.append(("WARC-Truncated", truncated))
        fields += late
        head = render_head(fields) + self._prefix
        length = self._member.finish(head)
        stored = self._owner.stored_sha256(self._member.prefix, self.offset, length)
        if self._owns_pending:
            self._owner.pending_from = None
        values = dict(self._fields)
        return self._owner.record_written(
            WrittenRecord(
                record_id=values["WARC-Record-ID"],
                warc_type=values["WARC-Type"],
                filename=self._owner.name,
                offset=self._member.offset,
                length=length,
                content_length=content_length,
                block_sha256=block.hex(),
                record_sha256=stored,
                payload_sha256=payload_hex,
                payload_length=self._body_length if payload_hex else None,
                truncated=truncated,
            )
        )


def compression_level(content_type: str | None) -> int:
    """Deflate text; store media, which gzip cannot shrink and only slows down."""
    if not content_type:
        return 6
    media = content_type.split(";", 1)[0].strip().lower()
    if media.startswith(("video/", "audio/", "image/", "font/")) and not media.endswith("svg+xml"):
        return 0
    if media in {
        "application/octet-stream",
        "application/zip",
        "application/gzip",
        "application/mp4",
    }:
        return 0
    return 6


class WarcFile:
    """One ``.warc.gz`` file, written under ``<name>.open`` until :meth:`publish`."""

    def __init__(self, path: Path, pool: ThreadPoolExecutor | None = None) -> None:
        self.path = path
        self.temp_path = path.with_name(path.name + OPEN_SUFFIX)
        self.name = path.name
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists():
            raise FileExistsError(f"refusing to overwrite {path}")
        # Unbuffered: records are written in large pieces (a whole member, or one
        # writev per body chunk), so a Python-side buffer would only copy bytes twice.
        self.fileobj: BinaryIO = open(self.temp_path, "xb", buffering=0)  # noqa: SIM115
        # Streamed records are hashed as stored by reading them back (see stored_sha256).
        self._reader = os.open(self.temp_path, os.O_RDONLY)
        self._pool = pool
        self.records: list[WrittenRecord] = []
        self.closed = False
        # Where an unfinished unit of records (a record being written, or a request
        # and its response) starts; abandon() cuts the file back to it.
        self.pending_from: int | None = None
        # Write-back runs behind the writer, so that the fsync at close has little left.
        self._syncer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sync")
        self._sync_pending: Future[None] | None = None
        self._synced_at = 0
        # The SHA-256 of the whole file, fed each record's member as it is finished
        # (members are finished in file order); None if that order was ever broken.
        self._file_digest: Any = hashlib.sha256()
        self._digested = 0

    @property
    def size(self) -> int:
        return self.fileobj.tell()

    def sync_behind(self) -> None:
        """Start flushing written data to disk in the background, every _SYNC_EVERY bytes."""
        position = self.fileobj.tell()
        if position - self._synced_at < _SYNC_EVERY:
            return
        if self._sync_pending is not None:
            if not self._sync_pending.done():
                return
            self._sync_pending.result()  # raise a write-back error here, not at close
        self._synced_at = position
        self._sync_pending = self._syncer.submit(os.fdatasync, self.fileobj.fileno())

    def stored_sha256(self, prefix: bytes, offset: int, length: int) -> str:
        """SHA-256 of a streamed record's member as it now stands in the file.

        Its head (``prefix``, in memory) was written last, after the body, so the
        member's bytes can only be hashed in order once it is finished: the body is
        read back (from the page cache, while the next read overlaps the hashing).
        Reading back also proves what reached the file, not only what was sent to it.
        The same bytes go on into the file's own SHA-256, on the other thread, which
        also does the reading: a buffer is refilled only after the jobs before it.
        """
        digest = hashlib.sha256(prefix)
        whole = self._member_digest(offset, length)
        if whole is not None:
            whole.update(prefix)
        pos, end = offset + len(prefix), offset + length
        buffers = [bytearray(_READ_BACK_CHUNK), bytearray(_READ_BACK_CHUNK)]
        reads = self._pool or ThreadPoolExecutor(max_workers=1)
        current = 0
        pending = reads.submit(_pread, self._reader, buffers[0], pos, end)
        hashed: Future[None] | None = None
        try:
            while pos < end:
                n = pending.result()
                if n <= 0:
                    raise OSError(f"{self.temp_path}: short read at offset {pos} while hashing")
                view = memoryview(buffers[current])[:n]
                pos += n
                current ^= 1
                if pos < end:
                    pending = reads.submit(_pread, self._reader, buffers[current], pos, end)
                if whole is not None:
                    hashed = reads.submit(whole.update, view)
                digest.update(view)
        finally:
            if hashed is not None:
                hashed.result()
            if self._pool is None:
                reads.shutdown()
        return digest.hexdigest()

    def _member_digest(self, offset: int, length: int) -> Any:
        """The file's digest, to be fed the member at ``offset`` next; None if out of order."""
        if self._file_digest is None or offset != self._digested:
            self._file_digest = None
            return None
        self._digested += length
        return self._file_digest

    def sha256(self) -> str:
        """The SHA-256 of the whole file as written (read back if it could not be followed)."""
        if self._file_digest is not None and self._digested == self.size_on_disk():
            return str(self._file_digest.hexdigest())
        digest = hashlib.sha256()
        with open(self.path if self.closed else self.temp_path, "rb", buffering=0) as fh:
            while chunk := fh.read(_READ_BACK_CHUNK):
                digest.update(chunk)
        return digest.hexdigest()

    def size_on_disk(self) -> int:
        return os.stat(self.path if self.closed else self.temp_path).st_size

    def record_written(self, record: WrittenRecord) -> WrittenRecord:
        self.records.append(record)
        return record

    def write_record(
        self,
        fields: Fields,
        block: bytes,
        *,
        payload_offset: int | None = None,
        truncated: str | None = None,
        level: int = 6,
    ) -> WrittenRecord:
        """Write a record whose block is in memory.

        ``payload_offset`` is where the payload starts in ``block`` (the end of the
        HTTP head) or None for records without a payload.
        """
        block_digest = hashlib.sha256(block).digest()
        out = list(fields)
        out.append(("Content-Length", str(len(block))))
        out.append(("WARC-Block-Digest", sha256_label(block_digest)))
        payload_hex = None
        payload_length = None
        if payload_offset is not None:
            payload = memoryview(block)[payload_offset:]
            payload_hex = hashlib.sha256(payload).hexdigest()
            payload_length = len(payload)
            out.append(("WARC-Payload-Digest", "sha256:" + payload_hex))
        if truncated:
            out.append(("WARC-Truncated", truncated))
        offset = self.fileobj.tell()
        member = whole_member(render_head(out) + block + b"\r\n\r\n", level)
        with self.unit():
            write_all(self.fileobj, [member])
        whole = self._member_digest(offset, len(member))
        if whole is not None:
            whole.update(member)
        values = dict(fields)
        return self.record_written(
            WrittenRecord(
                record_id=values["WARC-Record-ID"],
                warc_type=values["WARC-Type"],
                filename=self.name,
                offset=offset,
                length=len(member),
                content_length=len(block),
                block_sha256=block_digest.hex(),
                record_sha256=hashlib.sha256(member).hexdigest(),
                payload_sha256=payload_hex,
                payload_length=payload_length,
                truncated=truncated,
            )
        )

    @contextlib.contextmanager
    def unit(self) -> Iterator[None]:
        """Records written inside are kept all together or not at all (see abandon).

        On an exception the start stays marked, so abandon() removes the partial unit.
        """
        outer = self.pending_from is None
        if outer:
            self.pending_from = self.fileobj.tell()
        yield
        if outer:
            self.pending_from = None

    def retract(self, offset: int) -> None:
        """Cut the file back to ``offset``, the start of the records just written, to
        write them again otherwise (a response that turned out to be a duplicate)."""
        if offset < max(
            (r.offset + r.length for r in self.records if r.offset < offset), default=0
        ):
            raise ValueError("retracting into a record that stays")
        self.fileobj.truncate(offset)
        self.fileobj.seek(offset)
        self.records = [r for r in self.records if r.offset < offset]
        self._file_digest = None  # sha256() reads the file back once, at the end

    def begin_record(
        self,
        fields: Fields,
        block_prefix: bytes,
        *,
        payload: bool = True,
        level: int = 0,
        late_room: int = 0,
    ) -> StreamingRecord:
        """Start a record whose block is ``block_prefix`` followed by streamed data;
        ``late_room`` bytes more are kept for fields given to :meth:`StreamingRecord.finish`."""
        return StreamingRecord(
            self,
            fields,
            block_prefix,
            payload=payload,
            level=level,
            pool=self._pool,
            late_room=late_room,
        )

    def seal(self) -> None:
        """Flush and fsync, and close the file; it keeps its ``.open`` name."""
        if self.fileobj.closed:
            return
        try:
            self._finish_sync()
            os.fsync(self.fileobj.fileno())
        finally:
            self._close()

    def publish(self) -> Path:
        """Seal the file and give it its final name; return the final path."""
        if self.closed:
            return self.path
        self.seal()
        if self.path.exists():
            raise FileExistsError(f"refusing to overwrite {self.path}")
        os.rename(self.temp_path, self.path)
        fsync_dir(self.path.parent)
        self.closed = True
        return self.path

    def abandon(self) -> Path:
        """Keep what is complete, under the ``.open`` name, and close the file.

        A record or request/response pair still being written is cut off, so every
        record left in the file is whole and has its partner; the name says the
        capture did not finish.
        """
        if not self.fileobj.closed:
            if self.pending_from is not None:
                self.fileobj.truncate(self.pending_from)
            self.seal()
        self.closed = True
        return self.temp_path

    def _close(self) -> None:
        if not self.fileobj.closed:
            self.fileobj.close()
        if self._reader >= 0:
            os.close(self._reader)
            self._reader = -1

    def _finish_sync(self) -> None:
        pending, self._sync_pending = self._sync_pending, None
        self._syncer.shutdown(wait=True)
        if pending is not None:
            pending.result()

    def discard(self) -> None:
        """Close and delete an unfinished file (nothing in it is kept)."""
        with contextlib.suppress(OSError):  # the file is being thrown away
            self._finish_sync()
        self._close()
        self.temp_path.unlink(missing_ok=True)
        self.closed = True


def _pread(fd: int, buf: bytearray, pos: int, end: int) -> int:
    view = memoryview(buf)[: min(len(buf), end - pos)]
    return os.preadv(fd, [view], pos)


class WarcSeries:
    """The WARC files of one capture: ``<prefix>-00000.warc.gz``, ``-00001`` …

    Every file starts with a warcinfo record made by ``warcinfo``; a new file is
    started before a record when the current one has reached ``max_size``.
    Callers serialise access with :attr:`lock`.
    """

    def __init__(
        self,
        directory: Path,
        prefix: str,
        max_size: int,
        warcinfo: Callable[[str], tuple[Fields, bytes]],
    ) -> None:
        self.directory = directory
        self.prefix = prefix
        self.max_size = max_size
        self._warcinfo = warcinfo
        self.lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="hash")
        self.files: list[WarcFile] = []
        self.warcinfo_ids: dict[str, str] = {}
        self.warcinfo_records: list[WrittenRecord] = []

    def current(self, upcoming: int = 0) -> WarcFile:
        """The file the next record goes to, rotating when it is full.

        A full file is sealed (fsynced and closed) but keeps its ``.open`` name
        until :meth:`close`: no file of a capture looks finished before all are.
        """
        cur = self.files[-1] if self.files else None
        if cur is None or (len(cur.records) > 1 and cur.size + upcoming >= self.max_size):
            if cur is not None:
                cur.seal()
            name = f"{self.prefix}-{len(self.files):05d}.warc.gz"
            cur = WarcFile(self.directory / name, self._pool)
            self.files.append(cur)
            fields, block = self._warcinfo(name)
            info = cur.write_record(fields, block)
            self.warcinfo_ids[name] = info.record_id
            self.warcinfo_records.append(info)
        return cur

    def close(self) -> list[Path]:
        """Seal every file, then give them all their final names."""
        for f in self.files:
            f.seal()
        paths = [f.publish() for f in self.files]
        self._pool.shutdown()
        return paths

    def digests(self) -> list[tuple[Path, int, str]]:
        """Each closed file's path, size and SHA-256, in order."""
        return [(f.path, f.size_on_disk(), f.sha256()) for f in self.files]

    def abandon(self, wait: float = 10.0) -> list[Path]:
        """Stop writing; keep the whole records under ``.open`` names (see WarcFile.abandon)."""
        got = self.lock.acquire(timeout=wait)  # let a writer finish its current write
        try:
            paths = [f.abandon() for f in self.files if not f.closed]
        finally:
            if got:
                self.lock.release()
        self._pool.shutdown(wait=False)
        return paths

    def discard(self) -> None:
        """Delete every file of the series (used when nothing worth keeping was written)."""
        got = self.lock.acquire(timeout=10.0)
        try:
            for f in self.files:
                if not f.closed or f.temp_path.exists():
                    f.discard()
        finally:
            if got:
                self.lock.release()
        self._pool.shutdown(wait=False)
