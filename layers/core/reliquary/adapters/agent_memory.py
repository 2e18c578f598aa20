"""Agents' sealed memories in DynamoDB (AgentMemoryTable, TTL ``expires_at``).

Rows: ``pk = TENANT#<t>#AGENT#<agent>``, ``sk = P#<principal key>`` with the sealed box and timestamps
only; the wrapped memory key under ``pk = KEY``, ``sk = AGENT-MEMORY``.
"""

from __future__ import annotations

from typing import Any

from pynamodb.attributes import BinaryAttribute, NumberAttribute, UnicodeAttribute
from pynamodb.models import Model

from reliquary.adapters.dynamodb import TableConfig, bind_model, guarded
from reliquary.agents.memory import SealedMemory
from reliquary.errors import LogInconsistentError


class MemoryRow(Model):
    class Meta:
        table_name = "unbound"

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    box = BinaryAttribute(legacy_encoding=False, null=True)
    updated_at = NumberAttribute(null=True)
    expires_at = NumberAttribute(null=True)


class DynamoDBMemoryStore:
    def __init__(self, config: TableConfig, client: Any | None = None) -> None:
        self._row = bind_model(MemoryRow, config, client)

    def get(self, tenant_id: str, agent: str, principal: str) -> SealedMemory | None:
        try:
            row = guarded(
                lambda: self._row.get(
                    f"TENANT#{tenant_id}#AGENT#{agent}", f"P#{principal}", consistent_read=True
                )
            )
        except self._row.DoesNotExist:
            return None
        if not row.box or row.updated_at is None or row.expires_at is None:
            raise LogInconsistentError("a stored agent memory is corrupt", agent=agent)
        return SealedMemory(bytes(row.box), int(row.updated_at), int(row.expires_at))

    def put(self, tenant_id: str, agent: str, principal: str, sealed: SealedMemory) -> None:
        row = self._row(
            f"TENANT#{tenant_id}#AGENT#{agent}",
            f"P#{principal}",
            box=sealed.box,
            updated_at=sealed.updated_at,
            expires_at=sealed.expires_at,
        )
        guarded(row.save)

    def wrapped_key(self) -> bytes | None:
        try:
            row = guarded(lambda: self._row.get("KEY", "AGENT-MEMORY", consistent_read=True))
        except self._row.DoesNotExist:
            return None
        return bytes(row.box) if row.box else None

    def add_wrapped_key(self, wrapped: bytes) -> None:
        row = self._row("KEY", "AGENT-MEMORY", box=wrapped)
        guarded(lambda: row.save(condition=self._row.pk.does_not_exist()), "a memory key exists")
