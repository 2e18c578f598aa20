"""In-memory replay and policy stores, with the DynamoDB adapters' contracts (tests, benchmarks)."""

from __future__ import annotations

import threading

from reliquary.errors import (
    ConflictError,
    NonceExpiredError,
    NonceUnknownError,
    NonceUsedError,
    NullifierSeenError,
)
from reliquary.zk.policy import ContextPolicy
from reliquary.zk.replay import Consumption, IssuedNonce


class InMemoryReplayStore:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.nonces: dict[tuple[str, str], tuple[IssuedNonce, Consumption | None]] = {}
        self.nullifiers: dict[tuple[str, int], int] = {}

    def add_nonce(self, nonce: IssuedNonce) -> None:
        with self._lock:
            key = (nonce.tenant_id, nonce.nonce)
            if key in self.nonces:
                raise ConflictError("the nonce exists")
            self.nonces[key] = (nonce, None)

    def get_nonce(self, tenant_id: str, nonce: str) -> tuple[IssuedNonce, Consumption | None] | None:
        return self.nonces.get((tenant_id, nonce))

    def consume(self, tenant_id: str, nonce: str, used: Consumption, *, now: int, keep_until: int) -> None:
        with self._lock:
            stored = self.nonces.get((tenant_id, nonce))
            if stored is None:
                raise NonceUnknownError("unknown nonce")
            issued, consumption = stored
            if consumption is not None:
                raise NonceUsedError("the nonce was used")
            if now >= issued.expires_at:
                raise NonceExpiredError("the nonce expired")
            if used.nullifier is not None:
                if (tenant_id, used.nullifier) in self.nullifiers:
                    raise NullifierSeenError("the nullifier was seen")
                self.nullifiers[(tenant_id, used.nullifier)] = keep_until
            self.nonces[(tenant_id, nonce)] = (issued, used)


class InMemoryPolicyStore:
    def __init__(self) -> None:
        self.policies: dict[tuple[str, str], ContextPolicy] = {}

    def get(self, tenant_id: str, vault_id: str) -> ContextPolicy | None:
        return self.policies.get((tenant_id, vault_id))

    def put(self, tenant_id: str, vault_id: str, policy: ContextPolicy) -> None:
        self.policies[(tenant_id, vault_id)] = policy
