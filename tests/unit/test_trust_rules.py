"""The trust rule language: the shipped policy and its tests, the bad-rules corpus (and that jsonschema
agrees with the runtime validator on structure), precedence, operators, null, wrap-around, the policy
version, and a property: adding an allow rule never turns a matched deny into allow."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from reliquary.errors import InvalidRequestError
from reliquary.trust.facts import FACTS
from reliquary.trust.rules import (
    BASELINE_FACTS,
    DEFAULT_DENY_REASON,
    Quorum,
    RuleSet,
    default_rule_set,
    load_policy_tests,
    load_rule_set,
    merge_quorums,
    parse_rule_set,
    run_policy_tests,
    schema,
)
from reliquary.trust.rules.__main__ import main
from reliquary.trust.rules._language import CIRCUITS, build_schema
from reliquary.trust.rules._source import read_document
from reliquary.trust.rules._validate import structure_errors
from reliquary.zk.policy import CIRCUITS as ZK_CIRCUITS

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "layers" / "core" / "reliquary" / "trust" / "rules"
DEFAULT_RULES = PACKAGE / "default_rules.yaml"
DEFAULT_TESTS = PACKAGE / "default_rules.test.yaml"
BAD = sorted((REPO / "tests" / "vectors" / "bad_rules").glob("*.yaml"))


def rules(*body: dict[str, Any], name: str = "t") -> RuleSet:
    return parse_rule_set(json.dumps({"version": 1, "name": name, "rules": list(body)}), source="t.json")


def facts(**over: Any) -> dict[str, Any]:
    return {**BASELINE_FACTS, **{k.replace("__", "."): v for k, v in over.items()}}


def leaf(fact: str, op: str, value: Any) -> dict[str, Any]:
    return {"fact": fact, op: value}


def rule(rid: str, when: dict[str, Any], effect: Any = "allow") -> dict[str, Any]:
    return {"id": rid, "when": when, "effect": effect}


# --- the shipped policy, its tests and the CLI ----------------------------------------------------
def test_default_rules_load_and_their_tests_pass() -> None:
    rule_set = load_rule_set(DEFAULT_RULES)
    assert rule_set.policy_version == default_rule_set().policy_version
    cases = load_policy_tests(DEFAULT_TESTS, rule_set=rule_set)
    results = run_policy_tests(rule_set, cases)
    assert all(r.passed for r in results), [(r.case.name, r.problems) for r in results if not r.passed]
    # Every default rule is exercised by some case.
    matched = {rid for r in results for rid in r.outcome.matched_ids}
    assert matched == {r.id for r in rule_set.rules}
    # And the baseline is neutral: no default rule beyond the medium allow matches a confidential item.
    assert rule_set.evaluate(facts(sensitivity="confidential")).matched == ()


def test_cli_exit_codes(tmp_path: Path) -> None:
    out, err = io.StringIO(), io.StringIO()
    assert main(["check", str(DEFAULT_RULES)], out=out, err=err) == 0
    assert default_rule_set().policy_version in out.getvalue()
    assert main(["test", str(DEFAULT_RULES), str(DEFAULT_TESTS)], out=out, err=err) == 0
    failing = tmp_path / "failing.yaml"
    failing.write_text("- name: wrong on purpose\n  expect: {effect: allow}\n  facts: {band: low}\n")
    out = io.StringIO()
    assert main(["test", str(DEFAULT_RULES), str(failing)], out=out, err=err) == 1
    assert "FAIL wrong on purpose: expected allow, got deny" in out.getvalue()
    err = io.StringIO()
    assert main(["check", str(BAD[0])], out=out, err=err) == 2
    assert BAD[0].name in err.getvalue()
    typo = tmp_path / "typo.yaml"
    typo.write_text("- name: x\n  facts: {scroe: 1}\n  expect: {effect: allow, rules: [no-such-rule]}\n")
    err = io.StringIO()
    assert main(["test", str(DEFAULT_RULES), str(typo)], out=out, err=err) == 2
    assert "unknown fact 'scroe'" in err.getvalue()
    assert "no rule 'no-such-rule'" in err.getvalue()


def test_cli_as_a_module() -> None:
    run = subprocess.run(  # noqa: S603
        [sys.executable, "-m", "reliquary.trust.rules", "test", str(DEFAULT_RULES), str(DEFAULT_TESTS)],
        capture_output=True,
        text=True,
        check=False,
        cwd=REPO / "layers" / "core",
    )
    assert run.returncode == 0, run.stderr
    assert "0 failed" in run.stdout


def test_schema_is_shipped_and_matches_the_language() -> None:
    assert schema() == build_schema() == json.loads((PACKAGE / "schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema())
    assert schema()["$defs"]["leaf"]["properties"]["fact"]["enum"] == list(FACTS)
    assert CIRCUITS == ZK_CIRCUITS
    jsonschema.validate(yaml.safe_load(DEFAULT_RULES.read_text()), schema())


# --- the bad-rules corpus -------------------------------------------------------------------------
def test_the_corpus_is_big_enough() -> None:
    assert len(BAD) >= 20


@pytest.mark.parametrize("path", BAD, ids=lambda p: p.stem)
def test_bad_rules_are_rejected(path: Path) -> None:
    expected = re.match(r"# expect: (.*)", path.read_text().splitlines()[0])
    assert expected is not None, "the first line must be '# expect: ...'"
    with pytest.raises(InvalidRequestError) as caught:
        load_rule_set(path)
    message = caught.value.message
    assert expected.group(1) in message
    assert str(path) in message
    errors = caught.value.details["errors"]
    assert caught.value.details["file"] == str(path)
    if errors[0]["index"] is not None:  # a problem inside a rule names it
        assert "rules[" in message
        if errors[0]["rule"]:
            assert f"rule {errors[0]['rule']!r}" in message
    # jsonschema agrees with the runtime validator on structure: exactly the "schema" failures are invalid.
    checks = {e["check"] for e in errors}
    if checks <= {"schema", "semantic"}:
        doc = read_document(path.read_text())  # the same data both validators see (dates stay strings)
        schema_valid = jsonschema.Draft202012Validator(schema()).is_valid(doc)
        assert schema_valid == ("schema" not in checks), (checks, message)


_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-3, 30)
    | st.floats(-1, 2)
    | st.sampled_from(
        ["allow", "deny", "score", "band", "eq", "all", "x", "device_proof", "strict", "", "restricted"]
    ),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.sampled_from(["fact", "eq", "gte", "in", "all", "not", "id", "quorum", "panel"]),
            inner,
            max_size=3,
        )
    ),
    max_leaves=6,
)


def _nodes(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [path]
    if isinstance(value, dict):
        for k, v in value.items():
            out.extend(_nodes(v, (*path, k)))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out.extend(_nodes(v, (*path, i)))
    return out


_DEFAULT_DOC = read_document(DEFAULT_RULES.read_text())
_PATHS = _nodes(_DEFAULT_DOC)[1:]


@settings(max_examples=200, deadline=None)
@given(path=st.sampled_from(_PATHS), junk=_JSON)
def test_structure_check_agrees_with_jsonschema(path: tuple[Any, ...], junk: Any) -> None:
    doc = json.loads(json.dumps(_DEFAULT_DOC))
    node = doc
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = junk
    assert jsonschema.Draft202012Validator(schema()).is_valid(doc) == (structure_errors(doc) == [])


def test_errors_are_all_reported_with_file_rule_and_field() -> None:
    with pytest.raises(InvalidRequestError) as caught:
        rules(
            rule("a", leaf("score", "gt", 2)),
            rule("b", leaf("band", "eq", "extreme")),
        )
    details = caught.value.details
    assert details["file"] == "t.json"
    assert details["rule"] == "a"
    assert details["field"] == "when.gt"
    assert [e["rule"] for e in details["errors"]] == ["a", "b"]


def test_limits() -> None:
    many = [rule(f"r{i}", leaf("history.requests_1h", "eq", i)) for i in range(1001)]
    with pytest.raises(InvalidRequestError, match="more than 1000 rules"):
        rules(*many)
    with pytest.raises(InvalidRequestError, match="larger than"):
        parse_rule_set("#" * (1 << 20) + "\n", source="big.yaml")


# --- evaluation: precedence -----------------------------------------------------------------------
PRECEDENCE = rules(
    rule("d", leaf("purpose", "eq", "deny"), "deny"),
    rule("s", leaf("roles", "contains", "s"), {"step_up": {"circuit": "device_proof"}}),
    rule("q", leaf("roles", "contains", "q"), {"quorum": {"panel": ["a", "b"], "threshold": 1}}),
    rule("a", leaf("roles", "contains", "a")),
)


@pytest.mark.parametrize(
    ("purpose", "roles", "effect"),
    [
        ("deny", ["s", "q", "a"], "deny"),
        ("", ["s", "q", "a"], "step_up"),
        ("", ["q", "a"], "require_quorum"),
        ("", ["a"], "allow"),
        ("", [], "deny"),
    ],
)
def test_precedence(purpose: str, roles: list[str], effect: str) -> None:
    outcome = PRECEDENCE.evaluate(facts(purpose=purpose, roles=roles))
    assert outcome.effect == effect
    assert outcome.policy_version == PRECEDENCE.policy_version
    assert set(outcome.matched_ids) == ({"d"} if purpose == "deny" else set()) | set(roles)
    if not roles and purpose != "deny":
        assert outcome.reason == DEFAULT_DENY_REASON
    if effect == "step_up":
        assert outcome.circuits == ("device_proof",)
    if effect == "require_quorum":
        assert outcome.quorum == Quorum(("a", "b"), 1)


def test_outcome_records_reasons() -> None:
    outcome = default_rule_set().evaluate(facts(history__impossible_travel=True))
    assert outcome.to_dict()["matched"] == [
        {
            "id": "deny-impossible-travel",
            "effect": "deny",
            "reason": "travel faster than possible since the last access",
        },
        {
            "id": "allow-medium-trust-low-sensitivity",
            "effect": "allow",
            "reason": "medium trust for a public or internal item",
        },
    ]
    assert outcome.reason == "travel faster than possible since the last access"


def test_quorum_merge_never_weakens_a_rule() -> None:
    assert merge_quorums([Quorum(("a", "b", "c"), 2), Quorum(("a", "b", "c"), 3)]) == Quorum(
        ("a", "b", "c"), 3
    )
    merged = merge_quorums([Quorum(("a", "b"), 2), Quorum(("c", "d"), 1)])
    assert merged == Quorum(("a", "b", "c", "d"), 4)  # {a, c} would satisfy a naive union with threshold 2
    merged = merge_quorums([Quorum(("a", "b", "c"), 2), Quorum(("b", "c", "d"), 2)])
    assert merged == Quorum(("a", "b", "c", "d"), 3)


def test_missing_facts_are_refused() -> None:
    incomplete = dict(BASELINE_FACTS)
    del incomplete["score"]
    with pytest.raises(InvalidRequestError) as caught:
        default_rule_set().evaluate(incomplete)
    assert caught.value.details["missing"] == ["score"]
    with pytest.raises(InvalidRequestError, match="wrong type"):
        default_rule_set().evaluate(facts(score=None))


# --- operators ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("condition", "fact_values", "matches"),
    [
        (leaf("claims.verified", "eq", True), {"claims.verified": True}, True),
        (leaf("claims.verified", "ne", True), {"claims.verified": True}, False),
        (leaf("score", "gte", 0.8), {"score": 0.8}, True),
        (leaf("score", "gt", 0.8), {"score": 0.8}, False),
        (leaf("score", "lt", 1), {"score": 0.99}, True),
        (leaf("score", "lte", 0.5), {"score": 0.5}, True),
        (leaf("score", "between", [0.2, 0.4]), {"score": 0.4}, True),
        (leaf("score", "eq", 1), {"score": 1.0}, True),
        (leaf("history.requests_1h", "between", [2, 4]), {"history.requests_1h": 5}, False),
        (leaf("history.requests_1h", "ne", 3), {"history.requests_1h": 5}, True),
        (leaf("band", "in", ["medium", "high"]), {"band": "high"}, True),
        (leaf("band", "not_in", ["medium", "high"]), {"band": "high"}, False),
        (leaf("sensitivity", "ne", "public"), {"sensitivity": "internal"}, True),
        (leaf("purpose", "in", ["backup"]), {"purpose": "support"}, False),
        (leaf("time.date", "eq", "2025-01-01"), {"time.date": "2025-01-01"}, True),
        (leaf("roles", "contains", "support"), {"roles": ["admin", "support"]}, True),
        (leaf("roles", "contains", "support"), {"roles": []}, False),
        (leaf("roles", "eq", ["b", "a"]), {"roles": ["a", "b"]}, True),
        (leaf("roles", "ne", ["a"]), {"roles": ["a", "b"]}, True),
        # wrap-around on the hour and the weekday
        (leaf("time.hour", "between", [22, 6]), {"time.hour": 23}, True),
        (leaf("time.hour", "between", [22, 6]), {"time.hour": 0}, True),
        (leaf("time.hour", "between", [22, 6]), {"time.hour": 6}, True),
        (leaf("time.hour", "between", [22, 6]), {"time.hour": 7}, False),
        (leaf("time.hour", "between", [22, 6]), {"time.hour": 21}, False),
        (leaf("time.weekday", "between", [5, 0]), {"time.weekday": 6}, True),
        (leaf("time.weekday", "between", [5, 0]), {"time.weekday": 2}, False),
        # null: ordering and between are false; eq / ne are equality
        (leaf("history.seconds_since_last", "lt", 60), {"history.seconds_since_last": None}, False),
        (leaf("history.seconds_since_last", "gte", 0), {"history.seconds_since_last": None}, False),
        (leaf("history.seconds_since_last", "between", [0, 9]), {"history.seconds_since_last": None}, False),
        (leaf("history.seconds_since_last", "eq", None), {"history.seconds_since_last": None}, True),
        (leaf("history.seconds_since_last", "ne", None), {"history.seconds_since_last": None}, False),
        (leaf("history.seconds_since_last", "ne", 5), {"history.seconds_since_last": None}, True),
        (leaf("history.seconds_since_last", "lt", 60), {"history.seconds_since_last": 30}, True),
        (leaf("history.seconds_since_last", "eq", None), {"history.seconds_since_last": 30}, False),
        # combinators
        ({"not": leaf("claims.verified", "eq", True)}, {"claims.verified": False}, True),
        ({"any": [leaf("score", "gt", 0.9), leaf("band", "eq", "low")]}, {"band": "low"}, True),
        (
            {"all": [leaf("score", "gt", 0.1), leaf("band", "eq", "low"), leaf("purpose", "eq", "")]},
            {},
            False,
        ),
    ],
)
def test_operators(condition: dict[str, Any], fact_values: dict[str, Any], matches: bool) -> None:
    outcome = rules(rule("r", condition)).evaluate({**BASELINE_FACTS, **fact_values})
    assert (outcome.effect == "allow") is matches


def test_yaml_dates_and_norway_stay_strings() -> None:
    text = (
        "version: 1\nname: t\nrules:\n"
        "  - id: r\n    when: {fact: purpose, in: [no, on, 2025-01-01]}\n    effect: allow\n"
    )
    rule_set = parse_rule_set(text, source="t.yaml")
    assert rule_set.evaluate(facts(purpose="no")).effect == "allow"
    assert rule_set.evaluate(facts(purpose="2025-01-01")).effect == "allow"


# --- the policy version ---------------------------------------------------------------------------
def test_policy_version_ignores_formatting_and_sees_semantics() -> None:
    base = DEFAULT_RULES.read_text()
    reference = parse_rule_set(base, source="a").policy_version
    doc = yaml.safe_load(base)
    # Comments, whitespace, key order, flow vs block style, JSON vs YAML, 1 vs 1.0 on the score,
    # the order of an in-list or a panel: the same policy.
    reformatted = yaml.safe_dump(doc, default_flow_style=False, sort_keys=True, indent=4)
    assert parse_rule_set("# a comment\n" + reformatted, source="b").policy_version == reference
    reordered = json.loads(json.dumps(doc))
    reordered["rules"][-3]["effect"]["quorum"]["panel"].reverse()
    reordered["rules"][7]["when"]["all"][1]["in"].reverse()
    reordered["rules"] = [dict(reversed(list(r.items()))) for r in reordered["rules"]]
    assert parse_rule_set(json.dumps(reordered), source="c").policy_version == reference
    one = parse_rule_set(
        json.dumps({"version": 1, "name": "x", "rules": [rule("r", leaf("score", "gte", 1))]}), source="d"
    )
    one_f = parse_rule_set(
        '{"version": 1, "name": "x", "rules": '
        '[{"id": "r", "when": {"fact": "score", "gte": 1.0}, "effect": "allow"}]}',
        source="e",
    )
    assert one.policy_version == one_f.policy_version
    # Any semantic change is a new version.
    mutations: list[Callable[[dict[str, Any]], object]] = [
        lambda d: d["rules"][0].update(effect="allow"),
        lambda d: d["rules"][3]["when"]["any"][0].update(gte=6),
        lambda d: d["rules"][-1]["when"]["all"][1].update({"in": ["public"]}),
        lambda d: d["rules"][-3]["effect"]["quorum"].update(threshold=3),
        lambda d: d["rules"][5]["effect"]["step_up"].update(circuit="context_proof"),
        lambda d: d["rules"].pop(),
        lambda d: d["rules"][0].update(reason="another reason"),
        lambda d: d.update(name="other"),
    ]
    versions = {reference}
    for mutate in mutations:
        changed = json.loads(json.dumps(doc))
        mutate(changed)
        versions.add(parse_rule_set(json.dumps(changed), source="m").policy_version)
    assert len(versions) == len(mutations) + 1


# --- property: allow rules never override a deny ---------------------------------------------------
_BOOL_FACTS = [name for name, kind in FACTS.items() if kind == "bool"]
_LEAVES = st.one_of(
    st.builds(lambda f, v: leaf(f, "eq", v), st.sampled_from(_BOOL_FACTS), st.booleans()),
    st.builds(lambda v: leaf("score", "gte", v), st.floats(0.01, 1.0)),
    st.builds(lambda v: leaf("history.failures_1h", "gte", v), st.integers(0, 10)),
    st.builds(
        lambda v: leaf("time.hour", "between", v), st.lists(st.integers(0, 23), min_size=2, max_size=2)
    ),
)
_FACTS = st.fixed_dictionaries(
    {
        **{name: st.booleans() for name in _BOOL_FACTS},
        "score": st.floats(0.0, 1.0),
        "history.failures_1h": st.integers(0, 10),
        "time.hour": st.integers(0, 23),
    }
)


@settings(max_examples=150, deadline=None)
@given(
    deny=_LEAVES,
    allows=st.lists(_LEAVES, min_size=1, max_size=5, unique_by=lambda d: json.dumps(d, sort_keys=True)),
    values=_FACTS,
)
def test_adding_allow_rules_never_undoes_a_deny(
    deny: dict[str, Any], allows: list[dict[str, Any]], values: dict[str, Any]
) -> None:
    request = {**BASELINE_FACTS, **values}
    denying = rules(rule("d", deny, "deny"))
    before = denying.evaluate(request)
    allow_rules = [rule(f"a{i}", {"all": [a, {"fact": "purpose", "ne": "x"}]}) for i, a in enumerate(allows)]
    after = rules(rule("d", deny, "deny"), *allow_rules).evaluate(request)
    if before.effect == "deny" and before.matched:
        assert after.effect == "deny"
        assert "d" in after.matched_ids
