"""People over HTTP, for the API tests: a tenant-admin creates a person, the person registers a passkey
with its enrollment token (a software authenticator standing in for the browser) and signs in."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx

from tests.support.api_routes import send
from tests.support.authenticator import SoftAuthenticator


@dataclass
class PersonAtHttp:
    person_id: str
    tenant_id: str
    enrollment: str  # the enrollment token (spent once a passkey is registered)
    authenticator: SoftAuthenticator = field(default_factory=SoftAuthenticator)
    credential_ids: list[str] = field(default_factory=list)


def create_person(
    http: httpx.Client, admin_headers: dict[str, str], roles: list[dict[str, Any]]
) -> PersonAtHttp:
    answer = send(
        http, "POST", "/v1/people", json={"name": "Test Approver", "roles": roles}, headers=admin_headers
    )
    assert answer.status_code == 201, answer.text[:300]
    body = answer.json()
    return PersonAtHttp(body["person"]["person_id"], body["person"]["tenant_id"], body["enrollment"]["token"])


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def register(
    http: httpx.Client, person: PersonAtHttp, token: str | None = None, **knobs: Any
) -> httpx.Response:
    """Registration options, the authenticator's response, and the verify call; its answer."""
    headers = bearer(token or person.enrollment)
    options = send(http, "POST", "/v1/webauthn/registration/options", json={}, headers=headers)
    assert options.status_code == 200, options.text[:300]
    ceremony = options.json()
    credential = person.authenticator.register(ceremony["options"], **knobs)
    answer = send(
        http,
        "POST",
        "/v1/webauthn/registration/verify",
        json={"challenge_id": ceremony["challenge_id"], "credential": credential, "label": "test key"},
        headers=headers,
    )
    if answer.status_code == 201:
        person.credential_ids.append(answer.json()["credential_id"])
    return answer


def sign_in_ceremony(http: httpx.Client) -> dict[str, Any]:
    options = send(http, "POST", "/v1/webauthn/authentication/options", json={})
    assert options.status_code == 200, options.text[:300]
    ceremony: dict[str, Any] = options.json()
    return ceremony


def sign_in(http: httpx.Client, person: PersonAtHttp, **knobs: Any) -> httpx.Response:
    ceremony = sign_in_ceremony(http)
    credential = person.authenticator.authenticate(ceremony["options"], **knobs)
    return send(
        http,
        "POST",
        "/v1/webauthn/authentication/verify",
        json={"challenge_id": ceremony["challenge_id"], "credential": credential},
    )


def enrolled(
    http: httpx.Client, admin_headers: dict[str, str], roles: list[dict[str, Any]]
) -> tuple[PersonAtHttp, str]:
    """A person with one passkey, signed in: (the person, a session token)."""
    person = create_person(http, admin_headers, roles)
    assert register(http, person).status_code == 201
    answer = sign_in(http, person)
    assert answer.status_code == 200, answer.text[:300]
    return person, str(answer.json()["access_token"])
