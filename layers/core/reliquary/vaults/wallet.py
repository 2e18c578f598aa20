"""The deployment's Arweave wallet when no KMS key holds it: a 4096-bit RSA key generated on first use and
stored wrapped by the root of trust, beside the service's signing keys (``SigningKeyStore``).

As with the signing keys (``reliquary.vaults.service_keys``), storage is not trusted to say which wallet is
the service's: the stored secret counts only if it unwraps under a context naming its purpose and owner,
and its owner is the stored public part. Each function that pays for transactions keeps a wallet of its
own purpose in its own partition (the encrypt function for item bodies, audit-append for anchors), so
neither can spend the other's funds nor read its key.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
from collections.abc import Callable

from reliquary.crypto.root import RootOfTrust
from reliquary.errors import ConflictError, ReliquaryError, RootOfTrustError
from reliquary.vaults.arweave_tx import ArweaveWallet
from reliquary.vaults.models import StoredSigningKey
from reliquary.vaults.ports import SigningKeyStore

# Stored as a signing key of this "algorithm": loaders of service, stage and checkpoint keys read only
# their own algorithms, so the row is invisible to them (and the store's one-row-per-algorithm condition
# makes two cold starts racing to create it end up with one wallet).
WALLET_ALGORITHM = "Arweave-RSA-4096"
BODIES_WALLET = "arweave-wallet/bodies"
ANCHORS_WALLET = "arweave-wallet/anchors"


def _context(owner: bytes, purpose: str) -> dict[str, str]:
    return {
        "purpose": purpose,
        "algorithm": WALLET_ALGORITHM,
        "public_key_sha256": hashlib.sha256(owner).hexdigest(),
    }


def load_or_create_wallet(
    store: SigningKeyStore, root: RootOfTrust, *, purpose: str, clock: Callable[[], int]
) -> ArweaveWallet:
    """The wallet stored for ``purpose``, created (and stored wrapped) on first use.
    ``RootOfTrustError`` for a stored row the root of trust does not vouch for."""
    stored = _find(store)
    if stored is None:
        fresh = ArweaveWallet.generate()
        with contextlib.suppress(ConflictError):  # another cold start stored one first: use that
            store.add(
                StoredSigningKey(
                    algorithm=WALLET_ALGORITHM,
                    key_id=hashlib.sha256(fresh.owner).digest(),
                    public_key=fresh.owner,
                    wrapped_secret=root.wrap(fresh.private_bytes(), context=_context(fresh.owner, purpose)),
                    created_at=clock(),
                    root_key_id=root.key_id,
                )
            )
        stored = _find(store)
        if stored is None:
            raise RootOfTrustError("the Arweave wallet was stored but cannot be read back")
    try:
        wallet = ArweaveWallet.from_private_bytes(
            root.unwrap(stored.wrapped_secret, context=_context(stored.public_key, purpose))
        )
    except ReliquaryError as exc:
        raise RootOfTrustError("the stored Arweave wallet is not authentic; refusing to use it") from exc
    if not hmac.compare_digest(wallet.owner, stored.public_key):
        raise RootOfTrustError("the stored Arweave wallet does not match its public part")
    return wallet


def _find(store: SigningKeyStore) -> StoredSigningKey | None:
    return next((k for k in store.list() if k.algorithm == WALLET_ALGORITHM), None)
