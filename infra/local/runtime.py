"""The embedded local runtime: the whole stack on 127.0.0.1, from template.yaml, without Docker.

* moto serves every AWS API on one port (4566 by default, the LocalStack edge port), with its Step
  Functions interpreter switched on.
* template.yaml is translated offline (samtranslator) and created through moto's CloudFormation, so the
  local tables, buckets, key, roles and functions are the template's own: there is no second list.
* Lambda invocations run in this process on the real handlers (``functions/<name>/app.py``), with the
  environment CloudFormation resolved for each function; the layers' code is this checkout's
  (``layers/core`` and ``layers/native``, installed by ``make setup``).

moto's known gaps are handled here, each where it bites (docs/local-runtime.md lists them):
function code must exist in S3 before CloudFormation creates a function (the translated template points at
a local artifacts bucket, filled with zips of the code); moto has no in-process Lambda executor (its
private ``LambdaFunction._invoke_lambda`` is replaced, and a test pins that hook); CloudFormation ignores
``DefinitionSubstitutions`` and puts state machines where the interpreter does not run them (so state
machines, and the resources that refer to them, are created through the API after the stack); its
KMS keys are all symmetric (``KeySpec`` is honoured here); it cannot create the REST API SAM generates
(left out: ``infra.local.api.serve_api`` serves the same app on 127.0.0.1).
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import os
import socket
import threading
import time
import traceback
import urllib.request
import uuid
import zipfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import import_module
from pathlib import Path
from typing import Any

from infra.local.interpreter import install_execution_events, install_interpreter_speedups
from infra.template import REPO_ROOT, IntrinsicResolver, load_template, sam_translate

REGION = "us-east-1"
ACCOUNT_ID = "123456789012"  # moto's default account
DEFAULT_PORT = 4566
DEFAULT_STACK = "reliquary-local"
ARTIFACTS_BUCKET = "reliquary-offline-artifacts"  # where infra.template.sam_translate points CodeUri
STATE_MACHINE_TYPE = "AWS::StepFunctions::StateMachine"
# Types moto's CloudFormation skips (alarms, bucket policies) or creates where its Step Functions
# interpreter does not run them (state machines): the runtime creates these through the API.
_API_TYPES = frozenset({STATE_MACHINE_TYPE, "AWS::CloudWatch::Alarm", "AWS::S3::BucketPolicy"})
# Types not created locally, and why.
_REST_API = "moto's CloudFormation cannot create the REST API SAM generates; serve_api runs its app instead"
NOT_CREATED_LOCALLY = {
    # moto delivers every stream record to the function synchronously, inside the write that made it,
    # and ignores the mapping's filter (TTL removals only); moto's TTL never removes a row, so the
    # filtered mapping would never fire here anyway. tests/unit/test_expiry_stream.py covers the handler.
    "AWS::Lambda::EventSourceMapping": "moto would invoke the function inside every items-table write",
    # The REST API and everything of API Gateway's: infra.local.api.serve_api serves the same FastAPI
    # app with uvicorn on 127.0.0.1 (what `sam local start-api` would do, without Docker).
    "AWS::ApiGateway::RestApi": _REST_API,
    "AWS::ApiGateway::Deployment": _REST_API,
    "AWS::ApiGateway::Stage": _REST_API,
    "AWS::ApiGateway::UsagePlan": _REST_API,
    "AWS::ApiGateway::Account": _REST_API,
    "AWS::Lambda::Permission": "API Gateway's permission to invoke the API function names the REST API",
    "AWS::CloudFormation::WaitConditionHandle": "it only orders the REST API after API Gateway's settings",
}
# moto accepts any credentials; these never leave this machine.
LOCAL_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local"}


class LocalRuntimeError(RuntimeError):
    """The local runtime cannot start or do what was asked; the message says why and what to do."""


def aws_client(endpoint: str, service: str) -> Any:
    """A boto3 client for ``service`` at the local endpoint (moto takes any credentials)."""
    import boto3  # noqa: PLC0415  (the runtime's clients only; handlers build their own)

    return boto3.session.Session().client(  # type: ignore[call-overload]
        service,
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id=LOCAL_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=LOCAL_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    )


# ---------------------------------------------------------------------------------------------- server
def port_is_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def moto_server(port: int = DEFAULT_PORT) -> Iterator[str]:
    """moto on 127.0.0.1:``port`` with Step Functions executing; yields the endpoint URL.

    ``MOTO_PORT`` is set to ``port``: moto's Step Functions interpreter calls the other services there."""
    try:
        import werkzeug.serving  # noqa: PLC0415
        from moto.server import ThreadedMotoServer  # noqa: PLC0415  (a development dependency)
    except ImportError as exc:
        raise LocalRuntimeError(f"moto[server] is not installed ({exc}): run `make setup` first") from exc
    if not port_is_free("127.0.0.1", port):
        raise LocalRuntimeError(
            f"port {port} on 127.0.0.1 is taken (another moto, LocalStack or `make run`?); stop it, or "
            f"choose another port: RELIQUARY_MOTO_PORT=<port> make run"
        )
    # One log line per moto request drowns everything else.
    werkzeug.serving.WSGIRequestHandler.log_request = lambda *_args, **_kwargs: None  # type: ignore[method-assign]
    previous_port = os.environ.get("MOTO_PORT")
    os.environ["MOTO_PORT"] = str(port)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    try:
        _post_json(f"{endpoint}/moto-api/config", {"stepfunctions": {"execute_state_machine": True}})
        yield endpoint
    finally:
        server.stop()
        if previous_port is None:
            os.environ.pop("MOTO_PORT", None)
        else:
            os.environ["MOTO_PORT"] = previous_port


def _post_json(url: str, body: Mapping[str, Any]) -> None:
    request = urllib.request.Request(  # noqa: S310  (a loopback URL built here)
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
        if response.status >= 300:
            raise LocalRuntimeError(f"moto refused {url}: HTTP {response.status}")


# ------------------------------------------------------------------------------ in-process Lambda
@dataclass(frozen=True)
class LocalFunction:
    """A function of the template, as the in-process executor runs it."""

    logical_id: str
    physical_name: str
    module: str  # e.g. functions.encrypt.app
    handler: str  # attribute of the module
    timeout_seconds: int
    environment: dict[str, str]


@dataclass(frozen=True)
class LambdaContext:
    """The attributes of Lambda's context object that the handlers and powertools read."""

    function_name: str
    invoked_function_arn: str
    aws_request_id: str
    memory_limit_in_mb: int = 1024
    function_version: str = "$LATEST"
    deadline: float = field(default=0.0)

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.deadline - time.monotonic()) * 1000))


Observer = Callable[[str, dict[str, Any], float], None]
LOCK_WAIT_SECONDS = 900  # the longest any function of the template may run


class InProcessLambda:
    """Runs the stack's Lambda invocations in this process, one at a time.

    Environment variables are process-wide, so each invocation gets its function's environment for its
    duration (and settings are re-read), under one lock. Handlers are looked up at each invocation, so a
    test may wrap a module's ``handler`` to inject faults."""

    def __init__(self, endpoint: str, *, overrides: Mapping[str, str] | None = None) -> None:
        self._endpoint = endpoint
        self._overrides = dict(overrides or {})
        self._functions: dict[str, LocalFunction] = {}
        self._lock = threading.RLock()
        self._observers: list[Observer] = []
        self._cold_started: set[str] = set()

    def register(self, function: LocalFunction) -> None:
        self._functions[function.physical_name] = function

    def observe(self, observer: Observer) -> None:
        """Call ``observer(logical_id, event, seconds)`` after each invocation (benchmarks use it)."""
        self._observers.append(observer)

    @property
    def functions(self) -> dict[str, LocalFunction]:
        return {f.logical_id: f for f in self._functions.values()}

    def environment(self, logical_id: str) -> dict[str, str]:
        """The whole environment an invocation of ``logical_id`` runs in: the function's own, as
        CloudFormation resolved it, with this runtime's overrides, endpoint and local credentials."""
        function = self.functions[logical_id]
        return {**function.environment, **self._aws_environment(function)}

    def invoke(self, physical_name: str, event: Any) -> tuple[str, bool]:
        """The invocation's response payload (JSON) and whether it is a function error."""
        function = self._functions.get(physical_name)
        if function is None:
            return _error_payload(LookupError(f"{physical_name} is not a function of this stack")), True
        # One invocation at a time; a wait longer than any function may run means a handler's own AWS
        # call made moto invoke a function synchronously (a deadlock): say so instead of hanging.
        if not self._lock.acquire(timeout=LOCK_WAIT_SECONDS):
            stuck = LocalRuntimeError(
                f"{function.logical_id} waited {LOCK_WAIT_SECONDS} s for another invocation to finish; "
                "a handler's AWS call probably made moto invoke a function synchronously"
            )
            return _error_payload(stuck), True
        try:
            with _environment({**function.environment, **self._aws_environment(function)}):
                _clear_settings()
                # The handler's time: its (first) import, the call and its result's serialization, as
                # Lambda bills it; the environment swap around it is this runtime's dispatch.
                started = time.perf_counter()
                try:
                    module = import_module(function.module)
                    if function.logical_id not in self._cold_started:
                        # A cold start on this stack: handlers cache what they built for another one.
                        self._cold_started.add(function.logical_id)
                        reset = getattr(module, "reset_runtime", None)
                        if callable(reset):
                            reset()
                    handler = getattr(module, function.handler)
                    context = LambdaContext(
                        function_name=function.physical_name,
                        invoked_function_arn=f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{physical_name}",
                        aws_request_id=str(uuid.uuid4()),
                        deadline=time.monotonic() + function.timeout_seconds,
                    )
                    result = handler(event, context)
                    payload, errored = json.dumps(result), False
                except Exception as exc:  # noqa: BLE001  (Lambda reports any error to its caller)
                    payload, errored = _error_payload(exc), True
                finally:
                    elapsed = time.perf_counter() - started
                    _clear_settings()
        finally:
            self._lock.release()
        for observer in self._observers:
            observer(function.logical_id, event if isinstance(event, dict) else {}, elapsed)
        return payload, errored

    @contextmanager
    def environment_of(self, logical_id: str) -> Iterator[None]:
        """This process in ``logical_id``'s environment, between invocations (e.g. to build its adapters)."""
        with self._lock, _environment(self.environment(logical_id)):
            _clear_settings()
            try:
                yield
            finally:
                _clear_settings()

    def _aws_environment(self, function: LocalFunction) -> dict[str, str]:
        return {
            **self._overrides,
            **LOCAL_CREDENTIALS,
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_ENDPOINT_URL": self._endpoint,
            "AWS_CONFIG_FILE": os.devnull,  # no host profile or credentials file
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "AWS_LAMBDA_FUNCTION_NAME": function.physical_name,
        }


def _error_payload(exc: BaseException) -> str:
    # Lambda's error shape: Step Functions matches Retry and Catch on errorType.
    return json.dumps(
        {
            "errorMessage": str(exc),
            "errorType": type(exc).__name__,
            "stackTrace": traceback.format_tb(exc.__traceback__),
        }
    )


def _clear_settings() -> None:
    from reliquary.config import get_settings  # noqa: PLC0415

    get_settings.cache_clear()


# The variable families a function's environment defines: a host's own (a profile, a service-specific
# endpoint such as AWS_ENDPOINT_URL_DYNAMODB, another deployment's RELIQUARY_*) must not reach a handler.
_ISOLATED_PREFIXES = ("AWS_", "RELIQUARY_", "POWERTOOLS_", "_X_AMZN_")


@contextmanager
def _environment(values: Mapping[str, str]) -> Iterator[None]:
    """Exactly ``values`` in the isolated families for the duration; everything restored after."""
    cleared = {name for name in os.environ if name.startswith(_ISOLATED_PREFIXES)} - set(values)
    saved = {name: os.environ.get(name) for name in {*values, *cleared}}
    for name in cleared:
        os.environ.pop(name, None)  # tolerant: code outside the executor may have removed it meanwhile
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


_installed: InProcessLambda | None = None
_original_invoke: Callable[..., tuple[str, bool, str]] | None = None  # moto's own, restored on uninstall
_install_lock = threading.Lock()


def install_in_process_lambda(executor: InProcessLambda) -> None:
    """Route moto's Lambda invocations to ``executor`` (replaces moto's private ``_invoke_lambda``)."""
    global _installed, _original_invoke  # noqa: PLW0603  (moto's backend is process-wide too)
    from moto.awslambda.models import LambdaFunction  # noqa: PLC0415

    with _install_lock:
        if _original_invoke is None:
            _original_invoke = LambdaFunction._invoke_lambda

            def _invoke_lambda(self: Any, event: Any = None) -> tuple[str, bool, str]:
                runner = _installed
                if runner is None:
                    return _error_payload(LocalRuntimeError("no local runtime is running")), True, ""
                payload, errored = runner.invoke(self.function_name, {} if event is None else event)
                return payload, errored, ""

            LambdaFunction._invoke_lambda = _invoke_lambda  # type: ignore[method-assign]
        _installed = executor


def uninstall_in_process_lambda(executor: InProcessLambda) -> None:
    """Stop routing to ``executor``; moto's own ``_invoke_lambda`` is back once no executor is left."""
    global _installed, _original_invoke  # noqa: PLW0603
    from moto.awslambda.models import LambdaFunction  # noqa: PLC0415

    with _install_lock:
        if _installed is executor:
            _installed = None
        if _installed is None and _original_invoke is not None:
            LambdaFunction._invoke_lambda = _original_invoke  # type: ignore[method-assign]
            _original_invoke = None


def install_kms_key_specs() -> None:
    """Make moto's CloudFormation create KMS keys as the template declares them: moto's own creates every
    key symmetric (the access-token keys are ECC_NIST_P256 signing keys) and keeps the key policy as an
    object, where its DescribeKey expects the JSON text (and fails with a server error)."""
    from moto.kms.models import Key, kms_backends  # noqa: PLC0415

    with _install_lock:
        if getattr(Key.create_from_cloudformation_json, "_reliquary_key_specs", False):
            return

        def create_from_cloudformation_json(  # moto's signature
            resource_name: str,  # noqa: ARG001
            cloudformation_json: Any,
            account_id: str,
            region_name: str,
            **kwargs: Any,  # noqa: ARG001
        ) -> Any:
            properties = cloudformation_json["Properties"]
            policy = properties["KeyPolicy"]
            key = kms_backends[account_id][region_name].create_key(
                policy=policy if isinstance(policy, str) else json.dumps(policy),
                key_usage=properties.get("KeyUsage", "ENCRYPT_DECRYPT"),
                key_spec=properties.get("KeySpec", "SYMMETRIC_DEFAULT"),
                description=properties.get("Description"),
                tags=properties.get("Tags", []),
            )
            key.key_rotation_status = properties.get("EnableKeyRotation", False)
            key.enabled = properties.get("Enabled", True)
            return key

        create_from_cloudformation_json._reliquary_key_specs = True  # type: ignore[attr-defined]
        Key.create_from_cloudformation_json = create_from_cloudformation_json  # type: ignore[method-assign]


def original_invoke_lambda() -> Callable[..., tuple[str, bool, str]]:
    """moto's own ``LambdaFunction._invoke_lambda``, whether or not the executor is installed now."""
    from moto.awslambda.models import LambdaFunction  # noqa: PLC0415

    return _original_invoke or LambdaFunction._invoke_lambda


# ---------------------------------------------------------------------------------- the stack
@dataclass(frozen=True)
class LocalStack:
    """The deployed stack: its resources by logical id, its outputs, and the in-process executor."""

    endpoint: str
    stack_name: str
    resources: dict[str, str]  # logical id -> physical id (name or ARN, as CloudFormation reports)
    outputs: dict[str, str]
    state_machines: dict[str, str]  # logical id -> ARN
    lambdas: InProcessLambda
    created_through_api: tuple[str, ...] = ()

    @property
    def access_state_machine_arn(self) -> str:
        return self.state_machines["AccessStateMachine"]

    def client(self, service: str) -> Any:
        return aws_client(self.endpoint, service)


def _code_zip(directory: Path) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(directory.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                archive.write(path, path.relative_to(directory).as_posix())
    return buffer.getvalue()


def _references(value: Any) -> set[str]:
    """Logical ids that ``value`` refers to (Ref, GetAtt, and ${Name} / ${Name.Attr} in Sub)."""
    found: set[str] = set()
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "Ref" and isinstance(item, str):
                found.add(item)
            elif key == "Fn::GetAtt":
                found.add(item[0] if isinstance(item, list) else str(item).split(".")[0])
            elif key == "Fn::Sub":
                text = item[0] if isinstance(item, list) else item
                found.update(name.split(".")[0] for name in _sub_names(text))
                if isinstance(item, list):
                    found.update(_references(item[1]))
            else:
                found.update(_references(item))
    elif isinstance(value, list):
        for item in value:
            found.update(_references(item))
    return found


def _sub_names(text: str) -> list[str]:
    """The ${Name} references of a Sub string (``${!Literal}`` escapes excluded)."""
    names = []
    rest = text
    while "${" in rest:
        start = rest.index("${") + 2
        end = rest.index("}", start)
        if not rest[start:].startswith("!"):
            names.append(rest[start:end])
        rest = rest[end + 1 :]
    return names


def _split_for_api(translated: dict[str, Any]) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """The template moto's CloudFormation creates, and the resources the runtime creates through the API
    after it (the types moto's CloudFormation skips or misplaces, and whatever refers to those)."""
    document = copy.deepcopy(translated)
    resources: dict[str, Any] = document["Resources"]
    apart = {lid: res for lid, res in resources.items() if res["Type"] in _API_TYPES}
    left_out = not_created_locally(translated)
    for lid in left_out:
        del resources[lid]
    for lid, res in resources.items():
        if _references(res) & left_out:
            raise LocalRuntimeError(
                f"{lid} ({res['Type']}) refers to a resource that is not created locally; it cannot be "
                "created either (extend infra.local.runtime.NOT_CREATED_LOCALLY, or refer by name)"
            )
        if lid not in apart and _references(res) & set(apart):
            raise LocalRuntimeError(
                f"{lid} ({res['Type']}) refers to a resource the runtime creates through the API "
                "after the stack; it cannot be created locally (extend infra.local.runtime)"
            )
    for lid in apart:
        del resources[lid]
    outputs = document.get("Outputs", {})
    for name in [name for name, output in outputs.items() if _references(output) & {*apart, *left_out}]:
        del outputs[name]
    return document, apart


def not_created_locally(translated: Mapping[str, Any]) -> set[str]:
    """The logical ids of the translated template that the local runtime leaves out (by type)."""
    return {lid for lid, res in translated["Resources"].items() if res["Type"] in NOT_CREATED_LOCALLY}


def _upload_artifacts(s3: Any, translated: Mapping[str, Any]) -> None:
    with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou):
        s3.create_bucket(Bucket=ARTIFACTS_BUCKET)
    for resource in translated["Resources"].values():
        properties = resource.get("Properties", {})
        location = properties.get("Code") or properties.get("Content") or {}
        key = location.get("S3Key") if isinstance(location, dict) else None
        if isinstance(key, str):
            directory = REPO_ROOT / key
            if not directory.is_dir():
                raise LocalRuntimeError(f"template.yaml points at {key}/, which is not a directory")
            s3.put_object(Bucket=ARTIFACTS_BUCKET, Key=key, Body=_code_zip(directory))


def _create_stack(cloudformation: Any, stack_name: str, document: Mapping[str, Any], stage: str) -> None:
    cloudformation.create_stack(
        StackName=stack_name,
        TemplateBody=json.dumps(document),
        Parameters=[{"ParameterKey": "Stage", "ParameterValue": stage}],
        Capabilities=["CAPABILITY_IAM", "CAPABILITY_AUTO_EXPAND"],
    )
    deadline = time.monotonic() + 120
    while True:
        stack = cloudformation.describe_stacks(StackName=stack_name)["Stacks"][0]
        status = stack["StackStatus"]
        if status == "CREATE_COMPLETE":
            return
        if status.endswith("FAILED") or status.startswith("ROLLBACK") or time.monotonic() > deadline:
            events = cloudformation.describe_stack_events(StackName=stack_name)["StackEvents"]
            reasons = [
                f"{e.get('LogicalResourceId')}: {e.get('ResourceStatusReason')}"
                for e in events
                if "FAILED" in e.get("ResourceStatus", "")
            ]
            raise LocalRuntimeError(f"creating {stack_name} ended in {status}: {'; '.join(reasons) or '?'}")
        time.sleep(0.2)


class _Resolver(IntrinsicResolver):
    """Intrinsic functions of the template, resolved against the created stack (what the API-created
    resources and the state machines' substitutions need: Ref, GetAtt ...Arn, Sub, If, Equals)."""

    def __init__(
        self, *, clients: Callable[[str], Any], stack_name: str, template: Mapping[str, Any], stage: str
    ) -> None:
        self.client = clients
        self.stack_name = stack_name
        self.types: dict[str, str] = {}
        self.physical: dict[str, str] = {}
        self._arns: dict[str, str] = {}
        self._parameters = {
            name: str(spec.get("Default", "")) for name, spec in template.get("Parameters", {}).items()
        }
        self._parameters["Stage"] = stage
        self._conditions = template.get("Conditions", {})

    def add(self, logical_id: str, resource_type: str, physical_id: str, arn: str | None = None) -> None:
        self.types[logical_id] = resource_type
        self.physical[logical_id] = physical_id
        if arn is not None:
            self._arns[logical_id] = arn

    def unresolvable(self, function: str) -> Exception:
        return LocalRuntimeError(f"the local runtime cannot resolve {function} (extend infra.local.runtime)")

    def condition(self, name: str) -> bool:
        return bool(self.resolve(self._conditions[name]))

    def ref(self, name: str) -> str:
        pseudo = {
            "AWS::StackName": self.stack_name,
            "AWS::Region": REGION,
            "AWS::AccountId": ACCOUNT_ID,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
        }
        for table in (pseudo, self._parameters, self.physical):
            if name in table:
                return table[name]
        raise LocalRuntimeError(f"the local stack has no {name!r} to refer to")

    def attribute(self, logical_id: str, attribute: str) -> str:
        if (self.types.get(logical_id), attribute) == ("AWS::SQS::Queue", "QueueName"):
            return self.ref(logical_id).rsplit("/", 1)[-1]  # a queue's Ref is its URL
        if attribute != "Arn":
            raise LocalRuntimeError(f"the local runtime cannot resolve {logical_id}.{attribute}")
        if logical_id not in self._arns:
            self._arns[logical_id] = self._arn_of(logical_id)
        return self._arns[logical_id]

    def _arn_of(self, logical_id: str) -> str:  # noqa: PLR0911  (one answer per resource type)
        kind, physical = self.types.get(logical_id), self.ref(logical_id)
        if kind == "AWS::Lambda::Function":
            return str(
                self.client("lambda").get_function(FunctionName=physical)["Configuration"]["FunctionArn"]
            )
        if kind == "AWS::IAM::Role":
            return str(self.client("iam").get_role(RoleName=physical)["Role"]["Arn"])
        if kind == "AWS::DynamoDB::Table":
            return str(self.client("dynamodb").describe_table(TableName=physical)["Table"]["TableArn"])
        if kind == "AWS::S3::Bucket":
            return f"arn:aws:s3:::{physical}"
        if kind == "AWS::KMS::Key":
            return f"arn:aws:kms:{REGION}:{ACCOUNT_ID}:key/{physical}"
        if kind == "AWS::Logs::LogGroup":
            return f"arn:aws:logs:{REGION}:{ACCOUNT_ID}:log-group:{physical}:*"
        if kind == "AWS::SQS::Queue":
            attributes = self.client("sqs").get_queue_attributes(
                QueueUrl=physical, AttributeNames=["QueueArn"]
            )
            return str(attributes["Attributes"]["QueueArn"])
        raise LocalRuntimeError(f"the local runtime cannot resolve the ARN of {logical_id} ({kind})")


def _create_state_machine(
    resolver: _Resolver,
    sfn: Any,
    logical_id: str,
    sam_resource: Mapping[str, Any],
    translated: Mapping[str, Any],
) -> str:
    """A SAM state machine created through the API, its definition's substitutions resolved."""
    properties = sam_resource["Properties"]
    definition_path = REPO_ROOT / properties["DefinitionUri"]
    definition = definition_path.read_text(encoding="utf-8")
    for key, value in properties.get("DefinitionSubstitutions", {}).items():
        definition = definition.replace("${" + key + "}", str(resolver.resolve(value)))
    if "${" in definition:
        raise LocalRuntimeError(f"{definition_path} has a substitution the template does not define")
    role = resolver.resolve(translated["Resources"][logical_id]["Properties"]["RoleArn"])
    response = sfn.create_state_machine(
        name=resolver.resolve(properties.get("Name", logical_id)),
        definition=definition,
        roleArn=role,
        type=properties.get("Type", "STANDARD"),
    )
    return str(response["stateMachineArn"])


def _create_through_api(
    resolver: _Resolver,
    client: Callable[[str], Any],
    template: Mapping[str, Any],
    translated: Mapping[str, Any],
    apart: Mapping[str, Mapping[str, Any]],
) -> dict[str, str]:
    """Create what moto's CloudFormation cannot, state machines first (alarms refer to them)."""
    machines: dict[str, str] = {}
    for lid, res in apart.items():
        if res["Type"] == STATE_MACHINE_TYPE:
            machines[lid] = _create_state_machine(
                resolver, client("stepfunctions"), lid, template["Resources"][lid], translated
            )
            resolver.add(lid, res["Type"], machines[lid], machines[lid])
    for lid, res in apart.items():
        properties = resolver.resolve(res.get("Properties", {}))
        if res["Type"] == "AWS::S3::BucketPolicy":
            policy = _without_tls_only_statements(properties["PolicyDocument"])
            if policy["Statement"]:
                client("s3").put_bucket_policy(Bucket=properties["Bucket"], Policy=json.dumps(policy))
        elif res["Type"] == "AWS::CloudWatch::Alarm":
            name = properties.pop("AlarmName", f"{resolver.stack_name}-{lid}")
            client("cloudwatch").put_metric_alarm(AlarmName=name, **properties)
            resolver.add(lid, res["Type"], name)
    return machines


def _fix_layer_references(
    resolver: _Resolver, lambda_client: Any, stack_name: str, created: Mapping[str, Any]
) -> None:
    """moto's CloudFormation lists a layer version without a physical id (and its Ref is a Python
    object's repr): find its ARN by the name moto gave it."""
    layers = lambda_client.list_layers()["Layers"]
    kind = "AWS::Lambda::LayerVersion"
    for logical_id in [lid for lid, res in created["Resources"].items() if res["Type"] == kind]:
        prefix = f"{stack_name}-{logical_id}-"
        (layer,) = [layer for layer in layers if layer["LayerName"].startswith(prefix)]
        arn = layer["LatestMatchingVersion"]["LayerVersionArn"]
        resolver.add(logical_id, kind, arn, arn)


def _without_tls_only_statements(policy: Mapping[str, Any]) -> dict[str, Any]:
    """The bucket policy minus its statements on ``aws:SecureTransport``: moto enforces bucket policies,
    and the local endpoint is plain HTTP on the loopback interface, so "deny without TLS" would deny all."""
    statements = policy.get("Statement", [])
    statements = [statements] if isinstance(statements, dict) else statements
    kept = [s for s in statements if "aws:SecureTransport" not in json.dumps(s.get("Condition", {}))]
    return {**policy, "Statement": kept}


def _local_functions(template: Mapping[str, Any], resolver: _Resolver) -> list[LocalFunction]:
    functions = []
    lambda_client = resolver.client("lambda")
    for logical_id, resource in template["Resources"].items():
        if resource.get("Type") != "AWS::Serverless::Function":
            continue
        properties = {**template.get("Globals", {}).get("Function", {}), **resource["Properties"]}
        code = str(properties["CodeUri"]).strip("/")
        module_file, _, attribute = str(properties["Handler"]).rpartition(".")
        if not (REPO_ROOT / code / f"{module_file}.py").is_file():
            raise LocalRuntimeError(
                f"{logical_id}: no {code}/{module_file}.py for handler {properties['Handler']}"
            )
        physical = resolver.physical[logical_id]
        configuration = lambda_client.get_function(FunctionName=physical)["Configuration"]
        environment = configuration.get("Environment", {}).get("Variables", {})
        functions.append(
            LocalFunction(
                logical_id=logical_id,
                physical_name=physical,
                module=".".join([*Path(code).parts, module_file]),
                handler=attribute,
                timeout_seconds=int(configuration.get("Timeout", 3)),
                environment={k: str(v) for k, v in environment.items()},
            )
        )
    return functions


def deploy(
    endpoint: str,
    *,
    stack_name: str = DEFAULT_STACK,
    stage: str = "dev",
    environment: Mapping[str, str] | None = None,
) -> LocalStack:
    """Create template.yaml's stack on the moto server at ``endpoint`` and run its functions in process.

    ``environment`` is laid over every function's own (e.g. a quieter log level for a demonstration)."""
    clients: dict[str, Any] = {}

    def client(service: str) -> Any:
        if service not in clients:
            clients[service] = aws_client(endpoint, service)
        return clients[service]

    template = load_template()
    translated = sam_translate(template, region=REGION, parameter_values={"Stage": stage})
    created, apart = _split_for_api(translated)
    install_kms_key_specs()
    install_interpreter_speedups()
    install_execution_events()
    _upload_artifacts(client("s3"), created)
    cloudformation = client("cloudformation")
    _create_stack(cloudformation, stack_name, created, stage)

    resolver = _Resolver(clients=client, stack_name=stack_name, template=template, stage=stage)
    for summary in cloudformation.describe_stack_resources(StackName=stack_name)["StackResources"]:
        if "PhysicalResourceId" in summary:  # moto lists the types it skipped without one
            resolver.add(summary["LogicalResourceId"], summary["ResourceType"], summary["PhysicalResourceId"])

    _fix_layer_references(resolver, client("lambda"), stack_name, created)

    executor = InProcessLambda(endpoint, overrides=environment)
    for function in _local_functions(template, resolver):
        executor.register(function)
    install_in_process_lambda(executor)
    try:
        machines = _create_through_api(resolver, client, template, translated, apart)
    except BaseException:
        uninstall_in_process_lambda(executor)
        raise
    outputs_list = cloudformation.describe_stacks(StackName=stack_name)["Stacks"][0].get("Outputs", [])
    outputs = {o["OutputKey"]: o["OutputValue"] for o in outputs_list}
    left_out = not_created_locally(translated)
    for name, output in translated.get("Outputs", {}).items():
        if _references(output) & left_out:
            continue  # e.g. the REST API's URL: serve_api's is the local one
        if "Condition" in output and not resolver.condition(output["Condition"]):
            continue
        if name not in outputs or outputs[name].startswith("<moto."):
            outputs[name] = str(resolver.resolve(output["Value"]))
    return LocalStack(
        endpoint=endpoint,
        stack_name=stack_name,
        resources=dict(resolver.physical),
        outputs=outputs,
        state_machines=machines,
        lambdas=executor,
        created_through_api=tuple(sorted(apart)),
    )


@contextmanager
def local_stack(
    port: int = DEFAULT_PORT,
    *,
    stack_name: str = DEFAULT_STACK,
    stage: str = "dev",
    environment: Mapping[str, str] | None = None,
) -> Iterator[LocalStack]:
    """moto on ``port`` with template.yaml's stack deployed; the in-process executor removed on exit."""
    with moto_server(port) as endpoint:
        stack = deploy(endpoint, stack_name=stack_name, stage=stage, environment=environment)
        try:
            yield stack
        finally:
            uninstall_in_process_lambda(stack.lambdas)
