"""Coverage-guided fuzzing with atheris (libFuzzer), run as
``python -m tests.support.atheris_fuzz TARGET``.

Targets, each fed bytes that libFuzzer mutates with coverage of archiver's code:

- ``verify-warc``: the bytes replace the WARC file of a real signed capture, then
  ``verify`` runs on the archive: it must never raise, and bytes other than the
  original must never verify;
- ``verify-manifest``: the same with the capture's manifest;
- ``import``: ``index import`` of the bytes as a foreign WARC file: an
  ``IngestError`` or an import, never another exception;
- ``verify-token``: the same with the capture's RFC 3161 time-stamp token (a real
  local TSA made it);
- ``custody``: the bytes replace the custody log, then ``verify``: it must never
  raise, and a log that verifies must hold the original events in order (perhaps
  without the last ones);
- ``pages``: what a hostile server can send: the bytes as HTML, CSS, an HLS playlist
  and a DASH manifest; the parsers must never raise.

Any other exception is a crash: libFuzzer stops, prints the input and exits non-zero.
Extra arguments go to libFuzzer (``-runs=N -seed=S``, a corpus directory);
``ARCHIVER_FUZZ_WORK`` names the directory to work in (a temporary one otherwise).
``tests/ops/test_fuzz.py`` runs each target at a small budget.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import atheris

with atheris.instrument_imports(include=["archiver"]):
    from archiver.ops import ingest
    from archiver.ops.verify import verify
    from archiver.trust import custody
    from archiver.web.discover import parse_css, parse_dash, parse_hls, parse_html

from tests.support.fuzzing import accepted_events_are_original, signed_stamped_archive

BASE = "http://127.0.0.1:8000/dir/page.html"


def signed_archive(where: Path) -> Path:
    return signed_stamped_archive(where / "archives", "/plain", where / "pki")


def replacing(archive: Path, victim: Path) -> Callable[[bytes], None]:
    """A target that puts the bytes in place of ``victim``, then verifies the archive."""
    original = victim.read_bytes()

    def target(data: bytes) -> None:
        victim.write_bytes(data)
        report = verify(archive)
        report.to_json()
        if data != original and report.ok:
            raise AssertionError(f"{victim.name} replaced by {data[:64]!r}… and still verified")

    return target


def custody_log(archive: Path) -> Callable[[bytes], None]:
    log = custody.log_path(archive)
    original = log.read_bytes()

    def target(data: bytes) -> None:
        log.write_bytes(data)
        report = verify(archive)
        report.to_json()
        kept = report.custody is None or accepted_events_are_original(report.custody, original)
        if report.ok and not kept:
            raise AssertionError(f"a changed custody log verified: {data[:200]!r}")

    return target


def importing(where: Path) -> Callable[[bytes], None]:
    warc = where / "foreign.warc.gz"

    def target(data: bytes) -> None:
        warc.write_bytes(data)
        shutil.rmtree(where / "imported", ignore_errors=True)
        with contextlib.suppress(ingest.IngestError):
            ingest.import_file(where / "imported", warc, "fuzz")

    return target


def pages(data: bytes) -> None:
    parse_html(data, BASE, "text/html")
    parse_html(data, BASE, None)
    parse_css(data, BASE)
    parse_hls(data, BASE)
    parse_dash(data, BASE)


def main() -> None:
    name, args = sys.argv[1], sys.argv[2:]
    # libFuzzer ends the process itself: the caller gives the work directory and removes it
    work = Path(os.environ.get("ARCHIVER_FUZZ_WORK") or tempfile.mkdtemp(prefix="atheris-"))
    seeds = work / "seeds"
    seeds.mkdir(exist_ok=True)
    if name == "pages":
        target: Callable[[bytes], None] = pages
        (seeds / "page.html").write_bytes(
            b'<html><base href="/x/"><title>t</title><img srcset="a.png 1x, b.png 2x">'
            b'<style>@import "s.css"; a{background:url(i.png)}</style>'
            b'<video src="v.mp4"><source src="v.webm"></video></html>'
        )
        (seeds / "hls.m3u8").write_bytes(
            b'#EXTM3U\n#EXT-X-MAP:URI="init.mp4"\n#EXTINF:2,\nseg1.ts\n#EXT-X-ENDLIST\n'
        )
        (seeds / "dash.mpd").write_bytes(
            b'<MPD mediaPresentationDuration="PT4S"><Period><AdaptationSet>'
            b'<SegmentTemplate media="s$Number$.m4s" duration="2" timescale="1"/>'
            b'<Representation id="v"/></AdaptationSet></Period></MPD>'
        )
    else:
        archive = signed_archive(work)
        warc = next(archive.rglob("*.warc.gz"))
        manifest = next(archive.rglob("*.manifest.json"))
        if name == "verify-warc":
            target = replacing(archive, warc)
            shutil.copy(warc, seeds / "seed.warc.gz")
        elif name == "verify-manifest":
            target = replacing(archive, manifest)
            shutil.copy(manifest, seeds / "seed.json")
        elif name == "verify-token":
            token = next(archive.rglob("*.tsr"))
            target = replacing(archive, token)
            shutil.copy(token, seeds / "seed.tsr")
        elif name == "custody":
            target = custody_log(archive)
            shutil.copy(custody.log_path(archive), seeds / "seed.jsonl")
        elif name == "import":
            target = importing(work)
            shutil.copy(warc, seeds / "seed.warc.gz")
        else:
            raise SystemExit(f"unknown target {name!r}")
    atheris.Setup([sys.argv[0], *args, str(seeds)], target)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
