"""The review of browser capture's safety (`--browser`): each test failed on the code it
was written against (the figures in each docstring) and states the property it broke."""

from __future__ import annotations

import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from archiver.capture.run import Capturer
from archiver.core.model import CaptureOptions, CaptureStatus
from tests.support.deterministic import fixed_signer
from tests.support.pages import PageServer, Route
from tests.support.runner import run

pytestmark = pytest.mark.usefixtures("chromium")

SECRET = "H77pOnlySessionValue99"
ROUTES = {
    "/busy": Route(
        "<title>b</title><script>setInterval(() => fetch('/r?' + Date.now()), 100)</script>"
    ),
    "/r": Route("r", "text/plain"),
    "/alerts": Route("<title>a</title><script>let n = 0; while (true) alert('x' + n++);</script>"),
    "/cookies": Route(
        "<title>c</title><p id=o></p><script>"
        "document.getElementById('o').textContent = 'cookies: ' + document.cookie;"
        "fetch('/collect?c=' + encodeURIComponent(document.cookie));</script>"
    ),
    "/collect": Route("", "text/plain", status=204),
}


@pytest.fixture(scope="module")
def server() -> Iterator[PageServer]:
    with PageServer(ROUTES) as served:
        yield served


def capturer(tmp_path: Path, **options: object) -> Capturer:
    settings = CaptureOptions(
        archive_dir=tmp_path / "a",
        allow_private=True,
        browser=True,
        **options,  # type: ignore[arg-type]
    )
    return Capturer(settings, signer=fixed_signer(), hostname="test")


def test_max_capture_time_bounds_the_browser_phase(server: PageServer, tmp_path: Path) -> None:
    """--max-capture-time 2 on a page polling every 100 ms took 21 s with
    --browser-timeout 10 (121 s with the default 60): each wait ran to its own timeout."""
    started = time.monotonic()
    capture = capturer(tmp_path, max_capture_time=2, browser_timeout=10).capture(
        server.url("/busy")
    )
    took = time.monotonic() - started
    assert took < 2 + 8, f"a 2 s deadline took {took:.1f} s: {capture.browser}"
    assert capture.status is CaptureStatus.PARTIAL  # the time budget cut it, and says so
    assert any("time" in spent for spent in capture.budget_spent), capture.budget_spent


def test_httponly_cookies_stay_httponly_and_out_of_the_evidence(
    server: PageServer, tmp_path: Path
) -> None:
    """A #HttpOnly_ cookie of the --cookies file was given to Chromium without httpOnly:
    the page's script read it and put it in a URL, in clear in the WARC."""
    jar = tmp_path / "cookies.txt"
    jar.write_text(
        f"# Netscape HTTP Cookie File\n#HttpOnly_127.0.0.1\tFALSE\t/\tFALSE\t0\tsession\t{SECRET}\n"
    )
    before = len(server.paths())
    capture = capturer(tmp_path, cookies=jar, browser_timeout=5, max_scroll=0).capture(
        server.url("/cookies")
    )
    assert not any(SECRET in path for path in server.paths()[before:])  # scripts never saw it
    for warc in capture.warc_files:
        raw, text = warc.read_bytes(), b""
        while raw:
            member = zlib.decompressobj(31)
            text += member.decompress(raw)
            raw = member.unused_data
        assert SECRET.encode() not in text, f"the --cookies value in clear in {warc.name}"


def test_an_alert_loop_neither_fails_the_capture_nor_grows_without_bound(
    server: PageServer, tmp_path: Path
) -> None:
    """while (true) alert(): failed after 41.9 s (the page held every command), no
    screenshot or DOM kept, 8,136 dialogs listed (a 641 KB metadata record)."""
    capture = capturer(tmp_path, browser_timeout=5, max_scroll=1).capture(server.url("/alerts"))
    assert capture.status is not CaptureStatus.FAILED, capture.failure
    info = capture.browser or {}
    assert len(info["dialogs"]) <= 100 and info["scripts_stopped"].startswith("after 50 dialogs")
    kinds = {(r.url or "").split(":")[1] for r in capture.records if r.warc_type == "resource"}
    assert {"view", "dom", "text"} <= kinds


def test_a_program_that_is_no_browser_is_reported_plainly(
    server: PageServer, tmp_path: Path
) -> None:
    """--browser-path /bin/true said 'internal error: BrowserFailed(...)', and a line
    'browser: None; still busy at --browser-timeout' for a browser that never ran."""
    done = run(
        "capture", "--browser", "--browser-path", "/bin/true", "--archive-dir",
        str(tmp_path / "a"), server.url("/r"),
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert "internal error" not in done.stderr and "BrowserFailed(" not in done.stderr
    assert "the browser:" in done.stderr and "Traceback" not in done.stderr
    assert "browser: None" not in done.stdout and "still busy" not in done.stdout
