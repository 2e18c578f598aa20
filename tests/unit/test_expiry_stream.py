"""TTL deletions from the items table's stream, and the service's purge of the bodies they orphan."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from reliquary.adapters.streams import is_stream_batch, removed_versions
from reliquary.vaults.service import PurgeReport, RemovedVersion
from tests.support.vaults import USER_SCOPE, memory_stack

SAMPLE: dict[str, Any] = json.loads(
    (Path(__file__).parents[2] / "events" / "encrypt" / "stream" / "items_ttl_removed.json").read_text()
)
TRANSCRIPT_V1 = RemovedVersion("acme", "agent-memory", "run-1138-transcript", 1)


def _record(**changes: Any) -> dict[str, Any]:
    record: dict[str, Any] = copy.deepcopy(SAMPLE["Records"][0])
    record.update(changes)
    return record


def _with_keys(pk: str, sk: str) -> dict[str, Any]:
    record = _record()
    record["dynamodb"]["Keys"] = {"pk": {"S": pk}, "sk": {"S": sk}}
    return record


def test_the_sample_batch_names_its_item_version() -> None:
    assert is_stream_batch(SAMPLE)
    assert removed_versions(SAMPLE) == [TRANSCRIPT_V1]


def test_only_well_formed_ttl_removals_count() -> None:
    batch = {
        "Records": [
            _record(eventName="MODIFY"),
            _record(eventName="INSERT"),
            _record(userIdentity={"type": "AssumedRole", "principalId": "someone"}),
            _record(userIdentity=None),
            _with_keys("TENANT#acme#VAULT#agent-memory", "ITEM#x#V#12"),  # version not 10 digits
            _with_keys("TENANT#acme", "ITEM#x#V#0000000001"),  # not an item partition
            _with_keys("TENANT#ac/me#VAULT#v", "ITEM#x#V#0000000001"),  # not a valid id
            _with_keys("SERVICE", "SIGNING#ML-DSA-65"),
            "not a record",
            _record(),
        ]
    }
    assert removed_versions(batch) == [TRANSCRIPT_V1]


def test_requests_are_not_stream_batches() -> None:
    assert not is_stream_batch({"action": "seal", "Records": []})
    assert not is_stream_batch({"Records": "x"})
    assert not is_stream_batch(["Records"])


def test_purge_deletes_bodies_only_of_rows_that_are_really_gone() -> None:
    stack = memory_stack()
    stack.service.create_vault("acme", "v")
    record = stack.service.seal_item("acme", "v", "big", b"x" * 4096, memory_scope=USER_SCOPE)
    assert record.blob_key is not None
    removed = RemovedVersion("acme", "v", "big", 1)

    # A report for a row that still exists (forged, or early) destroys nothing.
    assert stack.service.purge_removed_versions([removed]) == PurgeReport(purged=0, still_present=1)
    assert record.blob_key in stack.blobs

    del stack.items._items[("acme", "v", "big", 1)]  # what DynamoDB's TTL does
    stack.blobs.put(record.blob_key.replace(".bin", "-orphan.bin"), b"a second body of that version")
    assert stack.service.purge_removed_versions([removed]) == PurgeReport(purged=1, still_present=0)
    assert not [key for key in stack.blobs._blobs if "/items/big/" in key]
    # Redelivery is harmless, and nothing of another version or item is touched.
    other = stack.service.seal_item("acme", "v", "big-2", b"y" * 4096, memory_scope=USER_SCOPE)
    assert stack.service.purge_removed_versions([removed]) == PurgeReport(purged=1, still_present=0)
    assert other.blob_key in stack.blobs
