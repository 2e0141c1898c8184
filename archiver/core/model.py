"""Typed capture and provenance objects shared by capture, WARC writing and output."""

from __future__ import annotations

import math
import os
import re
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from archiver import TOOL_NAME, __version__
from archiver.core.errors import UsageProblem

# one budget per capture (archiver.capture.budget): requests, bytes, wall time; the
# reasoning for these defaults is in the README
DEFAULT_MAX_REQUESTS = 50_000
DEFAULT_MAX_CAPTURE_SIZE = 20 * 1024**3
DEFAULT_MAX_CAPTURE_TIME = 2 * 3600.0

# No home page in it: the project has none of its own yet, and a placeholder URL would send
# site owners who look into their logs nowhere.  `--user-agent` or `[capture] user_agent`
# in the configuration file sets another (for example one naming your organisation).
DEFAULT_USER_AGENT = f"Mozilla/5.0 (compatible; {TOOL_NAME}/{__version__})"
DEFAULT_TIMEOUT = 30.0
DEFAULT_WARC_MAX_SIZE = 1_000_000_000
DEFAULT_CONCURRENCY = 4
DEFAULT_MAX_REDIRECTS = 20
DEFAULT_BROWSER_TIMEOUT = 60.0  # seconds for the load, and again for a quiet network
DEFAULT_MAX_SCROLL = 20  # viewport-high steps: infinite scroll ends there
DEFAULT_VIEWPORT = (1366, 768)  # the most common desktop screen
# A response is cut (WARC-Truncated: time) when it averages fewer than DEFAULT_MIN_RATE
# bytes per second over DEFAULT_MIN_RATE_WINDOW seconds.  1 KiB/s is 8 kbit/s: below
# a dial-up modem (56 kbit/s), below the lowest bitrate any audio or video stream is
# served at (about 24 kbit/s), so a slow but working connection carrying video stays
# far above it; over a whole minute, stalls of a CDN or of TCP recovery average out.
DEFAULT_MIN_RATE = 1024
DEFAULT_MIN_RATE_WINDOW = 60.0
COLLECTION_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
# A collection is the folder warc/<collection>/; these names are the archive's own
# folders inside it (warc/<collection>/imported/ holds imported WARC files), so a
# collection of that name would pass for them (and fail verify forever).
RESERVED_COLLECTIONS = ("imported",)


class CaptureStatus(StrEnum):
    COMPLETE = "complete"
    PARTIAL = "partial"
    FAILED = "failed"


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_capture_id(moment: datetime) -> str:
    """``YYYYMMDDhhmmss-<10 random hex>``: sortable by time, unique across machines."""
    return moment.astimezone(UTC).strftime("%Y%m%d%H%M%S") + "-" + secrets.token_hex(5)


def isoformat(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def parse_timestamp(text: str) -> datetime:
    """An ISO 8601 time with a zone (``Z`` or an offset), in UTC; ValueError otherwise."""
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        raise ValueError(f"{text!r} has no time zone")
    return moment.astimezone(UTC)


def default_archive_dir() -> Path:
    return Path(os.environ.get("ARCHIVER_ARCHIVE_DIR") or "archives")


class OptionError(UsageProblem, ValueError):
    """A capture option out of its range, or a collection name that cannot be used."""


@dataclass(frozen=True)
class CaptureOptions:
    """Everything that shapes a capture; recorded in every warcinfo record."""

    archive_dir: Path = field(default_factory=default_archive_dir)
    collection: str = "default"
    operator: str | None = None
    note: str | None = None
    user_agent: str = DEFAULT_USER_AGENT
    timeout: float = DEFAULT_TIMEOUT
    max_time: float | None = None
    # a response averaging less than min_rate bytes/s over min_rate_window s is cut
    min_rate: int | None = DEFAULT_MIN_RATE  # None or 0: no minimum
    min_rate_window: float = DEFAULT_MIN_RATE_WINDOW
    max_size: int | None = None
    # the capture's budget (see archiver.capture.budget); None: no limit
    max_requests: int | None = DEFAULT_MAX_REQUESTS
    max_capture_size: int | None = DEFAULT_MAX_CAPTURE_SIZE
    max_capture_time: float | None = DEFAULT_MAX_CAPTURE_TIME
    live_duration: float = 0.0  # seconds a live HLS playlist is followed (0: a snapshot)
    # every rendition of an HLS or DASH stream fetched whole, not only the best (and the
    # ones replay tools would play instead: archiver.web.discover.hls.Renditions)
    all_renditions: bool = False
    concurrency: int = DEFAULT_CONCURRENCY
    warc_max_size: int = DEFAULT_WARC_MAX_SIZE
    max_redirects: int = DEFAULT_MAX_REDIRECTS
    insecure: bool = False
    # loopback, private, link-local... addresses refused unless allowed (archiver.web.addresses)
    allow_private: bool = False
    # (address, port) pairs allowed even so: one intranet server, or a test's own seed
    allow_private_endpoints: frozenset[tuple[str, int]] = frozenset()
    # platform videos, through yt-dlp (see archiver.web.media)
    platform_videos: bool = True
    follow_video_links: bool = False
    max_video_size: int | None = None
    max_video_duration: float | None = None
    allow_playlists: bool = False
    cookies: Path | None = None
    platform_hosts: tuple[str, ...] = ()  # more hosts whose every URL is a video (tests)
    dedup: bool = True  # a payload already in the archive is written as a revisit record
    # --browser: the page loaded in a system Chromium whose every request goes through
    # our recorder (see archiver.capture.browser)
    browser: bool = False
    browser_path: str | None = None  # else ARCHIVER_BROWSER, else chromium on PATH
    browser_timeout: float = DEFAULT_BROWSER_TIMEOUT  # load and quiet, each wait
    max_scroll: int = DEFAULT_MAX_SCROLL  # viewport-high scroll steps, at most
    viewport: tuple[int, int] = DEFAULT_VIEWPORT
    device_scale: float = 1.0

    def __post_init__(self) -> None:
        if not COLLECTION_PATTERN.fullmatch(self.collection):
            raise OptionError(
                f"invalid collection name {self.collection!r}: use 1-64 letters, digits, "
                "'.', '_' or '-', starting with a letter or digit"
            )
        if self.collection.lower() in RESERVED_COLLECTIONS:
            raise OptionError(
                f"collection name {self.collection!r} is reserved: the archive uses a folder "
                "of that name (warc/<collection>/imported/ holds imported WARC files); "
                "choose another name"
            )
        if any(ord(ch) < 32 or ord(ch) == 127 for ch in self.user_agent):
            raise OptionError("the user agent must not contain control characters or newlines")
        for name, value in (("operator name", self.operator), ("note", self.note)):
            try:  # bytes that are not UTF-8 (a Latin-1 terminal) reach us as surrogates
                (value or "").encode("utf-8")
            except UnicodeEncodeError:
                raw = (value or "").encode("utf-8", "surrogateescape")
                raise OptionError(
                    f"the {name} is not UTF-8 text: '{raw.decode('utf-8', 'backslashreplace')}'"
                    " (give it in UTF-8: set a UTF-8 locale, e.g. LANG=C.UTF-8)"
                ) from None
        if self.timeout <= 0:
            raise OptionError("timeout must be positive")
        if self.concurrency < 1:
            raise OptionError("concurrency must be at least 1")
        if self.max_size is not None and self.max_size < 0:
            raise OptionError("max size must not be negative")
        if self.min_rate is not None and self.min_rate < 0:
            raise OptionError("min rate must not be negative")
        if not 0 < self.min_rate_window <= 7 * 86400:
            raise OptionError("min rate window must be more than 0 and at most 604800 seconds")
        for name in ("max_requests", "max_capture_size", "max_capture_time"):
            value = getattr(self, name)
            if value is not None and not 0 < value < math.inf:  # nan: a deadline never met
                raise OptionError(f"{name} must be positive (or None: no limit)")
        if not 0 <= self.live_duration <= 7 * 86400:
            raise OptionError("live duration must be 0 to 604800 seconds")
        if self.warc_max_size < 1024:
            raise OptionError("WARC size limit must be at least 1024 bytes")
        if not 0 < self.browser_timeout <= 86400:
            raise OptionError("browser timeout must be positive (at most a day)")
        if not 0 <= self.max_scroll <= 100_000:
            raise OptionError("max scroll must be between 0 and 100000 steps")
        width, height = self.viewport
        if not (100 <= width <= 10_000 and 100 <= height <= 10_000):
            raise OptionError("viewport must be between 100x100 and 10000x10000")
        if not 0.25 <= self.device_scale <= 4:
            raise OptionError("device scale must be between 0.25 and 4")

    def recorded(self) -> dict[str, Any]:
        """The options as written into provenance (paths and secrets left out)."""
        return {
            "collection": self.collection,
            "operator": self.operator,
            "note": self.note,
            "user_agent": self.user_agent,
            "timeout": self.timeout,
            "max_time": self.max_time,
            "min_rate": self.min_rate or None,
            "min_rate_window": self.min_rate_window,
            "max_size": self.max_size,
            "max_requests": self.max_requests,
            "max_capture_size": self.max_capture_size,
            "max_capture_time": self.max_capture_time,
            "live_duration": self.live_duration,
            "concurrency": self.concurrency,
            "warc_max_size": self.warc_max_size,
            "max_redirects": self.max_redirects,
            "insecure": self.insecure,
            "allow_private": self.allow_private or _endpoints(self.allow_private_endpoints),
            "platform_videos": self.platform_videos,
            "follow_video_links": self.follow_video_links,
            "max_video_size": self.max_video_size,
            "max_video_duration": self.max_video_duration,
            "allow_playlists": self.allow_playlists,
            "cookies": "given (values never recorded)" if self.cookies else None,
            "dedup": self.dedup,
            # only when set: captures without it keep their options exactly as before
            **({"all_renditions": True} if self.all_renditions else {}),
            **self._browser_recorded(),
        }

    def _browser_recorded(self) -> dict[str, Any]:
        """The browser's options, in captures made with one (others keep their options
        exactly as before)."""
        if not self.browser:
            return {}
        return {
            "browser": True,
            "browser_timeout": self.browser_timeout,
            "max_scroll": self.max_scroll,
            "viewport": f"{self.viewport[0]}x{self.viewport[1]}",
            "device_scale": self.device_scale,
        }


def _endpoints(pairs: frozenset[tuple[str, int]]) -> list[str] | bool:
    """The (address, port) pairs allowed as ``address:port`` texts; False when none."""
    return sorted(f"[{a}]:{p}" if ":" in a else f"{a}:{p}" for a, p in pairs) or False


@dataclass(frozen=True)
class CaptureError:
    url: str
    reason: str
    role: str

    def to_json(self) -> dict[str, str]:
        return {"url": self.url, "reason": self.reason, "role": self.role}


@dataclass(frozen=True, slots=True)  # slots: a page of 50,000 images has 100,000 of them
class RecordEntry:
    """Provenance of one WARC record written by a capture."""

    record_id: str
    warc_type: str
    url: str | None
    fetched_at: datetime
    warc_filename: str
    warc_offset: int
    warc_length: int
    block_sha256: str
    record_sha256: str
    role: str
    http_status: int | None = None
    content_type: str | None = None
    payload_sha256: str | None = None
    payload_length: int | None = None
    truncated: str | None = None
    ip_address: str | None = None
    discovered_from: str | None = None
    discovered_via: str | None = None
    concurrent_to: str | None = None
    refers_to: str | None = None


@dataclass
class VideoFound:
    """A video (or video manifest) a page referenced, and how it was found."""

    url: str
    via: str
    found_on: str
    role: str
    http_status: int | None = None
    payload_sha256: str | None = None
    payload_length: int | None = None
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "via": self.via,
            "found_on": self.found_on,
            "role": self.role,
            "http_status": self.http_status,
            "payload_sha256": self.payload_sha256,
            "payload_length": self.payload_length,
            "error": self.error,
        }


@dataclass
class Stamp:
    """What asking one time-stamping authority for a token over a capture's signature gave
    (see :mod:`archiver.trust.timestamp`)."""

    capture_id: str
    authority: str
    url: str
    token: str | None = None  # the token file, relative to the archive
    time: datetime | None = None  # the authority's time in the token
    error: str | None = None
    already: bool = False  # a token from this authority was there before
    # whether the chain reached a trusted root on receipt (False: kept unchecked, see
    # archiver.trust.timestamp.UNCHECKED); None when no token was received now
    root_checked: bool | None = None
    chain_end: str | None = None  # that root, or the last certificate the token carried

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_json(self) -> dict[str, Any]:
        return {
            "capture_id": self.capture_id,
            "authority": self.authority,
            "url": self.url,
            "ok": self.ok,
            "token": self.token,
            "time": isoformat(self.time) if self.time else None,
            "error": self.error,
            "already_stamped": self.already,
            "root_checked": self.root_checked,
            "chain_end": self.chain_end,
        }


@dataclass(frozen=True)
class UnverifiedTLS:
    """A server whose certificate did not verify, captured anyway under ``--insecure``."""

    host: str  # host:port
    problem: str  # what the verification said
    certificate_sha256: str  # of the server's certificate (DER), as openssl x509 -fingerprint
    record_id: str  # the metadata record that holds the certificate
    first_url: str  # the first URL fetched from it

    def to_json(self) -> dict[str, Any]:
        return {
            "host": self.host,
            "problem": self.problem,
            "certificate_sha256": self.certificate_sha256,
            "record_id": self.record_id,
            "first_url": self.first_url,
        }


@dataclass(frozen=True)
class StoredFile:
    """A finished file of a capture: where it is, its size and its SHA-256 (hex)."""

    path: Path
    size: int
    sha256: str


@dataclass
class Capture:
    """One capture of one seed URL: its state, provenance and records."""

    capture_id: str
    seed_url: str  # ASCII, without credentials (see archiver.core.urls)
    options: CaptureOptions
    started_at: datetime
    seed_url_unicode: str | None = None  # the seed as given, when not ASCII (an IDN host)
    auth_origin: str | None = None  # the seed's credentials were sent there (Basic auth)
    status: CaptureStatus = CaptureStatus.FAILED
    finished_at: datetime | None = None
    final_url: str | None = None
    http_status: int | None = None
    title: str | None = None
    author: str | None = None
    published_at: str | None = None
    language: str | None = None
    redirects: list[str] = field(default_factory=list)
    outlinks: list[str] = field(default_factory=list)
    videos: list[VideoFound] = field(default_factory=list)
    records: list[RecordEntry] = field(default_factory=list)
    errors: list[CaptureError] = field(default_factory=list)
    not_followed: list[dict[str, str]] = field(default_factory=list)
    budget_spent: list[str] = field(default_factory=list)  # budgets that ran out (partial)
    live: list[dict[str, Any]] = field(default_factory=list)  # live HLS playlists recorded
    tls_unverified: list[UnverifiedTLS] = field(default_factory=list)
    # --browser: which browser, how it ran, what it did and what was blocked
    browser: dict[str, Any] | None = None
    warc_files: list[Path] = field(default_factory=list)
    failure: str | None = None
    interrupted: bool = False  # stopped by Ctrl-C (status is failed)
    incomplete_files: list[Path] = field(default_factory=list)  # .open files kept on failure
    index_error: str | None = None  # the WARCs are complete but the index was not updated
    hostname: str | None = None
    platform: str | None = None
    libraries: dict[str, str] = field(default_factory=dict)  # what touched the bytes
    files: list[StoredFile] = field(default_factory=list)  # the published WARC files
    key_fingerprint: str | None = None  # who signed the manifest, once signed
    manifest: Path | None = None
    manifest_sha256: str | None = None
    timestamps: list[Stamp] = field(default_factory=list)  # RFC 3161 tokens asked for
    sign_error: str | None = None  # the WARCs are complete but the capture is not signed
    custody_error: str | None = None  # its custody event could not be written

    @property
    def total_bytes(self) -> int:
        """Bytes of HTTP payload (responses only), as the index's ``captures.total_bytes``."""
        return sum(r.payload_length or 0 for r in self.records if r.warc_type == "response")

    @property
    def truncated(self) -> list[RecordEntry]:
        return [r for r in self.records if r.truncated]

    def summary(self) -> dict[str, Any]:
        """The machine-readable summary printed by ``archiver capture --format json``."""
        return {
            "capture_id": self.capture_id,
            "seed_url": self.seed_url,
            "seed_url_unicode": self.seed_url_unicode,
            "auth_origin": self.auth_origin,
            "final_url": self.final_url,
            "status": self.status.value,
            "http_status": self.http_status,
            "failure": self.failure,
            "started_at": isoformat(self.started_at),
            "finished_at": isoformat(self.finished_at) if self.finished_at else None,
            "collection": self.options.collection,
            "operator": self.options.operator,
            "title": self.title,
            "video_count": len(self.videos),
            "videos": [v.to_json() for v in self.videos],
            "record_count": len(self.records),
            "total_bytes": self.total_bytes,
            "truncated": [r.url for r in self.truncated],
            "errors": [e.to_json() for e in self.errors],
            "not_followed": self.not_followed,
            "budget_spent": self.budget_spent,
            "live": self.live,
            "tls_unverified": [t.to_json() for t in self.tls_unverified],
            "warc_files": [str(p) for p in self.warc_files],
            "interrupted": self.interrupted,
            "incomplete_files": [str(p) for p in self.incomplete_files],
            "index_error": self.index_error,
            "manifest": str(self.manifest) if self.manifest else None,
            "key_fingerprint": self.key_fingerprint,
            "manifest_sha256": self.manifest_sha256,
            "sign_error": self.sign_error,
            "timestamps": [s.to_json() for s in self.timestamps],
            **({"browser": self.browser_summary()} if self.browser is not None else {}),
        }

    def browser_summary(self) -> dict[str, Any]:
        """What a browser capture's browser did, in short (the metadata has it all)."""
        info = self.browser or {}
        kept = [r.url for r in self.records if r.warc_type == "resource"]
        return {
            "product": info.get("product"),
            "user_agent": info.get("user_agent"),
            "loaded": info.get("loaded"),
            "network_quiet": info.get("network_quiet"),
            "scroll_steps": info.get("scroll_steps"),
            "crashed": info.get("crashed"),
            "blocked": len(info.get("blocked", [])),
            "popups": info.get("popups", []),
            "downloads": [d.get("url") for d in info.get("downloads", [])],
            "dialogs": len(info.get("dialogs", [])),
            "kept": kept,
        }
