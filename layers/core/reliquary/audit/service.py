"""The audit service: one transparency log per tenant, its signed checkpoints, receipts, reads, export.

Append -> receipt: the records are sequenced and integrated (``TransparencyLog``, which groups the
concurrent appends of one process into shared commits), a checkpoint covering them is published (or a
newer one reused), and each record gets a receipt: its leaf index, the signed checkpoint and the
inclusion proof against it.

Checkpoints are published on a short interval under load: an appender whose leaf is integrated while
other appends to the log are waiting or being committed in this process waits (at most
``checkpoint_interval``) for a checkpoint one of them publishes; otherwise it publishes at once. Either way
it returns only with a signed checkpoint that covers its leaf.

Append -> promise (``promise``): the records are only sequenced (committed), and each gets a signed
promise of inclusion (``receipts.Promise``) at once. Integration and the checkpoint are amortized over
many appends: done by the append that finds the process's backlog due (``INTEGRATE_BACKLOG`` entries, or
older than ``promise_integration``: Settings.audit_promise_integration_ms), by ``publish``, and by
``receipt``, which integrates and publishes on demand; the receipt then keeps the promise
(``receipts.verify_promise_kept``).

Publishing never rewrites history: the new tree must be provably consistent with the last published
checkpoint (its signature checked, a consistency proof built from the tiles and verified) before the new
checkpoint is signed, and the store accepts it only if the previous one is still the latest (a
conditional write). Checkpoints are signed by the deployment's checkpoint keys (Ed25519 for standard
signed-note verifiers and witnesses, ML-DSA-65 and Falcon-512), all under one key name.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from reliquary.audit import merkle, tiles
from reliquary.audit.checkpoint import Checkpoint, open_checkpoint, sign_checkpoint
from reliquary.audit.index import DecisionRef
from reliquary.audit.log import TileStore, TransparencyLog, anchor_key, decision_key
from reliquary.audit.note import NoteSigner, NoteVerifier, Policy, is_valid_key_name
from reliquary.audit.receipts import (
    Promise,
    PromiseBody,
    Receipt,
    export_header,
    export_line,
    sign_promise,
)
from reliquary.audit.records import (
    AnyRecord,
    CheckpointAnchorConfirmedRecord,
    CheckpointAnchorRecord,
    DecisionRecord,
    encode_record,
    same_decision,
)
from reliquary.crypto.scope import validate_id
from reliquary.errors import (
    ConflictError,
    IdempotencyConflictError,
    InvalidRequestError,
    LogInconsistentError,
    NotFoundError,
    ProofError,
    TransientError,
)

if TYPE_CHECKING:
    from reliquary.audit.fsck import FsckReport

AuditRecord = AnyRecord
CHECKPOINT_PATH = "checkpoint"
MAX_EXPORT_ENTRIES = 100_000  # one export call; larger ranges are exported in several
MAX_READ_ENTRIES = 1_000  # entries returned by one read
_PUBLISH_ATTEMPTS = 20
DEFAULT_CHECKPOINT_INTERVAL = 0.025  # seconds (Settings.audit_checkpoint_interval_ms)
DEFAULT_PROMISE_INTEGRATION = 1.0  # seconds (Settings.audit_promise_integration_ms)
# Sequenced entries that make integration due at once, whatever their age: one entry bundle's worth, so
# a busy log writes each bundle once, full.
INTEGRATE_BACKLOG = tiles.TILE_WIDTH


def log_key(record: AuditRecord) -> str:
    """The id ``record`` is deduplicated under in its tenant's log: its request id, in the decisions' own
    id space for a decision (``log.decision_key``), in the log's own for a checkpoint anchor or its block
    (``log.anchor_key``). One decision per (tenant, request id), and one other record per (tenant,
    request id); no append of a tenant's record can take a decision's or an anchor's request id."""
    if isinstance(record, DecisionRecord):
        return decision_key(record.request_id)
    if isinstance(record, CheckpointAnchorRecord | CheckpointAnchorConfirmedRecord):
        return anchor_key(record.request_id)
    return record.request_id


@dataclass(frozen=True, slots=True)
class StoredCheckpoint:
    size: int
    note: bytes


class CheckpointStore(Protocol):
    """The latest published checkpoint of each log (DynamoDB), advanced only by conditional writes."""

    def latest_checkpoint(self, log_id: str) -> StoredCheckpoint | None: ...

    def put_checkpoint(
        self, log_id: str, checkpoint: StoredCheckpoint, *, previous: StoredCheckpoint | None
    ) -> None:
        """Store ``checkpoint`` as the latest, only if the latest is still exactly ``previous`` (its size
        and note: None for no checkpoint yet); ConflictError otherwise, so a writer that started from a
        stale or altered checkpoint re-reads it (and refuses an altered one). In the same write, raise
        the log head's ``integrated`` to the checkpoint's size (only integrated trees are signed; never
        lower it)."""


class ExportSink(Protocol):
    """Where exports go (S3): one object written from a stream of chunks."""

    def write_stream(self, key: str, chunks: Iterable[bytes]) -> int:
        """Write the object; return its size in bytes."""


@dataclass(frozen=True, slots=True)
class CheckpointKeys:
    """The keys that sign every tenant's checkpoints, under one key name."""

    signers: tuple[NoteSigner, ...]

    def __post_init__(self) -> None:
        if not self.signers or len({s.name for s in self.signers}) != 1:
            raise InvalidRequestError("checkpoint keys are one or more signers under one key name")

    @property
    def verifiers(self) -> tuple[NoteVerifier, ...]:
        return tuple(s.verifier for s in self.signers)

    @property
    def policy(self) -> Policy:
        """Every key must have signed: the service holds them all, so a missing signature is tampering."""
        return Policy.all_of(*self.verifiers)


@dataclass(eq=False, slots=True)
class _Publishing:
    """One log's checkpoints in this process: the latest known, and whether one is being published."""

    ready: threading.Condition = field(default_factory=threading.Condition)
    latest: StoredCheckpoint | None = None
    known: bool = False  # ``latest`` was read from the store or stored here (it may be stale: the
    # conditional write of the next checkpoint finds out)
    publishing: bool = False


@dataclass(frozen=True, slots=True)
class ExportResult:
    key: str
    start: int
    end: int
    tree_size: int
    bytes_written: int


class AuditService:
    def __init__(
        self,
        log: TransparencyLog,
        tile_store: TileStore,
        checkpoints: CheckpointStore,
        keys: CheckpointKeys,
        *,
        origin_prefix: str,
        exports: ExportSink | None = None,
        checkpoint_interval: float = DEFAULT_CHECKPOINT_INTERVAL,
        promise_integration: float = DEFAULT_PROMISE_INTEGRATION,
    ) -> None:
        if not is_valid_key_name(origin_prefix) or origin_prefix.endswith("/"):
            raise InvalidRequestError("the origin prefix is a key name without a trailing '/'")
        if not 0 <= checkpoint_interval <= 1:
            raise InvalidRequestError("the checkpoint interval is 0 to 1 second")
        if not 0 <= promise_integration <= 60:
            raise InvalidRequestError("the promises' integration interval is 0 to 60 seconds")
        self._interval = checkpoint_interval
        self._promise_integration = promise_integration
        self._publishing: dict[str, _Publishing] = {}
        self._publishing_lock = threading.Lock()
        self._log = log
        self._tiles = tile_store
        self._checkpoints = checkpoints
        self._keys = keys
        self._prefix = origin_prefix
        self._exports = exports
        self._opened: dict[str, tuple[bytes, Checkpoint]] = {}  # the last checkpoint verified, per log

    # --- identity --------------------------------------------------------------------------------
    def origin(self, tenant_id: str) -> str:
        """The checkpoint origin of a tenant's log: ``<origin prefix>/<tenant id>``."""
        return f"{self._prefix}/{validate_id('tenant_id', tenant_id)}"

    @property
    def verifier_keys(self) -> list[str]:
        """The signed-note verifier keys (``name+keyid+base64``) that check every checkpoint."""
        return [v.to_vkey() for v in self._keys.verifiers]

    @property
    def verifiers(self) -> tuple[NoteVerifier, ...]:
        return self._keys.verifiers

    # --- writing ---------------------------------------------------------------------------------
    def append(self, tenant_id: str, records: Sequence[AuditRecord]) -> list[Receipt]:
        """Log ``records`` (all of ``tenant_id``) and return a receipt for each, in order.

        Idempotent per request id (decisions in their own id space, ``log_key``): a record already
        logged keeps its index. The same request id with a different record of the same space is an
        ``IdempotencyConflictError`` (the call's other records are logged)."""
        receipts, _ = self.append_logged(tenant_id, records)
        return receipts

    def append_logged(
        self, tenant_id: str, records: Sequence[AuditRecord]
    ) -> tuple[list[Receipt], list[bytes]]:
        """``append``, also returning each request's entry as logged (what its receipt proves).

        A decision already logged for the request is the same decision when only its time and execution
        differ (a second execution of the same request decided the same way): the first one stands, and
        its entry and receipt are returned."""
        log_id, entries, refs = _entries(tenant_id, records)
        # The checkpoint published below raises the head's integrated size: no write of its own.
        appended = self._log.append(log_id, entries, decisions=refs, mark_integrated=False)
        logged = _logged(
            records,
            entries,
            [
                entry if a.new else self._log.entry(log_id, a.index, self._log.integrated(log_id))
                for a, (_, entry) in zip(appended, entries, strict=True)
            ],
        )
        published = self._covering(log_id, max(a.index for a in appended) + 1)
        proofs = self._log.inclusion_proofs(log_id, [a.index for a in appended], published.size)
        origin = self.origin(log_id)
        receipts = [
            Receipt(origin, record.request_id, a.index, published.note, published.size, tuple(proof))
            for record, a, proof in zip(records, appended, proofs, strict=True)
        ]
        return receipts, logged

    def promise(self, tenant_id: str, records: Sequence[AuditRecord]) -> list[Promise]:
        """Sequence ``records`` (all of ``tenant_id``) and return a signed promise of inclusion for each,
        in order, without waiting for integration or a checkpoint (``receipt`` gives the full receipt
        later). Idempotent as ``append``: a record already logged keeps its leaf and its commit time, so
        its promise says the same again."""
        promises, _ = self.promise_logged(tenant_id, records)
        return promises

    def promise_logged(
        self, tenant_id: str, records: Sequence[AuditRecord]
    ) -> tuple[list[Promise], list[bytes]]:
        """``promise``, also returning each request's entry as logged (what its promise is for)."""
        log_id, entries, refs = _entries(tenant_id, records)
        appended = self._log.append(log_id, entries, decisions=refs, mark_integrated=False, integrate=False)
        found = [
            (entry, a.sequenced_at_ms) if a.new else self._log.committed(log_id, a.index)
            for a, (_, entry) in zip(appended, entries, strict=True)
        ]
        logged = _logged(records, entries, [entry for entry, _ in found])
        origin = self.origin(log_id)
        promises = [
            sign_promise(
                PromiseBody(origin, record.request_id, a.index, merkle.SHA256.hash_leaf(entry), sequenced),
                self._keys.signers,
            )
            for record, a, (entry, sequenced) in zip(records, appended, found, strict=True)
        ]
        self._settle(log_id)
        return promises, logged

    def _settle(self, log_id: str) -> None:
        """Integrate this process's backlog and publish a checkpoint of it when that is due (see the
        module docstring), unless another caller is publishing the log right now: it, or the next due
        append, covers these entries. Entries integrated but not yet signed (a publish that failed) are
        published too."""
        state = self._state(log_id)
        due = self._log.integration_due(log_id, age=self._promise_integration, backlog=INTEGRATE_BACKLOG)
        with state.ready:
            unsigned = state.latest is not None and state.latest.size < self._log.integrated(log_id)
            if state.publishing or not (due or unsigned):
                return
            state.publishing = True
        try:
            self._log.flush(log_id, record=False)  # the checkpoint's write raises the integrated size
            self._publish_known(log_id, state)
        finally:
            with state.ready:
                state.publishing = False
                state.ready.notify_all()

    def _state(self, log_id: str) -> _Publishing:
        with self._publishing_lock:
            return self._publishing.setdefault(log_id, _Publishing())

    def _covering(self, log_id: str, size: int) -> StoredCheckpoint:
        """A signed checkpoint of at least ``size`` leaves (all integrated here), published or reused.

        While other appends to the log are queued or being committed in this process, wait (at most the
        checkpoint interval) for one of them to publish a checkpoint that covers these leaves too; when
        nobody else is at work, or the interval is over, publish at once."""
        state = self._state(log_id)
        deadline = time.monotonic() + self._interval
        with state.ready:
            while True:
                if state.latest is not None and state.latest.size >= size:
                    return state.latest
                if state.publishing:
                    state.ready.wait()
                    continue
                left = deadline - time.monotonic()
                if left <= 0 or not self._log.waiting(log_id):
                    state.publishing = True
                    break
                state.ready.wait(left)
        try:
            published = self._publish_known(log_id, state)
        finally:
            with state.ready:
                state.publishing = False
                state.ready.notify_all()
        if published.size < size:  # the log integrated these leaves here: cannot happen
            raise LogInconsistentError("the published checkpoint does not cover the append", log_id=log_id)
        return published

    def _publish_known(self, log_id: str, state: _Publishing) -> StoredCheckpoint:
        """Sign and store a checkpoint of the tree integrated here, starting from the latest checkpoint
        known here (read once per log and process); a stale one is found by the conditional write."""
        for _ in range(_PUBLISH_ATTEMPTS):
            if not state.known:
                state.latest, state.known = self._checkpoints.latest_checkpoint(log_id), True
            latest = state.latest
            previous = self._open(log_id, latest) if latest is not None else None
            size = self._log.integrated(log_id)
            if latest is not None and previous is not None and previous.size >= size:
                return latest
            try:
                fresh = self._sign_and_store(log_id, latest, previous, size)
            except ConflictError:
                state.known = False  # another process published meanwhile: start from its checkpoint
                continue
            state.latest = fresh
            # tlog-tiles clients read this copy; the store's row stays the reference (see _mirror).
            self._tiles.write(log_id, CHECKPOINT_PATH, fresh.note)
            return fresh
        raise TransientError("checkpoint publishing is too contended; retry", log_id=log_id)

    def _sign_and_store(
        self, log_id: str, latest: StoredCheckpoint | None, previous: Checkpoint | None, size: int
    ) -> StoredCheckpoint:
        """Sign the tree of ``size``, proven consistent with ``previous`` (``latest``, opened), and store
        it in place of ``latest``."""
        _, root = self._log.root(log_id, size)
        if previous is not None:
            self._prove_consistent(log_id, previous, size, root)
        signed = Checkpoint(self.origin(log_id), size, root)
        note = sign_checkpoint(signed, self._keys.signers)
        fresh = StoredCheckpoint(size, note)
        self._checkpoints.put_checkpoint(log_id, fresh, previous=latest)
        self._opened[log_id] = (note, signed)
        return fresh

    def publish(self, tenant_id: str) -> StoredCheckpoint:
        """Sign and store a checkpoint of the whole integrated log, consistent with the previous one;
        return the latest checkpoint (which may be a newer one another writer published). Reads the
        head and the latest checkpoint afresh, so it completes anything a crashed writer left: tiles of
        committed entries, a checkpoint, its copy in ``<log>/checkpoint``."""
        log_id = validate_id("tenant_id", tenant_id)
        state = self._state(log_id)
        with state.ready:
            while state.publishing:
                state.ready.wait()
            state.publishing = True
        try:
            for _ in range(_PUBLISH_ATTEMPTS):
                head = self._log.integrate(log_id, record=False)  # the checkpoint's write records it
                latest = self._checkpoints.latest_checkpoint(log_id)
                state.latest, state.known = latest, True
                previous = self._open(log_id, latest) if latest is not None else None
                if latest is not None and previous is not None and previous.size >= head.integrated:
                    self._mirror(log_id, latest)
                    return latest
                try:
                    fresh = self._sign_and_store(log_id, latest, previous, head.integrated)
                except ConflictError:
                    continue  # another writer published meanwhile: start from its checkpoint
                state.latest = fresh
                self._mirror(log_id, fresh)
                return fresh
        finally:
            with state.ready:
                state.publishing = False
                state.ready.notify_all()
        raise TransientError("checkpoint publishing is too contended; retry", log_id=log_id)

    def _open(self, log_id: str, stored: StoredCheckpoint) -> Checkpoint:
        """Our own last checkpoint, refusing one whose signatures or origin are not ours (fail closed).

        The same note bytes verified once (or signed here) are not verified again."""
        cached = self._opened.get(log_id)
        if cached is not None and cached[0] == stored.note:
            checkpoint = cached[1]
        else:
            checkpoint = open_checkpoint(
                stored.note, self._keys.verifiers, origin=self.origin(log_id), required=self._keys.policy
            )
        if checkpoint.size != stored.size:
            raise LogInconsistentError("the stored checkpoint's size is not its note's", log_id=log_id)
        self._opened[log_id] = (stored.note, checkpoint)
        self._log.note_integrated(log_id, checkpoint.size)  # only integrated trees are signed
        return checkpoint

    def _prove_consistent(self, log_id: str, previous: Checkpoint, size: int, root: bytes) -> None:
        proof = self._log.consistency_proof(log_id, previous.size, size)
        try:
            merkle.verify_consistency(previous.size, size, previous.root_hash, root, proof)
        except ProofError as exc:
            raise LogInconsistentError(
                "the log is not consistent with its last checkpoint; refusing to publish",
                log_id=log_id,
                previous_size=previous.size,
                size=size,
            ) from exc

    def _mirror(self, log_id: str, stored: StoredCheckpoint) -> None:
        """Keep ``<log>/checkpoint`` (what tlog-tiles clients fetch) at the latest checkpoint. Two writers
        may race here; whoever finds a newer checkpoint stored after writing writes that one too.

        Appends write the copy without that re-read: after a race between two processes it may trail
        the stored checkpoint (an older checkpoint, still signed and consistent) until the next
        publish; receipts and the reader take the stored row."""
        for _ in range(3):
            self._tiles.write(log_id, CHECKPOINT_PATH, stored.note)
            latest = self._checkpoints.latest_checkpoint(log_id)
            if latest is None or latest.size <= stored.size:
                return
            stored = latest

    # --- reading ---------------------------------------------------------------------------------
    def checkpoint(self, tenant_id: str) -> StoredCheckpoint:
        """The latest signed checkpoint (NotFoundError before the first append)."""
        log_id = validate_id("tenant_id", tenant_id)
        latest = self._checkpoints.latest_checkpoint(log_id)
        if latest is None:
            raise NotFoundError("the log has no checkpoint yet", tenant_id=log_id)
        return latest

    def latest(self, tenant_id: str) -> StoredCheckpoint | None:
        """The latest signed checkpoint, or None before the first one."""
        return self._checkpoints.latest_checkpoint(validate_id("tenant_id", tenant_id))

    def sequenced(self, tenant_id: str) -> int:
        """How many entries the log has committed (some may not be integrated or signed yet)."""
        return self._log.head(validate_id("tenant_id", tenant_id)).size

    def receipt(self, tenant_id: str, request_id: str, leaf_index: int) -> Receipt:
        """A receipt for a logged leaf against the latest checkpoint. A leaf sequenced but not yet
        covered by one (a promise's) is integrated and published on demand; a leaf never sequenced is
        ``InvalidRequestError``."""
        log_id = validate_id("tenant_id", tenant_id)
        validate_id("request_id", request_id)
        if isinstance(leaf_index, bool) or not isinstance(leaf_index, int) or leaf_index < 0:
            raise InvalidRequestError("a leaf index is a non-negative integer")
        latest = self._checkpoints.latest_checkpoint(log_id)
        if latest is None or leaf_index >= latest.size:
            if leaf_index >= self._log.head(log_id).size:  # never sequenced: nothing to integrate
                raise InvalidRequestError("the leaf is not in the log")
            latest = self.publish(log_id)  # integrates everything committed, then signs it
        return self._receipt(log_id, request_id, leaf_index, latest)

    def _receipt(self, log_id: str, request_id: str, index: int, published: StoredCheckpoint) -> Receipt:
        if not 0 <= index < published.size:
            raise InvalidRequestError("the leaf is not covered by the checkpoint", leaf_index=index)
        proof = self._log.inclusion_proof(log_id, index, published.size)
        return Receipt(self.origin(log_id), request_id, index, published.note, published.size, tuple(proof))

    def inclusion_proof(self, tenant_id: str, index: int, size: int) -> list[bytes]:
        return self._log.inclusion_proof(validate_id("tenant_id", tenant_id), _index(index, size), size)

    def consistency_proof(self, tenant_id: str, old_size: int, new_size: int) -> list[bytes]:
        if not 0 <= old_size <= new_size:
            raise InvalidRequestError("a consistency proof needs 0 <= old_size <= new_size")
        return self._log.consistency_proof(validate_id("tenant_id", tenant_id), old_size, new_size)

    def tile(self, tenant_id: str, path: str) -> bytes:
        """The raw bytes at a tlog-tiles path (``tile/...``, ``checkpoint``) of the tenant's log."""
        log_id = validate_id("tenant_id", tenant_id)
        if path != CHECKPOINT_PATH:
            tiles.parse_path(path)  # InvalidRequestError for anything but a well-formed tile path
        data = self._tiles.read(log_id, path)
        if data is None:
            raise NotFoundError("no such tile")  # the path is the caller's input: not echoed
        return data

    def entries(self, tenant_id: str, start: int, end: int) -> list[bytes]:
        if not 0 <= start <= end or end - start > MAX_READ_ENTRIES:
            raise InvalidRequestError(f"read 0 to {MAX_READ_ENTRIES} entries with 0 <= start <= end")
        return self._log.entries(validate_id("tenant_id", tenant_id), start, end)

    # --- export and fsck -------------------------------------------------------------------------
    def export(self, tenant_id: str, start: int, end: int, *, export_id: str) -> ExportResult:
        """Entries [start, end) with inclusion proofs against the latest checkpoint, as JSON lines at
        ``exports/<tenant>/<export id>.jsonl`` (see ``receipts.verify_export``)."""
        if self._exports is None:
            raise InvalidRequestError("exports are not configured")
        log_id = validate_id("tenant_id", tenant_id)
        validate_id("export_id", export_id)
        published = self.checkpoint(log_id)
        if not 0 <= start <= end <= published.size or end - start > MAX_EXPORT_ENTRIES:
            raise InvalidRequestError(
                f"export at most {MAX_EXPORT_ENTRIES} entries within the checkpoint",
                start=start,
                end=end,
                tree_size=published.size,
            )
        key = f"exports/{log_id}/{export_id}.jsonl"

        def lines() -> Iterator[bytes]:
            yield export_header(origin=self.origin(log_id), start=start, end=end, checkpoint=published.note)
            for first in range(start, end, MAX_READ_ENTRIES):
                last = min(end, first + MAX_READ_ENTRIES)
                for offset, entry in enumerate(self._log.entries(log_id, first, last)):
                    index = first + offset
                    yield export_line(index, entry, self._log.inclusion_proof(log_id, index, published.size))

        written = self._exports.write_stream(key, lines())
        return ExportResult(key, start, end, published.size, written)

    def verify(self, tenant_id: str, *, progress: Callable[[int, int], None] | None = None) -> FsckReport:
        """Re-check the whole integrated log from its tiles against its head and latest checkpoint (fsck)."""
        from reliquary.audit.fsck import verify_log  # noqa: PLC0415  (an operator's tool: off the hot path)

        log_id = validate_id("tenant_id", tenant_id)
        latest = self._checkpoints.latest_checkpoint(log_id)
        notes = [] if latest is None else [latest.note]
        head = self._log.head(log_id)
        return verify_log(
            self._tiles,
            log_id,
            size=head.integrated,
            head=head,
            checkpoints=notes,
            verifiers=self._keys.verifiers,
            origin=self.origin(log_id),
            required=self._keys.policy,
            progress=progress,
        )


def _entries(
    tenant_id: str, records: Sequence[AuditRecord]
) -> tuple[str, list[tuple[str, bytes]], dict[str, DecisionRef]]:
    """The log id, the ``(log key, entry)`` pairs and the decisions' index rows of an append, checked."""
    log_id = validate_id("tenant_id", tenant_id)
    if not records:
        raise InvalidRequestError("append needs at least one record")
    for record in records:
        if record.tenant_id != log_id:
            raise InvalidRequestError("a record belongs to another tenant", request_id=record.request_id)
    entries = [(log_key(record), encode_record(record)) for record in records]
    # Each decision's row of the per-item index, committed with its entry (reliquary.audit.index).
    refs = {
        log_key(record): DecisionRef(
            record.vault_id, record.item_id, record.request_id, record.decision, record.time
        )
        for record in records
        if isinstance(record, DecisionRecord)
    }
    return log_id, entries, refs


def _logged(
    records: Sequence[AuditRecord], entries: Sequence[tuple[str, bytes]], stored: Sequence[bytes]
) -> list[bytes]:
    """The entries as logged (``stored``), or ``IdempotencyConflictError`` naming the request ids logged
    with another record (the same decision decided again is not another record: ``same_decision``)."""
    conflicts = [
        record.request_id
        for record, (_, entry), logged in zip(records, entries, stored, strict=True)
        if logged != entry and not same_decision(logged, entry)
    ]
    if conflicts:
        raise IdempotencyConflictError(
            "a request id is already logged with a different record", request_ids=conflicts[:20]
        )
    return list(stored)


def _index(index: int, size: int) -> int:
    if not 0 <= index < size:
        raise InvalidRequestError("an inclusion proof needs 0 <= index < size", index=index, size=size)
    return index
