"""RFC 3161 time-stamp tokens: requests, and reading and checking them offline.

A time-stamp token is a CMS SignedData by a time-stamping authority (TSA) over a
TSTInfo: the hash of what it stamps (the message imprint), the time, a serial
number and the nonce of the request.  archiver stamps the raw bytes of a manifest's
signature.  rfc3161-client (Trail of Bits, used by sigstore) parses tokens and checks
the CMS signature; the certificate chain, its validity at the token's time and the
timeStamping key usage are checked here too, with nothing trusted but the roots given.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from archiver.trust.certificates import TokenProblem as TokenProblem
from archiver.trust.certificates import UntrustedChain as UntrustedChain
from archiver.trust.certificates import (
    _check_critical_extensions,
    _check_timestamping_usage,
    _walk_chain,
    build_chain,
    is_self_issued,
)
from archiver.trust.cms import (
    _OID_SHA256,
    _CertId,
    _issuer_der,
    _signer_info,
    _SignerInfo,
    certificates_in_der_order,
)

_IMPRINT_HASHES = {
    "2.16.840.1.101.3.4.2.1": ("sha256", hashlib.sha256),
    "2.16.840.1.101.3.4.2.2": ("sha384", hashlib.sha384),
    "2.16.840.1.101.3.4.2.3": ("sha512", hashlib.sha512),
}


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


# the token's CMS signature and ESS signing certificate, as read by archiver.trust.cms,
# checked here as OpenSSL checks them (rfc3161-client does so only with a root)
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


def _oid_of(name: str) -> str:
    return next((oid for oid, (n, _) in _IMPRINT_HASHES.items() if n == name), name)
