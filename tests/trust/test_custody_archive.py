"""The custody log compared with the archive, both ways, and its end anchored by a time-stamp
(issue 15, point 3): a capture deleted whole, a log deleted, an event's manifest digest
changed, a capture without an event, and a tail cut after a stamp all fail verify; honest
archives (recaptures, cleanup, imports, captures older than the log) still verify."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from archiver.capture.run import Capturer
from archiver.ops.ingest import rebuild
from archiver.ops.verify import Report, verify
from archiver.trust import custody
from tests.support.deterministic import fixed_signer
from tests.support.paths import DATA
from tests.support.runner import run
from tests.support.site import FixtureSite
from tests.support.tsa import LocalTSA, Pki, make_pki

FIRST = "20200812100000-0123456789"  # make_capturer's id
SECOND = "20200812100001-00000000bb"
LEGACY = DATA / "legacy-capture"
WGET = DATA / "example-wget-bad-target-uri.warc.gz"


@pytest.fixture
def archive(make_capturer: Callable[..., Capturer], site: FixtureSite, tmp_path: Path) -> Path:
    """Two signed captures of one page (the second stores revisits of the first), each
    logged by the library as it ends."""
    make_capturer().capture(site.url(site.PLAIN))
    second = make_capturer()
    second.new_id = lambda moment: SECOND
    second.capture(site.url(site.PLAIN))
    return tmp_path / "archives"


def public_key(archive: Path) -> str:
    return str(archive / "keys" / f"{fixed_signer().fingerprint}.pub.pem")


def problems(report: Report) -> list[str]:
    return [p.text() for p in report.problems]


def verified(archive: Path, *args: str) -> tuple[int, str]:
    out = run("verify", "--archive-dir", str(archive), *args)
    assert "Traceback" not in out.stderr, out.stderr
    return out.returncode, out.stdout + out.stderr


def files_of(archive: Path, capture_id: str) -> list[Path]:
    return sorted(p for p in (archive / "warc").rglob(f"{capture_id}*") if p.is_file())


def test_an_honest_archive_with_a_recapture_verifies(archive: Path) -> None:
    events = custody.check(archive).events
    assert [(e.action, e.captures) for e in events] == [
        ("capture", (FIRST,)),
        ("capture", (SECOND,)),
    ]
    assert all(e.signature for e in events)
    report = verify(archive)
    assert report.ok, problems(report)
    assert verify(archive, trusted=[public_key(archive)]).ok


def test_a_capture_deleted_whole_fails_naming_its_event(archive: Path) -> None:
    """WARC, manifest, signature and index rows gone: the signed log still records it."""
    for path in files_of(archive, SECOND):
        path.unlink()
    rebuild(archive)  # its index rows go too
    report = verify(archive)
    assert not report.ok
    found = [m for m in report.custody.problems if SECOND in m] if report.custody else []
    assert len(found) == 1, problems(report)
    assert found[0].startswith(f"custody event 2 (capture of {SECOND} at ")
    assert (
        "the capture is gone: 3 files it recorded with its SHA-256 are not in the archive"
        in (found[0])
    )
    assert f"warc/default/{SECOND}.manifest.json" in found[0]
    code, text = verified(archive, "--trusted-key", public_key(archive))
    assert code == 1 and f"custody event 2 (capture of {SECOND}" in text


def test_a_deleted_custody_log_fails_with_and_without_a_trusted_key(archive: Path) -> None:
    shutil.rmtree(archive / "custody", ignore_errors=True)
    for trusted in ([], [public_key(archive)]):
        report = verify(archive, trusted=trusted)
        assert not report.ok
        assert any("there is no custody log, and the archive holds 2 captures" in p
                   for p in problems(report)), problems(report)  # fmt: skip
    code, text = verified(archive, "--trusted-key", public_key(archive))
    assert code == 1 and "FAILED custody log custody/events.jsonl: missing" in text, text
    # that verify logged its own event, so the log exists again: the captures have none
    code, text = verified(archive)
    assert code == 1 and "no signed event of the custody log" in text, text
    assert "`archiver custody --adopt`" in text


def rewrite_log(
    archive: Path, forger_seed: int, edit: Callable[[dict[str, Any]], dict[str, Any]]
) -> None:
    """Rewrite every event (``edit`` changes each one's document), signed and chained
    anew with a key of the attacker's own, published in the archive's keys/."""
    lines = custody.log_path(archive).read_bytes().splitlines()
    custody.log_path(archive).unlink()
    log = custody.CustodyLog(archive, fixed_signer(forger_seed), hostname="forger")
    for line in lines:
        doc = edit(json.loads(line))
        log.append(
            doc["action"],
            captures=doc["captures"],
            files=[custody.FileRef(f["path"], f["sha256"]) for f in doc["files"]],
            result=doc["result"],
            detail=doc["detail"],
            operator=doc["operator"],
        )


def test_a_capture_event_holding_another_manifest_digest_fails(archive: Path) -> None:
    """Events are signed: the attacker rewrites the log with a key of their own, the
    second capture's event naming another manifest SHA-256.  The chain holds, and
    without --trusted-key every signature too; the digest does not."""
    manifest = f"warc/default/{SECOND}.manifest.json"

    def edit(doc: dict[str, Any]) -> dict[str, Any]:
        for ref in doc["files"]:
            if ref["path"] == manifest:
                ref["sha256"] = "ab" * 32
        return doc

    rewrite_log(archive, 7, edit)
    assert custody.check(archive).ok  # the chain alone holds
    report = verify(archive)
    assert not report.ok
    (problem,) = [m for m in report.custody.problems] if report.custody else []
    assert problem.startswith(f"custody event 2 (capture of {SECOND} at ")
    assert f"changed since it was logged: {manifest} has SHA-256 " in problem
    assert f"the event recorded {'ab' * 32}" in problem
    # and the events are not the capture's signer's: no event vouches for either capture
    assert f"is signed by {fixed_signer(7).fingerprint}, not by the capture's signer" in str(
        problems(report)
    )


def test_a_capture_without_an_event_fails(archive: Path) -> None:
    """The log's last event (the second capture's) removed: the chain cannot tell, the
    capture it recorded can."""
    lines = custody.log_path(archive).read_bytes().splitlines(keepends=True)
    custody.log_path(archive).write_bytes(b"".join(lines[:-1]))
    assert custody.check(archive).ok
    report = verify(archive)
    assert not report.ok
    (result,) = [c for c in report.captures if not c.ok]
    assert result.capture_id == SECOND
    (problem,) = result.problems
    assert problem.message.startswith("no signed event of the custody log")
    code, text = verified(archive, SECOND)  # named alone, too
    assert code == 1 and "no signed event of the custody log" in text


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return make_pki(tmp_path / "pki", "custody-authority")


@pytest.fixture
def tsa(pki: Pki) -> Iterator[LocalTSA]:
    with LocalTSA(pki) as server:
        yield server


def test_a_tail_cut_after_a_time_stamp_of_the_head_fails(
    archive: Path, pki: Pki, tsa: LocalTSA, key_file: Path
) -> None:
    a = ("--archive-dir", str(archive))
    assert run("verify", *a).returncode == 0  # event 3: the head to stamp
    shown = run("custody", *a)
    assert "`archiver timestamp --custody --tsa URL` (never)" in shown.stdout
    stamped = run("timestamp", "--custody", *a, "--tsa", tsa.url, "--tsa-ca", str(pki.root_cert))
    assert stamped.returncode == 0, stamped.stderr
    head = custody.check(archive).entries[2]
    digest = custody.entry_hash(head)
    assert f"custody log, event 3 (sha256 {digest})" in stamped.stdout
    (token,) = custody.stamps_dir(archive).iterdir()
    assert token.name == f"00000003-{digest}.127.0.0.1-{tsa.port}.tsr"
    assert len(list(archive.rglob("*.sig.*.tsr"))) == 0  # no capture was stamped
    events = custody.check(archive).events
    assert events[-1].action == "timestamp" and events[-1].signature
    assert events[-1].files[0].path == f"custody/stamps/{token.name}"
    code, text = verified(archive, "--tsa-ca", str(pki.root_cert))
    assert code == 0, text
    assert f"custody event 3 (sha256 {digest[:16]}…) time-stamped by 127.0.0.1-" in text
    assert "last stamped: 3" in run("custody", *a).stdout

    # the tail cut back to before the stamped event: the captures' events are intact
    lines = custody.log_path(archive).read_bytes().splitlines(keepends=True)
    custody.log_path(archive).write_bytes(b"".join(lines[:2]))
    assert custody.check(archive).ok
    report = verify(archive)
    assert not report.ok and all(c.ok for c in report.captures)
    assert report.custody is not None
    (problem,) = report.custody.problems
    assert f"custody event 3 (sha256 {digest[:16]}…) was time-stamped" in problem
    assert "no longer in the log" in problem
    code, text = verified(archive)
    assert code == 1 and "no longer in the log" in text


def test_a_logged_head_token_removed_fails(
    archive: Path, pki: Pki, tsa: LocalTSA, key_file: Path
) -> None:
    a = ("--archive-dir", str(archive))
    stamped = run("timestamp", "--custody", *a, "--tsa", tsa.url, "--tsa-ca", str(pki.root_cert))
    assert stamped.returncode == 0, stamped.stderr
    shutil.rmtree(custody.stamps_dir(archive))
    report = verify(archive)
    assert report.custody is not None and not report.ok
    (problem,) = report.custody.problems
    assert "a time-stamp of the custody log the log recorded is missing" in problem


def test_cleanup_and_imports_leave_an_honest_archive_verified(
    archive: Path, make_capturer: Callable[..., Capturer], site: FixtureSite, key_file: Path
) -> None:
    """An unsigned capture (its event unsigned, its files put aside by cleanup), an
    interrupted capture's .open file, and a foreign WARC imported: all logged, none fails."""
    unsigned = make_capturer(signer=None)
    unsigned.new_id = lambda moment: "20200812100003-00000000dd"
    unsigned.capture(site.url(site.PLAIN))
    (archive / "warc" / "default" / "20200812100004-00000000ee-00000.warc.gz.open").write_bytes(
        b"x"
    )
    a = ("--archive-dir", str(archive))
    assert verified(archive)[0] == 1  # the leftovers fail until put aside
    out = run("cleanup", "--apply", *a)
    assert out.returncode == 0, out.stderr
    assert run("index", "import", str(WGET), *a).returncode == 0
    code, text = verified(archive)
    assert code == 0, text
    actions = [e.action for e in custody.check(archive).events]
    assert actions[:3] == ["capture", "capture", "capture"]
    assert "cleanup" in actions and "index import" in actions


def test_captures_older_than_the_log_are_adopted_explicitly(tmp_path: Path, key_file: Path) -> None:
    """tests/data/legacy-capture has no custody log: it fails as a log removed would,
    until `archiver custody --adopt` records it, signed; then it verifies, with a note."""
    archive = tmp_path / "archives"
    for folder in ("warc", "keys"):
        shutil.copytree(LEGACY / folder, archive / folder)
    rebuild(archive)
    report = verify(archive, trusted=[public_key(archive)])
    assert not report.ok
    assert "there is no custody log, and the archive holds 1 capture" in str(problems(report))
    a = ("--archive-dir", str(archive))
    adopted = run("custody", "--adopt", *a)
    assert adopted.returncode == 0, adopted.stderr
    assert "adopted 1 capture as predating the custody log: event 1" in adopted.stdout
    (event,) = custody.check(archive).events
    assert event.action == "adopt" and event.captures == (FIRST,)
    assert event.key_fingerprint == fixed_signer().fingerprint
    report = verify(archive, trusted=[public_key(archive)])
    assert report.ok, problems(report)
    assert report.custody is not None
    assert "1 capture predate the custody log" in report.custody.notes[0]
    again = run("custody", "--adopt", *a)
    assert again.returncode == 0 and "nothing to adopt" in again.stdout
    # the adopted capture is checked like any other: deleted, its event says so
    for path in files_of(archive, FIRST):
        path.unlink()
    rebuild(archive)
    code, text = verified(archive)
    assert code == 1 and f"custody event 1 (adopt of {FIRST}" in text, text


def test_a_head_kept_elsewhere_catches_a_tail_cut_with_the_capture_it_recorded(
    archive: Path,
) -> None:
    """No time-stamp of the head: removing the second capture whole and its event from
    the log's end leaves an archive that holds together; the head hash the archivist
    kept (`archiver custody` prints it) is what finds the cut (--custody-head)."""
    kept = custody.entry_hash(custody.check(archive).entries[-1])  # event 2, SECOND's
    code, text = verified(archive, "--custody-head", kept)
    assert code == 0, text
    code, text = verified(archive, "--custody-head", kept[:16].upper())  # a prefix, any case
    assert code == 0, text
    for path in files_of(archive, SECOND):
        path.unlink()
    rebuild(archive)
    lines = custody.log_path(archive).read_bytes().splitlines(keepends=True)
    custody.log_path(archive).write_bytes(lines[0])  # only the first capture's event
    code, text = verified(archive)
    assert code == 0 and "not time-stamped" in text, text  # what the archive alone can say
    code, text = verified(archive, "--custody-head", kept)
    assert code == 1 and f"no event with SHA-256 {kept}" in text, text
    assert "removed from its end" in text
    code, text = verified(archive, "--custody-head", "not-a-hash")
    assert code == 2 and "--custody-head" in text
