"""The versioned table schemas of the provenance index, read from ``schemas/``.

``schemas/<table>.v<N>.json`` is the single source of truth: every column with its
type, nullability and description.  This module turns those files into pyarrow
schemas; the index writer uses nothing else.  Each Parquet file records the table
and schema version in its key-value metadata (``archiver.table``,
``archiver.schema_version``); the column descriptions stay in the schema files.

A new version only adds columns, at the end: files written under an older version are
never rewritten, and every reader brings them to the current schema, the columns they
lack as null (:func:`archiver.index.store.conform`, DuckDB's ``union_by_name``).  The
older schema files stay: a signed manifest holds its ``captures`` row with the columns
of the version its format names (:mod:`archiver.trust.manifest`).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from archiver.core.errors import Failure

if TYPE_CHECKING:  # pyarrow is imported when a schema is built: commands start faster
    import pyarrow as pa

TABLES = ("captures", "records")
CURRENT_VERSION = {"captures": 2, "records": 1}  # captures v2: the browser columns
TABLE_KEY = b"archiver.table"
VERSION_KEY = b"archiver.schema_version"

_SIMPLE = {
    "string": "string",
    "int32": "int32",
    "int64": "int64",
    "bool": "bool_",
    "timestamp": "timestamp",
}
_NAME = re.compile(r"[a-z][a-z0-9_]*")


class SchemaError(Failure):
    """A schema file is missing or malformed."""

    unexpected = True  # the CLI hints at --debug (archiver.core.errors)


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    nullable: bool
    description: str


@dataclass(frozen=True)
class TableSchema:
    table: str
    version: int
    description: str
    columns: tuple[Column, ...]

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    def arrow(self) -> pa.Schema:
        import pyarrow as pa

        fields = [pa.field(c.name, arrow_type(c.type), nullable=c.nullable) for c in self.columns]
        return pa.schema(
            fields,
            metadata={TABLE_KEY: self.table.encode(), VERSION_KEY: str(self.version).encode()},
        )


def schema_dir() -> Path:
    """Where the schemas are: ``archiver/schemas/`` in an installed wheel or sdist, or
    ``schemas/`` itself in a source tree (an editable install).  setup.py installs the
    one ``schemas/`` folder as the package ``archiver.schemas``; there is no second copy."""
    package = Path(__file__).resolve().parent.parent  # archiver/, above archiver/index/
    installed = package / "schemas"
    if installed.is_dir():
        return installed
    source = package.parent / "schemas"
    if (package.parent / "pyproject.toml").is_file() and source.is_dir():
        return source
    raise SchemaError(f"no schemas found: neither {installed} nor {source} exists")


def arrow_type(spec: str) -> pa.DataType:
    """``string``, ``int64``, ``timestamp``, ``list<T>``, ``map<K,V>``, ``struct<a:T,b:T>``."""
    import pyarrow as pa

    spec = spec.replace(" ", "")
    if spec == "timestamp":
        return pa.timestamp("us", tz="UTC")
    if spec in _SIMPLE:
        maker = getattr(pa, _SIMPLE[spec])
        simple: pa.DataType = maker()
        return simple
    if spec.startswith("list<") and spec.endswith(">"):
        return pa.list_(arrow_type(spec[5:-1]))
    if spec.startswith("map<") and spec.endswith(">"):
        key, value = _split(spec[4:-1])
        return pa.map_(arrow_type(key), arrow_type(value))
    if spec.startswith("struct<") and spec.endswith(">"):
        fields = []
        for part in _split(spec[7:-1]):
            name, _, sub = part.partition(":")
            fields.append(pa.field(name, arrow_type(sub)))
        return pa.struct(fields)
    raise SchemaError(f"unknown column type {spec!r}")


def _split(inner: str) -> list[str]:
    """Split on top-level commas."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(inner):
        if ch == "<":
            depth += 1
        elif ch == ">":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(inner[start:i])
            start = i + 1
    parts.append(inner[start:])
    return parts


@cache
def load(table: str, version: int | None = None) -> TableSchema:
    """The schema of ``table`` at ``version`` (the current one by default)."""
    if table not in TABLES:
        raise SchemaError(f"unknown table {table!r}")
    version = CURRENT_VERSION[table] if version is None else version
    path = schema_dir() / f"{table}.v{version}.json"
    try:
        doc: dict[str, Any] = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise SchemaError(f"cannot read schema {path}: {exc}") from exc
    if doc.get("table") != table or doc.get("version") != version:
        raise SchemaError(f"{path}: table or version does not match its name")
    columns = []
    for col in doc["columns"]:
        if not _NAME.fullmatch(col["name"]) or not col.get("description"):
            raise SchemaError(f"{path}: column {col.get('name')!r} needs a name and description")
        columns.append(Column(col["name"], col["type"], bool(col["nullable"]), col["description"]))
    if len({c.name for c in columns}) != len(columns):
        raise SchemaError(f"{path}: duplicate column names")
    return TableSchema(table, version, doc["description"], tuple(columns))


def arrow_schema(table: str) -> pa.Schema:
    return load(table).arrow()
