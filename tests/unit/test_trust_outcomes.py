"""Recording decided outcomes: the RecordOutcome contract (the flow state in, strictly: nothing a caller
adds; times as epoch seconds or ISO 8601 with a zone), ``record`` never taking an approval, the outcome
derivation, a score naming the device and region it read the history with, and the history idempotent on
the request id."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError

from reliquary.contracts.flow import RecordOutcomeTask
from reliquary.contracts.score_trust import RecordRequest, ScoreTrustRequest
from reliquary.errors import AttestationError
from reliquary.trust import AccessEvent, ContextFacts, InMemoryHistoryStore, Principal, TrustRequest
from reliquary.trust.policy import TrustPolicy
from reliquary.trust.service import TrustService, flow_outcome

NOW = 1_795_651_200  # 2026-11-26T00:00:00Z
REQUESTS: TypeAdapter[Any] = TypeAdapter(ScoreTrustRequest)
SAMPLE_REQUEST = Path(__file__).resolve().parents[2] / "events" / "access" / "request.json"


class _Policies:
    """A ``TrustPolicyStore`` in a dict (empty: every vault has the default policy)."""

    def __init__(self) -> None:
        self._policies: dict[tuple[str, str], TrustPolicy] = {}

    def get(self, tenant_id: str, vault_id: str) -> TrustPolicy | None:
        return self._policies.get((tenant_id, vault_id))

    def put(self, tenant_id: str, vault_id: str, policy: TrustPolicy) -> None:
        self._policies[(tenant_id, vault_id)] = policy


def _flow(**changes: Any) -> dict[str, Any]:
    """The flow state after RecordDecision: the sample request, its results and the decision."""
    flow: dict[str, Any] = json.loads(SAMPLE_REQUEST.read_text(encoding="utf-8"))
    flow |= {"principal": {"subject": "alice", "roles": ["member"]}}
    flow["context"] = {
        "verified": True,
        "circuit": "context_proof",
        "claims": {"device_commitment": "123"},
        "proof_hash": "ab" * 32,
    }
    flow["trust"] = {
        "score": 0.9,
        "band": "high",
        "template": "standard",
        "rules": {"effect": "allow"},
        "policy_version": "cd" * 32,
        "device": "123",
        "region": "eu-west-1",
    }
    flow["votes"] = [{"agent": "strict", "vote": "approve", "confidence": 0.8}]
    flow["decision"] = {"decision": "approve", "reasons": ["ok"], "policy_version": "cd" * 32}
    flow.update(changes)
    return flow


def _event(flow: dict[str, Any] | None = None, **fields: Any) -> dict[str, Any]:
    """The RecordOutcome task as the state machine sends it."""
    event = {"action": "record_outcome", "flow": _flow() if flow is None else flow}
    event["decided_at"] = "2026-11-26T00:00:00.000Z"  # $$.Execution.StartTime
    event.update(fields)
    return event


# --- the contract ---------------------------------------------------------------------------------
def test_record_outcome_reads_the_flow_state() -> None:
    request = REQUESTS.validate_python(_event())
    assert isinstance(request, RecordOutcomeTask)
    assert request.decided_at == NOW
    flow = request.flow
    assert (request.tenant_id, request.request_id) == (flow.tenant_id, flow.request_id)
    assert flow.principal.subject == "alice"
    assert flow.context is not None
    assert flow.context.verified is True
    assert flow.trust is not None
    assert (flow.trust.device, flow.trust.region) == ("123", "eu-west-1")
    assert flow.decision is not None
    assert flow.decision.decision == "approve"
    bare = {k: v for k, v in _flow().items() if k not in {"context", "trust", "votes", "decision"}}
    request = REQUESTS.validate_python(_event(bare, decided_at=NOW))
    assert (request.flow.context, request.flow.trust, request.flow.decision, request.decided_at) == (
        None,
        None,
        None,
        NOW,
    )


@pytest.mark.parametrize(
    ("when", "seconds"),
    [
        ("2026-11-26T01:02:03.456Z", NOW + 3723),  # $$.Execution.StartTime
        ("2026-11-26T02:02:03+01:00", NOW + 3723),
        (NOW, NOW),
        (0, 0),
    ],
)
def test_decided_at_is_epoch_seconds_or_iso_8601_with_a_zone(when: Any, seconds: int) -> None:
    assert REQUESTS.validate_python(_event(decided_at=when)).decided_at == seconds


@pytest.mark.parametrize(
    "fields",
    [
        {"decided_at": "2026-11-26T01:02:03"},  # no zone
        {"decided_at": "yesterday"},
        {"decided_at": -1},
        {"decided_at": 1.5},
        {"execution_id": "arn:aws:states:x"},  # RecordDecision's field, not this task's
    ],
    ids=repr,
)
def test_record_outcome_refuses_a_malformed_task(fields: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        REQUESTS.validate_python(_event(**fields))


@pytest.mark.parametrize(
    "changes",
    [
        {"decision": {"decision": "abstain"}},
        {"decision": {"reasons": []}},
        {"request_id": "has space"},
        {"principal": {"subject": ""}},
        {"context": {"claims": {}}},  # a context says whether it verified
        {"context": {"verified": "maybe", "circuit": "context_proof"}},
        {"trust": {**_flow()["trust"], "device": ""}},
        {"trust": {"score": 0.5}},  # a score result names its device and region
        {"nonce": "n-1"},
        {"sensitivity": "public"},  # the flow state holds no caller-stated label
    ],
    ids=repr,
)
def test_record_outcome_refuses_a_malformed_state(changes: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        REQUESTS.validate_python(_event(_flow(**changes)))


def test_a_malformed_attestation_is_refused_as_one() -> None:
    """Not a pydantic error: the one typed refusal of every attestation failure (attestation_invalid)."""
    context = {**_flow()["context"], "attestation": {"signer": "me"}}
    with pytest.raises(AttestationError) as refused:
        REQUESTS.validate_python(_event(_flow(context=context)))
    assert refused.value.details == {"check": "format"}


def test_missing_parts_are_refused() -> None:
    for name in ("request_id", "tenant_id", "principal", "requester_public_key", "nonce"):
        with pytest.raises(ValidationError):
            REQUESTS.validate_python(_event({k: v for k, v in _flow().items() if k != name}))
    for name in ("flow", "decided_at"):
        with pytest.raises(ValidationError):
            REQUESTS.validate_python({k: v for k, v in _event().items() if k != name})


def test_record_takes_an_optional_request_id_and_never_an_approval() -> None:
    record: dict[str, Any] = {"action": "record", "tenant_id": "acme", "subject": "alice", "outcome": "deny"}
    record |= {"device": "d", "region": "eu-west-1", "time": NOW}
    assert REQUESTS.validate_python(record).request_id is None
    request = REQUESTS.validate_python({**record, "request_id": "access-1"})
    assert isinstance(request, RecordRequest)
    assert request.request_id == "access-1"
    with pytest.raises(ValidationError):  # the history holds regions of at most 64 characters
        REQUESTS.validate_python({**record, "region": "r" * 65})
    # An approval raises trust: only RecordOutcome records one, with the chain that approved it.
    with pytest.raises(ValidationError, match="record_outcome"):
        REQUESTS.validate_python({**record, "outcome": "approve"})
    assert REQUESTS.validate_python({**record, "outcome": "failure"}).outcome == "failure"


# --- the outcome ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("decision", "verified", "outcome"),
    [
        ("approve", True, "approve"),
        ("approve", False, "approve"),
        ("deny", True, "deny"),
        ("deny", False, "failure"),
    ],
)
def test_flow_outcome(decision: Any, verified: bool, outcome: str) -> None:
    assert flow_outcome(decision, verified=verified) == outcome


# --- the service and the history ------------------------------------------------------------------
def _service(store: InMemoryHistoryStore) -> TrustService:
    return TrustService(store, _Policies(), clock=lambda: NOW)


def _request(device: str, region: str) -> TrustRequest:
    return TrustRequest(
        tenant_id="acme",
        vault_id="v",
        item_id="i",
        principal=Principal(subject="alice"),
        sensitivity="internal",
        context=ContextFacts(
            verified=True, device_known=True, region_allowed=True, in_window=True, pattern_matched=True
        ),
        device=device,
        region=region,
        now=NOW,
    )


def test_a_score_names_the_device_and_region_it_read_the_history_with() -> None:
    store = InMemoryHistoryStore(clock=lambda: NOW)
    result = _service(store).decide(_request("dev-9", "ap-south-1")).to_dict()
    assert (result["device"], result["region"]) == ("dev-9", "ap-south-1")
    assert result["policy_version"] == result["rules"]["policy_version"]


def test_recording_a_request_again_leaves_one_event() -> None:
    store = InMemoryHistoryStore(clock=lambda: NOW)
    service = _service(store)
    approved = AccessEvent(time=NOW - 60, outcome="approve", device="d", region="eu-west-1")
    for _ in range(3):
        service.record("acme", "alice", approved, event_id="access-1")
    assert store.recent("acme", "alice", since=0) == [approved]
    # A retry that saw another outcome replaces the event at that time.
    denied = approved.model_copy(update={"outcome": "deny"})
    service.record("acme", "alice", denied, event_id="access-1")
    assert store.recent("acme", "alice", since=0) == [denied]
    # Another request, or the same id of another principal or tenant, is another event.
    service.record("acme", "alice", approved, event_id="access-2")
    service.record("acme", "bob", approved, event_id="access-1")
    service.record("globex", "alice", approved, event_id="access-1")
    assert len(store.recent("acme", "alice", since=0)) == 2
    assert len(store.recent("acme", "bob", since=0)) == len(store.recent("globex", "alice", since=0)) == 1
    # Without an id every call adds an event (the record action's old behaviour).
    service.record("acme", "carol", approved)
    service.record("acme", "carol", approved)
    assert len(store.recent("acme", "carol", since=0)) == 2


def test_a_recorded_outcome_changes_the_next_score() -> None:
    store = InMemoryHistoryStore(clock=lambda: NOW)
    service = _service(store)
    before = service.decide(_request("dev-1", "eu-west-1"))
    assert before.history.known_device is False
    service.record(
        "acme",
        "alice",
        AccessEvent(time=NOW - 60, outcome="approve", device=before.device, region=before.region),
        event_id="access-1",
    )
    after = service.decide(_request("dev-1", "eu-west-1"))
    assert after.history.known_device is True
    assert after.history.known_region is True
    assert after.history.requests_1h == 1
