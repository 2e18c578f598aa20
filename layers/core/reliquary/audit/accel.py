"""Bulk Merkle hashing through the native layer's C library, with the pure-Python reference as fallback.

The log hashes many leaves at once when it integrates a batch, rebuilds tiles or checks a whole log; in
C that costs the SHA-256 work alone (see ``make bench``), in Python a few hundred nanoseconds of call
overhead per hash on top. Results are identical either way (the native library is tested against the
reference on every vector); the fallback is taken when the library cannot load (no native layer) or the
hasher is not the RFC 9162 SHA-256 one.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

from reliquary.audit import merkle
from reliquary.audit.merkle import HASH_SIZE, SHA256, Hasher

# An inclusion claim: leaf index, tree size, leaf hash, proof, root.
InclusionClaim = tuple[int, int, bytes, Sequence[bytes], bytes]

# Below this many hashes a ctypes call (packing included) costs more than it saves.
NATIVE_MIN_LEAVES = 16


@functools.cache
def native_available() -> bool:
    """Whether the native Merkle library loads in this process (decided once)."""
    try:
        from reliquary_native import merkle as native  # noqa: PLC0415  (optional layer, loaded lazily)
    except ImportError:
        return False
    return native.available()


def _use_native(hasher: Hasher, count: int) -> bool:
    return hasher is SHA256 and count >= NATIVE_MIN_LEAVES and native_available()


def hash_leaves(entries: Sequence[bytes], hasher: Hasher = SHA256) -> list[bytes]:
    """The RFC 9162 leaf hash of every entry, in order."""
    if _use_native(hasher, len(entries)):
        from reliquary_native import merkle as native  # noqa: PLC0415

        joined = native.hash_leaves(entries)
        return [joined[i : i + HASH_SIZE] for i in range(0, len(joined), HASH_SIZE)]
    return [hasher.hash_leaf(entry) for entry in entries]


def subtree_roots(hashes: Sequence[bytes], width: int, hasher: Hasher = SHA256) -> list[bytes]:
    """The roots of consecutive perfect subtrees of ``width`` hashes each (a tile row one level up when
    ``width`` is 256). ``len(hashes)`` must be a multiple of ``width``, a power of two."""
    if width <= 0 or width & (width - 1) or len(hashes) % width:
        raise ValueError("subtree_roots needs a power-of-two width that divides the number of hashes")
    if _use_native(hasher, len(hashes)):
        from reliquary_native import merkle as native  # noqa: PLC0415

        joined = native.subtree_roots(b"".join(hashes), width)
        return [joined[i : i + HASH_SIZE] for i in range(0, len(joined), HASH_SIZE)]
    row = list(hashes)
    while width > 1:
        row = [hasher.hash_children(row[i], row[i + 1]) for i in range(0, len(row), 2)]
        width //= 2
    return row


def verify_inclusions(claims: Sequence[InclusionClaim], hasher: Hasher = SHA256) -> None:
    """Check many inclusion proofs (in one native call when possible); raise the typed error of the first
    that fails, exactly as ``merkle.verify_inclusion`` would."""
    if _use_native(hasher, len(claims)):
        from reliquary_native import merkle as native  # noqa: PLC0415

        try:
            results = native.verify_inclusions(claims)
        except ValueError:  # malformed (a hash of the wrong length): the reference names the problem
            results = [False] * len(claims)
        if all(results):
            return
        claims = claims[results.index(False) :]
    for index, size, leaf_hash, proof, root in claims:
        merkle.verify_inclusion(index, size, leaf_hash, proof, root, hasher=hasher)
