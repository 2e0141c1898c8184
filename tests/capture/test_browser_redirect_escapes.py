"""A redirect whose Location holds characters a browser escapes and our URL rules do not
(``'`` in a query): the browser asks for ``%27``, and the capture still follows the seed's
chain to the page (it once failed: "the browser did not load the page")."""

from __future__ import annotations

import json
from pathlib import Path

from archiver.index import query
from tests.support.routes import page, redirect, response, server
from tests.support.runner import run


def test_the_page_is_found_through_a_redirect_chromium_spells_otherwise(
    chromium: str, tmp_path: Path
) -> None:
    article = page("<!doctype html><title>At last</title><p>the page</p>")
    hop = "/r2?x=%3Cb%3E%22%27"  # how Chromium asks for /r2?x=<b>"'
    routes = {
        "/": redirect("{base}/r1"),
        "/r1": redirect("{base}/r2?x=<b>\"'"),
        hop: lambda base: response("301 Moved", b"", f"Location: {base}/article"),
        "/r2?x=%3Cb%3E%22'": lambda base: response("301 Moved", b"", f"Location: {base}/article"),
        "/article": article,
    }
    with server(routes) as (base, received):
        done = run(
            "capture", base + "/", "--browser", "--browser-path", chromium,
            "--archive-dir", str(tmp_path / "archives"), "--format", "json",
            "--browser-timeout", "10",
        )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    capture = json.loads(done.stdout.splitlines()[-1])
    assert capture["status"] == "complete" and capture["final_url"] == base + "/article"
    hops = query.run(
        tmp_path / "archives",
        "select url from records where role = 'redirect' and warc_type = 'response'",
    ).rows
    assert len(hops) == 3, hops
    assert any(path == hop for path, _ in received)  # the browser's own spelling
