"""CDXJ lines made from the index agree with cdxj-indexer reading the WARC files.

cdxj-indexer (Webrecorder's, the indexer py-wacz and pywb's tools use) reads the WARC
files themselves; our lines come from the Parquet index alone.  For every record a
replay tool serves, both must give the same key, time, URL, status, digest, offset,
length and type, or a replay tool would look in the wrong place.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from archiver.capture.run import Capturer
from archiver.core.model import CaptureStatus
from archiver.index import cdxj, query
from tests.support.site import FixtureSite

BIN = Path(sys.executable).parent


def _parse(raw: bytes) -> tuple[str, str, dict[str, str]]:
    key, stamp, doc = raw.decode("utf-8").split(" ", 2)
    return key, stamp, json.loads(doc)


def test_lines_agree_with_cdxj_indexer(
    site: FixtureSite, make_capturer: Callable[..., Capturer], tmp_path: Path
) -> None:
    capture = make_capturer().capture(site.url(site.ENTRY))
    assert capture.status is CaptureStatus.PARTIAL  # the fixture has a script that never answers
    archive = tmp_path / "archives"
    rows = query.run(archive, cdxj.select_sql(1), [capture.capture_id]).rows
    ours = cdxj.lines(rows, lambda path: Path(path).name)
    assert ours == sorted(ours) and len(ours) > 20
    warcs = sorted((archive / "warc").rglob("*.warc.gz"))
    done = subprocess.run(
        [str(BIN / "cdxj-indexer"), *map(str, warcs)],
        capture_output=True,
        check=True,
        cwd=warcs[0].parent,
    )
    theirs = {}
    for raw in done.stdout.splitlines():
        key, stamp, doc = _parse(raw)
        theirs[(doc["filename"].rsplit("/", 1)[-1], doc["offset"])] = (key, stamp, doc)
    for raw in ours:
        key, stamp, doc = _parse(raw)
        other_key, other_stamp, other = theirs[(doc["filename"], doc["offset"])]
        assert (key, stamp) == (other_key, other_stamp), doc["url"]
        for name in ("url", "status", "digest", "length", "mime"):
            assert doc.get(name) == other.get(name), (name, doc, other)
    # every response, revisit and resource cdxj-indexer lists, we list (requests and our
    # metadata are not served by a replay tool)
    served = {
        k
        for k, (_, _, doc) in theirs.items()
        if doc.get("mime") not in ("application/warc-fields",)
        and not doc.get("method")
        and not doc["url"].startswith("urn:archiver-")
    }
    listed = {(_parse(raw)[2]["filename"], _parse(raw)[2]["offset"]) for raw in ours}
    assert served - listed == set()


def test_surt_keys_of_odd_urls() -> None:
    assert cdxj.surt_key("http://www.Example.com:80/a?b=2&a=1") == "com,example)/a?a=1&b=2"
    assert cdxj.surt_key("https://127.0.0.1:8080/x") == "1,0,0,127:8080)/x"
    assert cdxj.timestamp14("2020-08-12T10:00:00.123456+00:00") == "20200812100000"


def test_compressed_index_is_what_cdxj_indexer_writes() -> None:
    """ZipNum: the same bytes as cdxj-indexer's CompressedWriter (with record digests)."""
    import io

    from cdxj_indexer.main import CompressedWriter

    lines = sorted(
        f"com,example)/p{n:05d} 20200812100000 {json.dumps({'url': f'https://example.com/p{n:05d}'})}".encode()
        for n in range(1234)
    )
    data, idx = cdxj.compressed(lines)
    index_out, data_out = io.StringIO(), io.BytesIO()
    writer = CompressedWriter(
        index_out, data_out, data_out_name="index.cdx.gz", digest_records=True
    )
    for line in lines:
        writer.write(line.decode() + "\n")
    writer.flush()
    assert data == data_out.getvalue()
    assert idx == index_out.getvalue().encode()
    assert idx.count(b"\n") == 1 + 5  # the meta line, then 300 + 300 + 300 + 300 + 34
