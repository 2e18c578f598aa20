"""An audit service on in-memory stores with freshly generated checkpoint keys (one set per process)."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from reliquary.audit.log import TransparencyLog
from reliquary.audit.memory import InMemoryExportSink, InMemoryLogStore, InMemoryTileStore
from reliquary.audit.note import NoteSigner
from reliquary.audit.reader import AuditReader
from reliquary.audit.records import DecisionRecord, DeletionRecord, principal_hash
from reliquary.audit.service import AuditService, CheckpointKeys
from reliquary.crypto.signing import SignatureAlgorithm, SigningKey

ORIGIN_PREFIX = "audit.test.example/logs"
SALT = b"a test principal salt, 32 bytes"


@functools.cache
def checkpoint_keys() -> CheckpointKeys:
    """Ed25519, ML-DSA-65 and Falcon-512 under one key name, as the deployment signs checkpoints."""
    algorithms = (SignatureAlgorithm.ED25519, SignatureAlgorithm.ML_DSA_65, SignatureAlgorithm.FALCON_512)
    return CheckpointKeys(tuple(NoteSigner(ORIGIN_PREFIX, SigningKey.generate(a)) for a in algorithms))


@dataclass
class AuditFixture:
    service: AuditService
    log: TransparencyLog
    store: InMemoryLogStore
    tiles: InMemoryTileStore
    exports: InMemoryExportSink
    keys: CheckpointKeys


def audit_fixture(keys: CheckpointKeys | None = None) -> AuditFixture:
    store, tiles, exports = InMemoryLogStore(), InMemoryTileStore(), InMemoryExportSink()
    keys = keys or checkpoint_keys()
    log = TransparencyLog(store, tiles)
    service = AuditService(log, tiles, store, keys, origin_prefix=ORIGIN_PREFIX, exports=exports)
    return AuditFixture(service, log, store, tiles, exports, keys)


def decision(request_id: str, tenant_id: str = "acme", **changes: Any) -> DecisionRecord:
    fields: dict[str, Any] = {
        "request_id": request_id,
        "tenant_id": tenant_id,
        "vault_id": "agent-memory",
        "item_id": "customer-42-notes",
        "principal_hash": principal_hash(tenant_id, "support-agent-7", SALT),
        "decision": "approve",
        "reasons": ["quorum 2 of 3"],
        "trust_score": 0.75,
        "policy_version": "9b" * 32,
        "time": 1_795_651_200,
    }
    fields.update(changes)
    return DecisionRecord(**fields)


def deletion(request_id: str, tenant_id: str = "acme", **changes: Any) -> DeletionRecord:
    fields: dict[str, Any] = {
        "request_id": request_id,
        "tenant_id": tenant_id,
        "vault_id": "agent-memory",
        "item_id": "customer-42-notes",
        "versions": (1,),
        "shredded_at": 1_795_651_200,
        "signer_key_id": "00" * 8,
        "signature_algorithm": "ML-DSA-65",
        "reason": "requested",
    }
    fields.update(changes)
    return DeletionRecord(**fields)


STAGE_KEYS = [{"signer": "agent-vote", "algorithm": "ML-DSA-65", "key_id": "00" * 8, "public_key": "AA=="}]


def audit_reader(fx: AuditFixture) -> AuditReader:
    """A reader over the fixture's stores (with a log instance of its own, as in another function),
    trusting the fixture's checkpoint keys as published."""
    return AuditReader(
        TransparencyLog(fx.store, fx.tiles),
        fx.store,
        fx.store,
        origin_prefix=ORIGIN_PREFIX,
        verifiers=lambda: fx.keys.verifiers,
        stage_keys=lambda: STAGE_KEYS,
    )
