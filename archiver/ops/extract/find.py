"""Finding what to extract: a record by capture id, record id and URL (redirects followed),
or a capture's HLS/DASH manifest."""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import quote, urljoin

from archiver.core.urls import URL_SAFE, InvalidURL, check_url
from archiver.index.query import QueryError, run
from archiver.index.store import RecordRow
from archiver.ops.extract.payload import _copy_record
from archiver.ops.extract.results import ExtractionFailed, SelectionError
from archiver.ops.extract.rows import _describe, _rows
from archiver.warc.reader import header_value
from archiver.warc.rules import bare_target_uri
from archiver.web.discover import is_dash, is_hls

MAX_REDIRECTS = 20
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
PAYLOAD_RECORD_TYPES = ("response", "resource", "revisit")

_REDIRECTED = re.compile(r" \(redirected from (.+)\)$")
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def _record_id_forms(ident: str) -> list[str]:
    """``ident`` as a WARC-Record-ID: as given, in angle brackets, with urn:uuid:."""
    value = ident.strip()
    forms = [value]
    bare = value.removeprefix("<").removesuffix(">")
    forms.append(f"<{bare}>")
    if _UUID.fullmatch(bare):
        forms.append(f"<urn:uuid:{bare}>")
    return [f.lower() for f in dict.fromkeys(forms)]


def _is_redirect(row: RecordRow) -> bool:
    if row.role is not None:
        return row.role == "redirect"
    return row.http_status in REDIRECT_STATUSES


def _base_via(row: RecordRow) -> str:
    return _REDIRECTED.sub("", row.discovered_via or "")


class _Responses:
    """A capture's response records by URL; redirects are followed by their Location."""

    def __init__(self, archive_dir: Path, rows: Iterable[RecordRow]) -> None:
        self.archive_dir = archive_dir
        self.rows = list(rows)
        self.by_url: dict[str, list[RecordRow]] = {}
        for row in self.rows:
            if row.url is not None:
                self.by_url.setdefault(row.url, []).append(row)

    def find(self, url: str) -> RecordRow | None:
        """:meth:`get` for ``url`` as given, else as the capture would have written it."""
        row = self.get(url)
        if row is None:
            normal = _normalised(url)
            if normal is not None and normal != url:
                row = self.get(normal)
        return row

    def get(self, url: str) -> RecordRow | None:
        """The response for ``url`` after redirects: a 200 preferred, else the last one.

        A redirect whose target is not in the capture is returned itself.
        """
        seen = {url}
        row = self._one(url)
        while row is not None and _is_redirect(row) and len(seen) <= MAX_REDIRECTS:
            target = self._location(row)
            if target is None or target in seen or target not in self.by_url:
                break
            seen.add(target)
            row = self._one(target)
        return row

    def _one(self, url: str) -> RecordRow | None:
        candidates = self.by_url.get(url)
        if not candidates:
            return None
        final = [r for r in candidates if not _is_redirect(r)]
        # a revisit stands for a 200 response whose payload another record holds
        ok = [r for r in final if r.http_status == 200 or r.warc_type == "revisit"]
        return (ok or final or candidates)[-1]

    def _location(self, row: RecordRow) -> str | None:
        copied = _copy_record(self.archive_dir, row, lambda data: None, raw=True)
        location = header_value(copied.headers, "Location")
        if not location or row.url is None:
            return None
        value = location.strip()
        if not value.isascii():
            value = quote(value.encode("latin-1", "replace"), safe=URL_SAFE)
        try:
            return _normalised(urljoin(row.url, value))
        except ValueError:
            return None


def _normalised(url: str) -> str | None:
    try:
        return check_url(url)
    except InvalidURL:
        return None


def _capture_responses(archive_dir: Path, capture_id: str) -> _Responses:
    types = ", ".join(f"'{t}'" for t in PAYLOAD_RECORD_TYPES)
    rows = _rows(archive_dir, f"capture_id = ? AND warc_type IN ({types})", [capture_id])
    return _Responses(archive_dir, rows)


def _capture_exists(archive_dir: Path, capture_id: str) -> bool:
    try:
        result = run(
            archive_dir, "SELECT count(*) AS n FROM records WHERE capture_id = ?", [capture_id]
        )
    except QueryError as exc:
        raise ExtractionFailed(f"cannot read the index of {archive_dir}: {exc}") from exc
    return bool(result.rows[0]["n"])


def find_record(archive_dir: Path, ident: str, url: str | None = None) -> RecordRow:
    """The record that ``ident`` (and ``url``) select.

    ``ident`` is a capture id or a WARC-Record-ID (with or without the angle
    brackets and the ``urn:uuid:`` prefix).  For a capture id, ``url`` selects the
    response for that URL in the capture (redirects followed, the 200 preferred);
    without ``url`` it is the capture's page (the seed's final, non-redirect
    response).  Raises :class:`SelectionError` when nothing or more than one thing
    matches.
    """
    ident = ident.strip()
    if not ident:
        raise SelectionError("no capture or record id given")
    if url is not None:  # as the index holds it: without the angle brackets wget writes
        url = bare_target_uri(url)
    if _capture_exists(archive_dir, ident):
        return _record_in_capture(archive_dir, ident, url)
    forms = _record_id_forms(ident)
    marks = ", ".join("?" for _ in forms)
    rows = _rows(archive_dir, f"lower(record_id) IN ({marks})", forms)
    places = {(r.warc_filename, r.warc_offset) for r in rows}
    if not rows:
        raise SelectionError(f"no capture or record {ident!r} in the index of {archive_dir}")
    if len(places) > 1:
        captures = ", ".join(sorted({r.capture_id for r in rows}))
        raise SelectionError(
            f"record {ident!r} is indexed {len(places)} times at different places "
            f"(captures {captures}); give the capture id and --url instead"
        )
    row = rows[-1]
    if url is not None and url not in (row.url, _normalised(url)):
        raise SelectionError(
            f"{_describe(row)} is not for URL {url}; --url selects within a capture, "
            "so give a capture id with it"
        )
    return row


def _record_in_capture(archive_dir: Path, capture_id: str, url: str | None) -> RecordRow:
    responses = _capture_responses(archive_dir, capture_id)
    if url is not None:
        row = responses.find(url)
        if row is None:
            raise SelectionError(f"URL {url} is not in capture {capture_id}")
        return row
    pages = [
        r
        for r in responses.rows
        if r.role == "page" and _base_via(r) == "seed" and not _is_redirect(r)
    ]
    if not pages:
        try:
            final = run(
                archive_dir, "SELECT final_url FROM captures WHERE capture_id = ?", [capture_id]
            ).rows
        except QueryError:
            final = []
        final_url = bare_target_uri(final[0]["final_url"]) if final else None
        row = responses.get(final_url) if final_url else None
        if row is None:
            raise SelectionError(
                f"capture {capture_id} has no page response; choose a record with --url"
            )
        return row
    return pages[-1]


def find_manifest(archive_dir: Path, ident: str, url: str | None = None) -> RecordRow:
    """The HLS or DASH manifest record that ``ident`` (and ``url``) select.

    Like :func:`find_record`, except that a capture id without ``url`` selects the
    capture's stream when it holds exactly one (a manifest that no other manifest
    lists); with several, the error lists them.
    """
    ident = ident.strip()
    if url is None and ident and _capture_exists(archive_dir, ident):
        responses = _capture_responses(archive_dir, ident)
        manifest_urls = {r.url for r in responses.rows if _is_manifest(r)}
        top = [
            r
            for r in responses.rows
            if _is_manifest(r) and not _is_redirect(r) and r.discovered_from not in manifest_urls
        ]
        if not top:
            raise SelectionError(f"capture {ident} holds no HLS or DASH stream")
        if len(top) > 1:
            listing = ", ".join(str(r.url) for r in top)
            raise SelectionError(
                f"capture {ident} holds {len(top)} streams; choose one with --url: {listing}"
            )
        return top[0]
    row = find_record(archive_dir, ident, url)
    if not _is_manifest(row):
        raise SelectionError(
            f"{_describe(row)} is not an HLS playlist or DASH manifest "
            f"(content type {row.content_type or 'unknown'})"
        )
    return row


def _is_manifest(row: RecordRow) -> bool:
    return row.url is not None and (
        is_hls(row.url, row.content_type) or is_dash(row.url, row.content_type)
    )
