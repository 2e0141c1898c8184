"""A signed capture of ours: its manifest, signature, time-stamp tokens and the WARC
files the manifest lists."""

from __future__ import annotations

import stat
from collections import defaultdict
from dataclasses import replace
from pathlib import Path

from cryptography import x509

from archiver.core.text import counted
from archiver.index.store import RecordRow
from archiver.ops.verify.reading import _inside, _Reading, _shown, read_regular
from archiver.ops.verify.records import _locate, _one_pass
from archiver.ops.verify.report import CaptureResult
from archiver.trust import timestamp
from archiver.trust.keys import KeyProblem, PublicKey, fingerprint, load_public, signature_holds
from archiver.trust.manifest import (
    Manifest,
    ManifestError,
    archive_of,
    capture_id_of,
    signature_path,
)

SIGNATURE_LENGTH = 64
MANIFEST_LIMIT = 1024 * 1024 * 1024  # a manifest larger than this is not one of ours


def _verify_capture(
    path: Path,
    keys: dict[str, PublicKey | None],
    reading: _Reading,
    named: list[Path],
    tsa_roots: list[x509.Certificate] | None = None,
    logged: dict[str, str] | None = None,
    unchecked: set[str] | None = None,
) -> tuple[CaptureResult, Manifest | None, bytes | None]:
    capture_id = capture_id_of(path)
    archive = path.resolve().parent.parent.parent
    result = CaptureResult(capture_id, manifest=_shown(path, archive))
    try:
        data = read_regular(path, MANIFEST_LIMIT)
    except OSError as exc:
        result.problem(f"incomplete: the manifest cannot be read ({exc.strerror or exc})")
        result.check("manifest", result.manifest or "", False, "missing")
        return result, None, None
    try:
        manifest = Manifest.from_bytes(data)
    except ManifestError as exc:
        result.problem(f"the manifest is not valid: {exc}", file=result.manifest)
        result.check("manifest", result.manifest or "", False, str(exc))
        return result, None, None
    result.check("manifest", result.manifest or "", True, "well-formed")
    if manifest.capture_id != capture_id:
        result.problem(f"the manifest describes capture {manifest.capture_id}, not {capture_id}")
    result.status = manifest.capture.status
    result.key_fingerprint = manifest.key_fingerprint
    signature = _check_signature(result, path, data, manifest, archive, keys)
    if signature is not None and result.signature_holds:
        saved = reading.saved_certificates(archive)
        marked = unchecked or set()
        _check_timestamps(
            result,
            path,
            signature,
            manifest,
            archive,
            tsa_roots,
            logged or {},
            saved,
            marked,
            reading.listed(path.parent),
        )
    elif timestamp.tokens_of(path, reading.listed(path.parent)):
        # the signature's failure is the problem already
        result.check("time-stamp", result.manifest or "", False, "not checked: unsigned")
    _check_files(result, manifest, archive, reading, named)
    return result, manifest, data


def _check_timestamps(
    result: CaptureResult,
    path: Path,
    signature: bytes,
    manifest: Manifest,
    archive: Path,
    roots: list[x509.Certificate] | None,
    logged: dict[str, str],
    saved: list[x509.Certificate],
    unchecked: set[str],
    listed: list[str] | None = None,
) -> None:
    result.timestamps = timestamp.check_tokens(
        path,
        signature,
        manifest.signed_at,
        archive,
        roots,
        saved=saved,
        unchecked=unchecked,
        listed=listed,
    )
    present = {check.file for check in result.timestamps}
    prefix = f"{_shown(path, archive)}.sig."
    for gone in sorted(p for p in logged if p.startswith(prefix) and p not in present):
        if gone.endswith(timestamp.TOKEN_SUFFIX):
            result.check("time-stamp", gone, False, "missing")
            result.problem(
                "a time-stamp token the custody log recorded on receipt is missing", file=gone
            )
    for check in result.timestamps:
        expected = logged.get(check.file)
        if check.ok and expected is not None and check.sha256 != expected:
            check.ok = False
            check.problem = (
                f"the token file is not the one received (SHA-256 {check.sha256}, the custody "
                f"log recorded {expected}): changed in the archive"
            )
        detail = check.detail if check.ok else (check.problem or "")
        result.check("time-stamp", check.file, check.ok, detail)
        if not check.ok:
            result.problem(f"time-stamp by {check.authority}: {check.problem}", file=check.file)


def _check_signature(
    result: CaptureResult,
    path: Path,
    data: bytes,
    manifest: Manifest,
    archive: Path,
    keys: dict[str, PublicKey | None],
) -> bytes | None:
    """Check the manifest's signature; the signature's bytes, when they could be read."""
    fp = manifest.key_fingerprint
    sig_path = signature_path(path)
    sig_name = _shown(sig_path, archive)
    key_path = archive / manifest.public_key
    public = None
    try:
        public = load_public(key_path)
    except KeyProblem as exc:
        result.problem(f"the signer's public key cannot be used: {exc}", file=manifest.public_key)
    if public is not None:
        found = fingerprint(public)
        if not result.check("public key", manifest.public_key, found == fp, f"fingerprint {found}"):
            result.problem(
                f"holds another key (fingerprint {found}) than the signer's {fp}",
                file=manifest.public_key,
            )
            public = None
    if keys:
        result.trusted = fp in keys
        if not result.check("trusted signer", fp, result.trusted):
            result.problem(f"signed by {fp}, which is not one of the trusted keys")
    try:
        signature = read_regular(sig_path, SIGNATURE_LENGTH)
    except FileNotFoundError:
        result.check("signature", sig_name, False, "missing")
        result.problem("unsigned: the manifest has no signature", file=sig_name)
        return None
    except OSError as exc:
        result.check("signature", sig_name, False, "unreadable")
        result.problem(f"unsigned: the signature cannot be read ({exc})", file=sig_name)
        return None
    if len(signature) != SIGNATURE_LENGTH:
        result.check("signature", sig_name, False, f"{len(signature)} bytes")
        result.problem(f"not an Ed25519 signature ({len(signature)} bytes, not 64)", file=sig_name)
        return None
    checker = keys.get(fp) or public  # a trusted key file stands in for the archive's copy
    if checker is None:
        result.check("signature", sig_name, False, "no usable public key for the signer")
        return signature
    holds = signature_holds(checker, signature, data)
    source = "the trusted key given" if keys.get(fp) else manifest.public_key
    if not result.check("signature", sig_name, holds, f"Ed25519, key {fp} from {source}"):
        result.problem(
            "the signature does not match the manifest: the manifest or the signature was changed",
            file=sig_name,
        )
    return signature


def signature_problem(path: Path) -> str | None:
    """Why the signature of the manifest at ``path`` does not hold with the archive's copy
    of the signer's key; None when it holds (before time-stamping a signature)."""
    try:
        data = read_regular(path, MANIFEST_LIMIT)
        manifest = Manifest.from_bytes(data)
        public = load_public(archive_of(path) / manifest.public_key)
        signature = read_regular(signature_path(path), SIGNATURE_LENGTH)
    except OSError as exc:
        return f"{exc.filename or path}: {exc.strerror or exc}"
    except (ManifestError, KeyProblem) as exc:
        return str(exc)
    if not signature_holds(public, signature, data):
        return "the signature does not match the manifest"
    return None


def _check_files(
    result: CaptureResult,
    manifest: Manifest,
    archive: Path,
    reading: _Reading,
    named: list[Path],
) -> None:
    by_file: dict[str, list[RecordRow]] = defaultdict(list)
    for row in manifest.records:
        by_file[row.warc_filename].append(row)
    listed = {f.path for f in manifest.files}
    for name in sorted(set(by_file) - listed):
        result.problem("the manifest lists records in a file it does not list", file=name)
    result.files = len(manifest.files)
    result.records = len(manifest.records)
    for entry in manifest.files:
        result.bytes += entry.size
        path = _inside(archive, entry.path)
        if path is None:
            result.problem("the manifest names a file outside the archive", file=entry.path)
            continue
        records = sorted(by_file.get(entry.path, []), key=lambda r: r.warc_offset)
        _check_file(result, path, entry.path, entry.size, entry.sha256, records, reading)
    # files named after the capture that the manifest does not list (added, or copied)
    for extra in named:
        shown = _shown(extra, archive)
        if shown not in listed:
            result.problem(
                "a file of this capture that the signed manifest does not list", file=shown
            )


def _check_file(
    result: CaptureResult,
    path: Path,
    name: str,
    size: int,
    sha256: str,
    records: list[RecordRow],
    reading: _Reading,
) -> None:
    reading.progress.file(path)
    try:
        info = path.stat()
    except OSError:
        result.check("file", name, False, "missing")
        result.problem("missing: the file is not in the archive", file=name)
        return
    if not stat.S_ISREG(info.st_mode):
        result.check("file", name, False, "not a regular file")
        result.problem("not a regular file", file=name)
        return
    actual = info.st_size
    end = 0
    for row in records:
        if row.warc_offset != end:
            result.problem(
                "the signed manifest's records overlap, or leave a gap, before this record",
                file=name,
                offset=row.warc_offset,
                record_id=row.record_id,
            )
        end = row.warc_offset + row.warc_length
    if end != size:
        result.problem(f"the signed records end at {end}, the signed size is {size}", file=name)
    if actual == size:
        try:
            problems, digest = _one_pass(path, name, records, reading)
        except OSError as exc:
            result.check("file", name, False, "unreadable")
            result.problem(f"cannot be read: {exc.strerror or exc}", file=name)
            return
        if digest == sha256:  # every byte as signed; the records' own digests checked
            result.check("file", name, True, f"size {size}, sha256 {sha256}")
            digests = "block and payload" if reading.deep else "block (payload: as signed)"
            result.check(
                "records",
                name,
                not problems,
                f"{counted(len(records), 'record')}; {digests} digests",
            )
            result.problems += [replace(p, capture_id=result.capture_id) for p in problems]
            return
    # it differs: say where, record by record
    result.check("file", name, False, f"size {actual} (signed {size})")
    if actual != size:
        more = "bytes were added" if actual > size else "bytes are missing (truncated?)"
        result.problem(f"size {actual}, signed {size}: {more}", file=name)
    else:
        result.problem(f"SHA-256 differs from the signed {sha256}", file=name)
    result.problems += [
        replace(p, capture_id=result.capture_id)
        for p in _locate(path, name, actual, records, reading.pool)
    ]
