"""The index against the signed manifests (and imported files): every ``captures`` and
``records`` row, column by column; rows missing, added or claiming no signed capture.

Both sides are brought to the current schema: an index file written under an older one
reads with the newer columns null, and so does the row of a manifest whose format
predates them (:data:`archiver.trust.manifest.TABLE_VERSIONS`), so a capture signed
before the browser columns existed must have them null in the index."""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING, Any

from archiver.core.text import counted
from archiver.index import schema
from archiver.index.store import (
    INDEX_DIR,
    CaptureRow,
    Index,
    RecordRow,
    from_table,
    read_table_file,
)
from archiver.ops.verify.report import (
    CaptureResult,
    Check,
    Problem,
    Report,
)
from archiver.trust.manifest import (
    Manifest,
    row_to_json,
)
from archiver.warc.rules import bare_target_uri

if TYPE_CHECKING:
    from archiver.ops.verify.targets import _Plan


def _verify_index(
    todo: _Plan,
    report: Report,
    signed: dict[str, Manifest],
    digests: dict[str, str],
    imported: dict[str, tuple[CaptureRow, list[RecordRow]]],
    unchecked: set[str],
) -> None:
    index = Index(todo.archive)
    scope = None if todo.whole_archive else set(signed) | set(imported)
    if scope is not None and not scope:
        return
    if index.needs_repair():
        report.index_problems.append(
            Problem(
                "an interrupted rebuild or compaction left files behind (index.new, index.old "
                "or .compact-*.replaces): the next index command finishes or undoes it",
                file=INDEX_DIR,
            )
        )
    captures_rows = _rows(index, "captures", scope, report.index_problems)
    records_rows = _rows(index, "records", scope, report.index_problems)
    by_capture: dict[str, list[tuple[RecordRow, str]]] = defaultdict(list)
    for row, name in records_rows:
        by_capture[row.capture_id].append((row, name))
    capture_rows: dict[str, list[tuple[CaptureRow, str]]] = defaultdict(list)
    for crow, name in captures_rows:
        capture_rows[crow.capture_id].append((crow, name))
    results = {c.capture_id: c for c in report.captures}
    # an imported capture's notes are said with its file
    files = {f.imported_as: f for f in report.unsigned if f.imported_as is not None}
    for capture_id in unchecked:  # nothing signed to compare them with; said already
        capture_rows.pop(capture_id, None)
        by_capture.pop(capture_id, None)
        if capture_id in results and capture_id in report.in_progress:
            results[capture_id].check("index rows", capture_id, True, "not checked: running")
        elif capture_id in results:
            results[capture_id].check(
                "index rows", capture_id, False, "not checked: no valid signed manifest"
            )
    expected: dict[str, tuple[CaptureRow, list[RecordRow]]] = {
        cid: (m.index_row(digests[cid]), list(m.records)) for cid, m in signed.items()
    }
    expected.update(imported)
    # the columns each signed capture's row holds (a manifest of format 1 has fewer)
    signed_columns = {
        cid: frozenset(schema.load("captures", m.table_version("captures")).names)
        for cid, m in signed.items()
    }
    for capture_id, (want_capture, want_records) in sorted(expected.items()):
        problems: list[Problem] = []
        notes: list[Problem] = []
        if capture_id not in capture_rows and capture_id not in by_capture:
            problems.append(
                Problem(
                    "no index rows for this capture: `archiver index rebuild` restores them "
                    "from the WARC files",
                    capture_id,
                    f"index/captures/{capture_id}.parquet, index/records/{capture_id}.parquet",
                )
            )
        else:
            _compare_all_rows(
                problems,
                capture_id,
                want_capture,
                want_records,
                capture_rows,
                by_capture,
                imported=capture_id in imported,
                notes=notes,
                signed_columns=signed_columns.get(capture_id),
            )
        checked = counted(1 + len(want_records), "row")
        if notes:
            checked += f" ({counted(len(notes), 'stale URL')}: `archiver index rebuild`)"
        if capture_id in files:
            files[capture_id].notes += notes
        else:  # not reached: an imported capture is compared with its file
            problems += notes
        target = results.get(capture_id)
        if target is not None:
            target.check("index rows", capture_id, not problems, checked)
            target.problems += problems
        else:
            report.index_checks.append(Check("index rows", capture_id, not problems, checked))
            report.index_problems += problems
    _unclaimed_rows(report, results, capture_rows, by_capture)
    if todo.whole_archive:
        report.index_checks.append(
            Check(
                "index",
                str(index.root),
                not report.index_problems,
                f"{counted(len(captures_rows), 'captures row')}, "
                f"{counted(len(records_rows), 'records row')}",
            )
        )


def _compare_all_rows(
    problems: list[Problem],
    capture_id: str,
    want_capture: CaptureRow,
    want_records: list[RecordRow],
    capture_rows: dict[str, list[tuple[CaptureRow, str]]],
    by_capture: dict[str, list[tuple[RecordRow, str]]],
    *,
    imported: bool = False,
    notes: list[Problem] | None = None,
    signed_columns: frozenset[str] | None = None,
) -> None:
    _compare_rows(
        problems,
        capture_id,
        "captures",
        {capture_id: want_capture},
        capture_rows.pop(capture_id, []),
        key=lambda r: r.capture_id,
        imported=imported,
        notes=notes,
        signed_columns=signed_columns,
    )
    _compare_rows(
        problems,
        capture_id,
        "records",
        {r.record_id: r for r in want_records},
        by_capture.pop(capture_id, []),
        key=lambda r: r.record_id,
        imported=imported,
        notes=notes,
    )


def _unclaimed_rows(
    report: Report,
    results: dict[str, CaptureResult],
    capture_rows: dict[str, list[tuple[CaptureRow, str]]],
    by_capture: dict[str, list[tuple[RecordRow, str]]],
) -> None:
    """Rows left over: no signed manifest (nor imported file) stands behind them."""
    for capture_id in sorted(set(capture_rows) | set(by_capture)):
        rows = capture_rows.get(capture_id, [])
        names = sorted({n for _, n in rows} | {n for _, n in by_capture.get(capture_id, [])})
        problem = Problem(
            "index rows claim a capture that no signed manifest vouches for",
            capture_id,
            file=", ".join(names),
        )
        if capture_id in results:
            results[capture_id].problems.append(problem)
        else:
            report.index_problems.append(problem)


def _rows(
    index: Index, table: str, scope: set[str] | None, problems: list[Problem]
) -> list[tuple[Any, str]]:
    """Every row of ``table`` (of the captures in ``scope``), with the file it is in.

    A file that is not Parquet, or whose columns are not exactly the schema's (an
    added column would reach every query), is a problem; its rows are not read.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    expected = schema.arrow_schema(table)
    out: list[tuple[Any, str]] = []
    for path in index.files(table):
        name = f"{INDEX_DIR}/{table}/{path.name}"
        try:
            found = pq.read_schema(path)
            strange = [
                f"{f.name} ({f.type})"
                for f in found
                if f.name not in expected.names or expected.field(f.name).type != f.type
            ]
            if strange:
                problems.append(
                    Problem("columns not in the schema: " + ", ".join(strange), file=name)
                )
                continue
            data = read_table_file(path, table)
            if scope is not None:
                import pyarrow.compute as pc

                data = data.filter(pc.is_in(data.column("capture_id"), pa.array(sorted(scope))))
            rows = from_table(table, data)
        except (OSError, ValueError, TypeError, pa.ArrowException) as exc:
            # damaged: not Parquet, a page that does not decode, text that is not UTF-8
            problems.append(Problem(f"not a readable index file: {exc}", file=name))
            continue
        out += [(row, name) for row in rows]
    return out


def _compare_rows(
    problems: list[Problem],
    capture_id: str,
    table: str,
    want: dict[str, Any],
    have: list[tuple[Any, str]],
    key: Any,
    *,
    imported: bool = False,  # the rows are compared with what the imported file gives
    notes: list[Problem] | None = None,
    signed_columns: frozenset[str] | None = None,  # those the manifest's row holds
) -> None:
    """Each row of ``have`` against the one ``want`` holds for its key: a difference is
    a problem, except (in ``notes``, when given) an imported file's URL that an index
    written before the angle brackets were dropped holds as wget wrote it."""
    seen: set[str] = set()
    for row, name in have:
        k = key(row)
        url = getattr(row, "url", None)
        record_id = getattr(row, "record_id", None)
        if k in seen:
            problems.append(
                Problem(f"a second {table} row", capture_id, name, None, record_id, url)
            )
            continue
        seen.add(k)
        signed = want.get(k)
        if signed is None:
            problems.append(
                Problem(
                    f"a {table} row the signed manifest does not list",
                    capture_id,
                    name,
                    None,
                    record_id,
                    url,
                )
            )
            continue
        got, expected = row_to_json(row, table), row_to_json(signed, table)
        for column, value in got.items():
            if value != expected[column]:
                if imported and notes is not None and _bracketed(column, value, expected[column]):
                    notes.append(
                        Problem(
                            f"{table} column {column} is {_short(value)} (as an index "
                            f"written before URLs lost their angle brackets holds it), "
                            f"reading the imported file gives {_short(expected[column])}: "
                            "`archiver index rebuild` rewrites the rows from the file",
                            capture_id,
                            name,
                            getattr(signed, "warc_offset", None),
                            record_id,
                            getattr(signed, "url", url),
                        )
                    )
                    continue
                if imported:
                    says = (
                        f"reading the imported file gives {_short(expected[column])} "
                        "(`archiver index rebuild` rewrites the rows from the file)"
                    )
                elif signed_columns is not None and column not in signed_columns:
                    says = (
                        "the signed manifest was made before this column existed: it must be None"
                    )
                else:
                    says = f"the signed manifest says {_short(expected[column])}"
                problems.append(
                    Problem(
                        f"{table} column {column} is {_short(value)}, {says}",
                        capture_id,
                        name,
                        getattr(signed, "warc_offset", None),
                        record_id,
                        getattr(signed, "url", url),
                    )
                )
    for k in sorted(set(want) - seen):
        signed = want[k]
        problems.append(
            Problem(
                f"no {table} row in the index (run `archiver index rebuild` to restore it)",
                capture_id,
                f"index/{table}",
                getattr(signed, "warc_offset", None),
                getattr(signed, "record_id", None),
                getattr(signed, "url", None),
            )
        )


_URL_COLUMNS = frozenset({"url", "seed_url", "final_url"})


def _bracketed(column: str, value: Any, expected: Any) -> bool:
    """Whether an imported file's row holds in ``column`` the WARC-Target-URI with the
    angle brackets wget wrote around it, where reading the file now gives it bare: the
    index of an archive imported into before the brackets were dropped.  The file and
    its digests are what they were; only the row is stale."""
    return (
        column in _URL_COLUMNS
        and isinstance(value, str)
        and isinstance(expected, str)
        and value.startswith("<")
        and value.endswith(">")
        and bare_target_uri(value) == expected
    )


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 120 else text[:117] + "..."
