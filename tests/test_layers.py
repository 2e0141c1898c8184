"""The package's layers, read from the imports themselves (``ast``), not from a list.

``core`` imports nothing of ours; ``warc``, ``web`` and ``index`` only ``core``; ``trust``
``core`` and ``index``; ``capture`` and ``ops`` anything below but not each other; ``cli``
anything, and nothing imports ``cli``. Library code never imports click.

KNOWN lists the imports that still cross a line (issue 16 removes them one by one): a new
one fails, and so does one that is gone but still listed, so the list only shrinks.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "archiver"
BELOW = {"core", "warc", "web", "index", "trust"}
ALLOWED: dict[str, set[str]] = {
    "core": set(),
    "warc": {"core"},
    "web": {"core"},
    "index": {"core"},
    "trust": {"core", "index"},
    "capture": BELOW,
    "ops": BELOW,
    "cli": BELOW | {"capture", "ops"},
}
KNOWN: set[tuple[str, str]] = set()  # (module, import) crossing a line, while one must


def imports() -> set[tuple[str, str, str]]:
    """(layer, module file, imported module) for every import of ours in a layer."""
    found = set()
    for path in PACKAGE.rglob("*.py"):
        where = path.relative_to(PACKAGE)
        if len(where.parts) < 2:
            continue  # archiver/__init__.py, __main__.py
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
                if node.module == "archiver":
                    names += [f"archiver.{alias.name}" for alias in node.names]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            for name in names:
                found.add((where.parts[0], where.as_posix(), name))
    return found


def test_every_layer_imports_only_what_lies_below_it() -> None:
    crossing = set()
    for layer, module, name in imports():
        parts = name.split(".")
        if parts[0] != "archiver" or len(parts) < 2 or parts[1] not in ALLOWED:
            continue
        if parts[1] != layer and parts[1] not in ALLOWED[layer]:
            crossing.add((module, name))
    assert crossing - KNOWN == set(), "imports across the layers"
    assert KNOWN - crossing == set(), "gone: take them off KNOWN"


def test_library_code_never_imports_click() -> None:
    clicking = {
        module
        for layer, module, name in imports()
        if layer != "cli" and name.split(".")[0] == "click"
    }
    assert clicking == set()
