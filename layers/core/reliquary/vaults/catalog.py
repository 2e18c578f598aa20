"""The read-only metadata of vaults and items: what the memory API lists and shows, never a secret.

``MetadataReader`` is the port: vaults with their key versions (no key material: a version's status,
times and the SHA-256 of its public key), items with their versions' metadata (never an envelope), and
the key events derived from the key versions. ``reliquary.adapters.catalog`` implements it over
DynamoDB, ``reliquary.vaults.memory.InMemoryMetadataReader`` over the in-memory fakes; both build their
answers with the functions here, so they cannot disagree on a state or an event.

Listings come in pages. A page's ``cursor`` is opaque to callers: base64url of a small JSON document
naming the listing it continues (tenant, vault, memory scope) and the position after which it goes on.
A cursor is honoured only by the very listing it came from; any other (another tenant's, another
vault's, a listing by another scope) or a malformed one is refused with ``InvalidRequestError`` before
anything is read, so paging can never cross a tenant. Storage keys are rebuilt from the request, never
taken from the cursor.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Generic, Protocol, TypeVar

from reliquary.crypto.scope import MAX_VERSION, VaultRef, validate_id
from reliquary.errors import InvalidRequestError
from reliquary.vaults.labels import Sensitivity
from reliquary.vaults.models import (
    BodyLocation,
    ItemRecord,
    KeyStatus,
    MemoryScope,
    RecoveryPolicy,
    Vault,
    VaultKeyRecord,
)

T = TypeVar("T")
DEFAULT_PAGE = 50
MAX_PAGE = 100
MAX_CURSOR = 1024  # characters; every cursor this module writes is far shorter


class ItemState(StrEnum):
    LIVE = "live"
    EXPIRED = "expired"  # past its expiry: refused at once, shredded by the next sweep
    SHREDDED = "shredded"  # its data key is destroyed


class KeyEventKind(StrEnum):
    CREATED = "created"  # key version 1, with the vault
    ROTATED = "rotated"  # a new version became current
    RETIRED = "retired"  # a version's private key was destroyed


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: tuple[T, ...]
    cursor: str | None  # pass it back for the next page; None when this page is the last


@dataclass(frozen=True, slots=True)
class KeyVersionInfo:
    version: int
    status: KeyStatus
    created_at: int
    retired_at: int | None
    public_key_sha256: str  # hex: the fingerprint the vault key's KMS context also names


@dataclass(frozen=True, slots=True)
class VaultSummary:
    vault_id: str
    created_at: int
    current_key_version: int
    recovery_threshold: int | None  # custodians needed to recover a key, when the vault has them
    custodian_ids: tuple[str, ...]
    permanent_storage: str | None = None  # "ipfs" / "arweave": where the vault's item bodies go for good


@dataclass(frozen=True, slots=True)
class VaultDetails:
    vault: VaultSummary
    keys: tuple[KeyVersionInfo, ...]  # oldest first


@dataclass(frozen=True, slots=True)
class KeyEvent:
    kind: KeyEventKind
    key_version: int
    at: int


@dataclass(frozen=True, slots=True)
class ItemVersionInfo:
    version: int
    memory_scope: MemoryScope
    content_type: str
    created_at: int
    size: int
    key_version: int  # the vault key version its data key is wrapped to
    body_location: BodyLocation
    sensitivity: Sensitivity
    expires_at: int | None
    shredded_at: int | None
    state: ItemState
    tags: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ItemMetadata:
    """An item as a listing shows it: its latest version (in the scope asked for, when one is)."""

    item_id: str
    latest: ItemVersionInfo
    versions: int  # how many versions the listing saw


@dataclass(frozen=True, slots=True)
class ItemHistory:
    item_id: str
    versions: tuple[ItemVersionInfo, ...]  # oldest first


class MetadataReader(Protocol):
    """Read-only metadata, every call scoped by the tenant. ``NotFoundError`` for a vault or item this
    tenant does not have (another tenant's included); ``InvalidRequestError`` for a malformed id, limit
    or cursor."""

    def list_vaults(
        self, tenant_id: str, *, limit: int = DEFAULT_PAGE, cursor: str | None = None
    ) -> Page[VaultSummary]: ...

    def get_vault(self, tenant_id: str, vault_id: str) -> VaultDetails: ...

    def list_items(
        self,
        tenant_id: str,
        vault_id: str,
        *,
        scope: MemoryScope | None = None,
        limit: int = DEFAULT_PAGE,
        cursor: str | None = None,
    ) -> Page[ItemMetadata]:
        """Items in id order, each with its latest version; with ``scope``, only items with a version
        in that scope, each with its latest version in it (read from an index that lags writes by a
        moment)."""

    def get_item(self, tenant_id: str, vault_id: str, item_id: str) -> ItemHistory: ...

    def key_events(self, tenant_id: str, vault_id: str) -> tuple[KeyEvent, ...]: ...


# --- requests ------------------------------------------------------------------------------------------
def page_limit(limit: int) -> int:
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE:
        raise InvalidRequestError(f"limit must be an integer from 1 to {MAX_PAGE}", field="limit")
    return limit


@dataclass(frozen=True, slots=True)
class Listing:
    """Which listing a cursor continues: the vaults of a tenant, or the items of a vault (by a scope)."""

    tenant_id: str
    vault_id: str | None = None
    scope: MemoryScope | None = None

    def __post_init__(self) -> None:
        if self.vault_id is None:
            validate_id("tenant_id", self.tenant_id)
        else:
            VaultRef(self.tenant_id, self.vault_id)

    def name(self) -> list[str | None]:
        scope = None if self.scope is None else f"{self.scope.kind.value}:{self.scope.ref}"
        return [self.tenant_id, self.vault_id, scope]


@dataclass(frozen=True, slots=True)
class ItemPosition:
    """The last row a page of items read: its item and that item's last version (a real row key)."""

    item_id: str
    version: int


def _bad_cursor() -> InvalidRequestError:
    # One message for every failure, naming nothing the caller sent.
    return InvalidRequestError("cursor is not a cursor of this listing", field="cursor")


def _encode(listing: Listing, position: list[Any]) -> str:
    document = {"c": 1, "l": listing.name(), "p": position}
    text = json.dumps(document, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(text).rstrip(b"=").decode("ascii")


def _decode(cursor: object, listing: Listing) -> list[Any]:
    if not isinstance(cursor, str) or not 0 < len(cursor) <= MAX_CURSOR or not cursor.isascii():
        raise _bad_cursor()
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        # Strict: only the urlsafe alphabet, and the text must be exactly what _encode writes.
        document = json.loads(raw)
    except (binascii.Error, ValueError, RecursionError):
        raise _bad_cursor() from None
    if (
        not isinstance(document, dict)
        or set(document) != {"c", "l", "p"}
        or document["c"] != 1
        or document["l"] != listing.name()
        or not isinstance(document["p"], list)
        or _encode(listing, document["p"]) != cursor
    ):
        raise _bad_cursor()
    position: list[Any] = document["p"]
    return position


def vault_cursor(listing: Listing, vault_id: str) -> str:
    return _encode(listing, [vault_id])


def vault_position(cursor: str | None, listing: Listing) -> str | None:
    """The vault id a listing of vaults goes on after, or None from the start."""
    if cursor is None:
        return None
    position = _decode(cursor, listing)
    if len(position) != 1 or not _is_id(position[0]):
        raise _bad_cursor()
    vault_id: str = position[0]
    return vault_id


def item_cursor(listing: Listing, position: ItemPosition) -> str:
    return _encode(listing, [position.item_id, position.version])


def item_position(cursor: str | None, listing: Listing) -> ItemPosition | None:
    """Where a listing of items goes on (after every version of ``item_id``), or None from the start."""
    if cursor is None:
        return None
    position = _decode(cursor, listing)
    if len(position) != 2 or not _is_id(position[0]):  # (item id, version)
        raise _bad_cursor()
    version = position[1]
    if isinstance(version, bool) or not isinstance(version, int) or not 1 <= version <= MAX_VERSION:
        raise _bad_cursor()
    return ItemPosition(position[0], version)


_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}")


def _is_id(value: object) -> bool:
    return isinstance(value, str) and _ID.fullmatch(value) is not None


# --- answers -------------------------------------------------------------------------------------------
def item_state(*, expires_at: int | None, shredded: bool, now: int) -> ItemState:
    if shredded:
        return ItemState.SHREDDED
    if expires_at is not None and expires_at <= now:
        return ItemState.EXPIRED
    return ItemState.LIVE


def version_info(record: ItemRecord, now: int) -> ItemVersionInfo:
    return ItemVersionInfo(
        version=record.version,
        memory_scope=record.memory_scope,
        content_type=record.content_type,
        created_at=record.created_at,
        size=record.size,
        key_version=record.wrap_key_version,
        body_location=record.body_location,
        sensitivity=record.sensitivity,
        expires_at=record.expires_at,
        shredded_at=record.shredded_at,
        state=item_state(expires_at=record.expires_at, shredded=record.shredded, now=now),
        tags=dict(record.tags),
    )


def latest_per_item(
    versions: Iterable[tuple[str, ItemVersionInfo]], limit: int
) -> tuple[list[ItemMetadata], ItemPosition | None]:
    """Group item versions (in item id, then version order, as storage returns them) into at most
    ``limit`` items with their latest version; the position to go on from, or None when nothing is
    left. Reading stops at the first version of the item after the page."""
    page: list[ItemMetadata] = []
    current: tuple[str, ItemVersionInfo, int] | None = None
    for item_id, info in versions:
        if current is not None and item_id == current[0]:
            current = (item_id, info, current[2] + 1)
            continue
        if current is not None:
            page.append(ItemMetadata(current[0], current[1], current[2]))
        if len(page) == limit:
            last = page[-1]
            return page, ItemPosition(last.item_id, last.latest.version)
        current = (item_id, info, 1)
    if current is not None:
        page.append(ItemMetadata(current[0], current[1], current[2]))
    return page, None


def vault_summary(vault: Vault) -> VaultSummary:
    return summary_of(
        vault.vault_id,
        vault.created_at,
        vault.current_key_version,
        vault.recovery,
        vault.permanent_storage.value if vault.permanent_storage else None,
    )


def summary_of(
    vault_id: str,
    created_at: int,
    current_key_version: int,
    recovery: RecoveryPolicy | None,
    permanent_storage: str | None = None,
) -> VaultSummary:
    return VaultSummary(
        vault_id=vault_id,
        created_at=created_at,
        current_key_version=current_key_version,
        recovery_threshold=recovery.threshold if recovery else None,
        custodian_ids=tuple(c.custodian_id for c in recovery.custodians) if recovery else (),
        permanent_storage=permanent_storage,
    )


def key_info(
    *, version: int, status: KeyStatus, created_at: int, retired_at: int | None, public_key: bytes
) -> KeyVersionInfo:
    return KeyVersionInfo(
        version=version,
        status=status,
        created_at=created_at,
        retired_at=retired_at,
        public_key_sha256=hashlib.sha256(public_key).hexdigest(),
    )


def key_record_info(record: VaultKeyRecord) -> KeyVersionInfo:
    return key_info(
        version=record.version,
        status=record.status,
        created_at=record.created_at,
        retired_at=record.retired_at,
        public_key=record.public_key,
    )


def key_events(keys: Sequence[KeyVersionInfo]) -> tuple[KeyEvent, ...]:
    """What happened to a vault's keys, oldest first: version 1 created with the vault, each later one
    by a rotation, and each retirement (a retired version stored without its time, as no version retired
    by this code is, has no event to date)."""
    events = [
        KeyEvent(KeyEventKind.CREATED if k.version == 1 else KeyEventKind.ROTATED, k.version, k.created_at)
        for k in keys
    ]
    events += [
        KeyEvent(KeyEventKind.RETIRED, k.version, k.retired_at) for k in keys if k.retired_at is not None
    ]
    order = list(KeyEventKind)
    return tuple(sorted(events, key=lambda e: (e.at, e.key_version, order.index(e.kind))))
