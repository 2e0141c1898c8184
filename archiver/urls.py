"""Which URLs may be captured: absolute http(s) URLs with a host, nothing else."""

from __future__ import annotations

import contextlib
import re
from urllib.parse import quote, urlsplit, urlunsplit

ALLOWED_SCHEMES = ("http", "https")
# What stays as it is in a path or query; everything else is percent-encoded as
# a browser does (UTF-8), so the request line and WARC-Target-URI always agree.
URL_SAFE = "!#$%&'()*+,/:;=?@[\\]^_`{|}~"
_BAD_CHARS = re.compile(r"[\x00-\x20\x7f]")


class InvalidURL(ValueError):
    """The input is not an http(s) URL we can capture."""


def check_url(text: str) -> str:
    """Return the URL (fragment removed) or raise :class:`InvalidURL` saying why."""
    value = text.strip()
    shown = value if len(value) <= 200 else value[:200] + "…"
    if not value:
        raise InvalidURL("empty URL")
    if _BAD_CHARS.search(value):
        raise InvalidURL(f"not a URL (contains spaces or control characters): {shown!r}")
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError as exc:
        raise InvalidURL(f"not a valid URL: {shown!r} ({exc})") from exc
    scheme = parts.scheme.lower()
    if not scheme:
        hint = f" (did you mean https://{value}?)" if "." in value.split("/")[0] else ""
        raise InvalidURL(f"not a URL: {shown!r}{hint}")
    if scheme not in ALLOWED_SCHEMES:
        raise InvalidURL(f"unsupported scheme {scheme!r} in {shown!r}: only http and https")
    if not parts.hostname:
        raise InvalidURL(f"no host in URL {shown!r}")
    if port == 0:
        raise InvalidURL(f"invalid port in URL {shown!r}")
    try:
        parts.hostname.encode("idna")
    except UnicodeError as exc:
        raise InvalidURL(f"invalid host name in {shown!r}: {exc}") from exc
    return urlunsplit(
        (scheme, parts.netloc, encode_path(parts.path), encode_query(parts.query), "")
    )


def encode_path(path: str) -> str:
    return quote(path or "/", safe=URL_SAFE)


def encode_query(query: str) -> str:
    return quote(query, safe=URL_SAFE)


def referer(url: str) -> str:
    """``url`` as a Referer header value: no credentials, no fragment, ASCII host."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    with contextlib.suppress(UnicodeError):
        host = host.encode("idna").decode("ascii")
    if ":" in host:
        host = f"[{host}]"
    netloc = host if parts.port is None else f"{host}:{parts.port}"
    return urlunsplit(
        (parts.scheme, netloc, encode_path(parts.path), encode_query(parts.query), "")
    )


# The records archiver writes itself (not received from a server) are named by a URN of
# their own kind, never by the URL they are about.  Replay systems (pywb; cdxj-indexer and
# py-wacz, which build the indexes of WACZ files) index every record by WARC-Target-URI,
# so a record of ours under a page's URL was replayed in place of the page: at the page's
# own time (``application/json`` sorts before ``text/html``), and as its latest capture.
# WARC 1.1 lets a metadata or conversion record repeat the target URI of the record it is
# about; wget names its own records ``metadata://…`` instead, and Webrecorder's tools
# ``urn:<kind>:<url>`` (``urn:pageinfo:http://…``), as we do with an ``archiver-`` prefix.
# The link stays: the URL is in the record's JSON, and its WARC-Refers-To names the
# record it is about.  Captures made by earlier versions have the URL itself as target
# URI; everything that reads them (rebuild, verify, extract) still does.
OWN_RECORD_KINDS = ("metadata", "media-info", "certificate", "conversion")
OWN_RECORD_PREFIX = "urn:archiver-"


def own_record_uri(kind: str, url: str) -> str:
    """The WARC-Target-URI of a record of ours of ``kind`` about ``url``:
    ``urn:archiver-metadata:https://example.org/`` and so on."""
    if kind not in OWN_RECORD_KINDS:
        raise ValueError(f"not a kind of archiver record: {kind!r}")
    return f"{OWN_RECORD_PREFIX}{kind}:{url}"
