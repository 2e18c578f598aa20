"""The issue's browser test, end to end: on the local runtime with the API served over loopback, a tenant
admin creates an approver through the API; in Chromium (Debian's, with a CDP virtual authenticator) the
approver opens the enrollment link, registers a passkey and signs in; a step-up access request waits in
the state machine for a person; the page lists it, the test clicks Approve, and the execution completes
with a grant that the requester opens, under a chain that names the approver.

Screenshots (the waiting request, then the page after the approval) are kept in build/artifacts/ (or
$RELIQUARY_ARTIFACTS): approval-page-pending.png, approval-page-approved.png."""

from __future__ import annotations

import base64
import time
import uuid
from collections.abc import Mapping
from typing import Any

import pytest
from playwright.sync_api import Locator, Page, expect

from infra.local.api import (
    Approver,
    access_request_body,
    approval_page_url,
    create_approver,
    start_waiting_request,
)
from infra.local.seed import NOTES, STEP_UP_PURPOSE, SUPPORT_VAULT, TENANT
from tests.support.api import ITEM, ApiWorld
from tests.support.api_flows import AuditKeys, decided, open_approved
from tests.support.api_routes import send
from tests.support.browser import add_virtual_authenticator, artifacts_dir

pytestmark = [pytest.mark.browser, pytest.mark.e2e, pytest.mark.slow]

WAIT_SECONDS = 120.0  # the request reaching the wait: the local flow takes a few seconds
APPROVER = "Ada Approver"


def page_url(world: ApiWorld) -> str:
    """The page as the browser must open it: on ``localhost`` (the passkeys' RP id), not 127.0.0.1."""
    url = approval_page_url(world.url)
    assert url == world.url.replace("://127.0.0.1:", "://localhost:", 1) + "/approve"
    return url


def _card(page: Page, request_id: str) -> Locator:
    """The request's card, refreshing the list until the request waits for a person."""
    card = page.locator(f'li.approval[data-request-id="{request_id}"]')
    deadline = time.monotonic() + WAIT_SECONDS
    while card.count() == 0:
        assert time.monotonic() < deadline, f"{request_id} never waited for a person"
        page.get_by_role("button", name="Refresh").click()
        page.wait_for_timeout(500)
    return card


def _enrol_and_sign_in(world: ApiWorld, page: Page, approver: Approver) -> str:
    """The approver opens the enrollment link, registers a passkey and signs in; its credential id."""
    authenticator = add_virtual_authenticator(page)
    page.goto(approver.enrollment_url)
    page.get_by_label("Name for this passkey").fill("virtual authenticator")
    page.get_by_role("button", name="Register a passkey").click()
    expect(page.locator("#status")).to_have_text("Your passkey is registered. Sign in with it.")
    (held,) = authenticator.credentials()
    credential_id = base64.urlsafe_b64encode(base64.b64decode(held["credentialId"])).rstrip(b"=").decode()
    admin = world.headers("tenant-admin")
    person = send(world.http, "GET", f"/v1/people/{approver.person_id}", headers=admin).json()
    assert [(c["credential_id"], c["label"]) for c in person["credentials"]] == [
        (credential_id, "virtual authenticator")
    ]
    page.get_by_role("button", name="Sign in with a passkey").click()
    expect(page.locator("#who")).to_have_text(f"Signed in as {APPROVER}")
    return credential_id


def test_an_approver_enrols_signs_in_and_approves_a_waiting_request_in_chromium(
    world: ApiWorld, page: Page
) -> None:
    admin = world.headers("tenant-admin")
    # What `make run` does too (infra/local/api.py): the tenant admin creates an approver of the vault.
    approver = create_approver(world.http, admin=admin, vault_id=SUPPORT_VAULT, name=APPROVER)
    assert approver.enrollment_url.startswith(page_url(world) + "#enroll=")

    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    credential_id = _enrol_and_sign_in(world, page, approver)

    # A step-up request (the support vault's rules step up incident response) from a new device.
    requester = world.enrol()
    request_id = f"browser-{uuid.uuid4().hex}"
    proved = world.access.request(
        requester, TENANT, SUPPORT_VAULT, ITEM, purpose=STEP_UP_PURPOSE, request_id=request_id
    )
    requester_headers = world.headers("requester")
    waiting = start_waiting_request(
        world.http,
        approver=admin,
        requester=requester_headers,
        request_body=access_request_body(proved),
        request_id=request_id,
    )
    location = waiting.status_url.removeprefix(world.url)

    card = _card(page, request_id)
    expect(card.locator("h3")).to_have_text(f"{ITEM} in {SUPPORT_VAULT}")
    expect(card.locator("[data-field=requester]")).to_have_text(world.client("requester").client_id)
    expect(card.locator("[data-field=purpose]")).to_have_text(STEP_UP_PURPOSE)
    expect(card.locator("[data-field=trust]")).to_contain_text("step_up")
    expect(card.locator("[data-field=progress]")).to_have_text("0 of 1 needed")
    votes = card.locator("tbody[data-field=votes] tr")
    expect(votes).to_have_count(4)  # the support vault's panel: strict, permissive, neutral, watchdog
    expect(card).not_to_contain_text(NOTES[ITEM].decode())  # never the plaintext
    pending_shot = artifacts_dir() / "approval-page-pending.png"
    page.screenshot(path=str(pending_shot), full_page=True)
    # Still waiting for a person: the execution has not decided.
    assert send(world.http, "GET", location, headers=requester_headers).json()["status"] == ("pending")

    card.get_by_role("button", name="Approve with passkey").click()
    expect(page.locator("#status")).to_have_text(
        f"You approved {ITEM}: enough people approved: the request goes on."
    )
    expect(page.locator("#error")).to_be_hidden()
    view = decided(world, location, requester_headers)
    page.get_by_role("button", name="Refresh").click()
    expect(page.locator(f'li.approval[data-request-id="{request_id}"]')).to_have_count(0)
    page.screenshot(path=str(artifacts_dir() / "approval-page-approved.png"), full_page=True)

    assert view["status"] == "approved", view
    assert open_approved(world, view, requester) == NOTES[ITEM]
    keys = AuditKeys.fetch(world, world.headers("auditor"))
    keys.verify_receipt(view)
    chain = keys.verify_chain(view, requester)
    assert chain.approves
    claims: list[Mapping[str, Any]] = [a.statement.claim for a in chain.approvals]
    assert [(c["person_id"], c["credential_id"], c["vote"]) for c in claims] == [
        (approver.person_id, credential_id, "approve")
    ]
    assert errors == []
    assert pending_shot.stat().st_size > 0
