"""What a command takes from its environment: the archive it works on, the keys named by
ARCHIVER_KEY_STORE, ARCHIVER_KEY and ARCHIVER_KEY_PASSPHRASE, a passphrase asked at the
terminal; and how an action's custody note is said."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from archiver.archive import Archive, Logged
from archiver.trust import keys


def passphrase_for(path: Path) -> str | None:
    """ARCHIVER_KEY_PASSPHRASE, else a prompt (never echoed) if the key is encrypted and
    someone is at the terminal; None otherwise (loading an encrypted key then says why)."""
    passphrase = os.environ.get("ARCHIVER_KEY_PASSPHRASE") or None
    if passphrase is None and keys.is_encrypted(path) and sys.stdin.isatty():
        passphrase = click.prompt(f"Passphrase for {path}", hide_input=True, err=True)
    return passphrase


def custody_signer(key_store: Path | None = None) -> keys.Signer | None:
    """The key that signs custody events of commands that sign nothing else: the key
    store's default key, if it can be used without asking (unencrypted, or with
    ARCHIVER_KEY_PASSPHRASE); None otherwise, and the event is logged unsigned."""
    named = os.environ.get("ARCHIVER_KEY_STORE")
    store = key_store or (Path(named) if named else keys.default_store())
    key_file = os.environ.get("ARCHIVER_KEY")
    try:
        info = keys.find_key(store, Path(key_file) if key_file else None)
        passphrase = os.environ.get("ARCHIVER_KEY_PASSPHRASE") or None
        if info.encrypted and passphrase is None:
            return None
        return keys.Signer.load(info.path, passphrase)
    except (keys.KeyProblem, OSError):
        return None


def open_archive(archive_dir: Path, operator: str | None = None) -> Archive:
    """The archive a command works on; custody events signed as :func:`custody_signer`
    says (the key is loaded only when an event is written)."""
    return Archive(archive_dir, signer=custody_signer, operator=operator)


def say_logged(logged: Logged) -> None:
    """A custody event not written: why (a read-only copy, a log that failed), on stderr."""
    for note in logged.notes:
        click.echo(f"note: {note}", err=True)
    if logged.warning:
        click.echo(f"warning: {logged.warning}", err=True)


def say_read_only(archive: Archive, action: str) -> list[str]:
    """Say on stderr that a read-only copy was read as it is; the notes said."""
    notes = archive.read_only_notes(action)
    for note in notes:
        click.echo(f"note: {note}", err=True)
    return notes
