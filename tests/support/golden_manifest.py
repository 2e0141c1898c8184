"""A signed manifest built from fixed rows: the golden one (tests/golden/manifest.json),
and the base other tests build large manifests from."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from archiver.index.store import CaptureRow, RecordRow
from archiver.trust.manifest import FileEntry, Manifest, build
from tests.support.deterministic import fixed_signer

CAPTURE_ID = "20261125182502-e0b82c6ba2"
WARC = f"warc/default/{CAPTURE_ID}-00000.warc.gz"
START = datetime(2026, 11, 25, 18, 25, 0, 125000, tzinfo=UTC)


def _record(n: int, warc_type: str, offset: int, length: int, **values: Any) -> RecordRow:
    row: dict[str, Any] = {
        "capture_id": CAPTURE_ID,
        "record_id": f"<urn:uuid:00000000-0000-4000-8000-{n:012d}>",
        "warc_type": warc_type,
        "url": "https://example.org/news/article",
        "fetched_at": START + timedelta(milliseconds=100 * n),
        "http_status": None,
        "content_type": None,
        "payload_sha256": None,
        "payload_length": None,
        "block_sha256": hashlib.sha256(f"block {n}".encode()).hexdigest(),
        "record_sha256": hashlib.sha256(f"record {n}".encode()).hexdigest(),
        "truncated": None,
        "ip_address": "93.184.215.14",
        "role": "page",
        "discovered_from": None,
        "discovered_via": "seed",
        "concurrent_to": None,
        "refers_to": None,
        "warc_filename": WARC,
        "warc_offset": offset,
        "warc_length": length,
        "problem": None,
    }
    row.update(values)
    return RecordRow(**row)


def golden_manifest() -> Manifest:
    signer = fixed_signer()
    capture = CaptureRow(
        capture_id=CAPTURE_ID,
        imported=False,
        seed_url="https://example.org/news/article",
        final_url="https://example.org/news/article?page=1",
        http_status=200,
        status="partial",
        failure=None,
        started_at=START,
        finished_at=datetime(2026, 11, 25, 18, 25, 2, 500000, tzinfo=UTC),
        operator="J. Analyst",
        collection="default",
        note='Requested by counsel, "case 4711"',
        tool_name="archiver",
        tool_version="0.1.0",
        warcio_version="1.8.1",
        pyarrow_version="26.0.1",
        ytdlp_version=None,
        libraries={"warcio": "1.8.1", "python": "3.11.7", "openssl": "OpenSSL 3.0.19"},
        hostname="evidence-01",
        platform="Linux-6.1.0-x86_64-with-glibc2.36",
        user_agent="Mozilla/5.0 (compatible; archiver/0.1.0)",
        title="Новости: «Статья» <b>&amp;</b>",
        author="A. Author",
        published_at="2026-11-24T09:00:00+01:00",
        language="ru",
        outlinks=["https://example.org/", "https://example.org/about"],
        video_count=1,
        warc_files=[WARC],
        record_count=4,
        total_bytes=2190,
        warc_bytes=3051,
        errors=[{"url": "https://cdn.example.org/clip.mp4", "reason": "HTTP 404"}],
        # build() must drop these: the manifest cannot hold its own signer and digest
        key_fingerprint=signer.fingerprint,
        manifest_sha256="ab" * 32,
    )
    plus_one = timezone(timedelta(hours=1))  # written back as UTC
    records = [
        _record(
            1,
            "warcinfo",
            0,
            781,
            url=None,
            content_type="application/warc-fields",
            role="warcinfo",
            discovered_via=None,
            ip_address=None,
        ),
        _record(
            2, "request", 781, 454, concurrent_to="<urn:uuid:00000000-0000-4000-8000-000000000003>"
        ),
        _record(
            3,
            "response",
            1235,
            872,
            fetched_at=datetime(2026, 11, 25, 19, 25, 0, 325000, tzinfo=plus_one),
            http_status=200,
            content_type="text/html",
            payload_sha256=hashlib.sha256(b"payload 3").hexdigest(),
            payload_length=2190,
            truncated="length",
        ),
        _record(
            4,
            "metadata",
            2107,
            944,
            url="urn:archiver-metadata:https://example.org/news/article",
            content_type="application/json",
            role="metadata",
            discovered_via=None,
            refers_to="<urn:uuid:00000000-0000-4000-8000-000000000003>",
        ),
    ]
    files = [FileEntry(WARC, 3051, hashlib.sha256(b"the warc file").hexdigest())]
    return build(
        capture,
        records,
        files,
        signer.fingerprint,
        datetime(2026, 11, 25, 18, 25, 2, 577120, tzinfo=UTC),
        "archiver",
        "0.1.0",
    )
