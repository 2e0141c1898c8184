"""Review of the library object (issue 16): what a program author met when trying to
break ``Archive``: signals, bad arguments, a key that cannot be loaded, plans and paths
from elsewhere. Each was a traceback, a silent drop or a false result."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from archiver import Archive, UsageProblem
from archiver.capture.batch import Job
from archiver.core.model import CaptureOptions
from archiver.trust import custody, keys
from tests.support.deterministic import fixed_signer
from tests.support.paths import DATA, ROOT
from tests.support.site import FixtureSite

OPTIONS = CaptureOptions(allow_private=True, timeout=30)
WITHOUT_DAC = ["setpriv", "--bounding-set=-dac_override,-dac_read_search,-fowner"]
"""Root without the capabilities that let it write (and read) anywhere."""


@pytest.fixture
def archive(tmp_path: Path) -> tuple[Archive, str]:
    archive = Archive(tmp_path / "archives", signer=fixed_signer())
    with FixtureSite() as site:
        plan = archive.plan([site.url(site.PLAIN)], OPTIONS)  # a URL as a plain string
        [(_, capture)] = list(archive.capture(plan, signer=fixed_signer()))
    return archive, capture.capture_id


def program(tmp_path: Path, body: str) -> subprocess.CompletedProcess[str]:
    """Run a small program that uses the library, in a process of its own."""
    script = tmp_path / "program.py"
    script.write_text(textwrap.dedent(body), "utf-8")
    return subprocess.run(
        [sys.executable, str(script), str(tmp_path / "archives")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


PRELUDE = """
    import os, signal, sys, threading
    sys.path.insert(0, os.getcwd())
    from archiver import Archive
    from archiver.core.model import CaptureOptions
    from tests.support.deterministic import fixed_signer
    from tests.support.site import FixtureSite
    archive = Archive(sys.argv[1], signer=fixed_signer())
"""


@pytest.mark.parametrize("workers", [1, 2])
def test_ctrl_c_reaches_the_program_whatever_the_workers(tmp_path: Path, workers: int) -> None:
    """It was swallowed with one worker (the loop just ended) and raised with two."""
    got = program(
        tmp_path,
        PRELUDE
        + f"""
    with FixtureSite() as site:  # the article waits on a script that never answers
        urls = [site.url(site.ARTICLE), site.url(site.PLAIN), site.url(site.PLAIN)]
        plan = archive.plan(urls, CaptureOptions(allow_private=True, timeout=60))
        threading.Timer(1.5, lambda: os.kill(os.getpid(), signal.SIGINT)).start()
        seen = []
        try:
            for job, capture in archive.capture(plan, signer=fixed_signer(), workers={workers}):
                seen.append(capture.interrupted)
        except KeyboardInterrupt:
            print("interrupted after", seen)
            sys.exit(0)
    print("no KeyboardInterrupt", seen)
    sys.exit(1)
    """,
    )
    assert got.returncode == 0, got.stdout + got.stderr
    assert "True" in got.stdout  # the interrupted capture was yielded first


def test_sigterm_held_while_a_capture_is_signed_is_delivered_after(tmp_path: Path) -> None:
    """A program keeping SIGTERM's default: the signal held while the capture is
    published, signed and logged was dropped (the process went on, exit 0)."""
    got = program(
        tmp_path,
        PRELUDE
        + """
    from archiver.trust import custody
    logged = custody.log_capture
    def log_capture(*args, **kwargs):  # SIGTERM arrives while the signals are held
        os.kill(os.getpid(), signal.SIGTERM)
        return logged(*args, **kwargs)
    custody.log_capture = log_capture
    import archiver.capture.run as run
    run.custody.log_capture = log_capture
    with FixtureSite() as site:
        plan = archive.plan([site.url(site.PLAIN)], CaptureOptions(allow_private=True))
        for job, capture in archive.capture(plan, signer=fixed_signer()):
            print("still running", capture.status)
    """,
    )
    assert got.returncode == -signal.SIGTERM, got.stdout + got.stderr
    assert "still running" not in got.stdout
    events = custody.check(tmp_path / "archives").events
    assert [e.action for e in events] == ["capture"]  # the capture stands, logged


def test_a_signer_that_cannot_be_loaded_is_a_warning_not_the_actions_failure(
    archive: tuple[Archive, str], tmp_path: Path
) -> None:
    done, capture_id = archive

    def missing() -> keys.Signer:
        return keys.Signer.load(tmp_path / "no-such-key.pem", None)

    lazy = Archive(done.path, signer=missing)
    extracted = lazy.extract(capture_id, str(tmp_path / "page.html"))  # a str path too
    assert (tmp_path / "page.html").is_file()
    assert not extracted.logged.written
    assert extracted.logged.warning and "no-such-key.pem" in extracted.logged.warning


def test_bad_arguments_are_usage_problems(archive: tuple[Archive, str], tmp_path: Path) -> None:
    done, _ = archive
    before = len(custody.check(done.path).events)
    with pytest.raises(UsageProblem, match="not the SHA-256 of a custody event"):
        done.verify(custody_heads=["xyz"])  # was logged as a failed verify: "tampering"
    assert len(custody.check(done.path).events) == before
    with pytest.raises(UsageProblem, match="signing key"):
        done.capture(done.plan(["http://127.0.0.1:9/"], OPTIONS), signer=None)
    with pytest.raises(UsageProblem, match="workers"):
        done.capture(done.plan(["http://127.0.0.1:9/"], OPTIONS), signer=fixed_signer(), workers=0)
    with pytest.raises(UsageProblem, match="collection"):
        CaptureOptions(collection="../x")
    other = Archive(tmp_path / "other")
    with pytest.raises(UsageProblem, match="make it with this archive's plan"):
        other.capture(done.plan(["http://127.0.0.1:9/"], OPTIONS), signer=fixed_signer())
    assert not other.path.exists()


def test_paths_given_as_strings(archive: tuple[Archive, str]) -> None:
    done, _ = archive
    assert done.verify(str(done.path / "warc")).result.ok  # one path, not its letters
    imported = done.import_([str(DATA / "example.warc.gz")], "foreign")
    assert imported.logged.written


def test_nothing_is_created_where_there_is_no_archive(tmp_path: Path) -> None:
    nowhere = Archive(tmp_path / "nowhere", signer=fixed_signer())
    for action in (nowhere.compact, nowhere.adopt):
        with pytest.raises(UsageProblem, match="no archive at"):
            action()
    assert not nowhere.path.exists()


def test_a_read_only_copy_is_refused_before_anything_is_fetched(
    archive: tuple[Archive, str], tmp_path: Path
) -> None:
    """The library refuses as the command does (it fetched, then failed each job). Run
    without the capabilities that let root write anywhere."""
    done, _ = archive
    done.path.chmod(0o555)
    script = tmp_path / "read_only.py"
    script.write_text(
        textwrap.dedent(PRELUDE)
        + textwrap.dedent(
            """
            from archiver import Failure
            with FixtureSite() as site:
                plan = archive.plan([site.url(site.PLAIN)], CaptureOptions(allow_private=True))
                try:
                    archive.capture(plan, signer=fixed_signer())
                except Failure as exc:
                    print("refused:", exc)
            """
        ),
        "utf-8",
    )
    try:
        got = subprocess.run(
            [*WITHOUT_DAC, sys.executable, str(script), str(done.path)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        done.path.chmod(0o755)
    assert got.returncode == 0, got.stderr
    assert "refused:" in got.stdout and "cannot be written" in got.stdout


def test_a_plan_of_duplicate_urls_captures_each(archive: tuple[Archive, str]) -> None:
    done, _ = archive
    with FixtureSite() as site:
        url = site.url(site.PLAIN)
        plan = done.plan([Job(url), url], OPTIONS)
        got = list(done.capture(plan, signer=fixed_signer()))
    assert len(got) == 2 and len({c.capture_id for _, c in got}) == 2
