"""Structured logging, metrics and tracing through aws-lambda-powertools.

Tracing is off outside Lambda: powertools' Tracer imports aws_xray_sdk (~350 ms), which would dominate
the cold start of local runs and tests, so outside Lambda (or with POWERTOOLS_TRACE_DISABLED) a no-op
tracer with the same decorators stands in.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from aws_lambda_powertools import Logger, Metrics

F = TypeVar("F", bound=Callable[..., Any])


class TracerLike(Protocol):
    def capture_lambda_handler(self, lambda_handler: Any) -> Any: ...
    def capture_method(self, method: Any) -> Any: ...


class _NoTracer:
    """Stands in for powertools' Tracer where tracing is off."""

    def capture_lambda_handler(self, lambda_handler: F) -> F:
        return lambda_handler

    def capture_method(self, method: F) -> F:
        return method


def tracing_enabled() -> bool:
    in_lambda = "AWS_LAMBDA_FUNCTION_NAME" in os.environ
    disabled = os.environ.get("POWERTOOLS_TRACE_DISABLED", "").lower() in {"1", "true"}
    return in_lambda and not disabled


def build_tracer(service: str) -> TracerLike:
    if not tracing_enabled():
        return _NoTracer()
    from aws_lambda_powertools import Tracer  # noqa: PLC0415  (only paid where tracing is on)

    tracer: TracerLike = Tracer(service=service)
    return tracer


def build_logger(service: str) -> Logger:
    return Logger(service=service)


def build_metrics(service: str) -> Metrics:
    return Metrics(service=service, namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "Reliquary"))
