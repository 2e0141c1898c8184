"""The ``archiver`` command: a thin layer over the library (:class:`archiver.Archive`).

Each command parses its options, calls the library, and renders the outcome.  Exit
codes are decided here and nowhere else: 0 success, 1 a failure
(:class:`~archiver.core.errors.Failure`, or an outcome that failed: a capture, a
verification), 2 a usage problem (:class:`~archiver.core.errors.UsageProblem`, or a
bad option), 130 Ctrl-C, 143 SIGTERM.  No traceback reaches the user unless ``--debug``.
"""

from __future__ import annotations

import signal
import sys
import threading
import warnings
from typing import Any

import click

from archiver import __version__
from archiver.cli import config as configuration
from archiver.cli.commands.capture import EXIT_INTERRUPTED, capture
from archiver.cli.commands.custody import custody_command, timestamp_command
from archiver.cli.commands.keys import keys_group
from archiver.cli.commands.read import extract, list_command, query_command, show_command
from archiver.cli.commands.replay import replay_command
from archiver.cli.commands.report import report_command
from archiver.cli.commands.upkeep import cleanup_command, index_group
from archiver.cli.commands.verify import verify_command
from archiver.cli.commands.wacz import export_command, import_command
from archiver.core.errors import EXIT_FAILED, Failure, UsageProblem

EXIT_OK = 0
EXIT_TERMINATED = 143  # 128 + SIGTERM, as shells report it


class Failed(click.ClickException):
    """A library :class:`Failure`, said as ``error: …`` with exit status 1."""

    exit_code = EXIT_FAILED

    def show(self, file: Any = None) -> None:
        click.echo(f"error: {self.format_message()}", err=True)


class ArchiverGroup(click.Group):
    """The top-level group: the one place library errors become exit codes."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except UsageProblem as exc:
            if exc.hint:
                raise click.BadParameter(str(exc), param_hint=exc.hint) from exc
            raise click.UsageError(str(exc)) from exc
        except Failure as exc:
            if exc.unexpected:  # said by main() with the --debug hint, as any other error
                raise
            raise Failed(str(exc)) from exc


@click.group(cls=ArchiverGroup, context_settings={"help_option_names": ["-h", "--help"]})
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


for command in (
    capture,
    query_command,
    list_command,
    show_command,
    extract,
    report_command,
    verify_command,
    export_command,
    import_command,
    replay_command,
    cleanup_command,
    timestamp_command,
    custody_command,
    index_group,
    keys_group,
):
    cli.add_command(command)


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
