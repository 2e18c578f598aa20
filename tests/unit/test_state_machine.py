"""The access state machine's definition (infra/statemachine/access.asl.json) against its contract:
every task retries transient errors and catches the rest into a logged deny, nothing but an approval the
log recorded reaches Grant, the template wires exactly the five functions, and the execution input is
the AccessRequest contract. The flow itself runs in tests/e2e/."""

from __future__ import annotations

import inspect
import json
import re
from collections.abc import Iterator
from typing import Any

import moto
import pytest
from pydantic import ValidationError

from infra.local.runtime import original_invoke_lambda
from infra.template import REPO_ROOT, load_template
from reliquary.contracts.access import AccessRequest, execution_name
from reliquary.flow.state import FlowState

DEFINITION_PATH = REPO_ROOT / "infra" / "statemachine" / "access.asl.json"
FUNCTIONS = {
    "VerifyProofFunctionArn": "VerifyProofFunction",
    "ScoreTrustFunctionArn": "ScoreTrustFunction",
    "AgentVoteFunctionArn": "AgentVoteFunction",
    "AuditAppendFunctionArn": "AuditAppendFunction",
    "EncryptFunctionArn": "EncryptFunction",
}
TRANSIENT = {
    "TransientError",
    "StorageUnavailableError",
    "Lambda.ServiceException",
    "Lambda.TooManyRequestsException",
}


def _definition() -> dict[str, Any]:
    document: dict[str, Any] = json.loads(DEFINITION_PATH.read_text(encoding="utf-8"))
    return document


def _all_states(states: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for name, state in states.items():
        yield name, state
        if state["Type"] == "Map":
            yield from _all_states(state["ItemProcessor"]["States"])


def _successors(state: dict[str, Any]) -> set[str]:
    found = {state[key] for key in ("Next", "Default") if key in state}
    found |= {choice["Next"] for choice in state.get("Choices", [])}
    found |= {catch["Next"] for catch in state.get("Catch", [])}
    return found


def _predecessors(states: dict[str, Any], target: str) -> set[str]:
    return {name for name, state in states.items() if target in _successors(state)}


WAIT = "AwaitApprovers"  # the one task that waits for people (lambda:invoke.waitForTaskToken)
MAX_WAIT_SECONDS = 900  # QuorumPolicy.approval_timeout_seconds' upper bound


def test_every_task_retries_transient_errors_with_backoff() -> None:
    tasks = [(name, s) for name, s in _all_states(_definition()["States"]) if s["Type"] == "Task"]
    assert len(tasks) == 10
    for name, task in tasks:
        (retry,) = task["Retry"]
        assert set(retry["ErrorEquals"]) >= TRANSIENT, name
        assert retry["MaxAttempts"] >= 2, name
        assert retry["BackoffRate"] > 1, name
        assert "States.ALL" not in retry["ErrorEquals"], name  # deterministic failures are not retried
        if name == WAIT:  # a timeout is the people's answer (a deny), never retried
            assert "States.Timeout" not in retry["ErrorEquals"]
            assert task["TimeoutSecondsPath"] == "$.responses.tally.result.approval_timeout_seconds"
            continue
        assert task["TimeoutSeconds"] <= 60, name  # a task, not an export or an fsck


def test_every_top_level_task_catches_everything_into_a_logged_deny_or_a_failed_execution() -> None:
    states = _definition()["States"]
    for name, state in states.items():
        if state["Type"] not in ("Task", "Map"):
            continue
        catch = state["Catch"][-1]
        assert catch["ErrorEquals"] == ["States.ALL"], name
        handler = states[catch["Next"]]
        if name == "RecordDecision":  # the log failed: a bare denial once (RecordDenial) ...
            assert catch["Next"] == "RecordDecisionFailed"
            assert states["RecordDecisionFailed"]["Next"] == "RecordDenial"
        elif name == "RecordDenial":  # ... and if that fails too, a failed execution, no grant
            assert catch["Next"] == "DecisionNotRecorded"
            assert handler["Type"] == "Fail"
        elif name == "RecordOutcome":  # advisory: the decision is already logged
            assert catch["Next"] == "Decide"
        elif name == "Grant":
            assert handler["Type"] == "Fail", name
        elif name == WAIT:  # a timeout, and anything else, is a logged deny
            timeout, everything = state["Catch"]
            assert timeout["ErrorEquals"] == ["States.Timeout"]
            assert states[timeout["Next"]]["Parameters"]["reasons"] == ["no approver answered in time"]
            for caught in (timeout, everything):
                handler = states[caught["Next"]]
                assert handler["Parameters"]["decision"] == "deny", name
                assert (handler["ResultPath"], handler["Next"]) == ("$.flow.decision", "RecordDecision")
        else:
            assert handler["Type"] == "Pass", name
            assert handler["ResultPath"] == "$.flow.decision", name
            assert handler["Parameters"]["decision"] == "deny", name
            assert handler["Next"] == "RecordDecision", name


def test_only_a_deny_is_decided_outside_the_tally() -> None:
    states = _definition()["States"]
    deciders = {
        n: s for n, s in states.items() if s["Type"] == "Pass" and s.get("ResultPath") == "$.flow.decision"
    }
    assert "AcceptTally" in deciders
    for name, state in deciders.items():
        if name == "AcceptTally":  # the tally's signed decision, as it answered
            assert state["InputPath"] == "$.responses.tally.result.decision"
            assert "Parameters" not in state
        else:
            assert state["Parameters"]["decision"] == "deny", name


def test_grant_is_reached_only_from_an_approval_the_log_recorded() -> None:
    states = _definition()["States"]
    assert _predecessors(states, "Grant") == {"Decide"}
    decide = states["Decide"]
    assert decide["Default"] == "Denied"
    (choice,) = decide["Choices"]
    assert choice["Next"] == "Grant"
    conditions = {(c["Variable"], c["StringEquals"]) for c in choice["And"]}
    assert conditions == {
        ("$.flow.decision.decision", "approve"),
        ("$.responses.record.result.decision", "approve"),
    }
    # Decide comes after the log accepted the record (its receipt is in the state).
    assert _predecessors(states, "Decide") == {"RecordOutcome"}
    assert _predecessors(states, "RecordOutcome") == {"AcceptReceipt"}
    assert _predecessors(states, "AcceptReceipt") == {"CheckRecorded", "CheckDenialRecorded"}


def test_rules_that_deny_never_reach_the_agents_and_a_step_up_waits_for_people() -> None:
    states = _definition()["States"]
    check = states["CheckRules"]
    onward = {c["StringEquals"] for c in check["Choices"] if c["Next"] == "Convene"}
    assert onward == {"allow", "require_quorum", "step_up"}
    assert check["Default"] == "RulesDenied"  # an unknown effect fails closed
    # After the tally: only an approving tally that asks for people waits; the rest is recorded as is.
    assert states["AcceptTally"]["Next"] == "NeedsApprovers"
    needs = states["NeedsApprovers"]
    assert (needs["Default"], needs["Choices"][0]["Next"]) == ("RecordDecision", WAIT)
    conditions = needs["Choices"][0]["And"]
    assert {"Variable": "$.flow.decision.decision", "StringEquals": "approve"} in conditions
    wait = states[WAIT]
    assert wait["Resource"] == "arn:aws:states:::lambda:invoke.waitForTaskToken"
    assert wait["Parameters"]["FunctionName"] == "${AgentVoteFunctionArn}"
    assert wait["Parameters"]["Payload"] == {
        "action": "await_approvals",
        "flow.$": "$.flow",
        "task_token.$": "$$.Task.Token",
    }
    # People's approvals join the state only from agent-vote's answer; RecordDecision checks them.
    assert _predecessors(states, "AcceptApprovals") == {"CheckApprovals"}
    assert states["AcceptApprovals"]["ResultPath"] == "$.flow.approvals"
    assert states["AcceptApprovals"]["Next"] == "RecordDecision"
    assert states["CheckApprovals"]["Default"] == "ApproversDenied"


def test_the_template_wires_exactly_the_five_functions() -> None:
    definition = DEFINITION_PATH.read_text(encoding="utf-8")
    placeholders = set(re.findall(r"\$\{(\w+)\}", definition))
    machine = load_template()["Resources"]["AccessStateMachine"]["Properties"]
    assert machine["DefinitionUri"] == "infra/statemachine/access.asl.json"
    substitutions = machine["DefinitionSubstitutions"]
    assert placeholders == set(substitutions) == set(FUNCTIONS)
    for key, function in FUNCTIONS.items():
        assert substitutions[key] == {"Fn::GetAtt": [function, "Arn"]}
    (invoke,) = [s for s in machine["Policies"][0]["Statement"] if s["Sid"] == "InvokeTheFiveFunctions"]
    assert invoke["Action"] == "lambda:InvokeFunction"
    assert invoke["Resource"] == [{"Fn::GetAtt": [f, "Arn"]} for f in FUNCTIONS.values()]
    # Logs never carry the execution's data (principals, proofs).
    assert machine["Logging"]["IncludeExecutionData"] is False


def test_the_optional_fields_default_as_the_contract_does() -> None:
    definition = _definition()
    assert definition["StartAt"] == "Defaults"
    merge = definition["States"]["Defaults"]["Parameters"]["request.$"]
    literal = re.search(r"StringToJson\('(.*)'\), \$, false\)$", merge)
    assert literal is not None
    defaults = json.loads(literal.group(1))
    fields = AccessRequest.model_fields
    assert defaults == {name: fields[name].default for name in ("purpose", "region")}
    assert {name for name, f in fields.items() if not f.is_required()} == set(defaults)


def test_the_admitted_input_is_the_access_request_contract() -> None:
    admit = _definition()["States"]["Admit"]["Parameters"]
    assert set(admit) == {"flow", "logged"}
    flow = admit["flow"]
    taken = {key.removesuffix(".$") for key in flow if key.endswith(".$")}
    assert taken == set(AccessRequest.model_fields)
    assert all(flow[f"{field}.$"] == f"$.{field}" for field in taken)
    slots = {key for key in flow if not key.endswith(".$")}
    assert slots | taken == set(FlowState.model_fields)  # the admitted state is exactly one FlowState
    FlowState.model_validate({**dict.fromkeys(slots), "votes": [], "approvals": []} | _sample_request())


def _sample_request() -> dict[str, Any]:
    return dict(json.loads((REPO_ROOT / "events" / "access" / "request.json").read_text()))


def test_every_stage_is_handed_the_whole_flow_state() -> None:
    """One FlowState travels: every task of the flow gets ``$.flow`` whole (each stage checks the
    attestations of the ones before it), and nothing else from the state except what it adds itself."""
    states = _definition()["States"]
    tasks = {n: s for n, s in states.items() if s["Type"] == "Task" and n not in ("Grant", WAIT)}
    tasks["Vote"] = {"Parameters": states["Quorum"]["ItemSelector"]}
    tasks[WAIT] = {"Parameters": states[WAIT]["Parameters"]["Payload"]}
    for name, task in tasks.items():
        parameters = task["Parameters"]
        assert parameters["flow.$"] == "$.flow", name
        own = set(parameters) - {"action", "flow.$"}
        allowed = {
            "agent.$",
            "policy.$",
            "execution_id.$",
            "decided_at.$",
            "started_at.$",
            "bare",
            "task_token.$",
        }
        assert own <= allowed, (
            name,
            own,
        )


def _worst_seconds(task: dict[str, Any]) -> float:
    """A task's longest run: every attempt timing out, with the backoff between attempts."""
    (retry,) = task["Retry"]
    attempts = 1 + retry["MaxAttempts"]
    waits = sum(
        min(retry["IntervalSeconds"] * retry["BackoffRate"] ** n, retry.get("MaxDelaySeconds", 1e9))
        for n in range(retry["MaxAttempts"])
    )
    return float(attempts * task["TimeoutSeconds"] + waits)


def test_the_execution_outlasts_its_slowest_path_so_a_decision_is_always_recorded_first() -> None:
    definition = _definition()
    states = definition["States"]
    vote = states["Quorum"]["ItemProcessor"]["States"]["Vote"]  # the Map's votes run in parallel
    evidence = sum(_worst_seconds(states[n]) for n in ("VerifyContext", "ScoreTrust", "Convene", "Tally"))
    evidence += _worst_seconds(vote)
    # The wait for people: one attempt that waits at most the policy's longest timeout (a retry is an
    # invocation that failed at once, never a second wait: States.Timeout is caught, not retried).
    (retry,) = states[WAIT]["Retry"]
    evidence += MAX_WAIT_SECONDS + retry["MaxAttempts"] * 60 + retry["MaxDelaySeconds"] * retry["MaxAttempts"]
    recording = _worst_seconds(states["RecordDecision"]) + _worst_seconds(states["RecordDenial"])
    release = _worst_seconds(states["RecordOutcome"]) + _worst_seconds(states["Grant"])
    assert (
        evidence + max(recording, _worst_seconds(states["RecordDecision"]) + release)
        < definition["TimeoutSeconds"]
    )
    assert definition["TimeoutSeconds"] <= 1800 + MAX_WAIT_SECONDS


def test_the_decision_is_dated_when_it_is_recorded() -> None:
    """The record's time (and so the grant's window, with the chain's last signed time) is when
    RecordDecision was entered, not the execution's start: a wait for people does not age an approval."""
    states = _definition()["States"]
    for name in ("RecordDecision", "RecordDenial"):
        assert states[name]["Parameters"]["decided_at.$"] == "$$.State.EnteredTime", name


def test_each_task_waits_as_long_as_its_function_may_run() -> None:
    resources = load_template()["Resources"]
    for name, state in _all_states(_definition()["States"]):
        if state["Type"] == "Task" and name != WAIT:
            function = FUNCTIONS[state["Resource"][2:-1]]
            assert state["TimeoutSeconds"] == min(60, resources[function]["Properties"]["Timeout"]), name


# ------------------------------------------------------------------------ the execution's input
def _request(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = json.loads((REPO_ROOT / "events" / "access" / "request.json").read_text("utf-8"))
    base.update(changes)
    return base


def test_the_sample_request_is_valid_and_round_trips() -> None:
    request = AccessRequest.model_validate(_request())
    assert json.loads(request.execution_input()) == _request()


@pytest.mark.parametrize(
    "changes",
    [
        {"request_id": "has space"},
        {"tenant_id": ""},
        {"nonce": "ab" * 10},
        {"nonce": "AB" * 31},
        {"requester_public_key": "not base64!"},
        {"requester_public_key": "AAAA"},  # a hybrid public key is 1216 bytes
        {"principal": {"subject": "alice\nbob"}},  # the log could not hash it: the decision unrecordable
        {"principal": {"subject": ""}},
        {"principal": {"subject": "x", "admin": True}},
        {"context_proof": {"circuit": "nope", "proof": {}, "public_signals": []}},
        {"region": "x" * 65},
        {"purpose": "x" * 257},
        {"extra": "field"},
    ],
)
def test_a_malformed_request_is_refused_before_an_execution_starts(changes: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        AccessRequest.model_validate(_request(**changes))


def test_execution_names_are_per_tenant_and_fit_step_functions() -> None:
    assert execution_name("acme", "access-0001") == "acme_access-0001"
    assert execution_name("a", "b.c") != execution_name("a.b", "c")
    hashed = execution_name("acme", "needs:hashing")  # ':' is not allowed in an execution name
    assert re.fullmatch(r"h-[0-9a-f]{64}", hashed)
    long_name = execution_name("t" * 60, "r" * 60)
    assert len(long_name) <= 80
    assert long_name != execution_name("t" * 60, "r" * 59)


# ------------------------------------------------------------------------ the local runtime's moto hook
def test_moto_is_the_version_whose_private_lambda_hook_the_runtime_replaces() -> None:
    # infra.local.runtime replaces LambdaFunction._invoke_lambda(self, event=None) -> (payload, errored,
    # logs); a moto upgrade must re-check that hook (see docs/local-runtime.md).
    assert moto.__version__ == "5.2.5"
    original = original_invoke_lambda()  # moto's own, even while a local runtime runs in this process
    assert original.__module__ == "moto.awslambda.models"
    assert list(inspect.signature(original).parameters) == ["self", "event"]
