"""The commands a reader runs to check a report's facts with OpenSSL and sha256sum alone,
filled in with this capture's values: the recipes of ``docs/verifying.md`` (tested there
as written), and for each video and the screenshot the bytes of its record, whose
SHA-256 the signed manifest lists.

Every value put into a command is quoted for the shell (:func:`shlex.quote`): paths and
URLs come from the archive, which whoever sends it controls, and a reader pastes these
lines into a terminal.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from shlex import quote
from typing import Any

# docs/verifying.md, steps 1 to 3 and 5, with "$M" quoted
FINGERPRINT = 'openssl pkey -pubin -in "keys/$FP.pub.pem" -outform DER | tail -c 32 | sha256sum'
SIGNATURE = (
    'openssl pkeyutl -verify -pubin -inkey "keys/$FP.pub.pem" -rawin -in "$M" -sigfile "$M.sig"'
)
FILES = (
    'sed -n \'s/^  {"path": "\\([^"]*\\)", "sha256": "\\([0-9a-f]\\{64\\}\\)", '
    '"size": [0-9]*}.*/\\2  \\1/p\' "$M" | sha256sum -c'
)
TOKEN = """openssl ts -verify -in "$T" -data "$M.sig" -CAfile "$TSA_CA"
openssl ts -reply -in "$T" -text | grep '^Time stamp:'"""
# the records whose header states their payload's digest (WARC-Payload-Digest)
PAYLOAD_DIGESTED = ("response", "request", "revisit")


@dataclass(frozen=True)
class Step:
    """One check: what it proves, the commands, and the lines they must print."""

    title: str
    why: str
    commands: str
    expect: tuple[str, ...]


def digest_field(warc_type: str) -> str:
    """The header in which a record of ``warc_type`` states the SHA-256 of what it holds:
    an HTTP message (and a revisit of one) states its payload's; a record whose block
    is the payload itself (a screenshot's ``resource``, a ``conversion``, a
    ``metadata`` record) states only its block's, which is the same bytes."""
    return "WARC-Payload-Digest" if warc_type in PAYLOAD_DIGESTED else "WARC-Block-Digest"


def _record(label: str, record: dict[str, Any]) -> Step:
    file = quote(str(record["warc_filename"]))
    cut = (
        f"dd if={file} iflag=skip_bytes,count_bytes skip={int(record['warc_offset'])} "
        f"count={int(record['warc_length'])} status=none"
    )
    sha = str(record["record_sha256"])
    unpack = "gunzip" if str(record["warc_filename"]).endswith(".gz") else "cat"
    expect: tuple[str, ...] = (f"{sha}  -", "1")
    header = digest_field(str(record.get("warc_type") or ""))
    if record.get("sha256"):
        expect += (f"{header}: sha256:{record['sha256']}",)
    return Step(
        f"{label}: its record",
        "The bytes of the record that holds it, cut out of the WARC file, hash to the "
        "SHA-256 that the signed manifest lists once for that record (the first two "
        "commands); the record's own header states the SHA-256 of what it holds (the "
        "third), which archiver checked against the payload when it verified.",
        f'{cut} | sha256sum\ngrep -c {quote(sha)} "$M"\n'
        f"{cut} | {unpack} | grep -a -m 1 '^{header}:'",
        expect,
    )


def steps(facts: dict[str, Any]) -> list[Step]:
    """The checks of a report's facts, in the order a reader runs them."""
    signature = facts.get("signature")
    capture = facts["capture"]
    if signature is None:
        return _imported(facts)
    if not signature.get("manifest") or not signature.get("key_fingerprint"):
        return []  # no signed manifest left to check: the report says so
    out = [
        Step(
            "Set the capture",
            "In the archive's folder (the one holding warc/ and keys/). Take the "
            "fingerprint from the archivist, another way than this report (a letter, "
            "their published key): whoever could change the archive could change this "
            "report too. The manifest's SHA-256 is the one this report states.",
            f"cd /path/to/archive\nM={quote(signature['manifest'])}\n"
            f'FP={quote(signature["key_fingerprint"])}\nsha256sum "$M"',
            (f"{signature['manifest_sha256']}  {signature['manifest']}",),
        ),
        Step(
            "The signer's key",
            "The public key file holds the key with that fingerprint.",
            FINGERPRINT,
            (f"{signature['key_fingerprint']}  -",),
        ),
        Step(
            "The signature",
            "The manifest is, byte for byte, what the holder of that key signed.",
            SIGNATURE,
            ("Signature Verified Successfully",),
        ),
        Step(
            "The WARC files",
            "Every WARC file of the capture has the SHA-256 the signed manifest lists.",
            FILES,
            tuple(f"{name}: OK" for name in capture.get("warc_files") or []),
        ),
    ]
    for number, video in enumerate(facts.get("videos") or [], 1):
        whole = next(
            (r for r in video.get("records") or [] if r["record_id"] == video.get("record_id")),
            None,
        )
        if whole is not None:
            out.append(_record(f"Video {number}", whole))
    if facts.get("screenshot"):
        out.append(_record("The screenshot", facts["screenshot"]))
    stamps = facts.get("timestamps") or []
    for number, stamp in enumerate(stamps, 1):
        out.append(_token(number if len(stamps) > 1 else None, stamp))
    return out


def _token(number: int | None, stamp: dict[str, Any]) -> Step:
    """One time-stamp token's check, on its own: of several, one that fails cannot hide
    behind another's "Verification: OK"."""
    expect: tuple[str, ...] = ("Verification: OK",)
    said = openssl_time(stamp.get("time"))
    if said:
        expect += (f"Time stamp: {said}",)
    which = f" {number}" if number else ""
    return Step(
        f"The trusted time{which}: {stamp.get('authority') or 'a time-stamping authority'}",
        "The authority's token is over the signature file, and states the time shown. "
        "TSA_CA is a file of the authorities' root certificates, obtained from the "
        "authorities themselves; once a certificate has expired, add -attime (see "
        "docs/verifying.md, step 5).",
        f"TSA_CA=/path/to/authority-root.pem\nT={quote(str(stamp.get('file') or ''))}\n" + TOKEN,
        expect,
    )


MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def openssl_time(value: Any) -> str | None:
    """A time as ``openssl ts -reply -text`` prints a token's (``Dec  6 11:33:50 2026
    GMT``, the fraction of a second as the token has it: DER omits trailing zeros), or
    None for a value that is not a time."""
    if not isinstance(value, str):
        return None
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    fraction = f".{when.microsecond:06d}".rstrip("0") if when.microsecond else ""
    return f"{MONTHS[when.month - 1]} {when.day:2d} {when:%H:%M:%S}{fraction} {when.year} GMT"


def _imported(facts: dict[str, Any]) -> list[Step]:
    """An imported file has no signature of ours: its SHA-256 is all there is to check,
    against the one the custody log recorded when it was imported."""
    capture = facts["capture"]
    files = [str(f) for f in capture.get("warc_files") or []]
    logged: dict[str, str] = {}
    for event in (facts.get("custody") or {}).get("events") or []:
        if event.get("action") == "index import":
            for ref in event.get("files") or []:
                if ref.get("sha256"):
                    logged.setdefault(str(ref.get("path")), str(ref["sha256"]))
    imported = (facts.get("verification") or {}).get("imported") or {}
    read = imported.get("sha256")
    prefix = str(capture["capture_id"]).removeprefix("import-")
    commands, expect = [], []
    for name in files:
        full = logged.get(name) or (read if len(files) == 1 else None)
        if full:
            commands.append(f"sha256sum {quote(name)}")
            expect.append(f"{full}  {name}")
        else:  # no whole SHA-256 known: the id is its first 16 hex digits
            commands.append(f"sha256sum {quote(name)} | cut -c1-{len(prefix)}")
            expect.append(prefix)
    return [
        Step(
            "The imported file",
            "The file was written by another tool and carries no signature of "
            "archiver's: its SHA-256 is the one the custody log's 'index import' event "
            "recorded when it was imported (the capture's id is its start).",
            "cd /path/to/archive\n" + "\n".join(commands),
            tuple(expect),
        )
    ]
