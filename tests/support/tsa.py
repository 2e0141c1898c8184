"""A real RFC 3161 Time-Stamp Authority on loopback for tests (no mocking).

``make_pki`` writes a real certificate hierarchy (root CA, optional intermediate CA,
TSA leaf; ECDSA P-256 / SHA-256) made with ``cryptography``; ``LocalTSA`` answers
``application/timestamp-query`` POSTs on ``127.0.0.1:<ephemeral port>`` with tokens
produced by the ``openssl`` CLI.

Usage::

    pki = make_pki(tmp_path)
    with LocalTSA(pki) as tsa:
        token_reply = post(tsa.url, query_der)   # signed by `openssl ts -reply`
        tsa.mode = "wrong-nonce"                  # next answer is a valid token, other nonce
    root = pki.root                               # trust anchor, a cryptography Certificate

Signing engines: ``openssl ts -reply`` refuses a signer certificate whose extended
key usage is not exactly a *critical* ``timeStamping`` (``X509_check_purpose``), so
for PKIs made with ``eku`` other than ``"critical"`` the token is built the way
``ts -reply`` would (TSTInfo in DER, then ``openssl cms -sign -cades`` for a CMS
SignedData with an ESS signingCertificateV2 attribute).  Every other property of
those tokens is valid, so a verifier can only fail them on the EKU.

Certificate order: ``ts -reply`` writes the token's ``certificates`` SET OF in
insertion order (signer first), which with an intermediate is not DER order, and
rfc3161-client then fails to parse the reply (``InvalidSetOrdering``); archiver
re-sorts a copy for parsing.  ``LocalTSA`` serves OpenSSL's bytes as they are by
default, as a real OpenSSL-based TSA would; ``der_sort=True`` re-sorts the set (it is
outside the signature).
"""

from __future__ import annotations

import datetime
import secrets
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import ClassVar, Literal
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = [
    "MODES",
    "OTHER_POLICY_OID",
    "POLICY_OID",
    "EkuKind",
    "LocalTSA",
    "Mode",
    "Pki",
    "der_sort_certificates",
    "make_pki",
    "sign_query",
    "status_only_response",
]

EkuKind = Literal["critical", "noncritical", "none", "server"]
Mode = Literal[
    "ok",
    "http-error",
    "rejection",
    "garbage",
    "wrong-nonce",
    "wrong-imprint",
    "bad-signature",
    "slow",
]
MODES: tuple[Mode, ...] = (
    "ok",
    "http-error",
    "rejection",
    "garbage",
    "wrong-nonce",
    "wrong-imprint",
    "bad-signature",
    "slow",
)

POLICY_OID = "1.2.3.4.1"
"""The TSA policy every token of this module carries (``default_policy``)."""
OTHER_POLICY_OID = "1.2.3.4.5"
"""A second policy the TSA accepts when a query asks for it (``other_policies``)."""

GARBAGE_BODY = b"this is not a DER TimeStampResp\n"
REJECTION_TEXT = "request rejected by the local test TSA"

_OPENSSL_TIMEOUT = 30.0


# --------------------------------------------------------------------------- #
# PKI
# --------------------------------------------------------------------------- #


@dataclass(frozen=True)
class Pki:
    """Paths of a test PKI written by :func:`make_pki` (all PEM unless noted)."""

    directory: Path
    name: str
    eku: EkuKind
    expired: bool
    root_cert: Path
    intermediate_cert: Path | None
    tsa_cert: Path
    tsa_key: Path
    chain_pem: Path
    """TSA cert + intermediate (if any): ``openssl ts -verify -untrusted`` input."""
    extra_certs_pem: Path | None
    """Intermediate only (or ``None``): what ``ts -reply -chain`` adds to the token
    besides the signer cert (passing the TSA cert there too would duplicate it)."""
    openssl_conf: Path
    """Config with a ``[tsa]`` section for ``openssl ts -reply``."""
    serial_file: Path

    @property
    def root(self) -> x509.Certificate:
        """The root CA certificate (the trust anchor)."""
        return _load_cert(self.root_cert)

    @property
    def intermediate(self) -> x509.Certificate | None:
        """The intermediate CA certificate, if the PKI has one."""
        return None if self.intermediate_cert is None else _load_cert(self.intermediate_cert)

    @property
    def tsa(self) -> x509.Certificate:
        """The TSA (signer) certificate."""
        return _load_cert(self.tsa_cert)

    @property
    def ts_reply_accepts_signer(self) -> bool:
        """Whether ``openssl ts -reply`` accepts this signer (EKU critical timeStamping)."""
        return self.eku == "critical"


def _load_cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "archiver tests"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _ca_cert(
    subject: x509.Name,
    key: ec.EllipticCurvePrivateKey,
    issuer: x509.Name,
    issuer_key: ec.EllipticCurvePrivateKey,
    *,
    path_length: int | None,
    now: datetime.datetime,
) -> x509.Certificate:
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=3 * 365))
        .not_valid_after(now + datetime.timedelta(days=10 * 365))
        .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    if issuer_key is not key:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
            critical=False,
        )
    return builder.sign(issuer_key, hashes.SHA256())


def _write_cert(path: Path, *certs: x509.Certificate) -> Path:
    path.write_bytes(b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs))
    return path


def make_pki(
    directory: Path,
    name: str = "tsa",
    *,
    eku: EkuKind = "critical",
    expired: bool = False,
    intermediate: bool = True,
    tsa_lifetime: datetime.timedelta | None = None,
) -> Pki:
    """Create root CA [-> intermediate CA] -> TSA leaf under ``directory/name``.

    ``eku``: ``"critical"`` (critical timeStamping, the correct case),
    ``"noncritical"`` (timeStamping, not critical), ``"none"`` (no EKU extension),
    ``"server"`` (critical serverAuth only).  ``expired``: the leaf was valid from
    2 years ago to 1 year ago (the CAs are valid now).  ``tsa_lifetime``: the leaf
    stops being valid that long from now (a certificate that expires during a test).
    """
    if eku not in ("critical", "noncritical", "none", "server"):
        raise ValueError(f"unknown eku kind {eku!r}")
    out = Path(directory) / name
    out.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC).replace(microsecond=0)

    root_key = ec.generate_private_key(ec.SECP256R1())
    root_name = _name(f"{name} Test Root CA")
    root = _ca_cert(root_name, root_key, root_name, root_key, path_length=None, now=now)
    issuer_name, issuer_key = root_name, root_key
    inter: x509.Certificate | None = None
    if intermediate:
        inter_key = ec.generate_private_key(ec.SECP256R1())
        inter_name = _name(f"{name} Test Intermediate CA")
        inter = _ca_cert(inter_name, inter_key, root_name, root_key, path_length=0, now=now)
        issuer_name, issuer_key = inter_name, inter_key

    tsa_key = ec.generate_private_key(ec.SECP256R1())
    if expired:
        not_before = now - datetime.timedelta(days=2 * 365)
        not_after = now - datetime.timedelta(days=365)
    else:
        not_before = now - datetime.timedelta(days=1)
        not_after = now + (tsa_lifetime or datetime.timedelta(days=5 * 365))
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(f"{name} Test TSA"))
        .issuer_name(issuer_name)
        .public_key(tsa_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(tsa_key.public_key()), critical=False
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
            critical=False,
        )
    )
    if eku in ("critical", "noncritical"):
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]),
            critical=eku == "critical",
        )
    elif eku == "server":
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=True
        )
    tsa = builder.sign(issuer_key, hashes.SHA256())

    root_path = _write_cert(out / "root.pem", root)
    inter_path = _write_cert(out / "intermediate.pem", inter) if inter is not None else None
    tsa_path = _write_cert(out / "tsa.pem", tsa)
    key_path = out / "tsa.key"
    key_path.write_bytes(
        tsa_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    chain_path = _write_cert(out / "chain.pem", *([tsa] + ([inter] if inter is not None else [])))
    serial_path = out / "tsa_serial"
    serial_path.write_text("01\n")
    conf_path = out / "openssl-ts.cnf"
    conf_path.write_text(
        "[ tsa ]\n"
        "default_tsa = tsa_config1\n"
        "\n"
        "[ tsa_config1 ]\n"
        f"serial = {serial_path}\n"
        "crypto_device = builtin\n"
        f"signer_cert = {tsa_path}\n"
        f"signer_key = {key_path}\n"
        + (f"certs = {inter_path}\n" if inter_path is not None else "")
        + "signer_digest = sha256\n"
        f"default_policy = {POLICY_OID}\n"
        f"other_policies = {OTHER_POLICY_OID}\n"
        "digests = sha256, sha384, sha512\n"
        "accuracy = secs:1\n"
        "clock_precision_digits = 0\n"
        "ordering = no\n"
        "tsa_name = yes\n"
        "ess_cert_id_chain = no\n"
        "ess_cert_id_alg = sha256\n"
    )
    return Pki(
        directory=out,
        name=name,
        eku=eku,
        expired=expired,
        root_cert=root_path,
        intermediate_cert=inter_path,
        tsa_cert=tsa_path,
        tsa_key=key_path,
        chain_pem=chain_path,
        extra_certs_pem=inter_path,
        openssl_conf=conf_path,
        serial_file=serial_path,
    )


# --------------------------------------------------------------------------- #
# Minimal DER (single-byte tags only: all TimeStampReq/TSTInfo fields are)
# --------------------------------------------------------------------------- #


def _tlv(tag: int, value: bytes) -> bytes:
    n = len(value)
    if n < 0x80:
        return bytes([tag, n]) + value
    length = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(length)]) + length + value


def _read_tlv(data: bytes, pos: int) -> tuple[int, int, int]:
    """Return ``(tag, value_start, value_end)`` of the TLV at ``pos``."""
    if pos + 2 > len(data):
        raise ValueError("truncated DER")
    tag = data[pos]
    if tag & 0x1F == 0x1F:
        raise ValueError("multi-byte DER tags are not supported")
    first = data[pos + 1]
    pos += 2
    if first < 0x80:
        length = first
    else:
        count = first & 0x7F
        if count == 0 or count > 4 or pos + count > len(data):
            raise ValueError("bad DER length")
        length = int.from_bytes(data[pos : pos + count], "big")
        pos += count
    if pos + length > len(data):
        raise ValueError("truncated DER")
    return tag, pos, pos + length


def _children(value: bytes) -> list[tuple[int, bytes, bytes]]:
    """Split a constructed value into ``(tag, value, whole_tlv)`` items."""
    out: list[tuple[int, bytes, bytes]] = []
    pos = 0
    while pos < len(value):
        tag, start, end = _read_tlv(value, pos)
        out.append((tag, value[start:end], value[pos:end]))
        pos = end
    return out


def _der_int(n: int) -> bytes:
    return _tlv(0x02, n.to_bytes(n.bit_length() // 8 + 1, "big", signed=True))


def _der_oid(dotted: str) -> bytes:
    arcs = [int(a) for a in dotted.split(".")]
    body = bytearray()
    for arc in [40 * arcs[0] + arcs[1], *arcs[2:]]:
        chunk = [arc & 0x7F]
        arc >>= 7
        while arc:
            chunk.append(0x80 | (arc & 0x7F))
            arc >>= 7
        body.extend(reversed(chunk))
    return _tlv(0x06, bytes(body))


def _oid_str(value: bytes) -> str:
    arcs: list[int] = []
    acc = 0
    for byte in value:
        acc = (acc << 7) | (byte & 0x7F)
        if not byte & 0x80:
            arcs.append(acc)
            acc = 0
    if not arcs:
        raise ValueError("empty OID")
    first = min(arcs[0] // 40, 2)
    return ".".join(str(a) for a in [first, arcs[0] - 40 * first, *arcs[1:]])


_DIGEST_OIDS = {  # the `digests` the [tsa] config accepts
    "2.16.840.1.101.3.4.2.1": 32,  # sha256
    "2.16.840.1.101.3.4.2.2": 48,  # sha384
    "2.16.840.1.101.3.4.2.3": 64,  # sha512
}


@dataclass(frozen=True)
class _Query:
    """The fields of a DER ``TimeStampReq`` (RFC 3161 section 2.4.1)."""

    version: bytes  # whole TLVs below, re-emitted as received
    hash_alg: bytes
    digest: bytes
    policy: bytes | None
    nonce: int | None
    cert_req: bool
    extensions: bytes | None

    @classmethod
    def parse(cls, der: bytes) -> _Query:
        tag, start, end = _read_tlv(der, 0)
        if tag != 0x30 or end != len(der):
            raise ValueError("TimeStampReq is not a single DER SEQUENCE")
        items = _children(der[start:end])
        if len(items) < 2 or items[0][0] != 0x02 or items[1][0] != 0x30:
            raise ValueError("TimeStampReq lacks version/messageImprint")
        imprint = _children(items[1][1])
        if len(imprint) != 2 or imprint[0][0] != 0x30 or imprint[1][0] != 0x04:
            raise ValueError("bad MessageImprint")
        policy = nonce = extensions = None
        cert_req = False
        for tag, value, whole in items[2:]:
            if tag == 0x06:
                policy = whole
            elif tag == 0x02:
                nonce = int.from_bytes(value, "big", signed=True)
            elif tag == 0x01:
                cert_req = value != b"\x00"
            elif tag == 0xA0:
                extensions = whole
            else:
                raise ValueError(f"unexpected TimeStampReq field tag 0x{tag:02x}")
        return cls(
            version=items[0][2],
            hash_alg=imprint[0][2],
            digest=imprint[1][1],
            policy=policy,
            nonce=nonce,
            cert_req=cert_req,
            extensions=extensions,
        )

    @property
    def hash_oid(self) -> str:
        tag, value, _ = _children(_children(self.hash_alg)[0][1])[0]
        if tag != 0x06:
            raise ValueError("bad AlgorithmIdentifier")
        return _oid_str(value)

    @property
    def message_imprint(self) -> bytes:
        return _tlv(0x30, self.hash_alg + _tlv(0x04, self.digest))

    def to_der(self) -> bytes:
        body = self.version + self.message_imprint
        if self.policy is not None:
            body += self.policy
        if self.nonce is not None:
            body += _der_int(self.nonce)
        if self.cert_req:
            body += b"\x01\x01\xff"
        if self.extensions is not None:
            body += self.extensions
        return _tlv(0x30, body)


# --------------------------------------------------------------------------- #
# Replies
# --------------------------------------------------------------------------- #

_GRANTED, _REJECTION = 0, 2
_BAD_ALG, _BAD_REQUEST, _UNACCEPTED_POLICY, _UNACCEPTED_EXTENSION = 0, 2, 15, 16
_SERIAL_LOCK = threading.Lock()  # `serial` files are read-modify-written


def status_only_response(
    status: int, text: str | None = None, fail_bit: int | None = None
) -> bytes:
    """A DER ``TimeStampResp`` with ``PKIStatusInfo`` only (no token)."""
    info = _der_int(status)
    if text is not None:
        info += _tlv(0x30, _tlv(0x0C, text.encode()))  # PKIFreeText: SEQUENCE OF UTF8String
    if fail_bit is not None:  # PKIFailureInfo: DER named-bit BIT STRING
        bits = bytearray(fail_bit // 8 + 1)
        bits[fail_bit // 8] = 0x80 >> (fail_bit % 8)
        info += _tlv(0x03, bytes([7 - fail_bit % 8]) + bytes(bits))
    return _tlv(0x30, _tlv(0x30, info))


def _run(args: list[str]) -> None:
    proc = subprocess.run(args, capture_output=True, timeout=_OPENSSL_TIMEOUT, check=False)
    if proc.returncode != 0:
        raise RuntimeError(
            f"{' '.join(args[:3])} failed ({proc.returncode}): "
            + proc.stderr.decode(errors="replace").strip()
        )


def _reply_ts(pki: Pki, query_der: bytes, work: Path) -> bytes:
    """``openssl ts -reply`` (the signer cert is included when the query sets certReq)."""
    query, reply = work / "query.tsq", work / "reply.tsr"
    query.write_bytes(query_der)
    args = ["openssl", "ts", "-reply", "-config", str(pki.openssl_conf), "-queryfile", str(query)]
    args += ["-signer", str(pki.tsa_cert), "-inkey", str(pki.tsa_key), "-out", str(reply)]
    if pki.extra_certs_pem is not None:
        args += ["-chain", str(pki.extra_certs_pem)]
    with _SERIAL_LOCK:
        _run(args)
    return reply.read_bytes()


def _next_serial(path: Path) -> int:
    with _SERIAL_LOCK:
        serial = int(path.read_text().strip() or "1", 16)
        path.write_text(f"{serial + 1:02X}\n")
    return serial


def _reply_cms(pki: Pki, query: _Query, work: Path) -> bytes:
    """What ``ts -reply`` makes, for signers it refuses: TSTInfo + ``openssl cms -sign -cades``."""
    if _DIGEST_OIDS.get(query.hash_oid) != len(query.digest):
        return status_only_response(
            _REJECTION, "Message digest algorithm is not supported.", _BAD_ALG
        )
    policy = query.policy or _der_oid(POLICY_OID)
    if policy not in (_der_oid(POLICY_OID), _der_oid(OTHER_POLICY_OID)):
        return status_only_response(
            _REJECTION, "Requested policy is not supported.", _UNACCEPTED_POLICY
        )
    if query.extensions is not None:
        return status_only_response(_REJECTION, "Unsupported extension.", _UNACCEPTED_EXTENSION)
    gen_time = datetime.datetime.now(datetime.UTC).strftime("%Y%m%d%H%M%SZ").encode()
    tst_info = _der_int(1) + policy + query.message_imprint
    tst_info += _der_int(_next_serial(pki.serial_file)) + _tlv(0x18, gen_time)
    tst_info += _tlv(0x30, _der_int(1))  # accuracy: 1 s; ordering: DEFAULT FALSE, omitted
    if query.nonce is not None:
        tst_info += _der_int(query.nonce)
    directory_name = _tlv(0xA4, pki.tsa.subject.public_bytes())  # GeneralName [4] Name
    tst_info = _tlv(0x30, tst_info + _tlv(0xA0, directory_name))  # tsa [0] (tsa_name = yes)
    (work / "tstinfo.der").write_bytes(tst_info)
    args = ["openssl", "cms", "-sign", "-binary", "-nodetach", "-cades", "-nosmimecap"]
    args += ["-md", "sha256", "-econtent_type", "id-smime-ct-TSTInfo", "-outform", "DER"]
    args += ["-in", str(work / "tstinfo.der"), "-out", str(work / "token.der")]
    args += ["-signer", str(pki.tsa_cert), "-inkey", str(pki.tsa_key)]
    if not query.cert_req:
        args.append("-nocerts")
    elif pki.extra_certs_pem is not None:
        args += ["-certfile", str(pki.extra_certs_pem)]
    _run(args)
    return _tlv(0x30, _tlv(0x30, _der_int(_GRANTED)) + (work / "token.der").read_bytes())


def _enter(data: bytes, pos: int, tag: int) -> tuple[int, int]:
    found, start, end = _read_tlv(data, pos)
    if found != tag:
        raise ValueError(f"expected DER tag 0x{tag:02x}, found 0x{found:02x}")
    return start, end


def der_sort_certificates(response: bytes) -> bytes:
    """Put the token's ``SignedData.certificates`` SET OF in DER order.

    ``openssl ts -reply`` (PKCS7 code) writes that SET in insertion order, signer
    first; with an intermediate this is usually not DER order and rfc3161-client's
    strict parser rejects the reply (``ParseError { kind: InvalidSetOrdering }``).
    The set is outside the signature, so sorting it keeps the token valid.
    """
    _, end = _enter(response, 0, 0x30)  # TimeStampResp
    status_start = _read_tlv(response, 0)[1]
    token = _read_tlv(response, status_start)[2]  # after PKIStatusInfo
    if token >= end:
        return response  # no token
    pos = _enter(response, token, 0x30)[0]  # ContentInfo
    pos = _read_tlv(response, pos)[2]  # after contentType
    pos = _enter(response, pos, 0xA0)[0]  # [0] EXPLICIT content
    pos, signed_end = _enter(response, pos, 0x30)  # SignedData
    while pos < signed_end:
        tag, start, stop = _read_tlv(response, pos)
        if tag == 0xA0:  # certificates [0] IMPLICIT SET OF
            certs = sorted(whole for _, _, whole in _children(response[start:stop]))
            return response[:start] + b"".join(certs) + response[stop:]
        pos = stop
    return response


def sign_query(pki: Pki, query_der: bytes, *, der_sort: bool = True) -> bytes:
    """A DER ``TimeStampResp`` for ``query_der``, signed by ``pki``'s TSA.

    ``der_sort=False`` keeps ``openssl ts -reply``'s own certificate order.
    """
    with tempfile.TemporaryDirectory(prefix="tsa-") as tmp:
        if not pki.ts_reply_accepts_signer:
            return _reply_cms(pki, _Query.parse(query_der), Path(tmp))  # CMS sorts the SET
        reply = _reply_ts(pki, query_der, Path(tmp))
        return der_sort_certificates(reply) if der_sort else reply


# --------------------------------------------------------------------------- #
# HTTP server
# --------------------------------------------------------------------------- #


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, tsa: LocalTSA) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.tsa = tsa

    def handle_error(self, request: object, client_address: object) -> None:
        if isinstance(sys.exc_info()[1], OSError):
            return  # the client hung up (a timeout test, typically): expected
        super().handle_error(request, client_address)  # type: ignore[arg-type]


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _send(self, status: int, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        self._send(405, "text/plain", b"POST an application/timestamp-query\n")

    def do_POST(self) -> None:
        tsa = self.server.tsa
        if urlsplit(self.path).path != tsa.path:
            self._send(404, "text/plain", b"not found\n")
            return
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        mode = tsa.mode
        with tsa._lock:
            tsa.requests.append(body)
        try:
            answer = tsa._answer(mode, body)
        except Exception as exc:
            with tsa._lock:
                tsa.errors.append(f"{type(exc).__name__}: {exc}")
            answer = (500, "text/plain", f"local TSA failure: {exc}\n".encode())
        if answer is None:  # aborted "slow" answer: hang up
            self.close_connection = True
            return
        self._send(*answer)


class LocalTSA:
    """A threaded RFC 3161 TSA on ``127.0.0.1:<ephemeral>``; see the module docstring.

    ``mode`` (changeable between requests): ``"ok"``, ``"http-error"`` (500),
    ``"rejection"`` (status 2, no token), ``"garbage"`` (200, not DER),
    ``"wrong-nonce"`` / ``"wrong-imprint"`` (valid signed token for another nonce /
    message imprint), ``"bad-signature"`` (the token for the request, its last byte, in
    the TSA's CMS signature, changed), ``"slow"`` (answers "ok" after ``slow_seconds``; on exit the
    pending request is dropped without an answer, so exit never waits for it).
    ``der_sort``: see the module docstring.  Internal failures are answered with
    HTTP 500 and recorded in ``errors``.
    """

    CONTENT_TYPE: ClassVar[str] = "application/timestamp-reply"

    def __init__(
        self,
        pki: Pki,
        mode: Mode = "ok",
        *,
        slow_seconds: float = 30.0,
        path: str = "/tsr",
        der_sort: bool = False,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}")
        self.pki = pki
        self.mode: Mode = mode
        self.slow_seconds = slow_seconds
        self.path = path
        self.der_sort = der_sort
        """Sort the token's certificates into DER order (see ``der_sort_certificates``)."""
        self.requests: list[bytes] = []
        """Every POST body received, in order (whatever the mode)."""
        self.replies: list[bytes] = []
        """Every 200 ``application/timestamp-reply`` body sent, in order."""
        self.errors: list[str] = []
        """Internal failures (answered with HTTP 500); a test may assert it stays empty."""
        self._lock = threading.Lock()
        self._abort = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("LocalTSA is not running")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.path}"

    def start(self) -> LocalTSA:
        if self._server is not None:
            raise RuntimeError("LocalTSA is already running")
        self._abort.clear()
        self._server = _Server(self)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"LocalTSA:{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._abort.set()  # wakes a "slow" handler at once
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(5)
        self._server = self._thread = None

    def __enter__(self) -> LocalTSA:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _answer(self, mode: Mode, body: bytes) -> tuple[int, str, bytes] | None:
        if mode == "http-error":
            return 500, "text/plain", b"local TSA: simulated internal error\n"
        if mode == "garbage":
            return 200, self.CONTENT_TYPE, GARBAGE_BODY
        if mode == "rejection":
            reply = status_only_response(_REJECTION, REJECTION_TEXT, _BAD_REQUEST)
        elif mode == "slow":
            if self._abort.wait(self.slow_seconds):
                return None
            reply = sign_query(self.pki, body, der_sort=self.der_sort)
        elif mode in ("wrong-nonce", "wrong-imprint"):
            query = _Query.parse(body)
            if mode == "wrong-nonce":
                nonce = query.nonce
                while nonce == query.nonce:
                    nonce = secrets.randbits(64)
                query = replace(query, nonce=nonce)
            else:
                query = replace(query, digest=bytes(b ^ 0xFF for b in query.digest))
            reply = sign_query(self.pki, query.to_der(), der_sort=self.der_sort)
        elif mode == "bad-signature":
            reply = sign_query(self.pki, body, der_sort=self.der_sort)
            reply = reply[:-1] + bytes([reply[-1] ^ 0x01])
        else:
            reply = sign_query(self.pki, body, der_sort=self.der_sort)
        with self._lock:
            self.replies.append(reply)
        return 200, self.CONTENT_TYPE, reply
