"""The local runtime's changes to moto's Step Functions interpreter (infra/local/interpreter.py): the same
definitions executed with the same results, each execution isolated from the others, and the private
hooks they replace still where moto 5.2.5 has them."""

from __future__ import annotations

import copy
import enum
import inspect
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import boto3
import moto
import pytest
from moto import mock_aws

from infra.local import interpreter
from infra.local.interpreter import (
    ExecutionEvents,
    install_execution_events,
    install_interpreter_speedups,
    json_copy,
    parsed_program,
)

# Pass, Choice and an inline Map (no Lambda): what the access flow does between its tasks, with data
# that each state reads, reshapes and writes back.
DEFINITION = {
    "StartAt": "Admit",
    "States": {
        "Admit": {
            "Type": "Pass",
            "Parameters": {"flow": {"id.$": "$.id", "items.$": "$.items", "votes": []}},
            "Next": "Quorum",
        },
        "Quorum": {
            "Type": "Map",
            "ItemsPath": "$.flow.items",
            "ItemSelector": {"item.$": "$$.Map.Item.Value", "id.$": "$.flow.id"},
            "ItemProcessor": {
                "ProcessorConfig": {"Mode": "INLINE"},
                "StartAt": "Vote",
                "States": {
                    "Vote": {
                        "Type": "Pass",
                        "Parameters": {"vote.$": "States.Format('{}:{}', $.id, $.item)"},
                        "End": True,
                    }
                },
            },
            "ResultPath": "$.flow.votes",
            "Next": "Check",
        },
        "Check": {
            "Type": "Choice",
            "Choices": [{"Variable": "$.flow.id", "StringEquals": "deny-me", "Next": "Denied"}],
            "Default": "Approved",
        },
        "Approved": {"Type": "Pass", "Result": "approve", "ResultPath": "$.decision", "End": True},
        "Denied": {"Type": "Pass", "Result": "deny", "ResultPath": "$.decision", "End": True},
    },
}
TERMINAL = {"SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"}


class _Colour(enum.Enum):
    RED = 1


class _Box:
    def __init__(self, content: list[int]) -> None:
        self.content = content


# ---------------------------------------------------------------------------------------- json_copy
def test_json_copy_is_a_deep_copy_of_json_data() -> None:
    data: dict[str, Any] = {
        "a": [1, 2.5, None, True, "x", {"b": [{"c": "d"}]}],
        "e": {"f": -0.0, "g": 10**30},
    }
    copied = json_copy(data)
    assert copied == data == copy.deepcopy(data)
    copied["a"][5]["b"][0]["c"] = "changed"
    copied["e"]["h"] = 1
    assert data["a"][5]["b"][0]["c"] == "d"  # nothing shared
    assert "h" not in data["e"]


def test_json_copy_falls_back_to_deepcopy_for_what_is_not_json() -> None:
    box = _Box([1, 2])
    copied = json_copy([{"colour": _Colour.RED, "box": box}])
    assert copied[0]["colour"] is _Colour.RED  # enum members are singletons, as deepcopy keeps them
    assert copied[0]["box"] is not box
    assert copied[0]["box"].content == [1, 2]
    copied[0]["box"].content.append(3)
    assert box.content == [1, 2]


# ------------------------------------------------------------------------------------ parsed programs
def _definition_text(label: str) -> str:
    return json.dumps({**DEFINITION, "Comment": label})


def test_a_definition_is_parsed_once_per_text(monkeypatch: pytest.MonkeyPatch) -> None:
    from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser

    parsed: list[str] = []

    def parse(definition: str) -> tuple[object, None]:
        parsed.append(definition)
        return object(), None

    monkeypatch.setattr(AmazonStateLanguageParser, "parse", staticmethod(parse))
    first = parsed_program(_definition_text("parsed once"))
    assert parsed_program(_definition_text("parsed once")) is first
    assert parsed_program(_definition_text("another text")) is not first
    assert parsed == [_definition_text("parsed once"), _definition_text("another text")]
    parsed_program.cache_clear()  # nothing of this fake stays for the executions below


# ------------------------------------------------------------------------ executions, with the patches
@pytest.fixture
def sfn(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    install_interpreter_speedups()
    install_execution_events()
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        yield boto3.client("stepfunctions", region_name="us-east-1")


def _run_all(sfn: Any, machine: str, inputs: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """Start every input at once (the executions overlap), wait for each without polling."""
    arns = [
        sfn.start_execution(stateMachineArn=machine, name=f"run-{i}", input=json.dumps(value))["executionArn"]
        for i, value in enumerate(inputs)
    ]
    results = []
    for arn in arns:
        with interpreter.EXECUTION_EVENTS.watching(arn) as ended:
            described = sfn.describe_execution(executionArn=arn)
            if described["status"] not in TERMINAL:
                assert ended.wait(30), f"{arn} did not end"
                described = sfn.describe_execution(executionArn=arn)
        assert described["status"] == "SUCCEEDED", described
        results.append((arn, json.loads(described["output"])))
    return results


def test_executions_of_one_parsed_definition_stay_apart(sfn: Any) -> None:
    machine = sfn.create_state_machine(
        name="shared-program",
        definition=_definition_text("executions stay apart"),
        roleArn="arn:aws:iam::123456789012:role/sfn",
    )["stateMachineArn"]
    inputs = [
        {"id": "first", "items": ["a", "b", "c"]},
        {"id": "deny-me", "items": ["x"]},
        {"id": "third", "items": []},
    ]

    ran = _run_all(sfn, machine, inputs)

    assert [output for _, output in ran] == [
        {"flow": {"id": "first", "items": ["a", "b", "c"], "votes": [{"vote": f"first:{i}"} for i in "abc"]}}
        | {"decision": "approve"},
        {"flow": {"id": "deny-me", "items": ["x"], "votes": [{"vote": "deny-me:x"}]}, "decision": "deny"},
        {"flow": {"id": "third", "items": [], "votes": []}, "decision": "approve"},
    ]
    # The execution's own input, as recorded, is untouched by the states that reshaped their copies.
    history = sfn.get_execution_history(executionArn=ran[0][0])
    started = history["events"][0]["executionStartedEventDetails"]["input"]
    assert json.loads(started) == inputs[0]


# ---------------------------------------------------------------------------------- execution events
def test_a_watcher_is_woken_by_the_end_of_its_execution_only() -> None:
    events = ExecutionEvents()
    with events.watching("arn:one") as one, events.watching("arn:two") as two:
        waker = threading.Timer(0.05, events.terminated, args=("arn:one",))
        waker.start()
        began = time.monotonic()
        assert one.wait(5)
        assert time.monotonic() - began < 5
        assert not two.is_set()
        waker.join()
    events.terminated("arn:three")  # nobody watches: nothing is kept for it
    assert events._watched == {}


def test_an_end_before_watching_is_not_signalled_later() -> None:
    # Watch first, then read the status: an execution that ended before is seen ended there.
    events = ExecutionEvents()
    events.terminated("arn:early")
    with events.watching("arn:early") as ended:
        assert not ended.is_set()


# ---------------------------------------------------------------------------- the hooks, as moto has them
def test_moto_still_has_the_hooks_the_interpreter_changes_replace() -> None:
    # A moto upgrade must re-check each of these (docs/local-runtime.md).
    assert moto.__version__ == "5.2.5"
    from moto.stepfunctions.parser.asl.component.state.exec.state_task import lambda_eval_utils
    from moto.stepfunctions.parser.asl.utils import boto_client, json_path
    from moto.stepfunctions.parser.backend.execution import BaseExecutionWorkerCommunication
    from moto.stepfunctions.parser.backend.execution_worker import ExecutionWorker

    assert list(inspect.signature(ExecutionWorker._get_evaluation_entrypoint).parameters) == ["self"]
    assert list(inspect.signature(BaseExecutionWorkerCommunication.terminated).parameters) == ["self"]
    # moto's own, which the runtime wraps where the Lambda task calls it (by name, in that module).
    assert list(inspect.signature(boto_client.boto_client_for).parameters) == [
        "region",
        "service",
        "state_credentials",
    ]
    assert "boto_client_for(" in inspect.getsource(lambda_eval_utils._invoke_lambda_function)
    assert "parse(path)" in inspect.getsource(json_path.extract_json)  # the module-level name it wraps
    from importlib import import_module

    for name in interpreter._COPYING_MODULES:
        module = import_module(name)
        # Each copies state data with copy.deepcopy and nothing else of the copy module.
        source = inspect.getsource(module)
        assert "copy.deepcopy(" in source, name
        assert {word.split("(")[0] for word in source.split() if word.startswith("copy.")} <= {
            "copy.deepcopy",
            "copy.copy",
        }, name
