"""archiver verify: who signed what (issue 15, points 1, 2 and 4).

1. A revisit counts only when its original is signed by the capture's own signer (or
   a trusted key), and the original's payload digest is recomputed from its bytes.
2. Every signer is summed up at the end; captures signed by several keys fail unless
   --trusted-key names the keys that may sign.
4. A capture still running (it holds its lock) is "in progress", left out of the
   verdict, not "interrupted".

Everything is real: captures through the command line against servers on loopback,
an attacker key made here, the WARC file rewritten with gzip and plain file writes.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from archiver.ops.ingest import rebuild
from archiver.ops.verify import verify
from archiver.trust import keys
from archiver.trust.manifest import Manifest, public_key_name, signature_path
from tests.support.rawserver import raw_server
from tests.support.runner import command, run
from tests.support.unchanged_site import VIDEO, serve_unchanged


def cli(archive: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run(*args, "--archive-dir", str(archive))


def capture(archive: Path, url: str, *args: str) -> str:
    done = cli(archive, "capture", url, "--format", "json", *args)
    assert done.returncode == 0, done.stderr
    capture_id: str = json.loads(done.stdout)["capture_id"]
    return capture_id


@pytest.fixture
def server() -> Iterator[str]:
    with serve_unchanged() as url:
        yield url


def manifest_file(archive: Path, capture_id: str) -> Path:
    (path,) = archive.rglob(f"{capture_id}.manifest.json")
    return path


def rewrite_body(archive: Path, capture_id: str, signer: keys.Signer) -> str:
    """Rewrite the video's body in ``capture_id`` keeping its declared payload digest
    (the block digest made right), rebuild the manifest, sign it with ``signer`` and
    put its public key in ``keys/``; rebuild the index.  The record's id."""
    path = manifest_file(archive, capture_id)
    old = Manifest.from_bytes(path.read_bytes())
    row = next(r for r in old.records if r.warc_type == "response" and r.url.endswith("/v.mp4"))
    warc = archive / row.warc_filename
    data = warc.read_bytes()
    member = data[row.warc_offset : row.warc_offset + row.warc_length]
    record = gzip.decompress(member)
    head, _, rest = record.partition(b"\r\n\r\n")
    forged_video = bytes(reversed(VIDEO))  # as long as the real one
    assert rest.count(VIDEO) == 1
    rest = rest.replace(VIDEO, forged_video)
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    block = rest[:length]
    lines = [
        b"WARC-Block-Digest: sha256:" + hashlib.sha256(block).hexdigest().encode()
        if line.startswith(b"WARC-Block-Digest:")
        else line
        for line in head.split(b"\r\n")
    ]
    new_member = gzip.compress(b"\r\n".join(lines) + b"\r\n\r\n" + rest, mtime=0)
    delta = len(new_member) - len(member)
    new_data = data[: row.warc_offset] + new_member + data[row.warc_offset + row.warc_length :]
    warc.write_bytes(new_data)
    records = []
    for r in old.records:
        if r.record_id == row.record_id:
            r = dataclasses.replace(
                r,
                warc_length=len(new_member),
                record_sha256=hashlib.sha256(new_member).hexdigest(),
                block_sha256=hashlib.sha256(block).hexdigest(),
            )
        elif r.warc_filename == row.warc_filename and r.warc_offset > row.warc_offset:
            r = dataclasses.replace(r, warc_offset=r.warc_offset + delta)
        records.append(r)
    files = tuple(
        dataclasses.replace(f, size=len(new_data), sha256=hashlib.sha256(new_data).hexdigest())
        if f.path == row.warc_filename
        else f
        for f in old.files
    )
    forged = dataclasses.replace(
        old,
        key_fingerprint=signer.fingerprint,
        capture=dataclasses.replace(old.capture, warc_bytes=old.capture.warc_bytes + delta),
        files=files,
        records=tuple(records),
    )
    text = forged.to_bytes()
    path.write_bytes(text)
    signature_path(path).write_bytes(signer.sign(text))
    key = archive / public_key_name(signer.fingerprint)
    if not key.exists():
        key.write_bytes(keys.public_pem(signer.key.public_key()))
    rebuild(archive)
    return row.record_id


def recaptured(archive: Path, url: str) -> tuple[str, str]:
    """Two captures of the video: the second stores it as a revisit of the first."""
    first = capture(archive, url)
    second = capture(archive, url)
    revisits = [
        r
        for r in Manifest.from_bytes(manifest_file(archive, second).read_bytes()).records
        if r.warc_type == "revisit"
    ]
    assert revisits, "the recapture stores no revisit"
    return first, second


def resign(archive: Path, capture_id: str, signer: keys.Signer) -> None:
    """Sign the capture's manifest again, as it stands, with ``signer``."""
    path = manifest_file(archive, capture_id)
    manifest = Manifest.from_bytes(path.read_bytes())
    text = dataclasses.replace(manifest, key_fingerprint=signer.fingerprint).to_bytes()
    path.write_bytes(text)
    signature_path(path).write_bytes(signer.sign(text))
    rebuild(archive)


def test_a_revisit_vouched_for_by_another_key_fails(server: str, tmp_path: Path) -> None:
    archive = tmp_path / "archives"
    first, second = recaptured(archive, server + "/v.mp4")
    assert verify(archive, [second]).ok
    mallory = keys.Signer.load(keys.generate(tmp_path / "mallory").path, None)
    record_id = rewrite_body(archive, first, mallory)

    report = verify(archive, [second])
    assert not report.ok
    found = [p for p in report.problems if p.capture_id == second and record_id in p.message]
    assert found, [p.text() for p in report.problems]
    assert first in found[0].message and mallory.fingerprint in found[0].message
    assert "not by this capture's signer" in found[0].message
    out = cli(archive, "verify", second, "--deep")
    assert out.returncode == 1, out.stdout
    assert mallory.fingerprint in out.stdout and first in out.stdout
    # the whole archive: the forged capture alone verifies (its own digests hold), and
    # the second signer is named on the last line
    whole = cli(archive, "verify")
    assert whole.returncode == 1
    assert "signed by 2 different keys" in whole.stderr.splitlines()[-1]
    assert mallory.fingerprint in whole.stderr.splitlines()[-1]
    # trusting the attacker's key as well lets the original count: then only the
    # recomputed payload digest tells the body was changed
    archivist = next(fp for fp in verify(archive).signers if fp != mallory.fingerprint)
    both = verify(archive, [second], trusted=[archivist, mallory.fingerprint])
    assert any("recomputed from its stored bytes" in p.message for p in both.problems), [
        p.text() for p in both.problems
    ]
    # and so it does when the rewrite is signed with the archivist's own key
    store = Path(os.environ["ARCHIVER_KEY_STORE"])
    own = keys.Signer.load(keys.find_key(store, None).path, None)
    assert own.fingerprint == archivist
    resign(archive, first, own)
    again = verify(archive, [second])
    problems = [p for p in again.problems if p.record_id and record_id in p.message]
    assert problems and "recomputed from its stored bytes" in problems[0].message
    assert again.signers_problem is None


def test_captures_signed_by_several_keys_fail_unless_the_keys_are_trusted(
    server: str, tmp_path: Path
) -> None:
    archive = tmp_path / "archives"
    capture(archive, server + "/page")
    one = verify(archive)
    assert one.ok and list(one.signers.values()) == [1] and one.signers_problem is None
    other = keys.generate(tmp_path / "colleague")
    capture(archive, server + "/i.png", "--key", str(other.path))
    capture(archive, server + "/s.css")

    out = cli(archive, "verify")
    assert out.returncode == 1, out.stdout + out.stderr
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith("FAILED") and "signed by 2 different keys" in last
    assert f"{other.fingerprint} (1 capture)" in last and "(2 captures)" in last
    assert "signers: 2 keys" in out.stdout and f"  {other.fingerprint}: 1 capture" in out.stdout

    doc = verify(archive).to_json()
    assert doc["ok"] is False and "2 different keys" in doc["signers_problem"]
    counts = {s["key_fingerprint"]: s["captures"] for s in doc["signers"]}
    assert counts[other.fingerprint] == 1 and sorted(counts.values()) == [1, 2]

    archivist = next(fp for fp in counts if fp != other.fingerprint)
    trusted = cli(archive, "verify", "--trusted-key", archivist, "--trusted-key", other.fingerprint)
    assert trusted.returncode == 0, trusted.stdout + trusted.stderr
    assert "everything holds" in trusted.stdout and "a trusted key" in trusted.stdout


# captures still running ----------------------------------------------------------------
def trickle(conn: socket.socket, request: bytes) -> None:
    path = request.split(b" ", 2)[1]
    if path == b"/v.mp4":  # 100 MB announced, sent slowly: the capture runs meanwhile
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: video/mp4\r\n")
        conn.sendall(b"Content-Length: 100000000\r\n\r\n")
        for _ in range(1500):
            conn.sendall(b"v" * 65536)
            time.sleep(0.02)
        return
    body = {
        b"/": b'<html><title>t</title><video src="/v.mp4"></video></html>',
        b"/small": b"<html><title>small</title></html>",
    }.get(path, b"")
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body)


def test_a_running_capture_is_in_progress_not_interrupted(tmp_path: Path) -> None:
    archive = tmp_path / "archives"
    with raw_server(trickle) as base:
        done = capture(archive, base + "/small")
        proc = subprocess.Popen(
            command("capture", base + "/", "--archive-dir", str(archive)),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                opened = list(archive.rglob("*.open"))
                if opened and opened[0].stat().st_size > 500_000:
                    break
                time.sleep(0.05)
            (opened_file,) = archive.rglob("*.open")
            running = opened_file.name[:25]
            assert proc.poll() is None

            out = cli(archive, "verify")
            assert out.returncode == 0, out.stdout + out.stderr
            assert f"IN PROGRESS capture {running}" in out.stdout
            assert "cleanup" not in out.stdout + out.stderr
            assert "1 capture in progress left out" in out.stdout.splitlines()[-1]
            doc = verify(archive).to_json()
            assert doc["ok"] is True and doc["in_progress"] == [running]
            assert [c["capture_id"] for c in doc["captures"]] == [done]
            named = verify(archive, [running])  # asked for by its id
            assert named.in_progress == [running] and not named.captures and not named.ok
        finally:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
    # killed, it no longer holds its lock: now it is interrupted, for cleanup
    after = verify(archive)
    assert not after.in_progress and not after.ok
    assert any("cleanup --apply" in p.message for p in after.problems)
