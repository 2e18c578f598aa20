"""Fixtures for the function handlers: a Lambda context stand-in and cold-started handlers."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from functions.agent_vote import app as vote_app
from functions.audit_append import app as audit_app
from functions.encrypt import app
from functions.score_trust import app as trust_app
from functions.verify_proof import app as verify_app
from tests.support.aws import AwsStack


@dataclass(frozen=True)
class LambdaContext:
    """The attributes of the Lambda context that powertools reads."""

    function_name: str = "reliquary-test-encrypt"
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 1024
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:reliquary-test-encrypt"
    aws_request_id: str = "00000000-0000-4000-8000-000000000000"
    remaining_millis: int = 30_000

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_millis


Invoke = Callable[[Any], dict[str, Any]]


@pytest.fixture
def lambda_context() -> LambdaContext:
    return LambdaContext()


def _cold_started(app: Any, context: LambdaContext) -> Iterator[Invoke]:
    app.reset_runtime()

    def invoke(event: Any) -> dict[str, Any]:
        payload: dict[str, Any] = app.handler(event, context)
        return payload

    try:
        yield invoke
    finally:
        app.reset_runtime()


@pytest.fixture
def encrypt(aws: AwsStack, lambda_context: LambdaContext) -> Iterator[Invoke]:
    """``handler(event, context)`` of the encrypt function, cold-started against this test's moto stack."""
    yield from _cold_started(app, lambda_context)


@pytest.fixture
def audit_append(aws: AwsStack, lambda_context: LambdaContext) -> Iterator[Invoke]:
    """``handler(event, context)`` of the audit-append function, cold-started against this test's moto."""
    yield from _cold_started(audit_app, lambda_context)


@pytest.fixture
def verify_proof(aws: AwsStack, lambda_context: LambdaContext) -> Iterator[Invoke]:
    """``handler(event, context)`` of the verify-proof function, cold-started against this test's moto."""
    yield from _cold_started(verify_app, lambda_context)


@pytest.fixture
def score_trust(aws: AwsStack, lambda_context: LambdaContext) -> Iterator[Invoke]:
    """``handler(event, context)`` of the score-trust function, cold-started against this test's moto."""
    yield from _cold_started(trust_app, lambda_context)


@pytest.fixture
def agent_vote(aws: AwsStack, lambda_context: LambdaContext) -> Iterator[Invoke]:
    """``handler(event, context)`` of the agent-vote function, cold-started against this test's moto."""
    yield from _cold_started(vote_app, lambda_context)
