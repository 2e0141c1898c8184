"""The tests run in a fresh clone: no file outside the repository is read.

The foreign WARC files the tests use are in ``tests/data/`` (see its README.md), byte for
byte as their projects publish them.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from tests.support.paths import DATA, ROOT

# a path to the folder "shared" beside the repository: written out with "..", or
# built with pathlib from the root's parent
OUTSIDE = re.compile(r"""\.\.[/\\]shared\b|["']shared["']\s*/|/\s*["']shared["']""")
UP = ".."
SKIP = {".git", ".venv", "venv", "build", "dist", "archives", "node_modules"}


def _sources() -> list[Path]:
    found = [ROOT / ".ci" / "run"] if (ROOT / ".ci" / "run").is_file() else []
    for path in sorted(ROOT.rglob("*.py")):
        parts = path.relative_to(ROOT).parts
        if any(p in SKIP or p.startswith(".") or p.endswith(".egg-info") for p in parts[:-1]):
            continue
        found.append(path)
    return found


def test_no_code_reads_the_shared_folder_outside_the_repository() -> None:
    sources = _sources()
    this = Path(__file__).resolve()  # its examples below match, on purpose
    assert this in sources and len(sources) > 40
    hits = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for path in sources
        if path != this
        for number, line in enumerate(path.read_text("utf-8", "replace").splitlines(), 1)
        if OUTSIDE.search(line)
    ]
    assert hits == []


def test_the_pattern_catches_what_it_is_for() -> None:
    for line in (
        "CORPUS = ROOT.parent / " + '"shared"' + ' / "corpus"',
        "open('" + UP + "/shared/corpus/example.warc')",
        "data = Path('" + UP + "\\shared\\x')",
    ):
        assert OUTSIDE.search(line), line
    assert not OUTSIDE.search('self._variant("shared", variant)')
    assert not OUTSIDE.search("a shared lock")


def test_the_test_data_is_byte_for_byte_what_its_readme_lists() -> None:
    readme = (DATA / "README.md").read_text("utf-8")
    row = re.compile(r"^\| ([\w.-]+\.warc(?:\.gz)?) \|.*`([0-9a-f]{40})` \|$", re.M)
    listed = dict(row.findall(readme))
    present = {p.name for p in DATA.iterdir() if p.name.endswith((".warc", ".warc.gz"))}
    assert len(listed) == 11 and set(listed) == present
    for name, blob in listed.items():
        data = (DATA / name).read_bytes()  # a line-end conversion would change the hash
        assert hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest() == blob, name
    assert (DATA / "LICENSE-Apache-2.0.txt").is_file()
