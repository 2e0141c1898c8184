"""What extraction reports: its errors (:class:`ExtractError` and its two kinds) and its
results (:class:`ExtractResult`, one :class:`Part` per record written)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from archiver.core.errors import ArchiverError, Failure, UsageProblem

# --------------------------------------------------------------------------- errors


class ExtractError(ArchiverError):
    """Nothing was written; ``user_error``: the selection was wrong (exit 2), else exit 1."""

    user_error: bool = False


class SelectionError(UsageProblem, ExtractError):
    """The selection is wrong: unknown id or URL, ambiguous, or a bad output path."""

    user_error = True


class ExtractionFailed(Failure, ExtractError):
    """The archive does not hold what the index says, or cannot be read or written."""

    user_error = False


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
