"""Where things are in the source tree, wherever the test module using them sits."""

from __future__ import annotations

from pathlib import Path

TESTS = Path(__file__).resolve().parent.parent  # tests/
ROOT = TESTS.parent  # the repository
DATA = TESTS / "data"  # foreign WARC files and an old capture; see data/README.md
GOLDEN = TESTS / "golden"  # expected output, regenerated with ARCHIVER_UPDATE_GOLDEN=1
SCHEMAS = ROOT / "schemas"
DOCS = ROOT / "docs"
