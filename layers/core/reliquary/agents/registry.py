"""The agent registry: name -> how to build its graph. Graphs are compiled lazily, once per process
(``compiled``), and run through one entry point (``run_vote``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeAlias

from reliquary.agents import builtin
from reliquary.agents.graph import AgentGraph, AgentState, Assess, build_agent_graph
from reliquary.agents.model import AGENT_NAME, Vote, VoteRequest
from reliquary.agents.tools import DEFAULT_TOOLS, AgentContext, AgentTools
from reliquary.errors import ConfigurationError, ConflictError, InvalidRequestError, NotFoundError

if TYPE_CHECKING:
    from langgraph.graph.state import CompiledStateGraph

# LangGraph loads when a graph is first built (``compiled``), not with the registry (reliquary.agents.graph).
CompiledAgent: TypeAlias = "CompiledStateGraph[AgentState, AgentContext, AgentState, AgentState]"


@dataclass(frozen=True, slots=True)
class Agent:
    name: str
    build_graph: Callable[[], AgentGraph]
    may_veto: bool = False


AGENTS: dict[str, Agent] = {}
_COMPILED: dict[str, CompiledAgent] = {}


def register_agent(
    name: str, build_graph_fn: Callable[[], AgentGraph], *, may_veto: bool = False, replace: bool = False
) -> Agent:
    """Add an agent. ``build_graph_fn`` returns an uncompiled graph over ``AgentState`` with
    ``AgentContext`` as context schema that ends with a ``Vote`` under ``"vote"`` (usually
    ``build_agent_graph(name, assess)``). Re-registering a name needs ``replace=True``."""
    if not AGENT_NAME.fullmatch(name):
        raise InvalidRequestError("an agent name is 1-32 of [a-z0-9_-], starting with a letter", name=name)
    if name in AGENTS and not replace:
        raise ConflictError("an agent with this name is already registered", name=name)
    agent = Agent(name=name, build_graph=build_graph_fn, may_veto=may_veto)
    AGENTS[name] = agent
    _COMPILED.pop(name, None)
    return agent


def compiled(name: str) -> CompiledAgent:
    """The agent's compiled graph, built on first use and kept for the life of the process."""
    graph = _COMPILED.get(name)
    if graph is None:
        agent = AGENTS.get(name)
        if agent is None:
            raise NotFoundError("no agent with this name is registered", name=name)
        graph = agent.build_graph().compile(name=name)
        _COMPILED[name] = graph
    return graph


def run_vote(name: str, request: VoteRequest, *, tools: AgentTools = DEFAULT_TOOLS) -> Vote:
    """Run agent ``name`` on ``request`` and return its vote (with the updated memory)."""
    result: dict[str, Any] = compiled(name).invoke({"request": request}, context=AgentContext(tools=tools))
    vote = result.get("vote")
    if not isinstance(vote, Vote) or vote.agent != name:
        raise ConfigurationError("the agent's graph did not produce its vote", name=name)
    if vote.veto and not AGENTS[name].may_veto:
        raise ConfigurationError("this agent may not veto", name=name)
    return vote


def _register_builtins() -> None:
    for name, assess in (
        ("strict", builtin.strict),
        ("permissive", builtin.permissive),
        ("neutral", builtin.neutral),
        ("watchdog", builtin.watchdog),
    ):
        register_agent(name, _standard(name, assess), may_veto=name == "watchdog")


def _standard(name: str, assess: Assess) -> Callable[[], AgentGraph]:
    return lambda: build_agent_graph(name, assess)


_register_builtins()
