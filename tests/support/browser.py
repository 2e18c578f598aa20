"""A real browser for tests: Debian's Chromium driven by Playwright, with a virtual WebAuthn authenticator
attached through the DevTools protocol.

Chromium is the system's (``tools/ensure_chromium.sh`` installs it; ``make test`` runs that first), never
a build from ``playwright install``: Playwright launches it by ``executable_path``. The authenticator is
Chromium's own CTAP2 platform authenticator (``WebAuthn.addVirtualAuthenticator``): it makes real
resident keys, signs real assertions and verifies the user automatically, so a page's
``navigator.credentials`` calls run exactly as they would with a phone or a security key.

Artifacts (screenshots) go to ``build/artifacts/`` at the repository root, or ``RELIQUARY_ARTIFACTS``."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Browser, CDPSession, Page

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS_ENV = "RELIQUARY_ARTIFACTS"
CHROMIUM_ENV = "RELIQUARY_CHROMIUM"  # a path to another Chromium binary (default: `chromium` on PATH)


def chromium_path() -> str:
    """Where Chromium is; fails the test (not a skip: a browser test that cannot run has not passed)."""
    configured = os.environ.get(CHROMIUM_ENV)
    found = configured if configured and Path(configured).is_file() else shutil.which("chromium")
    if not found:
        pytest.fail(
            "Chromium is not installed: run tools/ensure_chromium.sh (make test does), or set "
            f"{CHROMIUM_ENV} to a Chromium binary",
            pytrace=False,
        )
    return found


def launch_arguments() -> list[str]:
    # Chromium refuses to start its sandbox as root (CI containers run as root); /dev/shm is small in
    # some containers, and a renderer that runs out of it crashes mid-test.
    arguments = ["--disable-dev-shm-usage"]
    if os.geteuid() == 0:
        arguments.append("--no-sandbox")
    return arguments


def artifacts_dir() -> Path:
    """The directory CI keeps (build/ is gitignored), created on first use."""
    directory = Path(os.environ.get(ARTIFACTS_ENV) or ROOT / "build" / "artifacts")
    directory.mkdir(parents=True, exist_ok=True)
    return directory


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """One headless Chromium per test module. Not per session: Playwright's sync API keeps an event loop
    running in the thread while it is open, and the app's TestClient cannot run its own beside it."""
    from playwright.sync_api import sync_playwright

    executable = chromium_path()
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=executable, headless=True, args=launch_arguments()
        )
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh browser context (no cookies, no storage, no credentials) and a page in it."""
    context = browser.new_context(viewport={"width": 1100, "height": 900})
    try:
        yield context.new_page()
    finally:
        context.close()


@dataclass
class VirtualAuthenticator:
    """A CTAP2 platform authenticator attached to one page's target through CDP."""

    session: CDPSession
    authenticator_id: str

    def credentials(self) -> list[dict[str, Any]]:
        """Its credentials: credentialId (base64), rpId, userHandle, signCount, isResidentCredential."""
        answer = self.session.send("WebAuthn.getCredentials", {"authenticatorId": self.authenticator_id})
        return list(answer["credentials"])

    def set_user_verified(self, verified: bool) -> None:
        self.session.send(
            "WebAuthn.setUserVerified",
            {"authenticatorId": self.authenticator_id, "isUserVerified": verified},
        )

    def remove(self) -> None:
        self.session.send("WebAuthn.removeVirtualAuthenticator", {"authenticatorId": self.authenticator_id})


def add_virtual_authenticator(page: Page) -> VirtualAuthenticator:
    """A passkey authenticator for ``page``: internal transport (a platform authenticator), resident
    keys, user verification that succeeds (the person "touched" it), presence simulated."""
    session = page.context.new_cdp_session(page)
    session.send("WebAuthn.enable", {"enableUI": False})
    answer = session.send(
        "WebAuthn.addVirtualAuthenticator",
        {
            "options": {
                "protocol": "ctap2",
                "ctap2Version": "ctap2_1",
                "transport": "internal",
                "hasResidentKey": True,
                "hasUserVerification": True,
                "isUserVerified": True,
                "automaticPresenceSimulation": True,
            }
        },
    )
    return VirtualAuthenticator(session, str(answer["authenticatorId"]))
