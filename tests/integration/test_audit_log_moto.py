"""The transparency log on DynamoDB and S3 (moto): the same guarantees as in memory, 8 concurrent
appenders against a moto server losing and duplicating nothing, with verifiable receipts and checkpoints,
and 32 appenders sharing commits through crashes at every step."""

from __future__ import annotations

import itertools
import logging
import threading
import uuid
from collections.abc import Iterator

import boto3
import pytest

from infra.template import create_tables
from reliquary.adapters.audit_store import DynamoDBLogStore, S3TileStore
from reliquary.adapters.dynamodb import TableConfig
from reliquary.audit import merkle, tiles
from reliquary.audit.checkpoint import open_checkpoint
from reliquary.audit.log import MAX_BATCH, MAX_BATCH_BYTES, TransparencyLog, batch_bytes
from reliquary.audit.receipts import Receipt, verify_receipt
from reliquary.audit.records import DecisionRecord, encode_record
from reliquary.audit.service import DEFAULT_CHECKPOINT_INTERVAL, AuditService
from reliquary.errors import InvalidRequestError, PayloadTooLargeError, TransientError
from tests.support.audit import ORIGIN_PREFIX, checkpoint_keys, decision
from tests.support.audit_faults import (
    Faults,
    append_concurrently,
    append_until_fired,
    check_logged_once,
    check_promises_kept,
    every_step,
    faulty_services,
    request_ids,
    service_builder,
)
from tests.support.aws import REGION, AwsStack, fake_credentials, serialized_moto_server
from tests.support.vaults import shared_moto_stack

pytestmark = pytest.mark.integration
TENANT = "acme"


@pytest.fixture(scope="module")
def aws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AwsStack]:
    with shared_moto_stack(tmp_path_factory) as stack:
        yield stack


def _log(aws: AwsStack) -> TransparencyLog:
    settings = aws.settings
    store = DynamoDBLogStore(TableConfig(settings.audit_table, settings.region, settings.endpoint_url))
    return TransparencyLog(store, S3TileStore(aws.s3, settings.audit_bucket))


def _entries(start: int, count: int) -> list[tuple[str, bytes]]:
    return [(f"req-{i}", f"record {i}".encode()) for i in range(start, start + count)]


def test_appends_integrate_into_tiles_in_s3_and_proofs_verify(aws: AwsStack) -> None:
    log_id = f"tenant-{uuid.uuid4().hex[:8]}"
    log = _log(aws)
    for start in range(0, 300, 60):
        log.append(log_id, _entries(start, 60))
    leaf_hashes = [merkle.SHA256.hash_leaf(e) for _, e in _entries(0, 300)]
    root = merkle.root_of(leaf_hashes)
    assert log.root(log_id) == (300, root)
    for index in (0, 255, 256, 299):
        merkle.verify_inclusion(index, 300, leaf_hashes[index], log.inclusion_proof(log_id, index), root)
    merkle.verify_consistency(
        70, 300, merkle.root_of(leaf_hashes[:70]), root, log.consistency_proof(log_id, 70)
    )
    keys = {
        o["Key"]
        for o in aws.s3.list_objects_v2(Bucket=aws.settings.audit_bucket, Prefix=f"logs/{log_id}/")[
            "Contents"
        ]
    }
    assert {f"logs/{log_id}/{r.path}" for r in tiles.tiles_for_size(300)} <= keys
    full = aws.s3.head_object(Bucket=aws.settings.audit_bucket, Key=f"logs/{log_id}/tile/0/000")
    assert full["CacheControl"] == "public, max-age=31536000, immutable"
    assert log.entries(log_id, 298, 300) == [b"record 298", b"record 299"]


def test_proofs_at_sizes_no_append_ended_at_are_read_from_the_wider_tiles_in_s3(aws: AwsStack) -> None:
    """Roots and proofs of smaller trees come from the current (wider or full) tiles: the partial tiles of
    those sizes were never written, and nothing but the integrated tree's own objects is read."""
    log_id = f"tenant-{uuid.uuid4().hex[:8]}"
    log = _log(aws)
    for start, count in ((0, 90), (90, 90), (180, 70), *((250 + 3 * n, 3) for n in range(4))):
        log.append(log_id, _entries(start, count))
    total = 262  # past the first full tile at level 0
    read: list[str] = []

    class Reading(S3TileStore):
        def read(self, log_id: str, path: str) -> bytes | None:
            read.append(path)
            return super().read(log_id, path)

    settings = aws.settings
    store = DynamoDBLogStore(TableConfig(settings.audit_table, settings.region, settings.endpoint_url))
    reader = TransparencyLog(store, Reading(aws.s3, settings.audit_bucket))  # a fresh instance
    leaf_hashes = [merkle.SHA256.hash_leaf(e) for _, e in _entries(0, total)]
    roots = [merkle.root_of(leaf_hashes[:size]) for size in range(total + 1)]
    for size in range(total + 1):
        assert reader.root(log_id, size) == (size, roots[size])
    for size in (1, 2, 45, 89, 91, 179, 200, 251, 255, 256, 257, 260, 262):
        for index, proof in enumerate(reader.inclusion_proofs(log_id, range(size), size)):
            merkle.verify_inclusion(index, size, leaf_hashes[index], proof, roots[size])
        for old in range(size + 1):
            proof = reader.consistency_proof(log_id, old, size)
            merkle.verify_consistency(old, size, roots[old], roots[size], proof)
    assert set(read) <= {ref.path for ref in tiles.tiles_for_size(total)}
    missing = aws.s3.list_objects_v2(Bucket=settings.audit_bucket, Prefix=f"logs/{log_id}/tile/0/000.p/45")
    assert missing["KeyCount"] == 0  # no append ended at 45


def test_a_full_batch_at_the_byte_limit_fits_one_dynamodb_item_and_one_byte_more_writes_nothing(
    aws: AwsStack,
) -> None:
    """The worst case of what MAX_BATCH_BYTES leaves for the rest of the item: a 128-character tenant,
    90 entries with 128-character request ids, at exactly the limit. DynamoDB takes it (400 KB)."""
    log_id = f"tenant-{uuid.uuid4().hex}".ljust(128, "t")
    ids = [f"{i:03d}".ljust(128, "r") for i in range(MAX_BATCH)]
    sizes = [(MAX_BATCH_BYTES - MAX_BATCH * (2 + 128)) // MAX_BATCH] * MAX_BATCH
    sizes[-1] += MAX_BATCH_BYTES - MAX_BATCH * (2 + 128) - sum(sizes)
    batch = [
        (request_id, bytes([i]) * size) for i, (request_id, size) in enumerate(zip(ids, sizes, strict=True))
    ]
    assert batch_bytes(batch) == MAX_BATCH_BYTES
    log = _log(aws)
    over = [*batch[:-1], (batch[-1][0], batch[-1][1] + b"!")]
    with pytest.raises(PayloadTooLargeError):
        log.append(log_id, over)
    settings = aws.settings
    rows = aws.dynamodb.query(
        TableName=settings.audit_table,
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": f"LOG#{log_id}"}},
    )
    assert rows["Count"] == 0  # no head, no batch, no request id
    assert aws.s3.list_objects_v2(Bucket=settings.audit_bucket, Prefix=f"logs/{log_id}/")["KeyCount"] == 0
    assert [a.index for a in log.append(log_id, batch)] == list(range(MAX_BATCH))
    assert log.entries(log_id, 0, MAX_BATCH) == [entry for _, entry in batch]


def test_tiles_and_bundles_are_cached_for_good_and_only_the_checkpoint_is_revalidated(aws: AwsStack) -> None:
    log_id = f"tenant-{uuid.uuid4().hex[:8]}"
    settings = aws.settings
    store = DynamoDBLogStore(TableConfig(settings.audit_table, settings.region, settings.endpoint_url))
    objects = S3TileStore(aws.s3, settings.audit_bucket)
    service = AuditService(
        TransparencyLog(store, objects), objects, store, checkpoint_keys(), origin_prefix=ORIGIN_PREFIX
    )
    for start in range(0, 300, 75):
        service.append(log_id, [decision(f"req-{i}", log_id) for i in range(start, start + 75)])
    immutable = "public, max-age=31536000, immutable"
    expected = {
        "tile/0/000": immutable,  # full
        "tile/0/001.p/44": immutable,  # partial, of the current size
        "tile/0/000.p/75": immutable,  # partial, of an earlier size: its content never changes either
        "tile/1/000.p/1": immutable,
        "tile/entries/000": immutable,
        "tile/entries/001.p/44": immutable,
        "tile/entries/000.p/150": immutable,
        "checkpoint": "no-cache",  # the one object that changes
    }
    for path, cache in expected.items():
        head = aws.s3.head_object(Bucket=settings.audit_bucket, Key=f"logs/{log_id}/{path}")
        assert head["CacheControl"] == cache, path
        kind = "text/plain; charset=utf-8" if path == "checkpoint" else "application/octet-stream"
        assert head["ContentType"] == kind, path
    listed = aws.s3.list_objects_v2(Bucket=settings.audit_bucket, Prefix=f"logs/{log_id}/tile/")
    for item in listed["Contents"]:
        head = aws.s3.head_object(Bucket=settings.audit_bucket, Key=item["Key"])
        assert head["CacheControl"] == immutable, item["Key"]
    with pytest.raises(InvalidRequestError):  # nothing but a tlog-tiles path is written under tile/
        objects.write(log_id, "tile/0/\u00b2", b"")


def test_a_request_appended_twice_keeps_its_index(aws: AwsStack) -> None:
    log_id = f"tenant-{uuid.uuid4().hex[:8]}"
    log = _log(aws)
    log.append(log_id, _entries(0, 3))
    again = log.append(log_id, [("req-2", b"retried"), ("req-7", b"new")])
    assert [(a.index, a.new) for a in again] == [(2, False), (3, True)]
    assert log.root(log_id)[0] == 4


def test_a_crash_between_commit_and_tiles_is_completed(aws: AwsStack) -> None:
    log_id = f"tenant-{uuid.uuid4().hex[:8]}"
    settings = aws.settings
    store = DynamoDBLogStore(TableConfig(settings.audit_table, settings.region, settings.endpoint_url))

    class Crashing(S3TileStore):
        armed = False

        def write(self, log_id: str, path: str, data: bytes) -> None:
            if self.armed:
                self.armed = False
                raise TimeoutError("the function was stopped")
            super().write(log_id, path, data)

    objects = Crashing(aws.s3, settings.audit_bucket)
    log = TransparencyLog(store, objects)
    log.append(log_id, _entries(0, 50))
    objects.armed = True
    with pytest.raises(TimeoutError):
        log.append(log_id, _entries(50, 10))
    assert (store.head(log_id).size, store.head(log_id).integrated) == (60, 50)
    assert log.integrate(log_id).integrated == 60
    leaf_hashes = [merkle.SHA256.hash_leaf(e) for _, e in _entries(0, 60)]
    assert log.root(log_id) == (60, merkle.root_of(leaf_hashes))


def test_eight_concurrent_appenders_on_a_moto_server(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Thousands of records from 8 threads: none lost, none twice, every receipt verifies against its own
    checkpoint and against the final one, and every pair of published checkpoints is consistent."""
    fake_credentials(monkeypatch)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # a line per request would dominate the run
    with serialized_moto_server() as endpoint:
        dynamodb = boto3.client("dynamodb", region_name=REGION, endpoint_url=endpoint)
        s3 = boto3.client("s3", region_name=REGION, endpoint_url=endpoint)
        names = create_tables(dynamodb, prefix=f"c{uuid.uuid4().hex[:6]}")
        s3.create_bucket(Bucket="audit")
        store = DynamoDBLogStore(TableConfig(names["AuditTable"], REGION, endpoint), dynamodb)
        tile_store = S3TileStore(s3, "audit")
        keys = checkpoint_keys()
        service = AuditService(
            TransparencyLog(store, tile_store), tile_store, store, keys, origin_prefix=ORIGIN_PREFIX
        )
        threads_count, per_thread, batch = 8, 360, 90
        errors: list[BaseException] = []
        receipts: dict[str, Receipt] = {}
        lock = threading.Lock()

        def append_with_retries(records: list[DecisionRecord]) -> list[Receipt]:
            # As Lambda and Step Functions do with a transient error: the same request again (appends
            # are idempotent per request id).
            for _ in range(10):
                try:
                    return service.append(TENANT, records)
                except TransientError:
                    continue
            return service.append(TENANT, records)

        def worker(n: int) -> None:
            try:
                for start in range(n * per_thread, (n + 1) * per_thread, batch):
                    got = append_with_retries([decision(f"req-{i}") for i in range(start, start + batch)])
                    with lock:
                        receipts.update((r.request_id, r) for r in got)
            except BaseException as exc:  # noqa: BLE001  (reported below)
                errors.append(exc)

        threads = [threading.Thread(target=worker, args=(n,)) for n in range(threads_count)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        total = threads_count * per_thread
        final = service.publish(TENANT)
        assert final.size == total
        assert sorted(r.leaf_index for r in receipts.values()) == list(range(total))  # none lost or twice
        logged = [
            e
            for start in range(0, total, 1000)
            for e in service.entries(TENANT, start, min(total, start + 1000))
        ]
        origin = service.origin(TENANT)
        last = open_checkpoint(final.note, keys.verifiers, origin=origin, required=keys.policy)
        for request_id, receipt in receipts.items():
            entry = logged[receipt.leaf_index]
            assert entry == encode_record(decision(request_id))
            verify_receipt(receipt, entry, keys.verifiers, origin=origin, required=keys.policy)
            # ... and against the final checkpoint, with a proof served now.
            merkle.verify_inclusion(
                receipt.leaf_index,
                total,
                merkle.SHA256.hash_leaf(entry),
                service.inclusion_proof(TENANT, receipt.leaf_index, total),
                last.root_hash,
            )
        checkpoints = {
            c.size: c
            for c in (
                open_checkpoint(n, keys.verifiers, origin=origin, required=keys.policy)
                for n in {r.checkpoint for r in receipts.values()} | {final.note}
            )
        }
        sizes = sorted(checkpoints)
        assert len(sizes) > 1
        for old, new in itertools.combinations(sizes, 2):
            merkle.verify_consistency(
                old,
                new,
                checkpoints[old].root_hash,
                checkpoints[new].root_hash,
                service.consistency_proof(TENANT, old, new),
            )
        assert service.verify(TENANT).ok


@pytest.mark.parametrize("plan", [every_step(1), every_step(2)], ids=["1st-call", "2nd-call"])
def test_32_appenders_on_dynamodb_and_s3_crashing_at_every_step_log_each_record_once(
    aws: AwsStack, plan: dict[str, int]
) -> None:
    """Group commit against the real adapters: 32 threads, each logging 3 decisions one call at a time,
    one container crashing once at each step (before and after the commit, between a bundle and its
    tile, before and after the checkpoint's write, before its copy), the crashed calls retried through
    another container; then fsck passes and every request id is logged once, with a receipt that
    verifies."""
    tenant = f"tenant-{uuid.uuid4().hex[:8]}"
    settings = aws.settings
    config = TableConfig(settings.audit_table, settings.region, settings.endpoint_url)

    faults = Faults(plan, serialize=True)  # moto's in-process backends are not thread-safe
    store = DynamoDBLogStore(config, aws.dynamodb)
    services = faulty_services(
        service_builder(DEFAULT_CHECKPOINT_INTERVAL),
        store,
        S3TileStore(aws.s3, settings.audit_bucket),
        faults,
    )
    outcome = append_concurrently(services, tenant, appenders=32, each=3)
    assert outcome.errors == []
    extra = append_until_fired(services, tenant, faults, outcome)
    assert sorted(faults.fired) == sorted(plan)
    assert faults.calls["commit:before"] < 96 + len(extra)  # the concurrent appends shared commits
    check_logged_once(services[1], tenant, outcome, [*request_ids(32, 3), *extra])


def test_32_promise_appenders_on_dynamodb_and_s3_crashing_at_every_step_keep_every_promise(
    aws: AwsStack,
) -> None:
    """Sequence-only appends against the real adapters: 32 threads, each getting promises for 3 decisions
    one call at a time, one container crashing once at each step (the commit's, and integration's and the
    checkpoint's when an append finds its backlog due), the crashed calls retried through another
    container; then fsck passes, every request id is logged once, and each promise is upgraded to a
    receipt that verifies and keeps it (the batch rows carry the commit time a retried promise repeats)."""
    tenant = f"tenant-{uuid.uuid4().hex[:8]}"
    settings = aws.settings
    config = TableConfig(settings.audit_table, settings.region, settings.endpoint_url)

    faults = Faults(every_step(1), serialize=True)
    store = DynamoDBLogStore(config, aws.dynamodb)
    # Integration due often: a crash at each of its steps.
    services = faulty_services(
        service_builder(0.01, 0.01), store, S3TileStore(aws.s3, settings.audit_bucket), faults
    )
    outcome = append_concurrently(services, tenant, appenders=32, each=3, promises=True)
    assert outcome.errors == []
    extra = append_until_fired(services, tenant, faults, outcome)
    assert sorted(faults.fired) == sorted(every_step(1))
    assert faults.calls["commit:before"] < 96 + len(extra)
    check_promises_kept(services[1], tenant, outcome, [*request_ids(32, 3), *extra])
    (first, _) = outcome.promises["req-0-0"]
    (again,) = services[1].promise(tenant, [decision("req-0-0", tenant)])
    assert again.body == first.body  # the time read back from the batch row
