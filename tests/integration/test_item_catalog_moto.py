"""The trust stage's read-only ``ItemCatalog`` on moto's DynamoDB, held to the in-memory fake's answers.

One scenario (labels per version, rotation and rewrap, expiry before and after the sweep, shredding, a
version sealed after a shred, other tenants and vaults, malformed ids) runs against the vault service and
the catalog on both backends, and both must give the expected answer at every step. Then what only the
DynamoDB adapter can show: rows from before labels read as ``restricted``, and a label is one projected
Query on the items table (no envelope, no other table, no S3, no KMS).
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from botocore.client import BaseClient
from botocore.exceptions import ClientError

from reliquary.adapters.dynamodb import (
    DynamoDBItemCatalog,
    DynamoDBItemRepository,
    DynamoDBSigningKeyStore,
    DynamoDBVaultRepository,
    TableConfig,
)
from reliquary.adapters.s3 import S3BlobStore
from reliquary.crypto.root import LocalRootOfTrust
from reliquary.crypto.signing import SignatureAlgorithm
from reliquary.errors import ReliquaryError, StorageUnavailableError
from reliquary.vaults.labels import ItemLabel
from reliquary.vaults.memory import InMemoryItemCatalog
from reliquary.vaults.ports import ItemCatalog, ItemRepository
from reliquary.vaults.service import VaultService
from reliquary.vaults.service_keys import ServiceKeys
from tests.support.aws import AwsStack
from tests.support.vaults import T0, USER_SCOPE, ManualClock, memory_stack, shared_moto_stack, unique_id

pytestmark = pytest.mark.integration

VAULT = "vault-1"
NOTE = b"the cat is called Quantum"


@pytest.fixture(scope="module")
def aws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AwsStack]:
    """This module's moto stack, shared by its tests (each uses its own tenants)."""
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
    items: ItemRepository
    catalog: ItemCatalog
    clock: ManualClock


@pytest.fixture(scope="module")
def dynamo(aws: AwsStack) -> Backend:
    """The vault service on the DynamoDB and S3 adapters (a local root: KMS is not what is tested here),
    and the catalog over the items table alone, both on one clock the tests move."""
    clock = ManualClock()
    vaults, items = _configs(aws)
    root = LocalRootOfTrust.generate()
    repository = DynamoDBItemRepository(items, vaults=vaults, client=aws.dynamodb)
    service = VaultService(
        vaults=DynamoDBVaultRepository(vaults, aws.dynamodb),
        items=repository,
        blobs=S3BlobStore(aws.s3, aws.settings.items_bucket),
        root=root,
        service_keys=ServiceKeys.load_or_create(
            DynamoDBSigningKeyStore(vaults, aws.dynamodb), root, SignatureAlgorithm.ML_DSA_65, clock=clock
        ),
        large_item_threshold=1024,
        clock=clock,
    )
    return Backend(service, repository, DynamoDBItemCatalog(items, aws.dynamodb, clock=clock), clock)


@pytest.fixture(params=["memory", "dynamodb"])
def backend(request: pytest.FixtureRequest) -> Backend:
    if request.param == "memory":
        stack = memory_stack()
        return Backend(
            stack.service, stack.items, InMemoryItemCatalog(stack.items, clock=stack.clock), stack.clock
        )
    dynamo: Backend = request.getfixturevalue("dynamo")
    dynamo.clock.now = T0
    return dynamo


def _answer(call: Callable[[], ItemLabel]) -> ItemLabel | str:
    """A label, or the code of the error refusing it."""
    try:
        return call()
    except ReliquaryError as exc:
        return exc.code


def test_the_catalog_gives_the_same_answers_on_dynamodb_as_in_memory(backend: Backend) -> None:
    tenant, service, clock = unique_id("tenant"), backend.service, backend.clock
    answers: list[tuple[str, ItemLabel | str]] = []

    def ask(step: str, item_id: str = "note", *, tenant_id: str = tenant, vault_id: str = VAULT) -> None:
        answers.append((step, _answer(lambda: backend.catalog.label(tenant_id, vault_id, item_id))))

    def seal(item_id: str, plaintext: bytes = NOTE, **kwargs: Any) -> None:
        service.seal_item(tenant, VAULT, item_id, plaintext, memory_scope=USER_SCOPE, **kwargs)

    service.create_vault(tenant, VAULT)
    ask("nothing sealed yet")
    seal("note", sensitivity="public")
    ask("v1 public")
    seal("note")
    ask("v2 unlabelled")
    seal("note", bytes(4096), sensitivity="confidential")  # a large body: it lives in S3
    ask("v3 confidential")
    service.rotate_key(tenant, VAULT)
    service.rewrap_vault(tenant, VAULT)
    ask("after rotate and rewrap")
    seal("diary", sensitivity="internal", expires_at=T0 + 60)
    ask("before expiry", "diary")
    clock.advance(60)
    ask("at expiry", "diary")
    service.expire_due(tenant, VAULT)
    ask("after the sweep", "diary")
    service.shred_item(tenant, VAULT, "note")
    ask("shredded")
    seal("note", sensitivity="internal")
    ask("sealed after the shred")
    ask("another tenant", tenant_id=unique_id("tenant"))
    ask("another vault", vault_id="vault-2")
    ask("a malformed item id", "a#b")
    ask("a malformed vault id", vault_id="a/b")

    assert answers == [
        ("nothing sealed yet", "not_found"),
        ("v1 public", ItemLabel(1, "public")),
        ("v2 unlabelled", ItemLabel(2, "restricted")),
        ("v3 confidential", ItemLabel(3, "confidential")),
        ("after rotate and rewrap", ItemLabel(3, "confidential")),
        ("before expiry", ItemLabel(1, "internal")),
        ("at expiry", "item_expired"),
        ("after the sweep", "item_shredded"),
        ("shredded", "item_shredded"),
        ("sealed after the shred", ItemLabel(4, "internal")),
        ("another tenant", "not_found"),
        ("another vault", "not_found"),
        ("a malformed item id", "invalid_request"),
        ("a malformed vault id", "invalid_request"),
    ]
    stored = [(r.version, r.sensitivity) for r in backend.items.versions(tenant, VAULT, "note")]
    assert stored == [(1, "public"), (2, "restricted"), (3, "confidential"), (4, "internal")]


# --- DynamoDB only -------------------------------------------------------------------------------------
def _row_key(tenant: str, item_id: str, version: int) -> dict[str, Any]:
    return {"pk": {"S": f"TENANT#{tenant}#VAULT#{VAULT}"}, "sk": {"S": f"ITEM#{item_id}#V#{version:010d}"}}


def _row(aws: AwsStack, tenant: str, item_id: str, version: int) -> dict[str, Any]:
    item: dict[str, Any] = aws.dynamodb.get_item(
        TableName=aws.settings.items_table, Key=_row_key(tenant, item_id, version), ConsistentRead=True
    )["Item"]
    return item


def test_the_label_is_a_plain_attribute_of_the_item_row(aws: AwsStack, dynamo: Backend) -> None:
    tenant = unique_id("tenant")
    dynamo.service.create_vault(tenant, VAULT)
    dynamo.service.seal_item(tenant, VAULT, "note", NOTE, memory_scope=USER_SCOPE, sensitivity="internal")
    dynamo.service.seal_item(tenant, VAULT, "note", NOTE, memory_scope=USER_SCOPE)
    assert _row(aws, tenant, "note", 1)["sensitivity"] == {"S": "internal"}
    assert _row(aws, tenant, "note", 2)["sensitivity"] == {"S": "restricted"}  # the default, written out


@pytest.mark.parametrize(
    "update",
    [
        {"UpdateExpression": "REMOVE sensitivity"},
        {"UpdateExpression": "SET sensitivity = :v", "ExpressionAttributeValues": {":v": {"S": "top"}}},
    ],
    ids=["absent (sealed before labels)", "unknown value"],
)
def test_a_row_without_a_known_label_reads_as_restricted(
    aws: AwsStack, dynamo: Backend, update: dict[str, Any]
) -> None:
    tenant = unique_id("tenant")
    dynamo.service.create_vault(tenant, VAULT)
    dynamo.service.seal_item(tenant, VAULT, "note", NOTE, memory_scope=USER_SCOPE, sensitivity="public")
    aws.dynamodb.update_item(TableName=aws.settings.items_table, Key=_row_key(tenant, "note", 1), **update)

    assert dynamo.catalog.label(tenant, VAULT, "note") == ItemLabel(1, "restricted")
    assert dynamo.items.get(tenant, VAULT, "note").sensitivity == "restricted"


def _recorded_calls(monkeypatch: pytest.MonkeyPatch, call: Callable[[], object]) -> list[tuple[str, Any]]:
    calls: list[tuple[str, Any]] = []
    real = BaseClient._make_api_call  # type: ignore[attr-defined]

    def recorded(self: BaseClient, operation: str, params: dict[str, Any]) -> Any:
        calls.append((operation, params))
        return real(self, operation, params)

    with monkeypatch.context() as patch:
        patch.setattr(BaseClient, "_make_api_call", recorded)
        with contextlib.suppress(ReliquaryError):  # a refusal is a read like any other
            call()
    return calls


def test_a_label_is_one_projected_query_on_the_items_table(
    aws: AwsStack, dynamo: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the score-trust role needs: dynamodb:Query on the items table, for four attributes."""
    tenant = unique_id("tenant")
    dynamo.service.create_vault(tenant, VAULT)
    dynamo.service.seal_item(tenant, VAULT, "note", bytes(4096), memory_scope=USER_SCOPE)  # body in S3
    dynamo.service.seal_item(tenant, VAULT, "gone", NOTE, memory_scope=USER_SCOPE)
    dynamo.service.shred_item(tenant, VAULT, "gone")

    for item_id in ("note", "gone", "absent"):
        calls = _recorded_calls(monkeypatch, functools.partial(dynamo.catalog.label, tenant, VAULT, item_id))
        assert [name for name, _ in calls] == ["Query"]
        params = calls[0][1]
        assert params["TableName"] == aws.settings.items_table
        assert params["ConsistentRead"] is True
        assert params["Limit"] == 1
        assert params["ScanIndexForward"] is False
        names = params["ExpressionAttributeNames"]
        projected = {
            names.get(part.strip(), part.strip()) for part in params["ProjectionExpression"].split(",")
        }
        assert projected == {"version", "sensitivity", "expires_at", "shredded_at"}
        assert set(DynamoDBItemCatalog.ATTRIBUTES) == projected


def test_the_catalog_reports_a_throttled_read_as_transient(
    aws: AwsStack, dynamo: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    tenant = unique_id("tenant")
    dynamo.service.create_vault(tenant, VAULT)
    dynamo.service.seal_item(tenant, VAULT, "note", NOTE, memory_scope=USER_SCOPE, sensitivity="public")
    real = BaseClient._make_api_call  # type: ignore[attr-defined]

    def throttled(self: BaseClient, operation: str, params: dict[str, Any]) -> Any:
        if operation == "Query":
            raise ClientError({"Error": {"Code": "ThrottlingException", "Message": "injected"}}, operation)
        return real(self, operation, params)

    with monkeypatch.context() as patch:
        patch.setattr(BaseClient, "_make_api_call", throttled)
        with pytest.raises(StorageUnavailableError) as caught:
            dynamo.catalog.label(tenant, VAULT, "note")
    assert caught.value.retryable is True
    assert dynamo.catalog.label(tenant, VAULT, "note") == ItemLabel(1, "public")


def test_the_catalog_needs_only_the_items_table(aws: AwsStack) -> None:
    """Built from the items table's name alone: no vaults table, bucket or key to reach or be granted."""
    tenant = unique_id("tenant")
    _, items = _configs(aws)
    aws.dynamodb.put_item(
        TableName=aws.settings.items_table,
        Item={
            **_row_key(tenant, "note", 7),
            "version": {"N": "7"},
            "sensitivity": {"S": "confidential"},
            "envelope": {"B": b"not read"},
        },
    )
    assert DynamoDBItemCatalog(items, clock=lambda: T0).label(tenant, VAULT, "note") == ItemLabel(
        7, "confidential"
    )
