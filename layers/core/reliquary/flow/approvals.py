"""People's step-up approvals: what a waiting request shows its approvers, the challenge an approval's
passkey assertion signs, and the store both agent-vote and the API read.

A request whose tally asks for k people waits in the access state machine (AwaitApprovers). agent-vote's
``await_approvals`` stores it twice in ApprovalsTable: the *view* (``PendingApproval``: who asks, for
which item, why, the trust factors and every agent's vote with its rationale; never plaintext) under
``pk = TENANT#<tenant>``, which the API lists for the tenant's approvers; and the *task* (the Step
Functions task token, the request's subject and the signed tally) under ``pk = TOKEN#<tenant>``, which
only agent-vote's role may read. Both expire with the wait.

The approval challenge is stateless: SHA-256 over a domain tag and the canonical JSON of everything the
approval is about (tenant, request, vault, item, the decision, the person, a nonce and when it was issued),
so agent-vote recomputes it from the approval it is handed and no server-side challenge row is needed. A
passkey assertion over it proves that person's authenticator answered exactly this decision about exactly
this request; the assertion's sign counter and one answer per person make it single-use.
"""

from __future__ import annotations

import hashlib
import re
from typing import Annotated, Any, Final, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from reliquary import jcs
from reliquary.fields import Identifier, JsonInt
from reliquary.flow.state import ApprovalOutcome

CHALLENGE_DOMAIN: Final = b"RELIQUARY approval v1\x00"
# An approval challenge is answered within this long of being issued (the WebAuthn ceremony's timeout).
CHALLENGE_TTL_SECONDS: Final = 300
CHALLENGE_FUTURE_SKEW_SECONDS: Final = 30
NONCE: Final = re.compile(r"[0-9a-f]{32}")
PERSON_ID: Final = re.compile(r"ps-[0-9a-f]{24}")

Decision = Literal["approve", "deny"]
Nonce = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{32}$")]
PersonId = Annotated[str, StringConstraints(pattern=r"^ps-[0-9a-f]{24}$")]
_Short = Annotated[str, StringConstraints(max_length=256)]


def approval_challenge(
    *,
    tenant_id: str,
    request_id: str,
    vault_id: str,
    item_id: str,
    decision: str,
    person_id: str,
    nonce: str,
    issued_at: int,
) -> bytes:
    """The 32-byte WebAuthn challenge of one person's answer to one waiting request."""
    bound = {
        "tenant_id": tenant_id,
        "request_id": request_id,
        "vault_id": vault_id,
        "item_id": item_id,
        "decision": decision,
        "person_id": person_id,
        "nonce": nonce,
        "issued_at": issued_at,
    }
    return hashlib.sha256(CHALLENGE_DOMAIN + jcs.canonicalize(bound)).digest()


class _View(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class TrustView(_View):
    score: float
    band: str
    effect: str
    factors: list[dict[str, Any]] = Field(default_factory=list, max_length=64)


class AgentVoteView(_View):
    agent: str
    vote: str
    confidence: float
    rationale: Annotated[str, StringConstraints(max_length=1024)] = ""


class PersonVote(_View):
    """One person's answer as the approval page shows it."""

    person_id: PersonId
    name: _Short
    vote: Decision
    decided_at: JsonInt


class PendingApproval(_View):
    """A request waiting for people, as its approvers see it (``GET /v1/approvals``)."""

    request_id: Identifier
    tenant_id: Identifier
    vault_id: Identifier
    item_id: Identifier
    sensitivity: str
    requester: Annotated[str, StringConstraints(max_length=1024)]
    purpose: _Short
    region: _Short
    trust: TrustView
    votes: list[AgentVoteView] = Field(default_factory=list, max_length=16)
    required: JsonInt = Field(ge=1, le=8)
    approvals: list[PersonVote] = Field(default_factory=list, max_length=8)
    status: Literal["pending", "approved", "denied"] = "pending"
    created_at: JsonInt
    expires_at: JsonInt

    def open_at(self, now: int) -> bool:
        """Still waiting for answers at ``now``."""
        return self.status == "pending" and now < self.expires_at


class WaitingTask(_View):
    """What only agent-vote reads: the state machine's task token, and the request's signed tally
    (its statement is the parent of every approval statement) with the outcomes recorded so far."""

    task_token: Annotated[str, StringConstraints(min_length=1, max_length=1024)]
    flow: dict[str, Any]  # the FlowState through the tally, as the state machine handed it over
    tally_sha256: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
    outcomes: list[ApprovalOutcome] = Field(default_factory=list, max_length=8)
    sent: bool = False


class ApprovalsReader(Protocol):
    """The API's view of ApprovalsTable (the ``TENANT#`` rows only: never a task token)."""

    def list_pending(self, tenant_id: str) -> list[PendingApproval]:
        """The tenant's waiting requests (those still stored: the caller drops the expired)."""
        ...

    def get_pending(self, tenant_id: str, request_id: str) -> PendingApproval | None: ...


class ApprovalStore(ApprovalsReader, Protocol):
    """agent-vote's ApprovalsTable: both rows, with the conditional writes that keep one answer per
    person and one outcome per request."""

    def put_waiting(self, view: PendingApproval, task: WaitingTask) -> None:
        """Store a waiting request; a request stored already keeps its answers (ConflictError if it
        waits under another tally) and gets the new task token (a retried task)."""
        ...

    def get_task(self, tenant_id: str, request_id: str) -> WaitingTask | None: ...

    def add_answer(
        self, tenant_id: str, request_id: str, vote: PersonVote, outcome: ApprovalOutcome, *, now: int
    ) -> tuple[PendingApproval, WaitingTask]:
        """Record one person's answer, only while the request waits and only once per person
        (``ConflictError`` otherwise); the request as it stands after it."""
        ...

    def close(self, tenant_id: str, request_id: str, status: Literal["approved", "denied"]) -> bool:
        """Mark the request decided; False when another answer closed it first."""
        ...

    def mark_sent(self, tenant_id: str, request_id: str) -> None:
        """The outcome reached the state machine (a retried answer need not send it again)."""
        ...


class TaskCallbacks(Protocol):
    """The state machine's waiting task (Step Functions SendTaskSuccess)."""

    def succeed(self, task_token: str, output: dict[str, Any]) -> None:
        """Resume the execution with ``output``; ``ConflictError`` when the task no longer waits (timed
        out, or the execution ended)."""
        ...

    def fail(self, task_token: str, error: str) -> None:
        """End the wait with ``error`` (a refusal's code: the flow logs a deny naming it at once)."""
        ...
