"""The data an agent votes on and the vote it casts: ``VoteRequest`` in, ``Vote`` (with the agent's updated
``AgentMemory``) out. Frozen, slotted dataclasses validated on construction; no plaintext or key material
ever appears here, only the facts VerifyContext and ScoreTrust established about the request."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final, Literal

from reliquary.errors import InvalidRequestError
from reliquary.trust.facts import Band, Sensitivity

VoteValue = Literal["approve", "deny", "abstain"]
VOTES: Final = ("approve", "deny", "abstain")
FactValue = bool | int | float | str | None

AGENT_NAME: Final = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")  # as reliquary.agents.policy.AgentName
MAX_RATIONALE: Final = 500
MAX_PAST_VOTES: Final = 32
MAX_ANOMALIES: Final = 32
# The context claims a fully verified request proves (``claims.*`` in reliquary.trust.facts).
CLAIMS: Final = ("device_known", "region_allowed", "in_window", "pattern_matched")


@dataclass(frozen=True, slots=True)
class ContextResult:
    """VerifyContext's result: whether the proof verified and which claims it proved."""

    verified: bool
    claims: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class TrustResult:
    """ScoreTrust's result: the score, its band, the factors by name, the rules' effect, and the
    ``history.*`` / ``time.*`` facts (names from ``reliquary.trust.facts.FACTS``)."""

    score: float
    band: Band
    factors: Mapping[str, float] = field(default_factory=dict)
    rule_effect: str | None = None
    facts: Mapping[str, FactValue] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not 0.0 <= self.score <= 1.0:
            raise InvalidRequestError("a trust score is in [0, 1]", score=self.score)


@dataclass(frozen=True, slots=True)
class PastVote:
    request_id: str
    vote: VoteValue
    time: int


@dataclass(frozen=True, slots=True)
class AgentMemory:
    """What one agent remembers of one principal: its last ``MAX_PAST_VOTES`` votes (oldest first), the
    last ``MAX_ANOMALIES`` anomalies it observed, and where and when it last saw the principal."""

    past_votes: tuple[PastVote, ...] = ()
    anomalies: tuple[str, ...] = ()
    last_device: str | None = None
    last_region: str | None = None
    last_seen: int | None = None

    def remember(
        self, *, vote: PastVote, anomalies: tuple[str, ...], device: str, region: str
    ) -> AgentMemory:
        """The memory after ``vote`` (bounded, oldest dropped first)."""
        return AgentMemory(
            past_votes=(*self.past_votes, vote)[-MAX_PAST_VOTES:],
            anomalies=(*self.anomalies, *anomalies)[-MAX_ANOMALIES:],
            last_device=device,
            last_region=region,
            last_seen=vote.time,
        )


@dataclass(frozen=True, slots=True)
class VoteRequest:
    """One access request as an agent sees it. ``now`` (epoch seconds, UTC) is the verifier's clock: agents
    read no clock of their own. ``context``/``trust`` are ``None`` when that step did not run."""

    request_id: str
    tenant_id: str
    vault_id: str
    item_id: str
    principal: str
    device: str
    region: str
    now: int
    context: ContextResult | None
    trust: TrustResult | None
    purpose: str = ""
    sensitivity: Sensitivity = "internal"
    memory: AgentMemory = field(default_factory=AgentMemory)

    def __post_init__(self) -> None:
        if not self.request_id:
            raise InvalidRequestError("a vote request needs a request id")
        if self.now < 0:
            raise InvalidRequestError("now is epoch seconds", now=self.now)


@dataclass(frozen=True, slots=True)
class Vote:
    """One agent's vote. Only a deny may carry ``veto``, and only an agent registered with ``may_veto``
    (the watchdog) may cast one; ``run_vote`` enforces the latter."""

    agent: str
    vote: VoteValue
    confidence: float
    rationale: str
    veto: bool
    memory: AgentMemory

    def __post_init__(self) -> None:
        if self.vote not in VOTES:
            raise InvalidRequestError("a vote is approve, deny or abstain", agent=self.agent)
        if not 0.0 <= self.confidence <= 1.0:
            raise InvalidRequestError("a vote's confidence is in [0, 1]", agent=self.agent)
        if len(self.rationale) > MAX_RATIONALE:
            raise InvalidRequestError("a rationale is at most 500 characters", agent=self.agent)
        if self.veto and self.vote != "deny":
            raise InvalidRequestError("only a deny can carry a veto", agent=self.agent)
