"""The package's layers, read from the imports themselves (``ast``), not from a list.

``core`` imports nothing of ours; ``warc``, ``web`` and ``index`` only ``core``; ``trust``
``core`` and ``index``; ``capture`` and ``ops`` anything below but not each other; the
library object (``archiver/archive.py``) anything of those; ``cli`` anything, and nothing
imports ``cli``. Library code never imports click.

KNOWN lists the imports that still cross a line (issue 16 removes them one by one): a new
one fails, and so does one that is gone but still listed, so the list only shrinks.
"""

from __future__ import annotations

import ast

from tests.support.paths import ROOT

PACKAGE = ROOT / "archiver"
BELOW = {"core", "warc", "web", "index", "trust"}
ALLOWED: dict[str, set[str]] = {
    "core": set(),
    "warc": {"core"},
    "web": {"core"},
    "index": {"core"},
    "trust": {"core", "index"},
    "capture": BELOW,
    "ops": BELOW,
    "archive": BELOW | {"capture", "ops"},
    "cli": BELOW | {"capture", "ops", "archive"},
}
KNOWN: set[tuple[str, str]] = set()  # (module, import) crossing a line, while one must


def imports() -> set[tuple[str, str, str]]:
    """(layer, module file, imported module) for every import of ours in a layer."""
    found = set()
    for path in PACKAGE.rglob("*.py"):
        where = path.relative_to(PACKAGE)
        if where.name in ("__init__.py", "__main__.py") and len(where.parts) == 1:
            continue  # the package's own door: its version, and Archive on demand
        layer = where.parts[0] if len(where.parts) > 1 else where.stem  # archive.py
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
                found.add((layer, where.as_posix(), name))
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


def test_library_code_never_exits() -> None:
    """Only the command line decides exit codes: the library raises or returns."""
    exiting = set()
    for path in PACKAGE.rglob("*.py"):
        where = path.relative_to(PACKAGE)
        if where.parts[0] == "cli":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Attribute)
                and node.attr in ("exit", "_exit")
                and isinstance(node.value, ast.Name)
                and node.value.id in ("sys", "os")
            ):
                exiting.add(where.as_posix())
            if isinstance(node, ast.Name) and node.id == "SystemExit":
                exiting.add(where.as_posix())
    assert exiting == set()


def test_every_library_error_is_a_usage_problem_or_a_failure() -> None:
    """One hierarchy: each exception class a caller may get is an ArchiverError of one of
    the two kinds (exit 2 or 1), found by reading every class of the library."""
    import importlib
    import inspect

    from archiver.core.errors import ArchiverError, Failure, UsageProblem

    internal = {  # control flow inside one module, never raised to a caller
        "archiver.capture.state.Abandoned",
        "archiver.web.http.Interrupted",
        "archiver.web.http.ProtocolError",
        "archiver.web.http.TooSlow",
    }
    outside = []
    for path in sorted(PACKAGE.rglob("*.py")):
        where = path.relative_to(PACKAGE.parent).with_suffix("")
        name = ".".join(p for p in where.parts if p != "__init__")
        module = importlib.import_module(name)
        for cls_name, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ != name or not issubclass(cls, BaseException):
                continue
            if cls_name.startswith("_") or name.startswith("archiver.cli"):
                continue  # private to a module; the CLI's own (click's kinds)
            qualified = f"{name}.{cls_name}"
            if qualified in internal or cls in (ArchiverError, Failure, UsageProblem):
                continue
            if issubclass(cls, (Failure, UsageProblem)):
                continue
            family = cls.__subclasses__()  # a base of both kinds (ExtractError), never raised
            raised = any(f"raise {cls_name}(" in p.read_text() for p in PACKAGE.rglob("*.py"))
            kinds = all(issubclass(c, (Failure, UsageProblem)) for c in family)
            if not (family and kinds and not raised):
                outside.append(qualified)
    assert outside == []


def test_no_test_imports_another_test_module_or_a_conftest() -> None:
    """Tests share code through ``tests/support`` only (fixtures come from conftest by
    pytest's injection, never by import)."""
    tests = PACKAGE.parent / "tests"
    wrong = []
    for path in tests.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                names = [node.module or ""] + [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            last = {name.rsplit(".", 1)[-1] for name in names}
            if any(n.startswith("test_") or n == "conftest" for n in last):
                wrong.append(f"{path.relative_to(tests)}:{node.lineno}")
    assert wrong == []
