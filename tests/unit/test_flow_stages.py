"""The flow's stages on in-memory stores: each acts only on attested earlier results, signs its own, and
ScoreTrust counts concurrent requests of one principal (the in-flight record)."""

from __future__ import annotations

from typing import Any

import pytest

from reliquary.errors import AttestationError
from reliquary.flow.attestation import Signer, Stage
from reliquary.flow.checks import verified_decision
from reliquary.flow.memory import MemoryStageKeys
from reliquary.flow.state import ContextOutcome, DecisionOutcome, FlowState
from reliquary.trust.history import InMemoryHistoryStore
from reliquary.trust.policy import TrustPolicy
from reliquary.trust.service import TrustService
from reliquary.trust.stage import ScoreTrustStage
from reliquary.vaults.labels import ItemLabel

NOW = 1_800_000_000
REQUEST: dict[str, Any] = {
    "tenant_id": "acme",
    "vault_id": "agent-memory",
    "item_id": "customer-42-notes",
    "principal": {"subject": "support-agent-7", "roles": ["member"]},
    "requester_public_key": "A" * 1622 + "==",
    "context_proof": {"circuit": "context_proof", "proof": {}, "public_signals": []},
    "nonce": "ab" * 31,
    "purpose": "support",
    "region": "eu-west-1",
}


class Labels:
    def label(self, tenant_id: str, vault_id: str, item_id: str) -> ItemLabel:  # noqa: ARG002
        return ItemLabel(version=3, sensitivity="confidential")


class NoPolicies:
    def get(self, tenant_id: str, vault_id: str) -> TrustPolicy | None:  # noqa: ARG002
        return None

    def put(self, tenant_id: str, vault_id: str, policy: TrustPolicy) -> None:  # noqa: ARG002
        raise AssertionError("not in these tests")


@pytest.fixture
def keys() -> MemoryStageKeys:
    return MemoryStageKeys()


@pytest.fixture
def history() -> InMemoryHistoryStore:
    return InMemoryHistoryStore(clock=lambda: NOW)


def _stage(keys: MemoryStageKeys, history: InMemoryHistoryStore) -> ScoreTrustStage:
    service = TrustService(history, NoPolicies(), clock=lambda: NOW)
    return ScoreTrustStage(
        service, Labels(), keys.signers[Signer.SCORE_TRUST], keys.directory, clock=lambda: NOW
    )


def _verified(keys: MemoryStageKeys, request_id: str) -> FlowState:
    state = FlowState.model_validate({**REQUEST, "request_id": request_id})
    context = ContextOutcome(verified=True, circuit="context_proof", claims={"device_commitment": "7"})
    attestation = keys.signers[Signer.VERIFY_PROOF].attest(
        Stage.VERIFY_CONTEXT, state.subject, context.result_json(), claim={"verified": True}, issued_at=NOW
    )
    return state.model_copy(update={"context": context.model_copy(update={"attestation": attestation})})


def test_score_trust_signs_the_score_of_the_labelled_version_on_the_attested_context(
    keys: MemoryStageKeys, history: InMemoryHistoryStore
) -> None:
    state = _verified(keys, "access-1")
    trust = _stage(keys, history).score(state, started_at=NOW)
    assert trust.item_version == 3
    assert trust.sensitivity == "confidential"
    assert trust.attestation is not None
    claim = trust.attestation.statement.claim
    assert claim["item_version"] == 3
    assert claim["effect"] == trust.effect
    assert trust.attestation.statement.parents == (state.context.attestation.digest,)  # type: ignore[union-attr]
    chain = keys.directory.verify_chain(
        state.model_copy(update={"trust": trust}).chain(), subject=state.subject
    )
    assert chain.trust is not None


@pytest.mark.parametrize(
    "forge",
    [
        pytest.param(lambda s: s.model_copy(update={"context": None}), id="no context"),
        pytest.param(
            lambda s: s.model_copy(update={"context": s.context.model_copy(update={"attestation": None})}),
            id="unsigned context",
        ),
        pytest.param(
            lambda s: s.model_copy(
                update={"context": s.context.model_copy(update={"claims": {"region_root": "1"}})}
            ),
            id="altered claims",
        ),
        pytest.param(lambda s: s.model_copy(update={"region": "somewhere-else"}), id="another request"),
    ],
)
def test_score_trust_refuses_a_context_it_cannot_check(
    keys: MemoryStageKeys, history: InMemoryHistoryStore, forge: Any
) -> None:
    with pytest.raises(AttestationError):
        _stage(keys, history).score(forge(_verified(keys, "access-1")), started_at=NOW)
    assert history.recent("acme", "support-agent-7", since=0) == []  # nothing recorded


def test_concurrent_requests_of_one_principal_see_each_other(
    keys: MemoryStageKeys, history: InMemoryHistoryStore
) -> None:
    stage = _stage(keys, history)
    first = stage.score(_verified(keys, "access-1"), started_at=NOW)
    second = stage.score(_verified(keys, "access-2"), started_at=NOW)  # the first has no outcome yet
    assert first.facts["history.requests_1h"] == 0
    assert second.facts["history.requests_1h"] == 1
    (in_flight, _) = history.recent("acme", "support-agent-7", since=0)
    assert in_flight.outcome == "deny"  # counted as a request, never as an approval
    # RecordOutcome at the same time replaces the in-flight event (one event per request).
    state = _verified(keys, "access-1").model_copy(
        update={"trust": first, "decision": DecisionOutcome(decision="deny", reasons=["x"])}
    )
    stage.record_outcome(state, decided_at=NOW)
    assert len(history.recent("acme", "support-agent-7", since=0)) == 2


def test_an_approval_enters_the_history_only_with_its_chain(
    keys: MemoryStageKeys, history: InMemoryHistoryStore
) -> None:
    stage = _stage(keys, history)
    state = _verified(keys, "access-1")
    state = state.model_copy(update={"trust": stage.score(state, started_at=NOW)})
    forged = state.model_copy(
        update={"decision": DecisionOutcome(decision="approve", policy_version="9b" * 32)}
    )
    with pytest.raises(AttestationError):
        stage.record_outcome(forged, decided_at=NOW)
    with pytest.raises(AttestationError):
        verified_decision(forged, keys.directory, now=NOW)
    assert all(e.outcome != "approve" for e in history.recent("acme", "support-agent-7", since=0))


def test_the_flow_state_holds_places_as_the_history_does() -> None:
    """A trust result's device and region must fit the history that RecordOutcome writes them to (a longer
    one would fail there, untyped): the flow state refuses them on the way in."""
    from pydantic import ValidationError

    from reliquary.flow.state import TrustOutcome
    from reliquary.trust.model import AccessEvent

    base = {
        "score": 0.5,
        "band": "medium",
        "template": "standard",
        "rules": {"effect": "allow"},
        "policy_version": "9b" * 32,
        "device": "d" * 256,
        "region": "r" * 64,
    }
    trust = TrustOutcome.model_validate(base)
    AccessEvent(time=NOW, outcome="deny", device=trust.device, region=trust.region)
    with pytest.raises(ValidationError):
        TrustOutcome.model_validate({**base, "region": "r" * 65})
    with pytest.raises(ValidationError):
        TrustOutcome.model_validate({**base, "device": "d" * 257})
