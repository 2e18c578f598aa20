"""private_key_jwt (RFC 7523) over the in-memory ports: clients registered with a did:key have no secret
and authenticate with assertions they sign; every claim is checked (iss = sub = client id, aud, exp at
most five minutes ahead, iat/nbf, a single-use jti), and every refusal is one invalid_client whose cause
names the check."""

from __future__ import annotations

import base64
import time
from dataclasses import dataclass
from typing import Any

import pytest

from reliquary.errors import ConflictError, InvalidClientError, InvalidDidError, RateLimitedError
from reliquary.identity.assertions import AssertionRejected
from reliquary.identity.did import DidKeySigner, KeyType
from reliquary.identity.jws import sign_compact, sign_json
from reliquary.identity.memory import InMemoryIdentityRepository, LocalTokenSigner
from reliquary.identity.scopes import Role, RoleBinding, Scope
from reliquary.identity.service import IdentityService

ISSUER = "https://reliquary.test"
TOKEN_ENDPOINT = ISSUER + "/v1/oauth2/token"
START = 1_800_000_000


@dataclass
class Clock:
    now: int = START

    def __call__(self) -> int:
        return self.now


@dataclass
class World:
    service: IdentityService
    repository: InMemoryIdentityRepository
    clock: Clock


@pytest.fixture
def world() -> World:
    repository, clock = InMemoryIdentityRepository(), Clock()
    service = IdentityService(
        repository=repository,
        people=repository,
        signer=LocalTokenSigner.generate(),
        issuer=ISSUER,
        audience="reliquary-api",
        token_ttl_seconds=900,
        operator_tenant="operator",
        requests_per_second=1000,
        clock=clock,
    )
    service.create_tenant("acme", "Acme")
    return World(service, repository, clock)


def _agent(world: World, key_type: KeyType = KeyType.ED25519) -> tuple[str, DidKeySigner]:
    signer = DidKeySigner.generate(key_type)
    client, secret = world.service.create_client(
        "acme", "agent", [RoleBinding(Role.WRITER, "v1")], did=signer.did
    )
    assert secret is None
    assert client.did == signer.did
    return client.client_id, signer


def _claims(client_id: str, now: int, **changes: Any) -> dict[str, Any]:
    claims: dict[str, Any] = {
        "iss": client_id,
        "sub": client_id,
        "aud": TOKEN_ENDPOINT,
        "iat": now,
        "exp": now + 120,
        "jti": f"jti-{time.monotonic_ns()}",
    }
    claims.update(changes)
    return {name: value for name, value in claims.items() if value is not None}


def _reason(world: World, assertion: object, client_id: str | None = None) -> str:
    with pytest.raises(InvalidClientError) as refused:
        world.service.authenticate_assertion(assertion, client_id)
    assert refused.value.message == "client authentication failed"  # one message for every failure
    cause = refused.value.__cause__
    assert isinstance(cause, AssertionRejected)
    return cause.reason


@pytest.mark.parametrize("key_type", list(KeyType))
def test_a_did_client_authenticates_with_an_assertion_and_gets_a_token(
    world: World, key_type: KeyType
) -> None:
    client_id, signer = _agent(world, key_type)
    client = world.service.authenticate_assertion(sign_json(signer, _claims(client_id, START)), client_id)
    assert client.client_id == client_id
    issued = world.service.issue_token(client)
    caller = world.service.authorize(issued.access_token)
    assert (caller.tenant_id, caller.client_id) == ("acme", client_id)
    assert caller.grants.allows(Scope.MEMORIES_WRITE, "v1")


def test_the_issuer_is_an_audience_too_and_a_list_may_name_it(world: World) -> None:
    client_id, signer = _agent(world)
    for aud in (ISSUER, [TOKEN_ENDPOINT], ["https://other.example", ISSUER]):
        world.service.authenticate_assertion(sign_json(signer, _claims(client_id, START, aud=aud)))


def test_a_replayed_assertion_is_refused(world: World) -> None:
    client_id, signer = _agent(world)
    assertion = sign_json(signer, _claims(client_id, START, jti="once"))
    world.service.authenticate_assertion(assertion)
    assert _reason(world, assertion) == "replayed jti"
    # The same jti in a new assertion is a replay too, until the first one's expiry has passed.
    world.clock.now = START + 100
    assert _reason(world, sign_json(signer, _claims(client_id, START + 100, jti="once"))) == "replayed jti"
    world.clock.now = START + 120 + 31
    world.service.authenticate_assertion(sign_json(signer, _claims(client_id, world.clock.now, jti="once")))
    # Another client's jti is its own.
    other_id, other = _agent(world)
    world.service.authenticate_assertion(sign_json(other, _claims(other_id, world.clock.now, jti="once")))


CLAIMS: dict[str, tuple[dict[str, Any], str]] = {
    "no exp": ({"exp": None}, "exp"),
    "exp a string": ({"exp": str(START + 60)}, "exp"),
    "exp a float": ({"exp": START + 60.5}, "exp"),
    "exp a bool": ({"exp": True}, "exp"),
    "expired": ({"exp": START - 31, "iat": START - 100}, "expired"),
    "six minutes ahead": ({"exp": START + 331}, "lifetime"),
    "iat in the future": ({"iat": START + 31}, "iat in the future"),
    "iat after exp": ({"iat": START + 20, "exp": START + 10}, "iat in the future"),
    "iat too old": ({"iat": START - 400}, "iat too old"),
    "nbf in the future": ({"nbf": START + 60}, "nbf in the future"),
    "nbf a string": ({"nbf": "0"}, "nbf"),
    "no jti": ({"jti": None}, "jti"),
    "empty jti": ({"jti": ""}, "jti"),
    "jti with a space": ({"jti": "a b"}, "jti"),
    "jti too long": ({"jti": "j" * 129}, "jti"),
    "jti a number": ({"jti": 7}, "jti"),
    "sub another client": ({"sub": "cl-" + "0" * 24}, "iss/sub"),
    "no sub": ({"sub": None}, "iss/sub"),
    "aud the API audience": ({"aud": "reliquary-api"}, "aud"),
    "aud another endpoint": ({"aud": "https://evil.example/v1/oauth2/token"}, "aud"),
    "no aud": ({"aud": None}, "aud"),
    "aud an empty list": ({"aud": []}, "aud"),
    "aud a list of numbers": ({"aud": [1, TOKEN_ENDPOINT]}, "aud"),
}


@pytest.mark.parametrize("changes", CLAIMS.values(), ids=list(CLAIMS))
def test_a_bad_claim_is_invalid_client(world: World, changes: tuple[dict[str, Any], str]) -> None:
    client_id, signer = _agent(world)
    claims, reason = changes
    assert _reason(world, sign_json(signer, _claims(client_id, START, **claims))) == reason


def test_the_signature_must_be_the_clients_did_key(world: World) -> None:
    client_id, signer = _agent(world)
    stranger = DidKeySigner.generate(KeyType.ED25519)
    assert _reason(world, sign_json(stranger, _claims(client_id, START))) == "signature"
    # Another key type's algorithm is refused before any signature is checked.
    p256 = DidKeySigner.generate(KeyType.P256)
    assert _reason(world, sign_json(p256, _claims(client_id, START))) == "algorithm"
    token = sign_json(signer, _claims(client_id, START))
    header, payload, signature = token.split(".")
    # One bit of the signature flipped (a fixed replacement would be no change when it is already there).
    raw = base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4))
    flipped = base64.urlsafe_b64encode(bytes([raw[0] ^ 1]) + raw[1:]).rstrip(b"=").decode()
    assert _reason(world, f"{header}.{payload}.{flipped}") == "signature"
    none = sign_compact(signer, b"{}").split(".")[0]
    assert _reason(world, f"{none}.{payload}.") == "format: format"


def test_the_client_must_exist_hold_a_did_and_be_active(world: World) -> None:
    signer = DidKeySigner.generate(KeyType.ED25519)
    unknown = "cl-" + "a" * 24
    assert _reason(world, sign_json(signer, _claims(unknown, START))) == "unknown client"
    assert _reason(world, sign_json(signer, _claims("not-a-client", START))) == "iss"
    secret_client, _ = world.service.create_client("acme", "secret", [RoleBinding(Role.WRITER)])
    claims = _claims(secret_client.client_id, START)
    assert _reason(world, sign_json(signer, claims)) == "not an active client with a did:key"
    client_id, signer = _agent(world)
    world.service.revoke_client("acme", client_id)
    assert (
        _reason(world, sign_json(signer, _claims(client_id, START))) == "not an active client with a did:key"
    )


def test_the_form_client_id_must_match_the_assertion(world: World) -> None:
    client_id, signer = _agent(world)
    other_id, _ = _agent(world)
    assert _reason(world, sign_json(signer, _claims(client_id, START)), other_id) == "client_id"


def test_malformed_assertions_are_invalid_client(world: World) -> None:
    for bad in ("", "a.b", "a.b.c.d.e", "x" * 20_000, 42, None):
        assert _reason(world, bad).startswith("format")


def test_a_did_client_has_no_secret(world: World) -> None:
    client_id, _ = _agent(world)
    with pytest.raises(InvalidClientError):
        world.service.authenticate(client_id, "rqs_" + "a" * 43)
    with pytest.raises(InvalidClientError):
        world.service.authenticate(client_id, "")
    with pytest.raises(ConflictError):
        world.service.rotate_secret("acme", client_id, revoke_tokens=False)
    assert world.repository.get_client(client_id).secret_hash is None


def test_a_client_needs_a_valid_did_key(world: World) -> None:
    for bad in ("did:web:example.com", "did:key:z6Mk", "did:key:" + "z" * 50):
        with pytest.raises(InvalidDidError):
            world.service.create_client("acme", "agent", [RoleBinding(Role.WRITER)], did=bad)
    assert [c.name for c in world.service.list_clients("acme")] == ["tenant administrator"]


def test_assertions_count_against_the_clients_rate(world: World) -> None:
    client_id, signer = _agent(world)
    slow = IdentityService(
        repository=world.repository,
        people=world.repository,
        signer=LocalTokenSigner.generate(),
        issuer=ISSUER,
        audience="reliquary-api",
        token_ttl_seconds=900,
        operator_tenant="operator",
        requests_per_second=2,
        clock=world.clock,
    )
    for _ in range(2):
        slow.authenticate_assertion(sign_json(signer, _claims(client_id, START)))
    with pytest.raises(RateLimitedError):
        slow.authenticate_assertion(sign_json(signer, _claims(client_id, START)))
