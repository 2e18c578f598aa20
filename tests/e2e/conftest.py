"""The end-to-end tests run in the process's shared world (tests/conftest.py's ``world``: a stack on moto,
the functions in process, the demo tenant seeded, infra.local). Each test enrols its own requester (a
principal with its own device), so no test depends on another's history, nor on being alone."""

from __future__ import annotations

import pytest

from tests.support.api import ApiWorld
from tests.support.flow import Flow


@pytest.fixture(scope="module")
def flow(world: ApiWorld) -> Flow:
    return Flow(world.stack, world.access, world.demo)
