"""Group commit on the in-memory stores: concurrent appends to one log share commits and checkpoints,
each caller keeps its own result (its index, its conflict, its error), and 32 appenders crashing at every
step of an append lose and duplicate nothing."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import pytest

from reliquary.audit.log import (
    MAX_COMMIT_ROWS,
    Appended,
    Batch,
    LogHead,
    TransparencyLog,
)
from reliquary.audit.memory import InMemoryLogStore, InMemoryTileStore
from reliquary.audit.receipts import Receipt
from reliquary.audit.records import encode_record
from reliquary.audit.service import AuditService, StoredCheckpoint
from reliquary.errors import IdempotencyConflictError, StorageUnavailableError
from tests.support.audit import ORIGIN_PREFIX, checkpoint_keys, decision
from tests.support.audit_faults import (
    STEPS,
    Faults,
    append_concurrently,
    append_until_fired,
    check_logged_once,
    every_step,
    faulty_services,
    request_ids,
    service_builder,
)

TENANT = "acme"


class GatedStore(InMemoryLogStore):
    """Holds the first commit until released (so that others queue behind it); counts commits and
    checkpoint writes; can fail the next commit."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = threading.Event()
        self.release = threading.Event()
        self.gated = True
        self.fail_next: BaseException | None = None
        self.checkpoints_put = 0
        self.batches_committed: list[Batch] = []

    def commit(self, log_id: str, *, expected_revision: int, head: LogHead, batch: Batch) -> None:
        if self.gated:
            self.gated = False
            self.entered.set()
            self.release.wait(10)
        if self.fail_next is not None:
            error, self.fail_next = self.fail_next, None
            raise error
        super().commit(log_id, expected_revision=expected_revision, head=head, batch=batch)
        self.batches_committed.append(batch)

    def put_checkpoint(
        self, log_id: str, checkpoint: StoredCheckpoint, *, previous: StoredCheckpoint | None
    ) -> None:
        super().put_checkpoint(log_id, checkpoint, previous=previous)
        self.checkpoints_put += 1


def _service(store: InMemoryLogStore, tile_store: InMemoryTileStore, interval: float) -> AuditService:
    return AuditService(
        TransparencyLog(store, tile_store),
        tile_store,
        store,
        checkpoint_keys(),
        origin_prefix=ORIGIN_PREFIX,
        checkpoint_interval=interval,
    )


def _run(calls: Sequence[Callable[[], Any]], *, queued: Callable[[int], None] | None = None) -> list[Any]:
    """Each call in its own thread; their results (or the exception each raised), in order. With
    ``queued``, each thread starts once ``queued(i)`` returns for the one before (it joined the queue), so
    the calls arrive in order."""
    results: list[Any] = [None] * len(calls)

    def run(i: int) -> None:
        try:
            results[i] = calls[i]()
        except Exception as exc:  # noqa: BLE001  (returned for the test to check)
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for i, thread in enumerate(threads):
        thread.start()
        if queued is not None and i + 1 < len(threads):  # the last one: the caller waits for it
            queued(i)
    for thread in threads:
        thread.join(30)
    return results


def _queued(log: TransparencyLog, count: int) -> None:
    """Wait until ``count`` appends are queued or in flight (a few ms; bounded)."""
    deadline = time.monotonic() + 10
    while log.waiting(TENANT) < count:
        assert time.monotonic() < deadline, "the appends never queued"
        time.sleep(0.001)


def _first_then(
    store: GatedStore, log: TransparencyLog, first: Callable[[], Any], rest: Sequence[Callable[[], Any]]
) -> list[Any]:
    """``first`` starts a commit and is held in it while ``rest`` queue behind it; then all go on."""
    results: list[Any] = []
    leader = threading.Thread(target=lambda: results.extend(_run([first])))
    leader.start()
    assert store.entered.wait(10)
    # One by one, in order: which of two appends of one request id is logged depends on it.
    followers = threading.Thread(
        target=lambda: results.extend(_run(rest, queued=lambda i: _queued(log, 2 + i)))
    )
    followers.start()
    _queued(log, 1 + len(rest))
    store.release.set()
    leader.join(30)
    followers.join(30)
    return results


def test_appends_queued_behind_a_commit_share_the_next_one_and_keep_their_own_indexes() -> None:
    store, tile_store = GatedStore(), InMemoryTileStore()
    log = TransparencyLog(store, tile_store, clock=lambda: 1_795_651_200.25)
    first = lambda: log.append(TENANT, [("a", b"first")])  # noqa: E731
    rest = [partial(log.append, TENANT, [(f"r{i}-0", b"x"), (f"r{i}-1", b"y")]) for i in range(10)]
    results = _first_then(store, log, first, rest)
    assert [len(b.entries) for b in store.batches_committed] == [1, 20]  # two commits for 11 appends
    by_first = {result[0].request_id: result for result in results}
    assert by_first["a"] == [Appended("a", 0, True, 1_795_651_200_250)]  # the commit's time, in ms
    assert {b.sequenced_at_ms for b in store.batches_committed} == {1_795_651_200_250}
    indexes = sorted(a.index for result in results for a in result)
    assert indexes == list(range(21))
    for i in range(10):  # each caller's two entries, in its order, next to each other
        zero, one = by_first[f"r{i}-0"]
        assert (one.index - zero.index, zero.new, one.new) == (1, True, True)
        assert log.entries(TENANT, zero.index, one.index + 1) == [b"x", b"y"]
    assert store.head(TENANT).size == 21


def test_a_request_id_twice_in_one_group_is_logged_once_and_only_its_conflicting_caller_fails() -> None:
    store, tile_store = GatedStore(), InMemoryTileStore()
    service = _service(store, tile_store, interval=0)
    first = lambda: service.append_logged(TENANT, [decision("r0")])  # noqa: E731
    rest = [
        lambda: service.append_logged(TENANT, [decision("dup")]),
        lambda: service.append_logged(TENANT, [decision("dup", decision="deny")]),  # another record
        lambda: service.append_logged(TENANT, [decision("dup", time=1_795_651_999)]),  # the same decision
        lambda: service.append_logged(TENANT, [decision("r1")]),
    ]
    results = _first_then(store, service._log, first, rest)
    conflicts = [r for r in results if isinstance(r, Exception)]
    assert len(conflicts) == 1
    assert isinstance(conflicts[0], IdempotencyConflictError)
    assert conflicts[0].details["request_ids"] == ["dup"]
    receipts = {r[0][0].request_id: r for r in results if not isinstance(r, Exception)}
    assert len(store.batches_committed) == 2
    assert store.head(TENANT).size == 3  # r0, dup (once) and r1
    logged = encode_record(decision("dup"))
    dups = [r for r in results if not isinstance(r, Exception) and r[0][0].request_id == "dup"]
    assert len(dups) == 2  # the original and the same decision again: one leaf, its first record
    assert {(r[0][0].leaf_index, r[1][0]) for r in dups} == {(dups[0][0][0].leaf_index, logged)}
    for (receipt,), (entry,) in [*receipts.values(), *dups]:
        _verify(service, receipt, entry)


def test_a_failed_commit_fails_each_caller_of_its_group_and_writes_nothing() -> None:
    store, tile_store = GatedStore(), InMemoryTileStore()
    service = _service(store, tile_store, interval=0)
    store.fail_next = StorageUnavailableError("DynamoDB is unavailable or throttling")
    first = lambda: service.append(TENANT, [decision("r0")])  # noqa: E731
    rest = [partial(service.append, TENANT, [decision(f"r{i}")]) for i in range(1, 6)]
    results = _first_then(store, service._log, first, rest)
    failed = [r for r in results if isinstance(r, Exception)]
    assert [type(e) for e in failed] == [StorageUnavailableError]  # the first group: r0 alone
    assert store.head(TENANT).size == 5  # the next group went on: r1..r5, nothing of r0
    assert len(store.batches_committed) == 1
    (retried,) = service.append(TENANT, [decision("r0")])  # the flow retries: logged once
    assert retried.leaf_index == 5
    assert service.verify(TENANT).ok


def test_a_group_of_more_decisions_than_one_commit_holds_is_split_in_order() -> None:
    store, tile_store = GatedStore(), InMemoryTileStore()
    service = _service(store, tile_store, interval=0)
    big = [decision(f"big-{i}") for i in range(60)]  # 122 rows: several commits on its own
    first = lambda: service.append(TENANT, [decision("r0")])  # noqa: E731
    rest = [
        *(partial(service.append, TENANT, [decision(f"r{i}")]) for i in range(1, 61)),
        partial(service.append, TENANT, big),
    ]
    results = _first_then(store, service._log, first, rest)
    assert not [r for r in results if isinstance(r, Exception)]
    rows = [len(b.entries) + len(b.indexed) + 2 for b in store.batches_committed]
    assert max(rows) <= MAX_COMMIT_ROWS
    assert sum(len(b.entries) for b in store.batches_committed) == 121
    indexes = sorted(receipt.leaf_index for result in results for receipt in result)
    assert indexes == list(range(121))
    big_receipts = next(r for r in results if len(r) == 60)
    assert [r.request_id for r in big_receipts] == [f"big-{i}" for i in range(60)]
    assert service.verify(TENANT).ok


def test_a_waiting_appender_takes_the_checkpoint_of_the_next_group_and_an_idle_one_publishes_at_once() -> (
    None
):
    for interval, checkpoints in ((1.0, 1), (0.0, 2)):
        store, tile_store = GatedStore(), InMemoryTileStore()
        service = _service(store, tile_store, interval=interval)
        first = lambda: service.append(TENANT, [decision("r0")])  # noqa: B023, E731
        rest = [partial(service.append, TENANT, [decision(f"r{i}")]) for i in range(1, 9)]
        results = _first_then(store, service._log, first, rest)
        assert len(store.batches_committed) == 2
        # With an interval, r0 (integrated while 8 appends were queued) waits for the second group's
        # checkpoint; without one, each group publishes its own.
        assert store.checkpoints_put == checkpoints
        if interval:
            assert {r[0].checkpoint for r in results} == {service.checkpoint(TENANT).note}
        for (receipt,) in results:
            _verify(service, receipt, encode_record(decision(receipt.request_id)))
    # Uncontended: the checkpoint is written (and copied for tlog-tiles clients) before append returns.
    store, tile_store = GatedStore(), InMemoryTileStore()
    store.gated = False
    service = _service(store, tile_store, interval=1.0)
    started = time.monotonic()
    (receipt,) = service.append(TENANT, [decision("alone")])
    assert time.monotonic() - started < 1.0  # it did not wait out the interval
    assert receipt.tree_size == 1
    assert tile_store.objects[(TENANT, "checkpoint")] == receipt.checkpoint


def _verify(service: AuditService, receipt: Receipt, entry: bytes) -> None:
    from reliquary.audit.note import Policy
    from reliquary.audit.receipts import verify_receipt

    verifiers = service.verifiers
    verify_receipt(
        receipt, entry, verifiers, origin=service.origin(TENANT), required=Policy.all_of(*verifiers)
    )


@pytest.mark.parametrize(
    "plan",
    [every_step(1), *({step: n} for step in STEPS for n in (1, 3))],
    ids=["every-step", *(f"{step}-{n}" for step in STEPS for n in (1, 3))],
)
def test_32_appenders_crashing_at_every_step_log_each_record_once(plan: dict[str, int]) -> None:
    store, tile_store = InMemoryLogStore(), InMemoryTileStore()
    faults = Faults(plan, latency=0.0005)  # a round trip lets the other appenders queue up
    services = faulty_services(service_builder(0.025), store, tile_store, faults)
    outcome = append_concurrently(services, TENANT, appenders=32, each=3)
    assert outcome.errors == []
    extra = append_until_fired(services, TENANT, faults, outcome)
    assert sorted(faults.fired) == sorted(plan)  # every planned crash happened
    assert outcome.retries >= len(plan)
    assert store.commits < 96 + len(extra)  # the concurrent appends shared commits
    check_logged_once(services[1], TENANT, outcome, [*request_ids(32, 3), *extra])
