"""Checkpoints anchored on the real local nodes (js-ipfs, arlocal), with the log, its anchor state and the
reader on moto: the stored body is the signed note, the anchor is in the log, Arweave blocks are recorded
once mined, a node down records nothing, racing runs anchor once, and the reader (the API's) lists them."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from typing import Any

import pytest

from functions.audit_append import app
from infra.local.nodes import LocalNodes, free_port
from reliquary.adapters.anchor_store import DynamoDBAnchorStore
from reliquary.adapters.arweave import ArweaveStore
from reliquary.adapters.arweave_status import ArweaveBlocks
from reliquary.adapters.audit_factory import build_audit
from reliquary.adapters.audit_reader import build_audit_reader
from reliquary.adapters.clients import table_config
from reliquary.adapters.ipfs import IpfsStore
from reliquary.audit.anchor import AnchorRun, CheckpointAnchorer
from reliquary.audit.checkpoint import open_checkpoint
from reliquary.audit.note import Policy
from reliquary.audit.records import CheckpointAnchorConfirmedRecord, CheckpointAnchorRecord, decode_record
from reliquary.audit.service import AuditService
from reliquary.errors import StorageUnavailableError
from reliquary.vaults.arweave_tx import b64url_decode
from reliquary.vaults.permanent import PermanentBackend, PermanentRef
from tests.support.audit import deletion
from tests.support.aws import AwsStack
from tests.support.nodes import LATENCIES, arweave_get

pytestmark = [pytest.mark.xdist_group("permanent-nodes")]
TENANT = "acme"


def _anchorer(
    aws: AwsStack, service: AuditService, store: Any, backend: PermanentBackend, blocks: Any = None
) -> CheckpointAnchorer:
    states = DynamoDBAnchorStore(table_config(aws.settings, aws.settings.audit_table), aws.dynamodb)
    return CheckpointAnchorer(service, states, store, backend, blocks=blocks, clock=lambda: int(time.time()))


def _records(service: AuditService) -> list[Any]:
    size = service.checkpoint(TENANT).size
    return [decode_record(e) for e in service.entries(TENANT, 0, size)]


def _opens(service: AuditService, note: bytes) -> int:
    checkpoint = open_checkpoint(
        note, service.verifiers, origin=service.origin(TENANT), required=Policy.all_of(*service.verifiers)
    )
    return checkpoint.size


def _handle(event: dict[str, Any], runtime: Any) -> dict[str, Any]:
    answer = app.handle(event, runtime)
    assert answer["status"] == "ok", answer
    result: dict[str, Any] = answer["result"]
    return result


def test_anchors_on_ipfs_through_the_audit_append_handler(
    aws: AwsStack, ipfs: IpfsStore, nodes: LocalNodes
) -> None:
    update = {"audit_anchor_backend": "ipfs", "ipfs_api_url": nodes.ipfs.url}
    settings = aws.settings.model_copy(update=update)
    runtime = build_audit(settings)
    runtime.service.append(TENANT, [deletion("r-1"), deletion("r-2")])
    note = runtime.service.checkpoint(TENANT).note
    with LATENCIES.measure("anchor (ipfs, moto)", len(note)):
        answer = _handle({"action": "anchor", "tenant_id": TENANT}, runtime)
    anchored = answer["anchored"]
    assert (anchored["tree_size"], anchored["backend"], anchored["log_index"]) == (2, "ipfs", 2)
    # The node serves the signed note, byte for byte, and it opens with the log's verifier keys.
    ref = PermanentRef(PermanentBackend.IPFS, anchored["locator"], len(note), hashlib.sha256(note).digest())
    body = ipfs.get(ref)
    assert body == note
    assert _opens(runtime.service, body) == 2
    record = _records(runtime.service)[2]
    assert isinstance(record, CheckpointAnchorRecord)
    assert (record.locator, record.note_sha256) == (anchored["locator"], hashlib.sha256(note).hexdigest())
    # Idle: nothing more; grown: anchored again.
    assert _handle({"action": "anchor", "tenant_id": TENANT}, runtime)["anchored"] is None
    runtime.service.append(TENANT, [deletion("r-3")])
    again = _handle({"action": "anchor_due"}, runtime)["anchored"]
    assert [(a["tenant_id"], a["tree_size"]) for a in again] == [(TENANT, 4)]
    # The API's reader lists both, newest first, from the records in the log.
    listed = build_audit_reader(settings).anchors(TENANT)
    assert [(a.tree_size, a.log_index, a.block) for a in listed] == [(4, 4, None), (2, 2, None)]


def test_an_arweave_anchor_and_its_block_once_mined(
    aws: AwsStack, arweave: ArweaveStore, nodes: LocalNodes
) -> None:
    service = build_audit(aws.settings).service
    anchorer = _anchorer(aws, service, arweave, PermanentBackend.ARWEAVE, ArweaveBlocks(nodes.arweave.url))
    service.append(TENANT, [deletion("r-1")])
    note = service.checkpoint(TENANT).note
    with LATENCIES.measure("anchor (arweave, moto)", len(note)):
        anchored = anchorer.anchor(TENANT).anchored
    assert anchored is not None
    ref = PermanentRef(PermanentBackend.ARWEAVE, anchored.locator, len(note), hashlib.sha256(note).digest())
    assert arweave.get(ref) == note
    tags = json.loads(arweave_get(nodes.arweave.url, f"/tx/{anchored.locator}"))["tags"]
    assert [(b64url_decode(t["name"]), b64url_decode(t["value"])) for t in tags] == [
        (b"Content-Type", b"text/plain; charset=utf-8"),
        (b"App-Name", b"RELIQUARY"),
        (b"Reliquary-Format", b"reliquary-checkpoint-anchor/v1"),
        (b"Reliquary-Origin", service.origin(TENANT).encode()),
        (b"Reliquary-Tree-Size", b"1"),
    ]
    assert anchorer.anchor(TENANT).confirmed == ()  # not mined yet
    arweave_get(nodes.arweave.url, "/mine")
    status = json.loads(arweave_get(nodes.arweave.url, f"/tx/{anchored.locator}/status"))
    (confirmation,) = anchorer.anchor(TENANT).confirmed
    assert (confirmation.block.height, confirmation.block.hash) == (
        status["block_height"],
        status["block_indep_hash"],
    )
    record = _records(service)[confirmation.log_index]
    assert isinstance(record, CheckpointAnchorConfirmedRecord)
    assert (record.locator, record.block_hash) == (anchored.locator, status["block_indep_hash"])
    assert anchorer.anchor(TENANT) == AnchorRun(TENANT, None, ())  # nothing left to do
    (listed,) = build_audit_reader(aws.settings).anchors(TENANT)
    assert (listed.locator, listed.block) == (anchored.locator, confirmation.block)


def test_a_node_down_is_transient_and_records_nothing(aws: AwsStack, ipfs: IpfsStore) -> None:
    service = build_audit(aws.settings).service
    service.append(TENANT, [deletion("r-1")])
    size = service.checkpoint(TENANT).size
    down = IpfsStore(f"http://127.0.0.1:{free_port()}", timeout=2)
    with pytest.raises(StorageUnavailableError) as unavailable:
        _anchorer(aws, service, down, PermanentBackend.IPFS).anchor(TENANT)
    assert unavailable.value.retryable
    assert service.checkpoint(TENANT).size == size
    assert build_audit_reader(aws.settings).anchors(TENANT) == []
    # The next run, with the node back, anchors (the failed run's claim was released).
    assert _anchorer(aws, service, ipfs, PermanentBackend.IPFS).anchor(TENANT).anchored is not None


def test_racing_runs_anchor_once(aws: AwsStack, arweave: ArweaveStore, nodes: LocalNodes) -> None:
    service = build_audit(aws.settings).service
    service.append(TENANT, [deletion("r-1")])
    posted: list[str] = []

    class Counting:
        def put(self, body: bytes, *, tags: tuple[tuple[str, str], ...] = ()) -> PermanentRef:
            ref = arweave.put(body, tags=tags)
            posted.append(ref.locator)
            return ref

    blocks = ArweaveBlocks(nodes.arweave.url)
    runs: list[AnchorRun] = []
    barrier = threading.Barrier(4)

    def run() -> None:
        # Each run has its own service (another container), over the same table and nodes.
        service = build_audit(aws.settings).service
        anchorer = _anchorer(aws, service, Counting(), PermanentBackend.ARWEAVE, blocks)
        barrier.wait()
        runs.append(anchorer.anchor(TENANT))

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(r.anchored is not None for r in runs) == 1
    assert len(posted) == 1
    assert len([r for r in _records(service) if isinstance(r, CheckpointAnchorRecord)]) == 1
