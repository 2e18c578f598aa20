"""Checkpoint anchoring over in-memory stores: a permanent store that names bodies as IPFS (their CID) or
Arweave (a fresh transaction id) would, can fail or pause on demand, and counts its puts; a block source
whose answers the test sets."""

from __future__ import annotations

import base64
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field

from reliquary.audit.anchor import Block, CheckpointAnchorer, TxStatus
from reliquary.audit.memory import InMemoryAnchorStore
from reliquary.audit.service import AuditService
from reliquary.errors import ReliquaryError
from reliquary.vaults.cid import file_cid
from reliquary.vaults.permanent import PermanentBackend, PermanentRef
from tests.support.audit import AuditFixture


@dataclass
class MemoryPermanentStore:
    backend: PermanentBackend
    bodies: dict[str, bytes] = field(default_factory=dict)
    tags: dict[str, tuple[tuple[str, str], ...]] = field(default_factory=dict)
    puts: int = 0
    fail: ReliquaryError | None = None
    before_put: Callable[[], None] | None = None  # e.g. wait for another run

    def put(self, body: bytes, *, tags: tuple[tuple[str, str], ...] = ()) -> PermanentRef:
        if self.before_put is not None:
            self.before_put()
        if self.fail is not None:
            raise self.fail
        self.puts += 1
        if self.backend is PermanentBackend.IPFS:
            locator = str(file_cid(body))
        else:
            locator = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")
        self.bodies[locator] = body
        self.tags[locator] = tags
        return PermanentRef.of(self.backend, locator, body)

    def get(self, ref: PermanentRef) -> bytes:
        return ref.check(self.bodies[ref.locator])

    def release(self, ref: PermanentRef) -> None:
        """Nothing to release."""


@dataclass
class MemoryBlocks:
    """Every transaction is pending until ``mine`` puts it in a block (or ``forget`` drops it)."""

    mined: dict[str, TxStatus] = field(default_factory=dict)
    asked: list[str] = field(default_factory=list)
    _height: int = 0

    def status(self, locator: str) -> TxStatus:
        self.asked.append(locator)
        return self.mined.get(locator, "pending")

    def mine(self, locator: str) -> str:
        self._height += 1
        block_hash = base64.urlsafe_b64encode(secrets.token_bytes(48)).decode()
        self.mined[locator] = Block(self._height, block_hash)
        return block_hash

    def forget(self, locator: str) -> None:
        self.mined[locator] = "unknown"


@dataclass
class Clock:
    now: int = 1_795_651_200

    def __call__(self) -> int:
        return self.now


@dataclass
class AnchorFixture:
    service: AuditService
    anchorer: CheckpointAnchorer
    states: InMemoryAnchorStore
    store: MemoryPermanentStore
    blocks: MemoryBlocks
    clock: Clock

    def another(self) -> CheckpointAnchorer:
        """A second anchorer over the same stores (another container's run)."""
        return CheckpointAnchorer(
            self.service,
            self.states,
            self.store,
            self.store.backend,
            blocks=self.blocks,
            clock=self.clock,
        )


def anchor_fixture(fx: AuditFixture, backend: PermanentBackend) -> AnchorFixture:
    states, store, blocks, clock = (
        InMemoryAnchorStore(fx.store),
        MemoryPermanentStore(backend),
        MemoryBlocks(),
        Clock(),
    )
    anchorer = CheckpointAnchorer(fx.service, states, store, backend, blocks=blocks, clock=clock)
    return AnchorFixture(fx.service, anchorer, states, store, blocks, clock)
