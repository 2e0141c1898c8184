"""Streams: the tracks of an HLS or DASH manifest as stored in the capture, choosing one,
and writing its segments concatenated in playlist order (:func:`extract_stream`)."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from xml.etree import ElementTree as ET

import defusedxml.ElementTree as SafeET  # type: ignore[import-untyped,unused-ignore]

from archiver.index.store import RecordRow
from archiver.ops.extract.find import (
    _base_via,
    _capture_responses,
    _is_manifest,
    _is_redirect,
    _Responses,
)
from archiver.ops.extract.payload import _check_output, _notes, _read_entity, _write_parts
from archiver.ops.extract.results import ExtractionFailed, ExtractResult, SelectionError
from archiver.ops.extract.rows import _describe
from archiver.web.discover import MAX_BODY, is_dash, parse_dash, parse_hls


@dataclass(frozen=True)
class Track:
    """One track of an HLS or DASH stream and its segment URLs in playlist order."""

    kind: str  # video, audio, subtitles, other
    name: str  # DASH Representation id; HLS playlist path relative to the master, or URL
    names: tuple[str, ...]  # every name --track accepts for it
    playlist_url: str  # the manifest that lists the segments
    segments: tuple[str, ...]
    encrypted: bool = False
    captured: tuple[RecordRow | None, ...] = field(default=(), compare=False)

    @property
    def label(self) -> str:
        return f"{self.kind} {self.name}"

    @property
    def captured_count(self) -> int:
        return sum(1 for r in self.captured if r is not None)


def _relative(url: str, base: str) -> str:
    folder = base.rsplit("/", 1)[0] + "/"
    return url[len(folder) :] if url.startswith(folder) and len(url) > len(folder) else url


_HLS_KINDS = {"hls variant": "video", "hls audio": "audio", "hls subtitles": "subtitles"}


def _hls_media_track(kind: str, name: str, names: tuple[str, ...], body: bytes, url: str) -> Track:
    found = parse_hls(body, url)
    segments = tuple(f.url for f in found if f.via in ("hls map", "hls segment"))
    encrypted = any(f.via == "hls key" for f in found)
    return Track(kind, name, names, url, segments, encrypted)


def _hls_tracks(
    archive_dir: Path, row: RecordRow, body: bytes, responses: _Responses
) -> list[Track]:
    url = row.url or ""
    found = parse_hls(body, url)
    if not any(f.role == "video-manifest" for f in found):  # a media playlist
        own = _HLS_KINDS.get(_base_via(row), "video")
        return [_hls_media_track(own, url, (url,), body, url)]
    tracks = []
    for item in found:
        kind = _HLS_KINDS.get(item.via)
        if kind is None:
            continue
        name = _relative(item.url, url)
        names = (name, item.url)
        playlist = responses.find(item.url)
        if playlist is None or _is_redirect(playlist) or playlist.url is None:
            tracks.append(Track(kind, name, names, item.url, ()))
            continue
        media = _read_entity(archive_dir, playlist)
        tracks.append(_hls_media_track(kind, name, names, media, playlist.url))
    return tracks


_DASH_KINDS = (
    ("video", "video"),
    ("audio", "audio"),
    ("text", "subtitles"),
    ("application/ttml", "subtitles"),
)


def _local(tag: object) -> str:
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


def _bandwidth(el: ET.Element) -> int:
    try:
        return int((el.get("bandwidth") or "0").strip())
    except ValueError:
        return 0


def _dash_kind(aset: ET.Element) -> str:
    reps = [c for c in aset if _local(c.tag) == "Representation"]
    hints = [aset.get("contentType"), aset.get("mimeType")] + [r.get("mimeType") for r in reps]
    for hint in hints:
        value = (hint or "").strip().lower()
        for prefix, kind in _DASH_KINDS:
            if value.startswith(prefix):
                return kind
    return "other"


def _dash_tracks(body: bytes, url: str) -> list[Track]:
    """One track per adaptation set (by id, else position, across periods)."""
    try:
        root = SafeET.fromstring(body[:MAX_BODY])
    except Exception as exc:  # invalid XML, entity bombs
        raise ExtractionFailed(f"the DASH manifest {url} does not parse: {exc}") from exc

    def keyed(tree: ET.Element) -> list[tuple[ET.Element, ET.Element, str]]:
        out = []
        for period in (p for p in tree if _local(p.tag) == "Period"):
            asets = [a for a in period if _local(a.tag) == "AdaptationSet"]
            for i, aset in enumerate(asets):
                out.append((period, aset, aset.get("id") or f"#{i}"))
        return out

    tracks: list[Track] = []
    seen: set[str] = set()
    for _, aset, key in keyed(root):
        if key in seen:
            continue
        seen.add(key)
        reps = [c for c in aset if _local(c.tag) == "Representation"]
        if not reps:
            continue
        best = max(reps, key=_bandwidth)
        rep_id = best.get("id") or key
        only = copy.deepcopy(root)
        for period, other, other_key in keyed(only):
            if other_key != key:
                period.remove(other)
        found = parse_dash(ET.tostring(only), url)
        segments = tuple(f.url for f in found if f.via in ("dash init", "dash segment"))
        names = tuple(dict.fromkeys(n for n in (rep_id, aset.get("id")) if n))
        tracks.append(Track(_dash_kind(aset), rep_id, names, url, segments))
    return tracks


def stream_tracks(archive_dir: Path, manifest: RecordRow) -> list[Track]:
    """The tracks of a manifest, each with the capture's record of every segment (or None)."""
    if manifest.url is None or not _is_manifest(manifest):
        raise SelectionError(f"{_describe(manifest)} is not an HLS playlist or DASH manifest")
    if _is_redirect(manifest):
        raise SelectionError(f"{_describe(manifest)} is a redirect, not the manifest itself")
    responses = _capture_responses(archive_dir, manifest.capture_id)
    body = _read_entity(archive_dir, manifest)
    if is_dash(manifest.url, manifest.content_type):
        tracks = _dash_tracks(body, manifest.url)
    else:
        tracks = _hls_tracks(archive_dir, manifest, body, responses)
    return [
        Track(
            t.kind,
            t.name,
            t.names,
            t.playlist_url,
            t.segments,
            t.encrypted,
            tuple(responses.find(u) for u in t.segments),
        )
        for t in tracks
    ]


def _choose_track(manifest: RecordRow, tracks: list[Track], track: str | None) -> Track:
    what = f"the stream {manifest.url}"

    def listing(items: list[Track]) -> str:
        return ", ".join(
            f"{t.label} ({t.captured_count}/{len(t.segments)} segments captured)" for t in items
        )

    if not tracks:
        raise ExtractionFailed(f"{what} lists no segments")
    if track is not None:
        wanted = track.strip().lower()
        if wanted == "text":
            wanted = "subtitles"
        matches = [t for t in tracks if wanted == t.kind or wanted in (n.lower() for n in t.names)]
        if not matches:
            raise SelectionError(f"{what} has no track {track!r}; it has {listing(tracks)}")
        captured = [t for t in matches if t.captured_count]
        if len(captured) > 1:
            raise SelectionError(
                f"track {track!r} of {what} is ambiguous: {listing(captured)}; "
                "give a track name instead"
            )
        if not captured:
            if len(matches) > 1:
                raise SelectionError(f"no segments of track {track!r} of {what} were captured")
            raise SelectionError(
                f"no segments of track {matches[0].label} of {what} were captured; "
                f"captured tracks: {listing([t for t in tracks if t.captured_count]) or 'none'}"
            )
        return captured[0]
    captured = [t for t in tracks if t.captured_count]
    if not captured:
        raise ExtractionFailed(f"no segments of {what} were captured ({listing(tracks)})")
    videos = [t for t in captured if t.kind == "video"]
    if len(videos) == 1:
        return videos[0]
    if len(captured) == 1:
        return captured[0]
    raise SelectionError(
        f"{what} has {len(captured)} captured tracks; choose one with --track: {listing(captured)}"
    )


def extract_stream(
    archive_dir: Path,
    manifest: RecordRow,
    out_path: Path,
    *,
    track: str | None = None,
    raw: bool = False,
    overwrite: bool = False,
) -> ExtractResult:
    """Write the segments of one track of an HLS/DASH stream, concatenated in playlist order."""
    _check_output(archive_dir, out_path, overwrite)
    tracks = stream_tracks(archive_dir, manifest)
    chosen = _choose_track(manifest, tracks, track)
    missing = [u for u, r in zip(chosen.segments, chosen.captured, strict=True) if r is None]
    if missing:
        shown = ", ".join(missing[:3]) + (", …" if len(missing) > 3 else "")
        raise ExtractionFailed(
            f"{len(missing)} of {len(chosen.segments)} segments of {chosen.label} of "
            f"{manifest.url} were not captured: {shown}"
        )
    rows = [r for r in chosen.captured if r is not None]
    for row in rows:
        if row.http_status is not None and row.http_status != 200:
            raise ExtractionFailed(
                f"segment {row.url} of {chosen.label} answered HTTP {row.http_status} "
                f"in the capture (record {row.record_id})"
            )
    size, digest, parts = _write_parts(archive_dir, rows, out_path, raw=raw, overwrite=overwrite)
    notes = _notes(rows)
    if chosen.encrypted:
        notes.append("the segments are encrypted (#EXT-X-KEY); they are written as stored")
    return ExtractResult(
        path=out_path,
        bytes_written=size,
        sha256=digest,
        record_id=manifest.record_id,
        capture_id=manifest.capture_id,
        url=manifest.url,
        http_status=manifest.http_status,
        content_type=manifest.content_type,
        parts=tuple(parts),
        track=chosen.label,
        notes=tuple(notes),
    )
