"""Writing a capture's exchanges into its WARC files as they arrive: request and
response records (or a revisit of a payload the archive holds), their entries, the
size budget and its truncation marks, the backlog of small records, and the rendition
an HLS or DASH manifest's record names for replay tools (``WARC-JSON-Metadata``)."""

from __future__ import annotations

import hashlib
import json
import tempfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from archiver.capture.dedup import DEDUP_MIN, REVISIT_PROFILE, Original
from archiver.capture.metadata import _Metadata, placed
from archiver.capture.state import (
    CSS_TYPES,
    HTML_TYPES,
    Abandoned,
    ArchiveWriteError,
    CaptureInterrupted,
    Fetched,
    Task,
    _copy,
)
from archiver.warc.writer import (
    HTTP_REQUEST_TYPE,
    HTTP_RESPONSE_TYPE,
    JSON_METADATA,
    Fields,
    StreamingRecord,
    WarcFile,
    WrittenRecord,
    compression_level,
    warc_date,
)
from archiver.web.discover import is_dash, is_hls
from archiver.web.discover.dash import dash_rendition
from archiver.web.discover.hls import hls_rendition
from archiver.web.http import Interrupted, Response, dechunk

# Bodies up to this size are collected in memory and written in one go.
SMALL_BODY = 1024 * 1024
# A body that waits for the WARC file spills to disk past this size.
SPOOL_MEMORY = 8 * 1024 * 1024
# Small records waiting for the writer are kept in memory up to this much in all.
BACKLOG_LIMIT = 32 * 1024 * 1024
# A body relayed to a browser that went away is still read this far (the rest of a small
# one, whole); past it, it is cut (a player that wanted only the start of a video).
READ_ON_ABANDONED = 1024 * 1024
# At most this much of a page, stylesheet or manifest is kept for parsing.
PARSE_LIMIT = 16 * 1024 * 1024
# Room kept in a streamed manifest's record head for its WARC-JSON-Metadata field (two
# numbers of at most 16 digits: about 110 bytes).
ADAPTIVE_ROOM = 192

RecordWriter = Callable[[WarcFile, Fields], WrittenRecord]


class _Adaptive:
    """The ``WARC-JSON-Metadata`` field of an HLS master playlist's or DASH manifest's
    response record: the rendition the capture keeps whole, as pywb and wabac.js read it
    to rewrite the manifest at replay (:class:`archiver.web.discover.hls.Rendition`).

    Worked out once, from the body kept for parsing, when the record's head is written:
    the body is whole by then (a streamed record's head is written after its block, the
    digests coming first), and it is the very text the frontier reads to decide which
    rendition to fetch.  None of it for a body not read for what it names."""

    def __init__(self, url: str, role: str, response: Response, kept: bytearray | None) -> None:
        media = response.media_type or ""
        self.kind: str | None = None
        if kept is not None and response.status == 200 and not _read_as_html(role, media):
            self.kind = "hls" if is_hls(url, media) else "dash" if is_dash(url, media) else None
        self._response = response
        self._kept = kept
        self._fields: Fields | None = None

    def fields(self) -> Fields:
        if self._fields is None:
            self._fields = []
            if self.kind is not None and self._kept is not None:
                lowered = {k.lower(): v for k, v in self._response.headers}
                body = _decode_for_parsing(bytes(self._kept), lowered)
                found = hls_rendition(body) if self.kind == "hls" else dash_rendition(body)
                if found is not None:
                    self._fields.append((JSON_METADATA, json.dumps(found.metadata())))
            self._kept = None  # the parser keeps its own copy
        return self._fields


def _no_fields() -> Fields:
    return []


@dataclass(frozen=True)
class _Exchange:
    """One request and response being recorded: what their records' entries say."""

    task: Task
    url: str
    role: str
    response: Response
    started: datetime
    adaptive: _Adaptive


class _Recorder(_Metadata):
    """Receives each response into the WARC, as the body arrives."""

    def _metered(self, pieces: Iterable[memoryview], response: Response) -> Iterator[memoryview]:
        """A body as stored, counted against the size budget; cut where it runs out
        (marked ``WARC-Truncated: length``)."""
        for piece in pieces:
            allowed = self.budget.take_bytes(len(piece))
            if allowed < len(piece):
                if allowed:
                    yield piece[:allowed]
                response.truncated = "length"
                return
            yield piece

    def _write_exchange(
        self,
        task: Task,
        url: str,
        role: str,
        response: Response,
        started: datetime,
        keep: bool,
        fetched: Fetched,
        tap: Callable[[memoryview], Any] | None = None,
        max_size: int | None = None,
    ) -> None:
        """Receive ``response`` into the WARC; fill in ``fetched``.

        ``tap``, if given, also receives every piece of the body as it arrives (for
        yt-dlp, which reads what was recorded).

        Small bodies are collected in memory and written when the writer is free
        (never waiting for it); large ones stream straight into the WARC when the
        writer is free, and into a spool file while it is busy with another.
        """
        body = self._body_of(url, response, tap, max_size)
        first, complete = self._first_part(url, body)
        keep = keep and _parse_worthy(url, response, role, first)
        kept = bytearray(first[:PARSE_LIMIT]) if keep else None
        adaptive = _Adaptive(url, role, response, kept)
        exchange = _Exchange(task, url, role, response, started, adaptive)
        try:
            if complete:
                self._write_small(exchange, first, fetched)
            else:
                rec = self._write_large(exchange, first, body, kept)
                fetched.payload_sha256 = rec.payload_sha256
                fetched.payload_length = rec.payload_length
        except (CaptureInterrupted, Interrupted):
            raise
        except Exception as exc:
            raise ArchiveWriteError(f"while writing {url}: {exc}") from exc
        if kept is not None:
            self._keep_for_parsing(fetched, url, response, kept)

    def _body_of(
        self,
        url: str,
        response: Response,
        tap: Callable[[memoryview], Any] | None,
        max_size: int | None,
    ) -> Iterator[memoryview]:
        """The body's pieces as stored: cut at ``max_size`` (else ``--max-size``) and at
        the capture's size budget, handed to ``tap`` too."""
        declared = response.declared_length
        large = declared is None or declared > SMALL_BODY
        # Receiving overlaps hashing and writing for large bodies (a thread per body).
        limit = self.options.max_size if max_size is None else max_size
        body = response.iter_body(limit, read_ahead=2 if large else 0)
        body = self._metered(body, response)  # the capture's size budget
        if tap is not None:
            body = _tapped(body, tap, response)
        if declared is not None:  # the size is known: the display shows a percentage
            self.c.progress.sized(url, declared)
        return body

    def _first_part(self, url: str, body: Iterator[memoryview]) -> tuple[bytearray, bool]:
        """The body's first SMALL_BODY bytes or more, and whether that is all of it."""
        progress = self.c.progress
        first = bytearray()
        for chunk in body:
            first += chunk
            progress.advanced(url, len(chunk))
            if len(first) >= SMALL_BODY:
                return first, False
        return first, True

    def _write_small(self, exchange: _Exchange, body: bytearray, fetched: Fetched) -> None:
        """A body received whole: its records are written soon, without waiting."""
        response = exchange.response
        head = response.head
        level = compression_level(response.content_type)
        block = head + bytes(body)
        fetched.payload_sha256 = hashlib.sha256(body).hexdigest()
        fetched.payload_length = len(body)

        exchange.adaptive.fields()  # worked out before the writer is taken

        def buffered(wfile: WarcFile, fields: Fields) -> WrittenRecord:
            return wfile.write_record(
                fields + exchange.adaptive.fields(),
                block,
                payload_offset=len(head),
                truncated=response.truncated,
                level=level,
            )

        def job() -> None:
            self._write_noted(exchange, len(block), buffered)

        self._write_soon(job, len(block))

    def _write_large(
        self,
        exchange: _Exchange,
        first: bytearray,
        rest: Iterator[memoryview],
        kept: bytearray | None,
    ) -> WrittenRecord:
        """A body larger than SMALL_BODY, ``first`` received and ``rest`` to come:
        straight into the WARC if the writer is free, else spooled meanwhile."""
        response, url = exchange.response, exchange.url
        if self.series.lock.acquire(blocking=False):
            # The writer is free: the body goes straight from the socket into the WARC.
            def direct(stream: StreamingRecord) -> None:
                stream.write(memoryview(first))
                self._pump(rest, stream.write, url, kept)

            try:
                upcoming = (response.declared_length or 0) + len(response.head)
                rec = self._write_noted(
                    exchange, upcoming, _streamed(response, direct, exchange.adaptive)
                )
                self._drain()
            finally:
                self.series.lock.release()
            return rec
        # The writer is busy with another large body: spool this one meanwhile.
        self.spool_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY, dir=str(self.spool_dir)) as spool:
            spool.write(first)
            self._pump(rest, spool.write, url, kept)
            upcoming = spool.tell() + len(response.head)
            spool.seek(0)
            exchange.adaptive.fields()  # the body is whole: worked out before the writer is taken
            with self.series.lock:
                rec = self._write_noted(
                    exchange,
                    upcoming,
                    _streamed(response, lambda s: _copy(spool, s, self.stop), exchange.adaptive),
                )
                self._drain()
        return rec

    def _write_noted(
        self, exchange: _Exchange, upcoming: int, write_response: RecordWriter
    ) -> WrittenRecord:
        """The exchange's records, written and entered in the capture; the caller holds
        the writer.  Returns the response (or revisit) record."""
        url, response, started = exchange.url, exchange.response, exchange.started
        req, rec = self._write_pair(
            response, url, started, upcoming, write_response, exchange.adaptive.fields
        )
        self._entries(exchange.task, url, exchange.role, response, started, req, rec)
        return rec

    def _keep_for_parsing(
        self, fetched: Fetched, url: str, response: Response, kept: bytearray
    ) -> None:
        """The body kept for parsing, decoded; noted when it was cut at PARSE_LIMIT."""
        lowered = {k.lower(): v for k, v in response.headers}
        fetched.body = _decode_for_parsing(bytes(kept), lowered)
        if len(kept) < (fetched.payload_length or 0) or len(fetched.body) >= PARSE_LIMIT:
            self.capture.not_followed.append(
                {
                    "url": url,
                    "via": "parse limit",
                    "found_on": url,
                    "reason": f"only the first {PARSE_LIMIT >> 20} MiB of it were searched"
                    " for resources and links (it is stored whole)",
                }
            )

    def _write_soon(self, job: Callable[[], None], size: int) -> None:
        """Run ``job`` (which writes ``size`` bytes of records) soon, without waiting.

        If the writer is busy (another worker streaming a long body into the WARC),
        the job is queued and run by whoever holds the writer next, at the latest
        by the final drain.  Past BACKLOG_LIMIT bytes queued, the worker waits for
        the writer instead, so memory stays bounded.
        """
        with self.backlog_lock:
            queue_it = self.backlog_bytes + size <= BACKLOG_LIMIT
            if queue_it:
                self.backlog.append((job, size))
                self.backlog_bytes += size
        if queue_it:
            if self.series.lock.acquire(blocking=False):
                try:
                    self._drain()
                finally:
                    self.series.lock.release()
            return
        with self.series.lock:
            self._drain()
            job()

    def _drain(self) -> None:
        """Run the queued writes; the caller holds the writer lock."""
        while True:
            with self.backlog_lock:
                if not self.backlog:
                    return
                job, size = self.backlog.popleft()
                self.backlog_bytes -= size
            job()

    def _write_pair(
        self,
        response: Response,
        url: str,
        started: datetime,
        upcoming: int,
        write_response: RecordWriter,
        late: Callable[[], Fields] = _no_fields,
    ) -> tuple[WrittenRecord, WrittenRecord]:
        """The request record, then the response record; the caller holds the lock.
        ``late``: fields of the response record known once its body is whole, which a
        revisit that stands for it carries too."""
        pair = self._write_records(response, url, started, upcoming, write_response, late)
        if response.tls_error is not None and response.certificate is not None:
            self._note_unverified(response, url, started, pair[1].record_id)
        return pair

    def _write_records(
        self,
        response: Response,
        url: str,
        started: datetime,
        upcoming: int,
        write_response: RecordWriter,
        late: Callable[[], Fields] = _no_fields,
    ) -> tuple[WrittenRecord, WrittenRecord]:
        wfile = self.series.current(upcoming)
        req_id, resp_id = self.c.new_record_id(), self.c.new_record_id()
        with wfile.unit():  # a request is kept only with its response
            req = wfile.write_record(
                self._exchange_fields(wfile, "request", (req_id, resp_id), url, started, response),
                response.request.as_recorded,
            )
            fields = self._exchange_fields(
                wfile, "response", (resp_id, req_id), url, started, response
            )
            rec = write_response(wfile, fields)
            original = self._duplicate_of(response, rec, url, started)
            if original is None:
                return req, rec
            # the payload is in the archive already: the pair again, as request and revisit
            wfile.retract(req.offset)
            req = wfile.write_record(
                self._exchange_fields(wfile, "request", (req_id, resp_id), url, started, response),
                response.request.as_recorded,
            )
            revisit = wfile.write_record(
                self._revisit_fields(
                    wfile, (resp_id, req_id), url, started, response, original, rec
                )
                + late(),
                response.head,
            )
            return req, replace(
                revisit,
                payload_sha256=rec.payload_sha256,
                payload_length=rec.payload_length,
                refers_to=original.record_id,
            )

    def _duplicate_of(
        self, response: Response, rec: WrittenRecord, url: str, started: datetime
    ) -> Original | None:
        """The record that holds this response's payload already, if one does."""
        if not self.options.dedup or rec.truncated or response.status != 200:
            return None
        if rec.payload_sha256 is None or (rec.payload_length or 0) < DEDUP_MIN:
            return None
        original = self.known.find(rec.payload_sha256)
        if original is None:
            # the revisit's WARC-Refers-To-Date is the original's WARC-Date
            self.known.add(rec.payload_sha256, Original(rec.record_id, url, started))
        return original

    def _revisit_fields(
        self,
        wfile: WarcFile,
        ids: tuple[str, str],
        url: str,
        when: datetime,
        response: Response,
        original: Original,
        duplicate: WrittenRecord,
    ) -> Fields:
        """A revisit record of the identical-payload-digest profile (WARC 1.1, 6.7.2)."""
        fields = self._exchange_fields(wfile, "response", ids, url, when, response)
        fields[0] = ("WARC-Type", "revisit")
        fields += [
            ("WARC-Payload-Digest", f"sha256:{duplicate.payload_sha256}"),
            ("WARC-Profile", REVISIT_PROFILE),
            ("WARC-Refers-To", original.record_id),
            ("WARC-Refers-To-Target-URI", original.url),
            ("WARC-Refers-To-Date", warc_date(original.date)),
        ]
        return fields

    def _pump(
        self,
        body_iter: Iterable[memoryview],
        sink: Callable[[memoryview], Any],
        url: str,
        kept: bytearray | None,
    ) -> None:
        advanced = self.c.progress.advanced
        stop = self.stop
        for chunk in body_iter:
            if stop.is_set():
                raise CaptureInterrupted(f"stopped while fetching {url}")
            sink(chunk)
            if kept is not None and len(kept) < PARSE_LIMIT:
                kept += chunk[: PARSE_LIMIT - len(kept)]
            advanced(url, len(chunk))

    def _exchange_fields(
        self,
        wfile: WarcFile,
        warc_type: str,
        ids: tuple[str, str],
        url: str,
        when: datetime,
        response: Response,
    ) -> Fields:
        """Header fields of a request or response record; ``ids`` = (own, partner)."""
        fields: Fields = [
            ("WARC-Type", warc_type),
            ("WARC-Record-ID", ids[0]),
            ("WARC-Date", warc_date(when)),
            ("WARC-Target-URI", url),
            ("WARC-Warcinfo-ID", self.series.warcinfo_ids[wfile.name]),
            ("WARC-IP-Address", response.ip_address),
            ("WARC-Concurrent-To", ids[1]),
        ]
        if warc_type == "response":
            fields += [("WARC-Protocol", p) for p in response.protocols]
            if response.cipher_suite:
                fields.append(("WARC-Cipher-Suite", response.cipher_suite))
            fields.append(("Content-Type", HTTP_RESPONSE_TYPE))
        else:
            fields.append(("Content-Type", HTTP_REQUEST_TYPE))
        return fields

    def _entries(
        self,
        task: Task,
        url: str,
        role: str,
        response: Response,
        when: datetime,
        req: WrittenRecord,
        rec: WrittenRecord,
    ) -> None:
        is_redirect = response.status in (301, 302, 303, 307, 308) and response.header("Location")
        record_role = "redirect" if is_redirect else role
        via = task.via if url == task.url else f"{task.via} (redirected from {task.url})"
        common: dict[str, Any] = {
            "url": url,
            "fetched_at": when,
            "role": record_role,
            "ip_address": response.ip_address,
            "discovered_from": task.found_on,
            "discovered_via": via,
        }
        media = response.media_type
        entries = [
            placed(
                req,
                warc_type="request",
                concurrent_to=rec.record_id,
                **common,
            ),
            placed(
                rec,
                warc_type="response",
                http_status=response.status,
                content_type=media,
                payload_sha256=rec.payload_sha256,
                payload_length=rec.payload_length,
                truncated=rec.truncated,
                concurrent_to=req.record_id,
                **common,
            ),
        ]
        if rec.refers_to is not None:  # a revisit: the row as a reader of the WARC sees it
            entries[1] = replace(
                entries[1],
                warc_type="revisit",
                http_status=None,
                content_type=None,
                payload_length=None,
                refers_to=rec.refers_to,
            )
        with self.seen_lock:
            self.capture.records.extend(entries)
            if task.is_seed and not is_redirect:
                self.page_response_id = rec.record_id


def _streamed(
    response: Response, source: Callable[[StreamingRecord], None], adaptive: _Adaptive
) -> RecordWriter:
    """The writer of a response record whose body ``source`` streams into it; its
    ``WARC-JSON-Metadata``, if any, is known when the body has been written."""
    head = response.head
    level = compression_level(response.content_type)
    room = ADAPTIVE_ROOM if adaptive.kind is not None else 0

    def write(wfile: WarcFile, fields: Fields) -> WrittenRecord:
        stream = wfile.begin_record(fields, head, level=level, late_room=room)
        source(stream)
        return stream.finish(response.truncated, adaptive.fields())

    return write


def _tapped(
    pieces: Iterable[memoryview], tap: Callable[[memoryview], Any], response: Response
) -> Iterator[memoryview]:
    """The body's pieces, each handed to ``tap`` first.  When the tap's reader has gone
    (:class:`Abandoned`: the browser cancelled a request it relayed), the body is still
    read to its end if that comes within READ_ON_ABANDONED bytes; past them the rest is
    not read and the record is marked ``WARC-Truncated: unspecified`` (the server did
    not cut it; a player that wanted a few bytes of a video did), and the capture
    fetches a video whole itself."""
    relaying = True
    after = 0  # bytes received since the reader went
    for piece in pieces:
        if relaying:
            try:
                tap(piece)
            except Abandoned:
                relaying = False
        else:
            after += len(piece)
            if after > READ_ON_ABANDONED:
                response.truncated = response.truncated or "unspecified"
                return
        yield piece


def _decode_for_parsing(raw: bytes, response_headers: dict[str, str]) -> bytes:
    """The entity for parsing: de-chunked and decompressed, capped at PARSE_LIMIT."""
    body = raw
    if response_headers.get("transfer-encoding", "").lower().endswith("chunked"):
        body = dechunk(body)
    coding = response_headers.get("content-encoding", "").strip().lower()
    if coding in ("gzip", "x-gzip", "deflate"):
        wbits = 47 if coding != "deflate" else 15
        try:
            dec = zlib.decompressobj(wbits)
            out = dec.decompress(body, PARSE_LIMIT)
        except zlib.error:
            if coding != "deflate":
                return body
            try:
                dec = zlib.decompressobj(-15)
                out = dec.decompress(body, PARSE_LIMIT)
            except zlib.error:
                return body
        return out
    return body


def _read_as_html(role: str, media: str) -> bool:
    """Whether the frontier reads a body as a page (``_Frontier._expand``: before any
    other kind), whatever its URL says."""
    return role in ("page", "iframe") and (media in HTML_TYPES or not media)


def _parse_worthy(url: str, response: Response, role: str, start: bytes | bytearray) -> bool:
    """Whether to keep a body for parsing (pages, stylesheets, manifests; never media)."""
    media = response.media_type or ""
    if role in ("page", "iframe"):
        if media in HTML_TYPES or is_hls(url, media) or is_dash(url, media):
            return True
        # no type, or text/*: parse unless it looks binary
        return (media == "" or media.startswith("text/")) and b"\x00" not in start[:1024]
    path = urlsplit(url).path.lower()
    return media in CSS_TYPES or path.endswith(".css") or is_hls(url, media) or is_dash(url, media)
