"""Recording decided outcomes: the RecordOutcome contract (flow state in, extra fields ignored, times as
epoch seconds or ISO 8601 with a zone), the outcome derivation, a score naming the device and region it
read the history with, and the history idempotent on the request id."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError

from reliquary.contracts.score_trust import RecordOutcomeRequest, RecordRequest, ScoreTrustRequest
from reliquary.trust import AccessEvent, ContextFacts, InMemoryHistoryStore, Principal, TrustRequest
from reliquary.trust.policy import TrustPolicy
from reliquary.trust.service import TrustService, flow_outcome

NOW = 1_795_651_200  # 2026-11-26T00:00:00Z
REQUESTS: TypeAdapter[Any] = TypeAdapter(ScoreTrustRequest)


class _Policies:
    """A ``TrustPolicyStore`` in a dict (empty: every vault has the default policy)."""

    def __init__(self) -> None:
        self._policies: dict[tuple[str, str], TrustPolicy] = {}

    def get(self, tenant_id: str, vault_id: str) -> TrustPolicy | None:
        return self._policies.get((tenant_id, vault_id))

    def put(self, tenant_id: str, vault_id: str, policy: TrustPolicy) -> None:
        self._policies[(tenant_id, vault_id)] = policy


def _flow_state(**changes: Any) -> dict[str, Any]:
    state: dict[str, Any] = {
        "action": "record_outcome",
        "request_id": "access-0002",
        "tenant_id": "acme",
        "vault_id": "agent-memory",
        "item_id": "customer-42-notes",
        "principal": {"subject": "alice", "roles": ["member"]},
        "nonce": "n-1",
        "context": {"verified": True, "claims": {"device_commitment": "123"}, "proof_hash": "ab" * 32},
        "trust": {"score": 0.9, "band": "high", "device": "123", "region": "eu-west-1", "factors": []},
        "votes": [{"agent": "strict", "vote": "approve", "confidence": 0.8}],
        "decision": {"decision": "approve", "reasons": ["ok"], "policy_version": "cd" * 32},
        "decided_at": "2026-11-26T00:00:00.000Z",
    }
    state.update(changes)
    return state


# --- the contract ---------------------------------------------------------------------------------
def test_record_outcome_reads_the_flow_state_and_ignores_the_rest() -> None:
    request = REQUESTS.validate_python(_flow_state())
    assert isinstance(request, RecordOutcomeRequest)
    assert request.decided_at == NOW
    assert request.principal.subject == "alice"
    assert request.context is not None
    assert request.context.verified is True
    assert request.trust is not None
    assert (request.trust.device, request.trust.region) == ("123", "eu-west-1")
    assert request.decision.decision == "approve"
    bare = {k: v for k, v in _flow_state(decided_at=NOW).items() if k not in {"context", "trust"}}
    request = REQUESTS.validate_python(bare)
    assert (request.context, request.trust, request.decided_at) == (None, None, NOW)


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
    assert REQUESTS.validate_python(_flow_state(decided_at=when)).decided_at == seconds


@pytest.mark.parametrize(
    "changes",
    [
        {"decided_at": "2026-11-26T01:02:03"},  # no zone
        {"decided_at": "yesterday"},
        {"decided_at": -1},
        {"decided_at": 1.5},
        {"decision": {"decision": "abstain"}},
        {"decision": {"reasons": []}},
        {"request_id": "has space"},
        {"principal": {"subject": ""}},
        {"context": {"claims": {}}},  # a context says whether it verified
        {"context": {"verified": "maybe"}},
        {"trust": {"device": "", "region": "eu-west-1"}},
        {"trust": {"device": "d", "region": "r" * 65}},
        {"trust": {"score": 0.5}},  # a score result names its device and region
    ],
    ids=repr,
)
def test_record_outcome_refuses_malformed_state(changes: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        REQUESTS.validate_python(_flow_state(**changes))


def test_missing_parts_are_refused() -> None:
    for name in ("request_id", "tenant_id", "principal", "decision", "decided_at"):
        with pytest.raises(ValidationError):
            REQUESTS.validate_python({k: v for k, v in _flow_state().items() if k != name})


def test_record_takes_an_optional_request_id() -> None:
    record: dict[str, Any] = {"action": "record", "tenant_id": "acme", "subject": "alice", "outcome": "deny"}
    record |= {"device": "d", "region": "eu-west-1", "time": NOW}
    assert REQUESTS.validate_python(record).request_id is None
    request = REQUESTS.validate_python({**record, "request_id": "access-1"})
    assert isinstance(request, RecordRequest)
    assert request.request_id == "access-1"
    with pytest.raises(ValidationError):  # the history holds regions of at most 64 characters
        REQUESTS.validate_python({**record, "region": "r" * 65})


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
