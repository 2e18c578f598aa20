"""The decision index and the AuditReader on DynamoDB and S3 (moto), built from Settings as the API will
build it: index rows committed in the entry's own transaction, an item's decisions paged from DynamoDB,
entries and proofs that verify with the published keys alone, the keys read without KMS, tampering
refused, and nothing but GetItem, Query and GetObject on the log's own partitions and objects."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from reliquary.adapters import audit_reader as reader_factory
from reliquary.adapters import clients
from reliquary.adapters.audit_factory import AuditRuntime, build_audit
from reliquary.adapters.audit_reader import build_audit_reader
from reliquary.adapters.audit_store import DynamoDBLogStore
from reliquary.adapters.clients import table_config
from reliquary.audit import tiles
from reliquary.audit.index import DecisionRef, ItemDecision
from reliquary.audit.log import Batch, DuplicateRequestError, LogHead
from reliquary.audit.merkle import SHA256
from reliquary.audit.note import NoteVerifier, Policy
from reliquary.audit.reader import AuditReader
from reliquary.audit.receipts import Receipt, verify_receipt
from reliquary.audit.records import DecisionRecord, decode_record, encode_record
from reliquary.config import Settings
from reliquary.errors import InvalidRequestError, LogInconsistentError
from tests.support.audit import decision, deletion
from tests.support.aws import AwsStack
from tests.support.vaults import shared_moto_stack

pytestmark = pytest.mark.integration
VAULT, ITEM = "agent-memory", "customer-42-notes"


@dataclass
class Calls:
    """The AWS calls a reader made: (service, operation, partition or object key)."""

    seen: list[tuple[str, str, str]] = field(default_factory=list)
    services: list[str] = field(default_factory=list)

    def hook(self, service: str) -> Any:
        def record(params: dict[str, Any], model: Any, **_: Any) -> None:
            self.seen.append((service, model.name, _target(params)))

        return record


def _target(params: dict[str, Any]) -> str:
    if "Key" in params and isinstance(params["Key"], str):  # S3
        return str(params["Key"])
    if "Key" in params:  # DynamoDB GetItem
        return str(params["Key"]["pk"]["S"])
    names = {v: k for k, v in params.get("ExpressionAttributeNames", {}).items()}
    match = re.search(rf"{re.escape(names['pk'])} = (:\w+)", params["KeyConditionExpression"])
    assert match is not None
    return str(params["ExpressionAttributeValues"][match.group(1)]["S"])


@dataclass(frozen=True)
class Stack:
    aws: AwsStack
    audit: AuditRuntime
    calls: Calls

    @property
    def settings(self) -> Settings:
        return self.aws.settings

    def reader(self) -> AuditReader:
        """A reader as the API builds one (each a cold start of its own), its AWS calls recorded."""
        return build_audit_reader(self.settings)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with shared_moto_stack(tmp_path_factory) as aws, pytest.MonkeyPatch.context() as patch:
        calls = Calls()

        def aws_client(settings: Settings, service: str) -> Any:
            client = clients.aws_client(settings, service)
            calls.services.append(service)
            client.meta.events.register("before-parameter-build", calls.hook(service))
            return client

        def dynamodb_client(settings: Settings) -> Any:
            client = clients.dynamodb_client(settings)
            calls.services.append("dynamodb")
            client.meta.events.register("before-parameter-build", calls.hook("dynamodb"))
            return client

        patch.setattr(reader_factory, "aws_client", aws_client)
        patch.setattr(reader_factory, "dynamodb_client", dynamodb_client)
        yield Stack(aws, build_audit(aws.settings), calls)


def _tenant() -> str:
    return f"t-{uuid.uuid4().hex[:10]}"


def _verifiers(reader: AuditReader) -> list[NoteVerifier]:
    return [NoteVerifier.from_vkey(k) for k in reader.verifier_keys()]


def test_index_rows_are_written_with_their_entries_and_paged_from_dynamodb(stack: Stack) -> None:
    tenant = _tenant()
    service = stack.audit.service
    on_item: list[DecisionRecord] = []
    for n in range(7):
        first = decision(f"d-{n}", tenant, decision="deny" if n == 2 else "approve", time=1_795_651_200 + n)
        service.append(
            tenant, [first, deletion(f"x-{n}", tenant), decision(f"o-{n}", tenant, item_id="other-item")]
        )
        on_item.append(first)
    rows = stack.aws.dynamodb.query(
        TableName=stack.settings.audit_table,
        KeyConditionExpression="pk = :pk AND begins_with(sk, :item)",
        ExpressionAttributeValues={":pk": {"S": f"LOG#{tenant}"}, ":item": {"S": f"ITEM#{VAULT}#{ITEM}#"}},
    )["Items"]
    assert [r["sk"]["S"] for r in rows] == [f"ITEM#{VAULT}#{ITEM}#{3 * n:015d}" for n in range(7)]
    assert rows[2]["decision"] == {"S": "deny"}
    assert rows[2]["request_id"] == {"S": "d-2"}
    reader = stack.reader()
    page = reader.item_decisions(tenant, VAULT, ITEM, limit=3)
    second = reader.item_decisions(tenant, VAULT, ITEM, limit=3, cursor=page.cursor)
    third = reader.item_decisions(tenant, VAULT, ITEM, limit=3, cursor=second.cursor)
    assert third.cursor is None
    listed = [*page.decisions, *second.decisions, *third.decisions]
    assert listed == [ItemDecision(3 * n, r.request_id, r.decision, r.time) for n, r in enumerate(on_item)]
    with pytest.raises(InvalidRequestError):
        reader.item_decisions(tenant, VAULT, "other-item", cursor=page.cursor)
    with pytest.raises(InvalidRequestError):
        reader.item_decisions(_tenant(), VAULT, ITEM, cursor=page.cursor)


def test_an_entry_and_its_proof_from_dynamodb_and_s3_verify_with_the_published_keys(stack: Stack) -> None:
    tenant = _tenant()
    records = [decision(f"req-{i}", tenant) for i in range(300)]
    for start in range(0, 300, 45):
        stack.audit.service.append(tenant, records[start : start + 45])
    earlier_size = 135
    reader = stack.reader()
    # The keys as audit-append holds them (unwrapped through KMS), read here from their public halves.
    assert reader.verifier_keys() == stack.audit.service.verifier_keys
    text = reader.checkpoint_text(tenant)
    assert text.encode() == stack.audit.service.checkpoint(tenant).note
    verifiers = _verifiers(reader)
    for index in (0, 134, 255, 256, 299):
        proved = reader.entry(tenant, index)
        assert proved.entry == encode_record(records[index])
        assert proved.checkpoint == text
        receipt = Receipt(
            reader.origin(tenant), f"req-{index}", index, text.encode(), 300, proved.inclusion_proof
        )
        checkpoint = verify_receipt(
            receipt, proved.entry, verifiers, origin=reader.origin(tenant), required=Policy.all_of(*verifiers)
        )
        assert checkpoint.size == 300
    smaller = reader.entry(tenant, 100, tree_size=earlier_size)
    assert smaller.tree_size == earlier_size
    assert smaller.checkpoint is None
    assert reader.consistency(tenant, earlier_size).new_size == 300


def test_the_reader_publishes_what_get_checkpoint_publishes(stack: Stack) -> None:
    from reliquary.actions.audit import run_audit_action
    from reliquary.contracts.audit import GetCheckpointRequest
    from tests.support.aws import StackApprovals

    tenant = _tenant()
    StackApprovals(stack.settings, stack.audit.service).approve(
        tenant_id=tenant,
        vault_id=VAULT,
        item_id=ITEM,
        request_id="access-1",
        requester_key_sha256="ab" * 32,
        item_version=1,
        time=1_795_651_200,
    )
    fresh = build_audit(stack.settings)  # after the stage keys exist, as a new cold start reads them
    published = run_audit_action(
        fresh.service,
        fresh.decisions,
        GetCheckpointRequest(action="get_checkpoint", tenant_id=tenant),
    )
    reader = stack.reader()
    assert reader.checkpoint_text(tenant) == published["checkpoint"]
    assert reader.verifier_keys() == published["verifier_keys"]
    assert reader.stage_keys() == published["stage_keys"]
    assert len(reader.stage_keys()) == 3
    (row,) = reader.item_decisions(tenant, VAULT, ITEM).decisions
    assert (row.request_id, row.decision) == ("access-1", "approve")
    record = decode_record(reader.entry(tenant, row.index).entry)
    assert isinstance(record, DecisionRecord)
    assert record.chain_sha256 is not None


def test_the_reader_only_reads_its_tenants_log_and_public_keys_and_never_calls_kms(stack: Stack) -> None:
    tenant = _tenant()
    stack.audit.service.append(tenant, [decision(f"d-{i}", tenant) for i in range(20)])
    stack.calls.seen.clear()
    stack.calls.services.clear()
    reader = stack.reader()
    reader.checkpoint_text(tenant)
    reader.entry(tenant, 3)
    reader.entry(tenant, 3, tree_size=10)
    reader.consistency(tenant, 4, 20)
    reader.item_decisions(tenant, VAULT, ITEM, limit=5)
    reader.verifier_keys()
    reader.stage_keys()
    assert "kms" not in stack.calls.services
    operations = {(service, operation) for service, operation, _ in stack.calls.seen}
    assert operations == {("dynamodb", "GetItem"), ("dynamodb", "Query"), ("s3", "GetObject")}
    targets = {target for service, _, target in stack.calls.seen if service == "dynamodb"}
    assert {f"LOG#{tenant}", "CHECKPOINT", "STAGE#agent-vote"} <= targets
    for service, _, target in stack.calls.seen:
        if service == "s3":
            assert target.startswith(f"logs/{tenant}/tile/")
        else:
            assert target in {f"LOG#{tenant}", "CHECKPOINT"} or target.startswith("STAGE#")


def _store(stack: Stack) -> DynamoDBLogStore:
    return DynamoDBLogStore(table_config(stack.settings, stack.settings.audit_table))


def test_a_commit_refused_by_dynamodb_writes_no_index_row(stack: Stack) -> None:
    tenant = _tenant()
    stack.audit.service.append(tenant, [decision("d-1", tenant)])
    store = _store(stack)
    head = store.head(tenant)
    entry = encode_record(decision("d-2", tenant))
    grown, _ = head.compact_range.extend([SHA256.hash_leaf(entry)])
    new_head = LogHead(grown.size, grown.hashes, head.integrated, head.revision + 1)
    ref = DecisionRef(VAULT, ITEM, "d-2", "approve", 1)

    def batch(request_id: str) -> Batch:
        return Batch(head.size, (entry,), (request_id,), (ref,))

    # The request id is logged already: the whole transaction is cancelled, its index row with it.
    with pytest.raises(DuplicateRequestError):
        store.commit(tenant, expected_revision=head.revision, head=new_head, batch=batch("decision#d-1"))
    # A row planted at the leaf this commit takes cancels it too: nothing of it is written.
    stack.aws.dynamodb.put_item(
        TableName=stack.settings.audit_table,
        Item={"pk": {"S": f"LOG#{tenant}"}, "sk": {"S": f"ITEM#{VAULT}#{ITEM}#{1:015d}"}},
    )
    with pytest.raises(LogInconsistentError):
        store.commit(tenant, expected_revision=head.revision, head=new_head, batch=batch("decision#d-2"))
    assert store.head(tenant) == head
    assert store.indexes(tenant, ["decision#d-2"]) == {}
    stack.aws.dynamodb.delete_item(
        TableName=stack.settings.audit_table,
        Key={"pk": {"S": f"LOG#{tenant}"}, "sk": {"S": f"ITEM#{VAULT}#{ITEM}#{1:015d}"}},
    )
    store.commit(tenant, expected_revision=head.revision, head=new_head, batch=batch("decision#d-2"))
    assert store.item_decisions(tenant, VAULT, ITEM, first=0, end=2, limit=10) == [
        ItemDecision(0, "d-1", "approve", 1_795_651_200),
        ItemDecision(1, "d-2", "approve", 1),
    ]


@pytest.mark.parametrize(
    "changes",
    [
        {"decision": {"S": "maybe"}},
        {"index": {"N": "7"}},
        {"request_id": {"S": ""}},
    ],
)
def test_a_corrupt_index_row_is_refused(stack: Stack, changes: dict[str, Any]) -> None:
    tenant = _tenant()
    stack.audit.service.append(tenant, [decision("d-1", tenant)])
    key = {"pk": {"S": f"LOG#{tenant}"}, "sk": {"S": f"ITEM#{VAULT}#{ITEM}#{0:015d}"}}
    row = stack.aws.dynamodb.get_item(TableName=stack.settings.audit_table, Key=key)["Item"]
    stack.aws.dynamodb.put_item(TableName=stack.settings.audit_table, Item={**row, **changes})
    with pytest.raises(LogInconsistentError):
        stack.reader().item_decisions(tenant, VAULT, ITEM)


def test_an_entry_bundle_altered_in_s3_is_refused(stack: Stack) -> None:
    tenant = _tenant()
    stack.audit.service.append(tenant, [decision(f"d-{i}", tenant) for i in range(5)])
    ref = tiles.tile_at(None, 0, 5)
    assert ref is not None
    key = f"logs/{tenant}/{ref.path}"
    bundle = tiles.decode_bundle(
        stack.aws.s3.get_object(Bucket=stack.settings.audit_bucket, Key=key)["Body"].read(), ref
    )
    bundle[2] = encode_record(decision("d-2", tenant, decision="deny"))
    stack.aws.s3.put_object(Bucket=stack.settings.audit_bucket, Key=key, Body=tiles.encode_bundle(bundle))
    reader = stack.reader()
    with pytest.raises(LogInconsistentError):
        reader.entry(tenant, 2)
    assert reader.entry(tenant, 1).entry == encode_record(decision("d-1", tenant))
