"""The P-384 key beside each Ed25519 key, the statement binding them, and WACZ
signatures: made safely, checkable with stock OpenSSL, and every malformed input a
readable problem."""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
import os
import shutil
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from archiver.trust import keys
from archiver.trust.wacz_signing import (
    DigestCheck,
    Identity,
    SignatureState,
    WaczKey,
    WaczSigningError,
    binding_statement,
    check_binding,
    check_datapackage_digest,
    check_digest_file,
    p384_paths,
    publish_binding,
    sign_datapackage,
    wacz_key,
)
from tests.support.wabac import (
    CREATED,
    SOFTWARE,
    datapackage,
    domain_case,
    flip_b64,
    make_domain_cert,
)

# How a third party checks a WACZ's signature with OpenSSL, from the unzipped WACZ
# (docs/verifying.md gives it; the test below runs it exactly as written).  FP is the
# archivist's Ed25519 fingerprint.
RECIPE = r"""
# 1. the hash of datapackage.json, as the string the signature covers (no newline)
H="sha256:$(sha256sum datapackage.json | cut -d' ' -f1)"
printf '%s' "$H" > hash.txt
grep -o "\"$H\"" datapackage-digest.json | wc -l   # 2: the digest's hash and signedData's
# 2. the public key and the signature, from datapackage-digest.json
sed -n 's/.*"publicKey": *"\([^"]*\)".*/\1/p' datapackage-digest.json | base64 -d > p384.spki.der
openssl pkey -pubin -inform DER -in p384.spki.der -out p384.pub.pem
sed -n 's/.*"signature": *"\([^"]*\)".*/\1/p' datapackage-digest.json | base64 -d > sig.raw
# 3. raw r||s (48 + 48 bytes) to the DER SEQUENCE of two INTEGERs OpenSSL reads
R=$(head -c 48 sig.raw | od -An -v -tx1 | tr -d ' \n')
S=$(tail -c 48 sig.raw | od -An -v -tx1 | tr -d ' \n')
printf 'asn1=SEQUENCE:sig\n[sig]\nr=INTEGER:0x%s\ns=INTEGER:0x%s\n' "$R" "$S" > sig.cnf
openssl asn1parse -genconf sig.cnf -out sig.der -noout
# 4. the check: "Verified OK"
openssl dgst -sha256 -verify p384.pub.pem -signature sig.der hash.txt
# 5. the archivist's Ed25519 key vouches for this P-384 key
openssl pkeyutl -verify -pubin -inkey keys/$FP.pub.pem -rawin \
    -in keys/$FP.p384.binding.json -sigfile keys/$FP.p384.binding.json.sig
sed -n 's/.*"p384_public_key":"\([^"]*\)".*/\1/p' keys/$FP.p384.binding.json \
    | base64 -d | cmp - p384.spki.der && echo "the bound key signed"
"""


def openssl(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["openssl", *args], capture_output=True, timeout=60, cwd=cwd)


def store_key(
    store: Path, passphrase: str | None = None, *, path: Path | None = None
) -> tuple[keys.KeyInfo, keys.Signer]:
    info = keys.generate(store, passphrase, path=path)
    return info, keys.Signer.load(info.path, passphrase)


@pytest.fixture
def signed(tmp_path: Path) -> tuple[keys.KeyInfo, keys.Signer, WaczKey]:
    info, signer = store_key(tmp_path / "store")
    return info, signer, wacz_key(info, signer, None)


# ------------------------------------------------------------------------- keys


def test_the_p384_key_is_made_once_beside_its_ed25519_key(tmp_path: Path) -> None:
    store = tmp_path / "store"
    info, signer = store_key(store)
    made = wacz_key(info, signer, None)
    paths = p384_paths(info.path)
    assert made.created and made.path == paths.private == store / f"{info.fingerprint}.p384.key.pem"
    assert stat.S_IMODE(paths.private.stat().st_mode) == 0o600
    assert paths.private.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    assert paths.public.name == f"{info.fingerprint}.p384.pub.pem"
    # OpenSSL reads it as a P-384 key whose public half is the .pub.pem beside it
    text = openssl("pkey", "-in", str(paths.private), "-noout", "-text")
    assert text.returncode == 0 and b"secp384r1" in text.stdout
    pub = openssl("pkey", "-in", str(paths.private), "-pubout")
    assert pub.stdout == paths.public.read_bytes() == made.public_pem
    assert hashlib.sha256(made.spki_der).hexdigest() == made.spki_sha256
    files = {p: (p.read_bytes(), p.stat().st_ino) for p in paths.__dict__.values()}
    again = wacz_key(info, signer, None)
    assert not again.created and again.spki_der == made.spki_der
    assert (again.binding, again.binding_signature) == (made.binding, made.binding_signature)
    assert files == {p: (p.read_bytes(), p.stat().st_ino) for p in files}  # nothing rewritten
    # the store still lists one signing key: the P-384 files are not Ed25519 keys
    listed = keys.list_keys(store)
    assert [(k.fingerprint, k.path, k.default) for k in listed] == [
        (info.fingerprint, info.path, True)
    ]
    assert keys.find_key(store).path == info.path
    assert keys.find_key(store, fingerprint_prefix=info.fingerprint[:6]).path == info.path
    # a second Ed25519 key gets its own P-384 key; the store still lists two keys
    info2, signer2 = store_key(store)
    other = wacz_key(info2, signer2, None)
    assert other.spki_der != made.spki_der
    assert {k.fingerprint for k in keys.list_keys(store)} == {info.fingerprint, info2.fingerprint}
    assert "PRIVATE" not in repr(made)


def test_keys_list_shows_no_p384_key(tmp_path: Path) -> None:
    from tests.support.runner import run

    store = tmp_path / "store"
    info, signer = store_key(store)
    wacz_key(info, signer, None)
    environ: dict[str, str | None] = {k: None for k in os.environ if k.startswith("ARCHIVER_KEY")}
    out = run("keys", "list", "--format", "json", env={**environ, "ARCHIVER_KEY_STORE": str(store)})
    assert out.returncode == 0, out.stderr
    assert [k["fingerprint"] for k in json.loads(out.stdout)] == [info.fingerprint]


def test_an_encrypted_ed25519_key_gets_an_encrypted_p384_key(tmp_path: Path) -> None:
    store = tmp_path / "store"
    info, signer = store_key(store, "s3cret")
    paths = p384_paths(info.path)
    with pytest.raises(keys.KeyProblem, match="encrypted"):
        wacz_key(info, signer, None)
    assert not any(p.exists() for p in paths.__dict__.values())  # nothing half made
    made = wacz_key(info, signer, "s3cret")
    pem = paths.private.read_bytes()
    assert pem.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----") and b"s3cret" not in pem
    assert stat.S_IMODE(paths.private.stat().st_mode) == 0o600
    with pytest.raises(keys.KeyProblem, match=f"wrong passphrase for the key {paths.private}"):
        wacz_key(info, signer, "wrong")
    with pytest.raises(keys.KeyProblem, match="encrypted"):
        wacz_key(info, signer, None)
    assert wacz_key(info, signer, "s3cret").spki_der == made.spki_der
    der = openssl(
        "pkey", "-in", str(paths.private), "-passin", "pass:s3cret", "-pubout", "-outform", "DER"
    )
    assert der.returncode == 0 and der.stdout == made.spki_der
    assert openssl("pkey", "-in", str(paths.private), "-passin", "pass:nope").returncode != 0


def test_a_key_named_by_path_gets_its_pair_beside_the_file(tmp_path: Path) -> None:
    secure = tmp_path / "secure"
    store = tmp_path / "store"
    info, signer = store_key(store, path=secure / "archiver.key.pem")
    found = keys.find_key(store, secure / "archiver.key.pem")
    made = wacz_key(found, signer, None)
    assert made.path == secure / "archiver.p384.key.pem"
    assert sorted(p.name for p in secure.iterdir()) == [
        "archiver.key.pem",
        "archiver.p384.binding.json",
        "archiver.p384.binding.json.sig",
        "archiver.p384.key.pem",
        "archiver.p384.pub.pem",
        "archiver.pub.pem",
    ]
    assert not store.exists() or not any(store.iterdir())
    # the binding names the Ed25519 key's fingerprint, whatever the file is called
    assert json.loads(made.binding)["ed25519"] == info.fingerprint == made.ed25519_fingerprint


def test_files_that_disagree_are_refused_and_missing_ones_completed(
    tmp_path: Path, signed: tuple[keys.KeyInfo, keys.Signer, WaczKey]
) -> None:
    info, signer, made = signed
    paths = p384_paths(info.path)
    # an interrupted first use: the public key and the signature are made again, the same
    paths.public.unlink()
    paths.binding_sig.unlink()
    again = wacz_key(info, signer, None)
    assert paths.public.read_bytes() == made.public_pem
    assert (
        again.binding == made.binding and paths.binding_sig.read_bytes() == made.binding_signature
    )
    # another key's public half beside this private key
    stranger = ec.generate_private_key(ec.SECP384R1()).public_key()
    paths.public.unlink()
    paths.public.write_bytes(
        stranger.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    with pytest.raises(keys.KeyProblem, match="does not hold the public key"):
        wacz_key(info, signer, None)
    paths.public.unlink()
    # a binding statement edited after it was signed
    good = paths.binding.read_bytes()
    paths.binding.write_bytes(good.replace(b"signs WACZ", b"signs ZIP"))
    with pytest.raises(keys.KeyProblem, match="signature does not hold"):
        wacz_key(info, signer, None)
    paths.binding.write_bytes(good)
    # the Ed25519 key loaded is not the one named
    _, other_signer = store_key(tmp_path / "other")
    with pytest.raises(keys.KeyProblem, match="not the key"):
        wacz_key(info, other_signer, None)
    # an Ed25519 key file is no P-384 key
    paths.private.rename(tmp_path / "aside.pem")
    shutil.copy(info.path, paths.private)
    with pytest.raises(keys.KeyProblem, match="not an ECDSA P-384 key"):
        wacz_key(info, signer, None)
    # the public key and binding without their private key: never silently replaced
    paths.private.unlink()
    with pytest.raises(keys.KeyProblem, match="exists but not the private key"):
        wacz_key(info, signer, None)
    for leftover in (paths.public, paths.binding, paths.binding_sig):
        leftover.unlink()
    with pytest.raises(keys.KeyProblem, match="no P-384 key"):
        wacz_key(info, signer, None, create=False)
    assert not paths.private.exists()


# ---------------------------------------------------------------------- binding


def test_the_binding_statement_holds_only_as_signed(
    tmp_path: Path, signed: tuple[keys.KeyInfo, keys.Signer, WaczKey]
) -> None:
    info, signer, made = signed
    public = signer.key.public_key()
    assert check_binding(made.binding, made.binding_signature, public, made.spki_der) is None
    doc = json.loads(made.binding)
    assert made.binding == made.binding.strip() + b"\n" and made.binding.count(b"\n") == 1
    assert doc["type"] == "archiver/key-binding/1" and doc["ed25519"] == info.fingerprint
    assert base64.b64decode(doc["p384_public_key"]) == made.spki_der
    assert doc["p384_spki_sha256"] == hashlib.sha256(made.spki_der).hexdigest()
    tampered = made.binding.replace(doc["created"].encode(), b"2020-01-01T00:00:00.000000Z")
    assert "signature does not hold" in str(
        check_binding(tampered, made.binding_signature, public, made.spki_der)
    )
    _, other = store_key(tmp_path / "other")
    assert "signature does not hold" in str(
        check_binding(made.binding, made.binding_signature, other.key.public_key(), made.spki_der)
    )
    stranger = ec.generate_private_key(ec.SECP384R1()).public_key()
    stranger_der = stranger.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert "another P-384 key" in str(
        check_binding(made.binding, made.binding_signature, public, stranger_der)
    )
    # signed, but not as archiver writes it: another layout, another type, another key named
    pretty = json.dumps(doc, indent=1).encode()
    assert "one line" in str(check_binding(pretty, signer.sign(pretty), public, made.spki_der))
    for change, expect in (
        ({"type": "archiver/key-binding/0"}, "of type"),
        ({"ed25519": "00" * 32}, "names the Ed25519 key"),
        ({"p384_spki_sha256": "00" * 32}, "not the SHA-256"),
        ({"created": "yesterday"}, "is not a time"),
        ({"purpose": "anything"}, "purpose"),
        ({"extra": 1}, "has the fields"),
    ):
        statement = (
            json.dumps({**doc, **change}, sort_keys=True, separators=(",", ":")).encode() + b"\n"
        )
        problem = check_binding(statement, signer.sign(statement), public, made.spki_der)
        assert problem and expect in problem, (change, problem)
    # the statement is the function's output, byte for byte
    when = datetime.datetime.fromisoformat(doc["created"].replace("Z", "+00:00"))
    assert binding_statement(info.fingerprint, made.key.public_key(), when) == made.binding


def test_the_binding_in_an_archive_checks_with_stock_openssl(
    tmp_path: Path, signed: tuple[keys.KeyInfo, keys.Signer, WaczKey]
) -> None:
    info, signer, made = signed
    archive = tmp_path / "archive"
    fp = info.fingerprint
    names = publish_binding(archive, made)
    assert names == [
        f"keys/{fp}.p384.pub.pem",
        f"keys/{fp}.p384.binding.json",
        f"keys/{fp}.p384.binding.json.sig",
    ]
    signer.publish(archive / "keys" / f"{fp}.pub.pem")
    assert (archive / names[0]).read_bytes() == made.public_pem
    assert b"PRIVATE" not in b"".join((archive / n).read_bytes() for n in names)
    binding = archive / names[1]
    ok = openssl(
        "pkeyutl", "-verify", "-pubin", "-inkey", f"keys/{fp}.pub.pem", "-rawin",
        "-in", names[1], "-sigfile", names[2], cwd=archive,
    )  # fmt: skip
    assert ok.returncode == 0 and b"Signature Verified Successfully" in ok.stdout, ok.stderr
    # publishing again is a no-op; the files are untouched
    before = {n: (archive / n).stat().st_ino for n in names}
    assert publish_binding(archive, made) == names
    assert before == {n: (archive / n).stat().st_ino for n in names}
    # the same Ed25519 key with another P-384 key (its key file copied elsewhere) must
    # not replace the archive's binding
    elsewhere = tmp_path / "elsewhere" / "copy.key.pem"
    elsewhere.parent.mkdir()
    shutil.copy(info.path, elsewhere)
    second = wacz_key(keys.find_key(tmp_path, elsewhere), signer, None)
    assert second.spki_der != made.spki_der
    with pytest.raises(keys.KeyProblem, match="never replaced"):
        publish_binding(archive, second)
    assert (archive / names[0]).read_bytes() == made.public_pem
    # a statement changed in the archive no longer verifies
    binding.write_bytes(binding.read_bytes().replace(b"P-384", b"P-256"))
    bad = openssl(
        "pkeyutl", "-verify", "-pubin", "-inkey", f"keys/{fp}.pub.pem", "-rawin",
        "-in", names[1], "-sigfile", names[2], cwd=archive,
    )  # fmt: skip
    assert bad.returncode != 0
    with pytest.raises(keys.KeyProblem, match="never replaced"):
        publish_binding(archive, made)


# ------------------------------------------------------------- WACZ signatures


def unzipped_wacz(
    where: Path, made: WaczKey, signer: keys.Signer, package: bytes, *, indent: int | None
) -> dict[str, Any]:
    """The signature's files of an unzipped WACZ, as the export writes them."""
    where.mkdir()
    doc = sign_datapackage(made, package, CREATED, SOFTWARE)
    (where / "datapackage.json").write_bytes(package)
    (where / "datapackage-digest.json").write_text(json.dumps(doc, indent=indent))
    publish_binding(where, made)
    signer.publish(where / "keys" / f"{signer.fingerprint}.pub.pem")
    return doc


def recipe(where: Path, fp: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-e", "-o", "pipefail", "-c", RECIPE],
        cwd=where, env={**os.environ, "FP": fp}, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


@pytest.mark.parametrize("indent", [None, 2])
def test_the_wacz_signature_checks_with_stock_openssl(
    tmp_path: Path, signed: tuple[keys.KeyInfo, keys.Signer, WaczKey], indent: int | None
) -> None:
    info, signer, made = signed
    wacz = tmp_path / "wacz"
    doc = unzipped_wacz(wacz, made, signer, datapackage(), indent=indent)
    raw = base64.b64decode(doc["signedData"]["signature"])
    assert len(raw) == 96
    out = recipe(wacz, info.fingerprint)
    assert out.returncode == 0, out.stdout + out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].strip() == "2" and "Verified OK" in lines
    assert "Signature Verified Successfully" in lines and lines[-1] == "the bound key signed"
    # the DER OpenSSL was given is the signature cryptography makes of r and s
    r, s = decode_dss_signature((wacz / "sig.der").read_bytes())
    assert r.to_bytes(48, "big") + s.to_bytes(48, "big") == raw
    # one byte changed in datapackage.json: OpenSSL refuses
    package = wacz / "datapackage.json"
    package.write_bytes(package.read_bytes().replace(b"1234", b"1235"))
    changed = recipe(wacz, info.fingerprint)
    assert changed.returncode != 0 and "Verified OK" not in changed.stdout


def test_a_signed_datapackage_checks_valid(
    signed: tuple[keys.KeyInfo, keys.Signer, WaczKey],
) -> None:
    _, signer, made = signed
    package = datapackage()
    doc = sign_datapackage(made, package, CREATED, SOFTWARE)
    digest = "sha256:" + hashlib.sha256(package).hexdigest()
    assert doc["path"] == "datapackage.json" and doc["hash"] == doc["signedData"]["hash"] == digest
    assert set(doc["signedData"]) == {"hash", "signature", "publicKey", "created", "software"}
    assert doc["signedData"]["created"] == json.loads(package)["created"]
    check = check_datapackage_digest(doc, package)
    assert check.ok and check.hash_ok and check.state is SignatureState.VALID
    assert check.identity is Identity.ANONYMOUS and check.signature_encoding == "raw"
    assert check.public_key == made.public_key_b64 and check.public_key_sha256 == made.spki_sha256
    assert (check.created, check.software) == (CREATED, SOFTWARE)
    assert check.problems == [] and any("not covered" in n for n in check.notes)
    assert check.verdict == f"signed by an anonymous P-384 key (SHA-256 {made.spki_sha256})"
    # the key it names is the one the archivist's Ed25519 key vouches for
    assert check.public_key_der is not None
    assert (
        check_binding(
            made.binding, made.binding_signature, signer.key.public_key(), check.public_key_der
        )
        is None
    )
    from_file = check_digest_file(json.dumps(doc).encode(), package)
    assert from_file.to_json() == check.to_json()
    assert json.loads(json.dumps(check.to_json()))["signature"] == "valid"
    with pytest.raises(WaczSigningError, match="created"):
        sign_datapackage(made, package, "2026-03-01T12:00:01.000000Z", SOFTWARE)


def test_changed_or_unsigned_packages_are_reported(
    signed: tuple[keys.KeyInfo, keys.Signer, WaczKey],
) -> None:
    _, _, made = signed
    package = datapackage()
    doc = sign_datapackage(made, package, CREATED, SOFTWARE)
    # the package changed after signing: the signature still holds for the hash, which does not
    changed = check_datapackage_digest(doc, package.replace(b"1234", b"1235"))
    assert not changed.hash_ok and not changed.ok and changed.state is SignatureState.VALID
    assert (
        "does not match its digest" in changed.problems[0] and "does not match" in changed.verdict
    )
    # the signature changed
    flipped = {
        **doc,
        "signedData": {**doc["signedData"], "signature": flip_b64(doc["signedData"]["signature"])},
    }
    bad = check_datapackage_digest(flipped, package)
    assert bad.hash_ok and bad.state is SignatureState.INVALID and not bad.ok
    assert bad.problems == ["the signature does not hold for the hash and the key given"]
    assert bad.verdict == "signature invalid"
    # another key named: the signature does not hold for it
    stranger = (
        ec.generate_private_key(ec.SECP384R1())
        .public_key()
        .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    other = {
        **doc,
        "signedData": {**doc["signedData"], "publicKey": base64.b64encode(stranger).decode()},
    }
    assert check_datapackage_digest(other, package).state is SignatureState.INVALID
    # not signed at all
    unsigned = check_datapackage_digest({"path": "datapackage.json", "hash": doc["hash"]}, package)
    assert unsigned.state is SignatureState.UNSIGNED and unsigned.hash_ok and not unsigned.ok
    assert unsigned.problems == [] and unsigned.verdict == "not signed"
    # created differs from the datapackage's: the signature holds, the discrepancy is said
    late = sign_datapackage(
        made, datapackage("2026-03-02T00:00:00.000000Z"), "2026-03-02T00:00:00.000000Z", SOFTWARE
    )
    late["signedData"]["created"] = CREATED
    mixed = check_datapackage_digest(late, datapackage("2026-03-02T00:00:00.000000Z"))
    assert mixed.signed and not mixed.ok and "created" in mixed.problems[0]
    # signedData signs another hash than the one declared (ReplayWeb.page then ignores it)
    other_hash = {**doc, "hash": "sha256:" + "0" * 64}
    split = check_datapackage_digest(other_hash, package)
    assert not split.ok and any("differs from the digest's hash" in p for p in split.problems)


def test_a_der_encoded_signature_holds_but_is_flagged(
    signed: tuple[keys.KeyInfo, keys.Signer, WaczKey],
) -> None:
    _, _, made = signed
    package = datapackage()
    doc = sign_datapackage(made, package, CREATED, SOFTWARE)
    der = made.key.sign(doc["hash"].encode(), ec.ECDSA(hashes.SHA256()))
    doc["signedData"]["signature"] = base64.b64encode(der).decode()
    check = check_datapackage_digest(doc, package)
    assert check.state is SignatureState.VALID and check.signature_encoding == "der"
    assert any("ReplayWeb.page reads raw r||s" in n for n in check.notes)


def test_a_domain_signature_is_reported_with_its_unchecked_chain() -> None:
    doc, package, key, leaf_der = domain_case()
    check = check_datapackage_digest(doc, package)
    assert check.ok and check.state is SignatureState.VALID and check.identity is Identity.DOMAIN
    assert (
        check.domain == "archive.example.org"
        and check.certificate_subject == "CN=archive.example.org"
    )
    assert check.certificate_sha256 == hashlib.sha256(leaf_der).hexdigest()
    spki = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert (
        check.public_key_der == spki and check.public_key_sha256 == hashlib.sha256(spki).hexdigest()
    )
    assert not check.chain_checked and any(
        "not checked against any trusted root" in n for n in check.notes
    )
    assert any("timeSignature was not checked" in n for n in check.notes)
    assert (
        check.verdict == "signed for the domain archive.example.org (certificate chain not checked)"
    )
    # as authsign writes it: DER
    der_doc, package, _, _ = domain_case(der=True)
    assert check_datapackage_digest(der_doc, package).signature_encoding == "der"
    # a domain the certificate is not for
    wrong, package, _, _ = domain_case("court.example.net")
    claimed = check_datapackage_digest(wrong, package)
    assert claimed.signed and not claimed.ok
    assert "'court.example.net' is not a name of the domain certificate" in claimed.problems[0]
    # a signature by another key than the certificate's
    forged, package, _, _ = domain_case()
    forged["signedData"]["signature"] = flip_b64(forged["signedData"]["signature"])
    assert check_datapackage_digest(forged, package).state is SignatureState.INVALID
    # an RSA certificate: not what ReplayWeb.page checks
    chain, _ = make_domain_cert(
        "archive.example.org", rsa.generate_private_key(public_exponent=65537, key_size=2048)
    )
    rsa_doc, package, _, _ = domain_case()
    rsa_doc["signedData"]["domainCert"] = chain
    rsa_check = check_datapackage_digest(rsa_doc, package)
    assert rsa_check.state is SignatureState.INVALID and "ECDSA" in rsa_check.problems[0]
    # a domain beside a publicKey proves nothing about the domain
    both, package, _, _ = domain_case()
    p256 = (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    both["signedData"]["publicKey"] = base64.b64encode(p256).decode()
    mixed = check_datapackage_digest(both, package)
    assert mixed.state is SignatureState.INVALID and mixed.identity is Identity.ANONYMOUS
    assert any("proves nothing about the domain" in p for p in mixed.problems)


def malformed_cases(made: WaczKey, package: bytes) -> list[tuple[str, Any, str]]:
    doc = sign_datapackage(made, package, CREATED, SOFTWARE)
    sd = doc["signedData"]
    p256 = (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    raw = base64.b64decode(sd["signature"])

    def with_signed(**change: Any) -> dict[str, Any]:
        return {**doc, "signedData": {**sd, **change}}

    return [
        ("a list", [doc], "not a JSON object"),
        ("no path", {k: v for k, v in doc.items() if k != "path"}, "path is None"),
        ("hash a number", {**doc, "hash": 5}, "not sha256:<64 lowercase hex>"),
        ("hash in capitals", {**doc, "hash": doc["hash"].upper()}, "not sha256:<64 lowercase hex>"),
        ("signedData a list", {**doc, "signedData": [sd]}, "signedData is not a JSON object"),
        ("signature a number", with_signed(signature=12), "signature is not a string"),
        ("signature not base64", with_signed(signature="%%%%"), "signature is not base64"),
        (
            "signature short",
            with_signed(signature=base64.b64encode(raw[:-1]).decode()),
            "neither raw r||s (96) nor DER",
        ),
        ("signature missing", with_signed(signature=None), "has no signature"),
        ("signature huge", with_signed(signature="A" * 5000), "longer than 1024"),
        ("publicKey not base64", with_signed(publicKey="not base64!"), "publicKey is not base64"),
        (
            "publicKey P-256",
            with_signed(publicKey=base64.b64encode(p256).decode()),
            "not an ECDSA P-384",
        ),
        (
            "publicKey junk",
            with_signed(publicKey=base64.b64encode(b"\x30\x03\x02\x01\x01").decode()),
            "not an ECDSA P-384",
        ),
        ("publicKey huge", with_signed(publicKey="A" * 10000), "longer than 4096"),
        ("no key at all", with_signed(publicKey=None), "neither a publicKey nor a domain"),
        ("no hash signed", with_signed(hash=None), "signedData has no hash"),
        ("created a list", with_signed(created=[CREATED]), "created is not a string"),
        (
            "domainCert junk",
            {
                **doc,
                "signedData": {k: v for k, v in sd.items() if k != "publicKey"}
                | {
                    "domain": "a.example",
                    "domainCert": "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
                },
            },
            "domainCert is not PEM certificates",
        ),
        (
            "domainCert text",
            {
                **doc,
                "signedData": {k: v for k, v in sd.items() if k != "publicKey"}
                | {"domain": "a.example", "domainCert": "hello"},
            },
            "domainCert is not PEM certificates",
        ),
    ]


def test_malformed_digests_are_problems_never_exceptions(
    signed: tuple[keys.KeyInfo, keys.Signer, WaczKey],
) -> None:
    _, _, made = signed
    package = datapackage()
    for label, doc, expect in malformed_cases(made, package):
        check = check_datapackage_digest(doc, package)
        assert isinstance(check, DigestCheck)
        assert not check.ok, label
        assert any(expect in p for p in check.problems), (label, check.problems)
    for data, expect in (
        (b"\xff\xfe", "not UTF-8 JSON"),
        (b'{"hash": 1, "hash": 2}', "appears twice"),
        (b"{" + b" " * (1024 * 1024) + b"}", "larger than"),
        (b"[]", "not a JSON object"),
    ):
        check = check_digest_file(data, package)
        assert not check.ok and expect in check.problems[0], (data[:20], check.problems)
    not_json = check_datapackage_digest(
        sign_datapackage(made, package, CREATED, SOFTWARE), b"not json"
    )
    assert not not_json.ok and any("datapackage.json is not JSON" in p for p in not_json.problems)
