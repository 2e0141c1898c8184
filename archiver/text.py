"""Words for people: counts with the right plural."""

from __future__ import annotations


def counted(n: int, noun: str, plural: str | None = None) -> str:
    """``1 file``, ``2 files``; ``counted(1, "captures row")`` is ``1 captures row``.

    The last word takes the plural (``noun + "s"`` unless ``plural`` is given)."""
    if n == 1:
        return f"{n} {noun}"
    return f"{n} {plural if plural is not None else noun + 's'}"
