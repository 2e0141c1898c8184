"""Files that appear whole or not at all, and never over an existing file."""

from __future__ import annotations

from pathlib import Path

import pytest

from archiver.core.atomic import _renameat2_noreplace, atomic_path, rename_no_replace


def test_atomic_path_appears_only_when_complete(tmp_path: Path) -> None:
    final = tmp_path / "out.txt"
    with pytest.raises(RuntimeError), atomic_path(final) as temp:
        temp.write_text("half")
        raise RuntimeError("crash")
    assert not final.exists() and list(tmp_path.iterdir()) == []
    with atomic_path(final) as temp:
        temp.write_text("whole")
        assert not final.exists()
    assert final.read_text() == "whole" and list(tmp_path.iterdir()) == [final]
    with pytest.raises(FileExistsError), atomic_path(final) as temp:
        temp.write_text("other")
    assert final.read_text() == "whole" and list(tmp_path.iterdir()) == [final]
    with atomic_path(final, overwrite=True) as temp:
        temp.write_text("replaced")
    assert final.read_text() == "replaced"


@pytest.mark.parametrize("move", [rename_no_replace, _renameat2_noreplace])
def test_no_replace_renames(tmp_path: Path, move: object) -> None:
    """Both the hard-link way and the renameat2 way (for file systems without links)."""
    assert callable(move)
    a, b = tmp_path / "a", tmp_path / "b"
    a.write_text("new")
    b.write_text("old")
    with pytest.raises(FileExistsError):
        move(a, b)
    assert b.read_text() == "old" and a.exists()
    b.unlink()
    move(a, b)
    assert b.read_text() == "new" and not a.exists()
