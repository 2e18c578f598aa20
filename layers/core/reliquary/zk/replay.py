"""Single-use nonces and seen nullifiers: what keeps a context proof from being used twice.

The service issues a nonce (31 random bytes, a BN254 field element) for one tenant's vault; the requester
proves with it as a public signal. Verification then consumes the nonce and records the proof's nullifier
in one atomic write, so of two requests racing with the same nonce (or the same device secret and nonce)
exactly one passes. The consumption names the request and the proof: a retried verification of the same
request with the same proof finds its own consumption and gets the same answer (Step Functions retries).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Final, Protocol

NONCE_BYTES: Final = 31  # 248 bits: always below BN254's r, so the nonce is a field element as it is
NONCE_HEX: Final = 2 * NONCE_BYTES


def new_nonce() -> str:
    return secrets.token_hex(NONCE_BYTES)


def nonce_value(nonce: str) -> int:
    """The field element a nonce is in the public signals."""
    return int(nonce, 16)


@dataclass(frozen=True, slots=True)
class IssuedNonce:
    tenant_id: str
    vault_id: str
    nonce: str  # lower-case hex, NONCE_HEX characters
    issued_at: int
    expires_at: int


@dataclass(frozen=True, slots=True)
class Consumption:
    """Who used a nonce: the request, the proof (by hash), its nullifier, and the requester key the
    request carried (SHA-256 hex): a retry of the request is answered the same only with all four."""

    request_id: str
    proof_hash: str
    nullifier: int | None  # None for circuits without one
    requester: str | None = None


class ReplayStore(Protocol):
    def add_nonce(self, nonce: IssuedNonce) -> None:
        """Store a new nonce (ConflictError if that nonce exists: 248 random bits never collide)."""

    def get_nonce(self, tenant_id: str, nonce: str) -> tuple[IssuedNonce, Consumption | None] | None:
        """The nonce and its consumption, strongly consistent; None if unknown."""

    def consume(self, tenant_id: str, nonce: str, used: Consumption, *, now: int, keep_until: int) -> None:
        """Atomically mark the nonce used by ``used`` (only if it exists, is unused and ``now`` is before
        its expiry) and record ``used.nullifier``, if any (only if never seen; kept until ``keep_until``).
        Raises NonceUnknownError, NonceExpiredError, NonceUsedError or NullifierSeenError."""
