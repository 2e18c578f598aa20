"""The encrypt function's ``sealed_item`` action through its handler (``events/encrypt/sealed_item.json``)
against moto: the sealed item an approved request's grant opens, released under exactly the approval check
of ``grant`` (the decision logged for this request, vault, item and requester key, with its attestation
chain), the body attached even when it is stored in S3, never stored for a retry, and refused (typed,
nothing released) for every request without that approval. The largest item the seal limit allows
comes back within Lambda's 6 MB synchronous answer; one sealed under a limit raised past that is refused,
typed (`payload_too_large`), never a failed answer."""

from __future__ import annotations

import base64
import json
import os
import time
from typing import Any

from reliquary.adapters.factory import build_vault_service
from reliquary.crypto.grants import open_grant
from reliquary.crypto.kem import HybridPrivateKey
from reliquary.flow.state import FlowState
from reliquary.vaults.models import MemoryKind, MemoryScope
from reliquary.vaults.service import LAMBDA_ANSWER_BYTES, MAX_RELEASED_ENVELOPE_BYTES
from tests.functions.conftest import Invoke
from tests.functions.test_encrypt_handler import (
    ITEM,
    PLAINTEXT,
    TENANT,
    VAULT,
    approve,
    assert_clean,
    b64,
    each_case,
    error,
    flow_request,
    grant_event,
    load_event,
    log_decisions,
    ok,
)
from tests.support.attested import Attester
from tests.support.aws import AwsStack


def _sealed_event(requester: HybridPrivateKey, **overrides: Any) -> dict[str, Any]:
    return load_event("sealed_item", requester_public_key=b64(requester.public_key().to_bytes()), **overrides)


def _setup(encrypt: Invoke) -> None:
    ok(encrypt(load_event("create_vault")), "create_vault")
    ok(encrypt(load_event("seal")), "seal")


def test_the_sealed_item_of_an_approved_request_opens_with_its_grant(encrypt: Invoke, aws: AwsStack) -> None:
    _setup(encrypt)
    requester = HybridPrivateKey.generate()
    grant = grant_event(requester)
    approve(aws, grant)
    granted = ok(encrypt(grant), "grant")
    sealed = ok(encrypt(_sealed_event(requester)), "sealed_item")
    assert set(sealed) == {"envelope", "item_id", "version", "content_type"}
    assert (sealed["item_id"], sealed["version"]) == (ITEM, granted["version"])
    assert sealed["content_type"] == load_event("seal")["content_type"]
    service = build_vault_service(aws.settings)
    opened = open_grant(
        base64.b64decode(granted["grant"]),
        base64.b64decode(sealed["envelope"]),
        requester_private_key=requester,
        service_keys=service.service_keys.keyring,
        now=int(time.time()),
        request_id=grant["request_id"],
        expected=(TENANT, VAULT, ITEM),
    )
    assert opened == PLAINTEXT
    # Read-only: asked again it answers afresh (the same envelope), and nothing was stored for a retry.
    assert ok(encrypt(_sealed_event(requester)), "sealed_item") == sealed
    stored = aws.dynamodb.scan(TableName=aws.tables["IdempotencyTable"])["Items"]
    assert len(stored) == 3  # create_vault, seal and the grant


def test_a_large_items_body_comes_from_s3_attached(encrypt: Invoke, aws: AwsStack) -> None:
    ok(encrypt(load_event("create_vault")), "create_vault")
    body = os.urandom(300 * 1024)  # over the inline limit: stored in S3
    ok(encrypt(load_event("seal", plaintext=b64(body))), "seal")
    requester = HybridPrivateKey.generate()
    grant = grant_event(requester)
    approve(aws, grant)
    granted = ok(encrypt(grant), "grant")
    sealed = ok(encrypt(_sealed_event(requester)), "sealed_item")
    service = build_vault_service(aws.settings)
    opened = open_grant(
        base64.b64decode(granted["grant"]),
        base64.b64decode(sealed["envelope"]),
        requester_private_key=requester,
        service_keys=service.service_keys.keyring,
        now=int(time.time()),
    )
    assert opened == body


def test_without_the_approval_of_its_request_nothing_is_released(encrypt: Invoke, aws: AwsStack) -> None:
    _setup(encrypt)
    requester, stranger = HybridPrivateKey.generate(), HybridPrivateKey.generate()
    attester = Attester(aws.settings, aws.dynamodb)
    denial = FlowState.model_validate(
        {
            **flow_request(grant_event(requester, request_id="access-deny")),
            "decision": {"decision": "deny", "reasons": ["quorum 1 of 3"], "policy_version": "9b" * 32},
        }
    )
    log_decisions(
        aws,
        denial,
        attester.approved(flow_request(grant_event(stranger, request_id="access-key"))),
        attester.approved(
            flow_request(grant_event(requester, request_id="access-item"), item_id="customer-43-notes")
        ),
    )
    cases = {
        "nothing logged": (
            _sealed_event(requester, request_id="access-none"),
            "no access decision is logged for this request",
        ),
        "a denial": (
            _sealed_event(requester, request_id="access-deny"),
            "the access decision logged for this request is not an approval",
        ),
        "another requester key": (
            _sealed_event(requester, request_id="access-key"),
            "the access decision logged for this request is for another requester key",
        ),
        "another item": (
            _sealed_event(requester, request_id="access-item"),
            "the access decision logged for this request is for another item",
        ),
    }

    def check(case: tuple[dict[str, Any], str]) -> None:
        event, message = case
        body = error(encrypt(event), "decision_required")
        assert body["message"] == message
        assert body["details"] == {"request_id": event["request_id"]}
        assert "envelope" not in assert_clean(body)

    each_case(cases, check)


def test_malformed_events_are_refused(encrypt: Invoke) -> None:
    _setup(encrypt)
    requester = HybridPrivateKey.generate()
    for changes in (
        {"requester_public_key": "not base64!"},
        {"item_id": "../other"},
        {"version": 1},  # no version: the approval names it
    ):
        error(encrypt({**_sealed_event(requester), **changes}), "invalid_request")


def _seal_directly(aws: AwsStack, size: int) -> bytes:
    """An item of ``size`` bytes sealed into the vault by a service whose seal limit allows it (as one
    configured with a larger ``max_item_bytes`` would have)."""
    body = os.urandom(size)
    roomy = aws.settings.model_copy(update={"max_item_bytes": 8 * 1024 * 1024})
    build_vault_service(roomy).seal_item(
        TENANT, VAULT, ITEM, body, memory_scope=MemoryScope(MemoryKind.USER, "customer-42")
    )
    return body


def test_the_largest_item_the_seal_limit_allows_is_released_within_a_lambda_answer(
    encrypt: Invoke, aws: AwsStack
) -> None:
    ok(encrypt(load_event("create_vault")), "create_vault")
    largest = aws.settings.max_item_bytes
    body = os.urandom(largest)
    ok(encrypt(load_event("seal", plaintext=b64(body))), "seal")
    one_more = load_event("seal", plaintext=b64(body + b"x"), request_id="seal-one-byte-more")
    assert error(encrypt(one_more), "payload_too_large")["details"] == {"size": largest + 1}
    requester = HybridPrivateKey.generate()
    grant = grant_event(requester)
    approve(aws, grant)
    granted = ok(encrypt(grant), "grant")
    answer = encrypt(_sealed_event(requester))
    sealed = ok(answer, "sealed_item")
    # The function's whole answer, as Lambda serialises it, fits its 6 MB synchronous limit.
    assert len(json.dumps(answer).encode()) < LAMBDA_ANSWER_BYTES
    assert len(base64.b64decode(sealed["envelope"])) <= MAX_RELEASED_ENVELOPE_BYTES
    service = build_vault_service(aws.settings)
    opened = open_grant(
        base64.b64decode(granted["grant"]),
        base64.b64decode(sealed["envelope"]),
        requester_private_key=requester,
        service_keys=service.service_keys.keyring,
        now=int(time.time()),
    )
    assert opened == body


def test_an_item_too_large_for_a_lambda_answer_is_refused_typed(encrypt: Invoke, aws: AwsStack) -> None:
    ok(encrypt(load_event("create_vault")), "create_vault")
    _seal_directly(aws, MAX_RELEASED_ENVELOPE_BYTES)  # with the envelope's own bytes, past the limit
    requester = HybridPrivateKey.generate()
    grant = grant_event(requester)
    approve(aws, grant)
    ok(encrypt(grant), "grant")  # the grant itself is small: issued as ever
    body = error(encrypt(_sealed_event(requester)), "payload_too_large")
    assert body["message"] == "the sealed item is too large to be released through the API"
    assert body["details"]["limit"] == MAX_RELEASED_ENVELOPE_BYTES
    assert body["details"]["size"] > MAX_RELEASED_ENVELOPE_BYTES
    assert "envelope" not in assert_clean(body)
