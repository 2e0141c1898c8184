"""``archiver report``: one document per capture, for people who will never run archiver.

What was captured (URLs, redirects, times, operator, machine, versions), the screenshot
a browser capture kept, every video with its size, SHA-256, duration and how it was
found, the signer's fingerprint, each time-stamp, the custody history, the result of a
verification made now, and the commands that check it all with OpenSSL and sha256sum.

- The facts (:mod:`.facts`) come from the index, the payloads (written out of the WARC
  files and checked on the way) and the verification; the HTML (:mod:`.document`) shows
  them and carries them as JSON; the PDF (:mod:`.pdf`) is that HTML printed by the
  system's Chromium.  An HTML report needs nothing else; a PDF needs Chromium, and
  without it nothing is done (a :class:`~archiver.core.errors.UsageProblem` naming
  Debian's ``chromium`` package).
- Several outputs (``report.html`` and ``report.pdf``) come from one verification and
  one set of facts.  Where each goes is checked, and a temporary file made beside it,
  before any work (:mod:`.staging`); all are written under those names, then renamed:
  a document that could not be written leaves none in place (each one written is in
  the custody log's event).  Never over an existing file unless ``overwrite``: a
  report that was handed to someone is not replaced by accident.  Nothing is written
  inside the archive, its root included.
- A PDF that Chromium cannot print (it would not start, or took longer than a time
  that grows with the document) leaves the HTML asked for in the same run written:
  :attr:`ReportResult.not_written` says why the PDF is not (the command exits 1).  A
  PDF alone that cannot be printed is a :class:`PrintFailed` suggesting ``-o FILE.html``.
- A capture whose verification fails still gets its report, saying so on its first
  page: that is a fact its reader needs.  :attr:`ReportResult.verified` is False then
  (the command exits 1).
"""

from __future__ import annotations

import hashlib
import shutil
import socket
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from archiver.core.atomic import output_problem
from archiver.core.errors import Failure, UsageProblem
from archiver.core.model import utcnow
from archiver.core.text import counted
from archiver.index.store import INDEX_DIR
from archiver.ops import verify as verification
from archiver.ops.ingest import WARC_DIR
from archiver.ops.report import staging
from archiver.ops.report.document import facts_json, render
from archiver.ops.report.facts import Gathered, capture_row, check_id, gather, plain
from archiver.ops.report.pdf import PrintFailed, print_pdf, print_timeout
from archiver.trust import custody

if TYPE_CHECKING:
    from cryptography import x509

__all__ = [
    "FORMATS",
    "Gathered",
    "PrintFailed",
    "ReportResult",
    "Written",
    "check",
    "facts_json",
    "make",
    "render",
]

FORMATS = {".html": "html", ".htm": "html", ".pdf": "pdf"}
"""The documents a report is written as, by the output's suffix."""


@dataclass(frozen=True)
class Written:
    """One document written: where, as what, its size and SHA-256."""

    path: Path
    format: str
    bytes: int
    sha256: str

    def to_json(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "format": self.format,
            "bytes": self.bytes,
            "sha256": self.sha256,
        }


@dataclass
class ReportResult:
    """The report of one capture: the documents written, and what they state."""

    capture_id: str
    written: list[Written]
    verified: bool  # the verification made for the report found everything holding
    problems: int
    facts: dict[str, Any]
    notes: list[str] = field(default_factory=list)
    # documents asked for and not made (a PDF Chromium could not print): path -> why
    not_written: dict[Path, str] = field(default_factory=dict)

    @property
    def imported(self) -> bool:
        """A file imported from another tool: no signature, its own digests checked."""
        return self.facts.get("signature") is None

    @property
    def ok(self) -> bool:
        """Everything asked for was written, and the verification found all holding."""
        return self.verified and not self.not_written

    @property
    def summary(self) -> str:
        """One line for the custody log: the documents and the verification's result."""
        docs = ", ".join(f"{w.format} {w.path.name}" for w in self.written)
        docs += "".join(f"; {p.name} NOT written ({why})" for p, why in self.not_written.items())
        if self.imported:
            said = "its own digests hold" if self.verified else "its own digests do NOT hold"
        else:
            said = "everything holds" if self.verified else counted(self.problems, "problem")
        return f"{docs}; verification at report time: {said}"

    def event(self, archive_dir: Path) -> dict[str, Any]:
        """The report's custody event (``Archive.log("report", **event)``): the capture,
        each document (where it was written, absolute) with its SHA-256, and the
        verification's result ("failed" too when a document asked for is not made)."""
        return {
            "captures": [self.capture_id],
            "files": [
                custody.FileRef.of(w.path.absolute(), archive_dir, w.sha256) for w in self.written
            ],
            "result": "ok" if self.ok else "failed",
            "detail": self.summary,
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "capture_id": self.capture_id,
            "written": [w.to_json() for w in self.written],
            "not_written": [{"path": str(p), "why": w} for p, w in self.not_written.items()],
            "verified": self.verified,
            "imported": self.imported,
            "problems": self.problems,
            "verification": self.facts["verification"],
            "notes": self.notes,
        }


def check(
    archive_dir: Path,
    capture_id: str,
    outputs: Sequence[Path],
    *,
    overwrite: bool = False,
    browser_path: str | None = None,
) -> tuple[dict[str, Any], list[tuple[Path, str]], Path | None]:
    """Everything that can be wrong with the request, said before any work: the id, the
    archive and the capture in its index, each output (its suffix, a free place outside
    the archive, in a folder that is one), and Chromium for a PDF.  The capture's index
    row, the outputs with their formats, and the browser to print with (None without a
    PDF).  Nothing is written (:func:`staging.reserve` then tries the folders)."""
    check_id(capture_id)
    if not outputs:
        raise UsageProblem("give the report's file: -o FILE.html or -o FILE.pdf", hint="--output")
    targets: list[tuple[Path, str]] = []
    for output in outputs:
        kind = FORMATS.get(output.suffix.lower())
        if kind is None:
            raise UsageProblem(
                f"{output}: a report is written as FILE.html or FILE.pdf", hint="--output"
            )
        if any(kind == k for _, k in targets):
            raise UsageProblem(f"{output}: one {kind} report at a time", hint="--output")
        targets.append((output, kind))
    if not archive_dir.is_dir():
        raise UsageProblem(f"no archive at {archive_dir}")
    if not ((archive_dir / WARC_DIR).is_dir() or (archive_dir / INDEX_DIR).is_dir()):
        raise UsageProblem(f"no archive at {archive_dir} (it holds no {WARC_DIR}/ nor index/)")
    for output, _ in targets:
        problem = output_problem(archive_dir, output, overwrite) or staging.place_problem(
            archive_dir, output
        )
        if problem is not None:
            raise UsageProblem(problem, hint="--output")
    executable = None
    if any(kind == "pdf" for _, kind in targets):
        from archiver.web.browser.chromium import BrowserNotFound, find_browser

        try:
            executable = find_browser(browser_path)
        except BrowserNotFound as exc:
            raise UsageProblem(
                f"a PDF report needs Chromium: {exc}; an HTML report "
                "(-o FILE.html) needs no browser"
            ) from exc
    try:
        row = capture_row(archive_dir, capture_id)
    except OSError as exc:
        raise Failure(f"cannot read the index of {archive_dir}: {plain(exc)}") from exc
    return row, targets, executable


def make(
    archive_dir: Path,
    capture_id: str,
    outputs: Sequence[Path | str] | Path | str,
    *,
    trusted: Sequence[str] = (),
    tsa_roots: list[x509.Certificate] | None = None,
    overwrite: bool = False,
    browser_path: str | None = None,
    made_by: str | None = None,
    now: datetime | None = None,
    not_logged: str | None = None,
    print_seconds: float | None = None,
) -> ReportResult:
    """Verify the capture now and write its report to each of ``outputs`` (FILE.html,
    FILE.pdf); see the module's docstring.  ``trusted`` and ``tsa_roots`` are verify's
    ``--trusted-key`` and ``--tsa-ca``; ``made_by`` names who makes the report;
    ``not_logged`` why its making cannot be logged (a read-only archive: the report
    says so); ``print_seconds`` the time Chromium is given to print a PDF (default:
    :func:`~archiver.ops.report.pdf.print_timeout` of the document's size)."""
    if isinstance(outputs, (str, Path)):
        outputs = [outputs]
    row, targets, executable = check(
        archive_dir,
        capture_id,
        [Path(o) for o in outputs],
        overwrite=overwrite,
        browser_path=browser_path,
    )
    slots = staging.reserve(targets)  # each folder tried before the work, not after
    try:
        made_at = now or utcnow()
        report = _verified(archive_dir, capture_id, trusted, tsa_roots)
        work = Path(tempfile.mkdtemp(prefix="archiver-report-"))
        try:
            gathered = gather(
                archive_dir,
                row,
                report,
                made_at=made_at,
                made_by=made_by,
                host=socket.gethostname(),
                work_dir=work,
                tsa_roots_given=bool(tsa_roots),
                not_logged=not_logged,
            )
            written, not_written = _write(slots, gathered, work, executable, print_seconds)
            staging.commit([s for s in slots if s.final not in not_written], overwrite)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    except BaseException:
        staging.release(slots)
        raise
    staging.release(slots)  # the temporary files of documents not made
    return ReportResult(
        capture_id=capture_id,
        written=written,
        verified=report.ok,
        problems=len(report.problems),
        facts=gathered.facts,
        notes=gathered.notes,
        not_written=not_written,
    )


def _verified(
    archive_dir: Path,
    capture_id: str,
    trusted: Sequence[str],
    tsa_roots: list[x509.Certificate] | None,
) -> verification.Report:
    """The verification of the capture, made now for its report."""
    keys = verification.trusted_keys(trusted)  # a key that cannot be read: said first
    try:
        report = verification.verify(
            archive_dir, (capture_id,), tuple(trusted), tsa_roots=tsa_roots
        )
    except verification.VerifyUsage as exc:  # the index lists it; nothing of it is left
        report = verification.Report(trusted_given=bool(keys), trusted=frozenset(keys))
        report.index_problems.append(
            verification.Problem(
                f"{exc}: the index lists the capture, the archive holds none of its files",
                capture_id,
            )
        )
        report.custody, report.archive = custody.check(archive_dir, keys), archive_dir
    if capture_id in report.in_progress:
        raise Failure(f"capture {capture_id} is still running; report on it once it has ended")
    return report


def _write(
    slots: list[staging.Slot],
    gathered: Gathered,
    work: Path,
    executable: Path | None,
    print_seconds: float | None,
) -> tuple[list[Written], dict[Path, str]]:
    """Every document made and written under its temporary name; what was written, and
    the PDF Chromium could not print, with why (a PrintFailed when nothing else was
    asked for: there is nothing to put in place)."""
    page = render(gathered.facts, gathered.screenshot).encode("utf-8")
    written: list[Written] = []
    not_written: dict[Path, str] = {}
    for slot in slots:
        data = page
        if slot.kind == "pdf":
            assert executable is not None  # check() found it
            source = work / "report.html"
            source.write_bytes(page)
            cid = gathered.facts["capture"]["capture_id"]
            label = f"archiver capture report {cid}, made {gathered.facts['report']['made_at']}"
            seconds = print_seconds or print_timeout(len(page))
            try:
                data = print_pdf(source, executable=executable, label=label, timeout=seconds)
            except Failure as exc:  # PrintFailed, or a browser that would not start
                if len(slots) == 1:
                    raise PrintFailed(
                        f"{slot.final} was not written: {exc}; an HTML report needs no "
                        "browser: try -o FILE.html"
                    ) from exc
                not_written[slot.final] = str(exc)
                continue
        staging.fill(slot, data)
        written.append(Written(slot.final, slot.kind, len(data), hashlib.sha256(data).hexdigest()))
    return written, not_written
