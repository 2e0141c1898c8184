"""WACZ: the web archive as one file that leaves the tool, signed, and back again.

A WACZ (Webrecorder's format, version 1.1.1) is a ZIP file::

    archive/<capture id>-NNNNN.warc.gz     the capture's WARC files, byte for byte (STORE)
    indexes/index.cdxj                     where each served record is (archiver.index.cdxj);
                                           past 5,000 lines index.cdx.gz + index.idx
    pages/pages.jsonl                      the page of each capture, its title and time
    datapackage.json                       every other file with its SHA-256 and size
    datapackage-digest.json                the SHA-256 of datapackage.json, signed (P-384)

and, so that our own evidence travels with it and stays checkable offline, one flat
folder (``wacz validate`` reads only ``folder/file`` paths)::

    archiver/<capture id>.manifest.json            the signed manifest, as in the archive
    archiver/<capture id>.manifest.json.sig        its Ed25519 signature
    archiver/<capture id>.manifest.json.sig.<authority>.tsr   each RFC 3161 token
    archiver/tsa.<authority>.<sha256>[.unchecked].pem         each token's chain
    archiver/<fingerprint>.pub.pem                 the Ed25519 public keys
    archiver/<fingerprint>.p384.pub.pem            the P-384 key the WACZ is signed with
    archiver/<fingerprint>.p384.binding.json(.sig) the Ed25519 key naming the P-384 key
    archiver/custody.jsonl                         the custody events of these captures

:mod:`.export` writes it, :mod:`.check` verifies one from the file alone, :mod:`.load`
imports one made by another tool.
"""

from __future__ import annotations

import re

WACZ_VERSION = "1.1.1"
DATAPACKAGE = "datapackage.json"
DIGEST = "datapackage-digest.json"
ARCHIVE_DIR = "archive/"
INDEX = "indexes/index.cdxj"
INDEX_DATA = "indexes/index.cdx.gz"  # a large index, compressed (ZipNum)
INDEX_IDX = "indexes/index.idx"
PLAIN_INDEX_LINES = 5000
"""Up to this many lines the index is one CDXJ file; past it, compressed (ZipNum), so that
ReplayWeb.page loads a member at a time rather than the whole index first."""
PAGES = "pages/pages.jsonl"
EVIDENCE_DIR = "archiver/"
CUSTODY = EVIDENCE_DIR + "custody.jsonl"
PAGES_HEADER = {"format": "json-pages-1.0", "id": "pages", "title": "All Pages"}

AUTHORITY = r"[a-z0-9][a-z0-9.-]*"
"""A time-stamping authority's name, as archiver makes it (host and port, never a path)."""
TSA_CHAIN = re.compile(
    rf"^tsa\.(?P<authority>{AUTHORITY})\.(?P<sha>[0-9a-f]{{64}})(?P<unchecked>\.unchecked)?\.pem$"
)
"""A token's chain, flattened: ``tsa/<authority>/<sha>[.unchecked].pem`` in an archive."""


def tsa_chain_name(authority: str, file_name: str) -> str:
    """``archiver/tsa.<authority>.<file name>`` for ``tsa/<authority>/<file name>``."""
    return f"{EVIDENCE_DIR}tsa.{authority}.{file_name}"
