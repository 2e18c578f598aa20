"""The PeopleRepository contract (identity.ports), as the in-memory fake keeps it: single-use challenges
with expiry, the conditional sign counter, one passkey per enrollment token, tenant checks on every
update. tests/integration/test_people_moto.py holds the DynamoDB adapter to the same cases."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import replace

import pytest

from reliquary.errors import ConflictError, NotFoundError
from reliquary.identity.memory import InMemoryIdentityRepository
from reliquary.identity.models import (
    MAX_CREDENTIALS,
    Challenge,
    Person,
    PersonStatus,
    StoredCredential,
    new_challenge_id,
    new_person_id,
)
from reliquary.identity.ports import PeopleRepository
from reliquary.identity.scopes import Role, RoleBinding
from tests.support.authenticator import b64url

NOW = 1_700_000_000
Factory = Callable[[], PeopleRepository]


def make_person(tenant_id: str = "acme", **changes: object) -> Person:
    person = Person(
        person_id=new_person_id(),
        tenant_id=tenant_id,
        name="Grace Hopper",
        roles=(RoleBinding(Role.APPROVER, "support"),),
        status=PersonStatus.ACTIVE,
        created_at=NOW,
        not_before=0,
        user_handle=secrets.token_bytes(32),
    )
    return replace(person, **changes)  # type: ignore[arg-type]


def make_credential(person: Person, **changes: object) -> StoredCredential:
    credential = StoredCredential(
        credential_id=b64url(secrets.token_bytes(32)),
        tenant_id=person.tenant_id,
        person_id=person.person_id,
        public_key=b"\xa5\x01\x02",
        sign_count=0,
        transports=("internal",),
        aaguid="00000000-0000-0000-0000-000000000000",
        created_at=NOW,
        label="phone",
    )
    return replace(credential, **changes)  # type: ignore[arg-type]


@pytest.fixture
def repo() -> PeopleRepository:
    return InMemoryIdentityRepository()


def check_persons(repo: PeopleRepository) -> None:
    person = make_person()
    repo.create_person(person)
    assert repo.get_person(person.person_id) == person
    with pytest.raises(ConflictError):
        repo.create_person(person)
    other = make_person("globex")
    repo.create_person(other)
    assert [p.person_id for p in repo.list_persons("acme")] == [person.person_id]
    with pytest.raises(NotFoundError):
        repo.get_person(new_person_id())
    # Updates are conditional on the tenant.
    with pytest.raises(ConflictError):
        repo.set_person_roles("globex", person.person_id, [RoleBinding(Role.AUDITOR)])
    updated = repo.set_person_roles("acme", person.person_id, [RoleBinding(Role.AUDITOR)])
    assert updated.roles == (RoleBinding(Role.AUDITOR),)
    enrolling = repo.set_enrollment("acme", person.person_id, jti="a" * 32, expires_at=NOW + 10)
    assert (enrolling.enrollment_jti, enrolling.enrollment_expires_at) == ("a" * 32, NOW + 10)
    with pytest.raises(ConflictError):
        repo.revoke_person("globex", person.person_id, not_before=NOW)
    revoked = repo.revoke_person("acme", person.person_id, not_before=NOW + 1)
    assert revoked.status is PersonStatus.REVOKED
    assert revoked.not_before == NOW + 1
    assert revoked.enrollment_jti is None
    assert repo.get_person(person.person_id) == revoked
    with pytest.raises(ConflictError):
        repo.set_person_roles("acme", person.person_id, [RoleBinding(Role.AUDITOR)])
    with pytest.raises(ConflictError):
        repo.set_enrollment("acme", person.person_id, jti="b" * 32, expires_at=NOW + 10)


def check_credentials(repo: PeopleRepository) -> None:
    person = make_person()
    repo.create_person(person)
    repo.set_enrollment("acme", person.person_id, jti="e" * 32, expires_at=NOW + 10)
    first = make_credential(person)
    repo.add_credential(first, enrollment_jti="e" * 32)
    # The enrollment is spent: a second passkey with the same token is refused.
    with pytest.raises(ConflictError):
        repo.add_credential(make_credential(person), enrollment_jti="e" * 32)
    person_now = repo.get_person(person.person_id)
    assert person_now.enrollment_jti is None
    assert person_now.credential_ids == (first.credential_id,)
    # A signed-in person adds another (no enrollment); the same credential id twice is refused.
    second = make_credential(person)
    repo.add_credential(second, enrollment_jti=None)
    with pytest.raises(ConflictError):
        repo.add_credential(second, enrollment_jti=None)
    # Another tenant's person, or a mismatched tenant, takes nothing.
    with pytest.raises(ConflictError):
        repo.add_credential(make_credential(person, tenant_id="globex"), enrollment_jti=None)
    assert repo.get_credential(first.credential_id) == first
    listed = repo.list_credentials(repo.get_person(person.person_id))
    assert listed == sorted([first, second], key=lambda c: c.credential_id)
    with pytest.raises(NotFoundError):
        repo.get_credential(b64url(b"\x00" * 32))

    # The counter moves only from the value read.
    repo.advance_sign_count(first.credential_id, 0, 3, used_at=NOW + 5)
    assert repo.get_credential(first.credential_id).sign_count == 3
    assert repo.get_credential(first.credential_id).last_used_at == NOW + 5
    with pytest.raises(ConflictError):
        repo.advance_sign_count(first.credential_id, 0, 4, used_at=NOW + 6)
    with pytest.raises(ConflictError):
        repo.advance_sign_count(b64url(b"\x00" * 32), 0, 1)

    # Removal: only the person's own, in its tenant.
    with pytest.raises(NotFoundError):
        repo.remove_credential("globex", person.person_id, first.credential_id)
    with pytest.raises(NotFoundError):
        repo.remove_credential("acme", new_person_id(), first.credential_id)
    repo.remove_credential("acme", person.person_id, first.credential_id)
    with pytest.raises(NotFoundError):
        repo.get_credential(first.credential_id)
    assert repo.get_person(person.person_id).credential_ids == (second.credential_id,)

    # A revoked person takes no credential.
    repo.revoke_person("acme", person.person_id, not_before=NOW)
    with pytest.raises(ConflictError):
        repo.add_credential(make_credential(person), enrollment_jti=None)


def check_credential_cap(repo: PeopleRepository) -> None:
    person = make_person()
    repo.create_person(person)
    for _ in range(MAX_CREDENTIALS):
        repo.add_credential(make_credential(person), enrollment_jti=None)
    with pytest.raises(ConflictError):
        repo.add_credential(make_credential(person), enrollment_jti=None)


def check_challenges(repo: PeopleRepository) -> None:
    challenge = Challenge(
        new_challenge_id(),
        secrets.token_bytes(32),
        "registration",
        NOW + 300,
        "acme",
        "ps-" + "0" * 24,
        "f" * 32,
    )
    repo.put_challenge(challenge)
    with pytest.raises(ConflictError):
        repo.put_challenge(challenge)
    assert repo.take_challenge(challenge.challenge_id, now=NOW) == challenge
    assert repo.take_challenge(challenge.challenge_id, now=NOW) is None  # single use
    expired = Challenge(new_challenge_id(), secrets.token_bytes(32), "authentication", NOW + 300)
    repo.put_challenge(expired)
    assert repo.take_challenge(expired.challenge_id, now=NOW + 300) is None
    assert repo.take_challenge(expired.challenge_id, now=NOW) is None  # an expired take spends it too
    assert repo.take_challenge(new_challenge_id(), now=NOW) is None


CHECKS = [check_persons, check_credentials, check_credential_cap, check_challenges]


@pytest.mark.parametrize("check", CHECKS, ids=[c.__name__ for c in CHECKS])
def test_memory_repository(repo: PeopleRepository, check: Callable[[PeopleRepository], None]) -> None:
    check(repo)
