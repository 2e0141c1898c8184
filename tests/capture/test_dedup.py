"""Identical payloads stored once: revisit records, followed by verify and extract."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from archiver.capture.dedup import REVISIT_PROFILE
from archiver.capture.run import Capturer
from archiver.core.model import Capture
from archiver.index.store import Index, read_rows
from archiver.ops.extract import extract
from archiver.ops.verify import verify
from tests.support.deterministic import sequential_ids
from tests.support.site import FixtureSite
from tests.support.warcs import read_all

BIN = Path(sys.executable).parent
CLIP = "/embed/clip.mp4"


def twice(
    site: FixtureSite, make_capturer: Callable[..., Capturer], **options: object
) -> tuple[Capture, Capture]:
    ids = iter(["20200812100000-aaaaaaaaaa", "20200819100000-bbbbbbbbbb"])
    captures = []
    for n in range(2):
        capturer = make_capturer(**options)
        capturer.new_id = lambda moment: next(ids)
        capturer.new_record_id = sequential_ids(start=1000 * (n + 1))
        captures.append(capturer.capture(site.url("/embed/player")))
    return captures[0], captures[1]


def test_the_same_video_captured_again_is_a_revisit(
    site: FixtureSite, make_capturer: Callable[..., Capturer], tmp_path: Path
) -> None:
    first, second = twice(site, make_capturer, platform_videos=False)
    clip = site.url(CLIP)
    original = next(r for r in first.records if r.url == clip and r.warc_type == "response")
    revisit = next(r for r in second.records if r.url == clip and r.warc_type != "request")
    assert revisit.warc_type == "revisit" and revisit.refers_to == original.record_id
    assert revisit.payload_sha256 == original.payload_sha256 == site.served[clip]
    stored = next(r for r in read_all(second.warc_files) if r.type == "revisit")
    assert stored.get("WARC-Profile") == REVISIT_PROFILE
    assert stored.get("WARC-Refers-To") == original.record_id
    assert stored.get("WARC-Refers-To-Target-URI") == clip
    assert stored.get("WARC-Refers-To-Date") and stored.get("WARC-Payload-Digest")
    assert len(stored.payload) == 0  # the bytes are stored once, in the first capture
    for path in second.warc_files:
        assert subprocess.run([str(BIN / "warcio"), "check", str(path)]).returncode == 0
    archive = tmp_path / "archives"
    # the index says which record holds the bytes
    rows = {r.record_id: r for r in read_rows(Index(archive), "records")}
    assert rows[revisit.record_id].refers_to == original.record_id
    # verify resolves it; extract follows it
    assert verify(archive).ok
    assert verify(archive, [second.capture_id]).ok  # the original checked outside the scope
    out = tmp_path / "clip.mp4"
    extract(archive, second.capture_id, out, url=clip)
    assert out.read_bytes() == site.decoded_body(CLIP)


def test_a_revisit_whose_original_is_gone_fails(
    site: FixtureSite, make_capturer: Callable[..., Capturer], tmp_path: Path
) -> None:
    first, second = twice(site, make_capturer, platform_videos=False)
    archive = tmp_path / "archives"
    for path in first.warc_files:
        path.unlink()
    assert first.manifest is not None
    first.manifest.unlink()
    for table in ("captures", "records"):
        (archive / "index" / table / f"{first.capture_id}.parquet").unlink()
    report = verify(archive, [second.capture_id])
    assert not report.ok, "the revisit's original is gone"
    assert any("bytes it stands for are missing" in p.message for p in report.problems)


def test_no_dedup_stores_the_bytes_again(
    site: FixtureSite, make_capturer: Callable[..., Capturer]
) -> None:
    _, second = twice(site, make_capturer, platform_videos=False, dedup=False)
    assert not [r for r in second.records if r.warc_type == "revisit"]


@pytest.mark.parametrize("platform", [True])
def test_ytdlp_fetching_a_video_twice_stores_it_once(
    site: FixtureSite, make_capturer: Callable[..., Capturer], tmp_path: Path, platform: bool
) -> None:
    host = site.base.split("//", 1)[1]
    capture = make_capturer(platform_hosts=(host,)).capture(site.url("/embed/player"))
    clip = site.url(CLIP)
    kinds = [r.warc_type for r in capture.records if r.url == clip and r.warc_type != "request"]
    assert kinds.count("response") == 1 and kinds.count("revisit") >= 1
    assert verify(tmp_path / "archives").ok


def test_the_refers_to_date_is_the_original_records_date(
    site: FixtureSite, make_capturer: Callable[..., Capturer]
) -> None:
    _, second = twice(site, make_capturer, platform_videos=False)
    first_records = read_all(second.warc_files)
    revisit = next(r for r in first_records if r.type == "revisit")
    original_id = revisit.get("WARC-Refers-To")
    archive_records = read_all(sorted(second.warc_files[0].parent.glob("*.warc.gz")))
    original = next(r for r in archive_records if r.get("WARC-Record-ID") == original_id)
    assert revisit.get("WARC-Refers-To-Date") == original.get("WARC-Date")


def test_unsigned_captures_are_never_originals(
    site: FixtureSite, make_capturer: Callable[..., Capturer]
) -> None:
    ids = iter(["20200812100000-aaaaaaaaaa", "20200819100000-bbbbbbbbbb"])
    unsigned = make_capturer(signer=None, platform_videos=False)
    unsigned.new_id = lambda moment: next(ids)
    unsigned.capture(site.url("/embed/player"))
    signed = make_capturer(platform_videos=False)
    signed.new_id = lambda moment: next(ids)
    signed.new_record_id = sequential_ids(start=5000)
    second = signed.capture(site.url("/embed/player"))
    assert not [r for r in second.records if r.warc_type == "revisit"]
