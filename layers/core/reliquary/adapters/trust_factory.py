"""Builds the trust service from the one Settings object (once per cold start of score-trust)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from reliquary.adapters.clients import build_root_of_trust, dynamodb_client, table_config
from reliquary.adapters.history_store import DynamoDBHistoryStore
from reliquary.adapters.pseudonym_store import load_pseudonyms
from reliquary.adapters.vault_policies import DynamoDBVaultPolicyStore
from reliquary.config import Settings
from reliquary.trust.policy import TrustPolicy
from reliquary.trust.service import TrustService

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

__all__ = ["build_trust_service", "dynamodb_client"]


def build_trust_service(settings: Settings, *, client: DynamoDBClient | None = None) -> TrustService:
    """The history and vault trust-policy stores on ``client`` (one is built when none is given; the
    function shares it with its idempotency store). The history names principals by pseudonym, under the
    deployment's secret unwrapped here, once per cold start."""
    if client is None:
        client = dynamodb_client(settings)
    pseudonyms = load_pseudonyms(settings, build_root_of_trust(settings), client)
    return TrustService(
        DynamoDBHistoryStore(table_config(settings, settings.history_table), client, pseudonyms=pseudonyms),
        DynamoDBVaultPolicyStore(
            table_config(settings, settings.vaults_table), TrustPolicy, kind="TRUST", client=client
        ),
    )
