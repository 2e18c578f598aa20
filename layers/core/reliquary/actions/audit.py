"""The audit-append function's actions over the audit service: requests in, JSON-ready results out."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from reliquary.audit.anchor import CheckpointAnchorer, anchoring_off
from reliquary.audit.records import (
    CheckpointAnchorConfirmedRecord,
    CheckpointAnchorRecord,
    DecisionRecord,
    parse_record,
)
from reliquary.audit.service import AuditService
from reliquary.audit.stage import RecordDecisionStage
from reliquary.contracts.audit import (
    AnchorDueRequest,
    AnchorRequest,
    AppendRequest,
    AuditAction,
    ExportRequest,
    GetCheckpointRequest,
    PublishRequest,
    VerifyRequest,
)
from reliquary.contracts.flow import RecordDecisionTask
from reliquary.errors import InvalidRequestError


def _checkpoint_result(
    service: AuditService, decisions: RecordDecisionStage, tenant_id: str
) -> dict[str, Any]:
    latest = service.checkpoint(tenant_id)
    return {
        "origin": service.origin(tenant_id),
        "tree_size": latest.size,
        "checkpoint": latest.note.decode("utf-8"),
        "verifier_keys": service.verifier_keys,
        # What an auditor checks a decision's attestation chain with (reliquary.flow.attestation).
        "stage_keys": decisions.published_stage_keys(),
    }


def _append(service: AuditService, request: AppendRequest) -> dict[str, Any]:
    records = [parse_record(r) for r in request.records]
    # Decisions come only from record_decision (the flow), which bounds their time: a decision appended
    # as a plain record could stand as an approval the encrypt function would grant.
    if any(isinstance(r, DecisionRecord) for r in records):
        raise InvalidRequestError("decisions are logged by record_decision, not append")
    # Anchors speak for the log itself: only the anchoring job logs them, after storing the checkpoint.
    if any(isinstance(r, CheckpointAnchorRecord | CheckpointAnchorConfirmedRecord) for r in records):
        raise InvalidRequestError("checkpoint anchors are logged by the anchor actions, not append")
    if request.receipt == "promise":  # answered once sequenced: docs/audit-log.md, "Promises"
        return {"promises": [p.to_dict() for p in service.promise(request.tenant_id, records)]}
    return {"receipts": [r.to_dict() for r in service.append(request.tenant_id, records)]}


def _anchor(anchorer: CheckpointAnchorer, request: AnchorRequest | AnchorDueRequest) -> dict[str, Any]:
    if isinstance(request, AnchorRequest):
        return anchorer.anchor(request.tenant_id).to_dict()
    return anchorer.anchor_due(max_logs=request.max_logs).to_dict()


def run_audit_action(
    service: AuditService,
    decisions: RecordDecisionStage,
    request: AuditAction,
    *,
    anchorer: Callable[[], CheckpointAnchorer] = anchoring_off,
) -> dict[str, Any]:
    """Run ``request``; ``anchorer`` builds the checkpoint anchorer on the first anchoring action only (a
    node client, perhaps a wallet: nothing the other actions load)."""
    match request:
        case AppendRequest():
            return _append(service, request)
        case RecordDecisionTask():
            return decisions.record(
                request.flow,
                execution_id=request.execution_id,
                decided_at=request.decided_at,
                bare=request.bare,
            )
        case PublishRequest() | GetCheckpointRequest():
            if isinstance(request, PublishRequest):
                service.publish(request.tenant_id)
            return _checkpoint_result(service, decisions, request.tenant_id)
        case ExportRequest():
            exported = service.export(
                request.tenant_id, request.start, request.end, export_id=request.export_id
            )
            return {
                "key": exported.key,
                "start": exported.start,
                "end": exported.end,
                "tree_size": exported.tree_size,
                "bytes": exported.bytes_written,
            }
        case VerifyRequest():
            return service.verify(request.tenant_id).to_dict()
        case AnchorRequest() | AnchorDueRequest():
            return _anchor(anchorer(), request)
