"""AWS under moto for tests: every resource the code touches, created from template.yaml's definitions.

Each test gets its own resource names (a random prefix), so tests stay isolated under pytest-xdist.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from infra.template import create_tables
from reliquary.adapters.chain_store import S3ChainStore
from reliquary.adapters.clients import aws_client, build_root_of_trust, dynamodb_client, table_config
from reliquary.adapters.stage_keys import stage_signer
from reliquary.audit.records import DecisionRecord
from reliquary.audit.service import AuditService
from reliquary.config import Settings, get_settings
from reliquary.flow.attestation import Signer
from reliquary.vaults.memory import approval_record
from tests.support.vaults import request_subject, signed_chain, store_chain

REGION = "us-east-1"


def _copy_each_table_once_per_transaction() -> None:
    """Make moto's TransactWriteItems snapshot each table once, not once per item of the transaction.

    moto (5.x) deep-copies the whole table for *every* item of a transaction, to roll back on failure:
    a 92-item audit commit on a table of a few thousand rows took ~0.4 s, and the 8-appender test spent
    most of its minutes there. One snapshot per table rolls back exactly the same; nothing else changes.
    """
    import copy
    import threading

    from moto.dynamodb import models
    from moto.dynamodb.models.table import Table

    if getattr(models.DynamoDBBackend.transact_write_items, "_reliquary_patched", False):
        return
    original = models.DynamoDBBackend.transact_write_items
    lock = threading.RLock()

    class _SnapshotOnce:
        def __init__(self) -> None:
            self.snapshots: dict[int, Any] | None = None

        def deepcopy(self, value: Any, memo: Any = None) -> Any:
            if self.snapshots is None or not isinstance(value, Table):
                return copy.deepcopy(value, memo)
            if id(value) not in self.snapshots:
                self.snapshots[id(value)] = copy.deepcopy(value)
            return self.snapshots[id(value)]

    shim = _SnapshotOnce()

    def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
        with lock:
            shim.snapshots = {}
            try:
                original(self, transact_items)
            finally:
                shim.snapshots = None

    transact_write_items._reliquary_patched = True  # type: ignore[attr-defined]
    vars(models)["copy"] = shim  # the module's `copy.deepcopy` calls now go through the shim
    models.DynamoDBBackend.transact_write_items = transact_write_items  # type: ignore[method-assign]


_copy_each_table_once_per_transaction()


@dataclass(frozen=True)
class AwsStack:
    settings: Settings
    dynamodb: Any
    s3: Any
    kms: Any
    tables: dict[str, str]


def fake_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",  # moto's documented dummy value
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
    }.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
        monkeypatch.delenv(name, raising=False)


@contextmanager
def moto_stack(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, *, root_of_trust: str = "kms"
) -> Iterator[AwsStack]:
    """moto in-process with the tables, bucket and KMS key; the RELIQUARY_* environment points at them."""
    fake_credentials(monkeypatch)
    with mock_aws():
        prefix = f"rq{uuid.uuid4().hex[:10]}"
        dynamodb = boto3.client("dynamodb", region_name=REGION)
        s3 = boto3.client("s3", region_name=REGION)
        kms = boto3.client("kms", region_name=REGION)
        tables = create_tables(dynamodb, prefix=prefix)
        bucket = f"{prefix}-items"
        s3.create_bucket(Bucket=bucket)
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
        audit_bucket = f"{prefix}-audit"
        s3.create_bucket(Bucket=audit_bucket)
        s3.put_bucket_versioning(Bucket=audit_bucket, VersioningConfiguration={"Status": "Enabled"})
        key_arn = kms.create_key(Description="reliquary test root")["KeyMetadata"]["Arn"]
        env = {
            "RELIQUARY_STAGE": "local",
            "RELIQUARY_VAULTS_TABLE": tables["VaultsTable"],
            "RELIQUARY_ITEMS_TABLE": tables["ItemsTable"],
            "RELIQUARY_IDEMPOTENCY_TABLE": tables["IdempotencyTable"],
            "RELIQUARY_ITEMS_BUCKET": bucket,
            "RELIQUARY_AUDIT_TABLE": tables["AuditTable"],
            "RELIQUARY_REPLAY_TABLE": tables["ReplayTable"],
            "RELIQUARY_HISTORY_TABLE": tables["HistoryTable"],
            "RELIQUARY_AGENT_MEMORY_TABLE": tables["AgentMemoryTable"],
            "RELIQUARY_IDENTITY_TABLE": tables["IdentityTable"],
            "RELIQUARY_APPROVALS_TABLE": tables["ApprovalsTable"],
            "RELIQUARY_AUDIT_BUCKET": audit_bucket,
            "RELIQUARY_ROOT_OF_TRUST": root_of_trust,
            "RELIQUARY_KMS_KEY_ID": key_arn,
            "RELIQUARY_LOCAL_ROOT_KEY_PATH": str(tmp_path / "root.key"),
            "POWERTOOLS_METRICS_NAMESPACE": "ReliquaryTest",
        }
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        get_settings.cache_clear()
        try:
            yield AwsStack(Settings(), dynamodb, s3, kms, tables)
        finally:
            get_settings.cache_clear()


class StackApprovals:
    """Approvals logged on the moto stack the way the access flow logs them: the chain signed by each
    function's stage key in its ``STAGE#<function>`` partition of the vaults table (created on first use
    and wrapped by the stack's root of trust, as verify-proof, score-trust and agent-vote do), stored in
    the audit bucket's ``chains/`` and named by the record the audit service appends to the tenant's log.
    What ``LoggedDecisions`` reads back for a grant."""

    def __init__(self, settings: Settings, audit: AuditService) -> None:
        vaults, client = table_config(settings, settings.vaults_table), dynamodb_client(settings)
        self._signers = {
            signer: stage_signer(vaults, signer, lambda: build_root_of_trust(settings), client)
            for signer in Signer
        }
        self._chains = S3ChainStore(aws_client(settings, "s3"), settings.audit_bucket)
        self._audit = audit

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
    ) -> DecisionRecord:
        named = {"tenant_id": tenant_id, "vault_id": vault_id, "item_id": item_id, "request_id": request_id}
        subject = request_subject(**named, requester_key_sha256=requester_key_sha256)
        chain = signed_chain(self._signers, subject, issued_at=time, item_version=item_version)
        record = approval_record(
            **named,
            requester_key_sha256=requester_key_sha256,
            time=time,
            chain_sha256=store_chain(self._chains, tenant_id, chain),
            item_version=item_version,
        )
        self._audit.append(tenant_id, [record])
        return record


@contextmanager
def serialized_moto_server() -> Iterator[str]:
    """A moto server on a free loopback port whose backend answers one request at a time.

    moto's in-memory backends are not thread-safe (concurrent DynamoDB transactions fail inside moto
    with "dictionary changed size during iteration"); AWS itself serialises conflicting writes per item.
    Clients stay concurrent: their requests interleave, each is applied atomically. Yields the endpoint.
    """
    import threading

    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from werkzeug.serving import make_server

    app = DomainDispatcherApplication(create_backend_app)
    lock = threading.Lock()

    def serialized(environ: Any, start_response: Any) -> Any:
        with lock:
            return list(app(environ, start_response))

    from infra.local.runtime import free_port

    port = free_port()
    server = make_server("127.0.0.1", port, serialized, threaded=True, request_handler=MotoRequestHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)
