"""People and passkeys over real HTTP (the served API of tests/support/api.py): a tenant-admin creates
a person, the person registers a passkey with its enrollment token (a software authenticator in the
browser's place), signs in and holds a session token with its roles' scopes. Refusals: a reused
challenge, a spent enrollment token, a revoked person, another origin, another tenant's person."""

from __future__ import annotations

from typing import Any

import pytest

from infra.local.seed import SUPPORT_VAULT, TENANT
from tests.support.api import OTHER_TENANT, ApiWorld
from tests.support.api_routes import problem, send
from tests.support.people import (
    authenticator_for,
    bearer,
    create_person,
    enrolled,
    register,
    sign_in,
    sign_in_ceremony,
)

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
APPROVER = [{"role": "approver", "vault_id": SUPPORT_VAULT}]


def test_a_person_registers_a_passkey_signs_in_and_acts_with_its_roles(world: ApiWorld) -> None:
    admin = world.headers("tenant-admin")
    person = create_person(world.http, admin, APPROVER)
    answer = register(world.http, person)
    assert answer.status_code == 201, answer.text[:300]
    assert answer.json()["aaguid"] == "6e6f6e65-2d73-6f66-7477-617265000001"
    signed_in = sign_in(world.http, person)
    assert signed_in.status_code == 200, signed_in.text[:300]
    session = signed_in.json()
    assert signed_in.headers["cache-control"] == "no-store"
    assert session["token_type"] == "Bearer"
    assert session["person"] == {
        "person_id": person.person_id,
        "tenant_id": TENANT,
        "name": "Test Approver",
        "roles": APPROVER,
    }
    assert set(session["scope"].split()) == {
        f"vaults:read/{SUPPORT_VAULT}",
        f"access:read/{SUPPORT_VAULT}",
        f"access:approve/{SUPPORT_VAULT}",
        "webauthn:register",
    }
    token = session["access_token"]
    vault = send(world.http, "GET", f"/v1/vaults/{SUPPORT_VAULT}", headers=bearer(token))
    assert vault.status_code == 200
    problem(send(world.http, "GET", "/v1/clients", headers=bearer(token)), 403, "forbidden")
    # The session adds a second passkey; the admin sees both, never a key.
    second = authenticator_for(world.http)
    person.authenticator, first = second, person.authenticator
    assert register(world.http, person, token).status_code == 201
    view = send(world.http, "GET", f"/v1/people/{person.person_id}", headers=admin).json()
    assert sorted(c["credential_id"] for c in view["credentials"]) == sorted(person.credential_ids)
    assert all(c["last_used_at"] is None or c["last_used_at"] > 0 for c in view["credentials"])
    assert first.credentials  # the first device still holds its passkey


def test_a_reused_challenge_is_refused(world: ApiWorld) -> None:
    person, _ = enrolled(world.http, world.headers("tenant-admin"), APPROVER)
    ceremony = sign_in_ceremony(world.http)
    body = {
        "challenge_id": ceremony["challenge_id"],
        "credential": person.authenticator.authenticate(ceremony["options"]),
    }
    assert send(world.http, "POST", "/v1/webauthn/authentication/verify", json=body).status_code == 200
    again = send(world.http, "POST", "/v1/webauthn/authentication/verify", json=body)
    assert problem(again, 400, "passkey_invalid")["details"] == {"check": "challenge"}


def test_an_enrollment_token_registers_one_passkey(world: ApiWorld) -> None:
    person = create_person(world.http, world.headers("tenant-admin"), APPROVER)
    assert register(world.http, person).status_code == 201
    person.authenticator = authenticator_for(world.http)
    options = send(
        world.http, "POST", "/v1/webauthn/registration/options", json={}, headers=bearer(person.enrollment)
    )
    body = problem(options, 401, "unauthenticated")
    assert options.headers["www-authenticate"].startswith("Bearer ")
    assert body["detail"] == "a valid access token is required"


def test_a_revoked_person_is_refused_at_once(world: ApiWorld) -> None:
    admin = world.headers("tenant-admin")
    person, token = enrolled(world.http, admin, APPROVER)
    assert send(world.http, "GET", f"/v1/vaults/{SUPPORT_VAULT}", headers=bearer(token)).status_code == 200
    revoked = send(world.http, "DELETE", f"/v1/people/{person.person_id}", headers=admin)
    assert revoked.json()["status"] == "revoked"
    problem(
        send(world.http, "GET", f"/v1/vaults/{SUPPORT_VAULT}", headers=bearer(token)), 401, "unauthenticated"
    )
    refused = sign_in(world.http, person)
    assert problem(refused, 400, "passkey_invalid")["details"] == {"check": "credential"}


@pytest.mark.parametrize(
    ("knobs", "check"),
    [
        ({"origin": "https://evil.example"}, "origin"),
        ({"user_verified": False}, "user_verification"),
        ({"rp_id": "evil.example"}, "rp_id"),
    ],
)
def test_a_bad_ceremony_is_refused_and_registers_nothing(
    world: ApiWorld, knobs: dict[str, Any], check: str
) -> None:
    admin = world.headers("tenant-admin")
    person = create_person(world.http, admin, APPROVER)
    answer = register(world.http, person, **knobs)
    body = problem(answer, 400, "passkey_invalid")
    assert body["details"] == {"check": check}
    assert "evil" not in answer.text
    view = send(world.http, "GET", f"/v1/people/{person.person_id}", headers=admin).json()
    assert view["credentials"] == []
    assert view["enrollment_expires_at"] is not None  # the enrollment is not spent by a failure


def test_a_client_token_registers_no_passkey_and_a_person_gets_no_client_token(world: ApiWorld) -> None:
    admin = world.headers("tenant-admin")
    refused = send(world.http, "POST", "/v1/webauthn/registration/options", json={}, headers=admin)
    assert problem(refused, 403, "forbidden")["details"] == {"scope": "webauthn:register"}
    person = create_person(world.http, admin, APPROVER)
    token = send(
        world.http,
        "POST",
        "/v1/oauth2/token",
        data={"grant_type": "client_credentials"},
        auth=(person.person_id, "x"),
    )
    problem(token, 401, "invalid_client")


@pytest.mark.parametrize(
    "roles",
    [[{"role": "tenant-admin"}], [{"role": "writer", "vault_id": SUPPORT_VAULT}], [{"role": "requester"}]],
)
def test_a_person_holds_only_approver_or_auditor(world: ApiWorld, roles: list[dict[str, object]]) -> None:
    answer = send(
        world.http,
        "POST",
        "/v1/people",
        json={"name": "Eve", "roles": roles},
        headers=world.headers("tenant-admin"),
    )
    problem(answer, 400, "invalid_request")


def test_another_tenants_person_is_absent(world: ApiWorld) -> None:
    person, _ = enrolled(world.http, world.headers("tenant-admin"), APPROVER)
    other = world.headers("tenant-admin", OTHER_TENANT)
    for method, url in (
        ("GET", f"/v1/people/{person.person_id}"),
        ("POST", f"/v1/people/{person.person_id}/enrollment"),
        ("DELETE", f"/v1/people/{person.person_id}"),
        ("DELETE", f"/v1/people/{person.person_id}/credentials/{person.credential_ids[0]}"),
    ):
        problem(send(world.http, method, url, headers=other), 404, "not_found")
    listed = send(world.http, "GET", "/v1/people", headers=other).json()["people"]
    assert person.person_id not in {p["person_id"] for p in listed}
    view = send(
        world.http, "GET", f"/v1/people/{person.person_id}", headers=world.headers("tenant-admin")
    ).json()
    assert view["status"] == "active"
    assert len(view["credentials"]) == 1


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"challenge_id": "0" * 32},
        {"challenge_id": "not hex", "credential": {}},
        {"challenge_id": "0" * 32, "credential": "text"},
        {"challenge_id": "0" * 32, "credential": {}, "extra": 1},
    ],
)
def test_malformed_sign_in_bodies_are_refused(world: ApiWorld, body: dict[str, object]) -> None:
    answer = send(world.http, "POST", "/v1/webauthn/authentication/verify", json=body)
    assert answer.status_code == 400
    assert answer.json()["code"] in {"invalid_request", "passkey_invalid"}
