"""What the API function holds: ports of the capability functions and the access executions (adapters
implement them: ``adapters/invoker.py``), and ``ApiRuntime``, everything a route needs, built once per cold
start by ``adapters/api_factory.py``. Outside ``reliquary.api`` so the adapters can implement and build
them without importing the application layer."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Literal, Protocol

from reliquary.flow.state import FlowRequest

if TYPE_CHECKING:  # the cold start imports none of them: the runtime is built on the first request
    from reliquary.audit.reader import AuditReader
    from reliquary.config import Settings
    from reliquary.flow.approvals import ApprovalsReader
    from reliquary.flow.chains import ChainStore
    from reliquary.identity.service import IdentityService
    from reliquary.vaults.catalog import MetadataReader


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
    def start(self, request: FlowRequest, *, correlation_id: str) -> bool:
        """Start the access execution of ``request``: True if this call started it, False if the same
        request was started before (a no-op); another request under a taken request id is an
        ``IdempotencyConflictError``."""
        ...

    def get(self, tenant_id: str, request_id: str) -> Execution | None: ...


@dataclass(frozen=True)
class ApiRuntime:
    settings: Settings
    identity: IdentityService
    functions: Functions
    executions: Executions
    catalog: MetadataReader
    audit: AuditReader
    chains: ChainStore
    # Requests waiting for people, as agent-vote stored them for approvers (never a task token).
    approvals: ApprovalsReader
    # A vault's context, trust and quorum policies as stored (JSON), by kind; None when unset.
    read_policy: Callable[[str, str, str], dict[str, Any] | None]
    # The service's grant and envelope signing keys' public halves, as published (``GET /v1/audit/keys``).
    service_keys: Callable[[], list[dict[str, str]]]
    # A short-lived download URL of an export the audit-append function wrote for the tenant.
    export_url: Callable[[str, str], str]
    clock: Callable[[], int]
