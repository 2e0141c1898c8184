"""Tests for archiver.web.discover: real parsing of inline fixtures, no network."""

from __future__ import annotations

import codecs
import random

import pytest

from archiver.web import discover
from archiver.web.discover import (
    Found,
    PageInfo,
    is_dash,
    is_hls,
    parse_css,
    parse_dash,
    parse_hls,
    parse_html,
    sniff_charset,
    video_role,
)

PAGE = "https://news.example/section/story.html"


def urls(items: tuple[Found, ...]) -> list[str]:
    return [f.url for f in items]


def by_via(items: tuple[Found, ...], via: str) -> list[str]:
    return [f.url for f in items if f.via == via]


def html(body: str, base: str = PAGE, content_type: str | None = None) -> PageInfo:
    return parse_html(body.encode("utf-8"), base, content_type or "text/html; charset=utf-8")


# ------------------------------------------------------------------ charset


def test_windows_1251_meta_charset_decodes_cyrillic_title() -> None:
    doc = (
        '<!doctype html><html lang="ru"><head><meta charset="windows-1251">'
        "<title>Новости дня: пожар</title></head><body><p>Текст</p></body></html>"
    )
    body = doc.encode("cp1251")
    assert sniff_charset(body, "text/html") == "cp1251"
    info = parse_html(body, PAGE, "text/html")
    assert info.title == "Новости дня: пожар"
    assert info.charset == "cp1251"
    assert info.language == "ru"


def test_http_equiv_content_type_meta() -> None:
    doc = (
        '<html><head><meta http-equiv="Content-Type" content="text/html; charset=koi8-r">'
        "<title>Привет</title>"
    )
    body = doc.encode("koi8_r")
    assert sniff_charset(body, None) == "koi8-r"
    assert parse_html(body, PAGE).title == "Привет"


def test_http_charset_beats_meta() -> None:
    body = '<meta charset="windows-1251"><title>café</title>'.encode()
    assert sniff_charset(body, "text/html; charset=UTF-8") == "utf-8"
    assert sniff_charset(body, 'text/html; charset="utf-8"') == "utf-8"
    info = parse_html(body, PAGE, "text/html; charset=utf-8")
    assert info.title == "café"
    assert info.charset == "utf-8"


def test_unknown_http_label_falls_back_to_meta() -> None:
    body = '<meta charset="windows-1251"><title>Да</title>'.encode("cp1251")
    assert sniff_charset(body, "text/html; charset=no-such-charset") == "cp1251"


def test_bom_wins_over_meta_and_http() -> None:
    body = codecs.BOM_UTF8 + '<meta charset="windows-1251"><title>Ёж</title>'.encode()
    assert sniff_charset(body, None) == "utf-8"
    assert sniff_charset(body, "text/html; charset=iso-8859-1") == "utf-8"
    info = parse_html(body, PAGE, "text/html; charset=iso-8859-1")
    assert info.title == "Ёж"


def test_utf16_bom_page() -> None:
    body = codecs.BOM_UTF16_LE + '<title>Ωmega</title><img src="a.png">'.encode("utf-16-le")
    info = parse_html(body, PAGE)
    assert info.charset == "utf-16-le"
    assert info.title == "Ωmega"
    assert urls(info.resources) == ["https://news.example/section/a.png"]


def test_default_and_whatwg_labels() -> None:
    assert sniff_charset(b"<title>x</title>", None) == "cp1252"
    # WHATWG: latin1 / ascii labels mean windows-1252.
    assert sniff_charset(b"", "text/html; charset=ISO-8859-1") == "cp1252"
    assert sniff_charset(b'<meta charset="us-ascii">', None) == "cp1252"
    # A meta declaring UTF-16 (no BOM) means UTF-8.
    assert sniff_charset(b'<meta charset="utf-16">', None) == "utf-8"
    # The prescan only looks at the first 1024 bytes.
    late = b"<!--" + b"x" * 1100 + b'--><meta charset="windows-1251">'
    assert sniff_charset(late, None) == "cp1252"
    # Default windows-1252 decodes smart quotes.
    assert parse_html(b"<title>\x93hi\x94</title>", PAGE).title == "\u201chi\u201d"


# --------------------------------------------------------------- HTML rules


def test_link_rels_scripts_and_embedded_things() -> None:
    info = html(
        """<html><head>
        <link rel="stylesheet" href="/css/main.css">
        <link rel="alternate stylesheet" href="alt.css">
        <link rel="shortcut icon" href="/favicon.ico">
        <link rel="apple-touch-icon" href="/touch.png">
        <link rel="mask-icon" href="/mask.svg">
        <link rel="preload" href="/font.woff2" as="font">
        <link rel="modulepreload" href="/mod.js">
        <link rel="manifest" href="/site.webmanifest">
        <link rel="canonical" href="/canonical">
        <link rel="alternate" href="/feed.xml">
        <script src="/js/app.js"></script>
        <script>var x = "<img src='not-an-element.png'>";</script>
        </head><body background="/bg.gif">
        <input type="image" src="/submit.png"><input type="text" src="/no.png">
        <embed src="/flash.swf"><object data="/doc.pdf"></object>
        </body></html>"""
    )
    assert [(f.url, f.via, f.expand) for f in info.resources] == [
        ("https://news.example/css/main.css", "link[rel=stylesheet]", True),
        ("https://news.example/section/alt.css", "link[rel=stylesheet]", True),
        ("https://news.example/favicon.ico", "link[rel=icon]", False),
        ("https://news.example/touch.png", "link[rel=apple-touch-icon]", False),
        ("https://news.example/mask.svg", "link[rel=mask-icon]", False),
        ("https://news.example/font.woff2", "link[rel=preload]", False),
        ("https://news.example/mod.js", "link[rel=modulepreload]", False),
        ("https://news.example/site.webmanifest", "link[rel=manifest]", False),
        ("https://news.example/js/app.js", "script[src]", False),
        ("https://news.example/bg.gif", "body[background]", False),
        ("https://news.example/submit.png", "input[type=image][src]", False),
        ("https://news.example/flash.swf", "embed[src]", False),
        ("https://news.example/doc.pdf", "object[data]", False),
    ]
    assert {f.role for f in info.resources} == {"requisite"}
    assert info.outlinks == ()


def test_img_src_and_srcset_edge_cases() -> None:
    info = html(
        """<img src=" /a.png " srcset="a.jpg?x=1,2 1x, b.jpg 2x,c.jpg">
        <img srcset="d.jpg,e.jpg 2x">
        <img srcset=",, f.jpg 100w,g.jpg 200w,  h.jpg,  ">
        <img srcset="data:image/png;base64,AAAA 1x, real.jpg 2x">
        <img srcset="i.jpg (a, b) 1x, j.jpg 2x">
        <picture><source srcset="k.webp 1x, l.webp 2x" type="image/webp"><img src="m.jpg"></picture>
        <img srcset="">"""
    )
    base = "https://news.example/section/"
    assert [(f.url, f.via) for f in info.resources] == [
        ("https://news.example/a.png", "img[src]"),
        (base + "a.jpg?x=1,2", "img[srcset]"),
        (base + "b.jpg", "img[srcset]"),
        (base + "c.jpg", "img[srcset]"),
        # No whitespace after the comma: one URL, per the HTML spec.
        (base + "d.jpg,e.jpg", "img[srcset]"),
        (base + "f.jpg", "img[srcset]"),
        (base + "g.jpg", "img[srcset]"),
        (base + "h.jpg", "img[srcset]"),
        (base + "real.jpg", "img[srcset]"),
        (base + "i.jpg", "img[srcset]"),
        (base + "j.jpg", "img[srcset]"),
        (base + "k.webp", "source[srcset]"),
        (base + "l.webp", "source[srcset]"),
        (base + "m.jpg", "img[src]"),
    ]


def test_srcset_parser_directly() -> None:
    parse = discover._srcset_urls
    assert parse("a.jpg 1x,b.jpg 2x") == ["a.jpg", "b.jpg"]
    assert parse("a.jpg, b.jpg") == ["a.jpg", "b.jpg"]
    assert parse("a.jpg,b.jpg") == ["a.jpg,b.jpg"]
    assert parse("a.jpg,, b.jpg") == ["a.jpg", "b.jpg"]
    assert parse("  \t\n") == []
    assert parse("x.jpg (1, 2) 1x ,y.jpg") == ["x.jpg", "y.jpg"]
    assert parse("x.jpg (unclosed, y.jpg") == ["x.jpg"]


def test_video_audio_track_poster() -> None:
    info = html(
        """<video poster="/poster.jpg" src="/direct.mp4">
          <source src="/hls/master.m3u8" type="application/x-mpegURL">
          <source src="/stream?id=7" type="application/dash+xml">
          <source src="/movie.webm" type="video/webm">
          <source src="/dash/manifest.MPD">
          <track kind="subtitles" src="/subs.vtt">
        </video>
        <audio src="/pod.mp3"><source src="/pod.ogg" type="audio/ogg"></audio>
        <audio><source src="/radio" type="audio/mpegurl"></audio>"""
    )
    assert [(f.url, f.role, f.via) for f in info.resources] == [
        ("https://news.example/poster.jpg", "requisite", "video[poster]"),
        ("https://news.example/direct.mp4", "video", "video[src]"),
        ("https://news.example/hls/master.m3u8", "video-manifest", "video>source[src]"),
        ("https://news.example/stream?id=7", "video-manifest", "video>source[src]"),
        ("https://news.example/movie.webm", "video", "video>source[src]"),
        ("https://news.example/dash/manifest.MPD", "video-manifest", "video>source[src]"),
        ("https://news.example/subs.vtt", "requisite", "track[src]"),
        ("https://news.example/pod.mp3", "video", "audio[src]"),
        ("https://news.example/pod.ogg", "video", "audio>source[src]"),
        ("https://news.example/radio", "video-manifest", "audio>source[src]"),
    ]
    assert not any(f.expand for f in info.resources)


def test_meta_og_video_variants_images_and_player() -> None:
    info = html(
        """<head>
        <meta property="og:video" content="https://cdn.example/v/clip.mp4">
        <meta property="og:video:url" content="/v/clip.m3u8">
        <meta property="og:video:secure_url" content="https://cdn.example/v/clip.mpd">
        <meta name="twitter:player:stream" content="https://cdn.example/v/stream.mp4">
        <meta property="og:image" content="/img/share.jpg">
        <meta property="og:image:secure_url" content="https://cdn.example/share2.jpg">
        <meta name="twitter:image" content="/img/tw.jpg">
        <meta name="twitter:player" content="https://player.example/embed/9">
        <meta property="og:title" content="/not-a-url">
        <meta property="og:video" content="javascript:alert(1)">
        </head>"""
    )
    assert [(f.url, f.role, f.via, f.expand) for f in info.resources] == [
        ("https://cdn.example/v/clip.mp4", "video", "meta[og:video]", False),
        ("https://news.example/v/clip.m3u8", "video-manifest", "meta[og:video:url]", False),
        (
            "https://cdn.example/v/clip.mpd",
            "video-manifest",
            "meta[og:video:secure_url]",
            False,
        ),
        (
            "https://cdn.example/v/stream.mp4",
            "video",
            "meta[twitter:player:stream]",
            False,
        ),
        ("https://news.example/img/share.jpg", "requisite", "meta[og:image]", False),
        ("https://cdn.example/share2.jpg", "requisite", "meta[og:image:secure_url]", False),
        ("https://news.example/img/tw.jpg", "requisite", "meta[twitter:image]", False),
        ("https://player.example/embed/9", "iframe", "meta[twitter:player]", True),
    ]


def test_iframes_frames_and_outlinks() -> None:
    info = html(
        """<iframe src="https://www.youtube.com/embed/abc?x=1#t=5"></iframe>
        <iframe srcdoc="<p>x</p>"></iframe><iframe src="about:blank"></iframe>
        <a href="/other#frag">1</a><a href="/other">dup</a><a href="#top">self</a>
        <a href="mailto:x@y.z">m</a><a href="javascript:void(0)">j</a><a href="">empty</a>
        <a href="tel:123">t</a><a name="anchor">no href</a>
        <map><area href="https://elsewhere.example/map" shape="rect"></map>
        <a href="HTTPS://UPPER.example/Path">u</a>"""
    )
    assert [(f.url, f.role, f.via, f.expand) for f in info.resources] == [
        ("https://www.youtube.com/embed/abc?x=1", "iframe", "iframe[src]", True),
    ]
    assert [(f.url, f.role, f.via) for f in info.outlinks] == [
        ("https://news.example/other", "outlink", "a[href]"),
        ("https://news.example/section/story.html", "outlink", "a[href]"),
        ("https://elsewhere.example/map", "outlink", "area[href]"),
        ("https://UPPER.example/Path", "outlink", "a[href]"),
    ]


def test_frame_in_frameset_document() -> None:
    info = html('<html><frameset><frame src="/nav.html"><frame src="main.html"></frameset>')
    assert [(f.url, f.role, f.via, f.expand) for f in info.resources] == [
        ("https://news.example/nav.html", "iframe", "frame[src]", True),
        ("https://news.example/section/main.html", "iframe", "frame[src]", True),
    ]


def test_base_href_is_honoured_everywhere() -> None:
    info = html(
        """<html><head><title>t</title>
        <link rel="stylesheet" href="before-base.css">
        <base href="https://static.example/assets/v2/">
        <base href="https://ignored.example/">
        <style>body { background: url(img/bg.png) }</style>
        </head><body><img src="pic.png"><img src="/root.png"><a href="../up.html">x</a>
        <div style="background-image: url('div.png')"></div>
        <img src="//other.example/proto.png"></body></html>"""
    )
    assert urls(info.resources) == [
        "https://static.example/assets/v2/before-base.css",
        "https://static.example/assets/v2/img/bg.png",
        "https://static.example/assets/v2/pic.png",
        "https://static.example/root.png",
        "https://static.example/assets/v2/div.png",
        "https://other.example/proto.png",
    ]
    assert urls(info.outlinks) == ["https://static.example/assets/up.html"]


def test_relative_base_href_and_bad_base() -> None:
    info = html('<base href="/cdn/"><img src="x.png">')
    assert urls(info.resources) == ["https://news.example/cdn/x.png"]
    info = html('<base href="javascript:alert(1)"><img src="x.png">')
    assert urls(info.resources) == ["https://news.example/section/x.png"]


def test_style_element_and_attribute_css() -> None:
    info = html(
        """<style>
          @import "print.css" print;
          @import url(theme.css);
          @font-face { font-family: F; src: url("/f.woff2") format("woff2"), url(/f.woff) }
          @media (min-width: 10px) { .a { background: url( 'a.png' ) } }
          .b { background-image: url(data:image/png;base64,AAAA) }
          .c { background: image-set("c1.png" 1x, url(c2.png) 2x) }
          /* url(commented.png) */
        </style>
        <p style="background:url(p.png)">x</p>"""
    )
    base = "https://news.example/section/"
    assert [(f.url, f.via, f.expand) for f in info.resources] == [
        (base + "print.css", "css @import", True),
        (base + "theme.css", "css @import", True),
        ("https://news.example/f.woff2", "css url()", False),
        ("https://news.example/f.woff", "css url()", False),
        (base + "a.png", "css url()", False),
        (base + "c1.png", "css url()", False),
        (base + "c2.png", "css url()", False),
        (base + "p.png", "css url()", False),
    ]


def test_json_ld_list_graph_nested_and_invalid() -> None:
    info = html(
        """<head>
        <script type="application/ld+json">{ this is not json </script>
        <script type="application/ld+json">
        [{"@context": "https://schema.org", "@graph": [
          {"@type": "WebPage", "name": "x",
           "mainEntity": {"@type": ["VideoObject", "CreativeWork"],
                          "contentUrl": "/media/main.m3u8",
                          "embedUrl": "https://player.example/e/1",
                          "thumbnailUrl": ["/th/1.jpg", "/th/2.jpg"]}},
          {"@type": "NewsArticle", "headline": "H",
           "author": [{"@type": "Person", "name": "Ann Lee"}, {"@type": "Person", "name": "Bo"}],
           "datePublished": "2024-03-01T10:00:00+01:00",
           "video": {"@type": "schema:VideoObject", "contentUrl": "https://cdn.example/v.mp4",
                     "thumbnailUrl": "/th/3.jpg"}}
        ]}]
        </script>
        <script type="application/ld+json">{"@type": "VideoObject",
          "contentUrl": "/media/stream", "encodingFormat": "application/dash+xml"}</script>
        <script type="application/ld+json">{"@type": "ImageObject",
          "contentUrl": "/no.jpg"}</script>
        <script type="text/javascript">{"@type": "VideoObject", "contentUrl": "/no.mp4"}</script>
        </head>"""
    )
    assert [(f.url, f.role, f.via, f.expand) for f in info.resources] == [
        (
            "https://news.example/media/main.m3u8",
            "video-manifest",
            "json-ld VideoObject.contentUrl",
            False,
        ),
        ("https://player.example/e/1", "iframe", "json-ld VideoObject.embedUrl", True),
        (
            "https://news.example/th/1.jpg",
            "requisite",
            "json-ld VideoObject.thumbnailUrl",
            False,
        ),
        (
            "https://news.example/th/2.jpg",
            "requisite",
            "json-ld VideoObject.thumbnailUrl",
            False,
        ),
        ("https://cdn.example/v.mp4", "video", "json-ld VideoObject.contentUrl", False),
        (
            "https://news.example/th/3.jpg",
            "requisite",
            "json-ld VideoObject.thumbnailUrl",
            False,
        ),
        (
            "https://news.example/media/stream",
            "video-manifest",
            "json-ld VideoObject.contentUrl",
            False,
        ),
    ]
    assert info.author == "Ann Lee, Bo"
    assert info.published_at == "2024-03-01T10:00:00+01:00"


def test_metadata_priority() -> None:
    info = html(
        """<html lang=" en-GB "><head><title>
          Breaking:   news </title>
        <meta property="article:author" content="https://news.example/staff/jo">
        <meta name="author" content="Jo Writer">
        <meta property="article:published_time" content="2023-12-31T23:59:00Z">
        <script type="application/ld+json">{"@type": "Article", "author": "LD Person",
          "datePublished": "2020-01-01"}</script>
        </head><body><svg><title>svg title</title></svg></body></html>"""
    )
    assert info.title == "Breaking: news"
    assert info.language == "en-GB"
    assert info.author == "Jo Writer"
    assert info.published_at == "2023-12-31T23:59:00Z"

    info = html(
        '<meta property="article:author" content="Jo"><script type="application/ld+json">'
        '{"@type": "NewsArticle", "author": {"name": "X"}}</script>'
    )
    assert info.author == "Jo"
    assert info.published_at is None

    info = html(
        '<script type="application/ld+json">{"@type": "BlogPosting", '
        '"author": {"@type": "Person", "name": "Blogger"}, "datePublished": "2021"}</script>'
    )
    assert (info.author, info.published_at) == ("Blogger", "2021")

    info = html("<body><svg><title>icon</title></svg><title>late</title></body>")
    assert info.title == "late"

    info = html("<p>nothing</p>")
    assert (info.title, info.author, info.published_at, info.language) == (None,) * 4


def test_scheme_filtering_whitespace_and_fragments() -> None:
    info = html(
        """<img src="data:image/gif;base64,R0lGOD"><img src="blob:https://x/1">
        <img src="about:blank"><img src=""><img src="   "><img>
        <script src="javascript:void(0)"></script>
        <img src="  ftp://files.example/x.png"><img src="file:///etc/passwd">
        <img src="
           /spaced/pic.png#part  "><img src="/with space.png">
        <img src="https://example.org"><img src="http://[broken/x.png">"""
    )
    assert urls(info.resources) == [
        "https://news.example/spaced/pic.png",
        "https://news.example/with%20space.png",
        "https://example.org/",
    ]


def test_dedup_first_wins_and_expand_upgrade() -> None:
    info = html(
        """<link rel="preload" href="/s.css" as="style">
        <img src="/x.png"><img srcset="/x.png 2x"><div style="background:url(/x.png)"></div>
        <link rel="stylesheet" href="/s.css">
        <video src="/v.mp4"></video><meta property="og:video" content="/v.mp4">"""
    )
    assert [(f.url, f.via, f.expand) for f in info.resources] == [
        ("https://news.example/s.css", "link[rel=stylesheet]", True),
        ("https://news.example/x.png", "img[src]", False),
        ("https://news.example/v.mp4", "video[src]", False),
    ]


def test_meta_refresh_is_a_redirect() -> None:
    info = html('<meta http-equiv="refresh" content="0; URL=\'/moved.html\'">')
    assert [(f.url, f.role, f.via, f.expand) for f in info.resources] == [
        ("https://news.example/moved.html", "redirect", "meta[http-equiv=refresh]", True),
    ]
    assert html('<meta http-equiv="refresh" content="30">').resources == ()
    assert urls(html('<meta http-equiv="refresh" content="1;next.html">').resources) == [
        "https://news.example/section/next.html"
    ]


def test_noscript_content_is_scanned() -> None:
    info = html('<noscript><img src="/fallback.jpg"></noscript>')
    assert urls(info.resources) == ["https://news.example/fallback.jpg"]


def test_body_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(discover, "MAX_BODY", 40)
    body = b'<img src="/first.png">' + b" " * 100 + b'<img src="/late.png">'
    assert urls(parse_html(body, PAGE).resources) == ["https://news.example/first.png"]


# ---------------------------------------------------------------------- CSS


def test_parse_css_bytes_and_str() -> None:
    css = (
        '@charset "utf-8";\n'
        '@import "a.css";\n'
        "@import url(b.css) screen;\n"
        '@import url("c.css");\n'
        "div { background: url(img/d.png) no-repeat; }\n"
        "span { background: URL(  'e.png'  ) }\n"
        '.x { content: "url(not-a-url.png)"; }\n'
        "@font-face { src: url(/fonts/f.woff2) format('woff2') }\n"
        ".y { background: url(#svgfilter) }\n"
        ".z { mask: url(img/d.png) }\n"
    )
    expected = [
        ("https://h.example/css/a.css", "css @import", True),
        ("https://h.example/css/b.css", "css @import", True),
        ("https://h.example/css/c.css", "css @import", True),
        ("https://h.example/css/img/d.png", "css url()", False),
        ("https://h.example/css/e.png", "css url()", False),
        ("https://h.example/fonts/f.woff2", "css url()", False),
        ("https://h.example/css/main.css", "css url()", False),
    ]
    base = "https://h.example/css/main.css"
    for body in (css, css.encode()):
        found = parse_css(body, base)
        assert [(f.url, f.via, f.expand) for f in found] == expected
        assert {f.role for f in found} == {"requisite"}


def test_parse_css_broken() -> None:
    assert urls(parse_css("a { background: url(x.png", "https://h/")) == ["https://h/x.png"]
    assert urls(parse_css('@import "i.css', "https://h/")) == ["https://h/i.css"]
    assert parse_css("}}}{{{ @import ; url() url('') ((((", "https://h/") == ()
    assert parse_css(b"\xff\xfe\x00garbage", "https://h/") == ()


# ------------------------------------------------------------ type sniffing


def test_is_hls_is_dash_video_role() -> None:
    assert is_hls("https://x/a/master.M3U8?token=1", None)
    assert is_hls("https://x/play", "application/vnd.apple.mpegurl")
    assert is_hls("https://x/play", "Application/X-MPEGURL; charset=utf-8")
    assert is_hls("https://x/play", "audio/mpegurl")
    assert not is_hls("https://x/a.m3u8.html", "text/html")
    assert not is_hls("https://x/?f=a.m3u8", None)
    assert is_dash("https://x/manifest.mpd", None)
    assert is_dash("https://x/m", "application/dash+xml")
    assert not is_dash("https://x/m.mp4", "video/mp4")
    assert video_role("https://x/v.mp4", None) == "video"
    assert video_role("https://x/v.mp4", "video/mp4") == "video"
    assert video_role("https://x/v", "application/x-mpegURL") == "video-manifest"
    assert video_role("https://x/v.mpd", None) == "video-manifest"
    assert video_role("https://x/v.m3u8", "video/mp4") == "video-manifest"


# ---------------------------------------------------------------------- HLS

MASTER = b"""#EXTM3U
#EXT-X-VERSION:6
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="aac-lo",NAME="en",URI="audio/lo/en.m3u8"
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="aac-hi",NAME="en",DEFAULT=YES,URI="audio/hi/en.m3u8"
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="aac-hi",NAME="de",URI="audio/hi/de.m3u8"
#EXT-X-MEDIA:TYPE=SUBTITLES,GROUP-ID="subs",NAME="en",URI="subs/en.m3u8"
#EXT-X-MEDIA:TYPE=SUBTITLES,GROUP-ID="subs",NAME="fr",URI="/subs/fr.m3u8"
#EXT-X-MEDIA:TYPE=CLOSED-CAPTIONS,GROUP-ID="cc",NAME="cc",INSTREAM-ID="CC1"
#EXT-X-STREAM-INF:BANDWIDTH=800000,RESOLUTION=640x360,AUDIO="aac-lo",SUBTITLES="subs"
low/index.m3u8
#EXT-X-STREAM-INF:BANDWIDTH=5000000,RESOLUTION=1920x1080,AUDIO="aac-hi",SUBTITLES="subs"
https://cdn2.example/high/index.m3u8
#EXT-X-I-FRAME-STREAM-INF:BANDWIDTH=100000,URI="iframes.m3u8"
"""
MASTER_URL = "https://v.example/show/master.m3u8"


def test_hls_master() -> None:
    found = parse_hls(MASTER, MASTER_URL)
    assert [(f.url, f.role, f.via, f.expand) for f in found] == [
        ("https://v.example/show/low/index.m3u8", "video-manifest", "hls variant", False),
        ("https://cdn2.example/high/index.m3u8", "video-manifest", "hls variant", True),
        ("https://v.example/show/audio/hi/en.m3u8", "video-manifest", "hls audio", True),
        ("https://v.example/show/audio/hi/de.m3u8", "video-manifest", "hls audio", True),
        ("https://v.example/show/subs/en.m3u8", "video-manifest", "hls subtitles", True),
        ("https://v.example/subs/fr.m3u8", "video-manifest", "hls subtitles", True),
    ]


def test_hls_master_without_audio_group_takes_all_audio() -> None:
    body = b"""#EXTM3U
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="a",NAME="en",URI="a1.m3u8"
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="b",NAME="de",URI="a2.m3u8"
#EXT-X-STREAM-INF:BANDWIDTH=300
v1.m3u8
#EXT-X-STREAM-INF:BANDWIDTH=900
v2.m3u8
#EXT-X-STREAM-INF:BANDWIDTH=900
v3.m3u8
"""
    found = parse_hls(body, "https://h/p/m.m3u8")
    assert [(f.url, f.via, f.expand) for f in found] == [
        ("https://h/p/v1.m3u8", "hls variant", False),
        ("https://h/p/v2.m3u8", "hls variant", True),
        ("https://h/p/v3.m3u8", "hls variant", False),
        ("https://h/p/a1.m3u8", "hls audio", True),
        ("https://h/p/a2.m3u8", "hls audio", True),
    ]


def test_hls_master_with_a_bad_attribute_keeps_the_rest() -> None:
    body = MASTER.replace(b"BANDWIDTH=800000", b"BANDWIDTH=lots")
    assert urls(parse_hls(body, MASTER_URL)) == urls(parse_hls(MASTER, MASTER_URL))


MEDIA = b"""#EXTM3U
#EXT-X-VERSION:7
#EXT-X-TARGETDURATION:6
#EXT-X-MEDIA-SEQUENCE:0
#EXT-X-MAP:URI="init.mp4"
#EXT-X-KEY:METHOD=AES-128,URI="https://keys.example/k1",IV=0x00000000000000000000000000000001
#EXTINF:6.0,
seg1.m4s
#EXT-X-BYTERANGE:1000@0
#EXTINF:6.0,
seg2.m4s
#EXT-X-BYTERANGE:1000@1000
#EXTINF:6.0,
seg2.m4s
#EXT-X-KEY:METHOD=AES-128,URI="k2.key"
#EXTINF:6.0,
seg3.m4s?sig=a#frag
#EXT-X-KEY:METHOD=NONE
#EXT-X-MAP:URI="/init2.mp4"
#EXTINF:4.5,
https://cdn.example/seg4.m4s
#EXT-X-ENDLIST
"""


def test_hls_media_playlist_with_map_and_key() -> None:
    found = parse_hls(MEDIA, "https://v.example/show/low/index.m3u8")
    assert [(f.url, f.via) for f in found] == [
        ("https://v.example/show/low/init.mp4", "hls map"),
        ("https://keys.example/k1", "hls key"),
        ("https://v.example/show/low/seg1.m4s", "hls segment"),
        ("https://v.example/show/low/seg2.m4s", "hls segment"),
        ("https://v.example/show/low/k2.key", "hls key"),
        ("https://v.example/show/low/seg3.m4s?sig=a", "hls segment"),
        ("https://v.example/init2.mp4", "hls map"),
        ("https://cdn.example/seg4.m4s", "hls segment"),
    ]
    assert {f.role for f in found} == {"video-segment"}
    assert not any(f.expand for f in found)


def test_hls_skips_non_http_keys() -> None:
    body = b"""#EXTM3U
#EXT-X-KEY:METHOD=SAMPLE-AES,URI="skd://fairplay-key",KEYFORMAT="com.apple.streamingkeydelivery"
#EXTINF:5,
a.ts
"""
    assert urls(parse_hls(body, "https://h/x.m3u8")) == ["https://h/a.ts"]


def test_hls_garbage() -> None:
    assert parse_hls(b"", "https://h/x.m3u8") == ()
    assert parse_hls(b"<html>not a playlist</html>", "https://h/x.m3u8") == ()
    assert parse_hls(b"#EXTM3U\n#EXT-X-KEY:URI\n#EXTINF:zz,\na.ts\n", "https://h/x.m3u8") == (
        Found("https://h/a.ts", "video-segment", "hls segment"),
    )


# --------------------------------------------------------------------- DASH

MPD_NS = 'xmlns="urn:mpeg:dash:schema:mpd:2011"'
MPD_URL = "https://d.example/vod/title/manifest.mpd"


def dash(xml: str, url: str = MPD_URL) -> list[tuple[str, str]]:
    found = parse_dash(xml.encode(), url)
    assert all(f.role == "video-segment" and not f.expand for f in found)
    return [(f.url, f.via) for f in found]


def test_dash_segment_template_with_timeline() -> None:
    xml = f"""<?xml version="1.0"?>
<MPD {MPD_NS} type="static" mediaPresentationDuration="PT10S">
 <Period id="p0">
  <AdaptationSet mimeType="video/mp4">
   <SegmentTemplate timescale="1000" initialization="$RepresentationID$/init.mp4"
                    media="$RepresentationID$/t$Time$-n$Number$.m4s" startNumber="5">
    <SegmentTimeline>
     <S t="0" d="2000" r="2"/>
     <S d="1000"/>
     <S d="1500" r="-1"/>
    </SegmentTimeline>
   </SegmentTemplate>
   <Representation id="low" bandwidth="100000"/>
   <Representation id="hi" bandwidth="900000"/>
   <Representation id="mid" bandwidth="500000"/>
  </AdaptationSet>
  <AdaptationSet mimeType="audio/mp4">
   <Representation id="a1" bandwidth="64000">
    <SegmentTemplate media="a/$Number%05d$.m4s" initialization="a/init-$Bandwidth$.mp4"
                     startNumber="3">
     <SegmentTimeline><S t="100" d="5" r="1"/><S t="120" d="5"/></SegmentTimeline>
    </SegmentTemplate>
   </Representation>
  </AdaptationSet>
 </Period>
</MPD>"""
    base = "https://d.example/vod/title/"
    assert dash(xml) == [
        (base + "hi/init.mp4", "dash init"),
        (base + "hi/t0-n5.m4s", "dash segment"),
        (base + "hi/t2000-n6.m4s", "dash segment"),
        (base + "hi/t4000-n7.m4s", "dash segment"),
        (base + "hi/t6000-n8.m4s", "dash segment"),
        (base + "hi/t7000-n9.m4s", "dash segment"),
        (base + "hi/t8500-n10.m4s", "dash segment"),
        (base + "a/init-64000.mp4", "dash init"),
        (base + "a/00003.m4s", "dash segment"),
        (base + "a/00004.m4s", "dash segment"),
        (base + "a/00005.m4s", "dash segment"),
    ]


def test_dash_timeline_r_minus_one_until_next_t() -> None:
    xml = f"""<MPD {MPD_NS}><Period><AdaptationSet><Representation id="v" bandwidth="1">
      <SegmentTemplate media="$Time$.m4s">
        <SegmentTimeline><S t="10" d="4" r="-1"/><S t="20" d="1"/></SegmentTimeline>
      </SegmentTemplate></Representation></AdaptationSet></Period></MPD>"""
    base = "https://d.example/vod/title/"
    assert [u for u, _ in dash(xml)] == [base + n for n in ("10.m4s", "14.m4s", "18.m4s", "20.m4s")]
    # Without a known period end, an open-ended repeat yields its first segment only.
    live = xml.replace('<S t="20" d="1"/>', "")
    assert [u for u, _ in dash(live)] == [base + "10.m4s"]


def test_dash_segment_template_with_duration_and_override() -> None:
    xml = f"""<MPD {MPD_NS} type="static" mediaPresentationDuration="PT1M3.5S">
 <Period>
  <AdaptationSet contentType="video">
   <SegmentTemplate timescale="1000" duration="4000" initialization="init-$RepresentationID$.mp4"
                    media="$RepresentationID$/$Number$.m4s"/>
   <Representation id="v1" bandwidth="1000"/>
   <Representation id="v2" bandwidth="3000">
     <SegmentTemplate media="r/$RepresentationID$_$Bandwidth$_$Number%03d$$$.m4s"/>
   </Representation>
  </AdaptationSet>
 </Period>
</MPD>"""
    base = "https://d.example/vod/title/"
    # 63.5 s / 4 s = 15.875 -> 16 segments, numbered from 1.
    assert dash(xml) == [(base + "init-v2.mp4", "dash init")] + [
        (base + f"r/v2_3000_{n:03d}$.m4s", "dash segment") for n in range(1, 17)
    ]


def test_dash_period_durations_from_starts() -> None:
    xml = f"""<MPD {MPD_NS} mediaPresentationDuration="PT10S">
 <Period start="PT0S"><AdaptationSet><Representation id="a" bandwidth="1">
   <SegmentTemplate duration="2" media="p1-$Number$.m4s"/></Representation></AdaptationSet>
 </Period>
 <Period start="PT4S"><AdaptationSet><Representation id="b" bandwidth="1">
   <SegmentTemplate duration="2" startNumber="0" media="p2-$Number$.m4s"/></Representation>
   </AdaptationSet>
 </Period>
</MPD>"""
    names = [u.rsplit("/", 1)[1] for u, _ in dash(xml)]
    assert names == ["p1-1.m4s", "p1-2.m4s", "p2-0.m4s", "p2-1.m4s", "p2-2.m4s"]


def test_dash_segment_list_with_nested_base_urls() -> None:
    xml = f"""<MPD {MPD_NS} mediaPresentationDuration="PT6S">
 <BaseURL>https://cdn.example/root/</BaseURL>
 <Period>
  <BaseURL>p1/</BaseURL>
  <AdaptationSet>
   <BaseURL>video/</BaseURL>
   <Representation id="lo" bandwidth="10"><BaseURL>lo/</BaseURL>
    <SegmentList duration="2"><Initialization sourceURL="lo-init.mp4"/>
     <SegmentURL media="lo1.m4s"/></SegmentList>
   </Representation>
   <Representation id="hi" bandwidth="20"><BaseURL>hi/</BaseURL>
    <SegmentList duration="2">
     <Initialization sourceURL="init.mp4"/>
     <SegmentURL media="s1.m4s"/>
     <SegmentURL media="s2.m4s#x"/>
     <SegmentURL media="/abs/s3.m4s"/>
     <SegmentURL media="s1.m4s"/>
    </SegmentList>
   </Representation>
  </AdaptationSet>
  <AdaptationSet>
   <Representation id="audio" bandwidth="5">
    <BaseURL>https://audio.example/a/</BaseURL>
    <SegmentList><Initialization range="0-99"/><SegmentURL mediaRange="100-999"/></SegmentList>
   </Representation>
  </AdaptationSet>
 </Period>
</MPD>"""
    base = "https://cdn.example/root/p1/video/hi/"
    assert dash(xml) == [
        (base + "init.mp4", "dash init"),
        (base + "s1.m4s", "dash segment"),
        (base + "s2.m4s", "dash segment"),
        ("https://cdn.example/abs/s3.m4s", "dash segment"),
        ("https://audio.example/a/", "dash init"),
    ]


def test_dash_base_url_only_and_segment_base() -> None:
    xml = f"""<MPD xmlns:mpd="urn:mpeg:dash:schema:mpd:2011" {MPD_NS}
     mediaPresentationDuration="PT30S">
 <Period>
  <BaseURL>media/</BaseURL>
  <AdaptationSet mimeType="video/mp4">
   <Representation id="1" bandwidth="500000"><BaseURL>video_480.mp4</BaseURL>
    <SegmentBase indexRange="0-100"><Initialization range="0-50"/></SegmentBase>
   </Representation>
   <Representation id="2" bandwidth="2000000"><BaseURL>video_1080.mp4</BaseURL>
    <SegmentBase indexRange="0-100"><Initialization range="0-50"/></SegmentBase>
   </Representation>
  </AdaptationSet>
  <AdaptationSet mimeType="audio/mp4">
   <Representation id="3" bandwidth="128000"><BaseURL>../audio/a.m4a</BaseURL></Representation>
  </AdaptationSet>
  <AdaptationSet mimeType="text/vtt">
   <Representation id="4" bandwidth="1"><BaseURL>subs/en.vtt</BaseURL></Representation>
  </AdaptationSet>
  <AdaptationSet mimeType="video/mp4">
   <Representation id="5" bandwidth="1"/>
  </AdaptationSet>
 </Period>
</MPD>"""
    assert dash(xml) == [
        ("https://d.example/vod/title/media/video_1080.mp4", "dash segment"),
        ("https://d.example/vod/title/audio/a.m4a", "dash segment"),
        ("https://d.example/vod/title/media/subs/en.vtt", "dash segment"),
    ]


def test_dash_segment_count_is_capped() -> None:
    xml = f"""<MPD {MPD_NS} mediaPresentationDuration="P1000Y"><Period><AdaptationSet>
      <Representation id="v" bandwidth="1"><SegmentTemplate duration="1" media="$Number$.m4s">
      </SegmentTemplate></Representation>
      <Representation id="w" bandwidth="0"><SegmentTemplate media="w$Number$.m4s">
      <SegmentTimeline><S d="1" r="999999999999"/></SegmentTimeline></SegmentTemplate>
      </Representation></AdaptationSet></Period></MPD>"""
    found = parse_dash(xml.encode(), MPD_URL)
    assert len(found) == discover.MAX_SEGMENTS == 100_000
    assert found[-1].url == "https://d.example/vod/title/100000.m4s"


def test_dash_live_template_without_duration_is_not_enumerated() -> None:
    xml = f"""<MPD {MPD_NS} type="dynamic"><Period><AdaptationSet>
      <Representation id="v" bandwidth="1"><SegmentTemplate duration="2" initialization="i.mp4"
      media="$Number$.m4s"/></Representation></AdaptationSet></Period></MPD>"""
    assert dash(xml) == [("https://d.example/vod/title/i.mp4", "dash init")]


def test_iso_durations() -> None:
    parse = discover._iso_duration
    assert parse("PT1M3.5S") == 63.5
    assert parse("PT2H") == 7200
    assert parse("P1DT1S") == 86401
    assert parse("PT0,5S") == 0.5
    assert parse("garbage") is None
    assert parse(None) is None


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<MPD xmlns="urn:mpeg:dash:schema:mpd:2011"><Period><AdaptationSet>
<Representation id="x" bandwidth="1"><BaseURL>&lol9;.mp4</BaseURL></Representation>
</AdaptationSet></Period></MPD>
"""


def test_dash_xml_bomb_and_external_entity_are_refused() -> None:
    assert parse_dash(BILLION_LAUGHS, MPD_URL) == ()
    xxe = b"""<?xml version="1.0"?><!DOCTYPE m [<!ENTITY x SYSTEM "file:///etc/passwd">]>
<MPD xmlns="urn:mpeg:dash:schema:mpd:2011"><Period><AdaptationSet>
<Representation id="x" bandwidth="1"><BaseURL>a&x;.mp4</BaseURL></Representation>
</AdaptationSet></Period></MPD>"""
    assert parse_dash(xxe, MPD_URL) == ()


def test_dash_not_an_mpd() -> None:
    assert parse_dash(b"<html><body>x</body></html>", MPD_URL) == ()
    assert parse_dash(b"<MPD><Period><AdaptationSet>", MPD_URL) == ()
    assert parse_dash(b"", MPD_URL) == ()


# ----------------------------------------------------------- never raising

GARBAGE_SEEDS = [
    b"",
    b"\x00" * 64,
    b"\xff\xfe\xfd" * 50,
    b"<" * 5000,
    b"<div>" * 20000,
    b"<html><head><title>",
    b'<img srcset=",,,,(((((,,, 1x">',
    b'<script type="application/ld+json">' + b"[" * 100000 + b"</script>",
    b'<script type="application/ld+json">{"@type":"VideoObject","contentUrl":5,'
    b'"thumbnailUrl":[null,{"url":7}],"embedUrl":{"@id":"/e"}}</script>',
    b"<style>" + b"(" * 100000 + b"url(x)</style>",
    b'<meta charset="\xff\xfe"><meta http-equiv=content-type content=charset=>',
    b'<a href="http://[::1">x</a><img src="http://%zz:99999999/">',
    b"#EXTM3U\n#EXT-X-STREAM-INF:\n\n#EXT-X-MEDIA:TYPE=AUDIO\n#EXT-X-MAP\n",
    b"#EXTM3U\n#EXTINF:,\n#EXT-X-BYTERANGE:@\n\xff\n",
    b"<MPD><Period duration='PTxS'><AdaptationSet><Representation bandwidth='x'>"
    b"<SegmentTemplate duration='0' timescale='0' startNumber='q' media='$Number%999999d$'/>"
    b"</Representation></AdaptationSet></Period></MPD>",
    b"<MPD mediaPresentationDuration='PT5S'><Period><AdaptationSet><Representation>"
    b"<SegmentTemplate media='$Time$'><SegmentTimeline><S d='-5' r='-1'/><S/>"
    b"</SegmentTimeline></SegmentTemplate></Representation></AdaptationSet></Period></MPD>",
    b"\xef\xbb\xbf<?xml version='1.0' encoding='bogus'?><MPD/>",
]


def _check_all(body: bytes, rng: random.Random) -> None:
    content_type = rng.choice([None, "text/html", "text/html; charset=bogus", "x/y; charset="])
    info = parse_html(body, PAGE, content_type)
    assert isinstance(info, PageInfo)
    assert all(f.url.startswith(("http://", "https://")) for f in info.resources)
    assert all("#" not in f.url for f in info.resources + info.outlinks)
    assert isinstance(sniff_charset(body, content_type), str)
    for found in (
        parse_css(body, PAGE),
        parse_css(body.decode("latin-1"), PAGE),
        parse_hls(body, "https://h/x.m3u8"),
        parse_dash(body, MPD_URL),
    ):
        assert isinstance(found, tuple)
        assert all(isinstance(f, Found) for f in found)


def test_garbage_never_raises() -> None:
    rng = random.Random(1234)
    alphabet = list(b"<>/=\"' \n#:,;()[]{}$%@&!-ampxi0123456789") + list(range(256))
    fragments = [
        b"<img src=",
        b"<video><source src=",
        b"<base href=",
        b"#EXTM3U\n",
        b"#EXT-X-STREAM-INF:BANDWIDTH=",
        b"#EXTINF:",
        b"<MPD>",
        b"<SegmentTemplate media='$Number$'>",
        b"<S d='1' r='-1'/>",
        b"url(",
        b"@import ",
        b"srcset=",
        b'<script type="application/ld+json">',
    ]
    for body in GARBAGE_SEEDS:
        _check_all(body, rng)
    for _ in range(300):
        parts = []
        for _ in range(rng.randint(0, 30)):
            if rng.random() < 0.3:
                parts.append(rng.choice(fragments))
            else:
                parts.append(bytes(rng.choice(alphabet) for _ in range(rng.randint(0, 20))))
        body = b"".join(parts)
        _check_all(body, rng)
        if body:  # mutate a real fixture too
            fixture = bytearray(rng.choice([MASTER, MEDIA, BILLION_LAUGHS, b"<MPD/>"]))
            for _ in range(rng.randint(1, 10)):
                fixture[rng.randrange(len(fixture))] = rng.randrange(256)
            _check_all(bytes(fixture), rng)


def test_lazy_loading_attributes_and_srcdoc() -> None:
    html = b"""<html><body>
    <img src="/placeholder.gif" data-src="/real.jpg" data-srcset="/real-2x.jpg 2x">
    <iframe data-src="/embed/lazy"></iframe>
    <video data-src="/lazy.mp4" data-poster="/lazy-poster.jpg"></video>
    <iframe srcdoc="&lt;img src=/inline.png&gt;&lt;video src=/inline.mp4&gt;"></iframe>
    </body></html>"""
    info = parse_html(html, "http://x.test/page")
    got = {(f.url.removeprefix("http://x.test"), f.role, f.via) for f in info.resources}
    assert got == {
        ("/placeholder.gif", "requisite", "img[src]"),
        ("/real.jpg", "requisite", "img[data-src]"),
        ("/real-2x.jpg", "requisite", "img[data-srcset]"),
        ("/embed/lazy", "iframe", "iframe[data-src]"),
        ("/lazy-poster.jpg", "requisite", "video[data-poster]"),
        ("/lazy.mp4", "video", "video[data-src]"),
        ("/inline.png", "requisite", "img[src]"),
        ("/inline.mp4", "video", "video[src]"),
    }


def test_preloaded_video_keeps_its_video_role() -> None:
    html = b'<link rel=preload href="/m.m3u8" as=fetch><video src="/m.m3u8"></video>'
    (found,) = parse_html(html, "http://x.test/").resources
    assert (found.role, found.via) == ("video-manifest", "video[src]")


def test_unusable_declared_charsets_fall_back() -> None:
    for label in (b"idna", b"undefined", b"rot13"):
        info = parse_html(b"<meta charset=" + label + b"><title>t</title>", "http://x.test/")
        assert info.title == "t"


def test_srcdoc_lends_its_resources_but_not_its_title_links_or_refresh() -> None:
    html = (
        b'<title>Real page</title><iframe srcdoc="&lt;title&gt;Ad&lt;/title&gt;'
        b"&lt;meta http-equiv=refresh content='0;url=/ad'&gt;"
        b'&lt;a href=/ad-link&gt;x&lt;/a&gt;&lt;img src=/ad.png&gt;"></iframe>'
    )
    info = parse_html(html, "http://x.test/")
    assert info.title == "Real page"
    assert [(f.url, f.role) for f in info.resources] == [("http://x.test/ad.png", "requisite")]
    assert info.outlinks == ()


def test_the_parsed_copy_is_capped_at_512_levels_and_keeps_attributes() -> None:
    from archiver.web.discover import MAX_DEPTH, shallow

    deep = "<div>" * 600 + "<DIV style='background:url(/bg.png)'>x</DIV>" + "</div>" * 600
    flat = shallow(deep)
    assert flat.count("<div>") == MAX_DEPTH and flat.count("</div>") == MAX_DEPTH
    assert "<x-deep style='background:url(/bg.png)'>x</x-deep>" in flat
    assert shallow("<div><p>a</p></div>" * 5000) == "<div><p>a</p></div>" * 5000
    info = parse_html(deep.encode(), "http://example.org/")
    assert "http://example.org/bg.png" in [r.url for r in info.resources]
