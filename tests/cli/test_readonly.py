"""A read-only copy, for real: the archive is bind-mounted read-only for the test.

Courts and verifiers receive evidence on write-blocked drives. There `list`, `show`,
`query`, `extract` and `verify` work: no lock file is created, nothing is repaired,
nothing is logged to the custody log, a note says so, and not one byte of the copy
changes. An index that needs a repair is read as the repair would leave it. A folder
the user may not write (someone else's archive) is read the same way.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from archiver.index.store import Index, replaces_listing
from tests.rawserver import raw_server
from tests.test_hostile import ok, site

BIN = Path(sys.executable).parent
PAGE = b"<html><title>evidence</title><img src='/i.png'></html>"
IMAGE = b"\x89PNG read-only image " + bytes(range(256))
ROUTES = {
    b"/": ok(PAGE),
    b"/other": ok(b"<html><title>other</title></html>"),
    b"/i.png": ok(IMAGE, b"image/png"),
}
NOT_LOGGED = "was not logged to its custody log"
AS_IS = "read as it is (no lock file created, nothing repaired)"


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "archiver"), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )


def ran(*args: str) -> subprocess.CompletedProcess[str]:
    """Run, and insist on success without a traceback."""
    done = run(*args)
    assert done.returncode == 0, (args, done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    return done


@pytest.fixture(scope="module")
def captured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str, list[str]]]:
    """An archive of two real captures made by the CLI (with their custody events):
    (archive, base URL, capture ids). Tests read copies of it."""
    home = tmp_path_factory.mktemp("readonly-capture")
    config = home / "xdg" / "archiver"
    config.mkdir(parents=True)
    (config / "config.toml").write_text("[capture]\nallow_private = true\n", "utf-8")
    env = {"ARCHIVER_KEY_STORE": str(home / "keys"), "XDG_CONFIG_HOME": str(home / "xdg")}
    archive = home / "archives"
    ids = []
    with raw_server(site(ROUTES)) as base:
        for path in ("/", "/other"):
            done = run(
                "capture", base + path, "--archive-dir", str(archive), "--format", "json", env=env
            )
            assert done.returncode == 0, done.stderr
            ids.append(json.loads(done.stdout.splitlines()[-1])["capture_id"])
        yield archive, base, ids


@pytest.fixture
def read_only(tmp_path: Path) -> Iterator[Callable[[Path], Path]]:
    """Bind-mount a folder read-only (needs root, as CI has); unmounted afterwards."""
    mounted: list[Path] = []

    def mount(source: Path) -> Path:
        point = tmp_path / f"read-only{len(mounted)}"
        point.mkdir()
        done = subprocess.run(
            ["mount", "--bind", "-o", "ro", str(source), str(point)],
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, f"cannot bind-mount read-only for this test: {done.stderr}"
        mounted.append(point)
        assert os.statvfs(point).f_flag & os.ST_RDONLY
        return point

    yield mount
    for point in reversed(mounted):
        subprocess.run(["umount", "-l", str(point)], check=False)


def snapshot(root: Path) -> dict[str, str]:
    """Every file (hidden ones too) with its SHA-256, every folder and link: what changed."""
    found: dict[str, str] = {}
    for path in sorted(root.rglob("*")):
        name = path.relative_to(root).as_posix()
        if path.is_symlink():
            found[name] = "link " + os.readlink(path)
        elif path.is_dir():
            found[name] = "dir"
        else:
            found[name] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def copy_of(archive: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "copy" / "archives"
    shutil.copytree(archive, copy)
    return copy


def test_a_read_only_copy_can_be_listed_shown_queried_extracted_and_verified(
    captured: tuple[Path, str, list[str]], tmp_path: Path, read_only: Callable[[Path], Path]
) -> None:
    source = copy_of(captured[0], tmp_path)
    base, (first, second) = captured[1], captured[2]
    before = snapshot(source)
    archive = read_only(source.parent) / "archives"
    where = ("--archive-dir", str(archive))

    listed = ran("list", *where)
    assert first in listed.stdout and second in listed.stdout
    assert "(2 rows)" in listed.stdout
    assert AS_IS in listed.stderr and "read-only file system" in listed.stderr
    assert NOT_LOGGED not in listed.stderr  # list is never logged, on any copy

    shown = ran("show", first, *where, "--format", "json")
    doc = json.loads(shown.stdout)
    assert doc["capture"]["capture_id"] == first
    assert base + "/i.png" in {r["url"] for r in doc["records"]}
    assert any(AS_IS in note for note in doc["notes"])
    assert AS_IS in shown.stderr

    sql = "select count(*) as n from records where warc_type = 'response'"
    queried = ran("query", sql, *where)
    assert queried.stdout.split()[2] == "3"  # n, a rule, the count
    assert AS_IS in queried.stderr
    by_url = "select capture_id, url from records where warc_type = 'response' order by url"
    answered = ran("query", by_url, *where, "--format", "json")
    assert json.loads(answered.stdout) == [  # stdout stays the rows alone; the note is on stderr
        {"capture_id": first, "url": base + "/"},
        {"capture_id": first, "url": base + "/i.png"},
        {"capture_id": second, "url": base + "/other"},
    ]
    assert AS_IS in answered.stderr

    out = tmp_path / "out"  # a writable place elsewhere
    out.mkdir()
    page = ran("extract", first, *where, "-o", str(out / "page.html"))
    assert (out / "page.html").read_bytes() == PAGE
    assert NOT_LOGGED in page.stderr
    image = ran(
        "extract", first, "--url", base + "/i.png", *where, "-o", str(out / "i.png"),
        "--format", "json",
    )  # fmt: skip
    assert (out / "i.png").read_bytes() == IMAGE
    doc = json.loads(image.stdout)
    assert doc["sha256"] == hashlib.sha256(IMAGE).hexdigest()
    assert doc["custody_logged"] is False
    assert any(NOT_LOGGED in note for note in doc["notes"])

    verified = ran("verify", *where)
    assert "verified: everything holds" in verified.stdout
    assert NOT_LOGGED in verified.stderr
    assert "warning" not in verified.stderr
    doc = json.loads(ran("verify", *where, "--format", "json").stdout)
    assert doc["ok"] is True and doc["custody_logged"] is False
    assert any(NOT_LOGGED in note for note in doc["notes"])

    assert snapshot(source) == before  # not one byte, not one lock file

    # the same commands on the writable original log their events, and say nothing of it
    writable = ran("extract", first, "--archive-dir", str(source), "-o", str(out / "again"))
    assert NOT_LOGGED not in writable.stderr
    events = (source / "custody" / "events.jsonl").read_text("utf-8").splitlines()
    assert json.loads(events[-1])["action"] == "extract"


def interrupted_compaction(archive: Path) -> None:
    """What a compaction leaves when it crashes after writing its merged files and their
    listings, before deleting the files they replace; plus the records file of a capture
    interrupted before its capture row."""
    for table in ("captures", "records"):
        sources = Index(archive).files(table)
        target = archive / "index" / table / "compact-20200101000000-00000000.parquet"
        pq.write_table(pa.concat_tables([pq.read_table(p) for p in sources]), target)
        replaces_listing(target).write_text("\n".join(p.name for p in sources) + "\n", "utf-8")
    records = Index(archive).files("records")
    shutil.copy(records[-1], records[-1].with_name("20991231235959-0000000000.parquet"))


def test_a_read_only_copy_that_needs_a_repair_is_read_as_the_repair_would_leave_it(
    captured: tuple[Path, str, list[str]], tmp_path: Path, read_only: Callable[[Path], Path]
) -> None:
    source = copy_of(captured[0], tmp_path)
    ids = captured[2]
    interrupted_compaction(source)
    for lock in (".index.lock", ".capture.lock", "custody/.lock"):
        (source / lock).unlink()  # a copy made without them: none is created either
    before = snapshot(source)
    archive = read_only(source.parent) / "archives"
    where = ("--archive-dir", str(archive))
    sql = "select capture_id, count(*) as n from records group by capture_id order by capture_id"

    listed = ran("list", *where, "--format", "json")
    assert sorted(r["capture_id"] for r in json.loads(listed.stdout)) == sorted(ids)  # once each
    assert "needs a repair" in listed.stderr and "not done" in listed.stderr
    assert AS_IS in listed.stderr
    counts = json.loads(ran("query", sql, *where, "--format", "json").stdout)
    doc = json.loads(ran("show", ids[0], *where, "--format", "json").stdout)
    assert any("needs a repair" in note for note in doc["notes"])
    out = tmp_path / "page.html"
    ran("extract", ids[0], *where, "-o", str(out))
    assert out.read_bytes() == PAGE
    assert snapshot(source) == before

    # a rebuild that crashed between its two renames: the new index is whole, but not
    # yet in its place
    (source / "index").rename(source / "index.new")
    (source / "index.new" / ".complete").touch()
    assert json.loads(ran("query", sql, *where, "--format", "json").stdout) == counts
    (source / "index.new" / ".complete").unlink()
    (source / "index.new").rename(source / "index")

    # the repair on the writable original leaves exactly what the read-only copy showed
    assert (
        json.loads(ran("query", sql, "--archive-dir", str(source), "--format", "json").stdout)
        == counts
    )
    assert not Index(source).needs_repair()
    assert {r["n"] for r in counts} and len(counts) == 2


def test_an_archive_the_user_may_not_write_is_read_without_writing(
    captured: tuple[Path, str, list[str]],
) -> None:
    """Someone else's archive, readable but not writable: run as the user ``nobody``."""
    top = Path(os.environ.get("TMPDIR", "/tmp")) / f"readonly-{os.getpid()}-{os.urandom(4).hex()}"
    top.mkdir(mode=0o755)
    try:
        archive = top / "archives"
        shutil.copytree(captured[0], archive)
        home = top / "home"  # the user's own: config, keys, the extracted file
        (home / "xdg" / "archiver").mkdir(parents=True)
        (home / "xdg" / "archiver" / "config.toml").write_text("", "utf-8")
        os.chown(home, 65534, 65534)
        before = snapshot(archive)
        env = {
            **os.environ,
            "HOME": str(home),
            "XDG_CONFIG_HOME": str(home / "xdg"),
            "ARCHIVER_KEY_STORE": str(home / "keys"),
        }
        as_nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]

        def nobody(*args: str) -> subprocess.CompletedProcess[str]:
            done = subprocess.run(
                [*as_nobody, str(BIN / "archiver"), *args, "--archive-dir", str(archive)],
                capture_output=True, text=True, timeout=120, env=env,
            )  # fmt: skip
            assert done.returncode == 0, (args, done.stdout, done.stderr)
            assert "Traceback" not in done.stderr
            assert "no permission to write it" in done.stderr and AS_IS in done.stderr
            return done

        first = captured[2][0]
        assert first in nobody("list").stdout
        assert json.loads(
            nobody("query", "select count(*) as n from captures", "--format", "json").stdout
        ) == [{"n": 2}]
        nobody("extract", first, "-o", str(home / "page.html"))
        assert (home / "page.html").read_bytes() == PAGE
        assert "verified: everything holds" in nobody("verify").stdout
        assert snapshot(archive) == before
    finally:
        shutil.rmtree(top, ignore_errors=True)
