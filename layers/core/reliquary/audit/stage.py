"""The flow's RecordDecision task: the decision, with its evidence and its attestation chain, into the
tenant's transparency log.

An approval is logged only with the whole chain behind it, checked here (``reliquary.flow.checks``):
the proof verified, the rules let the request go on, every agent voted, the tally approved, all for this
request and signed by the functions that decided. The chain is stored beside the log
(``reliquary.flow.chains``) and the record names it by digest, with the item version the approval is
for. A forged approval (a hand-made decision, a tally that no agent-vote signed) is refused with
``AttestationError`` and logged as what it is: the denial the flow itself would log for a refused record,
so the request id can never carry an approval afterwards.

A denial needs no authority. Its chain, as far as the flow got, is logged with it when it checks out.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from typing import Any

from reliquary import jcs
from reliquary.audit.records import MAX_REASON_CHARS, MAX_REASONS, DecisionRecord, decode_record, parse_record
from reliquary.audit.service import AuditService
from reliquary.errors import AttestationError, ConflictError, InvalidRequestError
from reliquary.flow.attestation import VerifiedChain
from reliquary.flow.chains import ChainStore
from reliquary.flow.checks import verified_decision
from reliquary.flow.keys import StageKeyDirectory
from reliquary.flow.state import DecisionOutcome, FlowState

# decided_at is the execution's start: a retry within the execution is at most its timeout later.
DECIDED_AT_FUTURE_SKEW_SECONDS = 300
DECIDED_AT_MAX_AGE_SECONDS = 3600


def refused_record_reason(code: str) -> str:
    """The reason the flow logs when RecordDecision refuses a record (the state machine's
    RecordDecisionRefused state writes the same words): a refused approval is logged as this denial."""
    return f"RecordDecision refused the record: {code}"


def clipped(reasons: Sequence[str]) -> list[str]:
    """Reasons as a record holds them: at most MAX_REASONS, each at most MAX_REASON_CHARS (clipped with
    an ellipsis, so a long rule reason costs its tail, never the whole record and its evidence)."""
    kept = [r if len(r) <= MAX_REASON_CHARS else r[: MAX_REASON_CHARS - 1] + "…" for r in reasons]
    if len(kept) > MAX_REASONS:
        kept = [*kept[: MAX_REASONS - 1], f"and {len(kept) - MAX_REASONS + 1} more"]
    return kept


class RecordDecisionStage:
    def __init__(
        self,
        service: AuditService,
        keys: StageKeyDirectory,
        chains: ChainStore,
        *,
        pseudonym: Callable[[str, str], str],
        clock: Callable[[], int],
    ) -> None:
        self._service = service
        self._keys = keys
        self._chains = chains
        self._pseudonym = pseudonym  # (tenant_id, subject) -> the principal's keyed pseudonym
        self._clock = clock

    def published_stage_keys(self) -> list[dict[str, str]]:
        """The stage keys that verify the chains this log names, as published beside its checkpoints."""
        return self._keys.keys().to_json()

    def record(
        self, state: FlowState, *, execution_id: str | None, decided_at: int, bare: bool = False
    ) -> dict[str, Any]:
        """Log the state's decision; the logged entry, its receipt and the decision as logged (the first
        one, when another execution of the request logged it already).

        ``bare``: the flow's last resort (RecordDenial), a denial logged without any evidence."""
        now = self._clock()
        if not now - DECIDED_AT_MAX_AGE_SECONDS <= decided_at <= now + DECIDED_AT_FUTURE_SKEW_SECONDS:
            raise InvalidRequestError(
                "decided_at is the execution's start: at most an hour ago and not in the future",
                decided_at=decided_at,
            )
        if state.decision is None:
            raise InvalidRequestError("the flow state has no decision to record", field="decision")
        if bare:
            if state.decision.decision != "deny":
                raise InvalidRequestError("only a denial is logged without evidence", field="decision")
            return self._append(state, None, execution_id=execution_id, decided_at=decided_at, bare=True)
        try:
            chain = verified_decision(state, self._keys, now=now)
        except AttestationError as refused:
            # Logged as what it is, exactly as the flow's RecordDenial would log it (the same record, so
            # a flow that goes on to RecordDenial gets this entry back), then refused.
            denial = DecisionOutcome(decision="deny", reasons=[refused_record_reason(refused.code)])
            with contextlib.suppress(ConflictError):  # the request id already holds its decision
                self._append(
                    state.model_copy(update={"decision": denial}),
                    None,
                    execution_id=execution_id,
                    decided_at=decided_at,
                    bare=True,
                )
            raise
        if chain is not None:
            self._chains.put(state.tenant_id, chain.digest, jcs.canonicalize(chain.to_json()))
        return self._append(state, chain, execution_id=execution_id, decided_at=decided_at, bare=False)

    def _append(
        self,
        state: FlowState,
        chain: VerifiedChain | None,
        *,
        execution_id: str | None,
        decided_at: int,
        bare: bool,
    ) -> dict[str, Any]:
        decision = state.decision
        if decision is None:  # record checked it; a typed refusal all the same
            raise InvalidRequestError("the flow state has no decision to record", field="decision")
        trust, context = (None, None) if bare else (state.trust, state.context)
        votes = [] if bare else state.votes
        approval = decision.decision == "approve"
        record = parse_record(
            {
                "kind": "decision",
                "request_id": state.request_id,
                "tenant_id": state.tenant_id,
                "vault_id": state.vault_id,
                "item_id": state.item_id,
                "principal_hash": self._pseudonym(state.tenant_id, state.principal.subject),
                "decision": decision.decision,
                "reasons": clipped(decision.reasons),
                "trust_score": None if trust is None else trust.score,
                "trust_factors": [] if trust is None else [f.model_dump() for f in trust.factors],
                "votes": [v.model_dump(include={"agent", "vote", "confidence", "rationale"}) for v in votes],
                "proof_hash": None if context is None else context.proof_hash,
                "policy_version": decision.policy_version,
                "execution_id": execution_id,
                "time": decided_at,
                "requester_key_sha256": None if bare else state.requester_key_sha256,
                "chain_sha256": None if chain is None else chain.digest,
                "item_version": chain.item_version if approval and chain is not None else None,
            }
        )
        if not isinstance(record, DecisionRecord):  # parse_record dispatches on "kind"
            raise InvalidRequestError("not a decision record")
        ((receipt,), (entry,)) = self._service.append_logged(state.tenant_id, [record])
        # The logged entry itself (canonical JSON text, the principal only as a keyed hash): with the
        # receipt, the requester checks the decision's inclusion without asking the service again. The
        # decision reported is the logged one (the first, when another execution decided it).
        logged = decode_record(entry)
        reported = logged.decision if isinstance(logged, DecisionRecord) else record.decision
        return {
            "decision": reported,
            "entry": entry.decode("utf-8"),
            "receipt": receipt.to_dict(),
            "chain_sha256": logged.chain_sha256 if isinstance(logged, DecisionRecord) else None,
        }
