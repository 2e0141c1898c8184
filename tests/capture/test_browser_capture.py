"""Browser capture of a page built only by scripts: what the browser ran is kept, and
every byte stored is what the servers sent (real Chromium, real servers, no mocks)."""

from __future__ import annotations

import gzip
import io
import json
import struct
import subprocess
from collections.abc import Iterator
from pathlib import Path

import jsonschema
import pytest
from fastwarc.warc import ArchiveIterator as FastIterator
from pypdf import PdfReader

from archiver.capture.run import Capturer
from archiver.core.model import Capture, CaptureOptions, CaptureStatus
from archiver.web.http import dechunk
from tests.support.browser_site import APP_JS, ScriptSite
from tests.support.deterministic import fixed_signer
from tests.support.paths import ROOT
from tests.support.runner import BIN, run
from tests.support.warcs import ReadRecord, read_all, responses_by_url

pytestmark = pytest.mark.usefixtures("chromium")
SECRET = "s3cr3t-session-value"


@pytest.fixture(scope="module")
def browsed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ScriptSite, Capture]]:
    folder = tmp_path_factory.mktemp("browser")
    archive = folder / "archives"
    jar = folder / "cookies.txt"  # --cookies: the browser sends them; recorded redacted
    jar.write_text(
        f"# Netscape HTTP Cookie File\n127.0.0.1\tFALSE\t/\tFALSE\t0\tsession\t{SECRET}\n"
    )
    with ScriptSite() as site:
        options = CaptureOptions(
            archive_dir=archive,
            allow_private=True,
            browser=True,
            timeout=5,
            browser_timeout=20,
            platform_videos=False,
            cookies=jar,
        )
        capture = Capturer(options, signer=fixed_signer(), hostname="test-host").capture(
            site.url("/article")
        )
        yield site, capture


@pytest.fixture(scope="module")
def records(browsed: tuple[ScriptSite, Capture]) -> list[ReadRecord]:
    return read_all(browsed[1].warc_files)


def resource(records: list[ReadRecord], kind: str) -> ReadRecord:
    found = [r for r in records if (r.url or "").startswith(f"urn:{kind}:")]
    assert len(found) == 1, [r.url for r in records if r.type == "resource"]
    return found[0]


def test_the_capture_is_complete_and_names_the_browser(browsed: tuple[ScriptSite, Capture]) -> None:
    _site, capture = browsed
    assert capture.status is CaptureStatus.COMPLETE, (capture.failure, capture.errors)
    info = capture.browser
    assert info is not None
    assert info["interception_ca"].startswith("sha256:")
    assert "HeadlessChrome" not in info["user_agent"] and "Chrome/" in info["user_agent"]
    assert "--remote-debugging-pipe" in info["flags"]
    assert [b["name"] for b in info["behaviours"]][:2] == ["load", "network quiet"]


def test_what_scripts_fetched_is_stored_byte_exact(
    browsed: tuple[ScriptSite, Capture], records: list[ReadRecord]
) -> None:
    site, _ = browsed
    responses = responses_by_url(records)
    expected = {
        site.url("/media/clip.webm"): site.CLIP,
        site.url("/lazy/photo.png"): None,
        site.url("/player.json"): None,
        site.embed_url("/embed/post"): None,
        site.embed_url("/embed/video.webm"): site.EMBED_VIDEO,
    }
    for name, body in site.SEGMENT_BYTES.items():
        expected[site.url(f"/stream/{name}")] = body  # the player fetched only the first
    for url, body in expected.items():
        assert url in responses, f"{url} not captured"
        if body is not None:
            whole = [r for r in records if r.url == url and r.http_status == 200]
            assert whole and whole[-1].payload == body, url


def test_a_gzip_chunked_script_is_stored_exactly_as_sent(
    browsed: tuple[ScriptSite, Capture], records: list[ReadRecord]
) -> None:
    site, _ = browsed
    script = responses_by_url(records)[site.url("/app.js")]
    assert script.http_header("Transfer-Encoding") == "chunked"
    assert script.http_header("Content-Encoding") == "gzip"
    packed = gzip.compress(APP_JS.encode(), mtime=0)
    framed = (
        b"".join(
            f"{len(packed[i : i + 300]):x}\r\n".encode() + packed[i : i + 300] + b"\r\n"
            for i in range(0, len(packed), 300)
        )
        + b"0\r\n\r\n"
    )
    assert script.payload == framed  # chunk framing and compression as on the wire
    assert gzip.decompress(dechunk(script.payload)) == APP_JS.encode()


def test_screenshots_pdf_dom_and_text_are_kept_tied_to_the_page(
    browsed: tuple[ScriptSite, Capture], records: list[ReadRecord]
) -> None:
    site, capture = browsed
    page = responses_by_url(records)[site.url("/article")]
    for kind in ("view", "fullPage", "pdf", "dom", "text", "pageinfo"):
        rec = resource(records, kind)
        assert rec.type == "resource"
        assert rec.url == f"urn:{kind}:{site.url('/article')}"
        assert rec.get("WARC-Concurrent-To") == page.get("WARC-Record-ID")
    width, height = png_size(resource(records, "view").payload)
    assert (width, height) == (1366, 768)
    full_width, full_height = png_size(resource(records, "fullPage").payload)
    assert full_width == 1366 and full_height > 4000  # the whole page, spacer included
    pdf = PdfReader(io.BytesIO(resource(records, "pdf").payload))
    assert len(pdf.pages) >= 1
    assert "Protest in Minsk" in "".join(p.extract_text() for p in pdf.pages)
    dom = resource(records, "dom").payload.decode()
    assert "This paragraph was written by a script." in dom
    assert "Embedded post from another origin" in dom  # the cross-origin frame's DOM
    assert "Protest in Minsk" in resource(records, "text").payload.decode()
    pageinfo = json.loads(resource(records, "pageinfo").payload)
    by = {(r["url"], r["fetched_by"]) for r in pageinfo["requests"]}
    assert (site.url("/app.js"), "browser") in by
    roles = {r.url: r.role for r in capture.records if r.warc_type == "resource"}
    assert roles[f"urn:view:{site.url('/article')}"] == "screenshot"
    assert roles[f"urn:pdf:{site.url('/article')}"] == "pdf"


def test_no_background_request_was_recorded(
    browsed: tuple[ScriptSite, Capture], records: list[ReadRecord]
) -> None:
    site, _ = browsed
    origins = {site.url(""), site.embed_url("")}
    for rec in records:
        if rec.type in ("request", "response"):
            assert any((rec.url or "").startswith(o) for o in origins), rec.url


def test_cookies_reach_the_server_and_are_recorded_redacted(
    browsed: tuple[ScriptSite, Capture], records: list[ReadRecord]
) -> None:
    site, capture = browsed
    sent = dict(site.main.cookies)
    assert sent["/article"] == f"session={SECRET}" and sent["/app.js"] == f"session={SECRET}"
    requests = [r for r in records if r.type == "request"]
    assert any(r.http_header("Cookie") == "[redacted by archiver]" for r in requests)
    for path in capture.warc_files:
        assert SECRET.encode() not in path.read_bytes()  # in no record, compressed or not


def test_nothing_of_the_browser_s_own_left_the_proxy(browsed: tuple[ScriptSite, Capture]) -> None:
    _, capture = browsed
    assert capture.browser is not None
    # what Chromium tried of its own went to a proxy that refuses and lists everything
    for entry in capture.browser["blocked"]:
        assert entry["reason"].startswith("the browser's own traffic"), entry
        assert "127.0.0.1" not in entry["target"], entry  # the page's never went there
    recorded = " ".join(r.url or "" for r in capture.records)
    assert "google" not in recorded


def test_the_metadata_record_follows_its_schema(records: list[ReadRecord]) -> None:
    schema = json.loads((ROOT / "schemas" / "capture-metadata.v2.json").read_text("utf-8"))
    (metadata,) = [
        r for r in records if r.type == "metadata" and "archiver-metadata" in (r.url or "")
    ]
    doc = metadata.json()
    jsonschema.validate(doc, schema, cls=jsonschema.Draft202012Validator)
    assert doc["browser"]["network_quiet"] is True
    assert doc["options"]["browser"] is True


def test_videos_seen_in_the_traffic_are_listed(browsed: tuple[ScriptSite, Capture]) -> None:
    site, capture = browsed
    videos = {v.url: v for v in capture.videos}
    assert site.url("/media/clip.webm") in videos
    assert site.url("/stream/index.m3u8") in videos
    assert videos[site.url("/media/clip.webm")].payload_length == len(site.CLIP)


def test_independent_readers_and_verify_accept_it(
    browsed: tuple[ScriptSite, Capture], tmp_path: Path
) -> None:
    _, capture = browsed
    for path in capture.warc_files:
        with path.open("rb") as stream:
            for record in FastIterator(stream, parse_http=False):
                assert record.verify_block_digest(), record.record_id
        checked = subprocess.run(
            [str(BIN / "warcio"), "check", str(path)], capture_output=True, text=True
        )
        assert checked.returncode == 0, checked.stdout + checked.stderr
    archive = capture.warc_files[0].parents[2]
    done = run("verify", "--archive-dir", str(archive), "--format", "json")
    assert done.returncode == 0, done.stdout + done.stderr


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    return width, height
