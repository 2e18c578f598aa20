"""The audit-append handler on its sample events against moto: receipts a client verifies with only the
published verifier keys, the RecordDecision task (an approval logged only with its verified attestation
chain, stored beside the log and named in the record; a forged one refused and logged as the bare denial
it is) idempotent across retries, publish, export, verify, and every bad request refused with a typed
error and nothing logged."""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import time
from pathlib import Path
from typing import Any

import pytest

from reliquary import jcs
from reliquary.adapters.audit_reader import build_audit_reader
from reliquary.adapters.audit_store import S3TileStore
from reliquary.adapters.chain_store import chain_key
from reliquary.adapters.decisions import LoggedDecisions
from reliquary.adapters.dynamodb import TableConfig
from reliquary.audit.note import NoteVerifier, Policy
from reliquary.audit.receipts import Promise, Receipt, verify_export, verify_promise, verify_receipt
from reliquary.audit.records import DecisionRecord, decode_record, encode_record, parse_record
from reliquary.errors import StorageUnavailableError, TransientError
from reliquary.flow.attestation import StageKeys, parse_chain, require_approval_chain
from reliquary.flow.state import FlowState
from tests.functions.conftest import Invoke
from tests.functions.test_encrypt_handler import assert_clean, each_case, error, ok
from tests.support.attested import Attester, flow_json
from tests.support.aws import AwsStack

EVENTS_DIR = Path(__file__).resolve().parents[2] / "events" / "audit_append"
TENANT = "acme"
REFUSED = "RecordDecision refused the record: attestation_invalid"


NOW = int(time.time())


def load_event(name: str, **overrides: Any) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((EVENTS_DIR / f"{name}.json").read_text())
    if name == "record_decision":  # the sample's start time is long past; an execution started now
        event["decided_at"] = NOW
    event.update(overrides)
    return event


FLOW: dict[str, Any] = load_event("record_decision")["flow"]


@pytest.fixture
def attester(aws: AwsStack) -> Attester:
    return Attester(aws.settings, aws.dynamodb)


def decision_event(attester: Attester, flow: Any = None, **fields: Any) -> dict[str, Any]:
    """The sample RecordDecision event with ``flow`` (the sample's approval by default) signed by the
    stages that decided it: what the state machine passes."""
    signed = attester.attest(FLOW if flow is None else flow)
    return load_event("record_decision", flow=flow_json(signed), **fields)


def _trusted(invoke: Invoke) -> tuple[str, list[NoteVerifier]]:
    published = ok(invoke(load_event("get_checkpoint")), "get_checkpoint")
    return published["origin"], [NoteVerifier.from_vkey(k) for k in published["verifier_keys"]]


def _check(receipt: dict[str, Any], entry: bytes, origin: str, verifiers: list[NoteVerifier]) -> int:
    checkpoint = verify_receipt(
        Receipt.from_dict(receipt), entry, verifiers, origin=origin, required=Policy.all_of(*verifiers)
    )
    return checkpoint.size


def _logged(audit_append: Invoke, aws: AwsStack, request_id: str) -> list[dict[str, Any]]:
    """The records the tenant's log holds for ``request_id`` (read back through an export)."""
    size = ok(audit_append(load_event("get_checkpoint")), "get_checkpoint")["tree_size"]
    exported = ok(audit_append(load_event("export", export_id=f"x{time.time_ns()}", end=size)), "export")
    body = aws.s3.get_object(Bucket=aws.settings.audit_bucket, Key=exported["key"])["Body"].read()
    origin, verifiers = _trusted(audit_append)
    entries = verify_export(body.splitlines(keepends=True), verifiers, origin=origin).entries
    return [r for r in (json.loads(e) for e in entries) if r["request_id"] == request_id]


def test_every_action_has_a_sample_event_and_the_readme_names_them_all() -> None:
    names = {p.stem for p in EVENTS_DIR.glob("*.json")}
    assert names == {
        "append",
        "append_promise",
        "record_decision",
        "publish",
        "get_checkpoint",
        "export",
        "verify",
        "anchor",
        "anchor_due",
    }
    readme = (EVENTS_DIR / "README.md").read_text()
    assert all(f"`{name}.json`" in readme for name in names)


def test_an_append_with_promises_is_answered_once_sequenced_and_publish_keeps_each_promise(
    audit_append: Invoke,
) -> None:
    event = load_event("append_promise")
    answered = ok(audit_append(event), "append")
    assert "receipts" not in answered
    (promise_json,) = answered["promises"]
    (record,) = event["records"]
    entry = encode_record(parse_record(record))
    promise = Promise.from_dict(promise_json)
    (again,) = ok(audit_append(event), "append")["promises"]
    # Idempotent: the same leaf, leaf hash and time (signed afresh: ML-DSA and Falcon are randomized).
    assert {**again, "signatures": []} == {**promise_json, "signatures": []}
    published = ok(audit_append(load_event("publish")), "publish")
    assert published["tree_size"] > promise.leaf_index  # publish integrated and signed it
    origin, verifiers = _trusted(audit_append)
    verify_promise(promise, verifiers, origin=origin, entry=entry, required=Policy.all_of(*verifiers))
    appended = ok(audit_append(load_event("append")), "append")  # receipts by default, as before
    assert {"receipts"} == set(appended)
    bad = error(audit_append({**event, "receipt": "later"}), "invalid_request")
    assert "later" not in json.dumps(bad)


def test_the_sample_events_in_order(audit_append: Invoke, aws: AwsStack, attester: Attester) -> None:
    appended = ok(audit_append(load_event("append")), "append")
    assert [r["leaf_index"] for r in appended["receipts"]] == [0, 1, 2]
    origin, verifiers = _trusted(audit_append)
    assert origin == "reliquary.local/audit/acme"
    assert {v.algorithm.value for v in verifiers} == {"Ed25519", "ML-DSA-65", "Falcon-512"}
    for record, receipt in zip(load_event("append")["records"], appended["receipts"], strict=True):
        assert _check(receipt, encode_record(parse_record(record)), origin, verifiers) == 3

    # The sample approval, with the chain its stages signed (record_decision.json carries none).
    decided = ok(audit_append(decision_event(attester)), "record_decision")
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
    record = logged[3]
    assert isinstance(record, DecisionRecord)
    assert record.time == NOW  # the execution's start, as the flow passed it
    # The requester key only as its SHA-256: the one key a grant for the request may be sealed to.
    key = base64.b64decode(FLOW["requester_public_key"])
    assert record.requester_key_sha256 == hashlib.sha256(key).hexdigest()
    assert FLOW["requester_public_key"] not in decided["entry"]
    assert (record.item_version, record.chain_sha256) == (1, decided["chain_sha256"])

    report = ok(audit_append(load_event("verify")), "verify")
    assert report["ok"] is True
    assert report["size"] == 4


def test_an_approvals_chain_is_stored_beside_the_log_and_verifies_offline(
    audit_append: Invoke, aws: AwsStack, attester: Attester
) -> None:
    """What an auditor does with only the published keys: the record names its chain by digest; the chain
    in the bucket is that digest's, and verifies with the stage keys get_checkpoint publishes."""
    decided = ok(audit_append(decision_event(attester)), "record_decision")
    record = json.loads(decided["entry"])
    stored = aws.s3.get_object(
        Bucket=aws.settings.audit_bucket, Key=chain_key(TENANT, record["chain_sha256"])
    )["Body"].read()
    assert hashlib.sha256(stored).hexdigest() == record["chain_sha256"]
    published = ok(audit_append(load_event("get_checkpoint")), "get_checkpoint")
    keys = StageKeys.from_json(published["stage_keys"])
    assert {k["signer"] for k in published["stage_keys"]} == {"verify-proof", "score-trust", "agent-vote"}
    subject = FlowState.model_validate(FLOW).subject
    chain = require_approval_chain(parse_chain(jcs.parse(stored)), keys, subject=subject)
    assert [a.stage.value for a in chain.attestations] == [
        "verify_context",
        "score_trust",
        *["vote"] * len(FLOW["votes"]),
        "tally",
    ]
    assert chain.item_version == record["item_version"] == FLOW["trust"]["item_version"]
    assert chain.policy_version == record["policy_version"]


def test_the_sample_decision_as_it_is_is_refused_and_logged_as_the_bare_denial_it_is(
    audit_append: Invoke, aws: AwsStack, attester: Attester
) -> None:
    """record_decision.json carries no attestations: an approval nobody signed. Refused, and its request
    id logged as a denial naming the refusal (what the flow's RecordDenial would log), which no approval
    can follow."""
    body = error(audit_append(load_event("record_decision")), "attestation_invalid")
    assert body["details"] == {"check": "structure"}
    (record,) = _logged(audit_append, aws, "access-0002")
    assert record["decision"] == "deny"
    assert record["reasons"] == [REFUSED]
    for member in ("requester_key_sha256", "chain_sha256", "item_version"):
        assert member not in record
    assert (record["trust_score"], record["votes"], record["proof_hash"]) == (None, [], None)
    error(audit_append(decision_event(attester)), "idempotency_conflict")  # the denial stands
    assert ok(audit_append(load_event("get_checkpoint")), "get_checkpoint")["tree_size"] == 1


def _forged_cases(attester: Attester, part: Any) -> dict[str, tuple[dict[str, Any], str]]:
    """Each forgery of ``part`` (see ``Attester.forgeries``) on an approval of its own request id."""
    names = list(attester.forgeries(attester.attest(FLOW), part))
    cases = {}
    for n, name in enumerate(names):
        honest = attester.attest({**FLOW, "request_id": f"forged-{part}-{n}"})
        cases[name] = attester.forgeries(honest, part)[name]
    return cases


def _approval_forgeries(attester: Attester) -> dict[str, tuple[dict[str, Any], str]]:
    """Approvals no honest flow signs, each of its own request id, and the check that catches each."""

    def signed(n: int, **changes: Any) -> dict[str, Any]:
        return flow_json(attester.attest({**FLOW, "request_id": f"forged-approval-{n}", **changes}))

    denied = signed(1, decision={**FLOW["decision"], "decision": "deny"})
    without_a_vote = signed(2)
    del without_a_vote["votes"][0]
    refusing = {**FLOW["trust"], "rules": {**FLOW["trust"]["rules"], "effect": "deny"}}
    return {
        "a hand-made approval, no evidence": (
            {**FLOW, "request_id": "forged-approval-0", "context": None, "trust": None, "votes": []},
            "structure",
        ),
        "a denial's tally turned into an approval": (
            {**denied, "decision": {**denied["decision"], "decision": "approve"}},
            "result",
        ),
        "a vote left out": (without_a_vote, "parents"),
        "an approval the rules refused": (signed(3, trust=refusing), "approval"),
        "an approval naming another policy version": (
            signed(4, decision={**FLOW["decision"], "policy_version": "9b" * 32}),
            "result",
        ),
    }


@pytest.mark.parametrize("part", ["context", "trust", "vote", "decision", "approval"])
def test_a_forged_approval_is_refused_and_its_request_logged_as_a_bare_denial(
    audit_append: Invoke, aws: AwsStack, attester: Attester, part: Any
) -> None:
    cases = _approval_forgeries(attester) if part == "approval" else _forged_cases(attester, part)

    def check(case: tuple[dict[str, Any], str]) -> None:
        flow, failed = case
        body = error(audit_append(load_event("record_decision", flow=flow)), "attestation_invalid")
        assert body["details"] == {"check": failed}
        (record,) = _logged(audit_append, aws, flow["request_id"])
        assert (record["decision"], record["reasons"]) == ("deny", [REFUSED])
        assert "requester_key_sha256" not in record
        assert "chain_sha256" not in record

    each_case(cases, check)
    assert not aws.s3.list_objects_v2(Bucket=aws.settings.audit_bucket, Prefix="chains/").get("Contents")


def test_a_retried_record_decision_gets_the_same_receipt_and_one_record(
    audit_append: Invoke, attester: Attester
) -> None:
    event = decision_event(attester)
    first = ok(audit_append(event), "record_decision")["receipt"]
    again = ok(audit_append(copy.deepcopy(event)), "record_decision")["receipt"]
    assert again["leaf_index"] == first["leaf_index"] == 0
    assert ok(audit_append(load_event("get_checkpoint")), "get_checkpoint")["tree_size"] == 1
    # The same decision from another execution (another start time): the first record and receipt stand.
    logged = ok(audit_append(copy.deepcopy(event)), "record_decision")["entry"]
    later = {**copy.deepcopy(event), "decided_at": NOW + 1, "execution_id": "arn:aws:states:x:again"}
    redecided = ok(audit_append(later), "record_decision")
    assert redecided["receipt"]["leaf_index"] == 0
    assert redecided["entry"] == logged
    # Same request id, another decision (each honestly signed): a conflict, never a second record.
    changes: list[dict[str, Any]] = [
        {"decision": {"decision": "deny", "policy_version": FLOW["decision"]["policy_version"]}},
        {"trust": {**FLOW["trust"], "score": 0.8125}},
        {"requester_public_key": base64.b64encode(b"\x07" * 1216).decode()},  # a grant to another key
    ]
    for change in changes:
        error(audit_append(decision_event(attester, {**FLOW, **change})), "idempotency_conflict")
    assert ok(audit_append(load_event("get_checkpoint")), "get_checkpoint")["tree_size"] == 1


def test_an_append_under_a_future_decisions_request_id_does_not_block_its_record_decision(
    audit_append: Invoke, aws: AwsStack, attester: Attester
) -> None:
    """The squatting attack: a caller of the append action logs a record under the request id of an
    access flow that has not decided yet. Decisions have their own id space: the flow's RecordDecision
    still logs its decision, retries get its first receipt, and the grant's reader finds that decision."""
    request_id = FLOW["request_id"]
    squat = {**load_event("append")["records"][0], "request_id": request_id}
    squatted = ok(audit_append(load_event("append", records=[squat])), "append")
    assert [r["leaf_index"] for r in squatted["receipts"]] == [0]
    decided = decision_event(attester)
    first = ok(audit_append(copy.deepcopy(decided)), "record_decision")
    assert (first["decision"], first["receipt"]["leaf_index"]) == ("approve", 1)
    assert first["receipt"]["request_id"] == request_id
    origin, verifiers = _trusted(audit_append)
    assert _check(first["receipt"], first["entry"].encode(), origin, verifiers) == 2
    again = ok(audit_append(copy.deepcopy(decided)), "record_decision")
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
        vaults=TableConfig(settings.vaults_table, settings.region, settings.endpoint_url),
        s3=aws.s3,
        dynamodb=aws.dynamodb,
    )
    logged = ledger.logged_decision(TENANT, request_id)
    assert logged is not None
    assert encode_record(logged) == first["entry"].encode()
    assert ok(audit_append(load_event("verify")), "verify")["ok"] is True


def test_a_denial_before_any_policy_is_logged_without_a_policy_version(
    audit_append: Invoke, aws: AwsStack, attester: Attester
) -> None:
    # VerifyContext refused the request (a replayed nonce): no trust policy was read, no score, no votes.
    flow = {**FLOW, "trust": None, "votes": []}
    flow["context"] = {"verified": False, "circuit": "context_proof", "reason": "nonce already used"}
    flow["decision"] = {"decision": "deny", "reasons": ["context not verified"]}
    event = load_event("record_decision", flow=flow)
    first = ok(audit_append(event), "record_decision")  # a denial needs no authority
    assert first["decision"] == "deny"
    assert first["chain_sha256"] is None  # nothing signed: nothing to name
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
    # The same denial with VerifyContext's signed answer: logged with its chain, as far as the flow got.
    signed_flow = flow_json(attester.attest({**flow, "request_id": "access-0003"}, tally=False))
    signed = ok(audit_append(load_event("record_decision", flow=signed_flow)), "record_decision")
    assert signed["chain_sha256"] is not None
    assert json.loads(signed["entry"])["chain_sha256"] == signed["chain_sha256"]


def test_the_bare_denial_of_a_failed_flow_names_no_requester_key(audit_append: Invoke) -> None:
    """RecordDenial (``bare``) logs the denial without evidence: no requester key, no chain (the members
    are left out of the entry, never written as null)."""
    flow = {**FLOW, "decision": {"decision": "deny", "reasons": ["RecordDecision failed: States.Timeout"]}}
    entry = ok(audit_append(load_event("record_decision", flow=flow, bare=True)), "record_decision")["entry"]
    logged = json.loads(entry)
    for member in ("requester_key_sha256", "chain_sha256", "item_version"):
        assert member not in logged
    assert (logged["trust_score"], logged["votes"], logged["proof_hash"]) == (None, [], None)
    record = decode_record(entry.encode())
    assert isinstance(record, DecisionRecord)
    assert record.requester_key_sha256 is None
    # Only a denial is ever logged bare.
    body = error(
        audit_append(load_event("record_decision", bare=True, flow={**FLOW, "request_id": "b"})),
        "invalid_request",
    )
    assert body["details"] == {"field": "decision"}


def _bad_events() -> dict[str, Any]:
    record = load_event("append")["records"][0]
    decision = load_event("record_decision")
    flow = decision["flow"]

    def in_flow(**changes: Any) -> dict[str, Any]:
        return {**decision, "flow": {**flow, **changes}}

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
        "the state beside the flow, not in it": {
            **{k: v for k, v in decision.items() if k != "flow"},
            **flow,
        },
        "decision without principal": {
            **decision,
            "flow": {k: v for k, v in flow.items() if k != "principal"},
        },
        "decision with a naive time": {**decision, "decided_at": "2026-11-25T12:00:00"},
        "decision with a bad score": in_flow(trust={**flow["trust"], "score": 1.5}),
        "decision with a bad vote": in_flow(votes=[{**flow["votes"][0], "vote": "maybe"}]),
        "decision with bad policy": in_flow(decision={"decision": "approve", "policy_version": "x"}),
        "decision with a short requester key": in_flow(
            requester_public_key=base64.b64encode(b"\x01" * 1215).decode()
        ),
        "decision with a requester key not base64": in_flow(requester_public_key="%%%"),
        "decision with no decision": in_flow(decision=None),
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
    event = load_event("record_decision", flow={**FLOW, "principal": {"subject": ""}})
    body = error(audit_append(event), "invalid_request")
    assert any(p["field"].startswith("record_decision.flow.principal") for p in body["details"]["problems"])
    assert "input" not in json.dumps(body)


def test_an_outage_between_commit_and_tiles_raises_for_retry_and_the_retry_completes(
    audit_append: Invoke, attester: Attester, monkeypatch: pytest.MonkeyPatch
) -> None:
    ok(audit_append(load_event("append")), "append")
    event = decision_event(attester)

    def unavailable(self: S3TileStore, log_id: str, path: str, data: bytes) -> None:
        raise StorageUnavailableError("S3 is unavailable", aws_code="SlowDown")

    with monkeypatch.context() as patch:
        patch.setattr(S3TileStore, "write", unavailable)
        # The record is committed (sequenced) but its tiles and checkpoint are not written.
        with pytest.raises(TransientError):
            audit_append(copy.deepcopy(event))
    assert ok(audit_append(load_event("get_checkpoint")), "get_checkpoint")["tree_size"] == 3
    # Step Functions retries the task: the same leaf, now integrated, checkpointed and provable.
    receipt = ok(audit_append(event), "record_decision")["receipt"]
    assert (receipt["leaf_index"], receipt["tree_size"]) == (3, 4)
    assert ok(audit_append(load_event("verify")), "verify")["ok"] is True


def test_decisions_are_logged_only_by_record_decision_and_only_near_now(
    audit_append: Invoke, attester: Attester
) -> None:
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
    event = decision_event(attester)
    for decided_at in (NOW + 3600, NOW - 2 * 3600, 2**40):
        error(audit_append({**event, "decided_at": decided_at}), "invalid_request")
    error(audit_append(load_event("get_checkpoint")), "not_found")  # nothing logged, not even a denial
    assert ok(audit_append({**event, "decided_at": NOW - 600}), "record_decision")


def test_long_or_many_reasons_are_clipped_not_lost(audit_append: Invoke, attester: Attester) -> None:
    reasons = ["x" * 400, *[f"reason {n}" for n in range(20)]]
    event = decision_event(attester, {**FLOW, "decision": {**FLOW["decision"], "reasons": reasons}})
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


def test_record_decision_indexes_each_decision_for_the_reader(
    audit_append: Invoke, aws: AwsStack, attester: Attester
) -> None:
    """Every decision record_decision logs (an approval, a refused forgery logged as a denial, a retry
    that logs nothing new) is listed for its item by the read-only reader, which publishes exactly what
    get_checkpoint does, and whose entries prove the very entries the handler returned."""
    ok(audit_append(load_event("append")), "append")  # records of other kinds: not indexed
    approved = ok(audit_append(decision_event(attester)), "record_decision")
    ok(audit_append(decision_event(attester)), "record_decision")  # retried: the same leaf
    forged = {**FLOW, "request_id": "forged-1", "context": None, "trust": None, "votes": []}
    error(audit_append(load_event("record_decision", flow=forged)), "attestation_invalid")
    published = ok(audit_append(load_event("get_checkpoint")), "get_checkpoint")

    reader = build_audit_reader(aws.settings)
    assert reader.checkpoint_text(TENANT) == published["checkpoint"]
    assert reader.verifier_keys() == published["verifier_keys"]
    assert reader.stage_keys() == published["stage_keys"]
    page = reader.item_decisions(TENANT, FLOW["vault_id"], FLOW["item_id"])
    assert [(d.index, d.request_id, d.decision) for d in page.decisions] == [
        (3, FLOW["request_id"], "approve"),
        (4, "forged-1", "deny"),
    ]
    assert page.cursor is None
    proved = reader.entry(TENANT, 3)
    assert proved.entry == approved["entry"].encode()
    assert proved.checkpoint is not None
    origin, verifiers = _trusted(audit_append)
    receipt = Receipt(origin, FLOW["request_id"], 3, proved.checkpoint.encode(), 5, proved.inclusion_proof)
    assert _check(receipt.to_dict(), proved.entry, origin, verifiers) == 5


def test_the_anchor_events_are_refused_where_anchoring_is_off(audit_append: Invoke) -> None:
    ok(audit_append(load_event("append")), "append")
    for name in ("anchor", "anchor_due"):
        answer = audit_append(load_event(name))
        assert answer["status"] == "error"
        assert answer["error"]["code"] == "invalid_request"
        assert "anchoring is off" in answer["error"]["message"]
    bad = audit_append({**load_event("anchor_due"), "max_logs": 0})
    assert bad["error"]["code"] == "invalid_request"
