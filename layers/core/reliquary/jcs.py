"""RFC 8785 JSON Canonicalization Scheme (JCS): one byte string for one JSON value. Pure.

``canonicalize`` writes a value as RFC 8785 prescribes: no whitespace; object members sorted by the
UTF-16 code units of their names; strings with only the escapes of §3.2.2.2 (``\\"``, ``\\\\``,
``\\b \\f \\n \\r \\t``, ``\\u00xx`` in lower-case hex for the other controls below U+0020) and every
other character as literal UTF-8; numbers as ECMAScript's ``Number.prototype.toString`` writes the
IEEE-754 double (§3.2.2.3). What JCS cannot represent is refused with ``InvalidRequestError``: NaN and
the infinities, strings that are not Unicode (lone surrogates), non-string member names, and Python
integers beyond +-2**53 (JCS numbers are doubles; rounding such an integer would silently change it).

``parse`` reads JSON text into the same data model (I-JSON, RFC 7493): UTF-8 only, no duplicate member
names, no NaN/Infinity, and every number a double; integers that a double holds exactly, up to +-2**53,
come back as ``int`` and every other number as ``float``. So ``canonicalize(parse(text)) == text``
holds exactly when ``text`` is already canonical, which is how callers refuse non-canonical input.

Speed: every grant checks an attestation chain, so both directions have an exact fast path. ``canonicalize``
hands a value built only of plain ``dict``/``list``/``tuple``/``str``/``int``/``float``/``bool``/``None``
to json's C encoder when, for that value, the encoder writes exactly the RFC 8785 bytes (see
``_fast_encodable``: what it accepts is written identically, what it declines goes to the rule-by-rule
``_canonicalize_reference``); ``parse`` skips the nesting scan when the text has too few brackets to nest
deeply, and the scan skips strings with an unrolled pattern.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeAlias

from reliquary.errors import InvalidRequestError

JsonValue: TypeAlias = "dict[str, JsonValue] | list[JsonValue] | str | int | float | bool | None"

MAX_SAFE_INTEGER = 2**53  # the largest integer such that it and every smaller one are exact doubles
MAX_DEPTH = 64  # nesting of arrays and objects; deeper input is refused rather than recursed into

_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t"}
_NEEDS_ESCAPE = re.compile(r'["\\\x00-\x1f]')
_SURROGATE = re.compile(r"[\ud800-\udfff]")


def canonicalize(value: object) -> bytes:
    """The RFC 8785 canonical UTF-8 bytes of ``value``.

    ``value`` is built of ``dict`` (string keys), ``list`` or ``tuple``, ``str``, ``int``, ``float``,
    ``bool`` and ``None``; anything else, and anything JCS cannot represent, raises
    ``InvalidRequestError``."""
    if _fast_encodable(value, 0):
        # Checked free of lone surrogates, so the UTF-8 encoding cannot fail.
        return _C_ENCODER.encode(value).encode("utf-8")
    return _canonicalize_reference(value)


def _canonicalize_reference(value: object) -> bytes:
    """RFC 8785 written out rule by rule: every value ``canonicalize`` takes, and every refusal."""
    parts: list[str] = []
    _write(value, parts, 0)
    # Every string was checked for surrogates, so this cannot fail.
    return "".join(parts).encode("utf-8")


# json's encoder (C) with RFC 8785's separators, members sorted by code point, escapes as RFC 8785 §3.2.2.2
# writes them (ensure_ascii=False: only '"', '\\' and the controls below U+0020, in the short forms and
# lower-case \u00xx). Used only on values _fast_encodable accepted (no cycles: depth is bounded there).
_C_ENCODER = json.JSONEncoder(
    ensure_ascii=False, check_circular=False, allow_nan=False, sort_keys=True, separators=(",", ":")
)
# A member name the encoder sorts as RFC 8785 does: code points and UTF-16 code units order two names
# alike unless one holds a supplementary character (a surrogate pair in UTF-16, which sorts below
# U+E000..U+FFFF); lone surrogates are not Unicode. Names with either go to the reference encoder.
_NOT_BMP_NAME = re.compile(r"[\ud800-\udfff\U00010000-\U0010ffff]")


def _fast_encodable(value: object, depth: int) -> bool:
    """True when json's encoder writes ``value`` byte for byte as RFC 8785 does; False sends it to the
    reference encoder (which also raises every refusal). Only exact built-in types: a subclass may
    override what the two encoders read differently (comparison, ``items``, ``__abs__``)."""
    check = _FAST_CHECKS.get(type(value))
    return check is not None and depth <= MAX_DEPTH and check(value, depth)


def _fast_literal(_value: bool | None, _depth: int) -> bool:
    return True


def _fast_string(value: str, _depth: int) -> bool:
    return value.isascii() or _SURROGATE.search(value) is None


def _fast_integer(value: int, _depth: int) -> bool:
    return -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER


def _fast_float(value: float, _depth: int) -> bool:
    # The encoder writes repr: ES's text exactly when repr has no exponent (1e-4 <= |x| < 1e16, inside
    # ES's plain range, same shortest digits) and no ".0" (ES writes 1 for 1.0 and 0 for -0.0).
    text = float.__repr__(value)
    return math.isfinite(value) and "e" not in text and not text.endswith(".0")


def _fast_array(values: Sequence[object], depth: int) -> bool:
    return all(_fast_encodable(item, depth + 1) for item in values)


def _fast_object(members: dict[object, object], depth: int) -> bool:
    return all(
        type(name) is str
        and (name.isascii() or _NOT_BMP_NAME.search(name) is None)
        and _fast_encodable(item, depth + 1)
        for name, item in members.items()
    )


_FAST_CHECKS: dict[type, Callable[[Any, int], bool]] = {
    str: _fast_string,
    dict: _fast_object,
    int: _fast_integer,
    list: _fast_array,
    bool: _fast_literal,
    float: _fast_float,
    type(None): _fast_literal,
    tuple: _fast_array,
}


def parse(data: bytes) -> JsonValue:
    """Strictly parse UTF-8 JSON text (I-JSON: no duplicate names, finite numbers, doubles only)."""
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
    except InvalidRequestError:
        raise
    except UnicodeDecodeError:
        raise InvalidRequestError("JSON text must be UTF-8") from None
    except RecursionError:
        raise InvalidRequestError("JSON text is nested too deeply") from None
    except ValueError as exc:  # json.JSONDecodeError and oversized integer literals
        raise InvalidRequestError(f"not valid JSON: {exc}") from None


# A JSON string, the escape loop unrolled (the same matches as '"(?:[^"\\]|\\.)*"', several times faster
# on long strings such as a chain's base64 signatures).
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")


def _check_depth(text: str) -> None:
    """Refuse nesting deeper than MAX_DEPTH before the parser recurses into it: the C parser's recursion
    is bounded only by the interpreter's recursion limit, which other code may raise far past what the
    C stack can take (py_ecc sets it to 100,000 on import)."""
    if text.count("[") + text.count("{") <= MAX_DEPTH:
        return  # nesting needs an opening bracket per level, strings or not: the common case, in C
    depth = deepest = 0
    # Brackets inside strings do not nest; what is left is scanned in C but for the brackets themselves.
    for char in _NOT_BRACKET.sub("", _STRING.sub("", text)):
        if char in "[{":
            depth += 1
            deepest = max(deepest, depth)
            if deepest > MAX_DEPTH:
                raise InvalidRequestError(f"JSON nested deeper than {MAX_DEPTH} levels")
        elif char in "]}":
            depth -= 1


def format_number(value: float) -> str:
    """ECMAScript ``Number.prototype.toString`` of a finite double (RFC 8785 §3.2.2.3).

    Python's ``repr`` gives the shortest digit string that reads back as the same double (as ES
    requires, ties resolved the same way); only the placement of the decimal point and the exponent
    differ: ES writes plain digits for decimal exponents 1e-7 < |x| < 1e21 and ``e+``/``e-`` outside."""
    if not math.isfinite(value):
        raise InvalidRequestError("NaN and Infinity have no JSON representation")
    if value == 0:
        return "0"  # +0 and -0 alike
    sign = "-" if value < 0 else ""
    shortest = float.__repr__(abs(value))
    if "e" not in shortest:
        # repr writes plain digits only for 1e-4 <= |x| < 1e16, inside ES's plain range: the same text,
        # but for repr's ".0" on whole numbers (the common case, and ~5x faster than the general path).
        return sign + shortest.removesuffix(".0")
    mantissa, _, exponent = shortest.partition("e")
    whole, _, fraction = mantissa.partition(".")
    digits = whole + fraction
    # value = 0.<digits> * 10**point
    point = len(whole) + (int(exponent) if exponent else 0)
    stripped = digits.lstrip("0")
    point -= len(digits) - len(stripped)
    digits = stripped.rstrip("0")
    # ES names: k digits s, value = s * 10**(n - k).
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


def _write(value: object, parts: list[str], depth: int) -> None:
    if depth > MAX_DEPTH:
        raise InvalidRequestError(f"JSON nested deeper than {MAX_DEPTH} levels")
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
            raise InvalidRequestError(
                f"integers beyond +-2**53 are not exact in JSON numbers (got {value.bit_length()} bits)"
            )
        parts.append(int.__repr__(value))
    elif isinstance(value, float):
        parts.append(format_number(value))
    elif isinstance(value, Mapping):
        _object(value, parts, depth)
    elif isinstance(value, list | tuple):
        _array(value, parts, depth)
    else:
        raise InvalidRequestError(f"{type(value).__name__} has no JSON representation")


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
            raise InvalidRequestError(f"JSON member names are strings, not {type(name).__name__}")
        _check_unicode(name)
    parts.append("{")
    # Sorting the UTF-16BE encodings bytewise is sorting by UTF-16 code units (RFC 8785 §3.2.3).
    for i, name in enumerate(sorted(members, key=lambda n: n.encode("utf-16-be"))):
        if i:
            parts.append(",")
        parts.append(_string(name))
        parts.append(":")
        _write(members[name], parts, depth + 1)
    parts.append("}")


def _check_unicode(text: str) -> None:
    if _SURROGATE.search(text) is not None:
        raise InvalidRequestError("JSON strings must be Unicode text (a lone surrogate was found)")


def _string(text: str) -> str:
    _check_unicode(text)
    return '"' + _NEEDS_ESCAPE.sub(_escape, text) + '"'


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    return _ESCAPES.get(char) or f"\\u{ord(char):04x}"


def _object_without_duplicates(pairs: list[tuple[str, JsonValue]]) -> dict[str, JsonValue]:
    members = dict(pairs)
    if len(members) != len(pairs):
        raise InvalidRequestError("duplicate member names in a JSON object")
    return members


def _parse_int(literal: str) -> int | float:
    # A JSON number is a double: an integer literal beyond +-2**53 means the nearest double.
    if len(literal) > 20:  # also keeps int() away from huge digit strings
        return _parse_float(literal)
    number = int(literal)
    return number if -MAX_SAFE_INTEGER <= number <= MAX_SAFE_INTEGER else float(number)


def _parse_float(literal: str) -> float:
    number = float(literal)
    if not math.isfinite(number):
        raise InvalidRequestError("a JSON number overflows a double")
    return number


def _refuse_constant(name: str) -> float:
    raise InvalidRequestError(f"{name} is not JSON")
