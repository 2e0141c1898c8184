"""Adversarial review of how response heads are split (issue 15): hostile raw servers."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support.rawserver import raw_server
from tests.support.runner import run
from tests.support.warcs import read_warc

BIN = Path(sys.executable).parent

FINAL = b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nbody"
INTERIM_HEADS = {
    # a line of white space inside a 103: HTTP clients read on to the empty line (the
    # head is not stored, so warcio's rule does not apply); ending it there made the
    # next header line pass for the final status line and the capture fail
    "103-with-a-space-line": (
        b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n \r\n"
        b"Link: </b.css>; rel=preload\r\n\r\n"
    ),
    # a server that ends every line with CR CR LF ends its interim head so too
    "100-ended-by-cr-cr-lf": b"HTTP/1.1 100 Continue\r\r\n\r\r\n",
}


@pytest.mark.parametrize("kind", sorted(INTERIM_HEADS))
def test_an_odd_interim_head_is_skipped_to_its_end(
    kind: str, tmp_path: Path, make_capturer: Any
) -> None:
    answer = INTERIM_HEADS[kind] + FINAL

    def serve(conn: socket.socket, request: bytes) -> None:
        conn.sendall(answer)

    with raw_server(serve) as base:
        capture = make_capturer().capture(base + "/")
    assert capture.status.value == "complete", capture.failure
    (warc,) = capture.warc_files
    check = subprocess.run([BIN / "warcio", "check", str(warc)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    (page,) = [r for r in read_warc(Path(warc)) if r.type == "response"]
    assert page.payload == b"body" and page.http_header("Content-Length") == "4"


def test_the_capture_summary_counts_the_bytes_that_list_and_show_count(
    tmp_path: Path, make_capturer: Any
) -> None:
    """``capture`` said "4.4 KB" (and --format json total_bytes 4388) for a page whose
    ``list`` and ``show`` said total_bytes 160: the summary added the warcinfo and
    metadata records to the HTTP payloads the index counts."""
    import json

    page = b"<html><title>t</title></html>"
    answer = b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: %d\r\n\r\n" % len(page)
    with raw_server(lambda conn, request: conn.sendall(answer + page)) as base:
        capture = make_capturer().capture(base + "/")
    assert capture.status.value == "complete", capture.failure
    listed = run(
        "list", "--format", "json", "--archive-dir", str(tmp_path / "archives"),
        timeout=None, installed=True,
    )  # fmt: skip
    assert listed.returncode == 0, listed.stderr
    (row,) = json.loads(listed.stdout)
    assert capture.summary()["total_bytes"] == row["total_bytes"] == len(page)


def test_a_batch_for_another_collection_captures_what_the_archive_holds_elsewhere(
    tmp_path: Path,
) -> None:
    """A batch resumes by skipping the URLs already captured completely, but it skipped a
    row whose collection column named another collection than the capture the archive
    held: that collection was left without the page (``list --collection`` showed none)."""
    import json

    page = b"<html><title>t</title></html>"
    answer = b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: %d\r\n\r\n" % len(page)
    archive = tmp_path / "archives"
    rows = tmp_path / "in.csv"
    with raw_server(lambda conn, request: conn.sendall(answer + page)) as base:
        for collection in ("first-case", "second-case", "second-case"):
            rows.write_text(f'url,note,collection\n{base}/,"a note\non two lines",{collection}\n')
            done = run(
                "capture", "--input", str(rows), "--archive-dir", str(archive),
                timeout=None, installed=True,
            )  # fmt: skip
            assert done.returncode == 0, done.stdout + done.stderr
    listed = run(
        "list", "--format", "json", "--archive-dir", str(archive), timeout=None, installed=True
    )
    assert "skipped" in done.stderr  # the same batch again still resumes
    query = run(
        "query", "select collection, note from captures order by collection",
        "--format", "json", "--archive-dir", str(archive), timeout=None, installed=True,
    )  # fmt: skip
    assert len(json.loads(listed.stdout)) == 2
    assert json.loads(query.stdout) == [
        {"collection": c, "note": "a note\non two lines"} for c in ("first-case", "second-case")
    ]
