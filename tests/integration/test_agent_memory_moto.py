"""Agents' memories at rest (moto): only sealed boxes and timestamps in the table, the memory key stored
wrapped by the root of trust (KMS), a box altered or moved to another row refused."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from reliquary.adapters.agent_memory import DynamoDBMemoryStore
from reliquary.adapters.clients import build_root_of_trust
from reliquary.adapters.dynamodb import TableConfig
from reliquary.agents.memory import MAX_MEMORY_BYTES, MemoryBox, SealedMemory
from reliquary.crypto.pseudonym import Pseudonyms
from reliquary.errors import InvalidEnvelopeError, InvalidRequestError
from tests.support.aws import AwsStack
from tests.support.vaults import shared_moto_stack

pytestmark = pytest.mark.integration
NOW = 1_795_651_200
PSEUDONYMS = Pseudonyms(bytes(range(32)))
MEMORY = json.dumps(
    {"last_device": "device-42", "anomalies": ["burst"], "subject": "alice@example.com"}
).encode()


@pytest.fixture(scope="module")
def aws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AwsStack]:
    with shared_moto_stack(tmp_path_factory) as stack:
        yield stack


def _store(aws: AwsStack) -> DynamoDBMemoryStore:
    settings = aws.settings
    return DynamoDBMemoryStore(
        TableConfig(settings.agent_memory_table, settings.region, settings.endpoint_url)
    )


def test_memories_are_sealed_at_rest_and_open_only_in_their_row(aws: AwsStack) -> None:
    store, root = _store(aws), build_root_of_trust(aws.settings)
    box = MemoryBox.load_or_create(store, root, PSEUDONYMS)
    wrapped = store.wrapped_key()
    MemoryBox.load_or_create(store, root, PSEUDONYMS)  # a second cold start shares the stored key
    assert store.wrapped_key() == wrapped
    alice = box.principal_key("acme", "alice@example.com")
    store.put(
        "acme",
        "watchdog",
        alice,
        SealedMemory(box.seal("acme", "watchdog", alice, MEMORY), NOW, NOW + 86_400),
    )
    sealed = store.get("acme", "watchdog", alice)
    assert sealed is not None
    reloaded = MemoryBox.load_or_create(store, root, PSEUDONYMS)
    assert reloaded.open("acme", "watchdog", alice, sealed.box) == MEMORY

    raw = repr(aws.dynamodb.scan(TableName=aws.settings.agent_memory_table)["Items"])
    for secret in ("alice", "device-42", "burst", "anomalies"):
        assert secret not in raw
    rows = aws.dynamodb.scan(TableName=aws.settings.agent_memory_table)["Items"]
    assert {frozenset(r) for r in rows} <= {
        frozenset({"pk", "sk", "box", "updated_at", "expires_at"}),
        frozenset({"pk", "sk", "box"}),  # the wrapped key
    }

    bob = box.principal_key("acme", "bob@example.com")
    for tenant, agent, principal in (
        ("acme", "watchdog", bob),
        ("globex", "watchdog", alice),
        ("acme", "strict", alice),
    ):
        with pytest.raises(InvalidEnvelopeError):
            box.open(tenant, agent, principal, sealed.box)
    tampered = bytearray(sealed.box)
    tampered[-1] ^= 1
    with pytest.raises(InvalidEnvelopeError):
        box.open("acme", "watchdog", alice, bytes(tampered))
    with pytest.raises(InvalidRequestError):
        box.seal("acme", "watchdog", alice, b"x" * (MAX_MEMORY_BYTES + 1))
