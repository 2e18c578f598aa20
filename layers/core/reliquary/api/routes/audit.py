"""The tenant's transparency log: the signed checkpoint (a C2SP signed note), entries with inclusion
proofs, consistency proofs between sizes, exports, and the keys that verify all of it.

The checkpoint, the consistency proofs, the keys and the checkpoints' public anchors are public
verification material (a signed tree head, hashes, public keys, where copies of signed tree heads are):
besides ``audit:read``, ``access:request`` on any vault allows them, so a
requester can check the receipt of its own decision and that its tenant's log never forked. Entries and
exports (the records themselves) stay the auditor's."""

from __future__ import annotations

import base64
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel, ConfigDict, Field

from reliquary.api.problems import context_of
from reliquary.api.routes import AUTHED, problems
from reliquary.api.security import CallerDep, RuntimeDep
from reliquary.fields import JSON_INTEGER, JsonInt
from reliquary.gateway import Capability
from reliquary.identity.scopes import Scope

router = APIRouter(tags=["audit"])
# Who may read the verification material: an auditor, or a requester (on some vault) of the tenant.
VERIFY = (Scope.AUDIT_READ, Scope.ACCESS_REQUEST)
Size = Annotated[int, Query(ge=1, le=2**40)]


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


class EntryProof(BaseModel):
    index: int
    tree_size: int
    entry: str = Field(description="The entry's bytes, base64 (a JSON record).")
    inclusion_proof: list[str] = Field(description="RFC 9162 audit path, base64 hashes, leaf to root.")
    checkpoint: str | None = Field(
        description="The signed note of `tree_size` when it is the latest checkpoint's; for an earlier "
        "size, check the proof against the root of the checkpoint of that size you hold."
    )


class ConsistencyProof(BaseModel):
    first: int
    second: int
    proof: list[str] = Field(description="RFC 9162 consistency proof, base64 hashes.")
    checkpoint: str | None = Field(description="The signed note of `second` when it is the latest's.")


class AuditKeys(BaseModel):
    origin: str = Field(description="The log's checkpoint origin line.")
    verifier_keys: list[str] = Field(description="C2SP note verifier keys of the checkpoint signers.")
    stage_keys: list[dict[str, str]] = Field(
        description="The flow functions' public stage keys: `signer`, `algorithm`, `key_id` (hex) and "
        "`public_key` (base64) each."
    )
    service_keys: list[dict[str, str]] = Field(
        description="The service's grant and envelope signing keys (public): `algorithm`, `key_id` (hex) "
        "and `public_key` (base64) each. A requester checks a grant and the sealed item it opens with them."
    )


class AnchorBlock(BaseModel):
    height: int
    hash: str = Field(description="The block's independent hash (base64url).")


class AnchorView(BaseModel):
    tree_size: int = Field(description="The size of the anchored checkpoint's tree.")
    root_hash: str = Field(description="Its root hash (base64).")
    backend: Literal["ipfs", "arweave"]
    locator: str = Field(description="The CID (version 1, base32) on IPFS, the transaction id on Arweave.")
    note_sha256: str = Field(description="SHA-256 (hex) of the signed note, stored byte for byte as signed.")
    anchored_at: int = Field(description="When it was stored (Unix seconds).")
    log_index: int = Field(description="Where the `checkpoint_anchor` record sits in the log.")
    block: AnchorBlock | None = Field(description="The Arweave block that holds it, once recorded.")


class AnchorList(BaseModel):
    origin: str = Field(description="The log's checkpoint origin line.")
    anchors: list[AnchorView] = Field(description="Newest first; empty when nothing is anchored.")


class NewExport(BaseModel):
    model_config = ConfigDict(extra="forbid")

    start: JsonInt = Field(default=0, ge=0)
    end: Annotated[int, Field(ge=0), JSON_INTEGER] | None = Field(
        default=None, description="Exclusive; default: the checkpoint's size."
    )


class ExportView(BaseModel):
    export_id: str
    start: int
    end: int
    tree_size: int
    bytes: int
    download_url: str = Field(description="A presigned URL of the JSON Lines file, valid 5 minutes.")


@router.get(
    "/v1/audit/checkpoint",
    response_class=PlainTextResponse,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}, **problems(*AUTHED, 404)},
)
def checkpoint(caller: CallerDep, runtime: RuntimeDep) -> PlainTextResponse:
    """The latest signed checkpoint, byte for byte as published (text/plain; C2SP tlog-checkpoint).
    `audit:read`, or `access:request` on any vault."""
    caller.grants.require_any(*VERIFY)
    return PlainTextResponse(runtime.audit.checkpoint_text(caller.tenant_id))


@router.get("/v1/audit/entries/{index}", response_model=EntryProof, responses=problems(*AUTHED, 404))
def entry(
    index: Annotated[int, Path(ge=0, le=2**40)],
    caller: CallerDep,
    runtime: RuntimeDep,
    tree_size: Size | None = None,
) -> EntryProof:
    """An entry and its inclusion proof in the tree of `tree_size` (default: the latest checkpoint)."""
    caller.grants.require(Scope.AUDIT_READ)
    found = runtime.audit.entry(caller.tenant_id, index, tree_size=tree_size)
    return EntryProof(
        index=found.index,
        tree_size=found.tree_size,
        entry=_b64(found.entry),
        inclusion_proof=[_b64(h) for h in found.inclusion_proof],
        checkpoint=found.checkpoint,
    )


@router.get("/v1/audit/consistency", response_model=ConsistencyProof, responses=problems(*AUTHED, 404))
def consistency(
    first: Size, caller: CallerDep, runtime: RuntimeDep, second: Size | None = None
) -> ConsistencyProof:
    """Proof that the tree of size `first` is a prefix of the tree of size `second` (default: the
    latest checkpoint's). `audit:read`, or `access:request` on any vault."""
    caller.grants.require_any(*VERIFY)
    found = runtime.audit.consistency(caller.tenant_id, first, second)
    return ConsistencyProof(
        first=found.old_size,
        second=found.new_size,
        proof=[_b64(h) for h in found.proof],
        checkpoint=found.checkpoint,
    )


@router.get("/v1/audit/keys", response_model=AuditKeys, responses=problems(*AUTHED))
def keys(caller: CallerDep, runtime: RuntimeDep) -> AuditKeys:
    """The checkpoint verifier keys, the stage keys and the service keys: all an auditor needs to check
    the log and the attestation chains offline, and a requester to check its grants. `audit:read`, or
    `access:request` on any vault."""
    caller.grants.require_any(*VERIFY)
    return AuditKeys(
        origin=runtime.audit.origin(caller.tenant_id),
        verifier_keys=list(runtime.audit.verifier_keys()),
        stage_keys=runtime.audit.stage_keys(),
        service_keys=runtime.service_keys(),
    )


@router.get("/v1/audit/anchors", response_model=AnchorList, responses=problems(*AUTHED))
def anchors(
    caller: CallerDep, runtime: RuntimeDep, limit: Annotated[int, Query(ge=1, le=100)] = 20
) -> AnchorList:
    """The log's checkpoints anchored in public (IPFS or Arweave), newest first: each read from its
    `checkpoint_anchor` record, proved in the latest checkpoint. `audit:read`, or `access:request` on
    any vault."""
    caller.grants.require_any(*VERIFY)
    found = runtime.audit.anchors(caller.tenant_id, limit=limit)
    return AnchorList(
        origin=runtime.audit.origin(caller.tenant_id),
        anchors=[AnchorView.model_validate(anchor.to_dict()) for anchor in found],
    )


@router.post(
    "/v1/audit/exports", status_code=201, response_model=ExportView, responses=problems(*AUTHED, 404)
)
def export(body: NewExport, request: Request, caller: CallerDep, runtime: RuntimeDep) -> ExportView:
    """Export entries [start, end) with their inclusion proofs as JSON Lines; download from the URL."""
    caller.grants.require(Scope.AUDIT_EXPORT)
    export_id = context_of(request).request_id
    end = body.end if body.end is not None else runtime.audit.size(caller.tenant_id)
    result = runtime.functions.call(
        Capability.AUDIT_APPEND,
        {
            "action": "export",
            "tenant_id": caller.tenant_id,
            "export_id": export_id,
            "start": body.start,
            "end": end,
        },
    )
    return ExportView(
        export_id=export_id,
        start=result["start"],
        end=result["end"],
        tree_size=result["tree_size"],
        bytes=result["bytes"],
        download_url=runtime.export_url(caller.tenant_id, result["key"]),
    )
