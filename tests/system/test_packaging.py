"""The package as users install it: a built wheel and sdist, not the source tree.

`pip install .`, `pipx install .` and a wheel in a Docker image all run archiver from
site-packages, where the source tree's ``schemas/`` is not.  These tests build the real
sdist and wheel (``python -m build``, without a network: the test environment already has
setuptools), check that they carry the one ``schemas/`` folder byte for byte, and run the
unpacked wheel from another working directory against a real local site.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
import zipfile
from functools import partial
from pathlib import Path

import pytest

from tests.support import runner
from tests.support.paths import ROOT, SCHEMAS
from tests.support.site import FixtureSite


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    return out


def _one(dist: Path, pattern: str) -> Path:
    (found,) = dist.glob(pattern)
    return found


def test_the_wheel_carries_every_schema_byte_for_byte(dist: Path) -> None:
    expected = {p.name: p.read_bytes() for p in SCHEMAS.glob("*.json")}
    assert expected, "schemas/ is empty"
    with zipfile.ZipFile(_one(dist, "*.whl")) as wheel:
        shipped = {
            Path(name).name: wheel.read(name)
            for name in wheel.namelist()
            if name.startswith("archiver/schemas/")
        }
        names = wheel.namelist()
    assert shipped == expected
    assert "archiver/py.typed" in names
    assert not any(n.startswith(("tests/", "schemas/")) for n in names)


def test_the_sdist_carries_the_schemas_folder(dist: Path) -> None:
    with tarfile.open(_one(dist, "*.tar.gz")) as sdist:
        members = {
            m.name.split("/", 1)[1]: m for m in sdist.getmembers() if "/" in m.name and m.isfile()
        }
        for schema in SCHEMAS.glob("*.json"):
            member = members[f"schemas/{schema.name}"]
            handle = sdist.extractfile(member)
            assert handle is not None and handle.read() == schema.read_bytes()


def test_the_unpacked_wheel_captures_verifies_and_queries_outside_the_tree(
    dist: Path, tmp_path: Path
) -> None:
    """The wheel's own files, first on sys.path, run from a folder far from the source."""
    site_packages = tmp_path / "site-packages"
    with zipfile.ZipFile(_one(dist, "*.whl")) as wheel:
        wheel.extractall(site_packages)
    workdir = tmp_path / "elsewhere"
    workdir.mkdir()
    env = {**os.environ, "PYTHONPATH": str(site_packages), "PYTHONSAFEPATH": "1"}
    run = partial(runner.run, env=env, cwd=workdir)

    where = subprocess.run(
        [sys.executable, "-c", "import archiver; print(archiver.__file__)"],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert Path(where.stdout.strip()).is_relative_to(site_packages)

    with FixtureSite() as site:
        captured = run("capture", site.url(site.PLAIN), "--format", "json")
    assert captured.returncode == 0, captured.stderr
    assert "Traceback" not in captured.stderr
    summary = json.loads(captured.stdout)
    assert summary["status"] == "complete" and summary["manifest"]
    assert (workdir / "archives").is_dir()

    verified = run("verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    queried = run("query", "SELECT count(*) AS n FROM captures", "--format", "json")
    assert queried.returncode == 0, queried.stderr
    assert json.loads(queried.stdout)[0]["n"] == 1
