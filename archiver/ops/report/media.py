"""What a stored video is, as media: its duration and picture size, read by ffmpeg from
the payload written out of the archive (verified on the way out), and the size of a PNG.

ffmpeg (the one imageio-ffmpeg ships, a dependency of archiver already: yt-dlp merges
with it) reads only the container's header (``ffmpeg -i FILE``, no decoding), so a
video of a gigabyte costs the copy out of its WARC file and a fraction of a second.
What it reads is what a site sent, so it is read as hostile: only container formats
of video are allowed (``-format_whitelist``: a "video" that is an HLS playlist or an
ffconcat list naming other files or URLs is refused, not followed), only the file
itself may be opened (``-protocol_whitelist file``), nothing from stdin, and it is
given :data:`PROBE_TIMEOUT` seconds.
"""

from __future__ import annotations

import re
import struct
import subprocess
from dataclasses import dataclass
from pathlib import Path

PROBE_TIMEOUT = 60.0
# demuxers of video containers (the mov demuxer is "mov,mp4,m4a,3gp,3g2,mj2": any of its
# names matches); no playlist, concat, image sequence or network demuxer
FORMATS = "mov,matroska,webm,mpegts,flv,avi,asf,ogg,mpeg,m4v,h264,hevc,ivf,mxf"
_DURATION = re.compile(r"^  Duration: (\d+):(\d\d):(\d\d(?:\.\d+)?)", re.MULTILINE)
_VIDEO = re.compile(r"^  Stream #\d+:\d+\S*: Video: (\w+).*?, (\d{1,5})x(\d{1,5})\b", re.MULTILINE)
_ERROR_LINES = 2  # of ffmpeg's complaint, in a note


@dataclass(frozen=True)
class Probe:
    """What ffmpeg read in a file's header: ``duration`` in seconds, ``media`` (the first
    video stream's codec and picture size), or ``note``: why there is no duration."""

    duration: float | None
    media: str | None
    note: str | None
    tool: str | None  # the ffmpeg that read it, and its version


def ffmpeg_tool() -> tuple[str, str] | None:
    """The ffmpeg of imageio-ffmpeg and its version, or None when it is not installed."""
    try:
        import imageio_ffmpeg

        return imageio_ffmpeg.get_ffmpeg_exe(), str(imageio_ffmpeg.get_ffmpeg_version())
    except Exception:  # not installed, or its binary missing for this platform
        return None


def probe(path: Path, tool: tuple[str, str] | None) -> Probe:
    """The duration (and picture) of the media file ``path``, as ffmpeg reads its header."""
    if tool is None:
        return Probe(None, None, "not read: ffmpeg (imageio-ffmpeg) is not installed", None)
    exe, version = tool
    named = f"ffmpeg {version}"
    command = [
        exe,
        "-hide_banner",
        "-nostdin",
        "-format_whitelist",
        FORMATS,
        "-protocol_whitelist",
        "file",
        "-i",
        f"file:{path}",
    ]
    try:
        done = subprocess.run(
            command, stdin=subprocess.DEVNULL, capture_output=True, timeout=PROBE_TIMEOUT
        )
    except subprocess.TimeoutExpired:
        return Probe(None, None, f"not read: {named} took more than {PROBE_TIMEOUT:g} s", named)
    except OSError as exc:
        return Probe(None, None, f"not read: {named} could not run ({exc.strerror})", named)
    said = done.stderr.decode("utf-8", "replace")
    media = None
    if found := _VIDEO.search(said):
        media = f"{found.group(1)}, {found.group(2)}x{found.group(3)} pixels"
    if found := _DURATION.search(said):
        hours, minutes, seconds = found.groups()
        return Probe(int(hours) * 3600 + int(minutes) * 60 + float(seconds), media, None, named)
    if "Duration: N/A" in said:
        return Probe(None, media, f"{named} read the file: it states no duration", named)
    complaint: list[str] = []
    for line in said.splitlines():
        text = line.split("] ", 1)[-1] if line.startswith("[") else line
        text = text.strip().removeprefix("Error opening input: ")
        text = text.removeprefix("Error opening input files: ")
        if text and not text.startswith("Error opening input file ") and text not in complaint:
            complaint.append(text)
    why = "; ".join(complaint[-_ERROR_LINES:]) or f"exit status {done.returncode}"
    return Probe(None, media, f"{named} cannot read it as a video ({why[:300]})", named)


def png_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a PNG's header, or None when ``data`` is not a PNG."""
    if data[:8] != b"\x89PNG\r\n\x1a\n" or data[12:16] != b"IHDR" or len(data) < 24:
        return None
    width, height = struct.unpack(">II", data[16:24])
    return int(width), int(height)


def seconds_text(seconds: float) -> str:
    """1:02:03.500 (h:mm:ss.mmm), 2:03.500 or 3.500 s: a duration for people."""
    whole = int(seconds)
    millis = round((seconds - whole) * 1000)
    if millis == 1000:
        whole, millis = whole + 1, 0
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}:{minutes:02d}:{secs:02d}.{millis:03d}"
    if minutes:
        return f"{minutes}:{secs:02d}.{millis:03d}"
    return f"{secs}.{millis:03d} s"
