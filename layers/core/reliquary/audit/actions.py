"""The audit-append function's actions over the audit service: requests in, JSON-ready results out."""

from __future__ import annotations

from typing import Any

from reliquary.audit.records import DecisionRecord, parse_record, principal_hash, requester_key_sha256
from reliquary.audit.service import AuditService
from reliquary.contracts.audit import (
    AppendRequest,
    ExportRequest,
    GetCheckpointRequest,
    PublishRequest,
    RecordDecisionRequest,
    VerifyRequest,
)
from reliquary.errors import InvalidRequestError

AuditAction = (
    AppendRequest
    | RecordDecisionRequest
    | PublishRequest
    | GetCheckpointRequest
    | ExportRequest
    | VerifyRequest
)


def decision_record(request: RecordDecisionRequest, principal_salt: bytes) -> DecisionRecord:
    """The decision record of one access flow execution (validated as strictly as any record)."""
    trust, context, key = request.trust, request.context, request.requester_public_key
    record = parse_record(
        {
            "kind": "decision",
            "request_id": request.request_id,
            "tenant_id": request.tenant_id,
            "vault_id": request.vault_id,
            "item_id": request.item_id,
            "principal_hash": principal_hash(request.tenant_id, request.principal.subject, principal_salt),
            "decision": request.decision.decision,
            "reasons": list(request.decision.reasons),
            "trust_score": None if trust is None else trust.score,
            "trust_factors": [] if trust is None else [f.model_dump() for f in trust.factors],
            "votes": [v.model_dump() for v in request.votes],
            "proof_hash": None if context is None else context.proof_hash,
            "policy_version": request.decision.policy_version,
            "execution_id": request.execution_id,
            "time": request.decided_at,
            "requester_key_sha256": None if key is None else requester_key_sha256(key),
        }
    )
    if not isinstance(record, DecisionRecord):  # parse_record dispatches on "kind"
        raise InvalidRequestError("not a decision record")
    return record


def _checkpoint_result(service: AuditService, tenant_id: str) -> dict[str, Any]:
    latest = service.checkpoint(tenant_id)
    return {
        "origin": service.origin(tenant_id),
        "tree_size": latest.size,
        "checkpoint": latest.note.decode("utf-8"),
        "verifier_keys": service.verifier_keys,
    }


def run_audit_action(service: AuditService, request: AuditAction, *, principal_salt: bytes) -> dict[str, Any]:
    match request:
        case AppendRequest():
            records = [parse_record(r) for r in request.records]
            receipts = service.append(request.tenant_id, records)
            return {"receipts": [r.to_dict() for r in receipts]}
        case RecordDecisionRequest():
            record = decision_record(request, principal_salt)
            ((receipt,), (entry,)) = service.append_logged(request.tenant_id, [record])
            # The logged entry itself (canonical JSON text, the principal only as a keyed hash): with
            # the receipt, the requester checks the decision's inclusion without asking the service again.
            return {"decision": record.decision, "entry": entry.decode("utf-8"), "receipt": receipt.to_dict()}
        case PublishRequest():
            service.publish(request.tenant_id)
            return _checkpoint_result(service, request.tenant_id)
        case GetCheckpointRequest():
            return _checkpoint_result(service, request.tenant_id)
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
