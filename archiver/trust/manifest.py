"""The signed manifest of a capture: every file and record it wrote, and who vouches for it.

A capture ends by writing, beside its WARC files::

    warc/<collection>/<capture_id>.manifest.json      what was written (schemas/manifest.v2.json)
    warc/<collection>/<capture_id>.manifest.json.sig  raw 64-byte Ed25519 signature of those bytes
    keys/<fingerprint>.pub.pem                        the signer's public key (SubjectPublicKeyInfo)

The manifest holds the capture's ``captures`` row, each WARC file with its size and
SHA-256, and each record's ``records`` row (file, offset, length, SHA-256 of the
stored bytes, record id, target URI, digests, provenance).  Every path in it is
relative to the archive directory.  The signature covers the exact bytes of the
file, so ``openssl pkeyutl -verify -rawin`` checks it (see docs/verifying.md); the
index is derived data, checked row by row against the manifests.

The file is ASCII JSON, one file or record per line, so that it can be read, and
checked with ``sed`` and ``sha256sum``, without any of our code.

Its ``format`` says which version of the tables its rows follow (:data:`TABLE_VERSIONS`),
every column of that version there and no other: ``archiver/manifest/2`` holds the
``captures`` row of ``schemas/captures.v2.json`` (with the browser columns),
``archiver/manifest/1``, written before them, the row of ``captures.v1.json``.  A signed
manifest is never rewritten, so both are read, and written back byte for byte
(:attr:`Manifest.version`); a row read from format 1 has the newer columns null, which
is what an index row of such a capture must hold.  A format not listed is an error.
"""

from __future__ import annotations

import hashlib
import json
import mmap
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, fields, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

from archiver.core.atomic import atomic_path
from archiver.core.errors import Failure
from archiver.core.layout import CAPTURE_ID
from archiver.core.model import isoformat
from archiver.index import schema
from archiver.index.store import CaptureRow, RecordRow, RecordRows

FORMAT_PREFIX = "archiver/manifest/"
VERSION = 2  # what new captures write
FORMAT = f"{FORMAT_PREFIX}{VERSION}"
# the schema version of each table's rows in each manifest format (schemas/manifest.vN.json)
TABLE_VERSIONS: dict[int, dict[str, int]] = {
    1: {"captures": 1, "records": 1},
    2: {"captures": 2, "records": 1},
}
MANIFEST_SUFFIX = ".manifest.json"
SIGNATURE_SUFFIX = MANIFEST_SUFFIX + ".sig"
KEYS_DIR = "keys"
ALGORITHM = "Ed25519"
TOP_LEVEL = ("format", "capture_id", "signed_at", "signer", "tool", "capture", "files", "records")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_PATH = re.compile(r"^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$")


class ManifestError(Failure, ValueError):
    """A manifest cannot be read: not JSON, another format, or a field of the wrong type."""

    unexpected = True  # the CLI hints at --debug (archiver.core.errors)


def _one_value_per_key(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object whose keys are all different.  With a key twice, Python's parser keeps
    the last value while a person (or ``grep``) reads the first: a signed manifest must
    read one way only."""
    doc: dict[str, Any] = {}
    for key, value in pairs:
        if key in doc:
            raise ManifestError(f"the key {key!r} appears twice in one object")
        doc[key] = value
    return doc


@dataclass(frozen=True)
class FileEntry:
    """A WARC file of the capture: its path relative to the archive, size and SHA-256."""

    path: str
    size: int
    sha256: str


@dataclass(frozen=True)
class Manifest:
    capture_id: str
    signed_at: datetime
    key_fingerprint: str
    tool_name: str
    tool_version: str
    capture: CaptureRow  # its key_fingerprint and manifest_sha256 are None
    files: tuple[FileEntry, ...]
    records: Sequence[RecordRow]  # a tuple, or a capture's RecordRows (made when read)
    version: int = VERSION  # the format: which columns its rows hold (TABLE_VERSIONS)

    @property
    def public_key(self) -> str:
        return public_key_name(self.key_fingerprint)

    @property
    def format(self) -> str:
        return f"{FORMAT_PREFIX}{self.version}"

    def table_version(self, table: str) -> int:
        """The schema version of ``table`` whose columns this manifest's rows hold."""
        return TABLE_VERSIONS[self.version][table]

    def index_row(self, manifest_sha256: str) -> CaptureRow:
        """The ``captures`` row of the signed capture, as the index holds it."""
        return replace(
            self.capture, key_fingerprint=self.key_fingerprint, manifest_sha256=manifest_sha256
        )

    def to_bytes(self) -> bytes:
        """The manifest file: deterministic, ASCII, one file or record per line."""
        return b"".join(self.chunks())

    def chunks(self) -> Iterator[bytes]:
        """The bytes of :meth:`to_bytes`, a line or so at a time (a page of 50,000 images
        has 100,000 record lines, 88 MB): :func:`write_signed` writes them as they come."""

        def line(value: Any) -> bytes:
            return json.dumps(value, ensure_ascii=True, sort_keys=True).encode("ascii")

        def items(lines: Iterable[bytes]) -> Iterator[bytes]:
            for i, text in enumerate(lines):
                yield (b",\n  " if i else b"\n  ") + text  # no comma after the last one
            yield b"\n ]"

        if self.version not in TABLE_VERSIONS:
            raise ManifestError(f"unknown manifest format {self.format!r}")
        _fits(self.capture, "captures", self.table_version("captures"))
        head = {
            "format": self.format,
            "capture_id": self.capture_id,
            "signed_at": isoformat(self.signed_at),
            "signer": {
                "algorithm": ALGORITHM,
                "key_fingerprint": self.key_fingerprint,
                "public_key": self.public_key,
            },
            "tool": {"name": self.tool_name, "version": self.tool_version},
        }
        yield b"{\n"
        for k, v in head.items():
            yield b" %s: %s,\n" % (line(k), line(v))
        capture = row_to_json(self.capture, "captures", self.table_version("captures"))
        yield b' "capture": %s,\n' % line(capture)
        yield b' "files": ['
        yield from items(line(asdict(f)) for f in self.files)
        yield b',\n "records": ['
        records = self.table_version("records")
        yield from items(line(row_to_json(r, "records", records)) for r in self.records)
        yield b"\n}\n"

    @classmethod
    def from_bytes(cls, data: bytes) -> Manifest:
        """Parse a manifest; anything unexpected is a :class:`ManifestError`."""
        try:
            doc = json.loads(data.decode("utf-8"), object_pairs_hook=_one_value_per_key)
            # a lone surrogate (a "\ud800" escape) cannot be a name, a URL or a path
            json.dumps(doc, ensure_ascii=False).encode("utf-8")
        except ManifestError:
            raise
        except (UnicodeError, ValueError, RecursionError) as exc:
            raise ManifestError(f"not JSON text ({type(exc).__name__}: {exc})") from exc
        if not isinstance(doc, dict):
            raise ManifestError("not a JSON object")
        version = _format_version(doc.get("format"))
        tables = TABLE_VERSIONS[version]
        _exactly(doc, TOP_LEVEL, "the manifest")
        signer = _field(doc, "signer", dict)
        tool = _field(doc, "tool", dict)
        _exactly(signer, ("algorithm", "key_fingerprint", "public_key"), "signer")
        _exactly(tool, ("name", "version"), "tool")
        if _field(signer, "algorithm", str) != ALGORITHM:
            raise ManifestError(f"unknown signature algorithm {signer.get('algorithm')!r}")
        fp = _hex(_field(signer, "key_fingerprint", str), "signer.key_fingerprint")
        if _field(signer, "public_key", str) != public_key_name(fp):
            raise ManifestError("signer.public_key does not name the signer's key")
        signed_at = _timestamp(_field(doc, "signed_at", str), "signed_at")
        capture = row_from_json(_field(doc, "capture", dict), "captures", None, tables["captures"])
        if capture.key_fingerprint is not None or capture.manifest_sha256 is not None:
            raise ManifestError("capture.key_fingerprint and capture.manifest_sha256 must be null")
        files = []
        for i, item in enumerate(_field(doc, "files", list)):
            where = f"files[{i}]"
            if not isinstance(item, dict):
                raise ManifestError(f"{where} is not an object")
            _exactly(item, ("path", "size", "sha256"), where)
            size = _typed(item["size"], int, f"{where}.size")
            if size < 0:
                raise ManifestError(f"{where}.size is negative")
            if size >= 2**63:
                raise ManifestError(f"{where}.size is out of range")
            sha256 = _hex(_typed(item["sha256"], str, f"{where}.sha256"), f"{where}.sha256")
            path = _relative(_typed(item["path"], str, f"{where}.path"), f"{where}.path")
            files.append(FileEntry(path, size, sha256))
        records = []
        for i, item in enumerate(_field(doc, "records", list)):
            if not isinstance(item, dict):
                raise ManifestError(f"records[{i}] is not an object")
            record = row_from_json(item, "records", f"records[{i}]", tables["records"])
            _relative(record.warc_filename, f"records[{i}].warc_filename")
            records.append(record)
        capture_id = _field(doc, "capture_id", str)
        if not CAPTURE_ID.match(capture_id):
            raise ManifestError(f"capture_id {capture_id!r} is not a capture id")
        if capture.capture_id != capture_id:
            raise ManifestError("capture.capture_id differs from capture_id")
        return cls(
            capture_id=capture_id,
            signed_at=signed_at,
            key_fingerprint=fp,
            tool_name=_field(tool, "name", str),
            tool_version=_field(tool, "version", str),
            capture=capture,
            files=tuple(files),
            records=tuple(records),
            version=version,
        )


def _format_version(value: Any) -> int:
    """The version a ``format`` names, if it is one this code reads (exactly as written:
    no other spelling of it)."""
    if isinstance(value, str) and value.startswith(FORMAT_PREFIX):
        number = value[len(FORMAT_PREFIX) :]
        for version in TABLE_VERSIONS:
            if number == str(version):
                return version
    raise ManifestError(f"unknown manifest format {value!r}")


def _fits(row: CaptureRow | RecordRow, table: str, version: int) -> None:
    """A row written with the columns of an older version must not lose a value."""
    kept = set(schema.load(table, version).names)
    lost = [
        column.name
        for column in schema.load(table).columns
        if column.name not in kept and getattr(row, column.name) is not None
    ]
    if lost:
        raise ManifestError(
            f"a {table} row of version {version} has no column {', '.join(lost)}: "
            f"write it as a manifest of format {VERSION}"
        )


def public_key_name(fingerprint: str) -> str:
    """Where the signer's public key is, relative to the archive directory."""
    return f"{KEYS_DIR}/{fingerprint}.pub.pem"


def manifest_path(archive_dir: Path, collection: str, capture_id: str) -> Path:
    return archive_dir / "warc" / collection / f"{capture_id}{MANIFEST_SUFFIX}"


def signature_path(manifest: Path) -> Path:
    return manifest.with_name(manifest.name + ".sig")


def capture_id_of(manifest: Path) -> str:
    return manifest.name.removesuffix(MANIFEST_SUFFIX)


def archive_of(manifest: Path) -> Path:
    """The archive directory a manifest belongs to (``<archive>/warc/<collection>/``)."""
    return manifest.resolve().parent.parent.parent


def build(
    capture: CaptureRow,
    records: Sequence[RecordRow],
    files: list[FileEntry],
    key_fingerprint: str,
    signed_at: datetime,
    tool_name: str,
    tool_version: str,
) -> Manifest:
    unsigned = replace(capture, key_fingerprint=None, manifest_sha256=None)
    return Manifest(
        capture_id=capture.capture_id,
        signed_at=signed_at,
        key_fingerprint=key_fingerprint,
        tool_name=tool_name,
        tool_version=tool_version,
        capture=unsigned,
        files=tuple(files),
        # a capture's rows are made from its entries when written, never all held at once
        records=records if isinstance(records, RecordRows) else tuple(records),
    )


def write_signed(path: Path, built: Manifest, sign: Callable[[bytes], bytes]) -> str:
    """Write ``built``, then its signature (whole files, never over existing ones);
    returns the manifest's SHA-256.  The signature comes last: a manifest without one is
    a capture whose signing did not finish, and verify says so.

    The lines go to the file as they are made; the signature and the digest are then
    taken over the file as written, mapped into memory (Ed25519 signs the whole message
    at once).  The manifest is never a Python object: grown in a buffer, the 88 MB of a
    page of 50,000 images took 110 MB of heap, kept after it was freed."""
    with atomic_path(path) as temp:
        with open(temp, "wb", buffering=1024 * 1024) as out:
            out.writelines(built.chunks())
        with open(temp, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
            signature = sign(cast(bytes, data))  # any bytes-like will do
            digest = hashlib.sha256(data).hexdigest()
    with atomic_path(signature_path(path)) as temp:
        temp.write_bytes(signature)
    return digest


# rows as JSON -------------------------------------------------------------------
def row_to_json(
    row: CaptureRow | RecordRow, table: str, version: int | None = None
) -> dict[str, Any]:
    """A typed row as JSON values: timestamps as ISO 8601 UTC strings, maps as objects;
    the columns of ``table`` at ``version`` (the current one by default)."""
    out: dict[str, Any] = {}
    for column in schema.load(table, version).columns:
        value = getattr(row, column.name)
        if value is not None and column.type == "timestamp":
            value = isoformat(value)
        elif value is not None and column.type.startswith("map<"):
            value = dict(sorted(value.items()))
        out[column.name] = value
    return out


def row_from_json(
    doc: dict[str, Any], table: str, where: str | None = None, version: int | None = None
) -> Any:
    """The typed row a JSON object describes; every column of ``table`` at ``version`` (the
    current one by default) must be there, and no other.  Columns newer than ``version``
    are null in the row."""
    where = where or table.rstrip("s")
    columns = schema.load(table, version).columns
    names = [c.name for c in columns]
    if set(doc) != set(names):
        missing = sorted(set(names) - set(doc))
        extra = sorted(set(doc) - set(names))
        raise ManifestError(f"{where}: missing columns {missing}, unexpected {extra}")
    values: dict[str, Any] = {}
    for column in columns:
        value = doc[column.name]
        label = f"{where}.{column.name}"
        if value is None:
            if not column.nullable:
                raise ManifestError(f"{label} must not be null")
        elif column.type == "timestamp":
            value = _timestamp(_typed(value, str, label), label)
        elif column.type in ("int32", "int64"):
            value = _typed(value, int, label)
            if value < 0 or value >= 2 ** (31 if column.type == "int32" else 63):
                raise ManifestError(f"{label} is out of range")
        elif column.type == "bool":
            value = _typed(value, bool, label)
        elif column.type == "string":
            value = _typed(value, str, label)
        elif column.type.startswith("map<"):
            value = {str(k): _typed(v, str, label) for k, v in _typed(value, dict, label).items()}
        elif column.type.startswith("list<struct"):
            items = [_typed(item, dict, label) for item in _typed(value, list, label)]
            for item in items:
                _exactly(item, ("url", "reason"), label)
            value = [{k: _typed(v, str, label) for k, v in item.items()} for item in items]
        elif column.type.startswith("list<"):
            value = [_typed(item, str, label) for item in _typed(value, list, label)]
        values[column.name] = value
    row_type = CaptureRow if table == "captures" else RecordRow
    # an older version's columns are the first ones of the row (a version only adds)
    assert [f.name for f in fields(row_type)][: len(names)] == names
    return row_type(**values)


def _typed(value: Any, kind: type, label: str) -> Any:
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ManifestError(f"{label} must be of type {kind.__name__}")
    return value


def _exactly(doc: dict[str, Any], names: tuple[str, ...], where: str) -> None:
    if set(doc) != set(names):
        missing, extra = sorted(set(names) - set(doc)), sorted(set(doc) - set(names))
        raise ManifestError(f"{where}: missing fields {missing}, unexpected {extra}")


def _hex(value: str, label: str) -> str:
    if not _SHA256.match(value):
        raise ManifestError(f"{label} is not 64 lowercase hex digits")
    return value


def _relative(path: str, label: str) -> str:
    """A path inside the archive: relative, '/'-separated, plain characters, no '..'."""
    parts = path.split("/")
    if not _PATH.match(path) or any(part in ("", ".", "..") for part in parts):
        raise ManifestError(f"{label} is not a plain path inside the archive: {path!r}")
    return path


def _field(doc: dict[str, Any], name: str, kind: type) -> Any:
    if name not in doc:
        raise ManifestError(f"no {name!r} field")
    return _typed(doc[name], kind, name)


def _timestamp(text: str, label: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        if moment.tzinfo is None:
            raise ManifestError(f"{label} has no time zone: {text!r}")
        return moment.astimezone(UTC)
    except (ValueError, OverflowError) as exc:
        if isinstance(exc, ManifestError):
            raise
        raise ManifestError(f"{label} is not an ISO 8601 time in range: {text!r}") from exc
