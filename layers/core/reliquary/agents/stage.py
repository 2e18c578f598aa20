"""The flow's Convene, Vote and Tally tasks over the agent-vote service, each acting only on a state whose
attestations check out for this request (``reliquary.flow.checks``), and signing what it decided.

- Convene names the agents to poll (the vault's panel and those the rules' quorum requires).
- Vote runs one agent on the attested context and trust results and signs its vote, built on both.
- Tally counts only attested votes, and only when every agent Convene would poll has voted: a caller
  cannot leave out an agent (a veto holder's deny) to reach another decision. Its statement, built on the
  trust statement and every vote, is the approval RecordDecision logs and the grant checks; it claims
  ``approvers_required`` (k, the people who must approve too: the policy's approvers, at least one for
  the rules' step_up), and the result tells the state machine k and how long to wait for them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from reliquary.agents.approvals import ApprovalService
from reliquary.agents.model import ContextResult, TrustResult
from reliquary.agents.policy import QuorumPolicy
from reliquary.agents.requirement import approvers_required, panel_to_poll
from reliquary.agents.service import AgentVoteService
from reliquary.errors import ConfigurationError, InvalidRequestError
from reliquary.flow.attestation import Stage, StageSigner
from reliquary.flow.checks import verified_trust, verified_votes
from reliquary.flow.keys import StageKeyDirectory
from reliquary.flow.state import DecisionOutcome, FlowState, TrustOutcome, VoteOutcome

# What each public parameter of a verified context proof shows (checked against the vault's policy by
# verify-proof): the claim names agents and trust rules reason about.
_CLAIM_OF_SIGNAL = {
    "device_commitment": "device_known",
    "region_root": "region_allowed",
    "window_start": "in_window",
    "pattern_commitment": "pattern_matched",
}


def proven_claims(signals: Mapping[str, Any]) -> frozenset[str]:
    return frozenset(claim for signal, claim in _CLAIM_OF_SIGNAL.items() if signal in signals)


def _trust_result(trust: TrustOutcome) -> TrustResult:
    return TrustResult(
        score=trust.score,
        band=trust.band,
        factors={f.name: f.value for f in trust.factors},
        rule_effect=trust.effect,
        facts=trust.facts,
    )


class AgentVoteStage:
    def __init__(
        self,
        service: AgentVoteService,
        signer: StageSigner,
        keys: StageKeyDirectory,
        *,
        approvals: ApprovalService | None = None,
    ) -> None:
        self._service = service
        self._signer = signer
        self._keys = keys
        self._approvals = approvals

    @property
    def service(self) -> AgentVoteService:
        return self._service

    @property
    def approvals(self) -> ApprovalService:
        """The step-up actions (await_approvals, approve)."""
        if self._approvals is None:
            raise ConfigurationError("this agent-vote runtime has no approvals store")
        return self._approvals

    def convene(self, state: FlowState) -> dict[str, Any]:
        checked = verified_trust(state, self._keys, now=self._service.now)
        return self._service.convene(state.tenant_id, state.vault_id, rules=checked.trust.rules)

    def vote(self, state: FlowState, agent: str) -> VoteOutcome:
        now = self._service.now
        checked = verified_trust(state, self._keys, now=now)
        context, trust = checked.context, checked.trust
        device = context.claims.get("device_commitment", "unknown") if context.verified else "unknown"
        cast = self._service.vote(
            agent,
            request_id=state.request_id,
            tenant_id=state.tenant_id,
            vault_id=state.vault_id,
            item_id=state.item_id,
            subject=state.principal.subject,
            device=device[:256],
            region=state.region,
            context=ContextResult(context.verified, proven_claims(context.claims)),
            trust=_trust_result(trust),
            purpose=state.purpose,
            sensitivity=trust.sensitivity,
            rules=trust.rules,
        )
        outcome = VoteOutcome.model_validate(cast)
        attestation = self._signer.attest(
            Stage.VOTE,
            state.subject,
            outcome.result_json(),
            claim={"agent": outcome.agent, "vote": outcome.vote, "veto": outcome.veto},
            parents=[checked.context_attestation, checked.trust_attestation],
            issued_at=now,
        )
        return outcome.model_copy(update={"attestation": attestation})

    def tally(self, state: FlowState, *, convened: QuorumPolicy | None) -> dict[str, Any]:
        """The decision (``decision``: a DecisionOutcome, signed) and the count behind it."""
        now = self._service.now
        checked = verified_votes(state, self._keys, now=now)
        trust, votes = checked.trust, [vote for vote, _ in checked.votes]
        verdict = self._service.verdict(trust.rules)
        policy = self._service.policy(state.tenant_id, state.vault_id)
        expected = set(panel_to_poll(policy, verdict.quorum if verdict is not None else None))
        missing = sorted(expected - {v.agent for v in votes})
        if missing:
            raise InvalidRequestError("every convened agent must vote before the tally", missing=missing)
        result = self._service.tally(
            state.tenant_id,
            state.vault_id,
            [v.model_dump(exclude={"attestation"}) for v in votes],
            rules=trust.rules,
            convened=convened,
        )
        required = approvers_required(policy, verdict)
        reasons = list(result.reasons)
        if result.decision == "approve" and required:
            reasons.append(f"{required} of the vault's approvers must approve too")
        decision = DecisionOutcome(
            decision=result.decision, reasons=reasons, policy_version=trust.policy_version
        )
        attestation = self._signer.attest(
            Stage.TALLY,
            state.subject,
            decision.result_json(),
            claim={"decision": decision.decision, "approvers_required": required},
            parents=[
                checked.trust_attestation,
                *sorted((a for _, a in checked.votes), key=lambda a: a.digest),
            ],
            issued_at=now,
        )
        signed = decision.model_copy(update={"attestation": attestation})
        return {
            **result.to_dict(),
            "approvers_required": required,
            "approval_timeout_seconds": policy.approval_timeout_seconds,
            "decision": signed.model_dump(mode="json"),
        }
