"""Hybrid post-quantum key encapsulation: HPKE (RFC 9180) with ML-KEM-768 + X25519.

The suite is `cryptography`'s own (KEM MLKEM768_X25519, HKDF-SHA256, AES-256-GCM); nothing here combines
KEMs by hand. Keys are encoded as the concatenation of their ML-KEM-768 and X25519 parts:
public 1184 + 32 = 1216 bytes, private (ML-KEM seed) 64 + 32 = 96 bytes.
"""

from __future__ import annotations

import hashlib

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hpke
from cryptography.hazmat.primitives.asymmetric import mlkem, x25519

from reliquary.errors import InvalidEnvelopeError, InvalidRequestError

SUITE_ID = 0x0001  # RELIQUARY suite 1: HPKE(ML-KEM-768+X25519, HKDF-SHA256, AES-256-GCM) + AES-256-GCM body
MLKEM_PUBLIC_LEN = 1184
MLKEM_SEED_LEN = 64
X25519_LEN = 32
PUBLIC_KEY_LEN = MLKEM_PUBLIC_LEN + X25519_LEN
PRIVATE_KEY_LEN = MLKEM_SEED_LEN + X25519_LEN
ENC_LEN = hpke.KEM.MLKEM768_X25519.enc_length()
AEAD_TAG_LEN = 16

_SUITE = hpke.Suite(hpke.KEM.MLKEM768_X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM)


def sealed_length(plaintext_length: int) -> int:
    return ENC_LEN + plaintext_length + AEAD_TAG_LEN


def requester_key_sha256(public_key: bytes) -> str:
    """How the access flow names a requester's key (in decision records and nonce consumptions): hex
    SHA-256 of the hybrid public key's bytes, as ``HybridPublicKey.to_bytes`` encodes them (plain, not
    the domain-separated ``fingerprint`` that grants use)."""
    if not isinstance(public_key, bytes) or not public_key:
        raise InvalidRequestError("a requester key is bytes", field="requester_public_key")
    return hashlib.sha256(public_key).hexdigest()


class HybridPublicKey:
    """A requester's, custodian's or vault's public key. Construct with ``from_bytes``."""

    __slots__ = ("_encoded", "_fingerprint", "_key")

    def __init__(self, key: hpke.MLKEM768X25519PublicKey, encoded: bytes) -> None:
        self._key = key
        self._encoded = encoded
        self._fingerprint: bytes | None = None

    @classmethod
    def from_bytes(cls, data: bytes) -> HybridPublicKey:
        if not isinstance(data, bytes | bytearray) or len(data) != PUBLIC_KEY_LEN:
            raise InvalidRequestError(
                f"a hybrid public key is {PUBLIC_KEY_LEN} bytes (ML-KEM-768 || X25519)", field="public_key"
            )
        data = bytes(data)
        try:
            key = hpke.MLKEM768X25519PublicKey(
                mlkem.MLKEM768PublicKey.from_public_bytes(data[:MLKEM_PUBLIC_LEN]),
                x25519.X25519PublicKey.from_public_bytes(data[MLKEM_PUBLIC_LEN:]),
            )
        except ValueError:
            raise InvalidRequestError(
                "the hybrid public key is not a valid key", field="public_key"
            ) from None
        return cls(key, data)

    def to_bytes(self) -> bytes:
        return self._encoded

    def fingerprint(self) -> bytes:
        """SHA-256 of the encoded key: how grants name the key they are sealed to. Computed once per key
        object (the key is immutable): a requester checks it on every grant it opens."""
        if self._fingerprint is None:
            self._fingerprint = hashlib.sha256(b"RELIQUARY hybrid key v1\x00" + self._encoded).digest()
        return self._fingerprint

    def seal(self, plaintext: bytes, *, info: bytes) -> bytes:
        """HPKE single-shot seal: enc || ciphertext. Randomised inside the library."""
        try:
            return _SUITE.encrypt(plaintext, self._key, info=info)
        except ValueError:
            # A key whose X25519 part is a low-order point yields no shared secret.
            raise InvalidRequestError("cannot encrypt to this public key", field="public_key") from None

    def __eq__(self, other: object) -> bool:
        return isinstance(other, HybridPublicKey) and other._encoded == self._encoded

    def __hash__(self) -> int:
        return hash(self._encoded)

    def __repr__(self) -> str:
        return f"HybridPublicKey(fingerprint={self.fingerprint()[:8].hex()})"


class HybridPrivateKey:
    """A hybrid private key. Its bytes leave only through ``private_bytes()`` (greppable on purpose)."""

    __slots__ = ("_key", "_public", "_secret")

    def __init__(self, mlkem_key: mlkem.MLKEM768PrivateKey, x_key: x25519.X25519PrivateKey) -> None:
        self._key = hpke.MLKEM768X25519PrivateKey(mlkem_key, x_key)
        self._secret = mlkem_key.private_bytes_raw() + x_key.private_bytes_raw()
        self._public = HybridPublicKey(
            hpke.MLKEM768X25519PublicKey(mlkem_key.public_key(), x_key.public_key()),
            mlkem_key.public_key().public_bytes_raw() + x_key.public_key().public_bytes_raw(),
        )

    @classmethod
    def generate(cls) -> HybridPrivateKey:
        return cls(mlkem.MLKEM768PrivateKey.generate(), x25519.X25519PrivateKey.generate())

    @classmethod
    def from_private_bytes(cls, data: bytes) -> HybridPrivateKey:
        if not isinstance(data, bytes | bytearray) or len(data) != PRIVATE_KEY_LEN:
            raise InvalidRequestError(f"a hybrid private key is {PRIVATE_KEY_LEN} bytes", field="private_key")
        data = bytes(data)
        return cls(
            mlkem.MLKEM768PrivateKey.from_seed_bytes(data[:MLKEM_SEED_LEN]),
            x25519.X25519PrivateKey.from_private_bytes(data[MLKEM_SEED_LEN:]),
        )

    def public_key(self) -> HybridPublicKey:
        return self._public

    def private_bytes(self) -> bytes:
        return self._secret

    def open(self, sealed: bytes, *, info: bytes) -> bytes:
        """Open an HPKE seal; any failure is the one opaque ``InvalidEnvelopeError``."""
        if len(sealed) < ENC_LEN + AEAD_TAG_LEN:
            raise InvalidEnvelopeError
        try:
            return _SUITE.decrypt(sealed, self._key, info=info)
        except (InvalidTag, ValueError):
            raise InvalidEnvelopeError from None

    def __repr__(self) -> str:
        return f"HybridPrivateKey(public={self._public!r})"
