"""Sealed bodies on permanent, content-addressed storage (IPFS, Arweave): the record kept beside an item,
and the port the adapters implement (``reliquary.adapters.ipfs``, ``reliquary.adapters.arweave``).

Unlike ``BlobStore`` the caller does not choose a key: the storage names what it was given (a CID, a
transaction id), and that name, with the body's size and SHA-256, is recorded beside the item. Every read
is checked against the record before a byte is returned: a body that does not match is a
``BodyIntegrityError``, a node that does not answer a ``StorageUnavailableError`` (retried by the flow).
Only envelopes (ciphertext) are ever stored; nothing can be deleted, so erasure is crypto-shredding.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from reliquary.errors import BodyIntegrityError


class PermanentBackend(StrEnum):
    IPFS = "ipfs"
    ARWEAVE = "arweave"


@dataclass(frozen=True, slots=True)
class PermanentRef:
    """Where a body went and what it was: ``locator`` is the CID (version 1, base32) on IPFS or the
    transaction id (base64url) on Arweave."""

    backend: PermanentBackend
    locator: str
    size: int
    sha256: bytes

    def __post_init__(self) -> None:
        if self.size < 0 or len(self.sha256) != 32 or not self.locator:
            raise ValueError("a permanent reference has a locator, a size and a SHA-256 digest")

    @classmethod
    def of(cls, backend: PermanentBackend, locator: str, body: bytes) -> PermanentRef:
        return cls(backend, locator, len(body), hashlib.sha256(body).digest())

    def check(self, body: bytes) -> bytes:
        """``body`` if it is the recorded one (size and SHA-256); ``BodyIntegrityError`` otherwise."""
        if len(body) != self.size or not hmac.compare_digest(hashlib.sha256(body).digest(), self.sha256):
            raise BodyIntegrityError("the stored body does not match its record", backend=self.backend.value)
        return body


class PermanentStore(Protocol):
    def put(self, body: bytes, *, tags: tuple[tuple[str, str], ...] = ()) -> PermanentRef:
        """Store ``body`` (Arweave records ``tags`` with it, IPFS ignores them); the reference to record."""

    def get(self, ref: PermanentRef) -> bytes:
        """The body, checked against ``ref``."""

    def release(self, ref: PermanentRef) -> None:
        """Stop keeping the body where this service can (IPFS: unpin; Arweave: nothing can be done).
        Releasing twice is fine."""
