"""Shamir secret sharing, k-of-n, byte-wise over GF(2^8) (the AES field, x^8 + x^4 + x^3 + x + 1).

``split`` turns a secret of 1..1024 bytes into ``shares`` shares, any ``threshold`` of which recover it
with ``combine``; fewer reveal nothing about it (every secret of the same length is equally consistent
with any ``threshold - 1`` shares). Each byte position has its own random polynomial of degree
``threshold - 1`` whose constant term is the secret byte; share ``i`` holds the polynomials at ``x = i``.

Randomness: ``split`` draws every coefficient with a single ``randbytes((threshold - 1) * len(secret))``
call. The stream is coefficient-major: bytes ``[(j - 1) * L, j * L)`` are the coefficients of ``x^j``
for byte positions ``0..L-1``. Inject ``randbytes`` only in tests; the default is ``os.urandom``.

Side channels: field arithmetic uses no lookup tables and no branches on secret data. Multiplication is
shift-and-xor with arithmetic masks, inversion is ``a^254`` by a fixed square-and-multiply chain, and
the bulk work multiplies all byte positions at once, packed into one integer (SWAR), by a public scalar
(a share index or a Lagrange coefficient). CPython integers are not a constant-time substrate (their
internal size follows the value's magnitude), so this is the best pure Python offers, not a guarantee.

Shares are not authenticated: a corrupted share makes ``combine`` return a wrong secret, so the caller
must verify the result (for example, the recovered key must open an AEAD envelope).
"""

from __future__ import annotations

import hmac
import os
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from reliquary.errors import InvalidRequestError

__all__ = [
    "MAX_SECRET_LEN",
    "MAX_SHARES",
    "MIN_THRESHOLD",
    "SHARE_FORMAT_VERSION",
    "Share",
    "combine",
    "split",
]

MIN_THRESHOLD = 2
MAX_SHARES = 255  # share indices are the non-zero elements of GF(2^8)
MAX_SECRET_LEN = 1024
SHARE_FORMAT_VERSION = 1

_MAGIC = b"RQS"
_HEADER = struct.Struct(">3sBBBH")  # magic, version, index, threshold, value length
_REDUCTION = 0x1B  # x^8 = x^4 + x^3 + x + 1 (0x11B without the x^8 term)


def _in_range(value: object, low: int, high: int) -> bool:
    """``value`` is an ``int`` (not a ``bool``) with ``low <= value <= high``."""
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _check_value(value: object) -> None:
    if not isinstance(value, bytes):
        raise InvalidRequestError("share value must be bytes")
    if not 1 <= len(value) <= MAX_SECRET_LEN:
        raise InvalidRequestError(
            f"share value must be 1..{MAX_SECRET_LEN} bytes long", length=len(value), max=MAX_SECRET_LEN
        )


def _check_threshold(threshold: object) -> None:
    if not _in_range(threshold, MIN_THRESHOLD, MAX_SHARES):
        raise InvalidRequestError(f"threshold must be an integer in {MIN_THRESHOLD}..{MAX_SHARES}")


@dataclass(frozen=True, slots=True, repr=False, eq=False)
class Share:
    """One share: the point ``(index, value)`` of every byte's polynomial, plus the threshold ``k``.

    ``value`` is secret material: it never appears in ``repr``, errors or logs, and equality compares it
    in constant time.
    """

    index: int
    threshold: int
    value: bytes

    def __post_init__(self) -> None:
        if not _in_range(self.index, 1, MAX_SHARES):
            raise InvalidRequestError(f"share index must be an integer in 1..{MAX_SHARES}")
        _check_threshold(self.threshold)
        _check_value(self.value)

    def to_bytes(self) -> bytes:
        """``b"RQS" | u8 version | u8 index | u8 threshold | u16 length (big-endian) | value``."""
        header = _HEADER.pack(_MAGIC, SHARE_FORMAT_VERSION, self.index, self.threshold, len(self.value))
        return header + self.value

    @classmethod
    def from_bytes(cls, data: bytes) -> Share:
        """Parse ``to_bytes`` output strictly; anything else raises ``InvalidRequestError``."""
        if not isinstance(data, bytes | bytearray | memoryview):
            raise InvalidRequestError("an encoded share must be bytes")
        data = bytes(data)
        if len(data) < _HEADER.size:
            raise InvalidRequestError("encoded share is too short", length=len(data))
        magic, version, index, threshold, length = _HEADER.unpack_from(data)
        if magic != _MAGIC:
            raise InvalidRequestError("not an encoded share (bad magic)")
        if version != SHARE_FORMAT_VERSION:
            raise InvalidRequestError("unsupported share format version", version=version)
        if len(data) != _HEADER.size + length:
            raise InvalidRequestError(
                "encoded share length does not match its header",
                length=len(data),
                expected=_HEADER.size + length,
            )
        return cls(index=index, threshold=threshold, value=data[_HEADER.size :])

    def __repr__(self) -> str:
        return f"Share(index={self.index}, threshold={self.threshold})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Share):
            return NotImplemented
        same_value = hmac.compare_digest(self.value, other.value)
        return self.index == other.index and self.threshold == other.threshold and same_value

    def __hash__(self) -> int:
        return hash((self.index, self.threshold, len(self.value)))


# --- GF(2^8) ----------------------------------------------------------------------------------------
def _gf_mul(a: int, b: int) -> int:
    """``a * b`` in GF(2^8); both in 0..255. No tables, no branches on ``a`` or ``b``."""
    result = 0
    for _ in range(8):
        result ^= a & -(b & 1)  # -(bit) is all ones or zero
        a = ((a << 1) & 0xFF) ^ (_REDUCTION & -(a >> 7))
        b >>= 1
    return result


def _gf_inv(a: int) -> int:
    """``a^-1`` in GF(2^8) as ``a^254`` (so ``0 -> 0``); a fixed chain with no branches on ``a``."""
    square = _gf_mul(a, a)  # a^2
    result = square
    for _ in range(6):  # multiply in a^4, a^8, ..., a^128: 2 + 4 + ... + 128 = 254
        square = _gf_mul(square, square)
        result = _gf_mul(result, square)
    return result


class _Lanes:
    """Masks for multiplying ``length`` GF(2^8) elements packed big-endian into one integer."""

    __slots__ = ("full", "high_clear", "length", "low_bits")

    def __init__(self, length: int) -> None:
        self.length = length
        self.full = (1 << (8 * length)) - 1
        self.low_bits = int.from_bytes(b"\x01" * length, "big")
        self.high_clear = self.full ^ self.low_bits  # 0xFEFE...FE: drops bits shifted across lanes

    def scale(self, packed: int, scalar: int) -> int:
        """Multiply every lane of ``packed`` by ``scalar`` (0..255) with masks only."""
        result = 0
        for bit in range(8):
            result ^= packed & (self.full & -((scalar >> bit) & 1))
            overflow = (packed >> 7) & self.low_bits  # each lane's x^7 bit, moved to its x^0 position
            packed = ((packed << 1) & self.high_clear) ^ (overflow * _REDUCTION)
        return result

    def pack(self, data: bytes) -> int:
        return int.from_bytes(data, "big")

    def unpack(self, packed: int) -> bytes:
        return packed.to_bytes(self.length, "big")


# --- sharing ----------------------------------------------------------------------------------------
def split(
    secret: bytes,
    *,
    threshold: int,
    shares: int,
    randbytes: Callable[[int], bytes] = os.urandom,
) -> list[Share]:
    """Split ``secret`` into ``shares`` shares with indices ``1..shares``; any ``threshold`` recover it."""
    if not isinstance(secret, bytes | bytearray | memoryview):
        raise InvalidRequestError("secret must be bytes")
    secret = bytes(secret)
    if not 1 <= len(secret) <= MAX_SECRET_LEN:
        raise InvalidRequestError(
            f"secret must be 1..{MAX_SECRET_LEN} bytes long", length=len(secret), max=MAX_SECRET_LEN
        )
    _check_threshold(threshold)
    if not _in_range(shares, threshold, MAX_SHARES):
        raise InvalidRequestError(
            f"shares must be an integer in threshold..{MAX_SHARES}", threshold=threshold
        )

    length = len(secret)
    wanted = (threshold - 1) * length
    stream = randbytes(wanted)
    if not isinstance(stream, bytes) or len(stream) != wanted:
        raise InvalidRequestError("randbytes returned the wrong number of bytes", expected=wanted)

    lanes = _Lanes(length)
    # coefficients[j] holds the x^j coefficient of every byte position's polynomial.
    coefficients = [lanes.pack(secret)]
    coefficients += [lanes.pack(stream[j * length : (j + 1) * length]) for j in range(threshold - 1)]

    result = []
    for index in range(1, shares + 1):
        acc = coefficients[-1]
        for coefficient in reversed(coefficients[:-1]):  # Horner at x = index (public)
            acc = lanes.scale(acc, index) ^ coefficient
        result.append(Share(index=index, threshold=threshold, value=lanes.unpack(acc)))
    return result


def combine(shares: Sequence[Share]) -> bytes:
    """Recover the secret from at least ``threshold`` shares of one split.

    Uses exactly the first ``threshold`` shares (Lagrange interpolation at ``x = 0``); the others are
    validated but not used, so they cannot detect a corrupted share.
    """
    shares = list(shares)
    if not shares:
        raise InvalidRequestError("no shares given")
    if not all(isinstance(share, Share) for share in shares):
        raise InvalidRequestError("every share must be a Share")
    threshold = shares[0].threshold
    length = len(shares[0].value)
    if any(share.threshold != threshold for share in shares):
        raise InvalidRequestError("shares have different thresholds (they come from different splits)")
    if any(len(share.value) != length for share in shares):
        raise InvalidRequestError("shares have different lengths (they come from different splits)")
    indices = [share.index for share in shares]
    if not all(_in_range(index, 1, MAX_SHARES) for index in indices):
        raise InvalidRequestError(f"share index must be an integer in 1..{MAX_SHARES}")
    if len(set(indices)) != len(indices):
        raise InvalidRequestError("duplicate share indices")
    if len(shares) < threshold:
        raise InvalidRequestError(
            f"need at least {threshold} shares, got {len(shares)}", threshold=threshold, got=len(shares)
        )

    used = shares[:threshold]
    xs = [share.index for share in used]
    lanes = _Lanes(length)
    secret = 0
    for j, share in enumerate(used):
        # Lagrange basis at 0: l_j = prod_{m != j} x_m / (x_m - x_j); subtraction is xor.
        numerator = 1
        denominator = 1
        for m, x_m in enumerate(xs):
            if m != j:  # branches on public indices only
                numerator = _gf_mul(numerator, x_m)
                denominator = _gf_mul(denominator, x_m ^ xs[j])
        basis = _gf_mul(numerator, _gf_inv(denominator))
        secret ^= lanes.scale(lanes.pack(share.value), basis)
    return lanes.unpack(secret)
