"""The ``archiver`` command: a thin layer over the library.

It parses options, calls the library, and turns the library's outcomes into
messages and exit codes: 0 success, 1 a capture (or later a verification)
failed, 2 a usage error.  No traceback reaches the user unless ``--debug``.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import click
from cryptography import x509

from archiver import __version__
from archiver.capture import batch
from archiver.capture.run import Capturer, Progress
from archiver.cli import config as configuration
from archiver.core.atomic import atomic_path, output_problem
from archiver.core.layout import CAPTURE_ID
from archiver.core.model import (
    DEFAULT_CONCURRENCY,
    DEFAULT_MAX_CAPTURE_SIZE,
    DEFAULT_MAX_CAPTURE_TIME,
    DEFAULT_MAX_REDIRECTS,
    DEFAULT_MAX_REQUESTS,
    DEFAULT_MIN_RATE,
    DEFAULT_MIN_RATE_WINDOW,
    DEFAULT_TIMEOUT,
    DEFAULT_USER_AGENT,
    DEFAULT_WARC_MAX_SIZE,
    Capture,
    CaptureOptions,
    CaptureStatus,
    Stamp,
    isoformat,
)
from archiver.core.text import counted, printable
from archiver.core.urls import split_credentials
from archiver.index import query
from archiver.index.store import Index
from archiver.ops import extract as extraction
from archiver.ops import ingest
from archiver.ops import verify as verification
from archiver.trust import custody, sign, timestamp
from archiver.trust.manifest import (
    MANIFEST_SUFFIX,
    archive_of,
    capture_id_of,
    signature_path,
)
from archiver.web.addresses import AddressPolicy, seed_refusals
from archiver.web.http import REDACTED, request_target

F = TypeVar("F", bound=Callable[..., Any])

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143  # 128 + SIGTERM, as shells report it


def archive_dir_option(func: Any) -> Any:
    """``--archive-dir``, shared by every command that reads or writes an archive."""
    return click.option(
        "--archive-dir",
        type=click.Path(file_okay=False, path_type=Path),
        envvar="ARCHIVER_ARCHIVE_DIR",
        default=Path("archives"),
        show_default=True,
        help="Archive directory (also ARCHIVER_ARCHIVE_DIR).",
    )(func)


class Size(click.ParamType):  # type: ignore[type-arg]
    """A byte count: 1000, 10K, 5M, 2G (powers of 1024)."""

    name = "bytes"
    _units: ClassVar[dict[str, int]] = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        text = str(value).strip().upper().removesuffix("B").removesuffix("I")
        unit = text[-1:] if text[-1:] in self._units else ""
        number = text[: len(text) - len(unit)]
        try:
            result = int(float(number) * self._units[unit])
        except (ValueError, OverflowError):
            self.fail(f"{value!r} is not a size (examples: 500000, 10M, 2G)", param, ctx)
        if result < 0:
            self.fail("a size cannot be negative", param, ctx)
        return result


class Seconds(click.ParamType):  # type: ignore[type-arg]
    """A positive, finite number of seconds (at most a week)."""

    name = "seconds"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        try:
            seconds = float(value)
        except (ValueError, TypeError):
            self.fail(f"{value!r} is not a number of seconds", param, ctx)
        if not 0 < seconds <= 7 * 86400:  # also false for nan
            self.fail(f"{value!r} must be more than 0 and at most 604800 seconds", param, ctx)
        return seconds


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="archiver")
@click.option("--debug", is_flag=True, help="Show tracebacks of unexpected errors.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """Preserve online evidence, videos included, in verifiable WARC 1.1 archives.

    \b
    Example:
      archiver capture https://example.org/news/article
    """
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug
    try:
        ctx.default_map = configuration.load()
    except configuration.ConfigError as exc:
        raise click.UsageError(str(exc)) from exc


# signing keys ----------------------------------------------------------------
def key_option(func: Any) -> Any:
    return click.option(
        "--key",
        "key_path",
        type=click.Path(dir_okay=False, path_type=Path),
        envvar="ARCHIVER_KEY",
        help="Private key file (also ARCHIVER_KEY). Default: the key store's default key.",
    )(func)


def key_store_option(func: Any) -> Any:
    return click.option(
        "--key-store",
        type=click.Path(file_okay=False, path_type=Path),
        envvar="ARCHIVER_KEY_STORE",
        default=None,
        help="Key store directory (default ~/.config/archiver/keys).",
    )(func)


def key_failure(exc: Exception) -> None:
    click.echo(f"error: {exc}", err=True)
    sys.exit(EXIT_FAILED)


def passphrase_for(path: Path) -> str | None:
    """ARCHIVER_KEY_PASSPHRASE, else a prompt (never echoed) if the key is encrypted and
    someone is at the terminal; None otherwise (loading an encrypted key then says why)."""
    passphrase = os.environ.get("ARCHIVER_KEY_PASSPHRASE") or None
    if passphrase is None and sign.is_encrypted(path) and sys.stdin.isatty():
        passphrase = click.prompt(f"Passphrase for {path}", hide_input=True, err=True)
    return passphrase


def capture_signer(
    key_path: Path | None, key_store: Path | None, archive_dir: Path | None = None
) -> sign.Signer:
    """The key captures are signed with, loaded before anything is fetched.

    On a machine with no key (and none named), one is created, and the user told.
    A key that cannot be used stops everything: exit 1, nothing captured unsigned.
    """
    store = key_store or sign.default_store()
    try:
        if key_path is None:
            created = sign.ensure_key(store, os.environ.get("ARCHIVER_KEY_PASSPHRASE") or None)
            if created is not None:
                if archive_dir is not None:
                    archive_dir.mkdir(parents=True, exist_ok=True)
                    record_custody(
                        archive_dir,
                        "key generation",
                        sign.Signer.load(created.path, os.environ.get("ARCHIVER_KEY_PASSPHRASE")),
                        files=[custody.FileRef.of(created.public_path, archive_dir)],
                        detail=f"signing key {created.fingerprint} created for the first capture",
                    )
                click.echo(
                    f"created signing key {created.fingerprint} in {created.path} (none "
                    "existed); every capture is signed with it. Give its public key "
                    "(`archiver keys export`) to whoever will verify your captures.",
                    err=True,
                )
        info = sign.find_key(store, key_path)
        return sign.Signer.load(info.path, passphrase_for(info.path))
    except (sign.KeyProblem, OSError) as exc:
        key_failure(exc)
        raise  # unreachable: key_failure exits


# the chain of custody ---------------------------------------------------------
def default_operator() -> str | None:
    """Who acts, for the custody log: ARCHIVER_OPERATOR, else the login name."""
    return custody.default_operator()


def custody_signer(key_store: Path | None = None) -> sign.Signer | None:
    """The key that signs custody events of commands that sign nothing else: the key
    store's default key, if it can be used without asking (unencrypted, or with
    ARCHIVER_KEY_PASSPHRASE); None otherwise, and the event is logged unsigned."""
    named = os.environ.get("ARCHIVER_KEY_STORE")
    store = key_store or (Path(named) if named else sign.default_store())
    key_file = os.environ.get("ARCHIVER_KEY")
    try:
        info = sign.find_key(store, Path(key_file) if key_file else None)
        passphrase = os.environ.get("ARCHIVER_KEY_PASSPHRASE") or None
        if info.encrypted and passphrase is None:
            return None
        return sign.Signer.load(info.path, passphrase)
    except (sign.KeyProblem, OSError):
        return None


def record_custody(
    archive_dir: Path,
    action: str,
    signer: sign.Signer | None = None,
    *,
    operator: str | None = None,
    captures: list[str] | tuple[str, ...] = (),
    files: list[custody.FileRef] | tuple[custody.FileRef, ...] = (),
    result: str = "ok",
    detail: str | None = None,
) -> bool:
    """Append an event to the archive's custody log; whether it was.  On a copy that
    cannot be written (a write-blocked drive being verified) nothing is tried and a
    note says so; a log that fails to be written is a warning: never the action's failure."""
    if not archive_dir.is_dir():
        return False
    if notes := read_only_notes(archive_dir, action):
        for note in notes:
            click.echo(f"note: {note}", err=True)
        return False
    log = custody.CustodyLog(archive_dir, signer, operator=operator or default_operator())
    try:
        log.append(action, captures=captures, files=files, result=result, detail=detail)
    except Exception as exc:  # a full disk, a read-only copy, a damaged log: never the action's
        click.echo(f"warning: the custody log was not written: {exc}", err=True)
        return False
    return True


def read_only_notes(archive_dir: Path, action: str) -> list[str]:
    """What a command reading a copy that cannot be written says (stderr, and ``notes``
    in JSON): it was read as it is, nothing logged, and a repair left undone; [] when
    the archive can be written."""
    index = Index(archive_dir)
    reason = index.read_only()
    if reason is None:
        return []
    logged = action in LOGGED  # list, show and query are never logged, on any copy
    notes = [
        f"{archive_dir} cannot be written ({reason}): read as it is (no lock file "
        "created, nothing repaired)"
        + (f"; this {action} was not logged to its custody log" if logged else "")
    ]
    if index.needs_repair():
        read = "its rows were read as the repair would leave them; " if action in READERS else ""
        notes.append(
            "its index needs a repair (an interrupted compaction or rebuild left files "
            f"behind) that was not done on this read-only copy: {read}"
            "`archiver cleanup --apply` on a writable copy does it"
        )
    return notes


READERS = ("list", "show", "query", "extract")
"""Commands that read the index through :func:`query.run` (Index.readable_files)."""
LOGGED = ("extract", "verify")
"""Commands that write a custody event on a writable archive."""


def record_stamps(
    archive_dir: Path,
    stamps: list[Stamp],
    signer: sign.Signer | None,
    operator: str | None,
    *,
    head: str | None = None,
) -> None:
    """One ``timestamp`` custody event per new token: over a capture's signature, or over
    the custody log's head (``head`` names that event)."""
    for stamp in stamps:
        if stamp.already:
            continue
        files = []
        if stamp.token:
            files.append(custody.FileRef.of(archive_dir / stamp.token, archive_dir))
        detail = f"token time {isoformat(stamp.time)}" if stamp.time else str(stamp.error)
        if stamp.ok and stamp.root_checked is False:  # verify reads this mark (signed)
            detail += f"; {timestamp.UNCHECKED}: it ends at {stamp.chain_end}"
        record_custody(
            archive_dir,
            "timestamp",
            signer,
            operator=operator,
            captures=[] if head else [stamp.capture_id],
            files=files,
            result="ok" if stamp.ok else "failed",
            detail=(f"{head}: " if head else "") + f"{stamp.authority} ({stamp.url}): {detail}",
        )


# trusted timestamps -------------------------------------------------------------
def tsa_options(func: Any) -> Any:
    func = click.option(
        "--tsa-timeout",
        type=Seconds(),
        default=timestamp.DEFAULT_TSA_TIMEOUT,
        show_default=True,
        help="Seconds to wait for a time-stamping authority.",
    )(func)
    func = click.option(
        "--tsa-ca",
        multiple=True,
        type=click.Path(dir_okay=False, path_type=Path),
        help="Root certificate(s) of the authorities, PEM (repeatable); without it, the "
        "machine's trusted roots, and a token whose chain reaches none of them is kept "
        "marked as not checked against a trusted root (verify --tsa-ca judges it).",
    )(func)
    return click.option(
        "--tsa",
        multiple=True,
        metavar="URL",
        help="An RFC 3161 time-stamping authority (repeatable; also `tsa` in the config "
        "file's [timestamp] table): each capture's signature gets a token from each.",
    )(func)


def make_timestamper(
    archive_dir: Path,
    tsa: tuple[str, ...],
    tsa_ca: tuple[Path, ...],
    tsa_timeout: float,
    *,
    mark_signed: bool = True,
) -> timestamp.Timestamper | None:
    """``mark_signed``: the custody events of the stamps will be signed.  A token whose
    chain reaches no trusted root is kept unchecked only then: verify believes the mark
    of a signed event only, and would fail such a token."""
    if not tsa:
        return None
    try:
        authorities = timestamp.authorities(list(tsa))
        roots = [c for path in tsa_ca for c in timestamp.read_certificates(Path(path))]
    except timestamp.TimestampUsage as exc:
        raise click.BadParameter(str(exc), param_hint="--tsa/--tsa-ca") from exc
    # the roots named, or else the machine's (public authorities chain to those); with
    # none named, a token whose chain reaches none of the machine's is kept, unchecked
    given = bool(roots)
    roots = roots or timestamp.system_roots()
    refused = None
    if not given and not mark_signed:
        refused = (
            f'not kept marked "{timestamp.UNCHECKED}": the custody event that would carry '
            "the mark cannot be signed (no usable key in the key store: an encrypted key "
            "needs ARCHIVER_KEY_PASSPHRASE), and verify believes a signed mark only"
        )
    return timestamp.Timestamper(
        authorities,
        roots,
        timeout=tsa_timeout,
        keep_unchecked=not given and mark_signed,
        unchecked_refused=refused,
    )


def tsa_roots(tsa_ca: tuple[Path, ...]) -> list[x509.Certificate] | None:
    try:
        return [c for path in tsa_ca for c in timestamp.read_certificates(Path(path))] or None
    except timestamp.TimestampUsage as exc:
        raise click.BadParameter(str(exc), param_hint="--tsa-ca") from exc


def show_stamp(stamp: Stamp) -> None:
    if stamp.already:
        when = isoformat(stamp.time) if stamp.time else "?"
        click.echo(f"  already time-stamped by {stamp.authority} ({when}): {stamp.token}")
    elif stamp.ok and stamp.time is not None:
        click.echo(f"  time-stamped by {stamp.authority} at {isoformat(stamp.time)}: {stamp.token}")
        if stamp.root_checked is False:
            click.echo(
                f"    {timestamp.UNCHECKED} (no --tsa-ca given, and it reaches none of this "
                f"machine's roots): it ends at {stamp.chain_end}; kept as received, "
                "`archiver verify --tsa-ca ROOT` judges it"
            )
    else:
        click.echo(
            f"  NOT time-stamped by {stamp.authority}: {stamp.error}; the capture is signed "
            f"and kept; `archiver timestamp {stamp.capture_id}` asks again",
            err=True,
        )


@cli.command()
@click.argument("urls", nargs=-1)
@click.option(
    "--input",
    "input_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="File with one URL per line (blank lines and # comments skipped), or a CSV "
    "with a url column (note, collection and operator columns apply per row).",
)
@archive_dir_option
@click.option("--collection", default="default", show_default=True, help="Collection name.")
@click.option("--operator", help="Who runs the capture (recorded in provenance).")
@click.option("--note", help="Free-text note recorded with the capture.")
@click.option("--user-agent", default=DEFAULT_USER_AGENT, help="User-Agent header to send.")
@click.option(
    "--timeout",
    type=Seconds(),
    default=DEFAULT_TIMEOUT,
    show_default=True,
    help="Seconds to wait for a connection or for any bytes of a response.",
)
@click.option(
    "--max-time",
    type=Seconds(),
    help="Seconds one response may take in all; a body cut by it is marked truncated.",
)
@click.option(
    "--min-rate",
    type=Size(),
    default=DEFAULT_MIN_RATE,
    show_default=True,
    help="Bytes per second (e.g. 1K) a response must average over --min-rate-window; "
    "one slower is cut, stored truncated (WARC-Truncated: time) and reported. 0: no minimum.",
)
@click.option(
    "--min-rate-window",
    type=Seconds(),
    default=DEFAULT_MIN_RATE_WINDOW,
    show_default=True,
    help="Seconds over which --min-rate is averaged, from a response's first byte.",
)
@click.option(
    "--max-size",
    type=Size(),
    help="Largest body to store per response (e.g. 500M); larger ones are stored "
    "truncated and marked so. Default: unlimited.",
)
@click.option(
    "--max-requests",
    type=click.IntRange(min=0),
    default=DEFAULT_MAX_REQUESTS,
    show_default=True,
    help="Requests one capture makes at most (0: no limit); what is left out is listed "
    "and the capture is partial.",
)
@click.option(
    "--max-capture-size",
    type=Size(),
    default=DEFAULT_MAX_CAPTURE_SIZE,
    show_default="20G",
    help="Bytes of bodies one capture stores at most (0: no limit); the body that reaches "
    "it is stored truncated, and the capture is partial.",
)
@click.option(
    "--max-capture-time",
    type=click.FloatRange(min=0, max=7 * 86400),
    default=DEFAULT_MAX_CAPTURE_TIME,
    show_default=True,
    help="Seconds one capture runs at most (0: no limit): then no request starts and "
    "running ones are cut (marked truncated); the capture is partial.",
)
@click.option(
    "--live-duration",
    type=click.FloatRange(min=0, max=7 * 86400),
    default=0.0,
    show_default=True,
    help="Seconds to keep reloading a live HLS playlist (no #EXT-X-ENDLIST), capturing "
    "its new segments; 0: record it once, as a snapshot marked live.",
)
@click.option(
    "--concurrency",
    type=click.IntRange(min=1, max=64),
    default=DEFAULT_CONCURRENCY,
    show_default=True,
    help="Requisites fetched at once.",
)
@click.option(
    "--warc-size",
    type=Size(),
    default=DEFAULT_WARC_MAX_SIZE,
    show_default=True,
    help="Start a new WARC file when one reaches this size (records are never split).",
)
@click.option(
    "--max-redirects",
    type=click.IntRange(min=0),
    default=DEFAULT_MAX_REDIRECTS,
    show_default=True,
    help="Redirect hops followed per URL.",
)
@click.option(
    "--insecure",
    is_flag=True,
    help="Capture even when a TLS certificate does not verify.",
)
@click.option(
    "--allow-private",
    is_flag=True,
    help="Let the capture fetch loopback, private and link-local addresses (refused by "
    "default, seed and requisites alike: a page must not make the capture fetch your own "
    "network). For intranet captures; config file: [capture] allow_private = true.",
)
@click.option(
    "--platform-videos/--no-platform-videos",
    default=True,
    show_default=True,
    help="Hand platform video URLs (the URL itself, iframes, og:video) to yt-dlp; every "
    "exchange it makes is recorded.",
)
@click.option(
    "--follow-video-links",
    is_flag=True,
    help="Also hand links in the page that point at platform posts to yt-dlp.",
)
@click.option(
    "--max-video-size",
    type=Size(),
    help="Skip a platform video larger than this (e.g. 2G); the skip is recorded.",
)
@click.option(
    "--max-video-duration",
    type=Seconds(),
    help="Skip a platform video longer than this many seconds; the skip is recorded.",
)
@click.option(
    "--allow-playlists",
    is_flag=True,
    help="Let yt-dlp take playlists, channels and live streams (skipped by default).",
)
@click.option(
    "--jobs",
    type=click.IntRange(min=1, max=32),
    default=1,
    show_default=True,
    help="Captures run at once (a batch); one at a time per host.",
)
@click.option(
    "--per-host-delay",
    type=click.FloatRange(min=0, max=86400),
    default=0.0,
    show_default=True,
    help="Seconds from the end of one capture on a host to the start of the next.",
)
@click.option(
    "--recapture",
    is_flag=True,
    help="With --input: capture again the URLs the archive holds a complete capture of "
    "(by default a batch run again skips them, and tries partial and failed ones again).",
)
@click.option(
    "--no-dedup",
    "no_dedup",
    is_flag=True,
    help="Store every payload, even one the archive holds already (default: a revisit "
    "record pointing at it).",
)
@click.option(
    "--cookies",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Netscape cookies file for logged-in capture; sent, never recorded in clear.",
)
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="json: one summary object per capture on stdout, one per line.",
)
@tsa_options
@key_option
@key_store_option
@click.pass_context
def capture(
    ctx: click.Context,
    urls: tuple[str, ...],
    input_file: Path | None,
    archive_dir: Path,
    collection: str,
    operator: str | None,
    note: str | None,
    user_agent: str,
    timeout: float,
    max_time: float | None,
    min_rate: int,
    min_rate_window: float,
    max_size: int | None,
    max_requests: int,
    max_capture_size: int,
    max_capture_time: float,
    live_duration: float,
    concurrency: int,
    warc_size: int,
    max_redirects: int,
    insecure: bool,
    allow_private: bool,
    platform_videos: bool,
    follow_video_links: bool,
    max_video_size: int | None,
    max_video_duration: float | None,
    allow_playlists: bool,
    jobs: int,
    per_host_delay: float,
    recapture: bool,
    no_dedup: bool,
    cookies: Path | None,
    output_format: str,
    tsa: tuple[str, ...],
    tsa_ca: tuple[Path, ...],
    tsa_timeout: float,
    key_path: Path | None,
    key_store: Path | None,
) -> None:
    """Capture pages, their requisites and every video they reference into WARC files.

    Each URL becomes one capture with its own WARC files under
    ARCHIVE_DIR/warc/COLLECTION/, and a manifest of every file and record, signed
    with your key (created on first use; see `archiver keys`).  Exit status: 0 when
    every capture succeeded (complete or partial), 1 when one failed or could not
    be signed, 2 for bad input.

    \b
    Example:
      archiver capture https://example.org/news/article --operator "A. Archivist"
      archiver capture --input urls.txt --collection belarus-2020 --format json
    """
    requested = [batch.Job(u) for u in urls]
    problems: list[tuple[int, str]] = []  # every wrong line of --input, reported together
    if input_file is not None:
        try:
            jobs_read, problems = batch.read_batch(input_file)
        except batch.BatchInputError as exc:
            raise click.BadParameter(str(exc), param_hint="--input") from exc
        requested += jobs_read
    if not requested and not problems:
        raise click.UsageError("no URL given (pass URLs or --input FILE)")
    checked = []
    for job in requested:
        try:
            url, credentials = split_credentials(job.url)
            if job.collection is not None:
                CaptureOptions(collection=job.collection)  # the row's collection name
        except ValueError as exc:  # InvalidURL too
            if job.line is None:
                raise click.BadParameter(str(exc), param_hint="URL") from exc
            problems.append((job.line, str(exc)))
            continue
        checked.append(replace(job, url=url, credentials=credentials))
    if problems and input_file is not None:
        report_text = batch.problem_report(input_file, problems)
        raise click.BadParameter(report_text, param_hint="--input")
    for job in checked:
        if job.credentials is not None:
            click.echo(
                f"note: {job.url}: the user name and password given in the URL are not "
                f"stored or shown; they are sent as HTTP Basic authentication to "
                f"{job.credentials.origin} only (never to another origin, nor after a "
                f"redirect to one) and recorded as 'Authorization: {REDACTED}'",
                err=True,
            )
    if not allow_private:  # a seed on the archivist's own network: said before anything is written
        hosts = {job: request_target(job.url)[1:3] for job in checked}
        refused = seed_refusals(hosts.values(), AddressPolicy())
        for job in checked:
            if hosts[job] in refused:
                where = f"--input line {job.line}" if job.line else "URL"
                raise click.BadParameter(f"{job.url}: {refused[hosts[job]]}", param_hint=where)
    try:
        options = CaptureOptions(
            archive_dir=archive_dir,
            collection=collection,
            operator=operator,
            note=note,
            user_agent=user_agent,
            timeout=timeout,
            max_time=max_time,
            min_rate=min_rate or None,
            min_rate_window=min_rate_window,
            max_size=max_size,
            max_requests=max_requests or None,
            max_capture_size=max_capture_size or None,
            max_capture_time=max_capture_time or None,
            live_duration=live_duration,
            concurrency=concurrency,
            warc_max_size=warc_size,
            max_redirects=max_redirects,
            insecure=insecure,
            allow_private=allow_private,
            platform_videos=platform_videos,
            follow_video_links=follow_video_links,
            max_video_size=max_video_size,
            max_video_duration=max_video_duration,
            allow_playlists=allow_playlists,
            cookies=cookies,
            dedup=not no_dedup,
        )
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    if cookies is not None:
        import http.cookiejar

        from archiver.web.media import load_cookies

        try:
            load_cookies(cookies)
        except (OSError, http.cookiejar.LoadError) as exc:
            raise click.BadParameter(
                f"{cookies} is not a Netscape cookies file: {exc}", param_hint="--cookies"
            ) from exc
    per_job = {}
    for job in checked:  # a row's own note, collection or operator: checked before starting
        row = {k: v for k in batch.ROW_COLUMNS if (v := getattr(job, k)) is not None}
        try:
            per_job[job] = replace(options, **row) if row else options
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint=f"--input line {job.line}") from exc
    require_writable(archive_dir, "a capture")  # before a key is made or a page fetched
    timestamper = make_timestamper(archive_dir, tsa, tsa_ca, tsa_timeout)
    signer = capture_signer(key_path, key_store, archive_dir)
    interactive = output_format == "text" and sys.stderr.isatty()
    resumable = not recapture and any(job.line is not None for job in checked)
    done_before = batch.completed(archive_dir) if resumable else {}
    summary = batch.BatchSummary()
    todo = []
    for job in checked:
        before = done_before.get((job.url, per_job[job].collection))  # in this collection
        if job.line is not None and before is not None:  # batches resume; URLs given
            # on the command line are captured again, as asked
            reason = f"captured completely already ({before}); --recapture"
            summary.add(job.url, "skipped", before, reason)
            if output_format == "text":
                click.echo(f"skipped {job.url}: {reason}", err=True)
        else:
            todo.append(job)
    capturers: list[Capturer] = []

    def capture_job(job: batch.Job, progress: Progress | None) -> Capture:
        capturer = Capturer(per_job[job], progress=progress, signer=signer, timestamper=timestamper)
        capturers.append(capturer)
        return capturer.capture(job.url, job.credentials)

    failures: list[str] = []

    def interrupt_all() -> None:
        for capturer in list(capturers):
            capturer.interrupt()

    def done(job: batch.Job, result: Capture, progress: TerminalProgress | None) -> None:
        if progress is not None:
            progress.page_done()
        trouble = result.failure or result.index_error or result.sign_error
        operator = per_job[job].operator
        if result.custody_error:  # the capture logs its own event (archiver.trust.custody)
            click.echo(
                f"warning: {result.custody_error}; verify will fail capture "
                f"{result.capture_id} as recorded by no custody event until "
                "`archiver custody --adopt` records it",
                err=True,
            )
        record_stamps(archive_dir, result.timestamps, signer, operator)
        if result.status is CaptureStatus.FAILED or result.index_error or result.sign_error:
            failures.append(job.url)
        problems = "; ".join(f"{e.url}: {e.reason}" for e in result.errors[:3])
        summary.add(job.url, result.status.value, result.capture_id, trouble or problems or None)
        if output_format == "json":
            click.echo(json.dumps(result.summary(), ensure_ascii=False))
        else:
            report(result)
        if progress is not None:
            progress.redraw()  # the count of pages done, under the report

    interrupted = False
    if jobs == 1:
        gate = batch.HostGate(per_host_delay, threading.Event())
        with progress_display(interactive, len(todo)) as progress:
            for job in todo:
                with gate.entered(job.url):
                    result = capture_job(job, progress)
                done(job, result, progress)
                if result.interrupted:  # Ctrl-C: the remaining URLs are not started
                    interrupted = True
                    break
    else:
        with progress_display(interactive, len(todo)) as progress:
            try:
                for job, result in batch.run_concurrently(
                    todo,
                    lambda job: capture_job(job, progress),
                    workers=jobs,
                    per_host_delay=per_host_delay,
                    interrupt=interrupt_all,
                ):
                    done(job, result, progress)
            except KeyboardInterrupt:
                interrupted = True
    if len(checked) > 1:
        if output_format == "json":
            click.echo(json.dumps(summary.to_json(), ensure_ascii=False))
        else:
            counts = ", ".join(f"{n} {k}" for k, n in summary.counts().items())
            click.echo(f"batch of {len(checked)}: {counts}", err=True)
    if interrupted:
        ctx.exit(EXIT_INTERRUPTED)
    if failures:
        ctx.exit(EXIT_FAILED)


def event_count(n: int) -> str:
    return counted(n, "event")


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"  # pragma: no cover


def report(result: Capture) -> None:
    """A short human summary of one capture (stdout), problems on stderr."""
    s = result.summary()
    if result.status is CaptureStatus.FAILED:
        click.echo(f"FAILED {result.seed_url}: {result.failure}", err=True)
    else:
        click.echo(
            f"{result.status.value} {result.seed_url} -> {result.capture_id}: "
            f"{counted(s['record_count'], 'record')}, {counted(len(result.videos), 'video')}, "
            f"{human_bytes(s['total_bytes'])}"
        )
    for err in result.errors:
        click.echo(f"  not captured: {err.url}: {err.reason}", err=True)
    for url in s["truncated"]:
        click.echo(f"  truncated: {url}", err=True)
    for spent in result.budget_spent:
        left = sum(1 for n in result.not_followed if n.get("reason", "").startswith(spent))
        listed = counted(left, "entry", "entries")
        click.echo(f"  partial: {spent}; {listed} in not_followed", err=True)
    for live in result.live:
        how = (
            "recorded once, as a snapshot (--live-duration follows it)"
            if live["snapshot"]
            else f"followed for {live['followed_seconds']:.0f} s, fetched {live['polls']} times"
        )
        ended = "; the stream ended" if live["ended"] else ""
        click.echo(f"  live stream: {live['url']}: {how}{ended}", err=True)
    for tls in result.tls_unverified:
        click.echo(
            f"  certificate not verified (--insecure): {tls.host}: {tls.problem};"
            f" certificate sha256 {tls.certificate_sha256} recorded",
            err=True,
        )
    for path in result.warc_files:
        click.echo(f"  {path}")
    if result.manifest:
        click.echo(f"  signed by {result.key_fingerprint}: {result.manifest}")
    for stamp in result.timestamps:
        show_stamp(stamp)
    if result.sign_error and result.sign_error != result.failure:
        click.echo(f"  {result.sign_error}", err=True)
    if result.index_error:
        click.echo(f"  {result.index_error}", err=True)


# the index -------------------------------------------------------------------
def format_option(*choices: str, default: str = "table") -> Callable[[F], F]:
    return click.option(
        "--format",
        "output_format",
        type=click.Choice(list(choices)),
        default=default,
        show_default=True,
        help="Output format.",
    )


def emit(result: query.Result, output_format: str, output: Path | None) -> None:
    """Write a query result in ``output_format`` to ``output`` or stdout."""
    if output_format == "parquet":
        if output is None:
            raise click.UsageError("--format parquet needs --output FILE")
        try:  # a read-only place: said as for the other formats, not as a crash
            query.write_parquet(result, output)
        except OSError as exc:
            raise click.UsageError(f"cannot write {output}: {exc.strerror or exc}") from exc
        return
    if output_format == "json":
        text = query.as_json(result) + "\n"
    elif output_format == "csv":
        text = query.as_csv(result)
    else:
        text = query.as_text_table(result)
    if output is None:
        click.echo(text, nl=False)
        return
    try:
        with atomic_path(output, overwrite=True) as temp:
            temp.write_text(text, "utf-8")
    except OSError as exc:
        raise click.UsageError(f"cannot write {output}: {exc.strerror or exc}") from exc


def require_archive(archive_dir: Path) -> None:
    """Exit 1 with a message when ``archive_dir`` holds no archive to read, rather than
    answer with an empty table (as ``verify`` does: nothing to verify)."""
    index = Index(archive_dir)
    if index.files("captures") or index.needs_repair():
        return
    if ingest.warc_files(archive_dir):
        click.echo(
            f"error: the index of {archive_dir} is empty, but it holds WARC files: "
            "run `archiver index rebuild`",
            err=True,
        )
    else:
        click.echo(
            f"error: no archive in {archive_dir} (no index and no WARC files); "
            "capture something first, or name the archive with --archive-dir",
            err=True,
        )
    sys.exit(EXIT_FAILED)


def require_writable(archive_dir: Path, action: str) -> None:
    """Exit 1 before anything is done when ``archive_dir`` cannot be written (a
    write-blocked copy, someone else's folder): ``action`` would fail halfway."""
    reason = Index(archive_dir).read_only()
    if reason is not None:
        click.echo(
            f"error: {archive_dir} cannot be written ({reason}): {action} needs a writable "
            "copy of the archive; nothing was done (list, show, query, extract, verify and "
            "custody read a read-only copy)",
            err=True,
        )
        sys.exit(EXIT_FAILED)


def show_read_only(archive_dir: Path, action: str) -> list[str]:
    """Say on stderr that a read-only copy was read as it is (:func:`read_only_notes`)."""
    notes = read_only_notes(archive_dir, action)
    for note in notes:
        click.echo(f"note: {note}", err=True)
    return notes


def run_query(archive_dir: Path, sql: str, params: list[Any] | None = None) -> query.Result:
    try:
        return query.run(archive_dir, sql, params)
    except query.QueryError as exc:
        raise click.UsageError(str(exc)) from exc
    except query.QueryFailed as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_FAILED)


@cli.command("query")
@click.argument("sql")
@format_option(*query.FORMATS)
@click.option(
    "-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="Write to FILE."
)
@click.option("--force", is_flag=True, help="Replace --output if it exists.")
@archive_dir_option
def query_command(
    sql: str, output_format: str, output: Path | None, force: bool, archive_dir: Path
) -> None:
    """Run SQL over the index: the views `captures` and `records` (DuckDB).

    The same Parquet files can be read directly, e.g. in DuckDB:
    read_parquet('archives/index/records/*.parquet').

    \b
    Examples:
      archiver query "select url, payload_length from records where role = 'video'"
      archiver query "select * from captures" --format json
      archiver query "select * from records" --format parquet -o records.parquet
    """
    if output is not None and (problem := output_problem(archive_dir, output, force)):
        raise click.UsageError(problem)
    require_archive(archive_dir)
    emit(run_query(archive_dir, sql), output_format, output)
    show_read_only(archive_dir, "query")


@cli.command("list")
@click.option("-n", "--limit", type=click.IntRange(min=1), default=50, show_default=True)
@click.option("--collection", help="Only this collection.")
@format_option("table", "csv", "json")
@archive_dir_option
def list_command(limit: int, collection: str | None, output_format: str, archive_dir: Path) -> None:
    """Recent captures, newest first: time, status, URL, videos, size.

    \b
    Example:
      archiver list -n 20 --collection belarus-2020
    """
    require_archive(archive_dir)
    where = "where collection = ?" if collection else ""
    sql = (
        # a capture of ours with no signed manifest (its signing failed, or it was made
        # without a key) is never shown as plainly complete: verify fails it
        "select capture_id, started_at, case when manifest_sha256 is null and not imported "
        "then status || ', unsigned' else status end as status, seed_url, "
        "video_count as videos, "
        f"record_count as records, total_bytes from captures {where} "
        "order by started_at desc nulls last, capture_id desc limit ?"
    )
    params: list[Any] = [collection] if collection else []
    emit(run_query(archive_dir, sql, [*params, limit]), output_format, None)
    show_read_only(archive_dir, "list")


@cli.command("show")
@click.argument("capture_id")
@format_option("text", "json", default="text")
@archive_dir_option
def show_command(capture_id: str, output_format: str, archive_dir: Path) -> None:
    """Everything about one capture: provenance, files, records and errors.

    \b
    Example:
      archiver show 20200812100000-0123456789
    """
    require_archive(archive_dir)
    captures = run_query(archive_dir, "select * from captures where capture_id = ?", [capture_id])
    if not captures.rows:
        raise click.UsageError(f"no capture {capture_id!r} in the index of {archive_dir}")
    records = run_query(
        archive_dir,
        "select record_id, warc_type, role, http_status, content_type, url, payload_length, "
        "payload_sha256, truncated, problem, warc_filename, warc_offset, warc_length, "
        "record_sha256, discovered_from, discovered_via, fetched_at "
        "from records where capture_id = ? order by warc_filename, warc_offset",
        [capture_id],
    )
    row = captures.rows[0]
    if output_format == "json":
        doc = {"capture": query.jsonable(row), "records": query.jsonable(records.rows)}
        if read_only := show_read_only(archive_dir, "show"):
            doc["notes"] = read_only
        click.echo(json.dumps(doc, ensure_ascii=False, indent=1))
        return
    for name in captures.columns:
        if name in ("errors", "outlinks", "libraries", "warc_files"):
            continue
        value = query.cell(row[name])
        if value:  # an operator, a note, a page title: escaped, never acted on
            click.echo(f"{name:>16}: {printable(value)}")
    click.echo("\nWARC files:")
    for name in row["warc_files"] or []:
        click.echo(f"  {printable(name)}")
    if row["errors"]:
        click.echo("\nErrors:")
        for err in row["errors"]:
            click.echo(f"  {printable(err['url'])}: {printable(err['reason'])}")
    click.echo(f"\nRecords ({len(records.rows)}):")
    shown = query.Result(
        ["warc_type", "role", "http_status", "content_type", "payload_length", "url"],
        records.table.select(
            ["warc_type", "role", "http_status", "content_type", "payload_length", "url"]
        ),
    )
    click.echo(query.as_text_table(shown), nl=False)
    show_read_only(archive_dir, "show")


@cli.command("extract")
@click.argument("ident", metavar="CAPTURE_ID_OR_RECORD_ID")
@click.option("--url", help="The response for this URL in the capture (redirects followed).")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="File to write; it appears only once every digest has been checked.",
)
@click.option(
    "--segments",
    is_flag=True,
    help="For an HLS or DASH manifest: write the segments of one track, concatenated "
    "in playlist order (init segment first).",
)
@click.option(
    "--track",
    help="With --segments: video, audio, subtitles, or a track name (DASH Representation "
    "id, HLS playlist path). Default: the captured video track.",
)
@click.option("--raw", is_flag=True, help="Keep the chunked transfer framing of the body.")
@click.option("--force", is_flag=True, help="Replace OUTPUT if it exists.")
@archive_dir_option
@format_option("text", "json", default="text")
def extract(
    ident: str,
    url: str | None,
    output: Path,
    segments: bool,
    track: str | None,
    raw: bool,
    force: bool,
    archive_dir: Path,
    output_format: str,
) -> None:
    """Write the payload of a record (a video, the page) to a file, verified on the way out.

    CAPTURE_ID_OR_RECORD_ID is a capture id (the page, or with --url that URL's
    response) or a WARC-Record-ID. The record's stored bytes and its payload
    SHA-256 are checked against the index; if anything differs, no file is
    written and the exit status is 1. Chunked transfer coding is removed
    (--raw keeps it); Content-Encoding is kept as served.

    \b
    Examples:
      archiver extract 20200812100000-0123456789 -o article.html
      archiver extract 20200812100000-0123456789 --url https://example.org/v.mp4 -o v.mp4
      archiver extract "<urn:uuid:0b3f7a4e-5c1d-4e2a-9f3b-8d6c2a1e4f57>" -o v.mp4
      archiver extract 20200812100000-0123456789 --segments \\
          --url https://example.org/hls/master.m3u8 -o video.ts
      archiver extract 20200812100000-0123456789 --segments \\
          --url https://example.org/dash/manifest.mpd -o video.mp4
    """
    try:
        result = extraction.extract(
            archive_dir,
            ident,
            output,
            url=url,
            segments=segments,
            track=track,
            raw=raw,
            overwrite=force,
        )
    except extraction.ExtractError as exc:
        if exc.user_error:
            raise click.UsageError(str(exc)) from exc
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_FAILED)
    logged = record_custody(  # on a read-only copy: not logged, and a note says so
        archive_dir,
        "extract",
        custody_signer(),
        captures=[result.capture_id],
        files=[custody.FileRef.of(result.path, archive_dir, result.sha256)],
        detail=f"{result.url}, record {result.record_id}",
    )
    if output_format == "json":
        doc = result.to_json()
        doc["custody_logged"] = logged
        doc["notes"] += read_only_notes(archive_dir, "extract")
        click.echo(json.dumps(doc, ensure_ascii=False))
    else:
        click.echo(
            f"wrote {result.path}: {counted(result.bytes_written, 'byte')}, sha256 {result.sha256}"
        )
        status = f"HTTP {result.http_status}, " if result.http_status is not None else ""
        what = f"{result.track} of " if result.track is not None else ""
        click.echo(
            f"  {what}{result.url} ({status}{result.content_type or 'no type'}), "
            f"record {result.record_id}, capture {result.capture_id}"
        )
        for part in result.parts if result.track is not None else ():
            click.echo(f"    {part.record_id} {part.url} ({counted(part.bytes_written, 'byte')})")
        if any(p.dechunked for p in result.parts):
            click.echo("  chunked transfer coding removed (--raw keeps it)")
    for note in result.notes:
        click.echo(f"note: {note}", err=True)


def _event_hashes(values: tuple[str, ...]) -> tuple[str, ...]:
    for value in values:
        if not re.fullmatch(r"[0-9a-fA-F]{16,64}", value):
            raise click.BadParameter(
                f"{value!r} is not the SHA-256 of a custody event (16 to 64 hex digits)",
                param_hint="--custody-head",
            )
    return values


@cli.command("verify")
@click.argument("paths", nargs=-1)
@click.option(
    "--trusted-key",
    "trusted",
    multiple=True,
    metavar="FILE_OR_FINGERPRINT",
    help="A public key file, or a 64-hex-digit fingerprint, that may sign (repeatable). "
    "A capture signed by any other key fails.",
)
@click.option(
    "--deep",
    is_flag=True,
    help="Also recompute every payload digest of a signed file (a third SHA-256 over the "
    "same bytes; about a third slower). By default a payload digest is compared with the "
    "signed one, and the file's SHA-256 covers its bytes.",
)
@click.option(
    "--tsa-ca",
    multiple=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Root certificate(s) of the time-stamping authorities you trust, PEM "
    "(repeatable). Without it, tokens are checked against the roots saved in the archive.",
)
@click.option(
    "--custody-head",
    "custody_heads",
    multiple=True,
    metavar="SHA256",
    callback=lambda ctx, param, values: _event_hashes(values),
    help="The SHA-256 of a custody event kept outside the archive (`archiver custody` "
    "prints the last one; 16 or more hex digits), which must still be in the log: "
    "events cut from its end fail (repeatable).",
)
@archive_dir_option
@format_option("text", "json", default="text")
def verify_command(
    paths: tuple[str, ...],
    trusted: tuple[str, ...],
    deep: bool,
    tsa_ca: tuple[Path, ...],
    custody_heads: tuple[str, ...],
    archive_dir: Path,
    output_format: str,
) -> None:
    """Check that nothing captured has changed since it was signed, and say where it has.

    Checks every manifest's signature, every WARC file's size and SHA-256, every
    record's head and block digest (one pass per file; --deep recomputes payload
    digests too), and every index row against the signed manifests.  PATHS may be
    capture ids (an imported file's import-... id too), manifests, WARC files or
    directories; none means the whole archive.  WARC files from other tools have no
    signature: their digests are checked, and the report says that only internal
    consistency was; their quirks that touch no digest are notes, not failures.
    The report ends with every signer's fingerprint and how many captures it
    signed; captures signed by more than one key fail unless --trusted-key names
    the keys that may sign.  A revisit counts only when its original is signed by
    the same key or a trusted one.  Captures still running are left out, and said.
    Exit status: 0 when everything holds, 1 otherwise.

    \b
    Examples:
      archiver verify
      archiver verify 20200812100000-0123456789 --trusted-key archivist.pub.pem
      archiver verify crawl.warc.gz --format json
    """
    interactive = output_format == "text" and sys.stderr.isatty()
    roots = tsa_roots(tsa_ca)
    try:
        with scan_progress(interactive) as progress:
            result = verification.verify(
                archive_dir,
                paths,
                trusted,
                progress,
                deep=deep,
                tsa_roots=roots,
                custody_heads=custody_heads,
            )
    except verification.VerifyUsage as exc:
        raise click.UsageError(str(exc)) from exc
    problems = len(result.problems)
    archive = result.archive or archive_dir

    def log() -> bool:  # on a read-only copy: not logged, and a note says so
        return record_custody(
            archive,
            "verify",
            custody_signer(),
            captures=[c.capture_id for c in result.captures],
            files=[custody.FileRef(f.path, None) for f in result.unsigned],
            result="ok" if result.ok else "failed",
            detail=f"{counted(len(result.captures), 'capture')}, "
            f"{counted(len(result.unsigned), 'unsigned file')}"
            + (f", {counted(problems, 'problem')}" if problems else ", everything holds"),
        )

    if output_format == "json":
        doc = result.to_json()
        doc["custody_logged"] = log()
        if archive.is_dir() and (read_only := read_only_notes(archive, "verify")):
            doc["notes"] = read_only
        click.echo(json.dumps(doc, ensure_ascii=False))
    else:
        show_verification(result)
        log()
    sys.exit(EXIT_OK if result.ok else EXIT_FAILED)


NOTES_SHOWN = 10
"""Notes shown per file in text output (``--format json`` lists them all)."""


def show_notes(notes: list[str], err: bool = False) -> None:
    """Quirks of another tool's file that touch no digest: said, not failed."""
    for text in notes[:NOTES_SHOWN]:
        click.echo(f"  note: {text}", err=err)
    if len(notes) > NOTES_SHOWN:
        more = counted(len(notes) - NOTES_SHOWN, "more note")
        click.echo(f"  note: ... and {more} on this file (--format json lists them all)", err=err)


def show_verification(result: verification.Report) -> None:
    for c in result.captures:
        verdict = "OK" if c.ok else "FAILED"
        status = f" ({c.status})" if c.status else ""
        click.echo(
            f"{verdict} capture {c.capture_id}{status}: {counted(c.files, 'file')}, "
            f"{counted(c.records, 'record')}, "
            f"{human_bytes(c.bytes)}"
        )
        if c.key_fingerprint:
            if c.trusted is None:
                click.echo(
                    f"  signed by {c.key_fingerprint} (no --trusted-key given: compare this "
                    "fingerprint with the signer's, obtained another way)"
                )
            else:
                trust = "a trusted key" if c.trusted else "NOT a trusted key"
                click.echo(f"  signed by {c.key_fingerprint}, {trust}")
        for token in c.timestamps:
            if not token.ok or token.time is None:
                continue
            click.echo(f"  time-stamped by {token.authority} at {isoformat(token.time)}")
            if token.unchecked_at_capture and token.root is None:
                click.echo(
                    f"    {timestamp.UNCHECKED}, nor now (no --tsa-ca given): it ends at "
                    f"{token.chain_end}, not at a root saved in the archive: compare it with "
                    "the authority's, or give the authority's root with --tsa-ca"
                )
            elif token.unchecked_at_capture and not token.anchored:
                click.echo(
                    f"    {timestamp.UNCHECKED}; it ends at a root saved in the archive, "
                    f"{token.root}: compare it with the authority's, or give that with --tsa-ca"
                )
            elif not token.anchored:
                click.echo(
                    f"    its chain ends at a root saved in the archive, {token.root}: "
                    "compare it with the authority's, or give that with --tsa-ca"
                )
        if c.trusted_time is not None:
            click.echo(
                f"  trusted time: {isoformat(c.trusted_time)} (the capture existed, signed, "
                "by then: the authority's time plus its stated accuracy)"
            )
        for problem in c.problems:
            click.echo(f"  - {problem.text()}")
    for f in result.unsigned:
        verdict = "OK" if f.ok else "FAILED"
        click.echo(
            f"{verdict} {f.path}: {counted(f.records, 'record')}; unsigned, so only internal "
            "consistency (the digests the records declare) was checked"
            + (
                f"; {counted(f.without_digest, 'record declares', 'records declare')} no digest"
                if f.without_digest
                else ""
            )
        )
        for problem in f.problems:
            click.echo(f"  - {problem.text()}")
        show_notes([note.text() for note in f.notes])
    for check in result.index_checks:
        click.echo(f"{'OK' if check.ok else 'FAILED'} {check.check} {check.target}: {check.detail}")
    for problem in result.index_problems:
        where = f"capture {problem.capture_id}: " if problem.capture_id else ""
        click.echo(f"  - {where}{problem.text()}")
    if result.custody is not None and (result.custody.exists or result.custody.problems):
        log = result.custody
        verdict = "OK" if log.ok else "FAILED"
        click.echo(
            f"{verdict} custody log {log.path}: {event_count(len(log.events))}, last {log.head}"
            if log.exists
            else f"FAILED custody log {log.path}: missing"
        )
        for message in log.problems:
            click.echo(f"  - {message}")
        for message in log.notes:
            click.echo(f"  note: {message}")
    verified = {c.capture_id for c in result.captures}
    for capture_id in result.in_progress:
        if capture_id in verified:  # signed already: verified above, only its rows not
            click.echo(
                f"IN PROGRESS capture {capture_id}: still running (it holds its capture "
                "lock); its signed manifest and files are verified above, its index rows "
                "and custody event once it has ended"
            )
            continue
        click.echo(
            f"IN PROGRESS capture {capture_id}: running now (it holds its capture lock), so "
            "left out of this verification: verify it once it has ended"
        )
    show_signers(result)
    problems = len(result.problems)
    left_out = [c for c in result.in_progress if c not in verified]
    aside = f" ({counted(len(left_out), 'capture')} in progress left out)" if left_out else ""
    if result.nothing and result.in_progress:
        click.echo(f"FAILED: nothing verified{aside}: verify once it has ended", err=True)
    elif result.nothing:
        click.echo("FAILED: nothing to verify (no manifest and no WARC file found)", err=True)
    elif result.ok and result.unsigned:
        click.echo(
            f"verified: no problem found{aside}; "
            f"{counted(len(result.unsigned), 'unsigned file was', 'unsigned files were')} "
            "checked for internal consistency only"
        )
    elif result.ok:
        click.echo(f"verified: everything holds{aside}")
    elif result.signers_problem is not None:  # said last, whatever else failed
        others = f"{counted(problems - 1, 'other problem')}; " if problems > 1 else ""
        click.echo(f"FAILED: {others}{result.signers_problem}{aside}", err=True)
    else:
        click.echo(f"FAILED: {problems} problem{'s' if problems != 1 else ''}{aside}", err=True)


def show_signers(result: verification.Report) -> None:
    """Every key whose signature holds on a capture verified, with how many it signed."""
    signers = result.signers
    if not signers:
        return
    if result.trusted_given:
        click.echo(f"signers: {counted(len(signers), 'key')}")
    else:
        click.echo(
            f"signers: {counted(len(signers), 'key')} (no --trusted-key given: compare each "
            "fingerprint with the signer's, obtained another way)"
        )
    for fp, n in signers.items():
        trust = ""
        if result.trusted_given:
            trust = ", a trusted key" if fp in result.trusted else ", NOT a trusted key"
        click.echo(f"  {fp}: {counted(n, 'capture')}{trust}")


@cli.command("cleanup")
@click.option("--apply", "apply_", is_flag=True, help="Do it (without: only list).")
@archive_dir_option
@format_option("text", "json", default="text")
def cleanup_command(apply_: bool, archive_dir: Path, output_format: str) -> None:
    """List what crashed or interrupted captures left behind; --apply puts it aside.

    Files holding captured bytes that no signed manifest covers (.open files, a
    capture whose signing did not finish) are moved to ARCHIVE_DIR/incomplete/,
    never deleted; temporary files and spooled bodies are deleted; the index is
    repaired.  Refused while a capture runs in the archive.

    \b
    Examples:
      archiver cleanup
      archiver cleanup --apply
    """
    from archiver.ops import cleanup

    if not archive_dir.is_dir():
        raise click.UsageError(f"no archive at {archive_dir}")
    if apply_:  # the dry run lists what a read-only copy holds
        require_writable(archive_dir, "cleanup --apply")
    try:
        report = cleanup.cleanup(archive_dir, apply=apply_)
    except cleanup.CaptureRunning as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_FAILED)
    if report.applied and report.leftovers:
        moved = [item.to_json(archive_dir) for item in report.leftovers]
        record_custody(
            archive_dir,
            "cleanup",
            custody_signer(),
            files=[custody.FileRef(str(m["path"]), None) for m in moved],
            detail="; ".join(f"{m['action']}: {m['path']}" for m in moved)[:4000],
        )
    if output_format == "json":
        click.echo(json.dumps(report.to_json(), ensure_ascii=False))
        return
    if not report.leftovers:
        click.echo("nothing to clean up")
        return
    done = "done" if report.applied else "to do (dry run; --apply does it)"
    for item in report.leftovers:
        shown = item.to_json(archive_dir)
        click.echo(f"{item.action}: {shown['path']} ({item.what})")
    click.echo(f"{counted(len(report.leftovers), 'leftover')}, {done}")
    if report.rebuilt_index:
        click.echo("the index was rebuilt (merged index files held rows of what was moved)")


@cli.command("timestamp")
@click.argument("captures", nargs=-1, metavar="[CAPTURE_ID_OR_MANIFEST]...")
@tsa_options
@click.option(
    "--again",
    is_flag=True,
    help="Ask an authority that stamped a capture already for another token (both kept).",
)
@click.option(
    "--custody",
    "custody_head",
    is_flag=True,
    help="Time-stamp the custody log's last event (after the captures named, if any; "
    "alone, no capture is stamped): verify then fails if the log is ever cut before it. "
    "Kept as ARCHIVE_DIR/custody/stamps/<seq>-<sha256>.<authority>.tsr.",
)
@archive_dir_option
@format_option("text", "json", default="text")
def timestamp_command(
    captures: tuple[str, ...],
    tsa: tuple[str, ...],
    tsa_ca: tuple[Path, ...],
    tsa_timeout: float,
    again: bool,
    custody_head: bool,
    archive_dir: Path,
    output_format: str,
) -> None:
    """Get RFC 3161 time-stamp tokens for captures signed earlier (all when none named).

    Each authority's token over the capture's manifest signature is checked on
    receipt and kept beside it as <capture_id>.manifest.json.sig.<authority>.tsr,
    with the authority's certificate chain under ARCHIVE_DIR/tsa/.  Captures an
    authority stamped already are skipped (--again asks anew).  Exit 1 if an
    authority failed for a capture; its earlier tokens and the capture are kept.

    --custody anchors the custody log's end: a token over its last event, so that
    removing events from the end later (which leaves no trace in the log itself)
    makes verify fail.  Run it after a batch of work, or on a schedule.

    \b
    Examples:
      archiver timestamp --tsa https://freetsa.org/tsr --tsa-ca freetsa-cacert.pem
      archiver timestamp 20200812100000-0123456789 --tsa http://timestamp.digicert.com
      archiver timestamp --custody --tsa https://freetsa.org/tsr
    """
    if not tsa:
        raise click.UsageError(
            "no time-stamping authority: give --tsa URL (or tsa in the config file's "
            "[timestamp] table)"
        )
    require_writable(archive_dir, "timestamp")  # its tokens are kept in the archive
    signer = custody_signer()
    stamper = make_timestamper(
        archive_dir, tsa, tsa_ca, tsa_timeout, mark_signed=signer is not None
    )
    assert stamper is not None
    manifests = signed_manifests(archive_dir, captures) if captures or not custody_head else []
    failed = False
    for manifest in manifests:
        problem = verification.signature_problem(manifest)
        if problem is not None:  # a token would vouch for a signature that does not hold
            failed = True
            click.echo(
                f"FAILED capture {capture_id_of(manifest)}: not time-stamped, its signature "
                f"does not hold ({problem}); run `archiver verify`",
                err=True,
            )
            continue
        stamps = stamper.stamp(manifest, again=again)
        record_stamps(archive_of(manifest), stamps, signer, None)
        failed = failed or not all(s.ok for s in stamps)
        if output_format == "json":
            for stamp in stamps:
                click.echo(json.dumps(stamp.to_json(), ensure_ascii=False))
            continue
        click.echo(f"capture {capture_id_of(manifest)}")
        for stamp in stamps:
            show_stamp(stamp)
    if custody_head and not stamp_custody_head(archive_dir, stamper, signer, again, output_format):
        failed = True
    if failed:
        sys.exit(EXIT_FAILED)


def stamp_custody_head(
    archive_dir: Path,
    stamper: timestamp.Timestamper,
    signer: sign.Signer | None,
    again: bool,
    output_format: str,
) -> bool:
    """Time-stamp the custody log's last event and log each token; whether all held."""
    log = custody.check(archive_dir)
    head = custody.head_entry(log)
    if head is None or head.event is None:
        raise click.UsageError(f"no custody log in {archive_dir} to time-stamp")
    seq, digest = head.event.seq, custody.entry_hash(head)
    if not log.ok:  # a token would vouch for a log that does not hold
        click.echo(
            f"FAILED custody log: not time-stamped, its chain is broken "
            f"({log.problems[0]}); run `archiver custody`",
            err=True,
        )
        return False
    stamps = stamper.stamp_head(archive_dir, head.raw, seq, again=again)
    head_name = f"custody log head, event {seq} (sha256 {digest})"
    record_stamps(archive_dir, stamps, signer, None, head=head_name)
    if output_format == "json":
        for stamp in stamps:
            doc = {"custody_event": seq, "custody_event_sha256": digest, **stamp.to_json()}
            del doc["capture_id"]
            click.echo(json.dumps(doc, ensure_ascii=False))
    else:
        click.echo(f"custody log, event {seq} (sha256 {digest})")
        for stamp in stamps:
            if stamp.ok or stamp.already:
                show_stamp(stamp)
            else:
                click.echo(
                    f"  NOT time-stamped by {stamp.authority}: {stamp.error}; "
                    "`archiver timestamp --custody` asks again",
                    err=True,
                )
    return all(s.ok for s in stamps)


def signed_manifests(archive_dir: Path, named: tuple[str, ...]) -> list[Path]:
    """The signed manifests of the captures named (ids or manifest files), or of all."""
    root = archive_dir / "warc"
    if not named:
        found = sorted(root.rglob(f"*{MANIFEST_SUFFIX}")) if root.is_dir() else []
        found = [m for m in found if signature_path(m).is_file()]
        if not found:
            raise click.UsageError(f"no signed capture in {archive_dir}")
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
            raise click.BadParameter(f"no capture {text} in {archive_dir}", param_hint="CAPTURE")
        for manifest in matches:
            if not signature_path(manifest).is_file():
                raise click.BadParameter(
                    f"{manifest} is not signed; nothing to time-stamp", param_hint="CAPTURE"
                )
            out.append(manifest)
    return out


@cli.command("custody")
@click.argument("capture", required=False, metavar="[CAPTURE_ID]")
@click.option(
    "--adopt",
    is_flag=True,
    help="Record the signed captures no event of the log records (an archive written "
    "before it had a custody log): one event, signed with your key, lists each with its "
    "files as they are now; verify then names them as predating the log.",
)
@archive_dir_option
@format_option("text", "json", default="text")
def custody_command(
    capture: str | None, adopt: bool, archive_dir: Path, output_format: str
) -> None:
    """The chain of custody: every action on the archive, or on one capture, in order.

    Each event (capture, timestamp, verify, extract, index import/rebuild/compact,
    key generation, cleanup) says when, who, on which host, with which version,
    the captures and files concerned with their SHA-256, and the result.  Events
    are signed and each holds the hash of the one before, so the chain is checked
    as it is shown (verify also compares it with the archive).  Exit 1 if it is
    broken.  The last line gives the hash of the last event: removing events from
    the end leaves no trace in the log itself, so anchor it with `archiver timestamp
    --custody --tsa URL` (verify then fails if the log is cut before a stamped
    event), or keep the hash elsewhere.

    \b
    Examples:
      archiver custody
      archiver custody 20200812100000-0123456789 --format json
      archiver custody --adopt
    """
    if not archive_dir.is_dir():
        raise click.UsageError(f"no archive at {archive_dir}")
    if capture is not None and not CAPTURE_ID.match(capture):
        raise click.BadParameter(f"{capture!r} is not a capture id", param_hint="CAPTURE_ID")
    if adopt:
        if capture is not None:
            raise click.UsageError("--adopt records every capture without an event; name none")
        require_writable(archive_dir, "custody --adopt")
        adopt_captures(archive_dir)
        return
    log = custody.check(archive_dir)
    events = custody.history(log, capture)
    if output_format == "json":
        click.echo(json.dumps(log.to_json(capture), ensure_ascii=False))
    elif not log.exists:
        click.echo(f"no custody log in {archive_dir} yet")
    else:
        for event in events:  # every value from the log escaped: it cannot forge a line
            who = printable(f"{event.operator or '-'}@{event.host}")
            signed = "" if event.signature else " (unsigned)"
            click.echo(
                f"{event.seq:>5}  {isoformat(event.time)}  {printable(event.action):<14} "
                f"{printable(event.result):<8} {who} {printable(event.tool)}{signed}"
            )
            if event.detail:
                click.echo(f"       {printable(event.detail)}")
            shown = event.captures if capture is None else ()
            if shown:
                more = f" and {len(shown) - 5} more" if len(shown) > 5 else ""
                click.echo(f"       captures: {printable(', '.join(shown[:5]))}{more}")
            for ref in event.files[:20] if capture is not None else ():
                click.echo(f"       {printable(ref.path)}  sha256 {printable(ref.sha256 or '-')}")
        if capture is not None and not events:
            click.echo(f"no event concerns capture {capture}")
        verdict = "intact" if log.ok else "BROKEN"
        click.echo(
            f"chain {verdict}: {event_count(len(log.events))} in {log.path}; "
            f"last event sha256 {log.head}"
        )
        stamped = sorted(custody.stamps_dir(archive_dir).glob("*.tsr"))
        last = f"last stamped: {stamped[-1].name.split('-')[0].lstrip('0')}" if stamped else ""
        click.echo(
            f"  anchor the end: `archiver timestamp --custody --tsa URL` ({last or 'never'})"
        )
        for message in log.problems:
            click.echo(f"  - {printable(message)}", err=True)
        for message in log.notes:
            click.echo(f"  note: {printable(message)}")
    if not log.ok:
        sys.exit(EXIT_FAILED)


def adopt_captures(archive_dir: Path) -> None:
    """``archiver custody --adopt``: one signed ``adopt`` event recording every signed
    capture that no signed event records, each checked first (its signature holds, its
    files match its manifest), with the SHA-256 of its files as they are now."""
    from archiver.ops import cleanup

    signer = custody_signer()
    if signer is None:
        click.echo(
            "error: adopting captures needs your signing key (none usable in the key store; "
            "an encrypted key needs ARCHIVER_KEY_PASSPHRASE): an unsigned event vouches for "
            "nothing",
            err=True,
        )
        sys.exit(EXIT_FAILED)
    try:
        with cleanup.capture_lock(archive_dir, exclusive=True, blocking=False) as alone:
            if not alone:
                click.echo(f"error: a capture is running in {archive_dir}; try later", err=True)
                sys.exit(EXIT_FAILED)
            ids, refs, refused = adoptable(archive_dir, signer)
            if not ids:
                click.echo("nothing to adopt: every signed capture has its event in the log")
                sys.exit(EXIT_FAILED if refused else EXIT_OK)
            event = custody.CustodyLog(archive_dir, signer, operator=default_operator()).append(
                "adopt",
                captures=ids,
                files=refs,
                detail=f"{counted(len(ids), 'capture')} found in the archive with no capture "
                "event (written before it had a custody log), recorded as they are now; what "
                "happened to them before is not logged",
            )
    except OSError as exc:
        click.echo(f"error: the custody log was not written: {exc}", err=True)
        sys.exit(EXIT_FAILED)
    digest = custody.entry_hash(custody.Entry(0, event.line()))
    click.echo(
        f"adopted {counted(len(ids), 'capture')} as predating the custody log: event "
        f"{event.seq} (sha256 {digest}), signed by {signer.fingerprint}"
    )
    sys.exit(EXIT_FAILED if refused else EXIT_OK)


def adoptable(
    archive_dir: Path, signer: sign.Signer
) -> tuple[list[str], list[custody.FileRef], int]:
    """The signed captures no signed event records, that can be adopted (their ids and
    files), and how many were refused (said on stderr)."""
    from archiver.trust.manifest import Manifest

    log = custody.check(archive_dir)
    if not log.ok:
        click.echo(f"error: the custody log is broken ({log.problems[0]}); nothing adopted",
                   err=True)  # fmt: skip
        sys.exit(EXIT_FAILED)
    recorded = custody.covered_ids(log)
    root = archive_dir / "warc"
    found = sorted(root.rglob(f"*{MANIFEST_SUFFIX}")) if root.is_dir() else []
    ids: list[str] = []
    refs: list[custody.FileRef] = []
    refused = 0
    for path in found:
        capture_id = capture_id_of(path)
        if capture_id in recorded or not signature_path(path).is_file():
            continue
        why = verification.signature_problem(path) or adoption_problem(path, archive_dir)
        if why is not None:
            refused += 1
            click.echo(f"not adopted: capture {capture_id}: {why}; see `archiver verify`", err=True)
            continue
        manifest = Manifest.from_bytes(path.read_bytes())
        ids.append(capture_id)
        refs.append(custody.FileRef.of(path, archive_dir))
        refs.append(custody.FileRef.of(signature_path(path), archive_dir))
        refs += [custody.FileRef(f.path, f.sha256) for f in manifest.files]
        if manifest.key_fingerprint != signer.fingerprint:
            click.echo(
                f"note: capture {capture_id} is signed by {manifest.key_fingerprint}, not by "
                f"your key {signer.fingerprint}: verify counts this event for it only with "
                "--trusted-key naming your key",
                err=True,
            )
    return ids, refs, refused


def adoption_problem(manifest_path: Path, archive_dir: Path) -> str | None:
    """Why a signed capture's files do not match its manifest (None when they do)."""
    from archiver.trust.manifest import Manifest, ManifestError

    try:
        manifest = Manifest.from_bytes(manifest_path.read_bytes())
    except (OSError, ManifestError) as exc:
        return str(exc)
    for entry in manifest.files:
        if custody.file_sha256(archive_dir / entry.path) != entry.sha256:
            return f"{entry.path} does not match its manifest"
    return None


@cli.group("index")
def index_group() -> None:
    """Maintain the Parquet index: rebuild it from the WARCs, import WARCs, compact it.

    \b
    Examples:
      archiver index rebuild
      archiver index import other-crawl.warc.gz
    """


@index_group.command("rebuild")
@archive_dir_option
@format_option("text", "json", default="text")
def index_rebuild(archive_dir: Path, output_format: str) -> None:
    """Regenerate the whole index from the archive's WARC files alone.

    \b
    Example:
      archiver index rebuild --archive-dir archives
    """
    if not archive_dir.is_dir():
        raise click.UsageError(f"no archive directory {archive_dir}")
    require_writable(archive_dir, "index rebuild")
    with scan_progress(output_format == "text" and sys.stderr.isatty()) as progress:
        count, reports = ingest.rebuild(archive_dir, progress)
    problems = [(r.path, o, m) for r in reports for o, m in r.problems]
    record_custody(
        archive_dir,
        "index rebuild",
        custody_signer(),
        result="ok" if not problems else "failed",
        detail=f"{counted(count, 'capture')} from {counted(len(reports), 'WARC file')}, "
        f"{counted(len(problems), 'problem')}",
    )
    if output_format == "json":
        doc = {
            "captures": count,
            "files": len(reports),
            "problems": [{"file": str(p), "offset": o, "problem": m} for p, o, m in problems],
        }
        click.echo(json.dumps(doc, ensure_ascii=False))
    else:
        click.echo(f"indexed {counted(count, 'capture')} from {counted(len(reports), 'WARC file')}")
        for path, offset, message in problems:
            click.echo(f"  {path} @{offset}: {message}", err=True)
    if problems:
        sys.exit(EXIT_FAILED)


@index_group.command("import")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--collection",
    default="default",
    show_default=True,
    help="Collection to import into: the files land in warc/<collection>/imported/.",
)
@archive_dir_option
@format_option("text", "json", default="text")
def index_import(
    paths: tuple[Path, ...], collection: str, archive_dir: Path, output_format: str
) -> None:
    """Copy WARC files made by other tools into the archive and index them.

    Every record is read and every digest it declares checked; broken records are
    reported by file and offset and indexed with their problem, and the records
    around them are indexed as usual.  Exit 1 if any file had a problem.

    \b
    Example:
      archiver index import crawl-2020.warc.gz --collection wget-crawls
    """
    try:
        CaptureOptions(collection=collection)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--collection") from exc
    require_writable(archive_dir, "index import")
    bad = 0
    with scan_progress(output_format == "text" and sys.stderr.isatty()) as progress:
        results = list(ingest.import_files(archive_dir, paths, collection, progress))
    imported = [
        item
        for item in results
        if not isinstance(item, tuple) and not item.already and item.stored_as is not None
    ]
    if imported:
        record_custody(
            archive_dir,
            "index import",
            custody_signer(),
            captures=[item.capture_id for item in imported if item.capture_id],
            files=[
                custody.FileRef.of(item.stored_as, archive_dir)
                for item in imported
                if item.stored_as is not None
            ],
            result="ok" if all(item.report.ok for item in imported) else "failed",
            detail=", ".join(str(item.source) for item in imported)[:4000],
        )
    for item in results:
        if isinstance(item, tuple):
            bad += 1
            source, reason = item
            if output_format == "json":
                click.echo(json.dumps({"file": str(source), "imported": False, "error": reason}))
            else:
                click.echo(f"FAILED {reason}", err=True)
            continue
        rep = item.report
        bad += 0 if rep.ok else 1
        if item.already and output_format != "json":
            click.echo(f"{item.source}: already imported as {item.capture_id} ({item.stored_as})")
            continue
        if output_format == "json":
            doc = {
                "file": str(item.source),
                "imported": True,
                "already": item.already,
                "stored_as": str(item.stored_as),
                "capture_id": item.capture_id,
                "records": rep.records,
                "ok": rep.ok,
                "problems": [{"offset": o, "problem": m} for o, m in rep.problems],
                "notes": [{"offset": o, "note": m} for o, m in rep.notes],
            }
            click.echo(json.dumps(doc, ensure_ascii=False))
            continue
        verdict = "ok" if rep.ok else counted(len(rep.problems), "problem")
        click.echo(
            f"{item.source}: {counted(rep.records, 'record')}, {verdict} -> {item.capture_id}"
        )
        for offset, message in rep.problems:
            click.echo(f"  {item.source} @{offset}: {message}", err=True)
        show_notes([f"{item.source} @{offset}: {message}" for offset, message in rep.notes], True)
    if bad:
        sys.exit(EXIT_FAILED)


@index_group.command("compact")
@archive_dir_option
def index_compact(archive_dir: Path) -> None:
    """Merge the per-capture index files into one file per table (faster queries).

    \b
    Example:
      archiver index compact
    """
    require_writable(archive_dir, "index compact")
    merged = Index(archive_dir).compact()
    record_custody(
        archive_dir,
        "index compact",
        custody_signer(),
        detail=", ".join(f"{table}: {counted(n, 'file')} merged" for table, n in merged.items()),
    )
    click.echo(", ".join(f"{table}: {counted(n, 'file')} merged" for table, n in merged.items()))


@cli.group("keys")
def keys_group() -> None:
    """Ed25519 signing keys: generate, list, export the public key.

    \b
    Examples:
      archiver keys generate
      archiver keys export > my-key.pub.pem
    """


@keys_group.command("generate")
@click.option(
    "--passphrase",
    "ask",
    is_flag=True,
    help="Encrypt the private key with a passphrase (prompted; or ARCHIVER_KEY_PASSPHRASE).",
)
@key_option
@key_store_option
@archive_dir_option
@format_option("text", "json", default="text")
def keys_generate(
    ask: bool,
    key_path: Path | None,
    key_store: Path | None,
    archive_dir: Path,
    output_format: str,
) -> None:
    """Create a new signing key (PKCS#8 PEM, mode 0600); the first one becomes the default.

    \b
    Examples:
      archiver keys generate
      archiver keys generate --passphrase
      ARCHIVER_KEY_PASSPHRASE=... archiver keys generate --key /secure/archiver.key.pem
    """
    passphrase = os.environ.get("ARCHIVER_KEY_PASSPHRASE") or None
    if ask and passphrase is None:
        passphrase = click.prompt("Passphrase", hide_input=True, confirmation_prompt=True)
    store = key_store or sign.default_store()
    try:
        info = sign.generate(store, passphrase, path=key_path)
    except (sign.KeyProblem, OSError) as exc:
        key_failure(exc)
        return
    record_custody(  # in the archive, if there is one: who made which key, when
        archive_dir,
        "key generation",
        sign.Signer.load(info.path, passphrase),
        files=[custody.FileRef(str(info.public_path), custody.file_sha256(info.public_path))],
        detail=f"signing key {info.fingerprint} (private key {info.path}, never copied)",
    )
    if output_format == "json":
        doc = {
            "fingerprint": info.fingerprint,
            "private_key": str(info.path),
            "public_key": str(info.public_path),
            "encrypted": info.encrypted,
            "default": info.default,
        }
        click.echo(json.dumps(doc))
        return
    click.echo(f"created signing key {info.fingerprint}")
    click.echo(f"  private key: {info.path} (mode 0600{', encrypted' if info.encrypted else ''})")
    click.echo(f"  public key:  {info.public_path}")


@keys_group.command("list")
@key_store_option
@format_option("text", "json", default="text")
def keys_list(key_store: Path | None, output_format: str) -> None:
    """The keys in the key store, the default first.

    \b
    Example:
      archiver keys list
    """
    store = key_store or sign.default_store()
    try:
        keys = sign.list_keys(store)
    except (sign.KeyProblem, OSError) as exc:
        key_failure(exc)
        return
    if output_format == "json":
        doc = [
            {
                "fingerprint": k.fingerprint,
                "private_key": str(k.path),
                "encrypted": k.encrypted,
                "default": k.default,
            }
            for k in keys
        ]
        click.echo(json.dumps(doc))
        return
    if not keys:
        click.echo(f"no keys in {store} (create one with `archiver keys generate`)")
    for k in keys:
        marks = ", ".join(m for m, on in (("default", k.default), ("encrypted", k.encrypted)) if on)
        click.echo(f"{k.fingerprint}  {k.path}" + (f"  ({marks})" if marks else ""))


@keys_group.command("export")
@click.argument("fingerprint", required=False)
@key_option
@key_store_option
@click.option(
    "-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="Write to FILE."
)
def keys_export(
    fingerprint: str | None, key_path: Path | None, key_store: Path | None, output: Path | None
) -> None:
    """Print the public key (SubjectPublicKeyInfo PEM) of a key, the default one if none
    is named, to give to whoever will verify your captures.

    \b
    Examples:
      archiver keys export
      archiver keys export 3f2a -o archivist.pub.pem
    """
    store = key_store or sign.default_store()
    try:
        info = sign.find_key(store, key_path, fingerprint)
        public = info.public_path
        if public.exists():
            pem = sign.public_pem(sign.load_public(public))
        else:
            pem = sign.public_pem(
                sign.load_private(info.path, passphrase_for(info.path)).public_key()
            )
    except (sign.KeyProblem, OSError) as exc:
        key_failure(exc)
        return
    if output is None:
        click.echo(pem.decode(), nl=False)
        return
    if output.exists():
        raise click.UsageError(f"{output} exists; remove it or choose another name")
    with atomic_path(output) as temp:
        temp.write_bytes(pem)


class TerminalProgress:
    """A one-line live display on stderr: bytes, rate and what is being fetched; for a
    batch, also how many of its pages are done."""

    def __init__(self, pages: int = 1) -> None:
        self.pages = pages
        self.pages_done = 0
        self._lock = threading.Lock()
        self._active: dict[str, int] = {}
        self._totals: dict[str, int] = {}  # declared sizes, where a response gave one
        self._bytes = 0
        self._done = 0
        self._start = time.monotonic()
        self._last = 0.0

    def started(self, url: str, role: str) -> None:
        with self._lock:
            self._active[url] = 0
        self._draw()

    def sized(self, url: str, total: int) -> None:
        with self._lock:
            self._totals[url] = total

    def advanced(self, url: str, nbytes: int) -> None:
        with self._lock:
            self._bytes += nbytes
            self._active[url] = self._active.get(url, 0) + nbytes
        self._draw()

    def finished(self, url: str) -> None:
        with self._lock:
            self._active.pop(url, None)
            self._totals.pop(url, None)
            self._done += 1
        self._draw()

    def _draw(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last < 0.2:
            return
        self._last = now
        with self._lock:
            elapsed = max(now - self._start, 1e-6)
            # the largest transfer of known size (a video, usually), else the first
            current = max(self._active, key=lambda u: self._totals.get(u, -1), default="")
            total = self._totals.get(current)
            share = ""
            if total:
                done = min(self._active[current], total)
                share = f" {human_bytes(done)} of {human_bytes(total)} ({100 * done // total}%)"
            batch = f"{self.pages_done}/{self.pages} pages, " if self.pages > 1 else ""
            line = (
                f"{batch}{self._done} fetched, {len(self._active)} active, "
                f"{human_bytes(self._bytes)}, {human_bytes(self._bytes / elapsed)}/s"
                f"{share}  {current}"
            )
        width = 118
        sys.stderr.write("\r" + line[:width].ljust(width))
        sys.stderr.flush()

    def redraw(self) -> None:
        self._draw(force=True)

    def page_done(self) -> None:
        """A page of the batch is done: clear the line for its report (drawn next)."""
        with self._lock:
            self.pages_done += 1
        self.close()

    def close(self) -> None:
        sys.stderr.write("\r" + " " * 118 + "\r")
        sys.stderr.flush()


class TerminalScanProgress:
    """A one-line display on stderr while WARC files are read: files, bytes, rate, file."""

    def __init__(self) -> None:
        self._files = 0
        self._bytes = 0
        self._current = ""
        self._start = time.monotonic()
        self._last = 0.0

    def file(self, path: Path) -> None:
        self._files += 1
        self._current = str(path)
        self._draw()

    def advanced(self, nbytes: int) -> None:
        self._bytes += nbytes
        self._draw()

    def _draw(self) -> None:
        now = time.monotonic()
        if now - self._last < 0.2:
            return
        self._last = now
        rate = self._bytes / max(now - self._start, 1e-6)
        line = (
            f"reading file {self._files}: {human_bytes(self._bytes)}, "
            f"{human_bytes(rate)}/s  {self._current}"
        )
        sys.stderr.write("\r" + line[:118].ljust(118))
        sys.stderr.flush()

    def close(self) -> None:
        sys.stderr.write("\r" + " " * 118 + "\r")
        sys.stderr.flush()


@contextmanager
def scan_progress(interactive: bool) -> Iterator[ingest.ScanProgress | None]:
    if not interactive:
        yield None
        return
    display = TerminalScanProgress()
    try:
        yield display
    finally:
        display.close()


@contextmanager
def progress_display(interactive: bool, pages: int = 1) -> Iterator[TerminalProgress | None]:
    if not interactive:
        yield None
        return
    display = TerminalProgress(pages)
    try:
        yield display
    finally:
        display.close()


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where Ctrl-C would be: the same clean stop, another exit status."""


def _on_sigterm(signum: int, frame: object) -> None:
    """SIGTERM (`kill`, a service manager, a container stopping) stops the command the way
    Ctrl-C does: running captures end as interrupted, their whole records kept under
    ``.open`` names; the exit status is 143 (128 + 15), as a shell reports it. Later
    SIGTERMs (and Ctrl-C) are ignored: raised again, they cut that stop short (a traceback from
    the threads' shutdown, or the process killed by the default action, exit -15)."""
    _terminated.set()
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the same for a Ctrl-C after it
    raise Terminated


_terminated = threading.Event()


def main() -> None:
    """Entry point: run the CLI; exit 130 on Ctrl-C, 143 on SIGTERM; no traceback unless
    --debug."""
    debug = "--debug" in sys.argv[1:]
    if not debug:  # library warnings (cryptography, pyarrow, …) never reach the terminal
        warnings.simplefilter("ignore")
    signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        code = cli.main(standalone_mode=False)
    except (click.exceptions.Abort, KeyboardInterrupt):  # Abort: click's KeyboardInterrupt
        code = EXIT_INTERRUPTED
    except click.UsageError as exc:  # one line, naming what was wrong
        click.echo(f"Error: {exc.format_message()}", err=True)
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except Exception as exc:  # the last line of defence: no traceback for users
        if debug:
            raise
        click.echo(f"error: {exc} (run with --debug for details)", err=True)
        sys.exit(EXIT_FAILED)
    if code == EXIT_INTERRUPTED:
        if _terminated.is_set():
            click.echo("terminated (SIGTERM)", err=True)
            code = EXIT_TERMINATED
        else:
            click.echo("interrupted", err=True)
    sys.exit(code if isinstance(code, int) else EXIT_OK)
