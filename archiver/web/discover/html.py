"""References and metadata of HTML pages (:func:`parse_html`): one document-order pass
(``_HtmlScan``) over a tree parsed from a depth-capped copy (:func:`shallow`), social-media
embeds included (:data:`EMBED_VIAS`)."""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Iterator
from urllib.parse import urlsplit, urlunsplit

from selectolax.lexbor import LexborHTMLParser, LexborNode

from archiver.web import discover
from archiver.web.discover.charset import _decode, sniff_charset
from archiver.web.discover.css import parse_css
from archiver.web.discover.found import (
    _ASCII_WS,
    MAX_UNFETCHED,
    Found,
    PageInfo,
    Role,
    Unfetched,
    _Collector,
    _resolve,
    video_role,
)
from archiver.web.platforms import platform_of

_LINK_RELS = (
    "icon",
    "apple-touch-icon",
    "apple-touch-icon-precomposed",
    "mask-icon",
    "preload",
    "modulepreload",
    "manifest",
)
_META_VIDEO = ("og:video", "og:video:url", "og:video:secure_url", "twitter:player:stream")
_META_IMAGE = (
    "og:image",
    "og:image:url",
    "og:image:secure_url",
    "twitter:image",
    "twitter:image:src",
)
# data-* attributes that lazy-loading scripts turn into src
_LAZY_SRC = ("data-src", "data-lazy-src", "data-original")

# Social-media embeds: markup that a platform's widget script (served from the platform)
# turns into an iframe player once the page runs, so the HTML as served names the post
# but no iframe.  Each names one post, found under one of these vias; a capture hands it
# to the platform path (yt-dlp), never fetching the post's URL as a file, which the page's
# readers never load either (archiver.capture.frontier).
EMBED_TELEGRAM = "blockquote.telegram-post[data-telegram-post]"
EMBED_TELEGRAM_SCRIPT = "script[data-telegram-post]"
EMBED_TWEET = "blockquote.twitter-tweet"
EMBED_TWEET_VIDEO = "blockquote.twitter-video"
EMBED_INSTAGRAM = "blockquote.instagram-media[data-instgrm-permalink]"
EMBED_TIKTOK = "blockquote.tiktok-embed[cite]"
EMBED_TIKTOK_ID = "blockquote.tiktok-embed[data-video-id]"
EMBED_FB_VIDEO = ".fb-video[data-href]"
EMBED_FB_POST = ".fb-post[data-href]"
EMBED_LITE_YOUTUBE = "lite-youtube[videoid]"
EMBED_YOUTUBE_ID = "[data-youtube-id]"
EMBED_LITE_VIMEO = "lite-vimeo[videoid]"
EMBED_VIAS = frozenset(
    {
        EMBED_TELEGRAM,
        EMBED_TELEGRAM_SCRIPT,
        EMBED_TWEET,
        EMBED_TWEET_VIDEO,
        EMBED_INSTAGRAM,
        EMBED_TIKTOK,
        EMBED_TIKTOK_ID,
        EMBED_FB_VIDEO,
        EMBED_FB_POST,
        EMBED_LITE_YOUTUBE,
        EMBED_YOUTUBE_ID,
        EMBED_LITE_VIMEO,
    }
)
"""The ``via`` of every embedded post :func:`parse_html` finds (role ``iframe``, not
expanded: the widget's player is an iframe, but not at that URL)."""
# A post's URL, id or "channel/number" is short: a longer value is not one (and is not
# parsed, whatever it holds).
_MAX_EMBED_VALUE = 2048
# the same characters Telegram's widget accepts for a public channel's post
_TELEGRAM_POST = re.compile(r"[A-Za-z0-9_]{3,64}/[0-9]{1,15}")
_YOUTUBE_ID = re.compile(r"[A-Za-z0-9_-]{11}")
_NUMERIC_ID = re.compile(r"[0-9]{1,25}")
# a post's own path; what follows it (/photo/1, /video/1) and the query (?ref_src=...) is
# not the post's
_TWEET_PATH = re.compile(r"/(?:i/web|[A-Za-z0-9_]{1,15})/status(?:es)?/[0-9]{1,25}", re.ASCII)
# The post's link sits in the embed code a level or two below the blockquote (after the
# text, whose links may point elsewhere); the search goes no deeper, so that blockquotes
# nested in one another cost each node a few visits, not one per blockquote above it.
_TWEET_LINK_DEPTH = 4
_CLASS_SEPARATOR = re.compile(r"[ \t\n\r\f]+")  # ASCII whitespace only, as in HTML


def _srcset_urls(value: str) -> list[str]:
    """Candidate URLs of a srcset attribute (HTML spec algorithm)."""
    urls: list[str] = []
    n = len(value)
    pos = 0
    while True:
        while pos < n and (value[pos] in _ASCII_WS or value[pos] == ","):
            pos += 1
        if pos >= n:
            return urls
        start = pos
        while pos < n and value[pos] not in _ASCII_WS:
            pos += 1
        url = value[start:pos]
        if url.endswith(","):
            urls.append(url.rstrip(","))
            continue
        urls.append(url)
        # Skip the descriptors up to the next top-level comma.
        in_parens = False
        while pos < n:
            c = value[pos]
            pos += 1
            if in_parens:
                if c == ")":
                    in_parens = False
            elif c == "(":
                in_parens = True
            elif c == ",":
                break


def _refresh_url(content: str) -> str | None:
    """URL of a <meta http-equiv=refresh> content value, if any."""
    s = content.lstrip(_ASCII_WS)
    i = 0
    while i < len(s) and (s[i].isdigit() or s[i] == "."):
        i += 1
    s = s[i:]
    if not s or s[0] not in _ASCII_WS + ";,":
        return None
    s = s.lstrip(_ASCII_WS)
    if s[:1] in (";", ","):
        s = s[1:]
    s = s.lstrip(_ASCII_WS)
    if s[:3].lower() == "url":
        rest = s[3:].lstrip(_ASCII_WS)
        if rest.startswith("="):
            s = rest[1:].lstrip(_ASCII_WS)
    if s[:1] in ("'", '"'):
        quote = s[0]
        s = s[1:]
        end = s.find(quote)
        if end >= 0:
            s = s[:end]
    return s or None


def _type_names(obj: dict[str, object]) -> set[str]:
    raw = obj.get("@type")
    names = [raw] if isinstance(raw, str) else raw if isinstance(raw, list) else []
    out: set[str] = set()
    for name in names:
        if isinstance(name, str):
            out.add(re.split(r"[/:#]", name.strip())[-1])
    return out


def _json_strings(value: object, keys: tuple[str, ...] = ("url", "contentUrl", "@id")) -> list[str]:
    """Strings of a JSON-LD value: a string, objects with url/@id, or lists."""
    items = value if isinstance(value, list) else [value]
    out: list[str] = []
    for item in items:
        if isinstance(item, str):
            out.append(item)
        elif isinstance(item, dict):
            for key in keys:
                sub = item.get(key)
                if isinstance(sub, str):
                    out.append(sub)
                    break
    return out


def _json_walk(data: object) -> Iterator[dict[str, object]]:
    """Every JSON object in document order (iterative, any depth)."""
    stack: list[object] = [data]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            yield item
            stack.extend(reversed(list(item.values())))
        elif isinstance(item, list):
            stack.extend(reversed(item))


def _is_article(types: set[str]) -> bool:
    return any(t.endswith("Article") or t.endswith("Posting") for t in types)


def _in_svg(node: LexborNode) -> bool:
    parent = node.parent
    while parent is not None:
        if parent.tag == "svg":
            return True
        parent = parent.parent
    return False


class _HtmlScan:
    """Single document-order pass over a parsed page."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.unfetched: list[Unfetched] = []  # outlinks (mailto: and all) are never fetched
        self.resources = _Collector(self.unfetched)
        self.outlinks = _Collector()
        self.title: str | None = None
        self.language: str | None = None
        self.meta_author: str | None = None
        self.article_author: str | None = None
        self.meta_published: str | None = None
        self.ld_author: str | None = None
        self.ld_published: str | None = None
        self._seen_title = False
        self._seen_html = False
        self.in_srcdoc = False

    def res(self, raw: str | None, role: Role, via: str, expand: bool = False) -> None:
        self.resources.add_url(self.base, raw, role, via, expand)

    def css(self, text: str | None) -> None:
        if text:
            self.resources.extend(parse_css(text, self.base, self.unfetched))

    def srcset(self, raw: str | None, via: str) -> None:
        for url in _srcset_urls(raw or ""):
            self.res(url, "requisite", via)

    def video(self, raw: str | None, type_attr: str | None, via: str) -> None:
        if raw is None:
            return
        self.res(raw, video_role(raw.strip(), type_attr), via)

    def element(self, node: LexborNode) -> None:
        attrs = node.attributes
        handler = _TAG_HANDLERS.get(node.tag or "")
        if handler is not None:
            handler(self, node, attrs)
        if "style" in attrs:
            self.css(attrs["style"])
        if "data-href" in attrs or "data-youtube-id" in attrs:
            self.widget(attrs)

    def embed(self, url: str | None, platform: str, via: str) -> bool:
        """``url`` as the post a widget embeds, if it is one of ``platform``'s posts."""
        if url is None or platform_of(url) != platform:
            return False
        self.resources.add(Found(url, "iframe", via))
        return True

    def embed_url(self, raw: str | None, platform: str, via: str, query: bool = True) -> bool:
        """A post's URL as the embed code gives it (relative to the page's base), its
        query dropped unless ``query`` (tracking only: ``?utm_source=ig_embed``)."""
        if raw is None or len(raw) > _MAX_EMBED_VALUE:
            return False
        url = _resolve(self.base, raw)
        if url is not None and not query:
            url = url.split("?", 1)[0]
        return self.embed(url, platform, via)

    def widget(self, attrs: dict[str, str | None]) -> None:
        """Facebook's plugins (``class="fb-video" data-href``) and a YouTube id in a
        lazy player's ``data-youtube-id``, on any element."""
        classes = _classes(attrs)
        for name, via in (("fb-video", EMBED_FB_VIDEO), ("fb-post", EMBED_FB_POST)):
            if name in classes:
                self.embed_url(attrs.get("data-href"), "facebook", via)
        self.youtube(attrs.get("data-youtube-id"), EMBED_YOUTUBE_ID)

    def youtube(self, raw: str | None, via: str) -> None:
        value = (raw or "").strip(_ASCII_WS)
        if _YOUTUBE_ID.fullmatch(value):
            self.embed(f"https://www.youtube.com/watch?v={value}", "youtube", via)

    def telegram(self, raw: str | None, via: str) -> None:
        """``data-telegram-post="channel/123"``: the widget loads t.me/channel/123."""
        value = (raw or "").strip(_ASCII_WS)
        if _TELEGRAM_POST.fullmatch(value):
            self.embed(f"https://t.me/{value}", "telegram", via)

    def tweet(self, node: LexborNode, via: str) -> None:
        """The last link to a post inside a tweet's blockquote: the embed code ends with
        it ("— Name (@user) <a href=.../status/123>date</a>")."""
        found = None
        for href in _links_within(node, _TWEET_LINK_DEPTH):
            if len(href) <= _MAX_EMBED_VALUE:  # (a longer one is not kept in the cache)
                found = _tweet_url(self.base, href) or found
        if found is not None:
            self.resources.add(Found(found, "iframe", via))

    # One method per element name.
    def tag_html(self, node: LexborNode, attrs: dict[str, str | None]) -> None:
        if not self._seen_html:
            self._seen_html = True
            lang = (attrs.get("lang") or "").strip()
            self.language = lang or None

    def tag_title(self, node: LexborNode, attrs: dict[str, str | None]) -> None:
        if not self._seen_title and not _in_svg(node):
            self._seen_title = True
            title = " ".join(node.text(deep=True).split())
            self.title = title or None

    def tag_link(self, node: LexborNode, attrs: dict[str, str | None]) -> None:
        rels = (attrs.get("rel") or "").lower().split()
        href = attrs.get("href")
        if "stylesheet" in rels:
            self.res(href, "requisite", "link[rel=stylesheet]", True)
        else:
            for rel in _LINK_RELS:
                if rel in rels:
                    self.res(href, "requisite", f"link[rel={rel}]")
                    break
            else:
                return
            if "imagesrcset" in attrs:
                self.srcset(attrs["imagesrcset"], "link[imagesrcset]")

    def tag_script(self, node: LexborNode, attrs: dict[str, str | None]) -> None:
        if "src" in attrs:
            self.res(attrs["src"], "requisite", "script[src]")
        if "data-telegram-post" in attrs:
            self.telegram(attrs["data-telegram-post"], EMBED_TELEGRAM_SCRIPT)
        kind = (attrs.get("type") or "").split(";", 1)[0].strip().lower()
        if kind == "application/ld+json":
            self.json_ld(node.text(deep=True))

    def tag_style(self, node: LexborNode, attrs: dict[str, str | None]) -> None:
        self.css(node.text(deep=True))

    def tag_img(self, node: LexborNode, attrs: dict[str, str | None]) -> None:
        self.res(attrs.get("src"), "requisite", "img[src]")
        self.srcset(attrs.get("srcset"), "img[srcset]")
        self.lazy(attrs, "img")

    def lazy(self, attrs: dict[str, str | None], tag: str, role: Role = "requisite") -> None:
        """Lazy-loading attributes that scripts copy into src/srcset on scroll."""
        for name in _LAZY_SRC:
            if attrs.get(name):
                if role == "requisite":
                    self.res(attrs[name], role, f"{tag}[{name}]")
                elif role == "iframe":
                    self.res(attrs[name], role, f"{tag}[{name}]", True)
                else:
                    self.video(attrs[name], attrs.get("type"), f"{tag}[{name}]")
        self.srcset(attrs.get("data-srcset"), f"{tag}[data-srcset]")

    def tag_source(self, node: LexborNode, attrs: dict[str, str | None]) -> None:
        parent = node.parent
        ptag = parent.tag if parent is not None else None
        if ptag in ("video", "audio") and "src" in attrs:
            self.video(attrs["src"], attrs.get("type"), f"{ptag}>source[src]")
        self.srcset(attrs.get("srcset"), "source[srcset]")
        self.lazy(attrs, "source", "video" if ptag in ("video", "audio") else "requisite")

    def tag_input(self, node: LexborNode, attrs: dict[str, str | None]) -> None:
        if (attrs.get("type") or "").strip().lower() == "image":
            self.res(attrs.get("src"), "requisite", "input[type=image][src]")

    def tag_embed(self, node: LexborNode, attrs: dict[str, str | None]) -> None:
        self.res(attrs.get("src"), "requisite", "embed[src]")

    def tag_object(self, node: LexborNode, attrs: dict[str, str | None]) -> None:
        self.res(attrs.get("data"), "requisite", "object[data]")

    def tag_body(self, node: LexborNode, attrs: dict[str, str | None]) -> None:
        self.res(attrs.get("background"), "requisite", "body[background]")

    def tag_track(self, node: LexborNode, attrs: dict[str, str | None]) -> None:
        self.res(attrs.get("src"), "requisite", "track[src]")

    def tag_video(self, node: LexborNode, attrs: dict[str, str | None]) -> None:
        self.res(attrs.get("poster"), "requisite", "video[poster]")
        self.res(attrs.get("data-poster"), "requisite", "video[data-poster]")
        self.video(attrs.get("src"), None, "video[src]")
        self.lazy(attrs, "video", "video")

    def tag_audio(self, node: LexborNode, attrs: dict[str, str | None]) -> None:
        self.video(attrs.get("src"), None, "audio[src]")

    def tag_iframe(self, node: LexborNode, attrs: dict[str, str | None]) -> None:
        self.res(attrs.get("src"), "iframe", "iframe[src]", True)
        self.lazy(attrs, "iframe", "iframe")
        srcdoc = attrs.get("srcdoc")
        if srcdoc and not self.in_srcdoc:
            # An inline document: the resources it loads are this page's; its title,
            # links and refresh are not.  (Nested srcdoc is not followed.)
            inner_scan = _HtmlScan(self.base)
            inner_scan.in_srcdoc = True
            inner = LexborHTMLParser(shallow(srcdoc[: discover.MAX_BODY])).root
            if inner is not None:
                for child in inner.traverse():
                    inner_scan.element(child)
            self.resources.extend(f for f in inner_scan.resources.result() if f.role != "redirect")
            self.unfetched.extend(inner_scan.unfetched[: MAX_UNFETCHED - len(self.unfetched)])

    def tag_frame(self, node: LexborNode, attrs: dict[str, str | None]) -> None:
        self.res(attrs.get("src"), "iframe", "frame[src]", True)

    def tag_blockquote(self, node: LexborNode, attrs: dict[str, str | None]) -> None:
        classes = _classes(attrs)
        if not classes:
            return
        if "telegram-post" in classes:
            self.telegram(attrs.get("data-telegram-post"), EMBED_TELEGRAM)
        if "twitter-tweet" in classes:
            self.tweet(node, EMBED_TWEET)
        elif "twitter-video" in classes:
            self.tweet(node, EMBED_TWEET_VIDEO)
        if "instagram-media" in classes:
            permalink = attrs.get("data-instgrm-permalink")
            self.embed_url(permalink, "instagram", EMBED_INSTAGRAM, query=False)
        if "tiktok-embed" in classes:
            # the id only when the cite is no post: the cite is the post's own address
            cited = self.embed_url(attrs.get("cite"), "tiktok", EMBED_TIKTOK)
            video_id = (attrs.get("data-video-id") or "").strip(_ASCII_WS)
            if not cited and _NUMERIC_ID.fullmatch(video_id):
                url = f"https://www.tiktok.com/embed/v2/{video_id}"
                self.embed(url, "tiktok", EMBED_TIKTOK_ID)

    def lite_youtube(self, node: LexborNode, attrs: dict[str, str | None]) -> None:
        self.youtube(attrs.get("videoid"), EMBED_LITE_YOUTUBE)

    def lite_vimeo(self, node: LexborNode, attrs: dict[str, str | None]) -> None:
        value = (attrs.get("videoid") or "").strip(_ASCII_WS)
        if _NUMERIC_ID.fullmatch(value):
            self.embed(f"https://vimeo.com/{value}", "vimeo", EMBED_LITE_VIMEO)

    def tag_a(self, node: LexborNode, attrs: dict[str, str | None]) -> None:
        self.outlinks.add_url(self.base, attrs.get("href"), "outlink", "a[href]")

    def tag_area(self, node: LexborNode, attrs: dict[str, str | None]) -> None:
        self.outlinks.add_url(self.base, attrs.get("href"), "outlink", "area[href]")

    def tag_meta(self, node: LexborNode, attrs: dict[str, str | None]) -> None:
        content = attrs.get("content")
        if content is None:
            return
        equiv = (attrs.get("http-equiv") or "").strip().lower()
        if equiv == "refresh":
            self.res(_refresh_url(content), "redirect", "meta[http-equiv=refresh]", True)
            return
        value = content.strip()
        for key_attr in ("property", "name"):
            key = (attrs.get(key_attr) or "").strip().lower()
            if not key:
                continue
            if key in _META_VIDEO:
                self.video(value, None, f"meta[{key}]")
            elif key in _META_IMAGE:
                self.res(value, "requisite", f"meta[{key}]")
            elif key == "twitter:player":
                self.res(value, "iframe", "meta[twitter:player]", True)
            elif key == "author" and key_attr == "name":
                self.meta_author = self.meta_author or value or None
            elif key == "article:author":
                self.article_author = self.article_author or value or None
            elif key == "article:published_time":
                self.meta_published = self.meta_published or value or None

    def json_ld(self, text: str) -> None:
        try:
            data: object = json.loads(text.strip(), strict=False)
        except Exception:
            return
        for obj in _json_walk(data):
            types = _type_names(obj)
            if "VideoObject" in types:
                fmt = obj.get("encodingFormat")
                type_attr = fmt if isinstance(fmt, str) else None
                for url in _json_strings(obj.get("contentUrl")):
                    self.video(url, type_attr, "json-ld VideoObject.contentUrl")
                for url in _json_strings(obj.get("embedUrl")):
                    self.res(url, "iframe", "json-ld VideoObject.embedUrl", True)
                for url in _json_strings(obj.get("thumbnailUrl")):
                    self.res(url, "requisite", "json-ld VideoObject.thumbnailUrl")
            if _is_article(types):
                if self.ld_author is None:
                    names = _json_strings(obj.get("author"), ("name",))
                    names = [n.strip() for n in names if n.strip()]
                    self.ld_author = ", ".join(names) or None
                published = obj.get("datePublished")
                if self.ld_published is None and isinstance(published, str):
                    self.ld_published = published.strip() or None


_Attrs = dict[str, str | None]
_TAG_HANDLERS: dict[str, Callable[[_HtmlScan, LexborNode, _Attrs], None]] = {
    name.removeprefix("tag_"): func
    for name, func in vars(_HtmlScan).items()
    if name.startswith("tag_") and callable(func)
}
# custom elements (web components) of lazy players, whose names are not Python's
_TAG_HANDLERS["lite-youtube"] = _HtmlScan.lite_youtube
_TAG_HANDLERS["lite-vimeo"] = _HtmlScan.lite_vimeo


def _classes(attrs: _Attrs) -> list[str]:
    """The class names of an element (as ``class~=`` reads them: case-sensitive)."""
    value = attrs.get("class")
    return _CLASS_SEPARATOR.split(value) if value else []


@functools.lru_cache(maxsize=1024)
def _tweet_url(base: str, href: str) -> str | None:
    """The post a link inside a tweet's blockquote points at, as ``scheme://host/user/
    status/id``; None if it is no post's link. (Cached: a page embedding one post many
    times, or quoting it, names it again and again.)"""
    url = _resolve(base, href)
    if url is None or platform_of(url) != "twitter":
        return None
    parts = urlsplit(url)
    match = _TWEET_PATH.match(parts.path)
    if match is None:
        return None
    return urlunsplit((parts.scheme, parts.netloc.lower(), match.group(0), "", ""))


def _links_within(node: LexborNode, depth: int) -> Iterator[str]:
    """The ``href`` of each ``<a>`` at most ``depth`` levels below ``node``, in document
    order."""
    stack = [(child, 1) for child in reversed(list(node.iter()))]
    while stack:
        item, level = stack.pop()
        if item.tag == "a":
            href = item.attributes.get("href")
            if href:
                yield href
        if level < depth:
            stack.extend((child, level + 1) for child in reversed(list(item.iter())))


def _document_base(tree: LexborHTMLParser, base_url: str) -> str:
    node = tree.css_first("base[href]")
    if node is not None:
        resolved = _resolve(base_url, node.attributes.get("href"))
        if resolved is not None:
            return resolved
    return base_url


# Start tags that make the HTML tree builder look down the stack of open elements for a
# <p> to close: nested thousands deep, each such look costs the depth, and a page of a
# few megabytes of <div> takes the parser hours.  Browsers cap the depth of the tree
# (Blink at 512); so does the copy we parse, renaming the opening and closing tags
# beyond it to a custom element, which keeps their attributes and content.
_BLOCKS = (
    "address|article|aside|blockquote|center|details|dialog|dir|div|dl|fieldset|figcaption"
    "|figure|footer|form|header|hgroup|listing|main|menu|nav|ol|pre|search|section|summary|ul"
)
_BLOCK_TAG = re.compile(rf"<(/?)(?:{_BLOCKS})(?=[\s/>])", re.IGNORECASE)
MAX_DEPTH = 512


def shallow(text: str) -> str:
    """``text`` with block elements nested deeper than MAX_DEPTH renamed ``x-deep``."""
    depth = 0

    def rename(m: re.Match[str]) -> str:
        nonlocal depth
        if m.group(1):  # a closing tag
            deep = depth > MAX_DEPTH
            depth = max(depth - 1, 0)
            return "</x-deep" if deep else m.group(0)
        depth += 1
        return "<x-deep" if depth > MAX_DEPTH else m.group(0)

    return _BLOCK_TAG.sub(rename, text)


def parse_html(body: bytes, base_url: str, content_type: str | None = None) -> PageInfo:
    """Metadata, resources to fetch and outlinks of an HTML page."""
    body = body[: discover.MAX_BODY]
    charset = sniff_charset(body, content_type)
    text = shallow(_decode(body, charset))
    scan = _HtmlScan(base_url)
    try:
        tree = LexborHTMLParser(text)
        scan.base = _document_base(tree, base_url)
        root = tree.root
        if root is not None:
            for node in root.traverse():
                scan.element(node)
    except Exception:  # malformed input: keep what was found
        pass
    return PageInfo(
        title=scan.title,
        author=scan.meta_author or scan.article_author or scan.ld_author,
        published_at=scan.meta_published or scan.ld_published,
        language=scan.language,
        charset=charset,
        resources=scan.resources.result(),
        outlinks=scan.outlinks.result(),
        unfetched=tuple(scan.unfetched),
    )
