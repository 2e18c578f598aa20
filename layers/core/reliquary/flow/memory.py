"""In-memory stage keys and an honest chain signer: for the in-memory fakes, tests and benchmarks that need
what a real flow would have signed without running the state machine."""

from __future__ import annotations

from collections.abc import Sequence

from reliquary.crypto.signing import SigningKey
from reliquary.flow.attestation import (
    Attestation,
    Signer,
    Stage,
    StageKeys,
    StageSigner,
    Subject,
    VerifiedChain,
    verify_chain,
)
from reliquary.flow.keys import STAGE_ALGORITHM, StageKeyDirectory


class MemoryStageKeys:
    """A fresh stage key for every signing function, and the directory that publishes them."""

    def __init__(self) -> None:
        self.signers = {s: StageSigner(s, SigningKey.generate(STAGE_ALGORITHM)) for s in Signer}
        self.directory = StageKeyDirectory(self.published)

    def published(self) -> StageKeys:
        return StageKeys({s: [signer.verifying_key] for s, signer in self.signers.items()})

    def approval_chain(
        self,
        subject: Subject,
        *,
        issued_at: int,
        item_version: int = 1,
        policy_version: str = "9b" * 32,
        agents: Sequence[str] = ("strict", "permissive", "neutral", "watchdog"),
        decision: str = "approve",
    ) -> VerifiedChain:
        """The chain an honest flow signs for ``subject``: the proof verified, the rules allowed, each agent
        approved, the tally decided ``decision``. (Results are stood in for by their claims.)"""
        sign = self.signers
        context = sign[Signer.VERIFY_PROOF].attest(
            Stage.VERIFY_CONTEXT, subject, {"verified": True}, claim={"verified": True}, issued_at=issued_at
        )
        trust_claim = {"effect": "allow", "policy_version": policy_version, "item_version": item_version}
        trust = sign[Signer.SCORE_TRUST].attest(
            Stage.SCORE_TRUST, subject, trust_claim, claim=trust_claim, parents=[context], issued_at=issued_at
        )
        votes: list[Attestation] = [
            sign[Signer.AGENT_VOTE].attest(
                Stage.VOTE,
                subject,
                {"agent": agent, "vote": "approve"},
                claim={"agent": agent, "vote": "approve", "veto": False},
                parents=[context, trust],
                issued_at=issued_at,
            )
            for agent in agents
        ]
        tally = sign[Signer.AGENT_VOTE].attest(
            Stage.TALLY,
            subject,
            {"decision": decision},
            claim={"decision": decision},
            parents=[trust, *sorted(votes, key=lambda v: v.digest)],
            issued_at=issued_at,
        )
        return verify_chain([context, trust, *votes, tally], self.published(), subject=subject)
