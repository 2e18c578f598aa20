"""The SDK's errors mirror the service's stable codes, and a problem body becomes its typed error."""

from __future__ import annotations

import inspect

import pytest
import reliquary_sdk.errors as sdk_errors
from reliquary_sdk.errors import (
    ForbiddenError,
    IdempotencyConflictError,
    NotFoundError,
    RateLimitedError,
    ReliquaryError,
    TransientError,
    error_class_for,
    error_from_problem,
)

from reliquary import errors as core_errors


def _core_classes() -> list[type[core_errors.ReliquaryError]]:
    return [
        cls
        for _, cls in inspect.getmembers(core_errors, inspect.isclass)
        if issubclass(cls, core_errors.ReliquaryError) and cls is not core_errors.ReliquaryError
    ]


_CORE_BASE = core_errors.ReliquaryError
# Codes the service keeps to itself (a deployment's misconfiguration): never in an answer.
_INTERNAL_ONLY = {"configuration", "native_library"}


@pytest.mark.parametrize("core_cls", _core_classes(), ids=lambda c: c.code)
def test_every_service_code_has_its_sdk_class_with_the_same_status_and_retryability(
    core_cls: type[core_errors.ReliquaryError],
) -> None:
    if core_cls.code in _INTERNAL_ONLY:
        assert error_class_for(core_cls.code) is ReliquaryError
        return
    sdk_cls = error_class_for(core_cls.code)
    assert sdk_cls is not ReliquaryError, core_cls.code
    assert sdk_cls.http_status == core_cls.http_status
    assert sdk_cls.default_retryable == core_cls.retryable
    # The hierarchy is the service's: catching the parent catches the child in both.
    for core_parent in core_cls.__mro__[1:]:
        if not issubclass(core_parent, core_errors.ReliquaryError) or core_parent is _CORE_BASE:
            continue
        if core_parent.code not in _INTERNAL_ONLY:
            assert issubclass(sdk_cls, error_class_for(core_parent.code)), (core_cls.code, core_parent.code)


def test_problem_becomes_its_typed_error_with_every_member() -> None:
    error = error_from_problem(
        {
            "type": "urn:reliquary:problem:forbidden",
            "title": "Forbidden",
            "status": 403,
            "detail": "the token lacks a scope",
            "code": "forbidden",
            "request_id": "req-1",
            "retryable": False,
            "details": {"scope": "memories:write"},
        },
        status=403,
    )
    assert isinstance(error, ForbiddenError)
    assert (error.code, error.status, error.title) == ("forbidden", 403, "Forbidden")
    assert error.request_id == "req-1"
    assert error.details == {"scope": "memories:write"}
    assert error.retryable is False
    assert str(error) == "the token lacks a scope"


def test_subclass_codes_are_caught_by_their_parent() -> None:
    error = error_from_problem({"code": "idempotency_conflict"}, status=409)
    assert isinstance(error, IdempotencyConflictError)
    with pytest.raises(sdk_errors.ConflictError):
        raise error


def test_rate_limited_carries_retry_after_from_the_header_when_the_body_has_none() -> None:
    error = error_from_problem({"code": "rate_limited", "retryable": True}, status=429, retry_after=3.0)
    assert isinstance(error, RateLimitedError)
    assert error.retryable
    assert error.retry_after == 3.0
    problem = {"code": "rate_limited", "details": {"retry_after": 7}}
    body_wins = error_from_problem(problem, status=429, retry_after=1)
    assert body_wins.retry_after == 7


def test_unknown_code_keeps_the_servers_spelling_on_the_base_class() -> None:
    error = error_from_problem({"code": "brand_new", "detail": "x"}, status=400)
    assert type(error) is ReliquaryError
    assert error.code == "brand_new"
    assert error.status == 400


@pytest.mark.parametrize(
    ("status", "cls"),
    [(404, NotFoundError), (429, RateLimitedError), (503, TransientError), (502, ReliquaryError)],
)
def test_a_gateway_answer_without_a_code_is_typed_by_its_status(
    status: int, cls: type[ReliquaryError]
) -> None:
    error = error_from_problem({"message": "Too Many Requests"}, status=status)
    assert isinstance(error, cls)
    assert error.status == status


def test_malformed_members_are_ignored_not_trusted() -> None:
    error = error_from_problem(
        {"code": 5, "details": ["x"], "errors": "no", "retryable": "yes", "request_id": 9},
        status=404,
        request_id="hdr",
    )
    assert isinstance(error, NotFoundError)
    assert error.details == {}
    assert error.errors == []
    assert error.retryable is False
    assert error.request_id == "hdr"
