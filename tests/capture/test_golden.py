"""Golden output: a capture with an injected clock and ids, compared line by line.

Regenerate after an intended format change with ``ARCHIVER_UPDATE_GOLDEN=1 pytest
tests/capture/test_golden.py`` and review the diff like code.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

from archiver.capture.run import Capturer
from tests.support.paths import GOLDEN
from tests.support.site import FixtureSite
from tests.support.warcs import read_all

# values that depend on the machine, the day or the port, not on archiver's behaviour
VOLATILE_HTTP = ("Date", "Server")
VOLATILE_JSON = ("libraries", "platform", "python")
VOLATILE_INFO = ("platform", "libraries")


def render(site: FixtureSite, capture_files: list[Path]) -> str:
    lines: list[str] = []
    for rec in read_all(capture_files):
        lines.append(f"== {rec.version} {rec.type}")
        for name, value in rec.headers:
            if rec.type in ("request", "warcinfo", "metadata") and name == "WARC-Block-Digest":
                value = "<depends on port and machine>"
            if name == "WARC-Block-Digest" and rec.type == "response":
                value = "<depends on the Date header>"
            if name == "Content-Length" and rec.type != "response":
                value = "<varies>"
            lines.append(f"{name}: {value}")
        for name, value in rec.http_headers:
            if name not in VOLATILE_HTTP:
                lines.append(f"  http {name}: {value}")
        if rec.type == "warcinfo":
            for field in (rec.block or b"").decode().splitlines():
                if field.split(":", 1)[0] not in VOLATILE_INFO:
                    lines.append(f"  info {field}")
        elif rec.type == "metadata":
            doc = rec.json()
            for key in VOLATILE_JSON:
                doc.pop(key)
            lines += ["  " + line for line in json.dumps(doc, indent=1).splitlines()]
        else:
            lines.append(f"  payload sha256 {rec.payload_sha256} ({len(rec.payload)} bytes)")
    return "\n".join(lines).replace(site.base.split("//")[1], "127.0.0.1:PORT") + "\n"


def test_plain_capture_matches_golden(
    site: FixtureSite, make_capturer: Callable[..., Capturer]
) -> None:
    capture = make_capturer(user_agent="archiver-golden-test").capture(site.url(site.PLAIN))
    text = render(site, capture.warc_files)
    golden = GOLDEN / "plain-capture.txt"
    if os.environ.get("ARCHIVER_UPDATE_GOLDEN"):
        golden.write_text(text, encoding="utf-8")
    assert text == golden.read_text(encoding="utf-8")
