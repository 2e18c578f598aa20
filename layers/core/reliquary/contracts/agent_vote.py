"""Input models of the agent-vote function: ``vote`` (one agent, one request: the Quorum Map's iteration,
with the flow state), ``tally`` (the votes under the vault's quorum policy) and ``set_policy``."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from reliquary.agents.policy import MAX_PANEL, AgentName, QuorumPolicy
from reliquary.contracts.common import Identifier
from reliquary.trust.facts import Sensitivity

Text = Annotated[str, StringConstraints(min_length=1, max_length=256)]


class _Flow(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class PrincipalIn(_Flow):
    subject: Annotated[str, StringConstraints(min_length=1, max_length=1024)]


class ContextIn(_Flow):
    verified: bool
    claims: dict[str, Any] = Field(default_factory=dict, max_length=64)


class TrustIn(_Flow):
    score: float = Field(ge=0.0, le=1.0)
    band: Literal["low", "medium", "high"]
    factors: list[dict[str, Any]] = Field(default_factory=list, max_length=64)
    rules: dict[str, Any] = Field(default_factory=dict)
    facts: dict[str, Any] = Field(default_factory=dict, max_length=64)


class VoteRequest(_Flow):
    action: Literal["vote"]
    agent: AgentName
    request_id: Identifier
    tenant_id: Identifier
    vault_id: Identifier
    item_id: Identifier
    principal: PrincipalIn
    context: ContextIn | None = None
    trust: TrustIn | None = None
    purpose: Annotated[str, StringConstraints(max_length=256)] = ""
    sensitivity: Sensitivity = "restricted"
    region: Text = "unknown"
    device: Text | None = None


class VoteIn(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    agent: AgentName
    vote: Literal["approve", "deny", "abstain"]
    confidence: float = Field(ge=0.0, le=1.0)
    veto: bool = False


class TallyRequest(_Flow):
    action: Literal["tally"]
    request_id: Identifier
    tenant_id: Identifier
    vault_id: Identifier
    votes: list[VoteIn] = Field(max_length=MAX_PANEL)


class SetPolicyRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    action: Literal["set_policy"]
    tenant_id: Identifier
    vault_id: Identifier
    policy: QuorumPolicy


AgentVoteRequest = Annotated[VoteRequest | TallyRequest | SetPolicyRequest, Field(discriminator="action")]
