"""Review of issue 16 (the CLI over ``Archive``): what the old single-module CLI said and
did, the new one says and does — in the same order, with the same exit codes."""

from __future__ import annotations

from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from archiver.cli.app import ArchiverGroup
from archiver.core.errors import Failure, UsageProblem
from archiver.index.query import QueryFailed
from archiver.index.schema import SchemaError
from tests.support.runner import run
from tests.support.site import FixtureSite


def test_credentials_are_explained_even_when_the_seed_is_then_refused(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text("", "utf-8")  # captures refuse private addresses by default
    got = run(
        "capture",
        "http://user:secret@127.0.0.1:9/",
        "--archive-dir",
        str(tmp_path / "a"),
        env={"ARCHIVER_CONFIG": str(config)},
    )
    assert got.returncode == 2, got.stderr
    note = got.stderr.index("the user name and password given in the URL are not stored")
    assert note < got.stderr.index("private address 127.0.0.1")  # the note, then the refusal
    assert "secret" not in got.stderr


def test_the_urls_are_checked_before_the_options(tmp_path: Path) -> None:
    got = run("capture", "--collection", "../x", "notaurl", "--archive-dir", str(tmp_path))
    assert got.returncode == 2
    assert "not a URL: 'notaurl'" in got.stderr and "collection" not in got.stderr


def test_a_key_created_for_a_capture_says_when_its_event_was_not_logged(
    tmp_path: Path,
) -> None:
    archive = tmp_path / "a"
    archive.mkdir()
    (archive / "custody").write_text("not a folder", "utf-8")  # the log cannot be written
    with FixtureSite() as site:
        got = run("capture", site.url(site.PLAIN), "--archive-dir", str(archive))
    warning = got.stderr.index("warning: the custody log was not written")
    assert warning < got.stderr.index("created signing key")


def test_custody_checks_the_capture_id_before_adopt(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    got = run("custody", "bogus", "--adopt", "--archive-dir", str(tmp_path / "a"))
    assert got.returncode == 2
    assert "'bogus' is not a capture id" in got.stderr


def _group(error: Exception) -> click.Group:
    group = ArchiverGroup()

    @group.command()
    def act() -> None:
        raise error

    return group


@pytest.mark.parametrize(
    ("error", "code", "said"),
    [
        (UsageProblem("wrong line", hint="--input"), 2, "Invalid value for --input: wrong line"),
        (UsageProblem("no such capture"), 2, "Error: no such capture"),
        (QueryFailed("cannot open the index"), 1, "error: cannot open the index"),
        (Failure("a capture is running"), 1, "error: a capture is running"),
    ],
)
def test_errors_become_exit_codes_in_one_place(error: Exception, code: int, said: str) -> None:
    got = CliRunner().invoke(_group(error), ["act"])
    assert got.exit_code == code
    assert said in got.output


def test_an_unexpected_failure_is_left_to_main_for_its_debug_hint_and_traceback() -> None:
    """A damaged schema is no failure a user is meant to meet: main() says it with
    "(run with --debug for details)", and --debug shows its traceback."""
    got = CliRunner().invoke(_group(SchemaError("schema missing")), ["act"])
    assert isinstance(got.exception, SchemaError)
