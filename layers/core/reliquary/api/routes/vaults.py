"""Vaults: create, list, get; their keys (rotate, rewrap, retire); their context, trust and quorum
policies; nonces for context proofs."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StrictBool

from reliquary.agents.policy import QuorumPolicy
from reliquary.api.bodies import json_body, validated
from reliquary.api.problems import context_of
from reliquary.api.routes import AUTHED, problems
from reliquary.api.security import CallerDep, RuntimeDep
from reliquary.contracts.encrypt import (
    CreateVaultResult,
    CustodianIn,
    RetireResult,
    RewrapResult,
    RotateResult,
)
from reliquary.fields import JSON_INTEGER, Identifier
from reliquary.gateway import ApiRuntime, Capability
from reliquary.identity.models import Caller
from reliquary.identity.scopes import Scope
from reliquary.trust.policy import TrustPolicy
from reliquary.vaults.catalog import KeyVersionInfo, VaultSummary
from reliquary.zk.policy import ContextPolicy

router = APIRouter(tags=["vaults"])
VaultId = Annotated[str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$")]
Cursor = Annotated[str | None, Query(max_length=1024, description="`next_cursor` of the previous page.")]
Limit = Annotated[int, Query(ge=1, le=100)]
PolicyKind = Literal["context", "trust", "quorum"]
_POLICY_MODELS: dict[str, type[BaseModel]] = {
    "context": ContextPolicy,
    "trust": TrustPolicy,
    "quorum": QuorumPolicy,
}
# Which function keeps each kind of policy (it validates and stores it).
_POLICY_OWNERS = {
    "context": Capability.VERIFY_PROOF,
    "trust": Capability.SCORE_TRUST,
    "quorum": Capability.AGENT_VOTE,
}


class NewVault(BaseModel):
    model_config = ConfigDict(extra="forbid")

    vault_id: Identifier
    custodians: list[CustodianIn] = Field(default_factory=list, max_length=255)
    recovery_threshold: Annotated[int, Field(ge=2, le=255), JSON_INTEGER] | None = None
    permanent_storage: Literal["ipfs", "arweave"] | None = Field(
        default=None,
        description="Store every item body of the vault on IPFS or Arweave, where it can never be deleted "
        "(erasure is crypto-shredding only: docs/storage.md). Needs `acknowledge_permanence`; fixed for "
        "the vault's life.",
    )
    acknowledge_permanence: StrictBool = Field(
        default=False, description="`true`: the caller knows bodies on permanent storage stay there for good."
    )


class VaultView(BaseModel):
    vault_id: str
    created_at: int
    current_key_version: int
    recovery_threshold: int | None = Field(description="Custodians needed to recover a key, if any.")
    custodian_ids: list[str]
    permanent_storage: Literal["ipfs", "arweave"] | None = Field(
        default=None, description="Where the vault's item bodies are kept for good, if it opted in."
    )

    @classmethod
    def of(cls, vault: VaultSummary) -> VaultView:
        return cls(
            vault_id=vault.vault_id,
            created_at=vault.created_at,
            current_key_version=vault.current_key_version,
            recovery_threshold=vault.recovery_threshold,
            custodian_ids=list(vault.custodian_ids),
            permanent_storage=vault.permanent_storage,
        )


class KeyVersionView(BaseModel):
    version: int
    status: str = Field(description="`active`, `previous` or `retired`.")
    created_at: int
    retired_at: int | None
    public_key_sha256: str

    @classmethod
    def of(cls, key: KeyVersionInfo) -> KeyVersionView:
        return cls(
            version=key.version,
            status=str(key.status),
            created_at=key.created_at,
            retired_at=key.retired_at,
            public_key_sha256=key.public_key_sha256,
        )


class VaultDetailView(VaultView):
    keys: list[KeyVersionView] = Field(description="Every key version, oldest first (no key material).")


class VaultList(BaseModel):
    vaults: list[VaultView]
    next_cursor: str | None


class Nonce(BaseModel):
    nonce: str
    expires_at: int


class PolicyView(BaseModel):
    vault_id: str
    kind: PolicyKind
    policy: dict[str, Any] | None = Field(description="null: no policy of this kind is set.")


def request_id(request: Request) -> str:
    return context_of(request).request_id


@router.post(
    "/v1/vaults", status_code=201, response_model=CreateVaultResult, responses=problems(*AUTHED, 409)
)
def create_vault(body: NewVault, request: Request, caller: CallerDep, runtime: RuntimeDep) -> JSONResponse:
    """Create a vault with its first ML-KEM-768 key (and its custodians' recovery shares)."""
    caller.grants.require(Scope.VAULTS_CREATE)
    result = runtime.functions.call(
        Capability.ENCRYPT,
        {
            "action": "create_vault",
            "request_id": request_id(request),
            "tenant_id": caller.tenant_id,
            **body.model_dump(mode="json"),
        },
    )
    return JSONResponse(result, status_code=201, headers={"Location": f"/v1/vaults/{body.vault_id}"})


@router.get("/v1/vaults", response_model=VaultList, responses=problems(*AUTHED))
def list_vaults(
    caller: CallerDep, runtime: RuntimeDep, limit: Limit = 50, cursor: Cursor = None
) -> VaultList:
    """The tenant's vaults the token may read (`vaults:read`)."""
    readable = caller.grants.vaults_with(Scope.VAULTS_READ)
    if readable is not None and not readable:
        caller.grants.require(Scope.VAULTS_READ)  # no vault at all: say so as a 403
    page = runtime.catalog.list_vaults(caller.tenant_id, limit=limit, cursor=cursor)
    shown = [VaultView.of(v) for v in page.items if readable is None or v.vault_id in readable]
    return VaultList(vaults=shown, next_cursor=page.cursor)


@router.get("/v1/vaults/{vault_id}", response_model=VaultDetailView, responses=problems(*AUTHED, 404))
def get_vault(vault_id: VaultId, caller: CallerDep, runtime: RuntimeDep) -> VaultDetailView:
    """A vault and its key versions (public facts only: versions, states, times, fingerprints)."""
    caller.grants.require(Scope.VAULTS_READ, vault_id)
    found = runtime.catalog.get_vault(caller.tenant_id, vault_id)
    return VaultDetailView(
        **VaultView.of(found.vault).model_dump(), keys=[KeyVersionView.of(k) for k in found.keys]
    )


def _key_action(
    action: str, vault_id: str, request: Request, caller: Caller, runtime: ApiRuntime, **extra: Any
) -> dict[str, Any]:
    caller.grants.require(Scope.VAULTS_ADMIN, vault_id)
    return runtime.functions.call(
        Capability.ENCRYPT,
        {
            "action": action,
            "request_id": request_id(request),
            "tenant_id": caller.tenant_id,
            "vault_id": vault_id,
            **extra,
        },
    )


@router.post(
    "/v1/vaults/{vault_id}/keys/rotate", response_model=RotateResult, responses=problems(*AUTHED, 404, 409)
)
def rotate_key(vault_id: VaultId, request: Request, caller: CallerDep, runtime: RuntimeDep) -> Any:
    """A new current key version; new memories are sealed to it, older ones stay readable."""
    return _key_action("rotate", vault_id, request, caller, runtime)


@router.post(
    "/v1/vaults/{vault_id}/keys/rewrap", response_model=RewrapResult, responses=problems(*AUTHED, 404, 409)
)
def rewrap_keys(vault_id: VaultId, request: Request, caller: CallerDep, runtime: RuntimeDep) -> Any:
    """Re-wrap every memory's data key to the current key version (then older versions can be retired)."""
    return _key_action("rewrap", vault_id, request, caller, runtime)


@router.post(
    "/v1/vaults/{vault_id}/keys/{key_version}/retire",
    response_model=RetireResult,
    responses=problems(*AUTHED, 404, 409),
)
def retire_key(
    vault_id: VaultId,
    key_version: Annotated[int, Path(ge=1, le=2**31)],
    request: Request,
    caller: CallerDep,
    runtime: RuntimeDep,
) -> Any:
    """Destroy a key version's private key (refused while a memory still needs it: rewrap first)."""
    return _key_action("retire", vault_id, request, caller, runtime, key_version=key_version)


@router.get(
    "/v1/vaults/{vault_id}/policies/{kind}", response_model=PolicyView, responses=problems(*AUTHED, 404)
)
def get_policy(vault_id: VaultId, kind: PolicyKind, caller: CallerDep, runtime: RuntimeDep) -> PolicyView:
    """The vault's context (which proofs), trust (scoring and rules) or quorum (agents) policy."""
    caller.grants.require(Scope.VAULTS_READ, vault_id)
    runtime.catalog.get_vault(caller.tenant_id, vault_id)
    return PolicyView(
        vault_id=vault_id, kind=kind, policy=runtime.read_policy(caller.tenant_id, vault_id, kind)
    )


@router.put(
    "/v1/vaults/{vault_id}/policies/{kind}",
    response_model=PolicyView,
    responses=problems(*AUTHED, 404),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        # Inline: no route of FastAPI's own declares these models, so references to
                        # components would dangle. anyOf: the path's kind decides, and `{}` is all three.
                        "anyOf": [model.model_json_schema() for model in _POLICY_MODELS.values()],
                        "description": "The policy of the path's kind.",
                    }
                }
            },
        }
    },
)
async def put_policy(
    vault_id: VaultId, kind: PolicyKind, request: Request, caller: CallerDep, runtime: RuntimeDep
) -> PolicyView:
    """Set a policy; the function that enforces it validates it (a trust policy's rules are compiled)."""
    caller.grants.require(Scope.VAULTS_ADMIN, vault_id)
    policy = validated(_POLICY_MODELS[kind], await json_body(request))
    # No vault read first: the store refuses a policy for a vault the tenant does not have (not_found).
    stored = policy.model_dump(mode="json")
    # The owner validates and stores it; its answer need not echo it (score-trust answers the rule set's
    # version), so the answer is the policy as validated here, what GET reads back.
    runtime.functions.call(
        _POLICY_OWNERS[kind],
        {"action": "set_policy", "tenant_id": caller.tenant_id, "vault_id": vault_id, "policy": stored},
    )
    return PolicyView(vault_id=vault_id, kind=kind, policy=stored)


@router.post(
    "/v1/vaults/{vault_id}/nonces", status_code=201, response_model=Nonce, responses=problems(*AUTHED, 404)
)
def issue_nonce(vault_id: VaultId, caller: CallerDep, runtime: RuntimeDep) -> Nonce:
    """A single-use nonce to bind a context proof to (valid for minutes; see `expires_at`)."""
    caller.grants.require(Scope.ACCESS_REQUEST, vault_id)
    # verify-proof answers not_found for a vault without a context policy (a vault of another tenant too).
    result = runtime.functions.call(
        Capability.VERIFY_PROOF,
        {"action": "issue_nonce", "tenant_id": caller.tenant_id, "vault_id": vault_id},
    )
    return Nonce.model_validate(result)
