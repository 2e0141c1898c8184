"""Replay: the archive shown in a browser by pywb, read from our index and our WARC files.

pywb (``pip install 'archiver[replay]'``) is the reference replay system; archiver does
not copy anything into a pywb collection.  A temporary directory of our own (in the
system's, so that a read-only copy of an archive replays too) holds pywb's
``config.yaml`` and its collections, each a directory of pywb's own layout: an index
(``indexes/index.cdxj``, written from our index by :mod:`archiver.index.cdxj`, the lines
cdxj-indexer would write) and ``archive``, a link to the archive's own ``warc/``
directory: the WARC files are read in place.

One collection per capture, named by its id: every URL printed shows that capture and no
other, even when two captures of one URL fall in the same second (a CDXJ time has 14
digits), and a record that cannot be loaded is never stood in for by another capture's.
A revisit's line names the record holding its payload (``orig.filename``,
``orig.offset``, ``orig.length``, which pywb loads the payload from), so that a capture
replays whole without listing another capture's records.  The collection ``archive``
holds every capture replayed, for browsing across them: there pywb shows the capture
nearest in time, and another capture's record when one cannot be loaded.

Only ``response``, ``revisit`` and ``resource`` records are listed, so our own records
(``urn:archiver-…``, metadata) never stand in for a page; and of responses and
revisits, only those to a GET (the method read from the request record of the same
exchange: ``concurrent_to``), so that a POST a page made (a beacon) is never served for
a GET of its URL.  Before anything is served, every WARC file a capture needs is checked:
under the archive's ``warc/`` directory, there, as long as its index says, and of the size
its signed manifest says; a capture failing that is left out and said in ``notes``.
Replay does not verify: it shows what the files hold now (:data:`NOT_VERIFIED`).

pywb runs as a child process (:mod:`.server`: ``python -c``, the interpreter we run
in): it imports gevent, which patches the standard library, and it prints a great deal,
so it gets a process, a session and a log file of its own (shown, its tail, only when
it fails).  The listening socket is bound here and handed to it, so that a busy port is
said at once and ``port=0`` means a free port without a race.  HLS and DASH manifests
reach pywb whole even when a player asks for a range (see :mod:`.server`), so that pywb
rewrites them to the rendition captured.  The child never outlives
us: it stops when its stdin (a pipe only we hold) ends, which the kernel does when we
die even by SIGKILL, and it gets SIGTERM (``PR_SET_PDEATHSIG``) when the thread that
started it ends; either way it removes the temporary directory before it exits.
:meth:`ReplayServer.close` ends it that way, then by signals, and removes the directory.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import zlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO, Any
from urllib.parse import urlsplit

from archiver.core.errors import Failure, UsageProblem
from archiver.index import cdxj
from archiver.index import query as querying
from archiver.trust import manifest as manifests

COLLECTION = "archive"
"""The collection of every capture replayed together; each capture is also a collection
of its own, named by its id (what the URLs printed open)."""
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080
"""pywb's own default: a fixed port keeps the URLs a person bookmarked; 0 picks a free one."""
STARTUP_SECONDS = 60.0  # pywb imports gevent, jinja2 and its templates: ~1 s, more on CI
STOP_SECONDS = 5.0
TEMP_PREFIX = "archiver-replay-"
EXTRA = "pip install 'archiver[replay]'"
LOG_NAME = "pywb.log"
COLLECTIONS_DIR = "collections"
MANIFESTS_NAME = "manifests.json"
HTML_TYPES = ("text/html", "application/xhtml+xml")
PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy", "no_proxy")
MANIFEST_TYPES = frozenset(
    {
        "application/vnd.apple.mpegurl",
        "application/x-mpegurl",
        "application/mpegurl",
        "audio/mpegurl",
        "audio/x-mpegurl",
        "application/dash+xml",
    }
)
"""HLS and DASH manifests by their media type (their URL may end anyhow)."""
MANIFEST_SUFFIXES = (".m3u8", ".mpd")
NOT_VERIFIED = (
    "replay shows what the files hold now; `archiver verify` says whether that is what was signed"
)
RAW_NOTE = (
    "raw_url: the page as captured, not rewritten (no banner, links and resources "
    "unchanged): opened in a browser, it fetches from the live web; it is meant for "
    "scripts that fetch the bytes"
)
REQUEST_HEAD = 16384
"""Bytes of a request record read (and inflated) to find its method: its WARC head and
request line."""
_TOKEN = re.compile(rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_HEAD_END = re.compile(rb"\r?\n\r?\n")


class ReplayUnavailable(UsageProblem):
    """pywb, the optional extra replay needs, is not installed (exit 2)."""


class ReplayFailed(Failure):
    """pywb could not be started, or stopped by itself."""


@dataclass(frozen=True)
class ReplayPage:
    """A captured page: what a person opens, at the time its response was recorded, in
    its capture's own collection."""

    capture_id: str
    url: str
    timestamp: str  # 14 digits, UTC: the page record's WARC-Date

    @property
    def collection(self) -> str:
        """The pywb collection holding this capture alone: its id."""
        return self.capture_id

    @property
    def path(self) -> str:
        """The replay path (pywb's framed replay: its banner above the page)."""
        return f"/{self.collection}/{self.timestamp}/{self.url}"

    @property
    def raw_path(self) -> str:
        """The page exactly as it was served (``id_``: no rewriting, no banner).  For
        scripts: a browser opening it fetches its resources from the live web."""
        return f"/{self.collection}/{self.timestamp}id_/{self.url}"


@dataclass
class ReplayPlan:
    """What a replay serves: the captures, their pages, the CDXJ lines of each capture's
    collection, the SURT keys of its HLS and DASH manifests, and what was left out."""

    archive_dir: Path
    capture_ids: list[str]  # the captures replayed, in order
    pages: list[ReplayPage]
    collections: dict[str, list[bytes]]  # capture id -> its sorted CDXJ lines
    manifests: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    left_out: dict[str, str] = field(default_factory=dict)  # capture id -> why

    @property
    def lines(self) -> list[bytes]:
        """The lines of the collection of every capture replayed (:data:`COLLECTION`)."""
        return sorted(line for lines in self.collections.values() for line in lines)


def missing_extra() -> str | None:
    """The module replay needs that cannot be imported (``pywb``, ``gevent``), or None."""
    for name in ("pywb", "gevent"):
        try:
            if importlib.util.find_spec(name) is None:
                return name
        except (ImportError, ValueError):  # ValueError: sys.modules[name] is None
            return name
    return None


def require_pywb() -> None:
    """A clear :class:`ReplayUnavailable` when the extra is not installed."""
    name = missing_extra()
    if name is not None:
        raise ReplayUnavailable(
            f"replay needs pywb, an optional extra ({name} cannot be imported): {EXTRA}"
        )


ROW_COLUMNS = ("capture_id", "record_id", "refers_to", "concurrent_to", *cdxj.COLUMNS)


def plan(archive_dir: Path, capture_ids: Sequence[str] = ()) -> ReplayPlan:
    """The records and pages of the captures named (default: every capture).

    An unknown capture is a :class:`UsageProblem`.  A capture whose WARC files (or those
    of the records its revisits stand for) are missing, outside ``warc/``, shorter than
    the index says or of another size than the signed manifest says is left out; that,
    captures with nothing a browser can be shown, and responses to other requests than
    GET are said in ``notes``; a plan with nothing at all is a :class:`Failure`."""
    named = list(dict.fromkeys(capture_ids))
    if named:
        found = querying.run(
            archive_dir,
            f"select capture_id from captures where capture_id in ({_marks(named)})",
            named,
        ).rows
        known = {row["capture_id"] for row in found}
        for capture_id in named:
            if capture_id not in known:
                raise UsageProblem(
                    f"no capture {capture_id!r} in the index of {archive_dir}", hint="CAPTURE"
                )
    pages, captures = _pages(archive_dir, named)
    columns = ", ".join(ROW_COLUMNS)
    served = ", ".join(repr(t) for t in cdxj.SERVED_TYPES)
    where = f" and capture_id in ({_marks(named)})" if named else ""
    rows = querying.run(
        archive_dir,
        f"select {columns} from records where warc_type in ({served}) and url is not null" + where,
        named,
    ).rows
    originals = {
        row["record_id"]: row
        for row in querying.run(  # the records holding what the revisits stand for
            archive_dir,
            f"select {columns} from records where warc_type in ({served}) and url is not "
            "null and record_id in (select refers_to from records where warc_type = "
            f"'revisit'{where})",
            named,
        ).rows
    }
    checker = _Files(archive_dir)
    requests = _requests(archive_dir, named, checker)
    by_capture: dict[str, list[dict[str, Any]]] = {c: [] for c in captures}
    for row in rows:
        by_capture.setdefault(row["capture_id"], []).append(row)
    notes: list[str] = []
    left_out: dict[str, str] = {}
    collections: dict[str, list[bytes]] = {}
    manifest_keys: set[str] = set()
    skipped: Counter[str] = Counter()
    listed: set[tuple[str, str, str]] = set()
    try:
        for capture_id, records in by_capture.items():
            needed = records + [
                originals[r["refers_to"]]
                for r in records
                if r["warc_type"] == "revisit" and r["refers_to"] in originals
            ]
            problem = next(filter(None, (_problem(checker, r, capture_id) for r in needed)), None)
            if problem is not None:
                left_out[capture_id] = problem
                notes.append(f"capture {capture_id} left out: {problem}")
                continue
            lines = []
            for row in records:
                method = requests.method(row)
                if method != "GET":
                    skipped[method or "unreadable"] += 1
                    continue
                original = (
                    originals.get(row["refers_to"]) if row["warc_type"] == "revisit" else None
                )
                lines.append(_line(row, original, checker))
                listed.add((capture_id, row["url"], cdxj.timestamp14(row["fetched_at"])))
                if _is_manifest(original or row):
                    manifest_keys.add(cdxj.surt_key(row["url"]))
            collections[capture_id] = sorted(lines)
    finally:
        checker.close()
    notes += checker.notes
    if skipped:
        notes.append(_skipped_note(skipped))
    replayed = [c for c in captures if c not in left_out]
    # a page is printed only if its collection lists it (not the answer to a POST)
    pages = [p for p in pages if (p.capture_id, p.url, p.timestamp) in listed]
    for capture_id in replayed:
        if not any(p.capture_id == capture_id for p in pages):
            notes.append(f"capture {capture_id} has no page to open (no response for it)")
    if not any(collections.values()):
        if left_out:
            raise Failure("nothing to replay: " + "; ".join(n for n in notes if " left out: " in n))
        what = f"captures {', '.join(named)}" if named else f"the archive {archive_dir}"
        raise Failure(f"nothing to replay: {what} holds no record a browser can be shown")
    return ReplayPlan(
        archive_dir,
        replayed,
        pages,
        collections,
        sorted(manifest_keys),
        notes,
        left_out,
    )


def _problem(files: _Files, row: dict[str, Any], capture_id: str) -> str | None:
    """What is wrong with the file of ``row``, a record ``capture_id`` needs."""
    problem = files.problem(row)
    if problem is None or row["capture_id"] == capture_id:
        return problem
    return f"its revisits stand for records of capture {row['capture_id']}, and {problem}"


def _marks(values: Sequence[Any]) -> str:
    return ", ".join("?" for _ in values)


def _skipped_note(skipped: Counter[str]) -> str:
    unreadable = skipped.pop("unreadable", 0)
    parts = []
    if skipped:
        methods = ", ".join(f"{n} {m}" for m, n in sorted(skipped.items()))
        parts.append(
            f"responses to requests other than GET left out ({methods}): replay answers a "
            "GET with what a GET received"
        )
    if unreadable:
        parts.append(f"responses left out ({unreadable}): their request record cannot be read")
    return "; ".join(parts)


def _is_manifest(row: dict[str, Any]) -> bool:
    media = str(row.get("content_type") or "").split(";", 1)[0].strip().lower()
    path = urlsplit(str(row["url"])).path.lower()
    return media in MANIFEST_TYPES or path.endswith(MANIFEST_SUFFIXES)


def _line(row: dict[str, Any], original: dict[str, Any] | None, files: _Files) -> bytes:
    """The record's CDXJ line, its file named under ``warc/``.  A revisit whose original
    is known names it (``orig.*``, pywb's own fields for a revisit resolved) with its
    media type, so that pywb loads the payload from there, not from whatever record of
    the collection has that URL and digest."""
    text = cdxj.line(row, files.name(row["warc_filename"]))
    if original is None:
        return text
    start = text.index(b' {"url": ')  # after the key (a URL surt cannot parse) and time
    fields = json.loads(text[start + 1 :])
    if original.get("content_type"):
        fields["mime"] = str(original["content_type"]).split(";", 1)[0].strip().lower()
    else:
        fields.pop("mime", None)
    if "status" not in fields and original.get("http_status") is not None:
        fields["status"] = str(original["http_status"])
    fields["orig.length"] = str(original["warc_length"])
    fields["orig.offset"] = str(original["warc_offset"])
    fields["orig.filename"] = files.name(original["warc_filename"])
    return text[: start + 1] + json.dumps(fields, ensure_ascii=False).encode("utf-8")


class _Files:
    """The WARC files a replay reads: where each is (under ``warc/``, no ``..``), whether
    it is there and as long as the index and the signed manifest say; and the open files
    request records are read from."""

    def __init__(self, archive_dir: Path) -> None:
        self.archive_dir = archive_dir
        self.warc_dir = (archive_dir / "warc").resolve()
        self._resolved: dict[str, Path | str] = {}  # name -> its path, or why not
        self._ends: dict[str, int] = {}
        self._checked: dict[str, str | None] = {}
        self._captures: dict[str, str] | None = None  # signed capture -> its collection
        self._read: set[str] = set()  # the captures whose manifest was read
        self._sizes: dict[str, int] = {}  # file -> its size, as its signed manifest says
        self.notes: list[str] = []
        self._open: dict[Path, IO[bytes]] = {}

    def resolve(self, name: str) -> Path | str:
        """The file ``name`` (relative to the archive) stands for, or why it cannot be
        read: anything but a plain path under ``warc/`` is refused."""
        if name not in self._resolved:
            self._resolved[name] = self._resolve(name)
        return self._resolved[name]

    def _resolve(self, name: str) -> Path | str:
        parts = PurePosixPath(name).parts
        if (
            not name.startswith("warc/")
            or ".." in parts
            or "." in name.split("/")
            or "" in name.split("/")
            or any(ch in name for ch in "*\0")
        ):
            return f"its index names {name!r}, not a file under the archive's warc/ directory"
        path = (self.archive_dir / name).resolve()
        if not path.is_relative_to(self.warc_dir) or path == self.warc_dir:
            return f"its index names {name!r}, which leads outside the archive's warc/ directory"
        return path

    def name(self, warc_filename: str) -> str:
        """The file as pywb opens it: relative to ``warc/`` (a checked name)."""
        path = self.resolve(warc_filename)
        assert isinstance(path, Path)
        return path.relative_to(self.warc_dir).as_posix()

    def problem(self, row: dict[str, Any]) -> str | None:
        """What is wrong with the file holding ``row`` (None: it can be served)."""
        name = str(row["warc_filename"])
        end = int(row["warc_offset"]) + int(row["warc_length"])
        if name in self._checked and end <= self._ends[name]:
            return self._checked[name]
        self._ends[name] = max(end, self._ends.get(name, 0))
        self._checked[name] = self._problem(name, self._ends[name], str(row["capture_id"]))
        return self._checked[name]

    def _problem(self, name: str, end: int, capture_id: str) -> str | None:
        path = self.resolve(name)
        if isinstance(path, str):
            return path
        try:
            size = os.stat(path).st_size
            if not path.is_file():
                return f"{name} is not a file"
            with open(path, "rb"):
                pass
        except FileNotFoundError:
            return f"{name} is missing"
        except OSError as exc:
            return f"{name} cannot be read ({exc.strerror or exc})"
        if size < end:
            return f"{name} is {size} bytes, shorter than its index says ({end} at least)"
        signed = self._signed_size(name, capture_id)
        if signed is not None and size != signed:
            return f"{name} is {size} bytes; its signed manifest says {signed}"
        return None

    def _signed_size(self, name: str, capture_id: str) -> int | None:
        """The file's size as the signed manifest of the capture it belongs to lists it
        (the manifest's ``files`` alone are read; its signature is verify's to check)."""
        if self._captures is None:
            rows = querying.run(
                self.archive_dir,
                "select capture_id, collection from captures where manifest_sha256 is not null",
                None,
            ).rows
            self._captures = {str(r["capture_id"]): str(r["collection"] or "") for r in rows}
        if capture_id in self._captures and capture_id not in self._read:
            self._read.add(capture_id)
            self._read_manifest(capture_id, self._captures[capture_id])
        return self._sizes.get(name)

    def _read_manifest(self, capture_id: str, collection: str) -> None:
        if not collection or collection in (".", "..") or "/" in collection:
            return
        path = manifests.manifest_path(self.archive_dir, collection, capture_id)
        try:
            with open(path, "rb") as f:
                for raw in f:  # one file a line, before the records (schemas/manifest.v2.json)
                    text = raw.strip().rstrip(b",")
                    if text.startswith(b'"records"'):
                        break
                    if text.startswith(b"{") and b'"path"' in text and b'"size"' in text:
                        entry = json.loads(text)
                        self._sizes[str(entry["path"])] = int(entry["size"])
        except FileNotFoundError:
            self.notes.append(
                f"capture {capture_id}: its signed manifest {path.name} is missing, so the "
                "sizes of its files are not checked"
            )
        except (OSError, ValueError, KeyError, TypeError) as exc:
            self.notes.append(
                f"capture {capture_id}: its manifest cannot be read ({exc}), so the sizes of "
                "its files are not checked"
            )

    def opened(self, path: Path) -> IO[bytes]:
        if path not in self._open:
            self._open[path] = open(path, "rb")  # noqa: SIM115 (closed by close())
        return self._open[path]

    def close(self) -> None:
        for f in self._open.values():
            f.close()
        self._open.clear()


class _Requests:
    """The request of each exchange (``concurrent_to``, either way), and its method, read
    from the request record itself (the index does not hold it)."""

    def __init__(self, rows: list[dict[str, Any]], files: _Files) -> None:
        self.files = files
        self.by_id = {row["record_id"]: row for row in rows}
        self.of_response = {row["concurrent_to"]: row for row in rows if row["concurrent_to"]}
        self._methods: dict[str, str | None] = {}

    def method(self, row: dict[str, Any]) -> str | None:
        """``GET`` for a record with no request (a resource; a tool that writes none: as
        cdxj-indexer assumes), the request's method, or None if it cannot be read."""
        if row["warc_type"] == "resource":
            return "GET"
        request = self.by_id.get(row["concurrent_to"]) or self.of_response.get(row["record_id"])
        if request is None:
            return "GET"
        record_id = request["record_id"]
        if record_id not in self._methods:
            self._methods[record_id] = self._read(request)
        return self._methods[record_id]

    def _read(self, request: dict[str, Any]) -> str | None:
        if self.files.problem(request) is not None:
            return None
        path = self.files.resolve(str(request["warc_filename"]))
        assert isinstance(path, Path)
        try:
            f = self.files.opened(path)
            method = request_method(f, int(request["warc_offset"]), int(request["warc_length"]))
        except (OSError, zlib.error, ValueError):
            return None
        return method or "GET"  # not an HTTP request: as if there were none


def _requests(archive_dir: Path, named: list[str], files: _Files) -> _Requests:
    """The request records of the captures (all, or those named)."""
    where = f" and capture_id in ({_marks(named)})" if named else ""
    rows = querying.run(
        archive_dir,
        "select capture_id, record_id, concurrent_to, warc_filename, warc_offset, "
        "warc_length from records where warc_type = 'request'" + where,
        named,
    ).rows
    return _Requests(rows, files)


def request_method(f: IO[bytes], offset: int, length: int) -> str:
    """The HTTP method of the request record at ``offset`` (``length`` bytes, a gzip
    member or not) in ``f``: its request line's first word; empty when the record's
    block is not an HTTP request.  Only its first :data:`REQUEST_HEAD` bytes are read
    and inflated.  A record whose WARC head cannot be read there is a ValueError (or
    ``zlib.error``, OSError)."""
    f.seek(offset)
    data = f.read(min(length, REQUEST_HEAD))
    if data[:2] == b"\x1f\x8b":
        data = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(data, REQUEST_HEAD)
    head = _HEAD_END.search(data)
    if not data.startswith(b"WARC/") or head is None:
        raise ValueError(f"no WARC record head at offset {offset}")
    if b"application/http" not in data[: head.start()].lower():
        return ""
    method = data[head.end() :].split(b" ", 1)[0]
    return method.decode("ascii") if _TOKEN.fullmatch(method) else ""


def _pages(archive_dir: Path, named: list[str]) -> tuple[list[ReplayPage], list[str]]:
    """The page of each capture (ours: its ``page`` response; an imported file's: each
    HTML response, else its first record), and the captures in the order replayed."""
    where, params = "", list(named)
    if named:
        where = f"where c.capture_id in ({_marks(named)})"
    served = ", ".join(repr(t) for t in cdxj.SERVED_TYPES)
    html = " or ".join(f"lower(r.content_type) like '{t}%'" for t in HTML_TYPES)
    rows = querying.run(
        archive_dir,
        "select c.capture_id, c.imported, c.seed_url, c.final_url, r.url, r.role, "
        "r.warc_type, r.http_status, r.content_type, r.fetched_at "
        "from captures c left join records r on r.capture_id = c.capture_id "
        f"and r.warc_type in ({served}) and r.url is not null and (r.role = 'page' "
        f"or r.url in (c.final_url, c.seed_url) or (c.imported and ({html}))) {where} "
        "order by c.started_at nulls last, c.capture_id, r.fetched_at, r.warc_filename, "
        "r.warc_offset",
        params,
    ).rows
    imported = {row["capture_id"] for row in rows if row["imported"]}
    by_capture: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_capture.setdefault(row["capture_id"], [])
        if row["url"] is not None:
            by_capture[row["capture_id"]].append(row)
    pages: list[ReplayPage] = []
    for capture_id, records in by_capture.items():
        chosen = _imported_pages(records) if capture_id in imported else _page(records)
        seen = set()
        for row in chosen:
            page = ReplayPage(capture_id, row["url"], cdxj.timestamp14(row["fetched_at"]))
            if (page.url, page.timestamp) not in seen:
                seen.add((page.url, page.timestamp))
                pages.append(page)
    return pages, list(by_capture)


def _is_redirect(row: dict[str, Any]) -> bool:
    status = row["http_status"]
    return status is not None and 300 <= status < 400


def _page(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Our capture's page: the ``page`` response at its final URL (after redirects)."""
    if not records:
        return []
    final = records[0]["final_url"]
    pages = [
        r
        for r in records
        if r["role"] == "page" and r["warc_type"] in ("response", "revisit") and not _is_redirect(r)
    ]
    at_final = [r for r in pages if r["url"] == final]
    if at_final or pages:
        return (at_final or pages)[-1:]
    return [r for r in records if r["url"] == final][-1:]


def _imported_pages(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """An imported file's pages: its HTML responses (no roles were recorded), else the
    record its capture row names as the seed."""
    html = [
        r
        for r in records
        if r["warc_type"] in ("response", "revisit", "resource")
        and str(r["content_type"] or "").split(";")[0].strip().lower() in HTML_TYPES
        and (r["http_status"] is None or 200 <= r["http_status"] < 300)
    ]
    if html:
        return html
    seed = records[0]["seed_url"] if records else None
    return [r for r in records if r["url"] == seed][:1]
