"""Agents' memory of principals, encrypted at rest.

Each (tenant, agent, principal) memory is one AES-256-GCM box under the deployment's agent-memory key: a
random 96-bit nonce, and associated data naming the tenant, the agent and the principal's key, so a box
moved to another row fails to open. The memory key is generated once, stored only wrapped by the root of
trust (KMS, context ``purpose=agent-memory``), and unwrapped once per cold start. The principal's key is
its keyed pseudonym (``reliquary.crypto.pseudonym``: the value the audit log and the trust history name
it by), never the subject; rows carry nothing else readable but timestamps.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from typing import Final, Protocol

from reliquary.crypto import aead
from reliquary.crypto.pseudonym import Pseudonyms
from reliquary.crypto.root import RootOfTrust
from reliquary.errors import ConflictError, InvalidRequestError, RootOfTrustError

MEMORY_KEY_CONTEXT: Final = {"purpose": "agent-memory", "version": "1"}
MAX_MEMORY_BYTES: Final = 32 * 1024  # one agent's memory of one principal, before encryption
NONCE_BYTES: Final = 12
_AAD: Final = b"RELIQUARY agent memory v1\x00"


@dataclass(frozen=True, slots=True)
class SealedMemory:
    box: bytes  # nonce || AES-GCM ciphertext and tag
    updated_at: int
    expires_at: int


class MemoryStore(Protocol):
    """Sealed memories by (tenant, agent, principal key), and the wrapped memory key."""

    def get(self, tenant_id: str, agent: str, principal: str) -> SealedMemory | None: ...

    def put(self, tenant_id: str, agent: str, principal: str, sealed: SealedMemory) -> None: ...

    def wrapped_key(self) -> bytes | None: ...

    def add_wrapped_key(self, wrapped: bytes) -> None:
        """ConflictError if a key is stored already (two cold starts racing share the winner's)."""


class MemoryBox:
    """Names principals (by pseudonym), seals and opens agent memories with the unwrapped memory key
    (kept only in this object)."""

    def __init__(self, key: bytes, pseudonyms: Pseudonyms) -> None:
        if len(key) != 32:
            raise RootOfTrustError("the agent-memory key is 32 bytes")
        self._key = key
        self._pseudonyms = pseudonyms

    @classmethod
    def load_or_create(cls, store: MemoryStore, root: RootOfTrust, pseudonyms: Pseudonyms) -> MemoryBox:
        wrapped = store.wrapped_key()
        if wrapped is None:
            with contextlib.suppress(ConflictError):
                store.add_wrapped_key(root.wrap(os.urandom(32), context=MEMORY_KEY_CONTEXT))
            wrapped = store.wrapped_key()
            if wrapped is None:
                raise RootOfTrustError("the agent-memory key could not be stored")
        return cls(root.unwrap(wrapped, context=MEMORY_KEY_CONTEXT), pseudonyms)

    def principal_key(self, tenant_id: str, subject: str) -> str:
        """The key a principal's memories are stored and sealed under: its pseudonym in the tenant."""
        return self._pseudonyms.of(tenant_id, subject)

    @staticmethod
    def _aad(tenant_id: str, agent: str, principal: str) -> bytes:
        return _AAD + b"\x00".join(part.encode() for part in (tenant_id, agent, principal))

    def seal(self, tenant_id: str, agent: str, principal: str, plaintext: bytes) -> bytes:
        if len(plaintext) > MAX_MEMORY_BYTES:
            raise InvalidRequestError(f"an agent's memory is at most {MAX_MEMORY_BYTES} bytes", agent=agent)
        nonce = os.urandom(NONCE_BYTES)
        return nonce + aead.encrypt(self._key, nonce, plaintext, self._aad(tenant_id, agent, principal))

    def open(self, tenant_id: str, agent: str, principal: str, box: bytes) -> bytes:
        """The memory; InvalidEnvelopeError if the box was altered or belongs to another row."""
        nonce, ciphertext = box[:NONCE_BYTES], box[NONCE_BYTES:]
        return aead.decrypt(self._key, nonce, ciphertext, self._aad(tenant_id, agent, principal))


class InMemoryMemoryStore:
    def __init__(self) -> None:
        self.rows: dict[tuple[str, str, str], SealedMemory] = {}
        self.key: bytes | None = None

    def get(self, tenant_id: str, agent: str, principal: str) -> SealedMemory | None:
        return self.rows.get((tenant_id, agent, principal))

    def put(self, tenant_id: str, agent: str, principal: str, sealed: SealedMemory) -> None:
        self.rows[(tenant_id, agent, principal)] = sealed

    def wrapped_key(self) -> bytes | None:
        return self.key

    def add_wrapped_key(self, wrapped: bytes) -> None:
        if self.key is not None:
            raise ConflictError("a memory key exists")
        self.key = wrapped
