"""DynamoDB adapters (pynamodb): vaults, vault keys, service signing keys, items.

Every read is strongly consistent: rotation, rewrap, retire and shred reason about what was just
written (an eventually consistent scan could miss an item still wrapped to a key being retired).

Table keys (see template.yaml), every partition key starting with the tenant:
- VaultsTable  pk ``TENANT#<t>``  sk ``VAULT#<v>`` (vault) and ``VAULT#<v>#KEY#<version:010d>`` (key version);
               pk ``SERVICE``      sk ``SIGNING#<algorithm>`` (service signing keys)
- ItemsTable   pk ``TENANT#<t>#VAULT#<v>``  sk ``ITEM#<i>#V#<version:010d>``; TTL attribute ``expires_at``;
               GSI ``ScopeIndex``: ``scope_pk`` ``TENANT#<t>#VAULT#<v>#SCOPE#<kind>#<ref>`` / ``sk``, on every
               item version row, projecting the metadata listed in ``SCOPE_INDEX_ATTRIBUTES`` (never the
               envelope: no wrapped data key is copied into the index)
Ids never contain ``#`` (scope.validate_id), so no key of one tenant or vault can prefix another's.

``DynamoDBItemCatalog`` is the trust stage's read-only view of the items table (labels, no envelopes).
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, NoReturn, TypeVar, cast

from pynamodb.attributes import BinaryAttribute, NumberAttribute, UnicodeAttribute
from pynamodb.exceptions import DoesNotExist, PynamoDBException, TransactWriteError
from pynamodb.indexes import GlobalSecondaryIndex, IncludeProjection
from pynamodb.models import Model
from pynamodb.transactions import TransactWrite

from reliquary.crypto.scope import VaultRef, validate_id
from reliquary.errors import (
    ConflictError,
    KeyVersionError,
    NotFoundError,
    ReliquaryError,
    StorageUnavailableError,
)
from reliquary.vaults.labels import ItemLabel, live_label, stored_sensitivity
from reliquary.vaults.models import (
    BodyLocation,
    Custodian,
    ItemRecord,
    KeyStatus,
    MemoryKind,
    MemoryScope,
    RecoveryPolicy,
    ScopedItem,
    StoredSigningKey,
    Vault,
    VaultKeyRecord,
)
from reliquary.vaults.permanent import PermanentBackend, PermanentRef

_TRANSIENT = {
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "RequestLimitExceeded",
    "InternalServerError",
    "InternalFailure",
    "ServiceUnavailable",
    "TransactionConflictException",
}
T = TypeVar("T")


def translate_error(exc: PynamoDBException, conflict: str) -> NoReturn:
    """Map a pynamodb failure by its error code (never by message text) to the domain hierarchy."""
    if isinstance(exc, DoesNotExist):
        raise exc  # not a failure: the callers turn a missing row into NotFoundError
    code = exc.cause_response_code
    if code == "ConditionalCheckFailedException":
        raise ConflictError(conflict) from exc
    if code == "TransactionCanceledException":
        reasons = [r.code for r in getattr(exc, "cancellation_reasons", []) if r is not None]
        if "ConditionalCheckFailed" in reasons:
            raise ConflictError(conflict) from exc
        raise StorageUnavailableError("DynamoDB cancelled the transaction", reasons=reasons) from exc
    if code in _TRANSIENT or code is None:
        raise StorageUnavailableError("DynamoDB is unavailable or throttling", aws_code=code) from exc
    raise ReliquaryError("DynamoDB refused the request", aws_code=code) from exc


def guarded(call: Callable[[], T], conflict: str = "conflicting write") -> T:
    try:
        return call()
    except PynamoDBException as exc:
        translate_error(exc, conflict)


@dataclass(frozen=True, slots=True)
class TableConfig:
    table_name: str
    region: str
    host: str | None = None  # the moto endpoint locally; None on AWS


M = TypeVar("M", bound=Model)


def bind_model(model: type[M], config: TableConfig, client: Any | None) -> type[M]:
    """A subclass of ``model`` bound to one table (names differ per stage, and per test).

    pynamodb builds a botocore client per model class, each from a fresh botocore session that reloads
    the DynamoDB service model (~140 ms apiece on a cold start); passing one shared client avoids that.
    """
    meta = type(
        "Meta",
        (),
        {
            "table_name": config.table_name,
            "region": config.region,
            "host": config.host,
            "max_retry_attempts": 3,
        },
    )
    bound = cast("type[M]", type(model.__name__, (model,), {"Meta": meta}))
    if client is not None:
        # pynamodb has no public hook for a client; its Connection uses `_client` when set (pinned 6.1).
        bound._get_connection().connection._client = client
    return bound


class VaultRow(Model):
    class Meta:
        table_name = "unbound"

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    tenant_id = UnicodeAttribute()
    vault_id = UnicodeAttribute()
    current_key_version = NumberAttribute()
    created_at = NumberAttribute()
    recovery = UnicodeAttribute(null=True)  # JSON; public material only
    permanent_storage = UnicodeAttribute(null=True)  # "ipfs" / "arweave" for a vault that opted in


class KeyRow(Model):
    class Meta:
        table_name = "unbound"

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    tenant_id = UnicodeAttribute(null=True)
    vault_id = UnicodeAttribute(null=True)
    version = NumberAttribute(null=True)
    algorithm = UnicodeAttribute(null=True)
    key_id = BinaryAttribute(legacy_encoding=False, null=True)
    public_key = BinaryAttribute(legacy_encoding=False)
    wrapped_private_key = BinaryAttribute(legacy_encoding=False, null=True)
    escrowed_private_key = BinaryAttribute(legacy_encoding=False, null=True)
    status = UnicodeAttribute(null=True)
    created_at = NumberAttribute()
    retired_at = NumberAttribute(null=True)
    root_key_id = UnicodeAttribute(null=True)


def vault_pk(tenant_id: str) -> str:
    return f"TENANT#{tenant_id}"


def key_sk(vault_id: str, version: int) -> str:
    return f"VAULT#{vault_id}#KEY#{version:010d}"


def _recovery_to_json(policy: RecoveryPolicy | None) -> str | None:
    if policy is None:
        return None
    b64 = base64.b64encode
    return json.dumps(
        {
            "threshold": policy.threshold,
            "recovery_public_key": b64(policy.recovery_public_key).decode(),
            "custodians": [
                {
                    "custodian_id": c.custodian_id,
                    "public_key_fingerprint": b64(c.public_key_fingerprint).decode(),
                    "sealed_share": b64(c.sealed_share).decode(),
                }
                for c in policy.custodians
            ],
        },
        sort_keys=True,
    )


def recovery_from_json(text: str | None) -> RecoveryPolicy | None:
    if text is None:
        return None
    data = json.loads(text)
    b64 = base64.b64decode
    return RecoveryPolicy(
        threshold=data["threshold"],
        recovery_public_key=b64(data["recovery_public_key"]),
        custodians=tuple(
            Custodian(c["custodian_id"], b64(c["public_key_fingerprint"]), b64(c["sealed_share"]))
            for c in data["custodians"]
        ),
    )


class DynamoDBVaultRepository:
    def __init__(self, config: TableConfig, client: Any | None = None) -> None:
        self._vault_row = bind_model(VaultRow, config, client)
        self._key_row = bind_model(KeyRow, config, client)
        self._connection = self._key_row._get_connection().connection

    def _vault_from(self, row: VaultRow) -> Vault:
        return Vault(
            tenant_id=row.tenant_id,
            vault_id=row.vault_id,
            current_key_version=int(row.current_key_version),
            created_at=int(row.created_at),
            recovery=recovery_from_json(row.recovery),
            permanent_storage=PermanentBackend(row.permanent_storage) if row.permanent_storage else None,
        )

    def _key_from(self, row: KeyRow) -> VaultKeyRecord:
        return VaultKeyRecord(
            tenant_id=row.tenant_id,
            vault_id=row.vault_id,
            version=int(row.version),
            public_key=row.public_key,
            wrapped_private_key=row.wrapped_private_key,
            status=KeyStatus(row.status),
            created_at=int(row.created_at),
            escrowed_private_key=row.escrowed_private_key,
            root_key_id=row.root_key_id or "",
            retired_at=int(row.retired_at) if row.retired_at is not None else None,
        )

    def _key_row_for(self, key: VaultKeyRecord) -> KeyRow:
        return self._key_row(
            vault_pk(key.tenant_id),
            key_sk(key.vault_id, key.version),
            tenant_id=key.tenant_id,
            vault_id=key.vault_id,
            version=key.version,
            public_key=key.public_key,
            wrapped_private_key=key.wrapped_private_key,
            escrowed_private_key=key.escrowed_private_key,
            status=key.status.value,
            created_at=key.created_at,
            root_key_id=key.root_key_id,
        )

    def create(self, vault: Vault, first_key: VaultKeyRecord) -> None:
        row = self._vault_row(
            vault_pk(vault.tenant_id),
            f"VAULT#{vault.vault_id}",
            tenant_id=vault.tenant_id,
            vault_id=vault.vault_id,
            current_key_version=vault.current_key_version,
            created_at=vault.created_at,
            recovery=_recovery_to_json(vault.recovery),
            permanent_storage=vault.permanent_storage.value if vault.permanent_storage else None,
        )
        key_row = self._key_row_for(first_key)

        def write() -> None:
            with TransactWrite(connection=self._connection) as transaction:
                transaction.save(row, condition=self._vault_row.pk.does_not_exist())
                transaction.save(key_row, condition=self._key_row.pk.does_not_exist())

        guarded(write, "the vault exists")

    def get(self, tenant_id: str, vault_id: str) -> Vault:
        try:
            row = guarded(
                lambda: self._vault_row.get(vault_pk(tenant_id), f"VAULT#{vault_id}", consistent_read=True)
            )
        except self._vault_row.DoesNotExist:
            raise NotFoundError("no such vault", vault_id=vault_id) from None
        return self._vault_from(row)

    def add_key_version(self, vault: Vault, key: VaultKeyRecord) -> Vault:
        vault_row = self._vault_row(vault_pk(vault.tenant_id), f"VAULT#{vault.vault_id}")
        previous = self._key_row(vault_pk(vault.tenant_id), key_sk(vault.vault_id, vault.current_key_version))
        new_row = self._key_row_for(key)
        vault_cls, key_cls = self._vault_row, self._key_row

        def write() -> None:
            with TransactWrite(connection=self._connection) as transaction:
                transaction.update(
                    vault_row,
                    actions=[vault_cls.current_key_version.set(key.version)],
                    condition=vault_cls.current_key_version == vault.current_key_version,
                )
                transaction.update(
                    previous,
                    actions=[key_cls.status.set(KeyStatus.PREVIOUS.value)],
                    condition=key_cls.pk.exists(),
                )
                transaction.save(new_row, condition=key_cls.pk.does_not_exist())

        guarded(write, "the vault key was rotated concurrently")
        return Vault(vault.tenant_id, vault.vault_id, key.version, vault.created_at, vault.recovery)

    def get_key(self, tenant_id: str, vault_id: str, version: int) -> VaultKeyRecord:
        try:
            row = guarded(
                lambda: self._key_row.get(
                    vault_pk(tenant_id), key_sk(vault_id, version), consistent_read=True
                )
            )
        except self._key_row.DoesNotExist:
            raise NotFoundError("no such key version", vault_id=vault_id, key_version=version) from None
        return self._key_from(row)

    def list_keys(self, tenant_id: str, vault_id: str) -> list[VaultKeyRecord]:
        self.get(tenant_id, vault_id)
        rows = guarded(
            lambda: list(
                self._key_row.query(
                    vault_pk(tenant_id),
                    self._key_row.sk.startswith(f"VAULT#{vault_id}#KEY#"),
                    consistent_read=True,
                )
            )
        )
        return [self._key_from(r) for r in rows]

    def retire_key(self, tenant_id: str, vault_id: str, version: int, *, retired_at: int) -> VaultKeyRecord:
        row = self._key_row(vault_pk(tenant_id), key_sk(vault_id, version))
        key_cls = self._key_row
        try:
            guarded(
                lambda: row.update(
                    actions=[
                        key_cls.status.set(KeyStatus.RETIRED.value),
                        key_cls.wrapped_private_key.remove(),
                        key_cls.escrowed_private_key.remove(),
                        key_cls.retired_at.set(key_cls.retired_at | retired_at),  # the first one stands
                    ],
                    condition=key_cls.pk.exists() & (key_cls.status != KeyStatus.ACTIVE.value),
                ),
                "the key version is missing or current",
            )
        except ConflictError:
            current = self.get_key(tenant_id, vault_id, version)  # NotFoundError if missing
            raise KeyVersionError(
                f"key version is {current.status}, it cannot be retired", key_version=version
            ) from None
        return self.get_key(tenant_id, vault_id, version)


class DynamoDBSigningKeyStore:
    """Service signing keys under one partition: ``SERVICE`` in the vaults table for envelopes and grants,
    ``CHECKPOINT`` in the audit table for the log's checkpoints (keys of one purpose never mix)."""

    def __init__(self, config: TableConfig, client: Any | None = None, *, partition: str = "SERVICE") -> None:
        self._key_row = bind_model(KeyRow, config, client)
        self._partition = partition

    def list(self) -> list[StoredSigningKey]:
        rows = guarded(
            lambda: list(
                self._key_row.query(
                    self._partition, self._key_row.sk.startswith("SIGNING#"), consistent_read=True
                )
            )
        )
        keys = [
            StoredSigningKey(
                algorithm=r.algorithm,
                key_id=r.key_id,
                public_key=r.public_key,
                wrapped_secret=r.wrapped_private_key,
                created_at=int(r.created_at),
                root_key_id=r.root_key_id or "",
            )
            for r in rows
        ]
        return sorted(keys, key=lambda k: (k.created_at, k.key_id))

    def add(self, key: StoredSigningKey) -> None:
        row = self._key_row(
            self._partition,
            f"SIGNING#{key.algorithm}",
            algorithm=key.algorithm,
            key_id=key.key_id,
            public_key=key.public_key,
            wrapped_private_key=key.wrapped_secret,
            created_at=key.created_at,
            root_key_id=key.root_key_id,
        )
        guarded(
            lambda: row.save(condition=self._key_row.pk.does_not_exist()),
            "a signing key of this algorithm exists",
        )


# What the scope index holds beside its keys (template.yaml, ItemsTable, ScopeIndex): an item version's
# metadata, enough to list a scope and to forget it, and no envelope.
SCOPE_INDEX_ATTRIBUTES = (
    "item_id",
    "version",
    "content_type",
    "memory_kind",
    "memory_ref",
    "created_at",
    "size",
    "wrap_key_version",
    "body_location",
    "tags",
    "expires_at",
    "shredded_at",
    "sensitivity",
)


# pynamodb 6.1 leaves Index.__init_subclass__ unannotated.
class ScopeIndex(GlobalSecondaryIndex["ItemRow"]):  # type: ignore[no-untyped-call]
    class Meta:
        index_name = "ScopeIndex"
        projection = IncludeProjection(list(SCOPE_INDEX_ATTRIBUTES))

    scope_pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)


class ItemRow(Model):
    class Meta:
        table_name = "unbound"

    # Always queried by name (``query(..., index_name=...)``) on the bound class: pynamodb binds an index
    # object to the last model class that declares it, and every table binding is a subclass.
    scope_index = ScopeIndex()

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    tenant_id = UnicodeAttribute()
    vault_id = UnicodeAttribute()
    item_id = UnicodeAttribute()
    version = NumberAttribute()
    content_type = UnicodeAttribute()
    memory_kind = UnicodeAttribute()
    memory_ref = UnicodeAttribute()
    created_at = NumberAttribute()
    size = NumberAttribute()
    wrap_key_version = NumberAttribute()
    body_location = UnicodeAttribute()
    envelope = BinaryAttribute(legacy_encoding=False, null=True)
    tags = UnicodeAttribute(null=True)  # JSON object of str -> str
    expires_at = NumberAttribute(null=True)  # the table's TTL attribute (epoch seconds)
    shredded_at = NumberAttribute(null=True)
    blob_key = UnicodeAttribute(null=True)
    permanent_body = UnicodeAttribute(null=True)  # JSON: the body's PermanentRef (kept in the tombstone)
    sensitivity = UnicodeAttribute(null=True)  # absent on rows sealed before labels: read as restricted
    scope_pk = UnicodeAttribute(null=True)  # the ScopeIndex partition of the version's memory scope


def item_pk(tenant_id: str, vault_id: str) -> str:
    return f"TENANT#{tenant_id}#VAULT#{vault_id}"


def scope_pk(tenant_id: str, vault_id: str, scope: MemoryScope) -> str:
    """The ScopeIndex partition of one memory scope of a vault (ids and refs never contain ``#``)."""
    return f"{item_pk(tenant_id, vault_id)}#SCOPE#{scope.kind.value}#{scope.ref}"


def item_prefix(item_id: str) -> str:
    return f"ITEM#{item_id}#V#"


class DynamoDBItemRepository:
    """Items; ``vaults`` is the vaults table, read in the transaction that puts a new item version."""

    def __init__(self, config: TableConfig, *, vaults: TableConfig, client: Any | None = None) -> None:
        self._row = bind_model(ItemRow, config, client)
        self._key_row = bind_model(KeyRow, vaults, client)
        self._connection = self._row._get_connection().connection

    @staticmethod
    def _record(row: ItemRow) -> ItemRecord:
        return ItemRecord(
            tenant_id=row.tenant_id,
            vault_id=row.vault_id,
            item_id=row.item_id,
            version=int(row.version),
            content_type=row.content_type,
            memory_scope=MemoryScope(MemoryKind(row.memory_kind), row.memory_ref),
            created_at=int(row.created_at),
            size=int(row.size),
            wrap_key_version=int(row.wrap_key_version),
            body_location=BodyLocation(row.body_location),
            envelope=row.envelope,
            tags=json.loads(row.tags) if row.tags else {},
            expires_at=int(row.expires_at) if row.expires_at is not None else None,
            shredded_at=int(row.shredded_at) if row.shredded_at is not None else None,
            blob_key=row.blob_key,
            permanent_ref=PermanentRef.from_json(row.permanent_body) if row.permanent_body else None,
            sensitivity=stored_sensitivity(row.sensitivity),
        )

    def _key(self, record: ItemRecord) -> ItemRow:
        return self._row(
            item_pk(record.tenant_id, record.vault_id),
            f"{item_prefix(record.item_id)}{record.version:010d}",
        )

    def put(self, record: ItemRecord) -> None:
        row = self._row(
            item_pk(record.tenant_id, record.vault_id),
            f"{item_prefix(record.item_id)}{record.version:010d}",
            tenant_id=record.tenant_id,
            vault_id=record.vault_id,
            item_id=record.item_id,
            version=record.version,
            content_type=record.content_type,
            memory_kind=record.memory_scope.kind.value,
            memory_ref=record.memory_scope.ref,
            created_at=record.created_at,
            size=record.size,
            wrap_key_version=record.wrap_key_version,
            body_location=record.body_location.value,
            envelope=record.envelope,
            tags=json.dumps(record.tags, sort_keys=True) if record.tags else None,
            expires_at=record.expires_at,
            shredded_at=record.shredded_at,
            blob_key=record.blob_key,
            permanent_body=record.permanent_ref.to_json() if record.permanent_ref else None,
            sensitivity=record.sensitivity,
            scope_pk=scope_pk(record.tenant_id, record.vault_id, record.memory_scope),
        )
        key_row = self._key_row

        def write() -> None:
            # The item lands only while its wrap key is the vault's active one: a rotation (and then a
            # retire) racing this seal can never leave an item wrapped to a destroyed key.
            with TransactWrite(connection=self._connection) as transaction:
                transaction.condition_check(
                    key_row,
                    vault_pk(record.tenant_id),
                    key_sk(record.vault_id, record.wrap_key_version),
                    condition=key_row.status == KeyStatus.ACTIVE.value,
                )
                transaction.save(row, condition=self._row.pk.does_not_exist())

        try:
            write()
        except TransactWriteError as exc:
            reasons = [r.code if r is not None else None for r in exc.cancellation_reasons]
            if reasons[:1] == ["ConditionalCheckFailed"]:
                raise KeyVersionError(
                    "the vault key was rotated meanwhile", key_version=record.wrap_key_version
                ) from exc
            translate_error(exc, "the item version exists")

    def get(self, tenant_id: str, vault_id: str, item_id: str, version: int | None = None) -> ItemRecord:
        pk = item_pk(tenant_id, vault_id)
        if version is None:
            rows = guarded(
                lambda: list(
                    self._row.query(
                        pk,
                        self._row.sk.startswith(item_prefix(item_id)),
                        scan_index_forward=False,
                        limit=1,
                        consistent_read=True,
                    )
                )
            )
            if not rows:
                raise NotFoundError("no such item", item_id=item_id)
            return self._record(rows[0])
        try:
            row = guarded(
                lambda: self._row.get(pk, f"{item_prefix(item_id)}{version:010d}", consistent_read=True)
            )
        except self._row.DoesNotExist:
            raise NotFoundError("no such item version", item_id=item_id, version=version) from None
        return self._record(row)

    def versions(self, tenant_id: str, vault_id: str, item_id: str) -> list[ItemRecord]:
        rows = guarded(
            lambda: list(
                self._row.query(
                    item_pk(tenant_id, vault_id),
                    self._row.sk.startswith(item_prefix(item_id)),
                    consistent_read=True,
                )
            )
        )
        return [self._record(r) for r in rows]

    def scan_vault(self, tenant_id: str, vault_id: str) -> Iterator[ItemRecord]:
        pages = self._row.query(
            item_pk(tenant_id, vault_id),
            self._row.sk.startswith("ITEM#"),
            page_size=100,
            consistent_read=True,
        )
        try:
            for row in pages:
                yield self._record(row)
        except PynamoDBException as exc:
            translate_error(exc, "conflicting read")

    def scope_items(self, tenant_id: str, vault_id: str, scope: MemoryScope) -> Iterator[ScopedItem]:
        # Index rows come in sk order, so the versions of one item are adjacent.
        rows = self._row.query(
            scope_pk(tenant_id, vault_id, scope),
            index_name=ScopeIndex.Meta.index_name,
            attributes_to_get=["item_id", "shredded_at"],
            page_size=100,  # read as far as the caller goes (forget stops at its limit), not 1 MB
        )
        current: str | None = None
        live = False
        try:
            for row in rows:
                if row.item_id != current:
                    if current is not None:
                        yield ScopedItem(current, live)
                    current, live = row.item_id, False
                live = live or row.shredded_at is None
        except PynamoDBException as exc:
            translate_error(exc, "conflicting read")
        if current is not None:
            yield ScopedItem(current, live)

    def replace_envelope(self, record: ItemRecord, envelope: bytes, wrap_key_version: int) -> ItemRecord:
        row, cls = self._key(record), self._row
        try:
            guarded(
                lambda: row.update(
                    actions=[cls.envelope.set(envelope), cls.wrap_key_version.set(wrap_key_version)],
                    condition=cls.envelope.exists() & (cls.wrap_key_version == record.wrap_key_version),
                ),
                "the item was rewrapped or shredded concurrently",
            )
        except ConflictError:
            self.get(
                record.tenant_id, record.vault_id, record.item_id, record.version
            )  # NotFoundError if gone
            raise
        return self.get(record.tenant_id, record.vault_id, record.item_id, record.version)

    def shred(self, record: ItemRecord, *, shredded_at: int) -> ItemRecord:
        row, cls = self._key(record), self._row
        try:
            guarded(
                lambda: row.update(
                    # Dropping expires_at keeps the tombstone from TTL: reads keep answering item_shredded
                    # and version numbers are never reused.
                    actions=[
                        cls.envelope.remove(),
                        cls.expires_at.remove(),
                        cls.shredded_at.set(cls.shredded_at | shredded_at),
                    ],
                    condition=cls.pk.exists(),
                ),
                "no such item version",
            )
        except ConflictError:
            raise NotFoundError(
                "no such item version", item_id=record.item_id, version=record.version
            ) from None
        # pynamodb's update reads the row back (ReturnValues ALL_NEW): the tombstone as written, no GetItem.
        return self._record(row)


class DynamoDBItemCatalog:
    """The ``ItemCatalog`` over the items table, for the trust stage: one strongly consistent Query per
    label (the item's latest row), projected to four attributes. It reads no envelope, touches no other
    table, no S3 and no KMS key of its own, and writes nothing, so its role needs only ``dynamodb:Query``
    on the items table, which ``dynamodb:Attributes`` can hold to the keys and ``ATTRIBUTES``.

    A tombstone is known without reading the envelope: shredding sets ``shredded_at`` in the same update
    that removes it (``DynamoDBItemRepository.shred``)."""

    ATTRIBUTES = ("version", "sensitivity", "expires_at", "shredded_at")

    def __init__(
        self, config: TableConfig, client: Any | None = None, *, clock: Callable[[], float] = time.time
    ) -> None:
        self._row = bind_model(ItemRow, config, client)
        self._clock = clock

    def label(self, tenant_id: str, vault_id: str, item_id: str) -> ItemLabel:
        VaultRef(tenant_id, vault_id)
        validate_id("item_id", item_id)
        rows = guarded(
            lambda: list(
                self._row.query(
                    item_pk(tenant_id, vault_id),
                    self._row.sk.startswith(item_prefix(item_id)),
                    scan_index_forward=False,
                    limit=1,
                    consistent_read=True,
                    attributes_to_get=list(self.ATTRIBUTES),  # pynamodb takes a list, not a tuple
                )
            )
        )
        if not rows:
            raise NotFoundError("no such item", item_id=item_id)
        row = rows[0]
        return live_label(
            item_id,
            version=int(row.version),
            sensitivity=stored_sensitivity(row.sensitivity),
            expires_at=int(row.expires_at) if row.expires_at is not None else None,
            shredded=row.shredded_at is not None,
            now=int(self._clock()),
        )
