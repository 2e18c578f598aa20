"""Builds the audit service from the one Settings object (once per cold start of audit-append).

Kept apart from ``factory`` so the other functions do not import the audit log's modules at cold start.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from reliquary.adapters.audit_store import (
    CHECKPOINT_PARTITION,
    DynamoDBLogStore,
    S3ExportSink,
    S3TileStore,
)
from reliquary.adapters.chain_store import S3ChainStore
from reliquary.adapters.clients import aws_client, build_root_of_trust, dynamodb_client, table_config
from reliquary.adapters.dynamodb import DynamoDBSigningKeyStore
from reliquary.adapters.pseudonym_store import load_pseudonyms
from reliquary.adapters.stage_keys import stage_key_directory
from reliquary.audit.checkpoint import CHECKPOINT_ALGORITHMS
from reliquary.audit.log import TransparencyLog
from reliquary.audit.note import NoteSigner
from reliquary.audit.service import AuditService, CheckpointKeys
from reliquary.audit.stage import RecordDecisionStage
from reliquary.config import Settings
from reliquary.vaults.service_keys import CHECKPOINT_SIGNING, load_or_create_signing_keys


@dataclass(frozen=True, slots=True)
class AuditRuntime:
    service: AuditService
    # The RecordDecision task: the decision's chain checked, stored beside the log and named in the record;
    # principals named by the deployment's pseudonym (reliquary.crypto.pseudonym), as the trust history
    # and the agents' memories name them.
    decisions: RecordDecisionStage


def build_audit(settings: Settings) -> AuditRuntime:
    audit = table_config(settings, settings.audit_table)
    dynamodb = dynamodb_client(settings)
    s3 = aws_client(settings, "s3")
    root = build_root_of_trust(settings)
    keys = load_or_create_signing_keys(
        DynamoDBSigningKeyStore(audit, dynamodb, partition=CHECKPOINT_PARTITION),
        root,
        CHECKPOINT_ALGORITHMS,
        clock=lambda: int(time.time()),
        purpose=CHECKPOINT_SIGNING,
    )
    store = DynamoDBLogStore(audit, dynamodb)
    tile_store = S3TileStore(s3, settings.audit_bucket)
    service = AuditService(
        TransparencyLog(store, tile_store),
        tile_store,
        store,
        CheckpointKeys(tuple(NoteSigner(settings.audit_origin, keys[a]) for a in CHECKPOINT_ALGORITHMS)),
        origin_prefix=settings.audit_origin,
        exports=S3ExportSink(s3, settings.audit_bucket),
        checkpoint_interval=settings.audit_checkpoint_interval_ms / 1000,
        promise_integration=settings.audit_promise_integration_ms / 1000,
    )
    pseudonyms = load_pseudonyms(settings, root, dynamodb)  # unwrapped once per cold start
    decisions = RecordDecisionStage(
        service,
        stage_key_directory(table_config(settings, settings.vaults_table), dynamodb),
        S3ChainStore(s3, settings.audit_bucket),
        pseudonym=pseudonyms.of,
        clock=lambda: int(time.time()),
    )
    return AuditRuntime(service, decisions)
