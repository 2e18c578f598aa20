"""Trust decisions per request: scoring (explained factors) plus rule evaluation, for the default policy and
for a generated policy of 200 rules, beside the baseline of loading the request's inputs alone (validating
the request and history models from their JSON form, as a task receives them). Goal: < 50 µs p50 for
scoring plus the default policy."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from typing import Any

from reliquary.trust import HistoryStats, TrustRequest, facts, load_template, score
from reliquary.trust.rules import default_rule_set, parse_rule_set
from tests.bench.report import Column, Table
from tests.bench.timing import Budget, measure

GOAL_P50_US = 50.0
RULES_LARGE = 200

REQUEST: dict[str, Any] = {
    "tenant_id": "acme",
    "vault_id": "agent-memory",
    "item_id": "customer-42-notes",
    "principal": {"subject": "support-agent-7", "roles": ["member"]},
    "sensitivity": "confidential",
    "purpose": "support",
    "context": {
        "verified": True,
        "device_known": True,
        "region_allowed": True,
        "in_window": True,
        "pattern_matched": True,
    },
    "device": "device-1",
    "region": "eu-west-1",
    "now": 1_795_651_200,
}
HISTORY: dict[str, Any] = {
    "requests_1h": 3,
    "failures_1h": 0,
    "requests_24h": 20,
    "failures_24h": 1,
    "distinct_devices_30d": 2,
    "distinct_regions_30d": 1,
    "seconds_since_last": 3600,
    "known_device": True,
    "known_region": True,
    "hour_habit": 0.4,
}


def large_rule_set(count: int = RULES_LARGE, seed: int = 7) -> str:
    """A valid policy of ``count`` deny / step-up / allow rules over counters and the score (JSON text)."""
    chooser = random.Random(seed)
    counters = ("history.requests_1h", "history.failures_1h", "history.requests_24h", "history.failures_24h")
    rules = []
    for n in range(count):
        fact = chooser.choice(counters)
        low = chooser.randint(1, 50)
        when = {
            "all": [
                {"fact": fact, "gte": low},
                {"fact": "score", "lt": round(chooser.uniform(0.2, 0.9), 2)},
                {"fact": "time.hour", "between": [chooser.randint(0, 23), chooser.randint(0, 23)]},
            ]
        }
        effect: Any = (
            "deny" if n % 3 == 0 else "allow" if n % 3 == 1 else {"step_up": {"circuit": "device_proof"}}
        )
        rules.append({"id": f"rule-{n:03d}", "when": when, "effect": effect, "reason": f"generated rule {n}"})

    return json.dumps({"version": 1, "name": "generated", "rules": rules})


@dataclass(frozen=True, slots=True)
class TrustResult:
    table: Table
    default_p50_us: float


def trust_table(budget: Budget) -> TrustResult:
    template = load_template("standard")
    rules = default_rule_set()
    large = parse_rule_set(large_rule_set(), source="generated-200.json")
    request = TrustRequest.model_validate(REQUEST)
    history = HistoryStats.model_validate(HISTORY)

    def load_inputs() -> object:
        return TrustRequest.model_validate(REQUEST), HistoryStats.model_validate(HISTORY)

    def decide(policy: Any) -> Any:
        result = score(request, history, template)
        return policy.evaluate(facts(request, history, result))

    stats = measure(
        {
            "load": load_inputs,
            "score": lambda: score(request, history, template),
            "default": lambda: decide(rules),
            "large": lambda: decide(large),
        },
        budget,
    )
    table = Table(
        "trust",
        "Trust decision per request: scoring (explained factors) + rule evaluation, beside loading inputs",
        [
            Column("case", "case"),
            Column("p50_us", "p50 µs", ",.1f"),
            Column("p99_us", "p99 µs", ",.1f"),
            Column("vs_load", "x loading the inputs", ".2f"),
        ],
        notes=[
            (
                "load = validating the request and history models from their JSON form (what the task does"
                " once per request); score = trust.score with the standard template; default / 200 rules ="
                " score, facts and RuleSet.evaluate. Goal: default policy < 50 µs p50."
            )
        ],
    )
    base = stats["load"].median_ns
    for key, label in (
        ("load", "load the inputs (baseline)"),
        ("score", "score only (16 factors)"),
        ("default", f"score + default policy ({len(rules.rules)} rules)"),
        ("large", f"score + generated policy ({len(large.rules)} rules)"),
    ):
        figures = stats[key]
        table.add(
            case=label, p50_us=figures.median_us, p99_us=figures.p99_us, vs_load=figures.median_ns / base
        )
    p50 = stats["default"].median_us
    table.footer.append(
        f"   default policy p50: {p50:.1f} µs (goal < {GOAL_P50_US:g} µs:"
        f" {'within' if p50 < GOAL_P50_US else 'over'})"
    )
    return TrustResult(table, p50)
