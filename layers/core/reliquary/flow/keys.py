"""Stage keys: one ML-DSA-65 key per signing function, created on its first use and stored wrapped by the
root of trust under a context naming the function (``purpose = stage-signing/<function>``), so only that
function's role can unwrap it (template.yaml's KMS conditions). The public halves are read by every
function that verifies a chain, and published for auditors.

A verifier reads the published keys on first use and again when it meets a key it does not know yet (a
function that created its key after this one read them: the first requests of a new deployment, or a
rotated key): at once for a key id it has not looked for before, and at most once per
``REFRESH_SECONDS`` for one it has (a forged key id costs its sender one read, never a flood of them).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

from reliquary.crypto.root import RootOfTrust
from reliquary.crypto.signing import SignatureAlgorithm, VerifyingKey
from reliquary.errors import AttestationError, UnknownStageKeyError
from reliquary.flow.attestation import (
    Attestation,
    Signer,
    StageKeys,
    StageSigner,
    Subject,
    VerifiedChain,
    verify_chain,
)
from reliquary.vaults.ports import SigningKeyStore
from reliquary.vaults.service_keys import load_or_create_signing_keys

STAGE_ALGORITHM: Final = SignatureAlgorithm.ML_DSA_65
REFRESH_SECONDS: Final = 5
MAX_LOOKED_FOR: Final = 256  # unknown key ids remembered (the oldest forgotten first)


def load_stage_signer(
    signer: Signer, store: SigningKeyStore, root: RootOfTrust, *, clock: Callable[[], int]
) -> StageSigner:
    """This function's stage key (created on first use; authenticated by the root of trust on load)."""
    keys = load_or_create_signing_keys(
        store, root, [STAGE_ALGORITHM], clock=clock, purpose=signer.key_purpose
    )
    return StageSigner(signer, keys[STAGE_ALGORITHM])


def read_stage_keys(stores: Mapping[Signer, SigningKeyStore]) -> StageKeys:
    """Every function's published stage keys (public halves only; nothing is unwrapped)."""
    return StageKeys(
        {
            signer: [
                VerifyingKey(SignatureAlgorithm.parse(k.algorithm), k.public_key)
                for k in store.list()
                if k.algorithm == STAGE_ALGORITHM.value
            ]
            for signer, store in stores.items()
        }
    )


class LazyStageSigner(StageSigner):
    """A function's stage key, loaded (one KMS unwrap) on the first statement it signs, not at cold start:
    the function's other actions never pay for it."""

    def __init__(
        self,
        signer: Signer,
        load: Callable[[], StageSigner],
        *,
        on_load: Callable[[StageSigner], None] | None = None,
    ) -> None:
        self._signer = signer
        self._load = load
        self._on_load = on_load
        self._loaded: StageSigner | None = None

    @property
    def verifying_key(self) -> VerifyingKey:
        return self._loaded_signer().verifying_key

    def _loaded_signer(self) -> StageSigner:
        if self._loaded is None:
            loaded = self._load()
            if loaded.signer is not self._signer:
                raise AttestationError("a stage key was loaded for another function", check="signer")
            self._loaded = loaded
            if self._on_load is not None:
                self._on_load(loaded)
        return self._loaded

    def attest(self, *args: Any, **kwargs: Any) -> Attestation:
        return self._loaded_signer().attest(*args, **kwargs)


class StageKeyDirectory:
    """The published stage keys, read lazily and refreshed when an unknown key shows up."""

    def __init__(
        self,
        read: Callable[[], StageKeys],
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._read = read
        self._clock = clock
        self._keys: StageKeys | None = None
        self._read_at = 0.0
        self._own: list[tuple[Signer, VerifyingKey]] = []
        self._looked_for: dict[tuple[str, str], None] = {}  # insertion-ordered, bounded

    def keys(self) -> StageKeys:
        if self._keys is None:
            self._keys, self._read_at = self._read(), self._clock()
            for signer, key in self._own:
                self._keys = self._keys.with_key(signer, key)
        return self._keys

    def learn(self, signer: StageSigner) -> None:
        """Trust this function's own stage key (just loaded or created) without reading it back: a
        function checks its own statements (agent-vote's tally, its votes) even before a refresh."""
        self._own.append((signer.signer, signer.verifying_key))
        if self._keys is not None:
            self._keys = self._keys.with_key(signer.signer, signer.verifying_key)

    def _refreshed(self, unknown: tuple[str, str]) -> bool:
        first_time = unknown not in self._looked_for
        if first_time:
            self._looked_for[unknown] = None
            while len(self._looked_for) > MAX_LOOKED_FOR:
                self._looked_for.pop(next(iter(self._looked_for)))
        if not first_time and self._keys is not None and self._clock() - self._read_at < REFRESH_SECONDS:
            return False
        self._keys = None
        self.keys()
        return True

    def verify_chain(
        self, chain: Sequence[Attestation], *, subject: Subject | None = None, now: int | None = None
    ) -> VerifiedChain:
        try:
            return verify_chain(chain, self.keys(), subject=subject, now=now)
        except UnknownStageKeyError as exc:
            if not self._refreshed(exc.key):
                raise
        return verify_chain(chain, self.keys(), subject=subject, now=now)
