"""Builds the context verifier from the one Settings object (once per cold start of verify-proof)."""

from __future__ import annotations

from reliquary.adapters.clients import dynamodb_client, table_config
from reliquary.adapters.zk_store import DynamoDBReplayStore, context_policy_store
from reliquary.config import Settings
from reliquary.zk.service import ContextVerifier, load_circuit_keys


def build_context_verifier(settings: Settings) -> ContextVerifier:
    dynamodb = dynamodb_client(settings)
    return ContextVerifier(
        load_circuit_keys(),  # parsed, validated and prepared once per cold start
        DynamoDBReplayStore(table_config(settings, settings.replay_table), dynamodb),
        context_policy_store(table_config(settings, settings.vaults_table), dynamodb),
        nonce_ttl_seconds=settings.nonce_ttl_seconds,
    )
