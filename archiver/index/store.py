"""The provenance index: Parquet files of captures and records under ``<archive>/index``.

Layout (documented in ``archives/README.md``)::

    index/captures/<capture_id>.parquet    one row: the capture
    index/records/<capture_id>.parquet     one row per WARC record of the capture
    index/captures/compact-<stamp>.parquet many captures' rows, after `index compact`
    index/records/compact-<stamp>.parquet

Every file is written under a temporary name and renamed when complete, so
``read_parquet('archives/index/records/*.parquet')`` never sees a partial file
(temporary names are ``.tmp-….parquet.part``: no ``*.parquet`` glob matches them,
and dataset readers such as pyarrow and Spark skip names starting with ``.``).
A capture writes only files named after
its own id, so concurrent captures never write the same file.  Captures hold a
shared lock while they write; compaction and rebuild hold it exclusively.

The rows are typed (:class:`CaptureRow`, :class:`RecordRow`); their fields are
the columns of the current schemas, ``schemas/captures.v2.json`` and
``schemas/records.v1.json`` (checked when this module loads).  Files written under
an older schema are read as they are and brought to the current one (:func:`conform`);
compaction and rebuild write the current one.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import math
import os
import secrets
import shutil
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, overload

from archiver import TOOL_NAME, __version__
from archiver.core.atomic import (
    READ_ONLY_ERRNOS,
    TEMP_MARK,
    atomic_path,
    fsync_dir,
    open_lock,
    unwritable,
)
from archiver.core.errors import Failure
from archiver.index import schema

if TYPE_CHECKING:  # pyarrow is imported where it is used: commands start faster
    import pyarrow as pa

    from archiver.core.model import Capture, RecordEntry

INDEX_DIR = "index"
COMPACT_PREFIX = "compact-"
REPLACES_SUFFIX = ".replaces"


def replaces_listing(target: Path) -> Path:
    """``index/.<table>.compact-….replaces`` for a merged file ``index/<table>/compact-…``.

    It lies outside the table's folder, which holds nothing but Parquet files: readers
    that take a whole folder as a dataset (polars, pandas, Spark) fail on anything else."""
    return target.parent.parent / f".{target.parent.name}.{target.stem}{REPLACES_SUFFIX}"


def _listings(root: Path, table: str) -> list[tuple[Path, Path]]:
    """(listing, merged file) of every unfinished compaction of ``table``; also those
    that older versions kept inside the table's folder."""
    directory = root / table
    found = []
    if root.is_dir():
        prefix = f".{table}."
        for listing in root.glob(f"{prefix}{COMPACT_PREFIX}*{REPLACES_SUFFIX}"):
            stem = listing.name[len(prefix) : -len(REPLACES_SUFFIX)]
            found.append((listing, directory / f"{stem}.parquet"))
    if directory.is_dir():
        for listing in directory.glob(f".{COMPACT_PREFIX}*{REPLACES_SUFFIX}"):
            stem = listing.name[1 : -len(REPLACES_SUFFIX)]
            found.append((listing, directory / f"{stem}.parquet"))
    return sorted(found)


def _parquet_files(directory: Path) -> list[Path]:
    """The index files in a table's folder (``*.parquet``, hidden names left out), sorted;
    none when there is no such folder.  A folder that cannot be read is a
    :class:`Failure` naming it: never taken for an empty table."""
    try:
        names = os.listdir(directory)
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP, errno.EBADF):
            return []  # not a folder: as Path.is_dir() says it
        raise Failure(
            f"{directory}: this folder of the index cannot be read ({exc.strerror or exc})"
        ) from exc
    return sorted(directory / n for n in names if n.endswith(".parquet") and not n.startswith("."))


PARQUET_OPTIONS: dict[str, Any] = {"compression": "zstd", "compression_level": 3}


@dataclass(frozen=True)
class CaptureRow:
    """One row of the ``captures`` table (see schemas/captures.v2.json).  The columns
    version 2 added come last, with defaults: a row of version 1 (a manifest made before
    them, a file written under it) is the same row with them null."""

    capture_id: str
    imported: bool
    seed_url: str | None
    final_url: str | None
    http_status: int | None
    status: str
    failure: str | None
    started_at: datetime | None
    finished_at: datetime | None
    operator: str | None
    collection: str
    note: str | None
    tool_name: str | None
    tool_version: str | None
    warcio_version: str | None
    pyarrow_version: str | None
    ytdlp_version: str | None
    libraries: dict[str, str] | None
    hostname: str | None
    platform: str | None
    user_agent: str | None
    title: str | None
    author: str | None
    published_at: str | None
    language: str | None
    outlinks: list[str] | None
    video_count: int
    warc_files: list[str]
    record_count: int
    total_bytes: int
    warc_bytes: int
    errors: list[dict[str, str]] | None
    key_fingerprint: str | None = None
    manifest_sha256: str | None = None
    # version 2: a browser capture's browser (see browser_columns)
    browser: str | None = None
    browser_user_agent: str | None = None
    viewport: str | None = None


@dataclass(frozen=True, slots=True)  # slots: one per record, 100,000 for a large page
class RecordRow:
    """One row of the ``records`` table (see schemas/records.v1.json)."""

    capture_id: str
    record_id: str
    warc_type: str
    url: str | None
    fetched_at: datetime | None
    http_status: int | None
    content_type: str | None
    payload_sha256: str | None
    payload_length: int | None
    block_sha256: str | None
    record_sha256: str
    truncated: str | None
    ip_address: str | None
    role: str | None
    discovered_from: str | None
    discovered_via: str | None
    concurrent_to: str | None
    refers_to: str | None
    warc_filename: str
    warc_offset: int
    warc_length: int
    problem: str | None = None


ROW_TYPES: dict[str, type[CaptureRow] | type[RecordRow]] = {
    "captures": CaptureRow,
    "records": RecordRow,
}


def _check_rows_match_schemas() -> None:
    for table, row_type in ROW_TYPES.items():
        names = [f.name for f in fields(row_type)]
        if names != schema.load(table).names:
            raise schema.SchemaError(
                f"{row_type.__name__} does not match schemas/{table}.v"
                f"{schema.CURRENT_VERSION[table]}.json"
            )


_check_rows_match_schemas()


def to_table(table: str, rows: Iterable[CaptureRow] | Iterable[RecordRow]) -> pa.Table:
    """Rows as an Arrow table with exactly the schema from ``schemas/``."""
    import pyarrow as pa

    arrow = schema.arrow_schema(table)
    if table == "records":
        # column by column, no dict per row (asdict): for the 40,000 records of a page
        # of 20,000 images that held 25 MB more at the capture's peak; the table is the same
        listed = rows if isinstance(rows, list) else list(rows)
        columns = [pa.array([getattr(r, f.name, None) for r in listed], type=f.type) for f in arrow]
        return pa.Table.from_arrays(columns, schema=arrow)
    data = [asdict(r) for r in rows]
    if table == "captures":
        for row in data:
            if row["libraries"] is not None:
                row["libraries"] = sorted(row["libraries"].items())
    return pa.Table.from_pylist(data, schema=arrow)


# Rows per row group of a records file written by a capture: its Arrow table is built and
# written a group at a time.  The 100,000 records of a page of 50,000 images held as one
# table (and pyarrow's buffers to write it) took 60 MB more at the capture's peak.
WRITE_GROUP_ROWS = 10_000


def write_rows(path: Path, table: str, rows: Sequence[CaptureRow] | Sequence[RecordRow]) -> None:
    """``rows`` as one Parquet file (zstd), in row groups of at most WRITE_GROUP_ROWS rows:
    up to that many, the same bytes as ``pq.write_table(to_table(table, rows), path)``."""
    import pyarrow.parquet as pq

    if len(rows) <= WRITE_GROUP_ROWS:
        pq.write_table(to_table(table, rows), path, **PARQUET_OPTIONS)
        return
    with pq.ParquetWriter(path, schema.arrow_schema(table), **PARQUET_OPTIONS) as writer:
        for start in range(0, len(rows), WRITE_GROUP_ROWS):
            writer.write_table(to_table(table, rows[start : start + WRITE_GROUP_ROWS]))


def from_table(table: str, data: pa.Table) -> list[Any]:
    """Arrow rows back into typed rows (columns the row type lacks are dropped)."""
    row_type = ROW_TYPES[table]
    names = {f.name for f in fields(row_type)}
    out = []
    for row in data.to_pylist():
        values = {k: v for k, v in row.items() if k in names}
        if table == "captures" and values.get("libraries") is not None:
            values["libraries"] = dict(values["libraries"])
        out.append(row_type(**values))
    return out


class Index:
    """The index of one archive directory."""

    def __init__(self, archive_dir: Path) -> None:
        self.archive_dir = archive_dir
        self.root = archive_dir / INDEX_DIR

    def table_dir(self, table: str) -> Path:
        return self.root / table

    def files(self, table: str) -> list[Path]:
        """The index files of ``table``; a folder that cannot be read is a Failure."""
        return _parquet_files(self.table_dir(table))

    # locking -------------------------------------------------------------
    @contextlib.contextmanager
    def lock(self, exclusive: bool, *, reading: bool = False) -> Iterator[None]:
        """Hold ``.index.lock``; on a copy that cannot be written, see :func:`open_lock`."""
        fd = open_lock(self.archive_dir / ".index.lock", reading=reading)
        if fd is None:  # a read-only copy without the file: nothing can write there
            yield
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            yield
        finally:
            os.close(fd)  # releases the lock

    # reading -------------------------------------------------------------
    def read_only(self) -> str | None:
        """Why this archive cannot be written (a write-blocked copy, a folder of someone
        else's), or None.  Readers then take no lock they would create, repair nothing,
        and read the index as a repair would leave it (:meth:`readable_files`)."""
        if not self.archive_dir.is_dir():
            return None
        reason = unwritable(self.archive_dir)
        if reason is None and self.root.is_dir():
            reason = unwritable(self.root)
        return reason

    def repair_if_possible(self) -> bool:
        """Repair what a crash left, if need be and if this copy can be written; False
        when a repair is needed but was not done (a read-only copy: nothing is touched)."""
        if not self.needs_repair():
            return True
        if self.read_only() is not None:
            return False
        try:
            self.repair()
        except OSError as exc:  # refused only on trying (an immutable flag, root squashed)
            if exc.errno not in READ_ONLY_ERRNOS:
                raise
            return False
        return True

    @contextlib.contextmanager
    def reading(self) -> Iterator[None]:
        """Hold the index for reading: repaired first if possible, then a shared lock
        (compaction and rebuild wait).  On a copy that cannot be written neither is
        created: the lock is taken on the existing file (read-only), or not at all where
        nothing can write; read :meth:`readable_files` then.  An archive that does not
        exist is not created by asking it a question."""
        if not self.archive_dir.is_dir():
            yield
            return
        self.repair_if_possible()
        with self.lock(exclusive=False, reading=True):
            yield

    def readable_root(self) -> Path:
        """Where the index is: ``index``, or ``index.new`` when a rebuild finished all but
        its last rename (a crash that only a repair, which needs a writable copy, ends)."""
        fresh = self.archive_dir / (INDEX_DIR + ".new")
        if not self.root.exists() and (fresh / ".complete").exists():
            return fresh
        return self.root

    def readable_files(self, table: str) -> list[Path]:
        """The files of ``table`` as :meth:`repair` would leave them, found without
        changing anything (for a read-only copy that needs a repair); :meth:`files`
        when nothing needs repair.  A finished compaction's sources, named in its
        ``.replaces`` listing, are left out (their rows are in the merged file), as are
        records files whose capture row was never written; an unfinished rebuild is
        ignored, a rebuild interrupted before its last rename is read."""
        if not self.needs_repair():
            return self.files(table)
        root = self.readable_root()
        found = _parquet_files(root / table)
        replaced: set[str] = set()
        for listing, target in _listings(root, table):
            if target.exists():
                with contextlib.suppress(OSError, UnicodeDecodeError):
                    names = listing.read_text("utf-8").split()
                    replaced.update(n for n in names if _replaceable(n, target.name))
        captures = root / "captures"
        return [
            p
            for p in found
            if p.name not in replaced
            and not (
                table == "records"
                and not p.name.startswith(COMPACT_PREFIX)
                and not (captures / p.name).exists()
            )
        ]

    # writing -------------------------------------------------------------
    @contextlib.contextmanager
    def writing(self) -> Iterator[None]:
        """Hold the index for writing (shared with other writers), repaired first.

        A capture holds it from before its WARC files get their final names until
        its rows are written, so a rebuild or compaction never sees a published
        capture whose rows are still to come.
        """
        if self.needs_repair():  # never write beside the debris of a crashed rebuild
            self.repair()
        with self.lock(exclusive=False):
            yield

    def write_capture(
        self,
        capture: CaptureRow,
        records: Sequence[RecordRow],
        *,
        held: bool = False,
        overwrite: bool = False,
    ) -> None:
        """Write one capture's two files; the captures row is written last.

        ``held``: the caller is inside :meth:`writing` already.  ``overwrite``: for
        imports, where the same file imported twice at once gives the same rows.
        """
        with contextlib.nullcontext() if held else self.writing():
            self._write_files(capture.capture_id, [capture], records, overwrite=overwrite)

    def _write_files(
        self,
        name: str,
        captures: list[CaptureRow],
        records: Sequence[RecordRow],
        *,
        overwrite: bool,
        root: Path | None = None,
    ) -> None:
        base = root or self.root
        # records first: a reader that sees the capture row finds its records
        for table, rows in (("records", records), ("captures", captures)):
            target = base / table / f"{name}.parquet"
            with atomic_path(target, overwrite=overwrite) as temp:
                write_rows(temp, table, rows)

    def replace_all(self, groups: Iterable[tuple[str, list[CaptureRow], list[RecordRow]]]) -> int:
        """Replace the whole index with ``groups`` (name, captures, records); see rebuild.

        The new index is built beside the old one and swapped in with two renames;
        :meth:`repair` finishes a swap that a crash interrupted.
        """
        fresh = self.archive_dir / (INDEX_DIR + ".new")
        old = self.archive_dir / (INDEX_DIR + ".old")
        with self.lock(exclusive=True):
            self._repair()
            fresh.mkdir(parents=True)
            count = 0
            try:
                for name, captures, records in groups:
                    self._write_files(name, captures, records, overwrite=False, root=fresh)
                    count += len(captures)
            except Failure:  # a WARC file that cannot be read: the index stays as it was
                shutil.rmtree(fresh, ignore_errors=True)
                raise
            (fresh / "captures").mkdir(exist_ok=True)
            (fresh / "records").mkdir(exist_ok=True)
            (fresh / ".complete").touch()
            fsync_dir(fresh)
            shutil.rmtree(old, ignore_errors=True)
            if self.root.exists():
                os.rename(self.root, old)
            os.rename(fresh, self.root)
            (self.root / ".complete").unlink()
            fsync_dir(self.archive_dir)
            shutil.rmtree(old, ignore_errors=True)
        return count

    def needs_repair(self) -> bool:
        """Whether a crash left an unfinished rebuild or compaction (cheap to ask)."""
        if (self.archive_dir / (INDEX_DIR + ".new")).exists():
            return True
        if (self.archive_dir / (INDEX_DIR + ".old")).exists():
            return True
        return any(_listings(self.root, t) for t in schema.TABLES)

    def repair(self) -> list[str]:
        """Finish or undo what a crash interrupted (a rebuild or a compaction)."""
        with self.lock(exclusive=True):
            return self._repair()

    def _repair(self) -> list[str]:
        done: list[str] = []
        fresh = self.archive_dir / (INDEX_DIR + ".new")
        old = self.archive_dir / (INDEX_DIR + ".old")
        if fresh.exists():
            if not self.root.exists() and (fresh / ".complete").exists():
                os.rename(fresh, self.root)  # the crash came between the two renames
                (self.root / ".complete").unlink()
                done.append("finished an interrupted rebuild")
            else:  # captures may have written to the index since: keep it, drop this
                shutil.rmtree(fresh, ignore_errors=True)
                done.append("removed an unfinished rebuild; run `archiver index rebuild` again")
        if old.exists() and self.root.exists():
            shutil.rmtree(old, ignore_errors=True)
        for spill in self.root.glob(f"{TEMP_MARK}sort-*") if self.root.is_dir() else ():
            shutil.rmtree(spill, ignore_errors=True)  # a compaction's sort, interrupted
        captures_dir = self.table_dir("captures")
        self.files("captures")  # one that cannot be read is a Failure: no orphan is guessed
        for orphan in self.files("records"):
            # a capture interrupted between its records file and its captures file
            if (
                not orphan.name.startswith(COMPACT_PREFIX)
                and not (captures_dir / orphan.name).exists()
            ):
                orphan.unlink()
                done.append(f"removed {orphan.name}: its capture row was never written")
        for table in schema.TABLES:
            directory = self.table_dir(table)
            for listing, target in _listings(self.root, table):
                if target.exists():
                    for name in listing.read_text("utf-8").split():
                        # only plain index files of this folder, whatever the listing says
                        if _replaceable(name, target.name):
                            (directory / name).unlink(missing_ok=True)
                    done.append(f"finished compacting into {target.name}")
                listing.unlink()
            for temp in directory.glob(f"{TEMP_MARK}*"):
                temp.unlink(missing_ok=True)
        return done

    # compaction ------------------------------------------------------------
    def compact(self, row_group_size: int = 256 * 1024) -> dict[str, int]:
        """Merge each table's files into one, sorted; returns how many files were merged.

        Records are sorted by URL (then time): a lookup by URL then reads one or two
        row groups of even a large index.  The merged file is written first; a
        ``.replaces`` listing beside it names the files it replaces, which are
        deleted next.  After a crash, :meth:`repair`
        deletes the rest, so no row is ever lost and duplicates do not outlive it.
        """
        import pyarrow.parquet as pq

        merged: dict[str, int] = {}
        with self.lock(exclusive=True):
            self._repair()
            stamp = datetime.now(UTC).strftime("%Y%m%d%H%M%S") + "-" + secrets.token_hex(4)
            for table in schema.TABLES:
                sources = self.files(table)
                if len(sources) < 2:
                    merged[table] = 0
                    continue
                directory = self.table_dir(table)
                target = directory / f"{COMPACT_PREFIX}{stamp}.parquet"
                arrow = schema.arrow_schema(table)
                spill = self.root / f"{TEMP_MARK}sort-{stamp}"
                with atomic_path(target) as temp:
                    writer = pq.ParquetWriter(temp, arrow, **PARQUET_OPTIONS)
                    try:
                        _merge_into(writer, sources, table, row_group_size, spill)
                    finally:
                        writer.close()
                        shutil.rmtree(spill, ignore_errors=True)
                    listing = replaces_listing(target)
                    with atomic_path(listing, overwrite=True) as part:
                        part.write_text("\n".join(p.name for p in sources) + "\n", "utf-8")
                for source in sources:
                    source.unlink()
                listing.unlink()
                fsync_dir(directory)
                merged[table] = len(sources)
        return merged


def _replaceable(name: str, merged: str) -> bool:
    """Whether a compaction listing may name ``name``: an index file of the same folder."""
    return (
        name.endswith(".parquet")
        and "/" not in name
        and "\\" not in name
        and not name.startswith(".")
        and name != merged
    )


# The order of rows in a compacted file: records by URL, so that the row groups'
# statistics let a lookup of one URL skip all but one or two of them.
COMPACT_ORDER = {
    "records": "url NULLS LAST, fetched_at, record_id",
    "captures": "started_at, capture_id",
}
# DuckDB sorts within this much memory, spilling to disk beyond it.
SORT_MEMORY = "1GB"


def _merge_into(
    writer: Any, sources: list[Path], table: str, row_group_size: int, spill: Path
) -> None:
    """Write every source's rows to ``writer``, sorted, in full row groups.

    DuckDB reads the files and sorts them (an external sort: memory stays bounded,
    whatever the size of the index); pyarrow writes the batches with the schema
    from ``schemas/``, gathered into row groups of ``row_group_size`` rows (each
    ``write_table`` call ends a row group).
    """
    import duckdb
    import pyarrow as pa

    con = duckdb.connect(":memory:")
    try:
        con.execute(f"SET memory_limit = '{SORT_MEMORY}'")
        con.execute("SET temp_directory = '" + str(spill).replace("'", "''") + "'")
        cursor = con.execute(
            f"SELECT * FROM read_parquet(?, union_by_name = true) ORDER BY {COMPACT_ORDER[table]}",
            [[str(p) for p in sources]],
        )
        fetch = getattr(cursor, "to_arrow_reader", None) or getattr(cursor, "fetch_record_batch")  # noqa: B009
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # DuckDB 2 notes a copy; batches are small
            reader = fetch(64 * 1024)
        pending: list[pa.Table] = []
        rows = 0
        for batch in reader:
            data = conform(pa.Table.from_batches([batch]), table)
            pending.append(data)
            rows += data.num_rows
            if rows >= row_group_size:
                merged = pa.concat_tables(pending)
                full = (rows // row_group_size) * row_group_size
                writer.write_table(merged.slice(0, full), row_group_size=row_group_size)
                pending, rows = [merged.slice(full)], rows - full
        if rows:
            writer.write_table(pa.concat_tables(pending), row_group_size=row_group_size)
    finally:
        con.close()


def conform(data: pa.Table, table: str) -> pa.Table:
    """``data`` with exactly the current schema: columns in order, types cast, missing
    (newer) columns null, unknown ones dropped."""
    import pyarrow as pa

    arrow = schema.arrow_schema(table)
    columns = []
    for field in arrow:
        if field.name in data.column_names:
            columns.append(data.column(field.name).cast(field.type))
        else:
            columns.append(pa.nulls(data.num_rows, field.type))
    return pa.Table.from_arrays(columns, schema=arrow)


def read_table_file(path: Path, table: str) -> pa.Table:
    """One index file, brought to the current schema (older files lack newer columns)."""
    import pyarrow.parquet as pq

    return conform(pq.read_table(path), table)


def read_rows(index: Index, table: str) -> list[Any]:
    """Every row of ``table`` as typed rows (small archives and tests; use SQL for large)."""
    out: list[Any] = []
    for path in index.files(table):
        out.extend(from_table(table, read_table_file(path, table)))
    return out


class RecordRows(Sequence[RecordRow]):
    """The ``records`` rows of a capture just written, in file order, each made from its
    entry when read (by the manifest, then by the index a row group at a time): not
    held all at once beside the entries (100,000 rows, 20 MB, for a page of 50,000
    images)."""

    def __init__(self, capture_id: str, entries: list[RecordEntry], folder: dict[str, str]):
        self.capture_id = capture_id
        self.entries = entries
        self.folder = folder  # WARC file name -> its path relative to the archive

    def __len__(self) -> int:
        return len(self.entries)

    @overload
    def __getitem__(self, i: int) -> RecordRow: ...
    @overload
    def __getitem__(self, i: slice) -> list[RecordRow]: ...
    def __getitem__(self, i: int | slice) -> RecordRow | list[RecordRow]:
        if isinstance(i, slice):
            return [self._row(r) for r in self.entries[i]]
        return self._row(self.entries[i])

    def __iter__(self) -> Iterator[RecordRow]:
        return map(self._row, self.entries)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Sequence):
            return NotImplemented
        return len(self) == len(other) and all(a == b for a, b in zip(self, other, strict=True))

    __hash__ = None  # type: ignore[assignment]

    def _row(self, r: RecordEntry) -> RecordRow:
        return RecordRow(
            capture_id=self.capture_id,
            record_id=r.record_id,
            warc_type=r.warc_type,
            url=r.url,
            fetched_at=r.fetched_at,
            http_status=r.http_status,
            content_type=r.content_type,
            payload_sha256=r.payload_sha256,
            payload_length=r.payload_length,
            block_sha256=r.block_sha256,
            record_sha256=r.record_sha256,
            truncated=r.truncated,
            ip_address=r.ip_address,
            role=r.role,
            discovered_from=r.discovered_from,
            discovered_via=r.discovered_via,
            concurrent_to=r.concurrent_to,
            refers_to=r.refers_to,
            warc_filename=self.folder.get(r.warc_filename, r.warc_filename),
            warc_offset=r.warc_offset,
            warc_length=r.warc_length,
        )


def rows_for_capture(capture: Capture) -> tuple[CaptureRow, RecordRows]:
    """The index rows of a capture that has just been written."""
    archive = capture.options.archive_dir
    warc_files = [relative_path(p, archive) for p in capture.warc_files]
    folder = {p.name: rel for p, rel in zip(capture.warc_files, warc_files, strict=True)}
    entries = sorted(capture.records, key=lambda r: (r.warc_filename, r.warc_offset))
    records = RecordRows(capture.capture_id, entries, folder)
    libraries = dict(capture.libraries)
    options = capture.options
    row = CaptureRow(
        capture_id=capture.capture_id,
        imported=False,
        seed_url=capture.seed_url,
        final_url=capture.final_url,
        http_status=capture.http_status,
        status=capture.status.value,
        failure=capture.failure,
        started_at=capture.started_at,
        finished_at=capture.finished_at,
        operator=options.operator,
        collection=options.collection,
        note=options.note,
        tool_name=TOOL_NAME,
        tool_version=__version__,
        warcio_version=libraries.get("warcio"),
        pyarrow_version=libraries.get("pyarrow"),
        ytdlp_version=libraries.get("yt-dlp"),
        libraries=libraries,
        hostname=capture.hostname,
        platform=capture.platform,
        user_agent=options.user_agent,
        title=capture.title,
        author=capture.author,
        published_at=capture.published_at,
        language=capture.language,
        outlinks=list(capture.outlinks),
        video_count=len(capture.videos),
        warc_files=warc_files,
        record_count=len(records),
        total_bytes=payload_bytes(entries),
        warc_bytes=sum(p.stat().st_size for p in capture.warc_files),
        errors=[{"url": e.url, "reason": e.reason} for e in capture.errors],
        **browser_columns(capture.browser),
    )
    return row, records


def browser_columns(info: Mapping[str, Any] | None) -> dict[str, str | None]:
    """The columns ``browser``, ``browser_user_agent`` and ``viewport`` of a capture whose
    browser said ``info`` (``Capture.browser``; the metadata record's ``"browser"`` object,
    the same after a JSON round trip): one function for the capture and for ``index
    rebuild``, so that both give the same row.  Whatever is missing or of another type
    (a browser that failed before it said its version) is null, never a guess."""
    info = info if isinstance(info, Mapping) else {}
    return {
        "browser": _text(info.get("product")),
        "browser_user_agent": _text(info.get("user_agent")),
        "viewport": viewport_text(info.get("viewport"), info.get("device_scale")),
    }


def viewport_text(size: Any, scale: Any) -> str | None:
    """``1366x768@1``: width x height in CSS pixels @ device scale factor (as short as it
    is exact: 1.0 is ``1``, 2.5 is ``2.5``); without a scale, ``1366x768``."""
    if not isinstance(size, Mapping):
        return None
    width, height = size.get("width"), size.get("height")
    if not all(isinstance(n, int) and not isinstance(n, bool) for n in (width, height)):
        return None
    text = f"{width}x{height}"
    if isinstance(scale, bool) or not isinstance(scale, int | float):
        return text
    if isinstance(scale, float) and not math.isfinite(scale):
        return text
    shown = int(scale) if isinstance(scale, int) or scale.is_integer() else scale
    return f"{text}@{shown!r}"


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def payload_bytes(records: Iterable[RecordRow] | Iterable[RecordEntry]) -> int:
    """Bytes of HTTP payload captured: what ``captures.total_bytes`` counts."""
    return sum(r.payload_length or 0 for r in records if r.warc_type == "response")


def relative_path(path: Path, archive_dir: Path) -> str:
    """A WARC file's path as stored in the index: relative to the archive, with '/'."""
    try:
        return path.resolve().relative_to(archive_dir.resolve()).as_posix()
    except ValueError:
        return path.resolve().as_posix()
