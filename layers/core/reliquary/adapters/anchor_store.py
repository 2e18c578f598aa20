"""The checkpoint anchors' state in the AuditTable (``reliquary.audit.anchor``).

Rows:
- ``pk = LOG#<log id>``, ``sk = ANCHOR``: the log's anchor state (anchored and settled sizes, pending
  confirmations and the intent as JSON, the claim's end, a revision), written only on its revision;
- ``pk = LOG#<log id>``, ``sk = ANCHOR#<tree size:015d>``: where an anchor's records sit in the log
  (the anchor's leaf, its block's leaf once recorded): what ``GET /v1/audit/anchors`` lists, newest
  first, in the tenant's own partition (the reader checks each against the log's entries);
- ``pk = ANCHOR``, ``sk = <log id>``: the logs there are (written with a log's first checkpoint,
  ``DynamoDBLogStore.put_checkpoint``), and ``sk = #cursor``: where ``anchor_due`` goes on (``#`` sorts
  before every log id).
"""

from __future__ import annotations

import json
from typing import Any

from pynamodb.attributes import NumberAttribute, UnicodeAttribute
from pynamodb.exceptions import PynamoDBException
from pynamodb.models import Model
from pynamodb.transactions import TransactWrite

from reliquary.adapters.audit_store import ANCHOR_PARTITION
from reliquary.adapters.dynamodb import TableConfig, bind_model, guarded, translate_error
from reliquary.audit.anchor import AnchorEntry, AnchorState, Intent, Pending
from reliquary.errors import LogInconsistentError

_STATE = "ANCHOR"
_ENTRY_PREFIX = "ANCHOR#"
_CURSOR = "#cursor"
_DIGITS = 15


class AnchorRow(Model):
    class Meta:
        table_name = "unbound"

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    anchored = NumberAttribute(null=True)
    settled = NumberAttribute(null=True)
    pending = UnicodeAttribute(null=True)  # JSON list
    claim_until = NumberAttribute(null=True)
    intent = UnicodeAttribute(null=True)  # JSON object
    revision = NumberAttribute(null=True)
    tree_size = NumberAttribute(null=True)
    log_index = NumberAttribute(null=True)
    confirmed_index = NumberAttribute(null=True)
    after = UnicodeAttribute(null=True)  # the cursor's


def _pk(log_id: str) -> str:
    return f"LOG#{log_id}"


def _entry_sk(tree_size: int) -> str:
    return f"{_ENTRY_PREFIX}{tree_size:0{_DIGITS}d}"


def _count(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError("not a count")
    return value


def _pending(items: object) -> tuple[Pending, ...]:
    if not isinstance(items, list):
        raise TypeError("not a list")
    return tuple(
        Pending(_count(p["tree_size"]), str(p["locator"]), _count(p["log_index"]), _count(p["anchored_at"]))
        for p in items
    )


def _intent(value: object) -> Intent | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise TypeError("not an object")
    return Intent(
        _count(value["tree_size"]),
        str(value["root_hash"]),
        str(value["locator"]),
        str(value["note_sha256"]),
        _count(value["anchored_at"]),
    )


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


class DynamoDBAnchorStore:
    """``AnchorStateStore`` and the anchors' finding aid (``AnchorIndex``) over the AuditTable."""

    def __init__(self, config: TableConfig, client: Any | None = None) -> None:
        self._row = bind_model(AnchorRow, config, client)
        self._connection = self._row._get_connection().connection

    def state(self, log_id: str) -> AnchorState:
        try:
            row = guarded(lambda: self._row.get(_pk(log_id), _STATE, consistent_read=True))
        except self._row.DoesNotExist:
            return AnchorState()
        try:
            return AnchorState(
                anchored=_count(int(row.anchored or 0)),
                settled=_count(int(row.settled or 0)),
                pending=_pending(json.loads(row.pending or "[]")),
                claim_until=_count(int(row.claim_until or 0)),
                intent=_intent(json.loads(row.intent or "null")),
                revision=_count(int(row.revision or 0)),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise LogInconsistentError("a log's anchor state is corrupt", log_id=log_id) from exc

    def save(
        self, log_id: str, state: AnchorState, *, previous: AnchorState, entry: AnchorEntry | None = None
    ) -> None:
        row_cls = self._row
        row = row_cls(
            _pk(log_id),
            _STATE,
            anchored=state.anchored,
            settled=state.settled,
            pending=_json(
                [
                    {
                        "tree_size": p.tree_size,
                        "locator": p.locator,
                        "log_index": p.log_index,
                        "anchored_at": p.anchored_at,
                    }
                    for p in state.pending
                ]
            ),
            claim_until=state.claim_until,
            intent=_json(
                None
                if state.intent is None
                else {
                    "tree_size": state.intent.tree_size,
                    "root_hash": state.intent.root_hash,
                    "locator": state.intent.locator,
                    "note_sha256": state.intent.note_sha256,
                    "anchored_at": state.intent.anchored_at,
                }
            ),
            revision=state.revision,
        )
        condition: Any = (
            row_cls.pk.does_not_exist() if previous.revision == 0 else row_cls.revision == previous.revision
        )
        conflict = "the log's anchor state moved"
        if entry is None:
            guarded(lambda: row.save(condition=condition), conflict)
            return
        found = row_cls(
            _pk(log_id),
            _entry_sk(entry.tree_size),
            tree_size=entry.tree_size,
            log_index=entry.log_index,
            confirmed_index=entry.confirmed_index,
        )
        try:
            with TransactWrite(connection=self._connection) as transaction:
                transaction.save(row, condition=condition)
                transaction.save(found)
        except PynamoDBException as exc:
            translate_error(exc, conflict)

    def anchor_entries(self, log_id: str, *, limit: int) -> list[AnchorEntry]:
        """The log's anchors, newest first, at most ``limit``."""
        rows = guarded(
            lambda: list(
                self._row.query(
                    _pk(log_id),
                    self._row.sk.startswith(_ENTRY_PREFIX),
                    scan_index_forward=False,
                    limit=limit,
                    consistent_read=True,
                )
            )
        )
        found = []
        for row in rows:
            size = int(row.tree_size) if row.tree_size is not None else -1
            if row.sk != _entry_sk(size) or row.log_index is None or int(row.log_index) < 0:
                raise LogInconsistentError("an anchor row is corrupt", log_id=log_id)
            confirmed = None if row.confirmed_index is None else int(row.confirmed_index)
            found.append(AnchorEntry(size, int(row.log_index), confirmed))
        return found

    def register(self, log_id: str) -> None:
        guarded(lambda: self._row(ANCHOR_PARTITION, log_id).save())

    def registered(self, *, after: str | None, limit: int) -> list[str]:
        rows = guarded(
            lambda: list(
                self._row.query(
                    ANCHOR_PARTITION,
                    self._row.sk > (after if after is not None else _CURSOR),
                    limit=limit,
                    consistent_read=True,
                    attributes_to_get=["sk"],
                )
            )
        )
        return [row.sk for row in rows]

    def cursor(self) -> str | None:
        try:
            row = guarded(lambda: self._row.get(ANCHOR_PARTITION, _CURSOR, consistent_read=True))
        except self._row.DoesNotExist:
            return None
        return row.after or None

    def set_cursor(self, after: str | None) -> None:
        guarded(lambda: self._row(ANCHOR_PARTITION, _CURSOR, after=after).save())
