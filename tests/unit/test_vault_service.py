"""The vault domain on the in-memory fakes: vaults, items, grants, rotation, rewrap, retirement, large
items, crypto-shredding, expiry, custodian recovery, tenant isolation, input validation, and the logged
approval a grant needs. No AWS."""

from __future__ import annotations

import copy
import itertools
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reliquary.actions.encrypt import run_encrypt_action
from reliquary.audit.records import DecisionRecord
from reliquary.contracts.encrypt import GrantRequest
from reliquary.crypto import envelope as env
from reliquary.crypto import grants
from reliquary.crypto.envelope import Envelope, VaultKey
from reliquary.crypto.grants import open_grant
from reliquary.crypto.kem import PRIVATE_KEY_LEN, HybridPrivateKey, requester_key_sha256
from reliquary.crypto.recovery import SealedShare, open_share
from reliquary.crypto.root import LocalRootOfTrust
from reliquary.crypto.scope import ItemScope, VaultRef
from reliquary.crypto.shamir import Share
from reliquary.crypto.signing import SignatureAlgorithm
from reliquary.errors import (
    ConflictError,
    DecisionRequiredError,
    InvalidEnvelopeError,
    InvalidRequestError,
    InvalidSignatureError,
    ItemExpiredError,
    ItemShreddedError,
    KeyVersionError,
    NotFoundError,
    PayloadTooLargeError,
    RootOfTrustError,
    StorageUnavailableError,
)
from reliquary.vaults.memory import InMemoryDecisionLedger, InMemorySigningKeyStore, approval_record
from reliquary.vaults.models import (
    MAX_TAGS,
    BodyLocation,
    ItemRecord,
    KeyStatus,
    MemoryKind,
    MemoryScope,
    StoredSigningKey,
)
from reliquary.vaults.service import IssuedGrant, VaultService
from reliquary.vaults.service_keys import ServiceKeys
from tests.support.vaults import (
    T0,
    USER_SCOPE,
    ManualClock,
    MemoryStack,
    approve_and_grant,
    grant_and_open,
    memory_service,
    memory_stack,
)

TENANT = "tenant-a"
OTHER_TENANT = "tenant-b"
VAULT = "vault-1"
SMALL = b"remember: the cat is called Quantum"
LARGE = bytes(range(256)) * 20  # 5120 bytes: above the 1 KiB threshold of memory_stack
TTL = 300


@pytest.fixture
def stack() -> MemoryStack:
    return memory_stack()


@pytest.fixture
def service(stack: MemoryStack) -> VaultService:
    stack.service.create_vault(TENANT, VAULT)
    return stack.service


@pytest.fixture(scope="module")
def requester() -> HybridPrivateKey:
    return HybridPrivateKey.generate()


def _seal(service: VaultService, item_id: str, plaintext: bytes, **kwargs: Any) -> ItemRecord:
    return service.seal_item(TENANT, VAULT, item_id, plaintext, memory_scope=USER_SCOPE, **kwargs)


def _open(
    stack: MemoryStack, item_id: str, requester: HybridPrivateKey, *, version: int | None = None
) -> bytes:
    return grant_and_open(
        stack.service,
        stack.ledger,
        tenant_id=TENANT,
        vault_id=VAULT,
        item_id=item_id,
        requester=requester,
        now=stack.clock(),
        version=version,
    )


def _snapshot(stack: MemoryStack) -> tuple[Any, ...]:
    """Everything the fakes hold, to show that a refused call wrote nothing."""
    return copy.deepcopy(
        (
            stack.vaults._vaults,
            stack.vaults._keys,
            stack.items._items,
            stack.blobs._blobs,
            stack.signing_keys._keys,
        )
    )


def _vault_private_key(stack: MemoryStack, version: int, tenant_id: str = TENANT) -> HybridPrivateKey:
    record = stack.vaults.get_key(tenant_id, VAULT, version)
    vault = stack.vaults.get(tenant_id, VAULT)
    assert record.wrapped_private_key is not None
    context = VaultRef(tenant_id, VAULT).key_context(
        version,
        public_key=record.public_key,
        recovery_public_key=vault.recovery.recovery_public_key if vault.recovery else None,
    )
    secret = stack.root.unwrap(record.wrapped_private_key, context=context)
    return HybridPrivateKey.from_private_bytes(secret)


ALL = list(SignatureAlgorithm)  # tests that use Ed25519 service keys opt in to it


# --- vaults and grants --------------------------------------------------------------------------------
# Grants here go the only way there is: an attested approval logged in the stack's ledger, then
# ``grant_approved``. The refusals of the logged decision have their own section at the end (and the
# attestation chain's, tests/unit/test_vault_grant_attested.py).


def _issue(
    stack: MemoryStack,
    item_id: str,
    requester: HybridPrivateKey,
    *,
    version: int | None = None,
    tenant_id: str = TENANT,
    vault_id: str = VAULT,
) -> IssuedGrant:
    return approve_and_grant(
        stack.service,
        stack.ledger,
        tenant_id=tenant_id,
        vault_id=vault_id,
        item_id=item_id,
        requester=requester,
        now=stack.clock(),
        version=version,
    )


def test_create_vault_stores_version_1_wrapped_by_the_root(stack: MemoryStack) -> None:
    created = stack.service.create_vault(TENANT, VAULT)

    assert created.vault.current_key_version == 1
    assert created.vault.created_at == T0
    assert created.vault.recovery is None
    assert stack.vaults.get(TENANT, VAULT) == created.vault
    assert stack.vaults.list_keys(TENANT, VAULT) == [created.key]
    assert created.key.version == 1
    assert created.key.status is KeyStatus.ACTIVE
    assert created.key.root_key_id == stack.root.key_id
    assert created.key.escrowed_private_key is None
    private = _vault_private_key(stack, 1)
    assert len(private.private_bytes()) == PRIVATE_KEY_LEN
    assert private.public_key().to_bytes() == created.key.public_key
    assert private.private_bytes() not in (created.key.wrapped_private_key or b"")


def test_create_vault_twice_is_a_conflict(stack: MemoryStack) -> None:
    first = stack.service.create_vault(TENANT, VAULT)
    with pytest.raises(ConflictError):
        stack.service.create_vault(TENANT, VAULT)
    assert stack.vaults.list_keys(TENANT, VAULT) == [first.key]


def test_sealed_item_opens_for_the_requester_with_the_exact_plaintext(
    stack: MemoryStack, service: VaultService, requester: HybridPrivateKey
) -> None:
    record = _seal(service, "note", SMALL, content_type="text/plain", tags={"topic": "pets"})

    assert (record.version, record.wrap_key_version, record.size) == (1, 1, len(SMALL))
    assert record.body_location is BodyLocation.INLINE
    assert record.blob_key is None
    assert record.created_at == T0
    assert stack.items.get(TENANT, VAULT, "note") == record
    sealed = Envelope.parse(record.envelope or b"")
    assert not sealed.detached
    assert SMALL not in (record.envelope or b"")

    issued = _issue(stack, "note", requester)
    assert issued.expires_at == T0 + TTL
    assert issued.record == record
    opened = open_grant(
        issued.grant,
        record.envelope or b"",
        requester_private_key=requester,
        service_keys=service.service_keys.keyring,
        now=T0,
    )
    assert opened == SMALL


@pytest.mark.parametrize("plaintext", [b"", b"x", SMALL], ids=["empty", "one-byte", "text"])
def test_short_items_round_trip(
    stack: MemoryStack, service: VaultService, requester: HybridPrivateKey, plaintext: bytes
) -> None:
    _seal(service, "short", plaintext)
    assert _open(stack, "short", requester) == plaintext


def test_a_grant_opens_only_with_the_requesters_own_key(
    stack: MemoryStack, service: VaultService, requester: HybridPrivateKey
) -> None:
    record = _seal(service, "note", SMALL)
    issued = _issue(stack, "note", requester)
    with pytest.raises(InvalidEnvelopeError):
        open_grant(
            issued.grant,
            record.envelope or b"",
            requester_private_key=HybridPrivateKey.generate(),
            service_keys=service.service_keys.keyring,
            now=T0,
        )


def test_a_grant_is_refused_once_the_clock_passes_its_expiry(
    stack: MemoryStack, service: VaultService, requester: HybridPrivateKey
) -> None:
    record = _seal(service, "note", SMALL)
    issued = _issue(stack, "note", requester)

    def open_at(now: int) -> bytes:
        return open_grant(
            issued.grant,
            record.envelope or b"",
            requester_private_key=requester,
            service_keys=service.service_keys.keyring,
            now=now,
        )

    assert open_at(stack.clock.advance(TTL - 1)) == SMALL
    with pytest.raises(InvalidEnvelopeError):
        open_at(stack.clock.advance(1))  # now == expires_at
    with pytest.raises(InvalidEnvelopeError):
        open_at(stack.clock.advance(3600))


def test_a_grant_does_not_open_another_items_envelope(
    stack: MemoryStack, service: VaultService, requester: HybridPrivateKey
) -> None:
    _seal(service, "first", SMALL)
    second = _seal(service, "second", b"something else entirely")
    issued = _issue(stack, "first", requester)
    with pytest.raises(InvalidEnvelopeError):
        open_grant(
            issued.grant,
            second.envelope or b"",
            requester_private_key=requester,
            service_keys=service.service_keys.keyring,
            now=T0,
        )


def test_a_grant_is_not_accepted_under_a_keyring_of_another_service(
    stack: MemoryStack, service: VaultService, requester: HybridPrivateKey
) -> None:
    record = _seal(service, "note", SMALL)
    issued = _issue(stack, "note", requester)
    stranger = memory_service()
    with pytest.raises(InvalidEnvelopeError):
        open_grant(
            issued.grant,
            record.envelope or b"",
            requester_private_key=requester,
            service_keys=stranger.service_keys.keyring,
            now=T0,
        )


def test_grant_of_missing_things_is_not_found(
    stack: MemoryStack, service: VaultService, requester: HybridPrivateKey
) -> None:
    _seal(service, "note", SMALL)
    for vault_id, item_id, version in [("no-vault", "note", None), (VAULT, "nope", None), (VAULT, "note", 2)]:
        with pytest.raises(NotFoundError):
            _issue(stack, item_id, requester, vault_id=vault_id, version=version)


def test_grant_with_an_invalid_request_id_is_refused(
    service: VaultService, requester: HybridPrivateKey
) -> None:
    _seal(service, "note", SMALL)
    with pytest.raises(InvalidRequestError):
        service.grant_approved(
            request_id="bad#id",
            tenant_id=TENANT,
            vault_id=VAULT,
            item_id="note",
            requester_public_key=requester.public_key(),
        )


def test_seal_into_a_missing_vault_is_not_found(stack: MemoryStack) -> None:
    before = _snapshot(stack)
    with pytest.raises(NotFoundError):
        stack.service.seal_item(TENANT, "no-vault", "note", SMALL, memory_scope=USER_SCOPE)
    assert _snapshot(stack) == before


@pytest.mark.parametrize("algorithm", list(SignatureAlgorithm), ids=[a.value for a in SignatureAlgorithm])
def test_every_signature_algorithm_serves_the_golden_path(
    algorithm: SignatureAlgorithm, requester: HybridPrivateKey
) -> None:
    stack = memory_stack(algorithm=algorithm)
    stack.service.create_vault(TENANT, VAULT)
    _seal(stack.service, "small", SMALL)
    _seal(stack.service, "large", LARGE)
    stack.service.rotate_key(TENANT, VAULT)
    assert stack.service.rewrap_vault(TENANT, VAULT).rewrapped == 2
    stack.service.retire_key(TENANT, VAULT, 1)
    assert _open(stack, "small", requester) == SMALL
    assert _open(stack, "large", requester) == LARGE
    assert Envelope.parse(stack.items.get(TENANT, VAULT, "small").envelope or b"").signature_algorithm is (
        algorithm
    )


# --- versions ------------------------------------------------------------------------------------------
def test_sealing_an_item_again_adds_a_version_and_each_version_opens(
    stack: MemoryStack, service: VaultService, requester: HybridPrivateKey
) -> None:
    first = _seal(service, "note", b"first draft")
    second = _seal(service, "note", b"second draft")

    assert (first.version, second.version) == (1, 2)
    assert [r.version for r in stack.items.versions(TENANT, VAULT, "note")] == [1, 2]
    assert _open(stack, "note", requester, version=1) == b"first draft"
    assert _open(stack, "note", requester, version=2) == b"second draft"
    assert _open(stack, "note", requester) == b"second draft"  # the latest by default


def test_versions_are_bound_to_their_scope(
    stack: MemoryStack, service: VaultService, requester: HybridPrivateKey
) -> None:
    first = _seal(service, "note", b"first draft")
    _seal(service, "note", b"second draft")
    issued = _issue(stack, "note", requester, version=2)
    assert issued.record.version == 2
    with pytest.raises(InvalidEnvelopeError):  # a grant of version 2 never opens version 1's envelope
        open_grant(
            issued.grant,
            first.envelope or b"",
            requester_private_key=requester,
            service_keys=service.service_keys.keyring,
            now=T0,
        )


# --- rotation, rewrap, retirement -----------------------------------------------------------------------
def test_rotate_makes_version_2_current_and_new_items_use_it(
    stack: MemoryStack, service: VaultService, requester: HybridPrivateKey
) -> None:
    old = _seal(service, "old", b"sealed under v1")
    key = service.rotate_key(TENANT, VAULT)

    assert key.version == 2
    assert key.status is KeyStatus.ACTIVE
    assert stack.vaults.get(TENANT, VAULT).current_key_version == 2
    assert [(k.version, k.status) for k in stack.vaults.list_keys(TENANT, VAULT)] == [
        (1, KeyStatus.PREVIOUS),
        (2, KeyStatus.ACTIVE),
    ]
    new = _seal(service, "new", b"sealed under v2")
    assert new.wrap_key_version == 2
    parsed = Envelope.parse(new.envelope or b"")
    assert (parsed.sealed_key_version, parsed.wrap_key_version) == (2, 2)
    assert _vault_private_key(stack, 2).public_key().to_bytes() == key.public_key
    assert stack.items.get(TENANT, VAULT, "old") == old  # untouched until a rewrap
    assert _open(stack, "old", requester) == b"sealed under v1"
    assert _open(stack, "new", requester) == b"sealed under v2"


def test_rotate_of_a_missing_vault_is_not_found(stack: MemoryStack) -> None:
    with pytest.raises(NotFoundError):
        stack.service.rotate_key(TENANT, "no-vault")


def test_rewrap_moves_every_live_item_without_touching_bodies(
    stack: MemoryStack, service: VaultService, requester: HybridPrivateKey
) -> None:
    _seal(service, "a", b"alpha")
    _seal(service, "a", b"alpha, version 2")
    large = _seal(service, "big", LARGE)
    _seal(service, "gone", b"to be shredded")
    service.shred_item(TENANT, VAULT, "gone")
    service.rotate_key(TENANT, VAULT)
    _seal(service, "fresh", b"already on v2")
    assert large.blob_key is not None
    blob_before = stack.blobs.get(large.blob_key)
    before = {
        (r.item_id, r.version): Envelope.parse(r.envelope)
        for r in stack.items.scan_vault(TENANT, VAULT)
        if r.envelope is not None
    }

    report = service.rewrap_vault(TENANT, VAULT)

    assert (report.key_version, report.rewrapped, report.already_current, report.skipped_shredded) == (
        2,
        3,
        1,
        1,
    )
    after = {r.item_id + f"@{r.version}": r for r in stack.items.scan_vault(TENANT, VAULT)}
    assert after["gone@1"].envelope is None
    for (item_id, version), old in before.items():
        record = after[f"{item_id}@{version}"]
        assert record.wrap_key_version == 2
        new = Envelope.parse(record.envelope or b"")
        assert new.wrap_key_version == 2
        assert new.sealed_key_version == old.sealed_key_version
        assert new.body == old.body
        assert new.body_tag == old.body_tag
        assert new.body_length == old.body_length
        assert new.nonce == old.nonce
        assert new.key_commitment == old.key_commitment  # the same data key
        if old.wrap_key_version == 1:
            assert new.wrapped_key != old.wrapped_key
            assert new.signature != old.signature  # re-signed over the new header
        else:
            assert new == old
        env.verify(new, record.scope, service.service_keys.keyring)
    assert stack.blobs.get(large.blob_key) == blob_before
    assert _open(stack, "a", requester, version=1) == b"alpha"
    assert _open(stack, "a", requester) == b"alpha, version 2"
    assert _open(stack, "big", requester) == LARGE
    assert _open(stack, "fresh", requester) == b"already on v2"

    again = service.rewrap_vault(TENANT, VAULT)
    assert (again.rewrapped, again.already_current, again.skipped_shredded) == (0, 4, 1)


def test_rewrap_moves_items_of_several_old_versions_to_the_newest(
    stack: MemoryStack, service: VaultService, requester: HybridPrivateKey
) -> None:
    _seal(service, "one", b"on v1")
    service.rotate_key(TENANT, VAULT)
    _seal(service, "two", b"on v2")
    service.rotate_key(TENANT, VAULT)

    report = service.rewrap_vault(TENANT, VAULT)

    assert (report.key_version, report.rewrapped, report.already_current) == (3, 2, 0)
    assert {r.wrap_key_version for r in stack.items.scan_vault(TENANT, VAULT)} == {3}
    service.retire_key(TENANT, VAULT, 1)
    service.retire_key(TENANT, VAULT, 2)
    assert _open(stack, "one", requester) == b"on v1"
    assert _open(stack, "two", requester) == b"on v2"


def test_retire_before_rewrap_names_the_items_still_wrapped(
    stack: MemoryStack, service: VaultService
) -> None:
    for item_id in ("a", "b", "c"):
        _seal(service, item_id, SMALL)
    _seal(service, "shredded", SMALL)
    service.shred_item(TENANT, VAULT, "shredded")  # shredded items do not hold the key version back
    service.rotate_key(TENANT, VAULT)
    _seal(service, "d", SMALL)
    before = _snapshot(stack)

    with pytest.raises(KeyVersionError) as caught:
        service.retire_key(TENANT, VAULT, 1)

    assert caught.value.details == {"key_version": 1, "items": 3}
    assert _snapshot(stack) == before
    assert stack.vaults.get_key(TENANT, VAULT, 1).wrapped_private_key is not None


def test_the_current_key_version_cannot_be_retired(stack: MemoryStack, service: VaultService) -> None:
    with pytest.raises(KeyVersionError):
        service.retire_key(TENANT, VAULT, 1)
    service.rotate_key(TENANT, VAULT)
    with pytest.raises(KeyVersionError):
        service.retire_key(TENANT, VAULT, 2)
    assert stack.vaults.get_key(TENANT, VAULT, 2).status is KeyStatus.ACTIVE


def test_retire_of_an_unknown_version_or_vault_is_not_found(service: VaultService) -> None:
    service.rotate_key(TENANT, VAULT)
    with pytest.raises(NotFoundError):
        service.retire_key(TENANT, VAULT, 7)
    with pytest.raises(NotFoundError):
        service.retire_key(TENANT, "no-vault", 1)


def test_after_rewrap_retire_destroys_the_old_private_key_and_items_still_open(
    stack: MemoryStack, service: VaultService, requester: HybridPrivateKey
) -> None:
    _seal(service, "small", SMALL)
    _seal(service, "large", LARGE)
    service.rotate_key(TENANT, VAULT)
    service.rewrap_vault(TENANT, VAULT)

    retired = service.retire_key(TENANT, VAULT, 1)

    assert retired.status is KeyStatus.RETIRED
    assert retired.wrapped_private_key is None
    stored = stack.vaults.get_key(TENANT, VAULT, 1)
    assert stored.status is KeyStatus.RETIRED
    assert stored.wrapped_private_key is None
    assert stored.public_key == retired.public_key  # the public half stays, for audit
    assert _open(stack, "small", requester) == SMALL
    assert _open(stack, "large", requester) == LARGE
    # An old envelope (a backup, say) can no longer be opened: its key version is gone for good.
    with pytest.raises(KeyVersionError):
        stack.service._vault_key(TENANT, VAULT, 1)
    # Retiring again is harmless.
    assert service.retire_key(TENANT, VAULT, 1).status is KeyStatus.RETIRED


# --- large items -----------------------------------------------------------------------------------------
def test_a_large_item_body_goes_to_the_blob_store(
    stack: MemoryStack, service: VaultService, requester: HybridPrivateKey
) -> None:
    record = _seal(service, "big", LARGE)

    assert record.body_location is BodyLocation.S3
    assert record.blob_key is not None
    assert record.blob_key.startswith(f"tenants/{TENANT}/vaults/{VAULT}/items/big/v0000000001-")
    assert record.blob_key in stack.blobs
    row = Envelope.parse(record.envelope or b"")
    assert row.detached
    assert row.body is None
    blob = stack.blobs.get(record.blob_key)
    assert len(row.with_body(blob).to_bytes()) == len(record.envelope or b"") + len(blob)
    assert len(blob) == row.body_length == len(LARGE) + 16
    assert LARGE not in blob
    _, attached = service.load_envelope(TENANT, VAULT, "big")
    assert attached.body == blob
    assert _open(stack, "big", requester) == LARGE


def test_the_threshold_separates_inline_from_blob_items(stack: MemoryStack, service: VaultService) -> None:
    # The threshold is compared with the ciphertext length (plaintext + 16-byte tag).
    inline = _seal(service, "at", b"x" * (1024 - 16))
    outside = _seal(service, "above", b"x" * (1024 - 15))
    assert inline.body_location is BodyLocation.INLINE
    assert inline.blob_key is None
    assert outside.body_location is BodyLocation.S3
    assert outside.blob_key in stack.blobs


def test_a_tampered_blob_is_refused(
    stack: MemoryStack, service: VaultService, requester: HybridPrivateKey
) -> None:
    record = _seal(service, "big", LARGE)
    assert record.blob_key is not None
    original = stack.blobs.get(record.blob_key)
    for position in (0, len(original) // 2, len(original) - 1):  # ciphertext start, middle, GCM tag
        tampered = bytearray(original)
        tampered[position] ^= 0x01
        stack.blobs._blobs[record.blob_key] = bytes(tampered)
        with pytest.raises(InvalidEnvelopeError):
            _open(stack, "big", requester)
        # A requester that attaches the body by hand, skipping every service-side check, fails too.
        issued = _issue(stack, "big", requester)
        forged = replace(Envelope.parse(record.envelope or b""), body=bytes(tampered))
        with pytest.raises(InvalidEnvelopeError):
            open_grant(
                issued.grant,
                forged,
                requester_private_key=requester,
                service_keys=service.service_keys.keyring,
                now=T0,
            )
    with pytest.raises(InvalidEnvelopeError):  # a changed tag is refused before any decryption
        service.load_envelope(TENANT, VAULT, "big")
    stack.blobs._blobs[record.blob_key] = original
    assert _open(stack, "big", requester) == LARGE


def test_a_truncated_or_swapped_blob_is_refused(stack: MemoryStack, service: VaultService) -> None:
    first = _seal(service, "big", LARGE)
    second = _seal(service, "big", LARGE[::-1])
    assert first.blob_key is not None
    assert second.blob_key is not None
    assert first.blob_key != second.blob_key
    stack.blobs._blobs[first.blob_key] = stack.blobs.get(second.blob_key)
    with pytest.raises(InvalidEnvelopeError):
        service.load_envelope(TENANT, VAULT, "big", version=1)
    stack.blobs._blobs[second.blob_key] = stack.blobs.get(second.blob_key)[:-1]
    with pytest.raises(InvalidEnvelopeError):
        service.load_envelope(TENANT, VAULT, "big", version=2)


def test_items_above_the_maximum_are_refused_and_nothing_is_written(stack: MemoryStack) -> None:
    stack.service.create_vault(TENANT, VAULT)
    before = _snapshot(stack)
    with pytest.raises(PayloadTooLargeError) as caught:
        _seal(stack.service, "huge", b"\0" * (64 * 1024 + 1))
    assert isinstance(caught.value, InvalidRequestError)
    assert caught.value.details == {"size": 64 * 1024 + 1}
    assert _snapshot(stack) == before
    assert _seal(stack.service, "max", b"\0" * (64 * 1024)).body_location is BodyLocation.S3


# --- crypto-shredding -----------------------------------------------------------------------------------
def test_shred_destroys_every_version_and_signs_a_receipt(
    stack: MemoryStack, service: VaultService, requester: HybridPrivateKey
) -> None:
    _seal(service, "doomed", SMALL)
    large = _seal(service, "doomed", LARGE)
    _seal(service, "kept", b"not shredded")
    assert large.blob_key is not None
    stack.clock.advance(10)

    receipt = service.shred_item(TENANT, VAULT, "doomed")

    assert (receipt.tenant_id, receipt.vault_id, receipt.item_id) == (TENANT, VAULT, "doomed")
    assert receipt.versions == (1, 2)
    assert receipt.shredded_at == T0 + 10
    for record in stack.items.versions(TENANT, VAULT, "doomed"):
        assert record.envelope is None
        assert record.shredded_at == T0 + 10
        assert record.size > 0  # a tombstone: metadata stays, the data key is gone
    assert large.blob_key not in stack.blobs
    for version in (None, 1, 2):
        with pytest.raises(ItemShreddedError):
            _issue(stack, "doomed", requester, version=version)
    with pytest.raises(ItemShreddedError):
        service.load_envelope(TENANT, VAULT, "doomed")
    assert _open(stack, "kept", requester) == b"not shredded"

    keyring = service.service_keys.keyring
    verifier = keyring.get(receipt.signer_key_id, SignatureAlgorithm(receipt.signature_algorithm))
    assert verifier is not None
    verifier.verify(receipt.signed_message(), receipt.signature)
    with pytest.raises(InvalidSignatureError):
        verifier.verify(
            replace(receipt, shredded_at=receipt.shredded_at + 1).signed_message(), receipt.signature
        )
    with pytest.raises(InvalidSignatureError):
        verifier.verify(replace(receipt, versions=(1,)).signed_message(), receipt.signature)
    with pytest.raises(InvalidSignatureError):
        verifier.verify(replace(receipt, tenant_id=OTHER_TENANT).signed_message(), receipt.signature)


def test_shredding_twice_returns_the_same_receipt_time(stack: MemoryStack, service: VaultService) -> None:
    _seal(service, "doomed", LARGE)
    first = service.shred_item(TENANT, VAULT, "doomed")
    stack.clock.advance(3600)

    second = service.shred_item(TENANT, VAULT, "doomed")

    assert second.shredded_at == first.shredded_at == T0
    assert second.versions == first.versions == (1,)
    assert stack.items.get(TENANT, VAULT, "doomed").shredded_at == T0
    verifier = service.service_keys.keyring.get(
        second.signer_key_id, SignatureAlgorithm(second.signature_algorithm)
    )
    assert verifier is not None
    verifier.verify(second.signed_message(), second.signature)


def test_a_receipt_never_dates_a_version_before_it_was_shredded(
    stack: MemoryStack, service: VaultService
) -> None:
    _seal(service, "note", b"v1")
    service.shred_item(TENANT, VAULT, "note")
    stack.clock.advance(100)
    _seal(service, "note", b"v2, sealed after the first shred")
    stack.clock.advance(100)

    receipt = service.shred_item(TENANT, VAULT, "note")

    assert receipt.versions == (1, 2)
    stored = {r.version: r.shredded_at for r in stack.items.versions(TENANT, VAULT, "note")}
    assert stored == {1: T0, 2: T0 + 200}
    # The receipt states that every listed version was shredded by shredded_at: it cannot be earlier
    # than the moment version 2 was destroyed (or even created).
    assert receipt.shredded_at == T0 + 200


def test_shred_of_unknown_items_is_not_found(stack: MemoryStack, service: VaultService) -> None:
    before = _snapshot(stack)
    with pytest.raises(NotFoundError) as item:
        service.shred_item(TENANT, VAULT, "nope")
    assert item.value.details == {"item_id": "nope"}
    with pytest.raises(NotFoundError) as vault:
        service.shred_item(TENANT, "no-vault", "nope")
    assert vault.value.details == {"vault_id": "no-vault"}
    assert _snapshot(stack) == before


# --- expiry ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("expires_at", [T0, T0 - 1, 0], ids=["now", "just-past", "epoch"])
def test_an_expiry_not_in_the_future_is_refused(stack: MemoryStack, expires_at: int) -> None:
    stack.service.create_vault(TENANT, VAULT)
    before = _snapshot(stack)
    with pytest.raises(InvalidRequestError) as caught:
        _seal(stack.service, "note", SMALL, expires_at=expires_at)
    assert caught.value.details == {"field": "expires_at"}
    assert _snapshot(stack) == before


def test_an_item_past_its_expiry_is_refused_then_shredded_by_expire_due(
    stack: MemoryStack, service: VaultService, requester: HybridPrivateKey
) -> None:
    _seal(service, "soon", SMALL, expires_at=T0 + 60)
    large = _seal(service, "soon-large", LARGE, expires_at=T0 + 60)
    _seal(service, "later", SMALL, expires_at=T0 + 3600)
    _seal(service, "forever", SMALL)
    assert large.blob_key is not None
    assert service.expire_due(TENANT, VAULT) == []
    assert _open(stack, "soon", requester) == SMALL

    stack.clock.advance(60)

    for item_id in ("soon", "soon-large"):
        with pytest.raises(ItemExpiredError):
            _issue(stack, item_id, requester)
        with pytest.raises(ItemExpiredError):
            service.load_envelope(TENANT, VAULT, item_id)
    assert stack.items.get(TENANT, VAULT, "soon").envelope is not None  # refused, not yet destroyed

    assert service.expire_due(TENANT, VAULT) == ["soon", "soon-large"]

    for item_id in ("soon", "soon-large"):
        record = stack.items.get(TENANT, VAULT, item_id)
        assert record.envelope is None
        assert record.shredded_at == T0 + 60
    assert large.blob_key not in stack.blobs
    assert _open(stack, "later", requester) == SMALL
    assert _open(stack, "forever", requester) == SMALL
    assert service.expire_due(TENANT, VAULT) == []
    # Once swept, an expired item is a shredded tombstone (no expiry, so TTL keeps it and its version).
    with pytest.raises(ItemShreddedError) as refused:
        _open(stack, "soon", requester)
    assert refused.value.code == "item_shredded"
    assert stack.items.get(TENANT, VAULT, "soon").expires_at is None


# --- custodian recovery ----------------------------------------------------------------------------------
CUSTODIANS = 5
THRESHOLD = 3


@pytest.fixture(scope="module")
def custodian_keys() -> list[HybridPrivateKey]:
    return [HybridPrivateKey.generate() for _ in range(CUSTODIANS)]


def _custodians(keys: list[HybridPrivateKey]) -> list[tuple[str, Any]]:
    return [(f"custodian-{i}", key.public_key()) for i, key in enumerate(keys)]


def _open_shares(service: VaultService, keys: list[HybridPrivateKey], tenant_id: str = TENANT) -> list[Share]:
    vault = service._vaults.get(tenant_id, VAULT)
    assert vault.recovery is not None
    return [
        open_share(
            SealedShare(c.custodian_id, c.public_key_fingerprint, c.sealed_share),
            vault=VaultRef(tenant_id, VAULT),
            custodian_private_key=key,
        )
        for c, key in zip(vault.recovery.custodians, keys, strict=True)
    ]


def test_any_three_of_five_custodians_recover_every_key_version(
    stack: MemoryStack, custodian_keys: list[HybridPrivateKey]
) -> None:
    service = stack.service
    created = service.create_vault(
        TENANT, VAULT, custodians=_custodians(custodian_keys), recovery_threshold=THRESHOLD
    )
    policy = created.vault.recovery
    assert policy is not None
    assert policy.threshold == THRESHOLD
    assert [c.custodian_id for c in policy.custodians] == [f"custodian-{i}" for i in range(CUSTODIANS)]
    assert [c.public_key_fingerprint for c in policy.custodians] == [
        k.public_key().fingerprint() for k in custodian_keys
    ]
    assert created.key.escrowed_private_key is not None
    record = _seal(service, "note", SMALL)
    rotated = service.rotate_key(TENANT, VAULT)
    assert rotated.escrowed_private_key is not None
    shares = _open_shares(service, custodian_keys)

    public_keys = {1: created.key.public_key, 2: rotated.public_key}
    for chosen in itertools.combinations(shares, THRESHOLD):
        for version, public_key in public_keys.items():
            recovered = service.recover_key(TENANT, VAULT, version, list(chosen))
            assert recovered.public_key().to_bytes() == public_key
    recovered_v1 = service.recover_key(TENANT, VAULT, 1, shares[2:])
    assert recovered_v1.private_bytes() == _vault_private_key(stack, 1).private_bytes()
    # The recovered key opens the item without the root of trust.
    assert (
        env.open_envelope(
            Envelope.parse(record.envelope or b""),
            scope=record.scope,
            vault_key=VaultKey(1, recovered_v1),
            keyring=service.service_keys.keyring,
        )
        == SMALL
    )


def test_two_shares_are_not_enough(service: VaultService, custodian_keys: list[HybridPrivateKey]) -> None:
    service.create_vault(
        TENANT, "recoverable", custodians=_custodians(custodian_keys), recovery_threshold=THRESHOLD
    )
    vault = service._vaults.get(TENANT, "recoverable")
    assert vault.recovery is not None
    shares = [
        open_share(
            SealedShare(c.custodian_id, c.public_key_fingerprint, c.sealed_share),
            vault=VaultRef(TENANT, "recoverable"),
            custodian_private_key=key,
        )
        for c, key in zip(vault.recovery.custodians, custodian_keys, strict=True)
    ]
    with pytest.raises(InvalidRequestError):
        service.recover_key(TENANT, "recoverable", 1, shares[:2])


def test_a_share_opens_only_with_its_custodians_key_and_vault(
    stack: MemoryStack, custodian_keys: list[HybridPrivateKey]
) -> None:
    stack.service.create_vault(
        TENANT, VAULT, custodians=_custodians(custodian_keys), recovery_threshold=THRESHOLD
    )
    vault = stack.vaults.get(TENANT, VAULT)
    assert vault.recovery is not None
    first = vault.recovery.custodians[0]
    sealed = SealedShare(first.custodian_id, first.public_key_fingerprint, first.sealed_share)
    with pytest.raises(InvalidEnvelopeError):
        open_share(sealed, vault=VaultRef(TENANT, VAULT), custodian_private_key=custodian_keys[1])
    with pytest.raises(InvalidEnvelopeError):
        open_share(sealed, vault=VaultRef(OTHER_TENANT, VAULT), custodian_private_key=custodian_keys[0])
    with pytest.raises(InvalidEnvelopeError):
        open_share(
            replace(sealed, custodian_id="custodian-1"),
            vault=VaultRef(TENANT, VAULT),
            custodian_private_key=custodian_keys[0],
        )
    share = open_share(sealed, vault=VaultRef(TENANT, VAULT), custodian_private_key=custodian_keys[0])
    assert share.index == 1


def test_recovery_needs_custodians_and_a_threshold_together(
    stack: MemoryStack, custodian_keys: list[HybridPrivateKey]
) -> None:
    custodians = _custodians(custodian_keys)
    before = _snapshot(stack)
    cases: list[dict[str, Any]] = [
        {"recovery_threshold": 2},
        {"custodians": custodians},
        {"custodians": custodians, "recovery_threshold": 1},
        {"custodians": custodians, "recovery_threshold": CUSTODIANS + 1},
        {"custodians": [custodians[0], custodians[0]], "recovery_threshold": 2},
        {"custodians": [("bad#id", custodian_keys[0].public_key()), custodians[1]], "recovery_threshold": 2},
    ]
    for kwargs in cases:
        with pytest.raises(InvalidRequestError):
            stack.service.create_vault(TENANT, VAULT, **kwargs)
    assert _snapshot(stack) == before


def test_recovery_without_escrow_is_a_key_version_error(
    stack: MemoryStack, service: VaultService, custodian_keys: list[HybridPrivateKey]
) -> None:
    with pytest.raises(KeyVersionError):  # the vault has no custodians
        service.recover_key(TENANT, VAULT, 1, [])
    service.create_vault(
        TENANT, "recoverable", custodians=_custodians(custodian_keys), recovery_threshold=THRESHOLD
    )
    service.rotate_key(TENANT, "recoverable")
    service.retire_key(TENANT, "recoverable", 1)
    assert stack.vaults.get_key(TENANT, "recoverable", 1).escrowed_private_key is None
    with pytest.raises(KeyVersionError):  # retired: the escrow is destroyed with the wrapped key
        service.recover_key(TENANT, "recoverable", 1, [])


# --- tenant isolation ------------------------------------------------------------------------------------
def test_another_tenant_cannot_address_a_tenants_vault_or_items(
    stack: MemoryStack, service: VaultService, requester: HybridPrivateKey
) -> None:
    _seal(service, "secret", SMALL)
    before = _snapshot(stack)
    calls: list[Callable[[], object]] = [
        lambda: _issue(stack, "secret", requester, tenant_id=OTHER_TENANT),
        lambda: service.load_envelope(OTHER_TENANT, VAULT, "secret"),
        lambda: service.seal_item(OTHER_TENANT, VAULT, "secret", b"overwrite?", memory_scope=USER_SCOPE),
        lambda: service.rotate_key(OTHER_TENANT, VAULT),
        lambda: service.rewrap_vault(OTHER_TENANT, VAULT),
        lambda: service.retire_key(OTHER_TENANT, VAULT, 1),
        lambda: service.shred_item(OTHER_TENANT, VAULT, "secret"),
        lambda: service.recover_key(OTHER_TENANT, VAULT, 1, []),
    ]
    for call in calls:
        with pytest.raises(NotFoundError):
            call()
    assert service.expire_due(OTHER_TENANT, VAULT) == []
    assert _snapshot(stack) == before


def test_the_same_vault_id_under_another_tenant_is_a_separate_vault(
    stack: MemoryStack, service: VaultService, requester: HybridPrivateKey
) -> None:
    mine = _seal(service, "note", SMALL)
    theirs = service.create_vault(OTHER_TENANT, VAULT)

    assert theirs.key.public_key != stack.vaults.get_key(TENANT, VAULT, 1).public_key
    assert [r.item_id for r in stack.items.scan_vault(OTHER_TENANT, VAULT)] == []
    other = service.seal_item(OTHER_TENANT, VAULT, "note", b"tenant b's note", memory_scope=USER_SCOPE)
    assert other.version == 1
    assert stack.items.get(TENANT, VAULT, "note") == mine
    assert _open(stack, "note", requester) == SMALL
    opened = grant_and_open(
        service,
        stack.ledger,
        tenant_id=OTHER_TENANT,
        vault_id=VAULT,
        item_id="note",
        requester=requester,
        now=T0,
    )
    assert opened == b"tenant b's note"
    service.rotate_key(OTHER_TENANT, VAULT)
    assert stack.vaults.get(TENANT, VAULT).current_key_version == 1
    service.shred_item(OTHER_TENANT, VAULT, "note")
    assert stack.items.get(TENANT, VAULT, "note").envelope is not None


def test_an_envelope_does_not_open_under_another_tenants_scope(
    stack: MemoryStack, service: VaultService, requester: HybridPrivateKey
) -> None:
    mine = _seal(service, "note", SMALL)
    service.create_vault(OTHER_TENANT, VAULT)
    sealed = Envelope.parse(mine.envelope or b"")
    keyring = service.service_keys.keyring
    their_scope = ItemScope(OTHER_TENANT, VAULT, "note", 1, mine.content_type)

    for vault_key in (
        VaultKey(1, _vault_private_key(stack, 1, OTHER_TENANT)),
        VaultKey(1, _vault_private_key(stack, 1)),
    ):
        with pytest.raises(InvalidEnvelopeError):
            env.open_envelope(sealed, scope=their_scope, vault_key=vault_key, keyring=keyring)
    assert (
        env.open_envelope(
            sealed, scope=mine.scope, vault_key=VaultKey(1, _vault_private_key(stack, 1)), keyring=keyring
        )
        == SMALL
    )

    # Planting tenant A's envelope in tenant B's item store does not make it B's item.
    stack.items.put(replace(mine, tenant_id=OTHER_TENANT))
    with pytest.raises(InvalidEnvelopeError):
        grant_and_open(
            service,
            stack.ledger,
            tenant_id=OTHER_TENANT,
            vault_id=VAULT,
            item_id="note",
            requester=requester,
            now=T0,
        )


# --- bad input -------------------------------------------------------------------------------------------
BAD_IDS = ["", "x" * 129, "a#b", "a/b", "-leading", ".hidden", "sp ace", "new\nline", "ünï"]


@pytest.mark.parametrize("bad", BAD_IDS)
def test_invalid_ids_are_refused_and_nothing_is_written(stack: MemoryStack, bad: str) -> None:
    stack.service.create_vault(TENANT, VAULT)
    before = _snapshot(stack)
    with pytest.raises(InvalidRequestError):
        stack.service.create_vault(bad, "vault-2")
    with pytest.raises(InvalidRequestError):
        stack.service.create_vault(TENANT, bad)
    with pytest.raises(InvalidRequestError):
        _seal(stack.service, bad, SMALL)
    with pytest.raises(InvalidRequestError):
        _seal(stack.service, "note", SMALL, tags={bad: "value"})
    with pytest.raises(InvalidRequestError):
        MemoryScope(MemoryKind.AGENT, bad)
    assert _snapshot(stack) == before


def test_the_longest_valid_id_is_accepted(stack: MemoryStack, requester: HybridPrivateKey) -> None:
    longest = "a" * 128
    stack.service.create_vault(longest, longest)
    stack.service.seal_item(longest, longest, longest, SMALL, memory_scope=USER_SCOPE)
    assert (
        grant_and_open(
            stack.service,
            stack.ledger,
            tenant_id=longest,
            vault_id=longest,
            item_id=longest,
            requester=requester,
            now=T0,
        )
        == SMALL
    )


@pytest.mark.parametrize("bad", ["a#b", ""])
def test_seal_with_an_invalid_vault_id_is_an_invalid_request(stack: MemoryStack, bad: str) -> None:
    with pytest.raises(InvalidRequestError):
        stack.service.seal_item(TENANT, bad, "note", SMALL, memory_scope=USER_SCOPE)


@pytest.mark.parametrize(
    "content_type",
    ["", " text/plain", "x" * 128, "text/plain\n", "text/ünï", "\x00"],
    ids=["empty", "leading-space", "too-long", "newline", "non-ascii", "nul"],
)
def test_bad_content_types_are_refused_and_nothing_is_written(
    stack: MemoryStack, service: VaultService, content_type: str
) -> None:
    before = _snapshot(stack)
    with pytest.raises(InvalidRequestError):
        _seal(service, "note", SMALL, content_type=content_type)
    assert _snapshot(stack) == before


def test_bad_tags_are_refused_and_nothing_is_written(stack: MemoryStack, service: VaultService) -> None:
    before = _snapshot(stack)
    bad_tags: list[dict[str, Any]] = [
        {f"k{i}": "v" for i in range(MAX_TAGS + 1)},
        {"k": "v" * 257},
        {"k": "tab\tinside"},
        {"k": 7},
    ]
    for tags in bad_tags:
        with pytest.raises(InvalidRequestError):
            _seal(service, "note", SMALL, tags=tags)
    assert _snapshot(stack) == before
    most = {f"k{i}": "v" * 256 for i in range(MAX_TAGS)}
    assert _seal(service, "note", SMALL, tags=most).tags == most


# --- service keys --------------------------------------------------------------------------------------
def test_service_keys_are_created_once_and_then_loaded() -> None:
    store, root = InMemorySigningKeyStore(), LocalRootOfTrust.generate()
    first = ServiceKeys.load_or_create(
        store, root, SignatureAlgorithm.ED25519, clock=lambda: T0, accepted=ALL
    )
    second = ServiceKeys.load_or_create(
        store, root, SignatureAlgorithm.ED25519, clock=lambda: T0 + 1, accepted=ALL
    )

    assert second.signer.key_id == first.signer.key_id
    assert second.signer.public_key == first.signer.public_key
    assert len(store.list()) == 1
    assert store.list()[0].created_at == T0
    assert store.list()[0].root_key_id == root.key_id
    assert first.signer.secret_bytes() not in store.list()[0].wrapped_secret
    signature = second.signer.sign(b"message")
    verifier = first.keyring.get(first.signer.key_id, SignatureAlgorithm.ED25519)
    assert verifier is not None
    verifier.verify(b"message", signature)


def test_service_keys_under_another_root_of_trust_are_refused() -> None:
    store = InMemorySigningKeyStore()
    ServiceKeys.load_or_create(
        store, LocalRootOfTrust.generate(), SignatureAlgorithm.ED25519, clock=lambda: T0, accepted=ALL
    )
    with pytest.raises(RootOfTrustError):
        ServiceKeys.load_or_create(
            store, LocalRootOfTrust.generate(), SignatureAlgorithm.ED25519, clock=lambda: T0, accepted=ALL
        )
    assert len(store.list()) == 1


def test_service_keys_use_the_winner_when_a_cold_start_races() -> None:
    root = LocalRootOfTrust.generate()
    store = InMemorySigningKeyStore()
    winner = ServiceKeys.load_or_create(
        store, root, SignatureAlgorithm.ED25519, clock=lambda: T0, accepted=ALL
    )

    class LateStore(InMemorySigningKeyStore):
        """Lists nothing the first time, as if another cold start added its key right after."""

        def __init__(self) -> None:
            super().__init__()
            self._keys = dict(store._keys)
            self._calls = 0

        def list(self) -> list[StoredSigningKey]:
            self._calls += 1
            return [] if self._calls == 1 else super().list()

    late = LateStore()
    loser = ServiceKeys.load_or_create(late, root, SignatureAlgorithm.ED25519, clock=lambda: T0, accepted=ALL)
    assert loser.signer.key_id == winner.signer.key_id
    assert late.list() == store.list()


def test_a_new_algorithm_adds_a_key_and_old_signatures_still_verify(
    stack: MemoryStack, service: VaultService, requester: HybridPrivateKey
) -> None:
    record = _seal(service, "note", SMALL)
    upgraded = ServiceKeys.load_or_create(
        stack.signing_keys, stack.root, SignatureAlgorithm.FALCON_512, clock=stack.clock
    )
    assert len(stack.signing_keys.list()) == 2
    assert len(upgraded.keyring) == 2
    assert upgraded.signer.algorithm is SignatureAlgorithm.FALCON_512
    sealed = Envelope.parse(record.envelope or b"")
    env.verify(sealed, record.scope, upgraded.keyring)  # signed by the ML-DSA key, still trusted
    new_service = VaultService(
        vaults=stack.vaults,
        items=stack.items,
        blobs=stack.blobs,
        root=stack.root,
        service_keys=upgraded,
        decisions=stack.ledger,
        clock=stack.clock,
    )
    assert (
        grant_and_open(
            new_service,
            stack.ledger,
            tenant_id=TENANT,
            vault_id=VAULT,
            item_id="note",
            requester=requester,
            now=T0,
        )
        == SMALL
    )


# --- one property, sparingly ---------------------------------------------------------------------------
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(plaintext=st.binary(max_size=3000), content_type=st.sampled_from(["text/plain", "application/json"]))
def test_any_plaintext_round_trips_inline_or_detached(
    stack: MemoryStack,
    service: VaultService,
    requester: HybridPrivateKey,
    plaintext: bytes,
    content_type: str,
) -> None:
    record = _seal(service, "prop", plaintext, content_type=content_type)
    expected = BodyLocation.S3 if len(plaintext) + 16 > 1024 else BodyLocation.INLINE
    assert record.body_location is expected
    opened = grant_and_open(
        service,
        stack.ledger,
        tenant_id=TENANT,
        vault_id=VAULT,
        item_id="prop",
        version=record.version,
        requester=requester,
        now=T0,
    )
    assert opened == plaintext


def test_grant_ttl_comes_from_the_service() -> None:
    stack = memory_stack(clock=ManualClock(T0 + 5), grant_ttl_seconds=42)
    stack.service.create_vault(TENANT, VAULT)
    _seal(stack.service, "note", SMALL)
    issued = _issue(stack, "note", HybridPrivateKey.generate())
    assert issued.expires_at == T0 + 5 + 42


# --- a grant needs the approval logged for its request --------------------------------------------------
def _approval(requester: HybridPrivateKey | None, **changes: Any) -> DecisionRecord:
    """The record the access flow logs before its Grant task (this vault, item and requester key), as a
    record alone: no attestation chain, so nothing is granted on it whatever it says."""
    fields: dict[str, Any] = {
        "request_id": "access-1",
        "tenant_id": TENANT,
        "vault_id": VAULT,
        "item_id": "note",
        "time": T0,
        "requester_key_sha256": (
            None if requester is None else requester_key_sha256(requester.public_key().to_bytes())
        ),
    }
    fields.update(changes)
    return approval_record(**fields)


@dataclass
class Decided:
    """A service whose grants read the in-memory ledger, and a count of the grants it issued."""

    service: VaultService
    ledger: InMemoryDecisionLedger
    issued: list[str]

    def approve(self, requester: HybridPrivateKey, **changes: Any) -> DecisionRecord:
        """An attested approval of access-1 (version 1 of "note", now), as the flow logs it."""
        fields: dict[str, Any] = {
            "tenant_id": TENANT,
            "vault_id": VAULT,
            "item_id": "note",
            "request_id": "access-1",
            "requester_key_sha256": requester_key_sha256(requester.public_key().to_bytes()),
            "item_version": 1,
            "time": T0,
            **changes,
        }
        return self.ledger.approve(**fields)


@pytest.fixture
def decided(stack: MemoryStack, monkeypatch: pytest.MonkeyPatch) -> Decided:
    stack.service.create_vault(TENANT, VAULT)
    _seal(stack.service, "note", SMALL)
    _seal(stack.service, "other-note", SMALL)
    issued: list[str] = []
    real_issue = grants.issue

    def counted(**kwargs: Any) -> Any:
        issued.append(kwargs["request_id"])
        return real_issue(**kwargs)

    monkeypatch.setattr(grants, "issue", counted)
    return Decided(stack.service, stack.ledger, issued)


def _grant_approved(
    service: VaultService, requester: HybridPrivateKey, *, request_id: str = "access-1", item_id: str = "note"
) -> IssuedGrant:
    return service.grant_approved(
        request_id=request_id,
        tenant_id=TENANT,
        vault_id=VAULT,
        item_id=item_id,
        requester_public_key=requester.public_key(),
    )


def test_a_logged_approval_of_this_request_gets_its_grant(
    stack: MemoryStack, decided: Decided, requester: HybridPrivateKey
) -> None:
    decided.approve(requester)
    issued = _grant_approved(decided.service, requester)
    assert decided.issued == ["access-1"]
    _, envelope = decided.service.load_envelope(TENANT, VAULT, "note", issued.record.version)
    opened = open_grant(
        issued.grant,
        envelope,
        requester_private_key=requester,
        service_keys=decided.service.service_keys.keyring,
        now=stack.clock(),
    )
    assert opened == SMALL


def test_an_approval_opens_its_item_only_while_it_is_fresh(
    stack: MemoryStack, decided: Decided, requester: HybridPrivateKey
) -> None:
    decided.approve(requester, time=stack.clock())
    stack.clock.advance(900)  # the default approval_max_age_seconds: still granted
    _grant_approved(decided.service, requester)
    stack.clock.advance(1)
    with pytest.raises(DecisionRequiredError, match="too old"):
        _grant_approved(decided.service, requester)
    assert decided.issued == ["access-1"]


def test_an_approval_dated_in_the_future_grants_nothing(
    stack: MemoryStack, decided: Decided, requester: HybridPrivateKey
) -> None:
    decided.approve(requester, time=stack.clock() + 301)
    with pytest.raises(DecisionRequiredError, match="future"):
        _grant_approved(decided.service, requester)
    assert decided.issued == []


STRANGER = HybridPrivateKey.generate()
REFUSED_DECISIONS: dict[str, tuple[Callable[[HybridPrivateKey], DecisionRecord | None], str]] = {
    "nothing logged": (lambda _: None, "no access decision is logged for this request"),
    "another request's approval": (
        lambda r: _approval(r, request_id="access-2"),
        "no access decision is logged for this request",
    ),
    "another tenant's approval of the same request id": (
        lambda r: _approval(r, tenant_id=OTHER_TENANT),
        "no access decision is logged for this request",
    ),
    "a denial": (
        lambda r: _approval(r, decision="deny"),
        "the access decision logged for this request is not an approval",
    ),
    "an approval for another vault": (
        lambda r: _approval(r, vault_id="vault-2"),
        "the access decision logged for this request is for another vault",
    ),
    "an approval of another item": (
        lambda r: _approval(r, item_id="other-note"),
        "the access decision logged for this request is for another item",
    ),
    "an approval for another requester key": (
        lambda _: _approval(STRANGER),
        "the access decision logged for this request is for another requester key",
    ),
    "an approval naming no requester key (logged before the key was)": (
        lambda _: _approval(None),
        "the access decision logged for this request names no requester key",
    ),
}


@pytest.mark.parametrize("case", REFUSED_DECISIONS.values(), ids=list(REFUSED_DECISIONS))
def test_without_the_approval_of_this_request_nothing_is_granted(
    decided: Decided,
    requester: HybridPrivateKey,
    case: tuple[Callable[[HybridPrivateKey], DecisionRecord | None], str],
) -> None:
    make, message = case
    logged = make(requester)
    if logged is not None:
        decided.ledger.log(logged)
    with pytest.raises(DecisionRequiredError) as caught:
        _grant_approved(decided.service, requester)
    assert caught.value.to_dict() == {
        "code": "decision_required",
        "type": "DecisionRequiredError",
        "message": message,
        "details": {"request_id": "access-1"},
        "retryable": False,
    }
    assert decided.issued == []


ATTESTED_BUT_NOT_THIS_REQUEST: dict[str, tuple[dict[str, Any], str]] = {
    "a denial": ({"decision": "deny"}, "is not an approval"),
    "an approval for another vault": ({"vault_id": "vault-2"}, "is for another vault"),
    "an approval of another item": ({"item_id": "other-note"}, "is for another item"),
    "an approval for another requester key": (
        {"requester_key_sha256": requester_key_sha256(STRANGER.public_key().to_bytes())},
        "is for another requester key",
    ),
}


@pytest.mark.parametrize(
    "case", ATTESTED_BUT_NOT_THIS_REQUEST.values(), ids=list(ATTESTED_BUT_NOT_THIS_REQUEST)
)
def test_an_honest_chain_does_not_make_another_decision_this_requests_approval(
    decided: Decided, requester: HybridPrivateKey, case: tuple[dict[str, Any], str]
) -> None:
    """The record is checked against the request before its chain: an honestly attested approval of
    another vault, item or key grants nothing for this one, nor does a denial whose chain approves."""
    changes, message = case
    decided.approve(requester, **changes)
    with pytest.raises(DecisionRequiredError, match=message):
        _grant_approved(decided.service, requester)
    assert decided.issued == []


def test_the_decision_is_checked_before_the_item_is_looked_up(
    decided: Decided, requester: HybridPrivateKey
) -> None:
    """Without an approval, a missing, shredded or expired item is refused alike: no oracle on items."""
    decided.service.shred_item(TENANT, VAULT, "other-note")
    for item_id in ("missing-note", "other-note"):
        with pytest.raises(DecisionRequiredError, match="no access decision"):
            _grant_approved(decided.service, requester, item_id=item_id)
    # With the approval, the item's own state decides.
    decided.approve(requester, request_id="access-2", item_id="missing-note")
    with pytest.raises(NotFoundError):
        _grant_approved(decided.service, requester, request_id="access-2", item_id="missing-note")
    decided.approve(requester, request_id="access-3", item_id="other-note")
    with pytest.raises(ItemShreddedError):
        _grant_approved(decided.service, requester, request_id="access-3", item_id="other-note")
    assert decided.issued == []


def test_a_log_that_cannot_be_read_raises_and_grants_nothing(
    decided: Decided, requester: HybridPrivateKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    decided.approve(requester)

    def unavailable(tenant_id: str, request_id: str) -> DecisionRecord | None:
        raise StorageUnavailableError("DynamoDB is unavailable or throttling")

    with monkeypatch.context() as patch:
        patch.setattr(decided.ledger, "logged_decision", unavailable)
        with pytest.raises(StorageUnavailableError) as caught:
            _grant_approved(decided.service, requester)
    assert caught.value.retryable
    assert decided.issued == []
    _grant_approved(decided.service, requester)  # the retry, once the log answers
    assert decided.issued == ["access-1"]


def test_a_service_without_a_decision_ledger_grants_nothing(
    stack: MemoryStack, service: VaultService, requester: HybridPrivateKey
) -> None:
    _seal(service, "note", SMALL)
    stack.ledger.approve(
        tenant_id=TENANT,
        vault_id=VAULT,
        item_id="note",
        request_id="access-1",
        requester_key_sha256=requester_key_sha256(requester.public_key().to_bytes()),
        item_version=1,
        time=T0,
    )
    unwired = VaultService(
        vaults=stack.vaults,
        items=stack.items,
        blobs=stack.blobs,
        root=stack.root,
        service_keys=stack.service.service_keys,
        clock=stack.clock,
    )
    with pytest.raises(DecisionRequiredError, match="no access decision log is configured"):
        _grant_approved(unwired, requester)


@pytest.mark.parametrize(
    "changes", [{"request_id": "req#1"}, {"item_id": ""}, {"vault_id": "v/1"}, {"tenant_id": "-t"}], ids=repr
)
def test_bad_ids_are_refused_before_the_log_is_read(
    decided: Decided, requester: HybridPrivateKey, changes: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    asked: list[tuple[str, str]] = []
    monkeypatch.setattr(decided.ledger, "logged_decision", lambda *key: asked.append(key))
    arguments: dict[str, Any] = {
        "request_id": "access-1",
        "tenant_id": TENANT,
        "vault_id": VAULT,
        "item_id": "note",
        **changes,
    }
    with pytest.raises(InvalidRequestError):
        decided.service.grant_approved(requester_public_key=requester.public_key(), **arguments)
    assert asked == []
    assert decided.issued == []


def test_the_grant_action_grants_only_for_the_logged_approval(
    decided: Decided, requester: HybridPrivateKey
) -> None:
    request = GrantRequest(
        action="grant",
        request_id="access-1",
        tenant_id=TENANT,
        vault_id=VAULT,
        item_id="note",
        requester_public_key=requester.public_key().to_bytes(),
    )
    with pytest.raises(DecisionRequiredError):
        run_encrypt_action(decided.service, request)
    decided.approve(requester)
    result = run_encrypt_action(decided.service, request)
    assert (result["item_id"], result["version"]) == ("note", 1)
    assert decided.issued == ["access-1"]


def test_the_ledger_keeps_the_first_decision_of_a_request(requester: HybridPrivateKey) -> None:
    ledger = InMemoryDecisionLedger()
    first = ledger.log(_approval(requester))
    assert ledger.log(_approval(requester, decision="deny")) == first
    assert ledger.logged_decision(TENANT, "access-1") == first
    assert ledger.logged_decision(OTHER_TENANT, "access-1") is None
