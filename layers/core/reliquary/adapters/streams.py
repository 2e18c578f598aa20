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


def _removed(record: Any) -> RemovedVersion | None:
    if not isinstance(record, Mapping) or record.get("eventName") != "REMOVE":
        return None
    if record.get("userIdentity") != _TTL_IDENTITY:
        return None
    keys = record.get("dynamodb", {}).get("Keys", {})
    pk = _PK.fullmatch(str(keys.get("pk", {}).get("S", "")))
    sk = _SK.fullmatch(str(keys.get("sk", {}).get("S", "")))
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
    found = (_removed(record) for record in event.get("Records", []))
    return [removed for removed in found if removed is not None]
