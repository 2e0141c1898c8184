"""Adversarial review of the private-address rule (issue 15 point 12): a hostile page
tries to make the capture reach the archivist's own network another way."""

from __future__ import annotations

import ipaddress
import threading
from collections.abc import Callable, Iterator
from http.server import ThreadingHTTPServer
from typing import ClassVar

import pytest

from archiver.capture.run import Capturer
from archiver.core.model import CaptureStatus
from archiver.web.addresses import why_private
from tests.support.private_network import Page, Tripwire, only_seed


@pytest.fixture
def tripwire() -> Iterator[Tripwire]:
    wire = Tripwire()
    yield wire
    wire.close()


def serve(pages: dict[str, tuple[int, str, bytes]]) -> tuple[ThreadingHTTPServer, str]:
    class Handler(Page):
        body: ClassVar[dict[str, tuple[int, str, bytes]]] = dict(pages)

        def do_GET(self) -> None:
            status, _kind, body = self.body.get(self.path, (404, "text/plain", b"no"))
            if status not in (301, 302, 303, 307, 308):
                return super().do_GET()
            self.send_response(status)
            self.send_header("Location", body.decode())
            self.send_header("Content-Length", "0")
            self.end_headers()
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


# --- yt-dlp must not hand a stream to ffmpeg, which would connect by itself ---------------


def test_an_hls_stream_ytdlp_would_delegate_to_ffmpeg_does_not_reach_the_network(
    tripwire: Tripwire, make_capturer: Callable[..., Capturer]
) -> None:
    """An HLS playlist with a feature yt-dlp's native downloader lacks (SAMPLE-AES) is
    handed by yt-dlp to ffmpeg, which opens the segment URLs itself: around both the
    address check and the recording.  The tripwire must see no connection."""
    other = f"http://127.0.0.1:{tripwire.port}"
    playlist = (
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:4\n"
        f'#EXT-X-KEY:METHOD=SAMPLE-AES,URI="{other}/key"\n'
        f"#EXTINF:4.0,\n{other}/seg0.ts\n#EXT-X-ENDLIST\n"
    )
    server, base = serve({"/v.m3u8": (200, "application/vnd.apple.mpegurl", playlist.encode())})
    try:
        capture = make_capturer(
            **only_seed(base), platform_hosts=(base.split("//", 1)[1],)
        ).capture(base + "/v.m3u8")
    finally:
        server.shutdown()
        server.server_close()
    assert tripwire.connections == 0, [v.error for v in capture.videos]
    (video,) = [v for v in capture.videos if v.error and "yt-dlp" in v.error]
    assert "hands this stream to ffmpeg" in (video.error or ""), video.error


def test_a_live_stream_ytdlp_would_give_ffmpeg_is_not_downloaded_by_it(
    tripwire: Tripwire, make_capturer: Callable[..., Capturer]
) -> None:
    """A live HLS stream (no #EXT-X-ENDLIST), with --allow-playlists: yt-dlp picks ffmpeg
    as the downloader, which would read the playlist and its segments by itself."""
    other = f"http://127.0.0.1:{tripwire.port}"
    playlist = f"#EXTM3U\n#EXT-X-TARGETDURATION:4\n#EXTINF:4.0,\n{other}/live0.ts\n"
    server, base = serve({"/live.m3u8": (200, "application/vnd.apple.mpegurl", playlist.encode())})
    try:
        capture = make_capturer(
            **only_seed(base), platform_hosts=(base.split("//", 1)[1],), allow_playlists=True
        ).capture(base + "/live.m3u8")
    finally:
        server.shutdown()
        server.server_close()
    assert tripwire.connections == 0, [v.error for v in capture.videos]
    (video,) = [v for v in capture.videos if v.error and "yt-dlp" in v.error]
    assert "hands this stream to ffmpeg, which would fetch it itself" in (video.error or "")
    assert "ffmpeg exited" not in (video.error or "")  # not even started


def test_a_proxy_in_the_environment_does_not_break_or_bypass_ytdlp(
    tripwire: Tripwire, make_capturer: Callable[..., Capturer], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``http_proxy``/``HTTPS_PROXY`` (usual behind a corporate proxy): the capture's own
    client connects directly, as before; yt-dlp's requests failed, every one, with
    "Unsupported proxy type" (its handler takes no proxy).  Now they connect directly
    too, through the address check; the proxy (the tripwire here) is never asked."""
    server, base = serve({"/v.mp4": (200, "video/mp4", b"\0\0\0\x18ftypmp42" + bytes(100))})
    monkeypatch.setenv("http_proxy", f"http://127.0.0.1:{tripwire.port}")
    monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{tripwire.port}")
    try:
        capture = make_capturer(
            **only_seed(base), platform_hosts=(base.split("//", 1)[1],)
        ).capture(base + "/v.mp4")
    finally:
        server.shutdown()
        server.server_close()
    assert tripwire.connections == 0
    assert [v.error for v in capture.videos] == [None], capture.videos
    assert capture.status is CaptureStatus.COMPLETE


# --- why_private against the IANA special-purpose registries (RFC 6890 and later) --------

NOT_GLOBAL = (  # "globally reachable: false" (first and last address of each block)
    "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16",
    "172.16.0.0/12", "192.0.0.0/29", "192.0.0.8/32", "192.0.0.11/32", "192.0.0.12/30",
    "192.0.0.100/30", "192.0.0.170/31", "192.0.0.172/30", "192.0.0.252/30",
    "192.0.2.0/24", "192.168.0.0/16", "198.18.0.0/15", "198.51.100.0/24", "203.0.113.0/24",
    "224.0.0.0/4", "240.0.0.0/4", "255.255.255.255/32",
    "::/128", "::1/128", "64:ff9b:1::/48", "100::/64", "2001::/32", "2001:2::/48",
    "2001:10::/28", "2001:db8::/32", "3fff::/20", "5f00::/16", "fc00::/7", "fe80::/10",
    "fec0::/10", "ff00::/8",
)  # fmt: skip


@pytest.mark.parametrize("block", NOT_GLOBAL)
def test_every_special_purpose_block_is_refused_whatever_the_python(block: str) -> None:
    """Python's own tables changed in 3.11.10/3.12.4: 192.0.0.0/24 beyond /29, the
    3fff::/20 documentation prefix and deprecated site-local fec0::/10 passed as public
    on the Python this project supports (3.11.7 here)."""
    network = ipaddress.ip_network(block)
    for address in (network[0], network[-1]):
        assert why_private(str(address)) is not None, address


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("64:ff9b::7f00:1", "loopback, NAT64"),  # 127.0.0.1 behind the NAT64 gateway
        ("64:ff9b::a9fe:a9fe", "link-local, NAT64"),  # 169.254.169.254
        ("64:ff9b::c0a8:101", "private, NAT64"),  # 192.168.1.1
        ("64:ff9b::5db8:d822", None),  # 93.184.216.34: a public site on a DNS64 network
        ("64:ff9b::808:808", None),
        ("192.0.0.9", None),  # globally reachable exceptions in 192.0.0.0/24
        ("192.0.0.10", None),
    ],
)
def test_nat64_addresses_are_judged_by_the_ipv4_address_they_carry(
    address: str, kind: str | None
) -> None:
    """On an IPv6-only network with DNS64 every IPv4-only site resolves to 64:ff9b::/96;
    refusing the prefix as "reserved" refused the whole IPv4 web there."""
    assert why_private(address) == kind


# --- every kind of reference, in odd spellings: none reaches the tripwire -----------------


def test_no_kind_of_reference_reaches_the_archivists_network(
    tripwire: Tripwire, make_capturer: Callable[..., Capturer]
) -> None:
    """Redirects of every code, relative and protocol-relative, meta refresh, CSS
    @import and url(), srcset, HLS and DASH segments: each pointing at the tripwire,
    spelled in octal, hex, short, IPv6-mapped, trailing-dot and fullwidth forms."""
    p = tripwire.port
    spellings = [
        f"http://0177.0.0.1:{p}", f"http://0x7f.1:{p}", f"http://127.0.0.1.:{p}",
        f"http://[::ffff:7f00:1]:{p}", f"http://[0:0:0:0:0:ffff:127.0.0.1]:{p}",
        f"http://LOCALHOST:{p}", f"http://\\uff11\\uff12\\uff17.\\uff10.\\uff10.\\uff11:{p}",
        f"http://0:{p}", f"http://[::]:{p}", f"http://017700000001:{p}",
    ]  # fmt: skip
    spellings = [s.encode().decode("unicode_escape") for s in spellings]
    html = "".join(f'<img src="{s}/img{i}.png">' for i, s in enumerate(spellings))
    html += (
        f'<meta http-equiv="refresh" content="0; url=http://0x7f000001:{p}/refresh">'
        f'<img srcset="http://127.1:{p}/a.png 1x, //127.0.0.1:{p}/b.png 2x">'
        f"<style>@import url(http://2130706433:{p}/imp.css); "
        f"body {{ background: url(//[::1]:{p}/bg.png) }}</style>"
        f'<link rel="stylesheet" href="/s.css"><video src="/v.m3u8"></video>'
        f'<video src="/v.mpd"></video>'
        + "".join(f'<img src="/r{code}">' for code in (301, 302, 303, 307, 308))
        + '<img src="/rel">'
    )
    pages: dict[str, tuple[int, str, bytes]] = {
        "/": (200, "text/html; charset=utf-8", html.encode()),
        "/s.css": (200, "text/css", f"@import '//localhost:{p}/x.css';".encode()),
        "/v.m3u8": (200, "application/vnd.apple.mpegurl",
                    f"#EXTM3U\n#EXTINF:1,\nhttp://0x7f000001:{p}/s.ts\n#EXT-X-ENDLIST\n".encode()),
        "/v.mpd": (200, "application/dash+xml",
                   f'<MPD xmlns="urn:mpeg:dash:schema:mpd:2011"><BaseURL>http://127.0.0.1:{p}/'
                   '</BaseURL><Period><AdaptationSet><Representation id="1" bandwidth="1">'
                   "<BaseURL>v.mp4</BaseURL></Representation></AdaptationSet></Period></MPD>"
                   .encode()),
        "/rel": (302, "text/plain", f"//127.0.0.1:{p}/protocol-relative".encode()),
    }  # fmt: skip
    for code in (301, 302, 303, 307, 308):
        pages[f"/r{code}"] = (code, "text/plain", f"http://[::ffff:127.0.0.1]:{p}/{code}".encode())
    server, base = serve(pages)
    try:
        capture = make_capturer(**only_seed(base)).capture(base + "/")
    finally:
        server.shutdown()
        server.server_close()
    assert tripwire.connections == 0
    refused = [e for e in capture.errors if "(use --allow-private)" in e.reason]
    assert len(refused) == 23, [(e.url, e.reason) for e in capture.errors]
    others = [e for e in capture.errors if e not in refused]  # 127.0.0.1. is a DNS name
    assert [e.url for e in others] == [f"http://127.0.0.1.:{p}/img2.png"], others
    assert capture.status is CaptureStatus.PARTIAL
