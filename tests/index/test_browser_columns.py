"""The browser columns of the captures table (schema version 2), beside an archive indexed
under version 1: one real browser capture (real Chromium, real servers on loopback) added
to a copy of ``tests/data/index-v1-archive``, which the code of commit ac240cb wrote and
signed.  Nothing is rewritten by hand: every file is read as the archive holds it."""

from __future__ import annotations

import json
import re
import shutil
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import jsonschema  # type: ignore[import-untyped,unused-ignore]
import polars
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from archiver.capture.run import Capturer
from archiver.core.model import Capture, CaptureOptions, CaptureStatus
from archiver.index import schema
from archiver.index.store import Index, browser_columns, conform, read_rows, viewport_text
from archiver.ops.extract import extract
from archiver.trust.manifest import Manifest
from tests.support import runner
from tests.support.browser_site import ScriptSite
from tests.support.deterministic import fixed_signer
from tests.support.paths import DATA, SCHEMAS
from tests.support.warcs import read_all

V1_ARCHIVE = DATA / "index-v1-archive"  # see its README.md
V1_CAPTURE = "20261206085014-5f7edff2f5"
NEW_COLUMNS = ["browser", "browser_user_agent", "viewport"]
RESOURCE_ROLES = {
    "view": "screenshot",
    "fullPage": "screenshot",
    "pdf": "pdf",
    "dom": "dom",
    "text": "text",
    "pageinfo": "pageinfo",
}


def run(*args: str, archive: Path) -> Any:
    return runner.run(*args, env={"ARCHIVER_ARCHIVE_DIR": str(archive)})


def copy_v1(target: Path) -> Path:
    """The v1 archive's folders (not its README), as a writable archive at ``target``."""
    for folder in ("warc", "keys", "index", "custody"):
        shutil.copytree(V1_ARCHIVE / folder, target / folder)
    return target


def duck(sql: str) -> list[tuple[Any, ...]]:
    """DuckDB on the Parquet files themselves: no archiver code involved."""
    return duckdb.connect().execute(sql).fetchall()


def version_of(path: Path) -> bytes:
    meta = pq.read_metadata(path).metadata
    assert meta[b"archiver.table"] == path.parent.name.encode()
    version: bytes = meta[b"archiver.schema_version"]
    return version


@pytest.fixture(scope="module")
def mixed(chromium: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Capture]:
    """The v1 archive plus a browser capture made now (in the module's own folder: the
    tests that change anything work on a copy)."""
    archive = copy_v1(tmp_path_factory.mktemp("mixed") / "archives")
    with ScriptSite() as site:
        options = CaptureOptions(
            archive_dir=archive,
            allow_private=True,
            browser=True,
            timeout=5,
            browser_timeout=20,
            platform_videos=False,
        )
        capture = Capturer(options, signer=fixed_signer(), hostname="test-host").capture(
            site.url("/article")
        )
    assert capture.status is CaptureStatus.COMPLETE, (capture.failure, capture.errors)
    assert capture.manifest is not None and capture.index_error is None
    yield capture


def archive_of(capture: Capture) -> Path:
    return capture.options.archive_dir


def copied(capture: Capture, tmp_path: Path) -> Path:
    target = tmp_path / "archives"
    shutil.copytree(archive_of(capture), target)
    return target


# the values ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("info", "expected"),
    [
        (
            {
                "product": "Chrome/150.0.7871.100",
                "user_agent": "Mozilla/5.0 Chrome/150.0.0.0",
                "viewport": {"width": 1366, "height": 768},
                "device_scale": 1.0,
            },
            ("Chrome/150.0.7871.100", "Mozilla/5.0 Chrome/150.0.0.0", "1366x768@1"),
        ),
        (
            {"product": "Chrome/1", "viewport": {"width": 390, "height": 844}, "device_scale": 2.5},
            ("Chrome/1", None, "390x844@2.5"),
        ),
        ({"viewport": {"width": 800, "height": 600}, "device_scale": 3}, (None, None, "800x600@3")),
        ({"viewport": {"width": 800, "height": 600}}, (None, None, "800x600")),
        # a browser that failed before it gave its version: what is missing stays null
        ({"interception_ca": "sha256:00", "blocked": []}, (None, None, None)),
        ({"product": "", "viewport": {"width": "800", "height": 600}}, (None, None, None)),
        ({"viewport": {"width": True, "height": 600}, "device_scale": 1}, (None, None, None)),
        (
            {"viewport": {"width": 800, "height": 600}, "device_scale": True},
            (None, None, "800x600"),
        ),
        (None, (None, None, None)),
    ],
)
def test_the_columns_from_the_browser_provenance(
    info: dict[str, Any] | None, expected: tuple[str | None, ...]
) -> None:
    assert tuple(browser_columns(info).values()) == expected
    # the metadata record holds it as JSON: rebuild reads the same values back
    assert browser_columns(json.loads(json.dumps(info))) == browser_columns(info)


def test_the_viewport_is_exact_and_short() -> None:
    size = {"width": 1280, "height": 720}
    assert viewport_text(size, 1.0) == "1280x720@1"
    assert viewport_text(size, 0.25) == "1280x720@0.25"
    assert viewport_text(size, 1 / 3) == f"1280x720@{1 / 3!r}"  # no digit lost
    assert viewport_text(size, float("nan")) == "1280x720"
    assert viewport_text([1280, 720], 1.0) is None


def test_every_version_only_adds_columns_at_the_end() -> None:
    for table in schema.TABLES:
        for version in range(2, schema.CURRENT_VERSION[table] + 1):
            older, newer = schema.load(table, version - 1), schema.load(table, version)
            shape = [(c.name, c.type, c.nullable) for c in older.columns]
            assert [(c.name, c.type, c.nullable) for c in newer.columns][: len(shape)] == shape
            assert all(c.nullable for c in newer.columns[len(shape) :])  # old files: null
    added = schema.load("captures").columns[len(schema.load("captures", 1).columns) :]
    assert [(c.name, c.type) for c in added] == [(n, "string") for n in NEW_COLUMNS]
    doc = json.loads((SCHEMAS / "captures.v2.json").read_text("utf-8"))
    assert doc["version"] == 2 and all(c["description"].strip() for c in doc["columns"])


# a browser capture's row -----------------------------------------------------------
def test_a_browser_capture_writes_the_three_columns(mixed: Capture) -> None:
    archive = archive_of(mixed)
    folder = archive / "index" / "captures"
    new = folder / f"{mixed.capture_id}.parquet"
    assert version_of(new) == b"2"
    assert pq.read_schema(new).names == schema.load("captures").names
    # the file of the capture indexed under version 1 is as that code wrote it
    old = folder / f"{V1_CAPTURE}.parquet"
    assert old.read_bytes() == (V1_ARCHIVE / "index" / "captures" / old.name).read_bytes()
    assert version_of(old) == b"1" and "browser" not in pq.read_schema(old).names

    rows = duck(
        "select capture_id, browser, browser_user_agent, viewport, user_agent from "
        f"read_parquet('{folder}/*.parquet', union_by_name = true) order by capture_id"
    )
    assert rows[0] == (V1_CAPTURE, None, None, None, "Mozilla/5.0 (compatible; archiver/0.1.0)")
    _, product, agent, viewport, own_agent = rows[1]
    info = mixed.browser
    assert info is not None
    assert product == info["product"] and re.fullmatch(r"Chrome/\d+(\.\d+)+", product)
    assert agent == info["user_agent"] and "Chrome/" in agent and "HeadlessChrome" not in agent
    assert agent != own_agent == mixed.options.user_agent  # archiver's own requests
    width, height = mixed.options.viewport
    assert viewport == f"{width}x{height}@1" == "1366x768@1"

    # the screenshot of the window is that size (at device scale 1)
    (view,) = [r for r in read_all(mixed.warc_files) if (r.url or "").startswith("urn:view:")]
    assert view.payload[:8] == b"\x89PNG\r\n\x1a\n"
    assert struct.unpack(">II", view.payload[16:24]) == (width, height)


def test_the_manifest_says_which_columns_its_row_holds(mixed: Capture) -> None:
    assert mixed.manifest is not None
    data = mixed.manifest.read_bytes()
    doc = json.loads(data)
    assert doc["format"] == "archiver/manifest/2"
    v2 = json.loads((SCHEMAS / "manifest.v2.json").read_text("utf-8"))
    jsonschema.Draft202012Validator(v2).validate(doc)
    indexed = {r.capture_id: r for r in read_rows(Index(archive_of(mixed)), "captures")}
    assert set(indexed) == {V1_CAPTURE, mixed.capture_id}
    for column in NEW_COLUMNS:
        assert doc["capture"][column] == getattr(indexed[mixed.capture_id], column) is not None
    parsed = Manifest.from_bytes(data)
    assert parsed.version == 2 and parsed.to_bytes() == data

    # the capture made before: format 1, its row without the columns, read back as null
    old = archive_of(mixed) / "warc" / "default" / f"{V1_CAPTURE}.manifest.json"
    old_doc = json.loads(old.read_bytes())
    assert old_doc["format"] == "archiver/manifest/1"
    assert not set(NEW_COLUMNS) & set(old_doc["capture"])
    v1 = json.loads((SCHEMAS / "manifest.v1.json").read_text("utf-8"))
    jsonschema.Draft202012Validator(v1).validate(old_doc)
    assert not jsonschema.Draft202012Validator(v2).is_valid(old_doc)
    signed = Manifest.from_bytes(old.read_bytes())
    assert signed.version == 1 and signed.to_bytes() == old.read_bytes()
    assert [getattr(signed.capture, c) for c in NEW_COLUMNS] == [None] * 3


# the archive as a whole ---------------------------------------------------------------
def test_rebuild_gives_the_rows_the_capture_wrote(mixed: Capture, tmp_path: Path) -> None:
    archive = copied(mixed, tmp_path)
    before = {t: sorted(read_rows(Index(archive), t), key=repr) for t in schema.TABLES}
    browsed = next(r for r in before["captures"] if r.capture_id == mixed.capture_id)
    assert [getattr(browsed, c) for c in NEW_COLUMNS] == list(
        browser_columns(mixed.browser).values()
    )
    shutil.rmtree(archive / "index")
    result = run("index", "rebuild", archive=archive)
    assert result.returncode == 0, result.stderr
    assert "indexed 2 captures" in result.stdout
    after = {t: sorted(read_rows(Index(archive), t), key=repr) for t in schema.TABLES}
    assert after == before  # every column of both captures, the browser's included
    # the rebuilt files are of the current version, the old capture's too (nulls)
    for path in Index(archive).files("captures"):
        assert version_of(path) == b"2"
    assert run("verify", archive=archive).returncode == 0


def test_verify_query_and_compact_an_archive_of_both_versions(
    mixed: Capture, tmp_path: Path
) -> None:
    archive = copied(mixed, tmp_path)
    checked = run("verify", archive=archive)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "everything holds" in checked.stdout
    sql = "select capture_id, browser, browser_user_agent, viewport from captures order by 1"
    answer = run("query", sql, "--format", "json", archive=archive)
    assert answer.returncode == 0, answer.stderr
    rows = json.loads(answer.stdout)
    expected = [
        {"capture_id": V1_CAPTURE, **dict.fromkeys(NEW_COLUMNS)},
        {"capture_id": mixed.capture_id, **browser_columns(mixed.browser)},
    ]
    assert rows == expected and rows[1]["viewport"] == "1366x768@1"

    compacted = run("index", "compact", archive=archive)
    assert compacted.returncode == 0, compacted.stderr
    (merged,) = Index(archive).files("captures")
    assert merged.name.startswith("compact-") and version_of(merged) == b"2"
    assert pq.read_schema(merged).names == schema.load("captures").names
    assert len(Index(archive).files("records")) == 1
    assert json.loads(run("query", sql, "--format", "json", archive=archive).stdout) == expected
    again = run("verify", archive=archive)
    assert again.returncode == 0, again.stdout + again.stderr
    # one file, one schema: every reader takes the folder as it is
    folder = archive / "index" / "captures"
    frame = polars.read_parquet(folder).sort("capture_id")
    assert frame.select(NEW_COLUMNS).rows() == [tuple(r[c] for c in NEW_COLUMNS) for r in rows]


def test_other_readers_take_a_folder_of_both_versions(mixed: Capture) -> None:
    folder = archive_of(mixed) / "index" / "captures"
    files = sorted(folder.glob("*.parquet"))
    assert [version_of(p) for p in files] == [b"1", b"2"]
    columns = browser_columns(mixed.browser)
    expected = [
        (V1_CAPTURE, None, None),
        (mixed.capture_id, columns["browser"], columns["viewport"]),
    ]
    # DuckDB, by name: what README.md shows
    got = duck(
        "select capture_id, browser, viewport from "
        f"read_parquet('{folder}/*.parquet', union_by_name = true) order by 1"
    )
    assert got == expected
    # polars: the current schema (the newest file's), the columns a file lacks as null
    newest = polars.read_parquet_schema(files[-1])
    frame = polars.scan_parquet(folder, schema=newest, missing_columns="insert").collect()
    assert frame.sort("capture_id").select("capture_id", "browser", "viewport").rows() == got
    diagonal = polars.concat([polars.scan_parquet(p) for p in files], how="diagonal_relaxed")
    rows = diagonal.collect().sort("capture_id").select("capture_id", "browser", "viewport")
    assert rows.rows() == got
    # pyarrow (and pandas over it): the dataset with the schema given
    table = pq.read_table(folder, schema=schema.arrow_schema("captures"))
    picked = table.select(["capture_id", "browser", "viewport"]).sort_by("capture_id")
    assert [tuple(r.values()) for r in picked.to_pylist()] == got


def test_verify_compares_the_new_columns_with_each_manifest(mixed: Capture, tmp_path: Path) -> None:
    """A row claiming a browser for a capture signed before the columns existed, or
    another viewport than the signed one, fails."""
    archive = copied(mixed, tmp_path)
    folder = archive / "index" / "captures"
    for capture_id, column, value in (
        (V1_CAPTURE, "browser", "Chrome/1.0"),
        (mixed.capture_id, "viewport", "800x600@1"),
    ):
        path = folder / f"{capture_id}.parquet"
        data = conform(pq.read_table(path), "captures")
        index = data.schema.get_field_index(column)
        data = data.set_column(index, column, pa.array([value], pa.string()))
        pq.write_table(data, path)
    checked = run("verify", archive=archive)
    assert checked.returncode == 1, checked.stdout
    assert (
        "captures column browser is 'Chrome/1.0', the signed manifest was made before this "
        "column existed" in checked.stdout
    )
    assert (
        "captures column viewport is '800x600@1', the signed manifest says '1366x768@1'"
        in checked.stdout
    )


def test_show_query_and_extract_reach_what_the_browser_showed(
    mixed: Capture, tmp_path: Path
) -> None:
    archive = copied(mixed, tmp_path)
    page = mixed.final_url
    assert page is not None
    shown = run("show", mixed.capture_id, archive=archive)
    assert shown.returncode == 0, shown.stderr
    info = mixed.browser
    assert info is not None
    lines = [line.strip() for line in shown.stdout.splitlines()]
    assert f"browser: {info['product']}" in lines and "viewport: 1366x768@1" in lines
    assert f"browser_user_agent: {info['user_agent']}" in lines
    for kind in RESOURCE_ROLES:
        assert f"urn:{kind}:{page}" in shown.stdout

    sql = (
        "select record_id, role, url, content_type from records "
        f"where capture_id = '{mixed.capture_id}' and warc_type = 'resource' order by url"
    )
    answer = run("query", sql, "--format", "json", archive=archive)
    assert answer.returncode == 0, answer.stderr
    resources = json.loads(answer.stdout)
    assert {r["url"]: r["role"] for r in resources} == {
        f"urn:{kind}:{page}": role for kind, role in RESOURCE_ROLES.items()
    }
    # the schema's descriptions name every role and kind of target URI written
    described = {c.name: c.description for c in schema.load("records").columns}
    for kind, role in RESOURCE_ROLES.items():
        assert f"urn:{kind}:" in described["url"] and role in described["role"]
    assert "resource" in described["warc_type"]

    # each one written as stored: its block, byte for byte (warcio reads the WARC)
    stored = {r.url: r for r in read_all(mixed.warc_files) if r.type == "resource"}
    screenshot = tmp_path / "view.png"
    url = f"urn:view:{page}"
    wrote = run("extract", mixed.capture_id, "--url", url, "-o", str(screenshot), archive=archive)
    assert wrote.returncode == 0, wrote.stderr
    assert screenshot.read_bytes() == stored[url].block
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for n, row in enumerate(resources):  # by record id, in-process
        out = tmp_path / f"{n}-{row['role']}"
        result = extract(archive, row["record_id"], out)
        assert out.read_bytes() == stored[row["url"]].block, row["url"]
        assert result.content_type == row["content_type"] and result.url == row["url"]


# an archive indexed under version 1 only ----------------------------------------------
def test_an_archive_indexed_under_version_1_reads_verifies_and_rebuilds(tmp_path: Path) -> None:
    archive = copy_v1(tmp_path / "archives")
    checked = run("verify", archive=archive)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    # the views have every current column, null where no file holds it yet
    sql = "select capture_id, browser, browser_user_agent, viewport from captures"
    answer = run("query", sql, "--format", "json", archive=archive)
    assert answer.returncode == 0, answer.stderr
    assert json.loads(answer.stdout) == [{"capture_id": V1_CAPTURE, **dict.fromkeys(NEW_COLUMNS)}]
    shown = run("show", V1_CAPTURE, "--format", "json", archive=archive)
    assert shown.returncode == 0 and json.loads(shown.stdout)["capture"]["browser"] is None
    before = {t: read_rows(Index(archive), t) for t in schema.TABLES}
    assert run("index", "compact", archive=archive).returncode == 0  # one file: nothing to do
    assert [version_of(p) for p in Index(archive).files("captures")] == [b"1"]
    rebuilt = run("index", "rebuild", archive=archive)
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert {t: read_rows(Index(archive), t) for t in schema.TABLES} == before
    assert [version_of(p) for p in Index(archive).files("captures")] == [b"2"]
    # an import is indexed under the current version too, with no browser
    imported = run("index", "import", str(DATA / "example.warc.gz"), archive=archive)
    assert imported.returncode == 0, imported.stderr
    (row,) = [r for r in read_rows(Index(archive), "captures") if r.imported]
    assert [getattr(row, c) for c in NEW_COLUMNS] == [None, None, None]
    assert version_of(Index(archive).table_dir("captures") / f"{row.capture_id}.parquet") == b"2"
    checked = run("verify", archive=archive)
    assert checked.returncode == 0, checked.stdout + checked.stderr
