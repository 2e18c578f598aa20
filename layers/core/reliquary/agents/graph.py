"""The one graph shape every agent shares: ``gather`` (call the evidence tools) -> ``assess`` (the agent's
judgement, a pure function of the evidence) -> ``vote`` (the ``Vote`` and the updated memory). When a tool
has no evidence, ``gather`` routes by the label ``"missing"`` straight to ``vote``, which abstains.

Nodes are pure ``State -> partial State`` functions; the tools come from the runtime context. LangGraph is
imported by ``build_agent_graph`` (a vote's first use of an agent), not with this module: the registry, the
built-in agents and the service load without it, so agent-vote's cold start and its other actions (convene,
tally, approvals, policies) never pay for it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Literal, TypeAlias, TypedDict

from reliquary.agents.model import (
    MAX_RATIONALE,
    AgentMemory,
    ContextResult,
    PastVote,
    TrustResult,
    Vote,
    VoteRequest,
    VoteValue,
)
from reliquary.agents.tools import AgentContext

if TYPE_CHECKING:
    from langgraph.graph import StateGraph
    from langgraph.runtime import Runtime

GATHER: Final = "gather"
ASSESS: Final = "assess"
VOTE: Final = "vote"
Route = Literal["complete", "missing"]


@dataclass(frozen=True, slots=True)
class Evidence:
    context: ContextResult
    trust: TrustResult
    memory: AgentMemory


@dataclass(frozen=True, slots=True)
class Assessment:
    """An agent's judgement: the vote, how sure, the evidence it rests on, and anomalies to remember."""

    vote: VoteValue
    confidence: float
    reasons: tuple[str, ...]
    veto: bool = False
    anomalies: tuple[str, ...] = ()


class AgentState(TypedDict, total=False):
    request: VoteRequest
    evidence: Evidence
    missing: tuple[str, ...]
    assessment: Assessment
    vote: Vote


Assess = Callable[[VoteRequest, Evidence], Assessment]
AgentGraph: TypeAlias = "StateGraph[AgentState, AgentContext, AgentState, AgentState]"


def rationale(reasons: tuple[str, ...]) -> str:
    text = "; ".join(reasons)
    return text if len(text) <= MAX_RATIONALE else text[: MAX_RATIONALE - 1] + "…"


def gather(state: AgentState, runtime: Runtime[AgentContext]) -> AgentState:
    request = state["request"]
    tools = runtime.context.tools
    context = tools.check_context(request)
    trust = tools.check_trust(request)
    memory = tools.lookup_memory(request)
    if context is None or trust is None or memory is None:
        named = (("context", context), ("trust", trust), ("memory", memory))
        return {"missing": tuple(name for name, value in named if value is None)}
    return {"evidence": Evidence(context=context, trust=trust, memory=memory), "missing": ()}


def route_evidence(state: AgentState) -> Route:
    return "missing" if state.get("missing") else "complete"


def build_agent_graph(name: str, assess: Assess) -> AgentGraph:
    """The standard agent graph around ``assess``: what a custom agent usually registers."""
    from langgraph.graph import END, START, StateGraph  # noqa: PLC0415  (a vote's first use only)

    def assess_node(state: AgentState) -> AgentState:
        return {"assessment": assess(state["request"], state["evidence"])}

    def vote_node(state: AgentState) -> AgentState:
        request = state["request"]
        judged = state.get("assessment")
        if judged is None:
            judged = Assessment("abstain", 0.0, (f"no evidence from: {', '.join(state.get('missing', ()))}",))
        evidence = state.get("evidence")
        memory = evidence.memory if evidence is not None else request.memory
        updated = memory.remember(
            vote=PastVote(request.request_id, judged.vote, request.now),
            anomalies=judged.anomalies,
            device=request.device,
            region=request.region,
        )
        vote = Vote(
            agent=name,
            vote=judged.vote,
            confidence=judged.confidence,
            rationale=rationale(judged.reasons),
            veto=judged.veto,
            memory=updated,
        )
        return {"vote": vote}

    graph: AgentGraph = StateGraph(AgentState, context_schema=AgentContext)
    graph.add_node(GATHER, gather)
    graph.add_node(ASSESS, assess_node)
    graph.add_node(VOTE, vote_node)
    graph.add_edge(START, GATHER)
    graph.add_conditional_edges(GATHER, route_evidence, {"complete": ASSESS, "missing": VOTE})
    graph.add_edge(ASSESS, VOTE)
    graph.add_edge(VOTE, END)
    return graph
