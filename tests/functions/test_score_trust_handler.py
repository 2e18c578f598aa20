"""The score-trust handler on its sample events against moto: an explained score and the rule outcome with
its policy version, history that changes later scores (of later requests), a score stored once per request
(a retried ScoreTrust gets the stored result), outcomes recorded once per request (RecordOutcome), and
malformed input refused."""

from __future__ import annotations

import copy
import json
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from reliquary.errors import StorageUnavailableError, TransientError
from reliquary.trust.model import TrustRequest
from reliquary.trust.rules import default_rule_set
from reliquary.trust.service import TrustDecision, TrustService
from tests.functions.conftest import Invoke
from tests.functions.test_encrypt_handler import assert_clean, each_case, error, ok
from tests.support.aws import AwsStack

EVENTS_DIR = Path(__file__).resolve().parents[2] / "events" / "score_trust"


def load_event(name: str, **overrides: Any) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((EVENTS_DIR / f"{name}.json").read_text())
    event.update(overrides)
    return event


def score_event(**overrides: Any) -> dict[str, Any]:
    """The sample score event as a new request (its own request id): scored afresh, not the stored result."""
    return load_event("score", request_id=f"access-{uuid.uuid4().hex[:12]}", **overrides)


def test_every_action_has_a_sample_event() -> None:
    names = {"score", "record", "record_outcome", "set_policy"}
    assert {p.stem for p in EVENTS_DIR.glob("*.json")} == names
    readme = (EVENTS_DIR / "README.md").read_text()
    assert all(f"`{name}.json`" in readme for name in names)


def _vault(aws: AwsStack) -> None:
    aws.dynamodb.put_item(
        TableName=aws.settings.vaults_table,
        Item={"pk": {"S": "TENANT#acme"}, "sk": {"S": "VAULT#agent-memory"}, "status": {"S": "active"}},
    )


def test_a_vault_policy_selects_the_template_and_the_rules(score_trust: Invoke, aws: AwsStack) -> None:
    standard = ok(score_trust(score_event()), "score")
    error(score_trust(load_event("set_policy")), "not_found")  # no such vault yet
    _vault(aws)
    stored = ok(score_trust(load_event("set_policy")), "set_policy")
    assert stored == {"template": "strict", "policy_version": default_rule_set().policy_version}
    strict = ok(score_trust(score_event()), "score")
    assert strict["template"] == "strict"
    assert strict["score"] <= standard["score"]
    # The vault's own rules: one rule that allows everything verified; its version is what gets logged.
    own_rules = (
        "version: 1\nname: permissive\nrules:\n  - id: allow-verified\n"
        "    when: {all: [{fact: claims.verified, eq: true}]}\n    effect: allow\n"
    )
    policy = {"template": "standard", "overrides": {}, "rules": own_rules}
    stored = ok(score_trust(load_event("set_policy", policy=policy)), "set_policy")
    decided = ok(score_trust(score_event()), "score")
    assert decided["policy_version"] == stored["policy_version"] != default_rule_set().policy_version
    assert decided["rules"]["effect"] == "allow"
    assert [m["id"] for m in decided["rules"]["matched"]] == ["allow-verified"]


def test_an_invalid_policy_is_refused_naming_the_problem(score_trust: Invoke, aws: AwsStack) -> None:
    _vault(aws)
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


def test_a_score_explains_itself_and_names_the_policy_version(score_trust: Invoke, aws: AwsStack) -> None:
    result = ok(score_trust(load_event("score")), "score")
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


def test_history_changes_later_scores(score_trust: Invoke, aws: AwsStack) -> None:
    first = ok(score_trust(load_event("score")), "score")
    assert {f["name"]: f for f in first["factors"]}["history.failures"]["value"] == 1
    record = load_event("record")
    for n in range(6):  # a burst of failures from this principal, just now
        failure = {**record, "outcome": "failure", "time": int(time.time()) - 60 + n}
        ok(score_trust(failure), "record")
    after = ok(score_trust(score_event()), "score")
    assert after["score"] < first["score"]
    assert after["rules"]["effect"] == "deny"
    assert any("failure" in m["id"] for m in after["rules"]["matched"])


def test_an_unverified_context_is_denied_and_claims_do_not_count(score_trust: Invoke, aws: AwsStack) -> None:
    event = load_event("score")
    event["context"] = {**event["context"], "verified": False}
    result = ok(score_trust(event), "score")
    factors = {f["name"]: f for f in result["factors"]}
    assert factors["claims.device_known"]["value"] == 0
    assert result["rules"]["effect"] == "deny"


def test_malformed_requests_are_typed_errors(score_trust: Invoke, aws: AwsStack) -> None:
    score = load_event("score")

    def check(event: Any) -> None:
        payload = score_trust(copy.deepcopy(event))
        assert payload["status"] == "error", payload
        assert payload["error"]["code"] == "invalid_request", payload
        assert_clean(payload)

    each_case(
        {
            "not an object": ["score"],
            "score without a request id": {k: v for k, v in score.items() if k != "request_id"},
            "score with a bad request id": {**score, "request_id": "a b"},
            "score without a tenant": {k: v for k, v in score.items() if k != "tenant_id"},
            "unknown action": {**score, "action": "rescore"},
            "no context": {k: v for k, v in score.items() if k != "context"},
            "bad sensitivity": {**score, "sensitivity": "top-secret"},
            "bad outcome": load_event("record", outcome="maybe"),
            "negative time": load_event("record", time=-1),
            "record with extra field": load_event("record", admin=True),
            "record with a long region": load_event("record", region="r" * 65),
            "record with a bad request id": load_event("record", request_id="a b"),
            "score with a long region": {**score, "region": "r" * 65},
            "outcome with a naive time": load_event("record_outcome", decided_at="2026-11-25T12:00:00"),
            "outcome with a bad time": load_event("record_outcome", decided_at="soon"),
            "outcome without a decision": {
                k: v for k, v in load_event("record_outcome").items() if k != "decision"
            },
            "outcome with a bad decision": load_event("record_outcome", decision={"decision": "abstain"}),
            "outcome without a request id": {
                k: v for k, v in load_event("record_outcome").items() if k != "request_id"
            },
            "outcome with an unsaid verification": load_event("record_outcome", context={"claims": {}}),
            "outcome with a placeless trust": load_event("record_outcome", trust={"score": 0.5}),
        },
        check,
    )
    assert _idempotency_rows(aws) == []  # refused before anything was stored


def _history_rows(aws: AwsStack) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = aws.dynamodb.scan(TableName=aws.settings.history_table)["Items"]
    return rows


def test_a_score_names_the_device_and_region_it_read_the_history_with(
    score_trust: Invoke, aws: AwsStack
) -> None:
    event = load_event("score")
    result = ok(score_trust(event), "score")
    assert result["device"] == event["context"]["claims"]["device_commitment"]  # the proven device
    assert result["region"] == event["region"] == "eu-west-1"
    stated = ok(score_trust(score_event(device="laptop-3", region="us-east-1")), "score")
    assert (stated["device"], stated["region"]) == ("laptop-3", "us-east-1")
    unplaced = {k: v for k, v in score_event().items() if k != "region"}
    unplaced["context"] = {"verified": False, "claims": {}}
    unknown = ok(score_trust(unplaced), "score")
    assert (unknown["device"], unknown["region"]) == ("unknown", "unknown")


def test_record_outcome_records_once_per_request(score_trust: Invoke, aws: AwsStack) -> None:
    event = load_event("record_outcome")
    for _ in range(3):  # Step Functions retries the task
        assert ok(score_trust(event), "record_outcome") == {"recorded": True, "outcome": "approve"}
    (row,) = _history_rows(aws)
    recorded = json.loads(row["event"]["S"])
    assert recorded == {
        "time": 1_795_608_000,  # 2026-11-25T12:00:00Z, the execution's start
        "outcome": "approve",
        "device": event["trust"]["device"],
        "region": event["trust"]["region"],
        "lat": None,
        "lon": None,
    }
    assert "support-agent-7" not in json.dumps(row)
    ok(score_trust(load_event("record_outcome", request_id="access-0003")), "record_outcome")
    assert len(_history_rows(aws)) == 2


def test_record_outcome_derives_the_outcome(score_trust: Invoke, aws: AwsStack) -> None:
    event = load_event("record_outcome")
    deny = {"decision": "deny", "reasons": ["replayed nonce"]}
    without_context = {k: v for k, v in event.items() if k not in {"context", "trust"}}
    cases = [
        (event, "approve"),
        ({**event, "decision": deny}, "deny"),
        ({**event, "decision": deny, "context": {"verified": False, "reason": "bad proof"}}, "failure"),
        ({**without_context, "decision": deny}, "failure"),
    ]
    for n, (case, outcome) in enumerate(cases):
        result = ok(score_trust({**case, "request_id": f"access-{n}"}), "record_outcome")
        assert result == {"recorded": True, "outcome": outcome}
    events = sorted((json.loads(r["event"]["S"]) for r in _history_rows(aws)), key=lambda e: e["outcome"])
    assert [(e["outcome"], e["device"], e["region"]) for e in events] == [
        ("approve", event["trust"]["device"], "eu-west-1"),
        ("deny", event["trust"]["device"], "eu-west-1"),
        ("failure", "unknown", "unknown"),  # never scored: no device or region to record against
        ("failure", event["trust"]["device"], "eu-west-1"),
    ]


def test_the_flow_records_against_what_it_scored(score_trust: Invoke, aws: AwsStack) -> None:
    """ScoreTrust, then RecordOutcome with the score result as ``trust``: the next score knows the device."""
    first = ok(score_trust(load_event("score")), "score")
    assert {f["name"]: f for f in first["factors"]}["history.known_device"]["value"] == 0
    state = {**load_event("score"), "trust": first, "decision": {"decision": "approve"}}
    state |= {"action": "record_outcome", "decided_at": int(time.time()) - 60}
    ok(score_trust(state), "record_outcome")
    ok(score_trust(state), "record_outcome")  # retried
    after = ok(score_trust(score_event()), "score")
    factors = {f["name"]: f for f in after["factors"]}
    assert factors["history.known_device"]["value"] == 1
    assert factors["history.known_region"]["value"] == 1
    assert len(_history_rows(aws)) == 1


def test_record_with_a_request_id_is_recorded_once(score_trust: Invoke, aws: AwsStack) -> None:
    record = load_event("record", request_id="access-0001")
    for _ in range(2):
        assert ok(score_trust(record), "record") == {"recorded": True}
    assert len(_history_rows(aws)) == 1
    ok(score_trust(load_event("record")), "record")  # without one, every call adds an event
    ok(score_trust(load_event("record")), "record")
    assert len(_history_rows(aws)) == 3


# --- score: once per (tenant_id, request_id) ------------------------------------------------------------
def _idempotency_rows(aws: AwsStack) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = aws.dynamodb.scan(TableName=aws.settings.idempotency_table)["Items"]
    return rows


def test_a_retried_score_returns_the_stored_result(score_trust: Invoke, aws: AwsStack) -> None:
    """ScoreTrust retried or re-driven after RecordOutcome (and more) changed the principal's history: the
    same result, so RecordDecision of the retry writes the same record (the audit log refuses another)."""
    event = load_event("score")
    first = score_trust(copy.deepcopy(event))
    scored = ok(first, "score")
    outcome = {**event, "trust": scored, "decision": {"decision": "approve"}}
    outcome |= {"action": "record_outcome", "decided_at": int(time.time())}
    ok(score_trust(outcome), "record_outcome")  # this request's own outcome, now in the history
    for n in range(6):
        failure = {**load_event("record"), "outcome": "failure", "time": int(time.time()) - 60 + n}
        ok(score_trust(failure), "record")
    assert ok(score_trust(score_event()), "score") != scored  # a new request sees the new history
    for _ in range(2):
        assert score_trust(copy.deepcopy(event)) == first
    rows = _idempotency_rows(aws)
    assert {r["status"]["S"] for r in rows} == {"COMPLETED"}
    assert [r for r in rows if json.loads(r["data"]["S"]) == scored]
    assert event["principal"]["subject"] not in json.dumps(rows)  # only hashes of the requests


def test_a_reused_request_id_with_a_different_request_is_refused(score_trust: Invoke, aws: AwsStack) -> None:
    event = load_event("score")
    first = score_trust(copy.deepcopy(event))
    ok(first, "score")
    context = event["context"]

    def refused(changed: dict[str, Any]) -> None:
        body = error(score_trust({**copy.deepcopy(event), **changed}), "idempotency_conflict")
        assert "request_id" in body["message"]

    changes: dict[str, dict[str, Any]] = {
        "another item": {"item_id": "customer-43-notes"},
        "another vault": {"vault_id": "other-vault"},
        "another principal": {"principal": {**event["principal"], "subject": "support-agent-8"}},
        "other roles": {"principal": {**event["principal"], "roles": ["owner"]}},
        "another purpose": {"purpose": "audit"},
        "another sensitivity": {"sensitivity": "public"},
        "another region": {"region": "us-east-1"},
        "a stated device": {"device": "laptop-3"},
        "an unverified context": {"context": {**context, "verified": False}},
        "another proof": {"context": {**context, "claims": {**context["claims"], "nullifier": "7"}}},
        "fewer claims": {"context": {**context, "claims": {}}},
    }
    each_case(changes, refused)
    assert score_trust(copy.deepcopy(event)) == first  # the first use is still what the id answers


def test_a_reused_request_id_is_per_tenant(score_trust: Invoke, aws: AwsStack) -> None:
    ok(score_trust(load_event("score")), "score")
    ok(score_trust(load_event("score", tenant_id="globex", item_id="other-item")), "score")
    assert len(_idempotency_rows(aws)) == 2


def test_different_request_ids_are_scored_independently(score_trust: Invoke, aws: AwsStack) -> None:
    first_event, second_event = score_event(), score_event()
    first = ok(score_trust(first_event), "score")
    for n in range(6):
        failure = {**load_event("record"), "outcome": "failure", "time": int(time.time()) - 60 + n}
        ok(score_trust(failure), "record")
    second = ok(score_trust(second_event), "score")
    assert second["score"] < first["score"]
    assert second["rules"]["effect"] == "deny"
    assert ok(score_trust(first_event), "score") == first
    assert ok(score_trust(second_event), "score") == second
    assert len(_idempotency_rows(aws)) == 2


def test_a_failed_score_stores_nothing_and_the_retry_scores(
    score_trust: Invoke, aws: AwsStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    def unavailable(self: TrustService, request: TrustRequest) -> TrustDecision:
        raise StorageUnavailableError("DynamoDB is unavailable or throttling", aws_code="ThrottlingException")

    with monkeypatch.context() as patch:
        patch.setattr(TrustService, "decide", unavailable)
        with pytest.raises(StorageUnavailableError):
            score_trust(load_event("score"))
    assert _idempotency_rows(aws) == []
    ok(score_trust(load_event("score")), "score")


def test_the_same_score_in_flight_raises_transient(
    score_trust: Invoke, aws: AwsStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A duplicate delivered while the first is still scoring must be retried later, not answered."""
    inner: list[BaseException] = []
    real_decide = TrustService.decide

    def decide_during_a_duplicate(self: TrustService, request: TrustRequest) -> TrustDecision:
        try:
            score_trust(load_event("score"))
        except TransientError as exc:
            inner.append(exc)
        return real_decide(self, request)

    with monkeypatch.context() as patch:
        patch.setattr(TrustService, "decide", decide_during_a_duplicate)
        first = score_trust(load_event("score"))
    assert [type(exc) for exc in inner] == [TransientError]
    assert score_trust(load_event("score")) == first


def test_an_idempotency_store_outage_raises(score_trust: Invoke, aws: AwsStack) -> None:
    aws.dynamodb.delete_table(TableName=aws.settings.idempotency_table)
    with pytest.raises(StorageUnavailableError):
        score_trust(load_event("score"))
    ok(score_trust(load_event("record")), "record")  # the other actions do not use the store
