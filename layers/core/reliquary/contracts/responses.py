"""The shape every function answers in: ``{"status": "ok", "action", "result"}`` or, for a deterministic
refusal, ``{"status": "error", "action", "error": {code, type, message, details?, retryable}}``.

A refusal never quotes the caller: its ``action`` is an action the function knows (else ``"unknown"``),
and a malformed request is described by where the problems are and what kind they are (pydantic's error
types: ``missing``, ``string_too_long``...), never by pydantic's messages, which quote the input (an
unknown tag, a custom validator's words) at any size. A location names only what the schema names (field
names, action tags, list indexes); any other part, such as a key the caller chose, reads ``*``. Every
refusal is bounded (message, details), whatever error it answers.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from pydantic import TypeAdapter, ValidationError

from reliquary.errors import InvalidRequestError, ReliquaryError

MAX_PROBLEMS = 10
MAX_MESSAGE_CHARS = 512
MAX_DETAIL_CHARS = 256  # each string (or key) in an error's details
MAX_DETAIL_ITEMS = 20  # each list or object in an error's details
MAX_DETAIL_DEPTH = 4
MAX_DETAILS_BYTES = 2048  # the details as JSON; larger ones are left out
MAX_LOCATION_PARTS = 8  # a location deeper than this ends in "..."
UNNAMED = "*"  # a location part the schema does not name (a key of the caller's own)
UNKNOWN_ACTION = "unknown"


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
def _vocabulary(schema: TypeAdapter[Any]) -> tuple[frozenset[str], frozenset[str]]:
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
    names, _ = _vocabulary(schema)
    problems = [
        {"field": _location(e["loc"], names), "problem": e["type"]}
        for e in exc.errors(include_url=False, include_context=False, include_input=False)[:MAX_PROBLEMS]
    ]
    return InvalidRequestError(message, problems=problems)


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _bounded(value: Any, depth: int = 0) -> Any:
    """``value`` as JSON no larger than the limits: strings clipped, containers cut, nesting capped."""
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if depth >= MAX_DETAIL_DEPTH:
        return "…"
    if isinstance(value, Mapping):
        items = list(value.items())[:MAX_DETAIL_ITEMS]
        return {_clip(str(k), MAX_DETAIL_CHARS): _bounded(v, depth + 1) for k, v in items}
    if isinstance(value, list | tuple):
        return [_bounded(v, depth + 1) for v in value[:MAX_DETAIL_ITEMS]]
    return _clip(str(value), MAX_DETAIL_CHARS)


def refused(exc: ReliquaryError, action: str) -> dict[str, Any]:
    """The refusal of ``exc``, bounded whatever the error carries: a domain error may name a value the
    caller sent (a policy's rule id or key), and no answer may grow with the request."""
    body = exc.to_dict()
    body["message"] = _clip(body["message"], MAX_MESSAGE_CHARS)
    if "details" in body:
        details = _bounded(body["details"])
        if len(json.dumps(details)) > MAX_DETAILS_BYTES:
            details = {"omitted": "the details are too large to answer"}
        body["details"] = details
    return {"status": "error", "action": action, "error": body}


def succeeded(action: str, result: dict[str, Any]) -> dict[str, Any]:
    return {"status": "ok", "action": action, "result": result}


def event_action(event: Any, schema: TypeAdapter[Any]) -> str:
    """The ``action`` an event names if ``schema`` knows it, else ``UNKNOWN_ACTION`` (a refusal never
    repeats what the caller wrote there)."""
    action = event.get("action") if isinstance(event, dict) else None
    _, actions = _vocabulary(schema)
    return action if isinstance(action, str) and action in actions else UNKNOWN_ACTION
