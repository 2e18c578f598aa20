"""The audit service on in-memory stores: receipts anyone can verify, idempotent appends, checkpoints that
never rewrite history, reads, exports, and every kind of tampering refused."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from reliquary.audit import merkle, tiles
from reliquary.audit.checkpoint import Checkpoint, open_checkpoint, sign_checkpoint
from reliquary.audit.log import MAX_BATCH, Batch, LogHead
from reliquary.audit.note import NoteVerifier, Policy
from reliquary.audit.receipts import Receipt, verify_export, verify_receipt
from reliquary.audit.records import DeletionRecord, encode_record
from reliquary.audit.service import CHECKPOINT_PATH, StoredCheckpoint, log_key
from reliquary.errors import (
    CheckpointError,
    IdempotencyConflictError,
    InvalidRequestError,
    LogInconsistentError,
    NotFoundError,
    ProofError,
    RootMismatchError,
)
from tests.support.audit import AuditFixture, audit_fixture, checkpoint_keys, decision

TENANT = "acme"


@pytest.fixture
def fx() -> AuditFixture:
    return audit_fixture()


def _verify(fx: AuditFixture, receipt: Receipt, entry: bytes) -> Checkpoint:
    return verify_receipt(
        receipt,
        entry,
        fx.service.verifiers,
        origin=fx.service.origin(TENANT),
        required=fx.keys.policy,
    )


def test_every_receipt_verifies_with_only_the_published_verifier_keys(fx: AuditFixture) -> None:
    records = [decision(f"req-{i}") for i in range(5)]
    receipts = fx.service.append(TENANT, records)
    assert [r.leaf_index for r in receipts] == [0, 1, 2, 3, 4]
    # A client knows the vkeys (published text) and the record; nothing else of the service.
    verifiers = [NoteVerifier.from_vkey(k) for k in fx.service.verifier_keys]
    assert {v.algorithm.value for v in verifiers} == {"Ed25519", "ML-DSA-65", "Falcon-512"}
    for record, receipt in zip(records, receipts, strict=True):
        round_tripped = Receipt.from_dict(json.loads(json.dumps(receipt.to_dict())))
        checkpoint = verify_receipt(
            round_tripped,
            encode_record(record),
            verifiers,
            origin="audit.test.example/logs/acme",
            required=Policy.all_of(*verifiers),
        )
        assert checkpoint.size == 5
    # The checkpoint is also where tlog-tiles clients look for it.
    assert fx.tiles.objects[(TENANT, CHECKPOINT_PATH)] == receipts[0].checkpoint


def test_a_receipt_does_not_verify_for_another_entry_index_or_log(fx: AuditFixture) -> None:
    first, second = fx.service.append(TENANT, [decision("req-1"), decision("req-2")])
    entry = encode_record(decision("req-1"))
    with pytest.raises(RootMismatchError):
        _verify(fx, first, encode_record(decision("req-2")))
    with pytest.raises(ProofError):
        _verify(fx, Receipt(**{**_fields(first), "leaf_index": 1}), entry)
    with pytest.raises(ProofError):
        _verify(fx, Receipt(**{**_fields(first), "tree_size": 3}), entry)
    with pytest.raises(InvalidRequestError):
        verify_receipt(first, entry, fx.service.verifiers, origin=fx.service.origin("other"))
    flipped = bytearray(first.checkpoint)
    flipped[-10] ^= 1
    with pytest.raises(CheckpointError):
        _verify(fx, Receipt(**{**_fields(first), "checkpoint": bytes(flipped)}), entry)
    # A checkpoint signed by a stranger's keys (same names) is not trusted.
    stranger = audit_fixture(keys=_fresh_keys())
    (forged,) = stranger.service.append(TENANT, [decision("req-1")])
    with pytest.raises(CheckpointError):
        _verify(fx, forged, entry)
    assert second.leaf_index == 1


def _fields(receipt: Receipt) -> dict[str, Any]:
    return {name: getattr(receipt, name) for name in Receipt.__slots__}


def _fresh_keys() -> Any:
    from reliquary.audit.note import NoteSigner
    from reliquary.audit.service import CheckpointKeys
    from reliquary.crypto.signing import SignatureAlgorithm, SigningKey

    name = checkpoint_keys().signers[0].name
    return CheckpointKeys((NoteSigner(name, SigningKey.generate(SignatureAlgorithm.ED25519)),))


@pytest.mark.parametrize(
    "value",
    [
        None,
        {},
        {"format": "reliquary-audit-receipt/v2"},
        {"format": "reliquary-audit-receipt/v1", "origin": "o", "request_id": "r", "checkpoint": 5},
    ],
)
def test_malformed_receipts_are_refused(value: Any) -> None:
    with pytest.raises(InvalidRequestError):
        Receipt.from_dict(value)


def test_malformed_receipt_fields_are_refused(fx: AuditFixture) -> None:
    (receipt,) = fx.service.append(TENANT, [decision("req-1")])
    good = receipt.to_dict()
    for change in (
        {"leaf_index": -1},
        {"leaf_index": True},
        {"tree_size": "1"},
        {"inclusion_proof": "AAAA"},
        {"inclusion_proof": ["not base64!"]},
        {"inclusion_proof": ["AAAA"] * 65},
    ):
        with pytest.raises(InvalidRequestError):
            Receipt.from_dict({**good, **change})


def test_appending_a_request_again_returns_its_first_index_and_logs_it_once(fx: AuditFixture) -> None:
    fx.service.append(TENANT, [decision("req-1"), decision("req-2")])
    again = fx.service.append(TENANT, [decision("req-2"), decision("req-3")])
    assert [(r.request_id, r.leaf_index) for r in again] == [("req-2", 1), ("req-3", 2)]
    assert fx.service.checkpoint(TENANT).size == 3
    _verify(fx, again[0], encode_record(decision("req-2")))


def test_a_request_id_reused_for_another_record_is_a_conflict(fx: AuditFixture) -> None:
    fx.service.append(TENANT, [decision("req-1")])
    with pytest.raises(IdempotencyConflictError) as caught:
        fx.service.append(TENANT, [decision("req-1", decision="deny"), decision("req-2")])
    assert caught.value.details["request_ids"] == ["req-1"]
    # The other record was logged; the original stays as it was.
    assert fx.log.entries(TENANT, 0, 2) == [
        encode_record(decision("req-1")),
        encode_record(decision("req-2")),
    ]


def _deletion(request_id: str, **changes: Any) -> DeletionRecord:
    fields: dict[str, Any] = {
        "request_id": request_id,
        "tenant_id": TENANT,
        "vault_id": "agent-memory",
        "item_id": "customer-42-notes",
        "versions": (1,),
        "shredded_at": 1_795_651_200,
        "signer_key_id": "00" * 8,
        "signature_algorithm": "ML-DSA-65",
        "reason": "requested",
    }
    fields.update(changes)
    return DeletionRecord(**fields)


def test_a_record_appended_under_a_future_decisions_request_id_cannot_squat_it(fx: AuditFixture) -> None:
    """Decisions have their own id space: an append can never occupy the request id of a decision the
    access flow has yet to log, and every guarantee of each space still holds."""
    (squat,) = fx.service.append(TENANT, [_deletion("access-1")])
    (receipt,), (entry,) = fx.service.append_logged(TENANT, [decision("access-1")])
    assert (squat.request_id, squat.leaf_index) == ("access-1", 0)
    assert (receipt.request_id, receipt.leaf_index) == ("access-1", 1)
    assert entry == encode_record(decision("access-1"))
    _verify(fx, receipt, entry)
    assert fx.store.indexes(TENANT, ["access-1", "decision#access-1"]) == {
        "access-1": 0,
        "decision#access-1": 1,
    }
    # One decision per (tenant, request id): a retry gets the first receipt, another decision conflicts.
    (retried,), (logged,) = fx.service.append_logged(TENANT, [decision("access-1", time=1_795_651_999)])
    assert (retried.leaf_index, logged) == (1, entry)
    with pytest.raises(IdempotencyConflictError) as caught:
        fx.service.append(TENANT, [decision("access-1", decision="deny")])
    assert caught.value.details["request_ids"] == ["access-1"]  # the request id, not the log's key
    # One other record per (tenant, request id), as before.
    assert fx.service.append(TENANT, [_deletion("access-1")])[0].leaf_index == 0
    with pytest.raises(IdempotencyConflictError):
        fx.service.append(TENANT, [_deletion("access-1", reason="another")])
    # The other order, and both in one append.
    fx.service.append(TENANT, [decision("access-2")])
    assert fx.service.append(TENANT, [_deletion("access-2")])[0].leaf_index == 3
    both = fx.service.append(TENANT, [decision("access-3"), _deletion("access-3")])
    assert [(r.request_id, r.leaf_index) for r in both] == [("access-3", 4), ("access-3", 5)]
    assert fx.service.checkpoint(TENANT).size == 6
    assert fx.service.verify(TENANT).ok


def test_the_same_decision_from_another_execution_gets_the_first_record_and_receipt(fx: AuditFixture) -> None:
    first = decision("req-1", execution_id="arn:aws:states:us-east-1:1:execution:m:first")
    (receipt,), (entry,) = fx.service.append_logged(TENANT, [first])
    later = decision("req-1", execution_id="arn:aws:states:us-east-1:1:execution:m:again", time=1_795_651_999)
    (again,), (logged,) = fx.service.append_logged(TENANT, [later])
    assert again.leaf_index == receipt.leaf_index == 0
    assert logged == entry == encode_record(first)  # the first decision stands, as it was logged
    assert fx.service.checkpoint(TENANT).size == 1
    _verify(fx, again, logged)
    # Anything else that differs is another decision: a conflict, and nothing is logged.
    for change in (
        {"decision": "deny"},
        {"trust_score": 0.5},
        {"reasons": ["other"]},
        {"proof_hash": "ab" * 32},
    ):
        with pytest.raises(IdempotencyConflictError):
            fx.service.append(TENANT, [decision("req-1", **change)])
    assert fx.service.checkpoint(TENANT).size == 1


def test_bad_appends_change_nothing(fx: AuditFixture) -> None:
    with pytest.raises(InvalidRequestError):
        fx.service.append(TENANT, [])
    with pytest.raises(InvalidRequestError):
        fx.service.append(TENANT, [decision("req-1", tenant_id="globex")])
    with pytest.raises(InvalidRequestError):
        fx.service.append("not a tenant!", [decision("req-1")])
    with pytest.raises(InvalidRequestError):
        fx.service.append(TENANT, [decision(f"req-{i}") for i in range(MAX_BATCH + 1)])
    assert fx.store.head(TENANT) == LogHead()
    with pytest.raises(NotFoundError):
        fx.service.checkpoint(TENANT)


def test_tenants_have_separate_logs_and_origins(fx: AuditFixture) -> None:
    (a,) = fx.service.append("acme", [decision("req-1")])
    (b,) = fx.service.append("globex", [decision("req-1", tenant_id="globex")])
    assert (a.leaf_index, b.leaf_index) == (0, 0)
    assert (a.origin, b.origin) == ("audit.test.example/logs/acme", "audit.test.example/logs/globex")
    # acme's checkpoint is no proof about globex's log.
    with pytest.raises(CheckpointError):
        open_checkpoint(a.checkpoint, fx.service.verifiers, origin=b.origin)
    with pytest.raises(InvalidRequestError):
        verify_receipt(a, encode_record(decision("req-1")), fx.service.verifiers, origin=b.origin)


def test_publishing_proves_consistency_with_the_previous_checkpoint(fx: AuditFixture) -> None:
    fx.service.append(TENANT, [decision(f"req-{i}") for i in range(10)])
    first = fx.service.checkpoint(TENANT)
    fx.service.append(TENANT, [decision(f"req-{i}") for i in range(10, 100)])
    second = fx.service.checkpoint(TENANT)
    old = open_checkpoint(first.note, fx.service.verifiers, origin=fx.service.origin(TENANT))
    new = open_checkpoint(second.note, fx.service.verifiers, origin=fx.service.origin(TENANT))
    merkle.verify_consistency(
        old.size, new.size, old.root_hash, new.root_hash, fx.service.consistency_proof(TENANT, 10, 100)
    )
    # Nothing new: publishing returns the latest checkpoint unchanged.
    assert fx.service.publish(TENANT) == second


def test_a_rewritten_history_is_never_published(fx: AuditFixture) -> None:
    fx.service.append(TENANT, [decision(f"req-{i}") for i in range(20)])
    # Someone with storage access rewrites the log behind the latest checkpoint: a new tree of the same
    # length with one entry changed, and 5 more entries after it.
    forged = audit_fixture()
    forged.service.append(
        TENANT, [decision(f"req-{i}", decision="deny" if i == 3 else "approve") for i in range(25)]
    )
    fx.tiles.objects.update(forged.tiles.objects)
    fx.store._heads[TENANT] = forged.store.head(TENANT)
    fx.log._cache.clear()
    with pytest.raises(LogInconsistentError):
        fx.service.publish(TENANT)
    assert fx.service.checkpoint(TENANT).size == 20


def test_a_tampered_stored_checkpoint_stops_publishing(fx: AuditFixture) -> None:
    fx.service.append(TENANT, [decision("req-1")])
    stored = fx.service.checkpoint(TENANT)
    body, _, _ = stored.note.partition(b"\n\n")
    # A checkpoint signed by someone else (or with a signature missing) is not ours: fail closed.
    unsigned = sign_checkpoint(Checkpoint.parse(body.decode() + "\n"), fx.keys.signers[:1])
    fx.store._checkpoints[TENANT] = StoredCheckpoint(1, unsigned)
    with pytest.raises(CheckpointError):
        fx.service.append(TENANT, [decision("req-2")])
    fx.store._checkpoints[TENANT] = StoredCheckpoint(2, stored.note)  # size disagrees with the note
    with pytest.raises(LogInconsistentError):
        fx.service.publish(TENANT)


def test_a_crash_after_commit_is_completed_by_the_next_append(fx: AuditFixture) -> None:
    fx.service.append(TENANT, [decision("req-1")])
    # A writer committed req-2 (head and batch) and crashed before writing tiles or a checkpoint.
    entry = encode_record(decision("req-2"))
    head = fx.store.head(TENANT)
    grown, _ = head.compact_range.extend([merkle.SHA256.hash_leaf(entry)])
    fx.store.commit(
        TENANT,
        expected_revision=head.revision,
        head=LogHead(grown.size, grown.hashes, head.integrated, head.revision + 1),
        batch=Batch(1, (entry,), (log_key(decision("req-2")),)),
    )
    (receipt,) = fx.service.append(TENANT, [decision("req-3")])
    assert receipt.leaf_index == 2
    assert fx.service.checkpoint(TENANT).size == 3
    # The crashed writer's retry gets the index its commit gave it.
    (retried,) = fx.service.append(TENANT, [decision("req-2")])
    assert retried.leaf_index == 1
    _verify(fx, retried, entry)
    assert fx.service.verify(TENANT).ok


def test_reads_serve_tiles_entries_and_proofs(fx: AuditFixture) -> None:
    records = [decision(f"req-{i}") for i in range(300)]
    for start in range(0, 300, MAX_BATCH):
        fx.service.append(TENANT, records[start : start + MAX_BATCH])
    entries = [encode_record(r) for r in records]
    assert fx.service.entries(TENANT, 250, 260) == entries[250:260]
    leaf_hashes = [merkle.SHA256.hash_leaf(e) for e in entries]
    root = merkle.root_of(leaf_hashes)
    merkle.verify_inclusion(7, 300, leaf_hashes[7], fx.service.inclusion_proof(TENANT, 7, 300), root)
    assert fx.service.tile(TENANT, "tile/0/000") == tiles.encode_tile(leaf_hashes[:256])
    assert fx.service.tile(TENANT, CHECKPOINT_PATH) == fx.service.checkpoint(TENANT).note
    receipt = fx.service.receipt(TENANT, "req-7", 7)
    _verify(fx, receipt, entries[7])
    for bad in ("../../etc/passwd", "tile/0/x", "tile/\u00b2/000", "tile/0/\u0660\u0660\u0661", "tile/+1/0"):
        with pytest.raises(InvalidRequestError) as refused:
            fx.service.tile(TENANT, bad)
        assert refused.value.details == {}
    with pytest.raises(NotFoundError) as missing:
        fx.service.tile(TENANT, "tile/9/000")
    assert missing.value.details == {}
    with pytest.raises(InvalidRequestError):
        fx.service.entries(TENANT, 0, 1001)
    with pytest.raises(InvalidRequestError):
        fx.service.inclusion_proof(TENANT, 300, 300)
    with pytest.raises(InvalidRequestError):
        fx.service.consistency_proof(TENANT, 5, 4)
    with pytest.raises(InvalidRequestError):
        fx.service.receipt(TENANT, "req-x", 300)


def test_an_export_verifies_line_by_line_and_tampering_is_found(fx: AuditFixture) -> None:
    records = [decision(f"req-{i}") for i in range(40)]
    fx.service.append(TENANT, records)
    result = fx.service.export(TENANT, 5, 25, export_id="export-1")
    assert (result.key, result.start, result.end, result.tree_size) == (
        "exports/acme/export-1.jsonl",
        5,
        25,
        40,
    )
    data = fx.exports.objects[result.key]
    assert result.bytes_written == len(data)
    lines = data.splitlines(keepends=True)
    verified = verify_export(lines, fx.service.verifiers, origin=fx.service.origin(TENANT))
    assert verified.entries == [encode_record(r) for r in records[5:25]]
    line = json.loads(lines[3])
    swapped = base64.b64encode(encode_record(records[0])).decode()
    for broken in (
        lines[:3] + lines[4:],  # a line missing
        [*lines[:3], lines[4], lines[3], *lines[5:]],  # out of order
        lines[:-1],  # truncated
        [*lines[:3], json.dumps({**line, "entry": swapped}).encode(), *lines[4:]],  # another entry
        [lines[0].replace(b'"start":5', b'"start":4'), *lines[1:]],  # header lies about the range
        [b"not json\n", *lines[1:]],
        [],
    ):
        with pytest.raises((InvalidRequestError, ProofError)):
            verify_export(broken, fx.service.verifiers, origin=fx.service.origin(TENANT))
    with pytest.raises(InvalidRequestError):
        fx.service.export(TENANT, 30, 41, export_id="export-2")
    with pytest.raises(InvalidRequestError):
        fx.service.export(TENANT, 0, 1, export_id="../escape")


def test_verify_reports_a_sound_log_and_the_first_tampered_object(fx: AuditFixture) -> None:
    fx.service.append(TENANT, [decision(f"req-{i}") for i in range(30)])
    report = fx.service.verify(TENANT)
    assert report.ok
    assert report.size == 30
    key = (TENANT, "tile/entries/000.p/30")
    data = bytearray(fx.tiles.objects[key])
    data[100] ^= 0x01
    fx.tiles.objects[key] = bytes(data)
    report = fx.service.verify(TENANT)
    assert not report.ok
    assert report.problem is not None
    assert "entries" in report.problem.path
