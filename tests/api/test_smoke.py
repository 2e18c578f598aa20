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
