"""The verify-proof function: the access flow's VerifyContext task (a requester's zero-knowledge context
proof checked against the vault's policy, bound to the whole request - tenant, vault, item, request id,
requester key - and a single-use nonce, and the answer signed with this function's stage key), plus
issuing those nonces and setting a vault's context policy.

A proof that fails a check is a normal, signed result, ``{"verified": false, "reason": ...}``; a malformed
request is ``{"status": "error", ...}``; only transient failures raise, for Step Functions' Retry.
"""

from __future__ import annotations

from reliquary.coldstart import deferred_collection

# Loaded once per container, the collector off (reliquary/coldstart.py).
with deferred_collection():
    import functools
    from typing import Any, assert_never

    from aws_lambda_powertools.metrics import MetricUnit
    from pydantic import TypeAdapter

    from reliquary.adapters.zk_factory import VerifyProofRuntime, build_verify_proof
    from reliquary.config import get_settings
    from reliquary.contracts.flow import VerifyContextTask
    from reliquary.contracts.verify_proof import IssueNonceRequest, SetPolicyRequest, VerifyProofRequest
    from reliquary.handlers import handle_action
    from reliquary.observability import build_logger, build_metrics, build_tracer

    SERVICE = "reliquary-verify-proof"
    logger = build_logger(SERVICE)
    metrics = build_metrics(SERVICE)
    tracer = build_tracer(SERVICE)
    _REQUEST: TypeAdapter[Any] = TypeAdapter(VerifyProofRequest)


@functools.cache
def runtime() -> VerifyProofRuntime:
    """The verifier with its prepared verification keys, built once per cold start."""
    return build_verify_proof(get_settings())


def reset_runtime() -> None:
    runtime.cache_clear()


def _run(
    current: VerifyProofRuntime, request: VerifyContextTask | IssueNonceRequest | SetPolicyRequest
) -> dict[str, Any]:
    match request:
        case IssueNonceRequest():
            issued = current.verifier.issue_nonce(request.tenant_id, request.vault_id)
            return {"nonce": issued.nonce, "expires_at": issued.expires_at}
        case SetPolicyRequest():
            current.verifier.set_policy(request.tenant_id, request.vault_id, request.policy)
            return {"policy": request.policy.model_dump(mode="json")}
        case VerifyContextTask():
            context = current.stage.verify(request.flow)
            verified = "Verified" if context.verified else "NotVerified"
            metrics.add_metric(name=verified, unit=MetricUnit.Count, value=1)
            if not context.verified:
                logger.info(
                    "proof not verified", extra={"reason": context.reason, "circuit": context.circuit}
                )
            return context.model_dump(mode="json")
    assert_never(request)  # mypy proves the match exhaustive


def handle(event: Any, current: VerifyProofRuntime) -> dict[str, Any]:
    return handle_action(
        event, _REQUEST, lambda request: _run(current, request), logger=logger, metrics=metrics
    )


@tracer.capture_lambda_handler
# log_event=False: events carry proofs and claims; logs carry only codes and reasons.
@logger.inject_lambda_context(clear_state=True, log_event=False)
@metrics.log_metrics
def handler(event: Any, context: Any) -> dict[str, Any]:  # noqa: ARG001  (the Lambda signature)
    return handle(event, runtime())
