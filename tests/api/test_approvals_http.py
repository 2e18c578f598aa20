"""Step-up approvals over real HTTP, end to end on the local stack: a requester's step-up request
(purpose incident-response: the trust rules' step_up) is tallied by the agents and waits in the access
state machine; approvers, people of the tenant with a passkey (a software authenticator standing in for the
browser), sign in, see it in `GET /v1/approvals`, ask for the approval challenge and answer with their
passkey; the API relays the answer to agent-vote, which verifies it and resumes the execution. The grant's
chain names who approved, checked offline with the published keys.

Forged and misdirected answers are refused and change nothing: an assertion over another decision or
another nonce, another person's assertion, a stale challenge, a person without `access:approve` on the
vault, another vault's or another tenant's approver, a client (no passkey)."""

from __future__ import annotations

import time
from typing import Any

import pytest

from infra.local.seed import NOTES, STEP_UP_PURPOSE, STRICT_VAULT, SUPPORT_QUORUM, SUPPORT_VAULT, TENANT
from reliquary.identity.scopes import Role, RoleBinding
from tests.support.api import ITEM, OTHER_TENANT, ApiWorld
from tests.support.api_flows import AuditKeys, client_headers, decided, open_approved
from tests.support.api_routes import problem, send
from tests.support.people import bearer, enrolled

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

WAIT_SECONDS = 60.0
APPROVER = [{"role": "approver", "vault_id": SUPPORT_VAULT}]


class Approver:
    """A person with a passkey, signed in (a session token), answering over HTTP."""

    def __init__(self, world: ApiWorld, roles: list[dict[str, Any]], tenant: str = TENANT) -> None:
        self.world = world
        self.person, token = enrolled(world.http, world.headers("tenant-admin", tenant), roles)
        self.headers = bearer(token)

    @property
    def person_id(self) -> str:
        return self.person.person_id

    def listed(self) -> list[dict[str, Any]]:
        answer = send(self.world.http, "GET", "/v1/approvals", headers=self.headers)
        assert answer.status_code == 200, answer.text[:300]
        approvals: list[dict[str, Any]] = answer.json()["approvals"]
        return approvals

    def challenge(self, request_id: str, decision: str = "approve") -> Any:
        return send(
            self.world.http,
            "POST",
            f"/v1/approvals/{request_id}/challenge",
            json={"decision": decision},
            headers=self.headers,
        )

    def signed(self, request_id: str, decision: str = "approve") -> dict[str, Any]:
        """The answer's body: the challenge asked for ``decision``, signed by this person's passkey."""
        asked = self.challenge(request_id, decision)
        assert asked.status_code == 200, asked.text[:300]
        body = asked.json()
        credential = self.person.authenticator.authenticate(body["options"])
        return {
            "decision": decision,
            "nonce": body["nonce"],
            "issued_at": body["issued_at"],
            "credential": credential,
        }

    def send(self, request_id: str, body: dict[str, Any]) -> Any:
        return send(self.world.http, "POST", f"/v1/approvals/{request_id}", json=body, headers=self.headers)

    def answer(self, request_id: str, decision: str = "approve") -> dict[str, Any]:
        answer = self.send(request_id, self.signed(request_id, decision))
        assert answer.status_code == 200, answer.text[:300]
        state: dict[str, Any] = answer.json()
        return state


def _step_up(world: ApiWorld) -> tuple[str, dict[str, str], Any]:
    """A requester's step-up request, started: (its location, the requester's headers, its device)."""
    _, headers = client_headers(world, RoleBinding(Role.REQUESTER, SUPPORT_VAULT))
    device = world.enrol()
    request_id, body = world.access_request(device, purpose=STEP_UP_PURPOSE)
    started = world.http.post(
        "/v1/access-requests", json=body, headers={**headers, "Idempotency-Key": request_id}
    )
    assert started.status_code == 202, started.text[:300]
    return started.headers["location"], headers, device


def _waiting(approver: Approver, request_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        found = [a for a in approver.listed() if a["request_id"] == request_id]
        if found:
            return found[0]
        time.sleep(0.2)
    raise AssertionError(f"{request_id} never waited for approval")


def _request_id(location: str) -> str:
    return location.rsplit("/", 1)[-1]


def test_a_step_up_waits_and_an_approvers_passkey_releases_a_grant_whose_chain_names_them(
    world: ApiWorld,
) -> None:
    approver = Approver(world, APPROVER)
    location, requester, device = _step_up(world)
    request_id = _request_id(location)
    view = _waiting(approver, request_id)
    assert (view["vault_id"], view["item_id"], view["purpose"]) == (SUPPORT_VAULT, ITEM, STEP_UP_PURPOSE)
    assert (view["required"], view["status"], view["approvals"]) == (1, "pending", [])
    assert view["trust"]["effect"] == "step_up"
    assert {v["agent"] for v in view["votes"]} == {"strict", "permissive", "neutral", "watchdog"}
    assert all(v["rationale"] for v in view["votes"])
    # The requester still waits; the approver's list holds no plaintext and no task token.
    pending = world.http.get(location, headers=requester).json()
    assert pending["status"] == "pending"
    listing = send(world.http, "GET", "/v1/approvals", headers=approver.headers)
    assert NOTES[ITEM].decode() not in listing.text
    assert "task_token" not in listing.text
    assert "token" not in listing.json()["approvals"][0]
    assert listing.headers["cache-control"] == "no-store"
    # A client with the approver role sees it too (the local demo polls with one).
    polled = send(world.http, "GET", "/v1/approvals", headers=world.headers("approver")).json()
    assert request_id in {a["request_id"] for a in polled["approvals"]}

    asked = approver.challenge(request_id).json()
    options = asked["options"]
    assert [c["id"] for c in options["allowCredentials"]] == approver.person.credential_ids
    assert options["userVerification"] == "required"
    assert options["rpId"] == "localhost"

    state = approver.answer(request_id)
    assert state == {
        "request_id": request_id,
        "decision": "approve",
        "approvals": 1,
        "required": 1,
        "complete": True,
    }
    granted = decided(world, location, requester)
    assert granted["status"] == "approved", granted["reasons"]
    assert open_approved(world, granted, device) == NOTES[ITEM]
    keys = AuditKeys.fetch(world, world.headers("auditor"))
    assert keys.verify_receipt(granted) > granted["receipt"]["leaf_index"]
    chain = keys.verify_chain(granted, device)
    assert chain.approves
    assert chain.approved_by == (approver.person_id,)
    assert chain.approvals[0].statement.claim["credential_id"] == approver.person.credential_ids[0]
    # Decided: no longer listed, and no new challenge for it.
    assert request_id not in {a["request_id"] for a in approver.listed()}
    problem(approver.challenge(request_id), 409, "conflict")


def test_one_deny_ends_the_wait_as_a_deny_naming_the_approver(world: ApiWorld) -> None:
    approver = Approver(world, APPROVER)
    location, requester, _ = _step_up(world)
    request_id = _request_id(location)
    _waiting(approver, request_id)
    assert approver.answer(request_id, "deny")["complete"] is True
    denied = decided(world, location, requester)
    assert denied["status"] == "denied"
    assert denied["grant"] is None
    assert any(f"denied by approver {approver.person_id}" in reason for reason in denied["reasons"])


def test_forged_and_misdirected_answers_are_refused_and_change_nothing(world: ApiWorld) -> None:
    approver = Approver(world, APPROVER)
    location, requester, _ = _step_up(world)
    request_id = _request_id(location)
    _waiting(approver, request_id)

    deny = approver.signed(request_id, "deny")
    problem(approver.send(request_id, {**deny, "decision": "approve"}), 400, "passkey_invalid")
    other_nonce = approver.signed(request_id)
    problem(approver.send(request_id, {**other_nonce, "nonce": "0" * 32}), 400, "passkey_invalid")
    stale = approver.signed(request_id)
    problem(
        approver.send(request_id, {**stale, "issued_at": stale["issued_at"] - 3600}), 400, "invalid_request"
    )
    # Another approver of the vault presents the first one's assertion: not its passkey.
    colleague = Approver(world, APPROVER)
    stolen = approver.signed(request_id)
    problem(colleague.send(request_id, stolen), 403, "forbidden")
    # No access:approve (an auditor), another vault's approver, another tenant's approver, a client.
    auditor = Approver(world, [{"role": "auditor", "vault_id": None}])
    assert problem(auditor.challenge(request_id), 403, "forbidden")["details"] == {"scope": "access:approve"}
    elsewhere = Approver(world, [{"role": "approver", "vault_id": STRICT_VAULT}])
    assert request_id not in {a["request_id"] for a in elsewhere.listed()}
    problem(elsewhere.challenge(request_id), 404, "not_found")
    problem(elsewhere.send(request_id, approver.signed(request_id)), 404, "not_found")
    foreign = Approver(world, [{"role": "approver", "vault_id": None}], tenant=OTHER_TENANT)
    assert foreign.listed() == []
    problem(foreign.challenge(request_id), 404, "not_found")
    as_client = send(
        world.http,
        "POST",
        f"/v1/approvals/{request_id}/challenge",
        json={"decision": "approve"},
        headers=world.headers("approver"),
    )
    assert problem(as_client, 403, "forbidden")["details"] == {"check": "person"}

    view = _waiting(approver, request_id)
    assert (view["status"], view["approvals"]) == ("pending", [])
    assert world.http.get(location, headers=requester).json()["status"] == "pending"

    # The real answer counts once: sent again it gets the same reply and changes nothing.
    body = approver.signed(request_id)
    first = approver.send(request_id, body)
    assert first.status_code == 200, first.text[:300]
    again = approver.send(request_id, body)
    assert again.status_code == 200
    assert again.json() == first.json()
    assert decided(world, location, requester)["status"] == "approved"


def test_two_approvers_release_together_and_one_alone_times_out(world: ApiWorld) -> None:
    """A policy asking for two people waits for both; the policy's shortest wait (60 s, read by the state
    machine through TimeoutSecondsPath) denies what one approval alone cannot release."""
    world.access.set_quorum_policy(
        TENANT, SUPPORT_VAULT, {**SUPPORT_QUORUM, "approvers": 2, "approval_timeout_seconds": 60}
    )
    try:
        first, second = Approver(world, APPROVER), Approver(world, [{"role": "approver", "vault_id": None}])
        location, requester, device = _step_up(world)
        request_id = _request_id(location)
        assert _waiting(first, request_id)["required"] == 2
        assert first.answer(request_id)["approvals"] == 1
        assert [v["person_id"] for v in _waiting(second, request_id)["approvals"]] == [first.person_id]
        assert second.answer(request_id)["complete"] is True
        granted = decided(world, location, requester)
        assert granted["status"] == "approved", granted["reasons"]
        chain = AuditKeys.fetch(world, world.headers("auditor")).verify_chain(granted, device)
        assert set(chain.approved_by) == {first.person_id, second.person_id}

        location, requester, _ = _step_up(world)
        request_id = _request_id(location)
        _waiting(first, request_id)
        started = time.monotonic()
        assert first.answer(request_id)["complete"] is False
        denied = decided(world, location, requester)
        assert denied["status"] == "denied"
        assert any("no approver answered in time" in reason for reason in denied["reasons"])
        assert time.monotonic() - started < 110
    finally:
        world.access.set_quorum_policy(TENANT, SUPPORT_VAULT, SUPPORT_QUORUM)
