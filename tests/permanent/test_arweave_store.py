"""Sealed bodies on Arweave, against arlocal: it checks each transaction's signature and data_root, so an
accepted post is a transaction built as Arweave's rules say; every read is checked against the record."""

from __future__ import annotations

import hashlib
import json
import os
import urllib.error
import urllib.request

import pytest

from infra.local.nodes import LocalNodes, free_port
from reliquary.adapters.arweave import ArweaveStore
from reliquary.errors import BodyIntegrityError, InvalidRequestError, ReliquaryError, StorageUnavailableError
from reliquary.vaults.arweave_tx import (
    ArweaveWallet,
    DataTransaction,
    Tag,
    b64url,
    b64url_decode,
    data_root,
    sign_data_transaction,
    signature_message,
)
from reliquary.vaults.permanent import PermanentBackend, PermanentRef
from tests.support.nodes import LATENCIES, FakeNode, Reply, arweave_get

pytestmark = [pytest.mark.xdist_group("permanent-nodes")]

KIB = 1024
TAGS = (("Content-Type", "application/octet-stream"), ("Envelope-Format", "RQE1"))
SIZES = [
    0,
    1,
    256 * KIB - 1,
    256 * KIB,
    256 * KIB + 1,
    512 * KIB,
    288 * KIB - 1,
    768 * KIB + 5,
    6 * KIB * KIB,
]


def _post_raw(url: str, tx: dict[str, object]) -> int:
    request = urllib.request.Request(  # noqa: S310 (a loopback URL)
        f"{url}/tx", data=json.dumps(tx).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:  # noqa: S310
            return int(answer.status)
    except urllib.error.HTTPError as refused:
        return refused.code


def _signed(wallet: ArweaveWallet, nodes: LocalNodes, body: bytes) -> DataTransaction:
    anchor = b64url_decode(arweave_get(nodes.arweave.url, "/tx_anchor").decode())
    reward = int(arweave_get(nodes.arweave.url, f"/price/{len(body)}"))
    return sign_data_transaction(wallet, body, tags=[Tag(*tag) for tag in TAGS], anchor=anchor, reward=reward)


@pytest.mark.parametrize("size", SIZES)
def test_arlocal_accepts_each_size_and_serves_the_same_bytes_before_and_after_mining(
    arweave: ArweaveStore, nodes: LocalNodes, size: int
) -> None:
    body = os.urandom(size)
    with LATENCIES.measure("arweave put", size):
        ref = arweave.put(body, tags=TAGS)
    assert ref.backend is PermanentBackend.ARWEAVE
    assert (ref.size, ref.sha256) == (size, hashlib.sha256(body).digest())
    assert len(b64url_decode(ref.locator)) == 32  # base64url(SHA-256(signature))
    assert arweave_get(nodes.arweave.url, f"/tx/{ref.locator}/status") == b"Pending"
    assert arweave.get(ref) == body
    arweave_get(nodes.arweave.url, "/mine")
    status = json.loads(arweave_get(nodes.arweave.url, f"/tx/{ref.locator}/status"))
    assert status["block_indep_hash"]  # in a block
    with LATENCIES.measure("arweave get", size):
        assert arweave.get(ref) == body


def test_the_transaction_carries_its_tags_and_its_data_root(arweave: ArweaveStore, nodes: LocalNodes) -> None:
    body = os.urandom(300 * KIB)
    ref = arweave.put(body, tags=TAGS)
    tx = json.loads(arweave_get(nodes.arweave.url, f"/tx/{ref.locator}"))
    assert [
        (b64url_decode(t["name"]).decode(), b64url_decode(t["value"]).decode()) for t in tx["tags"]
    ] == list(TAGS)
    assert (tx["data_root"], tx["data_size"]) == (b64url(data_root(body)), str(len(body)))


def test_arlocal_refuses_a_wrong_data_root_a_bad_signature_and_altered_data(
    arweave_wallet: ArweaveWallet, nodes: LocalNodes
) -> None:
    """The oracle is real: what the store's posts pass, these fail."""
    body = os.urandom(256 * KIB + 1)
    good = _signed(arweave_wallet, nodes, body)
    # Signed over another root: the signature is valid, the root is not the data's.
    wrong_root = hashlib.sha256(b"another body").digest()
    message = signature_message(
        owner=good.owner,
        anchor=good.anchor,
        tags=good.tags,
        data_size=len(body),
        root=wrong_root,
        reward=good.reward,
    )
    forged = DataTransaction(
        good.owner, good.anchor, good.tags, body, wrong_root, good.reward, arweave_wallet.sign(message)
    )
    assert _post_raw(nodes.arweave.url, forged.to_json()) == 400
    bad_signature = bytearray(good.signature)
    bad_signature[7] ^= 1
    resigned = DataTransaction(
        good.owner, good.anchor, good.tags, body, good.data_root, good.reward, bytes(bad_signature)
    )
    assert _post_raw(nodes.arweave.url, resigned.to_json()) == 400
    altered = good.to_json() | {"data": b64url(body[:-1] + bytes([body[-1] ^ 1]))}
    assert _post_raw(nodes.arweave.url, altered) == 400
    assert _post_raw(nodes.arweave.url, good.to_json()) == 200


def test_a_substituted_body_is_refused_never_returned(
    arweave: ArweaveStore, arweave_wallet: ArweaveWallet
) -> None:
    body = os.urandom(4 * KIB)
    ref = arweave.put(body, tags=TAGS)
    flipped = body[:100] + bytes([body[100] ^ 0x20]) + body[101:]
    for served in (flipped, body + b"\x00", body[:-1], os.urandom(len(body)), b""):
        with FakeNode(Reply(200, served)) as fake:
            with pytest.raises(BodyIntegrityError) as refused:
                ArweaveStore(fake.url, arweave_wallet).get(ref)
            assert fake.requests == [("GET", f"/{ref.locator}")]
        assert (refused.value.code, refused.value.retryable) == ("body_integrity", False)


@pytest.mark.parametrize(
    ("reply", "what"),
    [
        (Reply(503, b"busy"), "a 5xx"),
        (Reply(429), "throttling"),
        (Reply(200, b"x" * 10, promised=4096), "an answer cut short"),
        (Reply(hang=True), "a node that does not answer in time"),
    ],
)
def test_a_failing_or_slow_node_is_transient(arweave_wallet: ArweaveWallet, reply: Reply, what: str) -> None:
    ref = PermanentRef.of(PermanentBackend.ARWEAVE, b64url(bytes(32)), os.urandom(4096))
    with FakeNode(reply) as fake:
        store = ArweaveStore(fake.url, arweave_wallet, timeout=0.5)
        with pytest.raises(StorageUnavailableError) as unavailable:
            store.get(ref)
        assert unavailable.value.retryable, what
        with pytest.raises(StorageUnavailableError):
            store.put(b"body", tags=TAGS)


def test_a_node_that_is_down_is_transient(arweave_wallet: ArweaveWallet) -> None:
    store = ArweaveStore(f"http://127.0.0.1:{free_port()}", arweave_wallet, timeout=2)
    ref = PermanentRef.of(PermanentBackend.ARWEAVE, b64url(bytes(32)), b"body")
    with pytest.raises(StorageUnavailableError) as unavailable:
        store.get(ref)
    assert (unavailable.value.code, unavailable.value.details) == ("storage_unavailable", {"node": "arweave"})
    with pytest.raises(StorageUnavailableError):
        store.put(b"body")


def test_a_refusal_is_a_typed_error_that_is_not_retried(arweave_wallet: ArweaveWallet) -> None:
    anchor = b64url(bytes(48)).encode()

    def respond(method: str, path: str) -> Reply:
        if path == "/tx_anchor":
            return Reply(200, anchor)
        if path.startswith("/price/"):
            return Reply(200, b"1000")
        return Reply(400, b"Bad Request")

    with FakeNode(respond) as fake:
        store = ArweaveStore(fake.url, arweave_wallet)
        with pytest.raises(ReliquaryError) as refused:
            store.put(b"body", tags=TAGS)
        assert not isinstance(refused.value, StorageUnavailableError | BodyIntegrityError)
        assert (refused.value.retryable, refused.value.details) == (False, {"node": "arweave", "status": 400})
        assert [path for _, path in fake.requests] == ["/tx_anchor", "/price/4", "/tx"]
    for bad_price in (b"-1", b"1e9", b"", b"12" * 20):

        def priced(_method: str, path: str, price: bytes = bad_price) -> Reply:
            return Reply(200, anchor if path == "/tx_anchor" else price)

        with FakeNode(priced) as fake:
            with pytest.raises(ReliquaryError, match="refused"):
                ArweaveStore(fake.url, arweave_wallet).put(b"body")
            assert ("POST", "/tx") not in fake.requests


def test_a_reference_that_is_not_an_arweave_transaction_is_refused_before_any_request(
    arweave: ArweaveStore,
) -> None:
    body = b"body"
    for ref in (
        PermanentRef.of(PermanentBackend.IPFS, b64url(bytes(32)), body),
        PermanentRef.of(PermanentBackend.ARWEAVE, "not-a-transaction-id", body),
        PermanentRef.of(PermanentBackend.ARWEAVE, b64url(bytes(32))[:-1] + "=", body),
    ):
        with pytest.raises(InvalidRequestError):
            arweave.get(ref)


def test_releasing_changes_nothing_the_body_stays(arweave: ArweaveStore) -> None:
    body = os.urandom(1000)
    ref = arweave.put(body)
    arweave.release(ref)
    assert arweave.get(ref) == body
