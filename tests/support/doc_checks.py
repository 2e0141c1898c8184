"""The shell checks of docs/verifying.md, read out of the document to be run as they stand."""

from __future__ import annotations

import re

from tests.support.paths import DOCS

DOC = DOCS / "verifying.md"
CHECK_NAMES = (
    "fingerprint",
    "signature",
    "files",
    "file-count",
    "records",
    "record-count",
    "timestamp",
    "wacz-files",
    "wacz-signature",
    "wacz-binding",
    "wacz-manifest",
)
CHECK = re.compile(r"^<!-- check: ([a-z-]+) [^\n]*-->\n```sh\n(.*?)^```$", re.M | re.S)


def doc_checks() -> dict[str, str]:
    """The shell blocks of docs/verifying.md marked ``<!-- check: NAME ... -->``."""
    found = CHECK.findall(DOC.read_text("utf-8"))
    checks = dict(found)
    assert len(checks) == len(found), "two checks of one name"
    assert sorted(checks) == sorted(CHECK_NAMES)
    return checks
