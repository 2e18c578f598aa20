"""Forgetting a memory scope (``VaultService.forget_scope``) on the in-memory fakes: every live item of
the scope crypto-shredded with a signed receipt, nothing of any other scope, vault or tenant touched,
bounded work per call that resumes, idempotent on repeat, and typed refusals that change nothing."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest

from reliquary.contracts.encrypt import ShredResult
from reliquary.crypto.signing import SignatureAlgorithm
from reliquary.errors import InvalidRequestError, InvalidSignatureError, NotFoundError
from reliquary.vaults.models import MAX_FORGET_LIMIT, ItemRecord, MemoryKind, MemoryScope, ScopedItem
from reliquary.vaults.service import ForgetReport, ShredReceipt, VaultService, receipt_answer_bytes
from tests.support.vaults import T0, MemoryStack, memory_stack

TENANT, OTHER_TENANT, VAULT, OTHER_VAULT = "tenant-a", "tenant-b", "vault-1", "vault-2"
ALICE = MemoryScope(MemoryKind.USER, "alice")
BOB = MemoryScope(MemoryKind.USER, "bob")
ALICE_AGENT = MemoryScope(MemoryKind.AGENT, "alice")  # the same ref under another kind is another scope
LARGE = bytes(range(256)) * 20  # above memory_stack's 1 KiB threshold: the body goes to the blob store


@pytest.fixture
def stack() -> MemoryStack:
    stack = memory_stack()
    for tenant in (TENANT, OTHER_TENANT):
        stack.service.create_vault(tenant, VAULT)
    stack.service.create_vault(TENANT, OTHER_VAULT)
    return stack


def _seal(
    stack: MemoryStack,
    item_id: str,
    scope: MemoryScope,
    plaintext: bytes = b"a memory",
    *,
    tenant_id: str = TENANT,
    vault_id: str = VAULT,
    **kwargs: Any,
) -> ItemRecord:
    return stack.service.seal_item(tenant_id, vault_id, item_id, plaintext, memory_scope=scope, **kwargs)


def _live(stack: MemoryStack, tenant_id: str = TENANT, vault_id: str = VAULT) -> dict[str, list[int]]:
    """Item id -> the versions that still hold their envelope."""
    live: dict[str, list[int]] = {}
    for record in stack.items.scan_vault(tenant_id, vault_id):
        if not record.shredded:
            live.setdefault(record.item_id, []).append(record.version)
    return live


def _verify(service: VaultService, receipt: ShredReceipt) -> None:
    verifier = service.service_keys.keyring.get(
        receipt.signer_key_id, SignatureAlgorithm(receipt.signature_algorithm)
    )
    assert verifier is not None
    verifier.verify(receipt.signed_message(), receipt.signature)
    with pytest.raises(InvalidSignatureError):
        verifier.verify(replace(receipt, item_id="other").signed_message(), receipt.signature)


def _snapshot(stack: MemoryStack) -> tuple[Any, ...]:
    return copy.deepcopy((stack.vaults._vaults, stack.vaults._keys, stack.items._items, stack.blobs._blobs))


def test_forget_shreds_every_live_item_of_the_scope_and_nothing_else(stack: MemoryStack) -> None:
    _seal(stack, "note-1", ALICE)
    _seal(stack, "note-1", ALICE, b"version 2")
    large = _seal(stack, "diary", ALICE, LARGE)
    _seal(stack, "bob-note", BOB)
    _seal(stack, "agent-note", ALICE_AGENT)
    _seal(stack, "elsewhere", ALICE, vault_id=OTHER_VAULT)
    _seal(stack, "other-tenant", ALICE, tenant_id=OTHER_TENANT)
    stack.clock.advance(30)

    report = stack.service.forget_scope(TENANT, VAULT, ALICE)

    assert report.complete is True
    assert report.already_shredded == 0
    assert [(r.item_id, r.versions, r.shredded_at) for r in report.receipts] == [
        ("diary", (1,), T0 + 30),
        ("note-1", (1, 2), T0 + 30),
    ]
    for receipt in report.receipts:
        assert (receipt.tenant_id, receipt.vault_id) == (TENANT, VAULT)
        _verify(stack.service, receipt)
    assert large.blob_key is not None
    assert large.blob_key not in stack.blobs
    assert _live(stack) == {"bob-note": [1], "agent-note": [1]}
    assert _live(stack, vault_id=OTHER_VAULT) == {"elsewhere": [1]}
    assert _live(stack, tenant_id=OTHER_TENANT) == {"other-tenant": [1]}


def test_only_the_versions_of_the_scope_are_shredded(stack: MemoryStack) -> None:
    _seal(stack, "shared", ALICE)
    _seal(stack, "shared", BOB, b"bob's version of the same item")
    _seal(stack, "shared", ALICE, b"alice again")

    (receipt,) = stack.service.forget_scope(TENANT, VAULT, ALICE).receipts

    assert receipt.versions == (1, 3)
    assert _live(stack) == {"shared": [2]}
    _verify(stack.service, receipt)


def test_forget_is_bounded_by_its_limit_and_resumes(stack: MemoryStack) -> None:
    for n in range(5):
        _seal(stack, f"item-{n}", ALICE)

    reports: list[ForgetReport] = []
    while not reports or not reports[-1].complete:
        reports.append(stack.service.forget_scope(TENANT, VAULT, ALICE, limit=2))
        assert len(reports) <= 3

    assert [([r.item_id for r in x.receipts], x.already_shredded, x.complete) for x in reports] == [
        (["item-0", "item-1"], 0, False),
        (["item-2", "item-3"], 2, False),
        (["item-4"], 4, True),
    ]
    assert _live(stack) == {}


def test_forget_again_counts_what_is_shredded_and_shreds_nothing_twice(stack: MemoryStack) -> None:
    _seal(stack, "a", ALICE)
    _seal(stack, "b", ALICE, LARGE)
    first = stack.service.forget_scope(TENANT, VAULT, ALICE)
    stored = _snapshot(stack)
    stack.clock.advance(3600)

    again = stack.service.forget_scope(TENANT, VAULT, ALICE)

    assert (len(first.receipts), first.already_shredded, first.complete) == (2, 0, True)
    assert (again.receipts, again.already_shredded, again.complete) == ((), 2, True)
    assert _snapshot(stack) == stored  # no tombstone re-dated, nothing written
    # A new live version of a forgotten item is forgotten by the next call, with every version named.
    _seal(stack, "a", ALICE, b"remembered again")
    (receipt,) = stack.service.forget_scope(TENANT, VAULT, ALICE).receipts
    assert (receipt.item_id, receipt.versions, receipt.shredded_at) == ("a", (1, 2), T0 + 3600)


def test_an_expired_item_not_swept_yet_is_forgotten_too(stack: MemoryStack) -> None:
    _seal(stack, "short-lived", ALICE, expires_at=T0 + 10)
    stack.clock.advance(60)

    report = stack.service.forget_scope(TENANT, VAULT, ALICE)

    assert [r.item_id for r in report.receipts] == ["short-lived"]
    assert _live(stack) == {}


def test_an_index_that_lags_a_shred_is_checked_against_the_items(stack: MemoryStack) -> None:
    """The scope index may still list as live an item shredded a moment ago: the item is re-read and
    counted as already shredded, with no receipt and nothing written."""
    _seal(stack, "a", ALICE)
    _seal(stack, "b", ALICE)
    stack.service.shred_item(TENANT, VAULT, "a")
    stale = [ScopedItem("a", live=True), ScopedItem("b", live=True)]

    def lagging(tenant_id: str, vault_id: str, scope: MemoryScope) -> Iterator[ScopedItem]:
        assert (tenant_id, vault_id, scope) == (TENANT, VAULT, ALICE)
        yield from stale

    stack.items.scope_items = lagging  # type: ignore[method-assign]
    shredded_at = stack.items.get(TENANT, VAULT, "a").shredded_at
    stack.clock.advance(60)

    report = stack.service.forget_scope(TENANT, VAULT, ALICE)

    assert ([r.item_id for r in report.receipts], report.already_shredded) == (["b"], 1)
    assert stack.items.get(TENANT, VAULT, "a").shredded_at == shredded_at


def test_a_call_stops_at_its_time_budget_after_at_least_one_item(stack: MemoryStack) -> None:
    for n in range(5):
        _seal(stack, f"item-{n}", ALICE)
    ticks = iter(range(100))
    service = stack.service
    service._monotonic = lambda: float(next(ticks))  # one second per look at the clock
    service._forget_budget = 2.5

    first = service.forget_scope(TENANT, VAULT, ALICE)
    service._forget_budget = 0.0  # a budget already spent still shreds one item: every call progresses
    second = service.forget_scope(TENANT, VAULT, ALICE)

    # Budget 2.5 s from t=0: items at t=1 and t=2 still start, the one at t=3 waits for the next call.
    assert ([r.item_id for r in first.receipts], first.complete) == (["item-0", "item-1", "item-2"], False)
    assert ([r.item_id for r in second.receipts], second.complete) == (["item-3"], False)


@pytest.mark.parametrize("algorithm", [SignatureAlgorithm.ML_DSA_65, SignatureAlgorithm.ED25519])
def test_a_call_stops_before_its_receipts_outgrow_the_answer(algorithm: SignatureAlgorithm) -> None:
    """The answer is stored whole as an idempotency record (DynamoDB items hold at most 400 KB), so a
    call stops once its receipts weigh ``forget_answer_bytes``; the estimate never undercounts."""
    stack = memory_stack(algorithm=algorithm)
    stack.service.create_vault(TENANT, VAULT)
    for n in range(6):
        _seal(stack, f"item-{n}", ALICE)
        _seal(stack, f"item-{n}", ALICE, b"second version")
    one = stack.service.forget_scope(TENANT, VAULT, ALICE, limit=1).receipts[0]
    size = receipt_answer_bytes(one)
    answer = ShredResult(
        item_id=one.item_id,
        versions=list(one.versions),
        shredded_at=one.shredded_at,
        signer_key_id=one.signer_key_id.hex(),
        signature_algorithm=one.signature_algorithm,
        signature=one.signature,
    )
    assert len(answer.model_dump_json()) <= size < len(answer.model_dump_json()) + 300
    stack.service._forget_answer_bytes = 3 * size

    report = stack.service.forget_scope(TENANT, VAULT, ALICE)

    # Three receipts fill the budget: the fourth would pass it.
    assert ([r.item_id for r in report.receipts], report.complete) == (["item-1", "item-2", "item-3"], False)


def test_an_empty_scope_is_complete_at_once(stack: MemoryStack) -> None:
    _seal(stack, "bob-note", BOB)
    assert stack.service.forget_scope(TENANT, VAULT, ALICE) == ForgetReport((), 0, complete=True)


@pytest.mark.parametrize(
    ("tenant_id", "vault_id"),
    [(TENANT, "no-such-vault"), ("no-such-tenant", VAULT)],
)
def test_a_vault_the_tenant_does_not_have_is_not_found(
    stack: MemoryStack, tenant_id: str, vault_id: str
) -> None:
    _seal(stack, "a", ALICE)
    stored = _snapshot(stack)
    with pytest.raises(NotFoundError) as raised:
        stack.service.forget_scope(tenant_id, vault_id, ALICE)
    assert raised.value.details == {"vault_id": vault_id}
    assert _snapshot(stack) == stored


def test_another_tenants_vault_of_the_same_name_is_never_reached(stack: MemoryStack) -> None:
    _seal(stack, "theirs", ALICE, tenant_id=OTHER_TENANT)
    report = stack.service.forget_scope(TENANT, VAULT, ALICE)
    assert report == ForgetReport((), 0, complete=True)
    assert _live(stack, tenant_id=OTHER_TENANT) == {"theirs": [1]}


@pytest.mark.parametrize("limit", [0, -1, MAX_FORGET_LIMIT + 1, True, 2.0, "5", None])
def test_a_bad_limit_is_refused_and_changes_nothing(stack: MemoryStack, limit: Any) -> None:
    _seal(stack, "a", ALICE)
    stored = _snapshot(stack)
    with pytest.raises(InvalidRequestError) as raised:
        stack.service.forget_scope(TENANT, VAULT, ALICE, limit=limit)
    assert raised.value.details == {"field": "limit"}
    assert _snapshot(stack) == stored


@pytest.mark.parametrize(
    ("tenant_id", "vault_id"), [("bad#tenant", VAULT), (TENANT, "vault#x"), ("", VAULT), (TENANT, "v" * 129)]
)
def test_malformed_ids_are_refused_before_anything_is_read(
    stack: MemoryStack, tenant_id: str, vault_id: str
) -> None:
    stored = _snapshot(stack)
    with pytest.raises(InvalidRequestError):
        stack.service.forget_scope(tenant_id, vault_id, ALICE)
    assert _snapshot(stack) == stored


@pytest.mark.parametrize("ref", ["", "a#b", "x" * 129, "caf\u00e9"])
def test_a_malformed_scope_cannot_be_built(ref: str) -> None:
    with pytest.raises(InvalidRequestError):
        MemoryScope(MemoryKind.USER, ref)
