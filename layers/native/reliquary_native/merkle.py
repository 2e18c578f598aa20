"""RFC 9162 Merkle tree hashing in C (``libreliquary_merkle.so``), through ctypes.

leaf hash = SHA-256(0x00 || entry), node hash = SHA-256(0x01 || left || right), and the root of no leaves
is SHA-256(""). Hashes are 32 bytes; several hashes travel as one ``bytes`` of concatenated hashes.

The library lives in the same ``lib/`` directory as liboqs (:func:`reliquary_native.native_lib_dir`) and
links against the layer's OpenSSL 1.1.1k libcrypto, which it finds beside itself. It is loaded on first use,
once per process; ctypes releases the GIL while it hashes. Every function except :func:`available` raises
:class:`reliquary_native.NativeLibraryUnavailable` when the library cannot be loaded; malformed arguments
raise ``ValueError`` (``TypeError`` for a wrong type) before any native code runs.
"""

from __future__ import annotations

import ctypes
import threading
from array import array
from collections.abc import Sequence
from itertools import accumulate
from pathlib import Path
from typing import Any, Final

from reliquary_native import LIBCRYPTO_GLOB, NativeLibraryUnavailable, native_lib_dir

__all__ = [
    "HASH_SIZE",
    "LIBRARY_FILE",
    "available",
    "hash_bundle",
    "hash_leaves",
    "root",
    "sha256_floor",
    "subtree_roots",
    "verify_inclusion",
    "verify_inclusions",
]

HASH_SIZE: Final = 32
LIBRARY_FILE: Final = "libreliquary_merkle.so"
# merkle.h RQ_ABI_VERSION: a library built from other sources is refused rather than called wrongly.
_ABI_VERSION: Final = 2
_MAX_U64: Final = 2**64 - 1
_ERRORS: Final = {
    -1: "a required pointer is NULL",
    -2: "offsets decrease",
    -3: "width is not a power of two, or the count is not a multiple of it",
    -4: "the input is too large",
    -5: "libcrypto failed",
    -6: "the entry bundle is truncated or holds another number of entries",
}
_BUILD_HINT: Final = "build it with `make native` in a checkout; on AWS Lambda attach the NativeLayer"

_u8p: Final = ctypes.POINTER(ctypes.c_uint8)
_u64p: Final = ctypes.POINTER(ctypes.c_uint64)
_sizep: Final = ctypes.POINTER(ctypes.c_size_t)
# Read-only inputs are c_char_p: ctypes passes a bytes object's own buffer, without a copy.
_bufp: Final = ctypes.c_char_p
_SIGNATURES: Final[dict[str, list[Any]]] = {
    "rq_abi_version": [],
    "rq_hash_leaves": [_bufp, _u64p, ctypes.c_size_t, _bufp],
    "rq_hash_bundle": [_bufp, ctypes.c_size_t, ctypes.c_size_t, _bufp],
    "rq_root": [_bufp, ctypes.c_size_t, _bufp],
    "rq_subtree_roots": [_bufp, ctypes.c_size_t, ctypes.c_size_t, _bufp],
    "rq_verify_inclusion": [ctypes.c_uint64, ctypes.c_uint64, _bufp, _bufp, ctypes.c_size_t, _bufp],
    "rq_verify_inclusions": [ctypes.c_size_t, _u64p, _u64p, _bufp, _bufp, _sizep, _bufp, _u8p],
    "rq_sha256_floor": [_bufp, _u64p, ctypes.c_size_t, _bufp],
}

# An inclusion claim: index, size, leaf hash, proof, root.
_Claim = tuple[int, int, bytes, Sequence[bytes], bytes]

_lock = threading.Lock()
# Either the loaded library or why it could not be loaded: decided once per process.
_state: dict[str, ctypes.CDLL | str] = {}
# The libcrypto handle stays referenced for the life of the process, as the library does.
_handles: list[ctypes.CDLL] = []


def available() -> bool:
    """Whether the library loads (it is then loaded). Never raises."""
    try:
        _lib()
    except NativeLibraryUnavailable:
        return False
    return True


def hash_leaves(entries: Sequence[bytes]) -> bytes:
    """The leaf hashes of ``entries``, concatenated (``32 * len(entries)`` bytes)."""
    lib = _lib()
    data, offsets = _pack(entries)
    out = ctypes.create_string_buffer(HASH_SIZE * len(entries))
    _check("hash_leaves", lib.rq_hash_leaves(data, _u64_array(offsets), len(entries), out))
    return out.raw


def hash_bundle(bundle: bytes, count: int) -> bytes:
    """The leaf hashes of the ``count`` entries of a c2sp tlog-tiles entry bundle (uint16 big-endian length
    prefixes), concatenated. ``ValueError`` if the bundle is truncated or holds another number of entries."""
    lib = _lib()
    bundle = _as_bytes(bundle, "bundle")
    _check_u64(count, "count")
    out = ctypes.create_string_buffer(HASH_SIZE * count)
    _check("hash_bundle", lib.rq_hash_bundle(bundle, len(bundle), count, out))
    return out.raw


def root(leaf_hashes: bytes) -> bytes:
    """The Merkle tree hash (RFC 9162 MTH) of concatenated leaf hashes; ``b""`` is the empty tree."""
    lib = _lib()
    leaf_hashes, n = _count_hashes(leaf_hashes, "leaf_hashes")
    out = ctypes.create_string_buffer(HASH_SIZE)
    _check("root", lib.rq_root(leaf_hashes, n, out))
    return out.raw


def subtree_roots(leaf_hashes: bytes, width: int) -> bytes:
    """The roots of consecutive perfect subtrees of ``width`` leaves each, concatenated.

    ``width`` is a power of two and the number of leaf hashes a multiple of it. A level-k row of a c2sp
    tlog-tiles tile holds the roots of 256**k-leaf subtrees: ``subtree_roots(leaves, 256**k)``.
    """
    lib = _lib()
    leaf_hashes, n = _count_hashes(leaf_hashes, "leaf_hashes")
    _check_u64(width, "width")
    if width == 0 or width & (width - 1):
        raise ValueError(f"width must be a power of two (1, 2, 4, ...), got {width}")
    if n % width:
        raise ValueError(f"{n} leaf hashes are not a whole number of subtrees of width {width}")
    out = ctypes.create_string_buffer(HASH_SIZE * (n // width))
    _check("subtree_roots", lib.rq_subtree_roots(leaf_hashes, n, width, out))
    return out.raw


def verify_inclusion(index: int, size: int, leaf_hash: bytes, proof: Sequence[bytes], root: bytes) -> bool:
    """Whether ``proof`` proves that ``leaf_hash`` is leaf ``index`` of the tree of ``size`` leaves whose
    root is ``root`` (RFC 9162 §2.1.3.2). ``index >= size`` makes an invalid proof, not an error.

    The size is bound only through the root: take ``size`` and ``root`` from the same signed checkpoint.
    """
    lib = _lib()
    leaf, nodes, root_hash = _inclusion_args((index, size, leaf_hash, proof, root), where="")
    result: int = lib.rq_verify_inclusion(index, size, leaf, nodes, len(nodes) // HASH_SIZE, root_hash)
    _check("verify_inclusion", result)
    return result == 1


def verify_inclusions(items: Sequence[tuple[int, int, bytes, Sequence[bytes], bytes]]) -> list[bool]:
    """:func:`verify_inclusion` of each ``(index, size, leaf_hash, proof, root)``, in one native call."""
    lib = _lib()
    count = len(items)
    checked = [_inclusion_args(item, where=f"items[{i}]: ") for i, item in enumerate(items)]
    indexes = array("Q", (item[0] for item in items))
    sizes = array("Q", (item[1] for item in items))
    proof_offsets = (ctypes.c_size_t * (count + 1))(
        *accumulate((len(nodes) // HASH_SIZE for _, nodes, _ in checked), initial=0)
    )
    results = (ctypes.c_uint8 * count)()
    rc = lib.rq_verify_inclusions(
        count,
        _u64_array(indexes),
        _u64_array(sizes),
        b"".join(leaf for leaf, _, _ in checked),
        b"".join(nodes for _, nodes, _ in checked),
        proof_offsets,
        b"".join(root_hash for _, _, root_hash in checked),
        results,
    )
    _check("verify_inclusions", rc)
    return [value == 1 for value in results]


def sha256_floor(entries: Sequence[bytes]) -> bytes:
    """Benchmark floor for ``root(hash_leaves(entries))``: the same SHA-256 work without the tree.

    As many SHA-256 computations of the same sizes (one per entry of 1 + its length bytes, then
    ``len(entries) - 1`` of 65 bytes), in a bare native loop; returns the last digest, which means nothing.
    """
    lib = _lib()
    data, offsets = _pack(entries)
    out = ctypes.create_string_buffer(HASH_SIZE)
    _check("sha256_floor", lib.rq_sha256_floor(data, _u64_array(offsets), len(entries), out))
    return out.raw


def _lib() -> ctypes.CDLL:
    state = _state.get("lib")
    if state is None:
        with _lock:
            state = _state.get("lib")
            if state is None:
                try:
                    state = _load(native_lib_dir())
                except NativeLibraryUnavailable as exc:
                    state = str(exc)
                _state["lib"] = state
    if isinstance(state, str):
        raise NativeLibraryUnavailable(state)
    return state


def _load(lib_dir: Path) -> ctypes.CDLL:
    path = lib_dir / LIBRARY_FILE
    if not path.is_file():
        raise NativeLibraryUnavailable(f"{LIBRARY_FILE} not found in {lib_dir}; {_BUILD_HINT}")
    # RUNPATH $ORIGIN finds the libcrypto anyway; loading it first, by absolute path, makes sure the one
    # beside the library is used. Locally: this OpenSSL 1.1.1 must never interpose on other libraries.
    try:
        _handles.extend(
            ctypes.CDLL(str(p), mode=ctypes.RTLD_LOCAL) for p in sorted(lib_dir.glob(LIBCRYPTO_GLOB))
        )
        lib = ctypes.CDLL(str(path), mode=ctypes.RTLD_LOCAL)
    except OSError as exc:
        raise NativeLibraryUnavailable(f"cannot load {path}: {exc}; {_BUILD_HINT}") from exc
    try:
        for name, argtypes in _SIGNATURES.items():
            function = getattr(lib, name)
            function.argtypes = argtypes
            function.restype = ctypes.c_int
    except AttributeError as exc:
        raise NativeLibraryUnavailable(f"{path} is not the expected library: {exc}; {_BUILD_HINT}") from exc
    abi: int = lib.rq_abi_version()
    if abi != _ABI_VERSION:
        raise NativeLibraryUnavailable(
            f"{path} has ABI version {abi}, expected {_ABI_VERSION} (a stale build?); {_BUILD_HINT}"
        )
    return lib


def _check(function: str, rc: int) -> None:
    if rc < 0:  # only if the validation here missed something
        raise ValueError(f"rq_{function}: {_ERRORS.get(rc, f'error {rc}')}")


def _pack(entries: Sequence[bytes]) -> tuple[bytes, array[int]]:
    """One buffer with every entry and the n + 1 offsets that delimit them."""
    if isinstance(entries, bytes | bytearray | memoryview | str):
        raise TypeError("entries must be a sequence of bytes, not one bytes-like value")
    data = b"".join(entries)  # TypeError for an entry that is not bytes-like
    return data, array("Q", accumulate(map(len, entries), initial=0))


def _u64_array(values: array[int]) -> ctypes.Array[ctypes.c_uint64]:
    """A ctypes view of an ``array("Q")`` (no copy); the array must outlive the call."""
    return (ctypes.c_uint64 * len(values)).from_buffer(values)


def _as_bytes(value: bytes, what: str) -> bytes:
    """``value`` itself when it is ``bytes`` (no copy), else a copy of a bytes-like ``value``."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, bytearray | memoryview):
        return bytes(value)
    raise TypeError(f"{what} must be bytes, got {type(value).__name__}")


def _count_hashes(value: bytes, what: str) -> tuple[bytes, int]:
    value = _as_bytes(value, what)
    if len(value) % HASH_SIZE:
        raise ValueError(f"{what} must be a whole number of {HASH_SIZE}-byte hashes, got {len(value)} bytes")
    return value, len(value) // HASH_SIZE


def _check_hash(value: bytes, what: str) -> bytes:
    value = _as_bytes(value, what)
    if len(value) != HASH_SIZE:
        raise ValueError(f"{what} must be {HASH_SIZE} bytes, got {len(value)}")
    return value


def _check_u64(value: int, what: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what} must be an int, got {type(value).__name__}")
    if not 0 <= value <= _MAX_U64:
        raise ValueError(f"{what} must be in [0, 2**64), got {value}")


def _inclusion_args(claim: _Claim, *, where: str) -> tuple[bytes, bytes, bytes]:
    """Validates one inclusion claim; returns its leaf hash, proof (joined) and root as bytes."""
    index, size, leaf_hash, proof, root_hash = claim
    _check_u64(index, f"{where}index")
    _check_u64(size, f"{where}size")
    if isinstance(proof, bytes | bytearray | memoryview | str):
        raise TypeError(
            f"{where}proof must be a sequence of {HASH_SIZE}-byte hashes, not one bytes-like value"
        )
    nodes = [_check_hash(node, f"{where}proof[{number}]") for number, node in enumerate(proof)]
    return (
        _check_hash(leaf_hash, f"{where}leaf_hash"),
        b"".join(nodes),
        _check_hash(root_hash, f"{where}root"),
    )
