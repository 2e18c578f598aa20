"""Input models of the verify-proof function: the flow's VerifyContext task (``contracts.flow``), issuing a
nonce and setting a vault's context policy."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from reliquary.contracts.common import Identifier
from reliquary.contracts.flow import VerifyContextTask
from reliquary.zk.policy import ContextPolicy


class IssueNonceRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    action: Literal["issue_nonce"]
    tenant_id: Identifier
    vault_id: Identifier


class SetPolicyRequest(BaseModel):
    """An operator sets which circuit and public parameters a vault requires."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    action: Literal["set_policy"]
    tenant_id: Identifier
    vault_id: Identifier
    policy: ContextPolicy


VerifyProofRequest = Annotated[
    VerifyContextTask | IssueNonceRequest | SetPolicyRequest, Field(discriminator="action")
]
