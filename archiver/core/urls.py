"""Which URLs may be captured: absolute http(s) URLs with a host, nothing else.

A URL as stored and shown is ASCII (an internationalised host name in its IDNA form,
``xn--…``; the path and query percent-encoded as UTF-8) and holds no credentials: a
``user:password@`` in it is taken out (:func:`split_credentials`), never stored.
"""

from __future__ import annotations

import base64
import contextlib
import re
from dataclasses import dataclass, field
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import idna

from archiver.core.errors import UsageProblem

ALLOWED_SCHEMES = ("http", "https")
# What stays as it is in a path or query; everything else is percent-encoded as
# a browser does (UTF-8), so the request line and WARC-Target-URI always agree.
URL_SAFE = "!#$%&'()*+,/:;=?@[\\]^_`{|}~"
_BAD_CHARS = re.compile(r"[\x00-\x20\x7f]")


class InvalidURL(UsageProblem, ValueError):
    """The input is not an http(s) URL we can capture."""


def check_url(text: str) -> str:
    """Return the URL (fragment and credentials removed, ASCII) or raise
    :class:`InvalidURL` saying why (the message never shows the credentials)."""
    value = text.strip()
    shown, garbled = _shown(value)
    if not value:
        raise InvalidURL("empty URL")
    if _BAD_CHARS.search(value):
        raise InvalidURL(f"not a URL (contains spaces or control characters): {shown!r}")
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError as exc:
        why = _GARBLED if garbled else str(exc)  # exc may quote a piece of the password
        raise InvalidURL(f"not a valid URL: {shown!r} ({why})") from exc
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
        netloc = ascii_netloc(parts.netloc)
    except UnicodeError as exc:
        raise InvalidURL(f"invalid host name in {shown!r}: {exc}") from exc
    return urlunsplit((scheme, netloc, encode_path(parts.path), encode_query(parts.query), ""))


def ascii_netloc(netloc: str) -> str:
    """``netloc`` without credentials, its host name in IDNA form (``bücher.example`` is
    ``xn--bcher-kva.example``); an ASCII host keeps its case.  UnicodeError if the
    host name cannot be encoded."""
    hostport = netloc.rpartition("@")[2]
    if hostport.startswith("["):  # an IPv6 literal: ASCII already
        return hostport
    host, colon, port = hostport.partition(":")
    if not host.isascii():
        host = idna_host(host)
    else:
        host.encode("idna")  # an empty label, a label too long: refused as before
    return host + colon + port


# what no host name holds, even once mapped (the WHATWG URL standard's forbidden ones)
_FORBIDDEN_IN_HOST = re.compile(r"[\x00-\x20\x7f#%/:<>?@\[\\\]^|]")


def idna_host(host: str) -> str:
    """A Unicode host name in ASCII as browsers make it (UTS #46, nontransitional, as the
    WHATWG URL standard): ``bücher.example`` is ``xn--bcher-kva.example``, ``faß.de`` is
    ``xn--fa-hia.de``.  Not Python's ``idna`` codec (IDNA 2003), which maps ``faß.de``
    to ``fass.de``, another domain.  UnicodeError if it cannot be encoded."""
    mapped = idna.uts46_remap(host, std3_rules=False, transitional=False)  # IDNAError too
    if _FORBIDDEN_IN_HOST.search(mapped):
        raise UnicodeError(f"a character no host name holds in {host!r}")
    labels = mapped.split(".")
    for i, label in enumerate(labels):
        if not label.isascii():
            labels[i] = label = "xn--" + label.encode("punycode").decode("ascii")
        if not 0 < len(label) <= 63 and not (label == "" and i == len(labels) - 1 > 0):
            raise UnicodeError("label empty or too long")
    return ".".join(labels)


_USERINFO = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*:/*)([^/?#@]*@)+")


# an authority as it may be: host (or [IPv6]) and port, no user information
_PLAIN_AUTHORITY = re.compile(r"(\[[^\]]*\]|[^:@\[\]]*)(:\d*)?")
_GARBLED = (
    "a user name or password must be percent-encoded: '/' as %2F, '?' as %3F, "
    "'#' as %23, '@' as %40"
)


def _shown(value: str) -> tuple[str, bool]:
    """``value`` for a message, shortened, and whether credentials that make it invalid
    were taken out: a password holding ``/``, ``?`` or ``#`` not percent-encoded ends
    the authority early (``http://user:pa/ss@host/`` has the port ``pa``), so the
    ``user:password@`` is everything before the last ``@``."""
    shown = hide_credentials(value)
    scheme, sep, rest = shown.partition("://")
    authority = re.split(r"[/?#\\]", rest, maxsplit=1)[0]
    garbled = bool(sep) and "@" in rest and not _PLAIN_AUTHORITY.fullmatch(authority)
    if garbled:
        shown = scheme + sep + rest.rpartition("@")[2]
    return (shown if len(shown) <= 200 else shown[:200] + "…"), garbled


def hide_credentials(text: str) -> str:
    """``text`` with the ``user:password@`` of a URL taken out, for messages."""
    return _USERINFO.sub(r"\1", text, count=1)


@dataclass(frozen=True)
class Credentials:
    """The user name and password a URL was given with, for the origin it names.

    Sent as HTTP Basic authentication to that origin only, never stored in clear
    (the WARC request record keeps ``Authorization: [redacted by archiver]``)."""

    origin: str  # scheme://host:port, see origin()
    user: str = field(repr=False)
    password: str = field(repr=False)

    def header(self) -> str:
        """The ``Authorization`` header value (RFC 7617, UTF-8)."""
        pair = f"{self.user}:{self.password}".encode()
        return "Basic " + base64.b64encode(pair).decode("ascii")


def split_credentials(text: str) -> tuple[str, Credentials | None]:
    """The checked URL (see :func:`check_url`) and the credentials it held, if any."""
    url = check_url(text)
    parts = urlsplit(text.strip())
    if parts.username is None and parts.password is None:
        return url, None
    user = unquote(parts.username or "")
    password = unquote(parts.password or "")
    return url, Credentials(origin(url), user, password)


def origin(url: str) -> str:
    """``scheme://host:port`` of an http(s) URL, the port always given, host lowercased:
    two URLs are of the same origin when this is equal."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    with contextlib.suppress(UnicodeError):
        host = host if host.isascii() else idna_host(host)
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    return f"{scheme}://{host}:{port or (443 if scheme == 'https' else 80)}"


def encode_path(path: str) -> str:
    return quote(path or "/", safe=URL_SAFE)


def encode_query(query: str) -> str:
    return quote(query, safe=URL_SAFE)


def referer(url: str) -> str:
    """``url`` as a Referer header value: no credentials, no fragment, ASCII host."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    with contextlib.suppress(UnicodeError):
        host = host if host.isascii() else idna_host(host)
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
