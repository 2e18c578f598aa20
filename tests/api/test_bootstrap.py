"""A deployment's first client: infra.bootstrap makes the operator tenant and an operator client from the
stack's own API function configuration; that client then creates a tenant through the API, whose first
tenant-admin can work in it (and nowhere else)."""

from __future__ import annotations

import os
import uuid

import boto3
import pytest

from infra.bootstrap import api_settings, bootstrap
from tests.support.api import ApiWorld

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_bootstrap_reads_the_api_functions_settings(world: ApiWorld) -> None:
    before = dict(os.environ)
    settings, url = api_settings(
        world.stack.stack_name,
        boto3.session.Session(
            region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing"
        ),
        world.stack.endpoint,
    )
    assert settings.identity_table == world.api.settings.identity_table
    assert settings.token_signing_key_id == world.api.settings.token_signing_key_id
    assert settings.operator_tenant == world.api.settings.operator_tenant
    assert url is None  # the local stack has no API Gateway
    assert dict(os.environ) == before  # read by field name: the process's environment untouched


def test_an_operator_client_creates_a_tenant_whose_admin_works_only_there(world: ApiWorld) -> None:
    made = bootstrap(world.api.settings, "ops laptop")
    assert made.tenant_id == world.api.settings.operator_tenant
    assert made.tenant_created is False  # the world made the operator tenant first: a second client is added
    token = world.http.post(
        "/v1/oauth2/token",
        data={"grant_type": "client_credentials", "scope": "tenants:manage"},
        auth=(made.client_id, made.client_secret),
    )
    assert token.status_code == 200, token.text
    assert token.json()["scope"] == "tenants:manage"
    operator = {"Authorization": f"Bearer {token.json()['access_token']}"}
    tenant = f"initech-{uuid.uuid4().hex[:8]}"  # the world is shared: a tenant id of this test's own
    created = world.http.post("/v1/tenants", json={"tenant_id": tenant, "name": "Initech"}, headers=operator)
    assert created.status_code == 201, created.text
    admin = created.json()["admin"]
    assert created.headers["cache-control"] == "no-store"
    assert [r["role"] for r in admin["client"]["roles"]] == ["tenant-admin"]
    again = world.http.post("/v1/tenants", json={"tenant_id": tenant, "name": "Initech"}, headers=operator)
    assert again.status_code == 409
    assert again.json()["code"] == "conflict"

    admin_token = world.http.post(
        "/v1/oauth2/token",
        data={"grant_type": "client_credentials"},
        auth=(admin["client"]["client_id"], admin["client_secret"]),
    ).json()["access_token"]
    headers = {"Authorization": f"Bearer {admin_token}"}
    assert world.http.get("/v1/vaults", headers=headers).json()["vaults"] == []
    assert (
        world.http.post("/v1/vaults", json={"vault_id": "initech-notes"}, headers=headers).status_code == 201
    )
    assert [v["vault_id"] for v in world.http.get("/v1/vaults", headers=headers).json()["vaults"]] == [
        "initech-notes"
    ]
    # The operator manages tenants, not their data; a tenant-admin cannot create tenants.
    assert world.http.get("/v1/vaults", headers=operator).status_code == 403
    assert (
        world.http.post(
            "/v1/tenants", json={"tenant_id": "umbrella", "name": "U"}, headers=headers
        ).status_code
        == 403
    )
