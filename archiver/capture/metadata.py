"""The capture's own records: its metadata record (:func:`_metadata_json`), the
certificate, media-info and conversion records, and what the warcinfo records are to it."""

from __future__ import annotations

import ctypes
import functools
import hashlib
import json
import mimetypes
import platform
import ssl
import sys
import zlib
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from zlib_ng import zlib_ng

from archiver import TOOL_NAME, __version__
from archiver.capture.state import _copy, _RunState
from archiver.core.model import RecordEntry, UnverifiedTLS, isoformat
from archiver.core.urls import own_record_uri
from archiver.warc.writer import Fields, WarcFile, WrittenRecord, compression_level, warc_date
from archiver.web.http import Response
from archiver.web.media import MediaResult, ffmpeg

# The metadata record's format; its JSON Schema is schemas/capture-metadata.v2.json.
METADATA_SCHEMA = "archiver/capture-metadata/2"
TLS_SCHEMA = "archiver/tls-certificate/1"  # a certificate that did not verify (--insecure)
# yt-dlp's account of a platform URL, in a metadata record of its own.
MEDIA_INFO_SCHEMA = "archiver/media-info/1"


def library_versions() -> dict[str, str]:
    """Versions of what touched the bytes, for provenance."""
    versions = {
        "python": platform.python_version(),
        "zlib": zlib.ZLIB_RUNTIME_VERSION,
        "zlib-ng": str(zlib_ng.ZLIBNG_VERSION),
    }
    try:
        import ssl

        versions["openssl"] = ssl.OPENSSL_VERSION
    except ImportError:  # pragma: no cover - Python always has ssl here
        pass
    for name in ("selectolax", "tinycss2", "m3u8", "warcio", "pyarrow"):
        try:
            from importlib.metadata import version

            versions[name] = version(name)
        except Exception:
            continue
    return versions


class _Metadata(_RunState):
    """The records of ours a capture writes besides the exchanges (their target URIs are
    ``urn:archiver-<role>:<url>``), and the entries of its warcinfo records."""

    def _own_fields(
        self,
        wfile: WarcFile,
        warc_type: str,
        target: str,
        now: datetime,
        refers: str | None,
    ) -> Fields:
        """The head of a record of ours (metadata, conversion), whose ``target`` is an
        ``urn:archiver-<role>:<url>`` (see :func:`archiver.core.urls.own_record_uri`)."""
        fields: Fields = [
            ("WARC-Type", warc_type),
            ("WARC-Record-ID", self.c.new_record_id()),
            ("WARC-Date", warc_date(now)),
            ("WARC-Target-URI", target),
            ("WARC-Warcinfo-ID", self.series.warcinfo_ids[wfile.name]),
        ]
        if refers:
            fields.append(("WARC-Refers-To", refers))
        return fields

    def _write_json_record(
        self,
        url: str,
        block: bytes,
        role: str,
        now: datetime,
        upcoming: int,
        *,
        refers_to: str | None = None,
        via: str | None = None,
    ) -> str:
        """A metadata record holding JSON about ``url``; the caller holds the writer.

        Its target URI is ``urn:archiver-<role>:<url>``, not ``url``: replay tools
        would serve it in place of the page (see :func:`archiver.core.urls.own_record_uri`).
        Returns its record id."""
        wfile = self.series.current(upcoming)
        target = own_record_uri(role, url)
        fields = self._own_fields(wfile, "metadata", target, now, refers_to)
        fields.append(("Content-Type", "application/json"))
        rec = wfile.write_record(fields, block)
        self.capture.records.append(
            placed(
                rec,
                warc_type="metadata",
                url=target,
                fetched_at=now,
                role=role,
                content_type="application/json",
                payload_sha256=rec.block_sha256,
                payload_length=rec.content_length,
                discovered_via=via,
                refers_to=refers_to,
            )
        )
        return rec.record_id

    def _note_unverified(self, response: Response, url: str, when: datetime, rec: str) -> None:
        """Under --insecure, the first response from a server whose certificate failed:
        a metadata record with the certificate and what was wrong with it."""
        request = response.request
        host = f"{request.host}:{request.port}"
        der = response.certificate or b""
        digest = hashlib.sha256(der).hexdigest()
        seen = self.capture.tls_unverified
        if any(t.host == host and t.certificate_sha256 == digest for t in seen):
            return
        body = {
            "schema": TLS_SCHEMA,
            "url": url,  # the first URL fetched from this server, whose response it refers to
            "host": host,
            "verified": False,
            "problem": response.tls_error,
            "protocols": response.protocols,
            "cipher_suite": response.cipher_suite,
            "certificate_sha256": digest,
            "certificate_pem": ssl.DER_cert_to_PEM_cert(der),
        }
        block = json.dumps(body, indent=1).encode("ascii")
        record_id = self._write_json_record(url, block, "certificate", when, 0, refers_to=rec)
        seen.append(UnverifiedTLS(host, response.tls_error or "", digest, record_id, url))

    def _write_conversion(self, result: MediaResult) -> dict[str, Any]:
        """The playable file yt-dlp merged from separate streams, as a conversion record.

        It refers to the recorded response its first stream came from; the media-info
        record lists every source record and the tool that merged them.  The raw
        responses stay the evidence.
        """
        assert result.merged is not None
        recorded: dict[str, list[str]] = {}
        for entry in self.capture.records:
            if (
                entry.role == "platform"
                and entry.warc_type in ("response", "revisit")
                and entry.url
            ):
                recorded.setdefault(entry.url, []).append(entry.record_id)
        sources = []
        for source in result.sources:
            ids = [rid for u in source["urls"] for rid in recorded.get(u, [])[-1:]]
            sources.append({**source, "record_ids": ids})
        refers = next((s["record_ids"][0] for s in sources if s["record_ids"]), None)
        tool = ffmpeg()
        if tool is not None:
            self.capture.libraries["ffmpeg"] = tool[1]
        size = result.merged.stat().st_size
        wfile = self.series.current(size)
        now = self.c.clock()
        target = own_record_uri("conversion", result.url)  # a file of ours, not the page
        fields = self._own_fields(wfile, "conversion", target, now, refers)
        media_type = mimetypes.guess_type(result.merged.name)[0] or "application/octet-stream"
        fields.append(("Content-Type", media_type))
        stream = wfile.begin_record(fields, b"", level=compression_level(media_type))
        with result.merged.open("rb") as merged:
            _copy(merged, stream, self.stop)
        rec = stream.finish()
        self.capture.records.append(
            placed(
                rec,
                warc_type="conversion",
                url=target,
                fetched_at=now,
                role="conversion",
                content_type=media_type,
                payload_sha256=rec.payload_sha256,
                payload_length=rec.payload_length,
                discovered_via="yt-dlp merge",
                refers_to=refers,
            )
        )
        return {
            "record_id": rec.record_id,
            "file": result.merged.name,
            "tool": {"name": "ffmpeg (imageio-ffmpeg)", "version": tool[1] if tool else None},
            "merged_by": {"name": "yt-dlp", "version": self.capture.libraries.get("yt-dlp")},
            "sources": sources,
        }

    def _write_media_info(self, result: MediaResult, conversion: dict[str, Any] | None) -> None:
        """yt-dlp's account of one platform URL, as a metadata record."""
        body = {
            "schema": MEDIA_INFO_SCHEMA,
            "url": result.url,
            "extractor": result.extractor,
            "yt_dlp": self.capture.libraries.get("yt-dlp"),
            "skipped": result.skipped,
            "error": result.error,
            "warnings": result.warnings,
            "conversion": conversion,
            "info": result.info,
        }
        block = json.dumps(body, indent=1, ensure_ascii=False, default=str).encode("utf-8")
        # the response (or revisit) of the platform URL itself, when yt-dlp fetched it
        page = [
            r.record_id
            for r in self.capture.records
            if r.url == result.url and r.warc_type in ("response", "revisit")
        ]
        self._write_json_record(
            result.url,
            block,
            "media-info",
            self.c.clock(),
            len(block),
            refers_to=page[-1] if page else None,
            via="yt-dlp",
        )

    def _write_metadata(self) -> None:
        _give_back_memory()  # what the fetch threads freed
        capture = self.capture
        now = self.c.clock()
        body = {
            "schema": METADATA_SCHEMA,
            "capture_id": capture.capture_id,
            "seed_url": capture.seed_url,
            "seed_url_unicode": capture.seed_url_unicode,  # as given, if not ASCII
            "auth_origin": capture.auth_origin,  # Basic auth sent there, recorded redacted
            "final_url": capture.final_url,
            "http_status": capture.http_status,
            "status": capture.status.value,
            "failure": capture.failure,
            "started_at": isoformat(capture.started_at),
            "finished_at": isoformat(capture.finished_at or now),
            "operator": self.options.operator,
            "collection": self.options.collection,
            "note": self.options.note,
            "tool": {"name": TOOL_NAME, "version": __version__},
            "libraries": capture.libraries,
            "hostname": capture.hostname,
            "platform": capture.platform,
            "python": sys.version.split()[0],
            "user_agent": self.options.user_agent,
            "options": self.options.recorded(),
            "page": {
                "title": capture.title,
                "author": capture.author,
                "published_at": capture.published_at,
                "language": capture.language,
            },
            "redirects": capture.redirects,
            "videos": [v.to_json() for v in capture.videos],
            "outlinks": capture.outlinks,
            "errors": [e.to_json() for e in capture.errors],
            "not_followed": capture.not_followed,
            "budget_spent": capture.budget_spent,  # what ran out left things out: partial
            "live": capture.live,  # live HLS playlists: a snapshot, or followed a while
            "tls_unverified": [t.to_json() for t in capture.tls_unverified],
            "truncated": [
                {"url": r.url, "reason": r.truncated}
                for r in capture.records
                if r.truncated and r.warc_type == "response"
            ],
            **({"browser": capture.browser} if capture.browser is not None else {}),
            "record_count": len(capture.records),
            # "records" comes last: what each record is to the capture, so the index can
            # be rebuilt from the WARCs (see _metadata_json)
        }
        block = _metadata_json(body, capture.records)
        self._write_json_record(
            capture.seed_url, block, "metadata", now, 0, refers_to=self.page_response_id
        )
        del block
        _give_back_memory()

    def _note_warcinfo(self) -> None:
        for info in self.series.warcinfo_records:
            self.capture.records.append(
                placed(
                    info,
                    warc_type="warcinfo",
                    url=None,
                    fetched_at=self.warcinfo_dates[info.filename],
                    role="warcinfo",
                    content_type="application/warc-fields",
                    payload_sha256=info.block_sha256,
                    payload_length=info.content_length,
                )
            )


def _metadata_json(body: dict[str, Any], records: Iterable[RecordEntry]) -> bytes:
    """The metadata record's block: ``body`` with a last key ``"records"`` listing each
    record's id, role and provenance (not the warcinfo records; media-info and conversion
    records too), as ``json.dumps(..., indent=1, ensure_ascii=False)`` in UTF-8 writes it,
    byte for byte.  The list is written entry by entry into one buffer: one dict per
    record and the pure-Python encoder's (``indent``) chunks of them, all held at once,
    took 40 MB for a page of 20,000 images."""
    head = json.dumps(body, indent=1, ensure_ascii=False, sort_keys=False)
    if not head.endswith("\n}"):  # an empty body: "{}"
        raise ValueError("the metadata record has no fields")
    value = json.JSONEncoder(ensure_ascii=False).encode  # a str, None: as dumps writes them
    out = bytearray(head[:-2].encode("utf-8"))
    out.extend(b',\n "records": [')
    empty = True
    for r in records:
        if r.warc_type == "warcinfo":
            continue
        item = (
            f'{"" if empty else ","}\n  {{\n   "record_id": {value(r.record_id)},'
            f'\n   "role": {value(r.role)},'
            f'\n   "discovered_from": {value(r.discovered_from)},'
            f'\n   "discovered_via": {value(r.discovered_via)}\n  }}'
        )
        out.extend(item.encode("utf-8"))
        empty = False
    out.extend(b"]\n}" if empty else b"\n ]\n}")
    return bytes(out)


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    try:
        return ctypes.CDLL(None).malloc_trim  # glibc only
    except (OSError, AttributeError):
        return None


def _give_back_memory() -> None:
    """Hand the C heap's free pages back to the system (glibc's ``malloc_trim``): what
    the fetch threads' arenas and the metadata record's buffers freed is otherwise kept,
    and the next step's peak adds to it (20 to 40 MB for a page of 50,000 images).
    Without glibc, nothing."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


def placed(rec: WrittenRecord, **provenance: Any) -> RecordEntry:
    """The index entry of a record just written: where it landed and its digests, with
    what the capture knows about it."""
    return RecordEntry(
        record_id=rec.record_id,
        warc_filename=rec.filename,
        warc_offset=rec.offset,
        warc_length=rec.length,
        block_sha256=rec.block_sha256,
        record_sha256=rec.record_sha256,
        **provenance,
    )
