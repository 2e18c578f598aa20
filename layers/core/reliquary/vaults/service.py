"""The vault domain: create vaults, seal items, rotate and rewrap keys, issue grants, crypto-shred.

Pure: it talks to storage and the root of trust only through the ports it is given. Plaintext enters
only in ``seal_item`` and leaves only inside a grant, sealed to the requester's own key; a caller gets a
grant through ``grant_approved``, only for an approval logged in the tenant's transparency log.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from reliquary.crypto import envelope as env
from reliquary.crypto import grants, recovery
from reliquary.crypto.codec import Writer
from reliquary.crypto.envelope import Envelope, VaultKey
from reliquary.crypto.kem import HybridPrivateKey, HybridPublicKey
from reliquary.crypto.root import RootOfTrust
from reliquary.crypto.scope import ItemScope, VaultRef, validate_content_type, validate_id
from reliquary.crypto.shamir import Share
from reliquary.errors import (
    ConflictError,
    DecisionRequiredError,
    InvalidRequestError,
    ItemExpiredError,
    ItemShreddedError,
    KeyVersionError,
    NotFoundError,
    PayloadTooLargeError,
    RootOfTrustError,
    TransientError,
)
from reliquary.vaults.decisions import DecisionLedger, require_approval, require_attested
from reliquary.vaults.labels import DEFAULT_SENSITIVITY, Sensitivity, parse_sensitivity
from reliquary.vaults.models import (
    MAX_FORGET_LIMIT,
    BodyLocation,
    Custodian,
    ItemRecord,
    KeyStatus,
    MemoryScope,
    RecoveryPolicy,
    Vault,
    VaultKeyRecord,
    validate_tags,
)
from reliquary.vaults.permanent import PermanentBackend, PermanentRef, PermanentStores
from reliquary.vaults.ports import BlobStore, ItemRepository, VaultRepository
from reliquary.vaults.service_keys import ServiceKeys

Clock = Callable[[], int]
_VERSION_RACE_RETRIES = 5
# A sealed item is released through synchronous Lambda answers (encrypt to the API function, the API
# function to API Gateway), each at most 6 MB (6,291,456 bytes), with the envelope in base64 inside JSON.
# 64 KiB is left for the JSON, the headers and the escaping around it: an envelope of at most 4,669,440
# bytes, an item of about 4.45 MiB (ML-DSA-65 adds 4,590 bytes). The default seal limit, 4 MiB, is below.
LAMBDA_ANSWER_BYTES = 6 * 1024 * 1024
MAX_RELEASED_ENVELOPE_BYTES = (LAMBDA_ANSWER_BYTES - 64 * 1024) // 4 * 3
_KEY_CACHE_ENTRIES = 256
# What a body on permanent storage says of itself, in public and for good (Arweave keeps tags): its
# format only, never a tenant, vault or item name.
PERMANENT_BODY_TAGS = (
    ("Content-Type", "application/octet-stream"),
    ("App-Name", "RELIQUARY"),
    ("Reliquary-Format", "reliquary-envelope-body/v1"),
)


def system_clock() -> int:
    return int(time.time())


@dataclass(frozen=True, slots=True)
class CreatedVault:
    vault: Vault
    key: VaultKeyRecord


@dataclass(frozen=True, slots=True)
class RewrapReport:
    key_version: int
    rewrapped: int
    already_current: int
    skipped_shredded: int


@dataclass(frozen=True, slots=True)
class IssuedGrant:
    grant: bytes
    record: ItemRecord
    expires_at: int


@dataclass(frozen=True, slots=True)
class ShredReceipt:
    tenant_id: str
    vault_id: str
    item_id: str
    versions: tuple[int, ...]
    shredded_at: int
    signer_key_id: bytes
    signature_algorithm: str
    signature: bytes

    def signed_message(self) -> bytes:
        return shred_message(self.tenant_id, self.vault_id, self.item_id, self.versions, self.shredded_at)


def blob_prefix(tenant_id: str, vault_id: str, item_id: str, version: int) -> str:
    """Every body ever written for one item version lives under this prefix (ids contain no '/')."""
    return f"tenants/{tenant_id}/vaults/{vault_id}/items/{item_id}/v{version:010d}-"


def blob_key_for(scope: ItemScope, nonce: bytes) -> str:
    """Where a large item's body lives in S3: under its tenant, unique to this one write."""
    return (
        blob_prefix(scope.tenant_id, scope.vault_id, scope.item_id, scope.item_version) + f"{nonce.hex()}.bin"
    )


# Beside each permanent body, an S3 object under the version's prefix names it (its PermanentRef): the
# items table's stream carries keys only, so when TTL deletes a row this is how the body is still found
# and unpinned. Unique to each write, like a large body's key.
PERMANENT_REF_SUFFIX = ".ref.json"


def unreleased_prefix(tenant_id: str, vault_id: str) -> str:
    """Where a vault marks the shredded versions whose bodies a node that was down kept pinned: the next
    ``forget`` of the vault releases them (``shred`` of the item does too)."""
    return f"tenants/{tenant_id}/vaults/{vault_id}/unreleased/"


def permanent_ref_key(scope: ItemScope, nonce: bytes) -> str:
    return blob_prefix(scope.tenant_id, scope.vault_id, scope.item_id, scope.item_version) + (
        f"{nonce.hex()}{PERMANENT_REF_SUFFIX}"
    )


@dataclass(frozen=True, slots=True)
class ForgetReport:
    """One bounded pass of ``forget_scope``: a receipt per item it shredded, how many items of the scope
    were shredded before it, and whether the scope holds no live item now (else call again)."""

    receipts: tuple[ShredReceipt, ...]
    already_shredded: int
    complete: bool


@dataclass(frozen=True, slots=True)
class RemovedVersion:
    """An item version whose row DynamoDB's TTL deleted (as its stream reports it)."""

    tenant_id: str
    vault_id: str
    item_id: str
    version: int


@dataclass(frozen=True, slots=True)
class PurgeReport:
    purged: int  # versions whose bodies were deleted (or had none)
    still_present: int  # reported removed, but the row is still there: nothing deleted


def receipt_answer_bytes(receipt: ShredReceipt) -> int:
    """About what a receipt weighs in a JSON answer (the signature in base64, the versions, the names);
    a little more, never less."""
    return 4 * len(receipt.signature) // 3 + 12 * len(receipt.versions) + len(receipt.item_id) + 256


def shred_message(tenant_id: str, vault_id: str, item_id: str, versions: Sequence[int], at: int) -> bytes:
    writer = Writer().raw(b"RELIQUARY shred v1\x00").text(tenant_id).text(vault_id).text(item_id)
    writer.u32(len(versions))
    for version in versions:
        writer.u32(version)
    return writer.u64(at).getvalue()


class VaultService:
    def __init__(
        self,
        *,
        vaults: VaultRepository,
        items: ItemRepository,
        blobs: BlobStore,
        root: RootOfTrust,
        service_keys: ServiceKeys,
        decisions: DecisionLedger | None = None,
        permanent: PermanentStores | None = None,
        large_item_threshold: int = 256 * 1024,
        max_item_bytes: int = 4 * 1024 * 1024,
        grant_ttl_seconds: int = 300,
        approval_max_age_seconds: int = 900,
        vault_key_cache_seconds: float = 60.0,
        forget_budget_seconds: float = 20.0,
        forget_answer_bytes: int = 256 * 1024,
        clock: Clock = system_clock,
        monotonic: Callable[[], float] = time.monotonic,
        randbytes: Callable[[int], bytes] = os.urandom,
    ) -> None:
        self._vaults = vaults
        self._items = items
        self._blobs = blobs
        # IPFS and Arweave, for the vaults that opted in (none configured: no vault can).
        self._permanent = permanent or PermanentStores()
        self._root = root
        self._keys = service_keys
        # Where grant_approved reads the logged decisions; without one it refuses every grant.
        self._decisions = decisions
        self._large_item_threshold = large_item_threshold
        self._max_item_bytes = max_item_bytes
        self._grant_ttl = grant_ttl_seconds
        self._approval_max_age = approval_max_age_seconds
        # One forget call stops shredding after this long (and answers complete=False), so that it
        # answers within API Gateway's 29 s even when DynamoDB is slow; the next call carries on.
        self._forget_budget = forget_budget_seconds
        # ... and once its receipts weigh this much: the answer is stored whole in the idempotency table,
        # whose items hold at most 400 KB (an ML-DSA-65 receipt is about 4.7 KB of JSON).
        self._forget_answer_bytes = forget_answer_bytes
        self._clock = clock
        self._monotonic = monotonic
        self._randbytes = randbytes
        # Unwrapped vault private keys, kept briefly: each unwrap is a KMS call (~160 us even locally).
        self._key_cache_seconds = vault_key_cache_seconds
        self._key_cache: dict[tuple[str, str, int], tuple[float, VaultKey]] = {}

    @property
    def service_keys(self) -> ServiceKeys:
        return self._keys

    # --- vault keys -------------------------------------------------------------------------------
    def _new_key_record(
        self, ref: VaultRef, version: int, recovery_public_key: bytes | None
    ) -> VaultKeyRecord:
        private_key = HybridPrivateKey.generate()
        escrowed = None
        if recovery_public_key is not None:
            escrowed = recovery.escrow(
                ref, version, private_key, HybridPublicKey.from_bytes(recovery_public_key)
            )
        public_key = private_key.public_key().to_bytes()
        context = ref.key_context(version, public_key=public_key, recovery_public_key=recovery_public_key)
        return VaultKeyRecord(
            tenant_id=ref.tenant_id,
            vault_id=ref.vault_id,
            version=version,
            public_key=public_key,
            wrapped_private_key=self._root.wrap(private_key.private_bytes(), context=context),
            status=KeyStatus.ACTIVE,
            created_at=self._clock(),
            escrowed_private_key=escrowed,
            root_key_id=self._root.key_id,
        )

    def create_vault(
        self,
        tenant_id: str,
        vault_id: str,
        *,
        custodians: Sequence[tuple[str, HybridPublicKey]] = (),
        recovery_threshold: int | None = None,
        permanent_storage: PermanentBackend | None = None,
        acknowledge_permanence: bool = False,
    ) -> CreatedVault:
        """A new vault with key version 1; with custodians, also its recovery shares (k of n).

        With ``permanent_storage``, every item body of the vault goes to that backend (IPFS or Arweave),
        where it can never be deleted: shredding destroys the data key and unpins, the ciphertext stays.
        The caller says it knows with ``acknowledge_permanence=True``; the choice is the vault's for good."""
        ref = VaultRef(tenant_id, vault_id)
        if permanent_storage is not None:
            if acknowledge_permanence is not True:
                raise InvalidRequestError(
                    "bodies on permanent storage can never be deleted, only crypto-shredded: "
                    "set acknowledge_permanence to true to opt in",
                    field="acknowledge_permanence",
                )
            if permanent_storage not in self._permanent.backends:
                raise InvalidRequestError(
                    f"this deployment has no {permanent_storage.value} node configured",
                    field="permanent_storage",
                )
        elif acknowledge_permanence:
            raise InvalidRequestError(
                "acknowledge_permanence goes with a permanent_storage backend", field="permanent_storage"
            )
        policy = None
        if custodians:
            if recovery_threshold is None:
                raise InvalidRequestError("custodians need a recovery_threshold", field="recovery_threshold")
            recovery_public, sealed = recovery.create_recovery(
                ref, custodians, threshold=recovery_threshold, randbytes=self._randbytes
            )
            policy = RecoveryPolicy(
                threshold=recovery_threshold,
                recovery_public_key=recovery_public.to_bytes(),
                custodians=tuple(
                    Custodian(s.custodian_id, s.public_key_fingerprint, s.sealed) for s in sealed
                ),
            )
        elif recovery_threshold is not None:
            raise InvalidRequestError("a recovery_threshold needs custodians", field="custodians")
        key = self._new_key_record(ref, 1, policy.recovery_public_key if policy else None)
        vault = Vault(
            tenant_id,
            vault_id,
            current_key_version=1,
            created_at=self._clock(),
            recovery=policy,
            permanent_storage=permanent_storage,
        )
        self._vaults.create(vault, key)
        return CreatedVault(vault, key)

    def rotate_key(self, tenant_id: str, vault_id: str) -> VaultKeyRecord:
        """A new key version becomes current; earlier versions still open until rewrapped and retired."""
        VaultRef(tenant_id, vault_id)
        vault = self._vaults.get(tenant_id, vault_id)
        # Unwrapping the current key (never from the cache) proves the stored recovery key is the
        # vault's own before the new private key is escrowed to it.
        self._unwrap_vault_key(vault, vault.current_key_version)
        recovery_public = vault.recovery.recovery_public_key if vault.recovery else None
        key = self._new_key_record(vault.ref, vault.current_key_version + 1, recovery_public)
        self._vaults.add_key_version(vault, key)
        return key

    def _vault_key(self, tenant_id: str, vault_id: str, version: int, vault: Vault | None = None) -> VaultKey:
        """A version's private key, from the short-lived cache or unwrapped by the root of trust."""
        cache_key = (tenant_id, vault_id, version)
        cached = self._key_cache.get(cache_key)
        now = time.monotonic()
        if cached is not None and cached[0] > now:
            return cached[1]
        vault_key = self._unwrap_vault_key(vault or self._vaults.get(tenant_id, vault_id), version)
        if self._key_cache_seconds > 0:
            if len(self._key_cache) >= _KEY_CACHE_ENTRIES:
                self._key_cache.clear()
            self._key_cache[cache_key] = (now + self._key_cache_seconds, vault_key)
        return vault_key

    def _unwrap_vault_key(self, vault: Vault, version: int) -> VaultKey:
        record = self._vaults.get_key(vault.tenant_id, vault.vault_id, version)
        if record.wrapped_private_key is None:
            raise KeyVersionError("this key version is retired", key_version=version)
        context = vault.ref.key_context(
            version,
            public_key=record.public_key,
            recovery_public_key=vault.recovery.recovery_public_key if vault.recovery else None,
        )
        private_key = HybridPrivateKey.from_private_bytes(
            self._root.unwrap(record.wrapped_private_key, context=context)
        )
        if private_key.public_key().to_bytes() != record.public_key:
            raise RootOfTrustError("a vault key record does not match its private key", key_version=version)
        return VaultKey(version, private_key)

    def rewrap_vault(self, tenant_id: str, vault_id: str) -> RewrapReport:
        """Move every data key of the vault to the current key version; item bodies are not touched.

        An item shredded while the rewrap runs is counted as skipped, not treated as a failure."""
        VaultRef(tenant_id, vault_id)
        vault = self._vaults.get(tenant_id, vault_id)
        current = self._vault_key(tenant_id, vault_id, vault.current_key_version, vault)
        current_public = current.private_key.public_key()
        rewrapped = already = shredded = 0
        for record in self._items.scan_vault(tenant_id, vault_id):
            if record.envelope is None:
                shredded += 1
                continue
            if record.wrap_key_version >= current.version:  # a rotation since we started is not ours
                already += 1
                continue
            envelope = Envelope.parse(record.envelope)
            new_envelope = env.rewrap(
                envelope,
                scope=record.scope,
                old_key=self._vault_key(tenant_id, vault_id, record.wrap_key_version, vault),
                new_public_key=current_public,
                new_key_version=current.version,
                keyring=self._keys.keyring,
                signer=self._keys.signer,
            )
            try:
                self._items.replace_envelope(record, new_envelope.to_bytes(), current.version)
            except ConflictError:
                latest = self._items.get(tenant_id, vault_id, record.item_id, record.version)
                if latest.shredded:
                    shredded += 1
                    continue
                if latest.wrap_key_version == current.version:  # another rewrap got there first
                    already += 1
                    continue
                raise
            rewrapped += 1
        return RewrapReport(current.version, rewrapped, already, shredded)

    def retire_key(self, tenant_id: str, vault_id: str, version: int) -> VaultKeyRecord:
        """Destroy an old version's private key, once no live item's data key is wrapped to it."""
        VaultRef(tenant_id, vault_id)
        vault = self._vaults.get(tenant_id, vault_id)
        if version == vault.current_key_version:
            raise KeyVersionError(
                "the current key version cannot be retired; rotate first", key_version=version
            )
        self._vaults.get_key(tenant_id, vault_id, version)
        still_wrapped = sum(
            1
            for record in self._items.scan_vault(tenant_id, vault_id)
            if record.envelope is not None and record.wrap_key_version == version
        )
        if still_wrapped:
            raise KeyVersionError(
                "items are still wrapped to this key version; rewrap the vault first",
                key_version=version,
                items=still_wrapped,
            )
        self._key_cache.pop((tenant_id, vault_id, version), None)
        return self._vaults.retire_key(tenant_id, vault_id, version, retired_at=self._clock())

    def recover_key(
        self, tenant_id: str, vault_id: str, version: int, shares: Sequence[Share]
    ) -> HybridPrivateKey:
        """Custodians' recovery of one version's private key from k shares (without the root of trust)."""
        VaultRef(tenant_id, vault_id)
        record = self._vaults.get_key(tenant_id, vault_id, version)
        if record.escrowed_private_key is None:
            raise KeyVersionError("this key version has no escrow (no custodians, or retired)")
        return recovery.recover_private_key(
            VaultRef(tenant_id, vault_id), version, record.escrowed_private_key, shares
        )

    # --- items ------------------------------------------------------------------------------------
    def seal_item(
        self,
        tenant_id: str,
        vault_id: str,
        item_id: str,
        plaintext: bytes,
        *,
        content_type: str = "application/octet-stream",
        memory_scope: MemoryScope,
        tags: dict[str, str] | None = None,
        expires_at: int | None = None,
        sensitivity: Sensitivity = DEFAULT_SENSITIVITY,
    ) -> ItemRecord:
        """Seal a new version of an item to the vault's current key, labelled ``sensitivity`` (the
        strictest, ``restricted``, unless the caller says otherwise; each version has its own label)."""
        VaultRef(tenant_id, vault_id)
        validate_id("item_id", item_id)
        validate_content_type(content_type)
        tags = validate_tags(tags or {})
        sensitivity = parse_sensitivity(sensitivity)
        if len(plaintext) > self._max_item_bytes:
            raise PayloadTooLargeError(f"items are at most {self._max_item_bytes} bytes", size=len(plaintext))
        now = self._clock()
        if expires_at is not None and expires_at <= now:
            raise InvalidRequestError("expires_at must be in the future", field="expires_at")
        for _ in range(_VERSION_RACE_RETRIES):
            vault = self._vaults.get(tenant_id, vault_id)
            # The public key comes from the unwrapped private key: a key row altered in storage is
            # refused by the root of trust instead of receiving the item's data key.
            vault_key = self._vault_key(tenant_id, vault_id, vault.current_key_version, vault)
            public_key = vault_key.private_key.public_key()
            versions = self._items.versions(tenant_id, vault_id, item_id)
            version = versions[-1].version + 1 if versions else 1
            scope = ItemScope(tenant_id, vault_id, item_id, version, content_type)
            sealed = env.seal(
                plaintext,
                scope=scope,
                vault_public_key=public_key,
                key_version=vault_key.version,
                signer=self._keys.signer,
                randbytes=self._randbytes,
            )
            location = BodyLocation.INLINE
            stored, body, blob_key, permanent_ref, ref_key = sealed, b"", None, None, None
            if vault.permanent_storage is not None:
                # Only the ciphertext body leaves; the detached envelope (the wrapped data key, the
                # signature) stays in the row, so shredding can still destroy the key.
                location = BodyLocation.PERMANENT
                stored, body = sealed.without_body()
                permanent_ref = self._permanent(vault.permanent_storage).put(body, tags=PERMANENT_BODY_TAGS)
                ref_key = permanent_ref_key(scope, self._randbytes(12))
                self._blobs.put(ref_key, permanent_ref.to_json().encode("ascii"))
            elif sealed.body_length > self._large_item_threshold:
                location = BodyLocation.S3
                stored, body = sealed.without_body()
                blob_key = blob_key_for(scope, self._randbytes(12))
            record = ItemRecord(
                tenant_id=tenant_id,
                vault_id=vault_id,
                item_id=item_id,
                version=version,
                content_type=content_type,
                memory_scope=memory_scope,
                created_at=now,
                size=len(plaintext),
                wrap_key_version=vault_key.version,
                body_location=location,
                envelope=stored.to_bytes(),
                tags=tags,
                expires_at=expires_at,
                blob_key=blob_key,
                permanent_ref=permanent_ref,
                sensitivity=sensitivity,
            )
            if blob_key is not None:
                # The body first, so a row never points at a missing object. The key is unique to this
                # body, so a writer that loses the race for the version deletes only its own orphan.
                self._blobs.put(blob_key, body)
            try:
                self._items.put(record)
            except (ConflictError, KeyVersionError):  # another writer took the version, or a rotation
                if blob_key is not None:
                    self._blobs.delete(blob_key)
                if permanent_ref is not None and ref_key is not None:  # this attempt's body is no item's
                    self._permanent(permanent_ref.backend).release(permanent_ref)
                    self._blobs.delete(ref_key)
                continue
            return record
        raise ConflictError("too many concurrent writers of this item", item_id=item_id)

    def _live_record(self, tenant_id: str, vault_id: str, item_id: str, version: int | None) -> ItemRecord:
        VaultRef(tenant_id, vault_id)
        validate_id("item_id", item_id)
        record = self._items.get(tenant_id, vault_id, item_id, version)
        if record.expired(self._clock()):
            raise ItemExpiredError("the item expired and was crypto-shredded", item_id=item_id)
        if record.shredded:
            raise ItemShreddedError("the item was crypto-shredded", item_id=item_id)
        return record

    def load_envelope(
        self, tenant_id: str, vault_id: str, item_id: str, version: int | None = None
    ) -> tuple[ItemRecord, Envelope]:
        """The stored envelope with its body attached (fetched from S3 for large items), not verified."""
        record = self._live_record(tenant_id, vault_id, item_id, version)
        assert record.envelope is not None  # noqa: S101  (guaranteed by _live_record)
        envelope = Envelope.parse(record.envelope)
        if record.blob_key is not None:
            envelope = envelope.with_body(self._blobs.get(record.blob_key))
        elif record.permanent_ref is not None:
            # Checked against the recorded CID or digest first (BodyIntegrityError, never returned).
            ref = record.permanent_ref
            envelope = envelope.with_body(self._permanent(ref.backend).get(ref))
        return record, envelope

    def grant_approved(
        self,
        *,
        request_id: str,
        tenant_id: str,
        vault_id: str,
        item_id: str,
        requester_public_key: HybridPublicKey,
    ) -> IssuedGrant:
        """The item's data key re-sealed to the requester's key, signed, only for the approval logged for
        this request in the tenant's log (``reliquary.vaults.decisions.require_approval``: this vault and
        item, this key, fresh) whose attestation chain checks out (``require_attested``); the grant opens
        the item version the approval was for.

        The log is read before the item, so a request without that approval learns nothing about the
        item (not even whether it exists). ``DecisionRequiredError`` / ``AttestationError`` when there is
        no such approval, or no ledger to read it from; a log that cannot be read raises its transient
        error."""
        version = self._approved_version(
            request_id=request_id,
            tenant_id=tenant_id,
            vault_id=vault_id,
            item_id=item_id,
            requester_public_key=requester_public_key,
        )
        return self._issue_grant(
            request_id=request_id,
            tenant_id=tenant_id,
            vault_id=vault_id,
            item_id=item_id,
            requester_public_key=requester_public_key,
            version=version,
        )

    def sealed_item_approved(
        self,
        *,
        request_id: str,
        tenant_id: str,
        vault_id: str,
        item_id: str,
        requester_public_key: HybridPublicKey,
    ) -> tuple[ItemRecord, bytes]:
        """The sealed item (the whole envelope, its body attached) of the version an approved request's
        grant opens, checked exactly as ``grant_approved`` checks its decision: the requester fetches
        what the grant it was given unlocks. The envelope is ciphertext that only that grant opens, but it
        is still released only for the approval logged for this request, this vault, item and key."""
        version = self._approved_version(
            request_id=request_id,
            tenant_id=tenant_id,
            vault_id=vault_id,
            item_id=item_id,
            requester_public_key=requester_public_key,
        )
        record, envelope = self.load_envelope(tenant_id, vault_id, item_id, version)
        sealed = envelope.to_bytes()
        if len(sealed) > MAX_RELEASED_ENVELOPE_BYTES:
            # Sealed under a seal limit raised past what an answer carries: refused here, typed, rather
            # than a Lambda answer that fails for its size (a transient error, retried in vain).
            raise PayloadTooLargeError(
                "the sealed item is too large to be released through the API",
                size=len(sealed),
                limit=MAX_RELEASED_ENVELOPE_BYTES,
            )
        return record, sealed

    def _approved_version(
        self,
        *,
        request_id: str,
        tenant_id: str,
        vault_id: str,
        item_id: str,
        requester_public_key: HybridPublicKey,
    ) -> int | None:
        """The item version the approval logged for this request opens, once the approval
        (``require_approval``) and its attestation chain (``require_attested``) check out."""
        VaultRef(tenant_id, vault_id)
        validate_id("item_id", item_id)
        validate_id("request_id", request_id)
        if self._decisions is None:
            raise DecisionRequiredError("no access decision log is configured for grants")
        now = int(self._clock())
        decision = require_approval(
            self._decisions.logged_decision(tenant_id, request_id),
            tenant_id=tenant_id,
            request_id=request_id,
            vault_id=vault_id,
            item_id=item_id,
            requester_public_key=requester_public_key,
            now=now,
            max_age_seconds=self._approval_max_age,
        )
        chain = require_attested(
            decision,
            self._decisions.chains,
            self._decisions.stage_keys,
            now=now,
            max_age_seconds=self._approval_max_age,
        )
        return chain.item_version

    def _issue_grant(
        self,
        *,
        request_id: str,
        tenant_id: str,
        vault_id: str,
        item_id: str,
        requester_public_key: HybridPublicKey,
        version: int | None,
    ) -> IssuedGrant:
        """Re-seal the item's data key to the requester's key, signed; only the requester can open it.
        Checks no access decision: private, so the only way to a grant is ``grant_approved``."""
        record = self._live_record(tenant_id, vault_id, item_id, version)
        assert record.envelope is not None  # noqa: S101
        envelope = Envelope.parse(record.envelope)
        vault_key = self._vault_key(tenant_id, vault_id, record.wrap_key_version)
        data_key = env.unwrap_data_key(
            envelope, scope=record.scope, vault_key=vault_key, keyring=self._keys.keyring
        )
        now = self._clock()
        ttl = self._grant_ttl
        if record.expires_at is not None:
            if record.expires_at <= now:  # it expired while the key was being unwrapped
                raise ItemExpiredError("the item expired and was crypto-shredded", item_id=item_id)
            ttl = min(ttl, record.expires_at - now)  # a grant never outlives its item
        issued = grants.issue(
            request_id=request_id,
            scope=record.scope,
            data_key=data_key,
            requester_public_key=requester_public_key,
            issued_at=now,
            ttl_seconds=ttl,
            signer=self._keys.signer,
        )
        return IssuedGrant(issued.to_bytes(), record, issued.expires_at)

    def shred_item(self, tenant_id: str, vault_id: str, item_id: str) -> ShredReceipt:
        """Crypto-shred every version: destroy the wrapped data keys and the S3 bodies. Idempotent."""
        VaultRef(tenant_id, vault_id)
        validate_id("item_id", item_id)
        records = self._items.versions(tenant_id, vault_id, item_id)
        if not records:
            self._vaults.get(tenant_id, vault_id)  # a missing vault is reported as such
            raise NotFoundError("no such item", item_id=item_id)
        return self._shred_versions(records)

    def forget_scope(
        self, tenant_id: str, vault_id: str, scope: MemoryScope, *, limit: int = 500
    ) -> ForgetReport:
        """Crypto-shred every live item of one memory scope in the vault (a user, an agent or a run
        forgotten): the versions of each item that belong to the scope, with a signed receipt per item
        (the ``shred_item`` receipt, naming those versions).

        Bounded: at most ``limit`` items, and no new item once ``forget_budget_seconds`` have passed or
        the receipts would outgrow ``forget_answer_bytes``; ``complete`` is False while live items
        remain, and calling again carries on. Idempotent: items
        already shredded are counted, not shredded again. The scope is read from an index that lags
        writes by a moment, so an item sealed into the scope just before may show only on a later call;
        each item is re-read (strongly consistent) before it is shredded."""
        VaultRef(tenant_id, vault_id)
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_FORGET_LIMIT:
            raise InvalidRequestError(f"limit must be an integer from 1 to {MAX_FORGET_LIMIT}", field="limit")
        vault = self._vaults.get(tenant_id, vault_id)  # NotFoundError for a vault this tenant does not have
        if vault.permanent_storage is not None:
            self._release_unreleased(tenant_id, vault_id)  # what an earlier call left pinned
        deadline = self._monotonic() + self._forget_budget
        receipts: list[ShredReceipt] = []
        already = answer_bytes = largest = 0
        for entry in self._items.scope_items(tenant_id, vault_id, scope):
            if not entry.live:
                already += 1
                continue
            # Every call shreds at least one item, so calling again always makes progress.
            if receipts and (
                len(receipts) >= limit
                or answer_bytes + largest > self._forget_answer_bytes
                or self._monotonic() >= deadline
            ):
                return ForgetReport(tuple(receipts), already, complete=False)
            records = [
                r for r in self._items.versions(tenant_id, vault_id, entry.item_id) if r.memory_scope == scope
            ]
            if all(r.shredded for r in records):  # shredded since the index was written (or removed)
                already += 1
                continue
            receipt = self._shred_versions(records)
            receipts.append(receipt)
            size = receipt_answer_bytes(receipt)
            answer_bytes, largest = answer_bytes + size, max(largest, size)
        return ForgetReport(tuple(receipts), already, complete=True)

    def _shred_versions(self, records: Sequence[ItemRecord]) -> ShredReceipt:
        """Shred ``records`` (versions of one item) and sign the receipt naming them all."""
        now = self._clock()
        shredded_at = max(r.shredded_at or now for r in records)  # when the last version was destroyed
        for record in records:
            self._shred_record(record, now)
        first = records[0]
        versions = tuple(r.version for r in records)
        signer = self._keys.signer
        message = shred_message(first.tenant_id, first.vault_id, first.item_id, versions, shredded_at)
        return ShredReceipt(
            tenant_id=first.tenant_id,
            vault_id=first.vault_id,
            item_id=first.item_id,
            versions=versions,
            shredded_at=shredded_at,
            signer_key_id=signer.key_id,
            signature_algorithm=signer.algorithm.value,
            signature=signer.sign(message),
        )

    def expire_due(self, tenant_id: str, vault_id: str) -> list[str]:
        """Crypto-shred every item past its expiry now (DynamoDB TTL deletes rows only eventually)."""
        VaultRef(tenant_id, vault_id)
        now = self._clock()
        due = sorted(
            {
                r.item_id
                for r in self._items.scan_vault(tenant_id, vault_id)
                if r.expired(now) and not r.shredded
            }
        )
        for item_id in due:
            for record in self._items.versions(tenant_id, vault_id, item_id):
                if record.expired(now):
                    self._shred_record(record, now)
        return due

    def purge_removed_versions(self, removed: Sequence[RemovedVersion]) -> PurgeReport:
        """Delete the S3 bodies of item versions whose rows DynamoDB's TTL removed (their wrapped keys
        went with the rows, so the bodies are undecryptable leftovers).

        The report is not trusted on its word: a version whose row still exists keeps its body, so a
        forged or early report can destroy nothing that is still live."""
        purged = present = 0
        for gone in removed:
            try:
                self._items.get(gone.tenant_id, gone.vault_id, gone.item_id, gone.version)
            except NotFoundError:
                prefix = blob_prefix(gone.tenant_id, gone.vault_id, gone.item_id, gone.version)
                self._release_permanent(prefix, known=None)
                self._blobs.delete_prefix(prefix)
                purged += 1
            else:
                present += 1
        return PurgeReport(purged=purged, still_present=present)

    def _shred_record(self, record: ItemRecord, now: int) -> None:
        if record.blob_key is not None:
            self._blobs.delete(record.blob_key)
        if not record.shredded:
            self._items.shred(record, shredded_at=now)
        if record.permanent_ref is not None:
            # After the key is destroyed, so a node that is down delays only the unpinning, never the
            # erasure: the call fails transient, and the version is marked for the next forget of the
            # vault (or shred of the item) to release.
            try:
                self._release_left_behind(record, known=None if record.shredded else record.permanent_ref)
            except TransientError:
                self._blobs.put(self._unreleased_key(record), b"")
                raise
            if record.shredded:  # shredding again: whatever was marked is released now
                self._blobs.delete(self._unreleased_key(record))

    @staticmethod
    def _unreleased_key(record: ItemRecord) -> str:
        return f"{unreleased_prefix(record.tenant_id, record.vault_id)}{record.item_id}/{record.version}"

    def _release_unreleased(self, tenant_id: str, vault_id: str) -> None:
        prefix = unreleased_prefix(tenant_id, vault_id)
        for key in self._blobs.keys(prefix):
            item_id, _, version = key.removeprefix(prefix).partition("/")
            if not version.isdigit():
                continue  # not a mark this service wrote
            self._release_permanent(blob_prefix(tenant_id, vault_id, item_id, int(version)), known=None)
            self._blobs.delete_prefix(blob_prefix(tenant_id, vault_id, item_id, int(version)))
            self._blobs.delete(key)

    def _release_left_behind(self, record: ItemRecord, *, known: PermanentRef | None = None) -> None:
        """Release ``known`` and the bodies still named under the version's prefix (a body's S3 record
        is deleted only once it is released: what is left there is what remains), then delete them."""
        if record.permanent_ref is None:
            return
        prefix = blob_prefix(record.tenant_id, record.vault_id, record.item_id, record.version)
        self._release_permanent(prefix, known=known)
        self._blobs.delete_prefix(prefix)

    def _release_permanent(self, prefix: str, *, known: PermanentRef | None) -> None:
        """Release ``known`` and every body a record under ``prefix`` names (one version's: its own, and
        any a writer that crashed before deleting its record left behind)."""
        refs = [] if known is None else [known]
        for key in self._blobs.keys(prefix):
            if key.endswith(PERMANENT_REF_SUFFIX):
                ref = PermanentRef.from_json(self._blobs.get(key))
                if ref not in refs:
                    refs.append(ref)
        for ref in refs:
            self._permanent(ref.backend).release(ref)
