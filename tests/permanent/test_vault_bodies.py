"""Vaults that opted in to permanent storage, against the real local nodes: every item body goes to IPFS or
Arweave (ciphertext only), the row keeps the detached envelope and the body's record, reads check the
body, shredding destroys the data key and unpins, and a vault must say it knows its bodies stay."""

from __future__ import annotations

import dataclasses
import hashlib
import json

import pytest

from infra.local.nodes import LocalNodes
from reliquary.adapters.arweave import ArweaveStore
from reliquary.adapters.ipfs import IpfsStore
from reliquary.crypto.envelope import Envelope
from reliquary.crypto.kem import HybridPrivateKey
from reliquary.errors import (
    BodyIntegrityError,
    ConflictError,
    InvalidEnvelopeError,
    InvalidRequestError,
    ItemShreddedError,
    StorageUnavailableError,
)
from reliquary.vaults.cid import Cid, file_cid
from reliquary.vaults.models import BodyLocation, ItemRecord
from reliquary.vaults.permanent import PermanentBackend, PermanentRef, PermanentStore, PermanentStores
from reliquary.vaults.service import (
    PERMANENT_BODY_TAGS,
    PERMANENT_REF_SUFFIX,
    RemovedVersion,
    blob_prefix,
    unreleased_prefix,
)
from tests.support.nodes import LATENCIES, FakeNode, Reply, arweave_get
from tests.support.vaults import USER_SCOPE, MemoryStack, grant_and_open, memory_stack, unique_id

pytestmark = [pytest.mark.xdist_group("permanent-nodes")]

TENANT = "acme"
SECRET = b"the customer's card ends 4242; likes the blue plan"


@pytest.fixture
def stack(ipfs: IpfsStore, arweave: ArweaveStore) -> MemoryStack:
    return memory_stack(
        permanent=PermanentStores.of({PermanentBackend.IPFS: ipfs, PermanentBackend.ARWEAVE: arweave}),
        max_item_bytes=2 * 1024 * 1024,
    )


def _vault(stack: MemoryStack, backend: PermanentBackend) -> str:
    vault_id = unique_id(f"vault-{backend.value}")
    stack.service.create_vault(TENANT, vault_id, permanent_storage=backend, acknowledge_permanence=True)
    return vault_id


def _seal(stack: MemoryStack, vault_id: str, item_id: str, plaintext: bytes = SECRET) -> ItemRecord:
    return stack.service.seal_item(TENANT, vault_id, item_id, plaintext, memory_scope=USER_SCOPE)


def _open(stack: MemoryStack, vault_id: str, item_id: str) -> bytes:
    return grant_and_open(
        stack.service,
        stack.ledger,
        tenant_id=TENANT,
        vault_id=vault_id,
        item_id=item_id,
        requester=HybridPrivateKey.generate(),
        now=stack.clock.now,
    )


@pytest.mark.parametrize("backend", list(PermanentBackend))
@pytest.mark.parametrize("size", [0, len(SECRET), 300 * 1024])
def test_items_of_an_opted_in_vault_round_trip_through_the_backend(
    stack: MemoryStack, backend: PermanentBackend, size: int, ipfs: IpfsStore, arweave: ArweaveStore
) -> None:
    vault_id = _vault(stack, backend)
    plaintext = (SECRET * (size // len(SECRET) + 1))[:size]
    with LATENCIES.measure(f"seal to {backend.value}", size):
        record = stack.service.seal_item(TENANT, vault_id, "notes", plaintext, memory_scope=USER_SCOPE)

    assert record.body_location is BodyLocation.PERMANENT
    assert record.blob_key is None
    ref = record.permanent_ref
    assert ref is not None
    assert ref.backend is backend
    detached = Envelope.parse(record.envelope or b"")
    assert detached.body is None  # the row keeps the wrapped key and the signature, not the body
    stored = (ipfs if backend is PermanentBackend.IPFS else arweave).get(ref)
    assert len(stored) == size + 16  # ciphertext and tag only
    if size:
        assert plaintext[:32] not in stored
    if backend is PermanentBackend.IPFS:
        assert Cid.parse(ref.locator).names_same_block(file_cid(stored))

    with LATENCIES.measure(f"grant and open from {backend.value}", size):
        assert _open(stack, vault_id, "notes") == plaintext


def test_an_arweave_body_carries_only_its_format_in_public(stack: MemoryStack, nodes: LocalNodes) -> None:
    vault_id = _vault(stack, PermanentBackend.ARWEAVE)
    record = stack.service.seal_item(TENANT, vault_id, "notes", SECRET, memory_scope=USER_SCOPE)
    assert record.permanent_ref is not None
    tx = json.loads(arweave_get(nodes.arweave.url, f"/tx/{record.permanent_ref.locator}"))
    from reliquary.vaults.arweave_tx import b64url_decode

    tags = [(b64url_decode(t["name"]).decode(), b64url_decode(t["value"]).decode()) for t in tx["tags"]]
    assert tuple(tags) == PERMANENT_BODY_TAGS
    assert not any(name in json.dumps(tx) for name in (TENANT, vault_id, "notes"))


def test_a_vault_must_acknowledge_that_its_bodies_stay_for_good(stack: MemoryStack) -> None:
    service = stack.service
    with pytest.raises(InvalidRequestError, match="never be deleted") as refused:
        service.create_vault(TENANT, unique_id("v"), permanent_storage=PermanentBackend.IPFS)
    assert refused.value.details["field"] == "acknowledge_permanence"
    with pytest.raises(InvalidRequestError) as alone:
        service.create_vault(TENANT, unique_id("v"), acknowledge_permanence=True)
    assert alone.value.details["field"] == "permanent_storage"
    unconfigured = memory_stack(permanent=PermanentStores.of({PermanentBackend.IPFS: stack_store(stack)}))
    with pytest.raises(InvalidRequestError, match="no arweave node") as missing:
        unconfigured.service.create_vault(
            TENANT, "v", permanent_storage=PermanentBackend.ARWEAVE, acknowledge_permanence=True
        )
    assert missing.value.details["field"] == "permanent_storage"
    assert list(unconfigured.vaults._vaults) == []  # nothing created by any refusal


def stack_store(stack: MemoryStack) -> PermanentStore:
    return stack.service._permanent(PermanentBackend.IPFS)


def test_a_vault_that_did_not_opt_in_never_touches_the_nodes(stack: MemoryStack) -> None:
    vault_id = unique_id("plain")
    stack.service.create_vault(TENANT, vault_id)
    record = _seal(stack, vault_id, "notes", b"x" * 4096)
    assert record.body_location is BodyLocation.S3
    assert record.permanent_ref is None


@pytest.mark.parametrize("backend", list(PermanentBackend))
def test_a_substituted_or_tampered_body_record_is_refused(
    stack: MemoryStack, backend: PermanentBackend
) -> None:
    vault_id = _vault(stack, backend)
    first = stack.service.seal_item(TENANT, vault_id, "a", SECRET, memory_scope=USER_SCOPE)
    other = stack.service.seal_item(TENANT, vault_id, "b", b"another item's body", memory_scope=USER_SCOPE)
    assert first.permanent_ref is not None
    assert other.permanent_ref is not None
    items = stack.items._items  # the fakes' rows, as storage holds them

    # The row names another body on the node, with that body's own digest: the body is authentic for
    # its record, but it is not the one this envelope signed.
    key = next(k for k, r in items.items() if r.item_id == "a")
    items[key] = dataclasses.replace(first, permanent_ref=other.permanent_ref)
    with pytest.raises(InvalidEnvelopeError):
        _open(stack, vault_id, "a")

    # The row's digest altered (the locator kept): the node's body no longer matches its record.
    altered = PermanentRef(
        backend, first.permanent_ref.locator, first.permanent_ref.size, hashlib.sha256(b"x").digest()
    )
    items[key] = dataclasses.replace(first, permanent_ref=altered)
    with pytest.raises(BodyIntegrityError):
        _open(stack, vault_id, "a")


def test_a_node_that_serves_another_body_is_refused_never_returned(ipfs: IpfsStore) -> None:
    stack = memory_stack(permanent=PermanentStores.of({PermanentBackend.IPFS: ipfs}))
    vault_id = _vault(stack, PermanentBackend.IPFS)
    record = stack.service.seal_item(TENANT, vault_id, "a", SECRET, memory_scope=USER_SCOPE)
    assert record.permanent_ref is not None
    body = ipfs.get(record.permanent_ref)
    substituted = bytes([body[0] ^ 1]) + body[1:]
    with FakeNode(Reply(200, substituted)) as liar:
        stack.service._permanent = PermanentStores.of({PermanentBackend.IPFS: IpfsStore(liar.url)})
        with pytest.raises(BodyIntegrityError):
            stack.service.load_envelope(TENANT, vault_id, "a")


def test_a_node_that_is_down_is_transient_and_seals_nothing(ipfs: IpfsStore) -> None:
    with FakeNode(Reply(hang=True)) as slow:
        down = memory_stack(
            permanent=PermanentStores.of({PermanentBackend.IPFS: IpfsStore(slow.url, timeout=0.3)})
        )
        vault_id = _vault(down, PermanentBackend.IPFS)
        with pytest.raises(StorageUnavailableError):
            _seal(down, vault_id, "a")
    assert list(down.items._items) == []  # no row points at a body that was never stored


def _pinned(nodes: LocalNodes, locator: str) -> bool:
    import urllib.request

    request = urllib.request.Request(  # noqa: S310 (a loopback URL)
        f"{nodes.ipfs.url}/api/v0/pin/ls?type=recursive", method="POST"
    )
    with urllib.request.urlopen(request, timeout=30) as answer:  # noqa: S310
        keys = json.loads(answer.read())["Keys"]
    return any(Cid.parse(key).names_same_block(Cid.parse(locator)) for key in keys)


def test_shredding_destroys_the_data_key_and_unpins(
    stack: MemoryStack, nodes: LocalNodes, ipfs: IpfsStore
) -> None:
    vault_id = _vault(stack, PermanentBackend.IPFS)
    sealed = [_seal(stack, vault_id, "notes", SECRET + bytes([n])) for n in range(2)]
    refs = [r.permanent_ref for r in sealed]
    assert all(ref is not None and _pinned(nodes, ref.locator) for ref in refs)

    receipt = stack.service.shred_item(TENANT, vault_id, "notes")

    assert receipt.versions == (1, 2)
    for ref in refs:
        assert ref is not None
        assert not _pinned(nodes, ref.locator)
    for version in (1, 2):
        tombstone = stack.items.get(TENANT, vault_id, "notes", version)
        assert tombstone.envelope is None  # the wrapped data key is gone: the ciphertext opens for no one
        assert tombstone.permanent_ref in refs  # what stays public is named in the tombstone
    with pytest.raises(ItemShreddedError):
        stack.service.load_envelope(TENANT, vault_id, "notes")
    assert stack.service.shred_item(TENANT, vault_id, "notes").versions == (1, 2)  # again: idempotent


def test_an_unpin_that_fails_never_delays_the_erasure(
    stack: MemoryStack, nodes: LocalNodes, ipfs: IpfsStore
) -> None:
    vault_id = _vault(stack, PermanentBackend.IPFS)
    record = _seal(stack, vault_id, "notes")
    ref = record.permanent_ref
    assert ref is not None
    with FakeNode(Reply(503)) as failing:
        stack.service._permanent = PermanentStores.of({PermanentBackend.IPFS: IpfsStore(failing.url)})
        with pytest.raises(StorageUnavailableError):
            stack.service.shred_item(TENANT, vault_id, "notes")
    assert stack.items.get(TENANT, vault_id, "notes", 1).envelope is None  # the key is destroyed already
    assert _pinned(nodes, ref.locator)
    assert stack.blobs.keys(unreleased_prefix(TENANT, vault_id)) != []
    stack.service._permanent = PermanentStores.of({PermanentBackend.IPFS: ipfs})
    stack.service.shred_item(TENANT, vault_id, "notes")  # the retry releases what is left
    assert not _pinned(nodes, ref.locator)
    assert stack.blobs.keys(unreleased_prefix(TENANT, vault_id)) == []


def test_the_arweave_wallet_pays_and_a_mined_body_still_reads_back(
    stack: MemoryStack, nodes: LocalNodes
) -> None:
    vault_id = _vault(stack, PermanentBackend.ARWEAVE)
    _seal(stack, vault_id, "notes")
    arweave_get(nodes.arweave.url, "/mine")
    assert _open(stack, vault_id, "notes") == SECRET


def _records_under(stack: MemoryStack, vault_id: str, item_id: str, version: int) -> list[str]:
    return stack.blobs.keys(blob_prefix(TENANT, vault_id, item_id, version))


def test_each_body_is_named_in_s3_beside_the_row_and_shredding_removes_that_too(
    stack: MemoryStack, nodes: LocalNodes
) -> None:
    vault_id = _vault(stack, PermanentBackend.IPFS)
    record = _seal(stack, vault_id, "notes")
    [key] = _records_under(stack, vault_id, "notes", 1)
    assert key.endswith(PERMANENT_REF_SUFFIX)
    assert PermanentRef.from_json(stack.blobs.get(key)) == record.permanent_ref
    stack.service.shred_item(TENANT, vault_id, "notes")
    assert _records_under(stack, vault_id, "notes", 1) == []


def test_a_version_that_ttl_removed_is_unpinned_by_the_purge(stack: MemoryStack, nodes: LocalNodes) -> None:
    vault_id = _vault(stack, PermanentBackend.IPFS)
    record = _seal(stack, vault_id, "notes")
    assert record.permanent_ref is not None
    report = stack.service.purge_removed_versions([RemovedVersion(TENANT, vault_id, "notes", 1)])
    assert (report.purged, report.still_present) == (0, 1)  # the row is still there: nothing released
    assert _pinned(nodes, record.permanent_ref.locator)

    del stack.items._items[(TENANT, vault_id, "notes", 1)]  # what DynamoDB's TTL does: the row is gone
    report = stack.service.purge_removed_versions([RemovedVersion(TENANT, vault_id, "notes", 1)])

    assert report.purged == 1
    assert not _pinned(nodes, record.permanent_ref.locator)
    assert _records_under(stack, vault_id, "notes", 1) == []


def test_a_writer_that_loses_the_version_race_releases_its_body(
    stack: MemoryStack, nodes: LocalNodes, monkeypatch: pytest.MonkeyPatch
) -> None:
    vault_id = _vault(stack, PermanentBackend.IPFS)
    put, lost = stack.items.put, list[ItemRecord]()

    def lose_once(record: ItemRecord) -> None:
        if not lost:
            lost.append(record)
            raise ConflictError("another writer took the version")
        put(record)

    monkeypatch.setattr(stack.items, "put", lose_once)
    record = _seal(stack, vault_id, "notes")

    [loser] = lost
    assert loser.permanent_ref is not None
    assert record.permanent_ref is not None
    assert not _pinned(nodes, loser.permanent_ref.locator)  # the loser's body: released
    assert _pinned(nodes, record.permanent_ref.locator)
    [key] = _records_under(stack, vault_id, "notes", 1)  # only the winner's record of it
    assert PermanentRef.from_json(stack.blobs.get(key)) == record.permanent_ref


def test_forgetting_again_unpins_what_a_node_that_was_down_kept(
    stack: MemoryStack, nodes: LocalNodes, ipfs: IpfsStore
) -> None:
    vault_id = _vault(stack, PermanentBackend.IPFS)
    record = _seal(stack, vault_id, "notes")
    assert record.permanent_ref is not None
    with FakeNode(Reply(503)) as failing:
        stack.service._permanent = PermanentStores.of({PermanentBackend.IPFS: IpfsStore(failing.url)})
        with pytest.raises(StorageUnavailableError):
            stack.service.forget_scope(TENANT, vault_id, USER_SCOPE)
    assert stack.items.get(TENANT, vault_id, "notes", 1).envelope is None  # erased all the same
    assert _pinned(nodes, record.permanent_ref.locator)
    marked = unreleased_prefix(TENANT, vault_id)
    assert stack.blobs.keys(marked) == [f"{marked}notes/1"]  # the version left to release

    stack.service._permanent = PermanentStores.of({PermanentBackend.IPFS: ipfs})
    report = stack.service.forget_scope(TENANT, vault_id, USER_SCOPE)

    assert (report.receipts, report.already_shredded, report.complete) == ((), 1, True)
    assert not _pinned(nodes, record.permanent_ref.locator)
    assert _records_under(stack, vault_id, "notes", 1) == []
    assert stack.blobs.keys(marked) == []
    stack.service.forget_scope(TENANT, vault_id, USER_SCOPE)  # nothing left: no node call fails it
