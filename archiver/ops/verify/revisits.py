"""Revisits: each must stand for an original, signed by the same key (or a trusted
one), whose payload digest recomputed from its stored bytes is the revisit's."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from archiver.index.store import (
    Index,
    RecordRow,
)
from archiver.ops.verify.captures import (
    MANIFEST_LIMIT,
    _check_signature,
)
from archiver.ops.verify.reading import _inside, read_regular
from archiver.ops.verify.records import _at
from archiver.ops.verify.report import (
    CaptureResult,
    Report,
)
from archiver.ops.verify.targets import (
    _CAPTURE_ID,
    _capture_files,
)
from archiver.trust.keys import PublicKey
from archiver.trust.manifest import (
    Manifest,
    ManifestError,
)
from archiver.warc.reader import Unreadable, read_stored


@dataclass
class _Original:
    """A record a revisit stands for, in a capture whose signature holds."""

    row: RecordRow
    capture_id: str
    signer: str  # the fingerprint of the key that signed its capture
    # its payload's SHA-256 recomputed from the stored bytes, or why it could not be
    recomputed: tuple[str | None, str] | None = None

    def where(self) -> str:
        return (
            f"record {self.row.record_id} of capture {self.capture_id} "
            f"({self.row.warc_filename} @ {self.row.warc_offset})"
        )


def _resolve_revisits(
    report: Report,
    signed: dict[str, Manifest],
    archive: Path,
    keys: dict[str, PublicKey | None],
) -> None:
    """Every revisit of a signed capture must stand for a record that holds its payload.

    The original is looked for in the captures verified here, then (through the
    index) in the rest of the archive, where its manifest's signature is checked.  It
    counts only when the key that signed it is the one that signed the revisit's
    capture, or a trusted key (--trusted-key): a capture re-signed by another key
    vouches for nothing.  Its stored bytes are read, and its payload digest
    recomputed from them (never taken from its head): a body rewritten under the
    digest it declared fails.
    """
    held: dict[str, list[_Original]] = defaultdict(list)  # every candidate, not the first
    for capture_id, manifest in signed.items():
        for row in manifest.records:
            if row.warc_type != "revisit":
                held[row.record_id].append(_Original(row, capture_id, manifest.key_fingerprint))
    results = {c.capture_id: c for c in report.captures}
    wanted = {  # looked up elsewhere all at once: the index and each manifest read once
        row.refers_to
        for manifest in signed.values()
        for row in manifest.records
        if row.warc_type == "revisit"
        and row.refers_to
        and not any(
            o.signer == manifest.key_fingerprint or o.signer in keys
            for o in held.get(row.refers_to, [])
        )
    }
    elsewhere = _signed_originals(archive, wanted, keys, set(signed)) if wanted else {}
    for capture_id, manifest in signed.items():
        revisits = [r for r in manifest.records if r.warc_type == "revisit"]
        for row in revisits:
            refers_to = row.refers_to or ""
            found = held.get(refers_to, []) + elsewhere.get(refers_to, [])
            problem = _revisit_problem(row, manifest.key_fingerprint, found, archive, keys)
            if problem is not None:
                results[capture_id].problems.append(_at(row, row.warc_filename, problem))
        if revisits:
            results[capture_id].check(
                "revisits", capture_id, results[capture_id].ok, f"{len(revisits)} resolved"
            )


def _revisit_problem(
    row: RecordRow,
    signer: str,
    found: list[_Original],
    archive: Path,
    keys: dict[str, PublicKey | None],
) -> str | None:
    """What is wrong with the revisit ``row`` of a capture signed by ``signer``, whose
    original is among ``found``; None when an original vouched for holds its payload."""
    refers_to = row.refers_to
    if not found:
        return (
            f"a revisit of {refers_to}, which no signed capture of the archive holds: the "
            "bytes it stands for are missing"
        )
    vouched = [o for o in found if o.signer == signer or o.signer in keys]
    if not vouched:
        other = found[0]
        who = "this capture's signer" + (" nor a trusted key" if keys else "")
        return (
            f"a revisit of {refers_to}, whose original, {other.where()}, is signed by "
            f"{other.signer}, not by {who} ({signer}): nothing this capture's signer "
            "vouched for holds the bytes it stands for"
        )
    original = vouched[0]
    if original.row.payload_sha256 != row.payload_sha256:
        return (
            f"a revisit of {refers_to}, whose payload digest {original.row.payload_sha256} "
            f"(signed, {original.where()}) is not the revisit's {row.payload_sha256}"
        )
    payload, why = _recompute(original, archive)
    if why:
        return f"a revisit of {refers_to}, whose original, {original.where()}, {why}"
    if payload != row.payload_sha256:
        return (
            f"a revisit of {refers_to}, whose original, {original.where()}, holds a payload "
            f"whose SHA-256, recomputed from its stored bytes, is {payload}, not the "
            f"revisit's {row.payload_sha256}: its body was changed"
        )
    return None


def _recompute(original: _Original, archive: Path) -> tuple[str | None, str]:
    """The SHA-256 of the original's payload, recomputed from its stored bytes (read
    once per record), or why it could not be: unreadable, or not the signed bytes."""
    if original.recomputed is None:
        row = original.row
        target = _inside(archive, row.warc_filename)
        if target is None:
            original.recomputed = (None, "is outside the archive")
        else:
            try:
                rec = read_stored(target, row.warc_offset, row.warc_length, block_digest=False)
            except (Unreadable, OSError) as exc:
                original.recomputed = (None, f"cannot be read: {exc}")
            else:
                if rec.record_sha256 != row.record_sha256:
                    why = "has stored bytes that differ from the signed ones"
                    original.recomputed = (None, why)
                elif rec.payload_sha256 is None:
                    original.recomputed = (None, "has no payload whose digest can be recomputed")
                else:
                    original.recomputed = (rec.payload_sha256, "")
    return original.recomputed


def _signed_originals(
    archive: Path,
    record_ids: set[str],
    keys: dict[str, PublicKey | None],
    skip: set[str],
) -> dict[str, list[_Original]]:
    """The records ``record_ids`` in the other captures of the archive (found through
    the index; not those in ``skip``) whose manifest's signature holds: with a trusted
    key file given for the signer, with it; else with the archive's copy of the
    signer's key.  The index and each manifest are read once, however many revisits."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    ids = pa.array(sorted(record_ids), pa.string())
    capture_ids: dict[str, set[str]] = defaultdict(set)  # capture id -> record ids
    for path in Index(archive).files("records"):
        try:
            table = pq.read_table(path, columns=["record_id", "capture_id"])
            found = table.filter(pc.is_in(table["record_id"], value_set=ids))
        except Exception:
            continue
        for record_id, capture_id in zip(
            found.column("record_id").to_pylist(),
            found.column("capture_id").to_pylist(),
            strict=True,
        ):
            capture_ids[str(capture_id)].add(str(record_id))
    out: dict[str, list[_Original]] = defaultdict(list)
    for capture_id in sorted(capture_ids):
        if capture_id in skip or not _CAPTURE_ID.match(capture_id):
            continue
        for path in _capture_files(archive, capture_id)[0]:
            try:
                data = read_regular(path, MANIFEST_LIMIT)
                manifest = Manifest.from_bytes(data)
            except (OSError, ManifestError):
                continue
            probe = CaptureResult(capture_id)
            _check_signature(probe, path, data, manifest, archive, keys)
            if not probe.signature_holds:
                continue
            for row in manifest.records:
                if row.record_id in capture_ids[capture_id] and row.warc_type != "revisit":
                    out[row.record_id].append(_Original(row, capture_id, manifest.key_fingerprint))
    return out
