"""Browser capture of pages that misbehave: never quiet, crashing, endless, opening
windows, downloading, huge, served over TLS by an unknown authority, reaching for the
archivist's own network. Real Chromium, real servers on loopback, no mocks.

Each case runs one capture (module-scoped) that several tests read.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from archiver.archive import Archive
from archiver.capture.browser import PDF_MAX_HEIGHT
from archiver.capture.run import Capturer
from archiver.core.model import Capture, CaptureOptions, CaptureStatus
from archiver.trust.interception import CN_PREFIX
from tests.support.browser_pages import (
    BIG_PAGE,
    DOWNLOAD,
    TestCA,
    WebSocketEcho,
    bad_routes,
    processes,
)
from tests.support.deterministic import fixed_signer
from tests.support.pages import PageServer
from tests.support.warcs import ReadRecord, read_all

pytestmark = pytest.mark.usefixtures("chromium")


@dataclass
class Site:
    """The misbehaving pages, a second loopback server (``other``) and a WebSocket echo."""

    main: PageServer
    other: PageServer
    ws: WebSocketEcho

    def url(self, path: str) -> str:
        return self.main.url(path)

    def served(self, path: str) -> int:
        """How many times the main server answered ``path`` (query left out)."""
        return sum(1 for p in self.main.paths() if p.split("?", 1)[0] == path)


@dataclass
class Captured:
    capture: Capture
    seconds: float
    records: list[ReadRecord]
    served: list[str]  # the paths the page's server answered during the capture, in order

    def served_count(self, path: str) -> int:
        return sum(1 for p in self.served if p.split("?", 1)[0] == path)

    @property
    def info(self) -> dict[str, Any]:
        assert self.capture.browser is not None
        return self.capture.browser

    def responses(self, url: str) -> list[ReadRecord]:
        return [r for r in self.records if r.type == "response" and r.url == url]

    def resource(self, kind: str) -> list[ReadRecord]:
        return [r for r in self.records if (r.url or "").startswith(f"urn:{kind}:")]

    def pageinfo(self) -> dict[str, Any]:
        (record,) = self.resource("pageinfo")
        return record.json()  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def site(chromium: str) -> Iterator[Site]:
    with (
        WebSocketEcho() as ws,
        PageServer(routes=bad_routes()) as other,
        PageServer(routes=bad_routes(ws_port=ws.port, other=other.base)) as main,
    ):
        yield Site(main, other, ws)


def options(archive: Path, **overrides: Any) -> CaptureOptions:
    settings: dict[str, Any] = {
        "archive_dir": archive,
        "allow_private": True,  # the servers are on 127.0.0.1
        "browser": True,
        "timeout": 5,
        "browser_timeout": 5,
        "max_scroll": 0,
        "platform_videos": False,
    }
    settings.update(overrides)
    return CaptureOptions(**settings)


def browse(archive: Path, server: PageServer, path: str, **overrides: Any) -> Captured:
    """Capture ``path`` of ``server`` in the browser (one capture at a time)."""
    capturer = Capturer(options(archive, **overrides), signer=fixed_signer(), hostname="test")
    before = len(server.paths())
    started = time.monotonic()
    capture = capturer.capture(server.url(path))
    seconds = time.monotonic() - started
    return Captured(capture, seconds, read_all(capture.warc_files), server.paths()[before:])


def behaviour(captured: Captured, name: str) -> dict[str, Any]:
    (found,) = [b for b in captured.info["behaviours"] if b["name"] == name]
    return found  # type: ignore[no-any-return]


# -- 1. a page that never goes quiet ----------------------------------------------------------


@pytest.fixture(scope="module")
def busy(site: Site, tmp_path_factory: pytest.TempPathFactory) -> Captured:
    return browse(tmp_path_factory.mktemp("busy"), site.main, "/busy", browser_timeout=3)


def test_a_page_that_never_goes_quiet_is_captured_as_it_stands(busy: Captured) -> None:
    capture = busy.capture
    assert busy.seconds < 20, f"took {busy.seconds:.1f} s"
    assert capture.status is not CaptureStatus.FAILED, capture.failure
    assert busy.info["network_quiet"] is False
    for name in ("network quiet", "network quiet again"):
        waited = behaviour(busy, name)
        assert waited["result"] is False and 2.9 <= waited["seconds"] < 5, waited
    polls = [r for r in busy.records if r.type == "response" and "/poll?" in (r.url or "")]
    assert len(polls) >= 10  # every 100 ms, for six seconds at least
    assert all(r.http_status == 200 and r.payload == b"still here" for r in polls)
    # the proxy sent nothing on that it did not record
    assert len({r.url for r in polls}) == len(polls) == busy.served_count("/poll")


def test_the_websocket_handshake_is_recorded_as_an_exchange(busy: Captured, site: Site) -> None:
    live = f"127.0.0.1:{site.ws.port}/live"
    requests = [r for r in busy.records if r.type == "request" and (r.url or "").endswith(live)]
    responses = [r for r in busy.records if r.type == "response" and (r.url or "").endswith(live)]
    assert len(requests) == 1 and len(responses) == 1, [e.reason for e in busy.capture.errors]
    request, response = requests[0].payload, responses[0]
    assert response.http_status == 101
    assert (response.http_header("Upgrade") or "").lower() == "websocket"
    assert response.http_header("Sec-WebSocket-Accept")
    assert response.get("WARC-Concurrent-To") == requests[0].get("WARC-Record-ID")
    assert busy.capture.status is CaptureStatus.COMPLETE, busy.capture.errors
    assert site.ws.messages[:1] == [b"hello from the page"]  # the frames were tunnelled
    dom = busy.resource("dom")[0].payload
    assert b"echo: hello from the page" in dom, request


# -- 2. the renderer crashes ------------------------------------------------------------------


def renderers_of_our_browser() -> list[int]:
    """The renderer processes of the one browser this process started (its process group:
    the browser runs in a session of its own)."""
    ours = [
        p
        for p in processes()
        if p.ppid == os.getpid() and "--remote-debugging-pipe" in p.cmdline and p.state != "Z"
    ]
    assert len(ours) == 1, ours
    return [
        p.pid
        for p in processes()
        if p.pgid == ours[0].pid and "--type=renderer" in p.cmdline and p.state != "Z"
    ]


@pytest.fixture(scope="module")
def crashed(site: Site, tmp_path_factory: pytest.TempPathFactory) -> tuple[Captured, float, Path]:
    archive = tmp_path_factory.mktemp("crash") / "archives"
    done: list[Captured] = []
    polls = site.served("/poll")
    worker = threading.Thread(
        target=lambda: done.append(browse(archive, site.main, "/busy", browser_timeout=60))
    )
    worker.start()
    deadline = time.monotonic() + 20
    while site.served("/poll") < polls + 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    killed = renderers_of_our_browser()
    assert killed, "no renderer found"
    for pid in killed:
        os.kill(pid, signal.SIGKILL)
    since = time.monotonic()
    worker.join(60)
    assert done, "the capture did not end"
    return done[0], time.monotonic() - since, archive


def test_a_renderer_crash_fails_the_capture_saying_so(
    crashed: tuple[Captured, float, Path],
) -> None:
    captured, after_kill, _ = crashed
    capture = captured.capture
    assert after_kill < 10, f"{after_kill:.1f} s after the renderer died"
    assert capture.status is CaptureStatus.FAILED
    assert capture.failure is not None and "renderer crashed" in capture.failure
    assert "what it had fetched is kept" in capture.failure
    assert captured.info["crashed"] is True
    waited = behaviour(captured, "network quiet")
    assert "crashed" in waited["error"] and waited["seconds"] < 30


def test_what_was_fetched_before_the_crash_is_kept_signed_and_indexed(
    crashed: tuple[Captured, float, Path], site: Site
) -> None:
    captured, _, archive = crashed
    capture = captured.capture
    assert capture.warc_files and all(p.name.endswith(".warc.gz") for p in capture.warc_files)
    assert not list(archive.rglob("*.open"))  # published, like any capture with records
    (page,) = captured.responses(site.url("/busy"))
    served = site.main.routes["/busy"].body
    assert isinstance(served, str) and page.payload == served.encode()
    assert captured.resource("pageinfo")  # the requests made until the crash
    assert capture.manifest is not None and capture.manifest.exists()
    assert capture.key_fingerprint == fixed_signer().fingerprint
    row, _, records = Archive(archive).show(capture.capture_id)
    assert row["status"] == "failed"
    assert len(records.rows) == len(captured.records)
    verified = Archive(archive).verify()
    assert verified.result.ok, verified.result


# -- 3. infinite scroll -----------------------------------------------------------------------

MAX_SCROLL = 4


@pytest.fixture(scope="module")
def feed(site: Site, tmp_path_factory: pytest.TempPathFactory) -> Captured:
    return browse(tmp_path_factory.mktemp("feed"), site.main, "/feed", max_scroll=MAX_SCROLL)


def test_an_infinite_scroll_stops_at_max_scroll(feed: Captured) -> None:
    captured = feed
    capture = captured.capture
    assert capture.status is CaptureStatus.COMPLETE, (capture.errors, capture.failure)
    assert captured.seconds < 20
    # the page grows at each step: the scroll stops at the bound, not at a bottom
    assert captured.info["scroll_steps"] == MAX_SCROLL
    items = [r for r in captured.records if r.type == "response" and "/item?" in (r.url or "")]
    assert 1 <= len(items) <= MAX_SCROLL
    # every item fetched is recorded, and no more were fetched
    assert len(items) == captured.served_count("/item")
    assert all(r.payload == b"an item of the feed" for r in items)


# -- 4. pop-ups -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def popup(site: Site, tmp_path_factory: pytest.TempPathFactory) -> Captured:
    return browse(tmp_path_factory.mktemp("popup"), site.main, "/opener")


def test_a_popup_is_listed_and_the_opener_is_the_page_captured(popup: Captured, site: Site) -> None:
    captured = popup
    capture = captured.capture
    assert capture.status is CaptureStatus.COMPLETE, capture.errors
    assert captured.info["popups"] == [site.url("/popped?from=opener")]
    assert capture.final_url == site.url("/opener") and capture.title == "opener"
    for kind in ("view", "dom", "text"):
        (shot,) = captured.resource(kind)
        assert shot.url == f"urn:{kind}:{site.url('/opener')}"
    assert b"the pop-up" not in captured.resource("text")[0].payload


def test_what_the_popup_fetched_went_through_the_proxy_and_is_recorded(
    popup: Captured, site: Site
) -> None:
    """The pop-up lives in the page's browser context, whose proxy is the capture's: its
    document is fetched (before it is closed) and recorded like any request of the page.
    Whatever reached a server in this capture is in the WARC; nothing is fetched twice."""
    captured, served = popup, popup.served
    assert served.count("/popped?from=opener") == 1
    (document,) = captured.responses(site.url("/popped?from=opener"))
    assert document.payload.startswith(b"<!doctype html><title>popped</title>")
    entry = next(r for r in captured.capture.records if r.url == document.url)
    # one page per capture: the pop-up's document is something the page fetched
    assert entry.discovered_via == "browser document (a pop-up or a navigation)"
    assert entry.role == "requisite"
    by = {r["url"]: r["fetched_by"] for r in captured.pageinfo()["requests"]}
    assert by[site.url("/popped?from=opener")] == "browser"
    # its image: fetched by the pop-up if it got that far before it was closed, once
    assert served.count("/popped.png") == len(captured.responses(site.url("/popped.png"))) <= 1
    for path in set(served):
        assert captured.responses(site.url(path)), f"{path} reached the server, unrecorded"


# -- 5. a download ----------------------------------------------------------------------------


class Watcher:
    """Looks through folders every 20 ms while a capture runs, for any file that could
    be the download (its name, Chromium's partial names, or its bytes)."""

    def __init__(self, *folders: Path) -> None:
        self.folders = folders
        self.found: set[str] = set()
        self.in_profile: set[str] = set()  # Chromium's own temporary files, in its profile
        self.profiles: set[str] = set()
        self.looks = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Watcher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.is_set():
            for folder in self.folders:
                for root, dirs, files in os.walk(folder):
                    self.profiles |= {d for d in dirs if d.startswith("archiver-browser-")}
                    for name in files:
                        if self._suspect(Path(root) / name):
                            inside = any(
                                part.startswith("archiver-browser-") for part in Path(root).parts
                            )
                            (self.in_profile if inside else self.found).add(str(Path(root) / name))
            self.looks += 1
            self._stop.wait(0.02)

    @staticmethod
    def _suspect(path: Path) -> bool:
        if "evidence" in path.name or path.suffix == ".crdownload" or "Unconfirmed" in path.name:
            return True
        try:
            return path.stat().st_size == len(DOWNLOAD) and path.read_bytes() == DOWNLOAD
        except OSError:
            return False


@pytest.fixture(scope="module")
def download(
    site: Site, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Captured, Watcher, Path, Path]]:
    # the browser's profile is made here: a short path, as /tmp (a long one is passed
    # over for /tmp, so that Chromium's socket in the profile fits a socket's path)
    temp = Path(tempfile.mkdtemp(prefix="archiver-test-", dir="/tmp"))
    cwd = tmp_path_factory.mktemp("cwd")
    archive = tmp_path_factory.mktemp("download") / "archives"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(tempfile, "tempdir", str(temp))
        patch.setenv("TMPDIR", str(temp))  # Chromium's own temporary files
        patch.chdir(cwd)
        with Watcher(temp, cwd) as watcher:
            captured = browse(archive, site.main, "/download")
    yield captured, watcher, temp, cwd
    shutil.rmtree(temp, ignore_errors=True)


def test_a_download_is_recorded_and_listed(
    download: tuple[Captured, Watcher, Path, Path], site: Site
) -> None:
    captured = download[0]
    capture = captured.capture
    assert capture.status is CaptureStatus.COMPLETE, (capture.errors, capture.failure)
    (listed,) = captured.info["downloads"]
    assert listed["url"] == site.url("/evidence.bin")
    assert listed["suggested_filename"] == "evidence.bin"
    (response,) = captured.responses(site.url("/evidence.bin"))
    assert response.payload == DOWNLOAD  # byte for byte
    assert response.http_header("Content-Disposition") == 'attachment; filename="evidence.bin"'


def test_a_download_writes_no_file(download: tuple[Captured, Watcher, Path, Path]) -> None:
    _, watcher, temp, cwd = download
    assert watcher.looks > 10  # it looked while the browser ran
    assert watcher.profiles  # and the browser's profile was among what it looked at
    # nothing outside the browser's profile, ever; inside it, Chromium may hold a denied
    # download for a moment in its temporary folder (seen once in many runs), and the
    # profile is removed: nothing is left anywhere
    assert not watcher.found
    assert all("/t/.org.chromium.Chromium." in p for p in watcher.in_profile), watcher.in_profile
    assert not list(cwd.iterdir())
    assert not [p for p in temp.iterdir() if p.name.startswith("archiver-browser-")]


# -- 6. a 20 MB page --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def big(site: Site, tmp_path_factory: pytest.TempPathFactory) -> Captured:
    return browse(
        tmp_path_factory.mktemp("big"),
        site.main,
        "/big",
        timeout=20,
        browser_timeout=20,
        max_scroll=2,
    )


def test_a_20_mb_page_is_captured_byte_exact(big: Captured, site: Site) -> None:
    capture = big.capture
    assert capture.status is CaptureStatus.COMPLETE, (capture.failure, capture.errors)
    assert big.seconds < 45, f"took {big.seconds:.1f} s"
    (page,) = big.responses(site.url("/big"))
    assert len(page.payload) == len(BIG_PAGE) == 20 * 1024 * 1024
    assert page.payload_sha256 == hashlib.sha256(BIG_PAGE).hexdigest()
    (dom,) = big.resource("dom")
    assert b"the end of the big page" in dom.payload
    assert b"Paragraph 300000 of a very long page" in dom.payload  # the hidden part too


def test_no_pdf_is_made_of_a_page_too_tall_to_print(big: Captured) -> None:
    """Chromium prints a 10-million-pixel page for minutes (and fails the capture at
    the two-minute timeout): past PDF_MAX_HEIGHT the PDF is left out, saying why."""
    height = big.info["full_page"]["content_height"]
    assert height > PDF_MAX_HEIGHT and big.info["full_page"]["capped"] is True
    assert not big.resource("pdf")
    assert str(height) in big.info["pdf_skipped"]
    assert {"view", "fullPage", "dom", "text", "pageinfo"} <= {
        r.url.split(":")[1] for r in big.records if r.type == "resource" and r.url
    }


# -- 8. an HTTPS origin whose authority archiver does not trust -------------------------------


@pytest.fixture(scope="module")
def tls_site(
    chromium: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[PageServer, TestCA]]:
    ca = TestCA(tmp_path_factory.mktemp("test-ca"))
    with PageServer(routes=bad_routes(), tls=ca.server_context()) as server:
        yield server, ca


@pytest.fixture(scope="module")
def tls_refused(
    tls_site: tuple[PageServer, TestCA], tmp_path_factory: pytest.TempPathFactory
) -> Captured:
    server, _ = tls_site
    return browse(tmp_path_factory.mktemp("tls-refused"), server, "/plain")


@pytest.fixture(scope="module")
def tls_insecure(
    tls_site: tuple[PageServer, TestCA], tmp_path_factory: pytest.TempPathFactory
) -> Captured:
    server, _ = tls_site
    return browse(tmp_path_factory.mktemp("tls-insecure"), server, "/plain", insecure=True)


def test_an_origin_certificate_that_does_not_verify_fails_the_page(
    tls_refused: Captured,
) -> None:
    capture = tls_refused.capture
    assert capture.status is CaptureStatus.FAILED
    assert capture.failure is not None
    assert capture.failure.startswith("TLS certificate rejected: unable to get local issuer")
    assert not capture.warc_files and not tls_refused.records  # nothing answered
    assert tls_refused.served == []  # no request was sent over the unverified connection


def test_with_insecure_the_origins_own_tls_is_recorded(
    tls_insecure: Captured, tls_site: tuple[PageServer, TestCA]
) -> None:
    server, ca = tls_site
    capture = tls_insecure.capture
    assert capture.status is CaptureStatus.COMPLETE, (capture.failure, capture.errors)
    (page,) = tls_insecure.responses(server.url("/plain"))
    assert page.all("WARC-Protocol") == ["http/1.1", "tls/1.3"]
    assert (page.get("WARC-Cipher-Suite") or "").startswith("TLS_")
    assert page.payload == b"<!doctype html><title>plain</title><p>served over TLS</p>"
    (unverified,) = capture.tls_unverified
    assert unverified.host == f"127.0.0.1:{server.port}"
    assert unverified.certificate_sha256 == ca.leaf_sha256  # the origin's, not ours
    (record,) = [
        r
        for r in tls_insecure.records
        if r.type == "metadata" and (r.url or "").startswith("urn:archiver-certificate:")
    ]
    body = record.json()
    assert body["certificate_sha256"] == ca.leaf_sha256
    assert body["verified"] is False and "local issuer" in body["problem"]
    recorded = x509.load_pem_x509_certificate(body["certificate_pem"].encode())
    issuer = recorded.issuer.rfc4514_string()
    assert issuer == "CN=archiver test CA" and CN_PREFIX not in issuer
    metadata = [
        r for r in tls_insecure.records if (r.url or "").startswith("urn:archiver-metadata:")
    ]
    summary = json.loads(metadata[0].payload)
    assert [t["certificate_sha256"] for t in summary["tls_unverified"]] == [ca.leaf_sha256]


# -- 11. private addresses --------------------------------------------------------------------


@pytest.fixture(scope="module")
def private(site: Site, tmp_path_factory: pytest.TempPathFactory) -> tuple[Captured, int]:
    before = len(site.other.paths())
    captured = browse(
        tmp_path_factory.mktemp("private"),
        site.main,
        "/reach",
        allow_private=False,
        allow_private_endpoints=frozenset({("127.0.0.1", site.main.port)}),
    )
    return captured, len(site.other.paths()) - before


def test_a_script_cannot_make_the_capture_fetch_another_private_server(
    private: tuple[Captured, int], site: Site
) -> None:
    captured, reached = private
    capture = captured.capture
    secret = site.other.url("/secret.json")
    assert reached == 0  # the other server never received it
    assert capture.status is CaptureStatus.PARTIAL, capture.failure
    errors = {e.url: e.reason for e in capture.errors}
    assert errors[secret].startswith("private address 127.0.0.1 (loopback)")
    assert "(use --allow-private)" in errors[secret]
    assert not [r for r in captured.records if r.url == secret]  # no request, no response
    (entry,) = [r for r in captured.pageinfo()["requests"] if r["url"] == secret]
    assert entry["status"] is None and "private address 127.0.0.1" in entry["error"]
    assert b"refused" in captured.resource("text")[0].payload  # the page's fetch failed
    assert captured.responses(site.url("/reach"))  # the seed's server was let through
