"""One pseudonym for a principal across the three functions that store one, against moto: the audit log's
decision (audit-append), the access history (score-trust) and the agents' memories (agent-vote) name a
subject by the same keyed value within a tenant, by unrelated values across tenants, and no table or
bucket holds the subject. The secret is one row of the vaults table, wrapped by KMS under its own
context; a row wrapped under another context stops the next cold start."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from functions.score_trust import app as trust_app
from reliquary.adapters.clients import build_root_of_trust
from reliquary.adapters.factory import build_vault_service
from reliquary.adapters.pseudonym_store import KEY_ROW, PARTITION, load_pseudonyms
from reliquary.errors import RootOfTrustError
from reliquary.vaults.models import MemoryKind, MemoryScope
from tests.functions.conftest import Invoke
from tests.functions.test_encrypt_handler import ok
from tests.support.attested import Attester, flow_json
from tests.support.aws import AwsStack

EVENTS_DIR = Path(__file__).resolve().parents[2] / "events"
SUBJECT = "support-agent-7"  # the principal of every sample event
TENANTS = ("acme", "globex")


def event(attester: Attester, function: str, name: str, *, flow: Any = None, **fields: Any) -> dict[str, Any]:
    """The sample flow task ``function``/``name`` with ``flow`` changes (the tenant, say), its results
    signed by this stack's stage keys as the stages that decided them sign them, and ``fields``."""
    loaded: dict[str, Any] = json.loads((EVENTS_DIR / function / f"{name}.json").read_text())
    signed = attester.attest({**loaded["flow"], **(flow or {})})
    return {**loaded, "flow": flow_json(signed), **fields}


def seal_sample_item(aws: AwsStack, tenant: str) -> None:
    """The samples' vault and item in ``tenant``: ScoreTrust reads the item's label."""
    service = build_vault_service(aws.settings)
    service.create_vault(tenant, "agent-memory")
    service.seal_item(
        tenant,
        "agent-memory",
        "customer-42-notes",
        b"a note about customer 42",
        memory_scope=MemoryScope(MemoryKind.USER, "customer-42"),
        sensitivity="restricted",
    )


def _scan(aws: AwsStack, table: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = aws.dynamodb.scan(TableName=table, ConsistentRead=True)["Items"]
    return items


def _stored_anywhere(aws: AwsStack) -> str:
    """Every row of every table and every object version of every bucket, as text."""
    rows = [_scan(aws, table) for table in aws.tables.values()]
    objects = []
    for bucket in (aws.settings.items_bucket, aws.settings.audit_bucket):
        for version in aws.s3.list_object_versions(Bucket=bucket).get("Versions", []):
            body = aws.s3.get_object(Bucket=bucket, Key=version["Key"], VersionId=version["VersionId"])
            objects.append(body["Body"].read().decode("utf-8", "replace"))
    return repr(rows) + "".join(objects)


def test_one_pseudonym_per_tenant_across_the_log_the_history_and_the_memories(
    aws: AwsStack, audit_append: Invoke, score_trust: Invoke, agent_vote: Invoke
) -> None:
    logged, recorded, remembered = {}, {}, {}
    attester = Attester(aws.settings, aws.dynamodb)
    for tenant in TENANTS:
        seal_sample_item(aws, tenant)
        in_tenant = {"tenant_id": tenant}
        decided = event(
            attester, "audit_append", "record_decision", flow=in_tenant, decided_at=int(time.time())
        )
        logged[tenant] = json.loads(ok(audit_append(decided), "record_decision")["entry"])["principal_hash"]
        scored = event(attester, "score_trust", "score", flow=in_tenant)
        ok(score_trust(scored), "score")  # stored for retries
        ok(score_trust(event(attester, "score_trust", "record_outcome", flow=in_tenant)), "record_outcome")
        ok(agent_vote(event(attester, "agent_vote", "vote", flow=in_tenant)), "vote")

    for row in _scan(aws, aws.settings.history_table):
        tenant, principal = row["pk"]["S"].removeprefix("TENANT#").split("#P#")
        recorded[tenant] = principal
    for row in _scan(aws, aws.settings.agent_memory_table):
        if row["pk"]["S"] != "KEY":  # the wrapped memory key
            tenant = row["pk"]["S"].removeprefix("TENANT#").split("#AGENT#")[0]
            remembered[tenant] = row["sk"]["S"].removeprefix("P#")

    names = load_pseudonyms(aws.settings, build_root_of_trust(aws.settings), aws.dynamodb)
    expected = {tenant: names.of(tenant, SUBJECT) for tenant in TENANTS}
    assert logged == recorded == remembered == expected
    assert len(set(expected.values())) == len(TENANTS)

    # The three cold starts shared one secret: one row, wrapped, the subject nowhere in the clear.
    keys = [r for r in _scan(aws, aws.settings.vaults_table) if r["pk"]["S"] == PARTITION]
    assert [(r["sk"]["S"], sorted(r)) for r in keys] == [(KEY_ROW, ["pk", "sk", "wrapped_key"])]
    assert SUBJECT not in _stored_anywhere(aws)


@pytest.mark.filterwarnings("ignore:No application metrics to publish")  # the cold start failed: none
def test_a_key_row_wrapped_under_another_context_is_refused_at_cold_start(
    aws: AwsStack, score_trust: Invoke
) -> None:
    attester = Attester(aws.settings, aws.dynamodb)
    outcome = event(attester, "score_trust", "record_outcome")
    ok(score_trust(outcome), "record_outcome")  # creates the secret
    history = _scan(aws, aws.settings.history_table)
    moved = aws.kms.encrypt(
        KeyId=aws.settings.kms_key_id,
        Plaintext=bytes(32),
        EncryptionContext={"purpose": "agent-memory", "version": "1"},
    )["CiphertextBlob"]
    aws.dynamodb.put_item(
        TableName=aws.settings.vaults_table,
        Item={"pk": {"S": PARTITION}, "sk": {"S": KEY_ROW}, "wrapped_key": {"B": moved}},
    )
    trust_app.reset_runtime()
    with pytest.raises(RootOfTrustError):
        score_trust(event(attester, "score_trust", "record_outcome", flow={"request_id": "access-0003"}))
    assert _scan(aws, aws.settings.history_table) == history  # nothing recorded without the secret
