"""What verify finds: problems, checks, and the verdicts on captures, files and the
archive (:class:`Report`), with their JSON form."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, fields
from datetime import datetime
from pathlib import Path
from typing import Any

from archiver.core.errors import UsageProblem
from archiver.core.model import isoformat
from archiver.core.text import counted
from archiver.trust import custody, timestamp

SIGNERS_SHOWN = 5  # keys named in the one-line verdict (the summary lists them all)


class VerifyUsage(UsageProblem, ValueError):
    """The paths or keys given cannot be verified as asked (a user error, exit 2)."""


@dataclass(frozen=True)
class Problem:
    """Something that does not hold, and where: capture, file, offset, record, URL."""

    message: str
    capture_id: str | None = None
    file: str | None = None
    offset: int | None = None
    record_id: str | None = None
    url: str | None = None

    def text(self) -> str:
        where = []
        if self.file:
            where.append(self.file + (f" @ {self.offset}" if self.offset is not None else ""))
        if self.record_id:
            where.append(f"record {self.record_id}" + (f" ({self.url})" if self.url else ""))
        return (": ".join(where) + ": " if where else "") + self.message

    def to_json(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True)
class Check:
    """One check made and its result."""

    check: str
    target: str
    ok: bool
    detail: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"check": self.check, "target": self.target, "ok": self.ok, "detail": self.detail}


@dataclass
class CaptureResult:
    """The verdict on one capture of ours."""

    capture_id: str
    manifest: str | None = None
    status: str | None = None  # what the capture itself recorded: complete, partial, failed
    key_fingerprint: str | None = None
    trusted: bool | None = None  # None: no trusted key was given
    files: int = 0
    records: int = 0
    bytes: int = 0
    checks: list[Check] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    timestamps: list[timestamp.TokenCheck] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def trusted_time(self) -> datetime | None:
        """The earliest time an authority's valid token vouches the capture existed."""
        return timestamp.trusted_time(self.timestamps)

    @property
    def signature_holds(self) -> bool:
        return any(c.check == "signature" and c.ok for c in self.checks)

    def check(self, name: str, target: str, ok: bool, detail: str = "") -> bool:
        self.checks.append(Check(name, target, ok, detail))
        return ok

    def problem(self, message: str, **where: Any) -> None:
        self.problems.append(Problem(message, self.capture_id, **where))

    def to_json(self) -> dict[str, Any]:
        return {
            "capture_id": self.capture_id,
            "ok": self.ok,
            "manifest": self.manifest,
            "status": self.status,
            "signed": self.key_fingerprint is not None,
            "key_fingerprint": self.key_fingerprint,
            "trusted": self.trusted,
            "files": self.files,
            "records": self.records,
            "bytes": self.bytes,
            "checks": [c.to_json() for c in self.checks],
            "problems": [p.to_json() for p in self.problems],
            "timestamps": [t.to_json() for t in self.timestamps],
            "trusted_time": isoformat(self.trusted_time) if self.trusted_time else None,
        }


@dataclass
class FileResult:
    """The verdict on a WARC file no signature covers (written by another tool)."""

    path: str
    records: int = 0
    without_digest: int = 0
    imported_as: str | None = None
    claims: str | None = None  # the capture its warcinfo record names, if one of ours
    sha256: str | None = None  # of an imported file, as read (compared with the custody log)
    problems: list[Problem] = field(default_factory=list)
    # quirks of the writer that warcio accepts and that touch no digest: said, not failed
    notes: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "ok": self.ok,
            "signed": False,
            "imported_as": self.imported_as,
            "records": self.records,
            "records_without_digest": self.without_digest,
            "checked": "internal consistency only (no signature)",
            "problems": [p.to_json() for p in self.problems],
            "notes": [n.to_json() for n in self.notes],
        }


@dataclass
class Report:
    captures: list[CaptureResult] = field(default_factory=list)
    unsigned: list[FileResult] = field(default_factory=list)
    index_checks: list[Check] = field(default_factory=list)
    index_problems: list[Problem] = field(default_factory=list)  # rows claiming no signed capture
    nothing: bool = False  # nothing was found to verify
    custody: custody.CustodyReport | None = None  # the archive's custody log, checked
    archive: Path | None = None  # the archive whose custody log that is
    trusted_given: bool = False  # --trusted-key named the keys that may sign
    trusted: frozenset[str] = frozenset()  # their fingerprints
    # captures running now (holding their lock): left out of the verdict, said
    in_progress: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return (
            not self.nothing
            and all(c.ok for c in self.captures)
            and all(f.ok for f in self.unsigned)
            and not self.index_problems
            and (self.custody is None or self.custody.ok)
            and self.signers_problem is None
        )

    @property
    def signers(self) -> dict[str, int]:
        """Each key whose signature holds on a capture verified here: how many it signed
        (most first)."""
        counts = Counter(
            c.key_fingerprint for c in self.captures if c.key_fingerprint and c.signature_holds
        )
        return dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))

    @property
    def signers_problem(self) -> str | None:
        """Without --trusted-key, captures signed by more than one key: a failure.

        Nothing then says which key is the archivist's: a capture re-signed by someone
        who dropped their public key into ``keys/`` would hide among the good ones.
        Naming the keys that may sign (--trusted-key, repeatable) settles it.
        """
        signers = self.signers
        if self.trusted_given or len(signers) < 2:
            return None
        shown = ", ".join(
            f"{fp} ({counted(n, 'capture')})" for fp, n in list(signers.items())[:SIGNERS_SHOWN]
        )
        more = len(signers) - SIGNERS_SHOWN
        return (
            f"signed by {len(signers)} different keys: {shown}"
            + (f" and {more} more" if more > 0 else "")
            + "; give the keys that may sign with --trusted-key (repeatable)"
        )

    @property
    def problems(self) -> list[Problem]:
        out = [p for c in self.captures for p in c.problems]
        out += [p for f in self.unsigned for p in f.problems]
        if self.custody is not None:
            out += [Problem(m) for m in self.custody.problems]
        if self.signers_problem is not None:
            out.append(Problem(self.signers_problem))
        return out + self.index_problems

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "nothing_to_verify": self.nothing,
            "captures": [c.to_json() for c in self.captures],
            "unsigned_files": [f.to_json() for f in self.unsigned],
            "in_progress": self.in_progress,
            "signers": [
                {
                    "key_fingerprint": fp,
                    "captures": n,
                    "trusted": fp in self.trusted if self.trusted_given else None,
                }
                for fp, n in self.signers.items()
            ],
            "signers_problem": self.signers_problem,
            "index": {
                "checks": [c.to_json() for c in self.index_checks],
                "problems": [p.to_json() for p in self.index_problems],
            },
            "custody": None
            if self.custody is None
            else {
                "log": self.custody.path,
                "exists": self.custody.exists,
                "ok": self.custody.ok,
                "events": len(self.custody.events),
                "head": self.custody.head,
                "problems": self.custody.problems,
                "notes": self.custody.notes,
            },
        }
