"""The WARC writer and its gzip framing, checked with zlib, gzip, warcio and FastWARC."""

from __future__ import annotations

import gzip
import hashlib
import random
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
from fastwarc.warc import ArchiveIterator as FastIterator

from archiver.warc.gzipmember import GapMember, Inflater, crc32_combine, stored_blocks, whole_member
from archiver.warc.rules import check_record
from archiver.warc.writer import WarcFile, WarcSeries, render_head
from tests.support.warcs import read_warc

BIN = Path(sys.executable).parent


def test_crc32_combine_matches_zlib() -> None:
    rng = random.Random(7)
    for size_a, size_b in [(0, 0), (1, 0), (0, 5), (100, 1), (70_000, 3), (5, 300_000)]:
        a, b = rng.randbytes(size_a), rng.randbytes(size_b)
        assert crc32_combine(zlib.crc32(a), zlib.crc32(b), len(b)) == zlib.crc32(a + b)


def test_stored_blocks_are_raw_deflate() -> None:
    data = random.Random(1).randbytes(200_000)
    blocks = stored_blocks(data, final=True)
    assert zlib.decompress(blocks, -15) == data


@pytest.mark.parametrize("level", [0, 1, 6, 9])
@pytest.mark.parametrize("head_size", [0, 10, 65_535, 65_536, 140_000])
def test_gap_member_is_one_valid_gzip_member(tmp_path: Path, level: int, head_size: int) -> None:
    rng = random.Random(head_size + level)
    head = rng.randbytes(head_size)
    body = [rng.randbytes(n) for n in (0, 1, 5000, 300_000)]
    path = tmp_path / "m.gz"
    with path.open("wb") as fh:
        fh.write(whole_member(b"before", 6))
        member = GapMember(fh, head_size + 100, level)
        for piece in body:
            member.write(piece)
        length = member.finish(head)
        fh.write(whole_member(b"after", 6))
    data = path.read_bytes()
    one = data[member.offset : member.offset + length]
    dec = zlib.decompressobj(31)
    assert dec.decompress(one) == head + b"".join(body)
    assert dec.eof and not dec.unused_data
    assert gzip.decompress(data) == b"before" + head + b"".join(body) + b"after"
    assert subprocess.run(["gzip", "-t", str(path)]).returncode == 0


def test_head_larger_than_reserved_is_refused(tmp_path: Path) -> None:
    with (tmp_path / "m.gz").open("wb") as fh:
        member = GapMember(fh, 10, 6)
        member.write(b"x")
        with pytest.raises(ValueError):
            member.finish(b"h" * 100_000)


def _response_fields(n: int) -> list[tuple[str, str]]:
    return [
        ("WARC-Type", "response"),
        ("WARC-Record-ID", f"<urn:uuid:00000000-0000-0000-0000-{n:012d}>"),
        ("WARC-Date", "2020-08-12T10:00:00.000000Z"),
        ("WARC-Target-URI", f"http://example.org/{n}"),
        ("Content-Type", "application/http;msgtype=response"),
    ]


def test_streamed_and_buffered_records_read_back_with_digests(tmp_path: Path) -> None:
    head = b"HTTP/1.1 200 OK\r\nContent-Type: video/mp4\r\n\r\n"
    rng = random.Random(3)
    body = rng.randbytes(3 * 1024 * 1024 + 11)
    path = tmp_path / "t.warc.gz"
    wf = WarcFile(path)
    assert wf.temp_path.exists() and not path.exists()
    buffered = wf.write_record(_response_fields(1), head + body[:1000], payload_offset=len(head))
    stream = wf.begin_record(_response_fields(2), head, level=0)
    view = memoryview(body)
    for start in range(0, len(body), 700_000):
        stream.write(view[start : start + 700_000])
    streamed = stream.finish()
    final = wf.publish()
    assert final == path and path.exists() and not wf.temp_path.exists()
    assert buffered.payload_sha256 == hashlib.sha256(body[:1000]).hexdigest()
    assert streamed.payload_sha256 == hashlib.sha256(body).hexdigest()
    assert streamed.block_sha256 == hashlib.sha256(head + body).hexdigest()
    records = read_warc(path)
    assert [r.payload_sha256 for r in records] == [buffered.payload_sha256, streamed.payload_sha256]
    assert [r.offset for r in records] == [buffered.offset, streamed.offset]
    assert [r.length for r in records] == [buffered.length, streamed.length]
    for rec in records:
        assert check_record(rec.version, rec.headers) == []
    with path.open("rb") as fh:
        assert all(r.verify_block_digest() for r in FastIterator(fh, parse_http=False))
    check = subprocess.run([BIN / "warcio", "check", str(path)], capture_output=True)
    assert check.returncode == 0


def test_truncated_record_is_marked(tmp_path: Path) -> None:
    wf = WarcFile(tmp_path / "t.warc.gz")
    stream = wf.begin_record(_response_fields(1), b"HTTP/1.1 200 OK\r\n\r\n")
    stream.write(b"partial")
    rec = stream.finish("length")
    wf.publish()
    assert rec.truncated == "length"
    (read,) = read_warc(tmp_path / "t.warc.gz")
    assert read.get("WARC-Truncated") == "length"


def test_finished_files_are_never_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "t.warc.gz"
    WarcFile(path).publish()
    with pytest.raises(FileExistsError):
        WarcFile(path)


def test_discarded_file_leaves_nothing(tmp_path: Path) -> None:
    wf = WarcFile(tmp_path / "t.warc.gz")
    wf.write_record(_response_fields(1), b"HTTP/1.1 200 OK\r\n\r\n", payload_offset=19)
    wf.discard()
    assert list(tmp_path.iterdir()) == []


def test_series_rotates_before_a_record_and_starts_each_file_with_warcinfo(
    tmp_path: Path,
) -> None:
    def info(name: str) -> tuple[list[tuple[str, str]], bytes]:
        fields = [
            ("WARC-Type", "warcinfo"),
            ("WARC-Record-ID", f"<urn:uuid:{hashlib.md5(name.encode()).hexdigest()}>"),
            ("WARC-Date", "2020-08-12T10:00:00Z"),
            ("WARC-Filename", name),
            ("Content-Type", "application/warc-fields"),
        ]
        return fields, b"software: test\r\n"

    series = WarcSeries(tmp_path, "cap", 10_000, info)
    for n in range(10):
        with series.lock:
            wf = series.current(3000)
            wf.write_record(
                _response_fields(n),
                b"HTTP/1.1 200 OK\r\n\r\n" + random.Random(n).randbytes(3000),
                payload_offset=19,
                level=0,
            )
    paths = series.close()
    assert len(paths) > 2
    seen = 0
    for path in paths:
        records = read_warc(path)
        assert records[0].type == "warcinfo"
        assert records[0].get("WARC-Filename") == path.name
        seen += len(records) - 1
    assert seen == 10


def test_header_values_cannot_break_the_record() -> None:
    head = render_head([("WARC-Type", "metadata"), ("X-Note", "a\r\nWARC-Type: response\x00")])
    assert head.count(b"\r\n") == 4  # version, two fields, blank line
    assert b"\\x0d\\x0aWARC-Type: response\\x00" in head


RULE_CASES = [
    ([("WARC-Target-URI", "http://x/")], "warcinfo", "WARC-Target-URI must not appear"),
    ([("WARC-Refers-To", "<urn:uuid:1>")], "response", "WARC-Refers-To must not appear"),
    ([("WARC-Concurrent-To", "<urn:uuid:1>")], "warcinfo", "WARC-Concurrent-To must not"),
    ([("WARC-IP-Address", "1.2.3.4")], "conversion", "WARC-IP-Address must not appear"),
    ([("WARC-Payload-Digest", "sha256:" + "0" * 64)], "metadata", "WARC-Payload-Digest"),
    ([("WARC-Filename", "x.warc")], "response", "WARC-Filename must not appear"),
    ([], "revisit", "WARC-Profile is required"),
    ([("WARC-Type", "response")], "response", "repeated"),
    ([("WARC-Truncated", "because")], "response", "not a defined reason"),
    ([("WARC-Block-Digest", "sha256:ABC")], "response", "lowercase hex"),
]


@pytest.mark.parametrize(("extra", "rtype", "message"), RULE_CASES)
def test_field_rules_table_catches_violations(
    extra: list[tuple[str, str]], rtype: str, message: str
) -> None:
    fields = [
        ("WARC-Type", rtype),
        ("WARC-Record-ID", "<urn:uuid:00000000-0000-0000-0000-000000000001>"),
        ("WARC-Date", "2020-08-12T10:00:00Z"),
        ("Content-Length", "0"),
    ]
    if rtype not in ("warcinfo", "metadata"):
        fields.append(("WARC-Target-URI", "http://example.org/"))
    problems = check_record("WARC/1.1", fields + extra)
    assert any(message in p for p in problems), problems


def test_field_rules_reject_old_versions_and_missing_fields() -> None:
    problems = check_record("WARC/1.0", [("WARC-Type", "response")])
    assert any("WARC/1.1" in p for p in problems)
    assert any("WARC-Record-ID" in p for p in problems)
    assert any("WARC-Target-URI is required" in p for p in problems)


# reading members back ---------------------------------------------------------------
def _inflate_all(member: bytes, chunk: int) -> tuple[bytes, bytes]:
    """Feed ``member`` to an Inflater ``chunk`` bytes at a time: (output, bytes after)."""
    inflater = Inflater(limit=4096)
    out = bytearray()
    for start in range(0, len(member), chunk):
        if inflater.eof:
            break
        for pieces in inflater.feed(memoryview(member[start : start + chunk])):
            for piece in pieces:
                out += piece
    assert inflater.eof
    return bytes(out), inflater.unused


def _gap_member(head: bytes, body: bytes, level: int) -> bytes:
    import io

    buf = io.BytesIO()
    member = GapMember(buf, len(head), level)
    member.write(body)
    member.finish(head)
    return buf.getvalue()


@pytest.mark.parametrize("chunk", [1, 7, 64, 4096, 1 << 20])
def test_the_inflater_reads_every_kind_of_member(chunk: int) -> None:
    rnd = random.Random(chunk)
    text = b"WARC/1.1\r\n" + b"".join(
        rnd.choice([b"abc ", b"def\r\n", b"xyz"]) for _ in range(9000)
    )
    noise = rnd.randbytes(200_000)
    members = [
        _gap_member(b"WARC/1.1 head\r\n\r\n", noise, 0),  # stored blocks only
        _gap_member(b"WARC/1.1 head\r\n\r\n", text, 6),  # stored head, then deflate
        whole_member(text, 6),  # deflate from the start
        whole_member(b"", 0),
        gzip.compress(text, mtime=0),  # another writer: FNAME-less, level 9
    ]
    named = bytearray(gzip.compress(noise[:5000], mtime=0))
    named[3] |= 0x08  # FNAME: insert a file name after the fixed header
    members.append(bytes(named[:10]) + b"video.mp4\x00" + bytes(named[10:]))
    for member in members:
        out, after = _inflate_all(member + b"NEXT", chunk)
        assert out == gzip.decompress(member) and after.startswith(b"NEXT"[: len(after)])


def test_the_inflater_refuses_what_zlib_refuses() -> None:
    member = bytearray(_gap_member(b"head\r\n\r\n", random.Random(1).randbytes(70_000), 0))
    flipped = bytearray(member)
    flipped[len(member) // 2] ^= 1
    short_length = bytearray(member)
    short_length[-1] ^= 1  # ISIZE
    for broken, words in (
        (flipped, "incorrect data check"),
        (short_length, "incorrect length check"),
        (b"not gzip at all", "incorrect header check"),
    ):
        with pytest.raises(zlib.error, match=words):
            _inflate_all(bytes(broken), 1000)
    # a member that stops early never reaches its end
    inflater = Inflater(limit=4096)
    for _ in inflater.feed(memoryview(bytes(member[:-20]))):
        pass
    assert not inflater.eof
