"""The one reader of a stored record (archiver.warc.reader.read_stored), on real files."""

from __future__ import annotations

import base64
import gzip
import hashlib
import random
import re
import tracemalloc
import zlib
from pathlib import Path
from typing import Any

import pytest

from archiver.warc.reader import CHUNK, Sink, StoredRecord, Unreadable, read_stored
from archiver.warc.writer import WarcFile, WrittenRecord, render_head
from tests.support.paths import DATA
from tests.support.warcs import read_warc

CORPUS = DATA  # foreign WARC files; see tests/data/README.md
HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: video/mp4; codecs=x\r\nX-A: b\r\n\r\n"
BODY = random.Random(5).randbytes(2 * CHUNK + 4321)  # more than a chunk: read on two cores


def fields(n: int, warc_type: str = "response") -> list[tuple[str, str]]:
    out = [
        ("WARC-Type", warc_type),
        ("WARC-Record-ID", f"<urn:uuid:00000000-0000-0000-0000-{n:012d}>"),
        ("WARC-Date", "2020-08-12T10:00:00.000000Z"),
        ("WARC-Target-URI", f"http://example.org/{n}"),
    ]
    if warc_type in ("response", "request"):
        out.append(("Content-Type", f"application/http;msgtype={warc_type}"))
    else:
        out.append(("Content-Type", "application/octet-stream"))
    return out


def write(path: Path, head: bytes = HEAD, body: bytes = BODY, level: int = 0) -> WrittenRecord:
    """One response record written by our writer, streamed as capture writes bodies."""
    wf = WarcFile(path)
    stream = wf.begin_record(fields(1), head, level=level)
    view = memoryview(body)
    for start in range(0, len(body), 700_000):
        stream.write(view[start : start + 700_000])
    written = stream.finish()
    wf.publish()
    return written


def read(path: Path, offset: int, length: int, **kwargs: Any) -> StoredRecord:
    return read_stored(path, offset, length, **kwargs)


def stored(path: Path, offset: int, length: int) -> bytes:
    return path.read_bytes()[offset : offset + length]


@pytest.mark.parametrize("level", [0, 6])
def test_our_record_reads_back_with_the_digests_it_was_written_with(
    tmp_path: Path, level: int
) -> None:
    path = tmp_path / "t.warc.gz"
    w = write(path, level=level)
    rec = read(path, w.offset, w.length)
    assert rec.problems == []
    assert rec.record_sha256 == w.record_sha256
    assert rec.record_sha256 == hashlib.sha256(stored(path, w.offset, w.length)).hexdigest()
    assert (rec.block_sha256, rec.block_length) == (w.block_sha256, len(HEAD) + len(BODY))
    assert (rec.payload_sha256, rec.payload_length) == (w.payload_sha256, len(BODY))
    assert rec.payload_sha256 == hashlib.sha256(BODY).hexdigest()
    assert rec.version == "WARC/1.1" and rec.warc_type == "response"
    assert rec.get("WARC-Record-ID") == w.record_id
    assert rec.http_status == 200 and rec.http_content_type == "video/mp4"
    assert rec.http_header("x-a") == "b" and rec.block is None
    # the same record uncompressed (told by its first bytes, not by the file name)
    plain = tmp_path / "t.warc"
    plain.write_bytes(gzip.decompress(path.read_bytes()))
    again = read(plain, 0, plain.stat().st_size)
    assert again.problems == [] and again.payload_sha256 == w.payload_sha256
    assert again.record_sha256 == hashlib.sha256(plain.read_bytes()).hexdigest()


def test_a_flipped_byte_in_the_block_is_a_block_digest_problem(tmp_path: Path) -> None:
    path = tmp_path / "t.warc.gz"
    w = write(path)
    plain = tmp_path / "t.warc"
    data = bytearray(gzip.decompress(path.read_bytes()))
    data[data.index(b"X-A: b") + 5] ^= 0x01  # in the HTTP head: the block, not the payload
    plain.write_bytes(data)
    rec = read(plain, 0, len(data))
    assert rec.faults == []
    assert rec.mismatches == [f"block digest does not match (declared sha256:{w.block_sha256})"]
    assert rec.payload_sha256 == w.payload_sha256 and rec.block_sha256 != w.block_sha256
    data[-100] ^= 0x01  # in the body: the payload too
    plain.write_bytes(data)
    rec = read(plain, 0, len(data))
    assert [m.split(" ")[0] for m in rec.mismatches] == ["block", "payload"]
    # in a gzip member the same damage breaks the member; every stored byte is still hashed
    member = bytearray(path.read_bytes())
    member[w.offset + w.length - 100] ^= 0x01
    path.write_bytes(member)
    with pytest.raises(Unreadable, match="gzip member is corrupt") as info:
        read(path, w.offset, w.length)
    assert info.value.record_sha256 == hashlib.sha256(member[w.offset :]).hexdigest()


def corpus_response() -> tuple[bytes, bytes]:
    """The response record of example.warc (SHA-1, base32 digests) and its payload."""
    response = next(r for r in read_warc(CORPUS / "example.warc") if r.type == "response")
    data = (CORPUS / "example.warc").read_bytes()
    return data[response.offset : response.offset + response.length], response.payload


@pytest.mark.parametrize("form", ["base32", "hex", "base64"])
def test_a_record_declaring_sha1_digests(tmp_path: Path, form: str) -> None:
    record, payload = corpus_response()
    declared = b"sha1:G7HRM7BGOKSKMSXZAHMUQTTV53QOFSMK"
    assert declared in record
    raw = base64.b32decode(declared[5:])
    assert raw == hashlib.sha1(payload).digest()
    text = {"base32": declared[5:], "hex": raw.hex().encode(), "base64": base64.b64encode(raw)}
    path = tmp_path / "r.warc"
    path.write_bytes(record.replace(declared, b"sha1:" + text[form]))
    rec = read(path, 0, path.stat().st_size)
    assert rec.problems == []
    assert rec.payload_sha256 == hashlib.sha256(payload).hexdigest()
    assert rec.payload_length == len(payload) and rec.http_status == 200
    # a digest that does not hold is named with what the record declares
    wrong = b"sha1:" + base64.b32encode(hashlib.sha1(b"other").digest())
    path.write_bytes(record.replace(declared, wrong))
    rec = read(path, 0, path.stat().st_size)
    assert rec.mismatches == [f"payload digest does not match (declared {wrong.decode()})"]


def test_the_sink_receives_exactly_the_payload(tmp_path: Path) -> None:
    path = tmp_path / "t.warc.gz"
    w = write(path, level=6)
    received = bytearray()
    sizes: list[int] = []
    seen: list[StoredRecord] = []

    def open_sink(rec: StoredRecord) -> Sink:
        seen.append(rec)
        assert rec.http_status == 200 and rec.payload_sha256 is None  # heads read, body not

        def sink(data: memoryview) -> None:
            sizes.append(len(data))
            received.extend(data)

        return sink

    rec = read(path, w.offset, w.length, open_sink=open_sink)
    assert seen == [rec] and bytes(received) == BODY and max(sizes) <= CHUNK
    # a record that is not an HTTP message: its payload is its block
    wf = WarcFile(tmp_path / "r.warc.gz")
    block = b"any bytes\r\n\r\nat all"
    res = wf.write_record(fields(2, "resource"), block, payload_offset=0)
    rev = wf.write_record([*fields(3, "revisit"), ("WARC-Profile", "x")], HEAD)
    wf.publish()
    got = bytearray()
    rec = read(tmp_path / "r.warc.gz", res.offset, res.length, open_sink=lambda r: got.extend)
    assert bytes(got) == block and rec.payload_sha256 == res.payload_sha256
    # a revisit has no payload: the sink is never asked for
    rec = read(tmp_path / "r.warc.gz", rev.offset, rev.length, open_sink=lambda r: 1 / 0)
    assert rec.payload_sha256 is None and rec.problems == []


def test_a_sink_that_fails_stops_the_reading_at_once(tmp_path: Path) -> None:
    path = tmp_path / "t.warc.gz"
    w = write(path)
    calls = 0

    def sink(data: memoryview) -> None:
        nonlocal calls
        calls += 1
        raise KeyError("disk full")

    with pytest.raises(KeyError, match="disk full"):
        read(path, w.offset, w.length, open_sink=lambda rec: sink)
    assert calls == 1


def test_a_bare_lf_http_head_ends_where_fetch_ended_it(tmp_path: Path) -> None:
    head = b"HTTP/1.1 200 OK\nContent-Type: text/plain\nX-A: b\n\n"
    path = tmp_path / "t.warc.gz"
    w = write(path, head=head, body=b"ok\r\n\r\nnot a head", level=6)
    rec = read(path, w.offset, w.length)
    assert rec.problems == [] and rec.payload_sha256 == w.payload_sha256
    assert rec.http_content_type == "text/plain" and rec.http_header("X-A") == "b"


def test_broken_extents(tmp_path: Path) -> None:
    path = tmp_path / "t.warc.gz"
    wf = WarcFile(path)
    one = wf.write_record(fields(1, "resource"), b"one", payload_offset=0)
    two = wf.write_record(fields(2, "resource"), b"two", payload_offset=0)
    wf.publish()
    both = read(path, one.offset, one.length + two.length)
    assert both.faults == ["more than one gzip member in the record's extent"]
    with pytest.raises(Unreadable, match="ends 10 bytes before the end") as info:
        read(path, two.offset, two.length + 10)
    assert info.value.record_sha256 is None
    plain = tmp_path / "t.warc"
    plain.write_bytes(gzip.decompress(path.read_bytes()))
    with pytest.raises(Unreadable, match=re.escape("not a WARC record (it starts '1.1')")):
        read(plain, 5, plain.stat().st_size - 5)


def bomb(path: Path, size: int, warc_type: str) -> str:
    """A record whose block is ``size`` zero bytes, deflated to a few hundred KiB."""
    digest = hashlib.sha256()
    zero = bytes(CHUNK)
    for _ in range(size // CHUNK):
        digest.update(zero)
    head = render_head(
        [
            *fields(1, warc_type),
            ("Content-Length", str(size)),
            ("WARC-Block-Digest", "sha256:" + digest.hexdigest()),
        ]
    )
    deflate = zlib.compressobj(9, zlib.DEFLATED, 31)
    with path.open("wb") as fh:
        fh.write(deflate.compress(head))
        for _ in range(size // CHUNK):
            fh.write(deflate.compress(zero))
        fh.write(deflate.compress(b"\r\n\r\n") + deflate.flush())
    return digest.hexdigest()


@pytest.mark.parametrize("warc_type", ["resource", "response"])
def test_a_decompression_bomb_stays_within_bounded_memory(tmp_path: Path, warc_type: str) -> None:
    size = 256 * CHUNK
    path = tmp_path / "bomb.warc.gz"
    block_sha256 = bomb(path, size, warc_type)
    assert path.stat().st_size < size / 500
    tracemalloc.start()
    try:
        rec = read(path, 0, path.stat().st_size)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 6 * CHUNK, f"peak {peak / CHUNK:.1f} MiB"
    assert rec.block_length == size and rec.block_sha256 == block_sha256
    if warc_type == "response":  # zeros are no HTTP head: looked for in the first MiB only
        assert rec.faults == ["no end of the HTTP head within 1 MiB"]
    else:
        assert rec.problems == [] and rec.payload_length == size
