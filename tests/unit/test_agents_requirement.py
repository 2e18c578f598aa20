"""The trust rules' requirement on the review panel: reading ScoreTrust's rule outcome (failing closed on
anything malformed), convening the vault's panel plus the rule quorum's agents (never for a request the
rules refused), and who may vote."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from pydantic import ValidationError

from reliquary.agents.memory import InMemoryMemoryStore, MemoryBox
from reliquary.agents.policy import DEFAULT_QUORUM, QuorumPolicy
from reliquary.agents.registry import AGENTS
from reliquary.agents.requirement import (
    MAX_REASON,
    RuleQuorum,
    RuleVerdict,
    approvers_required,
    may_vote,
    panel_to_poll,
    read_rules,
)
from reliquary.agents.service import AgentVoteService
from reliquary.crypto.pseudonym import Pseudonyms
from reliquary.errors import InvalidRequestError, NotFoundError, RulesRefusedError
from reliquary.trust.rules._engine import MatchedRule, Quorum, RuleOutcome

NOON = 1_795_608_000  # 2026-11-25T12:00:00Z
BUILTINS = ("strict", "permissive", "neutral", "watchdog")
RESTRICTED: dict[str, Any] = {
    "effect": "require_quorum",
    "reason": "restricted item",
    "matched": [{"id": "quorum-for-restricted", "effect": "quorum", "reason": "restricted item"}],
    "policy_version": "0" * 64,
    "quorum": {"panel": ["neutral", "permissive", "strict"], "threshold": 2},
}


def _rules(**changes: Any) -> dict[str, Any]:
    rules = copy.deepcopy(RESTRICTED)
    rules.update(changes)
    return {k: v for k, v in rules.items() if v is not None}


def _quorum(panel: Any, threshold: Any) -> dict[str, Any]:
    return _rules(quorum={"panel": panel, "threshold": threshold})


# --- reading the rule outcome --------------------------------------------------------------------------
def test_what_score_trust_emits_is_read() -> None:
    outcome = RuleOutcome(
        "require_quorum",
        "restricted item",
        (MatchedRule("quorum-for-restricted", "quorum", "restricted item"),),
        "0" * 64,
        quorum=Quorum(("neutral", "permissive", "strict"), 2),
    )
    verdict = read_rules(outcome.to_dict(), registered=AGENTS)
    assert verdict == RuleVerdict(
        "require_quorum", "restricted item", RuleQuorum(("neutral", "permissive", "strict"), 2)
    )
    assert not verdict.refused
    assert verdict.quorum is not None
    assert verdict.quorum.to_dict() == {"panel": ["neutral", "permissive", "strict"], "threshold": 2}


@pytest.mark.parametrize(
    ("effect", "refused"), [("deny", True), ("step_up", False), ("allow", False), ("require_quorum", False)]
)
def test_effects(effect: str, refused: bool) -> None:
    verdict = read_rules(_rules(effect=effect), registered=AGENTS)
    assert verdict.effect == effect
    assert verdict.refused is refused
    assert verdict.steps_up is (effect == "step_up")  # the agents vote, then people must approve too
    assert (verdict.quorum is not None) is (effect == "require_quorum")  # a quorum only with require_quorum


def test_the_reason_is_bounded_and_optional() -> None:
    assert read_rules(_rules(effect="deny", reason="x" * 1000), registered=AGENTS).reason == "x" * MAX_REASON
    assert (
        read_rules(_rules(effect="deny", reason=None), registered=AGENTS).describe() == "rule outcome: deny"
    )
    assert read_rules(_rules(effect="deny", reason=7), registered=AGENTS).reason == ""


MALFORMED: dict[str, dict[str, Any]] = {
    "no effect": _rules(effect=None),
    "no rule outcome at all": {},
    "unknown effect": _rules(effect="maybe"),
    "effect of the wrong type": _rules(effect=["allow"]),
    "require_quorum without a quorum": _rules(quorum=None),
    "quorum not an object": _rules(quorum=["strict"]),
    "panel not a list": _quorum("strict", 1),
    "panel of non-strings": _quorum(["strict", 3], 1),
    "empty panel": _quorum([], 0),
    "threshold zero": _quorum(["strict", "permissive"], 0),
    "threshold negative": _quorum(["strict", "permissive"], -1),
    "threshold above the panel": _quorum(["strict", "permissive"], 3),
    "threshold a string": _quorum(["strict", "permissive"], "2"),
    "threshold a float": _quorum(["strict", "permissive"], 1.5),
    "threshold a bool": _quorum(["strict", "permissive"], True),
    "threshold missing": _rules(quorum={"panel": ["strict"]}),
    "an agent twice": _quorum(["strict", "strict"], 1),
    "an unregistered agent": _quorum(["strict", "oracle"], 1),
    "a malformed agent name": _quorum(["strict", "Oracle!"], 1),
    "a panel too large": _quorum([f"agent-{i}" for i in range(17)], 1),
}


@pytest.mark.parametrize("case", MALFORMED, ids=list(MALFORMED))
def test_malformed_rule_outcomes_are_refused(case: str) -> None:
    with pytest.raises(InvalidRequestError) as raised:
        read_rules(MALFORMED[case], registered=AGENTS)
    assert type(raised.value) is InvalidRequestError


def test_unregistered_agents_are_named() -> None:
    with pytest.raises(InvalidRequestError) as raised:
        read_rules(_quorum(["strict", "oracle", "sibyl"], 1), registered=AGENTS)
    assert raised.value.details == {"agents": ["oracle", "sibyl"]}


def test_a_quorum_on_another_effect_is_ignored() -> None:
    # ScoreTrust attaches a quorum only to require_quorum; anything else never widens the panel.
    assert read_rules(_rules(effect="allow"), registered=AGENTS).quorum is None
    assert read_rules(_quorum(["oracle"], 5) | {"effect": "deny"}, registered=AGENTS).quorum is None


def test_verdicts_are_consistent_by_construction() -> None:
    with pytest.raises(InvalidRequestError):
        RuleVerdict("require_quorum")
    with pytest.raises(InvalidRequestError):
        RuleVerdict("allow", quorum=RuleQuorum(("strict",), 1))


# --- the panel to poll and who may vote ------------------------------------------------------------
@pytest.mark.parametrize(
    ("panel", "rule_panel", "expected"),
    [
        (BUILTINS, ("neutral", "permissive", "strict"), BUILTINS),
        (
            ("strict", "watchdog"),
            ("neutral", "permissive", "strict"),
            ("strict", "watchdog", "neutral", "permissive"),
        ),
        (("watchdog",), ("permissive", "strict"), ("watchdog", "permissive", "strict")),
        (("neutral", "strict"), ("strict",), ("neutral", "strict")),
    ],
)
def test_panel_to_poll_is_the_vault_panel_then_the_rules_others(
    panel: tuple[str, ...], rule_panel: tuple[str, ...], expected: tuple[str, ...]
) -> None:
    policy = QuorumPolicy(panel=panel, approvals=1, veto_holders=())
    assert panel_to_poll(policy, RuleQuorum(rule_panel, 1)) == expected
    assert panel_to_poll(policy, None) == panel


def test_may_vote() -> None:
    policy = QuorumPolicy(panel=("strict", "watchdog"), approvals=1)
    quorum = RuleQuorum(("neutral", "strict"), 1)
    assert may_vote("watchdog", policy, quorum)
    assert may_vote("neutral", policy, quorum)
    assert not may_vote("neutral", policy, None)
    assert not may_vote("permissive", policy, quorum)


# --- the service: convene and vote ------------------------------------------------------------------
class _Policies:
    def __init__(self) -> None:
        self.rows: dict[tuple[str, str], QuorumPolicy] = {}

    def get(self, tenant_id: str, vault_id: str) -> QuorumPolicy | None:
        return self.rows.get((tenant_id, vault_id))

    def put(self, tenant_id: str, vault_id: str, policy: QuorumPolicy) -> None:
        self.rows[(tenant_id, vault_id)] = policy


@pytest.fixture
def service() -> AgentVoteService:
    box = MemoryBox(bytes(32), Pseudonyms(bytes(32)))
    return AgentVoteService(InMemoryMemoryStore(), box, _Policies(), clock=lambda: NOON)


SMALL = QuorumPolicy(panel=("strict", "watchdog"), approvals=2, veto_holders=("watchdog",))


def test_convene_adds_the_rules_agents_after_the_vault_panel(service: AgentVoteService) -> None:
    service.set_policy("acme", "vault-a", SMALL)
    assert service.convene("acme", "vault-a", rules=RESTRICTED) == {
        "panel": ["strict", "watchdog", "neutral", "permissive"],
        "policy": {
            "v": 1,
            "panel": ["strict", "watchdog"],
            "approvals": 2,
            "veto_holders": ["watchdog"],
            "min_confidence": 0.5,
            "abstentions": "deny",
            "approvers": 0,
            "approval_timeout_seconds": 600,
        },
        "requirement": {"panel": ["neutral", "permissive", "strict"], "threshold": 2},
    }


def test_convene_without_a_requirement_is_the_vault_panel(service: AgentVoteService) -> None:
    default = {"panel": list(BUILTINS), "policy": DEFAULT_QUORUM.model_dump(mode="json"), "requirement": None}
    assert service.convene("acme", "vault-a", rules=None) == default  # no trust result in the request
    assert service.convene("acme", "vault-a", rules=_rules(effect="allow")) == default
    convened = service.convene("acme", "vault-a", rules=RESTRICTED)  # the default panel holds the rules'
    assert convened["panel"] == list(BUILTINS)
    assert convened["requirement"] == {"panel": ["neutral", "permissive", "strict"], "threshold": 2}


@pytest.mark.parametrize("effect", ["deny"])
def test_convene_refuses_a_request_the_rules_refused(service: AgentVoteService, effect: str) -> None:
    with pytest.raises(RulesRefusedError) as raised:
        service.convene("acme", "vault-a", rules=_rules(effect=effect, reason="trust score too low"))
    assert raised.value.code == "rules_refused"
    assert raised.value.details == {"effect": effect}
    assert not raised.value.retryable


@pytest.mark.parametrize(
    "case", ["no effect", "unknown effect", "threshold above the panel", "an unregistered agent"]
)
def test_convene_refuses_a_malformed_requirement(service: AgentVoteService, case: str) -> None:
    with pytest.raises(InvalidRequestError):
        service.convene("acme", "vault-a", rules=MALFORMED[case])


def _vote(service: AgentVoteService, agent: str, rules: dict[str, Any] | None) -> dict[str, Any]:
    return service.vote(
        agent,
        request_id="access-1",
        tenant_id="acme",
        vault_id="vault-a",
        item_id="item-a",
        subject="alice",
        device="laptop-1",
        region="eu-west-1",
        context=None,
        trust=None,
        purpose="audit",
        sensitivity="restricted",
        rules=rules,
    )


def test_an_agent_only_on_the_rule_quorum_may_vote(service: AgentVoteService) -> None:
    service.set_policy("acme", "vault-a", SMALL)
    vote = _vote(service, "neutral", RESTRICTED)
    assert vote["agent"] == "neutral"
    assert vote["vote"] == "abstain"  # no evidence in this request
    assert _vote(service, "neutral", RESTRICTED) == vote  # still idempotent on (request, agent)
    with pytest.raises(InvalidRequestError):  # the same agent without the rules' requirement
        _vote(service, "neutral", _rules(effect="allow"))
    with pytest.raises(InvalidRequestError):
        _vote(service, "neutral", None)


def test_an_agent_on_neither_panel_may_not_vote(service: AgentVoteService) -> None:
    service.set_policy("acme", "vault-a", QuorumPolicy(panel=("strict",), approvals=1, veto_holders=()))
    with pytest.raises(InvalidRequestError) as raised:
        _vote(service, "watchdog", RESTRICTED)
    assert "neither" in raised.value.message
    with pytest.raises(NotFoundError):
        _vote(service, "oracle", RESTRICTED)
    with pytest.raises(InvalidRequestError):  # a malformed requirement is refused, not ignored
        _vote(service, "strict", MALFORMED["threshold above the panel"])
    assert _vote(service, "strict", RESTRICTED)["agent"] == "strict"


def test_the_service_tally_reads_the_rules(service: AgentVoteService) -> None:
    service.set_policy("acme", "vault-a", SMALL)
    votes = [
        {"agent": "strict", "vote": "approve", "confidence": 0.9},
        {"agent": "watchdog", "vote": "approve", "confidence": 0.8},
        {"agent": "neutral", "vote": "deny", "confidence": 0.7},
    ]
    result = service.tally("acme", "vault-a", votes, rules=RESTRICTED).to_dict()
    assert result["decision"] == "deny"
    assert result["reasons"][0] == "rule quorum: 1 of neutral, permissive, strict approved (2 required)"
    assert result["requirement"] == {
        "panel": ["neutral", "permissive", "strict"],
        "threshold": 2,
        "approvals": ["strict"],
    }
    refused = service.tally(
        "acme", "vault-a", votes[:2], rules=_rules(effect="deny", reason="unknown device")
    )
    assert refused.decision == "deny"
    assert refused.reasons[0].startswith("rule outcome: deny (unknown device)")
    # A step-up is the agents' decision like allow (the people come after the tally).
    stepped = service.tally("acme", "vault-a", votes[:2], rules=_rules(effect="step_up"))
    assert stepped.decision == "approve"
    assert service.tally("acme", "vault-a", votes[:2], rules=None).decision == "approve"
    with pytest.raises(InvalidRequestError):
        service.tally("acme", "vault-a", votes[:2], rules=MALFORMED["unknown effect"])


@pytest.mark.parametrize(
    ("approvers", "effect", "required"),
    [(0, "allow", 0), (0, "step_up", 1), (3, "step_up", 3), (2, "allow", 2), (2, "require_quorum", 2)],
)
def test_approvers_required(approvers: int, effect: str, required: int) -> None:
    policy = QuorumPolicy(approvers=approvers)
    verdict = read_rules(_rules(effect=effect), registered=AGENTS)
    assert approvers_required(policy, verdict) == required
    assert approvers_required(policy, None) == approvers


@pytest.mark.parametrize(
    "changes",
    [
        {"approvers": 9},
        {"approvers": -1},
        {"approvers": True},
        {"approval_timeout_seconds": 59},
        {"approval_timeout_seconds": 901},
        {"approval_timeout_seconds": "600"},
    ],
)
def test_the_approver_settings_are_bounded(changes: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        QuorumPolicy.model_validate({**QuorumPolicy().model_dump(), **changes})
