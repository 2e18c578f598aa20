"""Builds the adapters and the vault service from the one Settings object (once per cold start)."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config

from reliquary.adapters.dynamodb import (
    DynamoDBItemRepository,
    DynamoDBSigningKeyStore,
    DynamoDBVaultRepository,
    TableConfig,
)
from reliquary.adapters.kms import KmsRootOfTrust
from reliquary.adapters.s3 import S3BlobStore
from reliquary.config import Settings
from reliquary.crypto.root import LocalRootOfTrust, RootOfTrust
from reliquary.crypto.signing import SignatureAlgorithm
from reliquary.errors import ConfigurationError
from reliquary.vaults.service import VaultService, system_clock
from reliquary.vaults.service_keys import ServiceKeys

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

_BOTO_CONFIG = Config(retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=3, read_timeout=10)


@functools.cache
def _session() -> boto3.session.Session:
    # One session per process: each new session re-reads botocore's bundled service models.
    return boto3.session.Session()


def aws_client(settings: Settings, service: str) -> Any:
    """A boto3 client for ``service`` in the configured region, at the local endpoint when one is set."""
    return _session().client(
        service,  # type: ignore[call-overload]
        region_name=settings.region,
        endpoint_url=settings.endpoint_url,
        config=_BOTO_CONFIG,
    )


def dynamodb_client(settings: Settings) -> DynamoDBClient:
    client: DynamoDBClient = aws_client(settings, "dynamodb")
    return client


def build_root_of_trust(settings: Settings) -> RootOfTrust:
    if settings.root_of_trust == "kms":
        if not settings.kms_key_id:
            raise ConfigurationError("RELIQUARY_KMS_KEY_ID is required when the root of trust is kms")
        return KmsRootOfTrust(aws_client(settings, "kms"), settings.kms_key_id)
    if settings.stage == "prod":
        # Fail closed: production never runs on a development root key.
        raise ConfigurationError(
            "the local root of trust is for development only; set RELIQUARY_ROOT_OF_TRUST=kms"
        )
    return LocalRootOfTrust.from_file(settings.local_root_key_path)


def build_vault_service(settings: Settings) -> VaultService:
    vaults = TableConfig(settings.vaults_table, settings.region, settings.endpoint_url)
    items = TableConfig(settings.items_table, settings.region, settings.endpoint_url)
    root = build_root_of_trust(settings)
    dynamodb = dynamodb_client(settings)  # one client for every table (see adapters.dynamodb.bind_model)
    service_keys = ServiceKeys.load_or_create(
        DynamoDBSigningKeyStore(vaults, dynamodb),
        root,
        SignatureAlgorithm(settings.signature_algorithm),
        clock=system_clock,
        accepted=[SignatureAlgorithm(a) for a in settings.accepted_signature_algorithms],
    )
    return VaultService(
        vaults=DynamoDBVaultRepository(vaults, dynamodb),
        items=DynamoDBItemRepository(items, vaults=vaults, client=dynamodb),
        blobs=S3BlobStore(aws_client(settings, "s3"), settings.items_bucket),
        root=root,
        service_keys=service_keys,
        large_item_threshold=settings.large_item_threshold,
        max_item_bytes=settings.max_item_bytes,
        grant_ttl_seconds=settings.grant_ttl_seconds,
        vault_key_cache_seconds=settings.vault_key_cache_seconds,
    )
