"""A principal's access history in DynamoDB (HistoryTable, TTL ``expires_at``).

Rows: ``pk = TENANT#<t>#P#<pseudonym>``, ``sk = EVENT#<time:012d>#<event key>``. The principal is named
by its keyed pseudonym (``reliquary.crypto.pseudonym``: the value the audit log and the agents' memories
name it by), so the table never holds a subject, nor anything a dictionary of guessed subjects could be
tested against without the deployment's pseudonym secret. The event key is the first 16 hex digits of the
SHA-256 of the event id (the request id) when one is given, so recording a request again at its time (a
retried task) overwrites its row and the history holds one event per request; without an id it is
random. Rows leave by TTL: history is bounded by design.
"""

from __future__ import annotations

import hashlib
import secrets
from typing import Any

from pynamodb.attributes import NumberAttribute, UnicodeAttribute
from pynamodb.models import Model

from reliquary.adapters.dynamodb import TableConfig, bind_model, guarded
from reliquary.crypto.pseudonym import Pseudonyms
from reliquary.errors import LogInconsistentError
from reliquary.trust.model import AccessEvent

MAX_EVENTS = 1000  # read at most this many recent events per request (scoring needs 30 days at most)


class HistoryRow(Model):
    class Meta:
        table_name = "unbound"

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    event = UnicodeAttribute(null=True)  # the AccessEvent's JSON
    expires_at = NumberAttribute(null=True)


def event_key(event_id: str | None) -> str:
    """The sort key's last part: derived from ``event_id`` (idempotent), random without one."""
    if event_id is None:
        return secrets.token_hex(8)
    return hashlib.sha256(event_id.encode()).hexdigest()[:16]


class DynamoDBHistoryStore:
    def __init__(self, config: TableConfig, client: Any | None = None, *, pseudonyms: Pseudonyms) -> None:
        self._row = bind_model(HistoryRow, config, client)
        self._pseudonyms = pseudonyms

    def _pk(self, tenant_id: str, subject: str) -> str:
        return f"TENANT#{tenant_id}#P#{self._pseudonyms.of(tenant_id, subject)}"

    def recent(self, tenant_id: str, subject: str, *, since: int) -> list[AccessEvent]:
        rows = guarded(
            lambda: list(
                self._row.query(
                    self._pk(tenant_id, subject),
                    self._row.sk >= f"EVENT#{max(0, since):012d}",
                    scan_index_forward=False,  # newest first, so the limit keeps the most recent
                    limit=MAX_EVENTS,
                    consistent_read=True,
                )
            )
        )
        events = []
        for row in reversed(rows):
            if not row.event:
                raise LogInconsistentError("a stored access event is corrupt")
            events.append(AccessEvent.model_validate_json(row.event))
        return events

    def record(
        self,
        tenant_id: str,
        subject: str,
        event: AccessEvent,
        *,
        expires_at: int,
        event_id: str | None = None,
    ) -> None:
        row = self._row(
            self._pk(tenant_id, subject),
            f"EVENT#{event.time:012d}#{event_key(event_id)}",
            event=event.model_dump_json(),
            expires_at=expires_at,
        )
        guarded(row.save)
