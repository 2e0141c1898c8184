"""Our WACZ signatures judged by ReplayWeb.page's own code: wabac.js's
``verifyWACZSignature`` and ``loadDigestData`` (from the ``@webrecorder/wabac`` npm
package, run under Node through tests/support/wabac.py), and our check agreeing with it."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from archiver.trust import keys
from archiver.trust.wacz_signing import (
    Identity,
    SignatureState,
    WaczKey,
    check_datapackage_digest,
    sign_datapackage,
    wacz_key,
)
from tests.support.wabac import (
    CREATED,
    SOFTWARE,
    WabacThrew,
    datapackage,
    domain_case,
    flip_b64,
    load_digest_data,
    require_wabac,
    signature_matched,
    verify_wacz_signature,
)


@pytest.fixture(autouse=True)
def _wabac() -> None:
    require_wabac()


@pytest.fixture
def made(tmp_path: Path) -> WaczKey:
    info = keys.generate(tmp_path / "store")
    return wacz_key(info, keys.Signer.load(info.path, None), None)


def flip_hex(digest: str) -> str:
    last = digest[-1]
    return digest[:-1] + ("0" if last != "0" else "1")


def test_wabac_verifies_our_signature(made: WaczKey) -> None:
    package = datapackage()
    doc = sign_datapackage(made, package, CREATED, SOFTWARE)
    results = verify_wacz_signature(doc["signedData"])
    by_id = {r["id"]: r for r in results}
    assert signature_matched(results)
    assert by_id["publicKey"]["expected"] == made.public_key_b64
    assert by_id["created"]["expected"] == CREATED and by_id["software"]["expected"] == SOFTWARE
    assert "domain" not in by_id


def test_wabac_refuses_a_flipped_byte(made: WaczKey) -> None:
    package = datapackage()
    doc = sign_datapackage(made, package, CREATED, SOFTWARE)
    signed = doc["signedData"]
    cases: list[tuple[str, dict[str, Any]]] = [
        ("as signed", signed),
        ("hash changed", {**signed, "hash": flip_hex(signed["hash"])}),
        ("signature changed", {**signed, "signature": flip_b64(signed["signature"])}),
        ("last byte of s", {**signed, "signature": flip_b64(signed["signature"], at=95)}),
    ]
    for label, data in cases:
        wabac_says = signature_matched(verify_wacz_signature(data))
        ours = check_datapackage_digest({**doc, "hash": data["hash"], "signedData": data}, package)
        assert wabac_says == (label == "as signed"), label
        # our check agrees with ReplayWeb.page's on the signature itself
        assert (ours.state is SignatureState.VALID) == wabac_says, (label, ours.problems)


def test_wabac_reads_our_digest_file_as_signed(made: WaczKey) -> None:
    package = datapackage()
    doc = sign_datapackage(made, package, CREATED, SOFTWARE)
    loaded = load_digest_data(json.dumps(doc, indent=2).encode())
    assert loaded["hash"] == doc["hash"] and loaded["warnings"] == []
    by_id = {r["id"]: r for r in loaded["verify"]}
    assert by_id["datapackageHash"]["expected"] == doc["hash"]
    assert by_id["signature"]["matched"] is True
    # signedData over another hash than the digest's: wabac drops the signature
    # silently; our check says why
    other = {**doc, "hash": flip_hex(doc["hash"])}
    dropped = load_digest_data(json.dumps(other).encode())
    assert dropped["hash"] is None
    assert [(r["id"], r["expected"]) for r in dropped["verify"]] == [("signature", "")]
    assert any("differs" in p for p in check_datapackage_digest(other, package).problems)
    # unsigned: the same, and our check says "unsigned"
    bare = {"path": "datapackage.json", "hash": doc["hash"]}
    assert load_digest_data(json.dumps(bare).encode())["verify"][0]["expected"] == ""
    assert check_datapackage_digest(bare, package).state is SignatureState.UNSIGNED


def test_wabac_and_our_check_on_domain_signatures() -> None:
    doc, package, _, _ = domain_case()
    results = verify_wacz_signature(doc["signedData"])
    by_id = {r["id"]: r for r in results}
    ours = check_datapackage_digest(doc, package)
    assert signature_matched(results) and ours.state is SignatureState.VALID
    assert ours.identity is Identity.DOMAIN
    assert by_id["domain"]["matched"] == by_id["domain"]["expected"] == ours.domain
    assert by_id["certFingerprint"]["expected"] == ours.certificate_sha256
    assert by_id["publicKey"]["expected"] == ours.public_key
    # DER, as authsign writes it: WebCrypto refuses it, and our note says so
    der_doc, package, _, _ = domain_case(der=True)
    assert not signature_matched(verify_wacz_signature(der_doc["signedData"]))
    der_check = check_datapackage_digest(der_doc, package)
    assert der_check.signature_encoding == "der"
    assert any("will not show it as valid" in n for n in der_check.notes)


def test_a_key_on_another_curve_is_refused_by_both(made: WaczKey) -> None:
    package = datapackage()
    doc = sign_datapackage(made, package, CREATED, SOFTWARE)
    p256 = ec.generate_private_key(ec.SECP256R1()).public_key()
    spki = p256.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    doc["signedData"]["publicKey"] = base64.b64encode(spki).decode()
    with pytest.raises(WabacThrew, match="DataError"):
        verify_wacz_signature(doc["signedData"])
    ours = check_datapackage_digest(doc, package)
    assert ours.state is SignatureState.INVALID and "not an ECDSA P-384" in ours.problems[0]
