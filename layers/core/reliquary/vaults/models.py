"""Vault and item records: what the repositories store. Nothing here is secret in the clear:
private keys appear only wrapped by the root of trust, items only as envelopes."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from reliquary.crypto.scope import ItemScope, VaultRef, validate_id
from reliquary.errors import InvalidRequestError
from reliquary.vaults.labels import DEFAULT_SENSITIVITY, Sensitivity, parse_sensitivity
from reliquary.vaults.permanent import PermanentBackend, PermanentRef

MAX_TAGS = 32
MAX_TAG_TEXT = 256
MAX_FORGET_LIMIT = 1000  # items one forget call may shred (it must answer within API Gateway's 29 s)


class KeyStatus(StrEnum):
    ACTIVE = "active"  # new items are sealed to it
    PREVIOUS = "previous"  # still opens data keys wrapped to it, until they are rewrapped
    RETIRED = "retired"  # its private key is destroyed


class MemoryKind(StrEnum):
    USER = "user"
    AGENT = "agent"
    RUN = "run"


class BodyLocation(StrEnum):
    INLINE = "inline"  # the envelope, body included, is in the item row
    S3 = "s3"  # the row holds the detached envelope; the body is an S3 object
    PERMANENT = "permanent"  # the row holds the detached envelope; the body is on IPFS or Arweave


@dataclass(frozen=True, slots=True)
class MemoryScope:
    """Whose memory an item is: a user's, an agent's or one run's. Not secret."""

    kind: MemoryKind
    ref: str

    def __post_init__(self) -> None:
        validate_id("scope ref", self.ref)


@dataclass(frozen=True, slots=True)
class Custodian:
    custodian_id: str
    public_key_fingerprint: bytes
    sealed_share: bytes  # a Shamir share of the vault's recovery key, HPKE-sealed to the custodian


@dataclass(frozen=True, slots=True)
class RecoveryPolicy:
    threshold: int
    recovery_public_key: bytes  # each key version's private key is also sealed to this key (escrow)
    custodians: tuple[Custodian, ...]


@dataclass(frozen=True, slots=True)
class Vault:
    tenant_id: str
    vault_id: str
    current_key_version: int
    created_at: int
    recovery: RecoveryPolicy | None = None
    # Set at creation, never changed: every item body of the vault goes to this permanent backend, where
    # it can never be deleted (erasure is crypto-shredding only; docs/storage.md). None: DynamoDB and S3.
    permanent_storage: PermanentBackend | None = None

    @property
    def ref(self) -> VaultRef:
        return VaultRef(self.tenant_id, self.vault_id)


@dataclass(frozen=True, slots=True)
class VaultKeyRecord:
    tenant_id: str
    vault_id: str
    version: int
    public_key: bytes
    wrapped_private_key: bytes | None  # None once retired
    status: KeyStatus
    created_at: int
    escrowed_private_key: bytes | None = None  # HPKE to the recovery key, when the vault has custodians
    root_key_id: str = ""
    retired_at: int | None = None  # when its private key was destroyed


def validate_tags(tags: dict[str, str]) -> dict[str, str]:
    if len(tags) > MAX_TAGS:
        raise InvalidRequestError(f"at most {MAX_TAGS} tags", field="tags")
    for key, value in tags.items():
        validate_id("tag key", key)
        if not isinstance(value, str) or len(value) > MAX_TAG_TEXT or not value.isprintable():
            raise InvalidRequestError(
                f"tag values are printable text of at most {MAX_TAG_TEXT} characters", field="tags"
            )
    return dict(tags)


@dataclass(frozen=True, slots=True)
class ItemRecord:
    tenant_id: str
    vault_id: str
    item_id: str
    version: int
    content_type: str
    memory_scope: MemoryScope
    created_at: int
    size: int  # plaintext length in bytes (not secret: the ciphertext reveals it anyway)
    wrap_key_version: int
    body_location: BodyLocation
    envelope: bytes | None  # None once shredded
    tags: dict[str, str] = field(default_factory=dict)
    expires_at: int | None = None
    shredded_at: int | None = None
    blob_key: str | None = None  # the S3 object holding the body of a large item
    permanent_ref: PermanentRef | None = None  # where the body went on IPFS or Arweave, and its digest
    # Set at seal, per version; read by the trust stage. Not bound into the envelope (labels.py).
    sensitivity: Sensitivity = DEFAULT_SENSITIVITY

    def __post_init__(self) -> None:
        parse_sensitivity(self.sensitivity)

    @property
    def scope(self) -> ItemScope:
        return ItemScope(self.tenant_id, self.vault_id, self.item_id, self.version, self.content_type)

    @property
    def shredded(self) -> bool:
        return self.envelope is None

    def expired(self, now: int) -> bool:
        return self.expires_at is not None and self.expires_at <= now


@dataclass(frozen=True, slots=True)
class ScopedItem:
    """An item with a version in one memory scope, as the scope index lists it: ``live`` while some
    version of that scope still holds its envelope (the index may lag a write by a moment)."""

    item_id: str
    live: bool


@dataclass(frozen=True, slots=True)
class StoredSigningKey:
    """A service signing key: the public part in the clear, the secret wrapped by the root of trust."""

    algorithm: str
    key_id: bytes
    public_key: bytes
    wrapped_secret: bytes
    created_at: int
    root_key_id: str = ""
