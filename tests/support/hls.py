"""Real adaptive streams for the rendition tests, made at test time with ffmpeg (the
``imageio-ffmpeg`` binary, a core dependency): a 2-second test pattern with a tone, H.264
and AAC, cut into 1-second segments.

- :func:`hls_routes`: one HLS media playlist of MPEG-TS segments per rung of a ladder,
  a master playlist naming them (``/hls/master.m3u8``), and a page whose
  ``<video src>`` is that master (``/index.html``);
- :func:`dash_routes`: a DASH manifest (``/dash/manifest.mpd``) of two video
  representations and one audio, fMP4 segments, and a page with ``<video><source>``.

Both give routes for :class:`tests.support.pages.PageServer`, a real server on loopback.
"""

from __future__ import annotations

import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from tests.support.pages import Route

HLS_TYPE = "application/vnd.apple.mpegurl"  # the type pywb rewrites (its match is exact)
SECONDS = 2


@dataclass(frozen=True)
class Rung:
    """One rendition of the ladder: its picture size and the BANDWIDTH the master gives."""

    width: int
    height: int
    bandwidth: int

    @property
    def name(self) -> str:
        return f"{self.width}x{self.height}"

    @property
    def pixels(self) -> int:
        return self.width * self.height


# The first is what a player starts with when it may choose (Chromium takes the first
# listed); the last is the best, above 1280x720: what wabac.js keeps at replay when a
# record names no rendition is the middle one.
LADDER = (Rung(320, 180, 400_000), Rung(640, 360, 1_000_000), Rung(1920, 1080, 5_000_000))
BEST = LADDER[-1]


def ffmpeg() -> str:
    import imageio_ffmpeg  # type: ignore[import-untyped,unused-ignore]

    return str(imageio_ffmpeg.get_ffmpeg_exe())


def _source(width: int, height: int) -> list[str]:
    """ffmpeg's inputs: a moving test pattern of that size and a tone, SECONDS long."""
    return [
        *("-f", "lavfi", "-i", f"testsrc2=size={width}x{height}:rate=25:duration={SECONDS}"),
        *("-f", "lavfi", "-i", f"sine=frequency=440:duration={SECONDS}"),
    ]


_H264 = (
    *("-c:v", "libx264", "-preset", "ultrafast", "-profile:v", "baseline"),
    *("-pix_fmt", "yuv420p", "-g", "25", "-crf", "38"),
)
_AAC = ("-c:a", "aac", "-b:a", "48k")


def _run(args: list[str]) -> None:
    done = subprocess.run(
        [ffmpeg(), "-hide_banner", "-loglevel", "error", "-y", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr


def _encode_hls(folder: Path, rung: Rung) -> None:
    out = folder / rung.name
    out.mkdir(parents=True)
    _run(
        [
            *_source(rung.width, rung.height),
            *_H264,
            *_AAC,
            "-shortest",
            *("-f", "hls", "-hls_time", "1", "-hls_playlist_type", "vod"),
            *("-hls_segment_filename", str(out / "seg%d.ts")),
            str(out / "index.m3u8"),
        ]
    )


def master_playlist(ladder: tuple[Rung, ...] = LADDER) -> str:
    lines = ["#EXTM3U", "#EXT-X-VERSION:3", "#EXT-X-INDEPENDENT-SEGMENTS"]
    for rung in ladder:
        lines += [
            f"#EXT-X-STREAM-INF:BANDWIDTH={rung.bandwidth},RESOLUTION={rung.name},"
            'CODECS="avc1.42e01e,mp4a.40.2"',
            f"{rung.name}/index.m3u8",
        ]
    return "\n".join(lines) + "\n"


HLS_PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>Stream</title></head>
<body><h1>A stream in three renditions</h1>
<video id="v" src="hls/master.m3u8" muted playsinline preload="auto" width="480"></video>
</body></html>
"""


def hls_routes(folder: Path, ladder: tuple[Rung, ...] = LADDER) -> dict[str, Route]:
    """The page, the master playlist, and every media playlist and segment of each rung
    (encoded into ``folder``, all at once)."""
    with ThreadPoolExecutor(max_workers=len(ladder)) as pool:
        list(pool.map(lambda rung: _encode_hls(folder, rung), ladder))
    routes = {
        "/index.html": Route(HLS_PAGE),
        "/hls/master.m3u8": Route(master_playlist(ladder).encode(), HLS_TYPE),
    }
    for rung in ladder:
        for path in sorted((folder / rung.name).iterdir()):
            kind = HLS_TYPE if path.suffix == ".m3u8" else "video/mp2t"
            routes[f"/hls/{rung.name}/{path.name}"] = Route(path.read_bytes(), kind)
    return routes


def segments(routes: dict[str, Route], rung: Rung) -> set[str]:
    """The paths of a rung's segments."""
    return {p for p in routes if p.startswith(f"/hls/{rung.name}/") and p.endswith(".ts")}


DASH_PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>DASH</title></head>
<body><video controls><source src="dash/manifest.mpd" type="application/dash+xml"></video>
</body></html>
"""


def dash_routes(folder: Path) -> dict[str, Route]:
    """A DASH manifest of two video representations (320x180 at 300 kb/s, ``id="0"``;
    640x360 at 800 kb/s, ``id="1"``) and an audio one (``id="2"``), as ffmpeg writes it
    (SegmentTemplate, ``$Number$``), its segments, and a page naming it."""
    out = folder / "dash"
    out.mkdir(parents=True)
    _run(
        [
            *_source(640, 360),
            *("-map", "0:v", "-map", "0:v", "-map", "1:a"),
            *_H264,
            *("-s:v:0", "320x180", "-b:v:0", "300k", "-s:v:1", "640x360", "-b:v:1", "800k"),
            *_AAC,
            *("-f", "dash", "-seg_duration", "1", "-use_template", "1", "-use_timeline", "0"),
            *("-adaptation_sets", "id=0,streams=v id=1,streams=a"),
            str(out / "manifest.mpd"),
        ]
    )
    routes = {"/index.html": Route(DASH_PAGE)}
    for path in sorted(out.iterdir()):
        kind = "application/dash+xml" if path.suffix == ".mpd" else "video/mp4"
        routes[f"/dash/{path.name}"] = Route(path.read_bytes(), kind)
    return routes
