"""References in HLS playlists: a master's variants and renditions, a media playlist's
segments (:func:`iter_hls`, :func:`parse_hls`), and its liveness (:func:`hls_playlist`)."""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from dataclasses import dataclass

from archiver.web import discover
from archiver.web.discover.found import MAX_SEGMENTS, Found, _Collector, _resolve


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


def _hls_master(playlist: object, url: str, out: _Collector) -> None:
    variants = [
        p
        for p in getattr(playlist, "playlists", None) or ()
        if isinstance(getattr(p, "uri", None), str)
    ]

    def bandwidth(p: object) -> int:
        info = getattr(p, "stream_info", None)
        value = getattr(info, "bandwidth", None)
        return value if isinstance(value, int) else 0

    best = max(variants, key=bandwidth) if variants else None
    for p in variants:
        out.add_url(url, p.uri, "video-manifest", "hls variant", p is best)
    group = getattr(getattr(best, "stream_info", None), "audio", None)
    for media in getattr(playlist, "media", None) or ():
        uri = getattr(media, "uri", None)
        kind = (getattr(media, "type", None) or "").upper()
        if not isinstance(uri, str):
            continue
        if kind == "AUDIO" and (not group or getattr(media, "group_id", None) == group):
            out.add_url(url, uri, "video-manifest", "hls audio", True)
        elif kind == "SUBTITLES":
            out.add_url(url, uri, "video-manifest", "hls subtitles", True)


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


def iter_hls(body: bytes, url: str) -> Iterator[Found]:
    """Variants/renditions of a master playlist, or a media playlist's segments, lazily."""
    try:
        text = body[: discover.MAX_BODY].decode("utf-8", errors="replace").removeprefix("\ufeff")
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
        _hls_master(playlist, url, out)
        yield from out.result()
    except Exception:  # malformed input: keep what was found
        return


def parse_hls(body: bytes, url: str) -> tuple[Found, ...]:
    """:func:`iter_hls` as a tuple, of at most MAX_SEGMENTS items (for reading back
    a stored playlist; a capture takes :func:`iter_hls` as far as its budget goes)."""
    return tuple(itertools.islice(iter_hls(body, url), MAX_SEGMENTS))
