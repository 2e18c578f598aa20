"""Checkpoints anchored in public: each tenant log's latest signed checkpoint, byte for byte, on IPFS or
Arweave, and the anchor recorded in the log itself.

One run over a log (``CheckpointAnchorer.anchor``):

1. pending confirmations (Arweave): a transaction the node reports mined gets a
   ``checkpoint_anchor_confirmed`` record naming its block;
2. the latest checkpoint (published first when entries are waiting) is anchored when nothing was
   anchored yet or the log grew since: the note goes to the ``PermanentStore`` with its tags, then a
   ``checkpoint_anchor`` record goes into the log.

The log's own records do not count as growth: ``AnchorState.settled`` is the size up to which every
entry is anchored or one of these records, so an idle log is anchored once, not once per run.

Racing runs and crashes. A run first *claims* the log (a conditional write of its anchor state, held
``claim_seconds``); a run that finds a live claim leaves the log alone. The claimant stores the note,
then writes the anchor's *intent* (where the note went, when) into the state, conditionally again: a
claim that lapsed meanwhile loses here, and its stored copy is only an extra copy, never logged. The
record is a pure function of the intent, so a run that resumes an intent (its claimant stopped) logs the
same bytes, and the log keeps one entry per request id (``anchor_request_id(tree_size)``). The state is
finished (anchored size, pending confirmation, the finding-aid row the API lists) by one more
conditional write. A node that does not answer (``StorageUnavailableError``) releases the claim and
leaves nothing recorded; the next run retries.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Literal, Protocol

from reliquary.audit.checkpoint import open_checkpoint
from reliquary.audit.note import Policy
from reliquary.audit.records import (
    CheckpointAnchorConfirmedRecord,
    CheckpointAnchorRecord,
    anchor_request_id,
    confirmation_request_id,
)
from reliquary.audit.service import AuditService, StoredCheckpoint
from reliquary.crypto.scope import validate_id
from reliquary.errors import ConflictError, InvalidRequestError, ReliquaryError, TransientError
from reliquary.vaults.permanent import PermanentBackend, PermanentStore

ANCHOR_FORMAT = "reliquary-checkpoint-anchor/v1"
APP_NAME = "RELIQUARY"
CLAIM_SECONDS = 300  # longer than a store's put at its longest timeout, with room
# A transaction the node still does not know this long after it was posted was dropped (never mined):
# its anchor stays in the log without a block, and later anchors cover its checkpoint.
ABANDON_SECONDS = 86_400
MAX_DUE_LOGS = 1_000
DEFAULT_DUE_LOGS = 100
_SAVE_ATTEMPTS = 5


@dataclass(frozen=True, slots=True)
class Block:
    """The Arweave block that holds a transaction: its height and independent hash (base64url)."""

    height: int
    hash: str


TxStatus = Block | Literal["pending", "unknown"]


class BlockSource(Protocol):
    """Where a posted transaction stands (Arweave's ``GET /tx/<id>/status``)."""

    def status(self, locator: str) -> TxStatus: ...


@dataclass(frozen=True, slots=True)
class Intent:
    """A checkpoint stored in public and about to be logged: everything its record holds but the log's
    own fields."""

    tree_size: int
    root_hash: str
    locator: str
    note_sha256: str
    anchored_at: int


@dataclass(frozen=True, slots=True)
class Pending:
    """An Arweave anchor whose block is not recorded yet."""

    tree_size: int
    locator: str
    log_index: int
    anchored_at: int


@dataclass(frozen=True, slots=True)
class AnchorState:
    """One log's anchoring, stored beside it and changed only by conditional writes (on ``revision``)."""

    anchored: int = 0  # the tree size of the last checkpoint anchored (0: none)
    settled: int = 0  # every entry below is anchored, or is an anchor record or a block record
    pending: tuple[Pending, ...] = ()
    claim_until: int = 0  # a run holds the log until then (Unix seconds)
    intent: Intent | None = None
    revision: int = 0

    def advanced(self, **changes: Any) -> AnchorState:
        return replace(self, revision=self.revision + 1, **changes)


@dataclass(frozen=True, slots=True)
class AnchorEntry:
    """Where an anchor's records sit in the log: a finding aid (the API lists it), never the evidence."""

    tree_size: int
    log_index: int
    confirmed_index: int | None = None


class AnchorStateStore(Protocol):
    def state(self, log_id: str) -> AnchorState: ...

    def save(
        self, log_id: str, state: AnchorState, *, previous: AnchorState, entry: AnchorEntry | None = None
    ) -> None:
        """Store ``state`` only if the stored one is still ``previous`` (its revision; none stored when it
        is 0), and ``entry`` with it, in one write; ``ConflictError`` otherwise."""

    def register(self, log_id: str) -> None:
        """List the log among those ``anchor_due`` visits (idempotent)."""

    def registered(self, *, after: str | None, limit: int) -> list[str]:
        """Up to ``limit`` registered logs, in id order, after ``after``."""

    def cursor(self) -> str | None:
        """The last log ``anchor_due`` visited (None: start from the first)."""

    def set_cursor(self, after: str | None) -> None: ...


@dataclass(frozen=True, slots=True)
class Anchor:
    """An anchored checkpoint as the log records it (``checkpoint_anchor``) and where that record is."""

    tree_size: int
    root_hash: str
    backend: str
    locator: str
    note_sha256: str
    anchored_at: int
    log_index: int
    block: Block | None = None

    @classmethod
    def of(cls, record: CheckpointAnchorRecord, log_index: int, block: Block | None = None) -> Anchor:
        return cls(
            record.tree_size,
            record.root_hash,
            record.backend,
            record.locator,
            record.note_sha256,
            record.anchored_at,
            log_index,
            block,
        )

    def to_dict(self) -> dict[str, Any]:
        block = None if self.block is None else {"height": self.block.height, "hash": self.block.hash}
        return {
            "tree_size": self.tree_size,
            "root_hash": self.root_hash,
            "backend": self.backend,
            "locator": self.locator,
            "note_sha256": self.note_sha256,
            "anchored_at": self.anchored_at,
            "log_index": self.log_index,
            "block": block,
        }


@dataclass(frozen=True, slots=True)
class Confirmation:
    """A block recorded for an anchor: the anchor's tree size and transaction, the block, and where the
    ``checkpoint_anchor_confirmed`` record sits."""

    tree_size: int
    locator: str
    block: Block
    log_index: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "tree_size": self.tree_size,
            "locator": self.locator,
            "block": {"height": self.block.height, "hash": self.block.hash},
            "log_index": self.log_index,
        }


@dataclass(frozen=True, slots=True)
class AnchorRun:
    """What one run did to one log: the anchor it logged (None: nothing was due, or another run holds
    the log: ``busy``), and the blocks it recorded."""

    tenant_id: str
    anchored: Anchor | None
    confirmed: tuple[Confirmation, ...]
    busy: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "tenant_id": self.tenant_id,
            "anchored": None if self.anchored is None else self.anchored.to_dict(),
            "confirmed": [c.to_dict() for c in self.confirmed],
            "busy": self.busy,
        }


@dataclass(frozen=True, slots=True)
class DueRun:
    """One scheduled run: the logs visited (in id order, after ``started_after``), what each got, the
    logs that failed for good (their error code; the others go on), and where the next run starts."""

    visited: int
    runs: tuple[AnchorRun, ...]
    failed: tuple[tuple[str, str], ...]
    next_after: str | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "visited": self.visited,
            "anchored": [r.anchored.to_dict() | {"tenant_id": r.tenant_id} for r in self.runs if r.anchored],
            "confirmed": [c.to_dict() | {"tenant_id": r.tenant_id} for r in self.runs for c in r.confirmed],
            "busy": [r.tenant_id for r in self.runs if r.busy],
            "failed": [{"tenant_id": tenant, "code": code} for tenant, code in self.failed],
            "next_after": self.next_after,
        }


def anchoring_off() -> CheckpointAnchorer:
    """The anchorer of a deployment that does not anchor: every anchoring action is refused."""
    raise InvalidRequestError(
        "checkpoint anchoring is off in this deployment (RELIQUARY_AUDIT_ANCHOR_BACKEND)"
    )


def anchor_tags(origin: str, tree_size: int) -> tuple[tuple[str, str], ...]:
    """The tags an anchor is stored with (Arweave keeps them; a gateway serves the Content-Type)."""
    return (
        ("Content-Type", "text/plain; charset=utf-8"),
        ("App-Name", APP_NAME),
        ("Reliquary-Format", ANCHOR_FORMAT),
        ("Reliquary-Origin", origin),
        ("Reliquary-Tree-Size", str(tree_size)),
    )


class CheckpointAnchorer:
    def __init__(
        self,
        service: AuditService,
        states: AnchorStateStore,
        store: PermanentStore,
        backend: PermanentBackend,
        *,
        blocks: BlockSource | None,
        clock: Callable[[], int],
        claim_seconds: int = CLAIM_SECONDS,
    ) -> None:
        """``blocks`` reports Arweave blocks (required for Arweave, unused for IPFS, where a pinned CID
        is final as it is)."""
        if backend is PermanentBackend.ARWEAVE and blocks is None:
            raise InvalidRequestError("anchoring on Arweave needs the node's transaction status")
        if claim_seconds <= 0:
            raise InvalidRequestError("the claim lasts a positive number of seconds")
        self._service = service
        self._states = states
        self._store = store
        self._backend = backend
        self._blocks = blocks if backend is PermanentBackend.ARWEAVE else None
        self._clock = clock
        self._claim = claim_seconds

    @property
    def backend(self) -> PermanentBackend:
        return self._backend

    def anchor(self, tenant_id: str) -> AnchorRun:
        """Record the blocks of this log's pending anchors, then anchor its latest checkpoint if it grew."""
        log_id = validate_id("tenant_id", tenant_id)
        confirmed = self._confirm(log_id)
        anchored, busy = self._anchor(log_id)
        return AnchorRun(log_id, anchored, tuple(confirmed), busy)

    def anchor_due(self, *, max_logs: int = DEFAULT_DUE_LOGS) -> DueRun:
        """``anchor`` each registered log, at most ``max_logs`` of them, continuing after the last log the
        previous run visited (from the first again once all were). A log that fails for good is reported
        and skipped; a transient failure (a node down) stops the run where it is, for the next to go on."""
        if isinstance(max_logs, bool) or not isinstance(max_logs, int) or not 1 <= max_logs <= MAX_DUE_LOGS:
            raise InvalidRequestError(f"max_logs is 1 to {MAX_DUE_LOGS}", field="max_logs")
        after = self._states.cursor()
        logs = self._states.registered(after=after, limit=max_logs)
        runs: list[AnchorRun] = []
        failed: list[tuple[str, str]] = []
        for log_id in logs:
            try:
                runs.append(self.anchor(log_id))
            except TransientError:
                self._states.set_cursor(after)  # this log first, next time
                raise
            except ReliquaryError as exc:
                failed.append((log_id, exc.code))
            after = log_id
        next_after = logs[-1] if len(logs) == max_logs else None
        self._states.set_cursor(next_after)
        return DueRun(len(logs), tuple(runs), tuple(failed), next_after)

    # --- anchoring -------------------------------------------------------------------------------
    def _anchor(self, log_id: str) -> tuple[Anchor | None, bool]:
        now = self._clock()
        state = self._states.state(log_id)
        intent = state.intent
        if intent is None:
            latest = self._latest(log_id)
            if latest is None or latest.size <= state.settled:
                return None, False  # an empty log, or nothing new since the last anchor
            if state.claim_until > now:
                return None, True
            claimed = state.advanced(claim_until=now + self._claim)
            try:
                self._states.save(log_id, claimed, previous=state)
            except ConflictError:
                return None, True  # another run claimed it first
            try:
                intent = self._store_note(log_id, latest, now)
                state = claimed.advanced(intent=intent)
                self._states.save(log_id, state, previous=claimed)
            except ConflictError:
                return None, True  # our claim lapsed and another run took the log: ours is an extra copy
            except BaseException:
                with contextlib.suppress(ReliquaryError):  # it lapses by itself otherwise
                    self._states.save(log_id, claimed.advanced(claim_until=0), previous=claimed)
                raise
        elif state.claim_until > now:
            return None, True  # its claimant is logging it
        return self._log_intent(log_id, state, intent)

    def _latest(self, log_id: str) -> StoredCheckpoint | None:
        """The latest checkpoint, published first when entries are waiting; None for an empty log."""
        sequenced = self._service.sequenced(log_id)
        if sequenced == 0:
            return None
        latest = self._service.latest(log_id)
        if latest is None or latest.size < sequenced:
            latest = self._service.publish(log_id)
        return latest

    def _store_note(self, log_id: str, latest: StoredCheckpoint, now: int) -> Intent:
        origin = self._service.origin(log_id)
        verifiers = self._service.verifiers
        # Our own checkpoint, opened as anyone would before it is published for good (fails closed).
        checkpoint = open_checkpoint(
            latest.note, verifiers, origin=origin, required=Policy.all_of(*verifiers)
        )
        ref = self._store.put(latest.note, tags=anchor_tags(origin, checkpoint.size))
        return Intent(
            tree_size=checkpoint.size,
            root_hash=base64.b64encode(checkpoint.root_hash).decode("ascii"),
            locator=ref.locator,
            note_sha256=hashlib.sha256(latest.note).hexdigest(),
            anchored_at=now,
        )

    def _log_intent(self, log_id: str, state: AnchorState, intent: Intent) -> tuple[Anchor | None, bool]:
        record = CheckpointAnchorRecord(
            request_id=anchor_request_id(intent.tree_size),
            tenant_id=log_id,
            origin=self._service.origin(log_id),
            tree_size=intent.tree_size,
            root_hash=intent.root_hash,
            backend=self._backend.value,
            locator=intent.locator,
            note_sha256=intent.note_sha256,
            anchored_at=intent.anchored_at,
        )
        index = self._service.append(log_id, [record])[0].leaf_index
        # Everything below the anchored size is anchored; the record itself too when it came right after.
        settled = index + 1 if index == intent.tree_size else intent.tree_size
        pending = state.pending
        if self._backend is PermanentBackend.ARWEAVE:
            pending = (*pending, Pending(intent.tree_size, intent.locator, index, intent.anchored_at))
        done = state.advanced(
            anchored=intent.tree_size,
            settled=max(settled, state.settled),
            pending=pending,
            claim_until=0,
            intent=None,
        )
        try:
            self._states.save(log_id, done, previous=state, entry=AnchorEntry(intent.tree_size, index))
        except ConflictError:
            return None, True  # another run resumed the same intent and finished it (the same record)
        return Anchor.of(record, index), False

    # --- confirmations (Arweave) -----------------------------------------------------------------
    def _confirm(self, log_id: str) -> list[Confirmation]:
        if self._blocks is None:
            return []
        confirmed: list[Confirmation] = []
        for pending in self._states.state(log_id).pending:
            status = self._blocks.status(pending.locator)
            if status == "pending":
                continue
            if status == "unknown":
                if self._clock() - pending.anchored_at > ABANDON_SECONDS:
                    self._settle(log_id, pending, None)
                continue
            record = CheckpointAnchorConfirmedRecord(
                request_id=confirmation_request_id(pending.tree_size),
                tenant_id=log_id,
                tree_size=pending.tree_size,
                locator=pending.locator,
                block_height=status.height,
                block_hash=status.hash,
            )
            index = self._service.append(log_id, [record])[0].leaf_index
            if self._settle(log_id, pending, index):
                confirmed.append(Confirmation(pending.tree_size, pending.locator, status, index))
        return confirmed

    def _settle(self, log_id: str, pending: Pending, index: int | None) -> bool:
        """Take ``pending`` off the state (its block logged at ``index``, or abandoned: None); False when
        another run did. Retried on conflicts: a confirmation is never lost to a race."""
        for _ in range(_SAVE_ATTEMPTS):
            state = self._states.state(log_id)
            if pending not in state.pending:
                return False
            settled = state.settled + 1 if index == state.settled else state.settled
            done = state.advanced(pending=tuple(p for p in state.pending if p != pending), settled=settled)
            entry = None if index is None else AnchorEntry(pending.tree_size, pending.log_index, index)
            try:
                self._states.save(log_id, done, previous=state, entry=entry)
            except ConflictError:
                continue
            return True
        raise TransientError("the log's anchor state is too contended; retry", log_id=log_id)
