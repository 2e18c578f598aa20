"""Honest flow states for handler tests: each stage's result signed as that stage's function signs it.

Every function of the access flow acts only on earlier results whose attestations verify
(``reliquary.flow.checks``), so a test that invokes one function directly must hand it results that the
earlier functions really signed. ``Attester`` signs them with the very stage keys those functions use on
the test's moto stack: the ``STAGE#<function>`` partitions of the vaults table, unwrapped by the root of
trust the settings name (``adapters.stage_keys.stage_signer``, called as the functions' factories call
it). Nothing is patched: the function under test verifies these signatures with the keys it reads from
the table, and refuses whatever a test alters after signing.

``forged`` makes the one thing an honest flow never does, for tests of refusals: a statement signed with
another function's key.
"""

from __future__ import annotations

import copy
import functools
import json
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from reliquary.adapters.clients import build_root_of_trust, table_config
from reliquary.adapters.stage_keys import stage_key_directory, stage_key_store, stage_signer
from reliquary.config import Settings
from reliquary.crypto.signing import SigningKey
from reliquary.flow import checks
from reliquary.flow.attestation import Attestation, Signer, Stage, StageSigner, VerifiedChain
from reliquary.flow.keys import STAGE_ALGORITHM
from reliquary.flow.memory import MemoryStageKeys
from reliquary.flow.state import (
    ContextOutcome,
    DecisionOutcome,
    FlowState,
    TrustOutcome,
    VoteOutcome,
    _Attested,
)
from reliquary.vaults.service_keys import load_or_create_signing_keys

REPO = Path(__file__).resolve().parents[2]
SAMPLE_REQUEST = REPO / "events" / "access" / "request.json"
PANEL = ("strict", "permissive", "neutral", "watchdog")  # the default quorum policy's panel
POLICY_VERSION = "9b" * 32

Json = dict[str, Any]
FlowLike = FlowState | Mapping[str, Any]


def admitted(request: Mapping[str, Any]) -> Json:
    """An access request as the state machine's Admit state passes it on: every result slot empty."""
    return {**request, "context": None, "trust": None, "votes": [], "decision": None}


def sample_request(**changes: Any) -> Json:
    """``events/access/request.json`` with ``changes``, admitted (no results yet)."""
    request: Json = json.loads(SAMPLE_REQUEST.read_text(encoding="utf-8"))
    request.update(changes)
    return admitted(request)


def state_of(flow: FlowLike) -> FlowState:
    return flow if isinstance(flow, FlowState) else FlowState.model_validate(flow)


def flow_json(flow: FlowLike) -> Json:
    """The flow state as an event carries it (what ``"flow.$": "$.flow"`` passes)."""
    return state_of(flow).model_dump(mode="json")


def flow_event(action: str, flow: FlowLike, **fields: Any) -> Json:
    """A flow task's event: ``{"action": ..., "flow": <FlowState>, ...}``."""
    return {"action": action, "flow": flow_json(flow), **fields}


def attestation_of(part: _Attested | None, name: str) -> Attestation:
    if part is None or part.attestation is None:
        raise ValueError(f"sign the {name} result first: later results build on its attestation")
    return part.attestation


class Attester:
    """Signs flow results with the stage keys of this stack's functions (creating them on first use, as
    the functions do), dated by ``clock``: a stage refuses statements dated more than five minutes past
    its own clock, so tests that move a function's clock move this one with it."""

    def __init__(
        self, settings: Settings, client: Any | None = None, *, clock: Callable[[], int] | None = None
    ) -> None:
        vaults = table_config(settings, settings.vaults_table)
        self._root = functools.partial(build_root_of_trust, settings)
        self._store = functools.partial(stage_key_store, vaults, client=client)
        self._directory = functools.partial(stage_key_directory, vaults, client)
        self.clock = clock or (lambda: int(time.time()))
        self.signers: dict[Signer, StageSigner] = {
            signer: stage_signer(vaults, signer, self._root, client) for signer in Signer
        }
        # Every stage key exists from here on, so ``published`` holds them all (a function under test
        # reads a key it has not met yet at once: reliquary.flow.keys).
        self.published = {signer: s.verifying_key for signer, s in self.signers.items()}

    # --- one result at a time, exactly as its stage signs it (reliquary.{zk,trust,agents}.stage) ------
    def sign_context(self, state: FlowState, context: ContextOutcome) -> ContextOutcome:
        attestation = self.signers[Signer.VERIFY_PROOF].attest(
            Stage.VERIFY_CONTEXT,
            state.subject,
            context.result_json(),
            claim={
                "verified": context.verified,
                "circuit": context.circuit,
                "proof_hash": context.proof_hash,
            },
            issued_at=self.clock(),
        )
        return context.model_copy(update={"attestation": attestation})

    def sign_trust(self, state: FlowState, trust: TrustOutcome) -> TrustOutcome:
        attestation = self.signers[Signer.SCORE_TRUST].attest(
            Stage.SCORE_TRUST,
            state.subject,
            trust.result_json(),
            claim={
                "effect": trust.effect,
                "policy_version": trust.policy_version,
                "item_version": trust.item_version,
                "sensitivity": trust.sensitivity,
            },
            parents=[attestation_of(state.context, "context")],
            issued_at=self.clock(),
        )
        return trust.model_copy(update={"attestation": attestation})

    def sign_vote(self, state: FlowState, vote: VoteOutcome) -> VoteOutcome:
        attestation = self.signers[Signer.AGENT_VOTE].attest(
            Stage.VOTE,
            state.subject,
            vote.result_json(),
            claim={"agent": vote.agent, "vote": vote.vote, "veto": vote.veto},
            parents=[attestation_of(state.context, "context"), attestation_of(state.trust, "trust")],
            issued_at=self.clock(),
        )
        return vote.model_copy(update={"attestation": attestation})

    def sign_tally(
        self, state: FlowState, decision: DecisionOutcome, *, approvers_required: int = 0
    ) -> DecisionOutcome:
        votes = [attestation_of(vote, f"{vote.agent} vote") for vote in state.votes]
        attestation = self.signers[Signer.AGENT_VOTE].attest(
            Stage.TALLY,
            state.subject,
            decision.result_json(),
            claim={"decision": decision.decision, "approvers_required": approvers_required},
            parents=[attestation_of(state.trust, "trust"), *sorted(votes, key=lambda a: a.digest)],
            issued_at=self.clock(),
        )
        return decision.model_copy(update={"attestation": attestation})

    # --- whole states -----------------------------------------------------------------------------------
    def attest(self, flow: FlowLike, *, tally: bool = True) -> FlowState:
        """``flow`` with every result it holds signed, in flow order (context, trust, each vote, and the
        decision as the tally's): what the flow would pass on had its stages decided exactly these.
        ``tally=False``: the decision is the state machine's own (a deny when a stage refused), unsigned."""
        state = state_of(flow)
        if state.context is not None:
            state = state.model_copy(update={"context": self.sign_context(state, state.context)})
        if state.trust is not None:
            state = state.model_copy(update={"trust": self.sign_trust(state, state.trust)})
        state = state.model_copy(update={"votes": [self.sign_vote(state, v) for v in state.votes]})
        if tally and state.decision is not None:
            state = state.model_copy(update={"decision": self.sign_tally(state, state.decision)})
        return state

    def approved(
        self,
        flow: FlowLike | None = None,
        *,
        item_version: int = 1,
        agents: Sequence[str] = PANEL,
        policy_version: str = POLICY_VERSION,
        decision: str = "approve",
    ) -> FlowState:
        """The request (``flow``, by default the sample request) as an honest flow decides it: the proof
        verified, the rules allowed it for ``item_version``, each agent approved, the tally ``decision``."""
        state = state_of(flow if flow is not None else sample_request())
        return self.attest(
            state.model_copy(
                update={
                    "context": context_outcome(),
                    "trust": trust_outcome(
                        item_version=item_version, policy_version=policy_version, region=state.region
                    ),
                    "votes": [VoteOutcome(agent=a, vote="approve", confidence=0.9) for a in agents],
                    "decision": DecisionOutcome.model_validate(
                        {
                            "decision": decision,
                            "reasons": [f"{len(agents)} of {len(agents)} approved"],
                            "policy_version": policy_version,
                        }
                    ),
                }
            )
        )

    def waiting(
        self, flow: FlowLike | None = None, *, approvers_required: int = 1, effect: str = "step_up"
    ) -> FlowState:
        """The request as an honest flow hands it to AwaitApprovers: the rules' ``effect``, each agent
        approving, the tally approving and asking for ``approvers_required`` people."""
        state = state_of(flow if flow is not None else sample_request())
        state = self.attest(
            state.model_copy(
                update={
                    "context": context_outcome(),
                    "trust": trust_outcome(effect=effect, region=state.region),
                    "votes": [VoteOutcome(agent=a, vote="approve", confidence=0.9) for a in PANEL],
                }
            ),
            tally=False,
        )
        tally = DecisionOutcome(
            decision="approve",
            reasons=[f"4 of 4 approved; {approvers_required} of the vault's approvers must approve too"],
            policy_version=POLICY_VERSION,
        )
        signed = self.sign_tally(state, tally, approvers_required=approvers_required)
        return state.model_copy(update={"decision": signed})

    def decide(
        self, flow: FlowLike, *, decision: str = "approve", agents: Sequence[str] = PANEL
    ) -> FlowState:
        """A state whose context and trust are signed already (by the functions under test, say), with each
        of ``agents`` approving and the tally deciding ``decision``, signed."""
        state = state_of(flow)
        votes = [self.sign_vote(state, VoteOutcome(agent=a, vote="approve", confidence=0.9)) for a in agents]
        state = state.model_copy(update={"votes": votes})
        trust = attestation_of(state.trust, "trust")
        tally = DecisionOutcome.model_validate(
            {
                "decision": decision,
                "reasons": [f"{len(agents)} of {len(agents)} approved"],
                "policy_version": trust.statement.claim.get("policy_version"),
            }
        )
        return state.model_copy(update={"decision": self.sign_tally(state, tally)})

    # --- what an auditor checks ---------------------------------------------------------------------------
    def verify(self, flow: FlowLike) -> VerifiedChain:
        """The chain ``flow`` carries (every result it holds, in flow order), checked as an auditor checks
        it: each result is the one its statement signed, and the statements verify with the stage keys
        published in the table, all about this request. ``AttestationError`` otherwise."""
        state = state_of(flow)
        parts: list[tuple[_Attested | None, str]] = [(state.context, "context"), (state.trust, "trust")]
        parts += [(vote, f"{vote.agent} vote") for vote in state.votes]
        parts.append((state.decision, "tally"))
        parts += [(approval, "approval") for approval in state.approvals]
        chain = [checks.attestation_of(part, name) for part, name in parts if part is not None]
        return self._directory().verify_chain(chain, subject=state.subject, now=self.clock())

    # --- what an honest flow never signs ----------------------------------------------------------------
    def stage_key(self, signer: Signer) -> SigningKey:
        """A function's stage key itself, unwrapped from the table as that function unwraps it."""
        keys = load_or_create_signing_keys(
            self._store(signer), self._root(), [STAGE_ALGORITHM], clock=self.clock, purpose=signer.key_purpose
        )
        return keys[STAGE_ALGORITHM]

    def forged(
        self, attestation: Attestation, *, key_of: Signer, named_as: Signer | None = None
    ) -> Attestation:
        """``attestation``'s statement signed with ``key_of``'s stage key instead of its own function's,
        naming ``named_as`` as its signer (by default the function that should have signed it)."""
        key = self.stage_key(key_of)
        statement = attestation.statement
        return Attestation(
            statement,
            named_as or attestation.signer,
            key.algorithm,
            key.key_id,
            key.sign(statement.signed_bytes()),
        )

    def forgeries(self, flow: FlowLike, part: Part) -> dict[str, tuple[Json, str]]:
        """``flow`` (honestly signed) with its ``part`` (the first vote, for "vote") made untrustworthy in
        each way a caller could try, and the check (``AttestationError.details["check"]``) that catches it:
        its attestation left out, the result altered after signing, the statement signed by another
        function's key (in that function's name, or in the right function's name), or a result its stage
        signed for another request."""
        honest = flow_json(flow)

        def part_of(doc: Json) -> Json:
            found: Json = doc["votes"][0] if part == "vote" else doc[part]
            return found

        def with_part(value: Json) -> Json:
            doc = copy.deepcopy(honest)
            if part == "vote":
                doc["votes"][0] = value
            else:
                doc[part] = value
            return doc

        original = part_of(honest)
        attestation = Attestation.from_json(original["attestation"])
        other = Signer.SCORE_TRUST if attestation.signer is Signer.AGENT_VOTE else Signer.AGENT_VOTE
        another_request = flow_json(self.attest({**honest, "request_id": f"{honest['request_id']}-other"}))
        return {
            "missing its attestation": (with_part({**original, "attestation": None}), "structure"),
            "altered after signing": (with_part(_ALTERED[part](original)), "result"),
            "signed by another function's key": (
                with_part(
                    {
                        **original,
                        "attestation": self.forged(attestation, key_of=other, named_as=other).to_json(),
                    }
                ),
                "signer",
            ),
            "signed with another function's key in its own function's name": (
                with_part({**original, "attestation": self.forged(attestation, key_of=other).to_json()}),
                "key",
            ),
            "about another request": (with_part(part_of(another_request)), "subject"),
        }


Part = Literal["context", "trust", "vote", "decision"]
# A change to each kind of result that a caller might wish for (each keeps the result well-formed).
_ALTERED: Mapping[str, Callable[[Json], Json]] = {
    "context": lambda c: {**c, "claims": {**c["claims"], "device_commitment": "1"}},
    "trust": lambda t: {**t, "score": 1.0 if t["score"] != 1.0 else 0.5, "band": "high"},
    "vote": lambda v: {**v, "vote": "deny" if v["vote"] == "approve" else "approve"},
    "decision": lambda d: {**d, "reasons": [*d["reasons"], "approved by me"]},
}

# The example device's proven claims (the public signals of events/access/request.json's proof).
EXAMPLE_CLAIMS: Mapping[str, str] = {
    "device_commitment": "18354141148082896960914424956378798749286920629373085481527856374355295228956",
    "region_root": "9896735798782419697123471443848096284530814566758597425209359349122398288267",
    "window_start": "1795650300",
    "window_end": "1795652100",
    "pattern_commitment": "15686450602893125086219713992925922433590591884003150842973429809019245065713",
    "threshold": "6",
}


def context_outcome(*, verified: bool = True, **changes: Any) -> ContextOutcome:
    """A VerifyContext result (unsigned): the example device's claims, verified."""
    fields: Json = {
        "verified": verified,
        "circuit": "context_proof",
        "reason": None if verified else "the proof does not verify",
        "claims": dict(EXAMPLE_CLAIMS),
        "proof_hash": "ab" * 32,
    }
    fields.update(changes)
    return ContextOutcome.model_validate(fields)


def trust_outcome(*, effect: str = "allow", **changes: Any) -> TrustOutcome:
    """A ScoreTrust result (unsigned) whose rules had ``effect``, scored at the example device."""
    policy_version = changes.get("policy_version", POLICY_VERSION)
    fields: Json = {
        "score": 0.9,
        "band": "high",
        "template": "standard",
        "factors": [],
        "rules": {"effect": effect, "reason": "a test rule", "matched": [], "policy_version": policy_version},
        "policy_version": policy_version,
        "facts": {},
        "device": EXAMPLE_CLAIMS["device_commitment"],
        "region": "eu-west-1",
        "sensitivity": "confidential",
        "item_version": 1,
    }
    fields.update(changes)
    return TrustOutcome.model_validate(fields)


class MemoryAttester(Attester):
    """An ``Attester`` over in-memory stage keys (``reliquary.flow.memory.MemoryStageKeys``): for domain
    tests that run no AWS stack."""

    def __init__(self, keys: MemoryStageKeys, *, clock: Callable[[], int]) -> None:
        self.keys = keys
        self.clock = clock
        self.signers = dict(keys.signers)
        self.published = {signer: s.verifying_key for signer, s in self.signers.items()}
        self._directory = functools.partial(lambda: keys.directory)
