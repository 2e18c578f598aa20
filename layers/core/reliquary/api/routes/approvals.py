"""Step-up approvals: the requests waiting for people (``access:approve`` on their vault), and a person's
passkey answer to one of them.

The API holds no authority here. It lists what agent-vote stored for approvers to see (ApprovalsTable's
``TENANT#`` rows: never a task token), hands a person the approval challenge to sign (stateless:
``reliquary.flow.approvals.approval_challenge`` binds the tenant, request, vault, item, decision, person,
a nonce and the time) and relays the signed answer to agent-vote, which checks the person, recomputes the
challenge, verifies the assertion and resumes the waiting execution. A subverted API can withhold answers
but cannot make one up: it has no passkey and cannot resume an execution (docs/approvals.md)."""

from __future__ import annotations

import secrets
from typing import Annotated, Any

from fastapi import APIRouter, Path
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from reliquary.api.routes import AUTHED, problems
from reliquary.api.security import CallerDep, RuntimeDep
from reliquary.errors import ConflictError, ForbiddenError, NotFoundError
from reliquary.fields import JsonInt
from reliquary.flow.approvals import (
    CHALLENGE_TTL_SECONDS,
    Decision,
    Nonce,
    PendingApproval,
    approval_challenge,
)
from reliquary.gateway import ApiRuntime, Capability
from reliquary.identity import passkeys
from reliquary.identity.models import Caller
from reliquary.identity.scopes import Scope

router = APIRouter(tags=["approvals"])
RequestId = Annotated[str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$")]
NO_STORE = {"Cache-Control": "no-store"}


class ApprovalList(BaseModel):
    approvals: list[PendingApproval]


class ChallengeAsked(BaseModel):
    model_config = ConfigDict(extra="forbid")

    decision: Decision


class ApprovalChallenge(BaseModel):
    options: dict[str, Any] = Field(
        description="PublicKeyCredentialRequestOptionsJSON: the approval challenge, the caller's passkeys, "
        "user verification required."
    )
    nonce: str = Field(description="Send it back with the answer.")
    issued_at: int = Field(description="Send it back with the answer (the challenge lives 300 s).")


class ApprovalAnswer(BaseModel):
    model_config = ConfigDict(extra="forbid")

    decision: Decision
    nonce: Nonce
    issued_at: JsonInt = Field(ge=0)
    credential: dict[str, Any] = Field(
        description="AuthenticationResponseJSON (`PublicKeyCredential.toJSON()`) over the challenge."
    )


class ApprovalState(BaseModel):
    request_id: str
    decision: Decision
    approvals: int = Field(description="Approvals recorded so far.")
    required: int = Field(description="Approvals that release the request.")
    complete: bool = Field(description="Decided: k approvals, or a deny; the access request resumes.")


def _approvable(caller: Caller) -> frozenset[str] | None:
    """The vaults the caller may approve on (None: every vault); a 403 when none."""
    vaults = caller.grants.vaults_with(Scope.ACCESS_APPROVE)
    if vaults is not None and not vaults:
        caller.grants.require(Scope.ACCESS_APPROVE)
    return vaults


def _waiting(caller: Caller, runtime: ApiRuntime, request_id: str) -> PendingApproval:
    """The stored request, for a person who may approve on its vault. A request on a vault the caller
    may not approve on is as absent as one that does not exist (the path names no vault)."""
    vaults = _approvable(caller)
    if caller.kind != "person":
        # Checked after the scope: a client with `access:approve` (the demo's poller) may list, not answer.
        raise ForbiddenError("only a person answers, with a passkey: sign in with one", check="person")
    view = runtime.approvals.get_pending(caller.tenant_id, request_id)
    if view is None or (vaults is not None and view.vault_id not in vaults):
        raise NotFoundError("no request waits for approval under this id")
    return view


@router.get("/v1/approvals", response_model=ApprovalList, responses=problems(*AUTHED))
def list_approvals(caller: CallerDep, runtime: RuntimeDep) -> JSONResponse:
    """The requests waiting for people on the vaults the token may approve on (`access:approve`): who
    asks, for which item, why, the trust factors and every agent's vote; never plaintext."""
    vaults = _approvable(caller)
    now = runtime.clock()
    shown = [
        view
        for view in runtime.approvals.list_pending(caller.tenant_id)
        if view.open_at(now) and (vaults is None or view.vault_id in vaults)
    ]
    shown.sort(key=lambda v: (v.created_at, v.request_id))
    listed = ApprovalList(approvals=shown)
    return JSONResponse(listed.model_dump(mode="json"), headers=NO_STORE)


@router.post(
    "/v1/approvals/{request_id}/challenge",
    response_model=ApprovalChallenge,
    responses=problems(*AUTHED, 404, 409),
)
def approval_challenge_options(
    request_id: RequestId, body: ChallengeAsked, caller: CallerDep, runtime: RuntimeDep
) -> JSONResponse:
    """The WebAuthn options for the calling person's answer (`access:approve` on the request's vault; a
    person's session token: a client has no passkey)."""
    view = _waiting(caller, runtime, request_id)
    if not view.open_at(runtime.clock()):
        raise ConflictError("the request no longer waits for approval")
    if any(vote.person_id == caller.client_id for vote in view.approvals):
        raise ConflictError("this person has answered this request already")
    person = runtime.identity.get_person(caller.tenant_id, caller.client_id)
    nonce, issued_at = secrets.token_hex(16), runtime.clock()
    challenge = approval_challenge(
        tenant_id=view.tenant_id,
        request_id=view.request_id,
        vault_id=view.vault_id,
        item_id=view.item_id,
        decision=body.decision,
        person_id=person.person_id,
        nonce=nonce,
        issued_at=issued_at,
    )
    options = passkeys.authentication_options(
        rp_id=runtime.settings.webauthn_rp_id,
        challenge=challenge,
        allow=runtime.identity.person_credentials(person),
        timeout_seconds=CHALLENGE_TTL_SECONDS,
    )
    asked = ApprovalChallenge(options=options, nonce=nonce, issued_at=issued_at)
    return JSONResponse(asked.model_dump(mode="json"), headers=NO_STORE)


@router.post(
    "/v1/approvals/{request_id}", response_model=ApprovalState, responses=problems(*AUTHED, 404, 409)
)
def answer_approval(
    request_id: RequestId, body: ApprovalAnswer, caller: CallerDep, runtime: RuntimeDep
) -> JSONResponse:
    """The calling person's passkey answer (`access:approve` on the request's vault), verified by
    agent-vote: `passkey_invalid` (400) when the assertion does not sign exactly this challenge,
    `conflict` (409) when the person answered already or the request no longer waits."""
    # No check that the request still waits: agent-vote answers a retried answer as it did the first
    # time, and refuses any other (conflict).
    view = _waiting(caller, runtime, request_id)
    result = runtime.functions.call(
        Capability.AGENT_VOTE,
        {
            "action": "approve",
            "tenant_id": caller.tenant_id,
            "request_id": view.request_id,
            "person_id": caller.client_id,
            "decision": body.decision,
            "nonce": body.nonce,
            "issued_at": body.issued_at,
            "credential": body.credential,
        },
    )
    state = ApprovalState.model_validate(result)
    return JSONResponse(state.model_dump(mode="json"), headers=NO_STORE)
