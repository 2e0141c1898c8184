"""Reading WARC files back: every record with its place, its stored bytes' hash and its digests.

Used to rebuild the index from the WARC files, and to import WARC files written
by other tools.  warcio finds the record boundaries (it copes with the many
dialects in the wild); each record's stored bytes are then read again here,
streamed in fixed-size chunks, to compute what the index holds: the SHA-256 of
the stored bytes, of the block and of the payload, and to check the digests the
record declares (SHA-1, SHA-256, SHA-512 or MD5, in base32, hex or base64).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import io
import os
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

CHUNK = 1024 * 1024
HEAD_LIMIT = 1024 * 1024  # a WARC or HTTP head larger than this is not a head
KEEP_BLOCK_LIMIT = 16 * 1024 * 1024
HTTP_TYPES = ("response", "request")
_ALGORITHMS: dict[str, Callable[[], Any]] = {
    "sha1": hashlib.sha1,
    "sha256": hashlib.sha256,
    "sha512": hashlib.sha512,
    "md5": hashlib.md5,
}


@dataclass
class StoredRecord:
    """One record as it stands in a WARC file."""

    path: Path
    offset: int
    length: int
    record_sha256: str
    version: str
    headers: list[tuple[str, str]]
    block_length: int
    block_sha256: str
    http_status: int | None = None
    http_content_type: str | None = None
    payload_sha256: str | None = None
    payload_length: int | None = None
    problems: list[str] = field(default_factory=list)
    block: bytes | None = None  # kept for warcinfo and metadata records

    def get(self, name: str) -> str | None:
        lowered = name.lower()
        for key, value in self.headers:
            if key.lower() == lowered:
                return value
        return None

    @property
    def warc_type(self) -> str:
        return (self.get("WARC-Type") or "").lower()

    @property
    def date(self) -> datetime | None:
        return parse_warc_date(self.get("WARC-Date"))


@dataclass(frozen=True)
class ScanIssue:
    """A place in a file that could not be read as a record."""

    path: Path
    offset: int
    message: str


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

    def __init__(self, declared: str | None, what: str) -> None:
        self.sha256 = hashlib.sha256()
        self.length = 0
        self.what = what
        self.declared_text = declared
        self.declared = parse_digest(declared)
        self.other = None
        if self.declared and self.declared[0] != "sha256":
            self.other = _ALGORITHMS[self.declared[0]]()

    def update(self, data: bytes | memoryview) -> None:
        self.sha256.update(data)
        if self.other is not None:
            self.other.update(data)
        self.length += len(data)

    def problem(self) -> str | None:
        if self.declared_text and self.declared is None:
            return (
                f"{self.what} digest does not match (declared {self.declared_text!r}, not a digest)"
            )
        if self.declared is None:
            return None
        algo, raw = self.declared
        actual = self.sha256.digest() if algo == "sha256" else self.other.digest()  # type: ignore[union-attr]
        if actual != raw:
            return f"{self.what} digest does not match (declared {self.declared_text})"
        return None


def read_stored(path: Path, offset: int, length: int, *, keep_block: bool = False) -> StoredRecord:
    """Read the record stored at ``offset`` (``length`` bytes) and compute its digests."""
    compressed = path.name.endswith(".gz") or path.name.endswith(".gz.open")
    fd = os.open(path, os.O_RDONLY)
    try:
        return _Reader(path, fd, offset, length, compressed, keep_block).read()
    finally:
        os.close(fd)


class _Reader:
    def __init__(
        self, path: Path, fd: int, offset: int, length: int, compressed: bool, keep: bool
    ) -> None:
        self.path, self.fd, self.offset, self.length = path, fd, offset, length
        self.raw_hash = hashlib.sha256()
        self.decomp = zlib.decompressobj(31) if compressed else None
        self.pos = offset
        self.pending = b""
        self.keep = keep
        self.trailing_member = False

    def _more(self) -> bytes:
        """The next piece of the record's decompressed bytes, b'' at its end."""
        while self.pos < self.offset + self.length:
            n = min(CHUNK, self.offset + self.length - self.pos)
            raw = os.pread(self.fd, n, self.pos)
            if not raw:
                raise OSError(f"{self.path}: file ends at offset {self.pos}")
            self.pos += len(raw)
            self.raw_hash.update(raw)
            if self.decomp is None:
                return raw
            out = self.decomp.decompress(raw)
            if self.decomp.eof and self.decomp.unused_data:
                self.trailing_member = True
                self.decomp = None  # the rest is not part of this gzip member
            if out:
                return out
        return b""

    def _take_head(self) -> bytes | None:
        while b"\r\n\r\n" not in self.pending:
            if len(self.pending) > HEAD_LIMIT:
                return None
            more = self._more()
            if not more:
                return None
            self.pending += more
        head, _, self.pending = self.pending.partition(b"\r\n\r\n")
        return head

    def read(self) -> StoredRecord:
        head = self._take_head()
        if head is None:
            raise ValueError("no WARC record head")
        lines = head.decode("utf-8", "replace").split("\r\n")
        version = lines[0].strip()
        headers: list[tuple[str, str]] = []
        for line in lines[1:]:
            if line[:1] in (" ", "\t") and headers:
                name, value = headers[-1]
                headers[-1] = (name, value + " " + line.strip())
                continue
            name, sep, value = line.partition(":")
            if sep:
                headers.append((name.strip(), value.strip()))
        rec = StoredRecord(
            path=self.path,
            offset=self.offset,
            length=self.length,
            record_sha256="",
            version=version,
            headers=headers,
            block_length=0,
            block_sha256="",
        )
        declared_len = rec.get("Content-Length")
        try:
            content_length = int(declared_len or "")
        except ValueError:
            raise ValueError(f"invalid Content-Length {declared_len!r}") from None
        block = _Checked(rec.get("WARC-Block-Digest"), "block")
        wtype = rec.warc_type
        is_http = wtype in HTTP_TYPES and "application/http" in (rec.get("Content-Type") or "")
        payload_header = rec.get("WARC-Payload-Digest") if wtype != "revisit" else None
        payload = _Checked(payload_header, "payload")
        http_head = bytearray() if is_http else None
        kept = bytearray() if self.keep else None
        remaining = content_length
        data = self.pending
        self.pending = b""
        while remaining > 0:
            if not data:
                data = self._more()
                if not data:
                    break
            piece = memoryview(data)[:remaining]
            remaining -= len(piece)
            block.update(piece)
            if kept is not None and len(kept) < KEEP_BLOCK_LIMIT:
                kept += piece
            if http_head is not None:
                http_head += piece
                end = http_head.find(b"\r\n\r\n")
                if end >= 0:
                    payload.update(memoryview(http_head)[end + 4 :])
                    self._http(rec, bytes(http_head[:end]))
                    http_head = None
                elif len(http_head) > HEAD_LIMIT:
                    rec.problems.append("HTTP head too large or missing")
                    http_head = None
                    is_http = False
            elif is_http or wtype not in HTTP_TYPES:
                payload.update(piece)
            data = data[len(piece) :] if len(piece) < len(data) else b""
        while self._more():  # the record's trailer; hash every stored byte
            pass
        if remaining > 0:
            rec.problems.append(
                f"block ends {remaining} bytes short of its Content-Length {content_length}"
            )
        if http_head is not None:
            rec.problems.append("no end of the HTTP head")
            is_http = False
        rec.block_length = block.length
        rec.block_sha256 = block.sha256.hexdigest()
        rec.record_sha256 = self.raw_hash.hexdigest()
        rec.block = bytes(kept) if kept is not None else None
        if self.trailing_member:
            rec.problems.append("more than one gzip member in the record's extent")
        for check in (block, payload):
            issue = check.problem()
            if issue:
                rec.problems.append(issue)
        if (wtype == "response" and is_http) or wtype not in (*HTTP_TYPES, "revisit"):
            rec.payload_sha256 = payload.sha256.hexdigest()
            rec.payload_length = payload.length
        return rec

    def _http(self, rec: StoredRecord, head: bytes) -> None:
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split()
        if rec.warc_type == "response" and len(parts) >= 2 and parts[1].isdigit():
            rec.http_status = int(parts[1])
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if sep and name.strip().lower() == "content-type":
                rec.http_content_type = media_type(value)
                break


def scan_file(
    path: Path, *, keep: Callable[[str], bool] | None = None
) -> Iterator[StoredRecord | ScanIssue]:
    """Every record of a WARC file in order, then an issue where reading stopped, if it did.

    A record that cannot be parsed, or a stream that breaks, yields a
    :class:`ScanIssue` naming the offset; the records before it are yielded as usual.
    """
    from warcio.archiveiterator import ArchiveIterator
    from warcio.exceptions import ArchiveLoadFailed

    keep = keep or (lambda warc_type: warc_type in ("warcinfo", "metadata"))
    with open(path, "rb") as fh:
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
                yield read_stored(path, offset, length, keep_block=keep(wtype))
            except (ValueError, OSError, zlib.error) as exc:
                yield ScanIssue(path, offset, f"unreadable record: {exc}")
