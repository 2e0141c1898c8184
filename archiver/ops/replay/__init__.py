"""Replay: the archive shown in a browser by pywb, read from our index and our WARC files.

:mod:`.plan` decides what is served (one pywb collection per capture, the files each
needs checked first); :mod:`.server` runs pywb on it in a process of its own that never
outlives us.  The names a caller needs are here.
"""

from archiver.ops.replay.plan import (
    COLLECTION,
    DEFAULT_HOST,
    DEFAULT_PORT,
    EXTRA,
    MANIFEST_TYPES,
    NOT_VERIFIED,
    RAW_NOTE,
    TEMP_PREFIX,
    ReplayFailed,
    ReplayPage,
    ReplayPlan,
    ReplayUnavailable,
    missing_extra,
    plan,
    request_method,
    require_pywb,
)
from archiver.ops.replay.server import CHILD, ReplayServer

__all__ = [
    "CHILD",
    "COLLECTION",
    "DEFAULT_HOST",
    "DEFAULT_PORT",
    "EXTRA",
    "MANIFEST_TYPES",
    "NOT_VERIFIED",
    "RAW_NOTE",
    "TEMP_PREFIX",
    "ReplayFailed",
    "ReplayPage",
    "ReplayPlan",
    "ReplayServer",
    "ReplayUnavailable",
    "missing_extra",
    "plan",
    "request_method",
    "require_pywb",
]
