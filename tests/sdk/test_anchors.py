"""Anchored checkpoints checked on the client: a note read from a gateway must be the anchored one (CID,
digest, size), open with the pinned keys and describe what the listing says; a checkpoint or a receipt
proven of one history with it, or a SplitViewError carrying both signed notes. The logs are the core's
(grown and forked as a service could), the gateways httpx.MockTransport."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from pydantic import ValidationError
from reliquary_sdk import AsyncReliquary, ClientCredentials, Reliquary, TrustedKeys
from reliquary_sdk.anchors import (
    MAX_ANCHOR_BYTES,
    AnchorIntegrityError,
    AnchorSource,
    AnchorUnavailableError,
    SplitViewError,
    open_anchor,
    parse_raw_cid,
    raw_cid,
    verify_against_anchor,
)
from reliquary_sdk.audit import RECEIPT_FORMAT, CheckpointError, NoteVerifier, ProofError
from reliquary_sdk.chain import StageKeys
from reliquary_sdk.crypto import KeyRing
from reliquary_sdk.errors import ReliquaryError, TransportError
from reliquary_sdk.models import AnchorList, AnchorView
from reliquary_sdk.monitor import LogMonitor, MemoryStore

from reliquary.audit import note as core_note
from reliquary.crypto.signing import SignatureAlgorithm, SigningKey
from reliquary.identity.did import b58encode
from tests.sdk.test_monitor import LOG, ORIGIN, CoreLog, log_keys, verifiers

__all__ = ["log_keys", "verifiers"]  # the monitor tests' signed logs, shared as fixtures

TX_ID = base64.urlsafe_b64encode(bytes(range(32))).decode().rstrip("=")
IPFS_API, GATEWAY, ARWEAVE = "http://ipfs.test:5001", "https://gateway.test", "https://arweave.test"


@pytest.fixture
def honest(log_keys: list[core_note.NoteSigner]) -> CoreLog:
    return CoreLog(log_keys).append(0, 5).append(5, 4).append(9, 11)


@pytest.fixture
def forked(log_keys: list[core_note.NoteSigner]) -> CoreLog:
    """The same first five entries, then another history: what the service shows someone else."""
    return CoreLog(log_keys).append(0, 5).append(5, 4, tag="forked").append(9, 11, tag="forked")


def anchor_of(note: bytes, *, backend: str = "ipfs", locator: str | None = None) -> AnchorView:
    text = note.decode()
    _origin, size, root, *_ = text[: text.index("\n\n")].split("\n")
    return AnchorView(
        tree_size=int(size),
        root_hash=root,
        backend=backend,
        locator=locator if locator is not None else (raw_cid(note) if backend == "ipfs" else TX_ID),
        note_sha256=hashlib.sha256(note).hexdigest(),
        anchored_at=1_700_000_000,
        log_index=int(size),
        block=None,
    )


def gateway(serve: Callable[[httpx.Request], httpx.Response]) -> tuple[httpx.MockTransport, list[str]]:
    seen: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(f"{request.method} {request.url}")
        return serve(request)

    return httpx.MockTransport(answer), seen


def serving(body: bytes) -> Callable[[httpx.Request], httpx.Response]:
    return lambda _request: httpx.Response(200, content=body)


# --- one history, or a split view -----------------------------------------------------------------
@pytest.mark.parametrize(
    "case", [(9, 20, "anchor_older", [(9, 20)]), (9, 9, "same", []), (20, 5, "anchor_newer", [(5, 20)])]
)
def test_a_checkpoint_of_the_anchored_history_is_proven_so(
    verifiers: list[NoteVerifier], honest: CoreLog, case: tuple[int, int, str, list[tuple[int, int]]]
) -> None:
    anchored, presented, relation, asked = case
    calls: list[tuple[int, int]] = []

    def proof(old: int, new: int) -> list[bytes]:
        calls.append((old, new))
        return honest.proof(old, new)

    check = verify_against_anchor(
        honest.note(presented), honest.note(anchored), verifiers, origin=ORIGIN, proof=proof
    )
    assert (check.relation, check.anchored.size, check.presented.size) == (relation, anchored, presented)
    assert (check.anchored_note, check.presented_note) == (honest.note(anchored), honest.note(presented))
    assert calls == asked


def test_two_roots_at_one_size_are_a_split_view_with_both_notes(
    verifiers: list[NoteVerifier], honest: CoreLog, forked: CoreLog
) -> None:
    with pytest.raises(SplitViewError) as caught:
        verify_against_anchor(forked.note(9), honest.note(9), verifiers, origin=ORIGIN, proof=honest.proof)
    split = caught.value
    assert (split.reason, split.origin, split.code) == ("same_size", ORIGIN, "split_view")
    assert (split.anchored_note, split.presented_note) == (honest.note(9), forked.note(9))
    assert split.evidence()["anchored"] == honest.note(9).decode()
    assert split.evidence()["presented"] == forked.note(9).decode()


@pytest.mark.parametrize(("anchored", "presented"), [(9, 20), (20, 9), (5, 20)])
def test_checkpoints_of_two_histories_at_two_sizes_are_a_split_view(
    verifiers: list[NoteVerifier], honest: CoreLog, forked: CoreLog, anchored: int, presented: int
) -> None:
    # The anchor is honest; the service presents its fork and answers proofs from the forked tree.
    if anchored == 5:  # a shared prefix of 5: the fork at 20 extends it, the anchor at 5 proves nothing
        verify_against_anchor(forked.note(20), honest.note(5), verifiers, origin=ORIGIN, proof=forked.proof)
        return
    with pytest.raises(SplitViewError) as caught:
        verify_against_anchor(
            forked.note(presented), honest.note(anchored), verifiers, origin=ORIGIN, proof=forked.proof
        )
    split = caught.value
    assert split.reason == "inconsistent"
    assert (split.anchored.size, split.presented.size) == (anchored, presented)
    assert (split.anchored_note, split.presented_note) == (honest.note(anchored), forked.note(presented))


def _forgeries(honest: CoreLog, forked: CoreLog) -> list[Callable[[int, int], list[bytes]]]:
    return [
        honest.proof,  # a real proof, of the anchored tree
        forked.proof,
        lambda _old, _new: [],
        lambda _old, _new: [bytes(32)] * 5,
        lambda old, new: [*forked.proof(old, new), honest.root(20)],
        lambda _old, _new: [honest.root(9), forked.root(20)],
    ]


@pytest.mark.parametrize("forgery", range(6))
def test_no_proof_the_service_makes_up_passes_for_a_split_view(
    verifiers: list[NoteVerifier], honest: CoreLog, forked: CoreLog, forgery: int
) -> None:
    proof = _forgeries(honest, forked)[forgery]
    with pytest.raises(SplitViewError):
        verify_against_anchor(forked.note(20), honest.note(9), verifiers, origin=ORIGIN, proof=proof)


def signed_receipt(log: CoreLog, index: int, size: int) -> tuple[dict[str, Any], bytes]:
    entry = f"honest record {index}".encode()
    receipt = {
        "format": RECEIPT_FORMAT,
        "origin": ORIGIN,
        "request_id": f"req-{index}",
        "leaf_index": index,
        "tree_size": size,
        "checkpoint": log.note(size).decode(),
        "inclusion_proof": [base64.b64encode(h).decode() for h in log.log.inclusion_proof(LOG, index, size)],
    }
    return receipt, entry


def test_a_receipt_is_checked_against_the_anchor_and_its_entry(
    verifiers: list[NoteVerifier], honest: CoreLog, forked: CoreLog
) -> None:
    receipt, entry = signed_receipt(honest, 3, 9)
    check = verify_against_anchor(
        receipt, honest.note(20), verifiers, origin=ORIGIN, proof=honest.proof, entry=entry
    )
    assert (check.relation, check.presented_note) == ("anchor_newer", honest.note(9))
    with pytest.raises(SplitViewError):  # the honest receipt against an anchor of the fork
        verify_against_anchor(receipt, forked.note(20), verifiers, origin=ORIGIN, proof=forked.proof)
    with pytest.raises(ProofError):  # an entry that is not the receipt's leaf
        verify_against_anchor(
            receipt, honest.note(20), verifiers, origin=ORIGIN, proof=honest.proof, entry=b"other"
        )


def test_a_note_another_key_signed_is_refused_on_either_side(
    verifiers: list[NoteVerifier], honest: CoreLog
) -> None:
    stranger = CoreLog([core_note.NoteSigner(ORIGIN, SigningKey.generate(SignatureAlgorithm.ED25519))])
    stranger.append(0, 9)
    for presented, anchored in ((stranger.note(9), honest.note(9)), (honest.note(9), stranger.note(9))):
        with pytest.raises(CheckpointError):
            verify_against_anchor(presented, anchored, verifiers, origin=ORIGIN, proof=honest.proof)
    with pytest.raises(CheckpointError):
        open_anchor(anchor_of(stranger.note(9)), stranger.note(9), verifiers, origin=ORIGIN)
    # Every required key must have signed: a note from one of the two pinned keys is not enough.
    half = CoreLog(honest.signers[:1]).append(0, 9)
    with pytest.raises(CheckpointError):
        open_anchor(anchor_of(half.note(9)), half.note(9), verifiers, origin=ORIGIN, required=verifiers)


def test_a_listing_that_does_not_describe_its_note_is_refused(
    verifiers: list[NoteVerifier], honest: CoreLog
) -> None:
    note = honest.note(9)
    assert open_anchor(anchor_of(note), note, verifiers, origin=ORIGIN).size == 9
    for change in ({"tree_size": 8}, {"root_hash": base64.b64encode(honest.root(5)).decode()}):
        listed = anchor_of(note).model_copy(update=change)
        with pytest.raises(AnchorIntegrityError):
            open_anchor(listed, note, verifiers, origin=ORIGIN)


# --- fetching from a gateway ----------------------------------------------------------------------
def test_ipfs_is_read_through_a_kubo_rpc_api_or_a_path_gateway_never_the_service(honest: CoreLog) -> None:
    note = honest.note(9)
    cid = raw_cid(note)
    transport, seen = gateway(serving(note))
    assert AnchorSource(ipfs_api=IPFS_API, transport=transport).fetch(anchor_of(note)) == note
    assert AnchorSource(ipfs_gateway=GATEWAY + "/", transport=transport).fetch(anchor_of(note)) == note
    assert seen == [f"POST {IPFS_API}/api/v0/cat?arg={cid}", f"GET {GATEWAY}/ipfs/{cid}"]
    # The CID recomputed from the body is a raw block's: b + base32(0x01 0x55 0x12 0x20 || SHA-256).
    binary = bytes([1, 0x55, 0x12, 0x20]) + hashlib.sha256(note).digest()
    assert cid == "b" + base64.b32encode(binary).decode().lower().rstrip("=")


def test_any_spelling_of_the_cid_is_accepted_by_decoding_it(honest: CoreLog) -> None:
    note = honest.note(9)
    binary = bytes([1, 0x55, 0x12, 0x20]) + hashlib.sha256(note).digest()
    spellings = [raw_cid(note), raw_cid(note).upper(), "z" + b58encode(binary)]
    transport, seen = gateway(serving(note))
    for spelling in spellings:
        assert parse_raw_cid(spelling) == hashlib.sha256(note).digest()
        assert AnchorSource(ipfs_api=IPFS_API, transport=transport).fetch(anchor_of(note, locator=spelling))
    assert len(set(seen)) == 1  # asked for by one canonical spelling, whatever the listing's


@pytest.mark.parametrize(
    "locator",
    [
        "QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG",  # version 0: a dag-pb node, many blocks
        "b" + base64.b32encode(bytes([1, 0x70, 0x12, 0x20]) + bytes(32)).decode().lower().rstrip("="),
        "b" + base64.b32encode(bytes([1, 0x55, 0x13, 0x40]) + bytes(64)).decode().lower().rstrip("="),
        "bafy/../../etc",
        "x" * 60,
        "",
    ],
)
def test_a_locator_that_is_not_one_raw_block_is_refused_before_fetching(
    honest: CoreLog, locator: str
) -> None:
    transport, seen = gateway(serving(honest.note(9)))
    with pytest.raises(AnchorIntegrityError):
        AnchorSource(ipfs_api=IPFS_API, transport=transport).fetch(anchor_of(honest.note(9), locator=locator))
    assert seen == []


def test_a_tampered_body_is_refused_by_its_cid_or_its_digest(honest: CoreLog, forked: CoreLog) -> None:
    note, other = honest.note(9), forked.note(9)
    transport, _ = gateway(serving(other))
    with pytest.raises(AnchorIntegrityError):  # IPFS: the CID recomputed from the body is another
        AnchorSource(ipfs_api=IPFS_API, transport=transport).fetch(anchor_of(note))
    with pytest.raises(AnchorIntegrityError):  # Arweave: the digest the listing gave is another
        AnchorSource(arweave_gateway=ARWEAVE, transport=transport).fetch(anchor_of(note, backend="arweave"))
    # The right body under a listing whose digest is another's: refused too.
    transport, _ = gateway(serving(note))
    listed = anchor_of(note).model_copy(update={"note_sha256": hashlib.sha256(other).hexdigest()})
    with pytest.raises(AnchorIntegrityError):
        AnchorSource(ipfs_api=IPFS_API, transport=transport).fetch(listed)
    for bad in ("", "A" * 64, "00" * 31):
        with pytest.raises(AnchorIntegrityError):
            AnchorSource(ipfs_api=IPFS_API, transport=transport).fetch(
                anchor_of(note).model_copy(update={"note_sha256": bad})
            )


def test_arweave_is_read_by_transaction_id_from_the_named_gateway(honest: CoreLog) -> None:
    note = honest.note(9)
    transport, seen = gateway(serving(note))
    source = AnchorSource(arweave_gateway=ARWEAVE, transport=transport)
    assert source.fetch(anchor_of(note, backend="arweave")) == note
    assert seen == [f"GET {ARWEAVE}/{TX_ID}"]
    for bad in ("../status", TX_ID[:-1], TX_ID + "A", TX_ID[:-1] + "B"):  # the last: stray bits
        with pytest.raises(AnchorIntegrityError):
            source.fetch(anchor_of(note, backend="arweave", locator=bad))
    assert len(seen) == 1
    with pytest.raises(ValidationError):  # a listing naming another backend does not even parse
        anchor_of(note, backend="tape")
    unknown = anchor_of(note, backend="arweave").model_copy(update={"backend": "tape"})  # past the model
    with pytest.raises(AnchorIntegrityError):
        source.fetch(unknown)


def test_an_oversized_body_is_refused_without_reading_it_all(honest: CoreLog) -> None:
    yielded = 0

    def endless() -> Iterator[bytes]:
        nonlocal yielded
        while True:
            yielded += 1
            yield b"\n" * 1024

    transport, _ = gateway(lambda _request: httpx.Response(200, content=endless()))
    with pytest.raises(AnchorIntegrityError):
        AnchorSource(ipfs_api=IPFS_API, transport=transport).fetch(anchor_of(honest.note(9)))
    assert yielded == MAX_ANCHOR_BYTES // 1024 + 1
    transport, _ = gateway(serving(b"x" * (MAX_ANCHOR_BYTES + 1)))
    with pytest.raises(AnchorIntegrityError):
        AnchorSource(arweave_gateway=ARWEAVE, transport=transport).fetch(
            anchor_of(honest.note(9), backend="arweave")
        )


def _refused(_request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("refused")


def _slow(_request: httpx.Request) -> httpx.Response:
    raise httpx.ReadTimeout("slow")


@pytest.mark.parametrize(
    ("serve", "status"),
    [
        (_refused, None),
        (_slow, None),
        (lambda _r: httpx.Response(404), 404),
        (lambda _r: httpx.Response(502), 502),
    ],
)
def test_a_gateway_that_does_not_serve_the_body_is_unavailable_not_a_split(
    honest: CoreLog, serve: Callable[[httpx.Request], httpx.Response], status: int | None
) -> None:
    transport, _ = gateway(serve)
    with pytest.raises(AnchorUnavailableError) as caught:
        AnchorSource(ipfs_api=IPFS_API, transport=transport).fetch(anchor_of(honest.note(9)))
    error = caught.value
    assert isinstance(error, TransportError)
    assert (error.code, error.retryable, error.status) == ("anchor_unavailable", True, status)


def test_a_source_needs_a_gateway_for_the_backend(honest: CoreLog) -> None:
    assert AnchorSource(ipfs_gateway=GATEWAY).serves("ipfs")
    assert not AnchorSource(ipfs_gateway=GATEWAY).serves("arweave")
    with pytest.raises(ValueError, match="no Arweave gateway"):
        AnchorSource(ipfs_gateway=GATEWAY).fetch(anchor_of(honest.note(9), backend="arweave"))
    with pytest.raises(ValueError, match="not both"):
        AnchorSource(ipfs_gateway=GATEWAY, ipfs_api=IPFS_API)
    with pytest.raises(ValueError, match="http"):
        AnchorSource(arweave_gateway="file:///etc")


# --- the client ----------------------------------------------------------------------------------
class Service:
    """The service's audit routes over a core log (the caller may swap what it presents)."""

    def __init__(self, log: CoreLog, anchored: list[bytes]) -> None:
        self.log, self.anchored, self.current = log, anchored, log.note(20)
        self.paths: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        self.paths.append(path)
        if path == "/v1/oauth2/token":
            claims = base64.urlsafe_b64encode(json.dumps({"tenant": "acme"}).encode()).decode().rstrip("=")
            token = f"eyJhbGciOiJFUzI1NiJ9.{claims}.c2ln"
            return httpx.Response(
                200, json={"access_token": token, "token_type": "Bearer", "expires_in": 900}
            )
        if path == "/v1/audit/anchors":
            limit = int(request.url.params.get("limit", 20))
            anchors = [anchor_of(n).model_dump() for n in reversed(self.anchored)][:limit]
            return httpx.Response(200, json={"origin": ORIGIN, "anchors": anchors})
        if path == "/v1/audit/checkpoint":
            return httpx.Response(200, text=self.current.decode(), headers={"Content-Type": "text/plain"})
        if path == "/v1/audit/consistency":
            first, second = int(request.url.params["first"]), int(request.url.params["second"])
            proof = [base64.b64encode(h).decode() for h in self.log.proof(first, second)]
            return httpx.Response(
                200, json={"first": first, "second": second, "proof": proof, "checkpoint": None}
            )
        return httpx.Response(404, json={"code": "not_found"})


def _client(service: Service, verifiers: list[NoteVerifier]) -> Reliquary:
    keys = TrustedKeys(ORIGIN, tuple(verifiers), StageKeys({}), KeyRing([]))
    return Reliquary(
        "https://api.example",
        auth=ClientCredentials("cl-1", "secret"),
        transport=httpx.MockTransport(service),
        trusted_keys=keys,
        monitor=LogMonitor(verifiers, store=MemoryStore()),
    )


def test_the_client_lists_anchors_and_verifies_the_newest_from_a_gateway(
    verifiers: list[NoteVerifier], honest: CoreLog, forked: CoreLog
) -> None:
    service = Service(honest, [honest.note(5), honest.note(9)])
    notes = {raw_cid(n): n for n in (honest.note(5), honest.note(9))}
    source = AnchorSource(
        ipfs_api=IPFS_API,
        transport=httpx.MockTransport(lambda r: httpx.Response(200, content=notes[r.url.params["arg"]])),
    )
    with _client(service, verifiers) as api:
        listing = api.audit_anchors(limit=10)
        assert isinstance(listing, AnchorList)
        assert [a.tree_size for a in listing.anchors] == [9, 5]
        check = api.verify_newest_anchor(source)
        assert check is not None
        assert (check.relation, check.anchored.size, check.presented.size) == ("anchor_older", 9, 20)
        assert check.anchor is not None
        assert check.anchor.locator == raw_cid(honest.note(9))
        assert "/v1/audit/consistency" in service.paths
        # The service now presents its fork: the newest anchor exposes it.
        service.current = forked.note(20)
        service.log = forked
        with pytest.raises(SplitViewError) as caught:
            api.verify_newest_anchor(source)
        assert caught.value.presented_note == forked.note(20)
        assert caught.value.anchored_note == honest.note(9)
        assert api.verify_newest_anchor(source, presented=honest.note(9)) is not None


def test_nothing_anchored_yet_is_none_and_a_listing_of_another_log_is_refused(
    verifiers: list[NoteVerifier], honest: CoreLog
) -> None:
    service = Service(honest, [])
    with _client(service, verifiers) as api:
        assert api.verify_newest_anchor(AnchorSource(ipfs_api=IPFS_API)) is None
    with _client(service, verifiers) as api:
        api._trusted = TrustedKeys(
            "reliquary.example/log/globex", tuple(verifiers), StageKeys({}), KeyRing([])
        )
        with pytest.raises(ReliquaryError, match="another log"):
            api.verify_newest_anchor(AnchorSource(ipfs_api=IPFS_API))


def test_the_async_client_verifies_the_newest_anchor_and_finds_the_split_view(
    verifiers: list[NoteVerifier], honest: CoreLog, forked: CoreLog
) -> None:
    service = Service(honest, [honest.note(5), honest.note(9)])
    notes = {raw_cid(n): n for n in (honest.note(5), honest.note(9))}
    source = AnchorSource(
        ipfs_api=IPFS_API,
        transport=httpx.MockTransport(lambda r: httpx.Response(200, content=notes[r.url.params["arg"]])),
    )
    keys = TrustedKeys(ORIGIN, tuple(verifiers), StageKeys({}), KeyRing([]))

    async def run() -> None:
        async with AsyncReliquary(
            "https://api.example",
            auth=ClientCredentials("cl-1", "secret"),
            transport=httpx.MockTransport(service),
            trusted_keys=keys,
            monitor=LogMonitor(verifiers, store=MemoryStore()),
        ) as api:
            assert [a.tree_size for a in (await api.audit_anchors()).anchors] == [9, 5]
            check = await api.verify_newest_anchor(source)
            assert check is not None
            assert (check.relation, check.anchored.size, check.presented.size) == ("anchor_older", 9, 20)
            same = await api.verify_newest_anchor(source, presented=honest.note(9))
            assert same is not None
            assert same.relation == "same"
            service.current, service.log = forked.note(20), forked
            with pytest.raises(SplitViewError) as caught:
                await api.verify_newest_anchor(source)
            assert (caught.value.anchored_note, caught.value.presented_note) == (
                honest.note(9),
                forked.note(20),
            )
            service.anchored = []
            assert await api.verify_newest_anchor(source) is None

    asyncio.run(run())
