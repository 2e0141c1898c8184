"""Issue 15, point 9: a page of 50,000 images, captured in under 300 MB.

What a capture writes after fetching (the metadata record's list of records, the signed
manifest, the records index) is written a piece at a time, never held whole beside the
capture's entries, and the bytes are the same as before.  The whole-process figures are
benchmarks/bench_many_requisites.py's; here each step's Python allocations are bounded.
"""

from __future__ import annotations

import hashlib
import json
import random
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from archiver.capture.run import _metadata_json
from archiver.core.model import RecordEntry
from archiver.index import store as index_module
from archiver.index.store import Index, RecordRow, read_rows
from archiver.trust.keys import signature_holds
from archiver.trust.manifest import Manifest, signature_path, write_signed
from tests.support.deterministic import fixed_signer
from tests.support.golden_manifest import golden_manifest

START = datetime(2026, 12, 6, 3, 0, 0, tzinfo=UTC)
CAPTURE_ID = "20261206030000-0123456789"


def _entry(n: int, **values: Any) -> RecordEntry:
    fields: dict[str, Any] = {
        "record_id": f"<urn:uuid:00000000-0000-4000-8000-{n:012d}>",
        "warc_type": "response",
        "url": f"https://example.org/i/{n:06d}.png",
        "fetched_at": START + timedelta(milliseconds=n),
        "warc_filename": f"{CAPTURE_ID}-00000.warc.gz",
        "warc_offset": 1000 * n,
        "warc_length": 900,
        "block_sha256": hashlib.sha256(b"b%d" % n).hexdigest(),
        "record_sha256": hashlib.sha256(b"r%d" % n).hexdigest(),
        "role": "image",
        "http_status": 200,
        "content_type": "image/png",
        "payload_sha256": hashlib.sha256(b"p%d" % n).hexdigest(),
        "payload_length": 100,
        "ip_address": "93.184.215.14",
        "discovered_from": "https://example.org/",
        "discovered_via": "img[src]",
    }
    fields.update(values)
    return RecordEntry(**fields)


def _row(n: int) -> RecordRow:
    e = _entry(n)
    return RecordRow(
        capture_id=CAPTURE_ID,
        record_id=e.record_id,
        warc_type=e.warc_type,
        url=e.url,
        fetched_at=e.fetched_at,
        http_status=e.http_status,
        content_type=e.content_type,
        payload_sha256=e.payload_sha256,
        payload_length=e.payload_length,
        block_sha256=e.block_sha256,
        record_sha256=e.record_sha256,
        truncated=None,
        ip_address=e.ip_address,
        role=e.role,
        discovered_from=e.discovered_from,
        discovered_via=e.discovered_via,
        concurrent_to=None,
        refers_to=None,
        warc_filename=f"warc/default/{e.warc_filename}",
        warc_offset=e.warc_offset,
        warc_length=e.warc_length,
    )


@contextmanager
def python_peak() -> Iterator[Callable[[], int]]:
    """The peak of Python's allocations inside the block (bytes), from its start."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        peak = [0]
        yield lambda: peak[0]
        peak[0] = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()


def test_the_manifest_is_written_line_by_line_and_signed_from_the_file(tmp_path: Path) -> None:
    signer = fixed_signer()
    built = replace(golden_manifest(), records=tuple(_row(n) for n in range(20_000)))
    expected = built.to_bytes()
    assert len(expected) > 15_000_000
    path = tmp_path / "warc" / "default" / f"{CAPTURE_ID}.manifest.json"
    with python_peak() as peak:
        digest = write_signed(path, built, signer.sign)
    # the old code built a list of lines, joined them, encoded that: 3x the file at once
    assert peak() < len(expected) // 10, peak()
    assert path.read_bytes() == expected  # the same bytes as ever (golden: test_manifest)
    assert digest == hashlib.sha256(expected).hexdigest()
    signature = signature_path(path).read_bytes()
    assert signature == signer.sign(expected)
    assert signature_holds(signer.key.public_key(), signature, expected)
    assert Manifest.from_bytes(expected).records == built.records


def test_the_metadata_record_lists_its_records_as_json_dumps_would(tmp_path: Path) -> None:
    odd = ["a", "é", '"', "\\", "\n", "\x00", "\u2028", "\U0001f600", "</script>", "\x7f"]
    rng = random.Random(15)

    def text() -> str | None:
        return None if rng.random() < 0.3 else "".join(rng.choices(odd, k=rng.randint(0, 6)))

    for count in (0, 1, 2, 7):
        entries = [
            _entry(
                n,
                warc_type=rng.choice(["warcinfo", "request", "response", "metadata"]),
                role=text() or "image",
                discovered_from=text(),
                discovered_via=text(),
            )
            for n in range(count)
        ]
        body = {"schema": "x", "title": text(), "outlinks": [text()], "record_count": count}
        whole = {
            **body,
            "records": [
                {
                    "record_id": r.record_id,
                    "role": r.role,
                    "discovered_from": r.discovered_from,
                    "discovered_via": r.discovered_via,
                }
                for r in entries
                if r.warc_type != "warcinfo"
            ],
        }
        expected = json.dumps(whole, indent=1, ensure_ascii=False, sort_keys=False)
        assert _metadata_json(body, entries) == expected.encode("utf-8")
    many = [_entry(n) for n in range(20_000)]
    with python_peak() as peak:
        block = _metadata_json({"schema": "x"}, many)
    # one dict per record and the indenting encoder's chunks of them took 8x the block
    assert peak() < 3 * len(block), (peak(), len(block))


def test_a_large_capture_s_records_file_is_written_a_row_group_at_a_time(
    tmp_path: Path,
) -> None:
    import pyarrow as pa

    capture_row = replace(golden_manifest().capture, capture_id=CAPTURE_ID)
    rows = [_row(n) for n in range(25_000)]
    index = Index(tmp_path)
    pool = pa.default_memory_pool()
    before = pool.max_memory()
    index.write_capture(capture_row, rows)
    if before == 0:  # this process's first Arrow table: the pool's peak is this file's
        one_group = index_module.to_table("records", rows[:10_000]).nbytes
        assert pool.max_memory() < 2 * one_group  # the old code: 3x, the table built whole
    (records_file,) = index.files("records")
    meta = pq.ParquetFile(records_file).metadata
    groups = [meta.row_group(i).num_rows for i in range(meta.num_row_groups)]
    assert groups == [10_000, 10_000, 5_000]  # the old code: one group
    assert read_rows(index, "records") == rows
