"""The flow's ScoreTrust and RecordOutcome tasks over the trust service.

ScoreTrust acts only on a VerifyContext result whose attestation checks out for this request
(``reliquary.flow.checks``), scores the item's current version at its own sensitivity label (read from
the items table, never from the caller), and signs what it decided: the score, the rules' outcome, the
policy version and the item version, built on the context statement.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

from reliquary.flow.attestation import Stage, StageSigner
from reliquary.flow.checks import verified_context, verified_decision
from reliquary.flow.keys import StageKeyDirectory
from reliquary.flow.state import ContextOutcome, FlowState, TrustOutcome
from reliquary.trust.model import AccessEvent, ContextFacts, Principal, TrustRequest
from reliquary.trust.service import TrustService, flow_outcome
from reliquary.vaults.ports import ItemCatalog


def context_facts(context: ContextOutcome) -> ContextFacts:
    """What the verified proof showed: a claim counts only when the proof verified (the verifier already
    checked each public parameter against the vault's policy)."""
    verified, claims = context.verified, context.claims
    return ContextFacts(
        verified=verified,
        device_known=verified and "device_commitment" in claims,
        region_allowed=verified and "region_root" in claims,
        in_window=verified and "window_start" in claims,
        pattern_matched=verified and "pattern_commitment" in claims,
    )


class ScoreTrustStage:
    def __init__(
        self,
        service: TrustService,
        labels: ItemCatalog,
        signer: StageSigner,
        keys: StageKeyDirectory,
        *,
        clock: Callable[[], int] | None = None,
    ) -> None:
        self._service = service
        self._labels = labels
        self._signer = signer
        self._keys = keys
        self._clock = clock or (lambda: service.now)

    def score(
        self,
        state: FlowState,
        *,
        started_at: int,
        once: Callable[[Callable[[], TrustOutcome]], TrustOutcome] | None = None,
    ) -> TrustOutcome:
        """The request scored and signed, built on its checked context statement.

        The request then joins the principal's history as in flight (a ``deny``: a request that released
        nothing), at ``started_at``, the time RecordOutcome later records its outcome at, replacing it. So
        concurrent requests of one principal see each other in the history's request counters (bursts),
        and a flow that never records its outcome leaves a counted request, never an approval.

        ``once`` runs the scoring at most once per request (the function's idempotency store): a retried
        or re-driven ScoreTrust gets the stored score, signed again over the context statement it came
        with (a re-run of VerifyContext signs the same result afresh)."""
        now = self._clock()
        checked = verified_context(state, self._keys, now=now)
        compute = functools.partial(self._compute, state, checked.context, now, started_at)
        outcome = compute() if once is None else once(compute)
        attestation = self._signer.attest(
            Stage.SCORE_TRUST,
            state.subject,
            outcome.result_json(),
            claim={
                "effect": outcome.effect,
                "policy_version": outcome.policy_version,
                "item_version": outcome.item_version,
                "sensitivity": outcome.sensitivity,
            },
            parents=[checked.context_attestation],
            issued_at=now,
        )
        return outcome.model_copy(update={"attestation": attestation})

    def _compute(self, state: FlowState, context: ContextOutcome, now: int, started_at: int) -> TrustOutcome:
        label = self._labels.label(state.tenant_id, state.vault_id, state.item_id)
        # A device is known by its proven commitment across requests; without one it is "unknown".
        device = context.claims.get("device_commitment", "unknown") if context.verified else "unknown"
        decision = self._service.decide(
            TrustRequest(
                tenant_id=state.tenant_id,
                vault_id=state.vault_id,
                item_id=state.item_id,
                principal=Principal(subject=state.principal.subject, roles=state.principal.roles),
                sensitivity=label.sensitivity,
                purpose=state.purpose,
                context=context_facts(context),
                device=device[:256],
                region=state.region,
                now=now,
            )
        )
        in_flight = AccessEvent(
            time=started_at, outcome="deny", device=decision.device, region=decision.region
        )
        self._service.record(state.tenant_id, state.principal.subject, in_flight, event_id=state.request_id)
        return TrustOutcome.model_validate(
            {**decision.to_dict(), "sensitivity": label.sensitivity, "item_version": label.version}
        )

    def record_outcome(self, state: FlowState, *, decided_at: int) -> str:
        """The decided outcome into the principal's history, once per request (advisory: the log already
        holds the decision). Returns the outcome recorded.

        An approval raises a principal's trust, so it is recorded only with its whole attestation chain
        (``AttestationError`` otherwise); a denial or failure only lowers it and is recorded as told."""
        decision = state.decision.decision if state.decision is not None else "deny"
        if decision == "approve":
            verified_decision(state, self._keys, now=self._clock())
        verified = state.context is not None and state.context.verified
        outcome = flow_outcome(decision, verified=verified)
        place = state.trust
        event = AccessEvent(
            time=decided_at,
            outcome=outcome,
            device="unknown" if place is None else place.device,
            region="unknown" if place is None else place.region,
        )
        self._service.record(state.tenant_id, state.principal.subject, event, event_id=state.request_id)
        return outcome
