"""Platform videos through yt-dlp, with every HTTP exchange it makes recorded as served.

yt-dlp (used as a library) resolves a platform page to its media and downloads it.
Its networking goes through one request handler of ours, :class:`ArchiverRH`,
installed as the only handler, so nothing it fetches escapes the WARC: each request
is sent by :mod:`archiver.web.http`, recorded (request and response records, bytes as
served, digests computed as they pass) by the capture, and then read back by yt-dlp
from what was recorded.  Redirects are followed here, one recorded exchange per hop.
Cookies (``--cookies``) are sent but recorded as redacted.

What yt-dlp concluded (its info JSON: title, uploader, dates, duration, the formats
offered and chosen) goes into a metadata record; the file it assembled is not the
evidence, the responses are.
"""

from __future__ import annotations

import functools
import os
import shutil
import tempfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import Message
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any
from urllib.parse import urljoin

from archiver.core.errors import Failure

if TYPE_CHECKING:
    from http.cookiejar import MozillaCookieJar

REDIRECTS = (301, 302, 303, 307, 308)
REDACTED = "[redacted by archiver]"


class MediaError(Failure):
    """yt-dlp could not resolve or download the media (the reason, as yt-dlp says it)."""

    unexpected = True  # the CLI hints at --debug (archiver.core.errors)


@dataclass(frozen=True)
class Exchanged:
    """One recorded HTTP exchange, as yt-dlp is given it."""

    url: str
    status: int
    reason: str
    headers: list[tuple[str, str]]
    body: IO[bytes]  # the body as received, without chunk framing or content coding


# url, method, header fields, request body -> the exchange, recorded in the WARC
Exchange = Callable[[str, str, list[tuple[str, str]], bytes], Exchanged]


@dataclass(frozen=True)
class MediaLimits:
    max_size: int | None = None  # bytes of one video
    max_duration: float | None = None  # seconds
    allow_playlists: bool = False  # playlists, channels and live streams
    cookies: Path | None = None  # Netscape cookies file
    timeout: float = 30.0
    max_redirects: int = 20


@dataclass
class MediaResult:
    """What yt-dlp made of one platform URL."""

    url: str
    extractor: str | None = None
    info: dict[str, Any] | None = None  # the info JSON, cookies removed
    skipped: str | None = None  # why it was not downloaded (a limit), if it was not
    error: str | None = None
    warnings: list[str] = field(default_factory=list)
    merged: Path | None = None  # the playable file yt-dlp made of separate streams
    sources: list[dict[str, Any]] = field(default_factory=list)  # the formats it merged


def ffmpeg() -> tuple[str, str] | None:
    """The ffmpeg binary that ships with imageio-ffmpeg, and its version, if installed."""
    try:
        import imageio_ffmpeg

        return imageio_ffmpeg.get_ffmpeg_exe(), str(imageio_ffmpeg.get_ffmpeg_version())
    except Exception:
        return None


def load_cookies(path: Path) -> MozillaCookieJar:
    """A Netscape cookies file (as browsers' export extensions and yt-dlp write it).

    Raises ``http.cookiejar.LoadError`` or OSError for a file that is not one.
    """
    from http.cookiejar import MozillaCookieJar

    jar = MozillaCookieJar(str(path))
    jar.load(ignore_discard=True, ignore_expires=True)
    return jar


def ytdlp_version() -> str:
    from yt_dlp.version import __version__

    return str(__version__)


def body_sink(
    out: Callable[[bytes], Any], headers: list[tuple[str, str]]
) -> tuple[Callable[[memoryview], None], Callable[[], None]]:
    """What turns a body as transferred into what yt-dlp reads: chunk framing removed,
    gzip or deflate undone.  Returns (feed, finish)."""
    from archiver.web.chunked import Dechunker

    lowered = {k.lower(): v.strip().lower() for k, v in headers}
    coding = lowered.get("content-encoding", "")
    inflater = None
    if coding in ("gzip", "x-gzip", "deflate"):
        inflater = zlib.decompressobj(47 if coding != "deflate" else 15)

    def decoded(data: memoryview) -> None:
        out(inflater.decompress(data) if inflater is not None else bytes(data))

    sink: Callable[[memoryview], None] = decoded
    if lowered.get("transfer-encoding", "").endswith("chunked"):
        sink = Dechunker(decoded, lambda what: MediaError(f"the response body {what}")).feed

    def finish() -> None:
        if inflater is not None:
            out(inflater.flush())

    return sink, finish


def _handler_class() -> type:
    from yt_dlp.networking.common import RequestHandler, Response
    from yt_dlp.networking.exceptions import HTTPError, TransportError

    class ArchiverRH(RequestHandler):  # type: ignore[misc]
        """yt-dlp's only request handler: every exchange through the capture's recorder."""

        _SUPPORTED_URL_SCHEMES = ("http", "https")
        _SUPPORTED_PROXY_SCHEMES = ()
        _SUPPORTED_FEATURES = ()
        exchange: Exchange
        limits: MediaLimits

        def _check_extensions(self, extensions: dict[str, Any]) -> None:
            super()._check_extensions(extensions)
            for name in ("cookiejar", "timeout", "legacy_ssl", "keep_header_casing"):
                extensions.pop(name, None)

        def _send(self, request: Any) -> Any:
            import urllib.request

            url, method = request.url, request.method
            data = request.data or b""
            if not isinstance(data, bytes):
                data = data.read() if hasattr(data, "read") else bytes(data)
            jar = self._get_cookiejar(request)
            for _ in range(self.limits.max_redirects + 1):
                headers = {
                    k: v for k, v in self._get_headers(request).items() if k.lower() != "cookie"
                }
                headers["Accept-Encoding"] = "identity"  # bytes as served, readable as such
                probe = urllib.request.Request(url, method=method)
                jar.add_cookie_header(probe)
                if probe.get_header("Cookie"):
                    headers["Cookie"] = probe.get_header("Cookie")
                try:
                    got = self.exchange(url, method, list(headers.items()), data)
                except MediaError as exc:
                    raise TransportError(msg=str(exc)) from exc
                jar.extract_cookies(_Received(got.headers), probe)
                location = next((v for k, v in got.headers if k.lower() == "location"), None)
                if got.status in REDIRECTS and location:
                    got.body.close()  # recorded; yt-dlp reads only the last hop
                    url = urljoin(url, location)
                    if got.status == 303 or (got.status in (301, 302) and method == "POST"):
                        method, data = "GET", b""
                    continue
                response = Response(
                    got.body, got.url, dict(got.headers), status=got.status, reason=got.reason
                )
                if got.status >= 400:
                    raise HTTPError(response)
                return response
            raise TransportError(msg=f"more than {self.limits.max_redirects} redirects")

    return ArchiverRH


class _Received:
    """Response headers as http.cookiejar wants to see them."""

    def __init__(self, headers: list[tuple[str, str]]) -> None:
        self._message = Message()
        for name, value in headers:
            self._message[name] = value

    def info(self) -> Message:
        return self._message


class _Log:
    """yt-dlp's messages: warnings and errors kept, the rest dropped (never printed)."""

    def __init__(self) -> None:
        self.warnings: list[str] = []
        self.errors: list[str] = []

    def debug(self, msg: str) -> None:
        pass

    def info(self, msg: str) -> None:
        pass

    def warning(self, msg: str) -> None:
        self.warnings.append(msg)

    def error(self, msg: str) -> None:
        self.errors.append(msg)


def fetch_media(url: str, exchange: Exchange, limits: MediaLimits, work: Path) -> MediaResult:
    """Resolve ``url`` with yt-dlp and download its media through ``exchange``.

    yt-dlp works in ``work`` (the caller removes it); a file it merged from separate
    streams is left there, in ``result.merged``.  Never raises for the media's sake:
    what failed or was skipped is in the result.
    """
    from yt_dlp.utils import DownloadError

    result = MediaResult(url)
    log = _Log()
    skipped: list[str] = []

    def match_filter(info: dict[str, Any], *, incomplete: bool = False) -> str | None:
        reason = _over_limit(info, limits)
        if reason is not None:
            skipped.append(reason)
        return reason

    params = _ydl_params(work, limits, log, match_filter)
    cookies = _cookies_copy(limits)
    if cookies is not None:
        params["cookiefile"] = str(cookies)
    try:
        with _recording_ydl(params, exchange, limits) as ydl:
            probe = ydl.extract_info(url, download=False, process=False)
            kind = (probe or {}).get("_type", "video")
            if kind in ("playlist", "multi_video") and not limits.allow_playlists:
                result.extractor = (probe or {}).get("extractor_key")
                result.skipped = f"a {kind.replace('_', ' ')} (use --allow-playlists)"
                return result
            # the same extraction goes on to download: the page is not fetched twice
            info = ydl.process_ie_result(probe, download=True) if probe else None
            clean = ydl.sanitize_info(info) if info else None
    except DownloadError as exc:
        _note_download_error(result, str(exc), log.warnings, skipped)
        return result
    except Exception as exc:  # yt-dlp has many ways to fail; none may stop the capture
        result.error = f"yt-dlp failed: {type(exc).__name__}: {exc}"
        return result
    finally:
        result.warnings = [_message(w) for w in log.warnings]
        if cookies is not None:
            cookies.unlink(missing_ok=True)
    _note_info(result, clean, skipped, work)
    return result


def _ydl_params(
    work: Path,
    limits: MediaLimits,
    log: _Log,
    match_filter: Callable[..., str | None],
) -> dict[str, Any]:
    """yt-dlp's options: quiet, working in ``work``, within ``limits``, fetching nothing
    but through the recording handler (the cookies file is added apart)."""
    params: dict[str, Any] = {
        "logger": log,
        "quiet": True,
        "no_warnings": False,
        "noprogress": True,
        "paths": {"home": str(work), "temp": str(work)},
        "outtmpl": "%(id).60B.%(format_id).40B.%(ext)s",
        "noplaylist": not limits.allow_playlists,
        "match_filter": match_filter,
        "socket_timeout": limits.timeout,
        "retries": 1,
        "fragment_retries": 1,
        "extractor_retries": 1,
        "check_formats": False,
        # yt-dlp's own downloaders only: ffmpeg as a downloader would fetch the media
        # itself, around the recording handler
        "external_downloader": {"default": "native"},
        # ...but yt-dlp still hands to ffmpeg a stream its native downloader cannot read
        # (a live one, SAMPLE-AES, AES-128 without pycryptodomex): ffmpeg may then open
        # no URL at all, or it would fetch the page's choice of address unchecked and
        # unrecorded (ffmpeg for merging local files is not concerned)
        "external_downloader_args": {"ffmpeg_i": ["-protocol_whitelist", "none"]},
        "hls_prefer_native": True,
        # no proxy from http_proxy/HTTPS_PROXY: archiver.web.http connects directly (a proxy
        # would reach addresses the check never sees), and ArchiverRH takes no proxy
        "proxy": "",
        "cachedir": False,
        "updatetime": False,
        "color": {"stdout": "never", "stderr": "never"},
    }
    tool = ffmpeg()
    if tool is not None:
        params["ffmpeg_location"] = tool[0]
    else:  # no ffmpeg: yt-dlp picks formats that need no merging
        params["format"] = "best/bestvideo+bestaudio"
    return params


def _cookies_copy(limits: MediaLimits) -> Path | None:
    """A copy of the cookies file for yt-dlp (the caller removes it), if one is given."""
    if limits.cookies is None:
        return None
    # a copy, for yt-dlp writes its jar back when done; outside the archive (a
    # secret has no place there, even for a moment), readable by the user only
    fd, name = tempfile.mkstemp(prefix="archiver-cookies-", suffix=".txt")
    os.close(fd)
    cookies = Path(name)
    shutil.copyfile(limits.cookies, cookies)
    return cookies


def _note_download_error(
    result: MediaResult, error: str, warnings: list[str], skipped: list[str]
) -> None:
    """Say in ``result`` why yt-dlp gave up: a limit it was stopped at is a skip, not an
    error; a stream it would hand to ffmpeg is said to be one."""
    result.error = _message(error)
    if any("delegated to ffmpeg" in w for w in warnings) or "ffmpeg exited" in error:
        result.error = (
            f"{result.error}: yt-dlp hands this stream to ffmpeg, which would fetch it "
            "itself, around the recording and the address check; not downloaded"
        )
    if skipped:
        result.skipped, result.error = skipped[0], None
    elif "max-video-size" in (result.error or ""):
        result.skipped, result.error = result.error, None


def _note_info(
    result: MediaResult, clean: dict[str, Any] | None, skipped: list[str], work: Path
) -> None:
    """Fill ``result`` from yt-dlp's sanitized info JSON (``clean``): the info without
    cookies, the extractor, and the file it merged in ``work`` with its sources."""
    if skipped:
        result.skipped = skipped[0]
    if clean is None:
        result.skipped = result.skipped or "yt-dlp found no media"
        return
    result.info = _without_cookies(clean)
    result.extractor = clean.get("extractor_key") or clean.get("extractor")
    formats = clean.get("requested_formats") or []
    downloads = clean.get("requested_downloads") or []
    if len(formats) > 1 and downloads and downloads[0].get("filepath"):
        merged = Path(downloads[0]["filepath"])
        if merged.is_file() and merged.resolve().is_relative_to(work.resolve()):
            result.merged = merged
            result.sources = [_source(f) for f in formats]


def _source(fmt: dict[str, Any]) -> dict[str, Any]:
    """A merged format: its id, and the URLs its bytes came from."""
    urls = [fmt.get("url")]
    base = fmt.get("fragment_base_url") or ""
    for fragment in fmt.get("fragments") or []:
        urls.append(fragment.get("url") or urljoin(base, fragment.get("path", "")))
    return {
        "format_id": fmt.get("format_id"),
        "manifest_url": fmt.get("manifest_url"),
        "urls": [u for u in urls if u],
    }


def _fragments_duration(info: dict[str, Any]) -> float | None:
    """A stream's duration from its fragments, when the extractor states none (DASH, HLS)."""
    totals = [
        sum(float(f.get("duration") or 0) for f in fmt.get("fragments") or [])
        for fmt in info.get("formats") or []
    ]
    return max(totals, default=0.0) or None


def _over_limit(info: dict[str, Any], limits: MediaLimits) -> str | None:
    live = info.get("is_live") or info.get("live_status") in ("is_live", "is_upcoming")
    if live and not limits.allow_playlists:
        return "a live stream (use --allow-playlists)"
    duration = info.get("duration") or _fragments_duration(info)
    if (
        limits.max_duration
        and isinstance(duration, (int, float))
        and duration > limits.max_duration
    ):
        return f"{duration:.0f} s long, over --max-video-duration {limits.max_duration:g}"
    size = info.get("filesize") or info.get("filesize_approx")
    if limits.max_size and isinstance(size, (int, float)) and size > limits.max_size:
        return f"{size:.0f} bytes, over --max-video-size"
    return None


def _recording_ydl(params: dict[str, Any], exchange: Exchange, limits: MediaLimits) -> Any:
    import yt_dlp

    handler_class = _handler_class()

    class RecordingYDL(yt_dlp.YoutubeDL):  # type: ignore[misc]
        @functools.cached_property
        def _request_director(self) -> Any:
            director = self.build_request_director([handler_class])
            for handler in director.handlers.values():
                handler.exchange = exchange
                handler.limits = limits
            return director

        def dl(self, name: str, info: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
            """No downloader that runs a program (ffmpeg, rtmpdump) to fetch by itself."""
            from yt_dlp.downloader import get_suitable_downloader
            from yt_dlp.downloader.external import ExternalFD
            from yt_dlp.downloader.rtmp import RtmpFD
            from yt_dlp.utils import DownloadError

            chosen = get_suitable_downloader(dict(info), self.params, to_stdout=name == "-")
            if chosen is not None and issubclass(chosen, (ExternalFD, RtmpFD)):
                program = chosen.get_basename() if issubclass(chosen, ExternalFD) else "rtmpdump"
                raise DownloadError(
                    f"yt-dlp hands this stream to {program}, which would fetch "
                    "it itself, around the recording and the address check; not downloaded"
                )
            return super().dl(name, info, *args, **kwargs)

    return RecordingYDL(params)


def _message(text: str) -> str:
    return text.removeprefix("ERROR: ").removeprefix("WARNING: ").strip()


def _without_cookies(value: Any) -> Any:
    """The info JSON without cookies: yt-dlp puts them in each format's fields."""
    if isinstance(value, dict):
        return {
            k: (
                "[redacted by archiver]"
                if k.lower() in ("cookies", "cookie")
                else _without_cookies(v)
            )
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_without_cookies(v) for v in value]
    return value
