"""A time-stamp token's DER and CMS SignedData, read byte by byte: its TLVs, its
certificates put in DER order, and what its one SignerInfo holds (the signed attributes,
the signature, the ESS signing certificate ids), for :mod:`archiver.trust.rfc3161`."""

from __future__ import annotations

from dataclasses import dataclass

from cryptography import x509


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


# a token's CMS SignedData (RFC 5652), read here (and checked in rfc3161) for what
# rfc3161-client does not check (the ESS signing certificate) and for checking its
# signature with the signer's key alone: rfc3161-client (OpenSSL's PKCS7_verify) checks
# it only with a chain to a root.  What is read here was parsed by rfc3161-client first
# (rfc3161._response), whose parser takes DER only (minimal lengths, SET OF in order):
# the signed attributes are as OpenSSL re-encodes them to check the signature.
_OID_SIGNED_DATA = "1.2.840.113549.1.7.2"
_OID_TST_INFO = "1.2.840.113549.1.9.16.1.4"
_OID_CONTENT_TYPE = "1.2.840.113549.1.9.3"
_OID_MESSAGE_DIGEST = "1.2.840.113549.1.9.4"
_OID_SIGNING_CERTIFICATE = "1.2.840.113549.1.9.16.2.12"  # ESS, RFC 2634: SHA-1 hashes
_OID_SIGNING_CERTIFICATE_V2 = "1.2.840.113549.1.9.16.2.47"  # ESS, RFC 5035
_OID_SHA256 = "2.16.840.1.101.3.4.2.1"


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
