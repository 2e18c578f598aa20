"""Trust rules: a small policy language over the trust FACTS, in the spirit of Cedar and OPA.

Default deny; deny overrides everything; every rule is evaluated and every match recorded. A rule set is
schema-validated (``schema.json``; ``schema()``) and semantically checked when loaded, compiled into
closures once, and identified by its **policy version**: the SHA-256 of its canonical JSON (RFC 8785 of
the validated model), which the audit log records with every decision.

The language::

    version: 1
    name: default
    rules:
      - id: deny-impossible-travel       # [a-z0-9][a-z0-9._-]*, unique
        description: ...                 # optional, part of the policy version
        when: {all: [{fact: history.impossible_travel, eq: true}]}
        effect: deny                     # deny | allow | {step_up: {circuit}} | {quorum: {panel, threshold}}
        reason: ...                      # optional; recorded when the rule matches

Conditions: ``{all: [...]}``, ``{any: [...]}``, ``{not: cond}`` and leaves ``{fact: NAME, OP: VALUE}``
with exactly one operator. Operators by fact type:

* bool: eq, ne (true/false)
* int, float, int|null: eq, ne, lt, lte, gt, gte, between [lo, hi] (inclusive). Values must lie in the
  fact's range (score [0, 1], time.hour 0..23, time.weekday 0..6, counters >= 0). ``between`` with
  lo > hi wraps around on time.hour and time.weekday (hour between [22, 6] = 22..23 or 0..6) and is an
  error elsewhere. On int|null facts, ordering and between are false for null; eq/ne are plain equality
  (``eq: null`` tests for null).
* str, band, sensitivity: eq, ne, in, not_in (in-lists non-empty, no duplicates; band and sensitivity
  values must be members of their enumeration; time.date values are dates YYYY-MM-DD).
* list[str] (roles): contains (a string), eq / ne (a list, compared as a set).

Outcome: any deny -> deny; else any step_up -> step_up (the union of the circuits); else any quorum ->
require_quorum (the merged requirement, see ``merge_quorums``); else any allow -> allow; else deny
("no rule allows this request").
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from reliquary.trust.rules._api import default_rule_set, load_rule_set, schema
from reliquary.trust.rules._engine import (
    DEFAULT_DENY_REASON,
    MatchedRule,
    Quorum,
    Rule,
    RuleOutcome,
    RuleSet,
    merge_quorums,
)
from reliquary.trust.rules._validate import parse_rule_set, validate_document

if TYPE_CHECKING:
    from reliquary.trust.rules._policytest import (
        BASELINE_FACTS,
        CaseResult,
        PolicyTestCase,
        load_policy_tests,
        parse_policy_tests,
        run_policy_tests,
    )

# The policy tests' runner loads on first use (PEP 562): only the CLI and the tests run policy tests, and
# score-trust imports this package with its handler.
_POLICY_TESTS = frozenset(
    {
        "BASELINE_FACTS",
        "CaseResult",
        "PolicyTestCase",
        "load_policy_tests",
        "parse_policy_tests",
        "run_policy_tests",
    }
)

__all__ = [
    "BASELINE_FACTS",
    "DEFAULT_DENY_REASON",
    "CaseResult",
    "MatchedRule",
    "PolicyTestCase",
    "Quorum",
    "Rule",
    "RuleOutcome",
    "RuleSet",
    "default_rule_set",
    "load_policy_tests",
    "load_rule_set",
    "merge_quorums",
    "parse_policy_tests",
    "parse_rule_set",
    "run_policy_tests",
    "schema",
    "validate_document",
]


def __getattr__(name: str) -> Any:
    if name not in _POLICY_TESTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}._policytest"), name)
    globals()[name] = value  # once: later lookups do not come here
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
