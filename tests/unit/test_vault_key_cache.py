"""The warm-container cache of unwrapped vault keys: fewer root-of-trust calls, dropped on retire."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from reliquary.crypto.kem import HybridPrivateKey
from reliquary.crypto.root import LocalRootOfTrust
from reliquary.crypto.signing import SignatureAlgorithm
from reliquary.errors import KeyVersionError
from reliquary.vaults.memory import (
    InMemoryBlobStore,
    InMemoryDecisionLedger,
    InMemoryItemRepository,
    InMemorySigningKeyStore,
    InMemoryVaultRepository,
)
from reliquary.vaults.service import VaultService
from reliquary.vaults.service_keys import ServiceKeys
from tests.support.vaults import T0, USER_SCOPE, ManualClock, approve_and_grant


class CountingRoot:
    """A local root of trust that counts unwraps (each one is a KMS Decrypt in the cloud)."""

    def __init__(self) -> None:
        self._inner = LocalRootOfTrust.generate()
        self.key_id = self._inner.key_id
        self.unwraps = 0

    def wrap(self, plaintext: bytes, *, context: Mapping[str, str]) -> bytes:
        return self._inner.wrap(plaintext, context=context)

    def unwrap(self, blob: bytes, *, context: Mapping[str, str]) -> bytes:
        self.unwraps += 1
        return self._inner.unwrap(blob, context=context)


def _service(root: CountingRoot, cache_seconds: float, ledger: InMemoryDecisionLedger) -> VaultService:
    clock = ManualClock()
    vaults = InMemoryVaultRepository()
    return VaultService(
        vaults=vaults,
        items=InMemoryItemRepository(vaults),
        blobs=InMemoryBlobStore(),
        root=root,
        service_keys=ServiceKeys.load_or_create(
            InMemorySigningKeyStore(),
            root,
            SignatureAlgorithm.ED25519,
            clock=clock,
            accepted=list(SignatureAlgorithm),
        ),
        decisions=ledger,
        clock=clock,
        vault_key_cache_seconds=cache_seconds,
    )


def _grant_three_times(service: VaultService, ledger: InMemoryDecisionLedger) -> None:
    """Three approved requests and their grants (the approvals' chains are signed by stage keys, which
    the root of trust never unwraps: every unwrap counted is the vault key's)."""
    service.create_vault("t", "v")
    service.seal_item("t", "v", "i", b"memory", memory_scope=USER_SCOPE)
    requester = HybridPrivateKey.generate()
    for n in range(3):
        approve_and_grant(
            service,
            ledger,
            tenant_id="t",
            vault_id="v",
            item_id="i",
            requester=requester,
            now=T0,
            version=1,
            request_id=f"r{n}",
        )


@pytest.mark.parametrize(("cache_seconds", "vault_key_unwraps"), [(60.0, 1), (0.0, 4)])  # seal + 3 grants
def test_grants_unwrap_the_vault_key_once_while_cached(cache_seconds: float, vault_key_unwraps: int) -> None:
    root, ledger = CountingRoot(), InMemoryDecisionLedger()
    service = _service(root, cache_seconds, ledger)
    before = root.unwraps  # the service signing key was unwrapped at start-up
    _grant_three_times(service, ledger)
    assert root.unwraps - before == vault_key_unwraps


def test_retiring_a_version_drops_it_from_the_cache() -> None:
    root, ledger = CountingRoot(), InMemoryDecisionLedger()
    service = _service(root, 60.0, ledger)
    _grant_three_times(service, ledger)
    service.rotate_key("t", "v")
    assert service.rewrap_vault("t", "v").rewrapped == 1
    service.retire_key("t", "v", 1)
    with pytest.raises(KeyVersionError, match="retired"):
        service._vault_key("t", "v", 1)
