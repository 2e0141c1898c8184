"""An attacker's review of issue 15 points 1, 2 and 4 (who signed what, captures running).

- A running-capture lock proves nothing: anyone who can write the archive can hold
  ``.running/<id>.lock``.  It must never hide a capture whose signed manifest is there.
- A capture deduplicates only against records its own key signed (the signature
  checked, not the index's word): else verify, rightly, fails the honest capture, and
  its bytes were never stored.
- ``verify CAPTURE`` of a recapture reads the index and the original's manifest once,
  not once per revisit.

Everything is real: captures through the command line against a server on loopback,
an attacker key made here, the lock held with flock, the index rewritten with pyarrow.
"""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from archiver.ops.verify import verify
from archiver.trust import keys
from archiver.trust.manifest import Manifest
from tests.support.runner import run
from tests.support.unchanged_site import serve_unchanged


def cli(archive: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run(*args, "--archive-dir", str(archive))


def capture(archive: Path, url: str, *args: str) -> str:
    done = cli(archive, "capture", url, "--format", "json", *args)
    assert done.returncode == 0, done.stderr
    capture_id: str = json.loads(done.stdout)["capture_id"]
    return capture_id


def manifest_of(archive: Path, capture_id: str) -> Manifest:
    (path,) = archive.rglob(f"{capture_id}.manifest.json")
    return Manifest.from_bytes(path.read_bytes())


@pytest.fixture
def server() -> Iterator[str]:
    with serve_unchanged() as url:
        yield url


def hold_running_lock(archive: Path, capture_id: str) -> int:
    """What an attacker does: hold the lock a running capture holds.  The fd."""
    folder = archive / ".running"
    folder.mkdir(exist_ok=True)
    fd = os.open(folder / f"{capture_id}.lock", os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


def test_a_held_running_lock_does_not_hide_a_signed_capture(server: str, tmp_path: Path) -> None:
    archive = tmp_path / "archives"
    capture(archive, server + "/s.css")
    target = capture(archive, server + "/i.png")
    fd = hold_running_lock(archive, target)
    try:
        honest = cli(archive, "verify")  # honest, but its lock held: verified all the same
        assert honest.returncode == 0, honest.stdout + honest.stderr
        assert f"OK capture {target}" in honest.stdout
        assert "its signed manifest and files are verified above" in honest.stdout
        assert "left out" not in honest.stdout

        # the attacker changes the capture's bytes and drops the tail of the custody log
        # (its capture event: nothing anchors the log's end unless it was time-stamped)
        (warc,) = archive.rglob(f"{target}-*.warc.gz")
        data = bytearray(warc.read_bytes())
        data[len(data) // 2] ^= 1
        warc.write_bytes(bytes(data))
        log = archive / "custody" / "events.jsonl"
        lines = log.read_bytes().splitlines(keepends=True)
        cut = next(i for i, line in enumerate(lines) if target in json.loads(line)["captures"])
        log.write_bytes(b"".join(lines[:cut]))

        for args in ((), ("--deep",), (target,)):
            out = cli(archive, "verify", *args)
            assert out.returncode == 1, (args, out.stdout + out.stderr)
            assert f"FAILED capture {target}" in out.stdout, out.stdout
        doc = json.loads(cli(archive, "verify", "--format", "json").stdout)
        assert doc["ok"] is False
        assert [c["ok"] for c in doc["captures"] if c["capture_id"] == target] == [False]
        assert not verify(archive).ok
    finally:
        os.close(fd)


def test_a_capture_deduplicates_only_against_what_its_own_key_signed(
    server: str, tmp_path: Path
) -> None:
    archive = tmp_path / "archives"
    mallory = keys.generate(tmp_path / "mallory")
    planted = capture(archive, server + "/v.mp4", "--key", str(mallory.path))
    capture(archive, server + "/s.css")  # the archivist's key, made now
    (own,) = {k.name.split(".")[0] for k in (archive / "keys").iterdir()} - {mallory.fingerprint}
    # the index is derived data: the attacker says the planted capture is the archivist's
    import pyarrow as pa
    import pyarrow.parquet as pq

    for path in (archive / "index" / "captures").glob("*.parquet"):
        table = pq.read_table(path)
        column = table.column_names.index("key_fingerprint")
        forged = [
            own if cid == planted else fp
            for cid, fp in zip(
                table.column("capture_id").to_pylist(),
                table.column("key_fingerprint").to_pylist(),
                strict=True,
            )
        ]
        table = table.set_column(column, table.schema.field(column), pa.array(forged, pa.string()))
        pq.write_table(table, path)

    first = capture(archive, server + "/v.mp4")
    video = [r for r in manifest_of(archive, first).records if (r.url or "").endswith("/v.mp4")]
    assert [r.warc_type for r in video if r.warc_type in ("response", "revisit")] == ["response"]
    out = cli(archive, "verify", first)
    assert out.returncode == 0, out.stdout + out.stderr

    # its own earlier record still serves: a recapture stores a revisit of it
    again = capture(archive, server + "/v.mp4")
    revisits = [r for r in manifest_of(archive, again).records if r.warc_type == "revisit"]
    originals = {r.record_id for r in video if r.warc_type == "response"}
    assert revisits and {r.refers_to for r in revisits} <= originals
    assert verify(archive, [again]).ok


IMAGES = 300


class ManyImages(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        if self.path == "/":
            body = "".join(f'<img src="/i{i}.png">' for i in range(IMAGES)).encode()
        else:  # over dedup's 1 KiB floor, each its own payload
            body = (self.path.encode() * 400)[:2000]
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_verifying_a_recapture_reads_each_original_manifest_once(tmp_path: Path) -> None:
    archive = tmp_path / "archives"
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), ManyImages)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}/"
        capture(archive, url)
        second = capture(archive, url)
    finally:
        httpd.shutdown()
        httpd.server_close()
    revisits = [r for r in manifest_of(archive, second).records if r.warc_type == "revisit"]
    assert len(revisits) > IMAGES  # the images and the page

    started = time.monotonic()
    assert verify(archive).ok
    whole = time.monotonic() - started
    started = time.monotonic()
    named = verify(archive, [second])  # its originals looked up in the index
    alone = time.monotonic() - started
    assert named.ok, [p.text() for p in named.problems]
    # once per revisit, it read the index and parsed the original's manifest: quadratic
    # (300 revisits: about 10 s; 1000: 150 s), while the whole archive took a second
    assert alone < max(3.0, 4 * whole), (alone, whole)
