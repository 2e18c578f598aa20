"""The API tests' oracle: every route of the app with the scope it needs, and every role's scopes, written
from docs/api.md ("Roles and scopes" and the route tables), not read from the code. The role and the
cross-tenant tests (tests/api/test_roles.py, test_cross_tenant.py) check the served API against it, and
docs/api.md's route-by-role matrix is ``render_matrix()``.

Also the HTTP helpers both use: ``send`` (waits out a 429 rather than mistake it for an answer) and
``problem`` (an RFC 9457 answer's body, checked for its media type, status and code)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

# docs/api.md, "Roles and scopes".
TENANT_WIDE = frozenset({"tenants:manage", "tenant:admin", "vaults:create", "audit:read", "audit:export"})
VAULT_BOUND = frozenset(
    {
        "vaults:read",
        "vaults:admin",
        "memories:read",
        "memories:write",
        "access:request",
        "access:read",
        "access:approve",
    }
)
ROLES = ("tenant-admin", "vault-admin", "writer", "requester", "approver", "auditor", "operator")
ROLE_SCOPES: dict[str, frozenset[str]] = {
    "tenant-admin": (TENANT_WIDE - {"tenants:manage"}) | VAULT_BOUND,
    "vault-admin": frozenset(
        {"vaults:read", "vaults:admin", "memories:read", "memories:write", "access:read"}
    ),
    "writer": frozenset({"vaults:read", "memories:read", "memories:write"}),
    "requester": frozenset({"vaults:read", "memories:read", "access:request"}),
    "approver": frozenset({"vaults:read", "access:read", "access:approve"}),
    "auditor": frozenset({"audit:read", "audit:export", "vaults:read", "memories:read"}),
    "operator": frozenset({"tenants:manage"}),
}
# The roles a person may hold (docs/identity.md): the rest are clients' only.
PERSON_ROLES = ("approver", "auditor")
# Roles that can be bound to one vault (the others hold tenant-wide scopes: bound to the tenant only).
VAULT_ROLES = ("vault-admin", "writer", "requester", "approver")
CLIENT_AUTH = "client credentials"  # the token endpoint's "scope"
PASSKEY = "a passkey"  # the sign-in ceremony's "scope": no token, the passkey's assertion
# Only a person's tokens carry it (docs/identity.md): every client role is refused.
PERSON_SCOPE = "webauthn:register"


@dataclass(frozen=True)
class Route:
    """One operation of the app: what it needs, and what it answers when allowed."""

    method: str
    path: str
    scope: str | None  # None: no access token (public, or the token endpoint's client credentials)
    on_vault: bool = False  # a vault-bound scope, asked on the vault the request names (path or body)
    ok: int = 200
    own: str | None = None  # a scope that also allows it on the caller's own resources
    own_only: bool = False  # the scope allows it on the caller's own resources only
    # A vault-bound scope that, held on any vault, allows it too (on the caller's own tenant): the log's
    # verification material, which a requester checks its own decisions with.
    anywhere: str | None = None
    hidden: bool = False  # a refusal after the scope check answers 404: the path names no vault
    # Only a person's token, past the scope (a passkey answers): a client holding the scope gets a 403
    # naming the check `person`.
    person: bool = False

    @property
    def key(self) -> tuple[str, str]:
        return (self.method, self.path)

    @property
    def id(self) -> str:
        return f"{self.method} {self.path}"


V = "/v1/vaults/{vault_id}"
M = V + "/memories"
ROUTES: tuple[Route, ...] = (
    # System: no access token.
    Route("GET", "/v1/health", None),
    Route("GET", "/.well-known/jwks.json", None),
    Route("GET", "/.well-known/did.json", None),
    Route("GET", "/v1/openapi.json", None),
    Route("POST", "/v1/oauth2/token", CLIENT_AUTH),
    # Tenants and clients.
    Route("POST", "/v1/tenants", "tenants:manage", ok=201),
    Route("POST", "/v1/clients", "tenant:admin", ok=201),
    Route("GET", "/v1/clients", "tenant:admin"),
    Route("GET", "/v1/clients/{client_id}", "tenant:admin"),
    Route("PUT", "/v1/clients/{client_id}/roles", "tenant:admin"),
    Route("POST", "/v1/clients/{client_id}/secret", "tenant:admin"),
    Route("DELETE", "/v1/clients/{client_id}", "tenant:admin"),
    # People and passkeys.
    Route("POST", "/v1/people", "tenant:admin", ok=201),
    Route("GET", "/v1/people", "tenant:admin"),
    Route("GET", "/v1/people/{person_id}", "tenant:admin"),
    Route("POST", "/v1/people/{person_id}/enrollment", "tenant:admin", ok=201),
    Route("PUT", "/v1/people/{person_id}/roles", "tenant:admin"),
    Route("DELETE", "/v1/people/{person_id}", "tenant:admin"),
    Route("DELETE", "/v1/people/{person_id}/credentials/{credential_id}", "tenant:admin", ok=204),
    Route("POST", "/v1/webauthn/registration/options", PERSON_SCOPE),
    Route("POST", "/v1/webauthn/registration/verify", PERSON_SCOPE, ok=201),
    Route("POST", "/v1/webauthn/authentication/options", PASSKEY),
    Route("POST", "/v1/webauthn/authentication/verify", PASSKEY),
    # Vaults.
    Route("POST", "/v1/vaults", "vaults:create", ok=201),
    Route("GET", "/v1/vaults", "vaults:read"),  # on some vault: it lists only those
    Route("GET", V, "vaults:read", on_vault=True),
    Route("POST", V + "/keys/rotate", "vaults:admin", on_vault=True),
    Route("POST", V + "/keys/rewrap", "vaults:admin", on_vault=True),
    Route("POST", V + "/keys/{key_version}/retire", "vaults:admin", on_vault=True),
    Route("GET", V + "/policies/{kind}", "vaults:read", on_vault=True),
    Route("PUT", V + "/policies/{kind}", "vaults:admin", on_vault=True),
    Route("POST", V + "/nonces", "access:request", on_vault=True, ok=201),
    # Memories.
    Route("POST", M, "memories:write", on_vault=True, ok=201),
    Route("GET", M, "memories:read", on_vault=True),
    Route("DELETE", M, "memories:write", on_vault=True),
    Route("GET", M + "/{memory_id}", "memories:read", on_vault=True),
    Route("DELETE", M + "/{memory_id}", "memories:write", on_vault=True),
    Route("GET", M + "/{memory_id}/history", "memories:read", on_vault=True),
    # Access requests (the vault is the body's, or the request's).
    Route("POST", "/v1/access-requests", "access:request", on_vault=True, ok=202),
    Route(
        "GET",
        "/v1/access-requests/{request_id}",
        "access:read",
        on_vault=True,
        own="access:request",
        hidden=True,
    ),
    Route(
        "GET",
        "/v1/access-requests/{request_id}/item",
        "access:request",
        on_vault=True,
        own_only=True,
        hidden=True,
    ),
    # Step-up approvals (the vault is the waiting request's).
    Route("GET", "/v1/approvals", "access:approve"),  # on some vault: it lists only those
    Route("POST", "/v1/approvals/{request_id}/challenge", "access:approve", hidden=True, person=True),
    Route("POST", "/v1/approvals/{request_id}", "access:approve", hidden=True, person=True),
    # Audit.
    Route("GET", "/v1/audit/checkpoint", "audit:read", anywhere="access:request"),
    Route("GET", "/v1/audit/entries/{index}", "audit:read"),
    Route("GET", "/v1/audit/consistency", "audit:read", anywhere="access:request"),
    Route("GET", "/v1/audit/keys", "audit:read", anywhere="access:request"),
    Route("GET", "/v1/audit/anchors", "audit:read", anywhere="access:request"),
    Route("POST", "/v1/audit/exports", "audit:export", ok=201),
)
AUTHED = tuple(r for r in ROUTES if r.scope not in (None, CLIENT_AUTH, PASSKEY))
# The approval page (docs/approval-page.md): served without a token, not operations of the OpenAPI
# document.
PAGES = frozenset({("GET", "/approve"), ("GET", "/approve/app.js")})


def holds(role: str, scope: str, vault: str | None, bound_to: str | None) -> bool:
    """Whether ``role`` (bound to vault ``bound_to``, or to the tenant: None) holds ``scope`` on ``vault``
    (None: on some vault, as the list routes ask)."""
    if scope not in ROLE_SCOPES.get(role, frozenset()):
        return False
    return vault is None or scope in TENANT_WIDE or bound_to is None or bound_to == vault


def allowed(route: Route, role: str, vault: str | None, bound_to: str | None) -> bool:
    """Whether ``role`` (bound as ``holds`` says) may call ``route`` on ``vault``: its scope there, or
    the route's ``anywhere`` scope on some vault."""
    assert route.scope is not None
    if holds(role, route.scope, vault, bound_to):
        return True
    return route.anywhere is not None and holds(role, route.anywhere, None, bound_to)


def token_scope(role: str, bound_to: str | None) -> frozenset[str]:
    """The scopes a token of the role's client carries (docs/identity.md: ``scope/<vault>`` when bound)."""
    return frozenset(
        f"{s}/{bound_to}" if bound_to is not None and s in VAULT_BOUND else s for s in ROLE_SCOPES[role]
    )


def cell(route: Route, role: str) -> str:
    if route.scope in (None, CLIENT_AUTH, PASSKEY):
        return "✓"
    if route.scope in ROLE_SCOPES[role]:
        if route.person:  # a client is refused; a person holding the role answers
            return "person" if role in PERSON_ROLES else "\N{EN DASH}"
        return "own" if route.own_only else "✓"
    if route.own is not None and route.own in ROLE_SCOPES[role]:
        return "own"
    if route.anywhere is not None and route.anywhere in ROLE_SCOPES[role]:
        return "✓"
    return "\N{EN DASH}"


def render_matrix() -> str:
    """docs/api.md's route-by-role matrix (a markdown table) from ROUTES and ROLE_SCOPES."""
    head = "| route | scope | " + " | ".join(ROLES) + " |"
    rule = "| --- | --- |" + " :-: |" * len(ROLES)
    rows = []
    for route in ROUTES:
        if route.scope is None:
            scope = "none"
        elif route.scope in (CLIENT_AUTH, PASSKEY):
            scope = route.scope
        else:
            scope = f"`{route.scope}`" + (f" (own: `{route.own}`)" if route.own else "")
            scope += " (own only)" if route.own_only else ""
            scope += f" or `{route.anywhere}` on any vault" if route.anywhere else ""
        cells = " | ".join(cell(route, role) for role in ROLES)
        rows.append(f"| `{route.method} {route.path}` | {scope} | {cells} |")
    return "\n".join([head, rule, *rows])


# ----------------------------------------------------------------------------------------------- HTTP
RATE_LIMIT_RETRIES = 10


def send(http: httpx.Client, method: str, url: str, **kwargs: Any) -> httpx.Response:
    """One request; a 429 (the per-client rate: these tests are fast) is waited out and sent again."""
    for _ in range(RATE_LIMIT_RETRIES):
        answer = http.request(method, url, **kwargs)
        if answer.status_code != 429:
            return answer
        time.sleep(float(answer.headers.get("retry-after", "1")))
    raise AssertionError(f"{method} {url} still rate limited after {RATE_LIMIT_RETRIES} tries")


def problem(answer: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """The RFC 9457 body of ``answer``, asserted to be a ``status`` problem with ``code``."""
    assert answer.status_code == status, (answer.status_code, answer.text[:400])
    assert answer.headers["content-type"].startswith("application/problem+json"), answer.headers
    body: dict[str, Any] = answer.json()
    assert body["status"] == status
    assert body["code"] == code, body
    assert body["type"] == f"urn:reliquary:problem:{code}"
    assert body["request_id"] == answer.headers["x-request-id"]
    return body


def report(request: pytest.FixtureRequest, line: str) -> None:
    """A line on the terminal, past pytest's capture (the modules' request counts)."""
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is None or capture is None:
        return
    with capture.global_and_fixture_disabled():
        reporter.write_line(line)
