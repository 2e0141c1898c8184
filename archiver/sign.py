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
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.x509.oid import ExtendedKeyUsageOID

from archiver.atomic import flocked, fsync_dir, rename_no_replace

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
    token's time, the signer's critical timeStamping key usage, and the CMS signature.
    The token's information and the chain (signer first, root last); a
    :class:`TokenProblem` naming what does not hold."""
    try:
        return _check_token(der, data, roots, list(pool), nonce)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        # cryptography parses certificate fields when they are first used: a damaged
        # certificate (in the token, or saved beside it) is found here
        raise TokenProblem(f"a certificate of the token cannot be read ({exc})") from exc


def _check_token(
    der: bytes,
    data: bytes,
    roots: list[x509.Certificate],
    pool: list[x509.Certificate],
    nonce: int | None,
) -> tuple[TokenInfo, list[x509.Certificate]]:
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
    return info, chain


def _oid_of(name: str) -> str:
    return next((oid for oid, (n, _) in _IMPRINT_HASHES.items() if n == name), name)


def _check_timestamping_usage(cert: x509.Certificate) -> None:
    """RFC 3161 §2.3: the TSA's certificate has one extended key usage, critical,
    id-kp-timeStamping."""
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
    if not eku.critical:
        raise TokenProblem(
            f"the TSA certificate's ({who}) timeStamping usage is not marked critical"
        )


def build_chain(
    leaf: x509.Certificate,
    pool: list[x509.Certificate],
    roots: list[x509.Certificate],
    at: datetime,
) -> list[x509.Certificate]:
    """The chain from ``leaf`` to one of ``roots`` (leaf first), each certificate issued
    by the next and valid at ``at``; only ``roots`` are trusted, the ``pool`` merely
    offers intermediates.  A :class:`TokenProblem` when there is none."""
    trusted = {c.fingerprint(hashes.SHA256()) for c in roots}
    chain = [leaf]
    current = leaf
    while True:
        _valid_at(current, at)
        if current.fingerprint(hashes.SHA256()) in trusted:
            return chain
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
    top = chain[-1].subject.rfc4514_string()
    raise TokenProblem(
        f"the TSA certificate chain does not reach a trusted root (it ends at {top}); give "
        "the authority's root certificate with --tsa-ca"
    )


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
    except ValueError:  # a damaged certificate is nobody's root
        return False
