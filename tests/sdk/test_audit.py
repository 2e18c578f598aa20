"""The SDK's checkpoint, proof and receipt checks agree with the core's on its vectors and its logs."""

from __future__ import annotations

import base64
import json
import sys
from pathlib import Path
from typing import Any

import pytest
from reliquary_sdk import audit
from reliquary_sdk.audit import CheckpointError, NoteVerifier, ProofError

from reliquary.audit import merkle, receipts
from reliquary.audit import note as core_note
from reliquary.audit.checkpoint import Checkpoint, sign_checkpoint
from reliquary.crypto.signing import SignatureAlgorithm, SigningKey
from reliquary.errors import ReliquaryError

VECTORS = Path(__file__).parents[1] / "vectors"
NOTES = json.loads((VECTORS / "signed_note_vectors.json").read_text())["vectors"]
MERKLE = json.loads((VECTORS / "merkle_v1.json").read_text())
ORIGIN = "reliquary.example/log/acme"


@pytest.fixture(scope="module", autouse=True)
def _liboqs() -> None:
    """The core's liboqs stands in for the ``falcon`` extra's (Falcon-512 lines are checked)."""
    from reliquary_native import load_oqs

    load_oqs()


@pytest.mark.parametrize("vector", NOTES, ids=[v["desc"] for v in NOTES])
def test_signed_note_vectors(vector: dict[str, Any]) -> None:
    try:
        verifiers = [NoteVerifier.from_vkey(v) for v in vector["vkeys"]]
        required = [NoteVerifier.from_vkey(v) for v in vector.get("required", [])]
        opened = audit.open_note(vector["note"].encode(), verifiers, required=required)
        checkpoint = (
            audit.open_checkpoint(
                vector["note"].encode(), verifiers, origin=vector["origin"], required=required
            )
            if "origin" in vector
            else None
        )
    except (ValueError, CheckpointError):
        assert vector["want_error"]
        return
    assert not vector["want_error"]
    if "want_text" in vector:
        assert opened.text == vector["want_text"]
    if "want_signed_by" in vector:
        assert [v.to_vkey() for v in opened.signed_by] == vector["want_signed_by"]
    if checkpoint is not None:
        want = vector["want_checkpoint"]
        assert (checkpoint.origin, checkpoint.size, list(checkpoint.extensions)) == (
            want["origin"],
            want["size"],
            want["extensions"],
        )
        assert checkpoint.root_hash == base64.b64decode(want["root_hash"])


def test_merkle_vectors() -> None:
    checked = 0
    for case in MERKLE["inclusion"]:
        args = (case["index"], case["size"], bytes.fromhex(case["leaf_hash"]))
        proof, root = [bytes.fromhex(h) for h in case["proof"]], bytes.fromhex(case["root"])
        if case["want_error"]:
            with pytest.raises(ProofError):
                audit.verify_inclusion(*args, proof, root)
        else:
            audit.verify_inclusion(*args, proof, root)
        checked += 1
    for case in MERKLE["consistency"]:
        sizes = (case["old_size"], case["new_size"])
        roots = (bytes.fromhex(case["old_root"]), bytes.fromhex(case["new_root"]))
        proof = [bytes.fromhex(h) for h in case["proof"]]
        if case["want_error"]:
            with pytest.raises(ProofError):
                audit.verify_consistency(*sizes, *roots, proof)
        else:
            audit.verify_consistency(*sizes, *roots, proof)
        checked += 1
    assert checked == len(MERKLE["inclusion"]) + len(MERKLE["consistency"]) > 1000


@pytest.fixture(scope="module")
def log_keys() -> list[core_note.NoteSigner]:
    return [
        core_note.NoteSigner(ORIGIN, SigningKey.generate(algorithm))
        for algorithm in (
            SignatureAlgorithm.ED25519,
            SignatureAlgorithm.ML_DSA_65,
            SignatureAlgorithm.FALCON_512,
        )
    ]


def _sdk_keys(signers: list[core_note.NoteSigner]) -> list[NoteVerifier]:
    return [NoteVerifier.from_vkey(s.verifier.to_vkey()) for s in signers]


def _log(size: int) -> tuple[list[bytes], list[bytes]]:
    entries = [json.dumps({"request_id": f"req-{i}", "decision": "approve"}).encode() for i in range(size)]
    return entries, [merkle.SHA256.hash_leaf(e) for e in entries]


def _root(leaves: list[bytes]) -> bytes:
    return merkle.root_of(leaves)


def _inclusion(leaves: list[bytes], index: int) -> list[bytes]:
    return merkle.assemble(
        merkle.inclusion_plan(index, len(leaves)), lambda n: _root(leaves[n.begin : n.end])
    )


def test_core_checkpoints_open_and_the_sdk_reads_the_published_vkeys(
    log_keys: list[core_note.NoteSigner],
) -> None:
    _, leaves = _log(13)
    note = sign_checkpoint(Checkpoint(ORIGIN, 13, _root(leaves)), log_keys)
    keys = _sdk_keys(log_keys)
    assert [k.to_vkey() for k in keys] == [s.verifier.to_vkey() for s in log_keys]
    checkpoint = audit.open_checkpoint(note, keys, origin=ORIGIN, required=keys)
    assert (checkpoint.size, checkpoint.root_hash) == (13, _root(leaves))
    opened = audit.open_note(note, keys)
    assert [k.algorithm for k in opened.signed_by] == ["Ed25519", "ML-DSA-65", "Falcon-512"]
    with pytest.raises(CheckpointError):
        audit.open_checkpoint(note, keys, origin="another.example/log")
    # Every byte flip is refused, by the core and the SDK alike.
    for position in range(0, len(note), 7):
        tampered = bytearray(note)
        tampered[position] ^= 0x02
        with pytest.raises(CheckpointError):
            audit.open_checkpoint(bytes(tampered), keys, origin=ORIGIN, required=keys)
        with pytest.raises(ReliquaryError):
            core_note.open_note(
                bytes(tampered), [s.verifier for s in log_keys], required=[s.verifier for s in log_keys]
            )
    # Only the Ed25519 key signed: the post-quantum keys required are missing.
    ed_only = sign_checkpoint(Checkpoint(ORIGIN, 13, _root(leaves)), log_keys[:1])
    audit.open_checkpoint(ed_only, keys, origin=ORIGIN)
    with pytest.raises(CheckpointError):
        audit.open_checkpoint(ed_only, keys, origin=ORIGIN, required=keys[1:2])


def test_falcon_without_the_extra_fails_loudly_or_is_visibly_unchecked(
    log_keys: list[core_note.NoteSigner], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, leaves = _log(5)
    note = sign_checkpoint(Checkpoint(ORIGIN, 5, _root(leaves)), log_keys)
    keys = _sdk_keys(log_keys)
    monkeypatch.setitem(sys.modules, "oqs", None)
    with pytest.raises(audit.FalconUnavailableError):
        audit.open_note(note, keys)
    opened = audit.open_note(note, keys, required=keys, falcon="skip")
    assert [k.algorithm for k in opened.signed_by] == ["Ed25519", "ML-DSA-65"]
    assert [k.algorithm for k in opened.unchecked] == ["Falcon-512"]
    falcon_only = sign_checkpoint(Checkpoint(ORIGIN, 5, _root(leaves)), log_keys[2:])
    with pytest.raises(CheckpointError):  # an unchecked line is never a signature
        audit.open_note(falcon_only, keys, falcon="skip")


def test_receipts_made_from_a_core_log_verify_as_the_core_verifies_them(
    log_keys: list[core_note.NoteSigner],
) -> None:
    entries, leaves = _log(21)
    note = sign_checkpoint(Checkpoint(ORIGIN, 21, _root(leaves)), log_keys)
    keys = _sdk_keys(log_keys)
    for index in (0, 7, 20):
        receipt = receipts.Receipt(ORIGIN, f"req-{index}", index, note, 21, tuple(_inclusion(leaves, index)))
        as_json = json.loads(json.dumps(receipt.to_dict()))
        core = receipts.verify_receipt(receipt, entries[index], [s.verifier for s in log_keys], origin=ORIGIN)
        sdk = audit.verify_receipt(as_json, entries[index].decode(), keys, origin=ORIGIN, required=keys)
        assert (sdk.size, sdk.root_hash) == (core.size, core.root_hash)
        with pytest.raises(ProofError):
            audit.verify_receipt(as_json, entries[index] + b" ", keys, origin=ORIGIN)
        with pytest.raises(ProofError):
            audit.verify_receipt({**as_json, "leaf_index": index + 1}, entries[index], keys, origin=ORIGIN)
        with pytest.raises(ProofError):
            audit.verify_receipt({**as_json, "tree_size": 20}, entries[index], keys, origin=ORIGIN)
        with pytest.raises(CheckpointError):
            audit.verify_receipt({**as_json, "origin": "x"}, entries[index], keys, origin=ORIGIN)
    for broken in ({}, {"format": "reliquary-audit-receipt/v1"}, {**as_json, "inclusion_proof": ["%%"]}):
        with pytest.raises(ProofError):
            audit.verify_receipt(broken, entries[0], keys, origin=ORIGIN)


def test_promises_from_the_core_verify_offline_and_a_broken_one_is_reported(
    log_keys: list[core_note.NoteSigner],
) -> None:
    entries, leaves = _log(21)
    keys = _sdk_keys(log_keys)
    body = receipts.PromiseBody(ORIGIN, "req-7", 7, leaves[7], 1_795_651_200_500)
    as_json = json.loads(json.dumps(receipts.sign_promise(body, log_keys).to_dict()))
    promise = audit.verify_promise(as_json, keys, origin=ORIGIN, entry=entries[7].decode(), required=keys)
    assert (promise.leaf_index, promise.leaf_hash, promise.sequenced_at_ms) == (
        7,
        leaves[7],
        1_795_651_200_500,
    )
    with pytest.raises(ProofError):
        audit.verify_promise(as_json, keys, origin=ORIGIN, entry=entries[8])
    for field, value in (("leaf_index", 8), ("request_id", "req-8"), ("sequenced_at_ms", 1)):
        with pytest.raises(CheckpointError):
            audit.verify_promise({**as_json, field: value}, keys, origin=ORIGIN)
    with pytest.raises(CheckpointError):
        audit.verify_promise(as_json, keys, origin="reliquary.example/log/globex")
    with pytest.raises(CheckpointError):  # Ed25519 alone does not meet a policy of all three keys
        audit.verify_promise(
            {**as_json, "signatures": as_json["signatures"][:1]}, keys, origin=ORIGIN, required=keys
        )
    for broken in ({}, {**as_json, "format": "reliquary-audit-receipt/v1"}, {**as_json, "leaf_hash": "AAAA"}):
        with pytest.raises(ProofError):
            audit.verify_promise(broken, keys, origin=ORIGIN)
    # Domain separation, both ways: a promise's lines never open as a note, a checkpoint's never as a promise.
    note = sign_checkpoint(Checkpoint(ORIGIN, 21, _root(leaves)), log_keys)
    lines = "".join(f"{line}\n" for line in as_json["signatures"]).encode()
    with pytest.raises(CheckpointError):
        audit.open_checkpoint(
            f"{ORIGIN}\n7\n{as_json['leaf_hash']}\n\n".encode() + lines, keys, origin=ORIGIN
        )
    checkpoint_lines = note.decode().split("\n\n", 1)[1].splitlines()
    with pytest.raises(CheckpointError):
        audit.verify_promise({**as_json, "signatures": checkpoint_lines}, keys, origin=ORIGIN)
    # Kept: the receipt proves the promised leaf hash at the promised index.
    receipt = receipts.Receipt(ORIGIN, "req-7", 7, note, 21, tuple(_inclusion(leaves, 7))).to_dict()
    kept = audit.verify_promise_kept(as_json, receipt, keys, origin=ORIGIN, required=keys)
    assert kept.size == 21
    # Broken: a log that put another entry at leaf 7 (its checkpoint and proof are for that entry).
    forked = [*leaves[:7], merkle.SHA256.hash_leaf(b"another entry"), *leaves[8:]]
    forked_note = sign_checkpoint(Checkpoint(ORIGIN, 21, _root(forked)), log_keys)
    forged = receipts.Receipt(ORIGIN, "req-7", 7, forked_note, 21, tuple(_inclusion(forked, 7))).to_dict()
    with pytest.raises(audit.BrokenPromiseError) as error:
        audit.verify_promise_kept(as_json, forged, keys, origin=ORIGIN)
    assert error.value.code == "promise_broken"
    short_note = sign_checkpoint(Checkpoint(ORIGIN, 7, _root(leaves[:7])), log_keys)
    short = {**receipt, "checkpoint": short_note.decode(), "tree_size": 7, "inclusion_proof": []}
    with pytest.raises(audit.BrokenPromiseError):  # the tree does not cover the promised leaf
        audit.verify_promise_kept(as_json, short, keys, origin=ORIGIN)
    with pytest.raises(ProofError):  # the receipt of another leaf answers nothing
        audit.verify_promise_kept(as_json, {**receipt, "leaf_index": 6}, keys, origin=ORIGIN)


def test_consistency_between_core_trees(log_keys: list[core_note.NoteSigner]) -> None:
    _, leaves = _log(40)
    for old, new in ((1, 40), (8, 40), (13, 27), (27, 27), (0, 5)):
        proof = merkle.assemble(merkle.consistency_plan(old, new), lambda n: _root(leaves[n.begin : n.end]))
        audit.verify_consistency(old, new, _root(leaves[:old]), _root(leaves[:new]), proof)
        if proof:
            with pytest.raises(ProofError):
                audit.verify_consistency(old, new, _root(leaves[:old]), _root(leaves[:new]), proof[:-1])
            with pytest.raises(ProofError):
                audit.verify_consistency(old, new, _root(leaves[: old + 1]), _root(leaves[:new]), proof)
    with pytest.raises(ProofError):
        audit.verify_consistency(5, 4, _root(leaves[:5]), _root(leaves[:4]), [])
