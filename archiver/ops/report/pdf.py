"""The report printed to PDF by the system's Chromium, over our own DevTools client.

The HTML file is loaded from disk (``file:``) in a fresh headless browser
(:class:`archiver.web.browser.Browser`: its own profile, removed after; its own services
refused) and printed with ``Page.printToPDF``: A4 as the HTML's ``@page`` says, a
footer on every page naming the capture and the page number, the headings as the
PDF's outline.  The page is given no network at all, though it asks for none: its
browser context's proxy is a port bound and never listened on (every connection
refused), requests to http(s), ws(s) and ftp URLs are blocked in the page, scripts are
disabled, and the HTML's own Content-Security-Policy allows nothing but its style and
``data:`` images.
"""

from __future__ import annotations

import base64
import html
import socket
from pathlib import Path

from archiver.core.errors import Failure

PRINT_TIMEOUT = 120.0  # seconds to load and print a small report
PRINT_SECONDS_PER_MB = 60.0  # and more per MB of HTML (a page of 1000 videos: 3 MB)
BLOCKED = ["http:*", "https:*", "ws:*", "wss:*", "ftp:*"]
FOOTER = (
    "<div style=\"font: 7pt 'DejaVu Sans', sans-serif; color: #444; width: 100%; "
    'margin: 0 14mm; display: flex; justify-content: space-between;">'
    '<span>{label}</span><span>page <span class="pageNumber"></span> of '
    '<span class="totalPages"></span></span></div>'
)


class PrintFailed(Failure):
    """Chromium could not print the report (it would not start, or the page failed)."""


def print_timeout(size: int) -> float:
    """The seconds Chromium is given to load, then to print, an HTML report of ``size``
    bytes: printing takes time in proportion to the pages (thousands for a page of
    thousands of videos), and a fixed limit would fail just the reports that took
    longest to gather."""
    return PRINT_TIMEOUT + PRINT_SECONDS_PER_MB * size / 1_000_000


def print_pdf(
    page_file: Path, *, executable: Path, label: str, timeout: float | None = None
) -> bytes:
    """The PDF of the HTML file ``page_file``, printed by the Chromium ``executable``;
    ``label`` is the footer's text (escaped here); ``timeout``: seconds to load the
    page, and again to print it (default: :func:`print_timeout` of its size)."""
    if timeout is None:
        timeout = print_timeout(page_file.stat().st_size)
    from archiver.web.browser.cdp import CDPError, CDPTimeout
    from archiver.web.browser.chromium import Browser, LaunchSettings
    from archiver.web.browser.page import Page

    refusing = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        refusing.bind(("127.0.0.1", 0))  # bound, never listening: every connection refused
        host, port = refusing.getsockname()[:2]
        settings = LaunchSettings(executable=executable, proxy=f"{host}:{port}")
        with Browser(settings) as browser, Page.open(browser) as page:
            session = page.session_id
            browser.cdp.send("Network.setBlockedURLs", {"urls": BLOCKED}, session_id=session)
            browser.cdp.send(
                "Emulation.setScriptExecutionDisabled", {"value": True}, session_id=session
            )
            loaded = page.navigate(page_file.as_uri(), timeout=timeout)
            if loaded.error or not loaded.loaded:
                why = loaded.error or "no load event"
                raise PrintFailed(f"Chromium did not load the report to print it ({why})")
            answer = browser.cdp.send(
                "Page.printToPDF",
                {
                    "printBackground": True,
                    "preferCSSPageSize": True,
                    "displayHeaderFooter": True,
                    "headerTemplate": "<span></span>",
                    "footerTemplate": FOOTER.format(label=html.escape(label, quote=True)),
                    "generateDocumentOutline": True,
                    "generateTaggedPDF": True,
                },
                session_id=session,
                timeout=timeout,
            )
    except CDPTimeout as exc:
        raise PrintFailed(f"Chromium did not print the report within {timeout:.0f} s") from exc
    except CDPError as exc:  # BrowserFailed is a Failure already, said as it is
        raise PrintFailed(f"Chromium could not print the report: {exc}") from exc
    finally:
        refusing.close()
    data = base64.b64decode(answer["data"])
    if not data.startswith(b"%PDF-"):
        raise PrintFailed("Chromium's answer to printing the report is not a PDF")
    return data
