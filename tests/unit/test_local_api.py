"""infra/local/api.py: the API served on loopback by a real uvicorn server, with settings fixed at start
while the in-process Lambda executor swaps the process environment; and the curl session it prints,
run by bash against a stand-in of the API's routes.

The app here is a small FastAPI app of the test's own (the real one needs the identity, catalog and
audit-reader modules); ``serve_api`` takes it as its ``create_app``."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
import subprocess
import sys
import threading
import types
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import pytest
from fastapi import FastAPI, Header, HTTPException, Request
from fastapi.responses import JSONResponse

from infra.local import api as local_api
from infra.local.api import ApiSession, LocalApi, print_api_session, serve_api
from infra.local.runtime import InProcessLambda, LocalFunction, LocalRuntimeError, LocalStack, free_port

ENDPOINT = "http://127.0.0.1:4599"  # never contacted: the test's runtime builds no client
API_ENVIRONMENT = {
    "RELIQUARY_STAGE": "dev",
    "RELIQUARY_IDENTITY_TABLE": "st-IdentityTable-1",
    "RELIQUARY_TOKEN_SIGNING_KEY_ID": "arn:aws:kms:us-east-1:123456789012:key/token-a",
    "RELIQUARY_TOKEN_PREVIOUS_KEY_IDS": '["arn:aws:kms:us-east-1:123456789012:key/token-b"]',
    "RELIQUARY_TOKEN_ISSUER": "https://reliquary.123456789012.us-east-1/dev",
    "POWERTOOLS_SERVICE_NAME": "reliquary-api",
}


def _function(logical_id: str, module: str, environment: dict[str, str]) -> LocalFunction:
    return LocalFunction(
        logical_id=logical_id,
        physical_name=f"st-{logical_id}",
        module=module,
        handler="handler",
        timeout_seconds=29,
        environment=environment,
    )


@pytest.fixture
def stack() -> LocalStack:
    executor = InProcessLambda(ENDPOINT)
    executor.register(_function("ApiFunction", "functions.api.app", API_ENVIRONMENT))
    return LocalStack(
        endpoint=ENDPOINT, stack_name="st", resources={}, outputs={}, state_machines={}, lambdas=executor
    )


def _get(url: str, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    request = urllib.request.Request(url, headers=headers or {})  # noqa: S310  (loopback)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
            return int(response.status), json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return int(exc.code), json.loads(exc.read())


class Runtimes:
    """A ``build_runtime`` that records what it was built with, and in which environment."""

    def __init__(self) -> None:
        self.built: list[Any] = []

    def __call__(self, settings: Any) -> dict[str, Any]:
        runtime = {
            "settings": settings,
            "endpoint_env": os.environ.get("AWS_ENDPOINT_URL"),
            "key_env": os.environ.get("AWS_ACCESS_KEY_ID"),
        }
        self.built.append(runtime)
        return runtime


def settings_app(runtime: Callable[[], Any]) -> FastAPI:
    """Health, and a route that shows what the runtime was built with."""
    app = FastAPI()

    @app.get("/v1/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/settings")
    def settings() -> dict[str, Any]:
        built = runtime()
        chosen = built["settings"]
        return {
            "identity_table": chosen.identity_table,
            "endpoint_url": chosen.endpoint_url,
            "signing": chosen.token_signing_key_id,
            "previous": list(chosen.token_previous_key_ids),
            "issuer": chosen.token_issuer,
            "stage": chosen.stage,
            "built_with_endpoint": built["endpoint_env"],
            "built_with_local_credentials": built["key_env"] == "local",
            "process_identity_table": os.environ.get("RELIQUARY_IDENTITY_TABLE"),
        }

    return app


def test_the_api_is_served_with_the_api_functions_settings_fixed_at_start(
    stack: LocalStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Another function of the stack, whose invocation holds the process in its own environment.
    entered, release = threading.Event(), threading.Event()

    def blocking_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        entered.set()
        release.wait(10)
        return {}

    module = types.ModuleType("reliquary_fake_blocking")
    module.handler = blocking_handler  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "reliquary_fake_blocking", module)
    other = {"RELIQUARY_IDENTITY_TABLE": "st-Other-1", "RELIQUARY_STAGE": "prod"}
    stack.lambdas.register(_function("Other", "reliquary_fake_blocking", other))
    monkeypatch.setenv("RELIQUARY_IDENTITY_TABLE", "the-hosts-own")
    runtimes = Runtimes()
    port = free_port()

    with serve_api(stack, port, create_app=settings_app, build_runtime=runtimes) as served:
        assert isinstance(served, LocalApi)
        assert served.url == f"http://127.0.0.1:{port}"
        assert _get(f"{served.url}/v1/health") == (200, {"status": "ok"})
        invocation = threading.Thread(target=stack.lambdas.invoke, args=("st-Other", {}))
        invocation.start()
        try:
            assert entered.wait(10)
            status, shown = _get(f"{served.url}/settings")
        finally:
            release.set()
            invocation.join(10)
    assert status == 200
    assert shown == {
        "identity_table": "st-IdentityTable-1",
        "endpoint_url": ENDPOINT,
        "signing": API_ENVIRONMENT["RELIQUARY_TOKEN_SIGNING_KEY_ID"],
        "previous": ["arn:aws:kms:us-east-1:123456789012:key/token-b"],
        # The issuer is the local server, so tokens name where they were issued.
        "issuer": served.url,
        "stage": "dev",
        # Built once, inside the API function's environment: the moto endpoint, local credentials.
        "built_with_endpoint": ENDPOINT,
        "built_with_local_credentials": True,
        # ... while the process was in the other function's environment during the request.
        "process_identity_table": "st-Other-1",
    }
    assert runtimes.built == [served.runtime]
    assert served.settings.token_issuer == served.url
    # The host's environment is back, and the server is gone.
    assert os.environ["RELIQUARY_IDENTITY_TABLE"] == "the-hosts-own"
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(f"{served.url}/v1/health", timeout=2)  # noqa: S310


def test_a_taken_port_is_refused_with_what_to_do(stack: LocalStack) -> None:
    with serve_api(stack, free_port(), create_app=settings_app, build_runtime=Runtimes()) as served:
        port = int(served.url.rsplit(":", 1)[1])
        with (
            pytest.raises(LocalRuntimeError, match=rf"port {port} on 127.0.0.1 is taken"),
            serve_api(stack, port, create_app=settings_app, build_runtime=Runtimes()),
        ):
            pass


def test_a_stack_without_the_api_function_is_refused(stack: LocalStack) -> None:
    empty = LocalStack(
        endpoint=ENDPOINT,
        stack_name="st",
        resources={},
        outputs={},
        state_machines={},
        lambdas=InProcessLambda(ENDPOINT),
    )
    with pytest.raises(LocalRuntimeError, match="no ApiFunction"), serve_api(empty, free_port()):
        pass


def test_an_app_that_never_becomes_healthy_is_an_error_and_is_stopped(
    stack: LocalStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(local_api, "STARTUP_SECONDS", 1.0)

    def unhealthy(runtime: Callable[[], Any]) -> FastAPI:
        app = FastAPI()

        @app.get("/v1/health")
        def health() -> JSONResponse:
            return JSONResponse({"status": "starting"}, status_code=503)

        return app

    port = free_port()
    with (
        pytest.raises(LocalRuntimeError, match=r"did not answer /v1/health with 200 .*last: 503"),
        serve_api(stack, port, create_app=unhealthy, build_runtime=Runtimes()),
    ):
        pass
    # Stopped: the port can be served again.
    with serve_api(stack, port, create_app=settings_app, build_runtime=Runtimes()) as served:
        assert _get(f"{served.url}/v1/health")[0] == 200


def test_an_app_that_cannot_start_is_an_error(stack: LocalStack) -> None:
    def broken(runtime: Callable[[], Any]) -> Any:
        return "not an ASGI application"

    with (
        pytest.raises(LocalRuntimeError, match="stopped while starting"),
        serve_api(stack, free_port(), create_app=broken, build_runtime=Runtimes()),
    ):
        pass


# ------------------------------------------------------------------------------------ the curl session

CLIENT_ID = "cl-0123456789abcdef01234567"
SECRET = "rqs_s3cr3t-with:colon'quote"  # made up, with characters a shell must quote
TOKEN = "header.claims.signature"


def stand_in(seen: list[tuple[str, Any]]) -> Callable[[Callable[[], Any]], FastAPI]:
    """The API's routes that the session calls, checking what a real client must send."""

    def create(runtime: Callable[[], Any]) -> FastAPI:
        app = FastAPI()

        def bearer(authorization: str | None) -> None:
            if authorization != f"Bearer {TOKEN}":
                raise HTTPException(401)

        @app.get("/v1/health")
        def health() -> dict[str, str]:
            return {"status": "ok"}

        @app.post("/v1/oauth2/token")
        async def token(request: Request, authorization: Annotated[str, Header()]) -> dict[str, Any]:
            scheme, _, encoded = authorization.partition(" ")
            form = (await request.body()).decode()
            seen.append(("token", (scheme, base64.b64decode(encoded).decode(), form)))
            return {"access_token": TOKEN, "token_type": "Bearer", "expires_in": 900, "scope": "x"}

        @app.post("/v1/vaults/{vault_id}/memories", status_code=201)
        async def seal(
            vault_id: str, request: Request, authorization: Annotated[str, Header()]
        ) -> dict[str, Any]:
            bearer(authorization)
            seen.append(("seal", (vault_id, await request.json())))
            return {"item_id": "m-1"}

        @app.get("/v1/vaults/{vault_id}/memories")
        def listed(vault_id: str, user_id: str, authorization: Annotated[str, Header()]) -> dict[str, Any]:
            bearer(authorization)
            seen.append(("list", (vault_id, user_id)))
            return {"memories": [], "next_cursor": None}

        @app.post("/v1/access-requests", status_code=202)
        async def access(
            request: Request,
            authorization: Annotated[str, Header()],
            idempotency_key: Annotated[str, Header()],
        ) -> JSONResponse:
            bearer(authorization)
            seen.append(("access", (idempotency_key, await request.json())))
            return JSONResponse(
                {"status": "pending"},
                status_code=202,
                headers={"Location": f"/v1/access-requests/{idempotency_key}"},
            )

        @app.get("/v1/access-requests/{request_id}")
        def poll(request_id: str, authorization: Annotated[str, Header()]) -> dict[str, Any]:
            bearer(authorization)
            seen.append(("poll", request_id))
            return {"request_id": request_id, "status": "approved"}

        return app

    return create


@pytest.mark.skipif(
    shutil.which("curl") is None or shutil.which("bash") is None, reason="needs curl and bash"
)
def test_the_printed_session_works_when_pasted_into_a_shell(stack: LocalStack, tmp_path: Path) -> None:
    body = {"vault_id": "support", "memory_id": "m-1", "nonce": "ab" * 32, "context_proof": {"p": 1}}
    request_file = tmp_path / "access request.json"  # a space: the path must be quoted
    request_file.write_text(json.dumps(body), encoding="utf-8")
    seen: list[tuple[str, Any]] = []
    with serve_api(stack, free_port(), create_app=stand_in(seen), build_runtime=Runtimes()) as served:
        session = ApiSession(
            url=served.url,
            client_id=CLIENT_ID,
            client_secret=SECRET,
            vault_id="support",
            user_id="alice",
            memory_text='Alice prefers tea; she said "no calls after 6pm" & it\'s $5 a cup',
            access_request_file=str(request_file),
            access_request_id="req-0001",
        )
        lines: list[str] = []
        print_api_session(session, lines.append)
        script = "\n".join(line.strip() for line in lines if not line.strip().startswith("#"))
        result = subprocess.run(  # noqa: S603  (a fixed interpreter and our own script)
            ["bash", "-euo", "pipefail", "-c", script],  # noqa: S607
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            env={"PATH": os.environ["PATH"]},
        )
    assert result.returncode == 0, result.stderr
    assert [kind for kind, _ in seen] == ["token", "seal", "list", "access", "poll"]
    assert seen[0][1] == ("Basic", f"{CLIENT_ID}:{SECRET}", "grant_type=client_credentials")
    assert seen[1][1] == ("support", {"text": session.memory_text, "user_id": "alice"})
    assert seen[2][1] == ("support", "alice")
    assert seen[3][1] == ("req-0001", body)
    assert seen[4][1] == "req-0001"
    assert "HTTP/1.1 202" in result.stdout
    assert '"status":"approved"' in result.stdout
    # Every step is explained, and the secret appears only in the token request.
    assert sum(line.strip().startswith("#") for line in lines) == len(session.commands())
    assert [i for i, line in enumerate(lines) if "rqs_" in line] == [3]


@pytest.mark.parametrize("field", ["client_id", "vault_id", "user_id", "access_request_id"])
@pytest.mark.parametrize("value", ["", "a b", 'x"; rm -rf ~; "', "$(id)", "a/b"])
def test_a_session_refuses_ids_the_api_would_refuse(field: str, value: str) -> None:
    fields = {
        "url": "http://127.0.0.1:3000",
        "client_id": CLIENT_ID,
        "client_secret": SECRET,
        "vault_id": "support",
        "user_id": "alice",
        "memory_text": "x",
        "access_request_file": "body.json",
        "access_request_id": "req-1",
        field: value,
    }
    with pytest.raises(ValueError, match=field):
        ApiSession(**fields)


def _request_through(app: Any) -> None:
    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        return None

    asyncio.run(app({"type": "http", "method": "GET", "path": "/"}, receive, send))


@pytest.mark.parametrize("publish", [False, True])
def test_served_api_metrics_are_flushed_per_request_or_dropped(
    publish: bool, capsys: pytest.CaptureFixture[str]
) -> None:
    """More requests than powertools' 100-value set: disabled metrics print nothing (powertools would
    print the full set), enabled ones one EMF line per request, as Lambda's log_metrics does."""
    from aws_lambda_powertools.metrics import MetricUnit

    from infra.local.api import per_request_metrics
    from reliquary.api.app import metrics

    async def app(scope: Any, receive: Any, send: Any) -> None:
        metrics.add_metric(name="health.latency", unit=MetricUnit.Milliseconds, value=1.0)

    served = per_request_metrics(app, publish=publish)
    for _ in range(150):
        _request_through(served)
    lines = [line for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    assert len(lines) == (150 if publish else 0)
