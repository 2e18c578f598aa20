"""The transparency log: sequencing appends, integrating them into tiles, serving proofs. One per tenant.

Appends are *sequenced* by one conditional write of the log head (size, root, right frontier) together
with the batch's entries and one deduplication row per request id: that write is the commit point, so
concurrent appenders never lose or duplicate an entry (the loser re-reads the head and retries), and a
request appended twice keeps its first index. The log takes the request ids as given; decision records
come with theirs in a space of their own (``decision_key``), and with their row of the per-item index
(``reliquary.audit.index``), written by the same commit.

*Group commit* (as Tessera batches): concurrent appends to one log in one process join a queue; the
first caller to find no leader becomes it, takes every waiting append that fits one commit, commits them
in one conditional write, integrates them, and hands each caller its own result (or the group's error).
The head it committed is kept for the next group: it is not read again unless a commit finds it stale.

*Integration* then writes the tiles and entry bundles of the newly committed range. Their content is a
pure function of the committed entries, so any integrator (the appender itself, the next one, or a
repair after a crash) writes the same bytes: a crash between the commit and the tiles leaves a log whose
head is ahead of its tiles, and the next append or ``integrate`` completes it. Proofs are served only
from integrated tiles, at any size up to the integrated one: a smaller tree's tiles are prefixes of the
integrated tree's tiles at the same positions (tlog-tiles).

An append may also *only sequence* (``integrate=False``): its group is committed and nothing more. The
batches this process sequenced stay in memory (its *backlog*) until something integrates them: ``flush``
(when ``integration_due`` says so, or a receipt is asked for), the next integrating append, or
``integrate``; many groups then cost one set of tiles.
"""

from __future__ import annotations

import itertools
import random
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol

from reliquary.audit import accel, merkle, tiles
from reliquary.audit.index import DecisionRef
from reliquary.audit.merkle import SHA256, CompactRange, Hasher, NodeID
from reliquary.audit.tiles import TILE_WIDTH, TileRef
from reliquary.errors import (
    BadIndexError,
    ConflictError,
    InvalidRequestError,
    LogInconsistentError,
    PayloadTooLargeError,
    TransientError,
)

MAX_BATCH = 90  # entries per append (with no decision: the head, the batch and 90 dedup rows, one commit)
# Items in one commit (a DynamoDB transaction holds at most 100): the head, the batch row, a dedup row per
# entry and an index row per decision. An append whose rows exceed it is committed in several batches.
MAX_COMMIT_ROWS = 100
MAX_BATCH_BYTES = 320 * 1024  # a committed batch is one DynamoDB item (400 KB at most): see batch_bytes
_COMMIT_ATTEMPTS = 40
# How long a leader waits for appenders that are still arriving, under contention (see _linger): a
# fraction of one storage round trip, which a fuller group saves.
_LINGER = 0.010
_ARRIVAL_GAP = 0.001
# Appenders of promises come back after signing theirs (three signatures, about 0.6 ms each time, one
# after another under the GIL): a group of promises waits for them longer, as a promise's caller asked
# for throughput, not for the shortest wait.
_PROMISE_LINGER = 0.025
_PROMISE_ARRIVAL_GAP = 0.004
_EDGE_BUNDLES = 64  # logs whose right-edge entry bundle is kept in memory (the next group extends it)
_LENGTH_PREFIX = 2  # bytes before each entry in a batch row (the entry-bundle framing)
_DECISION_KEY_PREFIX = "decision#"
_ANCHOR_KEY_PREFIX = "anchor#"


def decision_key(request_id: str) -> str:
    """The id a decision record is deduplicated under: its request id, in the decisions' own id space.

    Decisions and other records must not share one: a record appended under the request id of an access
    flow that has not decided yet would otherwise make its RecordDecision fail (a conflict), for good.
    Request ids never hold ``#`` (``crypto.scope.validate_id``), so no other record's id spells this."""
    return _DECISION_KEY_PREFIX + request_id


def anchor_key(request_id: str) -> str:
    """The id a record about the log itself (a checkpoint anchor, its block) is deduplicated under: its
    request id in an id space of its own, which no ``append`` of a tenant's record can take."""
    return _ANCHOR_KEY_PREFIX + request_id


def batch_bytes(entries: Sequence[tuple[str, bytes]]) -> int:
    """What ``(request id, entry)`` pairs weigh in their batch row: each entry with its 2-byte length
    prefix and each request id in UTF-8. The rest of the row (its keys, attribute names, the ids' JSON
    punctuation: under 1 KB for a full batch) fits in the 80 KB that MAX_BATCH_BYTES leaves of 400 KB."""
    try:
        return sum(_LENGTH_PREFIX + len(entry) + len(request_id.encode()) for request_id, entry in entries)
    except UnicodeEncodeError:  # a lone surrogate: no store can write it
        raise InvalidRequestError("a request id is not Unicode text") from None


def _commits(
    entries: Sequence[tuple[str, bytes]], refs: Mapping[str, DecisionRef]
) -> list[Sequence[tuple[str, bytes]]]:
    """``entries`` split, in order, into runs whose rows fit one commit (``MAX_COMMIT_ROWS``): the head,
    the batch, a dedup row per entry and an index row per decision. One run unless over 49 decisions."""
    runs: list[Sequence[tuple[str, bytes]]] = []
    first, rows = 0, 2
    for position, (request_id, _) in enumerate(entries):
        cost = 2 if request_id in refs else 1
        if rows + cost > MAX_COMMIT_ROWS:
            runs.append(entries[first:position])
            first, rows = position, 2
        rows += cost
    runs.append(entries[first:])
    return runs


def _rows(entries: Sequence[tuple[str, bytes]], refs: Mapping[str, DecisionRef]) -> int:
    """The rows ``entries`` add to a commit: a dedup row each, and an index row per decision."""
    return sum(2 if request_id in refs else 1 for request_id, _ in entries)


def _placed(
    items: Sequence[tuple[Sequence[tuple[str, bytes]], Mapping[str, DecisionRef]]],
    batch: Batch,
    known: Mapping[str, int],
) -> list[dict[str, Appended]]:
    """What each item of a group committed as ``batch`` gets: the leaf of each of its request ids (the
    batch's, or ``known``: logged before), ``new`` only for the entry that was logged."""
    placed = {request_id: batch.start + i for i, request_id in enumerate(batch.request_ids)}
    claimed: set[str] = set()
    results: list[dict[str, Appended]] = []
    for entries, _ in items:
        result: dict[str, Appended] = {}
        for request_id, _ in entries:
            if request_id in placed:
                new = request_id not in claimed
                result[request_id] = Appended(request_id, placed[request_id], new, batch.sequenced_at_ms)
                claimed.add(request_id)
            else:
                result[request_id] = Appended(request_id, known[request_id], False)
        results.append(result)
    return results


@dataclass(frozen=True, slots=True)
class LogHead:
    """The committed state of one log. ``integrated`` <= ``size``: how far the tiles are written."""

    size: int = 0
    frontier: tuple[bytes, ...] = ()
    integrated: int = 0
    revision: int = 0

    def __post_init__(self) -> None:
        # A head read from storage is checked before anything is built on it.
        if not (0 <= self.integrated <= self.size and self.revision >= 0):
            raise LogInconsistentError("a log head is corrupt", size=self.size, integrated=self.integrated)
        if len(self.frontier) != self.size.bit_count() or any(
            len(h) != merkle.HASH_SIZE for h in self.frontier
        ):
            raise LogInconsistentError("a log head's frontier does not fit its size", size=self.size)

    @property
    def compact_range(self) -> CompactRange:
        return CompactRange(self.size, self.frontier)

    @property
    def root(self) -> bytes:
        return self.compact_range.root()


@dataclass(frozen=True, slots=True)
class Batch:
    """Entries committed together, starting at leaf ``start``; ``decisions`` (empty, or one per entry:
    None for a record that is not a decision) are the index rows the commit writes with them. A batch
    read back from the store has none: the index is read on its own (``DecisionIndex``)."""

    start: int
    entries: tuple[bytes, ...]
    request_ids: tuple[str, ...]
    decisions: tuple[DecisionRef | None, ...] = ()
    sequenced_at_ms: int = 0  # when it was committed (Unix ms); 0 in batches committed before it was kept

    def __post_init__(self) -> None:
        if self.decisions and len(self.decisions) != len(self.entries):
            raise InvalidRequestError("a batch indexes each of its entries or none")

    @property
    def indexed(self) -> list[tuple[int, DecisionRef]]:
        """The leaf index and index row of every decision in the batch."""
        return [(self.start + i, ref) for i, ref in enumerate(self.decisions) if ref is not None]

    @property
    def end(self) -> int:
        return self.start + len(self.entries)


class DuplicateRequestError(ConflictError):
    """A request id in the batch was committed meanwhile (by a retry or a concurrent appender)."""

    code = "duplicate_request"


class LogStore(Protocol):
    """The log's database (DynamoDB): head, committed batches, request ids."""

    def head(self, log_id: str) -> LogHead:
        """The head, strongly consistent; an empty head for a log never written."""

    def commit(self, log_id: str, *, expected_revision: int, head: LogHead, batch: Batch) -> None:
        """Atomically: the new head (only if the stored revision is ``expected_revision``, else
        ConflictError), the batch, a row per request id (DuplicateRequestError if one exists) and an
        index row per decision (``batch.indexed``)."""

    def indexes(self, log_id: str, request_ids: Sequence[str]) -> dict[str, int]:
        """The leaf index of every request id already committed."""

    def batches(self, log_id: str, start: int, end: int) -> list[Batch]:
        """The committed batches covering leaves [start, end), in order."""

    def mark_integrated(self, log_id: str, size: int) -> None:
        """Raise the head's ``integrated`` to ``size`` (never lower it; no error if already there).

        A commit never changes ``integrated`` of a head that exists: only this (and a checkpoint's
        store, ``CheckpointStore.put_checkpoint``) raises it."""


class TileStore(Protocol):
    """The log's object storage (S3): tiles, entry bundles and checkpoints by c2sp path."""

    def read(self, log_id: str, path: str) -> bytes | None: ...

    def write(self, log_id: str, path: str, data: bytes) -> None: ...


@dataclass(frozen=True, slots=True)
class Appended:
    request_id: str
    index: int
    new: bool  # False when the request id was already in the log (or an earlier append of the group has it)
    sequenced_at_ms: int = 0  # its batch's commit time; 0 when it was already in the log (see ``committed``)


@dataclass(eq=False, slots=True)
class _Pending:
    """One caller's append, waiting in its log's queue until a leader commits it."""

    entries: Sequence[tuple[str, bytes]]
    refs: Mapping[str, DecisionRef]
    rows: int
    size: int  # batch_bytes
    mark: bool  # the caller wants the head's ``integrated`` written (no checkpoint will raise it)
    integrate: bool  # False: sequence only (the backlog is integrated later)
    result: list[Appended] | None = None
    error: BaseException | None = None

    @property
    def done(self) -> bool:
        return self.result is not None or self.error is not None

    @property
    def fits_one_commit(self) -> bool:
        return self.rows + 2 <= MAX_COMMIT_ROWS


def _pending(
    entries: Sequence[tuple[str, bytes]],
    decisions: Mapping[str, DecisionRef] | None,
    *,
    mark: bool,
    integrate: bool,
) -> _Pending:
    """One append, checked before it joins the queue: a bad one is refused alone, before any write."""
    if len(entries) > MAX_BATCH:
        raise InvalidRequestError(f"at most {MAX_BATCH} entries per append", count=len(entries))
    ids = [request_id for request_id, _ in entries]
    if len(set(ids)) != len(ids):
        raise InvalidRequestError("request ids in one append must be distinct")
    refs = dict(decisions or {})
    if not refs.keys() <= set(ids):
        raise InvalidRequestError("an index row names a request id that is not appended")
    for _, entry in entries:
        if len(entry) > tiles.MAX_ENTRY_SIZE:
            raise InvalidRequestError(f"a log entry is at most {tiles.MAX_ENTRY_SIZE} bytes", size=len(entry))
    # Refused here, before any write: DynamoDB would refuse the item only as an opaque failure.
    size = batch_bytes(entries)
    if size > MAX_BATCH_BYTES:
        raise PayloadTooLargeError(
            f"the entries and request ids of one append are at most {MAX_BATCH_BYTES} bytes",
            size=size,
            limit=MAX_BATCH_BYTES,
        )
    return _Pending(list(entries), refs, _rows(entries, refs), size, mark, integrate)


@dataclass(eq=False, slots=True)
class _Sequencer:
    """The appends of one log in this process: the queue, whether a leader is at work, the last head."""

    ready: threading.Condition = field(default_factory=threading.Condition)
    pending: deque[_Pending] = field(default_factory=deque)
    leading: bool = False
    in_flight: int = 0  # appends in the group being committed
    last_group: int = 0  # appends in the last group taken
    head: LogHead | None = None  # committed (or read) here last; None: read it before the next commit
    # Batches committed here and not yet integrated, in commit order; ``base``: the compact range of the
    # tree just before the first of them (None: unknown, read it from tiles); ``since``: when the first
    # was committed (time.monotonic). Guarded by ``ready``.
    backlog: list[Batch] = field(default_factory=list)
    backlog_head: LogHead | None = None  # the head the last backlog batch was committed as
    base: CompactRange | None = None
    since: float = 0.0
    integrating: threading.Lock = field(default_factory=threading.Lock)  # one integrator per log


class TransparencyLog:
    def __init__(
        self,
        store: LogStore,
        tiles_store: TileStore,
        *,
        hasher: Hasher = SHA256,
        tile_cache: int = 1024,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._clock = clock  # the batches' commit times (promises carry them)
        self._store = store
        self._tiles = tiles_store
        self._hasher = hasher
        # Every tile path names immutable content (a partial tile's path carries its width), so tiles
        # read once can be kept: appends and proofs read the same few tiles again and again.
        self._cache: OrderedDict[tuple[str, TileRef], list[bytes]] = OrderedDict()
        self._cache_size = tile_cache
        self._cache_lock = threading.Lock()
        self._seen: dict[str, int] = {}  # the largest integrated size seen per log
        # The right-edge entry bundle last written per log: the next group extends it without a read.
        self._edges: OrderedDict[str, tuple[TileRef, list[bytes]]] = OrderedDict()
        self._sequencers: dict[str, _Sequencer] = {}

    # --- writing ---------------------------------------------------------------------------------
    def append(
        self,
        log_id: str,
        entries: Sequence[tuple[str, bytes]],
        *,
        decisions: Mapping[str, DecisionRef] | None = None,
        mark_integrated: bool = True,
        integrate: bool = True,
    ) -> list[Appended]:
        """Sequence and integrate ``(request_id, entry)`` pairs; idempotent per request id.

        ``decisions`` maps the request id of each decision entry to its row of the per-item index, which
        the commit of the entry writes with it. An entry already logged keeps its first index (and row).
        Concurrent calls on one log share commits (see the module docstring); each gets its own result,
        and a failure of its group's commit or integration as the error (nothing of a failed commit is
        written; a commit whose integration failed is completed by the next append).
        ``mark_integrated=False``: the caller publishes a checkpoint next, whose store raises the head's
        ``integrated`` in the same write, so the separate write is saved. ``integrate=False``: return
        once sequenced (committed); the entries join this process's backlog (see ``flush``), unless a
        member of the same group integrates, which integrates them too."""
        if not entries:
            return []
        request = _pending(entries, decisions, mark=mark_integrated, integrate=integrate)
        sequencer = self._sequencer(log_id)
        with sequencer.ready:
            sequencer.pending.append(request)
            sequencer.ready.notify_all()  # a lingering leader counts arrivals
        while True:
            with sequencer.ready:
                while sequencer.leading and not request.done:
                    sequencer.ready.wait()
                if request.done:
                    break
                sequencer.leading = True
                self._linger(sequencer)
                group = self._take(sequencer)
                sequencer.in_flight = sequencer.last_group = len(group)
            try:
                self._lead(log_id, sequencer, group)
            finally:
                with sequencer.ready:
                    sequencer.leading = False
                    sequencer.in_flight = 0
                    sequencer.ready.notify_all()
        if request.error is not None:
            raise request.error
        if request.result is None:  # done means one of the two is set; a typed refusal all the same
            raise LogInconsistentError("an append ended without a result", log_id=log_id)
        return request.result

    def waiting(self, log_id: str) -> int:
        """How many appends to the log are queued or being committed in this process right now."""
        sequencer = self._sequencers.get(log_id)
        if sequencer is None:
            return 0
        with sequencer.ready:
            return len(sequencer.pending) + sequencer.in_flight

    def _sequencer(self, log_id: str) -> _Sequencer:
        with self._cache_lock:
            return self._sequencers.setdefault(log_id, _Sequencer())

    @staticmethod
    def _linger(sequencer: _Sequencer) -> None:
        """Under contention, let the appenders a checkpoint just released come back before taking the
        next group: wait while appends keep arriving (a gap of ``_ARRIVAL_GAP`` with none ends it), at
        most ``_LINGER`` in all. A group that starts with the first of them alone costs a commit and its
        tiles for a few entries. An uncontended log (a last group of one) never waits."""
        if sequencer.last_group <= 1:
            return
        promises = bool(sequencer.pending) and not sequencer.pending[0].integrate
        gap = _PROMISE_ARRIVAL_GAP if promises else _ARRIVAL_GAP
        deadline = time.monotonic() + (_PROMISE_LINGER if promises else _LINGER)
        while True:
            seen = len(sequencer.pending)
            left = deadline - time.monotonic()
            if left <= 0:
                return
            sequencer.ready.wait(min(gap, left))
            if len(sequencer.pending) == seen:
                return

    @staticmethod
    def _take(sequencer: _Sequencer) -> list[_Pending]:
        """The next group, in arrival order: every waiting append that fits one commit with the first
        (entries, rows, bytes), or the first alone when it needs several commits by itself."""
        first = sequencer.pending.popleft()
        group = [first]
        if not first.fits_one_commit:
            return group
        count, rows, size = len(first.entries), first.rows, first.size
        while sequencer.pending:
            head = sequencer.pending[0]
            if (
                count + len(head.entries) > MAX_BATCH
                or rows + head.rows + 2 > MAX_COMMIT_ROWS
                or size + head.size > MAX_BATCH_BYTES
            ):
                break
            group.append(sequencer.pending.popleft())
            count, rows, size = count + len(head.entries), rows + head.rows, size + head.size
        return group

    def _lead(self, log_id: str, sequencer: _Sequencer, group: list[_Pending]) -> None:
        """Commit and integrate ``group``; every member gets its result or the group's error."""
        mark = any(request.mark for request in group)
        integrate = any(request.integrate for request in group)
        try:
            if len(group) == 1 and not group[0].fits_one_commit:
                (request,) = group
                placed: dict[str, Appended] = {}
                for part in _commits(request.entries, request.refs):
                    (done,) = self._commit_group(
                        log_id, sequencer, [(part, request.refs)], mark=mark, integrate=integrate
                    )
                    placed.update(done)
                request.result = [placed[request_id] for request_id, _ in request.entries]
                return
            results = self._commit_group(
                log_id,
                sequencer,
                [(request.entries, request.refs) for request in group],
                mark=mark,
                integrate=integrate,
            )
            for request, result in zip(group, results, strict=True):
                request.result = [result[request_id] for request_id, _ in request.entries]
        except BaseException as exc:  # every waiter must wake: each gets the error its commit met
            for request in group:
                if request.result is None:
                    request.error = exc
            if not isinstance(exc, Exception):
                raise

    def _head(self, log_id: str) -> LogHead:
        """The stored head, with ``integrated`` raised to what this process knows is integrated (the
        stored value lags when the last integrator left it to a checkpoint that is not yet written)."""
        head = self._store.head(log_id)
        known = min(self._seen.get(log_id, 0), head.size)
        return replace(head, integrated=known) if known > head.integrated else head

    def _commit_group(
        self,
        log_id: str,
        sequencer: _Sequencer,
        items: Sequence[tuple[Sequence[tuple[str, bytes]], Mapping[str, DecisionRef]]],
        *,
        mark: bool,
        integrate: bool,
    ) -> list[dict[str, Appended]]:
        """Sequence the entries of ``items`` (rows that fit one commit) in one commit, then integrate
        them with the backlog (unless ``integrate`` is False: they join it). A request id given twice is
        logged once, under its first entry; each item gets the index of each of its request ids, ``new``
        only for the one whose entry was logged."""
        attempt, known = 0, dict[str, int]()
        check_known = False  # the commit itself refuses a request id already logged: look only then
        ids = list(dict.fromkeys(request_id for entries, _ in items for request_id, _ in entries))
        while attempt < _COMMIT_ATTEMPTS:
            head = sequencer.head if sequencer.head is not None else self._head(log_id)
            sequencer.head = head
            if check_known:
                known = self._store.indexes(log_id, ids)
            fresh: dict[str, tuple[bytes, DecisionRef | None]] = {}
            for entries, refs in items:
                for request_id, entry in entries:
                    if request_id not in known and request_id not in fresh:
                        fresh[request_id] = (entry, refs.get(request_id))
            if not fresh:
                if integrate and max(known.values()) >= self._seen.get(log_id, 0):
                    self.integrate(log_id, record=mark)
                return [
                    {request_id: Appended(request_id, known[request_id], False) for request_id, _ in entries}
                    for entries, _ in items
                ]
            leaf_hashes = accel.hash_leaves([entry for entry, _ in fresh.values()], self._hasher)
            grown, _ = head.compact_range.extend(leaf_hashes, self._hasher)
            decisions = tuple(ref for _, ref in fresh.values())
            batch = Batch(
                head.size,
                tuple(entry for entry, _ in fresh.values()),
                tuple(fresh),
                decisions if any(ref is not None for ref in decisions) else (),
                int(self._clock() * 1000),
            )
            new_head = LogHead(grown.size, grown.hashes, head.integrated, head.revision + 1)
            try:
                self._store.commit(log_id, expected_revision=head.revision, head=new_head, batch=batch)
            except ConflictError as exc:
                # Another appender moved the head (or committed one of our request ids): re-read, after a
                # short random pause so that contending appenders spread out.
                sequencer.head = None
                check_known = check_known or isinstance(exc, DuplicateRequestError)
                attempt += 1
                time.sleep(random.uniform(0, 0.002 * attempt))  # noqa: S311  (jitter, not a secret)
                continue
            with sequencer.ready:
                sequencer.head = new_head  # the next group commits on it without reading it back
                if not sequencer.backlog:
                    # The head committed on *is* the tree the batch extends: once that tree is integrated,
                    # its frontier saves reading it back from tiles (``_flush`` checks it is).
                    sequencer.base = head.compact_range
                    sequencer.since = time.monotonic()
                sequencer.backlog.append(batch)
                sequencer.backlog_head = new_head
            if integrate:
                self._flush(log_id, sequencer, record=mark)
            return _placed(items, batch, known)
        raise TransientError("the log head is too contended; retry the append", log_id=log_id)

    def integrate(
        self,
        log_id: str,
        *,
        head: LogHead | None = None,
        batch: Batch | None = None,
        base: CompactRange | None = None,
        record: bool = True,
    ) -> LogHead:
        """Write the tiles and bundles of every committed but unintegrated leaf. Idempotent.

        ``head``, ``batch`` and ``base`` (the integrated tree before the batch) are what the caller just
        committed on; they save reading them back. ``record``: write the new integrated size to the head
        (False when the caller's checkpoint write raises it)."""
        stored = None
        if head is None:
            stored = self._store.head(log_id)
            known = min(self._seen.get(log_id, 0), stored.size)
            head = replace(stored, integrated=known) if known > stored.integrated else stored
        start, end = head.integrated, head.size
        if start < end:
            self._write_tiles(log_id, head, batch, base)
        self._note_integrated(log_id, end)
        if record and (stored is None or stored.integrated < end):
            self._store.mark_integrated(log_id, end)
        self._integrated_up_to(log_id, head)
        return replace(head, integrated=end)

    def flush(self, log_id: str, *, record: bool = True) -> int:
        """Integrate what this process sequenced and has not integrated (its backlog), with anything
        committed before it; return the integrated size known here. From memory when the backlog
        extends the integrated tree without a gap (no storage read); otherwise as ``integrate`` does,
        from the stored head and batches. ``record`` as for ``integrate``."""
        self._flush(log_id, self._sequencer(log_id), record=record)
        return self.integrated(log_id)

    def _flush(self, log_id: str, sequencer: _Sequencer, *, record: bool) -> None:
        with sequencer.integrating:  # one integrator at a time: the next one finds its work done
            with sequencer.ready:
                seen = self._seen.get(log_id, 0)
                backlog = [b for b in sequencer.backlog if b.end > seen]
                base, last = sequencer.base, sequencer.backlog_head
            if not backlog or last is None:
                return
            start, end = backlog[0].start, backlog[-1].end
            gapless = all(a.end == b.start for a, b in itertools.pairwise(backlog))
            if not (gapless and start == seen and base is not None and base.size == start):
                self.integrate(log_id, record=record)  # reads the head and batches, trims the backlog
                return
            entries = tuple(entry for b in backlog for entry in b.entries)
            ids = tuple(request_id for b in backlog for request_id in b.request_ids)
            target = replace(last, integrated=start)
            if last.size != end:  # the head kept with the backlog is its last commit's
                raise LogInconsistentError("the sequenced backlog does not reach its head", log_id=log_id)
            self._write_tiles(log_id, target, Batch(start, entries, ids), base)
            self._note_integrated(log_id, end)
            if record:
                self._store.mark_integrated(log_id, end)
            self._integrated_up_to(log_id, last)

    def _integrated_up_to(self, log_id: str, head: LogHead) -> None:
        """Drop the backlog batches the tree of ``head.size`` (now integrated) holds; the rest, if it
        starts there, extends that tree (whose compact range is the head's frontier)."""
        sequencer = self._sequencers.get(log_id)
        if sequencer is None:
            return
        with sequencer.ready:
            kept = [b for b in sequencer.backlog if b.end > head.size]
            if kept == sequencer.backlog:
                return
            sequencer.backlog = kept
            if kept and kept[0].start == head.size:
                sequencer.base = head.compact_range
                sequencer.since = time.monotonic()  # the rest was committed meanwhile: its age starts now
            elif kept:
                sequencer.base = None
            else:
                sequencer.backlog_head = None

    def integration_due(self, log_id: str, *, age: float, backlog: int) -> bool:
        """Whether this process's backlog should be integrated now: it holds at least ``backlog`` entries,
        or its first batch was committed ``age`` seconds ago or more."""
        sequencer = self._sequencers.get(log_id)
        if sequencer is None:
            return False
        with sequencer.ready:
            if not sequencer.backlog:
                return False
            pending = sequencer.backlog[-1].end - sequencer.backlog[0].start
            return pending >= backlog or time.monotonic() - sequencer.since >= age

    def committed(self, log_id: str, index: int) -> tuple[bytes, int]:
        """The committed entry at ``index`` and its batch's commit time (Unix ms; 0 for a batch committed
        before times were kept), integrated or not: from this process's backlog, else the stored batch."""
        sequencer = self._sequencers.get(log_id)
        found = None
        if sequencer is not None:
            with sequencer.ready:
                found = next((b for b in sequencer.backlog if b.start <= index < b.end), None)
        if found is None:
            found = next((b for b in self._store.batches(log_id, index, index + 1) if b.start <= index), None)
        if found is None or not found.start <= index < found.end:
            raise LogInconsistentError("a committed entry is missing", log_id=log_id, index=index)
        return found.entries[index - found.start], found.sequenced_at_ms

    def integrated(self, log_id: str) -> int:
        """The largest size this process knows to be integrated (written here, or proven by a signed
        checkpoint): no storage read."""
        return self._seen.get(log_id, 0)

    def _write_tiles(
        self, log_id: str, head: LogHead, batch: Batch | None, base: CompactRange | None
    ) -> None:
        start, end = head.integrated, head.size
        if batch is not None and batch.start == start and batch.end == end:
            entries = list(batch.entries)
        else:
            entries = self._committed_entries(log_id, start, end)
        before = base if base is not None and base.size == start else self._range_at(log_id, start)
        after, completed = before.extend(accel.hash_leaves(entries, self._hasher), self._hasher)
        if after.hashes != head.frontier:
            raise LogInconsistentError("the committed entries do not reproduce the log head", log_id=log_id)
        new_rows: dict[int, dict[int, bytes]] = {}
        for node, digest in completed:
            if node.level % tiles.TILE_HEIGHT == 0:
                new_rows.setdefault(node.level // tiles.TILE_HEIGHT, {})[node.index] = digest
        # Bundles first, then tiles from the bottom up: a reader that finds a tile finds what is under it.
        for ref in tiles.tiles_changed(start, end):
            old = tiles.tile_at(ref.level, ref.index, start)
            if ref.level is None:
                bundle = self._bundle(log_id, ref, old, entries, start)
                self._tiles.write(log_id, ref.path, tiles.encode_bundle(bundle))
                self._remember_edge(log_id, ref, bundle)
            else:
                hashes = self._tile(log_id, ref, old, new_rows.get(ref.level, {}))
                self._tiles.write(log_id, ref.path, tiles.encode_tile(hashes))
                self._remember(log_id, ref, hashes)  # the next append extends this tile: no read back

    def _committed_entries(self, log_id: str, start: int, end: int) -> list[bytes]:
        entries: list[bytes] = []
        for batch in self._store.batches(log_id, start, end):
            first = max(start, batch.start)
            entries.extend(batch.entries[first - batch.start : min(end, batch.end) - batch.start])
        if len(entries) != end - start:
            raise LogInconsistentError("committed batches are missing", log_id=log_id, start=start, end=end)
        return entries

    def _range_at(self, log_id: str, size: int) -> CompactRange:
        """The compact range of the integrated tree of ``size``, read from its tiles."""
        hashes = tuple(self.node_hash(log_id, node, size) for node in merkle.range_nodes(0, size))
        return CompactRange(size, hashes)

    def _bundle(
        self, log_id: str, ref: TileRef, old: TileRef | None, entries: Sequence[bytes], start: int
    ) -> list[bytes]:
        first = ref.index * TILE_WIDTH
        kept = self._read_bundle(log_id, old) if old is not None else []
        fresh_from = first + len(kept)
        fresh = list(entries[fresh_from - start : first + ref.width - start])
        return [*kept, *fresh]

    def _remember_edge(self, log_id: str, ref: TileRef, bundle: list[bytes]) -> None:
        with self._cache_lock:
            self._edges[log_id] = (ref, bundle)
            self._edges.move_to_end(log_id)
            while len(self._edges) > _EDGE_BUNDLES:
                self._edges.popitem(last=False)

    def _read_bundle(self, log_id: str, ref: TileRef) -> list[bytes]:
        with self._cache_lock:
            edge = self._edges.get(log_id)
        if edge is not None and edge[0] == ref:  # a path names immutable content: the copy is exact
            return list(edge[1])
        data = self._tiles.read(log_id, ref.path)
        if data is None:
            raise LogInconsistentError("an integrated entry bundle is missing", path=ref.path)
        return tiles.decode_bundle(data, ref)

    def _tile(self, log_id: str, ref: TileRef, old: TileRef | None, row: dict[int, bytes]) -> list[bytes]:
        first = ref.index * TILE_WIDTH
        kept = self.read_tile(log_id, old) if old is not None else []
        hashes = list(kept)
        for position in range(first + len(kept), first + ref.width):
            if position not in row:
                raise LogInconsistentError("a tile cannot be rebuilt", path=ref.path)
            hashes.append(row[position])
        return hashes

    # --- reading ---------------------------------------------------------------------------------
    def head(self, log_id: str) -> LogHead:
        """The committed head (strongly consistent)."""
        return self._store.head(log_id)

    def read_tile(self, log_id: str, ref: TileRef) -> list[bytes]:
        key = (log_id, ref)  # a ref names its path (level, index, width) without spelling it out
        with self._cache_lock:
            cached = self._cache.get(key)
        if cached is not None:
            return cached
        data = self._tiles.read(log_id, ref.path)
        if data is None:
            raise LogInconsistentError("an integrated tile is missing", path=ref.path)
        hashes = tiles.decode_tile(data, ref)
        self._remember(log_id, ref, hashes)
        return hashes

    def _remember(self, log_id: str, ref: TileRef, hashes: list[bytes]) -> None:
        if self._cache_size:
            with self._cache_lock:
                self._cache[(log_id, ref)] = hashes
                while len(self._cache) > self._cache_size:
                    self._cache.popitem(last=False)

    def node_hash(self, log_id: str, node: NodeID, size: int) -> bytes:
        """The hash of ``node`` in the tree of ``size`` (at most the integrated size), from tiles.

        A tree of any smaller size is read from the tiles of the largest integrated tree known, as
        tlog-tiles readers do: the tile the smaller tree needs is a prefix of the (wider or full) tile
        at the same position, and only that one is sure to exist; a narrower partial tile was written
        only if an append happened to end at its width. Hashes beyond ``size`` are simply not used."""
        widest = max(size, self._seen.get(log_id, 0))
        return tiles.node_hash(node, size, lambda ref: self._tile_prefix(log_id, ref, widest), self._hasher)

    def _tile_prefix(self, log_id: str, ref: TileRef, widest: int) -> list[bytes]:
        """The hashes of ``ref``, read from the tile at its position in the integrated tree of ``widest``."""
        source = tiles.tile_at(ref.level, ref.index, widest)
        if source is None or source.width < ref.width:  # widest >= the size ``ref`` belongs to
            raise LogInconsistentError("a tile is outside the integrated tree", path=ref.path)
        hashes = self.read_tile(log_id, source)
        return hashes if source.width == ref.width else hashes[: ref.width]

    def _integrated_size(self, log_id: str, size: int | None) -> int:
        # ``integrated`` only grows, so a size at or below one already seen needs no read of the head.
        if size is not None and 0 <= size <= self._seen.get(log_id, -1):
            return size
        head = self._head(log_id)
        self._note_integrated(log_id, head.integrated)
        size = head.integrated if size is None else size
        if not 0 <= size <= head.integrated:
            raise InvalidRequestError(
                "the log has no integrated tree of that size", size=size, integrated=head.integrated
            )
        return size

    def note_integrated(self, log_id: str, size: int) -> None:
        """Record that the tree of ``size`` is known to be integrated, as a signed checkpoint of it proves
        (the log signs only integrated trees): reads up to it then need no read of the head. Only for a
        size so proven: a larger one makes reads look for tiles that were never written."""
        if size < 0:
            raise InvalidRequestError("a tree size is not negative")
        self._note_integrated(log_id, size)

    def _note_integrated(self, log_id: str, integrated: int) -> None:
        with self._cache_lock:
            if integrated > self._seen.get(log_id, -1):
                self._seen[log_id] = integrated

    def root(self, log_id: str, size: int | None = None) -> tuple[int, bytes]:
        size = self._integrated_size(log_id, size)
        return size, self._range_at(log_id, size).root(self._hasher)

    def inclusion_proof(self, log_id: str, index: int, size: int | None = None) -> list[bytes]:
        size = self._integrated_size(log_id, size)
        return merkle.assemble(
            merkle.inclusion_plan(index, size), lambda node: self.node_hash(log_id, node, size), self._hasher
        )

    def inclusion_proofs(self, log_id: str, indexes: Sequence[int], size: int) -> list[list[bytes]]:
        """Inclusion proofs of many leaves in one tree: the nodes they share (most of each proof, for
        leaves appended together) are read and hashed once."""
        size = self._integrated_size(log_id, size)
        known: dict[NodeID, bytes] = {}

        def node_hash(node: NodeID) -> bytes:
            digest = known.get(node)
            if digest is None:
                digest = known[node] = self.node_hash(log_id, node, size)
            return digest

        return [merkle.assemble(merkle.inclusion_plan(i, size), node_hash, self._hasher) for i in indexes]

    def consistency_proof(self, log_id: str, old_size: int, new_size: int | None = None) -> list[bytes]:
        new_size = self._integrated_size(log_id, new_size)
        return merkle.assemble(
            merkle.consistency_plan(old_size, new_size),
            lambda node: self.node_hash(log_id, node, new_size),
            self._hasher,
        )

    def entry(self, log_id: str, index: int, size: int) -> bytes:
        """Entry ``index`` of the integrated tree of ``size``, from the entry bundle at its position in
        the largest integrated tree known (as ``node_hash`` reads tiles): one object read."""
        size = self._integrated_size(log_id, size)
        if not 0 <= index < size:
            raise BadIndexError("an entry needs 0 <= index < size", size=size)
        ref = tiles.tile_at(None, index // TILE_WIDTH, max(size, self._seen.get(log_id, 0)))
        if ref is None:  # cannot happen for index < size; a typed refusal all the same
            raise LogInconsistentError("an entry is outside the integrated tree", log_id=log_id)
        return self._read_bundle(log_id, ref)[index % TILE_WIDTH]  # decoding checks the bundle's width

    def entries(self, log_id: str, start: int, end: int) -> list[bytes]:
        """Entries [start, end) of the integrated log, from the entry bundles."""
        size = self._integrated_size(log_id, None)
        if not 0 <= start <= end <= size:
            raise InvalidRequestError(
                "the range is outside the integrated log", start=start, end=end, size=size
            )
        found: list[bytes] = []
        for index in range(start // TILE_WIDTH, -(-end // TILE_WIDTH)):
            ref = tiles.tile_at(None, index, size)
            if ref is None:
                break
            bundle = self._read_bundle(log_id, ref)
            first = index * TILE_WIDTH
            found.extend(bundle[max(start, first) - first : min(end, first + ref.width) - first])
        return found
