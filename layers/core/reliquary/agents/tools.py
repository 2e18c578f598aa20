"""The evidence tools an agent's ``gather`` node calls: plain functions handed in through the graph's
runtime context (``AgentContext``), so tests and deployments swap them without touching the graphs.
A tool returns ``None`` when it has no evidence; the graph then abstains."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from reliquary.agents.model import AgentMemory, ContextResult, TrustResult, VoteRequest


@dataclass(frozen=True, slots=True)
class AgentTools:
    check_context: Callable[[VoteRequest], ContextResult | None]
    check_trust: Callable[[VoteRequest], TrustResult | None]
    lookup_memory: Callable[[VoteRequest], AgentMemory | None]


def context_from_request(request: VoteRequest) -> ContextResult | None:
    return request.context


def trust_from_request(request: VoteRequest) -> TrustResult | None:
    return request.trust


def memory_from_request(request: VoteRequest) -> AgentMemory | None:
    return request.memory


DEFAULT_TOOLS = AgentTools(
    check_context=context_from_request,
    check_trust=trust_from_request,
    lookup_memory=memory_from_request,
)


@dataclass(frozen=True, slots=True)
class AgentContext:
    """The graph's ``context_schema``: what a run depends on, given at invoke time."""

    tools: AgentTools = DEFAULT_TOOLS
