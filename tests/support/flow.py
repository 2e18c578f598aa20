"""The end-to-end tests' view of a local stack (infra.local): the stack, the demo tenant, and helpers
that keep each test to its point. tests/e2e/conftest.py makes one per test module."""

from __future__ import annotations

import json
import uuid
from typing import Any

from infra.local.access import Execution, LocalAccess
from infra.local.requester import Requester
from infra.local.runtime import LocalStack
from infra.local.seed import SUPPORT_VAULT, TENANT, DemoTenant

ITEM = "customer-42-notes"
QUORUM_STATES = {"Convene", "Quorum", "Vote", "Tally"}


class Flow:
    """The module's stack, its demo tenant, and helpers that keep each test to its point."""

    def __init__(self, stack: LocalStack, access: LocalAccess, demo: DemoTenant) -> None:
        self.stack = stack
        self.access = access
        self.demo = demo

    def enrol(self) -> Requester:
        """A new principal with a new device, enrolled in every vault's context policy."""
        requester = Requester(subject=f"agent-{uuid.uuid4().hex[:8]}", seed=f"device-{uuid.uuid4().hex}")
        self.demo.requesters.append(requester)
        for vault in self.demo.vaults:
            self.access.set_context_policy(TENANT, vault, self.demo.requesters)
        return requester

    def decide(self, requester: Requester, vault: str = SUPPORT_VAULT, **options: Any) -> Execution:
        return self.access.decide(self.access.request(requester, TENANT, vault, ITEM, **options))

    def records_of(self, request_id: str) -> list[dict[str, Any]]:
        return [r for r in self.access.logged_records(TENANT) if r["request_id"] == request_id]

    def assert_logged_deny(self, execution: Execution, reason: str) -> dict[str, Any]:
        """A succeeded execution that denied, said why, granted nothing, and logged exactly that."""
        assert execution.status == "SUCCEEDED", execution.error
        output = execution.output
        assert output is not None
        assert output["decision"] == "deny"
        assert any(reason in r for r in output["reasons"]), output["reasons"]
        assert output["grant"] is None
        assert "Grant" not in execution.states_entered()
        (record,) = self.records_of(output["request"]["request_id"])
        assert record["decision"] == "deny"
        assert record["reasons"] == output["reasons"]
        assert json.loads(output["entry"]) == record
        assert self.access.verify_receipt(execution) >= 1
        return output
