"""Every route of docs/openapi.json is wrapped, with the document's method, answer model and body.

The resources are built with runners that hand back the ``Call`` instead of sending it, so each wrapped
route is checked as described: its path matches one of the document's, its method is that path's, the
model it parses the answer into is the document's success schema, and its body validates against the
request schema's model (which refuses unknown members).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from reliquary_sdk import client as c
from reliquary_sdk import models

DOC = json.loads((Path(__file__).resolve().parents[2] / "docs" / "openapi.json").read_text("utf-8"))
# The token endpoint is the auth flows' (tests/sdk/test_auth.py), not a resource's.
NOT_A_RESOURCE = {("POST", "/v1/oauth2/token")}


def _described(call: c.Call[Any]) -> c.Call[Any]:
    return call


def _resources() -> dict[str, Any]:
    def pages(call: c.Call[Any], _items: str) -> c.Call[Any]:
        return call

    kinds: dict[str, Any] = {
        "vaults": c.Vaults,
        "memories": c.Memories,
        "audit": c.Audit,
        "people": c.People,
        "approvals": c.Approvals,
        "tenants": c.Tenants,
        "clients": c.Clients,
        "webauthn": c.WebAuthn,
        "well_known": c.WellKnown,
    }
    return {name: kind(_described, pages, pages) for name, kind in kinds.items()}


PS = "ps-" + "0" * 24
CL = "cl-" + "0" * 24
ROLE = {"role": "writer", "vault_id": "v"}
PROOF = {"circuit": "context_proof", "proof": {}, "public_signals": ["1"]}
CALLS: list[tuple[str, Callable[[dict[str, Any]], c.Call[Any]]]] = [
    (
        "vaults.create",
        lambda r: r["vaults"].create("v", custodians=[{"custodian_id": "a", "public_key": "cA=="}]),
    ),
    ("vaults.list", lambda r: r["vaults"].list(limit=5)),
    ("vaults.get", lambda r: r["vaults"].get("v")),
    ("vaults.get_policy", lambda r: r["vaults"].get_policy("v", "trust")),
    ("vaults.put_policy", lambda r: r["vaults"].put_policy("v", "trust", {"threshold": 0.5})),
    ("vaults.rotate_key", lambda r: r["vaults"].rotate_key("v")),
    ("vaults.rewrap_keys", lambda r: r["vaults"].rewrap_keys("v")),
    ("vaults.retire_key", lambda r: r["vaults"].retire_key("v", 1)),
    ("vaults.issue_nonce", lambda r: r["vaults"].issue_nonce("v")),
    ("memories.add", lambda r: r["memories"].add("v", text="t", user_id="u", ttl_seconds=60)),
    ("memories.list", lambda r: r["memories"].list("v", agent_id="a")),
    ("memories.get", lambda r: r["memories"].get("v", "m")),
    ("memories.delete", lambda r: r["memories"].delete("v", "m")),
    ("memories.forget", lambda r: r["memories"].forget("v", run_id="r")),
    ("memories.history", lambda r: r["memories"].history("v", "m")),
    ("audit.checkpoint", lambda r: r["audit"].checkpoint()),
    ("audit.entry", lambda r: r["audit"].entry(3, tree_size=9)),
    ("audit.consistency", lambda r: r["audit"].consistency(3, 9)),
    ("audit.keys", lambda r: r["audit"].keys()),
    ("audit.export", lambda r: r["audit"].export(0, 9)),
    ("audit.anchors", lambda r: r["audit"].anchors(limit=5)),
    ("people.create", lambda r: r["people"].create("Ada", [{"role": "approver"}])),
    ("people.list", lambda r: r["people"].list()),
    ("people.get", lambda r: r["people"].get(PS)),
    ("people.new_enrollment", lambda r: r["people"].new_enrollment(PS)),
    ("people.set_roles", lambda r: r["people"].set_roles(PS, [{"role": "auditor"}])),
    ("people.revoke", lambda r: r["people"].revoke(PS)),
    ("people.remove_credential", lambda r: r["people"].remove_credential(PS, "A" * 22)),
    ("approvals.list", lambda r: r["approvals"].list()),
    ("approvals.challenge", lambda r: r["approvals"].challenge("rq", "approve")),
    (
        "approvals.answer",
        lambda r: r["approvals"].answer("rq", decision="deny", nonce="0" * 32, issued_at=1, credential={}),
    ),
    ("tenants.create", lambda r: r["tenants"].create("acme", "Acme")),
    ("clients.create", lambda r: r["clients"].create("bot", [ROLE], did="did:key:z6Mk")),
    ("clients.list", lambda r: r["clients"].list()),
    ("clients.get", lambda r: r["clients"].get(CL)),
    ("clients.set_roles", lambda r: r["clients"].set_roles(CL, [models.RoleIn(role=models.Role.WRITER)])),
    ("clients.rotate_secret", lambda r: r["clients"].rotate_secret(CL, revoke_tokens=True)),
    ("clients.revoke", lambda r: r["clients"].revoke(CL)),
    ("webauthn.registration_options", lambda r: r["webauthn"].registration_options()),
    ("webauthn.register", lambda r: r["webauthn"].register("0" * 32, {"id": "x"}, label="laptop")),
    ("webauthn.authentication_options", lambda r: r["webauthn"].authentication_options()),
    ("webauthn.sign_in", lambda r: r["webauthn"].sign_in("0" * 32, {"id": "x"})),
    ("well_known.jwks", lambda r: r["well_known"].jwks()),
    ("well_known.did", lambda r: r["well_known"].did()),
    (
        "access.submit",
        lambda _r: c._new_access_call(
            vault_id="v",
            memory_id="m",
            request_id="rq",
            requester_public_key="cGs=",
            context_proof=PROOF,
            nonce="n",
            purpose="support",
        ),
    ),
    ("access.get", lambda _r: c._access_path("rq")),
    ("access.item", lambda _r: c._item_path("rq")),
    ("health", lambda _r: c._HEALTH),
]


def _template(path: str) -> str | None:
    """The document's path that ``path`` is an instance of."""
    for template in DOC["paths"]:
        pattern = re.sub(r"\\{[^}]+\\}", "[^/]+", re.escape(template))
        if re.fullmatch(pattern, path):
            return str(template)
    return None


def _ref(schema: dict[str, Any] | None) -> str | None:
    return schema["$ref"].rsplit("/", 1)[-1] if schema and "$ref" in schema else None


def _success(operation: dict[str, Any]) -> tuple[str | None, bool]:
    """The success answer's schema name (None: no JSON model) and whether it has a body at all."""
    for status in ("200", "201", "202", "204"):
        answer = operation["responses"].get(status)
        if answer is None:
            continue
        content = answer.get("content") or {}
        return _ref(content.get("application/json", {}).get("schema")), bool(content)
    raise AssertionError("no success answer")


@pytest.mark.parametrize(("name", "make"), CALLS, ids=[n for n, _ in CALLS])
def test_a_wrapped_route_is_the_documents(name: str, make: Callable[[dict[str, Any]], c.Call[Any]]) -> None:
    call = make(_resources())
    template = _template(call.path)
    assert template is not None, f"{name}: {call.path} is not in the document"
    operation = DOC["paths"][template].get(call.method.lower())
    assert operation is not None, f"{name}: {call.method} {template} is not in the document"
    schema, has_body = _success(operation)
    assert (call.model.__name__ if call.model else None) == schema, name
    if not has_body:
        assert call.model is None
    request = operation.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
    if _ref(request):
        getattr(models, str(_ref(request))).model_validate(call.json)  # the body's members are the schema's
    elif request is None:
        assert call.json is None, f"{name} sends a body the route does not take"
    # Writes carry an Idempotency-Key, reads never do.
    assert (call.idempotency_key is not None) == (call.method != "GET"), name


def test_every_route_of_the_document_is_wrapped() -> None:
    resources = _resources()
    wrapped = set()
    for _name, make in CALLS:
        call = make(resources)
        wrapped.add((call.method, _template(call.path)))
    documented = {
        (method.upper(), path)
        for path, operations in DOC["paths"].items()
        for method in operations
        if method in ("get", "post", "put", "delete", "patch")
    }
    assert documented - NOT_A_RESOURCE - wrapped == set()
