"""Builds the audit service from the one Settings object (once per cold start of audit-append).

Kept apart from ``factory`` so the other functions do not import the audit log's modules at cold start.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

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
from reliquary.audit.anchor import CheckpointAnchorer, anchoring_off
from reliquary.audit.checkpoint import CHECKPOINT_ALGORITHMS
from reliquary.audit.log import TransparencyLog
from reliquary.audit.note import NoteSigner
from reliquary.audit.service import AuditService, CheckpointKeys
from reliquary.audit.stage import RecordDecisionStage
from reliquary.config import Settings
from reliquary.crypto.root import RootOfTrust
from reliquary.vaults.ports import SigningKeyStore
from reliquary.vaults.service_keys import CHECKPOINT_SIGNING, load_or_create_signing_keys

if TYPE_CHECKING:
    from reliquary.adapters.dynamodb import TableConfig


@dataclass(frozen=True, slots=True)
class AuditRuntime:
    service: AuditService
    # The RecordDecision task: the decision's chain checked, stored beside the log and named in the record;
    # principals named by the deployment's pseudonym (reliquary.crypto.pseudonym), as the trust history
    # and the agents' memories name them.
    decisions: RecordDecisionStage
    # The checkpoint anchorer, built on the first anchoring action (its node client, perhaps its wallet);
    # InvalidRequestError where anchoring is off.
    anchorer: Callable[[], CheckpointAnchorer]


def build_anchorer(
    settings: Settings,
    service: AuditService,
    audit: TableConfig,
    dynamodb: object,
    *,
    keys: SigningKeyStore,
    root: RootOfTrust,
) -> CheckpointAnchorer:
    """The anchorer of ``settings.audit_anchor_backend`` (not "none"), paying on Arweave from the wallet
    of ``ANCHORS_WALLET`` sealed in ``keys`` beside the checkpoint keys (or the KMS wallet key)."""
    # Imported here: only anchoring runs load the node clients and the wallet.
    from reliquary.adapters.anchor_store import DynamoDBAnchorStore  # noqa: PLC0415
    from reliquary.adapters.arweave_status import ArweaveBlocks  # noqa: PLC0415
    from reliquary.adapters.permanent_factory import build_permanent_store  # noqa: PLC0415
    from reliquary.audit.anchor import CheckpointAnchorer  # noqa: PLC0415
    from reliquary.vaults.permanent import ANCHORS_WALLET, PermanentBackend  # noqa: PLC0415

    backend = PermanentBackend(settings.audit_anchor_backend)
    store = build_permanent_store(settings, backend, keys=keys, root=root, purpose=ANCHORS_WALLET)
    blocks = None
    if backend is PermanentBackend.ARWEAVE and settings.arweave_url is not None:
        blocks = ArweaveBlocks(settings.arweave_url, timeout=settings.permanent_timeout_seconds)
    return CheckpointAnchorer(
        service,
        DynamoDBAnchorStore(audit, dynamodb),
        store,
        backend,
        blocks=blocks,
        clock=lambda: int(time.time()),
    )


def build_audit(settings: Settings) -> AuditRuntime:
    audit = table_config(settings, settings.audit_table)
    dynamodb = dynamodb_client(settings)
    s3 = aws_client(settings, "s3")
    root = build_root_of_trust(settings)
    checkpoint_keys = DynamoDBSigningKeyStore(audit, dynamodb, partition=CHECKPOINT_PARTITION)
    keys = load_or_create_signing_keys(
        checkpoint_keys,
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
    anchorer: Callable[[], CheckpointAnchorer] = anchoring_off
    if settings.audit_anchor_backend != "none":
        anchorer = functools.cache(
            lambda: build_anchorer(settings, service, audit, dynamodb, keys=checkpoint_keys, root=root)
        )
    return AuditRuntime(service, decisions, anchorer)


def anchors_wallet_address(settings: Settings) -> str:
    """The address of the Arweave wallet audit-append pays for checkpoint anchors from."""
    from reliquary.adapters.permanent_factory import arweave_wallet_address  # noqa: PLC0415
    from reliquary.vaults.permanent import ANCHORS_WALLET  # noqa: PLC0415

    audit = table_config(settings, settings.audit_table)
    keys = DynamoDBSigningKeyStore(audit, dynamodb_client(settings), partition=CHECKPOINT_PARTITION)
    return arweave_wallet_address(
        settings, keys=keys, root=build_root_of_trust(settings), purpose=ANCHORS_WALLET
    )
