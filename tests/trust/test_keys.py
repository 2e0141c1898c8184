"""Signing keys: created safely, usable by stock OpenSSL, and clear about every problem."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from archiver.trust.keys import (
    KeyProblem,
    fingerprint,
    generate,
    load_private,
    load_public,
    sign,
    signature_holds,
)
from tests.support.runner import run


def keys(*args: str, store: Path, **env: str) -> subprocess.CompletedProcess[str]:
    unset: dict[str, str | None] = {k: None for k in os.environ if k.startswith("ARCHIVER_KEY")}
    environ = {**unset, "ARCHIVER_KEY_STORE": str(store), **env}
    return run("keys", *args, env=environ, timeout=60, installed=True)


def openssl(*args: str, data: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["openssl", *args], input=data, capture_output=True, timeout=60)


def openssl_verify(public: Path, document: Path, sig: Path) -> subprocess.CompletedProcess[bytes]:
    """The third party's check, exactly as docs/verifying.md will give it."""
    return openssl(
        "pkeyutl", "-verify", "-pubin", "-inkey", str(public), "-rawin",
        "-in", str(document), "-sigfile", str(sig),
    )  # fmt: skip


def test_generate_list_export(tmp_path: Path) -> None:
    store = tmp_path / "keys"
    out = keys("generate", "--format", "json", store=store)
    assert out.returncode == 0, out.stderr
    info = json.loads(out.stdout)
    private = Path(info["private_key"])
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert stat.S_IMODE(store.stat().st_mode) & 0o077 == 0
    pem = private.read_bytes()
    assert pem.startswith(b"-----BEGIN PRIVATE KEY-----") and info["default"]
    # the fingerprint is SHA-256 of the raw public key, computed here by OpenSSL
    der = openssl("pkey", "-in", str(private), "-pubout", "-outform", "DER")
    assert der.returncode == 0, der.stderr
    assert hashlib.sha256(der.stdout[-32:]).hexdigest() == info["fingerprint"]
    assert info["fingerprint"] not in out.stderr and b"PRIVATE" not in out.stdout.encode()
    second = json.loads(keys("generate", "--format", "json", store=store).stdout)
    assert not second["default"]
    listed = json.loads(keys("list", "--format", "json", store=store).stdout)
    assert [k["fingerprint"] for k in listed] == [info["fingerprint"], second["fingerprint"]]
    assert listed[0]["default"] and not listed[1]["default"]
    exported = keys("export", store=store)
    assert exported.returncode == 0 and exported.stdout.startswith("-----BEGIN PUBLIC KEY-----")
    assert exported.stdout == Path(info["public_key"]).read_text()
    by_prefix = keys("export", second["fingerprint"][:8], store=store)
    assert by_prefix.stdout == Path(second["public_key"]).read_text()
    assert "PRIVATE" not in exported.stdout + by_prefix.stdout


def test_a_signature_checks_with_stock_openssl(tmp_path: Path) -> None:
    store = tmp_path / "keys"
    info = generate(store)
    document = tmp_path / "x.manifest.json"
    document.write_bytes(b'{"capture_id": "20200812100000-0123456789"}\n')
    signature = sign(load_private(info.path, None), document.read_bytes())
    assert len(signature) == 64
    sig = tmp_path / "x.manifest.json.sig"
    sig.write_bytes(signature)
    ok = openssl_verify(info.public_path, document, sig)
    assert ok.returncode == 0 and b"Signature Verified Successfully" in ok.stdout
    document.write_bytes(document.read_bytes().replace(b"0123", b"0124"))
    bad = openssl_verify(info.public_path, document, sig)
    assert bad.returncode != 0
    public = load_public(info.public_path)
    assert not signature_holds(public, signature, document.read_bytes())


def test_an_encrypted_key(tmp_path: Path) -> None:
    store = tmp_path / "keys"
    out = keys("generate", "--format", "json", store=store, ARCHIVER_KEY_PASSPHRASE="s3cret")
    assert out.returncode == 0, out.stderr
    info = json.loads(out.stdout)
    private = Path(info["private_key"])
    assert private.read_bytes().startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    assert b"s3cret" not in private.read_bytes() and "s3cret" not in out.stdout
    key = load_private(private, "s3cret")
    assert fingerprint(key.public_key()) == info["fingerprint"]
    with pytest.raises(KeyProblem, match="wrong passphrase"):
        load_private(private, "wrong")
    with pytest.raises(KeyProblem, match="encrypted"):
        load_private(private, None)
    # OpenSSL opens it with the same passphrase
    der = openssl(
        "pkey", "-in", str(private), "-passin", "pass:s3cret", "-pubout", "-outform", "DER"
    )
    assert (
        der.returncode == 0 and hashlib.sha256(der.stdout[-32:]).hexdigest() == info["fingerprint"]
    )
    # exporting needs no passphrase: the public key file is beside it
    os.unlink(info["public_key"])
    wrong = keys("export", store=store, ARCHIVER_KEY_PASSPHRASE="nope")
    assert wrong.returncode == 1 and "wrong passphrase" in wrong.stderr
    assert "Traceback" not in wrong.stderr
    right = keys("export", store=store, ARCHIVER_KEY_PASSPHRASE="s3cret")
    assert right.returncode == 0 and "BEGIN PUBLIC KEY" in right.stdout


def test_keys_that_cannot_be_used_are_clear_errors(tmp_path: Path) -> None:
    rsa_key = tmp_path / "rsa.key.pem"
    rsa_key.write_bytes(
        rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    with pytest.raises(KeyProblem, match="not an Ed25519 key"):
        load_private(rsa_key, None)
    out = keys("export", "--key", str(rsa_key), store=tmp_path / "store")
    assert out.returncode == 1 and "not an Ed25519 key" in out.stderr
    assert "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1
    junk = tmp_path / "junk.key.pem"
    junk.write_text("not a key")
    out = keys("export", store=tmp_path / "store", ARCHIVER_KEY=str(junk))
    assert out.returncode == 1 and "not a PEM private key" in out.stderr
    missing = keys("export", "--key", str(tmp_path / "none.pem"), store=tmp_path / "store")
    assert missing.returncode == 1 and "no key file" in missing.stderr
    empty = keys("export", store=tmp_path / "empty")
    assert empty.returncode == 1 and "keys generate" in empty.stderr
    store = tmp_path / "keys"
    first = generate(store)
    existing = keys("generate", "--key", str(first.path), store=store)
    assert existing.returncode == 1 and "refusing to overwrite" in existing.stderr
    assert load_private(first.path, None)  # untouched
