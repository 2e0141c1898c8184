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
TOKENS = """for T in "$M".sig.*.tsr; do
  echo "$T"
  openssl ts -verify -in "$T" -data "$M.sig" -CAfile "$TSA_CA" || echo "$T: FAILED"
  openssl ts -reply -in "$T" -text | grep '^Time stamp:'
done"""


@dataclass(frozen=True)
class Step:
    """One check: what it proves, the commands, and the lines they must print."""

    title: str
    why: str
    commands: str
    expect: tuple[str, ...]


def _record(label: str, record: dict[str, Any]) -> Step:
    file = quote(str(record["warc_filename"]))
    cut = (
        f"dd if={file} iflag=skip_bytes,count_bytes skip={int(record['warc_offset'])} "
        f"count={int(record['warc_length'])} status=none"
    )
    sha = str(record["record_sha256"])
    unpack = "gunzip" if str(record["warc_filename"]).endswith(".gz") else "cat"
    expect: tuple[str, ...] = (f"{sha}  -", "1")
    if record.get("sha256"):
        expect += (f"WARC-Payload-Digest: sha256:{record['sha256']}",)
    return Step(
        f"{label}: its record",
        "The bytes of the record that holds it, cut out of the WARC file, hash to the "
        "SHA-256 that the signed manifest lists once for that record (the first two "
        "commands); the record's own header states the SHA-256 of what it holds (the "
        "third), which archiver checked against the payload when it verified.",
        f'{cut} | sha256sum\ngrep -c {quote(sha)} "$M"\n'
        f"{cut} | {unpack} | grep -a -m 1 '^WARC-Payload-Digest'",
        expect,
    )


def steps(facts: dict[str, Any]) -> list[Step]:
    """The checks of a report's facts, in the order a reader runs them."""
    signature = facts.get("signature")
    capture = facts["capture"]
    if signature is None:
        return _imported(capture)
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
    if facts.get("timestamps"):
        out.append(
            Step(
                "The trusted times",
                "Each authority's token is over the signature file. TSA_CA is a file of "
                "the authorities' root certificates, obtained from the authorities "
                "themselves; once a certificate has expired, add -attime (see "
                "docs/verifying.md, step 5).",
                "TSA_CA=/path/to/authority-root.pem\n" + TOKENS,
                ("Verification: OK",),
            )
        )
    return out


def _imported(capture: dict[str, Any]) -> list[Step]:
    """An imported file has no signature of ours: its SHA-256 is all there is to check."""
    files = [str(f) for f in capture.get("warc_files") or []]
    prefix = str(capture["capture_id"]).removeprefix("import-")
    return [
        Step(
            "The imported file",
            "The file was written by another tool and carries no signature of "
            "archiver's: its id is the start of its SHA-256, which the custody log's "
            "'index import' event recorded when it was imported.",
            "cd /path/to/archive\n" + "\n".join(f"sha256sum {quote(f)}" for f in files),
            tuple(f"{prefix}… {f}" for f in files),
        )
    ]
