"""Builds the read-only ``AuditReader`` from the one Settings object (the API's audit routes).

It reads the AuditTable (``LOG#<tenant>``: head, checkpoint, index rows; ``CHECKPOINT``: the checkpoint
keys' public halves), the AuditBucket (``logs/<tenant>/``: tiles and entry bundles) and the vaults
table's ``STAGE#<function>`` partitions (the stage keys' public halves). It writes nothing and makes no
KMS call of its own: no root of trust is built, and no secret is unwrapped (reading the KMS-encrypted
table and bucket goes through DynamoDB and S3). Kept apart from ``audit_factory``, whose appender's
modules (the decision stage, pseudonyms, key unwrapping) a reader's cold start does not need.
"""

from __future__ import annotations

from collections.abc import Mapping

from reliquary.adapters.audit_store import CHECKPOINT_PARTITION, DynamoDBLogStore, S3TileStore
from reliquary.adapters.clients import aws_client, dynamodb_client, table_config
from reliquary.adapters.dynamodb import DynamoDBSigningKeyStore
from reliquary.adapters.stage_keys import stage_key_store
from reliquary.audit.log import TransparencyLog
from reliquary.audit.reader import AuditReader, PublishedCheckpointKeys
from reliquary.config import Settings
from reliquary.flow.attestation import Signer
from reliquary.flow.keys import read_stage_keys
from reliquary.vaults.ports import SigningKeyStore


class PublishedStageKeys:
    """The stage keys as ``get_checkpoint`` publishes them (``StageKeys.to_json``), public halves only:
    read until every signing function has created its key (on its first use), then kept."""

    def __init__(self, stores: Mapping[Signer, SigningKeyStore]) -> None:
        self._stores = stores
        self._keys: list[dict[str, str]] | None = None

    def __call__(self) -> list[dict[str, str]]:
        if self._keys is not None:
            return self._keys
        keys = read_stage_keys(self._stores).to_json()
        if {key["signer"] for key in keys} >= {signer.value for signer in self._stores}:
            self._keys = keys
        return keys


def build_audit_reader(settings: Settings) -> AuditReader:
    audit = table_config(settings, settings.audit_table)
    vaults = table_config(settings, settings.vaults_table)
    dynamodb = dynamodb_client(settings)
    store = DynamoDBLogStore(audit, dynamodb)
    return AuditReader(
        TransparencyLog(store, S3TileStore(aws_client(settings, "s3"), settings.audit_bucket)),
        store,
        store,
        origin_prefix=settings.audit_origin,
        verifiers=PublishedCheckpointKeys(
            DynamoDBSigningKeyStore(audit, dynamodb, partition=CHECKPOINT_PARTITION), settings.audit_origin
        ),
        stage_keys=PublishedStageKeys(
            {signer: stage_key_store(vaults, signer, dynamodb) for signer in Signer}
        ),
    )
