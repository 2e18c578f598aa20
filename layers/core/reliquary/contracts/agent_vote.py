"""Input models of the agent-vote function: the flow's ``convene`` (the agents to poll), ``vote`` (one agent,
one request: the Quorum Map's iteration) and ``tally`` tasks, each with the flow state, and ``set_policy``
(a vault's quorum policy)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from reliquary.agents.policy import AgentName, QuorumPolicy
from reliquary.contracts.flow import FlowTask
from reliquary.fields import Identifier


class ConveneTask(FlowTask):
    """Convene (agent-vote): the agents to poll, for an attested trust result."""

    action: Literal["convene"]


class VoteTask(FlowTask):
    """One iteration of the Quorum Map (agent-vote): one agent's signed vote."""

    action: Literal["vote"]
    agent: AgentName


class TallyTask(FlowTask):
    """Tally (agent-vote): the attested votes under the quorum policy Convene polled them under."""

    action: Literal["tally"]
    policy: QuorumPolicy | None = None


class SetPolicyRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    action: Literal["set_policy"]
    tenant_id: Identifier
    vault_id: Identifier
    policy: QuorumPolicy


AgentVoteRequest = Annotated[
    ConveneTask | VoteTask | TallyTask | SetPolicyRequest, Field(discriminator="action")
]
