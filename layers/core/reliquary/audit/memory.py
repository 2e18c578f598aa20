"""In-memory implementations of the log's ports, with the same contracts as DynamoDB and S3 (for unit
tests, benchmarks and fault injection)."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from dataclasses import replace

from reliquary.audit.anchor import AnchorEntry, AnchorState
from reliquary.audit.index import ItemDecision
from reliquary.audit.log import Batch, DuplicateRequestError, LogHead
from reliquary.audit.service import StoredCheckpoint
from reliquary.errors import ConflictError, LogInconsistentError


class InMemoryLogStore:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._heads: dict[str, LogHead] = {}
        self._batches: dict[str, list[Batch]] = {}
        self._indexes: dict[str, dict[str, int]] = {}
        self._checkpoints: dict[str, StoredCheckpoint] = {}
        # log id -> (vault id, item id) -> leaf index -> the decision's index row
        self.decisions: dict[str, dict[tuple[str, str], dict[int, ItemDecision]]] = {}
        self.commits = 0  # round trips that advanced a head (for benchmarks)

    def head(self, log_id: str) -> LogHead:
        return self._heads.get(log_id, LogHead())

    def commit(self, log_id: str, *, expected_revision: int, head: LogHead, batch: Batch) -> None:
        with self._lock:
            current = self.head(log_id)
            if current.revision != expected_revision:
                raise ConflictError("the log head moved", log_id=log_id)
            known = self._indexes.setdefault(log_id, {})
            if any(request_id in known for request_id in batch.request_ids):
                raise DuplicateRequestError("a request id is already in the log", log_id=log_id)
            items = self.decisions.setdefault(log_id, {})
            if any(index in items.get((r.vault_id, r.item_id), {}) for index, r in batch.indexed):
                raise LogInconsistentError("an index row exists for a leaf not yet logged", log_id=log_id)
            # As the DynamoDB commit: a head that exists keeps its ``integrated`` (only raised apart).
            self._heads[log_id] = replace(head, integrated=current.integrated) if current.revision else head
            self._batches.setdefault(log_id, []).append(batch)
            for offset, request_id in enumerate(batch.request_ids):
                known[request_id] = batch.start + offset
            for index, ref in batch.indexed:
                row = ItemDecision(index, ref.request_id, ref.decision, ref.time)
                items.setdefault((ref.vault_id, ref.item_id), {})[index] = row
            self.commits += 1

    def indexes(self, log_id: str, request_ids: Sequence[str]) -> dict[str, int]:
        known = self._indexes.get(log_id, {})
        return {request_id: known[request_id] for request_id in request_ids if request_id in known}

    def batches(self, log_id: str, start: int, end: int) -> list[Batch]:
        return [b for b in self._batches.get(log_id, []) if b.end > start and b.start < end]

    def mark_integrated(self, log_id: str, size: int) -> None:
        with self._lock:
            current = self.head(log_id)
            if size > current.integrated:
                self._heads[log_id] = replace(current, integrated=min(size, current.size))

    def item_decisions(
        self, log_id: str, vault_id: str, item_id: str, *, first: int, end: int, limit: int
    ) -> list[ItemDecision]:
        rows = self.decisions.get(log_id, {}).get((vault_id, item_id), {})
        return [rows[i] for i in sorted(rows) if first <= i < end][:limit]

    def latest_checkpoint(self, log_id: str) -> StoredCheckpoint | None:
        return self._checkpoints.get(log_id)

    def listed_logs(self) -> list[str]:
        """The logs with a checkpoint, in id order (as DynamoDB lists them in the ``ANCHOR`` partition)."""
        return sorted(self._checkpoints)

    def put_checkpoint(
        self, log_id: str, checkpoint: StoredCheckpoint, *, previous: StoredCheckpoint | None
    ) -> None:
        with self._lock:
            if self._checkpoints.get(log_id) != previous:
                raise ConflictError("the latest checkpoint moved", log_id=log_id)
            self._checkpoints[log_id] = checkpoint
            head = self.head(log_id)
            if head.integrated < checkpoint.size <= head.size:  # only integrated trees are signed
                self._heads[log_id] = replace(head, integrated=checkpoint.size)


class InMemoryTileStore:
    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], bytes] = {}
        self.writes = 0

    def read(self, log_id: str, path: str) -> bytes | None:
        return self.objects.get((log_id, path))

    def write(self, log_id: str, path: str, data: bytes) -> None:
        self.objects[(log_id, path)] = bytes(data)
        self.writes += 1


class InMemoryExportSink:
    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}

    def write_stream(self, key: str, chunks: Iterable[bytes]) -> int:
        data = b"".join(chunks)
        self.objects[key] = data
        return len(data)


class InMemoryAnchorStore:
    """The anchors' state, rows and log list, as ``reliquary.adapters.anchor_store`` keeps them; the logs
    are those of ``logs`` with a checkpoint, and those registered here."""

    def __init__(self, logs: InMemoryLogStore) -> None:
        self._lock = threading.Lock()
        self._logs = logs
        self._states: dict[str, AnchorState] = {}
        self.entries: dict[str, dict[int, AnchorEntry]] = {}
        self._registered: set[str] = set()
        self._cursor: str | None = None
        self.saves = 0

    def state(self, log_id: str) -> AnchorState:
        return self._states.get(log_id, AnchorState())

    def save(
        self, log_id: str, state: AnchorState, *, previous: AnchorState, entry: AnchorEntry | None = None
    ) -> None:
        with self._lock:
            if self.state(log_id).revision != previous.revision:
                raise ConflictError("the log's anchor state moved", log_id=log_id)
            self._states[log_id] = state
            if entry is not None:
                self.entries.setdefault(log_id, {})[entry.tree_size] = entry
            self.saves += 1

    def anchor_entries(self, log_id: str, *, limit: int) -> list[AnchorEntry]:
        found = self.entries.get(log_id, {})
        return [found[size] for size in sorted(found, reverse=True)][:limit]

    def register(self, log_id: str) -> None:
        self._registered.add(log_id)

    def registered(self, *, after: str | None, limit: int) -> list[str]:
        logs = sorted(self._registered | set(self._logs.listed_logs()))
        return [log_id for log_id in logs if after is None or log_id > after][:limit]

    def cursor(self) -> str | None:
        return self._cursor

    def set_cursor(self, after: str | None) -> None:
        self._cursor = after
