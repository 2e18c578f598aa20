"""An attacker with ordinary invoke rights on the functions, against the local runtime: every way around the
access flow's authority that an outside review tried (and a few more) is refused, and nothing is granted.

The review's attacks: (1) ``record_decision`` with a made-up approval and then ``grant``; (2, 3) the
verify-proof, score-trust and agent-vote roles reading or planting vault keys (the role matrix in
tests/unit/test_iam_matrix.py proves the policies; here: no function's actions expose such a path);
(4) tenant ids taken from the event. Plus hand-made tallies and votes, forged intermediate results, a
copied request under another key arriving first, and a retried proof with changed public signals.
"""

from __future__ import annotations

import ast
import base64
import copy
import json
import uuid
from typing import Any

import pytest

from infra.local.access import Execution, FunctionRefused
from infra.local.requester import Requester
from infra.local.seed import SUPPORT_VAULT, TENANT
from tests.support.flow import ITEM, Flow

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def _state_before(execution: Execution, state: str) -> dict[str, Any]:
    """The flow state (``$.flow``) as the state machine handed it to ``state``."""
    for event in execution.history:
        details = event.get("stateEnteredEventDetails")
        if details and details["name"] == state:
            return dict(json.loads(details["input"])["flow"])
    raise AssertionError(f"{state} was never entered")


def _refused(flow: Flow, function: str, event: dict[str, Any]) -> dict[str, Any]:
    with pytest.raises(FunctionRefused) as refused:
        flow.access.invoke(function, event)
    return refused.value.error


def _grant(requester: Requester, request_id: str, **changes: str) -> dict[str, Any]:
    return {
        "action": "grant",
        "request_id": request_id,
        "tenant_id": TENANT,
        "vault_id": SUPPORT_VAULT,
        "item_id": ITEM,
        "requester_public_key": base64.b64encode(requester.public_key).decode(),
        **changes,
    }


@pytest.fixture(scope="module")
def approved(flow: Flow) -> tuple[Requester, Execution]:
    requester = flow.enrol()
    execution = flow.decide(requester)
    assert execution.decision == "approve", execution.output
    return requester, execution


def test_a_forged_approval_is_refused_logged_as_such_and_grants_nothing(
    flow: Flow, approved: tuple[Requester, Execution]
) -> None:
    requester, execution = approved
    state = _state_before(execution, "RecordDecision")
    for forged in (
        # (1) as the review tried it: a decision with no evidence at all
        {
            **state,
            "context": None,
            "trust": None,
            "votes": [],
            "decision": {"decision": "approve", "reasons": []},
        },
        # the real evidence, the tally's signature dropped
        {**state, "decision": {**state["decision"], "attestation": None}},
        # the real evidence, a denial's chain turned into an approval
        {**state, "decision": {**state["decision"], "reasons": ["approved by me"]}},
    ):
        request_id = f"forged-{uuid.uuid4().hex[:8]}"
        event = {
            "action": "record_decision",
            "flow": {**forged, "request_id": request_id},
            "decided_at": execution.history[0]["timestamp"].isoformat(),
        }
        error = _refused(flow, "audit-append", event)
        assert error["code"] == "attestation_invalid", error
        # Logged as what it is: a denial naming the refusal, which no grant can ever follow.
        (record,) = flow.records_of(request_id)
        assert record["decision"] == "deny"
        assert record["reasons"] == ["RecordDecision refused the record: attestation_invalid"]
        assert "requester_key_sha256" not in record
        assert _refused(flow, "encrypt", _grant(requester, request_id))["code"] == "decision_required"


def test_a_logged_approval_opens_only_its_own_request(
    flow: Flow, approved: tuple[Requester, Execution]
) -> None:
    requester, execution = approved
    request_id = (execution.output or {})["request"]["request_id"]
    thief = Requester(subject="thief", seed="unused")
    for wrong in (
        {"requester_public_key": base64.b64encode(thief.public_key).decode()},
        {"item_id": "run-1138-transcript"},
        {"tenant_id": "other-tenant"},  # (4) a tenant named in the event opens nothing of another
    ):
        # (idempotency_conflict: the grant was asked for this request id already, with other values)
        assert _refused(flow, "encrypt", _grant(requester, request_id, **wrong))["code"] in {
            "decision_required",
            "idempotency_conflict",
        }


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(lambda s: s["votes"].pop(), id="a vote left out"),
        pytest.param(
            lambda s: s["votes"].__setitem__(0, {**s["votes"][0], "vote": "approve"}), id="a vote changed"
        ),
        pytest.param(
            lambda s: s["votes"].__setitem__(0, {**s["votes"][0], "attestation": None}), id="unsigned vote"
        ),
        pytest.param(lambda s: s["trust"].__setitem__("score", 1.0), id="the score raised"),
        pytest.param(
            lambda s: s.__setitem__("principal", {"subject": "someone-else", "roles": []}), id="principal"
        ),
        pytest.param(lambda s: s.__setitem__("purpose", "audit"), id="another purpose"),
    ],
)
def test_a_hand_made_tally_is_refused(flow: Flow, approved: tuple[Requester, Execution], tamper: Any) -> None:
    _, execution = approved
    state = copy.deepcopy(_state_before(execution, "Tally"))
    tamper(state)
    error = _refused(flow, "agent-vote", {"action": "tally", "flow": state})
    assert error["code"] in {"attestation_invalid", "invalid_request"}, error


@pytest.mark.parametrize(
    ("action", "tamper"),
    [
        ("vote", lambda s: s["trust"]["rules"].__setitem__("effect", "allow")),
        ("vote", lambda s: s.__setitem__("trust", None)),
        ("vote", lambda s: s["context"]["claims"].__setitem__("window_start", "0")),
        ("convene", lambda s: s["trust"].__setitem__("band", "high")),
        ("score", lambda s: s["context"]["claims"].__setitem__("device_commitment", "1")),
        ("score", lambda s: s.__setitem__("region", "somewhere-trusted")),
    ],
)
def test_no_stage_acts_on_a_forged_earlier_result(
    flow: Flow, approved: tuple[Requester, Execution], action: str, tamper: Any
) -> None:
    _, execution = approved
    state = copy.deepcopy(_state_before(execution, "Tally"))
    tamper(state)
    function = "score-trust" if action == "score" else "agent-vote"
    event: dict[str, Any] = {"action": action, "flow": state}
    if action == "vote":
        event["agent"] = "permissive"
    assert _refused(flow, function, event)["code"] in {"attestation_invalid", "invalid_request"}


def test_a_copied_request_under_another_key_is_denied_even_when_it_runs_first(flow: Flow) -> None:
    requester = flow.enrol()
    request = flow.access.request(requester, TENANT, SUPPORT_VAULT, ITEM)
    thief = Requester(subject="thief", seed="unused")
    copied = request.model_copy(update={"requester_public_key": thief.public_key})
    stolen = flow.access.decide(copied)  # the copy runs first
    assert stolen.decision == "deny"
    assert any("bound to another request" in r for r in (stolen.output or {})["reasons"])
    assert "Grant" not in stolen.states_entered()


def test_my_proof_opens_nothing_of_another_tenant(flow: Flow) -> None:
    requester = flow.enrol()
    request = flow.access.request(requester, TENANT, SUPPORT_VAULT, ITEM)
    # The same proof, the request's tenant changed in the event (no such tenant, or another's).
    other = request.model_copy(update={"tenant_id": "globex", "request_id": f"x-{uuid.uuid4().hex[:8]}"})
    execution = flow.access.decide(other)
    assert execution.decision == "deny"
    assert (execution.output or {})["grant"] is None


def test_the_approval_chain_verifies_offline_with_the_published_keys(
    flow: Flow, approved: tuple[Requester, Execution]
) -> None:
    _, execution = approved
    chain = flow.access.verify_chain(execution)
    assert chain.approves
    stages = [a.stage.value for a in chain.attestations]
    assert stages[:2] == ["verify_context", "score_trust"]
    assert stages[-1] == "tally"
    assert {a.statement.claim["agent"] for a in chain.attestations if a.stage.value == "vote"} == {
        "strict",
        "permissive",
        "neutral",
        "watchdog",
    }


def _role_policies(flow: Flow, function_logical_id: str) -> list[dict[str, Any]]:
    """The inline policies of a function's role, as the running stack holds them (moto's IAM)."""
    iam = flow.stack.client("iam")
    role = flow.stack.resources[f"{function_logical_id}Role"].rsplit("/", 1)[-1]
    names = iam.list_role_policies(RoleName=role)["PolicyNames"]
    documents = [iam.get_role_policy(RoleName=role, PolicyName=n)["PolicyDocument"] for n in names]
    # moto's CloudFormation keeps a document as Python's repr of the template's value
    return [ast.literal_eval(d) if isinstance(d, str) else d for d in documents]


VAULT_KEYS = {"dynamodb:LeadingKeys": ("TENANT#acme",)}


def _purpose(name: str) -> dict[str, Any]:
    return {"kms:EncryptionContext:purpose": name, "kms:EncryptionContextKeys": ("purpose",)}


@pytest.mark.parametrize(
    ("function", "action", "resource", "context", "allowed"),
    [
        # (2) reading another tenant's vault key rows and unwrapping them
        ("VerifyProofFunction", "dynamodb:GetItem", "VaultsTable", VAULT_KEYS, False),
        ("ScoreTrustFunction", "dynamodb:GetItem", "VaultsTable", VAULT_KEYS, False),
        ("AgentVoteFunction", "dynamodb:Query", "VaultsTable", VAULT_KEYS, False),
        ("ScoreTrustFunction", "kms:Decrypt", "RootKey", _purpose("vault-key"), False),
        ("VerifyProofFunction", "kms:Decrypt", "RootKey", _purpose("vault-key"), False),
        ("AgentVoteFunction", "kms:Decrypt", "RootKey", _purpose("vault-key"), False),
        # (3) planting a vault key that later seals go to
        ("AgentVoteFunction", "kms:Encrypt", "RootKey", _purpose("vault-key"), False),
        ("AgentVoteFunction", "dynamodb:PutItem", "VaultsTable", VAULT_KEYS, False),
        # another function's stage key: neither planted nor unwrapped
        (
            "VerifyProofFunction",
            "dynamodb:PutItem",
            "VaultsTable",
            {"dynamodb:LeadingKeys": ("STAGE#agent-vote",)},
            False,
        ),
        ("ScoreTrustFunction", "kms:Decrypt", "RootKey", _purpose("stage-signing/agent-vote"), False),
        # ... while each does what it must (so the rows above cannot pass by a wrong ARN)
        (
            "VerifyProofFunction",
            "dynamodb:PutItem",
            "VaultsTable",
            {"dynamodb:LeadingKeys": ("STAGE#verify-proof",)},
            True,
        ),
        ("ScoreTrustFunction", "kms:Decrypt", "RootKey", _purpose("stage-signing/score-trust"), True),
        ("AgentVoteFunction", "kms:Encrypt", "RootKey", _purpose("agent-memory"), True),
        ("EncryptFunction", "kms:Decrypt", "RootKey", _purpose("vault-key"), True),
        ("EncryptFunction", "dynamodb:GetItem", "VaultsTable", VAULT_KEYS, True),
        # the API: it reads vault rows, and can neither unwrap nor plant a key
        ("ApiFunction", "dynamodb:GetItem", "VaultsTable", VAULT_KEYS, True),
        ("ApiFunction", "kms:Decrypt", "RootKey", _purpose("vault-key"), False),
        ("ApiFunction", "kms:Decrypt", "RootKey", _purpose("stage-signing/agent-vote"), False),
        ("ApiFunction", "dynamodb:PutItem", "VaultsTable", VAULT_KEYS, False),
    ],
)
def test_the_running_stacks_roles_refuse_the_reviews_key_attacks(
    flow: Flow, *, function: str, action: str, resource: str, context: dict[str, Any], allowed: bool
) -> None:
    """(2, 3) evaluated on the roles the running stack created from template.yaml (moto does not enforce
    IAM, so the policies it holds are evaluated by tests/support/iam.py, the matrix test's evaluator)."""
    from tests.support.iam import Request, evaluate

    physical = flow.stack.resources[resource]
    service = "kms" if resource == "RootKey" else "dynamodb"
    kind = "key" if service == "kms" else "table"
    arn = f"arn:aws:{service}:us-east-1:123456789012:{kind}/{physical}"
    assert evaluate(Request(action, arn, context), _role_policies(flow, function)).allowed is allowed
