"""Which URLs are handed to yt-dlp: one post or video on a platform, nothing else."""

from __future__ import annotations

import pytest

from archiver.web.platforms import PLATFORMS, platform_of

VIDEOS = {
    "telegram": [
        "https://t.me/nexta_live/12345",
        "https://t.me/s/belamova/999",
        "https://telegram.me/tutby/42?single",
    ],
    "twitter": [
        "https://twitter.com/nexta_tv/status/1293188475416137728",
        "https://x.com/franakviacorka/status/1294580185435820033?s=20",
        "https://mobile.twitter.com/i/web/status/1293188475416137728",
    ],
    "youtube": [
        "https://www.youtube.com/watch?v=dQw4w9WgXcQ",
        "https://youtu.be/dQw4w9WgXcQ",
        "https://www.youtube.com/shorts/dQw4w9WgXcQ",
        "https://www.youtube-nocookie.com/embed/dQw4w9WgXcQ",
        "https://m.youtube.com/watch?feature=share&v=dQw4w9WgXcQ",
    ],
    "facebook": [
        "https://www.facebook.com/watch/?v=1234567890",
        "https://www.facebook.com/nexta.tv/videos/1234567890/",
        "https://fb.watch/abcDEF123/",
        "https://www.facebook.com/reel/1234567890",
        "https://www.facebook.com/plugins/video.php?href=https%3A%2F%2Fwww.facebook.com%2Fx",
    ],
    "instagram": [
        "https://www.instagram.com/p/CDv1w2Hn3kZ/",
        "https://www.instagram.com/reel/CDv1w2Hn3kZ/",
        "https://instagram.com/tv/CDv1w2Hn3kZ",
    ],
    "tiktok": [
        "https://www.tiktok.com/@user.name/video/6867383428547112198",
        "https://www.tiktok.com/embed/v2/6867383428547112198",
        "https://vm.tiktok.com/ZMJabcdef/",
    ],
    "vimeo": [
        "https://vimeo.com/123456789",
        "https://player.vimeo.com/video/123456789?h=abc",
        "https://vimeo.com/channels/staffpicks/123456789",
    ],
    "vk": [
        "https://vk.com/video-12345_456239017",
        "https://vk.com/video_ext.php?oid=-1&id=2&hash=3",
        "https://vkvideo.ru/video-12345_456239017",
        "https://vk.com/nexta?z=video-12345_456239017",
    ],
    "ok": ["https://ok.ru/video/1234567890", "https://ok.ru/videoembed/1234567890"],
    "rumble": ["https://rumble.com/v1abcde-some-title.html", "https://rumble.com/embed/v1abcde/"],
    "dailymotion": [
        "https://www.dailymotion.com/video/x7tgad0",
        "https://www.dailymotion.com/embed/video/x7tgad0",
        "https://dai.ly/x7tgad0",
    ],
}

NOT_VIDEOS = [
    "https://t.me/nexta_live",  # a channel
    "https://twitter.com/nexta_tv",  # a profile
    "https://x.com/home",
    "https://www.youtube.com/",
    "https://www.youtube.com/@nexta",  # a channel
    "https://www.youtube.com/playlist?list=PL1234567890",  # a playlist
    "https://www.facebook.com/",
    "https://www.facebook.com/nextatv",  # a page
    "https://www.youtube.com/nextachanne",  # eleven characters: a channel name, not a video
    "https://www.instagram.com/nexta_tv/",
    "https://www.tiktok.com/@user.name",
    "https://vimeo.com/channels/staffpicks",
    "https://vk.com/nexta",
    "https://ok.ru/group/123",
    "https://rumble.com/c/channel",
    "https://www.dailymotion.com/user/nexta",
    "https://example.org/news/2020/belarus-video/",
    "https://notyoutube.com/watch?v=dQw4w9WgXcQ",  # only the platform's own hosts
    "ftp://t.me/nexta_live/1",
    "not a url",
]


def test_every_named_platform_has_cases() -> None:
    assert {p.name for p in PLATFORMS} == set(VIDEOS)
    assert len(VIDEOS) == 11  # the platforms the issue names


@pytest.mark.parametrize(("name", "url"), [(n, u) for n, urls in VIDEOS.items() for u in urls])
def test_platform_videos_go_to_ytdlp(name: str, url: str) -> None:
    assert platform_of(url) == name


@pytest.mark.parametrize("url", NOT_VIDEOS)
def test_other_urls_do_not(url: str) -> None:
    assert platform_of(url) is None


def test_extra_hosts_route_everything_on_them() -> None:
    assert platform_of("http://127.0.0.1:8080/watch/1", ("127.0.0.1:8080",)) == "generic"
    assert platform_of("http://127.0.0.1:8081/watch/1", ("127.0.0.1:8080",)) is None
    assert platform_of("http://127.0.0.1:8080/watch/1", ("127.0.0.1:8080/watch",)) == "generic"
    assert platform_of("http://127.0.0.1:8080/news/1", ("127.0.0.1:8080/watch",)) is None
