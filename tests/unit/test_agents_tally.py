"""The tally under a vault's quorum policy: k of n, vetoes, confidence, what abstentions mean; invalid
policies refused when configured. With the trust rules' verdict: a required rule quorum must hold as well
(votes from agents only on it count toward it alone), and a refusal by the rules denies whatever the votes."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from reliquary.agents.policy import DEFAULT_QUORUM, QuorumPolicy
from reliquary.agents.requirement import RuleQuorum, RuleVerdict
from reliquary.agents.tally import Ballot, tally
from reliquary.errors import InvalidRequestError


def _ballots(**votes: tuple[str, float] | tuple[str, float, bool]) -> list[Ballot]:
    return [Ballot(agent, *vote) for agent, vote in votes.items()]


CASES: dict[str, tuple[dict[str, Any], list[Ballot], str, str]] = {
    "all approve": (
        {},
        _ballots(
            strict=("approve", 0.9),
            permissive=("approve", 0.9),
            neutral=("approve", 0.7),
            watchdog=("approve", 0.8),
        ),
        "approve",
        "4 of 4 approved (3 required)",
    ),
    "k approvals": (
        {},
        _ballots(
            strict=("deny", 0.9),
            permissive=("approve", 0.9),
            neutral=("approve", 0.7),
            watchdog=("approve", 0.8),
        ),
        "approve",
        "3 of 4 approved",
    ),
    "k-1 approvals deny": (
        {},
        _ballots(
            strict=("deny", 0.9),
            permissive=("approve", 0.9),
            neutral=("deny", 0.7),
            watchdog=("approve", 0.8),
        ),
        "deny",
        "only 2 approval(s); 3 required",
    ),
    "a veto beats a majority": (
        {},
        _ballots(
            strict=("approve", 0.9),
            permissive=("approve", 0.9),
            neutral=("approve", 0.7),
            watchdog=("deny", 0.9, True),
        ),
        "deny",
        "vetoed by watchdog",
    ),
    "a veto from a non-holder is just a deny": (
        {"veto_holders": ()},
        _ballots(
            strict=("approve", 0.9),
            permissive=("approve", 0.9),
            neutral=("approve", 0.7),
            watchdog=("deny", 0.9, True),
        ),
        "approve",
        "3 of 4 approved",
    ),
    "a low-confidence approval does not count": (
        {},
        _ballots(
            strict=("approve", 0.9),
            permissive=("approve", 0.2),
            neutral=("approve", 0.7),
            watchdog=("approve", 0.4),
        ),
        "deny",
        "only 2 approval(s)",
    ),
    "a missing vote is an abstention": (
        {},
        _ballots(strict=("approve", 0.9), permissive=("approve", 0.9)),
        "deny",
        "only 2 approval(s)",
    ),
    "abstentions fail": (
        {"abstentions": "fail"},
        _ballots(
            strict=("approve", 0.9),
            permissive=("approve", 0.9),
            neutral=("abstain", 0.9),
            watchdog=("approve", 0.9),
        ),
        "deny",
        "denies on any abstention (neutral)",
    ),
}


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_tally(case: str) -> None:
    changes, ballots, decision, reason = CASES[case]
    policy = DEFAULT_QUORUM.model_copy(update=changes) if changes else DEFAULT_QUORUM
    result = tally(policy, ballots)
    assert result.decision == decision
    assert any(reason.split(" (")[0] in r for r in result.reasons), result.reasons
    assert result.to_dict()["decision"] == decision
    assert tally(policy, list(reversed(ballots))) == result  # order of arrival does not matter


def test_excluded_abstentions_scale_the_requirement() -> None:
    policy = QuorumPolicy(abstentions="exclude")  # 3 of 4
    two_voting = _ballots(
        strict=("approve", 0.9), permissive=("approve", 0.9), neutral=("abstain", 1), watchdog=("abstain", 1)
    )
    result = tally(policy, two_voting)
    assert (result.required, result.decision) == (2, "approve")  # ceil(3 * 2 / 4) = 2
    assert tally(QuorumPolicy(), two_voting).decision == "deny"  # abstentions as missing approvals
    three_voting = _ballots(
        strict=("approve", 0.9), permissive=("approve", 0.9), neutral=("abstain", 1), watchdog=("deny", 0.9)
    )
    assert tally(policy, three_voting).required == 3  # ceil(3 * 3 / 4)


@pytest.mark.parametrize(
    "ballots",
    [
        _ballots(stranger=("approve", 1.0)),
        [Ballot("strict", "approve", 0.9), Ballot("strict", "deny", 0.9)],
    ],
)
def test_votes_from_outside_the_panel_or_twice_are_errors(ballots: list[Ballot]) -> None:
    with pytest.raises(InvalidRequestError):
        tally(DEFAULT_QUORUM, ballots)


@pytest.mark.parametrize(
    "fields",
    [
        {"vote": "maybe", "confidence": 0.5},
        {"vote": "approve", "confidence": 1.5},
        {"vote": "approve", "confidence": 0.5, "veto": True},
    ],
)
def test_malformed_ballots_are_errors(fields: dict[str, Any]) -> None:
    with pytest.raises(InvalidRequestError):
        Ballot("strict", **fields)


@pytest.mark.parametrize(
    "fields",
    [
        {"panel": ()},
        {"panel": ("strict", "strict")},
        {"panel": ("strict",), "approvals": 2, "veto_holders": ()},
        {"veto_holders": ("outsider",)},
        {"min_confidence": 1.5},
        {"abstentions": "ignore"},
        {"panel": ("Bad Name",), "approvals": 1, "veto_holders": ()},
        {"quorum": 3},
    ],
)
def test_invalid_policies_are_refused_when_configured(fields: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        QuorumPolicy(**fields)


# --- the rules' verdict: a required quorum on top of the vault policy, and refusals -------------------
RESTRICTED = RuleVerdict(
    "require_quorum", "restricted item", RuleQuorum(("strict", "permissive", "neutral"), threshold=2)
)
SMALL_VAULT = QuorumPolicy(panel=("strict", "watchdog"), approvals=2, veto_holders=("watchdog",))
ALL_APPROVE = _ballots(
    strict=("approve", 0.9), permissive=("approve", 0.9), neutral=("approve", 0.7), watchdog=("approve", 0.8)
)

# name -> (policy, ballots, decision, the first reason, the rule quorum's approvals)
RULE_CASES: dict[str, tuple[QuorumPolicy, list[Ballot], str, str, list[str]]] = {
    "both hold": (
        DEFAULT_QUORUM,
        ALL_APPROVE,
        "approve",
        "4 of 4 approved (3 required)",
        ["strict", "permissive", "neutral"],
    ),
    "the policy holds, the rule quorum does not": (
        QuorumPolicy(panel=("strict", "permissive", "neutral", "watchdog"), approvals=2),
        _ballots(
            strict=("approve", 0.9),
            permissive=("deny", 0.9),
            neutral=("abstain", 0.7),
            watchdog=("approve", 0.8),
        ),
        "deny",
        "rule quorum: 1 of strict, permissive, neutral approved (2 required)",
        ["strict"],
    ),
    "the rule quorum holds, the policy does not": (
        DEFAULT_QUORUM,
        _ballots(
            strict=("approve", 0.9),
            permissive=("approve", 0.9),
            neutral=("deny", 0.7),
            watchdog=("deny", 0.8),
        ),
        "deny",
        "only 2 approval(s); 3 required",
        ["strict", "permissive"],
    ),
    "a veto still decides": (
        DEFAULT_QUORUM,
        [*ALL_APPROVE[:3], Ballot("watchdog", "deny", 0.95, veto=True)],
        "deny",
        "vetoed by watchdog",
        ["strict", "permissive", "neutral"],
    ),
    "votes from agents only on the rule quorum count toward it": (
        SMALL_VAULT,
        ALL_APPROVE,
        "approve",
        "2 of 2 approved (2 required)",
        ["strict", "permissive", "neutral"],
    ),
    "... and only toward it": (
        SMALL_VAULT,
        _ballots(
            strict=("approve", 0.9),
            permissive=("approve", 0.9),
            neutral=("approve", 0.7),
            watchdog=("deny", 0.8),
        ),
        "deny",
        "only 1 approval(s); 2 required",
        ["strict", "permissive", "neutral"],
    ),
    "the policy's minimum confidence applies to the rule quorum": (
        SMALL_VAULT,
        _ballots(
            strict=("approve", 0.9),
            permissive=("approve", 0.4),
            neutral=("abstain", 0.9),
            watchdog=("approve", 0.8),
        ),
        "deny",
        "rule quorum: 1 of strict, permissive, neutral approved (2 required)",
        ["strict"],
    ),
    "a missing vote from the rule quorum is no approval": (
        SMALL_VAULT,
        _ballots(strict=("approve", 0.9), watchdog=("approve", 0.8), neutral=("approve", 0.7)),
        "approve",
        "2 of 2 approved (2 required)",
        ["strict", "neutral"],
    ),
}


@pytest.mark.parametrize("case", RULE_CASES, ids=list(RULE_CASES))
def test_tally_with_a_rule_quorum(case: str) -> None:
    policy, ballots, decision, first, counted = RULE_CASES[case]
    result = tally(policy, ballots, RESTRICTED)
    assert result.decision == decision
    assert result.reasons[0] == first, result.reasons
    rule_line = f"rule quorum: {len(counted)} of strict, permissive, neutral approved (2 required)"
    assert rule_line in result.reasons
    assert result.to_dict()["requirement"] == {
        "panel": ["strict", "permissive", "neutral"],
        "threshold": 2,
        "approvals": counted,
    }
    assert tally(policy, list(reversed(ballots)), RESTRICTED) == result  # order of arrival does not matter
    # The vault policy's own count is unchanged by the rule quorum.
    alone = tally(policy, [b for b in ballots if b.agent in policy.panel])
    assert (result.approvals, result.denials, result.abstentions, result.required, result.vetoed_by) == (
        alone.approvals,
        alone.denials,
        alone.abstentions,
        alone.required,
        alone.vetoed_by,
    )
    assert result.decision == ("approve" if alone.decision == "approve" and len(counted) >= 2 else "deny")


def test_rule_quorum_reasons_explain_agents_only_on_it() -> None:
    ballots = _ballots(strict=("approve", 0.9), watchdog=("approve", 0.8), permissive=("approve", 0.4))
    reasons = tally(SMALL_VAULT, ballots, RESTRICTED).reasons
    assert (
        "permissive: approve at confidence 0.4 is below 0.5 (not counted toward the rule quorum)" in reasons
    )
    assert "neutral: no vote (no approval toward the rule quorum)" in reasons
    assert not any(r.startswith("strict:") for r in reasons)


def test_a_stricter_minimum_confidence_applies_to_both() -> None:
    policy = DEFAULT_QUORUM.model_copy(update={"min_confidence": 0.8, "approvals": 2})
    result = tally(policy, ALL_APPROVE, RESTRICTED)  # neutral approves at 0.7 only
    assert (result.decision, result.requirement_approvals) == ("approve", ("strict", "permissive"))
    result = tally(policy.model_copy(update={"min_confidence": 0.95}), ALL_APPROVE, RESTRICTED)
    assert result.decision == "deny"
    assert result.reasons[0] == "only 0 approval(s); 2 required"
    assert result.reasons[1] == "rule quorum: 0 of strict, permissive, neutral approved (2 required)"


@pytest.mark.parametrize(
    ("verdict", "reason"),
    [
        (RuleVerdict("deny", "trust score too low"), "rule outcome: deny (trust score too low)"),
        (RuleVerdict("deny"), "rule outcome: deny"),
    ],
)
def test_a_refusal_by_the_rules_denies_whatever_the_votes(verdict: RuleVerdict, reason: str) -> None:
    result = tally(DEFAULT_QUORUM, ALL_APPROVE, verdict)
    assert result.decision == "deny"
    assert result.reasons[0] == f"{reason}: the panel cannot approve what the rules refused"
    assert result.to_dict()["requirement"] is None
    assert result.approvals == ("strict", "permissive", "neutral", "watchdog")  # recorded, not counted


def test_allow_and_no_verdict_leave_the_policy_alone() -> None:
    alone = tally(DEFAULT_QUORUM, ALL_APPROVE)
    assert tally(DEFAULT_QUORUM, ALL_APPROVE, RuleVerdict("allow", "high trust")) == alone
    assert alone.to_dict() == {
        "decision": "approve",
        "reasons": ["4 of 4 approved (3 required)"],
        "approvals": ["strict", "permissive", "neutral", "watchdog"],
        "denials": [],
        "abstentions": [],
        "required": 3,
        "vetoed_by": [],
        "requirement": None,
    }


@pytest.mark.parametrize(
    "ballots",
    [
        [*ALL_APPROVE, Ballot("stranger", "approve", 1.0)],
        [*ALL_APPROVE, Ballot("neutral", "deny", 0.9)],
    ],
)
def test_votes_from_neither_panel_or_twice_are_errors_with_a_rule_quorum(ballots: list[Ballot]) -> None:
    with pytest.raises(InvalidRequestError):
        tally(SMALL_VAULT, ballots, RESTRICTED)


def test_without_the_rule_quorum_its_agents_are_strangers() -> None:
    with pytest.raises(InvalidRequestError):
        tally(SMALL_VAULT, ALL_APPROVE)
    with pytest.raises(InvalidRequestError):
        tally(SMALL_VAULT, ALL_APPROVE, RuleVerdict("allow"))
