"""Which renditions of an HLS or DASH stream a capture keeps whole, and how it tells replay
tools which one that is (issue 18, replay).

By default the best rendition (highest bandwidth) is fetched whole and the manifest's
response record carries ``WARC-JSON-Metadata: {"adaptive_max_resolution": W*H,
"adaptive_max_bandwidth": B}``, which pywb and wabac.js (ReplayWeb.page) read to rewrite
the manifest at replay to the one rendition that fits; a rendition those tools would keep
instead (another of the same resolution listed first, or the first of all when none gives
a resolution) is fetched whole too.  ``--all-renditions`` fetches every one.

Real streams (ffmpeg), real servers on loopback, WARC files read back by warcio, and
the replay tools' own code run on what was written: pywb's ``RewriteHLS`` and
``RewriteDASH`` in this process, wabac.js's ``rewriteHLS`` under Node
(tests/support/wabac.py).  tests/system/test_replay_hls.py plays the stream back
through pywb in Chromium.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from warcio.archiveiterator import ArchiveIterator

from archiver.capture.run import Capturer
from archiver.core.model import Capture, CaptureOptions, CaptureStatus
from archiver.ops.verify import verify
from archiver.warc.rules import check_record
from archiver.web.discover.dash import dash_rendition, iter_dash
from archiver.web.discover.hls import Rendition, hls_rendition, iter_hls
from tests.support.deterministic import fixed_signer, sequential_ids
from tests.support.hls import BEST, HLS_TYPE, LADDER, dash_routes, hls_routes, segments
from tests.support.pages import PageServer, Route
from tests.support.runner import run
from tests.support.wabac import rewrite_hls
from tests.support.warcs import ReadRecord, read_all

BIN = Path(sys.executable).parent
MASTER = "/hls/master.m3u8"
HEADER = "WARC-JSON-Metadata"


@pytest.fixture(scope="module")
def stream(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Route]:
    return hls_routes(tmp_path_factory.mktemp("hls"))


@pytest.fixture
def server(stream: dict[str, Route]) -> Iterator[PageServer]:
    with PageServer(routes=stream) as served:
        yield served


def _responses(capture: Capture, path: str, base: str) -> list[ReadRecord]:
    return [
        r
        for r in read_all(capture.warc_files)
        if r.type in ("response", "revisit") and r.url == base + path
    ]


def _text(route: Route) -> str:
    body = route.body
    return body.decode() if isinstance(body, bytes) else body


def _metadata(record: ReadRecord) -> Any:
    value = record.get(HEADER)
    assert value is not None, record.headers
    return json.loads(value)


def _pywb_keeps(master: bytes, header: str | None) -> list[str]:
    """The variant URIs pywb's own RewriteHLS keeps, given a record with ``header``: the
    record is a warcio record read from a WARC file we write here."""
    from pywb.rewrite.rewrite_hls import RewriteHLS  # type: ignore[import-untyped]

    record = _warcio_record(master, HLS_TYPE, header)
    out = RewriteHLS(None).rewrite_stream(io.BytesIO(master), _RewriteInfo(record))
    lines = out.read().decode().split("\n")
    return [lines[i + 1] for i, line in enumerate(lines) if line.startswith("#EXT-X-STREAM-INF")]


def _pywb_dash_keeps(mpd: bytes, header: str | None) -> list[str]:
    """The Representation ids pywb's own RewriteDASH keeps (one per adaptation set)."""
    from pywb.rewrite.rewrite_dash import RewriteDASH  # type: ignore[import-untyped]

    record = _warcio_record(mpd, "application/dash+xml", header)
    _, ids = RewriteDASH(None).rewrite_dash(io.BytesIO(mpd), _RewriteInfo(record))
    return list(ids)


class _RewriteInfo:
    """What pywb's rewriters read of its RewriteInfo: the WARC record being replayed."""

    def __init__(self, record: Any) -> None:
        self.record = record


def _warcio_record(body: bytes, media_type: str, header: str | None) -> Any:
    """A response record as warcio writes and reads it, with ``header`` as its
    WARC-JSON-Metadata (or none)."""
    from warcio.statusandheaders import StatusAndHeaders
    from warcio.warcwriter import WARCWriter

    buffer = io.BytesIO()
    writer = WARCWriter(buffer, gzip=False)
    http = StatusAndHeaders("200 OK", [("Content-Type", media_type)], protocol="HTTP/1.1")
    extra = {HEADER: header} if header is not None else None
    record = writer.create_warc_record(
        "http://example.test/m",
        "response",
        payload=io.BytesIO(body),
        http_headers=http,
        warc_headers_dict=extra,
    )
    writer.write_record(record)
    buffer.seek(0)
    return next(iter(ArchiveIterator(buffer)))


def _wabac_keeps(master: bytes, header: str | None) -> list[str]:
    """The variant URIs wabac.js's own rewriteHLS keeps at replay, given ``header``."""
    text = rewrite_hls(master.decode(), json.loads(header) if header is not None else None)
    lines = text.split("\n")
    return [lines[i + 1].strip() for i, line in enumerate(lines) if "#EXT-X-STREAM-INF" in line]


def _header_of(rendition: Rendition | None) -> str | None:
    return None if rendition is None else json.dumps(rendition.metadata())


def _kept_hls(master: bytes) -> list[str]:
    found = iter_hls(master, "http://example.test/m.m3u8", renditions="replayed")
    return [f.url.rsplit("/", 1)[1] for f in found if f.via == "hls variant" and f.expand]


def _kept_hls_best(master: bytes) -> str:
    found = iter_hls(master, "http://example.test/m.m3u8")  # "best": a reader's one track
    (best,) = [f.url.rsplit("/", 1)[1] for f in found if f.via == "hls variant" and f.expand]
    return best


# ------------------------------------------------------------------ HTTP capture


def test_the_best_rendition_is_captured_and_named_on_the_master_record(
    server: PageServer,
    stream: dict[str, Route],
    make_capturer: Callable[..., Capturer],
    tmp_path: Path,
) -> None:
    capture = make_capturer().capture(server.url("/index.html"))
    assert capture.status is CaptureStatus.COMPLETE, capture.errors
    asked = set(server.paths())
    # every variant's playlist, the best one's segments, no other segment
    assert {f"/hls/{rung.name}/index.m3u8" for rung in LADDER} <= asked
    assert segments(server.routes, BEST) <= asked  # type: ignore[arg-type]
    for rung in LADDER[:-1]:
        assert not segments(server.routes, rung) & asked, rung  # type: ignore[arg-type]

    (master,) = _responses(capture, MASTER, server.base)
    assert _metadata(master) == {
        "adaptive_max_resolution": BEST.pixels,
        "adaptive_max_bandwidth": BEST.bandwidth,
    }
    # the header names the rendition; the HTTP message is as served
    assert master.payload == stream[MASTER].body
    assert master.http_header("Content-Type") == HLS_TYPE
    assert check_record(master.version, master.headers) == []
    others = [r for r in read_all(capture.warc_files) if r.get(HEADER) is not None]
    assert others == [master]  # not on media playlists, pages or segments

    # pywb's and wabac.js's own rewriting of that record keep the best, whose segments
    # are all here; without the header wabac.js would keep 640x360, not captured
    assert _pywb_keeps(master.payload, master.get(HEADER)) == [f"{BEST.name}/index.m3u8"]
    assert _wabac_keeps(master.payload, master.get(HEADER)) == [f"{BEST.name}/index.m3u8"]
    assert _wabac_keeps(master.payload, None) == [f"{LADDER[1].name}/index.m3u8"]

    # our verify, and warcio's
    assert verify(tmp_path / "archives").ok
    for path in capture.warc_files:
        assert subprocess.run([str(BIN / "warcio"), "check", str(path)]).returncode == 0


def test_all_renditions_fetches_every_variant(
    server: PageServer, make_capturer: Callable[..., Capturer]
) -> None:
    capture = make_capturer(all_renditions=True).capture(server.url("/index.html"))
    assert capture.status is CaptureStatus.COMPLETE, capture.errors
    asked = set(server.paths())
    for rung in LADDER:
        assert segments(server.routes, rung) <= asked, rung  # type: ignore[arg-type]
    (master,) = _responses(capture, MASTER, server.base)
    # replay still shows the best
    assert _metadata(master)["adaptive_max_resolution"] == BEST.pixels
    (meta,) = (r for r in read_all(capture.warc_files) if r.type == "metadata")
    assert meta.json()["options"]["all_renditions"] is True


def test_a_variant_replay_would_keep_instead_is_fetched_too(
    stream: dict[str, Route], make_capturer: Callable[..., Capturer]
) -> None:
    """Two variants of the best's resolution, the best listed second: pywb and wabac.js
    keep the first of that resolution, so its segments are fetched too."""
    low, middle, high = LADDER
    master = (
        "#EXTM3U\n"
        f"#EXT-X-STREAM-INF:BANDWIDTH={low.bandwidth},RESOLUTION={low.name}\n"
        f"{low.name}/index.m3u8\n"
        f"#EXT-X-STREAM-INF:BANDWIDTH=2000000,RESOLUTION={high.name}\n"
        f"{middle.name}/index.m3u8\n"
        f"#EXT-X-STREAM-INF:BANDWIDTH={high.bandwidth},RESOLUTION={high.name}\n"
        f"{high.name}/index.m3u8\n"
    ).encode()
    routes = {**stream, MASTER: Route(master, HLS_TYPE)}
    with PageServer(routes=routes) as served:
        capture = make_capturer().capture(served.url("/index.html"))
        asked = set(served.paths())
    assert capture.status is CaptureStatus.COMPLETE, capture.errors
    assert segments(routes, high) | segments(routes, middle) <= asked
    assert not segments(routes, low) & asked
    (record,) = _responses(capture, MASTER, served.base)
    header = record.get(HEADER)
    assert json.loads(header or "") == {
        "adaptive_max_resolution": high.pixels,
        "adaptive_max_bandwidth": high.bandwidth,
    }
    assert (
        _pywb_keeps(master, header) == _wabac_keeps(master, header) == [f"{middle.name}/index.m3u8"]
    )


def test_the_option_is_recorded_only_when_given() -> None:
    assert "all_renditions" not in CaptureOptions().recorded()
    assert CaptureOptions(all_renditions=True).recorded()["all_renditions"] is True


def test_a_master_streamed_into_its_record_is_named_too(
    stream: dict[str, Route], make_capturer: Callable[..., Capturer]
) -> None:
    """A master over 1 MiB is written as it arrives: its record's head, digests and
    WARC-JSON-Metadata, is written after the body."""
    padding = "".join(f"# comment line {i:07d} keeps this master large\n" for i in range(26_000))
    master = _text(stream[MASTER]).replace("#EXT-X-VERSION:3\n", "#EXT-X-VERSION:3\n" + padding)
    routes = {**stream, MASTER: Route(master.encode(), HLS_TYPE)}
    assert len(master) > 1024 * 1024
    with PageServer(routes=routes) as served:
        capture = make_capturer().capture(served.url("/index.html"))
        asked = set(served.paths())
    assert capture.status is CaptureStatus.COMPLETE, capture.errors
    assert segments(routes, BEST) <= asked
    assert not segments(routes, LADDER[0]) & asked
    (record,) = _responses(capture, MASTER, served.base)
    assert record.payload == master.encode()
    assert _metadata(record) == {
        "adaptive_max_resolution": BEST.pixels,
        "adaptive_max_bandwidth": BEST.bandwidth,
    }
    assert check_record(record.version, record.headers) == []


def test_a_master_captured_again_is_a_revisit_naming_the_rendition(
    stream: dict[str, Route], make_capturer: Callable[..., Capturer], tmp_path: Path
) -> None:
    """wabac.js reads the revisit's own header; pywb the original's: both carry it."""
    padding = "".join(f"# padding {i:04d}\n" for i in range(100))  # past DEDUP_MIN (1 KiB)
    master = _text(stream[MASTER]).replace("#EXT-X-VERSION:3\n", "#EXT-X-VERSION:3\n" + padding)
    routes = {**stream, MASTER: Route(master.encode(), HLS_TYPE)}
    ids = iter(["20200812100000-aaaaaaaaaa", "20200819100000-bbbbbbbbbb"])
    captures = []
    with PageServer(routes=routes) as served:
        for n in range(2):
            capturer = make_capturer()
            capturer.new_id = lambda moment: next(ids)
            capturer.new_record_id = sequential_ids(start=1000 * (n + 1))
            captures.append(capturer.capture(served.url("/index.html")))
    (original,) = _responses(captures[0], MASTER, served.base)
    (revisit,) = _responses(captures[1], MASTER, served.base)
    assert (original.type, revisit.type) == ("response", "revisit")
    assert _metadata(revisit) == _metadata(original)
    assert _metadata(original)["adaptive_max_resolution"] == BEST.pixels
    assert check_record(revisit.version, revisit.headers) == []
    assert verify(tmp_path / "archives").ok


# ------------------------------------------------------- the choice, against pywb


def _ladder(*rows: tuple[int, str | None]) -> bytes:
    """A master of variants v0, v1 ...: (BANDWIDTH, RESOLUTION or None)."""
    lines = ["#EXTM3U"]
    for i, (bandwidth, size) in enumerate(rows):
        extra = f",RESOLUTION={size}" if size else ""
        lines += [f"#EXT-X-STREAM-INF:BANDWIDTH={bandwidth}{extra}", f"v{i}.m3u8"]
    return ("\n".join(lines) + "\n").encode()


CASES = {
    # name: (master, the variants kept whole: the best, and what replay would take)
    "ascending ladder": (
        _ladder((400_000, "320x180"), (1_000_000, "640x360"), (5_000_000, "1920x1080")),
        ["v2.m3u8"],
    ),
    "descending ladder": (
        _ladder((5_000_000, "1920x1080"), (1_000_000, "640x360"), (400_000, "320x180")),
        ["v0.m3u8"],
    ),
    # two of one resolution, the best listed second: pywb and wabac.js keep the first of
    # that resolution, which is fetched too
    "same resolution, best second": (
        _ladder((640_000, "640x360"), (2_000_000, "1280x720"), (4_000_000, "1280x720")),
        ["v1.m3u8", "v2.m3u8"],
    ),
    "same resolution, best first": (
        _ladder((4_000_000, "1280x720"), (2_000_000, "1280x720"), (640_000, "640x360")),
        ["v0.m3u8"],
    ),
    # no resolution anywhere: pywb keeps the best by bandwidth, wabac.js the first listed
    "no resolutions": (_ladder((300, None), (900, None), (900, None)), ["v0.m3u8", "v1.m3u8"]),
    # a larger picture at a lower bandwidth (another codec): ours is the highest bandwidth
    "larger picture, lower bandwidth": (
        _ladder((2_000_000, "1920x1080"), (3_000_000, "1280x720")),
        ["v1.m3u8"],
    ),
    # the best gives no resolution: the record says 0, wabac.js then uses its defaults
    "best without resolution": (
        _ladder((1_000_000, "640x360"), (6_000_000, None), (2_500_000, "1920x1080")),
        ["v0.m3u8", "v1.m3u8"],
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_pywb_and_wabac_keep_a_variant_the_capture_fetched_whole(name: str) -> None:
    master, expected = CASES[name]
    kept = _kept_hls(master)
    assert kept == expected
    header = _header_of(hls_rendition(master))
    assert header is not None
    (pywb,) = _pywb_keeps(master, header)
    (wabac,) = _wabac_keeps(master, header)
    assert pywb in kept and wabac in kept
    assert set(kept) <= {pywb, wabac, _kept_hls_best(master)}  # nothing more than needed
    # CRLF line ends: the same choice
    crlf = master.replace(b"\n", b"\r\n")
    assert _kept_hls(crlf) == kept and _header_of(hls_rendition(crlf)) == header


def test_the_master_names_nothing_pywb_could_not_keep() -> None:
    """Every BANDWIDTH 0 and no resolution: pywb given a limit of 0 keeps no variant at
    all, so no rendition is named (pywb and wabac.js then use their defaults)."""
    master = _ladder((0, None), (0, None))
    assert hls_rendition(master) is None
    assert hls_rendition(b"#EXTM3U\n#EXTINF:2,\nseg.ts\n") is None  # a media playlist
    huge = _ladder((2**60, "640x360"))
    assert hls_rendition(huge) is None  # JavaScript would not read it exactly
    assert _kept_hls(huge) == ["v0.m3u8"]


def _mpd(*sets: list[tuple[str, int, str | None]], namespace: bool = True) -> bytes:
    """An MPD of one period; each set a list of (id, bandwidth, "WxH" or None)."""
    ns = ' xmlns="urn:mpeg:dash:schema:mpd:2011"' if namespace else ""
    out = [f'<MPD{ns} type="static" mediaPresentationDuration="PT2S"><Period>']
    for reps in sets:
        out.append("<AdaptationSet>")
        for rep_id, bandwidth, size in reps:
            wh = ""
            if size:
                w, h = size.split("x")
                wh = f' width="{w}" height="{h}"'
            out.append(
                f'<Representation id="{rep_id}" bandwidth="{bandwidth}"{wh}>'
                f'<SegmentTemplate media="{rep_id}-$Number$.m4s" initialization="{rep_id}.mp4"'
                ' duration="1" startNumber="1"/></Representation>'
            )
        out.append("</AdaptationSet>")
    out.append("</Period></MPD>")
    return "".join(out).encode()


def _kept_dash(mpd: bytes, renditions: Any = "replayed") -> list[str]:
    found = iter_dash(mpd, "http://example.test/m.mpd", renditions=renditions)
    return sorted({f.url.rsplit("/", 1)[1].split("-")[0].removesuffix(".mp4") for f in found})


DASH_CASES = {
    "video ladder and audio": (
        _mpd(
            [("v0", 300_000, "320x180"), ("v1", 800_000, "640x360"), ("v2", 3_000_000, "1280x720")],
            [("a0", 64_000, None), ("a1", 128_000, None)],
        ),
        ["a1", "v2"],
    ),
    "same resolution, best second": (
        _mpd([("v0", 2_000_000, "1280x720"), ("v1", 4_000_000, "1280x720")]),
        ["v0", "v1"],
    ),
    # wabac.js takes a representation above its resolution limit by bandwidth when it
    # comes first: the 1080p one at a lower bandwidth is fetched too
    "larger picture, lower bandwidth, first": (
        _mpd([("v0", 2_000_000, "1920x1080"), ("v1", 3_000_000, "1280x720")]),
        ["v0", "v1"],
    ),
}


@pytest.mark.parametrize("name", list(DASH_CASES))
def test_pywb_keeps_a_representation_the_capture_fetched_whole(name: str) -> None:
    mpd, expected = DASH_CASES[name]
    kept = _kept_dash(mpd)
    assert kept == expected
    assert set(_pywb_dash_keeps(mpd, _header_of(dash_rendition(mpd)))) <= set(kept)
    assert set(_kept_dash(mpd, "best")) <= set(kept)
    everything = {r.split('"')[1] for r in mpd.decode().split("<Representation id=")[1:]}
    assert set(_kept_dash(mpd, "all")) == everything


def test_an_mpd_without_the_dash_namespace_is_named_all_the_same() -> None:
    """pywb rewrites only MPDs in the DASH namespace (the player chooses otherwise);
    wabac.js reads any: the record names the rendition either way."""
    mpd = _mpd([("v0", 300_000, "320x180"), ("v1", 800_000, "640x360")], namespace=False)
    assert dash_rendition(mpd) == Rendition(640 * 360, 800_000)
    assert _kept_dash(mpd) == ["v1"]


# -------------------------------------------------------------------- DASH capture


def test_dash_the_best_representation_of_each_set_and_the_record_naming_it(
    tmp_path_factory: pytest.TempPathFactory, make_capturer: Callable[..., Capturer]
) -> None:
    routes = dash_routes(tmp_path_factory.mktemp("dash"))
    with PageServer(routes=routes) as served:
        capture = make_capturer().capture(served.url("/index.html"))
        first = len(served.paths())
        everything = make_capturer(
            all_renditions=True, archive_dir=tmp_path_factory.mktemp("all") / "archives"
        ).capture(served.url("/index.html"))
        asked, asked_all = set(served.paths()[:first]), set(served.paths()[first:])
    assert capture.status is CaptureStatus.COMPLETE, capture.errors
    assert everything.status is CaptureStatus.COMPLETE, everything.errors
    low = {p for p in routes if "stream0" in p}  # 320x180
    high = {p for p in routes if "stream1" in p}  # 640x360
    audio = {"/dash/init-stream2.m4s", "/dash/chunk-stream2-00001.m4s"}
    assert high | audio <= asked
    assert not low & asked
    assert low | high | audio <= asked_all
    (mpd,) = _responses(capture, "/dash/manifest.mpd", served.base)
    assert _metadata(mpd) == {
        "adaptive_max_resolution": 640 * 360,
        "adaptive_max_bandwidth": 800_000,
    }
    assert mpd.payload == routes["/dash/manifest.mpd"].body
    assert _pywb_dash_keeps(mpd.payload, mpd.get(HEADER)) == ["1", "2"]
    assert check_record(mpd.version, mpd.headers) == []


# ------------------------------------------------------------------ configuration


def test_the_command_line_and_the_configuration_file_take_it(
    server: PageServer, tmp_path: Path
) -> None:
    archive = tmp_path / "archives"
    config = tmp_path / "config.toml"
    config.write_text("[capture]\nallow_private = true\nall_renditions = true\n", "utf-8")
    done = run(
        "capture", server.url("/index.html"), "--archive-dir", str(archive), "--format", "json",
        "--timeout", "5", "--no-platform-videos",
        env={"ARCHIVER_CONFIG": str(config), "ARCHIVER_KEY_PASSPHRASE": None},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    asked = set(server.paths())
    for rung in LADDER:
        assert segments(server.routes, rung) <= asked, rung  # type: ignore[arg-type]
    config.write_text("[capture]\nall_renditions = 1\n", "utf-8")
    wrong = run("capture", server.url("/"), "--archive-dir", str(archive),
                env={"ARCHIVER_CONFIG": str(config)})  # fmt: skip
    assert wrong.returncode == 2
    assert "all_renditions must be true or false" in wrong.stderr
    assert "--all-renditions" in run("capture", "--help").stdout


# --------------------------------------------------------------------- browser mode


@pytest.mark.usefixtures("chromium")
def test_a_browser_capture_names_the_rendition_too(server: PageServer, tmp_path: Path) -> None:
    """With --browser the player's own requests go through the same recorder: every
    record of the master names the best, whose segments are all fetched.  (Chromium's
    player asks for the master with ``Range: bytes=0-``, and it is fetched whole again
    afterwards; the variants the player itself opened are captured whole too: it starts
    with the first listed.)"""
    options = CaptureOptions(
        archive_dir=tmp_path / "archives",
        allow_private=True,
        browser=True,
        timeout=5,
        browser_timeout=15,
        platform_videos=False,
        max_scroll=1,
    )
    began = time.monotonic()
    capture = Capturer(options, signer=fixed_signer(), hostname="test-host").capture(
        server.url("/index.html")
    )
    assert capture.status is CaptureStatus.COMPLETE, capture.errors
    assert time.monotonic() - began < 60
    assert segments(server.routes, BEST) <= set(server.paths())  # type: ignore[arg-type]
    masters = _responses(capture, MASTER, server.base)
    assert masters
    for master in masters:
        assert _metadata(master) == {
            "adaptive_max_resolution": BEST.pixels,
            "adaptive_max_bandwidth": BEST.bandwidth,
        }
        assert master.payload == server.routes[MASTER].body
