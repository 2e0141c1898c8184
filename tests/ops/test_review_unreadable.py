"""Parts of an archive its user may not read: verify and ``index rebuild`` say so.

A folder or file verify or a rebuild must look at and cannot read is a failure naming it:
never a false ``ok``, never a traceback, and a rebuild never replaces the index with one
that lacks the captures it could not read (the index stays as it was).  A folder of the
index that cannot be read is an error, never an empty table.

Real archives: captures of the fixture site by the command line and a WARC file of
another tool imported.  The commands run as root without the capabilities that bypass
file permissions (``setpriv``, as tests/cli/test_readonly.py runs them as ``nobody``), so
the modes set here bite.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import runner
from tests.support.paths import DATA, ROOT
from tests.support.site import FixtureSite

# root keeps its uid (the files are its own) and loses what lets it read anything
DROPPED = "-dac_override,-dac_read_search,-fowner"
UNREAD = "cannot be read (Permission denied)"


def as_user() -> list[str]:
    """How a command is run so that file modes hold for it."""
    if os.geteuid() != 0:
        return []  # an ordinary user: they hold already
    return ["setpriv", f"--bounding-set={DROPPED}"]


class Made:
    """An archive of three signed captures (two in ``default``, one in ``second``) and a
    WARC file of another tool imported into ``foreign``; the environment that made it."""

    def __init__(self, archive: Path, env: dict[str, str], ids: dict[str, list[str]]):
        self.archive = archive
        self.env = env
        self.ids = ids


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> Made:
    home = tmp_path_factory.mktemp("unreadable")
    (home / "xdg" / "archiver").mkdir(parents=True)
    (home / "xdg" / "archiver" / "config.toml").write_text(
        "[capture]\nallow_private = true\n", "utf-8"
    )
    env = {"ARCHIVER_KEY_STORE": str(home / "keys"), "XDG_CONFIG_HOME": str(home / "xdg")}
    archive = home / "archives"
    ids: dict[str, list[str]] = {"default": [], "second": []}
    with FixtureSite() as site:
        for path, collection in (
            (site.PLAIN, "default"),
            (site.PLAIN + "?again", "default"),
            (site.PLAIN + "?second", "second"),
        ):
            done = runner.run(
                "capture", site.url(path), "--collection", collection,
                "--archive-dir", str(archive), "--format", "json", env=env,
            )  # fmt: skip
            assert done.returncode == 0, done.stderr
            ids[collection].append(json.loads(done.stdout.splitlines()[-1])["capture_id"])
    done = runner.run(
        "index", "import", str(DATA / "example.warc.gz"), "--collection", "foreign",
        "--archive-dir", str(archive), env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return Made(archive, env, ids)


@pytest.fixture
def copy(made: Made, tmp_path: Path) -> Iterator[Path]:
    """A copy of the archive of this test's own; every mode is given back afterwards."""
    archive = tmp_path / "archives"
    shutil.copytree(made.archive, archive)
    yield archive
    for path in tmp_path.rglob("*"):  # root here: it reads what the test made unreadable
        path.chmod(0o755 if path.is_dir() else 0o644)


def run(made: Made, *args: str) -> subprocess.CompletedProcess[str]:
    """archiver with ``args``, as a user the file modes hold for; never a traceback."""
    done = subprocess.run(
        [*as_user(), *runner.command(*args)],
        capture_output=True, text=True, timeout=120, env={**os.environ, **made.env},
    )  # fmt: skip
    assert "Traceback" not in done.stderr, done.stderr
    return done


def unreadable(path: Path) -> Path:
    path.chmod(0)
    return path


def the_file(archive: Path, capture_id: str) -> Path:
    """The first WARC file of a capture."""
    return sorted(archive.glob(f"warc/*/{capture_id}-*.warc.gz"))[0]


def index_files(archive: Path) -> dict[str, str]:
    """Every file of the index with its SHA-256."""
    return {
        p.relative_to(archive).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted((archive / "index").rglob("*"))
        if p.is_file()
    }


def test_verify_of_the_warc_folder_fails_naming_a_collection_it_cannot_read(
    made: Made, copy: Path
) -> None:
    unreadable(copy / "warc" / "second")
    done = run(made, "verify", str(copy / "warc"), "--archive-dir", str(copy), "--format", "json")
    assert done.returncode == 1, done.stdout + done.stderr
    doc = json.loads(done.stdout)
    assert doc["ok"] is False
    assert ("warc/second", f"{UNREAD}: what it holds was not verified") in [
        (p["file"], p["message"]) for p in doc["index"]["problems"]
    ]
    assert sorted(c["capture_id"] for c in doc["captures"]) == sorted(made.ids["default"])
    assert all(c["ok"] for c in doc["captures"])  # what could be read holds

    text = run(made, "verify", str(copy / "warc"), "--archive-dir", str(copy))
    assert text.returncode == 1
    assert f"warc/second: {UNREAD}: what it holds was not verified" in text.stdout
    assert "verified: everything holds" not in text.stdout


def test_verify_of_the_whole_archive_fails_naming_a_collection_it_cannot_read(
    made: Made, copy: Path
) -> None:
    unreadable(copy / "warc" / "second")
    done = run(made, "verify", "--archive-dir", str(copy))
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"warc/second: {UNREAD}: what it holds was not verified" in done.stdout
    # the custody log's capture event of the capture in it: its files are not there to check
    (second,) = made.ids["second"]
    assert f"capture of {second}" in done.stdout and "cannot be read, so not checked" in done.stdout


def test_verify_of_a_folder_fails_naming_a_subfolder_it_cannot_read(
    made: Made, copy: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "received"
    (folder / "inner").mkdir(parents=True)
    shutil.copy(DATA / "example.warc.gz", folder / "example.warc.gz")
    shutil.copy(DATA / "example.warc.gz", folder / "inner" / "hidden.warc.gz")
    unreadable(folder / "inner")
    done = run(made, "verify", str(folder), "--archive-dir", str(copy), "--format", "json")
    assert done.returncode == 1, done.stdout + done.stderr
    doc = json.loads(done.stdout)
    assert doc["ok"] is False
    assert [f["path"] for f in doc["unsigned_files"]] == [str(folder / "example.warc.gz")]
    assert [(p["file"], p["message"]) for p in doc["index"]["problems"]] == [
        (str(folder / "inner"), f"{UNREAD}: what it holds was not verified")
    ]


@pytest.mark.parametrize("how", ["named", "its folder", "whole archive"])
def test_verify_fails_naming_a_warc_file_it_cannot_read(made: Made, copy: Path, how: str) -> None:
    (imported,) = (copy / "warc" / "foreign" / "imported").iterdir()
    unreadable(imported)
    paths = {
        "named": [str(imported)],
        "its folder": [str(imported.parent)],
        "whole archive": [],
    }[how]
    done = run(made, "verify", *paths, "--archive-dir", str(copy), "--format", "json")
    assert done.returncode == 1, done.stdout + done.stderr
    doc = json.loads(done.stdout)
    assert doc["ok"] is False
    shown = "warc/foreign/imported/" + imported.name
    assert (shown, f"{UNREAD}: what it holds was not verified") in [
        (p["file"], p["message"]) for p in doc["index"]["problems"]
    ]
    if how == "whole archive":  # the import event's file, not there to check
        assert any(
            "index import" in p and "cannot be read, so not checked" in p
            for p in doc["custody"]["problems"]
        ), doc["custody"]["problems"]


def test_rebuild_refuses_a_collection_it_cannot_read_and_keeps_the_index(
    made: Made, copy: Path
) -> None:
    before = index_files(copy)
    unreadable(copy / "warc" / "second")
    done = run(made, "index", "rebuild", "--archive-dir", str(copy))
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"error: cannot read {copy / 'warc' / 'second'} (Permission denied)" in done.stderr
    assert "the index was not rebuilt (it is as it was)" in done.stderr
    assert index_files(copy) == before
    assert not (copy / "index.new").exists()
    listed = run(made, "list", "--archive-dir", str(copy), "--format", "json")
    assert listed.returncode == 0, listed.stderr
    assert made.ids["second"][0] in {row["capture_id"] for row in json.loads(listed.stdout)}


@pytest.mark.parametrize("which", ["second", "default"])
def test_rebuild_refuses_a_warc_file_it_cannot_read_and_keeps_the_index(
    made: Made, copy: Path, which: str
) -> None:
    before = index_files(copy)
    warc = unreadable(the_file(copy, made.ids[which][0]))
    done = run(made, "index", "rebuild", "--archive-dir", str(copy))
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"error: cannot read {warc} (Permission denied)" in done.stderr
    assert index_files(copy) == before
    assert not (copy / "index.new").exists()


def test_the_library_rebuild_raises_a_failure_naming_the_file(made: Made, copy: Path) -> None:
    """``Archive.rebuild`` raises :class:`archiver.Failure`; even a WARC file that turns
    unreadable once the rebuild is under way leaves the index as it was."""
    warc = the_file(copy, made.ids["default"][1])
    before = index_files(copy)
    script = f"""
from pathlib import Path
from archiver import Archive, Failure
from archiver.ops import ingest

archive = Archive(Path({str(copy)!r}))
for when in ("first", "late"):
    try:
        archive.rebuild()
    except Failure as exc:
        print(when + ":", exc)
    ingest.unopenable = lambda path: None  # as if it could be read when first looked at
"""
    os.chmod(warc, 0)
    done = subprocess.run(
        [*as_user(), sys.executable, "-c", script],
        capture_output=True, text=True, timeout=120, cwd=ROOT, env={**os.environ, **made.env},
    )  # fmt: skip
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    os.chmod(warc, stat.S_IRUSR | stat.S_IWUSR)
    assert f"first: cannot read {warc} (Permission denied)" in done.stdout
    assert f"late: {warc}: {UNREAD}" in done.stdout
    assert index_files(copy) == before
    assert not (copy / "index.new").exists()


@pytest.mark.parametrize("table", ["captures", "records"])
def test_an_index_folder_it_cannot_read_is_an_error_not_an_empty_index(
    made: Made, copy: Path, table: str
) -> None:
    folder = unreadable(copy / "index" / table)
    said = f"error: {folder}: this folder of the index {UNREAD}"
    commands = [("index", "compact"), ("index", "rebuild")]
    if table == "captures":
        commands.append(("list",))
    for args in commands:
        done = run(made, *args, "--archive-dir", str(copy))
        assert done.returncode == 1, (args, done.stdout, done.stderr)
        assert said in done.stderr, (args, done.stderr)
    folder.chmod(0o755)
    assert len(index_files(copy)) == 8  # nothing was changed: 4 captures, 2 files each
