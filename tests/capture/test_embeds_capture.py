"""A page embedding social-media posts (a widget's markup, no iframe yet), captured in HTTP
mode from a real loopback server: each post is listed among the capture's videos, handed
to yt-dlp and never fetched as a file; yt-dlp's failure is that video's error.

The yt-dlp tests need a machine that cannot reach the platforms (this one has no internet):
they are skipped where the platforms' names resolve, rather than contact them."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from archiver.capture.metadata import MEDIA_INFO_SCHEMA, METADATA_SCHEMA
from archiver.capture.run import Capturer
from archiver.core.model import Capture, CaptureStatus
from tests.support.routes import page, response, server
from tests.support.runner import run
from tests.support.warcs import read_all

ARTICLE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Portal: the news</title></head>
<body><article><h1>The news</h1><p>As posted:</p>
<script async src="/js/telegram-widget.js" data-telegram-post="nexta_live/65432"></script>
<blockquote class="twitter-tweet" data-lang="en"><p lang="en" dir="ltr">Now
<a href="https://t.co/AbCdEf">pic.twitter.com/AbCdEf</a></p>&mdash; NEXTA (@nexta_tv)
<a href="https://twitter.com/nexta_tv/status/1830000000000000001?ref_src=twsrc%5Etfw">March
1, 2024</a></blockquote>
<script async src="/js/widgets.js" charset="utf-8"></script>
<blockquote class="instagram-media" data-instgrm-permalink=
"https://www.instagram.com/reel/C1a2B3c4/?utm_source=ig_embed&amp;utm_campaign=loading">
</blockquote>
<blockquote class="tiktok-embed" cite="https://www.tiktok.com/@scout2015/video/6718335390845095173"
data-video-id="6718335390845095173"><section></section></blockquote>
<div class="fb-video" data-href="https://www.facebook.com/nexta.tv/videos/10153231379946729/"></div>
<lite-youtube videoid="dQw4w9WgXcQ"></lite-youtube>
<lite-vimeo videoid="76979871"></lite-vimeo>
<iframe src="/frame"></iframe>
</article></body></html>"""
# an embed inside an iframe document: followed like the iframe's videos, not refused as a
# nested iframe
FRAME = """<!doctype html><blockquote class="twitter-tweet"><p>Quoted</p>&mdash;
<a href="https://x.com/Tsihanouskaya/status/1830000000000000002">date</a></blockquote>"""
JS = response("200 OK", b"/* a widget script */", kind="text/javascript")
ROUTES = {
    "/": page(ARTICLE),
    "/frame": page(FRAME),
    "/js/telegram-widget.js": lambda base: JS,
    "/js/widgets.js": lambda base: JS,
}
# the post URL each embed names, its via, and whether it is in the frame
POSTS = {
    "https://t.me/nexta_live/65432": ("script[data-telegram-post]", False),
    "https://twitter.com/nexta_tv/status/1830000000000000001": ("blockquote.twitter-tweet", False),
    "https://www.instagram.com/reel/C1a2B3c4/": (
        "blockquote.instagram-media[data-instgrm-permalink]",
        False,
    ),
    "https://www.tiktok.com/@scout2015/video/6718335390845095173": (
        "blockquote.tiktok-embed[cite]",
        False,
    ),
    "https://www.facebook.com/nexta.tv/videos/10153231379946729/": (".fb-video[data-href]", False),
    "https://www.youtube.com/watch?v=dQw4w9WgXcQ": ("lite-youtube[videoid]", False),
    "https://vimeo.com/76979871": ("lite-vimeo[videoid]", False),
    "https://x.com/Tsihanouskaya/status/1830000000000000002": ("blockquote.twitter-tweet", True),
}
SERVED = {"/", "/frame", "/js/telegram-widget.js", "/js/widgets.js"}


@pytest.fixture
def portal() -> Iterator[tuple[str, list[tuple[str, bytes]]]]:
    with server(ROUTES) as (base, received):
        yield base, received


def found_on(base: str, in_frame: bool) -> str:
    return f"{base}/frame" if in_frame else f"{base}/"


def offline() -> None:
    """Skip unless no platform's name resolves: yt-dlp must fail, not fetch the posts."""
    for host in sorted({urlsplit(url).hostname or "" for url in POSTS}):
        try:
            socket.getaddrinfo(host, 443, type=socket.SOCK_STREAM)
        except OSError:
            continue
        pytest.skip(f"{host} resolves: the test would contact the platforms")


def test_each_embedded_post_is_a_video_whose_ytdlp_failure_is_its_error(
    portal: tuple[str, list[tuple[str, bytes]]], make_capturer: Callable[..., Capturer]
) -> None:
    offline()
    base, received = portal
    capture = make_capturer().capture(base + "/")
    # a platform video yt-dlp could not get makes the capture partial, as before
    assert capture.status is CaptureStatus.PARTIAL, capture.failure
    assert capture.failure is None
    videos = {v.url: v for v in capture.videos}
    assert set(videos) == set(POSTS)
    for url, (via, in_frame) in POSTS.items():
        video = videos[url]
        assert video.via.startswith(f"{via} (yt-dlp "), video
        assert video.role == "platform"
        assert video.found_on == found_on(base, in_frame)
        assert video.error is not None and video.error.startswith("yt-dlp: "), video
    # each failure is that video's, and among the capture's errors as a platform video's
    # only: no post was fetched as a file or an iframe
    errors = {(e.url, e.role, e.reason) for e in capture.errors}
    assert errors == {(url, "platform video", videos[url].error) for url in POSTS}
    assert not [r for r in capture.records if r.url in POSTS]
    assert not [n for n in capture.not_followed if n["url"] in POSTS]
    assert {path for path, _ in received} == SERVED
    # the metadata record says the same, and yt-dlp's account of each post is kept
    docs = [r.json() for r in read_all(capture.warc_files) if r.type == "metadata"]
    (doc,) = [d for d in docs if d.get("schema") == METADATA_SCHEMA]
    media = {d["url"]: d["error"] for d in docs if d.get("schema") == MEDIA_INFO_SCHEMA}
    assert media == {url: str(videos[url].error).removeprefix("yt-dlp: ") for url in POSTS}
    assert doc["status"] == "partial"
    listed = {v["url"]: v for v in doc["videos"]}
    assert {url: v["via"] for url, v in listed.items()} == {url: v.via for url, v in videos.items()}
    assert {url: v["error"] for url, v in listed.items()} == {
        url: v.error for url, v in videos.items()
    }


def test_the_command_says_how_many_videos_and_why_each_failed(
    portal: tuple[str, list[tuple[str, bytes]]], tmp_path: Path
) -> None:
    offline()
    base, _ = portal
    done = run("capture", base + "/", "--allow-private", "--archive-dir", str(tmp_path / "a"))
    assert done.returncode == 0, done.stderr  # partial
    assert f"partial {base}/ -> " in done.stdout
    assert f", {len(POSTS)} videos, " in done.stdout
    for url in POSTS:
        assert f"not captured: {url}: yt-dlp: " in done.stderr


def test_with_platform_videos_off_each_post_is_listed_as_not_followed(
    portal: tuple[str, list[tuple[str, bytes]]], make_capturer: Callable[..., Capturer]
) -> None:
    base, received = portal
    capture: Capture = make_capturer(platform_videos=False).capture(base + "/")
    assert capture.status is CaptureStatus.COMPLETE, capture.errors
    assert capture.videos == []
    left = {n["url"]: n for n in capture.not_followed if n["url"] in POSTS}
    assert set(left) == set(POSTS)
    for url, (via, in_frame) in POSTS.items():
        assert left[url]["via"] == via
        assert left[url]["found_on"] == found_on(base, in_frame)
        assert "platform videos are off" in left[url]["reason"]
    assert {path for path, _ in received} == SERVED
