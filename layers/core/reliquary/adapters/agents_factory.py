"""Builds the agent-vote runtime from the one Settings object (once per cold start of agent-vote: the only
function that imports the agents; LangGraph loads later, when a vote first builds an agent's graph)."""

from __future__ import annotations

from reliquary.adapters.agent_memory import DynamoDBMemoryStore
from reliquary.adapters.approvals_store import DynamoDBApprovalStore, StepFunctionsTaskCallbacks
from reliquary.adapters.clients import aws_client, build_root_of_trust, dynamodb_client, table_config
from reliquary.adapters.identity_store import DynamoDBIdentityRepository
from reliquary.adapters.pseudonym_store import load_pseudonyms
from reliquary.adapters.stage_keys import stage_key_directory, stage_signer
from reliquary.adapters.vault_policies import DynamoDBVaultPolicyStore
from reliquary.agents.approvals import ApprovalService
from reliquary.agents.memory import MemoryBox
from reliquary.agents.policy import QuorumPolicy
from reliquary.agents.service import AgentVoteService
from reliquary.agents.stage import AgentVoteStage
from reliquary.config import Settings
from reliquary.flow.attestation import Signer


def build_agent_vote(settings: Settings) -> AgentVoteStage:
    client = dynamodb_client(settings)
    root = build_root_of_trust(settings)
    vaults = table_config(settings, settings.vaults_table)
    memories = DynamoDBMemoryStore(table_config(settings, settings.agent_memory_table), client)
    service = AgentVoteService(
        memories,
        # Both unwrapped once per cold start: the memory key, and the pseudonym secret naming principals.
        MemoryBox.load_or_create(memories, root, load_pseudonyms(settings, root, client)),
        DynamoDBVaultPolicyStore(vaults, QuorumPolicy, kind="QUORUM", client=client),
    )
    directory = stage_key_directory(vaults, client)
    signer = stage_signer(vaults, Signer.AGENT_VOTE, lambda: root, client, directory=directory)
    approvals = ApprovalService(
        store=DynamoDBApprovalStore(table_config(settings, settings.approvals_table), client),
        # Persons and their passkeys: agent-vote reads them (and advances a counter) itself.
        people=DynamoDBIdentityRepository(table_config(settings, settings.identity_table), client),
        callbacks=StepFunctionsTaskCallbacks(aws_client(settings, "stepfunctions")),
        rp_id=settings.webauthn_rp_id,
        origins=settings.webauthn_origins,
        signer=signer,
        keys=directory,
        policy=service.policy,
        clock=lambda: service.now,
    )
    return AgentVoteStage(service, signer, directory, approvals=approvals)
