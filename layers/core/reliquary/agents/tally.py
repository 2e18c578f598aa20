"""The tally: the panel's ballots under the vault's quorum policy, into approve or deny with its reasons
(which votes counted, which veto decided). Pure and deterministic; fails closed (a missing vote is an
abstention, a vote from outside the panel is an error, no quorum is a deny)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from reliquary.agents.policy import QuorumPolicy
from reliquary.errors import InvalidRequestError

VoteValue = Literal["approve", "deny", "abstain"]


@dataclass(frozen=True, slots=True)
class Ballot:
    agent: str
    vote: VoteValue
    confidence: float
    veto: bool = False

    def __post_init__(self) -> None:
        if self.vote not in ("approve", "deny", "abstain"):
            raise InvalidRequestError("a vote is approve, deny or abstain", agent=self.agent)
        if not 0.0 <= self.confidence <= 1.0:
            raise InvalidRequestError("a vote's confidence is in [0, 1]", agent=self.agent)
        if self.veto and self.vote != "deny":
            raise InvalidRequestError("only a deny can carry a veto", agent=self.agent)


@dataclass(frozen=True, slots=True)
class TallyResult:
    decision: Literal["approve", "deny"]
    reasons: tuple[str, ...]
    approvals: tuple[str, ...]
    denials: tuple[str, ...]
    abstentions: tuple[str, ...]
    required: int
    vetoed_by: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        return {
            "decision": self.decision,
            "reasons": list(self.reasons),
            "approvals": list(self.approvals),
            "denials": list(self.denials),
            "abstentions": list(self.abstentions),
            "required": self.required,
            "vetoed_by": list(self.vetoed_by),
        }


def _by_agent(policy: QuorumPolicy, ballots: Sequence[Ballot]) -> dict[str, Ballot]:
    found: dict[str, Ballot] = {}
    for ballot in ballots:
        if ballot.agent not in policy.panel:
            raise InvalidRequestError("a vote from an agent outside the panel", agent=ballot.agent)
        if ballot.agent in found:
            raise InvalidRequestError("two votes from one agent", agent=ballot.agent)
        found[ballot.agent] = ballot
    return found


def tally(policy: QuorumPolicy, ballots: Sequence[Ballot]) -> TallyResult:
    cast = _by_agent(policy, ballots)
    reasons: list[str] = []
    approvals: list[str] = []
    denials: list[str] = []
    abstentions: list[str] = []
    vetoes: list[str] = []
    for agent in policy.panel:  # panel order: the reasons read the same for the same ballots
        ballot = cast.get(agent)
        if ballot is None:
            abstentions.append(agent)
            reasons.append(f"{agent}: no vote (counted as an abstention)")
        elif ballot.vote == "abstain":
            abstentions.append(agent)
        elif ballot.confidence < policy.min_confidence:
            abstentions.append(agent)
            reasons.append(
                f"{agent}: {ballot.vote} at confidence {ballot.confidence:g} is below"
                f" {policy.min_confidence:g} (counted as an abstention)"
            )
        elif ballot.vote == "approve":
            approvals.append(agent)
        else:
            denials.append(agent)
            if ballot.veto and agent in policy.veto_holders:
                vetoes.append(agent)

    required = policy.approvals
    if policy.abstentions == "exclude" and abstentions:
        voting = len(policy.panel) - len(abstentions)
        required = max(1, math.ceil(policy.approvals * voting / len(policy.panel)))
    counts = (tuple(approvals), tuple(denials), tuple(abstentions), required)

    if vetoes:
        reasons.insert(0, f"vetoed by {', '.join(vetoes)}")
        return TallyResult("deny", tuple(reasons), *counts, vetoed_by=tuple(vetoes))
    if policy.abstentions == "fail" and abstentions:
        reasons.insert(0, f"the policy denies on any abstention ({', '.join(abstentions)})")
        return TallyResult("deny", tuple(reasons), *counts)
    if len(approvals) >= required:
        reasons.insert(0, f"{len(approvals)} of {len(policy.panel)} approved ({required} required)")
        return TallyResult("approve", tuple(reasons), *counts)
    reasons.insert(0, f"only {len(approvals)} approval(s); {required} required")
    return TallyResult("deny", tuple(reasons), *counts)
