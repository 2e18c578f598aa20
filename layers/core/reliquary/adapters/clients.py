"""AWS clients and the root of trust, from the one Settings object (shared by every function's factory).

Clients come from botocore's session, not boto3's: boto3 adds resources and S3's managed transfers (it
imports s3transfer at import), which nothing here uses, and its ``Session.client`` is botocore's
``create_client`` with the same arguments. (powertools' idempotency still imports boto3 where it is used.)
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

import botocore.session
from botocore.config import Config

from reliquary.adapters.dynamodb import TableConfig
from reliquary.adapters.kms import KmsRootOfTrust
from reliquary.config import Settings
from reliquary.crypto.root import LocalRootOfTrust, RootOfTrust
from reliquary.errors import ConfigurationError
from reliquary.observability import quiet_aws_sdk

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

_BOTO_CONFIG = Config(retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=3, read_timeout=10)


@functools.cache
def _session() -> botocore.session.Session:
    # One session per process: each new session re-reads botocore's bundled service models.
    return botocore.session.get_session()


def aws_client(settings: Settings, service: str) -> Any:
    """A boto3 client for ``service`` in the configured region, at the local endpoint when one is set."""
    # Before: the session and the client log as they load. After: for the SDK modules they loaded.
    quiet_aws_sdk()
    client = _session().create_client(
        service,
        region_name=settings.region,
        endpoint_url=settings.endpoint_url,
        config=_BOTO_CONFIG,
    )
    quiet_aws_sdk()
    return client


def dynamodb_client(settings: Settings) -> DynamoDBClient:
    client: DynamoDBClient = aws_client(settings, "dynamodb")
    return client


def table_config(settings: Settings, table_name: str) -> TableConfig:
    """A table of this deployment, in the configured region, at the local endpoint when one is set."""
    return TableConfig(table_name, settings.region, settings.endpoint_url)


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
