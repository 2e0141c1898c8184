"""Captures older than the custody log (``archiver custody --adopt``): the signed captures
no signed event records, each checked before one ``adopt`` event records them as they are."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from archiver.core.errors import Failure
from archiver.ops.verify import signature_problem
from archiver.trust import custody
from archiver.trust.keys import Signer
from archiver.trust.manifest import (
    MANIFEST_SUFFIX,
    Manifest,
    ManifestError,
    capture_id_of,
    signature_path,
)


@dataclass
class Adopted:
    """``custody --adopt``: the captures recorded, the event, and those refused."""

    capture_ids: list[str] = field(default_factory=list)
    files: list[custody.FileRef] = field(default_factory=list)
    refused: list[tuple[str, str]] = field(default_factory=list)  # (capture id, why)
    remarks: list[str] = field(default_factory=list)  # refusals and notes, in order
    event: custody.Event | None = None
    digest: str | None = None  # the event's SHA-256


def adoptable(archive_dir: Path, signer: Signer) -> Adopted:
    """The signed captures no signed event of the log records, each checked (its
    signature holds, its files match its manifest), with their files as they are now;
    those refused and why, in order with the notes."""
    log = custody.check(archive_dir)
    if not log.ok:
        raise Failure(f"the custody log is broken ({log.problems[0]}); nothing adopted")
    recorded = custody.covered_ids(log)
    root = archive_dir / "warc"
    found = sorted(root.rglob(f"*{MANIFEST_SUFFIX}")) if root.is_dir() else []
    adopted = Adopted()
    for path in found:
        capture_id = capture_id_of(path)
        if capture_id in recorded or not signature_path(path).is_file():
            continue
        why = signature_problem(path) or _adoption_problem(path, archive_dir)
        if why is not None:
            adopted.refused.append((capture_id, why))
            adopted.remarks.append(
                f"not adopted: capture {capture_id}: {why}; see `archiver verify`"
            )
            continue
        manifest = Manifest.from_bytes(path.read_bytes())
        adopted.capture_ids.append(capture_id)
        adopted.files.append(custody.FileRef.of(path, archive_dir))
        adopted.files.append(custody.FileRef.of(signature_path(path), archive_dir))
        adopted.files += [custody.FileRef(f.path, f.sha256) for f in manifest.files]
        if manifest.key_fingerprint != signer.fingerprint:
            adopted.remarks.append(
                f"note: capture {capture_id} is signed by {manifest.key_fingerprint}, not by "
                f"your key {signer.fingerprint}: verify counts this event for it only "
                "with --trusted-key naming your key"
            )
    return adopted


def _adoption_problem(manifest_path: Path, archive_dir: Path) -> str | None:
    """Why a signed capture's files do not match its manifest (None when they do)."""
    try:
        manifest = Manifest.from_bytes(manifest_path.read_bytes())
    except (OSError, ManifestError) as exc:
        return str(exc)
    for entry in manifest.files:
        if custody.file_sha256(archive_dir / entry.path) != entry.sha256:
            return f"{entry.path} does not match its manifest"
    return None
