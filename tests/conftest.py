"""Shared fixtures. Tests run offline; AWS is moto, in-process, with fresh names per test.

The local world (tests/support/api.py: a stack deployed on moto, the API served over loopback, tenants and
clients) is built once per test process and shared by the modules that ask for ``world`` or ``flow``; the
collection is ordered so that those modules run together, before the few that deploy a stack of their own."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.support.aws import AwsStack, moto_stack

if TYPE_CHECKING:
    from tests.support.api import ApiWorld

# Modules that ask for the shared world by name at run time (request.getfixturevalue), not in a signature.
_SHARED_WORLD = ("tests/docs/test_doc_examples.py",)
# Modules that need a world of their own or deploy their own stack (one at a time per process): they run
# after every module of the shared world, so each process builds that one once.
_OWN_WORLD = ("tests/api/test_schemathesis.py",)
_OWN_STACK = (
    "tests/e2e/test_flow_bench.py",
    "tests/e2e/test_api_bench.py",
    "tests/e2e/test_sdk_bench.py",
    "tests/integration/test_local_api_stack.py",
    "tests/permanent/test_local_runtime.py",
)


def _world_rank(item: pytest.Item) -> int:
    path = item.nodeid.partition("::")[0]
    if path in _OWN_STACK:
        return 3
    if path in _OWN_WORLD:
        return 2
    if path in _SHARED_WORLD:
        return 1
    return 1 if {"world", "flow"} & set(getattr(item, "fixturenames", ())) else 0


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=_world_rank)  # stable: each module's tests keep their order


@pytest.fixture(scope="session", autouse=True)
def _worlds() -> Iterator[None]:
    yield
    if "tests.support.api" in sys.modules:  # imported only by a process that built a world
        sys.modules["tests.support.api"].WORLDS.release()


@pytest.fixture(scope="module")
def world() -> ApiWorld:
    """The process's shared world (built by the first module that asks for it)."""
    from tests.support.api import WORLDS

    return WORLDS.world()


@pytest.fixture(scope="module")
def own_stack() -> None:
    """For a module that deploys its own stack: the shared world is closed first (one stack per process)."""
    from tests.support.api import WORLDS

    WORLDS.release()


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[AwsStack]:
    """moto with the template's tables, a versioned bucket and a KMS key as the root of trust."""
    with moto_stack(monkeypatch, tmp_path) as stack:
        yield stack
