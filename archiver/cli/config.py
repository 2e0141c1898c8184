"""The configuration file: defaults for command options, so they need not be typed each time.

``$ARCHIVER_CONFIG``, else ``~/.config/archiver/config.toml`` (``$XDG_CONFIG_HOME`` is
honoured).  A table named after a command gives defaults for its options (the names
as in ``--help``, with ``_`` for ``-``); the ``[timestamp]`` table's authorities and
roots also apply to ``capture`` and ``verify``::

    [timestamp]
    tsa = ["https://freetsa.org/tsr", "http://timestamp.digicert.com"]
    tsa_ca = ["/home/me/.config/archiver/freetsa-cacert.pem"]

    [capture]
    operator = "A. Archivist"

An option given on the command line wins over the file.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

from archiver.core.errors import UsageProblem

SHARED_WITH = {
    "capture": ("tsa", "tsa_ca", "tsa_timeout"),
    "verify": ("tsa_ca",),
    "report": ("tsa_ca",),
}


class ConfigError(UsageProblem, ValueError):
    """The configuration file cannot be read (the message names it)."""


def config_path() -> Path:
    named = os.environ.get("ARCHIVER_CONFIG")
    if named:
        return Path(named)
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "archiver" / "config.toml"


def load(path: Path | None = None) -> dict[str, dict[str, Any]]:
    """Option defaults per command (click's ``default_map``); {} when there is no file."""
    path = path or config_path()
    try:
        with path.open("rb") as handle:
            doc = tomllib.load(handle)
    except FileNotFoundError:
        if os.environ.get("ARCHIVER_CONFIG"):
            raise ConfigError(f"no configuration file {path} (ARCHIVER_CONFIG)") from None
        return {}
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not TOML: {exc}") from exc
    defaults: dict[str, dict[str, Any]] = {}
    for command, table in doc.items():
        if not isinstance(table, dict):
            raise ConfigError(f"{path}: {command} is not a table ([{command}])")
        defaults[command] = {name: _checked(path, command, name, v) for name, v in table.items()}
    stamping = defaults.get("timestamp", {})
    for command, names in SHARED_WITH.items():
        for name in names:
            if name in stamping:
                defaults.setdefault(command, {}).setdefault(name, stamping[name])
    return defaults


LISTS = ("tsa", "tsa_ca")
NUMBERS: tuple[str, ...] = ("tsa_timeout", "timeout", "max_time", "per_host_delay")
NUMBERS += ("min_rate_window",)
NUMBERS += ("max_capture_time", "live_duration")  # the capture's budget (archiver.capture.budget)
NUMBERS += ("browser_timeout",)
COUNTS = ("max_requests", "max_scroll")
SIZES = ("max_capture_size",)  # bytes, or text such as "20G"
FLAGS = ("allow_private", "browser", "all_renditions")


def _checked(path: Path, command: str, name: str, value: Any) -> Any:
    """A value of the right shape for its option; a :class:`ConfigError` naming it."""
    where = f"{path}: [{command}] {name}"
    if name in LISTS:
        if isinstance(value, str):
            return [value]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{where} must be text or a list of text")
        return value
    if name in NUMBERS and (isinstance(value, bool) or not isinstance(value, int | float)):
        raise ConfigError(f"{where} must be a number of seconds")
    if name in COUNTS and (isinstance(value, bool) or not isinstance(value, int)):
        raise ConfigError(f"{where} must be a whole number")
    if name in SIZES and (isinstance(value, bool) or not isinstance(value, int | str)):
        raise ConfigError(f'{where} must be a number of bytes or a size such as "20G"')
    if name in FLAGS and not isinstance(value, bool):
        raise ConfigError(f"{where} must be true or false")
    if isinstance(value, dict | list) and name not in LISTS:
        raise ConfigError(f"{where} must be a single value")
    return value
