"""What the API needs from the rest of the system: the capability functions, the access executions and
read-only views. Adapters implement them (``adapters/invoker.py``, ``adapters/api_factory.py``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal, Protocol

from reliquary.flow.state import FlowRequest


class Capability(StrEnum):
    """The five capability functions, by the name their events and roles use."""

    ENCRYPT = "encrypt"
    VERIFY_PROOF = "verify-proof"
    SCORE_TRUST = "score-trust"
    AGENT_VOTE = "agent-vote"
    AUDIT_APPEND = "audit-append"


class Functions(Protocol):
    def call(self, capability: Capability, event: Mapping[str, Any]) -> dict[str, Any]:
        """The ``result`` of a synchronous invocation; a refusal is raised as its typed error (its
        ``code`` mapped back with ``errors.error_class_for``), a platform failure as a transient one."""
        ...


ExecutionStatus = Literal["RUNNING", "SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED", "PENDING_REDRIVE"]


@dataclass(frozen=True, slots=True)
class Execution:
    """An access execution as Step Functions reports it (the output only once it ended)."""

    status: ExecutionStatus
    request: FlowRequest
    started_at: int
    stopped_at: int | None
    output: dict[str, Any] | None
    error: str | None  # the execution's error name when it failed (never its cause: that may quote data)


class Executions(Protocol):
    def start(self, request: FlowRequest, *, correlation_id: str) -> None:
        """Start the access execution of ``request``; starting the same request again is a no-op, another
        request under a taken request id is an ``IdempotencyConflictError``."""
        ...

    def get(self, tenant_id: str, request_id: str) -> Execution | None: ...
