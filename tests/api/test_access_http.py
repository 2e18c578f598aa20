"""Access requests over real HTTP: 202 and a Location, then pending until approved (a grant only the
requester's key opens, the log's receipt, the attestation chain an outsider verifies with the published
keys) or denied (reasons, receipt). The request id is the Idempotency-Key; the principal is the client
the token names, never anything in the body; a request is visible to its client and to approvers only.

Each test asks as a client of its own (the principal's trust history is its own: one test's denials do
not count against another's approval) and proves on a device of its own."""

from __future__ import annotations

import copy
import json
import uuid
from typing import Any

import pytest

from infra.local.api import access_request_body
from infra.local.seed import NOTES, SUPPORT_VAULT, TENANT
from reliquary.errors import AttestationError, InvalidEnvelopeError
from reliquary.flow.attestation import parse_chain, verify_chain
from reliquary.flow.executions import execution_name
from reliquary.identity.scopes import Role, RoleBinding
from tests.support.api import ITEM, OTHER_TENANT, ApiWorld
from tests.support.api_flows import AuditKeys, client_headers, decided, open_approved

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

REQUESTS = "/v1/access-requests"


def _requester(world: ApiWorld) -> tuple[str, dict[str, str]]:
    """A new requester client of the agent-memory vault: (its client id, its Authorization header)."""
    client, headers = client_headers(world, RoleBinding(Role.REQUESTER, SUPPORT_VAULT))
    return client.client_id, headers


def _post(world: ApiWorld, body: dict[str, Any], headers: dict[str, str], key: str | None) -> Any:
    extra = {} if key is None else {"Idempotency-Key": key}
    return world.http.post(REQUESTS, json=body, headers={**headers, **extra})


def _executions(world: ApiWorld, request_id: str) -> list[dict[str, Any]]:
    """The access state machine's executions of one request (an operator's view of Step Functions)."""
    sfn = world.stack.client("stepfunctions")
    name = execution_name(TENANT, request_id)
    found = sfn.list_executions(stateMachineArn=world.stack.access_state_machine_arn, maxResults=1000)
    return [e for e in found["executions"] if e["name"] == name]


def _problem(answer: Any, status: int, code: str) -> dict[str, Any]:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    problem: dict[str, Any] = answer.json()
    assert problem["code"] == code
    return problem


def test_an_approved_request_grants_the_memory_to_the_requester_alone(world: ApiWorld) -> None:
    _, headers = _requester(world)
    device = world.enrol()
    request_id, body = world.access_request(device)

    started = _post(world, body, headers, request_id)
    assert started.status_code == 202, started.text
    assert started.headers["location"] == f"{REQUESTS}/{request_id}"
    assert started.headers["retry-after"] == "1"
    assert started.headers["x-request-id"] == request_id
    accepted = started.json()
    assert (accepted["request_id"], accepted["status"]) == (request_id, "pending")
    assert (accepted["vault_id"], accepted["memory_id"]) == (SUPPORT_VAULT, ITEM)
    assert accepted["grant"] is None

    view = decided(world, started.headers["location"], headers)
    assert view["status"] == "approved", view["reasons"]
    assert view["decided_at"] >= view["requested_at"]
    assert view["reasons"]
    assert view["grant"] is not None
    assert view["receipt"] is not None
    assert view["entry"] is not None
    assert view["attestation_chain"] is not None
    assert {v["agent"] for v in view["votes"]} == {"strict", "permissive", "neutral", "watchdog"}

    # The grant opens with the requester's key, to exactly what was sealed; with no other key.
    assert open_approved(world, view, device) == NOTES[ITEM]
    with pytest.raises(InvalidEnvelopeError):
        open_approved(world, view, world.enrol())
    with pytest.raises(InvalidEnvelopeError):
        open_approved(world, {**view, "request_id": f"api-{uuid.uuid4().hex}"}, device)

    # As an outsider, with the keys the API publishes: the receipt and the chain.
    keys = AuditKeys.fetch(world, world.headers("auditor"))
    assert keys.verify_receipt(view) > view["receipt"]["leaf_index"]
    chain = keys.verify_chain(view, device)
    assert chain.approves
    assert chain.tally is not None
    assert chain.tally.statement.claim["decision"] == "approve"
    entry = json.loads(view["entry"])
    assert (entry["decision"], entry["request_id"], entry["item_id"]) == ("approve", request_id, ITEM)

    # An altered chain is not the one the log names, and its signatures no longer verify.
    altered = copy.deepcopy(view["attestation_chain"])
    altered[-1]["statement"]["claim"]["decision"] = "deny"
    with pytest.raises(ValueError, match="logged entry"):
        keys.verify_chain({**view, "attestation_chain": altered}, device)
    with pytest.raises(AttestationError):
        verify_chain(parse_chain(altered), keys.stage_keys)


@pytest.mark.parametrize("wrong", ["proof for another request id", "unknown device"])
def test_a_request_the_proof_does_not_support_is_denied_with_reasons(world: ApiWorld, wrong: str) -> None:
    _, headers = _requester(world)
    device = world.enrol()
    if wrong == "unknown device":
        proved = world.access.request(
            device, TENANT, SUPPORT_VAULT, ITEM, request_id=f"api-{uuid.uuid4().hex}", prove_as="unenrolled"
        )
        request_id, body = proved.request_id, access_request_body(proved)
    else:
        _, body = world.access_request(device)  # proved for its own request id...
        request_id = f"api-{uuid.uuid4().hex}"  # ...sent under another

    started = _post(world, body, headers, request_id)
    assert started.status_code == 202, started.text
    view = decided(world, started.headers["location"], headers)
    assert view["status"] == "denied"
    expected = {
        "proof for another request id": "the proof is bound to another request",
        "unknown device": "the device is not one this vault knows",
    }[wrong]
    assert view["reasons"] == [f"context proof not verified: {expected}"]
    assert view["grant"] is None
    keys = AuditKeys.fetch(world, world.headers("auditor"))
    keys.verify_receipt(view)  # the denial is logged too
    assert json.loads(view["entry"])["decision"] == "deny"
    chain = keys.verify_chain(view, device)
    assert not chain.approves
    assert chain.context.statement.claim["verified"] is False


def test_the_request_id_is_the_idempotency_key(world: ApiWorld) -> None:
    _, headers = _requester(world)
    request_id, body = world.access_request(world.enrol())

    missing = _post(world, body, headers, None)
    problem = _problem(missing, 400, "invalid_request")
    assert problem["details"] == {"field": "Idempotency-Key"}
    assert _executions(world, request_id) == []

    first = _post(world, body, headers, request_id)
    again = _post(world, body, headers, request_id)
    assert first.status_code == again.status_code == 202, again.text
    assert first.headers["location"] == again.headers["location"]
    view = decided(world, first.headers["location"], headers)
    # After the decision, the same request once more: still that one request, decided once.
    late = _post(world, body, headers, request_id)
    assert late.status_code == 200, late.text  # decided: its state at once, no longer "pending"
    assert late.json()["status"] == view["status"] != "pending"
    assert decided(world, late.headers["location"], headers) == view
    assert len(_executions(world, request_id)) == 1

    other = _post(world, {**body, "purpose": "something-else-marker"}, headers, request_id)
    problem = _problem(other, 409, "idempotency_conflict")
    assert problem["request_id"] == request_id
    assert "marker" not in other.text
    assert decided(world, first.headers["location"], headers) == view
    assert len(_executions(world, request_id)) == 1


def test_another_client_sees_the_request_only_with_access_read(world: ApiWorld) -> None:
    owner, headers = _requester(world)
    request_id, body = world.access_request(world.enrol())
    started = _post(world, body, headers, request_id)
    assert started.status_code == 202, started.text
    location = started.headers["location"]
    view = decided(world, location, headers)

    # Another requester of the same vault, same tenant: as absent as a request that does not exist.
    _, stranger = _requester(world)
    hidden = world.http.get(location, headers=stranger)
    absent = world.http.get(f"{REQUESTS}/api-{uuid.uuid4().hex}", headers=stranger)
    assert _problem(hidden, 404, "not_found")["detail"] == _problem(absent, 404, "not_found")["detail"]
    assert request_id not in hidden.text
    # Approvers of the vault (access:read) and the tenant admin see it, as decided.
    for role in ("approver", "tenant-admin"):
        seen = world.http.get(location, headers=world.headers(role))
        assert seen.status_code == 200, seen.text
        assert seen.json() == view
    # Another tenant, even its admin, does not.
    _problem(world.http.get(location, headers=world.headers("tenant-admin", OTHER_TENANT)), 404, "not_found")
    # The principal the flow decided for is the client the token names.
    (execution,) = _executions(world, request_id)
    described = world.stack.client("stepfunctions").describe_execution(executionArn=execution["executionArn"])
    flow = json.loads(described["input"])
    assert flow["principal"] == {"subject": owner, "roles": ["requester"]}
    assert flow["tenant_id"] == TENANT


@pytest.mark.parametrize(
    "extra",
    [
        {"tenant_id": OTHER_TENANT},
        {"principal": {"subject": "support-agent-0", "roles": ["tenant-admin"]}},
        {"request_id": "chosen-by-body"},
        {"item_id": "customer-42-notes"},
    ],
    ids=["tenant_id", "principal", "request_id", "item_id"],
)
def test_the_body_cannot_name_the_tenant_or_the_principal(world: ApiWorld, extra: dict[str, Any]) -> None:
    _, headers = _requester(world)
    request_id, body = world.access_request(world.enrol())
    answer = _post(world, {**body, **extra}, headers, request_id)
    problem = _problem(answer, 400, "invalid_request")
    assert {e["type"] for e in problem["errors"]} == {"extra_forbidden"}
    assert "support-agent-0" not in answer.text
    assert "chosen-by-body" not in answer.text
    assert _executions(world, request_id) == []
    _problem(world.http.get(f"{REQUESTS}/{request_id}", headers=headers), 404, "not_found")
