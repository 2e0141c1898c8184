"""An adversarial review of read-only copies (issue 15 point 5), on real bind mounts.

- A lock file planted as a symbolic link in a copy received from someone else is never
  followed: reading the copy (read-only or not) creates nothing outside it.
- Commands that write (capture, cleanup --apply, index compact/rebuild/import,
  timestamp) refuse a read-only copy before doing anything, with a clear message and
  exit 1, not an errno dump from halfway (nor a capture that fetches pages, makes a key,
  then warns about custody events of a capture that never was).
- The cleanup dry run, which only lists, works on a folder the user may not write.
- `query --format parquet -o` to a place that cannot be written is refused like csv and
  json (exit 2, "cannot write FILE: ..."), not reported as a crash.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.rawserver import raw_server, site
from tests.support.readonly import (
    AS_IS,
    ROUTES,
    copy_of,
    interrupted_compaction,
    ran,
    run,
    snapshot,
)
from tests.support.runner import BIN

REFUSED = "needs a writable copy of the archive; nothing was done"
LOCKS = (".index.lock", ".capture.lock", "custody/.lock")


def plant_links(archive: Path, outside: Path) -> None:
    """Replace each lock file by a symbolic link to a file that does not exist outside."""
    outside.mkdir()
    for lock in LOCKS:
        (archive / lock).unlink()
        (archive / lock).symlink_to(outside / lock.replace("/", "-"))


def test_a_lock_file_planted_as_a_symbolic_link_is_never_followed(
    captured: tuple[Path, str, list[str]], tmp_path: Path, read_only: Callable[[Path], Path]
) -> None:
    source = copy_of(captured[0], tmp_path)
    first = captured[2][0]
    outside = tmp_path / "outside"  # writable: where root's /etc/nologin could be
    plant_links(source, outside)
    before = snapshot(source)
    archive = read_only(source.parent) / "archives"
    where = ("--archive-dir", str(archive))

    assert first in ran("list", *where).stdout
    ran("query", "select count(*) from records", *where)
    ran("show", first, *where)
    ran("extract", first, *where, "-o", str(tmp_path / "page.html"))
    assert "verified: everything holds" in ran("verify", *where).stdout
    assert "nothing to clean up" in ran("cleanup", *where).stdout
    assert sorted(os.listdir(outside)) == []
    assert snapshot(source) == before

    # the writable copy: readers read, and the custody event is refused, not redirected
    assert first in ran("list", "--archive-dir", str(source)).stdout
    done = run("verify", "--archive-dir", str(source))
    assert done.returncode == 0 and "Traceback" not in done.stderr
    assert "symbolic link where a lock file belongs" in done.stderr
    assert sorted(os.listdir(outside)) == []


def test_a_query_result_for_a_read_only_place_is_refused_alike_in_every_format(
    captured: tuple[Path, str, list[str]], tmp_path: Path, read_only: Callable[[Path], Path]
) -> None:
    archive = read_only(copy_of(captured[0], tmp_path).parent) / "archives"
    for output_format in ("csv", "json", "parquet"):
        out = archive / f"result.{output_format}"  # beside the evidence, on the mount
        done = run(
            "query", "select count(*) as n from captures", "--archive-dir", str(archive),
            "--format", output_format, "-o", str(out),
        )  # fmt: skip
        assert done.returncode == 2, (output_format, done.stderr)
        assert f"cannot write {out}: Read-only file system" in done.stderr, output_format
        assert "Errno" not in done.stderr and "Traceback" not in done.stderr


@pytest.fixture
def counted_server() -> Iterator[tuple[str, list[bytes]]]:
    """The fixture site, and the request lines it received."""
    heard: list[bytes] = []
    serve = site(ROUTES)

    def handler(conn: socket.socket, request: bytes) -> None:
        heard.append(request.split(b"\r\n", 1)[0])
        serve(conn, request)

    with raw_server(handler) as base:
        yield base, heard


def test_writing_commands_refuse_a_read_only_copy_before_doing_anything(
    captured: tuple[Path, str, list[str]],
    tmp_path: Path,
    read_only: Callable[[Path], Path],
    counted_server: tuple[str, list[bytes]],
) -> None:
    source = copy_of(captured[0], tmp_path)
    interrupted_compaction(source)  # debris that a cleanup, compact or rebuild would touch
    (source / "warc" / "default" / ".tmp-0123456789ab-x.warc.gz.part").write_bytes(b"x")
    before = snapshot(source)
    archive = read_only(source.parent) / "archives"
    where = ("--archive-dir", str(archive))
    base, heard = counted_server
    keys = tmp_path / "fresh-keys"
    env = {"ARCHIVER_KEY_STORE": str(keys)}  # no key yet: a capture would make one
    warc = next((source / "warc" / "default").glob("*.warc.gz"))

    for args in (
        ("cleanup", "--apply"),
        ("index", "compact"),
        ("index", "rebuild"),
        ("index", "import", str(warc)),
        ("timestamp", "--tsa", base + "/tsa"),
        ("capture", base + "/", "--allow-private"),
        ("capture", base + "/", "--allow-private", "--format", "json"),
    ):
        done = run(*args, *where, env=env)
        assert done.returncode == 1, (args, done.stdout, done.stderr)
        assert "Traceback" not in done.stderr and "Errno" not in done.stderr, args
        assert f"{archive} cannot be written (a read-only file system)" in done.stderr, args
        assert REFUSED in done.stderr, args
        assert "warning" not in done.stderr and "complete" not in done.stdout, args
    assert heard == []  # no page fetched, no authority asked
    assert not keys.exists()
    assert snapshot(source) == before

    listed = ran("cleanup", *where)  # the dry run lists what is there
    assert "2 leftovers, to do" in listed.stdout


def test_cleanup_lists_a_folder_the_user_may_not_write(
    captured: tuple[Path, str, list[str]],
) -> None:
    """Someone else's archive without lock files, as the user ``nobody``."""
    top = Path(os.environ.get("TMPDIR", "/tmp")) / f"review-ro-{os.getpid()}-{os.urandom(4).hex()}"
    top.mkdir(mode=0o755)
    try:
        archive = top / "archives"
        shutil.copytree(captured[0], archive)
        for lock in LOCKS:
            (archive / lock).unlink()
        home = top / "home"
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
            return subprocess.run(
                [*as_nobody, str(BIN / "archiver"), *args, "--archive-dir", str(archive)],
                capture_output=True, text=True, timeout=120, env=env,
            )  # fmt: skip

        dry = nobody("cleanup")
        assert dry.returncode == 0, dry.stderr
        assert "nothing to clean up" in dry.stdout
        for args in (("cleanup", "--apply"), ("capture", "http://127.0.0.1:9/", "--allow-private")):
            done = nobody(*args)
            assert done.returncode == 1, (args, done.stderr)
            assert "no permission to write it" in done.stderr and REFUSED in done.stderr
            assert "Errno" not in done.stderr and "Traceback" not in done.stderr
        assert not (home / "keys").exists()  # refused before a key was made
        assert AS_IS in nobody("list").stderr
        assert snapshot(archive) == before
    finally:
        shutil.rmtree(top, ignore_errors=True)
