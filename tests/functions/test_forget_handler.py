"""The encrypt function's ``forget`` action through its handler (``events/encrypt/forget.json``) against
moto: a memory scope crypto-shredded item by item with signed receipts, bounded calls that resume,
idempotent on a reused request id and on repeat, and refusals (malformed events, another tenant, an
unknown vault) that come back as typed errors and shred nothing."""

from __future__ import annotations

import base64
import json
import os
from typing import Any

from reliquary.adapters.factory import build_vault_service
from reliquary.crypto.signing import SignatureAlgorithm
from reliquary.vaults.models import MAX_FORGET_LIMIT
from reliquary.vaults.service import shred_message
from tests.functions.conftest import Invoke
from tests.functions.test_encrypt_handler import (
    ITEM,
    TENANT,
    VAULT,
    assert_clean,
    b64,
    each_case,
    error,
    item_versions,
    load_event,
    ok,
)
from tests.support.aws import AwsStack

CUSTOMER = {"kind": "user", "ref": "customer-42"}  # the scope of the sample seal and forget events
OTHER_CUSTOMER = {"kind": "user", "ref": "customer-43"}


def _seal(encrypt: Invoke, item_id: str, scope: dict[str, str] = CUSTOMER, **changes: Any) -> dict[str, Any]:
    event = load_event("seal", request_id=f"seal-{item_id}-{os.urandom(4).hex()}", item_id=item_id)
    return ok(encrypt({**event, "memory_scope": scope, **changes}), "seal")


def _forget(encrypt: Invoke, request_id: str, **changes: Any) -> dict[str, Any]:
    return ok(encrypt(load_event("forget", request_id=request_id, **changes)), "forget")


def _live_items(aws: AwsStack, *item_ids: str) -> dict[str, list[int]]:
    """Item id -> the versions that still hold their envelope, read straight from the table."""
    return {i: [v.version for v in item_versions(aws, i) if v.has_envelope] for i in item_ids}


def test_the_sample_forget_shreds_the_customers_items_with_a_receipt_each(
    encrypt: Invoke, aws: AwsStack
) -> None:
    ok(encrypt(load_event("create_vault")), "create_vault")
    ok(encrypt(load_event("seal")), "seal")  # the sample note, in customer-42's scope
    _seal(encrypt, ITEM)  # its version 2
    large = _seal(
        encrypt, "customer-42-upload", plaintext=b64(os.urandom(aws.settings.large_item_threshold + 64))
    )
    assert large["body_location"] == "s3"
    (blob,) = item_versions(aws, "customer-42-upload")
    _seal(encrypt, "customer-43-notes", OTHER_CUSTOMER)
    _seal(encrypt, "shared-notes", OTHER_CUSTOMER)
    _seal(encrypt, "shared-notes")  # version 2 is customer-42's

    result = ok(encrypt(load_event("forget")), "forget")

    assert (result["shredded"], result["already_shredded"], result["complete"]) == (3, 0, True)
    receipts = {r["item_id"]: r for r in result["receipts"]}
    assert {i: r["versions"] for i, r in receipts.items()} == {
        ITEM: [1, 2],
        "customer-42-upload": [1],
        "shared-notes": [2],
    }
    keyring = build_vault_service(aws.settings).service_keys.keyring
    for item_id, receipt in receipts.items():
        assert receipt["signature_algorithm"] == aws.settings.signature_algorithm
        keyring.verify(
            bytes.fromhex(receipt["signer_key_id"]),
            SignatureAlgorithm(receipt["signature_algorithm"]),
            shred_message(TENANT, VAULT, item_id, receipt["versions"], receipt["shredded_at"]),
            base64.b64decode(receipt["signature"]),
        )
    assert _live_items(aws, ITEM, "customer-42-upload", "customer-43-notes", "shared-notes") == {
        ITEM: [],
        "customer-42-upload": [],
        "customer-43-notes": [1],
        "shared-notes": [1],
    }
    assert blob.blob_key is not None
    listing = aws.s3.list_object_versions(Bucket=aws.settings.items_bucket, Prefix=blob.blob_key)
    assert not listing.get("Versions")

    # The same request again: the stored result. A new request: nothing left, everything counted.
    assert ok(encrypt(load_event("forget")), "forget") == result
    again = _forget(encrypt, "req-forget-again")
    assert again == {"receipts": [], "shredded": 0, "already_shredded": 3, "complete": True}


def test_forget_is_bounded_per_call_and_resumes_with_a_new_request_id(encrypt: Invoke, aws: AwsStack) -> None:
    ok(encrypt(load_event("create_vault")), "create_vault")
    items = [f"memory-{n}" for n in range(5)]
    for item_id in items:
        _seal(encrypt, item_id)

    calls = [_forget(encrypt, f"req-forget-{n}", limit=2) for n in range(3)]

    assert [([r["item_id"] for r in c["receipts"]], c["already_shredded"], c["complete"]) for c in calls] == [
        (items[0:2], 0, False),
        (items[2:4], 2, False),
        (items[4:5], 4, True),
    ]
    assert _live_items(aws, *items) == {item_id: [] for item_id in items}


def test_a_large_scope_is_forgotten_in_answers_the_idempotency_table_can_store(
    encrypt: Invoke, aws: AwsStack
) -> None:
    """Regression: 120 ML-DSA-65 receipts (4.7 KB each) in one answer outgrew DynamoDB's 400 KB item
    limit, so the idempotency record could not be stored: the call failed as transient after shredding,
    and its receipts were lost. Now a call stops at 256 KiB of receipts, and its answer is stored."""
    ok(encrypt(load_event("create_vault")), "create_vault")
    items = [f"memory-{n:03d}" for n in range(70)]
    for item_id in items:
        _seal(encrypt, item_id)

    first = encrypt(load_event("forget"))
    result = ok(first, "forget")
    assert 0 < result["shredded"] < len(items)
    assert result["complete"] is False
    assert len(json.dumps(first)) < 300_000
    assert encrypt(load_event("forget")) == first  # stored, so a retry gets the same receipts
    rest = _forget(encrypt, "req-forget-rest")
    assert (rest["shredded"], rest["already_shredded"], rest["complete"]) == (
        len(items) - result["shredded"],
        result["shredded"],
        True,
    )
    assert [r["item_id"] for r in result["receipts"] + rest["receipts"]] == items


def test_a_reused_request_id_with_another_limit_or_scope_is_a_conflict(
    encrypt: Invoke, aws: AwsStack
) -> None:
    ok(encrypt(load_event("create_vault")), "create_vault")
    _seal(encrypt, "a")
    _seal(encrypt, "b", OTHER_CUSTOMER)
    ok(encrypt(load_event("forget", limit=1)), "forget")
    for changes in ({"limit": 2}, {"memory_scope": OTHER_CUSTOMER}, {"vault_id": "agent-memory-2"}):
        error(encrypt(load_event("forget", limit=1) | changes), "idempotency_conflict")
    assert _live_items(aws, "a", "b") == {"a": [], "b": [1]}


def _without(*fields: str) -> dict[str, Any]:
    event = load_event("forget")
    for field in fields:
        del event[field]
    return event


INVALID_FORGETS: dict[str, Any] = {
    "missing memory_scope": _without("memory_scope"),
    "missing vault_id": _without("vault_id"),
    "missing tenant_id": _without("tenant_id"),
    "missing request_id": _without("request_id"),
    "memory_scope not an object": load_event("forget", memory_scope="user:customer-42"),
    "memory_scope without ref": load_event("forget", memory_scope={"kind": "user"}),
    "unknown scope kind": load_event("forget", memory_scope={"kind": "tenant", "ref": "customer-42"}),
    "scope ref with #": load_event("forget", memory_scope={"kind": "user", "ref": "customer-42#SCOPE#x"}),
    "scope ref too long": load_event("forget", memory_scope={"kind": "user", "ref": "c" * 129}),
    "extra field in memory_scope": load_event("forget", memory_scope={**CUSTOMER, "all": True}),
    "extra field": load_event("forget", everything=True),
    "an item id (forget takes a scope)": load_event("forget", item_id=ITEM),
    "limit 0": load_event("forget", limit=0),
    "limit negative": load_event("forget", limit=-5),
    "limit above the maximum": load_event("forget", limit=MAX_FORGET_LIMIT + 1),
    "limit as text": load_event("forget", limit="10"),
    "limit a float": load_event("forget", limit=2.5),
    "limit null": load_event("forget", limit=None),
    "limit true": load_event("forget", limit=True),
    "limit a whole float": load_event("forget", limit=2.0),
    "vault id with #": load_event("forget", vault_id="agent-memory#SCOPE#user"),
    "tenant id with #": load_event("forget", tenant_id="acme#VAULT#agent-memory"),
}


def test_bad_forget_events_are_refused_and_shred_nothing(encrypt: Invoke, aws: AwsStack) -> None:
    ok(encrypt(load_event("create_vault")), "create_vault")
    ok(encrypt(load_event("seal")), "seal")

    def check(event: dict[str, Any]) -> None:
        payload = encrypt(event)
        error(payload, "invalid_request")
        assert payload["action"] == "forget"
        assert_clean(payload, "customer-42#SCOPE#x", "c" * 129, "user:customer-42")

    each_case(INVALID_FORGETS, check)
    assert _live_items(aws, ITEM) == {ITEM: [1]}


def test_another_tenant_or_an_unknown_vault_is_not_found_and_shreds_nothing(
    encrypt: Invoke, aws: AwsStack
) -> None:
    ok(encrypt(load_event("create_vault")), "create_vault")
    ok(encrypt(load_event("seal")), "seal")
    ok(encrypt(load_event("create_vault", request_id="req-other-vault", tenant_id="other")), "create_vault")
    cases = {
        "another tenant's vault of the same name": load_event("forget", tenant_id="other"),
        "a tenant without that vault": load_event("forget", tenant_id="nobody"),
        "an unknown vault": load_event("forget", vault_id="no-such-vault"),
    }

    def check(event: dict[str, Any]) -> None:
        if event["tenant_id"] == "other":
            # The other tenant's vault exists and is empty of this scope: nothing of acme's is reached.
            result = ok(encrypt(event), "forget")
            assert result == {"receipts": [], "shredded": 0, "already_shredded": 0, "complete": True}
            return
        body = error(encrypt(event), "not_found")
        assert body["details"] == {"vault_id": event["vault_id"]}

    each_case(cases, check)
    assert _live_items(aws, ITEM) == {ITEM: [1]}
