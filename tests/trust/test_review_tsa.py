"""Adversarial review of tokens kept without a trusted root (``rfc3161.check_token_unrooted``).

Each test is a real token from ``openssl ts -reply`` (tests/support/tsa.py), changed the way a
quirky or hostile authority could, and judged against ``openssl ts -verify`` with the
right root and against rfc3161-client (``rfc3161.check_token`` with that root): a token
that the rootless check keeps as "holds, but for the root" must be one those accept.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from archiver.trust import rfc3161
from tests.support.runner import run
from tests.support.site import FixtureSite
from tests.support.tsa import LocalTSA, Mode, Pki, _der_oid, _read_tlv, _tlv, make_pki, sign_query

DATA = b"\x5a" * 64  # what is stamped (a manifest's signature, in archiver)


# a minimal DER tree, to change a token and put it back together --------------------
class Node:
    def __init__(self, tag: int, value: bytes = b"", kids: list[Node] | None = None) -> None:
        self.tag, self.value, self.kids = tag, value, kids

    def __getitem__(self, i: int) -> Node:
        assert self.kids is not None
        return self.kids[i]

    def der(self) -> bytes:
        body = b"".join(k.der() for k in self.kids) if self.kids is not None else self.value
        return _tlv(self.tag, body)


def parse(data: bytes) -> Node:
    tag, start, end = _read_tlv(data, 0)
    assert end == len(data)
    value = data[start:end]
    if not tag & 0x20:
        return Node(tag, value)
    kids, pos = [], 0
    while pos < len(value):
        stop = _read_tlv(value, pos)[2]
        kids.append(parse(value[pos:stop]))
        pos = stop
    return Node(tag, kids=kids)


def signed_data(response: Node) -> Node:
    return response[1][1][0]  # TimeStampResp > ContentInfo > [0] > SignedData


def signer_info(response: Node) -> Node:
    return signed_data(response)[-1][0]


def algorithm(oid: str, null: bool = True) -> Node:
    """An AlgorithmIdentifier: NULL parameters (digests), or none (ECDSA)."""
    return Node(0x30, kids=[parse(_der_oid(oid))] + ([Node(0x05)] if null else []))


def resign(response: Node, key: ec.EllipticCurvePrivateKey, digest: hashes.HashAlgorithm) -> bytes:
    """The SignerInfo's signature made again, by the TSA's own key, over its signed
    attributes (as a DER SET OF) hashed with ``digest``."""
    info = signer_info(response)
    info[3].kids.sort(key=Node.der)  # type: ignore[union-attr]
    attributes = Node(0x31, kids=info[3].kids).der()
    info.kids[5] = Node(0x04, key.sign(attributes, ec.ECDSA(digest)))  # type: ignore[index]
    return response.der()


def tsa_key(pki: Pki) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_pem_private_key(pki.tsa_key.read_bytes(), None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return key


def openssl_accepts(tmp: Path, token: bytes, root: Path) -> bool:
    (tmp / "token.tsr").write_bytes(token)
    (tmp / "data").write_bytes(DATA)
    token_file, data_file = str(tmp / "token.tsr"), str(tmp / "data")
    done = subprocess.run(
        ["openssl", "ts", "-verify", "-in", token_file, "-data", data_file, "-CAfile", str(root)],
        capture_output=True,
        timeout=60,
    )
    return done.returncode == 0


def rfc3161_client_accepts(token: bytes, pki: Pki) -> bool:
    try:
        rfc3161.check_token(token, DATA, [pki.root])
    except rfc3161.TokenProblem:
        return False
    return True


def unrooted_accepts(token: bytes) -> bool:
    try:
        rfc3161.check_token_unrooted(token, DATA)
    except rfc3161.TokenProblem:
        return False
    return True


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("review-pki"), "review")


@pytest.fixture
def token(pki: Pki) -> bytes:
    request, _ = rfc3161.timestamp_request(DATA)
    good = sign_query(pki, request, der_sort=False)
    assert unrooted_accepts(good) and rfc3161_client_accepts(good, pki)
    return good


# 1. the CMS signature: the rootless check must refuse what OpenSSL refuses ---------
def test_unrooted_check_hashes_the_signed_attributes_as_openssl_does(
    tmp_path: Path, pki: Pki, token: bytes
) -> None:
    """The SignerInfo's signatureAlgorithm is not signed; OpenSSL (PKCS7_signatureVerify,
    used by `openssl ts -verify` and rfc3161-client) hashes the signed attributes with the
    SignerInfo's digestAlgorithm.  check_token_unrooted takes the hash from the unsigned
    signatureAlgorithm instead, so a token whose signature is ECDSA over SHA-512 of the
    attributes, labelled ecdsa-with-SHA512, with digestAlgorithm SHA-256, is kept as
    holding (but for the root) although no verifier will ever accept it, with any root."""
    response = parse(token)
    signer_info(response).kids[4] = algorithm("1.2.840.10045.4.3.4", null=False)  # type: ignore[index]
    changed = resign(response, tsa_key(pki), hashes.SHA512())
    assert not openssl_accepts(tmp_path, changed, pki.root_cert)
    assert not rfc3161_client_accepts(changed, pki)
    assert not unrooted_accepts(changed)


def test_unrooted_check_refuses_a_digest_the_signed_data_does_not_list(
    tmp_path: Path, pki: Pki, token: bytes
) -> None:
    """SignedData.digestAlgorithms (outside the signature) must list the SignerInfo's
    digest: OpenSSL refuses the token otherwise ("unable to find message digest").  Any
    byte-changer can relabel it in a real token; check_token_unrooted does not look, and
    keeps a token that fails `openssl ts -verify` and rfc3161-client with the right root."""
    response = parse(token)
    signed_data(response).kids[1] = Node(0x31, kids=[algorithm("2.16.840.1.101.3.4.2.2")])  # type: ignore[index]
    changed = response.der()
    assert not openssl_accepts(tmp_path, changed, pki.root_cert)
    assert not rfc3161_client_accepts(changed, pki)
    assert not unrooted_accepts(changed)


def test_unrooted_check_requires_the_ess_signing_certificate(
    tmp_path: Path, pki: Pki, token: bytes
) -> None:
    """RFC 3161 section 2.4.2 / RFC 5035: the TSA's SignerInfo MUST carry the ESS
    signingCertificate(V2) attribute naming its certificate; `openssl ts -verify`
    refuses a token without it ("missing signing certificate attribute").
    check_token_unrooted (and check_token: rfc3161-client does not look either) keep it."""
    response = parse(token)
    ess = _der_oid("1.2.840.113549.1.9.16.2.47")  # id-aa-signingCertificateV2
    info = signer_info(response)
    info[3].kids = [a for a in info[3].kids if a[0].der() != ess]  # type: ignore[union-attr]
    changed = resign(response, tsa_key(pki), hashes.SHA256())
    assert not openssl_accepts(tmp_path, changed, pki.root_cert)
    assert not unrooted_accepts(changed)


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _usage(**given: bool) -> x509.KeyUsage:
    flags = dict.fromkeys(
        ("digital_signature", "content_commitment", "key_encipherment", "data_encipherment",
         "key_agreement", "key_cert_sign", "crl_sign", "encipher_only", "decipher_only"),
        False,
    )  # fmt: skip
    return x509.KeyUsage(**{**flags, **given})


def pki_with_signer(
    directory: Path, label: str, usage: x509.KeyUsage, purposes: list[x509.ObjectIdentifier]
) -> Pki:
    """A root and a TSA certificate it issues (valid now, critical EKU ``purposes``,
    critical key usage ``usage``); tokens made as `ts -reply` would (tests/support/tsa.py)."""
    now = datetime.now(UTC)
    base = make_pki(directory, label, eku="none", intermediate=False)  # the cms path
    root_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())

    def issue(
        subject: str,
        public: ec.EllipticCurvePublicKey,
        extensions: list[tuple[x509.ExtensionType, bool]],
    ) -> x509.Certificate:
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(subject))
            .issuer_name(_name(f"{label} root"))
            .public_key(public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=100))
        )
        for extension, critical in extensions:
            builder = builder.add_extension(extension, critical=critical)
        return builder.sign(root_key, hashes.SHA256())

    root = issue(f"{label} root", root_key.public_key(),
                 [(x509.BasicConstraints(ca=True, path_length=None), True),
                  (_usage(key_cert_sign=True, crl_sign=True), True)])  # fmt: skip
    leaf = issue(f"{label} TSA", key.public_key(),
                 [(x509.BasicConstraints(ca=False, path_length=None), True), (usage, True),
                  (x509.ExtendedKeyUsage(purposes), True)])  # fmt: skip
    pem = serialization.Encoding.PEM
    (base.directory / "root.pem").write_bytes(root.public_bytes(pem))
    (base.directory / "tsa.pem").write_bytes(leaf.public_bytes(pem))
    (base.directory / "tsa.key").write_bytes(
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return base


@pytest.mark.parametrize(
    ("usage", "purposes"),
    [
        (_usage(key_cert_sign=True), [ExtendedKeyUsageOID.TIME_STAMPING]),
        (_usage(key_encipherment=True), [ExtendedKeyUsageOID.TIME_STAMPING]),
        (
            _usage(digital_signature=True),
            [ExtendedKeyUsageOID.TIME_STAMPING, ExtendedKeyUsageOID.SERVER_AUTH],
        ),
    ],
    ids=[
        "key-usage-keyCertSign-only",
        "key-usage-keyEncipherment-only",
        "eku-not-only-timeStamping",
    ],
)
def test_unrooted_check_refuses_a_signer_certificate_openssl_finds_unfit(
    tmp_path: Path, usage: x509.KeyUsage, purposes: list[x509.ObjectIdentifier]
) -> None:
    """OpenSSL's time-stamp purpose (X509_check_purpose, in `ts -verify` and in
    rfc3161-client's PKCS7 verification) wants the TSA certificate's key usage, when
    present, to allow digitalSignature/nonRepudiation (and nothing else), and its critical
    EKU to be timeStamping alone (RFC 3161 2.3: "only one instance of EKU ... containing
    only id-kp-timeStamping"; certificates._check_timestamping_usage's docstring says so too).
    check_token_unrooted looks only for timeStamping among the purposes, so it keeps
    tokens that fail with the authority's own root."""
    pki = pki_with_signer(tmp_path, "unfit", usage, purposes)
    request, _ = rfc3161.timestamp_request(DATA)
    token = sign_query(pki, request)
    assert not openssl_accepts(tmp_path, token, pki.root_cert)
    assert not rfc3161_client_accepts(token, pki)
    assert not unrooted_accepts(token)


# 2. an odd answer must be a refusal, never an internal error -------------------------
def _name_of_unknown_string_type(response: Node) -> None:
    """The intermediate certificate's issuer CN as tag 0x0d (not a string type):
    cryptography raises KeyError(13) when the name is first compared."""
    signed_data(response)[3][1][0][3][1][0][1].tag = 0x0D


def _duplicate_extension(response: Node) -> None:
    """The TSA certificate with its key usage extension twice: cryptography raises
    x509.DuplicateExtension (not a ValueError) when the extensions are read."""
    extensions = signed_data(response)[3][0][0][-1][0]
    extensions.kids.append(extensions[1])  # type: ignore[union-attr]


ODD_CERTIFICATES: dict[str, Callable[[Node], None]] = {
    "name-of-unknown-string-type": _name_of_unknown_string_type,
    "duplicate-extension": _duplicate_extension,
}


@pytest.mark.parametrize("odd", ODD_CERTIFICATES)
def test_an_odd_certificate_in_a_token_is_a_token_problem(token: bytes, odd: str) -> None:
    """check_token_unrooted (and check_token) let cryptography's KeyError and
    DuplicateExtension through: they catch ValueError, TypeError and UnsupportedAlgorithm
    only.  Every caller (Timestamper.stamp, check_tokens) expects a TokenProblem."""
    response = parse(token)
    ODD_CERTIFICATES[odd](response)
    changed = response.der()
    with pytest.raises(rfc3161.TokenProblem):
        rfc3161.check_token_unrooted(changed, DATA)
    with pytest.raises(rfc3161.TokenProblem):
        rfc3161.check_token(changed, DATA, [])


class OddTSA(LocalTSA):
    """The local TSA, its every token changed by ``change`` after `openssl ts -reply`."""

    def __init__(self, pki: Pki, change: Callable[[Node], None]) -> None:
        super().__init__(pki)
        self.change = change

    def _answer(self, mode: Mode, body: bytes) -> tuple[int, str, bytes] | None:
        answer = super()._answer(mode, body)
        assert answer is not None
        status, kind, reply = answer
        response = parse(reply)
        self.change(response)
        return status, kind, response.der()


@pytest.mark.parametrize("odd", ODD_CERTIFICATES)
def test_capture_survives_an_authority_whose_token_carries_an_odd_certificate(
    tmp_path: Path, site: FixtureSite, pki: Pki, odd: str
) -> None:
    """The capture is written and signed, then the answer's certificate raises inside
    check_token: capture reports `FAILED ...: internal error: KeyError(13)` and exits 1,
    with no timestamp custody event.  It should be complete (exit 0), the stamp an error,
    as for any authority whose answer does not hold."""
    archive = tmp_path / "archives"
    with OddTSA(pki, ODD_CERTIFICATES[odd]) as tsa:
        out = run("capture", site.url(site.PLAIN), "--archive-dir", str(archive),
                  "--tsa", tsa.url, "--format", "json")  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    summary = json.loads(out.stdout.splitlines()[0])
    assert summary["status"] == "complete"
    (stamp,) = summary["timestamps"]
    assert not stamp["ok"] and stamp["error"]


def test_verify_reports_a_planted_token_with_an_odd_certificate(
    tmp_path: Path, site: FixtureSite, pki: Pki
) -> None:
    """A token file planted in the archive whose certificate makes cryptography raise
    KeyError: `archiver verify` stops with `error: 13` and no report at all.  It should
    report that token as a failed check (exit 1) and everything else as usual."""
    from archiver.trust import timestamp
    from archiver.trust.manifest import signature_path

    archive = tmp_path / "archives"
    assert run("capture", site.url(site.PLAIN), "--archive-dir", str(archive)).returncode == 0
    manifest = next(archive.rglob("*.manifest.json"))
    request, _ = rfc3161.timestamp_request(signature_path(manifest).read_bytes())
    response = parse(sign_query(pki, request, der_sort=False))
    _name_of_unknown_string_type(response)
    timestamp.token_path(manifest, "tsa.example.org").write_bytes(response.der())
    out = run("verify", "--archive-dir", str(archive))
    assert out.returncode == 1
    assert "time-stamp by tsa.example.org" in out.stdout, out.stdout + out.stderr


def _relabel_digest(response: Node) -> None:
    signed_data(response).kids[1] = Node(0x31, kids=[algorithm("2.16.840.1.101.3.4.2.2")])  # type: ignore[index]


def test_capture_does_not_keep_a_token_that_no_root_can_make_hold(
    tmp_path: Path, site: FixtureSite, pki: Pki
) -> None:
    """End to end: an authority whose token lists another digest in SignedData than its
    SignerInfo uses.  capture without --tsa-ca keeps it ("root_checked": false, the
    custody event marked), `archiver timestamp` will then skip that authority as already
    stamped, and `verify --tsa-ca` with the authority's own root fails it.  The token
    should have been refused on receipt (a stamp error), as with --tsa-ca."""
    archive = tmp_path / "archives"
    with OddTSA(pki, _relabel_digest) as tsa:
        out = run("capture", site.url(site.PLAIN), "--archive-dir", str(archive),
                  "--tsa", tsa.url, "--format", "json")  # fmt: skip
    assert out.returncode == 0, out.stderr
    (stamp,) = json.loads(out.stdout.splitlines()[0])["timestamps"]
    judged = run("verify", "--archive-dir", str(archive), "--tsa-ca", str(pki.root_cert))
    assert not stamp["ok"], (stamp, judged.stdout)
    # refused on receipt, so nothing kept fails verify (it did, before the fix)
    assert judged.returncode == 0, judged.stdout


# 3. what is kept must be what verify can accept ---------------------------------------
def test_timestamp_that_cannot_sign_the_mark_does_not_leave_verify_failing(
    tmp_path: Path, site: FixtureSite, pki: Pki
) -> None:
    """`archiver timestamp` run where the key store's key is encrypted and no
    ARCHIVER_KEY_PASSPHRASE is set (custody_signer() is None): the token is kept
    unchecked and the command exits 0 ("kept as received"), but its custody event, and so
    the mark, is unsigned; verify ignores an unsigned mark and then FAILS the capture
    ("does not reach a trusted root", without saying it was kept unchecked).  Either the
    token should not be kept unchecked when the mark cannot be signed (a stamp error,
    exit 1), or verify should pass it as it does a token whose mark is signed."""
    archive = tmp_path / "archives"
    secret = {"ARCHIVER_KEY_PASSPHRASE": "review"}
    assert run("keys", "generate", "--passphrase", env=secret).returncode == 0
    assert run("capture", site.url(site.PLAIN), "--archive-dir", str(archive),
               env=secret).returncode == 0  # fmt: skip
    with LocalTSA(pki) as tsa:
        stamped = run("timestamp", "--archive-dir", str(archive), "--tsa", tsa.url)
    checked = run("verify", "--archive-dir", str(archive))
    assert stamped.returncode == 1 or checked.returncode == 0, stamped.stdout + checked.stdout


def _clock_a_day_fast(key: ec.EllipticCurvePrivateKey) -> Callable[[Node], None]:
    def change(response: Node) -> None:
        content = signed_data(response)[2][1][0]
        tst_info = parse(content.value)
        gen_time = next(k for k in tst_info.kids if k.tag == 0x18)  # type: ignore[union-attr]
        when = datetime.strptime(gen_time.value.decode(), "%Y%m%d%H%M%SZ") + timedelta(days=1)
        gen_time.value = when.strftime("%Y%m%d%H%M%SZ").encode()
        content.value = tst_info.der()
        digest = _der_oid("1.2.840.113549.1.9.4")
        (attribute,) = [a for a in signer_info(response)[3].kids if a[0].der() == digest]  # type: ignore[union-attr]
        h = hashes.Hash(hashes.SHA256())
        h.update(content.value)
        attribute[1][0].value = h.finalize()
        resign(response, key, hashes.SHA256())

    return change


def test_capture_does_not_keep_a_token_from_the_future(
    tmp_path: Path, site: FixtureSite, pki: Pki
) -> None:
    """An authority whose clock runs a day fast: its token is valid in every other way
    (the certificates are valid at its time, the signature holds).  The Timestamper never
    compares the token's time with now nor with the signing time, so capture keeps it
    (here unchecked), and every later `verify` fails the capture ("in the future", until
    that day comes) — the token cannot be dropped either, as the custody log recorded it.
    The check_tokens time rule should apply on receipt, making it a stamp error."""
    archive = tmp_path / "archives"
    with OddTSA(pki, _clock_a_day_fast(tsa_key(pki))) as tsa:
        out = run("capture", site.url(site.PLAIN), "--archive-dir", str(archive),
                  "--tsa", tsa.url, "--format", "json")  # fmt: skip
    assert out.returncode == 0, out.stderr
    (stamp,) = json.loads(out.stdout.splitlines()[0])["timestamps"]
    checked = run("verify", "--archive-dir", str(archive))
    assert not stamp["ok"], f"kept {stamp['token']}; verify: {checked.stdout}"
    assert "is in the future" in stamp["error"]
    # refused on receipt, so verify has no token to fail (it did, before the fix)
    assert checked.returncode == 0 and "is in the future" not in checked.stdout, checked.stdout
