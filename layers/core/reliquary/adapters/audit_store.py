"""The transparency log's storage: heads, batches and request ids in DynamoDB (AuditTable), tiles, entry
bundles and checkpoints in S3 (AuditBucket, under ``logs/<log id>/``).

AuditTable rows, one partition per log (tenant): ``pk = LOG#<log id>`` and
- ``sk = HEAD``: size, frontier (concatenated 32-byte hashes), integrated, revision;
- ``sk = BATCH#<start:015d>``: the entries committed together (entry-bundle encoding) and their request ids;
- ``sk = REQ#<request id>``: the leaf index of a request (what makes appends idempotent); a decision's
  is ``REQ#decision#<request id>``, in the decisions' own id space (``log.decision_key``);
- ``sk = ITEM#<vault id>#<item id>#<leaf index:015d>``: the per-item index of decision entries
  (``reliquary.audit.index``): the leaf, its request id, decision and time. Ids never hold ``#``, so an
  item's rows are exactly the keys under its prefix, in leaf order;
- ``sk = CHECKPOINT``: the latest published checkpoint (size, signed note), advanced conditionally.
The checkpoint keys live in the same table under ``pk = CHECKPOINT`` (see ``DynamoDBSigningKeyStore``).
A commit is one transaction over the head (conditional on its revision), the batch, the request rows and
the batch's index rows: an index row exists exactly when its entry is committed.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError
from pynamodb.attributes import BinaryAttribute, NumberAttribute, UnicodeAttribute
from pynamodb.exceptions import PynamoDBException, TransactWriteError
from pynamodb.expressions.update import Action
from pynamodb.models import Model
from pynamodb.transactions import TransactWrite

from reliquary.adapters.dynamodb import TableConfig, bind_model, guarded, translate_error
from reliquary.adapters.s3 import IMMUTABLE, get_object_or_none, translate_s3_error
from reliquary.audit import tiles
from reliquary.audit.index import ItemDecision, Outcome
from reliquary.audit.log import MAX_BATCH, Batch, DuplicateRequestError, LogHead
from reliquary.audit.merkle import HASH_SIZE
from reliquary.audit.service import CHECKPOINT_PATH, StoredCheckpoint
from reliquary.errors import ConflictError, LogInconsistentError

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import CompletedPartTypeDef

CHECKPOINT_PARTITION = "CHECKPOINT"  # the checkpoint keys (DynamoDBSigningKeyStore) in the AuditTable
# The logs there are, one row each (``sk = <log id>``), written with a log's first checkpoint: what the
# scheduled anchoring visits (``reliquary.adapters.anchor_store``).
ANCHOR_PARTITION = "ANCHOR"
_BATCH_DIGITS = 15
_JSON_LINES = "application/x-ndjson"


class LogRow(Model):
    class Meta:
        table_name = "unbound"

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    size = NumberAttribute(null=True)
    frontier = BinaryAttribute(legacy_encoding=False, null=True)
    integrated = NumberAttribute(null=True)
    revision = NumberAttribute(null=True)
    start = NumberAttribute(null=True)
    entries = BinaryAttribute(legacy_encoding=False, null=True)
    request_ids = UnicodeAttribute(null=True)  # JSON list
    index = NumberAttribute(null=True)
    note = BinaryAttribute(legacy_encoding=False, null=True)
    request_id = UnicodeAttribute(null=True)  # an index row's: the decision's request id
    decision = UnicodeAttribute(null=True)  # an index row's: approve or deny
    time = NumberAttribute(null=True)  # an index row's: the decision's time (epoch seconds)
    sequenced = NumberAttribute(null=True)  # a batch's: when it was committed (epoch ms; promises carry it)


def _pk(log_id: str) -> str:
    return f"LOG#{log_id}"


def _batch_sk(start: int) -> str:
    return f"BATCH#{start:0{_BATCH_DIGITS}d}"


def _item_prefix(vault_id: str, item_id: str) -> str:
    return f"ITEM#{vault_id}#{item_id}#"


def _item_sk(vault_id: str, item_id: str, index: int) -> str:
    return f"{_item_prefix(vault_id, item_id)}{index:0{_BATCH_DIGITS}d}"


def _encode_entries(entries: Sequence[bytes]) -> bytes:
    # The entry-bundle framing (u16 length prefixes), without the 256-entry limit of a bundle.
    return b"".join(len(e).to_bytes(2, "big") + e for e in entries)


def _decode_entries(data: bytes, count: int) -> tuple[bytes, ...]:
    entries, position = [], 0
    while position < len(data):
        length = int.from_bytes(data[position : position + 2], "big")
        entries.append(data[position + 2 : position + 2 + length])
        position += 2 + length
    if position != len(data) or len(entries) != count:
        raise LogInconsistentError("a committed batch is corrupt")
    return tuple(entries)


class DynamoDBLogStore:
    def __init__(self, config: TableConfig, client: Any | None = None) -> None:
        self._row = bind_model(LogRow, config, client)
        self._connection = self._row._get_connection().connection

    def head(self, log_id: str) -> LogHead:
        try:
            row = guarded(lambda: self._row.get(_pk(log_id), "HEAD", consistent_read=True))
        except self._row.DoesNotExist:
            return LogHead()
        frontier = row.frontier or b""
        if len(frontier) % HASH_SIZE:
            raise LogInconsistentError("a log head is corrupt", log_id=log_id)
        return LogHead(
            size=int(row.size or 0),
            frontier=tuple(frontier[i : i + HASH_SIZE] for i in range(0, len(frontier), HASH_SIZE)),
            integrated=int(row.integrated or 0),
            revision=int(row.revision or 0),
        )

    def commit(self, log_id: str, *, expected_revision: int, head: LogHead, batch: Batch) -> None:
        row_cls = self._row
        head_row = row_cls(_pk(log_id), "HEAD")
        # An update, not a put: ``integrated`` of a head that exists is left as it is (only
        # mark_integrated and put_checkpoint raise it), so a commit never lowers it.
        head_actions: list[Action] = [
            row_cls.size.set(head.size),
            row_cls.frontier.set(b"".join(head.frontier)),
            row_cls.revision.set(head.revision),
            row_cls.integrated.set(row_cls.integrated | head.integrated),  # if_not_exists
        ]
        head_condition: Any = (
            row_cls.pk.does_not_exist() if expected_revision == 0 else row_cls.revision == expected_revision
        )
        batch_row = row_cls(
            _pk(log_id),
            _batch_sk(batch.start),
            start=batch.start,
            entries=_encode_entries(batch.entries),
            # UTF-8 and compact, as log.batch_bytes counts them (older rows, \u-escaped, read the same).
            request_ids=json.dumps(list(batch.request_ids), ensure_ascii=False, separators=(",", ":")),
            sequenced=batch.sequenced_at_ms,
        )
        request_rows = [
            row_cls(_pk(log_id), f"REQ#{request_id}", index=batch.start + offset)
            for offset, request_id in enumerate(batch.request_ids)
        ]
        index_rows = [
            row_cls(
                _pk(log_id),
                _item_sk(ref.vault_id, ref.item_id, index),
                index=index,
                request_id=ref.request_id,
                decision=ref.decision,
                time=ref.time,
            )
            for index, ref in batch.indexed
        ]
        try:
            with TransactWrite(connection=self._connection) as transaction:
                transaction.save(batch_row, condition=row_cls.pk.does_not_exist())
                for row in (*request_rows, *index_rows):
                    transaction.save(row, condition=row_cls.pk.does_not_exist())
                transaction.update(head_row, actions=head_actions, condition=head_condition)
        except TransactWriteError as exc:
            # The transaction lists puts before updates: the batch, the request rows, the index rows,
            # then the head.
            reasons = [r.code if r is not None else None for r in exc.cancellation_reasons]
            failed = "ConditionalCheckFailed"
            if reasons[-1:] == [failed] or reasons[:1] == [failed]:
                raise ConflictError("the log head moved", log_id=log_id) from exc
            if failed in reasons[1 : 1 + len(request_rows)]:
                raise DuplicateRequestError("a request id is already in the log", log_id=log_id) from exc
            if failed in reasons[1 + len(request_rows) : -1]:
                # Leaves past the head have no rows: one there was written by something other than a commit.
                raise LogInconsistentError(
                    "an index row exists for a leaf not yet logged", log_id=log_id
                ) from exc
            translate_error(exc, "the log head moved")

    def indexes(self, log_id: str, request_ids: Sequence[str]) -> dict[str, int]:
        keys = [(_pk(log_id), f"REQ#{request_id}") for request_id in request_ids]
        found: dict[str, int] = {}
        try:
            for row in self._row.batch_get(keys, consistent_read=True):
                found[row.sk.removeprefix("REQ#")] = int(row.index or 0)
        except PynamoDBException as exc:
            translate_error(exc, "conflicting read")
        return found

    def index(self, log_id: str, request_id: str) -> int | None:
        """The leaf index of one request id (as the log was given it: ``log.decision_key`` for a
        decision); None if it was never committed. One GetItem (a grant's lookup of its decision needs no
        BatchGetItem permission)."""
        try:
            row = guarded(lambda: self._row.get(_pk(log_id), f"REQ#{request_id}", consistent_read=True))
        except self._row.DoesNotExist:
            return None
        if row.index is None or int(row.index) < 0:
            raise LogInconsistentError("a request id row is corrupt", log_id=log_id)
        return int(row.index)

    def batches(self, log_id: str, start: int, end: int) -> list[Batch]:
        if start >= end:
            return []
        rows = guarded(
            lambda: list(
                self._row.query(
                    _pk(log_id),
                    # A batch holds at most MAX_BATCH entries: none that starts earlier reaches `start`.
                    self._row.sk.between(_batch_sk(max(0, start - MAX_BATCH + 1)), _batch_sk(end - 1)),
                    scan_index_forward=False,
                    consistent_read=True,
                )
            )
        )
        found: list[Batch] = []
        for row in rows:  # newest first: stop at the first batch that ends before `start`
            ids = tuple(json.loads(row.request_ids or "[]"))
            entries = _decode_entries(row.entries or b"", len(ids))
            batch = Batch(int(row.start or 0), entries, ids, sequenced_at_ms=int(row.sequenced or 0))
            if batch.end <= start:
                break
            found.append(batch)
        found.reverse()
        return found

    def item_decisions(
        self, log_id: str, vault_id: str, item_id: str, *, first: int, end: int, limit: int
    ) -> list[ItemDecision]:
        if first >= end or limit < 1:
            return []
        prefix = _item_prefix(vault_id, item_id)
        rows = guarded(
            lambda: list(
                self._row.query(
                    _pk(log_id),
                    self._row.sk.between(
                        _item_sk(vault_id, item_id, first), _item_sk(vault_id, item_id, end - 1)
                    ),
                    limit=limit,
                    consistent_read=True,
                )
            )
        )
        found: list[ItemDecision] = []
        for row in rows:
            index = int(row.index) if row.index is not None else -1
            if (
                row.sk != prefix + f"{index:0{_BATCH_DIGITS}d}"
                or row.decision not in ("approve", "deny")
                or not row.request_id
                or row.time is None
            ):
                raise LogInconsistentError("a decision index row is corrupt", log_id=log_id)
            decision: Outcome = "approve" if row.decision == "approve" else "deny"
            found.append(ItemDecision(index, row.request_id, decision, int(row.time)))
        return found

    def mark_integrated(self, log_id: str, size: int) -> None:
        head_row, row_cls = self._row(_pk(log_id), "HEAD"), self._row
        # Another integrator may have got there first (or further): then there is nothing to do.
        with contextlib.suppress(ConflictError):
            guarded(
                lambda: head_row.update(
                    actions=[row_cls.integrated.set(size)],
                    condition=(row_cls.integrated < size) & (row_cls.size >= size),
                ),
                "already integrated",
            )

    def latest_checkpoint(self, log_id: str) -> StoredCheckpoint | None:
        try:
            row = guarded(lambda: self._row.get(_pk(log_id), "CHECKPOINT", consistent_read=True))
        except self._row.DoesNotExist:
            return None
        if row.size is None or not row.note:
            raise LogInconsistentError("a stored checkpoint is corrupt", log_id=log_id)
        return StoredCheckpoint(int(row.size), bytes(row.note))

    def put_checkpoint(
        self, log_id: str, checkpoint: StoredCheckpoint, *, previous: StoredCheckpoint | None
    ) -> None:
        """One transaction: the checkpoint (only if the latest is still exactly ``previous``) and the
        head's ``integrated`` raised to its size (a checkpoint is signed only over an integrated tree),
        which saves the integrator a write of its own. A log's first checkpoint also lists the log in
        the ``ANCHOR`` partition, once (the scheduled anchoring visits the logs listed there)."""
        row_cls = self._row
        row = row_cls(_pk(log_id), "CHECKPOINT", size=checkpoint.size, note=checkpoint.note)
        listed = row_cls(ANCHOR_PARTITION, log_id) if previous is None else None
        condition: Any = (
            row_cls.pk.does_not_exist()
            if previous is None
            else (row_cls.size == previous.size) & (row_cls.note == previous.note)
        )
        head_row = row_cls(_pk(log_id), "HEAD")
        try:
            with TransactWrite(connection=self._connection) as transaction:
                transaction.save(row, condition=condition)
                transaction.update(
                    head_row,
                    actions=[row_cls.integrated.set(checkpoint.size)],
                    condition=(row_cls.size >= checkpoint.size) & (row_cls.integrated <= checkpoint.size),
                )
                if listed is not None:
                    transaction.save(listed)
        except TransactWriteError as exc:
            reasons = [r.code if r is not None else None for r in exc.cancellation_reasons]
            failed = "ConditionalCheckFailed"
            if reasons[:1] == [failed]:
                raise ConflictError("the latest checkpoint moved", log_id=log_id) from exc
            if reasons[1:2] != [failed]:
                translate_error(exc, "the latest checkpoint moved")
            # The head is integrated further already (an integrator recorded it): the checkpoint alone.
            guarded(lambda: row.save(condition=condition), "the latest checkpoint moved")
            if listed is not None:
                guarded(listed.save)


class S3TileStore:
    """Tiles, bundles and checkpoints: ``logs/<log id>/<c2sp path>``."""

    def __init__(self, client: S3Client, bucket: str) -> None:
        self._client = client
        self._bucket = bucket

    @staticmethod
    def key(log_id: str, path: str) -> str:
        return f"logs/{log_id}/{path}"

    def read(self, log_id: str, path: str) -> bytes | None:
        return get_object_or_none(self._client, self._bucket, self.key(log_id, path))

    def write(self, log_id: str, path: str, data: bytes) -> None:
        key = self.key(log_id, path)
        if path == CHECKPOINT_PATH:  # the one object that changes: always revalidated
            content_type, cache = "text/plain; charset=utf-8", "no-cache"
        else:
            # Every tile and bundle, partial ones included, is immutable: a partial one's path names its
            # width (``.p/<W>``), and a wider one gets a new path. Let caches keep them.
            tiles.parse_path(path)  # InvalidRequestError for anything but the checkpoint or a tile path
            content_type, cache = "application/octet-stream", IMMUTABLE
        try:
            self._client.put_object(
                Bucket=self._bucket, Key=key, Body=data, ContentType=content_type, CacheControl=cache
            )
        except (ClientError, BotoCoreError) as exc:
            raise translate_s3_error(exc, key) from exc


class S3ExportSink:
    """Exports in the audit bucket, streamed: one PUT when small, a multipart upload when not."""

    PART_SIZE = 8 * 1024 * 1024  # S3 parts are at least 5 MiB (but the last)

    def __init__(self, client: S3Client, bucket: str) -> None:
        self._client = client
        self._bucket = bucket

    def write_stream(self, key: str, chunks: Iterable[bytes]) -> int:
        buffer, total, upload_id = bytearray(), 0, ""
        parts: list[CompletedPartTypeDef] = []
        try:
            for chunk in chunks:
                buffer += chunk
                total += len(chunk)
                if len(buffer) >= self.PART_SIZE:
                    if not upload_id:
                        upload_id = self._client.create_multipart_upload(
                            Bucket=self._bucket, Key=key, ContentType=_JSON_LINES
                        )["UploadId"]
                    parts.append(self._part(key, upload_id, len(parts) + 1, bytes(buffer)))
                    buffer.clear()
            if not upload_id:
                self._client.put_object(
                    Bucket=self._bucket, Key=key, Body=bytes(buffer), ContentType=_JSON_LINES
                )
                return total
            if buffer:
                parts.append(self._part(key, upload_id, len(parts) + 1, bytes(buffer)))
            self._client.complete_multipart_upload(
                Bucket=self._bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}
            )
        except (ClientError, BotoCoreError) as exc:
            if upload_id:  # leave no orphaned parts behind (they are billed)
                with contextlib.suppress(ClientError, BotoCoreError):
                    self._client.abort_multipart_upload(Bucket=self._bucket, Key=key, UploadId=upload_id)
            raise translate_s3_error(exc, key) from exc
        return total

    def _part(self, key: str, upload_id: str, number: int, data: bytes) -> CompletedPartTypeDef:
        response = self._client.upload_part(
            Bucket=self._bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=data
        )
        return {"PartNumber": number, "ETag": response["ETag"]}
