"""The API's answers to everything that is not a success, in process (the app over httpx's ASGI
transport): RFC 9457 problems with stable codes for 400, 401, 404, 405, 413, 429 and 500; nothing the
caller sent is ever quoted back or logged; request and correlation ids on every answer; the
Idempotency-Key rules; the body limit enforced before a body is read.

The runtime is built from in-memory parts: the identity service over the in-memory repository with a
local token key, and a stand-in for the capability functions that records what it was asked. Ports a
test must never reach raise."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

import httpx
import pytest
from fastapi import FastAPI

from reliquary.api import app as api_app
from reliquary.api.app import MAX_BODY_BYTES, create_app
from reliquary.api.problems import problem_title
from reliquary.config import Settings
from reliquary.crypto.kem import PUBLIC_KEY_LEN
from reliquary.errors import RateLimitedError
from reliquary.gateway import ApiRuntime, Capability
from reliquary.identity.memory import InMemoryIdentityRepository, LocalTokenSigner
from reliquary.identity.scopes import Role, RoleBinding
from reliquary.identity.service import IdentityService
from reliquary.zk.replay import NONCE_HEX

PROBLEM = "application/problem+json"
MARKER = "MARKERq7z"  # sent in every field of a bad request: it must never come back, nor be logged
ISSUER = "https://reliquary.test"
AUDIENCE = "reliquary-api"
TENANT = "acme"
VAULT = "agent-memory"
VAULT_CREATED = {
    "tenant_id": TENANT,
    "vault_id": VAULT,
    "key_version": 1,
    "public_key": base64.b64encode(b"k" * 32).decode(),
    "recovery_threshold": None,
    "custodian_shares": [],
}


class Unreachable:
    """A port no test here may reach: any use fails the test."""

    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, attribute: str) -> Any:
        raise AssertionError(f"the {self._name} port was used ({attribute})")


@dataclass
class Functions:
    """Stands in for the capability functions: records each event, answers ``result`` or raises."""

    result: dict[str, Any] = field(default_factory=lambda: dict(VAULT_CREATED))
    failure: BaseException | None = None
    events: list[tuple[Capability, dict[str, Any]]] = field(default_factory=list)

    def call(self, capability: Capability, event: Mapping[str, Any]) -> dict[str, Any]:
        self.events.append((capability, dict(event)))
        if self.failure is not None:
            raise self.failure
        return self.result


@dataclass
class Clock:
    now: int = 1_800_000_000

    def __call__(self) -> int:
        return self.now


@dataclass
class Api:
    """An app over an in-memory runtime, and a tenant-admin's token."""

    app: FastAPI
    functions: Functions
    identity: IdentityService
    token: str
    client_id: str

    def call(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        return call(self.app, method, url, **kwargs)

    def bearer(self, **headers: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}", **headers}


def call(app: FastAPI, method: str, url: str, **kwargs: Any) -> httpx.Response:
    async def send() -> httpx.Response:
        # Exceptions of the app are raised here: an app must answer every failure itself, never hand
        # it to the server (which would log its text).
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as client:
            return await client.request(method, url, **kwargs)

    # A loop of its own, never made the thread's current one (asyncio.run would, and leave none behind
    # for Mangum's get_event_loop in the API function's tests).
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(send())
    finally:
        loop.close()


def no_runtime() -> ApiRuntime:
    raise AssertionError("the runtime was built: this answer needs none")


def in_memory_api(*, requests_per_second: int = 100_000, clock: Clock | None = None) -> Api:
    repository = InMemoryIdentityRepository()
    identity = IdentityService(
        repository=repository,
        people=repository,
        signer=LocalTokenSigner.generate(),
        issuer=ISSUER,
        audience=AUDIENCE,
        token_ttl_seconds=900,
        operator_tenant="operator",
        requests_per_second=requests_per_second,
        clock=clock or Clock(),
    )
    _, admin, _ = identity.create_tenant(TENANT, "Acme")
    token = identity.issue_token(admin).access_token
    functions = Functions()
    runtime = ApiRuntime(
        settings=Settings(token_issuer=ISSUER, token_audience=AUDIENCE),
        identity=identity,
        functions=functions,
        executions=cast("Any", Unreachable("executions")),
        catalog=cast("Any", Unreachable("catalog")),
        audit=cast("Any", Unreachable("audit")),
        chains=cast("Any", Unreachable("chains")),
        approvals=cast("Any", Unreachable("approvals")),
        read_policy=cast("Any", Unreachable("read_policy")),
        service_keys=cast("Any", Unreachable("service_keys")),
        export_url=cast("Any", Unreachable("export_url")),
        clock=clock or Clock(),
    )
    return Api(create_app(lambda: runtime), functions, identity, token, admin.client_id)


@pytest.fixture(scope="module")
def shared_api() -> Api:
    return in_memory_api()  # one app per module: building its OpenAPI document takes a moment


@pytest.fixture
def api(shared_api: Api) -> Api:
    shared_api.functions.failure = None
    shared_api.functions.events.clear()
    return shared_api


@pytest.fixture(scope="module")
def bare() -> FastAPI:
    """An app whose runtime must never be built."""
    return create_app(no_runtime)


def assert_problem(answer: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == PROBLEM
    body: dict[str, Any] = answer.json()
    assert {"type", "title", "status", "detail", "code", "request_id", "retryable"} <= set(body)
    assert body["type"] == f"urn:reliquary:problem:{code}"
    assert body["status"] == status
    assert body["code"] == code
    assert isinstance(body["title"], str)
    assert body["title"] == problem_title(body["code"])
    assert isinstance(body["detail"], str)
    assert body["detail"]
    assert body["retryable"] is (status in {429, 503})
    assert body["request_id"] == answer.headers["x-request-id"]
    assert answer.headers["x-correlation-id"]
    assert MARKER not in answer.text
    assert all(MARKER not in value for value in answer.headers.values())
    return body


# ------------------------------------------------------------------------------------ 401, 404, 405
def test_no_token_is_a_401_problem_with_a_bearer_challenge(bare: FastAPI) -> None:
    answer = call(bare, "GET", "/v1/vaults")
    body = assert_problem(answer, 401, "unauthenticated")
    assert body["title"] == "Not authenticated"
    assert answer.headers["www-authenticate"] == 'Bearer realm="reliquary", error="invalid_token"'


def test_a_bad_token_is_the_same_401_and_is_not_echoed(api: Api) -> None:
    forged = api.token[:-4] + ("AAAA" if not api.token.endswith("AAAA") else "BBBB")
    answer = api.call("GET", "/v1/vaults", headers={"Authorization": f"Bearer {forged}{MARKER}"})
    body = assert_problem(answer, 401, "unauthenticated")
    assert body["detail"] == "a valid access token is required"
    assert forged not in answer.text
    assert answer.headers["www-authenticate"].startswith("Bearer ")


@pytest.mark.parametrize("path", ["/", f"/v1/{MARKER}", f"/v2/vaults/{MARKER}", f"/v1/vaults/a/b/c/{MARKER}"])
def test_an_unknown_route_is_a_404_problem(bare: FastAPI, path: str) -> None:
    body = assert_problem(call(bare, "GET", path), 404, "not_found")
    assert body["detail"] == "no such route"


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("DELETE", "/v1/health", {"GET"}),
        ("GET", "/v1/oauth2/token", {"POST"}),
        ("PATCH", "/v1/vaults", {"GET", "POST"}),
        ("PUT", f"/v1/audit/keys?{MARKER}=1", {"GET"}),
    ],
)
def test_a_method_the_route_has_not_is_a_405_problem_saying_which_it_has(
    bare: FastAPI, method: str, path: str, allowed: set[str]
) -> None:
    answer = call(bare, method, path)
    assert_problem(answer, 405, "method_not_allowed")
    assert {m.strip() for m in answer.headers["allow"].split(",")} == allowed


# ------------------------------------------------------------------------------------ 400
BAD_BODIES: dict[str, tuple[bytes, str, set[tuple[str, str]] | None]] = {
    # name: (body, content type, {(location, type)}) of POST /v1/vaults
    "not JSON": (f'{{"vault_id": "{MARKER}'.encode(), "application/json", {("body.13", "json_invalid")}),
    "wrong types": (
        json.dumps({"vault_id": 7, "recovery_threshold": MARKER, "custodians": MARKER}).encode(),
        "application/json",
        {
            ("body.vault_id", "string_type"),
            ("body.recovery_threshold", "int_type"),
            ("body.custodians", "list_type"),
        },
    ),
    "huge field": (
        json.dumps({"vault_id": MARKER * 100_000}).encode(),
        "application/json",
        {("body.vault_id", "string_pattern_mismatch")},
    ),
    "unknown field": (
        json.dumps({"vault_id": "v", MARKER: MARKER}).encode(),
        "application/json",
        {("body.*", "extra_forbidden")},
    ),
    "missing field": (json.dumps({"note": MARKER}).encode(), "application/json", None),
    "a list, not an object": (
        json.dumps([MARKER]).encode(),
        "application/json",
        {("body", "model_attributes_type")},
    ),
    "not a string in a nested field": (
        json.dumps({"vault_id": "v", "custodians": [{"custodian_id": {MARKER: 1}}]}).encode(),
        "application/json",
        None,
    ),
}


@pytest.mark.parametrize("name", list(BAD_BODIES))
def test_a_malformed_body_is_400_naming_locations_and_quoting_nothing(api: Api, name: str) -> None:
    content, content_type, expected = BAD_BODIES[name]
    answer = api.call(
        "POST", "/v1/vaults", content=content, headers=api.bearer(**{"Content-Type": content_type})
    )
    body = assert_problem(answer, 400, "invalid_request")
    assert body["title"] == "Invalid request"
    errors = body["errors"]
    assert errors
    assert len(errors) <= 20
    assert all(set(e) == {"location", "type"} for e in errors)
    found = {(e["location"], e["type"]) for e in errors}
    if expected is not None:
        assert found == expected
    assert all(e["location"].startswith("body") for e in errors)
    assert len(answer.content) < 4096  # bounded whatever was sent
    assert api.functions.events == []  # nothing was acted on


def test_a_body_with_many_problems_lists_at_most_twenty(api: Api) -> None:
    custodians = [{"custodian_id": i, "public_key": i} for i in range(200)]
    answer = api.call(
        "POST", "/v1/vaults", json={"vault_id": "v", "custodians": custodians}, headers=api.bearer()
    )
    body = assert_problem(answer, 400, "invalid_request")
    assert len(body["errors"]) == 20


@pytest.mark.parametrize(
    ("method", "path", "location", "kind"),
    [
        ("GET", f"/v1/vaults?limit={MARKER}", "query.limit", "int_parsing"),
        ("GET", "/v1/vaults?limit=0", "query.limit", "greater_than_equal"),
        ("GET", f"/v1/vaults?cursor={MARKER * 200}", "query.cursor", "string_too_long"),
        ("GET", f"/v1/vaults/{MARKER}!!", "path.vault_id", "string_pattern_mismatch"),
        (
            "GET",
            f"/v1/vaults/{VAULT}/memories?user_id={MARKER}%20x",
            "query.user_id",
            "string_pattern_mismatch",
        ),
        ("GET", f"/v1/audit/entries/{MARKER}", "path.index", "int_parsing"),
        ("GET", "/v1/audit/entries/-1", "path.index", "greater_than_equal"),
        ("POST", f"/v1/vaults/{VAULT}/keys/{MARKER}/retire", "path.key_version", "int_parsing"),
        ("GET", f"/v1/vaults/{VAULT}/policies/{MARKER}", "path.kind", "literal_error"),
        ("GET", f"/v1/clients/{MARKER}", "path.client_id", "string_pattern_mismatch"),
    ],
)
def test_malformed_parameters_are_400_naming_them(
    api: Api, method: str, path: str, location: str, kind: str
) -> None:
    answer = api.call(method, path, headers=api.bearer())
    body = assert_problem(answer, 400, "invalid_request")
    assert body["errors"] == [{"location": location, "type": kind}]


SECRET = f"/v1/clients/cl-{'0' * 24}/secret"
POLICY = f"/v1/vaults/{VAULT}/policies"
JSON_TYPES: dict[str, tuple[str, str, dict[str, Any], str, str]] = {
    # Each: the method, the path, the body, and the one problem expected (its location and type).
    "true as a threshold": (
        "POST",
        "/v1/vaults",
        {"vault_id": "v", "recovery_threshold": True},
        "body.recovery_threshold",
        "int_type",
    ),
    '"3" as a threshold': (
        "POST",
        "/v1/vaults",
        {"vault_id": "v", "recovery_threshold": "3"},
        "body.recovery_threshold",
        "int_type",
    ),
    "2.5 as a threshold": (
        "POST",
        "/v1/vaults",
        {"vault_id": "v", "recovery_threshold": 2.5},
        "body.recovery_threshold",
        "int_from_float",
    ),
    "false as a ttl": (
        "POST",
        f"/v1/vaults/{VAULT}/memories",
        {"text": "x", "user_id": "u", "ttl_seconds": False},
        "body.ttl_seconds",
        "int_type",
    ),
    "false as an end": ("POST", "/v1/audit/exports", {"end": False}, "body.end", "int_type"),
    '"true" as a flag': ("POST", SECRET, {"revoke_tokens": "true"}, "body.revoke_tokens", "bool_type"),
    "1 as a flag": ("POST", SECRET, {"revoke_tokens": 1}, "body.revoke_tokens", "bool_type"),
    "false as a clock skew": (
        "PUT",
        f"{POLICY}/context",
        {"clock_skew_seconds": False},
        "body.clock_skew_seconds",
        "int_type",
    ),
    "true as a version": ("PUT", f"{POLICY}/trust", {"v": True}, "body.v", "literal_error"),
    '"3" as approvals': ("PUT", f"{POLICY}/quorum", {"approvals": "3"}, "body.approvals", "int_type"),
    '"0.5" as a confidence': (
        "PUT",
        f"{POLICY}/quorum",
        {"min_confidence": "0.5"},
        "body.min_confidence",
        "float_type",
    ),
}


@pytest.mark.parametrize("name", list(JSON_TYPES))
def test_json_types_are_taken_as_the_document_says(api: Api, name: str) -> None:
    """A JSON boolean or string is not a number, nor a string or a number a boolean, as JSON Schema
    reads the document (lax validation would take ``true`` as 1, ``"3"`` as 3, ``"true"`` as true)."""
    method, path, body, location, kind = JSON_TYPES[name]
    answer = api.call(method, path, json=body, headers=api.bearer())
    problem = assert_problem(answer, 400, "invalid_request")
    assert problem["errors"] == [{"location": location, "type": kind}]
    assert api.functions.events == []


def test_an_integer_may_be_written_with_a_zero_fraction(api: Api) -> None:
    """JSON Schema's integer is a number without a fraction: 3.0 is 3."""
    body = {"vault_id": VAULT, "recovery_threshold": 3.0, "custodians": []}
    answer = api.call("POST", "/v1/vaults", json=body, headers=api.bearer())
    assert answer.status_code == 201, answer.text
    ((_, event),) = api.functions.events
    assert event["recovery_threshold"] == 3
    assert type(event["recovery_threshold"]) is int


def test_a_context_proofs_signals_are_strings_or_integers_never_booleans(api: Api) -> None:
    body = {
        "vault_id": VAULT,
        "memory_id": "m",
        "requester_public_key": base64.b64encode(bytes(PUBLIC_KEY_LEN)).decode(),
        "context_proof": {"circuit": "device_proof", "proof": {}, "public_signals": ["1", 2, False]},
        "nonce": "0" * NONCE_HEX,
    }
    answer = api.call(
        "POST", "/v1/access-requests", json=body, headers=api.bearer(**{"Idempotency-Key": "r-1"})
    )
    problem = assert_problem(answer, 400, "invalid_request")
    assert {e["location"] for e in problem["errors"]} == {"body.context_proof.public_signals.2.*"}


def test_a_memory_that_breaks_a_rule_of_the_model_is_400_without_its_words(api: Api) -> None:
    both = {"text": MARKER, "content": base64.b64encode(MARKER.encode()).decode(), "user_id": MARKER}
    answer = api.call("POST", f"/v1/vaults/{VAULT}/memories", json=both, headers=api.bearer())
    body = assert_problem(answer, 400, "invalid_request")
    assert body["errors"] == [{"location": "body", "type": "value_error"}]
    assert "exactly one" not in answer.text  # the validator's message is not passed on either


@pytest.mark.parametrize(
    ("content", "content_type", "detail"),
    [
        (f'{{"rules": "{MARKER}'.encode(), "application/json", "the body is not valid JSON"),
        (b"\xff\xfe" + MARKER.encode(), "application/json", "the body is not valid JSON"),
        (json.dumps({"requirement": MARKER}).encode(), "text/plain", "the body must be application/json"),
    ],
)
def test_a_policy_body_read_by_the_route_gets_the_same_problems(
    api: Api, content: bytes, content_type: str, detail: str
) -> None:
    answer = api.call(
        "PUT",
        f"/v1/vaults/{VAULT}/policies/context",
        content=content,
        headers=api.bearer(**{"Content-Type": content_type}),
    )
    body = assert_problem(answer, 400, "invalid_request")
    assert body["detail"] == detail


def test_a_policy_of_the_wrong_shape_names_locations_only(api: Api) -> None:
    answer = api.call(
        "PUT", f"/v1/vaults/{VAULT}/policies/quorum", json={MARKER: [MARKER] * 50}, headers=api.bearer()
    )
    body = assert_problem(answer, 400, "invalid_request")
    assert body["errors"]
    assert all(e["location"].startswith("body") for e in body["errors"])


# ------------------------------------------------------------------------------------ 413
def test_a_body_over_6_mb_by_its_content_length_is_413_before_it_is_read(bare: FastAPI) -> None:
    sent: list[int] = []

    async def body() -> AsyncIterator[bytes]:
        for _ in range(8):
            sent.append(1)
            yield b" " * (1024 * 1024)

    length = str(8 * 1024 * 1024)
    answer = call(bare, "POST", "/v1/vaults", content=body(), headers={"Content-Length": length})
    body_problem = assert_problem(answer, 413, "payload_too_large")
    assert body_problem["title"] == "Payload too large"
    assert sent == []  # refused on the header alone


@pytest.mark.parametrize(
    ("method", "path", "content_type"),
    [
        ("POST", "/v1/vaults", "application/json"),  # a body FastAPI reads
        ("POST", "/v1/oauth2/token", "application/x-www-form-urlencoded"),  # bodies routes read
        ("PUT", f"/v1/vaults/{VAULT}/policies/trust", "application/json"),
    ],
)
def test_a_chunked_body_over_6_mb_is_413_once_it_passes_the_limit(
    api: Api, method: str, path: str, content_type: str
) -> None:
    chunk = 512 * 1024
    chunks = 0

    async def body() -> AsyncIterator[bytes]:
        nonlocal chunks
        for _ in range(64):
            chunks += 1
            yield b" " * chunk

    answer = api.call(method, path, content=body(), headers=api.bearer(**{"Content-Type": content_type}))
    assert "content-length" not in answer.request.headers
    assert answer.request.headers["transfer-encoding"] == "chunked"
    assert_problem(answer, 413, "payload_too_large")
    assert chunks * chunk <= MAX_BODY_BYTES + chunk  # it stopped reading at the limit
    assert api.functions.events == []


@pytest.mark.parametrize("length", ["abc", "-1", "1e9", str(MAX_BODY_BYTES + 1)])
def test_a_content_length_that_is_not_a_small_number_is_413(bare: FastAPI, length: str) -> None:
    answer = call(bare, "POST", "/v1/vaults", content=b"{}", headers={"Content-Length": length})
    assert_problem(answer, 413, "payload_too_large")


def test_a_body_of_exactly_6_mb_is_read(api: Api) -> None:
    padding = MAX_BODY_BYTES - len(json.dumps({"vault_id": "v", "pad": ""}))
    content = json.dumps({"vault_id": "v", "pad": "x" * padding}).encode()
    assert len(content) == MAX_BODY_BYTES
    answer = api.call(
        "POST", "/v1/vaults", content=content, headers=api.bearer(**{"Content-Type": "application/json"})
    )
    body = assert_problem(answer, 400, "invalid_request")  # read, then refused for its unknown field
    assert body["errors"] == [{"location": "body.*", "type": "extra_forbidden"}]


# ------------------------------------------------------------------------------------ 429
def test_past_the_clients_rate_it_is_429_with_retry_after() -> None:
    clock = Clock()
    api = in_memory_api(requests_per_second=3, clock=clock)
    assert [api.call("GET", "/v1/clients", headers=api.bearer()).status_code for _ in range(3)] == [200] * 3
    answer = api.call("GET", "/v1/clients", headers=api.bearer())
    body = assert_problem(answer, 429, "rate_limited")
    assert body["retryable"] is True
    assert answer.headers["retry-after"] == "1"
    clock.now += 1  # the next second is a new window
    assert api.call("GET", "/v1/clients", headers=api.bearer()).status_code == 200


def test_the_token_endpoint_counts_against_the_clients_rate_too() -> None:
    clock = Clock()
    api = in_memory_api(requests_per_second=2, clock=clock)
    client, secret = api.identity.create_client(TENANT, "agent", [RoleBinding(Role.WRITER, VAULT)])
    form = {"grant_type": "client_credentials"}
    answers = [
        api.call("POST", "/v1/oauth2/token", data=form, auth=(client.client_id, secret)) for _ in range(3)
    ]
    assert [a.status_code for a in answers] == [200, 200, 429]
    assert_problem(answers[2], 429, "rate_limited")
    assert answers[2].headers["retry-after"] == "1"
    assert answers[2].headers["cache-control"] == "no-store"
    # A wrong secret is counted too: guessing is throttled per client id.
    clock.now += 1
    guesses = [
        api.call("POST", "/v1/oauth2/token", data=form, auth=(client.client_id, f"rqs_{i}")).status_code
        for i in range(3)
    ]
    assert guesses == [401, 401, 429]


def test_a_rate_limit_says_when_to_retry() -> None:
    error = RateLimitedError("too many requests", retry_after=7)
    app = create_app(no_runtime)

    @app.get("/v1/test-rate")
    def limited() -> None:
        raise error

    answer = call(app, "GET", "/v1/test-rate")
    assert_problem(answer, 429, "rate_limited")
    assert answer.headers["retry-after"] == "7"


# ------------------------------------------------------------------------------------ 500
def test_an_unexpected_exception_is_a_500_that_says_nothing(api: Api) -> None:
    api.functions.failure = RuntimeError(f"boom {MARKER} at /secret/path")
    answer = api.call("POST", "/v1/vaults", json={"vault_id": VAULT}, headers=api.bearer())
    body = assert_problem(answer, 500, "internal_error")
    assert body == {
        "type": "urn:reliquary:problem:internal_error",
        "title": "Internal error",
        "status": 500,
        "detail": "the request could not be completed",
        "code": "internal_error",
        "request_id": answer.headers["x-request-id"],
        "retryable": False,
    }
    assert "boom" not in answer.text
    assert "RuntimeError" not in answer.text


# ------------------------------------------------------------------------------------ ids
def test_every_answer_has_a_request_id_and_a_correlation_id(api: Api) -> None:
    answers = [
        api.call("GET", "/v1/health"),
        api.call("GET", "/v1/vaults"),
        api.call("GET", f"/v1/{MARKER}"),
        api.call("DELETE", "/v1/health"),
        api.call("GET", "/v1/vaults?limit=x", headers=api.bearer()),
        api.call("POST", "/v1/vaults", content=b"x", headers={"Content-Length": str(MAX_BODY_BYTES + 1)}),
        api.call("POST", "/v1/vaults", json={"vault_id": VAULT}, headers=api.bearer()),
        api.call("POST", "/v1/vaults", headers={"Idempotency-Key": f"{MARKER} bad"}),
        api.call("POST", "/v1/oauth2/token", data={"grant_type": "password"}),
    ]
    assert [a.status_code for a in answers] == [200, 401, 404, 405, 400, 413, 201, 400, 400]
    request_ids = [a.headers["x-request-id"] for a in answers]
    correlation_ids = [a.headers["x-correlation-id"] for a in answers]
    assert len(set(request_ids)) == len(answers)  # each its own
    assert all(len(r) == 32 for r in request_ids)
    assert all(c.startswith("1-") and len(c) == 35 for c in correlation_ids)


def test_the_correlation_id_is_the_lambda_trace_id_when_there_is_one(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    trace = "1-65f0a1b2-0123456789abcdef01234567"
    monkeypatch.setenv("_X_AMZN_TRACE_ID", f"Root={trace};Parent=53995c3f42cd8ad8;Sampled=1")
    assert api.call("GET", "/v1/health").headers["x-correlation-id"] == trace


@pytest.mark.parametrize(
    "key",
    ["", " ", "-starts-with-a-dash", "has space", "x" * 129, f"{MARKER}/slash", f"{MARKER}\u00e9"],
)
def test_a_bad_idempotency_key_on_a_write_is_400_and_nothing_is_done(api: Api, key: str) -> None:
    headers: dict[str, str | bytes] = {**api.bearer(), "Idempotency-Key": key.encode("utf-8")}
    answer = api.call("POST", "/v1/vaults", json={"vault_id": VAULT}, headers=headers)
    body = assert_problem(answer, 400, "invalid_request")
    assert body["details"] == {"field": "Idempotency-Key"}
    assert answer.headers["x-request-id"] != key
    assert api.functions.events == []


def test_an_idempotency_key_is_the_request_id_of_a_write(api: Api) -> None:
    key = "order-42:retry@2024.1"
    headers = api.bearer(**{"Idempotency-Key": key})
    first = api.call("POST", "/v1/vaults", json={"vault_id": VAULT}, headers=headers)
    second = api.call("POST", "/v1/vaults", json={"vault_id": VAULT}, headers=headers)
    assert first.status_code == second.status_code == 201
    assert first.headers["x-request-id"] == second.headers["x-request-id"] == key
    # The function is asked under the key, so its idempotency makes a retry the same request.
    assert [event["request_id"] for _, event in api.functions.events] == [key, key]
    # Without the key, each write is its own request.
    third = api.call("POST", "/v1/vaults", json={"vault_id": VAULT}, headers=api.bearer())
    assert third.headers["x-request-id"] not in {key, ""}
    assert api.functions.events[-1][1]["request_id"] == third.headers["x-request-id"]


@pytest.mark.parametrize("key", ["good-key-1", f"{MARKER} bad key"])
def test_reads_ignore_an_idempotency_key(api: Api, key: str) -> None:
    answer = api.call("GET", "/v1/clients", headers=api.bearer(**{"Idempotency-Key": key}))
    assert answer.status_code == 200
    assert answer.headers["x-request-id"] != key


# ------------------------------------------------------------------------------------ logs
CLIENT_SIDE = frozenset({"httpx", "httpcore", "asyncio"})  # the test's client and event loop, not the API


class Captured(logging.Handler):
    """Every record, formatted as the API's logger formats it, with its extra fields."""

    def __init__(self, formatter: logging.Formatter) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(formatter)
        self.lines: list[str] = []  # as the formatter writes them
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.split(".")[0] in CLIENT_SIDE or any(seen is record for seen in self.records):
            return  # the test's own HTTP client, or a record reached through two loggers
        self.records.append(record)
        self.lines.append(self.format(record))

    @property
    def text(self) -> str:
        """Everything logged: the formatted lines and every attribute of every record."""
        return "\n".join([*self.lines, *(repr(r.__dict__) for r in self.records)])


@pytest.fixture
def logs() -> Iterator[Captured]:
    powertools = api_app.logger
    underlying = logging.getLogger(powertools.name)
    captured = Captured(cast("logging.Formatter", powertools.registered_formatter))
    level, root_level = underlying.level, logging.getLogger().level
    underlying.addHandler(captured)
    logging.getLogger().addHandler(captured)
    underlying.setLevel(logging.DEBUG)
    logging.getLogger().setLevel(logging.DEBUG)
    try:
        yield captured
    finally:
        underlying.removeHandler(captured)
        logging.getLogger().removeHandler(captured)
        underlying.setLevel(level)
        logging.getLogger().setLevel(root_level)


def _request_lines(logs: Captured) -> list[dict[str, Any]]:
    found = []
    for line in logs.lines:
        entry = json.loads(line)
        if entry.get("message") == "request":
            found.append(entry)
    return found


def test_a_requests_log_has_its_route_outcome_and_ids_never_its_body_query_or_token(
    api: Api, logs: Captured
) -> None:
    key = "log-test-1"
    answer = api.call(
        "POST",
        f"/v1/vaults?{MARKER}q={MARKER}",
        json={"vault_id": VAULT, "custodians": [], MARKER: MARKER} | {"note": MARKER},
        headers=api.bearer(**{"Idempotency-Key": key}),
    )
    assert answer.status_code == 400
    sealed = api.call(
        "POST",
        f"/v1/vaults?{MARKER}=1",
        json={"vault_id": VAULT},
        headers=api.bearer(**{"Idempotency-Key": key}),
    )
    assert sealed.status_code == 201
    lines = _request_lines(logs)
    assert [(e["route"], e["method"], e["status"]) for e in lines] == [
        ("create_vault", "POST", 400),
        ("create_vault", "POST", 201),
    ]
    assert lines[1]["request_id"] == key
    assert lines[1]["tenant_id"] == TENANT
    assert lines[1]["client_id"] == api.client_id
    assert lines[1]["correlation_id"] == sealed.headers["x-correlation-id"]
    assert MARKER not in logs.text
    assert api.token not in logs.text
    for part in api.token.split("."):
        assert part not in logs.text


def test_the_token_endpoint_logs_no_secret(api: Api, logs: Captured) -> None:
    client, secret = api.identity.create_client(TENANT, "agent", [RoleBinding(Role.WRITER, VAULT)])
    issued = api.call(
        "POST",
        "/v1/oauth2/token",
        data={"grant_type": "client_credentials", "client_id": client.client_id, "client_secret": secret},
    )
    assert issued.status_code == 200
    refused = api.call(
        "POST", "/v1/oauth2/token", data={"grant_type": "client_credentials"}, auth=(client.client_id, MARKER)
    )
    assert refused.status_code == 401
    assert [e["status"] for e in _request_lines(logs)] == [200, 401]
    for never in (secret, MARKER, issued.json()["access_token"].split(".")[1]):
        assert never not in logs.text


def test_an_unexpected_exception_is_logged_by_its_type_only(api: Api, logs: Captured) -> None:
    api.functions.failure = KeyError(f"{MARKER} something secret")
    answer = api.call("POST", "/v1/vaults", json={"vault_id": VAULT}, headers=api.bearer())
    assert_problem(answer, 500, "internal_error")
    assert MARKER not in logs.text
    assert "something secret" not in logs.text
    errors = [r for r in logs.records if r.getMessage() == "unexpected error"]
    assert len(errors) == 1
    assert errors[0].__dict__["error_type"] == "KeyError"
    assert errors[0].exc_info is None  # no traceback: it would quote the exception
    assert [(e["route"], e["status"]) for e in _request_lines(logs)] == [("create_vault", 500)]


def test_requests_refused_before_a_route_are_logged_too(api: Api, bare: FastAPI, logs: Captured) -> None:
    """A malformed Idempotency-Key and a body over the limit never reach a route: they still get the
    request line (route ``refused``), with the answer's request id and code, and nothing they sent."""
    bad_key = api.call(
        "POST",
        "/v1/vaults",
        json={"vault_id": VAULT},
        headers=api.bearer(**{"Idempotency-Key": f"{MARKER} x"}),
    )
    too_large = call(
        bare, "POST", "/v1/vaults", content=b"{}", headers={"Content-Length": str(7 * 1024 * 1024)}
    )
    assert (bad_key.status_code, too_large.status_code) == (400, 413)
    lines = _request_lines(logs)
    assert [(e["route"], e["method"], e["status"], e["code"]) for e in lines] == [
        ("refused", "POST", 400, "invalid_request"),
        ("refused", "POST", 413, "payload_too_large"),
    ]
    assert [e["request_id"] for e in lines] == [
        bad_key.headers["x-request-id"],
        too_large.headers["x-request-id"],
    ]
    assert MARKER not in logs.text
