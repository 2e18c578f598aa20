"""The score-trust function: the access flow's ScoreTrust task (a score in [0, 1] with its band and every
factor's value, weight and contribution, the rule set's outcome with the policy version, and the device
and region the history was read with), the RecordOutcome task (the decided outcome into the principal's
access history, once per request), recording an outcome directly, and setting a vault's trust policy.

``score`` is idempotent on (tenant_id, request_id) for the idempotency TTL: a retried or re-driven
ScoreTrust returns the stored result, not a fresh score from a later clock and a history that since holds
this request's own outcome (the audit log refuses a second, different decision record for a request id).
A request id reused with a different request is refused ``idempotency_conflict``. ``record`` and
``record_outcome`` are idempotent by their own keys; ``set_policy`` is a plain overwrite.

Malformed input is ``{"status": "error", ...}``; only transient failures raise, for Step Functions' Retry.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyAlreadyInProgressError,
    IdempotencyPersistenceLayerError,
    IdempotencyValidationError,
)
from pydantic import TypeAdapter

from reliquary.adapters.trust_factory import build_trust_service, dynamodb_client
from reliquary.config import Settings, get_settings
from reliquary.contracts.score_trust import (
    RecordOutcomeRequest,
    RecordRequest,
    ScoreRequest,
    ScoreTrustRequest,
    SetPolicyRequest,
)
from reliquary.errors import (
    IdempotencyConflictError,
    InvalidRequestError,
    StorageUnavailableError,
    TransientError,
)
from reliquary.handlers import handle_action
from reliquary.observability import build_logger, build_metrics, build_tracer
from reliquary.trust.model import AccessEvent, ContextFacts, Principal, TrustRequest
from reliquary.trust.service import TrustService, flow_outcome

SERVICE = "reliquary-score-trust"
logger = build_logger(SERVICE)
metrics = build_metrics(SERVICE)
tracer = build_tracer(SERVICE)
_REQUEST: TypeAdapter[Any] = TypeAdapter(ScoreTrustRequest)
# What must match when a request id is reused: everything of the request the score reads, besides the
# clock, the history and the vault's policy (which is why a retry gets the stored result). The context is
# the verified flag and the claims the proof showed (they name the proof: nullifier, request hash).
_PAYLOAD_FIELDS = "[vault_id, item_id, principal, purpose, sensitivity, region, device, context]"

Score = Callable[..., dict[str, Any]]


@dataclass(frozen=True, slots=True)
class Runtime:
    service: TrustService
    score: Score  # ``score(request=<ScoreRequest as JSON>)``, once per (tenant_id, request_id)
    config: IdempotencyConfig


def _idempotent_score(
    service: TrustService, settings: Settings, client: Any
) -> tuple[Score, IdempotencyConfig]:
    config = IdempotencyConfig(
        event_key_jmespath="[tenant_id, request_id]",
        payload_validation_jmespath=_PAYLOAD_FIELDS,
        raise_on_no_idempotency_key=True,
        expires_after_seconds=settings.idempotency_ttl_seconds,
        hash_function="sha256",
    )
    persistence = DynamoDBPersistenceLayer(table_name=settings.idempotency_table, boto3_client=client)

    # powertools prefixes keys with the Lambda function's name and this function's qualified name.
    def score_once(request: dict[str, Any]) -> dict[str, Any]:
        return _score(service, ScoreRequest.model_validate(request))

    guarded = idempotent_function(
        data_keyword_argument="request", persistence_store=persistence, config=config
    )
    return cast("Score", guarded(score_once)), config


def build_runtime(settings: Settings) -> Runtime:
    client = dynamodb_client(settings)
    service = build_trust_service(settings, client=client)
    score, config = _idempotent_score(service, settings, client)
    return Runtime(service, score=score, config=config)


@functools.cache
def runtime() -> Runtime:
    """The trust service (history and vault trust policies) and the idempotent score, built once per cold
    start (on the first invocation)."""
    return build_runtime(get_settings())


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


def _score(service: TrustService, request: ScoreRequest) -> dict[str, Any]:
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


def _score_once(current: Runtime, request: ScoreRequest) -> dict[str, Any]:
    """The stored result of this (tenant_id, request_id), or a fresh score stored for the retries."""
    try:
        return current.score(request=request.model_dump(mode="json"))
    except IdempotencyValidationError as exc:
        raise IdempotencyConflictError("request_id was already used with a different request") from exc
    except IdempotencyAlreadyInProgressError as exc:
        raise TransientError("the same request is in progress; retry") from exc
    except IdempotencyPersistenceLayerError as exc:
        raise StorageUnavailableError("the idempotency store is unavailable") from exc


def _run(current: Runtime, request: Any) -> dict[str, Any]:
    service = current.service
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
    return _score_once(current, request)


def handle(event: Any, context: Any, current: Runtime) -> dict[str, Any]:
    # The remaining time bounds how long an interrupted score's "in progress" record blocks its retry.
    current.config.register_lambda_context(context)
    return handle_action(
        event, _REQUEST, lambda request: _run(current, request), logger=logger, metrics=metrics
    )


@tracer.capture_lambda_handler
# log_event=False: events name principals; logs carry only codes.
@logger.inject_lambda_context(clear_state=True, log_event=False)
@metrics.log_metrics
def handler(event: Any, context: Any) -> dict[str, Any]:
    return handle(event, context, runtime())
