"""The library's one entry point: an :class:`Archive`, opened on a directory.

Everything the command line does, a program does the same way, and leaves the same
trail::

    from archiver import Archive
    archive = Archive("archives", signer=my_signer)
    for job, capture in archive.capture([Job("https://example.org/")], options, signer=my_signer):
        print(capture.status)
    done = archive.verify()
    print(done.result.ok, done.logged.written)

Each action writes its own custody event (a capture's is written by the capture itself,
under its lock); a read-only copy is read as it is and nothing is logged, which
:class:`Logged` says.  Problems the caller must act on are
:class:`~archiver.core.errors.ArchiverError`; outcomes (a capture that failed, a
verification that found problems) are values.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from archiver.capture import batch
from archiver.capture.run import Capturer, Progress
from archiver.core.errors import Failure, UsageProblem
from archiver.core.layout import CAPTURE_ID
from archiver.core.model import Capture, CaptureOptions, Stamp, isoformat
from archiver.core.text import counted
from archiver.index import query as querying
from archiver.index.store import Index
from archiver.ops import adopt as adoption
from archiver.ops import cleanup as cleaning
from archiver.ops import extract as extraction
from archiver.ops import ingest
from archiver.ops import replay as replaying
from archiver.ops import report as reporting
from archiver.ops import verify as verification
from archiver.ops.wacz import check as wacz_check
from archiver.ops.wacz import export as wacz_export
from archiver.ops.wacz import load as wacz_load
from archiver.trust import custody, keys, wacz_signing
from archiver.trust import timestamp as stamping
from archiver.trust.manifest import (
    MANIFEST_SUFFIX,
    archive_of,
    capture_id_of,
    public_key_name,
    signature_path,
)

if TYPE_CHECKING:  # the certificates are read in archiver.trust (all cryptography is there)
    from cryptography import x509

T = TypeVar("T")

READERS = ("list", "show", "query", "extract")
"""Actions that read the index through :func:`querying.run` (Index.readable_files)."""
LOGGED = ("extract", "verify")
"""Reading actions that write a custody event on a writable archive."""


@dataclass
class Logged:
    """What became of an action's custody event: ``written``, or why not: ``notes`` for
    a copy that cannot be written (read as it is, nothing logged), ``warning`` for a log
    that failed to be written (never the action's failure)."""

    written: bool = False
    notes: list[str] = field(default_factory=list)
    warning: str | None = None


@dataclass
class Done(Generic[T]):
    """An action's outcome and what became of its custody event."""

    result: T
    logged: Logged


@dataclass
class HeadStamps:
    """The tokens over the custody log's last event (``seq``, ``digest``)."""

    seq: int
    digest: str
    stamps: list[Stamp]


class Archive:
    """An archive directory and everything done to it.

    ``signer`` signs the custody events of actions that sign nothing else (verify,
    extract, index upkeep, cleanup); a callable is asked the first time one is needed
    (loading a key costs a file read, and list, show and query never need one).  None:
    those events are logged unsigned.  ``operator`` is who acts (default: ARCHIVER_OPERATOR,
    else the login name).  ``on_log`` hears what became of the events an action writes
    besides the one it returns (a new key's, each time-stamp's): a warning when one
    could not be written.
    """

    def __init__(
        self,
        path: Path | str,
        *,
        signer: keys.Signer | Callable[[], keys.Signer | None] | None = None,
        operator: str | None = None,
        on_log: Callable[[Logged], None] | None = None,
    ) -> None:
        self.path = Path(path)
        self.on_log = on_log
        self._signer = signer
        self.operator = operator or custody.default_operator()
        self.index = Index(self.path)

    @property
    def signer(self) -> keys.Signer | None:
        if callable(self._signer) and not isinstance(self._signer, keys.Signer):
            self._signer = self._signer()
        return self._signer

    # the state of the copy ---------------------------------------------------
    def read_only(self) -> str | None:
        """Why this copy cannot be written (a write-blocked drive), or None."""
        return self.index.read_only()

    def read_only_notes(self, action: str) -> list[str]:
        """What reading a copy that cannot be written means for ``action``: it was read
        as it is, nothing logged, a repair left undone; [] when it can be written."""
        reason = self.read_only()
        if reason is None:
            return []
        logged = action in LOGGED  # list, show and query are never logged, on any copy
        notes = [
            f"{self.path} cannot be written ({reason}): read as it is (no lock file "
            "created, nothing repaired)"
            + (f"; this {action} was not logged to its custody log" if logged else "")
        ]
        if self.index.needs_repair():
            read = (
                "its rows were read as the repair would leave them; " if action in READERS else ""
            )
            notes.append(
                "its index needs a repair (an interrupted compaction or rebuild left files "
                f"behind) that was not done on this read-only copy: {read}"
                "`archiver cleanup --apply` on a writable copy does it"
            )
        return notes

    def require_writable(self, action: str) -> None:
        """Refuse ``action`` before anything is done when the copy cannot be written."""
        reason = self.read_only()
        if reason is not None:
            raise Failure(
                f"{self.path} cannot be written ({reason}): {action} needs a writable copy "
                "of the archive; nothing was done (list, show, query, extract, verify and "
                "custody read a read-only copy)"
            )

    def require_index(self) -> None:
        """Refuse to answer from an archive that has no index to read (rather than
        answer with an empty table)."""
        if self.index.files("captures") or self.index.needs_repair():
            return
        if ingest.warc_files(self.path):
            raise Failure(
                f"the index of {self.path} is empty, but it holds WARC files: "
                "run `archiver index rebuild`"
            )
        raise Failure(
            f"no archive in {self.path} (no index and no WARC files); capture something "
            "first, or name the archive with --archive-dir"
        )

    def require_dir(self) -> None:
        if not self.path.is_dir():
            raise UsageProblem(f"no archive at {self.path}")

    # the chain of custody -----------------------------------------------------
    def log(
        self,
        action: str,
        *,
        signer: keys.Signer | None = None,
        operator: str | None = None,
        captures: Sequence[str] = (),
        files: Sequence[custody.FileRef] = (),
        result: str = "ok",
        detail: str | None = None,
    ) -> Logged:
        """Append an event to the custody log, signed by ``signer`` (default: the
        archive's).  On a copy that cannot be written nothing is tried."""
        if not self.path.is_dir():
            return Logged()
        if notes := self.read_only_notes(action):
            return Logged(notes=notes)
        try:
            log = custody.CustodyLog(
                self.path, signer or self.signer, operator=operator or self.operator
            )
            log.append(action, captures=captures, files=files, result=result, detail=detail)
        except Exception as exc:  # a full disk, a damaged log: never the action's failure
            return Logged(warning=f"the custody log was not written: {exc}")
        return Logged(written=True)

    def _say(self, logged: Logged) -> Logged:
        if self.on_log is not None and (logged.notes or logged.warning):
            self.on_log(logged)
        return logged

    def _heard(self, action: str, **event: Any) -> Logged:
        return self._say(self.log(action, **event))

    def log_stamps(
        self,
        stamps: Iterable[Stamp],
        signer: keys.Signer | None,
        operator: str | None = None,
        *,
        head: str | None = None,
    ) -> list[Logged]:
        """One ``timestamp`` event per new token: over a capture's signature, or over
        the custody log's head (``head`` names that event)."""
        logged = []
        for stamp in stamps:
            if stamp.already:
                continue
            files = []
            if stamp.token:
                files.append(custody.FileRef.of(self.path / stamp.token, self.path))
            detail = f"token time {isoformat(stamp.time)}" if stamp.time else str(stamp.error)
            if stamp.ok and stamp.root_checked is False:  # verify reads this mark (signed)
                detail += f"; {stamping.UNCHECKED}: it ends at {stamp.chain_end}"
            logged.append(
                self._heard(
                    "timestamp",
                    signer=signer,
                    operator=operator,
                    captures=[] if head else [stamp.capture_id],
                    files=files,
                    result="ok" if stamp.ok else "failed",
                    detail=(f"{head}: " if head else "")
                    + f"{stamp.authority} ({stamp.url}): {detail}",
                )
            )
        return logged

    def custody(
        self, capture_id: str | None = None
    ) -> tuple[custody.CustodyReport, list[custody.Event]]:
        """The custody log as checked, and its events (those concerning ``capture_id``)."""
        self.require_dir()
        check_capture_id(capture_id)
        log = custody.check(self.path)
        return log, custody.history(log, capture_id)

    # keys ---------------------------------------------------------------------
    def capture_signer(
        self,
        key_path: Path | None,
        key_store: Path | None,
        passphrase: Callable[[Path], str | None],
    ) -> tuple[keys.Signer, keys.KeyInfo | None]:
        """The key captures are signed with, loaded before anything is fetched, and the
        key created for it when the key store had none (and none was named): that one is
        logged as a ``key generation`` event.  A key that cannot be used is a Failure:
        nothing is captured unsigned."""
        store = key_store or keys.default_store()
        given = os.environ.get("ARCHIVER_KEY_PASSPHRASE") or None
        try:
            created = None
            if key_path is None:
                created = keys.ensure_key(store, given)
                if created is not None:
                    self.path.mkdir(parents=True, exist_ok=True)
                    key = keys.Signer.load(created.path, given)
                    self._say(self.record_key(created, key, first=True))
            info = keys.find_key(store, key_path)
            return keys.Signer.load(info.path, passphrase(info.path)), created
        except (keys.KeyProblem, OSError) as exc:
            raise Failure(str(exc)) from exc

    def record_key(self, info: keys.KeyInfo, signer: keys.Signer, *, first: bool = False) -> Logged:
        """Log a new signing key (if there is an archive): who made which key, when."""
        if first:
            ref = custody.FileRef.of(info.public_path, self.path)
            detail = f"signing key {info.fingerprint} created for the first capture"
        else:
            ref = custody.FileRef(str(info.public_path), custody.file_sha256(info.public_path))
            detail = f"signing key {info.fingerprint} (private key {info.path}, never copied)"
        return self.log("key generation", signer=signer, files=[ref], detail=detail)

    # capture --------------------------------------------------------------------
    def plan(
        self,
        requested: Sequence[batch.Job | str],
        options: CaptureOptions,
        *,
        input_file: Path | None = None,
        problems: Sequence[tuple[int, str]] = (),
        recapture: bool = False,
        checked: bool = False,
    ) -> batch.Batch:
        """The captures ``requested`` will make, each checked before anything is fetched:
        its URL, its row's options, a seed on the archivist's own network (unless
        ``options.allow_private``); jobs of a batch this archive holds a complete capture
        of are left out (unless ``recapture``).  ``checked``: the jobs went through
        :func:`~archiver.capture.batch.check_jobs` and ``refuse_private`` already.  They
        are stored in this archive, whatever ``options.archive_dir`` says."""
        if options.archive_dir != self.path:
            options = replace(options, archive_dir=self.path)
        jobs = [batch.Job(j) if isinstance(j, str) else j for j in requested]
        if not checked:
            jobs = batch.check_jobs(jobs, input_file=input_file, problems=problems)
            if not options.allow_private:
                batch.refuse_private(jobs)
        if options.browser:  # no browser: said before anything is fetched (exit 2)
            from archiver.web.browser import find_browser

            find_browser(options.browser_path)
        return batch.plan(self.path, jobs, options, recapture=recapture)

    def capture(
        self,
        plan: batch.Batch,
        *,
        signer: keys.Signer | None,
        timestamper: stamping.Timestamper | None = None,
        progress: Progress | None = None,
        workers: int = 1,
        per_host_delay: float = 0.0,
    ) -> Iterator[tuple[batch.Job, Capture]]:
        """Capture every job of ``plan`` (made by this archive's :meth:`plan`), ``workers``
        at once (one at a time per host), each signed by ``signer``.

        The plan, the signer and the archive are checked at once (a copy that cannot be
        written is refused before anything is fetched); the captures then run as the
        iterator returned is read (``for job, capture in archive.capture(...)``), each
        yielded as it ends.  Each capture logs its own custody event; its time-stamps
        are logged here.  Ctrl-C ends the running captures as interrupted, keeping their
        whole records, starts no other, and once they are yielded the KeyboardInterrupt
        goes on to the caller, whatever ``workers``."""
        if signer is None:
            raise UsageProblem(
                "a capture needs a signing key: an unsigned capture vouches for nothing, and "
                "verify fails it"
            )
        if workers < 1:
            raise UsageProblem(f"workers must be at least 1, not {workers}")
        elsewhere = {
            str(o.archive_dir) for o in plan.options.values() if o.archive_dir != self.path
        }
        if elsewhere:
            raise UsageProblem(
                f"the plan captures into {', '.join(sorted(elsewhere))}, not {self.path}: "
                "make it with this archive's plan()"
            )
        self.require_writable("a capture")
        return self._captures(plan, signer, timestamper, progress, workers, per_host_delay)

    def _captures(
        self,
        plan: batch.Batch,
        signer: keys.Signer,
        timestamper: stamping.Timestamper | None,
        progress: Progress | None,
        workers: int,
        per_host_delay: float,
    ) -> Iterator[tuple[batch.Job, Capture]]:
        capturers: list[Capturer] = []
        stopping = threading.Event()
        lock = threading.Lock()

        def one(job: batch.Job) -> Capture:
            options = plan.options[job]
            capturer = Capturer(options, progress=progress, signer=signer, timestamper=timestamper)
            with lock:
                capturers.append(capturer)
                if stopping.is_set():  # stopped between being started and being listed
                    capturer.interrupt()
            result = capturer.capture(job.url, job.credentials)
            self.log_stamps(result.timestamps, signer, options.operator)
            return result

        def interrupt_all() -> None:
            with lock:
                stopping.set()
                for capturer in capturers:
                    capturer.interrupt()

        if workers > 1:
            yield from batch.run_concurrently(
                plan.todo,
                one,
                workers=workers,
                per_host_delay=per_host_delay,
                interrupt=interrupt_all,
            )
            return
        gate = batch.HostGate(per_host_delay, threading.Event())
        for job in plan.todo:
            with gate.entered(job.url):
                result = one(job)
            yield job, result
            if result.interrupted:  # Ctrl-C: the remaining URLs are not started
                raise KeyboardInterrupt

    # reading ----------------------------------------------------------------------
    def query(self, sql: str, params: Sequence[Any] | None = None) -> querying.Result:
        """SQL over the index's views ``captures`` and ``records`` (DuckDB)."""
        self.require_index()
        return querying.run(self.path, sql, params)

    def list_captures(self, limit: int = 50, collection: str | None = None) -> querying.Result:
        """Recent captures, newest first.  A capture of ours with no signed manifest (its
        signing failed, or it was made without a key) is never shown as plainly
        complete: verify fails it."""
        where = "where collection = ?" if collection else ""
        sql = (
            "select capture_id, started_at, case when manifest_sha256 is null and not "
            "imported then status || ', unsigned' else status end as status, seed_url, "
            "video_count as videos, "
            f"record_count as records, total_bytes from captures {where} "
            "order by started_at desc nulls last, capture_id desc limit ?"
        )
        params: list[Any] = [collection] if collection else []
        return self.query(sql, [*params, limit])

    def show(self, capture_id: str) -> tuple[dict[str, Any], querying.Result, querying.Result]:
        """One capture's row, the captures table it came from, and its records in file order."""
        captures = self.query("select * from captures where capture_id = ?", [capture_id])
        if not captures.rows:
            raise UsageProblem(f"no capture {capture_id!r} in the index of {self.path}")
        records = self.query(
            "select record_id, warc_type, role, http_status, content_type, url, "
            "payload_length, payload_sha256, truncated, problem, warc_filename, warc_offset, "
            "warc_length, record_sha256, discovered_from, discovered_via, fetched_at "
            "from records where capture_id = ? order by warc_filename, warc_offset",
            [capture_id],
        )
        return captures.rows[0], captures, records

    def replay(
        self, capture_ids: Sequence[str] = (), *, host: str = "127.0.0.1", port: int = 8080
    ) -> replaying.ReplayServer:
        """pywb serving the captures named (default: all), each in its own collection, not
        yet started: ``with archive.replay() as server:``; captures whose files fail the
        checks are left out (``server.plan.notes``).  Not logged: like show, it only reads
        (and does not verify)."""
        replaying.require_pywb()
        self.require_index()
        return replaying.ReplayServer(replaying.plan(self.path, capture_ids), host=host, port=port)

    def extract(self, ident: str, output: Path | str, **how: Any) -> Done[extraction.ExtractResult]:
        """Write a record's payload to ``output``, checked on the way out (see
        :func:`archiver.ops.extract.extract` for ``how``); logged as ``extract``."""
        result = extraction.extract(self.path, ident, Path(output), **how)
        logged = self.log(
            "extract",
            captures=[result.capture_id],
            files=[custody.FileRef.of(result.path, self.path, result.sha256)],
            detail=f"{result.url}, record {result.record_id}",
        )
        return Done(result, logged)

    def report(self, capture_id: str, outputs: Any, **how: Any) -> Done[reporting.ReportResult]:
        """A capture's report (FILE.html, FILE.pdf), verified now (:mod:`archiver.ops.report`);
        on a copy that cannot be written, the report says its making is not logged."""
        how.setdefault("not_logged", self.read_only())
        result = reporting.make(self.path, capture_id, outputs, made_by=self.operator, **how)
        return Done(result, self.log("report", **result.event(self.path)))

    def verify(
        self,
        paths: Sequence[str | Path] | str | Path = (),
        trusted: Sequence[str] = (),
        progress: ingest.ScanProgress | None = None,
        *,
        deep: bool = False,
        tsa_roots: list[x509.Certificate] | None = None,
        custody_heads: Sequence[str] = (),
    ) -> Done[verification.Report]:
        """Check that nothing captured changed since it was signed; logged as ``verify``
        in the archive verified (which ``paths`` may name).  ``custody_heads``: SHA-256
        hashes of custody events kept elsewhere (16 to 64 hex digits) that must still be
        in the log."""
        if isinstance(paths, (str, os.PathLike)):
            paths = [paths]
        for value in custody_heads:
            if not re.fullmatch(r"[0-9a-fA-F]{16,64}", value):
                raise UsageProblem(
                    f"{value!r} is not the SHA-256 of a custody event (16 to 64 hex digits)",
                    hint="--custody-head",
                )
        report = verification.verify(
            self.path,
            tuple(str(p) for p in paths),
            tuple(trusted),
            progress,
            deep=deep,
            tsa_roots=tsa_roots,
            custody_heads=tuple(custody_heads),
        )
        where = self if report.archive in (None, self.path) else self.elsewhere(report.archive)
        problems = len(report.problems)
        logged = where.log(
            "verify",
            captures=[c.capture_id for c in report.captures],
            files=[custody.FileRef(f.path, None) for f in report.unsigned],
            result="ok" if report.ok else "failed",
            detail=f"{counted(len(report.captures), 'capture')}, "
            f"{counted(len(report.unsigned), 'unsigned file')}"
            + (f", {counted(problems, 'problem')}" if problems else ", everything holds"),
        )
        return Done(report, logged)  # a read-only copy: the notes are in ``logged``

    # leaving the tool, and coming in -------------------------------------------------
    def export(
        self,
        capture_ids: Sequence[str],
        output: Path | str,
        signer: keys.Signer,
        key_info: keys.KeyInfo,
        passphrase: str | None,
        **how: Any,
    ) -> Done[wacz_export.Exported]:
        """The captures as one WACZ, signed with the P-384 key bound to ``signer``'s
        (made on first use); ``how``: ``overwrite``, ``progress``.  Logged as ``export``."""
        self.require_index()
        try:
            key = wacz_signing.wacz_key(key_info, signer, passphrase)
            if not self.read_only():  # the binding kept in the archive too
                signer.publish(self.path / public_key_name(signer.fingerprint))
                names = wacz_signing.publish_binding(self.path, key)
                if key.created:
                    ref = custody.FileRef.of(self.path / names[0], self.path)
                    made = f"P-384 key {key.spki_sha256} made to sign WACZ files, bound to"
                    made += f" {signer.fingerprint}"
                    self._heard("key generation", signer=signer, files=[ref], detail=made)
        except (keys.KeyProblem, OSError) as exc:
            raise Failure(str(exc)) from exc
        pem = keys.public_pem(signer.key.public_key())
        result = wacz_export.export(self.path, capture_ids, Path(output), key, pem, **how)
        detail = f"{result.path}: WACZ of {counted(len(result.captures), 'capture')}, "
        detail += f"{result.size} bytes, signed by the P-384 key {key.spki_sha256}"
        ref = custody.FileRef(str(result.path.resolve()), result.sha256)
        return Done(
            result,
            self.log("export", signer=signer, captures=result.captures, files=[ref], detail=detail),
        )

    def import_wacz(
        self,
        paths: Iterable[Path | str],
        collection: str = "default",
        progress: ingest.ScanProgress | None = None,
    ) -> Done[list[wacz_load.WaczImport]]:
        """Check WACZ files from any tool and import their WARC files (as ``import_``);
        each one's signature is reported, never trusted.  Logged as ``index import``."""
        try:
            CaptureOptions(collection=collection)
        except ValueError as exc:
            raise UsageProblem(str(exc), hint="--collection") from exc
        self.require_writable("index import")
        results = [wacz_load.import_wacz(self.path, Path(p), collection, progress) for p in paths]
        stored = list(wacz_load.iter_imported(results))
        if not stored:
            return Done(results, Logged())
        logged = self.log(
            "index import",
            captures=[item.capture_id for item in stored if item.capture_id],
            files=[custody.FileRef.of(i.stored_as, self.path) for i in stored if i.stored_as],
            result="ok" if all(r.ok for r in results) else "failed",
            detail="; ".join(f"{r.source}: {r.signature_said()}" for r in results)[:4000],
        )  # fmt: skip
        return Done(results, logged)

    @staticmethod
    def verify_wacz(
        path: Path | str,
        trusted: Sequence[str] = (),
        tsa_roots: list[x509.Certificate] | None = None,
    ) -> wacz_check.WaczReport:
        """Check a WACZ from the file alone (:mod:`archiver.ops.wacz.check`); ``trusted``:
        key files or fingerprints that may sign its captures."""
        keys_given = set(verification.trusted_keys(trusted)) if trusted else None
        return wacz_check.check(Path(path), trusted=keys_given, tsa_roots=tsa_roots)

    def elsewhere(self, path: Path) -> Archive:
        """The same signer and operator, on another archive directory."""
        return Archive(path, signer=self._signer, operator=self.operator, on_log=self.on_log)

    # upkeep -----------------------------------------------------------------------
    def cleanup(self, *, apply: bool) -> Done[cleaning.CleanupReport]:
        """List (or with ``apply`` put aside) what crashed captures left behind."""
        self.require_dir()
        if apply:  # the dry run lists what a read-only copy holds
            self.require_writable("cleanup --apply")
        try:
            report = cleaning.cleanup(self.path, apply=apply)
        except cleaning.CaptureRunning as exc:
            raise Failure(str(exc)) from exc
        logged = Logged()
        if report.applied and report.leftovers:
            moved = [item.to_json(self.path) for item in report.leftovers]
            logged = self.log(
                "cleanup",
                files=[custody.FileRef(str(m["path"]), None) for m in moved],
                detail="; ".join(f"{m['action']}: {m['path']}" for m in moved)[:4000],
            )
        return Done(report, logged)

    def rebuild(
        self, progress: ingest.ScanProgress | None = None
    ) -> Done[tuple[int, list[ingest.FileReport]]]:
        """Regenerate the whole index from the WARC files alone."""
        if not self.path.is_dir():
            raise UsageProblem(f"no archive directory {self.path}")
        self.require_writable("index rebuild")
        count, reports = ingest.rebuild(self.path, progress)
        problems = sum(len(r.problems) for r in reports)
        logged = self.log(
            "index rebuild",
            result="ok" if not problems else "failed",
            detail=f"{counted(count, 'capture')} from {counted(len(reports), 'WARC file')}, "
            f"{counted(problems, 'problem')}",
        )
        return Done((count, reports), logged)

    def import_(
        self,
        paths: Iterable[Path | str],
        collection: str = "default",
        progress: ingest.ScanProgress | None = None,
    ) -> Done[list[ingest.ImportResult | tuple[Path, str]]]:
        """Copy WARC files made by other tools into the archive, check and index them;
        a file that could not be imported is (path, reason)."""
        try:
            CaptureOptions(collection=collection)
        except ValueError as exc:
            raise UsageProblem(str(exc), hint="--collection") from exc
        self.require_writable("index import")
        results = list(
            ingest.import_files(self.path, [Path(p) for p in paths], collection, progress)
        )
        imported = [
            item
            for item in results
            if not isinstance(item, tuple) and not item.already and item.stored_as is not None
        ]
        logged = Logged()
        if imported:
            logged = self.log(
                "index import",
                captures=[item.capture_id for item in imported if item.capture_id],
                files=[
                    custody.FileRef.of(item.stored_as, self.path)
                    for item in imported
                    if item.stored_as is not None
                ],
                result="ok" if all(item.report.ok for item in imported) else "failed",
                detail=", ".join(str(item.source) for item in imported)[:4000],
            )
        return Done(results, logged)

    def compact(self) -> Done[dict[str, int]]:
        """Merge the per-capture index files into one file per table."""
        self.require_dir()
        self.require_writable("index compact")
        merged = self.index.compact()
        detail = ", ".join(f"{table}: {counted(n, 'file')} merged" for table, n in merged.items())
        return Done(merged, self.log("index compact", detail=detail))

    # time-stamps --------------------------------------------------------------------
    def signed_manifests(self, named: Sequence[str] = ()) -> list[Path]:
        """The signed manifests of the captures named (ids or manifest files), or of all."""
        root = self.path / "warc"
        if not named:
            found = sorted(root.rglob(f"*{MANIFEST_SUFFIX}")) if root.is_dir() else []
            found = [m for m in found if signature_path(m).is_file()]
            if not found:
                raise UsageProblem(f"no signed capture in {self.path}")
            return found
        out = []
        for text in named:
            path = Path(text)
            if path.name.endswith(MANIFEST_SUFFIX) and path.is_file():
                matches = [path]
            elif CAPTURE_ID.match(text) and root.is_dir():
                matches = sorted(root.rglob(f"{text}{MANIFEST_SUFFIX}"))
            else:
                matches = []
            if not matches:
                raise UsageProblem(f"no capture {text} in {self.path}", hint="CAPTURE")
            for manifest in matches:
                if not signature_path(manifest).is_file():
                    raise UsageProblem(
                        f"{manifest} is not signed; nothing to time-stamp", hint="CAPTURE"
                    )
                out.append(manifest)
        return out

    def timestamp(
        self, manifest: Path, stamper: stamping.Timestamper, *, again: bool = False
    ) -> list[Stamp]:
        """Tokens over one capture's signature, each logged.  A signature that does not
        hold gets none (a token would vouch for it): a Failure."""
        where = self.elsewhere(archive_of(manifest))
        where.require_writable("timestamp")  # its tokens are kept in the archive
        problem = verification.signature_problem(manifest)
        if problem is not None:
            raise Failure(
                f"capture {capture_id_of(manifest)}: not time-stamped, its signature does "
                f"not hold ({problem}); run `archiver verify`"
            )
        stamps = stamper.stamp(manifest, again=again)
        where.log_stamps(stamps, self.signer)
        return stamps

    def timestamp_custody(
        self, stamper: stamping.Timestamper, *, again: bool = False
    ) -> HeadStamps:
        """Tokens over the custody log's last event, each logged.  A log whose chain is
        broken gets none: a Failure."""
        self.require_dir()
        self.require_writable("timestamp")
        log = custody.check(self.path)
        head = custody.head_entry(log)
        if head is None or head.event is None:
            raise UsageProblem(f"no custody log in {self.path} to time-stamp")
        seq, digest = head.event.seq, custody.entry_hash(head)
        if not log.ok:
            raise Failure(
                f"custody log: not time-stamped, its chain is broken ({log.problems[0]}); "
                "run `archiver custody`"
            )
        stamps = stamper.stamp_head(self.path, head.raw, seq, again=again)
        name = f"custody log head, event {seq} (sha256 {digest})"
        self.log_stamps(stamps, self.signer, head=name)
        return HeadStamps(seq, digest, stamps)

    # adoption --------------------------------------------------------------------------
    def adopt(self) -> adoption.Adopted:
        """One signed ``adopt`` event recording every signed capture no signed event
        records (an archive older than its custody log), each checked first: its
        signature holds, its files match its manifest."""
        self.require_dir()
        self.require_writable("custody --adopt")
        signer = self.signer
        if signer is None:
            raise Failure(
                "adopting captures needs your signing key (none usable in the key store; an "
                "encrypted key needs ARCHIVER_KEY_PASSPHRASE): an unsigned event vouches "
                "for nothing"
            )
        try:
            with cleaning.capture_lock(self.path, exclusive=True, blocking=False) as alone:
                if not alone:
                    raise Failure(f"a capture is running in {self.path}; try later")
                adopted = adoption.adoptable(self.path, signer)
                if adopted.capture_ids:
                    adopted.event = custody.CustodyLog(
                        self.path, signer, operator=self.operator
                    ).append(
                        "adopt",
                        captures=adopted.capture_ids,
                        files=adopted.files,
                        detail=f"{counted(len(adopted.capture_ids), 'capture')} found in the "
                        "archive with no capture event (written before it had a custody "
                        "log), recorded as they are now; what happened to them before is "
                        "not logged",
                    )
                    adopted.digest = custody.entry_hash(custody.Entry(0, adopted.event.line()))
        except OSError as exc:
            raise Failure(f"the custody log was not written: {exc}") from exc
        return adopted


def check_capture_id(capture_id: str | None) -> None:
    """A UsageProblem unless ``capture_id`` is None or has the form of a capture id."""
    if capture_id is not None and not CAPTURE_ID.match(capture_id):
        raise UsageProblem(f"{capture_id!r} is not a capture id", hint="CAPTURE_ID")
