"""The SDK reads anchored checkpoints from real nodes: a signed note stored on js-ipfs (read back through
its Kubo RPC API) and on arlocal (``GET /<tx id>``, as from a gateway), checked by CID and digest, opened
with the log's keys and proven of one history with a later checkpoint; another body under the anchor's
name, or a name the node does not hold, is refused with the typed error."""

from __future__ import annotations

import hashlib
import os

import pytest
from reliquary_sdk.anchors import (
    AnchorIntegrityError,
    AnchorSource,
    AnchorUnavailableError,
    SplitViewError,
    open_anchor,
    raw_cid,
    verify_against_anchor,
)
from reliquary_sdk.audit import NoteVerifier
from reliquary_sdk.models import AnchorView

from infra.local.nodes import LocalNodes
from reliquary.adapters.arweave import ArweaveStore
from reliquary.adapters.ipfs import IpfsStore
from reliquary.audit import note as core_note
from reliquary.crypto.signing import SignatureAlgorithm, SigningKey
from reliquary.vaults.permanent import PermanentRef
from tests.sdk.test_monitor import ORIGIN, CoreLog
from tests.support.nodes import LATENCIES, arweave_get

pytestmark = [pytest.mark.xdist_group("permanent-nodes")]


@pytest.fixture(scope="module")
def signers() -> list[core_note.NoteSigner]:
    from reliquary_native import load_oqs

    load_oqs()
    return [
        core_note.NoteSigner(ORIGIN, SigningKey.generate(algorithm))
        for algorithm in (SignatureAlgorithm.ED25519, SignatureAlgorithm.ML_DSA_65)
    ]


@pytest.fixture(scope="module")
def verifiers(signers: list[core_note.NoteSigner]) -> list[NoteVerifier]:
    return [NoteVerifier.from_vkey(s.verifier.to_vkey()) for s in signers]


@pytest.fixture
def honest(signers: list[core_note.NoteSigner]) -> CoreLog:
    return CoreLog(signers).append(0, 5).append(5, 4).append(9, 11)


def _tags(note: bytes, size: int) -> tuple[tuple[str, str], ...]:
    return (
        ("Content-Type", "text/plain; charset=utf-8"),
        ("App-Name", "RELIQUARY"),
        ("Reliquary-Format", "reliquary-checkpoint-anchor/v1"),
        ("Reliquary-Origin", ORIGIN),
        ("Reliquary-Tree-Size", str(size)),
    )


def _listed(ref: PermanentRef, note: bytes, size: int, root: str) -> AnchorView:
    return AnchorView(
        tree_size=size,
        root_hash=root,
        backend=ref.backend.value,
        locator=ref.locator,
        note_sha256=hashlib.sha256(note).hexdigest(),
        anchored_at=1_700_000_000,
        log_index=size,
        block=None,
    )


def _root(note: bytes) -> str:
    return note.decode().split("\n")[2]


@pytest.mark.parametrize("backend", ["ipfs", "arweave"])
def test_an_anchor_on_a_real_node_is_fetched_checked_and_proven(
    backend: str,
    *,
    ipfs: IpfsStore,
    arweave: ArweaveStore,
    nodes: LocalNodes,
    verifiers: list[NoteVerifier],
    honest: CoreLog,
) -> None:
    note = honest.note(9)
    ref = arweave.put(note, tags=_tags(note, 9)) if backend == "arweave" else ipfs.put(note)
    if backend == "arweave":
        arweave_get(nodes.arweave.url, "/mine")
        source = AnchorSource(arweave_gateway=nodes.arweave.url)
    else:
        source = AnchorSource(ipfs_api=nodes.ipfs.url)
    anchor = _listed(ref, note, 9, _root(note))
    with LATENCIES.measure(f"anchor fetch+open {backend}", len(note)):
        fetched = source.fetch(anchor)
        checkpoint = open_anchor(anchor, fetched, verifiers, origin=ORIGIN, required=verifiers)
    assert fetched == note
    assert checkpoint.size == 9
    check = verify_against_anchor(
        honest.note(20), fetched, verifiers, origin=ORIGIN, proof=honest.proof, required=verifiers
    )
    assert (check.relation, check.presented.size) == ("anchor_older", 20)

    # The service shows another history at 20: the anchor on the node exposes it.
    forked = CoreLog(honest.signers).append(0, 5).append(5, 15, tag="forked")
    with pytest.raises(SplitViewError) as caught:
        verify_against_anchor(forked.note(20), fetched, verifiers, origin=ORIGIN, proof=forked.proof)
    assert (caught.value.anchored_note, caught.value.presented_note) == (note, forked.note(20))


def test_another_body_under_the_anchors_name_is_refused(
    ipfs: IpfsStore, arweave: ArweaveStore, nodes: LocalNodes, honest: CoreLog
) -> None:
    note, other = honest.note(9), honest.note(5)
    # IPFS: the node serves the body of the CID asked for; a listing naming the other body's CID with
    # this note's digest is refused (the body's digest is not the listed one).
    other_ref = ipfs.put(other)
    with pytest.raises(AnchorIntegrityError):
        AnchorSource(ipfs_api=nodes.ipfs.url).fetch(_listed(other_ref, note, 9, _root(note)))
    # Arweave: a transaction holding another body than the listed digest's.
    other_tx = arweave.put(other, tags=_tags(other, 5))
    with pytest.raises(AnchorIntegrityError):
        AnchorSource(arweave_gateway=nodes.arweave.url).fetch(_listed(other_tx, note, 9, _root(note)))


@pytest.mark.parametrize("backend", ["ipfs", "arweave"])
def test_a_name_the_node_does_not_hold_is_unavailable(
    backend: str, nodes: LocalNodes, honest: CoreLog
) -> None:
    note = honest.note(9)
    absent = raw_cid(os.urandom(32)) if backend == "ipfs" else "A" * 43
    anchor = AnchorView(
        tree_size=9,
        root_hash=_root(note),
        backend=backend,
        locator=absent,
        note_sha256=hashlib.sha256(note).hexdigest(),
        anchored_at=1_700_000_000,
        log_index=9,
        block=None,
    )
    # An offline IPFS node looks for a block it lacks until the read times out.
    source = AnchorSource(ipfs_api=nodes.ipfs.url, arweave_gateway=nodes.arweave.url, timeout=2.0)
    with pytest.raises(AnchorUnavailableError):
        source.fetch(anchor)
