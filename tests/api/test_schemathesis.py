"""Property-based tests generated from the OpenAPI document (schemathesis), in process through ASGI
against the same runtime the served API uses (the module's local stack).

Every operation is called with the document's examples, the coverage phase's boundary values and
fuzzed data, valid and invalid, under a tenant administrator's token and under a requester's. Each answer
must not be a server error, must have a status, a content type and headers the document lists for the
operation, and must match the document's schema; schemathesis' other default checks run too (invalid
data refused, 405 with Allow for methods the path has not, a request without the token refused). The
seed is fixed and generation derandomized: a failure reproduces.

The schema is loaded when the module is collected, from an app whose runtime is the world's: the app
builds its runtime on the first request that needs one, which only a test makes, once the module's world
is up. (``schemathesis.pytest.from_fixture`` would defer the loading, but it does not run under
pytest 9.)"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from schemathesis import Case

from reliquary.api.app import create_app
from reliquary.gateway import ApiRuntime
from tests.support.api import WORLDS, ApiWorld

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

SEED = 20_240_613
# Fuzzed cases per operation (the examples and coverage phases add their own): the module takes a few
# minutes on two cores.
MAX_EXAMPLES = 10
CONFIG: dict[str, Any] = {
    "seed": SEED,
    "generation": {
        "mode": "all",  # valid and invalid data
        "max-examples": MAX_EXAMPLES,
        "deterministic": True,
        "database": "none",
    },
    "phases": {
        "examples": {"enabled": True},
        "coverage": {"enabled": True},
        "fuzzing": {"enabled": True},
    },
    "operations": [
        {
            # Schema-valid is not acceptable here: a rule holds between fields, or against what the API
            # issued, which the document states in words. Such requests are refused with a 400 problem,
            # which the other checks hold to the document; every other operation accepts valid data.
            "include-name": [
                "POST /v1/oauth2/token",  # RFC 6749 3.2: no parameter twice (the form may repeat one)
                "POST /v1/clients",  # tenant-wide roles (tenant-admin, auditor, operator) bind to
                "PUT /v1/clients/{client_id}/roles",  # no vault
                "POST /v1/people",  # (a person's auditor role too)
                "PUT /v1/people/{person_id}/roles",
                "POST /v1/vaults",  # a recovery_threshold needs that many custodians
                "GET /v1/vaults",  # a cursor is one the API issued
                "GET /v1/vaults/{vault_id}/memories",
                "GET /v1/vaults/{vault_id}/memories/{memory_id}/history",
                "POST /v1/vaults/{vault_id}/memories",  # exactly one of text and content, and of
                "DELETE /v1/vaults/{vault_id}/memories",  # user_id, agent_id and run_id
                "PUT /v1/vaults/{vault_id}/policies/{kind}",  # the body is a policy of the path's kind
                "GET /v1/audit/entries/{index}",  # sizes and ranges within the latest checkpoint
                "GET /v1/audit/consistency",
                "POST /v1/audit/exports",
                "POST /v1/webauthn/registration/verify",  # a challenge id the API issued, and a
                "POST /v1/webauthn/authentication/verify",  # credential its authenticator signed over it
                "POST /v1/approvals/{request_id}",  # an assertion over the challenge for that request
            ],
            "checks": {"positive_data_acceptance": {"enabled": False}},
        }
    ],
}


class _WorldRuntime:
    """The runtime of the module's world, once the ``world`` fixture has built it."""

    runtime: ApiRuntime | None = None

    def __call__(self) -> ApiRuntime:
        if self.runtime is None:
            raise RuntimeError("the API world is not up")
        return self.runtime


_world_runtime = _WorldRuntime()
schema = schemathesis.openapi.from_asgi(
    "/v1/openapi.json", create_app(_world_runtime), config=schemathesis.Config.from_dict(CONFIG)
)


@pytest.fixture(scope="module")
def world() -> ApiWorld:
    """A world of this module's own: its examples and fuzzing write to the documented ids (the demo
    vault and item among them), which the shared world's other modules rely on. Like the shared one, it
    lifts the per-client rate limit (the limiter has its own tests)."""
    return WORLDS.world("schemathesis")


@pytest.fixture(scope="module", autouse=True)
def _served(world: ApiWorld) -> Iterator[None]:
    _world_runtime.runtime = world.api.runtime
    yield
    _world_runtime.runtime = None


def _credentials(case: Case[Any], world: ApiWorld, role: str) -> dict[str, str] | None:
    """The role's token on the operations the document secures with it (not on the token endpoint,
    health or the JWKS: a bearer token there is a request the document does not describe)."""
    return world.headers(role) if case.operation.definition.raw.get("security") else None


@schema.parametrize()
def test_the_api_as_a_tenant_administrator(case: Case[Any], world: ApiWorld) -> None:
    case.call_and_validate(headers=_credentials(case, world, "tenant-admin"))


@schema.parametrize()
def test_the_api_as_a_requester(case: Case[Any], world: ApiWorld) -> None:
    case.call_and_validate(headers=_credentials(case, world, "requester"))
