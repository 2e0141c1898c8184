"""A certificate authority of one capture, so that its browser's HTTPS can be intercepted.

A browser capture sends every request of Chromium through a proxy on loopback
(:mod:`archiver.web.proxy`), which hands it to archiver's own HTTP client: that client,
not the browser, talks to the origin and writes the exchange into the WARC file. For
HTTPS the browser opens a ``CONNECT`` tunnel and expects a TLS server at its end; the
proxy plays that server with a certificate for the host the browser asked for, issued
by the authority made here. The browser is told to accept it by the SPKI hashes
(Chromium's ``--ignore-certificate-errors-spki-list``) or by the CA certificate.

Why one authority per capture, and why it never touches a disk: a CA key that a
browser trusts can impersonate any site to that browser. This one exists in memory for
the life of one capture (its certificate is valid for two days at most), signs leaf
certificates only for hosts the capture asked about, and is dropped by :meth:`close`.
The TLS certificates it issues are not evidence: what the origin presented is recorded
by the HTTP client, which verifies the real certificate chain itself.

Python's :mod:`ssl` loads a certificate and key only from a path, so each leaf's
chain and key are handed over through ``/dev/fd/N`` of a pipe (the bytes never reach a
file system); where that does not work, through a mode 0600 file in a mode 0700
directory that is removed as soon as it is loaded.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import ipaddress
import os
import re
import ssl
import tempfile
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from archiver.core.errors import Failure, UsageProblem

CA_LIFETIME = timedelta(days=2)
BACKDATE = timedelta(hours=1)  # clocks of the browser and of this process may disagree
CN_PREFIX = "archiver interception CA "
_CN_LIMIT = 64  # X.520 ub-common-name
_LABEL = r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?"
_DNS_NAME = re.compile(rf"(?:{_LABEL}\.)*{_LABEL}\.?")

Route = Literal["pipe", "file"]


class InterceptionError(Failure):
    """The authority cannot issue what was asked: a host that is no DNS name or IP
    address, or an authority already closed."""


def _spki_hash(key: ec.EllipticCurvePublicKey) -> str:
    """Base64 of SHA-256 over the SubjectPublicKeyInfo DER: what Chromium's
    ``--ignore-certificate-errors-spki-list`` takes."""
    der = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(hashlib.sha256(der).digest()).decode("ascii")


def _private_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _san(host: str) -> tuple[str, list[x509.GeneralName]]:
    """The host as it goes into the certificate, and its subjectAltName entries. An IP
    literal (brackets allowed) is an iPAddress, anything else must be an ASCII DNS name
    (a browser sends IDNs in their A-label form)."""
    bare = host.strip()
    if bare.startswith("[") and bare.endswith("]"):
        bare = bare[1:-1]
    try:
        address = ipaddress.ip_address(bare)
    except ValueError:
        pass
    else:
        return str(address), [x509.IPAddress(address)]
    name = bare.lower()
    if len(name.rstrip(".")) > 253 or not _DNS_NAME.fullmatch(name):
        raise InterceptionError(f"cannot issue a certificate for {host!r}: not a DNS name")
    names = [name]
    if name.endswith("."):  # "example.org." and "example.org" name the same host
        names.append(name.rstrip("."))
    return name, [x509.DNSName(n) for n in names]


def load_chain(
    context: ssl.SSLContext, chain_pem: bytes, key_pem: bytes, *, pipe: bool = True
) -> Route:
    """Load a certificate chain and its private key into ``context`` without writing the
    key to a file system: through ``/dev/fd/N`` of two pipes, or, when ``pipe`` is false
    or that fails, through files in a private temporary directory removed at once.
    Returns the route that worked."""
    if pipe:
        try:
            _load_through_pipes(context, chain_pem, key_pem)
            return "pipe"
        except (OSError, ssl.SSLError):
            pass  # no /dev/fd here (or PEM larger than a pipe holds): the file route
    _load_through_files(context, chain_pem, key_pem)
    return "file"


def _load_through_pipes(context: ssl.SSLContext, chain_pem: bytes, key_pem: bytes) -> None:
    fds: list[int] = []
    try:
        readers = []
        for pem in (chain_pem, key_pem):
            read_end, write_end = os.pipe()
            fds += [read_end, write_end]
            if len(pem) > 60_000:  # more than a pipe buffers: writing would block
                raise OSError("PEM too large for a pipe")
            os.write(write_end, pem)
            os.close(write_end)
            fds.remove(write_end)
            readers.append(read_end)
        context.load_cert_chain(f"/dev/fd/{readers[0]}", f"/dev/fd/{readers[1]}")
    finally:
        for fd in fds:
            with contextlib.suppress(OSError):
                os.close(fd)


def _load_through_files(context: ssl.SSLContext, chain_pem: bytes, key_pem: bytes) -> None:
    folder = tempfile.mkdtemp(prefix="archiver-tls-")  # mode 0700
    paths = [os.path.join(folder, "chain.pem"), os.path.join(folder, "key.pem")]
    try:
        for path, pem in zip(paths, (chain_pem, key_pem), strict=True):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
            try:
                os.write(fd, pem)
            finally:
                os.close(fd)
        context.load_cert_chain(paths[0], paths[1])
    finally:
        for path in paths:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
        os.rmdir(folder)


@dataclass(eq=False)
class InterceptionCA:
    """One capture's interception authority: an EC P-256 CA key and its self-signed
    certificate, and one EC P-256 leaf key that every leaf certificate shares (a key
    per host would cost time and protect nothing: all of them live in the same
    process, for the same browser). Make one with :meth:`create`."""

    label: str
    fingerprint: str  # "sha256:" + hex of SHA-256 over the CA certificate's DER
    cert_pem: bytes  # the CA certificate
    spki_hashes: tuple[str, ...]  # of the CA key, then of the leaf key
    not_after: datetime
    use_pipe: bool = True  # False: load leaf keys through the file route (tests; odd systems)
    _ca_key: ec.EllipticCurvePrivateKey | None = field(default=None, repr=False)
    _leaf_key: ec.EllipticCurvePrivateKey | None = field(default=None, repr=False)
    _ca_cert: x509.Certificate | None = field(default=None, repr=False)
    _contexts: dict[str, ssl.SSLContext] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def create(cls, label: str) -> InterceptionCA:
        """A fresh authority named ``archiver interception CA <label>`` (the capture id,
        say), valid from an hour ago for two days."""
        common_name = CN_PREFIX + label
        if not label.isprintable() or len(common_name) > _CN_LIMIT:
            raise UsageProblem(
                f"interception CA label {label!r}: printable, at most "
                f"{_CN_LIMIT - len(CN_PREFIX)} characters"
            )
        now = datetime.now(UTC)
        ca_key = ec.generate_private_key(ec.SECP256R1())
        leaf_key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name(
            [
                x509.NameAttribute(NameOID.COMMON_NAME, common_name),
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "archiver"),
            ]
        )
        public = ca_key.public_key()
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - BACKDATE)
            .not_valid_after(now + CA_LIFETIME)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
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
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
            .sign(ca_key, hashes.SHA256())
        )
        der = cert.public_bytes(serialization.Encoding.DER)
        return cls(
            label=label,
            fingerprint="sha256:" + hashlib.sha256(der).hexdigest(),
            cert_pem=cert.public_bytes(serialization.Encoding.PEM),
            spki_hashes=(_spki_hash(public), _spki_hash(leaf_key.public_key())),
            not_after=now + CA_LIFETIME,
            _ca_key=ca_key,
            _leaf_key=leaf_key,
            _ca_cert=cert,
        )

    def server_context(self, host: str) -> ssl.SSLContext:
        """A TLS server context presenting a certificate for ``host`` (a DNS name, or an
        IP literal), chain leaf + CA, ALPN ``http/1.1`` only (the proxy reads HTTP/1.1
        inside the tunnel), TLS 1.2 or later. One per host, made once."""
        name, sans = _san(host)
        with self._lock:
            if self._ca_key is None or self._leaf_key is None or self._ca_cert is None:
                raise InterceptionError("the interception CA is closed")
            cached = self._contexts.get(name)
            if cached is not None:
                return cached
            leaf = self._leaf(name, sans, self._ca_key, self._leaf_key, self._ca_cert)
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.minimum_version = ssl.TLSVersion.TLSv1_2
            context.set_alpn_protocols(["http/1.1"])
            chain = leaf.public_bytes(serialization.Encoding.PEM) + self.cert_pem
            load_chain(context, chain, _private_pem(self._leaf_key), pipe=self.use_pipe)
            self._contexts[name] = context
            return context

    def _leaf(
        self,
        name: str,
        sans: list[x509.GeneralName],
        ca_key: ec.EllipticCurvePrivateKey,
        leaf_key: ec.EllipticCurvePrivateKey,
        ca_cert: x509.Certificate,
    ) -> x509.Certificate:
        now = datetime.now(UTC)
        subject = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, "archiver")]
        if len(name) <= _CN_LIMIT:  # browsers read the SAN only; the CN is for people
            subject.insert(0, x509.NameAttribute(NameOID.COMMON_NAME, name))
        ca_ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        public = leaf_key.public_key()
        return (
            x509.CertificateBuilder()
            .subject_name(x509.Name(subject))
            .issuer_name(ca_cert.subject)
            .public_key(public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - BACKDATE)
            .not_valid_after(self.not_after)
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
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
                critical=False,
            )
            .sign(ca_key, hashes.SHA256())
        )

    @property
    def closed(self) -> bool:
        return self._ca_key is None

    def close(self) -> None:
        """Drop the keys and every cached context: nothing can be issued after this.
        (Python cannot wipe memory; the objects go to the garbage collector.)"""
        with self._lock:
            self._contexts.clear()
            self._ca_key = None
            self._leaf_key = None
            self._ca_cert = None

    def __enter__(self) -> InterceptionCA:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
