"""People in IdentityService: enrollment tokens (one passkey each), passkey sign-in and session tokens,
``authorize`` for persons (revocation and a replaced enrollment stop tokens at once), role limits,
tenant isolation. The in-memory repository and a software authenticator; time is a settable clock."""

from __future__ import annotations

import pytest

from reliquary.errors import (
    AuthenticationError,
    ConflictError,
    ForbiddenError,
    InvalidClientError,
    InvalidRequestError,
    NotFoundError,
    PasskeyError,
)
from reliquary.identity.memory import InMemoryIdentityRepository, LocalTokenSigner
from reliquary.identity.models import Caller, Person, StoredCredential
from reliquary.identity.scopes import Role, RoleBinding, Scope
from reliquary.identity.service import IdentityService, WebAuthnConfig
from reliquary.identity.tokens import TokenIssuer
from tests.support.authenticator import ORIGIN, RP_ID, SoftAuthenticator

START = 1_700_000_000
APPROVER = (RoleBinding(Role.APPROVER, "support"),)


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> int:
        return self.now


class World:
    def __init__(self) -> None:
        self.repository = InMemoryIdentityRepository()
        self.signer = LocalTokenSigner.generate()
        self.clock = Clock()
        self.service = IdentityService(
            repository=self.repository,
            people=self.repository,
            signer=self.signer,
            issuer="https://reliquary.test",
            audience="reliquary-api",
            token_ttl_seconds=900,
            operator_tenant="operator",
            requests_per_second=1000,
            webauthn=WebAuthnConfig(rp_id=RP_ID, origins=(ORIGIN,), enrollment_ttl_seconds=86_400),
            clock=self.clock,
        )
        self.service.create_tenant("acme", "Acme")
        self.service.create_tenant("globex", "Globex")
        self.authenticator = SoftAuthenticator()

    def person(self, tenant: str = "acme", roles: tuple[RoleBinding, ...] = APPROVER) -> tuple[Person, str]:
        person, enrollment = self.service.create_person(tenant, "Ada", roles)
        return person, enrollment.token

    def register(self, token: str, label: str | None = "laptop") -> StoredCredential:
        caller = self.service.authorize(token)
        ceremony = self.service.registration_options(caller)
        response = self.authenticator.register(ceremony.options)
        return self.service.register_passkey(
            caller, challenge_id=ceremony.challenge_id, credential=response, label=label
        )

    def sign_in(self, credential_id: str | None = None) -> str:
        ceremony = self.service.authentication_options()
        response = self.authenticator.authenticate(ceremony.options, credential_id=credential_id)
        signed_in = self.service.sign_in(challenge_id=ceremony.challenge_id, credential=response)
        return signed_in.token.access_token


@pytest.fixture
def world() -> World:
    return World()


def test_a_person_enrolls_signs_in_and_acts_with_its_roles(world: World) -> None:
    person, enrollment = world.person()
    assert person.person_id.startswith("ps-")
    assert len(person.user_handle) == 32
    enrolling = world.service.authorize(enrollment)
    assert enrolling.kind == "person"
    assert enrolling.client_id == person.person_id
    assert enrolling.grants.scopes == frozenset({"webauthn:register"})
    credential = world.register(enrollment)
    assert credential.person_id == person.person_id
    assert credential.label == "laptop"

    ceremony = world.service.authentication_options()
    response = world.authenticator.authenticate(ceremony.options)
    signed_in = world.service.sign_in(challenge_id=ceremony.challenge_id, credential=response)
    assert signed_in.person.person_id == person.person_id
    assert signed_in.token.expires_in == 900
    caller = world.service.authorize(signed_in.token.access_token)
    assert caller.kind == "person"
    assert caller.tenant_id == "acme"
    assert caller.roles == APPROVER
    assert caller.grants.allows(Scope.ACCESS_APPROVE, "support")
    assert not caller.grants.allows(Scope.ACCESS_APPROVE, "other-vault")
    assert caller.grants.allows(Scope.WEBAUTHN_REGISTER)
    assert (
        signed_in.token.scope
        == "access:approve/support access:read/support vaults:read/support webauthn:register"
    )
    # The counter and the last use are recorded.
    stored = world.repository.get_credential(credential.credential_id)
    assert stored.sign_count == 1
    assert stored.last_used_at == START


def test_an_enrollment_token_registers_exactly_one_passkey(world: World) -> None:
    _, enrollment = world.person()
    world.register(enrollment)
    with pytest.raises(AuthenticationError):
        world.service.authorize(enrollment)


def test_a_session_token_adds_another_passkey_and_keeps_working(world: World) -> None:
    person, enrollment = world.person()
    world.register(enrollment)
    session = world.sign_in()
    second = world.register(session, label=None)
    assert second.label == "passkey"
    assert world.service.authorize(session).client_id == person.person_id
    assert len(world.service.person_credentials(world.service.get_person("acme", person.person_id))) == 2


def test_a_concurrently_spent_enrollment_stores_nothing(world: World) -> None:
    person, enrollment = world.person()
    caller = world.service.authorize(enrollment)
    first = world.service.registration_options(caller)
    second = world.service.registration_options(caller)
    world.service.register_passkey(
        caller,
        challenge_id=first.challenge_id,
        credential=world.authenticator.register(first.options),
        label=None,
    )
    with pytest.raises(ConflictError):
        world.service.register_passkey(
            caller,
            challenge_id=second.challenge_id,
            credential=world.authenticator.register(second.options),
            label=None,
        )
    assert len(world.repository.get_person(person.person_id).credential_ids) == 1


def test_a_new_enrollment_replaces_the_old_one(world: World) -> None:
    person, first = world.person()
    second = world.service.new_enrollment("acme", person.person_id)
    with pytest.raises(AuthenticationError):
        world.service.authorize(first)
    assert world.service.authorize(second.token).client_id == person.person_id
    assert second.expires_at == START + 86_400


def test_an_enrollment_token_lives_a_day_and_no_longer(world: World) -> None:
    _, enrollment = world.person()
    world.clock.now = START + 86_400 - 1
    world.service.authorize(enrollment)
    world.clock.now = START + 86_400 + 31  # past the leeway
    with pytest.raises(AuthenticationError):
        world.service.authorize(enrollment)


def test_only_an_enrollment_lives_longer_than_an_access_token(world: World) -> None:
    """A client's (or a person's session) token with a day's lifetime is refused even though the key
    signed it: only a person's token with webauthn:register alone may live past an hour."""
    _, admin, _ = world.service.create_tenant("initech", "Initech")
    issuer = TokenIssuer(
        world.signer, issuer="https://reliquary.test", audience="reliquary-api", ttl_seconds=900
    )
    long_client = issuer.issue(
        client_id=admin.client_id,
        tenant_id="initech",
        scopes=["tenant:admin"],
        issued_at=START,
        ttl_seconds=86_400,
    )
    with pytest.raises(AuthenticationError):
        world.service.authorize(long_client)
    person, _ = world.person()
    long_session = issuer.issue(
        client_id=person.person_id,
        tenant_id="acme",
        scopes=["webauthn:register", "vaults:read/support"],
        issued_at=START,
        ttl_seconds=86_400,
    )
    with pytest.raises(AuthenticationError):
        world.service.authorize(long_session)


def test_revoking_a_person_stops_its_tokens_and_passkeys_at_once(world: World) -> None:
    person, enrollment = world.person()
    world.register(enrollment)
    session = world.sign_in()
    other_person, other_enrollment = world.person()
    world.clock.now += 5
    revoked = world.service.revoke_person("acme", person.person_id)
    assert not revoked.active
    with pytest.raises(AuthenticationError):
        world.service.authorize(session)
    with pytest.raises(PasskeyError) as caught:
        world.sign_in()
    assert caught.value.check == "credential"
    with pytest.raises(ConflictError):
        world.service.new_enrollment("acme", person.person_id)
    assert world.service.revoke_person("acme", person.person_id) == revoked  # again: a no-op
    # Nobody else is touched.
    assert world.service.authorize(other_enrollment).client_id == other_person.person_id


def test_a_revoked_persons_pending_enrollment_stops(world: World) -> None:
    person, enrollment = world.person()
    world.service.revoke_person("acme", person.person_id)
    with pytest.raises(AuthenticationError):
        world.service.authorize(enrollment)


def test_a_role_taken_away_narrows_a_session_at_once(world: World) -> None:
    person, enrollment = world.person(
        roles=(RoleBinding(Role.APPROVER, "support"), RoleBinding(Role.AUDITOR))
    )
    world.register(enrollment)
    session = world.sign_in()
    assert world.service.authorize(session).grants.allows(Scope.AUDIT_READ)
    world.service.set_person_roles("acme", person.person_id, [RoleBinding(Role.APPROVER, "support")])
    caller = world.service.authorize(session)
    assert not caller.grants.allows(Scope.AUDIT_READ)
    assert caller.grants.allows(Scope.ACCESS_APPROVE, "support")


@pytest.mark.parametrize(
    "role", [Role.TENANT_ADMIN, Role.VAULT_ADMIN, Role.WRITER, Role.REQUESTER, Role.OPERATOR]
)
def test_a_person_holds_only_approver_and_auditor(world: World, role: Role) -> None:
    with pytest.raises(InvalidRequestError, match="approver and auditor"):
        world.service.create_person("acme", "Eve", [RoleBinding(role)])
    person, _ = world.person()
    with pytest.raises(InvalidRequestError):
        world.service.set_person_roles("acme", person.person_id, [RoleBinding(role)])


def test_another_tenants_person_is_not_found(world: World) -> None:
    person, _ = world.person("globex")
    with pytest.raises(NotFoundError):
        world.service.get_person("acme", person.person_id)
    for call in (
        lambda: world.service.new_enrollment("acme", person.person_id),
        lambda: world.service.revoke_person("acme", person.person_id),
        lambda: world.service.set_person_roles("acme", person.person_id, list(APPROVER)),
    ):
        with pytest.raises(NotFoundError):
            call()
    assert [p.person_id for p in world.service.list_persons("acme")] == []
    assert world.service.get_person("globex", person.person_id).active


def test_a_person_never_authenticates_at_the_token_endpoint(world: World) -> None:
    person, _ = world.person()
    with pytest.raises(InvalidClientError):
        world.service.authenticate(person.person_id, "anything")


def test_a_client_cannot_register_a_passkey(world: World) -> None:
    _, admin, _ = world.service.create_tenant("initech", "Initech")
    caller = world.service.authorize(world.service.issue_token(admin).access_token)
    with pytest.raises(ForbiddenError):
        world.service.registration_options(caller)


def test_a_person_without_the_register_scope_cannot_register(world: World) -> None:
    person, enrollment = world.person()
    caller = world.service.authorize(enrollment)
    narrowed = Caller(
        tenant_id=caller.tenant_id,
        client_id=caller.client_id,
        grants=type(caller.grants)(frozenset({"vaults:read/support"})),
        jti=caller.jti,
        expires_at=caller.expires_at,
        roles=caller.roles,
        kind="person",
    )
    with pytest.raises(ForbiddenError):
        world.service.registration_options(narrowed)
    assert person.person_id == caller.client_id


def test_challenges_are_single_use_and_bound(world: World) -> None:
    person, enrollment = world.person()
    caller = world.service.authorize(enrollment)
    ceremony = world.service.registration_options(caller)
    response = SoftAuthenticator().register(ceremony.options)
    # Another person's registration challenge is not this person's.
    _, other_enrollment = world.person()
    other = world.service.authorize(other_enrollment)
    with pytest.raises(PasskeyError) as caught:
        world.service.register_passkey(
            other, challenge_id=ceremony.challenge_id, credential=response, label=None
        )
    assert caught.value.check == "challenge"
    # That attempt spent it: the right person cannot use it now either.
    with pytest.raises(PasskeyError):
        world.service.register_passkey(
            caller, challenge_id=ceremony.challenge_id, credential=response, label=None
        )
    world.register(world.service.new_enrollment("acme", person.person_id).token)

    sign_in = world.service.authentication_options()
    assertion = world.authenticator.authenticate(sign_in.options)
    world.service.sign_in(challenge_id=sign_in.challenge_id, credential=assertion)
    with pytest.raises(PasskeyError) as caught:
        world.service.sign_in(challenge_id=sign_in.challenge_id, credential=assertion)
    assert caught.value.check == "challenge"
    # A registration challenge cannot sign anyone in; a sign-in challenge registers nothing.
    registration = world.service.registration_options(world.service.authorize(world.sign_in()))
    with pytest.raises(PasskeyError):
        world.service.sign_in(
            challenge_id=registration.challenge_id,
            credential=world.authenticator.authenticate(registration.options | {"rpId": RP_ID}),
        )
    for bad in (None, 5, "x", "0" * 32, "G" * 32):
        with pytest.raises(PasskeyError):
            world.service.sign_in(challenge_id=bad, credential=assertion)


def test_an_expired_challenge_is_refused(world: World) -> None:
    _, enrollment = world.person()
    world.register(enrollment)
    ceremony = world.service.authentication_options()
    assertion = world.authenticator.authenticate(ceremony.options)
    world.clock.now += 300
    with pytest.raises(PasskeyError) as caught:
        world.service.sign_in(challenge_id=ceremony.challenge_id, credential=assertion)
    assert caught.value.check == "challenge"


def test_a_replayed_assertion_loses_the_counter_race(world: World) -> None:
    """Two sign-ins carrying the same counter value: the stored counter moved under the second."""
    _, enrollment = world.person()
    credential = world.register(enrollment)
    first = world.service.authentication_options()
    second = world.service.authentication_options()
    a = world.authenticator.authenticate(first.options, sign_count=7)
    b = world.authenticator.authenticate(second.options, sign_count=7)
    world.service.sign_in(challenge_id=first.challenge_id, credential=a)
    with pytest.raises(PasskeyError) as caught:
        world.service.sign_in(challenge_id=second.challenge_id, credential=b)
    assert caught.value.check == "sign_count"
    assert world.repository.get_credential(credential.credential_id).sign_count == 7


def test_an_unknown_credential_is_refused(world: World) -> None:
    _, enrollment = world.person()
    world.register(enrollment)
    ceremony = world.service.authentication_options()
    stranger = SoftAuthenticator()
    stranger.register(world.service.registration_options(world.service.authorize(world.sign_in())).options)
    with pytest.raises(PasskeyError) as caught:
        world.service.sign_in(
            challenge_id=ceremony.challenge_id, credential=stranger.authenticate(ceremony.options)
        )
    assert caught.value.check == "credential"


def test_removing_a_credential_stops_its_sign_in(world: World) -> None:
    person, enrollment = world.person()
    credential = world.register(enrollment)
    world.service.remove_credential("acme", person.person_id, credential.credential_id)
    with pytest.raises(PasskeyError):
        world.sign_in()
    with pytest.raises(NotFoundError):
        world.service.remove_credential("acme", person.person_id, credential.credential_id)
    with pytest.raises(InvalidRequestError):
        world.service.remove_credential("acme", person.person_id, "not/an id")
