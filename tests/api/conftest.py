"""The API tests run in the shared world (tests/conftest.py's ``world``): a local stack, the API served over
loopback."""

from __future__ import annotations

import pytest
from _pytest.nodeid import NodeId


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Schemathesis names each operation's item ``test[GET /v1/...]`` but gives them all the function's
    node id; pytest-xdist tells items apart by node id, so under ``-n`` all but one per function went
    unrun. Each gets a node id of its own."""
    for item in items:
        parent, _, function = item.nodeid.rpartition("::")
        if parent and "[" not in function and item.name != function:
            item._id = NodeId.parse(f"{parent}::{item.name}")  # pytest 9's structured id (pinned)
