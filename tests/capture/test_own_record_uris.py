"""archiver's own records are named ``urn:archiver-<kind>:<url>``, and what reads them
back (index, rebuild, verify, extract, show) works with that and with the page URL that
captures written before issue 14 carry instead."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from archiver.capture.run import Capturer
from archiver.cli.app import cli
from archiver.core.urls import own_record_uri
from archiver.index import query
from archiver.ops.extract import extract, find_record
from archiver.ops.ingest import rebuild
from archiver.ops.verify import verify
from archiver.warc.rules import check_record
from tests.support.deterministic import fixed_signer
from tests.support.paths import DATA
from tests.support.site import FixtureSite
from tests.support.warcs import read_all

LEGACY = DATA / "legacy-capture"
CAPTURE_ID = "20200812100000-0123456789"  # the test ids (tests/conftest.py)


def rows(archive: Path, sql: str, *params: object) -> list[dict[str, object]]:
    return query.run(archive, sql, list(params)).rows


def show(archive: Path) -> dict[str, object]:
    shown = CliRunner().invoke(
        cli, ["show", CAPTURE_ID, "--format", "json", "--archive-dir", str(archive)]
    )
    assert shown.exit_code == 0, shown.output
    doc: dict[str, object] = json.loads(shown.output)
    return doc


def test_the_urn_of_a_record_of_ours() -> None:
    page = "https://example.org/news/article?id=7"
    assert own_record_uri("metadata", page) == f"urn:archiver-metadata:{page}"
    for kind in ("media-info", "certificate", "conversion"):
        assert own_record_uri(kind, page) == f"urn:archiver-{kind}:{page}"
    with pytest.raises(ValueError):
        own_record_uri("page", page)


def test_our_metadata_record_is_named_by_urn_and_the_index_follows(
    site: FixtureSite, make_capturer: Callable[..., Capturer], tmp_path: Path
) -> None:
    page = site.url(site.PLAIN)
    capture = make_capturer().capture(page)
    archive = tmp_path / "archives"
    records = read_all(capture.warc_files)
    (response,) = [r for r in records if r.type == "response"]
    (meta,) = [r for r in records if r.type == "metadata"]
    assert meta.url == f"urn:archiver-metadata:{page}"
    assert check_record(meta.version, meta.headers) == []
    # the link to the page: the record it refers to, and the URL in its JSON
    assert meta.get("WARC-Refers-To") == response.get("WARC-Record-ID")
    assert meta.json()["seed_url"] == meta.json()["final_url"] == page

    # a lookup of the page's URL finds the exchange, not our record
    found = rows(archive, "select warc_type from records where url = ? order by 1", page)
    assert [r["warc_type"] for r in found] == ["request", "response"]
    (ours,) = rows(archive, "select url, refers_to from records where role = 'metadata'")
    assert ours == {"url": meta.url, "refers_to": response.get("WARC-Record-ID")}
    listed = show(archive)["records"]
    assert isinstance(listed, list)
    assert {r["url"] for r in listed if r["warc_type"] == "metadata"} == {meta.url}

    # extract: the capture's page, by capture id or by its URL
    for url in (None, page):
        assert find_record(archive, CAPTURE_ID, url).record_id == response.get("WARC-Record-ID")
    out = tmp_path / "page.html"
    extract(archive, CAPTURE_ID, out, url=page)
    assert out.read_bytes() == site.decoded_body(site.PLAIN)
    # ... and our record by its record id
    extract(archive, str(meta.get("WARC-Record-ID")), tmp_path / "meta.json")
    assert json.loads((tmp_path / "meta.json").read_bytes())["capture_id"] == CAPTURE_ID

    # signed as written, rebuilt the same
    assert verify(archive).ok
    before = rows(archive, "select * from records order by warc_offset")
    count, reports = rebuild(archive)
    assert count == 1 and all(r.ok for r in reports)
    assert rows(archive, "select * from records order by warc_offset") == before
    assert verify(archive).ok


def test_a_capture_written_before_urn_target_uris_still_verifies_rebuilds_and_extracts(
    tmp_path: Path,
) -> None:
    """tests/data/legacy-capture: the metadata record's target URI is the page's URL."""
    archive = tmp_path / "archives"
    for folder in ("warc", "keys"):
        shutil.copytree(LEGACY / folder, archive / folder)
    (key,) = (archive / "keys").glob("*.pub.pem")
    manifest = json.loads(
        (archive / "warc" / "default" / f"{CAPTURE_ID}.manifest.json").read_bytes()
    )
    page = manifest["capture"]["seed_url"]
    (meta,) = [r for r in manifest["records"] if r["warc_type"] == "metadata"]
    assert meta["url"] == page  # the old form, signed as such

    # no index yet: rebuild it from the WARC file alone, then verify against the signature
    count, reports = rebuild(archive)
    assert count == 1 and all(r.ok for r in reports), [r.problems for r in reports]
    # no custody log either: recorded as predating it (tests/trust/test_custody_archive.py)
    signing = tmp_path / "archivist.key.pem"
    signing.write_bytes(
        fixed_signer().key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    )
    adopt = ["custody", "--adopt", "--archive-dir", str(archive)]
    adopted = CliRunner().invoke(cli, adopt, env={"ARCHIVER_KEY": str(signing)})
    assert adopted.exit_code == 0, adopted.output
    report = verify(archive, trusted=[str(key)])
    assert report.ok, [p.text() for p in report.problems]
    assert report.custody is not None and "predate the custody log" in report.custody.notes[0]
    (result,) = report.captures
    assert result.trusted and result.status == "complete"
    (ours,) = rows(archive, "select url, role from records where warc_type = 'metadata'")
    assert ours == {"url": page, "role": "metadata"}  # the index holds what was written
    assert show(archive)["capture"]["seed_url"] == page  # type: ignore[index]

    # extract finds the page's response, never the metadata record under the same URL
    response = manifest["records"][2]
    assert response["warc_type"] == "response" and response["url"] == page
    for url in (None, page):
        assert find_record(archive, CAPTURE_ID, url).record_id == response["record_id"]
    out = tmp_path / "page.html"
    extract(archive, CAPTURE_ID, out, url=page)
    assert hashlib.sha256(out.read_bytes()).hexdigest() == response["payload_sha256"]
    assert out.read_bytes().startswith(b"<!DOCTYPE html>")
    # and the metadata record itself, by its id
    extract(archive, meta["record_id"], tmp_path / "meta.json")
    doc = json.loads((tmp_path / "meta.json").read_bytes())
    assert doc["seed_url"] == page and doc["capture_id"] == CAPTURE_ID
