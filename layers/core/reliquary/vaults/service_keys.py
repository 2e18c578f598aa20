"""The service's own signing keys: generated on first use, stored wrapped by the root of trust.

Storage is not trusted to say which keys are the service's: a stored key counts only if its secret
unwraps under a context that names its algorithm and public key (so the root of trust vouches for both)
and signs a probe that its public key verifies. A row added or altered in the database makes loading
fail closed. Only algorithms on the accepted list are trusted at all, so a key of a weaker algorithm
can never be used to pass off an envelope or a grant.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable, Collection
from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from reliquary.crypto.root import RootOfTrust
from reliquary.crypto.signing import KeyRing, SignatureAlgorithm, SigningKey
from reliquary.errors import ConfigurationError, ConflictError, ReliquaryError, RootOfTrustError
from reliquary.vaults.models import StoredSigningKey
from reliquary.vaults.ports import SigningKeyStore

_PROBE = b"RELIQUARY service key probe v1"


SERVICE_SIGNING = "service-signing"  # envelopes and grants
CHECKPOINT_SIGNING = "checkpoint-signing"  # the transparency log's checkpoints
# The algorithms a service key may be of: a key of any other is never trusted, nor published.
SERVICE_ALGORITHMS = (SignatureAlgorithm.ML_DSA_65, SignatureAlgorithm.FALCON_512)


def _context(algorithm: SignatureAlgorithm, public_key: bytes, purpose: str) -> dict[str, str]:
    return {
        "purpose": purpose,
        "algorithm": algorithm.value,
        "public_key_sha256": hashlib.sha256(public_key).hexdigest(),
    }


def _authenticated(stored: StoredSigningKey, root: RootOfTrust, purpose: str) -> SigningKey:
    """The stored key, once the root of trust and a probe signature have vouched for it."""
    try:
        algorithm = SignatureAlgorithm.parse(stored.algorithm)
        secret = root.unwrap(stored.wrapped_secret, context=_context(algorithm, stored.public_key, purpose))
        key = SigningKey(algorithm, secret, stored.public_key)
        key.verifying_key.verify(_PROBE, key.sign(_PROBE))
    except ReliquaryError as exc:
        raise RootOfTrustError(
            "a stored service signing key is not authentic; refusing to start", key_id=stored.key_id.hex()
        ) from exc
    if key.key_id != stored.key_id:
        raise RootOfTrustError("a stored service signing key has a wrong key id", key_id=stored.key_id.hex())
    return key


@dataclass(frozen=True, slots=True)
class ServiceKeys:
    signer: SigningKey
    keyring: KeyRing  # every accepted service key ever stored: old envelopes verify after a key change

    def derive_key(self, label: str) -> bytes:
        return derive_key(self.signer, label)

    @classmethod
    def load_or_create(
        cls,
        store: SigningKeyStore,
        root: RootOfTrust,
        algorithm: SignatureAlgorithm,
        *,
        clock: Callable[[], int],
        accepted: Collection[SignatureAlgorithm] = SERVICE_ALGORITHMS,
    ) -> ServiceKeys:
        if algorithm not in accepted:
            raise ConfigurationError(f"the signing algorithm {algorithm} is not among the accepted ones")
        keys = load_or_create_signing_keys(
            store, root, [algorithm], clock=clock, purpose=SERVICE_SIGNING, accepted=accepted
        )
        return cls(signer=keys[algorithm], keyring=KeyRing([k.verifying_key for k in keys.values()]))


def derive_key(key: SigningKey, label: str) -> bytes:
    """A 32-byte secret for one named purpose, derived (HKDF-SHA256) from a stored key's secret: no extra
    key to store, and each label yields an independent key."""
    return HKDF(
        algorithm=hashes.SHA256(),
        length=32,
        salt=None,
        info=b"RELIQUARY derived key v1\x00" + label.encode(),
    ).derive(key.secret_bytes())


def load_or_create_signing_keys(
    store: SigningKeyStore,
    root: RootOfTrust,
    algorithms: Collection[SignatureAlgorithm],
    *,
    clock: Callable[[], int],
    purpose: str,
    accepted: Collection[SignatureAlgorithm] | None = None,
) -> dict[SignatureAlgorithm, SigningKey]:
    """One authenticated key per algorithm in ``algorithms`` (created on first use), plus any other
    stored key of an ``accepted`` algorithm (default: just ``algorithms``), keyed by algorithm.

    ``purpose`` is bound into each key's wrapping context, so a key stored for one purpose never
    unwraps as a key of another even if its row is copied between partitions."""
    accepted = set(algorithms) if accepted is None else set(accepted) | set(algorithms)
    stored = store.list()
    missing = [a for a in algorithms if not any(k.algorithm == a.value for k in stored)]
    for algorithm in missing:
        fresh = SigningKey.generate(algorithm)
        # Another cold start may have created one first: then use whatever is stored now.
        with contextlib.suppress(ConflictError):
            store.add(
                StoredSigningKey(
                    algorithm=algorithm.value,
                    key_id=fresh.key_id,
                    public_key=fresh.public_key,
                    wrapped_secret=root.wrap(
                        fresh.secret_bytes(), context=_context(algorithm, fresh.public_key, purpose)
                    ),
                    created_at=clock(),
                    root_key_id=root.key_id,
                )
            )
    if missing:
        stored = store.list()
    names = {a.value for a in accepted}
    keys = [_authenticated(k, root, purpose) for k in stored if k.algorithm in names]
    return {k.algorithm: k for k in keys}
