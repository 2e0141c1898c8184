"""``archiver export``: captures as one signed WACZ file, streamed.

The WARC files are copied byte for byte into the ZIP (STORE, never deflated), a
megabyte at a time: memory stays flat whatever the size of a video.  Each file is
hashed as it is copied and compared with its signed manifest before the WACZ is
named: a file changed since it was signed is never exported (the temporary file is
removed and the error names the file).  The CDXJ index and the pages come from the
signed manifests' record rows (the index's rows, as signed), so the WACZ says
nothing the signer did not sign.  The result appears under its name whole or not at all.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO, Protocol

from archiver import TOOL_NAME, __version__
from archiver.core.atomic import atomic_path, output_problem
from archiver.core.errors import Failure, UsageProblem
from archiver.core.model import utcnow
from archiver.index import cdxj, query
from archiver.index.store import RecordRow
from archiver.ops import wacz
from archiver.trust import custody, keys, wacz_signing
from archiver.trust import timestamp as stamping
from archiver.trust.manifest import (
    Manifest,
    ManifestError,
    manifest_path,
    public_key_name,
    signature_path,
)

CHUNK = 1024 * 1024
BROWSER_RECORDS = {  # the urn: kind of a browser capture's record -> its field in pages.jsonl
    "view": "screenshot",
    "fullPage": "fullPageScreenshot",
    "pdf": "pdf",
    "dom": "dom",
    "text": "textRecord",
    "pageinfo": "pageinfo",
}


class ExportUsage(UsageProblem):
    """The captures named cannot be exported as asked (unknown, imported, unsigned)."""


class ExportFailed(Failure):
    """A file to export is missing, unreadable or no longer what was signed."""


class ExportProgress(Protocol):
    def __call__(self, done: int, total: int, name: str) -> None: ...


@dataclass(frozen=True)
class Member:
    """A file in the WACZ: its path there, size and SHA-256."""

    path: str
    size: int
    sha256: str


@dataclass
class Exported:
    """What an export wrote."""

    path: Path
    captures: list[str]
    members: list[Member] = field(default_factory=list)
    size: int = 0
    sha256: str = ""  # of the WACZ file itself
    signer: str = ""
    p384_public_key_sha256: str = ""
    created: str = ""
    seconds: float = 0.0
    originals: dict[str, str] = field(default_factory=dict)  # added capture -> whose revisits

    def to_json(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "captures": self.captures,
            "originals": self.originals,
            "size": self.size,
            "sha256": self.sha256,
            "signer": self.signer,
            "p384_public_key_sha256": self.p384_public_key_sha256,
            "created": self.created,
            "seconds": round(self.seconds, 3),
            "files": [{"path": m.path, "size": m.size, "sha256": m.sha256} for m in self.members],
        }


@dataclass
class _Capture:
    capture_id: str
    manifest_file: Path
    manifest_bytes: bytes
    manifest: Manifest


def wacz_time(moment: datetime) -> str:
    """``YYYY-MM-DDThh:mm:ssZ``: the form py-wacz and ReplayWeb.page write."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def export(
    archive_dir: Path,
    capture_ids: Iterable[str],
    output: Path,
    key: wacz_signing.WaczKey,
    signer_pem: bytes,
    *,
    overwrite: bool = False,
    progress: ExportProgress | None = None,
    now: datetime | None = None,
    plain_lines: int = wacz.PLAIN_INDEX_LINES,
) -> Exported:
    """Write the captures ``capture_ids`` of ``archive_dir`` to ``output`` as a WACZ,
    signed with ``key`` (the P-384 key bound to the Ed25519 key whose public key is
    ``signer_pem``); the statement binding them travels in ``archiver/``, with the
    captures' own evidence."""
    signer = key.ed25519_fingerprint
    software = f"{TOOL_NAME} {__version__}"
    key_files = [(f"{signer}{keys.PUB_SUFFIX}", signer_pem)]
    key_files += [
        (name.removeprefix("keys/"), data) for name, data in wacz_signing.binding_members(key)
    ]

    def sign_digest(data: bytes, created: str) -> dict[str, Any]:
        return wacz_signing.sign_datapackage(key, data, created, software)

    started = time.monotonic()
    ids = list(dict.fromkeys(capture_ids))
    if not ids:
        raise ExportUsage("name at least one capture to export")
    if problem := output_problem(archive_dir, output, overwrite):
        raise ExportUsage(problem, hint="-o/--output")
    _capture_rows(archive_dir, ids)  # every capture named is ours and signed
    originals = _originals(archive_dir, ids)
    ids += list(originals)
    captures = [_read_capture(archive_dir, row) for row in _capture_rows(archive_dir, ids)]
    created = wacz_time(now or utcnow())
    result = Exported(output, ids, signer=signer, created=created, originals=originals)
    try:
        with atomic_path(output, overwrite=overwrite) as temp, temp.open("wb") as raw:
            with zipfile.ZipFile(raw, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
                writer = _Writer(zf, created)
                _write_warcs(archive_dir, captures, writer, progress)
                _write_index(writer, _index(captures), plain_lines)
                writer.add(wacz.PAGES, _pages(captures))
                _write_evidence(archive_dir, captures, writer, signer, key_files)
                package = _datapackage(writer.members, captures, created, software, signer)
                writer.add(wacz.DATAPACKAGE, package, listed=False)
                digest = sign_digest(package, created)
                writer.add(wacz.DIGEST, _json_bytes(digest), listed=False)
            raw.flush()
    except FileExistsError as exc:
        raise ExportUsage(f"{output} exists; name another file or give --force") from exc
    except OSError as exc:
        raise ExportFailed(f"cannot write {output}: {exc.strerror or exc}") from exc
    result.members = writer.members
    result.size = output.stat().st_size
    result.sha256 = _file_sha256(output)
    public_key = digest.get("signedData", {}).get("publicKey", "")
    result.p384_public_key_sha256 = hashlib.sha256(base64.b64decode(public_key)).hexdigest()
    result.seconds = time.monotonic() - started
    return result


def _capture_rows(archive_dir: Path, ids: list[str]) -> list[dict[str, Any]]:
    marks = ", ".join("?" for _ in ids)
    rows = query.run(
        archive_dir,
        "select capture_id, collection, imported, manifest_sha256 from captures "
        f"where capture_id in ({marks})",
        ids,
    ).rows
    found = {row["capture_id"]: row for row in rows}
    missing = [i for i in ids if i not in found]
    if missing:
        raise ExportUsage(f"no capture {', '.join(missing)} in the index of {archive_dir}")
    for row in found.values():
        if row["imported"]:
            raise ExportUsage(
                f"{row['capture_id']} is a WARC file imported from another tool: it has no "
                "manifest of ours to travel with it (export archiver's own captures)"
            )
        if not row["manifest_sha256"]:
            raise ExportUsage(
                f"{row['capture_id']} was never signed: `archiver verify` says why; "
                "an unsigned capture is not exported as evidence"
            )
    return [found[i] for i in ids]


def _originals(archive_dir: Path, ids: list[str]) -> dict[str, str]:
    """The captures holding the originals of these captures' revisits, and theirs, each
    with the capture whose revisit needs it: a WACZ replays and verifies on its own."""
    added: dict[str, str] = {}
    seen, frontier = set(ids), list(ids)
    while frontier:
        marks = ", ".join("?" for _ in frontier)
        rows = query.run(
            archive_dir,
            "select distinct o.capture_id as holder, r.capture_id as needed_by from records r "
            "join records o on o.record_id = r.refers_to and o.warc_type <> 'revisit' "
            f"where r.warc_type = 'revisit' and r.capture_id in ({marks})",
            frontier,
        ).rows
        frontier = []
        for row in sorted(rows, key=lambda r: (r["holder"], r["needed_by"])):
            if row["holder"] not in seen:
                seen.add(row["holder"])
                added[row["holder"]] = row["needed_by"]
                frontier.append(row["holder"])
    return added


def _read_capture(archive_dir: Path, row: dict[str, Any]) -> _Capture:
    """The capture's manifest, checked: its SHA-256 is the index's, its signature holds."""
    path = manifest_path(archive_dir, row["collection"], row["capture_id"])
    try:
        data = path.read_bytes()
        signature = signature_path(path).read_bytes()
    except OSError as exc:
        raise ExportFailed(f"cannot read {exc.filename}: {exc.strerror}") from exc
    if hashlib.sha256(data).hexdigest() != row["manifest_sha256"]:
        raise ExportFailed(f"{path} is not the manifest the index recorded: run `archiver verify`")
    try:
        manifest = Manifest.from_bytes(data)
        public = keys.load_public(archive_dir / public_key_name(manifest.key_fingerprint))
    except (ManifestError, keys.KeyProblem) as exc:
        raise ExportFailed(f"{path}: {exc}") from exc
    if not keys.signature_holds(public, signature, data):
        raise ExportFailed(f"the signature of {path} does not hold: run `archiver verify`")
    return _Capture(row["capture_id"], path, data, manifest)


class _Writer:
    """ZIP members, each hashed as written; ``members`` lists them for datapackage.json."""

    def __init__(self, zf: zipfile.ZipFile, created: str) -> None:
        self.zf = zf
        stamp = datetime.fromisoformat(created.replace("Z", "+00:00"))
        self.date_time = (
            stamp.year,
            stamp.month,
            stamp.day,
            stamp.hour,
            stamp.minute,
            stamp.second,
        )
        self.members: list[Member] = []
        self.names: set[str] = set()

    def _info(self, name: str, size: int) -> zipfile.ZipInfo:
        if name in self.names:
            raise ExportFailed(f"two files would be {name} in the WACZ")
        self.names.add(name)
        info = zipfile.ZipInfo(name, self.date_time)
        info.compress_type = zipfile.ZIP_STORED
        info.file_size = size  # zipfile writes ZIP64 fields for a file of 4 GiB or more
        info.external_attr = 0o644 << 16
        return info

    def add(self, name: str, data: bytes, *, listed: bool = True) -> None:
        with self.zf.open(self._info(name, len(data)), "w") as out:
            out.write(data)
        if listed:
            self.members.append(Member(name, len(data), hashlib.sha256(data).hexdigest()))

    def copy(self, name: str, source: BinaryIO, size: int, on_chunk: Callable[[int], None]) -> str:
        """Copy ``size`` bytes of ``source`` into ``name``; their SHA-256."""
        digest = hashlib.sha256()
        left = size
        with self.zf.open(self._info(name, size), "w", force_zip64=size >= 2**31) as out:
            while left:
                chunk = source.read(min(CHUNK, left))
                if not chunk:
                    break
                digest.update(chunk)
                out.write(chunk)
                left -= len(chunk)
                on_chunk(len(chunk))
            if source.read(1):
                left = -1
        if left:
            raise ExportFailed(f"{source.name} changed size while it was copied")
        sha = digest.hexdigest()
        self.members.append(Member(name, size, sha))
        return sha


def _write_warcs(
    archive_dir: Path,
    captures: list[_Capture],
    writer: _Writer,
    progress: ExportProgress | None,
) -> None:
    entries = [entry for c in captures for entry in c.manifest.files]
    total = sum(entry.size for entry in entries)
    done = 0
    for entry in entries:
        path = archive_dir / entry.path
        name = wacz.ARCHIVE_DIR + Path(entry.path).name

        def tick(n: int, name: str = name) -> None:
            nonlocal done
            done += n
            if progress is not None:
                progress(done, total, name)

        try:
            with path.open("rb") as source:
                actual = path.stat().st_size
                if actual != entry.size:
                    raise ExportFailed(
                        f"{path} is {actual} bytes, its signed manifest says {entry.size}: "
                        "run `archiver verify`"
                    )
                sha = writer.copy(name, source, entry.size, tick)
        except OSError as exc:
            raise ExportFailed(f"cannot read {path}: {exc.strerror or exc}") from exc
        if sha != entry.sha256:
            raise ExportFailed(
                f"{path} is not what its manifest signed (SHA-256 {sha}, signed "
                f"{entry.sha256}): nothing was exported; run `archiver verify`"
            )


def _served_rows(captures: list[_Capture]) -> Iterator[dict[str, Any]]:
    for capture in captures:
        for row in capture.manifest.records:
            yield {name: getattr(row, name) for name in cdxj.COLUMNS}


def _index(captures: list[_Capture]) -> list[bytes]:
    return cdxj.lines(_served_rows(captures), lambda path: Path(path).name)


def _write_index(writer: _Writer, lines: list[bytes], plain_lines: int) -> None:
    """One CDXJ file, or past ``plain_lines`` lines the compressed pair (ZipNum)."""
    if len(lines) <= plain_lines:
        writer.add(wacz.INDEX, b"".join(line + b"\n" for line in lines))
        return
    data, idx = cdxj.compressed(lines)
    writer.add(wacz.INDEX_DATA, data)
    writer.add(wacz.INDEX_IDX, idx)


def page_record(manifest: Manifest) -> RecordRow | None:
    """The record of the page a capture shows: the response at its final URL."""
    final = manifest.capture.final_url or manifest.capture.seed_url
    pages = [r for r in manifest.records if r.role == "page" and r.warc_type == "response"]
    for row in pages:
        if row.url == final:
            return row
    return pages[0] if pages else None


def page_entry(manifest: Manifest) -> dict[str, Any]:
    """The capture's line in ``pages.jsonl``: the page, its title and time, and the
    records a browser capture kept of it (``urn:view:`` and the others)."""
    row = page_record(manifest)
    capture = manifest.capture
    url = row.url if row is not None and row.url else capture.final_url or capture.seed_url
    moment = row.fetched_at if row is not None and row.fetched_at else capture.started_at
    entry: dict[str, Any] = {
        "id": (row.record_id if row is not None else capture.capture_id).strip("<>"),
        "url": url,
        "ts": wacz_time(moment) if moment else None,
        "title": capture.title or url,
        "capture_id": capture.capture_id,
    }
    for record in manifest.records:
        target = record.url or ""
        if record.warc_type == "resource" and target.startswith("urn:"):
            kind = target.split(":", 2)[1]
            if kind in BROWSER_RECORDS:
                entry.setdefault(BROWSER_RECORDS[kind], target)
    return entry


def _pages(captures: list[_Capture]) -> bytes:
    lines = [wacz.PAGES_HEADER, *(page_entry(c.manifest) for c in captures)]
    return b"".join(_json_bytes(line, compact=True) for line in lines)


def _write_evidence(
    archive_dir: Path,
    captures: list[_Capture],
    writer: _Writer,
    signer: str,
    key_files: Iterable[tuple[str, bytes]],
) -> None:
    """Our own evidence, in the flat ``archiver/`` folder (see :mod:`archiver.ops.wacz`)."""
    for name, data in key_files:
        writer.add(wacz.EVIDENCE_DIR + name, data)
    fingerprints = {signer}
    for capture in captures:
        manifest = capture.manifest_file
        writer.add(wacz.EVIDENCE_DIR + manifest.name, capture.manifest_bytes)
        sig = signature_path(manifest)
        writer.add(wacz.EVIDENCE_DIR + sig.name, _read(sig))
        fingerprints.add(capture.manifest.key_fingerprint)
        for _authority, token in stamping.tokens_of(manifest):
            writer.add(wacz.EVIDENCE_DIR + token.name, _read(token))
    for authority_dir in _tsa_dirs(archive_dir, captures):
        for pem in sorted(authority_dir.glob("*.pem")):
            name = wacz.tsa_chain_name(authority_dir.name, pem.name)
            if name not in writer.names:
                writer.add(name, _read(pem))
    events = _custody_events(archive_dir, [c.capture_id for c in captures])
    fingerprints |= {e.key_fingerprint for e in events if e.key_fingerprint}
    for fp in sorted(fingerprints):
        path = archive_dir / public_key_name(fp)
        if path.is_file() and wacz.EVIDENCE_DIR + path.name not in writer.names:
            writer.add(wacz.EVIDENCE_DIR + path.name, _read(path))
    if events:
        _check_logged(events, writer.members)
        writer.add(wacz.CUSTODY, b"".join(e.line() + b"\n" for e in events))


def _tsa_dirs(archive_dir: Path, captures: list[_Capture]) -> list[Path]:
    """The folders of the authorities that stamped these captures."""
    authorities = {
        authority
        for capture in captures
        for authority, _token in stamping.tokens_of(capture.manifest_file)
    }
    root = archive_dir / stamping.TSA_DIR
    return [root / name for name in sorted(authorities) if (root / name).is_dir()]


def _custody_events(archive_dir: Path, ids: list[str]) -> list[custody.Event]:
    """The custody events about these captures alone, in the log's order: an event that
    names another capture, or a file outside the archive (an export's or an extract's
    output), would tell whoever receives the WACZ about more than was shared; one whose
    key the archive does not hold could not be checked from the WACZ."""
    if not custody.log_path(archive_dir).exists():
        return []
    report = custody.check(archive_dir)
    wanted = set(ids)
    return [
        e
        for e in report.events
        if e.captures
        and set(e.captures) <= wanted
        and not any(PurePosixPath(f.path).is_absolute() for f in e.files)
        and (
            e.key_fingerprint is None
            or (archive_dir / public_key_name(e.key_fingerprint)).is_file()
        )
    ]


def _check_logged(events: list[custody.Event], members: list[Member]) -> None:
    """What a signed capture or time-stamp event logged must be in the WACZ as it was
    logged (a token deleted from the archive since, say): else the WACZ would not
    verify, and the archive does not either."""
    held = {m.path: m.sha256 for m in members}
    for event in events:
        if event.result != "ok" or event.action not in ("capture", "timestamp"):
            continue
        for ref in event.files:
            name = in_wacz(ref.path)
            if name is not None and ref.sha256 and held.get(name) != ref.sha256:
                raise ExportFailed(
                    f"{ref.path}, logged by custody event {event.seq} ({event.action}), is "
                    "missing or changed in the archive: run `archiver verify`"
                )


def in_wacz(archive_path: str) -> str | None:
    """Where a file an event names (relative to the archive) is in the WACZ."""
    pure = PurePosixPath(archive_path)
    if pure.name.endswith((".warc.gz", ".warc")):
        return wacz.ARCHIVE_DIR + pure.name
    if pure.parts[:1] == ("warc",):
        return wacz.EVIDENCE_DIR + pure.name
    return None


def _datapackage(
    members: list[Member], captures: list[_Capture], created: str, software: str, signer: str
) -> bytes:
    first = captures[0].manifest
    page = page_entry(first)
    doc: dict[str, Any] = {
        "profile": "data-package",
        "resources": [
            {
                "name": member.path.lower().replace("/", "-"),
                "path": member.path,
                "hash": f"sha256:{member.sha256}",
                "bytes": member.size,
            }
            for member in members
        ],
        "wacz_version": wacz.WACZ_VERSION,
        "title": first.capture.title or page["url"],
        "software": software,
        "created": created,
        "mainPageUrl": page["url"],
        "mainPageDate": page["ts"],
        "archiver": {
            "captures": [c.capture_id for c in captures],
            "signer": signer,
            "manifest_signers": sorted({c.manifest.key_fingerprint for c in captures}),
        },
    }
    return _json_bytes(doc)


def _json_bytes(doc: Any, *, compact: bool = False) -> bytes:
    if compact:
        return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"
    return json.dumps(doc, ensure_ascii=False, indent=2).encode() + b"\n"


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ExportFailed(f"cannot read {path}: {exc.strerror or exc}") from exc


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
