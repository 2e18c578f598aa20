"""Signed promises of inclusion: what a promise proves and how it is checked (signatures, threshold,
tampering, domain separation from checkpoints both ways), its upgrade to a receipt that keeps it, a broken
promise reported as such, sequencing without integration until it is due, idempotency, and 32 promise
appenders crashing at every step with nothing lost or logged twice."""

from __future__ import annotations

import dataclasses
import time

import pytest

from reliquary.audit import merkle
from reliquary.audit.checkpoint import Checkpoint, open_checkpoint, sign_checkpoint
from reliquary.audit.log import TransparencyLog
from reliquary.audit.memory import InMemoryLogStore, InMemoryTileStore
from reliquary.audit.note import NoteSigner, Policy, open_note, open_separated, sign_separated
from reliquary.audit.receipts import (
    PROMISE_FORMAT,
    BrokenPromiseError,
    Promise,
    PromiseBody,
    sign_promise,
    verify_promise,
    verify_promise_kept,
    verify_receipt,
)
from reliquary.audit.records import encode_record
from reliquary.audit.service import AuditRecord, AuditService, CheckpointKeys
from reliquary.crypto.signing import SignatureAlgorithm, SigningKey
from reliquary.errors import CheckpointError, IdempotencyConflictError, InvalidRequestError
from tests.support.audit import ORIGIN_PREFIX, checkpoint_keys, decision, deletion
from tests.support.audit_faults import (
    STEPS,
    Faults,
    append_concurrently,
    append_until_fired,
    check_promises_kept,
    every_step,
    faulty_services,
    request_ids,
    service_builder,
)

TENANT = "acme"
ORIGIN = f"{ORIGIN_PREFIX}/{TENANT}"
NOW = 1_795_651_200.5


def _service(
    store: InMemoryLogStore | None = None,
    tiles: InMemoryTileStore | None = None,
    *,
    interval: float = 1.0,
    keys: CheckpointKeys | None = None,
    promise_integration: float | None = None,
) -> AuditService:
    store = store if store is not None else InMemoryLogStore()
    tiles = tiles if tiles is not None else InMemoryTileStore()
    return AuditService(
        TransparencyLog(store, tiles, clock=lambda: NOW),
        tiles,
        store,
        keys or checkpoint_keys(),
        origin_prefix=ORIGIN_PREFIX,
        checkpoint_interval=min(interval, 1.0),
        promise_integration=interval if promise_integration is None else promise_integration,
    )


def _policy() -> Policy:
    return Policy.all_of(*checkpoint_keys().verifiers)


def _promise(index: int = 3, request_id: str = "req-3") -> Promise:
    body = PromiseBody(ORIGIN, request_id, index, merkle.SHA256.hash_leaf(b"entry"), 1_795_651_200_500)
    return sign_promise(body, checkpoint_keys().signers)


# --- what a promise is, and how it is checked ------------------------------------------------------
def test_a_promise_verifies_with_every_checkpoint_key_and_round_trips_through_json() -> None:
    promise = _promise()
    verifiers = checkpoint_keys().verifiers
    body = verify_promise(promise, verifiers, origin=ORIGIN, entry=b"entry", required=_policy())
    assert (body.leaf_index, body.request_id, body.sequenced_at_ms) == (3, "req-3", 1_795_651_200_500)
    as_json = promise.to_dict()
    assert as_json["format"] == PROMISE_FORMAT == "reliquary-audit-promise/v1"
    assert len(as_json["signatures"]) == 3
    assert Promise.from_dict(as_json) == promise
    with pytest.raises(InvalidRequestError):
        verify_promise(promise, verifiers, origin=ORIGIN, entry=b"another entry")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("leaf_index", 4),
        ("leaf_hash", merkle.SHA256.hash_leaf(b"another entry")),
        ("request_id", "req-4"),
        ("sequenced_at_ms", 1_795_651_200_501),
    ],
)
def test_a_promise_with_any_field_changed_fails_its_signatures(field: str, value: object) -> None:
    promise = _promise()
    altered = Promise(dataclasses.replace(promise.body, **{field: value}), promise.signatures)  # type: ignore[arg-type]
    with pytest.raises(CheckpointError):
        verify_promise(altered, checkpoint_keys().verifiers, origin=ORIGIN, required=_policy())


def test_a_promise_of_another_origin_or_with_a_bad_signature_or_unknown_keys_is_refused() -> None:
    promise, verifiers = _promise(), checkpoint_keys().verifiers
    other = Promise(dataclasses.replace(promise.body, origin=f"{ORIGIN_PREFIX}/globex"), promise.signatures)
    with pytest.raises(InvalidRequestError):
        verify_promise(promise, verifiers, origin=f"{ORIGIN_PREFIX}/globex")
    with pytest.raises(CheckpointError):  # moved to another log, its signatures no longer hold
        verify_promise(other, verifiers, origin=f"{ORIGIN_PREFIX}/globex")
    line = promise.signatures[0]
    flipped = line[:-6] + ("A" if line[-6] != "A" else "B") + line[-5:]
    tampered = Promise(promise.body, (flipped, *promise.signatures[1:]))
    with pytest.raises(CheckpointError):
        verify_promise(tampered, verifiers, origin=ORIGIN)
    strangers = [NoteSigner(ORIGIN_PREFIX, SigningKey.generate(SignatureAlgorithm.ED25519)).verifier]
    with pytest.raises(CheckpointError):  # no trusted signature at all
        verify_promise(promise, strangers, origin=ORIGIN)
    for malformed in ([], ["not a signature line"], [line + "\n"]):
        with pytest.raises(CheckpointError):
            verify_promise(Promise(promise.body, tuple(malformed)), verifiers, origin=ORIGIN)


def test_a_promise_meets_the_same_threshold_policy_as_a_checkpoint() -> None:
    keys = checkpoint_keys()
    ed25519, ml_dsa, falcon = keys.signers
    body = _promise().body
    partial = sign_promise(body, [ed25519, ml_dsa])  # the Falcon-512 signature missing
    verify_promise(partial, keys.verifiers, origin=ORIGIN, required=Policy.at_least(2, keys.verifiers))
    with pytest.raises(CheckpointError):
        verify_promise(partial, keys.verifiers, origin=ORIGIN, required=Policy.all_of(*keys.verifiers))
    with pytest.raises(CheckpointError):
        verify_promise(partial, keys.verifiers, origin=ORIGIN, required=[falcon.verifier])


@pytest.mark.parametrize(
    "bad",
    [
        {"format": "reliquary-audit-receipt/v1"},
        {"leaf_index": -1},
        {"leaf_index": True},
        {"leaf_hash": "AAAA"},
        {"leaf_hash": "not base64!"},
        {"request_id": "two\nlines"},
        {"origin": ""},
        {"sequenced_at_ms": "soon"},
        {"signatures": "— one line"},
    ],
)
def test_a_malformed_promise_is_refused_before_anything_is_verified(bad: dict[str, object]) -> None:
    with pytest.raises(InvalidRequestError):
        Promise.from_dict({**_promise().to_dict(), **bad})


# --- domain separation ------------------------------------------------------------------------------
def test_a_promise_never_opens_as_a_checkpoint_nor_a_checkpoint_as_a_promise() -> None:
    keys = checkpoint_keys()
    promise = _promise()
    # A promise's signatures, under its body as a note text (with or without the domain): no note.
    body = promise.body.signed_bytes()
    lines = "".join(f"{line}\n" for line in promise.signatures).encode()
    for text in (body, PROMISE_FORMAT.encode() + b"\x00" + body, f"{ORIGIN}\n3\n{'A' * 43}=\n".encode()):
        with pytest.raises(CheckpointError):
            open_note(text + b"\n" + lines, keys.verifiers)
        with pytest.raises(CheckpointError):
            open_checkpoint(text + b"\n" + lines, keys.verifiers, origin=ORIGIN)
    # A checkpoint's signature lines never sign a promise, even one whose body is the checkpoint text.
    checkpoint = Checkpoint(ORIGIN, 4, merkle.SHA256.hash_leaf(b"root"))
    note = sign_checkpoint(checkpoint, keys.signers)
    text, _, signature_block = note.partition(b"\n\n")
    checkpoint_lines = tuple(signature_block.decode().splitlines())
    with pytest.raises(CheckpointError):
        verify_promise(Promise(promise.body, checkpoint_lines), keys.verifiers, origin=ORIGIN)
    with pytest.raises(CheckpointError):
        open_separated(PROMISE_FORMAT, text + b"\n", checkpoint_lines, keys.verifiers)
    # The domain itself is part of what is signed: the same body in another domain does not verify.
    other = sign_separated("reliquary-audit-other/v1", body, keys.signers)
    with pytest.raises(CheckpointError):
        verify_promise(Promise(promise.body, other), keys.verifiers, origin=ORIGIN)


# --- the service: sequence now, integrate later -----------------------------------------------------
def test_a_promise_is_returned_once_sequenced_and_upgrades_to_a_receipt_that_keeps_it() -> None:
    store, tiles = InMemoryLogStore(), InMemoryTileStore()
    service = _service(store, tiles)
    records: list[AuditRecord] = [decision("req-0"), deletion("del-1")]
    promises, logged = service.promise_logged(TENANT, records)
    assert [p.leaf_index for p in promises] == [0, 1]
    assert logged == [encode_record(r) for r in records]
    assert store.head(TENANT).size == 2  # sequenced: committed with its request id rows
    assert tiles.objects == {}  # not integrated yet: no bundle, no tile, no checkpoint
    assert {p.sequenced_at_ms for p in promises} == {1_795_651_200_500}
    for promise, entry in zip(promises, logged, strict=True):
        verify_promise(promise, service.verifiers, origin=ORIGIN, entry=entry, required=_policy())
        receipt = service.receipt(TENANT, promise.request_id, promise.leaf_index)  # integrates on demand
        verify_receipt(receipt, entry, service.verifiers, origin=ORIGIN, required=_policy())
        checkpoint = verify_promise_kept(
            promise, receipt, service.verifiers, origin=ORIGIN, required=_policy()
        )
        assert checkpoint.size == 2
    assert service.verify(TENANT).ok
    with pytest.raises(InvalidRequestError):  # a leaf never sequenced: nothing to integrate or prove
        service.receipt(TENANT, "req-9", 2)


def test_a_receipt_that_does_not_prove_the_promised_entry_is_a_broken_promise() -> None:
    honest = _service()
    (promise,) = honest.promise(TENANT, [decision("req-0")])
    # A log with the same keys and origin that put another entry at leaf 0 (or holds fewer leaves).
    forked = _service()
    forked.append(TENANT, [decision("req-0", decision="deny")])
    receipt = forked.receipt(TENANT, "req-0", 0)
    with pytest.raises(BrokenPromiseError) as broken:
        verify_promise_kept(promise, receipt, honest.verifiers, origin=ORIGIN, required=_policy())
    assert broken.value.code == "promise_broken"
    honest.promise(TENANT, [decision("req-1"), decision("req-2")])
    (later,) = honest.promise(TENANT, [decision("req-3")])
    short = dataclasses.replace(receipt, request_id="req-3", leaf_index=3)  # a tree of 1: leaf 3 not in it
    with pytest.raises(BrokenPromiseError):
        verify_promise_kept(later, short, honest.verifiers, origin=ORIGIN, required=_policy())
    tampered = dataclasses.replace(
        honest.receipt(TENANT, "req-3", 3), inclusion_proof=(b"\x00" * 32, b"\x01" * 32)
    )
    with pytest.raises(BrokenPromiseError):
        verify_promise_kept(later, tampered, honest.verifiers, origin=ORIGIN, required=_policy())
    with pytest.raises(InvalidRequestError):  # a receipt of another leaf is not an answer to the promise
        verify_promise_kept(later, honest.receipt(TENANT, "req-0", 0), honest.verifiers, origin=ORIGIN)
    verify_promise_kept(later, honest.receipt(TENANT, "req-3", 3), honest.verifiers, origin=ORIGIN)


def test_promised_again_a_record_keeps_its_leaf_and_the_same_promise() -> None:
    store, tiles = InMemoryLogStore(), InMemoryTileStore()
    (first,) = _service(store, tiles).promise(TENANT, [decision("req-0")])
    # Another process (a retry in another container), later, after the log integrated it.
    later = AuditService(
        TransparencyLog(store, tiles, clock=lambda: NOW + 60),
        tiles,
        store,
        checkpoint_keys(),
        origin_prefix=ORIGIN_PREFIX,
    )
    (again,) = later.promise(TENANT, [decision("req-0")])
    (redecided,) = later.promise(TENANT, [decision("req-0", time=1_795_651_999)])  # the same decision
    assert again.body == redecided.body == first.body  # its first leaf, hash and commit time
    later.publish(TENANT)
    (after,) = later.promise(TENANT, [decision("req-0")])
    assert after.body == first.body
    with pytest.raises(IdempotencyConflictError):
        later.promise(TENANT, [decision("req-0", decision="deny")])
    assert store.head(TENANT).size == 1


def test_integration_and_a_checkpoint_come_when_the_backlog_is_due() -> None:
    store, tiles = InMemoryLogStore(), InMemoryTileStore()
    service = _service(store, tiles, interval=0.05)
    for i in range(3):
        service.promise(TENANT, [deletion(f"del-{i}")])
    assert tiles.objects == {}
    assert store.latest_checkpoint(TENANT) is None
    time.sleep(0.06)  # older than the interval: the next promise integrates the backlog and publishes
    service.promise(TENANT, [deletion("del-3")])
    latest = store.latest_checkpoint(TENANT)
    assert latest is not None
    assert latest.size == store.head(TENANT).integrated == 4
    # A backlog of a full entry bundle is due at once, whatever its age.
    busy = _service(interval=1.0)
    for first in range(0, 256, 64):
        busy.promise(TENANT, [deletion(f"del-{i}") for i in range(first, first + 64)])
    assert busy.checkpoint(TENANT).size == 256


def test_promised_entries_wait_for_their_own_interval_not_the_checkpoint_interval() -> None:
    """Receipts share checkpoints within the checkpoint interval (25 ms); promised entries wait for the
    promises' integration interval (a second by default), which is what makes them cheap under load."""
    store, tiles = InMemoryLogStore(), InMemoryTileStore()
    service = AuditService(
        TransparencyLog(store, tiles, clock=lambda: NOW),
        tiles,
        store,
        checkpoint_keys(),
        origin_prefix=ORIGIN_PREFIX,
        checkpoint_interval=0.01,
        promise_integration=0.2,
    )
    service.promise(TENANT, [deletion("del-0")])
    time.sleep(0.03)  # past the checkpoint interval, not the promises' interval: nothing integrated
    service.promise(TENANT, [deletion("del-1")])
    assert store.latest_checkpoint(TENANT) is None
    time.sleep(0.2)
    service.promise(TENANT, [deletion("del-2")])
    latest = store.latest_checkpoint(TENANT)
    assert latest is not None
    assert latest.size == 3


@pytest.mark.parametrize("seconds", [-0.001, 60.001])
def test_a_promise_integration_interval_out_of_range_is_refused(seconds: float) -> None:
    with pytest.raises(InvalidRequestError, match="0 to 60 seconds"):
        _service(promise_integration=seconds)


# --- crashes ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "plan",
    [every_step(1), *({step: 2} for step in STEPS)],
    ids=["every-step", *(f"{step}-2" for step in STEPS)],
)
def test_32_promise_appenders_crashing_at_every_step_log_each_record_once(plan: dict[str, int]) -> None:
    store, tile_store = InMemoryLogStore(), InMemoryTileStore()
    faults = Faults(plan, latency=0.0005)
    services = faulty_services(service_builder(0.01, 0.01), store, tile_store, faults)
    outcome = append_concurrently(services, TENANT, appenders=32, each=3, promises=True)
    assert outcome.errors == []
    extra = append_until_fired(services, TENANT, faults, outcome)
    assert sorted(faults.fired) == sorted(plan)
    assert outcome.retries >= len(plan)
    assert store.commits < 96 + len(extra)  # the concurrent promises shared commits
    check_promises_kept(services[1], TENANT, outcome, [*request_ids(32, 3), *extra])
