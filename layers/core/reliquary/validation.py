"""Pydantic failures as the one typed error, quoting nothing of the input: each problem's location (as far
as the schema names it: field names, tags, list indexes; any other part, such as a key the caller chose,
reads ``*``) and its kind (pydantic's error type), never pydantic's messages, which quote the input."""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from typing import Any

from pydantic import TypeAdapter, ValidationError

from reliquary.errors import InvalidRequestError

MAX_PROBLEMS = 10
MAX_LOCATION_PARTS = 8  # a location deeper than this ends in "..."
UNNAMED = "*"  # a location part the schema does not name (a key of the caller's own)


def _schema_nodes(schema: TypeAdapter[Any]) -> Iterator[dict[str, Any]]:
    """Every node of the schema's pydantic-core schema (iteratively: schemas nest deeply)."""
    stack: list[Any] = [schema.core_schema]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            yield node
            stack.extend(node.values())
        elif isinstance(node, list | tuple):
            stack.extend(node)


@functools.cache
def vocabulary(schema: TypeAdapter[Any]) -> tuple[frozenset[str], frozenset[str]]:
    """The words of ``schema``: the names its locations may hold, and the actions it dispatches on."""
    names: set[str] = set()
    actions: set[str] = set()
    for node in _schema_nodes(schema):
        kind = node.get("type")
        if kind in {"model-fields", "typed-dict"}:
            for name, field in node["fields"].items():
                names.add(name)
                alias = field.get("validation_alias")
                if isinstance(alias, str):
                    names.add(alias)
        elif kind == "dataclass-args":
            names.update(field["name"] for field in node["fields"])
        elif kind == "tagged-union":
            tags = {tag for tag in node["choices"] if isinstance(tag, str)}
            names |= tags
            if node.get("discriminator") == "action":
                actions |= tags
    return frozenset(names), frozenset(actions)


def _location(loc: Sequence[int | str], names: frozenset[str]) -> str:
    parts = [str(p) if isinstance(p, int) or p in names else UNNAMED for p in loc[:MAX_LOCATION_PARTS]]
    if len(loc) > MAX_LOCATION_PARTS:
        parts.append("...")
    return ".".join(parts)


def invalid_request(
    exc: ValidationError, *, schema: TypeAdapter[Any], message: str = "the request is malformed"
) -> InvalidRequestError:
    """A pydantic failure of ``schema`` as ``InvalidRequestError``: each problem's location (as far as the
    schema names it) and kind, at most ``MAX_PROBLEMS`` of them; nothing of the input."""
    names, _ = vocabulary(schema)
    problems = [
        {"field": _location(e["loc"], names), "problem": e["type"]}
        for e in exc.errors(include_url=False, include_context=False, include_input=False)[:MAX_PROBLEMS]
    ]
    return InvalidRequestError(message, problems=problems)
