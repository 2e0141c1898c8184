"""Extracting payloads and streams from a real capture of the fixture site, verified."""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import json
import re
import shutil
import tracemalloc
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from archiver.capture.run import Capturer
from archiver.core.model import CaptureOptions, CaptureStatus
from archiver.index.store import RecordRow
from archiver.ops import ingest
from archiver.ops.extract import (
    CHUNK_SIZE,
    ExtractionFailed,
    SelectionError,
    extract,
    extract_payload,
    find_manifest,
    find_record,
    stream_tracks,
)
from archiver.web.http import Dechunker
from tests.support.deterministic import FixedClock, sequential_ids
from tests.support.paths import ROOT
from tests.support.runner import run
from tests.support.site import FixtureSite

LARGE = 16 * 1024 * 1024 + 17
APP_JS = "/static/js/app.js"
HLS_MASTER = "/hls/master.m3u8"
DASH = "/dash/manifest.mpd"


@dataclass(frozen=True)
class Archive:
    path: Path
    capture_id: str


@pytest.fixture(scope="module")
def site() -> Iterator[FixtureSite]:
    with FixtureSite(slow_seconds=0.3, large_video_bytes=LARGE) as s:
        yield s


@pytest.fixture(scope="module")
def archive(site: FixtureSite, tmp_path_factory: pytest.TempPathFactory) -> Archive:
    """One capture of the fixture article, shared by the tests (read-only)."""
    path = tmp_path_factory.mktemp("extract") / "archives"
    capturer = Capturer(
        CaptureOptions(archive_dir=path, timeout=1.0, concurrency=4, allow_private=True),
        clock=FixedClock(),
        new_record_id=sequential_ids(),
        hostname="test-host",
    )
    capture = capturer.capture(site.url(site.ENTRY))
    assert capture.status is CaptureStatus.PARTIAL and capture.index_error is None
    return Archive(path, capture.capture_id)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def served_bytes(site: FixtureSite, paths: list[str]) -> bytes:
    return b"".join(site.decoded_body(p) for p in paths)


# --------------------------------------------------------------------------- payloads


def test_the_page_by_capture_id_is_the_article_as_served(
    site: FixtureSite, archive: Archive, tmp_path: Path
) -> None:
    out = tmp_path / "page.html"
    result = extract(archive.path, archive.capture_id, out)
    body = site.decoded_body(site.ARTICLE)
    assert out.read_bytes() == body
    assert result.url == site.url(site.ARTICLE)  # the redirects were followed
    assert result.http_status == 200 and result.content_type == "text/html"
    assert result.bytes_written == len(body) and result.sha256 == hashlib.sha256(body).hexdigest()
    assert result.sha256 == site.served[site.url(site.ARTICLE)]
    assert [p.record_id for p in result.parts] == [result.record_id]
    assert result.to_json()["path"] == str(out)


def test_a_redirecting_url_gives_its_final_response(
    site: FixtureSite, archive: Archive, tmp_path: Path
) -> None:
    row = find_record(archive.path, archive.capture_id, site.url(site.ENTRY))
    assert row.url == site.url(site.ARTICLE) and row.http_status == 200


def test_a_video_by_url_and_by_record_id(
    site: FixtureSite, archive: Archive, tmp_path: Path
) -> None:
    url = site.url("/media/direct.mp4")
    by_url = extract(archive.path, archive.capture_id, tmp_path / "a.mp4", url=url)
    assert by_url.sha256 == sha256(tmp_path / "a.mp4") == site.served[url]
    record_id = by_url.record_id
    assert record_id.startswith("<urn:uuid:")
    bare = record_id.removeprefix("<urn:uuid:").removesuffix(">")
    for n, ident in enumerate((record_id, record_id.strip("<>"), bare)):
        out = tmp_path / f"b{n}.mp4"
        result = extract(archive.path, ident, out)
        assert result.record_id == record_id and result.url == url
        assert sha256(out) == site.served[url]


def test_a_chunked_response_comes_out_de_chunked(
    site: FixtureSite, archive: Archive, tmp_path: Path
) -> None:
    url = site.url(APP_JS)
    out = tmp_path / "app.js"
    result = extract(archive.path, archive.capture_id, out, url=url)
    assert out.read_bytes() == site.decoded_body(APP_JS)
    assert result.parts[0].dechunked
    # the digest checked is the indexed one, over the body as transferred
    assert result.parts[0].payload_sha256 == site.served[url] != result.sha256
    raw = extract(archive.path, archive.capture_id, tmp_path / "app.raw", url=url, raw=True)
    assert raw.sha256 == site.served[url] and not raw.parts[0].dechunked


def test_content_encoding_is_kept_as_served(
    site: FixtureSite, archive: Archive, tmp_path: Path
) -> None:
    url = site.url("/static/css/main.css")
    out = tmp_path / "main.css.gz"
    extract(archive.path, archive.capture_id, out, url=url)
    assert sha256(out) == site.served[url]
    assert gzip.decompress(out.read_bytes()) == site.decoded_body("/static/css/main.css")


def test_the_de_chunker_across_any_split(site: FixtureSite) -> None:
    framed = b"".join(site._route(APP_JS).pieces)
    for step in (1, 2, 3, 5, 64, 1000, len(framed)):
        out = bytearray()
        dechunker = Dechunker(out.extend, ExtractionFailed)
        for i in range(0, len(framed), step):
            dechunker.feed(memoryview(framed)[i : i + step])
        assert bytes(out) == site.decoded_body(APP_JS) and dechunker.complete
    for bad, what in (
        (b"zz\r\nabc\r\n0\r\n\r\n", "invalid chunk-size line"),
        (b"2\r\nabc\r\n0\r\n\r\n", "chunk longer than"),
        (b"1\r\na\r\n0\r\n\r\nextra", "bytes after its last chunk"),
    ):
        with pytest.raises(ExtractionFailed, match=what):
            Dechunker(lambda data: None, ExtractionFailed).feed(memoryview(bad))


def test_a_truncated_chunked_body_comes_out_as_far_as_it_was_captured(
    site: FixtureSite, make_capturer: Callable[..., Capturer], tmp_path: Path
) -> None:
    capture = make_capturer(max_size=500).capture(site.url(APP_JS))
    archive = capture.options.archive_dir
    out = tmp_path / "app.js"
    result = extract(archive, capture.capture_id, out)
    assert result.parts[0].truncated == "length" and result.parts[0].dechunked
    assert "truncated (WARC-Truncated: length)" in result.notes[0]
    body = out.read_bytes()
    assert 0 < len(body) < 500 and site.decoded_body(APP_JS).startswith(body)


# --------------------------------------------------------------------------- streams

HLS_HIGH = ["/hls/high/init.mp4", *(f"/hls/high/seg{i}.m4s" for i in range(3))]
HLS_AUDIO = ["/hls/audio/init.mp4", *(f"/hls/audio/seg{i}.m4s" for i in range(3))]
DASH_VIDEO = ["/dash/v2/init.mp4", "/dash/v2/seg-001.m4s", "/dash/v2/seg-002.m4s"]
DASH_AUDIO = ["/dash/a1/init.mp4", "/dash/a1/seg-0.m4s", "/dash/a1/seg-4.m4s"]


@pytest.mark.parametrize(
    ("manifest", "track", "expected", "label"),
    [
        (HLS_MASTER, None, HLS_HIGH, "video high/index.m3u8"),
        (HLS_MASTER, "audio", HLS_AUDIO, "audio audio/ru.m3u8"),
        ("/hls/high/index.m3u8", None, HLS_HIGH, None),
        (DASH, None, DASH_VIDEO, "video v2"),
        (DASH, "audio", DASH_AUDIO, "audio a1"),
        (DASH, "a1", DASH_AUDIO, "audio a1"),
    ],
)
def test_stream_segments_concatenated_in_playlist_order(
    site: FixtureSite,
    archive: Archive,
    tmp_path: Path,
    manifest: str,
    track: str | None,
    expected: list[str],
    label: str | None,
) -> None:
    out = tmp_path / "stream.mp4"
    result = extract(
        archive.path,
        archive.capture_id,
        out,
        url=site.url(manifest),
        segments=True,
        track=track,
    )
    assert [p.url for p in result.parts] == [site.url(p) for p in expected]
    assert out.read_bytes() == served_bytes(site, expected)
    assert result.sha256 == sha256(out) and result.url == site.url(manifest)
    if label is not None:
        assert result.track == label


def test_subtitle_tracks_and_what_was_not_captured(site: FixtureSite, archive: Archive) -> None:
    manifest = find_manifest(archive.path, archive.capture_id, site.url(HLS_MASTER))
    tracks = {t.name: t for t in stream_tracks(archive.path, manifest)}
    assert {n: t.kind for n, t in tracks.items()} == {
        "low/index.m3u8": "video",
        "high/index.m3u8": "video",
        "audio/ru.m3u8": "audio",
        "subs/ru.m3u8": "subtitles",
    }
    assert tracks["low/index.m3u8"].captured_count == 0  # only the best variant is fetched
    assert tracks["subs/ru.m3u8"].segments == tuple(
        site.url(f"/hls/subs/seg{i}.vtt") for i in range(3)
    )


def test_stream_choices_that_are_user_errors(
    site: FixtureSite, archive: Archive, tmp_path: Path
) -> None:
    out = tmp_path / "s.mp4"
    with pytest.raises(SelectionError, match="holds 2 streams; choose one with --url"):
        extract(archive.path, archive.capture_id, out, segments=True)
    with pytest.raises(
        SelectionError, match=re.escape("no segments of track video low/index.m3u8")
    ):
        extract(
            archive.path,
            archive.capture_id,
            out,
            url=site.url(HLS_MASTER),
            segments=True,
            track="low/index.m3u8",
        )
    with pytest.raises(SelectionError, match="has no track 'klingon'"):
        extract(
            archive.path,
            archive.capture_id,
            out,
            url=site.url(DASH),
            segments=True,
            track="klingon",
        )
    with pytest.raises(SelectionError, match="is not an HLS playlist or DASH manifest"):
        extract(
            archive.path,
            archive.capture_id,
            out,
            url=site.url("/media/direct.mp4"),
            segments=True,
        )
    assert not out.exists()


# --------------------------------------------------------------------------- failures


def flip_byte(path: Path, offset: int) -> None:
    with path.open("r+b") as fh:
        fh.seek(offset)
        byte = fh.read(1)
        fh.seek(offset)
        fh.write(bytes([byte[0] ^ 0x01]))


def test_a_changed_byte_in_a_video_fails_and_leaves_no_file(
    site: FixtureSite, archive: Archive, tmp_path: Path
) -> None:
    copy = tmp_path / "archives"
    shutil.copytree(archive.path, copy)
    url = site.url("/media/source-b.mp4")
    row = find_record(copy, archive.capture_id, url)
    flip_byte(copy / row.warc_filename, row.warc_offset + row.warc_length - 200)
    out_dir = tmp_path / "out"
    with pytest.raises(ExtractionFailed) as info:
        extract(copy, archive.capture_id, out_dir / "b.mp4", url=url)
    assert not info.value.user_error
    message = str(info.value)
    assert row.record_id in message and url in message and "\n" not in message
    assert "stored bytes do not match the index" in message
    assert list(out_dir.iterdir()) == []  # no output, no temporary file
    # a stream with that segment damaged fails the same way
    row = find_record(copy, archive.capture_id, site.url(DASH_VIDEO[1]))
    flip_byte(copy / row.warc_filename, row.warc_offset + row.warc_length - 100)
    with pytest.raises(ExtractionFailed, match=re.escape(row.record_id)):
        extract(copy, archive.capture_id, out_dir / "s.mp4", url=site.url(DASH), segments=True)
    assert list(out_dir.iterdir()) == []


def test_a_segment_missing_from_the_capture_fails(
    site: FixtureSite, archive: Archive, tmp_path: Path
) -> None:
    copy = tmp_path / "archives"
    shutil.copytree(archive.path, copy)
    missing = site.url("/hls/high/seg1.m4s")
    [records] = (copy / "index" / "records").glob("*.parquet")
    table = pq.read_table(records)
    keep = pc.invert(pc.equal(table.column("url"), missing))
    pq.write_table(table.filter(keep), records)
    out = tmp_path / "v.mp4"
    with pytest.raises(ExtractionFailed, match=re.escape("1 of 4 segments of video high")) as info:
        extract(copy, archive.capture_id, out, url=site.url(HLS_MASTER), segments=True)
    assert missing in str(info.value) and not out.exists()


def test_an_index_that_disagrees_with_the_record_fails(
    site: FixtureSite, archive: Archive, tmp_path: Path
) -> None:
    row = find_record(archive.path, archive.capture_id, site.url("/media/og.mp4"))
    wrong: list[tuple[RecordRow, str]] = [
        (dataclasses.replace(row, payload_sha256="0" * 64), "payload SHA-256"),
        (dataclasses.replace(row, payload_length=1), r"indexed payload \(1 bytes\)"),
        (dataclasses.replace(row, record_id="<urn:uuid:nope>"), "points at another record"),
        (dataclasses.replace(row, warc_filename="warc/gone.warc.gz"), "does not exist"),
        (dataclasses.replace(row, warc_length=row.warc_length - 1), "stored bytes do not"),
    ]
    for n, (bad, reason) in enumerate(wrong):
        out = tmp_path / f"{n}.mp4"
        with pytest.raises(ExtractionFailed, match=reason) as info:
            extract_payload(archive.path, bad, out)
        assert bad.record_id in str(info.value) and not info.value.user_error
        assert not out.exists()
    assert list(tmp_path.iterdir()) == []


def test_user_errors(site: FixtureSite, archive: Archive, tmp_path: Path) -> None:
    out = tmp_path / "x"
    cases: list[tuple[dict[str, object], str]] = [
        ({"ident": "20990101000000-0000000000"}, "no capture or record"),
        ({"ident": "<urn:uuid:12345678-0000-0000-0000-000000000000>"}, "no capture or record"),
        ({"ident": archive.capture_id, "url": site.url("/nowhere")}, "is not in capture"),
        ({"ident": archive.capture_id, "url": "not a url"}, "is not in capture"),
        ({"ident": archive.capture_id, "track": "audio"}, "use it with --segments"),
    ]
    for kwargs, reason in cases:
        with pytest.raises(SelectionError, match=reason) as info:
            extract(archive.path, out_path=out, **kwargs)  # type: ignore[arg-type]
        assert info.value.user_error and "\n" not in str(info.value)
    out.write_bytes(b"already here")
    with pytest.raises(SelectionError, match="exists"):
        extract(archive.path, archive.capture_id, out)
    assert out.read_bytes() == b"already here"
    result = extract(archive.path, archive.capture_id, out, overwrite=True)
    assert out.read_bytes() == site.decoded_body(site.ARTICLE) and result.bytes_written > 0
    with pytest.raises(SelectionError, match="inside the archive"):
        extract(archive.path, archive.capture_id, archive.path / "warc" / "page.html")
    with pytest.raises(SelectionError, match="no capture or record"):
        extract(tmp_path / "no-archive", archive.capture_id, tmp_path / "y")


# --------------------------------------------------------------------------- memory, imports


def test_a_large_video_streams_with_flat_memory(
    site: FixtureSite, archive: Archive, tmp_path: Path
) -> None:
    row = find_record(archive.path, archive.capture_id, site.url(site.LARGE_VIDEO))
    assert row.payload_length == LARGE
    out = tmp_path / "large.mp4"
    tracemalloc.start()
    try:
        result = extract_payload(archive.path, row, out)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.sha256 == site.expected_payload_sha256(site.LARGE_VIDEO)
    assert result.bytes_written == LARGE == out.stat().st_size
    assert peak < 5 * CHUNK_SIZE < LARGE / 3, f"peak {peak / 2**20:.1f} MiB"


def test_an_imported_uncompressed_warc(site: FixtureSite, archive: Archive, tmp_path: Path) -> None:
    """A plain .warc written by another tool: no roles, redirects followed by Location."""
    [warc_gz] = sorted((archive.path / "warc").rglob("*.warc.gz"))
    plain = tmp_path / "other-tool.warc"
    with gzip.open(warc_gz, "rb") as src, plain.open("wb") as dst:
        shutil.copyfileobj(src, dst)
    imported = tmp_path / "imported"
    result = ingest.import_file(imported, plain, "others")
    assert result.capture_id is not None and result.report.ok
    page = extract(imported, result.capture_id, tmp_path / "page.html")
    assert page.url == site.url(site.ARTICLE)
    assert (tmp_path / "page.html").read_bytes() == site.decoded_body(site.ARTICLE)
    video = extract(
        imported, result.capture_id, tmp_path / "large.mp4", url=site.url(site.LARGE_VIDEO)
    )
    assert video.sha256 == site.expected_payload_sha256(site.LARGE_VIDEO)
    assert video.parts[0].warc_filename.endswith("other-tool.warc")
    stream = extract(
        imported,
        result.capture_id,
        tmp_path / "dash.mp4",
        url=site.url(DASH),
        segments=True,
        track="audio",
    )
    assert (tmp_path / "dash.mp4").read_bytes() == served_bytes(site, DASH_AUDIO)
    assert stream.track == "audio a1"


# --------------------------------------------------------------------------- the command


_cli = partial(run, installed=True)  # the entry point pip installed


def test_the_extract_command_exit_codes(
    site: FixtureSite, archive: Archive, tmp_path: Path
) -> None:
    video = site.url("/media/og.mp4")
    out = tmp_path / "og.mp4"
    ok = _cli(
        "extract",
        archive.capture_id,
        "--url",
        video,
        "-o",
        str(out),
        "--archive-dir",
        str(archive.path),
        "--format",
        "json",
    )
    assert ok.returncode == 0, ok.stderr
    assert sha256(out) == site.served[video] == json.loads(ok.stdout)["sha256"]
    hls = tmp_path / "hls.mp4"
    seg = _cli(
        "extract",
        archive.capture_id,
        "--url",
        site.url(HLS_MASTER),
        "--segments",
        "-o",
        str(hls),
        "--archive-dir",
        str(archive.path),
    )
    assert seg.returncode == 0, seg.stderr and hls.stat().st_size > 0
    unknown = _cli(
        "extract",
        "20990101000000-0000000000",
        "-o",
        str(tmp_path / "x"),
        "--archive-dir",
        str(archive.path),
    )
    assert unknown.returncode == 2 and "Traceback" not in unknown.stderr
    assert len(unknown.stderr.strip().splitlines()) == 1
    # one changed byte in the stored video: exit 1, the record named, no file
    broken = tmp_path / "broken"
    shutil.copytree(archive.path, broken)
    row = find_record(broken, archive.capture_id, video)
    warc = broken / row.warc_filename
    data = bytearray(warc.read_bytes())
    data[row.warc_offset + row.warc_length - 100] ^= 0x01
    warc.write_bytes(bytes(data))
    target = tmp_path / "bad.mp4"
    bad = _cli("extract", row.record_id, "-o", str(target), "--archive-dir", str(broken))
    assert bad.returncode == 1 and "Traceback" not in bad.stderr
    assert row.record_id in bad.stderr or row.warc_filename in bad.stderr
    assert not target.exists()


def test_the_readme_video_query_finds_hls_and_dash_too(archive: Archive, site: FixtureSite) -> None:
    """The README's example query, run as written on a capture made (by the fixed clock)
    in August 2020, with only the site's address put in for news.example.org."""
    readme = (ROOT / "README.md").read_text("utf-8")
    match = re.search(r'archiver query "(select r\.url.*?)"\n', readme, re.S)
    assert match, "the README's example query is gone"
    sql = match.group(1).replace("https://news.example.org/", site.url("/"))
    out = run("query", sql, "--format", "json", "--archive-dir", str(archive.path), timeout=60)
    assert out.returncode == 0, out.stderr
    urls = {row["url"] for row in json.loads(out.stdout)}
    assert site.url(HLS_MASTER) in urls and site.url(DASH) in urls
    assert site.url("/hls/high/seg0.m4s") in urls  # HLS segments
    assert site.url("/media/direct.mp4") in urls
