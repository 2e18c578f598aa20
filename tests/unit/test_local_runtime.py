"""The local runtime's pieces that need no server: which resources it creates through the API instead of
moto's CloudFormation, how it resolves the template's intrinsics, the in-process Lambda executor, and
its errors. The whole runtime runs in tests/e2e/."""

from __future__ import annotations

import json
import os
import socket
import sys
import types
from typing import Any

import pytest

from infra.local import runtime
from infra.local.runtime import InProcessLambda, LocalFunction, LocalRuntimeError
from infra.template import load_template, sam_translate


@pytest.fixture(scope="module")
def translated() -> dict[str, Any]:
    return sam_translate()


def test_what_moto_cannot_create_is_set_apart_and_nothing_else(translated: dict[str, Any]) -> None:
    created, apart = runtime._split_for_api(translated)
    kinds = {res["Type"] for res in apart.values()}
    assert kinds == {"AWS::StepFunctions::StateMachine", "AWS::CloudWatch::Alarm", "AWS::S3::BucketPolicy"}
    assert "AccessStateMachine" in apart
    assert "AccessStateMachineFailedAlarm" in apart
    for kind in runtime.NOT_CREATED_LOCALLY:
        assert all(res["Type"] != kind for res in created["Resources"].values())
    assert set(created["Resources"]) | set(apart) | {
        lid for lid, res in translated["Resources"].items() if res["Type"] in runtime.NOT_CREATED_LOCALLY
    } == set(translated["Resources"])
    assert "AccessStateMachineArn" not in created["Outputs"]  # resolved after the API created it


def test_the_rest_api_is_left_out_and_the_api_function_kept(translated: dict[str, Any]) -> None:
    """moto's CloudFormation cannot create the REST API SAM generates: API Gateway's resources, the
    permissions that name the REST API and the handle that orders it are left out, nothing else;
    serve_api serves the app instead."""
    created, _ = runtime._split_for_api(translated)
    left_out = runtime.not_created_locally(translated)
    kinds = {translated["Resources"][lid]["Type"] for lid in left_out}
    assert {k for k in kinds if not k.startswith("AWS::ApiGateway::")} == {
        "AWS::Lambda::EventSourceMapping",
        "AWS::Lambda::Permission",
        "AWS::CloudFormation::WaitConditionHandle",
    }
    rest_api = {
        lid for lid, res in translated["Resources"].items() if res["Type"].startswith("AWS::ApiGateway::")
    }
    assert {"RestApi", "ApiUsagePlan", "ApiGatewayAccount"} <= rest_api <= left_out
    assert {"ApiFunction", "ApiFunctionRole", "TokenKeyA", "IdentityTable", "ApiAccessLogGroup"} <= set(
        created["Resources"]
    )
    # Every left-out resource is API Gateway's or names it, but the stream mapping and the anchor
    # schedule's permission to invoke audit-append (locally, the `anchor` action is called directly).
    for lid in left_out - rest_api - {"AuditAnchorSchedulePermission"}:
        resource = translated["Resources"][lid]
        assert (
            resource["Type"] == "AWS::Lambda::EventSourceMapping" or runtime._references(resource) & rest_api
        )
    assert translated["Resources"]["AuditAnchorSchedulePermission"]["Condition"] == "AnchorsCheckpoints"
    assert "ApiUrl" not in created["Outputs"]
    assert "ApiFunctionArn" in created["Outputs"]


def test_a_resource_that_needs_a_left_out_one_is_refused_clearly(translated: dict[str, Any]) -> None:
    broken = json.loads(json.dumps(translated))
    broken["Resources"]["ApiFunction"]["Properties"]["Environment"]["Variables"]["RELIQUARY_TOKEN_ISSUER"] = {
        "Fn::Sub": "https://${RestApi}.execute-api.${AWS::Region}.amazonaws.com"
    }
    with pytest.raises(LocalRuntimeError, match=r"ApiFunction .* not created locally"):
        runtime._split_for_api(broken)


def test_a_resource_that_needs_an_api_created_one_is_refused_clearly(translated: dict[str, Any]) -> None:
    broken = json.loads(json.dumps(translated))
    broken["Resources"]["Watcher"] = {
        "Type": "AWS::SNS::Topic",
        "Properties": {"TopicName": {"Fn::GetAtt": ["AccessStateMachine", "Name"]}},
    }
    with pytest.raises(LocalRuntimeError, match="Watcher"):
        runtime._split_for_api(broken)


def test_bucket_policies_lose_only_their_tls_statements() -> None:
    policy: dict[str, Any] = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "DenyInsecureTransport",
                "Effect": "Deny",
                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
            },
            {"Sid": "DenyOthers", "Effect": "Deny", "Principal": "*", "Action": "s3:DeleteBucket"},
        ],
    }
    kept = runtime._without_tls_only_statements(policy)
    assert [s["Sid"] for s in kept["Statement"]] == ["DenyOthers"]
    assert policy["Statement"][0]["Sid"] == "DenyInsecureTransport"  # the template's own is untouched


def _resolver(stage: str = "dev") -> runtime._Resolver:
    def no_clients(service: str) -> Any:
        raise AssertionError(f"no {service} client expected")

    resolver = runtime._Resolver(clients=no_clients, stack_name="st", template=load_template(), stage=stage)
    resolver.add("ItemsBucket", "AWS::S3::Bucket", "st-items-1")
    resolver.add(
        "Fn", "AWS::Lambda::Function", "st-fn", "arn:aws:lambda:us-east-1:123456789012:function:st-fn"
    )
    return resolver


def test_the_resolver_handles_the_intrinsics_the_template_uses() -> None:
    resolver = _resolver()
    assert resolver.resolve({"Ref": "ItemsBucket"}) == "st-items-1"
    assert resolver.resolve({"Fn::GetAtt": ["ItemsBucket", "Arn"]}) == "arn:aws:s3:::st-items-1"
    assert resolver.resolve({"Fn::Sub": "${ItemsBucket.Arn}/*"}) == "arn:aws:s3:::st-items-1/*"
    assert resolver.resolve({"Fn::Sub": "${AWS::StackName}-x in ${AWS::Region} (${Stage})"}) == (
        "st-x in us-east-1 (dev)"
    )
    assert resolver.resolve({"Fn::Sub": ["${A}-${!Literal}", {"A": {"Ref": "Fn"}}]}) == "st-fn-${Literal}"
    assert resolver.resolve({"Fn::GetAtt": ["Fn", "Arn"]}).endswith(":function:st-fn")
    assert resolver.resolve({"Fn::If": ["IsProd", "yes", "no"]}) == "no"
    assert _resolver("prod").resolve({"Fn::If": ["IsProd", "yes", "no"]}) == "yes"
    assert resolver.resolve({"Fn::Not": [{"Condition": "IsProd"}]}) is True
    assert resolver.resolve({"Fn::And": [{"Condition": "IsProd"}, True]}) is False
    assert resolver.resolve({"Fn::Or": [{"Condition": "IsProd"}, {"Fn::Equals": ["a", "a"]}]}) is True
    assert resolver.resolve([{"Ref": "AWS::NoValue"}, 1]) == [1]
    # The template's alarms: no topic (the default) leaves the actions out altogether.
    notify = {"Fn::If": ["HasAlarmTopic", [{"Ref": "AlarmTopicArn"}], {"Ref": "AWS::NoValue"}]}
    assert resolver.resolve({"AlarmActions": notify, "Period": 300}) == {"Period": 300}
    with pytest.raises(LocalRuntimeError, match="Nowhere"):
        resolver.resolve({"Ref": "Nowhere"})
    with pytest.raises(LocalRuntimeError, match="Fn::Base64"):
        resolver.resolve({"Fn::Base64": "x"})


@pytest.fixture
def fake_function(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    module = types.ModuleType("reliquary_fake_app")
    seen: dict[str, Any] = {}

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        if event.get("fail"):
            raise KeyError("boom")
        seen["env"] = os.environ.get("FAKE_SETTING")
        seen["leaked"] = {
            n: os.environ.get(n) for n in ("AWS_ENDPOINT_URL_DYNAMODB", "RELIQUARY_STAGE", "AWS_PROFILE")
        }
        seen["endpoint"] = os.environ.get("AWS_ENDPOINT_URL")
        seen["remaining"] = context.get_remaining_time_in_millis()
        return {"echo": event, "function": context.function_name}

    module.handler = handler  # type: ignore[attr-defined]
    module.seen = seen  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "reliquary_fake_app", module)
    return module


def test_the_executor_runs_the_handler_in_its_functions_environment(
    fake_function: types.ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The host's own settings must not reach the function (they would point it elsewhere).
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", "http://elsewhere:1")
    monkeypatch.setenv("RELIQUARY_STAGE", "prod")
    monkeypatch.setenv("AWS_PROFILE", "someone")
    executor = InProcessLambda("http://127.0.0.1:1", overrides={"POWERTOOLS_LOG_LEVEL": "WARNING"})
    executor.register(
        LocalFunction("Fake", "st-fake", "reliquary_fake_app", "handler", 30, {"FAKE_SETTING": "on"})
    )
    observed: list[tuple[str, dict[str, Any], float]] = []
    executor.observe(lambda f, e, s: observed.append((f, e, s)))
    before = os.environ.get("FAKE_SETTING")

    payload, errored = executor.invoke("st-fake", {"a": 1})

    assert errored is False
    assert json.loads(payload) == {"echo": {"a": 1}, "function": "st-fake"}
    assert fake_function.seen["env"] == "on"
    assert fake_function.seen["leaked"] == {
        "AWS_ENDPOINT_URL_DYNAMODB": None,
        "RELIQUARY_STAGE": None,
        "AWS_PROFILE": None,
    }
    assert fake_function.seen["endpoint"] == "http://127.0.0.1:1"
    assert os.environ["AWS_ENDPOINT_URL_DYNAMODB"] == "http://elsewhere:1"  # the host's, back after
    assert 0 < fake_function.seen["remaining"] <= 30_000
    assert os.environ.get("FAKE_SETTING") == before  # restored after the invocation
    assert [(f, e) for f, e, _ in observed] == [("Fake", {"a": 1})]


def test_a_raising_handler_is_a_lambda_error_step_functions_can_match(
    fake_function: types.ModuleType,
) -> None:
    executor = InProcessLambda("http://127.0.0.1:1")
    executor.register(LocalFunction("Fake", "st-fake", "reliquary_fake_app", "handler", 30, {}))
    payload, errored = executor.invoke("st-fake", {"fail": True})
    assert errored is True
    error = json.loads(payload)
    assert error["errorType"] == "KeyError"
    assert "boom" in error["errorMessage"]
    unknown, errored = executor.invoke("st-missing", {})
    assert errored is True
    assert "not a function of this stack" in json.loads(unknown)["errorMessage"]


def test_a_taken_port_is_refused_with_what_to_do() -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        with (
            pytest.raises(LocalRuntimeError, match=f"port {port} .* RELIQUARY_MOTO_PORT"),
            runtime.moto_server(port),
        ):
            pass


def test_a_prover_that_stops_answering_is_a_clear_error(tmp_path: Any) -> None:
    from infra.local import requester

    # A "node" that reads one request, says why it gives up on stderr, and exits: no answer.
    fake = tmp_path / "node"
    fake.write_text("#!/bin/sh\nread line\necho 'cannot load the circuits' >&2\nexit 3\n")
    fake.chmod(0o755)
    with (
        requester.Prover(timeout=10, node=str(fake)) as prover,
        pytest.raises(requester.RequesterError, match="cannot load"),
    ):
        prover.policy("seed")
    # One that never answers: the timeout, not a hang.
    fake.write_text("#!/bin/sh\nsleep 30\n")
    with (
        requester.Prover(timeout=0.5, node=str(fake)) as prover,
        pytest.raises(requester.RequesterError, match=r"within 0\.5 s"),
    ):
        prover.policy("seed")


def test_an_invocation_that_cannot_get_its_turn_says_why_instead_of_hanging(
    fake_function: types.ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading

    executor = InProcessLambda("http://127.0.0.1:1")
    executor.register(LocalFunction("Fake", "st-fake", "reliquary_fake_app", "handler", 30, {}))
    monkeypatch.setattr(runtime, "LOCK_WAIT_SECONDS", 0.2)
    holding, release = threading.Event(), threading.Event()

    def hold() -> None:
        with executor._lock:
            holding.set()
            release.wait(5)

    holder = threading.Thread(target=hold)
    holder.start()
    holding.wait(5)
    try:
        payload, errored = executor.invoke("st-fake", {})
    finally:
        release.set()
        holder.join()
    assert errored is True
    assert "synchronously" in json.loads(payload)["errorMessage"]
    assert executor.invoke("st-fake", {"a": 1})[1] is False  # the next one runs once the turn is free
