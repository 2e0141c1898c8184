"""Fixtures of the read-only copy tests (test_readonly, test_review_readonly): an archive
of two real captures made by the command line, and a read-only bind mount."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.rawserver import raw_server, site
from tests.support.readonly import ROUTES, run


@pytest.fixture(scope="module")
def captured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str, list[str]]]:
    """An archive of two real captures made by the CLI (with their custody events):
    (archive, base URL, capture ids). Tests read copies of it."""
    home = tmp_path_factory.mktemp("readonly-capture")
    config = home / "xdg" / "archiver"
    config.mkdir(parents=True)
    (config / "config.toml").write_text("[capture]\nallow_private = true\n", "utf-8")
    env = {"ARCHIVER_KEY_STORE": str(home / "keys"), "XDG_CONFIG_HOME": str(home / "xdg")}
    archive = home / "archives"
    ids = []
    with raw_server(site(ROUTES)) as base:
        for path in ("/", "/other"):
            done = run(
                "capture", base + path, "--archive-dir", str(archive), "--format", "json", env=env
            )
            assert done.returncode == 0, done.stderr
            ids.append(json.loads(done.stdout.splitlines()[-1])["capture_id"])
        yield archive, base, ids


@pytest.fixture
def read_only(tmp_path: Path) -> Iterator[Callable[[Path], Path]]:
    """Bind-mount a folder read-only (needs root, as CI has); unmounted afterwards."""
    mounted: list[Path] = []

    def mount(source: Path) -> Path:
        point = tmp_path / f"read-only{len(mounted)}"
        point.mkdir()
        done = subprocess.run(
            ["mount", "--bind", "-o", "ro", str(source), str(point)],
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, f"cannot bind-mount read-only for this test: {done.stderr}"
        mounted.append(point)
        assert os.statvfs(point).f_flag & os.ST_RDONLY
        return point

    yield mount
    for point in reversed(mounted):
        subprocess.run(["umount", "-l", str(point)], check=False)
