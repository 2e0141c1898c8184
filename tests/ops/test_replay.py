"""``Archive.replay``: pywb serves our captures from our index and WARC files in place,
and a real headless Chromium shows the replayed article: its text, its picture decoded,
its video playable.

The article and its media come from a site stopped before anything is replayed, and
every request the browser makes must go to the replay server: whatever is shown comes
from the archive.  One server serves the module (pywb starts in about a second).
"""

from __future__ import annotations

import hashlib
import http.client
import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

from archiver import Archive
from archiver.capture.run import Capturer
from archiver.core.errors import Failure, UsageProblem
from archiver.index import query
from archiver.ops.replay import (
    COLLECTION,
    TEMP_PREFIX,
    ReplayFailed,
    ReplayPage,
    ReplayServer,
)
from archiver.web.browser import Browser, LaunchSettings, Page
from tests.support.pages import PageServer, Route
from tests.support.paths import ROOT
from tests.support.replay_site import (
    ARTICLE,
    FIRST,
    HEADLINE,
    OTHER,
    PARAGRAPH,
    SECOND,
    Captured,
    capture,
    captured_archive,
    gone,
    shown,
    vanished,
)
from tests.support.site import FixtureSite


@pytest.fixture(scope="module")
def captured(tmp_path_factory: pytest.TempPathFactory) -> Captured:
    return captured_archive(tmp_path_factory.mktemp("replay") / "archives")


@pytest.fixture(scope="module")
def server(captured: Captured) -> Iterator[ReplayServer]:
    with Archive(captured.archive).replay(port=0) as running:
        yield running


@pytest.fixture(scope="module")
def browser(chromium: str) -> Iterator[Browser]:
    with Browser(LaunchSettings(Path(chromium))) as running:
        yield running


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    with Page.open(browser) as opened:
        yield opened


def get(
    server: ReplayServer, path: str, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    """One GET straight to the server (no proxy from the environment)."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        conn.request("GET", path, headers=headers or {})
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


def assert_shown(state: dict[str, object]) -> None:
    assert state.get("framed") is True, state  # pywb's banner above the page
    assert state["image"] == 64, state  # the PNG decoded: its natural width
    assert isinstance(state["readyState"], int) and state["readyState"] >= 2, state
    assert state["videoWidth"] == 160 and state["videoError"] is None, state


def test_the_replayed_article_shows_its_text_picture_and_video(
    server: ReplayServer, captured: Captured, page: Page
) -> None:
    state = shown(page, server.urls[0])
    assert_shown(state)
    assert HEADLINE in str(state["text"]) and PARAGRAPH in str(state["text"])
    # everything came from the replay server: nothing from the (stopped) site
    fetched = [r.url for r in page.requests if r.url.startswith(("http:", "https:"))]
    assert fetched and all(url.startswith(server.base_url + "/") for url in fetched), fetched
    assert any("/media/clip.mp4" in url for url in fetched)


def test_each_capture_is_listed_by_its_page_at_the_time_it_was_recorded(
    server: ReplayServer, captured: Captured
) -> None:
    assert server.loopback and server.host == "127.0.0.1" and server.port > 0
    assert server.base_url == f"http://127.0.0.1:{server.port}"
    assert server.plan.capture_ids == [FIRST, SECOND]
    assert server.plan.pages == [
        ReplayPage(FIRST, captured.article_url, "20200812100000"),
        ReplayPage(SECOND, captured.other_url, "20200813100000"),
    ]
    # each capture in a collection of its own, named by its id
    assert server.urls == [
        f"{server.base_url}/{FIRST}/20200812100000/{captured.article_url}",
        f"{server.base_url}/{SECOND}/20200813100000/{captured.other_url}",
    ]
    doc = json.loads(json.dumps(server.to_json()))
    assert doc["port"] == server.port and doc["captures"] == [FIRST, SECOND]
    assert [p["replay_url"] for p in doc["pages"]] == server.urls
    assert [p["collection"] for p in doc["pages"]] == [FIRST, SECOND]
    assert doc["pages"][0]["raw_url"].endswith(f"/{FIRST}/20200812100000id_/{captured.article_url}")
    assert "live web" in doc["raw_url_note"] and "archiver verify" in doc["notice"]
    assert doc["all_captures"] == {"collection": COLLECTION, "url": f"{server.base_url}/archive/"}
    assert doc["left_out"] == [] and doc["notes"] == []
    assert 0 < server.startup_seconds < 30
    assert server.temp_dir.name.startswith(TEMP_PREFIX) and server.running()


def test_the_page_is_served_as_captured_and_none_of_our_records_shadows_it(
    server: ReplayServer, captured: Captured
) -> None:
    page = server.plan.pages[0]
    status, headers, body = get(server, page.raw_path)
    assert status == 200 and headers["content-type"].startswith("text/html")
    assert body == ARTICLE.encode()
    status, headers, video = get(
        server, f"/{FIRST}/{page.timestamp}id_/{captured.base}/media/clip.mp4"
    )
    assert status == 200 and headers["content-type"] == "video/mp4"
    assert hashlib.sha256(video).hexdigest() == hashlib.sha256(captured.video).hexdigest()
    # pywb's own index holds the page's URL for the page's response alone, in the
    # capture's collection and in the one of every capture
    for collection in (FIRST, COLLECTION):
        status, _, listing = get(server, f"/{collection}/cdx?url={quote(page.url)}&output=json")
        entries = [json.loads(line) for line in listing.splitlines() if line.strip()]
        assert status == 200
        assert [(e["mime"], e["status"]) for e in entries] == [("text/html", "200")], entries
    # our own records are in the archive, and not in what pywb is given
    ours = query.run(
        captured.archive, "select url from records where warc_type = 'metadata'", None
    ).rows
    assert ours and all(row["url"].startswith("urn:archiver-") for row in ours)
    assert not [line for line in server.plan.lines if b"urn:archiver-" in line]


def test_a_capture_named_alone_replays_whole_with_the_records_its_revisits_stand_for(
    captured: Captured, page: Page
) -> None:
    revisits = query.run(
        captured.archive,
        "select url from records where capture_id = ? and warc_type = 'revisit'",
        [SECOND],
    ).rows
    assert sorted(r["url"] for r in revisits) == [
        captured.base + "/img/photo.png",
        captured.base + "/media/clip.mp4",
    ]
    with Archive(captured.archive).replay([SECOND], port=0) as alone:
        assert alone.plan.capture_ids == [SECOND]
        assert alone.urls == [f"{alone.base_url}/{SECOND}/20200813100000/{captured.other_url}"]
        docs = [json.loads(line.split(b" ", 2)[2]) for line in alone.plan.lines]
        # the first capture's records are not listed: the revisits name their originals
        assert {doc["url"] for doc in docs} == {
            captured.other_url,
            captured.base + "/img/photo.png",
            captured.base + "/media/clip.mp4",
        }
        revisits = [doc for doc in docs if "orig.filename" in doc]
        assert sorted(doc["mime"] for doc in revisits) == ["image/png", "video/mp4"]
        assert all(doc["orig.filename"].startswith(f"default/{FIRST}") for doc in revisits)
        state = shown(page, alone.urls[0])
        assert_shown(state)
        assert "The same video, elsewhere" in str(state["text"])
        for collection in (SECOND, COLLECTION):
            status, _, _ = get(alone, f"/{collection}/20200812100000id_/{captured.article_url}")
            assert status == 404
        status, _, body = get(alone, alone.plan.pages[0].raw_path)
        assert status == 200 and body == OTHER.encode()


def test_an_imported_warc_replays(tmp_path: Path) -> None:
    archive = Archive(tmp_path / "archives")
    done = archive.import_([ROOT / "tests" / "data" / "example.warc.gz"])
    (imported,) = done.result
    capture_id = getattr(imported, "capture_id", None)
    assert capture_id and capture_id.startswith("import-")
    with archive.replay([capture_id], port=0) as server:
        assert server.plan.pages == [
            ReplayPage(capture_id, "http://example.com/", "20170306040206")
        ]
        status, headers, body = get(server, server.plan.pages[0].raw_path)
        assert status == 200 and headers["content-type"] == "text/html"
        assert b"<title>Example Domain</title>" in body
        # its revisit, of another date, is resolved by pywb to the same page
        status, _, again = get(server, f"/{capture_id}/20170306040348id_/http://example.com/")
        assert status == 200 and again == body


def test_closing_stops_pywb_and_removes_its_files(captured: Captured) -> None:
    server = Archive(captured.archive).replay([FIRST], port=0)
    with server:
        pid, temp_dir = server.pid, server.temp_dir
        config = json.loads((temp_dir / "config.yaml").read_text("utf-8"))
        root = temp_dir / "collections"
        assert config["collections_root"] == str(root)
        assert sorted(p.name for p in root.iterdir()) == sorted([FIRST, COLLECTION])
        for name in (FIRST, COLLECTION):
            # the archive's own WARC files, read in place
            assert (root / name / "archive").readlink() == captured.archive.resolve() / "warc"
            assert (root / name / "indexes" / "index.cdxj").read_bytes() == b"".join(
                line + b"\n" for line in server.plan.lines
            )
    assert not server.running()
    assert gone(pid, seconds=0)
    assert not temp_dir.exists()
    server.close()  # again: nothing to do


def test_pywb_stopping_by_itself_is_a_failure_with_its_last_words(captured: Captured) -> None:
    with Archive(captured.archive).replay([FIRST], port=0) as server:
        assert get(server, server.plan.pages[0].raw_path)[0] == 200
        os.kill(server.pid, signal.SIGKILL)
        with pytest.raises(
            ReplayFailed,
            match=r"pywb stopped \(exit code -9\); its last words: .*\"GET / HTTP/1.1\" 200",
        ):
            server.wait(timeout=10)
        temp_dir = server.temp_dir
    assert not temp_dir.exists()


def test_a_busy_port_is_said_before_anything_starts(captured: Captured) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        server = Archive(captured.archive).replay(port=port)
        started = time.monotonic()
        with pytest.raises(ReplayFailed, match=f"port {port} on 127.0.0.1 is in use.*--port"):
            server.__enter__()
        assert time.monotonic() - started < 1
        assert server.pid == 0 and server.temp_dir == Path()


def test_an_unknown_capture_or_address_is_a_usage_problem(captured: Captured) -> None:
    archive = Archive(captured.archive)
    with pytest.raises(UsageProblem, match="no capture '20990101000000-ffffffffff'"):
        archive.replay([FIRST, "20990101000000-ffffffffff"])
    with pytest.raises(UsageProblem, match="not an IP address") as raised:
        archive.replay(host="example.org")
    assert raised.value.hint == "--bind"
    with pytest.raises(UsageProblem, match="out of range"):
        archive.replay(port=70000)


KILLED = """
import sys, threading, time
from archiver import Archive
from archiver.capture.run import Capturer

def start():
    server = Archive(sys.argv[1]).replay([sys.argv[2]], port=0)
    server.start()
    page = server.url(server.plan.pages[0], raw=True)
    print(server.pid, server.temp_dir, page, flush=True)

if sys.argv[3] == "worker":
    threading.Thread(target=start).start()
else:
    start()
time.sleep(600)
"""


@pytest.mark.parametrize("thread", ["main", "worker"])
def test_pywb_ends_with_the_process_that_started_it_even_killed(
    captured: Captured, thread: str
) -> None:
    """SIGKILL leaves no time to clean up: pywb ends by itself and removes its files,
    told by the kernel (``PR_SET_PDEATHSIG``, set from the main thread) or by its stdin
    reaching its end (from any thread: the only way from a worker thread)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", KILLED, str(captured.archive), FIRST, thread],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        assert proc.stdout is not None
        pid, temp_dir, url = proc.stdout.readline().split()
        assert Path(temp_dir).is_dir()
        status, body = get_url(url)
        assert status == 200 and body == ARTICLE.encode()
    finally:
        proc.kill()
        proc.wait(timeout=10)
    assert gone(int(pid)), "pywb outlived the process that started it"
    assert vanished(Path(temp_dir))


def get_url(url: str) -> tuple[int, bytes]:
    host, _, path = url.removeprefix("http://").partition("/")
    name, _, port = host.partition(":")
    conn = http.client.HTTPConnection(name, int(port), timeout=30)
    try:
        conn.request("GET", "/" + path)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def test_the_fixture_article_reached_through_redirects_replays_at_its_final_url(
    site: FixtureSite, make_capturer: Callable[..., Capturer], tmp_path: Path
) -> None:
    """The project's fixture article (tests/support/site.py), captured from its entry URL
    (301, 302, then the page): the URL printed is the page's, the page and its media come
    back byte for byte (the 3 MiB video streamed when captured included), and its HLS
    master is rewritten to one rendition even when asked for by range."""
    capture = make_capturer().capture(site.url(site.ENTRY))
    page_url = site.url(site.ARTICLE)
    assert capture.final_url == page_url and len(capture.redirects) == 2
    with Archive(tmp_path / "archives").replay(port=0) as server:  # make_capturer's
        assert server.plan.pages == [ReplayPage(capture.capture_id, page_url, "20200812100000")]
        status, headers, body = get(server, server.plan.pages[0].raw_path)
        assert status == 200 and headers["content-type"].startswith("text/html")
        assert body == site.decoded_body(site.ARTICLE)
        for path in ("/img/lead.jpg", "/media/direct.mp4", "/media/large.mp4"):
            url = site.url(path)
            status, _, got = get(server, f"/{capture.capture_id}/20200812100000id_/{url}")
            assert status == 200, path
            assert hashlib.sha256(got).hexdigest() == site.served[url], path
        # Chromium's player asks for an HLS master with Range: bytes=0-; pywb would serve
        # that range as captured, every rendition listed: it is asked for it whole, and
        # rewrites it to the one captured (a video's range is still a range)
        master = f"/{capture.capture_id}/20200812100000oe_/{site.url('/hls/master.m3u8')}"
        status, _, listed = get(server, master.replace("oe_/", "id_/"))
        assert status == 200 and listed.count(b"#EXT-X-STREAM-INF") == 2
        status, headers, rewritten = get(server, master, {"Range": "bytes=0-"})
        assert status == 200 and rewritten.count(b"#EXT-X-STREAM-INF") == 1
        assert headers["content-type"] == "application/vnd.apple.mpegurl"
        video = f"/{capture.capture_id}/20200812100000oe_/{site.url('/media/large.mp4')}"
        status, headers, got = get(server, video, {"Range": "bytes=0-99"})
        assert status == 206 and len(got) == 100
        # the entry URL replays as the redirect it was
        entry = site.url(site.ENTRY)
        status, headers, _ = get(server, f"/{capture.capture_id}/20200812100000id_/{entry}")
        assert status == 301 and headers["location"].endswith(site.REDIRECT_HOP)


def test_a_capture_with_no_page_is_noted_and_alone_has_nothing_to_show(
    site: FixtureSite, make_capturer: Callable[..., Capturer], tmp_path: Path
) -> None:
    """A capture whose page was never reached (its seed redirected to a server that
    refused): indexed, failed, its redirect kept, and no page to open."""
    make_capturer().capture(site.url(site.ARTICLE))
    with socket.create_server(("127.0.0.1", 0)) as closed:
        nowhere = f"http://127.0.0.1:{closed.getsockname()[1]}/gone"
    moved = Route("", status=302, headers=(("Location", nowhere),))
    with PageServer(routes={"/moved": moved}) as elsewhere:
        failed = capture(
            tmp_path / "archives", elsewhere.url("/moved"), "20200814100000-00000000c3", 14
        )
    assert failed.status.value == "failed"
    archive = Archive(tmp_path / "archives")
    server = archive.replay()  # planned, not started
    assert server.plan.capture_ids == ["20200812100000-0123456789", "20200814100000-00000000c3"]
    assert [p.url for p in server.plan.pages] == [site.url(site.ARTICLE)]
    assert server.plan.notes == [
        "capture 20200814100000-00000000c3 has no page to open (no response for it)"
    ]
    alone = archive.replay(["20200814100000-00000000c3"])
    assert alone.plan.pages == [] and len(alone.plan.lines) == 1  # the 302


def test_captures_with_nothing_a_browser_can_show_are_a_failure(tmp_path: Path) -> None:
    """A WARC file of another tool holding only a warcinfo and a metadata record."""
    from warcio.warcwriter import WARCWriter

    made = tmp_path / "notes.warc.gz"
    with made.open("wb") as f:
        writer = WARCWriter(f, gzip=True)
        writer.write_record(writer.create_warcinfo_record("notes.warc.gz", {"software": "x"}))
        payload = io.BytesIO(b"a note, no page")
        writer.write_record(
            writer.create_warc_record(
                "urn:example:note", "metadata", payload=payload, warc_content_type="text/plain"
            )
        )
    archive = Archive(tmp_path / "archives")
    (imported,) = archive.import_([made]).result
    capture_id = getattr(imported, "capture_id", None)
    assert capture_id
    with pytest.raises(Failure, match=f"nothing to replay: captures {capture_id} holds no record"):
        archive.replay([capture_id])
    with pytest.raises(Failure, match="nothing to replay: the archive"):
        archive.replay()
