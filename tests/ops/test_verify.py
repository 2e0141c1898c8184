"""archiver verify: a fresh signed capture passes; every kind of tampering fails, located.

The capture is real (the fixture site on loopback, WARC files split in two, signed
with a fixed key); each test tampers with a copy of it using plain file operations,
gzip and pyarrow, never our own writer.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from archiver.capture.run import Capturer
from archiver.core.model import CaptureOptions, CaptureStatus
from archiver.index.store import Index, read_rows
from archiver.ops.ingest import rebuild
from archiver.ops.verify import Problem, Report, verify
from archiver.trust import keys
from archiver.trust.manifest import Manifest, public_key_name, signature_path
from tests.support import runner
from tests.support.deterministic import FixedClock, fixed_signer, sequential_ids
from tests.support.paths import DATA
from tests.support.site import FixtureSite
from tests.support.terminal import stderr_on_terminal

BIN = Path(sys.executable).parent
CORPUS = DATA  # foreign WARC files; see tests/data/README.md
ARTICLE_ID = "20200812100000-0123456789"
PLAIN_ID = "20200812110000-abcdefabcd"


def run(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return runner.run(*args, env=env, installed=True)


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """An archive with two signed captures: the article (two WARC files) and a plain page."""
    archive = tmp_path_factory.mktemp("verify") / "archives"
    with FixtureSite(slow_seconds=0.2, large_video_bytes=3 * 1024 * 1024 + 17) as site:
        for capture_id, url, size in (
            (ARTICLE_ID, site.url(site.ENTRY), 2 * 1024 * 1024),
            (PLAIN_ID, site.url(site.PLAIN), 10**9),
        ):
            capturer = Capturer(
                CaptureOptions(
                    archive_dir=archive,
                    timeout=1.5,
                    warc_max_size=size,
                    operator="A. Archivist",
                    allow_private=True,
                ),
                clock=FixedClock(),
                new_id=lambda moment, cid=capture_id: cid,  # type: ignore[misc]
                new_record_id=sequential_ids(start=1000 if url.endswith("/plain") else 1),
                hostname="test-host",
                signer=fixed_signer(),
            )
            capture = capturer.capture(url)
            assert capture.manifest is not None and capture.sign_error is None
    yield archive


@pytest.fixture
def archive(pristine: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "archives"
    shutil.copytree(pristine, copy)
    return copy


def manifest(archive: Path, capture_id: str = ARTICLE_ID) -> Manifest:
    return Manifest.from_bytes(manifest_file(archive, capture_id).read_bytes())


def manifest_file(archive: Path, capture_id: str = ARTICLE_ID) -> Path:
    return archive / "warc" / "default" / f"{capture_id}.manifest.json"


def failing(report: Report) -> list[Problem]:
    assert not report.ok
    return report.problems


def test_a_fresh_capture_verifies(archive: Path) -> None:
    report = verify(archive)
    assert report.ok, [p.text() for p in report.problems]
    article = next(c for c in report.captures if c.capture_id == ARTICLE_ID)
    assert article.files >= 2 and article.status == CaptureStatus.PARTIAL.value
    assert article.key_fingerprint == fixed_signer().fingerprint and article.trusted is None
    checks = {(c.check, c.ok) for c in article.checks}
    assert {("signature", True), ("public key", True), ("file", True), ("index rows", True)} <= (
        checks
    )
    out = run("verify", "--archive-dir", str(archive))
    assert out.returncode == 0, out.stdout + out.stderr
    assert fixed_signer().fingerprint in out.stdout and "everything holds" in out.stdout
    assert "compare this fingerprint" in out.stdout
    doc = json.loads(run("verify", "--archive-dir", str(archive), "--format", "json").stdout)
    assert doc["ok"] is True
    listed = {c["capture_id"]: c for c in doc["captures"]}
    assert [c["check"] for c in listed[ARTICLE_ID]["checks"]].count("file") == article.files
    assert all(c["ok"] for c in listed[ARTICLE_ID]["checks"])


def test_the_paths_verify_can_be_given(archive: Path) -> None:
    signed = manifest_file(archive)
    warc = archive / manifest(archive).files[1].path
    for what in (ARTICLE_ID, str(signed), str(signature_path(signed)), str(warc)):
        report = verify(archive, [what])
        assert [c.capture_id for c in report.captures] == [ARTICLE_ID] and report.ok, what
    assert {c.capture_id for c in verify(archive, [str(archive)]).captures} == {
        ARTICLE_ID,
        PLAIN_ID,
    }
    out = run("verify", "no-such-capture", "--archive-dir", str(archive))
    assert out.returncode == 2 and "no-such-capture" in out.stderr
    assert "Traceback" not in out.stderr


def test_trusted_keys(archive: Path, tmp_path: Path) -> None:
    mine = tmp_path / "mine.pub.pem"
    mine.write_bytes(keys.public_pem(fixed_signer().key.public_key()))
    ok = run("verify", ARTICLE_ID, "--archive-dir", str(archive), "--trusted-key", str(mine))
    assert ok.returncode == 0 and "a trusted key" in ok.stdout
    other = fixed_signer(2).fingerprint
    bad = run("verify", ARTICLE_ID, "--archive-dir", str(archive), "--trusted-key", other)
    assert bad.returncode == 1 and "not one of the trusted keys" in bad.stdout
    junk = run("verify", "--archive-dir", str(archive), "--trusted-key", "abc")
    assert junk.returncode == 2 and "fingerprint" in junk.stderr


# tampering with the WARC files ------------------------------------------------------
def video_record(archive: Path) -> tuple[Path, int, int, str, str]:
    row = max(manifest(archive).records, key=lambda r: r.warc_length)
    assert row.url is not None and row.url.endswith("/media/large.mp4")
    return archive / row.warc_filename, row.warc_offset, row.warc_length, row.record_id, row.url


def test_one_bit_flipped_in_a_video(archive: Path) -> None:
    path, offset, length, record_id, url = video_record(archive)
    with open(path, "r+b") as fh:
        fh.seek(offset + length // 2)
        byte = fh.read(1)[0]
        fh.seek(offset + length // 2)
        fh.write(bytes([byte ^ 0x01]))
    problems = failing(verify(archive))
    located = [p for p in problems if p.record_id == record_id]
    assert located and all(p.offset == offset and p.url == url for p in located)
    assert any("changed" in p.message or "payload" in p.message for p in located)
    out = run("verify", "--archive-dir", str(archive))
    assert out.returncode == 1 and record_id in out.stdout and f"@ {offset}" in out.stdout


def _member(path: Path, offset: int, length: int) -> bytes:
    with open(path, "rb") as fh:
        fh.seek(offset)
        return fh.read(length)


def _splice(path: Path, offset: int, length: int, new: bytes) -> None:
    data = path.read_bytes()
    path.write_bytes(data[:offset] + new + data[offset + length :])


def test_an_edited_target_uri_is_caught_though_warcio_check_passes(archive: Path) -> None:
    row = next(
        r for r in manifest(archive).records if r.role == "page" and r.warc_type == "response"
    )
    assert row.url is not None
    path = archive / row.warc_filename
    record = gzip.decompress(_member(path, row.warc_offset, row.warc_length))
    edited_url = row.url.replace("/news/", "/newz/")
    edited = record.replace(row.url.encode(), edited_url.encode(), 1)
    assert edited != record
    _splice(path, row.warc_offset, row.warc_length, gzip.compress(edited, mtime=0))
    # the block digest does not cover the WARC head: warcio check finds nothing wrong
    assert subprocess.run([str(BIN / "warcio"), "check", str(path)]).returncode == 0
    problems = failing(verify(archive))
    hit = [p for p in problems if p.record_id == row.record_id and "Target-URI" in p.message]
    assert hit and hit[0].offset == row.warc_offset and edited_url in hit[0].message


def test_a_deleted_record(archive: Path) -> None:
    rows = manifest(archive).records
    row = next(r for r in rows if r.warc_type == "response" and r.role != "page")
    _splice(archive / row.warc_filename, row.warc_offset, row.warc_length, b"")
    problems = failing(verify(archive))
    assert any(p.record_id == row.record_id and p.file == row.warc_filename for p in problems)
    assert any("size" in p.message and p.file == row.warc_filename for p in problems)


def test_two_records_swapped(archive: Path) -> None:
    rows = [r for r in manifest(archive).records if r.warc_filename.endswith("-00000.warc.gz")]
    first, second = rows[1], rows[2]  # adjacent: a request and its response
    path = archive / first.warc_filename
    a = _member(path, first.warc_offset, first.warc_length)
    b = _member(path, second.warc_offset, second.warc_length)
    _splice(path, first.warc_offset, len(a) + len(b), b + a)
    problems = failing(verify(archive))
    named = {p.record_id for p in problems if p.offset is not None}
    assert {first.record_id, second.record_id} <= named


def test_a_truncated_warc(archive: Path) -> None:
    files = manifest(archive).files
    path = archive / files[-1].path
    os.truncate(path, files[-1].size - 100)
    problems = failing(verify(archive))
    last = max(
        (r for r in manifest(archive).records if r.warc_filename == files[-1].path),
        key=lambda r: r.warc_offset,
    )
    assert any("missing" in p.message and p.file == files[-1].path for p in problems)
    assert any(p.record_id == last.record_id for p in problems)


def test_bytes_appended_to_a_warc(archive: Path) -> None:
    entry = manifest(archive).files[0]
    with open(archive / entry.path, "ab") as fh:
        fh.write(b"appended")
    problems = failing(verify(archive))
    appended = [p for p in problems if "after the last signed record" in p.message]
    assert appended and appended[0].offset == entry.size and appended[0].file == entry.path


def test_a_warc_replaced_by_one_from_another_capture(archive: Path) -> None:
    target = manifest(archive).files[0]
    other = manifest(archive, PLAIN_ID).files[0]
    shutil.copyfile(archive / other.path, archive / target.path)
    problems = failing(verify(archive))
    ours = [p for p in problems if p.capture_id == ARTICLE_ID and p.file == target.path]
    assert any("SHA-256" in p.message or "size" in p.message for p in ours)
    assert any(p.record_id and "not the signed one" in p.message for p in ours)
    assert verify(archive, [PLAIN_ID]).ok  # the other capture is untouched


def test_a_warc_file_added_to_a_capture(archive: Path) -> None:
    entry = manifest(archive).files[0]
    extra = (archive / entry.path).with_name(f"{ARTICLE_ID}-00009.warc.gz")
    shutil.copyfile(archive / entry.path, extra)
    problems = failing(verify(archive))
    assert any("does not list" in p.message and p.file and "00009" in p.file for p in problems)


# tampering with the manifest, the signature, the key ---------------------------------
def test_the_manifest_edited_by_one_character(archive: Path) -> None:
    path = manifest_file(archive)
    data = path.read_bytes()
    path.write_bytes(data.replace(b'"operator": "A. Archivist"', b'"operator": "A. Archivisd"'))
    problems = failing(verify(archive))
    assert any("signature does not match" in p.message for p in problems)
    # one character that breaks the JSON
    at = data.index(b'"note": null')
    path.write_bytes(data[:at] + data[at:].replace(b"null", b"nulL", 1))
    problems = failing(verify(archive))
    assert any("not valid" in p.message or "signature" in p.message for p in problems)
    # a one-character change that stays valid JSON: only the signature catches it
    path.write_bytes(data.replace(b'"http_status": 200', b'"http_status": 201', 1))
    problems = failing(verify(archive, [ARTICLE_ID]))
    assert any("signature does not match" in p.message for p in problems)


def test_a_manifest_with_a_key_twice_fails_even_when_properly_signed(archive: Path) -> None:
    """Python's parser keeps the last of two equal keys, a person or grep reads the first:
    a signed manifest must read one way only, so a duplicate key is a failure."""
    path = manifest_file(archive)
    data = path.read_bytes()
    real = b'"operator": "A. Archivist"'
    assert data.count(real) == 1
    twice = data.replace(real, b'"operator": "Someone Else", ' + real)
    path.write_bytes(twice)
    signature_path(path).write_bytes(fixed_signer().sign(twice))  # the archivist's own key
    problems = failing(verify(archive))
    assert any("'operator' appears twice" in p.message for p in problems), problems


def test_a_valid_signature_from_another_key(archive: Path) -> None:
    path = manifest_file(archive)
    signature_path(path).write_bytes(fixed_signer(2).sign(path.read_bytes()))
    problems = failing(verify(archive))
    assert any(
        "signature does not match" in p.message and p.file and p.file.endswith(".sig")
        for p in problems
    )


def test_a_manifest_re_signed_by_someone_else_fails_against_trusted_keys(archive: Path) -> None:
    """An attacker who re-signs with their own key passes only where nobody checks who signed."""
    path = manifest_file(archive)
    mallory = fixed_signer(3)
    data = path.read_bytes().replace(
        fixed_signer().fingerprint.encode(), mallory.fingerprint.encode()
    )
    path.write_bytes(data)
    signature_path(path).write_bytes(mallory.sign(data))
    (archive / public_key_name(mallory.fingerprint)).write_bytes(
        keys.public_pem(mallory.key.public_key())
    )
    report = verify(archive, [ARTICLE_ID], trusted=[fixed_signer().fingerprint])
    assert any("not one of the trusted keys" in p.message for p in failing(report))
    # the index still names the real signer, so the row check catches it as well
    assert any("key_fingerprint" in p.message for p in report.problems)


def test_the_signature_deleted(archive: Path) -> None:
    signature_path(manifest_file(archive)).unlink()
    problems = failing(verify(archive))
    assert any(p.capture_id == ARTICLE_ID and "unsigned" in p.message for p in problems)
    out = run("verify", ARTICLE_ID, "--archive-dir", str(archive))
    assert out.returncode == 1 and "unsigned" in out.stdout


def test_the_manifest_deleted(archive: Path) -> None:
    path = manifest_file(archive)
    path.unlink()
    signature_path(path).unlink()
    problems = failing(verify(archive))
    assert any(
        p.capture_id == ARTICLE_ID and "unsigned or incomplete" in p.message for p in problems
    )
    assert any("no signed manifest vouches" in p.message for p in problems)  # its index rows


def test_the_public_key_replaced_by_another(archive: Path) -> None:
    key_file = archive / public_key_name(fixed_signer().fingerprint)
    key_file.write_bytes(keys.public_pem(fixed_signer(2).key.public_key()))
    problems = failing(verify(archive))
    assert any(
        "holds another key" in p.message and p.file == public_key_name(fixed_signer().fingerprint)
        for p in problems
    )
    # with the signer's key obtained another way, the signature itself still checks out
    mine = archive.parent / "mine.pub.pem"
    mine.write_bytes(keys.public_pem(fixed_signer().key.public_key()))
    trusted = verify(archive, [ARTICLE_ID], trusted=[str(mine)])
    checks = {c.check: c.ok for c in trusted.captures[0].checks}
    assert checks["signature"] and checks["trusted signer"] and not checks["public key"]


# tampering with the index ------------------------------------------------------------
def _edit_parquet(path: Path, column: str, edit: object) -> None:
    table = pq.read_table(path)
    values = table.column(column).to_pylist()
    index = next(i for i, v in enumerate(values) if v is not None)
    values[index] = edit(values[index]) if callable(edit) else edit
    field = table.schema.field(column)
    table = table.set_column(
        table.schema.get_field_index(column), field, pa.array(values, field.type)
    )
    pq.write_table(table, path)


@pytest.mark.parametrize(
    ("table", "column", "edit"),
    [
        ("captures", "operator", "Someone Else"),
        ("records", "url", lambda u: u + "?edited"),
        ("records", "payload_sha256", "0" * 64),
    ],
)
def test_an_edited_index_row(archive: Path, table: str, column: str, edit: object) -> None:
    _edit_parquet(archive / "index" / table / f"{ARTICLE_ID}.parquet", column, edit)
    problems = failing(verify(archive))
    hit = [p for p in problems if f"column {column}" in p.message]
    assert (
        hit
        and hit[0].capture_id == ARTICLE_ID
        and hit[0].file == f"index/{table}/{ARTICLE_ID}.parquet"
    )
    if table == "records":
        assert hit[0].record_id is not None and hit[0].offset is not None


def test_a_deleted_index_file(archive: Path) -> None:
    (archive / "index" / "records" / f"{ARTICLE_ID}.parquet").unlink()
    problems = failing(verify(archive))
    missing = [p for p in problems if "no records row" in p.message]
    assert len(missing) == len(manifest(archive).records)
    assert all(p.record_id for p in missing)


def test_a_row_claiming_a_capture_that_did_not_sign_it(archive: Path) -> None:
    source = archive / "index" / "captures" / f"{PLAIN_ID}.parquet"
    table = pq.read_table(source)
    fake = table.set_column(0, table.schema.field(0), pa.array(["20200101000000-ffffffffff"]))
    pq.write_table(fake, source.with_name("20200101000000-ffffffffff.parquet"))
    problems = failing(verify(archive))
    assert any(
        p.capture_id == "20200101000000-ffffffffff" and "no signed manifest" in p.message
        for p in problems
    )


def test_rebuilt_and_compacted_indexes_still_verify(archive: Path) -> None:
    count, reports = rebuild(archive)
    assert count == 2 and all(r.ok for r in reports)
    assert verify(archive).ok, [p.text() for p in verify(archive).problems]
    Index(archive).compact()
    report = verify(archive)
    assert report.ok, [p.text() for p in report.problems]


# captures that failed, and foreign files ---------------------------------------------
def test_a_failed_capture_verifies_and_shows_its_status(
    site: FixtureSite, make_capturer: Callable[..., Capturer], tmp_path: Path
) -> None:
    capture = make_capturer().capture(site.url("/no/such/page"))
    assert capture.status is CaptureStatus.FAILED and capture.manifest is not None
    out = run("verify", "--archive-dir", str(tmp_path / "archives"))
    assert out.returncode == 0 and "(failed)" in out.stdout


CORPUS_VERDICTS = {
    "example.warc": True,
    "example.warc.gz": True,
    "example-resource.warc.gz": True,
    "example-iana.org-chunked.warc": True,
    "example-wget-bad-target-uri.warc.gz": True,
    "post-test.warc.gz": True,
    "jwarc-cc.warc.gz": True,
    "example-digest.warc": False,
    "example-trunc.warc": False,
    "example-bad-non-chunked.warc.gz": False,
    "example-wrong-chunks.warc.gz": False,
}


@pytest.mark.parametrize(("name", "passes"), sorted(CORPUS_VERDICTS.items()))
def test_foreign_warcs_reach_the_documented_verdicts(
    name: str, passes: bool, tmp_path: Path
) -> None:
    out = run("verify", str(CORPUS / name), "--archive-dir", str(tmp_path / "none"))
    assert "Traceback" not in out.stderr
    assert out.returncode == (0 if passes else 1), out.stdout + out.stderr
    assert "only internal consistency" in out.stdout
    if not passes:
        assert " @ " in out.stdout  # the failing offset is named
    doc = json.loads(
        run("verify", str(CORPUS / name), "--format", "json", "--archive-dir", str(tmp_path)).stdout
    )
    (entry,) = doc["unsigned_files"]
    assert entry["signed"] is False and entry["ok"] is passes
    assert all(p["offset"] is not None for p in entry["problems"])


def test_imported_files_are_checked_against_their_rows(tmp_path: Path) -> None:
    archive = tmp_path / "archives"
    assert (
        run(
            "index", "import", str(CORPUS / "example.warc.gz"), "--archive-dir", str(archive)
        ).returncode
        == 0
    )
    assert verify(archive).ok
    (records_file,) = (archive / "index" / "records").glob("import-*.parquet")
    _edit_parquet(records_file, "url", lambda u: u + "#x")
    assert any("column url" in p.message for p in failing(verify(archive)))


# keys at capture time ----------------------------------------------------------------
def test_the_first_capture_creates_a_key_and_says_so(
    site: FixtureSite, tmp_path: Path, isolated_keys: Path
) -> None:
    archive = tmp_path / "archives"
    first = run("capture", site.url(site.PLAIN), "--archive-dir", str(archive))
    assert first.returncode == 0, first.stderr
    (key,) = isolated_keys.glob("*.key.pem")
    fingerprint = key.name.removesuffix(".key.pem")
    assert f"created signing key {fingerprint}" in first.stderr
    assert key.stat().st_mode & 0o777 == 0o600
    assert (archive / "keys" / f"{fingerprint}.pub.pem").exists()
    second = run("capture", site.url(site.PLAIN), "--archive-dir", str(archive), "--format", "json")
    assert second.returncode == 0 and "created" not in second.stderr
    summary = json.loads(second.stdout)
    assert summary["key_fingerprint"] == fingerprint
    manifest_bytes = Path(summary["manifest"]).read_bytes()
    assert summary["manifest_sha256"] == hashlib.sha256(manifest_bytes).hexdigest()
    rows = {r.capture_id: r for r in read_rows(Index(archive), "captures")}
    row = rows[summary["capture_id"]]
    assert (row.key_fingerprint, row.manifest_sha256) == (fingerprint, summary["manifest_sha256"])
    # the private key is nowhere in the archive
    assert not any(b"PRIVATE KEY" in f.read_bytes() for f in archive.rglob("*") if f.is_file())
    assert (
        run("verify", "--archive-dir", str(archive), "--trusted-key", fingerprint).returncode == 0
    )


def test_keys_that_cannot_sign_stop_the_capture_before_it_starts(
    site: FixtureSite, tmp_path: Path, isolated_keys: Path
) -> None:
    archive = tmp_path / "archives"
    made = run("keys", "generate", "--format", "json", ARCHIVER_KEY_PASSPHRASE="s3cret")
    assert made.returncode == 0
    url = site.url(site.PLAIN)
    no_pass = run("capture", url, "--archive-dir", str(archive))
    assert no_pass.returncode == 1 and "encrypted" in no_pass.stderr
    wrong = run("capture", url, "--archive-dir", str(archive), ARCHIVER_KEY_PASSPHRASE="nope")
    assert wrong.returncode == 1 and "wrong passphrase" in wrong.stderr
    rsa_key = tmp_path / "rsa.key.pem"
    rsa_key.write_bytes(
        rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    other = run("capture", url, "--archive-dir", str(archive), "--key", str(rsa_key))
    assert other.returncode == 1 and "not an Ed25519 key" in other.stderr
    for out in (no_pass, wrong, other):
        assert "Traceback" not in out.stderr
    assert not (archive / "warc").exists()  # nothing was captured unsigned
    right = run("capture", url, "--archive-dir", str(archive), ARCHIVER_KEY_PASSPHRASE="s3cret")
    assert right.returncode == 0 and "signed by" in right.stdout


def test_a_missing_index_is_one_problem_per_capture(archive: Path) -> None:
    shutil.rmtree(archive / "index")
    problems = failing(verify(archive))
    assert sorted(p.capture_id or "" for p in problems) == [ARTICLE_ID, PLAIN_ID]
    assert all("index rebuild" in p.message for p in problems)
    rebuild(archive)
    assert verify(archive).ok


def test_progress_on_a_terminal_only(archive: Path) -> None:
    status, text = stderr_on_terminal("verify", "--archive-dir", str(archive))
    assert status == 0 and "reading file" in text
    piped = run("verify", "--archive-dir", str(archive))
    assert piped.returncode == 0 and piped.stderr == ""


# what an adversarial review found -----------------------------------------------------
def test_a_copy_of_a_capture_file_in_another_folder(archive: Path) -> None:
    entry = manifest(archive).files[0]
    elsewhere = archive / "warc" / "zzz" / f"{ARTICLE_ID}-00007.warc.gz"
    elsewhere.parent.mkdir()
    shutil.copyfile(archive / entry.path, elsewhere)
    for report in (verify(archive), verify(archive, [ARTICLE_ID])):
        problems = failing(report)
        assert any(p.file == "warc/zzz/" + elsewhere.name for p in problems)


@pytest.mark.parametrize("name", ["extra.warc.gz", f".{ARTICLE_ID}-00001.warc.gz"])
def test_a_file_whose_warcinfo_claims_a_signed_capture(archive: Path, name: str) -> None:
    entry = manifest(archive).files[0]
    shutil.copyfile(archive / entry.path, archive / "warc" / "default" / name)
    problems = failing(verify(archive))
    assert any(
        p.file == f"warc/default/{name}" and f"names capture {ARTICLE_ID}" in p.message
        for p in problems
    )


def test_a_planted_compaction_listing_cannot_delete_evidence(archive: Path) -> None:
    folder = archive / "index" / "captures"
    pq.write_table(pq.read_table(folder / f"{PLAIN_ID}.parquet"), folder / "compact-x.parquet")
    warc = manifest(archive).files[0].path
    (folder / ".compact-x.replaces").write_text(f"../../{warc} ../../keys\n")
    assert any("interrupted" in p.message for p in failing(verify(archive)))
    Index(archive).repair()
    assert (archive / warc).exists() and (archive / "keys").exists()


def test_an_index_file_with_an_added_column_or_not_parquet(archive: Path) -> None:
    path = archive / "index" / "captures" / f"{ARTICLE_ID}.parquet"
    table = pq.read_table(path)
    statement = pa.array(["attested by a court"])
    pq.write_table(table.append_column("operator_statement", statement), path)
    assert any("operator_statement" in p.message for p in failing(verify(archive)))
    path.write_bytes(b"not parquet")
    assert any("not a readable index file" in p.message for p in failing(verify(archive)))


@pytest.mark.parametrize(
    "edit",
    [
        lambda d: d.__setitem__("signed_at", "0001-01-01T00:00:00+01:00"),
        lambda d: d["files"][0].__setitem__("path", "warc/default/x\x00y"),
        lambda d: d["files"][0].__setitem__("path", "warc/default/\ud800"),
        lambda d: d["files"][0].__setitem__("path", "../outside.warc.gz"),
        lambda d: d["files"][0].__setitem__("size", 10**1000),
        lambda d: (
            d.__setitem__("capture_id", "/etc"),
            d["capture"].__setitem__("capture_id", "/etc"),
        ),
        lambda d: d["records"][0].__setitem__("url", "http://x/\ud800"),
    ],
)
def test_hostile_manifests_are_problems_not_crashes(archive: Path, edit: Any) -> None:
    path = manifest_file(archive)
    doc = json.loads(path.read_bytes())
    edit(doc)
    path.write_text(json.dumps(doc))
    out = run("verify", "--archive-dir", str(archive), "--format", "json")
    assert out.returncode == 1 and "Traceback" not in out.stderr and "error:" not in out.stderr
    assert json.loads(out.stdout)["ok"] is False


def test_deeply_nested_json_is_not_a_crash(archive: Path) -> None:
    manifest_file(archive).write_bytes(b"[" * 100_000 + b"]" * 100_000)
    problems = failing(verify(archive))
    assert any("not valid" in p.message for p in problems)


@pytest.mark.parametrize("which", ["signature", "key", "warc"])
def test_a_fifo_in_a_files_place_does_not_hang(archive: Path, which: str) -> None:
    target = {
        "signature": signature_path(manifest_file(archive)),
        "key": archive / public_key_name(fixed_signer().fingerprint),
        "warc": archive / manifest(archive).files[0].path,
    }[which]
    target.unlink()
    os.mkfifo(target)
    out = run("verify", "--archive-dir", str(archive))
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert "regular file" in out.stdout


def test_nothing_to_verify_is_not_a_pass(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    out = run("verify", str(tmp_path / "empty"), "--archive-dir", str(tmp_path))
    assert out.returncode == 1 and "nothing to verify" in out.stderr
