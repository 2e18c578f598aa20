"""The root of trust: wraps vault private keys and service signing keys, bound to an encryption context.

In the cloud this is AWS KMS (``reliquary.adapters.kms``); in development a local root key generated on
first use and kept outside the repository. Both implement ``RootOfTrust``.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Protocol

from reliquary.crypto import aead
from reliquary.crypto.codec import Reader, Writer
from reliquary.errors import ConfigurationError, InvalidEnvelopeError, RootOfTrustError

_LOCAL_MAGIC = b"RQL1"
_ROOT_KEY_LEN = 32


class RootOfTrust(Protocol):
    @property
    def key_id(self) -> str: ...
    def wrap(self, plaintext: bytes, *, context: Mapping[str, str]) -> bytes: ...
    def unwrap(self, blob: bytes, *, context: Mapping[str, str]) -> bytes: ...


def canonical_context(context: Mapping[str, str]) -> bytes:
    """A context as bytes: sorted keys, every key and value length-prefixed (so no two contexts collide)."""
    writer = Writer().raw(b"RELIQUARY context v1\x00").u16(len(context))
    for key in sorted(context):
        writer.text(key).text(context[key])
    return writer.getvalue()


class LocalRootOfTrust:
    """AES-256-GCM under a 256-bit root key held in a file (development only)."""

    __slots__ = ("_key", "key_id")

    def __init__(self, root_key: bytes) -> None:
        if len(root_key) != _ROOT_KEY_LEN:
            raise ConfigurationError("the local root key must be 32 bytes")
        self._key = root_key
        self.key_id = "local:" + hashlib.sha256(b"RELIQUARY local root\x00" + root_key).hexdigest()[:16]

    @classmethod
    def generate(cls) -> LocalRootOfTrust:
        return cls(secrets.token_bytes(_ROOT_KEY_LEN))

    @classmethod
    def from_file(cls, path: Path, *, create: bool = True) -> LocalRootOfTrust:
        """Load the root key, creating it (mode 0600, in a 0700 folder) on first use."""
        if not path.exists():
            if not create:
                raise ConfigurationError(f"no local root key at {path}")
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            key = secrets.token_bytes(_ROOT_KEY_LEN)
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                return cls.from_file(path, create=False)  # another process created it first
            with os.fdopen(fd, "wb") as handle:
                handle.write(key)
            return cls(key)
        data = path.read_bytes()
        if len(data) != _ROOT_KEY_LEN:
            raise ConfigurationError(f"the local root key at {path} is not 32 bytes")
        return cls(data)

    def wrap(self, plaintext: bytes, *, context: Mapping[str, str]) -> bytes:
        nonce = secrets.token_bytes(aead.NONCE_LEN)
        sealed = aead.encrypt(self._key, nonce, plaintext, canonical_context(context))
        return Writer().raw(_LOCAL_MAGIC).raw(nonce).raw(sealed).getvalue()

    def unwrap(self, blob: bytes, *, context: Mapping[str, str]) -> bytes:
        try:
            reader = Reader(blob)
            reader.expect(_LOCAL_MAGIC)
            nonce = reader.raw(aead.NONCE_LEN)
            sealed = reader.raw(len(blob) - reader.position)
            return aead.decrypt(self._key, nonce, sealed, canonical_context(context))
        except InvalidEnvelopeError:
            raise RootOfTrustError("the root of trust refused to unwrap (wrong context or key)") from None
