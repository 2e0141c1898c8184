"""Find what a fetched resource references (HTML, CSS, HLS, DASH).

Pure functions: bytes in, typed results out. No network I/O. Nothing here
raises on malformed input; the parsers return whatever could be found.
"""

from __future__ import annotations

from archiver.web.discover.charset import DEFAULT_CHARSET as DEFAULT_CHARSET
from archiver.web.discover.charset import sniff_charset
from archiver.web.discover.css import parse_css
from archiver.web.discover.dash import MAX_DASH_IDLE as MAX_DASH_IDLE
from archiver.web.discover.dash import _iso_duration as _iso_duration
from archiver.web.discover.dash import iter_dash, parse_dash
from archiver.web.discover.found import DATA_URL_LISTED as DATA_URL_LISTED
from archiver.web.discover.found import (
    MAX_BODY,
    MAX_SEGMENTS,
    Found,
    PageInfo,
    Role,
    Unfetched,
    is_dash,
    is_hls,
    video_role,
)
from archiver.web.discover.found import MAX_UNFETCHED as MAX_UNFETCHED
from archiver.web.discover.found import SHOWN_URL as SHOWN_URL
from archiver.web.discover.hls import HlsPlaylist, hls_playlist, iter_hls, parse_hls
from archiver.web.discover.html import MAX_DEPTH, parse_html, shallow
from archiver.web.discover.html import _srcset_urls as _srcset_urls

__all__ = [
    "MAX_BODY",
    "MAX_DEPTH",
    "MAX_SEGMENTS",
    "Found",
    "HlsPlaylist",
    "PageInfo",
    "Role",
    "Unfetched",
    "hls_playlist",
    "is_dash",
    "is_hls",
    "iter_dash",
    "iter_hls",
    "parse_css",
    "parse_dash",
    "parse_hls",
    "parse_html",
    "shallow",
    "sniff_charset",
    "video_role",
]
