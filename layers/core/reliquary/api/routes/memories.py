"""The memory API: add, list, get, delete, forget and history, scoped by `user_id`, `agent_id` or
`run_id` as agents' memory services are. Lists and gets return metadata only: plaintext is never read
back through the API (that is an access request, answered by a grant sealed to the requester)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, model_validator

from reliquary.api.problems import context_of
from reliquary.api.routes import AUTHED, problems
from reliquary.api.routes.vaults import Cursor, Limit, VaultId
from reliquary.api.security import CallerDep, RuntimeDep
from reliquary.audit.index import ItemDecision
from reliquary.contracts.encrypt import ForgetResult, SealResult, ShredResult
from reliquary.errors import InvalidRequestError
from reliquary.fields import JSON_INTEGER, Identifier
from reliquary.gateway import Capability
from reliquary.identity.scopes import Scope
from reliquary.vaults.catalog import ItemVersionInfo, KeyEvent
from reliquary.vaults.labels import DEFAULT_SENSITIVITY, Sensitivity
from reliquary.vaults.models import MemoryKind, MemoryScope

router = APIRouter(tags=["memories"])
MemoryId = Annotated[str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$")]
ScopeRef = Annotated[str | None, Query(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$")]
MAX_TTL_SECONDS = 10 * 366 * 86_400


class NewMemory(BaseModel):
    """One memory to seal: its content (`text`, or `content` in base64) and whose it is (exactly one of
    `user_id`, `agent_id`, `run_id`)."""

    model_config = ConfigDict(extra="forbid")

    memory_id: Identifier | None = Field(
        default=None, description="Default: derived from the Idempotency-Key, else random."
    )
    text: str | None = Field(default=None, description="UTF-8 text (content type text/plain).")
    content: str | None = Field(default=None, description="Any bytes, base64.")
    content_type: str | None = Field(default=None, pattern=r"^[!-~][ -~]{0,126}$")
    user_id: Identifier | None = None
    agent_id: Identifier | None = None
    run_id: Identifier | None = None
    tags: dict[str, str] = Field(default_factory=dict, max_length=32)
    ttl_seconds: Annotated[int, Field(ge=1, le=MAX_TTL_SECONDS), JSON_INTEGER] | None = Field(
        default=None, description="Crypto-shred after."
    )
    sensitivity: Sensitivity = DEFAULT_SENSITIVITY

    @model_validator(mode="after")
    def _one_content_one_scope(self) -> NewMemory:
        if (self.text is None) == (self.content is None):
            raise ValueError("exactly one of text and content is required")
        if sum(x is not None for x in (self.user_id, self.agent_id, self.run_id)) != 1:
            raise ValueError("exactly one of user_id, agent_id and run_id is required")
        return self

    def scope(self) -> MemoryScope:
        return _scope(self.user_id, self.agent_id, self.run_id)

    def plaintext(self) -> bytes:
        if self.text is not None:
            return self.text.encode("utf-8")
        try:
            return base64.b64decode(self.content or "", validate=True)
        except binascii.Error:
            raise InvalidRequestError("content must be base64", field="content") from None


def _scope(user_id: str | None, agent_id: str | None, run_id: str | None) -> MemoryScope:
    given = [
        (k, v)
        for k, v in ((MemoryKind.USER, user_id), (MemoryKind.AGENT, agent_id), (MemoryKind.RUN, run_id))
        if v
    ]
    if len(given) != 1:
        raise InvalidRequestError("exactly one of user_id, agent_id and run_id is required")
    kind, ref = given[0]
    return MemoryScope(kind, ref)


def _optional_scope(user_id: str | None, agent_id: str | None, run_id: str | None) -> MemoryScope | None:
    if user_id is None and agent_id is None and run_id is None:
        return None
    return _scope(user_id, agent_id, run_id)


class MemoryVersion(BaseModel):
    """One version's metadata: never its content or its keys."""

    version: int
    state: str = Field(description="`live`, `expired` or `shredded`.")
    user_id: str | None = None
    agent_id: str | None = None
    run_id: str | None = None
    content_type: str
    size: int = Field(description="Plaintext bytes.")
    tags: dict[str, str]
    sensitivity: str
    key_version: int = Field(description="The vault key version its data key is wrapped to.")
    created_at: int
    expires_at: int | None
    shredded_at: int | None

    @classmethod
    def of(cls, info: ItemVersionInfo) -> MemoryVersion:
        return cls(
            version=info.version,
            state=str(info.state),
            **{f"{info.memory_scope.kind.value}_id": info.memory_scope.ref},
            content_type=info.content_type,
            size=info.size,
            tags=dict(info.tags),
            sensitivity=str(info.sensitivity),
            key_version=info.key_version,
            created_at=info.created_at,
            expires_at=info.expires_at,
            shredded_at=info.shredded_at,
        )


class MemoryView(MemoryVersion):
    memory_id: str
    versions: int = Field(description="How many versions it has (in the scope listed, when one was).")


class MemoryList(BaseModel):
    memories: list[MemoryView]
    next_cursor: str | None


class MemoryDetail(BaseModel):
    memory_id: str
    versions: list[MemoryVersion] = Field(description="Oldest first.")


class KeyEventView(BaseModel):
    kind: str = Field(description="`created`, `rotated` or `retired`.")
    key_version: int
    at: int

    @classmethod
    def of(cls, event: KeyEvent) -> KeyEventView:
        return cls(kind=str(event.kind), key_version=event.key_version, at=event.at)


class DecisionView(BaseModel):
    index: int = Field(description="The entry's leaf index: read it with `GET /v1/audit/entries/{index}`.")
    request_id: str
    decision: str
    at: int

    @classmethod
    def of(cls, found: ItemDecision) -> DecisionView:
        return cls(
            index=found.index, request_id=found.request_id, decision=str(found.decision), at=found.time
        )


class History(BaseModel):
    memory_id: str
    versions: list[MemoryVersion] = Field(description="Every version's metadata, oldest first.")
    key_events: list[KeyEventView] = Field(description="The vault's key versions created, rotated, retired.")
    decisions: list[DecisionView] = Field(description="Access decisions on this memory, from the log.")
    next_cursor: str | None = Field(description="More decisions: pass as `cursor`.")


@router.post(
    "/v1/vaults/{vault_id}/memories",
    status_code=201,
    response_model=SealResult,
    responses=problems(*AUTHED, 404, 409),
)
def add_memory(
    vault_id: VaultId, body: NewMemory, request: Request, caller: CallerDep, runtime: RuntimeDep
) -> JSONResponse:
    """Seal one memory (ML-KEM-768 + AES-256-GCM under the vault's current key, signed ML-DSA-65)."""
    caller.grants.require(Scope.MEMORIES_WRITE, vault_id)
    context = context_of(request)
    memory_id = body.memory_id or (
        "m-" + hashlib.sha256(f"{caller.tenant_id}\n{context.request_id}".encode()).hexdigest()[:32]
        if context.idempotent
        else "m-" + uuid.uuid4().hex
    )
    scope = body.scope()
    event: dict[str, Any] = {
        "action": "seal",
        "request_id": context.request_id,
        "tenant_id": caller.tenant_id,
        "vault_id": vault_id,
        "item_id": memory_id,
        "plaintext": base64.b64encode(body.plaintext()).decode("ascii"),
        "content_type": body.content_type
        or ("text/plain; charset=utf-8" if body.text is not None else "application/octet-stream"),
        "memory_scope": {"kind": scope.kind.value, "ref": scope.ref},
        "tags": body.tags,
        "sensitivity": body.sensitivity,
    }
    if body.ttl_seconds is not None:
        event["expires_at"] = runtime.clock() + body.ttl_seconds
    result = runtime.functions.call(Capability.ENCRYPT, event)
    return JSONResponse(
        result, status_code=201, headers={"Location": f"/v1/vaults/{vault_id}/memories/{memory_id}"}
    )


@router.get("/v1/vaults/{vault_id}/memories", response_model=MemoryList, responses=problems(*AUTHED, 404))
def list_memories(
    vault_id: VaultId,
    caller: CallerDep,
    runtime: RuntimeDep,
    user_id: ScopeRef = None,
    agent_id: ScopeRef = None,
    run_id: ScopeRef = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> MemoryList:
    """The vault's memories (latest version of each), optionally one user's, agent's or run's."""
    caller.grants.require(Scope.MEMORIES_READ, vault_id)
    scope = _optional_scope(user_id, agent_id, run_id)
    # not_found for a vault the tenant does not have
    page = runtime.catalog.list_items(caller.tenant_id, vault_id, scope=scope, limit=limit, cursor=cursor)
    return MemoryList(
        memories=[
            MemoryView(memory_id=m.item_id, versions=m.versions, **MemoryVersion.of(m.latest).model_dump())
            for m in page.items
        ],
        next_cursor=page.cursor,
    )


@router.delete(
    "/v1/vaults/{vault_id}/memories", response_model=ForgetResult, responses=problems(*AUTHED, 404)
)
def forget(
    vault_id: VaultId,
    request: Request,
    caller: CallerDep,
    runtime: RuntimeDep,
    user_id: ScopeRef = None,
    agent_id: ScopeRef = None,
    run_id: ScopeRef = None,
) -> dict[str, Any]:
    """Forget one user (or agent, or run) everywhere in the vault: crypto-shred each of its memories,
    one signed receipt each. `complete: false` means more remain: call again."""
    caller.grants.require(Scope.MEMORIES_WRITE, vault_id)
    scope = _scope(user_id, agent_id, run_id)
    return runtime.functions.call(
        Capability.ENCRYPT,
        {
            "action": "forget",
            "request_id": context_of(request).request_id,
            "tenant_id": caller.tenant_id,
            "vault_id": vault_id,
            "memory_scope": {"kind": scope.kind.value, "ref": scope.ref},
        },
    )


@router.get(
    "/v1/vaults/{vault_id}/memories/{memory_id}",
    response_model=MemoryDetail,
    responses=problems(*AUTHED, 404),
)
def get_memory(
    vault_id: VaultId, memory_id: MemoryId, caller: CallerDep, runtime: RuntimeDep
) -> MemoryDetail:
    """A memory's metadata, every version (never its content)."""
    caller.grants.require(Scope.MEMORIES_READ, vault_id)
    found = runtime.catalog.get_item(caller.tenant_id, vault_id, memory_id)
    return MemoryDetail(memory_id=found.item_id, versions=[MemoryVersion.of(v) for v in found.versions])


@router.delete(
    "/v1/vaults/{vault_id}/memories/{memory_id}",
    response_model=ShredResult,
    responses=problems(*AUTHED, 404, 410),
)
def delete_memory(
    vault_id: VaultId, memory_id: MemoryId, request: Request, caller: CallerDep, runtime: RuntimeDep
) -> dict[str, Any]:
    """Crypto-shred a memory (every version's data key destroyed) and return the signed deletion receipt."""
    caller.grants.require(Scope.MEMORIES_WRITE, vault_id)
    return runtime.functions.call(
        Capability.ENCRYPT,
        {
            "action": "shred",
            "request_id": context_of(request).request_id,
            "tenant_id": caller.tenant_id,
            "vault_id": vault_id,
            "item_id": memory_id,
        },
    )


@router.get(
    "/v1/vaults/{vault_id}/memories/{memory_id}/history",
    response_model=History,
    responses=problems(*AUTHED, 404),
)
def history(
    vault_id: VaultId,
    memory_id: MemoryId,
    caller: CallerDep,
    runtime: RuntimeDep,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> History:
    """A memory's versions, its vault's key events and the access decisions the log holds about it."""
    caller.grants.require(Scope.MEMORIES_READ, vault_id)
    detail = runtime.catalog.get_item(caller.tenant_id, vault_id, memory_id)
    decisions = runtime.audit.item_decisions(
        caller.tenant_id, vault_id, memory_id, limit=limit, cursor=cursor
    )
    return History(
        memory_id=memory_id,
        versions=[MemoryVersion.of(v) for v in detail.versions],
        key_events=[KeyEventView.of(e) for e in runtime.catalog.key_events(caller.tenant_id, vault_id)],
        decisions=[DecisionView.of(d) for d in decisions.decisions],
        next_cursor=decisions.cursor,
    )
