"""The browser tests' fixtures: Debian's Chromium through Playwright, a page (tests/support/browser.py)."""

from __future__ import annotations

from tests.support.browser import browser, page

__all__ = ["browser", "page"]
