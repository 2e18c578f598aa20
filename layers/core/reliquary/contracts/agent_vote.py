"""Input models of the agent-vote function: ``convene`` (the agents to poll for a request: the Convene
state, with the flow state), ``vote`` (one agent, one request: the Quorum Map's iteration, with the flow
state), ``tally`` (the votes under the vault's quorum policy and the trust rules' quorum) and
``set_policy``. The flow-state requests ignore fields they do not use."""

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


class ConveneRequest(_Flow):
    """``trust`` is ScoreTrust's result; its ``rules`` outcome decides whether a panel may be convened
    and which agents the rules' quorum adds to the vault's panel."""

    action: Literal["convene"]
    request_id: Identifier
    tenant_id: Identifier
    vault_id: Identifier
    trust: TrustIn | None = None


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
    # The vault's panel and the rules' quorum panel: at most MAX_PANEL agents each.
    votes: list[VoteIn] = Field(max_length=2 * MAX_PANEL)
    trust: TrustIn | None = None
    # The quorum policy Convene polled the panel under: the tally refuses if the vault's has changed since.
    policy: QuorumPolicy | None = None


class SetPolicyRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    action: Literal["set_policy"]
    tenant_id: Identifier
    vault_id: Identifier
    policy: QuorumPolicy


AgentVoteRequest = Annotated[
    ConveneRequest | VoteRequest | TallyRequest | SetPolicyRequest, Field(discriminator="action")
]
