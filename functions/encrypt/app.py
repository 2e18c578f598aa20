"""The encrypt function: create_vault, seal, rotate, rewrap, retire, grant, sealed_item, shred, expire,
forget; and, fed by the items table's stream, deletion of the S3 bodies of rows that DynamoDB's TTL
removed.

Invoked directly and as the access state machine's Grant task; a grant is issued only for the approval
logged for its request in the tenant's transparency log (read lazily, on the first grant, not at cold
start). Deterministic failures (bad input, not found, conflicts, shredded items, no logged approval) come
back as ``{"status": "error", "error": {code, type, message}}`` with no stack trace; only transient
failures raise, so Step Functions' Retry can act on them.
Idempotent on (tenant_id, request_id): a retried request returns the stored result (sealed_item, which
only reads, is answered afresh each time).
"""

from __future__ import annotations

from reliquary.coldstart import deferred_collection

# Loaded once per container, the collector off (reliquary/coldstart.py).
with deferred_collection():
    import functools
    import hmac
    from dataclasses import dataclass
    from typing import Any

    from aws_lambda_powertools.metrics import MetricUnit
    from pydantic import TypeAdapter

    from reliquary.actions.encrypt import run_encrypt_action
    from reliquary.adapters.factory import build_vault_service, dynamodb_client
    from reliquary.adapters.idempotency import Once
    from reliquary.adapters.streams import is_stream_batch, removed_versions
    from reliquary.config import Settings, get_settings
    from reliquary.contracts.encrypt import EncryptRequest, SealRequest
    from reliquary.handlers import handle_action
    from reliquary.observability import build_logger, build_metrics, build_tracer
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
    " memory_scope, tags, expires_at, sensitivity, custodians, recovery_threshold, limit, plaintext_mac]"
)


@dataclass(frozen=True, slots=True)
class Runtime:
    service: VaultService
    payload_mac_key: bytes  # keys the plaintext MAC compared when a request id is reused
    once: Once
    # Grants are stored only as long as a grant lives, so no grant of an item outlives a shred for long
    # in the idempotency table (a retried grant within that window returns the same grant).
    grant_once: Once


def build_runtime(settings: Settings) -> Runtime:
    service = build_vault_service(settings)
    client = dynamodb_client(settings)

    def once(expires_after_seconds: int) -> Once:
        return Once(
            table_name=settings.idempotency_table,
            client=client,
            payload_jmespath=_PAYLOAD_FIELDS,
            expires_after_seconds=expires_after_seconds,
        )

    return Runtime(
        service,
        payload_mac_key=service.service_keys.derive_key("idempotency payload mac"),
        once=once(settings.idempotency_ttl_seconds),
        grant_once=once(settings.grant_ttl_seconds),
    )


@functools.cache
def runtime() -> Runtime:
    """Adapters and clients, built once per cold start (on the first invocation)."""
    return build_runtime(get_settings())


def reset_runtime() -> None:
    """Forget the cold-start state (tests that switch settings between invocations)."""
    runtime.cache_clear()


def _run(current: Runtime, request: Any) -> dict[str, Any]:
    """The action, once per (tenant, request id): a retry gets the stored result."""
    if request.action == "sealed_item":
        # Read-only, and an envelope is up to an item's size: nothing to store for a retry.
        return run_encrypt_action(current.service, request)
    payload = request.model_dump(mode="json")
    if isinstance(request, SealRequest):
        payload["plaintext_mac"] = hmac.new(current.payload_mac_key, request.plaintext, "sha256").hexdigest()
    once = current.grant_once if request.action == "grant" else current.once
    return once(payload, lambda _: run_encrypt_action(current.service, request))


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
    for once in (current.once, current.grant_once):
        once.register_lambda_context(context)
    return handle_action(
        event, _REQUEST, lambda request: _run(current, request), logger=logger, metrics=metrics
    )


@tracer.capture_lambda_handler
# log_event=False: POWERTOOLS_LOGGER_LOG_EVENT=true must never log an event (it carries plaintext).
@logger.inject_lambda_context(clear_state=True, log_event=False)
@metrics.log_metrics
def handler(event: Any, context: Any) -> dict[str, Any]:
    return handle(event, context, runtime())
