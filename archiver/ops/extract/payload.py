"""Reading one record's payload, verified against the index (revisits followed, de-chunked
on the way out), and writing payloads to the output file atomically."""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from archiver.core.atomic import atomic_path, output_problem
from archiver.index.store import RecordRow
from archiver.ops.extract.results import (
    ExtractError,
    ExtractionFailed,
    ExtractResult,
    Part,
    SelectionError,
)
from archiver.ops.extract.rows import _describe, _rows
from archiver.warc.reader import CHUNK, StoredRecord, Unreadable, header_value, read_stored
from archiver.web.discover import MAX_BODY
from archiver.web.http import Dechunker

CHUNK_SIZE = CHUNK
"""Bytes read (and at most inflated) at a time, by :func:`archiver.warc.reader.read_stored`."""


class _OutputError(Exception):
    """Writing the output failed: stops at once, never taken for a damaged record."""


# --------------------------------------------------------------------------- reading


@dataclass
class _Copied:
    """What reading one record found."""

    http_status: int | None = None
    headers: list[tuple[str, str]] = field(default_factory=list)
    payload_length: int = 0
    written: int = 0
    dechunked: bool = False
    sha256: str = ""  # of what was written


class _Payload:
    """Where the shared reader sends a record's payload: de-chunked if need be, then out.

    A problem found on the way (bad chunk framing, a manifest too large) stops the
    output but not the reading: it is reported only once every stored byte was
    hashed, because if the stored bytes differ from the index, that is the news.
    """

    def __init__(
        self, row: RecordRow, sink: Callable[[memoryview], None], *, raw: bool, where: str
    ) -> None:
        self.row = row
        self.sink = sink
        self.raw = raw
        self.where = where
        self.copied = _Copied()
        self.problem: ExtractError | None = None
        self.dechunker: Dechunker | None = None
        self.digest: Any = None  # of what is written, when the payload digest is not that

    def open(self, rec: StoredRecord) -> Callable[[memoryview], None] | None:
        """Called by the reader once the heads are read; None: nothing to write."""
        if rec.get("WARC-Record-ID") != self.row.record_id:
            return None  # the wrong record: said once the stored bytes are checked
        self.copied.http_status = rec.http_status
        self.copied.headers = rec.http_headers or []
        coding = (rec.http_header("Transfer-Encoding") or "").split(",")[-1].strip().lower()
        if coding == "chunked" and not self.raw:
            where = self.where
            self.dechunker = Dechunker(
                self._write,
                lambda what: ExtractionFailed(
                    f"{where}: {what}; extract it with --raw to get the body as transferred"
                ),
            )
            self.copied.dechunked = True
        if self.dechunker is not None or self.row.payload_sha256 is None:
            self.digest = hashlib.sha256()
        return self._feed

    def _feed(self, data: memoryview) -> None:
        self.copied.payload_length += len(data)
        if self.problem is not None:
            return
        try:
            if self.dechunker is not None:
                self.dechunker.feed(data)
            else:
                self._write(data)
        except ExtractError as exc:
            self.problem = exc

    def _write(self, data: memoryview) -> None:
        if self.digest is not None:
            self.digest.update(data)
        self.copied.written += len(data)
        self.sink(data)

    def _fail(self, what: str) -> ExtractionFailed:
        return ExtractionFailed(f"{self.where}: {what}")

    def finish(self, rec: StoredRecord) -> _Copied:
        """Check what was read against the index (the stored bytes already were)."""
        row = self.row
        record_id = rec.get("WARC-Record-ID")
        if record_id != row.record_id:
            raise self._fail(
                f"the index points at another record ({record_id or 'no WARC-Record-ID'} "
                "is stored there)"
            )
        if rec.faults:
            raise self._fail("; ".join(rec.faults))
        if self.problem is not None:
            raise self.problem
        if row.payload_sha256 is not None:
            if rec.payload_sha256 != row.payload_sha256:
                raise self._fail(
                    f"payload SHA-256 {rec.payload_sha256 or '(no payload)'} does not match "
                    f"the indexed {row.payload_sha256}"
                )
            if row.payload_length is not None and rec.payload_length != row.payload_length:
                raise self._fail(
                    f"payload of {rec.payload_length} bytes, not the indexed payload "
                    f"({row.payload_length} bytes)"
                )
        elif row.block_sha256 is not None and rec.block_sha256 != row.block_sha256:
            raise self._fail(
                f"block SHA-256 {rec.block_sha256} does not match the indexed {row.block_sha256}"
            )
        if self.dechunker is not None and not self.dechunker.complete and not row.truncated:
            raise self._fail(
                "the chunked body ends before its last chunk; "
                "extract it with --raw to get the body as transferred"
            )
        if self.digest is not None:
            self.copied.sha256 = self.digest.hexdigest()
        else:  # what was written is the payload, whose digest the reader computed
            self.copied.sha256 = rec.payload_sha256 or ""
        return self.copied


def _copy_record(
    archive_dir: Path, row: RecordRow, sink: Callable[[memoryview], None], *, raw: bool
) -> _Copied:
    """Read ``row``'s record, verify it, and send its payload (de-chunked) to ``sink``.

    The record is read by :func:`archiver.warc.reader.read_stored`.  A problem found while
    reading (bad gzip, wrong record, bad chunk framing) is reported only after every
    stored byte was hashed: if the stored bytes differ from the index, that is the
    news, whatever else broke.
    """
    path = archive_dir / row.warc_filename
    where = (
        f"record {row.record_id} ({row.url or row.warc_type}; "
        f"{row.warc_filename} at offset {row.warc_offset})"
    )
    if row.warc_type == "revisit":  # the payload is in the record it refers to
        row = _original_of(archive_dir, row, where)
        path = archive_dir / row.warc_filename
        where = (
            f"record {row.record_id} ({row.url or row.warc_type}; {row.warc_filename} at "
            f"offset {row.warc_offset}), which the revisit {where} refers to"
        )
    if row.warc_length <= 0 or row.warc_offset < 0:
        raise ExtractionFailed(f"{where}: the index gives no valid place for it")

    def check_stored(found: str) -> None:
        if found != row.record_sha256:
            raise ExtractionFailed(
                f"{where}: the stored bytes do not match the index (SHA-256 {found}, indexed "
                f"{row.record_sha256}): the WARC file was changed or damaged"
            )

    payload = _Payload(row, sink, raw=raw, where=where)
    try:
        rec = read_stored(
            path,
            row.warc_offset,
            row.warc_length,
            block_digest=row.payload_sha256 is None,  # else the payload is what is checked
            open_sink=payload.open,
        )
    except Unreadable as exc:
        if exc.record_sha256 is not None:
            check_stored(exc.record_sha256)
        raise ExtractionFailed(f"{where}: {exc}") from exc
    except FileNotFoundError as exc:
        raise ExtractionFailed(f"{where}: the WARC file {path} does not exist") from exc
    except OSError as exc:
        raise ExtractionFailed(f"{where}: cannot read {path}: {exc.strerror or exc}") from exc
    check_stored(rec.record_sha256)
    return payload.finish(rec)


def _original_of(archive_dir: Path, revisit: RecordRow, where: str) -> RecordRow:
    """The record holding a revisit's payload: the one it refers to, same payload digest."""
    if not revisit.refers_to:
        raise ExtractionFailed(f"{where} is a revisit record that refers to no record")
    found = _rows(archive_dir, "record_id = ?", [revisit.refers_to])
    originals = [r for r in found if r.warc_type != "revisit"]
    if not originals:
        raise ExtractionFailed(
            f"{where} is a revisit of {revisit.refers_to}, which is not in the index: "
            "the bytes it stands for are missing"
        )
    original = originals[-1]
    if revisit.payload_sha256 and original.payload_sha256 != revisit.payload_sha256:
        raise ExtractionFailed(
            f"{where} is a revisit of {revisit.refers_to}, whose payload digest "
            f"{original.payload_sha256} is not the revisit's {revisit.payload_sha256}"
        )
    return original


# --------------------------------------------------------------------------- writing


class _Output:
    """The output file being written, with its size, and its SHA-256 if ``digest``.

    With one part, the part's own digest (of what was written) is the file's.
    """

    def __init__(self, fh: BinaryIO, path: Path, *, digest: bool) -> None:
        self.fh = fh
        self.path = path
        self.digest = hashlib.sha256() if digest else None
        self.size = 0

    def write(self, data: memoryview) -> None:
        if self.digest is not None:
            self.digest.update(data)
        self.size += len(data)
        try:
            self.fh.write(data)
        except OSError as exc:
            raise _OutputError(f"cannot write {self.path}: {exc.strerror or exc}") from exc


def _check_output(archive_dir: Path, out_path: Path, overwrite: bool) -> None:
    problem = output_problem(archive_dir, out_path, overwrite)
    if problem is not None:
        raise SelectionError(problem)


def _write_parts(
    archive_dir: Path,
    rows: list[RecordRow],
    out_path: Path,
    *,
    raw: bool,
    overwrite: bool,
) -> tuple[int, str, list[Part]]:
    _check_output(archive_dir, out_path, overwrite)
    parts: list[Part] = []
    try:
        with atomic_path(out_path, overwrite=overwrite) as temp:
            try:
                fh = temp.open("wb")
            except OSError as exc:
                raise _OutputError(f"cannot write {out_path}: {exc.strerror or exc}") from exc
            with fh:
                output = _Output(fh, out_path, digest=len(rows) > 1)
                for row in rows:
                    before = output.size
                    copied = _copy_record(archive_dir, row, output.write, raw=raw)
                    parts.append(
                        Part(
                            record_id=row.record_id,
                            url=row.url,
                            warc_filename=row.warc_filename,
                            warc_offset=row.warc_offset,
                            http_status=copied.http_status,
                            payload_sha256=row.payload_sha256,
                            payload_length=copied.payload_length,
                            bytes_written=output.size - before,
                            sha256=copied.sha256,
                            dechunked=copied.dechunked,
                            truncated=row.truncated,
                        )
                    )
                try:
                    fh.flush()
                except OSError as exc:
                    raise _OutputError(f"cannot write {out_path}: {exc.strerror or exc}") from exc
    except _OutputError as exc:
        raise ExtractionFailed(str(exc)) from exc
    except FileExistsError as exc:
        raise SelectionError(f"{out_path} exists; remove it or choose another name") from exc
    except OSError as exc:  # the rename, an fsync, creating the directory
        raise ExtractionFailed(f"cannot write {out_path}: {exc.strerror or exc}") from exc
    digest = output.digest.hexdigest() if output.digest is not None else parts[0].sha256
    return output.size, digest, parts


def _notes(rows: list[RecordRow]) -> list[str]:
    """What the reader of the output should know: truncated records, indexed problems."""
    notes = []
    for row in rows:
        if row.truncated:
            notes.append(
                f"{_describe(row)} is truncated (WARC-Truncated: {row.truncated}): "
                "the file holds only what was captured"
            )
        if row.problem:
            notes.append(f"{_describe(row)} was indexed with a problem: {row.problem}")
    return notes


def extract_payload(
    archive_dir: Path,
    row: RecordRow,
    out_path: Path,
    *,
    raw: bool = False,
    overwrite: bool = False,
) -> ExtractResult:
    """Write ``row``'s payload to ``out_path``, verified (see :mod:`archiver.ops.extract`)."""
    size, digest, parts = _write_parts(archive_dir, [row], out_path, raw=raw, overwrite=overwrite)
    return ExtractResult(
        path=out_path,
        bytes_written=size,
        sha256=digest,
        record_id=row.record_id,
        capture_id=row.capture_id,
        url=row.url,
        http_status=parts[0].http_status,
        content_type=row.content_type,
        parts=tuple(parts),
        notes=tuple(_notes([row])),
    )


def _read_entity(archive_dir: Path, row: RecordRow) -> bytes:
    """A manifest's entity: verified, de-chunked and decoded (gzip, deflate)."""
    body = bytearray()

    def collect(data: memoryview) -> None:
        if len(body) + len(data) > MAX_BODY:
            raise ExtractionFailed(f"{_describe(row)}: the manifest is larger than 50 MiB")
        body.extend(data)

    copied = _copy_record(archive_dir, row, collect, raw=False)
    coding = (header_value(copied.headers, "Content-Encoding") or "").strip().lower()
    if coding in ("", "identity"):
        return bytes(body)
    if coding not in ("gzip", "x-gzip", "deflate"):
        raise ExtractionFailed(f"{_describe(row)}: cannot decode Content-Encoding {coding!r}")
    for wbits in (47,) if coding != "deflate" else (15, -15):
        try:
            inflater = zlib.decompressobj(wbits)
            out = inflater.decompress(bytes(body), MAX_BODY)
            if inflater.unconsumed_tail:
                raise ExtractionFailed(f"{_describe(row)}: the manifest is larger than 50 MiB")
            return out
        except zlib.error:
            continue
    raise ExtractionFailed(f"{_describe(row)}: its {coding} body does not decompress")
