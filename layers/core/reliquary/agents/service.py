"""The agent-vote step: convening the panel for a request (the vault's panel and any agents the trust rules'
quorum requires; refused when the rules refused the request), one agent's vote on one request (the Quorum
Map runs one per agent convened), with the agent's memory of the principal opened before and sealed again
after; and the tally of the votes under the vault's quorum policy and the rules' quorum. Agents see the
verified context's claim names and the trust result, never plaintext or keys.

``rules`` arguments are ScoreTrust's rule outcome (the flow's ``trust.rules``), or ``None`` when the caller
sent no trust result; a rule outcome is read (and a malformed one refused) by
``reliquary.agents.requirement.read_rules``."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict
from typing import Any

from reliquary.agents.memory import MemoryBox, MemoryStore, SealedMemory
from reliquary.agents.model import AgentMemory, ContextResult, PastVote, TrustResult, Vote, VoteRequest
from reliquary.agents.policy import DEFAULT_QUORUM, QuorumPolicy, QuorumPolicyStore
from reliquary.agents.registry import AGENTS, run_vote
from reliquary.agents.requirement import RuleVerdict, may_vote, panel_to_poll, read_rules
from reliquary.agents.tally import Ballot, TallyResult, tally
from reliquary.crypto.scope import validate_id
from reliquary.errors import ConflictError, InvalidRequestError, NotFoundError, RulesRefusedError

MEMORY_TTL_SECONDS = 90 * 86_400  # an agent forgets a principal it has not seen for 90 days
RECENT_VOTES = 32  # votes kept verbatim, so a retried vote (same request, same agent) is answered again


def encode_state(memory: AgentMemory, recent: Mapping[str, Mapping[str, Any]]) -> bytes:
    """The sealed state: the agent's memory and its recent votes by request id."""
    state = {"memory": asdict(memory), "recent": dict(recent)}
    return json.dumps(state, sort_keys=True, separators=(",", ":")).encode()


def decode_state(data: bytes) -> tuple[AgentMemory, dict[str, dict[str, Any]]]:
    state = json.loads(data)
    value = state["memory"]
    memory = AgentMemory(
        past_votes=tuple(PastVote(**v) for v in value["past_votes"]),
        anomalies=tuple(value["anomalies"]),
        last_device=value["last_device"],
        last_region=value["last_region"],
        last_seen=value["last_seen"],
    )
    return memory, dict(state["recent"])


def vote_to_dict(vote: Vote) -> dict[str, Any]:
    return {
        "agent": vote.agent,
        "vote": vote.vote,
        "confidence": vote.confidence,
        "rationale": vote.rationale,
        "veto": vote.veto,
    }


class AgentVoteService:
    def __init__(
        self,
        memories: MemoryStore,
        box: MemoryBox,
        policies: QuorumPolicyStore,
        *,
        clock: Callable[[], int] = lambda: int(time.time()),
    ) -> None:
        self._memories = memories
        self._box = box
        self._policies = policies
        self._clock = clock

    @property
    def now(self) -> int:
        return self._clock()

    def policy(self, tenant_id: str, vault_id: str) -> QuorumPolicy:
        return self._policies.get(tenant_id, vault_id) or DEFAULT_QUORUM

    def set_policy(self, tenant_id: str, vault_id: str, policy: QuorumPolicy) -> None:
        validate_id("tenant_id", tenant_id)
        validate_id("vault_id", vault_id)
        unknown = sorted(set(policy.panel) - set(AGENTS))
        if unknown:
            raise InvalidRequestError("the panel names agents that are not registered", agents=unknown)
        self._policies.put(tenant_id, vault_id, policy)

    @staticmethod
    def verdict(rules: Mapping[str, Any] | None) -> RuleVerdict | None:
        """The rules' verdict, checked against the registered agents; ``None`` without a rule outcome."""
        return None if rules is None else read_rules(rules, registered=AGENTS)

    def convene(self, tenant_id: str, vault_id: str, *, rules: Mapping[str, Any] | None) -> dict[str, Any]:
        """The agents to poll for a request: the vault's panel in its order, then the agents the rules'
        quorum requires that are not on it. ``RulesRefusedError`` if the rules denied the request or asked
        for a step-up: no agent is ever polled on a request the rules refused."""
        verdict = self.verdict(rules)
        if verdict is not None and verdict.refused:
            raise RulesRefusedError(
                "the trust rules refused this request; no panel is convened for it", effect=verdict.effect
            )
        quorum = verdict.quorum if verdict is not None else None
        policy = self.policy(tenant_id, vault_id)
        return {
            "panel": list(panel_to_poll(policy, quorum)),
            "policy": policy.model_dump(mode="json"),
            "requirement": None if quorum is None else quorum.to_dict(),
        }

    def vote(
        self,
        agent: str,
        *,
        request_id: str,
        tenant_id: str,
        vault_id: str,
        item_id: str,
        subject: str,
        device: str,
        region: str,
        context: ContextResult | None,
        trust: TrustResult | None,
        purpose: str,
        sensitivity: Any,
        rules: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """The agent's vote (as a dict), idempotent on (request, agent): a retried vote gets the same one
        back and leaves the memory as it was. The agent must sit on the vault's panel or on the panel of
        the quorum the rules require."""
        if agent not in AGENTS:
            raise NotFoundError("no such agent", agent=agent)
        verdict = self.verdict(rules)
        quorum = verdict.quorum if verdict is not None else None
        if not may_vote(agent, self.policy(tenant_id, vault_id), quorum):
            raise InvalidRequestError(
                "the agent sits neither on this vault's panel nor on the rules' quorum panel", agent=agent
            )
        principal = self._box.principal_key(tenant_id, subject)
        sealed = self._memories.get(tenant_id, agent, principal)
        memory, recent = (
            decode_state(self._box.open(tenant_id, agent, principal, sealed.box))
            if sealed
            else (AgentMemory(), {})
        )
        if request_id in recent:
            return recent[request_id]
        now = self.now
        request = VoteRequest(
            request_id=request_id,
            tenant_id=tenant_id,
            vault_id=vault_id,
            item_id=item_id,
            principal=principal,  # agents know a principal by its key, never by name
            device=device,
            region=region,
            now=now,
            context=context,
            trust=trust,
            purpose=purpose,
            sensitivity=sensitivity,
            memory=memory,
        )
        cast = run_vote(agent, request)
        result = vote_to_dict(cast)
        recent[request_id] = result
        while len(recent) > RECENT_VOTES:  # dicts keep insertion order: the oldest goes first
            recent.pop(next(iter(recent)))
        box = self._box.seal(tenant_id, agent, principal, encode_state(cast.memory, recent))
        self._memories.put(tenant_id, agent, principal, SealedMemory(box, now, now + MEMORY_TTL_SECONDS))
        return result

    def tally(
        self,
        tenant_id: str,
        vault_id: str,
        votes: Sequence[Mapping[str, Any]],
        *,
        rules: Mapping[str, Any] | None = None,
        convened: QuorumPolicy | None = None,
    ) -> TallyResult:
        """The decision on ``votes`` under the vault's policy and the rules' verdict (see ``tally``).

        ``convened``: the policy the panel was polled under; a vault policy changed since is a conflict
        (the votes were asked for another panel or threshold), never a silent switch."""
        policy = self.policy(tenant_id, vault_id)
        if convened is not None and convened != policy:
            raise ConflictError("the vault's quorum policy changed while the request was decided")
        verdict = self.verdict(rules)
        ballots = [
            Ballot(str(v["agent"]), v["vote"], float(v["confidence"]), bool(v.get("veto", False)))
            for v in votes
        ]
        return tally(policy, ballots, verdict)
