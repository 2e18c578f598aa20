"""Validation of a rule set, in two passes, and the building of the model.

1. **Structure** (check "schema"): exactly what ``schema.json`` says, hand-written so that the Lambda layer
   needs no JSON Schema library; a test runs both over the same corpus and asserts they agree.
2. **Semantics** (check "semantic"): operators that fit the fact's type, values of the right type and
   inside the fact's range, lists without duplicates, wrap-around only on cyclic facts, quorum thresholds
   the panel can reach, rules that can match at all (no contradictions), unique ids, and no two rules
   with the same conditions.

Errors are collected (not stopped at the first) and name the file, the rule (id and index) and the field.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal

from reliquary.errors import InvalidRequestError
from reliquary.trust.facts import FACTS
from reliquary.trust.rules._engine import (
    AllOf,
    AnyOf,
    Condition,
    Effect,
    Leaf,
    Not,
    Quorum,
    Rule,
    RuleSet,
    compile_condition,
)
from reliquary.trust.rules._language import (
    CIRCUITS,
    COMBINATORS,
    CYCLIC,
    DATE_FACTS,
    DATE_PATTERN,
    ENUMS,
    ID_PATTERN,
    LANGUAGE_VERSION,
    MAX_CHILDREN,
    MAX_DEPTH,
    MAX_LIST,
    MAX_PANEL,
    MAX_RULES,
    MAX_STRING,
    MAX_TEXT,
    NAME_PATTERN,
    OPERATORS,
    OPS_BY_TYPE,
    ORDERING,
    PANEL_PATTERN,
    RANGES,
    is_finite_number,
    is_number,
)
from reliquary.trust.rules._source import SourceError, read_document

Check = Literal["syntax", "limit", "schema", "semantic"]
MAX_ENUMERATION = 20_000  # points tried when deciding whether a rule can match at all


@dataclass(frozen=True, slots=True)
class RuleError:
    """One problem: which check found it, where (rule index and id, field path) and what."""

    check: Check
    message: str
    field: str = ""
    index: int | None = None
    rule: str | None = None

    def format(self, source: str) -> str:
        where = [source]
        if self.index is not None:
            where.append(f"rule {self.rule!r} (rules[{self.index}])" if self.rule else f"rules[{self.index}]")
        if self.field:
            where.append(f"field {self.field!r}")
        return f"{': '.join(where)}: {self.message}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "check": self.check,
            "rule": self.rule,
            "index": self.index,
            "field": self.field,
            "message": self.message,
        }


def raise_errors(errors: list[RuleError], source: str, *, what: str = "rule set") -> None:
    if not errors:
        return
    lines = [e.format(source) for e in errors]
    message = lines[0] if len(lines) == 1 else f"{len(lines)} errors in {what} {source}:\n" + "\n".join(lines)
    first = errors[0]
    raise InvalidRequestError(
        message,
        file=source,
        rule=first.rule if first.rule is not None else first.index,
        field=first.field,
        errors=[e.to_dict() for e in errors],
    )


def parse_rule_set(text: str, *, source: str) -> RuleSet:
    """Parse and validate a rule set (YAML, or JSON when the text starts with ``{``). Every problem found is
    reported in one ``InvalidRequestError`` (details: file, rule, field of the first, and ``errors``)."""
    try:
        doc = read_document(text)
    except SourceError as exc:
        raise_errors([RuleError("syntax", exc.message)], source)
        raise AssertionError("unreachable") from None  # pragma: no cover
    return validate_document(doc, source=source)


def validate_document(doc: Any, *, source: str) -> RuleSet:
    """Validate plain data (already parsed) as a rule set."""
    errors = structure_errors(doc)
    raise_errors(errors, source)
    builder = _Builder()
    rule_set = builder.build(doc, source)
    raise_errors(builder.errors, source)
    assert rule_set is not None  # noqa: S101  (no errors means it was built)
    return rule_set


# --- pass 1: structure (mirrors schema.json) ------------------------------------------------------
def _text_ok(value: Any) -> bool:
    return isinstance(value, str) and 1 <= len(value) <= MAX_TEXT


def _is_integer(value: Any) -> bool:
    return (isinstance(value, int) and not isinstance(value, bool)) or (
        isinstance(value, float) and value.is_integer()
    )


def _keys_problem(node: dict[str, Any], required: Iterable[str], allowed: Iterable[str]) -> str | None:
    allowed_set = set(allowed)
    unknown = sorted(set(node) - allowed_set)
    if unknown:
        return f"unknown field {unknown[0]!r} (allowed: {', '.join(sorted(allowed_set))})"
    missing = [k for k in required if k not in node]
    if missing:
        return f"missing field {missing[0]!r}"
    return None


def structure_errors(doc: Any) -> list[RuleError]:
    errors: list[RuleError] = []
    if not isinstance(doc, dict):
        return [RuleError("schema", "a rule set is a mapping with version, name and rules")]
    problem = _keys_problem(doc, ("version", "name", "rules"), ("version", "name", "description", "rules"))
    if problem:
        errors.append(RuleError("schema", problem))
    if "version" in doc and (isinstance(doc["version"], bool) or doc["version"] != LANGUAGE_VERSION):
        errors.append(
            RuleError(
                "schema", f"unsupported language version (this is version {LANGUAGE_VERSION})", "version"
            )
        )
    if "name" in doc and not (isinstance(doc["name"], str) and re.search(NAME_PATTERN, doc["name"])):
        errors.append(RuleError("schema", f"the name must match {NAME_PATTERN}", "name"))
    if "description" in doc and not _text_ok(doc["description"]):
        errors.append(
            RuleError("schema", f"a description is a string of 1..{MAX_TEXT} characters", "description")
        )
    rules = doc.get("rules")
    if "rules" in doc and not isinstance(rules, list):
        errors.append(RuleError("schema", "rules is a list", "rules"))
    elif isinstance(rules, list):
        if len(rules) > MAX_RULES:
            errors.append(RuleError("schema", f"more than {MAX_RULES} rules", "rules"))
        for index, raw in enumerate(rules):
            errors.extend(_rule_structure(index, raw))
    return errors


def _rule_structure(index: int, raw: Any) -> list[RuleError]:
    if not isinstance(raw, dict):
        return [RuleError("schema", "a rule is a mapping with id, when and effect", index=index)]
    rid = raw.get("id") if isinstance(raw.get("id"), str) else None
    out: list[RuleError] = []

    def add(message: str, field: str, check: Check = "schema") -> None:
        out.append(RuleError(check, message, field, index, rid))

    problem = _keys_problem(raw, ("id", "when", "effect"), ("id", "description", "when", "effect", "reason"))
    if problem:
        add(problem, "")
    if "id" in raw and not (isinstance(raw["id"], str) and re.search(ID_PATTERN, raw["id"])):
        add(f"a rule id must match {ID_PATTERN}", "id")
    for key in ("description", "reason"):
        if key in raw and not _text_ok(raw[key]):
            add(f"{key} is a string of 1..{MAX_TEXT} characters", key)
    if "when" in raw:
        _condition_structure(raw["when"], "when", 1, add)
    if "effect" in raw:
        _effect_structure(raw["effect"], add)
    return out


def _condition_structure(node: Any, path: str, depth: int, add: Callable[..., None]) -> None:
    if depth > MAX_DEPTH:
        add(f"conditions are nested deeper than {MAX_DEPTH}", path, "limit")
        return
    if not isinstance(node, dict):
        add("a condition is a mapping: all / any / not, or a fact with one operator", path)
        return
    combinators = [k for k in COMBINATORS if k in node]
    if combinators:
        if len(node) != 1:
            add(
                "a condition has exactly one of all / any / not, and nothing else "
                f"(found {', '.join(sorted(node))})",
                path,
            )
            return
        key = combinators[0]
        value = node[key]
        if key == "not":
            _condition_structure(value, f"{path}.not", depth + 1, add)
            return
        if not isinstance(value, list) or not 1 <= len(value) <= MAX_CHILDREN:
            add(f"{key} is a list of 1..{MAX_CHILDREN} conditions", f"{path}.{key}")
            return
        for i, child in enumerate(value):
            _condition_structure(child, f"{path}.{key}[{i}]", depth + 1, add)
        return
    _leaf_structure(node, path, add)


def _leaf_structure(node: dict[str, Any], path: str, add: Callable[..., None]) -> None:
    if "fact" not in node:
        add("a condition is all / any / not, or a fact with one operator (no 'fact' here)", path)
        return
    unknown = sorted(k for k in node if k != "fact" and k not in OPERATORS)
    if unknown:
        add(f"unknown operator {unknown[0]!r} (operators: {', '.join(OPERATORS)})", f"{path}.{unknown[0]}")
        return
    ops = [k for k in node if k != "fact"]
    if len(ops) != 1:
        found = ", ".join(ops) if ops else "none"
        add(f"a leaf has exactly one operator (found {found})", path)
    fact = node["fact"]
    if not isinstance(fact, str) or fact not in FACTS:
        add(f"unknown fact {fact!r}", f"{path}.fact")
    for op in ops:
        problem = _value_shape_problem(op, node[op])
        if problem:
            add(problem, f"{path}.{op}")


def _string_ok(value: Any) -> bool:
    return isinstance(value, str) and len(value) <= MAX_STRING


def _strings_ok(value: Any, *, min_items: int) -> bool:
    return isinstance(value, list) and min_items <= len(value) <= MAX_LIST and all(map(_string_ok, value))


def _value_shape_problem(op: str, value: Any) -> str | None:  # noqa: PLR0911
    if op in ("eq", "ne"):
        scalar = value is None or isinstance(value, bool) or is_number(value) or _string_ok(value)
        if scalar or _strings_ok(value, min_items=0):
            return None
        return f"{op} takes a boolean, a number, a string, null or a list of strings"
    if op in ORDERING:
        return None if is_number(value) else f"{op} takes a number"
    if op == "between":
        if isinstance(value, list) and len(value) == 2 and all(map(is_number, value)):
            return None
        return "between takes [lo, hi], two numbers"
    if op in ("in", "not_in"):
        if isinstance(value, list) and not value:
            return f"{op} takes a non-empty list (an empty list never matches)"
        return None if _strings_ok(value, min_items=1) else f"{op} takes a list of strings"
    # contains
    return None if _string_ok(value) else "contains takes a string"


def _effect_structure(effect: Any, add: Callable[..., None]) -> None:
    if isinstance(effect, str):
        if effect not in ("allow", "deny"):
            add(f"unknown effect {effect!r} (allow, deny, {{quorum: ...}} or {{step_up: ...}})", "effect")
        return
    if not isinstance(effect, dict) or len(effect) != 1 or next(iter(effect)) not in ("quorum", "step_up"):
        add("an effect is allow, deny, {quorum: {panel, threshold}} or {step_up: {circuit}}", "effect")
        return
    kind, body = next(iter(effect.items()))
    path = f"effect.{kind}"
    if not isinstance(body, dict):
        add(f"{kind} is a mapping", path)
        return
    if kind == "step_up":
        problem = _keys_problem(body, ("circuit",), ("circuit",))
        if problem:
            add(problem, path)
        elif body["circuit"] not in CIRCUITS:
            add(f"unknown circuit {body['circuit']!r} (circuits: {', '.join(CIRCUITS)})", f"{path}.circuit")
        return
    problem = _keys_problem(body, ("panel", "threshold"), ("panel", "threshold"))
    if problem:
        add(problem, path)
        return
    panel, threshold = body["panel"], body["threshold"]
    if not isinstance(panel, list) or not 1 <= len(panel) <= MAX_PANEL:
        add(f"a quorum panel is a list of 1..{MAX_PANEL} members", f"{path}.panel")
    elif not all(isinstance(m, str) and re.search(PANEL_PATTERN, m) for m in panel):
        add(f"panel members must match {PANEL_PATTERN}", f"{path}.panel")
    elif len(set(panel)) != len(panel):
        add("a quorum panel has duplicate members", f"{path}.panel")
    if not _is_integer(threshold) or threshold < 1:
        add("a quorum threshold is an integer >= 1", f"{path}.threshold")


# --- pass 2: semantics and the model --------------------------------------------------------------
class _Builder:
    def __init__(self) -> None:
        self.errors: list[RuleError] = []
        self._index = 0
        self._rid: str | None = None

    def _add(self, message: str, field: str) -> None:
        self.errors.append(RuleError("semantic", message, field, self._index, self._rid))

    def build(self, doc: dict[str, Any], source: str) -> RuleSet | None:
        rules: list[Rule] = []
        first_by_id: dict[str, int] = {}
        first_by_when: dict[str, tuple[int, Rule]] = {}
        for index, raw in enumerate(doc["rules"]):
            self._index, self._rid = index, raw["id"]
            if raw["id"] in first_by_id:
                self._add(f"duplicate rule id {raw['id']!r} (first at rules[{first_by_id[raw['id']]}])", "id")
            first_by_id.setdefault(raw["id"], index)
            errors_before = len(self.errors)
            when = self._condition(raw["when"], "when")
            effect = self._effect(raw["effect"])
            if when is None or effect is None or len(self.errors) > errors_before:
                continue
            rule = Rule(raw["id"], when, effect, raw.get("description"), raw.get("reason"))
            if not _can_match(when):
                self._add("the conditions contradict each other: this rule can never match", "when")
                continue
            key = json.dumps(_normal_form(when), sort_keys=True)
            if key in first_by_when:
                other_index, other = first_by_when[key]
                same = other.effect == effect
                self._add(
                    f"rule {rule.id!r} has the same conditions as rule {other.id!r} (rules[{other_index}]) "
                    + (
                        "and the same effect: it is redundant"
                        if same
                        else "with a different effect: they conflict"
                    ),
                    "when",
                )
                continue
            first_by_when[key] = (index, rule)
            rules.append(rule)
        if self.errors:
            return None
        return RuleSet(
            name=doc["name"], rules=tuple(rules), description=doc.get("description"), source=source
        )

    # -- effects
    def _effect(self, raw: Any) -> Effect | None:
        if raw in ("allow", "deny"):
            return Effect(raw)
        if "step_up" in raw:
            return Effect("step_up", circuit=raw["step_up"]["circuit"])
        panel, threshold = raw["quorum"]["panel"], int(raw["quorum"]["threshold"])
        if threshold > len(panel):
            self._add(
                f"a quorum threshold of {threshold} is more than the panel's {len(panel)} members",
                "effect.quorum.threshold",
            )
            return None
        return Effect("quorum", quorum=Quorum(tuple(sorted(panel)), threshold))

    # -- conditions
    def _condition(self, raw: dict[str, Any], path: str) -> Condition | None:
        if "not" in raw:
            child = self._condition(raw["not"], f"{path}.not")
            return None if child is None else Not(child)
        for key, cls in (("all", AllOf), ("any", AnyOf)):
            if key in raw:
                children = [self._condition(c, f"{path}.{key}[{i}]") for i, c in enumerate(raw[key])]
                kept = tuple(c for c in children if c is not None)
                return cls(kept) if len(kept) == len(children) else None
        op = next(k for k in raw if k != "fact")
        value, problem = _leaf_value(raw["fact"], op, raw[op])
        if problem is not None:
            self._add(problem, f"{path}.{op}")
            return None
        return Leaf(raw["fact"], op, value)


def _fmt(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _leaf_value(fact: str, op: str, value: Any) -> tuple[Any, str | None]:  # noqa: PLR0911, PLR0912
    """The normalised value of a leaf, or the reason it does not fit the fact."""
    kind = FACTS[fact]
    if op not in OPS_BY_TYPE[kind]:
        return (
            None,
            (
                f"operator {op!r} does not apply to fact {fact!r} of type {kind} "
                f"(use {', '.join(sorted(OPS_BY_TYPE[kind]))})"
            ),
        )
    if kind == "bool":
        return (
            (value, None)
            if isinstance(value, bool)
            else (None, f"fact {fact!r} is a bool: {op} takes true or false")
        )
    if kind == "list[str]":
        if op == "contains":
            return value, None
        if not isinstance(value, list):
            return None, f"fact {fact!r} is a list of strings: {op} compares it with a list (as a set)"
        if len(set(value)) != len(value):
            return None, f"duplicate value in the list of {fact!r}"
        return tuple(sorted(value)), None
    if kind in ("str", "band", "sensitivity"):
        values = value if op in ("in", "not_in") else [value]
        if not all(isinstance(v, str) for v in values):
            return (
                None,
                (
                    f"fact {fact!r} is a {kind}: "
                    f"{op} takes {'a list of strings' if op in ('in', 'not_in') else 'a string'}"
                ),
            )
        if len(set(values)) != len(values):
            return None, f"duplicate value in the list of {fact!r}"
        allowed = ENUMS.get(kind)
        for v in values:
            if allowed is not None and v not in allowed:
                return None, f"{v!r} is not a {kind} (one of {', '.join(allowed)})"
            if fact in DATE_FACTS and not _is_date(v):
                return None, f"{v!r} is not a date YYYY-MM-DD"
        return (tuple(sorted(values)) if op in ("in", "not_in") else value), None
    # numeric: int, int|null, float
    nullable = kind == "int|null"
    if value is None:
        # (ordering operators and between take numbers: the structure check refuses null there)
        return (None, None) if nullable else (None, f"fact {fact!r} is never null")
    numbers = value if op == "between" else [value]
    if not all(is_number(v) for v in numbers):
        return None, f"fact {fact!r} is a number: {op} takes {'[lo, hi]' if op == 'between' else 'a number'}"
    if not all(is_finite_number(v) for v in numbers):
        return None, f"{op} takes a finite number"
    if kind == "float":
        numbers = [float(v) for v in numbers]
    else:
        if not all(float(v).is_integer() for v in numbers):
            return None, f"fact {fact!r} is an integer: {', '.join(map(str, numbers))} is not"
        numbers = [int(v) for v in numbers]
    lo, hi = RANGES[fact]
    span = f"[{_fmt(lo)}, {_fmt(hi)}]" if hi is not None else f">= {_fmt(lo)}"
    for v in numbers:
        if v < lo or (hi is not None and v > hi):
            return None, f"{_fmt(v)} is outside the range of {fact!r} ({span})"
    if (op == "lt" and numbers[0] <= lo) or (op == "gt" and hi is not None and numbers[0] >= hi):
        return None, f"{fact} {op} {_fmt(numbers[0])} can never be true ({fact!r} is {span})"
    if op == "between":
        first, last = numbers
        if first > last and fact not in CYCLIC:
            return (
                None,
                (
                    f"between [{_fmt(first)}, {_fmt(last)}] has lo > hi "
                    f"(only {', '.join(sorted(CYCLIC))} wrap around)"
                ),
            )
        return (first, last), None
    return numbers[0], None


def _is_date(value: str) -> bool:
    if not re.search(DATE_PATTERN, value):
        return False
    try:
        dt.date.fromisoformat(value)
    except ValueError:
        return False
    return True


# --- can a rule match at all? ---------------------------------------------------------------------
def _leaves(cond: Condition) -> Iterable[Leaf]:
    if isinstance(cond, Leaf):
        yield cond
    elif isinstance(cond, Not):
        yield from _leaves(cond.child)
    else:
        for child in cond.children:
            yield from _leaves(child)


def _points(fact: str, constants: list[Any]) -> list[Any] | None:
    """Values of ``fact`` that cover every region the constants cut its range into."""
    kind = FACTS[fact]
    if kind == "bool":
        return [False, True]
    if kind in ENUMS:
        return list(ENUMS[kind])
    flat: list[Any] = []
    for c in constants:
        flat.extend(c if isinstance(c, tuple) else [c])
    if kind == "str":
        return [*sorted(set(flat)), "\x00 none of these"]
    if kind == "list[str]":
        members = sorted(set(flat))
        if len(members) > 8:
            return None
        return [list(s) for r in range(len(members) + 1) for s in itertools.combinations(members, r)]
    numbers = sorted({v for v in flat if v is not None})
    lo, hi = RANGES[fact]
    if kind == "float":
        top = hi if hi is not None else (numbers[-1] + 1 if numbers else lo + 1)
        cuts = sorted({lo, top, *numbers})
        pts: list[Any] = [*cuts, *((a + b) / 2 for a, b in itertools.pairwise(cuts))]
    else:
        top = hi if hi is not None else (numbers[-1] + 2 if numbers else lo + 2)
        candidates = {lo, top, *(n + d for n in numbers for d in (-1, 0, 1))}
        pts = sorted(v for v in candidates if lo <= v <= top)
    if kind == "int|null":
        pts.append(None)
    return pts


def _can_match(cond: Condition) -> bool:
    """Whether some facts satisfy ``cond``, by trying one value per region of every fact's range that the
    rule's constants cut out. Sound and complete for this language; rules too big to enumerate (more than
    MAX_ENUMERATION combinations) are assumed to be able to match."""
    constants: dict[str, list[Any]] = {}
    for leaf in _leaves(cond):
        constants.setdefault(leaf.fact, []).append(leaf.value)
    axes: list[tuple[str, list[Any]]] = []
    size = 1
    for fact, values in constants.items():
        points = _points(fact, values)
        if points is None:
            return True
        axes.append((fact, points))
        size *= len(points)
        if size > MAX_ENUMERATION:
            return True
    test = compile_condition(cond)
    names = [name for name, _ in axes]
    return any(
        test(dict(zip(names, combo, strict=True))) for combo in itertools.product(*(p for _, p in axes))
    )


def _normal_form(cond: Condition) -> Any:
    """The condition as JSON with the children of all / any sorted: equal for conditions that differ only
    in order."""
    if isinstance(cond, Leaf):
        return cond.to_json()
    if isinstance(cond, Not):
        return {"not": _normal_form(cond.child)}
    key = "all" if isinstance(cond, AllOf) else "any"
    return {
        key: sorted((_normal_form(c) for c in cond.children), key=lambda j: json.dumps(j, sort_keys=True))
    }
