"""Sealed bodies on IPFS, against js-ipfs's Kubo RPC API: the CID computed here must name what the node
built (js-ipfs answers base58: the decoded CIDs are compared), and every read is checked against it."""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import urllib.request
from urllib.parse import urlencode

import pytest

from infra.local.nodes import LocalNodes, free_port
from reliquary.adapters.ipfs import IpfsStore
from reliquary.errors import BodyIntegrityError, InvalidRequestError, ReliquaryError, StorageUnavailableError
from reliquary.identity.did import b58encode
from reliquary.vaults.cid import Cid, file_cid
from reliquary.vaults.permanent import PermanentBackend, PermanentRef
from tests.support.nodes import LATENCIES, FakeNode, Reply

pytestmark = [pytest.mark.xdist_group("permanent-nodes")]

KIB = 1024
SIZES = [0, 1, 256 * KIB - 1, 256 * KIB, 256 * KIB + 1, 512 * KIB, 768 * KIB + 5, 6 * KIB * KIB]


def _rpc(url: str, command: str, options: dict[str, str], body: bytes = b"") -> tuple[int, bytes]:
    """A raw Kubo RPC call (the test's own view of the node, apart from the store)."""
    headers = {}
    if body:
        boundary = secrets.token_hex(8)
        headers["Content-Type"] = f"multipart/form-data; boundary={boundary}"
        body = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="f"\r\n'
            f"Content-Type: application/octet-stream\r\n\r\n".encode()
            + body
            + f"\r\n--{boundary}--\r\n".encode()
        )
    request = urllib.request.Request(  # noqa: S310 (a loopback URL)
        f"{url}/api/v0/{command}?{urlencode(options)}", data=body, headers=headers, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:  # noqa: S310
            return int(answer.status), answer.read()
    except urllib.error.HTTPError as refused:
        return refused.code, refused.read()


def _pinned(nodes: LocalNodes, cid: str) -> bool:
    status, body = _rpc(nodes.ipfs.url, "pin/ls", {"type": "recursive"})
    assert status == 200
    return any(Cid.parse(key).names_same_block(Cid.parse(cid)) for key in json.loads(body)["Keys"])


@pytest.mark.parametrize("size", SIZES)
def test_the_local_cid_is_the_nodes_and_the_body_comes_back(
    ipfs: IpfsStore, nodes: LocalNodes, size: int
) -> None:
    body = os.urandom(size)
    with LATENCIES.measure("ipfs add", size):
        ref = ipfs.put(body)
    assert ref.backend is PermanentBackend.IPFS
    assert ref.locator == str(file_cid(body))
    assert (ref.size, ref.sha256) == (size, hashlib.sha256(body).digest())
    assert _pinned(nodes, ref.locator)
    with LATENCIES.measure("ipfs cat", size):
        assert ipfs.get(ref) == body


@pytest.mark.parametrize(("size", "chunk"), [(174 * KIB, KIB), (200 * KIB + 7, KIB), (349 * 512, 512)])
def test_a_tree_of_more_than_one_level_has_the_nodes_cid(nodes: LocalNodes, size: int, chunk: int) -> None:
    """Small chunks make the balanced layout's deeper trees on small bodies: 174 leaves (one full node),
    201 and 349 (two levels, the last node one leaf or two). A third level takes 30277 leaves, more
    blocks than js-ipfs writes in a test's time."""
    body = os.urandom(size)
    status, answer = _rpc(
        nodes.ipfs.url,
        "add",
        {"cid-version": "1", "raw-leaves": "true", "chunker": f"size-{chunk}", "pin": "false"},
        body,
    )
    assert status == 200
    node_cid = Cid.parse(json.loads(answer.splitlines()[-1])["Hash"])
    assert node_cid.names_same_block(file_cid(body, chunk_size=chunk))


def test_unpinning_is_idempotent_and_pinning_again_works(ipfs: IpfsStore, nodes: LocalNodes) -> None:
    ref = ipfs.put(os.urandom(3000))
    with LATENCIES.measure("ipfs pin/rm", ref.size):
        ipfs.release(ref)
    assert not _pinned(nodes, ref.locator)
    ipfs.release(ref)  # not pinned any more: nothing to do, no error
    with LATENCIES.measure("ipfs pin/add", ref.size):
        ipfs.pin(ref)
    assert _pinned(nodes, ref.locator)
    ipfs.release(ref)


def test_a_substituted_body_is_refused_never_returned(ipfs: IpfsStore) -> None:
    body = os.urandom(300 * KIB)
    ref = ipfs.put(body)
    other = os.urandom(300 * KIB)
    flipped = body[:5000] + bytes([body[5000] ^ 1]) + body[5001:]
    for served in (flipped, body + b"\x00", body[:-1], other, b""):
        with FakeNode(Reply(200, served)) as fake:
            with pytest.raises(BodyIntegrityError) as refused:
                IpfsStore(fake.url).get(ref)
            assert fake.requests == [("POST", f"/api/v0/cat?arg={ref.locator}")]
        assert (refused.value.code, refused.value.retryable) == ("body_integrity", False)
    # A record whose digest is not its CID's body (a record altered beside the item) is refused too.
    altered = PermanentRef(PermanentBackend.IPFS, ref.locator, ref.size, hashlib.sha256(other).digest())
    with pytest.raises(BodyIntegrityError):
        ipfs.get(altered)


def test_a_node_that_names_another_cid_for_the_body_is_refused() -> None:
    other = file_cid(b"another body")
    for spelling in (str(other), "z" + b58encode(other.to_bytes())):
        answer = Reply(200, json.dumps({"Hash": spelling}).encode())
        with FakeNode(answer) as fake, pytest.raises(BodyIntegrityError):
            IpfsStore(fake.url).put(b"body")


def test_any_spelling_of_the_right_cid_is_accepted() -> None:
    """js-ipfs answers base58btc; a dag-pb root may come back as a version 0 CID."""
    body = os.urandom(256 * KIB + 1)
    cid = file_cid(body)
    for spelling in (str(cid), "z" + b58encode(cid.to_bytes()), b58encode(bytes([0x12, 32]) + cid.digest)):
        with FakeNode(Reply(200, json.dumps({"Hash": spelling}).encode())) as fake:
            assert IpfsStore(fake.url).put(body).locator == str(cid)


@pytest.mark.parametrize(
    "answer", [b"", b"not json", b'{"Name": "body"}', b'{"Hash": "bafy-not-a-cid"}', b"[]"]
)
def test_an_answer_to_add_that_names_no_cid_is_a_refusal(answer: bytes) -> None:
    with (
        FakeNode(Reply(200, answer)) as fake,
        pytest.raises(ReliquaryError, match="refused") as refused,
    ):
        IpfsStore(fake.url).put(b"body")
    assert not isinstance(refused.value, StorageUnavailableError)


@pytest.mark.parametrize(
    ("reply", "what"),
    [
        (Reply(500, b'{"Message":"failed","Code":0,"Type":"error"}'), "a 5xx"),
        (Reply(429), "throttling"),
        (Reply(200, b"x" * 10, promised=4096), "an answer cut short"),
        (Reply(hang=True), "a node that does not answer in time"),
    ],
)
def test_a_failing_or_slow_node_is_transient(reply: Reply, what: str) -> None:
    ref = PermanentRef.of(PermanentBackend.IPFS, str(file_cid(b"x" * 4096)), b"x" * 4096)
    with FakeNode(reply) as fake:
        store = IpfsStore(fake.url, timeout=0.5)
        for call in (lambda: store.get(ref), lambda: store.put(b"body"), lambda: store.pin(ref)):
            with pytest.raises(StorageUnavailableError) as unavailable:
                call()
            assert unavailable.value.retryable, what


def test_a_node_that_is_down_is_transient() -> None:
    store = IpfsStore(f"http://127.0.0.1:{free_port()}", timeout=2)
    ref = PermanentRef.of(PermanentBackend.IPFS, str(file_cid(b"body")), b"body")
    for call in (lambda: store.get(ref), lambda: store.put(b"body"), lambda: store.release(ref)):
        with pytest.raises(StorageUnavailableError) as unavailable:
            call()
        assert unavailable.value.details == {"node": "ipfs"}


def test_a_body_the_node_does_not_have_times_out_as_transient(nodes: LocalNodes) -> None:
    """Offline js-ipfs waits for a block it lacks (Kubo offline answers an error at once): both retry."""
    missing = os.urandom(64)
    ref = PermanentRef.of(PermanentBackend.IPFS, str(file_cid(missing)), missing)
    with pytest.raises(StorageUnavailableError):
        IpfsStore(nodes.ipfs.url, timeout=1).get(ref)


def test_release_fails_while_the_node_still_lists_the_pin() -> None:
    """pin/rm answers 500 for "not pinned" as for a failure: the pin list decides which it was."""
    ref = PermanentRef.of(PermanentBackend.IPFS, str(file_cid(b"body")), b"body")
    failure = Reply(500, b'{"Message":"failed","Code":0,"Type":"error"}')
    for listed, fails in (({ref.locator: {"Type": "recursive"}}, True), ({}, False)):
        pins = Reply(200, json.dumps({"Keys": listed}).encode())

        def respond(_method: str, path: str, pins: Reply = pins) -> Reply:
            return pins if path.startswith("/api/v0/pin/ls") else failure

        with FakeNode(respond) as fake:
            if fails:
                with pytest.raises(StorageUnavailableError):
                    IpfsStore(fake.url).release(ref)
            else:
                IpfsStore(fake.url).release(ref)
            assert [path.partition("?")[0] for _, path in fake.requests] == [
                "/api/v0/pin/rm",
                "/api/v0/pin/ls",
            ]


def test_a_reference_that_is_not_an_ipfs_cid_is_refused_before_any_request() -> None:
    with FakeNode(Reply(200)) as fake:
        store = IpfsStore(fake.url)
        for ref in (
            PermanentRef.of(PermanentBackend.ARWEAVE, str(file_cid(b"body")), b"body"),
            PermanentRef.of(PermanentBackend.IPFS, "not-a-cid", b"body"),
        ):
            for call in (store.get, store.pin, store.release):
                with pytest.raises(InvalidRequestError):
                    call(ref)
        assert fake.requests == []
