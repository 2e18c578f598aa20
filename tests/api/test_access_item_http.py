"""The sealed item of an approved access request over real HTTP (``GET /v1/access-requests/{id}/item``):
the client that made the request gets the envelope its grant opens (it opens, with the core's own
``open_grant``, to the memory's exact bytes, checked with the service keys ``GET /v1/audit/keys``
publishes); every one else is told nothing (404, as for a request that does not exist), and a request that
is pending or denied, or whose grant expired, is a typed 409 naming its state. No answer carries the
plaintext."""

from __future__ import annotations

import base64
import dataclasses
import time
import uuid
from collections.abc import Mapping
from typing import Any

import pytest
from fastapi.testclient import TestClient

from infra.local.seed import NOTES, STEP_UP_PURPOSE, SUPPORT_VAULT, TENANT
from reliquary.api.app import create_app
from reliquary.crypto.grants import open_grant
from reliquary.crypto.signing import KeyRing, SignatureAlgorithm, VerifyingKey
from reliquary.gateway import Capability, Functions
from reliquary.identity.scopes import Role, RoleBinding
from tests.support.api import ITEM, OTHER_TENANT, OTHER_VAULT, ApiWorld
from tests.support.api_flows import client_headers, decided, service_keyring
from tests.support.api_routes import problem, send

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

REQUESTS = "/v1/access-requests"
WAIT_SECONDS = 60.0


def _started(world: ApiWorld, headers: dict[str, str], **changes: Any) -> tuple[str, Any]:
    """(request id, the requester's device) of a request started with ``headers``."""
    device = world.enrol()
    request_id, body = world.access_request(device, **changes)
    answer = world.http.post(REQUESTS, json=body, headers={**headers, "Idempotency-Key": request_id})
    assert answer.status_code == 202, answer.text
    return request_id, device


def _item(world: ApiWorld, request_id: str, headers: dict[str, str]) -> Any:
    return send(world.http, "GET", f"{REQUESTS}/{request_id}/item", headers=headers)


def _published_keys(world: ApiWorld) -> list[VerifyingKey]:
    answer = world.http.get("/v1/audit/keys", headers=world.headers("auditor"))
    assert answer.status_code == 200, answer.text
    published = answer.json()["service_keys"]
    assert published
    keys = []
    for key in published:
        assert set(key) == {"algorithm", "key_id", "public_key"}  # the public halves only
        algorithm = SignatureAlgorithm.parse(key["algorithm"])
        verifying = VerifyingKey(algorithm, base64.b64decode(key["public_key"]))
        assert verifying.key_id.hex() == key["key_id"]
        keys.append(verifying)
    return keys


def _published_keyring(world: ApiWorld) -> KeyRing:
    return KeyRing(_published_keys(world))


def test_the_audit_keys_publish_the_service_keys_the_encrypt_function_signs_with(world: ApiWorld) -> None:
    stored = service_keyring(world)
    for key in _published_keys(world):
        assert stored.get(key.key_id, key.algorithm) is not None
    assert len(stored) == len(_published_keys(world))


def test_the_maker_of_an_approved_request_gets_the_item_its_grant_opens(world: ApiWorld) -> None:
    _, headers = client_headers(world, RoleBinding(Role.REQUESTER, SUPPORT_VAULT))
    request_id, device = _started(world, headers)
    view = decided(world, f"{REQUESTS}/{request_id}", headers)
    assert view["status"] == "approved", view["reasons"]

    answer = _item(world, request_id, headers)
    assert answer.status_code == 200, answer.text
    sealed = answer.json()
    assert set(sealed) == {
        "request_id",
        "vault_id",
        "memory_id",
        "version",
        "content_type",
        "envelope",
        "grant_expires_at",
    }
    assert (sealed["request_id"], sealed["vault_id"], sealed["memory_id"]) == (
        request_id,
        SUPPORT_VAULT,
        ITEM,
    )
    assert sealed["version"] == view["grant"]["version"]
    assert sealed["grant_expires_at"] == view["grant"]["expires_at"]
    assert NOTES[ITEM].decode() not in answer.text
    opened = open_grant(
        base64.b64decode(view["grant"]["grant"]),
        base64.b64decode(sealed["envelope"]),
        requester_private_key=device.key,
        service_keys=_published_keyring(world),
        now=int(time.time()),
        request_id=request_id,
        expected=(TENANT, SUPPORT_VAULT, ITEM),
    )
    assert opened == NOTES[ITEM]
    # Asked again, the same item (read-only).
    assert _item(world, request_id, headers).json() == sealed

    # Nobody else: another requester of the vault, an approver (access:read sees the request, not its
    # item), the tenant-admin, another tenant's requester: each told nothing, exactly as for no request.
    _, other = client_headers(world, RoleBinding(Role.REQUESTER, SUPPORT_VAULT))
    _, stranger = client_headers(world, RoleBinding(Role.REQUESTER, OTHER_VAULT), tenant=OTHER_TENANT)
    absent = problem(_item(world, f"api-{uuid.uuid4().hex}", headers), 404, "not_found")
    for who in (other, world.headers("tenant-admin"), stranger):
        body = problem(_item(world, request_id, who), 404, "not_found")
        assert {k: v for k, v in body.items() if k != "request_id"} == {
            k: v for k, v in absent.items() if k != "request_id"
        }
    # A token without access:request anywhere is refused by scope, as on every route.
    refused = problem(_item(world, request_id, world.headers("approver")), 403, "forbidden")
    assert refused["details"] == {"scope": "access:request"}


def test_a_denied_request_releases_nothing(world: ApiWorld) -> None:
    _, headers = client_headers(world, RoleBinding(Role.REQUESTER, SUPPORT_VAULT))
    device = world.enrol()
    _, body = world.access_request(device)  # proved for its own request id...
    request_id = f"api-{uuid.uuid4().hex}"  # ...sent under another: the proof does not verify
    answer = world.http.post(REQUESTS, json=body, headers={**headers, "Idempotency-Key": request_id})
    assert answer.status_code == 202, answer.text
    assert decided(world, f"{REQUESTS}/{request_id}", headers)["status"] == "denied"
    refused = problem(_item(world, request_id, headers), 409, "conflict")
    assert refused["details"] == {"check": "denied"}
    assert "envelope" not in refused


class _Recording:
    """The runtime's capability functions, recording each action asked of them."""

    def __init__(self, functions: Functions) -> None:
        self._functions = functions
        self.asked: list[tuple[Capability, Any]] = []

    def call(self, capability: Capability, event: Mapping[str, Any]) -> dict[str, Any]:
        self.asked.append((capability, event.get("action")))
        return self._functions.call(capability, event)


def test_an_expired_grant_releases_nothing(world: ApiWorld) -> None:
    """The served runtime behind an app whose clock reads a given time: up to the grant's last second the
    encrypt function releases the item; from its expiry on, a typed 409 `expired` and encrypt is never
    asked."""
    _, headers = client_headers(world, RoleBinding(Role.REQUESTER, SUPPORT_VAULT))
    request_id, _ = _started(world, headers)
    view = decided(world, f"{REQUESTS}/{request_id}", headers)
    assert view["status"] == "approved", view["reasons"]
    expires_at = view["grant"]["expires_at"]

    def item_at(now: int) -> tuple[Any, list[tuple[Capability, Any]]]:
        functions = _Recording(world.api.runtime.functions)
        runtime = dataclasses.replace(world.api.runtime, clock=lambda: now, functions=functions)
        with TestClient(create_app(lambda: runtime)) as http:
            return http.get(f"{REQUESTS}/{request_id}/item", headers=headers), functions.asked

    live, asked = item_at(expires_at - 1)
    assert live.status_code == 200, live.text[:300]
    assert live.json()["grant_expires_at"] == expires_at
    assert asked == [(Capability.ENCRYPT, "sealed_item")]
    for now in (expires_at, expires_at + 1, expires_at + 86_400):
        answer, asked = item_at(now)
        refused = problem(answer, 409, "conflict")
        assert refused["details"] == {"check": "expired"}
        assert refused["detail"] == "the access request's grant has expired: make a new request"
        assert "envelope" not in answer.text
        assert asked == []  # nothing released: the encrypt function was never asked


def test_a_pending_request_releases_nothing(world: ApiWorld) -> None:
    # A step-up waits for people: pending until someone answers.
    _, headers = client_headers(world, RoleBinding(Role.REQUESTER, SUPPORT_VAULT))
    request_id, _ = _started(world, headers, purpose=STEP_UP_PURPOSE)
    deadline = time.monotonic() + WAIT_SECONDS
    while request_id not in {a["request_id"] for a in _waiting(world)}:
        assert time.monotonic() < deadline, "the step-up never waited for people"
        time.sleep(0.2)
    refused = problem(_item(world, request_id, headers), 409, "conflict")
    assert refused["details"] == {"check": "pending"}


def _waiting(world: ApiWorld) -> list[dict[str, Any]]:
    answer = send(world.http, "GET", "/v1/approvals", headers=world.headers("approver"))
    assert answer.status_code == 200, answer.text
    approvals: list[dict[str, Any]] = answer.json()["approvals"]
    return approvals


@pytest.mark.parametrize("request_id", ["", "..", "a" * 129, "-starts-with-dash", "sp ace"])
def test_a_malformed_request_id_is_refused_and_not_echoed(world: ApiWorld, request_id: str) -> None:
    _, headers = client_headers(world, RoleBinding(Role.REQUESTER, SUPPORT_VAULT))
    answer = world.http.get(f"{REQUESTS}/{request_id}/item", headers=headers)
    assert answer.status_code in (400, 404, 405), answer.text
    if request_id and len(request_id) > 2:
        assert request_id not in answer.text
