"""Read-only copies of an archive: the pages the readonly tests capture, the installed
command to read them with, and what shows a copy unchanged or as a crash left it."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from functools import partial
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from archiver.index.store import Index, replaces_listing
from tests.support import runner
from tests.support.rawserver import ok

PAGE = b"<html><title>evidence</title><img src='/i.png'></html>"
IMAGE = b"\x89PNG read-only image " + bytes(range(256))
ROUTES = {
    b"/": ok(PAGE),
    b"/other": ok(b"<html><title>other</title></html>"),
    b"/i.png": ok(IMAGE, b"image/png"),
}
NOT_LOGGED = "was not logged to its custody log"
AS_IS = "read as it is (no lock file created, nothing repaired)"


run = partial(runner.run, installed=True)  # the entry point pip installed


def ran(*args: str) -> subprocess.CompletedProcess[str]:
    """Run, and insist on success without a traceback."""
    done = run(*args)
    assert done.returncode == 0, (args, done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    return done


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
