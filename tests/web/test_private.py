"""Private addresses: a page must not make the capture fetch the archivist's own network.

Everything here is refused by default; the rest of the suite opts in (``allow_private``
in the configuration file the autouse fixture writes, and ``make_capturer``).  These
tests use their own configuration instead, or ``allow_private_endpoints`` to let exactly
one test server through while everything else on loopback stays refused.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable, Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest

from archiver.capture.run import Capturer
from archiver.core.model import CaptureStatus
from archiver.trust import timestamp
from archiver.web.addresses import AddressPolicy, why_private
from archiver.web.http import FetchError, FetchSettings, build_request, open_exchange
from tests.support.private_network import Page, Tripwire, only_seed
from tests.support.runner import run
from tests.support.tsa import LocalTSA, make_pki
from tests.support.warcs import read_all


@pytest.fixture
def tripwire() -> Iterator[Tripwire]:
    wire = Tripwire()
    yield wire
    wire.close()


BLOCKED = (  # requisites on the archivist's network, each spelled another way
    "http://127.0.0.1:{other}/loopback.png",
    "http://localhost:{other}/localhost.png",
    "http://2130706433:{other}/decimal.png",
    "http://0x7f000001:{other}/hex.png",
    "http://127.1:{other}/short.png",
    "http://[::ffff:127.0.0.1]:{other}/mapped.png",
    "http://[::1]:{other}/ipv6.png",
    "http://169.254.169.254/latest/meta-data/",
    "http://10.0.0.1/intranet.png",
    "http://192.168.1.1/router.png",
)


@pytest.fixture
def hostile(tripwire: Tripwire) -> Iterator[str]:
    """A server on 127.0.0.1 whose page points at the tripwire and at private ranges."""

    class Handler(Page):
        body: ClassVar[dict[str, tuple[int, str, bytes]]] = {}

    other = f"http://127.0.0.1:{tripwire.port}"
    imgs = "".join(f'<img src="{u.format(other=tripwire.port)}">' for u in BLOCKED)
    html = f'<html><body>{imgs}<img src="/ok.png"><img src="/away.png"></body></html>'
    Handler.body.update(
        {
            "/": (200, "text/html", html.encode()),
            "/ok.png": (200, "image/png", b"\x89PNG fine"),
            "/away.png": (302, "text/plain", f"{other}/redirected.png".encode()),
            "/seed-away": (302, "text/plain", f"{other}/".encode()),
        }
    )
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


# --- the CLI: a seed on a private address is a usage error --------------------------------


@pytest.mark.parametrize(
    "seed",
    [
        "http://127.0.0.1:{port}/",
        "http://localhost:{port}/article",
        "http://2130706433:{port}/",
        "http://0x7f000001:{port}/",
        "http://127.1:{port}/",
        "http://[::1]:{port}/",
        "http://[::ffff:127.0.0.1]:{port}/",
        "http://169.254.169.254/latest/meta-data/",
        "http://10.1.2.3/",
    ],
)
def test_a_private_seed_is_a_usage_error_naming_the_option(
    tmp_path: Path, tripwire: Tripwire, seed: str
) -> None:
    empty = tmp_path / "config.toml"
    empty.write_text("", "utf-8")
    url = seed.format(port=tripwire.port)
    archive = tmp_path / "archives"
    out = run("capture", url, "--archive-dir", str(archive), env={"ARCHIVER_CONFIG": str(empty)})
    assert out.returncode == 2, out.stderr
    assert url in out.stderr and "--allow-private" in out.stderr and "private address" in out.stderr
    assert "Traceback" not in out.stderr
    assert not archive.exists() and tripwire.connections == 0


def test_a_private_line_of_a_batch_is_named_and_nothing_is_written(
    tmp_path: Path, tripwire: Tripwire
) -> None:
    """The default configuration file (no allow_private) refuses; its line is named."""
    config = Path(os.environ["XDG_CONFIG_HOME"]) / "archiver" / "config.toml"
    config.write_text("[capture]\nallow_private = false\n", "utf-8")
    urls = tmp_path / "urls.txt"
    urls.write_text(f"# a batch\nhttp://localhost:{tripwire.port}/x\n", "utf-8")
    archive = tmp_path / "archives"
    out = run("capture", "--input", str(urls), "--archive-dir", str(archive))
    assert out.returncode == 2 and "--input line 2" in out.stderr, out.stderr
    assert "--allow-private" in out.stderr and not archive.exists()


def test_allow_private_in_the_config_file_must_be_true_or_false(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[capture]\nallow_private = "yes"\n', "utf-8")
    out = run("capture", "http://127.0.0.1:1/", "--archive-dir", str(tmp_path / "a"),
              env={"ARCHIVER_CONFIG": str(config)})  # fmt: skip
    assert out.returncode == 2 and "allow_private must be true or false" in out.stderr


def test_the_flag_permits_a_private_seed_and_is_recorded(tmp_path: Path, hostile: str) -> None:
    empty = tmp_path / "config.toml"
    empty.write_text("", "utf-8")
    archive = tmp_path / "archives"
    out = run("capture", hostile + "/ok.png", "--allow-private", "--archive-dir", str(archive),
              env={"ARCHIVER_CONFIG": str(empty)})  # fmt: skip
    assert out.returncode == 0, out.stderr
    (info,) = [r for r in read_all(sorted(archive.rglob("*.warc.gz"))) if r.type == "warcinfo"]
    assert b'"allow_private": true' in (info.block or b"")


# --- a capture: requisites and redirects on private addresses are refused and listed ------


def test_requisites_and_redirects_to_private_addresses_are_refused_and_listed(
    hostile: str, tripwire: Tripwire, make_capturer: Callable[..., Capturer]
) -> None:
    capture = make_capturer(**only_seed(hostile)).capture(hostile + "/")
    assert capture.status is CaptureStatus.PARTIAL, capture.failure
    assert tripwire.connections == 0  # not one connection reached the archivist's network
    errors = {e.url: e.reason for e in capture.errors}
    other = f"http://127.0.0.1:{tripwire.port}"
    expected = [u.format(other=tripwire.port) for u in BLOCKED] + [f"{other}/redirected.png"]
    assert sorted(errors) == sorted(expected)
    for url, reason in errors.items():
        assert reason.startswith("private address ") and "(use --allow-private)" in reason, url
    assert (
        "127.0.0.1 (loopback) of localhost"
        in errors[f"http://localhost:{tripwire.port}/localhost.png"]
    )
    assert "169.254.169.254 (link-local)" in errors["http://169.254.169.254/latest/meta-data/"]
    assert "10.0.0.1 (private)" in errors["http://10.0.0.1/intranet.png"]
    assert (
        "::ffff:127.0.0.1 (loopback, IPv4-mapped)"
        in errors[f"http://[::ffff:127.0.0.1]:{tripwire.port}/mapped.png"]
    )
    # the page, the allowed requisite and the redirect itself are recorded; nothing else
    fetched = {r.url for r in capture.records if r.warc_type == "response"}
    assert fetched == {hostile + "/", hostile + "/ok.png", hostile + "/away.png"}
    # the options recorded say which server was let through
    assert capture.options.recorded()["allow_private"] == [f"127.0.0.1:{hostile.rsplit(':', 1)[1]}"]


def test_a_seed_redirecting_to_a_private_address_fails_naming_it(
    hostile: str, tripwire: Tripwire, make_capturer: Callable[..., Capturer]
) -> None:
    capture = make_capturer(**only_seed(hostile)).capture(hostile + "/seed-away")
    assert capture.status is CaptureStatus.FAILED and tripwire.connections == 0
    assert capture.failure is not None and "private address 127.0.0.1" in capture.failure


def test_a_private_seed_fails_in_the_library_too(
    tripwire: Tripwire, make_capturer: Callable[..., Capturer]
) -> None:
    capture = make_capturer(allow_private=False).capture(f"http://127.0.0.1:{tripwire.port}/")
    assert capture.status is CaptureStatus.FAILED and tripwire.connections == 0
    assert "(use --allow-private)" in (capture.failure or "")


def test_videos_ytdlp_asks_for_on_private_addresses_are_refused(
    hostile: str, tripwire: Tripwire, make_capturer: Callable[..., Capturer]
) -> None:
    """yt-dlp's requests go through the same connection check (media.py's ArchiverRH)."""
    capture = make_capturer(
        **only_seed(hostile), platform_hosts=(hostile.split("//", 1)[1],)
    ).capture(hostile + "/away.png")
    assert tripwire.connections == 0
    ytdlp = [v for v in capture.videos if v.error and "yt-dlp" in v.error]
    assert ytdlp and all("private address 127.0.0.1" in (v.error or "") for v in ytdlp), [
        v.error for v in capture.videos
    ]


def test_time_stamping_authorities_are_not_subject_to_the_rule(
    hostile: str, tmp_path: Path, make_capturer: Callable[..., Capturer]
) -> None:
    """The TSA is the user's choice, not a page's: a local one is asked although
    everything on loopback but the seed's server is refused."""
    pki = make_pki(tmp_path / "pki", "local-authority")
    with LocalTSA(pki) as tsa:
        capturer = make_capturer(**only_seed(hostile))
        capturer.timestamper = timestamp.Timestamper([timestamp.Authority.of(tsa.url)], [pki.root])
        capture = capturer.capture(hostile + "/ok.png")
    assert capture.status is CaptureStatus.COMPLETE
    assert [s.ok for s in capture.timestamps] == [True] and len(tsa.requests) == 1


# --- the check is made on the resolved address, the one connected to ----------------------


def test_the_check_is_on_the_address_connected_to_not_on_the_name(
    hostile: str, tripwire: Tripwire
) -> None:
    """``localhost`` is refused for the address it resolves to, and an (address, port)
    allowed lets the name through: what counts is where the socket goes."""
    request = build_request(f"http://localhost:{tripwire.port}/", [])
    with pytest.raises(FetchError) as refused:
        open_exchange(request, FetchSettings(timeout=2, addresses=AddressPolicy()))
    assert "private address 127.0.0.1 (loopback) of localhost" in refused.value.reason
    assert tripwire.connections == 0
    port = int(hostile.rsplit(":", 1)[1])
    request = build_request(f"http://localhost:{port}/ok.png", [])
    allowed = AddressPolicy(allowed=frozenset({("127.0.0.1", port)}))
    response = open_exchange(request, FetchSettings(timeout=2, addresses=allowed))
    try:
        assert response.status == 200 and response.ip_address == "127.0.0.1"
    finally:
        response.close()
    other_port = AddressPolicy(allowed=frozenset({("127.0.0.1", tripwire.port)}))
    with pytest.raises(FetchError, match=r"private address 127\.0\.0\.1 \(loopback\)"):
        open_exchange(request, FetchSettings(timeout=2, addresses=other_port))


def test_a_name_rebound_to_loopback_after_the_seed_check_is_still_refused(
    tmp_path: Path, tripwire: Tripwire, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DNS rebinding: the resolver answers a public address to the first lookup (the
    CLI's check of the seed) and 127.0.0.1 afterwards.  The capture's own lookup is the
    one checked and connected to, so it is refused and nothing reaches loopback.  (The
    resolver is a stand-in for a DNS server: there is none to run offline.)"""
    from click.testing import CliRunner

    from archiver.cli.app import cli

    real = socket.getaddrinfo
    answers: list[str] = []

    def rebinding(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host != "rebind.example":
            return real(host, port, *args, **kwargs)
        answers.append("93.184.216.34" if not answers else "127.0.0.1")
        return real(answers[-1], port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    monkeypatch.setenv("ARCHIVER_CONFIG", str(tmp_path / "empty.toml"))
    (tmp_path / "empty.toml").write_text("", "utf-8")
    archive = tmp_path / "archives"
    url = f"http://rebind.example:{tripwire.port}/"
    result = CliRunner().invoke(
        cli, ["capture", url, "--archive-dir", str(archive), "--no-platform-videos"]
    )
    assert answers[0] == "93.184.216.34" and "127.0.0.1" in answers[1:]
    assert result.exit_code == 1, result.output
    assert "private address 127.0.0.1 (loopback) of rebind.example" in result.output
    assert tripwire.connections == 0


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("127.0.0.1", "loopback"),
        ("127.255.0.9", "loopback"),
        ("::1", "loopback"),
        ("::ffff:127.0.0.1", "loopback, IPv4-mapped"),
        ("::ffff:10.0.0.1", "private, IPv4-mapped"),
        ("2002:7f00:1::1", "loopback, embedded in IPv6"),  # 6to4 of 127.0.0.1
        ("10.0.0.1", "private"),
        ("172.16.5.4", "private"),
        ("192.168.1.1", "private"),
        ("fc00::1", "private"),
        ("169.254.169.254", "link-local"),
        ("fe80::1", "link-local"),
        ("224.0.0.1", "multicast"),
        ("ff02::1", "multicast"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("240.0.0.1", "reserved"),
        ("255.255.255.255", "reserved"),
        ("::7f00:1", "reserved"),  # IPv4-compatible, deprecated
        ("100.64.0.1", "not publicly routable"),  # carrier-grade NAT
        ("8.8.8.8", None),
        ("93.184.216.34", None),
        ("2606:4700::1111", None),
        ("::ffff:8.8.8.8", None),
    ],
)
def test_address_kinds(address: str, kind: str | None) -> None:
    assert why_private(address) == kind
