"""Signature verification and strict decoding shared by the offline checks (grants, notes, chains).

Ed25519 and ML-DSA-65 come from ``cryptography``; Falcon-512 needs the ``falcon`` extra (liboqs-python)
and is loaded only when a Falcon key is used, so the SDK's import stays cheap.
"""

from __future__ import annotations

import ctypes.util
import hashlib
import importlib
import os
import struct
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ed25519, mldsa


class VerificationError(Exception):
    """Something did not verify. Deliberately opaque: it never says which check failed or echoes input."""

    code = "verification_failed"

    def __init__(self, message: str = "verification failed") -> None:
        super().__init__(message)


class FalconUnavailableError(Exception):
    """A Falcon-512 signature was to be checked but liboqs-python (``pip install 'reliquary-sdk[falcon]'``)
    is not installed or finds no liboqs."""

    code = "falcon_unavailable"

    def __init__(self) -> None:
        super().__init__("Falcon-512 needs the 'falcon' extra: pip install 'reliquary-sdk[falcon]'")


ED25519 = "Ed25519"
ML_DSA_65 = "ML-DSA-65"
FALCON_512 = "Falcon-512"
WIRE_IDS = {ED25519: 1, ML_DSA_65: 2, FALCON_512: 3}
PUBLIC_KEY_LEN = {ED25519: 32, ML_DSA_65: 1952, FALCON_512: 897}
MAX_SIGNATURE_LEN = {ED25519: 64, ML_DSA_65: 3309, FALCON_512: 752}
KEY_ID_LEN = 8


def algorithm_for_wire_id(wire_id: int) -> str:
    for name, known in WIRE_IDS.items():
        if known == wire_id:
            return name
    raise VerificationError


def key_id_for(algorithm: str, public_key: bytes) -> bytes:
    """The service's 8-byte key id: SHA-256 over a domain tag, the algorithm id and the public key."""
    digest = hashlib.sha256(b"RELIQUARY key id v1\x00" + WIRE_IDS[algorithm].to_bytes(2, "big") + public_key)
    return digest.digest()[:KEY_ID_LEN]


def _liboqs_present() -> bool:
    """Whether liboqs-python would load a library where it looks ($OQS_INSTALL_PATH, ~/_oqs, the
    system's): without one, importing it downloads and builds liboqs, which a client must never do. A
    file that is there but does not load (e.g. its libcrypto is not on the loader's path) counts as
    absent, as it does for liboqs-python."""
    roots = [Path(os.environ["OQS_INSTALL_PATH"])] if os.environ.get("OQS_INSTALL_PATH") else []
    roots.append(Path.home() / "_oqs")
    files = [root / lib / "liboqs.so" for root in roots for lib in ("lib", "lib64")]
    files += [root / "lib" / "liboqs.dylib" for root in roots]
    candidates = [str(path) for path in files if path.is_file()]
    system = ctypes.util.find_library("oqs")  # a soname the loader resolves, not a path
    if system:
        candidates.append(system)
    for candidate in candidates:
        try:
            ctypes.CDLL(candidate)
        except OSError:
            continue
        return True
    return False


def _oqs() -> Any:
    loaded = sys.modules.get("oqs")
    if loaded is None and ("oqs" in sys.modules or not _liboqs_present()):
        raise FalconUnavailableError
    try:
        return loaded or importlib.import_module("oqs")
    except (ImportError, RuntimeError, OSError):
        raise FalconUnavailableError from None


@dataclass(frozen=True, slots=True, eq=False)
class PublicKey:
    """A service public signature key: ``algorithm`` is "Ed25519", "ML-DSA-65" or "Falcon-512"."""

    algorithm: str
    public_key: bytes
    key_id: bytes = field(init=False)
    _impl: Any = field(init=False, repr=False)

    def __post_init__(self) -> None:
        expected = PUBLIC_KEY_LEN.get(self.algorithm)
        if expected is None or not isinstance(self.public_key, bytes) or len(self.public_key) != expected:
            raise ValueError("not a public key of a known signature algorithm")
        impl: Any = None
        try:
            if self.algorithm == ED25519:
                impl = ed25519.Ed25519PublicKey.from_public_bytes(self.public_key)
            elif self.algorithm == ML_DSA_65:
                impl = mldsa.MLDSA65PublicKey.from_public_bytes(self.public_key)
        except ValueError:
            raise ValueError("not a valid public key") from None
        object.__setattr__(self, "key_id", key_id_for(self.algorithm, self.public_key))
        object.__setattr__(self, "_impl", impl)

    def verify(self, message: bytes, signature: bytes) -> None:
        """Raise ``VerificationError`` unless ``signature`` is this key's over ``message``."""
        if not 0 < len(signature) <= MAX_SIGNATURE_LEN[self.algorithm]:
            raise VerificationError
        if self.algorithm == FALCON_512:
            with _oqs().Signature(FALCON_512) as verifier:
                if not verifier.verify(message, signature, self.public_key):
                    raise VerificationError
            return
        try:
            self._impl.verify(signature, message)
        except InvalidSignature:
            raise VerificationError from None


class KeyRing:
    """The service keys a client trusts, looked up by key id and algorithm together."""

    __slots__ = ("_keys",)

    def __init__(self, keys: list[PublicKey] | None = None) -> None:
        self._keys: dict[tuple[bytes, str], PublicKey] = {}
        for key in keys or []:
            self._keys[(key.key_id, key.algorithm)] = key

    def verify(self, key_id: bytes, algorithm: str, message: bytes, signature: bytes) -> None:
        key = self._keys.get((key_id, algorithm))
        if key is None:
            raise VerificationError
        key.verify(message, signature)

    def __len__(self) -> int:
        return len(self._keys)


_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")


class Reader:
    """Big-endian, length-prefixed, strict: a short read, bad UTF-8 or a trailing byte fails."""

    __slots__ = ("_data", "_pos")

    def __init__(self, data: bytes) -> None:
        self._data = memoryview(bytes(data))
        self._pos = 0

    @property
    def position(self) -> int:
        return self._pos

    def raw(self, length: int) -> bytes:
        return self.view(length).tobytes()

    def view(self, length: int) -> memoryview:
        end = self._pos + length
        if length < 0 or end > len(self._data):
            raise VerificationError
        chunk = self._data[self._pos : end]
        self._pos = end
        return chunk

    def u8(self) -> int:
        return self.raw(1)[0]

    def u16(self) -> int:
        value: int = _U16.unpack(self.raw(2))[0]
        return value

    def u32(self) -> int:
        value: int = _U32.unpack(self.raw(4))[0]
        return value

    def u64(self) -> int:
        value: int = _U64.unpack(self.raw(8))[0]
        return value

    def bytes16(self) -> bytes:
        return self.raw(self.u16())

    def text(self) -> str:
        try:
            return self.bytes16().decode("utf-8", errors="strict")
        except UnicodeDecodeError:
            raise VerificationError from None

    def expect(self, constant: bytes) -> None:
        if self.raw(len(constant)) != constant:
            raise VerificationError

    def finish(self) -> None:
        if self._pos != len(self._data):
            raise VerificationError


def text16(value: str) -> bytes:
    encoded = value.encode("utf-8")
    return _U16.pack(len(encoded)) + encoded


def bytes16(value: bytes) -> bytes:
    return _U16.pack(len(value)) + value


def u16(value: int) -> bytes:
    return _U16.pack(value)


def u32(value: int) -> bytes:
    return _U32.pack(value)


def u64(value: int) -> bytes:
    return _U64.pack(value)
