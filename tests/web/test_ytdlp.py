"""Platform videos through yt-dlp, against the local fixture site routed as a "platform".

yt-dlp runs for real (its generic extractor, its HLS and DASH downloaders); every
exchange it makes must be in the WARC as served, read back here with warcio.
"""

from __future__ import annotations

import functools
import hashlib
import http.server
import json
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from archiver.capture.run import Capturer
from archiver.core.model import Capture
from archiver.ops.ingest import rebuild
from archiver.ops.verify import verify
from archiver.web.http import REDACTED
from tests.support.runner import run
from tests.support.site import FixtureSite
from tests.support.warcs import read_all

BIN = Path(sys.executable).parent


def host(site: FixtureSite) -> str:
    return site.base.split("//", 1)[1]


def platform_records(paths: list[Path]) -> tuple[list, list]:  # type: ignore[type-arg]
    records = read_all(paths)
    responses = [r for r in records if r.type == "response"]
    infos = [
        r
        for r in records
        if r.type == "metadata" and r.json().get("schema") == "archiver/media-info/1"
    ]
    return responses, infos


def test_a_platform_page_through_ytdlp(
    site: FixtureSite, make_capturer: Callable[..., Capturer], tmp_path: Path
) -> None:
    capture = make_capturer(platform_hosts=(host(site),)).capture(site.url("/embed/player"))
    assert capture.status.value == "complete", capture.errors
    responses, infos = platform_records(capture.warc_files)
    clip = site.url("/embed/clip.mp4")
    # every response yt-dlp got is stored byte for byte as served
    fetched_by_ytdlp = [
        r
        for r in capture.records
        if r.role == "platform" and r.warc_type in ("response", "revisit")
    ]
    assert {r.url for r in fetched_by_ytdlp} >= {site.url("/embed/player"), clip}
    for row in fetched_by_ytdlp:
        assert row.url is not None
        assert row.payload_sha256 == site.served[row.url]
        assert row.discovered_from is not None and row.discovered_via == "yt-dlp"
    stored = [r for r in responses if r.url == clip]
    assert stored and all(r.payload_sha256 == site.served[clip] for r in stored)
    # yt-dlp's account of it: extractor, version, the info JSON with the format chosen
    (info,) = [i for i in infos if i.json()["url"] == site.url("/embed/player")]
    # named as ours, not by the page's URL (a replay would serve it for the page),
    # and linked to the page's response
    assert info.url == "urn:archiver-media-info:" + site.url("/embed/player")
    page = next(r for r in fetched_by_ytdlp if r.url == site.url("/embed/player"))
    assert info.get("WARC-Refers-To") == page.record_id
    doc = info.json()
    assert doc["yt_dlp"] and doc["extractor"] and doc["error"] is None
    assert doc["info"]["requested_downloads"] or doc["info"].get("url")
    row = next(v for v in capture.videos if v.url == site.url("/embed/player"))
    assert "yt-dlp" in row.via
    assert capture.libraries["yt-dlp"] == doc["yt_dlp"]
    assert_every_request_recorded(site, capture)
    # signed, and the whole capture verifies; warcio agrees on every digest
    assert verify(tmp_path / "archives").ok
    for path in capture.warc_files:
        assert subprocess.run([str(BIN / "warcio"), "check", str(path)]).returncode == 0


@pytest.mark.parametrize("stream", ["/hls/master.m3u8", "/dash/manifest.mpd"])
def test_hls_and_dash_segments_fetched_by_ytdlp_are_recorded(
    site: FixtureSite, make_capturer: Callable[..., Capturer], stream: str
) -> None:
    capture = make_capturer(platform_hosts=(host(site),)).capture(site.url(stream))
    rows = [
        r
        for r in capture.records
        if r.role == "platform" and r.warc_type in ("response", "revisit")
    ]
    segments = [r for r in rows if r.url and r.url.endswith((".mp4", ".m4s", ".ts"))]
    assert len(segments) >= 3
    for row in rows:
        assert row.url is not None and row.payload_sha256 == site.served[row.url]
    # the fixture's segments are not real media: merging them fails, and says so
    assert all("yt-dlp" in e.reason for e in capture.errors)
    assert_every_request_recorded(site, capture)


def assert_every_request_recorded(site: FixtureSite, capture: Capture) -> None:
    """Nothing reached the server around the recording: one request record per request."""
    received = sorted(site.url(target) for _, target in site.request_log)
    recorded = sorted(r.url for r in read_all(capture.warc_files) if r.type == "request" and r.url)
    assert received == recorded


def test_a_page_of_many_videos_is_a_playlist_and_skipped(
    site: FixtureSite, make_capturer: Callable[..., Capturer]
) -> None:
    article = make_capturer(platform_hosts=(host(site),), max_video_size=1000).capture(
        site.url(site.ARTICLE)
    )
    skipped = {n["url"]: n["reason"] for n in article.not_followed}
    assert "playlist" in skipped[site.url(site.ARTICLE)], skipped
    # --max-video-size: a video over it is skipped, and said so
    assert any("max-video-size" in reason for reason in skipped.values()), skipped
    _, infos = platform_records(article.warc_files)
    assert any(i.json()["skipped"] for i in infos)


def test_cookies_are_used_but_never_recorded(
    site: FixtureSite, make_capturer: Callable[..., Capturer], tmp_path: Path
) -> None:
    jar = tmp_path / "cookies.txt"
    secret = "s3cr3t-session-value"
    jar.write_text(
        f"# Netscape HTTP Cookie File\n127.0.0.1\tFALSE\t/\tFALSE\t0\tsession\t{secret}\n",
        encoding="utf-8",
    )
    capture = make_capturer(platform_hosts=(host(site),), cookies=jar).capture(
        site.url("/embed/player")
    )
    assert site.requests_with_cookie(secret)  # the server saw the cookie
    records = read_all(capture.warc_files)
    requests = [r for r in records if r.type == "request" and r.get("WARC-Target-URI")]
    redacted = [r for r in requests if r.http_header("Cookie") == REDACTED]
    assert redacted
    for path in capture.warc_files:
        assert secret.encode() not in path.read_bytes()
        assert (
            b"s3cr3t" not in subprocess.run(["gzip", "-dc", str(path)], capture_output=True).stdout
        )
    assert jar.read_text(encoding="utf-8").count(secret) == 1  # the user's file untouched
    archive_files = [p for p in (tmp_path / "archives").rglob("*") if p.is_file()]
    assert not any(secret.encode() in p.read_bytes() for p in archive_files)
    assert secret not in json.dumps(capture.summary())


@pytest.fixture
def dash_site(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """Real media: a 2-second DASH stream, video and audio apart, made by ffmpeg."""
    import imageio_ffmpeg

    root = tmp_path / "dash"
    root.mkdir()
    subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-loglevel", "error",
         "-f", "lavfi", "-i", "testsrc=size=160x120:rate=10",
         "-f", "lavfi", "-i", "sine=frequency=440", "-t", "2",
         "-map", "0:v", "-map", "1:a", "-c:v", "libx264", "-preset", "ultrafast",
         "-c:a", "aac", "-f", "dash", "-seg_duration", "1", "stream.mpd"],
        cwd=root, check=True,
    )  # fmt: skip
    (root / "post.html").write_text(
        '<!DOCTYPE html><title>Post</title><a href="/stream.mpd">the video</a>', "utf-8"
    )

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Quiet, directory=str(root))
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}", root
    finally:
        server.shutdown()
        server.server_close()


def test_separate_audio_and_video_are_merged_into_a_conversion_record(
    dash_site: tuple[str, Path], make_capturer: Callable[..., Capturer], tmp_path: Path
) -> None:
    import imageio_ffmpeg

    where, root = dash_site
    capture = make_capturer(platform_hosts=(where,)).capture(f"http://{where}/stream.mpd")
    assert not capture.errors, capture.errors
    by_id = {r.record_id: r for r in capture.records}
    # every segment yt-dlp fetched is stored as served
    for row in capture.records:
        if row.role == "platform" and row.warc_type == "response" and row.http_status == 200:
            assert row.url is not None
            served = (root / row.url.rsplit("/", 1)[1]).read_bytes()
            assert row.payload_sha256 == hashlib.sha256(served).hexdigest()
    (conversion,) = [r for r in capture.records if r.warc_type == "conversion"]
    assert conversion.refers_to in by_id and by_id[conversion.refers_to].role == "platform"
    records = read_all(capture.warc_files)
    stored = next(r for r in records if r.type == "conversion")
    assert stored.get("WARC-Refers-To") == conversion.refers_to
    # a file of ours: replay tools must not serve it for the stream's URL
    assert stored.url == conversion.url == f"urn:archiver-conversion:http://{where}/stream.mpd"
    merged = tmp_path / "merged.mp4"
    merged.write_bytes(stored.payload)
    probe = subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-i", str(merged), "-f", "null", "-"],
        capture_output=True,
    )
    assert probe.returncode == 0, probe.stderr  # a playable file, audio and video
    _, infos = platform_records(capture.warc_files)
    doc = next(i.json() for i in infos if i.json()["conversion"])
    assert doc["conversion"]["record_id"] == conversion.record_id
    assert doc["conversion"]["tool"]["version"] and len(doc["conversion"]["sources"]) == 2
    assert all(s["record_ids"] for s in doc["conversion"]["sources"])
    # signed, verified, and the index rebuilt from the WARCs alone still verifies
    archive = tmp_path / "archives"
    assert verify(archive).ok
    rebuild(archive)
    report = verify(archive)
    assert report.ok, [p.text() for p in report.problems]


def test_links_to_platform_posts_are_followed_only_when_asked(
    dash_site: tuple[str, Path], make_capturer: Callable[..., Capturer], tmp_path: Path
) -> None:
    where, _ = dash_site
    post, platform = f"http://{where}/post.html", (f"{where}/stream.mpd",)
    plain = make_capturer(platform_hosts=platform).capture(post)
    assert not [r for r in plain.records if r.role == "platform"]
    followed = make_capturer(
        platform_hosts=platform, follow_video_links=True, archive_dir=tmp_path / "b"
    ).capture(post)
    assert [r for r in followed.records if r.warc_type == "conversion"]
    video = next(v for v in followed.videos if v.url.endswith("/stream.mpd"))
    assert video.via.startswith("a[href]") and video.found_on == post


def test_max_video_duration_skips_and_says_so(
    dash_site: tuple[str, Path], make_capturer: Callable[..., Capturer]
) -> None:
    where, _ = dash_site
    capture = make_capturer(platform_hosts=(where,), max_video_duration=1).capture(
        f"http://{where}/stream.mpd"
    )
    reasons = [n["reason"] for n in capture.not_followed]
    assert any("max-video-duration" in r for r in reasons), reasons
    assert not [r for r in capture.records if r.warc_type == "conversion"]
    _, infos = platform_records(capture.warc_files)
    assert "max-video-duration" in infos[0].json()["skipped"]


def test_cli_options_and_a_bad_cookies_file(site: FixtureSite, tmp_path: Path) -> None:
    junk = tmp_path / "cookies.txt"
    junk.write_text("not a cookies file\n", encoding="utf-8")
    out = run(
        "capture", site.url("/plain"), "--cookies", str(junk),
        "--archive-dir", str(tmp_path / "a"), timeout=None, installed=True,
    )  # fmt: skip
    assert out.returncode == 2 and "Netscape cookies file" in out.stderr
    assert "Traceback" not in out.stderr and not (tmp_path / "a" / "warc").exists()
    ok = run(
        "capture", site.url("/embed/player"), "--no-dedup",
        "--no-platform-videos", "--max-video-size", "1G", "--max-video-duration", "600",
        "--archive-dir", str(tmp_path / "b"), "--format", "json",
        timeout=None, installed=True,
    )  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["status"] == "complete"


def test_a_body_ytdlp_cannot_decode_is_still_recorded(
    make_capturer: Callable[..., Capturer],
) -> None:
    import socket

    from tests.support.rawserver import raw_server

    broken = bytearray(gzip_bytes(b"<html><video src=/v.mp4></video></html>" * 2000))
    broken[len(broken) // 2] ^= 0xFF

    def serve(conn: socket.socket, request: bytes) -> None:
        head = b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Encoding: gzip\r\n"
        conn.sendall(head + b"Content-Length: %d\r\n\r\n" % len(broken) + bytes(broken))

    with raw_server(serve) as base:
        where = base.split("//", 1)[1]
        capture = make_capturer(platform_hosts=(where,)).capture(base + "/p")
    assert capture.status.value != "failed", capture.failure
    platform = [r for r in capture.records if r.role == "platform" and r.warc_type == "response"]
    assert platform and platform[0].payload_length == len(broken)  # recorded as served
    assert any("cannot be decoded" in e.reason for e in capture.errors)


def gzip_bytes(data: bytes) -> bytes:
    import gzip

    return gzip.compress(data, mtime=0)
