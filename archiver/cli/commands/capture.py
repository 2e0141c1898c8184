"""``archiver capture``: pages, their requisites and every video they reference."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from archiver.archive import Archive
from archiver.capture import batch
from archiver.cli.context import passphrase_for, say_logged
from archiver.cli.options import (
    Seconds,
    Size,
    archive_dir_option,
    key_option,
    key_store_option,
    tsa_options,
)
from archiver.cli.progress import TerminalProgress, progress_display
from archiver.cli.render import report
from archiver.core.errors import EXIT_FAILED, UsageProblem
from archiver.core.model import (
    DEFAULT_BROWSER_TIMEOUT,
    DEFAULT_CONCURRENCY,
    DEFAULT_MAX_CAPTURE_SIZE,
    DEFAULT_MAX_CAPTURE_TIME,
    DEFAULT_MAX_REDIRECTS,
    DEFAULT_MAX_REQUESTS,
    DEFAULT_MAX_SCROLL,
    DEFAULT_MIN_RATE,
    DEFAULT_MIN_RATE_WINDOW,
    DEFAULT_TIMEOUT,
    DEFAULT_USER_AGENT,
    DEFAULT_WARC_MAX_SIZE,
    Capture,
    CaptureOptions,
    CaptureStatus,
)
from archiver.trust.keys import KeyInfo
from archiver.trust.timestamp import timestamper
from archiver.web.http import REDACTED

EXIT_INTERRUPTED = 130


@click.command()
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
    "--all-renditions",
    is_flag=True,
    help="Fetch every rendition of an HLS or DASH stream (each variant, each audio "
    "track), not only the best. By default the best is kept whole and the manifest's "
    "record names it (WARC-JSON-Metadata), so that replay tools that rewrite manifests "
    "(pywb, ReplayWeb.page) show that one. Config file: [capture] all_renditions = true.",
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
    "--browser",
    is_flag=True,
    help="Load the page in Chromium (Debian's chromium package) so scripts run, embeds "
    "are built and media play; every request it makes is fetched and recorded by "
    "archiver as in HTTP mode, and screenshots, a PDF, the rendered DOM and text are "
    "kept. Config file: [capture] browser = true.",
)
@click.option(
    "--browser-path",
    type=click.Path(dir_okay=False),
    envvar="ARCHIVER_BROWSER",
    help="The Chromium to run (default: chromium, chromium-browser or google-chrome on "
    "PATH). Environment: ARCHIVER_BROWSER.",
)
@click.option(
    "--browser-timeout",
    type=click.FloatRange(min=0, min_open=True, max=86400),
    default=DEFAULT_BROWSER_TIMEOUT,
    show_default=True,
    help="Seconds to wait for the page to load, and again for its network to go quiet; "
    "a page still busy then is captured as it is, and the capture says so.",
)
@click.option(
    "--max-scroll",
    type=click.IntRange(min=0, max=100_000),
    default=DEFAULT_MAX_SCROLL,
    show_default=True,
    help="Viewport-high steps to scroll down so lazy content loads (infinite scroll stops here).",
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
    /,
    urls: tuple[str, ...],
    input_file: Path | None,
    archive_dir: Path,
    output_format: str,
    jobs: int,
    per_host_delay: float,
    recapture: bool,
    tsa: tuple[str, ...],
    tsa_ca: tuple[Path, ...],
    tsa_timeout: float,
    key_path: Path | None,
    key_store: Path | None,
    **settings: Any,
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
            raise UsageProblem(str(exc), hint="--input") from exc
        requested += jobs_read
    if not requested and not problems:
        raise click.UsageError("no URL given (pass URLs or --input FILE)")
    checked = batch.check_jobs(requested, input_file=input_file, problems=problems)
    say_credentials(checked)
    if not settings["allow_private"]:  # a seed on the archivist's own network
        batch.refuse_private(checked)
    options = capture_options(archive_dir, settings)
    archive = Archive(archive_dir, operator=options.operator, on_log=say_logged)
    plan = archive.plan(checked, options, recapture=recapture, checked=True)
    archive.require_writable("a capture")  # before a key is made or a page fetched
    stamper = timestamper(tsa, tsa_ca, tsa_timeout)
    signer, created = archive.capture_signer(key_path, key_store, passphrase_for)
    summary = say_plan(plan, created, output_format)
    interactive = output_format == "text" and sys.stderr.isatty()
    failed = interrupted = False
    with progress_display(interactive, len(plan.todo)) as progress:
        try:
            for job, result in archive.capture(
                plan, signer=signer, timestamper=stamper, progress=progress,
                workers=jobs, per_host_delay=per_host_delay,
            ):  # fmt: skip
                failed = done(job.url, result, summary, output_format, progress) or failed
                interrupted = interrupted or result.interrupted
        except KeyboardInterrupt:
            interrupted = True
    if len(plan.jobs) > 1:
        say_batch(summary, len(plan.jobs), output_format)
    if interrupted:
        ctx.exit(EXIT_INTERRUPTED)
    if failed:
        ctx.exit(EXIT_FAILED)


def say_credentials(jobs: list[batch.Job]) -> None:
    """Credentials taken out of URLs: where they go, and that they are kept nowhere."""
    for job in jobs:
        if job.credentials is not None:
            click.echo(
                f"note: {job.url}: the user name and password given in the URL are not "
                f"stored or shown; they are sent as HTTP Basic authentication to "
                f"{job.credentials.origin} only (never to another origin, nor after a "
                f"redirect to one) and recorded as 'Authorization: {REDACTED}'",
                err=True,
            )


def say_plan(plan: batch.Batch, created: KeyInfo | None, output_format: str) -> batch.BatchSummary:
    """What is said before the first fetch: a signing key created, the jobs of a batch
    skipped (counted in the summary returned)."""
    if created is not None:
        click.echo(
            f"created signing key {created.fingerprint} in {created.path} (none "
            "existed); every capture is signed with it. Give its public key "
            "(`archiver keys export`) to whoever will verify your captures.",
            err=True,
        )
    summary = batch.BatchSummary()
    for job, before, reason in plan.skipped:
        summary.add(job.url, "skipped", before, reason)
        if output_format == "text":
            click.echo(f"skipped {job.url}: {reason}", err=True)
    return summary


def capture_options(archive_dir: Path, settings: dict[str, Any]) -> CaptureOptions:
    """The options of ``capture`` as the library takes them (0 is "no limit")."""
    try:
        options = CaptureOptions(
            archive_dir=archive_dir,
            min_rate=settings.pop("min_rate") or None,
            max_requests=settings.pop("max_requests") or None,
            max_capture_size=settings.pop("max_capture_size") or None,
            max_capture_time=settings.pop("max_capture_time") or None,
            warc_max_size=settings.pop("warc_size"),
            dedup=not settings.pop("no_dedup"),
            **settings,
        )
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    if options.cookies is not None:
        import http.cookiejar

        from archiver.web.media import load_cookies

        try:
            load_cookies(options.cookies)
        except (OSError, http.cookiejar.LoadError) as exc:
            raise click.BadParameter(
                f"{options.cookies} is not a Netscape cookies file: {exc}",
                param_hint="--cookies",
            ) from exc
    return options


def done(
    url: str,
    result: Capture,
    summary: batch.BatchSummary,
    output_format: str,
    progress: TerminalProgress | None,
) -> bool:
    """Say how one capture ended; whether it failed."""
    if progress is not None:
        progress.page_done()
    trouble = result.failure or result.index_error or result.sign_error
    if result.custody_error:  # the capture logs its own event (archiver.trust.custody)
        click.echo(
            f"warning: {result.custody_error}; verify will fail capture "
            f"{result.capture_id} as recorded by no custody event until "
            "`archiver custody --adopt` records it",
            err=True,
        )
    problems = "; ".join(f"{e.url}: {e.reason}" for e in result.errors[:3])
    summary.add(url, result.status.value, result.capture_id, trouble or problems or None)
    if output_format == "json":
        click.echo(json.dumps(result.summary(), ensure_ascii=False))
    else:
        report(result)
    if progress is not None:
        progress.redraw()  # the count of pages done, under the report
    return bool(result.status is CaptureStatus.FAILED or result.index_error or result.sign_error)


def say_batch(summary: batch.BatchSummary, count: int, output_format: str) -> None:
    if output_format == "json":
        click.echo(json.dumps(summary.to_json(), ensure_ascii=False))
    else:
        counts = ", ".join(f"{n} {k}" for k, n in summary.counts().items())
        click.echo(f"batch of {count}: {counts}", err=True)
