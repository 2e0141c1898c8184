"""What the discover parsers find: the Found, Unfetched and PageInfo results, the
collector that deduplicates them, the shared limits, and URL resolution and typing
(``_resolve``, :func:`is_hls`, :func:`is_dash`, :func:`video_role`)."""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal
from urllib.parse import quote, urljoin, urlsplit, urlunsplit

from archiver.core.urls import URL_SAFE, ascii_netloc

Role = Literal[
    "page",
    "redirect",
    "requisite",
    "iframe",
    "video",
    "video-manifest",
    "video-segment",
    "outlink",
]

MAX_BODY = 50 * 1024 * 1024
"""Only this many leading bytes of a body are parsed."""
# The parsers read MAX_BODY as ``archiver.web.discover.MAX_BODY`` (the package), at
# call time, so that setting it there (as tests do) reaches every one of them.

MAX_SEGMENTS = 100_000
"""Most media segments made for one DASH representation, and most items :func:`parse_hls`
and :func:`parse_dash` return (a capture takes :func:`iter_hls` and :func:`iter_dash` as
far as its budget allows)."""

_HLS_TYPES = frozenset(
    {
        "application/vnd.apple.mpegurl",
        "application/x-mpegurl",
        "audio/mpegurl",
        "audio/x-mpegurl",
    }
)
_DASH_TYPES = frozenset({"application/dash+xml"})
_ASCII_WS = " \t\n\r\f"
# Printable ASCII left as is in a path or query; "%" keeps existing escapes.


@dataclass(frozen=True)
class Found:
    """One referenced URL and how it was found."""

    url: str
    role: Role
    via: str
    expand: bool = False


@dataclass(frozen=True)
class Unfetched:
    """A reference to something archiver does not fetch (another scheme than http(s)),
    listed in the capture's ``not_followed`` with the reason."""

    url: str  # shortened to SHOWN_URL characters
    via: str
    reason: str


DATA_URL_LISTED = 4096
"""A ``data:`` URL longer than this is listed as not fetched; a shorter one (an icon, a
pixel) is not: either way its bytes are in the document, which is kept as served."""
MAX_UNFETCHED = 1000
"""Most references not fetched listed for one document (one line says more were left)."""
SHOWN_URL = 200
# Schemes never listed: ``about:blank`` and the like are empty documents, not evidence.
_QUIET_SCHEMES = ("http", "https", "about")
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*):")


def _unfetched(raw: str | None, via: str) -> Unfetched | None:
    """Why a reference that is no http(s) URL is not fetched; None if not worth listing."""
    if raw is None:
        return None
    value = raw.strip(_ASCII_WS).replace("\t", "").replace("\n", "").replace("\r", "")
    match = _SCHEME.match(value)
    if match is None:
        return None
    scheme = match.group(1).lower()
    if scheme in _QUIET_SCHEMES or (scheme == "data" and len(value) <= DATA_URL_LISTED):
        return None
    if scheme == "data":
        reason = f"data: URL of {len(value)} characters: inside the document, not fetched"
    elif scheme == "file":
        reason = "file: URL (a file on the reader's own computer): not fetched"
    elif scheme == "javascript":
        reason = "javascript: URL (a script, not a resource): not fetched"
    else:
        reason = f"{scheme}: URL: not fetched (only http and https are)"
    shown = value if len(value) <= SHOWN_URL else value[: SHOWN_URL - 1] + "…"
    return Unfetched(shown, via, reason)


@dataclass(frozen=True)
class PageInfo:
    """Metadata and references of an HTML page."""

    title: str | None
    author: str | None
    published_at: str | None
    language: str | None
    charset: str
    resources: tuple[Found, ...]
    outlinks: tuple[Found, ...]
    unfetched: tuple[Unfetched, ...] = ()  # references with schemes not fetched


# When one URL is referenced several ways, the strongest role wins: a video that
# is also preloaded is a video, a stylesheet also preloaded is expanded.
_ROLE_RANK: dict[str, int] = {
    "video-manifest": 4,
    "video": 3,
    "iframe": 2,
    "redirect": 1,
}


def _strength(found: Found) -> tuple[int, bool]:
    return _ROLE_RANK.get(found.role, 0), found.expand


class _Collector:
    """Ordered, URL-deduplicated results; a later, stronger reference upgrades in place."""

    def __init__(self, unfetched: list[Unfetched] | None = None) -> None:
        self._items: list[Found] = []
        self._index: dict[str, int] = {}
        self.unfetched = unfetched  # where references not fetched are listed, if anywhere

    def add(self, found: Found) -> None:
        i = self._index.get(found.url)
        if i is None:
            self._index[found.url] = len(self._items)
            self._items.append(found)
        elif _strength(found) > _strength(self._items[i]):
            self._items[i] = found

    def add_url(
        self, base: str, raw: str | None, role: Role, via: str, expand: bool = False
    ) -> None:
        url = _resolve(base, raw)
        if url is not None:
            self.add(Found(url, role, via, expand))
        elif self.unfetched is not None:
            self._note_unfetched(raw, via)

    def _note_unfetched(self, raw: str | None, via: str) -> None:
        listed = self.unfetched
        if listed is None or len(listed) > MAX_UNFETCHED:
            return
        item = _unfetched(raw, via)
        if item is None or any(u.url == item.url for u in listed[-16:]):
            return
        if len(listed) == MAX_UNFETCHED:
            more = f"more references not fetched: not listed (at most {MAX_UNFETCHED} a page)"
            item = Unfetched("", via, more)
        listed.append(item)

    def extend(self, items: Iterable[Found]) -> None:
        for item in items:
            self.add(item)

    def __len__(self) -> int:
        return len(self._items)

    def result(self) -> tuple[Found, ...]:
        return tuple(self._items)


# --------------------------------------------------------------------- URLs


@functools.lru_cache(maxsize=65536)
def _resolve(base: str, raw: str | None) -> str | None:
    """Absolute http(s) URL without fragment, encoded as a browser would; or None."""
    if raw is None:
        return None
    value = raw.strip(_ASCII_WS).replace("\t", "").replace("\n", "").replace("\r", "")
    if not value:
        return None
    try:
        parts = urlsplit(urljoin(base, value))
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https") or not parts.hostname:
            return None
        netloc = parts.netloc
        if not netloc.isascii():  # the host name as browsers encode it (UTS #46)
            netloc = ascii_netloc(netloc)
        path = quote(parts.path or "/", safe=URL_SAFE)
        query = quote(parts.query, safe=URL_SAFE)
        return urlunsplit((scheme, netloc, path, query, ""))
    except (ValueError, UnicodeError):
        return None


def _url_path(url: str) -> str:
    try:
        return urlsplit(url.strip()).path.lower()
    except ValueError:
        return ""


def _mime(content_type: str | None) -> str:
    if not content_type:
        return ""
    return content_type.split(";", 1)[0].strip().lower()


def is_hls(url: str, content_type: str | None) -> bool:
    """True for an HLS playlist (by .m3u8 path or content type)."""
    return _url_path(url).endswith(".m3u8") or _mime(content_type) in _HLS_TYPES


def is_dash(url: str, content_type: str | None) -> bool:
    """True for a DASH manifest (by .mpd path or content type)."""
    return _url_path(url).endswith(".mpd") or _mime(content_type) in _DASH_TYPES


def video_role(url: str, type_attr: str | None) -> Role:
    """'video-manifest' for HLS/DASH (extension or type), else 'video'."""
    if is_hls(url, type_attr) or is_dash(url, type_attr):
        return "video-manifest"
    return "video"
