"""The identity service over the in-memory ports: tenants, clients, secrets, tokens, revocation, roles,
the tenant boundary and rate limits."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from reliquary.errors import (
    AuthenticationError,
    ConflictError,
    InvalidClientError,
    InvalidRequestError,
    InvalidScopeError,
    NotFoundError,
    RateLimitedError,
)
from reliquary.identity import secrets
from reliquary.identity.memory import InMemoryIdentityRepository, LocalTokenSigner
from reliquary.identity.models import Client, ClientStatus, StoredClient
from reliquary.identity.scopes import Role, RoleBinding, Scope
from reliquary.identity.service import IdentityService
from reliquary.identity.tokens import TokenIssuer, TokenRejected

ISSUER = "https://reliquary.test"
AUDIENCE = "reliquary-api"
START = 1_800_000_000


@dataclass
class Clock:
    now: int = START

    def __call__(self) -> int:
        return self.now


@dataclass
class World:
    repository: InMemoryIdentityRepository
    signer: LocalTokenSigner
    clock: Clock
    make: Callable[..., IdentityService] = field(repr=False)
    service: IdentityService = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.service = self.make()


@pytest.fixture
def world() -> World:
    repository, signer, clock = InMemoryIdentityRepository(), LocalTokenSigner.generate(), Clock()

    def make(**changes: object) -> IdentityService:
        arguments: dict[str, object] = {
            "repository": repository,
            "people": repository,
            "signer": signer,
            "issuer": ISSUER,
            "audience": AUDIENCE,
            "token_ttl_seconds": 900,
            "operator_tenant": "operator",
            "requests_per_second": 1000,
            "clock": clock,
        }
        arguments.update(changes)
        return IdentityService(**arguments)  # type: ignore[arg-type]

    return World(repository, signer, clock, make)


def _token(service: IdentityService, client: Client, scope: str | None = None) -> str:
    return service.issue_token(client, scope).access_token


def _reason(caught: pytest.ExceptionInfo[AuthenticationError]) -> str | None:
    cause = caught.value.__cause__
    return cause.reason if isinstance(cause, TokenRejected) else None


# --------------------------------------------------------------------------------------- tenants, clients


def test_create_tenant(world: World) -> None:
    tenant, admin, secret = world.service.create_tenant("acme", "Acme Corp")
    assert (tenant.tenant_id, tenant.name, tenant.created_at) == ("acme", "Acme Corp", START)
    assert re.fullmatch(r"cl-[0-9a-f]{24}", admin.client_id)
    assert admin.tenant_id == "acme"
    assert admin.roles == (RoleBinding(Role.TENANT_ADMIN),)
    assert admin.status is ClientStatus.ACTIVE
    assert re.fullmatch(r"rqs_[A-Za-z0-9_-]{43}", secret)
    stored = world.repository.get_client(admin.client_id)
    assert secret not in stored.secret_hash
    assert secrets.verify_secret(secret, stored.secret_hash)
    assert world.service.get_tenant("acme") == tenant


def test_a_tenant_is_created_once(world: World) -> None:
    world.service.create_tenant("acme", "Acme")
    with pytest.raises(ConflictError):
        world.service.create_tenant("acme", "Acme again")
    assert len(world.service.list_clients("acme")) == 1


@pytest.mark.parametrize(
    ("tenant_id", "name"),
    [("bad#tenant", "Acme"), ("", "Acme"), ("acme", ""), ("acme", "evil\nname"), ("acme", "evil" * 40)],
)
def test_create_tenant_refuses_bad_input(world: World, tenant_id: str, name: str) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        world.service.create_tenant(tenant_id, name)
    answer = str(caught.value.to_dict())
    assert "bad#tenant" not in answer
    assert "evil" not in answer
    with pytest.raises(NotFoundError):
        world.service.get_tenant("acme")


def test_the_operator_tenant_gets_an_operator(world: World) -> None:
    _, admin, secret = world.service.create_tenant("operator", "The operator")
    assert set(admin.roles) == {RoleBinding(Role.TENANT_ADMIN), RoleBinding(Role.OPERATOR)}
    issued = world.service.issue_token(world.service.authenticate(admin.client_id, secret))
    assert "tenants:manage" in issued.scope.split()
    assert world.service.authorize(issued.access_token).grants.allows(Scope.TENANTS_MANAGE)


def test_the_operator_role_exists_only_in_the_operator_tenant(world: World) -> None:
    world.service.create_tenant("acme", "Acme")
    _, admin, _ = world.service.create_tenant("globex", "Globex")
    with pytest.raises(InvalidRequestError, match="operator tenant"):
        world.service.create_client("acme", "sneaky", [RoleBinding(Role.OPERATOR)])
    with pytest.raises(InvalidRequestError, match="operator tenant"):
        world.service.set_roles("globex", admin.client_id, [RoleBinding(Role.OPERATOR)])


def test_a_stored_operator_role_outside_the_operator_tenant_grants_nothing(world: World) -> None:
    _, admin, _ = world.service.create_tenant("acme", "Acme")
    world.repository.set_roles(
        "acme", admin.client_id, [RoleBinding(Role.OPERATOR), RoleBinding(Role.WRITER)]
    )
    client = world.service.get_client("acme", admin.client_id)
    issued = world.service.issue_token(client)
    assert "tenants:manage" not in issued.scope.split()
    with pytest.raises(InvalidScopeError):
        world.service.issue_token(client, "tenants:manage")


def test_create_and_list_clients(world: World) -> None:
    _, admin, _ = world.service.create_tenant("acme", "Acme")
    writer, writer_secret = world.service.create_client(
        "acme", "ingest agent", [RoleBinding(Role.WRITER, "v1"), RoleBinding(Role.WRITER, "v1")]
    )
    assert writer.roles == (RoleBinding(Role.WRITER, "v1"),)
    assert world.service.authenticate(writer.client_id, writer_secret) == writer
    assert {c.client_id for c in world.service.list_clients("acme")} == {admin.client_id, writer.client_id}
    assert world.service.get_client("acme", writer.client_id) == writer


def test_clients_need_a_tenant_and_roles(world: World) -> None:
    with pytest.raises(NotFoundError):
        world.service.create_client("nobody", "x", [RoleBinding(Role.WRITER)])
    world.service.create_tenant("acme", "Acme")
    with pytest.raises(InvalidRequestError):
        world.service.create_client("acme", "x", [])
    with pytest.raises(InvalidRequestError, match="whole tenant"):
        world.service.create_client("acme", "x", [RoleBinding.parse("auditor/v1")])


# ------------------------------------------------------------------------------------ the tenant boundary


def test_another_tenants_client_is_not_found(world: World) -> None:
    world.service.create_tenant("acme", "Acme")
    _, globex_admin, _ = world.service.create_tenant("globex", "Globex")
    missing = "cl-" + "0" * 24
    for call in (
        lambda c: world.service.get_client("acme", c),
        lambda c: world.service.rotate_secret("acme", c, revoke_tokens=True),
        lambda c: world.service.revoke_client("acme", c),
        lambda c: world.service.set_roles("acme", c, [RoleBinding(Role.WRITER)]),
    ):
        with pytest.raises(NotFoundError) as across:
            call(globex_admin.client_id)
        with pytest.raises(NotFoundError) as absent:
            call(missing)
        assert across.value.to_dict() == absent.value.to_dict()  # not even the message tells them apart
    assert [c.client_id for c in world.service.list_clients("globex")] == [globex_admin.client_id]
    assert world.service.get_client("globex", globex_admin.client_id).active  # untouched


def test_a_malformed_client_id_is_bad_input(world: World) -> None:
    world.service.create_tenant("acme", "Acme")
    with pytest.raises(InvalidRequestError) as caught:
        world.service.get_client("acme", "cl-../../etc")
    assert "etc" not in caught.value.message


def test_another_tenants_token_on_this_tenants_client_is_refused(world: World) -> None:
    _, admin, _ = world.service.create_tenant("acme", "Acme")
    world.service.create_tenant("globex", "Globex")
    # A token signed by the real key naming acme's client but the tenant globex (what a bug or a stolen
    # signing capability could produce): the client's row says acme, so it is refused.
    issuer = TokenIssuer(world.signer, issuer=ISSUER, audience=AUDIENCE, ttl_seconds=900)
    token = issuer.issue(
        client_id=admin.client_id, tenant_id="globex", scopes={"tenant:admin"}, issued_at=START
    )
    with pytest.raises(AuthenticationError) as caught:
        world.service.authorize(token)
    assert _reason(caught) is None  # the token itself verified; the client row refused it
    assert world.service.authorize(_token(world.service, admin)).tenant_id == "acme"


# ------------------------------------------------------------------------------------------- authenticate


def test_authenticate_right_wrong_unknown_revoked(world: World) -> None:
    _, admin, secret = world.service.create_tenant("acme", "Acme")
    assert world.service.authenticate(admin.client_id, secret) == admin
    other, other_secret = world.service.create_client("acme", "other", [RoleBinding(Role.WRITER)])
    world.service.revoke_client("acme", other.client_id)
    failures = [
        (admin.client_id, secret[:-1] + ("A" if secret[-1] != "A" else "B")),
        (admin.client_id, ""),
        (admin.client_id, other_secret),
        ("cl-" + "f" * 24, secret),
        ("not-a-client", secret),
        ("", secret),
        (other.client_id, other_secret),
    ]
    answers = []
    for client_id, attempt in failures:
        with pytest.raises(InvalidClientError) as caught:
            world.service.authenticate(client_id, attempt)
        answers.append(caught.value.to_dict())
    assert all(answer == answers[0] for answer in answers)  # one answer for every failure
    assert answers[0]["code"] == "invalid_client"
    assert "details" not in answers[0]


def test_an_unknown_client_costs_the_same_scrypt_work(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    _, admin, _ = world.service.create_tenant("acme", "Acme")
    work: list[tuple[int, int, int]] = []
    original = secrets.ScryptParams.derive

    def counting(self: secrets.ScryptParams, secret: bytes, salt: bytes) -> bytes:
        work.append(self.cost)
        return original(self, secret, salt)

    monkeypatch.setattr(secrets.ScryptParams, "derive", counting)
    with pytest.raises(InvalidClientError):
        world.service.authenticate(admin.client_id, "rqs_wrong")
    known = list(work)
    work.clear()
    with pytest.raises(InvalidClientError):
        world.service.authenticate("cl-" + "a" * 24, "rqs_wrong")
    assert work == known == [secrets.DEFAULT_PARAMS.cost]


def test_a_cheaper_stored_hash_is_upgraded_on_success(world: World) -> None:
    _, admin, secret = world.service.create_tenant("acme", "Acme")
    cheap = secrets.hash_secret(secret, secrets.ScryptParams(log2_n=10))
    world.repository.replace_secret_hash(
        admin.client_id, old_hash=world.repository.get_client(admin.client_id).secret_hash, new_hash=cheap
    )
    world.service.authenticate(admin.client_id, secret)
    upgraded = world.repository.get_client(admin.client_id).secret_hash
    assert upgraded != cheap
    assert not secrets.needs_rehash(upgraded)
    assert world.service.authenticate(admin.client_id, secret) == admin


# ------------------------------------------------------------------------------------------------- tokens


def test_issue_and_authorize(world: World) -> None:
    _, admin, secret = world.service.create_tenant("acme", "Acme")
    issued = world.service.issue_token(world.service.authenticate(admin.client_id, secret))
    assert issued.token_type == "Bearer"
    assert issued.expires_in == 900
    assert issued.scope == (
        "access:approve access:read access:request audit:export audit:read memories:read memories:write "
        "tenant:admin vaults:admin vaults:create vaults:read"
    )
    world.clock.now += 100
    caller = world.service.authorize(issued.access_token)
    assert (caller.tenant_id, caller.client_id) == ("acme", admin.client_id)
    assert str(caller.grants) == issued.scope
    assert caller.expires_at == START + 900
    assert re.fullmatch(r"[0-9a-f]{32}", caller.jti)
    world.clock.now = START + 900 + 30
    with pytest.raises(AuthenticationError) as caught:
        world.service.authorize(issued.access_token)
    assert _reason(caught) == "expired"


def test_requested_scopes(world: World) -> None:
    _, admin, _ = world.service.create_tenant("acme", "Acme")
    writer, _ = world.service.create_client("acme", "w", [RoleBinding(Role.WRITER, "v1")])
    assert world.service.issue_token(writer, "memories:write/v1").scope == "memories:write/v1"
    assert world.service.issue_token(writer, "").scope == ""
    # A bare grant covers any one vault.
    narrowed = world.service.issue_token(admin, "memories:write/v9 audit:read")
    assert narrowed.scope == "audit:read memories:write/v9"
    caller = world.service.authorize(narrowed.access_token)
    assert caller.grants.allows(Scope.MEMORIES_WRITE, "v9")
    assert not caller.grants.allows(Scope.MEMORIES_WRITE, "v1")
    assert not caller.grants.allows(Scope.TENANT_ADMIN)


@pytest.mark.parametrize(
    "scope",
    ["memories:write", "memories:write/v2", "tenant:admin", "memories:delete", "vaults:read/a#b", "a  b"],
)
def test_invalid_scope(world: World, scope: str) -> None:
    world.service.create_tenant("acme", "Acme")
    writer, _ = world.service.create_client("acme", "w", [RoleBinding(Role.WRITER, "v1")])
    with pytest.raises(InvalidScopeError) as caught:
        world.service.issue_token(writer, scope)
    assert caught.value.code == "invalid_scope"
    assert caught.value.http_status == 400


def test_no_token_and_garbage_are_unauthenticated(world: World) -> None:
    for token in (None, "", "Bearer x", "a.b.c"):
        with pytest.raises(AuthenticationError):
            world.service.authorize(token)


def test_a_token_of_a_deleted_client_row_is_refused(world: World) -> None:
    _, admin, _ = world.service.create_tenant("acme", "Acme")
    token = _token(world.service, admin)
    del world.repository._clients[admin.client_id]
    with pytest.raises(AuthenticationError):
        world.service.authorize(token)


# ----------------------------------------------------------------------------------- rotation, revocation


def test_rotate_without_revoking_tokens(world: World) -> None:
    _, admin, old_secret = world.service.create_tenant("acme", "Acme")
    token = _token(world.service, admin)
    world.clock.now += 10
    new_secret = world.service.rotate_secret("acme", admin.client_id, revoke_tokens=False)
    assert new_secret != old_secret
    with pytest.raises(InvalidClientError):
        world.service.authenticate(admin.client_id, old_secret)
    rotated = world.service.authenticate(admin.client_id, new_secret)
    assert rotated.secret_rotated_at == START + 10
    assert world.service.authorize(token).client_id == admin.client_id  # runs out its lifetime


def test_rotate_revoking_tokens(world: World) -> None:
    _, admin, _ = world.service.create_tenant("acme", "Acme")
    token = _token(world.service, admin)
    world.clock.now += 10
    same_second = _token(world.service, admin)
    new_secret = world.service.rotate_secret("acme", admin.client_id, revoke_tokens=True)
    for old in (token, same_second):
        with pytest.raises(AuthenticationError):
            world.service.authorize(old)
    # A token issued after the rotation, even within the same second, is good.
    fresh = world.service.issue_token(world.service.authenticate(admin.client_id, new_secret))
    assert world.service.authorize(fresh.access_token).client_id == admin.client_id
    assert fresh.expires_in == 901  # starts at not_before, one second ahead


def test_revoke_stops_existing_tokens_at_once(world: World) -> None:
    _, admin, secret = world.service.create_tenant("acme", "Acme")
    agent, agent_secret = world.service.create_client("acme", "agent", [RoleBinding(Role.REQUESTER, "v1")])
    token = _token(world.service, agent)
    assert world.service.authorize(token).client_id == agent.client_id
    revoked = world.service.revoke_client("acme", agent.client_id)
    assert revoked.status is ClientStatus.REVOKED
    with pytest.raises(AuthenticationError):
        world.service.authorize(token)
    with pytest.raises(InvalidClientError):
        world.service.authenticate(agent.client_id, agent_secret)
    with pytest.raises(InvalidClientError):
        world.service.issue_token(revoked)
    assert world.service.revoke_client("acme", agent.client_id) == revoked  # again: a no-op
    with pytest.raises(ConflictError):
        world.service.rotate_secret("acme", agent.client_id, revoke_tokens=False)
    with pytest.raises(ConflictError):
        world.service.set_roles("acme", agent.client_id, [RoleBinding(Role.WRITER)])
    assert world.service.authenticate(admin.client_id, secret) == admin  # the others are untouched


def test_a_role_taken_away_stops_at_once(world: World) -> None:
    world.service.create_tenant("acme", "Acme")
    client, _ = world.service.create_client(
        "acme", "c", [RoleBinding(Role.WRITER), RoleBinding(Role.AUDITOR)]
    )
    token = _token(world.service, client)
    assert world.service.authorize(token).grants.allows(Scope.MEMORIES_WRITE, "v2")
    world.service.set_roles("acme", client.client_id, [RoleBinding(Role.WRITER, "v1")])
    grants = world.service.authorize(token).grants
    assert grants.allows(Scope.MEMORIES_WRITE, "v1")
    assert not grants.allows(Scope.MEMORIES_WRITE, "v2")
    assert not grants.allows(Scope.AUDIT_READ)
    # Roles added later do not widen a token: it never carried them.
    world.service.set_roles("acme", client.client_id, [RoleBinding(Role.TENANT_ADMIN)])
    assert not world.service.authorize(token).grants.allows(Scope.TENANT_ADMIN)


# --------------------------------------------------------------------------------------------------- keys


def test_key_rotation_with_overlap(world: World) -> None:
    _, admin, _ = world.service.create_tenant("acme", "Acme")
    old_token = _token(world.service, admin)
    new_signer = LocalTokenSigner.generate()
    during = world.make(signer=new_signer, previous_keys=[world.signer.public_jwk()])
    assert [key["kid"] for key in during.jwks()["keys"]] == [new_signer.key_id, world.signer.key_id]
    assert during.authorize(old_token).client_id == admin.client_id
    new_token = _token(during, admin)
    assert during.authorize(new_token).client_id == admin.client_id
    after = world.make(signer=new_signer)
    assert [key["kid"] for key in after.jwks()["keys"]] == [new_signer.key_id]
    with pytest.raises(AuthenticationError) as caught:
        after.authorize(old_token)
    assert _reason(caught) == "unknown key"
    assert after.authorize(new_token).client_id == admin.client_id


def test_the_jwks_never_holds_a_private_part(world: World) -> None:
    for key in world.service.jwks()["keys"]:
        assert set(key) == {"kty", "crv", "x", "y", "kid", "use", "alg"}


# -------------------------------------------------------------------------------------------- rate limits


def test_rate_limit_on_requests(world: World) -> None:
    service = world.make(requests_per_second=3)
    _, admin, _ = service.create_tenant("acme", "Acme")
    token = _token(service, admin)
    for _ in range(3):
        service.authorize(token)
    with pytest.raises(RateLimitedError) as caught:
        service.authorize(token)
    assert caught.value.code == "rate_limited"
    assert caught.value.http_status == 429
    assert caught.value.details == {"retry_after": 1}
    world.clock.now += 1
    assert service.authorize(token).client_id == admin.client_id


def test_rate_limit_is_per_client(world: World) -> None:
    service = world.make(requests_per_second=2)
    _, admin, _ = service.create_tenant("acme", "Acme")
    other, _ = service.create_client("acme", "other", [RoleBinding(Role.WRITER)])
    admin_token, other_token = _token(service, admin), _token(service, other)
    service.authorize(admin_token)
    service.authorize(admin_token)
    with pytest.raises(RateLimitedError):
        service.authorize(admin_token)
    assert service.authorize(other_token).client_id == other.client_id


def test_token_endpoint_failures_count(world: World) -> None:
    service = world.make(requests_per_second=3)
    _, admin, secret = service.create_tenant("acme", "Acme")
    for _ in range(3):
        with pytest.raises(InvalidClientError):
            service.authenticate(admin.client_id, "rqs_guess")
    with pytest.raises(RateLimitedError):
        service.authenticate(admin.client_id, secret)  # even the right secret waits: guessing is throttled
    unknown = "cl-" + "b" * 24
    for _ in range(3):
        with pytest.raises(InvalidClientError):
            service.authenticate(unknown, "rqs_guess")
    with pytest.raises(RateLimitedError):
        service.authenticate(unknown, "rqs_guess")  # unknown ids are throttled alike: no existence oracle
    world.clock.now += 1
    assert service.authenticate(admin.client_id, secret) == admin


def test_the_repository_keeps_secrets_only_hashed(world: World) -> None:
    _, admin, secret = world.service.create_tenant("acme", "Acme")
    client, client_secret = world.service.create_client("acme", "c", [RoleBinding(Role.WRITER)])
    rotated = world.service.rotate_secret("acme", client.client_id, revoke_tokens=False)
    dump = repr(world.repository.__dict__)
    for value in (secret, client_secret, rotated):
        assert value not in dump
    assert isinstance(world.repository.get_client(admin.client_id), StoredClient)
