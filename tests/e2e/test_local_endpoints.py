"""The local runtime is an AWS endpoint like LocalStack's: localstack-client sessions and plain boto3 with
AWS_ENDPOINT_URL reach the stack that template.yaml created, and a request started through them is
decided by the same state machine."""

from __future__ import annotations

import json

import boto3
import localstack_client.session
import pytest

from infra.local.seed import SUPPORT_VAULT, TENANT
from reliquary.contracts.access import execution_name
from tests.support.flow import ITEM, Flow

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_a_localstack_client_session_drives_the_stack(flow: Flow) -> None:
    host = flow.stack.endpoint.removeprefix("http://")
    session = localstack_client.session.Session(localstack_host=host)
    sfn = session.client("stepfunctions")
    machines = {m["stateMachineArn"] for m in sfn.list_state_machines()["stateMachines"]}
    assert flow.stack.access_state_machine_arn in machines

    request = flow.access.request(flow.enrol(), TENANT, SUPPORT_VAULT, ITEM)
    started = sfn.start_execution(
        stateMachineArn=flow.stack.access_state_machine_arn,
        name=execution_name(request.tenant_id, request.request_id),
        input=request.execution_input(),
    )
    execution = flow.access.wait(started["executionArn"])
    assert execution.decision == "approve"
    # Paged: the test process's other stacks share the endpoint, past one page of 100 names.
    pages = session.client("dynamodb").get_paginator("list_tables").paginate()
    tables = [name for page in pages for name in page["TableNames"]]
    assert flow.stack.outputs["AuditTableName"] in tables


def test_boto3_with_aws_endpoint_url_sees_the_template_resources(
    flow: Flow, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", flow.stack.endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "anything")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "anything")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    cloudformation = boto3.client("cloudformation")
    (stack,) = cloudformation.describe_stacks(StackName=flow.stack.stack_name)["Stacks"]
    assert stack["StackStatus"] == "CREATE_COMPLETE"
    functions = {f["FunctionName"] for f in boto3.client("lambda").list_functions()["Functions"]}
    assert {flow.stack.resources[f] for f in ("EncryptFunction", "AgentVoteFunction")} <= functions
    # The functions answer through the Lambda API, in process, on the stack's own tables.
    answer = boto3.client("lambda").invoke(
        FunctionName=flow.stack.outputs["VerifyProofFunctionArn"],
        Payload=json.dumps(
            {"action": "issue_nonce", "tenant_id": TENANT, "vault_id": SUPPORT_VAULT}
        ).encode(),
    )
    issued = json.loads(answer["Payload"].read())
    assert issued["status"] == "ok", issued
    assert len(issued["result"]["nonce"]) == 62
    alarms = {a["AlarmName"] for a in boto3.client("cloudwatch").describe_alarms()["MetricAlarms"]}
    assert f"{flow.stack.stack_name}-AccessStateMachineFailedAlarm" in alarms


def test_an_input_without_its_optional_fields_is_decided_with_their_defaults(flow: Flow) -> None:
    request = flow.access.request(flow.enrol(), TENANT, SUPPORT_VAULT, ITEM)
    document = json.loads(request.execution_input())
    del document["purpose"], document["region"]
    arn = flow.stack.client("stepfunctions").start_execution(
        stateMachineArn=flow.stack.access_state_machine_arn,
        name=execution_name(request.tenant_id, request.request_id),
        input=json.dumps(document),
    )["executionArn"]
    execution = flow.access.wait(arn)
    assert execution.status == "SUCCEEDED", execution.error
    output = execution.output
    assert output is not None
    assert output["trust"]["region"] == "unknown"
    assert output["trust"]["facts"]["purpose"] == ""
