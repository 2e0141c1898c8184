"""Write a record's payload (a video, the article HTML) back to a file, verified on the way out.

The index says where each record is (``warc_filename``, ``warc_offset``,
``warc_length``) and what its bytes must hash to.  Extraction reads exactly those
bytes with the reader that index rebuild and import use
(:func:`archiver.warc.reader.read_stored`: fixed chunks, memory does not grow with the size
of a video), and checks before the output file appears under its name:

- the stored bytes of the record (the whole gzip member of a ``.warc.gz``; the
  record itself in an uncompressed ``.warc``) against ``record_sha256``;
- the ``WARC-Record-ID`` in the record's head against ``record_id`` (otherwise the
  index points at the wrong place);
- the payload against ``payload_sha256`` and ``payload_length`` (for records
  without a payload digest, such as requests, the block against ``block_sha256``);
- that the record is whole and well-formed (its block as long as its
  Content-Length, the end of its HTTP head, one whole gzip member).

Any mismatch is an :class:`ExtractionFailed` naming the record, and no output file
is left behind (the output is written under a temporary name by
:func:`archiver.core.atomic.atomic_path` and renamed only when every check passed).

What is written: the entity as the server sent it, minus the transfer coding.
The payload of a response is the HTTP body *as transferred* (that is what
``payload_sha256`` covers, see the README); when the response was sent with
``Transfer-Encoding: chunked``, the chunk framing is removed on the way out by a
streaming de-chunker, while the digest is checked over the body as transferred.
A ``Content-Encoding`` (gzip, br) is kept as served: the file holds the bytes the
server meant as the resource.  ``raw=True`` writes the body as transferred (its
SHA-256 is then ``payload_sha256`` itself).  Records that are not HTTP messages
(warcinfo, metadata, resource) are written whole: their payload is their block.

Streams: :func:`extract_stream` writes the segments of an HLS or DASH stream
concatenated, in playlist order, init segment first, each one verified as above.
The order comes from the manifest as stored in the capture (parsed again with
:func:`archiver.web.discover.parse_hls` / :func:`~archiver.web.discover.parse_dash`), not
from the order in which the segments happened to be fetched.  A stream has
tracks: an HLS master playlist lists variants (``video``), audio renditions
(``audio``) and subtitle tracks (``subtitles``); a DASH manifest lists adaptation
sets (``video``, ``audio``, ``subtitles``).  By default the video track whose
segments were captured is written; ``track`` chooses another by kind or by name
(a DASH Representation or AdaptationSet id, an HLS playlist URL or its path
relative to the master).  Encrypted HLS segments are written as stored.

Errors: :class:`SelectionError` (``user_error`` true: unknown id, a URL not in the
capture, an ambiguous choice, an output path that exists) and
:class:`ExtractionFailed` (``user_error`` false: the archive does not hold what
the index says, a WARC file cannot be read, a segment is missing).
"""

from __future__ import annotations

import copy
import hashlib
import re
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import quote, urljoin
from xml.etree import ElementTree as ET

import defusedxml.ElementTree as SafeET  # type: ignore[import-untyped,unused-ignore]

from archiver.core.atomic import atomic_path, output_problem
from archiver.core.urls import URL_SAFE, InvalidURL, check_url
from archiver.index.query import QueryError, run
from archiver.index.store import RecordRow
from archiver.warc.reader import CHUNK, StoredRecord, Unreadable, header_value, read_stored
from archiver.warc.rules import bare_target_uri
from archiver.web.discover import MAX_BODY, is_dash, is_hls, parse_dash, parse_hls
from archiver.web.http import Dechunker

__all__ = [
    "CHUNK_SIZE",
    "ExtractError",
    "ExtractResult",
    "ExtractionFailed",
    "Part",
    "SelectionError",
    "Track",
    "extract",
    "extract_payload",
    "extract_stream",
    "find_manifest",
    "find_record",
    "stream_tracks",
]

CHUNK_SIZE = CHUNK
"""Bytes read (and at most inflated) at a time, by :func:`archiver.warc.reader.read_stored`."""

MAX_REDIRECTS = 20
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
PAYLOAD_RECORD_TYPES = ("response", "resource", "revisit")

_REDIRECTED = re.compile(r" \(redirected from (.+)\)$")
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_RECORD_COLUMNS = tuple(f.name for f in fields(RecordRow))


# --------------------------------------------------------------------------- errors


class ExtractError(Exception):
    """Nothing was written; ``user_error``: the selection was wrong (exit 2), else exit 1."""

    user_error: bool = False


class SelectionError(ExtractError):
    """The selection is wrong: unknown id or URL, ambiguous, or a bad output path."""

    user_error = True


class ExtractionFailed(ExtractError):
    """The archive does not hold what the index says, or cannot be read or written."""

    user_error = False


class _OutputError(Exception):
    """Writing the output failed: stops at once, never taken for a damaged record."""


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class Part:
    """One record written into the output."""

    record_id: str
    url: str | None
    warc_filename: str
    warc_offset: int
    http_status: int | None
    payload_sha256: str | None  # as indexed, and verified
    payload_length: int | None
    bytes_written: int
    sha256: str  # of the bytes written from it
    dechunked: bool
    truncated: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "record_id": self.record_id,
            "url": self.url,
            "warc_filename": self.warc_filename,
            "warc_offset": self.warc_offset,
            "http_status": self.http_status,
            "payload_sha256": self.payload_sha256,
            "payload_length": self.payload_length,
            "bytes_written": self.bytes_written,
            "sha256": self.sha256,
            "dechunked": self.dechunked,
            "truncated": self.truncated,
        }


@dataclass(frozen=True)
class ExtractResult:
    """What was written: the file, its size and SHA-256, and the records it came from.

    For a stream, ``record_id``/``url`` are the manifest's and ``parts`` the segments.
    """

    path: Path
    bytes_written: int
    sha256: str
    record_id: str
    capture_id: str
    url: str | None
    http_status: int | None
    content_type: str | None
    parts: tuple[Part, ...]
    track: str | None = None
    notes: tuple[str, ...] = ()

    @property
    def truncated(self) -> list[Part]:
        return [p for p in self.parts if p.truncated]

    def to_json(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "bytes": self.bytes_written,
            "sha256": self.sha256,
            "record_id": self.record_id,
            "capture_id": self.capture_id,
            "url": self.url,
            "http_status": self.http_status,
            "content_type": self.content_type,
            "track": self.track,
            "segments": len(self.parts) if self.track is not None else None,
            "parts": [p.to_json() for p in self.parts],
            "notes": list(self.notes),
        }


@dataclass(frozen=True)
class Track:
    """One track of an HLS or DASH stream and its segment URLs in playlist order."""

    kind: str  # video, audio, subtitles, other
    name: str  # DASH Representation id; HLS playlist path relative to the master, or URL
    names: tuple[str, ...]  # every name --track accepts for it
    playlist_url: str  # the manifest that lists the segments
    segments: tuple[str, ...]
    encrypted: bool = False
    captured: tuple[RecordRow | None, ...] = field(default=(), compare=False)

    @property
    def label(self) -> str:
        return f"{self.kind} {self.name}"

    @property
    def captured_count(self) -> int:
        return sum(1 for r in self.captured if r is not None)


# --------------------------------------------------------------------------- finding


def _rows(archive_dir: Path, where: str, params: list[Any]) -> list[RecordRow]:
    sql = (
        f"SELECT * FROM records WHERE {where} "
        "ORDER BY fetched_at NULLS FIRST, warc_filename, warc_offset"
    )
    try:
        result = run(archive_dir, sql, params)
    except QueryError as exc:
        raise ExtractionFailed(f"cannot read the index of {archive_dir}: {exc}") from exc
    out = []
    for row in result.rows:
        values: list[Any] = [row.get(name) for name in _RECORD_COLUMNS]
        found = RecordRow(*values)
        # an index written before the angle brackets wget puts around a WARC-Target-URI
        # were dropped holds them: the URL is looked up and followed without them
        if found.url is not None and found.url.startswith("<"):
            found = replace(found, url=bare_target_uri(found.url))
        out.append(found)
    return out


def _record_id_forms(ident: str) -> list[str]:
    """``ident`` as a WARC-Record-ID: as given, in angle brackets, with urn:uuid:."""
    value = ident.strip()
    forms = [value]
    bare = value.removeprefix("<").removesuffix(">")
    forms.append(f"<{bare}>")
    if _UUID.fullmatch(bare):
        forms.append(f"<urn:uuid:{bare}>")
    return [f.lower() for f in dict.fromkeys(forms)]


def _describe(row: RecordRow) -> str:
    return f"record {row.record_id} ({row.url or row.warc_type})"


def _is_redirect(row: RecordRow) -> bool:
    if row.role is not None:
        return row.role == "redirect"
    return row.http_status in REDIRECT_STATUSES


def _base_via(row: RecordRow) -> str:
    return _REDIRECTED.sub("", row.discovered_via or "")


class _Responses:
    """A capture's response records by URL; redirects are followed by their Location."""

    def __init__(self, archive_dir: Path, rows: Iterable[RecordRow]) -> None:
        self.archive_dir = archive_dir
        self.rows = list(rows)
        self.by_url: dict[str, list[RecordRow]] = {}
        for row in self.rows:
            if row.url is not None:
                self.by_url.setdefault(row.url, []).append(row)

    def find(self, url: str) -> RecordRow | None:
        """:meth:`get` for ``url`` as given, else as the capture would have written it."""
        row = self.get(url)
        if row is None:
            normal = _normalised(url)
            if normal is not None and normal != url:
                row = self.get(normal)
        return row

    def get(self, url: str) -> RecordRow | None:
        """The response for ``url`` after redirects: a 200 preferred, else the last one.

        A redirect whose target is not in the capture is returned itself.
        """
        seen = {url}
        row = self._one(url)
        while row is not None and _is_redirect(row) and len(seen) <= MAX_REDIRECTS:
            target = self._location(row)
            if target is None or target in seen or target not in self.by_url:
                break
            seen.add(target)
            row = self._one(target)
        return row

    def _one(self, url: str) -> RecordRow | None:
        candidates = self.by_url.get(url)
        if not candidates:
            return None
        final = [r for r in candidates if not _is_redirect(r)]
        # a revisit stands for a 200 response whose payload another record holds
        ok = [r for r in final if r.http_status == 200 or r.warc_type == "revisit"]
        return (ok or final or candidates)[-1]

    def _location(self, row: RecordRow) -> str | None:
        copied = _copy_record(self.archive_dir, row, lambda data: None, raw=True)
        location = header_value(copied.headers, "Location")
        if not location or row.url is None:
            return None
        value = location.strip()
        if not value.isascii():
            value = quote(value.encode("latin-1", "replace"), safe=URL_SAFE)
        try:
            return _normalised(urljoin(row.url, value))
        except ValueError:
            return None


def _normalised(url: str) -> str | None:
    try:
        return check_url(url)
    except InvalidURL:
        return None


def _capture_responses(archive_dir: Path, capture_id: str) -> _Responses:
    types = ", ".join(f"'{t}'" for t in PAYLOAD_RECORD_TYPES)
    rows = _rows(archive_dir, f"capture_id = ? AND warc_type IN ({types})", [capture_id])
    return _Responses(archive_dir, rows)


def _capture_exists(archive_dir: Path, capture_id: str) -> bool:
    try:
        result = run(
            archive_dir, "SELECT count(*) AS n FROM records WHERE capture_id = ?", [capture_id]
        )
    except QueryError as exc:
        raise ExtractionFailed(f"cannot read the index of {archive_dir}: {exc}") from exc
    return bool(result.rows[0]["n"])


def find_record(archive_dir: Path, ident: str, url: str | None = None) -> RecordRow:
    """The record that ``ident`` (and ``url``) select.

    ``ident`` is a capture id or a WARC-Record-ID (with or without the angle
    brackets and the ``urn:uuid:`` prefix).  For a capture id, ``url`` selects the
    response for that URL in the capture (redirects followed, the 200 preferred);
    without ``url`` it is the capture's page (the seed's final, non-redirect
    response).  Raises :class:`SelectionError` when nothing or more than one thing
    matches.
    """
    ident = ident.strip()
    if not ident:
        raise SelectionError("no capture or record id given")
    if url is not None:  # as the index holds it: without the angle brackets wget writes
        url = bare_target_uri(url)
    if _capture_exists(archive_dir, ident):
        return _record_in_capture(archive_dir, ident, url)
    forms = _record_id_forms(ident)
    marks = ", ".join("?" for _ in forms)
    rows = _rows(archive_dir, f"lower(record_id) IN ({marks})", forms)
    places = {(r.warc_filename, r.warc_offset) for r in rows}
    if not rows:
        raise SelectionError(f"no capture or record {ident!r} in the index of {archive_dir}")
    if len(places) > 1:
        captures = ", ".join(sorted({r.capture_id for r in rows}))
        raise SelectionError(
            f"record {ident!r} is indexed {len(places)} times at different places "
            f"(captures {captures}); give the capture id and --url instead"
        )
    row = rows[-1]
    if url is not None and url not in (row.url, _normalised(url)):
        raise SelectionError(
            f"{_describe(row)} is not for URL {url}; --url selects within a capture, "
            "so give a capture id with it"
        )
    return row


def _record_in_capture(archive_dir: Path, capture_id: str, url: str | None) -> RecordRow:
    responses = _capture_responses(archive_dir, capture_id)
    if url is not None:
        row = responses.find(url)
        if row is None:
            raise SelectionError(f"URL {url} is not in capture {capture_id}")
        return row
    pages = [
        r
        for r in responses.rows
        if r.role == "page" and _base_via(r) == "seed" and not _is_redirect(r)
    ]
    if not pages:
        try:
            final = run(
                archive_dir, "SELECT final_url FROM captures WHERE capture_id = ?", [capture_id]
            ).rows
        except QueryError:
            final = []
        final_url = bare_target_uri(final[0]["final_url"]) if final else None
        row = responses.get(final_url) if final_url else None
        if row is None:
            raise SelectionError(
                f"capture {capture_id} has no page response; choose a record with --url"
            )
        return row
    return pages[-1]


def find_manifest(archive_dir: Path, ident: str, url: str | None = None) -> RecordRow:
    """The HLS or DASH manifest record that ``ident`` (and ``url``) select.

    Like :func:`find_record`, except that a capture id without ``url`` selects the
    capture's stream when it holds exactly one (a manifest that no other manifest
    lists); with several, the error lists them.
    """
    ident = ident.strip()
    if url is None and ident and _capture_exists(archive_dir, ident):
        responses = _capture_responses(archive_dir, ident)
        manifest_urls = {r.url for r in responses.rows if _is_manifest(r)}
        top = [
            r
            for r in responses.rows
            if _is_manifest(r) and not _is_redirect(r) and r.discovered_from not in manifest_urls
        ]
        if not top:
            raise SelectionError(f"capture {ident} holds no HLS or DASH stream")
        if len(top) > 1:
            listing = ", ".join(str(r.url) for r in top)
            raise SelectionError(
                f"capture {ident} holds {len(top)} streams; choose one with --url: {listing}"
            )
        return top[0]
    row = find_record(archive_dir, ident, url)
    if not _is_manifest(row):
        raise SelectionError(
            f"{_describe(row)} is not an HLS playlist or DASH manifest "
            f"(content type {row.content_type or 'unknown'})"
        )
    return row


def _is_manifest(row: RecordRow) -> bool:
    return row.url is not None and (
        is_hls(row.url, row.content_type) or is_dash(row.url, row.content_type)
    )


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
    """Write ``row``'s payload to ``out_path``, verified (see the module docstring)."""
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


# --------------------------------------------------------------------------- streams


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


def _relative(url: str, base: str) -> str:
    folder = base.rsplit("/", 1)[0] + "/"
    return url[len(folder) :] if url.startswith(folder) and len(url) > len(folder) else url


_HLS_KINDS = {"hls variant": "video", "hls audio": "audio", "hls subtitles": "subtitles"}


def _hls_media_track(kind: str, name: str, names: tuple[str, ...], body: bytes, url: str) -> Track:
    found = parse_hls(body, url)
    segments = tuple(f.url for f in found if f.via in ("hls map", "hls segment"))
    encrypted = any(f.via == "hls key" for f in found)
    return Track(kind, name, names, url, segments, encrypted)


def _hls_tracks(
    archive_dir: Path, row: RecordRow, body: bytes, responses: _Responses
) -> list[Track]:
    url = row.url or ""
    found = parse_hls(body, url)
    if not any(f.role == "video-manifest" for f in found):  # a media playlist
        own = _HLS_KINDS.get(_base_via(row), "video")
        return [_hls_media_track(own, url, (url,), body, url)]
    tracks = []
    for item in found:
        kind = _HLS_KINDS.get(item.via)
        if kind is None:
            continue
        name = _relative(item.url, url)
        names = (name, item.url)
        playlist = responses.find(item.url)
        if playlist is None or _is_redirect(playlist) or playlist.url is None:
            tracks.append(Track(kind, name, names, item.url, ()))
            continue
        media = _read_entity(archive_dir, playlist)
        tracks.append(_hls_media_track(kind, name, names, media, playlist.url))
    return tracks


_DASH_KINDS = (
    ("video", "video"),
    ("audio", "audio"),
    ("text", "subtitles"),
    ("application/ttml", "subtitles"),
)


def _local(tag: object) -> str:
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


def _bandwidth(el: ET.Element) -> int:
    try:
        return int((el.get("bandwidth") or "0").strip())
    except ValueError:
        return 0


def _dash_kind(aset: ET.Element) -> str:
    reps = [c for c in aset if _local(c.tag) == "Representation"]
    hints = [aset.get("contentType"), aset.get("mimeType")] + [r.get("mimeType") for r in reps]
    for hint in hints:
        value = (hint or "").strip().lower()
        for prefix, kind in _DASH_KINDS:
            if value.startswith(prefix):
                return kind
    return "other"


def _dash_tracks(body: bytes, url: str) -> list[Track]:
    """One track per adaptation set (by id, else position, across periods)."""
    try:
        root = SafeET.fromstring(body[:MAX_BODY])
    except Exception as exc:  # invalid XML, entity bombs
        raise ExtractionFailed(f"the DASH manifest {url} does not parse: {exc}") from exc

    def keyed(tree: ET.Element) -> list[tuple[ET.Element, ET.Element, str]]:
        out = []
        for period in (p for p in tree if _local(p.tag) == "Period"):
            asets = [a for a in period if _local(a.tag) == "AdaptationSet"]
            for i, aset in enumerate(asets):
                out.append((period, aset, aset.get("id") or f"#{i}"))
        return out

    tracks: list[Track] = []
    seen: set[str] = set()
    for _, aset, key in keyed(root):
        if key in seen:
            continue
        seen.add(key)
        reps = [c for c in aset if _local(c.tag) == "Representation"]
        if not reps:
            continue
        best = max(reps, key=_bandwidth)
        rep_id = best.get("id") or key
        only = copy.deepcopy(root)
        for period, other, other_key in keyed(only):
            if other_key != key:
                period.remove(other)
        found = parse_dash(ET.tostring(only), url)
        segments = tuple(f.url for f in found if f.via in ("dash init", "dash segment"))
        names = tuple(dict.fromkeys(n for n in (rep_id, aset.get("id")) if n))
        tracks.append(Track(_dash_kind(aset), rep_id, names, url, segments))
    return tracks


def stream_tracks(archive_dir: Path, manifest: RecordRow) -> list[Track]:
    """The tracks of a manifest, each with the capture's record of every segment (or None)."""
    if manifest.url is None or not _is_manifest(manifest):
        raise SelectionError(f"{_describe(manifest)} is not an HLS playlist or DASH manifest")
    if _is_redirect(manifest):
        raise SelectionError(f"{_describe(manifest)} is a redirect, not the manifest itself")
    responses = _capture_responses(archive_dir, manifest.capture_id)
    body = _read_entity(archive_dir, manifest)
    if is_dash(manifest.url, manifest.content_type):
        tracks = _dash_tracks(body, manifest.url)
    else:
        tracks = _hls_tracks(archive_dir, manifest, body, responses)
    return [
        Track(
            t.kind,
            t.name,
            t.names,
            t.playlist_url,
            t.segments,
            t.encrypted,
            tuple(responses.find(u) for u in t.segments),
        )
        for t in tracks
    ]


def _choose_track(manifest: RecordRow, tracks: list[Track], track: str | None) -> Track:
    what = f"the stream {manifest.url}"

    def listing(items: list[Track]) -> str:
        return ", ".join(
            f"{t.label} ({t.captured_count}/{len(t.segments)} segments captured)" for t in items
        )

    if not tracks:
        raise ExtractionFailed(f"{what} lists no segments")
    if track is not None:
        wanted = track.strip().lower()
        if wanted == "text":
            wanted = "subtitles"
        matches = [t for t in tracks if wanted == t.kind or wanted in (n.lower() for n in t.names)]
        if not matches:
            raise SelectionError(f"{what} has no track {track!r}; it has {listing(tracks)}")
        captured = [t for t in matches if t.captured_count]
        if len(captured) > 1:
            raise SelectionError(
                f"track {track!r} of {what} is ambiguous: {listing(captured)}; "
                "give a track name instead"
            )
        if not captured:
            if len(matches) > 1:
                raise SelectionError(f"no segments of track {track!r} of {what} were captured")
            raise SelectionError(
                f"no segments of track {matches[0].label} of {what} were captured; "
                f"captured tracks: {listing([t for t in tracks if t.captured_count]) or 'none'}"
            )
        return captured[0]
    captured = [t for t in tracks if t.captured_count]
    if not captured:
        raise ExtractionFailed(f"no segments of {what} were captured ({listing(tracks)})")
    videos = [t for t in captured if t.kind == "video"]
    if len(videos) == 1:
        return videos[0]
    if len(captured) == 1:
        return captured[0]
    raise SelectionError(
        f"{what} has {len(captured)} captured tracks; choose one with --track: {listing(captured)}"
    )


def extract_stream(
    archive_dir: Path,
    manifest: RecordRow,
    out_path: Path,
    *,
    track: str | None = None,
    raw: bool = False,
    overwrite: bool = False,
) -> ExtractResult:
    """Write the segments of one track of an HLS/DASH stream, concatenated in playlist order."""
    _check_output(archive_dir, out_path, overwrite)
    tracks = stream_tracks(archive_dir, manifest)
    chosen = _choose_track(manifest, tracks, track)
    missing = [u for u, r in zip(chosen.segments, chosen.captured, strict=True) if r is None]
    if missing:
        shown = ", ".join(missing[:3]) + (", …" if len(missing) > 3 else "")
        raise ExtractionFailed(
            f"{len(missing)} of {len(chosen.segments)} segments of {chosen.label} of "
            f"{manifest.url} were not captured: {shown}"
        )
    rows = [r for r in chosen.captured if r is not None]
    for row in rows:
        if row.http_status is not None and row.http_status != 200:
            raise ExtractionFailed(
                f"segment {row.url} of {chosen.label} answered HTTP {row.http_status} "
                f"in the capture (record {row.record_id})"
            )
    size, digest, parts = _write_parts(archive_dir, rows, out_path, raw=raw, overwrite=overwrite)
    notes = _notes(rows)
    if chosen.encrypted:
        notes.append("the segments are encrypted (#EXT-X-KEY); they are written as stored")
    return ExtractResult(
        path=out_path,
        bytes_written=size,
        sha256=digest,
        record_id=manifest.record_id,
        capture_id=manifest.capture_id,
        url=manifest.url,
        http_status=manifest.http_status,
        content_type=manifest.content_type,
        parts=tuple(parts),
        track=chosen.label,
        notes=tuple(notes),
    )


# --------------------------------------------------------------------------- entry point


def extract(
    archive_dir: Path,
    ident: str,
    out_path: Path,
    *,
    url: str | None = None,
    segments: bool = False,
    track: str | None = None,
    raw: bool = False,
    overwrite: bool = False,
) -> ExtractResult:
    """What ``archiver extract`` does: select, then write a payload or a stream's segments."""
    if segments:
        manifest = find_manifest(archive_dir, ident, url)
        return extract_stream(
            archive_dir, manifest, out_path, track=track, raw=raw, overwrite=overwrite
        )
    if track is not None:
        raise SelectionError("--track chooses a track of a stream: use it with --segments")
    row = find_record(archive_dir, ident, url)
    return extract_payload(archive_dir, row, out_path, raw=raw, overwrite=overwrite)
