"""WARC files no signature covers: our captures without a manifest, interrupted
(``.open``) files, and files written by other tools (internal consistency only)."""

from __future__ import annotations

import contextlib
from pathlib import Path

from archiver.index.store import (
    CaptureRow,
    RecordRow,
)
from archiver.ops import ingest
from archiver.ops.ingest import ScanProgress
from archiver.ops.verify.reading import _shown
from archiver.ops.verify.report import (
    CaptureResult,
    FileResult,
    Problem,
)
from archiver.ops.verify.targets import (
    _CAPTURE_ID,
    _OUR_WARC,
)
from archiver.trust.manifest import MANIFEST_SUFFIX
from archiver.warc.writer import OPEN_SUFFIX


def _unsigned_capture(
    capture_id: str, files: list[Path], archive: Path, progress: ScanProgress
) -> CaptureResult:
    """Files of one of our captures that has no manifest: unsigned or incomplete."""
    result = CaptureResult(capture_id)
    result.problem(
        "unsigned or incomplete: no signed manifest "
        f"({capture_id}{MANIFEST_SUFFIX}); only internal consistency was checked"
    )
    result.files = len(files)
    for path in sorted(files):
        name = _shown(path, archive)
        records, file_report = ingest.read_file(path, progress)
        result.records += len(records)
        result.bytes += path.stat().st_size
        for offset, message in file_report.problems:
            result.problem(message, file=name, offset=offset)
    return result


def _interrupted(path: Path, archive: Path) -> CaptureResult:
    """A ``.open`` file: a capture that never finished.  Incomplete, not tampered with."""
    match = _OUR_WARC.match(path.name[: -len(OPEN_SUFFIX)])
    result = CaptureResult(match.group(1) if match else path.name, status="incomplete")
    result.files = 1
    with contextlib.suppress(OSError):
        result.bytes = path.stat().st_size
    result.problem(
        "incomplete: the capture was interrupted before it finished (the file still has its "
        "'.open' name); `archiver cleanup --apply` moves it aside",
        file=_shown(path, archive),
    )
    return result


def _verify_foreign(
    path: Path, archive: Path, progress: ScanProgress
) -> tuple[FileResult, tuple[CaptureRow, list[RecordRow]] | None]:
    """A WARC file from another tool: every record read, every declared digest checked."""
    name = _shown(path, archive)
    result = FileResult(name)
    records, file_report = ingest.read_file(path, progress)
    result.records = len(records)
    result.without_digest = sum(
        1 for r in records if not r.get("WARC-Block-Digest") and not r.get("WARC-Payload-Digest")
    )
    info = next((r for r in records if r.warc_type == "warcinfo"), None)
    claimed = ingest.warcinfo_fields(info.block if info else None).get("capture-id", "")
    result.claims = claimed if _CAPTURE_ID.match(claimed) else None
    for found, said in ((file_report.problems, result.problems), (file_report.notes, result.notes)):
        for offset, message in found:
            rec = next((r for r in records if r.offset == offset), None)
            record_id = rec.get("WARC-Record-ID") if rec else None
            if record_id and message.startswith(f"{record_id}: "):
                message = message[len(record_id) + 2 :]
            said.append(
                Problem(
                    message,
                    file=name,
                    offset=offset,
                    record_id=record_id,
                    url=rec.target_uri if rec else None,
                )
            )
    rows = None
    inside = path.resolve().is_relative_to(archive.resolve())
    if inside and path.parent.name == ingest.IMPORTED_DIR and records:
        sha = ingest.file_sha256(path)
        collection = path.parent.parent.name
        rows = ingest.imported_rows(archive, path, sha, records, file_report, collection)
        result.imported_as = rows[0].capture_id
        result.sha256 = sha
    return result, rows


def _changed_import(result: FileResult, path: Path, capture_id: str) -> None:
    """The file the index names for ``capture_id`` no longer has the content the id was
    made from: changed since it was imported (or the index names another file)."""
    try:
        now = f"sha256 {ingest.file_sha256(path)}"
    except OSError as exc:
        now = f"unreadable ({exc.strerror or exc})"
    result.problems.append(
        Problem(
            f"the index names this file as imported capture {capture_id}, made from a file "
            f"whose SHA-256 starts with {capture_id.removeprefix('import-')}; this one's is "
            f"{now}: it changed after it was imported",
            capture_id,
            result.path,
        )
    )
    result.imported_as = None  # its rows are not this content's
