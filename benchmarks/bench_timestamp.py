"""Time-stamp tokens: how fast archiver checks them, against `openssl ts -verify`.

Makes a test PKI and a local TSA (``openssl ts -reply`` on loopback, as the tests do),
asks it for N tokens over N random 64-byte "signatures" through archiver's
Timestamper-level calls, then checks every token with ``archiver.trust.rfc3161.check_token``
(in process) and with ``openssl ts -verify`` (one process per token, as a third party
would run it), and prints both rates and their ratio.  A benchmark reports; it does
not gate (exit 0 unless a token fails to verify: exit 1).

    python benchmarks/bench_timestamp.py --tokens 50
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from archiver.trust import rfc3161
from tests.support.tsa import LocalTSA, make_pki


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-tsa-") as tmp:
        work = Path(tmp)
        pki = make_pki(work / "pki", "bench")
        items = []
        with LocalTSA(pki) as tsa:
            started = time.perf_counter()
            for n in range(args.tokens):
                data = os.urandom(64)
                request, nonce = rfc3161.timestamp_request(data)
                http = urllib.request.Request(
                    tsa.url, data=request, headers={"Content-Type": "application/timestamp-query"}
                )
                with urllib.request.urlopen(http, timeout=30) as response:
                    token = response.read()
                rfc3161.check_token(token, data, [pki.root], nonce=nonce)
                (work / f"{n}.sig").write_bytes(data)
                (work / f"{n}.tsr").write_bytes(token)
                items.append((data, token, n))
            asked = time.perf_counter() - started
        started = time.perf_counter()
        for data, token, _ in items:
            rfc3161.check_token(token, data, [pki.root])
        ours = time.perf_counter() - started
        started = time.perf_counter()
        for _, _, n in items:
            done = subprocess.run(
                ["openssl", "ts", "-verify", "-in", str(work / f"{n}.tsr"), "-data",
                 str(work / f"{n}.sig"), "-CAfile", str(pki.root_cert)],
                capture_output=True, timeout=60,
            )  # fmt: skip
            if done.returncode != 0:
                print(f"BENCHMARK INVALID: openssl refused token {n}", file=sys.stderr)
                return 1
        theirs = time.perf_counter() - started
    count = len(items)
    print(f"tokens: {count}")
    print(f"asked and checked on receipt (local TSA, openssl ts -reply per token): "
          f"{count / asked:.1f} tokens/s")  # fmt: skip
    print(f"archiver check_token (offline verify): {count / ours:.0f} tokens/s")
    print(f"openssl ts -verify (a process each):   {count / theirs:.0f} tokens/s")
    print(f"ratio archiver / openssl: {theirs / ours:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
