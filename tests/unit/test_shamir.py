"""Shamir secret sharing over GF(2^8): field arithmetic, known answers, properties, strict parsing."""

from __future__ import annotations

import itertools
import os
import random
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reliquary.crypto.shamir import (
    MAX_SECRET_LEN,
    Share,
    _gf_inv,
    _gf_mul,
    _Lanes,
    combine,
    split,
)
from reliquary.errors import InvalidRequestError


# --- an independent, slow reference field -----------------------------------------------------------
def _reference_mul(a: int, b: int) -> int:
    """Schoolbook carry-less product, then reduction modulo 0x11B (branches are fine in a test)."""
    product = 0
    for bit in range(8):
        if (b >> bit) & 1:
            product ^= a << bit
    for bit in range(14, 7, -1):
        if (product >> bit) & 1:
            product ^= 0x11B << (bit - 8)
    return product


_MUL = [[_reference_mul(a, b) for b in range(256)] for a in range(256)]
_INV = [0] + [next(b for b in range(1, 256) if _MUL[a][b] == 1) for a in range(1, 256)]


def _stream(data: bytes) -> Callable[[int], bytes]:
    """A randbytes that returns ``data`` once, and insists on being asked for exactly that much."""
    calls: list[int] = []

    def randbytes(n: int) -> bytes:
        assert not calls, "split must draw its randomness in one call"
        calls.append(n)
        assert n == len(data)
        return data

    return randbytes


def _seeded(seed: int) -> Callable[[int], bytes]:
    return random.Random(seed).randbytes


def _interpolate(points: list[tuple[int, int]]) -> list[int]:
    """Coefficients (lowest first) of the unique polynomial of degree < len(points) through them."""
    coefficients = [0] * len(points)
    for j, (x_j, y_j) in enumerate(points):
        basis = [1]  # prod_{m != j} (x - x_m) / (x_j - x_m); minus is xor in GF(2^8)
        denominator = 1
        for m, (x_m, _) in enumerate(points):
            if m == j:
                continue
            shifted = [0, *basis]  # x * basis
            basis = [shifted[i] ^ (_MUL[x_m][basis[i]] if i < len(basis) else 0) for i in range(len(shifted))]
            denominator = _MUL[denominator][x_j ^ x_m]
        scale = _MUL[y_j][_INV[denominator]]
        for i, c in enumerate(basis):
            coefficients[i] ^= _MUL[scale][c]
    return coefficients


def _evaluate(coefficients: list[int], x: int) -> int:
    result = 0
    for c in reversed(coefficients):
        result = _MUL[result][x] ^ c
    return result


# --- GF(2^8) ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("a", "b", "product"),
    [
        (0x53, 0xCA, 0x01),  # inverses in the AES field (FIPS-197 / the S-box construction)
        (0x57, 0x83, 0xC1),  # FIPS-197 section 4.2
        (0x57, 0x13, 0xFE),  # FIPS-197 section 4.2.1
        (0x57, 0x02, 0xAE),
        (0x57, 0x04, 0x47),
        (0x57, 0x08, 0x8E),
        (0x57, 0x10, 0x07),
        (0x80, 0x02, 0x1B),  # x^7 * x = x^8 = x^4 + x^3 + x + 1
        (0x00, 0xFF, 0x00),
        (0x01, 0xFF, 0xFF),
    ],
)
def test_gf_mul_known_aes_values(a: int, b: int, product: int) -> None:
    assert _gf_mul(a, b) == product
    assert _gf_mul(b, a) == product


def test_reference_field_agrees_with_fips_197() -> None:
    assert _reference_mul(0x57, 0x83) == 0xC1
    assert _reference_mul(0x53, 0xCA) == 0x01


def test_gf_mul_matches_reference_on_all_65536_pairs() -> None:
    mismatches = [(a, b) for a in range(256) for b in range(256) if _gf_mul(a, b) != _MUL[a][b]]
    assert mismatches == []


def test_gf_inv_on_every_element() -> None:
    assert _gf_inv(0) == 0  # a^254 of 0; combine never inverts 0 (indices are distinct and non-zero)
    assert _gf_inv(0x53) == 0xCA
    assert _gf_inv(0xCA) == 0x53
    assert [_gf_inv(a) for a in range(1, 256)] == _INV[1:]
    assert all(_gf_mul(a, _gf_inv(a)) == 1 for a in range(1, 256))


@given(data=st.binary(min_size=1, max_size=MAX_SECRET_LEN), scalar=st.integers(0, 255))
def test_packed_lanes_multiply_like_the_scalar_field(data: bytes, scalar: int) -> None:
    lanes = _Lanes(len(data))
    packed = lanes.scale(lanes.pack(data), scalar)
    assert lanes.unpack(packed) == bytes(_MUL[b][scalar] for b in data)


# --- known answers ----------------------------------------------------------------------------------
def test_known_answer_one_byte_threshold_2() -> None:
    # P(x) = 0x2A + 0x80 x.  0x80 * 2 = x^8 = 0x1B, so:
    #   P(1) = 0x2A ^ 0x80               = 0xAA
    #   P(2) = 0x2A ^ 0x1B               = 0x31
    #   P(3) = 0x2A ^ 0x80 ^ 0x1B (=3a)  = 0xB1
    shares = split(b"\x2a", threshold=2, shares=3, randbytes=_stream(b"\x80"))
    assert [(s.index, s.threshold, s.value) for s in shares] == [
        (1, 2, b"\xaa"),
        (2, 2, b"\x31"),
        (3, 2, b"\xb1"),
    ]
    # Lagrange at 0 from shares 2 and 3: l_2 = 3 / (2^3) = 3, l_3 = 2 / (3^2) = 2;
    # 3 * 0x31 = 0x31 ^ 0x62 = 0x53 and 2 * 0xB1 = 0x62 ^ 0x1B = 0x79; 0x53 ^ 0x79 = 0x2A.
    assert combine(shares[1:]) == b"\x2a"
    assert combine([shares[2], shares[0]]) == b"\x2a"


def test_known_answer_one_byte_threshold_3() -> None:
    # P(x) = 0x2A + 0x80 x + 0x01 x^2 (the stream is x^1 coefficient, then x^2 coefficient).
    #   x=1: 0x2A ^ 0x80 ^ 0x01                            = 0xAB
    #   x=2: 0x80*2 = 0x1B, 2^2 = 0x04:  0x2A ^ 0x1B ^ 0x04 = 0x35
    #   x=3: 0x80*3 = 0x1B ^ 0x80 = 0x9B, 3^2 = (x+1)^2 = x^2+1 = 0x05:  0x2A ^ 0x9B ^ 0x05 = 0xB4
    #   x=4: 0x80*4 = 0x1B*2 = 0x36, 4^2 = 0x10:  0x2A ^ 0x36 ^ 0x10 = 0x0C
    shares = split(b"\x2a", threshold=3, shares=4, randbytes=_stream(b"\x80\x01"))
    assert [s.value for s in shares] == [b"\xab", b"\x35", b"\xb4", b"\x0c"]
    # From shares 1, 2, 3 every Lagrange coefficient at 0 is 1 (e.g. l_1 = 2*3 / ((2^1)(3^1)) = 6/6),
    # so the secret is 0xAB ^ 0x35 ^ 0xB4 = 0x2A.
    assert combine(shares[:3]) == b"\x2a"
    assert combine(shares[1:]) == b"\x2a"


def test_known_answer_stream_layout_is_coefficient_major() -> None:
    # Two bytes, k = 3: the stream is [x^1 coeff of byte 0, of byte 1, x^2 coeff of byte 0, of byte 1].
    # Byte 0: P0(x) = 1 x + 3 x^2; byte 1: P1(x) = 2 x + 4 x^2 (secret bytes are zero).
    #   x=1: P0 = 1 ^ 3 = 0x02,               P1 = 2 ^ 4 = 0x06
    #   x=2: P0 = 2 ^ 3*4 = 0x02 ^ 0x0C = 0x0E, P1 = 2*2 ^ 4*4 = 0x04 ^ 0x10 = 0x14
    #   x=3: 3^2 = 5; P0 = 3 ^ 3*5 = 0x03 ^ 0x0F = 0x0C, P1 = 2*3 ^ 4*5 = 0x06 ^ 0x14 = 0x12
    shares = split(b"\x00\x00", threshold=3, shares=3, randbytes=_stream(b"\x01\x02\x03\x04"))
    assert [s.value for s in shares] == [b"\x02\x06", b"\x0e\x14", b"\x0c\x12"]
    assert combine(shares) == b"\x00\x00"


def test_split_draws_threshold_minus_one_bytes_per_secret_byte_in_one_call() -> None:
    requested: list[int] = []

    def randbytes(n: int) -> bytes:
        requested.append(n)
        return bytes(n)

    split(bytes(32), threshold=5, shares=7, randbytes=randbytes)
    assert requested == [4 * 32]


def test_default_randomness_is_fresh() -> None:
    secret = bytes(32)
    first = split(secret, threshold=2, shares=2)
    second = split(secret, threshold=2, shares=2)
    assert first[0].value != second[0].value  # fails with probability 2^-256
    assert combine(first) == combine(second) == secret


# --- properties -------------------------------------------------------------------------------------
@st.composite
def _split_params(draw: st.DrawFn, max_shares: int = 12) -> tuple[bytes, int, int, int]:
    secret = draw(st.binary(min_size=1, max_size=64))
    shares = draw(st.integers(2, max_shares))
    threshold = draw(st.integers(2, shares))
    seed = draw(st.integers(0, 2**64))
    return secret, threshold, shares, seed


@given(params=_split_params(), data=st.data())
def test_any_threshold_subset_recovers_the_secret(
    params: tuple[bytes, int, int, int], data: st.DataObject
) -> None:
    secret, threshold, count, seed = params
    shares = split(secret, threshold=threshold, shares=count, randbytes=_seeded(seed))
    assert [s.index for s in shares] == list(range(1, count + 1))
    assert all(s.threshold == threshold and len(s.value) == len(secret) for s in shares)

    exactly_k = data.draw(st.permutations(shares).map(lambda p: p[:threshold]), label="k shares")
    assert combine(exactly_k) == secret

    size = data.draw(st.integers(threshold, count), label="size")
    more = data.draw(st.permutations(shares).map(lambda p: p[:size]), label="k or more shares")
    assert combine(more) == secret


@given(params=_split_params(max_shares=8), other=st.data())
def test_fewer_than_threshold_shares_are_consistent_with_every_secret(
    params: tuple[bytes, int, int, int], other: st.DataObject
) -> None:
    """Constructive proof: for any other secret B there is a randomness stream under which
    split(B) yields exactly the same k-1 shares, so k-1 shares carry no information about the secret."""
    secret_a, threshold, count, seed = params
    shares_a = split(secret_a, threshold=threshold, shares=count, randbytes=_seeded(seed))
    seen = other.draw(st.permutations(shares_a).map(lambda p: p[: threshold - 1]), label="k-1 shares")
    secret_b = other.draw(st.binary(min_size=len(secret_a), max_size=len(secret_a)), label="secret B")

    # Byte-wise, the unique polynomial of degree <= k-1 through (0, B[p]) and the k-1 seen points.
    polynomials = [
        _interpolate([(0, secret_b[p])] + [(s.index, s.value[p]) for s in seen]) for p in range(len(secret_b))
    ]
    for p, polynomial in enumerate(polynomials):
        assert polynomial[0] == secret_b[p]
        assert all(_evaluate(polynomial, s.index) == s.value[p] for s in seen)
    # Coefficient-major stream: the x^1 coefficients of every byte, then the x^2 ones, ...
    stream = bytes(polynomial[j] for j in range(1, threshold) for polynomial in polynomials)

    shares_b = split(secret_b, threshold=threshold, shares=count, randbytes=_stream(stream))
    assert [shares_b[s.index - 1].value for s in seen] == [s.value for s in seen]
    assert combine(shares_b) == secret_b


@given(params=_split_params(), data=st.data())
def test_fewer_than_threshold_shares_raise_rather_than_return_a_wrong_secret(
    params: tuple[bytes, int, int, int], data: st.DataObject
) -> None:
    secret, threshold, count, seed = params
    shares = split(secret, threshold=threshold, shares=count, randbytes=_seeded(seed))
    size = data.draw(st.integers(1, threshold - 1), label="size")
    subset = data.draw(st.permutations(shares).map(lambda p: p[:size]), label="too few")
    with pytest.raises(InvalidRequestError, match=f"need at least {threshold} shares"):
        combine(subset)


@pytest.mark.parametrize(("threshold", "count", "length"), [(255, 255, 16), (2, 255, MAX_SECRET_LEN)])
def test_extremes(threshold: int, count: int, length: int) -> None:
    secret = random.Random(7).randbytes(length)
    shares = split(secret, threshold=threshold, shares=count, randbytes=_seeded(8))
    assert shares[-1].index == 255
    assert combine(shares[::-1]) == secret


# --- validation -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("threshold", "count"),
    [(1, 3), (0, 3), (-2, 3), (4, 3), (2, 1), (2, 256), (256, 256), (2, 0), (True, 3), (2, 3.0), ("2", 3)],
)
def test_split_rejects_bad_threshold_or_share_count(threshold: Any, count: Any) -> None:
    with pytest.raises(InvalidRequestError):
        split(b"secret", threshold=threshold, shares=count)


@pytest.mark.parametrize("secret", [b"", bytes(MAX_SECRET_LEN + 1), "secret", None, [1, 2]])
def test_split_rejects_bad_secrets(secret: Any) -> None:
    with pytest.raises(InvalidRequestError):
        split(secret, threshold=2, shares=3)


def test_split_accepts_the_length_bounds_and_bytes_like_secrets() -> None:
    secrets: list[Any] = [b"\x00", bytes(MAX_SECRET_LEN), bytearray(b"ab"), memoryview(b"abc")]
    for secret in secrets:
        assert combine(split(secret, threshold=2, shares=2)) == bytes(secret)


@pytest.mark.parametrize("stream", [b"", b"\x00", b"\x00" * 3, "ab"])
def test_split_rejects_a_randbytes_of_the_wrong_length(stream: Any) -> None:
    with pytest.raises(InvalidRequestError, match="randbytes"):
        split(b"ab", threshold=2, shares=2, randbytes=lambda _n: stream)


def _shares(secret: bytes = b"0123456789abcdef0123456789abcdef", k: int = 2, n: int = 3) -> list[Share]:
    return split(secret, threshold=k, shares=n, randbytes=_seeded(1))


def _with_index_zero() -> list[Share]:
    shares = _shares()
    object.__setattr__(shares[0], "index", 0)  # bypass validation, as a hostile caller could
    return shares


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (list, "no shares"),
        (lambda: [_shares()[0], "not a share"], "must be a Share"),
        (lambda: [_shares()[0], _shares(k=3)[1], _shares(k=3)[2]], "different thresholds"),
        (lambda: [_shares()[0], _shares(secret=b"short")[1]], "different lengths"),
        (lambda: [_shares()[0], _shares()[0]], "duplicate"),
        (lambda: [_shares()[1], *_shares()], "duplicate"),
        (lambda: _shares()[:1], "need at least 2 shares, got 1"),
        (_with_index_zero, "index"),
    ],
)
def test_combine_rejects_malformed_share_sets(build: Callable[[], list[Any]], message: str) -> None:
    shares = build()
    with pytest.raises(InvalidRequestError, match=message) as raised:
        combine(shares)
    # Errors describe the problem, never the secret material.
    rendered = f"{raised.value} {raised.value.details!r} {raised.value.to_dict()!r}"
    for share in shares:
        if isinstance(share, Share):
            assert share.value.hex() not in rendered
            assert repr(share.value) not in rendered


@pytest.mark.parametrize(
    ("index", "threshold", "value"),
    [
        (0, 2, b"x"),
        (256, 2, b"x"),
        (-1, 2, b"x"),
        (True, 2, b"x"),
        (1.0, 2, b"x"),
        (1, 1, b"x"),
        (1, 0, b"x"),
        (1, 256, b"x"),
        (1, False, b"x"),
        (1, 2, b""),
        (1, 2, bytes(MAX_SECRET_LEN + 1)),
        (1, 2, bytearray(b"x")),
        (1, 2, "x"),
    ],
)
def test_share_constructor_validates(index: Any, threshold: Any, value: Any) -> None:
    with pytest.raises(InvalidRequestError):
        Share(index=index, threshold=threshold, value=value)


# --- encoding ---------------------------------------------------------------------------------------
def test_share_encoding_layout() -> None:
    share = Share(index=3, threshold=2, value=b"\xaa\xbb")
    assert share.to_bytes() == b"RQS\x01" + b"\x03" + b"\x02" + b"\x00\x02" + b"\xaa\xbb"
    big = Share(index=255, threshold=255, value=bytes(MAX_SECRET_LEN))
    assert big.to_bytes()[:8] == b"RQS\x01\xff\xff\x04\x00"


_any_share = st.builds(
    Share,
    index=st.integers(1, 255),
    threshold=st.integers(2, 255),
    value=st.binary(min_size=1, max_size=MAX_SECRET_LEN),
)


@given(share=_any_share)
def test_share_round_trip(share: Share) -> None:
    encoded = share.to_bytes()
    assert len(encoded) == 8 + len(share.value)
    decoded = Share.from_bytes(encoded)
    assert decoded == share
    assert (decoded.index, decoded.threshold, decoded.value) == (share.index, share.threshold, share.value)
    mutable: Any = bytearray(encoded)  # bytes-like input is accepted and copied
    assert Share.from_bytes(mutable) == share


@given(
    share=st.builds(
        Share,
        index=st.integers(1, 255),
        threshold=st.integers(2, 255),
        value=st.binary(min_size=1, max_size=40),
    )
)
def test_every_truncation_and_one_byte_extension_is_rejected(share: Share) -> None:
    encoded = share.to_bytes()
    for cut in range(len(encoded)):
        with pytest.raises(InvalidRequestError):
            Share.from_bytes(encoded[:cut])
    for extra in range(256):
        with pytest.raises(InvalidRequestError):
            Share.from_bytes(encoded + bytes([extra]))


@pytest.mark.parametrize(
    "encoded",
    [
        b"",
        b"RQS",
        b"RQS\x01\x01\x02\x00",  # header cut inside the length
        b"RQX\x01\x01\x02\x00\x01\xaa",  # bad magic
        b"rqs\x01\x01\x02\x00\x01\xaa",
        b"RQS\x00\x01\x02\x00\x01\xaa",  # version 0
        b"RQS\x02\x01\x02\x00\x01\xaa",  # a future version
        b"RQS\x01\x00\x02\x00\x01\xaa",  # index 0
        b"RQS\x01\x01\x00\x00\x01\xaa",  # threshold 0
        b"RQS\x01\x01\x01\x00\x01\xaa",  # threshold 1
        b"RQS\x01\x01\x02\x00\x00",  # empty value
        b"RQS\x01\x01\x02\x00\x02\xaa",  # declared 2, got 1
        b"RQS\x01\x01\x02\x00\x01\xaa\xbb",  # declared 1, got 2
        b"RQS\x01\x01\x02\xff\xff\xaa",  # absurd length
        b"RQS\x01\x01\x02\x04\x01" + bytes(MAX_SECRET_LEN + 1),  # consistent but over the maximum
    ],
)
def test_from_bytes_rejects_malformed_encodings(encoded: bytes) -> None:
    with pytest.raises(InvalidRequestError):
        Share.from_bytes(encoded)


@pytest.mark.parametrize("encoded", ["RQS\x01\x01\x02\x00\x01a", None, 12])
def test_from_bytes_rejects_non_bytes(encoded: Any) -> None:
    with pytest.raises(InvalidRequestError):
        Share.from_bytes(encoded)


# --- secrecy of the share value ---------------------------------------------------------------------
@given(share=_any_share)
def test_repr_never_shows_the_value(share: Share) -> None:
    expected = f"Share(index={share.index}, threshold={share.threshold})"
    assert repr(share) == expected
    assert str(share) == expected
    assert f"{share}" == expected
    assert repr(share.value) not in repr([share])


def test_equality_and_hashing() -> None:
    a, b, c = _shares(k=2, n=3)
    assert a == Share(index=a.index, threshold=a.threshold, value=a.value)
    assert a != b
    assert a != Share(index=a.index, threshold=a.threshold, value=bytes(x ^ 1 for x in a.value))
    assert a != Share(index=a.index, threshold=3, value=a.value)
    assert a != a.value
    assert len({a, b, c, Share.from_bytes(a.to_bytes())}) == 3


def test_shares_are_frozen() -> None:
    share = _shares()[0]
    with pytest.raises(AttributeError):
        share.index = 2  # type: ignore[misc]


def test_all_subsets_of_a_small_split() -> None:
    secret = os.urandom(16)
    shares = split(secret, threshold=3, shares=5)
    for size in range(3, 6):
        for subset in itertools.permutations(shares, size):
            assert combine(subset) == secret


def test_shares_are_not_authenticated_so_callers_must_verify_the_result() -> None:
    # Documented limitation: a flipped bit in a used share changes the output instead of raising.
    secret = bytes(range(32))
    a, b = split(secret, threshold=2, shares=2, randbytes=_seeded(3))
    tampered = Share(index=a.index, threshold=a.threshold, value=bytes([a.value[0] ^ 1]) + a.value[1:])
    assert combine([tampered, b]) != secret


def test_combine_uses_exactly_the_first_threshold_shares() -> None:
    secret = bytes(range(32))
    first, second, third = split(secret, threshold=2, shares=3, randbytes=_seeded(4))
    garbage = Share(index=third.index, threshold=third.threshold, value=bytes(len(third.value)))
    assert combine([first, second, garbage]) == secret  # the extra share is validated, never used
    assert combine([garbage, second, first]) != secret
