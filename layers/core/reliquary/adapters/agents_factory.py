"""Builds the agent-vote service from the one Settings object (once per cold start of agent-vote: the only
function that imports the agents, and so LangGraph)."""

from __future__ import annotations

from reliquary.adapters.agent_memory import DynamoDBMemoryStore
from reliquary.adapters.clients import build_root_of_trust, dynamodb_client, table_config
from reliquary.adapters.pseudonym_store import load_pseudonyms
from reliquary.adapters.vault_policies import DynamoDBVaultPolicyStore
from reliquary.agents.memory import MemoryBox
from reliquary.agents.policy import QuorumPolicy
from reliquary.agents.service import AgentVoteService
from reliquary.config import Settings


def build_agent_vote_service(settings: Settings) -> AgentVoteService:
    client = dynamodb_client(settings)
    root = build_root_of_trust(settings)
    memories = DynamoDBMemoryStore(table_config(settings, settings.agent_memory_table), client)
    # Both keys unwrapped once per cold start: the memory key, and the pseudonym secret naming principals.
    box = MemoryBox.load_or_create(memories, root, load_pseudonyms(settings, root, client))
    return AgentVoteService(
        memories,
        box,
        DynamoDBVaultPolicyStore(
            table_config(settings, settings.vaults_table), QuorumPolicy, kind="QUORUM", client=client
        ),
    )
