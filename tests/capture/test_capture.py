"""Capturing the fixture article end to end, checked with independent readers."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import jsonschema
import pytest
from fastwarc.warc import ArchiveIterator as FastIterator

from archiver.capture.run import METADATA_SCHEMA, Capturer
from archiver.core.model import Capture, CaptureOptions, CaptureStatus
from archiver.warc.rules import check_record
from tests.support.deterministic import FixedClock, fixed_signer, sequential_ids
from tests.support.paths import ROOT
from tests.support.site import FixtureSite
from tests.support.warcs import ReadRecord, read_all, responses_by_url

BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[FixtureSite, Capture]]:
    """One site for the module, and one capture of its article that the tests only read
    (each capture waits 1.5 s for the requisite that never answers)."""
    with FixtureSite(slow_seconds=0.3, large_video_bytes=3 * 1024 * 1024 + 17) as s:
        options = CaptureOptions(
            archive_dir=tmp_path_factory.mktemp("article") / "archives",
            timeout=1.5,
            concurrency=4,
            allow_private=True,  # the fixture site is on 127.0.0.1
        )
        capturer = Capturer(
            options,
            clock=FixedClock(),
            new_id=lambda moment: "20200812100000-0123456789",
            new_record_id=sequential_ids(),
            hostname="test-host",
            signer=fixed_signer(),
        )
        yield s, capturer.capture(s.url(s.ENTRY))


@pytest.fixture
def site(shared: tuple[FixtureSite, Capture]) -> FixtureSite:
    return shared[0]


@pytest.fixture
def article(shared: tuple[FixtureSite, Capture]) -> Capture:
    return shared[1]


def records_of(capture: Capture) -> list[ReadRecord]:
    return read_all(capture.warc_files)


def test_every_requisite_and_video_is_stored_byte_exact(
    site: FixtureSite, article: Capture
) -> None:
    records = records_of(article)
    responses = responses_by_url(records)
    for path in site.REQUISITES + site.VIDEOS:
        url = site.url(path)
        assert url in responses, f"{path} not captured"
        rec = responses[url]
        assert rec.http_status == 200, path
        # the payload as stored is the body as served, and its digest is stated right
        assert rec.payload_sha256 == site.served[url] == site.expected_payload_sha256(path)
        assert rec.get("WARC-Payload-Digest") == "sha256:" + site.served[url]
    for path in site.NOT_FETCHED:
        assert site.url(path) not in responses, f"{path} must not be fetched"
        assert path not in site.requests
    for url in site.EXTERNAL_OUTLINKS:
        assert url not in responses


def test_redirect_hops_are_recorded_as_evidence(site: FixtureSite, article: Capture) -> None:
    responses = responses_by_url(records_of(article))
    assert responses[site.url(site.ENTRY)].http_status == 301
    assert responses[site.url(site.REDIRECT_HOP)].http_status == 302
    assert responses[site.url(site.ARTICLE)].http_status == 200
    assert article.final_url == site.url(site.ARTICLE)
    assert article.redirects == [site.url(site.ENTRY), site.url(site.REDIRECT_HOP)]
    roles = {r.url: r.role for r in article.records if r.warc_type == "response"}
    assert roles[site.url(site.ENTRY)] == "redirect"
    assert roles[site.url(site.ARTICLE)] == "page"


def test_status_errors_and_404(site: FixtureSite, article: Capture) -> None:
    # the never-answering script makes the capture partial, not failed
    assert article.status is CaptureStatus.PARTIAL
    assert [e.url for e in article.errors] == [site.url(p) for p in site.HANGING]
    assert "timed out" in article.errors[0].reason
    responses = responses_by_url(records_of(article))
    missing = responses[site.url(site.MISSING[0])]
    assert missing.http_status == 404
    assert missing.payload_sha256 == site.served[site.url(site.MISSING[0])]


def test_page_metadata_decoded_from_windows_1251(article: Capture) -> None:
    assert article.title == "Беларусь: видеообращение сотрудника МЧС"
    assert article.language == "ru"
    assert article.published_at == "2020-08-12T10:00:00Z"
    assert article.author


def test_metadata_record_lists_videos_outlinks_and_errors(
    site: FixtureSite, article: Capture
) -> None:
    records = records_of(article)
    meta = [r for r in records if r.type == "metadata"]
    assert len(meta) == 1 and records[-1] is meta[0]
    doc = meta[0].json()
    assert doc["capture_id"] == article.capture_id
    assert doc["seed_url"] == site.url(site.ENTRY)
    assert doc["final_url"] == site.url(site.ARTICLE)
    assert doc["status"] == "partial"
    assert doc["started_at"] < doc["finished_at"]
    via = {v["url"]: v["via"] for v in doc["videos"]}
    expected_via = {
        "/media/direct.mp4": "video[src]",
        "/media/source-a.webm": "video>source[src]",
        "/media/source-b.mp4": "video>source[src]",
        "/media/og.mp4": "meta[og:video]",
        "/media/og-url.mp4": "meta[og:video:url]",
        "/media/og-secure.mp4": "meta[og:video:secure_url]",
        "/media/tw-stream.mp4": "meta[twitter:player:stream]",
        "/media/jsonld.mp4": "json-ld VideoObject.contentUrl",
        "/embed/clip.mp4": "video[src]",
        "/hls/master.m3u8": "video[src]",
        "/dash/manifest.mpd": "video>source[src]",
        "/media/large.mp4": "video[src]",
    }
    assert via == {site.url(p): v for p, v in expected_via.items()}
    found_on = {v["url"]: v["found_on"] for v in doc["videos"]}
    assert found_on[site.url("/embed/clip.mp4")] == site.url(site.EMBED)
    for video in doc["videos"]:
        assert video["http_status"] == 200
        assert video["payload_sha256"] == site.served[video["url"]]
    assert site.url("/other-article") in doc["outlinks"]
    assert "https://example.org/elsewhere" in doc["outlinks"]
    assert [e["url"] for e in doc["errors"]] == [site.url(p) for p in site.HANGING]
    assert doc["page"]["language"] == "ru"
    assert doc["tool"]["name"] == "archiver"


def test_metadata_record_matches_its_published_schema(article: Capture) -> None:
    schema = json.loads((ROOT / "schemas" / "capture-metadata.v2.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    (meta,) = [r for r in records_of(article) if r.type == "metadata"]
    doc = meta.json()
    jsonschema.validate(doc, schema, cls=jsonschema.Draft202012Validator)
    assert doc["schema"] == METADATA_SCHEMA
    # the schema documents every key the record has
    assert set(doc) <= set(schema["properties"])


def test_records_follow_warc_1_1_field_rules(article: Capture) -> None:
    records = records_of(article)
    for rec in records:
        assert check_record(rec.version, rec.headers) == [], (rec.type, rec.url)
    assert records[0].type == "warcinfo"
    ids = {r.get("WARC-Record-ID"): r for r in records}
    for rec in records:
        if rec.type in ("request", "response"):
            partner = ids[rec.get("WARC-Concurrent-To")]
            assert partner.get("WARC-Concurrent-To") == rec.get("WARC-Record-ID")
            assert {rec.type, partner.type} == {"request", "response"}
            assert rec.get("WARC-IP-Address") == "127.0.0.1"
            assert rec.get("WARC-Warcinfo-ID") == records[0].get("WARC-Record-ID")
            assert (rec.get("WARC-Block-Digest") or "").startswith("sha256:")
        if rec.type == "response":
            assert rec.get("Content-Type") == "application/http;msgtype=response"
            assert rec.all("WARC-Protocol") == ["http/1.1"]
    info = records[0].block or b""
    assert b"software: archiver/" in info
    assert b"isPartOf: default" in info


def test_http_messages_kept_exactly_as_received(site: FixtureSite, article: Capture) -> None:
    responses = responses_by_url(records_of(article))
    js = responses[site.url("/static/js/app.js")]
    assert js.http_header("Transfer-Encoding") == "chunked"
    assert js.payload.startswith(b"1\r\n")  # chunk framing kept as received
    assert js.payload.endswith(b"0\r\n\r\n")
    css = responses[site.url("/static/css/main.css")]
    assert css.http_header("Content-Encoding") == "gzip"
    assert css.payload[:2] == b"\x1f\x8b"  # still gzip: stored as served
    page = responses[site.url(site.ARTICLE)]
    assert "Беларусь".encode("cp1251") in page.payload


def test_independent_tools_accept_the_warcs(site: FixtureSite, article: Capture) -> None:
    for path in article.warc_files:
        check = subprocess.run(
            [BIN / "warcio", "check", "-v", str(path)], capture_output=True, text=True
        )
        assert check.returncode == 0, check.stdout + check.stderr
        fast = subprocess.run(
            [BIN / "fastwarc", "check", "--verify-payloads", "-q", str(path)],
            capture_output=True,
            text=True,
        )
        assert fast.returncode == 0, fast.stdout + fast.stderr
        # FastWARC checks block digests on unparsed records, payload digests on parsed ones
        with path.open("rb") as fh:
            blocks = [r.verify_block_digest() for r in FastIterator(fh, parse_http=False)]
        assert blocks and all(blocks)
        with path.open("rb") as fh:
            payloads = [
                r.verify_payload_digest()
                for r in FastIterator(fh, parse_http=True)
                if r.headers.get("WARC-Payload-Digest")
            ]
        assert payloads and all(payloads)
        assert len(blocks) == len(read_all([path]))
        cdx = subprocess.run(
            [BIN / "cdxj-indexer", str(path)], capture_output=True, text=True, check=True
        )
        lines = [json.loads(line.split(" ", 2)[2]) for line in cdx.stdout.splitlines()]
        indexed = {entry["url"] for entry in lines}
        for p in site.REQUISITES + site.VIDEOS:
            assert site.url(p) in indexed
        for entry in lines:
            if entry["url"] == site.url("/hls/high/seg0.m4s"):
                assert entry["digest"] == "sha256:" + site.served[entry["url"]]


def test_gzip_members_one_per_record(article: Capture) -> None:
    import zlib

    for path in article.warc_files:
        data = path.read_bytes()
        records = read_all([path])
        offsets = [r.offset for r in records]
        # every indexed offset decompresses on its own, into exactly one record
        for rec in records:
            member = data[rec.offset : rec.offset + rec.length]
            dec = zlib.decompressobj(31)
            text = dec.decompress(member)
            assert dec.eof and not dec.unused_data
            assert text.startswith(b"WARC/1.1\r\n")
        assert offsets == sorted(offsets)
    assert not list(Path(article.warc_files[0]).parent.glob("*.open"))


def test_capture_record_entries_match_the_files(article: Capture) -> None:
    by_id = {r.get("WARC-Record-ID"): r for r in records_of(article)}
    assert len(by_id) == len(article.records)  # warcinfo included
    assert sum(e.warc_type == "warcinfo" for e in article.records) == len(article.warc_files)
    for entry in article.records:
        rec = by_id[entry.record_id]
        assert rec.offset == entry.warc_offset
        assert rec.length == entry.warc_length
        assert rec.path.name == entry.warc_filename
        # the record's full bytes as stored, hashed independently of the writer
        stored = rec.path.read_bytes()[rec.offset : rec.offset + rec.length]
        assert hashlib.sha256(stored).hexdigest() == entry.record_sha256
        if entry.warc_type == "response":
            assert rec.payload_sha256 == entry.payload_sha256


def test_slow_requisite_does_not_hold_up_the_others(
    site: FixtureSite, make_capturer: Callable[..., Capturer]
) -> None:
    import time

    start = time.monotonic()
    capture = make_capturer(timeout=1.0, concurrency=4).capture(site.url(site.ENTRY))
    elapsed = time.monotonic() - start
    # the hanging script costs one timeout (1 s) in parallel with everything else
    assert elapsed < 6, elapsed
    assert site.url(site.SLOW) in {r.url for r in capture.records}


def test_warc_rotation_never_splits_records(
    site: FixtureSite, make_capturer: Callable[..., Capturer]
) -> None:
    capture = make_capturer(warc_max_size=64 * 1024).capture(site.url(site.ENTRY))
    assert len(capture.warc_files) >= 3
    names = [p.name for p in capture.warc_files]
    assert names == sorted(names)
    assert names[0].endswith("-00000.warc.gz")
    total = 0
    for path in capture.warc_files:
        records = read_all([path])
        assert records[0].type == "warcinfo"
        assert records[0].get("WARC-Filename") == path.name
        total += len(records)
        # a file is only allowed past the limit by the one record that crossed it
        assert path.stat().st_size - records[-1].length < 64 * 1024
    assert total == len(capture.records)
    responses = responses_by_url(read_all(capture.warc_files))
    for path in site.VIDEOS:
        assert responses[site.url(path)].payload_sha256 == site.served[site.url(path)]


def test_max_size_truncates_and_says_so(
    site: FixtureSite, make_capturer: Callable[..., Capturer]
) -> None:
    capture = make_capturer(max_size=1_000_000).capture(site.url(site.ENTRY))
    responses = responses_by_url(read_all(capture.warc_files))
    large = responses[site.url(site.LARGE_VIDEO)]
    assert large.get("WARC-Truncated") == "length"
    assert len(large.payload) == 1_000_000
    small = responses[site.url("/favicon.ico")]
    assert small.get("WARC-Truncated") is None
    summary = capture.summary()
    assert site.url(site.LARGE_VIDEO) in summary["truncated"]
    entry = next(
        r
        for r in capture.records
        if r.url == site.url(site.LARGE_VIDEO) and r.warc_type == "response"
    )
    assert entry.truncated == "length" and entry.payload_length == 1_000_000


def test_a_video_url_captured_directly_is_listed_as_the_video(
    site: FixtureSite, make_capturer: Callable[..., Capturer]
) -> None:
    url = site.url(site.LARGE_VIDEO)
    capture = make_capturer().capture(url)
    assert capture.status is CaptureStatus.COMPLETE
    (video,) = capture.videos
    assert (video.url, video.via, video.role) == (url, "seed", "video")
    assert video.payload_sha256 == site.served[url]


def test_an_hls_manifest_captured_directly_brings_its_segments(
    site: FixtureSite, make_capturer: Callable[..., Capturer]
) -> None:
    capture = make_capturer().capture(site.url("/hls/master.m3u8"))
    (video,) = capture.videos
    assert video.role == "video-manifest"
    fetched = {r.url for r in capture.records if r.warc_type == "response"}
    hls = {site.url(p) for p in site.VIDEOS if p.startswith("/hls/")}
    assert hls <= fetched
    assert not {site.url(p) for p in site.NOT_FETCHED} & fetched
