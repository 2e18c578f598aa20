"""Builds the adapters and the vault service from the one Settings object (once per cold start)."""

from __future__ import annotations

from reliquary.adapters.clients import aws_client, build_root_of_trust, dynamodb_client, table_config
from reliquary.adapters.decisions import LoggedDecisions
from reliquary.adapters.dynamodb import (
    DynamoDBItemRepository,
    DynamoDBSigningKeyStore,
    DynamoDBVaultRepository,
)
from reliquary.adapters.permanent_factory import permanent_stores
from reliquary.adapters.s3 import S3BlobStore
from reliquary.config import Settings
from reliquary.crypto.signing import SignatureAlgorithm
from reliquary.vaults.permanent import BODIES_WALLET
from reliquary.vaults.service import VaultService, system_clock
from reliquary.vaults.service_keys import ServiceKeys

__all__ = [
    "aws_client",
    "bodies_wallet_address",
    "build_root_of_trust",
    "build_vault_service",
    "dynamodb_client",
]


def build_vault_service(settings: Settings) -> VaultService:
    vaults = table_config(settings, settings.vaults_table)
    items = table_config(settings, settings.items_table)
    root = build_root_of_trust(settings)
    dynamodb = dynamodb_client(settings)  # one client for every table (see adapters.dynamodb.bind_model)
    key_store = DynamoDBSigningKeyStore(vaults, dynamodb)
    service_keys = ServiceKeys.load_or_create(
        key_store,
        root,
        SignatureAlgorithm(settings.signature_algorithm),
        clock=system_clock,
        accepted=[SignatureAlgorithm(a) for a in settings.accepted_signature_algorithms],
    )
    s3 = aws_client(settings, "s3")
    return VaultService(
        vaults=DynamoDBVaultRepository(vaults, dynamodb),
        items=DynamoDBItemRepository(items, vaults=vaults, client=dynamodb),
        blobs=S3BlobStore(s3, settings.items_bucket),
        root=root,
        service_keys=service_keys,
        # Bodies of the vaults that opted in to IPFS or Arweave; a store is built on its first use.
        permanent=permanent_stores(settings, keys=key_store, root=root, purpose=BODIES_WALLET),
        # Grants only for attested approvals in the tenant's transparency log (read-only: no checkpoint keys).
        decisions=LoggedDecisions(
            table_config(settings, settings.audit_table),
            settings.audit_bucket,
            vaults=vaults,
            s3=s3,
            dynamodb=dynamodb,
        ),
        large_item_threshold=settings.large_item_threshold,
        max_item_bytes=settings.max_item_bytes,
        grant_ttl_seconds=settings.grant_ttl_seconds,
        approval_max_age_seconds=settings.approval_max_age_seconds,
        vault_key_cache_seconds=settings.vault_key_cache_seconds,
    )


def bodies_wallet_address(settings: Settings) -> str:
    """The address of the Arweave wallet the encrypt function pays for item bodies from."""
    from reliquary.adapters.permanent_factory import arweave_wallet_address  # noqa: PLC0415

    keys = DynamoDBSigningKeyStore(table_config(settings, settings.vaults_table), dynamodb_client(settings))
    return arweave_wallet_address(
        settings, keys=keys, root=build_root_of_trust(settings), purpose=BODIES_WALLET
    )
