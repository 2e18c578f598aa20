"""Arweave transactions built here agree with arweave-js (tests/vectors/arweave_v2.json): chunking with the
last two chunks rebalanced, data_root, the deep hash, and a transaction it signed. arlocal checks the
live posts (tests/permanent)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from reliquary.errors import InvalidRequestError, PayloadTooLargeError
from reliquary.vaults.arweave_tx import (
    MAX_INLINE_DATA,
    ArweaveWallet,
    DataTransaction,
    DeepHashable,
    Tag,
    b64url,
    b64url_decode,
    chunk_ranges,
    data_root,
    deep_hash,
    sign_data_transaction,
    verify_data_transaction,
)

VECTORS = json.loads((Path(__file__).parents[1] / "vectors" / "arweave_v2.json").read_text(encoding="utf-8"))
KIB = 1024


def _body(size: int) -> bytes:
    return bytes((i * 31 + 7) & 255 for i in range(size))


def _blobs(value: Any) -> DeepHashable:
    return bytes.fromhex(value) if isinstance(value, str) else [_blobs(item) for item in value]


@pytest.fixture(scope="module")
def wallet() -> ArweaveWallet:
    return ArweaveWallet.generate()


@pytest.mark.parametrize("vector", VECTORS["data_root"], ids=lambda v: v["desc"])
def test_chunks_and_data_root_are_arweave_js_s(vector: dict[str, Any]) -> None:
    assert [list(chunk) for chunk in chunk_ranges(vector["size"])] == vector["chunks"]
    assert b64url(data_root(_body(vector["size"]))) == vector["data_root"]


def test_the_last_two_chunks_are_rebalanced_and_a_multiple_of_256_kib_ends_with_an_empty_chunk() -> None:
    assert chunk_ranges(256 * KIB + 100) == [(0, 131122), (131122, 262244)]  # a last chunk under 32 KiB
    assert chunk_ranges(256 * KIB + 32 * KIB) == [(0, 262144), (262144, 294912)]  # exactly 32 KiB: kept
    assert chunk_ranges(512 * KIB)[-1] == (524288, 524288)
    assert data_root(b"") == b""


@pytest.mark.parametrize("vector", VECTORS["deep_hash"], ids=str)
def test_deep_hash_is_arweave_js_s(vector: dict[str, Any]) -> None:
    assert b64url(deep_hash(_blobs(vector["input"]))) == vector["hash"]


def test_a_transaction_signed_by_arweave_js_verifies_and_any_change_does_not() -> None:
    vector = VECTORS["transaction"]
    body = _body(vector["size"])
    tx = DataTransaction.from_json(vector["tx"], body)
    assert verify_data_transaction(tx)
    assert tx.tags == (Tag("Content-Type", "application/octet-stream"), Tag("Envelope-Format", "RQE1"))
    changed = [
        DataTransaction(
            tx.owner, tx.anchor, tx.tags, body[:-1] + b"\x00", tx.data_root, tx.reward, tx.signature
        ),
        DataTransaction(tx.owner, tx.anchor, tx.tags[:1], tx.data, tx.data_root, tx.reward, tx.signature),
        DataTransaction(tx.owner, tx.anchor, tx.tags, tx.data, tx.data_root, tx.reward + 1, tx.signature),
        DataTransaction(tx.owner, bytes(32), tx.tags, tx.data, tx.data_root, tx.reward, tx.signature),
    ]
    assert not any(verify_data_transaction(other) for other in changed)


@pytest.mark.parametrize(
    "change",
    [
        {"id": b64url(bytes(32))},
        {"format": 1},
        {"quantity": "5"},
        {"target": b64url(bytes(32))},
        {"data_size": "299999"},
        {"reward": "-1"},
        {"owner": "not base64url!"},
        {"tags": [{"name": "QQ"}]},
        {"tags": [{"name": "_w", "value": "QQ"}]},  # a name that is not UTF-8
    ],
)
def test_a_node_answer_that_is_not_this_data_transaction_is_refused(change: dict[str, object]) -> None:
    vector = VECTORS["transaction"]
    with pytest.raises(InvalidRequestError):
        DataTransaction.from_json(vector["tx"] | change, _body(vector["size"]))


def test_a_transaction_signed_here_has_its_id_from_its_signature_and_verifies(wallet: ArweaveWallet) -> None:
    body = _body(300 * KIB)
    tx = sign_data_transaction(
        wallet, body, tags=[Tag("Envelope-Format", "RQE1")], anchor=bytes(48), reward=7
    )
    assert tx.id == b64url(hashlib.sha256(tx.signature).digest())
    assert verify_data_transaction(tx)
    assert verify_data_transaction(DataTransaction.from_json(tx.to_json(), body))
    assert wallet.address == b64url(hashlib.sha256(wallet.owner).digest())
    assert len(wallet.owner) == 512
    assert "PRIVATE" not in repr(wallet)
    # Each signature is new (a random salt), each one verifies.
    again = sign_data_transaction(
        wallet, body, tags=[Tag("Envelope-Format", "RQE1")], anchor=bytes(48), reward=7
    )
    assert again.id != tx.id
    assert verify_data_transaction(again)


def test_the_empty_body_has_an_empty_root_and_signs(wallet: ArweaveWallet) -> None:
    tx = sign_data_transaction(wallet, b"", tags=(), anchor=b"", reward=0)
    assert tx.to_json()["data_root"] == tx.to_json()["data"] == ""
    assert verify_data_transaction(tx)


def test_limits_are_refused_before_signing(wallet: ArweaveWallet) -> None:
    with pytest.raises(PayloadTooLargeError):
        sign_data_transaction(wallet, bytes(MAX_INLINE_DATA + 1), tags=(), anchor=b"", reward=0)
    for tags in ([Tag("", "v")], [Tag("n", "")], [Tag("n", "v" * 2048)]):
        with pytest.raises(InvalidRequestError):
            sign_data_transaction(wallet, b"x", tags=tags, anchor=b"", reward=0)
    with pytest.raises(InvalidRequestError):
        sign_data_transaction(wallet, b"x", tags=(), anchor=bytes(49), reward=0)


def test_a_wallet_is_a_4096_bit_key_of_exponent_65537() -> None:
    with pytest.raises(InvalidRequestError):
        ArweaveWallet(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    with pytest.raises(InvalidRequestError):
        ArweaveWallet(rsa.generate_private_key(public_exponent=3, key_size=4096))


@pytest.mark.parametrize("text", ["a=", "a", "ab+c", "ab/c", "abc d", "AB"])
def test_base64url_has_one_spelling(text: str) -> None:
    # "AB" decodes to one byte whose canonical spelling is "AA": a second spelling is refused.
    with pytest.raises(InvalidRequestError):
        b64url_decode(text)
    assert b64url_decode("AA") == b"\x00"
