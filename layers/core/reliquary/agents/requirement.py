"""What the trust rules ask of the review panel, read from ScoreTrust's rule outcome (the flow's
``trust.rules``): whether they refused the request already (``deny``: no panel is convened and no tally
approves), whether they ask for people's approval on top of the agents' (``step_up``: at least one of the
vault's approvers, ``approvers_required``), and, for ``require_quorum``, the rule quorum (``threshold``
approvals out of ``panel``) that must hold on top of the vault's own quorum policy.

Read once at the boundary and failing closed: an unknown or missing effect, or a rule quorum that names an
unregistered agent, an agent twice, or a threshold its panel cannot meet, is an ``InvalidRequestError``.
Pure: the registered agent names come in as an argument."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal, get_args

from reliquary.agents.model import AGENT_NAME
from reliquary.agents.policy import MAX_PANEL, QuorumPolicy
from reliquary.errors import InvalidRequestError

RuleEffect = Literal["deny", "step_up", "require_quorum", "allow"]
RULE_EFFECTS: Final[tuple[RuleEffect, ...]] = get_args(RuleEffect)
REFUSING: Final = frozenset({"deny"})  # effects that end the request before any agent votes
MAX_REASON: Final = 200  # the rules' reason, as quoted in a tally's reasons


@dataclass(frozen=True, slots=True)
class RuleQuorum:
    """``threshold`` approvals out of ``panel`` (distinct agent names, in the rules' order)."""

    panel: tuple[str, ...]
    threshold: int

    def __post_init__(self) -> None:
        if not 1 <= len(self.panel) <= MAX_PANEL:
            raise InvalidRequestError(f"a rule quorum's panel has 1 to {MAX_PANEL} agents")
        if not all(AGENT_NAME.fullmatch(name) for name in self.panel):
            raise InvalidRequestError("a rule quorum's panel names agents by their registered names")
        if len(set(self.panel)) != len(self.panel):
            raise InvalidRequestError("a rule quorum's panel names an agent twice", panel=list(self.panel))
        if not 1 <= self.threshold <= len(self.panel):
            raise InvalidRequestError(
                "a rule quorum's threshold is between 1 and the size of its panel",
                threshold=self.threshold,
                panel=list(self.panel),
            )

    def to_dict(self) -> dict[str, Any]:
        return {"panel": list(self.panel), "threshold": self.threshold}


@dataclass(frozen=True, slots=True)
class RuleVerdict:
    """The rules' effect, their reason, and the rule quorum (present exactly for ``require_quorum``)."""

    effect: RuleEffect
    reason: str = ""
    quorum: RuleQuorum | None = None

    def __post_init__(self) -> None:
        if self.effect not in RULE_EFFECTS:
            raise InvalidRequestError("the trust rules' effect is deny, step_up, require_quorum or allow")
        if (self.quorum is not None) != (self.effect == "require_quorum"):
            raise InvalidRequestError("a rule quorum comes with require_quorum, and only with it")

    @property
    def refused(self) -> bool:
        """The rules refused the request (deny): the panel may not approve it."""
        return self.effect in REFUSING

    @property
    def steps_up(self) -> bool:
        """The rules ask for a person's approval besides the agents' (step_up)."""
        return self.effect == "step_up"

    def describe(self) -> str:
        outcome = f"rule outcome: {self.effect}"
        return f"{outcome} ({self.reason})" if self.reason else outcome


def read_rules(rules: Mapping[str, Any], *, registered: Collection[str]) -> RuleVerdict:
    """The verdict in ScoreTrust's rule outcome (``{"effect", "reason", "quorum"?, ...}``; other keys are
    ignored). The quorum is read only for ``require_quorum``, and must name ``registered`` agents."""
    effect = rules.get("effect")
    if effect not in RULE_EFFECTS:  # not echoed: the value is the caller's input
        raise InvalidRequestError("the trust rules name no known effect", expected=list(RULE_EFFECTS))
    reason = rules.get("reason")
    reason = reason[:MAX_REASON] if isinstance(reason, str) else ""
    if effect != "require_quorum":
        return RuleVerdict(effect, reason)
    return RuleVerdict(effect, reason, _read_quorum(rules.get("quorum"), registered))


def _read_quorum(value: object, registered: Collection[str]) -> RuleQuorum:
    if not isinstance(value, Mapping):
        raise InvalidRequestError("a require_quorum outcome names its quorum: a panel and a threshold")
    panel = value.get("panel")
    threshold = value.get("threshold")
    if not isinstance(panel, list | tuple) or not all(isinstance(name, str) for name in panel):
        raise InvalidRequestError("a rule quorum's panel is a list of agent names")
    if not isinstance(threshold, int) or isinstance(threshold, bool):
        raise InvalidRequestError("a rule quorum's threshold is a whole number")
    quorum = RuleQuorum(tuple(panel), threshold)
    unknown = [name for name in quorum.panel if name not in registered]
    if unknown:
        raise InvalidRequestError("the rule quorum names agents that are not registered", agents=unknown)
    return quorum


def panel_to_poll(policy: QuorumPolicy, quorum: RuleQuorum | None) -> tuple[str, ...]:
    """The agents to ask: the vault's panel in its order, then the rule quorum's others in its order."""
    if quorum is None:
        return policy.panel
    return (*policy.panel, *(name for name in quorum.panel if name not in policy.panel))


def may_vote(agent: str, policy: QuorumPolicy, quorum: RuleQuorum | None) -> bool:
    return agent in policy.panel or (quorum is not None and agent in quorum.panel)


def approvers_required(policy: QuorumPolicy, verdict: RuleVerdict | None) -> int:
    """k, the people who must approve after the agents: the vault policy's ``approvers``, and at least
    one when the rules ask for a step-up."""
    if verdict is not None and verdict.steps_up:
        return max(1, policy.approvers)
    return policy.approvers
