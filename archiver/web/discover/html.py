"""Find what a fetched resource references (HTML, CSS, HLS, DASH).

Pure functions: bytes in, typed results out. No network I/O. Nothing here
raises on malformed input; the parsers return whatever could be found.
"""

from __future__ import annotations

import codecs
import functools
import itertools
import json
import math
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from typing import Literal
from urllib.parse import quote, urljoin, urlsplit, urlunsplit
from xml.etree.ElementTree import Element

import defusedxml.ElementTree as SafeET  # type: ignore[import-untyped,unused-ignore]
import tinycss2  # type: ignore[import-untyped,unused-ignore]
import tinycss2.bytes  # type: ignore[import-untyped,unused-ignore]
import webencodings  # type: ignore[import-untyped,unused-ignore]
from selectolax.lexbor import LexborHTMLParser, LexborNode

from archiver.core.urls import URL_SAFE, ascii_netloc

__all__ = [
    "MAX_BODY",
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
    "sniff_charset",
    "video_role",
]

Role = Literal[
    "page",
    "redirect",
    "requisite",
    "iframe",
    "video",
    "video-manifest",
    "video-segment",
    "outlink",
]

MAX_BODY = 50 * 1024 * 1024
"""Only this many leading bytes of a body are parsed."""

MAX_SEGMENTS = 100_000
"""Most media segments made for one DASH representation, and most items :func:`parse_hls`
and :func:`parse_dash` return (a capture takes :func:`iter_hls` and :func:`iter_dash` as
far as its budget allows)."""

DEFAULT_CHARSET = "cp1252"  # codecs.lookup("windows-1252").name

_HLS_TYPES = frozenset(
    {
        "application/vnd.apple.mpegurl",
        "application/x-mpegurl",
        "audio/mpegurl",
        "audio/x-mpegurl",
    }
)
_DASH_TYPES = frozenset({"application/dash+xml"})
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
_ASCII_WS = " \t\n\r\f"
# Printable ASCII left as is in a path or query; "%" keeps existing escapes.


@dataclass(frozen=True)
class Found:
    """One referenced URL and how it was found."""

    url: str
    role: Role
    via: str
    expand: bool = False


@dataclass(frozen=True)
class Unfetched:
    """A reference to something archiver does not fetch (another scheme than http(s)),
    listed in the capture's ``not_followed`` with the reason."""

    url: str  # shortened to SHOWN_URL characters
    via: str
    reason: str


DATA_URL_LISTED = 4096
"""A ``data:`` URL longer than this is listed as not fetched; a shorter one (an icon, a
pixel) is not: either way its bytes are in the document, which is kept as served."""
MAX_UNFETCHED = 1000
"""Most references not fetched listed for one document (one line says more were left)."""
SHOWN_URL = 200
# Schemes never listed: ``about:blank`` and the like are empty documents, not evidence.
_QUIET_SCHEMES = ("http", "https", "about")
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*):")


def _unfetched(raw: str | None, via: str) -> Unfetched | None:
    """Why a reference that is no http(s) URL is not fetched; None if not worth listing."""
    if raw is None:
        return None
    value = raw.strip(_ASCII_WS).replace("\t", "").replace("\n", "").replace("\r", "")
    match = _SCHEME.match(value)
    if match is None:
        return None
    scheme = match.group(1).lower()
    if scheme in _QUIET_SCHEMES or (scheme == "data" and len(value) <= DATA_URL_LISTED):
        return None
    if scheme == "data":
        reason = f"data: URL of {len(value)} characters: inside the document, not fetched"
    elif scheme == "file":
        reason = "file: URL (a file on the reader's own computer): not fetched"
    elif scheme == "javascript":
        reason = "javascript: URL (a script, not a resource): not fetched"
    else:
        reason = f"{scheme}: URL: not fetched (only http and https are)"
    shown = value if len(value) <= SHOWN_URL else value[: SHOWN_URL - 1] + "…"
    return Unfetched(shown, via, reason)


@dataclass(frozen=True)
class PageInfo:
    """Metadata and references of an HTML page."""

    title: str | None
    author: str | None
    published_at: str | None
    language: str | None
    charset: str
    resources: tuple[Found, ...]
    outlinks: tuple[Found, ...]
    unfetched: tuple[Unfetched, ...] = ()  # references with schemes not fetched


# When one URL is referenced several ways, the strongest role wins: a video that
# is also preloaded is a video, a stylesheet also preloaded is expanded.
# data-* attributes that lazy-loading scripts turn into src
_LAZY_SRC = ("data-src", "data-lazy-src", "data-original")

_ROLE_RANK: dict[str, int] = {
    "video-manifest": 4,
    "video": 3,
    "iframe": 2,
    "redirect": 1,
}


def _strength(found: Found) -> tuple[int, bool]:
    return _ROLE_RANK.get(found.role, 0), found.expand


class _Collector:
    """Ordered, URL-deduplicated results; a later, stronger reference upgrades in place."""

    def __init__(self, unfetched: list[Unfetched] | None = None) -> None:
        self._items: list[Found] = []
        self._index: dict[str, int] = {}
        self.unfetched = unfetched  # where references not fetched are listed, if anywhere

    def add(self, found: Found) -> None:
        i = self._index.get(found.url)
        if i is None:
            self._index[found.url] = len(self._items)
            self._items.append(found)
        elif _strength(found) > _strength(self._items[i]):
            self._items[i] = found

    def add_url(
        self, base: str, raw: str | None, role: Role, via: str, expand: bool = False
    ) -> None:
        url = _resolve(base, raw)
        if url is not None:
            self.add(Found(url, role, via, expand))
        elif self.unfetched is not None:
            self._note_unfetched(raw, via)

    def _note_unfetched(self, raw: str | None, via: str) -> None:
        listed = self.unfetched
        if listed is None or len(listed) > MAX_UNFETCHED:
            return
        item = _unfetched(raw, via)
        if item is None or any(u.url == item.url for u in listed[-16:]):
            return
        if len(listed) == MAX_UNFETCHED:
            more = f"more references not fetched: not listed (at most {MAX_UNFETCHED} a page)"
            item = Unfetched("", via, more)
        listed.append(item)

    def extend(self, items: Iterable[Found]) -> None:
        for item in items:
            self.add(item)

    def __len__(self) -> int:
        return len(self._items)

    def result(self) -> tuple[Found, ...]:
        return tuple(self._items)


# --------------------------------------------------------------------- URLs


@functools.lru_cache(maxsize=65536)
def _resolve(base: str, raw: str | None) -> str | None:
    """Absolute http(s) URL without fragment, encoded as a browser would; or None."""
    if raw is None:
        return None
    value = raw.strip(_ASCII_WS).replace("\t", "").replace("\n", "").replace("\r", "")
    if not value:
        return None
    try:
        parts = urlsplit(urljoin(base, value))
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https") or not parts.hostname:
            return None
        netloc = parts.netloc
        if not netloc.isascii():  # the host name as browsers encode it (UTS #46)
            netloc = ascii_netloc(netloc)
        path = quote(parts.path or "/", safe=URL_SAFE)
        query = quote(parts.query, safe=URL_SAFE)
        return urlunsplit((scheme, netloc, path, query, ""))
    except (ValueError, UnicodeError):
        return None


def _url_path(url: str) -> str:
    try:
        return urlsplit(url.strip()).path.lower()
    except ValueError:
        return ""


def _mime(content_type: str | None) -> str:
    if not content_type:
        return ""
    return content_type.split(";", 1)[0].strip().lower()


def is_hls(url: str, content_type: str | None) -> bool:
    """True for an HLS playlist (by .m3u8 path or content type)."""
    return _url_path(url).endswith(".m3u8") or _mime(content_type) in _HLS_TYPES


def is_dash(url: str, content_type: str | None) -> bool:
    """True for a DASH manifest (by .mpd path or content type)."""
    return _url_path(url).endswith(".mpd") or _mime(content_type) in _DASH_TYPES


def video_role(url: str, type_attr: str | None) -> Role:
    """'video-manifest' for HLS/DASH (extension or type), else 'video'."""
    if is_hls(url, type_attr) or is_dash(url, type_attr):
        return "video-manifest"
    return "video"


# ----------------------------------------------------------------- charsets


def _lookup_charset(label: str | None) -> str | None:
    """Python codec name for a WHATWG or Python label, or None if unknown."""
    if not label:
        return None
    label = label.strip(_ASCII_WS + "'\"")
    if not label:
        return None
    try:
        enc = webencodings.lookup(label)
        if enc is not None:
            if enc.name in ("replacement", "x-user-defined"):
                return None
            name: str = codecs.lookup(enc.codec_info.name).name
            return name
        return codecs.lookup(label).name
    except (LookupError, ValueError, TypeError, AttributeError):
        return None


def _charset_param(content_type: str | None) -> str | None:
    if not content_type:
        return None
    for param in content_type.split(";")[1:]:
        key, sep, value = param.partition("=")
        if sep and key.strip().lower() == "charset":
            return value.strip(_ASCII_WS + "'\"")
    return None


def _bom_charset(body: bytes) -> str | None:
    if body.startswith(codecs.BOM_UTF8):
        return "utf-8"
    if body.startswith(codecs.BOM_UTF16_LE):
        return "utf-16-le"
    if body.startswith(codecs.BOM_UTF16_BE):
        return "utf-16-be"
    return None


def _meta_charset(body: bytes) -> str | None:
    """Charset declared by <meta> in the first 1024 bytes (HTML prescan)."""
    head = body[:1024].decode("latin-1")
    try:
        tree = LexborHTMLParser(head)
        metas = tree.css("meta")
    except Exception:
        return None
    for meta in metas:
        attrs = meta.attributes
        label = attrs.get("charset")
        if label is None:
            http_equiv = (attrs.get("http-equiv") or "").strip().lower()
            content = attrs.get("content")
            if http_equiv != "content-type" or not content:
                continue
            label = _charset_param(content)
        name = _lookup_charset(label)
        if name is None:
            continue
        if name.startswith("utf-16"):  # per the HTML spec prescan
            return "utf-8"
        return name
    return None


def sniff_charset(body: bytes, content_type: str | None) -> str:
    """Encoding of an HTML body as a Python codec name.

    BOM, else HTTP charset, else <meta> prescan of the first 1024 bytes,
    else windows-1252 ("cp1252"). WHATWG labels are honoured (latin1 and
    ascii mean windows-1252); unknown labels are skipped.
    """
    return (
        _bom_charset(body)
        or _lookup_charset(_charset_param(content_type))
        or _meta_charset(body)
        or DEFAULT_CHARSET
    )


def _decode(body: bytes, charset: str) -> str:
    try:
        text = body.decode(charset, errors="replace")
    except (LookupError, UnicodeError, ValueError):  # e.g. charset=idna or undefined
        text = body.decode(DEFAULT_CHARSET, errors="replace")
    return text.removeprefix("\ufeff")


# ---------------------------------------------------------------------- CSS


def _css_url_of(token: object) -> str | None:
    """URL of a url()/string token, else None."""
    kind = getattr(token, "type", None)
    if kind in ("url", "string"):
        value = getattr(token, "value", None)
        return value if isinstance(value, str) else None
    if kind == "function" and getattr(token, "lower_name", None) == "url":
        for arg in getattr(token, "arguments", None) or ():
            if getattr(arg, "type", None) == "string":
                value = getattr(arg, "value", None)
                return value if isinstance(value, str) else None
    return None


def _css_walk(tokens: list[object], base: str, out: _Collector) -> None:
    stack: list[Iterator[object]] = [iter(tokens)]
    while stack:
        token = next(stack[-1], None)
        if token is None:
            stack.pop()
            continue
        kind = getattr(token, "type", None)
        if kind == "at-keyword" and getattr(token, "lower_value", None) == "import":
            for following in stack[-1]:
                ftype = getattr(following, "type", None)
                if ftype in ("whitespace", "comment"):
                    continue
                target = _css_url_of(following)
                if target is not None:
                    out.add_url(base, target, "requisite", "css @import", True)
                break
        elif kind == "url":
            out.add_url(base, _css_url_of(token), "requisite", "css url()")
        elif kind == "function":
            name = getattr(token, "lower_name", "")
            if name == "url":
                out.add_url(base, _css_url_of(token), "requisite", "css url()")
            else:
                args = list(getattr(token, "arguments", None) or ())
                if name in ("image-set", "-webkit-image-set"):
                    for arg in args:
                        if getattr(arg, "type", None) == "string":
                            raw = getattr(arg, "value", None)
                            if isinstance(raw, str):
                                out.add_url(base, raw, "requisite", "css url()")
                stack.append(iter(args))
        elif kind in ("() block", "[] block", "{} block"):
            stack.append(iter(list(getattr(token, "content", None) or ())))


def parse_css(
    body: bytes | str, base_url: str, unfetched: list[Unfetched] | None = None
) -> tuple[Found, ...]:
    """url() references (requisites) and @import targets (expand=True); references with
    schemes not fetched are added to ``unfetched`` if given."""
    out = _Collector(unfetched)
    try:
        if isinstance(body, bytes):
            decoded = tinycss2.bytes.decode_stylesheet_bytes(body[:MAX_BODY])
            text: str = decoded[0]
        else:
            text = body[:MAX_BODY]
        tokens: list[object] = list(tinycss2.parse_component_value_list(text, skip_comments=True))
        _css_walk(tokens, base_url, out)
    except Exception:  # malformed input: keep what was found
        pass
    return out.result()


# --------------------------------------------------------------------- HTML


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
            inner = LexborHTMLParser(shallow(srcdoc[:MAX_BODY])).root
            if inner is not None:
                for child in inner.traverse():
                    inner_scan.element(child)
            self.resources.extend(f for f in inner_scan.resources.result() if f.role != "redirect")
            self.unfetched.extend(inner_scan.unfetched[: MAX_UNFETCHED - len(self.unfetched)])

    def tag_frame(self, node: LexborNode, attrs: dict[str, str | None]) -> None:
        self.res(attrs.get("src"), "iframe", "frame[src]", True)

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
    body = body[:MAX_BODY]
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


# ---------------------------------------------------------------------- HLS


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
        text = body[:MAX_BODY].decode("utf-8", errors="replace").removeprefix("\ufeff")
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


# --------------------------------------------------------------------- DASH

_DURATION_RE = re.compile(
    r"^\s*P(?:(?P<Y>\d+(?:[.,]\d+)?)Y)?(?:(?P<Mo>\d+(?:[.,]\d+)?)M)?"
    r"(?:(?P<W>\d+(?:[.,]\d+)?)W)?(?:(?P<D>\d+(?:[.,]\d+)?)D)?"
    r"(?:T(?:(?P<H>\d+(?:[.,]\d+)?)H)?(?:(?P<Mi>\d+(?:[.,]\d+)?)M)?"
    r"(?:(?P<S>\d+(?:[.,]\d+)?)S)?)?\s*$"
)
_DURATION_UNITS = {
    "Y": 365 * 86400,
    "Mo": 30 * 86400,
    "W": 7 * 86400,
    "D": 86400,
    "H": 3600,
    "Mi": 60,
    "S": 1,
}
_TEMPLATE_RE = re.compile(r"\$(\w*)(?:%0?(\d{1,3})([dxXo]))?\$")


def _iso_duration(value: str | None) -> Fraction | None:
    """Seconds of an ISO 8601 duration such as PT1M3.5S, or None."""
    if not value:
        return None
    match = _DURATION_RE.match(value)
    if match is None:
        return None
    total = Fraction(0)
    for unit, seconds in _DURATION_UNITS.items():
        part = match.group(unit)
        if part:
            total += Fraction(part.replace(",", ".")) * seconds
    return total


def _int(value: str | None, default: int) -> int:
    if value is None:
        return default
    try:
        return int(value.strip())
    except ValueError:
        return default


def _local(tag: object) -> str:
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


def _children(el: Element, name: str) -> list[Element]:
    return [c for c in el if _local(c.tag) == name]


def _child(el: Element, name: str) -> Element | None:
    for c in el:
        if _local(c.tag) == name:
            return c
    return None


def _base_of(parent: str, el: Element) -> str:
    node = _child(el, "BaseURL")
    text = (node.text or "").strip() if node is not None else ""
    if not text:
        return parent
    try:
        return urljoin(parent, text)
    except ValueError:
        return parent


def _expand_template(template: str, values: dict[str, int | str]) -> str:
    def repl(match: re.Match[str]) -> str:
        name, width, conv = match.group(1), match.group(2), match.group(3)
        if name == "":
            return "$"
        if name not in values:
            return match.group(0)
        value = values[name]
        if width and isinstance(value, int):
            return format(value, f"0{int(width)}{'d' if conv is None else conv}")
        return str(value)

    return _TEMPLATE_RE.sub(repl, template)


def _timeline_times(timeline: Element, end: Fraction | None) -> Iterator[int]:
    """Start times of a SegmentTimeline ($Time$ values)."""
    entries = _children(timeline, "S")
    t = 0
    for i, s in enumerate(entries):
        t = _int(s.get("t"), t)
        d = _int(s.get("d"), 0)
        if d <= 0:
            continue
        r = _int(s.get("r"), 0)
        if r < 0:
            nxt = _int(entries[i + 1].get("t"), -1) if i + 1 < len(entries) else -1
            limit = Fraction(nxt) if nxt >= 0 else end
            count = 1 if limit is None else max(0, math.ceil((limit - t) / d))
        else:
            count = r + 1
        for _ in range(count):
            yield t
            t += d


def _segment_info(levels: list[Element]) -> tuple[str, dict[str, str], list[Element]]:
    """Kind of addressing, merged attributes, and the elements (outer first)."""
    for level in reversed(levels):
        for kind in ("SegmentTemplate", "SegmentList", "SegmentBase"):
            if _child(level, kind) is not None:
                elements = [e for e in (_child(lv, kind) for lv in levels) if e is not None]
                attrs: dict[str, str] = {}
                for e in elements:
                    attrs.update(e.attrib)
                return kind, attrs, elements
    return "", {}, []


def _innermost(elements: list[Element], name: str) -> Element | None:
    for e in reversed(elements):
        found = _child(e, name)
        if found is not None:
            return found
    return None


MAX_DASH_IDLE = MAX_SEGMENTS
"""Most segment URLs a DASH manifest may make that give nothing new (a repeat of one
given already, or no http(s) URL) before the rest of it is left unread: each costs
time, and none is counted by the capture's budget (a 25 kB manifest of periods whose
``media`` template is ``mailto:$Number$`` kept the parser turning for minutes)."""


def _note_cut(cut: list[str] | None, reason: str) -> None:
    if cut is not None and reason not in cut:
        cut.append(reason)


def _dash_representation(
    rep: Element,
    levels: list[Element],
    base: str,
    mpd_url: str,
    period_seconds: Fraction | None,
    cut: list[str] | None = None,
) -> Iterator[tuple[str, str | None, str]]:
    """(base, raw URL, via) of a representation's init and media segments, lazily; at most
    MAX_SEGMENTS media segments, saying so in ``cut`` if it names more."""
    more = (
        f"representation {rep.get('id', '')!r} names more than {MAX_SEGMENTS} segments:"
        f" only the first {MAX_SEGMENTS} were taken"
    )
    kind, attrs, elements = _segment_info(levels)
    values: dict[str, int | str] = {
        "RepresentationID": rep.get("id", ""),
        "Bandwidth": _int(rep.get("bandwidth"), 0),
    }
    init_el = _innermost(elements, "Initialization")
    init_src = init_el.get("sourceURL") if init_el is not None else None

    if kind == "SegmentTemplate":
        init = attrs.get("initialization") or init_src
        if init:
            yield base, _expand_template(init, values), "dash init"
        media = attrs.get("media")
        if not media:
            return
        start = _int(attrs.get("startNumber"), 1)
        timescale = _int(attrs.get("timescale"), 1) or 1
        offset = _int(attrs.get("presentationTimeOffset"), 0)
        timeline = _innermost(elements, "SegmentTimeline")
        times: Iterable[int]
        if timeline is not None:
            end = None
            if period_seconds is not None:
                end = offset + period_seconds * timescale
            times = _timeline_times(timeline, end)
        else:
            duration = _int(attrs.get("duration"), 0)
            if duration > 0 and period_seconds is not None:
                count = math.ceil(period_seconds * timescale / duration)
            elif duration > 0:
                count = 0  # live without a known end: nothing to enumerate
            else:
                count = 1
            end_number = _int(attrs.get("endNumber"), -1)
            if end_number >= start:
                count = min(count, end_number - start + 1)
            times = (offset + i * duration for i in range(max(0, count)))
        if "$Number" not in media and "$Time" not in media:
            times = itertools.islice(times, 1)  # one URL, however many segments it names
        for number, time in zip(itertools.count(start), itertools.islice(times, MAX_SEGMENTS + 1)):
            if number - start == MAX_SEGMENTS:
                _note_cut(cut, more)
                return
            url = _expand_template(media, {**values, "Number": number, "Time": time})
            yield base, url, "dash segment"
    elif kind == "SegmentList":
        if init_el is not None:
            yield base, init_src or base, "dash init"
        seg_owner = next(
            (e for e in reversed(elements) if _child(e, "SegmentURL") is not None), None
        )
        if seg_owner is None:
            return
        segments = _children(seg_owner, "SegmentURL")
        if len(segments) > MAX_SEGMENTS:
            _note_cut(cut, more)
        for seg in itertools.islice(segments, MAX_SEGMENTS):
            yield base, seg.get("media") or base, "dash segment"
    else:
        yield base, init_src, "dash init"
        if base != mpd_url and not urlsplit(base).path.endswith("/"):
            yield base, base, "dash segment"


def _period_durations(periods: list[Element], total: Fraction | None) -> list[Fraction | None]:
    starts: list[Fraction | None] = []
    durations: list[Fraction | None] = []
    previous_end: Fraction | None = Fraction(0)
    for period in periods:
        start = _iso_duration(period.get("start"))
        if start is None:
            start = previous_end
        duration = _iso_duration(period.get("duration"))
        starts.append(start)
        durations.append(duration)
        previous_end = None if start is None or duration is None else start + duration
    for i, duration in enumerate(durations):
        if duration is not None:
            continue
        start = starts[i]
        nxt = starts[i + 1] if i + 1 < len(starts) else None
        if start is not None and nxt is not None:
            durations[i] = max(Fraction(0), nxt - start)
        elif start is not None and total is not None and i + 1 == len(periods):
            durations[i] = max(Fraction(0), total - start)
    return durations


def iter_dash(body: bytes, url: str, cut: list[str] | None = None) -> Iterator[Found]:
    """Init and media segments of the best Representation of each AdaptationSet, lazily:
    a 23 kB manifest can name ten million segments (periods x adaptation sets x
    repeats), which exist here one at a time, as the caller asks for them.  What a
    limit (MAX_SEGMENTS, MAX_DASH_IDLE) left unread is said in ``cut``."""
    try:
        root: Element = SafeET.fromstring(body[:MAX_BODY])
    except Exception:  # invalid XML, entity bombs, external entities
        return
    seen: set[str] = set()
    idle = 0  # URLs made that gave nothing new
    try:
        if _local(root.tag) != "MPD":
            return
        mpd_base = _base_of(url, root)
        total = _iso_duration(root.get("mediaPresentationDuration"))
        periods = _children(root, "Period")
        for period, seconds in zip(periods, _period_durations(periods, total), strict=True):
            period_base = _base_of(mpd_base, period)
            for aset in _children(period, "AdaptationSet"):
                reps = _children(aset, "Representation")
                if not reps:
                    continue
                best = max(reps, key=lambda r: _int(r.get("bandwidth"), 0))
                rep_base = _base_of(_base_of(period_base, aset), best)
                levels = [period, aset, best]
                made = _dash_representation(best, levels, rep_base, url, seconds, cut)
                for base, raw, via in made:
                    found = _resolve(base, raw)
                    if found is not None and found not in seen:
                        seen.add(found)
                        yield Found(found, "video-segment", via)
                    elif (idle := idle + 1) > MAX_DASH_IDLE:
                        _note_cut(
                            cut,
                            f"more than {MAX_DASH_IDLE} of its segment URLs repeat others or"
                            " are no http(s) URLs: the rest of it was not read",
                        )
                        return
    except Exception:  # malformed input: keep what was found
        return


def parse_dash(body: bytes, url: str) -> tuple[Found, ...]:
    """:func:`iter_dash` as a tuple, of at most MAX_SEGMENTS items (for reading back a
    stored manifest; a capture takes :func:`iter_dash` as far as its budget goes)."""
    return tuple(itertools.islice(iter_dash(body, url), MAX_SEGMENTS))
