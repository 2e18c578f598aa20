"""Agent quorum: one vote per agent (its LangGraph graph compiled once, as per cold start) and the tally,
beside the baseline of building the vote's input alone."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

from reliquary.agents import AGENTS, run_vote
from reliquary.agents.model import AgentMemory, ContextResult, PastVote, TrustResult, VoteRequest
from reliquary.agents.policy import DEFAULT_QUORUM
from reliquary.agents.tally import Ballot, tally
from tests.bench.report import Column, Table
from tests.bench.timing import Budget, measure

NOW = 1_795_608_000  # noon UTC
MEMORY = AgentMemory(
    past_votes=tuple(PastVote(f"old-{n}", "approve", NOW - 3600 * (n + 1)) for n in range(20)),
    last_device="device-1",
    last_region="eu-west-1",
    last_seen=NOW - 3600,
)


def vote_request() -> VoteRequest:
    return VoteRequest(
        request_id="access-0002",
        tenant_id="acme",
        vault_id="agent-memory",
        item_id="customer-42-notes",
        principal="p" * 64,
        device="device-1",
        region="eu-west-1",
        now=NOW,
        context=ContextResult(
            True, frozenset({"device_known", "region_allowed", "in_window", "pattern_matched"})
        ),
        trust=TrustResult(
            score=0.86, band="high", facts={"history.requests_1h": 2, "history.failures_1h": 0}
        ),
        purpose="support",
        sensitivity="confidential",
        memory=MEMORY,
    )


@dataclass(frozen=True, slots=True)
class AgentsResult:
    table: Table
    slowest_vote_us: float


def agents_table(budget: Budget) -> AgentsResult:
    request = vote_request()
    names = sorted(AGENTS)
    for name in names:
        run_vote(name, request)  # compile once, as a warm function has
    ballots = [Ballot(a, "approve", 0.9) for a in DEFAULT_QUORUM.panel]
    cases: dict[str, Callable[[], object]] = {
        "input": vote_request,
        "tally": lambda: tally(DEFAULT_QUORUM, ballots),
    }
    for name in names:
        cases[f"vote-{name}"] = functools.partial(run_vote, name, request)
    stats = measure(cases, budget)
    table = Table(
        "agents",
        "Agent quorum: one vote per agent (LangGraph, compiled once) and the tally",
        [
            Column("case", "case"),
            Column("p50_us", "p50 µs", ",.1f"),
            Column("p99_us", "p99 µs", ",.1f"),
            Column("vs_input", "x building the input", ".1f"),
        ],
        notes=[
            (
                "vote = run_vote(agent, request) through the agent's compiled graph (gather, assess, vote)"
                " with 20 remembered votes; input = building the VoteRequest alone; tally = the default"
                " policy over 4 ballots. Memory sealing and DynamoDB are outside these figures."
            )
        ],
    )
    base = stats["input"].median_ns
    rows = [("input", "build the vote's input (baseline)"), *((f"vote-{n}", f"vote: {n}") for n in names)]
    for key, label in (*rows, ("tally", "tally (default policy, 4 ballots)")):
        figures = stats[key]
        table.add(
            case=label, p50_us=figures.median_us, p99_us=figures.p99_us, vs_input=figures.median_ns / base
        )
    slowest = max(stats[f"vote-{n}"].median_us for n in names)
    return AgentsResult(table, slowest)
