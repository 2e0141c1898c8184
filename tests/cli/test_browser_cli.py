"""``archiver capture --browser`` as users run it: real processes, real Chromium, real
servers on loopback. The report, the JSON summary, ``show`` and ``verify`` of a browser
capture; no browser to run; an origin trusted through ``SSL_CERT_FILE``; and Ctrl-C or
SIGKILL while the page is still loading, after which no browser process and no profile
may be left."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.browser_pages import TestCA, WebSocketEcho, bad_routes, processes
from tests.support.browser_site import ScriptSite
from tests.support.pages import PageServer
from tests.support.runner import command, run
from tests.support.warcs import read_all, read_warc

pytestmark = pytest.mark.usefixtures("chromium")

KINDS = ("view", "fullPage", "pdf", "dom", "text", "pageinfo")


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A key store and a configuration of this module's own (loopback allowed)."""
    home = tmp_path_factory.mktemp("browser-cli")
    config = home / "xdg" / "archiver"
    config.mkdir(parents=True)
    (config / "config.toml").write_text("[capture]\nallow_private = true\n", "utf-8")
    return {"ARCHIVER_KEY_STORE": str(home / "keys"), "XDG_CONFIG_HOME": str(home / "xdg")}


# -- 10. a capture of the script-built page, its report, show and verify --------------------


@dataclass
class Runs:
    site: ScriptSite
    archive: Path
    text: subprocess.CompletedProcess[str]
    json: subprocess.CompletedProcess[str]


@pytest.fixture(scope="module")
def runs(
    chromium: str, env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Runs]:
    archive = tmp_path_factory.mktemp("script") / "archives"
    with ScriptSite() as site:
        url = site.url("/article")
        text = run("capture", "--browser", url, "--archive-dir", str(archive), env=env)
        as_json = run(
            "capture", "--browser", url, "--format", "json", "--archive-dir", str(archive), env=env
        )
        yield Runs(site, archive, text, as_json)


def test_capture_browser_says_what_the_browser_did(runs: Runs) -> None:
    done = runs.text
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    url = runs.site.url("/article")
    first, browser_line, *rest = done.stdout.splitlines()
    assert first.startswith(f"complete {url} -> "), done.stdout
    assert browser_line.strip().startswith("browser: Chrome/")
    assert "network quiet" in browser_line
    assert "kept dom, fullPage, pageinfo, pdf, text, view" in browser_line
    assert any(line.strip().startswith("signed by ") for line in rest)


def test_the_json_summary_of_a_browser_capture(runs: Runs) -> None:
    done = runs.json
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout.splitlines()[-1])
    url = runs.site.url("/article")
    assert summary["status"] == "complete" and summary["final_url"] == url
    assert summary["title"] == "Script-built article"
    assert summary["manifest"] and Path(summary["manifest"]).exists()
    assert [Path(p).exists() for p in summary["warc_files"]] == [True]
    assert summary["browser"]["product"].startswith("Chrome/")
    assert summary["browser"]["network_quiet"] is True
    assert summary["browser"]["kept"] == [f"urn:{kind}:{url}" for kind in KINDS]


def test_show_lists_what_the_browser_showed(runs: Runs, env: dict[str, str]) -> None:
    capture_id = json.loads(runs.json.stdout.splitlines()[-1])["capture_id"]
    shown = run("show", capture_id, "--format", "json", "--archive-dir", str(runs.archive), env=env)
    assert shown.returncode == 0, shown.stderr
    records = json.loads(shown.stdout)["records"]
    url = runs.site.url("/article")
    resources = {r["url"]: r["role"] for r in records if r["warc_type"] == "resource"}
    assert resources == {
        f"urn:view:{url}": "screenshot",
        f"urn:fullPage:{url}": "screenshot",
        f"urn:pdf:{url}": "pdf",
        f"urn:dom:{url}": "dom",
        f"urn:text:{url}": "text",
        f"urn:pageinfo:{url}": "pageinfo",
    }
    text = run("show", capture_id, "--archive-dir", str(runs.archive), env=env)
    assert text.returncode == 0, text.stderr
    for kind in KINDS:
        assert f"urn:{kind}:{url}" in text.stdout


def test_verify_accepts_browser_captures(runs: Runs, env: dict[str, str]) -> None:
    done = run("verify", "--archive-dir", str(runs.archive), env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "verified: everything holds" in done.stdout


# -- 10. no browser to run ---------------------------------------------------------------------


def test_a_browser_path_that_is_not_there_is_a_usage_error(
    env: dict[str, str], tmp_path: Path
) -> None:
    archive = tmp_path / "archives"
    done = run(
        "capture", "--browser", "--browser-path", "/nonexistent/chromium",
        "http://127.0.0.1:9/", "--archive-dir", str(archive), env=env,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "no browser at /nonexistent/chromium (from --browser-path)" in done.stderr
    assert "Traceback" not in done.stderr
    assert not list(archive.rglob("*.warc.gz*"))


def test_no_chromium_on_path_names_the_debian_package(env: dict[str, str], tmp_path: Path) -> None:
    empty = tmp_path / "bin"
    empty.mkdir()
    archive = tmp_path / "archives"
    done = run(
        "capture", "--browser", "http://127.0.0.1:9/", "--archive-dir", str(archive),
        env={**env, "PATH": str(empty), "ARCHIVER_BROWSER": None},
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "no Chromium found" in done.stderr
    assert "Debian's `chromium` package (apt install chromium)" in done.stderr
    assert "Traceback" not in done.stderr
    assert not list(archive.rglob("*.warc.gz*"))


# -- 8. an origin whose authority is trusted through SSL_CERT_FILE ------------------------------


def test_an_origin_trusted_through_ssl_cert_file_is_verified(
    chromium: str, env: dict[str, str], tmp_path: Path
) -> None:
    """archiver's client takes the system's trust store, which OpenSSL lets SSL_CERT_FILE
    replace: the test CA's leaf verifies, and the WARC records the origin's TLS (the
    same capture without it fails: tests/capture/test_browser_bad_cases.py)."""
    ca = TestCA(tmp_path / "ca")
    archive = tmp_path / "archives"
    with PageServer(routes=bad_routes(), tls=ca.server_context()) as server:
        url = server.url("/plain")
        done = run(
            "capture", "--browser", url, "--format", "json", "--max-scroll", "0",
            "--archive-dir", str(archive), env={**env, "SSL_CERT_FILE": str(ca.ca_pem)},
        )  # fmt: skip
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout.splitlines()[-1])
    assert summary["status"] == "complete" and summary["tls_unverified"] == []
    records = read_all([Path(p) for p in summary["warc_files"]])
    (page,) = [r for r in records if r.type == "response" and r.url == url]
    assert page.all("WARC-Protocol") == ["http/1.1", "tls/1.3"]
    assert (page.get("WARC-Cipher-Suite") or "").startswith("TLS_")
    assert page.get("WARC-IP-Address") == "127.0.0.1"
    assert not [r for r in records if (r.url or "").startswith("urn:archiver-certificate:")]


# -- 9. Ctrl-C and SIGKILL while the page is loading -----------------------------------------


@dataclass
class Stopped:
    proc: subprocess.Popen[str]
    out: str
    err: str
    temp: Path
    archive: Path
    browser_pid: int
    profile: str
    left: list[str]  # processes of the browser, or naming its temp dir, still there
    profiles: list[str]  # profile directories still there
    cleaned_in: float  # seconds from the end of the capture to both lists being empty


def browser_leftovers(temp: Path, browser_pid: int) -> tuple[list[str], list[str]]:
    left = [
        f"{p.pid} {p.state} {p.cmdline[:80]}"
        for p in processes()
        if p.state != "Z" and (p.pgid == browser_pid or str(temp) in p.cmdline)
    ]
    profiles = [p.name for p in temp.iterdir() if p.name.startswith("archiver-browser-")]
    return left, profiles


def stop_while_loading(
    env: dict[str, str], base: Path, server: PageServer, signum: signal.Signals
) -> Stopped:
    """Start a capture of the never-quiet page, wait until the browser polls, then send
    ``signum`` to the capture's process group (Ctrl-C at a terminal does so)."""
    # a short temporary directory (the caller removes it): Chromium's own temporary files
    # go into the profile only where their socket's path fits (108 bytes), as under /tmp
    temp, archive = Path(tempfile.mkdtemp(prefix="archiver-test-", dir="/tmp")), base / "archives"
    polls = sum(1 for p in server.paths() if p.startswith("/poll"))
    proc = subprocess.Popen(
        command(
            "capture", "--browser", server.url("/busy"), "--browser-timeout", "120",
            "--format", "json", "--archive-dir", str(archive),
        ),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, **env, "TMPDIR": str(temp)}, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while sum(1 for p in server.paths() if p.startswith("/poll")) < polls + 3:
            assert time.monotonic() < deadline and proc.poll() is None, proc.communicate()
            time.sleep(0.05)
        marker = f"--user-data-dir={temp}/"
        (browser,) = [p for p in processes() if marker in p.cmdline and "--type=" not in p.cmdline]
        os.killpg(proc.pid, signum)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    ended = time.monotonic()
    while True:
        left, profiles = browser_leftovers(temp, browser.pid)
        if (not left and not profiles) or time.monotonic() > ended + 5:
            break
        time.sleep(0.05)
    profile = browser.cmdline.split(marker, 1)[1].split()[0]
    return Stopped(
        proc,
        out,
        err,
        temp,
        archive,
        browser.pid,
        profile,
        left,
        profiles,
        time.monotonic() - ended,
    )


@pytest.fixture(scope="module")
def busy_server(chromium: str) -> Iterator[PageServer]:
    with WebSocketEcho() as ws, PageServer(routes=bad_routes(ws_port=ws.port)) as server:
        yield server


@pytest.fixture(scope="module")
def interrupted(
    env: dict[str, str], busy_server: PageServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stopped]:
    stopped = stop_while_loading(env, tmp_path_factory.mktemp("sigint"), busy_server, signal.SIGINT)
    yield stopped
    shutil.rmtree(stopped.temp, ignore_errors=True)


@pytest.fixture(scope="module")
def killed(
    env: dict[str, str], busy_server: PageServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stopped]:
    stopped = stop_while_loading(
        env, tmp_path_factory.mktemp("sigkill"), busy_server, signal.SIGKILL
    )
    yield stopped
    shutil.rmtree(stopped.temp, ignore_errors=True)


def test_ctrl_c_while_loading_leaves_no_browser_and_no_profile(interrupted: Stopped) -> None:
    assert interrupted.left == [] and interrupted.profiles == [], interrupted
    assert interrupted.cleaned_in < 1  # closed by the capture itself, before it exited
    assert not list(interrupted.temp.iterdir())  # Chromium's own temporary files too


def test_ctrl_c_while_loading_is_an_interrupted_capture(
    interrupted: Stopped, busy_server: PageServer
) -> None:
    assert interrupted.proc.returncode == 130, interrupted.err
    assert "Traceback" not in interrupted.err and "interrupted" in interrupted.err
    summary = json.loads(interrupted.out.splitlines()[-1])
    assert summary["interrupted"] is True and summary["status"] == "failed"
    assert summary["failure"].startswith("interrupted; the records written so far are kept")
    assert summary["warc_files"] == [] and not list(interrupted.archive.rglob("*.warc.gz"))
    (kept,) = summary["incomplete_files"]
    assert kept.endswith(".warc.gz.open") and Path(kept).exists()
    responses = {r.url: r for r in read_warc(Path(kept)) if r.type == "response"}
    page = responses[busy_server.url("/busy")]
    body = busy_server.routes["/busy"].body
    assert isinstance(body, str) and page.payload == body.encode()


def test_sigkill_while_loading_leaves_no_browser_and_no_profile(killed: Stopped) -> None:
    """Nobody is left to close the browser: the kernel kills it (PR_SET_PDEATHSIG) and
    the watchdog kills its process group and removes its profile."""
    assert killed.proc.returncode == -signal.SIGKILL
    assert killed.left == [] and killed.profiles == [], killed
    assert killed.cleaned_in < 5


def test_sigkill_while_loading_leaves_nothing_in_the_temporary_directory(
    killed: Stopped,
) -> None:
    assert not list(killed.temp.iterdir())
