"""The REST API on 127.0.0.1, for the local runtime: the FastAPI app of the API function, under uvicorn.

moto cannot create the REST API that SAM generates, so the local stack has no API Gateway in front of
the API function (docs/local-runtime.md). ``serve_api`` serves the same app instead, at the port
``sam local start-api`` uses (3000), with the API function's environment as CloudFormation resolved it
for the local stack: its tables, the token key, the functions it invokes, the moto endpoint.

The settings are read once, when the server starts: the in-process Lambda executor swaps the process's
environment for every invocation, so the API must not read it per request. The app's runtime (its AWS
clients) is built then too, from those settings, while the executor's lock holds the environment still.
"""

from __future__ import annotations

import json
import re
import shlex
import threading
import time
import urllib.error
import urllib.request
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from infra.local.runtime import LocalRuntimeError, LocalStack, port_is_free

if TYPE_CHECKING:
    from reliquary.config import Settings

API_FUNCTION = "ApiFunction"
DEFAULT_API_PORT = 3000  # sam local start-api's
HEALTH_PATH = "/v1/health"
STARTUP_SECONDS = 30.0
STOP_SECONDS = 10.0

# create_app(runtime factory) -> the ASGI app; build_runtime(settings) -> what the runtime factory returns.
AppFactory = Callable[[Callable[[], Any]], Any]
RuntimeBuilder = Callable[["Settings"], Any]


@dataclass(frozen=True)
class LocalApi:
    """The API being served: where, the settings it was built with, and its runtime (e.g. to create the
    demo tenant through ``runtime.identity``)."""

    url: str  # e.g. http://127.0.0.1:3000, no trailing slash
    settings: Settings
    runtime: Any  # what build_runtime returned


def _default_app_factory() -> AppFactory:
    from reliquary.api.app import create_app  # noqa: PLC0415  (FastAPI and the routes: only when serving)

    return create_app


def _default_runtime_builder() -> RuntimeBuilder:
    from reliquary.adapters.api_factory import build_api  # noqa: PLC0415  (boto3: only when serving)

    return build_api


def _metrics_enabled() -> bool:
    """Whether the function's environment (in force while this is called) publishes metrics."""
    from aws_lambda_powertools.metrics.functions import is_metrics_disabled  # noqa: PLC0415

    return not is_metrics_disabled()


def per_request_metrics(app: Any, *, publish: bool) -> Any:
    """The ASGI ``app`` with the API's metrics flushed after each HTTP request, as the Lambda handler's
    ``log_metrics`` does after each invocation (``publish``: printed as CloudWatch EMF lines) or dropped
    (the function's environment disables metrics). Served outside Lambda, nothing else flushes them, and
    powertools prints a full set of 100 values even when metrics are disabled."""
    if not callable(app):
        return app  # not an application: uvicorn refuses it as it is
    from reliquary.api.app import metrics  # noqa: PLC0415  (the app's module-level metrics)

    async def served(scope: Any, receive: Any, send: Any) -> None:
        try:
            await app(scope, receive, send)
        finally:
            if scope.get("type") == "http":
                if publish:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")  # a request that recorded nothing: no warning
                        metrics.flush_metrics()
                else:
                    metrics.clear_metrics()

    return served


def _health(url: str) -> int | None:
    """The health route's status, or None while nothing answers."""
    try:
        with urllib.request.urlopen(f"{url}{HEALTH_PATH}", timeout=2) as response:  # noqa: S310  (loopback)
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return None


@contextmanager
def serve_api(
    stack: LocalStack,
    port: int = DEFAULT_API_PORT,
    *,
    create_app: AppFactory | None = None,
    build_runtime: RuntimeBuilder | None = None,
) -> Iterator[LocalApi]:
    """The API function's app on http://127.0.0.1:``port``, until the block ends.

    ``create_app(runtime)`` makes the ASGI app from a runtime factory (default
    ``reliquary.api.app.create_app``); ``build_runtime(settings)`` builds that runtime (default
    ``reliquary.adapters.api_factory.build_api``). Both are imported only when not given. The token
    issuer is this server's URL. Yields once ``/v1/health`` answers 200; the server is stopped on exit."""
    import uvicorn  # noqa: PLC0415  (a development dependency)

    from reliquary.config import Settings  # noqa: PLC0415

    if not port_is_free("127.0.0.1", port):
        raise LocalRuntimeError(
            f"port {port} on 127.0.0.1 is taken (another `make run`, or `sam local start-api`?); stop it, "
            "or choose another port"
        )
    url = f"http://127.0.0.1:{port}"
    if API_FUNCTION not in stack.lambdas.functions:
        raise LocalRuntimeError(f"the local stack has no {API_FUNCTION} (template.yaml defines it)")
    # The API function's environment, held still by the executor's lock: settings, the app's module-level
    # logger and metrics (powertools reads POWERTOOLS_* at import) and the AWS clients all see it.
    with stack.lambdas.environment_of(API_FUNCTION):
        settings = Settings(token_issuer=url)  # an explicit argument wins over the environment
        app_factory = create_app or _default_app_factory()
        runtime = (build_runtime or _default_runtime_builder())(settings)
        app = per_request_metrics(app_factory(lambda: runtime), publish=_metrics_enabled())

    server = uvicorn.Server(
        uvicorn.Config(
            app, host="127.0.0.1", port=port, log_level="warning", access_log=False, lifespan="off"
        )
    )
    failure: list[BaseException] = []

    def run() -> None:
        try:
            server.run()
        except BaseException as exc:  # noqa: BLE001  (reported by the thread that waits for it)
            failure.append(exc)

    thread = threading.Thread(target=run, name=f"reliquary-api-{port}", daemon=True)
    thread.start()
    try:
        _wait_until_healthy(url, thread, failure)
        yield LocalApi(url=url, settings=settings, runtime=runtime)
    finally:
        server.should_exit = True
        thread.join(STOP_SECONDS)
        if thread.is_alive():
            server.force_exit = True
            thread.join(STOP_SECONDS)


def _wait_until_healthy(url: str, thread: threading.Thread, failure: list[BaseException]) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    status: int | None = None
    while time.monotonic() < deadline:
        if not thread.is_alive():
            reason = f": {failure[0]!r}" if failure else " (is the port taken?)"
            raise LocalRuntimeError(f"the API server at {url} stopped while starting{reason}")
        status = _health(url)
        if status == 200:
            return
        time.sleep(0.05)
    raise LocalRuntimeError(
        f"the API at {url} did not answer {HEALTH_PATH} with 200 within {STARTUP_SECONDS:.0f} s "
        f"(last: {status or 'no answer'})"
    )


# ------------------------------------------------------------------------------------ the curl session
# Ids as the API accepts them (reliquary.fields.Identifier): safe inside a URL and a double-quoted word.
_IDENTIFIER = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}")
_JSON_FIELD = "python3 -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]])'"


@dataclass(frozen=True)
class ApiSession:
    """What a curl session against the local API needs: a client of the demo tenant, and an access
    request proved on the device beforehand (the context proof binds the request id and a fresh nonce,
    and needs the requester's key and the circuit, which curl has not)."""

    url: str
    client_id: str
    client_secret: str
    vault_id: str
    user_id: str
    memory_text: str
    access_request_file: str  # a POST /v1/access-requests body
    access_request_id: str  # the Idempotency-Key its proof binds

    def __post_init__(self) -> None:
        for name in ("client_id", "vault_id", "user_id", "access_request_id"):
            if not _IDENTIFIER.fullmatch(getattr(self, name)):
                raise ValueError(f"{name} is not an identifier the API accepts")

    def commands(self) -> list[tuple[str, str]]:
        """The session as (what it does, the shell command) pairs; they need only curl and python3."""
        q = shlex.quote
        bearer = '-H "Authorization: Bearer $TOKEN"'
        memories = f'"$API/v1/vaults/{self.vault_id}/memories'
        memory = json.dumps({"text": self.memory_text, "user_id": self.user_id})
        credentials = q(f"{self.client_id}:{self.client_secret}")
        token = f'-d grant_type=client_credentials "$API/v1/oauth2/token" | {_JSON_FIELD} access_token'
        idempotency = f'-H "Idempotency-Key: {self.access_request_id}"'
        body = f"--data-binary @{q(self.access_request_file)}"
        json_body = '-H "Content-Type: application/json"'
        return [
            ("the API's address", f"API={q(self.url)}"),
            (
                "a token: OAuth2 client credentials (HTTP Basic with the client's id and secret)",
                f"TOKEN=$(curl -sS -u {credentials} {token})",
            ),
            ("seal a memory of a user", f'curl -sS {bearer} {json_body} -d {q(memory)} {memories}"'),
            (
                "list the user's memories (metadata only, never the content)",
                f'curl -sS {bearer} {memories}?user_id={self.user_id}"',
            ),
            (
                "request access (202 and a Location)",
                f'curl -sS -i {bearer} {json_body} {idempotency} {body} "$API/v1/access-requests"',
            ),
            (
                "poll the request until it is approved or denied",
                f'curl -sS {bearer} "$API/v1/access-requests/{self.access_request_id}"',
            ),
        ]


def print_api_session(session: ApiSession, out: Callable[[str], None] = print) -> None:
    """Print the session as commented shell lines, ready to paste (``make run`` shows it)."""
    for what, command in session.commands():
        out(f"  # {what}")
        out(f"  {command}")


def access_request_body(request: Any) -> dict[str, Any]:
    """The ``POST /v1/access-requests`` body of an ``AccessRequest`` proved on the device (the request id
    travels as the Idempotency-Key; tenant and principal come from the token, never the body)."""
    document = request.request_json()
    return {
        "vault_id": document["vault_id"],
        "memory_id": document["item_id"],
        "requester_public_key": document["requester_public_key"],
        "context_proof": document["context_proof"],
        "nonce": document["nonce"],
        "purpose": document["purpose"],
    }


# ----------------------------------------------------------------------------------- the approval page
APPROVAL_WAIT_SECONDS = 120.0


def browser_url(api_url: str) -> str:
    """The API's URL as a browser must use it for passkeys: on ``localhost``, the RP id locally (a
    passkey is bound to a domain name; WebAuthn refuses an IP address such as 127.0.0.1)."""
    return re.sub(r"^http://127\.0\.0\.1:", "http://localhost:", api_url)


def approval_page_url(api_url: str) -> str:
    """The approval page's address for a browser."""
    return browser_url(api_url) + "/approve"


@dataclass(frozen=True)
class Approver:
    """A person of the tenant who may approve, not yet enrolled: the link registers their passkey."""

    person_id: str
    name: str
    page_url: str
    enrollment_url: str  # the page with ``#enroll=<token>``: registers one passkey, then is spent
    enrollment_expires_at: int  # epoch seconds


@dataclass(frozen=True)
class WaitingRequest:
    """An access request whose execution waits for a person."""

    request_id: str
    status_url: str  # to poll, with the requester's token


def _api_url(http: Any) -> str:
    return str(http.base_url).rstrip("/")


def create_approver(http: Any, *, admin: dict[str, str], vault_id: str, name: str) -> Approver:
    """``POST /v1/people`` as the tenant admin (``http``: an httpx client of the API): a person who may
    approve the requests of ``vault_id``, and the enrollment link of the approval page."""
    roles = [{"role": "approver", "vault_id": vault_id}]
    created = http.post("/v1/people", json={"name": name, "roles": roles}, headers=admin)
    if created.status_code != 201:
        raise LocalRuntimeError(f"POST /v1/people answered {created.status_code}: {created.text}")
    enrollment = created.json()["enrollment"]
    page = approval_page_url(_api_url(http))
    return Approver(
        person_id=created.json()["person"]["person_id"],
        name=name,
        page_url=page,
        enrollment_url=f"{page}#enroll={enrollment['token']}",
        enrollment_expires_at=int(enrollment["expires_at"]),
    )


def start_waiting_request(
    http: Any,
    *,
    approver: dict[str, str],
    requester: dict[str, str],
    request_body: dict[str, Any],
    request_id: str,
) -> WaitingRequest:
    """The requester starts an access request that needs a person (``request_body``, proved on the
    device for ``request_id``); returns once it is in ``GET /v1/approvals`` of a caller with
    ``access:approve`` (``approver``: its headers)."""
    started = http.post(
        "/v1/access-requests", json=request_body, headers={**requester, "Idempotency-Key": request_id}
    )
    if started.status_code != 202:
        raise LocalRuntimeError(f"POST /v1/access-requests answered {started.status_code}: {started.text}")
    location = started.headers["Location"]  # a path
    deadline = time.monotonic() + APPROVAL_WAIT_SECONDS
    while True:
        listed = http.get("/v1/approvals", headers=approver)
        if listed.status_code != 200:
            raise LocalRuntimeError(f"GET /v1/approvals answered {listed.status_code}: {listed.text}")
        if any(a["request_id"] == request_id for a in listed.json()["approvals"]):
            return WaitingRequest(request_id=request_id, status_url=f"{_api_url(http)}{location}")
        status = http.get(location, headers=requester).json().get("status")
        if status != "pending":
            raise LocalRuntimeError(f"the request was decided without a person: {status}")
        if time.monotonic() > deadline:
            raise LocalRuntimeError(f"the request did not wait for a person within {APPROVAL_WAIT_SECONDS} s")
        time.sleep(0.2)


def print_approval_demo(
    approver: Approver, waiting: WaitingRequest, out: Callable[[str], None] = print
) -> None:
    """How to open the approval page and approve the waiting request (``make run`` shows it)."""
    out(f"  approval page:   {approver.page_url}")
    expires = datetime.fromtimestamp(approver.enrollment_expires_at, UTC).strftime("%Y-%m-%d %H:%M UTC")
    out(f"  enrol {approver.name} ({approver.person_id}), once, before {expires}:")
    out(f"    {approver.enrollment_url}")
    out("  Open the enrollment link in a browser on this machine, register a passkey (this computer's")
    out("  authenticator, a phone or a security key), sign in with it, and approve or deny request")
    out(f"  {waiting.request_id}. Its decision, with the requester's token:")
    out(f'    curl -sS -H "Authorization: Bearer $TOKEN" "{waiting.status_url}"')
    out("  Open the page on localhost (the passkeys' domain), not on 127.0.0.1.")
