"""The flow's VerifyContext task: the context verifier's answer on the request's proof, signed.

This is where a chain starts: the statement names the request (its digest covers the principal, purpose,
region and nonce as well) and whether the proof verified for it. A proof that does not verify is signed
too (``verified: false``): it is still what the stage decided, and it ends the flow as a deny.
"""

from __future__ import annotations

from collections.abc import Callable

from reliquary.flow.attestation import Stage, StageSigner
from reliquary.flow.state import ContextOutcome, FlowState
from reliquary.zk.service import ContextVerifier


class VerifyContextStage:
    def __init__(self, verifier: ContextVerifier, signer: StageSigner, *, clock: Callable[[], int]) -> None:
        self._verifier = verifier
        self._signer = signer
        self._clock = clock

    def verify(self, state: FlowState) -> ContextOutcome:
        proof = state.context_proof
        result = self._verifier.verify(
            request_id=state.request_id,
            tenant_id=state.tenant_id,
            vault_id=state.vault_id,
            item_id=state.item_id,
            nonce=state.nonce,
            circuit=proof.circuit,
            proof=proof.proof,
            public_signals=proof.public_signals,
            requester_key_sha256=state.requester_key_sha256,
        )
        outcome = ContextOutcome.model_validate(result.to_dict())
        attestation = self._signer.attest(
            Stage.VERIFY_CONTEXT,
            state.subject,
            outcome.result_json(),
            claim={
                "verified": outcome.verified,
                "circuit": outcome.circuit,
                "proof_hash": outcome.proof_hash,
            },
            issued_at=self._clock(),
        )
        return outcome.model_copy(update={"attestation": attestation})
