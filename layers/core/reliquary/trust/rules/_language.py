"""The rule language's vocabulary: operators per fact type, each fact's range, the effects, the limits,
and the JSON Schema built from them (``schema.json`` is this schema, written out; a test keeps them equal).
"""

from __future__ import annotations

import math
from typing import Any, Final

from reliquary.trust.facts import BANDS, FACTS, SENSITIVITIES

LANGUAGE_VERSION: Final = 1
# The circuits a step-up may ask for (the same as reliquary.zk.policy.CIRCUITS; a test keeps them equal,
# without importing the verifier here).
CIRCUITS: Final = ("context_proof", "device_proof", "location_chain", "timestamp_verifier", "pattern_match")
OUTCOMES: Final = ("deny", "step_up", "require_quorum", "allow")  # strongest first

MAX_FILE_BYTES: Final = 1 << 20
MAX_RULES: Final = 1000
MAX_DEPTH: Final = 16  # nesting of all / any / not
MAX_CHILDREN: Final = 64
MAX_LIST: Final = 256  # values of an in / not_in / eq list
MAX_PANEL: Final = 16
MAX_STRING: Final = 256
MAX_TEXT: Final = 2000  # descriptions and reasons

ID_PATTERN: Final = r"^[a-z0-9][a-z0-9._-]{0,63}$"
NAME_PATTERN: Final = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
PANEL_PATTERN: Final = r"^[a-z][a-z0-9_-]{0,31}$"

COMBINATORS: Final = ("all", "any", "not")
ORDERING: Final = ("lt", "lte", "gt", "gte")
OPERATORS: Final = ("eq", "ne", "lt", "lte", "gt", "gte", "between", "in", "not_in", "contains")

_NUMERIC_OPS: Final = frozenset({"eq", "ne", "lt", "lte", "gt", "gte", "between"})
_ENUM_OPS: Final = frozenset({"eq", "ne", "in", "not_in"})
OPS_BY_TYPE: Final[dict[str, frozenset[str]]] = {
    "bool": frozenset({"eq", "ne"}),
    "int": _NUMERIC_OPS,
    "int|null": _NUMERIC_OPS,
    "float": _NUMERIC_OPS,
    "str": _ENUM_OPS,
    "band": _ENUM_OPS,
    "sensitivity": _ENUM_OPS,
    "list[str]": frozenset({"eq", "ne", "contains"}),
}
ENUMS: Final[dict[str, tuple[str, ...]]] = {"band": BANDS, "sensitivity": SENSITIVITIES}

# The range of every numeric fact: (lowest, highest), inclusive; None = unbounded above. A value outside
# it is refused (it is a typo or a rule that can never, or always, fire).
RANGES: Final[dict[str, tuple[float, float | None]]] = {
    "score": (0.0, 1.0),
    "time.hour": (0, 23),
    "time.weekday": (0, 6),
    **{name: (0, None) for name, kind in FACTS.items() if name.startswith("history.") and "int" in kind},
}
# Cyclic facts: ``between [lo, hi]`` with lo > hi wraps around (hour between [22, 6] is 22..23 or 0..6).
CYCLIC: Final = frozenset({"time.hour", "time.weekday"})
DATE_PATTERN: Final = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
DATE_FACTS: Final = frozenset({"time.date"})

assert all(kind in OPS_BY_TYPE for kind in FACTS.values()), "a fact type the rule language does not know"  # noqa: S101


def is_number(value: object) -> bool:
    """A JSON number: int or float, never bool (JSON Schema's ``number``)."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def is_finite_number(value: object) -> bool:
    return is_number(value) and math.isfinite(value)  # type: ignore[arg-type]


def build_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a rule set's structure. Types per fact, ranges, contradictions
    and the other semantic checks are the validator's; this is what an editor can check as you type."""
    string = {"type": "string", "maxLength": MAX_STRING}
    strings = {"type": "array", "items": string, "maxItems": MAX_LIST}
    scalar = {"type": ["boolean", "number", "string", "null"], "maxLength": MAX_STRING}
    leaf_props: dict[str, Any] = {
        "fact": {"enum": list(FACTS)},
        "eq": {"anyOf": [scalar, strings]},
        "ne": {"anyOf": [scalar, strings]},
        **{op: {"type": "number"} for op in ORDERING},
        "between": {"type": "array", "items": {"type": "number"}, "minItems": 2, "maxItems": 2},
        "in": {**strings, "minItems": 1},
        "not_in": {**strings, "minItems": 1},
        "contains": string,
    }
    children = {
        "type": "array",
        "items": {"$ref": "#/$defs/condition"},
        "minItems": 1,
        "maxItems": MAX_CHILDREN,
    }
    text = {"type": "string", "minLength": 1, "maxLength": MAX_TEXT}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://reliquary.dev/schemas/trust-rules-v1.json",
        "title": "RELIQUARY trust rule set",
        "type": "object",
        "required": ["version", "name", "rules"],
        "additionalProperties": False,
        "properties": {
            "version": {"const": LANGUAGE_VERSION},
            "name": {"type": "string", "pattern": NAME_PATTERN},
            "description": text,
            "rules": {"type": "array", "items": {"$ref": "#/$defs/rule"}, "maxItems": MAX_RULES},
        },
        "$defs": {
            "rule": {
                "type": "object",
                "required": ["id", "when", "effect"],
                "additionalProperties": False,
                "properties": {
                    "id": {"type": "string", "pattern": ID_PATTERN},
                    "description": text,
                    "when": {"$ref": "#/$defs/condition"},
                    "effect": {"$ref": "#/$defs/effect"},
                    "reason": text,
                },
            },
            "condition": {
                "oneOf": [
                    {
                        "type": "object",
                        "required": ["all"],
                        "additionalProperties": False,
                        "properties": {"all": children},
                    },
                    {
                        "type": "object",
                        "required": ["any"],
                        "additionalProperties": False,
                        "properties": {"any": children},
                    },
                    {
                        "type": "object",
                        "required": ["not"],
                        "additionalProperties": False,
                        "properties": {"not": {"$ref": "#/$defs/condition"}},
                    },
                    {"$ref": "#/$defs/leaf"},
                ]
            },
            "leaf": {
                "description": "one fact and exactly one operator",
                "type": "object",
                "required": ["fact"],
                "additionalProperties": False,
                "minProperties": 2,
                "maxProperties": 2,
                "properties": leaf_props,
            },
            "effect": {
                "oneOf": [
                    {"enum": ["allow", "deny"]},
                    {
                        "type": "object",
                        "required": ["quorum"],
                        "additionalProperties": False,
                        "properties": {
                            "quorum": {
                                "type": "object",
                                "required": ["panel", "threshold"],
                                "additionalProperties": False,
                                "properties": {
                                    "panel": {
                                        "type": "array",
                                        "items": {"type": "string", "pattern": PANEL_PATTERN},
                                        "minItems": 1,
                                        "maxItems": MAX_PANEL,
                                        "uniqueItems": True,
                                    },
                                    "threshold": {"type": "integer", "minimum": 1},
                                },
                            }
                        },
                    },
                    {
                        "type": "object",
                        "required": ["step_up"],
                        "additionalProperties": False,
                        "properties": {
                            "step_up": {
                                "type": "object",
                                "required": ["circuit"],
                                "additionalProperties": False,
                                "properties": {"circuit": {"enum": list(CIRCUITS)}},
                            }
                        },
                    },
                ]
            },
        },
    }
