"""The storage the vault domain needs, as small protocols. Adapters implement them over DynamoDB and
S3 (``reliquary.adapters``); ``reliquary.vaults.memory`` implements them in memory for unit tests.

Every method takes the tenant explicitly and every key an adapter builds starts with it, so one tenant's
call can never address another tenant's records.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

from reliquary.vaults.labels import ItemLabel
from reliquary.vaults.models import (
    ItemRecord,
    MemoryScope,
    ScopedItem,
    StoredSigningKey,
    Vault,
    VaultKeyRecord,
)


class VaultRepository(Protocol):
    def create(self, vault: Vault, first_key: VaultKeyRecord) -> None:
        """Store a new vault with its first key version; ConflictError if the vault exists."""

    def get(self, tenant_id: str, vault_id: str) -> Vault:
        """NotFoundError if there is no such vault for this tenant."""

    def add_key_version(self, vault: Vault, key: VaultKeyRecord) -> Vault:
        """Make ``key`` current and demote the previous one, only if the vault's current version is still
        ``vault.current_key_version`` (ConflictError otherwise)."""

    def get_key(self, tenant_id: str, vault_id: str, version: int) -> VaultKeyRecord: ...

    def list_keys(self, tenant_id: str, vault_id: str) -> list[VaultKeyRecord]: ...

    def retire_key(self, tenant_id: str, vault_id: str, version: int, *, retired_at: int) -> VaultKeyRecord:
        """Destroy the wrapped private key of a previous (never the current) version."""


class ItemRepository(Protocol):
    def put(self, record: ItemRecord) -> None:
        """Store a new item version, atomically with a check that ``record.wrap_key_version`` is still the
        vault's active key version (KeyVersionError otherwise); ConflictError if that version exists."""

    def get(self, tenant_id: str, vault_id: str, item_id: str, version: int | None = None) -> ItemRecord:
        """A version, or the latest when ``version`` is None; NotFoundError if absent."""

    def versions(self, tenant_id: str, vault_id: str, item_id: str) -> list[ItemRecord]: ...

    def scan_vault(self, tenant_id: str, vault_id: str) -> Iterator[ItemRecord]:
        """Every item version of a vault, page by page."""

    def scope_items(self, tenant_id: str, vault_id: str, scope: MemoryScope) -> Iterator[ScopedItem]:
        """Each item of the vault with a version in ``scope``, once, in item id order, page by page.
        Read from an index that may lag a write by a moment: a version sealed or shredded just before
        may not show yet, so callers re-read an item before acting on it."""

    def replace_envelope(self, record: ItemRecord, envelope: bytes, wrap_key_version: int) -> ItemRecord:
        """Swap the envelope after a rewrap, only if the stored one still has ``record.wrap_key_version``
        and was not shredded (ConflictError otherwise; NotFoundError if the version does not exist)."""

    def shred(self, record: ItemRecord, *, shredded_at: int) -> ItemRecord:
        """Destroy the envelope (and so the wrapped data key) of one version, keeping a tombstone;
        NotFoundError if the version does not exist."""


class ItemCatalog(Protocol):
    """What the trust stage may know of an item: read-only, no envelope, no key, no body."""

    def label(self, tenant_id: str, vault_id: str, item_id: str) -> ItemLabel:
        """The version number and sensitivity of the item's latest version. NotFoundError if the item
        (or its vault) does not exist for this tenant; ItemExpiredError past its expiry; ItemShreddedError
        once shredded (``labels.live_label``); InvalidRequestError for a malformed id."""


class BlobStore(Protocol):
    def put(self, key: str, data: bytes) -> None: ...

    def get(self, key: str) -> bytes:
        """NotFoundError if absent."""

    def delete(self, key: str) -> None:
        """Delete the object and every stored version of it; absent is fine."""

    def keys(self, prefix: str) -> list[str]:
        """The keys of the objects whose key starts with ``prefix``, sorted."""

    def delete_prefix(self, prefix: str) -> int:
        """Delete every object (every stored version) whose key starts with ``prefix``; the count."""


class SigningKeyStore(Protocol):
    def list(self) -> list[StoredSigningKey]: ...

    def add(self, key: StoredSigningKey) -> None:
        """ConflictError if a key of that algorithm exists (one service key per algorithm, so two cold
        starts racing to create one end up sharing the winner's)."""
