"""Adversarial review of the lenient foreign-WARC reading (issue 14, point 5).

Each test is a bug found by crafting real files and running the real tools
(``archiver``, ``warcio check``, ``fastwarc check``); no mocks.  Every test fails on
the code as reviewed and says what should happen instead.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import struct
import subprocess
import sys
import textwrap
import zlib
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.support import runner
from tests.support.paths import DATA

BIN = Path(sys.executable).parent
WGET = DATA / "example-wget-bad-target-uri.warc.gz"
WGET_ID = "import-46c5ac2c893a5e20"


def sha1(data: bytes) -> str:
    return "sha1:" + base64.b32encode(hashlib.sha1(data).digest()).decode()


def record(
    n: int,
    warc_type: str,
    block: bytes,
    *,
    eol: bytes = b"\r\n",
    payload: bytes | None = None,
    content_type: str | None = None,
) -> bytes:
    """One WARC/1.0 record as another tool writes it, SHA-1 digests declared."""
    ctype = content_type or f"application/http; msgtype={warc_type}"
    fields = [
        f"WARC-Type: {warc_type}",
        "WARC-Target-URI: http://example.com/",
        "WARC-Date: 2011-03-01T10:00:00Z",
        f"WARC-Record-ID: <urn:uuid:00000000-0000-0000-0000-{n:012d}>",
        f"Content-Type: {ctype}",
        f"WARC-Block-Digest: {sha1(block)}",
    ]
    if payload is not None:
        fields.append(f"WARC-Payload-Digest: {sha1(payload)}")
    fields.append(f"Content-Length: {len(block)}")
    head = b"WARC/1.0" + eol + b"".join(f.encode() + eol for f in fields) + eol
    return head + block + b"\r\n\r\n"


def run(*args: str, archive: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {"ARCHIVER_ARCHIVE_DIR": str(archive)}
    return runner.run(*args, env=env, timeout=timeout, installed=True)


def warcio_passes(path: Path) -> bool:
    done = subprocess.run([str(BIN / "warcio"), "check", str(path)], capture_output=True)
    return done.returncode == 0


def fastwarc_passes(path: Path) -> bool:
    done = subprocess.run(
        [str(BIN / "fastwarc"), "check", "-p", "-q", str(path)], capture_output=True
    )
    return done.returncode == 0


def verify_json(path: Path, tmp_path: Path) -> tuple[int, dict]:
    done = run("verify", str(path), "--format", "json", archive=tmp_path / "none")
    assert "Traceback" not in done.stderr, done.stderr
    (entry,) = json.loads(done.stdout)["unsigned_files"]
    return done.returncode, entry


def import_wget_as_old_code_indexed_it(tmp_path: Path) -> Path:
    """The wget file imported, with the index rows the code before this change wrote
    (checked against that code: url, seed_url and final_url with their brackets)."""
    archive = tmp_path / "archives"
    done = run("index", "import", str(WGET), archive=archive)
    assert done.returncode == 0, done.stdout + done.stderr
    records = archive / "index" / "records" / f"{WGET_ID}.parquet"
    captures = archive / "index" / "captures" / f"{WGET_ID}.parquet"
    for path, columns in ((records, ["url"]), (captures, ["seed_url", "final_url"])):
        table = pq.read_table(path)
        for name in columns:
            values = [v if v is None else f"<{v}>" for v in table.column(name).to_pylist()]
            at = table.schema.get_field_index(name)
            table = table.set_column(at, name, pa.array(values, pa.string()))
        pq.write_table(table, path)
    return archive


# (4) upgrade path ---------------------------------------------------------------------


def test_an_index_built_before_brackets_were_dropped_still_verifies(tmp_path: Path) -> None:
    """An archive into which the previous release imported a wget file holds index rows
    with ``<http://…>`` in url, seed_url and final_url (that release verified it: exit
    0).  The new verify compares them with the bare URL it now reads and FAILS the
    archive (exit 1, seven problems), though neither the file nor any digest changed.

    Older archives must keep verifying: the stale rows may be said (with the hint to run
    `archiver index rebuild`) as a note, not as a failure."""
    archive = import_wget_as_old_code_indexed_it(tmp_path)
    done = run("verify", archive=archive)
    assert done.returncode == 0, done.stdout
    assert "index rebuild" in done.stdout  # telling the user is fine


# (5) extract --url on such an archive ---------------------------------------------------


@pytest.mark.parametrize("url", ["<http://example.com/>", "http://example.com/"])
def test_extract_by_url_finds_rows_indexed_with_brackets_before(url: str, tmp_path: Path) -> None:
    """On an archive whose wget import was indexed by the previous release (bracketed
    url column), `extract ID --url "<http://example.com/>"` used to work; now
    find_record strips the brackets before looking up, so neither the bracketed nor the
    plain URL is found ("URL http://example.com/ is not in capture", exit 2).

    Both forms should find the response (look up the bare URL and its bracketed form)."""
    archive = import_wget_as_old_code_indexed_it(tmp_path)
    out = tmp_path / "page.html"
    done = run("extract", WGET_ID, "--url", url, "-o", str(out), archive=archive)
    assert done.returncode == 0, done.stderr
    assert b"Example Domain" in out.read_bytes()


# (6) archiver passes what both warcio and FastWARC fail --------------------------------


@pytest.mark.parametrize("name", ["ff.warc", "ff.warc.gz"])
def test_a_form_feed_line_ends_the_http_head_for_warcio_so_the_payload_digest_fails(
    name: str, tmp_path: Path
) -> None:
    """A response whose HTTP head has no CRLF CRLF takes the new fallback
    (`_blank_line_end`), which ends the head only at a line of space, tab or CR.  warcio
    ends it at the first line that Python's ``str.rstrip`` empties, and that includes a
    line holding a form feed (also VT, FS..US, NEL, NBSP).  The payload digest here is
    the one of archiver's reading only: warcio and FastWARC both FAIL the file, and
    archiver says OK with a note.  (The code before this change failed it.)

    Whatever the head end, a declared digest that fails under warcio's reading must not
    pass: `_blank_line_end` should treat as blank exactly the lines warcio does (or fail
    a record whose head end is ambiguous)."""
    block = b"HTTP/1.1 200 OK\r\nX: a\r\n\x0c\r\nContent-Type: text/html\r\n \r\nBODY"
    data = record(1, "response", block, payload=b"BODY")
    path = tmp_path / name
    path.write_bytes(gzip.compress(data, mtime=0) if name.endswith(".gz") else data)
    assert not warcio_passes(path) and not fastwarc_passes(path)  # the oracles agree
    status, entry = verify_json(path, tmp_path)
    assert status == 1 and not entry["ok"], entry


# (6) archiver fails what both warcio and FastWARC pass ---------------------------------


def test_a_response_whose_http_head_has_no_empty_line_is_a_note(tmp_path: Path) -> None:
    """A response record whose block is an HTTP head without its empty line (a 304, as
    some recorders wrote it) passes `warcio check` and `fastwarc check -p`; the request
    of the same shape is now a note, but the response still FAILS with "no end of the
    HTTP head" although no digest is wrong.

    It should be read as warcio reads it (the whole block is the head, no payload) and
    said as a note, as for a request."""
    block = b'HTTP/1.1 304 Not Modified\r\nETag: "x"\r\n'
    path = tmp_path / "head-only-response.warc"
    path.write_bytes(record(1, "response", block, payload=b""))
    assert warcio_passes(path) and fastwarc_passes(path)
    status, entry = verify_json(path, tmp_path)
    assert status == 0 and entry["ok"] and entry["problems"] == [], entry
    assert entry["notes"], entry


# (3) quadratic time ---------------------------------------------------------------------


def stored_gzip(data: bytes, piece: int = 1) -> bytes:
    """A valid gzip member made of stored deflate blocks of ``piece`` bytes each."""
    out = bytearray(b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff")
    for at in range(0, len(data), piece):
        chunk = data[at : at + piece]
        final = 1 if at + piece >= len(data) else 0
        out += bytes([final]) + struct.pack("<HH", len(chunk), 0xFFFF ^ len(chunk)) + chunk
    out += struct.pack("<II", zlib.crc32(data), len(data) & 0xFFFFFFFF)
    return bytes(out)


@pytest.mark.parametrize("where", ["warc", "http"])
def test_head_end_search_is_linear_in_tiny_gzip_blocks(where: str, tmp_path: Path) -> None:
    """`_blank_line_end(head, before)` searches from the last LF before the new bytes,
    so while a long head line grows piece by piece every piece rescans the whole line.
    A gzip member of 1-byte stored blocks yields one piece per byte: reading a 384 KiB
    head line takes ~30 s (1 MiB, the head limit: minutes per record; a file of such
    records hangs verify and import).  The code before this change read it in ~1 s.

    The search must resume where the previous one stopped (as `_head_end` does with
    ``before - 3``), in `_warc_head` and in the CR CR LF path of `_http_head`."""
    line = b"a" * (384 * 1024)
    if where == "warc":
        data = b"WARC/1.0\r\nWARC-Type: resource\r\nX-Long: " + line + b"\r\n\r\n"
    else:  # LF WARC head: the HTTP head is ended the warcio way
        block = b"HTTP/1.1 200 OK\nX-Long: " + line + b"\n\nB"
        data = record(1, "response", block, eol=b"\n")
    path = tmp_path / "stored.warc.gz"
    path.write_bytes(stored_gzip(data))
    code = textwrap.dedent(
        f"""
        from pathlib import Path
        from archiver.warc.reader import Unreadable, read_stored
        path = Path({str(path)!r})
        try:
            read_stored(path, 0, path.stat().st_size)
        except Unreadable:
            pass
        """
    )
    try:
        subprocess.run([sys.executable, "-c", code], check=True, timeout=10)
    except subprocess.TimeoutExpired:
        pytest.fail("reading one record's head took more than 10 s: quadratic")


# verify import-<id> on a changed file ---------------------------------------------------


def test_verify_an_imported_capture_by_id_after_its_file_was_changed(tmp_path: Path) -> None:
    """`archiver verify import-<id>` finds the file by the captures row, but only takes
    it if its SHA-256 still starts with the id.  Change one byte of the stored copy and
    verify answers "no such imported file" with exit 2 (bad input): the tampering is
    neither detected as such nor located.

    The file the captures row names should be verified anyway: exit 1, the changed
    record named by file and offset (and that the file no longer has the id's hash)."""
    source = tmp_path / "site.warc"
    body = b"<html><body>hello, world</body></html>"
    block = b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\n" + body
    source.write_bytes(record(1, "response", block, payload=body))
    archive = tmp_path / "archives"
    done = run("index", "import", str(source), "--format", "json", archive=archive)
    assert done.returncode == 0, done.stdout + done.stderr
    doc = json.loads(done.stdout)
    stored = Path(doc["stored_as"])
    stored.write_bytes(stored.read_bytes().replace(b"hello", b"jello"))  # one byte
    done = run("verify", doc["capture_id"], archive=archive)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "digest does not match" in done.stdout and stored.name in done.stdout
