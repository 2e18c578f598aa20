"""Small builders for vault-service tests: the service on the in-memory fakes, a settable clock, the
requester's side of a grant (grant, fetch the envelope, open), and a moto stack shared by a module."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pytest

from reliquary.crypto.grants import open_grant
from reliquary.crypto.kem import HybridPrivateKey
from reliquary.crypto.root import LocalRootOfTrust
from reliquary.crypto.signing import SignatureAlgorithm
from reliquary.vaults.memory import (
    InMemoryBlobStore,
    InMemoryItemRepository,
    InMemorySigningKeyStore,
    InMemoryVaultRepository,
)
from reliquary.vaults.models import MemoryKind, MemoryScope
from reliquary.vaults.service import VaultService
from reliquary.vaults.service_keys import ServiceKeys

if TYPE_CHECKING:
    from tests.support.aws import AwsStack

T0 = 1_700_000_000  # a fixed "now" for deterministic tests
USER_SCOPE = MemoryScope(MemoryKind.USER, "user-1")


@dataclass
class ManualClock:
    """A clock the test moves by hand (epoch seconds)."""

    now: int = T0

    def __call__(self) -> int:
        return self.now

    def advance(self, seconds: int) -> int:
        self.now += seconds
        return self.now


@dataclass
class MemoryStack:
    """The service and the fakes behind it, so tests can inspect (and tamper with) what was stored."""

    service: VaultService
    vaults: InMemoryVaultRepository
    items: InMemoryItemRepository
    blobs: InMemoryBlobStore
    signing_keys: InMemorySigningKeyStore
    root: LocalRootOfTrust
    clock: ManualClock = field(default_factory=ManualClock)


def memory_stack(
    *,
    clock: ManualClock | None = None,
    algorithm: SignatureAlgorithm = SignatureAlgorithm.ML_DSA_65,
    large_item_threshold: int = 1024,
    max_item_bytes: int = 64 * 1024,
    grant_ttl_seconds: int = 300,
    root: LocalRootOfTrust | None = None,
) -> MemoryStack:
    """A service on the in-memory fakes with a fresh local root of trust. The defaults keep items small:
    anything above 1 KiB of ciphertext goes to the blob store, anything above 64 KiB is refused."""
    clock = clock or ManualClock()
    root = root or LocalRootOfTrust.generate()
    vaults, blobs = InMemoryVaultRepository(), InMemoryBlobStore()
    items = InMemoryItemRepository(vaults)
    signing_keys = InMemorySigningKeyStore()
    service = VaultService(
        vaults=vaults,
        items=items,
        blobs=blobs,
        root=root,
        service_keys=ServiceKeys.load_or_create(
            signing_keys, root, algorithm, clock=clock, accepted=list(SignatureAlgorithm)
        ),
        large_item_threshold=large_item_threshold,
        max_item_bytes=max_item_bytes,
        grant_ttl_seconds=grant_ttl_seconds,
        clock=clock,
    )
    return MemoryStack(service, vaults, items, blobs, signing_keys, root, clock)


def memory_service(
    *,
    clock: ManualClock | None = None,
    algorithm: SignatureAlgorithm = SignatureAlgorithm.ML_DSA_65,
    large_item_threshold: int = 1024,
    max_item_bytes: int = 64 * 1024,
) -> VaultService:
    """Just the service, when a test needs no access to the fakes behind it."""
    return memory_stack(
        clock=clock,
        algorithm=algorithm,
        large_item_threshold=large_item_threshold,
        max_item_bytes=max_item_bytes,
    ).service


def grant_and_open(
    service: VaultService,
    *,
    tenant_id: str,
    vault_id: str,
    item_id: str,
    requester: HybridPrivateKey,
    now: int,
    version: int | None = None,
    request_id: str = "req-1",
) -> bytes:
    """The whole requester round trip: a grant to ``requester``, the envelope (body attached), open."""
    issued = service.issue_grant(
        request_id=request_id,
        tenant_id=tenant_id,
        vault_id=vault_id,
        item_id=item_id,
        version=version,
        requester_public_key=requester.public_key(),
    )
    _, envelope = service.load_envelope(tenant_id, vault_id, item_id, issued.record.version)
    return open_grant(
        issued.grant,
        envelope,
        requester_private_key=requester,
        service_keys=service.service_keys.keyring,
        now=now,
    )


def unique_id(prefix: str) -> str:
    """An id no other test uses (for tests that share one moto stack)."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


@contextmanager
def shared_moto_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AwsStack]:
    """The conftest's ``aws`` stack, for a module-scoped fixture: building the tables, the clients and the
    service costs far more than most tests, so a module builds them once and its tests keep apart by
    unique tenant ids and object keys. moto's state is per process, so pytest-xdist workers never share it.
    """
    from tests.support.aws import moto_stack  # moto only where a test asks for it, not in unit tests

    with (
        pytest.MonkeyPatch.context() as monkeypatch,
        moto_stack(monkeypatch, tmp_path_factory.mktemp("moto")) as stack,
    ):
        yield stack
