"""The library object: a program that uses ``Archive`` does what the command does, and
leaves the same custody trail, which the command's own ``verify`` then accepts.

Real things only: a fixture site on 127.0.0.1, a real key, Parquet, the custody log.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from archiver import Archive, Failure, UsageProblem
from archiver.capture.batch import Job
from archiver.core.model import CaptureOptions, CaptureStatus
from archiver.trust import custody
from archiver.trust.keys import public_pem
from tests.support.deterministic import fixed_signer
from tests.support.paths import DATA
from tests.support.runner import run
from tests.support.site import FixtureSite


def actions(archive: Path) -> list[str]:
    return [event.action for event in custody.check(archive).events]


@pytest.fixture
def captured(tmp_path: Path) -> tuple[Archive, str, FixtureSite]:
    signer = fixed_signer()
    archive = Archive(tmp_path / "archives", signer=signer, operator="library user")
    with FixtureSite() as site:
        # options naming another folder: the capture still goes into this archive
        options = CaptureOptions(archive_dir=tmp_path / "elsewhere", allow_private=True)
        plan = archive.plan([Job(site.url(site.PLAIN))], options)
        results = list(archive.capture(plan, signer=signer))
    assert [c.status for _, c in results] == [CaptureStatus.COMPLETE]
    assert not (tmp_path / "elsewhere").exists()
    return archive, results[0][1].capture_id, site


def test_every_action_of_the_library_writes_its_own_custody_event(
    captured: tuple[Archive, str, FixtureSite], tmp_path: Path
) -> None:
    archive, capture_id, site = captured
    assert actions(archive.path) == ["capture"]

    verified = archive.verify()
    assert verified.result.ok and verified.logged.written

    out = tmp_path / "page.html"
    extracted = archive.extract(capture_id, out)
    assert extracted.logged.written
    assert hashlib.sha256(out.read_bytes()).hexdigest() == extracted.result.sha256

    rows = archive.query("select count(*) as n from records where capture_id = ?", [capture_id])
    assert rows.rows[0]["n"] > 0
    assert archive.list_captures().rows[0]["capture_id"] == capture_id
    row, _, records = archive.show(capture_id)
    assert row["seed_url"] == site.url(site.PLAIN) and records.rows

    assert archive.rebuild().logged.written
    assert archive.compact().logged.written
    imported = archive.import_([DATA / "example.warc.gz"], "foreign")
    assert imported.logged.written
    assert archive.cleanup(apply=True).logged.written is False  # nothing to put aside
    assert archive.adopt().capture_ids == []  # every capture has its event already

    assert actions(archive.path) == [
        "capture",
        "verify",
        "extract",
        "index rebuild",
        "index compact",
        "index import",
    ]
    events = custody.check(archive.path).events
    assert all(e.signature for e in events)
    assert {e.operator for e in events[1:]} == {"library user"}

    # the command accepts the trail a program left: signed by one key, nothing missing
    public = tmp_path / "signer.pub.pem"
    public.write_bytes(public_pem(fixed_signer().key.public_key()))
    checked = run(
        "verify",
        "--archive-dir",
        str(archive.path),
        "--trusted-key",
        str(public),
        "--format",
        "json",
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert json.loads(checked.stdout)["ok"] is True


def test_library_errors_are_of_one_of_two_kinds(
    captured: tuple[Archive, str, FixtureSite], tmp_path: Path
) -> None:
    archive, _, _ = captured
    with pytest.raises(UsageProblem) as unknown:
        archive.show("20990101000000-0000000000")
    assert unknown.value.exit_code == 2
    with pytest.raises(UsageProblem) as bad_url:
        archive.plan([Job("ftp://example.org/")], CaptureOptions(allow_private=True))
    assert bad_url.value.hint == "URL"
    with pytest.raises(UsageProblem):
        archive.query("select * from no_such_table")
    with pytest.raises(Failure) as empty:
        Archive(tmp_path / "nothing-here").list_captures()
    assert empty.value.exit_code == 1 and "no archive" in str(empty.value)
    with pytest.raises(UsageProblem):
        Archive(tmp_path / "nothing-here").cleanup(apply=False)


def test_a_capture_refused_before_anything_is_fetched(tmp_path: Path) -> None:
    """A seed on the archivist's own network is refused by plan, naming the URL, and no
    archive folder appears."""
    archive = Archive(tmp_path / "archives")
    with pytest.raises(UsageProblem) as refused:
        archive.plan([Job("http://127.0.0.1:9/")], CaptureOptions())
    assert "127.0.0.1" in str(refused.value) and refused.value.hint == "URL"
    assert not archive.path.exists()
