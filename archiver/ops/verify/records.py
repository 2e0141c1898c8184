"""The records of a signed WARC file: the one pass that hashes the file and checks each
record, the second pass that locates changes, and each record against its signed row."""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from archiver.index.store import RecordRow
from archiver.ops.verify.reading import _Reading
from archiver.ops.verify.report import Problem
from archiver.warc.reader import HTTP_TYPES, StoredRecord, Unreadable, parse_digest, read_stored


def _one_pass(
    path: Path,
    name: str,
    records: list[RecordRow],
    reading: _Reading,
) -> tuple[list[Problem], str]:
    """Read the file once: its SHA-256, and each record's heads and digests.

    The file's SHA-256 runs on one core and each record's block digest on the other.
    A record's payload is part of its block: its digest is compared with the signed
    one and, with ``deep``, recomputed too (a third SHA-256 over the same bytes).
    """
    digest = hashlib.sha256()
    problems: list[Problem] = []
    with open(path, "rb", buffering=0) as fh:
        for row in records:
            try:
                rec = read_stored(
                    path,
                    row.warc_offset,
                    row.warc_length,
                    pool=reading.pool,
                    fh=fh,
                    stored_digest=digest,
                    payload_digest=reading.deep,
                )
            except (Unreadable, OSError) as exc:
                problems.append(_at(row, name, f"unreadable: {exc}"))
                return problems, ""
            problems += _compare_record(rec, row, name)
            reading.progress.advanced(row.warc_length)
        while chunk := fh.read(1024 * 1024):  # bytes after the last record, if any
            digest.update(chunk)
    return problems, digest.hexdigest()


def _locate(
    path: Path, name: str, size: int, records: list[RecordRow], pool: ThreadPoolExecutor
) -> list[Problem]:
    """Which records differ from the signed ones (a second pass, only for a changed file)."""
    problems: list[Problem] = []
    for row in records:
        if row.warc_offset + row.warc_length > size:
            problems.append(_at(row, name, f"missing: the file ends at {size}, before this record"))
            continue
        try:
            rec = read_stored(path, row.warc_offset, row.warc_length, pool=pool)
        except Unreadable as exc:
            problems.append(_at(row, name, f"changed: {exc}"))
            continue
        except OSError as exc:
            problems.append(_at(row, name, f"cannot be read: {exc}"))
            continue
        found = _compare_record(rec, row, name)
        if rec.record_sha256 != row.record_sha256:
            if not found:
                found = [_at(row, name, "changed: its stored bytes differ from the signed ones")]
            problems += found
        else:
            problems += found
    end = max((r.warc_offset + r.warc_length for r in records), default=0)
    if size > end:
        problems.append(
            Problem(f"{size - end} bytes after the last signed record", file=name, offset=end)
        )
    return problems


def _compare_record(rec: StoredRecord, row: RecordRow, name: str) -> list[Problem]:
    problems = []
    record_id = rec.get("WARC-Record-ID")
    if record_id != row.record_id:
        return [_at(row, name, f"changed: the record here is {record_id}, not the signed one")]
    if rec.warc_type != row.warc_type:
        problems.append(_at(row, name, f"WARC-Type is {rec.warc_type!r}, signed {row.warc_type!r}"))
    target = rec.get("WARC-Target-URI")
    if target != row.url:
        problems.append(_at(row, name, f"WARC-Target-URI is {target!r}, signed {row.url!r}"))
    if rec.block_sha256 != row.block_sha256:
        problems.append(_at(row, name, "block SHA-256 differs from the signed one"))
    if rec.payload_sha256 != row.payload_sha256 and (
        rec.payload_sha256 is not None or _stated_payload(rec) != row.payload_sha256
    ):
        problems.append(_at(row, name, "payload SHA-256 differs from the signed one"))
    problems += [_at(row, name, p) for p in rec.problems]
    return problems


def _stated_payload(rec: StoredRecord) -> str | None:
    """The payload digest a record states, when its payload was not hashed: the declared
    WARC-Payload-Digest, or the block's digest when the payload is the whole block."""
    if rec.warc_type in HTTP_TYPES or rec.get("WARC-Payload-Digest"):
        declared = parse_digest(rec.get("WARC-Payload-Digest"))
        return declared[1].hex() if declared and declared[0] == "sha256" else None
    return rec.block_sha256


def _at(row: RecordRow, name: str, message: str) -> Problem:
    return Problem(message, row.capture_id, name, row.warc_offset, row.record_id, row.url)
