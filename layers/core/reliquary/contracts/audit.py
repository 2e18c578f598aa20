"""Input models of the audit-append function: appending records, the flow's RecordDecision task
(``contracts.flow``; the chain checked and logged, see ``reliquary.audit.stage``), publishing and reading
checkpoints, exports, fsck, and anchoring checkpoints in public (``reliquary.audit.anchor``)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from reliquary.audit.anchor import DEFAULT_DUE_LOGS, MAX_DUE_LOGS
from reliquary.audit.log import MAX_BATCH
from reliquary.contracts.common import Identifier
from reliquary.contracts.flow import RecordDecisionTask


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    tenant_id: Identifier


class AppendRequest(_Request):
    """Log one or many records (their JSON objects, see ``reliquary.audit.records``). ``receipt``: what
    each record gets back: ``proof`` (the default) a receipt, its inclusion proof in a signed checkpoint;
    ``promise`` a signed promise of inclusion as soon as it is sequenced (docs/audit-log.md)."""

    action: Literal["append"]
    records: list[dict[str, Any]] = Field(min_length=1, max_length=MAX_BATCH)
    receipt: Literal["proof", "promise"] = "proof"


class PublishRequest(_Request):
    action: Literal["publish"]


class GetCheckpointRequest(_Request):
    action: Literal["get_checkpoint"]


class ExportRequest(_Request):
    """Entries [start, end) with proofs to ``exports/<tenant>/<export_id>.jsonl`` in the audit bucket."""

    action: Literal["export"]
    export_id: Identifier
    start: int = Field(ge=0)
    end: int = Field(ge=0)


class VerifyRequest(_Request):
    """fsck: re-check the tenant's whole log from its tiles against its latest checkpoint."""

    action: Literal["verify"]


class AnchorRequest(_Request):
    """Anchor the tenant's latest checkpoint now (published first when entries are waiting), and record
    the blocks of its pending Arweave anchors."""

    action: Literal["anchor"]


class AnchorDueRequest(BaseModel):
    """The schedule's: ``anchor`` each log, at most ``max_logs`` per run, going on where the last run
    stopped."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    action: Literal["anchor_due"]
    max_logs: int = Field(default=DEFAULT_DUE_LOGS, ge=1, le=MAX_DUE_LOGS, strict=True)


AuditAction = (
    AppendRequest
    | RecordDecisionTask
    | PublishRequest
    | GetCheckpointRequest
    | ExportRequest
    | VerifyRequest
    | AnchorRequest
    | AnchorDueRequest
)
AuditRequest = Annotated[
    AuditAction,
    Field(discriminator="action"),
]
