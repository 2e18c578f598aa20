"""Passkey ceremonies: a person registers passkeys (with an enrollment or a session token) and signs in
with one (no token: the passkey is the credential) to get a session token.

The options are py_webauthn's PublicKeyCredential*OptionsJSON, ready for ``navigator.credentials``
after the page decodes the base64url members; the credential is the browser's
``PublicKeyCredential.toJSON()``. Challenges live ``webauthn_challenge_ttl_seconds`` and are spent by
their first use, failed or not."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from reliquary.api.routes import AUTHED, problems
from reliquary.api.routes.admin import RoleIn
from reliquary.api.security import CallerDep, RuntimeDep
from reliquary.identity.service import Ceremony

router = APIRouter(tags=["passkeys"])
ChallengeId = Annotated[str, Field(pattern=r"^[0-9a-f]{32}$", description="From the options call.")]
NO_STORE = {"Cache-Control": "no-store"}


class Empty(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CeremonyView(BaseModel):
    challenge_id: str
    options: dict[str, Any] = Field(
        description="PublicKeyCredentialCreationOptionsJSON or RequestOptionsJSON."
    )


class Registration(BaseModel):
    model_config = ConfigDict(extra="forbid")

    challenge_id: ChallengeId
    credential: dict[str, Any] = Field(
        description="RegistrationResponseJSON (`PublicKeyCredential.toJSON()`)."
    )
    label: str | None = Field(default=None, min_length=1, max_length=128, pattern=r"^[ -~]+$")


class Registered(BaseModel):
    credential_id: str
    aaguid: str
    created_at: int


class SignIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    challenge_id: ChallengeId
    credential: dict[str, Any] = Field(
        description="AuthenticationResponseJSON (`PublicKeyCredential.toJSON()`)."
    )


class SignedInPerson(BaseModel):
    person_id: str
    tenant_id: str
    name: str
    roles: list[RoleIn]


class Session(BaseModel):
    access_token: str
    token_type: str
    expires_in: int
    scope: str
    person: SignedInPerson


def _ceremony(ceremony: Ceremony) -> JSONResponse:
    view = CeremonyView(challenge_id=ceremony.challenge_id, options=ceremony.options)
    return JSONResponse(view.model_dump(mode="json"), headers=NO_STORE)


@router.post("/v1/webauthn/registration/options", response_model=CeremonyView, responses=problems(*AUTHED))
def registration_options(_body: Empty, caller: CallerDep, runtime: RuntimeDep) -> JSONResponse:
    """Options to register a passkey for the calling person (`webauthn:register`: a person's enrollment
    or session token)."""
    return _ceremony(runtime.identity.registration_options(caller))


@router.post(
    "/v1/webauthn/registration/verify",
    status_code=201,
    response_model=Registered,
    responses=problems(*AUTHED, 409),
)
def registration_verify(body: Registration, caller: CallerDep, runtime: RuntimeDep) -> JSONResponse:
    """Verify the browser's registration response and store the passkey (an enrollment token is spent).
    `passkey_invalid` (400) if it does not verify."""
    stored = runtime.identity.register_passkey(
        caller, challenge_id=body.challenge_id, credential=body.credential, label=body.label
    )
    registered = Registered(
        credential_id=stored.credential_id, aaguid=stored.aaguid, created_at=stored.created_at
    )
    return JSONResponse(registered.model_dump(mode="json"), status_code=201, headers=NO_STORE)


@router.post("/v1/webauthn/authentication/options", response_model=CeremonyView, responses=problems())
def authentication_options(_body: Empty, runtime: RuntimeDep) -> JSONResponse:
    """Options to sign in with a passkey (no token; discoverable credentials, user verification)."""
    return _ceremony(runtime.identity.authentication_options())


@router.post("/v1/webauthn/authentication/verify", response_model=Session, responses=problems(409))
def authentication_verify(body: SignIn, runtime: RuntimeDep) -> JSONResponse:
    """Verify a passkey sign-in and answer a session access token for the person. `passkey_invalid`
    (400) for every refusal."""
    signed_in = runtime.identity.sign_in(challenge_id=body.challenge_id, credential=body.credential)
    person = signed_in.person
    session = Session(
        access_token=signed_in.token.access_token,
        token_type=signed_in.token.token_type,
        expires_in=signed_in.token.expires_in,
        scope=signed_in.token.scope,
        person=SignedInPerson(
            person_id=person.person_id,
            tenant_id=person.tenant_id,
            name=person.name,
            roles=[RoleIn(role=b.role, vault_id=b.vault_id) for b in person.roles],
        ),
    )
    return JSONResponse(session.model_dump(mode="json"), headers=NO_STORE)
