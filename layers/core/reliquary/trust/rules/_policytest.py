"""Policy tests, like ``opa test`` or ``cedar run-tests``: cases of facts and the outcome they must get.

A test file is a YAML (or JSON) list of cases::

    - name: impossible travel is denied even at full trust
      facts: {score: 1.0, band: high, history.impossible_travel: true}   # merged over BASELINE_FACTS
      expect: {effect: deny, rules: [deny-impossible-travel]}           # rules: ids that must match

``expect.effect`` is one of deny, step_up, require_quorum, allow; ``expect.rules`` (optional) lists rule
ids that must be among the matched rules; ``expect.circuits`` (optional, for step_up) the exact circuits.
Facts are checked against FACTS (names and types), and expected rule ids against the rule set, so a typo
fails the file rather than passing a case vacuously.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from reliquary.trust.facts import BANDS, FACTS, SENSITIVITIES
from reliquary.trust.rules._engine import RuleOutcome, RuleSet
from reliquary.trust.rules._language import CIRCUITS, OUTCOMES
from reliquary.trust.rules._source import SourceError, read_document
from reliquary.trust.rules._validate import RuleError, raise_errors

# Neutral facts: a verified, known, unremarkable request of medium trust for an internal item, at noon
# on a Wednesday, with no history. No default rule matches them: they are denied by default.
BASELINE_FACTS: Final[Mapping[str, Any]] = {
    "score": 0.5,
    "band": "medium",
    "claims.verified": True,
    "claims.device_known": True,
    "claims.region_allowed": True,
    "claims.in_window": True,
    "claims.pattern_matched": True,
    "roles": [],
    "purpose": "",
    "sensitivity": "internal",
    "time.hour": 12,
    "time.weekday": 2,
    "time.date": "2025-01-01",
    "history.requests_1h": 0,
    "history.failures_1h": 0,
    "history.requests_24h": 0,
    "history.failures_24h": 0,
    "history.distinct_devices_30d": 1,
    "history.distinct_regions_30d": 1,
    "history.seconds_since_last": None,
    "history.impossible_travel": False,
}


@dataclass(frozen=True, slots=True)
class PolicyTestCase:
    name: str
    facts: Mapping[str, Any]  # complete: the baseline with the case's facts over it
    effect: str
    rules: tuple[str, ...] = ()
    circuits: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class CaseResult:
    case: PolicyTestCase
    outcome: RuleOutcome
    problems: tuple[str, ...]

    @property
    def passed(self) -> bool:
        return not self.problems


def fact_type_problem(name: str, value: Any) -> str | None:
    """Why ``value`` is not a value of fact ``name`` (None if it is)."""
    kind = FACTS.get(name)
    if kind is None:
        return f"unknown fact {name!r}"
    is_int = isinstance(value, int) and not isinstance(value, bool)
    ok = {
        "bool": isinstance(value, bool),
        "int": is_int,
        "int|null": is_int or value is None,
        "float": (is_int or isinstance(value, float)) and 0.0 <= value <= 1.0,
        "str": isinstance(value, str),
        "band": value in BANDS,
        "sensitivity": value in SENSITIVITIES,
        "list[str]": isinstance(value, list) and all(isinstance(v, str) for v in value),
    }[kind]
    return None if ok else f"fact {name!r} must be a {kind}, not {value!r}"


def parse_policy_tests(text: str, *, source: str, rule_set: RuleSet) -> list[PolicyTestCase]:
    try:
        doc = read_document(text)
    except SourceError as exc:
        raise_errors([RuleError("syntax", exc.message)], source, what="policy tests")
        raise AssertionError("unreachable") from None  # pragma: no cover
    errors: list[RuleError] = []
    cases: list[PolicyTestCase] = []
    if not isinstance(doc, list) or not doc:
        raise_errors([RuleError("schema", "policy tests are a non-empty list of cases")], source)
    known_ids = {r.id for r in rule_set.rules}
    seen: set[str] = set()
    for index, raw in enumerate(doc):
        name = raw.get("name") if isinstance(raw, dict) else None
        case_name = name if isinstance(name, str) else None
        problems = _case_problems(raw, known_ids, seen)
        errors.extend(RuleError("schema", message, field, index, case_name) for field, message in problems)
        if problems:
            continue
        expect = raw["expect"]
        cases.append(
            PolicyTestCase(
                name=raw["name"],
                facts={**BASELINE_FACTS, **raw.get("facts", {})},
                effect=expect["effect"],
                rules=tuple(expect.get("rules", ())),
                circuits=tuple(expect["circuits"]) if "circuits" in expect else None,
            )
        )
    raise_errors(errors, source, what="policy tests")
    return cases


def _case_problems(raw: Any, known_ids: set[str], seen: set[str]) -> list[tuple[str, str]]:
    if not isinstance(raw, dict):
        return [("", "a case is a mapping with name, facts and expect")]
    out: list[tuple[str, str]] = []
    unknown = sorted(set(raw) - {"name", "description", "facts", "expect"})
    if unknown:
        out.append((unknown[0], f"unknown field {unknown[0]!r}"))
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        out.append(("name", "a case needs a name"))
    elif name in seen:
        out.append(("name", f"duplicate case name {name!r}"))
    else:
        seen.add(name)
    facts = raw.get("facts", {})
    if not isinstance(facts, dict):
        out.append(("facts", "facts is a mapping of fact names to values"))
    else:
        out.extend((f"facts.{k}", p) for k, v in facts.items() if (p := fact_type_problem(k, v)) is not None)
    expect = raw.get("expect")
    if not isinstance(expect, dict) or expect.get("effect") not in OUTCOMES:
        out.append(("expect.effect", f"expect.effect is one of {', '.join(OUTCOMES)}"))
        return out
    extra = sorted(set(expect) - {"effect", "rules", "circuits"})
    if extra:
        out.append((f"expect.{extra[0]}", f"unknown field {extra[0]!r}"))
    rules = expect.get("rules", [])
    if not isinstance(rules, list) or not all(isinstance(r, str) for r in rules):
        out.append(("expect.rules", "expect.rules is a list of rule ids"))
    else:
        out.extend(("expect.rules", f"no rule {r!r} in the rule set") for r in rules if r not in known_ids)
    circuits = expect.get("circuits", [])
    if not isinstance(circuits, list) or not all(c in CIRCUITS for c in circuits):
        out.append(("expect.circuits", f"expect.circuits is a list of {', '.join(CIRCUITS)}"))
    return out


def load_policy_tests(path: str | Path, *, rule_set: RuleSet) -> list[PolicyTestCase]:
    path = Path(path)
    return parse_policy_tests(path.read_text(encoding="utf-8"), source=str(path), rule_set=rule_set)


def run_policy_tests(rule_set: RuleSet, cases: list[PolicyTestCase]) -> list[CaseResult]:
    """Evaluate every case; a case passes when the effect is as expected, every expected rule matched,
    and (if given) the step-up circuits are exactly the expected ones."""
    results: list[CaseResult] = []
    for case in cases:
        outcome = rule_set.evaluate(case.facts)
        problems: list[str] = []
        if outcome.effect != case.effect:
            problems.append(f"expected {case.effect}, got {outcome.effect} ({outcome.reason})")
        matched = set(outcome.matched_ids)
        problems.extend(f"rule {r!r} did not match" for r in case.rules if r not in matched)
        if case.circuits is not None and tuple(sorted(case.circuits)) != tuple(sorted(outcome.circuits)):
            problems.append(f"expected circuits {list(case.circuits)}, got {list(outcome.circuits)}")
        results.append(CaseResult(case, outcome, tuple(problems)))
    return results
