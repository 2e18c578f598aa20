"""The shape every function answers in: ``{"status": "ok", "action", "result"}`` or, for a deterministic
refusal, ``{"status": "error", "action", "error": {code, type, message, details?, retryable}}``."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from reliquary.errors import InvalidRequestError, ReliquaryError

MAX_PROBLEMS = 20


def invalid_request(exc: ValidationError, message: str = "the request is malformed") -> InvalidRequestError:
    """A pydantic failure as ``InvalidRequestError``: locations and messages only, never pydantic's
    ``input`` (it would echo plaintext, records or keys back into responses and logs)."""
    problems = [{"field": ".".join(str(p) for p in e["loc"]), "problem": e["msg"]} for e in exc.errors()]
    return InvalidRequestError(message, problems=problems[:MAX_PROBLEMS])


def refused(exc: ReliquaryError, action: str) -> dict[str, Any]:
    return {"status": "error", "action": action, "error": exc.to_dict()}


def succeeded(action: str, result: dict[str, Any]) -> dict[str, Any]:
    return {"status": "ok", "action": action, "result": result}


def event_action(event: Any) -> str:
    """The ``action`` an event names, or "" (for refusing an event that is not even an object)."""
    action = event.get("action", "") if isinstance(event, dict) else ""
    return action if isinstance(action, str) else ""
