"""Input and output models of the encrypt function (direct invocation and Step Functions tasks).

Binary fields travel as standard base64 (strictly decoded). Outputs never hold plaintext or secret keys:
the grant is sealed to the requester, shares to custodians, envelopes are ciphertext.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StringConstraints

from reliquary.contracts.common import Base64Bytes, Identifier
from reliquary.vaults.labels import DEFAULT_SENSITIVITY, Sensitivity
from reliquary.vaults.models import MAX_FORGET_LIMIT, MemoryKind
from reliquary.vaults.permanent import PermanentBackend


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    request_id: Identifier
    tenant_id: Identifier


class _VaultRequest(_Request):
    vault_id: Identifier


class CustodianIn(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    custodian_id: Identifier
    public_key: Base64Bytes


class CreateVaultRequest(_VaultRequest):
    action: Literal["create_vault"]
    custodians: list[CustodianIn] = Field(default_factory=list, max_length=255)
    recovery_threshold: int | None = Field(default=None, ge=2, le=255)
    # Opt in to IPFS or Arweave for every item body, acknowledging they can never be deleted.
    permanent_storage: PermanentBackend | None = None
    acknowledge_permanence: StrictBool = False


class MemoryScopeIn(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: MemoryKind
    ref: Identifier


class SealRequest(_VaultRequest):
    action: Literal["seal"]
    item_id: Identifier
    plaintext: Base64Bytes
    content_type: Annotated[str, StringConstraints(pattern=r"^[!-~][ -~]{0,126}$")] = (
        "application/octet-stream"
    )
    memory_scope: MemoryScopeIn
    tags: dict[str, str] = Field(default_factory=dict)
    expires_at: int | None = Field(default=None, gt=0)
    # How sensitive this version is, for the trust stage; absent means the strictest.
    sensitivity: Sensitivity = DEFAULT_SENSITIVITY


class RotateRequest(_VaultRequest):
    action: Literal["rotate"]


class RewrapRequest(_VaultRequest):
    action: Literal["rewrap"]


class RetireRequest(_VaultRequest):
    action: Literal["retire"]
    key_version: int = Field(ge=1)


class GrantRequest(_VaultRequest):
    """The Grant task of the access state machine; extra execution fields are ignored there."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    action: Literal["grant"]
    item_id: Identifier
    # No version: the grant opens the item version the logged approval's attestation chain names.
    requester_public_key: Base64Bytes


class SealedItemRequest(_VaultRequest):
    """The sealed item an approved access request's grant opens, for the requester to open locally
    (``GET /v1/access-requests/{id}/item``). ``request_id`` is the access request's: the same approval
    check as ``grant``. Read-only."""

    action: Literal["sealed_item"]
    item_id: Identifier
    requester_public_key: Base64Bytes


class ShredRequest(_VaultRequest):
    action: Literal["shred"]
    item_id: Identifier


class ExpireRequest(_VaultRequest):
    """Crypto-shred every item of the vault past its expiry now (a scheduled sweep, or on demand)."""

    action: Literal["expire"]


class ForgetRequest(_VaultRequest):
    """Crypto-shred every live item of one memory scope in the vault (a user, an agent or a run
    forgotten), at most ``limit`` items per call (fewer when time or the answer's size runs out: see
    ``VaultService.forget_scope``): call again, with a new request id, until ``complete``."""

    action: Literal["forget"]
    memory_scope: MemoryScopeIn
    limit: StrictInt = Field(default=500, ge=1, le=MAX_FORGET_LIMIT)  # a JSON integer, not "10" or true


EncryptRequest = Annotated[
    CreateVaultRequest
    | SealRequest
    | RotateRequest
    | RewrapRequest
    | RetireRequest
    | GrantRequest
    | SealedItemRequest
    | ShredRequest
    | ExpireRequest
    | ForgetRequest,
    Field(discriminator="action"),
]


class _Result(BaseModel):
    model_config = ConfigDict(frozen=True)


class CustodianShareOut(_Result):
    custodian_id: str
    public_key_fingerprint: Base64Bytes
    sealed_share: Base64Bytes


class CreateVaultResult(_Result):
    tenant_id: str
    vault_id: str
    key_version: int
    public_key: Base64Bytes
    recovery_threshold: int | None
    custodian_shares: list[CustodianShareOut]
    permanent_storage: str | None = None


class SealResult(_Result):
    tenant_id: str
    vault_id: str
    item_id: str
    version: int
    key_version: int
    size: int
    body_location: str
    content_type: str
    expires_at: int | None
    # Where the body went on IPFS (its CID) or Arweave (its transaction id): public, for anyone to check.
    permanent_locator: str | None = None


class RotateResult(_Result):
    tenant_id: str
    vault_id: str
    key_version: int
    public_key: Base64Bytes


class RewrapResult(_Result):
    key_version: int
    rewrapped: int
    already_current: int
    skipped_shredded: int


class RetireResult(_Result):
    key_version: int
    status: str


class GrantResult(_Result):
    grant: Base64Bytes
    item_id: str
    version: int
    expires_at: int


class SealedItemResult(_Result):
    envelope: Base64Bytes  # RQE1, the body attached: ciphertext only the request's grant opens
    item_id: str
    version: int
    content_type: str


class ShredResult(_Result):
    item_id: str
    versions: list[int]
    shredded_at: int
    signer_key_id: str
    signature_algorithm: str
    signature: Base64Bytes


class ExpireResult(_Result):
    shredded_items: list[str]


class ForgetResult(_Result):
    receipts: list[ShredResult]  # one per item this call shredded
    shredded: int
    already_shredded: int  # items of the scope shredded before this call (not shredded again)
    complete: bool  # False: live items of the scope remain; call again
