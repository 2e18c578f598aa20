"""Signatures behind one Signer/Verifier port, named by algorithm id.

| id | algorithm  | implementation                    | public key | signature   |
|----|------------|-----------------------------------|------------|-------------|
| 1  | Ed25519    | cryptography (OpenSSL)            | 32         | 64          |
| 2  | ML-DSA-65  | liboqs 0.16 (via the native layer)| 1952       | 3309        |
| 3  | Falcon-512 | liboqs 0.16 (via the native layer)| 897        | <= 752      |

ML-DSA-65 uses liboqs rather than OpenSSL because it signs ~15x faster here; the two interoperate (tests).
liboqs is loaded lazily, on the first post-quantum key, so Ed25519-only callers never pay for it.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass, field
from enum import StrEnum
from types import ModuleType
from typing import Any, Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ed25519

from reliquary.errors import InvalidRequestError, InvalidSignatureError, NativeLibraryError

KEY_ID_LEN = 8


class SignatureAlgorithm(StrEnum):
    ED25519 = "Ed25519"
    ML_DSA_65 = "ML-DSA-65"
    FALCON_512 = "Falcon-512"

    @property
    def wire_id(self) -> int:
        return _WIRE_IDS[self]

    @classmethod
    def from_wire_id(cls, wire_id: int) -> SignatureAlgorithm:
        algorithm = _BY_WIRE_ID.get(wire_id)
        if algorithm is None:
            raise InvalidRequestError(
                f"unknown signature algorithm id {wire_id}", field="signature_algorithm"
            )
        return algorithm

    @classmethod
    def parse(cls, name: str) -> SignatureAlgorithm:
        try:
            return cls(name)
        except ValueError:
            known = ", ".join(a.value for a in cls)
            raise InvalidRequestError(
                f"unknown signature algorithm {name!r} (known: {known})", field="signature_algorithm"
            ) from None


_WIRE_IDS = {
    SignatureAlgorithm.ED25519: 1,
    SignatureAlgorithm.ML_DSA_65: 2,
    SignatureAlgorithm.FALCON_512: 3,
}
_BY_WIRE_ID = {wire_id: algorithm for algorithm, wire_id in _WIRE_IDS.items()}
_PUBLIC_KEY_LEN = {
    SignatureAlgorithm.ED25519: 32,
    SignatureAlgorithm.ML_DSA_65: 1952,
    SignatureAlgorithm.FALCON_512: 897,
}
_MAX_SIGNATURE_LEN = {
    SignatureAlgorithm.ED25519: 64,
    SignatureAlgorithm.ML_DSA_65: 3309,
    SignatureAlgorithm.FALCON_512: 752,
}

_oqs_lock = threading.Lock()
_oqs_module: ModuleType | None = None


def _oqs() -> ModuleType:
    """The liboqs binding, loaded once through the native layer's loader (never a network install)."""
    global _oqs_module  # noqa: PLW0603  (a process-wide native handle, loaded once)
    if _oqs_module is None:
        with _oqs_lock:
            if _oqs_module is None:
                from reliquary_native import NativeLibraryUnavailable, load_oqs  # noqa: PLC0415

                try:
                    _oqs_module = load_oqs()
                except NativeLibraryUnavailable as exc:
                    raise NativeLibraryError(str(exc)) from None
    return _oqs_module


def key_id_for(algorithm: SignatureAlgorithm, public_key: bytes) -> bytes:
    """8 bytes naming a key: SHA-256 over a domain tag, the algorithm id and the public key."""
    digest = hashlib.sha256(
        b"RELIQUARY key id v1\x00" + algorithm.wire_id.to_bytes(2, "big") + public_key
    ).digest()
    return digest[:KEY_ID_LEN]


class Signer(Protocol):
    @property
    def algorithm(self) -> SignatureAlgorithm: ...
    @property
    def key_id(self) -> bytes: ...
    def sign(self, message: bytes) -> bytes: ...


class Verifier(Protocol):
    @property
    def algorithm(self) -> SignatureAlgorithm: ...
    @property
    def key_id(self) -> bytes: ...
    def verify(self, message: bytes, signature: bytes) -> None: ...


@dataclass(frozen=True, slots=True, eq=False)
class VerifyingKey:
    """A public signature key. ``verify`` raises ``InvalidSignatureError`` on any failure."""

    algorithm: SignatureAlgorithm
    public_key: bytes
    key_id: bytes = field(init=False)
    _impl: Any = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if len(self.public_key) != _PUBLIC_KEY_LEN[self.algorithm]:
            raise InvalidRequestError(
                f"a {self.algorithm} public key is {_PUBLIC_KEY_LEN[self.algorithm]} bytes",
                field="public_key",
            )
        object.__setattr__(self, "key_id", key_id_for(self.algorithm, self.public_key))
        if self.algorithm is SignatureAlgorithm.ED25519:
            impl: Any = ed25519.Ed25519PublicKey.from_public_bytes(self.public_key)
        else:
            impl = _oqs().Signature(self.algorithm.value)
        object.__setattr__(self, "_impl", impl)

    def verify(self, message: bytes, signature: bytes) -> None:
        if not 0 < len(signature) <= _MAX_SIGNATURE_LEN[self.algorithm]:
            raise InvalidSignatureError("signature does not verify", key_id=self.key_id.hex())
        if self.algorithm is SignatureAlgorithm.ED25519:
            try:
                self._impl.verify(signature, message)
            except InvalidSignature:
                raise InvalidSignatureError("signature does not verify", key_id=self.key_id.hex()) from None
            return
        if not self._impl.verify(message, signature, self.public_key):
            raise InvalidSignatureError("signature does not verify", key_id=self.key_id.hex())


class SigningKey:
    """A private signature key. Its secret leaves only through ``secret_bytes()``."""

    __slots__ = ("_impl", "_secret", "verifying_key")

    def __init__(self, algorithm: SignatureAlgorithm, secret: bytes, public_key: bytes) -> None:
        self.verifying_key = VerifyingKey(algorithm, public_key)
        self._secret = secret
        if algorithm is SignatureAlgorithm.ED25519:
            self._impl: Any = ed25519.Ed25519PrivateKey.from_private_bytes(secret)
            if self._impl.public_key().public_bytes_raw() != public_key:
                raise InvalidRequestError("the Ed25519 secret does not match the public key")
        else:
            self._impl = _oqs().Signature(algorithm.value, secret)

    @classmethod
    def generate(cls, algorithm: SignatureAlgorithm) -> SigningKey:
        if algorithm is SignatureAlgorithm.ED25519:
            key = ed25519.Ed25519PrivateKey.generate()
            return cls(algorithm, key.private_bytes_raw(), key.public_key().public_bytes_raw())
        with _oqs().Signature(algorithm.value) as generator:
            public_key = bytes(generator.generate_keypair())
            secret = bytes(generator.export_secret_key())
        return cls(algorithm, secret, public_key)

    @property
    def algorithm(self) -> SignatureAlgorithm:
        return self.verifying_key.algorithm

    @property
    def key_id(self) -> bytes:
        return self.verifying_key.key_id

    @property
    def public_key(self) -> bytes:
        return self.verifying_key.public_key

    def secret_bytes(self) -> bytes:
        return self._secret

    def sign(self, message: bytes) -> bytes:
        return bytes(self._impl.sign(message))

    def __repr__(self) -> str:
        return f"SigningKey({self.algorithm}, key_id={self.key_id.hex()})"


class KeyRing:
    """The public keys a verifier trusts, looked up by key id and algorithm together."""

    __slots__ = ("_keys",)

    def __init__(self, keys: list[VerifyingKey] | None = None) -> None:
        self._keys: dict[tuple[bytes, SignatureAlgorithm], VerifyingKey] = {}
        for key in keys or []:
            self.add(key)

    def add(self, key: VerifyingKey) -> None:
        self._keys[(key.key_id, key.algorithm)] = key

    def get(self, key_id: bytes, algorithm: SignatureAlgorithm) -> VerifyingKey | None:
        return self._keys.get((key_id, algorithm))

    def verify(self, key_id: bytes, algorithm: SignatureAlgorithm, message: bytes, signature: bytes) -> None:
        key = self.get(key_id, algorithm)
        if key is None:
            raise InvalidSignatureError("signed by an unknown key", key_id=key_id.hex())
        key.verify(message, signature)

    def __len__(self) -> int:
        return len(self._keys)
