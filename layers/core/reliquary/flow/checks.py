"""What a stage checks of the flow state it is handed before acting on it: the attestations of the stages
it builds on verify, are about this very request, and sign exactly the parts the state carries.

A caller who invokes a function directly can put anything in the state; after these checks, the only
states a stage acts on are ones the earlier stages really produced for this request.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from reliquary.errors import AttestationError
from reliquary.flow.attestation import Attestation, VerifiedChain, digest
from reliquary.flow.keys import StageKeyDirectory
from reliquary.flow.state import ContextOutcome, FlowState, TrustOutcome, VoteOutcome, _Attested


@dataclass(frozen=True, slots=True)
class Checked:
    """A part of the state and the attestation that signed it, checked."""

    context: ContextOutcome
    context_attestation: Attestation


@dataclass(frozen=True, slots=True)
class CheckedTrust(Checked):
    trust: TrustOutcome
    trust_attestation: Attestation


@dataclass(frozen=True, slots=True)
class CheckedVotes(CheckedTrust):
    votes: tuple[tuple[VoteOutcome, Attestation], ...]


def attestation_of(part: _Attested | None, name: str) -> Attestation:
    """The attestation of a part of the state, once it signs exactly that part (AttestationError)."""
    if part is None:
        raise AttestationError(f"the flow state has no {name} result", check="structure")
    if part.attestation is None:
        raise AttestationError(f"the {name} result carries no attestation", check="structure")
    if part.attestation.statement.result_sha256 != digest(part.result_json()):
        raise AttestationError(f"the {name} result is not the one its stage signed", check="result")
    return part.attestation


def _verify(
    state: FlowState, chain: Sequence[Attestation], keys: StageKeyDirectory, now: int
) -> VerifiedChain:
    return keys.verify_chain(chain, subject=state.subject, now=now)


def verified_context(state: FlowState, keys: StageKeyDirectory, *, now: int) -> Checked:
    """The state's VerifyContext result, once its attestation checks out (for ScoreTrust)."""
    if state.context is None:
        raise AttestationError("the flow state has no context result", check="structure")
    context = attestation_of(state.context, "context")
    _verify(state, [context], keys, now)
    return Checked(state.context, context)


def verified_trust(state: FlowState, keys: StageKeyDirectory, *, now: int) -> CheckedTrust:
    """The state's context and trust results, once their chain checks out (for Convene and each Vote)."""
    if state.context is None or state.trust is None:
        raise AttestationError("the flow state has no context or trust result", check="structure")
    context, trust = attestation_of(state.context, "context"), attestation_of(state.trust, "trust")
    _verify(state, [context, trust], keys, now)
    return CheckedTrust(state.context, context, state.trust, trust)


def verified_votes(state: FlowState, keys: StageKeyDirectory, *, now: int) -> CheckedVotes:
    """The trust result and the votes, once the chain through the votes checks out (for the Tally)."""
    if state.context is None or state.trust is None:
        raise AttestationError("the flow state has no context or trust result", check="structure")
    context, trust = attestation_of(state.context, "context"), attestation_of(state.trust, "trust")
    votes = tuple((vote, attestation_of(vote, f"{vote.agent} vote")) for vote in state.votes)
    _verify(state, [context, trust, *(a for _, a in votes)], keys, now)
    return CheckedVotes(state.context, context, state.trust, trust, votes)


def verified_decision(state: FlowState, keys: StageKeyDirectory, *, now: int) -> VerifiedChain | None:
    """The chain behind the state's decision (for RecordDecision).

    An approval must carry the whole chain, ending in the tally that approved it and the people's
    approvals the tally asked for: ``AttestationError`` otherwise. A denial needs no authority (refusing
    is always allowed); its chain, as far as the flow got, is returned when it checks out and ``None``
    when it does not or there is none (a deny the state machine wrote replaces the tally, so people's
    answers, which build on the tally, are then left out: the denial's reasons name them)."""
    decision = state.decision
    if decision is None:
        raise AttestationError("the flow state has no decision", check="structure")
    if decision.decision == "approve":
        parts: list[tuple[_Attested | None, str]] = [(state.context, "context"), (state.trust, "trust")]
        parts += [(vote, f"{vote.agent} vote") for vote in state.votes]
        parts.append((decision, "tally"))
        parts += [(approval, "approval") for approval in state.approvals]
        chain = _verify(state, [attestation_of(p, name) for p, name in parts], keys, now)
        if not chain.approves:
            raise AttestationError("the attestation chain does not approve this request", check="approval")
        if decision.policy_version != chain.policy_version:
            raise AttestationError("the approval names another policy version", check="result")
        return chain
    try:
        present: list[tuple[_Attested | None, str]] = [(state.context, "context")]
        if state.trust is not None:
            present.append((state.trust, "trust"))
        present += [(vote, f"{vote.agent} vote") for vote in state.votes]
        if decision.attestation is not None:
            present.append((decision, "tally"))
            present += [(approval, "approval") for approval in state.approvals]
        return _verify(state, [attestation_of(p, name) for p, name in present], keys, now)
    except AttestationError:
        return None
