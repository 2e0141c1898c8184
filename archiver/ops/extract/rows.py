"""Reading extraction's records out of the index (:func:`_rows`) and naming one in messages."""

from __future__ import annotations

from dataclasses import fields, replace
from pathlib import Path
from typing import Any

from archiver.index.query import QueryError, run
from archiver.index.store import RecordRow
from archiver.ops.extract.results import ExtractionFailed
from archiver.warc.rules import bare_target_uri

_RECORD_COLUMNS = tuple(f.name for f in fields(RecordRow))


def _rows(archive_dir: Path, where: str, params: list[Any]) -> list[RecordRow]:
    sql = (
        f"SELECT * FROM records WHERE {where} "
        "ORDER BY fetched_at NULLS FIRST, warc_filename, warc_offset"
    )
    try:
        result = run(archive_dir, sql, params)
    except QueryError as exc:
        raise ExtractionFailed(f"cannot read the index of {archive_dir}: {exc}") from exc
    out = []
    for row in result.rows:
        values: list[Any] = [row.get(name) for name in _RECORD_COLUMNS]
        found = RecordRow(*values)
        # an index written before the angle brackets wget puts around a WARC-Target-URI
        # were dropped holds them: the URL is looked up and followed without them
        if found.url is not None and found.url.startswith("<"):
            found = replace(found, url=bare_target_uri(found.url))
        out.append(found)
    return out


def _describe(row: RecordRow) -> str:
    return f"record {row.record_id} ({row.url or row.warc_type})"
