"""The audit-append handler on its sample events against moto: receipts a client verifies with only the
published verifier keys, the RecordDecision task idempotent across retries, publish, export, verify, and
every bad request refused with a typed error and nothing logged."""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import time
from pathlib import Path
from typing import Any

import pytest

from reliquary.adapters.audit_store import S3TileStore
from reliquary.adapters.decisions import LoggedDecisions
from reliquary.adapters.dynamodb import TableConfig
from reliquary.audit.note import NoteVerifier, Policy
from reliquary.audit.receipts import Receipt, verify_export, verify_receipt
from reliquary.audit.records import DecisionRecord, decode_record, encode_record, parse_record
from reliquary.errors import StorageUnavailableError, TransientError
from tests.functions.conftest import Invoke
from tests.functions.test_encrypt_handler import assert_clean, each_case, error, ok
from tests.support.aws import AwsStack

EVENTS_DIR = Path(__file__).resolve().parents[2] / "events" / "audit_append"
TENANT = "acme"


NOW = int(time.time())


def load_event(name: str, **overrides: Any) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((EVENTS_DIR / f"{name}.json").read_text())
    if name == "record_decision":  # the sample's start time is long past; an execution started now
        event["decided_at"] = NOW
    event.update(overrides)
    return event


def _trusted(invoke: Invoke) -> tuple[str, list[NoteVerifier]]:
    published = ok(invoke(load_event("get_checkpoint")), "get_checkpoint")
    return published["origin"], [NoteVerifier.from_vkey(k) for k in published["verifier_keys"]]


def _check(receipt: dict[str, Any], entry: bytes, origin: str, verifiers: list[NoteVerifier]) -> int:
    checkpoint = verify_receipt(
        Receipt.from_dict(receipt), entry, verifiers, origin=origin, required=Policy.all_of(*verifiers)
    )
    return checkpoint.size


def test_every_action_has_a_sample_event_and_the_readme_names_them_all() -> None:
    names = {p.stem for p in EVENTS_DIR.glob("*.json")}
    assert names == {"append", "record_decision", "publish", "get_checkpoint", "export", "verify"}
    readme = (EVENTS_DIR / "README.md").read_text()
    assert all(f"`{name}.json`" in readme for name in names)


def test_the_sample_events_in_order(audit_append: Invoke, aws: AwsStack) -> None:
    appended = ok(audit_append(load_event("append")), "append")
    assert [r["leaf_index"] for r in appended["receipts"]] == [0, 1, 2]
    origin, verifiers = _trusted(audit_append)
    assert origin == "reliquary.local/audit/acme"
    assert {v.algorithm.value for v in verifiers} == {"Ed25519", "ML-DSA-65", "Falcon-512"}
    for record, receipt in zip(load_event("append")["records"], appended["receipts"], strict=True):
        assert _check(receipt, encode_record(parse_record(record)), origin, verifiers) == 3

    decided = ok(audit_append(load_event("record_decision")), "record_decision")
    assert decided["decision"] == "approve"
    receipt = decided["receipt"]
    assert receipt["leaf_index"] == 3
    # The logged entry comes back with its receipt, and the receipt proves exactly that entry.
    assert _check(receipt, decided["entry"].encode(), origin, verifiers) == 4
    assert "support-agent-7" not in decided["entry"]
    # The logged record: the principal only as a keyed hash, the time of the execution's start.
    objects = aws.s3.list_objects_v2(Bucket=aws.settings.audit_bucket, Prefix="logs/acme/tile/entries/")
    bundle_key = objects["Contents"][-1]["Key"]
    assert "support-agent-7" not in aws.s3.get_object(Bucket=aws.settings.audit_bucket, Key=bundle_key)[
        "Body"
    ].read().decode("utf-8", "replace")

    published = ok(audit_append(load_event("publish")), "publish")
    assert published["tree_size"] == 4
    assert published["checkpoint"] == receipt["checkpoint"]  # nothing new since: the same checkpoint

    exported = ok(audit_append(load_event("export")), "export")
    assert exported == {
        "key": "exports/acme/acme-audit-2026-11.jsonl",
        "start": 0,
        "end": 4,
        "tree_size": 4,
        "bytes": exported["bytes"],
    }
    body = aws.s3.get_object(Bucket=aws.settings.audit_bucket, Key=exported["key"])["Body"].read()
    assert len(body) == exported["bytes"]
    verified = verify_export(body.splitlines(keepends=True), verifiers, origin=origin)
    logged = [decode_record(entry) for entry in verified.entries]
    assert [r.request_id for r in logged] == [
        "shred-customer-42-notes",
        "rotate-agent-memory-2",
        "rewrap-agent-memory-2",
        "access-0002",
    ]
    assert _check(receipt, encode_record(logged[3]), origin, verifiers) == 4
    assert isinstance(logged[3], DecisionRecord)
    assert logged[3].time == NOW  # the execution's start, as the flow passed it
    # The requester key only as its SHA-256: the one key a grant for the request may be sealed to.
    key = base64.b64decode(load_event("record_decision")["requester_public_key"])
    assert logged[3].requester_key_sha256 == hashlib.sha256(key).hexdigest()
    assert load_event("record_decision")["requester_public_key"] not in decided["entry"]

    report = ok(audit_append(load_event("verify")), "verify")
    assert report["ok"] is True
    assert report["size"] == 4


def test_a_retried_record_decision_gets_the_same_receipt_and_one_record(audit_append: Invoke) -> None:
    first = ok(audit_append(load_event("record_decision")), "record_decision")["receipt"]
    again = ok(audit_append(load_event("record_decision")), "record_decision")["receipt"]
    assert again["leaf_index"] == first["leaf_index"] == 0
    assert ok(audit_append(load_event("get_checkpoint")), "get_checkpoint")["tree_size"] == 1
    # The same decision from another execution (another start time): the first record and receipt stand.
    logged = ok(audit_append(load_event("record_decision")), "record_decision")["entry"]
    later = load_event("record_decision", decided_at=NOW + 1, execution_id="arn:aws:states:x:again")
    redecided = ok(audit_append(later), "record_decision")
    assert redecided["receipt"]["leaf_index"] == 0
    assert redecided["entry"] == logged
    # Same request id, another decision: a conflict, never a second record.
    changes: list[dict[str, Any]] = [
        {"decision": {"decision": "deny", "policy_version": "9b" * 32}},
        {"votes": []},
        {"trust": {"score": 0.1, "factors": []}},
        {"requester_public_key": base64.b64encode(b"\x07" * 1216).decode()},  # a grant to another key
    ]
    for change in changes:
        error(audit_append(load_event("record_decision", **change)), "idempotency_conflict")
    assert ok(audit_append(load_event("get_checkpoint")), "get_checkpoint")["tree_size"] == 1


def test_an_append_under_a_future_decisions_request_id_does_not_block_its_record_decision(
    audit_append: Invoke, aws: AwsStack
) -> None:
    """The squatting attack: a caller of the append action logs a record under the request id of an
    access flow that has not decided yet. Decisions have their own id space: the flow's RecordDecision
    still logs its decision, retries get its first receipt, and the grant's reader finds that decision."""
    decided = load_event("record_decision")
    squat = {**load_event("append")["records"][0], "request_id": decided["request_id"]}
    squatted = ok(audit_append(load_event("append", records=[squat])), "append")
    assert [r["leaf_index"] for r in squatted["receipts"]] == [0]
    first = ok(audit_append(decided), "record_decision")
    assert (first["decision"], first["receipt"]["leaf_index"]) == ("approve", 1)
    assert first["receipt"]["request_id"] == decided["request_id"]
    origin, verifiers = _trusted(audit_append)
    assert _check(first["receipt"], first["entry"].encode(), origin, verifiers) == 2
    again = ok(audit_append(load_event("record_decision")), "record_decision")
    assert again["receipt"] == first["receipt"]
    # The squatter's retry gets its own first index; the log holds two records, one of each kind.
    retried = ok(audit_append(load_event("append", records=[squat])), "append")
    assert [r["leaf_index"] for r in retried["receipts"]] == [0]
    assert ok(audit_append(load_event("get_checkpoint")), "get_checkpoint")["tree_size"] == 2
    # The encrypt function's reader (grants) finds the decision, not the squatter's record.
    settings = aws.settings
    ledger = LoggedDecisions(
        TableConfig(settings.audit_table, settings.region, settings.endpoint_url),
        settings.audit_bucket,
        s3=aws.s3,
    )
    logged = ledger.logged_decision(TENANT, decided["request_id"])
    assert logged is not None
    assert encode_record(logged) == first["entry"].encode()
    assert ok(audit_append(load_event("verify")), "verify")["ok"] is True


def test_a_denial_before_any_policy_is_logged_without_a_policy_version(
    audit_append: Invoke, aws: AwsStack
) -> None:
    # VerifyContext refused the request (a replayed nonce): no trust policy was read, no score, no votes.
    event = {k: v for k, v in load_event("record_decision").items() if k not in {"trust", "votes", "context"}}
    event["context"] = {"verified": False, "reason": "nonce already used"}
    event["decision"] = {"decision": "deny", "reasons": ["context not verified"]}
    first = ok(audit_append(event), "record_decision")
    assert first["decision"] == "deny"
    again = ok(audit_append(copy.deepcopy(event)), "record_decision")  # retried: the same leaf
    assert again["receipt"]["leaf_index"] == first["receipt"]["leaf_index"] == 0
    exported = ok(audit_append(load_event("export", end=1)), "export")
    body = aws.s3.get_object(Bucket=aws.settings.audit_bucket, Key=exported["key"])["Body"].read()
    origin, verifiers = _trusted(audit_append)
    (entry,) = verify_export(body.splitlines(keepends=True), verifiers, origin=origin).entries
    assert b'"policy_version":null' in entry
    record = decode_record(entry)
    assert isinstance(record, DecisionRecord)
    assert (record.decision, record.policy_version, record.trust_score, record.proof_hash) == (
        "deny",
        None,
        None,
        None,
    )
    assert _check(first["receipt"], entry, origin, verifiers) == 1


def test_the_bare_denial_of_a_failed_flow_names_no_requester_key(audit_append: Invoke) -> None:
    """RecordDenial passes no requester key: the member is left out of the entry (never written as null)."""
    event = {
        k: v
        for k, v in load_event("record_decision").items()
        if k not in {"trust", "votes", "context", "requester_public_key"}
    }
    event["decision"] = {"decision": "deny", "reasons": ["RecordDecision failed: States.Timeout"]}
    entry = ok(audit_append(event), "record_decision")["entry"]
    assert "requester_key_sha256" not in json.loads(entry)
    record = decode_record(entry.encode())
    assert isinstance(record, DecisionRecord)
    assert record.requester_key_sha256 is None


def _bad_events() -> dict[str, Any]:
    record = load_event("append")["records"][0]
    decision = load_event("record_decision")
    return {
        "not an object": [1, 2],
        "no action": {"tenant_id": TENANT},
        "unknown action": load_event("append", action="delete_log"),
        "no records": load_event("append", records=[]),
        "91 records": load_event("append", records=[record] * 91),
        "record of another tenant": load_event("append", records=[{**record, "tenant_id": "globex"}]),
        "unknown record kind": load_event("append", records=[{**record, "kind": "backdoor"}]),
        "record with extra field": load_event("append", records=[{**record, "admin": True}]),
        "record with bad version": load_event("append", records=[{**record, "versions": [2, 1]}]),
        "duplicate request ids": load_event("append", records=[record, record]),
        "bad tenant id": load_event("append", tenant_id="../acme"),
        "extra field": load_event("publish", force=True),
        "decision without principal": {k: v for k, v in decision.items() if k != "principal"},
        "decision with a naive time": {**decision, "decided_at": "2026-11-25T12:00:00"},
        "decision with a bad score": {**decision, "trust": {"score": 1.5}},
        "decision with a bad vote": {**decision, "votes": [{"agent": "a", "vote": "maybe", "confidence": 1}]},
        "decision with bad policy": {**decision, "decision": {"decision": "approve", "policy_version": "x"}},
        "approval without a policy version": {**decision, "decision": {"decision": "approve"}},
        "decision with a short requester key": {
            **decision,
            "requester_public_key": base64.b64encode(b"\x01" * 1215).decode(),
        },
        "decision with a requester key not base64": {**decision, "requester_public_key": "%%%"},
        "approval with a null policy version": {
            **decision,
            "decision": {"decision": "approve", "policy_version": None},
        },
        "export beyond the log": load_event("export", end=10**6),
        "export with a path": load_event("export", export_id="../../logs/acme/checkpoint"),
    }


def test_bad_requests_are_refused_and_log_nothing(audit_append: Invoke, aws: AwsStack) -> None:
    def check(event: Any) -> None:
        payload = audit_append(copy.deepcopy(event))
        assert payload["status"] == "error", payload
        assert payload["error"]["code"] in {"invalid_request", "not_found"}, payload
        assert_clean(payload, "support-agent-7")

    each_case(_bad_events(), check)
    listed = aws.s3.list_objects_v2(Bucket=aws.settings.audit_bucket, Prefix="logs/")
    assert listed["KeyCount"] == 0
    error(audit_append(load_event("get_checkpoint")), "not_found")


def test_validation_problems_name_fields_without_echoing_input(audit_append: Invoke) -> None:
    event = load_event("record_decision", principal={"subject": ""})
    body = error(audit_append(event), "invalid_request")
    assert any(p["field"].startswith("record_decision.principal") for p in body["details"]["problems"])
    assert "input" not in json.dumps(body)


def test_an_outage_between_commit_and_tiles_raises_for_retry_and_the_retry_completes(
    audit_append: Invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    ok(audit_append(load_event("append")), "append")

    def unavailable(self: S3TileStore, log_id: str, path: str, data: bytes) -> None:
        raise StorageUnavailableError("S3 is unavailable", aws_code="SlowDown")

    with monkeypatch.context() as patch:
        patch.setattr(S3TileStore, "write", unavailable)
        # The record is committed (sequenced) but its tiles and checkpoint are not written.
        with pytest.raises(TransientError):
            audit_append(load_event("record_decision"))
    assert ok(audit_append(load_event("get_checkpoint")), "get_checkpoint")["tree_size"] == 3
    # Step Functions retries the task: the same leaf, now integrated, checkpointed and provable.
    receipt = ok(audit_append(load_event("record_decision")), "record_decision")["receipt"]
    assert (receipt["leaf_index"], receipt["tree_size"]) == (3, 4)
    assert ok(audit_append(load_event("verify")), "verify")["ok"] is True


def test_decisions_are_logged_only_by_record_decision_and_only_near_now(audit_append: Invoke) -> None:
    # A decision appended as a plain record could stand as an approval: refused, nothing logged.
    forged = {
        "kind": "decision",
        "request_id": "forged-1",
        "tenant_id": "acme",
        "vault_id": "agent-memory",
        "item_id": "customer-42-notes",
        "principal_hash": "ab" * 32,
        "decision": "approve",
        "policy_version": "9b" * 32,
        "time": 2**40,
    }
    refused = error(
        audit_append({"action": "append", "tenant_id": "acme", "records": [forged]}), "invalid_request"
    )
    assert "record_decision" in refused["message"]
    # The execution's start time: neither in the future nor more than an hour ago.
    for decided_at in (NOW + 3600, NOW - 2 * 3600, 2**40):
        error(audit_append(load_event("record_decision", decided_at=decided_at)), "invalid_request")
    assert ok(audit_append(load_event("record_decision", decided_at=NOW - 600)), "record_decision")


def test_long_or_many_reasons_are_clipped_not_lost(audit_append: Invoke) -> None:
    reasons = ["x" * 400, *[f"reason {n}" for n in range(20)]]
    event = load_event("record_decision")
    event["decision"] = {**event["decision"], "reasons": reasons}
    logged = json.loads(ok(audit_append(event), "record_decision")["entry"])
    assert len(logged["reasons"]) == 16
    assert logged["reasons"][0] == "x" * 159 + "\u2026"
    assert logged["reasons"][-1] == "and 6 more"
    assert logged["trust_score"] is not None  # the evidence stays in the record


def test_an_append_over_the_batch_byte_limit_is_refused_as_too_large_and_logs_nothing(
    audit_append: Invoke, aws: AwsStack
) -> None:
    """90 valid deletions of 1024 ten-digit versions each (about 11.5 KB apiece, 1 MB in all): no
    DynamoDB item (400 KB) could hold their batch, which came back as internal_error. Now the append is
    refused before any write with a typed error, and the same records fit in appends of 25."""
    record = load_event("append")["records"][0]
    versions = list(range(2**32 - 1024, 2**32))
    records = [{**record, "request_id": f"shred-{i}", "versions": versions} for i in range(90)]
    body = error(audit_append(load_event("append", records=records)), "payload_too_large")
    assert body["details"]["limit"] == 320 * 1024
    assert body["details"]["size"] > 400 * 1024  # more than one DynamoDB item can hold
    listed = aws.s3.list_objects_v2(Bucket=aws.settings.audit_bucket, Prefix="logs/")
    assert listed["KeyCount"] == 0
    error(audit_append(load_event("get_checkpoint")), "not_found")
    for start in range(0, 90, 25):
        ok(audit_append(load_event("append", records=records[start : start + 25])), "append")
    assert ok(audit_append(load_event("get_checkpoint")), "get_checkpoint")["tree_size"] == 90
