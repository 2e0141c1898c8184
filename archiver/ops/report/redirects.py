"""Where a capture's redirects led, read from the redirects themselves.

Each redirect's target is the ``Location`` header of its stored response record (read
out of the WARC file, and used only when the record's bytes are those the index and the
signed manifest give), resolved against the redirect's URL as the capture resolved it.
A chain is followed hop by hop from a URL: the page's own, from the URL asked for to
the final URL; a video's, from the URL the page referenced to the media it led to.
Nothing is taken from the text of ``discovered_via`` (a browser capture does not write
the "(redirected from …)" there), and the redirects of other URLs (a page's images, its
videos) are never part of the page's chain.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any
from urllib.parse import quote, urljoin

from archiver.core.urls import URL_SAFE, InvalidURL, check_url
from archiver.index.store import RecordRow
from archiver.warc.reader import Unreadable, read_stored

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
MAX_HOPS = 20  # as many as a capture follows


def inside(archive_dir: Path, relative: str) -> Path | None:
    """``relative`` (a path the index gives) inside the archive, or None."""
    path = archive_dir / relative
    with contextlib.suppress(OSError, ValueError):
        if path.resolve().is_relative_to(archive_dir.resolve()):
            return path
    return None


def is_redirect(row: RecordRow) -> bool:
    """A redirect's response: the role the capture gave it, or (in a file imported from
    another tool, whose records have no role) a redirecting status."""
    if row.warc_type != "response":
        return False
    return row.role == "redirect" or (row.role is None and row.http_status in REDIRECT_STATUSES)


def resolve(url: str, location: str) -> str:
    """A Location header made absolute, as the capture made it: read as UTF-8 (other
    bytes percent-encoded as sent), joined to ``url``, then in the form URLs are stored
    in (:func:`~archiver.core.urls.check_url`); as joined when it is no such URL."""
    raw = location.strip().encode("latin-1", "replace")
    try:
        value = raw.decode("utf-8")
    except UnicodeDecodeError:
        value = quote(raw, safe=URL_SAFE)
    try:
        joined = urljoin(url, value)
    except ValueError:
        return value
    try:
        return check_url(joined)
    except InvalidURL:
        return joined


class Redirects:
    """The redirects of one capture (its ``records`` rows), each read when first needed."""

    def __init__(self, archive_dir: Path, rows: Iterable[RecordRow]) -> None:
        self.archive_dir = archive_dir
        self.by_url: dict[str, list[RecordRow]] = {}
        for row in rows:
            if row.url is not None and is_redirect(row):
                self.by_url.setdefault(row.url, []).append(row)
        self._led: dict[str, str | None] = {}

    def location(self, row: RecordRow) -> str | None:
        """Where the redirect ``row`` led (absolute), or None when its stored record
        cannot be read, is not the one the index gives, or has no Location."""
        if row.record_id in self._led:
            return self._led[row.record_id]
        target = None
        path = inside(self.archive_dir, row.warc_filename)
        if path is not None and row.url is not None:
            try:
                stored = read_stored(path, row.warc_offset, row.warc_length, block_digest=False)
            except (OSError, Unreadable):
                stored = None
            if stored is not None and stored.record_sha256 == row.record_sha256:
                location = stored.http_header("Location")
                if location and location.strip():
                    target = resolve(row.url, location)
        self._led[row.record_id] = target
        return target

    def hop(self, row: RecordRow) -> dict[str, Any]:
        """One redirect as the report states it: its URL, status, record, and where it led."""
        return {
            "url": row.url,
            "http_status": row.http_status,
            "record_id": row.record_id,
            "location": self.location(row),
        }

    def chain(self, url: str, arrived: Callable[[str], bool]) -> list[dict[str, Any]]:
        """The redirects followed from ``url`` until a URL where ``arrived`` (or one
        that does not redirect, or a loop, or :data:`MAX_HOPS`), each with where it led.
        A URL redirected more than once (the browser and archiver both asked for it)
        is followed by the first of its redirects whose target can be read."""
        hops: list[dict[str, Any]] = []
        seen, current = {url}, url
        while len(hops) < MAX_HOPS and not arrived(current):
            found = self.by_url.get(current)
            if not found:
                break
            row = next((r for r in found if self.location(r) is not None), found[0])
            hops.append(self.hop(row))
            target = hops[-1]["location"]
            if target is None or target in seen:
                break
            seen.add(target)
            current = target
        return hops
