"""The served API end to end, briefly: every tenant's clients can get tokens and reach their routes."""

from __future__ import annotations

import pytest

from tests.support.api import OTHER_TENANT, ApiWorld

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_health_needs_no_token_and_says_nothing_internal(world: ApiWorld) -> None:
    answer = world.http.get("/v1/health")
    assert answer.status_code == 200
    assert answer.json() == {"status": "ok", "version": "1.0.0"}
    assert answer.headers["x-request-id"]


def test_every_role_of_both_tenants_gets_a_token(world: ApiWorld) -> None:
    for tenant, role in world.clients:
        assert world.token(role, tenant).count(".") == 2
    assert world.token("operator")
    vaults = world.http.get("/v1/vaults", headers=world.headers("tenant-admin", OTHER_TENANT)).json()
    # The world is shared: other modules may have added vaults to globex (ids are per tenant, so one may
    # share a name with acme's); tests/api/test_cross_tenant.py proves each tenant lists only its own.
    assert "globex-notes" in {v["vault_id"] for v in vaults["vaults"]}


def test_a_vault_opts_in_to_permanent_storage_only_acknowledged_and_where_a_node_is_configured(
    world: ApiWorld,
) -> None:
    from tests.support.api_routes import problem

    headers = {**world.headers("tenant-admin"), "Idempotency-Key": "perm-" + "0" * 8}
    unacknowledged = world.http.post(
        "/v1/vaults", json={"vault_id": "archive-x", "permanent_storage": "ipfs"}, headers=headers
    )
    assert problem(unacknowledged, 400, "invalid_request")["details"]["field"] == "acknowledge_permanence"
    body = {"vault_id": "archive-x", "permanent_storage": "arweave", "acknowledge_permanence": True}
    headers["Idempotency-Key"] = "perm-" + "1" * 8
    unconfigured = world.http.post("/v1/vaults", json=body, headers=headers)  # the shared world has no nodes
    assert problem(unconfigured, 400, "invalid_request")["details"]["field"] == "permanent_storage"
    headers["Idempotency-Key"] = "perm-" + "2" * 8
    not_a_flag = world.http.post(
        "/v1/vaults", json={**body, "acknowledge_permanence": "yes"}, headers=headers
    )
    assert not_a_flag.status_code in (400, 422)
    assert world.http.get("/v1/vaults/archive-x", headers=world.headers("tenant-admin")).status_code == 404
    listed = world.http.get("/v1/vaults", headers=world.headers("tenant-admin")).json()["vaults"]
    assert all(vault["permanent_storage"] is None for vault in listed)
