"""The five function handlers under hostile events, each through the cold-started handler against this
test's moto stack: random JSON of every shape, random mutations of the sample events in events/, and a
sweep that puts each hostile value (deep nesting, a huge string, a lone surrogate, a huge integer, NaN, the
wrong container) in each place of each sample event, and takes each member out.

The contract under test (``reliquary.handlers``): a handler answers ``{"status": "error", "error": {code,
type, message, ...}}`` for anything deterministic; only a ``ReliquaryError`` with ``retryable=True`` may
raise. An error answer is small and never quotes the caller: no run of 12 characters of any string the
caller sent (a value or a key) appears in it. Two things are not quotes: the contract's own words (field
names, action names and other constants of its schema), and the caller's identifiers where an error's
details name them (``vault_id``: a validated id of at most 128 plain characters, never free text).

Deterministic (``derandomize``, no example database): every run sends the same events.
"""

from __future__ import annotations

import copy
import functools
import json
import math
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter

from reliquary.agents.requirement import RULE_EFFECTS
from reliquary.audit.records import DecisionRecord, DeletionRecord, KeyEventRecord
from reliquary.contracts.agent_vote import AgentVoteRequest
from reliquary.contracts.audit import AuditRequest
from reliquary.contracts.common import Identifier
from reliquary.contracts.encrypt import EncryptRequest
from reliquary.contracts.score_trust import ScoreTrustRequest
from reliquary.contracts.verify_proof import VerifyProofRequest
from reliquary.errors import ReliquaryError
from tests.functions.conftest import Invoke
from tests.functions.test_encrypt_handler import each_case
from tests.support.attested import Attester, flow_json
from tests.support.aws import AwsStack

EVENTS_DIR = Path(__file__).resolve().parents[2] / "events"
ECHO = 12  # a run of this many characters of a caller's string must not appear in an error answer
MAX_ERROR_ANSWER = 4096  # bytes of an error answer's JSON, whatever the event's size
DEPTH = 900  # nesting as deep as a Lambda's JSON parser lets through (Python's stops near 1000 levels)

FUZZ = settings(
    max_examples=100,
    derandomize=True,
    database=None,
    deadline=None,
    print_blob=False,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,  # one moto stack and cold start serve every example
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
    ],
)

FUNCTIONS = ("encrypt", "verify_proof", "score_trust", "agent_vote", "audit_append")
SCHEMAS: dict[str, TypeAdapter[Any]] = {
    "encrypt": TypeAdapter(EncryptRequest),
    "verify_proof": TypeAdapter(VerifyProofRequest),
    "score_trust": TypeAdapter(ScoreTrustRequest),
    "agent_vote": TypeAdapter(AgentVoteRequest),
    "audit_append": TypeAdapter(AuditRequest),
}
# The schemas of free-form parts the functions read further: audit records, the trust rules' outcome.
RECORDS: TypeAdapter[Any] = TypeAdapter(DecisionRecord | DeletionRecord | KeyEventRecord)


def _schema_words(schema: dict[str, Any]) -> set[str]:
    """Property names and constant values of a JSON schema: the contract's own words."""
    words: set[str] = set()
    stack: list[Any] = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            words.update(node.get("properties", {}))
            for key in ("const", "enum", "default"):
                value = node.get(key)
                words.update(v for v in (value if isinstance(value, list) else [value]) if isinstance(v, str))
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return words


VOCABULARY = {name: _schema_words(schema.json_schema()) for name, schema in SCHEMAS.items()}
VOCABULARY["audit_append"] |= _schema_words(RECORDS.json_schema())
VOCABULARY["agent_vote"] |= set(RULE_EFFECTS)
IDENTIFIER_DETAIL = re.compile(r"^(?:[a-z]+_)*id$|^request_ids$|^agents?$")
_IDENTIFIER: TypeAdapter[str] = TypeAdapter(Identifier)

SAMPLES = {
    name: {
        str(p.relative_to(EVENTS_DIR / name)): json.loads(p.read_text())
        for p in sorted((EVENTS_DIR / name).rglob("*.json"))
    }
    for name in FUNCTIONS
}


# --- hostile values and events ----------------------------------------------------------------------
def nested(depth: int, leaf: Any, *, as_list: bool) -> Any:
    value = leaf
    for _ in range(depth):
        value = [value] if as_list else {"a": value}
    return value


HOSTILE: dict[str, Callable[[], Any]] = {
    "deep object": lambda: nested(DEPTH, 0, as_list=False),
    "deep list": lambda: nested(DEPTH, 0, as_list=True),
    "huge string": lambda: "é" * 70_000,
    "lone surrogates": lambda: "\ud800" * 16,  # JSON's "\ud800" escape: Python's json.loads makes one
    "huge integer": lambda: 10**400,
    "NaN": lambda: math.nan,
    "an object": lambda: {"\x00": [None]},
    "a list": lambda: [[]],
}


def _paths(event: Any) -> list[tuple[Any, ...]]:
    """Every place in ``event`` (the root included), by its keys and indexes."""
    found: list[tuple[Any, ...]] = []
    stack: list[tuple[tuple[Any, ...], Any]] = [((), event)]
    while stack:
        path, node = stack.pop()
        found.append(path)
        if isinstance(node, dict):
            stack.extend(((*path, k), v) for k, v in node.items())
        elif isinstance(node, list):
            stack.extend(((*path, i), v) for i, v in enumerate(node))
    return sorted(found, key=repr)


def _at(event: Any, path: tuple[Any, ...]) -> Any:
    for part in path:
        event = event[part]
    return event


def _replaced(event: Any, path: tuple[Any, ...], make: Callable[[], Any]) -> Any:
    if not path:
        return make()
    changed = copy.deepcopy(event)
    _at(changed, path[:-1])[path[-1]] = make()
    return changed


def _removed(event: Any, path: tuple[Any, ...]) -> Any:
    changed = copy.deepcopy(event)
    del _at(changed, path[:-1])[path[-1]]
    return changed


def sweep(function: str) -> Iterator[tuple[str, Callable[[], Any]]]:
    """Each sample with one place replaced by each hostile value, or taken out: (name, event maker)."""
    for sample_name, sample in SAMPLES[function].items():
        for path in _paths(sample):
            where = f"{sample_name} at {'.'.join(map(str, path)) or 'the root'}"
            for kind, make in HOSTILE.items():
                yield f"{where}: {kind}", functools.partial(_replaced, sample, path, make)
            if path:
                yield f"{where}: removed", functools.partial(_removed, sample, path)


IDENTIFIER = st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9._:@-]{0,40}\Z")
WORDS = st.sampled_from(sorted(set().union(*VOCABULARY.values())))
TEXT = st.one_of(
    st.text(max_size=24),
    st.text(st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF) | st.characters(), max_size=16),
    st.tuples(st.sampled_from(["x", "é", "\x00", "🔑", "a#b", "Zm9v"]), st.sampled_from([300, 70_000])).map(
        lambda unit_count: unit_count[0] * unit_count[1]
    ),
    IDENTIFIER,
    WORDS,
)
NUMBER = st.one_of(
    st.integers(),
    st.sampled_from([2**53 + 1, 2**63, -(2**63) - 1, 2**64, 10**30, 10**400, -(10**400)]),
    st.floats(allow_nan=True, allow_infinity=True),
)
SCALAR = st.one_of(st.none(), st.booleans(), NUMBER, TEXT)
KEY = st.one_of(WORDS, st.text(max_size=16), IDENTIFIER)
JSON = st.recursive(
    SCALAR,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(KEY, children, max_size=4),
    max_leaves=20,
)
DEEP = st.builds(nested, st.sampled_from([40, 300, DEPTH]), SCALAR, as_list=st.booleans())
VALUE = st.one_of(JSON, DEEP)


@st.composite
def mutated(draw: st.DrawFn, function: str) -> Any:
    """A sample event of ``function`` with one to four places replaced, removed, added to or retyped."""
    samples = SAMPLES[function]
    event = copy.deepcopy(samples[draw(st.sampled_from(sorted(samples)))])
    for _ in range(draw(st.integers(1, 4))):
        path = draw(st.sampled_from(_paths(event)))
        change = draw(st.sampled_from(["replace", "remove", "add", "wrap", "number"]))
        if not path:
            event = draw(VALUE) if change == "replace" else event
            continue
        parent, last = _at(event, path[:-1]), path[-1]
        if change == "replace":
            parent[last] = draw(VALUE)
        elif change == "remove":
            del parent[last]
        elif change == "add" and isinstance(parent[last], dict):
            parent[last][draw(KEY)] = draw(VALUE)
        elif change == "add" and isinstance(parent[last], list):
            parent[last].append(draw(VALUE))
        elif change == "wrap":
            parent[last] = [parent[last]]
        else:
            parent[last] = draw(NUMBER)
    return event


def fuzzed(function: str) -> st.SearchStrategy[Any]:
    # Mostly mutations: random JSON is refused at the first check, a mutated sample reaches the work.
    anything = st.one_of(VALUE, st.dictionaries(KEY, VALUE, max_size=6))
    return st.one_of(anything, mutated(function), mutated(function), mutated(function))


# --- the contract ---------------------------------------------------------------------------------
def _strings(value: Any) -> Iterator[str]:
    """Every string in ``value``, keys included (iteratively: events nest deeper than the stack)."""
    stack = [value]
    while stack:
        node = stack.pop()
        if isinstance(node, str):
            yield node
        elif isinstance(node, dict):
            stack.extend(node.keys())
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)


@functools.lru_cache(maxsize=1024)
def _grams(text: str) -> frozenset[str]:
    return frozenset(text[i : i + ECHO] for i in range(len(text) - ECHO + 1))


def _named_identifiers(body: dict[str, Any]) -> set[str]:
    """The identifiers an error's details name (``vault_id``, ``request_ids``, ``agent``...)."""
    named: set[str] = set()
    for key, value in body.get("details", {}).items():
        for item in value if isinstance(value, list) else [value]:
            if IDENTIFIER_DETAIL.match(key) and isinstance(item, str):
                named.add(_IDENTIFIER.validate_python(item))
    return named


def quoted(callers: list[str], answer: dict[str, Any], vocabulary: set[str]) -> set[str]:
    """The runs of ``ECHO`` characters of the caller's strings that an error answer quotes."""
    named = _named_identifiers(answer["error"])
    said = [s for s in _strings(answer["error"]) if s not in named]
    if answer["action"] not in vocabulary:
        said.append(answer["action"])
    grams = frozenset().union(*map(_grams, said))
    return set().union(*(grams & _grams(c) for c in callers if c not in vocabulary))


def check(invoke: Invoke, event: Any, function: str) -> None:
    """One event through the handler: a well-formed answer, or a transient error raised for retry."""
    callers = [s for s in _strings(event) if len(s) >= ECHO]  # before the handler sees the event
    try:
        answer = invoke(event)
    except ReliquaryError as exc:
        if not exc.retryable:
            pytest.fail(f"a deterministic {type(exc).__name__} ({exc.code}) was raised, not answered")
        return
    assert isinstance(answer, dict), answer
    assert answer.get("status") in {"ok", "error"}, answer
    text = json.dumps(answer, allow_nan=False)  # Step Functions and clients read strict JSON
    if answer["status"] == "ok":
        return
    assert set(answer) == {"status", "action", "error"}, answer
    body = answer["error"]
    assert (
        {"code", "type", "message", "retryable"}
        <= set(body)
        <= {"code", "type", "message", "details", "retryable"}
    )
    assert isinstance(body["code"], str), body
    assert isinstance(body["message"], str), body
    assert body["retryable"] is False, body
    assert len(text.encode()) <= MAX_ERROR_ANSWER, f"an error answer of {len(text)} characters: {text[:300]}"
    echoes = quoted(callers, answer, VOCABULARY[function])
    assert not echoes, f"the error answer quotes the caller ({sorted(echoes)[:3]}): {text[:600]}"


# --- fixtures -------------------------------------------------------------------------------------
@pytest.fixture
def vault(aws: AwsStack) -> None:
    """The samples' vault, as the functions but encrypt see it (they only check that it exists)."""
    aws.dynamodb.put_item(
        TableName=aws.settings.vaults_table,
        Item={"pk": {"S": "TENANT#acme"}, "sk": {"S": "VAULT#agent-memory"}, "status": {"S": "active"}},
    )


@pytest.fixture
def sealed(encrypt: Invoke) -> Invoke:
    """The encrypt function with the samples' vault and item: mutated events get past not-found."""
    for name in ("create_vault.json", "seal.json"):
        assert encrypt(copy.deepcopy(SAMPLES["encrypt"][name]))["status"] == "ok"
    return encrypt


@pytest.fixture(params=FUNCTIONS)
def handler(request: pytest.FixtureRequest) -> tuple[str, Invoke]:
    """Each function's cold-started handler, its samples' vault existing."""
    function: str = request.param
    if function == "encrypt":
        return function, request.getfixturevalue("sealed")
    request.getfixturevalue("vault")
    return function, request.getfixturevalue(function)


# --- the tests --------------------------------------------------------------------------------------
def test_each_hostile_value_in_each_place_of_each_sample_is_answered(handler: tuple[str, Invoke]) -> None:
    function, invoke = handler
    cases = dict(sweep(function))
    each_case(cases, lambda make: check(invoke, make(), function))


@FUZZ
@given(event=fuzzed("encrypt"))
def test_encrypt_answers_every_event(sealed: Invoke, event: Any) -> None:
    check(sealed, event, "encrypt")


@FUZZ
@given(event=fuzzed("verify_proof"))
def test_verify_proof_answers_every_event(verify_proof: Invoke, vault: None, event: Any) -> None:
    check(verify_proof, event, "verify_proof")


@FUZZ
@given(event=fuzzed("score_trust"))
def test_score_trust_answers_every_event(score_trust: Invoke, vault: None, event: Any) -> None:
    check(score_trust, event, "score_trust")


@FUZZ
@given(event=fuzzed("agent_vote"))
def test_agent_vote_answers_every_event(agent_vote: Invoke, vault: None, event: Any) -> None:
    check(agent_vote, event, "agent_vote")


@FUZZ
@given(event=fuzzed("audit_append"))
def test_audit_append_answers_every_event(audit_append: Invoke, event: Any) -> None:
    check(audit_append, event, "audit_append")


# --- what the fuzzing found, pinned ---------------------------------------------------------------
def test_a_stream_record_of_any_shape_is_skipped(sealed: Invoke) -> None:
    (record,) = SAMPLES["encrypt"]["stream/items_ttl_removed.json"]["Records"]
    shapes: list[Any] = [None, "REMOVE", 7, [record["dynamodb"]], {"Keys": [record["dynamodb"]["Keys"]]}]
    shapes += [{"Keys": {"pk": "TENANT#acme#VAULT#agent-memory", "sk": {"S": 1}}}]
    for dynamodb in shapes:
        answer = sealed({"Records": [{**record, "dynamodb": dynamodb}, "not a record", None]})
        assert answer == {
            "status": "ok",
            "action": "purge_expired",
            "result": {"purged": 0, "still_present": 0},
        }


def test_nested_claims_are_refused_at_any_depth(score_trust: Invoke, vault: None) -> None:
    """A context's claims are a proof's public signals, flat decimal strings: a nested claim is refused
    as the request is parsed (before any check that could recurse into it), naming the place only."""
    score = SAMPLES["score_trust"]["score.json"]
    context = score["flow"]["context"]
    for depth in (1, 2, 3, DEPTH):
        claims = {**context["claims"], "extra": nested(depth, "1", as_list=depth % 2 == 1)}
        flow = {**score["flow"], "request_id": f"deep-{depth}", "context": {**context, "claims": claims}}
        answer = score_trust({**score, "flow": flow})
        assert answer["status"] == "error", answer
        assert answer["error"]["details"]["problems"] == [
            {"field": "score.flow.context.claims.*", "problem": "string_type"}
        ]


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("0.5", None),
        ([1], "float_type"),
        ({"v": 1}, "float_type"),
        (None, "float_type"),
        (True, None),
        (10**400, "float_type"),
        (math.nan, "finite_number"),
        (math.inf, "finite_number"),
    ],
)
def test_a_trust_factor_that_is_not_a_finite_number_is_refused(
    agent_vote: Invoke, aws: AwsStack, vault: None, value: Any, problem: str | None
) -> None:
    """A factor of an honestly signed trust result replaced: what is no finite number is refused as the
    request is parsed; what JSON's lax reading takes for a number ("0.5", true) is not the value
    score-trust signed, so the chain check refuses it. Either way no agent is consulted."""
    vote = copy.deepcopy(SAMPLES["agent_vote"]["vote.json"])
    vote["flow"] = flow_json(Attester(aws.settings, aws.dynamodb).attest(vote["flow"]))
    factors = vote["flow"]["trust"]["factors"]
    (place,) = [n for n, f in enumerate(factors) if f["name"] == "sensitivity"]
    assert factors[place]["value"] == 0.0  # neither "0.5" nor true reads as this
    factors[place]["value"] = value
    answer = agent_vote(vote)
    assert answer["status"] == "error", answer
    if problem is None:
        assert answer["error"]["code"] == "attestation_invalid"
        assert answer["error"]["details"] == {"check": "result"}
    else:
        assert answer["error"]["code"] == "invalid_request"
        assert answer["error"]["details"]["problems"] == [
            {"field": f"vote.flow.trust.factors.{place}.value", "problem": problem}
        ]
    rows = aws.dynamodb.scan(TableName=aws.settings.agent_memory_table)["Items"]
    assert [row for row in rows if row["pk"]["S"] != "KEY"] == []


def test_a_policy_refusal_stays_small_whatever_the_policy_names(score_trust: Invoke, vault: None) -> None:
    """The policy compiler names the operator's keys and rule ids in its errors: bounded in the answer."""
    sample = SAMPLES["score_trust"]["set_policy.json"]
    rules = f"version: 1\nname: n\nrules:\n  - id: {'r' * 9000}\n    when: {{fact: claims.{'n' * 9000}}}\n"
    for policy in (
        {"overrides": {"k" * 90_000: 1}},
        {"overrides": {"weights": {"w" * 90_000: 1}}},
        {"rules": rules},
    ):
        answer = score_trust({**sample, "policy": policy})
        assert answer["error"]["code"] == "invalid_request", answer
        assert len(json.dumps(answer)) <= MAX_ERROR_ANSWER
