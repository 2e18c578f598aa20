"""The audit-append function's actions over the audit service: requests in, JSON-ready results out."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from reliquary.audit.records import (
    MAX_REASON_CHARS,
    MAX_REASONS,
    DecisionRecord,
    decode_record,
    parse_record,
    principal_hash,
)
from reliquary.audit.service import AuditService
from reliquary.contracts.audit import (
    AppendRequest,
    ExportRequest,
    GetCheckpointRequest,
    PublishRequest,
    RecordDecisionRequest,
    VerifyRequest,
)
from reliquary.crypto.kem import requester_key_sha256
from reliquary.errors import InvalidRequestError

AuditAction = (
    AppendRequest
    | RecordDecisionRequest
    | PublishRequest
    | GetCheckpointRequest
    | ExportRequest
    | VerifyRequest
)


# decided_at is the execution's start: a retry within the execution is at most its timeout later.
DECIDED_AT_FUTURE_SKEW_SECONDS = 300
DECIDED_AT_MAX_AGE_SECONDS = 3600


def _clipped(reasons: Sequence[str]) -> list[str]:
    """Reasons as a record holds them: at most MAX_REASONS, each at most MAX_REASON_CHARS (clipped with
    an ellipsis, so a long rule reason costs its tail, never the whole record and its evidence)."""
    kept = [r if len(r) <= MAX_REASON_CHARS else r[: MAX_REASON_CHARS - 1] + "…" for r in reasons]
    if len(kept) > MAX_REASONS:
        kept = [*kept[: MAX_REASONS - 1], f"and {len(kept) - MAX_REASONS + 1} more"]
    return kept


def decision_record(
    request: RecordDecisionRequest, principal_salt: bytes, *, now: int | None = None
) -> DecisionRecord:
    """The decision record of one access flow execution (validated as strictly as any record).

    ``decided_at`` must be near ``now`` (the execution started at most an hour ago, and not in the
    future): an approval names its time, and the encrypt function grants only while it is fresh."""
    current = int(time.time()) if now is None else now
    earliest, latest = current - DECIDED_AT_MAX_AGE_SECONDS, current + DECIDED_AT_FUTURE_SKEW_SECONDS
    if not earliest <= request.decided_at <= latest:
        raise InvalidRequestError(
            "decided_at is the execution's start: at most an hour ago and not in the future",
            decided_at=request.decided_at,
        )
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
            "reasons": _clipped(request.decision.reasons),
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
            # Decisions come only from record_decision (the flow), which bounds their time: a decision
            # appended as a plain record could stand as an approval the encrypt function would grant.
            if any(isinstance(r, DecisionRecord) for r in records):
                raise InvalidRequestError("decisions are logged by record_decision, not append")
            receipts = service.append(request.tenant_id, records)
            return {"receipts": [r.to_dict() for r in receipts]}
        case RecordDecisionRequest():
            record = decision_record(request, principal_salt)
            ((receipt,), (entry,)) = service.append_logged(request.tenant_id, [record])
            # The logged entry itself (canonical JSON text, the principal only as a keyed hash): with
            # the receipt, the requester checks the decision's inclusion without asking the service again.
            # The decision reported is the logged one (the first, when another execution decided it).
            logged = decode_record(entry)
            decision = logged.decision if isinstance(logged, DecisionRecord) else record.decision
            return {"decision": decision, "entry": entry.decode("utf-8"), "receipt": receipt.to_dict()}
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
