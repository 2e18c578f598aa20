"""The log's sequencing and integration on the in-memory ports: nothing lost or duplicated, receipts
verify, a crash between commit and tiles is repaired, and the tiles equal a fault-free run's."""

from __future__ import annotations

import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reliquary.audit import merkle, tiles
from reliquary.audit.log import MAX_BATCH, MAX_BATCH_BYTES, TransparencyLog, batch_bytes
from reliquary.audit.memory import InMemoryLogStore, InMemoryTileStore
from reliquary.errors import InvalidRequestError, LogInconsistentError, PayloadTooLargeError, ProofError

LOG = "tenant-a"


def _log() -> tuple[TransparencyLog, InMemoryLogStore, InMemoryTileStore]:
    store, objects = InMemoryLogStore(), InMemoryTileStore()
    return TransparencyLog(store, objects), store, objects


def _entries(start: int, count: int) -> list[tuple[str, bytes]]:
    return [(f"req-{i}", f"record {i}".encode()) for i in range(start, start + count)]


def _published(objects: InMemoryTileStore, size: int) -> dict[str, bytes]:
    """The tiles and bundles of the tree of ``size``. (Narrower partial tiles of earlier sizes may remain
    beside them, as the specification allows; they depend on how appends were batched.)"""
    wanted = {ref.path for ref in tiles.tiles_for_size(size)}
    return {
        path: data for (log_id, path), data in objects.objects.items() if log_id == LOG and path in wanted
    }


def _append_all(log: TransparencyLog, total: int, batch: int = MAX_BATCH) -> None:
    for start in range(0, total, batch):
        log.append(LOG, _entries(start, min(batch, total - start)))


def test_appends_build_the_rfc9162_tree_and_its_tiles() -> None:
    log, store, objects = _log()
    _append_all(log, 600)
    head = store.head(LOG)
    assert (head.size, head.integrated) == (600, 600)
    leaf_hashes = [merkle.SHA256.hash_leaf(e) for _, e in _entries(0, 600)]
    assert log.root(LOG) == (600, merkle.root_of(leaf_hashes))
    assert {path for _, path in objects.objects} >= {r.path for r in tiles.tiles_for_size(600)}
    assert log.entries(LOG, 250, 260) == [e for _, e in _entries(250, 10)]
    for index in (0, 255, 256, 599):
        proof = log.inclusion_proof(LOG, index)
        merkle.verify_inclusion(index, 600, leaf_hashes[index], proof, merkle.root_of(leaf_hashes))
    for old in (1, 90, 256, 511):
        proof = log.consistency_proof(LOG, old)
        merkle.verify_consistency(
            old, 600, merkle.root_of(leaf_hashes[:old]), merkle.root_of(leaf_hashes), proof
        )


@settings(max_examples=20, deadline=None)
@given(batches=st.lists(st.integers(1, MAX_BATCH), min_size=1, max_size=8))
def test_any_batching_gives_the_same_tree_and_tiles(batches: list[int]) -> None:
    log, _, objects = _log()
    position = 0
    for size in batches:
        log.append(LOG, _entries(position, size))
        position += size
    reference, _, reference_objects = _log()
    reference.append(LOG, _entries(0, min(position, MAX_BATCH)))
    _append_rest(reference, position)
    assert log.root(LOG) == reference.root(LOG)
    assert _published(objects, position) == _published(reference_objects, position)


def _append_rest(log: TransparencyLog, total: int) -> None:
    for start in range(MAX_BATCH, total, MAX_BATCH):
        log.append(LOG, _entries(start, min(MAX_BATCH, total - start)))


def test_a_request_appended_twice_keeps_its_first_index() -> None:
    log, store, _ = _log()
    first = log.append(LOG, _entries(0, 3))
    again = log.append(LOG, [("req-1", b"a different body, same request"), ("req-9", b"new")])
    assert [(a.index, a.new) for a in first] == [(0, True), (1, True), (2, True)]
    assert [(a.request_id, a.index, a.new) for a in again] == [("req-1", 1, False), ("req-9", 3, True)]
    assert store.head(LOG).size == 4
    assert log.entries(LOG, 1, 2) == [b"record 1"]


def test_logs_of_tenants_are_separate() -> None:
    log, _, _ = _log()
    log.append(LOG, _entries(0, 5))
    log.append("tenant-b", _entries(0, 2))
    assert log.root(LOG)[0] == 5
    assert log.root("tenant-b")[0] == 2


def test_bad_appends_change_nothing() -> None:
    log, store, objects = _log()
    for bad in (
        _entries(0, MAX_BATCH + 1),
        [("r", b"a"), ("r", b"b")],
        [("r", b"x" * 65536)],
        [("\ud800", b"a lone surrogate in the request id")],
    ):
        with pytest.raises(InvalidRequestError):
            log.append(LOG, bad)
    assert store.head(LOG).size == 0
    assert objects.objects == {}


def _batch_of(total: int) -> list[tuple[str, bytes]]:
    """Five entries whose batch weighs ``total`` bytes: each entry, its 2-byte prefix, its 2-byte id."""
    sizes = [65532] * 5
    sizes[-1] += total - 5 * (65532 + 2 + 2)
    return [(f"r{i}", b"e" * size) for i, size in enumerate(sizes)]


def test_a_batch_at_the_byte_limit_is_logged_and_one_byte_more_is_refused_before_any_write() -> None:
    log, store, objects = _log()
    assert sum(2 + len(e) + len(r) for r, e in _batch_of(MAX_BATCH_BYTES)) == MAX_BATCH_BYTES == 327_680
    assert batch_bytes(_batch_of(MAX_BATCH_BYTES)) == MAX_BATCH_BYTES
    with pytest.raises(PayloadTooLargeError) as refused:
        log.append(LOG, _batch_of(MAX_BATCH_BYTES + 1))
    assert refused.value.code == "payload_too_large"
    assert refused.value.details == {"size": MAX_BATCH_BYTES + 1, "limit": MAX_BATCH_BYTES}
    assert (store.head(LOG).size, store.commits, objects.writes) == (0, 0, 0)
    appended = log.append(LOG, _batch_of(MAX_BATCH_BYTES))
    assert [a.index for a in appended] == [0, 1, 2, 3, 4]
    assert log.entries(LOG, 4, 5) == [_batch_of(MAX_BATCH_BYTES)[4][1]]
    # A full batch of ordinary-sized records past the limit: refused whole, not cut.
    records = [(f"req-{i}", b"r" * 3700) for i in range(MAX_BATCH)]
    with pytest.raises(PayloadTooLargeError):
        log.append(LOG, records)
    assert store.head(LOG).size == 5
    # Request ids count too, in UTF-8: "r\u00e9" is one byte more than "r4", and tips the batch over.
    at_limit = [(f"s{i}", entry) for i, (_, entry) in enumerate(_batch_of(MAX_BATCH_BYTES))]
    with pytest.raises(PayloadTooLargeError):
        log.append(LOG, [*at_limit[:4], ("s\u00e9", at_limit[4][1])])
    assert store.head(LOG).size == 5


class CrashingTiles(InMemoryTileStore):
    """Fails the n-th write, as a Lambda timing out between the commit and the tiles would."""

    def __init__(self, fail_at: int) -> None:
        super().__init__()
        self.fail_at = fail_at

    def write(self, log_id: str, path: str, data: bytes) -> None:
        if self.writes + 1 == self.fail_at:
            self.fail_at = -1
            raise TimeoutError("the function was stopped")
        super().write(log_id, path, data)


@pytest.mark.parametrize("fail_at", [1, 2, 3, 5])  # 250 -> 270 writes 5 objects
def test_a_crash_between_commit_and_tiles_is_completed_by_the_next_append(fail_at: int) -> None:
    store, objects = InMemoryLogStore(), CrashingTiles(fail_at=10**9)
    log = TransparencyLog(store, objects)
    _append_all(log, 250)
    objects.fail_at = objects.writes + fail_at
    with pytest.raises(TimeoutError):
        log.append(LOG, _entries(250, 20))
    head = store.head(LOG)
    assert (head.size, head.integrated) == (270, 250)  # committed, not yet integrated
    assert log.root(LOG)[0] == 250  # readers see only the integrated tree
    log.append(LOG, _entries(270, 5))  # the next append integrates the crashed batch first
    reference, _, clean = _log()
    _append_all(reference, 250)
    reference.append(LOG, _entries(250, 20))
    reference.append(LOG, _entries(270, 5))
    assert _published(objects, 275) == _published(clean, 275)
    assert len(_published(objects, 275)) == len(tiles.tiles_for_size(275))
    assert log.root(LOG) == reference.root(LOG)


def test_a_crash_after_the_tiles_before_marking_them_integrated_is_harmless() -> None:
    class CrashingStore(InMemoryLogStore):
        armed = False

        def mark_integrated(self, log_id: str, size: int) -> None:
            if self.armed:
                self.armed = False
                raise TimeoutError("the function was stopped")
            super().mark_integrated(log_id, size)

    store, objects = CrashingStore(), InMemoryTileStore()
    log = TransparencyLog(store, objects)
    _append_all(log, 100)
    store.armed = True
    with pytest.raises(TimeoutError):
        log.append(LOG, _entries(100, 50))
    assert store.head(LOG).integrated == 100
    head = log.integrate(LOG)  # rewrites the same bytes, then records the progress
    assert (head.size, head.integrated) == (150, 150)
    reference, _, clean = _log()
    _append_all(reference, 100)
    reference.append(LOG, _entries(100, 50))
    assert _published(objects, 150) == _published(clean, 150)


def test_concurrent_appenders_lose_and_duplicate_nothing() -> None:
    log, store, _ = _log()
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            for start in range(n * 200, n * 200 + 200, 25):
                log.append(LOG, _entries(start, 25))
        except BaseException as exc:  # noqa: BLE001  (reported below)
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    log.integrate(LOG)
    head = store.head(LOG)
    assert head.size == head.integrated == 1600
    logged = log.entries(LOG, 0, 1600)
    assert sorted(logged) == sorted(e for _, e in _entries(0, 1600))
    index = store.indexes(LOG, [f"req-{i}" for i in range(1600)])
    assert sorted(index.values()) == list(range(1600))
    assert all(logged[index[f"req-{i}"]] == f"record {i}".encode() for i in range(1600))


def test_a_modified_tile_byte_is_detected() -> None:
    store, objects = InMemoryLogStore(), InMemoryTileStore()
    log = TransparencyLog(store, objects, tile_cache=0)  # read what storage holds now, every time
    _append_all(log, 300)
    leaf_hashes = [merkle.SHA256.hash_leaf(e) for _, e in _entries(0, 300)]
    root = merkle.root_of(leaf_hashes)
    key = (LOG, tiles.TileRef(0, 0).path)
    tampered = bytearray(objects.objects[key])
    tampered[40] ^= 0x01
    objects.objects[key] = bytes(tampered)
    with pytest.raises(ProofError):
        merkle.verify_inclusion(7, 300, leaf_hashes[7], log.inclusion_proof(LOG, 7), root)
    objects.objects[key] = objects.objects[key][:-1]
    with pytest.raises(LogInconsistentError):
        log.inclusion_proof(LOG, 7)
