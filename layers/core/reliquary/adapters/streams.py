"""Inbound adapter for the items table's DynamoDB stream: which S3 bodies lost their rows to TTL.

DynamoDB's TTL deletes an expired item row (and with it the wrapped data key) up to a couple of days
after ``expires_at``; the stream tells us when, so the row's S3 body, if any, is deleted too.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# A deletion made by the TTL process, not by a caller (AWS documents this identity for TTL deletes).
_TTL_IDENTITY = {"type": "Service", "principalId": "dynamodb.amazonaws.com"}


def is_stream_batch(event: Any) -> bool:
    return isinstance(event, Mapping) and isinstance(event.get("Records"), list) and "action" not in event


def expired_bodies(event: Mapping[str, Any]) -> dict[str, list[str]]:
    """tenant id -> S3 keys of bodies whose rows TTL removed in this batch; other records are ignored."""
    bodies: dict[str, list[str]] = {}
    for record in event.get("Records", []):
        if not isinstance(record, Mapping) or record.get("eventName") != "REMOVE":
            continue
        if record.get("userIdentity") != _TTL_IDENTITY:
            continue
        image = record.get("dynamodb", {}).get("OldImage", {})
        tenant = image.get("tenant_id", {}).get("S")
        blob_key = image.get("blob_key", {}).get("S")
        if isinstance(tenant, str) and isinstance(blob_key, str):
            bodies.setdefault(tenant, []).append(blob_key)
    return bodies
