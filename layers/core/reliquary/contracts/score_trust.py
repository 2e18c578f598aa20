"""Input models of the score-trust function (direct invocation and the ScoreTrust task).

``score`` takes the access flow's state: the principal, the item's sensitivity label, the stated purpose
and the VerifyContext result (``context``); fields it does not use are ignored. Without a sensitivity
label the item is treated as ``restricted`` (fail closed: the strictest rules apply). Its result names the
``device`` and ``region`` the history was read with.

``record_outcome`` (the RecordOutcome task) also takes the flow state: the decision, whether the context
verified, and the score result's device and region (``trust``); it records the outcome in the
principal's history once per ``request_id`` (a retried task replaces its event), at ``decided_at``, which
is fixed for an execution (``$$.Execution.StartTime``).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from reliquary.contracts.common import EpochTime, Identifier
from reliquary.trust.facts import Sensitivity
from reliquary.trust.model import Device, Outcome, Region
from reliquary.trust.policy import TrustPolicy

Text = Annotated[str, StringConstraints(min_length=1, max_length=256)]
# Claims are the proof's public signals by name (flat); the handler serialises them for the idempotency
# record, and a document nested deeper than the stack allows would fail there, not as a refusal.
MAX_CLAIMS_DEPTH = 4
MAX_CLAIMS_VALUES = 1024


def _shallow(claims: dict[str, Any]) -> dict[str, Any]:
    pending: list[tuple[Any, int]] = [(claims, 1)]
    seen = 0
    while pending:
        value, depth = pending.pop()
        seen += 1
        if depth > MAX_CLAIMS_DEPTH or seen > MAX_CLAIMS_VALUES:
            raise ValueError(
                f"claims nest at most {MAX_CLAIMS_DEPTH} levels and hold at most {MAX_CLAIMS_VALUES} values"
            )
        if isinstance(value, dict):
            pending.extend((v, depth + 1) for v in value.values())
        elif isinstance(value, list):
            pending.extend((v, depth + 1) for v in value)
    return claims


class PrincipalIn(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    subject: Annotated[str, StringConstraints(min_length=1, max_length=1024)]
    roles: list[Annotated[str, StringConstraints(min_length=1, max_length=128)]] = Field(
        default_factory=list, max_length=64
    )


class VerifiedContextIn(BaseModel):
    """The VerifyContext task's result: which public parameters the proof showed (claims by name)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    verified: bool
    claims: Annotated[dict[str, Any], AfterValidator(_shallow)] = Field(default_factory=dict, max_length=64)


class ScoreRequest(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    action: Literal["score"]
    request_id: Identifier
    tenant_id: Identifier
    vault_id: Identifier
    item_id: Identifier
    principal: PrincipalIn
    purpose: Annotated[str, StringConstraints(max_length=256)] = ""
    sensitivity: Sensitivity = "restricted"
    context: VerifiedContextIn
    # Where the request comes from (e.g. the API gateway's region); device defaults to the proven device
    # commitment, so a device is known by its commitment across requests.
    region: Region = "unknown"
    device: Text | None = None


class RecordRequest(BaseModel):
    """The outcome of a decided request, for the principal's history. With a ``request_id`` it is
    recorded once per request (sending it again replaces the event recorded at that time)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    action: Literal["record"]
    tenant_id: Identifier
    request_id: Identifier | None = None
    subject: Annotated[str, StringConstraints(min_length=1, max_length=1024)]
    outcome: Outcome
    device: Device
    region: Region
    time: int = Field(ge=0)


class _FlowPart(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class OutcomeContextIn(_FlowPart):
    """The VerifyContext result, as far as the outcome goes: did the proof verify?"""

    verified: bool


class OutcomePlaceIn(_FlowPart):
    """The ScoreTrust result's ``device`` and ``region``: what the history was read with."""

    device: Device
    region: Region


class OutcomeDecisionIn(_FlowPart):
    decision: Literal["approve", "deny"]


class RecordOutcomeRequest(_FlowPart):
    """The RecordOutcome task: the decided request's outcome into the principal's history, once per
    ``request_id``. No ``context`` (or an unverified one) is a ``failure``; no ``trust`` (the request
    never reached ScoreTrust) records device and region as ``unknown``."""

    action: Literal["record_outcome"]
    request_id: Identifier
    tenant_id: Identifier
    principal: PrincipalIn
    context: OutcomeContextIn | None = None
    trust: OutcomePlaceIn | None = None
    decision: OutcomeDecisionIn
    decided_at: EpochTime


class SetPolicyRequest(BaseModel):
    """An operator sets the vault's trust policy: the scoring template, its overrides, its own rules."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    action: Literal["set_policy"]
    tenant_id: Identifier
    vault_id: Identifier
    policy: TrustPolicy


ScoreTrustRequest = Annotated[
    ScoreRequest | RecordRequest | RecordOutcomeRequest | SetPolicyRequest, Field(discriminator="action")
]
