#!/usr/bin/env python3
"""Provenance-index benchmark: `archiver query` (DuckDB over Parquet) against grep over CDXJ.

Usage::

    python benchmarks/bench_index.py [--sizes 1000000,10000000] [--repeat 5] [--dir DIR] [--keep]

For each size N it generates a synthetic index of N WARC records (about 100 per
capture, a few hundred hosts, the roles, media types, sizes and timing of real
captures), writes it in the layout that ``archiver index compact`` leaves (one
``index/records/compact-<stamp>.parquet`` and one ``index/captures/compact-<stamp>.parquet``,
written by :meth:`archiver.index.Index.compact` itself from two generated files),
and writes the equivalent CDXJ file (what ``cdxj-indexer`` would write for the same
WARC files: one line per response and metadata record, sorted).  It then times three
lookups, median of ``--repeat`` runs each:

(a) every record of one URL; (b) the videos of one host in August; (c) bytes per
content type -- with ``archiver.index.query`` (a fresh connection per run, as ``archiver
query`` opens one, and on one warm connection) and with ``grep``/``awk`` over the
CDXJ file.  It also reports the index size against the WARC bytes it describes, and
the index overhead of real captures of the test fixture site.

``--layouts per-capture`` adds, for comparison, the layout ``compact()`` wrote before
commit 0725ec7 (one row group per capture, unsorted); see ``benchmarks/README.md``.

Exit status: 0 when every run completed and every cross-check between the two sides
held (even if a target is missed: a benchmark reports, it does not gate), 1 when a
check failed, 2 for bad arguments.
"""

from __future__ import annotations

import argparse
import contextlib
import inspect
import os
import platform
import random
import resource
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

SCRIPT = Path(__file__).resolve()
PROJECT_ROOT = SCRIPT.parent.parent
if str(PROJECT_ROOT) not in sys.path:
    sys.path.insert(0, str(PROJECT_ROOT))  # `tests.support.site` and a source-tree `archiver`

from archiver import TOOL_NAME, __version__  # noqa: E402
from archiver.index import query, schema  # noqa: E402
from archiver.index.store import (  # noqa: E402
    COMPACT_PREFIX,
    PARQUET_OPTIONS,
    CaptureRow,
    Index,
    to_table,
)

# The row-group size `index compact` passes to ParquetWriter.write_table, read from its
# signature so that this benchmark follows the tool.
COMPACT_ROW_GROUP_SIZE: int = inspect.signature(Index.compact).parameters["row_group_size"].default

MIB = 1024 * 1024
TIME_BIN = "/usr/bin/time"
TARGET_SECONDS_SMALL = 0.3  # per query, up to 1M records
TARGET_SECONDS_LARGE = 2.0  # per query, above 1M (the 10M target)
SMALL_MAX = 1_000_000
TARGET_INDEX_PERCENT = 10.0  # Parquet bytes / WARC bytes described
CAPTURES_PER_CHUNK = 5_000  # generation works on this many captures at a time
YEAR_END = datetime(2026, 11, 25, tzinfo=UTC)  # fetched_at spans the year before this
YEAR_START = YEAR_END - timedelta(days=365)
AUGUST = (datetime(2026, 8, 1, tzinfo=UTC), datetime(2026, 9, 1, tzinfo=UTC))
SLOTS = 1000  # resolution of the weighted-choice lookup tables
EXCHANGE_GAP_US = 40_000  # mean time between two fetches of one capture
SHARED_ASSETS = 300  # site-wide assets per host and folder (logo, stylesheet, ...)
FIXTURE_CAPTURES = 3  # real captures of the fixture site (compaction needs two or more)
LAYOUTS = ("compact", "per-capture")


class BenchError(Exception):
    """A check did not hold: the run is not valid."""


# ---------------------------------------------------------------------------
# What a capture is made of
# ---------------------------------------------------------------------------

# Roles of `records.role`.  The first seven are HTTP exchanges: a request record and
# its response record, side by side in the WARC; warcinfo and metadata are one record.
REDIRECT, PAGE, IFRAME, REQUISITE, VIDEO, MANIFEST, SEGMENT, WARCINFO, METADATA = range(9)
# fmt: off
ROLE_NAMES = ("redirect", "page", "iframe", "requisite", "video", "video-manifest",
              "video-segment", "warcinfo", "metadata")
# fmt: on
PAIRED = WARCINFO  # roles below this are request + response


@dataclass(frozen=True)
class Variant:
    """One kind of response a role can have: media type, URL shape, size, status."""

    role: int
    mime: str
    weight: float  # within the role
    median: int  # payload bytes (log-normal)
    sigma: float
    stored: float  # WARC bytes per payload byte (gzip member; media is stored)
    folder: str = "/"
    ext: str = ""
    stem: str = ""  # media: file-name stem before the position number
    shared: float = 0.0  # chance that it is a site-wide asset, seen in many captures
    vias: tuple[str, ...] = ("",)
    statuses: tuple[tuple[int, float], ...] = ((200, 1.0),)


_IMG = ("img[src]", "img[srcset]", "source[srcset]", "css url()", "meta[og:image]")
_ERR = ((200, 0.96), (404, 0.03), (403, 0.01))  # requisites: some are missing
_R, _M = REQUISITE, "/media/"
# fmt: off
VARIANTS: tuple[Variant, ...] = (
    # role      mime                           weight median   sigma stored folder ext
    Variant(REDIRECT, "text/html",                 1,      180, 0.3, 1.0, vias=("seed",),
            statuses=((301, 0.7), (302, 0.3))),
    Variant(PAGE, "text/html",                     1,   90_000, 0.6, 0.22, vias=("seed",)),
    Variant(IFRAME, "text/html",                   1,   20_000, 0.8, 0.25, "/embed/",
            vias=("iframe[src]",)),
    Variant(_R, "image/jpeg",                     26,   70_000, 1.0, 1.0, "/images/", ".jpg",
            shared=0.3, vias=_IMG, statuses=_ERR),
    Variant(_R, "image/png",                      10,   15_000, 1.2, 1.0, "/images/", ".png",
            shared=0.6, vias=_IMG, statuses=_ERR),
    Variant(_R, "image/webp",                     10,   35_000, 1.0, 1.0, "/images/", ".webp",
            shared=0.3, vias=_IMG, statuses=_ERR),
    Variant(_R, "image/svg+xml",                   6,    3_000, 0.8, 0.35, "/static/icons/",
            ".svg", shared=0.95, vias=("img[src]", "css url()"), statuses=_ERR),
    Variant(_R, "image/gif",                       3,    4_000, 1.5, 1.0, "/images/", ".gif",
            shared=0.7, vias=("img[src]",), statuses=_ERR),
    Variant(_R, "image/x-icon",                    2,    5_000, 0.4, 0.5, "/", ".ico",
            shared=1.0, vias=("link[rel=icon]",)),
    Variant(_R, "text/css",                       12,   25_000, 0.9, 0.22, "/static/css/", ".css",
            shared=0.9, vias=("link[rel=stylesheet]", "css @import"), statuses=_ERR),
    Variant(_R, "application/javascript",         10,   60_000, 1.1, 0.3, "/static/js/", ".js",
            shared=0.85, vias=("script[src]",), statuses=_ERR),
    Variant(_R, "text/javascript",                 8,   40_000, 1.1, 0.3, "/assets/js/", ".js",
            shared=0.85, vias=("script[src]",), statuses=_ERR),
    Variant(_R, "font/woff2",                      7,   30_000, 0.5, 1.0, "/static/fonts/",
            ".woff2", shared=1.0, vias=("css url()",)),
    Variant(_R, "application/json",                4,    5_000, 1.2, 0.2, "/api/", ".json",
            shared=0.2, vias=("link[rel=preload]", "json-ld VideoObject.thumbnailUrl")),
    Variant(_R, "text/html",                       2,    2_000, 1.0, 0.3, "/static/html/",
            ".html", shared=0.8, vias=("iframe[srcdoc]",)),
    Variant(VIDEO, "video/mp4",                   85, 20_000_000, 1.0, 1.0, _M, ".mp4", "video-",
            vias=("video[src]", "video>source[src]", "meta[og:video]",
                  "json-ld VideoObject.contentUrl", "meta[twitter:player:stream]")),
    Variant(VIDEO, "video/webm",                  15, 12_000_000, 1.0, 1.0, _M, ".webm", "video-",
            vias=("video>source[src]",)),
    Variant(MANIFEST, "application/vnd.apple.mpegurl", 80, 1_500, 0.5, 0.4, _M, ".m3u8",
            "playlist-", vias=("video[src]", "hls variant")),
    Variant(MANIFEST, "application/dash+xml",     20,    4_000, 0.5, 0.3, _M, ".mpd", "manifest-",
            vias=("video[src]",)),
    Variant(SEGMENT, "video/mp2t",                55, 1_200_000, 0.4, 1.0, _M, ".ts", "seg-",
            vias=("hls segment",)),
    Variant(SEGMENT, "video/mp4",                 25,  900_000, 0.4, 1.0, _M, ".m4s", "chunk-",
            vias=("dash segment", "hls map", "dash init")),
    Variant(SEGMENT, "audio/mp4",                 12,  150_000, 0.4, 1.0, _M, ".m4a", "audio-",
            vias=("hls audio", "dash segment")),
    Variant(SEGMENT, "text/vtt",                   8,    2_000, 0.5, 0.4, _M, ".vtt", "subs-",
            vias=("hls subtitles",)),
    Variant(WARCINFO, "application/warc-fields",   1,    1_000, 0.05, 0.8),
    Variant(METADATA, "application/json",          1,   30_000, 0.5, 0.18),
)
# fmt: on
MEDIA_ROLES = (VIDEO, MANIFEST, SEGMENT)

# fmt: off
_WORDS = (
    "daily", "news", "herald", "times", "post", "tribune", "press", "gazette", "voice",
    "report", "monitor", "chronicle", "journal", "observer", "courier", "express", "mirror",
    "star", "globe", "today", "world", "live", "city", "nord", "zorka", "svaboda", "minsk",
    "grodno", "brest", "vitebsk", "kyiv", "tbilisi", "baltic", "east", "free", "open", "civic",
)
# fmt: on
_TLDS = ("com", "org", "net", "by", "ru", "ua", "ge", "de", "co.uk", "eu", "info", "io")
_SECTIONS = ("news", "world", "politics", "society", "video", "culture", "economy", "sport")
_OPERATORS = ("a.navitski", "o.petrova", "j.smith", "archive-bot", None)
_COLLECTIONS = (("default", 0.6), ("belarus-2020", 0.2), ("elections", 0.1), ("media", 0.1))
_LANGUAGES = ("ru", "be", "en", "uk", "ka", "de")


# ---------------------------------------------------------------------------
# Vectorised helpers (pyarrow.compute only; numpy is not a dependency)
# ---------------------------------------------------------------------------


class Rng:
    """Deterministic random arrays: uniform doubles, hex strings, picks from tables."""

    def __init__(self, seed: int) -> None:
        self.py = random.Random(seed)

    def uniform(self, n: int) -> pa.DoubleArray:
        return pc.random(n, initializer=self.py.getrandbits(63))

    def ints(self, n: int, low: int, high: int) -> pa.Int64Array:
        """Uniform integers in [low, high)."""
        scaled = pc.floor(pc.multiply(self.uniform(n), float(high - low)))
        return pc.add(pc.cast(scaled, pa.int64()), low)

    def normal(self, n: int) -> pa.DoubleArray:
        """Standard normal (Box-Muller)."""
        u1 = pc.subtract(1.0, self.uniform(n))  # (0, 1]
        radius = pc.sqrt(pc.multiply(pc.ln(u1), -2.0))
        return pc.multiply(radius, pc.cos(pc.multiply(self.uniform(n), 2 * 3.141592653589793)))

    def hex(self, n: int, chars: int) -> pa.StringArray:
        """``n`` random lowercase hex strings of ``chars`` characters."""
        data = self.py.randbytes(n * chars // 2).hex().encode("ascii")
        offsets = pa.array(range(0, n * chars + 1, chars), pa.int32())
        return pa.StringArray.from_buffers(n, offsets.buffers()[1], pa.py_buffer(data))

    def pick(self, table: pa.Array, key: pa.Array) -> pa.Array:
        """For each ``key``, a value drawn from that key's row of a :func:`lookup` table."""
        slot = pc.cast(pc.floor(pc.multiply(self.uniform(len(key)), float(SLOTS))), pa.int64())
        return pc.take(table, pc.add(pc.multiply(pc.cast(key, pa.int64()), SLOTS), slot))


def lookup(rows: Sequence[Sequence[tuple[int, float]]]) -> pa.Int32Array:
    """A table of ``SLOTS`` entries per key, each value repeated in proportion to its weight."""
    slots: list[int | None] = []
    for options in rows:
        if not options:
            slots.extend([None] * SLOTS)
            continue
        total = sum(weight for _, weight in options)
        row: list[int] = []
        acc = 0.0
        for value, weight in options:
            acc += weight
            row.extend([value] * (round(acc / total * SLOTS) - len(row)))
        slots.extend(row)
    return pa.array(slots, pa.int32())


def join(*parts: Any) -> pa.Array:
    """Element-wise string concatenation of arrays and scalars."""
    return pc.binary_join_element_wise(*parts, "")


def to_str(values: pa.Array) -> pa.Array:
    return pc.cast(values, pa.string())


def arange(n: int) -> pa.Int64Array:
    return pa.array(range(n), pa.int64())


def parent_indices(counts: pa.Array) -> pa.Int64Array:
    """``[0]*counts[0] + [1]*counts[1] + ...`` (numpy's ``repeat(arange, counts)``)."""
    total = pc.sum(counts).as_py() or 0
    offsets = pa.concat_arrays(
        [pa.array([0], pa.int64()), pc.cumulative_sum(pc.cast(counts, pa.int64()))]
    )
    lists = pa.LargeListArray.from_arrays(offsets, pa.nulls(total, pa.int8()))
    return pc.cast(pc.list_parent_indices(lists), pa.int64())


# ---------------------------------------------------------------------------
# The synthetic archive
# ---------------------------------------------------------------------------


@dataclass
class Hosts:
    names: list[str]
    surts: list[str]  # "com,example)" : the SURT of the host, without "/"
    ips: list[str]
    sites: int  # names[:sites] are the archived sites (Zipf popularity), then CDNs
    cdns: range
    video_cdns: range
    site_weights: list[float]

    @classmethod
    def make(cls, rng: random.Random, sites: int = 300) -> Hosts:
        import surt  # cdxj-indexer's SURT; installed with the test extras

        names: list[str] = []
        seen: set[str] = set()
        while len(names) < sites:
            name = rng.choice(_WORDS) + rng.choice(("", "-")) + rng.choice(_WORDS)
            name = f"{'www.' if rng.random() < 0.5 else ''}{name}.{rng.choice(_TLDS)}"
            if name not in seen:
                seen.add(name)
                names.append(name)
        cdns = range(len(names), len(names) + 20)
        names += [f"static{i}.cdn-edge.net" for i in range(len(cdns))]
        video_cdns = range(len(names), len(names) + 15)
        names += [f"vod{i}.streamcdn.com" for i in range(len(video_cdns))]
        surts = [surt.surt(f"https://{name}/").removesuffix("/") for name in names]
        ips = [".".join(str(rng.randrange(1, 255)) for _ in range(4)) for _ in names]
        weights = [1 / (rank + 1) ** 0.9 for rank in range(sites)]
        return cls(names, surts, ips, sites, cdns, video_cdns, weights)


@dataclass
class CapturePlan:
    """What one capture holds: its exchanges' roles, in WARC order."""

    number: int
    capture_id: str
    started_us: int
    host: int
    video_host: int
    collection: str
    page_path: str
    roles: list[int]
    page_exchange: int  # index into roles
    has_redirect: bool


def plan_captures(n_records: int, hosts: Hosts, rng: random.Random) -> list[CapturePlan]:
    """Captures of about 100 records each, until exactly ``n_records`` (an even number)."""
    plans: list[CapturePlan] = []
    left = n_records
    span_us = int((YEAR_END - YEAR_START).total_seconds() * 1e6)
    start0 = int(YEAR_START.timestamp() * 1e6)
    collections = [c for c, _ in _COLLECTIONS]
    collection_weights = [w for _, w in _COLLECTIONS]
    while left > 0:
        redirects = (rng.random() < 0.35) + (rng.random() < 0.05)
        iframes = rng.choices((0, 1, 2, 3), (0.6, 0.25, 0.1, 0.05))[0]
        requisites = rng.randint(16, 60)
        videos = manifests = segments = 0
        if rng.random() < 0.4:
            videos = rng.randint(1, 3)
            if rng.random() < 0.6:
                manifests = rng.randint(1, 3)
                segments = rng.randint(10, 60)
        size = 2 + 2 * (redirects + 1 + iframes + requisites + videos + manifests + segments)
        if size > left:  # the last capture: fill exactly
            redirects = iframes = videos = manifests = segments = 0
            requisites = max(0, (left - 4) // 2)
        roles = [WARCINFO, *[REDIRECT] * redirects, PAGE]
        page_exchange = len(roles) - 1
        roles += [IFRAME] * iframes + [REQUISITE] * requisites
        roles += [VIDEO] * videos + [MANIFEST] * manifests + [SEGMENT] * segments
        roles.append(METADATA)
        if left < 4:  # odd remainders cannot happen with even N; tiny N: a short capture
            roles = [WARCINFO, PAGE][:left]
            page_exchange = min(1, len(roles) - 1)
        left -= sum(2 if r < PAIRED else 1 for r in roles)
        host = rng.choices(range(hosts.sites), cum_weights=None, weights=hosts.site_weights)[0]
        video_host = host if rng.random() < 0.5 else rng.choice(hosts.video_cdns)
        started = start0 + rng.randrange(span_us)
        when = datetime.fromtimestamp(started / 1e6, UTC)
        slug = "-".join(rng.choice(_WORDS) for _ in range(rng.randint(2, 5)))
        path = f"/{rng.choice(_SECTIONS)}/{when:%Y/%m}/{slug}-{len(plans)}"
        plans.append(
            CapturePlan(
                number=0,
                capture_id=f"{when:%Y%m%d%H%M%S}-{rng.getrandbits(40):010x}",
                started_us=started,
                host=host,
                video_host=video_host,
                collection=rng.choices(collections, collection_weights)[0],
                page_path=path,
                roles=roles,
                page_exchange=page_exchange,
                has_redirect=bool(redirects),
            )
        )
    # `index compact` merges files in name order, which is capture-id (start time) order.
    plans.sort(key=lambda p: p.capture_id)
    for number, plan in enumerate(plans):
        plan.number = number
    return plans


@dataclass
class Chunk:
    records: pa.Table  # the records table, schema records.v1
    capture_rows: list[int]  # number of records of each capture, in order
    captures: pa.Table  # the captures table, schema captures.v1
    cdxj: pa.Array  # large_string CDXJ lines (unsorted), each ending in "\n"


class Generator:
    def __init__(self, hosts: Hosts, seed: int) -> None:
        self.hosts = hosts
        self.seed = seed
        self.variant_table = lookup(
            [
                [(i, v.weight) for i, v in enumerate(VARIANTS) if v.role == role]
                for role in range(len(ROLE_NAMES))
            ]
        )
        self.vias = sorted({via for v in VARIANTS for via in v.vias if via})
        self.via_table = lookup(
            [[(self.vias.index(via), 1.0) for via in v.vias if via] for v in VARIANTS]
        )
        self.statuses = sorted({s for v in VARIANTS for s, _ in v.statuses})
        self.status_table = lookup(
            [[(self.statuses.index(s), w) for s, w in v.statuses] for v in VARIANTS]
        )

    def _variant(self, attribute: str, variant: pa.Array, kind: pa.DataType) -> pa.Array:
        return pc.take(pa.array([getattr(v, attribute) for v in VARIANTS], kind), variant)

    def chunk(self, plans: Sequence[CapturePlan], chunk_no: int) -> Chunk:
        rng = Rng(self.seed * 1_000_003 + chunk_no)
        hosts = self.hosts
        n_cap = len(plans)
        # --- exchanges (an HTTP request/response pair, or a warcinfo/metadata record)
        ex_role_list: list[int] = []
        ex_cap_list: list[int] = []
        cap_first_ex: list[int] = []
        for c, plan in enumerate(plans):
            cap_first_ex.append(len(ex_role_list))
            ex_role_list.extend(plan.roles)
            ex_cap_list.extend([c] * len(plan.roles))
        n_ex = len(ex_role_list)
        ex_role = pa.array(ex_role_list, pa.int64())
        ex_cap = pa.array(ex_cap_list, pa.int64())
        del ex_role_list, ex_cap_list
        ex_pos = pc.subtract(arange(n_ex), pc.take(pa.array(cap_first_ex, pa.int64()), ex_cap))

        def per_capture(values: list[Any], kind: pa.DataType) -> pa.Array:
            return pc.take(pa.array(values, kind), ex_cap)

        variant = rng.pick(self.variant_table, ex_role)
        mime = self._variant("mime", variant, pa.string())
        status = pc.take(pa.array(self.statuses, pa.int32()), rng.pick(self.status_table, variant))
        via = pc.take(pa.array(self.vias, pa.string()), rng.pick(self.via_table, variant))
        # payload length: log-normal around the variant's median; error pages are small
        log_len = pc.add(
            pc.ln(pc.cast(self._variant("median", variant, pa.int64()), pa.float64())),
            pc.multiply(self._variant("sigma", variant, pa.float64()), rng.normal(n_ex)),
        )
        length = pc.cast(pc.floor(pc.min_element_wise(pc.exp(log_len), 900e6)), pa.int64())
        length = pc.if_else(pc.greater_equal(status, 400), rng.ints(n_ex, 150, 1500), length)
        # host: requisites come from the site or a CDN, media from the site or a video CDN
        site = per_capture([p.host for p in plans], pa.int64())
        cdn = rng.ints(n_ex, hosts.cdns.start, hosts.cdns.stop)
        host = pc.if_else(
            pc.equal(ex_role, REQUISITE),
            pc.if_else(pc.less(rng.uniform(n_ex), 0.7), site, cdn),
            pc.if_else(
                pc.is_in(ex_role, pa.array(MEDIA_ROLES, pa.int64())),
                per_capture([p.video_host for p in plans], pa.int64()),
                site,
            ),
        )
        # path: the page's own for seed, page and metadata; else folder + name + ext
        capno = to_str(per_capture([p.number for p in plans], pa.int64()))
        pos = to_str(ex_pos)
        media = pc.is_in(ex_role, pa.array(MEDIA_ROLES, pa.int64()))
        skew = rng.uniform(n_ex)  # shared assets: a few are in nearly every capture
        asset = to_str(pc.cast(pc.floor(pc.multiply(pc.power(skew, 3.0), SHARED_ASSETS)), "int64"))
        shared = pc.less(rng.uniform(n_ex), self._variant("shared", variant, pa.float64()))
        name = pc.if_else(
            shared,
            join("site-", asset),
            pc.if_else(
                media,
                join(capno, "/", self._variant("stem", variant, pa.string()), pos),
                join(capno, "-", pos),
            ),
        )
        built = join(
            self._variant("folder", variant, pa.string()),
            name,
            self._variant("ext", variant, pa.string()),
        )
        page_path = per_capture([p.page_path for p in plans], pa.string())
        seedlike = pc.is_in(ex_role, pa.array([REDIRECT, PAGE, METADATA], pa.int64()))
        path = pc.if_else(seedlike, page_path, built)
        http = pc.or_(
            pc.equal(ex_role, REDIRECT),
            pc.and_(
                pc.equal(ex_role, METADATA),
                per_capture([p.has_redirect for p in plans], pa.bool_()),
            ),
        )
        host_name = pc.take(pa.array(hosts.names), host)
        url = join(pc.if_else(http, "http://", "https://"), host_name, path)
        url = pc.if_else(pc.equal(ex_role, WARCINFO), pa.scalar(None, pa.string()), url)
        surt_key = join(pc.take(pa.array(hosts.surts), host), path)
        page_url = join("https://", pc.take(pa.array(hosts.names), site), page_path)
        discovered_from = pc.if_else(
            pc.is_in(ex_role, pa.array([IFRAME, REQUISITE, *MEDIA_ROLES], pa.int64())),
            page_url,
            pa.scalar(None, pa.string()),
        )
        via = pc.if_else(
            pc.and_(pc.equal(ex_role, PAGE), per_capture([p.has_redirect for p in plans], "bool")),
            pa.scalar("seed (redirected)", pa.string()),
            via,
        )
        via = pc.if_else(pc.equal(pc.utf8_length(via), 0), pa.scalar(None, pa.string()), via)
        # time: the fetches of a capture follow each other by about EXCHANGE_GAP_US
        jitter = rng.ints(n_ex, 0, EXCHANGE_GAP_US)
        fetched_us = pc.add(
            per_capture([p.started_us for p in plans], pa.int64()),
            pc.add(pc.multiply(ex_pos, EXCHANGE_GAP_US), jitter),
        )
        ip = pc.take(pa.array(hosts.ips), host)

        # --- records: two per exchange below PAIRED, one otherwise
        paired = pc.less(ex_role, PAIRED)
        per_ex = pc.if_else(paired, 2, 1)
        row_ex = parent_indices(per_ex)
        n = len(row_ex)
        ex_first_row = pc.subtract(pc.cumulative_sum(pc.cast(per_ex, pa.int64())), per_ex)
        in_ex = pc.subtract(arange(n), pc.take(ex_first_row, row_ex))  # 0 request, 1 response
        role = pc.take(ex_role, row_ex)
        row_paired = pc.take(paired, row_ex)
        is_request = pc.and_(row_paired, pc.equal(in_ex, 0))
        carries = pc.invert(is_request)  # response, warcinfo, metadata

        def rows(values: pa.Array) -> pa.Array:
            return pc.take(values, row_ex)

        def unless_request(values: pa.Array) -> pa.Array:
            return pc.if_else(is_request, pa.scalar(None, values.type), values)

        warc_type = pc.if_else(
            row_paired,
            pc.if_else(is_request, "request", "response"),
            pc.take(pa.array(ROLE_NAMES, pa.string()), role),
        )
        record_id = join(
            "<urn:uuid:",
            pc.binary_join_element_wise(
                *(pc.utf8_slice_codeunits(rng.hex(n, 32), a, b) for a, b in _UUID_PARTS), "-"
            ),
            ">",
        )
        partner = pc.if_else(
            row_paired,
            pc.add(pc.subtract(arange(n), pc.multiply(in_ex, 2)), 1),
            pa.scalar(None, pa.int64()),
        )
        concurrent_to = pc.take(record_id, partner)
        row_cap = rows(ex_cap)
        page_response_row = pc.add(
            pc.take(
                ex_first_row,
                pa.array(
                    [cap_first_ex[c] + p.page_exchange for c, p in enumerate(plans)], pa.int64()
                ),
            ),
            1,
        )
        refers_to = pc.if_else(
            pc.equal(role, METADATA),
            pc.take(record_id, pc.take(page_response_row, row_cap)),
            pa.scalar(None, pa.string()),
        )
        payload_length = unless_request(rows(length))
        # WARC bytes: headers plus the (gzip-compressed, or stored) payload
        stored = pc.multiply(
            pc.cast(rows(length), pa.float64()), rows(self._variant("stored", variant, "double"))
        )
        response_bytes = pc.add(pc.cast(pc.ceil(stored), pa.int64()), rng.ints(n, 350, 650))
        warc_length = pc.if_else(is_request, rng.ints(n, 480, 560), response_bytes)
        ends = pc.cumulative_sum(warc_length)
        starts = pc.subtract(ends, warc_length)
        cap_first_row = pc.take(ex_first_row, pa.array(cap_first_ex, pa.int64()))
        warc_offset = pc.subtract(starts, pc.take(pc.take(starts, cap_first_row), row_cap))
        warc_file = [f"warc/{p.collection}/{p.capture_id}-00000.warc.gz" for p in plans]
        warc_filename = pc.take(pa.array(warc_file, pa.string()), row_cap)
        fetched_at = pc.cast(rows(fetched_us), pa.timestamp("us", tz="UTC"))
        content_type = unless_request(rows(mime))
        payload_sha256 = unless_request(rng.hex(n, 64))
        http_status = pc.if_else(
            pc.and_(row_paired, carries), rows(status), pa.scalar(None, pa.int32())
        )
        null_str = pa.nulls(n, pa.string())
        columns = {
            "capture_id": pc.take(pa.array([p.capture_id for p in plans], pa.string()), row_cap),
            "record_id": record_id,
            "warc_type": warc_type,
            "url": rows(url),
            "fetched_at": fetched_at,
            "http_status": http_status,
            "content_type": content_type,
            "payload_sha256": payload_sha256,
            "payload_length": payload_length,
            "block_sha256": pc.if_else(
                pc.equal(pc.take(paired, row_ex), False), payload_sha256, rng.hex(n, 64)
            ),
            "record_sha256": rng.hex(n, 64),
            "truncated": null_str,
            "ip_address": pc.if_else(row_paired, rows(ip), pa.scalar(None, pa.string())),
            "role": pc.take(pa.array(ROLE_NAMES, pa.string()), role),
            "discovered_from": rows(discovered_from),
            "discovered_via": rows(via),
            "concurrent_to": concurrent_to,
            "refers_to": refers_to,
            "warc_filename": warc_filename,
            "warc_offset": warc_offset,
            "warc_length": warc_length,
            "problem": null_str,
        }
        arrow = schema.arrow_schema("records")
        records = pa.Table.from_arrays(
            [pc.cast(columns[f.name], f.type) for f in arrow], schema=arrow
        )
        capture_rows = pc.take(
            pa.table({"cap": row_cap})
            .group_by("cap")
            .aggregate([("cap", "count")])
            .sort_by("cap")["cap_count"],
            arange(n_cap),
        ).to_pylist()
        captures = self._captures(plans, records, row_cap, rng.py)
        cdxj = self._cdxj(records, rows(surt_key), carries)
        return Chunk(records, capture_rows, captures, cdxj)

    def _captures(
        self, plans: Sequence[CapturePlan], records: pa.Table, row_cap: pa.Array, rng: random.Random
    ) -> pa.Table:
        is_response = pc.equal(records["warc_type"], "response")
        sums = (
            pa.table(
                {
                    "cap": row_cap,
                    "payload": pc.if_else(is_response, records["payload_length"], 0),
                    "warc": records["warc_length"],
                    "video": pc.and_(
                        is_response,
                        pc.is_in(records["role"], pa.array(["video", "video-manifest"])),
                    ),
                    "last": records["fetched_at"],
                }
            )
            .group_by("cap")
            .aggregate(
                [
                    ("cap", "count"),
                    ("payload", "sum"),
                    ("warc", "sum"),
                    ("video", "sum"),
                    ("last", "max"),
                ]
            )
            .sort_by("cap")
            .to_pylist()
        )
        libraries = {
            "python": platform.python_version(),
            "pyarrow": pa.__version__,
            "warcio": "1.7.5",
            "zlib-ng": "2.2.4",
            "selectolax": "0.3.29",
        }
        rows = []
        for plan, agg in zip(plans, sums, strict=True):
            host = self.hosts.names[plan.host]
            final = f"https://{host}{plan.page_path}"
            status = rng.choices(("complete", "partial", "failed"), (0.9, 0.09, 0.01))[0]
            rows.append(
                CaptureRow(
                    capture_id=plan.capture_id,
                    imported=False,
                    seed_url=("http://" if plan.has_redirect else "https://")
                    + host
                    + plan.page_path,
                    final_url=final,
                    http_status=200,
                    status=status,
                    failure="page timed out" if status == "failed" else None,
                    started_at=datetime.fromtimestamp(plan.started_us / 1e6, UTC),
                    finished_at=agg["last_max"],
                    operator=rng.choice(_OPERATORS),
                    collection=plan.collection,
                    note=None,
                    tool_name=TOOL_NAME,
                    tool_version=__version__,
                    warcio_version=libraries["warcio"],
                    pyarrow_version=libraries["pyarrow"],
                    ytdlp_version=None,
                    libraries=libraries,
                    hostname="archive-01",
                    platform="Linux-6.1.0-x86_64-with-glibc2.36",
                    user_agent="archiver/0.1 (+https://example.org/archiver)",
                    title=" ".join(rng.choice(_WORDS) for _ in range(rng.randint(4, 10))).title(),
                    author=" ".join(rng.choice(_WORDS) for _ in range(2)).title(),
                    published_at=f"{plan.capture_id[:4]}-{plan.capture_id[4:6]}-01T10:00:00Z",
                    language=rng.choice(_LANGUAGES),
                    outlinks=[
                        f"https://{host}/{rng.choice(_SECTIONS)}/{rng.randrange(10**6)}"
                        for _ in range(rng.randint(10, 40))
                    ],
                    video_count=int(agg["video_sum"]),
                    warc_files=[f"warc/{plan.collection}/{plan.capture_id}-00000.warc.gz"],
                    record_count=agg["cap_count"],
                    total_bytes=int(agg["payload_sum"]),
                    warc_bytes=int(agg["warc_sum"]),
                    errors=[{"url": final + "/missing.js", "reason": "HTTP 404"}]
                    if status == "partial"
                    else None,
                )
            )
        return to_table("captures", rows)

    @staticmethod
    def _cdxj(records: pa.Table, surt_key: pa.Array, carries: pa.Array) -> pa.Array:
        """cdxj-indexer's lines for the response and metadata records (unsorted)."""
        keep = pc.and_(carries, pc.not_equal(records["warc_type"], "warcinfo"))
        data = records.filter(keep).combine_chunks()

        def col(name: str) -> pa.Array:
            return data.column(name).chunk(0) if data.num_rows else pa.array([], pa.string())

        seconds = pc.cast(col("fetched_at"), pa.timestamp("s", tz="UTC"), safe=False)
        status = to_str(col("http_status"))
        status_part = pc.if_else(
            pc.is_valid(status), join('", "status": "', status), pa.scalar("", pa.string())
        )
        basename = pc.struct_field(pc.extract_regex(col("warc_filename"), r"(?P<n>[^/]+)$"), 0)
        parts = [
            surt_key.filter(keep),
            " ",
            pc.strftime(seconds, format="%Y%m%d%H%M%S"),
            ' {"url": "',
            col("url"),
            '", "mime": "',
            col("content_type"),
            status_part,
            '", "digest": "sha256:',
            col("payload_sha256"),
            '", "length": "',
            to_str(col("warc_length")),
            '", "offset": "',
            to_str(col("warc_offset")),
            '", "filename": "',
            basename,
            '"}\n',
        ]
        large = pa.large_string()
        items = [pa.scalar(p, large) if isinstance(p, str) else pc.cast(p, large) for p in parts]
        lines = pc.binary_join_element_wise(*items, pa.scalar("", large))
        return lines.combine_chunks() if isinstance(lines, pa.ChunkedArray) else lines


_UUID_PARTS = ((0, 8), (8, 12), (12, 16), (16, 20), (20, 32))


# ---------------------------------------------------------------------------
# Writing the files
# ---------------------------------------------------------------------------


@dataclass
class Layout:
    """One way of writing the same rows; ``compact`` is what the tool does."""

    name: str
    archive: Path
    description: str
    connect_seconds: list[float] = field(default_factory=list)

    @property
    def index(self) -> Index:
        return Index(self.archive)


def compact_stamp() -> str:
    # the name Index.compact() gives its output (compact-<UTC time>-<8 hex>)
    return datetime.now(UTC).strftime("%Y%m%d%H%M%S") + "-" + os.urandom(4).hex()


class CompactWriter:
    """Writes generated rows as index files (one per table), in capture-id order, with
    ``PARQUET_OPTIONS``, the schema from ``schemas/`` and whole row groups of
    ``row_group_size`` rows: the input that ``Index.compact()`` then merges and sorts.

    ``per_capture=True`` writes as ``compact()`` did before commit 0725ec7: one
    ``write_table`` per merged file, hence one row group per capture, unsorted."""

    def __init__(
        self,
        archive: Path,
        row_group_size: int = COMPACT_ROW_GROUP_SIZE,
        *,
        per_capture: bool = False,
    ) -> None:
        stamp = compact_stamp()
        self.row_group_size = row_group_size
        self.per_capture = per_capture
        self.writers: dict[str, pq.ParquetWriter] = {}
        self.pending: dict[str, list[pa.Table]] = {t: [] for t in schema.TABLES}
        self.rows = dict.fromkeys(schema.TABLES, 0)
        for table in schema.TABLES:
            directory = Index(archive).table_dir(table)
            directory.mkdir(parents=True, exist_ok=True)
            self.writers[table] = pq.ParquetWriter(
                directory / f"{COMPACT_PREFIX}{stamp}.parquet",
                schema.arrow_schema(table),
                **PARQUET_OPTIONS,
            )

    def add(self, chunk: Chunk) -> None:
        if not self.per_capture:
            # gathering a chunk of captures at once gives the same row groups as
            # gathering them one capture at a time, faster
            self._gather("records", chunk.records)
            self._gather("captures", chunk.captures)
            return
        start = 0
        for count in chunk.capture_rows:
            self.writers["records"].write_table(
                chunk.records.slice(start, count), row_group_size=self.row_group_size
            )
            start += count
        for i in range(chunk.captures.num_rows):
            self.writers["captures"].write_table(
                chunk.captures.slice(i, 1), row_group_size=self.row_group_size
            )

    def _gather(self, table: str, data: pa.Table) -> None:
        self.pending[table].append(data)
        self.rows[table] += data.num_rows
        if self.rows[table] >= self.row_group_size:
            merged = pa.concat_tables(self.pending[table])
            full = self.rows[table] - self.rows[table] % self.row_group_size
            self.writers[table].write_table(
                merged.slice(0, full), row_group_size=self.row_group_size
            )
            self.pending[table] = [merged.slice(full)]
            self.rows[table] -= full

    def close(self) -> None:
        for table, writer in self.writers.items():
            if self.rows[table]:
                writer.write_table(
                    pa.concat_tables(self.pending[table]), row_group_size=self.row_group_size
                )
            writer.close()


# ---------------------------------------------------------------------------
# The measurements
# ---------------------------------------------------------------------------


@dataclass
class Query:
    key: str
    label: str
    sql: str
    check_sql: str  # DuckDB's count (or sums) of what the grep side finds
    shell: str  # the grep/awk pipeline over the CDXJ file
    look: str | None = None  # binary search (look) variant, for (a)
    seconds: dict[str, list[float]] = field(default_factory=dict)
    rows: dict[str, int] = field(default_factory=dict)


def make_queries(url: str, host: str, host_surt: str, cdxj: Path) -> list[Query]:
    aug0, aug1 = (d.strftime("%Y-%m-%d %H:%M:%S+00") for d in AUGUST)
    ts0, ts1 = (d.strftime("%Y%m%d%H%M%S") for d in AUGUST)
    q = shlex.quote
    url_field = '"url": "' + url + '"'
    host_field = '"url": "https://' + host + "/"
    video = (
        f"url LIKE 'https://{host}/%' AND fetched_at >= TIMESTAMPTZ '{aug0}' "
        f"AND fetched_at < TIMESTAMPTZ '{aug1}'"
    )
    awk_sum = (
        r"""awk '{ if (match($0, /"mime": "[^"]*"/)) m = substr($0, RSTART + 9, RLENGTH - 10);"""
        r"""  if (match($0, /"length": "[0-9]+"/))"""
        r"""    s[m] += substr($0, RSTART + 11, RLENGTH - 12) }"""
        r"""  END { for (k in s) printf "%s\t%.0f\n", k, s[k] }'"""
    )
    return [
        Query(
            "a",
            "(a) records of one URL",
            f"SELECT * FROM records WHERE url = '{url}' ORDER BY fetched_at",
            f"SELECT count(*) FROM records WHERE url = '{url}' "
            "AND warc_type IN ('response', 'metadata')",
            f"grep -F {q(url_field)} {q(str(cdxj))}",
            look=f"look {q(surt_of(url, host, host_surt) + ' ')} {q(str(cdxj))}",
        ),
        Query(
            "b",
            f"(b) videos of {host} in August",
            f"SELECT * FROM records WHERE {video} "
            "AND (role = 'video' OR content_type LIKE 'video/%') ORDER BY fetched_at",
            f"SELECT count(*) FROM records WHERE {video} "
            "AND warc_type = 'response' AND content_type LIKE 'video/%'",
            f"grep {q('^' + host_surt + '/')} {q(str(cdxj))} | "
            f'awk \'$2 >= "{ts0}" && $2 < "{ts1}" && index($0, "\\"mime\\": \\"video/")\''
            f" | grep -F {q(host_field)}",
        ),
        Query(
            "c",
            "(c) bytes per content type",
            "SELECT content_type, sum(payload_length) AS bytes, count(*) AS records "
            "FROM records GROUP BY content_type ORDER BY bytes DESC",
            "SELECT content_type, sum(warc_length) FROM records "
            "WHERE warc_type IN ('response', 'metadata') GROUP BY content_type",
            f"{awk_sum} {q(str(cdxj))}",
        ),
    ]


def check_surts(cdxj: Path, sample: int = 20_000) -> None:
    """The SURT keys are cdxj-indexer's (checked with the `surt` package on a sample)."""
    import surt

    with cdxj.open("rb") as fh:
        lines = [fh.readline() for _ in range(sample)]
    for line in filter(None, lines):
        key, _, rest = line.decode().partition(" ")
        url = rest.split('"url": "', 1)[1].split('"', 1)[0]
        if surt.surt(url) != key:
            raise BenchError(f"SURT of {url} is {surt.surt(url)}, the CDXJ says {key}")


def surt_of(url: str, host: str, host_surt: str) -> str:
    return host_surt + url.split(host, 1)[1]


def shell(command: str) -> tuple[float, str]:
    env = {**os.environ, "LC_ALL": "C"}
    started = time.perf_counter()
    done = subprocess.run(
        ["bash", "-o", "pipefail", "-c", command], capture_output=True, text=True, env=env
    )
    seconds = time.perf_counter() - started
    if done.returncode not in (0, 1):  # grep: 1 = no match
        raise BenchError(f"{command!r} failed ({done.returncode}): {done.stderr[-500:]}")
    return seconds, done.stdout


def time_queries(layout: Layout, queries: list[Query], repeat: int, with_grep: bool) -> None:
    """Median-of-repeat timings; alternates sides so neither always runs first."""
    for q in queries:
        for i in range(repeat):
            sides = ["fresh", "grep"] if i % 2 == 0 else ["grep", "fresh"]
            for side in sides:
                if side == "fresh":
                    started = time.perf_counter()
                    result = query.run(layout.archive, q.sql)
                    q.seconds.setdefault(f"{layout.name}:fresh", []).append(
                        time.perf_counter() - started
                    )
                    q.rows[f"{layout.name}:duckdb"] = result.table.num_rows
                elif with_grep:
                    seconds, out = shell(q.shell)
                    q.seconds.setdefault("grep", []).append(seconds)
                    q.rows["grep"] = len(out.splitlines())
                    if q.look is not None:
                        seconds, out = shell(q.look)
                        q.seconds.setdefault("look", []).append(seconds)
                        q.rows["look"] = len(out.splitlines())
        for _ in range(repeat if q is queries[0] else 0):
            started = time.perf_counter()
            query.connect(layout.archive).close()
            layout.connect_seconds.append(time.perf_counter() - started)
        con = query.connect(layout.archive)
        try:
            con.execute(q.sql).fetchall()  # warm-up: footer and data pages read once
            for _ in range(repeat):
                started = time.perf_counter()
                con.execute(q.sql).fetchall()
                q.seconds.setdefault(f"{layout.name}:warm", []).append(
                    time.perf_counter() - started
                )
        finally:
            con.close()


def cross_check(layout: Layout, queries: list[Query]) -> list[str]:
    """DuckDB and the CDXJ side must find the same lines (problems, as text)."""
    problems = []
    con = query.connect(layout.archive)
    try:
        for q in queries:
            _, out = shell(q.shell)
            if q.key == "c":
                got = {}
                for line in out.splitlines():
                    mime, _, total = line.rpartition("\t")
                    got[mime] = int(total)
                want = {k: int(v) for k, v in con.execute(q.check_sql).fetchall()}
                if got != want:
                    problems.append(f"{q.label}: CDXJ sums {got} != DuckDB {want}")
            else:
                (count,) = con.execute(q.check_sql).fetchone() or (None,)
                if count != len(out.splitlines()):
                    problems.append(
                        f"{q.label}: CDXJ {len(out.splitlines())} lines, DuckDB {count}"
                    )
            if q.look is not None:
                _, out_look = shell(q.look)
                if sorted(out_look.splitlines()) != sorted(out.splitlines()):
                    problems.append(f"{q.label}: look and grep disagree")
    finally:
        con.close()
    return problems


def explain(layout: Layout, sql: str) -> str:
    """The gist of DuckDB's EXPLAIN ANALYZE: time, bytes read, row groups scanned."""
    con = query.connect(layout.archive)
    try:
        con.execute("PRAGMA enable_profiling = 'no_output'")
        plan = "\n".join(str(r[1]) for r in con.execute("EXPLAIN ANALYZE " + sql).fetchall())
    finally:
        con.close()
    keep = ("Total Time", "Data Read", "Row Groups Scanned")
    found = [line.strip("│ ╭╰─") for line in plan.splitlines() if any(k in line for k in keep)]
    return "; ".join(" ".join(f.split()) for f in found)


def footer_seconds(path: Path, repeat: int) -> float:
    """Median seconds to read a Parquet footer (what every fresh connection pays)."""
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        pq.read_metadata(path)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


# ---------------------------------------------------------------------------
# A real capture of the fixture site
# ---------------------------------------------------------------------------


def fixture_overhead(work: Path) -> dict[str, int]:
    """Index bytes against WARC bytes for real captures, before and after compaction."""
    from archiver.capture.run import Capturer
    from archiver.core.model import CaptureOptions
    from tests.support.site import FixtureSite

    archive = work / "fixture-archive"
    with FixtureSite() as site:
        for _ in range(FIXTURE_CAPTURES):
            # timeout=2: the fixture's /hang/forever.js waits for the capture timeout
            options = CaptureOptions(archive_dir=archive, timeout=2, allow_private=True)
            Capturer(options).capture(site.url("/article"))
    index = Index(archive)

    def index_bytes() -> dict[str, int]:
        return {t: sum(p.stat().st_size for p in index.files(t)) for t in schema.TABLES}

    warc = sum(p.stat().st_size for p in (archive / "warc").rglob("*.warc*"))
    records = query.run(archive, "SELECT count(*) AS n, sum(warc_length) AS w FROM records").rows[0]
    before = index_bytes()
    index.compact()
    after = index_bytes()
    shutil.rmtree(archive)
    return {
        "captures": FIXTURE_CAPTURES,
        "records": int(records["n"]),
        "warc_bytes": warc,
        "warc_length_sum": int(records["w"]),
        "before_records": before["records"],
        "before_captures": before["captures"],
        "after_records": after["records"],
        "after_captures": after["captures"],
    }


# ---------------------------------------------------------------------------
# Reporting
# ---------------------------------------------------------------------------


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def query_rss_mb(layout: Layout, queries: list[Query]) -> float:
    """Peak RSS of a fresh process that runs the three queries with archiver.index.query.run()."""
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--internal-query-rss", str(layout.archive)]
        + [q.sql for q in queries],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(done.stdout.split()[-1]) / 1024


def internal_query_rss(archive: Path, sqls: Sequence[str]) -> int:
    for sql in sqls:
        query.run(archive, sql)
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the parent across fork+exec
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            print(line.split()[1])
            return 0
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
    return 0


def grep_rss_mb(queries: list[Query]) -> float | None:
    """Largest peak RSS of the grep/awk pipelines (GNU time), or None without it."""
    if not Path(TIME_BIN).exists():
        return None
    peak = 0
    for q in queries:
        done = subprocess.run(
            [TIME_BIN, "-f", "%M", "bash", "-o", "pipefail", "-c", q.shell],
            capture_output=True,
            text=True,
            env={**os.environ, "LC_ALL": "C"},
        )
        peak = max(peak, int(done.stderr.strip().splitlines()[-1]))
    return peak / 1024


def machine_line() -> str:
    model = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return (
        f"machine: {os.cpu_count()} cores, {model}; Python {platform.python_version()}, "
        f"duckdb {duckdb.__version__}, pyarrow {pa.__version__}, {platform.platform()}"
    )


def target_for(size: int) -> float:
    return TARGET_SECONDS_SMALL if size <= SMALL_MAX else TARGET_SECONDS_LARGE


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def median(values: list[float]) -> float:
    return statistics.median(values)


def print_table(size: int, layouts: list[Layout], queries: list[Query], repeat: int) -> bool:
    target = target_for(size)
    all_ok = True
    header = (
        f"{'query':<40} {'layout':<13} {'rows':>5} {'archiver s':>10} {'warm s':>7} "
        f"{'grep s':>7} {'grep/archiver':>13}  target < {target:g} s"
    )
    print()
    print(
        f"N = {size:,} records, median of {repeat} runs. archiver: archiver.index.query.run() "
        "(fresh connection, as `archiver query`); warm: one open connection; grep: "
        "LC_ALL=C grep/awk over the CDXJ"
    )
    print(header)
    print("-" * len(header))
    for q in queries:
        grep = median(q.seconds["grep"])
        for layout in layouts:
            fresh = median(q.seconds[f"{layout.name}:fresh"])
            warm = median(q.seconds[f"{layout.name}:warm"])
            ok = fresh < target
            if layout.name == "compact":
                all_ok &= ok
            print(
                f"{q.label:<40} {layout.name:<13} {q.rows[f'{layout.name}:duckdb']:>5} "
                f"{fresh:10.3f} {warm:7.3f} {grep:7.3f} {grep / fresh:13.2f}  {verdict(ok)}"
            )
        if "look" in q.seconds:
            print(
                f"{'  the same by binary search (look)':<40} {'CDXJ':<13} {q.rows['look']:>5} "
                f"{'':>10} {'':>7} {median(q.seconds['look']):7.3f}"
            )
    for layout in layouts:
        print(
            f"{'connect() alone (defines the views)':<40} {layout.name:<13} {'':>5} "
            f"{median(layout.connect_seconds):10.3f}"
        )
    counts = ", ".join(f"{q.key} {q.rows['grep']}" for q in queries)
    print(
        f"rows: DuckDB returns every matching record; the CDXJ has only response and metadata "
        f"records (grep lines: {counts}; checked equal to DuckDB's count of those)"
    )
    return all_ok


# ---------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------


def run_size(args: argparse.Namespace, size: int, work: Path) -> bool:
    """Generate, write, measure and report one size; False when a target is missed."""
    print(f"\n=== N = {size:,} records ===", flush=True)
    root = work / f"n{size}"
    root.mkdir(parents=True)
    rng = random.Random(args.seed)
    hosts = Hosts.make(rng)
    plans = plan_captures(size, hosts, rng)
    generator = Generator(hosts, args.seed)
    compact = Layout("compact", root / "archive", "as `index compact` writes it")
    cdxj_path = root / "index.cdxj"
    started = time.perf_counter()
    # the generated rows go into two files in capture order, which the real
    # `Index.compact()` then merges and sorts: the layout measured is the tool's own
    writers = [CompactWriter(compact.archive), CompactWriter(compact.archive)]
    layouts = [compact]
    if "per-capture" in args.layouts:
        layouts.append(
            Layout("per-capture", root / "archive-per-capture", "compact() before 0725ec7")
        )
        writers.append(CompactWriter(layouts[-1].archive, per_capture=True))
    lines: list[pa.Array] = []
    warc_bytes = payload_bytes = 0
    generate_s = write_s = 0.0
    for chunk_no, first in enumerate(range(0, len(plans), CAPTURES_PER_CHUNK)):
        t0 = time.perf_counter()
        chunk = generator.chunk(plans[first : first + CAPTURES_PER_CHUNK], chunk_no)
        t1 = time.perf_counter()
        writers[chunk_no % 2].add(chunk)
        t2 = time.perf_counter()
        for writer in writers[2:]:
            writer.add(chunk)
        write_s += t2 - t1
        generate_s += t1 - t0
        lines.append(chunk.cdxj)
        warc_bytes += pc.sum(chunk.records["warc_length"]).as_py()
        payload_bytes += pc.sum(chunk.records["payload_length"]).as_py() or 0
        del chunk
        print(
            f"  {min(first + CAPTURES_PER_CHUNK, len(plans)):,}/{len(plans):,} captures "
            f"({time.perf_counter() - started:.0f} s)",
            end="\r",
            flush=True,
        )
    for writer in writers:
        writer.close()
    t0 = time.perf_counter()
    all_lines = pa.concat_arrays(lines)
    del lines
    all_lines = pc.take(all_lines, pc.sort_indices(all_lines))  # LC_ALL=C sort order
    with cdxj_path.open("wb") as fh:
        data = all_lines.buffers()[2]
        end = pc.sum(pc.binary_length(all_lines)).as_py()
        fh.write(memoryview(data)[:end])
    cdxj_lines = len(all_lines)
    del all_lines
    cdxj_s = time.perf_counter() - t0
    check_surts(cdxj_path)
    print(
        f"generated {size:,} records in {len(plans):,} captures: generation {generate_s:.1f} s, "
        f"Parquet writing {write_s:.1f} s (as compact() writes), "
        f"CDXJ sort+write {cdxj_s:.1f} s",
        flush=True,
    )
    t0 = time.perf_counter()
    merged = compact.index.compact()
    print(
        f"archiver index compact: {merged['records']} records files merged and sorted in "
        f"{time.perf_counter() - t0:.1f} s",
        flush=True,
    )

    # the lookups: a widely shared stylesheet of the most popular site; that site's videos
    site = hosts.names[0]
    url = f"https://{site}/static/css/site-0.css"
    queries = make_queries(url, site, hosts.surts[0], cdxj_path)
    problems = cross_check(compact, queries)
    for layout in layouts[1:]:
        problems += cross_check(layout, queries)
    if problems:
        raise BenchError("; ".join(problems))
    print("checked: DuckDB and grep/awk over the CDXJ find the same records for (a), (b), (c)")
    for i, layout in enumerate(layouts):
        time_queries(layout, queries, args.repeat, with_grep=i == 0)
    all_ok = print_table(size, layouts, queries, args.repeat)

    # sizes
    print()
    for layout in layouts:
        files = {t: layout.index.files(t)[0] for t in schema.TABLES}
        sizes = {t: p.stat().st_size for t, p in files.items()}
        meta = {t: pq.read_metadata(p) for t, p in files.items()}
        parquet = sum(sizes.values())
        percent = 100 * parquet / warc_bytes
        ok = percent <= TARGET_INDEX_PERCENT
        if layout.name == "compact":
            all_ok &= ok
        print(
            f"index size [{layout.name}]: records {sizes['records'] / MIB:,.1f} MiB "
            f"({meta['records'].num_row_groups:,} row groups, footer "
            f"{meta['records'].serialized_size / MIB:,.1f} MiB, read in "
            f"{footer_seconds(files['records'], 3):.2f} s) + captures "
            f"{sizes['captures'] / MIB:,.1f} MiB ({meta['captures'].num_row_groups:,} row groups, "
            f"footer {meta['captures'].serialized_size / MIB:,.1f} MiB) = {parquet / MIB:,.1f} MiB"
            f" = {parquet / size:,.0f} bytes/record; {percent:.3f} % of the "
            f"{warc_bytes / 2**40:,.2f} TiB of WARC records described: "
            f"{verdict(ok)} <= {TARGET_INDEX_PERCENT:g} %"
        )
    print(
        f"CDXJ: {cdxj_lines:,} lines, {cdxj_path.stat().st_size / MIB:,.1f} MiB "
        f"({cdxj_path.stat().st_size / size:,.0f} bytes/record of the index); "
        f"payload bytes described {payload_bytes / 2**40:,.2f} TiB"
    )
    rss = ", ".join(f"{lay.name} {query_rss_mb(lay, queries):,.0f} MiB" for lay in layouts)
    grep_rss = grep_rss_mb(queries)
    print(
        f"peak RSS: a process running the three queries with archiver.index.query.run(): {rss}; "
        f"grep/awk: {'n/a' if grep_rss is None else f'{grep_rss:,.0f} MiB'}; this benchmark "
        f"process (generation included): {peak_rss_mb():,.0f} MiB"
    )
    if args.explain:
        print()
        for layout in layouts:
            for q in queries:
                print(f"EXPLAIN ANALYZE [{layout.name}] {q.label}: {explain(layout, q.sql)}")
    if not args.keep:
        shutil.rmtree(root, ignore_errors=True)
    return all_ok


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Time archiver's index queries (DuckDB over Parquet) against grep over CDXJ.",
    )
    parser.add_argument(
        "--sizes",
        default="1000000,10000000",
        help="comma-separated record counts (default 1000000,10000000)",
    )
    parser.add_argument("--repeat", type=int, default=5, help="runs per query; median (5)")
    parser.add_argument(
        "--dir", type=Path, help="work directory (default: a new temporary one under /tmp)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the generated files")
    parser.add_argument(
        "--layouts",
        default="compact",
        help=f"comma-separated Parquet layouts to measure, of {','.join(LAYOUTS)} "
        "(default compact: what `index compact` writes; the others are experiments)",
    )
    parser.add_argument("--seed", type=int, default=20261125, help="random seed")
    parser.add_argument(
        "--skip-fixture", action="store_true", help="skip the real captures of the fixture site"
    )
    parser.add_argument(
        "--explain", action="store_true", help="print DuckDB's EXPLAIN ANALYZE of each query"
    )
    args = parser.parse_args(argv)
    try:
        args.sizes = [int(s.replace("_", "")) for s in args.sizes.split(",") if s]
    except ValueError:
        parser.error("--sizes takes comma-separated integers")
    args.layouts = [s for s in args.layouts.split(",") if s]
    if not args.sizes or any(s < 1000 or s % 2 for s in args.sizes):
        parser.error("every size must be an even number of at least 1000")
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    if unknown := set(args.layouts) - set(LAYOUTS):
        parser.error(f"unknown layouts {sorted(unknown)}; choose from {', '.join(LAYOUTS)}")
    if "compact" not in args.layouts:
        args.layouts.insert(0, "compact")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--internal-query-rss"] and len(argv) >= 3:
        return internal_query_rss(Path(argv[1]), argv[2:])
    args = parse_args(argv)
    if args.dir is not None:
        args.dir.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix="archiver-bench-index-", dir=args.dir))
    else:
        work = Path(tempfile.mkdtemp(prefix="archiver-bench-index-", dir="/tmp"))
    started = time.monotonic()
    print(machine_line(), flush=True)
    print(
        f"compact(): row_group_size default {COMPACT_ROW_GROUP_SIZE:,}, "
        f"PARQUET_OPTIONS {PARQUET_OPTIONS}",
        flush=True,
    )
    try:
        if not args.skip_fixture:
            f = fixture_overhead(work)
            before = f["before_records"] + f["before_captures"]
            after = f["after_records"] + f["after_captures"]
            print(
                f"fixture site, {f['captures']} real captures ({f['records']} records, "
                f"{f['warc_bytes']:,} WARC bytes): index {before:,} bytes before compaction "
                f"({100 * before / f['warc_bytes']:.2f} %, {before / f['captures']:,.0f} bytes "
                f"per capture, {before / f['records']:,.0f} per record), {after:,} bytes after "
                f"({100 * after / f['warc_bytes']:.2f} %, {after / f['captures']:,.0f} per "
                f"capture, {after / f['records']:,.0f} per record)",
                flush=True,
            )
        all_ok = True
        for size in args.sizes:
            all_ok &= run_size(args, size, work)
        print(f"\nall targets met: {'yes' if all_ok else 'NO'}")
        return 0
    except BenchError as exc:
        print(f"\nBENCHMARK INVALID: {exc}", file=sys.stderr)
        return 1
    finally:
        if args.keep:
            print(f"kept {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
        print(f"(benchmark took {time.monotonic() - started:.0f} s)", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
