"""Checks that the local fixture site (tests/support/site.py) behaves as specified.

Only stdlib HTTP clients and raw sockets are used, and nothing follows redirects.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import json
import math
import re
import socket
import sys
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import m3u8
import pytest

try:
    from tests.support.site import STREAM_CHUNK, FixtureSite
except ModuleNotFoundError:  # tests/ is not a package and the repo root is not on sys.path
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from tests.support.site import STREAM_CHUNK, FixtureSite

SLOW = 0.3

# --------------------------------------------------------------------------- #
# helpers
# --------------------------------------------------------------------------- #


@pytest.fixture(scope="module")
def site() -> Iterator[FixtureSite]:
    with FixtureSite(slow_seconds=SLOW) as s:
        yield s


def _port(site: FixtureSite) -> int:
    port = urlsplit(site.base).port
    assert port is not None
    return port


def raw_request(
    site: FixtureSite, target: str, method: str = "GET", timeout: float = 5.0
) -> tuple[int, dict[str, str], bytes]:
    """One request over a raw socket with ``Connection: close``.

    Returns (status, headers with lower-case names, body bytes exactly as on the wire).
    """
    with socket.create_connection(("127.0.0.1", _port(site)), timeout=timeout) as sock:
        sock.sendall(
            f"{method} {target} HTTP/1.1\r\nHost: 127.0.0.1:{_port(site)}\r\n"
            "Connection: close\r\n\r\n".encode("ascii")
        )
        chunks = []
        while data := sock.recv(STREAM_CHUNK):
            chunks.append(data)
    raw = b"".join(chunks)
    head, sep, body = raw.partition(b"\r\n\r\n")
    assert sep, raw[:200]
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    version, status, _reason = status_line.split(" ", 2)
    assert version == "HTTP/1.1"
    headers: dict[str, str] = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        assert name.lower() not in headers, f"duplicate header {name}"
        headers[name.lower()] = value.strip()
    return int(status), headers, body


def dechunk(raw: bytes) -> tuple[bytes, int]:
    """Decode strict HTTP/1.1 chunked framing; returns (payload, number of data chunks)."""
    out = bytearray()
    pos = 0
    count = 0
    while True:
        end = raw.index(b"\r\n", pos)
        size = int(raw[pos:end], 16)
        pos = end + 2
        if size == 0:
            assert raw[pos:] == b"\r\n", "trailer/garbage after last-chunk"
            return bytes(out), count
        out += raw[pos : pos + size]
        assert raw[pos + size : pos + size + 2] == b"\r\n"
        pos += size + 2
        count += 1


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def get(conn: http.client.HTTPConnection, path: str) -> http.client.HTTPResponse:
    conn.request("GET", path)
    return conn.getresponse()


# --------------------------------------------------------------------------- #
# tests
# --------------------------------------------------------------------------- #


def test_lists_are_consistent() -> None:
    everything = FixtureSite.REQUISITES + FixtureSite.VIDEOS + FixtureSite.NOT_FETCHED
    assert len(everything) == len(set(everything)), "a path is listed twice"
    for path in everything:
        assert path.startswith("/")
    assert FixtureSite.SLOW in FixtureSite.REQUISITES
    assert FixtureSite.LARGE_VIDEO in FixtureSite.VIDEOS
    assert "/hls/low/index.m3u8" in FixtureSite.VIDEOS
    assert "/hls/low/seg0.m4s" in FixtureSite.NOT_FETCHED
    assert "/dash/v1/seg-001.m4s" in FixtureSite.NOT_FETCHED
    for path in FixtureSite.MISSING + FixtureSite.HANGING + FixtureSite.REDIRECTS:
        assert path not in everything


def test_content_is_deterministic_and_unique() -> None:
    a, b = FixtureSite(), FixtureSite()
    paths = [
        p
        for p in FixtureSite.REQUISITES + FixtureSite.VIDEOS + FixtureSite.NOT_FETCHED
        if p != FixtureSite.LARGE_VIDEO
    ]
    hashes = [a.expected_payload_sha256(p) for p in paths]
    assert hashes == [b.expected_payload_sha256(p) for p in paths]
    # Every listed body differs, so payload-digest deduplication can never merge two of them.
    assert len(set(hashes)) == len(hashes)
    assert a.expected_payload_sha256(FixtureSite.ARTICLE) == b.expected_payload_sha256(
        FixtureSite.ARTICLE
    )
    with pytest.raises(ValueError):
        a.expected_payload_sha256(FixtureSite.HANGING[0])


def test_redirect_chain(site: FixtureSite) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", _port(site), timeout=5)
    try:
        r1 = get(conn, "/article")
        body1 = r1.read()
        assert r1.status == 301
        assert r1.getheader("Location") == "/news/2020/belarus-video"
        assert int(r1.getheader("Content-Length", "-1")) == len(body1) > 0

        r2 = get(conn, "/news/2020/belarus-video")
        body2 = r2.read()
        assert r2.status == 302
        assert r2.getheader("Location") == site.url("/news/2020/belarus-video/")
        assert len(body2) > 0

        r3 = get(conn, "/news/2020/belarus-video/")
        r3.read()
        assert r3.status == 200
    finally:
        conn.close()
    assert site.served[site.url("/article")] == sha256(body1)
    assert site.served[site.url("/news/2020/belarus-video")] == sha256(body2)
    assert site.expected_payload_sha256("/news/2020/belarus-video") == sha256(body2)


def test_article_is_windows_1251(site: FixtureSite) -> None:
    status, headers, body = raw_request(site, FixtureSite.ARTICLE)
    assert status == 200
    assert headers["content-type"] == "text/html"  # no charset: only the <meta> tells
    assert int(headers["content-length"]) == len(body)
    assert b'<meta charset="windows-1251">' in body[:1024]
    title = "Беларусь: видеообращение сотрудника МЧС"
    assert title.encode("windows-1251") in body
    with pytest.raises(UnicodeDecodeError):
        body.decode("utf-8")
    text = body.decode("windows-1251")
    assert '<html lang="ru">' in text
    assert f"<title>{title}</title>" in text
    assert '<meta name="author"' in text
    assert '<meta property="article:published_time" content="2020-08-12T10:00:00Z">' in text
    assert "маўчаць" in text  # Belarusian letter ў survives windows-1251

    for snippet in (
        "<link rel=stylesheet href=/static/css/main.css>",
        "<link rel=icon href=/favicon.ico>",
        "<script src=/static/js/app.js>",
        'srcset="/img/lead-480.jpg 480w, /img/lead-960.jpg 960w"',
        "<img src=/img/lead.jpg",
        'srcset="/img/pic.webp 1x, /img/pic@2x.webp 2x"',
        "<img src=/img/pic.jpg",
        "<video src=/media/direct.mp4 poster=/img/poster.jpg",
        "<source src=/media/source-a.webm type=video/webm>",
        "<source src=/media/source-b.mp4 type=video/mp4>",
        '<meta property="og:video" content="/media/og.mp4">',
        '<meta property="og:video:url" content="/media/og-url.mp4">',
        '<meta property="og:video:secure_url" content="/media/og-secure.mp4">',
        '<meta name="twitter:player:stream" content="/media/tw-stream.mp4">',
        "<video src=/hls/master.m3u8",
        "<source src=/dash/manifest.mpd type=application/dash+xml>",
        "<iframe src=/embed/player",
        "<img src=/img/missing.png",
        "<img src=/slow/image.png",
        "<script src=/hang/forever.js",
        "<video src=/media/large.mp4",
        "<a href=/other-article>",
        '<a href="https://example.org/elsewhere">',
    ):
        assert snippet in text, snippet

    match = re.search(r'<script type="application/ld\+json">(.*?)</script>', text, re.S)
    assert match
    graph = json.loads(match.group(1))["@graph"]
    assert graph[0]["@type"] == "NewsArticle"
    video = next(node for node in graph if node["@type"] == "VideoObject")
    assert video["contentUrl"] == "/media/jsonld.mp4"
    assert video["thumbnailUrl"] == "/img/jsonld-thumb.jpg"


def test_css_is_gzip_encoded(site: FixtureSite) -> None:
    status, headers, body = raw_request(site, "/static/css/main.css")
    assert status == 200
    assert headers["content-encoding"] == "gzip"
    assert headers["content-type"].startswith("text/css")
    assert int(headers["content-length"]) == len(body)
    css = gzip.decompress(body).decode()
    assert css.startswith('@import url("/static/css/imported.css");')
    assert "url(/fonts/font.woff2)" in css
    assert "@font-face" in css
    assert "url('../../img/bg.png')" in css
    assert urljoin(site.url("/static/css/main.css"), "../../img/bg.png") == site.url("/img/bg.png")
    assert site.served[site.url("/static/css/main.css")] == sha256(body)
    assert site.expected_payload_sha256("/static/css/main.css") == sha256(body)

    _, _, imported = raw_request(site, "/static/css/imported.css")
    assert b"url(/img/imported-bg.png)" in imported
    _, _, player_css = raw_request(site, "/embed/player.css")
    assert b"url(/embed/btn.png)" in player_css


def test_js_is_chunked_on_the_wire(site: FixtureSite) -> None:
    status, headers, raw = raw_request(site, "/static/js/app.js")
    assert status == 200
    assert headers["transfer-encoding"] == "chunked"
    assert "content-length" not in headers
    assert raw.endswith(b"\r\n0\r\n\r\n")
    payload, chunks = dechunk(raw)
    assert chunks > 3
    assert payload == site.decoded_body("/static/js/app.js")
    assert b"use strict" in payload
    url = site.url("/static/js/app.js")
    assert site.served[url] == sha256(raw) == site.expected_payload_sha256("/static/js/app.js")


@pytest.mark.parametrize(
    "target",
    [
        "/article",
        "/news/2020/belarus-video",
        "/news/2020/belarus-video/",
        "/plain",
        "/embed/player",
        "/img/pic@2x.webp",
        "/favicon.ico",
        "/hls/master.m3u8",
        "/hls/subs/seg1.vtt",
        "/dash/manifest.mpd",
        "/dash/a1/seg-4.m4s",
        "/img/missing.png",
        "/no/such/page?q=1",
    ],
)
def test_served_hash_matches_raw_socket(site: FixtureSite, target: str) -> None:
    _status, headers, body = raw_request(site, target)
    assert int(headers["content-length"]) == len(body)
    assert site.served[site.url(target)] == sha256(body)
    assert site.expected_payload_sha256(target) == sha256(body)


def test_every_listed_path_answers_200(site: FixtureSite) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", _port(site), timeout=10)
    try:  # one keep-alive connection for everything
        for path in FixtureSite.REQUISITES + FixtureSite.VIDEOS + FixtureSite.NOT_FETCHED:
            response = get(conn, path)
            body = response.read()  # http.client de-chunks but does not gunzip
            assert response.status == 200, path
            assert not response.will_close, path
            if response.getheader("Transfer-Encoding") == "chunked":
                assert body == site.decoded_body(path)
            else:
                assert sha256(body) == site.expected_payload_sha256(path), path
            assert site.served[site.url(path)] == site.expected_payload_sha256(path), path
    finally:
        conn.close()


def test_missing_and_unknown_are_404(site: FixtureSite) -> None:
    for path in ("/img/missing.png", "/nope", "/news/2020/belarus-video/extra"):
        status, headers, body = raw_request(site, path)
        assert status == 404, path
        assert 0 < len(body) < 200
        assert headers["content-type"].startswith("text/html")


def test_slow_image(site: FixtureSite) -> None:
    start = time.monotonic()
    status, headers, body = raw_request(site, FixtureSite.SLOW)
    assert time.monotonic() - start >= SLOW * 0.9
    assert status == 200
    assert headers["content-type"] == "image/png"
    assert body.startswith(b"\x89PNG\r\n\x1a\n")


def test_head_is_logged_but_not_served(site: FixtureSite) -> None:
    target = "/plain?probe=head"
    status, headers, body = raw_request(site, target, method="HEAD")
    assert status == 200
    assert body == b""
    assert int(headers["content-length"]) == len(site.decoded_body("/plain"))
    assert site.url(target) not in site.served
    assert ("HEAD", target) in site.request_log


def test_requests_are_recorded_in_order(site: FixtureSite) -> None:
    targets = ["/plain?order=1", "/nope?order=2", "/plain?order=3"]
    for target in targets:
        raw_request(site, target)
    recorded = [t for t in site.requests if "order=" in t]
    assert recorded == targets


def test_large_video_streams(site: FixtureSite) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", _port(site), timeout=10)
    try:
        response = get(conn, FixtureSite.LARGE_VIDEO)
        assert response.status == 200
        assert response.getheader("Content-Type") == "video/mp4"
        assert int(response.getheader("Content-Length", "-1")) == site.large_video_bytes
        hasher = hashlib.sha256()
        total = 0
        while data := response.read(STREAM_CHUNK):
            hasher.update(data)
            total += len(data)
    finally:
        conn.close()
    assert total == site.large_video_bytes == 8 * 1024 * 1024
    expected = site.expected_payload_sha256(FixtureSite.LARGE_VIDEO)
    assert hasher.hexdigest() == expected == site.served[site.url(FixtureSite.LARGE_VIDEO)]


def test_large_video_custom_size() -> None:
    size = 3 * STREAM_CHUNK + 17
    with FixtureSite(large_video_bytes=size) as small:
        status, headers, body = raw_request(small, FixtureSite.LARGE_VIDEO)
        assert status == 200
        assert int(headers["content-length"]) == len(body) == size
        assert sha256(body) == small.expected_payload_sha256(FixtureSite.LARGE_VIDEO)
        assert small.served[small.url(FixtureSite.LARGE_VIDEO)] == sha256(body)


def test_hang_times_out_and_shutdown_is_fast() -> None:
    site = FixtureSite(slow_seconds=30)
    with site:
        # Also leave a slow request and an idle keep-alive connection pending.
        slow = socket.create_connection(("127.0.0.1", _port(site)), timeout=5)
        slow.sendall(b"GET /slow/image.png HTTP/1.1\r\nHost: x\r\n\r\n")
        idle = http.client.HTTPConnection("127.0.0.1", _port(site), timeout=5)
        get(idle, "/plain").read()

        conn = http.client.HTTPConnection("127.0.0.1", _port(site), timeout=1.0)
        start = time.monotonic()
        with pytest.raises(TimeoutError):
            get(conn, "/hang/forever.js")
        assert 0.9 <= time.monotonic() - start < 3
        assert "/hang/forever.js" in site.requests
        stopping = time.monotonic()
    assert time.monotonic() - stopping < 1.0
    assert slow.recv(1) == b""  # closed without an answer
    slow.close()
    conn.close()
    idle.close()
    assert not any(t.name.startswith(f"FixtureSite:{_port(site)}") for t in threading.enumerate())
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", _port(site)), timeout=1).close()


def test_hls_playlists(site: FixtureSite) -> None:
    master_url = site.url("/hls/master.m3u8")
    status, headers, body = raw_request(site, "/hls/master.m3u8")
    assert status == 200
    assert headers["content-type"] == "application/vnd.apple.mpegurl"
    master = m3u8.loads(body.decode(), uri=master_url)
    assert master.is_variant
    variants = sorted(master.playlists, key=lambda p: p.stream_info.bandwidth)
    assert [v.stream_info.bandwidth for v in variants] == [400000, 2000000]
    low, high = variants
    assert high.stream_info.audio == "aud"
    assert high.stream_info.subtitles == "subs"
    renditions = {m.type: m for m in master.media}
    assert renditions["AUDIO"].group_id == "aud"
    assert renditions["AUDIO"].default == "YES"
    assert renditions["SUBTITLES"].group_id == "subs"

    def media_paths(url: str) -> list[str]:
        _, _, data = raw_request(site, urlsplit(url).path)
        playlist = m3u8.loads(data.decode(), uri=url)
        assert playlist.is_endlist
        paths = [urlsplit(init.absolute_uri).path for init in playlist.segment_map]
        return paths + [urlsplit(seg.absolute_uri).path for seg in playlist.segments]

    def path_of(url: str) -> str:
        return urlsplit(url).path

    assert path_of(low.absolute_uri) in FixtureSite.VIDEOS
    assert set(media_paths(low.absolute_uri)) <= set(FixtureSite.NOT_FETCHED)
    for url in (
        high.absolute_uri,
        renditions["AUDIO"].absolute_uri,
        renditions["SUBTITLES"].absolute_uri,
    ):
        assert path_of(url) in FixtureSite.VIDEOS
        paths = media_paths(url)
        assert len(paths) in (3, 4)
        assert set(paths) <= set(FixtureSite.VIDEOS), paths
    assert media_paths(renditions["SUBTITLES"].absolute_uri)[0].endswith(".vtt")


def test_dash_manifest(site: FixtureSite) -> None:
    mpd_url = site.url("/dash/manifest.mpd")
    status, headers, body = raw_request(site, "/dash/manifest.mpd")
    assert status == 200
    assert headers["content-type"] == "application/dash+xml"
    ns = {"d": "urn:mpeg:dash:schema:mpd:2011"}
    root = ET.fromstring(body)
    assert root.get("type") == "static"
    assert root.get("mediaPresentationDuration") == "PT8S"
    duration = 8
    periods = root.findall("d:Period", ns)
    assert len(periods) == 1

    def expand(rep: ET.Element, template: ET.Element) -> list[str]:
        rep_id = rep.get("id", "")
        out = [template.get("initialization", "").replace("$RepresentationID$", rep_id)]
        media = template.get("media", "").replace("$RepresentationID$", rep_id)
        timeline = template.find("d:SegmentTimeline", ns)
        if timeline is None:
            count = math.ceil(duration / int(template.get("duration", "1")))
            start = int(template.get("startNumber", "1"))
            out += [media.replace("$Number%03d$", f"{n:03d}") for n in range(start, start + count)]
        else:
            t = 0
            for s in timeline.findall("d:S", ns):
                t = int(s.get("t", t))
                for _ in range(int(s.get("r", "0")) + 1):
                    out.append(media.replace("$Time$", str(t)))
                    t += int(s.get("d", "0"))
        return [urlsplit(urljoin(mpd_url, u)).path for u in out]

    kinds = []
    for aset in periods[0].findall("d:AdaptationSet", ns):
        kinds.append(aset.get("contentType"))
        reps = sorted(
            aset.findall("d:Representation", ns), key=lambda r: int(r.get("bandwidth", 0))
        )
        for index, rep in enumerate(reps):
            template = rep.find("d:SegmentTemplate", ns)
            if template is None:
                template = aset.find("d:SegmentTemplate", ns)
            assert template is not None
            paths = expand(rep, template)
            target = FixtureSite.VIDEOS if index == len(reps) - 1 else FixtureSite.NOT_FETCHED
            assert set(paths) <= set(target), paths
    assert kinds == ["video", "audio"]
    assert "/dash/v2/seg-002.m4s" in FixtureSite.VIDEOS
    assert "/dash/a1/seg-4.m4s" in FixtureSite.VIDEOS


def test_embed_player_page(site: FixtureSite) -> None:
    status, headers, body = raw_request(site, FixtureSite.EMBED)
    assert status == 200
    assert headers["content-type"] == "text/html; charset=utf-8"
    text = body.decode("utf-8")
    assert "<link rel=stylesheet href=/embed/player.css>" in text
    assert "<video src=/embed/clip.mp4" in text


def test_plain_page(site: FixtureSite) -> None:
    status, headers, body = raw_request(site, FixtureSite.PLAIN)
    assert status == 200
    assert headers["content-type"] == "text/html; charset=utf-8"
    text = body.decode("utf-8")
    assert "<title>Plain fixture page</title>" in text
    assert "src=" not in text and "href=" not in text
