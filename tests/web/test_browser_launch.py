"""Finding and running Debian's Chromium (archiver.web.browser.chromium): the flags, the
DevTools handshake over the pipe, and that nothing is left behind however we end: a
normal close, Ctrl-C, or SIGKILL of the process that started the browser (the reaper).

Every test here runs the real /usr/bin/chromium; none can run without it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from ipaddress import IPv4Address
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from archiver.core.errors import UsageProblem
from archiver.web.browser import (
    Browser,
    BrowserGone,
    BrowserNotFound,
    LaunchSettings,
    browser_version,
    chromium_flags,
    find_browser,
)
from archiver.web.browser.chromium import page_proxy
from archiver.web.browser.page import Page
from tests.support.pages import PageServer, ProxyServer, Route
from tests.support.paths import ROOT

CHROMIUM = Path("/usr/bin/chromium")
needs_chromium = pytest.mark.skipif(
    not os.access(CHROMIUM, os.X_OK), reason="Debian's chromium is not installed here"
)


def live_group(pgid: int) -> list[int]:
    """Processes of the group still running, read from /proc by the test itself (zombies
    aside: they hold no files and run nothing; the container's init reaps them late)."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            stat = Path(f"/proc/{name}/stat").read_bytes()
        except OSError:
            continue
        state, _ppid, group = stat[stat.rfind(b")") + 2 :].split()[:3]
        if int(group) == pgid and state not in (b"Z", b"X"):
            found.append(int(name))
    return found


def wait_for(predicate: object, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.05)
    return bool(predicate())  # type: ignore[operator]


def settings(**more: object) -> LaunchSettings:
    return LaunchSettings(executable=CHROMIUM, **more)  # type: ignore[arg-type]


# --------------------------------------------------------------------- finding it


def test_an_explicit_path_that_is_not_there_names_it_and_the_package(tmp_path: Path) -> None:
    missing = tmp_path / "no-chromium"
    with pytest.raises(BrowserNotFound) as caught:
        find_browser(str(missing), environ={"PATH": str(tmp_path)})
    assert str(missing) in str(caught.value)
    assert "apt install chromium" in str(caught.value)
    assert caught.value.hint == "--browser-path"
    assert caught.value.exit_code == 2  # a UsageProblem


def test_a_file_that_is_not_executable_is_refused(tmp_path: Path) -> None:
    plain = tmp_path / "chromium"
    plain.write_text("#!/bin/sh\n")
    plain.chmod(0o644)
    with pytest.raises(BrowserNotFound):
        find_browser(str(plain), environ={"PATH": ""})
    with pytest.raises(BrowserNotFound, match="install Debian's `chromium` package"):
        find_browser(environ={"PATH": str(tmp_path)})  # not executable: not found on PATH


def test_the_environment_variable_then_path_are_asked(tmp_path: Path) -> None:
    mine = tmp_path / "my-browser"
    mine.write_text("#!/bin/sh\n")
    mine.chmod(0o755)
    on_path = tmp_path / "bin"
    on_path.mkdir()
    (on_path / "google-chrome").write_text("#!/bin/sh\n")
    (on_path / "google-chrome").chmod(0o755)

    assert find_browser(environ={"ARCHIVER_BROWSER": str(mine), "PATH": str(on_path)}) == mine
    assert find_browser(environ={"PATH": str(on_path)}) == on_path / "google-chrome"
    # the explicit path beats the variable
    assert (
        find_browser(str(on_path / "google-chrome"), environ={"ARCHIVER_BROWSER": str(mine)})
        == on_path / "google-chrome"
    )
    with pytest.raises(BrowserNotFound) as caught:
        find_browser(environ={"ARCHIVER_BROWSER": str(tmp_path / "gone"), "PATH": str(on_path)})
    assert caught.value.hint == "ARCHIVER_BROWSER"


def test_nothing_on_path_says_which_debian_package_to_install(tmp_path: Path) -> None:
    with pytest.raises(BrowserNotFound) as caught:
        find_browser(environ={"PATH": str(tmp_path)})
    message = str(caught.value)
    assert "no Chromium found" in message
    assert "apt install chromium" in message
    assert "ARCHIVER_BROWSER" in message


# --------------------------------------------------------------------- the flags


def test_the_flags_hold_what_a_capture_needs_in_one_tuple() -> None:
    flags = chromium_flags(
        settings(
            proxy="127.0.0.1:8123",
            spki_hashes=("AAAA", "BBBB"),
            viewport=(800, 600),
            scale=2.0,
            user_agent="Test Agent/1.0",
            extra_flags=("--disable-features=Foo", "--some-switch"),
        ),
        root=True,
    )
    assert isinstance(flags, tuple)
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-site-isolation-trials",
        "--proxy-server=http://127.0.0.1:9",  # the browser's own traffic: refused
        "--proxy-bypass-list=<-loopback>",
        "--ignore-certificate-errors-spki-list=AAAA,BBBB",
        "--window-size=800,600",
        "--force-device-scale-factor=2",
        "--user-agent=Test Agent/1.0",
        "--remote-debugging-pipe",
        "--some-switch",
    ):
        assert flag in flags
    disabled = [f for f in flags if f.startswith("--disable-features=")]
    assert len(disabled) == 1  # Chromium keeps only the last one: ours and the caller's merged
    features = disabled[0].split("=", 1)[1].split(",")
    for feature in ("IsolateOrigins", "site-per-process", "OptimizationHints", "Translate", "Foo"):
        assert feature in features
    assert "--enable-features=AvoidAutoTriggerListAccountsOnStale" in flags
    assert not any(f.startswith("--user-data-dir") for f in flags)
    assert "--no-sandbox" not in chromium_flags(settings(), root=False)
    # the pages' contexts get the caller's proxy, or go direct
    assert page_proxy(settings(proxy="127.0.0.1:8123")) == "http://127.0.0.1:8123"
    assert page_proxy(settings()) == "direct://"


@pytest.mark.parametrize(
    "bad",
    [
        {"viewport": (0, 600)},
        {"scale": 0.0},
        {"proxy": "http://127.0.0.1:8080"},
        {"proxy": "127.0.0.1"},
        {"spki_hashes": ("a,b",)},
    ],
)
def test_settings_that_cannot_work_are_refused(bad: dict[str, object]) -> None:
    with pytest.raises(UsageProblem):
        settings(**bad)


# ------------------------------------------------------------------ running it


def fd_targets(pid: int) -> set[str]:
    """What the open file descriptors of ``pid`` point at (one closed while they are
    read is passed over: the browser opens and closes files as it starts)."""
    targets = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            targets.add(os.readlink(f"/proc/{pid}/fd/{fd}"))
        except FileNotFoundError:
            continue
    return targets


@needs_chromium
def test_launch_answers_and_close_leaves_nothing(tmp_path: Path) -> None:
    leak = os.open(tmp_path / "ours-only", os.O_CREAT | os.O_WRONLY)
    os.set_inheritable(leak, True)  # the worst case: an fd of ours that would be inherited
    try:
        browser = Browser(settings(profile_parent=tmp_path))
        with browser:
            assert browser.version.product.startswith("Chrome/")
            assert "Chrome/" in browser.version.user_agent
            assert browser.alive()
            assert browser.profile_dir.parent == tmp_path
            assert browser.profile_dir.stat().st_mode & 0o777 == 0o700
            assert browser.pid in live_group(browser.pid)  # its own group, led by it
            targets = fd_targets(browser.pid)
            assert str(tmp_path / "ours-only") not in targets
            assert not any(str(browser.profile_dir) in flag for flag in browser.flags)
            # the browser's own profile is sent to a port that refuses every connection
            (refusing,) = [f for f in browser.flags if f.startswith("--proxy-server=")]
            host, port = refusing.removeprefix("--proxy-server=http://").split(":")
            with pytest.raises(ConnectionRefusedError), socket.create_connection((host, port)):
                pass
            # the watchdog ignores Ctrl-C (it runs in a session of its own anyway)
            reaper = browser.reaper_pid
            assert reaper is not None
            os.kill(reaper, signal.SIGINT)
            time.sleep(0.2)
            assert Path(f"/proc/{reaper}").exists()
            assert os.getsid(reaper) == reaper
            profile, pid = browser.profile_dir, browser.pid
        assert not browser.alive()
        assert live_group(pid) == []
        assert not profile.exists()
        assert wait_for(lambda: not Path(f"/proc/{reaper}").exists() or _zombie(reaper), 5)
        browser.close()  # again: nothing happens
    finally:
        os.close(leak)


def _zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return True
    return stat[stat.rfind(b")") + 2 :].split()[0] == b"Z"


@needs_chromium
def test_the_version_the_browser_says_is_the_one_its_executable_says() -> None:
    said = browser_version(CHROMIUM)
    match = re.match(r"^Chromium (\d+\.\d+\.\d+\.\d+)", said)
    assert match, said
    with Browser(settings()) as browser:
        assert browser.version.product == f"Chrome/{match.group(1)}"


CHILD = """
import json, sys, time
from pathlib import Path
from archiver.web.browser import Browser, LaunchSettings
browser = Browser(LaunchSettings(Path("/usr/bin/chromium"), profile_parent=Path(sys.argv[1])))
try:
    with browser:
        print(json.dumps({"pid": browser.pid, "profile": str(browser.profile_dir)}), flush=True)
        time.sleep(60)
except KeyboardInterrupt:
    print("interrupted, closed", flush=True)
"""


def _child(tmp_path: Path) -> tuple[subprocess.Popen[str], int, Path]:
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        start_new_session=True,  # its own group, as a command in a terminal is
    )
    assert child.stdout is not None
    said = json.loads(child.stdout.readline())
    pid, profile = int(said["pid"]), Path(said["profile"])
    assert live_group(pid) and profile.is_dir()
    return child, pid, profile


@needs_chromium
def test_sigkill_of_the_owner_leaves_nothing(tmp_path: Path) -> None:
    child, pid, profile = _child(tmp_path)
    os.kill(child.pid, signal.SIGKILL)
    child.wait(timeout=5)
    assert wait_for(lambda: not live_group(pid), 5), live_group(pid)
    # only the reaper removes the profile: the kernel's PDEATHSIG kills, it cleans nothing
    assert wait_for(lambda: not profile.exists(), 5)


@needs_chromium
def test_ctrl_c_of_the_owner_closes_the_browser(tmp_path: Path) -> None:
    child, pid, profile = _child(tmp_path)
    os.killpg(child.pid, signal.SIGINT)  # the terminal sends it to the foreground group
    out, err = child.communicate(timeout=15)
    assert "interrupted, closed" in out
    assert err == ""  # none of Chromium's chatter (dbus, the wrapper's sh) reached us
    assert live_group(pid) == []  # already gone when close() returned
    assert not profile.exists()


@needs_chromium
def test_a_browser_that_dies_fails_every_waiting_command_at_once(tmp_path: Path) -> None:
    with Browser(settings(profile_parent=tmp_path)) as browser:
        page = Page.open(browser)
        failures: list[BaseException] = []

        def wait_long() -> None:
            try:
                browser.cdp.send(
                    "Runtime.evaluate",
                    {"expression": "new Promise(r => setTimeout(r, 60000))", "awaitPromise": True},
                    session_id=page.session_id,
                    timeout=60,
                )
            except BaseException as exc:
                failures.append(exc)

        waiting = [threading.Thread(target=wait_long) for _ in range(3)]
        for thread in waiting:
            thread.start()
        time.sleep(0.3)
        killed = time.monotonic()
        os.killpg(browser.pid, signal.SIGKILL)
        for thread in waiting:
            thread.join(timeout=10)
        assert time.monotonic() - killed < 3
        assert len(failures) == 3 and all(isinstance(f, BrowserGone) for f in failures)
        assert not browser.alive()
        with pytest.raises(BrowserGone):
            page.text()
        with pytest.raises(BrowserGone):
            browser.cdp.send("Browser.getVersion")
        profile = browser.profile_dir
    assert not profile.exists()


# ------------------------------------------------------- the network it goes through


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@needs_chromium
def test_every_request_goes_through_the_proxy_loopback_included() -> None:
    closed = _free_port()  # nothing listens there: only the proxy can answer
    with ProxyServer() as proxy, Browser(settings(proxy=proxy.address)) as browser:
        for n in (1, 2):  # two pages, two browser contexts
            with Page.open(browser) as page:
                result = page.navigate(f"http://127.0.0.1:{closed}/through/{n}")
                assert result.status == 200 and result.loaded
                assert "answered by the proxy" in page.text()
        time.sleep(1.0)  # room for the browser's own traffic, which must not come
        lines = proxy.lines()
    assert lines[0] == f"GET http://127.0.0.1:{closed}/through/1"
    assert f"GET http://127.0.0.1:{closed}/through/2" in lines
    strangers = [line for line in lines if f"127.0.0.1:{closed}/" not in line]
    assert strangers == []


def _tls_server_context(tmp_path: Path, name: str) -> tuple[ssl.SSLContext, str]:
    """A certificate for 127.0.0.1 from a CA of the test's own; the CA's SPKI hash (base64
    SHA-256 of its SubjectPublicKeyInfo, as Chromium's flag wants it)."""
    now = datetime.now(UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"test CA {name}")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(IPv4Address("127.0.0.1"))]),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    chain = tmp_path / f"{name}-chain.pem"
    chain.write_bytes(
        cert.public_bytes(serialization.Encoding.PEM) + ca.public_bytes(serialization.Encoding.PEM)
    )
    key_path = tmp_path / f"{name}-key.pem"
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(chain, key_path)
    spki = ca.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return context, base64.b64encode(hashlib.sha256(spki).digest()).decode()


@needs_chromium
def test_certificates_of_the_named_ca_are_accepted_and_no_other(tmp_path: Path) -> None:
    routes = {"/": Route("<!doctype html><title>tls</title><p>over TLS</p>")}
    ours, spki = _tls_server_context(tmp_path, "ours")
    theirs, _ = _tls_server_context(tmp_path, "theirs")
    with (
        PageServer(routes=routes, tls=ours) as trusted,
        PageServer(routes=routes, tls=theirs) as stranger,
        Browser(settings(spki_hashes=(spki,))) as browser,
        Page.open(browser) as page,
    ):
        accepted = page.navigate(trusted.url("/"))
        assert accepted.error is None and accepted.status == 200
        assert "over TLS" in page.text()
        refused = page.navigate(stranger.url("/"))
        assert refused.error is not None and refused.error.startswith("net::ERR_CERT_")
