"""The per-item index of decision entries: which leaves of a tenant's log decide on one item.

Each decision entry gets one index row, written by the same commit as the entry itself (``LogStore.commit``
takes them with the batch), so the index never names a leaf the log does not hold, and every decision
committed since the index exists has its row. A row is a finding aid, not evidence: it names the leaf,
the request, the outcome and the time, and the entry at that leaf, with its inclusion proof against a
signed checkpoint, is what an auditor checks (``AuditReader.entry``).

Pages are read in log order. Their cursor is opaque to callers, and bound to the tenant, vault and item
it was issued for: a cursor decoded for any other is refused, so no cursor pages into another item's
decisions, let alone another tenant's.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass
from typing import Final, Literal, Protocol

from reliquary.errors import InvalidRequestError

MAX_PAGE: Final = 100  # decisions per page
MAX_CURSOR_CHARS: Final = 1024  # three ids of 128 characters and a leaf index, in base64url, fit easily
_CURSOR_ALPHABET = re.compile(r"[A-Za-z0-9_-]+", re.ASCII)
_CURSOR_KEYS = frozenset({"t", "v", "i", "a"})

Outcome = Literal["approve", "deny"]


@dataclass(frozen=True, slots=True)
class DecisionRef:
    """What the index says of a decision entry, given to the log with the entry (it knows the leaf)."""

    vault_id: str
    item_id: str
    request_id: str
    decision: Outcome
    time: int


@dataclass(frozen=True, slots=True)
class ItemDecision:
    """One row of an item's decisions: the leaf index of the entry, and what the entry decided."""

    index: int
    request_id: str
    decision: Outcome
    time: int

    def to_dict(self) -> dict[str, object]:
        return {
            "index": self.index,
            "request_id": self.request_id,
            "decision": self.decision,
            "time": self.time,
        }


@dataclass(frozen=True, slots=True)
class DecisionPage:
    """A page of an item's decisions in log order; ``cursor`` continues it (None: nothing more yet)."""

    decisions: tuple[ItemDecision, ...]
    cursor: str | None


class DecisionIndex(Protocol):
    """The index's read side (DynamoDB: rows of the log's partition)."""

    def item_decisions(
        self, log_id: str, vault_id: str, item_id: str, *, first: int, end: int, limit: int
    ) -> list[ItemDecision]:
        """The item's rows with ``first <= index < end``, in ascending leaf order, at most ``limit``."""


def encode_cursor(tenant_id: str, vault_id: str, item_id: str, after: int) -> str:
    """The cursor that continues an item's decisions after leaf ``after``."""
    value = {"t": tenant_id, "v": vault_id, "i": item_id, "a": after}
    raw = json.dumps(value, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def decode_cursor(cursor: str, tenant_id: str, vault_id: str, item_id: str) -> int:
    """The leaf a cursor continues after; ``InvalidRequestError`` for anything but a cursor issued for
    this tenant, vault and item (one message for every case: the cursor is the caller's input)."""
    refused = InvalidRequestError("the cursor is not one issued for this item's decisions", field="cursor")
    if (
        not isinstance(cursor, str)
        or len(cursor) > MAX_CURSOR_CHARS
        or not _CURSOR_ALPHABET.fullmatch(cursor)
    ):
        raise refused
    try:
        value = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError):  # ValueError covers JSON and UTF-8 decoding
        raise refused from None
    if not isinstance(value, dict) or value.keys() != _CURSOR_KEYS:
        raise refused
    after = value["a"]
    if (value["t"], value["v"], value["i"]) != (tenant_id, vault_id, item_id):
        raise refused
    if isinstance(after, bool) or not isinstance(after, int) or after < 0:
        raise refused
    return after
