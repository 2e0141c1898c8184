"""What makes a capture the same on every run: a fixed clock, sequential record ids and
a signing key made from a fixed seed."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from archiver.trust.keys import Signer


class FixedClock:
    """Starts at a fixed moment and advances one millisecond per reading."""

    def __init__(self, start: datetime = datetime(2020, 8, 12, 10, 0, tzinfo=UTC)) -> None:
        self._counter = itertools.count()
        self.start = start

    def __call__(self) -> datetime:
        return self.start + timedelta(milliseconds=next(self._counter))


def sequential_ids(start: int = 1) -> Callable[[], str]:
    counter = itertools.count(start)
    return lambda: f"<urn:uuid:{uuid.UUID(int=next(counter))}>"


def fixed_signer(seed: int = 1) -> Signer:
    """A signing key made from a fixed seed: same fingerprint and signatures every run."""
    return Signer.of(Ed25519PrivateKey.from_private_bytes(bytes([seed]) * 32))
