"""Finding Debian's Chromium, and running one for a capture, driven over a pipe.

The browser runs headless with a fresh profile of its own (removed afterwards), in a
process group of its own, and speaks the DevTools protocol on its fds 3 and 4
(``--remote-debugging-pipe``): no port is opened. Every flag is in one tuple
(:attr:`Browser.flags`) so the capture can record how the page was rendered.

Nothing is left behind, however we end: :meth:`Browser.close` kills the whole process
group and removes the profile; if our process dies first (even by SIGKILL) the kernel
kills the browser (``PR_SET_PDEATHSIG``) and a small watchdog process of ours
(:mod:`archiver.web.browser.reaper`) kills its group and removes the profile.

What the browser fetches must be what the page asked for, and nothing else. Its own
services are switched off where a flag can (component and safe-browsing updates, field
trials, metrics, network time, AI-mode eligibility, search preconnects, translation,
optimization hints, media-router discovery, ...), and what no flag stops (the signed-in
accounts check, GCM's check-in) goes nowhere: the browser's own profile is given a proxy
that refuses every connection (a port we hold bound and never listen on), while each page
(:meth:`archiver.web.browser.page.Page.open`) lives in a browser context of its own whose
proxy is the caller's (``LaunchSettings.proxy``, or a direct connection without one).
WebRTC may not go around the proxy; QUIC is off, so that every request is HTTP/1.1 or
HTTP/2 over TCP, which a proxy can record.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, cast

from archiver.core.errors import Failure, UsageProblem
from archiver.web.browser import reaper
from archiver.web.browser.cdp import CDP, CDPError

__all__ = [
    "CANDIDATES",
    "Browser",
    "BrowserFailed",
    "BrowserNotFound",
    "BrowserVersion",
    "LaunchSettings",
    "browser_version",
    "chromium_flags",
    "find_browser",
    "page_proxy",
]

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
ENV_VAR = "ARCHIVER_BROWSER"
INSTALL = "install Debian's `chromium` package (apt install chromium)"

# Features that talk to Google or change what is fetched, off (chrome-launcher's
# chrome-flags-for-tools, Puppeteer's and Browsertrix's defaults); the first two make
# cross-origin frames live in the page's renderer, so one session sees every frame.
DISABLED_FEATURES = (
    "IsolateOrigins",
    "site-per-process",
    "IsolateSandboxedIframes",  # <iframe sandbox> in a process of its own otherwise
    "OptimizationHints",
    "OptimizationHintsFetching",
    "OptimizationGuideModelDownloading",
    "OptimizationTargetPrediction",
    "MediaRouter",
    "DialMediaRouteProvider",
    "GlobalMediaControls",
    "Translate",
    "InterestFeedContentSuggestions",
    "CertificateTransparencyComponentUpdater",
    "AutofillServerCommunication",
    "PrivacySandboxSettings4",
    "HttpsUpgrades",  # fetch the http:// URL we were given, not an https:// guess first
    "LensOverlay",
    "NetworkTimeServiceQuerying",  # clients2.google.com/time
    "AimEnabled",  # www.google.com/async/folae, in every context, ours included
    "PreconnectToSearch",  # CONNECT www.google.com:443 from every context
)
# The accounts check (accounts.google.com/ListAccounts) on a fresh profile's empty jar
ENABLED_FEATURES = ("AvoidAutoTriggerListAccountsOnStale",)

# Flags that hold for every launch, in the order they are given.
BASE_FLAGS = (
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-field-trial-config",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-extensions",
    "--disable-component-extensions-with-background-pages",
    "--disable-domain-reliability",
    "--disable-client-side-phishing-detection",
    "--disable-breakpad",
    "--disable-crash-reporter",
    "--metrics-recording-only",
    "--no-pings",
    "--no-service-autorun",
    "--password-store=basic",
    "--use-mock-keychain",
    "--mute-audio",
    "--autoplay-policy=no-user-gesture-required",
    "--deny-permission-prompts",
    "--disable-search-engine-choice-screen",
    "--disable-background-timer-throttling",
    "--disable-backgrounding-occluded-windows",
    "--disable-renderer-backgrounding",
    "--disable-hang-monitor",
    "--disable-ipc-flooding-protection",
    "--disable-prompt-on-repost",
    "--disable-popup-blocking",  # a window the page opens is noted (and closed), not hidden
    "--disable-dev-shm-usage",  # containers have a small /dev/shm; /tmp then
    "--force-color-profile=srgb",
    "--hide-scrollbars",
    # WebRTC would otherwise reach out over UDP, around the proxy that records everything
    "--webrtc-ip-handling-policy=disable_non_proxied_udp",
    "--force-webrtc-ip-handling-policy",
    "--disable-site-isolation-trials",
)

PR_SET_PDEATHSIG = 1
# /org.chromium.Chromium.XXXXXX/SingletonSocket: what Chromium makes in its TMPDIR, a Unix
# socket, whose path may hold at most 107 bytes on Linux
CHROMIUM_SOCKET_TAIL = b"/org.chromium.Chromium.XXXXXX/SingletonSocket"
SOCKET_PATH_MAX = 108
# /archiver-browser-XXXXXXXX/t: what the profile adds to its parent's path
PROFILE_TAIL = len(b"/archiver-browser-XXXXXXXX/t") + len(CHROMIUM_SOCKET_TAIL)
LOG_NAME = "chromium.log"  # the browser's stdout and stderr, inside its profile


class BrowserNotFound(UsageProblem):
    """No Chromium to run: none named, none on PATH, or the one named is not there."""


class BrowserFailed(Failure):
    """Chromium would not start, or did not answer on its pipe."""

    unexpected = True


@dataclass(frozen=True)
class BrowserVersion:
    """What the running browser says it is (``Browser.getVersion``)."""

    product: str  # "Chrome/150.0.7871.100"
    user_agent: str  # the User-Agent its requests carry (our override, if set)
    protocol: str = ""
    revision: str = ""
    js: str = ""


def find_browser(path: str | None = None, environ: Mapping[str, str] = os.environ) -> Path:
    """The browser to run: ``path`` if given (``--browser-path``), else ``ARCHIVER_BROWSER``,
    else the first of :data:`CANDIDATES` on PATH. A name without a slash is looked up on
    PATH too. Raises :class:`BrowserNotFound` saying what to install or fix."""
    search = environ.get("PATH", os.defpath)
    for given, hint in ((path, "--browser-path"), (environ.get(ENV_VAR), ENV_VAR)):
        if not given:
            continue
        found = _executable(given, search)
        if found is None:
            raise BrowserNotFound(
                f"no browser at {given} (from {hint}): it is not an executable file; "
                f"name one that is, or {INSTALL}",
                hint=hint,
            )
        return found
    for name in CANDIDATES:
        found = _executable(name, search)
        if found is not None:
            return found
    raise BrowserNotFound(
        f"no Chromium found: {INSTALL}, or name one with --browser-path or {ENV_VAR}",
        hint="--browser-path",
    )


def _executable(name: str, search: str) -> Path | None:
    if os.sep not in name:
        which = shutil.which(name, path=search)
        return Path(which).absolute() if which else None
    candidate = Path(name).expanduser()
    if candidate.is_file() and os.access(candidate, os.X_OK):
        return candidate.absolute()
    return None


def browser_version(executable: Path | str) -> str:
    """``chromium --version``, e.g. "Chromium 150.0.7871.100 built on Debian GNU/Linux 12"
    (Debian's /usr/bin/chromium is a shell script that runs the browser)."""
    try:
        done = subprocess.run(
            [str(executable), "--version"],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise BrowserFailed(f"{executable} --version: {exc}") from exc
    out = done.stdout.decode("utf-8", "replace").strip()
    if done.returncode != 0 or not out:
        raise BrowserFailed(f"{executable} --version failed (exit {done.returncode})")
    return out


@dataclass(frozen=True)
class LaunchSettings:
    """How to run the browser. ``proxy`` is ``host:port`` of an HTTP proxy every request
    of the pages goes through, loopback included (see the module's docstring: it is the
    proxy of their browser contexts); ``spki_hashes`` are base64 SHA-256 hashes of the
    public keys of certificates to accept (the caller's interception CA), so no trust
    store is touched; ``profile_parent`` is where the fresh profile is made (default the
    system's temporary directory)."""

    executable: Path
    proxy: str | None = None
    spki_hashes: tuple[str, ...] = ()
    viewport: tuple[int, int] = (1366, 768)
    scale: float = 1.0
    user_agent: str | None = None
    headless: bool = True
    extra_flags: tuple[str, ...] = ()
    profile_parent: Path | None = None
    language: str = "en-US"
    # host:port of a proxy for the browser's own traffic (its profile's, not the pages'):
    # the caller's, refusing and listing what reaches it; None: a port that refuses all
    own_traffic: str | None = None

    def __post_init__(self) -> None:
        width, height = self.viewport
        if not (0 < width <= 16384 and 0 < height <= 16384):
            raise UsageProblem(f"viewport {width}x{height} is out of range", hint="viewport")
        if not 0 < self.scale <= 8:
            raise UsageProblem(f"scale {self.scale} is out of range (0, 8]", hint="scale")
        for name, value in (("proxy", self.proxy), ("own_traffic", self.own_traffic)):
            if value is not None:
                host, _, port = value.rpartition(":")
                if "/" in value or not host or not port.isdigit():
                    raise UsageProblem(f"{name} {value!r} is not host:port", hint=name)
        for spki in self.spki_hashes:
            if not spki or "," in spki or any(c.isspace() for c in spki):
                raise UsageProblem(f"bad SPKI hash {spki!r}", hint="spki_hashes")


def page_proxy(settings: LaunchSettings) -> str:
    """The proxy of the pages' browser contexts, as Chromium spells it."""
    return f"http://{settings.proxy}" if settings.proxy else "direct://"


def chromium_flags(
    settings: LaunchSettings, *, root: bool | None = None, blackhole: str = "127.0.0.1:9"
) -> tuple[str, ...]:
    """Every flag the browser is started with, except its profile directory (and the
    ``about:blank`` it opens). ``root``: whether we run as root (Chromium's sandbox
    refuses to), default asks the system. ``blackhole``: ``host:port`` where nothing
    listens, the proxy of the browser's own profile (:class:`Browser` holds one)."""
    if root is None:
        root = os.geteuid() == 0
    flags: list[str] = []
    if settings.headless:
        flags.append("--headless=new")
    if root:
        flags.append("--no-sandbox")
    flags += BASE_FLAGS
    disabled = list(DISABLED_FEATURES)
    enabled = list(ENABLED_FEATURES)
    extra: list[str] = []
    for flag in settings.extra_flags:  # one --disable-features: Chromium keeps the last
        name, _, value = flag.partition("=")
        if name == "--disable-features":
            disabled += [f for f in value.split(",") if f and f not in disabled]
        elif name == "--enable-features":
            enabled += [f for f in value.split(",") if f and f not in enabled]
        else:
            extra.append(flag)
    flags.append("--disable-features=" + ",".join(f for f in disabled if f not in enabled))
    flags.append("--enable-features=" + ",".join(enabled))
    width, height = settings.viewport
    flags += [
        f"--window-size={width},{height}",
        f"--force-device-scale-factor={settings.scale:g}",
        f"--lang={settings.language}",
        f"--accept-lang={settings.language}",
    ]
    # the browser's own traffic: refused. <-loopback> takes loopback off the implicit
    # bypass list (for the pages' proxy too: see page.py)
    flags += [f"--proxy-server=http://{blackhole}", "--proxy-bypass-list=<-loopback>"]
    if settings.spki_hashes:
        flags.append("--ignore-certificate-errors-spki-list=" + ",".join(settings.spki_hashes))
    if settings.user_agent:
        flags.append(f"--user-agent={settings.user_agent}")
    flags += extra
    flags.append("--remote-debugging-pipe")
    return tuple(flags)


def _libc_prctl() -> Callable[..., int] | None:
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    prctl.restype = ctypes.c_int
    return cast("Callable[..., int]", prctl)


def _high_fd(fd: int) -> int:
    """``fd`` moved to 10 or above (close-on-exec), so that putting the two pipe ends on
    3 and 4 in the child cannot overwrite one with the other."""
    moved = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
    os.close(fd)
    return moved


@dataclass
class _Launch:
    """What a launch holds, for close() to release whatever part of it exists."""

    proc: subprocess.Popen[bytes] | None = None
    reaper: subprocess.Popen[bytes] | None = None
    blackhole: socket.socket | None = None
    cdp: CDP | None = None
    log: IO[bytes] | None = None
    fds: list[int] = field(default_factory=list)


class Browser:
    """One running Chromium: a context manager. ``with Browser(settings) as browser:``
    starts it (fresh profile, reaper, DevTools handshake); leaving closes it, always.

    Launch it from a thread that lives as long as the browser (the main thread, usually):
    ``PR_SET_PDEATHSIG`` fires when the launching *thread* ends, so from another thread it
    is not set and only the reaper guards against our death."""

    def __init__(self, settings: LaunchSettings, *, launch_timeout: float = 30.0) -> None:
        self.settings = settings
        self.launch_timeout = launch_timeout
        self.flags: tuple[str, ...] = ()  # set at launch (the refusing proxy's port)
        self.page_proxy = page_proxy(settings)  # what each page's context goes through
        self.pid: int = 0
        self.profile_dir: Path = Path()
        self.version: BrowserVersion = BrowserVersion("", "")
        self.launch_seconds = 0.0  # from Popen to the answer of Browser.getVersion
        self._launch = _Launch()
        self._close_lock = threading.Lock()
        self._closed = False
        self._started = False

    @property
    def cdp(self) -> CDP:
        """The protocol connection (after ``__enter__``)."""
        if self._launch.cdp is None:
            raise BrowserFailed("the browser is not running (use it in a with block)")
        return self._launch.cdp

    def __enter__(self) -> Browser:
        if self._started:
            raise BrowserFailed("a Browser is started once")
        self._started = True
        try:
            self._start()
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

    def _start(self) -> None:
        parent = self.settings.profile_parent
        if parent is None:  # the temporary directory, unless Chromium's socket would not fit
            parent = Path(tempfile.gettempdir())
            too_long = len(os.fsencode(parent)) + PROFILE_TAIL >= SOCKET_PATH_MAX
            if too_long and os.access("/tmp", os.W_OK):
                parent = Path("/tmp")
        self.profile_dir = Path(tempfile.mkdtemp(prefix=reaper.PROFILE_PREFIX, dir=parent))
        home = self.profile_dir / "home"  # ~/.pki, ~/.cache...: neither ours nor the user's
        home.mkdir(mode=0o700)
        env = dict(os.environ)
        env.update(
            HOME=str(home),
            XDG_CONFIG_HOME=str(home / ".config"),
            XDG_CACHE_HOME=str(home / ".cache"),
            DBUS_SESSION_BUS_ADDRESS="disabled:",  # no desktop session to talk to
        )
        # Chromium's own temporary files die with the profile, even when we are killed
        # (it removes them only when it exits), unless the path of the socket it makes
        # there would be longer than a socket's path may be: then where they always go
        temp = self.profile_dir / "t"
        if len(os.fsencode(temp)) + len(CHROMIUM_SOCKET_TAIL) < SOCKET_PATH_MAX:
            temp.mkdir(mode=0o700)
            env["TMPDIR"] = str(temp)
        launch = self._launch
        # a port of ours that refuses every connection (bound, never listening): the
        # proxy of the browser's own profile, so its own services reach nothing
        if self.settings.own_traffic is not None:
            self.flags = chromium_flags(self.settings, blackhole=self.settings.own_traffic)
        else:
            launch.blackhole = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            launch.blackhole.bind(("127.0.0.1", 0))
            host, port = launch.blackhole.getsockname()[:2]
            self.flags = chromium_flags(self.settings, blackhole=f"{host}:{port}")
        to_browser_r, to_browser_w = os.pipe()
        launch.fds.append(to_browser_w)
        from_browser_r, from_browser_w = os.pipe()
        launch.fds.append(from_browser_r)
        child_in, child_out = _high_fd(to_browser_r), _high_fd(from_browser_w)
        launch.fds += [child_in, child_out]
        launch.log = open(self.profile_dir / LOG_NAME, "wb")  # noqa: SIM115
        args = [
            str(self.settings.executable),
            *self.flags,
            f"--user-data-dir={self.profile_dir}",
            "about:blank",
        ]
        parent_pid = os.getpid()
        prctl = _libc_prctl() if threading.current_thread() is threading.main_thread() else None

        def in_child() -> None:  # between fork and exec: no locks, no allocation to speak of
            os.dup2(child_in, 3)  # inheritable: it survives exec
            os.dup2(child_out, 4)
            for name in os.listdir("/proc/self/fd"):  # nothing else of ours leaks in
                fd = int(name)
                if fd > 4:
                    with contextlib.suppress(OSError):
                        os.set_inheritable(fd, False)
            if prctl is not None:
                prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0)
                if os.getppid() != parent_pid:  # we died before prctl took effect
                    os.kill(os.getpid(), signal.SIGKILL)

        started = time.monotonic()
        try:
            launch.proc = subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=launch.log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=self.profile_dir,
                start_new_session=True,
                close_fds=False,
                preexec_fn=in_child,  # fds 3 and 4; PR_SET_PDEATHSIG
            )
        except OSError as exc:
            raise BrowserFailed(f"could not start {self.settings.executable}: {exc}") from exc
        self.pid = launch.proc.pid
        for fd in (child_in, child_out):
            os.close(fd)
            launch.fds.remove(fd)
        launch.cdp = CDP(from_browser_r, to_browser_w)
        launch.fds.clear()  # the CDP owns them now
        launch.reaper = self._start_reaper()
        try:
            answer = launch.cdp.send("Browser.getVersion", timeout=self.launch_timeout)
        except CDPError as exc:
            raise BrowserFailed(
                f"{self.settings.executable} did not answer on its pipe ({exc.message})"
                + self._log_tail()
            ) from exc
        self.launch_seconds = time.monotonic() - started
        self.version = BrowserVersion(
            product=str(answer.get("product", "")),
            user_agent=str(answer.get("userAgent", "")),
            protocol=str(answer.get("protocolVersion", "")),
            revision=str(answer.get("revision", "")),
            js=str(answer.get("jsVersion", "")),
        )
        self._await_reaper(launch.reaper, deadline=time.monotonic() + 10.0)

    def _start_reaper(self) -> subprocess.Popen[bytes]:
        """The watchdog, in its own session; its stdin's write end is ours alone."""
        root = Path(reaper.__file__).resolve().parents[3]  # the tree holding archiver/
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(root), env.get("PYTHONPATH")]))
        try:
            return subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "archiver.web.browser.reaper",
                    str(self.pid),
                    str(self.profile_dir),
                ],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                env=env,
                cwd="/",
                start_new_session=True,
            )
        except OSError as exc:
            raise BrowserFailed(f"could not start the browser's watchdog: {exc}") from exc

    def _await_reaper(self, proc: subprocess.Popen[bytes], deadline: float) -> None:
        """Wait for the watchdog's ``ready``: a browser nobody would clean up is refused."""
        assert proc.stdout is not None
        fd = proc.stdout.fileno()
        said = b""
        while b"\n" not in said:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                raise BrowserFailed("the browser's watchdog did not start in time")
            chunk = os.read(fd, 64)
            if not chunk:
                raise BrowserFailed(f"the browser's watchdog exited (code {proc.wait()})")
            said += chunk
        proc.stdout.close()

    def _log_tail(self, limit: int = 2000) -> str:
        try:
            with open(self.profile_dir / LOG_NAME, "rb") as f:
                f.seek(0, os.SEEK_END)
                f.seek(max(0, f.tell() - limit))
                tail = f.read().decode("utf-8", "replace").strip()
        except OSError:
            return ""
        return f"; its last words: {tail}" if tail else ""

    @property
    def reaper_pid(self) -> int | None:
        """The watchdog process's id (while it runs)."""
        return self._launch.reaper.pid if self._launch.reaper is not None else None

    def alive(self) -> bool:
        """The browser process runs and its pipe is open."""
        proc, cdp = self._launch.proc, self._launch.cdp
        return proc is not None and proc.poll() is None and cdp is not None and not cdp.gone

    def close(self) -> None:
        """Ask the browser to close, give it ~3 s, then kill its whole process group,
        remove its profile and tell the watchdog it is done. Idempotent, and safe from a
        ``finally`` after Ctrl-C (the browser is in a session of its own, so Ctrl-C
        reached only us)."""
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
        launch = self._launch
        proc, cdp = launch.proc, launch.cdp
        if proc is not None:
            if cdp is not None and not cdp.gone and proc.poll() is None:
                with contextlib.suppress(CDPError):
                    cdp.send("Browser.close", timeout=2.0)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=3.0)
            reaper.kill_group(proc.pid)  # renderers, zygotes, the helper the shell ran
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5.0)
        if cdp is not None:
            cdp.close()
        for fd in launch.fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        launch.fds.clear()
        if launch.log is not None:
            launch.log.close()
        if launch.blackhole is not None:
            launch.blackhole.close()
        if self.profile_dir != Path():
            reaper.kill_profile_users(self.profile_dir)  # crash handlers left the group
            reaper.remove_tree(self.profile_dir)
        if launch.reaper is not None:
            stdin = launch.reaper.stdin
            if stdin is not None:
                with contextlib.suppress(OSError):
                    stdin.write(b"done\n")
                    stdin.flush()
                with contextlib.suppress(OSError):
                    stdin.close()
            if launch.reaper.stdout is not None and not launch.reaper.stdout.closed:
                launch.reaper.stdout.close()
            with contextlib.suppress(subprocess.TimeoutExpired):
                launch.reaper.wait(timeout=5.0)
