"""RFC 3161 trusted timestamps, with a real TSA on loopback (``openssl ts -reply``).

Every token archiver keeps is cross-checked with ``openssl ts -verify`` and with
rfc3161-client called directly; every way a token can be wrong is tried, at receipt
and in the archive afterwards.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from rfc3161_client import VerifierBuilder, decode_timestamp_response

from archiver.capture.run import Capturer
from archiver.ops.verify import verify
from archiver.trust import rfc3161, timestamp
from archiver.trust.certificates import certificate_sha256, load_certificates
from archiver.trust.manifest import signature_path
from tests.support.deterministic import FixedClock
from tests.support.rawserver import closed_port, raw_server
from tests.support.runner import run
from tests.support.site import FixtureSite
from tests.support.tsa import (
    LocalTSA,
    Pki,
    der_sort_certificates,
    make_pki,
    sign_query,
    status_only_response,
)


@pytest.fixture(scope="module")
def pkis(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Pki]:
    base = tmp_path_factory.mktemp("pki")
    return {
        "a": make_pki(base / "a", "authority-a"),  # root, intermediate, TSA
        "b": make_pki(base / "b", "authority-b", intermediate=False),
        "no-eku": make_pki(base / "no-eku", "no-eku", eku="none"),
        "noncritical": make_pki(base / "noncritical", "noncritical", eku="noncritical"),
        "server": make_pki(base / "server", "server", eku="server"),
        "expired": make_pki(base / "expired", "expired", expired=True),
        "other": make_pki(base / "other", "unrelated"),
    }


@pytest.fixture
def tsa_a(pkis: dict[str, Pki]) -> Iterator[LocalTSA]:
    with LocalTSA(pkis["a"]) as tsa:
        yield tsa


def events_in(archive: Path) -> list[dict[str, object]]:
    out = run("custody", "--archive-dir", str(archive), "--format", "json")
    events: list[dict[str, object]] = json.loads(out.stdout)["events"]
    return events


def openssl_verify(token: Path, data: Path, root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["openssl", "ts", "-verify", "-in", str(token), "-data", str(data), "-CAfile", str(root)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def independently_verified(token: Path, data: bytes, pki: Pki) -> bool:
    """rfc3161-client, called directly (not through archiver), on a DER-sorted copy."""
    response = decode_timestamp_response(der_sort_certificates(token.read_bytes()))
    return VerifierBuilder(roots=[pki.root]).build().verify_message(response, data)


def test_a_capture_is_stamped_by_two_authorities_and_every_token_checks_out(
    tmp_path: Path, site: FixtureSite, pkis: dict[str, Pki]
) -> None:
    archive = tmp_path / "archives"
    with LocalTSA(pkis["a"]) as a, LocalTSA(pkis["b"]) as b:
        out = run(
            "capture", site.url(site.PLAIN), "--archive-dir", str(archive), "--format", "json",
            "--tsa", a.url, "--tsa", b.url,
            "--tsa-ca", str(pkis["a"].root_cert), "--tsa-ca", str(pkis["b"].root_cert),
        )  # fmt: skip
        assert out.returncode == 0, out.stderr
        assert len(a.requests) == 1 and len(b.requests) == 1
        names = {f"127.0.0.1-{a.port}": pkis["a"], f"127.0.0.1-{b.port}": pkis["b"]}
    summary = json.loads(out.stdout.splitlines()[0])
    stamps = summary["timestamps"]
    assert [s["ok"] for s in stamps] == [True, True], stamps
    manifest = Path(summary["manifest"])
    sig = signature_path(manifest)
    tokens = dict(timestamp.tokens_of(manifest))
    assert sorted(tokens) == sorted(names)
    for name, pki in names.items():
        token = tokens[name]
        assert token.name == f"{manifest.name}.sig.{name}.tsr"
        # two independent verifiers agree: openssl, and rfc3161-client used directly
        checked = openssl_verify(token, sig, pki.root_cert)
        assert checked.returncode == 0 and "Verification: OK" in checked.stdout, checked.stderr
        assert independently_verified(token, sig.read_bytes(), pki)
        # the chain is saved in the archive: TSA certificate first, root last
        chain = sorted((archive / "tsa" / name).glob("*.pem"))
        assert len(chain) == 1
        saved = load_certificates(chain[0].read_bytes())
        assert saved[0] == pki.tsa and saved[-1] == pki.root
        assert len(saved) == (3 if pki.intermediate is not None else 2)
    # verify checks them offline, against the roots given and against those saved
    given = ["--tsa-ca", str(pkis["a"].root_cert), "--tsa-ca", str(pkis["b"].root_cert)]
    checked = run("verify", "--archive-dir", str(archive), *given)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "trusted time: " in checked.stdout and "saved in the archive" not in checked.stdout
    assert checked.stdout.count("time-stamped by 127.0.0.1-") == 2
    # without roots of one's own: the tokens hold, but no time is called trusted
    checked = run("verify", "--archive-dir", str(archive))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "trusted time: " not in checked.stdout
    assert checked.stdout.count("its chain ends at a root saved in the archive") == 2
    assert certificate_sha256(pkis["a"].root) in checked.stdout
    report = json.loads(run("verify", "--archive-dir", str(archive), "--format", "json").stdout)
    capture = report["captures"][0]
    assert capture["trusted_time"] is None
    assert all("a root saved in the archive" in t["detail"] for t in capture["timestamps"])
    assert not any(t["root_given"] for t in capture["timestamps"])
    report = json.loads(
        run("verify", "--archive-dir", str(archive), "--format", "json", *given).stdout
    )
    capture = report["captures"][0]
    stated = [
        datetime.fromisoformat(t["time"]) + timedelta(seconds=t["accuracy_seconds"] or 0)
        for t in capture["timestamps"]
    ]
    assert datetime.fromisoformat(capture["trusted_time"]) == min(stated)
    # and the custody log has the capture and both timestamps
    log = json.loads(run("custody", "--archive-dir", str(archive), "--format", "json").stdout)
    actions = [(e["action"], e["result"]) for e in log["events"]]
    assert actions[:4] == [
        ("key generation", "ok"),
        ("capture", "complete"),
        ("timestamp", "ok"),
        ("timestamp", "ok"),
    ]


FAILURES = {
    "http-error": "HTTP 500",
    "rejection": "the authority refused (status 2, rejection): request rejected",
    "garbage": "not a time-stamp response",
    "slow": "cannot reach the authority",
    "wrong-nonce": "the token answers another request: nonce",
    "wrong-imprint": "the token stamps another message",
}


@pytest.mark.parametrize("mode", sorted(FAILURES))
def test_an_authority_that_fails_leaves_the_capture_signed_and_timestamp_asks_again(
    tmp_path: Path, site: FixtureSite, pkis: dict[str, Pki], mode: str
) -> None:
    archive = tmp_path / "archives"
    root = str(pkis["a"].root_cert)
    with LocalTSA(pkis["a"], mode=mode) as tsa:  # type: ignore[arg-type]
        out = run(
            "capture", site.url(site.PLAIN), "--archive-dir", str(archive),
            "--tsa", tsa.url, "--tsa-ca", root, "--tsa-timeout", "1",
        )  # fmt: skip
        assert out.returncode == 0, out.stderr  # the capture stands
        assert f"NOT time-stamped by 127.0.0.1-{tsa.port}: {tsa.url}: " in out.stderr
        assert FAILURES[mode] in out.stderr, out.stderr
        assert "`archiver timestamp " in out.stderr
        assert not list(archive.rglob("*.tsr"))
        assert run("verify", "--archive-dir", str(archive)).returncode == 0
        capture_id = next(archive.rglob("*.manifest.json")).name.split(".")[0]
        # later, the authority works again: `archiver timestamp` adds the token
        tsa.mode = "ok"
        again = run("timestamp", capture_id, "--archive-dir", str(archive), "--tsa", tsa.url,
                    "--tsa-ca", root)  # fmt: skip
        assert again.returncode == 0, again.stderr
        assert f"time-stamped by 127.0.0.1-{tsa.port} at " in again.stdout
        # asked once more, it is stamped already: nothing is asked
        asked = len(tsa.requests)
        once_more = run("timestamp", "--archive-dir", str(archive), "--tsa", tsa.url)
        assert once_more.returncode == 0 and "already time-stamped" in once_more.stdout
        assert len(tsa.requests) == asked
    assert len(list(archive.rglob("*.tsr"))) == 1
    checked = run("verify", "--archive-dir", str(archive), "--tsa-ca", root)
    assert checked.returncode == 0 and "trusted time: " in checked.stdout, checked.stdout
    events = json.loads(run("custody", capture_id, "--archive-dir", str(archive), "--format",
                            "json").stdout)["events"]  # fmt: skip
    stamps = [(e["result"], e["detail"]) for e in events if e["action"] == "timestamp"]
    assert [r for r, _ in stamps] == ["failed", "ok"]
    assert FAILURES[mode] in stamps[0][1]


def test_an_authority_that_cannot_be_reached(tmp_path: Path, site: FixtureSite) -> None:
    archive = tmp_path / "archives"
    url = f"http://127.0.0.1:{closed_port()}/tsr"
    out = run("capture", site.url(site.PLAIN), "--archive-dir", str(archive), "--tsa", url)
    assert out.returncode == 0, out.stderr
    assert "cannot reach the authority" in out.stderr and "Connection refused" in out.stderr
    failed = run("timestamp", "--archive-dir", str(archive), "--tsa", url)
    assert failed.returncode == 1 and "NOT time-stamped" in failed.stderr


BAD_CERTIFICATES = {
    "no-eku": "has no extended key usage: it is not for time-stamping",
    "noncritical": "timeStamping usage is not marked critical",
    "server": "is not for time-stamping (no timeStamping usage)",
    "expired": "was not valid at the token's time",
    "other": None,  # a sound TSA whose root is not the one trusted: checked below
}


@pytest.mark.parametrize("kind", sorted(BAD_CERTIFICATES))
def test_a_token_from_an_unfit_certificate_is_refused_at_receipt(
    make_capturer: Callable[..., Capturer],
    site: FixtureSite,
    pkis: dict[str, Pki],
    kind: str,
    tmp_path: Path,
) -> None:
    """Asked of a TSA whose certificate may not stamp, the token is not kept."""
    trusted = [pkis["a"].root, pkis[kind].root] if kind != "other" else [pkis["a"].root]
    with LocalTSA(pkis[kind]) as tsa:
        stamper = timestamp.Timestamper([timestamp.Authority.of(tsa.url)], trusted, timeout=10)
        capture = make_capturer().capture(site.url(site.PLAIN))
        assert capture.manifest is not None
        (stamp,) = stamper.stamp(capture.manifest)
    assert not stamp.ok and stamp.token is None
    expected = BAD_CERTIFICATES[kind] or "does not reach a trusted root"
    assert expected in str(stamp.error), stamp.error
    assert not list((tmp_path / "archives").rglob("*.tsr"))


@pytest.fixture
def stamped(
    make_capturer: Callable[..., Capturer],
    site: FixtureSite,
    tsa_a: LocalTSA,
    pkis: dict[str, Pki],
    tmp_path: Path,
) -> tuple[Path, Path, Path]:
    """A signed capture stamped by authority a: (archive, manifest, token)."""
    stamper = timestamp.Timestamper([timestamp.Authority.of(tsa_a.url)], [pkis["a"].root])
    capture = make_capturer().capture(site.url(site.PLAIN))
    assert capture.manifest is not None
    (stamp,) = stamper.stamp(capture.manifest)
    assert stamp.ok, stamp.error
    (token,) = [p for _, p in timestamp.tokens_of(capture.manifest)]
    return capture.options.archive_dir, capture.manifest, token


def problems_of(archive: Path, roots: list[Pki] | None = None) -> list[str]:
    report = verify(archive, tsa_roots=[p.root for p in roots] if roots else None)
    return [p.text() for p in report.problems]


def test_a_token_changed_in_the_archive_fails_verify(stamped: tuple[Path, Path, Path]) -> None:
    archive, _, token = stamped
    assert problems_of(archive) == []
    original = token.read_bytes()
    # the TSA's signature changed (its last byte)
    token.write_bytes(original[:-1] + bytes([original[-1] ^ 0x01]))
    (problem,) = problems_of(archive)
    assert token.name in problem and "time-stamp by 127.0.0.1-" in problem
    assert "signature does not hold" in problem, problem
    # the time in the signed time-stamp info moved a minute
    at = original.index(b"\x18\x0f") + 2 + 11  # GeneralizedTime "YYYYMMDDhhmmssZ": a minute
    moved = bytes([original[at] ^ 0x01])
    token.write_bytes(original[:at] + moved + original[at + 1 :])
    (problem,) = problems_of(archive)
    assert token.name in problem and "signature does not hold" in problem, problem
    # cut short
    token.write_bytes(original[: len(original) // 2])
    (problem,) = problems_of(archive)
    assert "not a time-stamp response" in problem


def test_a_token_for_another_capture_fails_verify(
    stamped: tuple[Path, Path, Path],
    make_capturer: Callable[..., Capturer],
    site: FixtureSite,
    tsa_a: LocalTSA,
) -> None:
    archive, _, token = stamped
    capturer = make_capturer(collection="other")
    capturer.new_id = lambda moment: "20200812100000-aaaaaaaaaa"
    other = capturer.capture(site.url(site.PLAIN))
    assert other.manifest is not None
    shutil.copy(token, timestamp.token_path(other.manifest, "borrowed"))
    (problem,) = problems_of(archive)
    assert "borrowed.tsr" in problem and "the token stamps another message" in problem


@pytest.mark.parametrize("kind", ["no-eku", "expired", "server"])
def test_a_token_of_an_unfit_certificate_placed_in_the_archive_fails_verify(
    stamped: tuple[Path, Path, Path], pkis: dict[str, Pki], kind: str
) -> None:
    """A forger with an unfit certificate makes a token for the real signature."""
    from rfc3161_client import HashAlgorithm, TimestampRequestBuilder

    archive, manifest, _ = stamped
    signature = signature_path(manifest).read_bytes()
    query = (
        TimestampRequestBuilder()
        .data(signature)
        .hash_algorithm(HashAlgorithm.SHA256)
        .build()
        .as_bytes()
    )
    timestamp.token_path(manifest, "forged").write_bytes(sign_query(pkis[kind], query))
    roots = [pkis["a"], pkis[kind]]
    (problem,) = problems_of(archive, roots)
    assert "forged.tsr" in problem and str(BAD_CERTIFICATES[kind]) in problem, problem


def test_the_roots_decide(stamped: tuple[Path, Path, Path], pkis: dict[str, Pki]) -> None:
    archive, _, token = stamped
    assert problems_of(archive, [pkis["a"]]) == []
    (problem,) = problems_of(archive, [pkis["other"]])
    assert "does not reach a trusted root" in problem and token.name in problem
    # without --tsa-ca and with the saved chain gone, nothing anchors the token
    shutil.rmtree(archive / "tsa")
    (problem,) = problems_of(archive)
    assert "does not reach a trusted root" in problem
    assert problems_of(archive, [pkis["a"]]) == []  # the token carries its chain


def test_a_token_older_than_the_capture_is_inconsistent(
    make_capturer: Callable[..., Capturer],
    site: FixtureSite,
    tsa_a: LocalTSA,
    pkis: dict[str, Pki],
    tmp_path: Path,
) -> None:
    """A capture whose clock says 2031 cannot have been stamped in 2026."""
    capturer = make_capturer()
    capturer.clock = FixedClock(datetime(2031, 1, 1, tzinfo=UTC))
    capture = capturer.capture(site.url(site.PLAIN))
    assert capture.manifest is not None
    stamper = timestamp.Timestamper([timestamp.Authority.of(tsa_a.url)], [pkis["a"].root])
    (stamp,) = stamper.stamp(capture.manifest)
    # refused on receipt: verify would fail it for ever (the custody log would have it)
    assert not stamp.ok and stamp.token is None
    assert "is before the manifest was signed (2031-01-01T00:00:00" in (stamp.error or "")
    # verify applies the same rule to such a token put there by other means
    request, _ = rfc3161.timestamp_request(signature_path(capture.manifest).read_bytes())
    planted = timestamp.token_path(capture.manifest, "planted")
    planted.write_bytes(sign_query(pkis["a"], request))
    (problem,) = problems_of(tmp_path / "archives", [pkis["a"]])
    assert "is before the manifest was signed (2031-01-01T00:00:00" in problem


def test_capture_with_authorities_from_the_config_file(
    tmp_path: Path, site: FixtureSite, tsa_a: LocalTSA, pkis: dict[str, Pki]
) -> None:
    config = tmp_path / "config.toml"
    config.write_text(
        f'[timestamp]\ntsa = ["{tsa_a.url}"]\ntsa_ca = ["{pkis["a"].root_cert}"]\n'
        "[capture]\nallow_private = true\n",  # the site is on 127.0.0.1
        "utf-8",
    )
    archive = tmp_path / "archives"
    env = {"ARCHIVER_CONFIG": str(config)}
    out = run("capture", site.url(site.PLAIN), "--archive-dir", str(archive), env=env)
    assert out.returncode == 0, out.stderr
    assert "time-stamped by 127.0.0.1-" in out.stdout and len(tsa_a.requests) == 1
    # verify takes the roots from the file too; --tsa-ca given instead wins
    assert run("verify", "--archive-dir", str(archive), env=env).returncode == 0
    wrong = run("verify", "--archive-dir", str(archive), "--tsa-ca", str(pkis["other"].root_cert),
                env=env)  # fmt: skip
    assert wrong.returncode == 1 and "does not reach a trusted root" in wrong.stdout
    config.write_text("[timestamp\ntsa = 1", "utf-8")
    broken = run("capture", site.url(site.PLAIN), "--archive-dir", str(archive), env=env)
    assert broken.returncode == 2 and str(config) in broken.stderr and "not TOML" in broken.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["timestamp"], "no time-stamping authority"),
        (["timestamp", "--tsa", "file:///etc/passwd"], "--tsa file:///etc/passwd"),
        (["timestamp", "--tsa", "http://127.0.0.1:1/", "--tsa-ca", "/nonexistent.pem"],
         "/nonexistent.pem"),
        (["timestamp", "--tsa", "http://127.0.0.1:1/", "20200101000000-0000000000"],
         "no capture 20200101000000-0000000000"),
        (["capture", "http://127.0.0.1:1/", "--tsa", "ftp://tsa.example/"], "--tsa ftp://"),
        (["verify", "--tsa-ca", "/etc/hostname"], "holds no certificate"),
        (["custody", "../etc"], "is not a capture id"),
    ],
)  # fmt: skip
def test_bad_timestamp_input_is_a_usage_error(
    tmp_path: Path, args: list[str], message: str
) -> None:
    archive = tmp_path / "archives"
    (archive / "warc").mkdir(parents=True)
    out = run(*args, "--archive-dir", str(archive))
    assert out.returncode == 2, out.stdout + out.stderr
    assert message in out.stderr and "Traceback" not in out.stderr
    assert not list(archive.rglob("*.warc.gz"))


def test_the_documented_openssl_step(
    tmp_path: Path, site: FixtureSite, pkis: dict[str, Pki]
) -> None:
    """docs/verifying.md step 5, run exactly as written, on a capture stamped twice."""
    from tests.support.doc_checks import doc_checks

    archive = tmp_path / "archives"
    roots = tmp_path / "tsa-roots.pem"
    roots.write_bytes(pkis["a"].root_cert.read_bytes() + pkis["b"].root_cert.read_bytes())
    with LocalTSA(pkis["a"]) as a, LocalTSA(pkis["b"]) as b:
        out = run("capture", site.url(site.PLAIN), "--archive-dir", str(archive),
                  "--tsa", a.url, "--tsa", b.url, "--tsa-ca", str(roots))  # fmt: skip
        assert out.returncode == 0, out.stderr
    manifest = next(archive.rglob("*.manifest.json"))
    env = {**os.environ, "LC_ALL": "C", "M": str(manifest.relative_to(archive)),
           "TSA_CA": str(roots)}  # fmt: skip

    def step() -> list[str]:
        done = subprocess.run(["sh", "-c", doc_checks()["timestamp"]], cwd=archive, env=env,
                              capture_output=True, text=True, timeout=60)  # fmt: skip
        return done.stdout.splitlines()

    lines = step()
    assert lines.count("Verification: OK") == 2, lines
    times = [line for line in lines if line.startswith("Time stamp: ")]
    assert len(times) == 2 and all(t.endswith(" GMT") for t in times)
    assert not any(line.endswith(": FAILED") for line in lines)
    # a token for another capture's signature, under this one's name: FAILED
    (first, _), (second, second_path) = timestamp.tokens_of(manifest)
    other = tmp_path / "other.sig"
    other.write_bytes(b"\x00" * 64)
    query = subprocess.run(["openssl", "ts", "-query", "-data", str(other), "-sha256", "-cert"],
                           capture_output=True, timeout=60).stdout  # fmt: skip
    second_path.write_bytes(sign_query(pkis["b"], query, der_sort=False))
    lines = step()
    assert lines.count("Verification: OK") == 1
    assert f"{second_path.relative_to(archive)}: FAILED" in lines
    assert first != second


def test_a_token_outlives_its_authority_s_certificate(
    make_capturer: Callable[..., Capturer], site: FixtureSite, tmp_path: Path
) -> None:
    """What a token proves does not expire with the TSA's certificate: verify checks the
    chain at the token's time. `openssl ts -verify` checks it now, unless given -attime
    (docs/verifying.md says so)."""
    pki = make_pki(tmp_path / "pki", "short-lived", tsa_lifetime=timedelta(seconds=3))
    capture = make_capturer().capture(site.url(site.PLAIN))
    assert capture.manifest is not None
    with LocalTSA(pki) as tsa:
        stamper = timestamp.Timestamper([timestamp.Authority.of(tsa.url)], [pki.root])
        (stamp,) = stamper.stamp(capture.manifest)
    assert stamp.ok and stamp.time is not None
    time.sleep(max(0.0, (pki.tsa.not_valid_after_utc - datetime.now(UTC)).total_seconds()) + 1.1)
    assert problems_of(tmp_path / "archives", [pki]) == []
    (token,) = [p for _, p in timestamp.tokens_of(capture.manifest)]
    sig = signature_path(capture.manifest)
    now = openssl_verify(token, sig, pki.root_cert)
    assert now.returncode != 0 and "certificate has expired" in now.stdout + now.stderr
    then = subprocess.run(
        ["openssl", "ts", "-verify", "-in", str(token), "-data", str(sig), "-CAfile",
         str(pki.root_cert), "-attime", str(int(stamp.time.timestamp()))],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert then.returncode == 0 and "Verification: OK" in then.stdout, then.stderr


def test_a_token_from_the_future_is_inconsistent(stamped: tuple[Path, Path, Path]) -> None:
    archive, manifest, _ = stamped
    signature = signature_path(manifest).read_bytes()
    signed_at = datetime(2020, 8, 12, 10, 0, tzinfo=UTC)
    (check,) = timestamp.check_tokens(
        manifest, signature, signed_at, archive, None, now=datetime(2025, 1, 1, tzinfo=UTC)
    )
    assert not check.ok and "is in the future" in str(check.problem)


def test_timestamp_again_keeps_both_tokens(
    tmp_path: Path, site: FixtureSite, tsa_a: LocalTSA, pkis: dict[str, Pki]
) -> None:
    archive = tmp_path / "archives"
    root = str(pkis["a"].root_cert)
    a = ("--archive-dir", str(archive), "--tsa", tsa_a.url, "--tsa-ca", root)
    assert run("capture", site.url(site.PLAIN), *a).returncode == 0
    again = run("timestamp", "--again", *a, "--format", "json")
    assert again.returncode == 0, again.stderr
    (stamp,) = [json.loads(line) for line in again.stdout.splitlines()]
    assert stamp["ok"] and not stamp["already_stamped"]
    tokens = sorted(archive.rglob("*.tsr"))
    assert len(tokens) == 2 and stamp["token"] in {str(t.relative_to(archive)) for t in tokens}
    checked = run("verify", "--archive-dir", str(archive), "--tsa-ca", root)
    assert checked.returncode == 0 and checked.stdout.count("time-stamped by") == 2


def test_a_signature_that_does_not_hold_is_not_time_stamped(
    tmp_path: Path, site: FixtureSite, tsa_a: LocalTSA
) -> None:
    archive = tmp_path / "archives"
    assert run("capture", site.url(site.PLAIN), "--archive-dir", str(archive)).returncode == 0
    (sig,) = archive.rglob("*.manifest.json.sig")
    data = sig.read_bytes()
    sig.write_bytes(bytes([data[0] ^ 0x01]) + data[1:])
    out = run("timestamp", "--archive-dir", str(archive), "--tsa", tsa_a.url)
    assert out.returncode == 1 and "its signature does not hold" in out.stderr
    assert not tsa_a.requests and not list(archive.rglob("*.tsr"))


def test_a_planted_root_and_token_are_not_called_a_trusted_time(
    tmp_path: Path, site: FixtureSite, pkis: dict[str, Pki]
) -> None:
    """A signer who wants an earlier date makes a TSA of their own, stamps the signature
    and saves their root in the archive: the token holds against that root, so without
    --tsa-ca verify shows the root to compare and calls no time trusted; with the real
    authority's root it fails."""
    from rfc3161_client import HashAlgorithm, TimestampRequestBuilder

    archive = tmp_path / "archives"
    assert run("capture", site.url(site.PLAIN), "--archive-dir", str(archive)).returncode == 0
    manifest = next(archive.rglob("*.manifest.json"))
    forger = pkis["other"]
    query = (
        TimestampRequestBuilder()
        .data(signature_path(manifest).read_bytes())
        .hash_algorithm(HashAlgorithm.SHA256)
        .build()
    )
    timestamp.token_path(manifest, "tsa.example.org").write_bytes(
        sign_query(forger, query.as_bytes(), der_sort=False)
    )
    saved = archive / "tsa" / "tsa.example.org" / "chain.pem"
    saved.parent.mkdir(parents=True)
    saved.write_bytes(forger.root_cert.read_bytes())
    out = run("verify", "--archive-dir", str(archive))
    assert out.returncode == 0, out.stdout
    assert "trusted time" not in out.stdout
    assert "its chain ends at a root saved in the archive" in out.stdout
    assert certificate_sha256(forger.root) in out.stdout
    given = run("verify", "--archive-dir", str(archive), "--tsa-ca", str(pkis["a"].root_cert))
    assert given.returncode == 1 and "does not reach a trusted root" in given.stdout


def test_a_token_deleted_or_changed_after_it_was_logged_is_found_from_a_relative_path(
    tmp_path: Path, site: FixtureSite, tsa_a: LocalTSA, pkis: dict[str, Pki]
) -> None:
    a = ("--archive-dir", "archives", "--tsa", tsa_a.url, "--tsa-ca", str(pkis["a"].root_cert))

    def relative(*args: str) -> subprocess.CompletedProcess[str]:
        return run(*args, cwd=tmp_path)

    assert relative("capture", site.url(site.PLAIN), *a).returncode == 0
    (token,) = (tmp_path / "archives").rglob("*.tsr")
    data = token.read_bytes()
    intermediate = pkis["a"].intermediate
    assert intermediate is not None
    key = intermediate.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    at = data.index(key) + 10
    token.write_bytes(data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1 :])
    # the certificates a token carries are outside the TSA's signature: with the
    # intermediate also saved in the archive, the damaged token still holds
    (manifest,) = (tmp_path / "archives").rglob("*.manifest.json")
    sig = signature_path(manifest).read_bytes()
    rfc3161.check_token(token.read_bytes(), sig, [pkis["a"].root], [intermediate])
    # but it is not the file received, whose SHA-256 the custody log recorded
    out = relative("verify", "--archive-dir", "archives")
    assert out.returncode == 1 and "the token file is not the one received" in out.stdout
    token.unlink()
    out = relative("verify", "--archive-dir", "archives")
    assert out.returncode == 1, out.stdout
    assert "a time-stamp token the custody log recorded on receipt is missing" in out.stdout
    assert token.name in out.stdout


def test_an_authority_that_does_not_speak_http(tmp_path: Path, site: FixtureSite) -> None:
    def hello(conn: socket.socket, head: bytes) -> None:
        conn.sendall(b"HELLO THERE\r\n\r\n")

    archive = tmp_path / "archives"
    with raw_server(hello) as url:
        out = run("capture", site.url(site.PLAIN), "--archive-dir", str(archive), "--tsa", url)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("complete ") and "the authority's answer is not HTTP" in out.stderr
    assert run("verify", "--archive-dir", str(archive)).returncode == 0


def test_a_response_granted_with_modifications_is_refused() -> None:
    with pytest.raises(rfc3161.TokenProblem, match="granted the request with modifications"):
        rfc3161.read_token(status_only_response(1))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[timestamp]\ntsa_timeout = [1]\n", "[timestamp] tsa_timeout must be a number"),
        ("[timestamp]\ntsa = [1, 2]\n", "[timestamp] tsa must be text or a list of text"),
        ("[capture]\noperator = {a = 1}\n", "[capture] operator must be a single value"),
        ("timestamp = 3\n", "timestamp is not a table"),
    ],
)
def test_a_config_file_of_the_wrong_shape_is_named(tmp_path: Path, text: str, message: str) -> None:
    config = tmp_path / "config.toml"
    config.write_text(text, "utf-8")
    out = run("verify", "--archive-dir", str(tmp_path), env={"ARCHIVER_CONFIG": str(config)})
    assert out.returncode == 2 and message in out.stderr and str(config) in out.stderr
    assert "Traceback" not in out.stderr


def test_one_authority_as_text_in_the_config_file(
    tmp_path: Path, site: FixtureSite, tsa_a: LocalTSA, pkis: dict[str, Pki]
) -> None:
    config = tmp_path / "config.toml"
    config.write_text(
        f'[timestamp]\ntsa = "{tsa_a.url}"\ntsa_ca = "{pkis["a"].root_cert}"\n'
        "[capture]\nallow_private = true\n"  # the site is on 127.0.0.1
    )
    out = run("capture", site.url(site.PLAIN), "--archive-dir", str(tmp_path / "archives"),
              env={"ARCHIVER_CONFIG": str(config)})  # fmt: skip
    assert out.returncode == 0 and "time-stamped by 127.0.0.1-" in out.stdout, out.stderr


def test_verify_and_timestamp_act_on_the_archive_a_manifest_belongs_to(
    tmp_path: Path, site: FixtureSite, tsa_a: LocalTSA, pkis: dict[str, Pki]
) -> None:
    here, there = tmp_path / "here", tmp_path / "there"
    for archive in (here, there):
        assert run("capture", site.url(site.PLAIN), "--archive-dir", str(archive)).returncode == 0
    manifest = next(there.rglob("*.manifest.json"))
    stamped = run("timestamp", str(manifest), "--archive-dir", str(here), "--tsa", tsa_a.url,
                  "--tsa-ca", str(pkis["a"].root_cert))  # fmt: skip
    assert stamped.returncode == 0, stamped.stderr
    assert list((there / "tsa").iterdir()) and not (here / "tsa").exists()
    checked = run("verify", str(manifest), "--archive-dir", str(here))
    assert checked.returncode == 0, checked.stdout
    logged = {archive.name: [e["action"] for e in events_in(archive)] for archive in (here, there)}
    assert logged == {
        "here": ["key generation", "capture"],
        "there": ["capture", "timestamp", "verify"],
    }


# issue 14.6: a token whose root is not configured is kept, marked, never trusted --------
def stamp_events(archive: Path) -> list[dict[str, object]]:
    return [e for e in events_in(archive) if e["action"] == "timestamp"]


@pytest.mark.filterwarnings("ignore:Parsed a serial number")  # a system root of the machine
def test_without_tsa_ca_a_token_whose_chain_reaches_no_machine_root_is_kept_unchecked(
    tmp_path: Path, site: FixtureSite, pkis: dict[str, Pki]
) -> None:
    """capture --tsa without --tsa-ca, to an authority whose chain (TSA, intermediate;
    the root is not in the token) reaches none of the machine's roots: the token is kept
    exactly as sent, marked in the JSON summary, the custody event and verify; only
    --tsa-ca with the authority's root makes its time trusted."""
    pki = pkis["a"]
    assert certificate_sha256(pki.root) not in {
        certificate_sha256(c) for c in timestamp.system_roots()
    }
    archive = tmp_path / "archives"
    with LocalTSA(pki) as tsa:
        out = run("capture", site.url(site.PLAIN), "--archive-dir", str(archive),
                  "--tsa", tsa.url, "--format", "json")  # fmt: skip
        assert out.returncode == 0, out.stderr
        (sent,) = tsa.replies
        name = f"127.0.0.1-{tsa.port}"
    (stamp,) = json.loads(out.stdout.splitlines()[0])["timestamps"]
    assert stamp["ok"] and stamp["error"] is None and stamp["root_checked"] is False
    intermediate = pki.intermediate
    assert intermediate is not None
    assert stamp["chain_end"] == (
        f"{intermediate.subject.rfc4514_string()} (sha256 "
        f"{certificate_sha256(intermediate)}), issued by {pki.root.subject.rfc4514_string()}"
    )
    # kept byte for byte as the authority sent it (certificates in OpenSSL's order)
    token = archive / stamp["token"]
    assert token.read_bytes() == sent and der_sort_certificates(sent) != sent
    manifest = Path(json.loads(out.stdout.splitlines()[0])["manifest"])
    sig = signature_path(manifest)
    assert openssl_verify(token, sig, pki.root_cert).returncode == 0
    # the chain as far as the token's certificates go, beside any chain to a root
    (chain,) = (archive / "tsa" / name).iterdir()
    assert chain.name == f"{certificate_sha256(pki.tsa)}.unchecked.pem"
    assert load_certificates(chain.read_bytes()) == [pki.tsa, intermediate]
    # the signed custody event records the token's SHA-256 and the mark
    (event,) = stamp_events(archive)
    assert event["result"] == "ok" and event["signature"] is not None
    assert timestamp.UNCHECKED in str(event["detail"])
    assert event["files"] == [{"path": stamp["token"], "sha256": hashlib.sha256(sent).hexdigest()}]
    # verify without --tsa-ca: holds as far as it goes, shown for checking by hand
    checked = run("verify", "--archive-dir", str(archive))
    assert checked.returncode == 0, checked.stdout
    assert f"    {timestamp.UNCHECKED}, nor now (no --tsa-ca given): it ends at " in checked.stdout
    assert stamp["chain_end"] in checked.stdout and "trusted time" not in checked.stdout
    report = json.loads(run("verify", "--archive-dir", str(archive), "--format", "json").stdout)
    (capture,) = report["captures"]
    (check,) = capture["timestamps"]
    assert report["ok"] and capture["trusted_time"] is None
    assert check["ok"] and check["chain_unchecked_at_capture"] and not check["root_given"]
    assert check["root"] is None and check["chain_end"] == stamp["chain_end"]
    # verify --tsa-ca with the authority's root: judged in full, a trusted time
    right = run("verify", "--archive-dir", str(archive), "--tsa-ca", str(pki.root_cert))
    assert right.returncode == 0, right.stdout
    assert "trusted time: " in right.stdout and timestamp.UNCHECKED not in right.stdout
    report = json.loads(run("verify", "--archive-dir", str(archive), "--format", "json",
                            "--tsa-ca", str(pki.root_cert)).stdout)  # fmt: skip
    (capture,) = report["captures"]
    (check,) = capture["timestamps"]
    assert check["root_given"] and check["chain_unchecked_at_capture"]
    stated = datetime.fromisoformat(check["time"]) + timedelta(seconds=check["accuracy_seconds"])
    assert datetime.fromisoformat(capture["trusted_time"]) == stated
    # with another root: not trusted, a failure as for any token (the roots given decide)
    wrong = run("verify", "--archive-dir", str(archive), "--tsa-ca", str(pkis["other"].root_cert))
    assert wrong.returncode == 1, wrong.stdout
    assert (
        f"time-stamp by {name}: {timestamp.UNCHECKED}, and the TSA certificate chain does "
        "not reach a trusted root" in wrong.stdout
    )
    assert "trusted time" not in wrong.stdout


def test_timestamp_without_tsa_ca_keeps_the_token_unchecked_the_same_way(
    tmp_path: Path, site: FixtureSite, tsa_a: LocalTSA, pkis: dict[str, Pki]
) -> None:
    archive = tmp_path / "archives"
    assert run("capture", site.url(site.PLAIN), "--archive-dir", str(archive)).returncode == 0
    out = run("timestamp", "--archive-dir", str(archive), "--tsa", tsa_a.url)
    assert out.returncode == 0, out.stderr
    assert f"time-stamped by 127.0.0.1-{tsa_a.port} at " in out.stdout
    assert f"    {timestamp.UNCHECKED} (no --tsa-ca given" in out.stdout
    (token,) = archive.rglob("*.tsr")
    assert [token.read_bytes()] == tsa_a.replies
    (event,) = stamp_events(archive)
    assert event["result"] == "ok" and timestamp.UNCHECKED in str(event["detail"])
    assert event["files"] == [{"path": str(token.relative_to(archive)),
                               "sha256": hashlib.sha256(tsa_a.replies[0]).hexdigest()}]  # fmt: skip
    checked = run("verify", "--archive-dir", str(archive))
    assert checked.returncode == 0 and f"{timestamp.UNCHECKED}, nor now" in checked.stdout
    # stamped again with the root given: both kept, the new one's chain saved to its root
    again = run("timestamp", "--again", "--archive-dir", str(archive), "--tsa", tsa_a.url,
                "--tsa-ca", str(pkis["a"].root_cert), "--format", "json")  # fmt: skip
    assert again.returncode == 0, again.stderr
    (stamp,) = [json.loads(line) for line in again.stdout.splitlines()]
    assert stamp["root_checked"] is True
    assert stamp["chain_end"].startswith(pkis["a"].root.subject.rfc4514_string())
    tsa_pem = certificate_sha256(pkis["a"].tsa)
    assert sorted(p.name for p in (archive / "tsa").rglob("*.pem")) == [
        f"{tsa_pem}.pem",
        f"{tsa_pem}.unchecked.pem",
    ]
    checked = run("verify", "--archive-dir", str(archive))
    assert checked.returncode == 0, checked.stdout
    root_a = pkis["a"].root
    root = f"{root_a.subject.rfc4514_string()} (sha256 {certificate_sha256(root_a)})"
    assert (
        f"    {timestamp.UNCHECKED}; it ends at a root saved in the archive, {root}"
        in checked.stdout
    )
    assert f"    its chain ends at a root saved in the archive, {root}" in checked.stdout
    assert "trusted time" not in checked.stdout


@pytest.mark.parametrize(
    ("mode", "message"),
    [
        ("wrong-nonce", "the token answers another request: nonce"),
        ("wrong-imprint", "the token stamps another message"),
        ("bad-signature", "the CMS signature does not verify with the TSA certificate's key"),
    ],
)
def test_without_tsa_ca_a_token_that_does_not_hold_is_still_refused(
    tmp_path: Path, site: FixtureSite, pkis: dict[str, Pki], mode: str, message: str
) -> None:
    """Only the root may go unchecked: imprint, nonce and signature are checked as ever
    (and once the authority answers well, its token is kept)."""
    archive = tmp_path / "archives"
    with LocalTSA(pkis["a"], mode=mode) as tsa:  # type: ignore[arg-type]
        out = run("capture", site.url(site.PLAIN), "--archive-dir", str(archive),
                  "--tsa", tsa.url, "--format", "json")  # fmt: skip
        assert out.returncode == 0, out.stderr
        (stamp,) = json.loads(out.stdout.splitlines()[0])["timestamps"]
        assert not stamp["ok"] and stamp["token"] is None and stamp.get("root_checked") is None
        assert message in stamp["error"], stamp["error"]
        assert not list(archive.rglob("*.tsr")) and not (archive / "tsa").exists()
        (event,) = stamp_events(archive)
        assert event["result"] == "failed" and event["files"] == []
        assert "not checked against a trusted root" not in str(event["detail"])
        tsa.mode = "ok"
        again = run("timestamp", "--archive-dir", str(archive), "--tsa", tsa.url)
        assert again.returncode == 0, again.stderr
    assert len(list(archive.rglob("*.tsr"))) == 1
    assert run("verify", "--archive-dir", str(archive)).returncode == 0


def test_a_token_kept_unchecked_is_held_to_what_was_received(
    tmp_path: Path, site: FixtureSite, tsa_a: LocalTSA, pkis: dict[str, Pki]
) -> None:
    """The mark lets a token without a root through verify (as a note) only as received:
    changed, replaced by another token that holds, or planted beside it, it fails."""
    from rfc3161_client import HashAlgorithm, TimestampRequestBuilder

    archive = tmp_path / "archives"
    out = run("capture", site.url(site.PLAIN), "--archive-dir", str(archive), "--tsa", tsa_a.url)
    assert out.returncode == 0 and timestamp.UNCHECKED in out.stdout, out.stdout + out.stderr
    (token,) = archive.rglob("*.tsr")
    manifest = next(archive.rglob("*.manifest.json"))
    received = token.read_bytes()
    # its TSA's signature changed: checked without a root, it does not hold
    token.write_bytes(received[:-1] + bytes([received[-1] ^ 0x01]))
    failed = run("verify", "--archive-dir", str(archive))
    assert failed.returncode == 1 and "the CMS signature does not verify" in failed.stdout
    # another token of the same authority for the same signature: it holds, but it is
    # not the one whose SHA-256 the signed custody event recorded
    query = (
        TimestampRequestBuilder()
        .data(signature_path(manifest).read_bytes())
        .hash_algorithm(HashAlgorithm.SHA256)
        .cert_request(cert_request=True)
        .build()
    )
    other = sign_query(pkis["a"], query.as_bytes(), der_sort=False)
    rfc3161.check_token_unrooted(other, signature_path(manifest).read_bytes())
    token.write_bytes(other)
    failed = run("verify", "--archive-dir", str(archive))
    assert failed.returncode == 1 and "the token file is not the one received" in failed.stdout
    token.write_bytes(received)
    assert run("verify", "--archive-dir", str(archive)).returncode == 0
    # a forger's token planted beside it, without a custody event: no mark, so its chain
    # must reach a root (it does not: the forger's root is not saved) and it fails
    forged = timestamp.token_path(manifest, "tsa.example.org")
    forged.write_bytes(sign_query(pkis["other"], query.as_bytes(), der_sort=False))
    failed = run("verify", "--archive-dir", str(archive))
    assert failed.returncode == 1, failed.stdout
    assert (
        "time-stamp by tsa.example.org: the TSA certificate chain does not reach a trusted "
        "root" in failed.stdout
    )
    assert f"{timestamp.UNCHECKED}, nor now" in failed.stdout  # the real one: still a note


def test_the_rootless_check_agrees_with_rfc3161_client(
    tmp_path: Path, pkis: dict[str, Pki]
) -> None:
    """rfc3161.check_token_unrooted checks the CMS signature itself (rfc3161-client does only
    with a chain to a root): on good tokens and on every byte of the signed parts changed,
    it agrees with the full check (both refuse), and it refuses a token whose signer is
    not for time-stamping, whatever the chain."""
    data = b"\x5a" * 64
    for kind in ("a", "b"):
        pki = pkis[kind]
        request, nonce = rfc3161.timestamp_request(data)
        good = sign_query(pki, request, der_sort=False)
        info, chain = rfc3161.check_token_unrooted(good, data, nonce=nonce)
        full_info, full_chain = rfc3161.check_token(good, data, [pki.root], nonce=nonce)
        assert info == full_info and chain == full_chain[: len(chain)]
        assert chain[-1] == (pki.intermediate or pki.tsa)
        with pytest.raises(rfc3161.UntrustedChain):
            rfc3161.check_token(good, data, [pkis["other"].root], nonce=nonce)
        signed_attributes = good.index(bytes.fromhex("06092a864886f70d010905"))  # signingTime
        tst_time = good.index(b"\x18\x0f") + 2 + 11
        for at, what in [
            (len(good) - 1, "does not verify"),  # the signature itself
            (len(good) - 40, "does not verify"),
            (signed_attributes + 15, "does not verify"),  # the signing time, signed
            (tst_time, "message digest mismatch"),  # the time in the TSTInfo
        ]:
            bad = good[:at] + bytes([good[at] ^ 0x01]) + good[at + 1 :]
            with pytest.raises(rfc3161.TokenProblem, match=what):
                rfc3161.check_token_unrooted(bad, data)
            with pytest.raises(rfc3161.TokenProblem):
                rfc3161.check_token(bad, data, [pki.root])
    for kind in ("no-eku", "server", "noncritical", "expired"):
        request, _ = rfc3161.timestamp_request(data)
        with pytest.raises(rfc3161.TokenProblem) as refused:
            rfc3161.check_token_unrooted(sign_query(pkis[kind], request), data)
        assert not isinstance(refused.value, rfc3161.UntrustedChain)
