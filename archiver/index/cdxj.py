"""CDXJ lines from index rows: what replay tools read to find a record.

A CDXJ line is ``<SURT key> <14-digit time> <JSON>``, sorted by its bytes, as pywb,
ReplayWeb.page (wabac.js), cdxj-indexer and py-wacz write and read it::

    com,example)/news 20261206101500 {"url": "https://example.com/news", "mime": "text/html", ...}

The key is the URL in SURT form computed by the ``surt`` library, the one pywb,
cdxj-indexer and py-wacz use, so that a replay tool's lookup finds our lines.  The JSON
follows cdxj-indexer's fields and order (``url``, ``mime``, ``status``, ``digest``,
``length``, ``offset``, ``filename``); ``digest`` is the record's ``WARC-Payload-Digest``
as archiver writes it, ``sha256:<hex>``.  A revisit's ``mime`` is ``warc/revisit``, as
cdxj-indexer says it, so a replay tool looks up the original by digest.

A large index is written compressed (:func:`compressed`), as ZipNum: the sorted lines in
gzip members of :data:`BLOCK_LINES` lines each (``index.cdx.gz``), and a small index of
the members (``index.idx``: each member's first key, offset, length and SHA-256) that
ReplayWeb.page reads first, loading a member only when a lookup falls in it; the bytes
are those cdxj-indexer's compressed writer makes of the same lines.

Only the records a replay tool serves are listed: ``response``, ``revisit`` and
``resource`` (a browser capture's screenshot, PDF, DOM and text, under their
``urn:<kind>:<url>`` names).  Requests, our metadata and warcinfo records are not.
Everything comes from the index (``records`` table); no WARC file is read.
"""

from __future__ import annotations

import hashlib
import json
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

SERVED_TYPES = ("response", "revisit", "resource")
"""The record types a CDXJ index lists: what a replay tool can serve."""

COLUMNS = (
    "url",
    "warc_type",
    "fetched_at",
    "http_status",
    "content_type",
    "payload_sha256",
    "warc_filename",
    "warc_offset",
    "warc_length",
)
"""The ``records`` columns a line is made from."""


def surt_key(url: str) -> str:
    """The SURT form of ``url`` that pywb and wabac.js look records up by.

    ``surt`` fails on a few URLs it cannot parse; such a URL is keyed by itself, as
    cdxj-indexer does, so that the line is still there for an exact lookup.
    """
    import surt  # imported when needed (tldextract behind it is slow to import)

    try:
        key: str = surt.surt(url)
    except Exception:  # the library's own errors on odd input
        return url
    return key


def timestamp14(value: datetime | str) -> str:
    """``YYYYMMDDhhmmss`` in UTC, what CDXJ lines carry."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y%m%d%H%M%S")


def line(row: Mapping[str, Any], filename: str) -> bytes:
    """One record's CDXJ line (no newline); ``filename`` as the reader will open it."""
    warc_type = row["warc_type"]
    fields: dict[str, str] = {"url": row["url"]}
    if warc_type == "revisit":
        fields["mime"] = "warc/revisit"
    elif row.get("content_type"):
        fields["mime"] = str(row["content_type"]).split(";", 1)[0].strip().lower()
    status = row.get("http_status")
    if status is not None:
        fields["status"] = str(status)
    elif warc_type == "resource":
        fields["status"] = "200"  # what cdxj-indexer gives a resource record
    if row.get("payload_sha256"):
        fields["digest"] = "sha256:" + str(row["payload_sha256"])
    fields["length"] = str(row["warc_length"])
    fields["offset"] = str(row["warc_offset"])
    fields["filename"] = filename
    head = f"{surt_key(row['url'])} {timestamp14(row['fetched_at'])} "
    return (head + json.dumps(fields, ensure_ascii=False)).encode("utf-8")


def lines(
    rows: Iterable[Mapping[str, Any]], filename_of: Callable[[str], str] | None = None
) -> list[bytes]:
    """The sorted CDXJ lines of ``rows`` (``records`` rows with :data:`COLUMNS`), each
    record's file named by ``filename_of(warc_filename)`` (default: as in the index)."""
    name = filename_of or (lambda path: path)
    out = [
        line(row, name(row["warc_filename"]))
        for row in rows
        if row.get("warc_type") in SERVED_TYPES and row.get("url")
    ]
    out.sort()
    return out


def select_sql(capture_count: int | None) -> str:
    """SQL over the index for :data:`COLUMNS` of the served records of the captures
    given as parameters (``None``: every capture)."""
    where = f"warc_type in ({', '.join(repr(t) for t in SERVED_TYPES)}) and url is not null"
    if capture_count is not None:
        marks = ", ".join("?" for _ in range(capture_count))
        where += f" and capture_id in ({marks})"
    return f"select {', '.join(COLUMNS)} from records where {where}"


BLOCK_LINES = 300
"""Lines per gzip member of a compressed index (cdxj-indexer's default)."""
COMPRESSED_DATA = "index.cdx.gz"


def compressed(
    sorted_lines: Sequence[bytes], data_name: str = COMPRESSED_DATA, block: int = BLOCK_LINES
) -> tuple[bytes, bytes]:
    """``(index.cdx.gz, index.idx)`` of sorted CDXJ lines (no newlines), as
    cdxj-indexer's ``CompressedWriter`` writes them with record digests."""
    meta = json.dumps({"format": "cdxj-gzip-1.0", "filename": data_name})
    idx = [f"!meta 0 {meta}\n".encode()]
    data = bytearray()
    for start in range(0, len(sorted_lines), block):
        lines = sorted_lines[start : start + block]
        packer = zlib.compressobj(wbits=16 + zlib.MAX_WBITS)
        member = packer.compress(b"".join(line + b"\n" for line in lines)) + packer.flush()
        prefix = lines[0].split(b"{", 1)[0].strip()
        where = {
            "offset": len(data),
            "length": len(member),
            "digest": "sha256:" + hashlib.sha256(member).hexdigest(),
        }
        idx.append(prefix + b" " + json.dumps(where).encode() + b"\n")
        data += member
    return bytes(data), b"".join(idx)


def read_compressed(
    data: bytes, idx: bytes, limit: int = 256 * 1024 * 1024
) -> tuple[list[bytes], list[str]]:
    """The lines of a compressed index, and what is wrong with it: each member where
    ``index.idx`` says (one after the other, the whole file), of the SHA-256 it says,
    starting with the key it says.  The lines are compared, never the compressed bytes:
    another zlib compresses the same lines otherwise."""
    lines: list[bytes] = []
    problems: list[str] = []
    entries = idx.splitlines()
    if not entries or not entries[0].startswith(b"!meta"):
        return lines, ["index.idx does not start with its !meta line"]
    at = 0
    for number, entry in enumerate(entries[1:], 2):
        prefix, _, doc = entry.partition(b" {")
        try:
            where = json.loads(b"{" + doc)
            offset, length = int(where["offset"]), int(where["length"])
        except (ValueError, KeyError, TypeError):
            problems.append(f"index.idx line {number} is not a block's place")
            continue
        if offset != at or length <= 0 or offset + length > len(data):
            problems.append(f"index.idx line {number}: a block at {offset} (+{length}), not {at}")
        member = data[offset : offset + length]
        at = offset + length
        digest = where.get("digest")
        if digest is not None and digest != "sha256:" + hashlib.sha256(member).hexdigest():
            problems.append(f"index.idx line {number}: the block's SHA-256 is not its digest")
        unpacker = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
        try:
            text = unpacker.decompress(member, max(limit - sum(map(len, lines)), 1))
        except zlib.error as exc:
            problems.append(f"index.cdx.gz at {offset}: not a gzip member ({exc})")
            continue
        if unpacker.unconsumed_tail or not unpacker.eof or unpacker.unused_data:
            problems.append(f"index.cdx.gz at {offset}: not one whole gzip member (or too large)")
            continue
        block = text.splitlines()
        if not block or block[0].split(b"{", 1)[0].strip() != prefix.strip():
            problems.append(f"index.idx line {number}: its key is not its block's first")
        lines += block
    if at != len(data):
        problems.append("index.cdx.gz holds bytes no index.idx line points to")
    return lines, problems
