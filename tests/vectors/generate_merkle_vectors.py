"""Writes tests/vectors/merkle_v1.json from an independent, literal transcription of RFC 9162 §2.1
(recursive MTH, PATH and SUBPROOF over hashlib): the oracle the implementations are tested against.
Run only when the vectors change: `python -m tests.vectors.generate_merkle_vectors`.

Each proof case has `want_error`: null for a valid proof, else the error code a verifier must raise:
`bad_index` (no proof can exist for these sizes), `proof_length` (wrong number of nodes) or
`root_mismatch` (right shape, wrong hashes).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

OUT = Path(__file__).with_name("merkle_v1.json")

# The leaves of the RFC 6962 test suites (Certificate Transparency, transparency-dev/merkle).
RFC_LEAVES = [
    bytes.fromhex(x)
    for x in (
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    )
]
GENERATED_LEAVES = [f"reliquary leaf {i}".encode() for i in range(70)]
SIZES = (1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 70)


def _h(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def leaf_hash(entry: bytes) -> bytes:
    return _h(b"\x00" + entry)


def mth(d: list[bytes]) -> bytes:
    n = len(d)
    if n == 0:
        return _h(b"")
    if n == 1:
        return leaf_hash(d[0])
    k = 1 << ((n - 1).bit_length() - 1)
    return _h(b"\x01" + mth(d[:k]) + mth(d[k:]))


def path(m: int, d: list[bytes]) -> list[bytes]:
    n = len(d)
    if n <= 1:
        return []
    k = 1 << ((n - 1).bit_length() - 1)
    if m < k:
        return [*path(m, d[:k]), mth(d[k:])]
    return [*path(m - k, d[k:]), mth(d[:k])]


def subproof(m: int, d: list[bytes], complete: bool) -> list[bytes]:
    n = len(d)
    if m == n:
        return [] if complete else [mth(d)]
    k = 1 << ((n - 1).bit_length() - 1)
    if m <= k:
        return [*subproof(m, d[:k], complete), mth(d[k:])]
    return [*subproof(m - k, d[k:], False), mth(d[:k])]


def rfc_verify_inclusion(index: int, size: int, leaf: bytes, proof: list[bytes], root: bytes) -> bool:
    """RFC 9162 §2.1.3.2, step by step. A proof of the right shape can also hold for another size
    (a verifier learns the size only from the signed checkpoint it checks against): the spec decides."""
    if index >= size:
        return False
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = _h(b"\x01" + p + r)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = _h(b"\x01" + r + p)
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and r == root


def _flip(node: bytes) -> bytes:
    return bytes([node[0] ^ 0x01]) + node[1:]


def _inclusion(  # noqa: PLR0917  (one positional per JSON field, in the file's order)
    desc: str, index: int, size: int, leaf: bytes, proof: list[bytes], root: bytes, error: str | None
) -> dict[str, Any]:
    return {
        "desc": desc,
        "index": index,
        "size": size,
        "leaf_hash": leaf.hex(),
        "proof": [p.hex() for p in proof],
        "root": root.hex(),
        "want_error": error,
    }


def inclusion_cases(leaves: list[bytes], tree: str) -> list[dict[str, Any]]:
    cases = []
    for size in [s for s in SIZES if s <= len(leaves)]:
        d = leaves[:size]
        root = mth(d)
        for index in sorted({0, size // 2, size - 1}):
            leaf, proof = leaf_hash(d[index]), path(index, d)
            name = f"{tree}: leaf {index} of {size}"
            cases.append(_inclusion(name, index, size, leaf, proof, root, None))
            for i in range(len(proof)):
                bad = [*proof[:i], _flip(proof[i]), *proof[i + 1 :]]
                cases.append(
                    _inclusion(f"{name}, node {i} modified", index, size, leaf, bad, root, "root_mismatch")
                )
            cases.append(
                _inclusion(f"{name}, extra node", index, size, leaf, [*proof, root], root, "proof_length")
            )
            if proof:
                cases.append(
                    _inclusion(
                        f"{name}, last node missing", index, size, leaf, proof[:-1], root, "proof_length"
                    )
                )
            cases.append(
                _inclusion(f"{name}, other leaf", index, size, _flip(leaf), proof, root, "root_mismatch")
            )
            cases.append(
                _inclusion(f"{name}, other root", index, size, leaf, proof, _flip(root), "root_mismatch")
            )
            for other_index in (index - 1, index + 1):
                if not 0 <= other_index < size:
                    cases.append(
                        _inclusion(
                            f"{name} claimed as {other_index}",
                            other_index,
                            size,
                            leaf,
                            proof,
                            root,
                            "bad_index",
                        )
                    )
                    continue
                same_shape = len(path(other_index, [b""] * size)) == len(proof)
                error = "root_mismatch" if same_shape else "proof_length"
                cases.append(
                    _inclusion(
                        f"{name} claimed as {other_index}", other_index, size, leaf, proof, root, error
                    )
                )
            for other_size in (size - 1, size + 1):
                verdict: str | None
                if index >= other_size:
                    verdict = "bad_index"
                elif len(path(index, [b""] * other_size)) == len(proof):  # the shape alone decides
                    verdict = (
                        None
                        if rfc_verify_inclusion(index, other_size, leaf, proof, root)
                        else "root_mismatch"
                    )
                else:
                    verdict = "proof_length"
                cases.append(
                    _inclusion(
                        f"{name} claimed in size {other_size}", index, other_size, leaf, proof, root, verdict
                    )
                )
    empty = _h(b"")
    cases.append(
        _inclusion(f"{tree}: the empty tree has no leaves", 0, 0, leaf_hash(b""), [], empty, "bad_index")
    )
    return cases


def _consistency(  # noqa: PLR0917  (one positional per JSON field, in the file's order)
    desc: str, old: int, new: int, old_root: bytes, new_root: bytes, proof: list[bytes], error: str | None
) -> dict[str, Any]:
    return {
        "desc": desc,
        "old_size": old,
        "new_size": new,
        "old_root": old_root.hex(),
        "new_root": new_root.hex(),
        "proof": [p.hex() for p in proof],
        "want_error": error,
    }


def consistency_cases(leaves: list[bytes], tree: str) -> list[dict[str, Any]]:
    cases = []
    for new in [s for s in SIZES if s <= len(leaves)]:
        for old in sorted({0, 1, new // 2, new - 1, new}):
            if old < 0:
                continue
            old_root, new_root = mth(leaves[:old]), mth(leaves[:new])
            proof = [] if old == 0 else subproof(old, leaves[:new], True)
            name = f"{tree}: {old} -> {new}"
            cases.append(_consistency(name, old, new, old_root, new_root, proof, None))
            if not 0 < old < new:
                continue
            for i in range(len(proof)):
                bad = [*proof[:i], _flip(proof[i]), *proof[i + 1 :]]
                cases.append(
                    _consistency(
                        f"{name}, node {i} modified", old, new, old_root, new_root, bad, "root_mismatch"
                    )
                )
            cases.append(
                _consistency(
                    f"{name}, extra node", old, new, old_root, new_root, [*proof, new_root], "proof_length"
                )
            )
            cases.append(
                _consistency(
                    f"{name}, last node missing", old, new, old_root, new_root, proof[:-1], "proof_length"
                )
            )
            cases.append(
                _consistency(
                    f"{name}, other old root", old, new, _flip(old_root), new_root, proof, "root_mismatch"
                )
            )
            cases.append(
                _consistency(
                    f"{name}, other new root", old, new, old_root, _flip(new_root), proof, "root_mismatch"
                )
            )
            cases.append(
                _consistency(f"{name}, sizes swapped", new, old, new_root, old_root, proof, "bad_index")
            )
    cases.append(
        _consistency(
            f"{tree}: same size, other root",
            5,
            5,
            mth(leaves[:5]),
            _flip(mth(leaves[:5])),
            [],
            "root_mismatch",
        )
    )
    cases.append(
        _consistency(
            f"{tree}: same size with a proof",
            5,
            5,
            mth(leaves[:5]),
            mth(leaves[:5]),
            [mth(leaves[:5])],
            "proof_length",
        )
    )
    return cases


def main() -> None:
    document = {
        "hash": "RFC 9162 §2.1: leaf = SHA-256(0x00 || entry), node = SHA-256(0x01 || left || right)",
        "generated_by": "tests/vectors/generate_merkle_vectors.py (a literal transcription of the RFC)",
        "trees": {
            "rfc6962": [leaf.hex() for leaf in RFC_LEAVES],
            "generated": [leaf.hex() for leaf in GENERATED_LEAVES],
        },
        "roots": [
            {"tree": name, "size": size, "root": mth(leaves[:size]).hex()}
            for name, leaves in (("rfc6962", RFC_LEAVES), ("generated", GENERATED_LEAVES))
            for size in range(len(leaves) + 1)
        ],
        "inclusion": inclusion_cases(RFC_LEAVES, "rfc6962") + inclusion_cases(GENERATED_LEAVES, "generated"),
        "consistency": consistency_cases(RFC_LEAVES, "rfc6962")
        + consistency_cases(GENERATED_LEAVES, "generated"),
    }
    OUT.write_text(json.dumps(document, separators=(",", ":")) + "\n")  # compact: ~1,500 cases


if __name__ == "__main__":
    main()
