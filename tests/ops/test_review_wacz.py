"""What an adversarial review of the WACZ export, verify and import found, each kept as a
test: crafted WACZ files that wrote outside verify's temporary folder, content nothing
signed that verify passed (planted, re-signed by another key, stripped of its signature
or of archiver's block), an export written over the archive's own evidence, a
deduplicated capture exported without the originals its revisits name, a custody excerpt
that told of other captures, a token deleted from the archive yet exported, and inputs
that stopped a run of several files."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from archiver.trust import keys, wacz_signing
from tests.support.runner import run
from tests.support.site import FixtureSite

Items = list[tuple[str, bytes]]


@dataclass
class Two:
    root: Path
    archive: Path
    env: dict[str, str]
    first: str
    second: str  # the same page again: its payloads are revisits of the first's
    one: Path  # the first, exported alone
    both: Path  # both, exported together
    victim_pub: Path


def _env(root: Path) -> dict[str, str]:
    xdg = root / "xdg"
    (xdg / "archiver").mkdir(parents=True, exist_ok=True)
    (xdg / "archiver" / "config.toml").write_text("[capture]\nallow_private = true\n")
    return {"ARCHIVER_KEY_STORE": str(root / "keys"), "XDG_CONFIG_HOME": str(xdg)}


@pytest.fixture(scope="module")
def two(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Two]:
    root = tmp_path_factory.mktemp("review-wacz")
    env = _env(root)
    archive = root / "archives"
    a = ("--archive-dir", str(archive))
    ids = []
    with FixtureSite(slow_seconds=0.1) as site:
        for _ in range(2):
            done = run(
                "capture", site.url(site.ARTICLE), *a, "--format", "json", "--timeout", "1.5",
                env=env,
            )  # fmt: skip
            assert done.returncode in (0, 1), done.stderr  # a script of the page hangs
            ids.append(json.loads(done.stdout.splitlines()[-1])["capture_id"])
    one, both = root / "one.wacz", root / "both.wacz"
    assert run("export", ids[0], "-o", str(both), ids[1], *a, env=env).returncode == 0
    assert run("export", ids[0], "-o", str(one), *a, env=env).returncode == 0
    (victim,) = [p for p in (archive / "keys").glob("*.pub.pem") if len(p.name) == 64 + 8]
    yield Two(root, archive, env, ids[0], ids[1], one, both, victim)


def members(path: Path) -> Items:
    with zipfile.ZipFile(path) as zf:
        return [(info.filename, zf.read(info)) for info in zf.infolist()]


def write(path: Path, items: Items) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in items:
            zf.writestr(zipfile.ZipInfo(name, (2026, 1, 1, 0, 0, 0)), data)
    return path


def relisted(items: Items, edit: object = None) -> tuple[Items, dict[str, object]]:
    """The files with datapackage.json listing them again (its digest left out)."""
    found = dict(items)
    package = json.loads(found["datapackage.json"])
    rest = [(n, b) for n, b in items if n not in ("datapackage.json", "datapackage-digest.json")]
    package["resources"] = [
        {
            "name": n.replace("/", "-"),
            "path": n,
            "hash": "sha256:" + hashlib.sha256(b).hexdigest(),
            "bytes": len(b),
        }
        for n, b in rest
    ]
    if callable(edit):
        edit(package)
    return [*rest, ("datapackage.json", json.dumps(package, indent=2).encode() + b"\n")], package


def planted_warc() -> bytes:
    buffer = io.BytesIO()
    writer = WARCWriter(buffer, gzip=True)
    head = StatusAndHeaders("200 OK", [("Content-Type", "text/html")], protocol="HTTP/1.1")
    record = writer.create_warc_record(
        "http://127.0.0.1/planted",
        "response",
        payload=io.BytesIO(b"<h1>planted</h1>"),
        http_headers=head,
    )
    writer.write_record(record)
    return buffer.getvalue()


def verified(two: Two, path: Path, *extra: str) -> tuple[int, dict[str, object]]:
    done = run("verify", str(path), "--format", "json", *extra, env=two.env)
    assert "Traceback" not in done.stderr, done.stderr
    return done.returncode, json.loads(done.stdout)


def problems(report: dict[str, object]) -> str:
    return " | ".join(report["problems"])  # type: ignore[arg-type]


# -- 1. nothing is written outside verify's temporary folder ---------------------------------


def test_a_chain_named_like_a_path_writes_nothing_outside(two: Two) -> None:
    target = two.root / "escaped"
    items = members(two.one)
    items.insert(3, (f"archiver/tsa.{target}/x.{'a' * 64}.pem", b"ATTACKER CONTENT\n"))
    path = write(two.root / "t-path.wacz", items)
    code, report = verified(two, path)
    assert (code == 1 and "not a plain path" not in problems(report)) or code == 1
    assert not target.exists()
    imported = run("import", str(path), "--archive-dir", str(two.root / "import-here"), env=two.env)
    assert imported.returncode == 1 and not target.exists()
    assert "Traceback" not in imported.stderr


# -- 2. export never writes inside the archive ---------------------------------------------


def test_export_refuses_to_write_inside_the_archive(two: Two) -> None:
    warc = next((two.archive / "warc").rglob(f"{two.first}-00000.warc.gz"))
    before = warc.read_bytes()
    for target in (warc, two.archive / "keys" / "x.wacz", two.archive / "warc" / "new.wacz"):
        done = run(
            "export",
            two.first,
            "-o",
            str(target),
            "--force",
            "--archive-dir",
            str(two.archive),
            env=two.env,
        )
        assert done.returncode == 2 and "inside the archive" in done.stderr, done.stderr
    assert warc.read_bytes() == before and not (two.archive / "warc" / "new.wacz").exists()
    dash = run(
        "export", two.first, "-o", "-", "--archive-dir", str(two.archive), env=two.env, cwd=two.root
    )
    assert dash.returncode == 2 and not (two.root / "-").exists()


# -- 3. content nothing signed never passes --------------------------------------------------


def _attacker() -> tuple[wacz_signing.WaczKey, str, bytes]:
    ed = ed25519.Ed25519PrivateKey.generate()
    p384 = ec.generate_private_key(ec.SECP384R1())
    fp = keys.fingerprint(ed.public_key())
    statement = wacz_signing.binding_statement(fp, p384.public_key(), datetime.now(UTC))
    key = wacz_signing.WaczKey(p384, fp, Path("/dev/null"), statement, ed.sign(statement))
    pem = ed.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return key, fp, pem


def test_a_planted_warc_re_signed_by_another_key_fails(two: Two) -> None:
    key, fp, pem = _attacker()
    items = [(n, b) for n, b in members(two.one)]
    items.insert(1, ("archive/zz-planted.warc.gz", planted_warc()))
    items += [
        (f"archiver/{fp}.pub.pem", pem),
        (f"archiver/{fp}.p384.binding.json", key.binding),
        (f"archiver/{fp}.p384.binding.json.sig", key.binding_signature),
    ]

    def signer(package: dict[str, object]) -> None:
        package["archiver"]["signer"] = fp  # type: ignore[index]

    items, package = relisted(items, signer)
    digest = wacz_signing.sign_datapackage(
        key, dict(items)["datapackage.json"], str(package["created"]), "x"
    )
    path = write(
        two.root / "t-planted.wacz",
        [*items, ("datapackage-digest.json", json.dumps(digest).encode())],
    )
    code, report = verified(two, path, "--trusted-key", str(two.victim_pub))
    assert code == 1 and "not a trusted key" in problems(report)
    assert "archive/zz-planted.warc.gz" in problems(report)
    code, report = verified(two, path)  # even with no key named: nothing signed it
    assert code == 1 and "archive/zz-planted.warc.gz" in problems(report)
    imported = run(
        "import", str(path), "--archive-dir", str(two.root / "planted-import"), env=two.env
    )
    assert imported.returncode == 1


def test_a_wacz_stripped_of_its_signature_fails(two: Two) -> None:
    items = [(n, b) for n, b in members(two.one) if n != "datapackage-digest.json"]
    code, report = verified(two, write(two.root / "t-unsigned.wacz", items))
    assert code == 1 and "not signed" in problems(report)
    assert report["signer"] is None


def test_a_wacz_stripped_of_archivers_block_fails_with_a_trusted_key(two: Two) -> None:
    items = [(n, b) for n, b in members(two.one) if n != "datapackage-digest.json"]
    warc = next(n for n, _ in items if n.startswith("archive/"))
    items = [(n, b + planted_warc() if n == warc else b) for n, b in items]

    def strip(package: dict[str, object]) -> None:
        del package["archiver"]

    items, _ = relisted(items, strip)
    path = write(two.root / "t-downgraded.wacz", items)
    code, report = verified(two, path, "--trusted-key", str(two.victim_pub))
    assert code == 1 and "nothing in it is signed by a trusted key" in problems(report)


def test_bytes_around_the_zip_fail(two: Two) -> None:
    data = two.one.read_bytes()
    prepended = two.root / "t-prepended.wacz"
    prepended.write_bytes(b"<html>hello</html>\n" + data)
    code, report = verified(two, prepended)
    assert code == 1 and "before its first ZIP entry" in problems(report)


# -- 4. a deduplicated capture travels with its originals -----------------------------------


def test_a_revisit_capture_is_exported_with_its_originals(two: Two) -> None:
    out = two.root / "second.wacz"
    done = run(
        "export",
        two.second,
        "-o",
        str(out),
        "--archive-dir",
        str(two.archive),
        "--format",
        "json",
        env=two.env,
    )
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert doc["captures"] == [two.second, two.first]
    assert doc["originals"] == {two.first: two.second}
    with zipfile.ZipFile(out) as zf:
        names = set(zf.namelist())
        index = zf.read("indexes/index.cdxj").decode()
    assert f"archive/{two.first}-00000.warc.gz" in names
    assert '"mime": "warc/revisit"' in index
    code, report = verified(two, out)
    assert code == 0, problems(report)
    shown = run(
        "export",
        two.second,
        "-o",
        str(two.root / "second-text.wacz"),
        "--archive-dir",
        str(two.archive),
        env=two.env,
    )
    assert f"also exported {two.first}" in shown.stdout


# -- 5. the custody excerpt tells of these captures only --------------------------------------


def test_the_custody_excerpt_names_no_other_capture(two: Two) -> None:
    with zipfile.ZipFile(two.one) as zf:
        lines = zf.read("archiver/custody.jsonl").splitlines()
    events = [json.loads(line) for line in lines]
    assert events and all(e["captures"] == [two.first] for e in events)
    assert not any(f["path"].startswith("/") for e in events for f in e["files"])
    assert two.second.encode() not in b"".join(lines)


def test_export_refuses_when_a_logged_token_is_gone(two: Two, tmp_path: Path) -> None:
    import shutil

    from tests.support.tsa import LocalTSA, make_pki

    copy = tmp_path / "archive"
    shutil.copytree(two.archive, copy)
    pki = make_pki(tmp_path / "pki", "gone")
    with LocalTSA(pki) as tsa:
        stamped = run(
            "timestamp", two.first, "--tsa", tsa.url, "--tsa-ca", str(pki.root_cert),
            "--archive-dir", str(copy), env=two.env,
        )  # fmt: skip
    assert stamped.returncode == 0, stamped.stderr
    (token,) = (copy / "warc").rglob(f"{two.first}.manifest.json.sig.*.tsr")
    token.unlink()  # the custody log still says it was received
    out = tmp_path / "x.wacz"
    done = run("export", two.first, "-o", str(out), "--archive-dir", str(copy), env=two.env)
    assert done.returncode == 1 and token.name in done.stderr, done.stderr
    assert "Traceback" not in done.stderr and not out.exists()


# -- 6. one bad file does not stop a run of several ------------------------------------------


def test_a_digest_nested_too_deep_is_one_failed_file_among_others(two: Two) -> None:
    deep = b"[" * 100_000 + b"]" * 100_000
    items = [(n, deep if n == "datapackage-digest.json" else b) for n, b in members(two.one)]
    path = write(two.root / "t-deep.wacz", items)
    done = run("verify", str(two.one), str(path), str(two.both), env=two.env)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stdout.count(": OK") == 2 and "t-deep.wacz: FAILED" in done.stdout


def test_export_and_verify_name_the_same_p384_key(two: Two) -> None:
    out = two.root / "again.wacz"
    done = run(
        "export",
        two.first,
        "-o",
        str(out),
        "--archive-dir",
        str(two.archive),
        "--format",
        "json",
        env=two.env,
    )
    code, report = verified(two, out)
    assert (
        code == 0
        and json.loads(done.stdout)["p384_public_key_sha256"] == report["p384_public_key_sha256"]
    )


# -- the second review ---------------------------------------------------------------------


def _raw_zip(path: Path, items: Items, *, gap: bytes = b"", extra: bytes = b"") -> Path:
    """A ZIP written by hand: bytes ``gap`` after the first entry that the directory never
    points to, or ``extra`` in the first entry's local header."""
    import struct
    import zlib

    out = bytearray()
    central = bytearray()
    for number, (name, data) in enumerate(items):
        crc = zlib.crc32(data)
        raw = name.encode()
        local_extra = extra if number == 0 else b""
        offset = len(out)
        out += struct.pack(
            "<IHHHHHIIIHH",
            0x04034B50,
            20,
            0,
            0,
            0,
            0,
            crc,
            len(data),
            len(data),
            len(raw),
            len(local_extra),
        )
        out += raw + local_extra + data
        if number == 0:
            out += gap
        central += struct.pack(
            "<IHHHHHHIIIHHHHHII",
            0x02014B50,
            20,
            20,
            0,
            0,
            0,
            0,
            crc,
            len(data),
            len(data),
            len(raw),
            0,
            0,
            0,
            0,
            0,
            offset,
        )
        central += raw
    start = len(out)
    out += central
    out += struct.pack(
        "<IHHHHIIH", 0x06054B50, 0, 0, len(items), len(items), len(central), start, 0
    )
    path.write_bytes(bytes(out))
    return path


def test_hidden_bytes_and_folder_entries_fail(two: Two) -> None:
    items = members(two.one)
    cases = {
        "gap": _raw_zip(two.root / "t-gap.wacz", items, gap=planted_warc()),
        "extra": _raw_zip(
            two.root / "t-extra.wacz",
            items,
            extra=b"\x99\x99" + (4000).to_bytes(2, "little") + b"x" * 4000,
        ),
        "folder": write(
            two.root / "t-folder.wacz", [*items, ("archive/planted.warc.gz/", planted_warc())]
        ),
    }
    for label, path in cases.items():
        code, report = verified(two, path, "--trusted-key", str(two.victim_pub))
        assert code == 1, (label, report)
    imported = run(
        "import",
        str(cases["folder"]),
        "--archive-dir",
        str(two.root / "folder-import"),
        env=two.env,
    )
    assert imported.returncode == 1
    assert not list((two.root / "folder-import").rglob("planted*"))


def test_an_encrypted_entry_is_one_failed_file_among_others(two: Two) -> None:
    data = bytearray(two.one.read_bytes())
    with zipfile.ZipFile(two.one) as zf:
        first = zf.infolist()[0]
    # the general-purpose flag's bit 0 (encrypted), in the local header and the directory
    data[first.header_offset + 6] |= 1
    at = bytes(data).find(b"PK\x01\x02")
    data[at + 8] |= 1
    path = two.root / "t-encrypted.wacz"
    path.write_bytes(bytes(data))
    done = run("verify", str(path), str(two.one), env=two.env)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "t-encrypted.wacz: FAILED" in done.stdout and done.stdout.count(": OK") == 1


def test_a_compressed_index_from_another_zlib_still_verifies(two: Two, tmp_path: Path) -> None:
    """Another zlib (zlib-ng, a platform's) compresses the same lines to other bytes: the
    lines are what verify compares."""
    import gzip

    from archiver.index import cdxj

    index = dict(members(two.one))["indexes/index.cdxj"].splitlines()
    blocks = [index[i : i + 7] for i in range(0, len(index), 7)]
    data, idx_lines = b"", [b'!meta 0 {"format": "cdxj-gzip-1.0", "filename": "index.cdx.gz"}']
    for block in blocks:
        member = gzip.compress(b"".join(line + b"\n" for line in block), compresslevel=1, mtime=0)
        where = {
            "offset": len(data),
            "length": len(member),
            "digest": "sha256:" + hashlib.sha256(member).hexdigest(),
        }
        idx_lines.append(block[0].split(b"{", 1)[0].strip() + b" " + json.dumps(where).encode())
        data += member
    idx = b"\n".join(idx_lines) + b"\n"
    lines, problems = cdxj.read_compressed(data, idx)
    assert problems == [] and lines == index
    lines, problems = cdxj.read_compressed(data + b"x", idx)
    assert problems and "no index.idx line" in problems[-1]


def test_export_never_writes_into_the_custody_log_or_tsa(two: Two) -> None:
    log = two.archive / "custody" / "events.jsonl"
    before = log.read_bytes()
    done = run(
        "export",
        two.first,
        "-o",
        str(log),
        "--force",
        "--archive-dir",
        str(two.archive),
        env=two.env,
    )
    assert done.returncode == 2 and "inside the archive" in done.stderr
    assert log.read_bytes() == before
