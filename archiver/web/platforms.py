"""Which URLs are platform videos, handed to yt-dlp rather than fetched as plain files.

The platforms where the videos of our users' cases live hide the media behind players
and APIs that only yt-dlp keeps up with.  A URL goes to yt-dlp when its host is one of
theirs and its path looks like one post or video (a channel, a profile or a home page
is not a video, and must not turn a news page into gigabytes of unrelated video).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit


@dataclass(frozen=True)
class Platform:
    name: str
    hosts: tuple[str, ...]  # the host or any subdomain of it
    video: re.Pattern[str]  # matched against the path (and the query, after '?')


def _p(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.IGNORECASE)


PLATFORMS: tuple[Platform, ...] = (
    Platform("telegram", ("t.me", "telegram.me"), _p(r"^/(s/)?[A-Za-z0-9_]{3,}/\d+")),
    Platform(
        "twitter",
        ("twitter.com", "x.com", "mobile.twitter.com"),
        _p(r"^/[A-Za-z0-9_]{1,15}/status(es)?/\d+|^/i/(web/)?status/\d+"),
    ),
    Platform(
        "youtube",
        ("youtube.com", "youtube-nocookie.com"),
        _p(r"^/watch\?(.*&)?v=[\w-]{11}|^/(embed|shorts|live|v)/[\w-]{11}"),
    ),
    Platform("youtube", ("youtu.be",), _p(r"^/[\w-]{11}")),
    Platform(
        "facebook",
        ("facebook.com", "fb.com"),
        _p(
            r"^/(watch/?\?(.*&)?v=\d+|[^/]+/videos/|reel/\d+|share/[rv]/|video\.php\?|"
            r"plugins/video\.php\?|[^/]+/posts/)"
        ),
    ),
    Platform("facebook", ("fb.watch",), _p(r"^/[\w-]+/?$")),
    Platform("instagram", ("instagram.com",), _p(r"^/([^/]+/)?(p|reel|reels|tv)/[\w-]+")),
    Platform(
        "tiktok",
        ("tiktok.com",),
        _p(r"^/@[\w.-]+/video/\d+|^/embed(/v2)?/\d+|^/t/\w+"),
    ),
    Platform("tiktok", ("vm.tiktok.com", "vt.tiktok.com"), _p(r"^/\w+/?$")),
    Platform(
        "vimeo",
        ("vimeo.com", "player.vimeo.com"),
        _p(r"^/(video/)?\d+|^/channels/[\w-]+/\d+|^/groups/[\w-]+/videos/\d+"),
    ),
    Platform(
        "vk",
        ("vk.com", "vk.ru", "vkvideo.ru", "m.vk.com"),
        _p(r"^/(video|clip)-?\d+_\d+|^/video_ext\.php\?|^/[\w.]+\?(.*&)?z=video-?\d+_\d+"),
    ),
    Platform("ok", ("ok.ru",), _p(r"^/(video|videoembed|live)/\d+")),
    Platform("rumble", ("rumble.com",), _p(r"^/(embed/)?v[\w]+")),
    Platform(
        "dailymotion",
        ("dailymotion.com",),
        _p(r"^/(embed/)?video/[a-z0-9]+"),
    ),
    Platform("dailymotion", ("dai.ly",), _p(r"^/[a-z0-9]+$")),
)


def _host_matches(host: str, hosts: tuple[str, ...]) -> bool:
    host = host.lower().rstrip(".")
    if host.startswith("www."):
        host = host[4:]
    return any(host == h or host.endswith("." + h) for h in hosts)


def platform_of(url: str, extra_hosts: tuple[str, ...] = ()) -> str | None:
    """The platform whose video ``url`` is, or None.

    ``extra_hosts`` (``host``, ``host:port``, or ``host:port/path`` for the URLs under
    that path) are treated as platforms whose every URL there is a video: for
    platforms not listed here, and for tests against a local server.
    """
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https"):
        return None
    netloc = f"{host}:{port}" if port else host
    for extra in extra_hosts:
        if "/" in extra and f"{netloc}{parts.path}".startswith(extra):
            return "generic"
        if extra in (netloc, host):
            return "generic"
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    for platform in PLATFORMS:
        if _host_matches(host, platform.hosts) and platform.video.search(path):
            return platform.name
    return None
