"""Storage is not trusted: keys altered in the database are refused by the root of trust, and races
between sealing and key rotation never strand an item on a destroyed key."""

from __future__ import annotations

from dataclasses import replace

import pytest

from reliquary.crypto import envelope
from reliquary.crypto.envelope import VaultKey
from reliquary.crypto.kem import HybridPrivateKey
from reliquary.crypto.recovery import create_recovery
from reliquary.crypto.root import LocalRootOfTrust
from reliquary.crypto.scope import ItemScope, VaultRef
from reliquary.crypto.signing import SignatureAlgorithm, SigningKey
from reliquary.errors import (
    ConfigurationError,
    InvalidEnvelopeError,
    InvalidRequestError,
    ItemExpiredError,
    RootOfTrustError,
)
from reliquary.vaults.memory import InMemorySigningKeyStore
from reliquary.vaults.models import ItemRecord, RecoveryPolicy, StoredSigningKey, VaultKeyRecord
from reliquary.vaults.service_keys import ServiceKeys
from tests.support.vaults import USER_SCOPE, MemoryStack, approve_and_grant, grant_and_open, memory_stack

TENANT, VAULT = "acme", "vault-1"


def _swap_public_key(stack: MemoryStack, version: int, public_key: bytes) -> None:
    key = stack.vaults.get_key(TENANT, VAULT, version)
    stack.vaults._keys[(TENANT, VAULT, version)] = replace(key, public_key=public_key)


def test_a_public_key_swapped_in_storage_never_receives_a_data_key() -> None:
    stack = memory_stack()
    stack.service.create_vault(TENANT, VAULT)
    attacker = HybridPrivateKey.generate()
    _swap_public_key(stack, 1, attacker.public_key().to_bytes())
    with pytest.raises(RootOfTrustError):
        stack.service.seal_item(TENANT, VAULT, "note", b"secret", memory_scope=USER_SCOPE)
    assert stack.items.versions(TENANT, VAULT, "note") == []


def test_a_recovery_key_swapped_in_storage_stops_the_rotation_before_any_escrow() -> None:
    stack = memory_stack()
    custodians = [(f"c{i}", HybridPrivateKey.generate().public_key()) for i in range(3)]
    created = stack.service.create_vault(TENANT, VAULT, custodians=custodians, recovery_threshold=2)
    assert created.vault.recovery is not None
    attacker_recovery, _ = create_recovery(
        VaultRef(TENANT, VAULT),
        [(f"x{i}", HybridPrivateKey.generate().public_key()) for i in range(2)],
        threshold=2,
    )
    policy: RecoveryPolicy = replace(created.vault.recovery, recovery_public_key=attacker_recovery.to_bytes())
    stack.vaults._vaults[(TENANT, VAULT)] = replace(created.vault, recovery=policy)
    with pytest.raises(RootOfTrustError):
        stack.service.rotate_key(TENANT, VAULT)
    assert [k.version for k in stack.vaults.list_keys(TENANT, VAULT)] == [1]


def test_a_seal_racing_a_rotation_lands_on_the_new_key() -> None:
    stack = memory_stack()
    stack.service.create_vault(TENANT, VAULT)
    original_put = stack.items.put
    rotated: list[VaultKeyRecord] = []

    def rotate_first(record: ItemRecord) -> None:
        if not rotated:  # the operator rotates between the seal's key read and its write
            rotated.append(stack.service.rotate_key(TENANT, VAULT))
        original_put(record)

    stack.items.put = rotate_first  # type: ignore[method-assign]
    record = stack.service.seal_item(TENANT, VAULT, "note", b"raced", memory_scope=USER_SCOPE)
    assert record.wrap_key_version == 2
    report = stack.service.rewrap_vault(TENANT, VAULT)
    assert (report.rewrapped, report.already_current) == (0, 1)
    stack.service.retire_key(TENANT, VAULT, 1)
    requester = HybridPrivateKey.generate()
    opened = grant_and_open(
        stack.service,
        stack.ledger,
        tenant_id=TENANT,
        vault_id=VAULT,
        item_id="note",
        requester=requester,
        now=stack.clock.now,
    )
    assert opened == b"raced"


def test_a_rewrap_racing_a_rotation_counts_newer_items_as_current() -> None:
    stack = memory_stack()
    stack.service.create_vault(TENANT, VAULT)
    stack.service.seal_item(TENANT, VAULT, "old", b"v1 item", memory_scope=USER_SCOPE)
    original_scan = stack.items.scan_vault

    def rotate_then_scan(tenant_id: str, vault_id: str):  # type: ignore[no-untyped-def]
        # The rewrap read version 1 as current; meanwhile version 2 arrives and an item is sealed to it.
        stack.service.rotate_key(TENANT, VAULT)
        stack.service.seal_item(TENANT, VAULT, "new", b"v2 item", memory_scope=USER_SCOPE)
        return original_scan(tenant_id, vault_id)

    stack.items.scan_vault = rotate_then_scan  # type: ignore[method-assign]
    report = stack.service.rewrap_vault(TENANT, VAULT)
    assert (report.key_version, report.rewrapped, report.already_current) == (1, 0, 2)


def test_custodians_must_hold_distinct_keys() -> None:
    stack = memory_stack()
    shared = HybridPrivateKey.generate().public_key()
    with pytest.raises(InvalidRequestError, match="distinct"):
        stack.service.create_vault(
            TENANT,
            VAULT,
            custodians=[("alice", shared), ("bob", shared), ("carol", shared)],
            recovery_threshold=2,
        )


def test_a_grant_for_an_item_that_expires_at_this_second_is_an_expiry_not_a_bad_request() -> None:
    stack = memory_stack()
    stack.service.create_vault(TENANT, VAULT)
    stack.service.seal_item(
        TENANT, VAULT, "note", b"x", memory_scope=USER_SCOPE, expires_at=stack.clock.now + 10
    )
    original_get = stack.vaults.get_key

    def slow_unwrap(tenant_id: str, vault_id: str, version: int):  # type: ignore[no-untyped-def]
        stack.clock.advance(10)  # the key unwrap takes the item past its expiry
        return original_get(tenant_id, vault_id, version)

    stack.vaults.get_key = slow_unwrap  # type: ignore[method-assign]
    stack.service._key_cache.clear()
    with pytest.raises(ItemExpiredError):
        approve_and_grant(
            stack.service,
            stack.ledger,
            tenant_id=TENANT,
            vault_id=VAULT,
            item_id="note",
            requester=HybridPrivateKey.generate(),
            now=stack.clock.now,
        )


# --- service signing keys ---------------------------------------------------------------------------
def _service_keys(store: InMemorySigningKeyStore, root: LocalRootOfTrust) -> ServiceKeys:
    return ServiceKeys.load_or_create(store, root, SignatureAlgorithm.ML_DSA_65, clock=lambda: 1)


def test_a_signing_key_planted_in_storage_stops_the_service_from_starting() -> None:
    store, root = InMemorySigningKeyStore(), LocalRootOfTrust.generate()
    _service_keys(store, root)
    attacker = SigningKey.generate(SignatureAlgorithm.FALCON_512)
    store.add(
        StoredSigningKey(
            algorithm="Falcon-512",
            key_id=attacker.key_id,
            public_key=attacker.public_key,
            wrapped_secret=b"not wrapped by the root of trust",
            created_at=2,
        )
    )
    with pytest.raises(RootOfTrustError, match="not authentic"):
        _service_keys(store, root)


def test_a_signing_public_key_swapped_in_storage_stops_the_service_from_starting() -> None:
    store, root = InMemorySigningKeyStore(), LocalRootOfTrust.generate()
    _service_keys(store, root)
    genuine = store._keys["ML-DSA-65"]
    attacker = SigningKey.generate(SignatureAlgorithm.ML_DSA_65)
    store._keys["ML-DSA-65"] = replace(genuine, public_key=attacker.public_key)
    with pytest.raises(RootOfTrustError):
        _service_keys(store, root)


def test_a_classical_service_key_cannot_vouch_for_envelopes_unless_accepted() -> None:
    """Ed25519 keys (for checkpoints, say) are ours too, but not trusted for envelopes by default."""
    store, root = InMemorySigningKeyStore(), LocalRootOfTrust.generate()
    classical = ServiceKeys.load_or_create(
        store, root, SignatureAlgorithm.ED25519, clock=lambda: 1, accepted=list(SignatureAlgorithm)
    )
    default = _service_keys(store, root)
    assert default.keyring.get(classical.signer.key_id, SignatureAlgorithm.ED25519) is None
    assert len(default.keyring) == 1
    vault_key = VaultKey(1, HybridPrivateKey.generate())
    scope = ItemScope("acme", "v", "i", 1, "text/plain")
    forged = envelope.seal(
        b"x",
        scope=scope,
        vault_public_key=vault_key.private_key.public_key(),
        key_version=1,
        signer=classical.signer,
    )
    with pytest.raises(InvalidEnvelopeError):
        envelope.open_envelope(forged, scope=scope, vault_key=vault_key, keyring=default.keyring)
    with pytest.raises(ConfigurationError):
        ServiceKeys.load_or_create(store, root, SignatureAlgorithm.ED25519, clock=lambda: 1)


def test_derived_keys_are_stable_per_label_and_independent() -> None:
    store, root = InMemorySigningKeyStore(), LocalRootOfTrust.generate()
    first, again = _service_keys(store, root), _service_keys(store, root)
    mac_key = first.derive_key("idempotency payload mac")
    assert len(mac_key) == 32
    assert again.derive_key("idempotency payload mac") == mac_key
    assert first.derive_key("another purpose") != mac_key
    assert _service_keys(InMemorySigningKeyStore(), root).derive_key("idempotency payload mac") != mac_key
