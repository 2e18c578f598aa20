"""agent-vote's step-up actions: ``await_approvals`` (the state machine's AwaitApprovers task: store the
waiting request) and ``approve`` (one person's passkey answer, relayed by the API).

Neither trusts its caller. ``await_approvals`` stores a request only once its chain through the tally
checks out and the tally approved asking for people (its signed ``approvers_required``). ``approve`` takes
nobody's word for the person either: the person must be an active approver of the request's vault (a role
on the vault or tenant-wide, read from IdentityTable), the approval challenge is recomputed here from the
request and the answer, the WebAuthn assertion is verified here against the person's stored credential
(``reliquary.identity.passkeys.verify_assertion``), its sign counter is advanced conditionally, and one
answer per person is recorded conditionally. agent-vote then signs the ``approval`` statement (parent: the
tally) and, on the k-th approval or the first deny, resumes the execution (SendTaskSuccess) with the
outcome and the signed approvals; RecordDecision checks them again before anything is logged.

A retried answer (the same assertion again) gets the same answer back and resends the outcome if sending
it failed; any other second answer of the same person, or an answer to a request no longer waiting, is a
``ConflictError``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from reliquary.agents.policy import QuorumPolicy
from reliquary.errors import (
    AttestationError,
    ConflictError,
    ForbiddenError,
    InvalidRequestError,
    NotFoundError,
    PasskeyError,
    ReliquaryError,
)
from reliquary.flow.approvals import (
    CHALLENGE_FUTURE_SKEW_SECONDS,
    CHALLENGE_TTL_SECONDS,
    NONCE,
    PERSON_ID,
    AgentVoteView,
    ApprovalStore,
    PendingApproval,
    PersonVote,
    TaskCallbacks,
    TrustView,
    WaitingTask,
    approval_challenge,
)
from reliquary.flow.attestation import Attestation, Stage, StageSigner
from reliquary.flow.checks import attestation_of, verified_votes
from reliquary.flow.keys import StageKeyDirectory
from reliquary.flow.state import ApprovalOutcome, FlowState
from reliquary.identity import passkeys
from reliquary.identity.models import Person, StoredCredential
from reliquary.identity.ports import PeopleRepository
from reliquary.identity.scopes import Role

MAX_CREDENTIAL_JSON = 16 * 1024  # a WebAuthn assertion response: a few hundred bytes of base64url


def answered_assertion_sha256(credential: Mapping[str, Any]) -> str:
    """The digest ``verify_assertion`` names an assertion by, computed without verifying it: how a retried
    answer is recognized as the very assertion recorded before (nothing else is done with it)."""
    response = credential.get("response")
    if not isinstance(response, Mapping):
        raise PasskeyError("malformed")
    parts = [
        passkeys.b64url_decode(response.get(name), max_bytes=limit, min_bytes=1)
        for name, limit in (
            ("authenticatorData", passkeys.MAX_AUTHENTICATOR_DATA),
            ("clientDataJSON", passkeys.MAX_CLIENT_DATA),
            ("signature", passkeys.MAX_SIGNATURE),
        )
    ]
    return passkeys.assertion_sha256(*parts)


def may_approve(person: Person, tenant_id: str, vault_id: str) -> bool:
    """An active person of the tenant with the approver role on the vault or on the whole tenant."""
    return (
        person.active
        and person.tenant_id == tenant_id
        and any(b.role is Role.APPROVER and b.vault_id in (None, vault_id) for b in person.roles)
    )


@dataclass(frozen=True, slots=True)
class Answer:
    """One person's answer to a waiting request, as the API relays it."""

    tenant_id: str
    request_id: str
    person_id: str
    decision: Literal["approve", "deny"]
    nonce: str
    issued_at: int
    credential: Mapping[str, Any]


def _view(state: FlowState, required: int, *, now: int, timeout: int) -> PendingApproval:
    trust = state.trust
    if trust is None:  # verified_votes checked it; a typed refusal all the same
        raise AttestationError("the flow state has no trust result", check="structure")
    return PendingApproval(
        request_id=state.request_id,
        tenant_id=state.tenant_id,
        vault_id=state.vault_id,
        item_id=state.item_id,
        sensitivity=trust.sensitivity,
        requester=state.principal.subject,
        purpose=state.purpose,
        region=state.region,
        trust=TrustView(
            score=trust.score,
            band=trust.band,
            effect=trust.effect,
            factors=[f.model_dump(mode="json") for f in trust.factors],
        ),
        votes=[
            AgentVoteView(agent=v.agent, vote=v.vote, confidence=v.confidence, rationale=v.rationale)
            for v in state.votes
        ],
        required=required,
        created_at=now,
        expires_at=now + timeout,
    )


class ApprovalService:
    def __init__(
        self,
        *,
        store: ApprovalStore,
        people: PeopleRepository,
        callbacks: TaskCallbacks,
        rp_id: str,
        origins: Sequence[str],
        signer: StageSigner,
        keys: StageKeyDirectory,
        policy: Callable[[str, str], QuorumPolicy],
        clock: Callable[[], int],
    ) -> None:
        self._store = store
        self._people = people
        self._callbacks = callbacks
        self._rp_id = rp_id
        self._origins = tuple(origins)
        self._signer = signer
        self._keys = keys
        self._policy = policy
        self._clock = clock

    def _tally(self, state: FlowState, now: int) -> tuple[Attestation, int]:
        """The state's tally, once the chain through it checks out and it approved asking for people."""
        checked = verified_votes(state, self._keys, now=now)
        tally = attestation_of(state.decision, "tally")
        chain = self._keys.verify_chain(
            [checked.context_attestation, checked.trust_attestation, *(a for _, a in checked.votes), tally],
            subject=state.subject,
            now=now,
        )
        if state.decision is None or state.decision.decision != "approve" or chain.tally is None:
            raise AttestationError("only an approving tally waits for people", check="approval")
        if chain.approvers_required < 1:
            raise AttestationError("the tally asks for no approvers", check="approvals")
        if state.approvals:
            raise AttestationError("a waiting request carries no approvals yet", check="structure")
        return tally, chain.approvers_required

    def await_approvals(self, state: FlowState, task_token: str) -> dict[str, Any]:
        """Store the request as waiting for its approvers (the task resumes when they answered). A
        refusal fails the waiting task with its code at once (the flow logs that deny), rather than
        leaving the execution to wait for answers that can never come."""
        try:
            return self._await(state, task_token)
        except ReliquaryError as refused:
            if not refused.retryable:
                self._callbacks.fail(task_token, type(refused).__name__)
            raise

    def _await(self, state: FlowState, task_token: str) -> dict[str, Any]:
        now = self._clock()
        tally, required = self._tally(state, now)
        timeout = self._policy(state.tenant_id, state.vault_id).approval_timeout_seconds
        view = _view(state, required, now=now, timeout=timeout)
        task = WaitingTask(
            task_token=task_token, flow=state.model_dump(mode="json"), tally_sha256=tally.digest
        )
        self._store.put_waiting(view, task)
        return {"request_id": state.request_id, "required": required, "expires_at": view.expires_at}

    def _person(self, person_id: str) -> Person | None:
        try:
            return self._people.get_person(person_id)
        except NotFoundError:
            return None

    def _credential(self, credential_id: str, person: Person) -> StoredCredential:
        try:
            credential: StoredCredential | None = self._people.get_credential(credential_id)
        except NotFoundError:
            credential = None
        if credential is None or (credential.person_id, credential.tenant_id) != (
            person.person_id,
            person.tenant_id,
        ):
            raise ForbiddenError("the passkey is not one of this approver's")
        return credential

    def _waiting(self, tenant_id: str, request_id: str) -> tuple[PendingApproval, WaitingTask]:
        view = self._store.get_pending(tenant_id, request_id)
        task = self._store.get_task(tenant_id, request_id)
        if view is None or task is None:
            raise NotFoundError("no request of this tenant waits for approval under this id")
        return view, task

    def approve(self, answer: Answer) -> dict[str, Any]:
        """Verify and record one person's answer; resume the execution once the request is decided."""
        if PERSON_ID.fullmatch(answer.person_id) is None or NONCE.fullmatch(answer.nonce) is None:
            raise InvalidRequestError("a person id and a 32-hex-digit nonce are required")
        if len(json.dumps(answer.credential, default=str)) > MAX_CREDENTIAL_JSON:
            raise InvalidRequestError("the credential is too large", field="credential")
        now = self._clock()
        view, task = self._waiting(answer.tenant_id, answer.request_id)
        earlier = next((o for o in task.outcomes if o.person_id == answer.person_id), None)
        if earlier is not None:
            retried = answered_assertion_sha256(answer.credential) == earlier.assertion_sha256
            if retried and earlier.vote == answer.decision:
                return self._answered(view, task, answer.decision)  # a retry: the same reply
            raise ConflictError("this person has answered this request already")
        if not view.open_at(now):
            raise ConflictError("the request no longer waits for approval")
        person = self._person(answer.person_id)
        if person is None or not may_approve(person, view.tenant_id, view.vault_id):
            raise ForbiddenError("only an active approver of the vault may answer this request")
        if not now - CHALLENGE_TTL_SECONDS <= answer.issued_at <= now + CHALLENGE_FUTURE_SKEW_SECONDS:
            raise InvalidRequestError(
                "the approval challenge has expired; ask for a new one", field="issued_at"
            )
        credential = self._credential(passkeys.credential_id_of(answer.credential), person)
        challenge = approval_challenge(
            tenant_id=view.tenant_id,
            request_id=view.request_id,
            vault_id=view.vault_id,
            item_id=view.item_id,
            decision=answer.decision,
            person_id=person.person_id,
            nonce=answer.nonce,
            issued_at=answer.issued_at,
        )
        verified = passkeys.verify_assertion(
            dict(answer.credential),
            expected_challenge=challenge,
            credential=credential,
            rp_id=self._rp_id,
            origins=self._origins,
        )
        # Single use: the counter moves on only from the value the assertion was checked against (of two
        # uses of one assertion, one gets here).
        self._people.advance_sign_count(
            credential.credential_id, credential.sign_count, verified.sign_count, used_at=now
        )
        digest = verified.assertion_sha256
        state = FlowState.model_validate(task.flow)
        outcome = ApprovalOutcome(
            person_id=person.person_id,
            credential_id=credential.credential_id,
            vote=answer.decision,
            assertion_sha256=digest,
            decided_at=now,
        )
        tally = attestation_of(state.decision, "tally")
        if tally.digest != task.tally_sha256:
            raise AttestationError("the waiting request's tally was altered in storage", check="parents")
        signed = outcome.model_copy(
            update={
                "attestation": self._signer.attest(
                    Stage.APPROVAL,
                    state.subject,
                    outcome.result_json(),
                    claim={
                        "person_id": outcome.person_id,
                        "credential_id": outcome.credential_id,
                        "assertion_sha256": outcome.assertion_sha256,
                        "vote": outcome.vote,
                    },
                    parents=[tally],
                    issued_at=now,
                )
            }
        )
        vote = PersonVote(person_id=person.person_id, name=person.name, vote=answer.decision, decided_at=now)
        view, task = self._store.add_answer(view.tenant_id, view.request_id, vote, signed, now=now)
        return self._answered(view, task, answer.decision)

    def _answered(self, view: PendingApproval, task: WaitingTask, decision: str) -> dict[str, Any]:
        """The request as it stands; once decided, the outcome sent to the execution (once: a second
        sender, an answer that raced this one, finds the task resumed already)."""
        approvals = [o for o in task.outcomes if o.vote == "approve"]
        denied = next((o for o in task.outcomes if o.vote == "deny"), None)
        complete = denied is not None or len(approvals) >= view.required
        if complete and not task.sent:
            status: Literal["approved", "denied"] = "denied" if denied is not None else "approved"
            closed_here = self._store.close(view.tenant_id, view.request_id, status)
            output = {
                "outcome": "deny" if denied is not None else "approve",
                "approvals": [o.model_dump(mode="json") for o in task.outcomes],
                "denied_by": None if denied is None else denied.person_id,
            }
            try:
                self._callbacks.succeed(task.task_token, output)
            except ConflictError:
                if closed_here:  # nobody else resumed it: the wait timed out or the execution ended
                    raise
            else:
                self._store.mark_sent(view.tenant_id, view.request_id)
        return {
            "request_id": view.request_id,
            "decision": decision,
            "approvals": len(approvals),
            "required": view.required,
            "complete": complete,
        }
