"""A grant needs a logged approval: the port that finds a request's decision, and the check of it.

docs/access-flow.md: only after the decision record is durable does encrypt release a grant.
The access state machine's RecordDecision task logs the decision to the tenant's transparency log, naming
the vault, the item and the SHA-256 of the requester's public key; the Grant task then asks the encrypt
function for a grant. The function does not take the flow's word for the decision: it reads the record
back from the log (``DecisionLedger``) and issues a grant only if that record approves exactly this
request (``require_approval``), and only once the attestation chain the record names checks out
(``require_attested``): the chain, signed by the functions that decided, is the authority. Every other
case refuses with ``DecisionRequiredError`` or ``AttestationError``, and a log that cannot be read raises
its transient error: nothing is granted either way.

The decision record's type is only named here, never imported: the audit modules load on the first
lookup (see ``reliquary.adapters.decisions``), not at the encrypt function's cold start.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from reliquary.crypto.kem import requester_key_sha256
from reliquary.errors import AttestationError, DecisionRequiredError
from reliquary.flow.chains import ChainStore, load_chain

if TYPE_CHECKING:
    from reliquary.audit.records import DecisionRecord
    from reliquary.crypto.kem import HybridPublicKey
    from reliquary.flow.attestation import VerifiedChain
    from reliquary.flow.keys import StageKeyDirectory


# Clock skew tolerated between the function that logged a decision and the one granting it.
FUTURE_SKEW_SECONDS = 300


class DecisionLedger(Protocol):
    @property
    def chains(self) -> ChainStore:
        """Where the attestation chains of logged decisions are kept (read-only here)."""

    @property
    def stage_keys(self) -> StageKeyDirectory:
        """The published stage keys that verify those chains."""

    def logged_decision(self, tenant_id: str, request_id: str) -> DecisionRecord | None:
        """The decision logged for ``(tenant_id, request_id)`` in the tenant's transparency log; None if
        the log holds no decision for it (nothing, or a record of another kind). Read-only. Raises
        ``TransientError`` (``StorageUnavailableError``) when the log cannot be read now."""


def require_approval(
    decision: DecisionRecord | None,
    *,
    tenant_id: str,
    request_id: str,
    vault_id: str,
    item_id: str,
    requester_public_key: HybridPublicKey,
    now: int,
    max_age_seconds: int,
) -> DecisionRecord:
    """The logged ``decision`` if it approves this request: this vault and item, sealed to this key.

    ``DecisionRequiredError`` otherwise, naming the check that failed (never a secret: the caller gave
    every value compared)."""
    if decision is None or (decision.tenant_id, decision.request_id) != (tenant_id, request_id):
        raise DecisionRequiredError("no access decision is logged for this request", request_id=request_id)
    if decision.decision != "approve":
        raise DecisionRequiredError(
            "the access decision logged for this request is not an approval", request_id=request_id
        )
    if decision.vault_id != vault_id:
        raise DecisionRequiredError(
            "the access decision logged for this request is for another vault", request_id=request_id
        )
    if decision.item_id != item_id:
        raise DecisionRequiredError(
            "the access decision logged for this request is for another item", request_id=request_id
        )
    if decision.requester_key_sha256 is None:
        raise DecisionRequiredError(
            "the access decision logged for this request names no requester key", request_id=request_id
        )
    if decision.requester_key_sha256 != requester_key_sha256(requester_public_key.to_bytes()):
        raise DecisionRequiredError(
            "the access decision logged for this request is for another requester key",
            request_id=request_id,
        )
    # An approval is for the flow that decided it, not a standing permission: once it is older than
    # max_age_seconds, the request id no longer opens the item (a new request is decided afresh).
    if now - decision.time > max_age_seconds:
        raise DecisionRequiredError(
            "the access decision logged for this request is too old to grant", request_id=request_id
        )
    if decision.time > now + FUTURE_SKEW_SECONDS:  # never a standing approval
        raise DecisionRequiredError(
            "the access decision logged for this request is dated in the future", request_id=request_id
        )
    return decision


def require_attested(
    decision: DecisionRecord, chains: ChainStore, keys: StageKeyDirectory, *, now: int, max_age_seconds: int
) -> VerifiedChain:
    """The attestation chain a logged approval names, once it checks out: stored unaltered, signed by
    the functions that decided, approving exactly what the record approves (tenant, vault, item, request,
    requester key) for the item version the record names. The chain is the authority, not the log's
    storage: a record planted or altered in the table or the bucket has no chain its signers made.
    ``DecisionRequiredError`` or ``AttestationError`` otherwise."""
    if decision.chain_sha256 is None:
        raise DecisionRequiredError(
            "the access decision logged for this request carries no attestation chain",
            request_id=decision.request_id,
        )
    chain = keys.verify_chain(load_chain(chains, decision.tenant_id, decision.chain_sha256), now=now)
    subject = chain.subject
    if not chain.approves:
        raise AttestationError("the attestation chain does not approve this request", check="approval")
    named = (subject.tenant_id, subject.vault_id, subject.item_id, subject.request_id)
    if named != (decision.tenant_id, decision.vault_id, decision.item_id, decision.request_id):
        raise AttestationError("the attestation chain is about another request", check="subject")
    if subject.requester_key_sha256 != decision.requester_key_sha256:
        raise AttestationError("the attestation chain approves another requester key", check="subject")
    if chain.item_version is None or chain.item_version != decision.item_version:
        raise AttestationError("the attestation chain approves another item version", check="result")
    # Fresh by the chain's own signed time (the tally's, or the last person's approval after a step-up
    # wait), not only the record's: a record re-dated in storage extends nothing.
    decided_at = chain.decided_at
    if decided_at is None or now - decided_at > max_age_seconds:
        raise DecisionRequiredError(
            "the access decision logged for this request is too old to grant", request_id=decision.request_id
        )
    return chain
