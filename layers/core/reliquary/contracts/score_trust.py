"""Input models of the score-trust function: the flow's ScoreTrust and RecordOutcome tasks
(``contracts.flow``: the flow state in), recording an outcome directly (``record``), and setting a vault's
trust policy."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from reliquary.contracts.common import Identifier
from reliquary.contracts.flow import RecordOutcomeTask, ScoreTrustTask
from reliquary.trust.model import AccessEvent, Device, Outcome, Region
from reliquary.trust.policy import TrustPolicy


def _not_an_approval(outcome: Outcome) -> Outcome:
    if outcome == "approve":
        raise ValueError("approvals are recorded by record_outcome, with their attestation chain")
    return outcome


class RecordRequest(BaseModel):
    """The outcome of a decided request, for the principal's history. With a ``request_id`` it is
    recorded once per request (sending it again replaces the event recorded at that time).

    Only outcomes that lower a principal's trust: an approval raises it, so it enters the history only
    through RecordOutcome, with the attestation chain that approved it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    action: Literal["record"]
    tenant_id: Identifier
    request_id: Identifier | None = None
    subject: Annotated[str, StringConstraints(min_length=1, max_length=1024)]
    outcome: Annotated[Outcome, AfterValidator(_not_an_approval)]
    device: Device
    region: Region
    time: int = Field(ge=0)

    def event(self) -> AccessEvent:
        """The history event this request records."""
        return AccessEvent(time=self.time, outcome=self.outcome, device=self.device, region=self.region)


class SetPolicyRequest(BaseModel):
    """An operator sets the vault's trust policy: the scoring template, its overrides, its own rules."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    action: Literal["set_policy"]
    tenant_id: Identifier
    vault_id: Identifier
    policy: TrustPolicy


ScoreTrustRequest = Annotated[
    ScoreTrustTask | RecordRequest | RecordOutcomeTask | SetPolicyRequest, Field(discriminator="action")
]
