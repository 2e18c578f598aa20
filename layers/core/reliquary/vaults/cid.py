"""IPFS content identifiers computed here, so a node's answer is checked rather than trusted. Pure.

A body is added to IPFS as Kubo's ``ipfs add --cid-version=1 --raw-leaves --chunker=size-262144`` builds
it (js-ipfs builds the same): the body is cut into fixed-size chunks; each chunk is a ``raw`` block
(multicodec 0x55); a body of one chunk (or none: the empty body is one empty chunk) is that block itself.
Longer bodies get a balanced tree of UnixFS ``File`` nodes in dag-pb (0x70), at most 174 links a node,
every leaf at the same depth, grouped from the left. Each node is the dag-pb encoding of its links
(child CID, empty name, cumulative size: the child's block plus everything under it) followed by the
UnixFS data (type File, file size, each child's file size). Every CID is version 1 over SHA-256; it is
written in multibase base32 (``b...``), and any of its spellings parses (base32, base58btc ``z...``, or
the version 0 ``Qm...`` of a dag-pb node, which names the same block).

What a CID proves: the root's hash covers its links' CIDs and sizes, and each link's CID covers that
child, down to the raw chunks. A body whose CID, recomputed here, equals the recorded one is that body,
byte for byte; this holds whichever node served it.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass

from reliquary.errors import InvalidDidError, InvalidRequestError
from reliquary.identity.did import b58decode, decode_varint, encode_varint

RAW = 0x55
DAG_PB = 0x70
SHA2_256 = 0x12
CHUNK_SIZE = 256 * 1024  # Kubo's default chunker, size-262144
MAX_LINKS = 174  # Kubo's and js-ipfs's links per UnixFS node (the balanced layout)
_UNIXFS_FILE = 2
_MAX_CID_TEXT = 128  # a version 1 SHA-256 CID is 59 characters in base32


@dataclass(frozen=True, slots=True)
class Cid:
    """A parsed CID: version, multicodec and the SHA-256 digest of the block it names."""

    version: int
    codec: int
    digest: bytes

    @classmethod
    def of_block(cls, codec: int, block: bytes) -> Cid:
        return cls(1, codec, hashlib.sha256(block).digest())

    @classmethod
    def parse(cls, text: object) -> Cid:
        """Any spelling of a CID of this module's kind; ``InvalidRequestError`` for anything else."""
        if not isinstance(text, str) or not 0 < len(text) <= _MAX_CID_TEXT or not text.isascii():
            raise _malformed("text")
        if len(text) == 46 and text.startswith("Qm"):  # version 0: a bare base58btc SHA-256 multihash
            return cls(0, DAG_PB, _multihash_digest(_base58(text)))
        if text[0] == "b":
            raw = _base32(text[1:])
        elif text[0] == "z":
            raw = _base58(text[1:])
        else:
            raise _malformed("multibase")
        version, used = _varint(raw)
        codec, more = _varint(raw[used:])
        if version != 1:
            raise _malformed("version")
        if codec not in (RAW, DAG_PB):
            raise _malformed("codec")
        return cls(1, codec, _multihash_digest(raw[used + more :]))

    def to_bytes(self) -> bytes:
        """The binary CID (version 1 form), as dag-pb links carry it."""
        return encode_varint(1) + encode_varint(self.codec) + bytes([SHA2_256, 32]) + self.digest

    def __str__(self) -> str:
        """Multibase base32 (lower case, unpadded) of the version 1 form: Kubo's spelling."""
        return "b" + _b32(self.to_bytes())

    def names_same_block(self, other: Cid) -> bool:
        """Whether two CIDs name the same block whatever their version or spelling."""
        return self.codec == other.codec and self.digest == other.digest


def file_cid(body: bytes, *, chunk_size: int = CHUNK_SIZE, max_links: int = MAX_LINKS) -> Cid:
    """The CID of ``body`` added with raw leaves, a fixed-size chunker and the balanced layout."""
    if chunk_size < 1 or max_links < 2:
        raise ValueError("a chunk is at least one byte and a node has at least two links")
    chunks = [body[start : start + chunk_size] for start in range(0, len(body), chunk_size)] or [b""]
    # One level of the tree: (cid, cumulative size, file bytes under it) of each node, left to right.
    level = [(Cid.of_block(RAW, chunk), len(chunk), len(chunk)) for chunk in chunks]
    while len(level) > 1:
        level = [_file_node(level[start : start + max_links]) for start in range(0, len(level), max_links)]
    return level[0][0]


def _file_node(children: list[tuple[Cid, int, int]]) -> tuple[Cid, int, int]:
    links = b"".join(
        _field_bytes(2, _field_bytes(1, cid.to_bytes()) + _field_bytes(2, b"") + _field_varint(3, tsize))
        for cid, tsize, _ in children
    )
    file_size = sum(size for _, _, size in children)
    unixfs = _field_varint(1, _UNIXFS_FILE) + _field_varint(3, file_size)
    unixfs += b"".join(_field_varint(4, size) for _, _, size in children)
    block = links + _field_bytes(1, unixfs)  # dag-pb's canonical order: links, then data
    return Cid.of_block(DAG_PB, block), len(block) + sum(tsize for _, tsize, _ in children), file_size


def _field_bytes(number: int, value: bytes) -> bytes:
    return encode_varint(number << 3 | 2) + encode_varint(len(value)) + value


def _field_varint(number: int, value: int) -> bytes:
    return encode_varint(number << 3) + encode_varint(value)


def _malformed(check: str) -> InvalidRequestError:
    # ``check`` names the failed check; the text itself is never repeated.
    return InvalidRequestError("the CID is malformed", check=check)


def _multihash_digest(raw: bytes) -> bytes:
    if raw[:2] != bytes([SHA2_256, 32]):
        raise _malformed("multihash")
    if len(raw) != 34:
        raise _malformed("length")
    return raw[2:]


def _varint(raw: bytes) -> tuple[int, int]:
    try:
        return decode_varint(raw)
    except InvalidDidError:
        raise _malformed("varint") from None


def _base58(text: str) -> bytes:
    try:
        return b58decode(text)
    except InvalidDidError:
        raise _malformed("base58") from None


def _base32(text: str) -> bytes:
    # Multibase "b" is RFC 4648 base32, lower case, no padding; one spelling only.
    if not text or text != text.lower() or "=" in text:
        raise _malformed("base32")
    try:
        raw = base64.b32decode(text.upper() + "=" * (-len(text) % 8))
    except ValueError:
        raise _malformed("base32") from None
    if _b32(raw) != text:
        raise _malformed("base32")
    return raw


def _b32(raw: bytes) -> str:
    return base64.b32encode(raw).decode("ascii").lower().rstrip("=")
