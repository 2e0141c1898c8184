"""SQL over the provenance index with DuckDB: the views ``captures`` and ``records``.

The views read the Parquet files under ``<archive>/index`` directly (with
``union_by_name``, so files written under older, smaller schemas still read), and
always have every column of the current schema: one that no file holds yet (an
archive whose every capture was indexed before the column existed) is null, never
an unknown column.  An empty index gives empty views with the current schema.
"""

from __future__ import annotations

import csv
import io
import json
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from archiver.core.errors import Failure, UsageProblem
from archiver.core.text import printable
from archiver.index import schema
from archiver.index.store import Index

if TYPE_CHECKING:  # DuckDB and pyarrow load when a query runs: other commands start faster
    import duckdb
    import pyarrow as pa

FORMATS = ("table", "csv", "json", "parquet")


class QueryError(UsageProblem):
    """The SQL is wrong (syntax, unknown table or column, not a query): the user's error."""


class QueryFailed(Failure):
    """The index could not be read (a damaged file, an I/O error): not the user's error."""


@dataclass
class Result:
    columns: list[str]
    table: pa.Table

    @property
    def rows(self) -> list[dict[str, Any]]:
        return list(self.table.to_pylist())


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def connect(
    archive_dir: Path, threads: int | None = None, *, repair: bool = True
) -> duckdb.DuckDBPyConnection:
    """A read-only DuckDB connection with the ``captures`` and ``records`` views defined.

    The views name the index files explicitly (an archive path may hold glob
    characters), times are shown in UTC whatever the machine's zone, and the
    connection can read nothing but the index: no file outside it, no COPY … TO
    into the archive, no ATTACH (the evidence sits next door).
    """
    import duckdb

    index = Index(archive_dir)
    if repair:  # a crash mid-compaction would show rows twice
        index.repair_if_possible()  # a read-only copy is read as the repair would leave it
    con = duckdb.connect(":memory:")
    try:
        con.execute("SET TimeZone = 'UTC'")
        if threads:
            con.execute(f"SET threads = {int(threads)}")
        for table in schema.TABLES:
            files = index.readable_files(table)
            # no rows, every column of the current schema with its type
            con.register(f"_{table}_empty", schema.arrow_schema(table).empty_table())
            if files:
                listed = ", ".join(_quote(str(p)) for p in files)
                # by name: the files' columns first, then those none of them has (null);
                # filters and projections still reach the Parquet reader
                con.execute(
                    f"CREATE VIEW {table} AS SELECT * FROM read_parquet("
                    f"[{listed}], union_by_name = true) "
                    f"UNION ALL BY NAME SELECT * FROM _{table}_empty"
                )
            else:
                con.execute(f"CREATE VIEW {table} AS SELECT * FROM _{table}_empty")
        allowed = _quote(str(index.readable_root().resolve()) + "/")
        con.execute(f"SET allowed_directories = [{allowed}]")
        con.execute("SET enable_external_access = false")
        con.execute("SET lock_configuration = true")
    except duckdb.Error as exc:
        con.close()
        raise QueryFailed(f"cannot open the index of {archive_dir}: {one_line(exc)}") from exc
    return con


def run(archive_dir: Path, sql: str, params: Sequence[Any] | None = None) -> Result:
    """Run one SELECT against the index.

    A mistake in the SQL (syntax, unknown table or column, a statement that is not a
    query) raises :class:`QueryError`; an index that cannot be read, :class:`QueryFailed`.
    Captures may write meanwhile; compaction and rebuild wait for the query to end.
    """
    import duckdb
    import pyarrow as pa

    # repaired first (a repair takes the lock exclusively), then a shared lock; a
    # read-only copy is neither repaired nor locked by creating a file (Index.reading)
    with Index(archive_dir).reading():
        con = connect(archive_dir, repair=False)
        try:
            try:
                statements = con.extract_statements(sql)
            except duckdb.Error as exc:
                raise QueryError(one_line(exc)) from exc
            if len(statements) != 1:
                raise QueryError("give exactly one SQL statement")
            if statements[0].type not in (
                duckdb.StatementType.SELECT,
                duckdb.StatementType.EXPLAIN,
            ):
                raise QueryError("only queries (SELECT) can be run over the index")
            try:
                cursor = con.execute(sql, params or [])
                if cursor.description is None:
                    return Result([], pa.table({}))
                table = _arrow(cursor)
            except (
                duckdb.ParserException,
                duckdb.BinderException,
                duckdb.CatalogException,
                duckdb.PermissionException,
                duckdb.ConversionException,
                duckdb.InvalidInputException,
            ) as exc:
                raise QueryError(one_line(exc)) from exc
            except duckdb.Error as exc:
                raise QueryFailed(one_line(exc)) from exc
            return Result(list(table.column_names), table)
        finally:
            con.close()


def _arrow(cursor: duckdb.DuckDBPyConnection) -> pa.Table:
    """The result as Arrow (``to_arrow_table`` in DuckDB 1.4+, ``fetch_arrow_table`` before)."""
    fetch = getattr(cursor, "to_arrow_table", None) or getattr(cursor, "fetch_arrow_table")  # noqa: B009
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # DuckDB 2 warns that this makes a copy; it is small
        table: pa.Table = fetch()
    return table


def one_line(exc: BaseException) -> str:
    """DuckDB's message without its multi-line caret diagram."""
    text = str(exc).strip()
    first = text.splitlines()[0] if text else type(exc).__name__
    for line in text.splitlines()[1:]:
        if line.startswith("Did you mean") or line.startswith("Candidate"):
            first += " " + line.strip()
    return first


def jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        if all(isinstance(v, tuple) and len(v) == 2 for v in value) and value:
            return {str(k): jsonable(v) for k, v in value}  # a map
        return [jsonable(v) for v in value]
    return value


def as_json(result: Result) -> str:
    return json.dumps([jsonable(r) for r in result.rows], ensure_ascii=False, indent=1)


def cell(value: Any) -> str:
    value = jsonable(value)
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def as_csv(result: Result) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(result.columns)
    for row in result.rows:
        writer.writerow([cell(row[c]) for c in result.columns])
    return out.getvalue()


def write_parquet(result: Result, path: Path) -> None:
    import pyarrow.parquet as pq

    from archiver.core.atomic import atomic_path

    with atomic_path(path, overwrite=True) as temp:
        pq.write_table(result.table, temp, compression="zstd")


def as_text_table(result: Result, max_cell: int = 100) -> str:
    """A plain aligned table for a terminal; long cells are shortened with '…'."""

    def short(value: Any) -> str:
        text = printable(cell(value))  # a value cannot move the cursor or forge a line
        return text if len(text) <= max_cell else text[: max_cell - 1] + "…"

    rows = [[short(r[c]) for c in result.columns] for r in result.rows]
    widths = [len(c) for c in result.columns]
    for row in rows:
        widths = [max(w, len(v)) for w, v in zip(widths, row, strict=True)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(result.columns, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    for row in rows:
        lines.append("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())
    lines.append(f"({len(rows)} row{'s' if len(rows) != 1 else ''})")
    return "\n".join(lines) + "\n"
