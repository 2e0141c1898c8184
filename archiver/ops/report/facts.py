"""The facts of one capture, gathered for its report, as one JSON document.

Every fact comes from where ``archiver verify`` checks it: the index rows (``captures``
and ``records``), the payloads themselves (written out of the WARC files by
:mod:`archiver.ops.extract`, which checks every digest on the way), the verification
made now, the custody log.  The capture's metadata record adds what the index does not
hold: how each video was found and on which page, and yt-dlp's account of a platform
video.  The HTML and the PDF show this document and nothing else, so what a reader
sees and what a program compares are the same facts (the document itself is in the
report, in a ``<pre id="archiver-facts">``).

A video is listed once per URL the page referenced (the metadata record's ``videos``),
its redirects followed (:mod:`.redirects`: a referenced URL that redirected is listed
with the media it led to, and each hop), then once per other URL the index gives the
role ``video`` (media a browser played; in a file imported from another tool, whose
records have no role, each ``video/`` response, as the index counts ``video_count``):
each with every record holding it, its size and SHA-256 as indexed, its duration as
ffmpeg reads the stored file's header (:mod:`.media`), and how it was found.  An HLS or
DASH stream is listed with its manifest, the segments of the track ``archiver extract
--segments`` writes (each with its size and SHA-256), the SHA-256 of their
concatenation, and the duration of that concatenation.  A platform video (yt-dlp) is
listed with the file yt-dlp merged (a ``conversion`` record) or the media it fetched,
and the duration and title the platform stated.
"""

from __future__ import annotations

import contextlib
import errno
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from datetime import datetime
from pathlib import Path
from typing import Any

from archiver import __version__
from archiver.core.errors import UsageProblem
from archiver.core.layout import CAPTURE_ID
from archiver.core.model import isoformat
from archiver.core.urls import own_record_uri
from archiver.index.query import jsonable, run
from archiver.index.store import RecordRow
from archiver.ops import extract as extraction
from archiver.ops.report import media
from archiver.ops.report.redirects import Redirects, inside, is_redirect
from archiver.ops.verify import MANIFEST_LIMIT, CaptureResult, FileResult, Report, read_regular
from archiver.trust import custody
from archiver.trust.manifest import Manifest, ManifestError, public_key_name
from archiver.warc.reader import Unreadable, read_stored

SCHEMA = "archiver/report-facts/1"
IMPORT_ID = re.compile(r"^import-[0-9a-f]{16}$")
HOLDING = ("response", "revisit", "resource", "conversion")  # records that hold a payload
_ERRNO = re.compile(r"\[Errno (\d+)\] ([^:\]]+)(?:: (?:'[^']*'|\"[^\"]*\"))?")
_RECORD_COLUMNS = tuple(f.name for f in fields(RecordRow))


def plain(text: object) -> str:
    """A reason for people: Python's ``[Errno 2] No such file or directory: '/…'`` said
    as "missing", any other ``[Errno N] …: '/…'`` as its message alone."""

    def said(found: re.Match[str]) -> str:
        return "missing" if int(found.group(1)) == errno.ENOENT else found.group(2)

    return _ERRNO.sub(said, str(text))


def check_id(capture_id: str) -> None:
    """A UsageProblem unless ``capture_id`` has the form of one (ours, or ``import-``)."""
    if not (CAPTURE_ID.match(capture_id) or IMPORT_ID.match(capture_id)):
        raise UsageProblem(f"{capture_id!r} is not a capture id", hint="CAPTURE")


def capture_row(archive_dir: Path, capture_id: str) -> dict[str, Any]:
    """The capture's row of the index; a UsageProblem naming it when there is none."""
    found = run(archive_dir, "select * from captures where capture_id = ?", [capture_id])
    if not found.rows:
        raise UsageProblem(
            f"no capture {capture_id} in the index of {archive_dir} (`archiver list` "
            "shows the captures it holds)",
            hint="CAPTURE",
        )
    return found.rows[0]


def record_rows(archive_dir: Path, capture_id: str) -> list[RecordRow]:
    """The capture's rows of the ``records`` table, in file order."""
    found = run(
        archive_dir,
        "select * from records where capture_id = ? order by warc_filename, warc_offset",
        [capture_id],
    )
    out = []
    for row in found.rows:
        values: list[Any] = [row.get(name) for name in _RECORD_COLUMNS]
        out.append(RecordRow(*values))
    return out


def record_json(row: RecordRow) -> dict[str, Any]:
    """A record as the report states it: where it is, and what it holds."""
    return {
        "record_id": row.record_id,
        "warc_type": row.warc_type,
        "role": row.role,
        "url": row.url,
        "http_status": row.http_status,
        "content_type": row.content_type,
        "size": row.payload_length,
        "sha256": row.payload_sha256,
        "truncated": row.truncated,
        "problem": row.problem,
        "fetched_at": jsonable(row.fetched_at),
        "warc_filename": row.warc_filename,
        "warc_offset": row.warc_offset,
        "warc_length": row.warc_length,
        "record_sha256": row.record_sha256,
    }


@dataclass
class Gathered:
    """The facts (JSON), and the screenshot's PNG, which the HTML embeds."""

    facts: dict[str, Any]
    screenshot: bytes | None = None
    notes: list[str] = field(default_factory=list)


class _Work:
    """Where payloads are written out to be read (one at a time, each removed after)."""

    def __init__(self, archive_dir: Path, folder: Path, tool: tuple[str, str] | None) -> None:
        self.archive_dir = archive_dir
        self.folder = folder
        self.tool = tool
        self.count = 0

    def path(self) -> Path:
        self.count += 1
        return self.folder / f"payload-{self.count}"

    def payload(self, row: RecordRow) -> bytes:
        """A small payload (a screenshot), verified on the way out."""
        out = self.path()
        try:
            extraction.extract_payload(self.archive_dir, row, out)
            return out.read_bytes()
        finally:
            out.unlink(missing_ok=True)

    def probe(self, row: RecordRow) -> dict[str, Any]:
        """A video's payload written out (verified) and read by ffmpeg: its duration."""
        out = self.path()
        try:
            try:
                extraction.extract_payload(self.archive_dir, row, out)
            except extraction.ExtractError as exc:
                return _duration(
                    None, f"not read: it could not be written out of the archive ({plain(exc)})"
                )
            return _probed(media.probe(out, self.tool))
        finally:
            out.unlink(missing_ok=True)

    def stream(self, row: RecordRow) -> tuple[dict[str, Any] | None, dict[str, Any]]:
        """A stream's track as ``archiver extract --segments`` writes it, and its duration."""
        out = self.path()
        try:
            try:
                written = extraction.extract_stream(self.archive_dir, row, out)
            except extraction.ExtractError as exc:
                return None, _duration(None, f"not read: {plain(exc)}")
            track = {
                "track": written.track,
                "segments": [
                    {
                        "record_id": p.record_id,
                        "url": p.url,
                        "size": p.payload_length,
                        "sha256": p.payload_sha256,
                        "http_status": p.http_status,
                    }
                    for p in written.parts
                ],
                "bytes": written.bytes_written,
                "sha256": written.sha256,
                "notes": list(written.notes),
            }
            return track, _probed(media.probe(out, self.tool))
        finally:
            out.unlink(missing_ok=True)


def _duration(seconds: float | None, how: str, picture: str | None = None) -> dict[str, Any]:
    return {"duration_seconds": seconds, "duration_source": how, "picture": picture}


def _probed(found: media.Probe) -> dict[str, Any]:
    if found.duration is not None:
        how = f"{found.tool} read the header of the stored file"
        return _duration(round(found.duration, 3), how, found.media)
    return _duration(None, found.note or "unknown", found.media)


def gather(
    archive_dir: Path,
    row: dict[str, Any],
    verification: Report,
    *,
    made_at: datetime,
    made_by: str | None,
    host: str,
    work_dir: Path,
    tsa_roots_given: bool,
    not_logged: str | None = None,
) -> Gathered:
    """The facts of the capture whose index row is ``row``, with ``verification`` (made
    for this report at ``made_at``); payloads are written out under ``work_dir``.
    ``not_logged``: why the making of the report cannot be in the custody log (a
    read-only archive), or None."""
    capture_id = str(row["capture_id"])
    rows = record_rows(archive_dir, capture_id)
    redirects = Redirects(archive_dir, rows)
    work = _Work(archive_dir, work_dir, media.ffmpeg_tool())
    gathered = Gathered({})
    metadata = _metadata(archive_dir, rows, gathered.notes)
    ours = _result_of(verification, capture_id)
    imported = _imported_of(verification, capture_id)
    facts: dict[str, Any] = {
        "schema": SCHEMA,
        "report": {
            "made_at": isoformat(made_at),
            "made_by": made_by,
            "host": host,
            "tool": {"name": "archiver", "version": __version__},
            "ffmpeg": work.tool[1] if work.tool else None,
            "not_logged": not_logged,
        },
        "capture": jsonable(row),
        "redirects": _page_chain(row, redirects),
        "metadata_record": metadata.get("record_id") if metadata else None,
        "browser": _browser(metadata),
        "screenshot": None,
        "videos": _videos(rows, metadata, work, redirects, imported=bool(row.get("imported"))),
        "signature": _signature(archive_dir, row, ours),
        "timestamps": [t.to_json() for t in ours.timestamps] if ours else [],
        "trusted_time": isoformat(ours.trusted_time) if ours and ours.trusted_time else None,
        "custody": _custody(verification, capture_id),
        "verification": _verification(verification, ours, imported, made_at, tsa_roots_given),
    }
    shot = _screenshot(rows, work, gathered.notes)
    if shot is not None:
        facts["screenshot"], gathered.screenshot = shot
    gathered.facts = facts
    return gathered


BROWSER_FACTS = (
    "name",
    "product",
    "revision",
    "executable",
    "user_agent",
    "viewport",
    "device_scale",
    "headless",
    "interception_ca",
)


def _browser(metadata: dict[str, Any]) -> dict[str, Any] | None:
    """How a browser capture's browser showed the page (its flags, requests and
    behaviours stay in the metadata record: too long for a report)."""
    shown = metadata.get("browser")
    if not isinstance(shown, dict):
        return None
    return {k: shown[k] for k in BROWSER_FACTS if k in shown}


def _result_of(report: Report, capture_id: str) -> CaptureResult | None:
    return next((c for c in report.captures if c.capture_id == capture_id), None)


def _imported_of(report: Report, capture_id: str) -> FileResult | None:
    return next((f for f in report.unsigned if f.imported_as == capture_id), None)


_inside = inside


def _page_chain(row: dict[str, Any], redirects: Redirects) -> list[dict[str, Any]]:
    """The page's own redirects: from the URL asked for, hop by hop, to the final URL
    (each with where it led); the redirects of what the page loaded are not in it."""
    seed, final = row.get("seed_url"), row.get("final_url")
    if not isinstance(seed, str):
        return []
    return redirects.chain(seed, lambda url: url == final)


def _json_block(archive_dir: Path, row: RecordRow) -> Any:
    """The JSON a metadata record of ours holds, read and checked against the index
    (the SHA-256 of its stored bytes); ValueError saying why it cannot be used."""
    path = _inside(archive_dir, row.warc_filename)
    if path is None:
        raise ValueError(f"its file {row.warc_filename!r} is outside the archive")
    try:
        stored = read_stored(path, row.warc_offset, row.warc_length, keep_block=True)
    except (OSError, Unreadable) as exc:
        raise ValueError(f"it cannot be read ({plain(exc)})") from exc
    if stored.record_sha256 != row.record_sha256 or stored.problems:
        raise ValueError("its stored bytes are not those the index and manifest give")
    if stored.block is None:
        raise ValueError("it is too large to read")
    return json.loads(stored.block)


def _metadata(archive_dir: Path, rows: list[RecordRow], notes: list[str]) -> dict[str, Any]:
    """The capture's metadata record (how each video was found), or {} (imported files
    have none; a damaged one is noted, and the index alone speaks)."""
    found = [r for r in rows if r.role == "metadata" and r.warc_type == "metadata"]
    if not found:
        return {}
    try:
        doc = _json_block(archive_dir, found[-1])
    except ValueError as exc:
        notes.append(f"the capture's metadata record {found[-1].record_id} is not used: {exc}")
        return {}
    if not isinstance(doc, dict):
        return {}
    doc["record_id"] = found[-1].record_id
    return doc


def _screenshot(
    rows: list[RecordRow], work: _Work, notes: list[str]
) -> tuple[dict[str, Any], bytes | None] | None:
    """The screenshot of the browser's window (``urn:view:``), if the capture has one."""
    shots = [
        r
        for r in rows
        if r.role == "screenshot"
        and r.warc_type == "resource"
        and (r.url or "").startswith("urn:view:")
    ]
    if not shots:
        return None
    row = shots[0]
    fact = record_json(row)
    try:
        png = work.payload(row)
    except extraction.ExtractError as exc:
        fact["error"] = f"not shown: it could not be written out of the archive ({plain(exc)})"
        notes.append(fact["error"])
        return fact, None
    size = media.png_size(png)
    fact["width"], fact["height"] = size if size else (None, None)
    if size is None:
        fact["error"] = "not shown: the record does not hold a PNG"
        return fact, None
    return fact, png


def _holding(rows: Iterable[RecordRow]) -> list[RecordRow]:
    return [r for r in rows if r.warc_type in HOLDING]


def _whole(records: list[RecordRow]) -> RecordRow | None:
    """The record holding the whole file: the last complete answer (HTTP 200, a revisit
    of one, or a resource or conversion record of ours), not a part (206) nor a
    truncated one.  (A revisit's row has no status: its original's is a 200, since
    only whole payloads are deduplicated.)"""
    whole = [
        r
        for r in records
        if r.truncated is None
        and (r.http_status == 200 or r.warc_type in ("revisit", "resource", "conversion"))
    ]
    return whole[-1] if whole else None


def _videos(
    rows: list[RecordRow],
    metadata: dict[str, Any],
    work: _Work,
    redirects: Redirects,
    *,
    imported: bool,
) -> list[dict[str, Any]]:
    """Every video of the capture; see the module's docstring."""
    holding = _holding(rows)
    by_url: dict[str, list[RecordRow]] = {}
    for r in holding:
        if r.url is not None and not is_redirect(r):
            by_url.setdefault(r.url, []).append(r)

    def reached(url: str) -> tuple[list[RecordRow], list[dict[str, Any]]]:
        """The records of what ``url`` led to (its redirects followed), and the hops."""
        hops = redirects.chain(url, lambda at: at in by_url)
        end = hops[-1]["location"] if hops else url
        return list(by_url.get(end or "", [])), hops

    listed = metadata.get("videos") if isinstance(metadata.get("videos"), list) else []
    out: list[dict[str, Any]] = []
    covered: set[str] = set()
    for entry in listed or []:
        if not isinstance(entry, dict) or not isinstance(entry.get("url"), str):
            continue
        url, role = entry["url"], entry.get("role")
        found = {
            "url": url,
            "kind": "platform"
            if role == "platform"
            else "stream"
            if role == "video-manifest"
            else "file",
            "found_via": entry.get("via"),
            "found_on": entry.get("found_on"),
            "error": entry.get("error"),
            "redirects": [],
        }
        if role == "platform":
            found.update(_platform(url, rows, work, covered))
        else:
            records, found["redirects"] = reached(url)
            covered.update(r.record_id for r in records)
            if role == "video-manifest":
                found.update(_stream(records, work, covered))
            else:
                found.update(_file(records, work))
        out.append(found)
    others: dict[str, list[RecordRow]] = {}
    for r in holding:  # media the index holds that the page did not reference itself
        if r.record_id not in covered and r.url is not None and _a_video(r, imported):
            others.setdefault(r.url, []).append(r)
    for url, records in others.items():
        first = records[0]
        found = {
            "url": url,
            "kind": "file",
            "found_via": first.discovered_via,
            "found_on": first.discovered_from,
            "error": None,
            "redirects": [],
        }
        found.update(_file(records, work))
        out.append(found)
    return out


def _a_video(row: RecordRow, imported: bool) -> bool:
    """A video the index holds: media a browser played (role ``video``), or in a file
    imported from another tool (whose records have no role) a response of a ``video/``
    type: the rule by which the index counts an imported file's ``video_count``."""
    if imported:
        return row.warc_type == "response" and (row.content_type or "").startswith("video/")
    return row.role == "video"


def _file(records: list[RecordRow], work: _Work) -> dict[str, Any]:
    whole = _whole(records)
    if whole is None:
        why = "not read: no record holds the whole file" if records else "not captured"
        probed = _duration(None, why)
    else:
        probed = work.probe(whole)
    size = whole.payload_length if whole else None
    stored_in = None
    if whole is not None and whole.warc_type == "revisit":  # an identical payload, kept once
        original = _original(work.archive_dir, whole)
        if original is not None:
            size, stored_in = (
                original.payload_length,
                {
                    "record_id": original.record_id,
                    "capture_id": original.capture_id,
                },
            )
    return {
        "records": [record_json(r) for r in records],
        "size": size,
        "sha256": whole.payload_sha256 if whole else None,
        "record_id": whole.record_id if whole else None,
        "stored_in": stored_in,
        "stream": None,
        "platform": None,
        **probed,
    }


def _original(archive_dir: Path, revisit: RecordRow) -> RecordRow | None:
    """The record holding the payload a revisit stands for (same payload digest)."""
    if not revisit.refers_to:
        return None
    found = run(archive_dir, "select * from records where record_id = ?", [revisit.refers_to])
    for row in found.rows:
        values: list[Any] = [row.get(name) for name in _RECORD_COLUMNS]
        original = RecordRow(*values)
        if original.warc_type != "revisit" and original.payload_sha256 == revisit.payload_sha256:
            return original
    return None


def _stream(records: list[RecordRow], work: _Work, covered: set[str]) -> dict[str, Any]:
    manifest = _whole(records)
    if manifest is None:
        why = "not read: the manifest was not captured whole"
        track, probed = None, _duration(None, why if records else "not captured")
    else:
        track, probed = work.stream(manifest)
    if track is not None:
        covered.update(s["record_id"] for s in track["segments"])
    return {
        "records": [record_json(r) for r in records],
        "size": manifest.payload_length if manifest else None,
        "sha256": manifest.payload_sha256 if manifest else None,
        "record_id": manifest.record_id if manifest else None,
        "stream": track,
        "platform": None,
        **probed,
    }


def _platform(url: str, rows: list[RecordRow], work: _Work, covered: set[str]) -> dict[str, Any]:
    """A platform video: yt-dlp's account (media-info) and the file it made or fetched."""
    info: dict[str, Any] = {}
    accounts = [
        r for r in rows if r.role == "media-info" and r.url == own_record_uri("media-info", url)
    ]
    if accounts:
        try:
            doc = _json_block(work.archive_dir, accounts[-1])
        except ValueError as exc:
            info["problem"] = (
                f"yt-dlp's account (record {accounts[-1].record_id}) is not used: {exc}"
            )
        else:
            stated = doc.get("info") if isinstance(doc, dict) else None
            stated = stated if isinstance(stated, dict) else {}
            info.update(
                record_id=accounts[-1].record_id,
                extractor=doc.get("extractor") if isinstance(doc, dict) else None,
                title=stated.get("title"),
                stated_duration=stated.get("duration"),
                uploader=stated.get("uploader"),
                webpage_url=stated.get("webpage_url"),
            )
    merged = [
        r
        for r in rows
        if r.warc_type == "conversion" and r.url == own_record_uri("conversion", url)
    ]
    records = merged or [
        r
        for r in _holding(rows)
        if r.role == "platform"
        and r.discovered_from == url
        and (r.content_type or "").startswith(("video/", "audio/"))
    ]
    covered.update(r.record_id for r in records)
    found = _file(records, work)
    found["platform"] = info
    if found["duration_seconds"] is None and isinstance(info.get("stated_duration"), int | float):
        found["duration_source"] += "; the platform states " + media.seconds_text(
            float(info["stated_duration"])
        )
    return found


def _signature(
    archive_dir: Path, row: dict[str, Any], ours: CaptureResult | None
) -> dict[str, Any] | None:
    """Who signed, with which key, and the manifest signed; None for an imported file."""
    if row.get("imported"):
        return None
    fingerprint = row.get("key_fingerprint")
    manifest = ours.manifest if ours else None
    signed_at = None
    if manifest is not None:
        path = _inside(archive_dir, manifest)
        with contextlib.suppress(OSError, ManifestError, ValueError):
            if path is not None:
                signed_at = isoformat(
                    Manifest.from_bytes(read_regular(path, MANIFEST_LIMIT)).signed_at
                )
    return {
        "key_fingerprint": fingerprint,
        "public_key": public_key_name(fingerprint) if fingerprint else None,
        "manifest": manifest,
        "signature_file": f"{manifest}.sig" if manifest else None,
        "manifest_sha256": row.get("manifest_sha256"),
        "signed_at": signed_at,
        "signature_holds": ours.signature_holds if ours else False,
        "verified_key": ours.key_fingerprint if ours else None,
        "trusted": ours.trusted if ours else None,
    }


def _custody(report: Report, capture_id: str) -> dict[str, Any]:
    """The custody log's events about the capture, each with whether its signature holds."""
    log = report.custody
    if log is None:
        return {"log": None, "exists": False, "ok": None, "head": None, "events": [],
                "problems": [], "notes": []}  # fmt: skip
    events = []
    for entry in log.entries:
        event = entry.event
        if event is None or capture_id not in event.captures:
            continue
        events.append(
            {
                "seq": event.seq,
                "time": isoformat(event.time),
                "action": event.action,
                "operator": event.operator,
                "host": event.host,
                "tool": event.tool,
                "result": event.result,
                "detail": event.detail,
                "key_fingerprint": event.key_fingerprint,
                "signed": entry.signed,
                "sha256": custody.entry_hash(entry),
                "files": [{"path": f.path, "sha256": f.sha256} for f in event.files],
            }
        )
    return {
        "log": log.path,
        "exists": log.exists,
        "ok": log.ok,
        "head": log.head,
        "events": events,
        "problems": list(log.problems),
        "notes": list(log.notes),
    }


def _verification(
    report: Report,
    ours: CaptureResult | None,
    imported: FileResult | None,
    at: datetime,
    tsa_roots_given: bool,
) -> dict[str, Any]:
    what: dict[str, Any] = {
        "at": isoformat(at),
        "ok": report.ok,
        "problems": [p.text() for p in report.problems],
        "trusted_keys_given": report.trusted_given,
        "trusted_keys": sorted(report.trusted),
        "tsa_roots_given": tsa_roots_given,
        "signers_problem": report.signers_problem,
        "checks": [],
        "files": None,
        "records": None,
        "bytes": None,
        "imported": None,
        "nothing_found": report.nothing,
        "capture_ok": None,
    }
    if ours is not None:
        what.update(
            checks=[c.to_json() for c in ours.checks],
            files=ours.files,
            records=ours.records,
            bytes=ours.bytes,
            capture_ok=ours.ok,
        )
    if imported is not None:
        what["imported"] = {**imported.to_json(), "sha256": imported.sha256}
        what["records"] = imported.records
    what["index"] = [c.to_json() for c in report.index_checks]
    return what
