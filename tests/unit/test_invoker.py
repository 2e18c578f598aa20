"""The API's adapters to the functions and the executions, over recording stand-ins of the boto3
clients: the correlation id reaches the execution, a taken request id is idempotent or a conflict, and
a function's refusal comes back as its typed error."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from reliquary.adapters.invoker import LambdaFunctions, StepFunctionsExecutions
from reliquary.errors import IdempotencyConflictError, NonceUsedError, TransientError
from reliquary.flow.executions import execution_name
from reliquary.flow.state import FlowRequest
from reliquary.gateway import Capability

MACHINE = "arn:aws:states:us-east-1:123456789012:stateMachine:reliquary-access"
TRACE = "1-65f0a1b2-0123456789abcdef01234567"


SAMPLE = Path(__file__).resolve().parents[2] / "events" / "access" / "request.json"


def _request(purpose: str | None = None) -> FlowRequest:
    document = json.loads(SAMPLE.read_text(encoding="utf-8"))
    if purpose is not None:
        document["purpose"] = purpose
    return FlowRequest.model_validate(document)


class StepFunctions:
    def __init__(self) -> None:
        self.started: list[dict[str, Any]] = []
        self.executions: dict[str, str] = {}  # execution ARN -> input

    def start_execution(self, **call: Any) -> dict[str, Any]:
        self.started.append(call)
        arn = f"{MACHINE.replace(':stateMachine:', ':execution:')}:{call['name']}"
        if arn in self.executions:
            raise ClientError({"Error": {"Code": "ExecutionAlreadyExists"}}, "StartExecution")
        self.executions[arn] = call["input"]
        return {"executionArn": arn}

    def describe_execution(self, executionArn: str) -> dict[str, Any]:  # noqa: N803  (boto3's name)
        if executionArn not in self.executions:
            raise ClientError({"Error": {"Code": "ExecutionDoesNotExist"}}, "DescribeExecution")
        return {"status": "RUNNING", "input": self.executions[executionArn], "startDate": datetime.now(UTC)}


def test_the_execution_is_named_by_tenant_and_request_and_carries_the_correlation_id() -> None:
    client = StepFunctions()
    request = _request()
    assert StepFunctionsExecutions(client, MACHINE).start(request, correlation_id=TRACE) is True
    (call,) = client.started
    assert call["stateMachineArn"] == MACHINE
    assert call["name"] == execution_name(request.tenant_id, request.request_id)
    assert call["traceHeader"] == f"Root={TRACE}"
    assert json.loads(call["input"]) == request.request_json()


def test_the_same_request_again_is_a_no_op_and_another_under_its_id_a_conflict() -> None:
    client = StepFunctions()
    executions = StepFunctionsExecutions(client, MACHINE)
    executions.start(_request(), correlation_id=TRACE)
    assert executions.start(_request(), correlation_id=TRACE) is False
    with pytest.raises(IdempotencyConflictError):
        executions.start(_request(purpose="something else"), correlation_id=TRACE)
    assert len(client.executions) == 1


class Lambda:
    def __init__(self, payload: dict[str, Any], *, function_error: bool = False) -> None:
        self.payload = payload
        self.function_error = function_error
        self.calls: list[dict[str, Any]] = []

    def invoke(self, **call: Any) -> dict[str, Any]:
        self.calls.append(call)
        answer: dict[str, Any] = {"Payload": io.BytesIO(json.dumps(self.payload).encode())}
        if self.function_error:
            answer["FunctionError"] = "Unhandled"
        return answer


def test_a_refusal_comes_back_as_its_typed_error_with_the_functions_words() -> None:
    refusal = {"code": "nonce_used", "message": "the nonce was already used", "details": {"field": "nonce"}}
    client = Lambda({"status": "error", "action": "verify", "error": refusal})
    functions = LambdaFunctions(client, {Capability.VERIFY_PROOF: "reliquary-verify-proof"})
    with pytest.raises(NonceUsedError) as caught:
        functions.call(Capability.VERIFY_PROOF, {"action": "issue_nonce"})
    assert (caught.value.message, caught.value.details) == ("the nonce was already used", {"field": "nonce"})
    assert client.calls[0]["FunctionName"] == "reliquary-verify-proof"


def test_a_result_is_returned_and_a_crash_is_transient() -> None:
    ok = LambdaFunctions(
        Lambda({"status": "ok", "action": "seal", "result": {"version": 1}}), {Capability.ENCRYPT: "e"}
    )
    assert ok.call(Capability.ENCRYPT, {"action": "seal"}) == {"version": 1}
    crashed = LambdaFunctions(
        Lambda({"errorMessage": "boom"}, function_error=True), {Capability.ENCRYPT: "e"}
    )
    with pytest.raises(TransientError):
        crashed.call(Capability.ENCRYPT, {"action": "seal"})
