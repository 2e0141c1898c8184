"""Identical payloads stored once: which record already holds a payload.

A response whose payload (by SHA-256) is already in the archive is written as a
``revisit`` record of the identical-payload-digest profile, pointing at the record
that holds the bytes (``WARC-Refers-To``, ``-Target-URI``, ``-Date``): the same
video embedded in two articles, captured again next week, or fetched twice by
yt-dlp.  The originals come from the index (responses of status 200, not truncated)
and from the capture itself as it goes; only from captures signed by the capture's
own key (never from imported files, unsigned captures, or captures another key
signed: verify counts an original only when the revisit's signer vouched for it).
Before a revisit points at a record of the index, that capture's manifest is read
and its signature checked with the capture's own key: the index is derived data
anyone who can write the archive can edit.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from archiver.index.store import Index
from archiver.trust.keys import PublicKey

REVISIT_PROFILE = "http://netpreserve.org/warc/1.1/revisit/identical-payload-digest"
DEDUP_MIN = 1024  # smaller payloads are stored again: a revisit would save nothing


@dataclass(frozen=True)
class Original:
    """The record that holds a payload."""

    record_id: str
    url: str
    date: datetime
    # the signed capture holding it, for one found through the index (checked first)
    capture_id: str | None = field(default=None, compare=False)


class KnownPayloads:
    """Payload SHA-256 -> the records holding it; read from the index when first asked.

    With ``signer`` (the capture's own public key), only records of captures it
    signed: their manifest's signature is checked when one is first found, and a
    record that fails gives way to the next."""

    def __init__(self, archive_dir: Path, signer: PublicKey | None = None) -> None:
        self.archive_dir = archive_dir
        self.signer = signer
        self._known: dict[str, list[Original]] | None = None
        self._lock = threading.Lock()
        self._signed: dict[str, set[tuple[str, str]]] = {}  # capture id -> its responses

    def find(self, sha256: str) -> Original | None:
        with self._lock:
            candidates = self._load().get(sha256)
            while candidates and not self._vouched(candidates[0], sha256):
                del candidates[0]  # none left: the bytes are stored again
            return candidates[0] if candidates else None

    def _vouched(self, original: Original, sha256: str) -> bool:
        """Whether ``original`` (from the index) is a response of a capture whose
        manifest the capture's own key signed, with that payload digest."""
        if original.capture_id is None or self.signer is None:
            return True  # found in this capture, or nothing to check it with
        capture_id = original.capture_id
        if capture_id not in self._signed:
            self._signed[capture_id] = _signed_responses(self.archive_dir, capture_id, self.signer)
        return (original.record_id, sha256) in self._signed[capture_id]

    def add(self, sha256: str, original: Original) -> None:
        with self._lock:
            known = self._load()
            if not known.get(sha256):
                known[sha256] = [original]

    def _load(self) -> dict[str, list[Original]]:
        if self._known is None:
            self._known = _from_index(self.archive_dir, self.signer)
        return self._known


def _signed_responses(
    archive_dir: Path, capture_id: str, signer: PublicKey
) -> set[tuple[str, str]]:
    """(record id, payload SHA-256) of each response of ``capture_id`` whose manifest
    ``signer`` signed (its signature checked); empty when there is none such."""
    from archiver.trust.keys import signature_holds
    from archiver.trust.manifest import Manifest, ManifestError, signature_path

    out: set[tuple[str, str]] = set()
    for path in sorted((archive_dir / "warc").glob(f"*/{capture_id}.manifest.json")):
        try:
            data = path.read_bytes()
            signature = signature_path(path).read_bytes()
            if not signature_holds(signer, signature, data):
                continue
            manifest = Manifest.from_bytes(data)
        except (OSError, ManifestError, ValueError):
            continue
        out |= {
            (r.record_id, r.payload_sha256)
            for r in manifest.records
            if r.warc_type == "response" and r.payload_sha256
        }
    return out


def _from_index(archive_dir: Path, signer: PublicKey | None = None) -> dict[str, list[Original]]:
    index = Index(archive_dir)
    files = index.files("records")
    if not files:
        return {}
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    signed = pa.array(sorted(_signed_captures(index, signer)), pa.string())

    known: dict[str, list[Original]] = {}
    columns = ["payload_sha256", "record_id", "url", "fetched_at", "capture_id", "warc_type"]
    located = ["warc_filename", "warc_offset", "warc_length"]
    wanted = [*columns, "truncated", "http_status", "payload_length", *located]
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
        for row in table.filter(keep).select([*columns[:5], *located]).to_pylist():
            if not still_there(row["warc_filename"], row["warc_offset"], row["warc_length"]):
                continue
            if row["payload_sha256"] and row["url"] and row["fetched_at"]:
                known.setdefault(row["payload_sha256"], []).append(
                    Original(row["record_id"], row["url"], row["fetched_at"], row["capture_id"])
                )
    return known


def _signed_captures(index: Index, signer: PublicKey | None = None) -> set[str]:
    """The captures the index says are signed (by ``signer``, when given)."""
    import pyarrow.parquet as pq

    from archiver.trust.keys import fingerprint

    own = fingerprint(signer) if signer is not None else None
    out: set[str] = set()
    for path in index.files("captures"):
        try:
            table = pq.read_table(
                path, columns=["capture_id", "manifest_sha256", "key_fingerprint"]
            )
        except Exception:
            continue
        for row in table.to_pylist():
            if row["manifest_sha256"] and (own is None or row["key_fingerprint"] == own):
                out.add(row["capture_id"])
    return out
