"""The metadata reader and ``forget`` on moto's DynamoDB, held to the in-memory fakes' answers.

One scenario (vaults with custodians, rotation, rewrap and retirement; items with several versions and
scopes, a large body, an expiry, a shred; paging; forgetting a scope in bounded calls; refusals) runs on
the vault service and the reader of both backends, and both must give the same answers, page for page
and cursor for cursor. Then what only the DynamoDB adapters can show: the reader asks for no attribute
outside its lists (never a wrapped key or an envelope) and writes nothing, the scope index holds no
envelope, and a cursor cannot reach another tenant's rows.
"""

from __future__ import annotations

import copy
import functools
import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any

import pytest

from reliquary.adapters.catalog import (
    ITEM_ATTRIBUTES,
    KEY_ATTRIBUTES,
    VAULT_ATTRIBUTES,
    DynamoDBMetadataReader,
    build_metadata_reader,
)
from reliquary.adapters.dynamodb import (
    DynamoDBItemRepository,
    DynamoDBSigningKeyStore,
    DynamoDBVaultRepository,
    TableConfig,
    scope_pk,
)
from reliquary.adapters.s3 import S3BlobStore
from reliquary.crypto.kem import HybridPrivateKey
from reliquary.crypto.root import LocalRootOfTrust
from reliquary.crypto.signing import SignatureAlgorithm
from reliquary.errors import InvalidRequestError, ReliquaryError
from reliquary.vaults.catalog import ItemState, MetadataReader, Page, VaultDetails
from reliquary.vaults.memory import InMemoryMetadataReader
from reliquary.vaults.models import MemoryKind, MemoryScope
from reliquary.vaults.ports import VaultRepository
from reliquary.vaults.service import VaultService
from reliquary.vaults.service_keys import ServiceKeys
from tests.support.aws import AwsStack
from tests.support.vaults import T0, ManualClock, memory_stack, shared_moto_stack, unique_id

pytestmark = pytest.mark.integration

ALICE = MemoryScope(MemoryKind.USER, "alice")
BOB = MemoryScope(MemoryKind.USER, "bob")
LARGE = bytes(range(256)) * 20  # above the 1 KiB threshold of both backends: the body goes to S3
SECRET_ATTRIBUTES = {"envelope", "wrapped_private_key", "escrowed_private_key", "blob_key", "key_id"}


@pytest.fixture(scope="module")
def aws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AwsStack]:
    with shared_moto_stack(tmp_path_factory) as stack:
        yield stack


def _configs(aws: AwsStack) -> tuple[TableConfig, TableConfig]:
    settings = aws.settings
    return (
        TableConfig(settings.vaults_table, settings.region, settings.endpoint_url),
        TableConfig(settings.items_table, settings.region, settings.endpoint_url),
    )


@dataclass
class Backend:
    service: VaultService
    vaults: VaultRepository
    reader: MetadataReader
    clock: ManualClock


@pytest.fixture(scope="module")
def dynamo(aws: AwsStack) -> Backend:
    clock = ManualClock()
    vaults, items = _configs(aws)
    root = LocalRootOfTrust.generate()
    vault_repository = DynamoDBVaultRepository(vaults, aws.dynamodb)
    service = VaultService(
        vaults=vault_repository,
        items=DynamoDBItemRepository(items, vaults=vaults, client=aws.dynamodb),
        blobs=S3BlobStore(aws.s3, aws.settings.items_bucket),
        root=root,
        service_keys=ServiceKeys.load_or_create(
            DynamoDBSigningKeyStore(vaults, aws.dynamodb), root, SignatureAlgorithm.ML_DSA_65, clock=clock
        ),
        large_item_threshold=1024,
        clock=clock,
    )
    reader = DynamoDBMetadataReader(vaults, items, aws.dynamodb, clock=clock)
    return Backend(service, vault_repository, reader, clock)


def _memory() -> Backend:
    stack = memory_stack()
    reader = InMemoryMetadataReader(stack.vaults, stack.items, clock=stack.clock)
    return Backend(stack.service, stack.vaults, reader, stack.clock)


# --- one scenario, both backends ------------------------------------------------------------------------
def _pages(fetch: Callable[..., Page[Any]], limit: int) -> list[Page[Any]]:
    pages = [fetch(limit=limit)]
    while pages[-1].cursor is not None:
        pages.append(fetch(limit=limit, cursor=pages[-1].cursor))
        assert len(pages) < 50
    return pages


def _answer(call: Callable[[], Any]) -> Any:
    try:
        return call()
    except ReliquaryError as exc:
        return exc.to_dict()


def _keys_checked(backend: Backend, tenant: str, vault_id: str, details: VaultDetails) -> VaultDetails:
    """The details with each key's fingerprint checked against the stored public key, then blanked (each
    backend generates its own keys)."""
    for key in details.keys:
        stored = backend.vaults.get_key(tenant, vault_id, key.version).public_key
        assert key.public_key_sha256 == hashlib.sha256(stored).hexdigest()
    return replace(details, keys=tuple(replace(k, public_key_sha256="checked") for k in details.keys))


def _scenario(backend: Backend, tenant: str, other: str) -> list[tuple[str, Any]]:
    service, reader, clock = backend.service, backend.reader, backend.clock
    answers: list[tuple[str, Any]] = []

    def seal(item_id: str, scope: MemoryScope = ALICE, data: bytes = b"a memory", **kw: Any) -> None:
        service.seal_item(tenant, "main", item_id, data, memory_scope=scope, **kw)

    custodians = [(name, HybridPrivateKey.generate().public_key()) for name in ("ann", "ben")]
    for vault_id in ("main", "v-b", "v-c", "v-d"):
        service.create_vault(tenant, vault_id)
    service.create_vault(tenant, "v-e", custodians=custodians, recovery_threshold=2)
    service.create_vault(other, "main")
    service.seal_item(other, "main", "theirs", b"not yours", memory_scope=ALICE)
    for n in range(7):
        clock.advance(1)
        for version in range(n % 3 + 1):
            seal(f"item-{n}", BOB if (n + version) % 4 == 0 else ALICE, tags={"n": str(n)})
    seal("big", ALICE, LARGE, sensitivity="public")
    seal("brief", BOB, expires_at=clock.now + 30)
    seal("gone", ALICE, content_type="text/plain")
    clock.advance(10)
    service.shred_item(tenant, "main", "gone")
    service.rotate_key(tenant, "main")
    clock.advance(10)
    service.rewrap_vault(tenant, "main")
    service.retire_key(tenant, "main", 1)
    clock.advance(60)  # "brief" is past its expiry

    answers.append(("vaults", _pages(lambda **kw: reader.list_vaults(tenant, **kw), limit=2)))
    answers.append(("main", _keys_checked(backend, tenant, "main", reader.get_vault(tenant, "main"))))
    answers.append(("v-e", _keys_checked(backend, tenant, "v-e", reader.get_vault(tenant, "v-e"))))
    answers.append(("key events", reader.key_events(tenant, "main")))
    answers.append(("items", _pages(lambda **kw: reader.list_items(tenant, "main", **kw), limit=3)))
    for scope in (ALICE, BOB):
        pages = _pages(functools.partial(reader.list_items, tenant, "main", scope=scope), limit=2)
        answers.append((f"scope {scope.ref}", pages))
    answers.append(("history", reader.get_item(tenant, "main", "item-2")))
    items_cursor = reader.list_items(tenant, "main", limit=1).cursor
    answers.append(
        (
            "refusals",
            [
                _answer(lambda: reader.get_vault(other, "v-b")),
                _answer(lambda: reader.list_items(other, "v-b")),
                _answer(lambda: reader.get_item(tenant, "main", "theirs")),
                _answer(lambda: reader.get_item(tenant, "nope", "x")),
                _answer(lambda: reader.list_items(other, "main", cursor=items_cursor)),
                _answer(lambda: reader.list_items(tenant, "v-b", cursor=items_cursor)),
                _answer(lambda: reader.list_items(tenant, "main", scope=ALICE, cursor=items_cursor)),
                _answer(lambda: reader.list_vaults(tenant, cursor="garbage!")),
                _answer(lambda: reader.list_items(tenant, "main", limit=0)),
            ],
        )
    )

    clock.advance(5)
    forgotten: list[tuple[list[tuple[str, tuple[int, ...], int]], int, bool]] = []
    while not forgotten or not forgotten[-1][-1]:
        report = service.forget_scope(tenant, "main", ALICE, limit=3)
        receipts = [(r.item_id, r.versions, r.shredded_at) for r in report.receipts]
        forgotten.append((receipts, report.already_shredded, report.complete))
        assert len(forgotten) < 10
    answers.append(("forget", forgotten))
    answers.append(("after forget", reader.list_items(tenant, "main", scope=ALICE, limit=100)))
    answers.append(("bob after forget", reader.list_items(tenant, "main", scope=BOB, limit=100)))
    answers.append(("theirs", reader.list_items(other, "main")))
    return answers


def test_the_scenario_on_dynamodb_equals_the_scenario_in_memory(dynamo: Backend) -> None:
    tenant, other = unique_id("tenant"), unique_id("other")
    dynamo.clock.now = T0
    on_dynamodb = _scenario(dynamo, tenant, other)
    in_memory = _scenario(_memory(), tenant, other)

    for (step, got), (_, want) in zip(on_dynamodb, in_memory, strict=True):
        assert got == want, step
    answers = dict(in_memory)
    # The answers are the right ones, not just the same ones.
    assert [[v.vault_id for v in p.items] for p in answers["vaults"]] == [
        ["main", "v-b"],
        ["v-c", "v-d"],
        ["v-e"],
    ]
    assert answers["vaults"][-1].items[0].custodian_ids == ("ann", "ben")
    assert [(k.version, k.status.value, k.retired_at) for k in answers["main"].keys] == [
        (1, "retired", T0 + 27),
        (2, "active", None),
    ]
    assert [(e.kind.value, e.key_version) for e in answers["key events"]] == [
        ("created", 1),
        ("rotated", 2),
        ("retired", 1),
    ]
    items = [i for page in answers["items"] for i in page.items]
    assert [(i.item_id, i.latest.version, i.versions, i.latest.state) for i in items] == [
        ("big", 1, 1, ItemState.LIVE),
        ("brief", 1, 1, ItemState.EXPIRED),
        ("gone", 1, 1, ItemState.SHREDDED),
        *[(f"item-{n}", n % 3 + 1, n % 3 + 1, ItemState.LIVE) for n in range(7)],
    ]
    assert all(len(page.items) <= 3 for page in answers["items"])
    alice = [(i.item_id, i.latest.version) for p in answers["scope alice"] for i in p.items]
    # item n has n % 3 + 1 versions, version v+1 in bob's scope when (n + v) % 4 == 0, else alice's.
    assert alice == [
        ("big", 1),
        ("gone", 1),
        ("item-1", 2),
        ("item-2", 2),
        ("item-3", 1),
        ("item-4", 2),
        ("item-5", 3),
        ("item-6", 1),
    ]
    codes = [a["code"] for a in answers["refusals"]]
    assert codes == ["not_found"] * 4 + ["invalid_request"] * 5
    # Three items per call; what earlier calls (and the shred of "gone") destroyed is counted, not redone.
    assert [
        ([r[0] for r in receipts], already, complete) for receipts, already, complete in answers["forget"]
    ] == [
        (["big", "item-1", "item-2"], 1, False),
        (["item-3", "item-4", "item-5"], 4, False),
        (["item-6"], 7, True),
    ]
    receipts = {r[0]: r[1:] for call in answers["forget"] for r in call[0]}
    assert receipts["item-2"] == ((1, 2), T0 + 92)  # version 3 is bob's: not forgotten
    assert receipts["item-4"] == ((2,), T0 + 92)
    assert {i.latest.state for i in answers["after forget"].items} == {ItemState.SHREDDED}
    assert all(i.latest.state is not ItemState.SHREDDED for i in answers["bob after forget"].items)
    assert [i.item_id for i in answers["theirs"].items] == ["theirs"]


# --- what only the DynamoDB adapters can show ----------------------------------------------------------
class Recorder:
    """Every DynamoDB request the shared client makes while it is installed: operation and parameters."""

    def __init__(self, client: Any) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self._client = client

    def __enter__(self) -> Recorder:
        self._client.meta.events.register("provide-client-params.dynamodb.*", self._record)
        return self

    def __exit__(self, *exc: object) -> None:
        self._client.meta.events.unregister("provide-client-params.dynamodb.*", self._record)

    def _record(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        self.calls.append((model.name, copy.deepcopy(params)))


def _projected(params: dict[str, Any]) -> set[str]:
    names = params.get("ExpressionAttributeNames", {})
    return {names.get(part.strip(), part.strip()) for part in params["ProjectionExpression"].split(",")}


def test_the_reader_asks_only_for_its_listed_attributes_and_writes_nothing(
    aws: AwsStack, dynamo: Backend
) -> None:
    tenant = unique_id("tenant")
    dynamo.clock.now = T0
    service, reader = dynamo.service, dynamo.reader
    service.create_vault(tenant, "main")
    service.create_vault(tenant, "second")
    service.seal_item(tenant, "main", "note", LARGE, memory_scope=ALICE)
    service.seal_item(tenant, "main", "other", b"x", memory_scope=BOB)

    with Recorder(aws.dynamodb) as recorder:
        first = reader.list_vaults(tenant, limit=1)
        reader.list_vaults(tenant, limit=1, cursor=first.cursor)
        reader.get_vault(tenant, "main")
        reader.key_events(tenant, "main")
        page = reader.list_items(tenant, "main", limit=1)
        reader.list_items(tenant, "main", limit=1, cursor=page.cursor)
        reader.list_items(tenant, "main", scope=ALICE)
        reader.get_item(tenant, "main", "note")
        for bad in (lambda: reader.get_item(tenant, "nope", "x"), lambda: reader.list_items(tenant, "nope")):
            with pytest.raises(ReliquaryError):
                bad()

    assert {operation for operation, _ in recorder.calls} == {"GetItem", "Query"}
    allowed = {
        (aws.settings.vaults_table, None): set(VAULT_ATTRIBUTES) | set(KEY_ATTRIBUTES),
        (aws.settings.items_table, None): set(ITEM_ATTRIBUTES),
        (aws.settings.items_table, "ScopeIndex"): set(ITEM_ATTRIBUTES),
    }
    for operation, params in recorder.calls:
        where = (params["TableName"], params.get("IndexName"))
        projected = _projected(params)
        assert projected <= allowed[where], (operation, where, projected)
        assert not projected & SECRET_ATTRIBUTES
        if params["TableName"] == aws.settings.vaults_table and operation == "Query":
            # Key rows and vault rows share the partition: each query is for one of the two kinds.
            assert projected in (set(VAULT_ATTRIBUTES), set(KEY_ATTRIBUTES))


def test_the_scope_index_holds_no_envelope(aws: AwsStack, dynamo: Backend) -> None:
    tenant = unique_id("tenant")
    dynamo.service.create_vault(tenant, "main")
    dynamo.service.seal_item(tenant, "main", "note", b"the cat is called Quantum", memory_scope=ALICE)
    rows = aws.dynamodb.query(
        TableName=aws.settings.items_table,
        IndexName="ScopeIndex",
        KeyConditionExpression="scope_pk = :s",
        ExpressionAttributeValues={":s": {"S": scope_pk(tenant, "main", ALICE)}},
    )["Items"]
    (row,) = rows
    assert row["scope_pk"]["S"] == f"TENANT#{tenant}#VAULT#main#SCOPE#user#alice"
    assert row["item_id"]["S"] == "note"
    assert not set(row) & SECRET_ATTRIBUTES
    table_row = aws.dynamodb.get_item(
        TableName=aws.settings.items_table, Key={"pk": row["pk"], "sk": row["sk"]}
    )["Item"]
    assert "envelope" in table_row  # the table has it; the index never copies it


def test_a_cursor_made_for_one_tenant_never_pages_through_another(aws: AwsStack, dynamo: Backend) -> None:
    mine, theirs = unique_id("tenant"), unique_id("tenant")
    for tenant in (mine, theirs):
        dynamo.service.create_vault(tenant, "main")
        for item_id in ("a", "b", "c"):
            dynamo.service.seal_item(tenant, "main", item_id, b"x", memory_scope=ALICE)
    their_cursor = dynamo.reader.list_items(theirs, "main", limit=1).cursor
    their_scope_cursor = dynamo.reader.list_items(theirs, "main", scope=ALICE, limit=1).cursor

    for cursor in (their_cursor, their_scope_cursor):
        for scope in (None, ALICE):
            with pytest.raises(InvalidRequestError):
                dynamo.reader.list_items(mine, "main", scope=scope, cursor=cursor)


def test_the_reader_built_from_settings_reads_this_deployment(aws: AwsStack, dynamo: Backend) -> None:
    tenant = unique_id("tenant")
    dynamo.service.create_vault(tenant, "main")
    reader = build_metadata_reader(aws.settings)
    assert [v.vault_id for v in reader.list_vaults(tenant).items] == ["main"]


def test_an_item_row_written_before_the_scope_index_is_not_found_by_scope(
    aws: AwsStack, dynamo: Backend
) -> None:
    """Rows without ``scope_pk`` (written before the index existed) are not in it: docs/envelope.md says
    so, and how to bring them in."""
    tenant = unique_id("tenant")
    dynamo.service.create_vault(tenant, "main")
    dynamo.service.seal_item(tenant, "main", "old", b"x", memory_scope=ALICE)
    key = {"pk": {"S": f"TENANT#{tenant}#VAULT#main"}, "sk": {"S": "ITEM#old#V#0000000001"}}
    aws.dynamodb.update_item(TableName=aws.settings.items_table, Key=key, UpdateExpression="REMOVE scope_pk")
    assert dynamo.reader.list_items(tenant, "main", scope=ALICE).items == ()
    assert dynamo.service.forget_scope(tenant, "main", ALICE).receipts == ()
    assert [i.item_id for i in dynamo.reader.list_items(tenant, "main").items] == ["old"]
