"""Debian's Chromium, run headless and driven over the DevTools protocol on a pipe.

:mod:`.chromium` finds and launches the browser (and makes sure it dies with us),
:mod:`.cdp` speaks the protocol, :mod:`.page` holds what a capture does with one page
(navigate, wait for quiet, scroll, play media, screenshot, PDF, DOM, text, requests), and
:mod:`.reaper` is the watchdog process that cleans up when we are killed.

The names below are imported when first asked for: the watchdog runs as
``python -m archiver.web.browser.reaper`` and must not load the rest to start.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from archiver.web.browser.cdp import CDP, BrowserGone, CDPError, CDPTimeout
    from archiver.web.browser.chromium import (
        Browser,
        BrowserFailed,
        BrowserNotFound,
        BrowserVersion,
        LaunchSettings,
        browser_version,
        chromium_flags,
        find_browser,
    )
    from archiver.web.browser.page import (
        Dialog,
        Download,
        FrameDOM,
        NavResult,
        Page,
        PageCrashed,
        RequestEntry,
        Screenshot,
    )

_WHERE = {
    "CDP": "cdp",
    "BrowserGone": "cdp",
    "CDPError": "cdp",
    "CDPTimeout": "cdp",
    "Browser": "chromium",
    "BrowserFailed": "chromium",
    "BrowserNotFound": "chromium",
    "BrowserVersion": "chromium",
    "LaunchSettings": "chromium",
    "browser_version": "chromium",
    "chromium_flags": "chromium",
    "find_browser": "chromium",
    "Dialog": "page",
    "Download": "page",
    "FrameDOM": "page",
    "NavResult": "page",
    "Page": "page",
    "PageCrashed": "page",
    "RequestEntry": "page",
    "Screenshot": "page",
}

__all__ = [
    "CDP",
    "Browser",
    "BrowserFailed",
    "BrowserGone",
    "BrowserNotFound",
    "BrowserVersion",
    "CDPError",
    "CDPTimeout",
    "Dialog",
    "Download",
    "FrameDOM",
    "LaunchSettings",
    "NavResult",
    "Page",
    "PageCrashed",
    "RequestEntry",
    "Screenshot",
    "browser_version",
    "chromium_flags",
    "find_browser",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'archiver.web.browser' has no attribute {name!r}")
    return getattr(importlib.import_module(f"archiver.web.browser.{module}"), name)
