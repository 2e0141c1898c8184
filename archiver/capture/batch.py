"""Batches of URLs: input files, what an earlier run already captured, and the summary.

``archiver capture --input FILE`` takes a text file (one URL per line, blank lines and
``#`` comments skipped) or a CSV file with a ``url`` column; a CSV's ``note``,
``collection`` and ``operator`` columns apply to their row.  Running the same batch
again skips the URLs the archive already holds a complete capture of (unless
``--recapture``) and tries the partial and failed ones again, so an interrupted
batch resumes where it stopped.
"""

from __future__ import annotations

import csv
import io
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from archiver.core.errors import UsageProblem
from archiver.core.model import CaptureOptions
from archiver.core.text import counted
from archiver.core.urls import Credentials, split_credentials
from archiver.web.addresses import AddressPolicy, seed_refusals
from archiver.web.http import request_target

ROW_COLUMNS = ("note", "collection", "operator")


class BatchInputError(UsageProblem, ValueError):
    """The input file cannot be read as URLs (the message names the file and every line
    that is wrong; ``problems`` lists them as (line, message))."""

    def __init__(self, message: str, problems: list[tuple[int, str]] | None = None) -> None:
        super().__init__(message)
        self.problems = problems or []


@dataclass(frozen=True)
class Job:
    """One URL of a batch, and what its row says about it."""

    url: str
    line: int | None = None  # in the input file: where its record starts
    note: str | None = None
    collection: str | None = None
    operator: str | None = None
    # a user:password the URL was given with (taken out of ``url``), see archiver.core.urls
    credentials: Credentials | None = field(default=None, compare=False)


def read_jobs(path: Path) -> list[Job]:
    """The URLs of an input file: CSV with a ``url`` column, else one URL per line.

    Raises :class:`BatchInputError` naming every line that is wrong (see :func:`read_batch`).
    """
    jobs, problems = read_batch(path)
    if problems:
        raise BatchInputError(problem_report(path, problems), problems)
    return jobs


def problem_report(path: Path, problems: list[tuple[int, str]]) -> str:
    """``FILE: 2 lines are wrong:`` and one ``line N: why`` a line, in order."""
    lines = sorted(problems)
    head = f"{path}: {counted(len({n for n, _ in lines}), 'line')} wrong (nothing was captured):"
    return "\n".join([head, *(f"  line {n}: {message}" for n, message in lines)])


def read_batch(path: Path) -> tuple[list[Job], list[tuple[int, str]]]:
    """The jobs of an input file, and every (line, problem) found in it.

    Blank lines and lines starting with ``#`` are skipped in both forms.  A CSV file is
    read as CSV: a quoted field may hold commas and line breaks (a note over several
    lines is one field); a record's line is the line it starts on.  A row with more
    fields than the header, with no URL but other values, or that is no valid CSV (a
    quote left open) is a problem.
    """
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise BatchInputError(f"cannot read {path}: {exc}") from exc
    records = list(_csv_records(text))
    first = next((i for i, (_, fields, _) in enumerate(records) if _content(fields)), None)
    if first is None:
        return _plain_jobs(text), []  # nothing, or a CSV error before any record
    header = [h.strip().lower() for h in records[first][1] or []]
    if "url" not in header or any("://" in h for h in header):
        return _plain_jobs(text), []
    jobs: list[Job] = []
    problems: list[tuple[int, str]] = []
    for number, fields, error in records[first + 1 :]:
        if error is not None:
            problems.append((number, f"not valid CSV: {error}"))
            continue
        if not _content(fields):
            continue
        if len(fields) > len(header):
            wide = f"{len(fields)} fields, the header has {len(header)}"
            problems.append((number, wide + " (quote a value that holds a comma)"))
            continue
        values = {name: value.strip() for name, value in zip(header, fields, strict=False)}
        url = values.get("url", "")
        if not url:
            problems.append((number, "no URL in the url column"))
            continue
        get = {name: values.get(name) or None for name in ROW_COLUMNS}.get
        jobs.append(Job(url, number, get("note"), get("collection"), get("operator")))
    return jobs, problems


def _csv_records(text: str) -> Iterator[tuple[int, list[str], str | None]]:
    """(line the record starts on, its fields, a CSV error) for each record of ``text``."""
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    consumed = 0
    while True:
        try:
            fields, error = next(reader), None
        except StopIteration:
            return
        except csv.Error as exc:  # the reader goes on with the next line
            fields, error = [], str(exc)
            if "end of data" in error:
                error = "a quoted field is not closed (a quote mark missing?)"
        yield consumed + 1, fields, error
        consumed = reader.line_num


def _content(fields: list[str]) -> bool:
    """Whether a record holds anything: not blank, not a ``#`` comment."""
    return any(f.strip() for f in fields) and not fields[0].lstrip().startswith("#")


def _plain_jobs(text: str) -> list[Job]:
    return [
        Job(line.strip(), number)
        for number, line in enumerate(text.splitlines(), 1)
        if line.strip() and not line.lstrip().startswith("#")
    ]


def completed(archive_dir: Path) -> dict[tuple[str, str], str]:
    """(seed URL, collection) -> the id of a complete capture of it in the archive (not
    imported): a batch for another collection captures the URL again."""
    from archiver.index.store import Index

    files = Index(archive_dir).files("captures")
    if not files:
        return {}
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    out: dict[tuple[str, str], str] = {}
    for path in files:
        try:
            columns = ["seed_url", "collection", "capture_id", "status", "imported"]
            table = pq.read_table(path, columns=[*columns, "manifest_sha256"])
        except Exception:  # a damaged index file: those URLs are captured again
            continue
        done = table.filter(  # complete and signed: an unsigned capture is taken again
            pc.and_(
                pc.and_(pc.equal(table["status"], "complete"), pc.invert(table["imported"])),
                pc.is_valid(table["manifest_sha256"]),
            )
        )
        for row in done.to_pylist():
            if row["seed_url"]:
                out.setdefault((row["seed_url"], row["collection"]), row["capture_id"])
    return out


@dataclass
class Batch:
    """The captures a run will make: each job with its own options, and those skipped
    because the archive holds a complete capture of them already (url, capture id, why)."""

    jobs: list[Job]  # every job asked for and valid, in order (the same URL may be twice)
    todo: list[Job]
    options: dict[Job, CaptureOptions]
    skipped: list[tuple[Job, str, str]] = field(default_factory=list)


def check_jobs(
    requested: Sequence[Job | str],
    *,
    input_file: Path | None = None,
    problems: Sequence[tuple[int, str]] = (),
) -> list[Job]:
    """The jobs with their URLs checked, credentials taken out of them, and each row's
    collection name checked; every wrong line of ``input_file`` (with ``problems`` found
    reading it) is reported together, as one UsageProblem."""
    found = list(problems)
    checked = []
    for job in requested:
        if isinstance(job, str):  # a URL given as it is
            job = Job(job)
        try:
            url, credentials = split_credentials(job.url)
            if job.collection is not None:
                CaptureOptions(collection=job.collection)  # the row's collection name
        except ValueError as exc:  # InvalidURL too
            if job.line is None:
                raise UsageProblem(str(exc), hint="URL") from exc
            found.append((job.line, str(exc)))
            continue
        checked.append(replace(job, url=url, credentials=credentials))
    if found and input_file is not None:
        raise UsageProblem(problem_report(input_file, found), hint="--input")
    return checked


def refuse_private(jobs: Sequence[Job]) -> None:
    """A seed on the archivist's own network is a UsageProblem naming it (said before
    anything is written; ``--allow-private`` lets it be captured)."""
    hosts = {job: request_target(job.url)[1:3] for job in jobs}
    refused = seed_refusals(hosts.values(), AddressPolicy())
    for job in jobs:
        if hosts[job] in refused:
            where = f"--input line {job.line}" if job.line else "URL"
            raise UsageProblem(f"{job.url}: {refused[hosts[job]]}", hint=where)


def plan(
    archive_dir: Path, checked: Sequence[Job], options: CaptureOptions, *, recapture: bool = False
) -> Batch:
    """Each checked job (:func:`check_jobs`) with its options (its row's own note,
    collection or operator applied), leaving out those of a batch the archive holds a
    complete capture of (unless ``recapture``)."""
    per_job = {}
    for job in checked:  # a row's own note, collection or operator
        row = {k: v for k in ROW_COLUMNS if (v := getattr(job, k)) is not None}
        try:
            per_job[job] = replace(options, **row) if row else options
        except ValueError as exc:
            raise UsageProblem(str(exc), hint=f"--input line {job.line}") from exc
    resumable = not recapture and any(job.line is not None for job in checked)
    done_before = completed(archive_dir) if resumable else {}
    batch = Batch(list(checked), [], per_job)
    for job in checked:
        before = done_before.get((job.url, per_job[job].collection))
        if job.line is not None and before is not None:  # batches resume; URLs given
            # on the command line are captured again, as asked
            why = f"captured completely already ({before}); --recapture"
            batch.skipped.append((job, before, why))
        else:
            batch.todo.append(job)
    return batch


@dataclass
class BatchSummary:
    """How a batch went: every URL with its outcome and, if not complete, why."""

    outcomes: list[dict[str, Any]] = field(default_factory=list)

    def add(self, url: str, outcome: str, capture_id: str | None, reason: str | None) -> None:
        self.outcomes.append(
            {"url": url, "outcome": outcome, "capture_id": capture_id, "reason": reason}
        )

    def counts(self) -> dict[str, int]:
        names = ("complete", "partial", "failed", "skipped")
        return {n: sum(o["outcome"] == n for o in self.outcomes) for n in names}

    def to_json(self) -> dict[str, Any]:
        return {"batch": {"counts": self.counts(), "urls": self.outcomes}}


class HostGate:
    """One capture at a time per host, and ``delay`` seconds from the end of one to the
    start of the next."""

    def __init__(self, delay: float, stop: threading.Event) -> None:
        self.delay = delay
        self.stop = stop
        self._guard = threading.Lock()
        self._hosts: dict[str, threading.Lock] = defaultdict(threading.Lock)
        self._last: dict[str, float] = {}

    @contextmanager
    def entered(self, url: str) -> Iterator[None]:
        host = (urlsplit(url).hostname or "").lower()
        with self._guard:
            lock = self._hosts[host]
        with lock:
            wait_for = self._last.get(host, float("-inf")) + self.delay - time.monotonic()
            if wait_for > 0:
                self.stop.wait(wait_for)
            try:
                yield
            finally:
                self._last[host] = time.monotonic()


SIGNAL_POLL = 0.2  # seconds the main thread waits at most before handling signals


def run_concurrently(
    jobs: list[Job],
    capture: Callable[[Job], Any],
    *,
    workers: int,
    per_host_delay: float,
    interrupt: Callable[[], None],
) -> Iterator[tuple[Job, Any]]:
    """``capture(job)`` for every job, ``workers`` at a time; (job, result) as each ends.

    On Ctrl-C the jobs not started are dropped and ``interrupt()`` stops the running
    ones, which end as interrupted captures (and are yielded as such); then the
    KeyboardInterrupt goes on.
    """
    stop = threading.Event()
    gate = HostGate(per_host_delay, stop)

    def one(job: Job) -> Any:
        with gate.entered(job.url):
            if stop.is_set():
                return None
            return capture(job)

    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="capture")
    running: dict[Future[Any], Job] = {pool.submit(one, job): job for job in jobs}
    try:
        while running:
            # A timed wait: a signal the kernel hands to a worker thread is only acted on
            # when the main thread runs Python code again, so it must not block for long.
            done, _ = wait(running, timeout=SIGNAL_POLL, return_when=FIRST_COMPLETED)
            for future in done:
                job = running.pop(future)
                result = future.result()
                if result is not None:
                    yield job, result
    except KeyboardInterrupt:
        stop.set()
        for future in running:
            future.cancel()
        interrupt()
        for future, job in running.items():
            if not future.cancelled():
                result = future.result()
                if result is not None:
                    yield job, result
        raise
    except BaseException:  # the caller stopped reading (an exception of its own): stop too
        stop.set()
        for future in running:
            future.cancel()
        interrupt()
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
