"""The review agents: a scenario table per agent, the graphs' shape, the update stream, determinism,
memory (anomalies recorded, past votes bounded), missing evidence, and the custom-agent extension point."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import pytest

from reliquary.agents import (
    AGENTS,
    CLAIMS,
    DEFAULT_TOOLS,
    MAX_PAST_VOTES,
    MAX_RATIONALE,
    AgentContext,
    AgentMemory,
    AgentTools,
    Assessment,
    ContextResult,
    Evidence,
    PastVote,
    TrustResult,
    Vote,
    VoteRequest,
    VoteValue,
    build_agent_graph,
    compiled,
    register_agent,
    run_vote,
)
from reliquary.agents import registry as agent_registry
from reliquary.errors import ConfigurationError, ConflictError, InvalidRequestError, NotFoundError
from reliquary.trust.facts import Band

NOW = 1_750_003_200  # 2025-06-15 16:00:00 UTC
DAY = 86_400
BUILTINS = ("strict", "permissive", "neutral", "watchdog")
FACTS: dict[str, bool | int | float | str | None] = {
    "history.requests_1h": 2,
    "history.failures_1h": 0,
    "history.requests_24h": 5,
    "history.failures_24h": 0,
    "history.impossible_travel": False,
}
KNOWN_MEMORY = AgentMemory(
    past_votes=(PastVote("req-0", "approve", NOW - DAY),),
    last_device="laptop-1",
    last_region="eu-west-1",
    last_seen=NOW - DAY,
)


def request(
    *,
    verified: bool = True,
    claims: tuple[str, ...] = CLAIMS,
    score: float = 0.9,
    facts: dict[str, Any] | None = None,
    memory: AgentMemory = KNOWN_MEMORY,
    region: str = "eu-west-1",
    request_id: str = "req-1",
    now: int = NOW,
    purpose: str = "quarterly audit",
) -> VoteRequest:
    band: Band = "high" if score >= 0.8 else "medium" if score >= 0.4 else "low"
    return VoteRequest(
        request_id=request_id,
        tenant_id="tenant-a",
        vault_id="vault-a",
        item_id="item-a",
        principal="alice",
        device="laptop-1",
        region=region,
        now=now,
        context=ContextResult(verified=verified, claims=frozenset(claims)),
        trust=TrustResult(score=score, band=band, facts={**FACTS, **(facts or {})}),
        purpose=purpose,
        memory=memory,
    )


SCENARIOS: dict[str, VoteRequest] = {
    "high_trust_known_device": request(),
    "unverified_context": request(verified=False, claims=(), score=0.35),
    "burst": request(facts={"history.requests_1h": 40}),
    "impossible_travel": request(score=0.55, region="ap-south-1", facts={"history.impossible_travel": True}),
    "replayed_request_id": request(request_id="req-0"),
    "middling_score": request(score=0.5),
}
# scenario -> agent -> (vote, veto)
EXPECTED: dict[str, dict[str, tuple[str, bool]]] = {
    "high_trust_known_device": {
        "strict": ("approve", False),
        "permissive": ("approve", False),
        "neutral": ("approve", False),
        "watchdog": ("approve", False),
    },
    "unverified_context": {
        "strict": ("deny", False),
        "permissive": ("deny", False),
        "neutral": ("deny", False),
        "watchdog": ("approve", False),
    },
    "burst": {
        "strict": ("deny", False),
        "permissive": ("approve", False),
        "neutral": ("approve", False),
        "watchdog": ("deny", False),
    },
    "impossible_travel": {
        "strict": ("deny", False),
        "permissive": ("approve", False),
        "neutral": ("deny", False),
        "watchdog": ("deny", True),
    },
    "replayed_request_id": {
        "strict": ("deny", False),
        "permissive": ("approve", False),
        "neutral": ("approve", False),
        "watchdog": ("deny", True),
    },
    "middling_score": {
        "strict": ("deny", False),
        "permissive": ("approve", False),
        "neutral": ("abstain", False),
        "watchdog": ("approve", False),
    },
}
CASES = [(scenario, agent) for scenario in SCENARIOS for agent in BUILTINS]


@pytest.mark.parametrize(("scenario", "agent"), CASES, ids=[f"{s}-{a}" for s, a in CASES])
def test_scenario_table(scenario: str, agent: str) -> None:
    vote = run_vote(agent, SCENARIOS[scenario])
    assert (vote.vote, vote.veto) == EXPECTED[scenario][agent]
    assert vote.agent == agent
    assert 0.0 <= vote.confidence <= 1.0
    assert 0 < len(vote.rationale) <= MAX_RATIONALE


def test_rationale_names_the_evidence() -> None:
    assert "replay" in run_vote("watchdog", SCENARIOS["replayed_request_id"]).rationale
    assert "impossible_travel" in run_vote("watchdog", SCENARIOS["impossible_travel"]).rationale
    assert "not verified" in run_vote("strict", SCENARIOS["unverified_context"]).rationale
    assert "burst" in run_vote("strict", SCENARIOS["burst"]).rationale


def test_watchdog_minor_anomalies_deny_without_veto() -> None:
    new_device = dataclasses.replace(SCENARIOS["high_trust_known_device"], device="phone-9")
    night = request(now=NOW - 14 * 3600)  # 02:00 UTC
    denials = request(
        memory=dataclasses.replace(
            KNOWN_MEMORY, past_votes=tuple(PastVote(f"d{i}", "deny", NOW - DAY - i) for i in range(3))
        )
    )
    failures = request(facts={"history.failures_1h": 5})
    for case, anomaly in (
        (new_device, "new_device"),
        (night, "unusual_hour"),
        (denials, "repeated_denials"),
        (failures, "repeated_failures"),
    ):
        vote = run_vote("watchdog", case)
        assert (vote.vote, vote.veto) == ("deny", False), anomaly
        assert anomaly in vote.rationale


def test_watchdog_sees_travel_and_bursts_in_its_own_memory() -> None:
    recent = dataclasses.replace(KNOWN_MEMORY, last_seen=NOW - 60)
    travel = run_vote("watchdog", request(region="us-east-1", memory=recent))
    assert (travel.vote, travel.veto) == ("deny", True)
    burst_memory = dataclasses.replace(
        KNOWN_MEMORY, past_votes=tuple(PastVote(f"b{i}", "approve", NOW - i) for i in range(5))
    )
    burst = run_vote("watchdog", request(memory=burst_memory))
    assert (burst.vote, burst.veto) == ("deny", False)
    assert "burst" in burst.rationale


@pytest.mark.parametrize("agent", BUILTINS)
def test_graph_shape(agent: str) -> None:
    graph = compiled(agent).get_graph()
    assert sorted(graph.nodes) == ["__end__", "__start__", "assess", "gather", "vote"]
    edges = sorted((e.source, e.target, e.data, e.conditional) for e in graph.edges)
    assert edges == [
        ("__start__", "gather", None, False),
        ("assess", "vote", None, False),
        ("gather", "assess", "complete", True),
        ("gather", "vote", "missing", True),
        ("vote", "__end__", None, False),
    ]


def test_compiled_once_per_process() -> None:
    assert compiled("neutral") is compiled("neutral")


def test_update_stream_in_order() -> None:
    req = SCENARIOS["replayed_request_id"]
    updates = list(
        compiled("watchdog").stream({"request": req}, context=AgentContext(), stream_mode="updates")
    )
    assert [next(iter(update)) for update in updates] == ["gather", "assess", "vote"]
    gathered = updates[0]["gather"]
    assert gathered["missing"] == ()
    assert req.context is not None
    assert req.trust is not None
    assert gathered["evidence"] == Evidence(req.context, req.trust, req.memory)
    assessment = updates[1]["assess"]["assessment"]
    assert (assessment.vote, assessment.veto) == ("deny", True)
    assert updates[2]["vote"]["vote"] == run_vote("watchdog", req)


@pytest.mark.parametrize("agent", BUILTINS)
def test_missing_evidence_abstains(agent: str) -> None:
    tools = dataclasses.replace(DEFAULT_TOOLS, check_context=lambda _r: None)
    vote = run_vote(agent, SCENARIOS["high_trust_known_device"], tools=tools)
    assert (vote.vote, vote.veto, vote.confidence) == ("abstain", False, 0.0)
    assert "context" in vote.rationale
    updates = compiled(agent).stream(
        {"request": SCENARIOS["high_trust_known_device"]}, context=AgentContext(tools), stream_mode="updates"
    )
    assert [next(iter(update)) for update in updates] == ["gather", "vote"]


def test_tools_are_swappable() -> None:
    low = TrustResult(score=0.1, band="low", facts=FACTS)
    tools = AgentTools(
        check_context=DEFAULT_TOOLS.check_context,
        check_trust=lambda _r: low,
        lookup_memory=lambda _r: AgentMemory(),
    )
    assert run_vote("permissive", SCENARIOS["high_trust_known_device"], tools=tools).vote == "deny"


@pytest.mark.parametrize("agent", BUILTINS)
def test_deterministic(agent: str) -> None:
    for req in SCENARIOS.values():
        assert run_vote(agent, req) == run_vote(agent, req)


def test_memory_records_anomalies_and_votes() -> None:
    req = SCENARIOS["impossible_travel"]
    vote = run_vote("watchdog", req)
    assert vote.memory.anomalies == (f"{NOW}:req-1:impossible_travel",)
    assert vote.memory.past_votes[-1] == PastVote("req-1", "deny", NOW)
    assert (vote.memory.last_device, vote.memory.last_region, vote.memory.last_seen) == (
        "laptop-1",
        "ap-south-1",
        NOW,
    )
    assert req.memory == KNOWN_MEMORY  # the input is not mutated
    # The recorded vote makes a second submission of the same request id a replay.
    again = run_vote("watchdog", dataclasses.replace(req, memory=vote.memory, now=NOW + DAY))
    assert (again.vote, again.veto) == ("deny", True)
    assert "replay" in again.rationale
    assert run_vote("strict", req).memory.anomalies == ()  # only the watchdog records anomalies


def test_past_votes_are_bounded() -> None:
    full = AgentMemory(past_votes=tuple(PastVote(f"old-{i}", "approve", NOW - DAY - i) for i in range(40)))
    vote = run_vote("neutral", request(memory=full))
    assert len(vote.memory.past_votes) == MAX_PAST_VOTES
    assert vote.memory.past_votes[-1].request_id == "req-1"
    assert "old-0" not in {past.request_id for past in vote.memory.past_votes}


def test_vote_validation() -> None:
    with pytest.raises(InvalidRequestError):
        Vote("x", "approve", 0.5, "r", veto=True, memory=AgentMemory())
    with pytest.raises(InvalidRequestError):
        Vote("x", "deny", 1.5, "r", veto=False, memory=AgentMemory())
    with pytest.raises(InvalidRequestError):
        Vote("x", "deny", 0.5, "r" * (MAX_RATIONALE + 1), veto=False, memory=AgentMemory())
    with pytest.raises(InvalidRequestError):
        TrustResult(score=1.2, band="high")


@pytest.fixture
def cleanup() -> Iterator[list[str]]:
    names: list[str] = []
    yield names
    for name in names:
        AGENTS.pop(name, None)
        agent_registry._COMPILED.pop(name, None)


def _echo(request: VoteRequest, evidence: Evidence) -> Assessment:
    vote: VoteValue = "approve" if evidence.trust.score >= 0.7 and request.purpose else "deny"
    return Assessment(vote, 0.8, (f"score {evidence.trust.score:.2f}",))


def test_custom_agent_runs_through_the_same_entry_point(cleanup: list[str]) -> None:
    cleanup.append("tenant-echo")
    agent = register_agent("tenant-echo", lambda: build_agent_graph("tenant-echo", _echo))
    assert AGENTS["tenant-echo"] is agent
    assert not agent.may_veto
    assert run_vote("tenant-echo", SCENARIOS["high_trust_known_device"]).vote == "approve"
    assert run_vote("tenant-echo", SCENARIOS["middling_score"]).vote == "deny"
    assert sorted(compiled("tenant-echo").get_graph().nodes) == [
        "__end__",
        "__start__",
        "assess",
        "gather",
        "vote",
    ]
    with pytest.raises(ConflictError):
        register_agent("tenant-echo", lambda: build_agent_graph("tenant-echo", _echo))
    register_agent("tenant-echo", lambda: build_agent_graph("tenant-echo", _deny_plain), replace=True)
    assert run_vote("tenant-echo", SCENARIOS["high_trust_known_device"]).vote == "deny"


def _deny_plain(request: VoteRequest, evidence: Evidence) -> Assessment:
    return Assessment("deny", 1.0, ("always",))


def _always_deny(request: VoteRequest, evidence: Evidence) -> Assessment:
    return Assessment("deny", 1.0, ("always",), veto=True)


def test_custom_agent_may_not_veto_unless_registered_to(cleanup: list[str]) -> None:
    cleanup.extend(["no-veto", "may-veto"])
    register_agent("no-veto", lambda: build_agent_graph("no-veto", _always_deny))
    with pytest.raises(ConfigurationError):
        run_vote("no-veto", SCENARIOS["high_trust_known_device"])
    register_agent("may-veto", lambda: build_agent_graph("may-veto", _always_deny), may_veto=True)
    assert run_vote("may-veto", SCENARIOS["high_trust_known_device"]).veto


def test_registry_errors() -> None:
    with pytest.raises(NotFoundError):
        run_vote("nobody", SCENARIOS["high_trust_known_device"])
    with pytest.raises(InvalidRequestError):
        register_agent("Bad Name", lambda: build_agent_graph("x", _echo))
    assert set(BUILTINS) <= set(AGENTS)
    assert [name for name in BUILTINS if AGENTS[name].may_veto] == ["watchdog"]
