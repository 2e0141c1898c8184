"""An attacker's review of the custody log compared with the archive (issue 15, point 3):
an imported file deleted or swapped although its signed import event records it, a tail
cut where nothing anchors the log's end (said, since the log alone cannot tell), and the
cost of comparing an ``adopt`` event of many captures or verifying many captures."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from archiver.capture.run import Capturer
from archiver.ops.verify import verify
from archiver.trust import custody
from tests.support.deterministic import fixed_signer, sequential_ids
from tests.support.paths import DATA
from tests.support.runner import run
from tests.support.site import FixtureSite

WGET = DATA / "example-wget-bad-target-uri.warc.gz"
OTHER = DATA / "example.warc.gz"  # another tool's WARC: what the attacker swaps in
SECOND = "20200812100001-00000000bb"


def verified(archive: Path, *args: str) -> tuple[int, str]:
    out = run("verify", "--archive-dir", str(archive), *args)
    assert "Traceback" not in out.stderr, out.stderr
    return out.returncode, out.stdout + out.stderr


def test_an_imported_file_swapped_or_deleted_fails_naming_its_import_event(
    make_capturer: Callable[..., Capturer], site: FixtureSite, tmp_path: Path, key_file: Path
) -> None:
    """The signed ``index import`` event records the stored file with its SHA-256: the
    file replaced by another tool's WARC of the same name, or deleted (and the index
    rebuilt to match), fails, naming the event; before, verify said it holds."""
    make_capturer().capture(site.url(site.PLAIN))
    archive = tmp_path / "archives"
    a = ("--archive-dir", str(archive))
    imported = run("index", "import", str(WGET), *a)
    assert imported.returncode == 0, imported.stderr
    (event,) = [e for e in custody.check(archive).events if e.action == "index import"]
    assert event.signature and event.key_fingerprint == fixed_signer().fingerprint
    (stored,) = (archive / "warc").rglob("imported/*.warc.gz")
    code, text = verified(archive)
    assert code == 0, text

    shutil.copyfile(OTHER, stored)  # swapped: internally consistent, another content
    assert run("index", "rebuild", *a).returncode == 0
    code, text = verified(archive)
    assert code == 1, text
    relative = stored.relative_to(archive).as_posix()
    assert f"custody event {event.seq} (index import of {event.captures[0]} at " in text
    assert f"changed since it was logged: {relative} has SHA-256 " in text

    stored.unlink()  # deleted, its rows too
    assert run("index", "rebuild", *a).returncode == 0
    code, text = verified(archive)
    assert code == 1, text
    assert f"custody event {event.seq} (index import of {event.captures[0]} at " in text
    assert f"is not in the archive: {relative}" in text


def test_a_tail_cut_where_nothing_anchors_the_end_is_said(
    make_capturer: Callable[..., Capturer], site: FixtureSite, tmp_path: Path
) -> None:
    """The second capture deleted with its event, the log's last: nothing in the archive
    can tell (no stamp), so verify passes, and says that the log's end is not anchored,
    naming the last event and its hash, so a hash kept elsewhere can be compared."""
    make_capturer().capture(site.url(site.PLAIN))
    second = make_capturer()
    second.new_id = lambda moment: SECOND
    second.capture(site.url(site.PLAIN))
    archive = tmp_path / "archives"
    for path in (archive / "warc").rglob(f"{SECOND}*"):
        path.unlink()
    lines = custody.log_path(archive).read_bytes().splitlines(keepends=True)
    custody.log_path(archive).write_bytes(lines[0])
    assert run("index", "rebuild", "--archive-dir", str(archive)).returncode == 0
    report = verify(archive)
    assert report.custody is not None
    head = custody.head_entry(report.custody)
    assert head is not None and head.event is not None
    digest = custody.entry_hash(head)
    (note,) = [n for n in report.custody.notes if "not time-stamped" in n]
    assert f"its last event is {head.event.seq} (sha256 {digest})" in note
    assert "events removed from its end" in note
    assert "`archiver timestamp --custody --tsa URL`" in note
    code, text = verified(archive)  # nothing in the archive tells: it passes, and says so
    assert code == 0 and "the custody log's end is not time-stamped" in text, text


def test_an_adopt_event_of_many_captures_is_compared_in_linear_time(tmp_path: Path) -> None:
    """`archiver custody --adopt` on an archive of 1,000 captures writes one event of
    4,000 files: matching files to captures took time in captures x files (8 s to 30 s)."""
    archive = tmp_path / "archives"
    ids = [f"20200812{n:06d}-{n:010x}" for n in range(1000)]
    files = [
        custody.FileRef(f"warc/default/{i}{suffix}", "ab" * 32)
        for i in ids
        for suffix in ("-00000.warc.gz", "-00001.warc.gz", ".manifest.json", ".manifest.json.sig")
    ]
    custody.CustodyLog(archive, fixed_signer()).append("adopt", captures=ids, files=files)
    report = custody.check(archive)
    assert report.ok, report.problems
    started = time.monotonic()
    assert custody.covered_ids(report) == set(ids)
    compared = custody.compare(report, archive, {}, whole=False)
    assert not compared.problems
    assert time.monotonic() - started < 3


@pytest.mark.slow
def test_verifying_many_captures_takes_linear_time(
    make_capturer: Callable[..., Capturer], site: FixtureSite, tmp_path: Path
) -> None:
    """Each capture's time-stamp tokens were found by listing its whole folder: verify
    took time in captures squared (1,000 captures: 29 s, 16 s of it listing)."""
    archive = tmp_path / "archives"
    timings = {}
    made = 0
    for count in (250, 1000):
        while made < count:
            capturer = make_capturer()
            capturer.new_id = lambda moment, n=made: f"20200812{n:06d}-{n:010x}"
            capturer.new_record_id = sequential_ids(1000 * made + 1)
            capturer.capture(site.url(site.PLAIN))
            made += 1
        started = time.monotonic()
        report = verify(archive)
        timings[count] = time.monotonic() - started
        assert report.ok, [p.text() for p in report.problems][:3]
    assert timings[1000] < 5 * timings[250], timings
