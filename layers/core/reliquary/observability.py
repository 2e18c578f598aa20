"""Structured logging, metrics and tracing through aws-lambda-powertools.

The AWS SDK never logs at DEBUG here: botocore writes every request and response body at DEBUG, and
those of KMS carry secrets (``Plaintext`` of Decrypt and GenerateDataKey). A root logger at DEBUG (Lambda's
log level setting, ``LOG_LEVEL``) would otherwise put them in the function's logs. ``quiet_aws_sdk`` pins
the SDK's loggers at INFO and drops any DEBUG record they make still; it runs where each function builds
its logger and each time an AWS client is built (after the SDK has loaded the modules that log).

Tracing is off outside Lambda: powertools' Tracer imports aws_xray_sdk (~350 ms), which would dominate
the cold start of local runs and tests, so outside Lambda (or with POWERTOOLS_TRACE_DISABLED) a no-op
tracer with the same decorators stands in. On Lambda the Tracer patches botocore only (``TRACED_MODULES``):
every AWS call, pynamodb's included, goes through botocore's client, so each is one subsegment. Its default
(``patch_all``) would import requests, httpx and sqlite3 at cold start, which no function calls, and would
trace each DynamoDB call two more times (pynamodb's and httplib's patches of the same request).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricResolution, MetricUnit
from aws_lambda_powertools.metrics.functions import is_metrics_disabled

F = TypeVar("F", bound=Callable[..., Any])

# What X-Ray traces: botocore's client, through which every AWS call of every function goes.
TRACED_MODULES = ("botocore",)
# pynamodb too: at DEBUG it logs each call's arguments (the items written, wrapped keys included).
AWS_SDK_LOGGERS = ("botocore", "boto3", "urllib3", "s3transfer", "pynamodb")


class _NoDebug(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno > logging.DEBUG


_NO_DEBUG = _NoDebug()


def _in_aws_sdk(name: str) -> bool:
    return any(name == top or name.startswith(f"{top}.") for top in AWS_SDK_LOGGERS)


def quiet_aws_sdk() -> None:
    """No DEBUG record from the AWS SDK, whatever level the root logger or a configuration sets.

    The SDK's top loggers are pinned at INFO or above, which every logger below them without a level
    of its own inherits (also those created later); each of their loggers that exists gets a filter that
    drops DEBUG records, for one whose level is set to DEBUG after this ran. Idempotent."""
    for name in AWS_SDK_LOGGERS:
        top = logging.getLogger(name)
        if top.level < logging.INFO:  # NOTSET (0) included: it would inherit the root's level
            top.setLevel(logging.INFO)
    for name, logger in list(logging.Logger.manager.loggerDict.items()):
        if isinstance(logger, logging.Logger) and _in_aws_sdk(name):
            if logging.NOTSET < logger.level < logging.INFO:
                logger.setLevel(logging.INFO)
            if _NO_DEBUG not in logger.filters:
                logger.addFilter(_NO_DEBUG)


class TracerLike(Protocol):
    def capture_lambda_handler(self, lambda_handler: Any) -> Any: ...
    def capture_method(self, method: Any) -> Any: ...
    def put_annotation(self, key: str, value: Any) -> Any: ...


class _NoTracer:
    """Stands in for powertools' Tracer where tracing is off."""

    def capture_lambda_handler(self, lambda_handler: F) -> F:
        return lambda_handler

    def capture_method(self, method: F) -> F:
        return method

    def put_annotation(self, key: str, value: Any) -> None:
        pass


def tracing_enabled() -> bool:
    in_lambda = "AWS_LAMBDA_FUNCTION_NAME" in os.environ
    disabled = os.environ.get("POWERTOOLS_TRACE_DISABLED", "").lower() in {"1", "true"}
    return in_lambda and not disabled


def build_tracer(service: str) -> TracerLike:
    if not tracing_enabled():
        return _NoTracer()
    from aws_lambda_powertools import Tracer  # noqa: PLC0415  (only paid where tracing is on)

    from reliquary.adapters.botocore_http import load_http  # noqa: PLC0415

    load_http()  # the patch imports botocore: its HTTP layer without pyOpenSSL, as the adapters load it
    tracer: TracerLike = Tracer(service=service, patch_modules=TRACED_MODULES)
    return tracer


def build_logger(service: str) -> Logger:
    logger = Logger(service=service)
    quiet_aws_sdk()
    return logger


class _Metrics(Metrics):
    """powertools' Metrics, keeping nothing while metrics are disabled (POWERTOOLS_METRICS_DISABLED, read
    at each call: the local runtime sets a function's environment per invocation). powertools keeps a
    disabled function's values and, once 100 of one metric pile up, prints them regardless."""

    def add_metric(
        self, name: str, unit: MetricUnit | str, value: float, resolution: MetricResolution | int = 60
    ) -> None:
        if is_metrics_disabled():
            return
        super().add_metric(name, unit, value, resolution)


def build_metrics(service: str) -> Metrics:
    return _Metrics(service=service, namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "Reliquary"))
