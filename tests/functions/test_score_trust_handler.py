"""The score-trust handler on its sample events against moto: an explained score and the rule outcome with
its policy version, for the item's current version at its own label, signed and built on the checked
VerifyContext statement; history that changes later scores (of later requests); a score stored once per
request (a retried ScoreTrust gets the stored result, signed again); outcomes recorded once per request
(RecordOutcome), an approval only with its verified chain; and everything a caller could forge refused."""

from __future__ import annotations

import contextlib
import copy
import functools
import json
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from reliquary.adapters.clients import build_root_of_trust, table_config
from reliquary.adapters.factory import build_vault_service
from reliquary.adapters.stage_keys import stage_signer
from reliquary.errors import ConflictError, StorageUnavailableError, TransientError
from reliquary.flow.attestation import Signer, Stage
from reliquary.flow.state import ContextOutcome, FlowState
from reliquary.trust.model import TrustRequest
from reliquary.trust.rules import default_rule_set
from reliquary.trust.service import TrustDecision, TrustService
from reliquary.vaults.models import MemoryKind, MemoryScope
from tests.functions.conftest import Invoke
from tests.functions.test_encrypt_handler import assert_clean, each_case, error, ok
from tests.support.attested import Attester, flow_event, flow_json
from tests.support.aws import AwsStack

EVENTS_DIR = Path(__file__).resolve().parents[2] / "events" / "score_trust"
TENANT, VAULT, ITEM = "acme", "agent-memory", "customer-42-notes"


def load_event(name: str, **overrides: Any) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((EVENTS_DIR / f"{name}.json").read_text())
    event.update(overrides)
    return event


SCORE_FLOW: dict[str, Any] = load_event("score")["flow"]
OUTCOME_FLOW: dict[str, Any] = load_event("record_outcome")["flow"]


def seal(
    aws: AwsStack, tenant_id: str = TENANT, item_id: str = ITEM, sensitivity: Any = "confidential"
) -> int:
    """A version of the item, sealed at ``sensitivity`` (the vault created on first use); its number."""
    service = build_vault_service(aws.settings)
    with contextlib.suppress(ConflictError):  # the vault exists already
        service.create_vault(tenant_id, VAULT)
    record = service.seal_item(
        tenant_id,
        VAULT,
        item_id,
        b"a note about customer 42",
        memory_scope=MemoryScope(MemoryKind.USER, "customer-42"),
        sensitivity=sensitivity,
    )
    return record.version


@pytest.fixture
def item(aws: AwsStack) -> AwsStack:
    """The sample's item, version 1, labelled confidential."""
    seal(aws)
    return aws


@pytest.fixture
def attester(aws: AwsStack) -> Attester:
    return Attester(aws.settings, aws.dynamodb)


# A vault's own rules: one rule that allows everything verified (whatever the hour or the history).
ALLOW_VERIFIED = {
    "template": "standard",
    "overrides": {},
    "rules": (
        "version: 1\nname: permissive\nrules:\n  - id: allow-verified\n"
        "    when: {all: [{fact: claims.verified, eq: true}]}\n    effect: allow\n"
    ),
}


def score_task(flow: Any, started_at: int | None = None) -> dict[str, Any]:
    """A ScoreTrust task of ``flow`` in an execution started at ``started_at`` (by default now): the
    request is in the history as in flight from then until RecordOutcome records its outcome then."""
    return flow_event("score", flow, started_at=int(time.time()) if started_at is None else started_at)


def score_event(attester: Attester, started_at: int | None = None, **flow_changes: Any) -> dict[str, Any]:
    """The sample ScoreTrust event as a new request (its own request id unless given), its context
    signed by verify-proof's stage key for exactly that request."""
    flow = {**copy.deepcopy(SCORE_FLOW), "request_id": f"access-{uuid.uuid4().hex[:12]}", **flow_changes}
    return score_task(attester.attest(flow), started_at)


def outcome_event(attester: Attester, **flow_changes: Any) -> dict[str, Any]:
    """The sample RecordOutcome event (an approval) with its whole chain signed for its request."""
    flow = attester.attest({**copy.deepcopy(OUTCOME_FLOW), **flow_changes})
    return flow_event("record_outcome", flow, decided_at=load_event("record_outcome")["decided_at"])


def without(result: dict[str, Any]) -> dict[str, Any]:
    """A result without its attestation (a retried score is the stored result, signed again)."""
    return {k: v for k, v in result.items() if k != "attestation"}


def _history_rows(aws: AwsStack) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = aws.dynamodb.scan(TableName=aws.settings.history_table)["Items"]
    return rows


def _idempotency_rows(aws: AwsStack) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = aws.dynamodb.scan(TableName=aws.settings.idempotency_table)["Items"]
    return rows


# --- the samples ----------------------------------------------------------------------------------------
def test_every_action_has_a_sample_event() -> None:
    names = {"score", "record", "record_outcome", "set_policy"}
    assert {p.stem for p in EVENTS_DIR.glob("*.json")} == names
    readme = (EVENTS_DIR / "README.md").read_text()
    assert all(f"`{name}.json`" in readme for name in names)


def test_the_flow_samples_are_refused_as_they_are_and_accepted_once_their_stages_signed_them(
    score_trust: Invoke, item: AwsStack, attester: Attester
) -> None:
    """score.json and record_outcome.json carry no attestations (they are made at run time): refused, and
    nothing is stored. The same states signed with this stack's stage keys are accepted."""
    for name in ("score", "record_outcome"):
        body = error(score_trust(load_event(name)), "attestation_invalid")
        assert body["details"] == {"check": "structure"}
    assert _idempotency_rows(item) == []
    assert _history_rows(item) == []
    signed = ok(score_trust(score_task(attester.attest(SCORE_FLOW))), "score")
    assert (signed["item_version"], signed["sensitivity"]) == (1, "confidential")
    recorded = ok(score_trust(outcome_event(attester)), "record_outcome")
    assert recorded == {"recorded": True, "outcome": "approve"}
    # The operator's samples need no chain: accepted as they are.
    assert ok(score_trust(load_event("record")), "record") == {"recorded": True}
    assert ok(score_trust(load_event("set_policy")), "set_policy")["template"] == "strict"


# --- scores ---------------------------------------------------------------------------------------------
def test_a_vault_policy_selects_the_template_and_the_rules(
    score_trust: Invoke, item: AwsStack, attester: Attester
) -> None:
    standard = ok(score_trust(score_event(attester)), "score")
    error(score_trust(load_event("set_policy", vault_id="no-such-vault")), "not_found")
    stored = ok(score_trust(load_event("set_policy")), "set_policy")
    assert stored == {"template": "strict", "policy_version": default_rule_set().policy_version}
    strict = ok(score_trust(score_event(attester)), "score")
    assert strict["template"] == "strict"
    assert strict["score"] <= standard["score"]
    # The vault's own rules: one rule that allows everything verified; its version is what gets logged.
    stored = ok(score_trust(load_event("set_policy", policy=ALLOW_VERIFIED)), "set_policy")
    decided = ok(score_trust(score_event(attester)), "score")
    assert decided["policy_version"] == stored["policy_version"] != default_rule_set().policy_version
    assert decided["rules"]["effect"] == "allow"
    assert [m["id"] for m in decided["rules"]["matched"]] == ["allow-verified"]


def test_an_invalid_policy_is_refused_naming_the_problem(score_trust: Invoke, item: AwsStack) -> None:
    bad_rules = (
        "version: 1\nname: bad\nrules:\n  - id: r1\n"
        "    when: {all: [{fact: claims.nope, eq: true}]}\n    effect: allow\n"
    )
    for policy, words in (
        ({"rules": bad_rules}, "claims.nope"),
        ({"template": "strict", "overrides": {"weights": {"purpose": -1}}}, "weights.purpose"),
        ({"template": "lenient"}, "template"),
    ):
        body = error(score_trust(load_event("set_policy", policy=policy)), "invalid_request")
        assert words in json.dumps(body), body


def test_a_signed_score_explains_itself_and_names_what_it_scored(
    score_trust: Invoke, item: AwsStack, attester: Attester
) -> None:
    event = score_event(attester)
    result = ok(score_trust(event), "score")
    assert 0 <= result["score"] <= 1
    assert result["band"] in {"low", "medium", "high"}
    assert result["template"] == "standard"
    factors = {f["name"]: f for f in result["factors"]}
    assert factors["claims.verified"]["value"] == 1
    assert all(f["contribution"] <= 0 for f in factors.values())  # each factor can only take away
    # The score is what the factors leave of 1 (clamped at 0).
    assert abs(max(0.0, 1 + sum(f["contribution"] for f in factors.values())) - result["score"]) < 1e-9
    assert result["policy_version"] == default_rule_set().policy_version
    assert result["rules"]["effect"] in {"deny", "step_up", "require_quorum", "allow"}
    # The item's current version at its own label (the items table's, never the caller's).
    assert (result["item_version"], result["sensitivity"]) == (1, "confidential")
    # Signed by score-trust's stage key over this result, built on the context statement it checked.
    chain = attester.verify({**event["flow"], "trust": result})
    assert chain.trust is not None
    assert (chain.trust.stage, chain.trust.signer) == (Stage.SCORE_TRUST, Signer.SCORE_TRUST)
    assert chain.trust.statement.parents == (chain.context.digest,)
    assert chain.trust.statement.claim == {
        "effect": result["rules"]["effect"],
        "policy_version": result["policy_version"],
        "item_version": 1,
        "sensitivity": "confidential",
    }


def test_a_score_is_for_the_items_current_version_at_its_label(
    score_trust: Invoke, item: AwsStack, attester: Attester
) -> None:
    assert seal(item, sensitivity="public") == 2
    result = ok(score_trust(score_event(attester)), "score")
    assert (result["item_version"], result["sensitivity"]) == (2, "public")
    assert {f["name"]: f for f in result["factors"]}["sensitivity"]["value"] == 1
    error(score_trust(score_event(attester, item_id="customer-43-notes")), "not_found")
    assert len(_idempotency_rows(item)) == 1  # the scored request only: a refused one stores nothing


def test_history_changes_later_scores(score_trust: Invoke, item: AwsStack, attester: Attester) -> None:
    first = ok(score_trust(score_event(attester)), "score")
    assert {f["name"]: f for f in first["factors"]}["history.failures"]["value"] == 1
    record = load_event("record")
    for n in range(6):  # a burst of failures from this principal, just now
        failure = {**record, "outcome": "failure", "time": int(time.time()) - 60 + n}
        ok(score_trust(failure), "record")
    after = ok(score_trust(score_event(attester)), "score")
    assert after["score"] < first["score"]
    assert after["rules"]["effect"] == "deny"
    assert any("failure" in m["id"] for m in after["rules"]["matched"])


def test_an_unverified_context_is_denied_and_claims_do_not_count(
    score_trust: Invoke, item: AwsStack, attester: Attester
) -> None:
    """A context verify-proof signed as not verified (a refused proof is a signed answer too)."""
    unverified = {**SCORE_FLOW["context"], "verified": False, "reason": "the proof does not verify"}
    result = ok(score_trust(score_event(attester, context=unverified)), "score")
    factors = {f["name"]: f for f in result["factors"]}
    assert factors["claims.device_known"]["value"] == 0
    assert result["rules"]["effect"] == "deny"


def test_a_score_names_the_device_and_region_it_read_the_history_with(
    score_trust: Invoke, item: AwsStack, attester: Attester
) -> None:
    result = ok(score_trust(score_event(attester)), "score")
    assert result["device"] == SCORE_FLOW["context"]["claims"]["device_commitment"]  # the proven device
    assert result["region"] == SCORE_FLOW["region"] == "eu-west-1"
    elsewhere = ok(score_trust(score_event(attester, region="us-east-1")), "score")
    assert (elsewhere["device"], elsewhere["region"]) == (result["device"], "us-east-1")
    unplaced = {k: v for k, v in SCORE_FLOW.items() if k != "region"}
    unplaced["context"] = {"verified": False, "circuit": "context_proof", "claims": {}}
    unplaced["request_id"] = "access-unplaced"
    unknown = ok(score_trust(score_task(attester.attest(unplaced))), "score")
    assert (unknown["device"], unknown["region"]) == ("unknown", "unknown")


# --- what score refuses ---------------------------------------------------------------------------------
def test_score_acts_only_on_the_context_verify_proof_signed_for_this_request(
    score_trust: Invoke, item: AwsStack, attester: Attester
) -> None:
    honest = score_event(attester)["flow"]
    cases = attester.forgeries(honest, "context")
    # A request changed after its context was signed: the context is about another request.
    cases["the request changed after VerifyContext"] = ({**honest, "purpose": "audit"}, "subject")
    cases["no context at all"] = ({**honest, "context": None}, "structure")

    def check(case: tuple[dict[str, Any], str]) -> None:
        flow, failed = case
        body = error(score_trust(score_task(flow)), "attestation_invalid")
        assert body["details"] == {"check": failed}

    each_case(cases, check)
    assert _idempotency_rows(item) == []  # nothing scored, nothing stored
    assert ok(score_trust(score_task(honest)), "score")


def test_malformed_requests_are_typed_errors(score_trust: Invoke, item: AwsStack, attester: Attester) -> None:
    score = score_event(attester)
    flow = score["flow"]
    outcome = load_event("record_outcome")

    def check(event: Any) -> None:
        payload = score_trust(copy.deepcopy(event))
        assert payload["status"] == "error", payload
        assert payload["error"]["code"] == "invalid_request", payload
        assert_clean(payload)

    def in_flow(**changes: Any) -> dict[str, Any]:
        return {**score, "flow": {**flow, **changes}}

    each_case(
        {
            "not an object": ["score"],
            "the state beside the flow, not in it": {"action": "score", **flow},
            "score without a request id": {
                **score,
                "flow": {k: v for k, v in flow.items() if k != "request_id"},
            },
            "score with a bad request id": in_flow(request_id="a b"),
            "score without a tenant": {**score, "flow": {k: v for k, v in flow.items() if k != "tenant_id"}},
            "unknown action": {**score, "action": "rescore"},
            "a stated sensitivity": in_flow(sensitivity="public"),  # the items table's label is read
            "a stated device": in_flow(device="laptop-3"),  # the proven device is used
            "score with a long region": in_flow(region="r" * 65),
            "score without its start time": {k: v for k, v in score.items() if k != "started_at"},
            "score with a naive start time": {**score, "started_at": "2026-11-26T12:00:00"},
            "bad outcome": load_event("record", outcome="maybe"),
            "negative time": load_event("record", time=-1),
            "record with extra field": load_event("record", admin=True),
            "record with a long region": load_event("record", region="r" * 65),
            "record with a bad request id": load_event("record", request_id="a b"),
            "outcome with a naive time": {**outcome, "decided_at": "2026-11-25T12:00:00"},
            "outcome with a bad time": {**outcome, "decided_at": "soon"},
            "outcome without a time": {k: v for k, v in outcome.items() if k != "decided_at"},
            "outcome with a bad decision": {
                **outcome,
                "flow": {**outcome["flow"], "decision": {"decision": "abstain"}},
            },
            "outcome without a request id": {
                **outcome,
                "flow": {k: v for k, v in outcome["flow"].items() if k != "request_id"},
            },
            "outcome with an unsaid verification": {
                **outcome,
                "flow": {**outcome["flow"], "context": {"circuit": "context_proof", "claims": {}}},
            },
            "outcome with a placeless trust": {
                **outcome,
                "flow": {**outcome["flow"], "trust": {"score": 0.5}},
            },
        },
        check,
    )
    assert _idempotency_rows(item) == []  # refused before anything was stored
    assert _history_rows(item) == []


# --- record and RecordOutcome ---------------------------------------------------------------------------
def test_record_refuses_an_approval(score_trust: Invoke, aws: AwsStack) -> None:
    """An approval raises a principal's trust: it enters the history only through RecordOutcome, with the
    chain that approved it, never by a caller's word."""
    body = error(score_trust(load_event("record", outcome="approve")), "invalid_request")
    assert body["details"]["problems"] == [{"field": "record.outcome", "problem": "value_error"}]
    assert _history_rows(aws) == []
    for outcome in ("deny", "failure"):
        assert ok(score_trust(load_event("record", outcome=outcome)), "record") == {"recorded": True}
    assert len(_history_rows(aws)) == 2


def test_record_outcome_records_once_per_request(
    score_trust: Invoke, aws: AwsStack, attester: Attester
) -> None:
    event = outcome_event(attester)
    for _ in range(3):  # Step Functions retries the task
        assert ok(score_trust(event), "record_outcome") == {"recorded": True, "outcome": "approve"}
    (row,) = _history_rows(aws)
    recorded = json.loads(row["event"]["S"])
    assert recorded == {
        "time": 1_795_694_400,  # 2026-11-26T12:00:00Z, the execution's start
        "outcome": "approve",
        "device": OUTCOME_FLOW["trust"]["device"],
        "region": OUTCOME_FLOW["trust"]["region"],
        "lat": None,
        "lon": None,
    }
    assert "support-agent-7" not in json.dumps(row)
    ok(score_trust(outcome_event(attester, request_id="access-0003")), "record_outcome")
    assert len(_history_rows(aws)) == 2


def test_record_outcome_derives_the_outcome(score_trust: Invoke, aws: AwsStack, attester: Attester) -> None:
    """A denial only lowers a principal's trust and needs no authority: recorded as told."""
    deny = {"decision": "deny", "reasons": ["replayed nonce"]}
    unverified = {"verified": False, "circuit": "context_proof", "reason": "bad proof"}
    denied = {**OUTCOME_FLOW, "votes": [], "decision": deny}  # results as the samples hold them: unsigned
    cases = {
        "access-0": (outcome_event(attester, request_id="access-0")["flow"], "approve"),
        "access-1": ({**denied, "request_id": "access-1"}, "deny"),
        "access-2": ({**denied, "request_id": "access-2", "context": unverified}, "failure"),
        "access-3": ({**denied, "request_id": "access-3", "context": None, "trust": None}, "failure"),
    }
    for flow, outcome in cases.values():
        event = {"action": "record_outcome", "flow": flow, "decided_at": int(time.time())}
        assert ok(score_trust(event), "record_outcome") == {"recorded": True, "outcome": outcome}
    events = sorted((json.loads(r["event"]["S"]) for r in _history_rows(aws)), key=lambda e: e["outcome"])
    device = OUTCOME_FLOW["trust"]["device"]
    assert sorted((e["outcome"], e["device"], e["region"]) for e in events) == [
        ("approve", device, "eu-west-1"),
        ("deny", device, "eu-west-1"),
        ("failure", device, "eu-west-1"),
        ("failure", "unknown", "unknown"),  # never scored: no device or region to record against
    ]


@pytest.mark.parametrize("part", ["context", "trust", "vote", "decision"])
def test_record_outcome_records_an_approval_only_with_its_verified_chain(
    score_trust: Invoke, aws: AwsStack, attester: Attester, part: Any
) -> None:
    honest = outcome_event(attester)
    cases: dict[str, tuple[dict[str, Any], str]] = attester.forgeries(honest["flow"], part)
    if part == "vote":
        without_a_vote = copy.deepcopy(honest["flow"])
        del without_a_vote["votes"][0]  # the tally names every vote it counted
        cases["a vote left out"] = (without_a_vote, "parents")

    def check(case: tuple[dict[str, Any], str]) -> None:
        flow, failed = case
        body = error(score_trust({**honest, "flow": flow}), "attestation_invalid")
        assert body["details"] == {"check": failed}

    each_case(cases, check)
    assert _history_rows(aws) == []  # no approval raised anyone's trust
    ok(score_trust(honest), "record_outcome")
    assert len(_history_rows(aws)) == 1


def test_the_flow_records_against_what_it_scored(
    score_trust: Invoke, item: AwsStack, attester: Attester
) -> None:
    """ScoreTrust, then RecordOutcome with the score result as ``trust`` and the agents' approval: the
    next score knows the device. Both tasks carry the execution's start, so the outcome replaces the
    request's in-flight event."""
    ok(score_trust(load_event("set_policy", policy=ALLOW_VERIFIED)), "set_policy")  # the rules let it on
    started = int(time.time()) - 60
    event = score_event(attester, started)
    first = ok(score_trust(event), "score")
    assert {f["name"]: f for f in first["factors"]}["history.known_device"]["value"] == 0
    (in_flight,) = _history_rows(item)
    assert json.loads(in_flight["event"]["S"])["outcome"] == "deny"  # in flight: counted, never trusted
    decided = attester.decide({**event["flow"], "trust": first})
    outcome = flow_event("record_outcome", decided, decided_at=started)
    ok(score_trust(outcome), "record_outcome")
    ok(score_trust(outcome), "record_outcome")  # retried
    (recorded,) = _history_rows(item)
    assert json.loads(recorded["event"]["S"])["outcome"] == "approve"
    after = ok(score_trust(score_event(attester)), "score")
    factors = {f["name"]: f for f in after["factors"]}
    assert factors["history.known_device"]["value"] == 1
    assert factors["history.known_region"]["value"] == 1
    assert len(_history_rows(item)) == 2  # the approval, and the new request in flight


def test_record_with_a_request_id_is_recorded_once(score_trust: Invoke, aws: AwsStack) -> None:
    record = load_event("record", request_id="access-0001")
    for _ in range(2):
        assert ok(score_trust(record), "record") == {"recorded": True}
    assert len(_history_rows(aws)) == 1
    ok(score_trust(load_event("record")), "record")  # without one, every call adds an event
    ok(score_trust(load_event("record")), "record")
    assert len(_history_rows(aws)) == 3


# --- score: once per (tenant_id, request_id) ------------------------------------------------------------
def test_a_retried_score_returns_the_stored_result(
    score_trust: Invoke, item: AwsStack, attester: Attester
) -> None:
    """ScoreTrust retried or re-driven after RecordOutcome (and more) changed the principal's history: the
    same result, so RecordDecision of the retry writes the same record (the audit log refuses another);
    signed again, over the context statement the retry came with."""
    ok(score_trust(load_event("set_policy", policy=ALLOW_VERIFIED)), "set_policy")  # the rules let it on
    event = score_event(attester)
    scored = ok(score_trust(copy.deepcopy(event)), "score")
    decided = attester.decide({**event["flow"], "trust": scored})
    outcome = flow_event("record_outcome", decided, decided_at=int(time.time()))
    ok(score_trust(outcome), "record_outcome")  # this request's own outcome, now in the history
    for n in range(6):
        failure = {**load_event("record"), "outcome": "failure", "time": int(time.time()) - 60 + n}
        ok(score_trust(failure), "record")
    assert without(ok(score_trust(score_event(attester)), "score")) != without(scored)  # a new request
    # VerifyContext re-driven too: the same context, signed afresh.
    resigned = flow_json(attester.attest(event["flow"]))
    assert resigned["context"]["attestation"] != event["flow"]["context"]["attestation"]
    for flow in (event["flow"], resigned):
        again = ok(score_trust({**event, "flow": flow}), "score")
        assert without(again) == without(scored)
        chain = attester.verify({**flow, "trust": again})
        assert chain.trust is not None
        assert chain.trust.statement.parents == (chain.context.digest,)
    rows = _idempotency_rows(item)
    assert {r["status"]["S"] for r in rows} == {"COMPLETED"}
    assert [r for r in rows if without(json.loads(r["data"]["S"])) == without(scored)]
    assert SCORE_FLOW["principal"]["subject"] not in json.dumps(rows)  # only hashes of the requests


def test_a_reused_request_id_with_a_different_request_is_refused(
    score_trust: Invoke, item: AwsStack, attester: Attester
) -> None:
    """Each different request honestly signed by VerifyContext for the same request id: the id's first
    use answers, the others are conflicts."""
    event = score_event(attester)
    first = ok(score_trust(copy.deepcopy(event)), "score")
    flow = event["flow"]
    context = flow["context"]

    def refused(changed: dict[str, Any]) -> None:
        signed = score_task(attester.attest({**flow, **changed}))
        body = error(score_trust(signed), "idempotency_conflict")
        assert "request_id" in body["message"]

    changes: dict[str, dict[str, Any]] = {
        "another item": {"item_id": "customer-43-notes"},
        "another vault": {"vault_id": "other-vault"},
        "another principal": {"principal": {**flow["principal"], "subject": "support-agent-8"}},
        "other roles": {"principal": {**flow["principal"], "roles": ["owner"]}},
        "another purpose": {"purpose": "audit"},
        "another region": {"region": "us-east-1"},
        "an unverified context": {"context": {**context, "verified": False}},
        "another proof": {"context": {**context, "claims": {**context["claims"], "nullifier": "7"}}},
        "fewer claims": {"context": {**context, "claims": {}}},
    }
    each_case(changes, refused)
    # The first use is still what the id answers.
    assert without(ok(score_trust(copy.deepcopy(event)), "score")) == without(first)


def test_a_reused_request_id_is_per_tenant(score_trust: Invoke, item: AwsStack, attester: Attester) -> None:
    seal(item, tenant_id="globex", item_id="other-item")
    event = score_event(attester, request_id="access-0002")
    ok(score_trust(event), "score")
    ok(
        score_trust(
            score_event(attester, request_id="access-0002", tenant_id="globex", item_id="other-item")
        ),
        "score",
    )
    assert len(_idempotency_rows(item)) == 2


def test_different_request_ids_are_scored_independently(
    score_trust: Invoke, item: AwsStack, attester: Attester
) -> None:
    first_event, second_event = score_event(attester), score_event(attester)
    first = ok(score_trust(first_event), "score")
    for n in range(6):
        failure = {**load_event("record"), "outcome": "failure", "time": int(time.time()) - 60 + n}
        ok(score_trust(failure), "record")
    second = ok(score_trust(second_event), "score")
    assert second["score"] < first["score"]
    assert second["rules"]["effect"] == "deny"
    assert without(ok(score_trust(first_event), "score")) == without(first)
    assert without(ok(score_trust(second_event), "score")) == without(second)
    assert len(_idempotency_rows(item)) == 2


def test_a_failed_score_stores_nothing_and_the_retry_scores(
    score_trust: Invoke, item: AwsStack, attester: Attester, monkeypatch: pytest.MonkeyPatch
) -> None:
    def unavailable(self: TrustService, request: TrustRequest) -> TrustDecision:
        raise StorageUnavailableError("DynamoDB is unavailable or throttling", aws_code="ThrottlingException")

    event = score_event(attester)
    with monkeypatch.context() as patch:
        patch.setattr(TrustService, "decide", unavailable)
        with pytest.raises(StorageUnavailableError):
            score_trust(event)
    assert _idempotency_rows(item) == []
    ok(score_trust(event), "score")


def test_the_same_score_in_flight_raises_transient(
    score_trust: Invoke, item: AwsStack, attester: Attester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A duplicate delivered while the first is still scoring must be retried later, not answered."""
    event = score_event(attester)
    inner: list[BaseException] = []
    real_decide = TrustService.decide

    def decide_during_a_duplicate(self: TrustService, request: TrustRequest) -> TrustDecision:
        try:
            score_trust(copy.deepcopy(event))
        except TransientError as exc:
            inner.append(exc)
        return real_decide(self, request)

    with monkeypatch.context() as patch:
        patch.setattr(TrustService, "decide", decide_during_a_duplicate)
        first = ok(score_trust(copy.deepcopy(event)), "score")
    assert [type(exc) for exc in inner] == [TransientError]
    assert without(ok(score_trust(copy.deepcopy(event)), "score")) == without(first)


def test_an_idempotency_store_outage_raises(score_trust: Invoke, item: AwsStack, attester: Attester) -> None:
    event = score_event(attester)
    item.dynamodb.delete_table(TableName=item.settings.idempotency_table)
    with pytest.raises(StorageUnavailableError):
        score_trust(event)
    ok(score_trust(load_event("record")), "record")  # the other actions do not use the store


def test_the_first_approval_after_agent_vote_made_its_key_is_recorded(
    score_trust: Invoke, item: AwsStack
) -> None:
    """A fresh deployment's first request: VerifyContext and ScoreTrust make their keys, ScoreTrust reads
    the published ones; agent-vote makes its key on its first vote; RecordOutcome follows within seconds.
    A key id score-trust has not looked for before is read at once, not after the 5 s refresh interval."""
    ok(score_trust(load_event("set_policy", policy=ALLOW_VERIFIED)), "set_policy")
    settings = item.settings
    verify_proof = stage_signer(
        table_config(settings, settings.vaults_table),
        Signer.VERIFY_PROOF,
        functools.partial(build_root_of_trust, settings),
        item.dynamodb,
    )
    state = FlowState.model_validate({**SCORE_FLOW, "context": None})
    context = ContextOutcome.model_validate({**SCORE_FLOW["context"], "attestation": None})
    signed = verify_proof.attest(
        Stage.VERIFY_CONTEXT,
        state.subject,
        context.result_json(),
        claim={"verified": True, "circuit": context.circuit, "proof_hash": context.proof_hash},
        issued_at=int(time.time()),
    )
    flow = {
        **SCORE_FLOW,
        "context": context.model_copy(update={"attestation": signed}).model_dump(mode="json"),
    }
    trust = ok(score_trust(score_task(flow)), "score")
    decided = Attester(settings, item.dynamodb).decide({**flow, "trust": trust})  # agent-vote's key, now
    outcome = flow_event("record_outcome", decided, decided_at=int(time.time()))
    assert ok(score_trust(outcome), "record_outcome") == {"recorded": True, "outcome": "approve"}


def test_an_outcome_with_a_region_the_history_cannot_hold_is_refused(
    score_trust: Invoke, aws: AwsStack
) -> None:
    """A denial needs no chain, so its trust result is only as good as its parsing: a region longer than
    the history holds (64 characters) is refused on the way in, typed, and nothing is recorded."""
    flow = {**OUTCOME_FLOW, "votes": [], "decision": {"decision": "deny", "reasons": ["replayed nonce"]}}
    flow["trust"] = {**flow["trust"], "region": "r" * 65}
    error(score_trust({"action": "record_outcome", "flow": flow, "decided_at": 1}), "invalid_request")
    assert _history_rows(aws) == []
