"""Where the Arweave wallet's key lives: sealed by the root of trust beside the service keys (created once,
refused when its row is altered), or in KMS (an RSA_4096 key that signs transactions nodes accept)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from reliquary.adapters.arweave import KmsArweaveWallet
from reliquary.adapters.permanent_factory import build_permanent_store, configured_backends, permanent_stores
from reliquary.config import Settings
from reliquary.crypto.root import LocalRootOfTrust
from reliquary.errors import ConfigurationError, RootOfTrustError
from reliquary.vaults.arweave_tx import (
    ArweaveWallet,
    Tag,
    sign_data_transaction,
    verify_data_transaction,
    wallet_address,
)
from reliquary.vaults.memory import InMemorySigningKeyStore
from reliquary.vaults.permanent import PermanentBackend
from reliquary.vaults.wallet import ANCHORS_WALLET, BODIES_WALLET, WALLET_ALGORITHM, load_or_create_wallet
from tests.support.aws import fake_credentials


def _signs_valid_transactions(wallet: ArweaveWallet | KmsArweaveWallet) -> None:
    tx = sign_data_transaction(
        wallet, b"sealed body", tags=[Tag("App-Name", "RELIQUARY")], anchor=b"", reward=1
    )
    assert verify_data_transaction(tx)
    assert tx.owner == wallet.owner
    assert wallet.address == wallet_address(wallet.owner)


def test_a_sealed_wallet_is_created_once_and_loaded_back() -> None:
    store, root = InMemorySigningKeyStore(), LocalRootOfTrust.generate()
    first = load_or_create_wallet(store, root, purpose=BODIES_WALLET, clock=lambda: 100)
    again = load_or_create_wallet(store, root, purpose=BODIES_WALLET, clock=lambda: 200)
    assert again.owner == first.owner
    [row] = store.list()
    assert (row.algorithm, row.public_key, row.created_at) == (WALLET_ALGORITHM, first.owner, 100)
    assert first.private_bytes() not in row.wrapped_secret  # stored wrapped, never in the clear
    _signs_valid_transactions(again)


def test_a_sealed_wallet_is_refused_under_another_root_purpose_or_owner() -> None:
    store, root = InMemorySigningKeyStore(), LocalRootOfTrust.generate()
    wallet = load_or_create_wallet(store, root, purpose=BODIES_WALLET, clock=lambda: 1)
    with pytest.raises(RootOfTrustError):  # a row copied from the bodies' partition to the anchors'
        load_or_create_wallet(store, root, purpose=ANCHORS_WALLET, clock=lambda: 1)
    with pytest.raises(RootOfTrustError):
        load_or_create_wallet(store, LocalRootOfTrust.generate(), purpose=BODIES_WALLET, clock=lambda: 1)
    [row] = store.list()
    swapped = InMemorySigningKeyStore()
    other_owner = bytes([wallet.owner[0]]) + bytes(reversed(wallet.owner[1:]))
    swapped.add(dataclasses.replace(row, public_key=other_owner))  # says another key is the wallet's
    with pytest.raises(RootOfTrustError):
        load_or_create_wallet(swapped, root, purpose=BODIES_WALLET, clock=lambda: 1)


@pytest.fixture
def kms(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    fake_credentials(monkeypatch)
    with mock_aws():
        yield boto3.client("kms", region_name="us-east-1")


def test_a_kms_wallet_signs_transactions_the_verifier_accepts(kms: Any) -> None:
    key = kms.create_key(KeySpec="RSA_4096", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["KeyId"]
    wallet = KmsArweaveWallet(kms, key)
    assert len(wallet.owner) == 512
    assert "KmsArweaveWallet(address=" in repr(wallet)
    _signs_valid_transactions(wallet)


@pytest.mark.parametrize("spec", ["RSA_2048", "ECC_NIST_P256"])
def test_a_kms_key_that_is_no_arweave_wallet_is_refused(kms: Any, spec: str) -> None:
    key = kms.create_key(KeySpec=spec, KeyUsage="SIGN_VERIFY")["KeyMetadata"]["KeyId"]
    with pytest.raises(ConfigurationError, match="RSA_4096"):
        KmsArweaveWallet(kms, key)


def test_the_factory_builds_only_configured_backends() -> None:
    keys, root = InMemorySigningKeyStore(), LocalRootOfTrust.generate()
    bare = Settings()
    assert configured_backends(bare) == frozenset()
    for backend in PermanentBackend:
        with pytest.raises(ConfigurationError, match="configured"):
            build_permanent_store(bare, backend, keys=keys, root=root, purpose=BODIES_WALLET)
    stores = permanent_stores(
        Settings(ipfs_api_url="http://127.0.0.1:9"), keys=keys, root=root, purpose=BODIES_WALLET
    )
    assert stores.backends == {PermanentBackend.IPFS}
    assert stores(PermanentBackend.IPFS) is stores(PermanentBackend.IPFS)  # built once
    with pytest.raises(ConfigurationError, match="arweave"):
        stores(PermanentBackend.ARWEAVE)
    assert keys.list() == []  # no wallet made for a backend never used
