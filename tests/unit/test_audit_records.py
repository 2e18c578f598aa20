"""Audit records and their RFC 8785 (JCS) encoding: vectors, golden bytes, strict decoding, properties."""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import re
import struct
import sys
import typing
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from reliquary import jcs
from reliquary.audit import records
from reliquary.audit.records import (
    DecisionRecord,
    DeletionRecord,
    KeyEventRecord,
    decode_record,
    encode_record,
    parse_record,
    principal_hash,
    same_decision,
)
from reliquary.crypto.kem import requester_key_sha256
from reliquary.crypto.signing import KEY_ID_LEN, SignatureAlgorithm
from reliquary.errors import InvalidRequestError

VECTORS: dict[str, Any] = json.loads(
    (Path(__file__).parents[1] / "vectors" / "jcs_vectors.json").read_text(encoding="utf-8")
)
SALT = bytes(range(32))


# --- JCS: the vectors -----------------------------------------------------------------------------
@pytest.mark.parametrize("case", VECTORS["canonical"], ids=lambda c: c["desc"])
def test_jcs_canonical_vector(case: dict[str, Any]) -> None:
    def run() -> bytes:
        return jcs.canonicalize(jcs.parse(case["input"].encode("utf-8")))

    if case["want_error"] is not None:
        with pytest.raises(InvalidRequestError) as caught:
            run()
        assert caught.value.code == case["want_error"]
        return
    out = run()
    assert out == case["output"].encode("utf-8")
    if "output_hex" in case:
        assert out.hex() == case["output_hex"]
    # Canonical text is a fixed point.
    assert jcs.canonicalize(jcs.parse(out)) == out


@pytest.mark.parametrize("case", VECTORS["numbers"], ids=lambda c: c["desc"])
def test_jcs_number_vector(case: dict[str, Any]) -> None:
    (value,) = struct.unpack(">d", bytes.fromhex(case["bits"]))
    if case["want_error"] is not None:
        with pytest.raises(InvalidRequestError):
            jcs.canonicalize(value)
        return
    assert jcs.canonicalize(value) == case["output"].encode("ascii")
    assert jcs.canonicalize([value]) == b"[" + case["output"].encode("ascii") + b"]"
    assert float(case["output"]) == value  # the shortest form still reads back as the same double


def test_the_vectors_hold_the_whole_rfc_number_table() -> None:
    rfc = [c for c in VECTORS["numbers"] if c["source"] == "rfc8785"]
    assert len([c for c in rfc if c["want_error"] is None]) == 24
    assert {c["bits"] for c in rfc if c["want_error"]} >= {"7fffffffffffffff", "7ff0000000000000"}


@pytest.mark.parametrize(
    ("value", "text"),
    [(0.1, "0.1"), (1e-7, "1e-7"), (1e21, "1e+21"), (123456789.123, "123456789.123"), (1e-6, "0.000001"),
     (1e20, "100000000000000000000"), (-0.0, "0"), (2.0**53, "9007199254740992"), (5e-324, "5e-324")],
)  # fmt: skip
def test_floats_serialise_as_es6_does(value: float, text: str) -> None:
    assert jcs.format_number(value) == text
    assert jcs.canonicalize(value) == text.encode("ascii")


# --- JCS: Python values ---------------------------------------------------------------------------
def test_python_values() -> None:
    value = {"b": (1, 2.5, True, None), "a": [], "c": {"y": "", "x": False}}
    assert jcs.canonicalize(value) == b'{"a":[],"b":[1,2.5,true,null],"c":{"x":false,"y":""}}'
    assert jcs.canonicalize(2**53) == b"9007199254740992"
    assert jcs.canonicalize(-(2**53)) == b"-9007199254740992"
    assert jcs.canonicalize(1.0) == jcs.canonicalize(1) == b"1"


@pytest.mark.parametrize(
    "value",
    [
        2**53 + 1,
        -(2**53) - 1,
        10**30,
        math.nan,
        math.inf,
        -math.inf,
        [math.nan],
        {1: "a"},
        {("a",): 1},
        b"bytes",
        {1, 2},
        Decimal("1.5"),
        object(),
        "\ud800",
        {"\udfff": 1},
    ],
    ids=lambda value: type(value).__name__ if type(value) is object else repr(value),  # stable under xdist
)
def test_jcs_refuses_what_it_cannot_represent(value: object) -> None:
    with pytest.raises(InvalidRequestError):
        jcs.canonicalize(value)


def test_deep_nesting_is_refused_before_parsing_whatever_the_recursion_limit() -> None:
    # Regression: py_ecc raises the recursion limit to 100,000 on import; json's C parser then recursed
    # into 200,000 brackets until the C stack overflowed and the test process crashed.
    previous = sys.getrecursionlimit()
    sys.setrecursionlimit(100_000)
    try:
        with pytest.raises(InvalidRequestError, match="nested deeper"):
            jcs.parse(b"[" * 200_000 + b"]" * 200_000)
    finally:
        sys.setrecursionlimit(previous)
    assert jcs.parse(b'{"a":"[[[[{{{{","b":[1,[2]]}') == {"a": "[[[[{{{{", "b": [1, [2]]}


def test_jcs_refuses_deep_nesting() -> None:
    deep: list[Any] = []
    for _ in range(jcs.MAX_DEPTH + 1):
        deep = [deep]
    with pytest.raises(InvalidRequestError):
        jcs.canonicalize(deep)
    with pytest.raises(InvalidRequestError):
        jcs.parse(b"[" * 200_000 + b"]" * 200_000)


@pytest.mark.parametrize(
    "data",
    [
        b'"\xff"',  # not UTF-8
        b'\xef\xbb\xbf{"a":1}',  # a byte order mark
        '{"a":1}'.encode("utf-16"),
        b"1" + b"0" * 5000,  # a double overflows
        b"",
        b"[1,2",
    ],
)
def test_parse_refuses(data: bytes) -> None:
    with pytest.raises(InvalidRequestError):
        jcs.parse(data)


def test_parse_reads_numbers_as_doubles() -> None:
    assert jcs.parse(b"[1,-0,9007199254740992,9007199254740993,1e2,2.50]") == [
        1, 0, 2**53, float(2**53), 100.0, 2.5
    ]  # fmt: skip
    assert type(jcs.parse(b"9007199254740993")) is float


_ES_NUMBER = r"-?(0|[1-9][0-9]*)(\.[0-9]*[1-9])?(e[+-][1-9][0-9]*)?"


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_every_double_reads_back_from_its_es_form(value: float) -> None:
    text = jcs.format_number(value)
    assert float(text) == value
    assert re.fullmatch(_ES_NUMBER, text), text
    if "e" in text:
        assert abs(value) >= 1e21 or abs(value) < 1e-6
    elif value:
        assert 1e-6 <= abs(value) < 1e21


_JSON_TEXT = st.text(alphabet=st.characters(codec="utf-8"), max_size=12)
_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | _JSON_TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_JSON_TEXT, inner, max_size=4),
    max_leaves=20,
)


@given(_JSON)
def test_canonical_text_is_a_fixed_point(value: Any) -> None:
    text = jcs.canonicalize(value)
    assert jcs.canonicalize(jcs.parse(text)) == text
    assert jcs.parse(text) == value  # and reads back as the same value


# --- records: fixtures ----------------------------------------------------------------------------
def _decision(**changes: Any) -> DecisionRecord:
    fields: dict[str, Any] = {
        "request_id": "req-0001",
        "tenant_id": "acme",
        "vault_id": "vault-1",
        "item_id": "item-7",
        "principal_hash": principal_hash("acme", "alice@example.com", SALT),
        "decision": "approve",
        "reasons": ["quorum 3 of 4", "trust above threshold"],
        "trust_score": 0.8125,
        "trust_factors": [
            {"name": "device_attested", "value": 1, "weight": 0.5, "contribution": 0.5},
            {"name": "history", "value": 0.625, "weight": 0.5, "contribution": 0.3125},
        ],
        "votes": [
            {"agent": "strict", "vote": "deny", "confidence": 0.6, "rationale": "new device"},
            {
                "agent": "permissive",
                "vote": "approve",
                "confidence": 0.9,
                "rationale": "café ok\nsee factors",
            },
            {"agent": "neutral", "vote": "approve", "confidence": 0.7, "rationale": ""},
            {"agent": "watchdog", "vote": "abstain", "confidence": 1, "rationale": "no anomaly"},
        ],
        "proof_hash": "ab" * 32,
        "policy_version": "cd" * 32,
        "execution_id": "arn:aws:states:eu-west-1:123456789012:execution:access:req-0001",
        "time": 1_767_225_600,
    }
    fields.update(changes)
    return DecisionRecord(**fields)


def _deletion(**changes: Any) -> DeletionRecord:
    fields: dict[str, Any] = {
        "request_id": "req-0002",
        "tenant_id": "acme",
        "vault_id": "vault-1",
        "item_id": "item-7",
        "versions": [1, 2, 5],
        "shredded_at": 1_767_225_700,
        "signer_key_id": "0123456789abcdef",
        "signature_algorithm": "ML-DSA-65",
        "reason": "requested by the owner",
    }
    fields.update(changes)
    return DeletionRecord(**fields)


def _key_event(**changes: Any) -> KeyEventRecord:
    fields: dict[str, Any] = {
        "request_id": "req-0003",
        "tenant_id": "acme",
        "vault_id": "vault-1",
        "event": "key_rotated",
        "key_version": 2,
        "time": 1_767_225_800,
        "details": {"previous_version": 1, "suite": "ML-KEM-768+X25519"},
    }
    fields.update(changes)
    return KeyEventRecord(**fields)


# --- records: the format --------------------------------------------------------------------------
# These bytes are log entries: they must never change. A failure here is a format break, not a test
# to update (a change is a new schema version ``v``).
GOLDEN_DELETION = (
    b'{"item_id":"item-7","kind":"deletion","reason":"requested by the owner","request_id":"req-0002",'
    b'"shredded_at":1767225700,"signature_algorithm":"ML-DSA-65","signer_key_id":"0123456789abcdef",'
    b'"tenant_id":"acme","v":1,"vault_id":"vault-1","versions":[1,2,5]}'
)
GOLDEN_KEY_EVENT = (
    b'{"details":{"previous_version":1,"suite":"ML-KEM-768+X25519"},"event":"key_rotated","key_version":2,'
    b'"kind":"key_event","request_id":"req-0003","tenant_id":"acme","time":1767225800,"v":1,'
    b'"vault_id":"vault-1"}'
)
GOLDEN_DECISION = (
    '{"decision":"approve","execution_id":"arn:aws:states:eu-west-1:123456789012:execution:access:req-0001",'
    '"item_id":"item-7","kind":"decision","policy_version":"' + "cd" * 32 + '",'
    '"principal_hash":"PRINCIPAL","proof_hash":"' + "ab" * 32 + '",'
    '"reasons":["quorum 3 of 4","trust above threshold"],"request_id":"req-0001","tenant_id":"acme",'
    '"time":1767225600,"trust_factors":[{"contribution":0.5,"name":"device_attested","value":1,"weight":0.5},'
    '{"contribution":0.3125,"name":"history","value":0.625,"weight":0.5}],"trust_score":0.8125,"v":1,'
    '"vault_id":"vault-1","votes":['
    '{"agent":"strict","confidence":0.6,"rationale":"new device","vote":"deny"},'
    '{"agent":"permissive","confidence":0.9,"rationale":"café ok\\nsee factors","vote":"approve"},'
    '{"agent":"neutral","confidence":0.7,"rationale":"","vote":"approve"},'
    '{"agent":"watchdog","confidence":1,"rationale":"no anomaly","vote":"abstain"}]}'
)


# A decision naming its requester key: the added member sorts between request_id and tenant_id. Every
# decision without one keeps GOLDEN_DECISION's bytes (the member is written only when set).
REQUESTER_KEY = bytes(range(256)) * 4 + bytes(range(192))  # 1216 bytes, the length of a hybrid key
GOLDEN_DECISION_WITH_REQUESTER_KEY = GOLDEN_DECISION.replace(
    '"request_id":"req-0001",',
    '"request_id":"req-0001",'
    '"requester_key_sha256":"b74cbe6abeff8bf195ba39034fa8cb41380d2c7fbc8ab7f4a4574e735b0fa4d1",',
)


def test_golden_encodings() -> None:
    assert encode_record(_deletion()) == GOLDEN_DELETION
    assert encode_record(_key_event()) == GOLDEN_KEY_EVENT
    decision = _decision()
    expected = GOLDEN_DECISION.replace("PRINCIPAL", decision.principal_hash).encode("utf-8")
    assert encode_record(decision) == expected
    with_key = _decision(requester_key_sha256=requester_key_sha256(REQUESTER_KEY))
    text = GOLDEN_DECISION_WITH_REQUESTER_KEY.replace("PRINCIPAL", decision.principal_hash)
    assert encode_record(with_key) == text.encode("utf-8")


def test_the_requester_key_is_an_added_member_written_only_when_set() -> None:
    # Decisions logged before the member existed decode as they are, to a decision without a key.
    logged = GOLDEN_DECISION.replace("PRINCIPAL", _decision().principal_hash).encode("utf-8")
    record = decode_record(logged)
    assert isinstance(record, DecisionRecord)
    assert record.requester_key_sha256 is None
    assert encode_record(record) == logged
    assert b"requester_key_sha256" not in encode_record(_decision(decision="deny", policy_version=None))
    # Set, it is written, and reads back.
    with_key = _decision(requester_key_sha256="ef" * 32)
    entry = encode_record(with_key)
    assert json.loads(entry)["requester_key_sha256"] == "ef" * 32
    assert decode_record(entry) == with_key
    assert parse_record(json.loads(entry)) == with_key
    # One spelling per record: an explicit null is not the entry of a decision without a key.
    with pytest.raises(InvalidRequestError, match="canonical encoding"):
        decode_record(_mutated(lambda o: o.update(requester_key_sha256=None)))
    assert parse_record({**json.loads(logged), "requester_key_sha256": None}) == record


def test_requester_key_sha256_construction() -> None:
    """Language-neutral: hex SHA-256 of the key's bytes, nothing else hashed in."""
    assert requester_key_sha256(REQUESTER_KEY) == hashlib.sha256(REQUESTER_KEY).hexdigest()
    assert requester_key_sha256(REQUESTER_KEY) == (
        "b74cbe6abeff8bf195ba39034fa8cb41380d2c7fbc8ab7f4a4574e735b0fa4d1"
    )
    for bad in (b"", "a string", bytearray(REQUESTER_KEY), None):
        with pytest.raises(InvalidRequestError):
            requester_key_sha256(bad)  # type: ignore[arg-type]


def test_another_requester_key_is_another_decision() -> None:
    first = encode_record(_decision(requester_key_sha256="ef" * 32))
    assert same_decision(first, encode_record(_decision(requester_key_sha256="ef" * 32, time=5)))
    assert not same_decision(first, encode_record(_decision(requester_key_sha256="01" * 32)))
    assert not same_decision(first, encode_record(_decision()))


@pytest.mark.parametrize("make", [_decision, _deletion, _key_event])
def test_round_trip(
    make: typing.Callable[[], records.DecisionRecord | DeletionRecord | KeyEventRecord],
) -> None:
    record = make()
    entry = encode_record(record)
    assert decode_record(entry) == record
    assert type(decode_record(entry)) is type(record)
    assert encode_record(decode_record(entry)) == entry
    assert parse_record(json.loads(entry)) == record
    assert record.v == records.SCHEMA_VERSION == 1


def test_minimal_decision_writes_every_field() -> None:
    record = _decision(
        reasons=[], trust_score=None, trust_factors=[], votes=[], proof_hash=None, execution_id=None
    )
    entry = json.loads(encode_record(record))
    assert entry["proof_hash"] is None
    assert entry["trust_score"] is None
    assert entry["execution_id"] is None
    assert entry["reasons"] == entry["votes"] == entry["trust_factors"] == []
    # ... but the added member, written only when set (see test_the_requester_key_is_an_added_member...).
    assert "requester_key_sha256" not in entry
    assert decode_record(encode_record(record)) == record


def test_a_denial_without_a_policy_version_round_trips() -> None:
    # A denial decided before any trust policy was read (e.g. VerifyContext refused a replayed nonce).
    record = _decision(decision="deny", policy_version=None, trust_score=None, trust_factors=[], votes=[])
    entry = encode_record(record)
    assert b'"policy_version":null' in entry
    assert json.loads(entry)["policy_version"] is None
    assert decode_record(entry) == record
    assert encode_record(decode_record(entry)) == entry
    assert parse_record(json.loads(entry)) == record
    # Every field is written: the entry without the member is not the record's encoding.
    with pytest.raises(InvalidRequestError):
        decode_record(_mutated(lambda o: o.pop("policy_version"), record))


def test_an_approval_without_a_policy_version_is_refused() -> None:
    with pytest.raises(ValidationError, match="policy version"):
        _decision(policy_version=None)
    fields = json.loads(encode_record(_decision()))
    for value in (
        {**fields, "policy_version": None},
        {k: v for k, v in fields.items() if k != "policy_version"},
    ):
        with pytest.raises(InvalidRequestError) as caught:
            parse_record(value)
        # The record's own check (an approval names its policy version), answered by kind and place.
        assert caught.value.details["problems"] == [{"field": "decision", "problem": "value_error"}]
    with pytest.raises(InvalidRequestError):
        decode_record(_mutated(lambda o: o.update(policy_version=None)))
    unchecked = DecisionRecord.model_construct(**{**dict(_decision()), "policy_version": None})
    with pytest.raises(InvalidRequestError):
        encode_record(unchecked)


def test_dedup_key() -> None:
    assert _decision().dedup_key == ("acme", "req-0001")
    assert _deletion().dedup_key == ("acme", "req-0002")
    assert _key_event().dedup_key == ("acme", "req-0003")
    assert _decision(time=1).dedup_key == _decision().dedup_key


def test_records_are_frozen_and_decisions_hashable() -> None:
    record = _decision()
    with pytest.raises(ValidationError):
        record.decision = "deny"  # type: ignore[misc]
    assert isinstance(record.reasons, tuple)
    assert isinstance(record.votes, tuple)
    assert hash(record) == hash(_decision())
    assert {record, _decision()} == {record}


# --- records: decoding refuses every other spelling -----------------------------------------------
def _variants() -> list[tuple[str, bytes]]:
    entry = encode_record(_decision())
    obj = json.loads(entry)
    reordered = json.dumps(dict(reversed(list(obj.items()))), separators=(",", ":"), ensure_ascii=False)
    return [
        ("pretty printed", json.dumps(obj, indent=1, ensure_ascii=False).encode()),
        ("a space after a colon", entry.replace(b'"v":1', b'"v": 1')),
        ("a trailing newline", entry + b"\n"),
        ("leading whitespace", b" " + entry),
        ("a byte order mark", b"\xef\xbb\xbf" + entry),
        ("members reordered", reordered.encode()),
        ("1.0 for 1", entry.replace(b'"confidence":1,', b'"confidence":1.0,')),
        ("an exponent for an integer", entry.replace(b'"time":1767225600', b'"time":1.7672256e9')),
        ("0.60 for 0.6", entry.replace(b'"confidence":0.6,', b'"confidence":0.60,')),
        ("escaped unicode", entry.replace("é".encode(), b"\\u00e9")),
        ("an escaped ASCII letter", entry.replace(b'"acme"', b'"\\u0061cme"')),
        ("an escaped solidus", entry.replace(b"arn:aws", b"arn\\/aws")),
        ("upper-case hex escape", entry.replace(b"\\n", b"\\u000A")),
        ("a duplicate member", entry.replace(b'{"decision"', b'{"decision":"deny","decision"')),
        ("ASCII-only JSON", json.dumps(json.loads(entry), separators=(",", ":"), sort_keys=True).encode()),
    ]  # fmt: skip


@pytest.mark.parametrize(("desc", "data"), _variants(), ids=[d for d, _ in _variants()])
def test_decode_refuses_non_canonical_variants(desc: str, data: bytes) -> None:
    assert data != encode_record(_decision()), desc
    with pytest.raises(InvalidRequestError):
        decode_record(data)


def _mutated(change: typing.Callable[[dict[str, Any]], None], record: Any = None) -> bytes:
    obj = json.loads(encode_record(record or _decision()))
    change(obj)
    return jcs.canonicalize(obj)  # canonical JSON, but not a valid record


@pytest.mark.parametrize(
    ("desc", "change"),
    [
        ("an unknown kind", lambda o: o.update(kind="grant")),
        ("no kind", lambda o: o.pop("kind")),
        ("an unknown version", lambda o: o.update(v=2)),
        ("version 0", lambda o: o.update(v=0)),
        ("the version as true", lambda o: o.update(v=True)),
        ("no version", lambda o: o.pop("v")),
        ("an unknown field", lambda o: o.update(extra="x")),
        ("a missing nullable field", lambda o: o.pop("proof_hash")),
        ("a missing list", lambda o: o.pop("reasons")),
        ("a float time", lambda o: o.update(time=1.5)),
        ("a string time", lambda o: o.update(time="1767225600")),
        ("a negative time", lambda o: o.update(time=-1)),
        ("an upper-case hash", lambda o: o.update(proof_hash="AB" * 32)),
        ("a short hash", lambda o: o.update(policy_version="cd" * 31)),
        ("a trust score above 1", lambda o: o.update(trust_score=1.5)),
        ("a bad id", lambda o: o.update(vault_id="vault/1")),
        ("an unknown decision", lambda o: o.update(decision="maybe")),
        ("an unknown vote", lambda o: o["votes"][0].update(vote="veto")),
        ("a vote field too many", lambda o: o["votes"][0].update(weight=1)),
        ("a control character", lambda o: o["reasons"].append("bell\x07")),
    ],
    ids=lambda x: x if isinstance(x, str) else "",
)
def test_decode_refuses_invalid_records(desc: str, change: typing.Callable[[dict[str, Any]], None]) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        decode_record(_mutated(change))
    assert caught.value.code == "invalid_request", desc


@pytest.mark.parametrize(
    "data", [b"", b"[]", b'"decision"', b"null", b"{}", b"\x00", b"{" + b" " * (records.MAX_RECORD_BYTES + 1)]
)
def test_decode_refuses_what_is_not_a_record(data: bytes) -> None:
    with pytest.raises(InvalidRequestError):
        decode_record(data)


def test_decode_errors_do_not_echo_the_record() -> None:
    with pytest.raises(InvalidRequestError) as caught:
        decode_record(_mutated(lambda o: o.update(execution_id="arn with spaces")))
    assert "arn with spaces" not in json.dumps(caught.value.to_dict())


# --- records: validation --------------------------------------------------------------------------
@pytest.mark.parametrize(
    "changes",
    [
        {"request_id": ""},
        {"tenant_id": "-acme"},
        {"item_id": "a" * 129},
        {"principal_hash": "alice@example.com"},
        {"decision": "abstain"},
        {"reasons": ["x"] * (records.MAX_REASONS + 1)},
        {"reasons": [""]},
        {"reasons": ["two\nlines"]},
        {"reasons": ["x" * (records.MAX_REASON_CHARS + 1)]},
        {"reasons": ["\ud800"]},
        {"trust_score": -0.01},
        {"trust_score": math.nan},
        {"trust_score": "0.5"},
        {"trust_score": True},
        {"trust_factors": [{"name": "x", "value": math.inf, "weight": 1, "contribution": 1}]},
        {"trust_factors": [{"name": "x", "value": 1, "weight": 1}]},
        {"votes": [{"agent": "a b", "vote": "approve", "confidence": 1, "rationale": ""}]},
        {"votes": [{"agent": "a", "vote": "approve", "confidence": 1.01, "rationale": ""}]},
        {"votes": [{"agent": "a", "vote": "approve", "confidence": 1, "rationale": "\x1b[31m"}]},
        {"votes": [{"agent": "a", "vote": "approve", "confidence": 1, "rationale": "x" * 501}]},
        {"proof_hash": "ab" * 33},
        {"requester_key_sha256": "EF" * 32},
        {"requester_key_sha256": "ef" * 31},
        {"requester_key_sha256": ""},
        {"requester_key_sha256": b"\xef" * 32},
        {"execution_id": ""},
        {"execution_id": "has space"},
        {"time": 2**53},
        {"time": 1.0},
        {"time": True},
        {"kind": "deletion"},
        {"v": 2},
        {"surprise": 1},
    ],
    ids=repr,
)
def test_decision_validation(changes: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        _decision(**changes)
    base = json.loads(encode_record(_decision()))
    base.update(changes)
    with pytest.raises(InvalidRequestError):
        parse_record(base)


@pytest.mark.parametrize(
    "changes",
    [
        {"versions": []},
        {"versions": [2, 1]},
        {"versions": [1, 1]},
        {"versions": [0]},
        {"versions": [2**32]},
        {"versions": list(range(1, records.MAX_VERSIONS + 2))},
        {"signer_key_id": "0123456789ABCDEF"},
        {"signer_key_id": "00" * (KEY_ID_LEN + 1)},
        {"signature_algorithm": "RSA"},
        {"reason": ""},
        {"shredded_at": -5},
    ],
    ids=repr,
)
def test_deletion_validation(changes: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        _deletion(**changes)


@pytest.mark.parametrize(
    "changes",
    [
        {"event": "key_lost"},
        {"key_version": 0},
        {"details": {"Bad": 1}},
        {"details": {"flag": True}},
        {"details": {"ratio": 0.5}},
        {"details": {"big": 2**53}},
        {"details": {"note": "x" * 257}},
        {"details": {f"k{i}": i for i in range(records.MAX_DETAILS + 1)}},
    ],
    ids=repr,
)
def test_key_event_validation(changes: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        _key_event(**changes)


def test_signature_algorithms_match_the_signing_module() -> None:
    assert set(typing.get_args(records.SignatureAlgorithmName)) == {a.value for a in SignatureAlgorithm}
    assert _deletion(signer_key_id=bytes(KEY_ID_LEN).hex()).signer_key_id == "0" * 16


def test_encode_refuses_records_that_skipped_validation() -> None:
    good = _decision()
    bad = DecisionRecord.model_construct(**{**dict(good), "trust_score": math.nan})
    with pytest.raises(InvalidRequestError):
        encode_record(bad)
    with pytest.raises(InvalidRequestError):
        encode_record({"kind": "decision"})  # type: ignore[arg-type]


def test_the_largest_records_fit_a_log_entry() -> None:
    wide = "\U0001f600"  # four bytes of UTF-8 per character, the most any allowed character takes
    decision = _decision(
        request_id="r" * 128,
        tenant_id="t" * 128,
        vault_id="v" * 128,
        item_id="i" * 128,
        reasons=[wide * records.MAX_REASON_CHARS] * records.MAX_REASONS,
        trust_score=-5e-324 + 0.1,
        trust_factors=[
            {
                "name": wide * records.MAX_FACTOR_NAME_CHARS,
                "value": -3.3333333333333333e-6,
                "weight": -1.7976931348623157e308,
                "contribution": -2.2250738585072014e-308,
            }
        ]
        * records.MAX_FACTORS,
        votes=[
            {"agent": "a" * 128, "vote": "abstain", "confidence": 0.30000000000000004,
             "rationale": wide * records.MAX_RATIONALE_CHARS}
        ]
        * records.MAX_VOTES,
        execution_id="x" * records.MAX_EXECUTION_ID_CHARS,
        time=2**53 - 1,
        requester_key_sha256="f" * 64,
    )  # fmt: skip
    deletion = _deletion(
        versions=list(range(2**32 - records.MAX_VERSIONS, 2**32)),
        reason=wide * records.MAX_DELETION_REASON_CHARS,
    )
    key_event = _key_event(
        details={
            f"{'k' * 60}{i:03d}": wide * records.MAX_DETAIL_VALUE_CHARS for i in range(records.MAX_DETAILS)
        }
    )
    for record in (decision, deletion, key_event):
        entry = encode_record(record)
        assert len(entry) <= records.MAX_RECORD_BYTES
        assert decode_record(entry) == record


# --- records: property ----------------------------------------------------------------------------
_IDS = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._:@-]{0,20}", fullmatch=True)
_HEX64 = st.binary(min_size=32, max_size=32).map(bytes.hex)
_LINE = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=["Cc"]),
    min_size=1,
    max_size=records.MAX_REASON_CHARS,
)
_TEXT = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=["Cc"]) | st.sampled_from("\t\n"), max_size=60
)
_UNIT = st.floats(0, 1)
_FINITE = st.floats(allow_nan=False, allow_infinity=False)
_TIME = st.integers(0, 2**53 - 1)

_DECISIONS = st.builds(
    DecisionRecord,
    request_id=_IDS,
    tenant_id=_IDS,
    vault_id=_IDS,
    item_id=_IDS,
    principal_hash=_HEX64,
    decision=st.sampled_from(["approve", "deny"]),
    reasons=st.lists(_LINE, max_size=3),
    trust_score=st.none() | _UNIT,
    trust_factors=st.lists(
        st.fixed_dictionaries(
            {
                "name": _LINE.map(lambda s: s[:64]),
                "value": _FINITE,
                "weight": _FINITE,
                "contribution": _FINITE,
            }
        ),
        max_size=3,
    ),
    votes=st.lists(
        st.fixed_dictionaries(
            {
                "agent": _IDS,
                "vote": st.sampled_from(["approve", "deny", "abstain"]),
                "confidence": _UNIT,
                "rationale": _TEXT,
            }
        ),
        max_size=4,
    ),
    proof_hash=st.none() | _HEX64,
    policy_version=_HEX64,
    execution_id=st.none() | st.from_regex(r"[!-~]{1,40}", fullmatch=True),
    time=_TIME,
    requester_key_sha256=st.none() | _HEX64,
)
_DELETIONS = st.builds(
    DeletionRecord,
    request_id=_IDS,
    tenant_id=_IDS,
    vault_id=_IDS,
    item_id=_IDS,
    versions=st.sets(st.integers(1, 2**32 - 1), min_size=1, max_size=8).map(sorted),
    shredded_at=_TIME,
    signer_key_id=st.binary(min_size=KEY_ID_LEN, max_size=KEY_ID_LEN).map(bytes.hex),
    signature_algorithm=st.sampled_from([a.value for a in SignatureAlgorithm]),
    reason=_LINE,
)
_KEY_EVENTS = st.builds(
    KeyEventRecord,
    request_id=_IDS,
    tenant_id=_IDS,
    vault_id=_IDS,
    event=st.sampled_from(["vault_created", "key_rotated", "keys_rewrapped", "key_retired"]),
    key_version=st.integers(1, 2**32 - 1),
    time=_TIME,
    details=st.dictionaries(
        st.from_regex(r"[a-z][a-z0-9_]{0,10}", fullmatch=True),
        st.integers(-(2**53) + 1, 2**53 - 1) | _LINE.map(lambda s: s[:256]),
        max_size=4,
    ),
)


# A denial may have no policy version (decided before any policy was read).
_DENIALS_WITHOUT_POLICY = _DECISIONS.map(
    lambda r: DecisionRecord(**{**r.model_dump(), "decision": "deny", "policy_version": None})
)


@settings(max_examples=150, deadline=None)
@given(_DECISIONS | _DENIALS_WITHOUT_POLICY | _DELETIONS | _KEY_EVENTS)
def test_encoding_is_stable_through_decoding(
    record: DecisionRecord | DeletionRecord | KeyEventRecord,
) -> None:
    entry = encode_record(record)
    decoded = decode_record(entry)
    assert encode_record(decoded) == entry
    assert decoded == record
    assert decoded.dedup_key == (record.tenant_id, record.request_id)


# --- the principal hash ---------------------------------------------------------------------------
def test_principal_hash_is_keyed_per_tenant() -> None:
    a = principal_hash("acme", "alice@example.com", SALT)
    assert a == principal_hash("acme", "alice@example.com", SALT)
    assert len(a) == 64
    assert int(a, 16) >= 0
    assert a != principal_hash("globex", "alice@example.com", SALT)
    assert a != principal_hash("acme", "bob@example.com", SALT)
    assert a != principal_hash("acme", "alice@example.com", bytes(32))
    # Not a plain hash of the subject, so a dictionary of subjects does not reverse it.
    assert a != hashlib.sha256(b"alice@example.com").hexdigest()
    # The tenant boundary is unambiguous: shifting characters between tenant and subject changes it.
    assert principal_hash("acme1", "x", SALT) != principal_hash("acme", "1x", SALT)


def test_principal_hash_construction() -> None:
    """Language-neutral statement of the construction (anyone holding the salt can recompute it)."""
    tenant_key = hmac.new(SALT, b"RELIQUARY principal key v1\x00acme", hashlib.sha256).digest()
    expected = hmac.new(tenant_key, "zoë".encode(), hashlib.sha256).hexdigest()
    assert principal_hash("acme", "zoë", SALT) == expected


@pytest.mark.parametrize(
    ("tenant_id", "subject", "salt"),
    [
        ("bad tenant", "alice", SALT),
        ("acme", "", SALT),
        ("acme", "x" * 1025, SALT),
        ("acme", "alice\n", SALT),
        ("acme", "\ud800", SALT),
        ("acme", "alice", b"short"),
        ("acme", "alice", "not-bytes-but-a-long-string"),
    ],
)
def test_principal_hash_refuses(tenant_id: str, subject: str, salt: Any) -> None:
    with pytest.raises(InvalidRequestError):
        principal_hash(tenant_id, subject, salt)
