"""The tally: the panel's ballots under the vault's quorum policy and the trust rules' verdict, into approve
or deny with its reasons (which votes counted, which veto decided, which condition failed). Approves only
when the vault's policy approves and, when the rules require a quorum, at least its threshold of the rule
quorum's panel approved at the policy's minimum confidence; never when the rules refused the request.
Pure and deterministic; fails closed (a missing vote is an abstention, a vote from an agent on neither
panel is an error, no quorum is a deny)."""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from reliquary.agents.policy import QuorumPolicy
from reliquary.agents.requirement import RuleQuorum, RuleVerdict
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
    """``approvals``, ``denials``, ``abstentions``, ``required`` and ``vetoed_by`` are the vault policy's
    count (its panel only); ``requirement`` is the rule quorum, when the rules required one, and
    ``requirement_approvals`` the approvals of its panel that counted toward it."""

    decision: Literal["approve", "deny"]
    reasons: tuple[str, ...]
    approvals: tuple[str, ...]
    denials: tuple[str, ...]
    abstentions: tuple[str, ...]
    required: int
    vetoed_by: tuple[str, ...] = field(default=())
    requirement: RuleQuorum | None = None
    requirement_approvals: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        requirement: dict[str, Any] | None = None
        if self.requirement is not None:
            requirement = {**self.requirement.to_dict(), "approvals": list(self.requirement_approvals)}
        return {
            "decision": self.decision,
            "reasons": list(self.reasons),
            "approvals": list(self.approvals),
            "denials": list(self.denials),
            "abstentions": list(self.abstentions),
            "required": self.required,
            "vetoed_by": list(self.vetoed_by),
            "requirement": requirement,
        }


def _by_agent(panel: Collection[str], ballots: Sequence[Ballot]) -> dict[str, Ballot]:
    found: dict[str, Ballot] = {}
    for ballot in ballots:
        if ballot.agent not in panel:
            raise InvalidRequestError("a vote from an agent outside the panel", agent=ballot.agent)
        if ballot.agent in found:
            raise InvalidRequestError("two votes from one agent", agent=ballot.agent)
        found[ballot.agent] = ballot
    return found


def tally(policy: QuorumPolicy, ballots: Sequence[Ballot], rules: RuleVerdict | None = None) -> TallyResult:
    """The decision on ``ballots`` under ``policy`` and (when given) the rules' verdict; ``rules=None`` is
    the vault policy alone. Votes may come from the vault's panel and the rule quorum's panel."""
    quorum = rules.quorum if rules is not None else None
    cast = _by_agent({*policy.panel, *(quorum.panel if quorum is not None else ())}, ballots)
    result = _policy_tally(policy, cast)
    if rules is not None and rules.refused:
        # Defense in depth: the flow never convenes a panel for a refused request, and no tally approves one.
        reason = f"{rules.describe()}: the panel cannot approve what the rules refused"
        return replace(result, decision="deny", reasons=(reason, *result.reasons))
    if quorum is None:
        return result
    return _with_rule_quorum(policy, quorum, cast, result)


def _with_rule_quorum(
    policy: QuorumPolicy, quorum: RuleQuorum, cast: Mapping[str, Ballot], result: TallyResult
) -> TallyResult:
    counted: list[str] = []
    details: list[str] = []
    for agent in quorum.panel:  # the rules' order: the reasons read the same for the same ballots
        ballot = cast.get(agent)
        if ballot is not None and ballot.vote == "approve" and ballot.confidence >= policy.min_confidence:
            counted.append(agent)
        elif agent in policy.panel:
            continue  # the policy's count explained this agent's vote already
        elif ballot is None:
            details.append(f"{agent}: no vote (no approval toward the rule quorum)")
        elif ballot.vote != "abstain" and ballot.confidence < policy.min_confidence:
            details.append(
                f"{agent}: {ballot.vote} at confidence {ballot.confidence:g} is below"
                f" {policy.min_confidence:g} (not counted toward the rule quorum)"
            )
    met = len(counted) >= quorum.threshold
    line = f"rule quorum: {len(counted)} of {', '.join(quorum.panel)} approved ({quorum.threshold} required)"
    first, *rest = result.reasons
    # The first reason is the deciding one: the rule quorum's line leads when it alone fails.
    head = (line, first) if result.decision == "approve" and not met else (first, line)
    return replace(
        result,
        decision="approve" if result.decision == "approve" and met else "deny",
        reasons=(*head, *rest, *details),
        requirement=quorum,
        requirement_approvals=tuple(counted),
    )


def _policy_tally(policy: QuorumPolicy, cast: Mapping[str, Ballot]) -> TallyResult:
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
