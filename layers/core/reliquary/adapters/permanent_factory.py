"""Builds the permanent stores (IPFS, Arweave) from the one Settings object, on first use: a function that
never touches them never loads their modules, KMS key or wallet."""

from __future__ import annotations

import time

from reliquary.config import Settings
from reliquary.crypto.root import RootOfTrust
from reliquary.errors import ConfigurationError
from reliquary.vaults.permanent import PermanentBackend, PermanentStore, PermanentStores
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


def permanent_stores(
    settings: Settings, *, keys: SigningKeyStore, root: RootOfTrust, purpose: str
) -> PermanentStores:
    return PermanentStores(
        configured_backends(settings),
        lambda backend: build_permanent_store(settings, backend, keys=keys, root=root, purpose=purpose),
    )


def arweave_wallet_address(
    settings: Settings, *, keys: SigningKeyStore, root: RootOfTrust, purpose: str
) -> str:
    """The address of the Arweave wallet of ``purpose`` (made now if it is new, as its function's first
    transaction would): what an operator funds. ``ConfigurationError`` without an Arweave node."""
    from reliquary.adapters.arweave import ArweaveStore  # noqa: PLC0415

    store = build_permanent_store(settings, PermanentBackend.ARWEAVE, keys=keys, root=root, purpose=purpose)
    assert isinstance(store, ArweaveStore)  # noqa: S101  (what build_permanent_store builds for Arweave)
    return store.address
