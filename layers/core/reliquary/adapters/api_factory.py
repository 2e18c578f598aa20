"""Builds the API function's runtime from the one Settings object, once per cold start (on the first
request that needs it): the identity service, the Lambda and Step Functions clients, the read-only
metadata and audit readers, the chain store, the policy rows and the views of requests waiting for people.
Nothing here can unwrap a key or resume an execution."""

from __future__ import annotations

import time
from typing import Any

from reliquary.adapters.approvals_store import DynamoDBApprovalStore
from reliquary.adapters.audit_reader import build_audit_reader, service_keys_reader
from reliquary.adapters.catalog import build_metadata_reader
from reliquary.adapters.chain_store import S3ChainStore
from reliquary.adapters.clients import aws_client, dynamodb_client, table_config
from reliquary.adapters.identity_factory import build_identity_service
from reliquary.adapters.invoker import LambdaFunctions, StepFunctionsExecutions
from reliquary.adapters.vault_policies import DynamoDBVaultPolicyStore
from reliquary.agents.policy import QuorumPolicy
from reliquary.config import Settings
from reliquary.errors import ConfigurationError
from reliquary.gateway import ApiRuntime, Capability
from reliquary.trust.policy import TrustPolicy
from reliquary.zk.policy import ContextPolicy

# A presigned export download is valid this long.
EXPORT_URL_SECONDS = 300


def build_api(settings: Settings) -> ApiRuntime:
    if not settings.access_state_machine_arn:
        raise ConfigurationError("RELIQUARY_ACCESS_STATE_MACHINE_ARN is required by the API")
    dynamodb = dynamodb_client(settings)
    vaults = table_config(settings, settings.vaults_table)
    policies: dict[str, DynamoDBVaultPolicyStore[Any]] = {
        "context": DynamoDBVaultPolicyStore(vaults, ContextPolicy, kind="CONTEXT", client=dynamodb),
        "trust": DynamoDBVaultPolicyStore(vaults, TrustPolicy, kind="TRUST", client=dynamodb),
        "quorum": DynamoDBVaultPolicyStore(vaults, QuorumPolicy, kind="QUORUM", client=dynamodb),
    }

    def read_policy(tenant_id: str, vault_id: str, kind: str) -> dict[str, Any] | None:
        policy = policies[kind].get(tenant_id, vault_id)
        return None if policy is None else policy.model_dump(mode="json")

    s3 = aws_client(settings, "s3")

    def export_url(tenant_id: str, key: str) -> str:
        # The key is the one audit-append wrote for this tenant's export (exports/<tenant>/...).
        if not key.startswith(f"exports/{tenant_id}/"):
            raise ConfigurationError("an export was written outside the tenant's prefix")
        url: str = s3.generate_presigned_url(
            "get_object", Params={"Bucket": settings.audit_bucket, "Key": key}, ExpiresIn=EXPORT_URL_SECONDS
        )
        return url

    return ApiRuntime(
        settings=settings,
        identity=build_identity_service(settings),
        functions=LambdaFunctions(
            aws_client(settings, "lambda"),
            {
                Capability.ENCRYPT: settings.encrypt_function,
                Capability.VERIFY_PROOF: settings.verify_proof_function,
                Capability.SCORE_TRUST: settings.score_trust_function,
                Capability.AGENT_VOTE: settings.agent_vote_function,
                Capability.AUDIT_APPEND: settings.audit_append_function,
            },
        ),
        executions=StepFunctionsExecutions(
            aws_client(settings, "stepfunctions"), settings.access_state_machine_arn
        ),
        catalog=build_metadata_reader(settings),
        audit=build_audit_reader(settings),
        chains=S3ChainStore(s3, settings.audit_bucket),
        # Read through its TENANT# rows only (the API's role may read nothing else of the table).
        approvals=DynamoDBApprovalStore(table_config(settings, settings.approvals_table), dynamodb),
        read_policy=read_policy,
        service_keys=service_keys_reader(settings),
        export_url=export_url,
        clock=lambda: int(time.time()),
    )
