"""Inbound adapter for the items table's DynamoDB stream: which item versions TTL removed.

DynamoDB's TTL deletes an expired item row (and with it the wrapped data key) up to a couple of days
after ``expires_at``; the stream (keys only: no copy of a row's envelope lingers in it) reports each
deletion, and the service then deletes the version's S3 body, once it has seen the row is really gone.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from reliquary.crypto.scope import validate_id
from reliquary.errors import ReliquaryError
from reliquary.vaults.service import RemovedVersion

# A deletion made by the TTL process, not by a caller (AWS documents this identity for TTL deletes).
_TTL_IDENTITY = {"type": "Service", "principalId": "dynamodb.amazonaws.com"}
_PK = re.compile(r"TENANT#([^#]+)#VAULT#([^#]+)")
_SK = re.compile(r"ITEM#([^#]+)#V#(\d{10})")


def is_stream_batch(event: Any) -> bool:
    return isinstance(event, Mapping) and isinstance(event.get("Records"), list) and "action" not in event


def _member(value: Any, *names: str) -> Any:
    """``value[names[0]][names[1]]...``, or None where a level is not an object or lacks the name: a
    stream record is input, and no shape of it may raise."""
    for name in names:
        if not isinstance(value, Mapping):
            return None
        value = value.get(name)
    return value


def _key(record: Any, name: str, pattern: re.Pattern[str]) -> re.Match[str] | None:
    value = _member(record, "dynamodb", "Keys", name, "S")
    return pattern.fullmatch(value) if isinstance(value, str) else None


def _removed(record: Any) -> RemovedVersion | None:
    if _member(record, "eventName") != "REMOVE" or _member(record, "userIdentity") != _TTL_IDENTITY:
        return None
    pk, sk = _key(record, "pk", _PK), _key(record, "sk", _SK)
    if pk is None or sk is None:
        return None
    try:
        return RemovedVersion(
            tenant_id=validate_id("tenant_id", pk.group(1)),
            vault_id=validate_id("vault_id", pk.group(2)),
            item_id=validate_id("item_id", sk.group(1)),
            version=int(sk.group(2)),
        )
    except ReliquaryError:
        return None


def removed_versions(event: Mapping[str, Any]) -> list[RemovedVersion]:
    """The item versions that TTL removed in this batch; any other record is ignored."""
    records = event.get("Records")
    found = (_removed(record) for record in (records if isinstance(records, list) else []))
    return [removed for removed in found if removed is not None]
