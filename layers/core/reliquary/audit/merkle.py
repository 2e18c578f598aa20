"""RFC 9162 Merkle trees: hashing, the compact range, proof planning and proof verification. Pure.

Trees are addressed by ``NodeID(level, index)``: the perfect subtree of ``2**level`` leaves that starts
at leaf ``index * 2**level``. Storage (tiles) can fetch the hash of any such node of a tree it holds.

A proof is planned without any hashes (``inclusion_plan``, ``consistency_plan``): each proof element is
a tuple of NodeIDs, left to right, whose hashes fold from the right into the element (an element on the
ragged right edge of a tree is not one stored node but the Merkle root of several). Storage fetches the
nodes, ``assemble`` folds them, and ``verify_inclusion`` / ``verify_consistency`` check the result,
raising ``BadIndexError``, ``ProofLengthError`` or ``RootMismatchError``.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from reliquary.errors import BadIndexError, ProofLengthError, RootMismatchError

HASH_SIZE = 32
_LEAF_PREFIX = b"\x00"
_NODE_PREFIX = b"\x01"


class Hasher(Protocol):
    def hash_leaf(self, entry: bytes) -> bytes: ...
    def hash_children(self, left: bytes, right: bytes) -> bytes: ...
    def empty_root(self) -> bytes: ...


class Sha256Hasher:
    """RFC 9162 §2.1.1: leaf = SHA-256(0x00 || entry), node = SHA-256(0x01 || left || right)."""

    __slots__ = ()

    def hash_leaf(self, entry: bytes) -> bytes:
        return hashlib.sha256(_LEAF_PREFIX + entry).digest()

    def hash_children(self, left: bytes, right: bytes) -> bytes:
        return hashlib.sha256(_NODE_PREFIX + left + right).digest()

    def empty_root(self) -> bytes:
        return hashlib.sha256(b"").digest()


SHA256 = Sha256Hasher()


@dataclass(frozen=True, slots=True, order=True)
class NodeID:
    level: int
    index: int

    @property
    def begin(self) -> int:
        return self.index << self.level

    @property
    def end(self) -> int:
        return (self.index + 1) << self.level


ProofElement = tuple[NodeID, ...]


def range_nodes(begin: int, end: int) -> list[NodeID]:
    """The maximal aligned perfect subtrees that cover [begin, end), left to right."""
    if not 0 <= begin <= end:
        raise BadIndexError("a range needs 0 <= begin <= end", begin=begin, end=end)
    nodes: list[NodeID] = []
    while begin < end:
        # The largest power of two that is both aligned at `begin` and fits in the rest of the range.
        level = (begin & -begin).bit_length() - 1 if begin else (end - begin).bit_length() - 1
        while begin + (1 << level) > end:
            level -= 1
        nodes.append(NodeID(level, begin >> level))
        begin += 1 << level
    return nodes


def fold(hashes: Sequence[bytes], hasher: Hasher = SHA256) -> bytes:
    """The Merkle root of consecutive perfect subtrees given left to right (largest first)."""
    if not hashes:
        return hasher.empty_root()
    result = hashes[-1]
    for left in reversed(hashes[:-1]):
        result = hasher.hash_children(left, result)
    return result


def _largest_power_of_two_below(n: int) -> int:
    return 1 << ((n - 1).bit_length() - 1)


def _range_element(begin: int, end: int) -> ProofElement:
    return tuple(range_nodes(begin, end))


def inclusion_plan(index: int, size: int) -> list[ProofElement]:
    """The elements of the inclusion proof of leaf ``index`` in a tree of ``size`` (RFC 9162 PATH)."""
    if not 0 <= index < size:
        raise BadIndexError("an inclusion proof needs 0 <= index < size", index=index, size=size)
    elements: list[ProofElement] = []
    begin, end = 0, size
    # Walk from the root down, then reverse: the proof lists the deepest sibling first.
    while end - begin > 1:
        k = _largest_power_of_two_below(end - begin)
        if index < begin + k:
            elements.append(_range_element(begin + k, end))
            end = begin + k
        else:
            elements.append(_range_element(begin, begin + k))
            begin += k
    elements.reverse()
    return elements


def consistency_plan(old_size: int, new_size: int) -> list[ProofElement]:
    """The elements of the consistency proof from ``old_size`` to ``new_size`` (RFC 9162 SUBPROOF)."""
    if not 0 <= old_size <= new_size:
        raise BadIndexError("a consistency proof needs 0 <= old size <= new size", old=old_size, new=new_size)
    if old_size in (0, new_size):
        return []
    elements: list[ProofElement] = []
    begin, end, complete = 0, new_size, True
    m = old_size
    while m != end - begin:
        k = _largest_power_of_two_below(end - begin)
        if m <= k:
            elements.append(_range_element(begin + k, end))
            end = begin + k
        else:
            elements.append(_range_element(begin, begin + k))
            begin, m, complete = begin + k, m - k, False
    if not complete:
        elements.append(_range_element(begin, end))
    elements.reverse()
    return elements


def assemble(
    plan: Iterable[ProofElement], fetch: Callable[[NodeID], bytes], hasher: Hasher = SHA256
) -> list[bytes]:
    """Turn a plan into proof hashes, fetching each node's hash from storage."""
    return [fold([fetch(node) for node in element], hasher) for element in plan]


def _check_hash(value: bytes, what: str) -> None:
    if not isinstance(value, bytes | bytearray) or len(value) != HASH_SIZE:
        raise ProofLengthError(f"{what} must be a {HASH_SIZE}-byte hash")


def _same(a: bytes, b: bytes) -> bool:
    return hmac.compare_digest(a, b)


def root_from_inclusion_proof(
    index: int, size: int, leaf_hash: bytes, proof: Sequence[bytes], *, hasher: Hasher = SHA256
) -> bytes:
    """The root a valid inclusion proof implies (RFC 9162 §2.1.3.2), or a typed error on a bad shape."""
    expected = len(inclusion_plan(index, size))  # BadIndexError for impossible (index, size)
    if len(proof) != expected:
        raise ProofLengthError(
            "the inclusion proof has the wrong number of nodes", expected=expected, got=len(proof)
        )
    _check_hash(leaf_hash, "the leaf hash")
    fn, sn, result = index, size - 1, leaf_hash
    for node in proof:
        _check_hash(node, "every proof node")
        if fn & 1 or fn == sn:
            result = hasher.hash_children(node, result)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            result = hasher.hash_children(result, node)
        fn >>= 1
        sn >>= 1
    return result


def verify_inclusion(
    index: int, size: int, leaf_hash: bytes, proof: Sequence[bytes], root: bytes, *, hasher: Hasher = SHA256
) -> None:
    """Check that the leaf at ``index`` is in the tree of ``size`` with ``root``."""
    _check_hash(root, "the root")
    if not _same(root_from_inclusion_proof(index, size, leaf_hash, proof, hasher=hasher), root):
        raise RootMismatchError("the inclusion proof leads to another root", index=index, size=size)


def verify_consistency(
    old_size: int,
    new_size: int,
    old_root: bytes,
    new_root: bytes,
    proof: Sequence[bytes],
    *,
    hasher: Hasher = SHA256,
) -> None:
    """Check that the tree of ``new_size`` extends the tree of ``old_size`` (RFC 9162 §2.1.4.2)."""
    expected = len(consistency_plan(old_size, new_size))  # BadIndexError for impossible sizes
    if len(proof) != expected:
        raise ProofLengthError(
            "the consistency proof has the wrong number of nodes", expected=expected, got=len(proof)
        )
    _check_hash(old_root, "the old root")
    _check_hash(new_root, "the new root")
    for node in proof:
        _check_hash(node, "every proof node")
    if old_size == new_size:
        if not _same(old_root, new_root):
            raise RootMismatchError("two trees of the same size have different roots", size=new_size)
        return
    if old_size == 0:
        return  # every tree extends the empty tree
    path = list(proof)
    if old_size & (old_size - 1) == 0:  # an exact power of two: the old root is itself a node
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    first = second = path[0]
    for node in path[1:]:
        if fn & 1 or fn == sn:
            first = hasher.hash_children(node, first)
            second = hasher.hash_children(node, second)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            second = hasher.hash_children(second, node)
        fn >>= 1
        sn >>= 1
    if not (_same(first, old_root) and _same(second, new_root)):
        raise RootMismatchError(
            "the consistency proof does not link the two roots", old_size=old_size, new_size=new_size
        )


@dataclass(frozen=True, slots=True)
class CompactRange:
    """The right frontier of a tree of ``size`` leaves: the roots of its perfect subtrees, largest first.

    Appending a leaf updates it in O(log n) and reports the nodes it completes (what tiles store)."""

    size: int = 0
    hashes: tuple[bytes, ...] = ()

    def __post_init__(self) -> None:
        if self.size < 0 or len(self.hashes) != self.size.bit_count():
            raise BadIndexError("a compact range holds one hash per set bit of its size", size=self.size)

    def nodes(self) -> list[NodeID]:
        return range_nodes(0, self.size)

    def root(self, hasher: Hasher = SHA256) -> bytes:
        return fold(self.hashes, hasher)

    def append(
        self, leaf_hash: bytes, hasher: Hasher = SHA256
    ) -> tuple[CompactRange, list[tuple[NodeID, bytes]]]:
        """The range with one more leaf, and every node (leaf included) that the append completed."""
        _check_hash(leaf_hash, "the leaf hash")
        completed = [(NodeID(0, self.size), leaf_hash)]
        hashes = list(self.hashes)
        carry, level, index = leaf_hash, 0, self.size
        while index & 1:  # merge with the equal-sized subtree on the left while there is one
            carry = hasher.hash_children(hashes.pop(), carry)
            level, index = level + 1, index >> 1
            completed.append((NodeID(level, index), carry))
        hashes.append(carry)
        return CompactRange(self.size + 1, tuple(hashes)), completed

    def extend(
        self, leaf_hashes: Iterable[bytes], hasher: Hasher = SHA256
    ) -> tuple[CompactRange, list[tuple[NodeID, bytes]]]:
        current, completed = self, []
        for leaf_hash in leaf_hashes:
            current, done = current.append(leaf_hash, hasher)
            completed.extend(done)
        return current, completed


def root_of(leaf_hashes: Sequence[bytes], hasher: Hasher = SHA256) -> bytes:
    """MTH over leaf hashes (RFC 9162 §2.1.1), in O(n) hashing and O(log n) memory.

    The compact range's algorithm on a plain list (no object per leaf: this is the reference's hot loop)."""
    frontier: list[bytes] = []
    for index, leaf_hash in enumerate(leaf_hashes):
        _check_hash(leaf_hash, "a leaf hash")
        carry, count = leaf_hash, index
        while count & 1:  # merge with the equal-sized subtree on the left while there is one
            carry = hasher.hash_children(frontier.pop(), carry)
            count >>= 1
        frontier.append(carry)
    return fold(frontier, hasher)
