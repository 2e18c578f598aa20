"""agent-vote's step-up actions in memory (``reliquary.agents.approvals``): a waiting request is stored
only on an attested approving tally that asks for people; an answer counts only from an active approver
of the vault, with a passkey assertion (the software authenticator) over the challenge that binds this
request, vault, item, decision and person; one per person; the outcome resumes the execution once, with
approval statements the chain check accepts. Every refusal is typed and changes nothing."""

from __future__ import annotations

import copy
import dataclasses
import secrets
from dataclasses import dataclass
from typing import Any

import pytest

from reliquary.agents.approvals import Answer, ApprovalService
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
from reliquary.flow.approvals import approval_challenge
from reliquary.flow.attestation import Signer
from reliquary.flow.checks import verified_decision
from reliquary.flow.memory import MemoryApprovalStore, MemoryStageKeys, MemoryTaskCallbacks
from reliquary.flow.state import ApprovalOutcome, FlowState
from reliquary.identity.memory import InMemoryIdentityRepository
from reliquary.identity.models import Person, PersonStatus, StoredCredential, new_person_id
from reliquary.identity.scopes import Role, RoleBinding
from tests.support.attested import MemoryAttester, sample_request
from tests.support.authenticator import ORIGIN, RP_ID, SoftAuthenticator, b64url, register_passkey

NOW = 1_800_000_000
TOKEN = "task-token-1"


@dataclass
class Approver:
    person: Person
    authenticator: SoftAuthenticator
    credential: StoredCredential


@dataclass
class World:
    keys: MemoryStageKeys
    store: MemoryApprovalStore
    people: InMemoryIdentityRepository
    callbacks: MemoryTaskCallbacks
    service: ApprovalService
    state: FlowState
    clock: list[int]

    def approver(
        self, *, tenant_id: str = "acme", roles: tuple[RoleBinding, ...] = (RoleBinding(Role.APPROVER),)
    ) -> Approver:
        person = Person(
            person_id=new_person_id(),
            tenant_id=tenant_id,
            name="Ada Lovelace",
            roles=roles,
            status=PersonStatus.ACTIVE,
            created_at=NOW,
            not_before=0,
            user_handle=secrets.token_bytes(32),
        )
        self.people.create_person(person)
        authenticator, credential = register_passkey(person, now=NOW)
        self.people.add_credential(credential, enrollment_jti=None)
        return Approver(person, authenticator, credential)

    def answer(
        self, who: Approver, decision: str = "approve", *, bound: dict[str, Any] | None = None
    ) -> Answer:
        """An answer as the approval page makes it: the challenge over this request, decision and person
        (``bound`` changes what the challenge binds), signed by the person's authenticator."""
        values: dict[str, Any] = {
            "tenant_id": self.state.tenant_id,
            "request_id": self.state.request_id,
            "vault_id": self.state.vault_id,
            "item_id": self.state.item_id,
            "decision": decision,
            "person_id": who.person.person_id,
            "nonce": secrets.token_hex(16),
            "issued_at": self.clock[0],
        }
        signed = {**values, **(bound or {})}
        options = {"challenge": b64url(approval_challenge(**signed)), "rpId": RP_ID}
        credential = who.authenticator.authenticate(options, credential_id=who.credential.credential_id)
        return Answer(
            tenant_id=values["tenant_id"],
            request_id=values["request_id"],
            person_id=values["person_id"],
            decision=values["decision"],
            nonce=values["nonce"],
            issued_at=values["issued_at"],
            credential=credential,
        )

    def wait(self) -> dict[str, Any]:
        return self.service.await_approvals(self.state, TOKEN)

    def snapshot(self) -> Any:
        return copy.deepcopy((self.store.views, self.store.tasks, self.callbacks.resumed))

    def decided(self) -> FlowState:
        """The state the flow records once the task resumed with an approval (AcceptApprovals)."""
        output = self.callbacks.resumed[TOKEN]
        approvals = [ApprovalOutcome.model_validate(a) for a in output["approvals"]]
        return self.state.model_copy(update={"approvals": approvals})


@pytest.fixture
def world() -> World:
    keys = MemoryStageKeys()
    clock = [NOW]
    store, people, callbacks = MemoryApprovalStore(), InMemoryIdentityRepository(), MemoryTaskCallbacks()
    service = ApprovalService(
        store=store,
        people=people,
        callbacks=callbacks,
        rp_id=RP_ID,
        origins=(ORIGIN,),
        signer=keys.signers[Signer.AGENT_VOTE],
        keys=keys.directory,
        policy=lambda _t, _v: QuorumPolicy(approvers=2, approval_timeout_seconds=600),
        clock=lambda: clock[0],
    )
    state = MemoryAttester(keys, clock=lambda: clock[0]).waiting(sample_request(), approvers_required=2)
    return World(keys, store, people, callbacks, service, state, clock)


# --- await_approvals --------------------------------------------------------------------------------
def test_a_waiting_request_is_stored_with_what_its_approvers_see(world: World) -> None:
    assert world.wait() == {"request_id": world.state.request_id, "required": 2, "expires_at": NOW + 600}
    (view,) = world.store.list_pending(world.state.tenant_id)
    assert (view.request_id, view.vault_id, view.item_id) == (
        world.state.request_id,
        world.state.vault_id,
        world.state.item_id,
    )
    assert view.requester == world.state.principal.subject
    assert view.trust.effect == "step_up"
    assert [v.agent for v in view.votes] == ["strict", "permissive", "neutral", "watchdog"]
    assert (view.required, view.status, view.approvals) == (2, "pending", [])
    # The token sits in the task row only; the view has none of it.
    assert TOKEN not in view.model_dump_json()
    task = world.store.get_task(world.state.tenant_id, world.state.request_id)
    assert task is not None
    assert task.task_token == TOKEN
    # A retried task (a new token) keeps the request as it was and resumes with the newest token.
    world.service.await_approvals(world.state, "task-token-2")
    task = world.store.get_task(world.state.tenant_id, world.state.request_id)
    assert task is not None
    assert task.task_token == "task-token-2"


def test_only_an_attested_approving_tally_that_asks_for_people_waits(world: World) -> None:
    attester = MemoryAttester(world.keys, clock=lambda: world.clock[0])
    no_people = attester.waiting(sample_request(), approvers_required=0, effect="allow")
    denied = attester.decide(world.state.model_copy(update={"votes": []}), decision="deny")
    altered = world.state.model_copy(
        update={"decision": world.state.decision.model_copy(update={"reasons": ["forged"]})}  # type: ignore[union-attr]
    )
    unsigned = world.state.model_copy(
        update={"decision": world.state.decision.model_copy(update={"attestation": None})}  # type: ignore[union-attr]
    )
    outsider = MemoryAttester(MemoryStageKeys(), clock=lambda: world.clock[0]).waiting(sample_request())
    for n, state in enumerate((no_people, denied, altered, unsigned, outsider)):
        with pytest.raises(AttestationError):
            world.service.await_approvals(state, f"token-{n}")
    assert world.store.views == {}
    # Each refusal ended its wait at once (the flow logs "AwaitApprovers failed: AttestationError").
    assert set(world.callbacks.failed) == {f"token-{n}" for n in range(5)}
    assert set(world.callbacks.failed.values()) == {"AttestationError", "UnknownStageKeyError"}


# --- approve --------------------------------------------------------------------------------------
def test_k_approvals_resume_the_execution_with_a_chain_that_approves(world: World) -> None:
    world.wait()
    first, second = world.approver(), world.approver()
    assert world.service.approve(world.answer(first)) == {
        "request_id": world.state.request_id,
        "decision": "approve",
        "approvals": 1,
        "required": 2,
        "complete": False,
    }
    assert world.callbacks.resumed == {}
    world.clock[0] += 30
    reply = world.service.approve(world.answer(second))
    assert (reply["approvals"], reply["complete"]) == (2, True)
    output = world.callbacks.resumed[TOKEN]
    assert (output["outcome"], output["denied_by"]) == ("approve", None)
    chain = verified_decision(world.decided(), world.keys.directory, now=world.clock[0])
    assert chain is not None
    assert chain.approves
    assert chain.approved_by == (first.person.person_id, second.person.person_id)
    assert chain.decided_at == NOW + 30
    claim = chain.approvals[0].statement.claim
    assert claim["credential_id"] == first.credential.credential_id
    # The counter advanced; the view shows who answered; the request no longer waits.
    assert world.people.get_credential(first.credential.credential_id).sign_count == 1
    view = world.store.get_pending(world.state.tenant_id, world.state.request_id)
    assert view is not None
    assert view.status == "approved"
    assert [a.person_id for a in view.approvals] == [first.person.person_id, second.person.person_id]


def test_one_deny_resumes_the_execution_with_a_deny(world: World) -> None:
    world.wait()
    first, second = world.approver(), world.approver()
    world.service.approve(world.answer(first))
    reply = world.service.approve(world.answer(second, "deny"))
    assert (reply["decision"], reply["complete"]) == ("deny", True)
    output = world.callbacks.resumed[TOKEN]
    assert (output["outcome"], output["denied_by"]) == ("deny", second.person.person_id)
    # Its approvals cannot be logged as an approval (a state machine that took them for one would have
    # RecordDecision refuse them).
    with pytest.raises(AttestationError) as caught:
        verified_decision(world.decided(), world.keys.directory, now=world.clock[0])
    assert caught.value.details == {"check": "approval"}
    third = world.approver()
    with pytest.raises(ConflictError):
        world.service.approve(world.answer(third))


def test_a_retried_answer_gets_the_same_reply_and_changes_nothing(world: World) -> None:
    world.wait()
    first = world.approver()
    answer = world.answer(first)
    reply = world.service.approve(answer)
    before = world.snapshot()
    assert world.service.approve(answer) == reply
    assert world.snapshot() == before


def _refused(world: World, error: type[ReliquaryError], answer: Answer) -> ReliquaryError:
    before = world.snapshot()
    counters = {c: world.people.get_credential(c).sign_count for c in world.people._credentials}
    with pytest.raises(error) as caught:
        world.service.approve(answer)
    assert world.snapshot() == before
    assert {c: world.people.get_credential(c).sign_count for c in counters} == counters
    return caught.value


def test_forged_and_misdirected_answers_are_refused_and_change_nothing(world: World) -> None:
    world.wait()
    ada = world.approver()
    other = "access-" + "9" * 8
    # An assertion over another request, vault, item, decision, person or time.
    for bound in (
        {"request_id": other},
        {"vault_id": "vault-other"},
        {"item_id": "item-other"},
        {"decision": "deny"},
        {"person_id": new_person_id()},
        {"tenant_id": "globex"},
        {"issued_at": NOW - 1},
    ):
        refused = _refused(world, PasskeyError, world.answer(ada, bound=bound))
        assert refused.details == {"check": "challenge"}
    # Not an approver: another role, a vault they do not approve, another tenant's approver, revoked.
    auditor = world.approver(roles=(RoleBinding(Role.AUDITOR),))
    elsewhere = world.approver(roles=(RoleBinding(Role.APPROVER, "vault-other"),))
    globex = world.approver(tenant_id="globex")
    for outsider in (auditor, elsewhere, globex):
        _refused(world, ForbiddenError, world.answer(outsider))
    world.people.revoke_person("acme", ada.person.person_id, not_before=NOW)
    _refused(world, ForbiddenError, world.answer(ada))


def test_a_passkey_of_someone_else_or_a_replayed_assertion_is_refused(world: World) -> None:
    world.wait()
    ada, bob = world.approver(), world.approver()
    # Bob's passkey answering as Ada: not one of Ada's passkeys.
    answer = world.answer(ada)
    bobs = world.answer(bob)
    _refused(world, ForbiddenError, dataclasses.replace(answer, credential=bobs.credential))
    # Ada's assertion replayed as Bob's answer.
    world.service.approve(answer)
    _refused(world, ForbiddenError, dataclasses.replace(answer, person_id=bob.person.person_id))
    # Bob's assertion presented again after its counter moved on (a clone, or a replay of an earlier one).
    world.people.advance_sign_count(bob.credential.credential_id, 0, 5)
    assert _refused(world, PasskeyError, bobs).details == {"check": "sign_count"}


def test_a_second_answer_of_one_person_and_a_closed_request_are_conflicts(world: World) -> None:
    world.wait()
    ada = world.approver()
    world.service.approve(world.answer(ada))
    assert _refused(world, ConflictError, world.answer(ada)).code == "conflict"
    assert _refused(world, ConflictError, world.answer(ada, "deny")).code == "conflict"
    world.clock[0] += 600  # the wait timed out
    _refused(world, ConflictError, world.answer(world.approver()))


def test_an_answer_to_nothing_waiting_or_malformed_is_refused(world: World) -> None:
    ada = world.approver()
    _refused(world, NotFoundError, world.answer(ada))
    world.wait()
    answer = world.answer(ada)
    _refused(world, InvalidRequestError, dataclasses.replace(answer, nonce="x"))
    _refused(world, InvalidRequestError, dataclasses.replace(answer, person_id="cl-" + "0" * 24))
    world.clock[0] += 301  # the challenge is older than its ceremony's timeout
    _refused(world, InvalidRequestError, answer)
    world.clock[0] -= 301
    broken = copy.deepcopy(dict(answer.credential))
    broken["response"]["signature"] = b64url(b"\1" * 64)
    _refused(world, PasskeyError, dataclasses.replace(answer, credential=broken))


def test_a_timed_out_task_is_a_conflict_and_an_execution_resumes_once(world: World) -> None:
    world.wait()
    ada, bob = world.approver(), world.approver()
    world.service.approve(world.answer(ada))
    world.callbacks.closed.add(TOKEN)  # Step Functions timed the task out already
    with pytest.raises(ConflictError):
        world.service.approve(world.answer(bob))
    assert world.callbacks.resumed == {}
