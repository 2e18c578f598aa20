"""One API world per test module (tests/support/api.py): a local stack, the API served over loopback."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.api import ApiWorld, api_world


@pytest.fixture(scope="module")
def world() -> Iterator[ApiWorld]:
    with api_world() as made:
        yield made
