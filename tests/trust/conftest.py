"""Fixtures of the trust tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from tests.support.deterministic import fixed_signer


@pytest.fixture
def key_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The archivist's key (fixed_signer()) as the user's key, for CLI commands that sign."""
    path = tmp_path / "archivist.key.pem"
    path.write_bytes(
        fixed_signer().key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    monkeypatch.setenv("ARCHIVER_KEY", str(path))
    return path
