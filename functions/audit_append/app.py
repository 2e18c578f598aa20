"""The audit-append function: append records to a tenant's transparency log and return receipts, record
the access flow's decision (the RecordDecision task), publish checkpoints, export, verify (fsck), and
anchor checkpoints in public (``anchor`` for one log, ``anchor_due`` on a schedule).

Deterministic failures (bad input, a request id reused with another record, a log that fails
verification) come back as ``{"status": "error", "error": {code, type, message}}``; only transient
failures raise, so Step Functions' Retry acts on them. Idempotent by construction: the log holds one
record per (tenant, request id), and a retried append returns the first append's leaf index.
"""

from __future__ import annotations

from reliquary.coldstart import deferred_collection

# Loaded once per container, the collector off (reliquary/coldstart.py).
with deferred_collection():
    import functools
    from typing import Any

    from pydantic import TypeAdapter

    from reliquary.actions.audit import run_audit_action
    from reliquary.adapters.audit_factory import AuditRuntime, build_audit
    from reliquary.config import get_settings
    from reliquary.contracts.audit import AuditRequest
    from reliquary.handlers import handle_action
    from reliquary.observability import build_logger, build_metrics, build_tracer

    SERVICE = "reliquary-audit-append"
    logger = build_logger(SERVICE)
    metrics = build_metrics(SERVICE)
    tracer = build_tracer(SERVICE)
    _REQUEST: TypeAdapter[Any] = TypeAdapter(AuditRequest)


@functools.cache
def runtime() -> AuditRuntime:
    """Adapters, clients and checkpoint keys, built once per cold start (on the first invocation)."""
    return build_audit(get_settings())


def reset_runtime() -> None:
    """Forget the cold-start state (tests that switch settings between invocations)."""
    runtime.cache_clear()


def handle(event: Any, current: AuditRuntime) -> dict[str, Any]:
    return handle_action(
        event,
        _REQUEST,
        lambda request: run_audit_action(
            current.service, current.decisions, request, anchorer=current.anchorer
        ),
        logger=logger,
        metrics=metrics,
    )


@tracer.capture_lambda_handler
# log_event=False: records name principals only by keyed hash, but events are still not for logs.
@logger.inject_lambda_context(clear_state=True, log_event=False)
@metrics.log_metrics
def handler(event: Any, context: Any) -> dict[str, Any]:  # noqa: ARG001  (the Lambda signature)
    return handle(event, runtime())
