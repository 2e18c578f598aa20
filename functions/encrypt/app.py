"""The encrypt function: create_vault, seal, rotate, rewrap, retire, grant, shred, expire; and, fed by
the items table's stream, deletion of the S3 bodies of rows that DynamoDB's TTL removed.

Invoked directly and as the access state machine's Grant task; a grant is issued only for the approval
logged for its request in the tenant's transparency log (read lazily, on the first grant, not at cold
start). Deterministic failures (bad input, not found, conflicts, shredded items, no logged approval) come
back as ``{"status": "error", "error": {code, type, message}}`` with no stack trace; only transient
failures raise, so Step Functions' Retry can act on them.
Idempotent on (tenant_id, request_id): a retried request returns the stored result.
"""

from __future__ import annotations

import functools
import hmac
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from aws_lambda_powertools.metrics import MetricUnit
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
from pydantic import TypeAdapter, ValidationError

from reliquary.adapters.factory import build_vault_service, dynamodb_client
from reliquary.adapters.streams import is_stream_batch, removed_versions
from reliquary.config import Settings, get_settings
from reliquary.contracts.encrypt import EncryptRequest, SealRequest
from reliquary.contracts.responses import event_action, invalid_request, succeeded
from reliquary.errors import (
    IdempotencyConflictError,
    ReliquaryError,
    StorageUnavailableError,
    TransientError,
)
from reliquary.handlers import refuse
from reliquary.observability import build_logger, build_metrics, build_tracer
from reliquary.vaults.actions import run_encrypt_action
from reliquary.vaults.service import VaultService

SERVICE = "reliquary-encrypt"
logger = build_logger(SERVICE)
metrics = build_metrics(SERVICE)
tracer = build_tracer(SERVICE)
_REQUEST: TypeAdapter[Any] = TypeAdapter(EncryptRequest)
# Payload fields that must match when a request id is reused. Not the plaintext itself (powertools stores
# this hash, and a plain hash of a low-entropy secret invites a dictionary attack) but a keyed MAC of it.
_PAYLOAD_FIELDS = (
    "[action, vault_id, item_id, version, key_version, content_type, requester_public_key,"
    " memory_scope, tags, expires_at, custodians, recovery_threshold, plaintext_mac]"
)


@dataclass(frozen=True, slots=True)
class Runtime:
    service: VaultService
    payload_mac_key: bytes  # keys the plaintext MAC compared when a request id is reused
    execute: Callable[..., dict[str, Any]]
    # Grants are stored only as long as a grant lives, so no grant of an item outlives a shred for long
    # in the idempotency table (a retried grant within that window returns the same grant).
    execute_grant: Callable[..., dict[str, Any]]
    configs: tuple[IdempotencyConfig, ...]


def _idempotent(
    service: VaultService, settings: Settings, client: Any, expires_after_seconds: int
) -> tuple[Callable[..., dict[str, Any]], IdempotencyConfig]:
    config = IdempotencyConfig(
        event_key_jmespath="[tenant_id, request_id]",
        payload_validation_jmespath=_PAYLOAD_FIELDS,
        raise_on_no_idempotency_key=True,
        expires_after_seconds=expires_after_seconds,
        hash_function="sha256",
    )
    persistence = DynamoDBPersistenceLayer(table_name=settings.idempotency_table, boto3_client=client)

    # One function name for every action: powertools prefixes keys with it, so a request id reused
    # across actions still meets its first use and is refused as a conflict.
    def execute(request: dict[str, Any]) -> dict[str, Any]:
        fields = {k: v for k, v in request.items() if k != "plaintext_mac"}
        return run_encrypt_action(service, _REQUEST.validate_python(fields))

    guarded = idempotent_function(
        data_keyword_argument="request", persistence_store=persistence, config=config
    )
    return cast("Callable[..., dict[str, Any]]", guarded(execute)), config


def build_runtime(settings: Settings) -> Runtime:
    service = build_vault_service(settings)
    client = dynamodb_client(settings)
    execute, config = _idempotent(service, settings, client, settings.idempotency_ttl_seconds)
    execute_grant, grant_config = _idempotent(service, settings, client, settings.grant_ttl_seconds)
    return Runtime(
        service,
        payload_mac_key=service.service_keys.derive_key("idempotency payload mac"),
        execute=execute,
        execute_grant=execute_grant,
        configs=(config, grant_config),
    )


@functools.cache
def runtime() -> Runtime:
    """Adapters and clients, built once per cold start (on the first invocation)."""
    return build_runtime(get_settings())


def reset_runtime() -> None:
    """Forget the cold-start state (tests that switch settings between invocations)."""
    runtime.cache_clear()


def _error(exc: ReliquaryError, action: str) -> dict[str, Any]:
    return refuse(exc, action, logger=logger, metrics=metrics)


def _purge_expired_bodies(event: Any, current: Runtime) -> dict[str, Any]:
    """The items table's stream: delete the S3 bodies of item versions that DynamoDB's TTL removed.
    Failures raise, so the event source mapping retries the batch (deleting is idempotent)."""
    report = current.service.purge_removed_versions(removed_versions(event))
    metrics.add_metric(name="BodiesPurged", unit=MetricUnit.Count, value=report.purged)
    if report.still_present:
        # A TTL removal reported for a row that still exists: nothing was deleted for it.
        logger.warning("removal reported for live rows", extra={"rows": report.still_present})
    return {
        "status": "ok",
        "action": "purge_expired",
        "result": {"purged": report.purged, "still_present": report.still_present},
    }


def handle(event: Any, context: Any, current: Runtime) -> dict[str, Any]:
    if is_stream_batch(event):
        return _purge_expired_bodies(event, current)
    action = event_action(event, _REQUEST)
    try:
        request = _REQUEST.validate_python(event)
    except ValidationError as exc:
        return _error(invalid_request(exc, schema=_REQUEST), action)
    logger.append_keys(action=request.action, tenant_id=request.tenant_id, request_id=request.request_id)
    for config in current.configs:
        config.register_lambda_context(context)
    execute = current.execute_grant if request.action == "grant" else current.execute
    payload = request.model_dump(mode="json")
    if isinstance(request, SealRequest):
        payload["plaintext_mac"] = hmac.new(current.payload_mac_key, request.plaintext, "sha256").hexdigest()
    try:
        result = execute(request=payload)
    except IdempotencyValidationError:
        return _error(
            IdempotencyConflictError("request_id was already used with a different request"), action
        )
    except IdempotencyAlreadyInProgressError as exc:
        metrics.add_metric(name="Transient", unit=MetricUnit.Count, value=1)
        raise TransientError("the same request is in progress; retry") from exc
    except IdempotencyPersistenceLayerError as exc:
        metrics.add_metric(name="Transient", unit=MetricUnit.Count, value=1)
        raise StorageUnavailableError("the idempotency store is unavailable") from exc
    except ReliquaryError as exc:
        if exc.retryable:
            metrics.add_metric(name="Transient", unit=MetricUnit.Count, value=1)
            logger.warning("transient failure", extra={"code": exc.code})
            raise
        return _error(exc, action)
    metrics.add_metric(name="Succeeded", unit=MetricUnit.Count, value=1)
    logger.info("request handled")
    return succeeded(request.action, result)


@tracer.capture_lambda_handler
# log_event=False: POWERTOOLS_LOGGER_LOG_EVENT=true must never log an event (it carries plaintext).
@logger.inject_lambda_context(clear_state=True, log_event=False)
@metrics.log_metrics
def handler(event: Any, context: Any) -> dict[str, Any]:
    return handle(event, context, runtime())
