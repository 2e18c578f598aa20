"""A tenant's people (approvers and auditors who sign in with passkeys), managed by its tenant-admins."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from reliquary.api.routes import AUTHED, problems
from reliquary.api.routes.admin import RoleIn
from reliquary.api.security import CallerDep, RuntimeDep
from reliquary.fields import Identifier
from reliquary.identity.models import Person, StoredCredential
from reliquary.identity.scopes import Role, RoleBinding, Scope
from reliquary.identity.service import Enrollment

router = APIRouter(tags=["people"])
PersonId = Annotated[str, Path(pattern=r"^ps-[0-9a-f]{24}$", description="A person id (`ps-` and 24 hex).")]
CredentialId = Annotated[
    str,
    Path(
        pattern=r"^[A-Za-z0-9_-]{22,1364}$", description="A passkey's credential id (base64url, no padding)."
    ),
]


class CredentialView(BaseModel):
    """A registered passkey, without its public key."""

    credential_id: str
    label: str
    aaguid: str = Field(description="The authenticator model's AAGUID (all zeros when it does not say).")
    transports: list[str]
    created_at: int
    last_used_at: int | None


class PersonView(BaseModel):
    person_id: str
    tenant_id: str
    name: str
    roles: list[RoleIn]
    status: str
    created_at: int
    enrollment_expires_at: int | None = Field(
        description="When the pending enrollment token expires (none: none)."
    )
    credentials: list[CredentialView] | None = Field(
        default=None, description="The person's passkeys (on `GET /v1/people/{person_id}` only)."
    )


class EnrollmentView(BaseModel):
    token: str = Field(
        description="Shown once: a bearer token with `webauthn:register` alone, for one passkey."
    )
    expires_at: int


class CreatedPerson(BaseModel):
    person: PersonView
    enrollment: EnrollmentView


class PersonList(BaseModel):
    people: list[PersonView]


class PersonRoleIn(BaseModel):
    """A role a person may hold: people approve and audit; machines do the rest."""

    model_config = ConfigDict(extra="forbid")

    role: Literal["approver", "auditor"]
    vault_id: Identifier | None = Field(default=None, description="Absent: the role on every vault.")


class NewPerson(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=128, pattern=r"^[ -~]+$")
    roles: list[PersonRoleIn] = Field(min_length=1, max_length=32)


class NewPersonRoles(BaseModel):
    model_config = ConfigDict(extra="forbid")

    roles: list[PersonRoleIn] = Field(min_length=1, max_length=32)


def _bindings(roles: list[PersonRoleIn]) -> list[RoleBinding]:
    return [RoleBinding(Role(role.role), role.vault_id) for role in roles]


def credential_view(credential: StoredCredential) -> CredentialView:
    return CredentialView(
        credential_id=credential.credential_id,
        label=credential.label,
        aaguid=credential.aaguid,
        transports=list(credential.transports),
        created_at=credential.created_at,
        last_used_at=credential.last_used_at,
    )


def person_view(person: Person, credentials: list[StoredCredential] | None = None) -> PersonView:
    return PersonView(
        person_id=person.person_id,
        tenant_id=person.tenant_id,
        name=person.name,
        roles=[RoleIn(role=b.role, vault_id=b.vault_id) for b in person.roles],
        status=str(person.status),
        created_at=person.created_at,
        enrollment_expires_at=person.enrollment_expires_at if person.enrollment_jti else None,
        credentials=None if credentials is None else [credential_view(c) for c in credentials],
    )


def _enrollment_view(enrollment: Enrollment) -> EnrollmentView:
    return EnrollmentView(token=enrollment.token, expires_at=enrollment.expires_at)


@router.post("/v1/people", status_code=201, response_model=CreatedPerson, responses=problems(*AUTHED))
def create_person(body: NewPerson, caller: CallerDep, runtime: RuntimeDep) -> JSONResponse:
    """A new person of the caller's tenant and its enrollment token (`tenant:admin`): hand the token to
    the person, who registers one passkey with it."""
    caller.grants.require(Scope.TENANT_ADMIN)
    person, enrollment = runtime.identity.create_person(caller.tenant_id, body.name, _bindings(body.roles))
    created = CreatedPerson(person=person_view(person), enrollment=_enrollment_view(enrollment))
    return JSONResponse(
        created.model_dump(mode="json"),
        status_code=201,
        headers={"Location": f"/v1/people/{person.person_id}", "Cache-Control": "no-store"},
    )


@router.get("/v1/people", response_model=PersonList, responses=problems(*AUTHED))
def list_people(caller: CallerDep, runtime: RuntimeDep) -> PersonList:
    caller.grants.require(Scope.TENANT_ADMIN)
    return PersonList(people=[person_view(p) for p in runtime.identity.list_persons(caller.tenant_id)])


@router.get("/v1/people/{person_id}", response_model=PersonView, responses=problems(*AUTHED, 404))
def get_person(person_id: PersonId, caller: CallerDep, runtime: RuntimeDep) -> PersonView:
    """A person and its passkeys (ids, labels, AAGUIDs, times; never a key)."""
    caller.grants.require(Scope.TENANT_ADMIN)
    person = runtime.identity.get_person(caller.tenant_id, person_id)
    return person_view(person, runtime.identity.person_credentials(person))


@router.post(
    "/v1/people/{person_id}/enrollment",
    status_code=201,
    response_model=EnrollmentView,
    responses=problems(*AUTHED, 404, 409),
)
def new_enrollment(person_id: PersonId, caller: CallerDep, runtime: RuntimeDep) -> JSONResponse:
    """A new enrollment token for the person (a lost one, or another passkey); the previous one stops."""
    caller.grants.require(Scope.TENANT_ADMIN)
    enrollment = runtime.identity.new_enrollment(caller.tenant_id, person_id)
    return JSONResponse(
        _enrollment_view(enrollment).model_dump(mode="json"),
        status_code=201,
        headers={"Cache-Control": "no-store"},
    )


@router.put("/v1/people/{person_id}/roles", response_model=PersonView, responses=problems(*AUTHED, 404, 409))
def set_person_roles(
    person_id: PersonId, body: NewPersonRoles, caller: CallerDep, runtime: RuntimeDep
) -> PersonView:
    """Replace a person's roles; its sessions are narrowed to them at once."""
    caller.grants.require(Scope.TENANT_ADMIN)
    return person_view(runtime.identity.set_person_roles(caller.tenant_id, person_id, _bindings(body.roles)))


@router.delete("/v1/people/{person_id}", response_model=PersonView, responses=problems(*AUTHED, 404))
def revoke_person(person_id: PersonId, caller: CallerDep, runtime: RuntimeDep) -> PersonView:
    """Revoke a person: its tokens stop at once and its passkeys sign in no more."""
    caller.grants.require(Scope.TENANT_ADMIN)
    return person_view(runtime.identity.revoke_person(caller.tenant_id, person_id))


@router.delete(
    "/v1/people/{person_id}/credentials/{credential_id}", status_code=204, responses=problems(*AUTHED, 404)
)
def remove_credential(
    person_id: PersonId, credential_id: CredentialId, caller: CallerDep, runtime: RuntimeDep
) -> Response:
    """Delete one of the person's passkeys (a lost device)."""
    caller.grants.require(Scope.TENANT_ADMIN)
    runtime.identity.remove_credential(caller.tenant_id, person_id, credential_id)
    return Response(status_code=204)
