"""What an adversarial review of ``archiver report`` found, each held by a real capture.

A relative archive folder that made every verification fail, the checks printed for a
screenshot, the videos of an imported file and the ones reached through a redirect,
the page's redirects mixed with its videos', a title of a megabyte ahead of the
verdict, a PDF that cannot be printed losing the HTML, a report left in place that the
custody log never recorded, and the smaller things said wrong.  Real loopback servers,
real Chromium, a real time-stamping authority, the commands the report prints run as
printed.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import Any

import pytest
from pypdf import PdfReader
from selectolax.lexbor import LexborHTMLParser as HTMLParser

from archiver import Archive
from archiver.capture.run import Capturer
from archiver.core.atomic import TEMP_MARK
from archiver.core.errors import Failure, UsageProblem
from archiver.core.model import Capture, CaptureOptions, CaptureStatus
from archiver.ops.report import PrintFailed, recipes
from archiver.ops.report.document import HEADER_TITLE
from archiver.ops.report.facts import plain
from archiver.ops.report.pdf import PRINT_TIMEOUT, print_timeout
from archiver.trust import custody
from archiver.trust.timestamp import timestamper
from tests.support.deterministic import fixed_signer
from tests.support.routes import page, redirect, response, server
from tests.support.runner import run
from tests.support.tsa import LocalTSA, Pki, make_pki

CLIP = b"\x00\x00\x00\x18ftypisom" + bytes(range(256)) * 16  # the bytes a redirect led to
TITLE = "A title of a hostile site " + "W" * 20_000


def article(title: str) -> str:
    return (
        f'<!DOCTYPE html><html><head><meta charset="utf-8"><title>{title}</title></head>'
        '<body><img src="/img-moved"><video src="/redir.mp4"></video></body></html>'
    )


ROUTES: dict[str, Any] = {
    "/start": redirect("{base}/r1"),
    "/r1": redirect("{base}/article"),
    "/article": page(article(TITLE)),
    "/img-moved": redirect("{base}/img.png"),  # a requisite's redirect: not the page's
    "/redir.mp4": redirect("{base}/clip2.mp4"),
    "/clip2.mp4": lambda base: response("200 OK", CLIP, kind="video/mp4"),
}


@dataclass
class Captured:
    folder: Path
    archive: Path
    capture: Capture
    base: str
    pki: Pki


def facts_in(path: Path) -> dict[str, Any]:
    node = HTMLParser(path.read_text("utf-8")).css_first("pre#archiver-facts")
    assert node is not None
    found: dict[str, Any] = json.loads(node.text())
    return found


def run_step(archive: Path, setup: str, step: recipes.Step, tsa_root: Path | None) -> list[str]:
    """A block of commands as the report prints it, run in the archive: what it printed."""
    script = "\n".join([setup, step.commands]).replace("cd /path/to/archive", f"cd {archive}")
    if tsa_root is not None:
        script = script.replace("/path/to/authority-root.pem", str(tsa_root))
    done = subprocess.run(
        ["bash", "-c", f"cd {archive}\n{script}"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    return (done.stdout + done.stderr).splitlines()


def env_for(folder: Path) -> dict[str, str | None]:
    """A key store and configuration of the test's own, for the command line."""
    (folder / "xdg" / "archiver").mkdir(parents=True, exist_ok=True)
    return {"ARCHIVER_KEY_STORE": str(folder / "keys"), "XDG_CONFIG_HOME": str(folder / "xdg")}


@pytest.fixture(scope="module")
def captured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Captured]:
    """An HTTP capture: two redirects to the page, a requisite and a video that redirect,
    a long title; time-stamped by two authorities."""
    folder = tmp_path_factory.mktemp("review")
    archive = folder / "archives"
    pki = make_pki(folder / "pki", "authority")
    with server(ROUTES) as (base, _), LocalTSA(pki) as one, LocalTSA(pki) as two:
        options = CaptureOptions(archive_dir=archive, allow_private=True, timeout=5)
        capture = Capturer(options, signer=fixed_signer(), hostname="test-host").capture(
            base + "/start"
        )
        assert capture.status is CaptureStatus.COMPLETE, capture.errors
        assert capture.manifest is not None
        stamper = timestamper([one.url, two.url], [pki.root_cert])
        assert stamper is not None
        stamps = Archive(archive, signer=fixed_signer()).timestamp(capture.manifest, stamper)
        assert [s.ok for s in stamps] == [True, True], stamps
        yield Captured(folder, archive, capture, base, pki)


def copy_of(captured: Captured, where: Path) -> Path:
    shutil.copytree(captured.archive, where)
    return where


# 1. a relative archive folder ------------------------------------------------------


def test_a_relative_archive_folder_verifies_and_reports(
    captured: Captured, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--archive-dir archives`` (the default) named each manifest twice, once as given
    and once resolved: "a second manifest for this capture", in every report."""
    copy_of(captured, tmp_path / "archives")
    cid = captured.capture.capture_id
    monkeypatch.chdir(tmp_path)
    relative = Archive(Path("archives"), signer=fixed_signer())
    verified = relative.verify([cid]).result
    assert verified.ok, [p.text() for p in verified.problems]
    assert [c.capture_id for c in verified.captures] == [cid]
    # a manifest named by a spelling of its own, beside the id: still one manifest
    manifest = f"archives/../archives/warc/default/{cid}.manifest.json"
    assert relative.verify([manifest, cid]).result.ok
    done = relative.report(cid, Path("report.html"))
    assert done.result.verified and done.logged.written
    assert facts_in(tmp_path / "report.html")["verification"]["problems"] == []
    for args in (["--archive-dir", "archives"], []):  # the default is `archives`
        said = run("verify", cid, *args, cwd=tmp_path, env=env_for(tmp_path))
        assert said.returncode == 0, said.stdout + said.stderr
        assert "a second manifest" not in said.stdout + said.stderr
    said = run("report", cid, "-o", "cli.html", cwd=tmp_path, env=env_for(tmp_path))
    assert said.returncode == 0, said.stdout + said.stderr
    assert f"capture {cid}: verified when the report was made, everything holds" in said.stdout


# 4, 5. redirects: the page's own chain; a video reached through one ----------------


def test_the_page_redirects_are_its_own_chain_each_with_where_it_led(
    captured: Captured, tmp_path: Path
) -> None:
    out = tmp_path / "r.html"
    Archive(copy_of(captured, tmp_path / "archives")).report(captured.capture.capture_id, out)
    facts, base = facts_in(out), captured.base
    assert [(r["url"], r["http_status"], r["location"]) for r in facts["redirects"]] == [
        (base + "/start", 302, base + "/r1"),
        (base + "/r1", 302, base + "/article"),
    ]  # not /img-moved nor /redir.mp4, which the page's image and video went through
    cell = HTMLParser(out.read_text("utf-8")).css_first('td[data-fact="redirects"]')
    assert cell is not None
    assert [li.text() for li in cell.css("li")] == [
        f"{base}/start (HTTP 302) → {base}/r1",
        f"{base}/r1 (HTTP 302) → {base}/article",
    ]


def test_a_video_reached_through_a_redirect_is_the_media_it_led_to(
    captured: Captured, tmp_path: Path
) -> None:
    out = tmp_path / "r.html"
    Archive(copy_of(captured, tmp_path / "archives")).report(captured.capture.capture_id, out)
    (video,) = facts_in(out)["videos"]
    base = captured.base
    assert video["url"] == base + "/redir.mp4"
    assert [(h["url"], h["location"]) for h in video["redirects"]] == [
        (base + "/redir.mp4", base + "/clip2.mp4")
    ]
    assert (video["size"], video["sha256"]) == (len(CLIP), hashlib.sha256(CLIP).hexdigest())
    assert all(r["url"] == base + "/clip2.mp4" for r in video["records"])
    assert "not captured" not in video["duration_source"]


# 6. a long title --------------------------------------------------------------------


def test_the_verdict_comes_first_and_a_long_title_is_cut_in_the_header(
    captured: Captured, tmp_path: Path, chromium: str
) -> None:
    html, pdf = tmp_path / "r.html", tmp_path / "r.pdf"
    Archive(copy_of(captured, tmp_path / "archives")).report(
        captured.capture.capture_id, [html, pdf], browser_path=chromium
    )
    tree = HTMLParser(html.read_text("utf-8"))
    header = tree.css_first("header")
    assert header is not None
    text = header.text()
    assert text.index("Verified: the capture") < text.index("titled")
    assert "W" * HEADER_TITLE not in text and f"{len(TITLE):,} characters" in text
    assert len(text) < 2 * HEADER_TITLE + 1000
    title = tree.css_first('td[data-fact="title"]')
    assert title is not None and title.text() == TITLE  # in full in the table
    assert facts_in(html)["capture"]["title"] == TITLE  # and in the JSON
    first = PdfReader(pdf).pages[0].extract_text()
    assert "Verified: the capture is as it was signed" in first


# 7. a PDF that cannot be printed ----------------------------------------------------


def test_a_pdf_chromium_cannot_print_leaves_the_html_written_and_logged(
    captured: Captured, tmp_path: Path
) -> None:
    archive = Archive(copy_of(captured, tmp_path / "archives"), signer=fixed_signer())
    cid = captured.capture.capture_id
    html, pdf = tmp_path / "r.html", tmp_path / "r.pdf"
    done = archive.report(cid, [html, pdf], browser_path="/bin/false")
    assert html.is_file() and not pdf.exists()
    assert list(done.result.not_written) == [pdf] and not done.result.ok
    assert done.result.verified  # the capture holds; the PDF is what failed
    event = custody.history(custody.check(archive.path), cid)[-1]
    assert (event.action, event.result) == ("report", "failed")
    assert [f.sha256 for f in event.files] == [hashlib.sha256(html.read_bytes()).hexdigest()]
    assert "r.pdf NOT written" in (event.detail or "")
    # a PDF alone: nothing to put in place, an error that says what does work
    with pytest.raises(PrintFailed, match=r"try -o FILE\.html"):
        archive.report(cid, tmp_path / "alone.pdf", browser_path="/bin/false")
    assert not (tmp_path / "alone.pdf").exists() and len(custody.check(archive.path).events) == (
        event.seq
    )
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(TEMP_MARK)]


def test_a_pdf_that_cannot_be_printed_exits_1_from_the_command_line(
    captured: Captured, tmp_path: Path
) -> None:
    archive = copy_of(captured, tmp_path / "archives")
    html, pdf = tmp_path / "r.html", tmp_path / "r.pdf"
    done = run("report", captured.capture.capture_id, "-o", str(html), "-o", str(pdf),
               "--browser-path", "/bin/false", "--archive-dir", str(archive),
               env=env_for(tmp_path))  # fmt: skip
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stdout.startswith(f"wrote {html}: HTML") and html.is_file() and not pdf.exists()
    assert f"error: {pdf} was not written: " in done.stderr and "try -o FILE.html" in done.stderr
    assert "Traceback" not in done.stderr


def test_the_time_to_print_grows_with_the_document() -> None:
    """A page of 8000 videos is a report of some 26 MB: printing it took more than the
    fixed 120 s there was, and failed the report that had taken longest to gather."""
    assert print_timeout(10_000) == pytest.approx(PRINT_TIMEOUT, abs=1)
    assert print_timeout(26_000_000) > 10 * PRINT_TIMEOUT


# 8, 9. outputs: all or nothing, said before the work, never in the archive ----------


def test_an_output_that_cannot_be_written_leaves_nothing_and_logs_nothing(
    captured: Captured, tmp_path: Path
) -> None:
    archive = Archive(copy_of(captured, tmp_path / "archives"), signer=fixed_signer())
    cid, before = captured.capture.capture_id, len(custody.check(archive.path).events)
    made = tmp_path / "new" / "deep"
    with pytest.raises(UsageProblem, match=r"cannot write /proc/x\.pdf: "):
        archive.report(cid, [made / "ok.html", Path("/proc/x.pdf")])
    assert not (tmp_path / "new").exists()  # the folders made for it are gone again
    assert len(custody.check(archive.path).events) == before
    (tmp_path / "file").write_text("a file, not a folder", "utf-8")
    with pytest.raises(UsageProblem, match=f"{tmp_path / 'file'} is not a directory"):
        archive.report(cid, tmp_path / "file" / "r.html")
    for inside in ("r.html", "custody/r.html", "tsa/r.html", "keys/../r.pdf"):
        with pytest.raises(UsageProblem, match="inside the archive"):
            archive.report(cid, archive.path / inside)
        assert not (archive.path / inside).exists()
    assert len(custody.check(archive.path).events) == before
    assert not [p for p in tmp_path.rglob(f"{TEMP_MARK}*")]


def test_bad_requests_are_plain_errors_from_the_command_line(
    captured: Captured, tmp_path: Path
) -> None:
    cid, env = captured.capture.capture_id, env_for(tmp_path)
    (tmp_path / "file").write_text("x", "utf-8")
    cases = [
        (["-o", "r.html", "--archive-dir", "/proc"], "error: no archive at /proc"),
        (["-o", "file/r.html", "--archive-dir", str(captured.archive)], "is not a directory"),
        (["-o", str(captured.archive / "x.html"), "--archive-dir", str(captured.archive)],
         "inside the archive"),
    ]  # fmt: skip
    for args, message in cases:
        done = run("report", cid, *args, cwd=tmp_path, env=env)
        assert done.returncode == 2, (args, done.stderr)
        assert done.stderr.startswith("error: ") and message in done.stderr, done.stderr
        assert "Errno" not in done.stderr and "Invalid value" not in done.stderr
    empty = tmp_path / "bin"  # no Chromium anywhere
    empty.mkdir()
    done = run("report", cid, "-o", "r.pdf", "--archive-dir", str(captured.archive),
               cwd=tmp_path, env={**env, "PATH": str(empty), "ARCHIVER_BROWSER": None})  # fmt: skip
    assert done.returncode == 2 and done.stderr.startswith("error: a PDF report needs Chromium")
    assert "Debian's `chromium` package" in done.stderr and "Invalid value" not in done.stderr


def test_a_read_only_archive_s_report_does_not_claim_to_be_logged(
    captured: Captured, tmp_path: Path
) -> None:
    """A write-blocked copy cannot log the report's making: the report says so instead
    of saying it is the log's next event (``Archive.report`` passes ``read_only()``)."""
    archive = Archive(copy_of(captured, tmp_path / "archives"))
    out, usual = tmp_path / "ro.html", tmp_path / "usual.html"
    archive.report(captured.capture.capture_id, out, not_logged="a read-only file system")
    text = HTMLParser(out.read_text("utf-8")).css_first("section#custody")
    assert text is not None
    said = text.text()
    assert "not in the custody log" in said and "a read-only file system" in said
    assert "logged as the next event" not in said
    assert facts_in(out)["report"]["not_logged"] == "a read-only file system"
    archive.report(captured.capture.capture_id, usual)
    assert facts_in(usual)["report"]["not_logged"] is None
    assert "logged as the next event" in usual.read_text("utf-8")


# 9. several time-stamp tokens: each checked on its own ------------------------------


def test_each_token_is_checked_on_its_own(captured: Captured, tmp_path: Path) -> None:
    copy = copy_of(captured, tmp_path / "archives")
    out = tmp_path / "r.html"
    Archive(copy).report(captured.capture.capture_id, out, tsa_roots=[captured.pki.root])
    facts = facts_in(out)
    steps = recipes.steps(facts)
    tokens = [s for s in steps if s.title.startswith("The trusted time")]
    assert len(tokens) == len(facts["timestamps"]) == 2
    setup = steps[0].commands
    for step in tokens:  # as printed, each holds, and gives the time the report states
        printed = run_step(copy, setup, step, captured.pki.root_cert)
        assert all(line in printed for line in step.expect), (step, printed)
        assert any(line.startswith("Time stamp: ") for line in step.expect)
    # one token damaged: its own check fails, the other's still holds
    broken = copy / facts["timestamps"][1]["file"]
    data = bytearray(broken.read_bytes())
    data[len(data) // 2] ^= 0x01
    broken.write_bytes(bytes(data))
    assert "Verification: OK" not in run_step(copy, setup, tokens[1], captured.pki.root_cert)
    assert "Verification: OK" in run_step(copy, setup, tokens[0], captured.pki.root_cert)


def test_notes_say_missing_not_python_s_errno(captured: Captured, tmp_path: Path) -> None:
    copy = copy_of(captured, tmp_path / "archives")
    for warc in (copy / "warc").rglob("*.warc.gz"):
        warc.unlink()
    out = tmp_path / "r.html"
    done = Archive(copy).report(captured.capture.capture_id, out)
    assert not done.result.verified and done.result.notes
    facts = facts_in(out)
    said = [*done.result.notes, *(v["duration_source"] for v in facts["videos"])]
    assert all("[Errno" not in n and "No such file" not in n for n in said), said
    assert any("missing" in n for n in done.result.notes), done.result.notes
    assert plain("cannot: [Errno 13] Permission denied: '/x/y'") == "cannot: Permission denied"


# 2, 4. a browser capture: its screenshot's check, a video through a redirect --------


@pytest.fixture(scope="module")
def browsed(tmp_path_factory: pytest.TempPathFactory, chromium: str) -> Iterator[Captured]:
    folder = tmp_path_factory.mktemp("review-browser")
    archive = folder / "archives"
    routes = {**ROUTES, "/article": page(article("In the browser"))}
    with server(routes) as (base, _):
        options = CaptureOptions(
            archive_dir=archive,
            allow_private=True,
            browser=True,
            browser_path=chromium,
            timeout=5,
            browser_timeout=20,
            platform_videos=False,
            viewport=(640, 480),
        )
        capture = Capturer(options, signer=fixed_signer(), hostname="test-host").capture(
            base + "/article"
        )
        assert capture.status is CaptureStatus.COMPLETE, (capture.failure, capture.errors)
        yield Captured(folder, archive, capture, base, make_pki(folder / "pki"))


def test_a_browser_capture_s_printed_checks_hold_screenshot_included(
    browsed: Captured, tmp_path: Path
) -> None:
    out = tmp_path / "r.html"
    Archive(browsed.archive).report(browsed.capture.capture_id, out)
    facts = facts_in(out)
    steps = recipes.steps(facts)
    titles = [s.title for s in steps]
    assert "The screenshot: its record" in titles
    (shot,) = [s for s in steps if s.title == "The screenshot: its record"]
    assert f"WARC-Block-Digest: sha256:{facts['screenshot']['sha256']}" in shot.expect
    shown = out.read_text("utf-8")
    for step in steps:  # the commands as the HTML shows them, run as printed
        assert escape(step.commands, quote=False) in shown
        printed = run_step(browsed.archive, steps[0].commands if step is not steps[0] else "",
                           step, None)  # fmt: skip
        assert all(line in printed for line in step.expect), (step.title, step.expect, printed)
    # the video the page referenced, reached through a redirect, is the media it led to
    (video,) = [v for v in facts["videos"] if v["url"] == browsed.base + "/redir.mp4"]
    assert video["redirects"][0]["location"] == browsed.base + "/clip2.mp4"
    assert (video["size"], video["sha256"]) == (len(CLIP), hashlib.sha256(CLIP).hexdigest())
    assert "not captured" not in video["duration_source"]


# 3, 9. an imported file holding a video --------------------------------------------


def imported_warc(path: Path) -> None:
    """A WARC file of "another tool": a page, a redirect, a video."""
    from warcio.statusandheaders import StatusAndHeaders
    from warcio.warcwriter import WARCWriter

    with open(path, "wb") as out:
        writer = WARCWriter(out, gzip=True)
        for url, status, headers, body in [
            ("http://example.org/", "200 OK", [("Content-Type", "text/html")],
             b'<html><title>x</title><video src="/redir"></video></html>'),
            ("http://example.org/redir", "302 Found", [("Location", "/v.mp4")], b""),
            ("http://example.org/v.mp4", "200 OK", [("Content-Type", "video/mp4")], CLIP),
        ]:  # fmt: skip
            head = StatusAndHeaders(status, headers, protocol="HTTP/1.1")
            record = writer.create_warc_record(
                url, "response", payload=io.BytesIO(body), http_headers=head
            )
            writer.write_record(record)


def test_an_imported_file_s_video_is_reported_as_the_index_counts_it(tmp_path: Path) -> None:
    source = tmp_path / "other-tool.warc.gz"
    imported_warc(source)
    archive = Archive(tmp_path / "archives", signer=fixed_signer())
    (done,) = archive.import_([source]).result
    assert not isinstance(done, tuple)
    cid = done.capture_id
    assert cid is not None
    (row,) = archive.query("select video_count from captures where capture_id = ?", [cid]).rows
    out = tmp_path / "imported.html"
    result = archive.report(cid, out).result
    facts = facts_in(out)
    assert len(facts["videos"]) == row["video_count"] == 1
    (video,) = facts["videos"]
    assert (video["url"], video["size"]) == ("http://example.org/v.mp4", len(CLIP))
    assert video["sha256"] == hashlib.sha256(CLIP).hexdigest()
    # its check gives the whole SHA-256 the custody log recorded on import, and holds
    (step,) = recipes.steps(facts)
    whole = hashlib.sha256(source.read_bytes()).hexdigest()
    assert [line.split()[0] for line in step.expect] == [whole]
    assert not any("…" in line for line in step.expect)
    assert all(line in run_step(archive.path, "", step, None) for line in step.expect)
    assert result.imported and "its own digests hold" in result.summary
    said = run("report", cid, "-o", str(tmp_path / "cli.html"), "--archive-dir",
               str(archive.path), env=env_for(tmp_path))  # fmt: skip
    assert said.returncode == 0, said.stderr
    assert "its own digests hold" in said.stdout and "everything holds" not in said.stdout


def test_an_archive_whose_index_is_no_folder_is_refused_plainly(tmp_path: Path) -> None:
    """What cannot be read as an index is said in words, not Python's errno text, and
    nothing is written."""
    archive = tmp_path / "archives"
    (archive / "warc").mkdir(parents=True)
    (archive / "index").write_text("not a folder", "utf-8")
    with pytest.raises((UsageProblem, Failure)) as raised:
        Archive(archive).report("20200101000000-0123456789", tmp_path / "r.html")
    assert "[Errno" not in str(raised.value) and "Traceback" not in str(raised.value)
    assert not (tmp_path / "r.html").exists()
    assert os.listdir(tmp_path) == ["archives"]
