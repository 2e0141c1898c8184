"""The certificates of time-stamp authorities: a chain from a token's signer to a
trusted root, PEM and fingerprints; and the problems a token's check raises
(:class:`TokenProblem`, :class:`UntrustedChain`, also reachable from rfc3161)."""

from __future__ import annotations

from datetime import datetime

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import ExtendedKeyUsageOID, ExtensionOID

from archiver.core.errors import Failure

_MAX_CHAIN = 8


class TokenProblem(Failure):
    """A time-stamp token is refused, unreadable, or does not verify; the message says why."""

    unexpected = True  # the CLI hints at --debug (archiver.core.errors)


class UntrustedChain(TokenProblem):
    """The token's certificate chain does not reach one of the roots given.  Raised only
    once the imprint, the nonce and the signer's key usage hold (the CMS signature is
    then not checked yet: :func:`rfc3161.check_token_unrooted` checks it without a root)."""


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
