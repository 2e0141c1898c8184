"""WARC files from other tools with quirks that warcio accepts (issue 14, point 5).

Each file here is written byte by byte (plain, or one gzip member per record) with the
SHA-1 base32 digests other tools declare, and ``warcio check`` is run on it as the
independent oracle.  What warcio passes and whose digests hold, ``archiver verify`` and
``archiver index import`` must pass too, saying the quirk as a note with its file and
offset; a digest that does not hold is still a failure naming file and offset.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from archiver.warc.reader import read_stored
from archiver.warc.rules import check_record
from tests.support import runner
from tests.support.paths import DATA
from tests.support.warcs import read_warc

BIN = Path(sys.executable).parent
URL = "http://example.com/page"
BODY = b"<html><body>hello, world</body></html>\r\n"


def sha1(data: bytes) -> str:
    return "sha1:" + base64.b32encode(hashlib.sha1(data).digest()).decode()


@dataclass
class Rec:
    warc_type: str
    block: bytes
    fields: list[tuple[str, str]]
    payload: bytes | None = None  # declared as WARC-Payload-Digest, when given


def head_fields(n: int, warc_type: str, url: str = URL) -> list[tuple[str, str]]:
    fields = [
        ("WARC-Type", warc_type),
        ("WARC-Target-URI", url),
        ("WARC-Date", "2011-03-01T10:00:00Z"),
        ("WARC-Record-ID", f"<urn:uuid:00000000-0000-0000-0000-{n:012d}>"),
    ]
    if warc_type in ("request", "response", "revisit"):
        msgtype = "request" if warc_type == "request" else "response"
        fields.append(("Content-Type", f"application/http; msgtype={msgtype}"))
    return fields


def render(rec: Rec, eol: bytes = b"\r\n", damage: bool = False) -> bytes:
    """One record as another tool wrote it: WARC/1.0, SHA-1 digests, ``eol`` line ends."""
    fields = [*rec.fields, ("WARC-Block-Digest", sha1(rec.block))]
    if rec.payload is not None:
        fields.append(("WARC-Payload-Digest", sha1(rec.payload)))
    fields.append(("Content-Length", str(len(rec.block))))
    head = b"WARC/1.0" + eol + b"".join(f"{k}: {v}".encode() + eol for k, v in fields) + eol
    block = rec.block
    if damage:  # one byte of the block changed after the digests were taken
        at = block.rindex(b"o")
        block = block[:at] + b"0" + block[at + 1 :]
    return head + block + b"\r\n\r\n"


def response_block(eol: bytes = b"\r\n") -> bytes:
    head = [b"HTTP/1.1 200 OK", b"Content-Type: text/html", b"Content-Length: %d" % len(BODY)]
    return eol.join(head) + eol + eol + BODY


def records(kind: str) -> tuple[list[Rec], bytes]:
    """The records of a file with quirk ``kind``, and the line end of its WARC heads."""
    if kind == "head-without-empty-line":  # as older crawlers and recorders wrote them
        request = b"GET /page HTTP/1.1\r\nHost: example.com\r\nUser-Agent: old-crawler/1.0\r\n"
        revisit = b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 40\r\n"
        revisit_fields = [
            *head_fields(3, "revisit"),
            ("WARC-Profile", "http://netpreserve.org/warc/1.0/revisit/identical-payload-digest"),
            ("WARC-Refers-To-Target-URI", URL),
            ("WARC-Refers-To-Date", "2011-03-01T10:00:00Z"),
        ]
        return [
            Rec("request", request, head_fields(1, "request"), payload=b""),
            Rec("response", response_block(), head_fields(2, "response"), payload=BODY),
            Rec("revisit", revisit, revisit_fields),
        ], b"\r\n"
    if kind == "cr-cr-lf":  # every header line, WARC and HTTP, ends in CR CR LF
        eol = b"\r\r\n"
        request = b"GET /page HTTP/1.1\r\r\nHost: example.com\r\r\n\r\r\n"
        return [
            Rec("response", response_block(eol), head_fields(1, "response"), payload=BODY),
            Rec("request", request, head_fields(2, "request")),
        ], eol
    if kind == "cr-cr-lf-http":  # only the HTTP heads' lines end in CR CR LF
        eol = b"\r\r\n"
        return [
            Rec("response", response_block(eol), head_fields(1, "response"), payload=BODY),
            Rec("response", response_block(eol), head_fields(2, "response"), payload=BODY),
        ], b"\r\n"
    assert kind == "angle-brackets"  # wget's WARC/1.0 files
    request = b"GET /page HTTP/1.1\r\nHost: example.com\r\n\r\n"
    return [
        Rec("request", request, head_fields(1, "request", f"<{URL}>")),
        Rec("response", response_block(), head_fields(2, "response", f"<{URL}>"), payload=BODY),
    ], b"\r\n"


def build(
    path: Path, kind: str, *, damaged: int | None = None
) -> list[int]:  # the records' offsets
    recs, eol = records(kind)
    offsets, out = [], b""
    for i, rec in enumerate(recs):
        data = render(rec, eol, damage=i == damaged)
        if path.name.endswith(".gz"):
            data = gzip.compress(data, mtime=0)
        offsets.append(len(out))
        out += data
    path.write_bytes(out)
    return offsets


# what the notes say, by record (index into the file's records)
NOTES = {
    "head-without-empty-line": {
        0: ["the HTTP head of this request has no empty line after it (the block ends first)"]
    },
    "cr-cr-lf": {
        i: ["WARC header lines end in CR CR LF, not CR LF", "HTTP header lines end in CR CR LF"]
        for i in (0, 1)
    },
    "cr-cr-lf-http": {
        0: ["HTTP header lines end in CR CR LF, not CR LF"],
        1: ["HTTP header lines end in CR CR LF, not CR LF"],
    },
    "angle-brackets": {
        0: [f"WARC-Target-URI <{URL}> is in angle brackets (as wget writes it): indexed as {URL}"],
        1: [f"WARC-Target-URI <{URL}> is in angle brackets (as wget writes it): indexed as {URL}"],
    },
}
KINDS = sorted(NOTES)
NAMES = ["quirk.warc", "quirk.warc.gz"]


def run(*args: str, archive: Path) -> subprocess.CompletedProcess[str]:
    return runner.run(*args, env={"ARCHIVER_ARCHIVE_DIR": str(archive)}, installed=True)


def warcio_check(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "warcio"), "check", "-v", str(path)], capture_output=True, text=True
    )


def verified(path: Path, tmp_path: Path) -> tuple[int, dict[str, Any], str]:
    archive = tmp_path / "none"
    text = run("verify", str(path), archive=archive)
    doc = json.loads(run("verify", str(path), "--format", "json", archive=archive).stdout)
    assert "Traceback" not in text.stderr
    (entry,) = doc["unsigned_files"]
    return text.returncode, entry, text.stdout


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("kind", KINDS)
def test_a_quirk_warcio_accepts_is_a_note_not_a_failure(
    kind: str, name: str, tmp_path: Path
) -> None:
    path = tmp_path / name
    offsets = build(path, kind)
    oracle = warcio_check(path)
    assert oracle.returncode == 0, oracle.stdout + oracle.stderr
    status, entry, text = verified(path, tmp_path)
    assert status == 0 and entry["ok"] and entry["problems"] == [], text
    assert entry["records"] == len(offsets)
    expected = {(offsets[i], note) for i, notes in NOTES[kind].items() for note in notes}
    found = {(n["offset"], n["message"]) for n in entry["notes"]}
    for offset, note in expected:  # each note names its file and the record's offset
        assert any(o == offset and m.startswith(note) for o, m in found), (offset, note, found)
        assert f"note: {path} @ {offset}: record " in text
    assert len(entry["notes"]) == len(expected)
    assert all(n["file"] == str(path) for n in entry["notes"])


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("kind", KINDS)
def test_a_digest_that_does_not_hold_in_a_quirk_file_still_fails(
    kind: str, name: str, tmp_path: Path
) -> None:
    path = tmp_path / name
    offsets = build(path, kind, damaged=1)  # the second record: its offset is not 0
    oracle = warcio_check(path)
    assert oracle.returncode == 1 and f"offset {offsets[1]} " in oracle.stdout, oracle.stdout
    status, entry, text = verified(path, tmp_path)
    assert status == 1 and not entry["ok"]
    problems = entry["problems"]
    # the damaged record, and only it, fails: named by file and offset
    assert {p["offset"] for p in problems} == {offsets[1]}, problems
    assert all(p["file"] == str(path) for p in problems)
    assert any("digest does not match" in p["message"] for p in problems), problems
    assert f"{path} @ {offsets[1]}: record " in text


def test_import_indexes_every_quirk_file_as_complete(tmp_path: Path) -> None:
    archive = tmp_path / "archives"
    files = []
    for kind in KINDS:
        for name in NAMES:
            path = tmp_path / kind / name
            path.parent.mkdir(exist_ok=True)
            build(path, kind)
            files.append(path)
    out = run("index", "import", *map(str, files), "--format", "json", archive=archive)
    assert out.returncode == 0, out.stdout + out.stderr
    docs = [json.loads(line) for line in out.stdout.splitlines()]
    assert len(docs) == len(files)
    for doc in docs:
        assert doc["imported"] and doc["ok"] and doc["problems"] == [], doc
        kind = Path(doc["file"]).parent.name
        assert len(doc["notes"]) == sum(len(n) for n in NOTES[kind].values()), doc
    con = duckdb.connect()
    rows = con.execute(
        f"select count(*), count(problem), count(distinct url), min(url) "
        f"from read_parquet('{archive}/index/records/*.parquet')"
    ).fetchall()
    assert rows == [(sum(len(records(k)[0]) for k in KINDS) * 2, 0, 1, URL)]
    statuses = con.execute(
        f"select distinct status from read_parquet('{archive}/index/captures/*.parquet')"
    ).fetchall()
    assert statuses == [("complete",)]
    # the stored copies are the files as given, quirks and all
    for doc in docs:
        assert Path(doc["stored_as"]).read_bytes() == Path(doc["file"]).read_bytes()
    verify = run("verify", "--format", "json", archive=archive)
    assert verify.returncode == 0, verify.stdout
    assert all(f["ok"] and f["imported_as"] for f in json.loads(verify.stdout)["unsigned_files"])


def test_a_request_without_the_empty_line_extracts_as_warcio_reads_it(tmp_path: Path) -> None:
    path = tmp_path / "old.warc.gz"
    offsets = build(path, "head-without-empty-line")
    rec = read_stored(path, offsets[0], offsets[1] - offsets[0])
    assert rec.problems == [] and rec.notes and rec.payload_sha256 is None
    assert rec.http_header("User-Agent") == "old-crawler/1.0"
    archive = tmp_path / "archives"
    assert run("index", "import", str(path), archive=archive).returncode == 0
    out = tmp_path / "request"
    record_id = "<urn:uuid:00000000-0000-0000-0000-000000000001>"
    done = run("extract", record_id, "-o", str(out), archive=archive)
    assert done.returncode == 0, done.stderr
    assert out.read_bytes() == b""  # the head is the whole block: no body


# wget's angle brackets: the index holds the bare URL ---------------------------------
WGET = DATA / "example-wget-bad-target-uri.warc.gz"


def test_a_bracketed_target_uri_is_found_by_its_plain_url(tmp_path: Path) -> None:
    archive = tmp_path / "archives"
    out = run("index", "import", str(WGET), "--format", "json", archive=archive)
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["ok"] and len(doc["notes"]) == 5  # every record but the warcinfo
    capture_id = doc["capture_id"]
    # the WARC file keeps what wget wrote
    stored = Path(doc["stored_as"])
    assert stored.read_bytes() == WGET.read_bytes()
    assert b"WARC-Target-URI: <http://example.com/>\r\n" in gzip.decompress(stored.read_bytes())
    # SQL, the way the README tells users to query (DuckDB on the Parquet files)
    con = duckdb.connect()
    found = con.execute(
        f"select warc_type from read_parquet('{archive}/index/records/*.parquet') "
        "where url = 'http://example.com/' order by warc_type"
    ).fetchall()
    assert found == [("request",), ("response",)]
    assert not con.execute(
        f"select * from read_parquet('{archive}/index/records/*.parquet') where url like '<%'"
    ).fetchall()
    query = run(
        "query",
        "select seed_url from captures where capture_id = '" + capture_id + "'",
        "--format",
        "json",
        archive=archive,
    )
    assert json.loads(query.stdout) == [{"seed_url": "http://example.com/"}]
    # extract --url with the plain URL finds the response wget stored as <http://…>
    html = tmp_path / "page.html"
    done = run(
        "extract", capture_id, "--url", "http://example.com/", "-o", str(html), archive=archive
    )
    assert done.returncode == 0, done.stderr
    (response,) = [r for r in read_warc(WGET) if r.type == "response"]
    assert html.read_bytes() == response.payload and b"Example Domain" in response.payload
    copied = run(  # the URL as it stands in the WARC file works too
        "extract", capture_id, "--url", "<http://example.com/>", "-o", str(html), "--force",
        archive=archive,
    )  # fmt: skip
    assert copied.returncode == 0, copied.stderr
    # and the index verifies against the file
    assert run("verify", capture_id, archive=archive).returncode == 0
    # an index written before the brackets were taken off (bracketed rows) still verifies
    # (the file and its digests are unchanged): a note says what reading the file gives
    # and how to rewrite the rows; rebuild does it
    (records_file,) = (archive / "index" / "records").glob(f"{capture_id}.parquet")
    table = pq.read_table(records_file)
    urls = [u if u is None else f"<{u}>" for u in table.column("url").to_pylist()]
    column = table.schema.get_field_index("url")
    pq.write_table(table.set_column(column, "url", pa.array(urls, pa.string())), records_file)
    stale = run("verify", capture_id, archive=archive)
    assert stale.returncode == 0, stale.stdout
    assert (
        "note: " in stale.stdout
        and "records column url is '<http://example.com/>'" in stale.stdout
        and "reading the imported file gives 'http://example.com/': `archiver index rebuild` "
        "rewrites the rows from the file"
        in stale.stdout
    )
    # any other difference in a row is still a failure
    other = [u if u is None else u.replace("example", "exampel") for u in urls]
    pq.write_table(table.set_column(column, "url", pa.array(other, pa.string())), records_file)
    changed = run("verify", capture_id, archive=archive)
    assert changed.returncode == 1 and "records column url is '<http://exampel.com/>'" in (
        changed.stdout
    )
    assert run("index", "rebuild", archive=archive).returncode == 0
    assert run("verify", capture_id, archive=archive).returncode == 0


def test_verify_accepts_an_import_id_as_show_and_extract_do(tmp_path: Path) -> None:
    archive = tmp_path / "archives"
    doc = json.loads(run("index", "import", str(WGET), "--format", "json", archive=archive).stdout)
    capture_id = doc["capture_id"]
    assert run("show", capture_id, archive=archive).returncode == 0
    out = run("verify", capture_id, "--format", "json", archive=archive)
    assert out.returncode == 0, out.stdout + out.stderr
    report = json.loads(out.stdout)
    (entry,) = report["unsigned_files"]
    assert entry["imported_as"] == capture_id and entry["ok"]
    assert [c["target"] for c in report["index"]["checks"]] == [capture_id]
    # found by content even when the index is gone; its rows are then missing
    for path in (archive / "index").rglob("*.parquet"):
        path.unlink()
    out = run("verify", capture_id, archive=archive)
    assert out.returncode == 1 and "no index rows for this capture" in out.stdout
    unknown = run("verify", "import-0123456789abcdef", archive=archive)
    assert unknown.returncode == 2 and "import-0123456789abcdef" in unknown.stderr


# a hostile server's head is ended where every WARC reader ends it ------------------------
HOSTILE_HEADS = {
    "cr-cr-lf": b"HTTP/1.1 200 OK\r\nX-A: b\r\n\r\r\nX-B: c\r\nContent-Length: 4\r\n\r\nbody",
    "spaces": b"HTTP/1.1 200 OK\r\nX-A: b\r\n  \r\nX-B: c\r\nContent-Length: 4\r\n\r\nbody",
}


@pytest.mark.parametrize("kind", sorted(HOSTILE_HEADS))
def test_a_head_with_a_white_line_is_split_as_warcio_splits_it(
    kind: str, tmp_path: Path, make_capturer: Any
) -> None:
    """Fetch used to end a head at CRLF CRLF only, so a line of white space (or a CR CR LF
    line) left the headers after it in the head: our signed capture verified while
    ``warcio check`` failed its payload digest. Now the head ends at that line, as warcio,
    pywb and cdxj-indexer end it; what follows is payload, read to the end."""
    import socket

    from tests.support.rawserver import raw_server

    answer = HOSTILE_HEADS[kind]

    def serve(conn: socket.socket, request: bytes) -> None:
        conn.sendall(answer)

    with raw_server(serve) as base:
        capture = make_capturer().capture(base + "/")
    assert capture.status.value == "complete", capture.failure
    (warc,) = capture.warc_files
    check = subprocess.run([BIN / "warcio", "check", str(warc)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    body = answer[answer.index(b"X-B") :]  # the white line before it ended the head
    (page,) = [r for r in read_warc(Path(warc)) if r.type == "response"]  # warcio reads it
    assert page.payload == body and page.http_header("X-A") == "b"
    assert page.http_header("X-B") is None
    verify = runner.run(
        "verify", "--archive-dir", str(tmp_path / "archives"), timeout=None, installed=True
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr


def test_the_field_rules_want_a_bare_target_uri() -> None:
    from archiver.warc.rules import bare_target_uri  # here: the other tests run without it

    assert bare_target_uri("<http://example.com/>") == "http://example.com/"
    assert bare_target_uri("http://example.com/") == "http://example.com/"
    assert bare_target_uri(None) is None
    fields = [
        ("WARC-Type", "response"),
        ("WARC-Record-ID", "<urn:uuid:00000000-0000-0000-0000-000000000001>"),
        ("WARC-Date", "2020-08-12T10:00:00Z"),
        ("Content-Length", "0"),
    ]
    bracketed = check_record("WARC/1.1", [*fields, ("WARC-Target-URI", "<http://example.com/>")])
    assert any("not a bare URI" in p for p in bracketed)
    assert check_record("WARC/1.1", [*fields, ("WARC-Target-URI", "http://example.com/")]) == []


# lines warcio takes for the end of a head (str.rstrip() empties them), and some it does not
WHITE_LINES = [
    b"", b" \t", b"\r", b"\x0b", b"\x0c", b"\x1c", b"\x1f", b"\xc2\x85", b"\xc2\xa0", b"\xa0",
    b"\x85", b"\xe3\x80\x80", b"\xe2\x80\xa8", b"\xa0\xc2", b"\x00", b"\x1b", b"\xc2\xa0\xa0",
]  # fmt: skip


@pytest.mark.parametrize("line", WHITE_LINES)
def test_a_head_ends_exactly_where_warcio_ends_it(line: bytes) -> None:
    from io import BytesIO

    from warcio.statusandheaders import StatusAndHeadersParser

    from archiver.warc.reader import _BlankLineEnd

    head = b"HTTP/1.1 200 OK\r\nX: a\r\n" + line + b"\r\nY: b\r\n\r\nbody"
    stream = BytesIO(head)
    StatusAndHeadersParser(["HTTP/"], verify=False).parse(stream)
    end = stream.tell()  # where warcio's payload starts (its total_len counts characters)
    assert _BlankLineEnd(first=True)(head) == end
    finder, fed = _BlankLineEnd(first=True), bytearray()  # fed a byte at a time: the same
    ends = [finder(fed) for byte in head if not fed.extend(bytes([byte]))]
    assert next(e for e in ends if e is not None) == end


def test_an_empty_http_block_is_a_note(tmp_path: Path) -> None:
    path = tmp_path / "empty.warc"
    path.write_bytes(render(Rec("response", b"", head_fields(1, "response"), payload=b"")))
    assert warcio_check(path).returncode == 0
    rec = read_stored(path, 0, path.stat().st_size)
    assert rec.problems == [] and rec.http_status is None and rec.payload_length == 0
    assert rec.notes == ["the block of this response is empty: read as an HTTP message without "
                         "head or body"]  # fmt: skip


def test_verify_an_imported_capture_whose_file_is_gone(tmp_path: Path) -> None:
    archive = tmp_path / "archives"
    done = run("index", "import", str(WGET), "--format", "json", archive=archive)
    doc = json.loads(done.stdout)
    Path(doc["stored_as"]).unlink()
    gone = run("verify", doc["capture_id"], archive=archive)
    assert gone.returncode == 1, gone.stdout + gone.stderr
    assert "no such file is in the archive" in gone.stdout
