"""The people repository over IdentityTable on moto, held to the same contract cases as the in-memory
fake (tests/unit/test_people_store.py), plus what only the table can get wrong: persons and clients
sharing the tenant index, binary attributes, the TTL of challenges."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator

import pytest

from reliquary.adapters.clients import table_config
from reliquary.adapters.identity_store import DynamoDBIdentityRepository
from reliquary.identity.models import Challenge, Client, ClientStatus, StoredClient, Tenant, new_challenge_id
from reliquary.identity.ports import PeopleRepository
from reliquary.identity.scopes import Role, RoleBinding
from tests.support.aws import AwsStack, moto_stack
from tests.unit.test_people_store import CHECKS, NOW, make_person

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def aws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AwsStack]:
    with (
        pytest.MonkeyPatch.context() as monkeypatch,
        moto_stack(monkeypatch, tmp_path_factory.mktemp("moto")) as stack,
    ):
        yield stack


@pytest.fixture
def store(aws: AwsStack) -> DynamoDBIdentityRepository:
    return DynamoDBIdentityRepository(table_config(aws.settings, aws.settings.identity_table), aws.dynamodb)


@pytest.mark.parametrize("check", CHECKS, ids=[c.__name__ for c in CHECKS])
def test_dynamodb_repository(
    store: DynamoDBIdentityRepository, check: Callable[[PeopleRepository], None]
) -> None:
    check(store)


def test_persons_and_clients_share_the_tenant_index_apart(store: DynamoDBIdentityRepository) -> None:
    tenant = f"t{secrets.token_hex(4)}"
    client = Client(
        "cl-" + secrets.token_hex(12),
        tenant,
        "admin",
        (RoleBinding(Role.TENANT_ADMIN),),
        ClientStatus.ACTIVE,
        NOW,
        NOW,
        0,
    )
    store.create_tenant(Tenant(tenant, "T", NOW), StoredClient(client, "hash"))
    person = make_person(tenant)
    store.create_person(person)
    assert store.list_clients(tenant) == [client]
    assert store.list_persons(tenant) == [person]


def test_a_challenge_is_stored_with_its_ttl_and_taken_once(store: DynamoDBIdentityRepository) -> None:
    challenge = Challenge(new_challenge_id(), secrets.token_bytes(32), "authentication", NOW + 300)
    store.put_challenge(challenge)
    raw = store._challenge_row.get(f"CHALLENGE#{challenge.challenge_id}", "CHALLENGE", consistent_read=True)
    assert int(raw.expires_at) == NOW + 300  # the table's TTL attribute
    assert store.take_challenge(challenge.challenge_id, now=NOW) == challenge
    assert store.take_challenge(challenge.challenge_id, now=NOW) is None
