"""The one exception hierarchy of the library: what went wrong, and whose fault it was.

Every error the library raises for a caller to act on is an :class:`ArchiverError`, and
one of two kinds: a :class:`UsageProblem` (the request itself is wrong: a bad URL, an
unknown capture id, an unreadable input file; the command-line tool exits 2) or a
:class:`Failure` (the request was fine and the work could not be done: a key that
cannot be used, a capture running, an archive that cannot be written; exit 1).

Outcomes are not exceptions: a capture that failed is ``Capture.status``, a verification
that found problems is a ``Report``.  Only the command line turns these kinds into exit
codes, in one place (``archiver.cli.app``).
"""

from __future__ import annotations

EXIT_FAILED = 1
EXIT_USAGE = 2


class ArchiverError(Exception):
    """Something the caller must hear about; ``exit_code`` is what the CLI exits with."""

    exit_code = EXIT_FAILED


class UsageProblem(ArchiverError):
    """The request is wrong (exit 2). ``hint`` names the argument or option concerned
    (``--input``, ``URL``), when there is one."""

    exit_code = EXIT_USAGE

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint


class Failure(ArchiverError):
    """The request was right, and it could not be carried out (exit 1).

    ``unexpected``: a failure no caller is meant to meet (damaged files read where the
    work does not check them, an internal step gone wrong): the CLI says it with a hint
    to run with ``--debug``, which shows its traceback."""

    exit_code = EXIT_FAILED
    unexpected = False
