"""``archiver verify FILE.wacz``: a WACZ checked from the file alone.

What holds, in the order it is checked:

1. the file is a ZIP whose names are plain relative paths, each once;
2. ``datapackage-digest.json`` holds the SHA-256 of ``datapackage.json`` and its
   signature (ECDSA P-384, as ReplayWeb.page checks it) holds;
3. every file is listed in ``datapackage.json`` with its size and SHA-256, and is
   that (each streamed once, a megabyte at a time);
4. for a WACZ archiver exported: the P-384 key that signed it is bound to an Ed25519
   key by a statement that key signed; every capture's manifest is signed by its key;
   every WARC file and every record in it is what its manifest signed; the time-stamp
   tokens hold over the signatures; the custody events are each signed, and those that
   logged a file or a token still match it; the CDXJ index and the pages are exactly
   what the signed manifests give.

A WACZ from another tool gets 1 to 3, and the report says that nothing of ours vouches
for it.  Nothing is extracted but the small files the time-stamp check reads (into a
temporary folder removed at the end).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import Any

from cryptography import x509

from archiver.core.errors import Failure
from archiver.core.text import counted
from archiver.index import cdxj
from archiver.ops import wacz
from archiver.ops.wacz.export import CHUNK, in_wacz, page_entry
from archiver.trust import custody, keys, wacz_signing
from archiver.trust import timestamp as stamping
from archiver.trust.manifest import Manifest, ManifestError

SMALL_LIMIT = 64 * 1024 * 1024  # a manifest, a key, an index: read whole, up to this


class WaczUnreadable(Failure):
    """The file cannot be read as a WACZ at all (not a ZIP file, not there)."""


@dataclass
class CaptureCheck:
    capture_id: str
    signer: str | None = None
    files: int = 0
    records: int = 0
    timestamps: list[stamping.TokenCheck] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "capture_id": self.capture_id,
            "ok": not self.problems,
            "signer": self.signer,
            "files": self.files,
            "records": self.records,
            "timestamps": [t.to_json() for t in self.timestamps],
            "problems": self.problems,
        }


@dataclass
class WaczReport:
    """What checking one WACZ found."""

    path: Path
    signature: str = "unsigned"  # valid, invalid, unsigned, or "domain <name>"
    p384_public_key: str | None = None  # base64 SPKI, as in signedData
    signer: str | None = None  # the Ed25519 fingerprint the P-384 key is bound to
    archiver_made: bool = False
    created: str | None = None
    software: str | None = None
    files: int = 0
    bytes: int = 0
    captures: list[CaptureCheck] = field(default_factory=list)
    custody_events: int = 0
    digest: wacz_signing.DigestCheck | None = None
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems and all(not c.problems for c in self.captures)

    def all_problems(self) -> list[str]:
        return self.problems + [f"{c.capture_id}: {p}" for c in self.captures for p in c.problems]

    def to_json(self) -> dict[str, Any]:
        return {
            "wacz": str(self.path),
            "ok": self.ok,
            "signature": self.signature,
            "signature_check": self.digest.to_json() if self.digest else None,
            "p384_public_key_sha256": (
                hashlib.sha256(base64.b64decode(self.p384_public_key)).hexdigest()
                if self.p384_public_key
                else None
            ),
            "signer": self.signer,
            "made_by_archiver": self.archiver_made,
            "created": self.created,
            "software": self.software,
            "files": self.files,
            "bytes": self.bytes,
            "captures": [c.to_json() for c in self.captures],
            "custody_events": self.custody_events,
            "problems": self.all_problems(),
            "notes": self.notes,
        }


def is_wacz(path: Path) -> bool:
    """A path verify should read as a WACZ: named so, or a ZIP file."""
    if path.suffix.lower() == ".wacz":
        return True
    try:
        return path.is_file() and zipfile.is_zipfile(path)
    except OSError:
        return False


def check(
    path: Path,
    *,
    trusted: set[str] | None = None,
    tsa_roots: list[x509.Certificate] | None = None,
    now: datetime | None = None,
) -> WaczReport:
    """Check the WACZ at ``path``; ``trusted``: Ed25519 fingerprints that may sign."""
    report = WaczReport(path)
    try:
        zf = zipfile.ZipFile(path)
    except FileNotFoundError as exc:
        raise WaczUnreadable(f"no file {path}") from exc
    except (OSError, zipfile.BadZipFile, ValueError) as exc:
        report.problems.append(f"{path} is not a ZIP file, so not a WACZ ({exc})")
        return report
    with zf:
        try:
            _check(zf, report, trusted, tsa_roots, now)
        except (
            zipfile.BadZipFile,
            OSError,
            EOFError,
            ValueError,
            RecursionError,
            RuntimeError,  # an encrypted entry; NotImplementedError: an unknown method
        ) as exc:
            # a damaged member, a JSON too deep: this file fails, the others are checked
            report.problems.append(f"{path} cannot be read whole: {type(exc).__name__}: {exc}")
    return report


def _check(
    zf: zipfile.ZipFile,
    report: WaczReport,
    trusted: set[str] | None,
    tsa_roots: list[x509.Certificate] | None,
    now: datetime | None,
) -> None:
    names = [info.filename for info in zf.infolist()]
    _check_names(names, report)
    _check_framing(zf, report)
    if report.problems:
        return
    package, package_bytes = _read_package(zf, report)
    if package is None:
        return
    _check_signature(zf, package_bytes, report)
    found = package.get("archiver")
    made: dict[str, Any] = found if isinstance(found, dict) else {}
    report.archiver_made = bool(made)
    report.created, report.software = package.get("created"), package.get("software")
    expected = _resources(package, names, report)
    manifests = _manifests(zf, made, report, trusted) if report.archiver_made else {}
    hashes = _stream_members(zf, expected, manifests, report)
    if report.archiver_made:
        _check_evidence(zf, made, manifests, hashes, report, tsa_roots, now)
        _check_accounted(names, manifests, report)
        if trusted is not None and report.signer not in trusted:
            report.problems.append(
                f"the WACZ is signed for {report.signer or 'no archiver key'}, not a trusted key"
            )
    elif trusted is not None:
        report.problems.append(
            "not exported by archiver: nothing in it is signed by a trusted key "
            "(only its files' hashes and its own signature could be checked)"
        )
    else:
        report.notes.append(
            "not exported by archiver: its files' hashes and its signature were checked; "
            "no signed manifest of ours vouches for its records"
        )


LOCAL_HEADER = 30  # a ZIP local file header's fixed part
EXTRA_LIMIT = 64  # a ZIP64 extra field and a little: archiver writes no more


def _check_framing(zf: zipfile.ZipFile, report: WaczReport) -> None:
    """Every byte of the file belongs to an entry or the directory: nothing before the
    first entry, between entries (data the directory never points to), in an oversized
    header field, or after the directory (an HTML page and a ZIP in one file, say).  None
    of it is in any WACZ archiver writes, nor in what was signed; and no entry is
    encrypted, compressed by a method we cannot read, or a folder holding data."""
    infos = sorted(zf.infolist(), key=lambda info: info.header_offset)
    if zf.comment:
        report.problems.append("the file holds bytes after its ZIP directory (a comment)")
    at = 0
    handle = zf.fp
    for info in infos:
        if info.header_offset != at:
            where = "before its first ZIP entry" if at == 0 else f"before {info.filename}"
            report.problems.append(f"the file holds bytes {where} that no entry accounts for")
        if info.flag_bits & 0x1:
            report.problems.append(f"{info.filename} is encrypted")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            report.problems.append(f"{info.filename} is compressed by method {info.compress_type}")
        if info.filename.endswith("/") and info.file_size:
            report.problems.append(f"{info.filename} is named as a folder but holds data")
        if handle is None:
            return
        handle.seek(info.header_offset)
        head = handle.read(LOCAL_HEADER)
        if len(head) < LOCAL_HEADER or head[:4] != b"PK\x03\x04":
            report.problems.append(f"{info.filename} has no local header where the directory says")
            return
        name_length = int.from_bytes(head[26:28], "little")
        extra_length = int.from_bytes(head[28:30], "little")
        if extra_length > EXTRA_LIMIT or len(info.extra) > EXTRA_LIMIT:
            report.problems.append(f"{info.filename} carries {extra_length} bytes in its header")
        at = info.header_offset + LOCAL_HEADER + name_length + extra_length + info.compress_size
        if info.flag_bits & 0x8:  # a data descriptor after the data
            handle.seek(at)
            descriptor = handle.read(4)
            zip64 = info.compress_size >= 0xFFFFFFFF or info.file_size >= 0xFFFFFFFF
            at += (4 if descriptor == b"PK\x07\x08" else 0) + (20 if zip64 else 12)
    if infos and at != zf.start_dir:
        report.problems.append("the file holds bytes between its last entry and its directory")


def _check_names(names: list[str], report: WaczReport) -> None:
    seen: set[str] = set()
    for name in names:
        parts = PurePosixPath(name).parts
        if name.startswith("/") or "\\" in name or ".." in parts or not parts:
            report.problems.append(f"the ZIP holds a file named {name!r}: not a plain path")
        if name in seen:
            report.problems.append(f"the ZIP holds {name} twice (a reader would see one)")
        seen.add(name)
    for required in (wacz.DATAPACKAGE,):
        if required not in seen:
            report.problems.append(f"no {required}: not a WACZ")


def _small(zf: zipfile.ZipFile, name: str) -> bytes:
    info = zf.getinfo(name)
    if info.file_size > SMALL_LIMIT:
        raise ValueError(f"{name} is {info.file_size} bytes, too large to be what it says")
    return zf.read(info)


def _read_package(zf: zipfile.ZipFile, report: WaczReport) -> tuple[dict[str, Any] | None, bytes]:
    try:
        data = _small(zf, wacz.DATAPACKAGE)
        package = json.loads(data)
    except (ValueError, zipfile.BadZipFile, OSError) as exc:
        report.problems.append(f"{wacz.DATAPACKAGE} cannot be read: {exc}")
        return None, b""
    if not isinstance(package, dict) or not isinstance(package.get("resources"), list):
        report.problems.append(f"{wacz.DATAPACKAGE} lists no resources")
        return None, b""
    return package, data


def _check_signature(zf: zipfile.ZipFile, package_bytes: bytes, report: WaczReport) -> None:
    if wacz.DIGEST not in zf.NameToInfo:
        report.notes.append(f"no {wacz.DIGEST}: nothing signs this WACZ")
        return
    try:
        digest = _small(zf, wacz.DIGEST)
    except (ValueError, zipfile.BadZipFile, OSError) as exc:
        report.problems.append(f"{wacz.DIGEST} cannot be read: {exc}")
        return
    result = wacz_signing.check_digest_file(digest, package_bytes)
    report.digest = result
    report.signature = result.state.value
    if result.identity is wacz_signing.Identity.DOMAIN and result.signed:
        report.signature = f"domain {result.domain}"
    report.p384_public_key = result.public_key
    report.problems.extend(f"{wacz.DIGEST}: {p}" for p in result.problems)
    if result.state is wacz_signing.SignatureState.INVALID and not result.problems:
        report.problems.append(f"{wacz.DIGEST}: the signature does not hold")
    report.notes.extend(result.notes)


def _resources(
    package: dict[str, Any], names: list[str], report: WaczReport
) -> dict[str, tuple[int, str]]:
    """``path -> (size, sha256)`` of every resource, as the datapackage lists them."""
    out: dict[str, tuple[int, str]] = {}
    for item in package["resources"]:
        path = item.get("path") if isinstance(item, dict) else None
        hashed = item.get("hash") if isinstance(item, dict) else None
        size = item.get("bytes") if isinstance(item, dict) else None
        if (
            not isinstance(path, str)
            or not isinstance(hashed, str)
            or not hashed.startswith("sha256:")
        ):
            report.problems.append(
                f"{wacz.DATAPACKAGE} lists a resource without a path and a sha256: "
                f"{str(item)[:200]}"
            )
            continue
        out[path] = (size if isinstance(size, int) else -1, hashed.removeprefix("sha256:"))
    present = set(names) - {wacz.DATAPACKAGE, wacz.DIGEST}
    for missing in sorted(set(out) - present):
        report.problems.append(f"{missing} is listed in {wacz.DATAPACKAGE} but not in the WACZ")
    for extra in sorted(present - set(out)):
        if not extra.endswith("/"):
            report.problems.append(f"{extra} is in the WACZ but not listed in {wacz.DATAPACKAGE}")
    return out


@dataclass
class _Signed:
    """A manifest found in the WACZ, its signature checked."""

    manifest: Manifest
    name: str
    data: bytes
    signature: bytes
    check: CaptureCheck


def _manifests(
    zf: zipfile.ZipFile, made: dict[str, Any], report: WaczReport, trusted: set[str] | None
) -> dict[str, _Signed]:
    out: dict[str, _Signed] = {}
    ids = made.get("captures")
    if not isinstance(ids, list) or not ids:
        report.problems.append(f"{wacz.DATAPACKAGE} names no captures")
        return out
    if len(set(map(str, ids))) != len(ids):
        report.problems.append(f"{wacz.DATAPACKAGE} names a capture twice")
    for capture_id in dict.fromkeys(map(str, ids)):
        check = CaptureCheck(str(capture_id))
        report.captures.append(check)
        name = f"{wacz.EVIDENCE_DIR}{capture_id}.manifest.json"
        try:
            data = _small(zf, name)
            signature = _small(zf, name + ".sig")
            manifest = Manifest.from_bytes(data)
        except KeyError as exc:
            check.problems.append(f"its manifest or signature is not in the WACZ ({exc})")
            continue
        except (ValueError, ManifestError, zipfile.BadZipFile) as exc:
            check.problems.append(f"{name}: {exc}")
            continue
        check.signer = manifest.key_fingerprint
        public = _public_key(zf, manifest.key_fingerprint)
        if public is None:
            check.problems.append(f"the key {manifest.key_fingerprint} is not in the WACZ")
        elif not keys.signature_holds(public, signature, data):
            check.problems.append(f"the signature of {name} does not hold")
        if trusted is not None and manifest.key_fingerprint not in trusted:
            check.problems.append(f"signed by {manifest.key_fingerprint}, not a trusted key")
        if manifest.capture_id != capture_id:
            check.problems.append(f"{name} is the manifest of {manifest.capture_id}")
        out[str(capture_id)] = _Signed(manifest, name, data, signature, check)
    return out


def _public_key(zf: zipfile.ZipFile, fingerprint: str) -> keys.PublicKey | None:
    name = f"{wacz.EVIDENCE_DIR}{fingerprint}.pub.pem"
    try:
        data = _small(zf, name)
    except KeyError:
        return None
    with tempfile.NamedTemporaryFile(suffix=".pub.pem") as temp:
        temp.write(data)
        temp.flush()
        try:
            public = keys.load_public(Path(temp.name))
        except keys.KeyProblem:
            return None
    return public if keys.fingerprint(public) == fingerprint else None


class _Slices:
    """The SHA-256 of byte ranges of a stream, computed as it passes: each record of a
    WARC file checked against its manifest row in the same single read."""

    def __init__(self, ranges: list[tuple[int, int, str, str]]) -> None:
        self.ranges = sorted(ranges)  # (offset, length, sha256, record id)
        self.at = 0  # next range
        self.pos = 0
        self.open: list[tuple[int, int, str, str, Any]] = []
        self.bad: list[str] = []
        self.done = 0

    def feed(self, chunk: bytes) -> None:
        end = self.pos + len(chunk)
        while self.at < len(self.ranges) and self.ranges[self.at][0] < end:
            offset, length, sha, rid = self.ranges[self.at]
            self.open.append((offset, length, sha, rid, hashlib.sha256()))
            self.at += 1
        still = []
        for offset, length, sha, rid, digest in self.open:
            lo = max(offset, self.pos) - self.pos
            hi = min(offset + length, end) - self.pos
            if hi > lo:
                digest.update(chunk[lo:hi])
            if offset + length <= end:
                self.done += 1
                if digest.hexdigest() != sha:
                    self.bad.append(rid)
            else:
                still.append((offset, length, sha, rid, digest))
        self.open = still
        self.pos = end

    def missing(self) -> list[str]:
        """Records the file ended before."""
        return [r[3] for r in self.open] + [r[3] for r in self.ranges[self.at :]]


def _stream_members(
    zf: zipfile.ZipFile,
    expected: dict[str, tuple[int, str]],
    manifests: dict[str, _Signed],
    report: WaczReport,
) -> dict[str, str]:
    """Read every listed file once: its size and SHA-256 against the datapackage, and
    each WARC file's records against their manifest.  ``path -> sha256`` as read."""
    ranges: dict[str, list[tuple[int, int, str, str]]] = {}
    owner: dict[str, CaptureCheck] = {}
    for signed in manifests.values():
        for row in signed.manifest.records:
            name = wacz.ARCHIVE_DIR + PurePosixPath(row.warc_filename).name
            ranges.setdefault(name, []).append(
                (row.warc_offset, row.warc_length, row.record_sha256, row.record_id)
            )
            owner[name] = signed.check
    hashes: dict[str, str] = {}
    for name in sorted(expected, key=lambda n: (not n.startswith(wacz.ARCHIVE_DIR), n)):
        if name not in zf.NameToInfo:
            continue
        size, sha = expected[name]
        slices = _Slices(ranges.get(name, []))
        digest = hashlib.sha256()
        read = 0
        try:
            with zf.open(name) as member:
                while chunk := member.read(CHUNK):
                    digest.update(chunk)
                    slices.feed(chunk)
                    read += len(chunk)
        except (zipfile.BadZipFile, OSError, EOFError, RuntimeError) as exc:  # a CRC error…
            report.problems.append(f"{name} cannot be read whole: {exc}")
            continue
        hashes[name] = digest.hexdigest()
        report.files += 1
        report.bytes += read
        if hashes[name] != sha or (size >= 0 and read != size):
            report.problems.append(
                f"{name} is not what {wacz.DATAPACKAGE} lists (SHA-256 {hashes[name]}, "
                f"{read} bytes; listed {sha}, {size} bytes)"
            )
        if name in owner:
            check = owner[name]
            check.records += slices.done - len(slices.bad)
            for rid in slices.bad:
                check.problems.append(f"the record {rid} in {name} is not what was signed")
            for rid in slices.missing():
                check.problems.append(f"the record {rid} is beyond the end of {name}")
    return hashes


def _check_evidence(
    zf: zipfile.ZipFile,
    made: dict[str, Any],
    manifests: dict[str, _Signed],
    hashes: dict[str, str],
    report: WaczReport,
    tsa_roots: list[x509.Certificate] | None,
    now: datetime | None,
) -> None:
    claimed = made.get("signer")
    _check_binding(zf, claimed if isinstance(claimed, str) else None, report)
    for signed in manifests.values():
        for entry in signed.manifest.files:
            name = wacz.ARCHIVE_DIR + PurePosixPath(entry.path).name
            if name not in hashes:
                signed.check.problems.append(f"{entry.path} is not in the WACZ as {name}")
            elif hashes[name] != entry.sha256:
                signed.check.problems.append(f"{name} is not the file its manifest signed")
            else:
                signed.check.files += 1
    with tempfile.TemporaryDirectory(prefix="archiver-wacz-") as temp:
        root = Path(temp)
        _lay_out(zf, manifests, root)
        for signed in manifests.values():
            _check_tokens(signed, root, tsa_roots, now)
    _check_custody(zf, manifests, hashes, report)
    _check_index(zf, manifests, report)


def _check_binding(zf: zipfile.ZipFile, claimed: str | None, report: WaczReport) -> None:
    """The P-384 key that signed must be bound to the archiver key the datapackage names;
    only then is that key the WACZ's signer (``report.signer``)."""
    if report.signature != "valid" or report.p384_public_key is None:
        report.problems.append(
            "exported by archiver, yet not signed: archiver signs every WACZ it writes "
            "(the signature was removed or does not hold)"
        )
        return
    if not claimed or not re.fullmatch(r"[0-9a-f]{64}", claimed):
        report.problems.append("the datapackage names no archiver signer for its P-384 key")
        return
    stem = f"{wacz.EVIDENCE_DIR}{claimed}{wacz_signing.BINDING_SUFFIX}"
    public = _public_key(zf, claimed)
    try:
        statement, signature = _small(zf, stem), _small(zf, stem + ".sig")
        spki = base64.b64decode(report.p384_public_key, validate=True)
    except KeyError:
        report.problems.append(f"no {stem}(.sig): nothing binds the P-384 key to {claimed}")
        return
    except (ValueError, binascii.Error):
        report.problems.append("the signedData's public key is not base64")
        return
    if public is None:
        report.problems.append(f"the Ed25519 key {claimed} is not in the WACZ")
        return
    problem = wacz_signing.check_binding(statement, signature, public, spki)
    if problem:
        report.problems.append(f"{stem}: {problem}")
        return
    report.signer = claimed


def _check_accounted(names: list[str], manifests: dict[str, _Signed], report: WaczReport) -> None:
    """Every file of a WACZ archiver exported is one it writes: a WARC file a signed
    manifest lists, the index, the pages, or evidence of those captures.  Anything else
    (a WARC file, an index, a page list added) is content nothing signed."""
    allowed = {wacz.INDEX, wacz.INDEX_DATA, wacz.INDEX_IDX, wacz.PAGES, wacz.CUSTODY}
    allowed |= {wacz.DATAPACKAGE, wacz.DIGEST}
    manifest_names = set()
    for signed in manifests.values():
        allowed |= {
            wacz.ARCHIVE_DIR + PurePosixPath(entry.path).name for entry in signed.manifest.files
        }
        allowed |= {signed.name, signed.name + ".sig"}
        manifest_names.add(signed.name)
    key_file = re.compile(
        r"^[0-9a-f]{64}(\.pub\.pem|\.p384\.pub\.pem|\.p384\.binding\.json(\.sig)?)$"
    )
    for name in names:
        if name in allowed or name.endswith("/"):
            continue
        base = name.removeprefix(wacz.EVIDENCE_DIR)
        if name.startswith(wacz.EVIDENCE_DIR) and (
            key_file.match(base)
            or wacz.TSA_CHAIN.match(base)
            or any(_token_authority(name, m) for m in manifest_names)
        ):
            continue
        report.problems.append(
            f"{name} is in the WACZ, but no signed manifest or file archiver writes accounts for it"
        )


def _lay_out(zf: zipfile.ZipFile, manifests: dict[str, _Signed], root: Path) -> None:
    """The small files the time-stamp check reads, where it reads them in an archive,
    inside ``root`` only: every name written is a plain file name checked here (a
    collection, an authority or a member name from the WACZ never makes a path)."""
    folder = root / "warc" / "wacz"
    folder.mkdir(parents=True)
    for signed in manifests.values():
        base = PurePosixPath(signed.name).name
        _put(folder, base, signed.data)
        _put(folder, base + ".sig", signed.signature)
        for name in zf.NameToInfo:
            token = _token_authority(name, signed.name)
            if token is not None:
                _put(folder, PurePosixPath(name).name, _small(zf, name))
    for name in zf.NameToInfo:
        base = name.removeprefix(wacz.EVIDENCE_DIR)
        match = wacz.TSA_CHAIN.match(base) if name.startswith(wacz.EVIDENCE_DIR) else None
        if match:
            chain_dir = root / stamping.TSA_DIR / match["authority"]
            chain_dir.mkdir(parents=True, exist_ok=True)
            _put(chain_dir, match["sha"] + (match["unchecked"] or "") + ".pem", _small(zf, name))


_PLAIN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def _put(folder: Path, name: str, data: bytes) -> None:
    if not _PLAIN.match(name) or ".." in name:
        raise ValueError(f"{name!r} is not a plain file name")
    (folder / name).write_bytes(data)


def _token_authority(name: str, manifest_name: str) -> str | None:
    """The authority of a token member of that manifest, or None."""
    prefix = manifest_name + ".sig."
    if not name.startswith(prefix) or not name.endswith(".tsr"):
        return None
    authority = name[len(prefix) : -len(".tsr")]
    return authority if re.fullmatch(wacz.AUTHORITY, authority) else None


def _check_tokens(
    signed: _Signed, root: Path, tsa_roots: list[x509.Certificate] | None, now: datetime | None
) -> None:
    path = root / "warc" / "wacz" / PurePosixPath(signed.name).name
    checks = stamping.check_tokens(
        path, signed.signature, signed.manifest.signed_at, root, tsa_roots, now=now
    )
    signed.check.timestamps = checks
    for token in checks:
        if not token.ok:
            signed.check.problems.append(f"time-stamp {token.authority}: {token.problem}")


def _events(zf: zipfile.ZipFile, report: WaczReport) -> Iterator[custody.Event]:
    try:
        data = _small(zf, wacz.CUSTODY)
    except KeyError:
        report.notes.append("no custody events travel with this WACZ")
        return
    for number, line in enumerate(data.splitlines(), 1):
        try:
            yield custody.Event.from_line(line)
        except ValueError as exc:
            report.problems.append(f"{wacz.CUSTODY} line {number}: {exc}")


def _check_custody(
    zf: zipfile.ZipFile, manifests: dict[str, _Signed], hashes: dict[str, str], report: WaczReport
) -> None:
    """Each event's own signature; and what a signed event logged (a capture's WARC
    files and manifest, a time-stamp token) must still be what the WACZ holds.  The chain
    between events is not checked: the WACZ holds only these captures' events."""
    holds: dict[str, str] = dict(hashes)
    for signed in manifests.values():  # evidence files are hashed in _stream_members too
        holds[wacz.EVIDENCE_DIR + PurePosixPath(signed.name).name] = hashlib.sha256(
            signed.data
        ).hexdigest()
    seqs: list[int] = []
    for event in _events(zf, report):
        report.custody_events += 1
        if seqs and event.seq <= seqs[-1]:
            report.problems.append(f"custody event {event.seq} comes after event {seqs[-1]}")
        seqs.append(event.seq)
        where = f"custody event {event.seq} ({event.action})"
        if not event.key_fingerprint or not event.signature:
            report.notes.append(f"{where} is unsigned")
            continue
        public = _public_key(zf, event.key_fingerprint)
        try:
            signature = bytes.fromhex(event.signature)
        except ValueError:
            signature = b""
        if public is None:
            report.problems.append(f"{where}: its key {event.key_fingerprint} is not in the WACZ")
            continue
        if not keys.signature_holds(public, signature, event.signed_bytes()):
            report.problems.append(f"{where}: its signature does not hold")
            continue
        if event.result != "ok" or event.action not in ("capture", "timestamp"):
            continue
        for ref in event.files:
            name = in_wacz(ref.path)
            if name is None or ref.sha256 is None:
                continue
            if name not in holds:
                report.problems.append(f"{where} logged {ref.path}, which is not in the WACZ")
            elif holds[name] != ref.sha256:
                report.problems.append(f"{where} logged {ref.path} with another SHA-256")
    if report.custody_events:
        report.notes.append(
            f"{counted(report.custody_events, 'custody event')} come with it, each "
            "signature checked; "
            "the chain between them is in the archive's full log, not here"
        )


def _check_index(zf: zipfile.ZipFile, manifests: dict[str, _Signed], report: WaczReport) -> None:
    """The CDXJ index and pages.jsonl must be what the signed manifests give."""
    signed = [s.manifest for s in manifests.values()]
    rows = (
        {name: getattr(row, name) for name in cdxj.COLUMNS} for m in signed for row in m.records
    )
    expected = cdxj.lines(rows, lambda p: PurePosixPath(p).name)
    if wacz.INDEX_IDX in zf.NameToInfo or wacz.INDEX_DATA in zf.NameToInfo:
        try:
            found, problems = cdxj.read_compressed(
                _small(zf, wacz.INDEX_DATA), _small(zf, wacz.INDEX_IDX)
            )
        except KeyError:
            report.problems.append(
                f"{wacz.INDEX_DATA} and {wacz.INDEX_IDX} go together: one is missing"
            )
        else:
            report.problems.extend(f"indexes/{p}" for p in problems)
            if found != expected:
                report.problems.append(f"{wacz.INDEX_DATA} is not what the signed records give")
        if wacz.INDEX in zf.NameToInfo:
            report.problems.append(f"{wacz.INDEX} beside a compressed index: two indexes")
    else:
        try:
            index = _small(zf, wacz.INDEX)
        except KeyError:
            report.problems.append(f"no {wacz.INDEX}")
        else:
            if index != b"".join(line + b"\n" for line in expected):
                report.problems.append(f"{wacz.INDEX} is not what the signed records give")
    try:
        lines = _small(zf, wacz.PAGES).splitlines()
        pages = [json.loads(line) for line in lines[1:] if line.strip()]
    except KeyError:
        report.problems.append(f"no {wacz.PAGES}")
        return
    except ValueError as exc:
        report.problems.append(f"{wacz.PAGES} is not JSON lines: {exc}")
        return
    if pages != [page_entry(m) for m in signed]:
        report.problems.append(f"{wacz.PAGES} is not what the signed manifests give")
