"""Input models of the agent-vote function: the flow's ``convene`` (the agents to poll), ``vote`` (one agent,
one request: the Quorum Map's iteration), ``tally`` and ``await_approvals`` (AwaitApprovers: the request
waits for people, with the state machine's task token) tasks, each with the flow state; ``approve`` (one
person's passkey answer to a waiting request, relayed by the API) and ``set_policy`` (a vault's quorum
policy)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from reliquary import jcs
from reliquary.agents.policy import AgentName, QuorumPolicy
from reliquary.contracts.flow import FlowTask
from reliquary.errors import ReliquaryError
from reliquary.fields import Identifier, JsonInt
from reliquary.flow.approvals import Decision, Nonce, PersonId

MAX_CREDENTIAL_BYTES = 16 * 1024  # an AuthenticationResponseJSON is well under 2 KB


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


class AwaitApprovalsTask(FlowTask):
    """AwaitApprovers (agent-vote, ``.waitForTaskToken``): store the request as waiting for the vault's
    approvers; the execution resumes when agent-vote sends the outcome with ``task_token``."""

    action: Literal["await_approvals"]
    task_token: Annotated[str, StringConstraints(min_length=1, max_length=1024)]


def _small_json(value: dict[str, Any]) -> dict[str, Any]:
    try:
        size = len(jcs.canonicalize(value))
    except ReliquaryError:
        raise ValueError("not a JSON object") from None
    if size > MAX_CREDENTIAL_BYTES:
        raise ValueError(f"at most {MAX_CREDENTIAL_BYTES} bytes")
    return value


class ApproveRequest(BaseModel):
    """One person's answer to a waiting request: the decision, the challenge's nonce and time, and the
    WebAuthn assertion (AuthenticationResponseJSON) over the approval challenge. ``person_id`` is the
    API's authenticated caller; agent-vote checks the person and the assertion itself."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    action: Literal["approve"]
    tenant_id: Identifier
    request_id: Identifier
    person_id: PersonId
    decision: Decision
    nonce: Nonce
    issued_at: JsonInt = Field(ge=0)
    credential: Annotated[dict[str, Any], AfterValidator(_small_json)]


class SetPolicyRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    action: Literal["set_policy"]
    tenant_id: Identifier
    vault_id: Identifier
    policy: QuorumPolicy


AgentVoteRequest = Annotated[
    ConveneTask | VoteTask | TallyTask | AwaitApprovalsTask | ApproveRequest | SetPolicyRequest,
    Field(discriminator="action"),
]
