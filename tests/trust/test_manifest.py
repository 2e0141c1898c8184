"""The signed manifest: its JSON Schema, its exact bytes, and the third party's checks.

The golden file is regenerated after an intended format change with
``ARCHIVER_UPDATE_GOLDEN=1 pytest tests/trust/test_manifest.py``; review the diff like code.
The shell checks of docs/verifying.md are read out of the document and run as they
stand, with stock OpenSSL and coreutils, so the document cannot drift from the format.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import re
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from archiver.capture.run import Capturer
from archiver.trust.keys import public_pem
from archiver.trust.manifest import TABLE_VERSIONS, VERSION, Manifest, ManifestError
from tests.support import paths
from tests.support.deterministic import fixed_signer
from tests.support.doc_checks import doc_checks
from tests.support.golden_manifest import golden_manifest
from tests.support.paths import SCHEMAS
from tests.support.site import FixtureSite

GOLDEN = paths.GOLDEN / "manifest.json"


def manifest_schema() -> dict[str, Any]:
    # the format new captures write; format 1: tests/trust/test_manifest_versions.py
    doc: dict[str, Any] = json.loads((SCHEMAS / f"manifest.v{VERSION}.json").read_text("utf-8"))
    return doc


def validator() -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(
        manifest_schema(), format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )


def table_columns(table: str) -> list[dict[str, Any]]:
    version = TABLE_VERSIONS[VERSION][table]
    spec: dict[str, Any] = json.loads((SCHEMAS / f"{table}.v{version}.json").read_text("utf-8"))
    columns: list[dict[str, Any]] = spec["columns"]
    return columns


# the schema ------------------------------------------------------------------------
def test_the_schema_is_valid_and_describes_every_field() -> None:
    schema = manifest_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["$id"] and schema["title"] and schema["description"]

    def walk(node: dict[str, Any], where: str) -> None:
        for name, sub in node.get("properties", {}).items():
            assert sub.get("description"), f"{where}.{name} has no description"
            walk(sub, f"{where}.{name}")
        if isinstance(node.get("items"), dict):
            walk(node["items"], f"{where}[]")

    walk(schema, "manifest")


def _expected_type(spec: str) -> str:
    spec = spec.replace(" ", "")
    simple = {"string": "string", "int32": "integer", "int64": "integer", "bool": "boolean"}
    if spec in simple:
        return simple[spec]
    if spec == "timestamp":
        return "string"
    if spec.startswith("map<"):
        return "object"
    assert spec.startswith("list<"), spec
    return "array"


@pytest.mark.parametrize(("table", "where"), [("captures", "capture"), ("records", "records")])
def test_schema_rows_are_exactly_the_table_columns(table: str, where: str) -> None:
    """schemas/manifest.vN.json writes the rows out by hand: it must follow the tables."""
    node = manifest_schema()["properties"][where]
    if where == "records":
        assert node["type"] == "array"
        node = node["items"]
    columns = table_columns(table)
    names = [c["name"] for c in columns]
    assert list(node["properties"]) == names
    assert node["required"] == names
    assert node["additionalProperties"] is False
    for column in columns:
        prop = node["properties"][column["name"]]
        base = _expected_type(column["type"])
        if where == "capture" and column["name"] in ("key_fingerprint", "manifest_sha256"):
            assert prop["type"] == "null"  # a manifest cannot name its own signature
            continue
        assert prop["type"] == ([base, "null"] if column["nullable"] else base), column["name"]
        if base == "integer":
            assert prop["minimum"] == 0, column["name"]
        spec = column["type"].replace(" ", "")
        if spec == "timestamp":
            assert prop["pattern"] == manifest_schema()["properties"]["signed_at"]["pattern"]
        elif spec == "map<string,string>":
            assert prop["additionalProperties"] == {"type": "string"}
        elif spec == "list<string>":
            assert prop["items"] == {"type": "string"}
        elif spec.startswith("list<struct<"):
            fields = re.findall(r"(\w+):string", spec)
            item = prop["items"]
            assert item["type"] == "object" and item["additionalProperties"] is False
            assert list(item["properties"]) == fields and item["required"] == fields
            assert all(p["type"] == "string" for p in item["properties"].values())


# golden: a manifest built from fixed rows (tests/support/golden_manifest.py) -------
def openssl(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["openssl", *args], capture_output=True, timeout=60)


def test_manifest_bytes_match_golden(tmp_path: Path) -> None:
    built = golden_manifest()
    data = built.to_bytes()
    if os.environ.get("ARCHIVER_UPDATE_GOLDEN"):
        GOLDEN.write_bytes(data)
    assert data == GOLDEN.read_bytes()
    data.decode("ascii")  # non-ASCII text is escaped
    assert built.capture.key_fingerprint is None and built.capture.manifest_sha256 is None
    parsed = Manifest.from_bytes(data)
    assert parsed == built and parsed.to_bytes() == data
    validator().validate(json.loads(data))
    # the signature of fixed_signer() over these bytes checks with stock OpenSSL
    signer = fixed_signer()
    document, sig, key = tmp_path / "m.json", tmp_path / "m.json.sig", tmp_path / "k.pub.pem"
    document.write_bytes(data)
    sig.write_bytes(signer.sign(data))
    key.write_bytes(public_pem(signer.key.public_key()))
    ok = openssl(
        "pkeyutl", "-verify", "-pubin", "-inkey", str(key), "-rawin",
        "-in", str(document), "-sigfile", str(sig),
    )  # fmt: skip
    assert ok.returncode == 0 and b"Signature Verified Successfully" in ok.stdout, ok


# what from_bytes refuses ------------------------------------------------------------
Doc = dict[str, Any]


def _set(path: str, value: Any) -> Callable[[Doc], None]:
    *parents, last = path.split(".")

    def mutate(doc: Doc) -> None:
        node: Any = doc
        for part in parents:
            node = node[int(part)] if part.isdigit() else node[part]
        node[int(last) if last.isdigit() else last] = value

    return mutate


def _delete(path: str) -> Callable[[Doc], None]:
    *parents, last = path.split(".")

    def mutate(doc: Doc) -> None:
        node: Any = doc
        for part in parents:
            node = node[int(part)] if part.isdigit() else node[part]
        del node[last]

    return mutate


# (what, mutation, the error it must give, whether the JSON Schema can also tell)
BROKEN: list[tuple[str, Callable[[Doc], None], str, bool]] = [
    (
        "another format",
        _set("format", f"archiver/manifest/{VERSION + 1}"),
        "unknown manifest format",
        True,
    ),
    ("no format", _delete("format"), "unknown manifest format None", True),
    ("no capture column", _delete("capture.title"), r"capture: missing columns \['title'\]", True),
    (
        "no record column",
        _delete("records.1.warc_offset"),
        r"records\[1\]: missing columns \['warc_offset'\]",
        True,
    ),
    ("extra capture column", _set("capture.colour", "red"), r"unexpected \['colour'\]", True),
    ("extra record column", _set("records.0.x", None), r"records\[0\].*unexpected \['x'\]", True),
    (
        "warc_offset as a string",
        _set("records.0.warc_offset", "0"),
        r"records\[0\]\.warc_offset must be of type int",
        True,
    ),
    ("a string for a bool", _set("capture.imported", "false"), "capture.imported must be", True),
    ("a bool for an int", _set("capture.video_count", True), "capture.video_count must be", True),
    # JSON Schema counts 3051.0 as an integer; from_bytes is stricter
    ("a float for a size", _set("files.0.size", 3051.0), "size must be of type int", False),
    ("a null status", _set("capture.status", None), "capture.status must not be null", True),
    ("a map of numbers", _set("capture.libraries", {"python": 3}), "capture.libraries", True),
    ("a list of numbers", _set("capture.outlinks", [1]), "capture.outlinks", True),
    ("a bad time", _set("records.2.fetched_at", "yesterday"), "not an ISO 8601 time", True),
    ("a time without zone", _set("signed_at", "2026-11-25T18:25:02"), "no time zone", True),
    ("a file with more", _set("files.0.mtime", 0), r"files\[0\]: .*unexpected \['mtime'\]", True),
    ("a short digest", _set("files.0.sha256", "XYZ"), r"files\[0\]\.sha256 is not 64", True),
    ("a negative size", _set("files.0.size", -1), r"files\[0\]\.size is negative", True),
    ("a negative offset", _set("records.0.warc_offset", -5), "out of range", True),
    ("an extra top-level field", _set("comment", "x"), r"unexpected \['comment'\]", True),
    ("an extra signer field", _set("signer.x", 1), r"signer: .*unexpected \['x'\]", True),
    ("a signed row", _set("capture.key_fingerprint", "0" * 64), "must be null", True),
    (
        "an error with more",
        _set("capture.errors", [{"url": "u", "reason": "r", "x": "y"}]),
        "capture.errors",
        True,
    ),
    ("another algorithm", _set("signer.algorithm", "RSA"), "unknown signature algorithm", True),
    ("records not a list", _set("records", {}), "records must be of type list", True),
    ("another capture id", _set("capture.capture_id", "x"), "differs from capture_id", False),
    ("a key elsewhere", _set("signer.public_key", "k.pem"), "does not name the signer", True),
]


@pytest.mark.parametrize(
    ("mutate", "message", "schema_too"),
    [pytest.param(m, e, s, id=what) for what, m, e, s in BROKEN],
)
def test_from_bytes_refuses_a_broken_manifest(
    mutate: Callable[[Doc], None], message: str, schema_too: bool
) -> None:
    good = json.loads(GOLDEN.read_bytes())
    assert validator().is_valid(good)
    doc = copy.deepcopy(good)
    mutate(doc)
    with pytest.raises(ManifestError, match=message):
        Manifest.from_bytes(json.dumps(doc).encode())
    assert validator().is_valid(doc) is not schema_too


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "not JSON"),
        (b"{", "not JSON"),
        (b'{"format": "archiver/manifest/1"', "not JSON"),
        (b"\xff\xfe{}", "not JSON"),
        (b"nul\x00", "not JSON"),
        (b"[]", "not a JSON object"),
        (b'"archiver/manifest/1"', "not a JSON object"),
    ],
)
def test_from_bytes_refuses_what_is_not_a_json_object(data: bytes, message: str) -> None:
    with pytest.raises(ManifestError, match=message):
        Manifest.from_bytes(data)


@pytest.mark.parametrize("where", ["top", "nested"])
def test_from_bytes_refuses_a_key_given_twice(where: str) -> None:
    data = GOLDEN.read_bytes()
    key = b'"signed_at": ' if where == "top" else b'"operator": '
    at = data.index(key)
    end = data.index(b",", at) + 1
    doubled = data[:at] + data[at:end] + b" " + data[at:]
    json.loads(doubled)  # Python's own parser takes it (the last value wins)
    with pytest.raises(ManifestError, match="appears twice in one object"):
        Manifest.from_bytes(doubled)


# a real capture ---------------------------------------------------------------------
def test_a_signed_capture_has_a_valid_manifest(
    site: FixtureSite, make_capturer: Callable[..., Capturer], tmp_path: Path
) -> None:
    capture = make_capturer().capture(site.url(site.PLAIN))
    assert capture.manifest is not None, capture.sign_error
    data = capture.manifest.read_bytes()
    validator().validate(json.loads(data))
    parsed = Manifest.from_bytes(data)
    assert Manifest.from_bytes(parsed.to_bytes()) == parsed and parsed.to_bytes() == data
    archive = tmp_path / "archives"
    assert parsed.key_fingerprint == fixed_signer().fingerprint == capture.key_fingerprint
    assert (archive / parsed.public_key).is_file()
    assert [archive / f.path for f in parsed.files] == capture.warc_files
    assert hashlib.sha256(data).hexdigest() == capture.manifest_sha256
    assert len(parsed.records) == parsed.capture.record_count > 0


# docs/verifying.md, run as written ------------------------------------------------
def flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def test_the_documented_checks_with_stock_tools(
    site: FixtureSite, make_capturer: Callable[..., Capturer], tmp_path: Path
) -> None:
    capture = make_capturer().capture(site.url(site.PLAIN))
    assert capture.manifest is not None, capture.sign_error
    archive = tmp_path / "archives"
    manifest = capture.manifest
    parsed = Manifest.from_bytes(manifest.read_bytes())
    checks = doc_checks()
    # the fingerprint as "obtained another way": from the key itself, not the archive
    env = {
        **os.environ,
        "LC_ALL": "C",
        "M": manifest.relative_to(archive).as_posix(),
        "FP": fixed_signer().fingerprint,
    }

    def run(name: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["sh", "-c", checks[name]],
            cwd=archive,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )

    def ok_lines(out: subprocess.CompletedProcess[str]) -> list[str]:
        return [line for line in out.stdout.splitlines() if line.endswith(": OK")]

    # step 1: the key file holds the key of that fingerprint
    fingerprint = run("fingerprint")
    assert fingerprint.returncode == 0, fingerprint.stderr
    assert fingerprint.stdout == f"{env['FP']}  -\n"
    # step 2: the signature
    signature = run("signature")
    assert signature.returncode == 0, signature.stdout + signature.stderr
    assert "Signature Verified Successfully" in signature.stdout
    # step 3: every file, and as many as the manifest lists
    files = run("files")
    assert files.returncode == 0, files.stdout + files.stderr
    names = [f.path for f in parsed.files]
    assert ok_lines(files) == [f"{name}: OK" for name in names] and names
    assert run("file-count").stdout == f"{len(names)}\n"
    # step 4: every record
    records = run("records")
    assert records.returncode == 0, records.stderr
    expected = [f"{r.warc_filename} @ {r.warc_offset}: OK" for r in parsed.records]
    assert records.stdout.splitlines() == expected and len(expected) > 1
    assert run("record-count").stdout == f"{len(expected)}\n"

    # one byte of the WARC changed: the files check fails, and step 4 says which record
    warc = archive / names[0]
    original = warc.read_bytes()
    hit = parsed.records[len(parsed.records) // 2]
    flip(warc, hit.warc_offset + hit.warc_length // 2)
    files = run("files")
    assert files.returncode != 0 and f"{names[0]}: FAILED" in files.stdout
    records = run("records")
    failed = [line for line in records.stdout.splitlines() if line.endswith(": FAILED")]
    assert failed == [f"{hit.warc_filename} @ {hit.warc_offset}: FAILED"]
    assert run("signature").returncode == 0  # the manifest itself is untouched

    # a forger who also puts the changed file's SHA-256 in the manifest: step 3 passes,
    # the signature does not
    signed = manifest.read_bytes()
    forged_sha = hashlib.sha256(warc.read_bytes()).hexdigest()
    manifest.write_bytes(signed.replace(parsed.files[0].sha256.encode(), forged_sha.encode()))
    assert run("files").returncode == 0
    forged = run("signature")
    assert forged.returncode != 0 and "Signature Verification Failure" in forged.stdout

    # one byte of the manifest changed (the WARC restored): the signature fails
    warc.write_bytes(original)
    manifest.write_bytes(signed)
    assert run("signature").returncode == 0 and run("files").returncode == 0
    flip(manifest, signed.index(b'"status": "complete"') + len(b'"status": "c'))
    assert manifest.read_bytes() != signed
    broken = run("signature")
    assert broken.returncode != 0, broken.stdout
    assert "Signature Verified Successfully" not in broken.stdout
    assert "Signature Verification Failure" in broken.stdout
