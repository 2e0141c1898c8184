"""Options several commands share, and the parameter types they are read with."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import click

from archiver.trust import timestamp

F = TypeVar("F", bound=Callable[..., Any])


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


def format_option(*choices: str, default: str = "table") -> Callable[[F], F]:
    return click.option(
        "--format",
        "output_format",
        type=click.Choice(list(choices)),
        default=default,
        show_default=True,
        help="Output format.",
    )


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
