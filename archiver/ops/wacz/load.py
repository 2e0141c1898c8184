"""``archiver import FILE.wacz``: the WARC files of a WACZ from any tool, indexed.

The WACZ is checked first (:func:`archiver.ops.wacz.check.check`: its files against
``datapackage.json``, its signature), and what was found is reported as it is: a
signature that holds with an anonymous key says only that the file is as that key
signed it, a domain identity names a domain whose certificate we did not check against
any root, and none of it is trust we have.  Then each ``archive/*.warc(.gz)`` file is
copied out of the ZIP a megabyte at a time into ``warc/<collection>/imported/`` and
indexed as ``index import`` indexes a WARC file (every declared digest checked).  A
file of the WACZ that does not match its listed hash is still imported (it is what we
were given) and the import fails, naming it.
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO

from archiver.ops import ingest, wacz
from archiver.ops.wacz.check import WaczReport, WaczUnreadable, check


@dataclass
class WaczImport:
    """What importing one WACZ did: its check, and each WARC file's import."""

    source: Path
    report: WaczReport
    results: list[ingest.ImportResult | tuple[Path, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        files_ok = all(not isinstance(r, tuple) and r.report.ok for r in self.results)
        return self.report.ok and files_ok and bool(self.results)

    def signature_said(self) -> str:
        """The signature, as much as it says and no more."""
        report = self.report
        if report.archiver_made:
            return self._said() + (
                "; made by archiver: its manifests, tokens and custody events were checked, "
                "and its WARC files are indexed as imported files (not adopted as our captures)"
            )
        return self._said()

    def _said(self) -> str:
        report = self.report
        if report.signature == "valid":
            return "signature valid, by an anonymous P-384 key (it names no one)" + (
                f", bound to archiver key {report.signer}" if report.signer else ""
            )
        if report.signature.startswith("domain"):
            return (
                f"signature valid, {report.signature}: its certificate was not checked "
                "against any root"
            )
        if report.signature == "invalid":
            return "signature INVALID"
        return "unsigned"

    def to_json(self) -> dict[str, Any]:
        files: list[dict[str, Any]] = []
        for result in self.results:
            if isinstance(result, tuple):
                files.append({"file": str(result[0]), "error": result[1]})
            else:
                files.append(
                    {
                        "file": str(result.source),
                        "stored_as": str(result.stored_as) if result.stored_as else None,
                        "capture_id": result.capture_id,
                        "records": result.report.records,
                        "already": result.already,
                        "problems": [f"offset {o}: {w}" for o, w in result.report.problems],
                    }
                )
        return {
            "wacz": str(self.source),
            "ok": self.ok,
            "signature": self.signature_said(),
            "check": self.report.to_json(),
            "files": files,
        }


def warc_members(zf: zipfile.ZipFile) -> tuple[list[str], list[str]]:
    """The WARC files under ``archive/`` (what WACZ readers read), and those elsewhere
    (named, never imported: no reader would replay them)."""
    inside: list[str] = []
    outside: list[str] = []
    for name in zf.namelist():
        if name.endswith("/") or not ingest.is_warc(Path(PurePosixPath(name).name)):
            continue
        plain = name.startswith(wacz.ARCHIVE_DIR) and name.count("/") == 1
        (inside if plain else outside).append(name)
    return inside, outside


def import_wacz(
    archive_dir: Path,
    source: Path,
    collection: str,
    progress: ingest.ScanProgress | None = None,
) -> WaczImport:
    """Check ``source`` and import its WARC files into ``archive_dir``."""
    report = check(source)
    result = WaczImport(source, report)
    try:
        zf = zipfile.ZipFile(source)
    except (OSError, zipfile.BadZipFile) as exc:
        raise WaczUnreadable(f"{source} is not a WACZ: {exc}") from exc
    with zf:
        members, elsewhere = warc_members(zf)
        for name in elsewhere:
            report.problems.append(f"{name} is a WARC file outside archive/: not imported")
        if not members:
            report.problems.append(f"{source} holds no WARC file under archive/")
        for name in members:
            label = Path(f"{source}!{name}")

            def opener(name: str = name) -> BinaryIO:
                return zf.open(name)  # type: ignore[return-value]  # a readable stream

            try:
                imported = ingest.import_stream(
                    archive_dir, label, PurePosixPath(name).name, opener, collection, progress
                )
                result.results.append(imported)
            except ingest.IngestError as exc:
                result.results.append((label, str(exc)))
            except (OSError, zipfile.BadZipFile, EOFError, RuntimeError) as exc:
                result.results.append((label, f"{label}: {exc}"))
    return result


def iter_imported(results: list[WaczImport]) -> Iterator[ingest.ImportResult]:
    """The WARC files stored by these imports (not those already there)."""
    for item in results:
        for result in item.results:
            if not isinstance(result, tuple) and not result.already and result.stored_as:
                yield result
