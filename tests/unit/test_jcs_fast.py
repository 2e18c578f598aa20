"""The fast paths of ``reliquary.jcs`` against its reference encoder and the nesting rule.

``canonicalize`` hands the values ``_fast_encodable`` accepts to json's C encoder and every other value to
``_canonicalize_reference`` (RFC 8785 written out rule by rule, checked by tests/vectors/jcs_vectors.json):
whatever the value, the bytes (or the refusal) must be the reference's. ``parse`` skips its nesting scan
when the text has too few brackets to nest deeply; the scan's string pattern is unrolled for speed.
"""

from __future__ import annotations

import enum
import json
import sys
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reliquary import jcs
from reliquary.errors import InvalidRequestError

# Characters where a JCS encoder goes wrong: the escapes, controls, DEL, non-ASCII in the BMP below and
# above the surrogates (U+E000..U+FFFF sort after a surrogate pair in UTF-16, before it by code point),
# supplementary characters (a surrogate pair) and lone surrogates (not Unicode: refused).
_TRICKY = (
    '"\\/\b\f\n\r\t\x00\x01\x1f\x7f\x80\u00e9\u20ac\u2028\ud7ff\ue000\ufb33\uffff'
    "\U00010000\U0001f600\U0010ffff"
)
_LONE = "\ud800\udbff\udc00\udfff"
_chars = st.sampled_from(_TRICKY) | st.characters(codec="utf-8") | st.characters(max_codepoint=0x7F)
_text = st.text(_chars, max_size=8) | st.text(st.sampled_from("ab\ufb33\U0001f600"), max_size=3)
_unicode_or_not = _text | st.text(st.sampled_from(_LONE) | _chars, min_size=1, max_size=4)
_floats = st.floats() | st.sampled_from(
    [
        0.0,
        -0.0,
        1.0,
        -1.0,
        0.5,
        1e-4,
        9.999e-5,
        1e-7,
        1e-6,
        1e15,
        1e16,
        1e21,
        1e22,
        2.0**53,
        5e-324,
        1.7976931348623157e308,
    ]
)
_ints = (
    st.integers(-(2**53), 2**53) | st.integers(-(2**64), 2**64) | st.sampled_from([2**53 + 1, -(2**53) - 1])
)
_scalars = st.none() | st.booleans() | _ints | _floats | _unicode_or_not
_any_json = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.lists(inner, max_size=3).map(tuple)
        | st.dictionaries(_unicode_or_not, inner, max_size=5)
    ),
    max_leaves=24,
)


def _reference(value: object) -> bytes | None:
    """The reference encoder's bytes, or None when it refuses the value."""
    try:
        return jcs._canonicalize_reference(value)
    except InvalidRequestError:
        return None


def _fast_or_refused(value: object) -> bytes | None:
    try:
        return jcs.canonicalize(value)
    except InvalidRequestError:
        return None


@settings(max_examples=400, deadline=None)
@given(_any_json)
def test_canonicalize_writes_what_the_reference_writes_or_refuses_alike(value: Any) -> None:
    assert _fast_or_refused(value) == _reference(value)


# The common case a chain is made of: plain ASCII and BMP text (escapes included), small integers, floats
# ES and repr spell alike. The fast path must take all of it, or the speed-up is not real.
_plain_text = st.text(st.characters(max_codepoint=0xD7FF) | st.sampled_from(_TRICKY[:-3]), max_size=10)
_plain_floats = st.floats(allow_nan=False, allow_infinity=False).filter(
    lambda x: "e" not in repr(x) and not repr(x).endswith(".0")
)
_plain_json = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | _plain_floats | _plain_text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_plain_text, inner, max_size=5),
    max_leaves=24,
)


@settings(max_examples=300, deadline=None)
@given(_plain_json)
def test_the_fast_path_takes_the_common_values_and_writes_the_reference_bytes(value: Any) -> None:
    assert jcs._fast_encodable(value, 0)
    assert jcs.canonicalize(value) == jcs._canonicalize_reference(value)


class _Colour(enum.StrEnum):
    RED = "red"


class _Level(enum.IntEnum):
    ONE = 1


def _nested(levels: int) -> Any:
    value: Any = 1
    for _ in range(levels):
        value = [value]
    return value


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        # Supplementary names sort below U+E000..U+FFFF by UTF-16 code units (RFC 8785 3.2.3).
        ({"\ufb33": 1, "\U0001f600": 2, "\u20ac": 3}, '{"\u20ac":3,"\U0001f600":2,"\ufb33":1}'),
        ({"\uffff": 0, "\U00010000": 0}, '{"\U00010000":0,"\uffff":0}'),
        # Floats repr spells otherwise than ES.
        (
            [1.0, -0.0, 1e16, 1e21, 1e-7, 123456789012345680.0],
            "[1,0,10000000000000000,1e+21,1e-7,123456789012345680]",
        ),
        (2.0**53, "9007199254740992"),
        # Subclasses (json would read them through their overrides): their plain values.
        ({"c": _Colour.RED, "n": _Level.ONE}, '{"c":"red","n":1}'),
        (_nested(jcs.MAX_DEPTH), "[" * jcs.MAX_DEPTH + "1" + "]" * jcs.MAX_DEPTH),
    ],
    ids=["supplementary-names", "bmp-vs-astral", "es-floats", "whole-float", "subclasses", "max-depth"],
)
def test_what_the_fast_path_declines_the_reference_writes(value: object, expected: str) -> None:
    assert jcs.canonicalize(value) == expected.encode("utf-8")


@pytest.mark.parametrize(
    "value",
    [
        {"\ud800": 1},
        ["\udfff"],
        {1: "a"},
        {True: "a"},
        [2**53 + 1],
        [float("nan")],
        [float("-inf")],
        _nested(jcs.MAX_DEPTH + 1),
        {"a": {1, 2}},
    ],
    ids=["lone-name", "lone-value", "int-name", "bool-name", "big-int", "nan", "inf", "too-deep", "set"],
)
def test_what_jcs_cannot_represent_is_refused_on_every_path(value: object) -> None:
    with pytest.raises(InvalidRequestError):
        jcs.canonicalize(value)


def _depth(value: object) -> int:
    if isinstance(value, dict):
        return 1 + max(map(_depth, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(_depth, value), default=0)
    return 0


# Strings full of brackets, quotes and backslashes: the depth scan must skip them exactly.
_bracket_text = st.text(st.sampled_from('[]{}"\\ab\u20ac'), max_size=12)
_bracket_json = st.recursive(
    st.integers(0, 9) | _bracket_text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_bracket_text, inner, max_size=3),
    max_leaves=12,
)


@settings(max_examples=200, deadline=None)
@given(_bracket_json, st.booleans(), st.booleans())
def test_parse_refuses_exactly_the_text_nested_too_deeply(
    value: Any, too_deep: bool, ascii_only: bool
) -> None:
    wrapped = value
    for _ in range(jcs.MAX_DEPTH - _depth(value) + (1 if too_deep else 0)):
        wrapped = [wrapped]
    text = json.dumps(wrapped, ensure_ascii=ascii_only).encode("utf-8")
    if too_deep:
        with pytest.raises(InvalidRequestError, match="nested deeper"):
            jcs.parse(text)
    else:
        assert jcs.parse(text) == wrapped


def test_the_nesting_shortcut_counts_brackets_inside_strings_too() -> None:
    # 70 brackets in a string: the text takes the full scan, which skips the string and accepts 2 levels.
    text = b'[{"a":"' + b"[" * 70 + b'"}]'
    assert jcs.parse(text) == [{"a": "[" * 70}]
    previous = sys.getrecursionlimit()
    sys.setrecursionlimit(100_000)
    try:
        with pytest.raises(InvalidRequestError, match="nested deeper"):
            jcs.parse(b'["' + b"]" * 70 + b'",' + b"[" * 100_000 + b"]" * 100_000 + b"]")
    finally:
        sys.setrecursionlimit(previous)
