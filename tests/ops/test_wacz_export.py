"""``archiver export`` writes a WACZ that other tools accept and our verify checks whole.

A real capture of the fixture article (time-stamped by a local RFC 3161 authority) is
exported through the command line.  Then: py-wacz's ``wacz validate`` accepts the file;
the ZIP stores every file (never deflated) and the WARC files byte for byte; every CDXJ
line leads warcio, reading the WARC file inside the ZIP at that offset, to a record with
that URL and payload digest; ``pages.jsonl`` and ``datapackage.json`` say what the index
says; ``archiver verify FILE.wacz`` holds, and fails, naming what, for each way of
changing the file.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from warcio.archiveiterator import ArchiveIterator

from archiver.index import query
from archiver.trust import keys
from tests.support.runner import run
from tests.support.site import FixtureSite
from tests.support.tsa import LocalTSA, make_pki

BIN = Path(sys.executable).parent


@dataclass
class Exported:
    root: Path
    archive: Path
    env: dict[str, str]
    capture_id: str
    wacz: Path
    export: dict[str, object]
    root_cert: Path


def _env(root: Path) -> dict[str, str]:
    xdg = root / "xdg"
    (xdg / "archiver").mkdir(parents=True, exist_ok=True)
    (xdg / "archiver" / "config.toml").write_text("[capture]\nallow_private = true\n")
    return {
        "ARCHIVER_KEY_STORE": str(root / "keys"),
        "XDG_CONFIG_HOME": str(xdg),
        "ARCHIVER_KEY": None,  # type: ignore[dict-item]  # removed from the environment
        "ARCHIVER_KEY_PASSPHRASE": None,  # type: ignore[dict-item]
    }


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Exported]:
    root = tmp_path_factory.mktemp("wacz")
    env = _env(root)
    archive = root / "archives"
    pki = make_pki(root / "pki", "wacz-tsa")
    with FixtureSite(slow_seconds=0.1) as site, LocalTSA(pki) as tsa:
        a = ("--archive-dir", str(archive))
        done = run(
            "capture", site.url(site.ARTICLE), *a, "--format", "json", "--timeout", "1.5",
            "--tsa", tsa.url, "--tsa-ca", str(pki.root_cert), env=env,
        )  # fmt: skip
        assert done.returncode in (0, 1), done.stderr  # the article has a script that hangs
        capture_id = json.loads(done.stdout.splitlines()[-1])["capture_id"]
    wacz = root / "out" / "capture.wacz"
    done = run("export", capture_id, "-o", str(wacz), *a, "--format", "json", env=env)
    assert done.returncode == 0, done.stderr
    yield Exported(
        root, archive, env, capture_id, wacz, json.loads(done.stdout), Path(pki.root_cert)
    )


def _copy(exported: Exported, name: str) -> Path:
    target = exported.root / "copies" / name
    target.parent.mkdir(exist_ok=True)
    shutil.copyfile(exported.wacz, target)
    return target


def _verify(exported: Exported, path: Path, *extra: str) -> tuple[int, dict[str, object]]:
    done = run("verify", str(path), "--format", "json", *extra, env=exported.env)
    assert done.returncode in (0, 1), done.stderr
    assert "Traceback" not in done.stderr
    return done.returncode, json.loads(done.stdout)


# -- other tools accept it --------------------------------------------------------------


def test_wacz_validate_accepts_it(exported: Exported) -> None:
    done = subprocess.run(
        [str(BIN / "wacz"), "validate", "-f", str(exported.wacz)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Validation succeeded" in done.stdout


def test_files_are_stored_and_the_warc_files_are_byte_for_byte(exported: Exported) -> None:
    warcs = sorted((exported.archive / "warc").rglob(f"{exported.capture_id}-*.warc.gz"))
    assert warcs
    with zipfile.ZipFile(exported.wacz) as zf:
        assert all(info.compress_type == zipfile.ZIP_STORED for info in zf.infolist())
        for warc in warcs:
            assert zf.read(f"archive/{warc.name}") == warc.read_bytes()
        names = set(zf.namelist())
    for expected in (
        "indexes/index.cdxj",
        "pages/pages.jsonl",
        "datapackage.json",
        "datapackage-digest.json",
        f"archiver/{exported.capture_id}.manifest.json",
        f"archiver/{exported.capture_id}.manifest.json.sig",
        f"archiver/{exported.capture_id}.manifest.json.sig.127.0.0.1-{_tsa_port(names)}.tsr",
        "archiver/custody.jsonl",
    ):
        assert expected in names, sorted(names)
    assert any(n.startswith("archiver/tsa.") and n.endswith(".pem") for n in names)
    assert all(n.count("/") == 1 for n in names if "/" in n)  # what wacz validate reads


def _tsa_port(names: set[str]) -> str:
    token = next(n for n in names if n.endswith(".tsr"))
    return token.rsplit("-", 1)[1].removesuffix(".tsr")


def test_every_index_line_leads_to_its_record(exported: Exported) -> None:
    """warcio reads the record at each line's offset in the WARC file inside the ZIP."""
    with zipfile.ZipFile(exported.wacz) as zf:
        lines = zf.read("indexes/index.cdxj").splitlines()
        assert lines == sorted(lines)
        warcs = {
            n.removeprefix("archive/"): zf.read(n)
            for n in zf.namelist()
            if n.startswith("archive/")
        }
    rows = query.run(
        exported.archive,
        "select count(*) as n from records where capture_id = ? and warc_type in "
        "('response', 'revisit', 'resource')",
        [exported.capture_id],
    ).rows
    assert len(lines) == rows[0]["n"] > 20
    for raw in lines:
        key, stamp, doc = raw.decode().split(" ", 2)
        fields = json.loads(doc)
        assert key.startswith("1,0,0,127:")  # the SURT of a 127.0.0.1 URL
        data = warcs[fields["filename"]]
        start, length = int(fields["offset"]), int(fields["length"])
        record = next(iter(ArchiveIterator(io.BytesIO(data[start : start + length]))))
        assert record.rec_headers.get_header("WARC-Target-URI") == fields["url"]
        assert record.rec_headers.get_header("WARC-Payload-Digest") == fields["digest"]
        assert stamp == record.rec_headers.get_header("WARC-Date")[:19].translate(
            str.maketrans("", "", "-T:")
        )


def test_pages_and_datapackage_say_what_the_index_says(exported: Exported) -> None:
    capture = query.run(
        exported.archive, "select * from captures where capture_id = ?", [exported.capture_id]
    ).rows[0]
    with zipfile.ZipFile(exported.wacz) as zf:
        pages = [json.loads(line) for line in zf.read("pages/pages.jsonl").splitlines()]
        package = json.loads(zf.read("datapackage.json"))
        digest = json.loads(zf.read("datapackage-digest.json"))
        package_bytes = zf.read("datapackage.json")
        contents = {n: zf.read(n) for n in zf.namelist()}
    assert pages[0] == {"format": "json-pages-1.0", "id": "pages", "title": "All Pages"}
    (page,) = pages[1:]
    assert page["url"] == capture["final_url"] and page["title"] == capture["title"]
    assert page["capture_id"] == exported.capture_id and page["ts"].endswith("Z")
    assert package["wacz_version"] == "1.1.1"
    assert package["mainPageUrl"] == capture["final_url"]
    assert package["archiver"]["captures"] == [exported.capture_id]
    assert package["archiver"]["signer"] == capture["key_fingerprint"]
    listed = {r["path"]: r for r in package["resources"]}
    assert set(listed) == set(contents) - {"datapackage.json", "datapackage-digest.json"}
    for name, resource in listed.items():
        assert resource["hash"] == "sha256:" + hashlib.sha256(contents[name]).hexdigest()
        assert resource["bytes"] == len(contents[name])
    assert digest["hash"] == "sha256:" + hashlib.sha256(package_bytes).hexdigest()
    assert digest["signedData"]["hash"] == digest["hash"]
    assert digest["signedData"]["created"] == package["created"]
    assert exported.export["sha256"] == hashlib.sha256(exported.wacz.read_bytes()).hexdigest()


def test_the_export_is_in_the_custody_log(exported: Exported) -> None:
    events = [
        json.loads(line)
        for line in (exported.archive / "custody" / "events.jsonl").read_text().splitlines()
    ]
    (event,) = [e for e in events if e["action"] == "export"]
    assert event["captures"] == [exported.capture_id]
    assert event["files"] == [
        {"path": str(exported.wacz.resolve()), "sha256": exported.export["sha256"]}
    ]
    assert event["signature"]
    binding = exported.archive / "keys" / f"{event['key_fingerprint']}.p384.binding.json"
    assert binding.is_file() and binding.with_name(binding.name + ".sig").is_file()


# -- verify ----------------------------------------------------------------------------


def test_verify_holds_from_the_file_alone(exported: Exported) -> None:
    alone = exported.root / "elsewhere" / "copy.wacz"
    alone.parent.mkdir(exist_ok=True)
    shutil.copyfile(exported.wacz, alone)
    code, report = _verify(exported, alone, "--tsa-ca", str(exported.root_cert))
    assert code == 0, report["problems"]
    assert report["signature"] == "valid" and report["made_by_archiver"]
    (capture,) = report["captures"]  # type: ignore[misc]
    assert capture["capture_id"] == exported.capture_id and capture["records"] > 20
    (stamp,) = capture["timestamps"]
    assert stamp["ok"] and stamp["root_given"]
    done = run("verify", str(alone), env=exported.env)
    assert done.returncode == 0 and ": OK" in done.stdout and "time-stamped" in done.stdout


def _rewrite(
    source: Path, target: Path, change: dict[str, bytes | None], add: dict[str, bytes] | None = None
) -> Path:
    """The same ZIP with members changed (None: left out) or added."""
    with zipfile.ZipFile(source) as zin, zipfile.ZipFile(target, "w") as zout:
        for info in zin.infolist():
            if info.filename in change:
                data = change[info.filename]
                if data is None:
                    continue
            else:
                data = zin.read(info)
            zout.writestr(info, data)
        for name, data in (add or {}).items():
            zout.writestr(name, data)
    return target


def _member(path: Path, name: str) -> bytes:
    with zipfile.ZipFile(path) as zf:
        return zf.read(name)


def _flip(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 1]) + data[at + 1 :]


def test_verify_fails_for_each_change(exported: Exported) -> None:
    src = exported.wacz
    warc = next(n for n in zipfile.ZipFile(src).namelist() if n.startswith("archive/"))
    manifest = f"archiver/{exported.capture_id}.manifest.json"
    token = next(n for n in zipfile.ZipFile(src).namelist() if n.endswith(".tsr"))
    package = _member(src, "datapackage.json")
    cases: dict[str, tuple[dict[str, bytes | None], dict[str, bytes] | None, str]] = {
        "warc byte": ({warc: _flip(_member(src, warc), 5000)}, None, warc),
        "warc gone": ({warc: None}, None, warc),
        "manifest": ({manifest: _flip(_member(src, manifest), 100)}, None, manifest),
        "token gone": ({token: None}, None, token),
        "added file": ({}, {"archive/extra.warc.gz": b"x"}, "archive/extra.warc.gz"),
        "datapackage": (
            {"datapackage.json": package.replace(b'"wacz_version"', b'"wacz_version" ', 1)},
            None,
            "datapackage.json",
        ),
        "index": (
            {"indexes/index.cdxj": _member(src, "indexes/index.cdxj")[:-200] + b"\n"},
            None,
            "indexes/index.cdxj",
        ),
    }
    for label, (change, add, named) in cases.items():
        path = _rewrite(src, exported.root / f"changed-{label.replace(' ', '-')}.wacz", change, add)
        code, report = _verify(exported, path)
        assert code == 1, label
        problems = " ".join(report["problems"])  # type: ignore[arg-type]
        assert named in problems, (label, problems)


def test_verify_fails_for_a_signature_by_another_key(exported: Exported) -> None:
    """A datapackage re-signed by someone else's P-384 key: the signature holds for
    that key, but no statement of the archivist's binds it."""
    from archiver.trust import keys, wacz_signing

    store = exported.root / "other-keys"
    info = keys.generate(store)
    signer = keys.Signer.load(info.path, None)
    other = wacz_signing.wacz_key(info, signer, None)
    package = _member(exported.wacz, "datapackage.json")
    created = json.loads(package)["created"]
    digest = wacz_signing.sign_datapackage(other, package, created, "someone else")
    path = _rewrite(
        exported.wacz,
        exported.root / "resigned.wacz",
        {"datapackage-digest.json": json.dumps(digest).encode()},
    )
    code, report = _verify(exported, path)
    assert code == 1 and report["signature"] == "valid"
    assert any("binding" in p for p in report["problems"])  # type: ignore[union-attr]


def test_verify_of_what_is_no_wacz(exported: Exported) -> None:
    junk = exported.root / "junk.wacz"
    junk.write_bytes(b"not a zip at all\n" * 10)
    code, report = _verify(exported, junk)
    assert code == 1 and "not a ZIP file" in " ".join(report["problems"])  # type: ignore[arg-type]
    done = run("verify", str(exported.root / "missing.wacz"), env=exported.env)
    assert done.returncode in (1, 2) and "missing.wacz" in done.stderr
    assert "Traceback" not in done.stderr


def test_trusted_key_other_than_the_signer_fails(exported: Exported) -> None:
    code, report = _verify(exported, exported.wacz, "--trusted-key", "ab" * 32)
    assert code == 1 and "not a trusted key" in " ".join(report["problems"])  # type: ignore[arg-type]


# -- export refuses -----------------------------------------------------------------------


def test_export_refuses_what_it_cannot_vouch_for(exported: Exported) -> None:
    a = ("--archive-dir", str(exported.archive))
    out = exported.root / "refused.wacz"
    unknown = run("export", "20990101000000-0000000000", "-o", str(out), *a, env=exported.env)
    assert unknown.returncode == 2 and "no capture 20990101000000-0000000000" in unknown.stderr
    exists = run("export", exported.capture_id, "-o", str(exported.wacz), *a, env=exported.env)
    assert exists.returncode == 2 and "exists" in exists.stderr
    # a WARC file changed in the archive since it was signed: nothing is exported
    copy = exported.root / "tampered-archive"
    shutil.copytree(exported.archive, copy)
    warc = next((copy / "warc").rglob("*.warc.gz"))
    data = bytearray(warc.read_bytes())
    data[3000] ^= 1
    warc.write_bytes(bytes(data))
    bad = run(
        "export", exported.capture_id, "-o", str(out), "--archive-dir", str(copy), env=exported.env
    )
    assert bad.returncode == 1 and warc.name in bad.stderr and "Traceback" not in bad.stderr
    assert not out.exists()
    assert not [p for p in out.parent.iterdir() if p.name.endswith(".part")]


def test_export_with_no_key_fails_clearly(exported: Exported, tmp_path: Path) -> None:
    env = {**exported.env, "ARCHIVER_KEY_STORE": str(tmp_path / "empty")}
    out = tmp_path / "x.wacz"
    done = run(
        "export",
        exported.capture_id,
        "-o",
        str(out),
        "--archive-dir",
        str(exported.archive),
        env=env,
    )
    assert done.returncode == 1 and "no signing key" in done.stderr and not out.exists()


def test_an_encrypted_key_makes_an_encrypted_p384_key(tmp_path: Path, exported: Exported) -> None:
    env = {**exported.env, "ARCHIVER_KEY_STORE": str(tmp_path / "keys")}
    made = run("keys", "generate", env={**env, "ARCHIVER_KEY_PASSPHRASE": "correct horse"})
    assert made.returncode == 0, made.stderr
    out = tmp_path / "enc.wacz"
    a = (exported.capture_id, "-o", str(out), "--archive-dir", str(exported.archive))
    refused = run("export", *a, env=env)
    assert refused.returncode == 1 and "passphrase" in refused.stderr and not out.exists()
    done = run("export", *a, env={**env, "ARCHIVER_KEY_PASSPHRASE": "correct horse"})
    assert done.returncode == 0, done.stderr
    (p384,) = (tmp_path / "keys").glob("*.p384.key.pem")
    assert b"ENCRYPTED" in p384.read_bytes()[:64] and os.stat(p384).st_mode & 0o777 == 0o600


# -- ReplayWeb.page's engine checks the signature with its own code ------------------------


def test_wabac_checks_the_signature(exported: Exported) -> None:
    from tests.support import wabac

    digest_bytes = _member(exported.wacz, "datapackage-digest.json")
    package = _member(exported.wacz, "datapackage.json")
    loaded = wabac.load_digest_data(digest_bytes)  # the gate ReplayWeb.page passes first
    assert loaded["hash"] == "sha256:" + hashlib.sha256(package).hexdigest()
    signed = json.loads(digest_bytes)["signedData"]
    results = wabac.verify_wacz_signature(signed)
    assert wabac.signature_matched(results), results
    # the same check fails for another datapackage (one byte changed)
    other = dict(signed, hash="sha256:" + hashlib.sha256(_flip(package, 10)).hexdigest())
    assert not wabac.signature_matched(wabac.verify_wacz_signature(other))


# -- docs/verifying.md: the WACZ checked with stock tools, as written there ---------------


def test_the_documented_wacz_checks_with_stock_tools(exported: Exported) -> None:
    from tests.support.doc_checks import doc_checks

    folder = exported.root / "unzipped"
    shutil.rmtree(folder, ignore_errors=True)
    with zipfile.ZipFile(exported.wacz) as zf:
        zf.extractall(folder)
        names = zf.namelist()
    fingerprint = next(n for n in names if n.endswith(".p384.binding.json")).split("/")[1]
    env = {
        **os.environ,
        "LC_ALL": "C",
        "FP": fingerprint.removesuffix(".p384.binding.json"),
        "ID": exported.capture_id,
    }
    checks = doc_checks()

    def sh(name: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["sh", "-c", checks[name]],
            cwd=folder,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )

    files = sh("wacz-files")
    assert files.returncode == 0, files.stdout + files.stderr
    ok = [line for line in files.stdout.splitlines() if line.endswith(": OK")]
    assert len(ok) == len(names) - 2  # all but datapackage.json and its digest
    assert files.stdout.endswith("no file beside those listed\n")
    signature = sh("wacz-signature")
    assert signature.returncode == 0 and signature.stdout == "2\nVerified OK\n", signature
    binding = sh("wacz-binding")
    assert binding.returncode == 0, binding.stdout + binding.stderr
    assert binding.stdout.startswith(f"{env['FP']}  -\n1\nSignature Verified Successfully")
    assert "the bound key signed this WACZ" in binding.stdout
    manifest = sh("wacz-manifest")
    assert manifest.returncode == 0, manifest.stdout + manifest.stderr
    assert "Signature Verified Successfully" in manifest.stdout
    assert f"archive/{exported.capture_id}-00000.warc.gz: OK" in manifest.stdout
    # and they fail when a file changed
    warc = folder / "archive" / f"{exported.capture_id}-00000.warc.gz"
    data = bytearray(warc.read_bytes())
    data[100] ^= 1
    warc.write_bytes(bytes(data))
    assert sh("wacz-files").returncode == 1 and sh("wacz-manifest").returncode == 1
    data[100] ^= 1
    warc.write_bytes(bytes(data))
    (folder / "archive" / "planted.warc.gz").write_bytes(b"not listed")
    planted = sh("wacz-files")
    assert planted.returncode == 1 and "no file beside" not in planted.stdout
    # someone else's key under the archivist's name: the first line of the binding check
    # prints another fingerprint (and the block stops there)
    (folder / "archiver" / f"{env['FP']}.pub.pem").write_bytes(
        (folder / "archiver" / f"{env['FP']}.pub.pem").read_bytes()
    )
    other = keys.Signer.of(Ed25519PrivateKey.generate())
    (folder / "archiver" / f"{env['FP']}.pub.pem").write_bytes(
        keys.public_pem(other.key.public_key())
    )
    swapped = sh("wacz-binding")
    assert not swapped.stdout.startswith(env["FP"]) and swapped.returncode != 0
    package = folder / "datapackage.json"
    package.write_bytes(package.read_bytes().replace(b"1.1.1", b"1.1.2"))
    assert "Verified OK" not in sh("wacz-signature").stdout


# -- a large index is compressed (ZipNum) -------------------------------------------------


def test_a_large_index_is_compressed_and_still_checked(exported: Exported) -> None:
    """Past the plain index's size (made small here), index.cdx.gz + index.idx, as
    cdxj-indexer writes them: wacz validate accepts it, verify checks it line for line."""
    import gzip

    from archiver import Archive
    from archiver.trust import keys

    store = Path(exported.env["ARCHIVER_KEY_STORE"])
    info = keys.find_key(store)
    signer = keys.Signer.load(info.path, None)
    out = exported.root / "zipnum.wacz"
    Archive(exported.archive, signer=signer).export(
        [exported.capture_id], out, signer, info, None, plain_lines=10
    )
    with zipfile.ZipFile(out) as zf:
        names = set(zf.namelist())
        data, idx = zf.read("indexes/index.cdx.gz"), zf.read("indexes/index.idx")
        plain = _member(exported.wacz, "indexes/index.cdxj")
    assert "indexes/index.cdxj" not in names
    assert gzip.decompress(data) == plain  # the same lines, in gzip members
    assert idx.startswith(b'!meta 0 {"format": "cdxj-gzip-1.0", "filename": "index.cdx.gz"}\n')
    validated = subprocess.run(
        [str(BIN / "wacz"), "validate", "-f", str(out)], capture_output=True, text=True, timeout=120
    )
    assert validated.returncode == 0, validated.stdout
    code, report = _verify(exported, out)
    assert code == 0, report["problems"]
    changed = _rewrite(
        out,
        exported.root / "zipnum-changed.wacz",
        {"indexes/index.idx": idx.replace(b'"offset": 0', b'"offset": 1', 1)},
    )
    code, report = _verify(exported, changed)
    assert code == 1 and "indexes/index.idx" in " ".join(report["problems"])  # type: ignore[arg-type]
