"""Builds the context verifier from the one Settings object (once per cold start of verify-proof)."""

from __future__ import annotations

from reliquary.adapters.clients import dynamodb_client, table_config
from reliquary.adapters.zk_store import DynamoDBReplayStore, context_policy_store
from reliquary.config import Settings
from reliquary.zk.service import CircuitKey, ContextVerifier, load_circuit_keys, refuse_development_keys


def circuit_keys(settings: Settings) -> dict[str, CircuitKey]:
    """The verification keys: a real ceremony's from ``RELIQUARY_ZK_KEYS_DIR``, else the development
    ceremony's shipped with the core. Parsed, validated and prepared once per cold start."""
    keys = load_circuit_keys(folder=settings.zk_keys_dir)
    if settings.stage == "prod":
        # Fail closed, as with the local root of trust: production never verifies with keys whose
        # ceremony one party ran alone (that party could forge any proof).
        refuse_development_keys(keys)
    return keys


def build_context_verifier(settings: Settings) -> ContextVerifier:
    dynamodb = dynamodb_client(settings)
    return ContextVerifier(
        circuit_keys(settings),
        DynamoDBReplayStore(table_config(settings, settings.replay_table), dynamodb),
        context_policy_store(table_config(settings, settings.vaults_table), dynamodb),
        nonce_ttl_seconds=settings.nonce_ttl_seconds,
    )
