"""The SDK's typed errors: one class per stable ``code`` of the API's RFC 9457 problems.

The API answers every error as ``application/problem+json`` with a stable ``code`` (docs/api.md,
"Errors"). The SDK turns each into the class below with that code, so callers catch
``NotFoundError`` or ``RateLimitedError`` instead of matching strings. The list mirrors the service's
(``layers/core/reliquary/errors.py``) without importing it: the SDK installs on its own. A code the SDK
does not know yet becomes the base ``ReliquaryError`` with the code kept, never a crash.

Errors the SDK raises itself, before or without an answer (a transport failure, an answer that is not
a problem, a missing optional dependency), have their own codes and no HTTP status.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import httpx

__all__ = [
    "ApiError",
    "AttestationError",
    "AuditError",
    "AuthenticationError",
    "BadIndexError",
    "BodyIntegrityError",
    "CheckpointError",
    "ConflictError",
    "DecisionRequiredError",
    "DidResolutionError",
    "ForbiddenError",
    "IdempotencyConflictError",
    "InternalError",
    "InvalidClientError",
    "InvalidDidError",
    "InvalidEnvelopeError",
    "InvalidJwsError",
    "InvalidRequestError",
    "InvalidScopeError",
    "InvalidSignatureError",
    "ItemExpiredError",
    "ItemShreddedError",
    "KeyVersionError",
    "LogInconsistentError",
    "MethodNotAllowedError",
    "MissingDependencyError",
    "NonceExpiredError",
    "NonceUnknownError",
    "NonceUsedError",
    "NotFoundError",
    "NullifierSeenError",
    "PasskeyError",
    "PayloadTooLargeError",
    "ProofError",
    "ProofLengthError",
    "RateLimitedError",
    "ReliquaryError",
    "ReplayError",
    "RootMismatchError",
    "RootOfTrustError",
    "RulesRefusedError",
    "StorageUnavailableError",
    "TimeoutError",
    "TransientError",
    "TransportError",
    "UnexpectedResponseError",
    "UnsupportedAlgorithmError",
    "UnsupportedGrantTypeError",
    "error_class_for",
    "error_from_problem",
    "error_from_response",
    "parse_retry_after",
]


class ReliquaryError(Exception):
    """Every error the SDK raises. ``code`` is the API's stable code; the rest is the problem's."""

    code: str = "internal_error"
    http_status: ClassVar[int | None] = None
    default_retryable: ClassVar[bool] = False

    def __init__(
        self,
        detail: str = "",
        *,
        code: str | None = None,
        title: str | None = None,
        status: int | None = None,
        request_id: str | None = None,
        retryable: bool | None = None,
        details: Mapping[str, Any] | None = None,
        errors: list[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(detail or title or (code or self.code))
        # An unknown code keeps the server's spelling on the instance; known ones use the class's.
        self.code = code or self.code
        self.title = title
        self.detail = detail
        self.status = status if status is not None else self.http_status
        self.request_id = request_id
        self.retryable = self.default_retryable if retryable is None else retryable
        self.details: dict[str, Any] = dict(details or {})
        self.errors: list[dict[str, Any]] = list(errors or [])

    @property
    def retry_after(self) -> float | None:
        """Seconds the service asked to wait (``details.retry_after`` or the ``Retry-After`` header)."""
        value = self.details.get("retry_after")
        return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None

    def __repr__(self) -> str:
        name = type(self).__name__
        return f"{name}(code={self.code!r}, status={self.status!r}, request_id={self.request_id!r})"


# --- the API's codes (docs/api.md "Errors"; the service's errors.py) -----------------------------
class InternalError(ReliquaryError):
    code = "internal_error"
    http_status = 500


class InvalidRequestError(ReliquaryError):
    """A malformed request; ``errors`` lists each field's ``location`` and ``type``."""

    code = "invalid_request"
    http_status = 400


class AuthenticationError(ReliquaryError):
    code = "unauthenticated"
    http_status = 401


class MethodNotAllowedError(InvalidRequestError):
    code = "method_not_allowed"
    http_status = 405


class UnsupportedGrantTypeError(InvalidRequestError):
    code = "unsupported_grant_type"


class InvalidClientError(AuthenticationError):
    code = "invalid_client"


class InvalidScopeError(InvalidRequestError):
    code = "invalid_scope"


class ForbiddenError(ReliquaryError):
    """The token lacks a scope (``details.scope``) or is not a person's (``details.check``)."""

    code = "forbidden"
    http_status = 403


class RateLimitedError(ReliquaryError):
    code = "rate_limited"
    http_status = 429
    default_retryable = True


class NotFoundError(ReliquaryError):
    code = "not_found"
    http_status = 404


class ConflictError(ReliquaryError):
    code = "conflict"
    http_status = 409


class IdempotencyConflictError(ConflictError):
    code = "idempotency_conflict"


class ItemShreddedError(ReliquaryError):
    code = "item_shredded"
    http_status = 410


class ItemExpiredError(ItemShreddedError):
    code = "item_expired"


class KeyVersionError(ReliquaryError):
    code = "key_version"
    http_status = 409


class PayloadTooLargeError(InvalidRequestError):
    code = "payload_too_large"
    http_status = 413


class InvalidEnvelopeError(ReliquaryError):
    code = "invalid_envelope"
    http_status = 400


class InvalidSignatureError(ReliquaryError):
    code = "invalid_signature"
    http_status = 400


class UnsupportedAlgorithmError(InvalidRequestError):
    code = "unsupported_algorithm"


class TransientError(ReliquaryError):
    code = "transient"
    http_status = 503
    default_retryable = True


class StorageUnavailableError(TransientError):
    code = "storage_unavailable"


class BodyIntegrityError(ReliquaryError):
    code = "body_integrity"
    http_status = 500


class RootOfTrustError(ReliquaryError):
    code = "root_of_trust"
    http_status = 500


class AuditError(ReliquaryError):
    code = "audit"
    http_status = 400


class ProofError(AuditError):
    code = "invalid_proof"


class RootMismatchError(ProofError):
    code = "root_mismatch"


class BadIndexError(ProofError):
    code = "bad_index"


class ProofLengthError(ProofError):
    code = "proof_length"


class CheckpointError(AuditError):
    code = "invalid_checkpoint"


class LogInconsistentError(AuditError):
    code = "log_inconsistent"
    http_status = 500


class ReplayError(ReliquaryError):
    code = "replay"
    http_status = 409


class NonceUnknownError(ReplayError):
    code = "nonce_unknown"


class NonceExpiredError(ReplayError):
    code = "nonce_expired"


class NonceUsedError(ReplayError):
    code = "nonce_used"


class NullifierSeenError(ReplayError):
    code = "nullifier_seen"


class PasskeyError(ReliquaryError):
    """A refused passkey ceremony; ``details.check`` names the check."""

    code = "passkey_invalid"
    http_status = 400


class RulesRefusedError(ReliquaryError):
    code = "rules_refused"
    http_status = 403


class DecisionRequiredError(ReliquaryError):
    code = "decision_required"
    http_status = 403


class AttestationError(ReliquaryError):
    code = "attestation_invalid"
    http_status = 403


class InvalidDidError(InvalidRequestError):
    code = "invalid_did"


class DidResolutionError(ReliquaryError):
    code = "did_resolution"
    http_status = 400


class InvalidJwsError(InvalidRequestError):
    code = "invalid_jws"


# --- raised by the SDK itself --------------------------------------------------------------------
class ApiError(ReliquaryError):
    """Marker base for errors the SDK raises without a problem from the service."""

    code = "sdk"


class TransportError(ApiError):
    """The request did not get an answer (connection refused, reset, DNS). Retried where safe."""

    code = "transport"
    default_retryable = True


class TimeoutError(TransportError):  # noqa: A001  (the SDK's own, a TransportError; builtins untouched)
    code = "timeout"


class UnexpectedResponseError(ApiError):
    """An answer that is neither what the route documents nor an RFC 9457 problem."""

    code = "unexpected_response"


class MissingDependencyError(ApiError):
    """An optional part of the SDK needs a module that is not installed."""

    code = "missing_dependency"


def _api_classes() -> dict[str, type[ReliquaryError]]:
    found: dict[str, type[ReliquaryError]] = {}
    pending: list[type[ReliquaryError]] = [ReliquaryError]
    while pending:
        cls = pending.pop()
        for sub in cls.__subclasses__():
            if not issubclass(sub, ApiError):
                found.setdefault(sub.code, sub)
                pending.append(sub)
    return found


_BY_CODE = _api_classes()


def error_class_for(code: str) -> type[ReliquaryError]:
    """The class of a stable API code; ``ReliquaryError`` for a code this SDK version does not know."""
    return _BY_CODE.get(code, ReliquaryError)


def _str(value: object) -> str | None:
    return value if isinstance(value, str) else None


def error_from_problem(
    problem: Mapping[str, Any],
    *,
    status: int,
    request_id: str | None = None,
    retry_after: float | None = None,
) -> ReliquaryError:
    """The typed error of an RFC 9457 problem body (``status`` is the answer's, which wins)."""
    code = _str(problem.get("code")) or _code_for_status(status)
    raw_details = problem.get("details")
    details: dict[str, Any] = dict(raw_details) if isinstance(raw_details, Mapping) else {}
    if retry_after is not None and "retry_after" not in details:
        details["retry_after"] = retry_after
    raw_errors = problem.get("errors")
    errors = [dict(e) for e in raw_errors if isinstance(e, Mapping)] if isinstance(raw_errors, list) else []
    retryable = problem.get("retryable")
    cls = error_class_for(code)
    return cls(
        _str(problem.get("detail")) or "",
        code=code,
        title=_str(problem.get("title")),
        status=status,
        request_id=_str(problem.get("request_id")) or request_id,
        retryable=retryable if isinstance(retryable, bool) else None,
        details=details,
        errors=errors,
    )


_STATUS_CODES = {
    400: "invalid_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    410: "item_shredded",
    413: "payload_too_large",
    429: "rate_limited",
    503: "transient",
}


def _code_for_status(status: int) -> str:
    # A gateway's answer (API Gateway's own 429 or 502) carries no code: the status still types it.
    return _STATUS_CODES.get(status, "internal_error")


def parse_retry_after(value: str | None) -> float | None:
    """``Retry-After`` in seconds (the API sends delta-seconds); ``None`` when absent or not usable."""
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None  # an HTTP-date: the caller falls back to its own backoff
    return seconds if 0 <= seconds <= 3600 else None


def error_from_response(response: httpx.Response) -> ReliquaryError:
    """The typed error of an answer that is not a success (its body read)."""
    try:
        body = response.json()
    except ValueError:
        body = {}
    return error_from_problem(
        body if isinstance(body, Mapping) else {},
        status=response.status_code,
        request_id=response.headers.get("X-Request-Id"),
        retry_after=parse_retry_after(response.headers.get("Retry-After")),
    )
