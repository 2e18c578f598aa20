"""The end-to-end tests' stack: moto with template.yaml's stack, the functions in process, the demo
tenant seeded (infra.local). One stack per test module; each test enrols its own requester (a principal
with its own device), so no test depends on another's history."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from infra.local.access import LocalAccess
from infra.local.requester import Prover
from infra.local.runtime import free_port, local_stack
from infra.local.seed import seed
from tests.support.flow import Flow


@pytest.fixture(scope="module")
def flow() -> Iterator[Flow]:
    """A stack of this module's own (the Lambda executor and moto's backends are process-wide)."""
    quiet = {"POWERTOOLS_LOG_LEVEL": "WARNING"}
    with (
        local_stack(free_port(), stack_name=f"e2e-{uuid.uuid4().hex[:6]}", environment=quiet) as stack,
        Prover() as prover,
    ):
        access = LocalAccess(stack, prover)
        yield Flow(stack, access, seed(access, requesters=1))
