"""Index rows from WARC files alone: ``index rebuild`` and ``index import``.

The WARC files are the evidence and the index is derived from them.  For a
capture made by archiver, the warcinfo record names the capture and the closing
metadata record (``schemas/capture-metadata.v2.json``) carries the provenance
and what each record is to the capture; everything else is read from the
records themselves (see :mod:`archiver.warc.reader`).  A WARC file written by another
tool is imported into ``warc/<collection>/imported/`` and indexed as a capture
of its own (``import-<first 16 hex of the file's SHA-256>``), every digest it
declares checked on the way.  The index holds a WARC-Target-URI without the angle
brackets wget puts around it (the file keeps them), so that a lookup by URL finds it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from archiver import TOOL_NAME
from archiver.core.atomic import TEMP_MARK, fsync_dir, fsync_file, rename_no_replace
from archiver.core.errors import Failure
from archiver.core.layout import CAPTURE_ID
from archiver.index.store import (
    CaptureRow,
    Index,
    RecordRow,
    browser_columns,
    payload_bytes,
    relative_path,
)
from archiver.trust.manifest import MANIFEST_SUFFIX, Manifest, ManifestError
from archiver.warc.reader import ScanIssue, StoredRecord, media_type, parse_warc_date, scan_file

WARC_DIR = "warc"
IMPORTED_DIR = "imported"
WARC_SUFFIXES = (".warc", ".warc.gz")


class IngestError(Failure):
    """A file cannot be imported at all (not a file, not a WARC, nothing readable)."""

    unexpected = True  # the CLI hints at --debug (archiver.core.errors)


@dataclass
class FileReport:
    """What reading one WARC file found."""

    path: Path
    records: int = 0
    problems: list[tuple[int, str]] = field(default_factory=list)  # (offset, what)
    notes: list[tuple[int, str]] = field(default_factory=list)  # quirks that touch no digest

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass
class ImportResult:
    source: Path
    stored_as: Path | None
    capture_id: str | None
    report: FileReport
    already: bool = False


def is_warc(path: Path) -> bool:
    return path.name.endswith(WARC_SUFFIXES)


@dataclass
class Walk:
    """What :func:`walk` found under a folder: every path, and what could not be read."""

    paths: list[Path] = field(default_factory=list)  # what Path.rglob("*") finds, sorted
    unreadable: list[tuple[Path, str]] = field(default_factory=list)  # (path, why), sorted

    def files(self) -> list[Path]:
        """The regular files (or links to one) among the paths; one that cannot even be
        looked at is added to ``unreadable``."""
        found = []
        for path in self.paths:
            try:
                if path.is_file():
                    found.append(path)
            except OSError as exc:
                self.unreadable.append((path, exc.strerror or str(exc)))
        self.unreadable.sort()
        return found


def walk(root: Path) -> Walk:
    """Every path under ``root``, as ``root.rglob("*")`` finds them (hidden names too;
    links to folders listed, not followed), and every folder that cannot be listed
    (``root`` too), with why: ``rglob`` skips those silently, and what they hold with
    them."""
    out = Walk()
    folders = [root]
    while folders:
        folder = folders.pop()
        try:
            with os.scandir(folder) as listing:
                entries = list(listing)
        except OSError as exc:
            out.unreadable.append((folder, exc.strerror or str(exc)))
            continue
        for entry in entries:
            path = folder / entry.name
            out.paths.append(path)
            try:
                if entry.is_dir(follow_symlinks=False):
                    folders.append(path)
            except OSError as exc:
                out.unreadable.append((path, exc.strerror or str(exc)))
    out.paths.sort()
    out.unreadable.sort()
    return out


def shown_unreadable(unreadable: list[tuple[Path, str]], limit: int = 5) -> str:
    """``path (why), ...`` for a message, the first ``limit`` of them."""
    shown = ", ".join(f"{path} ({why})" for path, why in unreadable[:limit])
    more = len(unreadable) - limit
    return shown + (f" and {more} more" if more > 0 else "")


def _warc_walk(archive_dir: Path) -> tuple[list[Path], list[tuple[Path, str]]]:
    """The finished WARC files of the archive, and what under ``warc/`` cannot be read."""
    root = archive_dir / WARC_DIR
    try:
        if not root.is_dir():
            return [], []
    except OSError as exc:
        return [], [(root, exc.strerror or str(exc))]
    found = walk(root)
    return [p for p in found.files() if is_warc(p)], found.unreadable


def warc_files(archive_dir: Path) -> list[Path]:
    """Every finished WARC file of the archive (``.open`` files are unfinished).

    A folder under ``warc/`` that cannot be read is a :class:`Failure` naming it:
    the files it holds would be left out unseen."""
    files, unreadable = _warc_walk(archive_dir)
    if unreadable:
        raise Failure(
            f"cannot read {shown_unreadable(unreadable)}: the WARC files of {archive_dir} "
            "cannot all be found"
        )
    return files


def unopenable(path: Path) -> str | None:
    """Why ``path`` cannot be opened for reading, or None when it can."""
    try:
        os.close(os.open(path, os.O_RDONLY | os.O_NONBLOCK))
    except OSError as exc:
        return exc.strerror or str(exc)
    return None


def warcinfo_fields(block: bytes | None) -> dict[str, str]:
    fields: dict[str, str] = {}
    for line in (block or b"").decode("utf-8", "replace").splitlines():
        name, sep, value = line.partition(":")
        if sep and name.strip() and name.strip() not in fields:
            fields[name.strip()] = value.strip()
    return fields


def _record_row(
    capture_id: str,
    rec: StoredRecord,
    archive_dir: Path,
    roles: dict[str, dict[str, Any]] | None,
) -> RecordRow:
    """A records row; ``roles`` (from the metadata record) is None for imported files."""
    wtype = rec.warc_type
    record_id = rec.get("WARC-Record-ID") or ""
    info = (roles or {}).get(record_id, {})
    role = info.get("role")
    if role is None and roles is not None and wtype in ("warcinfo", "metadata"):
        role = wtype
    if wtype == "response":
        content_type = rec.http_content_type
    elif wtype in ("request", "revisit"):
        content_type = None
    else:
        content_type = media_type(rec.get("Content-Type"))
    return RecordRow(
        capture_id=capture_id,
        record_id=record_id,
        warc_type=wtype,
        url=rec.target_uri,  # without the angle brackets some writers put around it
        fetched_at=rec.date,
        http_status=rec.http_status,
        content_type=content_type,
        payload_sha256=rec.payload_sha256,
        payload_length=rec.payload_length,
        block_sha256=rec.block_sha256,
        record_sha256=rec.record_sha256,
        truncated=rec.get("WARC-Truncated"),
        ip_address=rec.get("WARC-IP-Address"),
        role=role,
        discovered_from=info.get("discovered_from"),
        discovered_via=info.get("discovered_via"),
        concurrent_to=rec.get("WARC-Concurrent-To"),
        refers_to=rec.get("WARC-Refers-To"),
        warc_filename=relative_path(rec.path, archive_dir),
        warc_offset=rec.offset,
        warc_length=rec.length,
        problem="; ".join(rec.problems) or None,
    )


class ScanProgress(Protocol):
    """What reading WARC files reports as it goes (the CLI draws it on a terminal)."""

    def file(self, path: Path) -> None: ...
    def advanced(self, nbytes: int) -> None: ...


class NoProgress:
    def file(self, path: Path) -> None:
        pass

    def advanced(self, nbytes: int) -> None:
        pass


def read_file(
    path: Path, progress: ScanProgress | None = None
) -> tuple[list[StoredRecord], FileReport]:
    report = FileReport(path)
    records = []
    progress = progress or NoProgress()
    progress.file(path)
    for item in scan_file(path):
        if not isinstance(item, ScanIssue):
            progress.advanced(item.length)
        if isinstance(item, ScanIssue):
            report.problems.append((item.offset, item.message))
            continue
        records.append(item)
        report.records += 1
        for problem in item.problems:
            report.problems.append((item.offset, f"{item.get('WARC-Record-ID')}: {problem}"))
        for note in item.notes:
            report.notes.append((item.offset, f"{item.get('WARC-Record-ID')}: {note}"))
    return records, report


def _metadata(records: list[StoredRecord]) -> dict[str, Any] | None:
    for rec in reversed(records):
        if rec.warc_type != "metadata" or rec.block is None:
            continue
        try:
            body = json.loads(rec.block)
        except ValueError:
            continue
        if isinstance(body, dict) and str(body.get("schema", "")).startswith(
            "archiver/capture-metadata/"
        ):
            return body
    return None


def capture_rows(
    archive_dir: Path, capture_id: str, files: list[tuple[Path, list[StoredRecord]]]
) -> tuple[CaptureRow, list[RecordRow]]:
    """The rows of one archiver capture, from its WARC files alone."""
    all_records = [r for _, recs in files for r in recs]
    meta = _metadata(all_records) or {}
    roles = {r["record_id"]: r for r in meta.get("records", [])}
    rows = [_record_row(capture_id, r, archive_dir, roles) for r in all_records]
    info = warcinfo_fields(all_records[0].block if all_records else None)
    libraries = meta.get("libraries") or json.loads(info.get("libraries", "{}"))
    page = meta.get("page") or {}
    tool = meta.get("tool") or {}
    row = CaptureRow(
        capture_id=capture_id,
        imported=False,
        seed_url=meta.get("seed_url") or info.get("seed-url"),
        final_url=meta.get("final_url"),
        http_status=meta.get("http_status"),
        status=meta.get("status") or "failed",
        failure=meta.get("failure") if meta else "no metadata record: the capture did not finish",
        started_at=parse_warc_date(meta.get("started_at")),
        finished_at=parse_warc_date(meta.get("finished_at")),
        operator=meta.get("operator", info.get("operator")),
        collection=meta.get("collection") or info.get("isPartOf") or "default",
        note=meta.get("note", info.get("description")),
        tool_name=tool.get("name", TOOL_NAME),
        tool_version=tool.get("version"),
        warcio_version=libraries.get("warcio"),
        pyarrow_version=libraries.get("pyarrow"),
        ytdlp_version=libraries.get("yt-dlp"),
        libraries=libraries or None,
        hostname=meta.get("hostname", info.get("hostname")),
        platform=meta.get("platform", info.get("platform")),
        user_agent=meta.get("user_agent", info.get("http-header-user-agent")),
        title=page.get("title"),
        author=page.get("author"),
        published_at=page.get("published_at"),
        language=page.get("language"),
        outlinks=list(meta.get("outlinks") or []),
        video_count=len(meta.get("videos") or []),
        warc_files=[relative_path(p, archive_dir) for p, _ in files],
        record_count=len(rows),
        total_bytes=payload_bytes(rows),
        warc_bytes=sum(p.stat().st_size for p, _ in files),
        errors=[{"url": e["url"], "reason": e["reason"]} for e in meta.get("errors") or []],
        # a browser capture's: what the capture's own row took from Capture.browser
        **browser_columns(meta.get("browser")),
    )
    if files:
        row = _with_signature(row, files[0][0].parent / (capture_id + MANIFEST_SUFFIX))
    return row, rows


def _with_signature(row: CaptureRow, path: Path) -> CaptureRow:
    """``row`` with the signer and manifest digest of the capture's manifest, if it has one.

    Only these two columns come from the manifest; verify checks the rest of the
    row, rebuilt from the WARC files, against it.
    """
    try:
        data = path.read_bytes()
        signed = Manifest.from_bytes(data)
    except (OSError, ManifestError):
        return row  # unsigned, or a manifest verify will reject
    return replace(
        row,
        key_fingerprint=signed.key_fingerprint,
        manifest_sha256=hashlib.sha256(data).hexdigest(),
    )


IMPORT_ID = re.compile(r"^import-[0-9a-f]{16}$")


def imported_capture_id(file_sha256: str) -> str:
    return "import-" + file_sha256[:16]


def imported_rows(
    archive_dir: Path,
    path: Path,
    file_sha256: str,
    records: list[StoredRecord],
    report: FileReport,
    collection: str,
) -> tuple[CaptureRow, list[RecordRow]]:
    """The rows of a WARC file written by another tool."""
    capture_id = imported_capture_id(file_sha256)
    rows = [_record_row(capture_id, r, archive_dir, None) for r in records]
    info = {}
    for rec in records:
        if rec.warc_type == "warcinfo":
            info = warcinfo_fields(rec.block)
            break
    seed = next(
        (r.url for r in rows if r.warc_type in ("response", "resource", "revisit") and r.url),
        None,
    )
    dates = [r.fetched_at for r in rows if r.fetched_at is not None]
    software = info.get("software")
    name, _, version = (software or "").partition("/")
    row = CaptureRow(
        capture_id=capture_id,
        imported=True,
        seed_url=seed,
        final_url=seed,
        http_status=next((r.http_status for r in rows if r.http_status is not None), None),
        status="complete" if report.ok else "partial",
        failure=None,
        started_at=min(dates) if dates else None,
        finished_at=max(dates) if dates else None,
        operator=info.get("operator"),
        collection=collection,
        note=info.get("description"),
        tool_name=name.strip() or None,
        tool_version=version.strip() or None,
        warcio_version=None,
        pyarrow_version=None,
        ytdlp_version=None,
        libraries=None,
        hostname=info.get("hostname"),
        platform=None,
        user_agent=info.get("http-header-user-agent"),
        title=None,
        author=None,
        published_at=None,
        language=None,
        outlinks=None,
        video_count=sum(
            1
            for r in rows
            if r.warc_type == "response" and (r.content_type or "").startswith("video/")
        ),
        warc_files=[relative_path(path, archive_dir)],
        record_count=len(rows),
        total_bytes=payload_bytes(rows),
        warc_bytes=path.stat().st_size,
        errors=[
            {"url": f"{relative_path(path, archive_dir)}@{o}", "reason": m}
            for o, m in report.problems
        ],
    )
    return row, rows


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()


# rebuild -------------------------------------------------------------------
def rebuild_groups(
    archive_dir: Path,
    reports: list[FileReport],
    progress: ScanProgress | None = None,
    paths: list[Path] | None = None,
) -> Iterator[tuple[str, list[CaptureRow], list[RecordRow]]]:
    """(name, captures rows, records rows) for every capture in the archive's WARC files
    (``paths``: those, found already).  A file that cannot be read is a Failure."""
    captures: dict[str, list[tuple[Path, list[StoredRecord]]]] = {}
    finished: set[str] = set()
    imported: dict[str, Path] = {}
    root = archive_dir / WARC_DIR
    for path in warc_files(archive_dir) if paths is None else paths:
        records, report = read_file(path, progress)
        reports.append(report)
        if path.parent.name == IMPORTED_DIR and path.parent.parent.parent == root:
            if not records:
                continue
            try:
                sha = file_sha256(path)
            except OSError as exc:
                raise Failure(f"{path}: cannot be read ({exc.strerror or exc})") from exc
            capture_id = imported_capture_id(sha)
            if capture_id in imported:
                report.problems.append((0, f"same content as {imported[capture_id]}"))
                continue
            imported[capture_id] = path
            collection = path.parent.parent.name
            capture, rows = imported_rows(archive_dir, path, sha, records, report, collection)
            yield capture.capture_id, [capture], rows
            continue
        info = warcinfo_fields(records[0].block if records else None)
        capture_id = info.get("capture-id", "")
        if not CAPTURE_ID.match(capture_id):
            report.problems.append((0, "no archiver warcinfo record naming the capture"))
            continue
        # A capture's files sort next to each other (<capture_id>-NNNNN): each capture
        # is turned into rows as soon as the next one starts, so memory stays flat.
        for done_id in [c for c in captures if c != capture_id]:
            files = captures.pop(done_id)
            yield done_id, *_capture_group(archive_dir, done_id, files)
            finished.add(done_id)
        if capture_id in finished:
            report.problems.append(
                (0, f"a file of capture {capture_id} stands apart from the rest")
            )
            continue
        captures.setdefault(capture_id, []).append((path, records))
    for capture_id, files in captures.items():
        yield capture_id, *_capture_group(archive_dir, capture_id, files)


def _capture_group(
    archive_dir: Path, capture_id: str, files: list[tuple[Path, list[StoredRecord]]]
) -> tuple[list[CaptureRow], list[RecordRow]]:
    capture, rows = capture_rows(archive_dir, capture_id, sorted(files, key=lambda f: f[0].name))
    return [capture], rows


def rebuild(
    archive_dir: Path, progress: ScanProgress | None = None
) -> tuple[int, list[FileReport]]:
    """Regenerate the whole index from the WARC files; returns (captures, file reports).

    A folder or WARC file that cannot be read is a :class:`Failure` naming it, said
    before the index is touched: an index without its captures never replaces it."""
    files, unreadable = _warc_walk(archive_dir)
    unreadable += [(p, why) for p in files if (why := unopenable(p)) is not None]
    if unreadable:
        raise Failure(
            f"cannot read {shown_unreadable(unreadable)}: the index was not rebuilt "
            "(it is as it was)"
        )
    reports: list[FileReport] = []
    groups = rebuild_groups(archive_dir, reports, progress, files)
    count = Index(archive_dir).replace_all(groups)
    return count, reports


# import --------------------------------------------------------------------
def import_file(
    archive_dir: Path, source: Path, collection: str, progress: ScanProgress | None = None
) -> ImportResult:
    """Copy ``source`` into the archive, check every record of the copy, and index it.

    The copy is hashed as it is written and then read, so the rows describe exactly
    the bytes stored (not a source that might change meanwhile).  A file whose content
    is already indexed is not stored or indexed again.
    """
    if not source.is_file():
        raise IngestError(f"{source}: not a file")
    if not is_warc(source):
        raise IngestError(f"{source}: not a WARC file name (expected .warc or .warc.gz)")
    return import_stream(
        archive_dir, source, source.name, lambda: open(source, "rb"), collection, progress
    )


def import_stream(
    archive_dir: Path,
    source: Path,
    name: str,
    open_source: Callable[[], BinaryIO],
    collection: str,
    progress: ScanProgress | None = None,
) -> ImportResult:
    """:func:`import_file` for a WARC file read from a stream (a file in a WACZ):
    ``source`` names it in reports, ``name`` is its file name."""
    target_dir = archive_dir / WARC_DIR / collection / IMPORTED_DIR
    target_dir.mkdir(parents=True, exist_ok=True)
    suffix = ".warc.gz" if name.endswith(".gz") else ".warc"
    temp = target_dir / f"{TEMP_MARK}{secrets.token_hex(6)}{suffix}.part"
    try:
        with open_source() as src:
            sha = _copy_hashing(src, temp)
        capture_id = imported_capture_id(sha)
        stored = _indexed_file(archive_dir, capture_id)
        if stored is not None:
            return ImportResult(source, archive_dir / stored, capture_id, FileReport(source), True)
        records, report = read_file(temp, progress)
        report.path = source
        if not records:
            first = report.problems[0] if report.problems else (0, "no WARC records")
            raise IngestError(f"{source}: nothing could be read (offset {first[0]}: {first[1]})")
        target = _place(target_dir, name, sha)
        if not target.exists():
            fsync_file(temp)
            rename_no_replace(temp, target)  # never over an existing file
            fsync_dir(target_dir)
    finally:
        temp.unlink(missing_ok=True)
    for rec in records:  # the rows point at the stored copy (same bytes, same offsets)
        rec.path = target
    capture, rows = imported_rows(archive_dir, target, sha, records, report, collection)
    Index(archive_dir).write_capture(capture, rows, overwrite=True)
    return ImportResult(source, target, capture.capture_id, report)


def _copy_hashing(src: BinaryIO, temp: Path) -> str:
    digest = hashlib.sha256()
    with open(temp, "xb") as dst:
        while chunk := src.read(1024 * 1024):
            digest.update(chunk)
            dst.write(chunk)
    return digest.hexdigest()


def _place(target_dir: Path, name: str, sha: str) -> Path:
    """Where a file with content ``sha`` is stored: its own name, or the name with a
    hash prefix when another file already has that name; an existing file with the
    same content is reused."""
    target = target_dir / name
    if not target.exists() or file_sha256(target) == sha:
        return target
    stem = name.removesuffix(".gz").removesuffix(".warc")
    target = target_dir / f"{stem}-{sha[:12]}{name[len(stem) :]}"
    if target.exists() and file_sha256(target) != sha:
        raise IngestError(f"{target} exists with other content")
    return target


def _indexed_file(archive_dir: Path, capture_id: str) -> str | None:
    """The stored file of an already indexed import, if any."""
    from archiver.index import query

    found = query.run(
        archive_dir, "select warc_files from captures where capture_id = ?", [capture_id]
    ).rows
    if not found or not found[0]["warc_files"]:
        return None
    first: str = found[0]["warc_files"][0]
    return first


def import_files(
    archive_dir: Path,
    sources: Iterable[Path],
    collection: str,
    progress: ScanProgress | None = None,
) -> Iterator[ImportResult | tuple[Path, str]]:
    """Import each file; a file that cannot be imported yields (path, reason)."""
    for source in sources:
        try:
            yield import_file(archive_dir, source, collection, progress)
        except IngestError as exc:
            yield (source, str(exc))
        except OSError as exc:
            yield (source, f"{source}: {exc.strerror or exc}")
