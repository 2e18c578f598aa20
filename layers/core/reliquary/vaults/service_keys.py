"""The service's own signing keys: generated on first use, stored wrapped by the root of trust."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass

from reliquary.crypto.root import RootOfTrust
from reliquary.crypto.signing import KeyRing, SignatureAlgorithm, SigningKey, VerifyingKey
from reliquary.errors import ConflictError
from reliquary.vaults.models import StoredSigningKey
from reliquary.vaults.ports import SigningKeyStore


def _context(algorithm: SignatureAlgorithm, key_id: bytes) -> dict[str, str]:
    return {"purpose": "service-signing", "algorithm": algorithm.value, "key_id": key_id.hex()}


@dataclass(frozen=True, slots=True)
class ServiceKeys:
    signer: SigningKey
    keyring: KeyRing  # every service key ever stored: old envelopes stay verifiable after a key change

    @classmethod
    def load_or_create(
        cls,
        store: SigningKeyStore,
        root: RootOfTrust,
        algorithm: SignatureAlgorithm,
        *,
        clock: Callable[[], int],
    ) -> ServiceKeys:
        stored = store.list()
        if not any(k.algorithm == algorithm.value for k in stored):
            fresh = SigningKey.generate(algorithm)
            # Another cold start may have created one first: then use whatever is stored now.
            with contextlib.suppress(ConflictError):
                store.add(
                    StoredSigningKey(
                        algorithm=algorithm.value,
                        key_id=fresh.key_id,
                        public_key=fresh.public_key,
                        wrapped_secret=root.wrap(
                            fresh.secret_bytes(), context=_context(algorithm, fresh.key_id)
                        ),
                        created_at=clock(),
                        root_key_id=root.key_id,
                    )
                )
            stored = store.list()
        keyring = KeyRing([VerifyingKey(SignatureAlgorithm(k.algorithm), k.public_key) for k in stored])
        current = next(k for k in stored if k.algorithm == algorithm.value)
        secret = root.unwrap(current.wrapped_secret, context=_context(algorithm, current.key_id))
        return cls(signer=SigningKey(algorithm, secret, current.public_key), keyring=keyring)
