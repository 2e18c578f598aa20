"""End-to-end decision latency on the local runtime: access requests through the access state machine
(moto's Step Functions interpreter, every task on the real handlers in process), with each step's share,
and every function's first (cold) invocation beside its warm median.

Baseline, measured in the same run: the handlers' own time for the same requests (the sum of their
invocations), so the table shows what the orchestration adds. The orchestration is split, from each
execution's history (read after it is timed), into the Lambda dispatch (from a task's
LambdaFunctionStarted to its LambdaFunctionSucceeded, less the handlers' time: the Invoke API and the
in-process executor) and the interpreter (the rest of the execution: the states between tasks, Map, and
the history it records), plus what lies outside the execution (StartExecution, the end's
DescribeExecution). The requester's proving is done before a request is timed (it happens on the
device, not in the service).
"""

from __future__ import annotations

import time
import uuid
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from tests.bench.report import Column, Table
from tests.bench.timing import percentile

FULL_REQUESTS = 100
QUICK_REQUESTS = 3
REQUESTS_PER_PRINCIPAL = 4  # below the watchdog's burst window, so most requests take the full path
STEPS = (
    ("VerifyContext", "VerifyProofFunction", "verify"),
    ("ScoreTrust", "ScoreTrustFunction", "score"),
    ("Convene", "AgentVoteFunction", "convene"),
    ("Quorum (all votes)", "AgentVoteFunction", "vote"),
    ("Tally", "AgentVoteFunction", "tally"),
    ("RecordDecision", "AuditAppendFunction", "record_decision"),
    ("RecordOutcome", "ScoreTrustFunction", "record_outcome"),
    ("Grant", "EncryptFunction", "grant"),
)
FUNCTIONS = (
    "VerifyProofFunction",
    "ScoreTrustFunction",
    "AgentVoteFunction",
    "AuditAppendFunction",
    "EncryptFunction",
)


@dataclass(frozen=True)
class FlowResult:
    latency: Table
    steps: Table
    coldstart: Table
    summary: dict[str, object]


def _ms(seconds: float) -> float:
    return seconds * 1000


def _task_seconds(history: list[dict[str, Any]]) -> tuple[float, float]:
    """The execution's span and the time covered by its Lambda tasks (the union of each task's
    LambdaFunctionStarted..Succeeded/Failed: a Map's votes overlap), from its history."""
    spans: list[tuple[float, float]] = []
    started: list[float] = []
    for event in history:
        at = event["timestamp"].timestamp()
        if event["type"] == "LambdaFunctionStarted":
            started.append(at)
        elif event["type"] in ("LambdaFunctionSucceeded", "LambdaFunctionFailed") and started:
            spans.append((started.pop(0), at))
    covered, end = 0.0, float("-inf")
    for begin, finish in sorted(spans):
        if finish > end:
            covered += finish - max(begin, end)
            end = finish
    whole = history[-1]["timestamp"].timestamp() - history[0]["timestamp"].timestamp()
    return whole, covered


def flow_tables(*, quick: bool) -> FlowResult:  # noqa: PLR0915  (one run, three tables)
    from infra.local.access import LocalAccess
    from infra.local.requester import Prover, Requester
    from infra.local.runtime import free_port, local_stack
    from infra.local.seed import SUPPORT_VAULT, TENANT, seed

    count = QUICK_REQUESTS if quick else FULL_REQUESTS
    # (function logical id, action) -> handler seconds of each invocation, in order
    calls: dict[tuple[str, str], list[float]] = defaultdict(list)
    per_request: list[dict[tuple[str, str], float]] = []
    firsts: dict[str, float] = {}  # each function's first invocation (its cold start, during seeding)

    def observe(function: str, event: dict[str, Any], seconds: float) -> None:
        firsts.setdefault(function, seconds)
        key = (function, str(event.get("action", "?")))
        calls[key].append(seconds)
        if per_request:
            per_request[-1][key] = per_request[-1].get(key, 0.0) + seconds

    quiet = {"POWERTOOLS_LOG_LEVEL": "WARNING", "POWERTOOLS_METRICS_DISABLED": "true"}
    started = time.perf_counter()
    with local_stack(free_port(), stack_name=f"bench-{uuid.uuid4().hex[:6]}", environment=quiet) as stack:
        deployed = time.perf_counter() - started
        stack.lambdas.observe(observe)
        with Prover() as prover:
            access = LocalAccess(stack, prover)
            people = max(1, -(-count // REQUESTS_PER_PRINCIPAL))
            demo = seed(access, requesters=people)
            totals: list[float] = []
            executions: list[tuple[float, float]] = []  # (span, Lambda tasks' union) per request
            decisions: dict[str, int] = defaultdict(int)
            for index in range(count):
                requester: Requester = demo.requesters[index % people]
                request = access.request(requester, TENANT, SUPPORT_VAULT, "customer-42-notes")
                per_request.append({})
                began = time.perf_counter()
                execution = access.decide(request)
                totals.append(time.perf_counter() - began)
                decisions[f"{execution.status}/{execution.decision}"] += 1
                executions.append(_task_seconds(execution.history))  # read after the timing

    p50, p95 = percentile(totals, 0.5), percentile(totals, 0.95)
    handler_totals = [sum(spent.values()) for spent in per_request]
    h50, h95 = percentile(handler_totals, 0.5), percentile(handler_totals, 0.95)
    latency = Table(
        key="flow_latency",
        title=f"Access decision latency on the local runtime, {count} requests (vs the handlers' own time)",
        columns=[
            Column("measure", "measure"),
            Column("p50_ms", "p50 ms", ",.1f"),
            Column("p95_ms", "p95 ms", ",.1f"),
            Column("ratio", "p50 vs handlers", ".2f"),
        ],
        notes=[
            (
                f"stack created from template.yaml in {deployed:.1f} s; {people} principal(s), "
                f"{REQUESTS_PER_PRINCIPAL} requests each; outcomes: "
                + ", ".join(f"{k} {v}" for k, v in sorted(decisions.items()))
            ),
            (
                "StartExecution to the terminal status read by DescribeExecution (woken by the "
                "interpreter's end, not polled; the history is read after); handlers = the sum of every "
                "task's handler time in that execution (the baseline)"
            ),
        ],
    )
    latency.add(
        measure="end to end (StartExecution..done)", p50_ms=_ms(p50), p95_ms=_ms(p95), ratio=p50 / h50
    )
    latency.add(measure="handlers alone (baseline)", p50_ms=_ms(h50), p95_ms=_ms(h95), ratio=1.0)
    orchestration = [total - spent for total, spent in zip(totals, handler_totals, strict=True)]
    dispatch = [tasks - spent for (_, tasks), spent in zip(executions, handler_totals, strict=True)]
    interpreter = [span - tasks for span, tasks in executions]
    outside = [total - span for total, (span, _) in zip(totals, executions, strict=True)]
    latency.add(
        measure="orchestration (moto Step Functions + Lambda API)",
        p50_ms=_ms(p50 - h50),
        p95_ms=None,
        ratio=(p50 - h50) / h50,
    )
    for measure, values in (
        ("  of which Lambda dispatch (Invoke API, executor)", dispatch),
        ("  of which the interpreter (states, Map, history)", interpreter),
        ("  of which StartExecution and the end's Describe", outside),
    ):
        latency.add(
            measure=measure, p50_ms=_ms(percentile(values, 0.5)), p95_ms=_ms(percentile(values, 0.95))
        )
    share = [o / t for o, t in zip(orchestration, totals, strict=True)]
    latency.notes.append(
        f"orchestration's share of each request: p50 {percentile(share, 0.5):.0%}, "
        f"p95 {percentile(share, 0.95):.0%} (of the p50s: {(p50 - h50) / p50:.0%})"
    )

    steps = Table(
        key="flow_steps",
        title="Share of each step in the end-to-end p50 (handler time per execution)",
        columns=[
            Column("step", "step"),
            Column("function", "function"),
            Column("p50_ms", "p50 ms", ",.2f"),
            Column("share", "share of e2e p50", ".1%"),
        ],
    )
    for step, function, action in STEPS:
        spent = [r.get((function, action), 0.0) for r in per_request if (function, action) in r]
        if spent:
            value = percentile(spent, 0.5)
            steps.add(step=step, function=function, p50_ms=_ms(value), share=value / p50)
    steps.add(step="orchestration", function="-", p50_ms=_ms(p50 - h50), share=(p50 - h50) / p50)

    coldstart = Table(
        key="flow_coldstart",
        title="Each function's first invocation (import + adapters built) beside its warm median",
        columns=[
            Column("function", "function"),
            Column("first_ms", "first call ms", ",.1f"),
            Column("warm_ms", "warm p50 ms", ",.2f"),
            Column("ratio", "first / warm", ",.1f"),
        ],
        notes=[
            (
                "in-process, after the other functions' imports: `make bench --only coldstart` measures "
                "each handler's import in a fresh interpreter"
            )
        ],
    )
    for function in FUNCTIONS:
        warm = [s for (f, _action), values in calls.items() if f == function for s in values[1:]]
        first = firsts.get(function)
        if first is not None and warm:
            middle = percentile(warm, 0.5)
            coldstart.add(function=function, first_ms=_ms(first), warm_ms=_ms(middle), ratio=first / middle)
    return FlowResult(
        latency,
        steps,
        coldstart,
        {
            "flow_p50_ms": _ms(p50),
            "flow_p95_ms": _ms(p95),
            "flow_vs_handlers": p50 / h50,
            "flow_orchestration_share": (p50 - h50) / p50,
        },
    )
