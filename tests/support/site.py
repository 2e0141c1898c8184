"""A real local HTTP fixture site for integration tests (no mocking of HTTP).

``FixtureSite`` runs a threaded HTTP/1.1 server on ``127.0.0.1:<ephemeral port>``
serving a news-article fixture: a 2020 report from Belarus whose evidence is a
video appeal shared on Telegram and Twitter.  Every body is deterministic and
generated in code; "video" bodies are pseudo-random bytes, not real media.

Usage::

    with FixtureSite(slow_seconds=0.2) as site:
        capture(site.url("/article"))
        for path in site.REQUISITES + site.VIDEOS:
            assert site.url(path) in site.served
        assert not set(site.NOT_FETCHED) & set(site.requests)

Module name note: this file shadows the stdlib ``site`` module if ``tests/`` itself
is put on ``sys.path``; import it as ``tests.support.site``.
"""

# The fixture is full of Russian/Belarusian text on purpose: Cyrillic is not a typo.
# ruff: noqa: RUF001

from __future__ import annotations

import contextlib
import gzip
import hashlib
import http
import json
import random
import socket
import socketserver
import struct
import sys
import threading
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, ClassVar, Literal
from urllib.parse import urlsplit

__all__ = ["FixtureSite"]

STREAM_CHUNK = 64 * 1024

ENTRY_PATH = "/article"
REDIRECT_HOP_PATH = "/news/2020/belarus-video"
ARTICLE_PATH = "/news/2020/belarus-video/"

_TITLE = "Беларусь: видеообращение сотрудника МЧС"
_AUTHOR = "Алесь Навіцкі"
_PUBLISHED = "2020-08-12T10:00:00Z"

# --------------------------------------------------------------------------- #
# Deterministic content generators
# --------------------------------------------------------------------------- #


def _det_bytes(seed: str, size: int) -> bytes:
    """``size`` pseudo-random bytes, fully determined by ``seed``."""
    return random.Random(f"archiver-fixture:{seed}").randbytes(size)


def _det_size(seed: str, low: int, high: int) -> int:
    return random.Random(f"archiver-fixture-size:{seed}").randint(low, high)


def _png(seed: str, width: int = 8, height: int = 8) -> bytes:
    """A small but valid RGB PNG whose pixels are derived from ``seed``."""
    pixels = _det_bytes(seed, width * height * 3)
    raw = b"".join(
        b"\x00" + pixels[row * width * 3 : (row + 1) * width * 3] for row in range(height)
    )

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(raw, 9))
        + chunk(b"IEND", b"")
    )


def _jpeg(seed: str) -> bytes:
    """JPEG signature (SOI + JFIF APP0) + deterministic bytes + EOI. Not decodable."""
    app0 = b"\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    return b"\xff\xd8" + app0 + _det_bytes(seed, _det_size(seed, 700, 3000)) + b"\xff\xd9"


def _webp(seed: str) -> bytes:
    payload = b"VP8L" + _det_bytes(seed, _det_size(seed, 400, 1500))
    return b"RIFF" + struct.pack("<I", 4 + len(payload)) + b"WEBP" + payload


def _woff2(seed: str) -> bytes:
    return b"wOF2" + _det_bytes(seed, _det_size(seed, 1500, 4000))


def _ico(seed: str) -> bytes:
    return b"\x00\x00\x01\x00\x01\x00" + _det_bytes(seed, _det_size(seed, 300, 1100))


def _mp4_box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", 8 + len(payload)) + kind + payload


def _mp4(seed: str) -> bytes:
    ftyp = _mp4_box(b"ftyp", b"isom\x00\x00\x02\x00isomiso2mp41")
    return ftyp + _mp4_box(b"mdat", _det_bytes(seed, _det_size(seed, 4000, 24000)))


def _init_mp4(seed: str) -> bytes:
    ftyp = _mp4_box(b"ftyp", b"iso6\x00\x00\x00\x00iso6dash")
    return ftyp + _mp4_box(b"moov", _det_bytes(seed, _det_size(seed, 300, 900)))


def _m4s(seed: str) -> bytes:
    styp = _mp4_box(b"styp", b"msdh\x00\x00\x00\x00msdhmsix")
    return styp + _mp4_box(b"mdat", _det_bytes(seed, _det_size(seed, 3000, 12000)))


def _webm(seed: str) -> bytes:
    return b"\x1a\x45\xdf\xa3" + _det_bytes(seed, _det_size(seed, 4000, 24000))


def _large_video_chunks(total: int) -> Iterator[bytes]:
    """The large video body, generated on the fly in ``STREAM_CHUNK`` pieces."""
    rng = random.Random("archiver-fixture:/media/large.mp4")
    remaining = total
    while remaining > 0:
        size = min(STREAM_CHUNK, remaining)
        yield rng.randbytes(size)
        remaining -= size


def _chunked_framing(data: bytes) -> list[bytes]:
    """Raw HTTP/1.1 chunked framing of ``data``, one element per chunk (incl. last-chunk).

    Chunk sizes vary (1 byte up to 1 KiB) to exercise de-chunkers.
    """
    sizes = (1, 7, 64, 300, 1024)
    pieces: list[bytes] = []
    pos = 0
    index = 0
    while pos < len(data):
        part = data[pos : pos + sizes[index % len(sizes)]]
        pieces.append(b"%x\r\n" % len(part) + part + b"\r\n")
        pos += len(part)
        index += 1
    pieces.append(b"0\r\n\r\n")
    return pieces


# --------------------------------------------------------------------------- #
# Paths
# --------------------------------------------------------------------------- #

_HLS_SEGMENTS = 3


def _hls_media(prefix: str, ext: str = "m4s", with_init: bool = True) -> list[str]:
    paths = [f"{prefix}/init.mp4"] if with_init else []
    return paths + [f"{prefix}/seg{i}.{ext}" for i in range(_HLS_SEGMENTS)]


_DASH_VIDEO_SEGMENTS = 2  # PT8S / duration 4
_DASH_AUDIO_TIMES = (0, 4)  # <S t="0" d="4" r="1"/>


def _dash_video(rep: str) -> list[str]:
    return [f"/dash/{rep}/init.mp4"] + [
        f"/dash/{rep}/seg-{n:03d}.m4s" for n in range(1, _DASH_VIDEO_SEGMENTS + 1)
    ]


def _dash_audio(rep: str) -> list[str]:
    return [f"/dash/{rep}/init.mp4"] + [f"/dash/{rep}/seg-{t}.m4s" for t in _DASH_AUDIO_TIMES]


_SIMPLE_VIDEOS = (
    "/media/direct.mp4",
    "/media/source-a.webm",
    "/media/source-b.mp4",
    "/media/og.mp4",
    "/media/og-url.mp4",
    "/media/og-secure.mp4",
    "/media/tw-stream.mp4",
    "/media/jsonld.mp4",
    "/embed/clip.mp4",
)

_STATIC_IMAGES = (
    "/img/bg.png",
    "/img/imported-bg.png",
    "/img/lead.jpg",
    "/img/lead-480.jpg",
    "/img/lead-960.jpg",
    "/img/pic.webp",
    "/img/pic@2x.webp",
    "/img/pic.jpg",
    "/img/poster.jpg",
    "/img/jsonld-thumb.jpg",
    "/embed/btn.png",
)

# --------------------------------------------------------------------------- #
# Text documents
# --------------------------------------------------------------------------- #

_MAIN_CSS = """@import url("/static/css/imported.css");

@font-face {
  font-family: "Fixture Sans";
  src: url(/fonts/font.woff2) format("woff2");
  font-display: swap;
}

body {
  font-family: "Fixture Sans", sans-serif;
  background: url('../../img/bg.png') repeat;
  color: #222;
}

article h1 { font-size: 2rem; }
video { max-width: 100%; }
"""

_IMPORTED_CSS = """.hero {
  background-image: url(/img/imported-bg.png);
  min-height: 240px;
}
"""

_PLAYER_CSS = """.play {
  background: url(/embed/btn.png) no-repeat center;
  width: 48px;
  height: 48px;
}
"""


def _app_js() -> bytes:
    lines = [
        "/* archiver fixture: article enhancements (served chunked). */",
        '"use strict";',
        "(function () {",
        "  var state = { ready: false, views: 0 };",
        "  function markReady() {",
        "    state.ready = true;",
        "    document.documentElement.setAttribute('data-ready', '1');",
        "  }",
    ]
    for i in range(24):
        lines.append(f"  function handler{i:02d}(ev) {{ state.views += {i}; return ev; }}")
    lines += [
        "  // Видео: обращение сотрудника МЧС (Telegram / Twitter).",
        "  document.addEventListener('DOMContentLoaded', markReady);",
        "})();",
        "",
    ]
    return "\n".join(lines).encode("utf-8")


def _article_html() -> bytes:
    json_ld = {
        "@context": "https://schema.org",
        "@graph": [
            {
                "@type": "NewsArticle",
                "headline": _TITLE,
                "inLanguage": "ru",
                "datePublished": _PUBLISHED,
                "author": {"@type": "Person", "name": _AUTHOR},
                "publisher": {"@type": "Organization", "name": "Фикстура Ньюс"},
                "video": {"@id": "#appeal-video"},
            },
            {
                "@type": "VideoObject",
                "@id": "#appeal-video",
                "name": "Видеообращение сотрудника МЧС",
                "description": "Видео, опубликованное в Telegram и Twitter 11 августа 2020 года.",
                "uploadDate": "2020-08-11T21:00:00Z",
                "contentUrl": "/media/jsonld.mp4",
                "thumbnailUrl": "/img/jsonld-thumb.jpg",
            },
        ],
    }
    ld = json.dumps(json_ld, ensure_ascii=False, indent=1)
    html = f"""<!DOCTYPE html>
<html lang="ru">
<head>
<meta charset="windows-1251">
<title>{_TITLE}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="author" content="{_AUTHOR}">
<meta name="description"
 content="Сотрудник МЧС записал видеообращение; оно разошлось в Telegram и Twitter.">
<meta property="article:published_time" content="{_PUBLISHED}">
<meta property="og:type" content="article">
<meta property="og:title" content="{_TITLE}">
<meta property="og:video" content="/media/og.mp4">
<meta property="og:video:url" content="/media/og-url.mp4">
<meta property="og:video:secure_url" content="/media/og-secure.mp4">
<meta property="og:video:type" content="video/mp4">
<meta name="twitter:card" content="player">
<meta name="twitter:player:stream" content="/media/tw-stream.mp4">
<meta name="twitter:player:stream:content_type" content="video/mp4">
<link rel=stylesheet href=/static/css/main.css>
<link rel=icon href=/favicon.ico>
<script src=/static/js/app.js></script>
<script type="application/ld+json">
{ld}
</script>
</head>
<body>
<article class="hero">
<h1>{_TITLE}</h1>
<p class="byline">Автор: {_AUTHOR}. Опубликовано 12 августа 2020 года.</p>
<img src=/img/lead.jpg srcset="/img/lead-480.jpg 480w, /img/lead-960.jpg 960w"
 sizes="(max-width: 600px) 480px, 960px" alt="Акция протеста в Минске">
<p>Вечером 11 августа 2020 года в Telegram-каналах появилось видеообращение
сотрудника МЧС. Позже запись разошлась в Twitter. Мужчина в форме заявляет,
что не может молчать о происходящем после выборов.</p>
<blockquote lang="be">«Я не магу маўчаць. Мы служым людзям, а не ўладзе.»</blockquote>
<picture><source srcset="/img/pic.webp 1x, /img/pic@2x.webp 2x" type="image/webp">
<img src=/img/pic.jpg alt="Кадр из видео"></picture>
<h2>Оригинальное видео</h2>
<video src=/media/direct.mp4 poster=/img/poster.jpg controls></video>
<h2>Копии видео</h2>
<video controls><source src=/media/source-a.webm type=video/webm>
<source src=/media/source-b.mp4 type=video/mp4></video>
<h2>Трансляция (HLS)</h2>
<video src=/hls/master.m3u8 controls></video>
<h2>Трансляция (DASH)</h2>
<video controls><source src=/dash/manifest.mpd type=application/dash+xml></video>
<h2>Встроенный плеер</h2>
<iframe src=/embed/player width=640 height=360 title="Плеер"></iframe>
<h2>Полная запись</h2>
<video src=/media/large.mp4 controls preload=none></video>
<img src=/img/missing.png alt="Удалённое изображение">
<img src=/slow/image.png alt="Медленное изображение">
<p>Редакция проверила запись по открытым источникам.
<a href=/other-article>Другие материалы</a> ·
<a href="https://example.org/elsewhere">Внешний источник</a></p>
</article>
<script src=/hang/forever.js async></script>
</body>
</html>
"""
    return html.encode("windows-1251")


_EMBED_HTML = """<!DOCTYPE html>
<html lang="ru">
<head>
<meta charset="utf-8">
<title>Видеоплеер</title>
<link rel=stylesheet href=/embed/player.css>
</head>
<body>
<video src=/embed/clip.mp4 controls></video>
<button class="play" type="button">Смотреть</button>
</body>
</html>
""".encode()

_PLAIN_HTML = """<!DOCTYPE html>
<html lang="ru">
<head>
<meta charset="utf-8">
<title>Plain fixture page</title>
</head>
<body>
<p>Простая страница без ресурсов. Plain page, no requisites.</p>
</body>
</html>
""".encode()

_OTHER_ARTICLE_HTML = """<!DOCTYPE html>
<html lang="ru">
<head><meta charset="utf-8"><title>Другая статья</title></head>
<body><p>Это исходящая ссылка; архиватор не должен её загружать.</p>
<a href="/news/2020/belarus-video/">Назад</a></body>
</html>
""".encode()

_NOT_FOUND_HTML = b"<!DOCTYPE html>\n<title>404 Not Found</title>\n<h1>Not Found</h1>\n"


def _hls_master() -> bytes:
    return (
        b"#EXTM3U\n"
        b"#EXT-X-VERSION:7\n"
        b"#EXT-X-INDEPENDENT-SEGMENTS\n"
        b'#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="aud",NAME="ru",LANGUAGE="ru",'
        b'DEFAULT=YES,AUTOSELECT=YES,URI="audio/ru.m3u8"\n'
        b'#EXT-X-MEDIA:TYPE=SUBTITLES,GROUP-ID="subs",NAME="ru",LANGUAGE="ru",'
        b'DEFAULT=NO,AUTOSELECT=YES,URI="subs/ru.m3u8"\n'
        b'#EXT-X-STREAM-INF:BANDWIDTH=400000,RESOLUTION=640x360,CODECS="avc1.4d401e,mp4a.40.2"\n'
        b"low/index.m3u8\n"
        b"#EXT-X-STREAM-INF:BANDWIDTH=2000000,RESOLUTION=1920x1080,"
        b'CODECS="avc1.640028,mp4a.40.2",AUDIO="aud",SUBTITLES="subs"\n'
        b"high/index.m3u8\n"
    )


_HLS_DURATIONS = ("4.000", "4.000", "2.000")


def _hls_media_playlist(name: str, ext: str, with_map: bool) -> bytes:
    lines = [
        "#EXTM3U",
        f"# archiver fixture playlist: {name}",  # a comment: keeps every playlist body unique
        "#EXT-X-VERSION:7",
        "#EXT-X-TARGETDURATION:4",
        "#EXT-X-MEDIA-SEQUENCE:0",
        "#EXT-X-PLAYLIST-TYPE:VOD",
    ]
    if with_map:
        lines.append('#EXT-X-MAP:URI="init.mp4"')
    for i, duration in enumerate(_HLS_DURATIONS):
        lines += [f"#EXTINF:{duration},", f"seg{i}.{ext}"]
    lines.append("#EXT-X-ENDLIST")
    return ("\n".join(lines) + "\n").encode()


def _vtt(index: int) -> bytes:
    start = index * 4
    texts = ("Я не могу молчать.", "Мы служим людям.", "Конец обращения.")
    return (
        "WEBVTT\n"
        "X-TIMESTAMP-MAP=MPEGTS:900000,LOCAL:00:00:00.000\n\n"
        f"00:00:{start:02d}.000 --> 00:00:{start + 2:02d}.000\n"
        f"{texts[index % len(texts)]}\n"
    ).encode()


_DASH_MPD = b"""<?xml version="1.0" encoding="UTF-8"?>
<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" type="static" mediaPresentationDuration="PT8S"
     minBufferTime="PT2S" profiles="urn:mpeg:dash:profile:isoff-live:2011">
  <Period id="p0" start="PT0S">
    <AdaptationSet id="1" contentType="video" mimeType="video/mp4" segmentAlignment="true">
      <SegmentTemplate initialization="$RepresentationID$/init.mp4"
                       media="$RepresentationID$/seg-$Number%03d$.m4s"
                       startNumber="1" duration="4" timescale="1"/>
      <Representation id="v1" bandwidth="500000" width="640" height="360" codecs="avc1.4d401e"/>
      <Representation id="v2" bandwidth="1500000" width="1280" height="720" codecs="avc1.64001f"/>
    </AdaptationSet>
    <AdaptationSet id="2" contentType="audio" mimeType="audio/mp4" lang="ru">
      <Representation id="a1" bandwidth="128000" codecs="mp4a.40.2" audioSamplingRate="48000">
        <SegmentTemplate initialization="a1/init.mp4" media="a1/seg-$Time$.m4s" timescale="1">
          <SegmentTimeline>
            <S t="0" d="4" r="1"/>
          </SegmentTimeline>
        </SegmentTemplate>
      </Representation>
    </AdaptationSet>
  </Period>
</MPD>
"""

# --------------------------------------------------------------------------- #
# Routes
# --------------------------------------------------------------------------- #

RouteKind = Literal["static", "chunked", "slow", "hang", "large"]


@dataclass(frozen=True)
class _Route:
    kind: RouteKind
    status: int = 200
    content_type: str = "application/octet-stream"
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()
    pieces: tuple[bytes, ...] = field(default=())  # chunked framing pieces


def _static(content_type: str, body: bytes, *headers: tuple[str, str]) -> _Route:
    return _Route("static", 200, content_type, body, tuple(headers))


def _redirect_route(status: int, location: str) -> _Route:
    reason = http.HTTPStatus(status).phrase
    body = (
        f'<!DOCTYPE html>\n<title>{status} {reason}</title>\n<a href="{location}">{location}</a>\n'
    ).encode()
    return _Route("static", status, "text/html; charset=utf-8", body, (("Location", location),))


_NOT_FOUND = _Route("static", 404, "text/html; charset=utf-8", _NOT_FOUND_HTML)


def _build_static_routes() -> dict[str, _Route]:
    routes: dict[str, _Route] = {}
    html_utf8 = "text/html; charset=utf-8"

    routes[ENTRY_PATH] = _redirect_route(301, REDIRECT_HOP_PATH)
    # The second hop (302) carries an absolute Location and is built per instance.
    routes[ARTICLE_PATH] = _static(
        "text/html", _article_html(), ("Last-Modified", "Wed, 12 Aug 2020 10:00:00 GMT")
    )
    routes["/plain"] = _static(html_utf8, _PLAIN_HTML)
    routes["/other-article"] = _static(html_utf8, _OTHER_ARTICLE_HTML)
    routes["/embed/player"] = _static(html_utf8, _EMBED_HTML)

    routes["/static/css/main.css"] = _static(
        "text/css",
        gzip.compress(_MAIN_CSS.encode(), compresslevel=9, mtime=0),
        ("Content-Encoding", "gzip"),
        ("Vary", "Accept-Encoding"),
    )
    routes["/static/css/imported.css"] = _static("text/css", _IMPORTED_CSS.encode())
    routes["/embed/player.css"] = _static("text/css", _PLAYER_CSS.encode())
    routes["/static/js/app.js"] = _Route(
        "chunked",
        200,
        "text/javascript; charset=utf-8",
        pieces=tuple(_chunked_framing(_app_js())),
    )

    routes["/favicon.ico"] = _static("image/x-icon", _ico("/favicon.ico"))
    routes["/fonts/font.woff2"] = _static("font/woff2", _woff2("/fonts/font.woff2"))
    for path in _STATIC_IMAGES:
        if path.endswith(".png"):
            routes[path] = _static("image/png", _png(path))
        elif path.endswith(".webp"):
            routes[path] = _static("image/webp", _webp(path))
        else:
            routes[path] = _static("image/jpeg", _jpeg(path))
    routes["/slow/image.png"] = _Route("slow", 200, "image/png", _png("/slow/image.png"))
    routes["/hang/forever.js"] = _Route("hang")
    routes["/media/large.mp4"] = _Route("large", 200, "video/mp4")

    for path in _SIMPLE_VIDEOS:
        if path.endswith(".webm"):
            routes[path] = _static("video/webm", _webm(path))
        else:
            routes[path] = _static("video/mp4", _mp4(path))

    # HLS
    m3u8 = "application/vnd.apple.mpegurl"
    routes["/hls/master.m3u8"] = _static(m3u8, _hls_master())
    for variant in ("low", "high"):
        routes[f"/hls/{variant}/index.m3u8"] = _static(
            m3u8, _hls_media_playlist(variant, "m4s", True)
        )
        for path in _hls_media(f"/hls/{variant}"):
            body = _init_mp4(path) if path.endswith(".mp4") else _m4s(path)
            routes[path] = _static("video/mp4", body)
    routes["/hls/audio/ru.m3u8"] = _static(m3u8, _hls_media_playlist("audio/ru", "m4s", True))
    for path in _hls_media("/hls/audio"):
        body = _init_mp4(path) if path.endswith(".mp4") else _m4s(path)
        routes[path] = _static("audio/mp4", body)
    routes["/hls/subs/ru.m3u8"] = _static(m3u8, _hls_media_playlist("subs/ru", "vtt", False))
    for i, path in enumerate(_hls_media("/hls/subs", "vtt", with_init=False)):
        routes[path] = _static("text/vtt; charset=utf-8", _vtt(i))

    # DASH
    routes["/dash/manifest.mpd"] = _static("application/dash+xml", _DASH_MPD)
    for rep in ("v1", "v2"):
        for path in _dash_video(rep):
            body = _init_mp4(path) if path.endswith(".mp4") else _m4s(path)
            routes[path] = _static("video/mp4", body)
    for path in _dash_audio("a1"):
        body = _init_mp4(path) if path.endswith(".mp4") else _m4s(path)
        routes[path] = _static("audio/mp4", body)
    return routes


_STATIC_ROUTES: dict[str, _Route] | None = None
_STATIC_ROUTES_LOCK = threading.Lock()


def _static_routes() -> dict[str, _Route]:
    global _STATIC_ROUTES
    with _STATIC_ROUTES_LOCK:
        if _STATIC_ROUTES is None:
            _STATIC_ROUTES = _build_static_routes()
        return _STATIC_ROUTES


def _split_target(target: str) -> str:
    """Route key (path only, no query) of a request-target (origin- or absolute-form)."""
    parts = urlsplit(target)
    return parts.path or "/"


def _origin_form(target: str) -> str:
    """``/path?query`` of a request-target (absolute-form targets are reduced)."""
    if target.startswith(("http://", "https://")):
        parts = urlsplit(target)
        return (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return target


# --------------------------------------------------------------------------- #
# Server
# --------------------------------------------------------------------------- #


_Request = socket.socket | tuple[bytes, socket.socket]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    block_on_close = False

    def __init__(self, site: FixtureSite) -> None:
        self.site = site
        self._conns: set[socket.socket] = set()
        self._conns_cv = threading.Condition()
        super().__init__(("127.0.0.1", 0), _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind() calls socket.getfqdn(), which may hit DNS: skip it.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)

    def process_request(self, request: _Request, client_address: Any) -> None:
        if isinstance(request, socket.socket):
            with self._conns_cv:
                self._conns.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: _Request) -> None:
        try:
            super().shutdown_request(request)
        finally:
            if isinstance(request, socket.socket):
                with self._conns_cv:
                    self._conns.discard(request)
                    self._conns_cv.notify_all()

    def handle_error(self, request: _Request, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, OSError):  # client went away, socket shut down on exit, ...
            return
        super().handle_error(request, client_address)

    def close_connections(self, timeout: float) -> None:
        """Shut down every open client connection and wait (bounded) for handlers to end."""
        with self._conns_cv:
            conns = list(self._conns)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        deadline = time.monotonic() + timeout
        with self._conns_cv:
            while self._conns:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._conns_cv.wait(remaining)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "ArchiverFixture/1.0"
    sys_version = ""
    disable_nagle_algorithm = True
    server: _Server

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self._dispatch(head_only=False)

    def do_HEAD(self) -> None:
        self._dispatch(head_only=True)

    # -- helpers ---------------------------------------------------------- #

    def _discard_request_body(self) -> None:
        length = self.headers.get("Content-Length")
        if length and length.strip().isdigit():
            remaining = int(length)
            while remaining > 0:
                data = self.rfile.read(min(remaining, STREAM_CHUNK))
                if not data:
                    break
                remaining -= len(data)
        elif self.headers.get("Transfer-Encoding"):
            self.close_connection = True  # not worth de-chunking a request body here

    def _head(self, route: _Route, extra: list[tuple[str, str]]) -> bytes:
        reason = http.HTTPStatus(route.status).phrase
        lines = [
            f"HTTP/1.1 {route.status} {reason}",
            f"Date: {formatdate(usegmt=True)}",
            f"Server: {self.server_version}",
            f"Content-Type: {route.content_type}",
        ]
        lines += [f"{name}: {value}" for name, value in route.headers]
        lines += [f"{name}: {value}" for name, value in extra]
        if self.close_connection:
            lines.append("Connection: close")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    def _dispatch(self, *, head_only: bool) -> None:
        site = self.server.site
        target = _origin_form(self.path)
        self._discard_request_body()
        site._record_request(self.command, target, self.headers.get("Cookie"))
        route = site._route(_split_target(target))
        url = site.base + target
        if route.kind == "hang":
            site._stop.wait()
            self.close_connection = True
            return
        if route.kind == "slow" and site._stop.wait(site.slow_seconds):
            self.close_connection = True  # stopping: give up without answering
            return
        if route.kind == "chunked":
            self._send_chunked(route, url, head_only)
        elif route.kind == "large":
            self._send_large(route, url, head_only)
        else:
            self._send_static(route, url, head_only)

    def _send_static(self, route: _Route, url: str, head_only: bool) -> None:
        head = self._head(route, [("Content-Length", str(len(route.body)))])
        if head_only:
            self.wfile.write(head)
            return
        site = self.server.site
        previous = site._served_begin(url, hashlib.sha256(route.body).hexdigest())
        try:
            self.wfile.write(head + route.body)
        except BaseException:
            site._served_abort(url, previous)
            raise

    def _send_chunked(self, route: _Route, url: str, head_only: bool) -> None:
        self.wfile.write(self._head(route, [("Transfer-Encoding", "chunked")]))
        if head_only:
            return
        site = self.server.site
        digest = hashlib.sha256(b"".join(route.pieces)).hexdigest()
        for piece in route.pieces[:-1]:
            self.wfile.write(piece)
        previous = site._served_begin(url, digest)
        try:
            self.wfile.write(route.pieces[-1])
        except BaseException:
            site._served_abort(url, previous)
            raise

    def _send_large(self, route: _Route, url: str, head_only: bool) -> None:
        site = self.server.site
        total = site.large_video_bytes
        self.wfile.write(self._head(route, [("Content-Length", str(total))]))
        if head_only:
            return
        hasher = hashlib.sha256()
        sent = 0
        previous: str | None = None
        begun = False
        try:
            for chunk in _large_video_chunks(total):
                if site._stop.is_set():
                    self.close_connection = True
                    return
                hasher.update(chunk)
                sent += len(chunk)
                if sent == total:  # last chunk: record before the final write (no race)
                    previous = site._served_begin(url, hasher.hexdigest())
                    begun = True
                self.wfile.write(chunk)
            if total == 0:
                site._served_begin(url, hasher.hexdigest())
        except BaseException:
            if begun:
                site._served_abort(url, previous)
            raise


# --------------------------------------------------------------------------- #
# Public API
# --------------------------------------------------------------------------- #


class FixtureSite:
    """A threaded HTTP/1.1 server on 127.0.0.1:0 serving a news-article fixture.

    Use as a context manager (or ``start()`` / ``stop()``).  See the module doc.
    """

    ENTRY: ClassVar[str] = ENTRY_PATH
    """Start URL of the capture: 301 -> ``REDIRECT_HOP`` -> 302 -> ``ARTICLE``."""
    REDIRECT_HOP: ClassVar[str] = REDIRECT_HOP_PATH
    ARTICLE: ClassVar[str] = ARTICLE_PATH
    REDIRECTS: ClassVar[tuple[str, ...]] = (ENTRY_PATH, REDIRECT_HOP_PATH)
    PLAIN: ClassVar[str] = "/plain"
    EMBED: ClassVar[str] = "/embed/player"
    SLOW: ClassVar[str] = "/slow/image.png"
    LARGE_VIDEO: ClassVar[str] = "/media/large.mp4"
    MISSING: ClassVar[tuple[str, ...]] = ("/img/missing.png",)
    """Referenced by the article, answers 404."""
    HANGING: ClassVar[tuple[str, ...]] = ("/hang/forever.js",)
    """Referenced by the article, never answered (the connection stays open until exit)."""
    EXTERNAL_OUTLINKS: ClassVar[tuple[str, ...]] = ("https://example.org/elsewhere",)

    REQUISITES: ClassVar[tuple[str, ...]] = (
        "/static/css/main.css",
        "/static/css/imported.css",
        "/fonts/font.woff2",
        "/img/bg.png",
        "/img/imported-bg.png",
        "/favicon.ico",
        "/static/js/app.js",
        "/img/lead.jpg",
        "/img/lead-480.jpg",
        "/img/lead-960.jpg",
        "/img/pic.webp",
        "/img/pic@2x.webp",
        "/img/pic.jpg",
        "/img/poster.jpg",
        "/img/jsonld-thumb.jpg",
        "/slow/image.png",
        "/embed/player",
        "/embed/player.css",
        "/embed/btn.png",
    )
    VIDEOS: ClassVar[tuple[str, ...]] = (
        *_SIMPLE_VIDEOS,
        "/media/large.mp4",
        "/hls/master.m3u8",
        "/hls/low/index.m3u8",
        "/hls/high/index.m3u8",
        *_hls_media("/hls/high"),
        "/hls/audio/ru.m3u8",
        *_hls_media("/hls/audio"),
        "/hls/subs/ru.m3u8",
        *_hls_media("/hls/subs", "vtt", with_init=False),
        "/dash/manifest.mpd",
        *_dash_video("v2"),
        *_dash_audio("a1"),
    )
    NOT_FETCHED: ClassVar[tuple[str, ...]] = (
        "/other-article",
        *_hls_media("/hls/low"),
        *_dash_video("v1"),
    )

    def __init__(
        self, *, slow_seconds: float = 1.5, large_video_bytes: int = 8 * 1024 * 1024
    ) -> None:
        if slow_seconds < 0 or large_video_bytes < 0:
            raise ValueError("slow_seconds and large_video_bytes must be >= 0")
        self.slow_seconds = slow_seconds
        self.large_video_bytes = large_video_bytes
        self.served: dict[str, str] = {}
        """Absolute URL -> sha256 hex of the body bytes as sent (GET only, not HEAD)."""
        self.requests: list[str] = []
        """Request targets (``/path?query``) in arrival order, all methods."""
        self.request_log: list[tuple[str, str]] = []
        """``(method, target)`` in arrival order."""
        self.cookies_seen: list[str] = []
        """Cookie header values received, in arrival order."""
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._routes = _static_routes()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._base: str | None = None
        self._large_sha256: str | None = None

    # -- lifecycle -------------------------------------------------------- #

    def start(self) -> FixtureSite:
        if self._server is not None or self._stop.is_set():
            raise RuntimeError("FixtureSite can be started only once")
        self._server = _Server(self)
        host, port = self._server.server_address[:2]
        self._base = f"http://{host!s}:{port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"FixtureSite:{port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving; returns quickly even if handlers are blocked (hang/slow/large)."""
        self._stop.set()
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.close_connections(timeout=2.0)
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=2.0)

    def __enter__(self) -> FixtureSite:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- addresses -------------------------------------------------------- #

    @property
    def base(self) -> str:
        """``http://127.0.0.1:PORT`` (kept after stop, for looking up ``served``)."""
        if self._base is None:
            raise RuntimeError("FixtureSite not started")
        return self._base

    def url(self, path: str) -> str:
        if not path.startswith("/"):
            raise ValueError(f"path must start with '/': {path!r}")
        return self.base + path

    # -- expectations ----------------------------------------------------- #

    def expected_payload_sha256(self, path: str) -> str:
        """SHA-256 hex of the body a GET of ``path`` sends (what ``served`` will hold).

        Raises ``ValueError`` for a path that never answers (``HANGING``).
        """
        route = self._route(_split_target(path))
        if route.kind == "hang":
            raise ValueError(f"{path} never answers")
        if route.kind == "chunked":
            return hashlib.sha256(b"".join(route.pieces)).hexdigest()
        if route.kind == "large":
            if self._large_sha256 is None:
                hasher = hashlib.sha256()
                for chunk in _large_video_chunks(self.large_video_bytes):
                    hasher.update(chunk)
                self._large_sha256 = hasher.hexdigest()
            return self._large_sha256
        return hashlib.sha256(route.body).hexdigest()

    def decoded_body(self, path: str) -> bytes:
        """Body of ``path`` with transfer/content coding removed (chunked, gzip).

        Not available for the large video or a hanging path.
        """
        route = self._route(_split_target(path))
        if route.kind in ("hang", "large"):
            raise ValueError(f"no in-memory body for {path}")
        if route.kind == "chunked":
            return b"".join(_unframe(piece) for piece in route.pieces)
        if ("Content-Encoding", "gzip") in route.headers:
            return gzip.decompress(route.body)
        return route.body

    # -- internals (used by the handler) ---------------------------------- #

    def _route(self, path: str) -> _Route:
        if path == REDIRECT_HOP_PATH:
            return _redirect_route(302, self.base + ARTICLE_PATH)
        return self._routes.get(path, _NOT_FOUND)

    def _record_request(self, method: str, target: str, cookie: str | None = None) -> None:
        with self._lock:
            self.requests.append(target)
            self.request_log.append((method, target))
            if cookie:
                self.cookies_seen.append(cookie)

    def requests_with_cookie(self, value: str) -> int:
        """How many requests carried a Cookie header containing ``value``."""
        with self._lock:
            return sum(value in cookie for cookie in self.cookies_seen)

    def _served_begin(self, url: str, digest: str) -> str | None:
        with self._lock:
            previous = self.served.get(url)
            self.served[url] = digest
            return previous

    def _served_abort(self, url: str, previous: str | None) -> None:
        with self._lock:
            if previous is None:
                self.served.pop(url, None)
            else:
                self.served[url] = previous


def _unframe(piece: bytes) -> bytes:
    size_line, _, rest = piece.partition(b"\r\n")
    size = int(size_line.split(b";")[0], 16)
    return rest[:size]
