"""Small builders for vault-service tests: the service on the in-memory fakes, a settable clock, the
attested approval a grant needs (a chain signed by stage keys, as the access flow signs it), the
requester's side of a grant (approve, grant, fetch the envelope, open), and a moto stack shared by a
module."""

from __future__ import annotations

import functools
import hashlib
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import pytest

from reliquary import jcs
from reliquary.audit.records import DecisionRecord
from reliquary.crypto.grants import open_grant
from reliquary.crypto.kem import HybridPrivateKey, requester_key_sha256
from reliquary.crypto.root import LocalRootOfTrust
from reliquary.crypto.signing import SignatureAlgorithm
from reliquary.flow.attestation import Attestation, Subject, digest
from reliquary.flow.chains import ChainStore
from reliquary.flow.memory import sign_chain
from reliquary.vaults.memory import (
    InMemoryBlobStore,
    InMemoryDecisionLedger,
    InMemoryItemRepository,
    InMemorySigningKeyStore,
    InMemoryVaultRepository,
)
from reliquary.vaults.models import MemoryKind, MemoryScope
from reliquary.vaults.permanent import PermanentStores
from reliquary.vaults.service import IssuedGrant, VaultService
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
    """The service and the fakes behind it, so tests can inspect (and tamper with) what was stored; its
    grants read their approvals from ``ledger`` (``ledger.approve`` logs an attested one)."""

    service: VaultService
    vaults: InMemoryVaultRepository
    items: InMemoryItemRepository
    blobs: InMemoryBlobStore
    signing_keys: InMemorySigningKeyStore
    root: LocalRootOfTrust
    ledger: InMemoryDecisionLedger
    clock: ManualClock = field(default_factory=ManualClock)


def memory_stack(
    *,
    clock: ManualClock | None = None,
    algorithm: SignatureAlgorithm = SignatureAlgorithm.ML_DSA_65,
    large_item_threshold: int = 1024,
    max_item_bytes: int = 64 * 1024,
    grant_ttl_seconds: int = 300,
    approval_max_age_seconds: int = 900,
    root: LocalRootOfTrust | None = None,
    permanent: PermanentStores | None = None,
) -> MemoryStack:
    """A service on the in-memory fakes with a fresh local root of trust. The defaults keep items small:
    anything above 1 KiB of ciphertext goes to the blob store, anything above 64 KiB is refused."""
    clock = clock or ManualClock()
    root = root or LocalRootOfTrust.generate()
    vaults, blobs = InMemoryVaultRepository(), InMemoryBlobStore()
    items = InMemoryItemRepository(vaults)
    signing_keys = InMemorySigningKeyStore()
    ledger = InMemoryDecisionLedger()
    service = VaultService(
        vaults=vaults,
        items=items,
        blobs=blobs,
        root=root,
        service_keys=ServiceKeys.load_or_create(
            signing_keys, root, algorithm, clock=clock, accepted=list(SignatureAlgorithm)
        ),
        decisions=ledger,
        permanent=permanent,
        large_item_threshold=large_item_threshold,
        max_item_bytes=max_item_bytes,
        grant_ttl_seconds=grant_ttl_seconds,
        approval_max_age_seconds=approval_max_age_seconds,
        clock=clock,
    )
    return MemoryStack(service, vaults, items, blobs, signing_keys, root, ledger, clock)


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


# --- attested approvals -------------------------------------------------------------------------------
class Approvals(Protocol):
    """Where a test logs the approval of a request as the access flow would: with the attestation chain
    its stages signed, stored beside the log (``InMemoryDecisionLedger``, or ``tests.support.aws``'s
    ``StackApprovals`` on the moto stack)."""

    def approve(
        self,
        *,
        tenant_id: str,
        vault_id: str,
        item_id: str,
        request_id: str,
        requester_key_sha256: str,
        item_version: int,
        time: int,
    ) -> DecisionRecord: ...


# The chain the flow's stages sign (one definition, shared with the in-memory ledger), two agents here.
signed_chain = functools.partial(sign_chain, agents=("strict", "neutral"))


def store_chain(store: ChainStore, tenant_id: str, chain: Sequence[Attestation]) -> str:
    """Store ``chain`` as RecordDecision does (its canonical JSON, under its digest); the digest."""
    data = jcs.canonicalize([a.to_json() for a in chain])
    chain_sha256 = hashlib.sha256(data).hexdigest()
    store.put(tenant_id, chain_sha256, data)
    return chain_sha256


def request_subject(
    *, tenant_id: str, vault_id: str, item_id: str, request_id: str, requester_key_sha256: str
) -> Subject:
    """What a request's statements name. The grant does not read the binding (the digest of the whole
    admitted request: principal, purpose, nonce...); a digest of the named fields stands in for it."""
    named = {"tenant_id": tenant_id, "vault_id": vault_id, "item_id": item_id, "request_id": request_id}
    return Subject(tenant_id, vault_id, item_id, request_id, requester_key_sha256, digest(named))


def approve_and_grant(
    service: VaultService,
    approvals: Approvals,
    *,
    tenant_id: str,
    vault_id: str,
    item_id: str,
    requester: HybridPrivateKey,
    now: int,
    version: int | None = None,
    request_id: str | None = None,
) -> IssuedGrant:
    """An attested approval of ``version`` logged at ``now`` for a new request (by default the item's
    latest stored version, as if the flow approved it just before whatever the test then did to the
    item), and the grant ``grant_approved`` issues for it."""
    request_id = request_id or unique_id("req")
    if version is None:
        stored = service._items.versions(tenant_id, vault_id, item_id)  # whatever state they are in
        version = stored[-1].version if stored else 1
    approvals.approve(
        tenant_id=tenant_id,
        vault_id=vault_id,
        item_id=item_id,
        request_id=request_id,
        requester_key_sha256=requester_key_sha256(requester.public_key().to_bytes()),
        item_version=version,
        time=now,
    )
    return service.grant_approved(
        request_id=request_id,
        tenant_id=tenant_id,
        vault_id=vault_id,
        item_id=item_id,
        requester_public_key=requester.public_key(),
    )


def grant_and_open(
    service: VaultService,
    approvals: Approvals,
    *,
    tenant_id: str,
    vault_id: str,
    item_id: str,
    requester: HybridPrivateKey,
    now: int,
    version: int | None = None,
    request_id: str | None = None,
) -> bytes:
    """The whole requester round trip: the approval and its grant (``approve_and_grant``), the envelope
    of the version granted (body attached), open."""
    issued = approve_and_grant(
        service,
        approvals,
        tenant_id=tenant_id,
        vault_id=vault_id,
        item_id=item_id,
        requester=requester,
        now=now,
        version=version,
        request_id=request_id,
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
