"""A review of issue 15's input points (13 to 18): what still broke, kept broken no more.

- a password holding ``/``, ``?`` or ``#`` (not percent-encoded) was shown in clear in the
  message refusing the URL;
- international host names were encoded by IDNA 2003 (Python's ``idna`` codec), which
  maps ``faß.de`` to ``fass.de``, another domain than the one browsers (UTS #46,
  nontransitional, as the WHATWG URL standard) reach at ``xn--fa-hia.de``;
- an operator name or note that is not UTF-8 (a Latin-1 terminal) made the capture fail
  with an internal error after it had started, instead of a usage error."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from archiver.capture.run import Capturer
from archiver.cli.app import cli
from archiver.core.urls import InvalidURL, check_url
from tests.support.routes import header, page, redirect, server

# ruff: noqa: RUF001


@pytest.mark.parametrize("password", ["s3cr/et", "s3cr?et", "s3cr#et", "s3cr:et/x"])
def test_a_password_with_a_delimiter_is_never_shown_in_the_refusal(
    tmp_path: Path, password: str
) -> None:
    seed = f"http://archivist:{password}@example.org/page"
    archive = tmp_path / "archives"
    result = CliRunner().invoke(cli, ["capture", seed, "--archive-dir", str(archive)])
    assert result.exit_code == 2, result.output
    assert "s3cr" not in result.output and "archivist" not in result.output
    listing = tmp_path / "batch.txt"
    listing.write_text(f"http://example.org/fine\n{seed}\n", encoding="utf-8")
    result = CliRunner().invoke(
        cli, ["capture", "--input", str(listing), "--archive-dir", str(archive)]
    )
    assert result.exit_code == 2 and "line 2:" in result.output, result.output
    assert "s3cr" not in result.output and "archivist" not in result.output
    assert not archive.exists()


def test_unicode_host_names_are_encoded_as_browsers_do() -> None:
    # UTS #46 nontransitional (browsers, the WHATWG URL standard), not IDNA 2003
    assert check_url("http://faß.example/") == "http://xn--fa-hia.example/"
    assert check_url("https://βόλος.example/") == "https://xn--nxasmm1c.example/"
    assert check_url("http://Bücher.EXAMPLE:8080/a") == "http://xn--bcher-kva.example:8080/a"
    assert check_url("http://ｅｘａｍｐｌｅ。org/") == "http://example.org/"  # full stops too
    assert check_url("http://💩.example/") == "http://xn--ls8h.example/"  # browsers take it
    assert check_url("http://bücher.example./") == "http://xn--bcher-kva.example./"
    assert check_url("http://Example.ORG/") == "http://Example.ORG/"  # ASCII: as it was
    for bad in ("http://" + "ü" * 70 + ".example/", "http://bü..example/"):
        with pytest.raises(InvalidURL, match="invalid host name"):
            check_url(bad)


def test_a_requisite_and_a_redirect_to_a_unicode_host_go_where_a_browser_goes(
    make_capturer: Callable[..., Capturer],
) -> None:
    with server(
        {
            "/": lambda base: page(
                '<meta charset="utf-8"><img src="http://faß.localhost:{port}/img.png">'
                '<img src="/away.png">'.replace("{port}", base.rsplit(":", 1)[1])
            )(base),
            "/away.png": lambda base: redirect(
                "http://straße.localhost:" + base.rsplit(":", 1)[1] + "/moved.png"
            )(base),
        }
    ) as (url, seen):
        capture = make_capturer().capture(url + "/")
    port = url.rsplit(":", 1)[1]
    failed = {e.url for e in capture.errors}
    # neither resolves here: what matters is the host name the capture looked up
    assert f"http://xn--fa-hia.localhost:{port}/img.png" in failed, failed
    assert f"http://xn--strae-oqa.localhost:{port}/moved.png" in failed, failed
    assert not any("fass" in u or "strasse" in u for u in failed)
    assert header(next(h for p, h in seen if p == "/away.png"), "Host") == f"127.0.0.1:{port}"


@pytest.mark.parametrize("option", ["--operator", "--note"])
def test_an_operator_or_note_that_is_not_utf8_is_a_usage_error(tmp_path: Path, option: str) -> None:
    archive = tmp_path / "archives"
    result = subprocess.run(
        [sys.executable, "-m", "archiver", "capture", "http://example.org/",
         "--archive-dir", str(archive), option, os.fsdecode(b"Caf\xe9 Andr\xe9")],
        capture_output=True,
        env=dict(os.environ, LC_ALL="C.UTF-8"),
        timeout=60,
    )  # fmt: skip
    err = result.stderr.decode("utf-8", "replace")
    assert result.returncode == 2, err
    assert "UTF-8" in err and "Caf\\xe9 Andr\\xe9" in err and "Traceback" not in err
    assert not archive.exists()
