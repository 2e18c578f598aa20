"""Every route under every role, over HTTP against the served API (issue 13: "a test of every route under
every role").

The oracle is tests/support/api_routes.py, written from docs/api.md: the scope each route needs and the
scopes each role holds. Every route gets a well-formed request from a client of each role (the world's
vault-bound roles are bound to agent-memory; each is tried there and on another vault of the tenant,
board-minutes): a role without the scope gets a 403 `forbidden` problem and nothing changes; a role with
it gets the route's success. Destructive routes act on resources made for the call. Without a token, or
with a malformed one, every authenticated route answers 401 with `WWW-Authenticate`."""

from __future__ import annotations

import base64
import re
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from infra.local.seed import STEP_UP_PURPOSE, STRICT_VAULT, SUPPORT_VAULT, TENANT
from reliquary.identity.scopes import Role, RoleBinding
from tests.support.api import ITEM, ApiClient, ApiWorld
from tests.support.api_flows import client_headers
from tests.support.api_routes import (
    AUTHED,
    CLIENT_AUTH,
    PAGES,
    ROLE_SCOPES,
    ROLES,
    ROUTES,
    VAULT_ROLES,
    Route,
    allowed,
    holds,
    problem,
    render_matrix,
    report,
    send,
    token_scope,
)
from tests.support.people import PersonAtHttp, bearer, create_person, register

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

VAULT = SUPPORT_VAULT  # the world binds the vault-bound roles to it
OTHER_VAULT = STRICT_VAULT  # another vault of the same tenant
BOUND_TO = dict.fromkeys(VAULT_ROLES, VAULT)
POLICY_KINDS = ("context", "trust", "quorum")
DOCS = Path(__file__).resolve().parents[2] / "docs" / "api.md"
READ_REQUEST = ("GET", "/v1/access-requests/{request_id}")
SEALED_ITEM = ("GET", "/v1/access-requests/{request_id}/item")
BY_REQUEST = (READ_REQUEST, SEALED_ITEM)  # the vault is the request's: their own tests below
DECIDED_SECONDS = 60.0


def _id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


@dataclass
class Call:
    """One request of a case: what an allowed answer must say, and what a refused one must leave as it was."""

    method: str
    url: str
    json: Any = None
    params: dict[str, str] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    check: Callable[[httpx.Response], None] | None = None
    intact: Callable[[], None] | None = None


@dataclass
class Lab:
    """The world, set up for the cases: a tenant-admin to prepare and inspect resources, and access
    requests of known owners (made once, decided, so the log has a checkpoint)."""

    world: ApiWorld
    requests: dict[tuple[str, str], str] = field(default_factory=dict)  # (by role, vault) -> request id
    step_up: str = ""  # the step-up request waiting for people (``waiting``)
    sent: int = 0

    # --- the tenant-admin's view, to prepare and inspect ---------------------------------------------
    def admin(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        headers = {**self.world.headers("tenant-admin"), **kwargs.pop("headers", {})}
        return send(self.world.http, method, url, headers=headers, **kwargs)

    def admin_json(self, method: str, url: str, **kwargs: Any) -> Any:
        answer = self.admin(method, url, **kwargs)
        assert answer.is_success, (method, url, answer.status_code, answer.text[:300])
        return answer.json()

    def seal(self, vault: str, user: str) -> str:
        memory_id = _id("roles-m")
        self.admin_json(
            "POST",
            f"/v1/vaults/{vault}/memories",
            json={"memory_id": memory_id, "text": "a throwaway note", "user_id": user},
        )
        return memory_id

    def memory_state(self, vault: str, memory_id: str) -> str:
        versions = self.admin_json("GET", f"/v1/vaults/{vault}/memories/{memory_id}")["versions"]
        return str(versions[-1]["state"])

    def assert_live(self, vault: str, memory_id: str) -> None:
        assert self.memory_state(vault, memory_id) == "live"

    def assert_absent(self, url: str) -> None:
        problem(self.admin("GET", url), 404, "not_found")

    def vault(self, vault: str) -> dict[str, Any]:
        found: dict[str, Any] = self.admin_json("GET", f"/v1/vaults/{vault}")
        return found

    def policy(self, vault: str, kind: str) -> Any:
        return self.admin_json("GET", f"/v1/vaults/{vault}/policies/{kind}")["policy"]

    def client_view(self, client_id: str) -> dict[str, Any]:
        found: dict[str, Any] = self.admin_json("GET", f"/v1/clients/{client_id}")
        return found

    def person(self) -> PersonAtHttp:
        return create_person(
            self.world.http, self.world.headers("tenant-admin"), [{"role": "approver", "vault_id": VAULT}]
        )

    def person_view(self, person_id: str) -> dict[str, Any]:
        found: dict[str, Any] = self.admin_json("GET", f"/v1/people/{person_id}")
        return found

    def throwaway_client(self) -> ApiClient:
        return self.world.new_client(TENANT, RoleBinding(Role.WRITER, VAULT))

    def token_status(self, client_id: str, secret: str) -> int:
        answer = send(
            self.world.http,
            "POST",
            "/v1/oauth2/token",
            data={"grant_type": "client_credentials"},
            auth=(client_id, secret),
        )
        return answer.status_code

    def decided(self, request_id: str) -> dict[str, Any]:
        deadline = time.monotonic() + DECIDED_SECONDS
        while True:
            view: dict[str, Any] = self.admin_json("GET", f"/v1/access-requests/{request_id}")
            if view["status"] != "pending" or time.monotonic() > deadline:
                return view
            time.sleep(0.25)

    def waiting(self) -> str:
        """A step-up request waiting for people on VAULT (a new one once the last stopped waiting)."""
        listed = self.admin_json("GET", "/v1/approvals")["approvals"]
        if self.step_up in {a["request_id"] for a in listed}:
            return self.step_up
        _, headers = client_headers(self.world, RoleBinding(Role.REQUESTER, VAULT))
        request_id, body = self.world.access_request(self.world.enrol(), vault=VAULT, purpose=STEP_UP_PURPOSE)
        answer = send(
            self.world.http,
            "POST",
            "/v1/access-requests",
            json=body,
            headers={**headers, "Idempotency-Key": request_id},
        )
        assert answer.status_code == 202, answer.text[:300]
        deadline = time.monotonic() + DECIDED_SECONDS
        while request_id not in {
            a["request_id"] for a in self.admin_json("GET", "/v1/approvals")["approvals"]
        }:
            assert time.monotonic() < deadline, "the step-up request never waited for approval"
            time.sleep(0.25)
        self.step_up = request_id
        return request_id

    def assert_unanswered(self, request_id: str) -> None:
        listed = {a["request_id"]: a for a in self.admin_json("GET", "/v1/approvals")["approvals"]}
        assert listed[request_id]["approvals"] == []

    def request_access(self, role: str, vault: str) -> str:
        request_id, body = self.world.access_request(self.world.demo.requester(0), vault=vault, item=ITEM)
        answer = send(
            self.world.http,
            "POST",
            "/v1/access-requests",
            json=body,
            headers=self.world.headers(role, **{"Idempotency-Key": request_id}),
        )
        assert answer.status_code == 202, answer.text[:300]
        return request_id

    # --- a well-formed request per route ---------------------------------------------------------------
    def build(self, route: Route, role: str, vault: str | None) -> list[Call]:
        builder = BUILDERS[route.key]
        return builder(self, role, vault or VAULT)


def _idempotent() -> dict[str, str]:
    return {"Idempotency-Key": _id("roles")}


def _tenants(lab: Lab, role: str, vault: str) -> list[Call]:
    tenant_id = _id("roles-t")

    def check(answer: httpx.Response) -> None:
        body = answer.json()
        assert body["tenant"]["tenant_id"] == tenant_id
        assert body["admin"]["client"]["tenant_id"] == tenant_id
        assert body["admin"]["client"]["roles"] == [{"role": "tenant-admin", "vault_id": None}]
        assert body["admin"]["client_secret"].startswith("rqs_")

    body = {"tenant_id": tenant_id, "name": "Roles test"}
    return [Call("POST", "/v1/tenants", json=body, headers=_idempotent(), check=check)]


def _create_client(lab: Lab, role: str, vault: str) -> list[Call]:
    roles = [{"role": "writer", "vault_id": VAULT}]

    def check(answer: httpx.Response) -> None:
        body = answer.json()
        assert body["client"]["tenant_id"] == TENANT
        assert body["client"]["roles"] == roles
        assert answer.headers["location"] == f"/v1/clients/{body['client']['client_id']}"
        assert lab.token_status(body["client"]["client_id"], body["client_secret"]) == 200

    return [Call("POST", "/v1/clients", json={"name": "roles test", "roles": roles}, check=check)]


def _list_clients(lab: Lab, role: str, vault: str) -> list[Call]:
    def check(answer: httpx.Response) -> None:
        listed = answer.json()["clients"]
        assert lab.world.client("writer").client_id in {c["client_id"] for c in listed}
        assert {c["tenant_id"] for c in listed} == {TENANT}
        assert "rqs_" not in answer.text  # never a secret,
        assert "scrypt" not in answer.text  # nor its hash

    return [Call("GET", "/v1/clients", check=check)]


def _get_client(lab: Lab, role: str, vault: str) -> list[Call]:
    client_id = lab.world.client("writer").client_id

    def check(answer: httpx.Response) -> None:
        body = answer.json()
        assert (body["client_id"], body["tenant_id"], body["status"]) == (client_id, TENANT, "active")
        assert body["roles"] == [{"role": "writer", "vault_id": VAULT}]

    return [Call("GET", f"/v1/clients/{client_id}", check=check)]


def _set_roles(lab: Lab, role: str, vault: str) -> list[Call]:
    client = lab.throwaway_client()
    roles = [{"role": "requester", "vault_id": VAULT}]

    def check(answer: httpx.Response) -> None:
        assert answer.json()["roles"] == roles
        assert lab.client_view(client.client_id)["roles"] == roles

    def intact() -> None:
        assert lab.client_view(client.client_id)["roles"] == [{"role": "writer", "vault_id": VAULT}]

    url = f"/v1/clients/{client.client_id}/roles"
    return [Call("PUT", url, json={"roles": roles}, check=check, intact=intact)]


def _rotate_secret(lab: Lab, role: str, vault: str) -> list[Call]:
    client = lab.throwaway_client()

    def check(answer: httpx.Response) -> None:
        body = answer.json()
        assert body["client_id"] == client.client_id
        assert body["client_secret"] != client.secret
        assert lab.token_status(client.client_id, body["client_secret"]) == 200
        assert lab.token_status(client.client_id, client.secret) == 401

    def intact() -> None:
        assert lab.token_status(client.client_id, client.secret) == 200

    url = f"/v1/clients/{client.client_id}/secret"
    return [Call("POST", url, json={"revoke_tokens": False}, check=check, intact=intact)]


def _revoke_client(lab: Lab, role: str, vault: str) -> list[Call]:
    client = lab.throwaway_client()

    def check(answer: httpx.Response) -> None:
        assert answer.json()["status"] == "revoked"
        assert lab.token_status(client.client_id, client.secret) == 401

    def intact() -> None:
        assert lab.client_view(client.client_id)["status"] == "active"

    return [Call("DELETE", f"/v1/clients/{client.client_id}", check=check, intact=intact)]


def _create_vault(lab: Lab, role: str, vault: str) -> list[Call]:
    vault_id = _id("roles-v")

    def check(answer: httpx.Response) -> None:
        body = answer.json()
        assert (body["tenant_id"], body["vault_id"], body["key_version"]) == (TENANT, vault_id, 1)
        assert answer.headers["location"] == f"/v1/vaults/{vault_id}"

    def intact() -> None:
        lab.assert_absent(f"/v1/vaults/{vault_id}")

    body = {"vault_id": vault_id}
    return [Call("POST", "/v1/vaults", json=body, headers=_idempotent(), check=check, intact=intact)]


def _list_vaults(lab: Lab, role: str, vault: str) -> list[Call]:
    def check(answer: httpx.Response) -> None:
        listed = {v["vault_id"] for v in answer.json()["vaults"]}
        if role in BOUND_TO:
            assert listed == {BOUND_TO[role]}  # only the vaults the token may read
        else:
            assert {VAULT, OTHER_VAULT} <= listed

    return [Call("GET", "/v1/vaults", params={"limit": "100"}, check=check)]


def _get_vault(lab: Lab, role: str, vault: str) -> list[Call]:
    def check(answer: httpx.Response) -> None:
        body = answer.json()
        assert body["vault_id"] == vault
        assert body["keys"][0]["version"] == 1

    return [Call("GET", f"/v1/vaults/{vault}", check=check)]


def _rotate(lab: Lab, role: str, vault: str) -> list[Call]:
    before = lab.vault(vault)["current_key_version"]

    def check(answer: httpx.Response) -> None:
        assert answer.json()["key_version"] == before + 1
        assert lab.vault(vault)["current_key_version"] == before + 1

    def intact() -> None:
        assert lab.vault(vault)["current_key_version"] == before

    return [
        Call("POST", f"/v1/vaults/{vault}/keys/rotate", headers=_idempotent(), check=check, intact=intact)
    ]


def _rewrap(lab: Lab, role: str, vault: str) -> list[Call]:
    current = lab.vault(vault)["current_key_version"]

    def check(answer: httpx.Response) -> None:
        body = answer.json()
        assert body["key_version"] == current
        assert body["rewrapped"] + body["already_current"] + body["skipped_shredded"] >= len(
            lab.world.demo.items
        )

    return [Call("POST", f"/v1/vaults/{vault}/keys/rewrap", check=check)]


def _retire(lab: Lab, role: str, vault: str) -> list[Call]:
    # A throwaway key version: rotated to, then rotated away from before anything was sealed to it.
    target = lab.admin_json("POST", f"/v1/vaults/{vault}/keys/rotate")["key_version"]
    lab.admin_json("POST", f"/v1/vaults/{vault}/keys/rotate")

    def status() -> str:
        return str(next(k["status"] for k in lab.vault(vault)["keys"] if k["version"] == target))

    def check(answer: httpx.Response) -> None:
        assert answer.json() == {"key_version": target, "status": "retired"}
        assert status() == "retired"

    def intact() -> None:
        assert status() != "retired"

    url = f"/v1/vaults/{vault}/keys/{target}/retire"
    return [Call("POST", url, check=check, intact=intact)]


def _get_policy(lab: Lab, role: str, vault: str) -> list[Call]:
    calls = []
    for kind in POLICY_KINDS:
        expected = lab.policy(vault, kind)
        assert expected is not None  # the demo sets every kind on every vault

        def check(answer: httpx.Response, kind: str = kind, expected: Any = expected) -> None:
            assert answer.json() == {"vault_id": vault, "kind": kind, "policy": expected}

        calls.append(Call("GET", f"/v1/vaults/{vault}/policies/{kind}", check=check))
    return calls


def _put_policy(lab: Lab, role: str, vault: str) -> list[Call]:
    calls = []
    for kind in POLICY_KINDS:
        current = lab.policy(vault, kind)

        def check(answer: httpx.Response, kind: str = kind, current: Any = current) -> None:
            # The answer is the policy as stored: what GET reads back.
            assert answer.json() == {"vault_id": vault, "kind": kind, "policy": current}
            assert lab.policy(vault, kind) == current

        def intact(kind: str = kind, current: Any = current) -> None:
            assert lab.policy(vault, kind) == current

        url = f"/v1/vaults/{vault}/policies/{kind}"
        calls.append(Call("PUT", url, json=current, check=check, intact=intact))
    return calls


def _nonce(lab: Lab, role: str, vault: str) -> list[Call]:
    def check(answer: httpx.Response) -> None:
        body = answer.json()
        assert re.fullmatch(r"[0-9a-f]{32,}", body["nonce"])
        assert body["expires_at"] > time.time()

    return [Call("POST", f"/v1/vaults/{vault}/nonces", check=check)]


def _add_memory(lab: Lab, role: str, vault: str) -> list[Call]:
    memory_id = _id("roles-m")
    url = f"/v1/vaults/{vault}/memories"

    def check(answer: httpx.Response) -> None:
        body = answer.json()
        assert (body["tenant_id"], body["vault_id"], body["item_id"]) == (TENANT, vault, memory_id)
        assert answer.headers["location"] == f"{url}/{memory_id}"
        lab.assert_live(vault, memory_id)

    def intact() -> None:
        lab.assert_absent(f"{url}/{memory_id}")

    body = {"memory_id": memory_id, "text": "a note from the roles test", "user_id": "roles-test"}
    return [Call("POST", url, json=body, headers=_idempotent(), check=check, intact=intact)]


def _list_memories(lab: Lab, role: str, vault: str) -> list[Call]:
    def check(answer: httpx.Response) -> None:
        listed = answer.json()["memories"]
        assert ITEM in {m["memory_id"] for m in listed}
        assert {m["user_id"] for m in listed} == {"customer-42"}
        assert not {"text", "content"} & set(listed[0])

    url = f"/v1/vaults/{vault}/memories"
    return [Call("GET", url, params={"user_id": "customer-42", "limit": "100"}, check=check)]


def _forget(lab: Lab, role: str, vault: str) -> list[Call]:
    user = _id("roles-u")
    memory_id = lab.seal(vault, user)

    def check(answer: httpx.Response) -> None:
        body = answer.json()
        assert (body["shredded"], body["complete"]) == (1, True)
        assert [r["item_id"] for r in body["receipts"]] == [memory_id]
        assert lab.memory_state(vault, memory_id) == "shredded"

    def intact() -> None:
        lab.assert_live(vault, memory_id)

    url = f"/v1/vaults/{vault}/memories"
    return [Call("DELETE", url, params={"user_id": user}, headers=_idempotent(), check=check, intact=intact)]


def _get_memory(lab: Lab, role: str, vault: str) -> list[Call]:
    def check(answer: httpx.Response) -> None:
        body = answer.json()
        assert body["memory_id"] == ITEM
        assert body["versions"][0]["user_id"] == "customer-42"
        assert "text" not in body["versions"][0]

    return [Call("GET", f"/v1/vaults/{vault}/memories/{ITEM}", check=check)]


def _delete_memory(lab: Lab, role: str, vault: str) -> list[Call]:
    memory_id = lab.seal(vault, _id("roles-u"))

    def check(answer: httpx.Response) -> None:
        body = answer.json()
        assert (body["item_id"], body["versions"]) == (memory_id, [1])
        assert base64.b64decode(body["signature"])
        assert lab.memory_state(vault, memory_id) == "shredded"

    def intact() -> None:
        lab.assert_live(vault, memory_id)

    url = f"/v1/vaults/{vault}/memories/{memory_id}"
    return [Call("DELETE", url, headers=_idempotent(), check=check, intact=intact)]


def _history(lab: Lab, role: str, vault: str) -> list[Call]:
    def check(answer: httpx.Response) -> None:
        body = answer.json()
        assert body["memory_id"] == ITEM
        assert [v["version"] for v in body["versions"]] == [1]
        assert (body["key_events"][0]["kind"], body["key_events"][0]["key_version"]) == ("created", 1)

    return [Call("GET", f"/v1/vaults/{vault}/memories/{ITEM}/history", check=check)]


def _request_access(lab: Lab, role: str, vault: str) -> list[Call]:
    request_id, body = lab.world.access_request(lab.world.demo.requester(0), vault=vault, item=ITEM)

    def check(answer: httpx.Response) -> None:
        view = answer.json()
        assert (view["request_id"], view["status"], view["vault_id"]) == (request_id, "pending", vault)
        assert answer.headers["location"] == f"/v1/access-requests/{request_id}"

    def intact() -> None:
        lab.assert_absent(f"/v1/access-requests/{request_id}")  # nothing was started

    headers = {"Idempotency-Key": request_id}
    return [Call("POST", "/v1/access-requests", json=body, headers=headers, check=check, intact=intact)]


def _checkpoint(lab: Lab, role: str, vault: str) -> list[Call]:
    def check(answer: httpx.Response) -> None:
        assert answer.headers["content-type"].startswith("text/plain")
        assert answer.text.splitlines()[0].endswith(f"/{TENANT}")  # the tenant's own log

    return [Call("GET", "/v1/audit/checkpoint", check=check)]


def _entry(lab: Lab, role: str, vault: str) -> list[Call]:
    def check(answer: httpx.Response) -> None:
        body = answer.json()
        assert (body["index"], body["tree_size"] >= 1) == (0, True)
        assert base64.b64decode(body["entry"])

    return [Call("GET", "/v1/audit/entries/0", check=check)]


def _consistency(lab: Lab, role: str, vault: str) -> list[Call]:
    def check(answer: httpx.Response) -> None:
        body = answer.json()
        assert (body["first"], body["second"] >= 1) == (1, True)

    return [Call("GET", "/v1/audit/consistency", params={"first": "1"}, check=check)]


def _audit_keys(lab: Lab, role: str, vault: str) -> list[Call]:
    def check(answer: httpx.Response) -> None:
        body = answer.json()
        assert body["origin"].endswith(f"/{TENANT}")
        assert body["verifier_keys"]
        assert {k["signer"] for k in body["stage_keys"]} >= {"verify-proof", "score-trust", "agent-vote"}

    return [Call("GET", "/v1/audit/keys", check=check)]


def _audit_anchors(lab: Lab, role: str, vault: str) -> list[Call]:
    def check(answer: httpx.Response) -> None:
        body = answer.json()
        assert body["origin"].endswith(f"/{TENANT}")
        assert body["anchors"] == []  # this stack anchors nothing

    return [Call("GET", "/v1/audit/anchors", params={"limit": "5"}, check=check)]


def _export(lab: Lab, role: str, vault: str) -> list[Call]:
    def check(answer: httpx.Response) -> None:
        body = answer.json()
        assert (body["start"], body["end"] >= 1, body["bytes"] > 0) == (0, True, True)
        assert body["download_url"].startswith("http")

    return [Call("POST", "/v1/audit/exports", json={"start": 0}, headers=_idempotent(), check=check)]


def _create_person(lab: Lab, role: str, vault: str) -> list[Call]:
    roles = [{"role": "approver", "vault_id": VAULT}]

    def check(answer: httpx.Response) -> None:
        body = answer.json()
        assert body["person"]["tenant_id"] == TENANT
        assert body["person"]["roles"] == roles
        assert body["person"]["status"] == "active"
        assert answer.headers["location"] == f"/v1/people/{body['person']['person_id']}"
        assert answer.headers["cache-control"] == "no-store"
        # The enrollment token works for exactly what it is for.
        options = send(
            lab.world.http,
            "POST",
            "/v1/webauthn/registration/options",
            json={},
            headers=bearer(body["enrollment"]["token"]),
        )
        assert options.status_code == 200

    return [Call("POST", "/v1/people", json={"name": "Roles Approver", "roles": roles}, check=check)]


def _list_people(lab: Lab, role: str, vault: str) -> list[Call]:
    person = lab.person()

    def check(answer: httpx.Response) -> None:
        listed = answer.json()["people"]
        assert person.person_id in {p["person_id"] for p in listed}
        assert {p["tenant_id"] for p in listed} == {TENANT}
        assert person.enrollment not in answer.text  # never a token

    return [Call("GET", "/v1/people", check=check)]


def _get_person(lab: Lab, role: str, vault: str) -> list[Call]:
    person = lab.person()
    assert register(lab.world.http, person).status_code == 201

    def check(answer: httpx.Response) -> None:
        body = answer.json()
        assert (body["person_id"], body["tenant_id"], body["status"]) == (person.person_id, TENANT, "active")
        assert [c["credential_id"] for c in body["credentials"]] == person.credential_ids
        assert "public_key" not in answer.text
        assert body["enrollment_expires_at"] is None  # spent by the registration

    return [Call("GET", f"/v1/people/{person.person_id}", check=check)]


def _new_enrollment(lab: Lab, role: str, vault: str) -> list[Call]:
    person = lab.person()

    def works(token: str) -> bool:
        answer = send(
            lab.world.http, "POST", "/v1/webauthn/registration/options", json={}, headers=bearer(token)
        )
        return answer.status_code == 200

    def check(answer: httpx.Response) -> None:
        assert works(answer.json()["token"])
        assert not works(person.enrollment)  # replaced

    def intact() -> None:
        assert works(person.enrollment)

    return [Call("POST", f"/v1/people/{person.person_id}/enrollment", check=check, intact=intact)]


def _set_person_roles(lab: Lab, role: str, vault: str) -> list[Call]:
    person = lab.person()
    roles = [{"role": "auditor", "vault_id": None}]

    def check(answer: httpx.Response) -> None:
        assert answer.json()["roles"] == roles
        assert lab.person_view(person.person_id)["roles"] == roles

    def intact() -> None:
        assert lab.person_view(person.person_id)["roles"] == [{"role": "approver", "vault_id": VAULT}]

    return [
        Call("PUT", f"/v1/people/{person.person_id}/roles", json={"roles": roles}, check=check, intact=intact)
    ]


def _revoke_person(lab: Lab, role: str, vault: str) -> list[Call]:
    person = lab.person()

    def check(answer: httpx.Response) -> None:
        assert answer.json()["status"] == "revoked"
        problem(
            send(
                lab.world.http,
                "POST",
                "/v1/webauthn/registration/options",
                json={},
                headers=bearer(person.enrollment),
            ),
            401,
            "unauthenticated",
        )

    def intact() -> None:
        assert lab.person_view(person.person_id)["status"] == "active"

    return [Call("DELETE", f"/v1/people/{person.person_id}", check=check, intact=intact)]


def _remove_credential(lab: Lab, role: str, vault: str) -> list[Call]:
    person = lab.person()
    assert register(lab.world.http, person).status_code == 201
    credential_id = person.credential_ids[0]

    def check(answer: httpx.Response) -> None:
        assert lab.person_view(person.person_id)["credentials"] == []

    def intact() -> None:
        assert [c["credential_id"] for c in lab.person_view(person.person_id)["credentials"]] == [
            credential_id
        ]

    url = f"/v1/people/{person.person_id}/credentials/{credential_id}"
    return [Call("DELETE", url, check=check, intact=intact)]


def _registration_options(lab: Lab, role: str, vault: str) -> list[Call]:
    # No client role holds webauthn:register: only a person's tokens do (tests/api/test_people_http.py).
    return [Call("POST", "/v1/webauthn/registration/options", json={})]


def _registration_verify(lab: Lab, role: str, vault: str) -> list[Call]:
    body = {"challenge_id": "0" * 32, "credential": {"id": "AAAAAAAAAAAAAAAAAAAAAA", "type": "public-key"}}
    return [Call("POST", "/v1/webauthn/registration/verify", json=body)]


def _list_approvals(lab: Lab, role: str, vault: str) -> list[Call]:
    request_id = lab.waiting()

    def check(answer: httpx.Response) -> None:
        listed = answer.json()["approvals"]
        assert request_id in {a["request_id"] for a in listed}
        # Only the vaults the token may approve on; the view, never a task token or plaintext.
        assert {a["vault_id"] for a in listed} <= (
            {BOUND_TO[role]} if role in BOUND_TO else {VAULT, OTHER_VAULT}
        )
        assert "task_token" not in answer.text

    return [Call("GET", "/v1/approvals", check=check)]


def _approval_challenge(lab: Lab, role: str, vault: str) -> list[Call]:
    # Persons only (tests/api/test_approvals_http.py): every client role is refused, holding the scope or not.
    request_id = lab.waiting()
    url = f"/v1/approvals/{request_id}/challenge"
    return [Call("POST", url, json={"decision": "approve"}, intact=lambda: lab.assert_unanswered(request_id))]


def _answer_approval(lab: Lab, role: str, vault: str) -> list[Call]:
    request_id = lab.waiting()
    body = {
        "decision": "approve",
        "nonce": "0" * 32,
        "issued_at": int(time.time()),
        "credential": {"id": "AAAAAAAAAAAAAAAAAAAAAA", "type": "public-key", "response": {}},
    }
    intact = lambda: lab.assert_unanswered(request_id)  # noqa: E731
    return [Call("POST", f"/v1/approvals/{request_id}", json=body, intact=intact)]


Builder = Callable[[Lab, str, str], list[Call]]
BUILDERS: dict[tuple[str, str], Builder] = {
    ("POST", "/v1/tenants"): _tenants,
    ("POST", "/v1/clients"): _create_client,
    ("GET", "/v1/clients"): _list_clients,
    ("GET", "/v1/clients/{client_id}"): _get_client,
    ("PUT", "/v1/clients/{client_id}/roles"): _set_roles,
    ("POST", "/v1/clients/{client_id}/secret"): _rotate_secret,
    ("DELETE", "/v1/clients/{client_id}"): _revoke_client,
    ("POST", "/v1/people"): _create_person,
    ("GET", "/v1/people"): _list_people,
    ("GET", "/v1/people/{person_id}"): _get_person,
    ("POST", "/v1/people/{person_id}/enrollment"): _new_enrollment,
    ("PUT", "/v1/people/{person_id}/roles"): _set_person_roles,
    ("DELETE", "/v1/people/{person_id}"): _revoke_person,
    ("DELETE", "/v1/people/{person_id}/credentials/{credential_id}"): _remove_credential,
    ("POST", "/v1/webauthn/registration/options"): _registration_options,
    ("POST", "/v1/webauthn/registration/verify"): _registration_verify,
    ("POST", "/v1/vaults"): _create_vault,
    ("GET", "/v1/vaults"): _list_vaults,
    ("GET", "/v1/vaults/{vault_id}"): _get_vault,
    ("POST", "/v1/vaults/{vault_id}/keys/rotate"): _rotate,
    ("POST", "/v1/vaults/{vault_id}/keys/rewrap"): _rewrap,
    ("POST", "/v1/vaults/{vault_id}/keys/{key_version}/retire"): _retire,
    ("GET", "/v1/vaults/{vault_id}/policies/{kind}"): _get_policy,
    ("PUT", "/v1/vaults/{vault_id}/policies/{kind}"): _put_policy,
    ("POST", "/v1/vaults/{vault_id}/nonces"): _nonce,
    ("POST", "/v1/vaults/{vault_id}/memories"): _add_memory,
    ("GET", "/v1/vaults/{vault_id}/memories"): _list_memories,
    ("DELETE", "/v1/vaults/{vault_id}/memories"): _forget,
    ("GET", "/v1/vaults/{vault_id}/memories/{memory_id}"): _get_memory,
    ("DELETE", "/v1/vaults/{vault_id}/memories/{memory_id}"): _delete_memory,
    ("GET", "/v1/vaults/{vault_id}/memories/{memory_id}/history"): _history,
    ("POST", "/v1/access-requests"): _request_access,
    ("GET", "/v1/approvals"): _list_approvals,
    ("POST", "/v1/approvals/{request_id}/challenge"): _approval_challenge,
    ("POST", "/v1/approvals/{request_id}"): _answer_approval,
    ("GET", "/v1/audit/checkpoint"): _checkpoint,
    ("GET", "/v1/audit/entries/{index}"): _entry,
    ("GET", "/v1/audit/consistency"): _consistency,
    ("GET", "/v1/audit/keys"): _audit_keys,
    ("GET", "/v1/audit/anchors"): _audit_anchors,
    ("POST", "/v1/audit/exports"): _export,
}

# (route, role, vault): the route's vault (agent-memory, then board-minutes) or None for a tenant-wide route.
CASES = [
    (route, role, vault)
    for route in AUTHED
    if route.key not in BY_REQUEST
    for role in ROLES
    for vault in ((VAULT, OTHER_VAULT) if route.on_vault else (None,))
]
# The access requests the read cases look at: (who made it, on which vault).
REQUESTS = (("requester", VAULT), ("tenant-admin", VAULT), ("tenant-admin", OTHER_VAULT))


def _case_id(case: tuple[Route, str, str | None]) -> str:
    route, role, vault = case
    return f"{route.id} as {role} on {vault or 'the tenant'}"


@pytest.fixture(scope="module")
def lab(world: ApiWorld, request: pytest.FixtureRequest) -> Iterator[Lab]:
    made = Lab(world)

    def count(_: httpx.Request) -> None:
        made.sent += 1

    world.http.event_hooks["request"].append(count)
    for by, vault in REQUESTS:
        made.requests[(by, vault)] = made.request_access(by, vault)
    for request_id in made.requests.values():
        assert made.decided(request_id)["status"] in {"approved", "denied"}  # the log has entries now
    yield made
    world.http.event_hooks["request"].remove(count)
    report(request, f"test_roles: {made.sent} requests over HTTP")


# ------------------------------------------------------------------------------------------ the oracle
def _app_operations() -> set[tuple[str, str]]:
    """(method, path) of every route the app serves, in the schema or not (its own OpenAPI route)."""
    from functions.api.app import app  # FastAPI: only for the tests that need it

    routes: list[Any] = []
    for route in app.routes:
        # FastAPI 0.165 keeps an included router as one entry that yields its routes.
        included = getattr(route, "effective_route_contexts", None)
        routes.extend(included() if included is not None else [route])
    return {(m, r.path) for r in routes for m in getattr(r, "methods", None) or () if m != "HEAD"}


def test_the_table_has_a_row_for_every_route_of_the_app_and_no_other() -> None:
    from functions.api.app import app

    table = {route.key for route in ROUTES}
    assert len(table) == len(ROUTES)
    assert table | PAGES == _app_operations()
    documented = {(m.upper(), p) for p, ops in app.openapi()["paths"].items() for m in ops}
    assert documented == table - {("GET", "/v1/openapi.json")}
    assert set(BUILDERS) | set(BY_REQUEST) == {route.key for route in AUTHED}


def test_docs_api_md_holds_the_route_by_role_matrix_of_the_table() -> None:
    assert render_matrix() in DOCS.read_text(encoding="utf-8")


# ---------------------------------------------------------------------------- every route, every role
@pytest.mark.parametrize(("route", "role", "vault"), CASES, ids=[_case_id(c) for c in CASES])
def test_a_route_answers_a_role_as_its_scopes_say(
    lab: Lab, route: Route, role: str, vault: str | None
) -> None:
    assert route.scope is not None
    may = allowed(route, role, vault, BOUND_TO.get(role))
    for call in lab.build(route, role, vault):
        headers = {**lab.world.headers(role), **call.headers}
        answer = send(
            lab.world.http, call.method, call.url, json=call.json, params=call.params, headers=headers
        )
        assert answer.status_code < 500, answer.text[:300]
        if may and route.person:
            # A client holds the scope but no passkey: refused past the scope check, nothing changes.
            assert problem(answer, 403, "forbidden")["details"] == {"check": "person"}
            if call.intact is not None:
                call.intact()
        elif may:
            assert answer.status_code == route.ok, answer.text[:400]
            if call.check is not None:
                call.check(answer)
        else:
            body = problem(answer, 403, "forbidden")
            assert body["details"] == {"scope": route.scope}  # the scope, never the vault asked for
            if call.intact is not None:
                call.intact()


def _read_request_answer(role: str, by: str, vault: str) -> int:
    """docs/api.md: `access:read` on the request's vault, or `access:request` on it for one's own. A
    token with neither scope anywhere is refused (403); one that has them elsewhere is told nothing
    (404, as for a request that does not exist: the path names no vault)."""
    bound = BOUND_TO.get(role)
    if not ROLE_SCOPES[role] & {"access:read", "access:request"}:
        return 403
    own = by == role
    if holds(role, "access:read", vault, bound) or (own and holds(role, "access:request", vault, bound)):
        return 200
    return 404


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize(("by", "vault"), REQUESTS, ids=[f"{by}'s on {v}" for by, v in REQUESTS])
def test_reading_an_access_request_under_every_role(lab: Lab, role: str, by: str, vault: str) -> None:
    request_id = lab.requests[(by, vault)]
    answer = send(lab.world.http, "GET", f"/v1/access-requests/{request_id}", headers=lab.world.headers(role))
    expected = _read_request_answer(role, by, vault)
    if expected == 200:
        assert answer.status_code == 200, answer.text[:300]
        view = answer.json()
        assert (view["request_id"], view["vault_id"], view["memory_id"]) == (request_id, vault, ITEM)
        assert view["status"] in {"approved", "denied"}
    elif expected == 403:
        assert problem(answer, 403, "forbidden")["details"] == {"scope": "access:read"}
    else:
        nowhere = send(
            lab.world.http, "GET", f"/v1/access-requests/{_id('nx')}", headers=lab.world.headers(role)
        )
        body, absent = problem(answer, 404, "not_found"), problem(nowhere, 404, "not_found")
        assert {k: v for k, v in body.items() if k != "request_id"} == {
            k: v for k, v in absent.items() if k != "request_id"
        }


def _sealed_item_answer(role: str, by: str, vault: str) -> int:
    """docs/api.md: `access:request` on the request's vault, for one's own request only. A token without
    the scope anywhere is refused (403); anyone else's request is told nothing (404)."""
    if "access:request" not in ROLE_SCOPES[role]:
        return 403
    own = by == role and holds(role, "access:request", vault, BOUND_TO.get(role))
    return 200 if own else 404


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize(("by", "vault"), REQUESTS, ids=[f"{by}'s on {v}" for by, v in REQUESTS])
def test_fetching_a_sealed_item_under_every_role(lab: Lab, role: str, by: str, vault: str) -> None:
    request_id = lab.requests[(by, vault)]
    path = f"/v1/access-requests/{request_id}/item"
    answer = send(lab.world.http, "GET", path, headers=lab.world.headers(role))
    expected = _sealed_item_answer(role, by, vault)
    if expected == 200:
        # The maker: its item while the grant lives; a denied request, or a grant expired by now, is a
        # conflict that names the request's state.
        if answer.status_code == 200:
            body = answer.json()
            assert (body["request_id"], body["vault_id"], body["memory_id"]) == (request_id, vault, ITEM)
            assert lab.decided(request_id)["status"] == "approved"
        else:
            assert problem(answer, 409, "conflict")["details"]["check"] in {"denied", "failed", "expired"}
    elif expected == 403:
        assert problem(answer, 403, "forbidden")["details"] == {"scope": "access:request"}
    else:
        nowhere = send(
            lab.world.http, "GET", f"/v1/access-requests/{_id('nx')}/item", headers=lab.world.headers(role)
        )
        body, absent = problem(answer, 404, "not_found"), problem(nowhere, 404, "not_found")
        assert {k: v for k, v in body.items() if k != "request_id"} == {
            k: v for k, v in absent.items() if k != "request_id"
        }


# The log's verification material a requester reads to check its own decisions (handle.open() in the SDK).
VERIFICATION = ("/v1/audit/keys", "/v1/audit/checkpoint", "/v1/audit/consistency?first=1")


def _narrowed_token(lab: Lab, client: ApiClient, scope: str) -> dict[str, str]:
    answer = send(
        lab.world.http,
        "POST",
        "/v1/oauth2/token",
        data={"grant_type": "client_credentials", "scope": scope},
        auth=(client.client_id, client.secret),
    )
    assert answer.status_code == 200, answer.text[:300]
    assert answer.json()["scope"] == scope
    return {"Authorization": f"Bearer {answer.json()['access_token']}"}


def test_a_requester_of_one_vault_verifies_its_tenants_log_but_reads_no_entry(lab: Lab) -> None:
    """`access:request` on any one vault is enough for the keys, the checkpoint and the consistency
    proofs, the same the auditor reads; entries and exports stay `audit:read` and `audit:export`, and the
    same client's token without `access:request` is refused all five."""
    client = lab.world.new_client(TENANT, RoleBinding(Role.REQUESTER, OTHER_VAULT))
    requester = _narrowed_token(lab, client, f"access:request/{OTHER_VAULT}")
    auditor = lab.world.headers("auditor")
    for url in VERIFICATION:
        theirs = send(lab.world.http, "GET", url, headers=auditor)
        mine = send(lab.world.http, "GET", url, headers=requester)
        assert mine.status_code == 200, (url, mine.text[:300])
        if url.endswith("checkpoint"):
            # The tenant's log the auditor sees (the same size, or grown since).
            origin, size = mine.text.splitlines()[:2]
            assert origin == theirs.text.splitlines()[0]
            assert origin.endswith(f"/{TENANT}")
            assert int(size) >= int(theirs.text.splitlines()[1])
        elif url.endswith("keys"):
            assert mine.json() == theirs.json()
            assert mine.json()["origin"].endswith(f"/{TENANT}")
        else:
            assert (mine.json()["first"], mine.json()["second"] >= 1) == (1, True)
    refused = {
        ("GET", "/v1/audit/entries/0", None): "audit:read",
        ("POST", "/v1/audit/exports", '{"start": 0}'): "audit:export",
    }
    for (method, url, body), scope in refused.items():
        answer = send(
            lab.world.http,
            method,
            url,
            content=body,
            headers={**requester, "Content-Type": "application/json", **_idempotent()},
        )
        assert problem(answer, 403, "forbidden")["details"] == {"scope": scope}
    reader = _narrowed_token(lab, client, f"vaults:read/{OTHER_VAULT}")
    for url in VERIFICATION:
        answer = send(lab.world.http, "GET", url, headers=reader)
        assert problem(answer, 403, "forbidden")["details"] == {"scope": "audit:read"}


@pytest.mark.parametrize("role", ROLES)
def test_the_public_routes_answer_every_role_and_no_token(lab: Lab, role: str) -> None:
    for route in ROUTES:
        if route.scope is not None:
            continue
        with_token = send(lab.world.http, route.method, route.path, headers=lab.world.headers(role))
        without = send(lab.world.http, route.method, route.path)
        assert with_token.status_code == without.status_code == route.ok
        assert with_token.json() == without.json()


@pytest.mark.parametrize("role", ROLES)
def test_every_role_gets_a_token_with_exactly_its_scopes(lab: Lab, role: str) -> None:
    client = lab.world.operator if role == "operator" else lab.world.client(role)
    assert client is not None
    answer = send(
        lab.world.http,
        "POST",
        "/v1/oauth2/token",
        data={"grant_type": "client_credentials"},
        auth=(client.client_id, client.secret),
    )
    assert answer.status_code == 200, answer.text[:300]
    assert set(answer.json()["scope"].split(" ")) == token_scope(role, BOUND_TO.get(role))
    assert any(route.scope == CLIENT_AUTH for route in ROUTES)


# ----------------------------------------------------------------------------------- no valid token
MALFORMED = {
    "no token": None,
    "not a JWT": "Bearer not-a-token",
    "three garbage segments": "Bearer eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl",
    "another scheme": "Basic dXNlcjpwYXNz",
    "a bearer without a token": "Bearer",
}


@pytest.mark.parametrize("route", AUTHED, ids=[r.id for r in AUTHED])
def test_every_authenticated_route_needs_a_valid_token(lab: Lab, route: Route) -> None:
    if route.key in BY_REQUEST:
        path = route.path.replace("{request_id}", lab.requests[("requester", VAULT)])
        call = Call("GET", path)
    else:
        call = lab.build(route, "tenant-admin", VAULT)[0]
    for what, authorization in MALFORMED.items():
        headers = dict(call.headers)
        if authorization is not None:
            headers["Authorization"] = authorization
        answer = send(
            lab.world.http, call.method, call.url, json=call.json, params=call.params, headers=headers
        )
        body = problem(answer, 401, "unauthenticated")
        assert answer.headers["www-authenticate"].startswith("Bearer "), what
        assert body["detail"] == "a valid access token is required", what
    if call.intact is not None:
        call.intact()
