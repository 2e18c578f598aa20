"""The SDK's RFC 8785 encoder agrees with the vectors and with the core's ``reliquary.jcs``."""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from reliquary_sdk import jcs
from reliquary_sdk.jcs import JCSError

from reliquary import jcs as core_jcs
from reliquary.errors import InvalidRequestError

VECTORS = json.loads((Path(__file__).parents[1] / "vectors" / "jcs_vectors.json").read_text("utf-8"))


@pytest.mark.parametrize("case", VECTORS["canonical"], ids=lambda c: c["desc"])
def test_canonical_vectors(case: dict[str, Any]) -> None:
    def run() -> bytes:
        return jcs.canonicalize(jcs.parse(case["input"].encode("utf-8")))

    if case["want_error"] is not None:
        with pytest.raises(JCSError):
            run()
        return
    out = run()
    assert out == case["output"].encode("utf-8")
    if "output_hex" in case:
        assert out.hex() == case["output_hex"]
    assert jcs.canonicalize(jcs.parse(out)) == out


@pytest.mark.parametrize("case", VECTORS["numbers"], ids=lambda c: c["desc"])
def test_number_vectors(case: dict[str, Any]) -> None:
    (value,) = struct.unpack(">d", bytes.fromhex(case["bits"]))
    if case["want_error"] is not None:
        with pytest.raises(JCSError):
            jcs.canonicalize(value)
        return
    assert jcs.canonicalize(value) == case["output"].encode("ascii")
    assert jcs.canonicalize([value]) == b"[" + case["output"].encode("ascii") + b"]"


@pytest.mark.parametrize(
    "value",
    [
        float("nan"),
        float("inf"),
        2**53 + 1,
        -(2**53) - 1,
        "\ud800",
        {"\udc00": 1},
        {1: "x"},
        b"bytes",
        object(),
        {"a": [1.5, -0.0, 1e21, None]},
    ],
)
def test_what_jcs_cannot_represent_is_refused_like_the_core(value: object) -> None:
    try:
        expected = core_jcs.canonicalize(value)
    except InvalidRequestError:
        with pytest.raises(JCSError):
            jcs.canonicalize(value)
        return
    assert jcs.canonicalize(value) == expected


def test_nesting_is_bounded_like_the_core() -> None:
    deep: Any = []
    for _ in range(jcs.MAX_DEPTH):
        deep = [deep]
    assert jcs.canonicalize(deep) == core_jcs.canonicalize(deep)
    with pytest.raises(JCSError):
        jcs.canonicalize([deep])
    with pytest.raises(JCSError):
        jcs.parse(b"[" * 65 + b"]" * 65)
    assert jcs.parse(b"[" * 64 + b"]" * 64) == core_jcs.parse(b"[" * 64 + b"]" * 64)


_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(_json)
def test_the_sdk_and_the_core_agree_on_every_value(value: Any) -> None:
    assert jcs.canonicalize(value) == core_jcs.canonicalize(value)
    assert jcs.parse(jcs.canonicalize(value)) == core_jcs.parse(core_jcs.canonicalize(value))


@settings(max_examples=300, deadline=None)
@given(st.floats(allow_nan=False, allow_infinity=False))
def test_numbers_read_back_as_the_same_double(value: float) -> None:
    text = jcs.format_number(value)
    assert text == core_jcs.format_number(value)
    assert float(text) == value or (value == 0 and math.copysign(1, value) < 0)
