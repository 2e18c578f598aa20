"""TTL deletions from the items table's stream, and the service's purge of the bodies they orphan."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from reliquary.adapters.streams import expired_bodies, is_stream_batch
from reliquary.errors import InvalidRequestError
from tests.support.vaults import USER_SCOPE, memory_stack

SAMPLE: dict[str, Any] = json.loads(
    (Path(__file__).parents[2] / "events" / "encrypt" / "stream" / "items_ttl_removed.json").read_text()
)
BLOB = SAMPLE["Records"][0]["dynamodb"]["OldImage"]["blob_key"]["S"]


def _record(**changes: Any) -> dict[str, Any]:
    record: dict[str, Any] = copy.deepcopy(SAMPLE["Records"][0])
    record.update(changes)
    return record


def test_the_sample_batch_names_its_body() -> None:
    assert is_stream_batch(SAMPLE)
    assert expired_bodies(SAMPLE) == {"acme": [BLOB]}


def test_only_ttl_removals_of_rows_with_a_body_count() -> None:
    inline_row = _record()
    del inline_row["dynamodb"]["OldImage"]["blob_key"]
    batch = {
        "Records": [
            _record(eventName="MODIFY"),
            _record(eventName="INSERT"),
            _record(userIdentity={"type": "AssumedRole", "principalId": "someone"}),
            _record(userIdentity=None),
            inline_row,
            "not a record",
            _record(),
        ]
    }
    assert expired_bodies(batch) == {"acme": [BLOB]}


def test_requests_are_not_stream_batches() -> None:
    assert not is_stream_batch({"action": "seal", "Records": []})
    assert not is_stream_batch({"Records": "x"})
    assert not is_stream_batch(["Records"])


def test_purge_deletes_the_bodies_of_the_tenant_only() -> None:
    stack = memory_stack()
    stack.service.create_vault("acme", "v")
    record = stack.service.seal_item("acme", "v", "big", b"x" * 4096, memory_scope=USER_SCOPE)
    assert record.blob_key is not None
    assert record.blob_key in stack.blobs
    with pytest.raises(InvalidRequestError, match="prefix"):
        stack.service.purge_deleted_bodies("globex", [record.blob_key])
    with pytest.raises(InvalidRequestError, match="prefix"):
        stack.service.purge_deleted_bodies("acme", ["tenants/acme/../globex/x.bin"])
    assert record.blob_key in stack.blobs  # a refused batch deletes nothing
    assert stack.service.purge_deleted_bodies("acme", [record.blob_key]) == 1
    assert record.blob_key not in stack.blobs
    with pytest.raises(InvalidRequestError):
        stack.service.purge_deleted_bodies("bad#tenant", [])
