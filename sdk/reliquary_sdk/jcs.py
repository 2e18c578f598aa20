"""RFC 8785 JSON Canonicalization Scheme (JCS): one byte string for one JSON value. Pure.

``canonicalize`` writes no whitespace, sorts object members by the UTF-16 code units of their names,
escapes only what RFC 8785 §3.2.2.2 escapes (``\\" \\\\ \\b \\f \\n \\r \\t`` and ``\\u00xx`` for the other
controls) and writes numbers as ECMAScript's ``Number.prototype.toString`` (§3.2.2.3). It refuses, with
``JCSError``, what JCS cannot represent: NaN and the infinities, lone surrogates, non-string member names,
integers beyond +-2**53 (JSON numbers are doubles) and nesting deeper than 64.

``parse`` reads JSON text strictly (I-JSON, RFC 7493): UTF-8, no duplicate names, finite doubles only;
integers up to +-2**53 come back as ``int``. The service's canonical form (``reliquary.jcs``) is the same.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any, TypeAlias

__all__ = ["JCSError", "JsonValue", "canonicalize", "format_number", "parse"]

JsonValue: TypeAlias = "dict[str, JsonValue] | list[JsonValue] | str | int | float | bool | None"

MAX_SAFE_INTEGER = 2**53
MAX_DEPTH = 64

_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t"}
_NEEDS_ESCAPE = re.compile(r'["\\\x00-\x1f]')
_SURROGATE = re.compile(r"[\ud800-\udfff]")
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")


class JCSError(ValueError):
    """A value or text that has no RFC 8785 canonical form (or is not strict I-JSON)."""

    code = "invalid_json"


def canonicalize(value: object) -> bytes:
    """The canonical UTF-8 bytes of ``value`` (dict with str keys, list/tuple, str, int, float, bool,
    None)."""
    parts: list[str] = []
    _write(value, parts, 0)
    return "".join(parts).encode("utf-8")


def parse(data: bytes) -> JsonValue:
    """Strictly parse UTF-8 JSON text (no duplicate names, finite numbers, doubles only)."""
    try:
        text = data.decode("utf-8")
        _check_depth(text)
        return json.loads(  # type: ignore[no-any-return]
            text,
            object_pairs_hook=_object_without_duplicates,
            parse_int=_parse_int,
            parse_float=_parse_float,
            parse_constant=_refuse_constant,
        )
    except JCSError:
        raise
    except UnicodeDecodeError:
        raise JCSError("JSON text must be UTF-8") from None
    except RecursionError:
        raise JCSError("JSON text is nested too deeply") from None
    except ValueError as exc:
        raise JCSError(f"not valid JSON: {exc}") from None


def format_number(value: float) -> str:
    """ECMAScript ``Number.prototype.toString`` of a finite double: Python's ``repr`` has the same
    shortest digits; only the decimal point's placement and the exponent's spelling differ."""
    if not math.isfinite(value):
        raise JCSError("NaN and Infinity have no JSON representation")
    if value == 0:
        return "0"
    sign = "-" if value < 0 else ""
    mantissa, _, exponent = float.__repr__(abs(value)).partition("e")
    whole, _, fraction = mantissa.partition(".")
    digits = whole + fraction
    point = len(whole) + (int(exponent) if exponent else 0)  # value = 0.<digits> * 10**point
    stripped = digits.lstrip("0")
    point -= len(digits) - len(stripped)
    digits = stripped.rstrip("0")
    k, n = len(digits), point
    if k <= n <= 21:
        text = digits + "0" * (n - k)
    elif 0 < n <= 21:
        text = digits[:n] + "." + digits[n:]
    elif -6 < n <= 0:
        text = "0." + "0" * -n + digits
    else:
        exp = n - 1
        text = digits[0] + ("." + digits[1:] if k > 1 else "") + ("e+" if exp >= 0 else "e-") + str(abs(exp))
    return sign + text


def _check_depth(text: str) -> None:
    depth = 0
    for char in _NOT_BRACKET.sub("", _STRING.sub("", text)):
        if char in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                raise JCSError(f"JSON nested deeper than {MAX_DEPTH} levels")
        else:
            depth -= 1


def _write(value: object, parts: list[str], depth: int) -> None:
    if depth > MAX_DEPTH:
        raise JCSError(f"JSON nested deeper than {MAX_DEPTH} levels")
    if value is None:
        parts.append("null")
    elif value is True:
        parts.append("true")
    elif value is False:
        parts.append("false")
    elif isinstance(value, str):
        parts.append(_string(value))
    elif isinstance(value, int):
        if not -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
            raise JCSError("integers beyond +-2**53 are not exact in JSON numbers")
        parts.append(int.__repr__(value))
    elif isinstance(value, float):
        parts.append(format_number(value))
    elif isinstance(value, Mapping):
        _object(value, parts, depth)
    elif isinstance(value, list | tuple):
        _array(value, parts, depth)
    else:
        raise JCSError(f"{type(value).__name__} has no JSON representation")


def _array(values: Sequence[object], parts: list[str], depth: int) -> None:
    parts.append("[")
    for i, item in enumerate(values):
        if i:
            parts.append(",")
        _write(item, parts, depth + 1)
    parts.append("]")


def _object(members: Mapping[Any, object], parts: list[str], depth: int) -> None:
    for name in members:
        if not isinstance(name, str):
            raise JCSError("JSON member names are strings")
        _check_unicode(name)
    parts.append("{")
    # Sorting UTF-16BE encodings bytewise sorts by UTF-16 code units (RFC 8785 §3.2.3).
    for i, name in enumerate(sorted(members, key=lambda n: n.encode("utf-16-be"))):
        if i:
            parts.append(",")
        parts.append(_string(name))
        parts.append(":")
        _write(members[name], parts, depth + 1)
    parts.append("}")


def _check_unicode(text: str) -> None:
    if _SURROGATE.search(text) is not None:
        raise JCSError("JSON strings must be Unicode text (a lone surrogate was found)")


def _string(text: str) -> str:
    _check_unicode(text)
    return '"' + _NEEDS_ESCAPE.sub(_escape, text) + '"'


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    return _ESCAPES.get(char) or f"\\u{ord(char):04x}"


def _object_without_duplicates(pairs: list[tuple[str, JsonValue]]) -> dict[str, JsonValue]:
    members = dict(pairs)
    if len(members) != len(pairs):
        raise JCSError("duplicate member names in a JSON object")
    return members


def _parse_int(literal: str) -> int | float:
    if len(literal) > 20:
        return _parse_float(literal)
    number = int(literal)
    return number if -MAX_SAFE_INTEGER <= number <= MAX_SAFE_INTEGER else float(number)


def _parse_float(literal: str) -> float:
    number = float(literal)
    if not math.isfinite(number):
        raise JCSError("a JSON number overflows a double")
    return number


def _refuse_constant(name: str) -> float:
    raise JCSError(f"{name} is not JSON")
