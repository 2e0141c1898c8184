"""Fuzzing verify, index import and extract with damaged files (hypothesis, small budget).

Every example damages one file of a real signed archive (a flipped byte, a cut, bytes
inserted or overwritten) and runs the tools on it: they must report, never crash, and a
damaged WARC, manifest or signature must never verify.  Derandomized, so a run is
repeatable; raise ARCHIVER_FUZZ_EXAMPLES for a longer search.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from archiver.ops import ingest
from archiver.ops.extract import ExtractError, extract
from archiver.ops.verify import verify
from archiver.trust import custody
from tests.support.fuzzing import accepted_events_are_original, signed_stamped_archive
from tests.support.paths import ROOT

EXAMPLES = int(os.environ.get("ARCHIVER_FUZZ_EXAMPLES", "40"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    archive = tmp_path_factory.mktemp("fuzz") / "archives"
    yield signed_stamped_archive(archive, "/embed/player", tmp_path_factory.mktemp("pki"))


def targets(archive: Path) -> list[Path]:
    return sorted(
        p
        for p in archive.rglob("*")
        if p.is_file()
        and p.suffix in (".gz", ".json", ".sig", ".parquet", ".pem", ".tsr", ".jsonl")
    )


Damage = tuple[int, str, int, bytes]  # which file, how, where (fraction), bytes

damages = st.tuples(
    st.integers(min_value=0, max_value=50),
    st.sampled_from(["flip", "cut", "insert", "overwrite"]),
    st.integers(min_value=0, max_value=10_000),
    st.binary(min_size=1, max_size=16),
)


def damage(archive: Path, how: Damage) -> tuple[Path, bool]:
    """Damage one file; returns it, and whether its bytes changed."""
    files = targets(archive)
    path = files[how[0] % len(files)]
    data = path.read_bytes()
    at = how[2] * len(data) // 10_000
    kind, extra = how[1], how[3]
    if kind == "flip" and data:
        at = min(at, len(data) - 1)
        new = data[:at] + bytes([data[at] ^ (extra[0] or 1)]) + data[at + 1 :]
    elif kind == "cut":
        new = data[:at]
    elif kind == "insert":
        new = data[:at] + extra + data[at:]
    else:
        new = data[:at] + extra + data[at + len(extra) :]
    path.write_bytes(new)
    return path, new != data


@FUZZ
@given(how=damages)
def test_verify_reports_damage_and_never_crashes(
    pristine: Path, tmp_path_factory: pytest.TempPathFactory, how: Damage
) -> None:
    archive = tmp_path_factory.mktemp("v") / "archives"
    shutil.copytree(pristine, archive)
    path, changed = damage(archive, how)
    report = verify(archive)  # must not raise
    report.to_json()
    # (a key file may change harmlessly: PEM whitespace; the key, not its file, is checked)
    if changed and path.suffix in (".gz", ".json", ".sig", ".tsr"):
        assert not report.ok, f"{path.name} damaged ({how}) and still verified"
    if changed and path.suffix == ".jsonl" and report.ok:
        assert report.custody is not None
        original = custody.log_path(pristine).read_bytes()
        assert accepted_events_are_original(report.custody, original), how
    shutil.rmtree(archive.parent)


@FUZZ
@given(how=damages)
def test_import_and_extract_never_crash_on_damaged_warcs(
    pristine: Path, tmp_path_factory: pytest.TempPathFactory, how: Damage
) -> None:
    work = tmp_path_factory.mktemp("i")
    archive = work / "archives"
    shutil.copytree(pristine, archive)
    warc = next(p for p in targets(archive) if p.name.endswith(".warc.gz"))
    damage(warc.parent, (0, *how[1:]))
    with contextlib.suppress(ingest.IngestError):
        ingest.import_file(work / "other", warc, "fuzz")
    with contextlib.suppress(ExtractError):
        extract(archive, "20200812100000-0123456789", work / "out.bin")
    shutil.rmtree(work)


# atheris (libFuzzer, coverage-guided), a few seconds per target; tests/support/atheris_fuzz.py
ATHERIS_RUNS = {
    "pages": 3000,
    "verify-warc": 300,
    "verify-manifest": 300,
    "verify-token": 300,
    "custody": 500,
    "import": 300,
}


@pytest.mark.parametrize("target", sorted(ATHERIS_RUNS))
def test_atheris_finds_no_crash(target: str, tmp_path: Path) -> None:
    runs = ATHERIS_RUNS[target] * EXAMPLES // 40
    done = subprocess.run(
        [sys.executable, "-m", "tests.support.atheris_fuzz", target, f"-runs={runs}", "-seed=1"],
        cwd=ROOT,
        env={**os.environ, "ARCHIVER_FUZZ_WORK": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    assert f"Done {runs} runs" in done.stderr
