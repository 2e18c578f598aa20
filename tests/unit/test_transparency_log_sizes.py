"""Roots and proofs at every valid size, not only the sizes an append happened to end at.

A log grown by small appends has, for most sizes, no partial tile of its own width: a reader takes the
wider (or full) tile at the same position and uses its first hashes, as tlog-tiles readers do. Every
proof is checked with the independent verifier (``merkle.verify_inclusion`` / ``verify_consistency``)
against roots computed from the entries, never from the log's tiles."""

from __future__ import annotations

import itertools

import pytest

from reliquary.audit import merkle, tiles
from reliquary.audit.log import TransparencyLog
from reliquary.audit.memory import InMemoryLogStore, InMemoryTileStore
from reliquary.errors import BadIndexError, InvalidRequestError

LOG = "tenant-a"
TOTAL = 270  # past the first full tile (256) at level 0 and its bundle


def _small_appends(total: int) -> tuple[InMemoryLogStore, InMemoryTileStore, list[bytes], list[int]]:
    """A log grown 1, 3, 2, 1, 3, 2, ... entries at a time; its entries and the sizes appends ended at."""
    store, objects = InMemoryLogStore(), InMemoryTileStore()
    writer = TransparencyLog(store, objects)
    entries: list[bytes] = []
    ends: list[int] = []
    for step in itertools.cycle((1, 3, 2)):
        first = len(entries)
        batch = [(f"req-{i}", f"entry {i}".encode()) for i in range(first, min(total, first + step))]
        writer.append(LOG, batch)
        entries.extend(entry for _, entry in batch)
        ends.append(len(entries))
        if len(entries) == total:
            break
    return store, objects, entries, ends


@pytest.fixture(scope="module")
def grown() -> tuple[InMemoryLogStore, InMemoryTileStore, list[bytes], list[int]]:
    return _small_appends(TOTAL)


def _roots(entries: list[bytes]) -> list[bytes]:
    """The root of every prefix of the log, from the entries alone."""
    leaf_hashes = [merkle.SHA256.hash_leaf(e) for e in entries]
    return [merkle.root_of(leaf_hashes[:size]) for size in range(len(entries) + 1)]


def test_the_example_of_the_review_one_append_of_three_then_a_proof_in_the_tree_of_two() -> None:
    store, objects = InMemoryLogStore(), InMemoryTileStore()
    TransparencyLog(store, objects).append(LOG, [("a", b"1"), ("b", b"2"), ("c", b"3")])
    assert (LOG, "tile/0/000.p/2") not in objects.objects  # only tile/0/000.p/3 was written
    log = TransparencyLog(store, objects)  # a fresh reader: nothing cached
    leaves = [merkle.SHA256.hash_leaf(e) for e in (b"1", b"2", b"3")]
    root = merkle.root_of(leaves[:2])
    assert log.root(LOG, 2) == (2, root)
    merkle.verify_inclusion(0, 2, leaves[0], log.inclusion_proof(LOG, 0, 2), root)
    merkle.verify_consistency(2, 3, root, merkle.root_of(leaves), log.consistency_proof(LOG, 2, 3))


def test_every_size_has_its_root_and_every_leaf_its_inclusion_proof(
    grown: tuple[InMemoryLogStore, InMemoryTileStore, list[bytes], list[int]],
) -> None:
    store, objects, entries, ends = grown
    log = TransparencyLog(store, objects)  # a fresh reader, as another function instance would be
    missing = [size for size in range(1, TOTAL) if size % 256 and size not in ends]
    assert missing  # sizes with no partial tile of their own: what this test is about
    level0 = {tiles.tile_at(0, size // 256, size) for size in missing}
    assert all((LOG, ref.path) not in objects.objects for ref in level0 if ref is not None)
    roots = _roots(entries)
    leaf_hashes = [merkle.SHA256.hash_leaf(e) for e in entries]
    for size in range(1, TOTAL + 1):
        assert log.root(LOG, size) == (size, roots[size])
        proofs = log.inclusion_proofs(LOG, range(size), size)
        for index, proof in enumerate(proofs):
            merkle.verify_inclusion(index, size, leaf_hashes[index], proof, roots[size])
        for index in {0, size // 2, size - 1}:  # the one-proof path reads the same tiles
            assert log.inclusion_proof(LOG, index, size) == proofs[index]
    assert log.root(LOG, 0) == (0, merkle.SHA256.empty_root())


def test_every_pair_of_sizes_has_a_consistency_proof(
    grown: tuple[InMemoryLogStore, InMemoryTileStore, list[bytes], list[int]],
) -> None:
    store, objects, entries, _ = grown
    log = TransparencyLog(store, objects)
    roots = _roots(entries)
    for new_size in range(TOTAL + 1):
        for old_size in range(new_size + 1):
            proof = log.consistency_proof(LOG, old_size, new_size)
            merkle.verify_consistency(old_size, new_size, roots[old_size], roots[new_size], proof)


def test_sizes_beyond_the_integrated_tree_are_refused(
    grown: tuple[InMemoryLogStore, InMemoryTileStore, list[bytes], list[int]],
) -> None:
    store, objects, _, _ = grown
    log = TransparencyLog(store, objects)
    with pytest.raises(InvalidRequestError):
        log.root(LOG, TOTAL + 1)
    with pytest.raises(InvalidRequestError):
        log.inclusion_proof(LOG, 0, TOTAL + 1)
    with pytest.raises(InvalidRequestError):
        log.consistency_proof(LOG, 5, TOTAL + 1)
    with pytest.raises(BadIndexError):
        log.consistency_proof(LOG, 6, 5)
    with pytest.raises(BadIndexError):
        log.inclusion_proof(LOG, 5, 5)
