"""The encoding of an HTML body (BOM, HTTP charset, <meta> prescan, windows-1252) and
decoding it."""

from __future__ import annotations

import codecs

import webencodings  # type: ignore[import-untyped,unused-ignore]
from selectolax.lexbor import LexborHTMLParser

from archiver.web.discover.found import _ASCII_WS

DEFAULT_CHARSET = "cp1252"  # codecs.lookup("windows-1252").name


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
