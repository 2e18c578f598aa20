"""In-memory stage keys and an honest chain signer: for the in-memory fakes, tests and benchmarks that need
what a real flow would have signed without running the state machine."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

from reliquary.crypto.signing import SigningKey
from reliquary.errors import ConflictError
from reliquary.flow.approvals import PendingApproval, PersonVote, WaitingTask
from reliquary.flow.attestation import (
    Attestation,
    Signer,
    Stage,
    StageKeys,
    StageSigner,
    Subject,
    VerifiedChain,
    digest,
    verify_chain,
)
from reliquary.flow.keys import STAGE_ALGORITHM, StageKeyDirectory
from reliquary.flow.state import ApprovalOutcome


class MemoryStageKeys:
    """A fresh stage key for every signing function, and the directory that publishes them."""

    def __init__(self) -> None:
        self.signers = {s: StageSigner(s, SigningKey.generate(STAGE_ALGORITHM)) for s in Signer}
        self.directory = StageKeyDirectory(self.published)

    def published(self) -> StageKeys:
        return StageKeys({s: [signer.verifying_key] for s, signer in self.signers.items()})

    def approval_chain(
        self, subject: Subject, *, issued_at: int, item_version: int = 1, **changes: Any
    ) -> VerifiedChain:
        """The chain an honest flow signs for ``subject`` (``sign_chain``), verified."""
        chain = sign_chain(self.signers, subject, issued_at=issued_at, item_version=item_version, **changes)
        return verify_chain(chain, self.published(), subject=subject)


def sign_chain(
    signers: Mapping[Signer, StageSigner],
    subject: Subject,
    *,
    issued_at: int,
    item_version: int = 1,
    verified: bool = True,
    effect: str = "allow",
    decision: str = "approve",
    policy_version: str = "9b" * 32,
    agents: Sequence[str] = ("strict", "permissive", "neutral", "watchdog"),
    approvers_required: int = 0,
    approvals: Sequence[tuple[str, str]] = (),
    approved_at: int | None = None,
) -> list[Attestation]:
    """The chain the flow's stages sign for ``subject`` with ``signers`` (their results stood in for by
    their claims): the proof ``verified``, the rules' ``effect`` for ``item_version``, each agent
    approving, the tally's ``decision`` asking for ``approvers_required`` people, then one approval
    statement per ``(person_id, vote)`` of ``approvals`` (at ``approved_at``). The defaults are an honest
    approval; a test changes one."""
    context_claim = {"verified": verified}
    context = signers[Signer.VERIFY_PROOF].attest(
        Stage.VERIFY_CONTEXT, subject, context_claim, claim=context_claim, issued_at=issued_at
    )
    trust_claim = {"effect": effect, "policy_version": policy_version, "item_version": item_version}
    trust = signers[Signer.SCORE_TRUST].attest(
        Stage.SCORE_TRUST, subject, trust_claim, claim=trust_claim, parents=[context], issued_at=issued_at
    )
    votes = [
        signers[Signer.AGENT_VOTE].attest(
            Stage.VOTE,
            subject,
            {"agent": agent, "vote": "approve"},
            claim={"agent": agent, "vote": "approve", "veto": False},
            parents=[context, trust],
            issued_at=issued_at,
        )
        for agent in agents
    ]
    tally = signers[Signer.AGENT_VOTE].attest(
        Stage.TALLY,
        subject,
        {"decision": decision},
        claim={"decision": decision, "approvers_required": approvers_required},
        parents=[trust, *sorted(votes, key=lambda v: v.digest)],
        issued_at=issued_at,
    )
    people = [
        signers[Signer.AGENT_VOTE].attest(
            Stage.APPROVAL,
            subject,
            {"person_id": person, "vote": vote},
            claim={
                "person_id": person,
                "credential_id": f"cred-{person}",
                "assertion_sha256": digest({"person_id": person, "subject": subject.request_id}),
                "vote": vote,
            },
            parents=[tally],
            issued_at=issued_at if approved_at is None else approved_at,
        )
        for person, vote in approvals
    ]
    return [context, trust, *votes, tally, *people]


class MemoryApprovalStore:
    """ApprovalsTable in memory, with the same conditions as ``adapters.approvals_store``."""

    def __init__(self) -> None:
        self.views: dict[tuple[str, str], PendingApproval] = {}
        self.tasks: dict[tuple[str, str], WaitingTask] = {}

    def list_pending(self, tenant_id: str) -> list[PendingApproval]:
        return [v for (t, _), v in sorted(self.views.items()) if t == tenant_id]

    def get_pending(self, tenant_id: str, request_id: str) -> PendingApproval | None:
        return self.views.get((tenant_id, request_id))

    def get_task(self, tenant_id: str, request_id: str) -> WaitingTask | None:
        return self.tasks.get((tenant_id, request_id))

    def put_waiting(self, view: PendingApproval, task: WaitingTask) -> None:
        key = (view.tenant_id, view.request_id)
        stored = self.tasks.get(key)
        if stored is not None and stored.tally_sha256 != task.tally_sha256:
            raise ConflictError("the request waits for approval under another tally")
        if stored is None:
            self.views[key] = view
            self.tasks[key] = task
        else:
            self.tasks[key] = stored.model_copy(update={"task_token": task.task_token})

    def add_answer(
        self, tenant_id: str, request_id: str, vote: PersonVote, outcome: ApprovalOutcome, *, now: int
    ) -> tuple[PendingApproval, WaitingTask]:
        key = (tenant_id, request_id)
        view, task = self.views.get(key), self.tasks.get(key)
        if view is None or task is None or not view.open_at(now):
            raise ConflictError("the request no longer waits for approval")
        if any(o.person_id == vote.person_id for o in task.outcomes):
            raise ConflictError("this person has answered this request already")
        self.views[key] = view = view.model_copy(update={"approvals": [*view.approvals, vote]})
        self.tasks[key] = task = task.model_copy(update={"outcomes": [*task.outcomes, outcome]})
        return view, task

    def close(self, tenant_id: str, request_id: str, status: Literal["approved", "denied"]) -> bool:
        view = self.views[(tenant_id, request_id)]
        if view.status != "pending":
            return False
        self.views[(tenant_id, request_id)] = view.model_copy(update={"status": status})
        return True

    def mark_sent(self, tenant_id: str, request_id: str) -> None:
        key = (tenant_id, request_id)
        self.tasks[key] = self.tasks[key].model_copy(update={"sent": True})


class MemoryTaskCallbacks:
    """Step Functions' waiting tasks in memory: each token resumes once."""

    def __init__(self) -> None:
        self.resumed: dict[str, dict[str, Any]] = {}
        self.closed: set[str] = set()  # tokens of tasks that no longer wait (timed out)
        self.failed: dict[str, str] = {}

    def succeed(self, task_token: str, output: dict[str, Any]) -> None:
        if task_token in self.resumed or task_token in self.closed:
            raise ConflictError("the task no longer waits")
        self.resumed[task_token] = output

    def fail(self, task_token: str, error: str) -> None:
        self.failed[task_token] = error
