"""A principal's access history on DynamoDB (moto): recent events in order, bounded by time, per tenant and
principal, no subject stored in the clear, and one event per request id."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterator

import pytest

from reliquary.adapters.dynamodb import TableConfig
from reliquary.adapters.history_store import DynamoDBHistoryStore
from reliquary.crypto.pseudonym import Pseudonyms
from reliquary.trust.model import AccessEvent
from tests.support.aws import AwsStack
from tests.support.vaults import shared_moto_stack

pytestmark = pytest.mark.integration
NOW = 1_795_651_200
PSEUDONYMS = Pseudonyms(bytes(range(32)))


@pytest.fixture(scope="module")
def aws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AwsStack]:
    with shared_moto_stack(tmp_path_factory) as stack:
        yield stack


def test_recent_events_in_order_per_principal_without_the_subject(aws: AwsStack) -> None:
    settings = aws.settings
    store = DynamoDBHistoryStore(
        TableConfig(settings.history_table, settings.region, settings.endpoint_url), pseudonyms=PSEUDONYMS
    )
    tenant, subject = f"t{uuid.uuid4().hex[:8]}", "alice@example.com"
    events = [
        AccessEvent(time=NOW - age, outcome=outcome, device="d1", region="eu-west-1")
        for age, outcome in ((7200, "approve"), (600, "failure"), (60, "approve"), (60, "deny"))
    ]
    for event in events:
        store.record(tenant, subject, event, expires_at=event.time + 86_400)
    recent = store.recent(tenant, subject, since=NOW - 3600)
    assert sorted(recent, key=lambda e: (e.time, e.outcome)) == sorted(
        events[1:], key=lambda e: (e.time, e.outcome)
    )
    assert [e.time for e in recent] == sorted(e.time for e in recent)
    assert store.recent(tenant, "bob@example.com", since=0) == []
    assert store.recent("another-tenant", subject, since=0) == []
    rows = aws.dynamodb.scan(TableName=settings.history_table)["Items"]
    assert rows
    assert subject not in json.dumps(rows)
    assert all(int(r["expires_at"]["N"]) > NOW for r in rows)


def test_recording_a_request_again_overwrites_its_event(aws: AwsStack) -> None:
    settings = aws.settings
    store = DynamoDBHistoryStore(
        TableConfig(settings.history_table, settings.region, settings.endpoint_url), pseudonyms=PSEUDONYMS
    )
    tenant, subject = f"t{uuid.uuid4().hex[:8]}", "alice@example.com"
    approved = AccessEvent(time=NOW - 60, outcome="approve", device="d1", region="eu-west-1")
    for _ in range(3):  # Step Functions retries the task: one event per request
        store.record(tenant, subject, approved, expires_at=NOW + 86_400, event_id="access-0001")
    assert store.recent(tenant, subject, since=0) == [approved]
    denied = approved.model_copy(update={"outcome": "deny"})
    store.record(tenant, subject, denied, expires_at=NOW + 86_400, event_id="access-0001")
    assert store.recent(tenant, subject, since=0) == [denied]  # the retry's event replaces the first
    store.record(tenant, subject, approved, expires_at=NOW + 86_400, event_id="access-0002")
    assert sorted(e.outcome for e in store.recent(tenant, subject, since=0)) == ["approve", "deny"]
    # The sort key: the time, then the first 16 hex digits of SHA-256 of the request id.
    rows = aws.dynamodb.query(
        TableName=settings.history_table,
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": f"TENANT#{tenant}#P#{PSEUDONYMS.of(tenant, subject)}"}},
    )["Items"]
    assert sorted(r["sk"]["S"] for r in rows) == sorted(
        f"EVENT#{NOW - 60:012d}#{hashlib.sha256(request.encode()).hexdigest()[:16]}"
        for request in ("access-0001", "access-0002")
    )
    # Without an event id, every call adds an event (as before).
    other = f"t{uuid.uuid4().hex[:8]}"
    for _ in range(2):
        store.record(other, subject, approved, expires_at=NOW + 86_400)
    assert store.recent(other, subject, since=0) == [approved, approved]
