"""Step-up answers straight to agent-vote, past the API, on the local runtime (moto's Step Functions
interpreter running infra/statemachine/access.asl.json unchanged): agent-vote trusts no caller, so a forged
or misdirected ``approve`` event, as a subverted API could send it, is refused and changes nothing. The
honest path (people answering over HTTP with passkeys, k approvals, a deny, the timeout) is
tests/api/test_approvals_http.py."""

from __future__ import annotations

import time

import pytest

from infra.local.access import FunctionRefused
from infra.local.runtime import REGION
from infra.local.seed import STEP_UP_PURPOSE, SUPPORT_VAULT, TENANT
from reliquary.adapters.approvals_store import DynamoDBApprovalStore
from reliquary.adapters.dynamodb import TableConfig
from reliquary.flow.approvals import PendingApproval
from reliquary.identity.scopes import Role, RoleBinding
from tests.support.approvers import add_approver
from tests.support.flow import ITEM, Flow


def _store(flow: Flow) -> DynamoDBApprovalStore:
    table = TableConfig(flow.stack.resources["ApprovalsTable"], REGION, flow.stack.endpoint)
    return DynamoDBApprovalStore(table, flow.stack.client("dynamodb"))


def _start_step_up(flow: Flow) -> tuple[str, dict[str, str]]:
    request = flow.access.request(flow.enrol(), TENANT, SUPPORT_VAULT, ITEM, purpose=STEP_UP_PURPOSE)
    ids = {"tenant_id": TENANT, "vault_id": SUPPORT_VAULT, "item_id": ITEM, "request_id": request.request_id}
    return flow.access.start(request), ids


def _waiting(flow: Flow, ids: dict[str, str], *, timeout: float = 60) -> PendingApproval:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        view = _store(flow).get_pending(TENANT, ids["request_id"])
        if view is not None:
            return view
        time.sleep(0.1)
    raise TimeoutError("the request never waited for approval")


def test_forged_or_misdirected_answers_change_nothing(flow: Flow) -> None:
    arn, ids = _start_step_up(flow)
    _waiting(flow, ids)
    approver = add_approver(flow.stack, TENANT)
    other_tenant = add_approver(flow.stack, "globex")
    not_an_approver = add_approver(flow.stack, TENANT, roles=(RoleBinding(Role.AUDITOR),))
    other_vault = add_approver(flow.stack, TENANT, roles=(RoleBinding(Role.APPROVER, "other-vault"),))
    refusals = {
        "another request": (approver.answer(ids, request_id="access-elsewhere"), "passkey_invalid"),
        "another decision": (
            approver.answer(ids, decision="deny") | {"decision": "approve"},
            "passkey_invalid",
        ),
        "another item": (approver.answer(ids, item_id="other-item"), "passkey_invalid"),
        "another tenant's approver": (other_tenant.answer(ids), "forbidden"),
        "not an approver": (not_an_approver.answer(ids), "forbidden"),
        "another vault's approver": (other_vault.answer(ids), "forbidden"),
    }
    for name, (event, code) in refusals.items():
        with pytest.raises(FunctionRefused) as refused:
            flow.access.invoke("agent-vote", event)
        assert refused.value.error["code"] == code, name
    view = _store(flow).get_pending(TENANT, ids["request_id"])
    assert view is not None
    assert (view.status, view.approvals) == ("pending", [])
    # A replayed assertion: the first use counts, the replay (another person's claim to it) does not.
    answer = approver.answer(ids)
    flow.access.invoke("agent-vote", answer)
    with pytest.raises(FunctionRefused):
        flow.access.invoke("agent-vote", answer | {"person_id": not_an_approver.person_id})
    assert flow.access.wait(arn).decision == "approve"
