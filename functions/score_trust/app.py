"""The score-trust function: the access flow's ScoreTrust task (an explained score in [0, 1], the rules'
outcome with the policy version, the item version and label that were scored, signed with this function's
stage key and built on VerifyContext's attestation), the RecordOutcome task (the decided outcome into the
principal's history, once per request), recording an outcome directly, and setting a vault's trust policy.

``score`` is idempotent on (tenant_id, request_id) for the idempotency TTL: a retried or re-driven
ScoreTrust returns the stored result, not a fresh score from a later clock and a history that since holds
this request's own outcome. A request id reused with a different request is ``idempotency_conflict``.

Malformed input is ``{"status": "error", ...}``; only transient failures raise, for Step Functions' Retry.
"""

from __future__ import annotations

from reliquary.coldstart import deferred_collection

# Loaded once per container, the collector off (reliquary/coldstart.py).
with deferred_collection():
    import functools
    from typing import Any, assert_never

    from pydantic import TypeAdapter

    from reliquary.adapters.trust_factory import ScoreTrustRuntime, build_score_trust
    from reliquary.config import get_settings
    from reliquary.contracts.flow import RecordOutcomeTask, ScoreTrustTask
    from reliquary.contracts.score_trust import RecordRequest, ScoreTrustRequest, SetPolicyRequest
    from reliquary.handlers import handle_action
    from reliquary.observability import build_logger, build_metrics, build_tracer

    SERVICE = "reliquary-score-trust"
    logger = build_logger(SERVICE)
    metrics = build_metrics(SERVICE)
    tracer = build_tracer(SERVICE)
    _REQUEST: TypeAdapter[Any] = TypeAdapter(ScoreTrustRequest)


@functools.cache
def runtime() -> ScoreTrustRuntime:
    """The trust service, the stage and the idempotent score, built once per cold start."""
    return build_score_trust(get_settings())


def reset_runtime() -> None:
    runtime.cache_clear()


def _run(
    current: ScoreTrustRuntime, request: ScoreTrustTask | RecordOutcomeTask | RecordRequest | SetPolicyRequest
) -> dict[str, Any]:
    match request:
        case ScoreTrustTask():
            return current.score(request.flow, started_at=request.started_at).model_dump(mode="json")
        case RecordOutcomeTask():
            outcome = current.stage.record_outcome(request.flow, decided_at=request.decided_at)
            return {"recorded": True, "outcome": outcome}
        case RecordRequest():
            current.service.record(
                request.tenant_id, request.subject, request.event(), event_id=request.request_id
            )
            return {"recorded": True}
        case SetPolicyRequest():
            current.service.set_policy(request.tenant_id, request.vault_id, request.policy)
            policy = request.policy
            return {"template": policy.template, "policy_version": policy.rule_set().policy_version}
    assert_never(request)  # mypy proves the match exhaustive


def handle(event: Any, context: Any, current: ScoreTrustRuntime) -> dict[str, Any]:
    current.register_lambda_context(context)
    return handle_action(
        event, _REQUEST, lambda request: _run(current, request), logger=logger, metrics=metrics
    )


@tracer.capture_lambda_handler
# log_event=False: events name principals; logs carry only codes.
@logger.inject_lambda_context(clear_state=True, log_event=False)
@metrics.log_metrics
def handler(event: Any, context: Any) -> dict[str, Any]:
    return handle(event, context, runtime())
