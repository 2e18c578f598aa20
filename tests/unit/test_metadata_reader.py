"""The read-only metadata reader on the in-memory fakes (``InMemoryMetadataReader``) and its pure parts
(``reliquary.vaults.catalog``): vaults with key versions and key events, items with their latest
version and their history, states, paging, and cursors that only their own listing accepts.

tests/integration/test_metadata_reader_moto.py holds the DynamoDB reader to the same answers."""

from __future__ import annotations

import base64
import copy
import dataclasses
import hashlib
import json
from collections.abc import Callable
from typing import Any

import pytest

from reliquary.crypto.kem import HybridPrivateKey
from reliquary.errors import InvalidRequestError, NotFoundError
from reliquary.vaults import catalog
from reliquary.vaults.catalog import (
    MAX_CURSOR,
    MAX_PAGE,
    ItemState,
    KeyEvent,
    KeyEventKind,
    KeyVersionInfo,
    Listing,
    Page,
)
from reliquary.vaults.memory import InMemoryMetadataReader
from reliquary.vaults.models import BodyLocation, KeyStatus, MemoryKind, MemoryScope
from tests.support.vaults import T0, MemoryStack, memory_stack

TENANT, OTHER_TENANT, VAULT = "tenant-a", "tenant-b", "vault-1"
ALICE = MemoryScope(MemoryKind.USER, "alice")
BOB = MemoryScope(MemoryKind.USER, "bob")
LARGE = bytes(range(256)) * 20


@pytest.fixture
def stack() -> MemoryStack:
    stack = memory_stack()
    stack.service.create_vault(TENANT, VAULT)
    return stack


@pytest.fixture
def reader(stack: MemoryStack) -> InMemoryMetadataReader:
    return InMemoryMetadataReader(stack.vaults, stack.items, clock=stack.clock)


def _seal(
    stack: MemoryStack, item_id: str, scope: MemoryScope = ALICE, data: bytes = b"x", **kw: Any
) -> None:
    stack.service.seal_item(TENANT, VAULT, item_id, data, memory_scope=scope, **kw)


def _no_bytes(value: Any) -> None:
    """Nothing in an answer is raw bytes: no key, no envelope, no ciphertext."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        for f in dataclasses.fields(value):
            _no_bytes(getattr(value, f.name))
    elif isinstance(value, (tuple, list)):
        for v in value:
            _no_bytes(v)
    elif isinstance(value, dict):
        for k, v in value.items():
            _no_bytes(k)
            _no_bytes(v)
    else:
        assert not isinstance(value, (bytes, bytearray, memoryview)), value


def _all_pages(fetch: Any, limit: int) -> list[Page[Any]]:
    pages = [fetch(limit=limit, cursor=None)]
    while pages[-1].cursor is not None:
        pages.append(fetch(limit=limit, cursor=pages[-1].cursor))
        assert len(pages) < 50
    return pages


# --- vaults -------------------------------------------------------------------------------------------
def test_vaults_are_listed_in_id_order_page_by_page_and_only_the_tenants_own(stack: MemoryStack) -> None:
    for vault_id in ("v-c", "v-a", "v-e", "v-b", "v-d"):
        stack.service.create_vault(OTHER_TENANT, vault_id)
    custodians = [(name, HybridPrivateKey.generate().public_key()) for name in ("ann", "ben", "cat")]
    stack.service.create_vault(OTHER_TENANT, "v-f", custodians=custodians, recovery_threshold=2)
    reader = InMemoryMetadataReader(stack.vaults, stack.items, clock=stack.clock)

    pages = _all_pages(lambda **kw: reader.list_vaults(OTHER_TENANT, **kw), limit=2)

    assert [[v.vault_id for v in p.items] for p in pages] == [["v-a", "v-b"], ["v-c", "v-d"], ["v-e", "v-f"]]
    assert pages[-1].cursor is None
    last = pages[-1].items[-1]
    assert (last.recovery_threshold, last.custodian_ids) == (2, ("ann", "ben", "cat"))
    assert (last.created_at, last.current_key_version) == (T0, 1)
    assert pages[0].items[0].recovery_threshold is None
    assert [v.vault_id for v in reader.list_vaults(TENANT).items] == [VAULT]
    assert reader.list_vaults("nobody") == Page((), None)
    # One page holding everything has no cursor.
    assert reader.list_vaults(OTHER_TENANT, limit=6).cursor is None


def test_a_vault_shows_its_key_versions_and_events_and_no_key_material(
    stack: MemoryStack, reader: InMemoryMetadataReader
) -> None:
    first_key = stack.vaults.get_key(TENANT, VAULT, 1).public_key
    stack.clock.advance(10)
    rotated = stack.service.rotate_key(TENANT, VAULT)
    stack.clock.advance(10)
    stack.service.rewrap_vault(TENANT, VAULT)
    stack.service.retire_key(TENANT, VAULT, 1)
    stack.clock.advance(10)
    stack.service.rotate_key(TENANT, VAULT)

    details = reader.get_vault(TENANT, VAULT)

    assert details.vault.current_key_version == 3
    assert details.keys == (
        KeyVersionInfo(1, KeyStatus.RETIRED, T0, T0 + 20, hashlib.sha256(first_key).hexdigest()),
        KeyVersionInfo(2, KeyStatus.PREVIOUS, T0 + 10, None, hashlib.sha256(rotated.public_key).hexdigest()),
        KeyVersionInfo(
            3,
            KeyStatus.ACTIVE,
            T0 + 30,
            None,
            hashlib.sha256(stack.vaults.get_key(TENANT, VAULT, 3).public_key).hexdigest(),
        ),
    )
    _no_bytes(details)
    assert reader.key_events(TENANT, VAULT) == (
        KeyEvent(KeyEventKind.CREATED, 1, T0),
        KeyEvent(KeyEventKind.ROTATED, 2, T0 + 10),
        KeyEvent(KeyEventKind.RETIRED, 1, T0 + 20),
        KeyEvent(KeyEventKind.ROTATED, 3, T0 + 30),
    )


def test_key_events_of_one_moment_come_in_version_then_kind_order() -> None:
    keys = [
        KeyVersionInfo(2, KeyStatus.ACTIVE, T0, None, "b"),
        KeyVersionInfo(1, KeyStatus.RETIRED, T0, T0, "a"),
    ]
    assert catalog.key_events(keys) == (
        KeyEvent(KeyEventKind.CREATED, 1, T0),
        KeyEvent(KeyEventKind.RETIRED, 1, T0),
        KeyEvent(KeyEventKind.ROTATED, 2, T0),
    )


# --- items --------------------------------------------------------------------------------------------
def test_items_show_their_latest_version_and_state_without_an_envelope(
    stack: MemoryStack, reader: InMemoryMetadataReader
) -> None:
    _seal(stack, "note", data=b"v1", tags={"source": "chat"})
    stack.clock.advance(5)
    _seal(stack, "note", BOB, b"v2 is bob's", content_type="text/plain", sensitivity="internal")
    _seal(stack, "big", data=LARGE)
    _seal(stack, "brief", expires_at=T0 + 60)
    _seal(stack, "gone")
    stack.service.shred_item(TENANT, VAULT, "gone")
    stack.clock.advance(100)  # "brief" is past its expiry, not swept

    page = reader.list_items(TENANT, VAULT)

    assert page.cursor is None
    assert [(i.item_id, i.latest.version, i.versions, i.latest.state) for i in page.items] == [
        ("big", 1, 1, ItemState.LIVE),
        ("brief", 1, 1, ItemState.EXPIRED),
        ("gone", 1, 1, ItemState.SHREDDED),
        ("note", 2, 2, ItemState.LIVE),
    ]
    note = page.items[-1].latest
    assert (note.memory_scope, note.content_type, note.sensitivity, note.created_at) == (
        BOB,
        "text/plain",
        "internal",
        T0 + 5,
    )
    assert (note.size, note.key_version, note.body_location, dict(note.tags)) == (
        len(b"v2 is bob's"),
        1,
        BodyLocation.INLINE,
        {},
    )
    assert page.items[0].latest.body_location is BodyLocation.S3
    assert page.items[2].latest.shredded_at == T0 + 5
    _no_bytes(page)

    history = reader.get_item(TENANT, VAULT, "note")
    assert [(v.version, v.memory_scope, dict(v.tags)) for v in history.versions] == [
        (1, ALICE, {"source": "chat"}),
        (2, BOB, {}),
    ]
    _no_bytes(history)


def test_a_scope_lists_each_items_latest_version_in_that_scope(
    stack: MemoryStack, reader: InMemoryMetadataReader
) -> None:
    _seal(stack, "shared")
    _seal(stack, "shared", BOB)
    _seal(stack, "alice-only")
    _seal(stack, "bob-only", BOB)

    alice = reader.list_items(TENANT, VAULT, scope=ALICE)
    bob = reader.list_items(TENANT, VAULT, scope=BOB)

    assert [(i.item_id, i.latest.version, i.versions) for i in alice.items] == [
        ("alice-only", 1, 1),
        ("shared", 1, 1),
    ]
    assert [(i.item_id, i.latest.version) for i in bob.items] == [("bob-only", 1), ("shared", 2)]
    assert reader.list_items(TENANT, VAULT, scope=MemoryScope(MemoryKind.RUN, "alice")).items == ()


def test_items_page_by_page_each_once_even_with_many_versions(
    stack: MemoryStack, reader: InMemoryMetadataReader
) -> None:
    for n in range(7):
        for _ in range(n % 3 + 1):
            _seal(stack, f"item-{n}")

    pages = _all_pages(lambda **kw: reader.list_items(TENANT, VAULT, **kw), limit=3)

    assert [[(i.item_id, i.latest.version) for i in p.items] for p in pages] == [
        [("item-0", 1), ("item-1", 2), ("item-2", 3)],
        [("item-3", 1), ("item-4", 2), ("item-5", 3)],
        [("item-6", 1)],
    ]


def test_a_version_sealed_between_pages_does_not_show_its_item_twice(
    stack: MemoryStack, reader: InMemoryMetadataReader
) -> None:
    for item_id in ("a", "b", "c"):
        _seal(stack, item_id)
    first = reader.list_items(TENANT, VAULT, limit=2)
    _seal(stack, "b", data=b"b v2")
    second = reader.list_items(TENANT, VAULT, limit=2, cursor=first.cursor)
    assert [i.item_id for i in first.items] == ["a", "b"]
    assert [i.item_id for i in second.items] == ["c"]


# --- refusals -----------------------------------------------------------------------------------------
def test_what_the_tenant_does_not_have_is_not_found(
    stack: MemoryStack, reader: InMemoryMetadataReader
) -> None:
    _seal(stack, "note")
    stack.service.create_vault(OTHER_TENANT, "theirs")
    calls: dict[str, Callable[[str, str], object]] = {
        "get_vault": reader.get_vault,
        "key_events": reader.key_events,
        "list_items": reader.list_items,
        "list_scope": lambda t, v: reader.list_items(t, v, scope=ALICE),
        "get_item": lambda t, v: reader.get_item(t, v, "note"),
    }
    for name, call in calls.items():
        for tenant_id, vault_id in ((TENANT, "theirs"), (OTHER_TENANT, VAULT), (TENANT, "no-such")):
            with pytest.raises(NotFoundError) as raised:
                call(tenant_id, vault_id)
            assert raised.value.details == {"vault_id": vault_id}, name
    with pytest.raises(NotFoundError) as raised:
        reader.get_item(TENANT, VAULT, "no-such-item")
    assert raised.value.details == {"item_id": "no-such-item"}


@pytest.mark.parametrize("limit", [0, -1, MAX_PAGE + 1, True, 1.0, "10", None])
def test_a_bad_page_size_is_refused(reader: InMemoryMetadataReader, limit: Any) -> None:
    for call in (
        lambda: reader.list_vaults(TENANT, limit=limit),
        lambda: reader.list_items(TENANT, VAULT, limit=limit),
    ):
        with pytest.raises(InvalidRequestError) as raised:
            call()
        assert raised.value.details == {"field": "limit"}


@pytest.mark.parametrize(
    "call",
    [
        lambda r: r.list_vaults("bad#tenant"),
        lambda r: r.get_vault(TENANT, "v#1"),
        lambda r: r.list_items("", VAULT),
        lambda r: r.get_item(TENANT, VAULT, "item#V#1"),
        lambda r: r.key_events(TENANT, "x" * 129),
    ],
)
def test_malformed_ids_are_refused(reader: InMemoryMetadataReader, call: Any) -> None:
    with pytest.raises(InvalidRequestError):
        call(reader)


def _encoded(document: Any) -> str:
    text = json.dumps(document, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(text).rstrip(b"=").decode()


GARBAGE_CURSORS: dict[str, Any] = {
    "empty": "",
    "not base64": "%%%not-a-cursor%%%",
    "base64 of nothing useful": base64.urlsafe_b64encode(b"hello").decode(),
    "json but a list": _encoded([1, 2, 3]),
    "json, no listing": _encoded({"c": 1, "p": ["a", 1]}),
    "unknown version": _encoded({"c": 2, "l": [TENANT, VAULT, None], "p": ["a", 1]}),
    "a bool for the version": _encoded({"c": True, "l": [TENANT, VAULT, None], "p": ["a", 1]}),
    "extra member": _encoded({"c": 1, "l": [TENANT, VAULT, None], "p": ["a", 1], "x": 0}),
    "position too short": _encoded({"c": 1, "l": [TENANT, VAULT, None], "p": ["a"]}),
    "position not an id": _encoded({"c": 1, "l": [TENANT, VAULT, None], "p": ["a#V#1", 1]}),
    "version 0": _encoded({"c": 1, "l": [TENANT, VAULT, None], "p": ["a", 0]}),
    "version too large": _encoded({"c": 1, "l": [TENANT, VAULT, None], "p": ["a", 2**32]}),
    "version as text": _encoded({"c": 1, "l": [TENANT, VAULT, None], "p": ["a", "1"]}),
    "padded": _encoded({"c": 1, "l": [TENANT, VAULT, None], "p": ["a", 1]}) + "==",
    "spaced json": base64.urlsafe_b64encode(
        json.dumps({"c": 1, "l": [TENANT, VAULT, None], "p": ["a", 1]}).encode()
    ).decode(),
    "too long": "A" * (MAX_CURSOR + 1),
    "not ascii": "\u00e9t\u00e9",
    "a lone surrogate": "\ud800",
    "not a string": 12345,
    "deeply nested": _encoded({"c": 1, "l": [TENANT, VAULT, None], "p": [[[[[[[[["a"]]]]]]]]]}),
}


@pytest.mark.parametrize("name", GARBAGE_CURSORS)
def test_a_garbage_cursor_is_refused_without_echo(
    stack: MemoryStack, reader: InMemoryMetadataReader, name: str
) -> None:
    _seal(stack, "a")
    _seal(stack, "b")
    cursor = GARBAGE_CURSORS[name]
    for call in (
        lambda: reader.list_items(TENANT, VAULT, limit=1, cursor=cursor),
        lambda: reader.list_vaults(TENANT, limit=1, cursor=cursor),
    ):
        with pytest.raises(InvalidRequestError) as raised:
            call()
        assert raised.value.to_dict() == {
            "code": "invalid_request",
            "type": "InvalidRequestError",
            "message": "cursor is not a cursor of this listing",
            "details": {"field": "cursor"},
            "retryable": False,
        }


def test_a_cursor_is_honoured_only_by_the_listing_it_came_from(stack: MemoryStack) -> None:
    reader = InMemoryMetadataReader(stack.vaults, stack.items, clock=stack.clock)
    for tenant_id in (TENANT, OTHER_TENANT):
        if tenant_id == OTHER_TENANT:
            stack.service.create_vault(OTHER_TENANT, VAULT)
        stack.service.create_vault(tenant_id, "vault-2")
        stack.service.create_vault(tenant_id, "vault-3")
        for item_id in ("a", "b", "c"):
            stack.service.seal_item(tenant_id, VAULT, item_id, b"x", memory_scope=ALICE)
            stack.service.seal_item(tenant_id, "vault-2", item_id, b"x", memory_scope=ALICE)
    items = reader.list_items(TENANT, VAULT, limit=1).cursor
    scoped = reader.list_items(TENANT, VAULT, scope=ALICE, limit=1).cursor
    vaults = reader.list_vaults(TENANT, limit=1).cursor
    assert items is not None
    assert scoped is not None
    assert vaults is not None
    assert len({items, scoped, vaults}) == 3

    refused: dict[str, Callable[[], object]] = {
        "another tenant's items cursor": lambda: reader.list_items(OTHER_TENANT, VAULT, cursor=items),
        "another vault's": lambda: reader.list_items(TENANT, "vault-2", cursor=items),
        "an unscoped cursor for a scope": lambda: reader.list_items(TENANT, VAULT, scope=ALICE, cursor=items),
        "a scope's cursor unscoped": lambda: reader.list_items(TENANT, VAULT, cursor=scoped),
        "another scope's": lambda: reader.list_items(TENANT, VAULT, scope=BOB, cursor=scoped),
        "another tenant's scope": lambda: reader.list_items(OTHER_TENANT, VAULT, scope=ALICE, cursor=scoped),
        "a vaults cursor for items": lambda: reader.list_items(TENANT, VAULT, cursor=vaults),
        "an items cursor for vaults": lambda: reader.list_vaults(TENANT, cursor=items),
        "another tenant's vaults cursor": lambda: reader.list_vaults(OTHER_TENANT, cursor=vaults),
    }
    for name, call in refused.items():
        with pytest.raises(InvalidRequestError) as raised:
            call()
        assert raised.value.details == {"field": "cursor"}, name
    # Each is accepted where it came from.
    assert [i.item_id for i in reader.list_items(TENANT, VAULT, cursor=items).items] == ["b", "c"]
    assert [i.item_id for i in reader.list_items(TENANT, VAULT, scope=ALICE, cursor=scoped).items] == [
        "b",
        "c",
    ]
    assert [v.vault_id for v in reader.list_vaults(TENANT, cursor=vaults).items] == ["vault-2", "vault-3"]


def test_cursors_name_the_listing_and_a_position_nothing_else() -> None:
    listing = Listing(TENANT, VAULT, ALICE)
    cursor = catalog.item_cursor(listing, catalog.ItemPosition("item-1", 7))
    padded = cursor + "=" * (-len(cursor) % 4)
    assert json.loads(base64.urlsafe_b64decode(padded)) == {
        "c": 1,
        "l": [TENANT, VAULT, "user:alice"],
        "p": ["item-1", 7],
    }
    assert catalog.item_position(cursor, listing) == catalog.ItemPosition("item-1", 7)
    assert catalog.item_position(None, listing) is None
    assert len(cursor) < MAX_CURSOR // 2


def test_a_refused_listing_changes_nothing(stack: MemoryStack, reader: InMemoryMetadataReader) -> None:
    _seal(stack, "a")
    before = copy.deepcopy((stack.vaults._vaults, stack.vaults._keys, stack.items._items))
    for cursor in GARBAGE_CURSORS.values():
        with pytest.raises(InvalidRequestError):
            reader.list_items(TENANT, VAULT, cursor=cursor)
    assert (stack.vaults._vaults, stack.vaults._keys, stack.items._items) == before
