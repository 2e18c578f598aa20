"""Crashes injected into the audit log's storage, and many concurrent appenders that retry through them.

``Faults`` fails one call of each kind of step, the n-th, as a function stopped mid-way or a response
lost after the write would: before or after the commit, between an entry bundle and its tile, before or
after the checkpoint's write, before its copy in the bucket. ``FaultyLogStore`` and ``FaultyTileStore``
wrap real stores (in memory, or DynamoDB and S3 on moto) and can serialize every call, since moto's
in-process backends are not thread-safe (AWS applies each request atomically; so does the lock).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from reliquary.audit import tiles
from reliquary.audit.log import Batch, LogHead, LogStore, TileStore, TransparencyLog
from reliquary.audit.note import Policy
from reliquary.audit.receipts import Promise, Receipt, verify_promise, verify_promise_kept, verify_receipt
from reliquary.audit.records import DecisionRecord, decode_record, encode_record
from reliquary.audit.service import (
    CHECKPOINT_PATH,
    DEFAULT_PROMISE_INTEGRATION,
    AuditService,
    CheckpointStore,
    StoredCheckpoint,
)
from reliquary.errors import StorageUnavailableError, TransientError
from tests.support.audit import ORIGIN_PREFIX, checkpoint_keys, decision

# Every step of an append at which a crash is injected.
STEPS = (
    "commit:before",
    "commit:after",
    "tile:between",  # the entry bundle written, its level-0 tile not
    "checkpoint:before",
    "checkpoint:after",
    "mirror:before",
)


def service_builder(
    checkpoint_interval: float, promise_integration: float = DEFAULT_PROMISE_INTEGRATION
) -> Callable[[FaultyLogStore, TileStore], AuditService]:
    """What ``faulty_services`` builds each container's service with: the faulty stores under a log and
    a service with these intervals (the faulty log store is also the checkpoint store, as DynamoDB's is)."""

    def build(store: FaultyLogStore, tile_store: TileStore) -> AuditService:
        return AuditService(
            TransparencyLog(cast("LogStore", store), tile_store),
            tile_store,
            cast("CheckpointStore", store),
            checkpoint_keys(),
            origin_prefix=ORIGIN_PREFIX,
            checkpoint_interval=checkpoint_interval,
            promise_integration=promise_integration,
        )

    return build


class Faults:
    """Which call of each step fails (``plan``: step -> n, counted from 1), and what did."""

    def __init__(self, plan: Mapping[str, int], *, serialize: bool = False, latency: float = 0.0) -> None:
        self.plan = dict(plan)
        self.calls: Counter[str] = Counter()
        self.fired: list[str] = []
        self.latency = latency  # seconds each storage call takes, as a network round trip would
        self._lock = threading.Lock()
        self._serial = threading.RLock() if serialize else None

    def none(self) -> Faults:
        """No crashes; the same latency, and calls serialized with this one's (the same backend)."""
        clean = Faults({}, latency=self.latency)
        clean._serial = self._serial
        return clean

    @contextlib.contextmanager
    def call(self) -> Iterator[None]:
        """One storage call: its round trip's latency (other threads run meanwhile), then the call."""
        if self.latency:
            time.sleep(self.latency)
        if self._serial is None:
            yield
        else:
            with self._serial:
                yield

    def crash(self, step: str) -> None:
        """Raise at the planned call of ``step``, as the adapters report a timeout or a lost response."""
        with self._lock:
            self.calls[step] += 1
            fire = self.calls[step] == self.plan.get(step)
            if fire:
                self.fired.append(step)
        if fire:
            raise StorageUnavailableError("injected: the function stopped here")


class FaultyLogStore:
    """A LogStore and CheckpointStore (the DynamoDB adapter or the in-memory one) with crashes."""

    def __init__(self, inner: Any, faults: Faults) -> None:
        self._inner = inner
        self._faults = faults

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if not callable(attr):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            with self._faults.call():
                return attr(*args, **kwargs)

        return call

    def commit(self, log_id: str, *, expected_revision: int, head: LogHead, batch: Batch) -> None:
        self._faults.crash("commit:before")
        with self._faults.call():
            self._inner.commit(log_id, expected_revision=expected_revision, head=head, batch=batch)
        self._faults.crash("commit:after")

    def put_checkpoint(
        self, log_id: str, checkpoint: StoredCheckpoint, *, previous: StoredCheckpoint | None
    ) -> None:
        self._faults.crash("checkpoint:before")
        with self._faults.call():
            self._inner.put_checkpoint(log_id, checkpoint, previous=previous)
        self._faults.crash("checkpoint:after")


class FaultyTileStore:
    """A TileStore with crashes: before a level-0 tile (its bundle is written first) and before the
    checkpoint's copy."""

    def __init__(self, inner: TileStore, faults: Faults) -> None:
        self._inner = inner
        self._faults = faults

    def read(self, log_id: str, path: str) -> bytes | None:
        with self._faults.call():
            return self._inner.read(log_id, path)

    def write(self, log_id: str, path: str, data: bytes) -> None:
        if path == CHECKPOINT_PATH:
            self._faults.crash("mirror:before")
        elif tiles.parse_path(path).level == 0:
            self._faults.crash("tile:between")
        with self._faults.call():
            self._inner.write(log_id, path, data)


@dataclass
class Outcome:
    """What the appenders got: a receipt (or, appending with ``promises``, a promise) and the logged entry
    per request id, and the crashes met."""

    receipts: dict[str, tuple[Receipt, bytes]] = field(default_factory=dict)
    promises: dict[str, tuple[Promise, bytes]] = field(default_factory=dict)
    retries: int = 0
    errors: list[BaseException] = field(default_factory=list)
    use_promises: bool = False


def append_concurrently(
    services: Sequence[AuditService],
    tenant: str,
    *,
    appenders: int,
    each: int,
    attempts: int = 30,
    promises: bool = False,
) -> Outcome:
    """``appenders`` threads, each logging ``each`` decisions one call at a time through
    ``services[0]``. A call that fails with a transient error is retried, as the flow retries
    RecordDecision, through the next service (another container over the same stores). ``promises``:
    each call is ``promise_logged`` (sequenced, a signed promise back) instead of ``append_logged``."""
    outcome = Outcome(use_promises=promises)
    lock = threading.Lock()
    start = threading.Barrier(appenders)

    def worker(n: int) -> None:
        start.wait()
        try:
            for k in range(each):
                record = decision(f"req-{n}-{k}", tenant)
                _with_retries(services, tenant, record, attempts=attempts, outcome=outcome, lock=lock)
        except BaseException as exc:  # noqa: BLE001  (reported by the caller)
            with lock:
                outcome.errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(appenders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcome


def append_until_fired(
    services: Sequence[AuditService], tenant: str, faults: Faults, outcome: Outcome, *, limit: int = 40
) -> list[str]:
    """Append more decisions, one at a time through ``services[0]``, until every planned crash fired.

    Which appender's group reaches a given step first depends on the threads' timing: on a loaded machine
    the sound service may have integrated everything the crashing one committed, so a planned crash can
    still be pending after the concurrent run. Appending promises, each waits out the checkpoint interval
    first, so that the append finds its process's backlog due (integration and the checkpoint are where
    the later steps are). Returns the extra request ids (they must be logged too)."""
    lock = threading.Lock()
    extra: list[str] = []
    while set(faults.plan) - set(faults.fired) and len(extra) < limit:
        if outcome.use_promises:
            time.sleep(0.03)
        record = decision(f"extra-{len(extra)}", tenant)
        _with_retries(services, tenant, record, attempts=30, outcome=outcome, lock=lock)
        extra.append(record.request_id)
    return extra


def _with_retries(
    services: Sequence[AuditService],
    tenant: str,
    record: DecisionRecord,
    *,
    attempts: int,
    outcome: Outcome,
    lock: threading.Lock,
) -> None:
    for attempt in range(attempts):
        service = services[attempt % len(services)]
        try:
            if outcome.use_promises:
                (promise,), (entry,) = service.promise_logged(tenant, [record])
            else:
                (receipt,), (entry,) = service.append_logged(tenant, [record])
        except TransientError:
            with lock:
                outcome.retries += 1
        else:
            with lock:
                if outcome.use_promises:
                    outcome.promises[record.request_id] = (promise, entry)
                else:
                    outcome.receipts[record.request_id] = (receipt, entry)
            return
    raise AssertionError("an append never got through")


def _published_once(
    service: AuditService, tenant: str, expected: Sequence[str]
) -> tuple[StoredCheckpoint, list[bytes]]:
    """Publish, then: fsck passes and every expected request id is logged exactly once. The checkpoint
    and the log's entries."""
    published = service.publish(tenant)
    report = service.verify(tenant)
    assert report.ok, report.problem
    assert report.size == published.size == len(expected)
    logged = [
        entry
        for first in range(0, published.size, 1000)
        for entry in service.entries(tenant, first, min(published.size, first + 1000))
    ]
    ids = Counter(decode_record(entry).request_id for entry in logged)
    assert ids == Counter(expected)  # nothing lost, nothing twice
    return published, logged


def check_logged_once(service: AuditService, tenant: str, outcome: Outcome, expected: Sequence[str]) -> None:
    """After a publish: fsck passes, every request id is logged exactly once, and each appender's
    receipt verifies for the entry at its leaf."""
    published, logged = _published_once(service, tenant, expected)
    assert sorted(outcome.receipts) == sorted(expected)
    origin, policy = service.origin(tenant), Policy.all_of(*service.verifiers)
    for request_id, (receipt, entry) in outcome.receipts.items():
        assert entry == encode_record(decision(request_id, tenant)) == logged[receipt.leaf_index]
        checkpoint = verify_receipt(receipt, entry, service.verifiers, origin=origin, required=policy)
        assert receipt.leaf_index < checkpoint.size <= published.size


def check_promises_kept(
    service: AuditService, tenant: str, outcome: Outcome, expected: Sequence[str]
) -> None:
    """After a publish: fsck passes, every request id is logged exactly once, and each appender's promise
    verifies for its entry, is upgraded by ``receipt`` to a receipt that verifies, and that receipt keeps
    it (the same leaf, the same leaf hash)."""
    _, logged = _published_once(service, tenant, expected)
    assert sorted(outcome.promises) == sorted(expected)
    origin, policy = service.origin(tenant), Policy.all_of(*service.verifiers)
    for request_id, (promise, entry) in outcome.promises.items():
        assert entry == encode_record(decision(request_id, tenant)) == logged[promise.leaf_index]
        verify_promise(promise, service.verifiers, origin=origin, entry=entry, required=policy)
        receipt = service.receipt(tenant, request_id, promise.leaf_index)
        verify_receipt(receipt, entry, service.verifiers, origin=origin, required=policy)
        verify_promise_kept(promise, receipt, service.verifiers, origin=origin, required=policy)


def faulty_services(
    build: Callable[[FaultyLogStore, TileStore], AuditService],
    store: object,
    tile_store: TileStore,
    faults: Faults,
    *,
    containers: int = 2,
) -> list[AuditService]:
    """A service whose storage crashes as ``faults`` plans, and ``containers - 1`` sound ones over the
    same stores: each its own process as far as its caches go (heads, tiles, checkpoints)."""
    wrapped = [faults, *(faults.none() for _ in range(containers - 1))]
    return [build(FaultyLogStore(store, f), FaultyTileStore(tile_store, f)) for f in wrapped]


def every_step(n: int) -> dict[str, int]:
    """A crash at the n-th call of every step."""
    return dict.fromkeys(STEPS, n)


def request_ids(appenders: int, each: int) -> list[str]:
    return [f"req-{n}-{k}" for n in range(appenders) for k in range(each)]
