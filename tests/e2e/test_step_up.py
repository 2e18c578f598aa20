"""Step-up as a real wait, end to end on the local runtime (moto's Step Functions interpreter running
infra/statemachine/access.asl.json unchanged): a step_up request is convened and tallied, then waits in
AwaitApprovers (lambda:invoke.waitForTaskToken) until the vault's approvers answer with passkeys through
agent-vote's ``approve`` (SendTaskSuccess through the moto server), one of them denies, or the policy's
timeout (TimeoutSecondsPath) denies. The grant's chain names who approved, checked offline."""

from __future__ import annotations

import time
from typing import Any

import pytest

from infra.local.access import Execution, FunctionRefused
from infra.local.runtime import REGION
from infra.local.seed import STEP_UP_PURPOSE, SUPPORT_QUORUM, SUPPORT_VAULT, TENANT
from reliquary.adapters.approvals_store import DynamoDBApprovalStore
from reliquary.adapters.dynamodb import TableConfig
from reliquary.flow.approvals import PendingApproval
from reliquary.identity.scopes import Role, RoleBinding
from tests.support.approvers import StackApprover, add_approver, people_of
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


def _status(flow: Flow, arn: str) -> str:
    return str(flow.stack.client("stepfunctions").describe_execution(executionArn=arn)["status"])


def _approve(
    flow: Flow, who: StackApprover, ids: dict[str, str], decision: str = "approve"
) -> dict[str, Any]:
    return flow.access.invoke("agent-vote", who.answer(ids, decision))


def test_a_step_up_waits_and_k_approvals_release_a_grant_whose_chain_names_them(flow: Flow) -> None:
    arn, ids = _start_step_up(flow)
    view = _waiting(flow, ids)
    assert (view.required, view.status, view.trust.effect) == (1, "pending", "step_up")
    assert {v.agent for v in view.votes} == {"strict", "permissive", "neutral", "watchdog"}
    assert _status(flow, arn) == "RUNNING"

    approver = add_approver(flow.stack, TENANT)
    reply = _approve(flow, approver, ids)
    assert reply == {
        "request_id": ids["request_id"],
        "decision": "approve",
        "approvals": 1,
        "required": 1,
        "complete": True,
    }

    execution = flow.access.wait(arn)
    assert execution.status == "SUCCEEDED", execution.error
    assert execution.output is not None
    assert execution.output["decision"] == "approve"
    assert execution.output["grant"] is not None
    assert [a["person_id"] for a in execution.output["approvals"]] == [approver.person_id]
    assert "AwaitApprovers" in execution.states_entered()
    chain = flow.access.verify_chain(execution)  # offline, with the published stage keys only
    assert chain.approves
    assert chain.approved_by == (approver.person_id,)
    assert chain.approvals[0].statement.claim["credential_id"] == approver.credential.credential_id
    assert flow.access.verify_receipt(execution) >= 1
    assert people_of(flow.stack).get_credential(approver.credential.credential_id).sign_count == 1
    # Answered and closed: a second approver's answer is a conflict and changes nothing.
    with pytest.raises(FunctionRefused) as refused:
        _approve(flow, add_approver(flow.stack, TENANT), ids)
    assert refused.value.error["code"] == "conflict"


def test_one_deny_ends_the_wait_as_a_logged_deny_naming_the_approver(flow: Flow) -> None:
    arn, ids = _start_step_up(flow)
    _waiting(flow, ids)
    approver = add_approver(flow.stack, TENANT)
    assert _approve(flow, approver, ids, "deny")["complete"] is True
    execution: Execution = flow.access.wait(arn)
    flow.assert_logged_deny(execution, f"denied by approver {approver.person_id}")


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


def test_two_approvers_and_a_timeout_that_denies(flow: Flow) -> None:
    """A policy asking for two people waits for both; the policy's shortest wait (60 s, read by the state
    machine through TimeoutSecondsPath) then denies what one approval alone cannot release."""
    flow.access.set_quorum_policy(
        TENANT, SUPPORT_VAULT, {**SUPPORT_QUORUM, "approvers": 2, "approval_timeout_seconds": 60}
    )
    try:
        arn, ids = _start_step_up(flow)
        assert _waiting(flow, ids).required == 2
        reply = _approve(flow, add_approver(flow.stack, TENANT), ids)
        assert (reply["approvals"], reply["complete"]) == (1, False)
        execution = flow.access.wait(arn, timeout=120)
        output = flow.assert_logged_deny(execution, "no approver answered in time")
        assert output["approvals"] == []
        assert 60 <= execution.seconds < 110
    finally:
        flow.access.set_quorum_policy(TENANT, SUPPORT_VAULT, SUPPORT_QUORUM)
