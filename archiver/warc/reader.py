"""Reading WARC records back: the one streaming reader of a stored record, and whole files.

:func:`read_stored` reads one record's extent (``length`` bytes at ``offset``, the
whole gzip member in a ``.warc.gz``) in fixed-size chunks and computes in one pass
what the index holds and what a verifier checks: the SHA-256 of the stored bytes, of
the block and of the payload, the HTTP status, content type and header fields, and
whether the digests the record declares hold (SHA-1, SHA-256, SHA-512 or MD5, in
base32, hex or base64).  The payload can be passed on to a sink as it is read
(``archiver extract`` writes it to a file), and a small block kept in memory
(warcinfo, metadata).  Memory does not grow with the record: a gzip member is
inflated at most one chunk at a time (a decompression bomb stays a stream) and
heads are bounded.

:func:`scan_file` reads every record of a file: warcio finds the record boundaries
(it copes with the many dialects in the wild), then each record's stored bytes are
read with :func:`read_stored`.  That is how the index is rebuilt from the WARC
files, and how WARC files written by other tools are imported.

Other tools' quirks that warcio accepts are read as warcio reads them and said in a
record's ``notes``, not failed: WARC or HTTP heads whose lines end in CR CR LF (or
bare LF, or a whole line of white space in Python's sense, where warcio ends them),
an HTTP head with no empty line after it (a request or a 304 as older crawlers wrote
them: the whole block is the head), a WARC-Target-URI in angle brackets.  Integrity is
judged by the digests alone.  archiver's own records
are never read another way than the one they were written with.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import io
import zlib
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

from zlib_ng import zlib_ng

from archiver.core.errors import Failure
from archiver.core.text import head_fields, warcio_blank
from archiver.warc.gzipmember import Inflater
from archiver.warc.rules import bare_target_uri

CHUNK = 1024 * 1024
"""Bytes read, and at most inflated, at a time."""
HEAD_LIMIT = 1024 * 1024  # a WARC or HTTP head larger than this is not a head
KEEP_BLOCK_LIMIT = 16 * 1024 * 1024
HTTP_TYPES = ("response", "request")
GZIP_MAGIC = b"\x1f\x8b"
_ALGORITHMS: dict[str, Callable[[], Any]] = {
    "sha1": hashlib.sha1,
    "sha256": hashlib.sha256,
    "sha512": hashlib.sha512,
    "md5": hashlib.md5,
}
# zlib-ng's stub declares its error as an instance; it is a class
_ZLIB_ERRORS: tuple[type[Exception], ...] = (zlib.error, cast(type[Exception], zlib_ng.error))

Sink = Callable[[memoryview], None]
"""Receives a record's payload piece by piece; a piece is valid only during the call."""


class Unreadable(Failure, ValueError):
    """The bytes at the place cannot be read as a record, or the file ends before the place.

    ``record_sha256`` is the SHA-256 of every stored byte of the extent (they are all
    read, whatever broke), so that a caller can tell damaged bytes from a record that
    never was one; None when the file ends before the extent does.
    """

    unexpected = True  # the CLI hints at --debug (archiver.core.errors)

    def __init__(self, message: str, record_sha256: str | None) -> None:
        super().__init__(message)
        self.record_sha256 = record_sha256


@dataclass
class StoredRecord:
    """One record as it stands in a WARC file.

    The payload is the HTTP body as stored (chunk framing included) for a response
    or request whose Content-Type is ``application/http``, nothing for a revisit, and
    the block for every other record.  ``payload_sha256`` and ``payload_length`` are
    what the index holds: the payload's, except for requests (None; their declared
    WARC-Payload-Digest is still checked) and for HTTP messages whose head has no end.

    ``notes`` are quirks of other tools that warcio accepts and that touch no digest
    (heads whose lines end in CR CR LF, an HTTP head with no empty line after it, a
    WARC-Target-URI in angle brackets): the record is read as warcio reads
    it, and they are said, not failed.  ``faults`` and ``mismatches`` are failures.
    """

    path: Path
    offset: int
    length: int
    version: str
    headers: list[tuple[str, str]]
    record_sha256: str = ""
    block_length: int = 0
    block_sha256: str | None = None  # None when not asked for
    http_status: int | None = None  # of a response
    http_content_type: str | None = None
    http_headers: list[tuple[str, str]] | None = None  # of an HTTP message whose head was read
    payload_sha256: str | None = None
    payload_length: int | None = None
    faults: list[str] = field(default_factory=list)  # the record is not whole or well-formed
    mismatches: list[str] = field(default_factory=list)  # declared digests that do not hold
    notes: list[str] = field(default_factory=list)  # quirks that touch no digest
    block: bytes | None = None  # kept when asked (warcinfo and metadata records)

    @property
    def problems(self) -> list[str]:
        """Everything wrong with the record, as the index's ``problem`` lists it."""
        return [*self.faults, *self.mismatches]

    def get(self, name: str) -> str | None:
        """A WARC header field (the first of that name), or None."""
        return header_value(self.headers, name)

    def http_header(self, name: str) -> str | None:
        """An HTTP header field (the first of that name), or None."""
        return header_value(self.http_headers or [], name)

    @property
    def warc_type(self) -> str:
        return (self.get("WARC-Type") or "").lower()

    @property
    def target_uri(self) -> str | None:
        """The WARC-Target-URI as the index holds it: without angle brackets."""
        return bare_target_uri(self.get("WARC-Target-URI"))

    @property
    def date(self) -> datetime | None:
        return parse_warc_date(self.get("WARC-Date"))


@dataclass(frozen=True)
class ScanIssue:
    """A place in a file that could not be read as a record."""

    path: Path
    offset: int
    message: str


def header_value(fields: list[tuple[str, str]], name: str) -> str | None:
    """The value of the first field called ``name`` (any case), or None."""
    lowered = name.lower()
    for key, value in fields:
        if key.lower() == lowered:
            return value
    return None


def header_fields(head: str) -> tuple[str, list[tuple[str, str]]]:
    """First line and (name, value) fields of a WARC or HTTP head (lines ending in CRLF,
    bare LF, or the CR CR LF of some writers)."""
    lines = [line.rstrip("\r") for line in head.split("\n")]
    return lines[0].strip(), head_fields(lines)


def _head_end(data: bytearray, start: int) -> int | None:
    """Where an HTTP head ends after CRLF CRLF, or LF LF (how most HTTP clients read it):
    a head that warcio's rule ends elsewhere gets a note."""
    ends = []
    crlf = data.find(b"\r\n\r\n", start)
    if crlf >= 0:
        ends.append(crlf + 4)
    lf = data.find(b"\n\n", start)
    if lf >= 0:
        ends.append(lf + 2)
    return min(ends) if ends else None


class _BlankLineEnd:
    """Where a head ends as warcio reads it: after the first line that holds nothing but
    white space in Python's sense (see :func:`warcio_blank`): CR LF, LF, the CR CR LF
    of some writers, but also a form feed, NBSP...  ``first``: whether the first line
    can end it (it does so in warcio's reading of an HTTP head, not of a WARC head).

    It is never later than :func:`_head_end`.  The search resumes where the previous one
    stopped, so a head fed a byte at a time is still read in linear time: each line is
    looked at once, when its LF comes.
    """

    def __init__(self, *, first: bool) -> None:
        self.first = first
        self.line = 0  # where the line not yet judged starts
        self.searched = 0  # no LF in data[self.line : self.searched]

    def __call__(self, data: bytes | bytearray) -> int | None:
        while True:
            lf = data.find(b"\n", max(self.line, self.searched))
            if lf < 0:
                self.searched = len(data)
                return None
            start, self.line = self.line, lf + 1
            if (start or self.first) and warcio_blank(data[start:lf]):
                return lf + 1


def _line_quirk(head: bytes, what: str) -> str | None:
    """What is odd about how the lines of a head end, if anything (a note, not a fault)."""
    if b"\r\r\n" in head:
        return f"{what} header lines end in CR CR LF, not CR LF"
    if head.count(b"\n") != head.count(b"\r\n"):
        return f"{what} header lines end in LF, not CR LF"
    if not head.endswith(b"\r\n\r\n"):
        return f"the {what} head ends at a line of white space, not at an empty line"
    return None


def parse_warc_date(value: str | None) -> datetime | None:
    if not value:
        return None
    text = value.strip().replace("Z", "+00:00")
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        try:
            moment = datetime.strptime(value.strip(), "%Y%m%d%H%M%S").replace(tzinfo=UTC)
        except ValueError:
            return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def media_type(value: str | None) -> str | None:
    """``text/html; charset=utf-8`` → ``text/html``; None when there is none."""
    if not value:
        return None
    media = value.split(";", 1)[0].strip().lower()
    return media or None


def parse_digest(value: str | None) -> tuple[str, bytes] | None:
    """``sha1:BASE32`` (or hex, or base64) → (algorithm, raw digest); None if unreadable."""
    if not value or ":" not in value:
        return None
    name, _, text = value.strip().partition(":")
    algo = name.strip().lower().replace("-", "")
    if algo not in _ALGORITHMS:
        return None
    size = _ALGORITHMS[algo]().digest_size
    text = text.strip()
    decoders: list[Callable[[str], bytes]] = [
        bytes.fromhex,
        lambda t: base64.b32decode(t.upper() + "=" * (-len(t) % 8)),
        lambda t: base64.b64decode(t + "=" * (-len(t) % 4), validate=True),
        lambda t: base64.urlsafe_b64decode(t + "=" * (-len(t) % 4)),
    ]
    for decode in decoders:
        try:
            raw = decode(text)
        except (ValueError, binascii.Error):
            continue
        if len(raw) == size:
            return algo, raw
    return None


class _Checked:
    """SHA-256 of a stream, and the digest a header declares for it, if any."""

    def __init__(self, declared: str | None, what: str, *, hashing: bool = True) -> None:
        self.sha256 = hashlib.sha256()
        self.hashing = hashing  # False: only counted (and the declared digest not checked)
        self.length = 0
        self.what = what
        self.declared_text = declared
        self.declared = parse_digest(declared)
        self.other = None
        if self.declared and self.declared[0] != "sha256":
            self.other = _ALGORITHMS[self.declared[0]]()

    def update(self, data: bytes | memoryview) -> None:
        self.length += len(data)
        if not self.hashing:
            return
        self.sha256.update(data)
        if self.other is not None:
            self.other.update(data)

    def update_all(self, pieces: list[memoryview]) -> None:
        for piece in pieces:
            self.update(piece)

    def problem(self) -> str | None:
        if self.declared_text and self.declared is None:
            return (
                f"{self.what} digest does not match (declared {self.declared_text!r}, not a digest)"
            )
        if self.declared is None or not self.hashing:
            return None
        algo, raw = self.declared
        actual = self.sha256.digest() if algo == "sha256" else self.other.digest()  # type: ignore[union-attr]
        if actual != raw:
            return f"{self.what} digest does not match (declared {self.declared_text})"
        return None


def read_stored(
    path: Path,
    offset: int,
    length: int,
    *,
    keep_block: bool = False,
    block_digest: bool = True,
    payload_digest: bool = True,
    open_sink: Callable[[StoredRecord], Sink | None] | None = None,
    pool: ThreadPoolExecutor | None = None,
    fh: io.RawIOBase | None = None,
    stored_digest: Any = None,
) -> StoredRecord:
    """Read the record stored at ``offset`` (``length`` bytes), in one pass, in fixed chunks.

    Whether the extent is a gzip member or an uncompressed record is told by its
    first bytes.  What is wrong with a record that can be read is in its ``faults``
    (not whole or not well-formed) and ``mismatches`` (declared digests that do not
    hold).

    ``keep_block`` keeps the block (up to 16 MiB) in ``block``.  Without
    ``block_digest`` the block is not hashed, nor its declared digest checked: a
    caller that checks the payload saves a third of the hashing.  Without
    ``payload_digest`` the payload is only counted (``payload_sha256`` stays None and
    its declared digest unchecked): a caller that checks the stored bytes against a
    signed digest, and the block, needs no third SHA-256.  ``open_sink``, if
    given, is called once the heads are read (the WARC head, and the HTTP head of an
    HTTP message) with the record as far as it is known; the :data:`Sink` it returns,
    if any, then receives the payload as it is read.  Exceptions from either are not
    caught: they stop the reading at once.

    A caller reading many records may pass ``pool`` (the hashing thread, kept
    between records) and ``fh``, the file open for reading and positioned at
    ``offset``, so that records read one after another cost no open and no seek.
    ``stored_digest``, a hashlib object, then receives the stored bytes instead of a
    digest of the record's own: fed every record of a file in order, it becomes the
    file's SHA-256 (``record_sha256`` is left empty).

    Raises :class:`Unreadable` when the bytes are not a record (no WARC head, no
    valid Content-Length, a corrupt gzip member) or the file is too short, and
    OSError when the file cannot be read.
    """
    with contextlib.ExitStack() as stack:
        if pool is None and length > CHUNK:
            pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="scan")
            stack.callback(pool.shutdown)
        if fh is None:
            fh = stack.enter_context(open(path, "rb", buffering=0))
            fh.seek(offset)
        return _Reader(
            path,
            fh,
            offset,
            length,
            pool=pool if length > CHUNK else None,
            keep_block=keep_block,
            block_digest=block_digest,
            payload_digest=payload_digest,
            open_sink=open_sink,
            stored_digest=stored_digest,
        ).read()


# what the reader is reading
_WARC_HEAD, _HTTP_HEAD, _BODY, _TAIL = "warc head", "http head", "body", "tail"


class _Reader:
    """One record's extent: hashed, inflated, parsed and passed on as it is read.

    The stored bytes and the block (if asked for) are hashed on a second core (for
    records larger than a chunk) while this one reads, inflates, hashes the payload and feeds the
    sink.  At most two hashing jobs are queued (so neither core waits for the other
    at every chunk, and memory stays flat), and a buffer is not refilled before the
    jobs that read it are done.
    """

    def __init__(
        self,
        path: Path,
        fh: io.RawIOBase,
        offset: int,
        length: int,
        *,
        pool: ThreadPoolExecutor | None,
        keep_block: bool,
        block_digest: bool,
        payload_digest: bool,
        open_sink: Callable[[StoredRecord], Sink | None] | None,
        stored_digest: Any = None,
    ) -> None:
        self.path, self.fh, self.offset, self.length = path, fh, offset, length
        self.pool = pool
        self.keep_block = keep_block
        self.block_digest = block_digest
        self.payload_digest = payload_digest
        self.open_sink = open_sink
        self.jobs: deque[Future[None]] = deque()  # queued on the second core, oldest first
        self.own_digest = stored_digest is None
        self.stored = hashlib.sha256() if stored_digest is None else stored_digest
        self.inflater: Inflater | None = None  # for a gzip member
        self.compressed: bool | None = None  # known from the first bytes
        self.member_end: int | None = None  # stored bytes up to the end of the gzip member
        self.member_faults: list[str] = []
        self.broken: str | None = None  # why the rest is not a record
        self.state = _WARC_HEAD
        self.head = bytearray()
        self.rec: StoredRecord | None = None
        self.left = 0  # bytes of the block still to come
        self.block: _Checked | None = None
        self.block_length = 0
        self.payload = _Checked(None, "payload")
        self.to_payload = False
        self.http_head_read = False
        self.http_head_missing = False
        # the WARC head's lines do not end in CR LF: the writer's HTTP heads are read as
        # warcio reads them (never so for archiver's own records, whose heads fetch ended)
        self.warc_end = _BlankLineEnd(first=False)  # the WARC head's end, searched so far
        self.http_end = _BlankLineEnd(first=True)  # the HTTP head's, read the warcio way
        self.kept: bytearray | None = None
        self.sink: Sink | None = None

    # ------------------------------------------------------------ stored bytes
    def read(self) -> StoredRecord:
        count = 2 if self.pool is not None else 1
        buffers = [memoryview(bytearray(min(CHUNK, self.length))) for _ in range(count)]
        reading: list[Future[None] | None] = [None, None]  # the last job to read each buffer
        done = 0
        try:
            while done < self.length:
                which = (done // CHUNK) % count
                if (last := reading[which]) is not None:
                    last.result()
                buffer = buffers[which]
                n = self.fh.readinto(buffer[: min(CHUNK, self.length - done)])
                if not n:
                    raise Unreadable(
                        f"the file ends {self.length - done} bytes before the end of the record",
                        None,
                    )
                raw = buffer[:n]
                done += n
                self._run(self.stored.update, raw)
                if self.broken is None:
                    try:
                        self._take(raw, done)
                    except _ZLIB_ERRORS as exc:
                        self.broken = f"the gzip member is corrupt ({exc})"
                reading[which] = self.jobs[-1] if self.jobs else None
        finally:
            self._wait()
        record_sha256 = self.stored.hexdigest() if self.own_digest else ""
        if self.broken is None and self.state == _WARC_HEAD:
            self.broken = "the record ends inside its WARC head"
        if self.broken is not None or self.rec is None:
            raise Unreadable(self.broken or "no WARC record head", record_sha256)
        return self._finish(record_sha256)

    def _run(self, update: Callable[[Any], None], data: Any) -> None:
        """``update(data)`` on the second core (in order, two jobs queued at most), else here."""
        if self.pool is None:
            update(data)
            return
        while len(self.jobs) >= 2:
            self.jobs.popleft().result()
        self.jobs.append(self.pool.submit(update, data))

    def _wait(self) -> None:
        while self.jobs:
            self.jobs.popleft().result()

    def _take(self, raw: memoryview, done: int) -> None:
        """The next stored bytes (``done`` read so far): inflated if need be, then parsed."""
        if self.compressed is None:
            self.compressed = bytes(raw[:2]) == GZIP_MAGIC
            if self.compressed:
                self.inflater = Inflater(CHUNK)
        inflater = self.inflater
        if inflater is None:
            self._feed([raw])
            return
        if inflater.eof:
            self._after_member(bytes(raw[:2]))
            return
        for pieces in inflater.feed(raw):
            self._feed(pieces)
            if self.broken is not None:
                return
        if inflater.eof:
            self.member_end = done - len(inflater.unused)
            if inflater.unused:  # else the next chunk tells what follows
                self._after_member(inflater.unused[:2])

    def _after_member(self, following: bytes) -> None:
        if self.member_faults:
            return
        if following == GZIP_MAGIC:
            self.member_faults.append("more than one gzip member in the record's extent")
        else:
            self.member_faults.append(
                f"the gzip member ends after {self.member_end} of the record's {self.length} bytes"
            )

    # ------------------------------------------------------------ the record
    def _feed(self, pieces: list[memoryview]) -> None:
        """Parse the next record bytes; hash block and payload and feed the sink."""
        blocks: list[memoryview] = []
        payload: list[memoryview] = []
        for data in pieces:
            self._parse(data, blocks, payload)
        if blocks:
            if self.kept is not None:
                for piece in blocks:
                    if len(self.kept) < KEEP_BLOCK_LIMIT:
                        self.kept += piece
            self.block_length += sum(len(piece) for piece in blocks)
            if self.block is not None:
                if self.payload_digest:
                    self._run(self.block.update_all, blocks)
                else:  # the stored bytes are hashed on the other core: share the work
                    self.block.update_all(blocks)
        for piece in payload:
            self.payload.update(piece)
            if self.sink is not None:
                self.sink(piece)

    def _parse(self, data: memoryview, blocks: list[memoryview], payload: list[memoryview]) -> None:
        while len(data) and self.broken is None:
            if self.state == _WARC_HEAD:
                data = self._warc_head(data)
            elif self.state == _HTTP_HEAD:
                data = self._http_head(data, blocks, payload)
            elif self.state == _BODY:
                piece = data[: self.left]
                data = data[len(piece) :]
                self.left -= len(piece)
                blocks.append(piece)
                if self.to_payload:
                    payload.append(piece)
                if not self.left:
                    self.state = _TAIL
            else:  # the record's closing CRLF CRLF; hashed as stored bytes only
                break

    def _warc_head(self, data: memoryview) -> memoryview:
        before = len(self.head)
        self.head += data[: HEAD_LIMIT - before]
        end = self.warc_end(self.head)  # CRLF CRLF, or as warcio ends it
        if end is None:
            if len(self.head) >= HEAD_LIMIT:
                self.broken = "no end of the WARC head within 1 MiB"
            return data[len(data) :]
        raw = bytes(self.head[:end])
        self.head.clear()
        self._start(raw.decode("utf-8", "replace"))
        quirk = _line_quirk(raw, "WARC")
        if quirk is not None and self.rec is not None:
            self.rec.notes.append(quirk)
        return data[end - before :]

    def _start(self, head: str) -> None:
        version, headers = header_fields(head)
        if not version.startswith("WARC/"):
            self.broken = f"not a WARC record (it starts {version[:40]!r})"
            return
        rec = self.rec = StoredRecord(self.path, self.offset, self.length, version, headers)
        declared = rec.get("Content-Length")
        try:
            self.left = int(declared or "")
        except ValueError:
            self.left = -1
        if self.left < 0:
            self.broken = f"invalid Content-Length {declared!r}"
            return
        target = rec.get("WARC-Target-URI")
        if target is not None and rec.target_uri != target:
            rec.notes.append(
                f"WARC-Target-URI {target} is in angle brackets (as wget writes it): "
                f"indexed as {rec.target_uri}"
            )
        wtype = rec.warc_type
        if self.block_digest:
            self.block = _Checked(rec.get("WARC-Block-Digest"), "block")
        self.payload = _Checked(
            rec.get("WARC-Payload-Digest") if wtype != "revisit" else None,
            "payload",
            hashing=self.payload_digest,
        )
        self.kept = bytearray() if self.keep_block else None
        if wtype in HTTP_TYPES and "application/http" in (rec.get("Content-Type") or "").lower():
            self.state = _HTTP_HEAD
            return
        self.state = _BODY if self.left else _TAIL
        if wtype != "revisit":  # a revisit has no payload
            self._open_payload()

    def _http_head(
        self, data: memoryview, blocks: list[memoryview], payload: list[memoryview]
    ) -> memoryview:
        """The HTTP head, ended as warcio ends it: at the first line of white space (an
        empty line, but also the CR CR LF of some writers, or a line of spaces). Capture
        ends a response's head by the same rule, so our records, other tools' and every
        reader's view of them agree. A block that ends before any such line is all head,
        as warcio reads it.
        """
        piece = data[: self.left]
        before = len(self.head)
        self.head += piece
        end = self.http_end(self.head)  # warcio's rule, which capture follows too
        if end is None:
            blocks.append(piece)
            self.left -= len(piece)
            over = len(self.head) > HEAD_LIMIT
            if over or not self.left:
                assert self.rec is not None
                if not self.left and not over:
                    # older crawlers and recorders wrote a head without its empty line
                    # (a request, a 304): the whole block is the head (as warcio reads
                    # it), with no body
                    self._http_ended(len(self.head), unended=True)
                    return data[len(piece) :]
                if self.left:
                    self.rec.faults.append("no end of the HTTP head within 1 MiB")
                else:
                    self.http_head_missing = True
                self.head.clear()
                self.state = _BODY if self.left else _TAIL  # the rest is block, not payload
            return data[len(piece) :]
        used = end - before
        blocks.append(piece[:used])
        self.left -= used
        self._http_ended(end)
        return data[used:]

    def _http_ended(self, end: int, *, unended: bool = False) -> None:
        """The HTTP head is ``self.head[:end]``: parse it, and the payload starts."""
        head = bytes(self.head[:end])
        self.head.clear()
        assert self.rec is not None
        if unended and not head:
            self.rec.notes.append(
                f"the block of this {self.rec.warc_type} is empty: read as an HTTP message "
                "without head or body"
            )
        elif unended:
            self.rec.notes.append(
                f"the HTTP head of this {self.rec.warc_type} has no empty line after it (the "
                "block ends first): read as a head without a body"
            )
        elif _head_end(bytearray(head), 0) != end:  # not where CRLF CRLF would end it
            quirk = _line_quirk(head, "HTTP") or "the HTTP head ends as warcio reads it"
            self.rec.notes.append(quirk)
        self._http_message(head.decode("latin-1"))
        self.state = _BODY if self.left else _TAIL
        self._open_payload()

    def _http_message(self, head: str) -> None:
        rec = self.rec
        assert rec is not None
        status_line, rec.http_headers = header_fields(head)
        parts = status_line.split()
        if rec.warc_type == "response" and len(parts) >= 2:
            code = parts[1]
            if code.isascii() and code.isdigit():
                rec.http_status = int(code)
        rec.http_content_type = media_type(rec.http_header("Content-Type"))
        self.http_head_read = True

    def _open_payload(self) -> None:
        self.to_payload = True
        if self.open_sink is not None:
            assert self.rec is not None
            self.sink = self.open_sink(self.rec)

    def _finish(self, record_sha256: str) -> StoredRecord:
        rec = self.rec
        assert rec is not None
        rec.record_sha256 = record_sha256
        if self.left > 0:
            declared = rec.get("Content-Length")
            rec.faults.append(
                f"block ends {self.left} bytes short of its Content-Length {declared}"
            )
        if self.state == _HTTP_HEAD and not self.left and not self.head:
            self._http_ended(0, unended=True)  # an empty block, and no bytes after it
        if self.state == _HTTP_HEAD or self.http_head_missing:
            rec.faults.append("no end of the HTTP head")
        rec.faults += self.member_faults
        if self.inflater is not None and not self.inflater.eof:
            rec.faults.append("the gzip member does not end within the record")
        rec.block_length = self.block_length
        rec.block = bytes(self.kept) if self.kept is not None else None
        if self.block is not None:
            rec.block_sha256 = self.block.sha256.hexdigest()
        for check in (self.block, self.payload):
            issue = check.problem() if check is not None else None
            if issue:
                rec.mismatches.append(issue)
        wtype = rec.warc_type
        if (wtype == "response" and self.http_head_read) or wtype not in (*HTTP_TYPES, "revisit"):
            if self.payload.hashing:
                rec.payload_sha256 = self.payload.sha256.hexdigest()
            rec.payload_length = self.payload.length
        elif wtype == "revisit":  # the digest of the payload it stands for, as declared
            stated = parse_digest(rec.get("WARC-Payload-Digest"))
            if stated is not None and stated[0] == "sha256":
                rec.payload_sha256 = stated[1].hex()
        return rec


def scan_file(
    path: Path, *, keep: Callable[[str], bool] | None = None
) -> Iterator[StoredRecord | ScanIssue]:
    """Every record of a WARC file in order, then an issue where reading stopped, if it did.

    A record that cannot be parsed, or a stream that breaks, yields a
    :class:`ScanIssue` naming the offset; the records before it are yielded as usual.
    A file that cannot be opened (no permission) is a :class:`Failure` naming it.
    """
    from warcio.archiveiterator import ArchiveIterator
    from warcio.exceptions import ArchiveLoadFailed

    keep = keep or (lambda warc_type: warc_type in ("warcinfo", "metadata"))
    try:
        opened = open(path, "rb")  # noqa: SIM115 (closed by the with below)
    except OSError as exc:  # nothing read: never a file of no records
        raise Failure(f"{path}: cannot be read ({exc.strerror or exc})") from exc
    with opened as fh:
        iterator = ArchiveIterator(fh, no_record_parse=True, check_digests=False)
        records = iter(iterator)
        last_end = 0
        while True:
            try:
                with contextlib.redirect_stderr(io.StringIO()):  # warcio prints warnings
                    record = next(records)
                    wtype = (record.rec_headers.get_header("WARC-Type") or "").lower()
                    iterator.read_to_end(record)
                    offset = iterator.get_record_offset()
                    length = iterator.get_record_length()
            except StopIteration:
                return
            except (ArchiveLoadFailed, ValueError, OSError, zlib.error, EOFError) as exc:
                text = str(exc).strip()
                message = text.splitlines()[0] if text else type(exc).__name__
                yield ScanIssue(path, last_end, f"not a valid WARC record stream here: {message}")
                return
            if length <= 0 or offset < last_end:
                yield ScanIssue(path, last_end, "not a valid WARC record stream here")
                return
            last_end = offset + length
            try:
                rec = read_stored(path, offset, length, keep_block=keep(wtype))
            except (Unreadable, OSError) as exc:
                yield ScanIssue(path, offset, f"unreadable record: {exc}")
                continue
            yield rec
