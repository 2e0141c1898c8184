"""The verify flow: every capture, file, revisit, custody event and index row the
paths name, checked in turn into one :class:`~archiver.ops.verify.report.Report`."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from cryptography import x509

from archiver.index.store import (
    CaptureRow,
    RecordRow,
)
from archiver.ops import cleanup
from archiver.ops.ingest import NoProgress, ScanProgress
from archiver.ops.verify.captures import _verify_capture
from archiver.ops.verify.custody_log import _check_heads_kept, _compare_custody
from archiver.ops.verify.index_rows import _verify_index
from archiver.ops.verify.reading import _Reading, _shown
from archiver.ops.verify.report import (
    Problem,
    Report,
)
from archiver.ops.verify.revisits import _resolve_revisits
from archiver.ops.verify.targets import (
    _OUR_WARC,
    _Plan,
    plan,
    trusted_keys,
)
from archiver.ops.verify.unsigned import (
    _changed_import,
    _interrupted,
    _unsigned_capture,
    _verify_foreign,
)
from archiver.trust import custody, timestamp
from archiver.trust.manifest import (
    Manifest,
    signature_path,
)
from archiver.warc.writer import OPEN_SUFFIX

SIGNING_WAIT = 2.0  # seconds a running capture's manifest may wait for its signature


def verify(
    archive_dir: Path,
    paths: Iterable[str] = (),
    trusted: Iterable[str] = (),
    progress: ScanProgress | None = None,
    *,
    deep: bool = False,
    tsa_roots: list[x509.Certificate] | None = None,
    custody_heads: Iterable[str] = (),
) -> Report:
    """Verify what ``paths`` name (the whole archive when none); see :mod:`archiver.ops.verify`.

    Time-stamp tokens are checked against ``tsa_roots`` when given, else against the
    roots saved in the archive.  ``custody_heads``: SHA-256s (or prefixes of at least 16
    hex digits) of custody events kept outside the archive, each of which must still be
    in the log: events removed from its end, or a log replaced, fail."""
    keys = trusted_keys(trusted)
    todo = plan(archive_dir, paths)
    progress = progress or NoProgress()
    report = Report(trusted_given=bool(keys), trusted=frozenset(keys))
    report.in_progress = _set_aside_running(todo)
    if (todo.archive / custody.CUSTODY_DIR).is_dir() or todo.whole_archive or todo.manifests:
        report.custody = custody.check(todo.archive, keys)
        report.archive = todo.archive
    # tokens as received: a token file changed since then fails even if it still holds
    logged = custody.logged_files(report.custody, "timestamp") if report.custody else {}
    # tokens kept on receipt with their chain not checked against a trusted root
    unchecked_tokens = (
        custody.logged_marked(report.custody, "timestamp", timestamp.UNCHECKED)
        if report.custody
        else set()
    )
    signed: dict[str, Manifest] = {}
    digests: dict[str, str] = {}
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="verify") as pool:
        reading = _Reading(pool, progress, deep)
        unchecked: set[str] = set()  # their manifest's signature does not hold
        for capture_id, found in sorted(todo.manifests.items()):
            named = todo.named.get(capture_id, [])
            result, manifest, data = _verify_capture(
                found[0], keys, reading, named, tsa_roots, logged, unchecked_tokens
            )
            for extra in found[1:]:
                result.problem(
                    "a second manifest for this capture", file=_shown(extra, todo.archive)
                )
            report.captures.append(result)
            if manifest is not None and data is not None and result.signature_holds:
                signed[capture_id] = manifest
                digests[capture_id] = hashlib.sha256(data).hexdigest()
            else:
                unchecked.add(capture_id)
        for capture_id, files in sorted(todo.unsigned_ours.items()):
            report.captures.append(_unsigned_capture(capture_id, files, todo.archive, progress))
        for path in todo.interrupted:
            report.captures.append(_interrupted(path, todo.archive))
        imported: dict[str, tuple[CaptureRow, list[RecordRow]]] = {}
        for path in todo.foreign:
            result_file, rows = _verify_foreign(path, todo.archive, progress)
            report.unsigned.append(result_file)
            asked = todo.imported_ids.get(path)  # verify import-<id> named it
            if asked is not None and result_file.imported_as != asked:
                _changed_import(result_file, path, asked)
            elif rows is not None:
                imported[rows[0].capture_id] = rows
    claimed = set(todo.manifests) | set(todo.named)
    for file_result in report.unsigned:
        if file_result.claims in claimed and file_result.imported_as is None:
            file_result.problems.append(
                Problem(
                    f"its warcinfo record names capture {file_result.claims}, whose signed "
                    "manifest does not list this file",
                    file_result.claims,
                    file_result.path,
                    0,
                )
            )
    _resolve_revisits(report, signed, todo.archive, keys)
    _compare_custody(todo, report, signed, digests, tsa_roots, logged, unchecked_tokens)
    _check_heads_kept(report, [h.lower() for h in custody_heads])
    report.index_problems += todo.missing
    if not report.captures and not report.unsigned and not todo.missing:
        report.nothing = True
    if todo.whole_archive:  # started since: the index rows it writes are its own business
        report.in_progress += sorted(
            cleanup.running_captures(todo.archive) - set(report.in_progress)
        )
    running = set(report.in_progress)  # their rows may not be written yet
    complete = {c: m for c, m in signed.items() if c not in running}
    _verify_index(todo, report, complete, digests, imported, unchecked | running)
    return report


def _set_aside_running(todo: _Plan) -> list[str]:
    """Take the captures running now out of ``todo``; their ids.

    A running capture holds its lock (see :func:`archiver.ops.cleanup.running_captures`):
    its ``.open`` files are being written, then published, signed and indexed, so it
    is neither interrupted nor finished.  A ``.open`` file listed but gone since was
    published meanwhile: its capture was running too.  Verifying the whole archive,
    every running capture is named, files or not (its index rows may come first).

    One whose manifest is written has published its files: it stays in ``todo`` and
    is verified (its index rows and custody event, which may not be written yet, are
    left out).  A lock proves nothing (anyone who can write the archive can hold one):
    it never hides a signed capture.
    """
    running = cleanup.running_captures(todo.archive)
    for path in list(todo.interrupted):
        match = _OUR_WARC.match(path.name.removesuffix(OPEN_SUFFIX))
        if match is not None and not path.exists():
            running.add(match.group(1))
    if not running:
        return []
    opened = {c for c in running if any(p.name.startswith(c + "-") for p in todo.interrupted)}
    found = opened | {c for c in running if c in todo.manifests or c in todo.named}
    signing = {c for c in running if c in todo.manifests}
    deadline = time.monotonic() + SIGNING_WAIT  # the signature follows the manifest at once
    while time.monotonic() < deadline and not all(
        signature_path(todo.manifests[c][0]).exists() for c in signing
    ):
        time.sleep(0.05)
    for capture_id in running - signing:
        todo.manifests.pop(capture_id, None)
        todo.named.pop(capture_id, None)
    todo.interrupted = [
        p
        for p in todo.interrupted
        if not any(p.name.startswith(c + "-") for c in running - signing)
    ]
    return sorted(running if todo.whole_archive else found)
