"""The cross-tenant matrix over HTTP (issue 13: "every route, another tenant's token: 0 leaks").

Every client of globex (each role) and the operator call every route that names a resource with acme's
ids: its vaults, memories, clients and an access request that exists. None of it may succeed, and each
answer must be exactly the answer for a resource of the caller's own tenant that does not exist (the same
call with random ids: 404 `not_found`, or 403 `forbidden` where the scope check comes first). No answer,
body or header, may carry anything of acme's: its tenant id, vault, memory, user, client and request ids,
or a memory's text (base64 strings are decoded and searched too). The list and log routes show each
tenant its own data only, and acme is unchanged afterwards."""

from __future__ import annotations

import base64
import binascii
import json
import re
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from infra.local.api import access_request_body
from infra.local.seed import STEP_UP_PURPOSE, STRICT_VAULT, SUPPORT_VAULT, TENANT, UNANIMOUS_VAULT
from reliquary.identity.scopes import Role, RoleBinding
from tests.support.api import ITEM, OTHER_MEMORY, OTHER_TENANT, OTHER_VAULT, ApiWorld
from tests.support.api_routes import CLIENT_AUTH, ROLES, ROUTES, Route, allowed, report, send
from tests.support.people import PersonAtHttp, enrolled

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ACME_VAULTS = (SUPPORT_VAULT, STRICT_VAULT, UNANIMOUS_VAULT)
ACME_USER = "customer-42"  # the demo's memories are this user's
POLICY_KINDS = ("context", "trust", "quorum")
# Every role of globex, and the operator (a client of a third tenant).
CALLERS = (*((role, OTHER_TENANT) for role in ROLES if role != "operator"), ("operator", "operator"))
# Headers whose values differ per request whatever the tenant.
PER_REQUEST = frozenset({"x-request-id", "x-correlation-id", "date", "content-length"})
_ID_CHARS = re.compile(r"[A-Za-z0-9._:@-]+")
_BASE64 = re.compile(r"[A-Za-z0-9+/]{8,}={0,2}")
DECIDED_SECONDS = 60.0


def _random(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:16]}"


@dataclass(frozen=True)
class Ids:
    """The resources a call names: acme's, or random ones (nothing of the caller's tenant has them)."""

    vault: str
    memory: str = ITEM
    client: str = "cl-" + "0" * 24
    request: str = ""
    person: str = "ps-" + "0" * 24
    credential: str = "A" * 43

    def random(self) -> Ids:
        return Ids(
            _random("nx"),
            _random("nx"),
            "cl-" + uuid.uuid4().hex[:24],
            _random("nx"),
            "ps-" + uuid.uuid4().hex[:24],
            base64.urlsafe_b64encode(uuid.uuid4().bytes * 2).rstrip(b"=").decode(),
        )


@dataclass
class Call:
    method: str
    url: str
    json: Any = None
    params: dict[str, str] | None = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Ledger:
    """What the module sent and found, and acme as it was before."""

    world: ApiWorld
    person: PersonAtHttp = field(init=False)  # acme's approver, with a passkey
    secrets: frozenset[str] = frozenset()  # tokens (ids) that must never reach another tenant
    texts: tuple[str, ...] = ()  # acme's memory texts
    request_id: str = ""
    waiting: str = ""  # acme's step-up request, waiting for its approvers
    access_bodies: dict[str, dict[str, Any]] = field(default_factory=dict)  # vault -> a proved body
    before: dict[str, Any] = field(default_factory=dict)
    sent: int = 0
    leaks: list[str] = field(default_factory=list)

    def headers(self, role: str, tenant: str) -> dict[str, str]:
        return self.world.headers(role) if role == "operator" else self.world.headers(role, tenant)

    def call(self, role: str, tenant: str, call: Call) -> httpx.Response:
        headers = {**self.headers(role, tenant), **call.headers}
        answer = send(
            self.world.http, call.method, call.url, json=call.json, params=call.params, headers=headers
        )
        self.scan(f"{call.method} {call.url} as {tenant}'s {role}", answer)
        return answer

    def scan(self, what: str, answer: httpx.Response) -> None:
        """Record (and fail on) anything of acme's in the answer: body, headers, base64 inside them."""
        found = set()
        for text in _texts([answer.text, *answer.headers.values()]):
            found |= {token for token in _ID_CHARS.findall(text) if token in self.secrets}
            found |= {t[:24] for t in self.texts if t in text}
        if found:
            self.leaks.append(f"{what}: {sorted(found)}")
        assert not found, f"{what} answered acme's {sorted(found)}: {answer.text[:300]}"

    def acme(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        return send(self.world.http, method, url, headers=self.world.headers("tenant-admin"), **kwargs)

    def acme_json(self, method: str, url: str, **kwargs: Any) -> Any:
        answer = self.acme(method, url, **kwargs)
        assert answer.is_success, (url, answer.status_code, answer.text[:300])
        return answer.json()

    def snapshot(self) -> dict[str, Any]:
        """acme's state as its tenant-admin reads it: vaults, keys, memories, policies, clients, the
        request, the log."""
        state: dict[str, Any] = {"vaults": self.acme_json("GET", "/v1/vaults", params={"limit": "100"})}
        for vault in ACME_VAULTS:
            state[vault] = self.acme_json("GET", f"/v1/vaults/{vault}")
            state[f"{vault} memories"] = self.acme_json(
                "GET", f"/v1/vaults/{vault}/memories", params={"limit": "100"}
            )
            for kind in POLICY_KINDS:
                state[f"{vault} {kind}"] = self.acme_json("GET", f"/v1/vaults/{vault}/policies/{kind}")
        state["clients"] = sorted(
            self.acme_json("GET", "/v1/clients")["clients"], key=lambda c: str(c["client_id"])
        )
        state["people"] = self.acme_json("GET", "/v1/people")
        state["person"] = self.acme_json("GET", f"/v1/people/{self.person.person_id}")
        state["request"] = self.acme_json("GET", f"/v1/access-requests/{self.request_id}")
        state["checkpoint"] = self.acme("GET", "/v1/audit/checkpoint").text
        return state


def _texts(values: list[str]) -> Iterator[str]:
    """The strings, and what their base64 runs decode to as UTF-8 (and so on, inside those)."""
    for value in values:
        yield value
        for run in _BASE64.findall(value):
            padded = run + "=" * (-len(run) % 4)
            try:
                decoded = base64.b64decode(padded, validate=True).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError, ValueError):
                continue
            yield from _texts([decoded])


def _decided(ledger: Ledger, url: str, headers: dict[str, str]) -> dict[str, Any]:
    deadline = time.monotonic() + DECIDED_SECONDS
    while True:
        view: dict[str, Any] = send(ledger.world.http, "GET", url, headers=headers).json()
        if view["status"] != "pending" or time.monotonic() > deadline:
            return view
        time.sleep(0.25)


def _globex_decision(ledger: Ledger) -> None:
    """A decision in globex's own log, so its log routes have entries to show (and none of acme's)."""
    world = ledger.world
    device = world.demo.requester(0)
    world.access.set_context_policy(OTHER_TENANT, OTHER_VAULT, [device])
    request_id = _random("globex")
    proved = world.access.request(device, OTHER_TENANT, OTHER_VAULT, OTHER_MEMORY, request_id=request_id)
    headers = world.headers("requester", OTHER_TENANT)
    answer = send(
        world.http,
        "POST",
        "/v1/access-requests",
        json=access_request_body(proved),
        headers={**headers, "Idempotency-Key": request_id},
    )
    assert answer.status_code == 202, answer.text[:300]
    view = _decided(ledger, f"/v1/access-requests/{request_id}", headers)
    assert view["status"] in {"approved", "denied"}


def _acme_step_up(ledger: Ledger) -> str:
    """An acme step-up request, waiting for acme's approvers (the default policy waits 600 s)."""
    world = ledger.world
    requester = world.new_client(TENANT, RoleBinding(Role.REQUESTER, SUPPORT_VAULT))
    token = send(
        world.http,
        "POST",
        "/v1/oauth2/token",
        data={"grant_type": "client_credentials"},
        auth=(requester.client_id, requester.secret),
    ).json()["access_token"]
    request_id, body = world.access_request(world.enrol(), purpose=STEP_UP_PURPOSE)
    headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": request_id}
    admitted = send(world.http, "POST", "/v1/access-requests", json=body, headers=headers)
    assert admitted.status_code == 202, admitted.text[:300]
    deadline = time.monotonic() + DECIDED_SECONDS
    while request_id not in {a["request_id"] for a in ledger.acme_json("GET", "/v1/approvals")["approvals"]}:
        assert time.monotonic() < deadline, "the step-up request never waited for approval"
        time.sleep(0.25)
    return request_id


@pytest.fixture(scope="module")
def ledger(world: ApiWorld, request: pytest.FixtureRequest) -> Iterator[Ledger]:
    made = Ledger(world)
    # acme's access request, decided (so acme's log has an entry, and the request exists to be probed).
    made.request_id, body = world.access_request(world.demo.requester(0))
    admitted = send(
        world.http,
        "POST",
        "/v1/access-requests",
        json=body,
        headers=world.headers("requester", **{"Idempotency-Key": made.request_id}),
    )
    assert admitted.status_code == 202, admitted.text[:300]
    url = f"/v1/access-requests/{made.request_id}"
    assert _decided(made, url, world.headers("tenant-admin"))["status"] in {"approved", "denied"}
    _globex_decision(made)
    made.waiting = _acme_step_up(made)
    for vault in ACME_VAULTS:
        _, made.access_bodies[vault] = world.access_request(world.demo.requester(0), vault=vault)
    acme_clients = [c.client_id for (tenant, _), c in world.clients.items() if tenant == TENANT]
    made.person, _ = enrolled(
        world.http, world.headers("tenant-admin"), [{"role": "approver", "vault_id": SUPPORT_VAULT}]
    )
    made.secrets = frozenset(
        {
            TENANT,
            ACME_USER,
            made.request_id,
            made.waiting,
            *ACME_VAULTS,
            *world.demo.items,
            *acme_clients,
            made.person.person_id,
            *made.person.credential_ids,
        }
    )
    made.texts = tuple(text.decode("utf-8") for text in world.demo.items.values())
    made.before = made.snapshot()

    def count(_: httpx.Request) -> None:
        made.sent += 1

    world.http.event_hooks["request"].append(count)
    yield made
    world.http.event_hooks["request"].remove(count)
    report(request, f"test_cross_tenant: {made.sent} requests over HTTP, {len(made.leaks)} leaks")


# ------------------------------------------------------------------------- probes of acme's resources
def _acme_clients(ledger: Ledger) -> list[str]:
    return sorted(c.client_id for (tenant, _), c in ledger.world.clients.items() if tenant == TENANT)


def _vault_ids(ledger: Ledger) -> list[Ids]:
    return [Ids(vault) for vault in ACME_VAULTS]


def _memory_ids(ledger: Ledger) -> list[Ids]:
    return [Ids(vault, memory) for vault in ACME_VAULTS for memory in ledger.world.demo.items]


def _client_ids(ledger: Ledger) -> list[Ids]:
    return [Ids(SUPPORT_VAULT, client=client) for client in _acme_clients(ledger)]


def _person_ids(ledger: Ledger) -> list[Ids]:
    return [Ids(SUPPORT_VAULT, person=ledger.person.person_id, credential=ledger.person.credential_ids[0])]


def _request_ids(ledger: Ledger) -> list[Ids]:
    return [Ids(SUPPORT_VAULT, request=ledger.request_id)]


def _waiting_ids(ledger: Ledger) -> list[Ids]:
    return [Ids(SUPPORT_VAULT, request=ledger.waiting)]


# A well-formed answer (its assertion signs nothing: it must not matter, no caller gets that far).
_ANSWER = {
    "decision": "approve",
    "nonce": "0" * 32,
    "issued_at": 0,
    "credential": {"id": "AAAAAAAAAAAAAAAAAAAAAA", "type": "public-key", "response": {}},
}


def _idempotent() -> dict[str, str]:
    return {"Idempotency-Key": _random("xt")}


def _policy_put(ledger: Ledger, ids: Ids, kind: str) -> Call:
    # acme's own policy of that kind as the body (well-formed; nothing of it may come back).
    policy = ledger.before[f"{SUPPORT_VAULT} {kind}"]["policy"]
    return Call("PUT", f"/v1/vaults/{ids.vault}/policies/{kind}", json=policy)


def _access_request(ledger: Ledger, ids: Ids) -> Call:
    body = ledger.access_bodies.get(ids.vault) or ledger.access_bodies[SUPPORT_VAULT]
    return Call(
        "POST",
        "/v1/access-requests",
        json={**body, "vault_id": ids.vault, "memory_id": ids.memory},
        headers=_idempotent(),
    )


Probe = Callable[[Ledger, Ids], list[Call]]
V = "/v1/vaults/{vault_id}"
M = V + "/memories"
# Each route naming a resource: which of acme's ids to try, and the calls (the same for random ids).
PROBES: dict[tuple[str, str], tuple[Callable[[Ledger], list[Ids]], Probe]] = {
    ("GET", "/v1/people/{person_id}"): (_person_ids, lambda _, i: [Call("GET", f"/v1/people/{i.person}")]),
    ("POST", "/v1/people/{person_id}/enrollment"): (
        _person_ids,
        lambda _, i: [Call("POST", f"/v1/people/{i.person}/enrollment")],
    ),
    ("PUT", "/v1/people/{person_id}/roles"): (
        _person_ids,
        lambda _, i: [Call("PUT", f"/v1/people/{i.person}/roles", json={"roles": [{"role": "auditor"}]})],
    ),
    ("DELETE", "/v1/people/{person_id}"): (
        _person_ids,
        lambda _, i: [Call("DELETE", f"/v1/people/{i.person}")],
    ),
    ("DELETE", "/v1/people/{person_id}/credentials/{credential_id}"): (
        _person_ids,
        lambda _, i: [Call("DELETE", f"/v1/people/{i.person}/credentials/{i.credential}")],
    ),
    ("GET", "/v1/clients/{client_id}"): (
        _client_ids,
        lambda _, i: [Call("GET", f"/v1/clients/{i.client}")],
    ),
    ("PUT", "/v1/clients/{client_id}/roles"): (
        _client_ids,
        lambda _, i: [Call("PUT", f"/v1/clients/{i.client}/roles", json={"roles": [{"role": "writer"}]})],
    ),
    ("POST", "/v1/clients/{client_id}/secret"): (
        _client_ids,
        lambda _, i: [Call("POST", f"/v1/clients/{i.client}/secret", json={"revoke_tokens": True})],
    ),
    ("DELETE", "/v1/clients/{client_id}"): (
        _client_ids,
        lambda _, i: [Call("DELETE", f"/v1/clients/{i.client}")],
    ),
    ("GET", V): (_vault_ids, lambda _, i: [Call("GET", f"/v1/vaults/{i.vault}")]),
    ("POST", V + "/keys/rotate"): (
        _vault_ids,
        lambda _, i: [Call("POST", f"/v1/vaults/{i.vault}/keys/rotate", headers=_idempotent())],
    ),
    ("POST", V + "/keys/rewrap"): (
        _vault_ids,
        lambda _, i: [Call("POST", f"/v1/vaults/{i.vault}/keys/rewrap", headers=_idempotent())],
    ),
    ("POST", V + "/keys/{key_version}/retire"): (
        _vault_ids,
        lambda _, i: [Call("POST", f"/v1/vaults/{i.vault}/keys/1/retire", headers=_idempotent())],
    ),
    ("GET", V + "/policies/{kind}"): (
        _vault_ids,
        lambda _, i: [Call("GET", f"/v1/vaults/{i.vault}/policies/{kind}") for kind in POLICY_KINDS],
    ),
    ("PUT", V + "/policies/{kind}"): (
        _vault_ids,
        lambda ledger, i: [_policy_put(ledger, i, kind) for kind in POLICY_KINDS],
    ),
    ("POST", V + "/nonces"): (_vault_ids, lambda _, i: [Call("POST", f"/v1/vaults/{i.vault}/nonces")]),
    ("POST", M): (
        _vault_ids,
        lambda _, i: [
            Call(
                "POST",
                f"/v1/vaults/{i.vault}/memories",
                json={"memory_id": _random("xt"), "text": "a probe", "user_id": ACME_USER},
                headers=_idempotent(),
            )
        ],
    ),
    ("GET", M): (
        _vault_ids,
        lambda _, i: [
            Call("GET", f"/v1/vaults/{i.vault}/memories"),
            Call("GET", f"/v1/vaults/{i.vault}/memories", params={"user_id": ACME_USER}),
        ],
    ),
    ("DELETE", M): (
        _vault_ids,
        lambda _, i: [
            Call(
                "DELETE",
                f"/v1/vaults/{i.vault}/memories",
                params={"user_id": ACME_USER},
                headers=_idempotent(),
            )
        ],
    ),
    ("GET", M + "/{memory_id}"): (
        _memory_ids,
        lambda _, i: [Call("GET", f"/v1/vaults/{i.vault}/memories/{i.memory}")],
    ),
    ("DELETE", M + "/{memory_id}"): (
        _memory_ids,
        lambda _, i: [Call("DELETE", f"/v1/vaults/{i.vault}/memories/{i.memory}", headers=_idempotent())],
    ),
    ("GET", M + "/{memory_id}/history"): (
        _memory_ids,
        lambda _, i: [Call("GET", f"/v1/vaults/{i.vault}/memories/{i.memory}/history")],
    ),
    ("POST", "/v1/access-requests"): (_memory_ids, lambda ledger, i: [_access_request(ledger, i)]),
    ("GET", "/v1/access-requests/{request_id}"): (
        _request_ids,
        lambda _, i: [Call("GET", f"/v1/access-requests/{i.request}")],
    ),
    ("GET", "/v1/access-requests/{request_id}/item"): (
        _request_ids,
        lambda _, i: [Call("GET", f"/v1/access-requests/{i.request}/item")],
    ),
    ("POST", "/v1/approvals/{request_id}/challenge"): (
        _waiting_ids,
        lambda _, i: [Call("POST", f"/v1/approvals/{i.request}/challenge", json={"decision": "approve"})],
    ),
    ("POST", "/v1/approvals/{request_id}"): (
        _waiting_ids,
        lambda _, i: [Call("POST", f"/v1/approvals/{i.request}", json=_ANSWER)],
    ),
}
# Routes that name no resource: each caller sees its own tenant's, checked by the list tests below.
TENANT_ROUTES = {
    ("GET", "/v1/health"),
    ("GET", "/.well-known/jwks.json"),
    ("GET", "/.well-known/did.json"),
    ("GET", "/v1/openapi.json"),
    ("POST", "/v1/oauth2/token"),
    ("POST", "/v1/tenants"),
    ("POST", "/v1/clients"),
    ("GET", "/v1/clients"),
    ("POST", "/v1/people"),
    ("GET", "/v1/people"),
    # A person's own (its token names it), and the sign-in (the passkey names it): test_people_http.py.
    ("POST", "/v1/webauthn/registration/options"),
    ("POST", "/v1/webauthn/registration/verify"),
    ("POST", "/v1/webauthn/authentication/options"),
    ("POST", "/v1/webauthn/authentication/verify"),
    ("POST", "/v1/vaults"),
    ("GET", "/v1/vaults"),
    ("GET", "/v1/approvals"),
    ("GET", "/v1/audit/checkpoint"),
    ("GET", "/v1/audit/entries/{index}"),
    ("GET", "/v1/audit/consistency"),
    ("GET", "/v1/audit/keys"),
    ("GET", "/v1/audit/anchors"),
    ("POST", "/v1/audit/exports"),
}
RESOURCE_ROUTES = [route for route in ROUTES if route.key in PROBES]


def test_every_route_of_the_table_is_probed() -> None:
    assert set(PROBES) | TENANT_ROUTES == {route.key for route in ROUTES}
    assert not set(PROBES) & TENANT_ROUTES


def _comparable(answer: httpx.Response) -> tuple[int, dict[str, Any], dict[str, str]]:
    """What must be the same for acme's resource and a missing one: status, body (but its request id),
    headers (but the per-request ones)."""
    body = answer.json()
    body.pop("request_id", None)
    headers = {k: v for k, v in answer.headers.items() if k not in PER_REQUEST}
    return answer.status_code, body, headers


@pytest.mark.parametrize("route", RESOURCE_ROUTES, ids=[r.id for r in RESOURCE_ROUTES])
def test_another_tenant_cannot_tell_acmes_resources_from_missing_ones(ledger: Ledger, route: Route) -> None:
    acme_ids, probe = PROBES[route.key]
    for role, tenant in CALLERS:
        for ids in acme_ids(ledger):
            for acme_call, missing_call in zip(probe(ledger, ids), probe(ledger, ids.random()), strict=True):
                answer = ledger.call(role, tenant, acme_call)
                missing = ledger.call(role, tenant, missing_call)
                assert answer.status_code in {403, 404}, (role, acme_call.url, answer.text[:300])
                assert answer.headers["content-type"] == "application/problem+json"
                assert _comparable(answer) == _comparable(missing), (role, acme_call.url)


# ------------------------------------------------------------------------- the caller's own tenant
def _own(ledger: Ledger, role: str, tenant: str, method: str, url: str, **kwargs: Any) -> httpx.Response:
    return ledger.call(role, tenant, Call(method, url, **kwargs))


@pytest.mark.parametrize(("role", "tenant"), CALLERS, ids=[f"{t}'s {r}" for r, t in CALLERS])
def test_lists_and_the_log_show_a_tenant_only_its_own(ledger: Ledger, role: str, tenant: str) -> None:
    # Every route without a resource in its path, as this caller: what it lists is its tenant's.
    vaults = _own(ledger, role, tenant, "GET", "/v1/vaults", params={"limit": "100"})
    if vaults.status_code == 200:
        listed = {v["vault_id"] for v in vaults.json()["vaults"]}
        assert OTHER_VAULT in listed
        assert listed.isdisjoint(ACME_VAULTS)
    clients = _own(ledger, role, tenant, "GET", "/v1/clients")
    if clients.status_code == 200:
        assert {c["tenant_id"] for c in clients.json()["clients"]} == {OTHER_TENANT}
    own_memories = _own(ledger, role, tenant, "GET", f"/v1/vaults/{OTHER_VAULT}/memories")
    if own_memories.status_code == 200:
        assert [m["memory_id"] for m in own_memories.json()["memories"]] == [OTHER_MEMORY]
    checkpoint = _own(ledger, role, tenant, "GET", "/v1/audit/checkpoint")
    if checkpoint.status_code == 200:
        assert checkpoint.text.splitlines()[0].endswith(f"/{OTHER_TENANT}")
    entry = _own(ledger, role, tenant, "GET", "/v1/audit/entries/0")
    if entry.status_code == 200:
        record = json.loads(base64.b64decode(entry.json()["entry"]))
        assert record["tenant_id"] == OTHER_TENANT
    for url in ("/v1/audit/entries/1", "/v1/audit/consistency?first=1", "/v1/audit/keys"):
        keys = _own(ledger, role, tenant, "GET", url)
        if url.endswith("keys") and keys.status_code == 200:
            assert keys.json()["origin"].endswith(f"/{OTHER_TENANT}")
    export = _own(ledger, role, tenant, "POST", "/v1/audit/exports", json={}, headers=_idempotent())
    if export.status_code == 201:
        assert f"/exports/{OTHER_TENANT}/" in export.json()["download_url"]
        exported = httpx.get(export.json()["download_url"], timeout=30)
        assert exported.status_code == 200
        ledger.scan(f"the export of {tenant}'s {role}", exported)
    # The routes that create: the tenant's own, or refused (a tenant, a client, a vault).
    created = _own(
        ledger,
        role,
        tenant,
        "POST",
        "/v1/clients",
        json={"name": "probe", "roles": [{"role": "writer", "vault_id": OTHER_VAULT}]},
    )
    if created.status_code == 201:
        assert created.json()["client"]["tenant_id"] == OTHER_TENANT
    vault = _random("xt-vault")
    made = _own(ledger, role, tenant, "POST", "/v1/vaults", json={"vault_id": vault}, headers=_idempotent())
    if made.status_code == 201:
        assert made.json()["tenant_id"] == OTHER_TENANT
    tenant_made = _own(
        ledger, role, tenant, "POST", "/v1/tenants", json={"tenant_id": _random("xt"), "name": "Probe"}
    )
    assert tenant_made.status_code == (201 if role == "operator" else 403)
    # The public routes and the token endpoint: nothing of acme's either (scanned by ledger.call).
    for route in ROUTES:
        if route.scope is None:
            _own(ledger, role, tenant, route.method, route.path)
    assert any(route.scope == CLIENT_AUTH for route in ROUTES)
    client = ledger.world.operator if role == "operator" else ledger.world.client(role, OTHER_TENANT)
    assert client is not None
    token = send(
        ledger.world.http,
        "POST",
        "/v1/oauth2/token",
        data={"grant_type": "client_credentials"},
        auth=(client.client_id, client.secret),
    )
    ledger.scan(f"a token of {tenant}'s {role}", token)
    claims = json.loads(base64.urlsafe_b64decode(token.json()["access_token"].split(".")[1] + "=="))
    assert claims["tenant"] == client.tenant_id != TENANT


VERIFICATION = [route for route in ROUTES if route.anywhere is not None]


@pytest.mark.parametrize(("role", "tenant"), CALLERS, ids=[f"{t}'s {r}" for r, t in CALLERS])
def test_the_logs_verification_material_is_the_callers_own_tenants(
    ledger: Ledger, role: str, tenant: str
) -> None:
    """The checkpoint, consistency proofs and keys answer whom the table says (globex's requester too,
    by its `access:request`), each its own tenant's log; nothing of acme's (scanned by ledger.call)."""
    assert VERIFICATION
    for route in VERIFICATION:
        answer = _own(ledger, role, tenant, route.method, route.path, params={"first": "1"})
        expected = allowed(route, role, None, None)
        assert answer.status_code == (200 if expected else 403), (role, route.id, answer.text[:300])
        if not expected:
            assert answer.json()["details"] == {"scope": "audit:read"}
        elif route.path.endswith("checkpoint"):
            assert answer.text.splitlines()[0].endswith(f"/{OTHER_TENANT}")
        elif route.path.endswith("keys"):
            assert answer.json()["origin"].endswith(f"/{OTHER_TENANT}")


@pytest.mark.parametrize(("role", "tenant"), CALLERS, ids=[f"{t}'s {r}" for r, t in CALLERS])
def test_the_waiting_requests_a_tenant_lists_are_its_own(ledger: Ledger, role: str, tenant: str) -> None:
    approvals = _own(ledger, role, tenant, "GET", "/v1/approvals")
    assert approvals.status_code == (200 if role in ("tenant-admin", "approver") else 403)
    if approvals.status_code == 200:
        assert approvals.json()["approvals"] == []  # globex has none waiting; acme's are not shown


def test_a_vault_id_acme_uses_is_free_in_another_tenant(ledger: Ledger) -> None:
    # A 409 here would tell globex that acme has a vault of that name.
    answer = send(
        ledger.world.http,
        "POST",
        "/v1/vaults",
        json={"vault_id": UNANIMOUS_VAULT},
        headers={**ledger.world.headers("tenant-admin", OTHER_TENANT), **_idempotent()},
    )
    assert answer.status_code == 201, answer.text[:300]
    assert (answer.json()["tenant_id"], answer.json()["key_version"]) == (OTHER_TENANT, 1)
    mine = ledger.acme_json("GET", f"/v1/vaults/{UNANIMOUS_VAULT}")
    assert mine == ledger.before[UNANIMOUS_VAULT]


def test_acme_is_unchanged_and_nothing_leaked(ledger: Ledger) -> None:
    assert ledger.snapshot() == ledger.before
    for (tenant, role), client in ledger.world.clients.items():
        if tenant == TENANT:
            status = send(
                ledger.world.http,
                "POST",
                "/v1/oauth2/token",
                data={"grant_type": "client_credentials"},
                auth=(client.client_id, client.secret),
            ).status_code
            assert status == 200, role  # no secret rotated, no client revoked
    memory = ledger.acme_json("GET", f"/v1/vaults/{SUPPORT_VAULT}/memories/{ITEM}")
    assert memory["versions"][0]["state"] == "live"
    assert ledger.sent > 0
    assert ledger.leaks == []


def test_another_tenants_approver_cannot_see_or_answer_acmes_waiting_request(ledger: Ledger) -> None:
    """A person of globex approving on every vault (a session token: past the client's 403) lists none of
    acme's waiting requests, and its challenge and answer for acme's are exactly those for a missing one."""
    world = ledger.world
    _, token = enrolled(world.http, world.headers("tenant-admin", OTHER_TENANT), [{"role": "approver"}])
    person = {"Authorization": f"Bearer {token}"}
    listed = send(world.http, "GET", "/v1/approvals", headers=person)
    ledger.scan("globex's approver's list", listed)
    assert listed.status_code == 200
    assert listed.json()["approvals"] == []
    _, probe = PROBES[("POST", "/v1/approvals/{request_id}/challenge")]
    _, answer_probe = PROBES[("POST", "/v1/approvals/{request_id}")]
    ids = Ids(SUPPORT_VAULT, request=ledger.waiting)
    for make in (probe, answer_probe):
        for acme_call, missing_call in zip(make(ledger, ids), make(ledger, ids.random()), strict=True):
            answer = send(world.http, acme_call.method, acme_call.url, json=acme_call.json, headers=person)
            missing = send(
                world.http, missing_call.method, missing_call.url, json=missing_call.json, headers=person
            )
            ledger.scan(f"{acme_call.url} as globex's approver", answer)
            assert answer.status_code == 404, answer.text[:300]
            assert _comparable(answer) == _comparable(missing)
    waiting = {a["request_id"]: a for a in ledger.acme_json("GET", "/v1/approvals")["approvals"]}
    assert waiting[ledger.waiting]["approvals"] == []
