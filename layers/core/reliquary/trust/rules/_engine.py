"""A validated rule set, compiled into closures once, and its evaluation: every rule is evaluated, the
matches are collected, and the strongest effect wins (deny > step_up > require_quorum > allow > default
deny)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias

from reliquary.errors import InvalidRequestError
from reliquary.jcs import canonicalize
from reliquary.trust.facts import FACTS
from reliquary.trust.rules._language import CIRCUITS, LANGUAGE_VERSION

Test: TypeAlias = Callable[[Mapping[str, Any]], bool]
Outcome = Literal["deny", "step_up", "require_quorum", "allow"]
EffectKind = Literal["deny", "step_up", "quorum", "allow"]
DEFAULT_DENY_REASON = "no rule allows this request"


# --- conditions -----------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Leaf:
    """``{fact: NAME, OP: VALUE}``; values are normalised (floats for the score, sorted tuples for sets)."""

    fact: str
    op: str
    value: Any

    def to_json(self) -> dict[str, Any]:
        value = list(self.value) if isinstance(self.value, tuple) else self.value
        return {"fact": self.fact, self.op: value}


@dataclass(frozen=True, slots=True)
class AllOf:
    children: tuple[Condition, ...]

    def to_json(self) -> dict[str, Any]:
        return {"all": [c.to_json() for c in self.children]}


@dataclass(frozen=True, slots=True)
class AnyOf:
    children: tuple[Condition, ...]

    def to_json(self) -> dict[str, Any]:
        return {"any": [c.to_json() for c in self.children]}


@dataclass(frozen=True, slots=True)
class Not:
    child: Condition

    def to_json(self) -> dict[str, Any]:
        return {"not": self.child.to_json()}


Condition: TypeAlias = Leaf | AllOf | AnyOf | Not


# --- effects and rules ----------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Quorum:
    """``threshold`` approvals out of ``panel`` (sorted, distinct) are required."""

    panel: tuple[str, ...]
    threshold: int

    def to_json(self) -> dict[str, Any]:
        return {"panel": list(self.panel), "threshold": self.threshold}


@dataclass(frozen=True, slots=True)
class Effect:
    kind: EffectKind
    circuit: str | None = None  # step_up
    quorum: Quorum | None = None  # quorum

    def to_json(self) -> str | dict[str, Any]:
        if self.kind == "step_up":
            return {"step_up": {"circuit": self.circuit}}
        if self.quorum is not None:
            return {"quorum": self.quorum.to_json()}
        return self.kind


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    when: Condition
    effect: Effect
    description: str | None = None
    reason: str | None = None

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"id": self.id, "when": self.when.to_json(), "effect": self.effect.to_json()}
        if self.description is not None:
            body["description"] = self.description
        if self.reason is not None:
            body["reason"] = self.reason
        return body


@dataclass(frozen=True, slots=True)
class MatchedRule:
    """A rule that matched a request, as the outcome (and the audit log) records it."""

    id: str
    effect: EffectKind
    reason: str

    def to_dict(self) -> dict[str, str]:
        return {"id": self.id, "effect": self.effect, "reason": self.reason}


@dataclass(frozen=True, slots=True)
class RuleOutcome:
    """The decision: ``effect``, why, every matched rule (in rule-set order) and the policy version.

    ``circuits`` (for step_up) are the circuits every matched step-up rule asks for, in CIRCUITS order;
    ``quorum`` (for require_quorum) is the merged requirement of the matched quorum rules."""

    effect: Outcome
    reason: str
    matched: tuple[MatchedRule, ...]
    policy_version: str
    circuits: tuple[str, ...] = ()
    quorum: Quorum | None = None

    @property
    def matched_ids(self) -> tuple[str, ...]:
        return tuple(m.id for m in self.matched)

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "effect": self.effect,
            "reason": self.reason,
            "matched": [m.to_dict() for m in self.matched],
            "policy_version": self.policy_version,
        }
        if self.circuits:
            body["circuits"] = list(self.circuits)
        if self.quorum is not None:
            body["quorum"] = self.quorum.to_json()
        return body


def merge_quorums(quorums: list[Quorum]) -> Quorum:
    """One requirement that implies every one of ``quorums``: the union U of the panels, and the threshold
    max(t_i + |U| - |P_i|). Any set of approvals from U that reaches it holds at least t_i approvals from
    every P_i (at most |U| - |P_i| of them lie outside P_i), so merging never weakens a rule. With equal
    panels this is simply the largest threshold; it never exceeds |U|."""
    if len(quorums) == 1:
        return quorums[0]
    union = tuple(sorted({member for q in quorums for member in q.panel}))
    threshold = max(q.threshold + len(union) - len(q.panel) for q in quorums)
    return Quorum(panel=union, threshold=threshold)


# --- compilation ----------------------------------------------------------------------------------
def compile_condition(cond: Condition) -> Test:  # noqa: PLR0911, PLR0912  (one branch per operator)
    """A closure ``facts -> bool`` for a validated condition."""
    if isinstance(cond, AllOf):
        tests = tuple(compile_condition(c) for c in cond.children)
        if len(tests) == 1:
            return tests[0]
        if len(tests) == 2:
            first, second = tests
            return lambda f: first(f) and second(f)

        def all_of(f: Mapping[str, Any]) -> bool:
            for t in tests:  # noqa: SIM110  (a plain loop is faster than all() over a generator)
                if not t(f):
                    return False
            return True

        return all_of
    if isinstance(cond, AnyOf):
        tests = tuple(compile_condition(c) for c in cond.children)
        if len(tests) == 1:
            return tests[0]

        def any_of(f: Mapping[str, Any]) -> bool:
            for t in tests:  # noqa: SIM110  (a plain loop is faster than any() over a generator)
                if t(f):
                    return True
            return False

        return any_of
    if isinstance(cond, Not):
        inner = compile_condition(cond.child)
        return lambda f: not inner(f)

    name, op, v = cond.fact, cond.op, cond.value
    kind = FACTS[name]
    if kind == "list[str]" and op in ("eq", "ne"):
        wanted = frozenset(v)
        if op == "eq":
            return lambda f: frozenset(f[name]) == wanted
        return lambda f: frozenset(f[name]) != wanted
    if op == "eq":
        if v is None:
            return lambda f: f[name] is None
        return lambda f: f[name] == v
    if op == "ne":
        if v is None:
            return lambda f: f[name] is not None
        return lambda f: f[name] != v
    if op in ("in", "not_in"):
        members = frozenset(v)
        if op == "in":
            return lambda f: f[name] in members
        return lambda f: f[name] not in members
    if op == "contains":
        return lambda f: v in f[name]
    nullable = kind == "int|null"
    if op == "between":
        lo, hi = v
        if lo <= hi:
            if nullable:
                return lambda f: (x := f[name]) is not None and lo <= x <= hi
            return lambda f: lo <= f[name] <= hi
        # Wrap-around on a cyclic fact (validated): hour between [22, 6] is 22..23 or 0..6.
        return lambda f: (x := f[name]) >= lo or x <= hi
    if nullable:
        if op == "lt":
            return lambda f: (x := f[name]) is not None and x < v
        if op == "lte":
            return lambda f: (x := f[name]) is not None and x <= v
        if op == "gt":
            return lambda f: (x := f[name]) is not None and x > v
        return lambda f: (x := f[name]) is not None and x >= v
    if op == "lt":
        return lambda f: f[name] < v
    if op == "lte":
        return lambda f: f[name] <= v
    if op == "gt":
        return lambda f: f[name] > v
    return lambda f: f[name] >= v


def condition_facts(cond: Condition) -> set[str]:
    if isinstance(cond, Leaf):
        return {cond.fact}
    if isinstance(cond, Not):
        return condition_facts(cond.child)
    return set().union(*(condition_facts(c) for c in cond.children))


# --- the rule set ---------------------------------------------------------------------------------
_KIND_RANK = {"deny": 0, "step_up": 1, "quorum": 2, "allow": 3}


@dataclass(frozen=True, slots=True, eq=False)
class RuleSet:
    """A validated, compiled rule set. Build it with ``parse_rule_set`` or ``load_rule_set``."""

    name: str
    rules: tuple[Rule, ...]
    description: str | None = None
    source: str = "<memory>"
    version: int = LANGUAGE_VERSION
    policy_version: str = field(init=False)
    _compiled: tuple[tuple[Test, MatchedRule, Rule], ...] = field(init=False, repr=False)
    _used: frozenset[str] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        digest = hashlib.sha256(canonicalize(self.to_json())).hexdigest()
        object.__setattr__(self, "policy_version", digest)
        compiled = tuple(
            (
                compile_condition(rule.when),
                MatchedRule(rule.id, rule.effect.kind, rule.reason or rule.description or f"rule {rule.id}"),
                rule,
            )
            for rule in self.rules
        )
        object.__setattr__(self, "_compiled", compiled)
        used = frozenset().union(*(condition_facts(r.when) for r in self.rules))
        object.__setattr__(self, "_used", used)

    def to_json(self) -> dict[str, Any]:
        """The canonical form (what the policy version hashes): the validated model, values normalised."""
        body: dict[str, Any] = {
            "version": self.version,
            "name": self.name,
            "rules": [r.to_json() for r in self.rules],
        }
        if self.description is not None:
            body["description"] = self.description
        return body

    @property
    def facts_used(self) -> frozenset[str]:
        return self._used

    def evaluate(self, facts: Mapping[str, Any]) -> RuleOutcome:
        """Evaluate every rule on ``facts`` (all of FACTS; a fact the rules read that is missing is an
        ``InvalidRequestError``) and decide."""
        if not facts.keys() >= self._used:
            missing = sorted(self._used - facts.keys())
            raise InvalidRequestError("facts are missing for the trust rules", missing=missing)
        try:
            matched = [(m, r) for test, m, r in self._compiled if test(facts)]
        except TypeError:  # e.g. None or a string where a number belongs; scoring never sends these
            raise InvalidRequestError("a fact has the wrong type for the trust rules") from None
        if not matched:
            return RuleOutcome("deny", DEFAULT_DENY_REASON, (), self.policy_version)
        best = min(_KIND_RANK[m.effect] for m, _ in matched)
        records = tuple(m for m, _ in matched)
        if best == 0:
            reason = next(m.reason for m in records if m.effect == "deny")
            return RuleOutcome("deny", reason, records, self.policy_version)
        if best == 1:
            wanted = {r.effect.circuit for m, r in matched if m.effect == "step_up"}
            circuits = tuple(c for c in CIRCUITS if c in wanted)
            reason = "; ".join(m.reason for m in records if m.effect == "step_up")
            return RuleOutcome("step_up", reason, records, self.policy_version, circuits=circuits)
        if best == 2:
            quorum = merge_quorums([r.effect.quorum for _, r in matched if r.effect.quorum is not None])
            reason = "; ".join(m.reason for m in records if m.effect == "quorum")
            return RuleOutcome("require_quorum", reason, records, self.policy_version, quorum=quorum)
        reason = next(m.reason for m in records if m.effect == "allow")
        return RuleOutcome("allow", reason, records, self.policy_version)
