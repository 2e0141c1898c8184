"""What to verify: the captures (by manifest), our unsigned files and foreign files the
paths name, what of them cannot be read, and the ``--trusted-key`` values."""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from archiver.core.layout import CAPTURE_ID
from archiver.index.store import Index
from archiver.ops import ingest
from archiver.ops.verify.index_rows import _rows
from archiver.ops.verify.reading import _inside, _shown
from archiver.ops.verify.report import (
    Problem,
    VerifyUsage,
)
from archiver.trust import timestamp
from archiver.trust.keys import KeyProblem, PublicKey, fingerprint, load_public
from archiver.trust.manifest import (
    MANIFEST_SUFFIX,
    SIGNATURE_SUFFIX,
    archive_of,
    capture_id_of,
)
from archiver.warc.writer import OPEN_SUFFIX

_OUR_WARC = re.compile(r"^(\d{14}-[0-9a-f]{10})-\d{5}\.warc(\.gz)?$")
_CAPTURE_ID = CAPTURE_ID
_FINGERPRINT = re.compile(r"^[0-9a-f]{64}$")


@dataclass
class _Plan:
    archive: Path
    manifests: dict[str, list[Path]] = field(default_factory=dict)  # capture id -> manifests
    named: dict[str, list[Path]] = field(default_factory=dict)  # capture id -> its WARC files
    foreign: list[Path] = field(default_factory=list)
    interrupted: list[Path] = field(default_factory=list)  # .open files
    whole_archive: bool = False
    # imported files named by their id (import-...): the id their content must still have
    imported_ids: dict[Path, str] = field(default_factory=dict)
    # files the index names, gone; folders and files that cannot be read
    missing: list[Problem] = field(default_factory=list)
    # every file taken, by its real path: the same file reached under two spellings
    # (``archives/...`` and ``/home/.../archives/...``) is one file, taken once
    seen: set[tuple[str, str]] = field(default_factory=set)

    def first(self, kind: str, path: Path) -> bool:
        """Whether ``path`` is new among the files of ``kind`` (and now known)."""
        key = (kind, os.path.realpath(path))
        if key in self.seen:
            return False
        self.seen.add(key)
        return True

    @property
    def unsigned_ours(self) -> dict[str, list[Path]]:
        """WARC files named after one of our captures that has no manifest."""
        return {c: files for c, files in self.named.items() if c not in self.manifests}


def trusted_keys(values: Iterable[str]) -> dict[str, PublicKey | None]:
    """``--trusted-key`` values (public key files or 64 hex digits): fingerprint -> the
    key itself when a file gave it (it then checks signatures in place of the archive's
    copy), else None."""
    out: dict[str, PublicKey | None] = {}
    for value in values:
        path = Path(value)
        if path.is_file():
            try:
                key = load_public(path)
            except KeyProblem as exc:
                raise VerifyUsage(f"--trusted-key {value}: {exc}") from exc
            out[fingerprint(key)] = key
        elif _FINGERPRINT.match(value.lower()):
            out.setdefault(value.lower(), None)
        else:
            raise VerifyUsage(
                f"--trusted-key {value}: not a public key file nor a 64-digit hex fingerprint"
            )
    return out


def plan(archive_dir: Path, paths: Iterable[str]) -> _Plan:
    """What the paths name: captures (by manifest), our unsigned files, foreign files."""
    given = list(paths)
    result = _Plan(archive_dir)
    if not given:
        if not archive_dir.is_dir():
            raise VerifyUsage(f"no archive at {archive_dir}")
        _add_tree(result, archive_dir / ingest.WARC_DIR)
        result.whole_archive = True
        _set_aside_unopenable(result)
        return result
    for text in given:
        try:
            _add_path(result, archive_dir, text)
        except OSError as exc:  # in a folder that cannot be read, say
            _unreadable(result, Path(text), exc.strerror or str(exc))
    homes = {archive_of(found[0]) for found in result.manifests.values()}
    if not result.whole_archive and len(homes) == 1:  # manifests of another archive: its
        home = homes.pop()  # index and custody log are theirs (the archive itself,
        if home != _real(archive_dir):  # however it was spelt, keeps its spelling)
            result.archive = home
    if not result.whole_archive:  # every file that claims one of these captures by name
        unreadable: list[tuple[Path, str]] = []
        for capture_id in list(result.manifests):
            for found in _capture_files(result.archive, capture_id, unreadable)[1]:
                _add_file(result, found)
        for path, why in unreadable:
            _unreadable(result, path, why)
    _set_aside_unopenable(result)
    return result


def _add_path(result: _Plan, archive_dir: Path, text: str) -> None:
    """Add what one of the paths given names to ``result``."""
    path = Path(text)
    if path.is_dir():
        if path.resolve() == archive_dir.resolve() or (path / ingest.WARC_DIR).is_dir():
            result.archive = path
            _add_tree(result, path / ingest.WARC_DIR)
            result.whole_archive = True
        else:
            _add_tree(result, path)
    elif path.is_file():
        if not _add_file(result, path):
            raise VerifyUsage(f"{text}: not a manifest, signature or WARC file")
    elif _CAPTURE_ID.match(text):
        unreadable: list[tuple[Path, str]] = []
        manifests, files = _capture_files(archive_dir, text, unreadable)
        for folder, why in unreadable:  # the capture may be there: not verified, a failure
            _unreadable(result, folder, why)
        if not manifests and not files and not unreadable:
            raise VerifyUsage(f"{text}: no such capture in {archive_dir}")
        for found in [*manifests, *files]:
            _add_file(result, found)
    elif ingest.IMPORT_ID.match(text):  # a file imported from another tool
        files, named = _imported_files(archive_dir, text)
        if not files and named:  # its rows name a file that is gone: a failure
            result.missing.append(
                Problem(
                    f"the index names {', '.join(named)} as the file of imported capture "
                    f"{text}, and no such file is in the archive",
                    text,
                    ", ".join(named),
                )
            )
        elif not files:
            raise VerifyUsage(f"{text}: no such imported file in {archive_dir}")
        for found in files:
            _add_file(result, found)
            result.imported_ids[found] = text
    else:
        raise VerifyUsage(f"{text}: no such file or directory, nor a capture id")


def _unreadable(result: _Plan, path: Path, why: str) -> None:
    """A folder or file verify must look at and cannot read: a failure naming it (once)."""
    shown = _shown(path, result.archive)
    if any(p.file == shown for p in result.missing):
        return
    result.missing.append(
        Problem(
            f"cannot be read ({why}): what it holds was not verified",
            file=shown,
        )
    )


def _set_aside_unopenable(result: _Plan) -> None:
    """Take the files verify reads whole without a signature (other tools' files, our
    unsigned ones) that cannot be opened out of ``result``: each is a failure naming it.
    (A signed capture's files are checked against its manifest, which says so.)"""
    for path in list(result.foreign):
        why = ingest.unopenable(path)
        if why is not None:
            result.foreign.remove(path)
            _unreadable(result, path, why)
    for capture_id, files in list(result.unsigned_ours.items()):
        for path in list(files):
            why = ingest.unopenable(path)
            if why is not None:
                files.remove(path)
                _unreadable(result, path, why)
        if not files:
            del result.named[capture_id]


def _capture_files(
    archive: Path, capture_id: str, unreadable: list[tuple[Path, str]] | None = None
) -> tuple[list[Path], list[Path]]:
    """The manifests and the WARC files named after ``capture_id``, in any folder; the
    folders that cannot be read, with why, are added to ``unreadable``."""
    root = archive / ingest.WARC_DIR
    if not root.is_dir():
        return [], []
    found = ingest.walk(root)
    if unreadable is not None:
        unreadable += found.unreadable
    manifests = [p for p in found.paths if p.name == capture_id + MANIFEST_SUFFIX]
    files = [
        p
        for p in found.paths
        if p.name.startswith(capture_id + "-")
        and (ingest.is_warc(p) or ingest.is_warc(p.with_name(p.name.removesuffix(OPEN_SUFFIX))))
    ]
    return manifests, files


def _imported_files(archive: Path, capture_id: str) -> tuple[list[Path], list[str]]:
    """The stored file of the imported capture ``capture_id`` (``import-`` and the first
    16 hex digits of the file's SHA-256), as ``show`` and ``extract`` name it.

    The index's ``captures`` row says where it is (read here, never repaired): that
    file is taken, even if its content no longer has the id (verify then says so, and
    what changed in it).  Without such a file, every imported file of the archive is
    hashed to find the one with the id.  Also returned: the files the row names.
    """
    prefix = capture_id.removeprefix("import-")
    named: list[str] = []
    stored: list[Path] = []
    for row, _name in _rows(Index(archive), "captures", {capture_id}, []):
        for relative in row.warc_files or []:
            named.append(relative)
            path = _inside(archive, relative)
            if path is None or path in stored or path.parent.name != ingest.IMPORTED_DIR:
                continue
            with contextlib.suppress(OSError):
                if path.is_file() and ingest.is_warc(path):
                    stored.append(path)
    if stored:
        return stored, named
    tree = archive / ingest.WARC_DIR
    for path in sorted(tree.glob(f"*/{ingest.IMPORTED_DIR}/*")):
        try:
            if (
                path.is_file()
                and ingest.is_warc(path)
                and ingest.file_sha256(path).startswith(prefix)
            ):
                return [path], named
        except OSError:
            continue
    return [], named


def _add_tree(result: _Plan, root: Path) -> None:
    """Every file under ``root``; a folder (or entry) that cannot be read is a failure."""
    if not root.is_dir():
        return
    found = ingest.walk(root)
    for path in found.files():  # hidden names too: index rebuild reads them as well
        _add_file(result, path)
    for path, why in found.unreadable:
        _unreadable(result, path, why)


def _add_file(result: _Plan, path: Path) -> bool:
    name = path.name
    stamped = timestamp.manifest_of_token(path)
    if stamped is not None:  # a time-stamp token: checked with its capture
        path, name = stamped, stamped.name
    if name.endswith(SIGNATURE_SUFFIX):
        path = path.with_name(name.removesuffix(".sig"))
        name = path.name
    if name.endswith(MANIFEST_SUFFIX):
        found = result.manifests.setdefault(capture_id_of(path), [])
        if result.first("manifest", path):
            found.append(path)
        return True
    if name.endswith(OPEN_SUFFIX) and ingest.is_warc(path.with_name(name[: -len(OPEN_SUFFIX)])):
        if result.first("open", path):
            result.interrupted.append(path)
        return True
    if not ingest.is_warc(path):
        return False
    match = _OUR_WARC.match(name)
    if match is None or path.parent.name == ingest.IMPORTED_DIR:
        if result.first("foreign", path):
            result.foreign.append(path)
        return True
    capture_id = match.group(1)
    manifest = path.with_name(capture_id + MANIFEST_SUFFIX)
    if manifest.exists():
        _add_file(result, manifest)
    named = result.named.setdefault(capture_id, [])
    if result.first("warc", path):
        named.append(path)
    return True


def _real(path: Path) -> Path:
    """``path`` resolved (as :func:`archive_of` gives an archive), or as it is."""
    try:
        return path.resolve()
    except (OSError, RuntimeError):
        return path
