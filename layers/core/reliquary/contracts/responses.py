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

import json
import math
from collections.abc import Mapping
from typing import Any

from pydantic import TypeAdapter

from reliquary.errors import ReliquaryError
from reliquary.validation import invalid_request, vocabulary

__all__ = ["event_action", "invalid_request", "refused", "succeeded"]

MAX_MESSAGE_CHARS = 512
MAX_DETAIL_CHARS = 256  # each string (or key) in an error's details
MAX_DETAIL_ITEMS = 20  # each list or object in an error's details
MAX_DETAIL_DEPTH = 4
MAX_DETAILS_BYTES = 2048  # the details as JSON; larger ones are left out
UNKNOWN_ACTION = "unknown"


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
    _, actions = vocabulary(schema)
    return action if isinstance(action, str) and action in actions else UNKNOWN_ACTION
