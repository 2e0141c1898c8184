#!/usr/bin/env python3
"""Hostile manifests with the default options: the capture ends, in bounded time and memory.

Usage::

    python benchmarks/bench_budget.py [--only dash|hls] [--json]

Serves, on 127.0.0.1, a page whose video is

* ``dash``: an 18 kB DASH manifest naming ten million segments (100 periods of 100,000
  one-second segments each, the per-representation limit of the parser times the periods);
* ``hls``: an HLS media playlist of a million segments (about 20 MB);

and a 200-byte body for every segment URL.  Then runs ``python -m archiver capture`` on
the page with the default options (only ``allow_private`` set, in a configuration file,
for the server is on loopback), and reports the capture's wall time, the peak RSS of
the archiver process, the requests it made and its status.  Issue 15 asks for under five
minutes and under 1 GB.  The default ``--max-requests`` is what ends these captures.

Exit status: 0 when every capture ended (whatever the figures), 1 when one failed.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def hostile_mpd(periods: int = 100, per_period: int = 100_000) -> bytes:
    parts = ['<?xml version="1.0"?>\n<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" type="static">\n']
    for p in range(periods):
        parts.append(
            f'<Period id="p{p}" duration="PT{per_period}S">'
            f'<SegmentTemplate media="p{p}/$Number$.m4s" duration="1"/>'
            f'<AdaptationSet><Representation id="v{p}" bandwidth="9"/></AdaptationSet>'
            "</Period>\n"
        )
    parts.append("</MPD>\n")
    return "".join(parts).encode()


def million_hls(segments: int = 1_000_000) -> bytes:
    head = b"#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:0\n"
    lines = b"".join(b"#EXTINF:2.0,\ns%d.ts\n" % i for i in range(segments))
    return head + lines + b"#EXT-X-ENDLIST\n"


def ok(body: bytes, kind: bytes) -> bytes:
    head = b"HTTP/1.1 200 OK\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n" % (kind, len(body))
    return head + body


class Server:
    """A loopback server: the page, the manifest, a small body for anything else."""

    def __init__(self, name: bytes, manifest: bytes, kind: bytes) -> None:
        self.page = ok(b'<html><video src="/%s"></video></html>' % name, b"text/html")
        self.name = b"/" + name
        self.manifest = ok(manifest, kind)
        self.segment = ok(b"\x00" * 200, b"video/mp4")
        self.requests = 0
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(512)
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}/"
        threading.Thread(target=self.loop, daemon=True).start()

    def loop(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self.serve, args=(conn,), daemon=True).start()

    def serve(self, conn: socket.socket) -> None:
        with conn:
            data = b""
            try:
                while b"\r\n\r\n" not in data:
                    piece = conn.recv(65536)
                    if not piece:
                        return
                    data += piece
                self.requests += 1
                path = data.split(b" ", 2)[1]
                if path == b"/":
                    conn.sendall(self.page)
                elif path == self.name:
                    conn.sendall(self.manifest)
                else:
                    conn.sendall(self.segment)
            except OSError:
                pass


def run(kind: str) -> dict[str, object]:
    if kind == "dash":
        server = Server(b"v.mpd", hostile_mpd(), b"application/dash+xml")
    else:
        server = Server(b"m.m3u8", million_hls(), b"application/vnd.apple.mpegurl")
    with tempfile.TemporaryDirectory(prefix="bench-budget-") as tmp:
        config = Path(tmp) / "config.toml"
        config.write_text("[capture]\nallow_private = true\n", "utf-8")
        env = {
            **os.environ,
            "ARCHIVER_CONFIG": str(config),
            "ARCHIVER_KEY_STORE": str(Path(tmp) / "keys"),
            "PYTHONPATH": str(ROOT),
        }
        command = [sys.executable, "-m", "archiver", "capture", server.url]
        command += ["--archive-dir", str(Path(tmp) / "archive"), "--format", "json"]
        started = time.monotonic()
        proc = subprocess.Popen(
            command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        out, err = proc.communicate()
        seconds = time.monotonic() - started
        rss_kb = _child_peak_rss_kb()
        server.listener.close()
        summary = json.loads(out.splitlines()[0]) if out.strip() else {}
    return {
        "kind": kind,
        "manifest_bytes": len(server.manifest),
        "exit_status": proc.returncode,
        "status": summary.get("status"),
        "seconds": round(seconds, 1),
        "peak_rss_mb": round(rss_kb / 1024, 1),
        "requests_served": server.requests,
        "records": summary.get("record_count"),
        "budget_spent": summary.get("budget_spent"),
        "not_followed": len(summary.get("not_followed") or []),
        "stderr_tail": err.strip().splitlines()[-3:],
    }


def _child_peak_rss_kb() -> int:
    """ru_maxrss of the children is the largest of them all: each run goes in a fresh
    process of this script (see main), so it is that run's."""
    import resource

    return int(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=["dash", "hls"])
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--internal-one", choices=["dash", "hls"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.internal_one:
        print(json.dumps(run(args.internal_one)))
        return 0
    results = []
    for kind in [args.only] if args.only else ["dash", "hls"]:
        # one process per run, so that the peak RSS of its children is that capture's
        proc = subprocess.run(
            [sys.executable, __file__, "--internal-one", kind],
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            print(proc.stderr, file=sys.stderr)
            return 1
        results.append(json.loads(proc.stdout))
    if args.json:
        print(json.dumps(results))
    else:
        for r in results:
            print(
                f"{r['kind']}: {r['manifest_bytes']} bytes of manifest -> {r['status']} in "
                f"{r['seconds']} s, peak RSS {r['peak_rss_mb']} MB, "
                f"{r['requests_served']} requests served, {r['records']} records; "
                f"budget spent: {r['budget_spent']}"
            )
    return 0 if all(r["exit_status"] == 0 for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
