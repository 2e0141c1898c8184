"""The Parquet provenance index, checked with DuckDB and pyarrow reading the files directly."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import duckdb
import polars
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from warcio.archiveiterator import ArchiveIterator

from archiver.capture.run import Capturer
from archiver.core.model import Capture, CaptureOptions, CaptureStatus
from archiver.index import schema
from archiver.index.store import Index, read_rows, replaces_listing
from archiver.ops import ingest
from tests.support import runner
from tests.support.deterministic import FixedClock, sequential_ids
from tests.support.paths import DATA, ROOT
from tests.support.site import FixtureSite
from tests.support.terminal import stderr_on_terminal

CORPUS = DATA  # foreign WARC files; see tests/data/README.md


def run(*args: str, archive: Path) -> subprocess.CompletedProcess[str]:
    return runner.run(*args, env={"ARCHIVER_ARCHIVE_DIR": str(archive)}, installed=True)


@pytest.fixture(scope="module")
def site() -> Iterator[FixtureSite]:
    with FixtureSite(slow_seconds=0.3, large_video_bytes=3 * 1024 * 1024 + 17) as s:
        yield s


@pytest.fixture(scope="module")
def captured(site: FixtureSite, tmp_path_factory: pytest.TempPathFactory) -> Capture:
    archive = tmp_path_factory.mktemp("index") / "archives"
    options = CaptureOptions(
        archive_dir=archive,
        timeout=1.5,
        operator="A. Archivist",
        note="for the index tests",
        allow_private=True,
    )
    capturer = Capturer(
        options,
        clock=FixedClock(),
        new_id=lambda moment: "20200812100000-0123456789",
        new_record_id=sequential_ids(),
        hostname="test-host",
    )
    capture = capturer.capture(site.url(site.ENTRY))
    assert capture.status is CaptureStatus.PARTIAL and capture.index_error is None
    return capture


def duck(archive: Path, sql: str) -> list[tuple[object, ...]]:
    """DuckDB on the Parquet files themselves: no archiver code involved."""
    con = duckdb.connect()
    con.execute(
        f"create view records as select * from read_parquet('{archive}/index/records/*.parquet')"
    )
    con.execute(
        f"create view captures as select * from read_parquet('{archive}/index/captures/*.parquet')"
    )
    return con.execute(sql).fetchall()


def warcio_records(paths: list[Path]) -> dict[str, dict[str, object]]:
    """Record id → what warcio reports about it (offset, length, headers)."""
    out: dict[str, dict[str, object]] = {}
    for path in paths:
        with open(path, "rb") as fh:
            it = ArchiveIterator(fh, check_digests="raise")
            for rec in it:
                headers = dict(rec.rec_headers.headers)
                response = rec.rec_type == "response"
                status = rec.http_headers.get_statuscode() if response else None
                body = rec.raw_stream.read() if response else b""  # as transferred
                it.read_to_end(rec)
                out[headers["WARC-Record-ID"]] = {
                    "path": path,
                    "offset": it.get_record_offset(),
                    "length": it.get_record_length(),
                    "headers": headers,
                    "status": int(status) if status else None,
                    "body": body,
                }
    return out


def test_files_match_the_published_schemas(captured: Capture) -> None:
    archive = captured.options.archive_dir
    for table in schema.TABLES:
        version = schema.CURRENT_VERSION[table]  # older ones: tests/index/test_browser_columns.py
        doc = json.loads((ROOT / "schemas" / f"{table}.v{version}.json").read_text())
        assert doc["table"] == table and doc["version"] == version and doc["description"]
        assert all(c["description"].strip() for c in doc["columns"])
        (path,) = list((archive / "index" / table).glob("*.parquet"))
        written = pq.read_schema(path)
        expected = schema.arrow_schema(table)
        assert written.names == [c["name"] for c in doc["columns"]]
        assert [f.type for f in written] == [f.type for f in expected]
        meta = pq.read_metadata(path).metadata
        assert meta[b"archiver.table"] == table.encode()
        assert meta[b"archiver.schema_version"] == str(version).encode()
    # the types as DuckDB sees them
    types = dict(duck(archive, "select column_name, column_type from (describe records)"))
    assert types["fetched_at"] == "TIMESTAMP WITH TIME ZONE"
    assert types["payload_length"] == types["warc_offset"] == "BIGINT"
    ctypes = dict(duck(archive, "select column_name, column_type from (describe captures)"))
    assert ctypes["outlinks"] == "VARCHAR[]"
    assert ctypes["errors"] == "STRUCT(url VARCHAR, reason VARCHAR)[]"
    assert ctypes["started_at"] == "TIMESTAMP WITH TIME ZONE"


def test_record_rows_agree_with_the_warc_files(site: FixtureSite, captured: Capture) -> None:
    archive = captured.options.archive_dir
    truth = warcio_records(captured.warc_files)
    rows = duck(
        archive,
        "select record_id, warc_type, url, http_status, content_type, payload_sha256, "
        "payload_length, record_sha256, warc_filename, warc_offset, warc_length, "
        "fetched_at, capture_id from records",
    )
    assert len(rows) == len(truth)
    for rid, wtype, url, status, ctype, psha, plen, rsha, fname, off, length, when, cid in rows:
        seen = truth[str(rid)]
        headers = seen["headers"]
        assert isinstance(headers, dict)
        assert cid == "20200812100000-0123456789"
        assert wtype == headers["WARC-Type"]
        assert url == headers.get("WARC-Target-URI")
        assert (archive / str(fname)) == seen["path"]
        assert (off, length) == (seen["offset"], seen["length"])
        stored = (archive / str(fname)).read_bytes()[int(off) : int(off) + int(length)]
        assert hashlib.sha256(stored).hexdigest() == rsha
        assert when.isoformat().replace("+00:00", "Z")[:19] == str(headers["WARC-Date"])[:19]
        if wtype == "response":
            assert status == seen["status"]
            assert ctype == ctype.lower() and ";" not in ctype
            assert psha == headers["WARC-Payload-Digest"].removeprefix("sha256:")
            if url in site.served and url != site.url("/static/js/chunked.js"):
                assert psha == site.served[url]
                assert plen == len(seen["body"])  # type: ignore[arg-type]


def test_roles_and_discovery(site: FixtureSite, captured: Capture) -> None:
    archive = captured.options.archive_dir
    rows = duck(
        archive,
        "select url, role, discovered_from, discovered_via from records "
        "where warc_type = 'response'",
    )
    by_url = {r[0]: r[1:] for r in rows}
    article = site.url(site.ARTICLE)
    assert by_url[site.url(site.ENTRY)] == ("redirect", None, "seed")
    assert by_url[article][0] == "page"
    assert by_url[article][2] == f"seed (redirected from {site.url(site.ENTRY)})"
    assert by_url[site.url("/media/og.mp4")] == ("video", article, "meta[og:video]")
    assert by_url[site.url("/hls/master.m3u8")] == ("video-manifest", article, "video[src]")
    roles = {r[1] for r in rows}
    assert {"page", "redirect", "requisite", "iframe", "video", "video-manifest"} <= roles
    assert "video-segment" in roles
    # the question from the issue: videos of this host, when, who, and where the bytes are
    answer = duck(
        archive,
        "select r.url, c.operator, r.warc_filename, r.warc_offset from records r "
        "join captures c using (capture_id) where r.role = 'video' and r.warc_type = 'response' "
        "and r.url like 'http://127.0.0.1:%' "
        "and r.fetched_at between '2020-08-01' and '2020-09-01'",
    )
    assert len(answer) >= 10 and {a[1] for a in answer} == {"A. Archivist"}


def test_capture_row(site: FixtureSite, captured: Capture) -> None:
    archive = captured.options.archive_dir
    ((row,),) = duck(archive, "select to_json(captures) from captures")
    doc = json.loads(str(row))
    assert doc["capture_id"] == "20200812100000-0123456789"
    assert doc["seed_url"] == site.url(site.ENTRY)
    assert doc["final_url"] == site.url(site.ARTICLE)
    assert doc["status"] == "partial" and doc["imported"] is False
    assert doc["operator"] == "A. Archivist" and doc["note"] == "for the index tests"
    assert doc["tool_name"] == "archiver" and doc["tool_version"]
    assert doc["warcio_version"] and doc["pyarrow_version"] == pa.__version__
    assert doc["ytdlp_version"] is None
    assert doc["hostname"] == "test-host" and doc["platform"]
    assert doc["title"] == "Беларусь: видеообращение сотрудника МЧС"
    assert doc["author"] == "Алесь Навіцкі"
    assert doc["published_at"] == "2020-08-12T10:00:00Z" and doc["language"] == "ru"
    assert site.url("/other-article") in doc["outlinks"]
    assert doc["video_count"] == len(captured.videos) > 5
    assert doc["warc_files"] == [p.relative_to(archive).as_posix() for p in captured.warc_files]
    assert doc["record_count"] == len(captured.records)
    assert doc["warc_bytes"] == sum(p.stat().st_size for p in captured.warc_files)
    assert [e["url"] for e in doc["errors"]] == [site.url(p) for p in site.HANGING]
    assert doc["key_fingerprint"] is None and doc["manifest_sha256"] is None
    ((total,),) = duck(
        archive, "select sum(payload_length) from records where warc_type = 'response'"
    )
    assert doc["total_bytes"] == total


def test_rebuild_gives_the_same_rows(captured: Capture, tmp_path: Path) -> None:
    archive = tmp_path / "archives"
    shutil.copytree(captured.options.archive_dir, archive)
    before = {t: read_rows(Index(archive), t) for t in schema.TABLES}
    shutil.rmtree(archive / "index")
    result = run("index", "rebuild", archive=archive)
    assert result.returncode == 0, result.stderr
    assert "indexed 1 capture" in result.stdout
    after = {t: read_rows(Index(archive), t) for t in schema.TABLES}
    assert after == before
    assert not (archive / "index.new").exists() and not (archive / "index.old").exists()


def test_query_command_formats(captured: Capture, tmp_path: Path) -> None:
    archive = captured.options.archive_dir
    sql = "select url, payload_sha256 from records where role = 'page' and warc_type = 'response'"
    out = run("query", sql, "--format", "json", archive=archive)
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)
    assert isinstance(rows, list) and len(rows) == 1 and set(rows[0]) == {"url", "payload_sha256"}
    csv_out = run("query", sql, "--format", "csv", archive=archive)
    assert csv_out.stdout.splitlines()[0] == "url,payload_sha256"
    table = run("query", sql, archive=archive)
    assert rows[0]["payload_sha256"] in table.stdout and "(1 row)" in table.stdout
    target = tmp_path / "out.parquet"
    pq_out = run("query", sql, "--format", "parquet", "-o", str(target), archive=archive)
    assert pq_out.returncode == 0, pq_out.stderr
    assert pq.read_table(target).to_pylist() == rows
    # timestamps in JSON are UTC ISO 8601
    when = json.loads(
        run(
            "query", "select fetched_at from records limit 1", "--format", "json", archive=archive
        ).stdout
    )[0]["fetched_at"]
    assert when.startswith("2020-08-12T10:00:") and when.endswith("Z")


@pytest.mark.parametrize(
    ("sql", "words"),
    [
        ("selec * from records", "syntax error"),
        ("select no_such_column from records", "no_such_column"),
        ("select * from no_such_table", "no_such_table"),
    ],
)
def test_bad_sql_is_a_one_line_usage_error(captured: Capture, sql: str, words: str) -> None:
    out = run("query", sql, archive=captured.options.archive_dir)
    assert out.returncode == 2
    assert words in out.stderr and "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


def test_list_and_show(site: FixtureSite, captured: Capture) -> None:
    archive = captured.options.archive_dir
    listed = run("list", "--format", "json", archive=archive)
    assert listed.returncode == 0, listed.stderr
    (row,) = json.loads(listed.stdout)
    # made without a signing key: never listed as plainly partial or complete
    assert row["capture_id"] == captured.capture_id and row["status"] == "partial, unsigned"
    assert row["seed_url"] == site.url(site.ENTRY) and row["videos"] == len(captured.videos)
    text = run("list", archive=archive).stdout
    assert captured.capture_id in text and "partial" in text
    shown = run("show", captured.capture_id, archive=archive)
    assert shown.returncode == 0, shown.stderr
    assert "Беларусь" in shown.stdout and captured.warc_files[0].name in shown.stdout
    assert site.url(site.HANGING[0]) in shown.stdout  # the errors
    assert f"Records ({len(captured.records)})" in shown.stdout
    doc = json.loads(run("show", captured.capture_id, "--format", "json", archive=archive).stdout)
    assert len(doc["records"]) == len(captured.records)
    missing = run("show", "20990101000000-0000000000", archive=archive)
    assert missing.returncode == 2 and "no capture" in missing.stderr


@pytest.mark.parametrize("made", [False, True], ids=["missing", "empty-folder"])
def test_list_show_and_query_say_when_there_is_no_archive(tmp_path: Path, made: bool) -> None:
    archive = tmp_path / "none"
    if made:
        archive.mkdir()
    for args in (
        ("query", "select count(*) as n from records", "--format", "json"),
        ("list",),
        ("show", "20200812100000-0123456789"),
    ):
        out = run(*args, archive=archive)
        assert out.returncode == 1, (args, out.stdout)
        assert out.stdout == "" and f"no archive in {archive}" in out.stderr, args
        assert "Traceback" not in out.stderr
    assert archive.exists() is made  # asking a question creates nothing


def test_list_says_to_rebuild_an_index_that_is_gone(captured: Capture, tmp_path: Path) -> None:
    archive = tmp_path / "archives"
    shutil.copytree(captured.options.archive_dir, archive)
    shutil.rmtree(archive / "index")
    out = run("list", archive=archive)
    assert out.returncode == 1 and "archiver index rebuild" in out.stderr


def test_concurrent_captures_write_their_own_files(site: FixtureSite, tmp_path: Path) -> None:
    archive = tmp_path / "archives"
    results: list[Capture] = []

    def one() -> None:
        options = CaptureOptions(archive_dir=archive, timeout=1.5, allow_private=True)
        results.append(Capturer(options).capture(site.url(site.PLAIN)))

    threads = [threading.Thread(target=one) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({r.capture_id for r in results}) == 3
    rows = duck(archive, "select capture_id, record_count from captures order by 1")
    assert [r[0] for r in rows] == sorted(r.capture_id for r in results)
    counts = dict(duck(archive, "select capture_id, count(*) from records group by 1"))
    assert all(counts[cid] == n for cid, n in rows)
    assert not [p for p in (archive / "index").rglob("*") if p.name.startswith(".tmp-")]


def test_a_compaction_listing_left_by_an_older_version_is_still_finished(
    site: FixtureSite, captured: Capture, tmp_path: Path
) -> None:
    archive = tmp_path / "archives"
    shutil.copytree(captured.options.archive_dir, archive)
    options = CaptureOptions(archive_dir=archive, timeout=1.5, allow_private=True)
    Capturer(options).capture(site.url(site.PLAIN))
    index = Index(archive)
    sources = index.files("captures")
    target = archive / "index" / "captures" / "compact-20200101000000-00000000.parquet"
    pq.write_table(pa.concat_tables([pq.read_table(p) for p in sources]), target)
    legacy = target.with_name("." + target.stem + ".replaces")  # inside the table's folder
    legacy.write_text("\n".join(p.name for p in sources))
    assert index.needs_repair()
    assert index.repair() == ["finished compacting into " + target.name]
    assert index.files("captures") == [target] and not legacy.exists()


def test_compaction_keeps_every_row_and_survives_a_crash(
    site: FixtureSite, captured: Capture, tmp_path: Path
) -> None:
    archive = tmp_path / "archives"
    shutil.copytree(captured.options.archive_dir, archive)
    options = CaptureOptions(archive_dir=archive, timeout=1.5, allow_private=True)
    Capturer(options).capture(site.url(site.PLAIN))
    before = sorted(duck(archive, "select record_id, record_sha256 from records"))
    index = Index(archive)
    assert len(index.files("records")) == 2
    # a compaction that crashed after writing its file, before deleting the sources
    sources = index.files("records")
    merged = pa.concat_tables([pq.read_table(p) for p in sources])
    target = archive / "index" / "records" / "compact-20200101000000-00000000.parquet"
    pq.write_table(merged, target)
    replaces_listing(target).write_text("\n".join(p.name for p in sources))
    # the listing lies outside the table's folder: dataset readers see only Parquet files
    assert {p.suffix for p in (archive / "index" / "records").iterdir()} == {".parquet"}
    assert polars.read_parquet(archive / "index" / "records").height == 2 * len(before)
    assert len(duck(archive, "select * from records")) == 2 * len(before)  # until repaired
    assert index.repair() == ["finished compacting into " + target.name]
    assert sorted(duck(archive, "select record_id, record_sha256 from records")) == before
    # pyarrow's dataset reader takes the directory as it stands
    dataset = pq.read_table(archive / "index" / "records")
    assert (
        sorted(
            zip(dataset["record_id"].to_pylist(), dataset["record_sha256"].to_pylist(), strict=True)
        )
        == before
    )
    again = Capturer(options).capture(site.url(site.PLAIN))
    before = sorted(duck(archive, "select record_id, record_sha256 from records"))
    assert len(index.files("records")) == 2 and len(before) == len(dataset) + len(again.records)
    result = run("index", "compact", archive=archive)
    assert result.returncode == 0, result.stderr
    assert len(index.files("captures")) == 1
    # one full row group, not one per merged capture
    assert [pq.read_metadata(p).num_row_groups for p in index.files("records")] == [1]
    # sorted by URL, so that a lookup by URL can skip row groups
    urls = pq.read_table(index.files("records")[0])["url"].to_pylist()
    assert urls == sorted(u for u in urls if u is not None) + [None] * urls.count(None)
    assert sorted(duck(archive, "select record_id, record_sha256 from records")) == before


def test_older_files_with_fewer_columns_still_read(captured: Capture, tmp_path: Path) -> None:
    archive = tmp_path / "archives"
    shutil.copytree(captured.options.archive_dir, archive)
    (path,) = Index(archive).files("records")
    old = pq.read_table(path).drop_columns(["problem", "refers_to"])
    pq.write_table(old, path.with_name("19990101000000-0000000000.parquet"))
    out = run(
        "query",
        "select count(*) as n, count(problem) as p from records",
        "--format",
        "json",
        archive=archive,
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == [{"n": 2 * old.num_rows, "p": 0}]
    assert len(read_rows(Index(archive), "records")) == 2 * old.num_rows


def test_an_index_that_cannot_be_written_fails_the_capture_but_keeps_the_warcs(
    site: FixtureSite, tmp_path: Path
) -> None:
    archive = tmp_path / "archives"
    archive.mkdir()
    (archive / "index").write_text("not a directory")
    out = run("capture", site.url(site.PLAIN), "--format", "json", archive=archive)
    assert out.returncode == 1
    summary = json.loads(out.stdout)
    assert "index rebuild" in summary["index_error"]
    assert [Path(p).exists() for p in summary["warc_files"]] == [True]


# foreign WARC files --------------------------------------------------------
CORPUS_VERDICTS = {
    # file: (records indexed, passes)
    "example.warc": (6, True),
    "example.warc.gz": (6, True),
    "example-resource.warc.gz": (3, True),
    "example-iana.org-chunked.warc": (3, True),
    "example-wget-bad-target-uri.warc.gz": (6, True),
    "post-test.warc.gz": (6, True),
    "jwarc-cc.warc.gz": (1, True),
    "example-digest.warc": (4, False),
    "example-trunc.warc": (4, False),
}


def test_import_the_corpus_gives_the_documented_verdicts(tmp_path: Path) -> None:
    archive = tmp_path / "archives"
    files = sorted(CORPUS.glob("*.warc*"))
    assert len(files) == 11
    out = run("index", "import", *map(str, files), "--format", "json", archive=archive)
    assert out.returncode == 1  # some are broken
    assert "Traceback" not in out.stderr
    reports = {Path(d["file"]).name: d for d in map(json.loads, out.stdout.splitlines())}
    assert set(reports) == {f.name for f in files}
    for name, (count, passes) in CORPUS_VERDICTS.items():
        assert reports[name]["imported"] and reports[name]["records"] == count, name
        assert reports[name]["ok"] is passes, (name, reports[name]["problems"])
    # the wrong digest is named by offset, like warcio check does
    (digest_problem,) = reports["example-digest.warc"]["problems"]
    assert digest_problem["offset"] == 0 and "payload digest" in digest_problem["problem"]
    trunc = reports["example-trunc.warc"]["problems"]
    assert {p["offset"] for p in trunc} == {1197}
    assert any("block digest does not match" in p["problem"] for p in trunc)
    assert any("payload digest does not match" in p["problem"] for p in trunc)
    # not a record stream at all: refused, nothing stored
    assert reports["example-bad-non-chunked.warc.gz"]["imported"] is False
    assert "offset 0" in reports["example-bad-non-chunked.warc.gz"]["error"]
    # gzip members split mid-record: the broken place is named and the import goes on
    wrong = reports["example-wrong-chunks.warc.gz"]
    assert not wrong["ok"] and {p["offset"] for p in wrong["problems"]} == {0, 516}
    # the index holds the good records, and the broken ones with their problem
    rows = duck(archive, "select capture_id, count(*), count(problem) from records group by 1")
    per_capture = {r[0]: (r[1], r[2]) for r in rows}
    assert per_capture[reports["example.warc"]["capture_id"]] == (6, 0)
    assert per_capture[reports["example-digest.warc"]["capture_id"]] == (4, 1)
    imported = duck(archive, "select distinct imported, collection, status from captures")
    assert {(True, "default", "complete"), (True, "default", "partial")} == set(imported)
    # one level: warc/<collection>/imported/, not warc/imported/imported/
    assert {p.parent.relative_to(archive).as_posix() for p in archive.rglob("*.warc*")} == {
        "warc/default/imported"
    }
    # SHA-256 digests are computed for foreign records (which declare SHA-1)
    ((sha, length),) = duck(
        archive,
        "select payload_sha256, payload_length from records where warc_type = 'response' "
        f"and capture_id = '{reports['example.warc']['capture_id']}' limit 1",
    )
    assert len(str(sha)) == 64 and int(str(length)) > 0
    # the copies in the archive are byte-identical, and rebuilding gives the same rows
    for name, doc in reports.items():
        if doc["imported"]:
            assert Path(doc["stored_as"]).read_bytes() == (CORPUS / name).read_bytes()
    before = {t: read_rows(Index(archive), t) for t in schema.TABLES}
    count, _reports = ingest.rebuild(archive)
    assert count == 10
    assert {t: read_rows(Index(archive), t) for t in schema.TABLES} == before
    # importing again changes nothing
    again = run("index", "import", str(CORPUS / "example.warc"), archive=archive)
    assert again.returncode == 0, again.stderr
    assert {t: read_rows(Index(archive), t) for t in schema.TABLES} == before


def test_import_bad_input(tmp_path: Path) -> None:
    archive = tmp_path / "archives"
    junk = tmp_path / "junk.warc.gz"
    junk.write_bytes(os.urandom(5000))
    out = run("index", "import", str(junk), str(tmp_path / "missing.warc"), archive=archive)
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert "junk.warc.gz" in out.stderr and "missing.warc" in out.stderr
    bad = run("index", "import", str(junk), "--collection", "../x", archive=archive)
    assert bad.returncode == 2


def test_rebuild_of_a_capture_split_across_files(site: FixtureSite, tmp_path: Path) -> None:
    archive = tmp_path / "archives"
    options = CaptureOptions(
        archive_dir=archive, timeout=1.5, warc_max_size=1024 * 1024, allow_private=True
    )
    capture = Capturer(options).capture(site.url(site.ENTRY))
    assert len(capture.warc_files) >= 3
    before = {t: read_rows(Index(archive), t) for t in schema.TABLES}
    assert before["captures"][0].warc_files == [
        p.relative_to(archive).as_posix() for p in capture.warc_files
    ]
    count, reports = ingest.rebuild(archive)
    assert count == 1 and all(r.ok for r in reports)
    assert {t: read_rows(Index(archive), t) for t in schema.TABLES} == before


def test_a_rebuild_interrupted_between_its_renames_is_finished(
    captured: Capture, tmp_path: Path
) -> None:
    archive = tmp_path / "archives"
    shutil.copytree(captured.options.archive_dir, archive)
    before = sorted(duck(archive, "select record_id, record_sha256 from records"))
    # the state a crash leaves between "index -> index.old" and "index.new -> index"
    (archive / "index").rename(archive / "index.new")
    (archive / "index.new" / ".complete").touch()
    out = run(
        "query", "select record_id, record_sha256 from records", "--format", "json", archive=archive
    )
    assert out.returncode == 0, out.stderr
    assert sorted((r["record_id"], r["record_sha256"]) for r in json.loads(out.stdout)) == before
    assert not (archive / "index.new").exists()
    # an unfinished rebuild beside a live index is dropped; the live index stays
    (archive / "index.new" / "records").mkdir(parents=True)
    assert Index(archive).repair() == [
        "removed an unfinished rebuild; run `archiver index rebuild` again"
    ]
    assert sorted(duck(archive, "select record_id, record_sha256 from records")) == before


def test_import_shows_progress_on_a_terminal_only(tmp_path: Path) -> None:
    status, text = stderr_on_terminal(
        "index", "import", str(CORPUS / "example.warc.gz"), "--archive-dir", str(tmp_path / "a")
    )
    assert status == 0 and "reading file 1" in text
    piped = run("index", "import", str(CORPUS / "example.warc.gz"), archive=tmp_path / "b")
    assert piped.returncode == 0 and piped.stderr == ""


def test_queries_cannot_touch_the_evidence(captured: Capture, tmp_path: Path) -> None:
    archive = tmp_path / "it's [a] archive" / "archives"  # quotes and glob characters
    shutil.copytree(captured.options.archive_dir, archive)
    warc = captured.warc_files[0].relative_to(captured.options.archive_dir)
    before = (archive / warc).read_bytes()
    for sql in (
        f"copy (select 'x') to '{archive / warc}' (format csv)",
        f"copy (select 1) to '{archive}/index/records/x.parquet'",
        "select * from read_text('/etc/passwd')",
        f"attach '{tmp_path}/db.duckdb'",
        "set enable_external_access = true",
        "select 1; select 2",
    ):
        out = run("query", sql, archive=archive)
        assert out.returncode == 2, (sql, out.stdout)
        assert "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1
    assert (archive / warc).read_bytes() == before
    assert len(Index(archive).files("records")) == 1
    # --output may not land in the archive, nor replace a file without --force
    for target in (archive / warc, archive / "index" / "records" / "y.parquet"):
        out = run(
            "query", "select 1 as n", "--format", "parquet", "-o", str(target), archive=archive
        )
        assert out.returncode == 2 and "inside the archive" in out.stderr
    assert (archive / warc).read_bytes() == before
    existing = tmp_path / "out.csv"
    existing.write_text("keep")
    out = run("query", "select 1 as n", "--format", "csv", "-o", str(existing), archive=archive)
    assert out.returncode == 2 and existing.read_text() == "keep"
    out = run(
        "query", "select 1 as n", "--format", "csv", "-o", str(existing), "--force", archive=archive
    )
    assert out.returncode == 0 and existing.read_text() == "n\n1\n"
    # the path with a quote and brackets works, and times are UTC whatever the zone
    env_tz = {"ARCHIVER_ARCHIVE_DIR": str(archive), "TZ": "Pacific/Kiritimati"}
    zoned = runner.run(
        "query", "select min(fetched_at)::varchar as t from records", "--format", "json",
        env=env_tz, timeout=60, installed=True,
    )  # fmt: skip
    assert zoned.returncode == 0, zoned.stderr
    assert json.loads(zoned.stdout)[0]["t"].startswith("2020-08-12 10:00:00")


def test_the_same_file_imported_twice_is_stored_and_indexed_once(tmp_path: Path) -> None:
    archive = tmp_path / "archives"
    copy = tmp_path / "b.warc.gz"
    shutil.copyfile(CORPUS / "example.warc.gz", copy)
    first = run("index", "import", str(CORPUS / "example.warc.gz"), archive=archive)
    assert first.returncode == 0, first.stderr
    run("index", "import", str(CORPUS / "example-resource.warc.gz"), archive=archive)
    assert run("index", "compact", archive=archive).returncode == 0
    again = run("index", "import", str(copy), "--collection", "other", archive=archive)
    assert again.returncode == 0 and "already imported" in again.stdout
    counts = duck(archive, "select count(*), count(distinct capture_id) from captures")
    assert counts == [(2, 2)]
    assert duck(archive, "select count(*) from records") == [(9,)]
    assert not (archive / "warc" / "other").exists() or not list(
        (archive / "warc" / "other").rglob("*.warc*")
    )
    count, reports = ingest.rebuild(archive)
    assert count == 2 and all(r.ok for r in reports)


def test_repair_drops_records_whose_capture_row_was_never_written(
    captured: Capture, tmp_path: Path
) -> None:
    archive = tmp_path / "archives"
    shutil.copytree(captured.options.archive_dir, archive)
    (path,) = Index(archive).files("records")
    orphan = path.with_name("20990101000000-0000000000.parquet")
    shutil.copyfile(path, orphan)
    spill = archive / "index" / ".tmp-sort-20990101"
    (spill / "x").mkdir(parents=True)
    assert Index(archive).repair() == [f"removed {orphan.name}: its capture row was never written"]
    assert not orphan.exists() and not spill.exists() and path.exists()
