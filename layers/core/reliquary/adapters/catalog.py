"""The read-only ``MetadataReader`` (``reliquary.vaults.catalog``) over the vaults and items tables.

It only reads, strongly consistent except through the scope index (a GSI, eventually consistent), and
every request names the attributes it reads: vault rows ``VAULT_ATTRIBUTES``, key rows
``KEY_ATTRIBUTES``, item rows ``ITEM_ATTRIBUTES``. None of them is a secret: no wrapped private key, no
escrow, no envelope. So a role that runs this reader needs ``dynamodb:GetItem`` and ``dynamodb:Query``
on the vaults table's ``TENANT#`` partitions and ``dynamodb:Query`` on the items table and its
``ScopeIndex``, each held by a ``dynamodb:Attributes`` condition to those names (with
``dynamodb:Select`` ``SPECIFIC_ATTRIBUTES``), and no KMS key of its own (DynamoDB decrypts the tables).

Storage keys are always rebuilt from the tenant, vault and scope of the request; a cursor only says
where in them to go on (``reliquary.vaults.catalog``), and one from another listing is refused.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

from pynamodb.exceptions import PynamoDBException
from pynamodb.models import Model

from reliquary.adapters.clients import dynamodb_client, table_config
from reliquary.adapters.dynamodb import (
    SCOPE_INDEX_ATTRIBUTES,
    ItemRow,
    KeyRow,
    ScopeIndex,
    TableConfig,
    VaultRow,
    bind_model,
    guarded,
    item_pk,
    item_prefix,
    recovery_from_json,
    scope_pk,
    translate_error,
    vault_pk,
)
from reliquary.config import Settings
from reliquary.crypto.scope import VaultRef, validate_id
from reliquary.errors import NotFoundError
from reliquary.vaults import catalog
from reliquary.vaults.catalog import (
    DEFAULT_PAGE,
    ItemHistory,
    ItemMetadata,
    ItemPosition,
    ItemVersionInfo,
    KeyEvent,
    Listing,
    Page,
    VaultDetails,
    VaultSummary,
)
from reliquary.vaults.labels import stored_sensitivity
from reliquary.vaults.models import BodyLocation, KeyStatus, MemoryKind, MemoryScope

VAULT_ATTRIBUTES = (
    "pk",
    "sk",
    "vault_id",
    "current_key_version",
    "created_at",
    "recovery",
    "permanent_storage",
)
KEY_ATTRIBUTES = ("pk", "sk", "version", "status", "created_at", "retired_at", "public_key")
ITEM_ATTRIBUTES = ("pk", "sk", *SCOPE_INDEX_ATTRIBUTES)
_VAULT_SK = re.compile(r"VAULT#([^#]+)")  # a vault row; its key rows go on with #KEY#<version>
R = TypeVar("R", bound=Model)


def _rows(query: Iterable[R]) -> Iterator[R]:
    """The rows of a lazily paged query, with pynamodb's failures in the domain's hierarchy."""
    try:
        yield from query
    except PynamoDBException as exc:
        translate_error(exc, "conflicting read")


class DynamoDBMetadataReader:
    def __init__(
        self,
        vaults: TableConfig,
        items: TableConfig,
        client: Any | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._vault_row = bind_model(VaultRow, vaults, client)
        self._key_row = bind_model(KeyRow, vaults, client)
        self._item_row = bind_model(ItemRow, items, client)
        self._clock = clock

    # --- vaults ----------------------------------------------------------------------------------------
    def list_vaults(
        self, tenant_id: str, *, limit: int = DEFAULT_PAGE, cursor: str | None = None
    ) -> Page[VaultSummary]:
        listing = Listing(tenant_id)
        limit = catalog.page_limit(limit)
        after = catalog.vault_position(cursor, listing)
        pk = vault_pk(tenant_id)
        rows = self._vault_row.query(
            pk,
            self._vault_row.sk.startswith("VAULT#"),
            consistent_read=True,
            last_evaluated_key=None if after is None else {"pk": {"S": pk}, "sk": {"S": f"VAULT#{after}"}},
            attributes_to_get=list(VAULT_ATTRIBUTES),
            page_size=2 * limit + 2,  # each vault row is followed by its key rows (skipped here)
        )
        page: list[VaultSummary] = []
        for row in _rows(rows):
            if _VAULT_SK.fullmatch(row.sk) is None:
                continue
            if len(page) == limit:
                return Page(tuple(page), catalog.vault_cursor(listing, page[-1].vault_id))
            page.append(self._summary(row))
        return Page(tuple(page), None)

    def get_vault(self, tenant_id: str, vault_id: str) -> VaultDetails:
        VaultRef(tenant_id, vault_id)
        pk = vault_pk(tenant_id)
        try:
            row = guarded(
                lambda: self._vault_row.get(
                    pk, f"VAULT#{vault_id}", consistent_read=True, attributes_to_get=list(VAULT_ATTRIBUTES)
                )
            )
        except self._vault_row.DoesNotExist:
            raise NotFoundError("no such vault", vault_id=vault_id) from None
        keys = _rows(
            self._key_row.query(
                pk,
                self._key_row.sk.startswith(f"VAULT#{vault_id}#KEY#"),
                consistent_read=True,
                attributes_to_get=list(KEY_ATTRIBUTES),
            )
        )
        return VaultDetails(
            self._summary(row),
            tuple(
                catalog.key_info(
                    version=int(k.version),
                    status=KeyStatus(k.status),
                    created_at=int(k.created_at),
                    retired_at=int(k.retired_at) if k.retired_at is not None else None,
                    public_key=k.public_key,
                )
                for k in keys
            ),
        )

    def key_events(self, tenant_id: str, vault_id: str) -> tuple[KeyEvent, ...]:
        return catalog.key_events(self.get_vault(tenant_id, vault_id).keys)

    @staticmethod
    def _summary(row: VaultRow) -> VaultSummary:
        return catalog.summary_of(
            row.vault_id,
            int(row.created_at),
            int(row.current_key_version),
            recovery_from_json(row.recovery),
            row.permanent_storage,
        )

    def _require_vault(self, tenant_id: str, vault_id: str) -> None:
        try:
            guarded(
                lambda: self._vault_row.get(
                    vault_pk(tenant_id), f"VAULT#{vault_id}", consistent_read=True, attributes_to_get=["pk"]
                )
            )
        except self._vault_row.DoesNotExist:
            raise NotFoundError("no such vault", vault_id=vault_id) from None

    # --- items -----------------------------------------------------------------------------------------
    def list_items(
        self,
        tenant_id: str,
        vault_id: str,
        *,
        scope: MemoryScope | None = None,
        limit: int = DEFAULT_PAGE,
        cursor: str | None = None,
    ) -> Page[ItemMetadata]:
        listing = Listing(tenant_id, vault_id, scope)
        limit = catalog.page_limit(limit)
        after = catalog.item_position(cursor, listing)
        self._require_vault(tenant_id, vault_id)
        rows = _rows(self._item_rows(tenant_id, vault_id, scope, after, page_size=limit + 1))
        now = int(self._clock())
        versions = (
            (row.item_id, self._version(row, now))
            for row in rows
            # A version sealed into the position's item since the last page is not shown twice.
            if after is None or row.item_id != after.item_id
        )
        page, position = catalog.latest_per_item(versions, limit)
        return Page(tuple(page), None if position is None else catalog.item_cursor(listing, position))

    def _item_rows(
        self,
        tenant_id: str,
        vault_id: str,
        scope: MemoryScope | None,
        after: ItemPosition | None,
        *,
        page_size: int,
    ) -> Iterable[ItemRow]:
        pk = item_pk(tenant_id, vault_id)
        start: dict[str, dict[str, Any]] | None = None
        if after is not None:
            start = {"pk": {"S": pk}, "sk": {"S": f"{item_prefix(after.item_id)}{after.version:010d}"}}
        if scope is None:
            return self._item_row.query(
                pk,
                self._item_row.sk.startswith("ITEM#"),
                consistent_read=True,
                last_evaluated_key=start,
                attributes_to_get=list(ITEM_ATTRIBUTES),
                page_size=page_size,
            )
        index_pk = scope_pk(tenant_id, vault_id, scope)
        if start is not None:
            start["scope_pk"] = {"S": index_pk}
        return self._item_row.query(
            index_pk,
            index_name=ScopeIndex.Meta.index_name,
            last_evaluated_key=start,
            attributes_to_get=list(ITEM_ATTRIBUTES),
            page_size=page_size,
        )

    def get_item(self, tenant_id: str, vault_id: str, item_id: str) -> ItemHistory:
        VaultRef(tenant_id, vault_id)
        validate_id("item_id", item_id)
        rows = list(
            _rows(
                self._item_row.query(
                    item_pk(tenant_id, vault_id),
                    self._item_row.sk.startswith(item_prefix(item_id)),
                    consistent_read=True,
                    attributes_to_get=list(ITEM_ATTRIBUTES),
                )
            )
        )
        if not rows:
            self._require_vault(tenant_id, vault_id)  # a missing vault is reported as such
            raise NotFoundError("no such item", item_id=item_id)
        now = int(self._clock())
        return ItemHistory(item_id, tuple(self._version(row, now) for row in rows))

    @staticmethod
    def _version(row: ItemRow, now: int) -> ItemVersionInfo:
        expires_at = int(row.expires_at) if row.expires_at is not None else None
        shredded_at = int(row.shredded_at) if row.shredded_at is not None else None
        return ItemVersionInfo(
            version=int(row.version),
            memory_scope=MemoryScope(MemoryKind(row.memory_kind), row.memory_ref),
            content_type=row.content_type,
            created_at=int(row.created_at),
            size=int(row.size),
            key_version=int(row.wrap_key_version),
            body_location=BodyLocation(row.body_location),
            sensitivity=stored_sensitivity(row.sensitivity),
            expires_at=expires_at,
            shredded_at=shredded_at,
            # Shredding sets shredded_at in the update that removes the envelope, so it marks a tombstone.
            state=catalog.item_state(expires_at=expires_at, shredded=shredded_at is not None, now=now),
            tags=json.loads(row.tags) if row.tags else {},
        )


def build_metadata_reader(settings: Settings) -> DynamoDBMetadataReader:
    """The reader of this deployment's tables (no KMS, no S3: nothing it reads is wrapped)."""
    return DynamoDBMetadataReader(
        table_config(settings, settings.vaults_table),
        table_config(settings, settings.items_table),
        dynamodb_client(settings),
    )
