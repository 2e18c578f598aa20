"""Decentralized identifiers: ``did:key`` for Ed25519, P-256 and ML-DSA-65, and ``did:web`` resolved through
an injected fetcher. Pure: no network, no clock.

A ``did:key`` is ``did:key:`` and a multibase base58btc string (``z...``) of a multicodec varint followed
by the raw public key (W3C CCG did:key method):

| key       | multicodec                  | varint    | public key                     | signature        |
|-----------|-----------------------------|-----------|--------------------------------|------------------|
| Ed25519   | ``ed25519-pub`` 0xed        | ``ed 01`` | 32 bytes                       | 64 bytes         |
| P-256     | ``p256-pub`` 0x1200         | ``80 24`` | 33 bytes, compressed SEC1 point| 64 bytes r || s  |
| ML-DSA-65 | ``mldsa-65-pub`` 0x1211     | ``91 24`` | 1952 bytes (FIPS 204)          | 3309 bytes       |

The codes are those of the multiformats multicodec table (``table.csv``; ``mldsa-65-pub`` is registered
there as ``0x1211``, status draft). Parsing is strict: every way a string can fail to be one of these keys
is an ``InvalidDidError`` whose ``check`` names it (``prefix``, ``base58``, ``varint``, ``multicodec``,
``length``, ``point``), and a DID parses only from its one canonical spelling.

``did:web`` (W3C CCG did:web method): ``did:web:example.com`` is ``https://example.com/.well-known/did.json``,
``did:web:example.com%3A8443:users:alice`` is ``https://example.com:8443/users/alice/did.json``. The
document is fetched by a ``DidWebFetcher`` the caller supplies (tests stay offline); the resolver asks only
for HTTPS URLs, follows no redirect (a 3xx is an error), caps the body, wants JSON and a document whose
``id`` is the DID. Each failure is a ``DidResolutionError`` naming its check.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol
from urllib.parse import unquote

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature

from reliquary.crypto.signing import SignatureAlgorithm, SigningKey, VerifyingKey
from reliquary.errors import DidResolutionError, InvalidDidError, InvalidSignatureError

DID_KEY_PREFIX = "did:key:"
DID_WEB_PREFIX = "did:web:"
MULTIBASE_BASE58BTC = "z"
DID_CONTEXT = "https://www.w3.org/ns/did/v1"
MULTIKEY_CONTEXT = "https://w3id.org/security/multikey/v1"
MULTIKEY = "Multikey"
# An ML-DSA-65 did:key is about 2670 characters; nothing longer is looked at.
MAX_DID_LENGTH = 4096
MAX_DID_DOCUMENT_BYTES = 64 * 1024
DID_DOCUMENT_MEDIA_TYPES = frozenset(
    {"application/did+json", "application/did+ld+json", "application/json", "application/ld+json"}
)
_P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
_P256_COORDINATE = 32


class KeyType(StrEnum):
    ED25519 = "Ed25519"
    P256 = "P-256"
    ML_DSA_65 = "ML-DSA-65"

    @property
    def multicodec(self) -> int:
        return _MULTICODEC[self]

    @property
    def public_key_length(self) -> int:
        return _PUBLIC_KEY_LENGTH[self]

    @property
    def signature_length(self) -> int:
        return _SIGNATURE_LENGTH[self]


_MULTICODEC = {KeyType.ED25519: 0xED, KeyType.P256: 0x1200, KeyType.ML_DSA_65: 0x1211}
_BY_MULTICODEC = {code: key_type for key_type, code in _MULTICODEC.items()}
_PUBLIC_KEY_LENGTH = {KeyType.ED25519: 32, KeyType.P256: 33, KeyType.ML_DSA_65: 1952}
_SIGNATURE_LENGTH = {KeyType.ED25519: 64, KeyType.P256: 64, KeyType.ML_DSA_65: 3309}


# ------------------------------------------------------------------------------------------ base58btc
_ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_ALPHABET_INDEX = {char: index for index, char in enumerate(_ALPHABET)}


def b58encode(data: bytes) -> str:
    """Base58btc (the Bitcoin alphabet): each leading zero byte is a ``1``."""
    zeros = len(data) - len(data.lstrip(b"\x00"))
    number = int.from_bytes(data, "big")
    digits: list[str] = []
    while number:
        number, digit = divmod(number, 58)
        digits.append(_ALPHABET[digit])
    return "1" * zeros + "".join(reversed(digits))


def b58decode(text: str) -> bytes:
    """The bytes of a base58btc string; ``InvalidDidError(check="base58")`` for any other character or an
    empty string (every base58 string has one encoding, so no canonical check is needed beyond this)."""
    if not text or any(char not in _ALPHABET_INDEX for char in text):
        raise InvalidDidError("the key is not base58btc", check="base58")
    zeros = len(text) - len(text.lstrip("1"))
    number = 0
    for char in text:
        number = number * 58 + _ALPHABET_INDEX[char]
    body = number.to_bytes((number.bit_length() + 7) // 8, "big") if number else b""
    return b"\x00" * zeros + body


# ------------------------------------------------------------------------------------------ varints
_MAX_VARINT_BYTES = 9  # the multiformats unsigned-varint limit (63 bits)


def encode_varint(value: int) -> bytes:
    """The multiformats unsigned varint (LEB128, least significant group first)."""
    if value < 0 or value >= 1 << 63:
        raise ValueError("a varint is 0..2^63-1")
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def decode_varint(data: bytes) -> tuple[int, int]:
    """(value, bytes read) of the varint at the start of ``data``. Refused (``check="varint"``): a varint
    that does not end, is longer than 9 bytes, or is not minimal (a last byte of 0 after another byte:
    the same number spelled longer)."""
    value = 0
    for index, byte in enumerate(data[:_MAX_VARINT_BYTES]):
        value |= (byte & 0x7F) << (7 * index)
        if not byte & 0x80:
            if byte == 0 and index > 0:
                raise InvalidDidError("the key's multicodec is not a minimal varint", check="varint")
            return value, index + 1
    raise InvalidDidError("the key's multicodec is not a varint", check="varint")


# ------------------------------------------------------------------------------------------ did:key
@dataclass(frozen=True, slots=True)
class DidKey:
    """A public key named by its ``did:key``. Built only valid: the length is the key type's, and a
    P-256 key is a compressed point on the curve."""

    key_type: KeyType
    public_key: bytes
    _impl: Any = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.public_key, bytes) or len(self.public_key) != self.key_type.public_key_length:
            raise InvalidDidError(
                f"a {self.key_type} did:key holds a {self.key_type.public_key_length}-byte key",
                check="length",
            )
        object.__setattr__(self, "_impl", _verifier(self.key_type, self.public_key))

    @classmethod
    def parse(cls, did: object) -> DidKey:
        """The key of a ``did:key`` string (without a fragment); ``InvalidDidError`` otherwise."""
        if not isinstance(did, str) or not did.startswith(DID_KEY_PREFIX) or len(did) > MAX_DID_LENGTH:
            raise InvalidDidError("a did:key is did:key:z followed by base58btc", check="prefix")
        return cls.from_multibase(did[len(DID_KEY_PREFIX) :])

    @classmethod
    def from_multibase(cls, value: object) -> DidKey:
        """The key of a Multikey ``publicKeyMultibase`` (``z`` + base58btc of multicodec + key)."""
        if (
            not isinstance(value, str)
            or not value.startswith(MULTIBASE_BASE58BTC)
            or len(value) > MAX_DID_LENGTH
        ):
            raise InvalidDidError("a did:key is did:key:z followed by base58btc", check="prefix")
        decoded = b58decode(value[1:])
        code, used = decode_varint(decoded)
        key_type = _BY_MULTICODEC.get(code)
        if key_type is None:
            raise InvalidDidError(
                "the key's multicodec is not Ed25519, P-256 or ML-DSA-65", check="multicodec"
            )
        return cls(key_type, decoded[used:])

    @property
    def multibase(self) -> str:
        return MULTIBASE_BASE58BTC + b58encode(encode_varint(self.key_type.multicodec) + self.public_key)

    @property
    def did(self) -> str:
        return DID_KEY_PREFIX + self.multibase

    @property
    def key_id(self) -> str:
        """The verification method's id in the DID document: ``<did>#<multibase>``."""
        return f"{self.did}#{self.multibase}"

    def verify(self, message: bytes, signature: bytes) -> None:
        """``InvalidSignatureError`` unless ``signature`` (Ed25519: 64 bytes; P-256: ECDSA SHA-256 as
        64 bytes r || s; ML-DSA-65: 3309 bytes, empty context) signs ``message`` under this key."""
        if len(signature) != self.key_type.signature_length:
            raise InvalidSignatureError("signature does not verify")
        if self.key_type is KeyType.ML_DSA_65:
            self._impl.verify(message, signature)  # raises InvalidSignatureError itself
            return
        if self.key_type is KeyType.ED25519:
            verify = functools.partial(self._impl.verify, signature, message)
        else:
            r = int.from_bytes(signature[:_P256_COORDINATE], "big")
            s = int.from_bytes(signature[_P256_COORDINATE:], "big")
            if not (0 < r < _P256_ORDER and 0 < s < _P256_ORDER):
                raise InvalidSignatureError("signature does not verify")
            der = encode_dss_signature(r, s)
            verify = functools.partial(self._impl.verify, der, message, ec.ECDSA(hashes.SHA256()))
        try:
            verify()
        except InvalidSignature:
            raise InvalidSignatureError("signature does not verify") from None

    def verification_method(
        self, controller: str | None = None, method_id: str | None = None
    ) -> dict[str, str]:
        """The key as a Multikey verification method (by default: this did:key's own)."""
        return {
            "id": method_id or self.key_id,
            "type": MULTIKEY,
            "controller": controller or self.did,
            "publicKeyMultibase": self.multibase,
        }

    def document(self) -> dict[str, Any]:
        """The DID document a did:key resolves to: one Multikey verification method, used for
        authentication, assertions and capabilities (no key agreement: these are signature keys)."""
        method = self.verification_method()
        return {
            "@context": [DID_CONTEXT, MULTIKEY_CONTEXT],
            "id": self.did,
            "verificationMethod": [method],
            "authentication": [method["id"]],
            "assertionMethod": [method["id"]],
            "capabilityInvocation": [method["id"]],
            "capabilityDelegation": [method["id"]],
        }


def _verifier(key_type: KeyType, public_key: bytes) -> Any:
    if key_type is KeyType.ED25519:
        return ed25519.Ed25519PublicKey.from_public_bytes(public_key)
    if key_type is KeyType.P256:
        if public_key[0] not in (2, 3):
            raise InvalidDidError("a P-256 did:key holds a compressed point", check="point")
        try:
            return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), public_key)
        except ValueError:
            raise InvalidDidError("the P-256 key is not a point on the curve", check="point") from None
    return VerifyingKey(SignatureAlgorithm.ML_DSA_65, public_key)


class DidKeySigner:
    """A private key and its ``did:key``. Its secret leaves only through ``secret_bytes()``: the Ed25519
    seed (32 bytes), the P-256 scalar (32 bytes), or the liboqs ML-DSA-65 secret key."""

    __slots__ = ("_impl", "did_key")

    def __init__(self, did_key: DidKey, impl: Any) -> None:
        self.did_key = did_key
        self._impl = impl

    @classmethod
    def generate(cls, key_type: KeyType) -> DidKeySigner:
        if key_type is KeyType.ED25519:
            return cls.from_ed25519_seed(ed25519.Ed25519PrivateKey.generate().private_bytes_raw())
        if key_type is KeyType.P256:
            return cls._p256(ec.generate_private_key(ec.SECP256R1()))
        signing = SigningKey.generate(SignatureAlgorithm.ML_DSA_65)
        return cls(DidKey(KeyType.ML_DSA_65, signing.public_key), signing)

    @classmethod
    def from_ed25519_seed(cls, seed: bytes) -> DidKeySigner:
        private = ed25519.Ed25519PrivateKey.from_private_bytes(seed)
        return cls(DidKey(KeyType.ED25519, private.public_key().public_bytes_raw()), private)

    @classmethod
    def load(cls, did: str, secret: bytes) -> DidKeySigner:
        """The signer of ``did`` from ``secret_bytes()``; ``InvalidDidError(check="secret")`` when the
        secret is not the private half of the DID's key."""
        did_key = DidKey.parse(did)
        try:
            if did_key.key_type is KeyType.ED25519:
                signer = cls.from_ed25519_seed(secret)
            elif did_key.key_type is KeyType.P256:
                signer = cls._p256(ec.derive_private_key(int.from_bytes(secret, "big"), ec.SECP256R1()))
            else:
                signing = SigningKey(SignatureAlgorithm.ML_DSA_65, secret, did_key.public_key)
                signer = cls(did_key, signing)
        except (ValueError, TypeError):
            raise InvalidDidError("the secret is not a key of this DID", check="secret") from None
        if signer.did_key != did_key or len(secret) == 0:
            raise InvalidDidError("the secret is not a key of this DID", check="secret")
        if did_key.key_type is KeyType.ML_DSA_65:
            probe = b"RELIQUARY did:key probe"
            try:  # a secret of another key signs what this key refuses
                did_key.verify(probe, signer.sign(probe))
            except InvalidSignatureError:
                raise InvalidDidError("the secret is not a key of this DID", check="secret") from None
        return signer

    @classmethod
    def _p256(cls, private: ec.EllipticCurvePrivateKey) -> DidKeySigner:
        point = private.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.CompressedPoint
        )
        return cls(DidKey(KeyType.P256, point), private)

    @property
    def did(self) -> str:
        return self.did_key.did

    @property
    def key_type(self) -> KeyType:
        return self.did_key.key_type

    def sign(self, message: bytes) -> bytes:
        if self.key_type is KeyType.ED25519:
            return bytes(self._impl.sign(message))
        if self.key_type is KeyType.P256:
            r, s = decode_dss_signature(self._impl.sign(message, ec.ECDSA(hashes.SHA256())))
            return r.to_bytes(_P256_COORDINATE, "big") + s.to_bytes(_P256_COORDINATE, "big")
        return bytes(self._impl.sign(message))

    def secret_bytes(self) -> bytes:
        if self.key_type is KeyType.ED25519:
            return bytes(self._impl.private_bytes_raw())
        if self.key_type is KeyType.P256:
            return int(self._impl.private_numbers().private_value).to_bytes(_P256_COORDINATE, "big")
        return bytes(self._impl.secret_bytes())

    def __repr__(self) -> str:
        return f"DidKeySigner({self.key_type}, {self.did[:24]}...)"


# ------------------------------------------------------------------------------------------ did:web
class DidWebFetcher(Protocol):
    """Fetches one URL without following redirects: (status, headers, body). A real one streams with a cap
    of its own; the resolver checks the size again."""

    def fetch(self, url: str) -> tuple[int, Mapping[str, str], bytes]: ...


_HOST_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
_IPV4 = re.compile(r"[0-9.]+")
_PORT = re.compile(r"[1-9][0-9]{0,4}")
_PATH_SEGMENT = re.compile(r"[A-Za-z0-9._~-]+")


def did_web_url(did: object) -> str:
    """The HTTPS URL of a did:web's document; ``InvalidDidError`` for a DID that is not a did:web of a
    host name (did:web forbids IP addresses), with an optional ``%3A`` port and path segments."""
    if not isinstance(did, str) or not did.startswith(DID_WEB_PREFIX) or len(did) > MAX_DID_LENGTH:
        raise InvalidDidError("a did:web is did:web:<host>[%3A<port>][:<path>...]", check="prefix")
    host_part, *path = did[len(DID_WEB_PREFIX) :].split(":")
    host, _, port = host_part.replace("%3a", "%3A").partition("%3A")
    labels = host.split(".")
    if (
        len(host) > 253
        or not all(_HOST_LABEL.fullmatch(label) for label in labels)
        or _IPV4.fullmatch(host)
        or (port and (not _PORT.fullmatch(port) or int(port) > 65535))
    ):
        raise InvalidDidError("a did:web names a host (not an IP address) and an optional port", check="host")
    segments = [unquote(segment) for segment in path]
    if any(not _PATH_SEGMENT.fullmatch(s) or s in {".", ".."} for s in segments):
        raise InvalidDidError("a did:web path segment is letters, digits and ._~-", check="path")
    authority = f"{host.lower()}:{port}" if port else host.lower()
    location = "/".join(segments) if segments else ".well-known"
    return f"https://{authority}/{location}/did.json"


def resolve_did_web(
    did: str, fetcher: DidWebFetcher, *, max_bytes: int = MAX_DID_DOCUMENT_BYTES
) -> dict[str, Any]:
    """The did:web's document, fetched through ``fetcher``: ``DidResolutionError`` for a redirect, any
    status but 200, a type other than JSON, a body over ``max_bytes``, malformed JSON (duplicate members
    included), an ``id`` other than ``did`` or malformed verification methods."""
    url = did_web_url(did)
    status, headers, body = fetcher.fetch(url)
    lowered = {str(name).lower(): str(value) for name, value in headers.items()}
    if 300 <= status < 400:
        raise DidResolutionError(
            "the DID document's URL redirects (redirects are not followed)", check="redirect"
        )
    if status != 200:
        raise DidResolutionError("the DID document's URL did not answer 200", check="status")
    media_type = lowered.get("content-type", "").split(";")[0].strip().lower()
    if media_type not in DID_DOCUMENT_MEDIA_TYPES:
        raise DidResolutionError("the DID document is not JSON", check="content_type")
    declared = lowered.get("content-length", "0")
    if not declared.isdigit() or int(declared) > max_bytes or len(body) > max_bytes:
        raise DidResolutionError(f"the DID document is larger than {max_bytes} bytes", check="size")
    document = _json_object(body)
    if document.get("id") != did:
        raise DidResolutionError("the DID document's id is not the DID resolved", check="id")
    verification_methods(document)
    return document


def resolve(did: str, fetcher: DidWebFetcher | None = None) -> dict[str, Any]:
    """The DID document of a did:key (computed) or a did:web (fetched: needs ``fetcher``)."""
    if isinstance(did, str) and did.startswith(DID_WEB_PREFIX):
        if fetcher is None:
            raise DidResolutionError("resolving a did:web needs a fetcher", check="fetcher")
        return resolve_did_web(did, fetcher)
    return DidKey.parse(did).document()


def verification_methods(document: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """A DID document's verification methods by absolute id (``#fragment`` ids made absolute against
    the document's id); ``DidResolutionError(check="document")`` when they are malformed or repeated."""
    did = document.get("id")
    methods = document.get("verificationMethod", [])
    if not isinstance(did, str) or not isinstance(methods, list):
        raise DidResolutionError("the DID document is malformed", check="document")
    found: dict[str, dict[str, Any]] = {}
    for method in methods:
        if not isinstance(method, dict) or not all(
            isinstance(method.get(member), str) for member in ("id", "type", "controller")
        ):
            raise DidResolutionError("a verification method is malformed", check="document")
        method_id = did + method["id"] if method["id"].startswith("#") else method["id"]
        if method_id in found or not method_id.startswith(did + "#"):
            raise DidResolutionError("a verification method id is repeated or foreign", check="document")
        found[method_id] = method
    return found


def _json_object(body: bytes) -> dict[str, Any]:
    def no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        members = dict(pairs)
        if len(members) != len(pairs):
            raise ValueError("duplicate member")
        return members

    try:
        value = json.loads(body.decode("utf-8"), object_pairs_hook=no_duplicates)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise DidResolutionError("the DID document is not a JSON object", check="json") from None
    if not isinstance(value, dict):
        raise DidResolutionError("the DID document is not a JSON object", check="json")
    return value
