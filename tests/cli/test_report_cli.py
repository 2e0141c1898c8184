"""``archiver report`` as users run it: real processes, a real capture of a loopback
site, the real Chromium (or none at all), and the custody log read back."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from pypdf import PdfReader
from selectolax.lexbor import LexborHTMLParser

from archiver.trust import custody
from tests.support.routes import page, response, server
from tests.support.runner import run

VIDEO = b"\x00\x00\x00\x18ftypisom" + bytes(range(256)) * 8  # not playable: said so


@pytest.fixture(scope="module")
def captured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    """An archive holding one capture made by ``archiver capture`` (with a key store and
    configuration of its own): (archive, capture id).  Tests that change it use a copy."""
    home = tmp_path_factory.mktemp("report-cli")
    (home / "xdg" / "archiver").mkdir(parents=True)
    (home / "xdg" / "archiver" / "config.toml").write_text(
        "[capture]\nallow_private = true\n", "utf-8"
    )
    env = {"ARCHIVER_KEY_STORE": str(home / "keys"), "XDG_CONFIG_HOME": str(home / "xdg")}
    routes = {
        "/": page('<title>A "report" &amp; its &lt;facts&gt;</title><video src="/v.mp4"></video>'),
        "/v.mp4": lambda base: response("200 OK", VIDEO, kind="video/mp4"),
    }
    archive = home / "archives"
    with server(routes) as (base, _):
        done = run(
            "capture", base + "/", "--archive-dir", str(archive), "--format", "json", env=env
        )
    assert done.returncode == 0, done.stderr
    yield archive, json.loads(done.stdout.splitlines()[-1])["capture_id"]


def facts(path: Path) -> dict[str, object]:
    node = LexborHTMLParser(path.read_text("utf-8")).css_first("pre#archiver-facts")
    assert node is not None
    found: dict[str, object] = json.loads(node.text())
    return found


def last_event(archive: Path, capture_id: str) -> custody.Event:
    return custody.history(custody.check(archive), capture_id)[-1]


def test_report_writes_both_documents_says_so_and_logs_it(
    captured: tuple[Path, str], tmp_path: Path, chromium: str
) -> None:
    archive, cid = captured
    html, pdf = tmp_path / "out" / "report.html", tmp_path / "out" / "report.pdf"
    done = run("report", cid, "-o", str(html), "-o", str(pdf), "--archive-dir", str(archive))
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    digests = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in (html, pdf)}
    lines = done.stdout.splitlines()
    assert lines[0] == f"wrote {html}: HTML, {html.stat().st_size} bytes, sha256 {digests[html]}"
    assert lines[1] == f"wrote {pdf}: PDF, {pdf.stat().st_size} bytes, sha256 {digests[pdf]}"
    assert lines[2] == f"capture {cid}: verified when the report was made, everything holds"
    stated = facts(html)
    assert stated["capture"]["capture_id"] == cid  # type: ignore[index]
    assert stated["capture"]["title"] == 'A "report" & its <facts>'  # type: ignore[index]
    assert cid in PdfReader(pdf).pages[0].extract_text()
    event = last_event(archive, cid)
    assert (event.action, event.result, event.captures) == ("report", "ok", (cid,))
    assert {(f.path, f.sha256) for f in event.files} == {(str(p), d) for p, d in digests.items()}
    assert (
        event.detail
        == "html report.html, pdf report.pdf; verification at report time: everything holds"
    )
    assert custody.check(archive).ok  # the log's chain still holds


def test_report_in_json(captured: tuple[Path, str], tmp_path: Path) -> None:
    archive, cid = captured
    html = tmp_path / "r.html"
    done = run("report", cid, "-o", str(html), "--format", "json", "--archive-dir", str(archive))
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert doc["capture_id"] == cid and doc["verified"] is True and doc["problems"] == 0
    (written,) = doc["written"]
    assert written["sha256"] == hashlib.sha256(html.read_bytes()).hexdigest()
    assert doc["custody_logged"] is True and doc["verification"]["ok"] is True


def test_a_report_is_not_written_over_an_existing_file_without_force(
    captured: tuple[Path, str], tmp_path: Path
) -> None:
    archive, cid = captured
    html = tmp_path / "r.html"
    html.write_text("given to the court", "utf-8")
    before = len(custody.check(archive).events)
    refused = run("report", cid, "-o", str(html), "--archive-dir", str(archive))
    assert (
        refused.returncode == 2
        and f"{html} exists" in refused.stderr
        and "--force" in refused.stderr
    )
    assert html.read_text("utf-8") == "given to the court"
    assert len(custody.check(archive).events) == before  # nothing logged
    forced = run("report", cid, "-o", str(html), "--force", "--archive-dir", str(archive))
    assert forced.returncode == 0, forced.stderr
    assert facts(html)["schema"] == "archiver/report-facts/1"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["20200101000000-0000000000", "-o", "r.html"], "no capture 20200101000000-0000000000"),
        (["not-an-id", "-o", "r.html"], "'not-an-id' is not a capture id"),
        (["{cid}", "-o", "r.docx"], "a report is written as FILE.html or FILE.pdf"),
        (["{cid}", "-o", "a.html", "-o", "b.html"], "one html report at a time"),
        (["{cid}"], "Missing option '-o' / '--output'"),
    ],
)
def test_bad_requests_exit_2_saying_what_is_wrong(
    captured: tuple[Path, str], tmp_path: Path, args: list[str], message: str
) -> None:
    archive, cid = captured
    given = [a.format(cid=cid) for a in args]
    done = run("report", *given, "--archive-dir", str(archive), cwd=tmp_path)
    assert done.returncode == 2, done.stdout + done.stderr
    assert message in done.stderr and "Traceback" not in done.stderr
    assert not list(tmp_path.glob("*.html")) and not list(tmp_path.glob("*.docx"))


def test_without_chromium_a_pdf_is_refused_and_html_still_works(
    captured: tuple[Path, str], tmp_path: Path
) -> None:
    archive, cid = captured
    empty = tmp_path / "bin"  # a PATH where no browser is
    empty.mkdir()
    env = {"PATH": str(empty), "ARCHIVER_BROWSER": None}
    pdf = tmp_path / "r.pdf"
    refused = run("report", cid, "-o", str(pdf), "--archive-dir", str(archive), env=env)
    assert refused.returncode == 2, refused.stderr
    assert "install Debian's `chromium` package (apt install chromium)" in refused.stderr
    assert "-o FILE.html" in refused.stderr and not pdf.exists()
    both = run("report", cid, "-o", str(tmp_path / "r.html"), "-o", str(pdf),
               "--archive-dir", str(archive), env=env)  # fmt: skip
    assert both.returncode == 2 and not (tmp_path / "r.html").exists()
    html = run(
        "report", cid, "-o", str(tmp_path / "r.html"), "--archive-dir", str(archive), env=env
    )
    assert html.returncode == 0, html.stderr


def test_a_tampered_capture_exits_1_with_its_report_written(
    captured: tuple[Path, str], tmp_path: Path
) -> None:
    archive, cid = captured
    copy = tmp_path / "copy"
    shutil.copytree(archive, copy)
    manifest = next((copy / "warc").rglob("*.manifest.json"))
    manifest.write_bytes(
        manifest.read_bytes().replace(b'"status": "complete"', b'"status": "partial "')
    )
    html = tmp_path / "r.html"
    done = run("report", cid, "-o", str(html), "--archive-dir", str(copy))
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"capture {cid}: verification FAILED when the report was made" in done.stderr
    assert done.stdout.startswith(f"wrote {html}: HTML")
    stated = facts(html)
    assert stated["verification"]["ok"] is False  # type: ignore[index]
    assert any("signature" in p for p in stated["verification"]["problems"])  # type: ignore[index]
    assert last_event(copy, cid).result == "failed"
