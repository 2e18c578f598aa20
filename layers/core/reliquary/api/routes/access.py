"""Reading plaintext: an access request starts the access state machine; its answer (pending, approved
with the grant, the receipt and the attestation chain, or denied with reasons) is polled, and the client
that made an approved request fetches the sealed item its grant opens. Plaintext never passes through
the API: the grant is the data key sealed to the requester's own public key, the item is ciphertext."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from reliquary.api.problems import context_of
from reliquary.api.routes import AUTHED, problems
from reliquary.api.security import CallerDep, RuntimeDep
from reliquary.crypto.kem import PUBLIC_KEY_LEN
from reliquary.errors import ConflictError, InvalidRequestError, NotFoundError
from reliquary.fields import Base64Bytes, Identifier
from reliquary.flow.state import ContextProof, FlowRequest, Principal
from reliquary.gateway import ApiRuntime, Capability, Execution
from reliquary.identity.models import Caller
from reliquary.identity.scopes import Scope
from reliquary.zk.replay import NONCE_HEX

router = APIRouter(tags=["access requests"])
RequestId = Annotated[str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$")]
Status = Literal["pending", "approved", "denied", "failed"]


def _base64_of(length: int) -> str:
    """The pattern of padded base64 that decodes to exactly ``length`` bytes."""
    groups, rest = divmod(length, 3)
    tail = {0: "", 1: "[A-Za-z0-9+/]{2}==", 2: "[A-Za-z0-9+/]{3}="}[rest]
    return f"^[A-Za-z0-9+/]{{{4 * groups}}}{tail}$"


# Read by the app's middleware, not by the route: declared here so the document says it is required.
IDEMPOTENCY_KEY_HEADER = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": True,
    "description": "The request id, which the context proof binds.",
    "schema": {"type": "string", "pattern": r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$"},
}


class NewAccessRequest(BaseModel):
    """What the requester proves and where the grant is to be sealed. The request id is the
    Idempotency-Key header (required: the context proof binds it)."""

    model_config = ConfigDict(extra="forbid")

    vault_id: Identifier
    memory_id: Identifier
    requester_public_key: Annotated[
        Base64Bytes,
        Field(
            min_length=PUBLIC_KEY_LEN,
            max_length=PUBLIC_KEY_LEN,
            description="ML-KEM-768, base64",
            json_schema_extra={"pattern": _base64_of(PUBLIC_KEY_LEN)},
        ),
    ]
    context_proof: ContextProof
    nonce: Annotated[str, Field(pattern=rf"^[0-9a-f]{{{NONCE_HEX}}}$", description="From POST .../nonces.")]
    purpose: Annotated[str, Field(max_length=256)] = ""


class AccessRequestView(BaseModel):
    request_id: str
    status: Status
    vault_id: str
    memory_id: str
    requested_at: int
    decided_at: int | None
    reasons: list[str] = Field(default_factory=list)
    grant: dict[str, Any] | None = Field(default=None, description="Approved: the grant (GrantResult).")
    receipt: dict[str, Any] | None = Field(default=None, description="The decision's log receipt.")
    entry: str | None = Field(default=None, description="The logged decision record (JSON text).")
    chain_sha256: str | None = None
    attestation_chain: list[dict[str, Any]] | None = Field(
        default=None, description="The signed statements of every stage (approved requests)."
    )
    trust: dict[str, Any] | None = None
    votes: list[dict[str, Any]] | None = None


def _location(request_id: str) -> str:
    return f"/v1/access-requests/{request_id}"


@router.post(
    "/v1/access-requests",
    status_code=202,
    response_model=AccessRequestView,
    responses={
        200: {"model": AccessRequestView, "description": "The same request again, already decided."},
        **problems(*AUTHED, 404, 409),
    },
    openapi_extra={"parameters": [IDEMPOTENCY_KEY_HEADER]},
)
def create_access_request(
    body: NewAccessRequest, request: Request, caller: CallerDep, runtime: RuntimeDep
) -> JSONResponse:
    """Ask to read a memory. Answers 202 at once; poll the Location for the decision. The same request
    again (same Idempotency-Key and body) is that request: 202 while pending, 200 with its state once
    decided."""
    caller.grants.require(Scope.ACCESS_REQUEST, body.vault_id)
    context = context_of(request)
    if not context.idempotent:
        raise InvalidRequestError(
            "the Idempotency-Key header is required: it is the request id the context proof binds",
            field="Idempotency-Key",
        )
    runtime.catalog.get_vault(caller.tenant_id, body.vault_id)
    flow = FlowRequest(
        request_id=context.request_id,
        tenant_id=caller.tenant_id,
        vault_id=body.vault_id,
        item_id=body.memory_id,
        principal=Principal(subject=caller.client_id, roles=caller.roles_on(body.vault_id)),
        requester_public_key=body.requester_public_key,
        context_proof=body.context_proof,
        nonce=body.nonce,
        purpose=body.purpose,
    )
    started = runtime.executions.start(flow, correlation_id=context.correlation_id)
    existing = None if started else runtime.executions.get(caller.tenant_id, flow.request_id)
    if existing is not None and existing.status != "RUNNING":
        # The same request again, already decided: its current state (it is decided once).
        return JSONResponse(
            _view(runtime, existing).model_dump(mode="json"),
            status_code=200,
            headers={"Location": _location(flow.request_id)},
        )
    view = AccessRequestView(
        request_id=flow.request_id,
        status="pending",
        vault_id=flow.vault_id,
        memory_id=flow.item_id,
        requested_at=runtime.clock(),
        decided_at=None,
    )
    return JSONResponse(
        view.model_dump(mode="json"),
        status_code=202,
        headers={"Location": _location(flow.request_id), "Retry-After": "1"},
    )


def _chain(runtime: ApiRuntime, tenant_id: str, digest: str | None) -> list[dict[str, Any]] | None:
    if not digest:
        return None
    data = runtime.chains.get(tenant_id, digest)
    if data is None or hashlib.sha256(data).hexdigest() != digest:
        return None  # the receipt still names it; a verifier will find it missing or altered
    parsed = json.loads(data)
    return parsed if isinstance(parsed, list) else None


def _view(runtime: ApiRuntime, execution: Execution) -> AccessRequestView:
    flow = execution.request
    base: dict[str, Any] = {
        "request_id": flow.request_id,
        "vault_id": flow.vault_id,
        "memory_id": flow.item_id,
        "requested_at": execution.started_at,
        "decided_at": execution.stopped_at,
    }
    if execution.status == "RUNNING":
        return AccessRequestView(status="pending", **{**base, "decided_at": None})
    output = execution.output or {}
    if execution.status != "SUCCEEDED" or "decision" not in output:
        # The decision could not be logged (the flow fails rather than decide unrecorded): nothing was
        # granted. The error's name only; its cause may quote data.
        return AccessRequestView(
            status="failed",
            reasons=[f"the access flow failed ({execution.error or execution.status})"],
            **base,
        )
    approved = output.get("decision") == "approve" and bool(output.get("grant"))
    status: Status = "approved" if approved else "denied"
    if output.get("decision") == "approve" and not approved:
        status = "failed"
    return AccessRequestView(
        status=status,
        reasons=list(output.get("reasons") or []),
        grant=output.get("grant") if approved else None,
        receipt=output.get("receipt"),
        entry=output.get("entry"),
        chain_sha256=output.get("chain_sha256"),
        attestation_chain=_chain(runtime, flow.tenant_id, output.get("chain_sha256")),
        trust=output.get("trust"),
        votes=output.get("votes"),
        **base,
    )


def _may_read_some(caller: Caller) -> bool:
    """Whether the token may read some access request: `access:read` or `access:request` on a vault."""
    return any(caller.grants.vaults_with(s) != frozenset() for s in (Scope.ACCESS_READ, Scope.ACCESS_REQUEST))


def _visible(caller: Caller, execution: Execution) -> bool:
    flow = execution.request
    if caller.grants.allows(Scope.ACCESS_READ, flow.vault_id):
        return True
    return (
        caller.grants.allows(Scope.ACCESS_REQUEST, flow.vault_id)
        and flow.principal.subject == caller.client_id
    )


@router.get(
    "/v1/access-requests/{request_id}", response_model=AccessRequestView, responses=problems(*AUTHED, 404)
)
def get_access_request(request_id: RequestId, caller: CallerDep, runtime: RuntimeDep) -> JSONResponse:
    """The request's state: `pending` (poll again after Retry-After), `approved` (the grant, the receipt,
    the attestation chain), `denied` (the reasons, the receipt) or `failed` (nothing was granted)."""
    if not _may_read_some(caller):
        caller.grants.require(Scope.ACCESS_READ)  # neither scope on any vault: a 403, as for every route
    execution = runtime.executions.get(caller.tenant_id, request_id)
    # Another client's request without access:read is as absent as one that does not exist.
    if execution is None or not _visible(caller, execution):
        raise NotFoundError("no such access request")
    view = _view(runtime, execution)
    headers = {"Retry-After": "1"} if view.status == "pending" else {}
    return JSONResponse(view.model_dump(mode="json"), headers=headers)


class SealedItemView(BaseModel):
    """The sealed item an approved request's grant opens (docs/envelope.md): open it with the grant and
    the requester's private key, checking both with the service keys (`GET /v1/audit/keys`)."""

    request_id: str
    vault_id: str
    memory_id: str
    version: int = Field(description="The item version the grant opens.")
    content_type: str
    envelope: str = Field(description="The RQE1 envelope, its body attached, standard base64.")
    grant_expires_at: int = Field(description="The grant's expiry: the item is released until then.")


def _made_by(caller: Caller, execution: Execution) -> bool:
    """The request is the caller's own, and the caller may still request access in its vault."""
    flow = execution.request
    return flow.principal.subject == caller.client_id and caller.grants.allows(
        Scope.ACCESS_REQUEST, flow.vault_id
    )


@router.get(
    "/v1/access-requests/{request_id}/item",
    response_model=SealedItemView,
    responses=problems(*AUTHED, 404, 409, 410),
)
def get_sealed_item(request_id: RequestId, caller: CallerDep, runtime: RuntimeDep) -> SealedItemView:
    """The sealed item of an approved request, to the client that made it, while its grant is live.
    Another client's request (even with `access:read`), another tenant's or an unknown one is 404; a
    request that is pending, denied or failed, or whose grant expired, is 409 (`conflict`); an item
    shredded since is 410; an item too large for a Lambda answer (over about 4.45 MiB, sealed under a
    raised seal limit) is 413 (`payload_too_large`)."""
    if caller.grants.vaults_with(Scope.ACCESS_REQUEST) == frozenset():
        caller.grants.require(Scope.ACCESS_REQUEST)  # no vault to request in: a 403, as for every route
    execution = runtime.executions.get(caller.tenant_id, request_id)
    if execution is None or not _made_by(caller, execution):
        raise NotFoundError("no such access request")
    view = _view(runtime, execution)
    if view.status != "approved" or view.grant is None:
        raise ConflictError(
            "only an approved access request's item is released; this one is not approved",
            check=view.status,
        )
    expires_at = view.grant.get("expires_at")
    if not isinstance(expires_at, int) or runtime.clock() >= expires_at:
        raise ConflictError("the access request's grant has expired: make a new request", check="expired")
    flow = execution.request
    # The encrypt function re-checks the logged approval as it does for the grant: the API holds no right
    # to read envelopes itself.
    result = runtime.functions.call(
        Capability.ENCRYPT,
        {
            "action": "sealed_item",
            "request_id": flow.request_id,
            "tenant_id": flow.tenant_id,
            "vault_id": flow.vault_id,
            "item_id": flow.item_id,
            "requester_public_key": base64.b64encode(flow.requester_public_key).decode("ascii"),
        },
    )
    return SealedItemView(
        request_id=flow.request_id,
        vault_id=flow.vault_id,
        memory_id=flow.item_id,
        version=result["version"],
        content_type=result["content_type"],
        envelope=result["envelope"],
        grant_expires_at=expires_at,
    )
