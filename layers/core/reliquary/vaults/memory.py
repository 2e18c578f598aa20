"""In-memory implementations of the vault ports: for unit tests, benchmarks and the pure core.

They honour the same contracts as the DynamoDB/S3 adapters (conditional writes, tenant-scoped keys),
and the integration tests run one shared contract suite against both.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

from reliquary import jcs
from reliquary.audit.records import DecisionRecord
from reliquary.crypto.scope import VaultRef, validate_id
from reliquary.errors import ConflictError, KeyVersionError, NotFoundError
from reliquary.flow.attestation import Subject
from reliquary.flow.chains import MemoryChainStore
from reliquary.flow.keys import StageKeyDirectory
from reliquary.flow.memory import MemoryStageKeys
from reliquary.vaults import catalog
from reliquary.vaults.labels import ItemLabel, live_label
from reliquary.vaults.models import (
    ItemRecord,
    KeyStatus,
    MemoryScope,
    ScopedItem,
    StoredSigningKey,
    Vault,
    VaultKeyRecord,
)


class InMemoryVaultRepository:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._vaults: dict[tuple[str, str], Vault] = {}
        self._keys: dict[tuple[str, str, int], VaultKeyRecord] = {}

    def create(self, vault: Vault, first_key: VaultKeyRecord) -> None:
        with self._lock:
            if (vault.tenant_id, vault.vault_id) in self._vaults:
                raise ConflictError("the vault exists", vault_id=vault.vault_id)
            self._vaults[(vault.tenant_id, vault.vault_id)] = vault
            self._keys[(vault.tenant_id, vault.vault_id, first_key.version)] = first_key

    def get(self, tenant_id: str, vault_id: str) -> Vault:
        try:
            return self._vaults[(tenant_id, vault_id)]
        except KeyError:
            raise NotFoundError("no such vault", vault_id=vault_id) from None

    def add_key_version(self, vault: Vault, key: VaultKeyRecord) -> Vault:
        with self._lock:
            current = self.get(vault.tenant_id, vault.vault_id)
            if current.current_key_version != vault.current_key_version:
                raise ConflictError("the vault key was rotated concurrently", vault_id=vault.vault_id)
            previous = self._keys[(vault.tenant_id, vault.vault_id, current.current_key_version)]
            self._keys[(vault.tenant_id, vault.vault_id, previous.version)] = replace(
                previous, status=KeyStatus.PREVIOUS
            )
            self._keys[(vault.tenant_id, vault.vault_id, key.version)] = key
            updated = replace(current, current_key_version=key.version)
            self._vaults[(vault.tenant_id, vault.vault_id)] = updated
            return updated

    def get_key(self, tenant_id: str, vault_id: str, version: int) -> VaultKeyRecord:
        try:
            return self._keys[(tenant_id, vault_id, version)]
        except KeyError:
            raise NotFoundError("no such key version", vault_id=vault_id, key_version=version) from None

    def list_keys(self, tenant_id: str, vault_id: str) -> list[VaultKeyRecord]:
        self.get(tenant_id, vault_id)
        return sorted(
            (k for (t, v, _), k in self._keys.items() if (t, v) == (tenant_id, vault_id)),
            key=lambda k: k.version,
        )

    def retire_key(self, tenant_id: str, vault_id: str, version: int, *, retired_at: int) -> VaultKeyRecord:
        with self._lock:
            key = self.get_key(tenant_id, vault_id, version)
            if key.status is KeyStatus.ACTIVE:
                raise KeyVersionError("the current key version cannot be retired", key_version=version)
            retired = replace(
                key,
                status=KeyStatus.RETIRED,
                wrapped_private_key=None,
                escrowed_private_key=None,
                retired_at=key.retired_at or retired_at,
            )
            self._keys[(tenant_id, vault_id, version)] = retired
            return retired


class InMemoryItemRepository:
    def __init__(self, vaults: InMemoryVaultRepository) -> None:
        self._lock = threading.Lock()
        self._items: dict[tuple[str, str, str, int], ItemRecord] = {}
        self._vaults = vaults

    @staticmethod
    def _key(record: ItemRecord) -> tuple[str, str, str, int]:
        return (record.tenant_id, record.vault_id, record.item_id, record.version)

    def put(self, record: ItemRecord) -> None:
        with self._lock:
            try:
                key = self._vaults.get_key(record.tenant_id, record.vault_id, record.wrap_key_version)
            except NotFoundError:
                key = None
            if key is None or key.status is not KeyStatus.ACTIVE:
                raise KeyVersionError(
                    "the vault key was rotated meanwhile", key_version=record.wrap_key_version
                )
            if self._key(record) in self._items:
                raise ConflictError("the item version exists", item_id=record.item_id, version=record.version)
            self._items[self._key(record)] = record

    def get(self, tenant_id: str, vault_id: str, item_id: str, version: int | None = None) -> ItemRecord:
        if version is None:
            found = self.versions(tenant_id, vault_id, item_id)
            if not found:
                raise NotFoundError("no such item", item_id=item_id)
            return found[-1]
        try:
            return self._items[(tenant_id, vault_id, item_id, version)]
        except KeyError:
            raise NotFoundError("no such item version", item_id=item_id, version=version) from None

    def versions(self, tenant_id: str, vault_id: str, item_id: str) -> list[ItemRecord]:
        return sorted(
            (r for k, r in self._items.items() if k[:3] == (tenant_id, vault_id, item_id)),
            key=lambda r: r.version,
        )

    def scan_vault(self, tenant_id: str, vault_id: str) -> Iterator[ItemRecord]:
        records = [r for k, r in self._items.items() if k[:2] == (tenant_id, vault_id)]
        yield from sorted(records, key=lambda r: (r.item_id, r.version))

    def scope_items(self, tenant_id: str, vault_id: str, scope: MemoryScope) -> Iterator[ScopedItem]:
        live: dict[str, bool] = {}
        for (t, v, item_id, _), record in sorted(self._items.items()):
            if (t, v) == (tenant_id, vault_id) and record.memory_scope == scope:
                live[item_id] = live.get(item_id, False) or not record.shredded
        for item_id, is_live in live.items():
            yield ScopedItem(item_id, is_live)

    def replace_envelope(self, record: ItemRecord, envelope: bytes, wrap_key_version: int) -> ItemRecord:
        with self._lock:
            current = self._items.get(self._key(record))
            if current is None:
                raise NotFoundError("no such item version", item_id=record.item_id, version=record.version)
            if current.envelope is None or current.wrap_key_version != record.wrap_key_version:
                raise ConflictError("the item was rewrapped or shredded concurrently", item_id=record.item_id)
            updated = replace(current, envelope=envelope, wrap_key_version=wrap_key_version)
            self._items[self._key(record)] = updated
            return updated

    def shred(self, record: ItemRecord, *, shredded_at: int) -> ItemRecord:
        with self._lock:
            current = self._items.get(self._key(record))
            if current is None:
                raise NotFoundError("no such item version", item_id=record.item_id, version=record.version)
            updated = replace(
                current, envelope=None, expires_at=None, shredded_at=current.shredded_at or shredded_at
            )
            self._items[self._key(record)] = updated
            return updated


class InMemoryItemCatalog:
    """The read-only ``ItemCatalog`` over in-memory items (the integration tests hold it to the same
    answers as ``reliquary.adapters.dynamodb.DynamoDBItemCatalog``)."""

    def __init__(self, items: InMemoryItemRepository, *, clock: Callable[[], float] = time.time) -> None:
        self._items = items
        self._clock = clock

    def label(self, tenant_id: str, vault_id: str, item_id: str) -> ItemLabel:
        VaultRef(tenant_id, vault_id)
        validate_id("item_id", item_id)
        record = self._items.get(tenant_id, vault_id, item_id)
        return live_label(
            item_id,
            version=record.version,
            sensitivity=record.sensitivity,
            expires_at=record.expires_at,
            shredded=record.shredded,
            now=int(self._clock()),
        )


class InMemoryMetadataReader:
    """The read-only ``MetadataReader`` over the in-memory fakes (the integration tests hold it to the
    same answers, pages and cursors as ``reliquary.adapters.catalog.DynamoDBMetadataReader``)."""

    def __init__(
        self,
        vaults: InMemoryVaultRepository,
        items: InMemoryItemRepository,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._vaults = vaults
        self._items = items
        self._clock = clock

    def list_vaults(
        self, tenant_id: str, *, limit: int = catalog.DEFAULT_PAGE, cursor: str | None = None
    ) -> catalog.Page[catalog.VaultSummary]:
        listing = catalog.Listing(tenant_id)
        limit = catalog.page_limit(limit)
        after = catalog.vault_position(cursor, listing)
        vaults = sorted(
            (v for (t, i), v in self._vaults._vaults.items() if t == tenant_id and i > (after or "")),
            key=lambda v: v.vault_id,
        )
        page = tuple(catalog.vault_summary(v) for v in vaults[:limit])
        more = len(vaults) > limit
        return catalog.Page(page, catalog.vault_cursor(listing, page[-1].vault_id) if more else None)

    def get_vault(self, tenant_id: str, vault_id: str) -> catalog.VaultDetails:
        VaultRef(tenant_id, vault_id)
        vault = self._vaults.get(tenant_id, vault_id)
        keys = self._vaults.list_keys(tenant_id, vault_id)
        return catalog.VaultDetails(
            catalog.vault_summary(vault), tuple(catalog.key_record_info(k) for k in keys)
        )

    def key_events(self, tenant_id: str, vault_id: str) -> tuple[catalog.KeyEvent, ...]:
        return catalog.key_events(self.get_vault(tenant_id, vault_id).keys)

    def list_items(
        self,
        tenant_id: str,
        vault_id: str,
        *,
        scope: MemoryScope | None = None,
        limit: int = catalog.DEFAULT_PAGE,
        cursor: str | None = None,
    ) -> catalog.Page[catalog.ItemMetadata]:
        listing = catalog.Listing(tenant_id, vault_id, scope)
        limit = catalog.page_limit(limit)
        after = catalog.item_position(cursor, listing)
        self._vaults.get(tenant_id, vault_id)
        now = int(self._clock())
        records = (
            r
            for r in self._items.scan_vault(tenant_id, vault_id)
            # Past the position's item: a version sealed into it since that page is not shown twice.
            if (scope is None or r.memory_scope == scope) and (after is None or r.item_id > after.item_id)
        )
        page, position = catalog.latest_per_item(
            ((r.item_id, catalog.version_info(r, now)) for r in records), limit
        )
        return catalog.Page(
            tuple(page), catalog.item_cursor(listing, position) if position is not None else None
        )

    def get_item(self, tenant_id: str, vault_id: str, item_id: str) -> catalog.ItemHistory:
        VaultRef(tenant_id, vault_id)
        validate_id("item_id", item_id)
        records = self._items.versions(tenant_id, vault_id, item_id)
        if not records:
            self._vaults.get(tenant_id, vault_id)  # a missing vault is reported as such
            raise NotFoundError("no such item", item_id=item_id)
        now = int(self._clock())
        return catalog.ItemHistory(item_id, tuple(catalog.version_info(r, now) for r in records))


class InMemoryBlobStore:
    def __init__(self) -> None:
        self._blobs: dict[str, bytes] = {}

    def put(self, key: str, data: bytes) -> None:
        self._blobs[key] = bytes(data)

    def get(self, key: str) -> bytes:
        try:
            return self._blobs[key]
        except KeyError:
            raise NotFoundError("no such object", key=key) from None

    def delete(self, key: str) -> None:
        self._blobs.pop(key, None)

    def keys(self, prefix: str) -> list[str]:
        return sorted(key for key in self._blobs if key.startswith(prefix))

    def delete_prefix(self, prefix: str) -> int:
        doomed = [key for key in self._blobs if key.startswith(prefix)]
        for key in doomed:
            del self._blobs[key]
        return len(doomed)

    def __contains__(self, key: object) -> bool:
        return key in self._blobs


class InMemorySigningKeyStore:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._keys: dict[str, StoredSigningKey] = {}

    def list(self) -> list[StoredSigningKey]:
        return sorted(self._keys.values(), key=lambda k: (k.created_at, k.key_id))

    def add(self, key: StoredSigningKey) -> None:
        with self._lock:
            if key.algorithm in self._keys:
                raise ConflictError("a signing key of this algorithm exists")
            self._keys[key.algorithm] = key


def approval_record(
    *,
    tenant_id: str,
    vault_id: str,
    item_id: str,
    request_id: str,
    requester_key_sha256: str | None,
    time: int,
    **changes: Any,
) -> DecisionRecord:
    """The approval record RecordDecision logs for a request (``changes``: chain_sha256, item_version...)."""
    fields: dict[str, Any] = {
        "request_id": request_id,
        "tenant_id": tenant_id,
        "vault_id": vault_id,
        "item_id": item_id,
        "principal_hash": "5a" * 32,
        "decision": "approve",
        "policy_version": "9b" * 32,
        "time": time,
        "requester_key_sha256": requester_key_sha256,
        **changes,
    }
    return DecisionRecord(**fields)


class InMemoryDecisionLedger:
    """Decisions as a transparency log holds them: one per (tenant, request id), the first one stands;
    with in-memory stage keys and chain store, so ``approve`` logs what an honest flow would."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._decisions: dict[tuple[str, str], DecisionRecord] = {}
        self.stage = MemoryStageKeys()
        self.chain_store = MemoryChainStore()

    @property
    def chains(self) -> MemoryChainStore:
        return self.chain_store

    @property
    def stage_keys(self) -> StageKeyDirectory:
        return self.stage.directory

    def log(self, decision: DecisionRecord) -> DecisionRecord:
        """Log ``decision`` unless its request already has one; the decision that stands."""
        with self._lock:
            return self._decisions.setdefault(decision.dedup_key, decision)

    def approve(
        self,
        *,
        tenant_id: str,
        vault_id: str,
        item_id: str,
        request_id: str,
        requester_key_sha256: str,
        item_version: int,
        time: int,
        **changes: Any,
    ) -> DecisionRecord:
        """Log an approval with the attestation chain an honest flow signs for it (``changes`` alter the
        record, not the chain: for tests of records that disagree with their chain)."""
        subject = Subject(tenant_id, vault_id, item_id, request_id, requester_key_sha256, "0" * 64)
        chain = self.stage.approval_chain(subject, issued_at=time, item_version=item_version)
        self.chain_store.put(tenant_id, chain.digest, jcs.canonicalize(chain.to_json()))
        return self.log(
            approval_record(
                tenant_id=tenant_id,
                vault_id=vault_id,
                item_id=item_id,
                request_id=request_id,
                requester_key_sha256=requester_key_sha256,
                time=time,
                **{"chain_sha256": chain.digest, "item_version": item_version, **changes},
            )
        )

    def logged_decision(self, tenant_id: str, request_id: str) -> DecisionRecord | None:
        return self._decisions.get((tenant_id, request_id))
