"""Where the attestation chains of logged decisions are kept: beside the transparency log, one immutable
object per chain, named by its digest (the digest the decision record carries). Content-addressed, so an
object is never overwritten and a chain read back is checked against the record that names it."""

from __future__ import annotations

import hashlib
from typing import Protocol

from reliquary import jcs
from reliquary.errors import AttestationError
from reliquary.flow.attestation import Attestation, parse_chain

MAX_CHAIN_BYTES = 256 * 1024  # 20 statements of ML-DSA-65 (3.3 KB signatures) fit in a quarter of this


class ChainStore(Protocol):
    def put(self, tenant_id: str, digest: str, data: bytes) -> None:
        """Store ``data`` (a chain's canonical JSON) under its digest; idempotent."""

    def get(self, tenant_id: str, digest: str) -> bytes | None:
        """The stored chain, or None when there is none under that digest."""


class MemoryChainStore:
    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], bytes] = {}

    def put(self, tenant_id: str, digest: str, data: bytes) -> None:
        self.objects[(tenant_id, digest)] = data

    def get(self, tenant_id: str, digest: str) -> bytes | None:
        return self.objects.get((tenant_id, digest))


def load_chain(store: ChainStore, tenant_id: str, digest: str) -> list[Attestation]:
    """The chain a decision record names, as stored (``AttestationError`` when missing or altered)."""
    data = store.get(tenant_id, digest)
    if data is None:
        raise AttestationError("the logged decision's attestation chain is missing", check="chain")
    if len(data) > MAX_CHAIN_BYTES or hashlib.sha256(data).hexdigest() != digest:
        raise AttestationError("the stored attestation chain is not the one the log names", check="chain")
    return parse_chain(jcs.parse(data))
