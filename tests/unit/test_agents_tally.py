"""The tally under a vault's quorum policy: k of n, vetoes, confidence, what abstentions mean; invalid
policies refused when configured."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from reliquary.agents.policy import DEFAULT_QUORUM, QuorumPolicy
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
