"""BN254 arithmetic from MCL (through the MIT-licensed ``mclbn256`` wheel), loaded on first use.

Importing ``mclbn256`` costs 110-290 ms (it writes its shared library to a temporary file and loads it),
so it happens in :func:`native`, once per process, not at import time. Only the handful of C functions
Groth16 verification needs are bound, each with explicit ``argtypes`` so ctypes passes pointers and
never structures by value.

``mclbn256`` initialises MCL with Nogami's BN254 (curve id 0), not the BN254 of Ethereum and snarkjs
(``MCL_BN_SNARK1``, id 4): with the default every snarkjs point is off the curve. MCL's curve is process
global, so nothing else in the process may use ``mclbn256`` with another curve.
"""

from __future__ import annotations

import ctypes
import importlib
import threading
from ctypes import POINTER, c_int, c_int64, c_size_t, c_uint64, c_void_p
from typing import Any, Final

_MCL_BN_SNARK1: Final = 4
# MCLBN_COMPILED_TIME_VAR of the 256-bit build: MCLBN_FR_UNIT_SIZE * 10 + MCLBN_FP_UNIT_SIZE.
_COMPILED_TIME_VAR: Final = 4 * 10 + 4

P: Final = 21888242871839275222246405745257275088696311157297823662689037894645226208583
R: Final = 21888242871839275222246405745257275088548364400416034343698204186575808495617


class Fp(ctypes.Structure):
    _fields_ = (("d", c_uint64 * 4),)


class Fr(ctypes.Structure):
    _fields_ = (("d", c_uint64 * 4),)


class Fp2(ctypes.Structure):
    _fields_ = (("c0", Fp), ("c1", Fp))


class G1(ctypes.Structure):
    """Jacobian coordinates, Montgomery form (the ``mclBnG1`` of ``bn.h``)."""

    _fields_ = (("x", Fp), ("y", Fp), ("z", Fp))


class G2(ctypes.Structure):
    _fields_ = (("x", Fp2), ("y", Fp2), ("z", Fp2))


class GT(ctypes.Structure):
    _fields_ = (("d", Fp * 12),)


_G1P = POINTER(G1)
_G2P = POINTER(G2)
_GTP = POINTER(GT)
_FrP = POINTER(Fr)
_FpP = POINTER(Fp)
_U64P = POINTER(c_uint64)

_SIGNATURES: Final[dict[str, tuple[Any, list[Any]]]] = {
    "mclBn_init": (c_int, [c_int, c_int]),
    "mclBn_getCurveType": (c_int, []),
    "mclBn_verifyOrderG1": (None, [c_int]),
    "mclBn_verifyOrderG2": (None, [c_int]),
    "mclBn_getUint64NumToPrecompute": (c_int, []),
    "mclBnFp_deserialize": (c_size_t, [_FpP, c_void_p, c_size_t]),
    "mclBnFp_setInt": (None, [_FpP, c_int64]),
    "mclBnFr_setLittleEndianMod": (c_int, [_FrP, c_void_p, c_size_t]),
    "mclBnG1_isValid": (c_int, [_G1P]),
    "mclBnG1_neg": (None, [_G1P, _G1P]),
    "mclBnG1_add": (None, [_G1P, _G1P, _G1P]),
    "mclBnG1_mul": (None, [_G1P, _G1P, _FrP]),
    "mclBnG1_mulVec": (None, [_G1P, _G1P, _FrP, c_size_t]),
    "mclBnG1_normalize": (None, [_G1P, _G1P]),
    "mclBnG2_isValid": (c_int, [_G2P]),
    "mclBnG2_isValidOrder": (c_int, [_G2P]),
    "mclBnG2_isZero": (c_int, [_G2P]),
    "mclBnG2_add": (None, [_G2P, _G2P, _G2P]),
    "mclBn_precomputeG2": (None, [_U64P, _G2P]),
    "mclBn_millerLoop": (None, [_GTP, _G1P, _G2P]),
    "mclBn_millerLoopVec": (None, [_GTP, _G1P, _G2P, c_size_t]),
    "mclBn_precomputedMillerLoop": (None, [_GTP, _G1P, _U64P]),
    "mclBn_precomputedMillerLoop2": (None, [_GTP, _G1P, _U64P, _G1P, _U64P]),
    "mclBnGT_mul": (None, [_GTP, _GTP, _GTP]),
    "mclBnGT_pow": (None, [_GTP, _GTP, _FrP]),
    "mclBn_finalExp": (None, [_GTP, _GTP]),
    "mclBnGT_isOne": (c_int, [_GTP]),
}


class Native:
    """The bound library plus the constants derived from it; one instance per process."""

    def __init__(self, lib: ctypes.CDLL) -> None:
        for name, (restype, argtypes) in _SIGNATURES.items():
            fn = getattr(lib, name)
            fn.restype = restype
            fn.argtypes = argtypes
        if lib.mclBn_init(_MCL_BN_SNARK1, _COMPILED_TIME_VAR) != 0 or lib.mclBn_getCurveType() != 4:
            raise RuntimeError("MCL refused to initialise the BN254 (SNARK1) curve")
        # Subgroup checks are done explicitly where they are needed (G2), not hidden in loading.
        lib.mclBn_verifyOrderG1(0)
        lib.mclBn_verifyOrderG2(0)
        self.lib = lib
        self.precompute_words: int = lib.mclBn_getUint64NumToPrecompute()
        self.fp_one = Fp()
        lib.mclBnFp_setInt(self.fp_one, 1)

    def fp(self, value: int) -> Fp:
        """An Fp from a canonical integer (the caller checked 0 <= value < P)."""
        out = Fp()
        if self.lib.mclBnFp_deserialize(out, value.to_bytes(32, "little"), 32) != 32:
            raise ValueError("MCL rejected a field element")
        return out

    def fr(self, value: int, out: Fr | None = None) -> Fr:
        """An Fr from an integer in [0, 2^256); reduced modulo R."""
        target = Fr() if out is None else out
        self.lib.mclBnFr_setLittleEndianMod(target, value.to_bytes(32, "little"), 32)
        return target

    def g1_affine(self, x: int, y: int) -> G1:
        """A G1 point from affine coordinates the caller already checked to be on the curve."""
        return G1(self.fp(x), self.fp(y), self.fp_one)

    def g2_affine(self, x: tuple[int, int], y: tuple[int, int]) -> G2:
        """A G2 point from affine coordinates (c0, c1); not yet checked to be on the curve."""
        one = Fp2(self.fp_one, Fp())
        return G2(Fp2(self.fp(x[0]), self.fp(x[1])), Fp2(self.fp(y[0]), self.fp(y[1])), one)

    def precompute(self, q: G2) -> ctypes.Array[c_uint64]:
        buf = (c_uint64 * self.precompute_words)()
        self.lib.mclBn_precomputeG2(buf, q)
        return buf


_lock = threading.Lock()
_native: Native | None = None


def native() -> Native:
    global _native  # noqa: PLW0603 - one MCL instance per process, built on first use
    if _native is None:
        with _lock:
            if _native is None:
                module = importlib.import_module("mclbn256.mclbn256")
                _native = Native(module.lib)
    return _native
