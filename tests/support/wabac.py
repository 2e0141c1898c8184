"""wabac.js, ReplayWeb.page's engine, run under Node: its own code judges our output.

The npm package ``@webrecorder/wabac`` (``tests/js``, installed by
``npm ci --prefix tests/js``) ships its TypeScript sources.  Each helper here bundles
the module it needs with the esbuild of ``tests/js`` (``--bundle --platform=node
--format=esm``; once per test process, into a temporary directory removed at exit)
and runs a few lines of Node around it:

- :func:`verify_wacz_signature`: ``verifyWACZSignature`` (``src/wacz/certutils.ts``)
  on a ``signedData`` object: its list of results, as ReplayWeb.page shows them;
- :func:`load_digest_data`: ``WACZImporter.loadDigestData`` (``src/wacz/waczimporter.ts``)
  on the bytes of a ``datapackage-digest.json``: the gate before that check (``path``,
  ``hash`` equal to ``signedData.hash``) and what it records, through a small recording
  store standing in for its database;
- :func:`rewrite_hls`: ``rewriteHLS`` (``src/rewrite/rewriteVideo.ts``): the HLS master
  playlist as replay serves it, with the one variant wabac picks.

Without ``tests/js/node_modules`` (or Node) the tests using these are skipped with the
command to run, except on CI (``CI`` set), where they fail, as the ``chromium`` fixture does.

Below them, what the signature tests feed both checks: a small ``datapackage.json``
and ``signedData`` as other signers write it (a domain certificate from a CA made
here, signed raw as WebCrypto does or DER as authsign does).
"""

from __future__ import annotations

import atexit
import base64
import datetime
import functools
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

from tests.support.paths import TESTS

JS = TESTS / "js"
WABAC = JS / "node_modules" / "@webrecorder" / "wabac"
ESBUILD = JS / "node_modules" / ".bin" / "esbuild"
_TIMEOUT = 60

_ENTRIES = {
    "verify": """
import { readFileSync } from "node:fs";
import { verifyWACZSignature } from "@SRC@/wacz/certutils.ts";
const input = JSON.parse(readFileSync(process.argv[2], "utf8"));
process.stdout.write(JSON.stringify(await verifyWACZSignature(input)));
""",
    "digest": """
import { readFileSync } from "node:fs";
import { WACZImporter } from "@SRC@/wacz/waczimporter.ts";
const bytes = new Uint8Array(readFileSync(process.argv[2]));
const recorded = [];
const warnings = [];
console.warn = (...args) => warnings.push(args.map(String).join(" "));
// what loadDigestData asks of its store and file, recording what it is told
const store = {
  loadFileFromWACZ: async () => ({ reader: { readFully: async () => bytes }, hasher: null }),
  addVerifyData: async (prefix, id, expected, matched = null) => {
    recorded.push({ prefix, id, expected, matched });
  },
  addVerifyDataList: async (prefix, list) => {
    for (const item of list) recorded.push({ prefix, ...item });
  },
};
const file = { waczname: "archive.wacz", containsFile: () => true };
const importer = new WACZImporter(store, file, true);
const hash = await importer.loadDigestData("datapackage-digest.json");
process.stdout.write(JSON.stringify({ hash: hash ?? null, verify: recorded, warnings }));
""",
    "hls": """
import { readFileSync } from "node:fs";
import { rewriteHLS } from "@SRC@/rewrite/rewriteVideo.ts";
const { text, extraOpts, live } = JSON.parse(readFileSync(process.argv[2], "utf8"));
const opts = { response: { extraOpts: extraOpts ?? null, isLive: live } };
process.stdout.write(JSON.stringify(rewriteHLS(text, opts)));
""",
}


class WabacThrew(RuntimeError):
    """wabac's code threw (or Node failed): the message is Node's stderr."""


def require_wabac() -> None:
    """Skip the calling test without wabac.js or Node (fail on CI)."""
    missing = None
    if not (WABAC / "src").is_dir() or not ESBUILD.exists():
        missing = "wabac.js is not installed for the tests: run `npm ci --prefix tests/js`"
    elif shutil.which("node") is None:
        missing = "no Node.js: install it (apt install nodejs), then `npm ci --prefix tests/js`"
    if missing is None:
        return
    if os.environ.get("CI"):
        pytest.fail(missing)
    pytest.skip(missing)


def wabac_version() -> str:
    return str(json.loads((WABAC / "package.json").read_text("utf-8"))["version"])


@functools.cache
def _workdir() -> Path:
    path = Path(tempfile.mkdtemp(prefix="archiver-wabac-"))
    atexit.register(shutil.rmtree, path, True)
    return path


@functools.cache
def _bundle(name: str) -> Path:
    """The Node script ``name``, bundled with the wabac sources it imports (once per process)."""
    work = _workdir()
    entry = work / f"{name}.entry.mjs"
    entry.write_text(_ENTRIES[name].replace("@SRC@", str(WABAC / "src")), "utf-8")
    out = work / f"{name}.mjs"
    built = subprocess.run(
        [str(ESBUILD), str(entry), "--bundle", "--platform=node", "--format=esm",
         f"--outfile={out}", "--log-level=error"],
        capture_output=True, text=True, timeout=_TIMEOUT,
    )  # fmt: skip
    if built.returncode != 0:
        raise WabacThrew(f"esbuild could not bundle {name}: {built.stderr.strip()}")
    return out


def _run(name: str, payload: bytes) -> Any:
    require_wabac()
    script = _bundle(name)
    with tempfile.NamedTemporaryFile(dir=_workdir(), suffix=".json") as f:
        f.write(payload)
        f.flush()
        done = subprocess.run(
            ["node", str(script), f.name], capture_output=True, text=True, timeout=_TIMEOUT
        )
    if done.returncode != 0:
        raise WabacThrew(done.stderr.strip() or f"node exited {done.returncode}")
    return json.loads(done.stdout)


def verify_wacz_signature(signed_data: dict[str, Any]) -> list[dict[str, Any]]:
    """wabac's ``verifyWACZSignature(signedData)``: a list of ``{id, expected, matched}``;
    the ``signature`` entry's ``matched`` is WebCrypto's verdict."""
    results = _run("verify", json.dumps(signed_data).encode("utf-8"))
    assert isinstance(results, list)
    return results


def signature_matched(results: list[dict[str, Any]]) -> bool:
    """The ``matched`` of the ``signature`` result (True only when WebCrypto verified it)."""
    (entry,) = [r for r in results if r["id"] == "signature"]
    return entry["matched"] is True


def load_digest_data(digest_bytes: bytes) -> dict[str, Any]:
    """wabac's ``WACZImporter.loadDigestData`` on a ``datapackage-digest.json``:
    ``{"hash": the datapackage hash it goes on to expect or None, "verify": what it
    recorded (``{prefix, id, expected, matched}``), "warnings": what it warned}``.
    An unsigned or ignored signature shows as ``{"id": "signature", "expected": ""}``."""
    result = _run("digest", digest_bytes)
    assert isinstance(result, dict)
    return result


def rewrite_hls(text: str, extra_opts: dict[str, Any] | None = None, *, live: bool = False) -> str:
    """wabac's ``rewriteHLS`` on a master playlist, as replay serves it: the variants
    but one removed.  The response counts as archived (``isLive`` false), so wabac
    keeps the variant of the largest RESOLUTION (width x height) not above 1280x720,
    or the smallest when all are above (a variant without RESOLUTION counts as 0);
    ``extra_opts`` (the record's ``adaptive_max_resolution`` and
    ``adaptive_max_bandwidth``, or ``maxRes`` and ``maxBand``: both, or neither counts)
    sets other limits; ``live=True`` gives wabac's lower limits for live pages
    (860x480).  URLs are left as they are (no ``rewriteUrl``)."""
    payload = {"text": text, "extraOpts": extra_opts, "live": live}
    result = _run("hls", json.dumps(payload).encode("utf-8"))
    assert isinstance(result, str)
    return result


# ---------------------------------------------------------------------------------------
# What the signature checks are given: a datapackage, and signedData the way other
# signers write it (a domain certificate, as authsign; raw r||s, as WebCrypto signs)

CREATED = "2026-03-01T12:00:00.000000Z"
SOFTWARE = "archiver 0.1.0 (test)"


def datapackage(created: str = CREATED) -> bytes:
    """A small ``datapackage.json`` as a WACZ holds it (its bytes are what is signed)."""
    doc = {
        "profile": "data-package",
        "wacz_version": "1.1.1",
        "created": created,
        "software": SOFTWARE,
        "resources": [
            {
                "name": "x.warc.gz",
                "path": "archive/x.warc.gz",
                "hash": "sha256:" + "ab" * 32,
                "bytes": 1234,
            }
        ],
    }
    return json.dumps(doc, indent=2).encode()


def flip_b64(text: str, at: int = 10) -> str:
    """``text`` (base64) with one bit of its byte ``at`` changed."""
    raw = bytearray(base64.b64decode(text))
    raw[at] ^= 0x01
    return base64.b64encode(bytes(raw)).decode()


def make_domain_cert(
    domain: str, key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
) -> tuple[str, bytes]:
    """A chain (leaf for ``domain``, then its CA) in PEM, and the leaf's DER: a real
    certificate from a CA made here, as a domain-identity signer would hold."""
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Test Root")])
    now = datetime.datetime.now(datetime.UTC)
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, domain)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(domain)]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    # a blank line between certificates, as Let's Encrypt's chains (and wabac) have them
    pem = b"\n".join(c.public_bytes(serialization.Encoding.PEM) for c in (leaf, ca))
    return pem.decode("ascii"), leaf.public_bytes(serialization.Encoding.DER)


def domain_signed_data(
    key: ec.EllipticCurvePrivateKey, chain: str, digest: str, domain: str, *, der: bool = False
) -> dict[str, Any]:
    """signedData as a domain-identity signer writes it (authsign: DER; WebCrypto: raw)."""
    signature = key.sign(digest.encode(), ec.ECDSA(hashes.SHA256()))
    if not der:
        size = (key.curve.key_size + 7) // 8
        r, s = decode_dss_signature(signature)
        signature = r.to_bytes(size, "big") + s.to_bytes(size, "big")
    return {
        "hash": digest,
        "signature": base64.b64encode(signature).decode(),
        "domain": domain,
        "domainCert": chain,
        "created": CREATED,
        "software": "authsign 0.5.0",
        "timeSignature": "not checked",
    }


def domain_case(
    domain: str = "archive.example.org", *, der: bool = False
) -> tuple[dict[str, Any], bytes, ec.EllipticCurvePrivateKey, bytes]:
    """A ``datapackage-digest.json`` signed for ``domain`` by the key of a certificate
    for archive.example.org (P-256, as authsign makes it); with the datapackage, that
    key and the certificate's DER."""
    package = datapackage()
    digest = "sha256:" + hashlib.sha256(package).hexdigest()
    key = ec.generate_private_key(ec.SECP256R1())
    chain, leaf_der = make_domain_cert("archive.example.org", key)
    doc = {
        "path": "datapackage.json",
        "hash": digest,
        "signedData": domain_signed_data(key, chain, digest, domain, der=der),
    }
    return doc, package, key, leaf_der
