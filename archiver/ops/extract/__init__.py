"""Write a record's payload (a video, the article HTML) back to a file, verified on the way out.

The index says where each record is (``warc_filename``, ``warc_offset``,
``warc_length``) and what its bytes must hash to.  Extraction reads exactly those
bytes with the reader that index rebuild and import use
(:func:`archiver.warc.reader.read_stored`: fixed chunks, memory does not grow with the size
of a video), and checks before the output file appears under its name:

- the stored bytes of the record (the whole gzip member of a ``.warc.gz``; the
  record itself in an uncompressed ``.warc``) against ``record_sha256``;
- the ``WARC-Record-ID`` in the record's head against ``record_id`` (otherwise the
  index points at the wrong place);
- the payload against ``payload_sha256`` and ``payload_length`` (for records
  without a payload digest, such as requests, the block against ``block_sha256``);
- that the record is whole and well-formed (its block as long as its
  Content-Length, the end of its HTTP head, one whole gzip member).

Any mismatch is an :class:`ExtractionFailed` naming the record, and no output file
is left behind (the output is written under a temporary name by
:func:`archiver.core.atomic.atomic_path` and renamed only when every check passed).

What is written: the entity as the server sent it, minus the transfer coding.
The payload of a response is the HTTP body *as transferred* (that is what
``payload_sha256`` covers, see the README); when the response was sent with
``Transfer-Encoding: chunked``, the chunk framing is removed on the way out by a
streaming de-chunker, while the digest is checked over the body as transferred.
A ``Content-Encoding`` (gzip, br) is kept as served: the file holds the bytes the
server meant as the resource.  ``raw=True`` writes the body as transferred (its
SHA-256 is then ``payload_sha256`` itself).  Records that are not HTTP messages
(warcinfo, metadata, resource) are written whole: their payload is their block.

Streams: :func:`extract_stream` writes the segments of an HLS or DASH stream
concatenated, in playlist order, init segment first, each one verified as above.
The order comes from the manifest as stored in the capture (parsed again with
:func:`archiver.web.discover.parse_hls` / :func:`~archiver.web.discover.parse_dash`), not
from the order in which the segments happened to be fetched.  A stream has
tracks: an HLS master playlist lists variants (``video``), audio renditions
(``audio``) and subtitle tracks (``subtitles``); a DASH manifest lists adaptation
sets (``video``, ``audio``, ``subtitles``).  By default the video track whose
segments were captured is written; ``track`` chooses another by kind or by name
(a DASH Representation or AdaptationSet id, an HLS playlist URL or its path
relative to the master).  Encrypted HLS segments are written as stored.

Errors: :class:`SelectionError` (``user_error`` true: unknown id, a URL not in the
capture, an ambiguous choice, an output path that exists) and
:class:`ExtractionFailed` (``user_error`` false: the archive does not hold what
the index says, a WARC file cannot be read, a segment is missing).
"""

from __future__ import annotations

from pathlib import Path

from archiver.ops.extract.find import find_manifest, find_record
from archiver.ops.extract.payload import CHUNK_SIZE, extract_payload
from archiver.ops.extract.results import (
    ExtractError,
    ExtractionFailed,
    ExtractResult,
    Part,
    SelectionError,
)
from archiver.ops.extract.streams import Track, extract_stream, stream_tracks

__all__ = [
    "CHUNK_SIZE",
    "ExtractError",
    "ExtractResult",
    "ExtractionFailed",
    "Part",
    "SelectionError",
    "Track",
    "extract",
    "extract_payload",
    "extract_stream",
    "find_manifest",
    "find_record",
    "stream_tracks",
]


# --------------------------------------------------------------------------- entry point


def extract(
    archive_dir: Path,
    ident: str,
    out_path: Path,
    *,
    url: str | None = None,
    segments: bool = False,
    track: str | None = None,
    raw: bool = False,
    overwrite: bool = False,
) -> ExtractResult:
    """What ``archiver extract`` does: select, then write a payload or a stream's segments."""
    if segments:
        manifest = find_manifest(archive_dir, ident, url)
        return extract_stream(
            archive_dir, manifest, out_path, track=track, raw=raw, overwrite=overwrite
        )
    if track is not None:
        raise SelectionError("--track chooses a track of a stream: use it with --segments")
    row = find_record(archive_dir, ident, url)
    return extract_payload(archive_dir, row, out_path, raw=raw, overwrite=overwrite)
