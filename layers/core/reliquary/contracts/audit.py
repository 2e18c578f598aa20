"""Input models of the audit-append function (direct invocation and the RecordDecision task).

``record_decision`` takes the access flow's state (DESIGN.md): it ignores the state's other fields (the
proof itself, the nonce), so the task can pass the state through, and builds the decision record from
the parts it names. The principal is logged only as a keyed hash (see
``reliquary.audit.records.principal_hash``), the requester's public key only as its SHA-256: the one key
a grant for the request may be sealed to (the encrypt function checks it). ``decided_at`` must be fixed
for an execution (the state machine passes ``$$.Execution.StartTime``): a retried task then builds the
identical record and gets the same receipt, where a changing time would be refused as a conflicting reuse
of the request id. A denial may come without ``decision.policy_version`` (decided before ScoreTrust read
a policy); an approval never.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from reliquary.audit.log import MAX_BATCH
from reliquary.contracts.common import Base64Bytes, EpochTime, Identifier
from reliquary.crypto.kem import PUBLIC_KEY_LEN

Hex64 = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    tenant_id: Identifier


class AppendRequest(_Request):
    """Log one or many records (their JSON objects, see ``reliquary.audit.records``)."""

    action: Literal["append"]
    records: list[dict[str, Any]] = Field(min_length=1, max_length=MAX_BATCH)


class _FlowPart(BaseModel):
    # Parts of the flow state produced by other functions: fields not logged are ignored.
    model_config = ConfigDict(extra="ignore", frozen=True)


class PrincipalIn(_FlowPart):
    subject: Annotated[str, StringConstraints(min_length=1, max_length=1024)]


class ContextIn(_FlowPart):
    proof_hash: Hex64 | None = None


class TrustFactorIn(_FlowPart):
    name: str
    value: float
    weight: float
    contribution: float


class TrustIn(_FlowPart):
    score: float | None = None
    factors: list[TrustFactorIn] = Field(default_factory=list)


class VoteIn(_FlowPart):
    agent: str
    vote: str
    confidence: float
    rationale: str = ""


class DecisionIn(_FlowPart):
    decision: Literal["approve", "deny"]
    reasons: list[str] = Field(default_factory=list)
    # None: a denial decided before any trust policy was read (VerifyContext refused the request, or a
    # task failed for good before ScoreTrust); the record refuses an approval without one.
    policy_version: Hex64 | None = None


class RecordDecisionRequest(BaseModel):
    """The RecordDecision task: the flow state in, a receipt out."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    action: Literal["record_decision"]
    request_id: Identifier
    tenant_id: Identifier
    vault_id: Identifier
    item_id: Identifier
    principal: PrincipalIn
    context: ContextIn | None = None
    trust: TrustIn | None = None
    votes: list[VoteIn] = Field(default_factory=list)
    decision: DecisionIn
    execution_id: str | None = None
    decided_at: EpochTime
    # The flow's requester key (base64 hybrid public key): logged as its SHA-256, the one key a grant for
    # this request may go to. Optional: the bare denial of a failed flow is logged without it.
    requester_public_key: (
        Annotated[Base64Bytes, Field(min_length=PUBLIC_KEY_LEN, max_length=PUBLIC_KEY_LEN)] | None
    ) = None


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


AuditRequest = Annotated[
    AppendRequest
    | RecordDecisionRequest
    | PublishRequest
    | GetCheckpointRequest
    | ExportRequest
    | VerifyRequest,
    Field(discriminator="action"),
]
