"""A principal's access history on DynamoDB (moto): recent events in order, bounded by time, per tenant and
principal, and no subject stored in the clear."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import pytest

from reliquary.adapters.dynamodb import TableConfig
from reliquary.adapters.history_store import DynamoDBHistoryStore
from reliquary.trust.model import AccessEvent
from tests.support.aws import AwsStack
from tests.support.vaults import shared_moto_stack

pytestmark = pytest.mark.integration
NOW = 1_795_651_200


@pytest.fixture(scope="module")
def aws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AwsStack]:
    with shared_moto_stack(tmp_path_factory) as stack:
        yield stack


def test_recent_events_in_order_per_principal_without_the_subject(aws: AwsStack) -> None:
    settings = aws.settings
    store = DynamoDBHistoryStore(TableConfig(settings.history_table, settings.region, settings.endpoint_url))
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
