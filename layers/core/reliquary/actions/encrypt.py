"""The encrypt function's actions over the vault service: request model in, JSON-ready result out."""

from __future__ import annotations

from typing import Any

from reliquary.contracts import encrypt as c
from reliquary.crypto.kem import HybridPublicKey
from reliquary.vaults.models import MemoryScope
from reliquary.vaults.service import ShredReceipt, VaultService


def _create_vault(service: VaultService, request: c.CreateVaultRequest) -> c.CreateVaultResult:
    created = service.create_vault(
        request.tenant_id,
        request.vault_id,
        custodians=[(x.custodian_id, HybridPublicKey.from_bytes(x.public_key)) for x in request.custodians],
        recovery_threshold=request.recovery_threshold,
        permanent_storage=request.permanent_storage,
        acknowledge_permanence=request.acknowledge_permanence,
    )
    recovery = created.vault.recovery
    return c.CreateVaultResult(
        tenant_id=request.tenant_id,
        vault_id=request.vault_id,
        key_version=created.key.version,
        public_key=created.key.public_key,
        recovery_threshold=recovery.threshold if recovery else None,
        custodian_shares=[
            c.CustodianShareOut(
                custodian_id=x.custodian_id,
                public_key_fingerprint=x.public_key_fingerprint,
                sealed_share=x.sealed_share,
            )
            for x in (recovery.custodians if recovery else ())
        ],
        permanent_storage=request.permanent_storage.value if request.permanent_storage else None,
    )


def _seal(service: VaultService, request: c.SealRequest) -> c.SealResult:
    record = service.seal_item(
        request.tenant_id,
        request.vault_id,
        request.item_id,
        request.plaintext,
        content_type=request.content_type,
        memory_scope=MemoryScope(request.memory_scope.kind, request.memory_scope.ref),
        tags=request.tags,
        expires_at=request.expires_at,
        sensitivity=request.sensitivity,
    )
    return c.SealResult(
        tenant_id=record.tenant_id,
        vault_id=record.vault_id,
        item_id=record.item_id,
        version=record.version,
        key_version=record.wrap_key_version,
        size=record.size,
        body_location=record.body_location.value,
        content_type=record.content_type,
        expires_at=record.expires_at,
        permanent_locator=record.permanent_ref.locator if record.permanent_ref else None,
    )


def _rotate(service: VaultService, request: c.RotateRequest) -> c.RotateResult:
    key = service.rotate_key(request.tenant_id, request.vault_id)
    return c.RotateResult(
        tenant_id=request.tenant_id,
        vault_id=request.vault_id,
        key_version=key.version,
        public_key=key.public_key,
    )


def _rewrap(service: VaultService, request: c.RewrapRequest) -> c.RewrapResult:
    report = service.rewrap_vault(request.tenant_id, request.vault_id)
    return c.RewrapResult(
        key_version=report.key_version,
        rewrapped=report.rewrapped,
        already_current=report.already_current,
        skipped_shredded=report.skipped_shredded,
    )


def _retire(service: VaultService, request: c.RetireRequest) -> c.RetireResult:
    key = service.retire_key(request.tenant_id, request.vault_id, request.key_version)
    return c.RetireResult(key_version=key.version, status=key.status.value)


def _grant(service: VaultService, request: c.GrantRequest) -> c.GrantResult:
    # Only for the approval the access flow logged for this request, with its attestation chain
    # (docs/access-flow.md).
    issued = service.grant_approved(
        request_id=request.request_id,
        tenant_id=request.tenant_id,
        vault_id=request.vault_id,
        item_id=request.item_id,
        requester_public_key=HybridPublicKey.from_bytes(request.requester_public_key),
    )
    return c.GrantResult(
        grant=issued.grant,
        item_id=issued.record.item_id,
        version=issued.record.version,
        expires_at=issued.expires_at,
    )


def _sealed_item(service: VaultService, request: c.SealedItemRequest) -> c.SealedItemResult:
    # Released under the same logged-approval check as the grant it goes with.
    record, envelope = service.sealed_item_approved(
        request_id=request.request_id,
        tenant_id=request.tenant_id,
        vault_id=request.vault_id,
        item_id=request.item_id,
        requester_public_key=HybridPublicKey.from_bytes(request.requester_public_key),
    )
    return c.SealedItemResult(
        envelope=envelope,
        item_id=record.item_id,
        version=record.version,
        content_type=record.content_type,
    )


def _receipt(receipt: ShredReceipt) -> c.ShredResult:
    return c.ShredResult(
        item_id=receipt.item_id,
        versions=list(receipt.versions),
        shredded_at=receipt.shredded_at,
        signer_key_id=receipt.signer_key_id.hex(),
        signature_algorithm=receipt.signature_algorithm,
        signature=receipt.signature,
    )


def _shred(service: VaultService, request: c.ShredRequest) -> c.ShredResult:
    return _receipt(service.shred_item(request.tenant_id, request.vault_id, request.item_id))


def _forget(service: VaultService, request: c.ForgetRequest) -> c.ForgetResult:
    report = service.forget_scope(
        request.tenant_id,
        request.vault_id,
        MemoryScope(request.memory_scope.kind, request.memory_scope.ref),
        limit=request.limit,
    )
    return c.ForgetResult(
        receipts=[_receipt(r) for r in report.receipts],
        shredded=len(report.receipts),
        already_shredded=report.already_shredded,
        complete=report.complete,
    )


def _expire(service: VaultService, request: c.ExpireRequest) -> c.ExpireResult:
    return c.ExpireResult(shredded_items=service.expire_due(request.tenant_id, request.vault_id))


def run_encrypt_action(service: VaultService, request: Any) -> dict[str, Any]:
    match request:
        case c.CreateVaultRequest():
            result: Any = _create_vault(service, request)
        case c.SealRequest():
            result = _seal(service, request)
        case c.RotateRequest():
            result = _rotate(service, request)
        case c.RewrapRequest():
            result = _rewrap(service, request)
        case c.RetireRequest():
            result = _retire(service, request)
        case c.GrantRequest():
            result = _grant(service, request)
        case c.SealedItemRequest():
            result = _sealed_item(service, request)
        case c.ShredRequest():
            result = _shred(service, request)
        case c.ExpireRequest():
            result = _expire(service, request)
        case c.ForgetRequest():
            result = _forget(service, request)
        case _:
            raise TypeError(f"not an encrypt request: {type(request).__name__}")
    dumped: dict[str, Any] = result.model_dump(mode="json")
    return dumped
