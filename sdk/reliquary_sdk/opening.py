"""Opening an approved access request on the client, offline once the answers are fetched.

``open_approved`` takes the request's decided view (``GET /v1/access-requests/{id}``), its sealed item
(``GET /v1/access-requests/{id}/item``) and the keys the client trusts (``TrustedKeys``: the checkpoint
verifier keys, the stage keys and the service keys of ``GET /v1/audit/keys``, or pinned ones) and checks,
in order, everything the service's word rests on:

1. the grant and the envelope: signed by a service key, live, sealed to this requester's key, for exactly
   the request id, tenant, vault and item asked for (``crypto.open_grant``), then decrypted;
2. the receipt: the logged decision record is a leaf of the tenant log's tree under a checkpoint every
   trusted verifier key signed (``audit.verify_receipt``), for this request;
3. the record: an approval of this request, vault, item, requester key and item version, naming the chain;
4. the chain: every stage signed by its function's published key, about this request and requester key,
   approving, for the version the grant opens, and the very chain the record names (``chain.verify_chain``).

The receipt's checkpoint then goes through the client's ``LogMonitor`` (the caller's part: it needs the
API for consistency proofs). The result is an ``OpenedMemory``. A request that was not approved is a
``NotApprovedError`` before anything is fetched; any failed check is the module's typed error
(``InvalidGrantError``, ``CheckpointError``/``ProofError``, ``ChainError``, ``OpenError``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from reliquary_sdk import audit, chain, crypto
from reliquary_sdk import models as m
from reliquary_sdk._verify import KeyRing, PublicKey, VerificationError

__all__ = [
    "ChainSummary",
    "NotApprovedError",
    "OpenError",
    "OpenedMemory",
    "TrustedKeys",
    "open_approved",
]


class NotApprovedError(Exception):
    """``open()`` on a request that was not approved (``status``: pending, denied or failed): nothing was
    granted, so there is nothing to open. ``reasons`` are the service's, as the decided view lists them."""

    code = "not_approved"

    def __init__(self, status: str, reasons: Iterable[str] = ()) -> None:
        super().__init__(f"the access request was not approved (it is {status}): there is nothing to open")
        self.status = status
        self.reasons = tuple(reasons)


class OpenError(VerificationError):
    """The decided view does not hold together: its logged record or its chain is not about this very
    approval (another request, vault, item, key or version), or a member is missing or malformed."""

    code = "open_failed"


@dataclass(frozen=True, slots=True)
class TrustedKeys:
    """The public keys a client checks an approval with: the log's origin and checkpoint verifier keys,
    the flow functions' stage keys and the service's grant and envelope signing keys."""

    origin: str
    verifiers: tuple[audit.NoteVerifier, ...]
    stage_keys: chain.StageKeys
    service_keys: KeyRing

    @classmethod
    def from_api(cls, published: m.AuditKeys | Mapping[str, Any]) -> TrustedKeys:
        """From ``GET /v1/audit/keys``'s answer; ``OpenError`` when a member is malformed."""
        value = published.model_dump() if isinstance(published, m.AuditKeys) else dict(published)
        try:
            origin = value["origin"]
            verifiers = tuple(audit.NoteVerifier.from_vkey(v) for v in value["verifier_keys"])
            service = [_service_key(k) for k in value["service_keys"]]
            stage_keys = chain.StageKeys.from_json(value["stage_keys"])
        except (KeyError, TypeError, ValueError, binascii.Error, VerificationError) as exc:
            raise OpenError("the published keys are malformed") from exc
        if not isinstance(origin, str) or not verifiers or not service:
            raise OpenError("the published keys are incomplete")
        return cls(origin, verifiers, stage_keys, KeyRing(service))


def _service_key(published: Mapping[str, Any]) -> PublicKey:
    """One published service key, its id checked against the key."""
    key = PublicKey(published["algorithm"], base64.b64decode(published["public_key"], validate=True))
    if key.key_id.hex() != published["key_id"]:
        raise ValueError("a service key's id is not its key's")
    return key


@dataclass(frozen=True, slots=True)
class ChainSummary:
    """What the verified attestation chain shows."""

    approves: bool
    digest: str
    stages: tuple[str, ...]
    agents: tuple[str, ...]
    approvers_required: int
    approved_by: tuple[str, ...]
    decided_at: int | None
    item_version: int | None
    policy_version: str | None

    @classmethod
    def of(cls, verified: chain.VerifiedChain) -> ChainSummary:
        return cls(
            approves=verified.approves,
            digest=verified.digest,
            stages=tuple(a.stage for a in verified.attestations),
            agents=tuple(str(v.statement.claim.get("agent")) for v in verified.votes),
            approvers_required=verified.approvers_required,
            approved_by=verified.approved_by,
            decided_at=verified.decided_at,
            item_version=verified.item_version,
            policy_version=verified.policy_version,
        )


@dataclass(frozen=True, slots=True)
class OpenedMemory:
    """An approved memory, opened on the client, with the evidence it was checked against."""

    request_id: str
    tenant_id: str
    vault_id: str
    memory_id: str
    item_version: int
    content_type: str
    plaintext: bytes
    grant_expires_at: int
    receipt: audit.Receipt
    checkpoint: audit.Checkpoint
    chain: ChainSummary

    def text(self, encoding: str = "utf-8") -> str:
        return self.plaintext.decode(encoding)

    def __repr__(self) -> str:  # the plaintext never shows in a log line
        return (
            f"OpenedMemory(request_id={self.request_id!r}, vault_id={self.vault_id!r}, "
            f"memory_id={self.memory_id!r}, item_version={self.item_version}, "
            f"content_type={self.content_type!r}, bytes={len(self.plaintext)})"
        )


def require_approved(view: m.AccessRequestView) -> dict[str, Any]:
    """The approved view's grant; ``NotApprovedError`` for any other state."""
    if view.status != "approved" or view.grant is None:
        raise NotApprovedError(view.status, view.reasons)
    return view.grant


def _record(view: m.AccessRequestView) -> dict[str, Any]:
    if view.entry is None or view.receipt is None:
        raise OpenError("the approval carries no logged record or receipt")
    try:
        record = json.loads(view.entry)
    except ValueError:
        raise OpenError("the logged record is not JSON") from None
    if not isinstance(record, dict):
        raise OpenError("the logged record is not a JSON object")
    return record


def open_approved(
    view: m.AccessRequestView,
    sealed: m.SealedItemView,
    *,
    key: crypto.RequesterKey,
    keys: TrustedKeys,
    tenant_id: str,
    now: int | None = None,
    falcon: audit.FalconPolicy = "check",
) -> OpenedMemory:
    """Check and open an approved request (the module's steps 1 to 4). ``tenant_id`` is the caller's own
    tenant (the grant and the log must be its); ``now`` defaults to the clock."""
    grant = require_approved(view)
    scope = (tenant_id, view.vault_id, view.memory_id)
    if (sealed.request_id, sealed.vault_id, sealed.memory_id) != (view.request_id, *scope[1:]):
        raise OpenError("the sealed item is for another request")
    opened = crypto.open_grant(
        str(grant.get("grant")),
        sealed.envelope,
        requester_key=key,
        service_keys=keys.service_keys,
        now=now,
        request_id=view.request_id,
        expected=scope,
    )
    if not keys.origin.endswith(f"/{tenant_id}"):
        raise OpenError("the trusted log is another tenant's")
    record = _record(view)
    receipt = audit.Receipt.from_dict(view.receipt or {})
    if receipt.request_id != view.request_id:
        raise OpenError("the receipt is for another request")
    checkpoint = audit.verify_receipt(
        receipt,
        view.entry or "",
        keys.verifiers,
        origin=keys.origin,
        required=keys.verifiers,
        falcon=falcon,
    )
    key_digest = hashlib.sha256(key.public_bytes()).hexdigest()
    logged = (
        record.get("kind"),
        record.get("decision"),
        record.get("tenant_id"),
        record.get("request_id"),
        record.get("vault_id"),
        record.get("item_id"),
        record.get("requester_key_sha256"),
        record.get("item_version"),
    )
    asked = ("decision", "approve", *scope[:1], view.request_id, *scope[1:], key_digest, opened.item_version)
    if logged != asked:
        raise OpenError("the logged record is not this request's approval")
    verified = chain.verify_chain(chain.parse_chain(view.attestation_chain or []), keys.stage_keys, now=now)
    subject = verified.subject
    named = (
        subject.tenant_id,
        subject.vault_id,
        subject.item_id,
        subject.request_id,
        subject.requester_key_sha256,
    )
    if named != (*scope, view.request_id, key_digest):
        raise OpenError("the attestation chain is about another request")
    if not verified.approves or verified.item_version != opened.item_version:
        raise OpenError("the attestation chain does not approve the version the grant opens")
    if not verified.digest == record.get("chain_sha256") == view.chain_sha256:
        raise OpenError("the attestation chain is not the one the logged record names")
    return OpenedMemory(
        request_id=view.request_id,
        tenant_id=tenant_id,
        vault_id=view.vault_id,
        memory_id=view.memory_id,
        item_version=opened.item_version,
        content_type=opened.content_type,
        plaintext=opened.plaintext,
        grant_expires_at=opened.expires_at,
        receipt=receipt,
        checkpoint=checkpoint,
        chain=ChainSummary.of(verified),
    )
