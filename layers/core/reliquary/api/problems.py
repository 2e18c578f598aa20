"""Errors as RFC 9457 problem details (``application/problem+json``), from the one error hierarchy.

Every answer that is not a success is a problem with the error's stable ``code`` and HTTP status, the
request id and whether a retry can help. Nothing the caller sent is quoted: a malformed request is
described by where its problems are (schema names only) and what kind they are, as the functions'
refusals are (``contracts/responses.py``)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from reliquary.api.context import RequestContext, request_context
from reliquary.contracts.responses import refused
from reliquary.errors import InvalidRequestError, RateLimitedError, ReliquaryError

PROBLEM_MEDIA_TYPE = "application/problem+json"
MAX_LISTED_ERRORS = 20
# The only details a problem carries: values the service chose (a schema name, a check, a scope, a count),
# never an id the caller sent. A function's refusal names the vault or item it looked for, and a 404 that
# said which would echo the request (and another tenant's id back to whoever guessed it).
SHOWN_DETAILS = frozenset({"errors", "field", "check", "scope", "retry_after", "items"})


def problem_type(code: str) -> str:
    return f"urn:reliquary:problem:{code}"


# Titles people read (the approval page shows them): the code in words, unless it reads badly.
_TITLES = {
    "unauthenticated": "Not authenticated",
    "transient": "Temporarily unavailable",
    "passkey_invalid": "Passkey not accepted",
    "attestation_invalid": "Attestation invalid",
    "invalid_proof": "Invalid proof",
    "internal_error": "Internal error",
}


def problem_title(code: str) -> str:
    """The problem type's short summary (RFC 9457 ``title``): the same for every problem of a code."""
    return _TITLES.get(code) or code.replace("_", " ").capitalize()


class FieldProblem(BaseModel):
    location: str = Field(description="Where the problem is, e.g. `body.vault_id` (schema names only).")
    type: str = Field(description="What kind of problem, e.g. `missing`, `string_too_long`.")


class Problem(BaseModel):
    """An RFC 9457 problem, with RELIQUARY's members."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(description="`urn:reliquary:problem:<code>`")
    title: str = Field(description="A short summary of the problem type, e.g. `Not found`.")
    status: int
    detail: str = Field(description="What went wrong, in words that never quote the request.")
    code: str = Field(description="The stable error code (docs/api.md, Errors).")
    request_id: str
    retryable: bool
    errors: list[FieldProblem] | None = None
    details: dict[str, Any] | None = None


def problem_body(exc: ReliquaryError, request_id: str) -> dict[str, Any]:
    bounded = refused(exc, "api")["error"]  # the functions' bounds: message and details clipped
    body: dict[str, Any] = {
        "type": problem_type(exc.code),
        "title": problem_title(exc.code),
        "status": exc.http_status,
        "detail": bounded["message"],
        "code": exc.code,
        "request_id": request_id,
        "retryable": exc.retryable,
    }
    details = bounded.get("details")
    shown = {k: v for k, v in details.items() if k in SHOWN_DETAILS} if isinstance(details, dict) else {}
    if shown:
        body["details"] = shown
    return body


def problem_headers(exc: ReliquaryError) -> dict[str, str]:
    headers: dict[str, str] = {}
    if exc.http_status == 401:
        # RFC 6750 3.1: which scheme, and that the token (if any) was not accepted; never why.
        headers["WWW-Authenticate"] = 'Bearer realm="reliquary", error="invalid_token"'
    if isinstance(exc, RateLimitedError):
        headers["Retry-After"] = str(int(exc.details.get("retry_after", 1)))
    return headers


def _location(parts: Sequence[int | str], names: frozenset[str]) -> str:
    return ".".join(
        str(p) if isinstance(p, int) or p in names or p in {"body", "query", "path", "header"} else "*"
        for p in parts
    )


def validation_problem(errors: Iterable[Mapping[str, Any]], names: frozenset[str]) -> InvalidRequestError:
    """An ``invalid_request`` naming each problem's location (known names only) and type."""
    listed: list[dict[str, str]] = []
    for error in errors:
        if len(listed) == MAX_LISTED_ERRORS:
            break
        listed.append({"location": _location(error.get("loc", ()), names), "type": str(error.get("type"))})
    return InvalidRequestError("the request is malformed: see errors", errors=listed)


def context_of(request: Request) -> RequestContext:
    """The request's context (set by the app's middleware; a fresh one if it never ran)."""
    found = getattr(request.state, "context", None)
    return found if isinstance(found, RequestContext) else request_context("GET", None)


def problem_response(
    exc: ReliquaryError, context: RequestContext, *, members: Mapping[str, Any] | None = None
) -> JSONResponse:
    """``exc`` as a problem+json response; ``members`` adds extension members (the token endpoint's
    RFC 6749 ``error``)."""
    body = problem_body(exc, context.request_id)
    details = body.get("details")
    if isinstance(details, dict) and isinstance(details.get("errors"), list):
        body["errors"] = details.pop("errors")
        if not details:
            del body["details"]
    body.update(members or {})
    headers = {
        **problem_headers(exc),
        "X-Request-Id": context.request_id,
        "X-Correlation-Id": context.correlation_id,
    }
    return JSONResponse(body, status_code=exc.http_status, headers=headers, media_type=PROBLEM_MEDIA_TYPE)
