"""The whole vault service as a cold start builds it (``build_vault_service``), on moto's DynamoDB, S3
and KMS: the golden path, tenant isolation through the table keys, nothing secret at rest, and grants
that read their approval back from the tenant's transparency log with the attestation chain it names
(``LoggedDecisions``: the chain from the audit bucket, the stage keys from the vaults table)."""

from __future__ import annotations

import base64
import json
import os
import time
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.client import BaseClient
from botocore.exceptions import ClientError

from reliquary.adapters.audit_factory import build_audit
from reliquary.adapters.audit_store import DynamoDBLogStore, S3TileStore
from reliquary.adapters.chain_store import chain_key
from reliquary.adapters.decisions import LoggedDecisions
from reliquary.adapters.dynamodb import DynamoDBSigningKeyStore, TableConfig
from reliquary.adapters.factory import build_root_of_trust, build_vault_service
from reliquary.adapters.stage_keys import stage_partition
from reliquary.audit import tiles
from reliquary.audit.log import TransparencyLog
from reliquary.audit.records import DecisionRecord, DeletionRecord, encode_record
from reliquary.audit.service import AuditService, log_key
from reliquary.crypto import envelope as env
from reliquary.crypto.envelope import Envelope, VaultKey
from reliquary.crypto.grants import open_grant
from reliquary.crypto.kem import HybridPrivateKey, requester_key_sha256
from reliquary.crypto.recovery import SealedShare, open_share
from reliquary.crypto.scope import VaultRef
from reliquary.crypto.shamir import combine
from reliquary.crypto.signing import SignatureAlgorithm
from reliquary.errors import (
    AttestationError,
    DecisionRequiredError,
    ItemExpiredError,
    ItemShreddedError,
    KeyVersionError,
    LogInconsistentError,
    NotFoundError,
    StorageUnavailableError,
    TransientError,
)
from reliquary.flow.attestation import Signer
from reliquary.vaults.models import BodyLocation, KeyStatus
from reliquary.vaults.service import IssuedGrant, VaultService
from tests.support.aws import AwsStack, StackApprovals
from tests.support.vaults import USER_SCOPE, ManualClock, grant_and_open, shared_moto_stack, unique_id

pytestmark = pytest.mark.integration

VAULT = "vault-1"
SMALL = b"the launch code is not 0000, it is RELIQUARY-7f3a"
LARGE_SIZE = 300 * 1024  # above the default 256 KiB threshold: the body goes to S3


@pytest.fixture(scope="module")
def requester() -> HybridPrivateKey:
    return HybridPrivateKey.generate()


@pytest.fixture(scope="module")
def aws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AwsStack]:
    """This module's moto stack, shared by its tests (each uses its own tenants)."""
    with shared_moto_stack(tmp_path_factory) as stack:
        yield stack


@pytest.fixture(scope="module")
def service(aws: AwsStack) -> VaultService:
    """Built once, as a cold start builds it."""
    return build_vault_service(aws.settings)


@pytest.fixture(scope="module")
def approvals(aws: AwsStack, audit: AuditService) -> StackApprovals:
    """Approvals as the access flow logs them on this stack (chains signed by the stage keys in the vaults
    table, stored in the audit bucket, records appended by the audit service): what grants read back."""
    return StackApprovals(aws.settings, audit)


@pytest.fixture
def tenant() -> str:
    return unique_id("tenant-a")


@pytest.fixture
def other() -> str:
    return unique_id("tenant-b")


def _object_versions(aws: AwsStack, key: str) -> list[dict[str, Any]]:
    page = aws.s3.list_object_versions(Bucket=aws.settings.items_bucket, Prefix=key)
    return [e for e in [*page.get("Versions", []), *page.get("DeleteMarkers", [])] if e["Key"] == key]


def _key_row(aws: AwsStack, tenant_id: str, version: int) -> dict[str, Any]:
    item: dict[str, Any] = aws.dynamodb.get_item(
        TableName=aws.tables["VaultsTable"],
        Key={"pk": {"S": f"TENANT#{tenant_id}"}, "sk": {"S": f"VAULT#{VAULT}#KEY#{version:010d}"}},
    )["Item"]
    return item


def _open(
    service: VaultService,
    approvals: StackApprovals,
    item_id: str,
    requester: HybridPrivateKey,
    *,
    tenant_id: str,
    version: int | None = None,
    now: int | None = None,
) -> bytes:
    return grant_and_open(
        service,
        approvals,
        tenant_id=tenant_id,
        vault_id=VAULT,
        item_id=item_id,
        requester=requester,
        now=now if now is not None else _now(),
        version=version,
    )


def _now() -> int:
    return int(time.time())


# --- the golden path -----------------------------------------------------------------------------------
def test_the_golden_path_on_dynamodb_s3_and_kms(
    aws: AwsStack, service: VaultService, approvals: StackApprovals, requester: HybridPrivateKey, tenant: str
) -> None:
    large = os.urandom(LARGE_SIZE)
    created = service.create_vault(tenant, VAULT)
    assert created.key.root_key_id == aws.settings.kms_key_id

    small_record = service.seal_item(tenant, VAULT, "small", SMALL, memory_scope=USER_SCOPE)
    large_record = service.seal_item(
        tenant, VAULT, "large", large, content_type="application/pdf", memory_scope=USER_SCOPE
    )

    assert small_record.body_location is BodyLocation.INLINE
    assert large_record.body_location is BodyLocation.S3
    assert large_record.blob_key is not None
    blob_key = large_record.blob_key
    assert blob_key.startswith(f"tenants/{tenant}/vaults/{VAULT}/items/large/")
    head = aws.s3.head_object(Bucket=aws.settings.items_bucket, Key=blob_key)
    assert head["ContentLength"] == LARGE_SIZE + 16
    [version_before] = _object_versions(aws, blob_key)
    assert _open(service, approvals, "small", requester, tenant_id=tenant) == SMALL
    assert _open(service, approvals, "large", requester, tenant_id=tenant) == large

    rotated = service.rotate_key(tenant, VAULT)
    assert rotated.version == 2
    fresh = service.seal_item(tenant, VAULT, "fresh", b"sealed under v2", memory_scope=USER_SCOPE)
    assert fresh.wrap_key_version == 2
    body_tag_before = Envelope.parse(large_record.envelope or b"").body_tag

    report = service.rewrap_vault(tenant, VAULT)

    assert (report.key_version, report.rewrapped, report.already_current, report.skipped_shredded) == (
        2,
        2,
        1,
        0,
    )
    rewrapped = Envelope.parse(service._items.get(tenant, VAULT, "large").envelope or b"")
    assert (rewrapped.wrap_key_version, rewrapped.sealed_key_version) == (2, 1)
    assert rewrapped.body_tag == body_tag_before
    assert _object_versions(aws, blob_key) == [version_before]  # the S3 body was not rewritten

    retired = service.retire_key(tenant, VAULT, 1)
    assert retired.status is KeyStatus.RETIRED
    row = _key_row(aws, tenant, 1)
    assert "wrapped_private_key" not in row
    assert row["status"] == {"S": "retired"}
    assert _open(service, approvals, "small", requester, tenant_id=tenant) == SMALL
    assert _open(service, approvals, "large", requester, tenant_id=tenant) == large
    assert _open(service, approvals, "fresh", requester, tenant_id=tenant) == b"sealed under v2"

    receipt = service.shred_item(tenant, VAULT, "large")

    assert receipt.versions == (1,)
    assert _object_versions(aws, blob_key) == []
    with pytest.raises(ItemShreddedError):
        _open(service, approvals, "large", requester, tenant_id=tenant)
    verifier = service.service_keys.keyring.get(
        receipt.signer_key_id, SignatureAlgorithm(receipt.signature_algorithm)
    )
    assert verifier is not None
    verifier.verify(receipt.signed_message(), receipt.signature)
    assert service.shred_item(tenant, VAULT, "large").shredded_at == receipt.shredded_at
    assert _open(service, approvals, "small", requester, tenant_id=tenant) == SMALL


def test_missing_things_are_not_found_not_a_storage_outage(
    service: VaultService, approvals: StackApprovals, requester: HybridPrivateKey, tenant: str
) -> None:
    """A missing row is NotFoundError (404), never StorageUnavailableError (503, which callers retry)."""
    service.create_vault(tenant, VAULT)
    service.seal_item(tenant, VAULT, "note", SMALL, memory_scope=USER_SCOPE)
    with pytest.raises(NotFoundError):
        service.rotate_key(tenant, "no-vault")
    with pytest.raises(NotFoundError):
        _open(service, approvals, "note", requester, tenant_id=tenant, version=2)
    with pytest.raises(NotFoundError):
        _open(service, approvals, "absent", requester, tenant_id=tenant)
    with pytest.raises(NotFoundError):
        service.retire_key(tenant, VAULT, 9)
    with pytest.raises(NotFoundError):
        service.shred_item(tenant, "no-vault", "note")
    with pytest.raises(KeyVersionError):
        service.retire_key(tenant, VAULT, 1)


def test_two_cold_starts_share_one_service_signing_key(
    aws: AwsStack, service: VaultService, approvals: StackApprovals, requester: HybridPrivateKey, tenant: str
) -> None:
    second = build_vault_service(aws.settings)
    assert second.service_keys.signer.key_id == service.service_keys.signer.key_id
    store = DynamoDBSigningKeyStore(TableConfig(aws.settings.vaults_table, aws.settings.region))
    assert len(store.list()) == 1

    service.create_vault(tenant, VAULT)
    service.seal_item(tenant, VAULT, "note", SMALL, memory_scope=USER_SCOPE)
    assert _open(second, approvals, "note", requester, tenant_id=tenant) == SMALL


def test_expire_due_shreds_expired_items_and_their_s3_versions(
    aws: AwsStack, service: VaultService, approvals: StackApprovals, requester: HybridPrivateKey, tenant: str
) -> None:
    clock = ManualClock(_now())
    service = VaultService(  # the same adapters, with a clock the test moves and a small threshold
        vaults=service._vaults,
        items=service._items,
        blobs=service._blobs,
        root=service._root,
        service_keys=service.service_keys,
        decisions=service._decisions,
        large_item_threshold=1024,
        clock=clock,
    )
    service.create_vault(tenant, VAULT)
    doomed = service.seal_item(
        tenant, VAULT, "doomed", os.urandom(4096), memory_scope=USER_SCOPE, expires_at=clock.now + 60
    )
    service.seal_item(tenant, VAULT, "kept", SMALL, memory_scope=USER_SCOPE, expires_at=clock.now + 3600)
    assert doomed.blob_key is not None
    assert len(_object_versions(aws, doomed.blob_key)) == 1

    clock.advance(61)
    with pytest.raises(ItemExpiredError):
        _open(service, approvals, "doomed", requester, tenant_id=tenant, now=clock.now)
    assert service.expire_due(tenant, VAULT) == ["doomed"]

    assert _object_versions(aws, doomed.blob_key) == []
    stored = service._items.get(tenant, VAULT, "doomed")
    assert stored.envelope is None
    assert stored.shredded_at == clock.now
    assert _open(service, approvals, "kept", requester, tenant_id=tenant, now=clock.now) == SMALL


# --- tenant isolation ----------------------------------------------------------------------------------
def test_tenants_are_kept_apart_by_their_dynamodb_keys(  # noqa: PLR0917  (fixtures)
    aws: AwsStack,
    service: VaultService,
    approvals: StackApprovals,
    requester: HybridPrivateKey,
    tenant: str,
    other: str,
) -> None:
    service.create_vault(tenant, VAULT)
    service.create_vault(other, VAULT)  # the same vault id: another vault
    service.seal_item(tenant, VAULT, "note", b"tenant a's note", memory_scope=USER_SCOPE)
    service.seal_item(tenant, VAULT, "only-a", os.urandom(LARGE_SIZE), memory_scope=USER_SCOPE)
    service.seal_item(other, VAULT, "note", b"tenant b's note", memory_scope=USER_SCOPE)

    assert _open(service, approvals, "note", requester, tenant_id=tenant) == b"tenant a's note"
    assert _open(service, approvals, "note", requester, tenant_id=other) == b"tenant b's note"
    with pytest.raises(NotFoundError):
        _open(service, approvals, "only-a", requester, tenant_id=other)
    with pytest.raises(NotFoundError):
        service.shred_item(other, VAULT, "only-a")
    service.rotate_key(other, VAULT)
    service.shred_item(other, VAULT, "note")
    assert _open(service, approvals, "note", requester, tenant_id=tenant) == b"tenant a's note"

    rows = [
        row
        for pk in (f"TENANT#{tenant}#VAULT#{VAULT}", f"TENANT#{other}#VAULT#{VAULT}")
        for row in aws.dynamodb.query(
            TableName=aws.tables["ItemsTable"],
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": pk}},
        )["Items"]
    ]
    assert {(r["tenant_id"]["S"], r["pk"]["S"], r["sk"]["S"]) for r in rows} == {
        (tenant, f"TENANT#{tenant}#VAULT#{VAULT}", "ITEM#note#V#0000000001"),
        (tenant, f"TENANT#{tenant}#VAULT#{VAULT}", "ITEM#only-a#V#0000000001"),
        (other, f"TENANT#{other}#VAULT#{VAULT}", "ITEM#note#V#0000000001"),
    }
    for row in rows:  # b's shred left a's item of the same id alone
        assert ("envelope" in row) is (row["tenant_id"]["S"] == tenant)
    # the service's and the stages' keys, and the pseudonym secret: rows of no tenant
    service_wide = {"SERVICE", "PSEUDONYM", *(stage_partition(s) for s in Signer)}
    for row in aws.dynamodb.scan(TableName=aws.tables["VaultsTable"])["Items"]:
        if row["pk"]["S"] not in service_wide:
            assert row["pk"]["S"] == f"TENANT#{row['tenant_id']['S']}"
    assert _key_row(aws, tenant, 1)["status"] == {"S": "active"}
    assert _key_row(aws, other, 1)["status"] == {"S": "previous"}
    for owner in (tenant, other):
        listed = aws.s3.list_objects_v2(Bucket=aws.settings.items_bucket, Prefix=f"tenants/{owner}/")
        assert len(listed.get("Contents", [])) == (1 if owner == tenant else 0)


# --- nothing secret at rest ----------------------------------------------------------------------------
def _attribute_bytes(value: Any) -> Iterator[bytes]:
    """Every byte string a DynamoDB attribute value holds, decoded the ways the adapters encode."""
    if "B" in value:
        yield bytes(value["B"])
    elif "S" in value:
        yield value["S"].encode()
        try:
            parsed = json.loads(value["S"])
        except ValueError:
            return
        yield from _json_bytes(parsed)
    elif "M" in value:
        for inner in value["M"].values():
            yield from _attribute_bytes(inner)
    elif "L" in value:
        for inner in value["L"]:
            yield from _attribute_bytes(inner)


def _json_bytes(value: Any) -> Iterator[bytes]:
    if isinstance(value, str):
        try:
            yield base64.b64decode(value, validate=True)
        except ValueError:
            yield value.encode()
    elif isinstance(value, dict):
        for inner in value.values():
            yield from _json_bytes(inner)
    elif isinstance(value, list):
        for inner in value:
            yield from _json_bytes(inner)


def _everything_at_rest(aws: AwsStack) -> list[bytes]:
    found: list[bytes] = []
    for table in aws.tables.values():
        for page in aws.dynamodb.get_paginator("scan").paginate(TableName=table):
            for item in page["Items"]:
                for value in item.values():
                    found.extend(_attribute_bytes(value))
    bucket = aws.settings.items_bucket
    for page in aws.s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
        for entry in page.get("Versions", []):
            found.append(entry["Key"].encode())
            body = aws.s3.get_object(Bucket=bucket, Key=entry["Key"], VersionId=entry["VersionId"])["Body"]
            found.append(body.read())
    return found


def _forms(secret: bytes) -> list[bytes]:
    return [secret, secret.hex().encode(), base64.b64encode(secret)]


def test_nothing_secret_is_stored_in_dynamodb_or_s3(
    aws: AwsStack, service: VaultService, approvals: StackApprovals, requester: HybridPrivateKey, tenant: str
) -> None:
    custodians = [HybridPrivateKey.generate() for _ in range(3)]
    created = service.create_vault(
        tenant,
        VAULT,
        custodians=[(f"custodian-{i}", k.public_key()) for i, k in enumerate(custodians)],
        recovery_threshold=2,
    )
    large = os.urandom(LARGE_SIZE)
    small_record = service.seal_item(tenant, VAULT, "small", SMALL, memory_scope=USER_SCOPE)
    large_record = service.seal_item(tenant, VAULT, "large", large, memory_scope=USER_SCOPE)
    assert _open(service, approvals, "large", requester, tenant_id=tenant) == large  # a grant was issued too

    root = build_root_of_trust(aws.settings)
    wrapped = _key_row(aws, tenant, 1)["wrapped_private_key"]["B"]
    assert created.vault.recovery is not None
    context = VaultRef(tenant, VAULT).key_context(
        1, public_key=created.key.public_key, recovery_public_key=created.vault.recovery.recovery_public_key
    )
    vault_private = root.unwrap(wrapped, context=context)
    assert len(vault_private) == 96
    assert vault_private not in wrapped
    assert (
        HybridPrivateKey.from_private_bytes(vault_private).public_key().to_bytes() == created.key.public_key
    )
    vault_key = VaultKey(1, HybridPrivateKey.from_private_bytes(vault_private))
    data_keys = [
        env.unwrap_data_key(
            Envelope.parse(r.envelope or b""),
            scope=r.scope,
            vault_key=vault_key,
            keyring=service.service_keys.keyring,
        )
        for r in (small_record, large_record)
    ]
    assert created.vault.recovery is not None
    shares = [
        open_share(
            SealedShare(c.custodian_id, c.public_key_fingerprint, c.sealed_share),
            vault=VaultRef(tenant, VAULT),
            custodian_private_key=key,
        )
        for c, key in zip(created.vault.recovery.custodians, custodians, strict=True)
    ]
    recovery_private = combine(shares[:2])
    secrets = {
        "small plaintext": SMALL,
        "requester private key": requester.private_bytes(),
        "vault private key": vault_private,
        "service signing secret": service.service_keys.signer.secret_bytes(),
        "recovery private key": recovery_private,
        **{f"data key {i}": key for i, key in enumerate(data_keys)},
        **{f"custodian {i} private key": k.private_bytes() for i, k in enumerate(custodians)},
        **{f"large plaintext @{at}": large[at : at + 64] for at in (0, LARGE_SIZE // 2, LARGE_SIZE - 64)},
    }

    at_rest = _everything_at_rest(aws)

    assert len(at_rest) > 20  # the scan saw the rows and the S3 body
    assert any(len(blob) == LARGE_SIZE + 16 for blob in at_rest)
    leaks = [
        name for name, secret in secrets.items() for form in _forms(secret) if any(form in b for b in at_rest)
    ]
    assert leaks == []


# --- grants read their approval back from the transparency log (LoggedDecisions) -----------------------
@pytest.fixture(scope="module")
def audit(aws: AwsStack) -> AuditService:
    """The real audit service on the same stack: what the RecordDecision task logs with."""
    return build_audit(aws.settings).service


def _ledger(aws: AwsStack) -> LoggedDecisions:
    """A fresh ledger, as a cold start builds it (nothing read until the first lookup)."""
    settings = aws.settings
    return LoggedDecisions(
        TableConfig(settings.audit_table, settings.region, settings.endpoint_url),
        settings.audit_bucket,
        vaults=TableConfig(settings.vaults_table, settings.region, settings.endpoint_url),
        s3=aws.s3,
    )


def _raw_log(aws: AwsStack) -> TransparencyLog:
    """The tenant's log without checkpoints (appends here are not published)."""
    settings = aws.settings
    store = DynamoDBLogStore(TableConfig(settings.audit_table, settings.region, settings.endpoint_url))
    return TransparencyLog(store, S3TileStore(aws.s3, settings.audit_bucket))


def _decision(tenant_id: str, request_id: str, requester: HybridPrivateKey, **changes: Any) -> DecisionRecord:
    fields: dict[str, Any] = {
        "request_id": request_id,
        "tenant_id": tenant_id,
        "vault_id": VAULT,
        "item_id": "note",
        "principal_hash": "5a" * 32,
        "decision": "approve",
        "policy_version": "9b" * 32,
        "time": _now(),
        "requester_key_sha256": requester_key_sha256(requester.public_key().to_bytes()),
    }
    fields.update(changes)
    return DecisionRecord(**fields)


def _approve(approvals: StackApprovals, tenant_id: str, request_id: str, requester: HybridPrivateKey) -> str:
    """An attested approval of version 1 of "note", logged now; the digest of its chain."""
    record = approvals.approve(
        tenant_id=tenant_id,
        vault_id=VAULT,
        item_id="note",
        request_id=request_id,
        requester_key_sha256=requester_key_sha256(requester.public_key().to_bytes()),
        item_version=1,
        time=_now(),
    )
    assert record.chain_sha256 is not None
    return record.chain_sha256


def _grant(
    service: VaultService, tenant_id: str, request_id: str, requester: HybridPrivateKey
) -> IssuedGrant:
    return service.grant_approved(
        request_id=request_id,
        tenant_id=tenant_id,
        vault_id=VAULT,
        item_id="note",
        requester_public_key=requester.public_key(),
    )


def test_a_grant_is_issued_for_the_attested_approval_logged_by_the_audit_service(
    service: VaultService,
    audit: AuditService,
    approvals: StackApprovals,
    requester: HybridPrivateKey,
    tenant: str,
) -> None:
    service.create_vault(tenant, VAULT)
    service.seal_item(tenant, VAULT, "note", SMALL, memory_scope=USER_SCOPE)

    with pytest.raises(DecisionRequiredError, match="no access decision"):
        _grant(service, tenant, "access-1", requester)
    _approve(approvals, tenant, "access-1", requester)
    issued = _grant(service, tenant, "access-1", requester)
    _, envelope = service.load_envelope(tenant, VAULT, "note", issued.record.version)
    assert (
        open_grant(
            issued.grant,
            envelope,
            requester_private_key=requester,
            service_keys=service.service_keys.keyring,
            now=_now(),
        )
        == SMALL
    )
    # A denial, an approval of another key, or an approval logged without its chain: refused.
    audit.append(
        tenant,
        [
            _decision(tenant, "access-2", requester, decision="deny"),
            _decision(tenant, "access-3", HybridPrivateKey.generate()),
            _decision(tenant, "access-4", requester),
        ],
    )
    with pytest.raises(DecisionRequiredError, match="not an approval"):
        _grant(service, tenant, "access-2", requester)
    with pytest.raises(DecisionRequiredError, match="another requester key"):
        _grant(service, tenant, "access-3", requester)
    with pytest.raises(DecisionRequiredError, match="carries no attestation chain"):
        _grant(service, tenant, "access-4", requester)


def test_a_chain_altered_or_missing_in_the_bucket_grants_nothing(
    aws: AwsStack, service: VaultService, approvals: StackApprovals, requester: HybridPrivateKey, tenant: str
) -> None:
    service.create_vault(tenant, VAULT)
    service.seal_item(tenant, VAULT, "note", SMALL, memory_scope=USER_SCOPE)
    chain_sha256 = _approve(approvals, tenant, "access-1", requester)
    bucket, key = aws.settings.audit_bucket, chain_key(tenant, chain_sha256)
    original = aws.s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    chain = json.loads(original)
    chain[1]["statement"]["claim"]["item_version"] = 2  # the trust statement scored another version

    aws.s3.put_object(Bucket=bucket, Key=key, Body=json.dumps(chain).encode())
    with pytest.raises(AttestationError, match="not the one the log names") as altered:
        _grant(service, tenant, "access-1", requester)
    aws.s3.delete_object(Bucket=bucket, Key=key)
    with pytest.raises(AttestationError, match="missing") as missing:
        _grant(service, tenant, "access-1", requester)
    assert altered.value.details == missing.value.details == {"check": "chain"}

    aws.s3.put_object(Bucket=bucket, Key=key, Body=original)
    assert _grant(service, tenant, "access-1", requester).record.version == 1


def test_the_ledger_reads_the_logged_entry_of_a_request_and_only_decisions(
    aws: AwsStack, requester: HybridPrivateKey, tenant: str
) -> None:
    records: list[Any] = [
        _decision(tenant, f"access-{i}", requester, item_id=f"item-{i}") for i in range(300)
    ]
    records[7] = DeletionRecord(
        request_id="access-7",
        tenant_id=tenant,
        vault_id=VAULT,
        item_id="item-7",
        versions=(1,),
        shredded_at=_now(),
        signer_key_id="00" * 8,
        signature_algorithm="ML-DSA-65",
        reason="requested",
    )
    log = _raw_log(aws)
    for start in range(0, 300, 90):
        log.append(tenant, [(log_key(r), encode_record(r)) for r in records[start : start + 90]])
    ledger = _ledger(aws)
    # The first bundle (full), and the second (partial: 44 entries): the index math of tlog-tiles.
    for index in (0, 1, 255, 256, 299):
        assert ledger.logged_decision(tenant, f"access-{index}") == records[index]
    assert ledger.logged_decision(tenant, "access-7") is None  # a deletion, not a decision
    assert ledger.logged_decision(tenant, "access-300") is None
    assert ledger.logged_decision(unique_id("tenant-c"), "access-1") is None  # another tenant's log


def test_a_lookup_is_three_reads_and_nothing_else(
    aws: AwsStack,
    audit: AuditService,
    requester: HybridPrivateKey,
    tenant: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """What the encrypt function's IAM allows: GetItem on the AuditTable (the request id's row and the
    head) and GetObject under logs/ in the AuditBucket; no BatchGetItem, no Query, no KMS call, no write."""
    audit.append(tenant, [_decision(tenant, "access-1", requester)])
    ledger = _ledger(aws)
    calls: list[tuple[str, str]] = []
    real = BaseClient._make_api_call  # type: ignore[attr-defined]

    def recorded(self: BaseClient, operation: str, params: dict[str, Any]) -> Any:
        key = params.get("Key")
        calls.append((operation, key["sk"]["S"] if isinstance(key, dict) else str(key)))
        return real(self, operation, params)

    with monkeypatch.context() as patch:
        patch.setattr(BaseClient, "_make_api_call", recorded)
        assert ledger.logged_decision(tenant, "access-1") is not None
        assert ledger.logged_decision(tenant, "access-2") is None
    assert calls == [
        ("GetItem", "REQ#decision#access-1"),  # the decisions' own id space
        ("GetItem", "HEAD"),
        ("GetObject", f"logs/{tenant}/tile/entries/000.p/1"),
        ("GetItem", "REQ#decision#access-2"),
    ]


@pytest.mark.parametrize(
    ("operation", "code"), [("GetItem", "ThrottlingException"), ("GetObject", "SlowDown")]
)
def test_a_log_that_cannot_be_read_is_a_transient_failure(  # noqa: PLR0917  (fixtures, parameters)
    aws: AwsStack,
    audit: AuditService,
    requester: HybridPrivateKey,
    tenant: str,
    monkeypatch: pytest.MonkeyPatch,
    operation: str,
    code: str,
) -> None:
    audit.append(tenant, [_decision(tenant, "access-1", requester)])
    ledger = _ledger(aws)
    real = BaseClient._make_api_call  # type: ignore[attr-defined]

    def failing(self: BaseClient, name: str, params: dict[str, Any]) -> Any:
        if name == operation:
            raise ClientError({"Error": {"Code": code, "Message": "injected"}}, name)
        return real(self, name, params)

    with monkeypatch.context() as patch:
        patch.setattr(BaseClient, "_make_api_call", failing)
        with pytest.raises(StorageUnavailableError):
            ledger.logged_decision(tenant, "access-1")
    assert ledger.logged_decision(tenant, "access-1") is not None


def test_a_decision_committed_but_not_yet_integrated_is_retried_not_refused(
    aws: AwsStack, requester: HybridPrivateKey, tenant: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    log, ledger = _raw_log(aws), _ledger(aws)
    record = _decision(tenant, "access-1", requester)

    def unavailable(self: S3TileStore, log_id: str, path: str, data: bytes) -> None:
        raise StorageUnavailableError("S3 is unavailable", aws_code="SlowDown")

    with monkeypatch.context() as patch:
        patch.setattr(S3TileStore, "write", unavailable)
        with pytest.raises(StorageUnavailableError):
            log.append(tenant, [(log_key(record), encode_record(record))])
    with pytest.raises(TransientError) as caught:
        ledger.logged_decision(tenant, "access-1")
    assert caught.value.retryable
    log.integrate(tenant)
    assert ledger.logged_decision(tenant, "access-1") == record


def test_a_log_altered_in_storage_is_refused_as_inconsistent(
    aws: AwsStack, requester: HybridPrivateKey, tenant: str
) -> None:
    log, ledger = _raw_log(aws), _ledger(aws)
    first, second = (_decision(tenant, f"access-{i}", requester) for i in (1, 2))
    log.append(tenant, [(log_key(r), encode_record(r)) for r in (first, second)])
    # The request id's row pointing at another request's entry (a grant for access-1 would use it).
    table = aws.settings.audit_table
    key = {"pk": {"S": f"LOG#{tenant}"}, "sk": {"S": "REQ#decision#access-2"}}
    aws.dynamodb.update_item(
        TableName=table, Key=key, UpdateExpression="SET #i = :i", ExpressionAttributeNames={"#i": "index"},
        ExpressionAttributeValues={":i": {"N": "0"}},
    )  # fmt: skip
    with pytest.raises(LogInconsistentError, match="another request"):
        ledger.logged_decision(tenant, "access-2")
    # An entry that is not a record.
    bundle = tiles.encode_bundle([encode_record(first), b'{"forged":true}'])
    aws.s3.put_object(
        Bucket=aws.settings.audit_bucket, Key=f"logs/{tenant}/tile/entries/000.p/2", Body=bundle
    )
    aws.dynamodb.update_item(
        TableName=table, Key=key, UpdateExpression="SET #i = :i", ExpressionAttributeNames={"#i": "index"},
        ExpressionAttributeValues={":i": {"N": "1"}},
    )  # fmt: skip
    with pytest.raises(LogInconsistentError, match="not a record"):
        ledger.logged_decision(tenant, "access-2")
    assert ledger.logged_decision(tenant, "access-1") == first


def test_a_decision_row_pointing_at_a_record_of_another_kind_is_refused_as_inconsistent(
    aws: AwsStack, tenant: str
) -> None:
    log, ledger = _raw_log(aws), _ledger(aws)
    deletion = DeletionRecord(
        request_id="access-1",
        tenant_id=tenant,
        vault_id=VAULT,
        item_id="note",
        versions=(1,),
        shredded_at=_now(),
        signer_key_id="00" * 8,
        signature_algorithm="ML-DSA-65",
        reason="requested",
    )
    log.append(tenant, [(log_key(deletion), encode_record(deletion))])
    assert ledger.logged_decision(tenant, "access-1") is None  # a deletion is in the other id space
    aws.dynamodb.put_item(
        TableName=aws.settings.audit_table,
        Item={"pk": {"S": f"LOG#{tenant}"}, "sk": {"S": "REQ#decision#access-1"}, "index": {"N": "0"}},
    )
    with pytest.raises(LogInconsistentError, match="another request"):
        ledger.logged_decision(tenant, "access-1")


def test_the_ledger_is_built_without_touching_the_log(aws: AwsStack, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    real = BaseClient._make_api_call  # type: ignore[attr-defined]

    def recorded(self: BaseClient, operation: str, params: dict[str, Any]) -> Any:
        calls.append(operation)
        return real(self, operation, params)

    with monkeypatch.context() as patch:
        patch.setattr(BaseClient, "_make_api_call", recorded)
        _ledger(aws)
    assert calls == []
