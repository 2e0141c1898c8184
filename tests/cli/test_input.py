"""Odd input (issue 15, points 13 to 18): CSV batches, credentials in URLs, international
host names, references with schemes not fetched, reserved collection names, and
control characters in what `custody` and `show` print."""

from __future__ import annotations

import base64
import gzip
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from archiver.capture.batch import BatchInputError, read_jobs
from archiver.capture.run import Capturer
from archiver.cli.app import cli
from tests.support.routes import header, page, redirect, response, server
from tests.support.runner import run
from tests.support.warcs import read_all

# Fullwidth letters on purpose: a Unicode host name whose IDNA form is plain ASCII.
# ruff: noqa: RUF001, RUF003


# 13. CSV batches --------------------------------------------------------------


def test_a_quoted_note_over_two_lines_is_one_field(tmp_path: Path) -> None:
    listing = tmp_path / "batch.csv"
    listing.write_text(
        "url,note\n"
        'http://example.org/a,"seen on the square\nat 10:00, filmed from the bridge"\n'
        "http://example.org/b,second\n",
        encoding="utf-8",
    )
    jobs = read_jobs(listing)
    assert [(j.url, j.line) for j in jobs] == [
        ("http://example.org/a", 2),
        ("http://example.org/b", 4),  # the line its record starts on
    ]
    assert jobs[0].note == "seen on the square\nat 10:00, filmed from the bridge"


def test_every_wrong_line_of_a_batch_is_reported(tmp_path: Path) -> None:
    listing = tmp_path / "batch.csv"
    listing.write_text(
        "# a batch with mistakes\n"  # 1
        "url,note,collection\n"  # 2
        "http://example.org/ok,fine,\n"  # 3
        "http://example.org/wide,a,b,c\n"  # 4: too many fields
        'http://example.org/multi,"two\nlines",\n'  # 5-6: one record, fine
        "ftp://example.org/file,,\n"  # 7: not http(s)
        "http://example.org/x,,../../etc\n"  # 8: a collection that is no name
        ",a note without its URL,\n"  # 9
        'http://example.org/open,"never closed,\n'  # 10: to the end of the file
        "http://example.org/swallowed,,\n",
        encoding="utf-8",
    )
    with pytest.raises(BatchInputError) as caught:
        read_jobs(listing)
    assert [n for n, _ in caught.value.problems] == [4, 9, 10]
    archive = tmp_path / "archives"
    result = CliRunner().invoke(
        cli, ["capture", "--input", str(listing), "--archive-dir", str(archive)]
    )
    assert result.exit_code == 2, result.output
    for line in (4, 7, 8, 9, 10):
        assert f"line {line}:" in result.output
    for line in (3, 5, 6):
        assert f"line {line}:" not in result.output
    assert "5 lines wrong" in result.output and "Traceback" not in result.output
    assert not archive.exists()  # nothing was captured


# 14. Credentials in URLs -------------------------------------------------------


def test_credentials_are_sent_to_their_origin_only_and_never_stored(tmp_path: Path) -> None:
    home_url: list[str] = []
    back_home = lambda base: redirect(home_url[0] + "/back-home")(base)  # noqa: E731
    with (
        server({"/elsewhere": back_home}) as (other, other_seen),
        server(
            {
                "/": page(
                    f'<img src="/same.png"><img src="{other}/other.png">'
                    '<iframe src="/hop"></iframe>'
                ),
                "/hop": redirect(other + "/elsewhere"),  # which sends the frame back home
            }
        ) as (home, home_seen),
    ):
        home_url.append(home)
        seed = home.replace("http://", "http://archivist:s3cr%3At@") + "/"
        archive = tmp_path / "archives"
        result = run("capture", seed, "--archive-dir", str(archive), "--format", "json")
    assert result.returncode == 0, result.stderr
    expected = "Basic " + base64.b64encode(b"archivist:s3cr:t").decode()
    sent = {path: header(head, "Authorization") for path, head in home_seen}
    assert sent["/"] == expected and sent["/same.png"] == expected and sent["/hop"] == expected
    assert sent["/back-home"] is None, "sent again after a redirect to another origin"
    assert all(header(head, "Authorization") is None for _, head in other_seen)
    assert {path for path, _ in other_seen} == {"/other.png", "/elsewhere"}
    # stored nowhere, shown nowhere; the archivist is told
    secrets = ("s3cr", base64.b64encode(b"archivist:s3cr:t").decode(), "archivist:")
    summary = json.loads(result.stdout.splitlines()[0])
    assert summary["seed_url"] == home + "/"
    assert "not stored or shown" in result.stderr and "HTTP Basic" in result.stderr
    shown = result.stdout + run("list", "--archive-dir", str(archive), "--format", "csv").stdout
    shown += run(
        "show", summary["capture_id"], "--archive-dir", str(archive), "--format", "json"
    ).stdout
    for path in archive.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            shown += (gzip.decompress(data) if path.name.endswith(".gz") else data).decode(
                "utf-8", "replace"
            )
    for secret in secrets:
        assert secret not in shown, secret
    records = read_all(sorted(archive.rglob("*.warc.gz")))
    home_request = next(r for r in records if r.type == "request" and r.url == home + "/")
    assert home_request.http_header("Authorization") == "[redacted by archiver]"
    for record in records:
        assert "@" not in (record.url or "")


# 15. Internationalised host names ---------------------------------------------


def test_a_location_with_a_unicode_host_is_followed_in_idna_form(
    tmp_path: Path, make_capturer: Callable[..., Capturer]
) -> None:
    # ｌｏｃａｌｈｏｓｔ (fullwidth letters) is a Unicode host name whose IDNA form is
    # "localhost", which resolves offline; bücher.localhost does not resolve here
    with server(
        {
            "/": page('<img src="/away.png">'),
            "/away.png": lambda base: redirect(
                base.replace("127.0.0.1", "ｌｏｃａｌｈｏｓｔ") + "/über.png?q=ü"
            )(base),
        }
    ) as (url, seen):
        port = url.rsplit(":", 1)[1]
        capture = make_capturer().capture(url + "/")
    assert capture.status.value == "complete", capture.errors
    landed = f"http://localhost:{port}/%C3%BCber.png?q=%C3%BC"
    request = next(head for path, head in seen if path.startswith("/%C3%BCber.png"))
    assert header(request, "Host") == f"localhost:{port}"
    uris = [r.url for r in read_all(capture.warc_files) if r.url]
    assert landed in uris and all(u.isascii() for u in uris)


def test_a_unicode_seed_is_stored_in_ascii_with_its_unicode_form_in_the_metadata(
    tmp_path: Path, make_capturer: Callable[..., Capturer]
) -> None:
    with server({"/страница": page("<p>ok</p>")}) as (url, _):
        port = url.rsplit(":", 1)[1]
        given = f"http://ｌｏｃａｌｈｏｓｔ:{port}/страница"
        capture = make_capturer().capture(given)
    ascii_form = f"http://localhost:{port}/%D1%81%D1%82%D1%80%D0%B0%D0%BD%D0%B8%D1%86%D0%B0"
    assert capture.seed_url == ascii_form and capture.status.value == "complete"
    records = read_all(capture.warc_files)
    assert all((r.url or "").isascii() for r in records)
    meta = next(r for r in records if r.type == "metadata").json()
    assert meta["seed_url"] == ascii_form and meta["seed_url_unicode"] == given
    # a host that does not resolve: its IDNA form is what the capture names
    failed = make_capturer().capture(f"http://bücher.localhost:{port}/")
    assert failed.seed_url == f"http://xn--bcher-kva.localhost:{port}/"
    assert failed.seed_url_unicode == f"http://bücher.localhost:{port}/"


# 16. References with schemes not fetched ---------------------------------------


def test_references_with_other_schemes_are_listed_as_not_followed(
    make_capturer: Callable[..., Capturer],
) -> None:
    big = "data:image/png;base64," + "A" * 6000
    html = (
        '<img src="file:///etc/passwd"><iframe src="javascript:alert(1)"></iframe>'
        '<iframe src="about:blank"></iframe><img src="data:image/gif;base64,R0lGOD">'
        f'<img src="{big}"><a href="mailto:editor@example.org">write</a>'
        '<link rel="stylesheet" href="/style.css">'
    )
    css = b"body { background: url(file:///C:/Users/me/bg.png) }"
    with server(
        {"/": page(html), "/style.css": lambda b: response("200 OK", css, kind="text/css")}
    ) as (url, _):
        capture = make_capturer().capture(url + "/")
    listed = {(n["url"][:30], n["via"]): n["reason"] for n in capture.not_followed}
    assert "file:" in listed[("file:///etc/passwd", "img[src]")]
    assert "javascript:" in listed[("javascript:alert(1)", "iframe[src]")]
    assert "6022 characters" in listed[(big[:30], "img[src]")]
    assert "file:" in listed[("file:///C:/Users/me/bg.png", "css url()")]
    assert len(listed) == 4  # not about:blank, a small data: URL nor a mailto: link
    found_on = {n["url"]: n["found_on"] for n in capture.not_followed}
    assert found_on["file:///etc/passwd"] == url + "/"
    assert found_on["file:///C:/Users/me/bg.png"] == url + "/style.css"
    assert capture.status.value == "complete"


# 17. Collection names the archive uses itself -----------------------------------


def test_a_collection_named_like_an_internal_folder_is_refused(tmp_path: Path) -> None:
    archive = tmp_path / "archives"
    runner = CliRunner()
    for name in ("imported", "Imported"):
        result = runner.invoke(
            cli,
            ["capture", "http://example.org/", "--collection", name, "--archive-dir", str(archive)],
        )
        assert (
            result.exit_code == 2 and f"'{name}'" in result.output and "reserved" in result.output
        )
    listing = tmp_path / "batch.csv"
    listing.write_text("url,collection\nhttp://example.org/,imported\n", encoding="utf-8")
    result = runner.invoke(cli, ["capture", "--input", str(listing), "--archive-dir", str(archive)])
    assert result.exit_code == 2 and "line 2:" in result.output and "'imported'" in result.output
    warc = tmp_path / "x.warc"
    warc.write_bytes(b"")
    result = runner.invoke(
        cli,
        ["index", "import", str(warc), "--collection", "imported", "--archive-dir", str(archive)],
    )
    assert result.exit_code == 2 and "'imported'" in result.output
    assert not (archive / "warc").exists()


# 18. Control characters in what custody and show print -------------------------


def test_custody_and_show_print_control_characters_escaped(tmp_path: Path) -> None:
    operator = "A. Archivist\x1b[2K\r     1  2020-01-01 forged\u202eevil"
    note = "note\nsecond line\x07"
    archive = str(tmp_path / "archives")
    runner = CliRunner()
    with server({"/": page("<p>evidence</p>")}) as (url, _):
        made = runner.invoke(
            cli,
            ["capture", url + "/", "--archive-dir", archive, "--operator", operator,
             "--note", note, "--format", "json"],
        )  # fmt: skip
    assert made.exit_code == 0, made.output
    capture_id = json.loads(made.stdout)["capture_id"]
    custody = runner.invoke(cli, ["custody", "--archive-dir", archive])
    show = runner.invoke(cli, ["show", capture_id, "--archive-dir", archive])
    for out in (custody, show):
        assert out.exit_code == 0, out.output
        for raw in ("\x1b", "\r", "\u202e", "\x07"):
            assert raw not in out.stdout
        assert "A. Archivist\\x1b[2K\\r     1  2020-01-01 forged\\u202eevil" in out.stdout
    assert "note\\nsecond line\\x07" in show.stdout
    # the stored values are unchanged
    as_json = ["--archive-dir", archive, "--format", "json"]
    stored = json.loads(runner.invoke(cli, ["custody", *as_json]).stdout)
    assert [e["operator"] for e in stored["events"] if e["action"] == "capture"] == [operator]
    shown = json.loads(runner.invoke(cli, ["show", capture_id, *as_json]).stdout)
    assert shown["capture"]["operator"] == operator and shown["capture"]["note"] == note


def test_printable_escapes_what_a_terminal_acts_on() -> None:
    from archiver.core.text import printable

    assert printable("Алесь Навіцкі, O'Brien") == "Алесь Навіцкі, O'Brien"
    assert printable("a\x00b\x9bc\u2066d\u2029e\tf") == "a\\x00b\\x9bc\\u2066d\\u2029e\\tf"
