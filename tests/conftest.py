"""Shared fixtures: an empty key store of each test's own, a real fixture site on loopback,
and a capturer with a deterministic clock, ids and key (tests/support/deterministic.py)."""

from __future__ import annotations

import compileall
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from archiver.capture.run import Capturer
from archiver.core.model import CaptureOptions
from archiver.trust.keys import Signer
from tests.support.deterministic import FixedClock, fixed_signer, sequential_ids
from tests.support.paths import ROOT
from tests.support.site import FixtureSite


def pytest_sessionstart(session: pytest.Session) -> None:
    """Compile the package once, so that the hundreds of ``python -m archiver`` processes
    the tests start read bytecode instead of compiling every module again (about 0.1 s
    each where PYTHONDONTWRITEBYTECODE is set, as on CI machines; an editable install
    is never compiled by pip). A tree that cannot be written is used as it is."""
    compileall.compile_dir(ROOT / "archiver", quiet=2)  # says nothing, never raises


@pytest.fixture(autouse=True)
def isolated_keys(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """Every test gets an empty key store of its own; the user's keys are never touched."""
    store = tmp_path_factory.mktemp("key-store")
    monkeypatch.setenv("ARCHIVER_KEY_STORE", str(store))
    xdg = store.parent / (store.name + "-xdg")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(xdg))
    # the fixture sites are on 127.0.0.1, which captures refuse by default: opt in, as an
    # intranet user would (tests/web/test_private.py checks the refusal with its own config)
    (xdg / "archiver").mkdir(parents=True, exist_ok=True)
    (xdg / "archiver" / "config.toml").write_text("[capture]\nallow_private = true\n", "utf-8")
    for name in ("ARCHIVER_KEY", "ARCHIVER_KEY_PASSPHRASE"):
        monkeypatch.delenv(name, raising=False)
    return store


@pytest.fixture
def site() -> Iterator[FixtureSite]:
    with FixtureSite(slow_seconds=0.3, large_video_bytes=3 * 1024 * 1024 + 17) as s:
        yield s


@pytest.fixture
def make_capturer(tmp_path: Path) -> Callable[..., Capturer]:
    def make(signer: Signer | None = fixed_signer(), **overrides: object) -> Capturer:  # noqa: B008
        options = {
            "archive_dir": tmp_path / "archives",
            "timeout": 1.5,
            "concurrency": 4,
            "allow_private": True,  # the fixture sites are on 127.0.0.1
        }
        options.update(overrides)
        return Capturer(
            CaptureOptions(**options),  # type: ignore[arg-type]
            clock=FixedClock(),
            new_id=lambda moment: "20200812100000-0123456789",
            new_record_id=sequential_ids(),
            hostname="test-host",
            signer=signer,
        )

    return make


@pytest.fixture(scope="session")
def chromium() -> str:
    """The system Chromium browser tests run (Debian's ``chromium``; ``.ci/run`` installs
    it). Without one they are skipped, saying what to install, except on CI (``CI`` set),
    where a missing browser fails them."""
    import os
    import shutil

    found = os.environ.get("ARCHIVER_BROWSER") or shutil.which("chromium")
    if found:
        return found
    message = "no Chromium: install Debian's chromium package (apt install chromium)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)
