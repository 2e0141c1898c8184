"""Replay: the archive shown in a browser by pywb, read from our index and our WARC files.

pywb (``pip install 'archiver[replay]'``) is the reference replay system; archiver does
not copy anything into a pywb collection.  A temporary directory of our own (in the
system's, so that a read-only copy of an archive replays too) holds pywb's
``config.yaml``, one collection whose index is a CDXJ file written from our index
(:mod:`archiver.index.cdxj`, the lines cdxj-indexer would write) and whose
``archive_paths`` is the archive's own ``warc/`` directory: the WARC files are read in
place.  Only ``response``, ``revisit`` and ``resource`` records are listed, so our own
records (``urn:archiver-…``, metadata) never stand in for a page.  Captures named: their
records, and the records their revisits refer to (possibly in other captures), so that
each replays whole.

pywb runs as a child process (``python -c`` with :data:`CHILD`, the interpreter we run
in): it imports gevent, which patches the standard library, and it prints a great deal,
so it gets a process, a session and a log file of its own (shown, its tail, only when
it fails).  The listening socket is bound here and handed to it, so that a busy port is
said at once and ``port=0`` means a free port without a race.  HLS and DASH manifests
reach pywb whole even when a player asks for a range (see :data:`CHILD`), so that pywb
rewrites them to the rendition captured.  The child never outlives
us: it stops when its stdin (a pipe only we hold) ends, which the kernel does when we
die even by SIGKILL, and it gets SIGTERM (``PR_SET_PDEATHSIG``) when the thread that
started it ends; either way it removes the temporary directory before it exits.
:meth:`ReplayServer.close` ends it that way, then by signals, and removes the directory.
"""

from __future__ import annotations

import contextlib
import http.client
import importlib.util
import ipaddress
import json
import os
import select
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from archiver.core.errors import Failure, UsageProblem
from archiver.index import cdxj
from archiver.index import query as querying
from archiver.web.browser import reaper
from archiver.web.browser.chromium import PR_SET_PDEATHSIG, _libc_prctl

COLLECTION = "archive"
"""The name of the one pywb collection: the first part of every replay URL's path."""
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080
"""pywb's own default: a fixed port keeps the URLs a person bookmarked; 0 picks a free one."""
STARTUP_SECONDS = 60.0  # pywb imports gevent, jinja2 and its templates: ~1 s, more on CI
STOP_SECONDS = 5.0
TEMP_PREFIX = "archiver-replay-"
EXTRA = "pip install 'archiver[replay]'"
LOG_NAME = "pywb.log"
HTML_TYPES = ("text/html", "application/xhtml+xml")
PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy", "no_proxy")

CHILD = r"""
import sys
from gevent import monkey

monkey.patch_all()
import os, shutil, signal, socket
import gevent, gevent.os
from gevent.pywsgi import WSGIServer

listener, here = int(sys.argv[1]), sys.argv[2]


def gone(*_):
    if os.path.basename(here).startswith(sys.argv[3]):
        shutil.rmtree(here, ignore_errors=True)
    os._exit(0)


signal.signal(signal.SIGTERM, gone)
os.chdir(here)
from pywb.apps.frontendapp import FrontEndApp
from pywb.utils.geventserver import RequestURIWSGIHandler

pywb = FrontEndApp(config_file=os.path.join(here, "config.yaml"))


def app(environ, start_response):
    path = environ.get("PATH_INFO", "")
    if path.startswith(sys.argv[4]) and path.lower().endswith((".m3u8", ".mpd")):
        environ.pop("HTTP_RANGE", None)  # see MANIFESTS_WHOLE
    return pywb(environ, start_response)


server = WSGIServer(socket.socket(fileno=listener), app, handler_class=RequestURIWSGIHandler)


def watch():
    gevent.os.make_nonblocking(0)
    while gevent.os.nb_read(0, 4096):
        pass
    gone()


gevent.spawn(watch)
sys.stdout.write("ready\n")
sys.stdout.flush()
os.dup2(2, 1)
server.serve_forever()
"""
"""The child's program: pywb's app, served on the socket it inherits (fd ``argv[1]``),
its files in ``argv[2]`` (removed only if named ``argv[3]``…), the collection's path
``argv[4]``; it says ``ready`` on stdout once the app is loaded.

MANIFESTS_WHOLE: an HLS or DASH manifest (a path ending ``.m3u8`` or ``.mpd``) reaches
pywb without its ``Range`` header.  Chromium's player asks for one with ``Range:
bytes=0-``, and pywb serves a range of a record as it was captured, unrewritten: the
player would then see every rendition the master lists, start with the first, whose
segments a capture does not hold (it keeps the one a replay tool chooses), and stay
empty.  Asked whole, pywb rewrites the master to the rendition captured (an answer of
200 to ``bytes=0-`` is what a server that ignores ranges gives: allowed by HTTP)."""


class ReplayUnavailable(UsageProblem):
    """pywb, the optional extra replay needs, is not installed (exit 2)."""


class ReplayFailed(Failure):
    """pywb could not be started, or stopped by itself."""


@dataclass(frozen=True)
class ReplayPage:
    """A captured page: what a person opens, at the time its response was recorded."""

    capture_id: str
    url: str
    timestamp: str  # 14 digits, UTC: the page record's WARC-Date

    @property
    def path(self) -> str:
        """The replay path (pywb's framed replay: its banner above the page)."""
        return f"/{COLLECTION}/{self.timestamp}/{self.url}"

    @property
    def raw_path(self) -> str:
        """The page exactly as it was served (``id_``: no rewriting, no banner)."""
        return f"/{COLLECTION}/{self.timestamp}id_/{self.url}"


@dataclass
class ReplayPlan:
    """What a replay serves: the captures, their pages, the CDXJ lines of their records."""

    archive_dir: Path
    capture_ids: list[str]
    pages: list[ReplayPage]
    lines: list[bytes]
    notes: list[str] = field(default_factory=list)


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


def plan(archive_dir: Path, capture_ids: Sequence[str] = ()) -> ReplayPlan:
    """The records and pages of the captures named (default: every capture).

    An unknown capture is a :class:`UsageProblem`; captures with nothing a browser can be
    shown are said in ``notes``, and a plan with nothing at all is a :class:`Failure`."""
    named = list(dict.fromkeys(capture_ids))
    if named:
        marks = ", ".join("?" for _ in named)
        found = querying.run(
            archive_dir,
            f"select capture_id from captures where capture_id in ({marks})",
            named,
        ).rows
        known = {row["capture_id"] for row in found}
        for capture_id in named:
            if capture_id not in known:
                raise UsageProblem(
                    f"no capture {capture_id!r} in the index of {archive_dir}", hint="CAPTURE"
                )
    rows = querying.run(archive_dir, cdxj.select_sql(len(named) if named else None), named).rows
    if named:  # the records holding what the captures' revisits stand for
        marks = ", ".join("?" for _ in named)
        served = ", ".join(repr(t) for t in cdxj.SERVED_TYPES)
        rows += querying.run(
            archive_dir,
            f"select {', '.join(cdxj.COLUMNS)} from records where warc_type in ({served}) "
            "and url is not null and record_id in (select refers_to from records where "
            f"warc_type = 'revisit' and capture_id in ({marks}))",
            named,
        ).rows
    notes: list[str] = []
    kept: dict[tuple[str, int], dict[str, Any]] = {}
    outside = 0
    for row in rows:
        if not str(row["warc_filename"]).startswith("warc/"):
            outside += 1  # pywb reads under warc/ alone (never seen: import copies there)
            continue
        kept[(row["warc_filename"], row["warc_offset"])] = row
    if outside:
        notes.append(f"{outside} records outside the archive's warc/ directory left out")
    lines = cdxj.lines(kept.values(), lambda name: name.removeprefix("warc/"))
    pages, captures = _pages(archive_dir, named)
    for capture_id in captures:
        if not any(p.capture_id == capture_id for p in pages):
            notes.append(f"capture {capture_id} has no page to open (no response for it)")
    if not lines:
        where = f"captures {', '.join(named)}" if named else f"the archive {archive_dir}"
        raise Failure(f"nothing to replay: {where} holds no record a browser can be shown")
    return ReplayPlan(archive_dir, captures, pages, lines, notes)


def _pages(archive_dir: Path, named: list[str]) -> tuple[list[ReplayPage], list[str]]:
    """The page of each capture (ours: its ``page`` response; an imported file's: each
    HTML response, else its first record), and the captures in the order replayed."""
    where, params = "", list(named)
    if named:
        where = f"where c.capture_id in ({', '.join('?' for _ in named)})"
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


def _address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    if host == "localhost":
        host = DEFAULT_HOST
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        raise UsageProblem(
            f"{host!r} is not an IP address to listen on (127.0.0.1, ::1, 0.0.0.0, …)",
            hint="--bind",
        ) from None


class ReplayServer:
    """pywb serving ``plan`` on ``host:port``: a context manager.  ``with server:`` starts
    it (its files written, the port bound, pywb answering); leaving stops it and removes
    its files, always.  ``port`` 0: a free port (:attr:`port` says which, once started).

    Start it from the thread that will stop it (the main thread, usually): pywb is told
    to end when the thread that started it ends (``PR_SET_PDEATHSIG``)."""

    def __init__(
        self,
        plan: ReplayPlan,
        *,
        host: str = DEFAULT_HOST,
        port: int = DEFAULT_PORT,
        startup_timeout: float = STARTUP_SECONDS,
    ) -> None:
        address = _address(host)
        if not 0 <= port <= 65535:
            raise UsageProblem(f"port {port} is out of range (0 to 65535)", hint="--port")
        self.plan = plan
        self.host = str(address)
        self.port = port
        self.startup_timeout = startup_timeout
        self.startup_seconds = 0.0  # from binding the port to pywb's first answer
        self.temp_dir = Path()
        self.pid = 0
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._closing = False
        self._closed = False
        self._lock = threading.Lock()

    # addresses ------------------------------------------------------------------
    @property
    def loopback(self) -> bool:
        """Only this machine can connect (127.0.0.0/8, ::1)."""
        return _address(self.host).is_loopback

    @property
    def base_url(self) -> str:
        """``http://host:port`` as a browser on this machine reaches it (a wildcard
        address: through loopback)."""
        address = _address(self.host)
        if address.is_unspecified:
            address = ipaddress.ip_address("::1" if address.version == 6 else DEFAULT_HOST)
        shown = f"[{address}]" if address.version == 6 else str(address)
        return f"http://{shown}:{self.port}"

    def url(self, page: ReplayPage, *, raw: bool = False) -> str:
        """The replay URL of ``page`` (``raw``: the page as served, not rewritten)."""
        return self.base_url + (page.raw_path if raw else page.path)

    @property
    def urls(self) -> list[str]:
        return [self.url(page) for page in self.plan.pages]

    def to_json(self) -> dict[str, Any]:
        return {
            "base_url": self.base_url,
            "host": self.host,
            "port": self.port,
            "collection": COLLECTION,
            "captures": self.plan.capture_ids,
            "pages": [
                {
                    "capture_id": p.capture_id,
                    "url": p.url,
                    "timestamp": p.timestamp,
                    "replay_url": self.url(p),
                    "raw_url": self.url(p, raw=True),
                }
                for p in self.plan.pages
            ],
            "records": len(self.plan.lines),
            "notes": self.plan.notes,
        }

    # life -----------------------------------------------------------------------
    def __enter__(self) -> ReplayServer:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def start(self) -> None:
        """Bind, write pywb's files, start it and wait for its first answer."""
        if self._proc is not None or self._closed:
            raise ReplayFailed("a replay server is started once")
        started = time.monotonic()
        listener = self._bind()
        try:
            self.port = listener.getsockname()[1]
            self.temp_dir = Path(tempfile.mkdtemp(prefix=TEMP_PREFIX))
            self._write_files()
            self._spawn(listener)
        finally:
            listener.close()  # the child holds it now (or nobody)
        self._await_ready(started + self.startup_timeout)
        self.startup_seconds = time.monotonic() - started

    def _bind(self) -> socket.socket:
        address = _address(self.host)
        family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
        try:
            return socket.create_server(
                (str(address), self.port), family=family, backlog=128, dualstack_ipv6=False
            )
        except OSError as exc:
            import errno

            if exc.errno == errno.EADDRINUSE:
                raise ReplayFailed(
                    f"port {self.port} on {address} is in use: choose another with --port "
                    "(0: any free port)"
                ) from exc
            if exc.errno == errno.EADDRNOTAVAIL:
                raise UsageProblem(
                    f"{address} is not an address of this machine", hint="--bind"
                ) from exc
            raise ReplayFailed(f"cannot listen on {address} port {self.port}: {exc}") from exc

    def _write_files(self) -> None:
        """The CDXJ index and the config naming it and the archive's warc/ directory
        (JSON is YAML: every path quoted as it must be)."""
        index = self.temp_dir / "index.cdxj"
        with index.open("wb") as f:
            for line in self.plan.lines:
                f.write(line + b"\n")
        warc_dir = self.plan.archive_dir.resolve() / "warc"
        config = {
            "collections": {
                COLLECTION: {"index_paths": str(index), "archive_paths": f"{warc_dir}/"}
            },
            "framed_replay": True,
            "enable_memento": True,
        }
        (self.temp_dir / "config.yaml").write_text(json.dumps(config, indent=1), "utf-8")

    def _spawn(self, listener: socket.socket) -> None:
        env = {k: v for k, v in os.environ.items() if k.lower() not in PROXY_VARIABLES}
        env["PYTHONUNBUFFERED"] = "1"  # pywb's log is there to read when it fails
        fd = listener.fileno()
        parent_pid = os.getpid()
        prctl = _libc_prctl() if threading.current_thread() is threading.main_thread() else None

        def in_child() -> None:  # between fork and exec
            if prctl is not None:
                prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0)
                if os.getppid() != parent_pid:  # we died before prctl took effect
                    os.kill(os.getpid(), signal.SIGTERM)

        self._log = open(self.temp_dir / LOG_NAME, "wb")  # noqa: SIM115
        try:
            self._proc = subprocess.Popen(
                [
                    *(sys.executable, "-c", CHILD, str(fd), str(self.temp_dir)),
                    *(TEMP_PREFIX, f"/{COLLECTION}/"),
                ],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=self._log,
                env=env,
                cwd=self.temp_dir,
                pass_fds=(fd,),
                start_new_session=True,  # Ctrl-C reaches us; we stop it
                preexec_fn=in_child,
            )
        except OSError as exc:
            raise ReplayFailed(f"could not start pywb ({sys.executable}): {exc}") from exc
        self.pid = self._proc.pid

    def _await_ready(self, deadline: float) -> None:
        proc = self._proc
        assert proc is not None and proc.stdout is not None
        fd = proc.stdout.fileno()
        said = b""
        while b"\n" not in said:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                raise ReplayFailed(
                    f"pywb did not start within {self.startup_timeout:g} s" + self.log_tail()
                )
            chunk = os.read(fd, 64)
            if not chunk:
                raise ReplayFailed(f"pywb exited (code {proc.wait()})" + self.log_tail())
            said += chunk
        proc.stdout.close()
        host = self.base_url.removeprefix("http://").rpartition(":")[0].strip("[]")
        while True:  # its first answer: the app and its templates work
            left = deadline - time.monotonic()
            try:
                conn = http.client.HTTPConnection(host, self.port, timeout=max(left, 0.1))
                try:
                    conn.request("GET", "/")
                    status = conn.getresponse().status
                finally:
                    conn.close()
            except OSError as exc:
                if proc.poll() is not None or left <= 0:
                    raise ReplayFailed(
                        f"pywb does not answer on {self.base_url} ({exc})" + self.log_tail()
                    ) from exc
                time.sleep(0.05)
                continue
            if status != 200:
                raise ReplayFailed(f"pywb answered HTTP {status} on {self.base_url}/")
            return

    def log_tail(self, limit: int = 2000) -> str:
        """The end of pywb's log, as ``; its last words: …`` (empty when there is none)."""
        try:
            with open(self.temp_dir / LOG_NAME, "rb") as f:
                f.seek(0, os.SEEK_END)
                f.seek(max(0, f.tell() - limit))
                tail = f.read().decode("utf-8", "replace").strip()
        except OSError:
            return ""
        return f"; its last words: {tail}" if tail else ""

    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def wait(self, timeout: float | None = None) -> None:
        """Serve until pywb ends (or ``timeout`` seconds pass); Ctrl-C and SIGTERM reach
        the caller as usual.  pywb ending by itself is a :class:`ReplayFailed`."""
        proc = self._proc
        if proc is None:
            raise ReplayFailed("the replay server is not started")
        try:
            code = proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return
        if not self._closing:
            raise ReplayFailed(f"pywb stopped (exit code {code})" + self.log_tail())

    def close(self) -> None:
        """Stop pywb (its stdin ends; then SIGTERM; then SIGKILL to its process group) and
        remove its files.  Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = self._closing = True
        proc = self._proc
        if proc is not None:
            if proc.stdin is not None:
                with contextlib.suppress(OSError):
                    proc.stdin.close()
            for stop in (None, signal.SIGTERM):
                if stop is not None and proc.poll() is None:
                    with contextlib.suppress(ProcessLookupError):
                        proc.send_signal(stop)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=STOP_SECONDS)
                    break
            reaper.kill_group(proc.pid)  # whatever is left of its group
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=STOP_SECONDS)
            if proc.stdout is not None and not proc.stdout.closed:
                proc.stdout.close()
        if self._log is not None:
            self._log.close()
        if self.temp_dir != Path() and self.temp_dir.name.startswith(TEMP_PREFIX):
            reaper.remove_tree(self.temp_dir)
