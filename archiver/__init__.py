"""archiver: capture online evidence, videos included, into verifiable WARC 1.1 files.

``from archiver import Archive`` is the library's entry point (:mod:`archiver.archive`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
TOOL_NAME = "archiver"

__all__ = ["TOOL_NAME", "Archive", "ArchiverError", "Failure", "UsageProblem", "__version__"]

if TYPE_CHECKING:
    from archiver.archive import Archive
    from archiver.core.errors import ArchiverError, Failure, UsageProblem


def __getattr__(name: str) -> Any:
    """``Archive`` and the errors, imported when first asked for: ``import archiver.core``
    must not load the whole library."""
    if name == "Archive":
        from archiver.archive import Archive

        return Archive
    if name in ("ArchiverError", "Failure", "UsageProblem"):
        from archiver.core import errors

        return getattr(errors, name)
    raise AttributeError(f"module 'archiver' has no attribute {name!r}")
