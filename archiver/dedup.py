"""Identical payloads stored once: which record already holds a payload.

A response whose payload (by SHA-256) is already in the archive is written as a
``revisit`` record of the identical-payload-digest profile, pointing at the record
that holds the bytes (``WARC-Refers-To``, ``-Target-URI``, ``-Date``): the same
video embedded in two articles, captured again next week, or fetched twice by
yt-dlp.  The originals come from the index (responses of status 200, not truncated)
and from the capture itself as it goes; only from signed captures (never from
imported files or unsigned captures, which nothing vouches for).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from archiver.index import Index

REVISIT_PROFILE = "http://netpreserve.org/warc/1.1/revisit/identical-payload-digest"
DEDUP_MIN = 1024  # smaller payloads are stored again: a revisit would save nothing


@dataclass(frozen=True)
class Original:
    """The record that holds a payload."""

    record_id: str
    url: str
    date: datetime


class KnownPayloads:
    """Payload SHA-256 -> the record holding it; read from the index when first asked."""

    def __init__(self, archive_dir: Path) -> None:
        self.archive_dir = archive_dir
        self._known: dict[str, Original] | None = None
        self._lock = threading.Lock()

    def find(self, sha256: str) -> Original | None:
        with self._lock:
            return self._load().get(sha256)

    def add(self, sha256: str, original: Original) -> None:
        with self._lock:
            self._load().setdefault(sha256, original)

    def _load(self) -> dict[str, Original]:
        if self._known is None:
            self._known = _from_index(self.archive_dir)
        return self._known


def _from_index(archive_dir: Path) -> dict[str, Original]:
    index = Index(archive_dir)
    files = index.files("records")
    if not files:
        return {}
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    signed = pa.array(sorted(_signed_captures(index)), pa.string())

    known: dict[str, Original] = {}
    columns = ["payload_sha256", "record_id", "url", "fetched_at", "warc_type", "truncated"]
    located = ["warc_filename", "warc_offset", "warc_length"]
    wanted = [*columns, "http_status", "payload_length", "capture_id", *located]
    sizes: dict[str, int | None] = {}

    def still_there(name: str | None, offset: int | None, length: int | None) -> bool:
        """Whether the record's file is in the archive and long enough to hold it: a
        revisit of bytes that were moved out or deleted would point at nothing."""
        if not name or offset is None or length is None:
            return False
        if name not in sizes:
            try:
                sizes[name] = (archive_dir / name).stat().st_size
            except OSError:
                sizes[name] = None
        size = sizes[name]
        return size is not None and offset + length <= size

    for path in files:
        try:
            table = pq.read_table(path, columns=wanted)
        except Exception:  # an unreadable index file: dedup against the rest
            continue
        keep = pc.and_(
            pc.and_(pc.equal(table["warc_type"], "response"), pc.is_null(table["truncated"])),
            pc.and_(
                pc.equal(table["http_status"], 200),
                pc.greater_equal(table["payload_length"], DEDUP_MIN),
            ),
        )
        # only records of signed captures: an imported file or an unsigned capture
        # vouches for nothing (and cleanup may put the latter aside)
        keep = pc.and_(keep, pc.is_in(table["capture_id"], signed))
        for row in table.filter(keep).select([*columns[:4], *located]).to_pylist():
            if row["payload_sha256"] in known:
                continue
            if not still_there(row["warc_filename"], row["warc_offset"], row["warc_length"]):
                continue
            if row["payload_sha256"] and row["url"] and row["fetched_at"]:
                known.setdefault(
                    row["payload_sha256"], Original(row["record_id"], row["url"], row["fetched_at"])
                )
    return known


def _signed_captures(index: Index) -> set[str]:
    import pyarrow.parquet as pq

    out: set[str] = set()
    for path in index.files("captures"):
        try:
            table = pq.read_table(path, columns=["capture_id", "manifest_sha256"])
        except Exception:
            continue
        for row in table.to_pylist():
            if row["manifest_sha256"]:
                out.add(row["capture_id"])
    return out
