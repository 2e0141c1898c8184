"""A capture replays in pywb, the reference replay system, as the page it is of.

Replay systems index every WARC record by its ``WARC-Target-URI`` and date.  archiver's
own records (the capture's metadata, yt-dlp's media-info, certificates, conversions)
once carried the page's URL and time: pywb, cdxj-indexer and py-wacz then gave the
page's key to the metadata record too, and ``application/json`` sorting before
``text/html``, pywb replayed our JSON in place of the page (issue 14).  They are now
named ``urn:archiver-<kind>:<url>``.

pywb runs for real here: ``wb-manager`` builds a collection from the capture's WARC
files and ``wayback`` serves it on loopback, as a subprocess stopped at the end.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from archiver.capture.run import Capturer
from archiver.core.model import Capture
from tests.support.site import FixtureSite

BIN = Path(sys.executable).parent
COLLECTION = "evidence"
TIMESTAMP = "20200812100000"  # the test clock's (tests/conftest.py FixedClock)
STARTUP_SECONDS = 60  # pywb imports gevent and its templates: a few seconds on CI
REQUEST_SECONDS = 30


@pytest.fixture
def captured(site: FixtureSite, make_capturer: Callable[..., Capturer]) -> Capture:
    """The article, captured at its own URL: the page answers without a redirect, so
    the page's response and the capture's metadata record share URL and second."""
    capture = make_capturer().capture(site.url(site.ARTICLE))
    assert capture.final_url == site.url(site.ARTICLE) and capture.redirects == []
    return capture


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _get(port: int, path: str) -> tuple[int, dict[str, str], bytes]:
    """One GET on loopback, straight to the server (no proxy from the environment)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=REQUEST_SECONDS)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        headers = {k.lower(): v for k, v in response.getheaders()}
        return response.status, headers, response.read()
    finally:
        conn.close()


@contextlib.contextmanager
def wayback(root: Path) -> Iterator[int]:
    """pywb's ``wayback`` serving the collections under ``root`` on 127.0.0.1; yields
    its port.  The process is stopped (killed if need be) however the test ends."""
    log_path = root / "wayback.log"
    for _attempt in range(3):  # another process may take the port between probe and bind
        port = _free_port()
        with log_path.open("wb") as log:
            proc = subprocess.Popen(
                [str(BIN / "wayback"), "--bind", "127.0.0.1", "--port", str(port)],
                cwd=root,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        try:
            deadline = time.monotonic() + STARTUP_SECONDS
            while proc.poll() is None:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                except OSError:
                    if time.monotonic() > deadline:
                        pytest.fail(f"wayback did not listen within {STARTUP_SECONDS} s")
                    time.sleep(0.1)
                    continue
                yield port
                return
            if b"in use" not in log_path.read_bytes():
                pytest.fail(f"wayback exited {proc.returncode}:\n{log_path.read_text('utf-8')}")
        finally:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=10)
    pytest.fail("wayback found no free port in 3 attempts")


def _collection(root: Path, capture: Capture) -> None:
    """A pywb collection holding the capture's WARC files, indexed by pywb itself."""
    for args in (["init", COLLECTION], ["add", COLLECTION, *map(str, capture.warc_files)]):
        done = subprocess.run(
            [str(BIN / "wb-manager"), *args],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stdout + done.stderr


def test_pywb_replays_the_page_not_our_metadata(
    site: FixtureSite, captured: Capture, tmp_path: Path
) -> None:
    root = tmp_path / "pywb"
    root.mkdir()
    _collection(root, captured)
    page = site.url(site.ARTICLE)
    body = site.decoded_body(site.ARTICLE)
    title = "Беларусь: видеообращение сотрудника МЧС".encode("cp1251")
    with wayback(root) as port:
        # id_: the page exactly as served
        status, headers, got = _get(port, f"/{COLLECTION}/{TIMESTAMP}id_/{page}")
        assert status == 200
        assert headers["content-type"].startswith("text/html"), headers
        assert got == body

        # mp_: the page rewritten for replay, still the page
        status, headers, got = _get(port, f"/{COLLECTION}/{TIMESTAMP}mp_/{page}")
        assert status == 200
        assert headers["content-type"].startswith("text/html"), headers
        assert title in got and b"<video src=" in got
        assert b"archiver/capture-metadata" not in got

        # an image and videos, byte for byte as served
        for path, media_type in (
            ("/img/lead.jpg", "image/jpeg"),
            ("/media/direct.mp4", "video/mp4"),
            ("/media/large.mp4", "video/mp4"),  # 3 MiB, streamed when captured
        ):
            url = site.url(path)
            status, headers, got = _get(port, f"/{COLLECTION}/{TIMESTAMP}id_/{url}")
            assert status == 200, path
            assert headers["content-type"] == media_type, (path, headers)
            assert hashlib.sha256(got).hexdigest() == site.served[url], path

        # pywb's own index holds the page's URL for the page's response alone
        status, _, listing = _get(port, f"/{COLLECTION}/cdx?url={page}&output=json")
        assert status == 200
        entries = [json.loads(line) for line in listing.splitlines() if line.strip()]
        assert [(e["mime"], e.get("status")) for e in entries] == [("text/html", "200")], entries

        # our metadata record is still there, under its own name
        ours = f"urn:archiver-metadata:{page}"
        status, headers, got = _get(port, f"/{COLLECTION}/{TIMESTAMP}id_/{ours}")
        assert status == 200
        assert headers["content-type"] == "application/json"
        doc = json.loads(got)
        assert doc["schema"] == "archiver/capture-metadata/2"
        assert doc["seed_url"] == doc["final_url"] == page


def test_cdxj_indexer_gives_the_page_key_to_the_page_alone(
    site: FixtureSite, captured: Capture
) -> None:
    done = subprocess.run(
        [str(BIN / "cdxj-indexer"), *map(str, captured.warc_files)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    lines = [line.split(" ", 2) for line in done.stdout.splitlines()]
    entries = [(key, json.loads(rest)) for key, _, rest in lines]
    page = site.url(site.ARTICLE)
    page_keys = {key for key, e in entries if e["url"] == page}
    assert len(page_keys) == 1
    under_page_key = [e for key, e in entries if key in page_keys]
    assert [(e["url"], e["mime"], e.get("status")) for e in under_page_key] == [
        (page, "text/html", "200")
    ]
    # every record of ours (JSON here) is under a urn:archiver-… key, none under a URL's
    ours = [(key, e) for key, e in entries if e["mime"] == "application/json"]
    assert [e["url"] for _, e in ours] == [f"urn:archiver-metadata:{page}"]
    assert all(key.startswith("urn:archiver-metadata:") for key, _ in ours)
