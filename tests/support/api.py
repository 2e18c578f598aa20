"""The tests' world: a local stack (infra.local) with the REST API served over loopback (uvicorn, as
`make run` serves it), two tenants with their vaults, and a client of every role.

Tenants: ``acme`` (the demo tenant: three vaults with policies, items and enrolled devices) and ``globex``
(one vault with one memory). Each test asks for tokens by role; requests go over real HTTP.

Building a world is the slowest step of the suite (a CloudFormation deploy on moto, a prover, a server), so
one world serves every module of a test process (``WORLDS``): each test makes its own requesters, items and
request ids, and never assumes it is alone in a tenant."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx

from infra.local.access import LocalAccess
from infra.local.api import LocalApi, access_request_body, browser_url, serve_api
from infra.local.requester import Prover, Requester
from infra.local.runtime import LocalStack, free_port, local_stack
from infra.local.seed import SUPPORT_VAULT, TENANT, DemoTenant, seed
from reliquary.identity.scopes import Role, RoleBinding

OTHER_TENANT = "globex"
OTHER_VAULT = "globex-notes"
OTHER_MEMORY = "globex-secret"
ITEM = "customer-42-notes"
# Tokens live 15 minutes (Settings.token_ttl_seconds); a shared world outlives that, so cached ones are
# fetched again well before.
TOKEN_REUSE_SECONDS = 600.0
# The shared world serves many modules, some of them in bursts (schemathesis, the role matrix): a 429 from
# the per-client limiter would stand where a test expects the route's own answer (the limiter has its own
# tests in tests/unit).
SHARED_ENVIRONMENT = {"RELIQUARY_CLIENT_REQUESTS_PER_SECOND": "10000"}
# Every role a tenant's client can hold, each bound as the tests bind it.
ROLE_BINDINGS: dict[str, tuple[RoleBinding, ...]] = {
    "tenant-admin": (RoleBinding(Role.TENANT_ADMIN, None),),
    "vault-admin": (RoleBinding(Role.VAULT_ADMIN, SUPPORT_VAULT),),
    "writer": (RoleBinding(Role.WRITER, SUPPORT_VAULT),),
    "requester": (RoleBinding(Role.REQUESTER, SUPPORT_VAULT),),
    "approver": (RoleBinding(Role.APPROVER, SUPPORT_VAULT),),
    "auditor": (RoleBinding(Role.AUDITOR, None),),
}


@dataclass(frozen=True)
class ApiClient:
    tenant_id: str
    client_id: str
    secret: str


@dataclass
class ApiWorld:
    """A stack, its served API and the clients of both tenants."""

    stack: LocalStack
    access: LocalAccess
    demo: DemoTenant
    api: LocalApi
    http: httpx.Client
    clients: dict[tuple[str, str], ApiClient] = field(default_factory=dict)  # (tenant, role) -> client
    operator: ApiClient | None = None
    _tokens: dict[tuple[str, str], tuple[str, float]] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return self.api.url

    def client(self, role: str, tenant: str = TENANT) -> ApiClient:
        return self.clients[(tenant, role)]

    def token(self, role: str, tenant: str = TENANT) -> str:
        """A token of the tenant's client of ``role`` (fetched through the token endpoint, then reused while
        it has minutes to live)."""
        key = (tenant, role)
        cached = self._tokens.get(key)
        if cached is None or time.monotonic() - cached[1] > TOKEN_REUSE_SECONDS:
            client = self.operator if role == "operator" else self.client(role, tenant)
            assert client is not None
            answer = self.http.post(
                "/v1/oauth2/token",
                data={"grant_type": "client_credentials"},
                auth=(client.client_id, client.secret),
            )
            assert answer.status_code == 200, answer.text
            self._tokens[key] = (answer.json()["access_token"], time.monotonic())
        return self._tokens[key][0]

    def headers(self, role: str, tenant: str = TENANT, **extra: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(role, tenant)}", **extra}

    def new_client(self, tenant: str, *bindings: RoleBinding) -> ApiClient:
        client, secret = self.api.runtime.identity.create_client(
            tenant, f"test {uuid.uuid4().hex[:6]}", bindings
        )
        return ApiClient(tenant, client.client_id, secret)

    def enrol(self) -> Requester:
        """A new device enrolled in the demo tenant's vaults (its own trust history)."""
        requester = Requester(subject=f"agent-{uuid.uuid4().hex[:8]}", seed=f"device-{uuid.uuid4().hex}")
        self.demo.requesters.append(requester)
        for vault in self.demo.vaults:
            self.access.set_context_policy(TENANT, vault, self.demo.requesters)
        return requester

    def access_request(
        self,
        requester: Requester,
        vault: str = SUPPORT_VAULT,
        item: str = ITEM,
        request_id: str | None = None,
        purpose: str = "support",
    ) -> tuple[str, dict[str, Any]]:
        """(request id, POST /v1/access-requests body) proved on the requester's device."""
        request_id = request_id or f"api-{uuid.uuid4().hex}"
        proved = self.access.request(requester, TENANT, vault, item, request_id=request_id, purpose=purpose)
        return request_id, access_request_body(proved)


def _world(stack: LocalStack, access: LocalAccess, api: LocalApi, http: httpx.Client) -> ApiWorld:
    identity = api.runtime.identity
    demo = seed(access)
    world = ApiWorld(stack, access, demo, api, http)
    _, admin, admin_secret = identity.create_tenant(TENANT, "Acme")
    _, other_admin, other_secret = identity.create_tenant(OTHER_TENANT, "Globex")
    operator_settings = api.settings
    _, _, _ = identity.create_tenant(operator_settings.operator_tenant, "Operator")
    operator, operator_secret = identity.create_client(
        operator_settings.operator_tenant, "operator", [RoleBinding(Role.OPERATOR, None)]
    )
    world.operator = ApiClient(operator_settings.operator_tenant, operator.client_id, operator_secret)
    world.clients[(TENANT, "tenant-admin")] = ApiClient(TENANT, admin.client_id, admin_secret)
    world.clients[(OTHER_TENANT, "tenant-admin")] = ApiClient(
        OTHER_TENANT, other_admin.client_id, other_secret
    )
    for tenant in (TENANT, OTHER_TENANT):
        for role, bindings in ROLE_BINDINGS.items():
            if role == "tenant-admin":
                continue
            vault = SUPPORT_VAULT if tenant == TENANT else OTHER_VAULT
            bound = tuple(RoleBinding(b.role, b.vault_id and vault) for b in bindings)
            world.clients[(tenant, role)] = world.new_client(tenant, *bound)
    # The other tenant's vault and a memory in it, through its own API (what a leak would expose).
    headers = world.headers("tenant-admin", OTHER_TENANT)
    assert http.post("/v1/vaults", json={"vault_id": OTHER_VAULT}, headers=headers).status_code == 201
    sealed = http.post(
        f"/v1/vaults/{OTHER_VAULT}/memories",
        json={"memory_id": OTHER_MEMORY, "text": "globex only", "user_id": "globex-user"},
        headers=headers,
    )
    assert sealed.status_code == 201, sealed.text
    return world


@contextmanager
def api_world(extra_environment: Mapping[str, str] | None = None) -> Iterator[ApiWorld]:
    """``extra_environment`` is laid over every function's environment (e.g. a higher rate limit)."""
    api_port = free_port()
    environment = {
        "POWERTOOLS_LOG_LEVEL": "WARNING",
        "POWERTOOLS_METRICS_DISABLED": "true",
        # Every function's: the API (ceremonies) and agent-vote (approvals) check a passkey's origin,
        # the approval page's on this API (on localhost, the RP id).
        "RELIQUARY_WEBAUTHN_ORIGINS": json.dumps([browser_url(f"http://127.0.0.1:{api_port}")]),
        **(extra_environment or {}),
    }
    with (
        local_stack(free_port(), stack_name=f"api-{uuid.uuid4().hex[:6]}", environment=environment) as stack,
        Prover() as prover,
        serve_api(stack, api_port) as api,
        httpx.Client(base_url=api.url, timeout=60) as http,
    ):
        yield _world(stack, LocalAccess(stack, prover), api, http)


class WorldPool:
    """At most one world per test process, kept from module to module.

    The in-process Lambda executor and moto's backends are process-wide, so two stacks cannot run side by
    side in one process: asking for a world under another key (or a module that deploys a stack of its own
    calling ``release``) closes the current one first. tests/conftest.py orders the modules so that each
    process builds the shared world once."""

    def __init__(self) -> None:
        self._key: str | None = None
        self._world: ApiWorld | None = None
        self._exits = ExitStack()

    def world(self, key: str = "shared", extra_environment: Mapping[str, str] | None = None) -> ApiWorld:
        if self._world is not None and self._key == key and _alive(self._world):
            return self._world
        self.release()
        exits = ExitStack()
        with exits:
            world = exits.enter_context(api_world({**SHARED_ENVIRONMENT, **(extra_environment or {})}))
            self._exits = exits.pop_all()
        self._key, self._world = key, world
        return world

    def release(self) -> None:
        self._key, self._world = None, None
        self._exits.close()


def _alive(world: ApiWorld) -> bool:
    """Whether the world's stack still stands. moto's backends are process-wide, and a test that leaves
    ``mock_aws`` resets them all: the world is then rebuilt rather than failing every test after."""
    try:
        world.stack.client("dynamodb").describe_table(TableName=world.stack.resources["IdentityTable"])
    except Exception:  # noqa: BLE001  (any failure means the stack is gone)
        return False
    return True


WORLDS = WorldPool()
