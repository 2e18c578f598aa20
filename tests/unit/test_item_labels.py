"""Sensitivity labels: set per item version at seal (``restricted`` unless the caller says otherwise),
refused with nothing written when unknown, kept by a rewrap, and read back through the trust stage's
read-only ``ItemCatalog`` (the in-memory fake here; tests/integration/test_item_catalog_moto.py holds the
DynamoDB adapter to the same answers). No AWS."""

from __future__ import annotations

import copy
from dataclasses import replace
from typing import Any, get_args

import pytest
from pydantic import ValidationError

from reliquary.actions.encrypt import run_encrypt_action
from reliquary.contracts.encrypt import SealRequest
from reliquary.errors import (
    InvalidRequestError,
    ItemExpiredError,
    ItemShreddedError,
    NotFoundError,
    ReliquaryError,
)
from reliquary.trust.facts import SENSITIVITIES as TRUST_SENSITIVITIES
from reliquary.trust.facts import Sensitivity as TrustSensitivity
from reliquary.vaults import labels
from reliquary.vaults.labels import SENSITIVITIES, ItemLabel, parse_sensitivity, stored_sensitivity
from reliquary.vaults.memory import InMemoryItemCatalog
from reliquary.vaults.models import ItemRecord
from reliquary.vaults.service import VaultService
from tests.support.vaults import T0, USER_SCOPE, MemoryStack, memory_stack

TENANT, VAULT, ITEM = "tenant-a", "vault-1", "note"
NOTE = b"the cat is called Quantum"


@pytest.fixture
def stack() -> MemoryStack:
    stack = memory_stack()
    stack.service.create_vault(TENANT, VAULT)
    return stack


@pytest.fixture
def catalog(stack: MemoryStack) -> InMemoryItemCatalog:
    return InMemoryItemCatalog(stack.items, clock=stack.clock)


def _seal(service: VaultService, item_id: str = ITEM, **kwargs: Any) -> ItemRecord:
    return service.seal_item(TENANT, VAULT, item_id, NOTE, memory_scope=USER_SCOPE, **kwargs)


def _stored(stack: MemoryStack) -> Any:
    return copy.deepcopy((stack.vaults._keys, stack.items._items, stack.blobs._blobs))


# --- the values ----------------------------------------------------------------------------------------
def test_the_labels_are_the_sensitivities_trust_scores() -> None:
    assert get_args(labels.Sensitivity) == get_args(TrustSensitivity) == TRUST_SENSITIVITIES
    assert labels.SENSITIVITIES == TRUST_SENSITIVITIES
    assert labels.DEFAULT_SENSITIVITY == "restricted" == SENSITIVITIES[-1]  # fail closed: the strictest


@pytest.mark.parametrize("bad", ["secret", "Public", "RESTRICTED", "", " public", "public\x00", None, 0, 1.0])
def test_parse_sensitivity_refuses_anything_but_a_label_without_echoing_it(bad: object) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        parse_sensitivity(bad)
    assert caught.value.details == {"field": "sensitivity"}
    assert caught.value.message == "sensitivity is one of public, internal, confidential, restricted"


def test_parse_sensitivity_refuses_unhashable_values() -> None:
    with pytest.raises(InvalidRequestError):
        parse_sensitivity(["public"])


@pytest.mark.parametrize("stored", [None, "", "secret", "Public", 3, ["public"]])
def test_a_stored_label_this_build_does_not_know_reads_as_restricted(stored: object) -> None:
    assert stored_sensitivity(stored) == "restricted"


@pytest.mark.parametrize("label", SENSITIVITIES)
def test_a_stored_known_label_reads_as_itself(label: str) -> None:
    assert stored_sensitivity(label) == label


def test_an_item_record_never_carries_an_unknown_label(stack: MemoryStack) -> None:
    record = _seal(stack.service)
    with pytest.raises(InvalidRequestError):
        replace(record, sensitivity="secret")  # type: ignore[arg-type]


# --- sealing -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("label", SENSITIVITIES)
def test_each_label_is_stored_with_the_version_and_read_back(
    stack: MemoryStack, catalog: InMemoryItemCatalog, label: labels.Sensitivity
) -> None:
    record = _seal(stack.service, sensitivity=label)
    assert record.sensitivity == label
    assert stack.items.get(TENANT, VAULT, ITEM, 1).sensitivity == label
    assert catalog.label(TENANT, VAULT, ITEM) == ItemLabel(version=1, sensitivity=label)


def test_an_unlabelled_seal_is_restricted(stack: MemoryStack, catalog: InMemoryItemCatalog) -> None:
    assert _seal(stack.service).sensitivity == "restricted"
    assert catalog.label(TENANT, VAULT, ITEM) == ItemLabel(1, "restricted")


@pytest.mark.parametrize("bad", ["secret", "Public", "", None, 2, ["public"]])
def test_an_unknown_label_is_refused_and_nothing_is_written(stack: MemoryStack, bad: Any) -> None:
    before = _stored(stack)
    with pytest.raises(InvalidRequestError) as caught:
        _seal(stack.service, sensitivity=bad)
    assert caught.value.code == "invalid_request"
    assert caught.value.details == {"field": "sensitivity"}
    # Large items too: the refusal comes before the body would be written to the blob store.
    with pytest.raises(InvalidRequestError):
        stack.service.seal_item(TENANT, VAULT, ITEM, bytes(4096), memory_scope=USER_SCOPE, sensitivity=bad)
    assert _stored(stack) == before


def test_each_version_carries_its_own_label(stack: MemoryStack, catalog: InMemoryItemCatalog) -> None:
    _seal(stack.service, sensitivity="public")
    assert catalog.label(TENANT, VAULT, ITEM) == ItemLabel(1, "public")
    _seal(stack.service, sensitivity="confidential")
    assert catalog.label(TENANT, VAULT, ITEM) == ItemLabel(2, "confidential")
    _seal(stack.service)
    assert catalog.label(TENANT, VAULT, ITEM) == ItemLabel(3, "restricted")
    versions = stack.items.versions(TENANT, VAULT, ITEM)
    assert [(r.version, r.sensitivity) for r in versions] == [
        (1, "public"),
        (2, "confidential"),
        (3, "restricted"),
    ]


def test_a_rewrap_keeps_each_versions_label(stack: MemoryStack, catalog: InMemoryItemCatalog) -> None:
    _seal(stack.service, sensitivity="internal")
    _seal(stack.service, "other", sensitivity="public")
    stack.service.rotate_key(TENANT, VAULT)
    assert stack.service.rewrap_vault(TENANT, VAULT).rewrapped == 2
    note, other = stack.items.get(TENANT, VAULT, ITEM), stack.items.get(TENANT, VAULT, "other")
    assert (note.wrap_key_version, note.sensitivity) == (2, "internal")
    assert (other.wrap_key_version, other.sensitivity) == (2, "public")
    assert catalog.label(TENANT, VAULT, ITEM) == ItemLabel(1, "internal")


def test_the_seal_action_passes_the_requests_label(stack: MemoryStack) -> None:
    fields = {
        "action": "seal",
        "request_id": "req-1",
        "tenant_id": TENANT,
        "vault_id": VAULT,
        "item_id": ITEM,
        "plaintext": "bm90ZQ==",
        "memory_scope": {"kind": "user", "ref": "user-1"},
    }
    assert SealRequest.model_validate(fields).sensitivity == "restricted"
    run_encrypt_action(stack.service, SealRequest.model_validate({**fields, "sensitivity": "internal"}))
    assert stack.items.get(TENANT, VAULT, ITEM).sensitivity == "internal"
    for bad in ("secret", "Internal", None, 1):
        with pytest.raises(ValidationError) as caught:
            SealRequest.model_validate({**fields, "sensitivity": bad})
        assert [e["loc"] for e in caught.value.errors()] == [("sensitivity",)]


# --- the catalog ---------------------------------------------------------------------------------------
def test_missing_items_vaults_and_tenants_are_not_found(
    stack: MemoryStack, catalog: InMemoryItemCatalog
) -> None:
    _seal(stack.service)
    for tenant_id, vault_id, item_id in [
        (TENANT, VAULT, "absent"),
        (TENANT, "vault-2", ITEM),
        ("tenant-b", VAULT, ITEM),
    ]:
        with pytest.raises(NotFoundError) as caught:
            catalog.label(tenant_id, vault_id, item_id)
        assert caught.value.code == "not_found"


@pytest.mark.parametrize("bad", ["", "a#b", "a/b", "x" * 129, "new\nline"])
def test_malformed_ids_are_refused_before_any_read(catalog: InMemoryItemCatalog, bad: str) -> None:
    for ids in [(bad, VAULT, ITEM), (TENANT, bad, ITEM), (TENANT, VAULT, bad)]:
        with pytest.raises(InvalidRequestError):
            catalog.label(*ids)


def _vault_refusal(service: VaultService, item_id: str = ITEM) -> type[ReliquaryError] | None:
    """What the vault service says when asked to open the item's latest version (None: it opens)."""
    try:
        service.load_envelope(TENANT, VAULT, item_id)
    except ReliquaryError as exc:
        return type(exc)
    return None


def test_a_shredded_item_has_no_label(stack: MemoryStack, catalog: InMemoryItemCatalog) -> None:
    _seal(stack.service, sensitivity="public")
    _seal(stack.service, sensitivity="public")
    stack.service.shred_item(TENANT, VAULT, ITEM)
    with pytest.raises(ItemShreddedError) as caught:
        catalog.label(TENANT, VAULT, ITEM)
    assert type(caught.value) is ItemShreddedError
    assert caught.value.code == "item_shredded"
    assert _vault_refusal(stack.service) is ItemShreddedError


def test_an_expired_item_has_no_label_before_and_after_the_sweep(
    stack: MemoryStack, catalog: InMemoryItemCatalog
) -> None:
    _seal(stack.service, sensitivity="public", expires_at=T0 + 60)
    stack.clock.advance(59)
    assert catalog.label(TENANT, VAULT, ITEM) == ItemLabel(1, "public")
    stack.clock.advance(1)
    with pytest.raises(ItemExpiredError) as caught:  # refused at once, as a grant is
        catalog.label(TENANT, VAULT, ITEM)
    assert caught.value.code == "item_expired"
    assert _vault_refusal(stack.service) is ItemExpiredError
    stack.service.expire_due(TENANT, VAULT)
    with pytest.raises(ItemShreddedError):  # the sweep shreds it: a tombstone without expiry
        catalog.label(TENANT, VAULT, ITEM)
    assert _vault_refusal(stack.service) is ItemShreddedError


def test_the_label_is_the_latest_versions_even_when_an_older_one_lives(
    stack: MemoryStack, catalog: InMemoryItemCatalog
) -> None:
    _seal(stack.service, sensitivity="public")
    _seal(stack.service, sensitivity="confidential", expires_at=T0 + 60)
    stack.clock.advance(60)
    with pytest.raises(ItemExpiredError):
        catalog.label(TENANT, VAULT, ITEM)
    assert _vault_refusal(stack.service) is ItemExpiredError


def test_a_version_sealed_after_a_shred_has_its_own_label(
    stack: MemoryStack, catalog: InMemoryItemCatalog
) -> None:
    _seal(stack.service, sensitivity="public")
    stack.service.shred_item(TENANT, VAULT, ITEM)
    _seal(stack.service, sensitivity="internal")
    assert catalog.label(TENANT, VAULT, ITEM) == ItemLabel(2, "internal")
    assert _vault_refusal(stack.service) is None
