"""Ed25519 signing keys and signatures: key stores, fingerprints, signing and checking.

Keys live in a key store, ``~/.config/archiver/keys/`` (``$XDG_CONFIG_HOME`` is
honoured) unless a key file is named with ``--key`` or ``ARCHIVER_KEY``:

- ``<fingerprint>.key.pem``: the private key, PKCS#8 PEM, mode 0600, encrypted
  when a passphrase is given (``BEGIN ENCRYPTED PRIVATE KEY``);
- ``<fingerprint>.pub.pem``: its public key, SubjectPublicKeyInfo PEM;
- ``default``: the fingerprint of the key used when none is named (the first key
  generated becomes the default);
- ``<fingerprint>.p384.key.pem`` and ``.p384.pub.pem`` (and its binding statement):
  the ECDSA P-384 key that signs WACZ files for this key's holder, made on first use by
  :mod:`archiver.trust.wacz_signing`.  These are not capture keys: :func:`list_keys`
  passes them by.

The fingerprint is the SHA-256, in lowercase hex, of the raw 32-byte public key.
A signature is the raw 64-byte Ed25519 signature over the exact bytes signed, so
``openssl pkeyutl -verify -pubin -inkey KEY.pub.pem -rawin -in FILE -sigfile FILE.sig``
checks it without any of our code.  Private keys are never logged, printed or
written anywhere but their own file.  (All of archiver's cryptography is in
:mod:`archiver.trust`: here, and :mod:`~archiver.trust.rfc3161` for time-stamp tokens.)
"""

from __future__ import annotations

import errno
import hashlib
import os
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from archiver.core.atomic import flocked, fsync_dir, rename_no_replace
from archiver.core.errors import Failure

PublicKey = Ed25519PublicKey  # what verifies a signature (other modules name it so)

KEY_SUFFIX = ".key.pem"
_PEM_LIMIT = 64 * 1024
PUB_SUFFIX = ".pub.pem"
# the WACZ-signing key beside an Ed25519 key (archiver.trust.wacz_signing): its name
# ends in KEY_SUFFIX too, so the store's listing must know to pass it by
P384_KEY_SUFFIX = ".p384" + KEY_SUFFIX
DEFAULT_FILE = "default"


class KeyProblem(Failure):
    """A key cannot be used: missing, unreadable, encrypted with another passphrase,
    or not an Ed25519 key.  The message names the file."""


@dataclass(frozen=True)
class KeyInfo:
    """A key in a store (or named by path): where it is and who it is."""

    fingerprint: str
    path: Path  # the private key file
    encrypted: bool
    default: bool = False

    @property
    def public_path(self) -> Path:
        return public_path_for(self.path)


def default_store() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "archiver" / "keys"


def public_path_for(private: Path) -> Path:
    name = private.name.removesuffix(KEY_SUFFIX).removesuffix(".pem")
    return private.with_name(name + PUB_SUFFIX)


def fingerprint(public: Ed25519PublicKey) -> str:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()


def public_pem(public: Ed25519PublicKey) -> bytes:
    return public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _write_new(path: Path, data: bytes, mode: int) -> None:
    """Create ``path`` with ``mode`` from the start (never briefly readable by others),
    whole or not at all, and never over an existing file."""
    temp = path.with_name(f".tmp-{secrets.token_hex(6)}-{path.name}")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        os.fchmod(fd, mode)  # the umask may have narrowed it; never widened
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        rename_no_replace(temp, path)
    finally:
        temp.unlink(missing_ok=True)
    fsync_dir(path.parent)


def generate(store: Path, passphrase: str | None = None, *, path: Path | None = None) -> KeyInfo:
    """Create a new Ed25519 key in ``store`` (or at ``path``); the first becomes the default."""
    key = Ed25519PrivateKey.generate()
    fp = fingerprint(key.public_key())
    encryption: serialization.KeySerializationEncryption = serialization.NoEncryption()
    if passphrase:
        encryption = serialization.BestAvailableEncryption(passphrase.encode("utf-8"))
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )
    target = path or store / f"{fp}{KEY_SUFFIX}"
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    if target.exists():
        raise KeyProblem(f"{target} exists; refusing to overwrite a key")
    _write_new(target, pem, 0o600)
    _write_new(public_path_for(target), public_pem(key.public_key()), 0o644)
    is_default = False
    if path is None and not (store / DEFAULT_FILE).exists():
        _write_new(store / DEFAULT_FILE, (fp + "\n").encode(), 0o644)
        is_default = True
    return KeyInfo(fp, target, bool(passphrase), is_default)


def ensure_key(store: Path, passphrase: str | None = None) -> KeyInfo | None:
    """Create the store's first key unless it has one; the key created, or None.

    Two first captures started at once must not both create a default key: the
    store is locked while one looks and creates.
    """
    store.mkdir(parents=True, exist_ok=True, mode=0o700)
    with flocked(store / ".lock", exclusive=True):
        if list_keys(store):
            return None
        return generate(store, passphrase)


def is_encrypted(path: Path) -> bool:
    try:
        head = path.read_bytes()[:64]
    except OSError as exc:
        raise KeyProblem(f"cannot read the key {path}: {exc.strerror or exc}") from exc
    return b"ENCRYPTED" in head


def load_private(path: Path, passphrase: str | None) -> Ed25519PrivateKey:
    """The private key in ``path``; any problem is a :class:`KeyProblem` naming the file."""
    key = load_private_any(path, passphrase)
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyProblem(f"{path} is not an Ed25519 key ({type(key).__name__})")
    return key


def load_private_any(path: Path, passphrase: str | None) -> PrivateKeyTypes:
    """The private key in ``path``, of whatever type: the one reader of key files, so
    that every key (the Ed25519 one and the P-384 one beside it) is refused with the
    same words.  The caller checks the type."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise KeyProblem(f"cannot read the key {path}: {exc.strerror or exc}") from exc
    encrypted = b"ENCRYPTED" in data[:64]
    if encrypted and not passphrase:
        raise KeyProblem(
            f"the key {path} is encrypted: give its passphrase (prompt, or ARCHIVER_KEY_PASSPHRASE)"
        )
    secret = passphrase.encode("utf-8") if encrypted and passphrase else None
    try:
        key = serialization.load_pem_private_key(data, password=secret)
    except (ValueError, TypeError) as exc:
        if encrypted:
            raise KeyProblem(f"wrong passphrase for the key {path}") from exc
        raise KeyProblem(f"{path} is not a PEM private key") from exc
    except UnsupportedAlgorithm as exc:
        raise KeyProblem(f"{path} holds a key of an unsupported type") from exc
    return key


def load_public(path: Path) -> Ed25519PublicKey:
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):  # a FIFO or a device would hang or flood us
            raise OSError(errno.EINVAL, "not a regular file")
        if info.st_size > _PEM_LIMIT:
            raise OSError(errno.EFBIG, "too large for a public key")
        key = serialization.load_pem_public_key(path.read_bytes())
    except OSError as exc:
        raise KeyProblem(f"cannot read the public key {path}: {exc.strerror or exc}") from exc
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise KeyProblem(f"{path} is not a PEM public key") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise KeyProblem(f"{path} is not an Ed25519 public key")
    return key


def list_keys(store: Path) -> list[KeyInfo]:
    """The keys of a store, default first."""
    if not store.is_dir():
        return []
    default = _default_fingerprint(store)
    keys = []
    for path in sorted(store.glob(f"*{KEY_SUFFIX}")):
        if path.name.endswith(P384_KEY_SUFFIX):  # a WACZ-signing key, not a capture key
            continue
        pub = public_path_for(path)
        fp = fingerprint(load_public(pub)) if pub.exists() else path.name.removesuffix(KEY_SUFFIX)
        keys.append(KeyInfo(fp, path, is_encrypted(path), fp == default))
    return sorted(keys, key=lambda k: (not k.default, k.fingerprint))


def _default_fingerprint(store: Path) -> str | None:
    try:
        return (store / DEFAULT_FILE).read_text("utf-8").strip() or None
    except OSError:
        return None


def find_key(
    store: Path, key_path: Path | None = None, fingerprint_prefix: str | None = None
) -> KeyInfo:
    """The key to use: a named file, else a fingerprint (or unique prefix) in the store,
    else the store's default.  A missing or ambiguous key is a :class:`KeyProblem`."""
    if key_path is not None:
        if not key_path.is_file():
            raise KeyProblem(f"no key file {key_path}")
        pub = public_path_for(key_path)
        fp = fingerprint(load_public(pub)) if pub.exists() else ""
        return KeyInfo(fp, key_path, is_encrypted(key_path))
    keys = list_keys(store)
    if fingerprint_prefix:
        prefix = fingerprint_prefix.lower()
        found = [k for k in keys if k.fingerprint.startswith(prefix)]
        if len(found) != 1:
            what = "no key" if not found else "more than one key"
            raise KeyProblem(f"{what} in {store} has a fingerprint starting with {prefix!r}")
        return found[0]
    defaults = [k for k in keys if k.default]
    if defaults:
        return defaults[0]
    if len(keys) == 1:
        return keys[0]
    if not keys:
        raise KeyProblem(f"no signing key in {store}; create one with `archiver keys generate`")
    raise KeyProblem(f"several keys in {store} and no default; name one with --key")


def sign(key: Ed25519PrivateKey, data: bytes) -> bytes:
    """The raw 64-byte Ed25519 signature of ``data``."""
    return key.sign(data)


def signature_holds(public: Ed25519PublicKey, signature: bytes, data: bytes) -> bool:
    try:
        public.verify(signature, data)
    except InvalidSignature:
        return False
    return True


@dataclass(frozen=True)
class Signer:
    """A private key loaded for signing, and who it is."""

    key: Ed25519PrivateKey
    fingerprint: str

    @classmethod
    def load(cls, path: Path, passphrase: str | None) -> Signer:
        return cls.of(load_private(path, passphrase))

    @classmethod
    def of(cls, key: Ed25519PrivateKey) -> Signer:
        return cls(key, fingerprint(key.public_key()))

    def sign(self, data: bytes) -> bytes:
        return sign(self.key, data)

    def publish(self, path: Path) -> None:
        """Put the public key at ``path`` (an archive's ``keys/<fingerprint>.pub.pem``).

        An existing file is left alone if it holds this key; if it holds another, that
        is a :class:`KeyProblem` (the archive's copy is never replaced).
        """
        pem = public_pem(self.key.public_key())
        if path.exists():
            try:
                present = fingerprint(load_public(path))
            except KeyProblem:
                present = None
            if present != self.fingerprint:
                raise KeyProblem(f"{path} exists and does not hold the key {self.fingerprint}")
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            _write_new(path, pem, 0o644)
        except FileExistsError:  # another capture published it at the same moment
            self.publish(path)
