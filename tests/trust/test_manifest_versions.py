"""Manifest formats 1 and 2: each says which columns its ``captures`` row holds.

Format 1 (``schemas/manifest.v1.json``) was written before the captures table gained its
browser columns; ``tests/golden/manifest.v1.json`` holds the bytes the code of that time
wrote for the golden rows (``tests/support/golden_manifest.py``), the same file as
``tests/golden/manifest.json`` was then.  A signed manifest is never rewritten, so
format 1 must still read, and write back, byte for byte.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import jsonschema  # type: ignore[import-untyped,unused-ignore]
import pytest

from archiver.index import schema
from archiver.trust.manifest import FORMAT, TABLE_VERSIONS, VERSION, Manifest, ManifestError
from tests.support.golden_manifest import golden_manifest
from tests.support.paths import GOLDEN, SCHEMAS

NEW_COLUMNS = ("browser", "browser_user_agent", "viewport")
GOLDEN_V1 = GOLDEN / "manifest.v1.json"


def manifest_schema(version: int) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((SCHEMAS / f"manifest.v{version}.json").read_text("utf-8"))
    return doc


def valid(version: int, doc: dict[str, Any]) -> bool:
    checker = jsonschema.Draft202012Validator(
        manifest_schema(version), format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )
    return bool(checker.is_valid(doc))


def test_new_manifests_are_of_the_last_format() -> None:
    assert VERSION == max(TABLE_VERSIONS) == 2 and FORMAT == "archiver/manifest/2"
    assert TABLE_VERSIONS[VERSION] == schema.CURRENT_VERSION  # the rows the index writes
    assert golden_manifest().version == VERSION


@pytest.mark.parametrize("version", sorted(TABLE_VERSIONS))
def test_each_format_holds_the_columns_of_its_table_versions(version: int) -> None:
    doc = manifest_schema(version)
    jsonschema.Draft202012Validator.check_schema(doc)
    assert doc["properties"]["format"]["const"] == f"archiver/manifest/{version}"
    assert doc["$id"] == f"archiver:schemas/manifest.v{version}.json"
    tables = TABLE_VERSIONS[version]
    capture = doc["properties"]["capture"]
    names = schema.load("captures", tables["captures"]).names
    assert list(capture["properties"]) == capture["required"] == names
    assert capture["additionalProperties"] is False
    assert f"captures.v{tables['captures']}.json" in capture["description"]
    records = doc["properties"]["records"]["items"]
    assert list(records["properties"]) == schema.load("records", tables["records"]).names
    for name in set(NEW_COLUMNS) & set(names):
        assert capture["properties"][name]["type"] == ["string", "null"]
        assert capture["properties"][name]["description"]


def test_a_manifest_of_format_1_reads_and_writes_back_byte_for_byte() -> None:
    data = GOLDEN_V1.read_bytes()
    doc = json.loads(data)
    assert doc["format"] == "archiver/manifest/1" and not set(NEW_COLUMNS) & set(doc["capture"])
    assert valid(1, doc) and not valid(2, doc)
    parsed = Manifest.from_bytes(data)
    assert parsed.version == 1 and parsed.to_bytes() == data
    assert [getattr(parsed.capture, c) for c in NEW_COLUMNS] == [None, None, None]
    # the same rows written as format 1 today give the bytes written before format 2
    built = golden_manifest()
    assert replace(built, version=1).to_bytes() == data
    assert replace(parsed, version=2) == built  # the same rows, read back
    # and as format 2 (tests/golden/manifest.json): the three columns, null
    current = json.loads(built.to_bytes())
    assert current["format"] == FORMAT and valid(2, current) and not valid(1, current)
    assert {c: current["capture"][c] for c in NEW_COLUMNS} == dict.fromkeys(NEW_COLUMNS)
    assert {k: v for k, v in current["capture"].items() if k not in NEW_COLUMNS} == doc["capture"]


Doc = dict[str, Any]


def _v1_with_a_browser(doc: Doc) -> None:
    doc["capture"]["browser"] = "Chrome/150.0.7871.100"


def _v2_without_viewport(doc: Doc) -> None:
    doc["format"] = "archiver/manifest/2"
    doc["capture"].update(browser=None, browser_user_agent=None)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (_v1_with_a_browser, r"capture: missing columns \[\], unexpected \['browser'\]"),
        (_v2_without_viewport, r"capture: missing columns \['viewport'\], unexpected \[\]"),
        (lambda d: d.update(format="archiver/manifest/01"), "unknown manifest format"),
        (lambda d: d.update(format="archiver/manifest/2 "), "unknown manifest format"),
        (lambda d: d.update(format="archiver/manifest/0"), "unknown manifest format"),
        (lambda d: d.update(format=2), "unknown manifest format 2"),
    ],
)
def test_a_row_must_hold_exactly_its_formats_columns(mutate: Any, message: str) -> None:
    doc = json.loads(GOLDEN_V1.read_bytes())
    mutate(doc)
    with pytest.raises(ManifestError, match=message):
        Manifest.from_bytes(json.dumps(doc).encode())


def test_a_format_that_cannot_hold_a_value_is_never_written() -> None:
    built = golden_manifest()
    browsed = replace(built, capture=replace(built.capture, viewport="1366x768@1"), version=1)
    with pytest.raises(ManifestError, match="version 1 has no column viewport"):
        browsed.to_bytes()
    as_two = replace(browsed, version=2).to_bytes()  # format 2 holds it
    assert Manifest.from_bytes(as_two).capture.viewport == "1366x768@1"
    with pytest.raises(ManifestError, match="unknown manifest format"):
        replace(built, version=3).to_bytes()
