"""``archiver import FILE.wacz``: WACZ files from other tools (py-wacz's here) and from
archiver itself are checked, their signature said as it is, and their WARC files indexed."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from archiver.index import query
from tests.support.runner import run

BIN = Path(sys.executable).parent
PAGE = b"<!doctype html><title>Elsewhere</title><h1>Made by another tool</h1><img src=a.png>"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


def _warc(path: Path) -> Path:
    """A WARC file written by warcio, as another tool writes one."""
    with path.open("wb") as out:
        writer = WARCWriter(out, gzip=True)
        for url, ctype, body in (
            ("https://other.example/page", "text/html; charset=utf-8", PAGE),
            ("https://other.example/a.png", "image/png", PNG),
        ):
            head = StatusAndHeaders(
                "200 OK",
                [("Content-Type", ctype), ("Content-Length", str(len(body)))],
                protocol="HTTP/1.1",
            )
            record = writer.create_warc_record(
                url, "response", payload=__import__("io").BytesIO(body), http_headers=head
            )
            writer.write_record(record)
    return path


@pytest.fixture
def py_wacz(tmp_path: Path) -> Path:
    """A WACZ made by py-wacz (``wacz create``), unsigned."""
    warc = _warc(tmp_path / "other.warc.gz")
    out = tmp_path / "other.wacz"
    done = subprocess.run(
        [str(BIN / "wacz"), "create", "-o", str(out), str(warc), "--detect-pages"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return out


def _urls(archive: Path) -> set[str]:
    rows = query.run(archive, "select url from records where warc_type = 'response'").rows
    return {row["url"] for row in rows}


def test_a_wacz_from_py_wacz_is_indexed(py_wacz: Path, tmp_path: Path) -> None:
    archive = tmp_path / "archives"
    done = run("import", str(py_wacz), "--archive-dir", str(archive), "--format", "json")
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert doc["signature"] == "unsigned"
    assert doc["check"]["made_by_archiver"] is False and doc["check"]["ok"]
    (item,) = doc["files"]
    assert item["records"] == 2 and item["capture_id"].startswith("import-")
    assert {"https://other.example/page", "https://other.example/a.png"} <= _urls(archive)
    stored = Path(item["stored_as"])
    with zipfile.ZipFile(py_wacz) as zf:  # the WARC file as it was in the WACZ, byte for byte
        assert stored.read_bytes() == zf.read("archive/other.warc.gz")
    again = run("import", str(py_wacz), "--archive-dir", str(archive), "--format", "json")
    assert again.returncode == 0 and json.loads(again.stdout)["files"][0]["already"]
    verified = run("verify", "--archive-dir", str(archive))
    assert verified.returncode == 0, verified.stdout + verified.stderr
    events = [json.loads(line) for line in (archive / "custody" / "events.jsonl").open()]
    (imported,) = [e for e in events if e["action"] == "index import"]
    assert "other.wacz: unsigned" in imported["detail"]


def test_index_import_takes_a_wacz_too(py_wacz: Path, tmp_path: Path) -> None:
    archive = tmp_path / "archives"
    done = run("index", "import", str(py_wacz), "--archive-dir", str(archive))
    assert done.returncode == 0, done.stderr
    assert "unsigned" in done.stdout and "https://other.example/page" in _urls(archive)


def test_a_changed_file_in_the_wacz_fails_and_is_named(py_wacz: Path, tmp_path: Path) -> None:
    changed = tmp_path / "changed.wacz"
    with zipfile.ZipFile(py_wacz) as zin, zipfile.ZipFile(changed, "w") as zout:
        for info in zin.infolist():
            data = zin.read(info)
            if info.filename == "indexes/index.idx":
                data += b"com,example,other)/zz 20200101000000 {}\n"
            zout.writestr(info, data)
    archive = tmp_path / "archives"
    done = run("import", str(changed), "--archive-dir", str(archive))
    assert done.returncode == 1
    assert "indexes/index.idx" in done.stderr and "Traceback" not in done.stderr
    assert "https://other.example/page" in _urls(archive)  # what was given is kept


def test_what_is_no_wacz(tmp_path: Path) -> None:
    junk = tmp_path / "junk.wacz"
    junk.write_bytes(b"PK\x03\x04 not really")
    done = run("import", str(junk), "--archive-dir", str(tmp_path / "archives"))
    assert done.returncode == 1 and "junk.wacz" in done.stderr
    assert "Traceback" not in done.stderr
