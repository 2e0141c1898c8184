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
  one set of facts.  They appear only once all are made (each written under a temporary
  name, then renamed), never over an existing file unless ``overwrite``: a report that
  was handed to someone is not replaced by accident.
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

from archiver.core.atomic import atomic_path, output_problem
from archiver.core.errors import Failure, UsageProblem
from archiver.core.model import utcnow
from archiver.core.text import counted
from archiver.ops import verify as verification
from archiver.ops.report.document import facts_json, render
from archiver.ops.report.facts import Gathered, capture_row, check_id, gather
from archiver.ops.report.pdf import PrintFailed, print_pdf
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

    @property
    def summary(self) -> str:
        """One line for the custody log: the documents and the verification's result."""
        docs = ", ".join(f"{w.format} {w.path.name}" for w in self.written)
        said = "everything holds" if self.verified else counted(self.problems, "problem")
        return f"{docs}; verification at report time: {said}"

    def event(self, archive_dir: Path) -> dict[str, Any]:
        """The report's custody event (``Archive.log("report", **event)``): the capture,
        each document (where it was written, absolute) with its SHA-256, and the
        verification's result."""
        return {
            "captures": [self.capture_id],
            "files": [
                custody.FileRef.of(w.path.absolute(), archive_dir, w.sha256) for w in self.written
            ],
            "result": "ok" if self.verified else "failed",
            "detail": self.summary,
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "capture_id": self.capture_id,
            "written": [w.to_json() for w in self.written],
            "verified": self.verified,
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
    capture in the index, each output (its suffix, a free place outside the archive's
    evidence), and Chromium for a PDF.  The capture's index row, the outputs with their
    formats, and the browser to print with (None without a PDF)."""
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
        problem = output_problem(archive_dir, output, overwrite)
        if problem is not None:
            raise UsageProblem(problem, hint="--output")
        targets.append((output, kind))
    if not archive_dir.is_dir():
        raise UsageProblem(f"no archive at {archive_dir}")
    executable = None
    if any(kind == "pdf" for _, kind in targets):
        from archiver.web.browser.chromium import BrowserNotFound, find_browser

        try:
            executable = find_browser(browser_path)
        except BrowserNotFound as exc:
            raise UsageProblem(
                f"a PDF report is printed by Chromium, and {exc}; an HTML report "
                "(-o FILE.html) needs no browser",
                hint=exc.hint,
            ) from exc
    return capture_row(archive_dir, capture_id), targets, executable


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
) -> ReportResult:
    """Verify the capture now and write its report to each of ``outputs`` (FILE.html,
    FILE.pdf); see the module's docstring.  ``trusted`` and ``tsa_roots`` are verify's
    ``--trusted-key`` and ``--tsa-ca``; ``made_by`` names who makes the report."""
    if isinstance(outputs, (str, Path)):
        outputs = [outputs]
    row, targets, executable = check(
        archive_dir,
        capture_id,
        [Path(o) for o in outputs],
        overwrite=overwrite,
        browser_path=browser_path,
    )
    made_at = now or utcnow()
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
        )
        written = _write(targets, gathered, work, executable, overwrite)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return ReportResult(
        capture_id=capture_id,
        written=written,
        verified=report.ok,
        problems=len(report.problems),
        facts=gathered.facts,
        notes=gathered.notes,
    )


def _write(
    targets: list[tuple[Path, str]],
    gathered: Gathered,
    work: Path,
    executable: Path | None,
    overwrite: bool,
) -> list[Written]:
    """Every document made first, then each put in place (a failure leaves none)."""
    page = render(gathered.facts, gathered.screenshot).encode("utf-8")
    made: list[tuple[Path, str, bytes]] = []
    for output, kind in targets:
        if kind == "html":
            made.append((output, kind, page))
            continue
        assert executable is not None  # check() found it
        source = work / "report.html"
        source.write_bytes(page)
        cid = gathered.facts["capture"]["capture_id"]
        label = f"archiver capture report {cid}, made {gathered.facts['report']['made_at']}"
        made.append((output, kind, print_pdf(source, executable=executable, label=label)))
    written = []
    for output, kind, data in made:
        try:
            with atomic_path(output, overwrite=overwrite) as temp:
                temp.write_bytes(data)
        except FileExistsError as exc:
            raise UsageProblem(
                f"{output} appeared meanwhile; nothing replaced", hint="--output"
            ) from exc
        except OSError as exc:
            raise Failure(f"cannot write {output}: {exc.strerror or exc}") from exc
        written.append(Written(output, kind, len(data), hashlib.sha256(data).hexdigest()))
    return written
