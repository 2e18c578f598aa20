"""Builds the score-trust runtime from the one Settings object (once per cold start of score-trust)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING

from reliquary.adapters.clients import build_root_of_trust, dynamodb_client, table_config
from reliquary.adapters.dynamodb import DynamoDBItemCatalog
from reliquary.adapters.history_store import DynamoDBHistoryStore
from reliquary.adapters.idempotency import Once
from reliquary.adapters.pseudonym_store import load_pseudonyms
from reliquary.adapters.stage_keys import stage_key_directory, stage_signer
from reliquary.adapters.vault_policies import DynamoDBVaultPolicyStore
from reliquary.config import Settings
from reliquary.flow.attestation import Signer
from reliquary.flow.state import FlowState, TrustOutcome
from reliquary.trust.policy import TrustPolicy
from reliquary.trust.service import TrustService
from reliquary.trust.stage import ScoreTrustStage

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

# What must match when a request id is reused: everything of the request the score reads, besides the
# clock, the history and the vault's policy (which is why a retry gets the stored result): the request
# and what its proof showed (not the context's signature: a re-signed context is the same context).
SCORE_PAYLOAD = (
    "[flow.vault_id, flow.item_id, flow.principal, flow.purpose, flow.region, flow.nonce,"
    " flow.requester_public_key, flow.context.verified, flow.context.claims]"
)


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


class ScoreTrustRuntime:
    """The trust service, the signing stage and its idempotent score (on the idempotency table)."""

    def __init__(self, settings: Settings) -> None:
        self._client = dynamodb_client(settings)
        self.service = build_trust_service(settings, client=self._client)
        self._vaults = table_config(settings, settings.vaults_table)
        directory = stage_key_directory(self._vaults, self._client)
        root = functools.partial(build_root_of_trust, settings)
        self.stage = ScoreTrustStage(
            self.service,
            DynamoDBItemCatalog(table_config(settings, settings.items_table), self._client),
            stage_signer(self._vaults, Signer.SCORE_TRUST, root, self._client, directory=directory),
            directory,
        )
        self._once = Once(
            table_name=settings.idempotency_table,
            client=self._client,
            payload_jmespath=SCORE_PAYLOAD,
            expires_after_seconds=settings.idempotency_ttl_seconds,
            key_jmespath="[flow.tenant_id, flow.request_id]",
        )

    def register_lambda_context(self, context: object) -> None:
        self._once.register_lambda_context(context)

    def score(self, state: FlowState, *, started_at: int) -> TrustOutcome:
        """ScoreTrust, scoring once per (tenant, request id) for the idempotency TTL."""

        def once(compute: Callable[[], TrustOutcome]) -> TrustOutcome:
            stored = self._once(
                {"flow": state.model_dump(mode="json")}, lambda _: compute().model_dump(mode="json")
            )
            return TrustOutcome.model_validate(stored)

        return self.stage.score(state, started_at=started_at, once=once)


def build_score_trust(settings: Settings) -> ScoreTrustRuntime:
    return ScoreTrustRuntime(settings)
