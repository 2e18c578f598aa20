"""The API's calls into the system: synchronous Lambda invocations of the capability functions and the
access state machine's executions (the only boto3 the API function uses besides its read-only stores)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, cast

from botocore.exceptions import BotoCoreError, ClientError

from reliquary.errors import (
    IdempotencyConflictError,
    ReliquaryError,
    StorageUnavailableError,
    TransientError,
    error_class_for,
)
from reliquary.flow.executions import execution_name
from reliquary.flow.state import FlowRequest
from reliquary.gateway import Capability, Execution, ExecutionStatus

# A function's answer carries at most this much JSON (Lambda's synchronous response limit is 6 MB).
MAX_PAYLOAD_BYTES = 6 * 1024 * 1024
_THROTTLED = frozenset({"TooManyRequestsException", "ThrottlingException", "ServiceUnavailableException"})


def _refusal(error: Mapping[str, Any]) -> ReliquaryError:
    """The typed error a function's refusal names, with its message and details (both already bounded
    and free of secrets by the function's own contract)."""
    cls = error_class_for(str(error.get("code", "")))
    exc = cls.__new__(cls)  # some classes fix their message in __init__: set the function's own words
    ReliquaryError.__init__(exc, str(error.get("message", "refused")), **dict(error.get("details") or {}))
    return exc


def _platform_error(exc: ClientError | BotoCoreError, what: str) -> ReliquaryError:
    code = exc.response.get("Error", {}).get("Code", "") if isinstance(exc, ClientError) else ""
    if code in _THROTTLED or isinstance(exc, BotoCoreError):
        return StorageUnavailableError(f"{what} is unavailable; retry later")
    return TransientError(f"{what} failed ({code or type(exc).__name__})")


class LambdaFunctions:
    """``Functions`` over the Lambda API: one RequestResponse invocation per call."""

    def __init__(self, client: Any, names: Mapping[Capability, str]) -> None:
        self._client = client
        self._names = dict(names)

    def call(self, capability: Capability, event: Mapping[str, Any]) -> dict[str, Any]:
        try:
            response = self._client.invoke(
                FunctionName=self._names[capability],
                InvocationType="RequestResponse",
                Payload=json.dumps(event, separators=(",", ":")).encode(),
            )
            raw = response["Payload"].read(MAX_PAYLOAD_BYTES + 1)
        except (ClientError, BotoCoreError) as exc:
            raise _platform_error(exc, f"the {capability} function") from exc
        if response.get("FunctionError") or len(raw) > MAX_PAYLOAD_BYTES:
            # An unhandled error (the functions raise only transient ones) or a crash: retryable.
            raise TransientError(f"the {capability} function failed; retry later")
        try:
            payload = json.loads(raw)
        except ValueError as exc:
            raise TransientError(f"the {capability} function answered unreadably") from exc
        if not isinstance(payload, dict) or payload.get("status") not in {"ok", "error"}:
            raise TransientError(f"the {capability} function answered unreadably")
        if payload["status"] == "error":
            raise _refusal(payload.get("error") or {})
        return cast("dict[str, Any]", payload.get("result") or {})


class StepFunctionsExecutions:
    """``Executions`` of the access state machine, named per (tenant, request id)."""

    def __init__(self, client: Any, state_machine_arn: str) -> None:
        self._client = client
        self._arn = state_machine_arn
        # arn:aws:states:<region>:<account>:stateMachine:<name> -> ...:execution:<name>:<execution>
        self._execution_prefix = state_machine_arn.replace(":stateMachine:", ":execution:", 1)

    def _execution_arn(self, tenant_id: str, request_id: str) -> str:
        return f"{self._execution_prefix}:{execution_name(tenant_id, request_id)}"

    def start(self, request: FlowRequest, *, correlation_id: str) -> bool:
        document = request.execution_input()
        try:
            self._client.start_execution(
                stateMachineArn=self._arn,
                name=execution_name(request.tenant_id, request.request_id),
                input=document,
                # An X-Ray trace header: the execution joins the API request's trace.
                traceHeader=f"Root={correlation_id}",
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ExecutionAlreadyExists":
                raise _platform_error(exc, "the access state machine") from exc
            existing = self.get(request.tenant_id, request.request_id)
            if existing is None or existing.request != request:
                raise IdempotencyConflictError(
                    "this request id was already used for another access request", field="Idempotency-Key"
                ) from exc
            return False
        except BotoCoreError as exc:
            raise _platform_error(exc, "the access state machine") from exc
        return True

    def get(self, tenant_id: str, request_id: str) -> Execution | None:
        try:
            found = self._client.describe_execution(executionArn=self._execution_arn(tenant_id, request_id))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in {"ExecutionDoesNotExist", "ResourceNotFound"}:
                return None
            raise _platform_error(exc, "the access state machine") from exc
        except BotoCoreError as exc:
            raise _platform_error(exc, "the access state machine") from exc
        request = FlowRequest.model_validate_json(found["input"])
        if request.tenant_id != tenant_id or request.request_id != request_id:
            return None  # a hashed name that collides would be another request: never show it
        output = json.loads(found["output"]) if found.get("output") else None
        stopped = found.get("stopDate")
        return Execution(
            status=cast("ExecutionStatus", found["status"]),
            request=request,
            started_at=int(found["startDate"].timestamp()),
            stopped_at=int(stopped.timestamp()) if stopped is not None else None,
            output=output if isinstance(output, dict) else None,
            error=found.get("error"),
        )
