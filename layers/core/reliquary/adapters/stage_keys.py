"""The stage keys in the vaults table: ``STAGE#<function>`` partitions, one per signing function (its
wrapped ML-DSA-65 key; template.yaml lets only that function write its partition, and every function
that checks chains read them all)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from reliquary.adapters.dynamodb import DynamoDBSigningKeyStore, TableConfig
from reliquary.crypto.root import RootOfTrust
from reliquary.flow.attestation import Signer, StageSigner
from reliquary.flow.keys import LazyStageSigner, StageKeyDirectory, load_stage_signer, read_stage_keys


def stage_partition(signer: Signer) -> str:
    return f"STAGE#{signer.value}"


def stage_key_store(
    vaults: TableConfig, signer: Signer, client: Any | None = None
) -> DynamoDBSigningKeyStore:
    return DynamoDBSigningKeyStore(vaults, client, partition=stage_partition(signer))


def stage_signer(
    vaults: TableConfig,
    signer: Signer,
    root: Callable[[], RootOfTrust],
    client: Any | None = None,
    *,
    directory: StageKeyDirectory | None = None,
) -> StageSigner:
    """This function's own stage key: unwrapped on the first statement it signs (created on the very
    first ever), then kept for the container's life; ``directory`` learns it at once."""
    return LazyStageSigner(
        signer,
        lambda: load_stage_signer(
            signer, stage_key_store(vaults, signer, client), root(), clock=lambda: int(time.time())
        ),
        on_load=None if directory is None else directory.learn,
    )


def stage_key_directory(vaults: TableConfig, client: Any | None = None) -> StageKeyDirectory:
    """Every function's published stage keys, read on first use (no KMS call: public halves only)."""
    stores = {signer: stage_key_store(vaults, signer, client) for signer in Signer}
    return StageKeyDirectory(lambda: read_stage_keys(stores))
