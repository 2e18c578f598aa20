"""End to end: access requests through the real state machine definition (infra/statemachine/), executed
by moto's Step Functions interpreter, against the stack created from template.yaml, with every Lambda
task run on the real handlers (infra.local.runtime). One stack per module; each test uses its own
requester (a principal with its own device), so no test depends on another's history.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import importlib
import json
import re
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from infra.local.access import FunctionRefused
from infra.local.requester import Requester
from infra.local.seed import (
    DENIED_PURPOSE,
    STEP_UP_PURPOSE,
    STRICT_VAULT,
    SUPPORT_VAULT,
    TENANT,
    UNANIMOUS_VAULT,
)
from reliquary.errors import StorageUnavailableError
from tests.support.flow import ITEM, QUORUM_STATES, Flow

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_an_approved_request_grants_the_item_to_the_requester_alone(flow: Flow) -> None:
    requester = flow.enrol()
    execution = flow.decide(requester, region="office-lisbon")

    assert execution.status == "SUCCEEDED", execution.error
    output = execution.output
    assert output is not None
    assert output["decision"] == "approve"
    # Permissive and neutral approve; the watchdog also does outside its quiet hours (00-05 UTC).
    assert re.fullmatch(r"[234] of 4 approved \(2 required\)", output["reasons"][0])
    assert {v["agent"] for v in output["votes"]} == {"strict", "permissive", "neutral", "watchdog"}
    assert output["trust"]["rules"]["effect"] == "require_quorum"  # restricted items need the rule quorum
    entered = execution.states_entered()
    assert entered.index("RecordDecision") < entered.index("Grant")  # logged before anything is released
    # The grant opens with the requester's key only, and yields exactly what was sealed.
    assert flow.access.open_grant(execution, requester) == flow.demo.items[ITEM]
    stranger = Requester(subject="someone-else", seed="unused")
    with pytest.raises(Exception, match="envelope"):
        flow.access.open_grant(execution, stranger)
    # The receipt proves the logged entry under a checkpoint signed by all three keys.
    assert flow.access.verify_receipt(execution) >= 1
    (record,) = flow.records_of(output["request"]["request_id"])
    assert record["decision"] == "approve"
    assert record["policy_version"] == output["trust"]["policy_version"]
    assert record["proof_hash"] == output["context"]["proof_hash"]
    assert requester.subject not in output["entry"]  # logged only as a keyed hash


def test_a_tampered_receipt_or_entry_does_not_verify(flow: Flow) -> None:
    execution = flow.decide(flow.enrol())
    output = execution.output
    assert output is not None
    forged = json.loads(output["entry"])
    forged["decision"] = "deny" if forged["decision"] == "approve" else "approve"
    tampered_entry = dataclasses.replace(execution, output={**output, "entry": json.dumps(forged)})
    with pytest.raises(Exception, match=r"proof|root|mismatch"):
        flow.access.verify_receipt(tampered_entry)
    receipt = dict(output["receipt"])
    receipt["leaf_index"] = receipt["leaf_index"] + 1
    tampered_receipt = dataclasses.replace(execution, output={**output, "receipt": receipt})
    with pytest.raises(Exception, match=r"proof|index|root"):
        flow.access.verify_receipt(tampered_receipt)


def test_a_proof_that_does_not_verify_is_a_logged_deny(flow: Flow) -> None:
    requester = flow.enrol()
    request = flow.access.request(requester, TENANT, SUPPORT_VAULT, ITEM)
    other = flow.access.request(requester, TENANT, SUPPORT_VAULT, ITEM)  # a valid proof of another request
    proof = request.context_proof.model_dump()
    proof["proof"] = {**proof["proof"], "pi_a": other.context_proof.proof["pi_a"]}
    tampered = request.model_copy(update={"context_proof": type(request.context_proof).model_validate(proof)})

    execution = flow.access.decide(tampered)

    output = flow.assert_logged_deny(execution, "context proof not verified: the proof does not verify")
    assert output["context"]["verified"] is False
    assert not QUORUM_STATES & set(execution.states_entered())


def test_a_replayed_nonce_is_a_logged_deny(flow: Flow) -> None:
    requester = flow.enrol()
    first = flow.access.request(requester, TENANT, SUPPORT_VAULT, ITEM)
    assert flow.access.decide(first).decision == "approve"
    # The nonce is single-use: a fresh proof bound to the same nonce, for a new request, is refused.
    replay = flow.access.request(requester, TENANT, SUPPORT_VAULT, ITEM, nonce=first.nonce)

    execution = flow.access.decide(replay)

    flow.assert_logged_deny(execution, "nonce_used")


def test_low_trust_is_denied_by_the_rules_before_the_agents_are_asked(flow: Flow) -> None:
    execution = flow.decide(flow.enrol(), vault=STRICT_VAULT)

    output = flow.assert_logged_deny(execution, "denied by the rules: trust score too low")
    assert output["trust"]["band"] == "low"
    assert output["votes"] == []
    assert not QUORUM_STATES & set(execution.states_entered())


def test_a_rule_deny_short_circuits_the_quorum(flow: Flow) -> None:
    execution = flow.decide(flow.enrol(), purpose=DENIED_PURPOSE)

    output = flow.assert_logged_deny(execution, "bulk export of agent memory is not allowed")
    assert output["trust"]["rules"]["effect"] == "deny"
    assert not QUORUM_STATES & set(execution.states_entered())


def test_the_encrypt_function_grants_nothing_the_log_did_not_approve(
    flow: Flow, monkeypatch: pytest.MonkeyPatch
) -> None:
    from functions.encrypt import app

    requester = flow.enrol()
    denied = flow.decide(requester, purpose=DENIED_PURPOSE)
    assert denied.decision == "deny"
    asked = {
        "action": "grant",
        "request_id": (denied.output or {})["request"]["request_id"],
        "tenant_id": TENANT,
        "vault_id": SUPPORT_VAULT,
        "item_id": ITEM,
        "requester_public_key": base64.b64encode(requester.public_key).decode(),
    }
    # Invoked directly (not by the state machine): a denied request, and one never decided.
    for event in (asked, {**asked, "request_id": f"never-decided-{uuid.uuid4().hex[:8]}"}):
        with pytest.raises(FunctionRefused) as refused:
            flow.access.invoke("encrypt", event)
        assert refused.value.error["code"] == "decision_required"

    # An approval logged while the flow's own Grant fails: the grant goes only to the key, vault and
    # item the record names.
    real = app.handler

    def no_flow_grants(event: dict[str, Any], context: Any) -> dict[str, Any]:
        if event.get("action") == "grant":
            raise RuntimeError("simulated: the flow's grant is lost")
        result: dict[str, Any] = real(event, context)
        return result

    monkeypatch.setattr(app, "handler", no_flow_grants)
    approved = flow.decide(requester)
    assert approved.error == "GrantFailed"
    monkeypatch.setattr(app, "handler", real)
    request_id = approved.history[0]["executionStartedEventDetails"]["input"]
    request_id = json.loads(request_id)["request_id"]
    thief = Requester(subject="thief", seed="unused")
    stolen = {**asked, "request_id": request_id}
    for wrong in (
        {"requester_public_key": base64.b64encode(thief.public_key).decode()},
        {"item_id": "run-1138-transcript"},
        {"vault_id": UNANIMOUS_VAULT},
    ):
        with pytest.raises(FunctionRefused) as refused:
            flow.access.invoke("encrypt", {**stolen, **wrong})
        assert refused.value.error["code"] == "decision_required", wrong
    granted = flow.access.invoke("encrypt", stolen)
    assert granted["item_id"] == ITEM


REFUSAL = {"code": "simulated_refusal", "type": "ReliquaryError", "message": "simulated", "retryable": False}


def _refusing(real: Any, action: str, *, times: int | None = None, raises: bool = False) -> Any:
    """``real`` except for ``action``: a typed refusal (or an exception), ``times`` times or always."""
    calls = {"n": 0}

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        if event.get("action") == action and (times is None or calls["n"] < times):
            calls["n"] += 1
            if raises:
                raise RuntimeError("simulated: broken")
            return {"status": "error", "action": action, "error": REFUSAL}
        result: dict[str, Any] = real(event, context)
        return result

    return handler


@pytest.mark.parametrize(
    ("module", "action", "raises", "reason"),
    [
        ("verify_proof", "verify", False, "VerifyContext refused the request: simulated_refusal"),
        ("score_trust", "score", False, "ScoreTrust refused the request: simulated_refusal"),
        ("agent_vote", "convene", False, "Convene refused the request: simulated_refusal"),
        ("agent_vote", "convene", True, "Convene failed: RuntimeError"),
        ("agent_vote", "vote", False, "Quorum failed: VoteRefused"),
        ("agent_vote", "vote", True, "Quorum failed: RuntimeError"),
        ("agent_vote", "tally", False, "Tally refused the request: simulated_refusal"),
        ("agent_vote", "tally", True, "Tally failed: RuntimeError"),
    ],
)
def test_every_refusal_or_failure_of_a_step_is_a_logged_deny(
    flow: Flow, monkeypatch: pytest.MonkeyPatch, *, module: str, action: str, raises: bool, reason: str
) -> None:
    app = importlib.import_module(f"functions.{module}.app")
    request = flow.access.request(flow.enrol(), TENANT, SUPPORT_VAULT, ITEM)
    monkeypatch.setattr(app, "handler", _refusing(app.handler, action, raises=raises))

    execution = flow.access.decide(request)

    output = flow.assert_logged_deny(execution, reason)
    assert output["reasons"] == [reason]


def test_a_record_the_log_refuses_becomes_a_bare_logged_denial(
    flow: Flow, monkeypatch: pytest.MonkeyPatch
) -> None:
    from functions.audit_append import app

    monkeypatch.setattr(app, "handler", _refusing(app.handler, "record_decision", times=1))
    execution = flow.decide(flow.enrol())

    output = flow.assert_logged_deny(execution, "RecordDecision refused the record: simulated_refusal")
    record = json.loads(output["entry"])
    assert record["trust_score"] is None  # the bare denial: no evidence, no requester key
    assert "requester_key_sha256" not in record
    assert "RecordDenial" in execution.states_entered()


def test_a_log_that_takes_nothing_fails_the_execution_without_a_grant(
    flow: Flow, monkeypatch: pytest.MonkeyPatch
) -> None:
    from functions.audit_append import app

    monkeypatch.setattr(app, "handler", _refusing(app.handler, "record_decision"))
    execution = flow.decide(flow.enrol())

    assert execution.status == "FAILED"
    assert execution.error == "DecisionNotRecorded"
    assert "Grant" not in execution.states_entered()


def test_a_grant_refused_after_the_approval_reports_it(flow: Flow, monkeypatch: pytest.MonkeyPatch) -> None:
    from functions.encrypt import app

    requester = flow.enrol()
    monkeypatch.setattr(app, "handler", _refusing(app.handler, "grant"))
    execution = flow.decide(requester)

    assert execution.status == "SUCCEEDED"
    output = execution.output
    assert output is not None
    assert output["decision"] == "approve"
    assert output["grant"] is None
    assert output["grant_error"]["code"] == "simulated_refusal"
    assert flow.access.verify_receipt(execution) >= 1


def test_a_rule_step_up_is_reviewed_by_the_agents_then_waits_for_people(flow: Flow) -> None:
    """The rules' step_up no longer ends the flow: the agents vote, and the approving tally asks for a
    person (tests/e2e/test_step_up.py follows the wait to its end)."""
    requester = flow.enrol()
    request = flow.access.request(requester, TENANT, SUPPORT_VAULT, ITEM, purpose=STEP_UP_PURPOSE)
    arn = flow.access.start(request)
    sfn = flow.stack.client("stepfunctions")
    started = time.monotonic()
    while time.monotonic() - started < 60:
        events = sfn.get_execution_history(executionArn=arn, maxResults=1000)["events"]
        entered = {e["stateEnteredEventDetails"]["name"] for e in events if "stateEnteredEventDetails" in e}
        if "AwaitApprovers" in entered:
            break
        time.sleep(0.1)
    assert QUORUM_STATES - {"Vote"} <= entered
    assert "AwaitApprovers" in entered
    assert sfn.describe_execution(executionArn=arn)["status"] == "RUNNING"
    sfn.stop_execution(executionArn=arn)


def test_the_watchdog_vetoes_a_principal_that_moved_too_fast(flow: Flow) -> None:
    requester = flow.enrol()
    assert flow.decide(requester, region="office-lisbon").decision == "approve"

    execution = flow.decide(requester, region="office-tokyo")  # seconds later, half a world away

    output = flow.assert_logged_deny(execution, "vetoed by watchdog")
    (watchdog,) = [v for v in output["votes"] if v["agent"] == "watchdog"]
    assert watchdog["vote"] == "deny"
    assert watchdog["veto"] is True
    assert sum(v["vote"] == "approve" for v in output["votes"]) >= 2  # enough approvals: the veto decided


def test_one_approval_short_of_the_quorum_is_a_deny(flow: Flow) -> None:
    execution = flow.decide(flow.enrol(), vault=UNANIMOUS_VAULT)

    output = flow.assert_logged_deny(execution, "only 2 approval(s); 3 required")
    assert sorted(v["vote"] for v in output["votes"]) == ["approve", "approve", "deny"]


@pytest.fixture
def fail_audit_append_once(monkeypatch: pytest.MonkeyPatch) -> Callable[[], int]:
    """audit-append writes the record, then fails as if it timed out, once; returns the call count."""
    from functions.audit_append import app

    real = app.handler
    calls = {"record_decision": 0}

    def flaky(event: dict[str, Any], context: Any) -> dict[str, Any]:
        result: dict[str, Any] = real(event, context)
        if event.get("action") == "record_decision":
            calls["record_decision"] += 1
            if calls["record_decision"] == 1:
                raise StorageUnavailableError("simulated: the response was lost after the write")
        return result

    monkeypatch.setattr(app, "handler", flaky)
    return lambda: calls["record_decision"]


def test_audit_append_failing_once_is_retried_into_exactly_one_record(
    flow: Flow, fail_audit_append_once: Callable[[], int]
) -> None:
    requester = flow.enrol()
    execution = flow.decide(requester)

    assert execution.status == "SUCCEEDED", execution.error
    assert execution.decision == "approve"
    assert fail_audit_append_once() == 2  # the failure, then the retry
    failed = [e for e in execution.history if e["type"] in ("LambdaFunctionFailed", "TaskFailed")]
    assert len(failed) == 1
    output = execution.output
    assert output is not None
    assert len(flow.records_of(output["request"]["request_id"])) == 1
    assert flow.access.open_grant(execution, requester) == flow.demo.items[ITEM]


def test_a_task_failing_for_good_ends_in_a_logged_deny(flow: Flow, monkeypatch: pytest.MonkeyPatch) -> None:
    from functions.score_trust import app

    def broken(event: dict[str, Any], context: Any) -> dict[str, Any]:
        raise RuntimeError("simulated: score-trust is broken")

    requester = flow.enrol()
    monkeypatch.setattr(app, "handler", broken)
    execution = flow.decide(requester)

    output = flow.assert_logged_deny(execution, "ScoreTrust failed: RuntimeError")
    assert output["trust"] is None


def test_a_transient_error_that_persists_is_retried_then_a_logged_deny(
    flow: Flow, monkeypatch: pytest.MonkeyPatch
) -> None:
    from functions.verify_proof import app

    calls = []

    def unavailable(event: dict[str, Any], context: Any) -> dict[str, Any]:
        calls.append(event.get("action"))
        raise StorageUnavailableError("simulated: the replay table is unreachable")

    request = flow.access.request(flow.enrol(), TENANT, SUPPORT_VAULT, ITEM)
    monkeypatch.setattr(app, "handler", unavailable)
    execution = flow.access.decide(request)

    flow.assert_logged_deny(execution, "VerifyContext failed: StorageUnavailableError")
    assert calls.count("verify") == 4  # the first attempt and three retries


def test_a_grant_that_cannot_be_issued_fails_the_execution_without_a_grant(
    flow: Flow, monkeypatch: pytest.MonkeyPatch
) -> None:
    from functions.encrypt import app

    real = app.handler

    def no_grants(event: dict[str, Any], context: Any) -> dict[str, Any]:
        if event.get("action") == "grant":
            raise RuntimeError("simulated: encrypt is broken")
        result: dict[str, Any] = real(event, context)
        return result

    requester = flow.enrol()
    monkeypatch.setattr(app, "handler", no_grants)
    execution = flow.decide(requester)

    assert execution.status == "FAILED"
    assert execution.error == "GrantFailed"
    assert execution.output is None


def test_a_request_run_twice_decides_once(flow: Flow) -> None:
    requester = flow.enrol()
    request = flow.access.request(requester, TENANT, SUPPORT_VAULT, ITEM)
    first = flow.access.decide(request)
    # The same request again, as a redrive would (another execution of the same input).
    sfn = flow.stack.client("stepfunctions")
    again_arn = sfn.start_execution(
        stateMachineArn=flow.stack.access_state_machine_arn,
        name=f"redrive-{uuid.uuid4().hex[:8]}",
        input=request.execution_input(),
    )["executionArn"]
    again = flow.access.wait(again_arn)

    assert first.decision == again.decision == "approve"
    assert first.output is not None
    assert again.output is not None
    assert again.output["receipt"]["leaf_index"] == first.output["receipt"]["leaf_index"]
    assert again.output["entry"] == first.output["entry"]
    assert again.output["grant"] == first.output["grant"]
    assert len(flow.records_of(request.request_id)) == 1


def test_a_copy_of_a_request_with_another_key_gets_nothing(flow: Flow) -> None:
    requester = flow.enrol()
    request = flow.access.request(requester, TENANT, SUPPORT_VAULT, ITEM)
    assert flow.access.decide(request).decision == "approve"
    # Someone who saw the request runs it again (another execution name) with their own key.
    thief = Requester(subject="thief", seed="unused")
    copy = request.model_copy(update={"requester_public_key": thief.public_key})
    arn = flow.stack.client("stepfunctions").start_execution(
        stateMachineArn=flow.stack.access_state_machine_arn,
        name=f"copy-{uuid.uuid4().hex[:8]}",
        input=copy.execution_input(),
    )["executionArn"]
    stolen = flow.access.wait(arn)

    assert "Grant" not in stolen.states_entered()
    assert stolen.status == "FAILED"  # its denial conflicts with the logged approval: nothing more logged
    assert stolen.error == "DecisionNotRecorded"
    verified = [
        e for e in stolen.history if e["type"] == "TaskSucceeded" or e["type"] == "LambdaFunctionSucceeded"
    ]
    # The proof's request_hash covers the requester key: the copy's key is not the one it was made for.
    assert "the proof is bound to another request" in json.dumps(verified[0], default=str)
    (record,) = flow.records_of(request.request_id)
    assert record["decision"] == "approve"
    assert record["requester_key_sha256"] == hashlib.sha256(requester.public_key).hexdigest()


def test_a_copy_of_a_request_with_another_key_that_comes_first_is_a_logged_deny(flow: Flow) -> None:
    requester = flow.enrol()
    request = flow.access.request(requester, TENANT, SUPPORT_VAULT, ITEM)
    # Someone who intercepted the request runs it before its requester does, with their own key.
    thief = Requester(subject="thief", seed="unused")
    copy = request.model_copy(update={"requester_public_key": thief.public_key})

    execution = flow.access.decide(copy)

    output = flow.assert_logged_deny(
        execution, "context proof not verified: the proof is bound to another request"
    )
    assert output["context"]["verified"] is False
    assert not QUORUM_STATES & set(execution.states_entered())
    (record,) = flow.records_of(request.request_id)
    assert record["requester_key_sha256"] == hashlib.sha256(thief.public_key).hexdigest()


def test_a_proof_for_another_item_is_a_logged_deny(flow: Flow) -> None:
    requester = flow.enrol()
    request = flow.access.request(requester, TENANT, SUPPORT_VAULT, ITEM)
    other_item = request.model_copy(update={"item_id": f"{ITEM}-other"})

    execution = flow.access.decide(other_item)

    flow.assert_logged_deny(execution, "context proof not verified: the proof is bound to another request")


def test_no_execution_history_holds_a_plaintext_or_a_secret(flow: Flow) -> None:
    requester = flow.enrol()
    flow.decide(requester)
    flow.decide(requester, purpose=DENIED_PURPOSE)
    secrets: list[str] = []
    for plaintext in flow.demo.items.values():
        secrets += [plaintext.decode(), base64.b64encode(plaintext).decode()]
    for person in flow.demo.requesters:
        private = person.key.private_bytes()
        secrets += [person.seed, base64.b64encode(private).decode(), private.hex()]

    sfn = flow.stack.client("stepfunctions")
    executions = sfn.list_executions(stateMachineArn=flow.stack.access_state_machine_arn)["executions"]
    assert len(executions) >= 2
    for summary in executions:
        history = sfn.get_execution_history(executionArn=summary["executionArn"], maxResults=1000)["events"]
        text = json.dumps(history, default=str)
        leaked = [s[:12] for s in secrets if s in text]
        assert leaked == [], f"{summary['name']} holds {leaked}"
