"""Arweave format-2 data transactions, built and signed here with ``cryptography``. Pure: no network.

What a node checks, and so what is built here (the rules of arweave-js, which nodes and arlocal share):

- ``data_root``: the body is cut into 256 KiB chunks; when the bytes left after a full chunk would make a
  last chunk under 32 KiB, the last two chunks split what is left in half (the first one rounding up).
  Like arweave-js, a body whose size is a multiple of 256 KiB ends with an empty chunk, which counts in
  the root. A leaf is SHA-256(SHA-256(SHA-256(chunk)) || SHA-256(end offset as 32 bytes big-endian)); a
  branch is SHA-256(SHA-256(left) || SHA-256(right) || SHA-256(left's end offset)); an odd node moves up
  as it is. The empty body has the empty ``data_root``.
- the signature: RSA-PSS (SHA-256, MGF1-SHA-256, 32-byte salt; any salt length verifies) with a
  4096-bit key of exponent 65537 over the deep hash (SHA-384) of [format "2", owner (the key's
  modulus), target, quantity, reward, anchor, tags as [name, value] pairs, data size as decimal text,
  data_root].
- the transaction id: base64url(SHA-256(signature)); the wallet's address: base64url(SHA-256(owner)).

A transaction id therefore proves who signed what: the signature covers ``data_root`` and the size, which
fix the body. The body's own SHA-256 is recorded beside the item as well, so a read is checked without
rebuilding the chunk tree.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from reliquary.errors import InvalidRequestError, PayloadTooLargeError

MAX_CHUNK = 256 * 1024
MIN_CHUNK = 32 * 1024
KEY_BITS = 4096
PUBLIC_EXPONENT = 65537
SALT_LENGTH = 32
# Posted whole in POST /tx (base64url in JSON): arlocal takes up to 12 MiB, nodes up to 10 MiB. Larger
# bodies would need the chunk upload (POST /chunk), which sealed items (4 MiB at most) never do.
MAX_INLINE_DATA = 10 * 1024 * 1024
MAX_TAG_BYTES = 2048  # a node refuses more tag bytes (names and values together)
_PSS = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=SALT_LENGTH)
# Verifying takes any salt length, as nodes do: arweave-js on Node.js signs with the longest (478 bytes).
_PSS_ANY_SALT = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.AUTO)

DeepHashable = bytes | Sequence["DeepHashable"]


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def b64url_decode(text: str) -> bytes:
    """Strict unpadded base64url; ``InvalidRequestError`` for any other spelling."""
    if "=" in text or len(text) % 4 == 1:
        raise InvalidRequestError("the value is not base64url")
    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise InvalidRequestError("the value is not base64url") from None
    if b64url(data) != text:
        raise InvalidRequestError("the value is not base64url")
    return data


def deep_hash(item: DeepHashable) -> bytes:
    """Arweave's deep hash (SHA-384) of a blob or a nested list of blobs."""
    if isinstance(item, bytes):
        tag = hashlib.sha384(b"blob" + str(len(item)).encode("ascii")).digest()
        return hashlib.sha384(tag + hashlib.sha384(item).digest()).digest()
    acc = hashlib.sha384(b"list" + str(len(item)).encode("ascii")).digest()
    for child in item:
        acc = hashlib.sha384(acc + deep_hash(child)).digest()
    return acc


def chunk_ranges(size: int) -> list[tuple[int, int]]:
    """(start, end) of each chunk of a body of ``size`` bytes, the trailing empty chunk included."""
    ranges: list[tuple[int, int]] = []
    cursor, rest = 0, size
    while rest >= MAX_CHUNK:
        length = MAX_CHUNK
        if 0 < rest - MAX_CHUNK < MIN_CHUNK:
            length = (rest + 1) // 2
        ranges.append((cursor, cursor + length))
        cursor, rest = cursor + length, rest - length
    ranges.append((cursor, cursor + rest))
    return ranges


def data_root(body: bytes) -> bytes:
    """The Merkle root of the body's chunks (empty for the empty body)."""
    if not body:
        return b""
    nodes = [(_leaf(body[start:end], end), end) for start, end in chunk_ranges(len(body))]
    while len(nodes) > 1:
        level = []
        for index in range(0, len(nodes), 2):
            pair = nodes[index : index + 2]
            if len(pair) == 1:
                level.append(pair[0])
                continue
            (left, left_end), (right, right_end) = pair
            level.append((_sha256(_sha256(left), _sha256(right), _sha256(_note(left_end))), right_end))
        nodes = level
    return nodes[0][0]


def _leaf(chunk: bytes, end: int) -> bytes:
    return _sha256(_sha256(_sha256(chunk)), _sha256(_note(end)))


def _note(offset: int) -> bytes:
    return offset.to_bytes(32, "big")


def _sha256(*parts: bytes) -> bytes:
    return hashlib.sha256(b"".join(parts)).digest()


class TransactionSigner(Protocol):
    """What signs a transaction: a wallet's owner (its key's 512-byte modulus), its address and RSA-PSS
    (SHA-256) signatures. ``ArweaveWallet`` holds the key; ``reliquary.adapters.kms.KmsArweaveWallet``
    leaves it in KMS."""

    owner: bytes
    address: str

    def sign(self, message: bytes) -> bytes: ...


def wallet_address(owner: bytes) -> str:
    return b64url(hashlib.sha256(owner).digest())


def check_owner(owner: bytes, exponent: int) -> None:
    if len(owner) != KEY_BITS // 8 or owner[0] < 0x80 or exponent != PUBLIC_EXPONENT:
        raise InvalidRequestError("an Arweave wallet is a 4096-bit RSA key of exponent 65537")


class ArweaveWallet:
    """An Arweave wallet: a 4096-bit RSA key of exponent 65537. Its private key leaves the object only
    through ``private_bytes``, to be wrapped by the root of trust (``reliquary.vaults.wallet``)."""

    def __init__(self, private_key: rsa.RSAPrivateKey) -> None:
        numbers = private_key.public_key().public_numbers()
        if private_key.key_size != KEY_BITS or numbers.e != PUBLIC_EXPONENT:
            raise InvalidRequestError("an Arweave wallet is a 4096-bit RSA key of exponent 65537")
        self._key = private_key
        self.owner = numbers.n.to_bytes(KEY_BITS // 8, "big")
        self.address = wallet_address(self.owner)

    @classmethod
    def generate(cls) -> ArweaveWallet:
        return cls(rsa.generate_private_key(public_exponent=PUBLIC_EXPONENT, key_size=KEY_BITS))

    @classmethod
    def from_private_bytes(cls, der: bytes) -> ArweaveWallet:
        """A wallet from its PKCS#8 DER private key (as ``private_bytes`` gives it)."""
        try:
            key = serialization.load_der_private_key(der, password=None)
        except (ValueError, TypeError):
            raise InvalidRequestError("not an RSA private key") from None
        if not isinstance(key, rsa.RSAPrivateKey):
            raise InvalidRequestError("not an RSA private key")
        return cls(key)

    def private_bytes(self) -> bytes:
        return self._key.private_bytes(
            serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )

    def sign(self, message: bytes) -> bytes:
        return self._key.sign(message, _PSS, hashes.SHA256())

    def __repr__(self) -> str:
        return f"ArweaveWallet(address={self.address!r})"


@dataclass(frozen=True, slots=True)
class Tag:
    """A transaction tag; Arweave stores name and value as bytes (UTF-8 here), base64url in JSON."""

    name: str
    value: str


@dataclass(frozen=True, slots=True)
class DataTransaction:
    """A signed format-2 transaction carrying ``data`` to no one (quantity 0, no target)."""

    owner: bytes
    anchor: bytes
    tags: tuple[Tag, ...]
    data: bytes
    data_root: bytes
    reward: int
    signature: bytes

    @property
    def id(self) -> str:
        return b64url(hashlib.sha256(self.signature).digest())

    @classmethod
    def from_json(cls, tx: Any, data: bytes) -> DataTransaction:
        """A transaction as a node answers it (``GET /tx/<id>``, whose ``data`` may be left out) carrying
        ``data``; ``InvalidRequestError`` unless it is a format-2 data transaction (no target, quantity 0)
        of ``data``'s size whose id is its signature's hash. The signature is checked by
        ``verify_data_transaction``."""
        refused = InvalidRequestError("the value is not an Arweave data transaction")
        try:
            fields = (tx["format"], tx["target"], tx["quantity"], tx["data_size"], tx["id"])
            data_transaction = (
                fields[:4] == (2, "", "0", str(len(data)))
                and isinstance(tx["reward"], str)
                and tx["reward"].isdigit()
            )
            tags = tuple(
                Tag(b64url_decode(tag["name"]).decode("utf-8"), b64url_decode(tag["value"]).decode("utf-8"))
                for tag in tx["tags"]
            )
            parsed = cls(
                owner=b64url_decode(tx["owner"]),
                anchor=b64url_decode(tx["last_tx"]),
                tags=tags,
                data=data,
                data_root=b64url_decode(tx["data_root"]),
                reward=int(tx["reward"]),
                signature=b64url_decode(tx["signature"]),
            )
        except (KeyError, TypeError, AttributeError, ValueError):  # UnicodeDecodeError is a ValueError
            raise refused from None
        if not data_transaction or parsed.id != fields[4]:
            raise refused
        return parsed

    def to_json(self) -> dict[str, Any]:
        """The body of ``POST /tx``."""
        return {
            "format": 2,
            "id": self.id,
            "last_tx": b64url(self.anchor),
            "owner": b64url(self.owner),
            "tags": [{"name": _b64_text(tag.name), "value": _b64_text(tag.value)} for tag in self.tags],
            "target": "",
            "quantity": "0",
            "data": b64url(self.data),
            "data_size": str(len(self.data)),
            "data_root": b64url(self.data_root),
            "reward": str(self.reward),
            "signature": b64url(self.signature),
        }


def signature_message(
    *, owner: bytes, anchor: bytes, tags: Sequence[Tag], data_size: int, root: bytes, reward: int
) -> bytes:
    """The deep hash a format-2 transaction's signature covers."""
    pairs = [[tag.name.encode("utf-8"), tag.value.encode("utf-8")] for tag in tags]
    fields: list[DeepHashable] = [b"2", owner, b"", b"0", str(reward).encode("ascii"), anchor, pairs]
    return deep_hash([*fields, str(data_size).encode("ascii"), root])


def sign_data_transaction(
    wallet: TransactionSigner, data: bytes, *, tags: Sequence[Tag], anchor: bytes, reward: int
) -> DataTransaction:
    """A format-2 transaction of ``data``, signed by ``wallet``, anchored to ``anchor`` (a recent block
    hash from ``GET /tx_anchor``), paying ``reward`` winston (``GET /price/<size>``)."""
    if len(data) > MAX_INLINE_DATA:
        raise PayloadTooLargeError(
            "the body is larger than one Arweave transaction carries", limit=MAX_INLINE_DATA
        )
    if reward < 0 or len(anchor) > 48:
        raise InvalidRequestError("the reward or the anchor is out of range")
    tag_bytes = sum(len(tag.name.encode("utf-8")) + len(tag.value.encode("utf-8")) for tag in tags)
    if tag_bytes > MAX_TAG_BYTES or any(not tag.name or not tag.value for tag in tags):
        raise InvalidRequestError("tags have a name and a value, 2048 bytes at most in all")
    root = data_root(data)
    message = signature_message(
        owner=wallet.owner, anchor=anchor, tags=tags, data_size=len(data), root=root, reward=reward
    )
    return DataTransaction(wallet.owner, anchor, tuple(tags), data, root, reward, wallet.sign(message))


def verify_data_transaction(tx: DataTransaction) -> bool:
    """Whether ``tx`` is signed by its owner over its fields and its ``data_root`` is its data's."""
    if data_root(tx.data) != tx.data_root:
        return False
    message = signature_message(
        owner=tx.owner,
        anchor=tx.anchor,
        tags=tx.tags,
        data_size=len(tx.data),
        root=tx.data_root,
        reward=tx.reward,
    )
    public = rsa.RSAPublicNumbers(PUBLIC_EXPONENT, int.from_bytes(tx.owner, "big")).public_key()
    try:
        public.verify(tx.signature, message, _PSS_ANY_SALT, hashes.SHA256())
    except InvalidSignature:
        return False
    return True


def _b64_text(text: str) -> str:
    return b64url(text.encode("utf-8"))
