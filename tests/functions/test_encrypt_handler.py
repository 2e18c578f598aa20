"""The encrypt function's handler, driven with the sample events in events/encrypt/ against moto.

Contract under test: deterministic failures come back as ``{"status": "error", "error": {...}}`` with no
stack trace and no plaintext; transient failures raise (Step Functions retries them) without leaving an
idempotency record stuck "in progress"; a reused request id returns the stored result; a grant is issued
only for the approval logged for its request in the tenant's transparency log (as the access flow's
RecordDecision task logs it: here through the real audit service on the same moto stack).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
from botocore.client import BaseClient
from botocore.exceptions import ClientError
from pydantic import TypeAdapter

from functions.encrypt import app
from reliquary.adapters.audit_factory import build_audit
from reliquary.adapters.chain_store import chain_key
from reliquary.adapters.dynamodb import DynamoDBItemRepository
from reliquary.adapters.factory import build_vault_service
from reliquary.contracts.encrypt import EncryptRequest
from reliquary.crypto.grants import open_grant
from reliquary.crypto.kem import HybridPrivateKey, HybridPublicKey
from reliquary.crypto.signing import SignatureAlgorithm
from reliquary.errors import InvalidEnvelopeError, StorageUnavailableError, TransientError
from reliquary.flow.state import FlowState
from reliquary.vaults.models import ItemRecord
from reliquary.vaults.service import VaultService, shred_message
from tests.support.attested import Attester, flow_json, sample_request
from tests.support.audit import decision
from tests.support.aws import AwsStack

Invoke = Callable[[Any], dict[str, Any]]

REPO_ROOT = Path(__file__).resolve().parents[2]
EVENTS_DIR = REPO_ROOT / "events" / "encrypt"
AUDIT_EVENTS_DIR = REPO_ROOT / "events" / "audit_append"
TENANT, VAULT, ITEM = "acme", "agent-memory", "customer-42-notes"


def load_event(name: str, **overrides: Any) -> dict[str, Any]:
    """A fresh copy of ``events/encrypt/<name>.json`` with top-level fields replaced."""
    event: dict[str, Any] = json.loads((EVENTS_DIR / f"{name}.json").read_text())
    event.update(overrides)
    return event


PLAINTEXT_B64: str = load_event("seal")["plaintext"]
PLAINTEXT = base64.b64decode(PLAINTEXT_B64)
# Fragments of the note that must never show up anywhere (results, logs, the idempotency table).
SECRETS = (PLAINTEXT_B64, PLAINTEXT.decode(), "Lisbon office", hashlib.sha256(PLAINTEXT).hexdigest())


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def assert_clean(payload: Any, *secrets: str) -> str:
    """The payload is JSON, carries no stack trace and none of the secrets; returns its JSON text."""
    text = json.dumps(payload)
    assert "Traceback" not in text
    assert 'File "' not in text
    for secret in (*SECRETS, *secrets):
        assert secret not in text
    return text


def ok(payload: dict[str, Any], action: str) -> dict[str, Any]:
    assert payload.get("status") == "ok", payload
    assert set(payload) == {"status", "action", "result"}
    assert payload["action"] == action
    assert_clean(payload)
    result: dict[str, Any] = payload["result"]
    return result


def error(payload: dict[str, Any], code: str) -> dict[str, Any]:
    assert payload.get("status") == "error", payload
    assert set(payload) == {"status", "action", "error"}
    assert_clean(payload)
    body: dict[str, Any] = payload["error"]
    assert body["code"] == code, body
    assert body["retryable"] is False
    assert isinstance(body["message"], str)
    return body


C = TypeVar("C")


def each_case(cases: dict[str, C], check: Callable[[C], None]) -> None:
    """Run ``check`` on every case against one stack (fast), then report every failing case by name."""
    failures: dict[str, str] = {}
    for name, case in cases.items():
        try:
            check(case)
        except Exception as exc:  # noqa: BLE001  (collected and reported below)
            failures[name] = f"{type(exc).__name__}: {exc}"[:400]
    assert not failures, json.dumps(failures, indent=2)


def grant_event(requester: HybridPrivateKey, **overrides: Any) -> dict[str, Any]:
    return load_event("grant", requester_public_key=b64(requester.public_key().to_bytes()), **overrides)


_GRANT_FIELDS = ("request_id", "tenant_id", "vault_id", "item_id", "requester_public_key")


def flow_request(grant: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """The sample access request (``events/access/request.json``) for this grant event's request, vault,
    item and requester key: what the access flow decides before its Grant task sends the event."""
    return sample_request(**{**{name: grant[name] for name in _GRANT_FIELDS}, **changes})


def log_decisions(aws: AwsStack, *states: FlowState) -> list[dict[str, Any]]:
    """Log each flow state's decision as the RecordDecision task does (the real audit-append stage on this
    test's moto stack: an approval's chain checked and stored beside the log), decided now: an approval
    grants only while it is fresh."""
    decisions = build_audit(aws.settings).decisions
    return [decisions.record(state, execution_id=None, decided_at=int(time.time())) for state in states]


def approve(aws: AwsStack, *grants: dict[str, Any], item_version: int = 1) -> None:
    """The approval of each grant event, decided by an honest flow (every result signed with this stack's
    stage keys) for ``item_version`` and logged before the grant (the access flow's order)."""
    attester = Attester(aws.settings, aws.dynamodb)
    log_decisions(aws, *(attester.approved(flow_request(g), item_version=item_version) for g in grants))


def open_granted(service: VaultService, granted: dict[str, Any], requester: HybridPrivateKey) -> bytes:
    """The requester's side: fetch the envelope and open it with the grant and the requester's key."""
    _, envelope = service.load_envelope(TENANT, VAULT, granted["item_id"], granted["version"])
    return open_grant(
        base64.b64decode(granted["grant"]),
        envelope,
        requester_private_key=requester,
        service_keys=service.service_keys.keyring,
        now=int(time.time()),
    )


@dataclass(frozen=True)
class StoredVersion:
    version: int
    wrap_key_version: int
    has_envelope: bool
    blob_key: str | None
    sensitivity: str | None


def item_versions(aws: AwsStack, item_id: str = ITEM) -> list[StoredVersion]:
    """Every stored version of an item, read straight from the items table (layout: adapters/dynamodb.py)."""
    rows = aws.dynamodb.query(
        TableName=aws.settings.items_table,
        KeyConditionExpression="pk = :pk AND begins_with(sk, :prefix)",
        ExpressionAttributeValues={
            ":pk": {"S": f"TENANT#{TENANT}#VAULT#{VAULT}"},
            ":prefix": {"S": f"ITEM#{item_id}#V#"},
        },
        ConsistentRead=True,
    )["Items"]
    return [
        StoredVersion(
            version=int(row["version"]["N"]),
            wrap_key_version=int(row["wrap_key_version"]["N"]),
            has_envelope="envelope" in row,
            blob_key=row["blob_key"]["S"] if "blob_key" in row else None,
            sensitivity=row["sensitivity"]["S"] if "sensitivity" in row else None,
        )
        for row in rows
    ]


# --- the sample events -------------------------------------------------------------------------------
EVENT_NAMES = sorted(p.stem for p in EVENTS_DIR.glob("*.json"))


def test_every_action_has_a_sample_event_and_the_readme_names_them_all() -> None:
    assert {load_event(name)["action"] for name in EVENT_NAMES} == {
        "create_vault",
        "seal",
        "grant",
        "sealed_item",
        "rotate",
        "rewrap",
        "retire",
        "shred",
        "expire",
        "forget",
    }
    readme = (EVENTS_DIR / "README.md").read_text()
    for name in EVENT_NAMES:
        assert f"{name}.json" in readme


@pytest.mark.parametrize("name", EVENT_NAMES)
def test_sample_events_are_valid_requests_with_real_public_keys(name: str) -> None:
    text = (EVENTS_DIR / f"{name}.json").read_text()
    assert "private" not in text.lower()
    event = json.loads(text)
    request: Any = TypeAdapter(EncryptRequest).validate_python(event)
    assert (request.tenant_id, request.vault_id) == (TENANT, event["vault_id"])
    keys = [c["public_key"] for c in event.get("custodians", [])]
    keys += [event["requester_public_key"]] if "requester_public_key" in event else []
    for key in keys:
        assert len(base64.b64decode(key, validate=True)) == 1216
        HybridPublicKey.from_bytes(base64.b64decode(key))
    assert len(set(keys)) == len(keys)


# --- the lifecycle ------------------------------------------------------------------------------------
def test_lifecycle_from_create_to_shred(encrypt: Invoke, aws: AwsStack) -> None:
    started = int(time.time())
    created = ok(encrypt(load_event("create_vault")), "create_vault")
    vault_key_v1 = base64.b64decode(created.pop("public_key"))
    assert len(vault_key_v1) == 1216
    HybridPublicKey.from_bytes(vault_key_v1)
    assert created == {
        "tenant_id": TENANT,
        "vault_id": VAULT,
        "key_version": 1,
        "recovery_threshold": None,
        "custodian_shares": [],
        "permanent_storage": None,
    }

    sealed = ok(encrypt(load_event("seal")), "seal")
    assert sealed == {
        "tenant_id": TENANT,
        "vault_id": VAULT,
        "item_id": ITEM,
        "version": 1,
        "key_version": 1,
        "size": len(PLAINTEXT),
        "body_location": "inline",
        "content_type": "text/plain; charset=utf-8",
        "expires_at": None,
        "permanent_locator": None,
    }

    # The requester's side reads through a service of its own (the runtime exposes only ``execute``).
    service = build_vault_service(aws.settings)
    requester = HybridPrivateKey.generate()
    grants = [grant_event(requester, request_id=r) for r in ("req-0004-after-rewrap", "req-0009")]
    approve(aws, grant_event(requester), *grants)  # what the access flow logs before each grant
    granted = ok(encrypt(grant_event(requester)), "grant")
    assert granted["item_id"] == ITEM
    assert granted["version"] == 1
    assert started + 1 <= granted["expires_at"] <= int(time.time()) + aws.settings.grant_ttl_seconds
    assert open_granted(service, granted, requester) == PLAINTEXT
    # Sealed to the requester: another key cannot open it.
    with pytest.raises(InvalidEnvelopeError):
        open_granted(service, granted, HybridPrivateKey.generate())

    rotated = ok(encrypt(load_event("rotate")), "rotate")
    assert rotated["key_version"] == 2
    assert rotated["tenant_id"] == TENANT
    assert rotated["vault_id"] == VAULT
    assert base64.b64decode(rotated["public_key"]) != vault_key_v1

    rewrapped = ok(encrypt(load_event("rewrap")), "rewrap")
    assert rewrapped == {"key_version": 2, "rewrapped": 1, "already_current": 0, "skipped_shredded": 0}
    assert [r.wrap_key_version for r in item_versions(aws)] == [2]

    # The rewrapped item still opens, through the new key version.
    regranted = ok(encrypt(grant_event(requester, request_id="req-0004-after-rewrap")), "grant")
    assert open_granted(service, regranted, requester) == PLAINTEXT

    retired = ok(encrypt(load_event("retire")), "retire")
    assert retired == {"key_version": 1, "status": "retired"}

    receipt = ok(encrypt(load_event("shred")), "shred")
    assert receipt["item_id"] == ITEM
    assert receipt["versions"] == [1]
    assert started <= receipt["shredded_at"] <= int(time.time())
    assert receipt["signature_algorithm"] == aws.settings.signature_algorithm
    assert len(bytes.fromhex(receipt["signer_key_id"])) == 8
    service.service_keys.keyring.verify(
        bytes.fromhex(receipt["signer_key_id"]),
        SignatureAlgorithm(receipt["signature_algorithm"]),
        shred_message(TENANT, VAULT, ITEM, receipt["versions"], receipt["shredded_at"]),
        base64.b64decode(receipt["signature"]),
    )
    assert not any(r.has_envelope for r in item_versions(aws))

    refused = error(encrypt(grant_event(requester, request_id="req-0009")), "item_shredded")
    assert refused["type"] == "ItemShreddedError"


# --- a grant only for the approval logged for its request ----------------------------------------------
def _sample_decision(**changes: Any) -> dict[str, Any]:
    """``events/audit_append/record_decision.json``, decided now (the sample's time is long past)."""
    event: dict[str, Any] = json.loads((AUDIT_EVENTS_DIR / "record_decision.json").read_text())
    return {**event, "decided_at": int(time.time()), **changes}


def test_the_sample_grant_is_issued_once_the_flow_logged_its_approval(
    encrypt: Invoke, audit_append: Invoke, aws: AwsStack
) -> None:
    """``events/audit_append/record_decision.json`` is the flow state at RecordDecision for the request of
    ``events/encrypt/grant.json`` (the same request id, vault, item and requester key). It carries no
    attestations (they are made at run time); signed with this stack's stage keys, it is the approval the
    grant needs."""
    ok(encrypt(load_event("create_vault")), "create_vault")
    ok(encrypt(load_event("seal")), "seal")
    refused = error(encrypt(load_event("grant")), "decision_required")
    assert refused["message"] == "no access decision is logged for this request"
    assert refused["details"] == {"request_id": load_event("grant")["request_id"]}
    sample = _sample_decision()
    signed = Attester(aws.settings, aws.dynamodb).attest(sample["flow"])
    logged = ok(audit_append({**sample, "flow": flow_json(signed)}), "record_decision")
    assert logged["decision"] == "approve"
    key_digest = hashlib.sha256(base64.b64decode(load_event("grant")["requester_public_key"])).hexdigest()
    entry = json.loads(logged["entry"])
    assert entry["requester_key_sha256"] == key_digest
    assert entry["chain_sha256"] == logged["chain_sha256"]
    assert entry["item_version"] == 1
    granted = ok(encrypt(load_event("grant")), "grant")  # the refusal was not stored: the retry runs
    assert (granted["item_id"], granted["version"]) == (ITEM, 1)


def test_the_sample_decision_as_it_is_is_logged_as_a_denial_and_its_grant_refused(
    encrypt: Invoke, audit_append: Invoke
) -> None:
    """What events/encrypt/README.md warns of: sent without a live chain, the sample approval is refused
    and logged as the denial it is, so its request id can never be granted afterwards."""
    ok(encrypt(load_event("create_vault")), "create_vault")
    ok(encrypt(load_event("seal")), "seal")
    error(audit_append(_sample_decision()), "attestation_invalid")
    refused = error(encrypt(load_event("grant")), "decision_required")
    assert refused["message"] == "the access decision logged for this request is not an approval"


def test_a_grant_without_the_approval_of_its_request_is_refused_and_nothing_is_granted(
    encrypt: Invoke, aws: AwsStack
) -> None:
    ok(encrypt(load_event("create_vault")), "create_vault")
    ok(encrypt(load_event("seal")), "seal")
    requester, stranger = HybridPrivateKey.generate(), HybridPrivateKey.generate()
    attester = Attester(aws.settings, aws.dynamodb)
    cases: dict[str, tuple[dict[str, Any], FlowState | None, str]] = {
        "nothing logged": (
            grant_event(requester, request_id="access-none"),
            None,
            "no access decision is logged for this request",
        ),
        "a denial": (
            grant_event(requester, request_id="access-deny"),
            FlowState.model_validate(
                {
                    **flow_request(grant_event(requester, request_id="access-deny")),
                    "decision": {
                        "decision": "deny",
                        "reasons": ["quorum 1 of 3"],
                        "policy_version": "9b" * 32,
                    },
                }
            ),
            "the access decision logged for this request is not an approval",
        ),
        "an approval of another item": (
            grant_event(requester, request_id="access-item"),
            attester.approved(
                flow_request(grant_event(requester, request_id="access-item"), item_id="customer-43-notes")
            ),
            "the access decision logged for this request is for another item",
        ),
        "an approval in another vault": (
            grant_event(requester, request_id="access-vault"),
            attester.approved(
                flow_request(grant_event(requester, request_id="access-vault"), vault_id="agent-memory-2")
            ),
            "the access decision logged for this request is for another vault",
        ),
        "an approval for another requester key": (
            grant_event(requester, request_id="access-key"),
            attester.approved(flow_request(grant_event(stranger, request_id="access-key"))),
            "the access decision logged for this request is for another requester key",
        ),
        "an approval naming no requester key": (
            grant_event(requester, request_id="access-unkeyed"),
            None,  # planted below: RecordDecision never logs one
            "the access decision logged for this request names no requester key",
        ),
    }
    log_decisions(aws, *(state for _, state, _ in cases.values() if state is not None))
    # An approval as decisions were logged before they named the requester key (and their chain).
    build_audit(aws.settings).service.append(
        TENANT, [decision("access-unkeyed", vault_id=VAULT, item_id=ITEM, time=int(time.time()))]
    )

    def check(case: tuple[dict[str, Any], FlowState | None, str]) -> None:
        event, _, message = case
        body = error(encrypt(event), "decision_required")
        assert body == {
            "code": "decision_required",
            "type": "DecisionRequiredError",
            "message": message,
            "details": {"request_id": event["request_id"]},
            "retryable": False,
        }

    each_case(cases, check)
    # Nothing was granted, and no refusal was stored as a result.
    stored = aws.dynamodb.scan(TableName=aws.tables["IdempotencyTable"])["Items"]
    assert len(stored) == 2  # create_vault and seal
    # The stranger the "another requester key" decision approved gets its grant; the requester does not.
    stranger_grant = grant_event(stranger, request_id="access-key")
    ok(encrypt(stranger_grant), "grant")


def test_a_grant_needs_the_attestation_chain_its_logged_approval_names(
    encrypt: Invoke, aws: AwsStack
) -> None:
    """The chain is the authority, not the log's storage: an approval written into the log by anyone but
    RecordDecision, or a chain altered in the bucket, grants nothing."""
    ok(encrypt(load_event("create_vault")), "create_vault")
    ok(encrypt(load_event("seal")), "seal")
    requester = HybridPrivateKey.generate()
    attester, audit, now = Attester(aws.settings, aws.dynamodb), build_audit(aws.settings), int(time.time())

    def logged(request_id: str) -> dict[str, Any]:
        state = attester.approved(flow_request(grant_event(requester, request_id=request_id)))
        return audit.decisions.record(state, execution_id=None, decided_at=now)

    def planted(request_id: str, **changes: Any) -> None:
        key_digest = hashlib.sha256(requester.public_key().to_bytes()).hexdigest()
        fields = {"vault_id": VAULT, "item_id": ITEM, "time": now, "requester_key_sha256": key_digest}
        audit.service.append(TENANT, [decision(request_id, **{**fields, **changes})])

    honest = logged("access-honest")
    altered = logged("access-altered")
    stored = chain_key(TENANT, altered["chain_sha256"])
    body = aws.s3.get_object(Bucket=aws.settings.audit_bucket, Key=stored)["Body"].read()
    aws.s3.put_object(
        Bucket=aws.settings.audit_bucket, Key=stored, Body=body.replace(b'"approve"', b'"deny"')
    )
    planted("access-chainless")
    planted("access-missing-chain", chain_sha256="ab" * 32, item_version=1)
    planted("access-borrowed-chain", chain_sha256=honest["chain_sha256"], item_version=1)
    cases = {
        "an approval logged with no chain": ("access-chainless", "decision_required"),
        "an approval naming a chain that was never stored": ("access-missing-chain", "attestation_invalid"),
        "an approval naming another request's chain": ("access-borrowed-chain", "attestation_invalid"),
        "an approval whose stored chain was altered": ("access-altered", "attestation_invalid"),
    }

    def check(case: tuple[str, str]) -> None:
        request_id, code = case
        error(encrypt(grant_event(requester, request_id=request_id)), code)

    each_case(cases, check)
    ok(encrypt(grant_event(requester, request_id="access-honest")), "grant")
    rows = aws.dynamodb.scan(TableName=aws.tables["IdempotencyTable"])["Items"]
    assert len(rows) == 3  # create_vault, seal and the honest grant


def test_a_transparency_log_outage_raises_for_retry_and_grants_nothing(
    encrypt: Invoke, aws: AwsStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    ok(encrypt(load_event("create_vault")), "create_vault")
    ok(encrypt(load_event("seal")), "seal")
    requester = HybridPrivateKey.generate()
    approve(aws, grant_event(requester))
    with monkeypatch.context() as patch:
        patch.setattr(BaseClient, "_make_api_call", _failing_api_call("GetObject", "SlowDown"))
        with pytest.raises(StorageUnavailableError):
            encrypt(grant_event(requester))
    stored = aws.dynamodb.scan(TableName=aws.tables["IdempotencyTable"])["Items"]
    assert len(stored) == 2  # nothing in progress, nothing granted
    granted = ok(encrypt(grant_event(requester)), "grant")  # Step Functions' retry
    assert open_granted(build_vault_service(aws.settings), granted, requester) == PLAINTEXT


def test_create_vault_with_custodians_returns_one_sealed_share_each(encrypt: Invoke) -> None:
    event = load_event("create_vault_with_custodians")
    created = ok(encrypt(event), "create_vault")
    assert created["recovery_threshold"] == event["recovery_threshold"] == 2
    shares = created["custodian_shares"]
    assert [s["custodian_id"] for s in shares] == [c["custodian_id"] for c in event["custodians"]]
    for share, custodian in zip(shares, event["custodians"], strict=True):
        fingerprint = HybridPublicKey.from_bytes(base64.b64decode(custodian["public_key"])).fingerprint()
        assert base64.b64decode(share["public_key_fingerprint"]) == fingerprint
        assert len(base64.b64decode(share["sealed_share"])) > 0
    assert len({s["sealed_share"] for s in shares}) == len(shares)


def test_large_item_body_lives_in_s3_and_is_deleted_by_shred(encrypt: Invoke, aws: AwsStack) -> None:
    ok(encrypt(load_event("create_vault")), "create_vault")
    large = os.urandom(aws.settings.large_item_threshold + 4096)
    sealed = ok(
        encrypt(load_event("seal", plaintext=b64(large), content_type="application/octet-stream")), "seal"
    )
    assert sealed["body_location"] == "s3"
    assert sealed["size"] == len(large)
    (record,) = item_versions(aws)
    assert record.blob_key is not None
    assert record.blob_key.startswith(f"tenants/{TENANT}/vaults/{VAULT}/items/{ITEM}/")

    requester = HybridPrivateKey.generate()
    approve(aws, grant_event(requester))
    granted = ok(encrypt(grant_event(requester)), "grant")
    assert open_granted(build_vault_service(aws.settings), granted, requester) == large

    ok(encrypt(load_event("shred")), "shred")
    listing = aws.s3.list_object_versions(Bucket=aws.settings.items_bucket, Prefix=record.blob_key)
    assert not listing.get("Versions")
    assert not listing.get("DeleteMarkers")


# --- expiry: the expire sweep, and TTL deletions arriving through the items table's stream ----------
def test_expire_shreds_items_past_their_expiry_and_leaves_the_rest(encrypt: Invoke, aws: AwsStack) -> None:
    ok(encrypt(load_event("create_vault")), "create_vault")
    soon = int(time.time()) + 3  # far enough that the first sweep surely runs before it
    ok(encrypt(load_event("seal", expires_at=soon)), "seal")
    ok(encrypt(load_event("seal", request_id="req-keep", item_id="keeper")), "seal")
    assert ok(encrypt(load_event("expire")), "expire") == {"shredded_items": []}
    time.sleep(max(0.0, soon - time.time()) + 1.1)
    requester = HybridPrivateKey.generate()
    expired, keeper = (
        grant_event(requester, request_id="req-expired"),
        grant_event(requester, request_id="req-keeper", item_id="keeper"),
    )
    approve(aws, expired, keeper)
    error(encrypt(expired), "item_expired")  # refused at once
    assert ok(encrypt(load_event("expire", request_id="req-expire-2")), "expire") == {
        "shredded_items": [ITEM]
    }
    (record,) = item_versions(aws)
    assert not record.has_envelope
    ok(encrypt(keeper), "grant")


def _ttl_removal(version: int = 1, *, identity: dict[str, str] | None = None) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((EVENTS_DIR / "stream" / "items_ttl_removed.json").read_text())
    keys = event["Records"][0]["dynamodb"]["Keys"]
    keys["pk"]["S"] = f"TENANT#{TENANT}#VAULT#{VAULT}"
    keys["sk"]["S"] = f"ITEM#{ITEM}#V#{version:010d}"
    if identity is not None:
        event["Records"][0]["userIdentity"] = identity
    return event


def test_a_ttl_removal_on_the_stream_deletes_every_version_of_the_body(
    encrypt: Invoke, aws: AwsStack
) -> None:
    ok(encrypt(load_event("create_vault")), "create_vault")
    ok(encrypt(load_event("seal", plaintext=b64(os.urandom(aws.settings.large_item_threshold + 1)))), "seal")
    (record,) = item_versions(aws)
    assert record.blob_key is not None
    bucket = aws.settings.items_bucket

    def versions() -> int:
        listing = aws.s3.list_object_versions(Bucket=bucket, Prefix=record.blob_key or "")
        return len(listing.get("Versions", [])) + len(listing.get("DeleteMarkers", []))

    aws.s3.put_object(Bucket=bucket, Key=record.blob_key, Body=b"an older copy")  # a second version
    assert versions() == 2
    # A removal reported while the row still exists (forged by a direct invoker, say) deletes nothing.
    assert encrypt(_ttl_removal())["result"] == {"purged": 0, "still_present": 1}
    # Nor does a removal by anyone but the TTL process.
    ignored = encrypt(_ttl_removal(identity={"type": "AssumedRole", "principalId": "x"}))
    assert ignored == {"status": "ok", "action": "purge_expired", "result": {"purged": 0, "still_present": 0}}
    assert versions() == 2

    aws.dynamodb.delete_item(  # what DynamoDB's TTL does to an expired row
        TableName=aws.settings.items_table,
        Key={"pk": {"S": f"TENANT#{TENANT}#VAULT#{VAULT}"}, "sk": {"S": f"ITEM#{ITEM}#V#0000000001"}},
    )
    purged = encrypt(_ttl_removal())
    assert purged == {"status": "ok", "action": "purge_expired", "result": {"purged": 1, "still_present": 0}}
    assert versions() == 0
    assert encrypt(_ttl_removal())["result"] == {"purged": 1, "still_present": 0}  # redelivery is harmless


def test_an_item_over_the_size_limit_is_refused_and_nothing_is_stored(encrypt: Invoke, aws: AwsStack) -> None:
    """4 MiB by default: a synchronous invocation carries at most 6 MB of (base64) JSON."""
    ok(encrypt(load_event("create_vault")), "create_vault")
    assert aws.settings.max_item_bytes == 4 * 1024 * 1024
    too_large = b"\x00" * (aws.settings.max_item_bytes + 1)
    body = error(encrypt(load_event("seal", plaintext=b64(too_large))), "payload_too_large")
    assert body["details"] == {"size": len(too_large)}
    assert item_versions(aws) == []


# --- refusals: deterministic errors come back, they never raise ----------------------------------------
def _without(name: str, *fields: str) -> dict[str, Any]:
    event = load_event(name)
    for field in fields:
        del event[field]
    return event


INVALID_EVENTS: dict[str, Any] = {
    "none": None,
    "a string": "seal",
    "a list": [load_event("seal")],
    "a number": 42,
    "empty": {},
    "missing action": _without("seal", "action"),
    "action not a string": load_event("seal", action=7),
    "unknown action": load_event("seal", action="decrypt"),
    "missing request_id": _without("seal", "request_id"),
    "missing tenant_id": _without("rotate", "tenant_id"),
    "missing item_id": _without("seal", "item_id"),
    "missing plaintext": _without("seal", "plaintext"),
    "missing memory_scope": _without("seal", "memory_scope"),
    "missing key_version": _without("retire", "key_version"),
    "extra field on seal": load_event("seal", debug=True),
    "extra field on create_vault": load_event("create_vault", admin=True),
    "extra field in memory_scope": load_event("seal", memory_scope={"kind": "user", "ref": "u", "x": 1}),
    "vault id with #": load_event("seal", vault_id="agent#memory"),
    "tenant id with #": load_event("seal", tenant_id="acme#VAULT#x"),
    "item id with #": load_event("seal", item_id="customer-42#V#1"),
    "request id with #": load_event("seal", request_id="req#1"),
    "item id of 130 chars": load_event("seal", item_id="i" * 130),
    "empty vault id": load_event("seal", vault_id=""),
    "plaintext not base64": load_event("seal", plaintext="this is not base64!"),
    "plaintext not a string": load_event("seal", plaintext=12345),
    "unknown memory_scope kind": load_event("seal", memory_scope={"kind": "team", "ref": "t-1"}),
    "content type with a newline": load_event("seal", content_type="text/plain\nX-Injected: 1"),
    "tags not a dict": load_event("seal", tags=["a"]),
    "tag key with #": load_event("seal", tags={"a#b": "c"}),
    "expires_at in the past": load_event("seal", expires_at=1),
    "unknown sensitivity": load_event("seal", sensitivity="secret"),
    "sensitivity in capitals": load_event("seal", sensitivity="Confidential"),
    "sensitivity not a string": load_event("seal", sensitivity=3),
    "sensitivity null": load_event("seal", sensitivity=None),
    "retire version 0": load_event("retire", key_version=0),
    "requester key too short": load_event("grant", requester_public_key=b64(b"\x01" * 1215)),
    "requester key too long": load_event("grant", requester_public_key=b64(b"\x01" * 1217)),
    "requester key not base64": load_event("grant", requester_public_key="%%%"),
    "threshold without custodians": load_event("create_vault", recovery_threshold=2),
    "custodians without threshold": _without("create_vault_with_custodians", "recovery_threshold"),
    "threshold above custodians": load_event("create_vault_with_custodians", recovery_threshold=4),
    "custodian key of the wrong length": load_event(
        "create_vault",
        custodians=[
            {"custodian_id": "a", "public_key": b64(b"\x02" * 32)},
            {"custodian_id": "b", "public_key": b64(b"\x02" * 32)},
        ],
        recovery_threshold=2,
    ),
}


ENCRYPT_ACTIONS = {"create_vault", "seal", "grant", "rotate", "rewrap", "retire", "shred", "expire", "forget"}


def test_bad_input_is_refused_as_invalid_request(encrypt: Invoke) -> None:
    # A vault exists, so no refusal below is a not_found in disguise.
    ok(encrypt(load_event("create_vault", request_id="req-setup")), "create_vault")

    def check(event: Any) -> None:
        payload = encrypt(event)
        body = error(payload, "invalid_request")
        assert body["type"] == "InvalidRequestError"
        assert_clean(payload, "this is not base64!")
        # The refusal names the action only if it is one of encrypt's, never what else the caller wrote.
        action = event.get("action") if isinstance(event, dict) else None
        assert payload["action"] == (action if action in ENCRYPT_ACTIONS else "unknown")

    each_case(INVALID_EVENTS, check)


def test_validation_problems_name_fields_without_echoing_input(encrypt: Invoke) -> None:
    payload = encrypt(load_event("seal", plaintext="not base64 at all", item_id="x" * 130))
    problems = error(payload, "invalid_request")["details"]["problems"]
    assert {p["field"] for p in problems} == {"seal.plaintext", "seal.item_id"}
    assert "not base64 at all" not in json.dumps(payload)
    assert "x" * 130 not in json.dumps(payload)


# Regression: pynamodb's ``DoesNotExist`` has no AWS error code and was once translated to the *transient*
# StorageUnavailableError, so a missing vault, key version or item version raised (and Step Functions
# would have retried it) instead of coming back as ``not_found``.
REFUSALS: dict[str, tuple[dict[str, Any], str, dict[str, Any] | None]] = {
    "grant for another tenant": (
        grant_event(HybridPrivateKey.generate(), tenant_id="other"),
        "not_found",
        {"item_id": ITEM, "version": 1},  # the version its approval names
    ),
    "grant of an unknown item": (
        grant_event(HybridPrivateKey.generate(), item_id="customer-43-notes"),
        "not_found",
        None,
    ),
    "grant of an unknown item version": (  # approved for version 9 (below)
        grant_event(HybridPrivateKey.generate()),
        "not_found",
        None,
    ),
    "seal into an unknown vault": (load_event("seal", vault_id="no-such-vault"), "not_found", None),
    "seal for another tenant": (load_event("seal", tenant_id="other"), "not_found", None),
    "rotate an unknown vault": (load_event("rotate", vault_id="no-such-vault"), "not_found", None),
    "rewrap an unknown vault": (load_event("rewrap", vault_id="no-such-vault"), "not_found", None),
    "retire in an unknown vault": (load_event("retire", vault_id="no-such-vault"), "not_found", None),
    "retire an unknown key version": (load_event("retire", key_version=9), "not_found", None),
    "shred in an unknown vault": (load_event("shred", vault_id="no-such-vault"), "not_found", None),
    "shred an unknown item": (load_event("shred", item_id="customer-43-notes"), "not_found", None),
    "create an existing vault": (load_event("create_vault"), "conflict", None),
    "retire the current key version": (
        load_event("retire", key_version=2),
        "key_version",
        {"key_version": 2},
    ),
    "retire a version that still wraps items": (
        load_event("retire", key_version=1),
        "key_version",
        {"key_version": 1, "items": 1},
    ),
}


def test_requests_the_vault_state_refuses(encrypt: Invoke, aws: AwsStack) -> None:
    ok(encrypt(load_event("create_vault", request_id="req-setup-1")), "create_vault")
    ok(encrypt(load_event("seal", request_id="req-setup-2")), "seal")
    ok(encrypt(load_event("rotate", request_id="req-setup-3")), "rotate")
    cases = {
        name: ({**event, "request_id": f"req-refused-{n}"}, code, details)
        for n, (name, (event, code, details)) in enumerate(REFUSALS.items(), start=1)
    }
    # The grants are approved (logged first, as the access flow does): the vault's state refuses them.
    unknown_version = cases.pop("grant of an unknown item version")
    approve(aws, *(event for event, _, _ in cases.values() if event["action"] == "grant"))
    approve(aws, unknown_version[0], item_version=9)
    cases["grant of an unknown item version"] = unknown_version

    def check(case: tuple[dict[str, Any], str, dict[str, Any] | None]) -> None:
        event, code, details = case
        body = error(encrypt(event), code)
        if details is not None:
            assert body["details"] == details

    each_case(cases, check)
    # Nothing was written by a refused request.
    assert [(r.version, r.wrap_key_version) for r in item_versions(aws)] == [(1, 1)]


def test_a_seal_stores_its_label_and_an_unlabelled_seal_is_restricted(encrypt: Invoke, aws: AwsStack) -> None:
    ok(encrypt(load_event("create_vault")), "create_vault")
    assert load_event("seal")["sensitivity"] == "confidential"
    ok(encrypt(load_event("seal")), "seal")
    ok(encrypt(_without("seal", "sensitivity") | {"request_id": "req-unlabelled"}), "seal")
    ok(encrypt(load_event("seal", request_id="req-public", sensitivity="public")), "seal")
    error(encrypt(load_event("seal", request_id="req-secret", sensitivity="secret")), "invalid_request")
    assert [(r.version, r.sensitivity) for r in item_versions(aws)] == [
        (1, "confidential"),
        (2, "restricted"),
        (3, "public"),
    ]


def test_retiring_the_only_key_version_is_refused(encrypt: Invoke) -> None:
    ok(encrypt(load_event("create_vault")), "create_vault")
    body = error(encrypt(load_event("retire")), "key_version")
    assert body["details"] == {"key_version": 1}


# --- idempotency ----------------------------------------------------------------------------------------
def test_the_same_seal_twice_returns_the_stored_result_and_seals_once(encrypt: Invoke, aws: AwsStack) -> None:
    ok(encrypt(load_event("create_vault")), "create_vault")
    first = encrypt(load_event("seal"))
    second = encrypt(load_event("seal"))
    assert second == first
    assert [r.version for r in item_versions(aws)] == [1]

    third = ok(encrypt(load_event("seal", request_id="req-0003-next")), "seal")
    assert third["version"] == 2
    assert [r.version for r in item_versions(aws)] == [1, 2]


def test_a_reused_request_id_with_other_plaintext_is_a_conflict(encrypt: Invoke, aws: AwsStack) -> None:
    """The payload check covers the plaintext through a keyed MAC (never a plain hash of it), so a
    caller is never told "ok" for content that was not stored."""
    ok(encrypt(load_event("create_vault")), "create_vault")
    first = encrypt(load_event("seal"))
    assert encrypt(load_event("seal")) == first
    error(encrypt(load_event("seal", plaintext=b64(b"a different note"))), "idempotency_conflict")
    assert len(item_versions(aws)) == 1
    stored = json.dumps(aws.dynamodb.scan(TableName=aws.tables["IdempotencyTable"])["Items"])
    plaintext = base64.b64decode(load_event("seal")["plaintext"])
    assert hashlib.sha256(plaintext).hexdigest() not in stored
    assert hashlib.md5(plaintext).hexdigest() not in stored  # noqa: S324  (looking for a leak, not hashing)


REUSED_REQUEST_IDS: dict[str, dict[str, Any]] = {
    "other vault": load_event("seal", vault_id="agent-memory-2"),
    "other item": load_event("seal", item_id="customer-43-notes"),
    "other content type": load_event("seal", content_type="application/json"),
    "other memory scope": load_event("seal", memory_scope={"kind": "agent", "ref": "concierge"}),
    "other tags": load_event("seal", tags={"source": "email"}),
    "other expiry": load_event("seal", expires_at=4_102_444_800),
    "other sensitivity": load_event("seal", sensitivity="public"),
    "sensitivity left out (restricted)": _without("seal", "sensitivity"),
    "other action": load_event("shred", request_id=load_event("seal")["request_id"]),
    "other requester key": grant_event(HybridPrivateKey.generate()),
}


def test_a_reused_request_id_with_another_request_is_a_conflict(encrypt: Invoke, aws: AwsStack) -> None:
    ok(encrypt(load_event("create_vault")), "create_vault")
    ok(encrypt(load_event("seal")), "seal")
    requester = HybridPrivateKey.generate()
    approve(aws, grant_event(requester))
    ok(encrypt(grant_event(requester)), "grant")

    def check(event: dict[str, Any]) -> None:
        body = error(encrypt(event), "idempotency_conflict")
        assert body["type"] == "IdempotencyConflictError"

    each_case(REUSED_REQUEST_IDS, check)
    assert len(item_versions(aws)) == 1
    assert item_versions(aws, "customer-43-notes") == []


def test_a_reused_request_id_with_other_custodians_is_a_conflict(encrypt: Invoke) -> None:
    """Otherwise the caller would get back shares sealed to custodians it did not ask for."""
    event = load_event("create_vault_with_custodians")
    ok(encrypt(event), "create_vault")
    error(encrypt({**event, "custodians": event["custodians"][:2]}), "idempotency_conflict")
    error(encrypt({**event, "recovery_threshold": 3}), "idempotency_conflict")


def test_a_retried_grant_returns_the_same_grant_stored_only_as_long_as_a_grant_lives(
    encrypt: Invoke, aws: AwsStack
) -> None:
    ok(encrypt(load_event("create_vault")), "create_vault")
    ok(encrypt(load_event("seal")), "seal")
    requester = HybridPrivateKey.generate()
    approve(aws, grant_event(requester), grant_event(requester, request_id="req-after-shred"))
    first = ok(encrypt(grant_event(requester)), "grant")
    assert ok(encrypt(grant_event(requester)), "grant") == first
    records = aws.dynamodb.scan(TableName=aws.tables["IdempotencyTable"])["Items"]
    lifetimes = sorted(int(r["expiration"]["N"]) - int(time.time()) for r in records)
    # create_vault and seal: the idempotency TTL (1 h); the grant: the grant's own lifetime (300 s).
    assert lifetimes[0] <= 300
    assert lifetimes[-1] > 3000
    ok(encrypt(load_event("shred")), "shred")
    error(encrypt(grant_event(requester, request_id="req-after-shred")), "item_shredded")


def test_request_ids_are_scoped_to_the_tenant(encrypt: Invoke) -> None:
    ok(encrypt(load_event("create_vault")), "create_vault")
    other = ok(encrypt(load_event("create_vault", tenant_id="globex")), "create_vault")
    assert other["tenant_id"] == "globex"


def test_the_idempotency_table_holds_no_plaintext(encrypt: Invoke, aws: AwsStack) -> None:
    ok(encrypt(load_event("create_vault")), "create_vault")
    ok(encrypt(load_event("seal")), "seal")
    requester = HybridPrivateKey.generate()
    approve(aws, grant_event(requester))
    ok(encrypt(grant_event(requester)), "grant")
    items = aws.dynamodb.scan(TableName=aws.tables["IdempotencyTable"])["Items"]
    assert len(items) == 3
    assert {i["status"]["S"] for i in items} == {"COMPLETED"}
    dumped = json.dumps(items)
    for secret in SECRETS:
        assert secret not in dumped


# --- transient failures raise, and leave nothing stuck --------------------------------------------------
def test_a_dynamodb_outage_raises_and_the_retry_succeeds(
    encrypt: Invoke, aws: AwsStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    ok(encrypt(load_event("create_vault")), "create_vault")

    def unavailable(self: DynamoDBItemRepository, record: ItemRecord) -> None:
        raise StorageUnavailableError("DynamoDB is unavailable or throttling", aws_code="ThrottlingException")

    with monkeypatch.context() as patch:
        patch.setattr(DynamoDBItemRepository, "put", unavailable)
        with pytest.raises(StorageUnavailableError):
            encrypt(load_event("seal"))
    assert item_versions(aws) == []

    sealed = ok(encrypt(load_event("seal")), "seal")
    assert sealed["version"] == 1
    assert len(item_versions(aws)) == 1


def _failing_api_call(operation: str, code: str) -> Callable[..., Any]:
    real = BaseClient._make_api_call  # type: ignore[attr-defined]

    def call(self: BaseClient, operation_name: str, params: dict[str, Any]) -> Any:
        if operation_name == operation:
            raise ClientError({"Error": {"Code": code, "Message": "injected"}}, operation_name)
        return real(self, operation_name, params)

    return call


def test_an_s3_throttle_raises_and_the_retry_succeeds(
    encrypt: Invoke, aws: AwsStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    ok(encrypt(load_event("create_vault")), "create_vault")
    event = load_event("seal", plaintext=b64(os.urandom(aws.settings.large_item_threshold + 1)))
    with monkeypatch.context() as patch:
        patch.setattr(BaseClient, "_make_api_call", _failing_api_call("PutObject", "SlowDown"))
        with pytest.raises(StorageUnavailableError):
            encrypt(event)
    assert item_versions(aws) == []

    sealed = ok(encrypt(event), "seal")
    assert (sealed["version"], sealed["body_location"]) == (1, "s3")


def test_the_same_request_in_flight_raises_transient(
    encrypt: Invoke, aws: AwsStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A duplicate delivered while the first is still running must be retried later, not answered."""
    ok(encrypt(load_event("create_vault")), "create_vault")
    inner: list[BaseException] = []
    real_put = DynamoDBItemRepository.put

    def put_during_a_duplicate(self: DynamoDBItemRepository, record: ItemRecord) -> None:
        try:
            encrypt(load_event("seal"))
        except TransientError as exc:
            inner.append(exc)
        real_put(self, record)

    with monkeypatch.context() as patch:
        patch.setattr(DynamoDBItemRepository, "put", put_during_a_duplicate)
        sealed = ok(encrypt(load_event("seal")), "seal")
    assert len(inner) == 1
    assert type(inner[0]) is TransientError
    assert ok(encrypt(load_event("seal")), "seal") == sealed
    assert len(item_versions(aws)) == 1


def test_an_idempotency_store_outage_raises(encrypt: Invoke, aws: AwsStack) -> None:
    ok(encrypt(load_event("create_vault")), "create_vault")
    aws.dynamodb.delete_table(TableName=aws.tables["IdempotencyTable"])
    with pytest.raises(StorageUnavailableError):
        encrypt(load_event("seal"))


# --- logs -----------------------------------------------------------------------------------------------
class _CurrentStdout:
    """Writes to whatever ``sys.stdout`` is at the time (capsys installs its own only for the call)."""

    def write(self, text: str) -> int:
        return sys.stdout.write(text)

    def flush(self) -> None:
        sys.stdout.flush()


@pytest.fixture
def log_lines(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Callable[[], str]:
    """The function's stdout (powertools logs and EMF metrics) during the test."""
    # The logger's handler keeps the stdout of import time; make it follow capsys' stdout.
    monkeypatch.setattr(app.logger.registered_handler, "stream", _CurrentStdout())
    return lambda: capsys.readouterr().out


def _json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_logs_carry_request_keys_and_never_the_plaintext(
    encrypt: Invoke, log_lines: Callable[[], str]
) -> None:
    ok(encrypt(load_event("create_vault")), "create_vault")
    ok(encrypt(load_event("seal")), "seal")
    error(encrypt(load_event("seal", vault_id="no-such-vault", request_id="req-0003-b")), "not_found")
    error(encrypt(load_event("seal", debug=True)), "invalid_request")
    out = log_lines()
    for secret in SECRETS:
        assert secret not in out
    records = [r for r in _json_lines(out) if "message" in r]
    seal_lines = [r for r in records if r.get("action") == "seal"]
    assert seal_lines, out
    for record in seal_lines:
        assert record["service"] == app.SERVICE
        assert "Traceback" not in json.dumps(record)
    with_keys = [r for r in seal_lines if r.get("tenant_id") == TENANT and "request_id" in r]
    assert {r["request_id"] for r in with_keys} >= {"req-0003", "req-0003-b"}
    # Metrics are emitted as EMF, without plaintext either.
    assert any("_aws" in r for r in _json_lines(out))


def test_a_transient_failure_is_logged_without_a_secret(
    encrypt: Invoke, log_lines: Callable[[], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    ok(encrypt(load_event("create_vault")), "create_vault")

    def unavailable(self: DynamoDBItemRepository, record: ItemRecord) -> None:
        raise StorageUnavailableError("DynamoDB is unavailable or throttling")

    monkeypatch.setattr(DynamoDBItemRepository, "put", unavailable)
    with pytest.raises(StorageUnavailableError):
        encrypt(load_event("seal"))
    out = log_lines()
    for secret in SECRETS:
        assert secret not in out
    warnings = [r for r in _json_lines(out) if r.get("level") == "WARNING"]
    assert warnings
    assert warnings[0]["code"] == "storage_unavailable"
    assert warnings[0]["request_id"] == "req-0003"


# --- cold start -----------------------------------------------------------------------------------------
def _run_python(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {
        k: v for k, v in os.environ.items() if not k.startswith(("AWS_LAMBDA_", "POWERTOOLS_", "_X_AMZN"))
    }
    environment.update(
        {
            "PYTHONPATH": os.pathsep.join(str(REPO_ROOT / p) for p in (".", "layers/core", "layers/native")),
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            **env,
        }
    )
    return subprocess.run(  # noqa: S603  (our own interpreter, fixed code)
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=REPO_ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


_NO_NETWORK = """
    import socket

    def _refuse(*args, **kwargs):
        raise AssertionError(f"network access at import: {args!r}")

    socket.socket.connect = _refuse
    socket.socket.connect_ex = _refuse
    socket.create_connection = _refuse
    socket.getaddrinfo = _refuse
"""


def test_import_is_cheap_and_offline() -> None:
    result = _run_python(
        _NO_NETWORK
        + """
    import sys
    import functions.encrypt.app as app

    assert callable(app.handler)
    heavy = sorted(m for m in ("aws_xray_sdk", "langgraph", "fastapi", "oqs") if m in sys.modules)
    print("HEAVY=" + ",".join(heavy))
    # The transparency log's code loads on the first grant's decision lookup, not at cold start.
    audit = sorted(m for m in sys.modules if m.startswith(("reliquary.audit", "reliquary.adapters.audit")))
    print("AUDIT=" + ",".join(audit))
    """
    )
    assert result.returncode == 0, result.stderr
    assert "HEAVY=\n" in result.stdout
    assert "AUDIT=\n" in result.stdout


def test_log_event_setting_cannot_leak_the_plaintext() -> None:
    """POWERTOOLS_LOGGER_LOG_EVENT=true must not make the logger print the event (it holds plaintext)."""
    result = _run_python(
        _NO_NETWORK
        + """
    import json, types
    import functions.encrypt.app as app

    class Once:
        def register_lambda_context(self, context):
            pass

        def __call__(self, payload, run):
            return {"stub": True}

    stub = types.SimpleNamespace(
        service=None, payload_mac_key=b"k" * 32, once=Once(), grant_once=Once()
    )
    app.runtime = lambda: stub
    context = types.SimpleNamespace(
        function_name="f", memory_limit_in_mb=128, aws_request_id="r",
        invoked_function_arn="arn:aws:lambda:us-east-1:123456789012:function:f",
        get_remaining_time_in_millis=lambda: 1000,
    )
    with open("events/encrypt/seal.json") as f:
        print(json.dumps(app.handler(json.load(f), context)))
    """,
        POWERTOOLS_LOGGER_LOG_EVENT="true",
    )
    assert result.returncode == 0, result.stderr
    assert '"status": "ok"' in result.stdout
    for secret in SECRETS:
        assert secret not in result.stdout
        assert secret not in result.stderr
