"""The whole way out and back, as issue 18 asks: a capture exported as a WACZ, accepted
by ``wacz validate``, its signature checked by wabac.js's own code, imported into
another archive (someone else's), and replayed there in headless Chromium: the article's
text shown, its picture decoded, its video playing.  Nothing of the first archive is
used after the export: the WACZ carries everything."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from archiver import Archive
from archiver.web.browser import Browser, LaunchSettings, Page
from tests.support.deterministic import fixed_signer
from tests.support.replay_site import FIRST, HEADLINE, PARAGRAPH, captured_archive, shown
from tests.support.runner import run

BIN = Path(sys.executable).parent


@pytest.fixture
def browser(chromium: str) -> Iterator[Browser]:
    with Browser(LaunchSettings(Path(chromium))) as running:
        yield running


def test_export_validate_check_import_and_replay(
    tmp_path: Path, browser: Browser, isolated_keys: Path
) -> None:
    from tests.support import wabac

    captured = captured_archive(tmp_path / "mine")
    key = isolated_keys / "archivist.key.pem"
    key.write_bytes(
        fixed_signer().key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    out = tmp_path / "given" / "article.wacz"
    done = run(
        "export", FIRST, "-o", str(out), "--archive-dir", str(captured.archive), "--key", str(key)
    )
    assert done.returncode == 0, done.stderr
    shutil.rmtree(captured.archive)  # from here on, only the WACZ
    validated = subprocess.run(
        [str(BIN / "wacz"), "validate", "-f", str(out)], capture_output=True, text=True, timeout=120
    )
    assert validated.returncode == 0, validated.stdout
    with zipfile.ZipFile(out) as zf:
        signed = json.loads(zf.read("datapackage-digest.json"))["signedData"]
    assert wabac.signature_matched(wabac.verify_wacz_signature(signed))
    theirs = tmp_path / "theirs"
    imported = run("import", str(out), "--archive-dir", str(theirs), "--format", "json")
    assert imported.returncode == 0, imported.stderr
    doc = json.loads(imported.stdout)
    assert doc["signature"].startswith("signature valid, by an anonymous P-384 key")
    assert fixed_signer().fingerprint in doc["signature"]
    with Archive(theirs).replay(port=0) as server, Page.open(browser) as page:
        (url,) = [u for u in server.urls if u.endswith("/article")]
        state = shown(page, url)
    assert HEADLINE in str(state["text"]) and PARAGRAPH in str(state["text"])
    assert state["image"] == 64, state
    assert isinstance(state["readyState"], int) and state["readyState"] >= 2, state
    assert state["videoWidth"] == 160 and state["videoError"] is None, state
