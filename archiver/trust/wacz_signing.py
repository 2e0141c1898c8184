"""WACZ signatures as ReplayWeb.page checks them, and the P-384 key that makes them.

ReplayWeb.page (its engine, wabac.js) checks a WACZ's ``datapackage-digest.json``::

    {"path": "datapackage.json", "hash": "sha256:<hex>",
     "signedData": {"hash": "sha256:<hex>", "signature": <base64>, "publicKey": <base64>,
                    "created": ..., "software": ...}}

with WebCrypto: ECDSA over the P-384 curve with SHA-256, over the UTF-8 bytes of the
*string* ``sha256:<hex>`` (not of ``datapackage.json`` itself), the signature as raw
``r || s`` (48 + 48 bytes), the public key as SubjectPublicKeyInfo DER.  Only the hash
is signed: ``created`` and ``software`` are not, and a check must say so.

Our capture key is Ed25519, which WebCrypto in ReplayWeb.page does not take, so each
Ed25519 key gets a P-384 key beside it (made on first use, stored like it: PKCS#8 PEM,
mode 0600, encrypted when the Ed25519 key is) and a *binding statement*: a line of
ASCII JSON naming the P-384 public key, signed by the Ed25519 key (raw 64-byte
signature over the exact bytes, as manifests are).  A verifier who trusts the
archivist's Ed25519 key learns from it that the WACZ signature is the same
archivist's, with nothing but OpenSSL::

    openssl pkeyutl -verify -pubin -inkey keys/<fp>.pub.pem -rawin \\
        -in keys/<fp>.p384.binding.json -sigfile keys/<fp>.p384.binding.json.sig

Files beside an Ed25519 key ``<stem>.key.pem`` (in a key store ``<stem>`` is its
fingerprint): ``<stem>.p384.key.pem`` (0600), ``<stem>.p384.pub.pem``,
``<stem>.p384.binding.json`` and ``.sig``.  Each is created whole or not at all and
never replaced.  In an archive or a WACZ: ``keys/<fp>.p384.pub.pem``,
``keys/<fp>.p384.binding.json`` and ``.sig``, beside ``keys/<fp>.pub.pem``.

Checking (:func:`check_datapackage_digest`) covers what other tools write too: an
anonymous key (``publicKey``), or a domain certificate (``domain`` + ``domainCert``,
as authsign writes them), whose chain is *not* checked against any root here.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)
from cryptography.x509.oid import NameOID

from archiver.core.errors import Failure
from archiver.core.model import isoformat, parse_timestamp, utcnow
from archiver.trust import keys

DATAPACKAGE = "datapackage.json"
DIGEST_FILE = "datapackage-digest.json"
BINDING_TYPE = "archiver/key-binding/1"
BINDING_PURPOSE = (
    "The holder of the Ed25519 key named here signs WACZ files "
    "(datapackage-digest.json) with the ECDSA P-384 key named here."
)
P384_PUB_SUFFIX = ".p384" + keys.PUB_SUFFIX
BINDING_SUFFIX = ".p384.binding.json"
SIG_SUFFIX = ".sig"

_COORD = 48  # bytes of r and of s on P-384
_BINDING_LIMIT = 16 * 1024
_DIGEST_LIMIT = 1024 * 1024  # a datapackage-digest.json read from a file
_HASH_RE = re.compile(r"sha256:[0-9a-f]{64}")
# longest string accepted in signedData, per field: a WACZ from anywhere is checked
_FIELD_LIMITS = {
    "hash": 256,
    "signature": 1024,
    "publicKey": 4096,
    "created": 256,
    "software": 1024,
    "domain": 253,
    "domainCert": 64 * 1024,
}
_MAX_CERTS = 10
_DOMAIN_CURVES: tuple[type[ec.EllipticCurve], ...] = (ec.SECP256R1, ec.SECP384R1, ec.SECP521R1)


class WaczSigningError(Failure):
    """A WACZ cannot be signed as asked (the caller's arguments disagree with each other)."""

    unexpected = True


# ---------------------------------------------------------------------------- keys


@dataclass(frozen=True)
class P384Paths:
    """Where the P-384 key of an Ed25519 key file lives, beside it."""

    private: Path
    public: Path
    binding: Path
    binding_sig: Path


def p384_paths(ed25519_private: Path) -> P384Paths:
    """The P-384 files beside an Ed25519 key file (``<stem>.key.pem`` → ``<stem>.p384.*``)."""
    stem = ed25519_private.name.removesuffix(keys.KEY_SUFFIX).removesuffix(".pem")
    binding = ed25519_private.with_name(stem + BINDING_SUFFIX)
    return P384Paths(
        private=ed25519_private.with_name(stem + keys.P384_KEY_SUFFIX),
        public=ed25519_private.with_name(stem + P384_PUB_SUFFIX),
        binding=binding,
        binding_sig=binding.with_name(binding.name + SIG_SUFFIX),
    )


def spki_der(public: ec.EllipticCurvePublicKey) -> bytes:
    return public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _pem(public: ec.EllipticCurvePublicKey) -> bytes:
    return public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


@dataclass(frozen=True)
class WaczKey:
    """The P-384 key that signs WACZ files for the holder of an Ed25519 key, and the
    statement (signed by that Ed25519 key) that binds the two."""

    key: ec.EllipticCurvePrivateKey = field(repr=False)
    ed25519_fingerprint: str
    path: Path  # the private key file
    binding: bytes  # the binding statement, its exact bytes
    binding_signature: bytes  # raw Ed25519 signature of ``binding``
    created: bool = False  # this call made the key (worth a custody event)

    @property
    def spki_der(self) -> bytes:
        return spki_der(self.key.public_key())

    @property
    def public_key_b64(self) -> str:
        """The public key as ``signedData.publicKey`` carries it: base64 SPKI DER."""
        return base64.b64encode(self.spki_der).decode("ascii")

    @property
    def spki_sha256(self) -> str:
        return hashlib.sha256(self.spki_der).hexdigest()

    @property
    def public_pem(self) -> bytes:
        return _pem(self.key.public_key())

    def sign(self, data: bytes) -> bytes:
        """ECDSA P-384 with SHA-256 over ``data``: raw ``r || s``, 96 bytes (WebCrypto's form)."""
        r, s = decode_dss_signature(self.key.sign(data, ec.ECDSA(hashes.SHA256())))
        return r.to_bytes(_COORD, "big") + s.to_bytes(_COORD, "big")


def wacz_key(
    signer_info: keys.KeyInfo,
    signer: keys.Signer,
    passphrase: str | None,
    *,
    create: bool = True,
) -> WaczKey:
    """The P-384 key beside ``signer``'s key file, made (with its binding) on first use.

    It is encrypted with ``passphrase`` when the Ed25519 key is encrypted, and stored
    in the clear when that one is.  Files left by an interrupted first use are
    completed (a public key, a binding, its signature); files that disagree with the
    private key or with the Ed25519 key are a :class:`~archiver.trust.keys.KeyProblem`,
    never replaced.  Two processes making the key at once end up with the same one.
    """
    if signer_info.fingerprint and signer_info.fingerprint != signer.fingerprint:
        raise keys.KeyProblem(
            f"the key {signer_info.path} is {signer_info.fingerprint}, "
            f"not the key {signer.fingerprint} loaded to sign"
        )
    paths = p384_paths(signer_info.path)
    made = False
    if not paths.private.exists():
        leftovers = [p for p in (paths.public, paths.binding) if p.exists()]
        if leftovers:
            raise keys.KeyProblem(
                f"{leftovers[0]} exists but not the private key {paths.private}: "
                "move it aside to make a new P-384 key"
            )
        if not create:
            raise keys.KeyProblem(f"no P-384 key beside {signer_info.path} ({paths.private})")
        if signer_info.encrypted and not passphrase:
            raise keys.KeyProblem(
                f"the key {signer_info.path} is encrypted: give its passphrase "
                "(prompt, or ARCHIVER_KEY_PASSPHRASE) to make its P-384 key"
            )
        made = _make_private(paths.private, passphrase if signer_info.encrypted else None)
    loaded = keys.load_private_any(paths.private, passphrase)
    if not isinstance(loaded, ec.EllipticCurvePrivateKey) or not isinstance(
        loaded.curve, ec.SECP384R1
    ):
        raise keys.KeyProblem(f"{paths.private} is not an ECDSA P-384 key")
    _settle_public(paths.public, loaded.public_key())
    binding, signature = _settle_binding(paths, signer, loaded.public_key())
    return WaczKey(loaded, signer.fingerprint, paths.private, binding, signature, made)


def _make_private(path: Path, passphrase: str | None) -> bool:
    """Write a new P-384 private key at ``path``; False when another process was first."""
    key = ec.generate_private_key(ec.SECP384R1())
    encryption: serialization.KeySerializationEncryption = serialization.NoEncryption()
    if passphrase:
        encryption = serialization.BestAvailableEncryption(passphrase.encode("utf-8"))
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )
    try:
        keys._write_new(path, pem, 0o600)
    except FileExistsError:
        return False
    except OSError as exc:
        raise keys.KeyProblem(f"cannot write the key {path}: {exc.strerror or exc}") from exc
    return True


def _write_or_same(path: Path, data: bytes, same: Callable[[Path], None]) -> None:
    """Write ``data`` at ``path`` unless it exists; an existing file must pass ``same``."""
    if not path.exists():
        try:
            keys._write_new(path, data, 0o644)
            return
        except FileExistsError:
            pass  # written by another process at the same moment: check it below
        except OSError as exc:
            raise keys.KeyProblem(f"cannot write {path}: {exc.strerror or exc}") from exc
    same(path)


def _read_small(path: Path, limit: int) -> bytes:
    try:
        with path.open("rb") as f:
            data = f.read(limit + 1)
    except OSError as exc:
        raise keys.KeyProblem(f"cannot read {path}: {exc.strerror or exc}") from exc
    if len(data) > limit:
        raise keys.KeyProblem(f"{path} is too large for what it should hold")
    return data


def _load_p384_public(path: Path) -> ec.EllipticCurvePublicKey:
    try:
        key = serialization.load_pem_public_key(_read_small(path, 64 * 1024))
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise keys.KeyProblem(f"{path} is not a PEM public key") from exc
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP384R1):
        raise keys.KeyProblem(f"{path} is not an ECDSA P-384 public key")
    return key


def _settle_public(path: Path, public: ec.EllipticCurvePublicKey) -> None:
    def same(existing: Path) -> None:
        if spki_der(_load_p384_public(existing)) != spki_der(public):
            raise keys.KeyProblem(f"{existing} does not hold the public key of its private key")

    _write_or_same(path, _pem(public), same)


def _settle_binding(
    paths: P384Paths, signer: keys.Signer, public: ec.EllipticCurvePublicKey
) -> tuple[bytes, bytes]:
    statement = binding_statement(signer.fingerprint, public, utcnow())
    _write_or_same(paths.binding, statement, lambda _: None)
    statement = _read_small(paths.binding, _BINDING_LIMIT)  # ours, or an earlier one
    # Ed25519 is deterministic: the same bytes as an earlier signature of it; a statement
    # whose signature was lost is checked (below) as strictly as one that has it
    signature = signer.sign(statement)
    _write_or_same(paths.binding_sig, signature, lambda _: None)
    signature = _read_small(paths.binding_sig, 64)
    problem = check_binding(statement, signature, signer.key.public_key(), spki_der(public))
    if problem:
        raise keys.KeyProblem(f"{paths.binding}: {problem}")
    return statement, signature


# ------------------------------------------------------------------------- binding


def _canonical(doc: dict[str, Any]) -> bytes:
    return (
        json.dumps(doc, sort_keys=True, ensure_ascii=True, separators=(",", ":")).encode() + b"\n"
    )


def binding_statement(
    ed25519_fingerprint: str, p384_public: ec.EllipticCurvePublicKey, created: datetime
) -> bytes:
    """The exact bytes the Ed25519 key signs: one line of ASCII JSON, keys sorted."""
    der = spki_der(p384_public)
    return _canonical(
        {
            "type": BINDING_TYPE,
            "ed25519": ed25519_fingerprint,
            "p384_public_key": base64.b64encode(der).decode("ascii"),
            "p384_spki_sha256": hashlib.sha256(der).hexdigest(),
            "created": isoformat(created),
            "purpose": BINDING_PURPOSE,
        }
    )


_BINDING_FIELDS = {
    "type",
    "ed25519",
    "p384_public_key",
    "p384_spki_sha256",
    "created",
    "purpose",
}


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    doc: dict[str, Any] = {}
    for name, value in pairs:
        if name in doc:
            raise ValueError(f"the name {name!r} appears twice")
        doc[name] = value
    return doc


def _b64(text: str) -> bytes | None:
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        return None


def check_binding(
    statement: bytes,
    signature: bytes,
    ed25519_public: Ed25519PublicKey,
    p384_spki_der: bytes,
) -> str | None:
    """What is wrong with a binding statement, or None when it holds: signed by
    ``ed25519_public``, naming that key and the P-384 key ``p384_spki_der``."""
    if len(statement) > _BINDING_LIMIT:
        return f"the binding statement is larger than {_BINDING_LIMIT} bytes"
    if not keys.signature_holds(ed25519_public, signature, statement):
        who = keys.fingerprint(ed25519_public)
        return f"the binding statement's signature does not hold for the Ed25519 key {who}"
    try:
        doc = json.loads(statement.decode("ascii"), object_pairs_hook=_unique_keys)
    except (UnicodeDecodeError, ValueError) as exc:
        return f"the binding statement is not ASCII JSON ({exc})"
    if not isinstance(doc, dict) or _canonical(doc) != statement:
        return "the binding statement is not one line of JSON with its keys sorted"
    if set(doc) != _BINDING_FIELDS:
        return f"the binding statement has the fields {sorted(doc)}, not {sorted(_BINDING_FIELDS)}"
    if doc["type"] != BINDING_TYPE:
        return f"the binding statement is of type {doc['type']!r}, not {BINDING_TYPE!r}"
    if doc["purpose"] != BINDING_PURPOSE:
        return "the binding statement's purpose is not the one archiver states"
    if doc["ed25519"] != keys.fingerprint(ed25519_public):
        return f"the binding statement names the Ed25519 key {doc['ed25519']!r}, not its signer"
    named = _b64(doc["p384_public_key"]) if isinstance(doc["p384_public_key"], str) else None
    if named is None:
        return "the binding statement's p384_public_key is not base64"
    if named != p384_spki_der:
        return "the binding statement names another P-384 key"
    if doc["p384_spki_sha256"] != hashlib.sha256(named).hexdigest():
        return "the binding statement's p384_spki_sha256 is not the SHA-256 of its key"
    if _p384_public(named) is None:
        return "the key the binding statement names is not an ECDSA P-384 public key"
    try:
        parse_timestamp(doc["created"])
    except (TypeError, ValueError, AttributeError):
        return f"the binding statement's created {doc['created']!r} is not a time"
    return None


def _p384_public(der: bytes) -> ec.EllipticCurvePublicKey | None:
    try:
        key = serialization.load_der_public_key(der)
    except (ValueError, UnsupportedAlgorithm):
        return None
    if isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP384R1):
        return key
    return None


def binding_members(key: WaczKey) -> list[tuple[str, bytes]]:
    """The files that carry the binding in an archive or a WACZ: (relative name, bytes)."""
    fp = key.ed25519_fingerprint
    return [
        (f"keys/{fp}{P384_PUB_SUFFIX}", key.public_pem),
        (f"keys/{fp}{BINDING_SUFFIX}", key.binding),
        (f"keys/{fp}{BINDING_SUFFIX}{SIG_SUFFIX}", key.binding_signature),
    ]


def publish_binding(archive_dir: Path, key: WaczKey) -> list[str]:
    """Put the P-384 public key and its binding into an archive's ``keys/``; the names
    written or found there (relative to ``archive_dir``).

    As :meth:`keys.Signer.publish`: a file already there is left alone when it holds
    the same (the same key; the same bytes for the statement and its signature), and
    is a :class:`~archiver.trust.keys.KeyProblem` when it does not.  The Ed25519
    public key itself is the caller's to publish (``Signer.publish``).
    """
    names = []
    for name, data in binding_members(key):
        path = archive_dir / name
        path.parent.mkdir(parents=True, exist_ok=True)

        def same(existing: Path, data: bytes = data, name: str = name) -> None:
            if name.endswith(P384_PUB_SUFFIX):
                if spki_der(_load_p384_public(existing)) == key.spki_der:
                    return
            elif _read_small(existing, _BINDING_LIMIT) == data:
                return
            raise keys.KeyProblem(
                f"{existing} exists and differs from the P-384 key and binding of "
                f"{key.ed25519_fingerprint}; the archive's copy is never replaced"
            )

        _write_or_same(path, data, same)
        names.append(name)
    return names


# ------------------------------------------------------------------ WACZ signatures


def datapackage_hash(datapackage_bytes: bytes) -> str:
    return "sha256:" + hashlib.sha256(datapackage_bytes).hexdigest()


def sign_datapackage(
    key: WaczKey, datapackage_bytes: bytes, created: str, software: str
) -> dict[str, Any]:
    """The whole ``datapackage-digest.json`` document for ``datapackage_bytes``, signed.

    ``created`` must be the datapackage's own ``created`` (ReplayWeb.page shows it as
    the signature's time; it is not signed).
    """
    try:
        package = json.loads(datapackage_bytes)
    except ValueError as exc:
        raise WaczSigningError(f"{DATAPACKAGE} is not JSON: {exc}") from exc
    if not isinstance(package, dict) or package.get("created") != created:
        raise WaczSigningError(
            f"the signature's created {created!r} is not the created of {DATAPACKAGE}"
        )
    digest = datapackage_hash(datapackage_bytes)
    signature = key.sign(digest.encode("utf-8"))
    return {
        "path": DATAPACKAGE,
        "hash": digest,
        "signedData": {
            "hash": digest,
            "signature": base64.b64encode(signature).decode("ascii"),
            "publicKey": key.public_key_b64,
            "created": created,
            "software": software,
        },
    }


class SignatureState(StrEnum):
    VALID = "valid"
    INVALID = "invalid"
    UNSIGNED = "unsigned"  # no signedData: nobody signed it


class Identity(StrEnum):
    ANONYMOUS = "anonymous"  # a bare public key: whose it is must be learnt elsewhere
    DOMAIN = "domain"  # a certificate for a domain name (its chain not checked here)


_CHAIN_NOTE = (
    "the domain certificate was not checked against any trusted root (nor its validity "
    "dates or revocation): the signature shows only that the holder of this "
    "certificate's key signed"
)
_UNSIGNED_FIELDS_NOTE = "created and software are not covered by the signature"


@dataclass
class DigestCheck:
    """What a ``datapackage-digest.json`` says about a ``datapackage.json``, checked."""

    actual_hash: str  # sha256:<hex> of the datapackage.json given
    hash: str | None = None  # what the digest file says
    hash_ok: bool = False
    state: SignatureState = SignatureState.INVALID
    identity: Identity | None = None
    public_key: str | None = None  # base64 SPKI DER the signature was checked with
    public_key_sha256: str | None = None  # hex SHA-256 of that SPKI DER
    signature_encoding: str | None = None  # "raw" (r||s, as WebCrypto) or "der"
    domain: str | None = None  # the domain claimed (Identity.DOMAIN)
    certificate_subject: str | None = None
    certificate_sha256: str | None = None  # of the domain certificate's DER
    chain_checked: bool = False  # never: no root store is consulted here
    created: str | None = None
    software: str | None = None
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def signed(self) -> bool:
        return self.state is SignatureState.VALID

    @property
    def ok(self) -> bool:
        """The hash holds, a signature holds, and nothing else is wrong: not that the
        signer is anyone in particular (an anonymous key is bound to an archivist only
        by :func:`check_binding`; a domain certificate's chain is not checked here)."""
        return self.hash_ok and self.signed and not self.problems

    @property
    def public_key_der(self) -> bytes | None:
        return _b64(self.public_key) if self.public_key else None

    @property
    def verdict(self) -> str:
        """One line for a person: what the signature is, without claiming more."""
        lead = "" if self.hash_ok else f"{DATAPACKAGE} does not match its digest; "
        if self.state is SignatureState.UNSIGNED:
            return lead + "not signed"
        if self.state is SignatureState.INVALID:
            return lead + "signature invalid"
        if self.identity is Identity.DOMAIN:
            return lead + f"signed for the domain {self.domain} (certificate chain not checked)"
        return lead + f"signed by an anonymous P-384 key (SHA-256 {self.public_key_sha256})"

    def to_json(self) -> dict[str, Any]:
        return {
            "hash": self.hash,
            "actual_hash": self.actual_hash,
            "hash_ok": self.hash_ok,
            "signature": self.state.value,
            "identity": self.identity.value if self.identity else None,
            "public_key": self.public_key,
            "public_key_sha256": self.public_key_sha256,
            "signature_encoding": self.signature_encoding,
            "domain": self.domain,
            "certificate_subject": self.certificate_subject,
            "certificate_sha256": self.certificate_sha256,
            "chain_checked": self.chain_checked,
            "created": self.created,
            "software": self.software,
            "ok": self.ok,
            "verdict": self.verdict,
            "problems": list(self.problems),
            "notes": list(self.notes),
        }


def check_digest_file(digest_bytes: bytes, datapackage_bytes: bytes) -> DigestCheck:
    """:func:`check_datapackage_digest` on the bytes of a ``datapackage-digest.json``."""
    if len(digest_bytes) > _DIGEST_LIMIT:
        result = DigestCheck(datapackage_hash(datapackage_bytes))
        result.problems.append(f"{DIGEST_FILE} is larger than {_DIGEST_LIMIT} bytes")
        return result
    try:
        doc = json.loads(digest_bytes.decode("utf-8"), object_pairs_hook=_unique_keys)
    except (UnicodeDecodeError, ValueError) as exc:
        result = DigestCheck(datapackage_hash(datapackage_bytes))
        result.problems.append(f"{DIGEST_FILE} is not UTF-8 JSON ({exc})")
        return result
    return check_datapackage_digest(doc, datapackage_bytes)


def check_datapackage_digest(digest_doc: object, datapackage_bytes: bytes) -> DigestCheck:
    """Check a ``datapackage-digest.json`` (parsed) against ``datapackage.json``'s bytes,
    as ReplayWeb.page does and a little more; malformed input is a problem, never an
    exception.  The state is VALID only when the signature holds for the key it names."""
    result = DigestCheck(datapackage_hash(datapackage_bytes))
    if not isinstance(digest_doc, dict):
        result.problems.append(f"{DIGEST_FILE} is not a JSON object")
        return result
    if digest_doc.get("path") != DATAPACKAGE:
        result.problems.append(
            f"{DIGEST_FILE} path is {digest_doc.get('path')!r}, not {DATAPACKAGE!r}"
        )
    declared = digest_doc.get("hash")
    if not isinstance(declared, str) or not _HASH_RE.fullmatch(declared):
        result.problems.append(f"{DIGEST_FILE} hash is not sha256:<64 lowercase hex>")
    else:
        result.hash = declared
        result.hash_ok = declared == result.actual_hash
        if not result.hash_ok:
            result.problems.append(
                f"{DATAPACKAGE} does not match its digest: {declared} declared, "
                f"{result.actual_hash} found"
            )
    signed = digest_doc.get("signedData")
    if signed is None:
        result.state = SignatureState.UNSIGNED
        return result
    if not isinstance(signed, dict):
        result.problems.append("signedData is not a JSON object")
        return result
    fields = _signed_fields(signed, result)
    if fields is None:
        return result
    result.created = fields.get("created")
    result.software = fields.get("software")
    _compare_created(result, datapackage_bytes)
    signed_hash = fields.get("hash")
    if signed_hash is None:
        result.problems.append("signedData has no hash")
        return result
    if signed_hash != declared:
        # ReplayWeb.page then ignores the signature altogether
        result.problems.append("signedData hash differs from the digest's hash")
    if "publicKey" in fields:
        key = _anonymous_key(fields["publicKey"], result)
        if "domain" in fields:
            result.problems.append(
                "signedData names a domain but also a publicKey; the signature is checked "
                "with the publicKey, which proves nothing about the domain"
            )
    elif "domain" in fields and "domainCert" in fields:
        key = _domain_key(fields["domain"], fields["domainCert"], result)
    else:
        result.problems.append("signedData has neither a publicKey nor a domain and domainCert")
        return result
    if key is None:
        return result
    for extra in ("timeSignature", "timestampCert", "crossSignedCert"):
        if extra in signed:
            result.notes.append(f"signedData {extra} was not checked")
    _verify(key, fields.get("signature"), signed_hash, result)
    result.notes.append(_UNSIGNED_FIELDS_NOTE)
    return result


def _signed_fields(signed: dict[str, Any], result: DigestCheck) -> dict[str, str] | None:
    """The string fields of signedData that we read, each within its limit."""
    fields: dict[str, str] = {}
    for name, limit in _FIELD_LIMITS.items():
        if signed.get(name) in (None, ""):  # absent, as ReplayWeb.page reads it
            continue
        value = signed[name]
        if not isinstance(value, str):
            result.problems.append(f"signedData {name} is not a string")
            return None
        if len(value) > limit:
            result.problems.append(f"signedData {name} is longer than {limit} characters")
            return None
        fields[name] = value
    return fields


def _compare_created(result: DigestCheck, datapackage_bytes: bytes) -> None:
    try:
        package = json.loads(datapackage_bytes)
    except ValueError:
        result.problems.append(f"{DATAPACKAGE} is not JSON")
        return
    created = package.get("created") if isinstance(package, dict) else None
    if result.created is not None and created is not None and created != result.created:
        result.problems.append(
            f"signedData created {result.created!r} is not {DATAPACKAGE}'s created {created!r}"
        )


def _anonymous_key(text: str, result: DigestCheck) -> ec.EllipticCurvePublicKey | None:
    result.identity = Identity.ANONYMOUS
    der = _b64(text)
    if der is None:
        result.problems.append("signedData publicKey is not base64")
        return None
    key = _p384_public(der)
    if key is None:
        result.problems.append(
            "signedData publicKey is not an ECDSA P-384 public key (SubjectPublicKeyInfo DER)"
        )
        return None
    result.public_key = text
    result.public_key_sha256 = hashlib.sha256(der).hexdigest()
    return key


def _domain_key(domain: str, chain: str, result: DigestCheck) -> ec.EllipticCurvePublicKey | None:
    result.identity = Identity.DOMAIN
    result.domain = domain
    try:
        certs = x509.load_pem_x509_certificates(chain.encode("ascii"))
    except (ValueError, UnicodeEncodeError) as exc:
        result.problems.append(f"signedData domainCert is not PEM certificates ({exc})")
        return None
    if len(certs) > _MAX_CERTS:
        result.problems.append(f"signedData domainCert holds more than {_MAX_CERTS} certificates")
        return None
    leaf = certs[0]
    result.certificate_sha256 = leaf.fingerprint(hashes.SHA256()).hex()
    result.certificate_subject = leaf.subject.rfc4514_string()
    result.notes.append(_CHAIN_NOTE)
    try:
        key = leaf.public_key()
    except (ValueError, UnsupportedAlgorithm):
        result.problems.append("the domain certificate's key cannot be read")
        return None
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, _DOMAIN_CURVES):
        result.problems.append(
            "the domain certificate's key is not an ECDSA key on P-256, P-384 or P-521 "
            "(ReplayWeb.page checks ECDSA only)"
        )
        return None
    der = spki_der(key)
    result.public_key = base64.b64encode(der).decode("ascii")
    result.public_key_sha256 = hashlib.sha256(der).hexdigest()
    names = [str(a.value).lower() for a in leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    try:
        san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        names += [n.lower() for n in san.value.get_values_for_type(x509.DNSName)]
    except x509.ExtensionNotFound:
        pass
    if domain.lower() not in names:
        result.problems.append(
            f"the domain {domain!r} is not a name of the domain certificate "
            f"({result.certificate_subject})"
        )
    return key


def _verify(
    key: ec.EllipticCurvePublicKey, text: str | None, signed_hash: str, result: DigestCheck
) -> None:
    if not text:
        result.problems.append("signedData has no signature")
        return
    blob = _b64(text)
    if blob is None:
        result.problems.append("signedData signature is not base64")
        return
    message = signed_hash.encode("utf-8", "surrogatepass")
    size = (key.curve.key_size + 7) // 8
    candidates: list[tuple[str, bytes]] = []
    if len(blob) == 2 * size:
        r, s = int.from_bytes(blob[:size], "big"), int.from_bytes(blob[size:], "big")
        candidates.append(("raw", encode_dss_signature(r, s)))
    try:
        decode_dss_signature(blob)
        candidates.append(("der", blob))
    except ValueError:
        pass
    if not candidates:
        result.problems.append(
            f"signedData signature is {len(blob)} bytes: neither raw r||s ({2 * size}) nor DER"
        )
        return
    for encoding, der in candidates:
        try:
            key.verify(der, message, ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            continue
        result.state = SignatureState.VALID
        result.signature_encoding = encoding
        if encoding == "der":
            result.notes.append(
                "the signature is DER-encoded: ReplayWeb.page reads raw r||s and will not "
                "show it as valid"
            )
        return
    result.problems.append("the signature does not hold for the hash and the key given")
