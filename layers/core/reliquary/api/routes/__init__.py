"""The API's routes, one module per resource (docs/api.md lists them with their scopes)."""

from __future__ import annotations

from typing import Any

from reliquary.api.problems import PROBLEM_MEDIA_TYPE, Problem

_WORDS = {
    400: "Malformed request (`invalid_request` and its kinds)",
    401: "No valid access token (`unauthenticated`)",
    403: "The token's scopes do not allow this (`forbidden`), or the flow refused",
    404: "No such resource in this tenant (`not_found`)",
    409: "Conflicts with the current state (`conflict`, `idempotency_conflict`, `key_version`)",
    410: "The memory was crypto-shredded (`item_shredded`, `item_expired`)",
    413: "The body is too large (`payload_too_large`)",
    429: "Too many requests (`rate_limited`); see Retry-After",
    500: "An unexpected failure (`internal_error`)",
    503: "A dependency is unavailable (`transient`, `storage_unavailable`); retry",
}


def problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI responses for the errors a route can answer (every route: 400, 413, 429, 500, 503)."""
    wanted = sorted({400, 413, 429, 500, 503, *statuses})
    return {
        status: {
            "model": Problem,
            "description": _WORDS[status],
            "content": {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}},
        }
        for status in wanted
    }


AUTHED = (401, 403)
