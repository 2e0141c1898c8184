"""A browser capture exported: its screenshot, PDF, DOM and text records are named in
``pages.jsonl`` and served by the CDXJ index under their ``urn:`` names, and the WACZ
verifies and passes ``wacz validate``."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

from tests.support.runner import run
from tests.support.site import FixtureSite

BIN = Path(sys.executable).parent


def test_a_browser_capture_exported(chromium: str, tmp_path: Path) -> None:
    archive = tmp_path / "archives"
    a = ("--archive-dir", str(archive))
    with FixtureSite(slow_seconds=0.1) as site:
        done = run(
            "capture", site.url(site.PLAIN), *a, "--browser", "--browser-path", chromium,
            "--browser-timeout", "10", "--format", "json",
        )  # fmt: skip
    assert done.returncode == 0, done.stderr
    capture_id = json.loads(done.stdout.splitlines()[-1])["capture_id"]
    out = tmp_path / "browser.wacz"
    exported = run("export", capture_id, "-o", str(out), *a)
    assert exported.returncode == 0, exported.stderr
    with zipfile.ZipFile(out) as zf:
        (page,) = [json.loads(line) for line in zf.read("pages/pages.jsonl").splitlines()][1:]
        index = zf.read("indexes/index.cdxj").decode()
    for field, kind in (
        ("screenshot", "view"),
        ("fullPageScreenshot", "fullPage"),
        ("pdf", "pdf"),
        ("dom", "dom"),
        ("textRecord", "text"),
        ("pageinfo", "pageinfo"),
    ):
        assert page[field] == f"urn:{kind}:{page['url']}", (field, page)
        assert f'"url": "urn:{kind}:{page["url"]}"' in index
    assert '"mime": "image/png"' in index and '"mime": "application/pdf"' in index
    verified = run("verify", str(out))
    assert verified.returncode == 0, verified.stdout + verified.stderr
    validated = subprocess.run(
        [str(BIN / "wacz"), "validate", "-f", str(out)], capture_output=True, text=True, timeout=120
    )
    assert validated.returncode == 0, validated.stdout
