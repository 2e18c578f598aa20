"""In-memory stage keys and an honest chain signer: for the in-memory fakes, tests and benchmarks that need
what a real flow would have signed without running the state machine."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

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
        self, subject: Subject, *, issued_at: int, item_version: int = 1, **changes: Any
    ) -> VerifiedChain:
        """The chain an honest flow signs for ``subject`` (``sign_chain``), verified."""
        chain = sign_chain(self.signers, subject, issued_at=issued_at, item_version=item_version, **changes)
        return verify_chain(chain, self.published(), subject=subject)


def sign_chain(
    signers: Mapping[Signer, StageSigner],
    subject: Subject,
    *,
    issued_at: int,
    item_version: int = 1,
    verified: bool = True,
    effect: str = "allow",
    decision: str = "approve",
    policy_version: str = "9b" * 32,
    agents: Sequence[str] = ("strict", "permissive", "neutral", "watchdog"),
) -> list[Attestation]:
    """The chain the flow's stages sign for ``subject`` with ``signers`` (their results stood in for by
    their claims): the proof ``verified``, the rules' ``effect`` for ``item_version``, each agent
    approving, the tally's ``decision``. The defaults are an honest approval; a test changes one."""
    context_claim = {"verified": verified}
    context = signers[Signer.VERIFY_PROOF].attest(
        Stage.VERIFY_CONTEXT, subject, context_claim, claim=context_claim, issued_at=issued_at
    )
    trust_claim = {"effect": effect, "policy_version": policy_version, "item_version": item_version}
    trust = signers[Signer.SCORE_TRUST].attest(
        Stage.SCORE_TRUST, subject, trust_claim, claim=trust_claim, parents=[context], issued_at=issued_at
    )
    votes = [
        signers[Signer.AGENT_VOTE].attest(
            Stage.VOTE,
            subject,
            {"agent": agent, "vote": "approve"},
            claim={"agent": agent, "vote": "approve", "veto": False},
            parents=[context, trust],
            issued_at=issued_at,
        )
        for agent in agents
    ]
    tally = signers[Signer.AGENT_VOTE].attest(
        Stage.TALLY,
        subject,
        {"decision": decision},
        claim={"decision": decision},
        parents=[trust, *sorted(votes, key=lambda v: v.digest)],
        issued_at=issued_at,
    )
    return [context, trust, *votes, tally]
