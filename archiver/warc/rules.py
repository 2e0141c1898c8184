"""The record field rules of WARC 1.1 (ISO 28500:2017, section 5 and 6), as a table.

:func:`check_record` says which rules a record's header breaks.  The capture tests
run it over every record written; ``archiver verify`` will run it too.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

RECORD_TYPES = frozenset(
    {
        "warcinfo",
        "response",
        "resource",
        "request",
        "metadata",
        "revisit",
        "conversion",
        "continuation",
    }
)
MANDATORY = ("WARC-Record-ID", "Content-Length", "WARC-Date", "WARC-Type")
REPEATABLE = frozenset({"warc-concurrent-to", "warc-protocol"})

# field -> record types it must not appear on
FORBIDDEN_ON: dict[str, frozenset[str]] = {
    "WARC-Target-URI": frozenset({"warcinfo"}),
    "WARC-Refers-To": frozenset({"warcinfo", "response", "resource", "request", "continuation"}),
    "WARC-Refers-To-Target-URI": RECORD_TYPES - {"revisit"},
    "WARC-Refers-To-Date": RECORD_TYPES - {"revisit"},
    "WARC-Concurrent-To": frozenset({"warcinfo", "conversion", "continuation"}),
    "WARC-IP-Address": frozenset({"warcinfo", "conversion", "continuation"}),
    "WARC-Warcinfo-ID": frozenset({"warcinfo"}),
    "WARC-Filename": RECORD_TYPES - {"warcinfo"},
    "WARC-Profile": RECORD_TYPES - {"revisit"},
    "WARC-Segment-Origin-ID": RECORD_TYPES - {"continuation"},
    "WARC-Segment-Total-Length": RECORD_TYPES - {"continuation"},
    # warcinfo and metadata blocks have no payload
    "WARC-Payload-Digest": frozenset({"warcinfo", "metadata"}),
}
# record type -> fields it must carry (besides MANDATORY)
REQUIRED_ON: dict[str, tuple[str, ...]] = {
    "request": ("WARC-Target-URI",),
    "response": ("WARC-Target-URI",),
    "resource": ("WARC-Target-URI",),
    "revisit": ("WARC-Target-URI", "WARC-Profile"),
    "conversion": ("WARC-Target-URI",),
    "continuation": ("WARC-Target-URI", "WARC-Segment-Origin-ID", "WARC-Segment-Number"),
}
TRUNCATED_REASONS = frozenset({"length", "time", "disconnect", "unspecified"})

_RECORD_ID = re.compile(r"^<[A-Za-z][A-Za-z0-9+.-]*:[^\s<>]+>$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?Z$")
_DIGEST = re.compile(r"^[a-z0-9-]+:[A-Za-z0-9+/=]+$")
_SHA256 = re.compile(r"^sha256:[0-9a-f]{64}$")


def bare_target_uri(value: str | None) -> str | None:
    """A WARC-Target-URI without the angle brackets of the WARC/1.0 drafts' examples.

    wget (and other WARC/1.0 writers) wrote ``WARC-Target-URI: <http://example.com/>``;
    WARC 1.1 has the bare URI.  The index holds the bare one, so that a lookup by URL
    finds the record; the WARC file keeps what was written.
    """
    if value is None:
        return None
    text = value.strip()
    if len(text) > 2 and text.startswith("<") and text.endswith(">"):
        return text[1:-1].strip()
    return text


def check_record(version: str, headers: Iterable[tuple[str, str]]) -> list[str]:
    """Rule violations of one record (empty when it conforms)."""
    problems: list[str] = []
    pairs = list(headers)
    if version != "WARC/1.1":
        problems.append(f"version line is {version!r}, not 'WARC/1.1'")
    seen: dict[str, int] = {}
    values: dict[str, str] = {}
    for name, value in pairs:
        key = name.lower()
        seen[key] = seen.get(key, 0) + 1
        values.setdefault(key, value)
    for key, count in seen.items():
        if count > 1 and key not in REPEATABLE:
            problems.append(f"field {key} repeated {count} times")
    for name in MANDATORY:
        if name.lower() not in values:
            problems.append(f"mandatory field {name} missing")
    rtype = values.get("warc-type", "")
    if rtype and rtype not in RECORD_TYPES:
        problems.append(f"unknown WARC-Type {rtype!r}")
    for name, banned in FORBIDDEN_ON.items():
        if name.lower() in values and rtype in banned:
            problems.append(f"{name} must not appear on a {rtype} record")
    for name in REQUIRED_ON.get(rtype, ()):
        if name.lower() not in values:
            problems.append(f"{name} is required on a {rtype} record")
    target = values.get("warc-target-uri")
    if target is not None and bare_target_uri(target) != target:
        problems.append(f"WARC-Target-URI {target!r} is not a bare URI (angle brackets?)")
    record_id = values.get("warc-record-id")
    if record_id is not None and not _RECORD_ID.match(record_id):
        problems.append(f"WARC-Record-ID {record_id!r} is not a <URI>")
    for key in ("warc-concurrent-to", "warc-refers-to", "warc-warcinfo-id"):
        for name, value in pairs:
            if name.lower() == key and not _RECORD_ID.match(value):
                problems.append(f"{name} {value!r} is not a <URI>")
    date = values.get("warc-date")
    if date is not None and not _DATE.match(date):
        problems.append(f"WARC-Date {date!r} is not a UTC W3C-ISO8601 date")
    length = values.get("content-length")
    if length is not None and not length.isdigit():
        problems.append(f"Content-Length {length!r} is not a number")
    for key in ("warc-block-digest", "warc-payload-digest"):
        digest = values.get(key)
        if digest is not None and not _DIGEST.match(digest):
            problems.append(f"{key} {digest!r} is not 'algorithm:value'")
        if (
            digest is not None
            and digest.lower().startswith("sha256:")
            and not _SHA256.match(digest)
        ):
            problems.append(f"{key} {digest!r} is not sha256 in lowercase hex")
    truncated = values.get("warc-truncated")
    if truncated is not None and truncated not in TRUNCATED_REASONS:
        problems.append(f"WARC-Truncated {truncated!r} is not a defined reason")
    has_block = length is not None and length.isdigit() and int(length) > 0
    if has_block and rtype != "continuation" and "content-type" not in values:
        problems.append("Content-Type missing on a record with a block")
    return problems
