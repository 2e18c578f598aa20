"""Builds the context verifier and the VerifyContext stage from the one Settings object (once per cold
start of verify-proof)."""

from __future__ import annotations

import time

from reliquary.adapters.clients import build_root_of_trust, dynamodb_client, table_config
from reliquary.adapters.stage_keys import stage_signer
from reliquary.adapters.zk_store import DynamoDBReplayStore, context_policy_store
from reliquary.config import Settings
from reliquary.flow.attestation import Signer
from reliquary.zk.service import CircuitKey, ContextVerifier, load_circuit_keys, refuse_development_keys
from reliquary.zk.stage import VerifyContextStage


def circuit_keys(settings: Settings) -> dict[str, CircuitKey]:
    """The verification keys: a real ceremony's from ``RELIQUARY_ZK_KEYS_DIR``, else the development
    ceremony's shipped with the core. Parsed, validated and prepared once per cold start."""
    keys = load_circuit_keys(folder=settings.zk_keys_dir)
    if settings.stage == "prod":
        # Fail closed, as with the local root of trust: production never verifies with keys whose
        # ceremony one party ran alone (that party could forge any proof).
        refuse_development_keys(keys)
    return keys


class VerifyProofRuntime:
    """The verifier (keys prepared at cold start) and the VerifyContext stage (its signing key unwrapped
    on the first verification: issuing nonces and setting policies never touch it)."""

    def __init__(self, settings: Settings) -> None:
        dynamodb = dynamodb_client(settings)
        vaults = table_config(settings, settings.vaults_table)
        self.verifier = ContextVerifier(
            circuit_keys(settings),
            DynamoDBReplayStore(table_config(settings, settings.replay_table), dynamodb),
            context_policy_store(vaults, dynamodb),
            nonce_ttl_seconds=settings.nonce_ttl_seconds,
        )
        signer = stage_signer(vaults, Signer.VERIFY_PROOF, lambda: build_root_of_trust(settings), dynamodb)
        self.stage = VerifyContextStage(self.verifier, signer, clock=lambda: int(time.time()))


def build_verify_proof(settings: Settings) -> VerifyProofRuntime:
    return VerifyProofRuntime(settings)
