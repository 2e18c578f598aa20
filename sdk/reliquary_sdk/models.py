"""The API's request bodies and answers as pydantic models, one per schema of docs/openapi.json.

Each class is named as its schema (``tests/sdk/test_models_drift.py`` compares each model's fields,
required set and types with the document, so a change on either side fails the tests). Answers accept
members they do not know (``extra="allow"``: a newer service does not break an older SDK); request bodies
refuse them, as the service does. Constraints (patterns, lengths, bounds) are left to the service, which
answers a typed ``InvalidRequestError``: the SDK states shapes, not the service's rules.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "AccessRequestView",
    "AgentVoteView",
    "AnchorBlock",
    "AnchorList",
    "AnchorView",
    "ApprovalAnswer",
    "ApprovalChallenge",
    "ApprovalList",
    "ApprovalState",
    "AuditKeys",
    "CeremonyView",
    "ChallengeAsked",
    "ClientList",
    "ClientView",
    "ConsistencyProof",
    "ContextProof",
    "CreateVaultResult",
    "CreatedClient",
    "CreatedPerson",
    "CreatedTenant",
    "CredentialView",
    "CustodianIn",
    "CustodianShareOut",
    "DecisionView",
    "DidDocument",
    "Empty",
    "EnrollmentView",
    "EntryProof",
    "ExportView",
    "FieldProblem",
    "ForgetResult",
    "Health",
    "History",
    "JsonWebKey",
    "JsonWebKeySet",
    "KeyEventView",
    "KeyVersionView",
    "MemoryDetail",
    "MemoryList",
    "MemoryVersion",
    "MemoryView",
    "Model",
    "NewAccessRequest",
    "NewClient",
    "NewExport",
    "NewMemory",
    "NewPerson",
    "NewPersonRoles",
    "NewRoles",
    "NewSecret",
    "NewTenant",
    "NewVault",
    "Nonce",
    "PendingApproval",
    "PersonList",
    "PersonRoleIn",
    "PersonView",
    "PersonVote",
    "PolicyView",
    "Problem",
    "Registered",
    "Registration",
    "RequestBody",
    "RetireResult",
    "RewrapResult",
    "Role",
    "RoleIn",
    "RotateResult",
    "SealResult",
    "SealedItemView",
    "SecretRotation",
    "Session",
    "ShredResult",
    "SignIn",
    "SignedInPerson",
    "TenantView",
    "TokenResponse",
    "TrustView",
    "VaultDetailView",
    "VaultList",
    "VaultView",
]

Circuit = Literal["context_proof", "device_proof", "location_chain", "timestamp_verifier", "pattern_match"]
Decision = Literal["approve", "deny"]
JsonObject = dict[str, Any]


class Model(BaseModel):
    """An answer: unknown members kept (``model_extra``), fields by name or by the API's alias."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)


class RequestBody(BaseModel):
    """A request body: unknown members refused, as the service refuses them."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    def body(self) -> JsonObject:
        """The JSON body: members set by the caller only (the service applies its own defaults)."""
        return self.model_dump(mode="json", by_alias=True, exclude_unset=True)


class Role(StrEnum):
    TENANT_ADMIN = "tenant-admin"
    VAULT_ADMIN = "vault-admin"
    WRITER = "writer"
    REQUESTER = "requester"
    APPROVER = "approver"
    AUDITOR = "auditor"
    OPERATOR = "operator"


# --- problems and health -------------------------------------------------------------------------
class FieldProblem(Model):
    location: str
    type: str


class Problem(Model):
    type: str
    title: str
    status: int
    detail: str
    code: str
    request_id: str
    retryable: bool
    details: JsonObject | None = None
    errors: list[FieldProblem] | None = None


class Health(Model):
    status: str
    version: str


class Empty(RequestBody):
    pass


# --- tenants, clients, roles -----------------------------------------------------------------------
class RoleIn(RequestBody):
    role: Role
    vault_id: str | None = None


class NewTenant(RequestBody):
    tenant_id: str
    name: str


class TenantView(Model):
    tenant_id: str
    name: str
    created_at: int


class ClientView(Model):
    client_id: str
    tenant_id: str
    name: str
    roles: list[RoleIn]
    status: str
    created_at: int
    secret_rotated_at: int | None
    did: str | None = None


class CreatedClient(Model):
    client: ClientView
    client_secret: str | None


class CreatedTenant(Model):
    tenant: TenantView
    admin: CreatedClient


class ClientList(Model):
    clients: list[ClientView]


class NewClient(RequestBody):
    name: str
    roles: list[RoleIn]
    did: str | None = None


class NewRoles(RequestBody):
    roles: list[RoleIn]


class SecretRotation(RequestBody):
    revoke_tokens: bool = False


class NewSecret(Model):
    client_id: str
    client_secret: str


class TokenResponse(Model):
    access_token: str
    token_type: str
    expires_in: int
    scope: str


# --- vaults --------------------------------------------------------------------------------------
class CustodianIn(RequestBody):
    custodian_id: str
    public_key: str


class NewVault(RequestBody):
    vault_id: str
    custodians: list[CustodianIn] = Field(default_factory=list)
    recovery_threshold: int | None = None
    permanent_storage: Literal["ipfs", "arweave"] | None = None
    acknowledge_permanence: bool = False


class CustodianShareOut(Model):
    custodian_id: str
    public_key_fingerprint: str
    sealed_share: str


class CreateVaultResult(Model):
    tenant_id: str
    vault_id: str
    key_version: int
    public_key: str
    recovery_threshold: int | None
    custodian_shares: list[CustodianShareOut]
    permanent_storage: str | None = None


class VaultView(Model):
    vault_id: str
    created_at: int
    current_key_version: int
    recovery_threshold: int | None
    custodian_ids: list[str]
    permanent_storage: Literal["ipfs", "arweave"] | None = None  # item bodies kept there for good


class KeyVersionView(Model):
    version: int
    status: str
    created_at: int
    retired_at: int | None
    public_key_sha256: str


class VaultDetailView(VaultView):
    keys: list[KeyVersionView]


class VaultList(Model):
    vaults: list[VaultView]
    next_cursor: str | None


class PolicyView(Model):
    vault_id: str
    kind: Literal["context", "trust", "quorum"]
    policy: JsonObject | None


class RotateResult(Model):
    tenant_id: str
    vault_id: str
    key_version: int
    public_key: str


class RewrapResult(Model):
    key_version: int
    rewrapped: int
    already_current: int
    skipped_shredded: int


class RetireResult(Model):
    key_version: int
    status: str


class Nonce(Model):
    nonce: str
    expires_at: int


# --- memories ------------------------------------------------------------------------------------
class NewMemory(RequestBody):
    text: str | None = None
    content: str | None = None
    content_type: str | None = None
    user_id: str | None = None
    agent_id: str | None = None
    run_id: str | None = None
    tags: dict[str, str] = Field(default_factory=dict)
    ttl_seconds: int | None = None
    sensitivity: Literal["public", "internal", "confidential", "restricted"] = "restricted"
    memory_id: str | None = None


class SealResult(Model):
    tenant_id: str
    vault_id: str
    item_id: str
    version: int
    key_version: int
    size: int
    body_location: str
    content_type: str
    expires_at: int | None
    permanent_locator: str | None = None  # the body's CID (IPFS) or transaction id (Arweave)


class MemoryVersion(Model):
    version: int
    state: str
    content_type: str
    size: int
    tags: dict[str, str]
    sensitivity: str
    key_version: int
    created_at: int
    expires_at: int | None
    shredded_at: int | None
    user_id: str | None = None
    agent_id: str | None = None
    run_id: str | None = None


class MemoryView(MemoryVersion):
    memory_id: str
    versions: int


class MemoryList(Model):
    memories: list[MemoryView]
    next_cursor: str | None


class MemoryDetail(Model):
    memory_id: str
    versions: list[MemoryVersion]


class ShredResult(Model):
    item_id: str
    versions: list[int]
    shredded_at: int
    signer_key_id: str
    signature_algorithm: str
    signature: str


class ForgetResult(Model):
    receipts: list[ShredResult]
    shredded: int
    already_shredded: int
    complete: bool


class KeyEventView(Model):
    kind: str
    key_version: int
    at: int


class DecisionView(Model):
    index: int
    request_id: str
    decision: str
    at: int


class History(Model):
    memory_id: str
    versions: list[MemoryVersion]
    key_events: list[KeyEventView]
    decisions: list[DecisionView]
    next_cursor: str | None


# --- access requests ----------------------------------------------------------------------------
class ContextProof(RequestBody):
    circuit: Circuit
    proof: JsonObject
    public_signals: list[str | int]


class NewAccessRequest(RequestBody):
    vault_id: str
    memory_id: str
    requester_public_key: str
    context_proof: ContextProof
    nonce: str
    purpose: str = ""


class AccessRequestView(Model):
    request_id: str
    status: Literal["pending", "approved", "denied", "failed"]
    vault_id: str
    memory_id: str
    requested_at: int
    decided_at: int | None
    reasons: list[str] = Field(default_factory=list)
    trust: JsonObject | None = None
    votes: list[JsonObject] | None = None
    grant: JsonObject | None = None
    receipt: JsonObject | None = None
    entry: str | None = None
    attestation_chain: list[JsonObject] | None = None
    chain_sha256: str | None = None


class SealedItemView(Model):
    """The sealed item (an RQE1 envelope, base64) an approved request's grant opens."""

    request_id: str
    vault_id: str
    memory_id: str
    version: int
    content_type: str
    envelope: str
    grant_expires_at: int


# --- audit ---------------------------------------------------------------------------------------
class EntryProof(Model):
    index: int
    tree_size: int
    entry: str
    inclusion_proof: list[str]
    checkpoint: str | None


class ConsistencyProof(Model):
    first: int
    second: int
    proof: list[str]
    checkpoint: str | None


class AuditKeys(Model):
    origin: str
    verifier_keys: list[str]
    stage_keys: list[dict[str, str]]
    service_keys: list[dict[str, str]]


class AnchorBlock(Model):
    height: int
    hash: str


class AnchorView(Model):
    """One anchored checkpoint: where its signed note was published (``backend``: ``ipfs`` or
    ``arweave``; ``locator``: the CID or transaction id), its SHA-256 and the log entry recording it."""

    tree_size: int
    root_hash: str
    backend: Literal["ipfs", "arweave"]
    locator: str
    note_sha256: str
    anchored_at: int
    log_index: int
    block: AnchorBlock | None


class AnchorList(Model):
    origin: str
    anchors: list[AnchorView]


class NewExport(RequestBody):
    start: int = 0
    end: int | None = None


class ExportView(Model):
    export_id: str
    start: int
    end: int
    tree_size: int
    bytes: int
    download_url: str


# --- people, passkeys, approvals ----------------------------------------------------------------
class PersonRoleIn(RequestBody):
    role: Literal["approver", "auditor"]
    vault_id: str | None = None


class NewPerson(RequestBody):
    name: str
    roles: list[PersonRoleIn]


class NewPersonRoles(RequestBody):
    roles: list[PersonRoleIn]


class CredentialView(Model):
    credential_id: str
    label: str
    aaguid: str
    transports: list[str]
    created_at: int
    last_used_at: int | None


class PersonView(Model):
    person_id: str
    tenant_id: str
    name: str
    roles: list[RoleIn]
    status: str
    created_at: int
    enrollment_expires_at: int | None
    credentials: list[CredentialView] | None = None


class PersonList(Model):
    people: list[PersonView]


class EnrollmentView(Model):
    token: str
    expires_at: int


class CreatedPerson(Model):
    person: PersonView
    enrollment: EnrollmentView


class CeremonyView(Model):
    challenge_id: str
    options: JsonObject


class Registration(RequestBody):
    challenge_id: str
    credential: JsonObject
    label: str | None = None


class Registered(Model):
    credential_id: str
    aaguid: str
    created_at: int


class SignIn(RequestBody):
    challenge_id: str
    credential: JsonObject


class SignedInPerson(Model):
    person_id: str
    tenant_id: str
    name: str
    roles: list[RoleIn]


class Session(Model):
    access_token: str
    token_type: str
    expires_in: int
    scope: str
    person: SignedInPerson


class TrustView(Model):
    score: float
    band: str
    effect: str
    factors: list[JsonObject] = Field(default_factory=list)


class AgentVoteView(Model):
    agent: str
    vote: str
    confidence: float
    rationale: str = ""


class PersonVote(Model):
    person_id: str
    name: str
    vote: Decision
    decided_at: int


class PendingApproval(Model):
    request_id: str
    tenant_id: str
    vault_id: str
    item_id: str
    sensitivity: str
    requester: str
    purpose: str
    region: str
    trust: TrustView
    required: int
    created_at: int
    expires_at: int
    status: Literal["pending", "approved", "denied"] = "pending"
    votes: list[AgentVoteView] = Field(default_factory=list)
    approvals: list[PersonVote] = Field(default_factory=list)


class ApprovalList(Model):
    approvals: list[PendingApproval]


class ChallengeAsked(RequestBody):
    decision: Decision


class ApprovalChallenge(Model):
    options: JsonObject
    nonce: str
    issued_at: int


class ApprovalAnswer(RequestBody):
    decision: Decision
    nonce: str
    issued_at: int
    credential: JsonObject


class ApprovalState(Model):
    request_id: str
    decision: Decision
    approvals: int
    required: int
    complete: bool


# --- the service's identity ---------------------------------------------------------------------
class JsonWebKey(Model):
    kty: str
    crv: str
    x: str
    y: str
    kid: str
    alg: str
    use: str


class JsonWebKeySet(Model):
    keys: list[JsonWebKey]


class DidDocument(Model):
    context: list[str] = Field(alias="@context")
    id: str
    verification_method: list[JsonObject] = Field(alias="verificationMethod")
    assertion_method: list[str] = Field(alias="assertionMethod")
    service: list[JsonObject]
