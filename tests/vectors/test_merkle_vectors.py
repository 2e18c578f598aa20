"""The Merkle core against tests/vectors/merkle_v1.json (an independent transcription of RFC 9162)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from reliquary.audit import merkle
from reliquary.errors import BadIndexError, ProofError, ProofLengthError, RootMismatchError

VECTORS: dict[str, Any] = json.loads(Path(__file__).with_name("merkle_v1.json").read_text())
TREES = {name: [bytes.fromhex(x) for x in leaves] for name, leaves in VECTORS["trees"].items()}
ERRORS: dict[str, type[ProofError]] = {
    "bad_index": BadIndexError,
    "proof_length": ProofLengthError,
    "root_mismatch": RootMismatchError,
}
# Published roots of the RFC 6962 test leaves (Certificate Transparency's and transparency-dev's suites).
PUBLISHED_ROOTS = {
    1: "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    4: "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    8: "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
}


def _hashes(values: list[str]) -> list[bytes]:
    return [bytes.fromhex(v) for v in values]


def test_roots_match_the_vectors_and_the_published_ones() -> None:
    for case in VECTORS["roots"]:
        leaves = [merkle.SHA256.hash_leaf(e) for e in TREES[case["tree"]][: case["size"]]]
        assert merkle.root_of(leaves).hex() == case["root"], case
    rfc = {c["size"]: c["root"] for c in VECTORS["roots"] if c["tree"] == "rfc6962"}
    for size, root in PUBLISHED_ROOTS.items():
        assert rfc[size] == root


@pytest.mark.parametrize("case", VECTORS["inclusion"], ids=lambda c: c["desc"])
def test_inclusion_vector(case: dict[str, Any]) -> None:
    def verify() -> None:
        merkle.verify_inclusion(
            case["index"],
            case["size"],
            bytes.fromhex(case["leaf_hash"]),
            _hashes(case["proof"]),
            bytes.fromhex(case["root"]),
        )

    if case["want_error"] is None:
        verify()
    else:
        with pytest.raises(ERRORS[case["want_error"]]):
            verify()


@pytest.mark.parametrize("case", VECTORS["consistency"], ids=lambda c: c["desc"])
def test_consistency_vector(case: dict[str, Any]) -> None:
    def verify() -> None:
        merkle.verify_consistency(
            case["old_size"],
            case["new_size"],
            bytes.fromhex(case["old_root"]),
            bytes.fromhex(case["new_root"]),
            _hashes(case["proof"]),
        )

    if case["want_error"] is None:
        verify()
    else:
        with pytest.raises(ERRORS[case["want_error"]]):
            verify()


def test_planned_and_assembled_proofs_equal_the_valid_vectors() -> None:
    """Storage-side proof building (plan, fetch nodes, fold) yields exactly the RFC's proofs."""
    for tree, leaves in TREES.items():
        hashes = [merkle.SHA256.hash_leaf(e) for e in leaves]

        def fetch(node: merkle.NodeID, hashes: list[bytes] = hashes) -> bytes:
            return merkle.root_of(hashes[node.begin : node.end])

        for case in VECTORS["inclusion"]:
            if case["desc"] == f"{tree}: leaf {case['index']} of {case['size']}":
                plan = merkle.inclusion_plan(case["index"], case["size"])
                assert [p.hex() for p in merkle.assemble(plan, fetch)] == case["proof"]
        for case in VECTORS["consistency"]:
            if case["desc"] == f"{tree}: {case['old_size']} -> {case['new_size']}":
                plan = merkle.consistency_plan(case["old_size"], case["new_size"])
                assert [p.hex() for p in merkle.assemble(plan, fetch)] == case["proof"]
