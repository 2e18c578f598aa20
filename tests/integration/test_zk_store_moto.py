"""Nonces, nullifiers and context policies on DynamoDB (moto): single use under races, typed refusals,
policies only for vaults that exist."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator

import pytest

from reliquary.adapters.dynamodb import TableConfig
from reliquary.adapters.zk_store import DynamoDBReplayStore, context_policy_store
from reliquary.errors import (
    ConflictError,
    NonceExpiredError,
    NonceUnknownError,
    NonceUsedError,
    NotFoundError,
    NullifierSeenError,
    ReplayError,
)
from reliquary.zk.policy import ContextPolicy
from reliquary.zk.replay import Consumption, IssuedNonce, new_nonce
from tests.support.aws import AwsStack
from tests.support.vaults import shared_moto_stack

pytestmark = pytest.mark.integration
NOW = 1_795_651_200


@pytest.fixture(scope="module")
def aws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AwsStack]:
    with shared_moto_stack(tmp_path_factory) as stack:
        yield stack


def _replay(aws: AwsStack) -> DynamoDBReplayStore:
    settings = aws.settings
    return DynamoDBReplayStore(TableConfig(settings.replay_table, settings.region, settings.endpoint_url))


def _issued(tenant: str, *, ttl: int = 300) -> IssuedNonce:
    return IssuedNonce(tenant, "agent-memory", new_nonce(), NOW, NOW + ttl)


def test_a_nonce_is_used_once_and_remembers_by_whom(aws: AwsStack) -> None:
    store, tenant = _replay(aws), f"t{uuid.uuid4().hex[:8]}"
    issued = _issued(tenant)
    store.add_nonce(issued)
    with pytest.raises(ConflictError):
        store.add_nonce(issued)
    assert store.get_nonce(tenant, issued.nonce) == (issued, None)
    used = Consumption("req-1", "ab" * 32, 12345678901234567890123456789, "9c" * 32)  # with its requester
    store.consume(tenant, issued.nonce, used, now=NOW + 1, keep_until=NOW + 86_400)
    assert store.get_nonce(tenant, issued.nonce) == (issued, used)
    with pytest.raises(NonceUsedError):
        store.consume(tenant, issued.nonce, Consumption("req-2", "cd" * 32, 5), now=NOW + 2, keep_until=NOW)
    # The nullifier is spent too: another nonce cannot carry it again.
    other = _issued(tenant)
    store.add_nonce(other)
    with pytest.raises(NullifierSeenError):
        store.consume(
            tenant, other.nonce, Consumption("req-3", "ef" * 32, used.nullifier), now=NOW, keep_until=NOW
        )
    assert store.get_nonce(tenant, other.nonce) == (other, None)  # nothing half-written


def test_unknown_expired_and_other_tenants_nonces_are_refused(aws: AwsStack) -> None:
    store, tenant = _replay(aws), f"t{uuid.uuid4().hex[:8]}"
    issued = _issued(tenant, ttl=10)
    store.add_nonce(issued)
    used = Consumption("req-1", "ab" * 32, None)
    with pytest.raises(NonceUnknownError):
        store.consume(tenant, new_nonce(), used, now=NOW, keep_until=NOW)
    with pytest.raises(NonceUnknownError):
        store.consume("another-tenant", issued.nonce, used, now=NOW, keep_until=NOW)
    assert store.get_nonce("another-tenant", issued.nonce) is None
    with pytest.raises(NonceExpiredError):
        store.consume(tenant, issued.nonce, used, now=NOW + 10, keep_until=NOW)
    # A circuit without a nullifier consumes the nonce alone.
    store.consume(tenant, issued.nonce, used, now=NOW + 9, keep_until=NOW)
    assert store.get_nonce(tenant, issued.nonce) == (issued, used)


def test_of_eight_racing_requests_exactly_one_consumes_the_nonce(aws: AwsStack) -> None:
    store, tenant = _replay(aws), f"t{uuid.uuid4().hex[:8]}"
    issued = _issued(tenant)
    store.add_nonce(issued)
    winners: list[str] = []
    losers: list[str] = []
    lock = threading.Lock()

    def attempt(n: int) -> None:
        try:
            store.consume(
                tenant, issued.nonce, Consumption(f"req-{n}", "ab" * 32, 1000 + n), now=NOW, keep_until=NOW
            )
        except ReplayError as exc:
            with lock:
                losers.append(exc.code)
        else:
            with lock:
                winners.append(f"req-{n}")

    threads = [threading.Thread(target=attempt, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(winners) == 1
    assert losers == ["nonce_used"] * 7
    stored = store.get_nonce(tenant, issued.nonce)
    assert stored is not None
    assert stored[1] is not None
    assert stored[1].request_id == winners[0]


def test_policies_exist_only_for_vaults(aws: AwsStack) -> None:
    settings = aws.settings
    policies = context_policy_store(
        TableConfig(settings.vaults_table, settings.region, settings.endpoint_url)
    )
    tenant = f"t{uuid.uuid4().hex[:8]}"
    policy = ContextPolicy(device_commitments=(7, 8), region_root=9, pattern_commitments=(10,))
    with pytest.raises(NotFoundError):
        policies.put(tenant, "agent-memory", policy)
    aws.dynamodb.put_item(
        TableName=settings.vaults_table,
        Item={"pk": {"S": f"TENANT#{tenant}"}, "sk": {"S": "VAULT#agent-memory"}, "status": {"S": "active"}},
    )
    assert policies.get(tenant, "agent-memory") is None
    policies.put(tenant, "agent-memory", policy)
    assert policies.get(tenant, "agent-memory") == policy
    assert policies.get(tenant, "other-vault") is None
