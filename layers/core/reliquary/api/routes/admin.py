"""Tenants (the operator's) and a tenant's API clients (its tenant-admins')."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StrictBool

from reliquary.api.routes import AUTHED, problems
from reliquary.api.security import CallerDep, RuntimeDep
from reliquary.fields import Identifier
from reliquary.identity.models import Client
from reliquary.identity.scopes import Role, RoleBinding, Scope

router = APIRouter(tags=["tenants and clients"])
ClientId = Annotated[str, Path(pattern=r"^cl-[0-9a-f]{24}$", description="A client id (`cl-` and 24 hex).")]


class RoleIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Role
    vault_id: Identifier | None = Field(default=None, description="Absent: the role on every vault.")


class ClientView(BaseModel):
    client_id: str
    tenant_id: str
    name: str
    roles: list[RoleIn]
    status: str
    created_at: int
    secret_rotated_at: int | None
    did: str | None = Field(default=None, description="The did:key it authenticates with (no secret).")


class CreatedClient(BaseModel):
    client: ClientView
    client_secret: str | None = Field(
        description="Shown once: only a slow hash of it is stored. None for a client with a `did`."
    )


class ClientList(BaseModel):
    clients: list[ClientView]


class NewClient(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=128, pattern=r"^[ -~]+$")
    roles: list[RoleIn] = Field(min_length=1, max_length=64)
    did: str | None = Field(
        default=None,
        max_length=4096,
        pattern=r"^did:key:z[1-9A-HJ-NP-Za-km-z]+$",
        description="A did:key (Ed25519, P-256 or ML-DSA-65): the client then has no secret and "
        "authenticates with private_key_jwt assertions signed by that key.",
    )


class NewRoles(BaseModel):
    model_config = ConfigDict(extra="forbid")

    roles: list[RoleIn] = Field(min_length=1, max_length=64)


class SecretRotation(BaseModel):
    model_config = ConfigDict(extra="forbid")

    revoke_tokens: StrictBool = Field(default=False, description="Also refuse every token issued before now.")


class NewSecret(BaseModel):
    client_id: str
    client_secret: str = Field(description="Shown once.")


class NewTenant(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tenant_id: Identifier
    name: str = Field(min_length=1, max_length=128, pattern=r"^[ -~]+$")


class TenantView(BaseModel):
    tenant_id: str
    name: str
    created_at: int


class CreatedTenant(BaseModel):
    tenant: TenantView
    admin: CreatedClient = Field(description="The tenant's first client, a tenant-admin.")


def _bindings(roles: list[RoleIn]) -> list[RoleBinding]:
    return [RoleBinding(role.role, role.vault_id) for role in roles]


def client_view(client: Client) -> ClientView:
    return ClientView(
        client_id=client.client_id,
        tenant_id=client.tenant_id,
        name=client.name,
        roles=[RoleIn(role=b.role, vault_id=b.vault_id) for b in client.roles],
        status=str(client.status),
        created_at=client.created_at,
        secret_rotated_at=client.secret_rotated_at,
        did=client.did,
    )


@router.post("/v1/tenants", status_code=201, response_model=CreatedTenant, responses=problems(*AUTHED, 409))
def create_tenant(body: NewTenant, caller: CallerDep, runtime: RuntimeDep) -> JSONResponse:
    """Create a tenant and its first tenant-admin client (operator only: `tenants:manage`)."""
    caller.grants.require(Scope.TENANTS_MANAGE)
    tenant, client, secret = runtime.identity.create_tenant(body.tenant_id, body.name)
    created = CreatedTenant(
        tenant=TenantView(tenant_id=tenant.tenant_id, name=tenant.name, created_at=tenant.created_at),
        admin=CreatedClient(client=client_view(client), client_secret=secret),
    )
    return JSONResponse(
        created.model_dump(mode="json"),
        status_code=201,
        headers={"Location": f"/v1/tenants/{tenant.tenant_id}", "Cache-Control": "no-store"},
    )


@router.post("/v1/clients", status_code=201, response_model=CreatedClient, responses=problems(*AUTHED))
def create_client(body: NewClient, caller: CallerDep, runtime: RuntimeDep) -> JSONResponse:
    """A new API client of the caller's tenant, with its roles (`tenant:admin`): with a secret, or with
    a `did` (a did:key) and no secret."""
    caller.grants.require(Scope.TENANT_ADMIN)
    identity, roles = runtime.identity, _bindings(body.roles)
    client, secret = (
        identity.create_client(caller.tenant_id, body.name, roles)
        if body.did is None
        else identity.create_client(caller.tenant_id, body.name, roles, did=body.did)
    )
    created = CreatedClient(client=client_view(client), client_secret=secret)
    return JSONResponse(
        created.model_dump(mode="json"),
        status_code=201,
        headers={"Location": f"/v1/clients/{client.client_id}", "Cache-Control": "no-store"},
    )


@router.get("/v1/clients", response_model=ClientList, responses=problems(*AUTHED))
def list_clients(caller: CallerDep, runtime: RuntimeDep) -> ClientList:
    caller.grants.require(Scope.TENANT_ADMIN)
    return ClientList(clients=[client_view(c) for c in runtime.identity.list_clients(caller.tenant_id)])


@router.get("/v1/clients/{client_id}", response_model=ClientView, responses=problems(*AUTHED, 404))
def get_client(client_id: ClientId, caller: CallerDep, runtime: RuntimeDep) -> ClientView:
    caller.grants.require(Scope.TENANT_ADMIN)
    return client_view(runtime.identity.get_client(caller.tenant_id, client_id))


@router.put("/v1/clients/{client_id}/roles", response_model=ClientView, responses=problems(*AUTHED, 404))
def set_roles(client_id: ClientId, body: NewRoles, caller: CallerDep, runtime: RuntimeDep) -> ClientView:
    """Replace a client's roles; tokens it already holds keep their scopes until they expire."""
    caller.grants.require(Scope.TENANT_ADMIN)
    return client_view(runtime.identity.set_roles(caller.tenant_id, client_id, _bindings(body.roles)))


@router.post(
    "/v1/clients/{client_id}/secret", response_model=NewSecret, responses=problems(*AUTHED, 404, 409)
)
def rotate_secret(
    client_id: ClientId, body: SecretRotation, caller: CallerDep, runtime: RuntimeDep
) -> JSONResponse:
    """A new secret for the client (the old one stops working at once); `conflict` for a client that
    authenticates with its did:key."""
    caller.grants.require(Scope.TENANT_ADMIN)
    secret = runtime.identity.rotate_secret(caller.tenant_id, client_id, revoke_tokens=body.revoke_tokens)
    return JSONResponse(
        NewSecret(client_id=client_id, client_secret=secret).model_dump(),
        headers={"Cache-Control": "no-store"},
    )


@router.delete("/v1/clients/{client_id}", response_model=ClientView, responses=problems(*AUTHED, 404))
def revoke_client(client_id: ClientId, caller: CallerDep, runtime: RuntimeDep) -> ClientView:
    """Revoke a client: its secret and every token it holds stop working at once."""
    caller.grants.require(Scope.TENANT_ADMIN)
    return client_view(runtime.identity.revoke_client(caller.tenant_id, client_id))
