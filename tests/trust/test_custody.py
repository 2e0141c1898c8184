"""The chain of custody: every action logged, signed and chained; tampering found and named."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import subprocess
from collections.abc import Callable
from pathlib import Path

import jsonschema
import pytest
from cryptography.hazmat.primitives import serialization

from archiver.capture.run import Capturer
from archiver.core.model import parse_timestamp
from archiver.trust import custody
from archiver.trust.keys import Signer
from tests.support.deterministic import FixedClock, fixed_signer
from tests.support.paths import SCHEMAS
from tests.support.runner import command, run
from tests.support.site import FixtureSite


def events_of(archive: Path, *args: str) -> list[dict[str, object]]:
    out = run("custody", *args, "--archive-dir", str(archive), "--format", "json")
    assert out.returncode == 0, out.stdout + out.stderr
    events: list[dict[str, object]] = json.loads(out.stdout)["events"]
    return events


def test_every_action_is_logged_signed_and_chained(tmp_path: Path, site: FixtureSite) -> None:
    archive = tmp_path / "archives"
    env = {"ARCHIVER_OPERATOR": "A. Archivist"}
    a = "--archive-dir", str(archive)
    assert run("capture", site.url(site.PLAIN), *a, "--operator", "Field Worker").returncode == 0
    capture_id = next(archive.rglob("*.manifest.json")).name.split(".")[0]
    assert run("verify", *a, env=env).returncode == 0
    out = tmp_path / "page.html"
    assert run("extract", capture_id, "-o", str(out), *a, env=env).returncode == 0
    assert run("index", "rebuild", *a, env=env).returncode == 0
    assert run("index", "compact", *a, env=env).returncode == 0
    (archive / "warc" / "default" / "20200101000000-00000000ff-00000.warc.gz.open").write_bytes(
        b"x"
    )
    assert run("cleanup", "--apply", *a, env=env).returncode == 0
    assert run("keys", "generate", *a, env=env).returncode == 0
    events = events_of(archive)
    assert [e["action"] for e in events] == [
        "key generation",
        "capture",
        "verify",
        "extract",
        "index rebuild",
        "index compact",
        "cleanup",
        "key generation",
    ]
    assert [e["seq"] for e in events] == list(range(1, 9))
    capture_event = events[1]
    assert capture_event["operator"] == "Field Worker" and capture_event["result"] == "complete"
    assert capture_event["captures"] == [capture_id]
    manifest = next(archive.rglob("*.manifest.json"))
    files = {f["path"]: f["sha256"] for f in capture_event["files"]}  # type: ignore[union-attr]
    rel = str(manifest.relative_to(archive))
    assert files[rel] == hashlib.sha256(manifest.read_bytes()).hexdigest()
    for path, sha in files.items():  # every file of the capture, with its hash
        assert hashlib.sha256((archive / path).read_bytes()).hexdigest() == sha
    extract_event = events[3]
    assert extract_event["operator"] == "A. Archivist"
    assert extract_event["files"] == [
        {"path": str(out), "sha256": hashlib.sha256(out.read_bytes()).hexdigest()}
    ]
    assert "warc.gz.open" in str(events[6]["detail"])
    # one capture's history; the chain checked as it is shown
    assert [e["action"] for e in events_of(archive, capture_id)] == ["capture", "verify", "extract"]
    text = run("custody", *a)
    assert text.returncode == 0 and "chain intact: 8 events" in text.stdout
    # each line checked independently: the chain by hashing lines, signatures with openssl
    lines = (archive / "custody" / "events.jsonl").read_bytes().splitlines()
    previous = "0" * 64
    for line in lines:
        event = json.loads(line)
        assert event["prev"] == previous
        previous = hashlib.sha256(line).hexdigest()
        signature = bytes.fromhex(event.pop("signature"))
        body = json.dumps(event, sort_keys=True, ensure_ascii=True, separators=(",", ":"))
        (tmp_path / "body").write_bytes(body.encode())
        (tmp_path / "sig").write_bytes(signature)
        key = archive / "keys" / f"{event['key_fingerprint']}.pub.pem"
        ok = subprocess.run(
            ["openssl", "pkeyutl", "-verify", "-pubin", "-inkey", str(key), "-rawin",
             "-in", str(tmp_path / "body"), "-sigfile", str(tmp_path / "sig")],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert "Signature Verified Successfully" in ok.stdout, (event, ok.stderr)
    # every event follows the published schema
    schema = json.loads((SCHEMAS / "custody-event.v1.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    for line in lines:
        jsonschema.validate(json.loads(line), schema)
    assert tuple(schema["required"]) == custody.FIELDS
    assert tuple(schema["properties"]["action"]["enum"]) == custody.ACTIONS
    # verify checks the chain and appends its own event
    checked = run("verify", *a, "--format", "json")
    assert json.loads(checked.stdout)["custody"]["ok"] is True
    assert len(events_of(archive)) == 9


@pytest.fixture
def logged(tmp_path: Path) -> Path:
    """An archive with a custody log of six signed events."""
    archive = tmp_path / "archives"
    archive.mkdir()
    log = custody.CustodyLog(archive, fixed_signer(), operator="tester", hostname="host",
                             clock=FixedClock())  # fmt: skip
    for n in range(6):
        log.append("verify", captures=[f"20200812100000-00000000{n:02x}"], detail=f"event {n + 1}")
    return archive


def lines_of(archive: Path) -> list[bytes]:
    return custody.log_path(archive).read_bytes().splitlines(keepends=True)


def write_lines(archive: Path, lines: list[bytes]) -> None:
    custody.log_path(archive).write_bytes(b"".join(lines))


def verify_problems(archive: Path) -> list[str]:
    out = run("verify", "--archive-dir", str(archive), "--format", "json")
    report = json.loads(out.stdout)
    assert out.returncode == (0 if report["custody"]["ok"] else 1)
    problems: list[str] = report["custody"]["problems"]
    return problems


def test_an_intact_log_verifies(logged: Path) -> None:
    assert custody.check(logged).ok and len(custody.check(logged).events) == 6


def test_an_edited_event_is_named(logged: Path) -> None:
    lines = lines_of(logged)
    lines[2] = lines[2].replace(b'"result":"ok"', b'"result":"failed"')
    write_lines(logged, lines)
    problems = verify_problems(logged)
    assert len(problems) == 2, problems  # its signature, and the next event's chain
    assert "line 3 (event 3, verify at " in problems[0]
    assert "its signature does not hold: the event was edited" in problems[0]
    assert "line 4 (event 4" in problems[1] and "does not chain to the event before" in problems[1]


def test_a_deleted_event_is_named(logged: Path) -> None:
    lines = lines_of(logged)
    del lines[2]
    write_lines(logged, lines)
    (problem,) = verify_problems(logged)
    assert "line 3 (event 4" in problem and "its number follows 2" in problem
    assert "removed, inserted or moved" in problem


def test_reordered_events_are_named(logged: Path) -> None:
    lines = lines_of(logged)
    lines[1], lines[2] = lines[2], lines[1]
    write_lines(logged, lines)
    problems = verify_problems(logged)
    assert "line 2 (event 3" in problems[0] and "its number follows 1" in problems[0]
    assert any("line 3 (event 2" in p for p in problems)


def test_an_inserted_event_is_named(logged: Path, tmp_path: Path) -> None:
    """A forger inserts a well-formed event, chained to the one before, signed by a key of
    their own published in the archive: the event after it no longer chains."""
    lines = lines_of(logged)
    forger = Signer.of(fixed_signer(9).key)
    before = json.loads(lines[2])
    forged = custody.Event(
        seq=4,
        time=parse_timestamp(before["time"]),
        action="extract",
        operator="forger",
        host="elsewhere",
        tool="archiver/0.1.0",
        captures=(),
        files=(),
        result="ok",
        detail=None,
        prev=hashlib.sha256(lines[2].rstrip(b"\n")).hexdigest(),
        key_fingerprint=forger.fingerprint,
    )
    forged = custody.Event(
        **{**forged.__dict__, "signature": forger.sign(forged.signed_bytes()).hex()}
    )
    (logged / "keys").mkdir(exist_ok=True)
    (logged / "keys" / f"{forger.fingerprint}.pub.pem").write_bytes(
        forger.key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    write_lines(logged, [*lines[:3], forged.line() + b"\n", *lines[3:]])
    problems = verify_problems(logged)
    assert problems and "line 5 (event 4" in problems[0] and "its number follows 4" in problems[0]


@pytest.mark.parametrize("cut", [40, 5, 0])
def test_a_line_cut_by_a_crash_is_noted_and_the_chain_goes_on(logged: Path, cut: int) -> None:
    """Cut after 40 or 5 bytes, or zeros where a power loss left the file longer than
    what reached the disk."""
    lines = lines_of(logged)
    tail = lines[0][:cut] if cut else b"\0" * 300
    write_lines(logged, [*lines, tail])  # a write cut short, no newline
    report = custody.check(logged)
    assert report.ok and "line 7: an interrupted write" in report.notes[0]
    log = custody.CustodyLog(logged, fixed_signer(), operator="tester", hostname="host")
    event = log.append("verify")
    assert event.seq == 7
    report = custody.check(logged)
    assert report.ok, report.problems
    assert [e.seq for e in report.events] == [1, 2, 3, 4, 5, 6, 7]


def test_unsigned_events_are_chained_and_said(logged: Path) -> None:
    custody.CustodyLog(logged, None, hostname="host").append("verify")
    report = custody.check(logged)
    assert report.ok and "1 event not signed" in report.notes[0]
    # an unsigned event in the middle that is edited: the next signed event's chain breaks
    custody.CustodyLog(logged, fixed_signer(), hostname="host").append("verify")
    lines = lines_of(logged)
    lines[6] = lines[6].replace(b'"result":"ok"', b'"result":"failed"')
    write_lines(logged, lines)
    (problem,) = custody.check(logged).problems
    assert "line 8 (event 8" in problem and "does not chain" in problem


def _append_many(archive: str, seed: int, count: int) -> None:
    log = custody.CustodyLog(Path(archive), fixed_signer(seed), hostname=f"writer-{seed}")
    for n in range(count):
        log.append("verify", detail=f"writer {seed} event {n}")


def test_concurrent_writers_never_fork_the_chain(tmp_path: Path) -> None:
    archive = tmp_path / "archives"
    archive.mkdir()
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_append_many, args=(str(archive), s, 60)) for s in (1, 2, 3)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(120)
        assert worker.exitcode == 0
    report = custody.check(archive)
    assert report.ok, report.problems
    assert [e.seq for e in report.events] == list(range(1, 181))
    assert {e.host for e in report.events} == {"writer-1", "writer-2", "writer-3"}


def test_two_captures_at_once_log_both(tmp_path: Path, site: FixtureSite) -> None:
    archive = tmp_path / "archives"
    a = ("--archive-dir", str(archive))
    assert run("keys", "generate", *a).returncode == 0  # so that neither capture makes one
    procs = [
        subprocess.Popen(
            command("capture", site.url(site.PLAIN), *a),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for _ in range(2)
    ]
    for proc in procs:
        assert proc.wait(120) == 0, proc.stderr.read() if proc.stderr else ""
    events = events_of(archive)
    assert [e["action"] for e in events] == ["capture", "capture"]  # no archive held the key
    assert len({e["captures"][0] for e in events}) == 2  # type: ignore[index]


def test_custody_of_a_capture_with_no_log_and_bad_input(
    tmp_path: Path, make_capturer: Callable[..., Capturer], site: FixtureSite
) -> None:
    archive = tmp_path / "archives"
    make_capturer().capture(site.url(site.PLAIN))  # the library logs its capture too
    (event,) = events_of(archive)
    assert event["action"] == "capture" and event["host"] == "test-host"
    empty = tmp_path / "empty"
    empty.mkdir()
    out = run("custody", "--archive-dir", str(empty))
    assert out.returncode == 0 and "no custody log" in out.stdout
    assert run("custody", "--archive-dir", str(tmp_path / "none")).returncode == 2
    custody.log_path(archive).write_bytes(b"not json at all\n{}\n")
    broken = run("custody", "--archive-dir", str(archive))
    assert broken.returncode == 1 and "line 1: not a custody event" in broken.stderr
    assert "Traceback" not in broken.stderr


def test_a_log_signed_again_by_another_key_fails_against_the_trusted_key(
    tmp_path: Path, site: FixtureSite
) -> None:
    """Someone who can write the archive rewrites the log and signs it with a key of their
    own: the chain holds, so only the key tells, when the verifier names the trusted one."""
    archive = tmp_path / "archives"
    a = ("--archive-dir", str(archive))
    assert run("capture", site.url(site.PLAIN), *a).returncode == 0
    assert run("verify", *a).returncode == 0
    real = next((archive / "keys").glob("*.pub.pem"))
    forger = fixed_signer(7)
    log = custody.log_path(archive)
    events = [json.loads(line) for line in log.read_bytes().splitlines()]
    log.unlink()
    rewritten = custody.CustodyLog(archive, forger, hostname="forger")
    for event in events:
        rewritten.append(event["action"], captures=event["captures"], result=event["result"])
    assert custody.check(archive).ok  # without a trusted key, the chain alone holds
    out = run("verify", *a, "--trusted-key", str(real))
    assert out.returncode == 1
    assert f"signed by {forger.fingerprint}, which is not a trusted key" in out.stdout
    assert "(event 1, key generation" in out.stdout and "(event 2, capture" in out.stdout
    # the verify just run signed its event with the real key: to a verifier trusting only
    # the forger's key, someone else's verify is a note, not a failure
    report = custody.check(archive, {forger.fingerprint: None})
    assert report.ok
    real_fp = real.name.removesuffix(".pub.pem")
    assert f"1 verify or extract event signed by {real_fp}, not a trusted key" in str(report.notes)


@pytest.mark.parametrize(
    "line",
    [
        b'{"action":"verify","captures":[],"detail":null,"files":[],"format":"archiver/custody-'
        b'event/1","host":"h","key_fingerprint":null,"operator":null,"prev":"00","result":"ok",'
        b'"seq":2,"signature":5,"time":"2020-01-01T00:00:00Z","tool":"t"}',
        b"[" * 100_000,
        b'{"action":"verify","files":[{"path":1}]}',
    ],
)
def test_a_hostile_line_in_the_log_is_named_and_stops_no_action(
    logged: Path, line: bytes, tmp_path: Path
) -> None:
    lines = lines_of(logged)
    write_lines(logged, [*lines[:3], line + b"\n", *lines[3:]])
    out = run("custody", "--archive-dir", str(logged))
    assert out.returncode == 1 and "line 4: not a custody event" in out.stderr, out.stderr
    assert "Traceback" not in out.stderr
    # at the end of the log it stops nothing either: the next action appends after it
    write_lines(logged, [*lines, line])
    compact = run("index", "compact", "--archive-dir", str(logged))
    assert compact.returncode == 0 and "Traceback" not in compact.stderr, compact.stderr
    assert custody.check(logged).events[-1].action == "index compact"


def test_an_event_written_otherwise_but_read_the_same_is_caught(logged: Path) -> None:
    """Found by atheris: "2020-08-12:10:00" reads as the same time as "2020-08-12T10:00",
    so the signature over the event as archiver writes it still held."""
    lines = lines_of(logged)
    lines[0] = lines[0].replace(b'"time":"2020-08-12T', b'"time":"2020-08-12:', 1)
    write_lines(logged, lines)
    problems = custody.check(logged).problems
    assert problems and "line 1: not a custody event: it is not written as archiver" in problems[0]
