"""What every function's handler does around its action: parse the event into the action's request, run
it, and answer in the one response shape (``contracts.responses``), with the same logs and metrics.

Deterministic failures come back as a refusal (never a stack trace); transient ones are re-raised, so a
Step Functions Retry (or the caller) can act on them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from pydantic import TypeAdapter, ValidationError

from reliquary.contracts.responses import event_action, invalid_request, refused, succeeded
from reliquary.errors import ReliquaryError


def refuse(exc: ReliquaryError, action: str, *, logger: Logger, metrics: Metrics) -> dict[str, Any]:
    metrics.add_metric(name="Rejected", unit=MetricUnit.Count, value=1)
    logger.info("request refused", extra={"action": action, "code": exc.code})
    return refused(exc, action)


def handle_action(
    event: Any,
    requests: TypeAdapter[Any],
    run: Callable[[Any], dict[str, Any]],
    *,
    logger: Logger,
    metrics: Metrics,
) -> dict[str, Any]:
    """Validate ``event`` as one of ``requests``, ``run`` it, and answer."""
    action = event_action(event, requests)
    try:
        request = requests.validate_python(event)
    except ValidationError as exc:
        return refuse(invalid_request(exc, schema=requests), action, logger=logger, metrics=metrics)
    except ReliquaryError as exc:  # a model's own checks (e.g. a policy that must load) name the problem
        if exc.retryable:
            raise
        return refuse(exc, action, logger=logger, metrics=metrics)
    # A scheduled action over every tenant (anchor_due) names none.
    logger.append_keys(action=request.action, tenant_id=getattr(request, "tenant_id", None))
    # Each line of the invocation names its request (a validated identifier), for retries and incidents.
    request_id = getattr(request, "request_id", None)
    if isinstance(request_id, str):
        logger.append_keys(request_id=request_id)
    try:
        result = run(request)
    except ReliquaryError as exc:
        if exc.retryable:
            metrics.add_metric(name="Transient", unit=MetricUnit.Count, value=1)
            logger.warning("transient failure", extra={"code": exc.code})
            raise
        return refuse(exc, action, logger=logger, metrics=metrics)
    metrics.add_metric(name="Succeeded", unit=MetricUnit.Count, value=1)
    logger.info("request handled")
    return succeeded(request.action, result)
