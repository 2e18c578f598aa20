"""Per-request context of the API: the request id, the correlation id and the caller, on the ASGI scope.

The request id names the request in every answer and log line; for a write it is the caller's
``Idempotency-Key`` (so a retried write is the same request), else a fresh random id. The correlation id
is an X-Ray trace id: the one Lambda was invoked under, else a new one; it is handed to the access
execution (``traceHeader``) so a request can be followed from the API through the state machine."""

from __future__ import annotations

import os
import re
import secrets
import time
import uuid
from dataclasses import dataclass

from reliquary.crypto.scope import validate_id
from reliquary.errors import InvalidRequestError

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_TRACE_ROOT = re.compile(r"Root=(1-[0-9a-f]{8}-[0-9a-f]{24})")


@dataclass(frozen=True, slots=True)
class RequestContext:
    request_id: str
    correlation_id: str
    idempotent: bool  # the request id is the caller's Idempotency-Key


def new_trace_id() -> str:
    return f"1-{int(time.time()):08x}-{secrets.token_hex(12)}"


def correlation_id() -> str:
    """The X-Ray trace id this invocation runs under (Lambda sets ``_X_AMZN_TRACE_ID``), else a new one."""
    found = _TRACE_ROOT.search(os.environ.get("_X_AMZN_TRACE_ID", ""))
    return found.group(1) if found else new_trace_id()


def request_context(method: str, idempotency_key: str | None) -> RequestContext:
    if idempotency_key is not None and method in WRITE_METHODS:
        try:
            validate_id("Idempotency-Key", idempotency_key)
        except InvalidRequestError:
            raise InvalidRequestError(
                "the Idempotency-Key header must be 1-128 characters of letters, digits and ._:@- "
                "(starting with a letter or digit)",
                field="Idempotency-Key",
            ) from None
        return RequestContext(idempotency_key, correlation_id(), idempotent=True)
    return RequestContext(uuid.uuid4().hex, correlation_id(), idempotent=False)
