"""The interception CA of a browser capture: its certificates as a browser and OpenSSL
read them, real TLS handshakes against its server contexts, and no private key on disk."""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import os
import socket
import ssl
import subprocess
import tempfile
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from cryptography.x509.verification import PolicyBuilder, Store

from archiver.core.errors import UsageProblem
from archiver.trust.interception import InterceptionCA, InterceptionError, load_chain


@pytest.fixture
def private_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The temporary directory Python hands out, emptied to this test's own, so that
    whatever the CA leaves there is seen."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


def handshake(
    ca: InterceptionCA,
    host: str,
    *,
    family: int = socket.AF_INET,
    alpn: list[str] | None = None,
) -> tuple[bytes, str | None, str | None]:
    """One real TLS handshake with ``ca.server_context(host)`` on loopback, the client
    trusting only the CA and checking the host name: (leaf DER, ALPN, TLS version)."""
    server_context = ca.server_context(host)
    address = "::1" if family == socket.AF_INET6 else "127.0.0.1"
    listener = socket.socket(family)
    listener.bind((address, 0))
    listener.listen(1)
    failures: list[BaseException] = []

    def serve() -> None:
        conn, _ = listener.accept()
        try:
            with server_context.wrap_socket(conn, server_side=True) as tls:
                tls.sendall(b"hello")
        except (OSError, ssl.SSLError) as exc:
            failures.append(exc)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    client_context = ssl.create_default_context(cadata=ca.cert_pem.decode("ascii"))
    assert client_context.check_hostname
    if alpn:
        client_context.set_alpn_protocols(alpn)
    try:
        with (
            socket.create_connection(listener.getsockname()[:2], timeout=5) as raw,
            client_context.wrap_socket(raw, server_hostname=host) as tls,
        ):
            assert tls.recv(5) == b"hello"
            leaf = tls.getpeercert(binary_form=True)
            assert leaf is not None
            return leaf, tls.selected_alpn_protocol(), tls.version()
    finally:
        thread.join(5)
        listener.close()


def openssl_spki_hash(cert_pem: bytes) -> str:
    """``openssl x509 -pubkey | openssl pkey -pubin -outform der | openssl dgst -sha256
    -binary | base64``, as Chromium's documentation gives it."""
    result = subprocess.run(
        "openssl x509 -pubkey -noout | openssl pkey -pubin -outform der"
        " | openssl dgst -sha256 -binary | base64",
        shell=True,
        input=cert_pem,
        capture_output=True,
        check=True,
    )
    return result.stdout.decode("ascii").strip()


def der_to_pem(der: bytes) -> bytes:
    return x509.load_der_x509_certificate(der).public_bytes(serialization.Encoding.PEM)


def test_the_ca_certificate_is_a_short_lived_path_length_zero_authority() -> None:
    before = datetime.now(UTC)
    ca = InterceptionCA.create("20260101120000-0123456789")
    cert = x509.load_pem_x509_certificate(ca.cert_pem)
    assert cert.subject == cert.issuer
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == (
        "archiver interception CA 20260101120000-0123456789"
    )
    assert cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "archiver"
    constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.critical and constraints.value.ca and constraints.value.path_length == 0
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical and usage.value.key_cert_sign and usage.value.crl_sign
    assert not usage.value.digital_signature
    ski = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert ski == x509.SubjectKeyIdentifier.from_public_key(cert.public_key())
    assert (
        before - timedelta(hours=1, seconds=5)
        <= cert.not_valid_before_utc
        <= before - timedelta(minutes=59)
    )
    assert cert.not_valid_after_utc - cert.not_valid_before_utc == timedelta(days=2, hours=1)
    der = cert.public_bytes(serialization.Encoding.DER)
    assert ca.fingerprint == "sha256:" + hashlib.sha256(der).hexdigest()
    # a fresh key each time
    assert InterceptionCA.create("x").fingerprint != InterceptionCA.create("x").fingerprint


def test_a_label_that_cannot_name_the_ca_is_refused() -> None:
    with pytest.raises(UsageProblem):
        InterceptionCA.create("x" * 40)
    with pytest.raises(UsageProblem):
        InterceptionCA.create("line\nbreak")
    InterceptionCA.create("x" * 39)


def test_a_leaf_for_a_name_verifies_against_the_ca_with_its_host_name() -> None:
    ca = InterceptionCA.create("leaf")
    leaf_der, alpn, version = handshake(ca, "localhost", alpn=["h2", "http/1.1"])
    assert alpn == "http/1.1"  # never h2: the proxy reads HTTP/1.1 in the tunnel
    assert version in ("TLSv1.2", "TLSv1.3")
    leaf = x509.load_der_x509_certificate(leaf_der)
    ca_cert = x509.load_pem_x509_certificate(ca.cert_pem)
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]
    assert san.get_values_for_type(x509.IPAddress) == []
    eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH]
    aki = leaf.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    ca_ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert aki.key_identifier == ca_ski.digest
    assert not leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert leaf.not_valid_after_utc <= ca_cert.not_valid_after_utc
    # cryptography's own path validation (the WebPKI rules a browser applies)
    verifier = (
        PolicyBuilder().store(Store([ca_cert])).build_server_verifier(x509.DNSName("localhost"))
    )
    chain = verifier.verify(leaf, [])
    assert chain[-1] == ca_cert
    with pytest.raises(x509.verification.VerificationError):
        PolicyBuilder().store(Store([ca_cert])).build_server_verifier(
            x509.DNSName("example.org")
        ).verify(leaf, [])


def test_a_leaf_for_an_ip_address_carries_it_as_an_ip_address(tmp_path: Path) -> None:
    ca = InterceptionCA.create("ip")
    for host, family in (("127.0.0.1", socket.AF_INET), ("::1", socket.AF_INET6)):
        leaf = x509.load_der_x509_certificate(handshake(ca, host, family=family)[0])
        san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address(host)]
        assert san.get_values_for_type(x509.DNSName) == []
        (tmp_path / "ca.pem").write_bytes(ca.cert_pem)
        (tmp_path / "leaf.pem").write_bytes(
            der_to_pem(leaf.public_bytes(serialization.Encoding.DER))
        )
        verified = subprocess.run(
            ["openssl", "verify", "-CAfile", "ca.pem", "-verify_ip", host, "leaf.pem"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
        )
        assert verified.returncode == 0, verified.stderr
        assert "leaf.pem: OK" in verified.stdout
        wrong = subprocess.run(
            ["openssl", "verify", "-CAfile", "ca.pem", "-verify_ip", "10.0.0.1", "leaf.pem"],
            cwd=tmp_path,
            capture_output=True,
        )
        assert wrong.returncode != 0


def test_openssl_verifies_a_leaf_for_a_name(tmp_path: Path) -> None:
    ca = InterceptionCA.create("openssl")
    (tmp_path / "ca.pem").write_bytes(ca.cert_pem)
    (tmp_path / "leaf.pem").write_bytes(der_to_pem(handshake(ca, "www.example.org")[0]))
    good = subprocess.run(
        [
            *("openssl", "verify", "-CAfile", "ca.pem", "-purpose", "sslserver"),
            *("-verify_hostname", "www.example.org", "leaf.pem"),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert good.returncode == 0, good.stderr
    other = InterceptionCA.create("other")  # another capture's CA does not vouch for it
    (tmp_path / "other.pem").write_bytes(other.cert_pem)
    bad = subprocess.run(
        ["openssl", "verify", "-CAfile", "other.pem", "leaf.pem"], cwd=tmp_path, capture_output=True
    )
    assert bad.returncode != 0


def test_the_spki_hashes_are_what_chromiums_documented_command_gives() -> None:
    ca = InterceptionCA.create("spki")
    leaf_pem = der_to_pem(handshake(ca, "localhost")[0])
    other_leaf_pem = der_to_pem(handshake(ca, "example.org")[0])
    assert ca.spki_hashes == (openssl_spki_hash(ca.cert_pem), openssl_spki_hash(leaf_pem))
    # one leaf key for every host
    assert openssl_spki_hash(other_leaf_pem) == ca.spki_hashes[1]
    assert len(base64.b64decode(ca.spki_hashes[0])) == 32


def test_contexts_are_made_once_per_host_even_when_asked_at_once() -> None:
    ca = InterceptionCA.create("cache")
    got: list[ssl.SSLContext] = []
    barrier = threading.Barrier(8)

    def ask() -> None:
        barrier.wait()
        got.append(ca.server_context("Example.ORG"))

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(got) == 8 and all(context is got[0] for context in got)
    assert ca.server_context("example.org") is got[0]  # host names are case-insensitive
    assert ca.server_context("example.net") is not got[0]
    assert got[0].minimum_version == ssl.TLSVersion.TLSv1_2


def test_hosts_that_are_no_names_are_refused() -> None:
    ca = InterceptionCA.create("names")
    for host in ("", "-bad.example", "a b", "exa\u00e4mple.org", "x" * 64 + ".org", "a..b"):
        with pytest.raises(InterceptionError):
            ca.server_context(host)
    ca.server_context("[::1]")  # an IPv6 literal as it appears in a URL
    ca.server_context("_dmarc.example.org.")


def test_the_pipe_route_leaves_nothing_on_disk(private_tmp: Path) -> None:
    ca = InterceptionCA.create("pipe")
    fds_before = set(os.listdir("/proc/self/fd"))
    handshake(ca, "localhost")
    assert list(private_tmp.iterdir()) == []
    assert set(os.listdir("/proc/self/fd")) == fds_before  # no pipe left open
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    chain, key = _chain_and_key()
    assert load_chain(context, chain, key) == "pipe"
    assert list(private_tmp.iterdir()) == []


def test_the_file_route_works_and_removes_its_files(private_tmp: Path) -> None:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    chain, key = _chain_and_key()
    assert load_chain(context, chain, key, pipe=False) == "file"
    assert list(private_tmp.iterdir()) == []
    ca = InterceptionCA.create("file")
    ca.use_pipe = False
    leaf = x509.load_der_x509_certificate(handshake(ca, "localhost")[0])  # a working server
    assert leaf.issuer == x509.load_pem_x509_certificate(ca.cert_pem).subject
    assert list(private_tmp.iterdir()) == []


def test_the_file_route_cleans_up_when_loading_fails(private_tmp: Path) -> None:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    chain, _ = _chain_and_key()
    _, other_key = _chain_and_key()
    with pytest.raises(ssl.SSLError):
        load_chain(context, chain, other_key, pipe=False)  # key and certificate disagree
    assert list(private_tmp.iterdir()) == []


def test_closed_ca_issues_nothing() -> None:
    ca = InterceptionCA.create("closed")
    ca.server_context("localhost")
    ca.close()
    assert ca.closed
    with pytest.raises(InterceptionError):
        ca.server_context("localhost")
    ca.close()  # twice is fine


def _chain_and_key() -> tuple[bytes, bytes]:
    """A leaf chain and key as the CA makes them, through its own (private) parts."""
    ca = InterceptionCA.create("parts")
    assert ca._leaf_key is not None and ca._ca_key is not None and ca._ca_cert is not None
    name = "localhost"
    leaf = ca._leaf(name, [x509.DNSName(name)], ca._ca_key, ca._leaf_key, ca._ca_cert)
    key = ca._leaf_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return leaf.public_bytes(serialization.Encoding.PEM) + ca.cert_pem, key
