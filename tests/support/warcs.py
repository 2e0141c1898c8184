"""Reading WARC files in tests with an independent reader (warcio), never our own."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from warcio.archiveiterator import ArchiveIterator


@dataclass
class ReadRecord:
    path: Path
    offset: int
    length: int
    version: str
    headers: list[tuple[str, str]]
    http_status: int | None
    http_headers: list[tuple[str, str]]
    payload: bytes  # the HTTP body as stored (raw: chunked framing and gzip kept)
    block: bytes | None  # the whole block, for records without HTTP headers

    def get(self, name: str) -> str | None:
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None

    def all(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k.lower() == name.lower()]

    @property
    def type(self) -> str:
        return self.get("WARC-Type") or ""

    @property
    def url(self) -> str | None:
        return self.get("WARC-Target-URI")

    @property
    def payload_sha256(self) -> str:
        return hashlib.sha256(self.payload).hexdigest()

    def http_header(self, name: str) -> str | None:
        for key, value in self.http_headers:
            if key.lower() == name.lower():
                return value
        return None

    def json(self) -> Any:
        assert self.block is not None
        return json.loads(self.block)


def read_warc(path: Path) -> list[ReadRecord]:
    """Every record of ``path``; digests are checked by warcio and must pass."""
    out: list[ReadRecord] = []
    with path.open("rb") as fh:
        it = ArchiveIterator(fh, check_digests="raise")
        for record in it:
            headers = list(record.rec_headers.headers)
            http_status = None
            http_headers: list[tuple[str, str]] = []
            block = None
            if record.http_headers is not None and record.rec_type in ("request", "response"):
                if record.rec_type == "response":
                    http_status = int(record.http_headers.get_statuscode())
                http_headers = list(record.http_headers.headers)
                payload = record.raw_stream.read()
            else:
                block = record.raw_stream.read()
                payload = block
            assert record.digest_checker.passed is not False, record.digest_checker.problems
            out.append(
                ReadRecord(
                    path=path,
                    offset=it.get_record_offset(),
                    length=0,
                    version=record.rec_headers.protocol,
                    headers=headers,
                    http_status=http_status,
                    http_headers=http_headers,
                    payload=payload,
                    block=block,
                )
            )
            out[-1].length = it.get_record_length()
    return out


def read_all(paths: list[Path]) -> list[ReadRecord]:
    records: list[ReadRecord] = []
    for path in paths:
        records += read_warc(path)
    return records


def responses_by_url(records: list[ReadRecord]) -> dict[str, ReadRecord]:
    return {r.url: r for r in records if r.type == "response" and r.url}
