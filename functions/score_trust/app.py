"""The score-trust function: the access flow's ScoreTrust task (a score in [0, 1] with its band and every
factor's value, weight and contribution, the rule set's outcome with the policy version, and the device
and region the history was read with), the RecordOutcome task (the decided outcome into the principal's
access history, once per request), recording an outcome directly, and setting a vault's trust policy.

Malformed input is ``{"status": "error", ...}``; only transient failures raise, for Step Functions' Retry.
"""

from __future__ import annotations

import functools
from typing import Any

from pydantic import TypeAdapter

from reliquary.adapters.trust_factory import build_trust_service
from reliquary.config import get_settings
from reliquary.contracts.score_trust import (
    RecordOutcomeRequest,
    RecordRequest,
    ScoreRequest,
    ScoreTrustRequest,
    SetPolicyRequest,
)
from reliquary.errors import InvalidRequestError
from reliquary.handlers import handle_action
from reliquary.observability import build_logger, build_metrics, build_tracer
from reliquary.trust.model import AccessEvent, ContextFacts, Principal, TrustRequest
from reliquary.trust.service import TrustService, flow_outcome

SERVICE = "reliquary-score-trust"
logger = build_logger(SERVICE)
metrics = build_metrics(SERVICE)
tracer = build_tracer(SERVICE)
_REQUEST: TypeAdapter[Any] = TypeAdapter(ScoreTrustRequest)


@functools.cache
def runtime() -> TrustService:
    """The trust service (history and vault trust policies), built once per cold start."""
    return build_trust_service(get_settings())


def reset_runtime() -> None:
    runtime.cache_clear()


def context_facts(request: ScoreRequest) -> ContextFacts:
    """What the verified proof showed: a claim counts only when the proof verified (the verifier already
    checked each public parameter against the vault's policy)."""
    verified, claims = request.context.verified, request.context.claims
    return ContextFacts(
        verified=verified,
        device_known=verified and "device_commitment" in claims,
        region_allowed=verified and "region_root" in claims,
        in_window=verified and "window_start" in claims,
        pattern_matched=verified and "pattern_commitment" in claims,
    )


def _run(service: TrustService, request: Any) -> dict[str, Any]:
    if isinstance(request, SetPolicyRequest):
        service.set_policy(request.tenant_id, request.vault_id, request.policy)
        policy = request.policy
        return {"template": policy.template, "policy_version": policy.rule_set().policy_version}
    if isinstance(request, RecordRequest):
        event = AccessEvent(
            time=request.time, outcome=request.outcome, device=request.device, region=request.region
        )
        service.record(request.tenant_id, request.subject, event, event_id=request.request_id)
        return {"recorded": True}
    if isinstance(request, RecordOutcomeRequest):
        verified = request.context is not None and request.context.verified
        outcome = flow_outcome(request.decision.decision, verified=verified)
        place = request.trust
        event = AccessEvent(
            time=request.decided_at,
            outcome=outcome,
            device="unknown" if place is None else place.device,
            region="unknown" if place is None else place.region,
        )
        service.record(request.tenant_id, request.principal.subject, event, event_id=request.request_id)
        return {"recorded": True, "outcome": outcome}
    if not isinstance(request, ScoreRequest):  # the union's last member; fail closed on anything else
        raise InvalidRequestError("unknown action")
    device = request.device or str(request.context.claims.get("device_commitment", "unknown"))
    trust_request = TrustRequest(
        tenant_id=request.tenant_id,
        vault_id=request.vault_id,
        item_id=request.item_id,
        principal=Principal(subject=request.principal.subject, roles=request.principal.roles),
        sensitivity=request.sensitivity,
        purpose=request.purpose,
        context=context_facts(request),
        device=device[:256],
        region=request.region,
        now=service.now,
    )
    return service.decide(trust_request).to_dict()


def handle(event: Any, service: TrustService) -> dict[str, Any]:
    return handle_action(
        event, _REQUEST, lambda request: _run(service, request), logger=logger, metrics=metrics
    )


@tracer.capture_lambda_handler
# log_event=False: events name principals; logs carry only codes.
@logger.inject_lambda_context(clear_state=True, log_event=False)
@metrics.log_metrics
def handler(event: Any, context: Any) -> dict[str, Any]:  # noqa: ARG001  (the Lambda signature)
    return handle(event, runtime())
