"""All of archiver's cryptography: Ed25519 signing keys, signatures, fingerprints,
and RFC 3161 time-stamp tokens (requests, and checking them offline).

Keys live in a key store, ``~/.config/archiver/keys/`` (``$XDG_CONFIG_HOME`` is
honoured) unless a key file is named with ``--key`` or ``ARCHIVER_KEY``:

- ``<fingerprint>.key.pem``: the private key, PKCS#8 PEM, mode 0600, encrypted
  when a passphrase is given (``BEGIN ENCRYPTED PRIVATE KEY``);
- ``<fingerprint>.pub.pem``: its public key, SubjectPublicKeyInfo PEM;
- ``default``: the fingerprint of the key used when none is named (the first key
  generated becomes the default).

The fingerprint is the SHA-256, in lowercase hex, of the raw 32-byte public key.
A signature is the raw 64-byte Ed25519 signature over the exact bytes signed, so
``openssl pkeyutl -verify -pubin -inkey KEY.pub.pem -rawin -in FILE -sigfile FILE.sig``
checks it without any of our code.  Private keys are never logged, printed or
written anywhere but their own file.
"""

from __future__ import annotations

import errno
import hashlib
import os
import secrets
import stat
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.x509.oid import ExtendedKeyUsageOID, ExtensionOID

from archiver.core.atomic import flocked, fsync_dir, rename_no_replace

PublicKey = Ed25519PublicKey  # what verifies a signature (other modules name it so)

KEY_SUFFIX = ".key.pem"
_PEM_LIMIT = 64 * 1024
PUB_SUFFIX = ".pub.pem"
DEFAULT_FILE = "default"


class KeyProblem(Exception):
    """A key cannot be used: missing, unreadable, encrypted with another passphrase,
    or not an Ed25519 key.  The message names the file."""


@dataclass(frozen=True)
class KeyInfo:
    """A key in a store (or named by path): where it is and who it is."""

    fingerprint: str
    path: Path  # the private key file
    encrypted: bool
    default: bool = False

    @property
    def public_path(self) -> Path:
        return public_path_for(self.path)


def default_store() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "archiver" / "keys"


def public_path_for(private: Path) -> Path:
    name = private.name.removesuffix(KEY_SUFFIX).removesuffix(".pem")
    return private.with_name(name + PUB_SUFFIX)


def fingerprint(public: Ed25519PublicKey) -> str:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()


def public_pem(public: Ed25519PublicKey) -> bytes:
    return public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _write_new(path: Path, data: bytes, mode: int) -> None:
    """Create ``path`` with ``mode`` from the start (never briefly readable by others),
    whole or not at all, and never over an existing file."""
    temp = path.with_name(f".tmp-{secrets.token_hex(6)}-{path.name}")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        os.fchmod(fd, mode)  # the umask may have narrowed it; never widened
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        rename_no_replace(temp, path)
    finally:
        temp.unlink(missing_ok=True)
    fsync_dir(path.parent)


def generate(store: Path, passphrase: str | None = None, *, path: Path | None = None) -> KeyInfo:
    """Create a new Ed25519 key in ``store`` (or at ``path``); the first becomes the default."""
    key = Ed25519PrivateKey.generate()
    fp = fingerprint(key.public_key())
    encryption: serialization.KeySerializationEncryption = serialization.NoEncryption()
    if passphrase:
        encryption = serialization.BestAvailableEncryption(passphrase.encode("utf-8"))
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )
    target = path or store / f"{fp}{KEY_SUFFIX}"
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    if target.exists():
        raise KeyProblem(f"{target} exists; refusing to overwrite a key")
    _write_new(target, pem, 0o600)
    _write_new(public_path_for(target), public_pem(key.public_key()), 0o644)
    is_default = False
    if path is None and not (store / DEFAULT_FILE).exists():
        _write_new(store / DEFAULT_FILE, (fp + "\n").encode(), 0o644)
        is_default = True
    return KeyInfo(fp, target, bool(passphrase), is_default)


def ensure_key(store: Path, passphrase: str | None = None) -> KeyInfo | None:
    """Create the store's first key unless it has one; the key created, or None.

    Two first captures started at once must not both create a default key: the
    store is locked while one looks and creates.
    """
    store.mkdir(parents=True, exist_ok=True, mode=0o700)
    with flocked(store / ".lock", exclusive=True):
        if list_keys(store):
            return None
        return generate(store, passphrase)


def is_encrypted(path: Path) -> bool:
    try:
        head = path.read_bytes()[:64]
    except OSError as exc:
        raise KeyProblem(f"cannot read the key {path}: {exc.strerror or exc}") from exc
    return b"ENCRYPTED" in head


def load_private(path: Path, passphrase: str | None) -> Ed25519PrivateKey:
    """The private key in ``path``; any problem is a :class:`KeyProblem` naming the file."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise KeyProblem(f"cannot read the key {path}: {exc.strerror or exc}") from exc
    encrypted = b"ENCRYPTED" in data[:64]
    if encrypted and not passphrase:
        raise KeyProblem(
            f"the key {path} is encrypted: give its passphrase (prompt, or ARCHIVER_KEY_PASSPHRASE)"
        )
    secret = passphrase.encode("utf-8") if encrypted and passphrase else None
    try:
        key = serialization.load_pem_private_key(data, password=secret)
    except (ValueError, TypeError) as exc:
        if encrypted:
            raise KeyProblem(f"wrong passphrase for the key {path}") from exc
        raise KeyProblem(f"{path} is not a PEM private key") from exc
    except UnsupportedAlgorithm as exc:
        raise KeyProblem(f"{path} holds a key of an unsupported type") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyProblem(f"{path} is not an Ed25519 key ({type(key).__name__})")
    return key


def load_public(path: Path) -> Ed25519PublicKey:
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):  # a FIFO or a device would hang or flood us
            raise OSError(errno.EINVAL, "not a regular file")
        if info.st_size > _PEM_LIMIT:
            raise OSError(errno.EFBIG, "too large for a public key")
        key = serialization.load_pem_public_key(path.read_bytes())
    except OSError as exc:
        raise KeyProblem(f"cannot read the public key {path}: {exc.strerror or exc}") from exc
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise KeyProblem(f"{path} is not a PEM public key") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise KeyProblem(f"{path} is not an Ed25519 public key")
    return key


def list_keys(store: Path) -> list[KeyInfo]:
    """The keys of a store, default first."""
    if not store.is_dir():
        return []
    default = _default_fingerprint(store)
    keys = []
    for path in sorted(store.glob(f"*{KEY_SUFFIX}")):
        pub = public_path_for(path)
        fp = fingerprint(load_public(pub)) if pub.exists() else path.name.removesuffix(KEY_SUFFIX)
        keys.append(KeyInfo(fp, path, is_encrypted(path), fp == default))
    return sorted(keys, key=lambda k: (not k.default, k.fingerprint))


def _default_fingerprint(store: Path) -> str | None:
    try:
        return (store / DEFAULT_FILE).read_text("utf-8").strip() or None
    except OSError:
        return None


def find_key(
    store: Path, key_path: Path | None = None, fingerprint_prefix: str | None = None
) -> KeyInfo:
    """The key to use: a named file, else a fingerprint (or unique prefix) in the store,
    else the store's default.  A missing or ambiguous key is a :class:`KeyProblem`."""
    if key_path is not None:
        if not key_path.is_file():
            raise KeyProblem(f"no key file {key_path}")
        pub = public_path_for(key_path)
        fp = fingerprint(load_public(pub)) if pub.exists() else ""
        return KeyInfo(fp, key_path, is_encrypted(key_path))
    keys = list_keys(store)
    if fingerprint_prefix:
        prefix = fingerprint_prefix.lower()
        found = [k for k in keys if k.fingerprint.startswith(prefix)]
        if len(found) != 1:
            what = "no key" if not found else "more than one key"
            raise KeyProblem(f"{what} in {store} has a fingerprint starting with {prefix!r}")
        return found[0]
    defaults = [k for k in keys if k.default]
    if defaults:
        return defaults[0]
    if len(keys) == 1:
        return keys[0]
    if not keys:
        raise KeyProblem(f"no signing key in {store}; create one with `archiver keys generate`")
    raise KeyProblem(f"several keys in {store} and no default; name one with --key")


def sign(key: Ed25519PrivateKey, data: bytes) -> bytes:
    """The raw 64-byte Ed25519 signature of ``data``."""
    return key.sign(data)


def signature_holds(public: Ed25519PublicKey, signature: bytes, data: bytes) -> bool:
    try:
        public.verify(signature, data)
    except InvalidSignature:
        return False
    return True


@dataclass(frozen=True)
class Signer:
    """A private key loaded for signing, and who it is."""

    key: Ed25519PrivateKey
    fingerprint: str

    @classmethod
    def load(cls, path: Path, passphrase: str | None) -> Signer:
        return cls.of(load_private(path, passphrase))

    @classmethod
    def of(cls, key: Ed25519PrivateKey) -> Signer:
        return cls(key, fingerprint(key.public_key()))

    def sign(self, data: bytes) -> bytes:
        return sign(self.key, data)

    def publish(self, path: Path) -> None:
        """Put the public key at ``path`` (an archive's ``keys/<fingerprint>.pub.pem``).

        An existing file is left alone if it holds this key; if it holds another, that
        is a :class:`KeyProblem` (the archive's copy is never replaced).
        """
        pem = public_pem(self.key.public_key())
        if path.exists():
            try:
                present = fingerprint(load_public(path))
            except KeyProblem:
                present = None
            if present != self.fingerprint:
                raise KeyProblem(f"{path} exists and does not hold the key {self.fingerprint}")
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            _write_new(path, pem, 0o644)
        except FileExistsError:  # another capture published it at the same moment
            self.publish(path)


# RFC 3161 trusted timestamps ---------------------------------------------------------
# A time-stamp token is a CMS SignedData by a time-stamping authority (TSA) over a
# TSTInfo: the hash of what it stamps (the message imprint), the time, a serial
# number and the nonce of the request.  archiver stamps the raw bytes of a manifest's
# signature.  rfc3161-client (Trail of Bits, used by sigstore) parses tokens and checks
# the CMS signature; the certificate chain, its validity at the token's time and the
# timeStamping key usage are checked here too, with nothing trusted but the roots given.

_IMPRINT_HASHES = {
    "2.16.840.1.101.3.4.2.1": ("sha256", hashlib.sha256),
    "2.16.840.1.101.3.4.2.2": ("sha384", hashlib.sha384),
    "2.16.840.1.101.3.4.2.3": ("sha512", hashlib.sha512),
}
_MAX_CHAIN = 8


class TokenProblem(Exception):
    """A time-stamp token is refused, unreadable, or does not verify; the message says why."""


class UntrustedChain(TokenProblem):
    """The token's certificate chain does not reach one of the roots given.  Raised only
    once the imprint, the nonce and the signer's key usage hold (the CMS signature is
    then not checked yet: :func:`check_token_unrooted` checks it without a root)."""


@dataclass(frozen=True)
class TokenInfo:
    """What a time-stamp token says (read, not yet trusted)."""

    time: datetime
    serial: int
    policy: str
    nonce: int | None
    imprint_algorithm: str
    imprint: bytes
    accuracy: float | None  # seconds
    authority: str | None  # the TSA's name in the token, if it gives one
    certificates: tuple[x509.Certificate, ...]  # those the token carries
    signer_issuer: x509.Name
    signer_serial: int


def timestamp_request(data: bytes) -> tuple[bytes, int]:
    """A DER time-stamp request for the SHA-256 of ``data``, asking for the TSA's
    certificate, and its random nonce."""
    from rfc3161_client import HashAlgorithm, TimestampRequestBuilder

    request = (
        TimestampRequestBuilder()
        .data(data)
        .hash_algorithm(HashAlgorithm.SHA256)
        .nonce(nonce=True)
        .cert_request(cert_request=True)
        .build()
    )
    nonce = request.nonce
    if nonce is None:  # pragma: no cover - the builder was asked for one
        raise TokenProblem("the time-stamp request has no nonce")
    return request.as_bytes(), nonce


def _read_tlv(data: bytes, pos: int) -> tuple[int, int, int]:
    """The DER TLV at ``pos``: (tag, value start, value end); ValueError if malformed."""
    if pos + 2 > len(data):
        raise ValueError("truncated DER")
    tag, first = data[pos], data[pos + 1]
    pos += 2
    if tag & 0x1F == 0x1F:
        raise ValueError("a multi-byte DER tag")
    length = first
    if first >= 0x80:
        count = first & 0x7F
        if not 0 < count <= 4 or pos + count > len(data):
            raise ValueError("a bad DER length")
        length = int.from_bytes(data[pos : pos + count], "big")
        pos += count
    if pos + length > len(data):
        raise ValueError("truncated DER")
    return tag, pos, pos + length


def _enter(data: bytes, pos: int, tag: int) -> tuple[int, int]:
    found, start, end = _read_tlv(data, pos)
    if found != tag:
        raise ValueError(f"DER tag 0x{found:02x} where 0x{tag:02x} was expected")
    return start, end


def certificates_in_der_order(response: bytes) -> bytes:
    """The response with its token's ``SignedData.certificates`` (a SET OF) in DER order.

    OpenSSL-based authorities (``openssl ts -reply``, and the many TSAs built on it)
    write that set in insertion order, signer first; rfc3161-client's strict parser
    refuses a set out of order.  The set is outside what the TSA signs, so the
    re-ordered copy is the same token; it is used for parsing only, and the bytes the
    authority sent are what is stored.  Anything unexpected: the response unchanged.
    """
    try:
        _, end = _enter(response, 0, 0x30)  # TimeStampResp
        token = _read_tlv(response, _read_tlv(response, 0)[1])[2]  # after PKIStatusInfo
        if token >= end:
            return response
        pos = _enter(response, token, 0x30)[0]  # ContentInfo
        pos = _read_tlv(response, pos)[2]  # after its contentType
        pos = _enter(response, pos, 0xA0)[0]  # [0] EXPLICIT content
        pos, signed_end = _enter(response, pos, 0x30)  # SignedData
        while pos < signed_end:
            tag, start, stop = _read_tlv(response, pos)
            if tag == 0xA0:  # certificates [0] IMPLICIT SET OF Certificate
                items = []
                at = start
                while at < stop:
                    item_end = _read_tlv(response, at)[2]
                    items.append(response[at:item_end])
                    at = item_end
                return response[:start] + b"".join(sorted(items)) + response[stop:]
            pos = stop
    except ValueError:
        pass
    return response


# a token's CMS SignedData (RFC 5652), read here for what rfc3161-client does not check
# (the ESS signing certificate) and for checking its signature with the signer's key
# alone: rfc3161-client (OpenSSL's PKCS7_verify) checks it only with a chain to a root.
# What is read here was parsed by rfc3161-client first (_response), whose parser takes
# DER only (minimal lengths, SET OF in order): the signed attributes are as OpenSSL
# re-encodes them to check the signature.
_OID_SIGNED_DATA = "1.2.840.113549.1.7.2"
_OID_TST_INFO = "1.2.840.113549.1.9.16.1.4"
_OID_CONTENT_TYPE = "1.2.840.113549.1.9.3"
_OID_MESSAGE_DIGEST = "1.2.840.113549.1.9.4"
_OID_SIGNING_CERTIFICATE = "1.2.840.113549.1.9.16.2.12"  # ESS, RFC 2634: SHA-1 hashes
_OID_SIGNING_CERTIFICATE_V2 = "1.2.840.113549.1.9.16.2.47"  # ESS, RFC 5035
_OID_SHA256 = "2.16.840.1.101.3.4.2.1"
_DIGEST_HASHES: dict[str, hashes.HashAlgorithm] = {
    _OID_SHA256: hashes.SHA256(),
    "2.16.840.1.101.3.4.2.2": hashes.SHA384(),
    "2.16.840.1.101.3.4.2.3": hashes.SHA512(),
}
# what a signatureAlgorithm says of the hash: OpenSSL verifies with the digestAlgorithm's
# hash whatever this says (it is not signed), so one naming another hash is refused; an
# Ed25519 key (or RSA-PSS) OpenSSL's PKCS#7 verification cannot use for a token at all
_SIGNATURE_HASHES: dict[str, tuple[str, hashes.HashAlgorithm | None]] = {
    "1.2.840.10045.4.3.2": ("ec", hashes.SHA256()),  # ecdsa-with-SHA256
    "1.2.840.10045.4.3.3": ("ec", hashes.SHA384()),
    "1.2.840.10045.4.3.4": ("ec", hashes.SHA512()),
    "1.2.840.10045.2.1": ("ec", None),  # id-ecPublicKey: the digest algorithm's hash
    "1.2.840.113549.1.1.11": ("rsa", hashes.SHA256()),  # sha256WithRSAEncryption
    "1.2.840.113549.1.1.12": ("rsa", hashes.SHA384()),
    "1.2.840.113549.1.1.13": ("rsa", hashes.SHA512()),
    "1.2.840.113549.1.1.1": ("rsa", None),  # rsaEncryption: likewise
}
# the hashes an ESSCertIDv2 may name for a certificate (an ESSCertID's is SHA-1)
_ESS_HASHES: dict[str, hashes.HashAlgorithm] = {
    "1.3.14.3.2.26": hashes.SHA1(),
    **_DIGEST_HASHES,
}


@dataclass(frozen=True)
class _CertId:
    """An ESSCertID(v2): the hash of a certificate, and (optionally) its issuer and
    serial number; ``issuer`` None when the issuerSerial names no one directory name."""

    hash_oid: str
    digest: bytes
    issuer_serial: bool = False
    issuer: bytes | None = None  # the DER Name
    serial: int | None = None


@dataclass(frozen=True)
class _SignerInfo:
    """What the check reads of a token's SignedData and its one SignerInfo."""

    listed_digests: tuple[str, ...]  # SignedData.digestAlgorithms (not signed)
    digest_oid: str  # the SignerInfo's digestAlgorithm
    signature_oid: str  # its signatureAlgorithm (not signed)
    content: bytes  # the TSTInfo signed
    message_digest: bytes  # the messageDigest attribute
    attributes: bytes  # the signed attributes as signed (a DER SET OF)
    signature: bytes
    signing_certificate: tuple[_CertId, ...] | None  # ESS signingCertificate, if there
    signing_certificate_v2: tuple[_CertId, ...] | None  # ESS signingCertificateV2


def _oid_text(value: bytes) -> str:
    """The dotted form of a DER OBJECT IDENTIFIER's contents."""
    arcs: list[int] = []
    acc = 0
    for byte in value:
        acc = (acc << 7) | (byte & 0x7F)
        if not byte & 0x80:
            arcs.append(acc)
            acc = 0
    if not arcs or value[-1] & 0x80:
        raise ValueError("a bad DER object identifier")
    first = min(arcs[0] // 40, 2)
    return ".".join(str(a) for a in [first, arcs[0] - 40 * first, *arcs[1:]])


def _items(data: bytes, start: int, end: int) -> list[tuple[int, int, int, int]]:
    """The TLVs from ``start`` to ``end``: (tag, TLV start, value start, value end)."""
    found = []
    while start < end:
        tag, value, stop = _read_tlv(data, start)
        if stop > end:
            raise ValueError("truncated DER")
        found.append((tag, start, value, stop))
        start = stop
    return found


def _algorithm(data: bytes, start: int, end: int) -> str:
    """The OID of the AlgorithmIdentifier whose contents are ``data[start:end]``."""
    tag, value, stop = _read_tlv(data, start)
    if tag != 0x06 or stop > end:
        raise ValueError("an AlgorithmIdentifier without its OID")
    return _oid_text(data[value:stop])


def _cms_signer(der: bytes) -> _SignerInfo:
    """:func:`_signer_info`, its ValueError a :class:`TokenProblem`."""
    try:
        return _signer_info(der)
    except ValueError as exc:
        raise TokenProblem(f"the token's CMS structure cannot be read ({exc})") from exc


def _check_cms_signature(cms: _SignerInfo, signer: x509.Certificate) -> None:
    """Check, as OpenSSL's PKCS#7 verification does (and no more leniently), that the
    token's one SignerInfo is ``signer``'s signature over signed attributes whose content
    type is TSTInfo and whose message digest is that of the token's TSTInfo: the
    SignerInfo's digestAlgorithm, listed in SignedData.digestAlgorithms, hashes both
    the TSTInfo and the signed attributes.  A :class:`TokenProblem` naming what does
    not hold."""
    digest_hash = _DIGEST_HASHES.get(cms.digest_oid)
    if digest_hash is None:
        raise TokenProblem(f"the token's signature uses an unsupported digest ({cms.digest_oid})")
    if cms.digest_oid not in cms.listed_digests:
        raise TokenProblem(
            f"the token's signer uses the digest {cms.digest_oid}, which its SignedData "
            f"does not list (it lists {', '.join(cms.listed_digests) or 'none'})"
        )
    computed = hashes.Hash(digest_hash)
    computed.update(cms.content)
    if computed.finalize() != cms.message_digest:
        raise TokenProblem(
            "the token's signature does not hold: its time-stamp info is not the one signed "
            "(message digest mismatch)"
        )
    kind, named = _SIGNATURE_HASHES.get(cms.signature_oid, (None, None))
    if kind is None:
        raise TokenProblem(
            f"the token's signature uses an unsupported algorithm ({cms.signature_oid})"
        )
    if named is not None and named.name != digest_hash.name:
        raise TokenProblem(
            f"the token's signature algorithm ({cms.signature_oid}) names another hash than "
            f"its digest algorithm ({cms.digest_oid})"
        )
    key = signer.public_key()
    try:
        if kind == "ec" and isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(cms.signature, cms.attributes, ec.ECDSA(digest_hash))
        elif kind == "rsa" and isinstance(key, rsa.RSAPublicKey):
            key.verify(cms.signature, cms.attributes, padding.PKCS1v15(), digest_hash)
        else:
            raise TokenProblem(
                f"the token's signature algorithm ({cms.signature_oid}) does not fit the TSA "
                f"certificate's key ({type(key).__name__})"
            )
    except InvalidSignature:
        raise TokenProblem(
            "the token's signature does not hold: the CMS signature does not verify with "
            "the TSA certificate's key"
        ) from None


def _check_signing_certificate(
    cms: _SignerInfo, chain: list[x509.Certificate], *, complete: bool
) -> None:
    """RFC 3161 section 2.4.2 (RFC 2634, RFC 5035): the signed ESS signingCertificate(V2)
    attribute names the TSA certificate, so that another certificate for the same key
    cannot be put in its place.  Checked as OpenSSL's ``ts -verify`` does
    (OSSL_ESS_check_signing_certs): the attribute is required, each list present is not
    empty, its first certificate id is the signer's (``chain[0]``) and every other one
    is of another certificate of ``chain``.  ``complete``: the chain ends at a root;
    when it does not (no root at hand), an id of no certificate of it may be of one
    above, and is left to the check with a root."""
    if cms.signing_certificate is None and cms.signing_certificate_v2 is None:
        raise TokenProblem(
            "the token does not name its TSA certificate: no ESS signingCertificate "
            "attribute among the signed attributes (RFC 3161 section 2.4.2)"
        )
    who = chain[0].subject.rfc4514_string()
    for ids in (cms.signing_certificate, cms.signing_certificate_v2):
        if ids is None:
            continue
        if not ids:
            raise TokenProblem("the token's ESS signingCertificate attribute lists no certificate")
        for index, cert_id in enumerate(ids):
            algorithm = _ESS_HASHES.get(cert_id.hash_oid)
            if algorithm is None:
                raise TokenProblem(
                    f"the token's ESS signingCertificate uses an unsupported hash "
                    f"({cert_id.hash_oid})"
                )
            if len(cert_id.digest) != algorithm.digest_size:
                raise TokenProblem(
                    "the token's ESS signingCertificate holds a hash of the wrong length"
                )
            found = next(
                (
                    i
                    for i, cert in enumerate(chain)
                    if cert.fingerprint(algorithm) == cert_id.digest
                    and _issuer_serial_fits(cert_id, cert)
                ),
                None,
            )
            if found is None and index > 0 and not complete:
                continue
            if found is None or (found == 0) != (index == 0):
                raise TokenProblem(
                    f"the token's ESS signingCertificate does not name its TSA certificate "
                    f"({who}) first, or names a certificate not of its chain"
                )


def _issuer_serial_fits(cert_id: _CertId, cert: x509.Certificate) -> bool:
    """Whether the certificate id's issuerSerial (when it has one) is ``cert``'s: its
    issuer, encoded as in the certificate, and its serial number."""
    if not cert_id.issuer_serial:
        return True
    return (
        cert_id.issuer is not None
        and cert_id.issuer == _issuer_der(cert)
        and cert_id.serial == cert.serial_number
    )


def _issuer_der(cert: x509.Certificate) -> bytes:
    """The certificate's issuer Name, as encoded in it."""
    tbs = cert.tbs_certificate_bytes
    start, end = _enter(tbs, 0, 0x30)
    fields = _items(tbs, start, end)
    at = 1 if fields and fields[0][0] == 0xA0 else 0  # after the version, if given
    _, begin, _, stop = fields[at + 2]  # serialNumber, signature, issuer
    return tbs[begin:stop]


def _signer_info(der: bytes) -> _SignerInfo:
    """From a TimeStampResp: its SignedData's digest algorithms and what its one
    SignerInfo holds.  ValueError when it is not so."""
    start, end = _enter(der, 0, 0x30)  # TimeStampResp
    token = _read_tlv(der, start)[2]  # after PKIStatusInfo
    pos, info_end = _enter(der, token, 0x30)  # ContentInfo
    tag, value, pos = _read_tlv(der, pos)
    if tag != 0x06 or _oid_text(der[value:pos]) != _OID_SIGNED_DATA:
        raise ValueError("the token is not a CMS SignedData")
    pos = _enter(der, pos, 0xA0)[0]
    pos, signed_end = _enter(der, pos, 0x30)  # SignedData
    parts = _items(der, pos, min(signed_end, info_end, end))
    tags = [p[0] for p in parts]
    if tags[:3] != [0x02, 0x31, 0x30] or tags[-1] != 0x31 or not set(tags[3:-1]) <= {0xA0, 0xA1}:
        raise ValueError("a SignedData of an unexpected shape")
    listed = []
    for tag, _, at, stop in _items(der, parts[1][2], parts[1][3]):
        if tag != 0x30:
            raise ValueError("a digest algorithm that is not an AlgorithmIdentifier")
        listed.append(_algorithm(der, at, stop))
    _, _, encap, encap_end = parts[2]  # EncapsulatedContentInfo
    encap_items = _items(der, encap, encap_end)
    if len(encap_items) != 2 or encap_items[0][0] != 0x06 or encap_items[1][0] != 0xA0:
        raise ValueError("an EncapsulatedContentInfo of an unexpected shape")
    _, _, oid, oid_end = encap_items[0]
    if _oid_text(der[oid:oid_end]) != _OID_TST_INFO:
        raise ValueError("the signed content is not a TSTInfo")
    octets = _items(der, encap_items[1][2], encap_items[1][3])
    if len(octets) != 1 or octets[0][0] != 0x04:
        raise ValueError("the TSTInfo is not one OCTET STRING")
    content = der[octets[0][2] : octets[0][3]]
    signers = _items(der, parts[-1][2], parts[-1][3])
    if len(signers) != 1 or signers[0][0] != 0x30:
        raise ValueError(f"{len(signers)} signers, not one")
    fields = _items(der, signers[0][2], signers[0][3])
    shape = [f[0] for f in fields]
    if shape[:1] + shape[2:6] != [0x02, 0x30, 0xA0, 0x30, 0x04] or shape[6:] not in ([], [0xA1]):
        raise ValueError("a SignerInfo without signed attributes, or of an unexpected shape")
    digest_oid = _algorithm(der, fields[2][2], fields[2][3])
    _, attrs_at, attrs, attrs_end = fields[3]
    signature_oid = _algorithm(der, fields[4][2], fields[4][3])
    signature = der[fields[5][2] : fields[5][3]]
    found: dict[str, list[tuple[int, int, int, int]]] = {}
    for tag, _, at, stop in _items(der, attrs, attrs_end):
        attribute = _items(der, at, stop)
        if tag != 0x30 or len(attribute) != 2 or attribute[0][0] != 0x06:
            raise ValueError("a signed attribute of an unexpected shape")
        kind = _oid_text(der[attribute[0][2] : attribute[0][3]])
        if kind in found or attribute[1][0] != 0x31:
            raise ValueError(f"the signed attribute {kind} twice, or not a SET")
        found[kind] = _items(der, attribute[1][2], attribute[1][3])
    kinds = found.get(_OID_CONTENT_TYPE, [])
    if len(kinds) != 1 or kinds[0][0] != 0x06:
        raise ValueError("no content type among the signed attributes")
    if _oid_text(der[kinds[0][2] : kinds[0][3]]) != _OID_TST_INFO:
        raise ValueError("the signed content type is not TSTInfo")
    digests = found.get(_OID_MESSAGE_DIGEST, [])
    if len(digests) != 1 or digests[0][0] != 0x04:
        raise ValueError("no message digest among the signed attributes")
    signed = b"\x31" + der[attrs_at + 1 : attrs_end]  # [0] IMPLICIT is signed as a SET OF
    return _SignerInfo(
        listed_digests=tuple(listed),
        digest_oid=digest_oid,
        signature_oid=signature_oid,
        content=content,
        message_digest=der[digests[0][2] : digests[0][3]],
        attributes=signed,
        signature=signature,
        signing_certificate=_ess_ids(der, found.get(_OID_SIGNING_CERTIFICATE), v2=False),
        signing_certificate_v2=_ess_ids(der, found.get(_OID_SIGNING_CERTIFICATE_V2), v2=True),
    )


def _ess_ids(
    der: bytes, values: list[tuple[int, int, int, int]] | None, *, v2: bool
) -> tuple[_CertId, ...] | None:
    """The certificate ids of an ESS SigningCertificate(V2) attribute's one value
    (``SEQUENCE { certs SEQUENCE OF ESSCertID(v2), policies ... OPTIONAL }``)."""
    if values is None:
        return None
    if len(values) != 1 or values[0][0] != 0x30:
        raise ValueError("an ESS signingCertificate attribute of an unexpected shape")
    outer = _items(der, values[0][2], values[0][3])
    if not 1 <= len(outer) <= 2 or any(item[0] != 0x30 for item in outer):
        raise ValueError("an ESS SigningCertificate of an unexpected shape")
    ids = []
    for tag, _, at, stop in _items(der, outer[0][2], outer[0][3]):
        fields = _items(der, at, stop) if tag == 0x30 else []
        hash_oid = _OID_SHA256 if v2 else "1.3.14.3.2.26"  # ESSCertIDv2's DEFAULT; SHA-1
        if v2 and fields and fields[0][0] == 0x30:  # hashAlgorithm, when not the default
            hash_oid = _algorithm(der, fields[0][2], fields[0][3])
            fields = fields[1:]
        if not fields or fields[0][0] != 0x04 or len(fields) > 2:
            raise ValueError("an ESSCertID of an unexpected shape")
        digest = der[fields[0][2] : fields[0][3]]
        if len(fields) == 1:
            ids.append(_CertId(hash_oid, digest))
            continue
        if fields[1][0] != 0x30:
            raise ValueError("an ESSCertID's issuerSerial of an unexpected shape")
        issuer_serial = _items(der, fields[1][2], fields[1][3])
        if [i[0] for i in issuer_serial] != [0x30, 0x02]:
            raise ValueError("an IssuerSerial of an unexpected shape")
        names = _items(der, issuer_serial[0][2], issuer_serial[0][3])
        issuer = None
        if len(names) == 1 and names[0][0] == 0xA4:  # one directoryName [4] EXPLICIT Name
            inner = _items(der, names[0][2], names[0][3])
            if len(inner) == 1 and inner[0][0] == 0x30:
                issuer = der[inner[0][1] : inner[0][3]]
        serial = int.from_bytes(der[issuer_serial[1][2] : issuer_serial[1][3]], "big", signed=True)
        ids.append(_CertId(hash_oid, digest, True, issuer, serial))
    return tuple(ids)


def _response(der: bytes) -> Any:
    from rfc3161_client import PKIStatus, decode_timestamp_response

    try:
        response = decode_timestamp_response(certificates_in_der_order(der))
        status = int(response.status)
    except Exception as exc:  # the Rust parser raises ValueError and its own errors
        raise TokenProblem(f"not a time-stamp response ({exc})") from exc
    if status == PKIStatus.GRANTED_WITH_MODS:  # RFC 3161: the token differs from the request
        raise TokenProblem("the authority granted the request with modifications (status 1)")
    if status != PKIStatus.GRANTED:
        try:
            text = "; ".join(response.status_string)
        except Exception:
            text = ""
        names = {2: "rejection", 3: "waiting", 4: "revocation warning", 5: "revoked"}
        said = f": {text}" if text else ""
        raise TokenProblem(
            f"the authority refused (status {status}, {names.get(status, '?')}){said}"
        )
    return response


def read_token(der: bytes) -> TokenInfo:
    """What the token in a DER time-stamp response says; a :class:`TokenProblem` if it
    is not one, or the authority refused."""
    return _token_info(_response(der))


def _token_info(response: Any) -> TokenInfo:
    try:
        tst = response.tst_info
        algorithm_oid = tst.message_imprint.hash_algorithm.dotted_string
        signers = list(response.signed_data.signer_infos)
        if len(signers) != 1:
            raise TokenProblem(f"the token has {len(signers)} signers, not one")
        certificates = tuple(
            x509.load_der_x509_certificate(c) for c in response.signed_data.certificates
        )
        accuracy = None
        try:
            acc = tst.accuracy
            if acc is not None:
                accuracy = (acc.seconds or 0) + (acc.millis or 0) / 1e3 + (acc.micros or 0) / 1e6
        except Exception:
            accuracy = None
        name = None
        try:
            name = str(tst.name.value) if tst.name is not None else None
        except Exception:
            name = None
        when = tst.gen_time
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        return TokenInfo(
            time=when,
            serial=int(tst.serial_number),
            policy=tst.policy.dotted_string,
            nonce=int(tst.nonce) if tst.nonce is not None else None,
            imprint_algorithm=_IMPRINT_HASHES.get(algorithm_oid, (algorithm_oid, None))[0],
            imprint=bytes(tst.message_imprint.message),
            accuracy=accuracy,
            authority=name,
            certificates=certificates,
            signer_issuer=signers[0].issuer,
            signer_serial=int(signers[0].serial_number),
        )
    except TokenProblem:
        raise
    except Exception as exc:
        raise TokenProblem(f"the time-stamp token cannot be read ({exc})") from exc


def check_token(
    der: bytes,
    data: bytes,
    roots: list[x509.Certificate],
    pool: list[x509.Certificate] = (),  # type: ignore[assignment]
    *,
    nonce: int | None = None,
) -> tuple[TokenInfo, list[x509.Certificate]]:
    """Check that the token in ``der`` stamps ``data``: its imprint, its nonce (when
    given), its signer's chain to one of ``roots`` with every certificate valid at the
    token's time, the signer's key usage (critical timeStamping alone), the TSTInfo's
    version and TSA name, the CMS signature and the ESS signing certificate naming the
    signer.  The token's information and the chain (signer first, root last); a
    :class:`TokenProblem` naming what does not hold, whatever the token holds."""
    return _checked(_check_token, der, data, roots, list(pool), nonce)


def check_token_unrooted(
    der: bytes,
    data: bytes,
    pool: list[x509.Certificate] = (),  # type: ignore[assignment]
    *,
    nonce: int | None = None,
) -> tuple[TokenInfo, list[x509.Certificate]]:
    """What :func:`check_token` checks, but for the root: the imprint, the nonce (when
    given), the signer's key usage, the TSTInfo's version and TSA name, the chain as far
    as the token's certificates and ``pool`` reach (each certificate issued by the next
    and valid at the token's time; none with a critical extension not checked here), the
    CMS signature by the signer's key as OpenSSL checks it (:func:`_check_cms_signature`)
    and the ESS signing certificate.  What only the root can show (the signatures and
    constraints above the chain's end) is left to a check with it.  Nothing here says
    who the authority is: anyone can make such a token with certificates of their own,
    so it is no trusted time until its chain reaches a root the verifier trusts."""
    return _checked(_check_token, der, data, None, list(pool), nonce)


def _checked(check: Any, *args: Any) -> tuple[TokenInfo, list[x509.Certificate]]:
    """``check(*args)``, anything it raises but a :class:`TokenProblem` made one.

    cryptography parses certificate fields when they are first used, and a damaged or
    odd certificate (in the token, or saved beside it) raises there what it will: a
    ValueError, but also a KeyError (a name of an unknown string type), an
    x509.DuplicateExtension, an UnsupportedAlgorithm.  A token is a file or an answer
    from outside: whatever it holds is a reason to refuse it, never an internal error."""
    try:
        result: tuple[TokenInfo, list[x509.Certificate]] = check(*args)
    except TokenProblem:
        raise
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise TokenProblem(f"a certificate of the token cannot be read ({exc})") from exc
    except Exception as exc:
        raise TokenProblem(f"a certificate of the token cannot be read ({exc!r})") from exc
    return result


def _check_token(
    der: bytes,
    data: bytes,
    roots: list[x509.Certificate] | None,
    pool: list[x509.Certificate],
    nonce: int | None,
) -> tuple[TokenInfo, list[x509.Certificate]]:
    """``roots`` None: the chain is not checked against any root (the CMS signature is
    checked here, with the signer's key alone).  The ESS signing certificate is checked
    here in both cases (rfc3161-client does not)."""
    response = _response(der)
    info = _token_info(response)
    known = _IMPRINT_HASHES.get(_oid_of(info.imprint_algorithm))
    if known is None:
        raise TokenProblem(f"the token uses an unsupported hash ({info.imprint_algorithm})")
    expected = known[1](data).digest()
    if info.imprint != expected:
        raise TokenProblem(
            f"the token stamps another message: its imprint is {info.imprint.hex()}, the "
            f"{info.imprint_algorithm} of the signature is {expected.hex()}"
        )
    if nonce is not None and info.nonce != nonce:
        raise TokenProblem(f"the token answers another request: nonce {info.nonce}, sent {nonce}")
    candidates = [*info.certificates, *pool]
    signer = next(
        (
            c
            for c in candidates
            if c.issuer == info.signer_issuer and c.serial_number == info.signer_serial
        ),
        None,
    )
    if signer is None:
        raise TokenProblem(
            "the TSA certificate is neither in the token nor saved in the archive "
            f"(issuer {info.signer_issuer.rfc4514_string()}, serial {info.signer_serial})"
        )
    _check_timestamping_usage(signer)
    _check_tst_info(response, signer)
    if roots is None:
        chain, _ = _walk_chain(signer, candidates, [], info.time)
        _check_critical_extensions(chain)
        cms = _cms_signer(der)
        _check_cms_signature(cms, signer)
        _check_signing_certificate(cms, chain, complete=is_self_issued(chain[-1]))
        return info, chain
    chain = build_chain(signer, candidates, roots, info.time)
    from rfc3161_client import VerificationError, VerifierBuilder

    builder = VerifierBuilder(
        tsa_certificate=signer,
        roots=[chain[-1]],
        intermediates=[c for c in chain[1:-1]],
    )
    try:
        builder.build().verify(response, expected)
    except VerificationError as exc:
        raise TokenProblem(f"the token's signature does not hold: {exc}") from exc
    except Exception as exc:
        raise TokenProblem(f"the token cannot be checked ({exc})") from exc
    _check_signing_certificate(_cms_signer(der), chain, complete=True)
    return info, chain


def _check_tst_info(response: Any, signer: x509.Certificate) -> None:
    """What ``openssl ts -verify`` checks of the TSTInfo besides the imprint: its version
    is 1, and the TSA name it gives, if any, is the signer certificate's subject or one
    of its subject alternative names (RFC 3161 section 2.4.2)."""
    tst = response.tst_info
    try:
        version, name = int(tst.version), tst.name
    except Exception as exc:
        raise TokenProblem(f"the token's time-stamp info cannot be read ({exc!r})") from exc
    if version != 1:
        raise TokenProblem(f"the token's time-stamp info is of version {version}, not 1")
    if name is None:
        return
    if isinstance(name, x509.DirectoryName) and name.value == signer.subject:
        return
    try:
        alternatives = list(
            signer.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        )
    except x509.ExtensionNotFound:
        alternatives = []
    if name not in alternatives:
        said = name.value.rfc4514_string() if isinstance(name, x509.DirectoryName) else name.value
        raise TokenProblem(
            f"the token names its authority {said}, which is neither the subject of "
            f"its TSA certificate ({signer.subject.rfc4514_string()}) nor one of its "
            "alternative names"
        )


# the extensions OpenSSL's path validation knows (others, when critical, fail it) and
# the rootless check takes as checked: those it looks at, and certificate policies and
# alternative names (no policy nor name is asked for)
_KNOWN_EXTENSIONS = {
    ExtensionOID.BASIC_CONSTRAINTS,
    ExtensionOID.KEY_USAGE,
    ExtensionOID.EXTENDED_KEY_USAGE,
    ExtensionOID.CERTIFICATE_POLICIES,
    ExtensionOID.SUBJECT_ALTERNATIVE_NAME,
}


def _check_critical_extensions(chain: list[x509.Certificate]) -> None:
    """Without a root, the chain is not validated by OpenSSL: a certificate of it with a
    critical extension the rootless check does not process (name constraints, policy
    constraints, anything unknown) is refused rather than taken as holding."""
    for cert in chain:
        for extension in cert.extensions:
            if extension.critical and extension.oid not in _KNOWN_EXTENSIONS:
                raise TokenProblem(
                    f"the certificate {cert.subject.rfc4514_string()} has a critical "
                    f"extension ({extension.oid.dotted_string}) not checked without a root"
                )


def _oid_of(name: str) -> str:
    return next((oid for oid, (n, _) in _IMPRINT_HASHES.items() if n == name), name)


def _check_timestamping_usage(cert: x509.Certificate) -> None:
    """RFC 3161 §2.3, as OpenSSL's time-stamping purpose checks it: the TSA's certificate
    has one extended key usage, critical, holding id-kp-timeStamping only; its key
    usage, when it has one, allows digitalSignature and/or nonRepudiation, nothing else."""
    who = cert.subject.rfc4514_string()
    try:
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    except x509.ExtensionNotFound:
        raise TokenProblem(
            f"the TSA certificate ({who}) has no extended key usage: it is not for time-stamping"
        ) from None
    if ExtendedKeyUsageOID.TIME_STAMPING not in eku.value:
        raise TokenProblem(
            f"the TSA certificate ({who}) is not for time-stamping (no timeStamping usage)"
        )
    if list(eku.value) != [ExtendedKeyUsageOID.TIME_STAMPING]:
        others = ", ".join(
            o.dotted_string for o in eku.value if o != ExtendedKeyUsageOID.TIME_STAMPING
        )
        raise TokenProblem(
            f"the TSA certificate ({who}) has other extended key usages than timeStamping "
            f"({others or 'timeStamping twice'}): RFC 3161 wants timeStamping alone"
        )
    if not eku.critical:
        raise TokenProblem(
            f"the TSA certificate's ({who}) timeStamping usage is not marked critical"
        )
    try:
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return
    signs = usage.digital_signature or usage.content_commitment
    other = (
        usage.key_encipherment
        or usage.data_encipherment
        or usage.key_agreement  # encipherOnly and decipherOnly come only with it
        or usage.key_cert_sign
        or usage.crl_sign
    )
    if other or not signs:
        raise TokenProblem(
            f"the TSA certificate's ({who}) key usage is not for time-stamping: it must allow "
            "digitalSignature or nonRepudiation, and nothing else"
        )


def build_chain(
    leaf: x509.Certificate,
    pool: list[x509.Certificate],
    roots: list[x509.Certificate],
    at: datetime,
) -> list[x509.Certificate]:
    """The chain from ``leaf`` to one of ``roots`` (leaf first), each certificate issued
    by the next and valid at ``at``; only ``roots`` are trusted, the ``pool`` merely
    offers intermediates.  An :class:`UntrustedChain` when there is none (a certificate
    not valid at ``at`` is a :class:`TokenProblem`)."""
    chain, anchored = _walk_chain(leaf, pool, roots, at)
    if anchored:
        return chain
    top = chain[-1].subject.rfc4514_string()
    raise UntrustedChain(
        f"the TSA certificate chain does not reach a trusted root (it ends at {top}); give "
        "the authority's root certificate with --tsa-ca"
    )


def _walk_chain(
    leaf: x509.Certificate,
    pool: list[x509.Certificate],
    roots: list[x509.Certificate],
    at: datetime,
) -> tuple[list[x509.Certificate], bool]:
    """The chain from ``leaf`` up, as far as ``roots`` and ``pool`` reach (each certificate
    issued by the next, which may issue it, and valid at ``at``), and whether it ends at
    one of ``roots``."""
    trusted = {c.fingerprint(hashes.SHA256()) for c in roots}
    chain = [leaf]
    current = leaf
    while True:
        _valid_at(current, at)
        if current.fingerprint(hashes.SHA256()) in trusted:
            return chain, True
        if len(chain) > _MAX_CHAIN:
            break
        issuer = None
        for candidate in [*roots, *pool]:
            if candidate.subject != current.issuer or candidate in chain:
                continue
            try:
                current.verify_directly_issued_by(candidate)
            except (ValueError, TypeError, InvalidSignature):
                continue
            if not _may_issue(candidate, len(chain) - 1):
                continue
            issuer = candidate
            break
        if issuer is None:
            break
        chain.append(issuer)
        current = issuer
    return chain, False


def _may_issue(cert: x509.Certificate, below: int) -> bool:
    """Whether ``cert`` may issue a certificate with ``below`` CA certificates under it
    in the chain: a CA (basic constraints), allowed to sign certificates (key usage,
    when present), within its path length."""
    try:
        constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        return False
    if not constraints.ca:
        return False
    if constraints.path_length is not None and below > constraints.path_length:
        return False
    try:
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return True
    return bool(usage.key_cert_sign)


def _valid_at(cert: x509.Certificate, at: datetime) -> None:
    start, end = cert.not_valid_before_utc, cert.not_valid_after_utc
    if not start <= at <= end:
        raise TokenProblem(
            f"the certificate {cert.subject.rfc4514_string()} was not valid at the token's "
            f"time {at.isoformat()} (valid from {start.isoformat()} to {end.isoformat()})"
        )


def load_certificates(data: bytes) -> list[x509.Certificate]:
    """Every certificate of a PEM bundle (or one DER certificate)."""
    if b"-----BEGIN" in data:
        return list(x509.load_pem_x509_certificates(data))
    return [x509.load_der_x509_certificate(data)]


def certificate_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def certificate_sha256(cert: x509.Certificate) -> str:
    return cert.fingerprint(hashes.SHA256()).hex()


def is_self_issued(cert: x509.Certificate) -> bool:
    try:
        return cert.subject == cert.issuer
    except Exception:  # a damaged certificate (ValueError, KeyError, ...) is nobody's root
        return False
