"""The vault domain's ``DecisionLedger`` over the tenants' transparency logs: read-only, built lazily.

A grant needs the access decision logged for its request (``reliquary.vaults.decisions``). This reads it
back as the log stores it (``reliquary.adapters.audit_store``): the request id's row in the decisions' own
id space (``REQ#decision#<request id>``, see ``reliquary.audit.log.decision_key``) gives its leaf index
(a GetItem on the AuditTable), the head how far the log is integrated (a GetItem), and the entry bundle
that holds the leaf gives the entry itself (an S3 GET under ``logs/<tenant>/``); the record's attestation
chain comes from ``chains/<tenant>/`` and the stage keys from the vaults table's ``STAGE#`` partitions.
It writes nothing, holds no signing key and makes no KMS call of its own (S3 decrypts under the bucket's
key).

The audit modules are imported on the first lookup, not at import: most invocations of the encrypt
function never grant, and its cold start does not pay for the log's code.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from reliquary.adapters.chain_store import S3ChainStore
from reliquary.adapters.stage_keys import stage_key_directory
from reliquary.errors import InvalidRequestError, LogInconsistentError, TransientError
from reliquary.flow.keys import StageKeyDirectory

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

    from reliquary.adapters.audit_store import DynamoDBLogStore, S3TileStore
    from reliquary.adapters.dynamodb import TableConfig
    from reliquary.audit.records import DecisionRecord


class LoggedDecisions:
    """Decisions read from the AuditTable (``config``) and the AuditBucket (``bucket``), their attestation
    chains from the bucket's ``chains/`` and the stage keys that verify them from the vaults table."""

    def __init__(
        self,
        config: TableConfig,
        bucket: str,
        *,
        vaults: TableConfig,
        s3: S3Client,
        dynamodb: Any | None = None,
    ) -> None:
        self._config = config
        self._bucket = bucket
        self._s3 = s3
        self._dynamodb = dynamodb
        self._stores: tuple[DynamoDBLogStore, S3TileStore] | None = None
        self._chains = S3ChainStore(s3, bucket)
        self._stage_keys = stage_key_directory(vaults, dynamodb)  # read on the first grant

    @property
    def chains(self) -> S3ChainStore:
        return self._chains

    @property
    def stage_keys(self) -> StageKeyDirectory:
        return self._stage_keys

    def _open(self) -> tuple[DynamoDBLogStore, S3TileStore]:
        if self._stores is None:
            from reliquary.adapters.audit_store import (  # noqa: PLC0415  (the first grant, not the cold start)
                DynamoDBLogStore,
                S3TileStore,
            )

            self._stores = (
                DynamoDBLogStore(self._config, self._dynamodb),
                S3TileStore(self._s3, self._bucket),
            )
        return self._stores

    def logged_decision(self, tenant_id: str, request_id: str) -> DecisionRecord | None:
        from reliquary.audit import tiles  # noqa: PLC0415  (loaded with the stores)
        from reliquary.audit.log import decision_key  # noqa: PLC0415
        from reliquary.audit.records import DecisionRecord, decode_record  # noqa: PLC0415

        store, tile_store = self._open()
        # Only the decisions' id space: a record of another kind under this request id is not a decision.
        index = store.index(tenant_id, decision_key(request_id))
        if index is None:
            return None
        integrated = store.head(tenant_id).integrated
        if index >= integrated:
            # Committed but not yet in the tiles (the appender stopped in between): the next append or
            # a retried RecordDecision integrates it, so a retry of the grant can succeed.
            raise TransientError("the decision is committed but not yet integrated in the log; retry")
        ref = tiles.tile_at(None, index // tiles.TILE_WIDTH, integrated)
        bundle = None if ref is None else tile_store.read(tenant_id, ref.path)
        if ref is None or bundle is None:
            raise LogInconsistentError("an integrated entry bundle is missing", log_id=tenant_id, index=index)
        entry = tiles.decode_bundle(bundle, ref)[index % tiles.TILE_WIDTH]
        try:
            record = decode_record(entry)
        except InvalidRequestError:
            raise LogInconsistentError(
                "a logged entry is not a record", log_id=tenant_id, index=index
            ) from None
        if record.dedup_key != (tenant_id, request_id) or not isinstance(record, DecisionRecord):
            raise LogInconsistentError(
                "a decision's request id row points at another request's entry", log_id=tenant_id, index=index
            )
        return record
