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
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from reliquary.errors import BodyIntegrityError, ConfigurationError

# The purposes of the two Arweave wallets (``reliquary.vaults.wallet``): the encrypt function pays for item
# bodies, audit-append for checkpoint anchors, each from its own wallet.
BODIES_WALLET = "arweave-wallet/bodies"
ANCHORS_WALLET = "arweave-wallet/anchors"


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

    def to_json(self) -> str:
        fields = {"backend": self.backend.value, "locator": self.locator, "size": self.size}
        return json.dumps({**fields, "sha256": self.sha256.hex()}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str | bytes) -> PermanentRef:
        """The reference ``to_json`` wrote; ``BodyIntegrityError`` for anything else (a record altered)."""
        try:
            value = json.loads(text)
            return cls(
                PermanentBackend(value["backend"]),
                str(value["locator"]),
                int(value["size"]),
                bytes.fromhex(value["sha256"]),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise BodyIntegrityError("a permanent body record is malformed") from exc

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


class PermanentStores:
    """The stores of the backends this deployment configures, each built on first use (building an
    Arweave store loads its wallet: a KMS call), so a vault that never opted in costs nothing."""

    def __init__(
        self,
        backends: frozenset[PermanentBackend] = frozenset(),
        build: Callable[[PermanentBackend], PermanentStore] | None = None,
    ) -> None:
        self.backends = backends if build is not None else frozenset()
        self._build = build
        self._built: dict[PermanentBackend, PermanentStore] = {}
        self._lock = threading.Lock()

    @classmethod
    def of(cls, stores: dict[PermanentBackend, PermanentStore]) -> PermanentStores:
        """Stores already built (tests, the local runtime)."""
        return cls(frozenset(stores), stores.__getitem__)

    def __call__(self, backend: PermanentBackend) -> PermanentStore:
        if backend not in self.backends or self._build is None:
            raise ConfigurationError(f"this deployment has no {backend.value} node configured")
        with self._lock:
            store = self._built.get(backend)
            if store is None:
                store = self._built[backend] = self._build(backend)
            return store
