"""The Merkle core: compact ranges, proof plans, typed verification errors (property-tested)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reliquary.audit import merkle
from reliquary.audit.merkle import CompactRange, NodeID
from reliquary.errors import BadIndexError, ProofLengthError, RootMismatchError

H = merkle.SHA256


def _tree(size: int) -> list[bytes]:
    return [H.hash_leaf(f"entry {i}".encode()) for i in range(size)]


def _fetch(hashes: list[bytes]) -> Callable[[NodeID], bytes]:
    def fetch(node: NodeID) -> bytes:
        assert node.end <= len(hashes), "a plan must only name nodes inside the tree"
        assert node.end - node.begin == 1 << node.level
        return merkle.root_of(hashes[node.begin : node.end])

    return fetch


def test_hashing_is_rfc9162() -> None:
    assert H.hash_leaf(b"abc") == hashlib.sha256(b"\x00abc").digest()
    assert H.hash_children(b"l" * 32, b"r" * 32) == hashlib.sha256(b"\x01" + b"l" * 32 + b"r" * 32).digest()
    assert merkle.root_of([]) == hashlib.sha256(b"").digest()
    assert merkle.root_of([b"x" * 32]) == b"x" * 32


@pytest.mark.parametrize(
    ("begin", "end", "expected"),
    [
        (0, 0, []),
        (0, 1, [NodeID(0, 0)]),
        (0, 8, [NodeID(3, 0)]),
        (0, 13, [NodeID(3, 0), NodeID(2, 2), NodeID(0, 12)]),
        (3, 13, [NodeID(0, 3), NodeID(2, 1), NodeID(2, 2), NodeID(0, 12)]),
        (8, 9, [NodeID(0, 8)]),
    ],
)
def test_range_nodes_cover_a_range_with_maximal_aligned_subtrees(
    begin: int, end: int, expected: list[NodeID]
) -> None:
    assert merkle.range_nodes(begin, end) == expected


def test_compact_range_reports_every_node_an_append_completes() -> None:
    hashes = _tree(33)
    current = CompactRange()
    seen: dict[NodeID, bytes] = {}
    for leaf in hashes:
        current, completed = current.append(leaf)
        seen.update(completed)
    assert current.size == 33
    assert current.nodes() == [NodeID(5, 0), NodeID(0, 32)]
    assert current.root() == merkle.root_of(hashes)
    # Every perfect subtree of the tree was reported exactly when it completed, with its hash.
    expected = {NodeID(level, index) for level in range(6) for index in range(33 >> level)}
    assert set(seen) == expected
    fetch = _fetch(hashes)
    assert all(seen[node] == fetch(node) for node in expected)


def test_compact_range_refuses_an_inconsistent_shape_and_bad_leaves() -> None:
    with pytest.raises(BadIndexError):
        CompactRange(3, (b"x" * 32,))
    with pytest.raises(ProofLengthError):
        CompactRange().append(b"short")


@settings(max_examples=60, deadline=None)
@given(size=st.integers(1, 300), data=st.data())
def test_every_planned_inclusion_proof_verifies_and_any_change_fails(size: int, data: st.DataObject) -> None:
    hashes = _tree(size)
    root = merkle.root_of(hashes)
    index = data.draw(st.integers(0, size - 1))
    proof = merkle.assemble(merkle.inclusion_plan(index, size), _fetch(hashes))
    merkle.verify_inclusion(index, size, hashes[index], proof, root)
    if proof:
        position = data.draw(st.integers(0, len(proof) - 1))
        tampered = list(proof)
        tampered[position] = bytes([tampered[position][0] ^ 0x80]) + tampered[position][1:]
        with pytest.raises(RootMismatchError):
            merkle.verify_inclusion(index, size, hashes[index], tampered, root)
    with pytest.raises(ProofLengthError):
        merkle.verify_inclusion(index, size, hashes[index], [*proof, root], root)
    with pytest.raises(BadIndexError):
        merkle.verify_inclusion(size, size, hashes[index], proof, root)


@settings(max_examples=60, deadline=None)
@given(new=st.integers(1, 300), data=st.data())
def test_every_planned_consistency_proof_verifies_and_any_change_fails(new: int, data: st.DataObject) -> None:
    hashes = _tree(new)
    old = data.draw(st.integers(0, new))
    old_root, new_root = merkle.root_of(hashes[:old]), merkle.root_of(hashes)
    proof = merkle.assemble(merkle.consistency_plan(old, new), _fetch(hashes))
    merkle.verify_consistency(old, new, old_root, new_root, proof)
    if proof:
        position = data.draw(st.integers(0, len(proof) - 1))
        tampered = list(proof)
        tampered[position] = bytes(32)
        with pytest.raises(RootMismatchError):
            merkle.verify_consistency(old, new, old_root, new_root, tampered)
    if 0 < old < new:
        with pytest.raises(RootMismatchError):
            merkle.verify_consistency(old, new, merkle.root_of(_tree(old + 1)[1:]), new_root, proof)
        with pytest.raises(BadIndexError):
            merkle.verify_consistency(new, old, new_root, old_root, proof)


def test_malformed_hashes_are_typed_errors() -> None:
    hashes = _tree(4)
    root = merkle.root_of(hashes)
    proof = merkle.assemble(merkle.inclusion_plan(1, 4), _fetch(hashes))
    with pytest.raises(ProofLengthError):
        merkle.verify_inclusion(1, 4, hashes[1], [proof[0][:31], proof[1]], root)
    with pytest.raises(ProofLengthError):
        merkle.verify_inclusion(1, 4, hashes[1], proof, root[:16])
    with pytest.raises(BadIndexError):
        merkle.inclusion_plan(-1, 4)
    with pytest.raises(BadIndexError):
        merkle.consistency_plan(5, 4)
