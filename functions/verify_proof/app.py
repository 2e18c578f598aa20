"""The verify-proof function: the access flow's VerifyContext task (a requester's zero-knowledge context
proof checked against the vault's policy, bound to the whole request (tenant, vault, item, request id,
requester key) and a single-use nonce), plus issuing
those nonces and setting a vault's context policy.

A proof that fails a check is a normal result, ``{"verified": false, "reason": ...}``; a malformed request
(shapes, points off the curve, signals outside the field) is ``{"status": "error", ...}``; only transient
failures raise, for Step Functions' Retry.
"""

from __future__ import annotations

import functools
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from pydantic import TypeAdapter

from reliquary.adapters.zk_factory import build_context_verifier
from reliquary.config import get_settings
from reliquary.contracts.verify_proof import IssueNonceRequest, SetPolicyRequest, VerifyProofRequest
from reliquary.crypto.kem import requester_key_sha256
from reliquary.handlers import handle_action
from reliquary.observability import build_logger, build_metrics, build_tracer
from reliquary.zk.service import ContextVerifier

SERVICE = "reliquary-verify-proof"
logger = build_logger(SERVICE)
metrics = build_metrics(SERVICE)
tracer = build_tracer(SERVICE)
_REQUEST: TypeAdapter[Any] = TypeAdapter(VerifyProofRequest)


@functools.cache
def runtime() -> ContextVerifier:
    """The verifier with its prepared verification keys, built once per cold start."""
    return build_context_verifier(get_settings())


def reset_runtime() -> None:
    runtime.cache_clear()


def _run(verifier: ContextVerifier, request: Any) -> dict[str, Any]:
    if isinstance(request, IssueNonceRequest):
        issued = verifier.issue_nonce(request.tenant_id, request.vault_id)
        return {"nonce": issued.nonce, "expires_at": issued.expires_at}
    if isinstance(request, SetPolicyRequest):
        verifier.set_policy(request.tenant_id, request.vault_id, request.policy)
        return {"policy": request.policy.model_dump(mode="json")}
    proof = request.context_proof
    result = verifier.verify(
        request_id=request.request_id,
        tenant_id=request.tenant_id,
        vault_id=request.vault_id,
        item_id=request.item_id,
        requester_key_sha256=requester_key_sha256(request.requester_public_key),
        nonce=request.nonce,
        circuit=proof.circuit,
        proof=proof.proof,
        public_signals=proof.public_signals,
    )
    metrics.add_metric(name="Verified" if result.verified else "NotVerified", unit=MetricUnit.Count, value=1)
    if not result.verified:
        logger.info("proof not verified", extra={"reason": result.reason, "circuit": result.circuit})
    return result.to_dict()


def handle(event: Any, verifier: ContextVerifier) -> dict[str, Any]:
    return handle_action(
        event, _REQUEST, lambda request: _run(verifier, request), logger=logger, metrics=metrics
    )


@tracer.capture_lambda_handler
# log_event=False: events carry proofs and claims; logs carry only codes and reasons.
@logger.inject_lambda_context(clear_state=True, log_event=False)
@metrics.log_metrics
def handler(event: Any, context: Any) -> dict[str, Any]:  # noqa: ARG001  (the Lambda signature)
    return handle(event, runtime())
