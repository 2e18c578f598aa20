"""AES-256-GCM under a fresh 256-bit data key and a random 96-bit nonce per item version."""

from __future__ import annotations

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from reliquary.errors import InvalidEnvelopeError

DATA_KEY_LEN = 32
NONCE_LEN = 12
TAG_LEN = 16


def encrypt(data_key: bytes, nonce: bytes, plaintext: bytes, aad: bytes) -> bytes:
    if len(data_key) != DATA_KEY_LEN or len(nonce) != NONCE_LEN:
        msg = "AES-256-GCM needs a 32-byte key and a 12-byte nonce"
        raise ValueError(msg)
    return AESGCM(data_key).encrypt(nonce, plaintext, aad)


def decrypt(data_key: bytes, nonce: bytes, ciphertext: bytes | memoryview, aad: bytes) -> bytes:
    if len(data_key) != DATA_KEY_LEN or len(nonce) != NONCE_LEN or len(ciphertext) < TAG_LEN:
        raise InvalidEnvelopeError
    try:
        return AESGCM(data_key).decrypt(nonce, ciphertext, aad)
    except InvalidTag:
        raise InvalidEnvelopeError from None
