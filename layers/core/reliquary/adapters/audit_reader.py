"""Builds the read-only ``AuditReader`` from the one Settings object (the API's audit routes).

It reads the AuditTable (``LOG#<tenant>``: head, checkpoint, index rows, anchor rows; ``CHECKPOINT``:
the checkpoint keys' public halves), the AuditBucket (``logs/<tenant>/``: tiles and entry bundles) and
the vaults table's ``STAGE#<function>`` partitions (the stage keys' public halves) and, for requesters, its
``SERVICE`` partition (the grant and envelope signing keys' public halves). It writes nothing and makes no
KMS call of its own: no root of trust is built, and no secret is unwrapped (reading the KMS-encrypted
table and bucket goes through DynamoDB and S3). Kept apart from ``audit_factory``, whose appender's
modules (the decision stage, pseudonyms, key unwrapping) a reader's cold start does not need.
"""

from __future__ import annotations

import base64
import hmac
from collections.abc import Mapping

from reliquary.adapters.anchor_store import DynamoDBAnchorStore
from reliquary.adapters.audit_store import CHECKPOINT_PARTITION, DynamoDBLogStore, S3TileStore
from reliquary.adapters.clients import aws_client, dynamodb_client, table_config
from reliquary.adapters.dynamodb import DynamoDBSigningKeyStore
from reliquary.adapters.stage_keys import stage_key_store
from reliquary.audit.log import TransparencyLog
from reliquary.audit.reader import AuditReader, PublishedCheckpointKeys
from reliquary.config import Settings
from reliquary.crypto.signing import key_id_for
from reliquary.flow.attestation import Signer
from reliquary.flow.keys import read_stage_keys
from reliquary.vaults.ports import SigningKeyStore
from reliquary.vaults.service_keys import SERVICE_ALGORITHMS


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


class PublishedServiceKeys:
    """The service's grant and envelope signing keys (``SERVICE`` rows of the vaults table) as a requester
    needs them to check a grant and the sealed item it opens: ``algorithm``, ``key_id`` (hex) and
    ``public_key`` (base64), public halves only. Read on every call (one query): a key added since (a
    new algorithm) is published at once.

    Nothing is unwrapped here, so nothing vouches for the rows (the encrypt function does, at each cold
    start, and refuses to start on an altered one); a row that is not a key of an accepted algorithm whose
    key id names its public key is no service key and is not published. A client that wants more than
    storage's word pins the keys it was given out of band."""

    def __init__(self, store: SigningKeyStore) -> None:
        self._store = store

    def __call__(self) -> list[dict[str, str]]:
        accepted = {algorithm.value: algorithm for algorithm in SERVICE_ALGORITHMS}
        published = []
        for key in self._store.list():
            algorithm = accepted.get(key.algorithm)
            if algorithm is None or not hmac.compare_digest(
                key_id_for(algorithm, key.public_key), key.key_id
            ):
                continue
            published.append(
                {
                    "algorithm": algorithm.value,
                    "key_id": key.key_id.hex(),
                    "public_key": base64.b64encode(key.public_key).decode("ascii"),
                }
            )
        return published


def service_keys_reader(settings: Settings) -> PublishedServiceKeys:
    """The published service keys, read from the vaults table's ``SERVICE`` partition."""
    store = DynamoDBSigningKeyStore(table_config(settings, settings.vaults_table), dynamodb_client(settings))
    return PublishedServiceKeys(store)


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
        anchors=DynamoDBAnchorStore(audit, dynamodb),
    )
