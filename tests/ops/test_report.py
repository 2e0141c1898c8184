"""``Archive.report``: the facts a capture's report states, in its HTML and its PDF, are
those of the index, of the bytes the servers sent, and of a verification made now.

Real captures of real loopback servers (one with a redirect, a real MP4 made by ffmpeg,
a fake video and a title full of markup; one in the real Chromium, with its
screenshot), a real time-stamping authority, the real Chromium printing the PDF, pypdf
reading it back; the commands the report gives are run as written.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pypdf import PdfReader
from selectolax.lexbor import LexborHTMLParser as HTMLParser

from archiver import Archive
from archiver.capture.run import Capturer
from archiver.core.errors import UsageProblem
from archiver.core.model import Capture, CaptureOptions, CaptureStatus, isoformat
from archiver.index.query import jsonable
from archiver.ops.report import recipes
from archiver.trust import custody
from archiver.trust.timestamp import timestamper
from tests.support.deterministic import fixed_signer
from tests.support.routes import page, redirect, response, server
from tests.support.tsa import LocalTSA, Pki, make_pki

# what a site chose: markup, quotes, an ampersand and a right-to-left override
TITLE = 'Évidence "quoted" & \'single\' <script>alert("x")</script> \u202egnp.exe'
OPERATOR = 'Анна "<b>analyst</b>"'
FAKE = b"not a video at all " * 64


def article(title: str) -> str:
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f'<title>{title}</title></head><body><h1 style="color:#a00">The appeal</h1>'
        '<video src="/clip.mp4" controls></video><video src="/fake.webm"></video>'
        '<video src="/hls/index.m3u8"></video>'
        "</body></html>"
    )


def real_media(folder: Path) -> dict[str, tuple[str, bytes]]:
    """One second of video, 64x48, as an MP4 file, and two seconds as an HLS stream of two
    segments, made by the ffmpeg archiver ships with: path -> (media type, bytes)."""
    import imageio_ffmpeg

    source = ["-f", "lavfi", "-i", "testsrc=size=64x48:rate=10", "-c:v", "libx264",
              "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-g", "10"]  # fmt: skip
    ffmpeg = [imageio_ffmpeg.get_ffmpeg_exe(), "-loglevel", "error", "-y"]
    subprocess.run([*ffmpeg, *source, "-t", "1", str(folder / "clip.mp4")], check=True)
    hls = folder / "hls"
    hls.mkdir()
    subprocess.run(
        [*ffmpeg, *source, "-t", "2", "-f", "hls", "-hls_time", "1", "-hls_playlist_type",
         "vod", "-hls_segment_filename", str(hls / "seg%d.ts"), str(hls / "index.m3u8")],
        check=True,
    )  # fmt: skip
    found = {"/clip.mp4": ("video/mp4", (folder / "clip.mp4").read_bytes())}
    for path in sorted(hls.iterdir()):
        kind = "application/vnd.apple.mpegurl" if path.suffix == ".m3u8" else "video/mp2t"
        found[f"/hls/{path.name}"] = (kind, path.read_bytes())
    return found


@dataclass
class Reported:
    """A capture, its archive, what was served, and its report in both forms."""

    archive: Path
    capture: Capture
    base: str
    media: dict[str, tuple[str, bytes]]
    pki: Pki
    html: Path
    pdf: Path
    done: Any


def routes(media: dict[str, tuple[str, bytes]], title: str) -> dict[str, Any]:
    served: dict[str, Any] = {
        "/start": redirect("{base}/article"),
        "/article": page(article(title)),
        "/fake.webm": lambda base: response("200 OK", FAKE, kind="video/webm"),
    }
    for path, (kind, body) in media.items():
        served[path] = lambda base, kind=kind, body=body: response("200 OK", body, kind=kind)
    return served


@pytest.fixture(scope="module")
def reported(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Reported]:
    """An HTTP capture with a redirect and two videos, time-stamped by a real authority,
    and its report written as HTML and PDF (the authority's root given)."""
    folder = tmp_path_factory.mktemp("report")
    archive = folder / "archives"
    media = real_media(folder)
    pki = make_pki(folder / "pki", "authority")
    with server(routes(media, TITLE)) as (base, _), LocalTSA(pki) as tsa:
        options = CaptureOptions(
            archive_dir=archive, allow_private=True, timeout=5, operator=OPERATOR
        )
        capture = Capturer(options, signer=fixed_signer(), hostname="test-host").capture(
            base + "/start"
        )
        assert capture.status is CaptureStatus.COMPLETE, capture.errors
        assert capture.manifest is not None
        owner = Archive(archive, signer=fixed_signer(), operator="reporter")
        stamper = timestamper([tsa.url], [pki.root_cert])
        assert stamper is not None
        stamps = owner.timestamp(capture.manifest, stamper)
        assert [s.ok for s in stamps] == [True], stamps
        html, pdf = folder / "report.html", folder / "report.pdf"
        done = owner.report(capture.capture_id, [html, pdf], tsa_roots=[pki.root])
        yield Reported(archive, capture, base, media, pki, html, pdf, done)


def facts_in(html: str) -> dict[str, Any]:
    node = HTMLParser(html).css_first("pre#archiver-facts")
    assert node is not None
    facts: dict[str, Any] = json.loads(node.text())
    return facts


def shown(html: str) -> dict[str, str]:
    """The text of each ``data-fact`` outside the videos' tables (first of a name)."""
    out: dict[str, str] = {}
    for node in HTMLParser(html).css("[data-fact]"):
        out.setdefault(node.attributes["data-fact"] or "", node.text(separator=" ").strip())
    return out


def flat(text: str) -> str:
    """Text without white space: a long hash may be wrapped anywhere in a PDF."""
    return re.sub(r"\s+", "", text)


def test_the_report_states_the_facts_of_the_index(reported: Reported) -> None:
    archive = Archive(reported.archive)
    cid = reported.capture.capture_id
    row, _, records = archive.show(cid)
    facts = facts_in(reported.html.read_text("utf-8"))
    assert facts["schema"] == "archiver/report-facts/1"
    assert facts["capture"] == jsonable(row)  # every column, as the index holds it
    assert facts["capture"]["title"] == TITLE and facts["capture"]["operator"] == OPERATOR
    assert facts["capture"]["seed_url"] == reported.base + "/start"
    assert facts["capture"]["final_url"] == reported.base + "/article"
    hops = [r for r in records.rows if r["role"] == "redirect" and r["warc_type"] == "response"]
    assert facts["redirects"] == [
        {"url": r["url"], "http_status": r["http_status"], "record_id": r["record_id"],
         "location": reported.base + "/article"}
        for r in hops
    ]  # fmt: skip
    assert [r["url"] for r in facts["redirects"]] == [reported.base + "/start"]
    # the videos: as the server sent them, as the index holds them, found as the page said
    by_id = {r["record_id"]: r for r in records.rows}
    videos = {v["url"]: v for v in facts["videos"]}
    clip, fake, stream = (reported.base + p for p in ("/clip.mp4", "/fake.webm", "/hls/index.m3u8"))
    assert list(videos) == [clip, fake, stream]  # in the order of the page
    for v in videos.values():
        indexed = by_id[v["record_id"]]
        assert (v["sha256"], v["size"]) == (indexed["payload_sha256"], indexed["payload_length"])
        assert v["found_via"] == "video[src]" and v["found_on"] == reported.base + "/article"
        assert [r["record_id"] for r in v["records"]] == [
            r["record_id"] for r in records.rows if r["url"] == v["url"]
            and r["warc_type"] == "response"
        ]  # fmt: skip
    served = {reported.base + p: body for p, (_, body) in reported.media.items()}
    assert videos[clip]["sha256"] == hashlib.sha256(served[clip]).hexdigest()
    assert videos[clip]["size"] == len(served[clip]) and videos[clip]["kind"] == "file"
    assert videos[clip]["duration_seconds"] == pytest.approx(1.0, abs=0.05)
    assert videos[clip]["picture"].startswith("h264, 64x48")
    assert videos[clip]["duration_source"].startswith("ffmpeg ")
    assert videos[fake]["sha256"] == hashlib.sha256(FAKE).hexdigest()
    assert videos[fake]["duration_seconds"] is None
    assert "cannot read it as a video" in videos[fake]["duration_source"]
    # a stream: its playlist, each segment as served, and what they make joined
    track = videos[stream]["stream"]
    assert videos[stream]["kind"] == "stream" and videos[stream]["sha256"] == hashlib.sha256(
        served[stream]
    ).hexdigest()  # fmt: skip
    segments = [reported.base + f"/hls/seg{n}.ts" for n in (0, 1)]
    assert [s["url"] for s in track["segments"]] == segments
    for segment in track["segments"]:
        assert segment["sha256"] == hashlib.sha256(served[segment["url"]]).hexdigest()
        assert by_id[segment["record_id"]]["payload_sha256"] == segment["sha256"]
    joined = b"".join(served[u] for u in segments)
    assert (track["bytes"], track["sha256"]) == (len(joined), hashlib.sha256(joined).hexdigest())
    assert videos[stream]["duration_seconds"] == pytest.approx(2.0, abs=0.1)
    # who signed, and the manifest signed
    signature = facts["signature"]
    manifest = reported.capture.manifest
    assert manifest is not None
    assert signature["key_fingerprint"] == fixed_signer().fingerprint == row["key_fingerprint"]
    assert signature["manifest_sha256"] == hashlib.sha256(manifest.read_bytes()).hexdigest()
    assert signature["manifest_sha256"] == row["manifest_sha256"]
    assert signature["signature_holds"] is True
    # the trusted time, as verify finds it with the same root
    verified = archive.verify([cid], tsa_roots=[reported.pki.root]).result
    (result,) = verified.captures
    assert [t["time"] for t in facts["timestamps"]] == [
        t.to_json()["time"] for t in result.timestamps
    ]
    assert facts["timestamps"][0]["ok"] and facts["timestamps"][0]["root_given"]
    assert result.trusted_time is not None
    assert facts["trusted_time"] == isoformat(result.trusted_time)
    # the custody history: the capture and its time-stamp, each signed
    _, events = archive.custody(cid)  # and after them, the report's own event
    stated = facts["custody"]["events"]
    assert [e["seq"] for e in stated] == [e.seq for e in events][: len(stated)]
    assert [e["sha256"] for e in stated] == [custody.entry_hash(
        custody.Entry(0, e.line())) for e in events][: len(stated)]  # fmt: skip
    assert [e["action"] for e in stated] == ["capture", "timestamp"]
    assert events[len(stated)].action == "report" and all(e["signed"] for e in stated)
    # the verification made for the report
    assert facts["verification"]["ok"] is True and facts["verification"]["problems"] == []
    assert reported.done.result.verified and reported.done.result.facts == facts


def test_the_html_shows_what_its_facts_say(reported: Reported) -> None:
    html = reported.html.read_text("utf-8")
    facts, cells = facts_in(html), shown(html)
    capture = facts["capture"]
    for name in ("capture_id", "seed_url", "final_url", "started_at", "finished_at", "hostname"):
        assert cells[name] == capture[name], name
    assert cells["operator"] == OPERATOR
    assert cells["key_fingerprint"] == fixed_signer().fingerprint
    assert cells["manifest_sha256"] == facts["signature"]["manifest_sha256"]
    assert cells["trusted_time"] == facts["trusted_time"]
    tree = HTMLParser(html)
    verdict = tree.css_first('[data-fact="verification.ok"]')
    assert verdict is not None and verdict.attributes["data-value"] == "true"
    assert verdict.text().startswith("Verified")
    for number, video in enumerate(facts["videos"], 1):
        table = tree.css_first(f'table[data-video="{number}"]')
        assert table is not None
        said = {n.attributes["data-fact"]: n.text().strip() for n in table.css("[data-fact]")}
        assert said["url"] == video["url"] and said["sha256"] == video["sha256"]
        assert said["size"].startswith(f"{video['size']:,} bytes")
    clip = tree.css('table[data-video] [data-fact="duration_seconds"]')[0].text()
    assert clip.startswith("1.000 s")


def test_a_title_full_of_markup_is_shown_as_text_and_nothing_can_run(reported: Reported) -> None:
    html = reported.html.read_text("utf-8")
    tree = HTMLParser(html)
    assert tree.css("script") == [] and "<script" not in html.lower()
    assert "\u202e" not in html  # the override is shown escaped, never acted on
    assert shown(html)["title"] == TITLE.replace("\u202e", "\\u202e")
    assert facts_in(html)["capture"]["title"] == TITLE  # the JSON keeps the exact value
    # nothing is fetched, nothing is a link: no URL in an attribute anywhere
    assert not re.search(r"\b(src|href|action|srcset|poster|data)\s*=", html.split("<body", 1)[1])
    policy = tree.css_first('meta[http-equiv="Content-Security-Policy"]')
    assert policy is not None and "default-src 'none'" in (policy.attributes["content"] or "")
    assert tree.css("link") == [] and tree.css("iframe") == [] and tree.css("a") == []


def test_the_pdf_states_the_same_facts(reported: Reported) -> None:
    facts = facts_in(reported.html.read_text("utf-8"))
    reader = PdfReader(reported.pdf)
    assert reported.pdf.read_bytes().startswith(b"%PDF-") and len(reader.pages) > 1
    pages = [p.extract_text() for p in reader.pages]
    text = flat("\n".join(pages))
    cid = facts["capture"]["capture_id"]
    assert all(f"capturereport{cid}" in flat(p) for p in pages)  # every page names it
    assert "Verified:thecaptureisasitwassigned" in text
    expected = [
        cid,
        facts["capture"]["seed_url"],
        facts["capture"]["final_url"],
        facts["capture"]["started_at"],
        facts["capture"]["finished_at"],
        facts["signature"]["key_fingerprint"],
        facts["signature"]["manifest_sha256"],
        facts["trusted_time"],
        *[v["sha256"] for v in facts["videos"]],
        *[v["url"] for v in facts["videos"]],
        *[e["sha256"] for e in facts["custody"]["events"]],
    ]
    for value in expected:
        assert flat(value) in text, value
    assert "Évidence" in text and "<script>alert" in "".join(pages)  # as text, drawn


def run_step(archive: Path, setup: str, step: recipes.Step, tsa_root: Path) -> str:
    script = "\n".join([setup, step.commands]).replace("cd /path/to/archive", f"cd {archive}")
    script = script.replace("/path/to/authority-root.pem", str(tsa_root))
    done = subprocess.run(
        ["bash", "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    return done.stdout + done.stderr


def test_the_commands_the_report_gives_check_the_capture(reported: Reported) -> None:
    """Each block of commands, run as the report prints it, prints what it says."""
    for tool in ("openssl", "sha256sum", "dd", "gunzip", "sed", "bash"):
        assert shutil.which(tool), tool
    facts = facts_in(reported.html.read_text("utf-8"))
    steps = recipes.steps(facts)
    titles = [s.title for s in steps]
    assert titles[:4] == ["Set the capture", "The signer's key", "The signature", "The WARC files"]
    assert "Video 1: its record" in titles
    assert titles[-1] == f"The trusted time: {facts['timestamps'][0]['authority']}"
    setup = steps[0].commands
    html = reported.html.read_text("utf-8")
    for step in steps:
        assert step.commands.replace("&", "&amp;").split("\n")[0].split(" ")[0] in html
        out = run_step(reported.archive, setup if step is not steps[0] else "", step,
                       reported.pki.root_cert)  # fmt: skip
        lines = out.splitlines()
        for line in step.expect:
            assert line in lines, (step.title, line, out)


def test_a_tampered_capture_gets_a_report_that_says_verification_failed(
    reported: Reported, tmp_path: Path
) -> None:
    copy = tmp_path / "archives"
    shutil.copytree(reported.archive, copy)
    warc = next((copy / "warc").rglob("*.warc.gz"))
    data = bytearray(warc.read_bytes())
    data[len(data) // 2] ^= 0x01
    warc.write_bytes(bytes(data))
    out = tmp_path / "report.html"
    done = Archive(copy, signer=fixed_signer()).report(reported.capture.capture_id, out)
    assert not done.result.verified and done.result.problems > 0
    html = out.read_text("utf-8")
    facts = facts_in(html)
    assert facts["verification"]["ok"] is False and facts["verification"]["problems"]
    verdict = HTMLParser(html).css_first('[data-fact="verification.ok"]')
    assert verdict is not None and verdict.attributes["data-value"] == "false"
    assert verdict.text().startswith("VERIFICATION FAILED")
    assert any("SHA-256 differs" in p for p in facts["verification"]["problems"])
    # the making of the report is logged, with its result and the document's SHA-256
    _, events = Archive(copy).custody(reported.capture.capture_id)
    last = events[-1]
    assert (last.action, last.result) == ("report", "failed")
    assert [f.sha256 for f in last.files] == [hashlib.sha256(out.read_bytes()).hexdigest()]
    assert last.files[0].path == str(out)


def test_an_existing_report_is_never_replaced_unless_asked(
    reported: Reported, tmp_path: Path
) -> None:
    out = tmp_path / "report.html"
    out.write_text("handed to the court on Monday", "utf-8")
    owner = Archive(reported.archive, signer=fixed_signer())
    before = len(owner.custody()[1])
    with pytest.raises(UsageProblem, match="exists; remove it, choose another name or use --force"):
        owner.report(reported.capture.capture_id, [tmp_path / "new.pdf", out])
    assert out.read_text("utf-8") == "handed to the court on Monday"
    assert not (tmp_path / "new.pdf").exists()  # nothing of the two was written
    assert len(owner.custody()[1]) == before  # and nothing was logged
    owner.report(reported.capture.capture_id, out, overwrite=True)
    assert facts_in(out.read_text("utf-8"))["capture"]["capture_id"] == reported.capture.capture_id


@pytest.mark.parametrize(
    ("capture_id", "output", "message"),
    [
        ("20200101000000-0000000000", "r.html", "no capture 20200101000000-0000000000"),
        ("../../etc/passwd", "r.html", "is not a capture id"),
        (None, "r.txt", "a report is written as FILE.html or FILE.pdf"),
        (None, "warc/r.html", "inside the archive (warc/)"),
    ],
)
def test_what_cannot_be_reported_is_said_before_anything_is_done(
    reported: Reported, tmp_path: Path, capture_id: str | None, output: str, message: str
) -> None:
    target = reported.archive / output if output.startswith("warc/") else tmp_path / output
    with pytest.raises(UsageProblem, match=re.escape(message)):
        Archive(reported.archive).report(capture_id or reported.capture.capture_id, target)
    assert not target.exists()


@pytest.fixture(scope="module")
def browsed(
    tmp_path_factory: pytest.TempPathFactory, chromium: str
) -> Iterator[tuple[Path, Capture]]:
    """A browser capture of a small page (a screenshot of its window kept)."""
    folder = tmp_path_factory.mktemp("report-browser")
    archive = folder / "archives"
    with server(routes({}, "A page in the browser")) as (base, _):
        options = CaptureOptions(
            archive_dir=archive,
            allow_private=True,
            browser=True,
            browser_path=chromium,
            timeout=5,
            browser_timeout=20,
            platform_videos=False,
            viewport=(800, 600),
        )
        capture = Capturer(options, signer=fixed_signer(), hostname="test-host").capture(
            base + "/article"
        )
        assert capture.status is CaptureStatus.COMPLETE, (capture.failure, capture.errors)
        yield archive, capture


def test_the_screenshot_of_a_browser_capture_is_in_the_report(
    browsed: tuple[Path, Capture], tmp_path: Path
) -> None:
    archive, capture = browsed
    html_file, pdf_file = tmp_path / "r.html", tmp_path / "r.pdf"
    Archive(archive, signer=fixed_signer()).report(capture.capture_id, [html_file, pdf_file])
    html = html_file.read_text("utf-8")
    facts = facts_in(html)
    _, _, records = Archive(archive).show(capture.capture_id)
    (view,) = [r for r in records.rows if (r["url"] or "").startswith("urn:view:")]
    shot = facts["screenshot"]
    assert shot["record_id"] == view["record_id"] and shot["sha256"] == view["payload_sha256"]
    image = HTMLParser(html).css_first("img#screenshot-image")
    assert image is not None
    source = image.attributes["src"] or ""
    assert source.startswith("data:image/png;base64,")
    png = base64.b64decode(source.split(",", 1)[1])
    assert len(png) == view["payload_length"]
    assert hashlib.sha256(png).hexdigest() == view["payload_sha256"]
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert (shot["width"], shot["height"]) == (800, 600) == (
        int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
    )  # fmt: skip
    assert facts["capture"]["browser"].startswith("Chrome/")
    assert facts["capture"]["viewport"] == "800x600@1"
    # the PDF carries the picture, at its size
    reader = PdfReader(pdf_file)
    sizes = []
    for p in reader.pages:
        resources: Any = p["/Resources"]
        for item in (resources.get("/XObject") or {}).values():
            xobject = item.get_object()
            if xobject.get("/Subtype") == "/Image":
                sizes.append((int(xobject["/Width"]), int(xobject["/Height"])))
    assert (800, 600) in sizes, sizes
    assert flat(view["payload_sha256"]) in flat("".join(p.extract_text() for p in reader.pages))


def test_an_imported_file_is_reported_as_unsigned(tmp_path: Path) -> None:
    from tests.support.paths import ROOT

    archive = Archive(tmp_path / "archives", signer=fixed_signer())
    (imported,) = archive.import_([ROOT / "tests" / "data" / "example.warc.gz"]).result
    assert not isinstance(imported, tuple) and imported.capture_id
    out = tmp_path / "imported.html"
    done = archive.report(imported.capture_id, out)
    html = out.read_text("utf-8")
    facts = facts_in(html)
    assert facts["signature"] is None and facts["capture"]["imported"] is True
    assert (
        facts["verification"]["imported"]["checked"] == "internal consistency only (no signature)"
    )
    assert done.result.verified is facts["verification"]["ok"]
    verdict = HTMLParser(html).css_first('[data-fact="verification.ok"]')
    assert verdict is not None and verdict.text().startswith(
        "Imported file, not signed by archiver"
    )
    assert "archiver neither made nor signed it" in html
    (step,) = recipes.steps(facts)
    done_sum = subprocess.run(
        ["bash", "-c", step.commands.replace("/path/to/archive", str(tmp_path / "archives"))],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert done_sum.stdout.startswith(imported.capture_id.removeprefix("import-"))
    assert custody.history(custody.check(tmp_path / "archives"), imported.capture_id)[
        -1
    ].action == ("report")


def test_a_platform_video_is_reported_with_the_file_ytdlp_made(
    tmp_path: Path, make_capturer: Any
) -> None:
    """A DASH stream (video and audio apart) on a "platform": yt-dlp fetches both and
    merges them; the report gives the merged file, its duration, and yt-dlp's account."""
    import imageio_ffmpeg

    root = tmp_path / "platform"
    root.mkdir()
    subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-loglevel", "error",
         "-f", "lavfi", "-i", "testsrc=size=64x48:rate=10",
         "-f", "lavfi", "-i", "sine=frequency=440", "-t", "2",
         "-map", "0:v", "-map", "1:a", "-c:v", "libx264", "-preset", "ultrafast",
         "-c:a", "aac", "-f", "dash", "-seg_duration", "1", "stream.mpd"],
        cwd=root, check=True, timeout=60,
    )  # fmt: skip
    media = {f"/{p.name}": ("application/octet-stream", p.read_bytes()) for p in root.iterdir()}
    with server(routes(media, "platform")) as (base, _):
        where = base.removeprefix("http://")
        capture = make_capturer(platform_hosts=(where,)).capture(f"{base}/stream.mpd")
    assert not capture.errors, capture.errors
    out = tmp_path / "platform.html"
    Archive(tmp_path / "archives", signer=fixed_signer()).report(capture.capture_id, out)
    facts = facts_in(out.read_text("utf-8"))
    (video,) = [v for v in facts["videos"] if v["kind"] == "platform"]
    (merged,) = [r for r in capture.records if r.warc_type == "conversion"]
    assert video["url"] == f"{base}/stream.mpd" and video["record_id"] == merged.record_id
    assert (video["sha256"], video["size"]) == (merged.payload_sha256, merged.payload_length)
    assert video["duration_seconds"] == pytest.approx(2.0, abs=0.1)
    assert video["picture"].startswith("h264, 64x48")
    assert video["platform"]["extractor"] and video["platform"]["record_id"]
    assert "yt-dlp" in video["found_via"]


def test_a_capture_whose_files_are_gone_is_reported_as_failing(
    reported: Reported, tmp_path: Path
) -> None:
    """The index still lists it; nothing of it is left: the report says so, and that
    nothing can be checked, rather than refusing to be made."""
    copy = tmp_path / "archives"
    shutil.copytree(reported.archive, copy)
    for path in (copy / "warc").rglob("*"):
        if path.is_file() and path.name.startswith(reported.capture.capture_id):
            path.unlink()
    out = tmp_path / "gone.html"
    done = Archive(copy).report(reported.capture.capture_id, out)
    assert not done.result.verified
    html = out.read_text("utf-8")
    facts = facts_in(html)
    (problem,) = facts["verification"]["problems"]
    assert "the archive holds none of its files" in problem
    assert facts["capture"]["capture_id"] == reported.capture.capture_id
    assert "Nothing can be checked: the archive holds no signed manifest" in html
    assert all(v["duration_seconds"] is None for v in facts["videos"])


def test_a_video_captured_before_is_reported_where_its_bytes_are(tmp_path: Path) -> None:
    """Captured again, the video is a revisit: the report gives its size and the record
    (of the first capture) that holds the bytes, and still reads its duration."""
    archive = tmp_path / "archives"
    options = CaptureOptions(archive_dir=archive, allow_private=True, timeout=5)
    media = {"/clip.mp4": real_media(tmp_path)["/clip.mp4"]}
    with server(routes(media, "twice")) as (base, _):
        first, again = (
            Capturer(options, signer=fixed_signer(), hostname="test-host").capture(
                base + "/article"
            )
            for _ in range(2)
        )
    out = tmp_path / "again.html"
    Archive(archive).report(again.capture_id, out)
    (clip,) = [v for v in facts_in(out.read_text("utf-8"))["videos"] if v["url"].endswith(".mp4")]
    (original,) = [r for r in first.records if r.url == clip["url"] and r.warc_type == "response"]
    assert clip["records"][0]["warc_type"] == "revisit"
    assert clip["stored_in"] == {"record_id": original.record_id, "capture_id": first.capture_id}
    assert (clip["size"], clip["sha256"]) == (len(media["/clip.mp4"][1]), original.payload_sha256)
    assert clip["duration_seconds"] == pytest.approx(1.0, abs=0.05)
    assert "Stored once, in" in out.read_text("utf-8")
