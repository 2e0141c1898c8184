"""``archiver keys``: Ed25519 signing keys: generate, list, export the public key."""

from __future__ import annotations

import json
import os
from pathlib import Path

import click

from archiver.cli.context import open_archive, passphrase_for, say_logged
from archiver.cli.options import archive_dir_option, format_option, key_option, key_store_option
from archiver.core.atomic import atomic_path
from archiver.core.errors import Failure
from archiver.trust import keys


@click.group("keys")
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
    store = key_store or keys.default_store()
    try:
        info = keys.generate(store, passphrase, path=key_path)
    except (keys.KeyProblem, OSError) as exc:
        raise Failure(str(exc)) from exc
    # in the archive, if there is one: who made which key, when
    say_logged(open_archive(archive_dir).record_key(info, keys.Signer.load(info.path, passphrase)))
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
    store = key_store or keys.default_store()
    try:
        found = keys.list_keys(store)
    except (keys.KeyProblem, OSError) as exc:
        raise Failure(str(exc)) from exc
    if output_format == "json":
        doc = [
            {
                "fingerprint": k.fingerprint,
                "private_key": str(k.path),
                "encrypted": k.encrypted,
                "default": k.default,
            }
            for k in found
        ]
        click.echo(json.dumps(doc))
        return
    if not found:
        click.echo(f"no keys in {store} (create one with `archiver keys generate`)")
    for k in found:
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
    store = key_store or keys.default_store()
    try:
        info = keys.find_key(store, key_path, fingerprint)
        public = info.public_path
        if public.exists():
            pem = keys.public_pem(keys.load_public(public))
        else:
            pem = keys.public_pem(
                keys.load_private(info.path, passphrase_for(info.path)).public_key()
            )
    except (keys.KeyProblem, OSError) as exc:
        raise Failure(str(exc)) from exc
    if output is None:
        click.echo(pem.decode(), nl=False)
        return
    if output.exists():
        raise click.UsageError(f"{output} exists; remove it or choose another name")
    with atomic_path(output) as temp:
        temp.write_bytes(pem)
