"""Vault recovery: a recovery key pair whose private key exists only as Shamir shares held by custodians.

At vault creation a hybrid recovery key pair is generated; its 96-byte private key is split k-of-n over
GF(2^8) and each share is HPKE-sealed to one custodian's public key; then the private key is dropped.
Every vault key version's private key is also sealed to the recovery public key (the escrow), so any k
custodians can recover any version even if the root of trust is lost, and fewer than k learn nothing.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from reliquary.crypto import shamir
from reliquary.crypto.codec import Writer
from reliquary.crypto.kem import HybridPrivateKey, HybridPublicKey
from reliquary.crypto.scope import VaultRef, validate_id
from reliquary.errors import InvalidEnvelopeError, InvalidRequestError, ReliquaryError


@dataclass(frozen=True, slots=True)
class SealedShare:
    custodian_id: str
    public_key_fingerprint: bytes
    sealed: bytes


def _share_info(vault: VaultRef, custodian_id: str, fingerprint: bytes) -> bytes:
    return (
        Writer()
        .raw(b"RELIQUARY share v1\x00")
        .text(vault.tenant_id)
        .text(vault.vault_id)
        .text(custodian_id)
        .raw(fingerprint)
        .getvalue()
    )


def _escrow_info(vault: VaultRef, key_version: int) -> bytes:
    return (
        Writer()
        .raw(b"RELIQUARY escrow v1\x00")
        .text(vault.tenant_id)
        .text(vault.vault_id)
        .u32(key_version)
        .getvalue()
    )


def create_recovery(
    vault: VaultRef,
    custodians: Sequence[tuple[str, HybridPublicKey]],
    *,
    threshold: int,
    randbytes: Callable[[int], bytes] = os.urandom,
) -> tuple[HybridPublicKey, list[SealedShare]]:
    """A fresh recovery key pair; returns its public key and one sealed share per custodian."""
    ids = [validate_id("custodian_id", custodian_id) for custodian_id, _ in custodians]
    if len(set(ids)) != len(ids):
        raise InvalidRequestError("custodian ids must be distinct", field="custodians")
    fingerprints = {public_key.fingerprint() for _, public_key in custodians}
    if len(fingerprints) != len(custodians):
        # One key behind two ids would let one party hold two shares and quietly lower the threshold.
        raise InvalidRequestError("custodian public keys must be distinct", field="custodians")
    if not 2 <= threshold <= len(custodians):
        raise InvalidRequestError(
            "the recovery threshold must be at least 2 and at most the number of custodians",
            field="recovery_threshold",
        )
    recovery_key = HybridPrivateKey.generate()
    shares = shamir.split(
        recovery_key.private_bytes(), threshold=threshold, shares=len(custodians), randbytes=randbytes
    )
    sealed = []
    for (custodian_id, public_key), share in zip(custodians, shares, strict=True):
        fingerprint = public_key.fingerprint()
        sealed.append(
            SealedShare(
                custodian_id=custodian_id,
                public_key_fingerprint=fingerprint,
                sealed=public_key.seal(share.to_bytes(), info=_share_info(vault, custodian_id, fingerprint)),
            )
        )
    return recovery_key.public_key(), sealed


def open_share(
    sealed_share: SealedShare, *, vault: VaultRef, custodian_private_key: HybridPrivateKey
) -> shamir.Share:
    """The custodian's side: open its own share (opaque InvalidEnvelopeError on any failure)."""
    info = _share_info(vault, sealed_share.custodian_id, custodian_private_key.public_key().fingerprint())
    try:
        return shamir.Share.from_bytes(custodian_private_key.open(sealed_share.sealed, info=info))
    except ReliquaryError:
        raise InvalidEnvelopeError from None


def escrow(
    vault: VaultRef, key_version: int, private_key: HybridPrivateKey, recovery: HybridPublicKey
) -> bytes:
    return recovery.seal(private_key.private_bytes(), info=_escrow_info(vault, key_version))


def recover_private_key(
    vault: VaultRef, key_version: int, escrowed: bytes, shares: Sequence[shamir.Share]
) -> HybridPrivateKey:
    """Combine k custodian shares into the recovery key and open one version's escrowed private key."""
    recovery_key = HybridPrivateKey.from_private_bytes(shamir.combine(shares))
    return HybridPrivateKey.from_private_bytes(
        recovery_key.open(escrowed, info=_escrow_info(vault, key_version))
    )
