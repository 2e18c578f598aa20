"""The review panel: agents that each vote approve, deny or abstain on an access request, from the facts
VerifyContext and ScoreTrust established and their own memory of the principal. They never see plaintext
or keys. (The tally of the votes under a vault's quorum policy is ``reliquary.agents.tally``; what the trust
rules require of the panel, ``reliquary.agents.requirement``.)

Each agent is a LangGraph ``StateGraph`` of pure nodes, ``gather -> assess -> vote``, with a ``"missing"``
route from ``gather`` to ``vote`` (abstain) when an evidence tool has nothing. The tools (context checker,
trust checker, memory lookup) come in through the runtime context (``AgentTools``), never globals.

Built-in agents: ``strict``, ``permissive``, ``neutral`` and ``watchdog`` (the only one that may veto).

Extension point: a tenant's own agent (rule-based or model-backed) is registered once, at import or cold
start, and then runs through the same entry point::

    from reliquary.agents import Assessment, build_agent_graph, register_agent, run_vote

    def cautious(request, evidence):  # (VoteRequest, Evidence) -> Assessment, pure and deterministic
        if evidence.trust.score >= 0.7:
            return Assessment("approve", 0.8, ("score >= 0.7",))
        return Assessment("deny", 0.8, ("score < 0.7",))

    register_agent("cautious", lambda: build_agent_graph("cautious", cautious))
    vote = run_vote("cautious", request)

``build_graph_fn`` may also return any graph over ``AgentState`` with ``AgentContext`` as context schema
whose final state holds a ``Vote`` named after the agent. A model-backed agent calls its model from its
``assess`` (or its own node) with the client taken from the runtime context, not a global. ``may_veto``
defaults to ``False``: a veto from an agent registered without it is refused by ``run_vote``.

Every name below is loaded from its module on first use, so ``reliquary.agents.policy``, ``.tally``,
``.requirement``, ``.memory`` and ``.model``, which contracts, factories and the other functions import,
load alone. No module here imports LangGraph (about a second to import) at import: ``build_agent_graph``
does, when a vote first builds an agent's graph. The registry, the service and the stage load without it,
and of agent-vote's actions only a vote pays for it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from reliquary.agents.graph import (
        ASSESS,
        GATHER,
        VOTE,
        AgentGraph,
        AgentState,
        Assess,
        Assessment,
        Evidence,
        build_agent_graph,
    )
    from reliquary.agents.model import (
        CLAIMS,
        MAX_ANOMALIES,
        MAX_PAST_VOTES,
        MAX_RATIONALE,
        AgentMemory,
        ContextResult,
        PastVote,
        TrustResult,
        Vote,
        VoteRequest,
        VoteValue,
    )
    from reliquary.agents.registry import AGENTS, Agent, CompiledAgent, compiled, register_agent, run_vote
    from reliquary.agents.tools import DEFAULT_TOOLS, AgentContext, AgentTools

_MODULES = {
    "graph": (
        "ASSESS",
        "GATHER",
        "VOTE",
        "AgentGraph",
        "AgentState",
        "Assess",
        "Assessment",
        "Evidence",
        "build_agent_graph",
    ),
    "model": (
        "CLAIMS",
        "MAX_ANOMALIES",
        "MAX_PAST_VOTES",
        "MAX_RATIONALE",
        "AgentMemory",
        "ContextResult",
        "PastVote",
        "TrustResult",
        "Vote",
        "VoteRequest",
        "VoteValue",
    ),
    "registry": ("AGENTS", "Agent", "CompiledAgent", "compiled", "register_agent", "run_vote"),
    "tools": ("DEFAULT_TOOLS", "AgentContext", "AgentTools"),
}
_MODULE_OF = {name: module for module, names in _MODULES.items() for name in names}

__all__ = [
    "AGENTS",
    "ASSESS",
    "CLAIMS",
    "DEFAULT_TOOLS",
    "GATHER",
    "MAX_ANOMALIES",
    "MAX_PAST_VOTES",
    "MAX_RATIONALE",
    "VOTE",
    "Agent",
    "AgentContext",
    "AgentGraph",
    "AgentMemory",
    "AgentState",
    "AgentTools",
    "Assess",
    "Assessment",
    "CompiledAgent",
    "ContextResult",
    "Evidence",
    "PastVote",
    "TrustResult",
    "Vote",
    "VoteRequest",
    "VoteValue",
    "build_agent_graph",
    "compiled",
    "register_agent",
    "run_vote",
]


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value  # loaded once; later lookups do not come back here
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
