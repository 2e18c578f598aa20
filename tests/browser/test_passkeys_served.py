"""The approval page on the served API (the local runtime, infra.local): a tenant admin creates an
approver through the API, and in Chromium the approver opens the enrollment link, registers a passkey
with the CDP virtual authenticator and signs in with it; the API then lists that passkey, and the spent
enrollment link registers nothing more. (Approving a waiting request: test_approval_page.py.)"""

from __future__ import annotations

import base64

import pytest
from playwright.sync_api import Page, expect

from infra.local.api import approval_page_url, create_approver
from infra.local.seed import SUPPORT_VAULT
from tests.support.api import ApiWorld
from tests.support.api_routes import send
from tests.support.browser import add_virtual_authenticator

pytestmark = [pytest.mark.browser, pytest.mark.e2e, pytest.mark.slow]


def test_an_approver_enrols_and_signs_in_with_a_passkey_on_the_served_page(
    world: ApiWorld, page: Page
) -> None:
    admin = world.headers("tenant-admin")
    approver = create_approver(world.http, admin=admin, vault_id=SUPPORT_VAULT, name="Ada Approver")
    assert approver.enrollment_url.startswith(approval_page_url(world.url) + "#enroll=")
    assert approver.page_url.startswith("http://localhost:")

    authenticator = add_virtual_authenticator(page)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(approver.enrollment_url)
    assert page.url == approver.page_url  # the token left the address bar
    page.get_by_label("Name for this passkey").fill("virtual authenticator")
    page.get_by_role("button", name="Register a passkey").click()
    expect(page.locator("#status")).to_have_text("Your passkey is registered. Sign in with it.")
    (held,) = authenticator.credentials()
    credential_id = base64.urlsafe_b64encode(base64.b64decode(held["credentialId"])).rstrip(b"=").decode()
    person = send(world.http, "GET", f"/v1/people/{approver.person_id}", headers=admin).json()
    assert [(c["credential_id"], c["label"]) for c in person["credentials"]] == [
        (credential_id, "virtual authenticator")
    ]

    page.get_by_role("button", name="Sign in with a passkey").click()
    expect(page.locator("#who")).to_have_text("Signed in as Ada Approver")
    expect(page.locator("#approvals")).to_be_visible()

    # The link is spent: opened again (a fresh load, not a same-document fragment change), it registers
    # nothing and says why (the problem's title).
    page.goto("about:blank")
    page.goto(approver.enrollment_url)
    page.get_by_role("button", name="Register a passkey").click()
    expect(page.locator("#error")).to_be_visible()
    expect(page.locator("#error-title")).not_to_be_empty()
    assert len(authenticator.credentials()) == 1
    person = send(world.http, "GET", f"/v1/people/{approver.person_id}", headers=admin).json()
    assert len(person["credentials"]) == 1
    assert errors == []
