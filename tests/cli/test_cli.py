"""The command line as users meet it: exit codes, messages, no tracebacks."""

from __future__ import annotations

import json
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import click
import pytest
from click.testing import CliRunner

from archiver.cli.app import cli
from tests.support.rawserver import closed_port
from tests.support.runner import command as archiver_command
from tests.support.runner import run
from tests.support.site import FixtureSite
from tests.support.tls import self_signed
from tests.support.warcs import read_all, responses_by_url


def warcs(archive: Path) -> list[Path]:
    return sorted(archive.rglob("*.warc.gz"))


def test_every_command_has_help_with_an_example() -> None:
    runner = CliRunner()
    group = cli
    assert isinstance(group, click.Group)
    result = runner.invoke(group, ["--help"])
    assert result.exit_code == 0 and "Example" in result.output
    for name, command in group.commands.items():
        paths = [[name]]
        if isinstance(command, click.Group):
            paths += [[name, sub] for sub in command.commands]
        for path in paths:
            result = runner.invoke(group, [*path, "--help"])
            assert result.exit_code == 0, path
            assert "Example" in result.output, f"{' '.join(path)} --help has no example"


def test_version_and_module_entry_point() -> None:
    result = run("--version")
    assert result.returncode == 0
    assert "archiver" in result.stdout


@pytest.mark.parametrize(
    "bad",
    [
        "not a url",
        "example.org/page",
        "file:///etc/passwd",
        "data:text/html,<h1>hi</h1>",
        "javascript:alert(1)",
        "ftp://ftp.example.org/file",
        "http://",
        "http://host:99999/",
    ],
)
def test_bad_urls_exit_2_and_write_nothing(tmp_path: Path, bad: str) -> None:
    archive = tmp_path / "archives"
    result = run("capture", bad, "--archive-dir", str(archive))
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert bad[:20] in result.stderr
    assert not archive.exists()


def test_one_bad_url_among_good_ones_stops_before_anything_is_written(
    tmp_path: Path, site: FixtureSite
) -> None:
    archive = tmp_path / "archives"
    result = run(
        "capture", site.url(site.PLAIN), "file:///etc/passwd", "--archive-dir", str(archive)
    )
    assert result.returncode == 2
    assert not archive.exists()


def test_invalid_collection_is_a_usage_error(tmp_path: Path, site: FixtureSite) -> None:
    archive = tmp_path / "archives"
    result = run(
        "capture", site.url(site.PLAIN), "--collection", "../../etc", "--archive-dir", str(archive)
    )
    assert result.returncode == 2
    assert "collection" in result.stderr
    assert not archive.exists()


def test_user_agent_cannot_inject_headers(tmp_path: Path, site: FixtureSite) -> None:
    archive = tmp_path / "archives"
    result = run(
        "capture",
        site.url(site.PLAIN),
        "--user-agent",
        "ua\r\nX-Injected: 1",
        "--archive-dir",
        str(archive),
    )
    assert result.returncode == 2
    assert "user agent" in result.stderr
    assert not archive.exists()


def test_unreachable_url_exits_1_naming_it_and_leaves_no_warc(tmp_path: Path) -> None:
    archive = tmp_path / "archives"
    url = f"http://127.0.0.1:{closed_port()}/article"
    result = run("capture", url, "--archive-dir", str(archive))
    assert result.returncode == 1
    assert url in result.stderr
    assert "cannot connect" in result.stderr
    assert "Traceback" not in result.stderr
    assert warcs(archive) == []
    assert not list(archive.rglob("*.open"))


def test_dns_failure_is_reported(tmp_path: Path) -> None:
    archive = tmp_path / "archives"
    result = run("capture", "http://no-such-host.invalid/", "--archive-dir", str(archive))
    assert result.returncode == 1
    assert "no-such-host.invalid" in result.stderr
    assert "DNS" in result.stderr
    assert warcs(archive) == []


def test_timeout_of_the_main_url(tmp_path: Path, site: FixtureSite) -> None:
    archive = tmp_path / "archives"
    url = site.url(site.HANGING[0])
    start = time.monotonic()
    result = run("capture", url, "--timeout", "1", "--archive-dir", str(archive))
    assert time.monotonic() - start < 30
    assert result.returncode == 1
    assert url in result.stderr and "timed out" in result.stderr
    assert warcs(archive) == []


def test_several_urls_one_failing(tmp_path: Path, site: FixtureSite) -> None:
    archive = tmp_path / "archives"
    bad = f"http://127.0.0.1:{closed_port()}/gone"
    result = run(
        "capture", bad, site.url(site.PLAIN), "--archive-dir", str(archive), "--format", "json"
    )
    assert result.returncode == 1
    *lines, last = [json.loads(line) for line in result.stdout.splitlines()]
    assert [s["status"] for s in lines] == ["failed", "complete"]
    assert lines[0]["seed_url"] == bad and "cannot connect" in lines[0]["failure"]
    assert lines[1]["warc_files"] and Path(lines[1]["warc_files"][0]).exists()
    assert len(warcs(archive)) == 1
    # a batch ends with its summary, with the reasons
    assert last["batch"]["counts"] == {"complete": 1, "partial": 0, "failed": 1, "skipped": 0}
    assert "cannot connect" in last["batch"]["urls"][0]["reason"]


def test_a_batch_run_again_resumes(tmp_path: Path, site: FixtureSite) -> None:
    """A CSV batch: per-row columns apply; run again, complete URLs are skipped and the
    failed one is tried again."""
    archive = tmp_path / "archives"
    bad = f"http://127.0.0.1:{closed_port()}/gone"
    listing = tmp_path / "batch.csv"
    listing.write_text(
        f"url,note,collection\n{site.url(site.PLAIN)},first row,belarus-2020\n{bad},,\n",
        encoding="utf-8",
    )
    args = ("capture", "--input", str(listing), "--archive-dir", str(archive), "--format", "json")
    first = run(*args)
    assert first.returncode == 1
    *captures, summary = [json.loads(line) for line in first.stdout.splitlines()]
    assert captures[0]["collection"] == "belarus-2020" and captures[0]["status"] == "complete"
    again = run(*args)
    *captures, summary = [json.loads(line) for line in again.stdout.splitlines()]
    outcomes = {u["url"]: u["outcome"] for u in summary["batch"]["urls"]}
    assert outcomes == {site.url(site.PLAIN): "skipped", bad: "failed"}
    assert [c["seed_url"] for c in captures] == [bad]  # only the failed one was tried again
    forced = run(*args, "--recapture")
    assert len(forced.stdout.splitlines()) == 3
    bad_row = tmp_path / "bad.csv"
    bad_row.write_text(f"url,collection\n{site.url(site.PLAIN)},../../etc\n", encoding="utf-8")
    refused = run("capture", "--input", str(bad_row), "--archive-dir", str(archive))
    assert refused.returncode == 2 and "line 2" in refused.stderr


def test_http_error_page_is_kept_but_the_capture_fails(tmp_path: Path, site: FixtureSite) -> None:
    archive = tmp_path / "archives"
    result = run("capture", site.url("/img/missing.png"), "--archive-dir", str(archive))
    assert result.returncode == 1
    assert "HTTP 404" in result.stderr
    records = read_all(warcs(archive))
    assert responses_by_url(records)[site.url("/img/missing.png")].http_status == 404
    meta = next(r for r in records if r.type == "metadata").json()
    assert meta["status"] == "failed"


def test_input_file_json_output_and_env_archive_dir(tmp_path: Path, site: FixtureSite) -> None:
    archive = tmp_path / "from-env"
    listing = tmp_path / "urls.txt"
    listing.write_text(
        f"# seeds for the test\n\n{site.url(site.PLAIN)}\n   \n# done\n", encoding="utf-8"
    )
    assert run("keys", "generate").returncode == 0  # else the first capture says it made one
    result = run(
        "capture",
        "--input",
        str(listing),
        "--format",
        "json",
        "--operator",
        "Test Operator",
        "--note",
        "line one\nline two",
        "--collection",
        "belarus-2020",
        env={"ARCHIVER_ARCHIVE_DIR": str(archive)},
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""  # quiet when not on a terminal
    (summary,) = [json.loads(line) for line in result.stdout.splitlines()]
    assert summary["status"] == "complete"
    assert summary["operator"] == "Test Operator"
    files = warcs(archive)
    assert [str(p) for p in files] == summary["warc_files"]
    assert files[0].parent == archive / "warc" / "belarus-2020"
    records = read_all(files)
    info = records[0].block or b""
    assert b"operator: Test Operator" in info
    # the newline in the note cannot break the warcinfo fields
    assert b"description: line one line two" in info
    meta = next(r for r in records if r.type == "metadata").json()
    assert meta["note"] == "line one\nline two"


def test_missing_input_file_is_a_usage_error(tmp_path: Path) -> None:
    result = run("capture", "--input", str(tmp_path / "nope.txt"))
    assert result.returncode == 2
    assert "nope.txt" in result.stderr


def test_no_urls_is_a_usage_error() -> None:
    result = run("capture")
    assert result.returncode == 2
    assert "no URL" in result.stderr


def test_text_output_names_files_and_problems(tmp_path: Path, site: FixtureSite) -> None:
    archive = tmp_path / "archives"
    result = run("capture", site.url(site.ENTRY), "--timeout", "1", "--archive-dir", str(archive))
    assert result.returncode == 0, result.stderr  # partial is not a failure
    assert result.stdout.startswith("partial ")
    assert site.url(site.HANGING[0]) in result.stderr
    assert str(warcs(archive)[0]) in result.stdout


# --- TLS ---------------------------------------------------------------------


class _Hello(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        body = b'<html><title>tls</title><img src="/a.png"><img src="/b.png"></html>'
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[str]:
    cert, key = self_signed(tmp_path)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hello)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def test_untrusted_certificate_is_refused_then_captured_with_insecure_and_recorded(
    tmp_path: Path, tls_server: str
) -> None:
    archive = tmp_path / "archives"
    refused = run("capture", tls_server, "--archive-dir", str(archive))
    assert refused.returncode == 1
    assert tls_server in refused.stderr and "certificate" in refused.stderr
    assert warcs(archive) == []
    accepted = run("capture", tls_server, "--insecure", "--archive-dir", str(archive))
    assert accepted.returncode == 0, accepted.stderr
    response = responses_by_url(read_all(warcs(archive)))[tls_server]
    assert response.all("WARC-Protocol")[0] == "http/1.1"
    assert response.all("WARC-Protocol")[1].startswith("tls/1.")
    suite = response.get("WARC-Cipher-Suite")
    assert suite is None or suite.startswith("TLS_")
    # what was wrong is said, and kept: one certificate record for the server, with the
    # certificate as served (checked against openssl's fingerprint of the server's file)
    assert "certificate not verified (--insecure)" in accepted.stderr
    assert "self-signed certificate" in accepted.stderr
    records = read_all(warcs(archive))
    metadata = [r for r in records if r.type == "metadata"]
    (cert_record,) = [r for r in metadata if b"tls-certificate" in r.payload]
    held = json.loads(cert_record.payload)
    served = (tmp_path / "cert.pem").read_text()
    assert held["verified"] is False and "self-signed" in held["problem"]
    assert ssl.PEM_cert_to_DER_cert(held["certificate_pem"]) == ssl.PEM_cert_to_DER_cert(served)
    fingerprint = subprocess.run(
        ["openssl", "x509", "-noout", "-fingerprint", "-sha256", "-in", str(tmp_path / "cert.pem")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert fingerprint.split("=")[1].strip().replace(":", "").lower() == held["certificate_sha256"]
    assert cert_record.get("WARC-Refers-To") == response.get("WARC-Record-ID")
    # named as ours: with the page's URL and time, a replay would serve it for the page
    assert cert_record.url == "urn:archiver-certificate:" + tls_server
    assert held["url"] == tls_server
    # in the capture's provenance, and queryable in the index
    (info,) = [r for r in metadata if b"capture-metadata" in r.payload]
    (noted,) = json.loads(info.payload)["tls_unverified"]
    assert noted["record_id"] == cert_record.get("WARC-Record-ID")
    assert noted["host"] == tls_server.split("/")[2] and noted["first_url"] == tls_server
    roles = run(
        "query",
        "select count(*) as n from records where role = 'certificate'",
        "--archive-dir",
        str(archive),
        "--format",
        "csv",
    )
    assert roles.stdout.split() == ["n", "1"]
    assert run("verify", "--archive-dir", str(archive)).returncode == 0
    # rebuilt from the WARCs alone, the index still says so (and still verifies)
    assert run("index", "rebuild", "--archive-dir", str(archive)).returncode == 0
    assert run("verify", "--archive-dir", str(archive)).returncode == 0


def test_ctrl_c_stops_cleanly_with_130_and_leaves_nothing_that_looks_complete(
    tmp_path: Path,
) -> None:
    import signal

    from tests.support.rawserver import raw_server

    page = b'<html><img src="/i.png"><video src="/v.mp4"></video></html>'

    def serve(conn: socket.socket, request: bytes) -> None:
        path = request.split(b" ", 2)[1]
        if path != b"/v.mp4":
            body = page if path == b"/" else b"\x89PNG image"
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
            return
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: video/mp4\r\n")
        conn.sendall(b"Content-Length: 100000000\r\n\r\n")
        for _ in range(400):
            conn.sendall(b"v" * 65536)
            time.sleep(0.02)

    archive = tmp_path / "archives"
    with raw_server(serve) as base:
        proc = subprocess.Popen(
            archiver_command("capture", base + "/", "--archive-dir", str(archive)),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 20
        while not list(archive.rglob("*.open")) and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)  # well inside the body
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=20)
    assert proc.returncode == 130
    assert "interrupted" in stderr and "Traceback" not in stderr
    assert warcs(archive) == []  # nothing has a finished file's name
    # what was captured is kept as .open, and every record left in it is whole
    kept = list(archive.rglob("*.open"))
    assert kept and str(kept[0]) in stderr
    for path in kept:
        check = subprocess.run([Path(sys.executable).parent / "warcio", "check", str(path)])
        assert check.returncode == 0


def test_a_batch_runs_concurrently_one_capture_per_host_at_a_time(
    tmp_path: Path, site: FixtureSite
) -> None:
    other = site.base.replace("127.0.0.1", "localhost")
    urls = [site.url(site.PLAIN), site.url("/embed/player")]
    urls += [other + "/plain", other + "/other-article"]
    listing = tmp_path / "batch.txt"
    listing.write_text("\n".join(urls) + "\n", encoding="utf-8")
    result = run(
        "capture", "--input", str(listing), "--jobs", "3", "--per-host-delay", "0.3",
        "--no-platform-videos", "--archive-dir", str(tmp_path / "a"), "--format", "json",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    *captures, summary = [json.loads(line) for line in result.stdout.splitlines()]
    assert summary["batch"]["counts"]["complete"] == 4
    assert sorted(c["seed_url"] for c in captures) == sorted(urls)
    by_host: dict[str, list[tuple[str, str]]] = {}
    for c in captures:
        host = c["seed_url"].split("/")[2].split(":")[0]
        by_host.setdefault(host, []).append((c["started_at"], c["finished_at"]))
    for spans in by_host.values():
        first, second = sorted(spans)
        assert first[1] <= second[0]  # never two at once on one host
        gap = datetime.fromisoformat(second[0]) - datetime.fromisoformat(first[1])
        assert gap.total_seconds() >= 0.3  # --per-host-delay between them


def test_csv_input_edge_cases(tmp_path: Path, site: FixtureSite) -> None:
    from archiver.capture.batch import BatchInputError, read_jobs

    commented = tmp_path / "a.csv"
    commented.write_text(f"# my batch\nurl,note\n{site.url(site.PLAIN)},x\n", encoding="utf-8")
    (job,) = read_jobs(commented)
    assert job.note == "x" and job.line == 3
    wide = tmp_path / "b.csv"
    wide.write_text("url,note\nhttp://example.org/,a,b\n", encoding="utf-8")
    with pytest.raises(BatchInputError, match="line 2: 3 fields"):
        read_jobs(wide)
    out = run("capture", "--input", str(wide), "--archive-dir", str(tmp_path / "x"))
    assert out.returncode == 2 and "line 2" in out.stderr and "Traceback" not in out.stderr
    text = tmp_path / "c.txt"
    text.write_text("http://example.org/?q=a,url\n", encoding="utf-8")
    assert [j.url for j in read_jobs(text)] == ["http://example.org/?q=a,url"]


def test_library_warnings_never_reach_the_terminal(tmp_path: Path) -> None:
    """cryptography warns (CryptographyDeprecationWarning) when it parses a certificate
    with a negative serial number, as some old roots have; the user sees none of it."""
    root = tmp_path / "negative-serial.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-nodes", "-keyout", str(tmp_path / "k.pem"), "-out", str(root), "-subj", "/CN=old",
         "-days", "1", "-set_serial", "-5"],
        check=True, capture_output=True,
    )  # fmt: skip
    (tmp_path / "archive").mkdir()
    out = run(
        "verify", "--tsa-ca", str(root), "--archive-dir", str(tmp_path / "archive"),
        env={"PYTHONWARNINGS": "default"},
    )  # fmt: skip
    assert "nothing to verify" in out.stderr
    assert "Warning" not in out.stderr and "warn" not in out.stderr.lower()


class _UserAgents(BaseHTTPRequestHandler):
    seen: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        self.seen.append(self.headers.get("User-Agent", ""))
        body = b"<!doctype html><title>t</title><p>hello</p>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_the_default_user_agent_has_no_placeholder_and_the_config_sets_another(
    tmp_path: Path,
) -> None:
    from archiver import __version__

    server = ThreadingHTTPServer(("127.0.0.1", 0), _UserAgents)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/"
    config = tmp_path / "config.toml"
    config.write_text(
        '[capture]\nuser_agent = "Newsroom archive (archive@example.org)"\nallow_private = true\n'
    )
    try:
        assert run("capture", url, "--archive-dir", str(tmp_path / "a")).returncode == 0
        configured = run(
            "capture", url, "--archive-dir", str(tmp_path / "b"),
            env={"ARCHIVER_CONFIG": str(config)},
        )  # fmt: skip
        assert configured.returncode == 0, configured.stderr
    finally:
        server.shutdown()
        server.server_close()
    assert _UserAgents.seen == [
        f"Mozilla/5.0 (compatible; archiver/{__version__})",
        "Newsroom archive (archive@example.org)",
    ]


def test_counts_are_said_in_the_singular_for_one(tmp_path: Path, site: FixtureSite) -> None:
    archive = str(tmp_path / "archive")
    said = ""
    for args in (
        ("capture", site.url(site.PLAIN)),
        ("verify",),
        ("index", "rebuild"),
    ):
        out = run(*args, "--archive-dir", archive)
        assert out.returncode == 0, out.stderr
        said += out.stdout + out.stderr
    assert "1 file," in said and "indexed 1 capture from 1 WARC file" in said
    assert "1 captures row," in said
    for wrong in ("1 files", "1 captures from", "1 WARC files", "1 videos", "1 events", "1 rows"):
        assert wrong not in said, wrong


def test_problems_without_a_capture_do_not_name_capture_none(
    tmp_path: Path, site: FixtureSite
) -> None:
    archive = tmp_path / "archive"
    assert run("capture", site.url(site.PLAIN), "--archive-dir", str(archive)).returncode == 0
    (archive / "index.new").mkdir()  # an interrupted rebuild: a problem of the index
    out = run("verify", "--archive-dir", str(archive))
    assert out.returncode == 1
    assert "interrupted rebuild" in out.stdout
    assert "capture None" not in out.stdout + out.stderr
