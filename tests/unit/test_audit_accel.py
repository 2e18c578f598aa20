"""Bulk hashing and proof checking: the native path and the pure reference give the same hashes and the
same typed errors (the native library is the fast path, never a second opinion)."""

from __future__ import annotations

import os

import pytest

from reliquary.audit import accel, merkle
from reliquary.errors import BadIndexError, ProofLengthError, RootMismatchError


@pytest.fixture(params=["native", "pure"])
def path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "native" and not accel.native_available():
        pytest.skip("the native Merkle library is not built")
    if request.param == "pure":
        monkeypatch.setattr(accel, "native_available", lambda: False)
    return str(request.param)


def _tree(size: int) -> tuple[list[bytes], bytes]:
    leaves = [merkle.SHA256.hash_leaf(os.urandom(40)) for _ in range(size)]
    return leaves, merkle.root_of(leaves)


def _proof(leaves: list[bytes], index: int) -> list[bytes]:
    return merkle.assemble(
        merkle.inclusion_plan(index, len(leaves)), lambda n: merkle.root_of(leaves[n.begin : n.end])
    )


def test_leaf_hashes_and_subtree_roots_match_the_reference(path: str) -> None:
    entries = [os.urandom(n) for n in range(300)]
    leaves = accel.hash_leaves(entries)
    assert leaves == [merkle.SHA256.hash_leaf(e) for e in entries]
    row = leaves[:256]
    assert accel.subtree_roots(row, 256) == [merkle.root_of(row)]
    assert accel.subtree_roots(row, 16) == [merkle.root_of(row[i : i + 16]) for i in range(0, 256, 16)]
    for width, hashes in ((3, row[:6]), (4, row[:6]), (0, row[:4])):
        with pytest.raises(ValueError, match="power-of-two"):
            accel.subtree_roots(hashes, width)


def test_many_valid_proofs_pass(path: str) -> None:
    leaves, root = _tree(1000)
    claims = [(i, 1000, leaves[i], _proof(leaves, i), root) for i in range(0, 1000, 7)]
    accel.verify_inclusions(claims)


@pytest.mark.parametrize(
    ("tamper", "error"),
    [
        (lambda c: (c[0], c[1], c[2], [*c[3][:-1], bytes(32)], c[4]), RootMismatchError),
        (lambda c: (c[0], c[1], c[2], c[3][:-1], c[4]), ProofLengthError),
        (lambda c: (c[1], c[1], c[2], c[3], c[4]), BadIndexError),
        (lambda c: (c[0], c[1], c[2][:31], c[3], c[4]), ProofLengthError),
    ],
)
def test_the_first_bad_proof_raises_the_reference_error(path: str, tamper: object, error: type) -> None:
    leaves, root = _tree(100)
    claims = [(i, 100, leaves[i], _proof(leaves, i), root) for i in range(40)]
    claims[23] = tamper(claims[23])  # type: ignore[operator]
    with pytest.raises(error):
        accel.verify_inclusions(claims)
