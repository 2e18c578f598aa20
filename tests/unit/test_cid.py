"""CIDs computed here are the ones Kubo and js-ipfs build (``add --cid-version=1 --raw-leaves``, fixed
chunker, balanced layout); every spelling of a CID parses to the same block, and nothing else parses.
The live comparison with a node is tests/permanent/test_ipfs_store.py."""

from __future__ import annotations

import pytest

from reliquary.errors import InvalidRequestError
from reliquary.identity.did import b58encode
from reliquary.vaults.cid import DAG_PB, RAW, Cid, file_cid

KIB = 1024


def _body(size: int) -> bytes:
    return bytes((i * 31 + 7) & 255 for i in range(size))


# Answers of js-ipfs 0.66.1 (``ipfs add --cid-version=1 --raw-leaves``, chunker size-262144 unless named)
# for the bodies of ``_body``, as it spelled them (base58btc).
NODE_ANSWERS = [
    (0, 262144, "zb2rhmy65F3REf8SZp7De11gxtECBGgUKaLdiDj7MCGCHxbDW"),
    (1, 262144, "zb2rhkFctXhftgPKqezfZCCdxjhoaNvdjG2VHtYjkaz8Bv64G"),
    (256 * KIB, 262144, "zb2rhkrADRSPjvmEpS23QhCjzwYdyQ3D5iRk7tFYPZALYwJKc"),
    (256 * KIB + 1, 262144, "zdj7Wi8vrakpxfqQ1zz81fojK7TBSkjWcvpU1sxRBVR9m1MMQ"),
    (512 * KIB, 262144, "zdj7WgBKkiqc19tWmG5QF4aK2vhsrsMWWPLTqQdaedCtcGq3D"),
    (1024 * KIB + 12345, 262144, "zdj7WhajDnRBNmjqStg7gqbRiVaj74YVst4kePPMo8zXqszJ9"),
    (174 * KIB, 1024, "zdj7WYXvrxCyxzzKrjwbBV9CZtFj721mNTm33sNdR7b6EtYRF"),
    (200 * KIB + 7, 1024, "zdj7Wm4epJmbh23bjSL6yCJXP8ZhM5mAYV398xKd7PK5aKgFW"),
]
EMPTY = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"  # Kubo's CID of the empty body


@pytest.mark.parametrize(("size", "chunk", "answer"), NODE_ANSWERS)
def test_the_local_cid_names_the_block_the_node_built(size: int, chunk: int, answer: str) -> None:
    local = file_cid(_body(size), chunk_size=chunk)
    assert local.names_same_block(Cid.parse(answer))
    assert local.codec == (RAW if size <= chunk else DAG_PB)
    assert Cid.parse(str(local)) == local


def test_the_empty_body_is_one_empty_raw_block() -> None:
    assert str(file_cid(b"")) == EMPTY


def test_a_body_of_one_chunk_is_its_raw_block_and_one_byte_more_makes_a_node() -> None:
    assert file_cid(_body(256 * KIB)).codec == RAW
    assert file_cid(_body(256 * KIB + 1)).codec == DAG_PB
    assert file_cid(_body(5), chunk_size=5) != file_cid(_body(5), chunk_size=4)


def test_a_change_of_one_byte_changes_the_cid() -> None:
    body = _body(600 * KIB)
    changed = body[:300000] + bytes([body[300000] ^ 1]) + body[300001:]
    assert not file_cid(body).names_same_block(file_cid(changed))


def test_every_spelling_of_a_cid_names_the_same_block() -> None:
    node = file_cid(_body(300 * KIB))
    base58 = "z" + b58encode(node.to_bytes())
    version0 = b58encode(bytes([0x12, 32]) + node.digest)
    assert all(Cid.parse(text).names_same_block(node) for text in (str(node), base58, version0))
    assert Cid.parse(version0).version == 0
    assert Cid.parse(version0) != node  # another version, the same block
    raw = file_cid(b"x")
    assert not Cid(1, DAG_PB, raw.digest).names_same_block(raw)  # the codec counts


def _v1(prefix: bytes) -> str:
    return "z" + b58encode(prefix)


@pytest.mark.parametrize(
    ("text", "check"),
    [
        ("", "text"),
        (42, "text"),
        ("b" + "a" * 200, "text"),
        ("bafkréi", "text"),
        ("m" + "A" * 40, "multibase"),
        (EMPTY.upper(), "multibase"),
        ("B" + EMPTY[1:].upper(), "multibase"),
        ("b" + EMPTY[1:].upper(), "base32"),
        (EMPTY + "=", "base32"),
        (EMPTY[:-1] + "1", "base32"),
        (EMPTY[:-1] + "v", "base32"),  # trailing bits set: a second spelling of other bytes
        ("z0OIl", "base58"),
        (_v1(bytes([2, 0x55, 0x12, 32]) + bytes(32)), "version"),
        (_v1(bytes([1, 0x71, 0x12, 32]) + bytes(32)), "codec"),
        (_v1(bytes([1, 0x55, 0x13, 64]) + bytes(64)), "multihash"),
        (_v1(bytes([1, 0x55, 0x12, 32]) + bytes(31)), "length"),
        (_v1(bytes([1, 0x55, 0x12, 32]) + bytes(33)), "length"),
        (_v1(bytes([0x81, 0x00, 0x55])), "varint"),
        ("Qm" + "1" * 44, "multihash"),
    ],
)
def test_anything_else_is_refused_naming_the_check_never_the_text(text: object, check: str) -> None:
    with pytest.raises(InvalidRequestError) as refused:
        Cid.parse(text)
    assert refused.value.details == {"check": check}
    assert refused.value.message == "the CID is malformed"


def test_a_tree_needs_two_links_a_node_and_a_positive_chunk() -> None:
    for chunk, links in ((0, 174), (1, 1)):
        with pytest.raises(ValueError, match="link"):
            file_cid(b"x", chunk_size=chunk, max_links=links)
