"""The DynamoDB, S3 and KMS adapters against moto.

The repository contract suite runs against both the DynamoDB adapters and the in-memory fakes that the
unit tests rely on, so the fakes cannot drift from what production does. Adapter-only behaviour (raw
table keys, S3 object versions, KMS encryption context, error translation) follows.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError, EndpointConnectionError
from botocore.stub import Stubber
from pynamodb.exceptions import CancellationReason, PutError, TransactWriteError, VerboseClientError

from infra.template import create_tables
from reliquary.adapters.dynamodb import (
    DynamoDBItemRepository,
    DynamoDBSigningKeyStore,
    DynamoDBVaultRepository,
    TableConfig,
    guarded,
)
from reliquary.adapters.kms import KmsRootOfTrust
from reliquary.adapters.s3 import S3BlobStore
from reliquary.errors import (
    ConflictError,
    KeyVersionError,
    NotFoundError,
    ReliquaryError,
    RootOfTrustError,
    StorageUnavailableError,
)
from reliquary.vaults.memory import (
    InMemoryItemRepository,
    InMemorySigningKeyStore,
    InMemoryVaultRepository,
)
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
from reliquary.vaults.ports import ItemRepository, SigningKeyStore, VaultRepository
from tests.support.aws import REGION, AwsStack
from tests.support.vaults import shared_moto_stack, unique_id

pytestmark = pytest.mark.integration

VAULT = "vault-1"
T0 = 1_700_000_000


# --- records (the adapters store bytes; they need no real keys) ------------------------------------------
def _vault(tenant_id: str, vault_id: str = VAULT, *, recovery: RecoveryPolicy | None = None) -> Vault:
    return Vault(tenant_id, vault_id, current_key_version=1, created_at=T0, recovery=recovery)


def _key(
    tenant_id: str,
    version: int,
    *,
    vault_id: str = VAULT,
    escrow: bool = False,
    status: KeyStatus = KeyStatus.ACTIVE,
) -> VaultKeyRecord:
    return VaultKeyRecord(
        tenant_id=tenant_id,
        vault_id=vault_id,
        version=version,
        public_key=bytes([version]) * 1216,
        wrapped_private_key=b"wrapped" + bytes([version]) * 100,
        status=status,
        created_at=T0 + version,
        escrowed_private_key=b"escrow" + bytes([version]) * 50 if escrow else None,
        root_key_id="arn:aws:kms:us-east-1:123456789012:key/test",
    )


def _item(
    tenant_id: str,
    item_id: str,
    version: int = 1,
    *,
    vault_id: str = VAULT,
    envelope: bytes | None = None,
    **changes: Any,
) -> ItemRecord:
    record = ItemRecord(
        tenant_id=tenant_id,
        vault_id=vault_id,
        item_id=item_id,
        version=version,
        content_type="text/plain",
        memory_scope=MemoryScope(MemoryKind.AGENT, "agent-7"),
        created_at=T0 + version,
        size=10 * version,
        wrap_key_version=1,
        body_location=BodyLocation.INLINE,
        envelope=envelope if envelope is not None else f"envelope {item_id} v{version}".encode(),
    )
    return replace(record, **changes)


POLICY = RecoveryPolicy(
    threshold=2,
    recovery_public_key=b"\x01" * 1216,
    custodians=(
        Custodian("alice", b"\xaa" * 32, b"sealed share for alice \x00\xff"),
        Custodian("bob", b"\xbb" * 32, b"sealed share for bob"),
        Custodian("carol", b"\xcc" * 32, b"sealed share for carol"),
    ),
)


# --- the backends ---------------------------------------------------------------------------------------
class ItemsWithKeys:
    """An item repository whose ``put`` first gives the record's wrap key version an active key row.

    Putting an item requires its wrap key to be the vault's active one; the item contract tests store
    records without the vault ceremony, so this sets the key up on first use (tests of that rule call
    the bare repository)."""

    def __init__(self, items: ItemRepository, vaults: VaultRepository) -> None:
        self.bare = items
        self._vaults = vaults

    def put(self, record: ItemRecord) -> None:
        try:
            self._vaults.get_key(record.tenant_id, record.vault_id, record.wrap_key_version)
        except NotFoundError:
            vault = Vault(
                record.tenant_id, record.vault_id, current_key_version=record.wrap_key_version, created_at=T0
            )
            self._vaults.create(
                vault, _key(record.tenant_id, record.wrap_key_version, vault_id=record.vault_id)
            )
        self.bare.put(record)

    def get(self, tenant_id: str, vault_id: str, item_id: str, version: int | None = None) -> ItemRecord:
        return self.bare.get(tenant_id, vault_id, item_id, version)

    def versions(self, tenant_id: str, vault_id: str, item_id: str) -> list[ItemRecord]:
        return self.bare.versions(tenant_id, vault_id, item_id)

    def scan_vault(self, tenant_id: str, vault_id: str) -> Iterator[ItemRecord]:
        return self.bare.scan_vault(tenant_id, vault_id)

    def scope_items(self, tenant_id: str, vault_id: str, scope: MemoryScope) -> Iterator[ScopedItem]:
        return self.bare.scope_items(tenant_id, vault_id, scope)

    def replace_envelope(self, record: ItemRecord, envelope: bytes, wrap_key_version: int) -> ItemRecord:
        return self.bare.replace_envelope(record, envelope, wrap_key_version)

    def shred(self, record: ItemRecord, *, shredded_at: int) -> ItemRecord:
        return self.bare.shred(record, shredded_at=shredded_at)


@dataclass
class Backend:
    name: str
    vaults: VaultRepository
    items: ItemsWithKeys
    signing_keys: SigningKeyStore
    tenant: str  # unique to the test: the moto tables are shared by the tests of this module
    other: str


def _table_configs(aws: AwsStack) -> tuple[TableConfig, TableConfig]:
    settings = aws.settings
    return (
        TableConfig(settings.vaults_table, settings.region, settings.endpoint_url),
        TableConfig(settings.items_table, settings.region, settings.endpoint_url),
    )


@pytest.fixture(scope="module")
def aws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AwsStack]:
    """This module's moto stack, shared by its tests (they use unique tenant ids and S3 keys)."""
    with shared_moto_stack(tmp_path_factory) as stack:
        yield stack


@dataclass
class DynamoRepos:
    vaults: DynamoDBVaultRepository
    items: DynamoDBItemRepository
    signing_keys: DynamoDBSigningKeyStore


@pytest.fixture(scope="module")
def dynamo(aws: AwsStack) -> DynamoRepos:
    vaults, items = _table_configs(aws)
    return DynamoRepos(
        DynamoDBVaultRepository(vaults),
        DynamoDBItemRepository(items, vaults=vaults),
        DynamoDBSigningKeyStore(vaults),
    )


@pytest.fixture(params=["memory", "dynamodb"])
def backend(request: pytest.FixtureRequest) -> Backend:
    tenant, other = unique_id("tenant-a"), unique_id("tenant-b")
    if request.param == "memory":
        memory_vaults = InMemoryVaultRepository()
        return Backend(
            "memory",
            memory_vaults,
            ItemsWithKeys(InMemoryItemRepository(memory_vaults), memory_vaults),
            InMemorySigningKeyStore(),
            tenant,
            other,
        )
    repos: DynamoRepos = request.getfixturevalue("dynamo")
    items = ItemsWithKeys(repos.items, repos.vaults)
    return Backend("dynamodb", repos.vaults, items, repos.signing_keys, tenant, other)


# --- vault repository contract ---------------------------------------------------------------------------
def test_a_vault_round_trips_with_its_recovery_policy_and_first_key(backend: Backend) -> None:
    t = backend.tenant
    vault, key = _vault(t, recovery=POLICY), _key(t, 1, escrow=True)
    backend.vaults.create(vault, key)

    assert backend.vaults.get(t, VAULT) == vault
    assert backend.vaults.get_key(t, VAULT, 1) == key
    assert backend.vaults.list_keys(t, VAULT) == [key]


def test_a_vault_without_recovery_round_trips(backend: Backend) -> None:
    t = backend.tenant
    backend.vaults.create(_vault(t), _key(t, 1))
    assert backend.vaults.get(t, VAULT).recovery is None
    assert backend.vaults.get_key(t, VAULT, 1).escrowed_private_key is None


def test_a_vault_that_opted_in_to_permanent_storage_round_trips(backend: Backend) -> None:
    t = backend.tenant
    for backend_name in PermanentBackend:
        vault = replace(_vault(t, f"vault-{backend_name.value}"), permanent_storage=backend_name)
        backend.vaults.create(vault, _key(t, 1, vault_id=vault.vault_id))
        assert backend.vaults.get(t, vault.vault_id).permanent_storage is backend_name


def test_creating_an_existing_vault_is_a_conflict_and_changes_nothing(backend: Backend) -> None:
    t = backend.tenant
    original = _key(t, 1)
    backend.vaults.create(_vault(t), original)
    intruder = replace(_key(t, 1), public_key=b"\xee" * 1216, wrapped_private_key=b"attacker's key")

    with pytest.raises(ConflictError):
        backend.vaults.create(replace(_vault(t), created_at=T0 + 99), intruder)

    assert backend.vaults.get(t, VAULT).created_at == T0
    assert backend.vaults.list_keys(t, VAULT) == [original]


def test_missing_vaults_and_keys_are_not_found(backend: Backend) -> None:
    t, other = backend.tenant, backend.other
    backend.vaults.create(_vault(t), _key(t, 1))
    with pytest.raises(NotFoundError):
        backend.vaults.get(t, "vault-2")
    with pytest.raises(NotFoundError):
        backend.vaults.get(other, VAULT)
    with pytest.raises(NotFoundError):
        backend.vaults.get_key(t, VAULT, 2)
    with pytest.raises(NotFoundError):
        backend.vaults.get_key(other, VAULT, 1)
    with pytest.raises(NotFoundError):
        backend.vaults.list_keys(other, VAULT)


def test_the_same_vault_id_under_two_tenants_are_two_vaults(backend: Backend) -> None:
    t, other = backend.tenant, backend.other
    backend.vaults.create(_vault(t), _key(t, 1))
    theirs = replace(_key(other, 1), public_key=b"\x77" * 1216)
    backend.vaults.create(_vault(other), theirs)
    backend.vaults.add_key_version(_vault(other), _key(other, 2))

    assert backend.vaults.get(t, VAULT).current_key_version == 1
    assert backend.vaults.list_keys(t, VAULT) == [_key(t, 1)]
    assert backend.vaults.get_key(other, VAULT, 1).public_key == b"\x77" * 1216


def test_add_key_version_makes_it_current_and_demotes_the_previous(backend: Backend) -> None:
    t = backend.tenant
    backend.vaults.create(_vault(t, recovery=POLICY), _key(t, 1))

    updated = backend.vaults.add_key_version(_vault(t, recovery=POLICY), _key(t, 2))

    assert updated == replace(_vault(t, recovery=POLICY), current_key_version=2)
    assert backend.vaults.get(t, VAULT) == updated
    keys = backend.vaults.list_keys(t, VAULT)
    assert [(k.version, k.status) for k in keys] == [(1, KeyStatus.PREVIOUS), (2, KeyStatus.ACTIVE)]
    assert keys[0].wrapped_private_key == _key(t, 1).wrapped_private_key  # demoted, not destroyed
    assert keys[1] == _key(t, 2)


def test_add_key_version_on_a_stale_vault_is_a_conflict_and_changes_nothing(backend: Backend) -> None:
    t = backend.tenant
    backend.vaults.create(_vault(t), _key(t, 1))
    stale = backend.vaults.get(t, VAULT)
    backend.vaults.add_key_version(stale, _key(t, 2))

    with pytest.raises(ConflictError):
        backend.vaults.add_key_version(stale, replace(_key(t, 2), public_key=b"\x99" * 1216))
    with pytest.raises(ConflictError):
        backend.vaults.add_key_version(stale, _key(t, 3))

    assert backend.vaults.get(t, VAULT).current_key_version == 2
    assert [k.version for k in backend.vaults.list_keys(t, VAULT)] == [1, 2]
    assert backend.vaults.get_key(t, VAULT, 2) == _key(t, 2)
    with pytest.raises(NotFoundError):
        backend.vaults.get_key(t, VAULT, 3)


def test_add_key_version_for_a_missing_vault_fails(backend: Backend) -> None:
    t = backend.tenant
    with pytest.raises((NotFoundError, ConflictError)):
        backend.vaults.add_key_version(_vault(t), _key(t, 2))
    with pytest.raises(NotFoundError):
        backend.vaults.get(t, VAULT)


def test_retire_destroys_a_previous_key_but_never_the_current_one(backend: Backend) -> None:
    t = backend.tenant
    backend.vaults.create(_vault(t), _key(t, 1, escrow=True))
    backend.vaults.add_key_version(_vault(t), _key(t, 2, escrow=True))

    with pytest.raises(KeyVersionError):
        backend.vaults.retire_key(t, VAULT, 2, retired_at=T0 + 10)
    assert backend.vaults.get_key(t, VAULT, 2) == _key(t, 2, escrow=True)

    retired = backend.vaults.retire_key(t, VAULT, 1, retired_at=T0 + 10)

    expected = replace(
        _key(t, 1),
        status=KeyStatus.RETIRED,
        wrapped_private_key=None,
        escrowed_private_key=None,
        retired_at=T0 + 10,
    )
    assert retired == expected
    assert backend.vaults.get_key(t, VAULT, 1) == expected
    # Idempotent, and the first retirement's time stands (the key event the catalog reports).
    assert backend.vaults.retire_key(t, VAULT, 1, retired_at=T0 + 20) == expected
    with pytest.raises(NotFoundError):
        backend.vaults.retire_key(t, VAULT, 3, retired_at=T0 + 10)


# --- item repository contract ----------------------------------------------------------------------------
def test_an_item_round_trips_every_field(backend: Backend) -> None:
    t = backend.tenant
    record = _item(
        t,
        "note",
        tags={"topic": "pets", "lang": "café ☕", "empty": ""},
        expires_at=T0 + 3600,
        body_location=BodyLocation.S3,
        blob_key="tenants/tenant-a/vaults/vault-1/items/note/v0000000001-abc.bin",
        wrap_key_version=3,
        memory_scope=MemoryScope(MemoryKind.RUN, "run-42"),
        sensitivity="confidential",
    )
    backend.items.put(record)

    assert backend.items.get(t, VAULT, "note", 1) == record
    assert backend.items.get(t, VAULT, "note") == record


def test_an_item_with_a_permanent_body_round_trips_and_keeps_its_record_in_the_tombstone(
    backend: Backend,
) -> None:
    t = backend.tenant
    ref = PermanentRef(
        PermanentBackend.IPFS, "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku", 0, b"\x5a" * 32
    )
    record = _item(t, "kept", body_location=BodyLocation.PERMANENT, permanent_ref=ref)
    backend.items.put(record)
    assert backend.items.get(t, VAULT, "kept", 1) == record
    tombstone = backend.items.shred(record, shredded_at=T0 + 5)
    assert tombstone.envelope is None
    assert tombstone.permanent_ref == ref
    assert backend.items.get(t, VAULT, "kept", 1).permanent_ref == ref


def test_an_item_without_tags_or_expiry_round_trips(backend: Backend) -> None:
    t = backend.tenant
    record = _item(t, "plain", memory_scope=MemoryScope(MemoryKind.USER, "u"))
    backend.items.put(record)
    stored = backend.items.get(t, VAULT, "plain", 1)
    assert stored == record
    assert stored.tags == {}
    assert stored.expires_at is None
    assert stored.blob_key is None
    assert stored.sensitivity == "restricted"


def test_putting_an_existing_item_version_is_a_conflict_and_changes_nothing(backend: Backend) -> None:
    t = backend.tenant
    backend.items.put(_item(t, "note"))
    with pytest.raises(ConflictError):
        backend.items.put(_item(t, "note", envelope=b"overwritten?"))
    assert backend.items.get(t, VAULT, "note", 1) == _item(t, "note")


def test_get_without_a_version_is_the_latest_and_versions_are_ordered(backend: Backend) -> None:
    t, other = backend.tenant, backend.other
    for version in (1, 2, 3, 10, 11):  # 10 > 9 numerically: the sort key pads versions
        backend.items.put(_item(t, "note", version))
    backend.items.put(_item(t, "note-2", 99))  # an id that extends "note" is another item
    backend.items.put(_item(t, "note.old", 50))
    backend.items.put(_item(t, "note", 12, vault_id="vault-2"))
    backend.items.put(_item(other, "note", 13))

    assert backend.items.get(t, VAULT, "note").version == 11
    assert [r.version for r in backend.items.versions(t, VAULT, "note")] == [1, 2, 3, 10, 11]
    assert backend.items.versions(t, VAULT, "absent") == []


def test_an_item_lands_only_while_its_wrap_key_is_the_active_one(backend: Backend) -> None:
    t = backend.tenant
    backend.vaults.create(_vault(t), _key(t, 1))
    with pytest.raises(KeyVersionError):  # no such key version at all
        backend.items.bare.put(_item(t, "note", wrap_key_version=2))
    vault = backend.vaults.add_key_version(_vault(t), _key(t, 2))
    assert vault.current_key_version == 2
    with pytest.raises(KeyVersionError):  # version 1 was demoted by the rotation
        backend.items.bare.put(_item(t, "note", wrap_key_version=1))
    assert backend.items.versions(t, VAULT, "note") == []
    backend.items.bare.put(_item(t, "note", wrap_key_version=2))
    assert backend.items.get(t, VAULT, "note").wrap_key_version == 2


def test_missing_items_are_not_found(backend: Backend) -> None:
    t, other = backend.tenant, backend.other
    backend.items.put(_item(t, "note"))
    with pytest.raises(NotFoundError):
        backend.items.get(t, VAULT, "absent")
    with pytest.raises(NotFoundError):
        backend.items.get(t, VAULT, "note", 2)
    with pytest.raises(NotFoundError):
        backend.items.get(other, VAULT, "note")
    with pytest.raises(NotFoundError):
        backend.items.get(t, "vault-2", "note", 1)


def test_scope_items_lists_each_item_of_a_scope_once_with_whether_it_is_live(backend: Backend) -> None:
    t, other = backend.tenant, backend.other
    alice, bob = MemoryScope(MemoryKind.USER, "alice"), MemoryScope(MemoryKind.USER, "bob")
    for n in range(120):  # more than one page of the adapter's 100 index rows
        backend.items.put(_item(t, f"item-{n:03d}", memory_scope=alice))
    backend.items.put(_item(t, "item-000", 2, memory_scope=alice))
    backend.items.put(_item(t, "mixed", 1, memory_scope=bob))
    backend.items.put(_item(t, "mixed", 2, memory_scope=alice))
    backend.items.put(_item(t, "bob-only", memory_scope=bob))
    backend.items.put(_item(t, "agent", memory_scope=MemoryScope(MemoryKind.AGENT, "alice")))
    backend.items.put(_item(t, "elsewhere", vault_id="vault-2", memory_scope=alice))
    backend.items.put(_item(other, "theirs", memory_scope=alice))
    for item_id, version in (("item-001", 1), ("item-000", 1), ("mixed", 2)):
        backend.items.shred(_item(t, item_id, version), shredded_at=T0)

    listed = list(backend.items.scope_items(t, VAULT, alice))

    expected = [ScopedItem(f"item-{n:03d}", live=n != 1) for n in range(120)] + [ScopedItem("mixed", False)]
    assert listed == expected  # item-000 still has a live version 2; mixed's alice version is shredded
    assert list(backend.items.scope_items(t, VAULT, bob)) == [
        ScopedItem("bob-only", True),
        ScopedItem("mixed", True),
    ]
    assert list(backend.items.scope_items(t, "vault-2", bob)) == []
    assert list(backend.items.scope_items(other, VAULT, alice)) == [ScopedItem("theirs", True)]


def test_scan_vault_returns_every_version_across_pages(backend: Backend) -> None:
    t, other = backend.tenant, backend.other
    expected = []
    for n in range(65):  # 130 rows: more than one page of the adapter's 100
        for version in (1, 2):
            record = _item(t, f"item-{n:03d}", version, envelope=bytes([n]) * 2000)
            backend.items.put(record)
            expected.append(record)
    backend.items.put(_item(t, "elsewhere", vault_id="vault-2"))
    backend.items.put(_item(other, "item-000", 3))

    scanned = list(backend.items.scan_vault(t, VAULT))

    assert len(scanned) == 130
    assert scanned == expected  # ordered by item id, then version
    assert list(backend.items.scan_vault(t, "empty-vault")) == []


def test_replace_envelope_swaps_only_while_the_wrap_version_is_unchanged(backend: Backend) -> None:
    t = backend.tenant
    record = _item(t, "note")
    backend.items.put(record)

    updated = backend.items.replace_envelope(record, b"rewrapped to v2", 2)

    assert updated == replace(record, envelope=b"rewrapped to v2", wrap_key_version=2)
    assert backend.items.get(t, VAULT, "note", 1) == updated
    with pytest.raises(ConflictError):  # the caller read it at wrap version 1: it moved meanwhile
        backend.items.replace_envelope(record, b"a concurrent rewrap", 3)
    assert backend.items.get(t, VAULT, "note", 1) == updated


def test_replace_envelope_never_revives_a_shredded_or_missing_item(backend: Backend) -> None:
    t = backend.tenant
    record = _item(t, "note")
    backend.items.put(record)
    backend.items.shred(record, shredded_at=T0 + 5)

    # The two backends disagree on the error type here (see the report): both refuse, that is the contract.
    with pytest.raises((ConflictError, NotFoundError)):
        backend.items.replace_envelope(record, b"resurrected", 2)
    assert backend.items.get(t, VAULT, "note", 1).envelope is None
    with pytest.raises((ConflictError, NotFoundError)):
        backend.items.replace_envelope(_item(t, "ghost"), b"resurrected", 2)
    with pytest.raises(NotFoundError):
        backend.items.get(t, VAULT, "ghost")


def test_shred_keeps_a_tombstone_with_the_first_shred_time(backend: Backend) -> None:
    t = backend.tenant
    record = _item(
        t, "note", tags={"a": "b"}, expires_at=T0 + 60, blob_key="k", body_location=BodyLocation.S3
    )
    backend.items.put(record)
    backend.items.put(_item(t, "note", 2))

    shredded = backend.items.shred(record, shredded_at=T0 + 5)

    # The tombstone loses its expiry so that DynamoDB's TTL keeps it (and the version number).
    tombstone = replace(record, envelope=None, expires_at=None, shredded_at=T0 + 5)
    assert shredded == tombstone
    assert backend.items.get(t, VAULT, "note", 1) == tombstone
    assert backend.items.shred(record, shredded_at=T0 + 99) == tombstone  # idempotent, first time kept
    assert backend.items.get(t, VAULT, "note", 2) == _item(t, "note", 2)  # other versions untouched


def test_shred_of_a_missing_item_is_refused_without_creating_it(backend: Backend) -> None:
    t = backend.tenant
    with pytest.raises(NotFoundError):
        backend.items.shred(_item(t, "ghost"), shredded_at=T0)
    with pytest.raises(NotFoundError):
        backend.items.get(t, VAULT, "ghost")


# --- signing key store contract --------------------------------------------------------------------------
def _signing_key(algorithm: str, created_at: int) -> StoredSigningKey:
    return StoredSigningKey(
        algorithm=algorithm,
        key_id=algorithm.encode()[:8].ljust(8, b"\0"),
        public_key=b"public " + algorithm.encode(),
        wrapped_secret=b"wrapped " + algorithm.encode(),
        created_at=created_at,
        root_key_id="root-1",
    )


def test_signing_keys_one_per_algorithm(request: pytest.FixtureRequest, backend: Backend) -> None:
    store = backend.signing_keys
    if backend.name == "dynamodb":  # the SERVICE partition is global: use tables of this test's own
        aws: AwsStack = request.getfixturevalue("aws")
        names = create_tables(aws.dynamodb, prefix=unique_id("rq"))
        store = DynamoDBSigningKeyStore(TableConfig(names["VaultsTable"], REGION))
    assert store.list() == []
    first, second = _signing_key("ML-DSA-65", T0 + 1), _signing_key("Ed25519", T0)
    store.add(first)
    store.add(second)

    with pytest.raises(ConflictError):
        store.add(replace(first, public_key=b"another", created_at=T0 + 9))

    assert store.list() == [second, first]  # oldest first


# --- DynamoDB only: the table layout ---------------------------------------------------------------------
def _row(aws: AwsStack, logical_id: str, pk: str, sk: str) -> dict[str, Any]:
    item: dict[str, Any] = aws.dynamodb.get_item(
        TableName=aws.tables[logical_id], Key={"pk": {"S": pk}, "sk": {"S": sk}}, ConsistentRead=True
    )["Item"]
    return item


def _partition(aws: AwsStack, logical_id: str, pk: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    pages = aws.dynamodb.get_paginator("query").paginate(
        TableName=aws.tables[logical_id],
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": pk}},
    )
    for page in pages:
        rows.extend(page["Items"])
    return rows


def test_every_row_key_starts_with_its_tenant(aws: AwsStack, dynamo: DynamoRepos) -> None:
    t = unique_id("tenant")
    dynamo.vaults.create(_vault(t), _key(t, 1))
    dynamo.items.put(_item(t, "note", expires_at=T0 + 60))

    vault_rows = {r["sk"]["S"] for r in _partition(aws, "VaultsTable", f"TENANT#{t}")}
    assert vault_rows == {"VAULT#vault-1", "VAULT#vault-1#KEY#0000000001"}
    [item_row] = _partition(aws, "ItemsTable", f"TENANT#{t}#VAULT#vault-1")
    assert item_row["sk"]["S"] == "ITEM#note#V#0000000001"
    assert item_row["expires_at"] == {"N": str(T0 + 60)}  # a number: DynamoDB TTL ignores anything else
    ttl = aws.dynamodb.describe_time_to_live(TableName=aws.tables["ItemsTable"])["TimeToLiveDescription"]
    assert ttl["AttributeName"] == "expires_at"


def test_retire_removes_the_wrapped_key_attributes_from_the_row(aws: AwsStack, dynamo: DynamoRepos) -> None:
    t = unique_id("tenant")
    dynamo.vaults.create(_vault(t), _key(t, 1, escrow=True))
    dynamo.vaults.add_key_version(_vault(t), _key(t, 2))
    dynamo.vaults.retire_key(t, VAULT, 1, retired_at=T0 + 10)

    row = _row(aws, "VaultsTable", f"TENANT#{t}", "VAULT#vault-1#KEY#0000000001")
    assert "wrapped_private_key" not in row
    assert "escrowed_private_key" not in row
    assert row["status"] == {"S": "retired"}
    assert row["retired_at"] == {"N": str(T0 + 10)}


def test_shred_removes_the_envelope_attribute_from_the_row(aws: AwsStack, dynamo: DynamoRepos) -> None:
    t = unique_id("tenant")
    record = _item(t, "note", envelope=b"\x00secret envelope bytes\xff")
    dynamo.vaults.create(_vault(t), _key(t, 1))
    dynamo.items.put(replace(record, expires_at=T0 + 60))
    dynamo.items.shred(record, shredded_at=T0 + 5)

    row = _row(aws, "ItemsTable", f"TENANT#{t}#VAULT#vault-1", "ITEM#note#V#0000000001")
    assert "envelope" not in row
    assert "expires_at" not in row  # TTL will not remove the tombstone
    assert row["shredded_at"] == {"N": str(T0 + 5)}
    assert b"secret envelope bytes" not in repr(row).encode()


def test_the_recovery_policy_is_stored_as_public_json(aws: AwsStack, dynamo: DynamoRepos) -> None:
    t = unique_id("tenant")
    dynamo.vaults.create(_vault(t, recovery=POLICY), _key(t, 1))
    row = _row(aws, "VaultsTable", f"TENANT#{t}", "VAULT#vault-1")
    policy = json.loads(row["recovery"]["S"])
    assert policy["threshold"] == 2
    assert [c["custodian_id"] for c in policy["custodians"]] == ["alice", "bob", "carol"]
    assert base64.b64decode(policy["custodians"][0]["sealed_share"]) == b"sealed share for alice \x00\xff"


# --- DynamoDB error translation --------------------------------------------------------------------------
def _client_error(code: str, operation: str = "PutItem") -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": "simulated"}}, operation)


def _raiser(exc: Exception) -> Callable[[], None]:
    def call() -> None:
        raise exc

    return call


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("ConditionalCheckFailedException", ConflictError),
        ("ProvisionedThroughputExceededException", StorageUnavailableError),
        ("ThrottlingException", StorageUnavailableError),
        ("InternalServerError", StorageUnavailableError),
        ("ResourceNotFoundException", ReliquaryError),
        ("ValidationException", ReliquaryError),
    ],
)
def test_dynamodb_errors_are_translated_by_code(code: str, expected: type[ReliquaryError]) -> None:
    with pytest.raises(expected) as caught:
        guarded(_raiser(PutError("simulated", cause=_client_error(code))))
    assert type(caught.value) is expected
    assert caught.value.retryable is (expected is StorageUnavailableError)


def test_dynamodb_errors_without_a_response_are_transient() -> None:
    with pytest.raises(StorageUnavailableError):
        guarded(_raiser(PutError("no answer", cause=EndpointConnectionError(endpoint_url="http://x"))))


def _cancelled(*reasons: str | None) -> TransactWriteError:
    """A cancelled TransactWriteItems as pynamodb raises it (one reason per transaction item)."""
    cause = VerboseClientError(
        {"Error": {"Code": "TransactionCanceledException", "Message": "simulated"}},
        "TransactWriteItems",
        cancellation_reasons=[None if r is None else CancellationReason(code=r) for r in reasons],
    )
    return TransactWriteError("cancelled", cause=cause)


@pytest.mark.parametrize(
    ("reasons", "expected"),
    [
        ((None, "ConditionalCheckFailed"), ConflictError),
        (("ConditionalCheckFailed", "TransactionConflict"), ConflictError),
        (("TransactionConflict", None), StorageUnavailableError),
        (("ThrottlingError",), StorageUnavailableError),
    ],
)
def test_a_cancelled_transaction_is_a_conflict_only_when_a_condition_failed(
    reasons: tuple[str | None, ...], expected: type[ReliquaryError]
) -> None:
    with pytest.raises(expected) as caught:
        guarded(_raiser(_cancelled(*reasons)))
    assert type(caught.value) is expected


# --- S3 --------------------------------------------------------------------------------------------------
@pytest.fixture
def blobs(aws: AwsStack) -> S3BlobStore:
    return S3BlobStore(aws.s3, aws.settings.items_bucket)


def _versions(aws: AwsStack, key: str) -> list[dict[str, Any]]:
    page = aws.s3.list_object_versions(Bucket=aws.settings.items_bucket, Prefix=key)
    return [e for e in [*page.get("Versions", []), *page.get("DeleteMarkers", [])] if e["Key"] == key]


@pytest.fixture
def prefix() -> str:
    return f"tenants/{unique_id('t')}/vaults/v/items/i/"


def test_s3_put_and_get_round_trip(blobs: S3BlobStore, prefix: str) -> None:
    body = bytes(range(256)) * 1024
    blobs.put(prefix + "a.bin", body)
    assert blobs.get(prefix + "a.bin") == body


def test_s3_keys_lists_the_current_objects_under_a_prefix_once(
    aws: AwsStack, blobs: S3BlobStore, prefix: str
) -> None:
    for name in ("b.ref.json", "a.bin", "a.bin", "c.bin"):  # a.bin twice: two versions, one key
        blobs.put(prefix + name, b"x")
    blobs.put(prefix + "gone/x.bin", b"x")
    aws.s3.delete_object(Bucket=aws.settings.items_bucket, Key=prefix + "c.bin")  # a delete marker on top
    assert blobs.keys(prefix) == [prefix + "a.bin", prefix + "b.ref.json", prefix + "gone/x.bin"]
    assert blobs.keys(prefix + "gone/") == [prefix + "gone/x.bin"]
    assert blobs.keys(prefix + "nothing-") == []


def test_s3_get_of_a_missing_key_is_not_found(blobs: S3BlobStore, prefix: str) -> None:
    with pytest.raises(NotFoundError) as caught:
        blobs.get(prefix + "absent.bin")
    assert caught.value.details["key"] == prefix + "absent.bin"
    blobs.put(prefix + "deleted.bin", b"x")
    blobs.delete(prefix + "deleted.bin")
    with pytest.raises(NotFoundError):
        blobs.get(prefix + "deleted.bin")


def test_s3_delete_removes_every_version_and_leaves_neighbours(
    aws: AwsStack, blobs: S3BlobStore, prefix: str
) -> None:
    key = prefix + "v0000000001-00.bin"
    for n in range(3):
        blobs.put(key, f"version {n}".encode())
    aws.s3.delete_object(Bucket=aws.settings.items_bucket, Key=key)  # a delete marker on top
    blobs.put(key, b"version 3")
    blobs.put(key + ".bak", b"a neighbour sharing the prefix")
    blobs.put(prefix + "v0000000002-00.bin", b"another version of the item")
    assert len(_versions(aws, key)) == 5

    blobs.delete(key)

    assert _versions(aws, key) == []
    with pytest.raises(NotFoundError):
        blobs.get(key)
    assert blobs.get(key + ".bak") == b"a neighbour sharing the prefix"
    assert blobs.get(prefix + "v0000000002-00.bin") == b"another version of the item"
    assert len(_versions(aws, key + ".bak")) == 1
    blobs.delete(key)  # absent is fine
    blobs.delete(prefix + "never-existed.bin")
    assert _versions(aws, prefix + "never-existed.bin") == []


def test_s3_delete_prefix_removes_every_version_of_every_key_under_it(
    aws: AwsStack, blobs: S3BlobStore, prefix: str
) -> None:
    doomed = [prefix + "v0000000001-aa.bin", prefix + "v0000000001-bb.bin"]
    for key in doomed:
        blobs.put(key, b"one")
        blobs.put(key, b"two")
    keep = prefix + "v0000000010-aa.bin"  # version 10 does not start with version 1's prefix
    blobs.put(keep, b"keep")
    assert blobs.delete_prefix(prefix + "v0000000001-") == 2
    assert all(_versions(aws, key) == [] for key in doomed)
    assert blobs.get(keep) == b"keep"
    assert blobs.delete_prefix(prefix + "v0000000001-") == 0


def test_s3_delete_works_in_an_unversioned_bucket(aws: AwsStack, prefix: str) -> None:
    bucket = unique_id("plain")
    aws.s3.create_bucket(Bucket=bucket)
    blobs = S3BlobStore(aws.s3, bucket)
    blobs.put(prefix + "a.bin", b"one")
    blobs.put(prefix + "a.bin", b"two")
    blobs.delete(prefix + "a.bin")
    assert aws.s3.list_objects_v2(Bucket=bucket).get("Contents", []) == []


def test_s3_delete_leaves_no_delete_marker(aws: AwsStack) -> None:
    """moto never writes a delete marker for a key that has no versions left, but real S3 does on any
    unversioned DELETE in a versioned bucket: so check the calls, not moto's state."""
    client = boto3.client("s3", region_name=REGION)
    bucket, key = "bucket", "tenants/t/a.bin"
    with Stubber(client) as stub:
        stub.add_response(
            "list_object_versions",
            {
                "Versions": [{"Key": key, "VersionId": "v1"}, {"Key": key + ".bak", "VersionId": "n1"}],
                "DeleteMarkers": [{"Key": key, "VersionId": "d1"}],
                "IsTruncated": False,
            },
            {"Bucket": bucket, "Prefix": key},
        )
        for version_id in ("v1", "d1"):
            stub.add_response("delete_object", {}, {"Bucket": bucket, "Key": key, "VersionId": version_id})
        S3BlobStore(client, bucket).delete(key)
        stub.assert_no_pending_responses()


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("NoSuchKey", NotFoundError),
        ("SlowDown", StorageUnavailableError),
        ("InternalError", StorageUnavailableError),
        ("AccessDenied", ReliquaryError),
    ],
)
def test_s3_errors_are_translated_by_code(aws: AwsStack, code: str, expected: type[ReliquaryError]) -> None:
    client = boto3.client("s3", region_name=REGION)
    with Stubber(client) as stub:
        stub.add_client_error("get_object", service_error_code=code, http_status_code=403)
        with pytest.raises(expected) as caught:
            S3BlobStore(client, "bucket").get("k")
    assert type(caught.value) is expected


# --- KMS -------------------------------------------------------------------------------------------------
CONTEXT = {"purpose": "vault-key", "tenant_id": "tenant-a", "vault_id": VAULT, "key_version": "1"}


@pytest.fixture
def kms_root(aws: AwsStack) -> KmsRootOfTrust:
    assert aws.settings.kms_key_id is not None
    return KmsRootOfTrust(aws.kms, aws.settings.kms_key_id)


def test_kms_wrap_and_unwrap_round_trip(aws: AwsStack, kms_root: KmsRootOfTrust) -> None:
    secret = bytes(range(96))
    blob = kms_root.wrap(secret, context=CONTEXT)
    assert secret not in blob
    assert kms_root.unwrap(blob, context=dict(CONTEXT)) == secret
    assert kms_root.key_id == aws.settings.kms_key_id


@pytest.mark.parametrize(
    "context",
    [
        {**CONTEXT, "tenant_id": "tenant-b"},
        {**CONTEXT, "key_version": "2"},
        {**CONTEXT, "extra": "x"},
        {k: v for k, v in CONTEXT.items() if k != "vault_id"},
        {},
    ],
    ids=["other-tenant", "other-version", "extra-entry", "missing-entry", "empty"],
)
def test_kms_unwrap_with_another_encryption_context_is_refused(
    kms_root: KmsRootOfTrust, context: dict[str, str]
) -> None:
    # This also checks an assumption about moto: it binds the context as AES-GCM associated data and
    # refuses a mismatch, as KMS does. If this ever passes silently, moto stopped enforcing it.
    blob = kms_root.wrap(b"\x42" * 96, context=CONTEXT)
    with pytest.raises(RootOfTrustError) as caught:
        kms_root.unwrap(blob, context=context)
    assert caught.value.details["aws_code"] == "InvalidCiphertextException"


def test_kms_unwrap_under_another_key_or_of_a_tampered_blob_is_refused(
    aws: AwsStack, kms_root: KmsRootOfTrust
) -> None:
    blob = kms_root.wrap(b"\x42" * 96, context=CONTEXT)
    other_key = aws.kms.create_key(Description="another key")["KeyMetadata"]["Arn"]
    with pytest.raises(RootOfTrustError):
        KmsRootOfTrust(aws.kms, other_key).unwrap(blob, context=CONTEXT)
    tampered = bytearray(blob)
    tampered[-1] ^= 0x01
    with pytest.raises(RootOfTrustError):
        kms_root.unwrap(bytes(tampered), context=CONTEXT)


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("ThrottlingException", StorageUnavailableError),
        ("KMSInternalException", StorageUnavailableError),
        ("AccessDeniedException", RootOfTrustError),
        ("IncorrectKeyException", RootOfTrustError),
    ],
)
def test_kms_errors_are_translated_by_code(aws: AwsStack, code: str, expected: type[ReliquaryError]) -> None:
    client = boto3.client("kms", region_name=REGION)
    with Stubber(client) as stub:
        stub.add_client_error("decrypt", service_error_code=code, http_status_code=400)
        with pytest.raises(expected) as caught:
            KmsRootOfTrust(client, "key").unwrap(b"blob", context=CONTEXT)
    assert type(caught.value) is expected
