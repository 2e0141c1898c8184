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
from collections.abc import Callable
from pathlib import Path

from archiver.index.store import Index
from tests.support.readonly import (
    AS_IS,
    IMAGE,
    NOT_LOGGED,
    PAGE,
    copy_of,
    interrupted_compaction,
    ran,
    snapshot,
)
from tests.support.runner import BIN


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
