"""Builds the permanent stores (IPFS, Arweave) from the one Settings object, on first use: a function that
never touches them never loads their modules, KMS key or wallet."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from reliquary.config import Settings
from reliquary.crypto.root import RootOfTrust
from reliquary.errors import ConfigurationError
from reliquary.vaults.permanent import PermanentBackend, PermanentStore
from reliquary.vaults.ports import SigningKeyStore


def build_permanent_store(
    settings: Settings, backend: PermanentBackend, *, keys: SigningKeyStore, root: RootOfTrust, purpose: str
) -> PermanentStore:
    """The store of ``backend`` this deployment is configured for; ``ConfigurationError`` if it is not.

    Arweave pays from the KMS key ``arweave_wallet_key_id`` when set, else from a wallet of ``purpose``
    kept in ``keys``, wrapped by ``root`` (``reliquary.vaults.wallet``)."""
    if backend is PermanentBackend.IPFS:
        if settings.ipfs_api_url is None:
            raise ConfigurationError("no IPFS node is configured (RELIQUARY_IPFS_API_URL)")
        from reliquary.adapters.ipfs import IpfsStore  # noqa: PLC0415  (only where IPFS is used)

        return IpfsStore(settings.ipfs_api_url, timeout=settings.permanent_timeout_seconds)
    if settings.arweave_url is None:
        raise ConfigurationError("no Arweave node is configured (RELIQUARY_ARWEAVE_URL)")
    from reliquary.adapters.arweave import ArweaveStore, KmsArweaveWallet  # noqa: PLC0415
    from reliquary.vaults.arweave_tx import TransactionSigner  # noqa: PLC0415
    from reliquary.vaults.wallet import load_or_create_wallet  # noqa: PLC0415

    wallet: TransactionSigner
    if settings.arweave_wallet_key_id is not None:
        from reliquary.adapters.clients import aws_client  # noqa: PLC0415

        wallet = KmsArweaveWallet(aws_client(settings, "kms"), settings.arweave_wallet_key_id)
    else:
        wallet = load_or_create_wallet(keys, root, purpose=purpose, clock=lambda: int(time.time()))
    return ArweaveStore(settings.arweave_url, wallet, timeout=settings.permanent_timeout_seconds)


def configured_backends(settings: Settings) -> frozenset[PermanentBackend]:
    """The backends whose node this deployment names (a vault may opt in only to one of these)."""
    found = set()
    if settings.ipfs_api_url is not None:
        found.add(PermanentBackend.IPFS)
    if settings.arweave_url is not None:
        found.add(PermanentBackend.ARWEAVE)
    return frozenset(found)


class PermanentStores:
    """Each configured backend's store, built once on first use (a wallet load is a KMS call)."""

    def __init__(
        self, backends: frozenset[PermanentBackend], build: Callable[[PermanentBackend], PermanentStore]
    ) -> None:
        self.backends = backends
        self._build = build
        self._built: dict[PermanentBackend, PermanentStore] = {}
        self._lock = threading.Lock()

    def __call__(self, backend: PermanentBackend) -> PermanentStore:
        if backend not in self.backends:
            raise ConfigurationError(f"this deployment has no {backend.value} node configured")
        with self._lock:
            store = self._built.get(backend)
            if store is None:
                store = self._built[backend] = self._build(backend)
            return store


def permanent_stores(
    settings: Settings, *, keys: SigningKeyStore, root: RootOfTrust, purpose: str
) -> PermanentStores:
    return PermanentStores(
        configured_backends(settings),
        lambda backend: build_permanent_store(settings, backend, keys=keys, root=root, purpose=purpose),
    )
