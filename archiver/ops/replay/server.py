"""The pywb process that serves a replay plan (:mod:`archiver.ops.replay.plan`): its
program (:data:`CHILD`), the socket bound here and handed to it, its start, its log,
and its end, which never leaves it running after us."""

from __future__ import annotations

import contextlib
import http.client
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
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from archiver.core.errors import UsageProblem
from archiver.ops.replay.plan import (
    COLLECTION,
    COLLECTIONS_DIR,
    DEFAULT_HOST,
    DEFAULT_PORT,
    LOG_NAME,
    MANIFESTS_NAME,
    NOT_VERIFIED,
    PROXY_VARIABLES,
    RAW_NOTE,
    STARTUP_SECONDS,
    STOP_SECONDS,
    TEMP_PREFIX,
    ReplayFailed,
    ReplayPage,
    ReplayPlan,
)
from archiver.web.browser import reaper
from archiver.web.browser.chromium import PR_SET_PDEATHSIG, _libc_prctl

CHILD = r"""
import sys
from gevent import monkey

monkey.patch_all()
import json, os, re, shutil, signal, socket
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
from pywb.utils.canonicalize import canonicalize
from pywb.utils.geventserver import RequestURIWSGIHandler

pywb = FrontEndApp(config_file=os.path.join(here, "config.yaml"))
with open(os.path.join(here, sys.argv[4]), encoding="utf-8") as f:
    manifests = frozenset(json.load(f))
replayed = re.compile(r"/[^/?]+/(?:[0-9]{0,14}(?:[a-z]{2}_)?/)?(.+)")


def manifest(environ):
    match = replayed.fullmatch(environ.get("REQUEST_URI") or environ.get("PATH_INFO", ""))
    try:
        return match is not None and canonicalize(match.group(1)) in manifests
    except Exception:
        return False


def app(environ, start_response):
    if "HTTP_RANGE" in environ and manifest(environ):
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
its files in ``argv[2]`` (removed only if named ``argv[3]``…), the SURT keys of the HLS
and DASH manifests in the JSON file ``argv[4]``; it says ``ready`` on stdout once the
app is loaded.

MANIFESTS_WHOLE: an HLS or DASH manifest (a record whose media type is one, or whose URL
ends ``.m3u8`` or ``.mpd``: :attr:`ReplayPlan.manifests`) reaches pywb without its
``Range`` header.  Chromium's player asks for one with ``Range: bytes=0-``, and pywb
serves a range of a record as it was captured, unrewritten: the player would then see
every rendition the master lists, start with the first, whose segments a capture does
not hold (it keeps the one a replay tool chooses), and stay empty.  Asked whole, pywb
rewrites the master to the rendition captured (an answer of 200 to ``bytes=0-`` is what
a server that ignores ranges gives: allowed by HTTP).  The request's URL is keyed as
pywb keys it (``canonicalize``: SURT), so that the decision is the record's, not the
path's."""


def _address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """The address to listen on: one a server can be bound to and a browser reach by the
    URL printed (no multicast, broadcast, scoped or IPv4-mapped form)."""
    if host == "localhost":
        host = DEFAULT_HOST
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        raise UsageProblem(
            f"{host!r} is not an IP address to listen on (127.0.0.1, ::1, 0.0.0.0, …)",
            hint="--bind",
        ) from None
    why = None
    if address.is_multicast:
        why = "a multicast address"
    elif address == ipaddress.IPv4Address("255.255.255.255"):
        why = "the broadcast address"
    elif address.version == 6 and address.ipv4_mapped is not None:
        why = f"an IPv4-mapped address (give {address.ipv4_mapped} itself)"
    elif address.version == 6 and (address.scope_id or address.is_link_local):
        why = "an IPv6 link-local address, which needs a scope (an interface) a URL cannot carry"
    elif address.version == 4 and address.is_reserved:
        why = "a reserved address (240.0.0.0/4)"
    if why:
        raise UsageProblem(
            f"cannot listen on {host}: {why}; use 127.0.0.1, ::1, an address of this machine, "
            "0.0.0.0 or ::",
            hint="--bind",
        )
    return address


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
        """The replay URL of ``page`` (``raw``: the page as served, not rewritten: for
        scripts, see :data:`RAW_NOTE`)."""
        return self.base_url + (page.raw_path if raw else page.path)

    @property
    def urls(self) -> list[str]:
        """The replay URL of each page, in its capture's own collection."""
        return [self.url(page) for page in self.plan.pages]

    @property
    def all_url(self) -> str:
        """pywb's page of the collection of every capture replayed (:data:`COLLECTION`)."""
        return f"{self.base_url}/{COLLECTION}/"

    def to_json(self) -> dict[str, Any]:
        return {
            "base_url": self.base_url,
            "host": self.host,
            "port": self.port,
            "notice": NOT_VERIFIED,
            "captures": self.plan.capture_ids,
            "left_out": [
                {"capture_id": capture_id, "reason": why}
                for capture_id, why in self.plan.left_out.items()
            ],
            "pages": [
                {
                    "capture_id": p.capture_id,
                    "url": p.url,
                    "timestamp": p.timestamp,
                    "collection": p.collection,
                    "replay_url": self.url(p),
                    "raw_url": self.url(p, raw=True),
                }
                for p in self.plan.pages
            ],
            "raw_url_note": RAW_NOTE,
            "all_captures": {"collection": COLLECTION, "url": self.all_url},
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
            if exc.errno == errno.EINVAL:
                raise UsageProblem(
                    f"cannot listen on {address}: the system refuses it ({exc.strerror})",
                    hint="--bind",
                ) from exc
            raise ReplayFailed(f"cannot listen on {address} port {self.port}: {exc}") from exc

    def _write_files(self) -> None:
        """pywb's collections, in its own layout (``collections/<name>/indexes/`` and
        ``archive``, a link to the archive's ``warc/``): one per capture, and
        :data:`COLLECTION`; the SURT keys of the manifests; the config naming the
        collections' directory (JSON is YAML: every path quoted as it must be)."""
        root = self.temp_dir / COLLECTIONS_DIR
        warc_dir = self.plan.archive_dir.resolve() / "warc"
        named = {**self.plan.collections, COLLECTION: self.plan.lines}
        for name, lines in named.items():
            (root / name / "indexes").mkdir(parents=True)
            (root / name / "archive").symlink_to(warc_dir, target_is_directory=True)
            with (root / name / "indexes" / "index.cdxj").open("wb") as f:
                for line in lines:
                    f.write(line + b"\n")
        (self.temp_dir / MANIFESTS_NAME).write_text(json.dumps(self.plan.manifests), "utf-8")
        config = {
            "collections_root": str(root),
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
                    *(TEMP_PREFIX, MANIFESTS_NAME),
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
