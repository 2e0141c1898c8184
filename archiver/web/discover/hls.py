"""References in HLS playlists: a master's variants and renditions, a media playlist's
segments (:func:`iter_hls`, :func:`parse_hls`), and its liveness (:func:`hls_playlist`).

Which variants of a master are kept whole (their segments fetched) is decided here, with
the :class:`Rendition` the capture names for replay (:func:`hls_rendition`): see
:data:`Renditions`."""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

from archiver.web import discover
from archiver.web.discover.found import MAX_SEGMENTS, Found, _Collector, _resolve

Renditions = Literal["best", "replayed", "all"]
"""Which renditions of an adaptive stream (HLS variants, DASH representations) are kept
whole.  ``best``: the highest bandwidth alone (of each adaptation set, for DASH; the
first of equals), as a reader of a stored manifest takes one track.  ``replayed``: that
one and any other that pywb or wabac.js would keep at replay when told, by the
manifest's :class:`Rendition`, which one was captured (what a capture does by default:
a replayed stream plays).  ``all``: every one (``--all-renditions``)."""

MAX_SAFE_INTEGER = 2**53 - 1
"""Largest integer a JavaScript reader (wabac.js) reads exactly from JSON."""
PYWB_MAX_BANDWIDTH = 1_000_000_000
"""pywb's bandwidth limit when a manifest's record names no rendition."""
WABAC_REPLAY_LIMITS = (1280 * 720, 2_000_000)
"""wabac.js's (resolution, bandwidth) limits at replay when a record names no rendition."""


@dataclass(frozen=True)
class Rendition:
    """The rendition a capture keeps whole, as replay tools read it in the manifest: its
    pixels (width x height; 0 when the manifest gives none) and bandwidth (bits/s).

    Written as the ``WARC-JSON-Metadata`` header of the manifest's response record
    (:meth:`metadata`): pywb and wabac.js (ReplayWeb.page) read it there and rewrite the
    manifest at replay to the one rendition that fits, so that the player asks only for
    segments the archive holds.  The HTTP body and headers stay as they were served."""

    resolution: int
    bandwidth: int

    def metadata(self) -> dict[str, int]:
        """The header's JSON object, with the keys pywb and wabac.js read."""
        return {
            "adaptive_max_resolution": self.resolution,
            "adaptive_max_bandwidth": self.bandwidth,
        }


def _limits_pywb(rendition: Rendition | None) -> tuple[int, int]:
    """(max resolution, max bandwidth) as pywb's ``_get_adaptive_metadata`` reads them."""
    if rendition is None:
        return 0, PYWB_MAX_BANDWIDTH
    return rendition.resolution, rendition.bandwidth


def _limits_wabac(rendition: Rendition | None) -> tuple[int, int]:
    """(max resolution, max bandwidth) as wabac.js's ``getMaxResAndBand`` reads them at
    replay: both given and non-zero, else its replay defaults for both."""
    if rendition is None or not rendition.resolution or not rendition.bandwidth:
        return WABAC_REPLAY_LIMITS
    return rendition.resolution, rendition.bandwidth


def _safe(rendition: Rendition) -> Rendition | None:
    """The rendition if a JavaScript reader reads its numbers exactly, else None."""
    if 0 <= rendition.resolution <= MAX_SAFE_INTEGER and (
        0 <= rendition.bandwidth <= MAX_SAFE_INTEGER
    ):
        return rendition
    return None


def _m3u8_load(text: str) -> object:
    """Parse with m3u8; on failure drop or neutralise the offending tag lines."""
    import m3u8  # type: ignore[import-untyped,unused-ignore]  # imported when needed: slow

    try:
        return m3u8.loads(text)
    except Exception:
        pass
    lines: list[str] = []
    for line in text.splitlines():
        if line.startswith("#EXT"):
            try:
                m3u8.loads("#EXTM3U\n" + line + "\nx\n")
            except Exception:
                if line.startswith("#EXT-X-STREAM-INF"):
                    line = "#EXT-X-STREAM-INF:BANDWIDTH=0"
                elif line.startswith("#EXTINF"):
                    line = "#EXTINF:0,"
                else:
                    continue
        lines.append(line)
    try:
        return m3u8.loads("\n".join(lines) + "\n")
    except Exception:
        return None


def _hls_master(
    playlist: object, url: str, out: _Collector, text: str, renditions: Renditions
) -> None:
    variants = [
        p
        for p in getattr(playlist, "playlists", None) or ()
        if isinstance(getattr(p, "uri", None), str)
    ]

    def bandwidth(p: object) -> int:
        info = getattr(p, "stream_info", None)
        value = getattr(info, "bandwidth", None)
        return value if isinstance(value, int) else 0

    kept: list[object] = []
    choice = _hls_choice(text, renditions) if renditions != "all" else None
    if renditions == "all":
        kept = list(variants)
    elif choice is not None:
        wanted = {_resolve(url, raw) for raw in choice[1]}
        kept = [p for p in variants if _resolve(url, p.uri) in wanted]
    if not kept and variants:
        # none the replay tools' reading sees (or its URI line is not where they look):
        # the highest bandwidth, as m3u8 reads it
        kept = [max(variants, key=bandwidth)]
    for p in variants:
        out.add_url(url, p.uri, "video-manifest", "hls variant", any(p is k for k in kept))
    groups = {getattr(getattr(p, "stream_info", None), "audio", None) for p in kept}
    for media in getattr(playlist, "media", None) or ():
        uri = getattr(media, "uri", None)
        kind = (getattr(media, "type", None) or "").upper()
        if not isinstance(uri, str):
            continue
        if kind == "AUDIO" and (
            renditions == "all"
            or not groups
            or None in groups
            or getattr(media, "group_id", None) in groups
        ):
            out.add_url(url, uri, "video-manifest", "hls audio", True)
        elif kind == "SUBTITLES":
            out.add_url(url, uri, "video-manifest", "hls subtitles", True)


# A variant as pywb (rewrite_hls.py, Python) and wabac.js (rewriteVideo.ts) find it: a line
# that starts with (pywb) or holds (wabac) the tag and a BANDWIDTH; its URI is the next line.
_PYWB_STREAM_INF = re.compile(r"#EXT-X-STREAM-INF:(?:.*[,])?BANDWIDTH=([\d]+)")
_PYWB_RESOLUTION = re.compile(r"RESOLUTION=([\d]+)x([\d]+)")
_WABAC_STREAM_INF = re.compile(r"#EXT-X-STREAM-INF:(?:[^\n\r\u2028\u2029]*[,])?BANDWIDTH=([0-9]+)")
_WABAC_RESOLUTION = re.compile(r"RESOLUTION=([0-9]+)x([0-9]+)")


@dataclass(frozen=True)
class _Variant:
    line: int  # index of its #EXT-X-STREAM-INF line; the URI is the line after
    bandwidth: int
    resolution: int


def _variants(lines: list[str], *, wabac: bool) -> list[_Variant]:
    """The variants, in order, as pywb (``wabac=False``) or wabac.js reads them."""
    tag, size = (
        (_WABAC_STREAM_INF, _WABAC_RESOLUTION) if wabac else (_PYWB_STREAM_INF, _PYWB_RESOLUTION)
    )
    found = []
    for i, line in enumerate(lines):
        m = tag.search(line) if wabac else tag.match(line)
        if m is None:
            continue
        m2 = size.search(line)
        resolution = int(m2.group(1)) * int(m2.group(2)) if m2 else 0
        found.append(_Variant(i, int(m.group(1)), resolution))
    return found


def _pywb_hls(variants: list[_Variant], rendition: Rendition | None) -> int | None:
    """The line of the variant pywb's ``RewriteHLS`` keeps (None: it keeps none)."""
    max_resolution, max_bandwidth = _limits_pywb(rendition)
    best: int | None = None
    best_bandwidth = best_resolution = 0
    for v in variants:
        if max_resolution and v.resolution:
            if best_resolution < v.resolution <= max_resolution:
                best, best_resolution, best_bandwidth = v.line, v.resolution, v.bandwidth
        elif best_bandwidth < v.bandwidth <= max_bandwidth:
            best, best_resolution, best_bandwidth = v.line, v.resolution, v.bandwidth
    return best


def _wabac_hls(variants: list[_Variant], rendition: Rendition | None) -> int | None:
    """The line of the variant wabac.js's ``rewriteHLS`` keeps at replay: sorted by
    resolution (bandwidth when no resolution limit), the first of the highest within the
    limit, else the first of the lowest."""
    max_resolution, max_bandwidth = _limits_wabac(rendition)
    entries = sorted(
        ((v.resolution if max_resolution else v.bandwidth), v.line) for v in variants
    )  # stable on value then line: as a stable sort by value of lines in order
    limit = max_resolution or max_bandwidth
    best: int | None = None
    best_value: int | None = None
    for value, line in entries:
        if value > limit:
            break
        if best_value != value:
            best_value, best = value, line
    if best is None and entries:
        best = entries[0][1]
    return best


def _hls_choice(text: str, renditions: Renditions) -> tuple[Rendition | None, list[str]] | None:
    """The rendition a master playlist's record names, and the URIs (as written) of the
    variants kept whole; None when pywb's reading finds no variant.

    Ours is the highest bandwidth (the first of equals); with ``replayed``, also the
    variants pywb and wabac.js keep when the record names ours (another of the same
    resolution listed first, or the first of all when none gives one).  No rendition is
    named when pywb would then keep none (every bandwidth 0) or JavaScript would misread
    its numbers."""
    lines = text.split("\n")
    try:
        ours = _variants(lines, wabac=False)
        theirs = _variants(lines, wabac=True)
    except ValueError:  # a number too long to read (pywb fails on it too)
        return None
    if not ours:
        return None
    best = max(ours, key=lambda v: v.bandwidth)
    rendition = _safe(Rendition(best.resolution, best.bandwidth))
    if rendition is not None and _pywb_hls(ours, rendition) is None:
        rendition = None
    keep = {best.line}
    if renditions == "replayed":
        for pick in (_pywb_hls(ours, rendition), _wabac_hls(theirs, rendition)):
            if pick is not None:
                keep.add(pick)
    uris = []
    for line in sorted(keep):
        uri = lines[line + 1].strip() if line + 1 < len(lines) else ""
        if uri and not uri.startswith("#"):
            uris.append(uri)
    return rendition, uris


def hls_rendition(body: bytes) -> Rendition | None:
    """The rendition a master playlist's record names for replay (see :class:`Rendition`):
    the one a capture keeps whole; None for a media playlist or what is no playlist."""
    text = _text(body)
    if "#EXT-X-STREAM-INF" not in text:
        return None
    choice = _hls_choice(text, "best")
    return choice[0] if choice is not None else None


def _text(body: bytes) -> str:
    return body[: discover.MAX_BODY].decode("utf-8", errors="replace").removeprefix("\ufeff")


_HLS_ATTR = re.compile(r'([A-Z0-9-]+)=("[^"]*"|[^,]*)')
_HLS_LINE = re.compile(r"[^\r\n]+")
_TARGET_DURATION = re.compile(rb"#EXT-X-TARGETDURATION:\s*(\d+(?:\.\d+)?)")


def _hls_attrs(text: str) -> dict[str, str]:
    return {m.group(1): m.group(2).strip('"') for m in _HLS_ATTR.finditer(text)}


def _hls_media_lazy(text: str, url: str) -> Iterator[Found]:
    """A media playlist's map, key and segment URLs, one at a time, as the lines are read:
    a playlist naming a million segments never exists as a million objects."""
    seen: set[str] = set()
    init: str | None = None
    key: str | None = None
    expect_segment = False

    def new(raw: str | None, via: str) -> Found | None:
        found = _resolve(url, raw)
        if found is None or found in seen:
            return None
        seen.add(found)
        return Found(found, "video-segment", via)

    for match in _HLS_LINE.finditer(text):
        line = match.group(0).strip()
        if not line:
            continue
        if line.startswith("#"):
            if line.startswith(("#EXTINF", "#EXT-X-BYTERANGE")):
                expect_segment = True
            elif line.startswith("#EXT-X-MAP:"):
                init = _hls_attrs(line[11:]).get("URI")
            elif line.startswith("#EXT-X-KEY:"):
                attrs = _hls_attrs(line[11:])
                key = None if attrs.get("METHOD", "").upper() == "NONE" else attrs.get("URI")
            continue
        if not expect_segment:
            continue
        expect_segment = False
        for raw, via in ((init, "hls map"), (key, "hls key"), (line, "hls segment")):
            if raw is not None and (item := new(raw, via)) is not None:
                yield item


@dataclass(frozen=True)
class HlsPlaylist:
    """What a media playlist says about itself: live (no ``#EXT-X-ENDLIST``: more
    segments are to come) and how often it should be reloaded."""

    live: bool
    target_duration: float | None


def hls_playlist(body: bytes) -> HlsPlaylist | None:
    """A media playlist's liveness; None for a master playlist or what is no playlist."""
    head = body[:1024].lstrip(b"\xef\xbb\xbf \t\r\n")
    if not head.startswith(b"#EXTM3U") or b"#EXT-X-STREAM-INF" in body:
        return None
    match = _TARGET_DURATION.search(body)
    return HlsPlaylist(
        live=b"#EXT-X-ENDLIST" not in body,
        target_duration=float(match.group(1)) if match else None,
    )


def iter_hls(body: bytes, url: str, *, renditions: Renditions = "best") -> Iterator[Found]:
    """Variants/renditions of a master playlist, or a media playlist's segments, lazily.
    ``renditions`` says which variants are kept whole (``expand``): see :data:`Renditions`."""
    try:
        text = _text(body)
        if "#EXT-X-STREAM-INF" not in text:  # a media playlist (as m3u8 decides it)
            yield from _hls_media_lazy(text, url)
            return
        # a master playlist: m3u8 reads it, without the segment lines it would
        # otherwise turn into objects (a master has none to give)
        masters = "\n".join(
            m.group(0)
            for m in _HLS_LINE.finditer(text)
            if not m.group(0).startswith(("#EXTINF", "#EXT-X-BYTERANGE"))
        )
        playlist = _m3u8_load(masters)
        if playlist is None:
            return
        out = _Collector()
        _hls_master(playlist, url, out, text, renditions)
        yield from out.result()
    except Exception:  # malformed input: keep what was found
        return


def parse_hls(body: bytes, url: str) -> tuple[Found, ...]:
    """:func:`iter_hls` as a tuple, of at most MAX_SEGMENTS items (for reading back
    a stored playlist; a capture takes :func:`iter_hls` as far as its budget goes)."""
    return tuple(itertools.islice(iter_hls(body, url), MAX_SEGMENTS))
