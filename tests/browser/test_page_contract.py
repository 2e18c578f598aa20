"""The approval page's own behaviour in Chromium, against the API contract of docs/api.md played by the
test (Playwright answers the page's /v1 calls; py_webauthn verifies what the page sends): the page is
the app's real answer with its real headers. What it checks is what the full test
(test_approval_page.py) cannot provoke: the binary fields converted right both ways (py_webauthn accepts
every ceremony), data shown as text even when it looks like markup, problems shown by title and detail,
the enrollment link gone from the address bar, the session token never stored, a 401 signing out."""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import webauthn
from playwright.sync_api import ConsoleMessage, Page, Request, Route, expect
from webauthn.helpers.structs import (
    AuthenticatorSelectionCriteria,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from reliquary.api.app import create_app
from reliquary.gateway import ApiRuntime
from tests.support.browser import add_virtual_authenticator

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ORIGIN = "http://localhost:8765"  # nothing listens: Playwright answers every request of the page
ENROLL = "enrollment-token-" + secrets.token_hex(8)
SESSION = "session-token-" + secrets.token_hex(8)
MARKUP = '<img src="x" id="injected">'  # data that looks like markup: it must show as text
PROBLEM = "application/problem+json"


def _no_runtime() -> ApiRuntime:
    raise AssertionError("the page needs no runtime")


def _app_answer(path: str) -> httpx.Response:
    """The API app's own answer (body and headers, the CSP included) for one of the page's paths."""

    async def send() -> httpx.Response:
        transport = httpx.ASGITransport(app=create_app(_no_runtime))
        async with httpx.AsyncClient(transport=transport, base_url=ORIGIN) as client:
            return await client.get(path)

    # In a thread of its own: Playwright's sync API keeps an event loop running in this one.
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, send()).result()


def _pending(request_id: str) -> dict[str, Any]:
    return {
        "request_id": request_id,
        "vault_id": "support-memory",
        "item_id": "customer-42-notes",
        "sensitivity": "restricted",
        "requester": "cl-0123456789abcdef01234567",
        "purpose": "support",
        "region": "office-lisbon",
        "trust": {
            "score": 0.41,
            "band": "low",
            "effect": "step_up",
            "factors": [
                {"name": "new_region", "value": 0.2, "weight": 0.4, "contribution": -0.32},
                {"name": "sensitivity", "value": 0.5, "weight": 0.3, "contribution": -0.15},
            ],
        },
        "votes": [
            {"agent": "guardian", "vote": "approve", "confidence": 0.8, "rationale": MARKUP},
            {"agent": "auditor", "vote": "approve", "confidence": 0.7, "rationale": "purpose matches"},
        ],
        "required": 1,
        "approvals": [],
        "created_at": 1777629600,  # 2026-05-01T10:00:00Z
        "expires_at": 1777630200,
    }


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass
class ContractApi:
    """The /v1 routes the page calls, as docs/api.md specifies them, over py_webauthn."""

    user_handle: bytes = field(default_factory=lambda: secrets.token_bytes(16))
    challenges: dict[str, bytes] = field(default_factory=dict)
    credential: Any = None  # py_webauthn's VerifiedRegistration
    sign_count: int = 0
    pending: list[dict[str, Any]] = field(default_factory=lambda: [_pending("req-1")])
    decisions: list[dict[str, Any]] = field(default_factory=list)
    refuse_next_approval: bool = False
    expire_session: bool = False
    calls: list[tuple[str, str, str | None]] = field(default_factory=list)  # method, path, bearer

    def answer(self, route: Route, request: Request) -> None:
        path = request.url.removeprefix(ORIGIN)
        bearer = request.headers.get("authorization", "").removeprefix("Bearer ") or None
        self.calls.append((request.method, path, bearer))
        body = request.post_data_json if request.method == "POST" else None
        status, payload = self.route(request.method, path, bearer, body)
        media = PROBLEM if status >= 400 else "application/json"
        route.fulfill(status=status, content_type=media, body=json.dumps(payload))

    def route(  # noqa: PLR0911  (one answer per route of the contract)
        self, method: str, path: str, bearer: str | None, body: Any
    ) -> tuple[int, dict[str, Any]]:
        if path == "/v1/webauthn/registration/options" and bearer == ENROLL:
            creation = webauthn.generate_registration_options(
                rp_id="localhost",
                rp_name="RELIQUARY",
                user_name="Ada Approver",
                user_id=self.user_handle,
                authenticator_selection=AuthenticatorSelectionCriteria(
                    resident_key=ResidentKeyRequirement.PREFERRED,
                    user_verification=UserVerificationRequirement.REQUIRED,
                ),
            )
            return 200, self._challenge(creation)
        if path == "/v1/webauthn/registration/verify" and bearer == ENROLL:
            self.credential = webauthn.verify_registration_response(
                credential=body["credential"],
                expected_challenge=self.challenges.pop(body["challenge_id"]),
                expected_rp_id="localhost",
                expected_origin=ORIGIN,
                require_user_verification=True,
            )
            assert body["label"] == "work laptop"
            return 201, {"credential_id": _b64(self.credential.credential_id), "aaguid": "", "created_at": ""}
        if path == "/v1/webauthn/authentication/options" and bearer is None:
            options = webauthn.generate_authentication_options(
                rp_id="localhost", user_verification=UserVerificationRequirement.REQUIRED
            )
            return 200, self._challenge(options)
        if path == "/v1/webauthn/authentication/verify" and bearer is None:
            self._verify(body["credential"], self.challenges.pop(body["challenge_id"]))
            assert base64.urlsafe_b64decode(body["credential"]["response"]["userHandle"] + "==") == (
                self.user_handle
            )
            person = {"person_id": "ps-" + "a" * 24, "tenant_id": "acme", "name": "Ada", "roles": []}
            return 200, {
                "access_token": SESSION,
                "token_type": "Bearer",
                "expires_in": 900,
                "scope": "access:approve",
                "person": person,
            }
        if bearer != SESSION or self.expire_session:
            return 401, {"title": "Unauthenticated", "detail": "a valid access token is required"}
        if method == "GET" and path == "/v1/approvals":
            return 200, {"approvals": self.pending}
        if path == "/v1/approvals/req-1/challenge":
            options = webauthn.generate_authentication_options(
                rp_id="localhost",
                allow_credentials=[PublicKeyCredentialDescriptor(id=self.credential.credential_id)],
                user_verification=UserVerificationRequirement.REQUIRED,
            )
            nonce = f"{body['decision']}-{secrets.token_hex(4)}"  # checked against the decision below
            self.challenges[nonce] = options.challenge
            options_json = json.loads(webauthn.options_to_json(options))
            return 200, {"options": options_json, "nonce": nonce, "issued_at": "2026-05-01T10:01:00Z"}
        if path == "/v1/approvals/req-1":
            if self.refuse_next_approval:
                self.refuse_next_approval = False
                return 409, {"title": "Conflict", "detail": "this request is no longer waiting"}
            self._verify(body["credential"], self.challenges.pop(body["nonce"]))
            assert body["nonce"].startswith(body["decision"] + "-")
            self.decisions.append(body)
            self.pending = []
            return 200, {
                "request_id": "req-1",
                "decision": body["decision"],
                "approvals": 1,
                "required": 1,
                "complete": True,
            }
        return 404, {"title": "Not found", "detail": "no such route"}

    def _challenge(self, options: Any) -> dict[str, Any]:
        challenge_id = secrets.token_hex(8)
        self.challenges[challenge_id] = options.challenge
        return {"challenge_id": challenge_id, "options": json.loads(webauthn.options_to_json(options))}

    def _verify(self, credential: dict[str, Any], challenge: bytes) -> None:
        verified = webauthn.verify_authentication_response(
            credential=credential,
            expected_challenge=challenge,
            expected_rp_id="localhost",
            expected_origin=ORIGIN,
            credential_public_key=self.credential.credential_public_key,
            credential_current_sign_count=self.sign_count,
            require_user_verification=True,
        )
        self.sign_count = verified.new_sign_count


def _serving(served: httpx.Response) -> Callable[[Route], None]:
    def fulfil(route: Route) -> None:
        route.fulfill(status=served.status_code, headers=dict(served.headers), body=served.content)

    return fulfil


@pytest.fixture
def api(page: Page) -> ContractApi:
    contract = ContractApi()
    for path in ("/approve", "/approve/app.js"):
        served = _app_answer(path)
        assert served.status_code == 200
        page.route(f"{ORIGIN}{path}", _serving(served))
    page.route(f"{ORIGIN}/v1/**", contract.answer)
    return contract


def _console(page: Page) -> list[str]:
    problems: list[str] = []

    def seen(message: ConsoleMessage) -> None:
        if message.type in {"error", "warning"}:
            problems.append(message.text)

    page.on("console", seen)
    page.on("pageerror", lambda error: problems.append(str(error)))
    return problems


def test_enrol_sign_in_approve_and_what_the_page_never_does(page: Page, api: ContractApi) -> None:
    authenticator = add_virtual_authenticator(page)
    problems = _console(page)
    page.goto(f"{ORIGIN}/approve#enroll={ENROLL}")
    expect(page.get_by_role("heading", name="Register your passkey")).to_be_visible()
    assert page.url == f"{ORIGIN}/approve"  # the enrollment token left the address bar and the history

    page.get_by_label("Name for this passkey").fill("work laptop")
    page.get_by_role("button", name="Register a passkey").click()
    expect(page.locator("#status")).to_have_text("Your passkey is registered. Sign in with it.")
    assert len(authenticator.credentials()) == 1
    assert api.credential is not None  # py_webauthn accepted the page's registration JSON

    page.get_by_role("button", name="Sign in with a passkey").click()
    expect(page.locator("#who")).to_have_text("Signed in as Ada")
    card = page.locator("li.approval")
    expect(card).to_have_count(1)
    expect(card.locator("h3")).to_have_text("customer-42-notes in support-memory")
    expect(card).to_contain_text("cl-0123456789abcdef01234567")
    expect(card).to_contain_text("office-lisbon")
    expect(card).to_contain_text("2026")  # epoch seconds read as seconds, not milliseconds
    expect(card).to_contain_text("0.41 (low, step_up)")
    expect(card).to_contain_text("new_region")
    expect(card.locator("tbody[data-field=votes] tr")).to_have_count(2)
    expect(card.locator("tbody[data-field=votes]")).to_contain_text(MARKUP)  # as text
    assert page.locator("#injected").count() == 0  # never parsed as markup
    expect(card.locator("[data-field=progress]")).to_have_text("0 of 1 needed")

    # A refusal is shown by its problem's title and detail, and changes nothing.
    api.refuse_next_approval = True
    card.get_by_role("button", name="Approve with passkey").click()
    expect(page.locator("#error-title")).to_have_text("Conflict")
    expect(page.locator("#error-detail")).to_have_text("this request is no longer waiting")
    assert api.decisions == []

    card.get_by_role("button", name="Approve with passkey").click()
    expect(page.locator("#status")).to_have_text(
        "You approved customer-42-notes: enough people approved: the request goes on."
    )
    expect(page.locator("#error")).to_be_hidden()
    expect(page.locator("#empty")).to_be_visible()
    assert [d["decision"] for d in api.decisions] == ["approve"]
    assert api.decisions[0]["issued_at"] == "2026-05-01T10:01:00Z"

    # The session token went out only as a bearer header, and was never stored.
    stored = page.evaluate(
        "() => JSON.stringify([Object.entries(localStorage), Object.entries(sessionStorage),"
        " document.cookie])"
    )
    assert SESSION not in stored
    assert ENROLL not in stored
    assert {bearer for method, path, bearer in api.calls if path.startswith("/v1/approvals")} == {SESSION}

    # The API ends the session (401): the page signs out and asks for a passkey again.
    api.expire_session = True
    page.get_by_role("button", name="Refresh").click()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    expect(page.locator("#error-title")).to_have_text("Unauthenticated")
    expect(page.locator("#who")).to_have_text("")
    # The two refusals the test provoked, logged by the browser; no CSP violation, no script error.
    assert [m.rsplit(" ", 2)[-2] for m in problems] == ["409", "401"], problems


def test_an_unusable_enrollment_link_shows_the_problem_not_the_body(page: Page, api: ContractApi) -> None:
    add_virtual_authenticator(page)
    page.goto(f"{ORIGIN}/approve#enroll=not-the-token")
    page.get_by_role("button", name="Register a passkey").click()
    expect(page.locator("#error-title")).to_have_text("Unauthenticated")
    expect(page.locator("#error-detail")).to_have_text("a valid access token is required")
    assert api.credential is None


def test_a_cancelled_passkey_prompt_is_explained(page: Page, api: ContractApi) -> None:
    authenticator = add_virtual_authenticator(page)
    page.goto(f"{ORIGIN}/approve")
    authenticator.set_user_verified(False)  # the person does not confirm: the browser refuses
    page.get_by_role("button", name="Sign in with a passkey").click()
    expect(page.locator("#error-title")).to_have_text("The passkey was not used")
    assert not [c for c in api.calls if c[1] == "/v1/webauthn/authentication/verify"]
