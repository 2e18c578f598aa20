"""Input models of the verify-proof function (direct invocation and the VerifyContext task)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from reliquary.contracts.common import Base64Bytes, Identifier
from reliquary.crypto.kem import PUBLIC_KEY_LEN
from reliquary.zk.policy import Circuit, ContextPolicy

MAX_PUBLIC_SIGNALS = 64


class ContextProofIn(BaseModel):
    """A snarkjs Groth16 proof, its public signals (decimal strings) and the circuit it is for."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    circuit: Circuit
    proof: dict[str, Any]
    public_signals: Annotated[list[str | int], Field(max_length=MAX_PUBLIC_SIGNALS)]


class VerifyRequest(BaseModel):
    """The VerifyContext task: the flow state in (fields it does not use are ignored)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    action: Literal["verify"]
    request_id: Identifier
    tenant_id: Identifier
    vault_id: Identifier
    item_id: Identifier
    nonce: str
    context_proof: ContextProofIn
    # The key the grant would be sealed to: the proof's request_hash covers its SHA-256 (with the tenant,
    # vault, item and request id), and the nonce's consumption names it.
    requester_public_key: Annotated[Base64Bytes, Field(min_length=PUBLIC_KEY_LEN, max_length=PUBLIC_KEY_LEN)]


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
    VerifyRequest | IssueNonceRequest | SetPolicyRequest, Field(discriminator="action")
]
