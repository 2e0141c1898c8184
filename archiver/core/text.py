"""Words for people: counts with the right plural, values made safe to print."""

from __future__ import annotations


def counted(n: int, noun: str, plural: str | None = None) -> str:
    """``1 file``, ``2 files``; ``counted(1, "captures row")`` is ``1 captures row``.

    The last word takes the plural (``noun + "s"`` unless ``plural`` is given)."""
    if n == 1:
        return f"{n} {noun}"
    return f"{n} {plural if plural is not None else noun + 's'}"


# What a terminal would act on rather than show: C0 and C1 controls (ESC starts the
# sequences that move the cursor or recolour text; CR returns to the start of the line
# and lets the rest overwrite it), and the Unicode marks that reorder or hide text (the
# BiDi overrides and isolates, U+202E; the line and paragraph separators).
_UNSEEN = {
    **{c: None for c in range(0x20)},
    **{c: None for c in range(0x7F, 0xA0)},
    **{c: None for c in (0x061C, 0x200E, 0x200F, 0x2028, 0x2029)},
    **{c: None for c in range(0x202A, 0x202F)},
    **{c: None for c in range(0x2066, 0x206A)},
}
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def printable(text: str) -> str:
    """``text`` safe to print on a terminal: what a terminal would act on (ESC sequences,
    CR, NUL, BiDi overrides such as U+202E) is shown escaped (``\\x1b``, ``\\r``,
    ``\\u202e``), so a value cannot forge or hide lines.  Only for showing: the stored
    value is unchanged (``--format json`` gives it exactly)."""
    if text.isprintable() and not any(ord(ch) in _UNSEEN for ch in text):
        return text
    out = []
    for ch in text:
        code = ord(ch)
        if code not in _UNSEEN:
            out.append(ch)
        elif ch in _NAMED:
            out.append(_NAMED[ch])
        else:
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")
    return "".join(out)


def warcio_blank(line: bytes | bytearray) -> bool:
    """Whether WARC readers end a head at ``line`` (its bytes up to the LF).

    warcio (and so pywb and cdxj-indexer) decodes each line as UTF-8, else ISO-8859-1,
    and ends the head at the first one that ``str.rstrip()`` empties: a line of spaces,
    the CR CR LF of some servers, form feeds, vertical tabs, \\x1c-\\x1f, NEL, NBSP or
    other Unicode spaces end it as an empty line does.  Capture ends a response's head
    by the same rule, so the payload it hashes is the payload every reader finds.
    """
    try:
        text = bytes(line).decode("utf-8")
    except UnicodeDecodeError:
        text = bytes(line).decode("latin-1")
    return not text.rstrip()


def head_fields(lines: list[str]) -> list[tuple[str, str]]:
    """(name, value) of each ``Name: value`` line of a head (its first line left out),
    as WARC and HTTP share them: names and values stripped, a line starting with a space
    or tab continuing the value before it (obsolete line folding), lines with no colon
    and empty lines skipped."""
    fields: list[tuple[str, str]] = []
    for line in lines[1:]:
        if not line:
            continue
        if line[0] in " \t" and fields:  # obsolete line folding
            name, value = fields[-1]
            fields[-1] = (name, value + " " + line.strip())
            continue
        name, sep, value = line.partition(":")
        if sep:
            fields.append((name.strip(), value.strip()))
    return fields
