"""Regressions from the review of ``archiver replay`` (pywb over our WARC files in place).

Each test is a finding, shown with real captures of a real site on loopback (stopped
before anything is replayed), WARC files written by another tool and imported, real
files damaged on disk, and a real pywb:

- F1: two captures of one URL in the same second each open their own page;
- F2: a WARC file missing, or a record that cannot be read, never lets pywb show another
  capture's page for the URL printed;
- F3: an index row naming a file outside ``warc/`` (``..``, a link) is refused;
- F4: a file of another size than its signed manifest says is left out, and replay says
  that it does not verify;
- F5: an HLS master captured without a ``.m3u8`` suffix is rewritten even when asked for
  by range (decided by its media type);
- F6: a response to a POST is never served for a GET of its URL;
- F7: the raw (``id_``) URLs are only in JSON, said to reach the live web;
- ``--bind`` with an address no browser can use is a usage problem at once.
"""

from __future__ import annotations

import gzip
import http.client
import io
import re
import shutil
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from archiver import Archive
from archiver.capture.run import Capturer
from archiver.core.errors import Failure, UsageProblem
from archiver.core.model import Capture, CaptureOptions
from archiver.index import query
from archiver.ops.replay import COLLECTION, NOT_VERIFIED, ReplayServer, plan, request_method
from tests.support.deterministic import FixedClock, fixed_signer, sequential_ids
from tests.support.pages import PageServer, Route
from tests.support.replay_site import png
from tests.support.runner import run

FIRST = "20200812100000-00000000a1"  # /page, VERSION-1
SECOND = "20200812100000-00000000b2"  # /page, VERSION-2, in the same second
STREAM = "20200812100000-00000000c3"  # an HLS master at /stream (no suffix)
STAMP = "20200812100000"
MASTER = (
    "#EXTM3U\n"
    "#EXT-X-STREAM-INF:BANDWIDTH=800000,RESOLUTION=640x360\n/low\n"
    "#EXT-X-STREAM-INF:BANDWIDTH=2000000,RESOLUTION=1280x720\n/high\n"
)


def media_playlist(name: str) -> str:
    return f"#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1.0,\n/seg/{name}.ts\n#EXT-X-ENDLIST\n"


def page(version: str) -> str:
    return (
        f"<!doctype html><html><head><title>{version}</title></head><body>"
        f"<h1>{version}</h1><img src='/img.png' width=64 height=48></body></html>"
    )


@dataclass
class Site:
    archive: Path
    base: str
    imported: str  # the capture id of the imported WARC with POSTs
    post_times: dict[str, str]  # what the imported WARC holds, by name: its 14 digits


def capture(archive: Path, url: str, capture_id: str, ids_from: int) -> Capture:
    """``url`` captured into ``archive`` as ``capture_id`` at 2020-08-12 10:00:00 UTC."""
    capturer = Capturer(
        CaptureOptions(archive_dir=archive, timeout=5.0, allow_private=True),
        clock=FixedClock(datetime(2020, 8, 12, 10, 0, tzinfo=UTC)),
        new_id=lambda moment: capture_id,
        new_record_id=sequential_ids(ids_from),
        hostname="test-host",
        signer=fixed_signer(),
    )
    done = capturer.capture(url)
    assert done.status.value == "complete", done.errors
    return done


def posts_warc(path: Path) -> dict[str, str]:
    """A WARC file of another tool (warcio) with a page, a POST answered at
    ``/beacon``, and ``/form`` answered to a GET and, later, to a POST: the request
    names its response (``WARC-Concurrent-To``) for the first, the response its request
    for the others."""
    from warcio.statusandheaders import StatusAndHeaders
    from warcio.warcwriter import WARCWriter

    times = {"page": "20210301120000", "beacon": "20210301120001"}
    times |= {"form-get": "20210301120002", "form-post": "20210301120005"}
    with path.open("wb") as f:
        writer = WARCWriter(f, gzip=True)

        def exchange(name: str, url: str, method: str, body: bytes, *, asked: bool) -> None:
            moment = times[name]
            date = f"{moment[:4]}-{moment[4:6]}-{moment[6:8]}T{moment[8:10]}:{moment[10:12]}:"
            date += f"{moment[12:]}Z"
            answer = StatusAndHeaders(
                "200 OK",
                [("Content-Type", "text/html"), ("Content-Length", str(len(body)))],
                protocol="HTTP/1.1",
            )
            response = writer.create_warc_record(
                url,
                "response",
                payload=io.BytesIO(body),
                http_headers=answer,
                warc_headers_dict={"WARC-Date": date},
            )
            target = url.split("example.org", 1)[1]
            sent = b"seen=1" if method == "POST" else b""
            head = StatusAndHeaders(
                f"{method} {target} HTTP/1.1",
                [("Host", "example.org"), ("Content-Length", str(len(sent)))],
                is_http_request=True,
            )
            request = writer.create_warc_record(
                url,
                "request",
                payload=io.BytesIO(sent),
                http_headers=head,
                warc_headers_dict={"WARC-Date": date},
            )
            if asked:
                request.rec_headers.add_header(
                    "WARC-Concurrent-To", response.rec_headers.get_header("WARC-Record-ID")
                )
            else:
                response.rec_headers.add_header(
                    "WARC-Concurrent-To", request.rec_headers.get_header("WARC-Record-ID")
                )
            writer.write_record(request)
            writer.write_record(response)

        exchange(
            "page", "http://example.org/", "GET", b"<html><h1>the page</h1></html>", asked=True
        )
        exchange("beacon", "http://example.org/beacon", "POST", b"BEACON-POSTED", asked=True)
        exchange("form-get", "http://example.org/form", "GET", b"FORM-GET", asked=False)
        exchange("form-post", "http://example.org/form", "POST", b"FORM-POSTED", asked=False)
    return times


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Site:
    folder = tmp_path_factory.mktemp("review-replay")
    archive = folder / "archives"
    routes = {
        "/page": Route(page("VERSION-1")),
        "/img.png": Route(png(seed="review"), "image/png"),
        "/hls": Route("<!doctype html><title>hls</title><video src='/stream'></video>"),
        "/stream": Route(MASTER, "application/vnd.apple.mpegurl"),
        "/low": Route(media_playlist("low"), "application/vnd.apple.mpegurl"),
        "/high": Route(media_playlist("high"), "application/vnd.apple.mpegurl"),
        "/seg/low.ts": Route(b"G" + bytes(187) * 4, "video/mp2t"),
        "/seg/high.ts": Route(b"G" + bytes(187) * 8, "video/mp2t"),
    }
    with PageServer(routes=routes) as server:
        base = server.url("")
        capture(archive, base + "/page", FIRST, 1000)
        routes["/page"] = Route(page("VERSION-2"))
        capture(archive, base + "/page", SECOND, 2000)
        capture(archive, base + "/hls", STREAM, 3000)
    made = folder / "posts.warc.gz"
    times = posts_warc(made)
    (imported,) = Archive(archive).import_([made]).result
    capture_id = getattr(imported, "capture_id", None)
    assert capture_id
    return Site(archive, base, capture_id, times)


@pytest.fixture(scope="module")
def server(site: Site) -> Iterator[ReplayServer]:
    with Archive(site.archive).replay(port=0) as running:
        yield running


def get(
    server: ReplayServer, path: str, headers: dict[str, str] | None = None
) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        conn.request("GET", path, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def copy(site: Site, tmp_path: Path) -> Path:
    target = tmp_path / "archives"
    shutil.copytree(site.archive, target)
    return target


def warc_of(archive: Path, capture_id: str) -> Path:
    (path,) = (archive / "warc" / "default").glob(f"{capture_id}-*.warc.gz")
    return path


def record(archive: Path, capture_id: str, url: str, warc_type: str = "response") -> dict[str, Any]:
    rows = query.run(
        archive,
        "select * from records where capture_id = ? and url = ? and warc_type = ?",
        [capture_id, url, warc_type],
    ).rows
    assert len(rows) == 1, rows
    return rows[0]


# F1 ------------------------------------------------------------------------------------
def test_two_captures_of_one_url_in_the_same_second_each_show_their_own_page(
    site: Site, server: ReplayServer
) -> None:
    url = site.base + "/page"
    first, second = (p for p in server.plan.pages if p.url == url)
    assert (first.capture_id, second.capture_id) == (FIRST, SECOND)
    assert first.timestamp == second.timestamp == STAMP  # a CDXJ time cannot tell them apart
    assert server.url(first) != server.url(second)
    assert server.url(first) == f"{server.base_url}/{FIRST}/{STAMP}/{url}"
    for shown, version in ((first, b"VERSION-1"), (second, b"VERSION-2")):
        status, body = get(server, shown.raw_path)
        assert status == 200 and version in body, (shown, body[:200])
        status, body = get(server, shown.path.replace(f"/{STAMP}/", f"/{STAMP}mp_/"))
        assert status == 200 and version in body  # the page as framed replay shows it
    # the second capture's picture is a revisit of the first's: served from its record
    status, picture = get(server, f"/{SECOND}/{STAMP}id_/{site.base}/img.png")
    assert status == 200 and picture == png(seed="review")


# F2 ------------------------------------------------------------------------------------
def test_a_missing_warc_file_leaves_out_its_capture_and_those_needing_it(
    site: Site, tmp_path: Path
) -> None:
    archive = copy(site, tmp_path)
    gone = warc_of(archive, FIRST)
    gone.unlink()
    name = gone.relative_to(archive).as_posix()
    made = plan(archive)
    assert made.left_out == {
        FIRST: f"{name} is missing",
        SECOND: f"its revisits stand for records of capture {FIRST}, and {name} is missing",
    }
    assert made.capture_ids == [STREAM, site.imported]
    assert f"capture {FIRST} left out: {name} is missing" in made.notes
    assert {p.capture_id for p in made.pages} == {STREAM, site.imported}
    assert FIRST not in made.collections and SECOND not in made.collections
    assert not [line for line in made.lines if b"/page" in line]
    # named alone, nothing is left to replay: said in one line, with the reason
    with pytest.raises(
        Failure, match=re.escape(f"nothing to replay: capture {FIRST} left out: {name}")
    ):
        plan(archive, [FIRST])


def test_a_record_that_cannot_be_read_is_never_stood_in_for_by_another_capture(
    site: Site, tmp_path: Path
) -> None:
    """The first capture's page record zeroed in place (same size: every check before
    pywb starts passes): its URL gives an error, never the second capture's page."""
    archive = copy(site, tmp_path)
    row = record(archive, FIRST, site.base + "/page")
    with warc_of(archive, FIRST).open("r+b") as f:
        f.seek(row["warc_offset"])
        f.write(bytes(row["warc_length"]))
    with Archive(archive).replay([FIRST, SECOND], port=0) as replaying:
        assert replaying.plan.left_out == {}
        first = next(p for p in replaying.plan.pages if p.capture_id == FIRST)
        status, body = get(replaying, first.raw_path)
        assert status != 200 and b"VERSION-2" not in body, (status, body[:300])
        second = next(p for p in replaying.plan.pages if p.capture_id == SECOND)
        status, body = get(replaying, second.raw_path)
        assert status == 200 and b"VERSION-2" in body


# F3 ------------------------------------------------------------------------------------
def rewrite_row(archive: Path, capture_id: str, url: str, warc_filename: str) -> None:
    """The index row of ``capture_id``'s response at ``url`` names another file."""
    path = archive / "index" / "records" / f"{capture_id}.parquet"
    table = pq.read_table(path)
    rows = table.to_pylist()
    for row in rows:
        if row["url"] == url and row["warc_type"] == "response":
            row["warc_filename"] = warc_filename
    pq.write_table(pa.Table.from_pylist(rows, schema=table.schema), path)


@pytest.mark.parametrize("how", ["dot-dot", "link"])
def test_an_index_row_naming_a_file_outside_warc_is_refused(
    site: Site, tmp_path: Path, how: str
) -> None:
    archive = copy(site, tmp_path)
    outside = tmp_path / "outside" / "evil.warc.gz"
    outside.parent.mkdir()
    shutil.copy(warc_of(archive, FIRST), outside)  # a real WARC: pywb would serve it
    if how == "dot-dot":
        name = "warc/../../outside/evil.warc.gz"
        why = f"its index names {name!r}, not a file under the archive's warc/ directory"
    else:
        name = "warc/default/evil.warc.gz"
        (archive / name).symlink_to(outside)
        why = f"its index names {name!r}, which leads outside the archive's warc/ directory"
    rewrite_row(archive, FIRST, site.base + "/page", name)
    made = plan(archive)
    assert made.left_out == {FIRST: why}
    assert f"capture {FIRST} left out: {why}" in made.notes
    assert FIRST not in made.capture_ids and SECOND in made.capture_ids
    assert not [line for line in made.lines if b"evil" in line or b".." in line]


# F4 ------------------------------------------------------------------------------------
def test_a_file_of_another_size_than_signed_is_left_out_and_replay_says_it_does_not_verify(
    site: Site, tmp_path: Path
) -> None:
    archive = copy(site, tmp_path)
    path = warc_of(archive, FIRST)
    row = record(archive, FIRST, site.base + "/page")
    data = path.read_bytes()
    start, end = row["warc_offset"], row["warc_offset"] + row["warc_length"]
    member = zlib.decompress(data[start:end], 16 + zlib.MAX_WBITS)
    altered = gzip.compress(member.replace(b"VERSION-1", b"VERSION-X"), compresslevel=1)
    assert len(altered) != end - start
    path.write_bytes(data[:start] + altered + data[end:])
    signed = len(data)
    (manifest,) = (archive / "warc" / "default").glob(f"{STREAM}.manifest.json")
    manifest.unlink()
    made = plan(archive)
    name = path.relative_to(archive).as_posix()
    assert made.left_out[FIRST] == (
        f"{name} is {len(data) - (end - start) + len(altered)} bytes; its signed manifest "
        f"says {signed}"
    )
    assert STREAM in made.capture_ids  # sizes unchecked without a manifest: said
    assert (
        f"capture {STREAM}: its signed manifest {manifest.name} is missing, so the sizes of "
        "its files are not checked"
    ) in made.notes
    # what replay cannot see it says: at start and in its help
    doc = ReplayServer(made, port=0).to_json()
    assert doc["notice"] == NOT_VERIFIED and "archiver verify" in NOT_VERIFIED
    assert {item["capture_id"] for item in doc["left_out"]} == {FIRST, SECOND}
    done = run("replay", "--help")
    said = " ".join(done.stdout.split())  # as wrapped to the terminal
    assert done.returncode == 0 and "Replay does not verify" in said
    assert "`archiver verify` says whether that is what was signed" in said


# F5 ------------------------------------------------------------------------------------
def test_an_hls_master_without_its_suffix_is_rewritten_when_asked_for_by_range(
    site: Site, server: ReplayServer
) -> None:
    master = f"/{STREAM}/{STAMP}oe_/{site.base}/stream"
    status, listed = get(server, master.replace("oe_/", "id_/"))
    assert status == 200 and listed.count(b"#EXT-X-STREAM-INF") == 2  # as captured
    status, rewritten = get(server, master, {"Range": "bytes=0-"})
    assert status == 200 and rewritten.count(b"#EXT-X-STREAM-INF") == 1, rewritten
    assert b"/high" in rewritten and b"/low" not in rewritten  # the rendition captured
    # a segment asked for by range is still a range
    status, part = get(
        server, f"/{STREAM}/{STAMP}oe_/{site.base}/seg/high.ts", {"Range": "bytes=0-9"}
    )
    assert status == 206 and len(part) == 10


# F6 ------------------------------------------------------------------------------------
def test_a_response_to_a_post_is_never_served_for_a_get(site: Site, server: ReplayServer) -> None:
    at = site.post_times
    assert (
        "responses to requests other than GET left out (2 POST): replay answers a GET with "
        "what a GET received"
    ) in server.plan.notes
    status, body = get(server, f"/{site.imported}/{at['beacon']}id_/http://example.org/beacon")
    assert status == 404 and b"BEACON-POSTED" not in body
    # the POST is nearer in time; the GET's answer is what a GET gets
    status, body = get(server, f"/{site.imported}/{at['form-post']}id_/http://example.org/form")
    assert status == 200 and body == b"FORM-GET"
    status, body = get(server, f"/{site.imported}/{at['page']}id_/http://example.org/")
    assert status == 200 and b"the page" in body
    posted = [line for line in server.plan.lines if b"POSTED" in line or b"/beacon" in line]
    assert posted == []
    # of the imported file's HTML responses, those to a GET are its pages
    assert [(p.url, p.timestamp) for p in server.plan.pages if p.capture_id == site.imported] == [
        ("http://example.org/", at["page"]),
        ("http://example.org/form", at["form-get"]),
    ]


def test_a_response_whose_request_cannot_be_read_is_left_out(site: Site, tmp_path: Path) -> None:
    archive = copy(site, tmp_path)
    row = record(archive, SECOND, site.base + "/page", "request")
    with warc_of(archive, SECOND).open("r+b") as f:
        f.seek(row["warc_offset"] + 10)  # past the gzip header: a corrupt member
        f.write(b"\xff" * 32)
    made = plan(archive, [FIRST, SECOND])
    assert "responses left out (1): their request record cannot be read" in made.notes
    assert [p.capture_id for p in made.pages] == [FIRST]
    assert f"capture {SECOND} has no page to open (no response for it)" in made.notes


def test_the_method_is_read_from_the_request_record_gzipped_or_not(tmp_path: Path) -> None:
    from warcio.statusandheaders import StatusAndHeaders
    from warcio.warcwriter import WARCWriter

    for gzipped in (True, False):
        buffer = io.BytesIO()
        writer = WARCWriter(buffer, gzip=gzipped)
        places = []
        for method in ("PUT", "GET"):
            head = StatusAndHeaders(
                f"{method} /x HTTP/1.1", [("Host", "example.org")], is_http_request=True
            )
            made = writer.create_warc_record(
                "http://example.org/x", "request", payload=io.BytesIO(b""), http_headers=head
            )
            start = buffer.tell()
            writer.write_record(made)
            places.append((start, buffer.tell() - start))
        note = writer.create_warc_record(
            "urn:x",
            "metadata",
            payload=io.BytesIO(b"GET / HTTP/1.1"),
            warc_content_type="text/plain",
        )
        start = buffer.tell()
        writer.write_record(note)
        places.append((start, buffer.tell() - start))
        path = tmp_path / f"requests-{gzipped}.warc"
        path.write_bytes(buffer.getvalue())
        with path.open("rb") as f:
            assert [request_method(f, *place) for place in places] == ["PUT", "GET", ""]


# F7 ------------------------------------------------------------------------------------
def test_raw_urls_are_only_in_json_and_said_to_reach_the_live_web(
    site: Site, server: ReplayServer
) -> None:
    doc = server.to_json()
    assert len(doc["pages"]) == len(server.plan.pages)
    for item, shown in zip(doc["pages"], server.plan.pages, strict=True):
        assert item["raw_url"] == server.url(shown, raw=True)
        assert (
            item["raw_url"]
            == f"{server.base_url}/{shown.capture_id}/{shown.timestamp}id_/{shown.url}"
        )
    assert "not rewritten" in doc["raw_url_note"] and "live web" in doc["raw_url_note"]
    assert all("id_/" not in url for url in server.urls)  # what text mode prints
    assert doc["all_captures"] == {"collection": COLLECTION, "url": f"{server.base_url}/archive/"}


# --bind --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("address", "why"),
    [
        ("224.0.0.1", "a multicast address"),
        ("ff02::1", "a multicast address"),
        ("255.255.255.255", "the broadcast address"),
        ("fe80::1%lo", "an IPv6 link-local address"),
        ("fe80::1", "an IPv6 link-local address"),
        ("::ffff:127.0.0.1", "an IPv4-mapped address (give 127.0.0.1 itself)"),
        ("240.0.0.1", "a reserved address"),
    ],
)
def test_an_address_no_browser_can_use_is_a_usage_problem(
    site: Site, address: str, why: str
) -> None:
    with pytest.raises(
        UsageProblem, match=re.escape(f"cannot listen on {address}: {why}")
    ) as raised:
        Archive(site.archive).replay(host=address, port=0)
    assert raised.value.hint == "--bind"


def test_bind_to_multicast_exits_2_at_once(site: Site) -> None:
    started = time.monotonic()
    where = ("--archive-dir", str(site.archive), "--port", "0")
    done = run("replay", *where, "--bind", "224.0.0.1", timeout=30)
    assert done.returncode == 2 and done.stdout == ""
    assert "cannot listen on 224.0.0.1: a multicast address" in done.stderr
    assert done.stderr.count("\n") == 1 and "Errno" not in done.stderr, done.stderr
    assert time.monotonic() - started < 30
