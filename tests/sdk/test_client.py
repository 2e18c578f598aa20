"""The clients against a mock API: routes, retries and their safety, pagination, errors, access polling."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Callable

import httpx
import pytest
from reliquary_sdk import models
from reliquary_sdk.auth import BearerToken, ClientCredentials
from reliquary_sdk.client import AsyncReliquary, Call, Reliquary, RetryPolicy
from reliquary_sdk.errors import (
    NotFoundError,
    RateLimitedError,
    TimeoutError,  # noqa: A004
    TransientError,
    TransportError,
    UnexpectedResponseError,
)

BASE = "https://api.example/Prod"
PS = "ps-" + "0" * 24
CL = "cl-" + "0" * 24
Handler = Callable[[httpx.Request], httpx.Response]


class Api:
    """Answers queued per call (or a handler), recording every request it saw."""

    def __init__(self, *answers: httpx.Response | Exception | Handler) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/v1/oauth2/token"):
            return httpx.Response(
                200, json={"access_token": "tok", "token_type": "Bearer", "expires_in": 900}
            )
        self.requests.append(request)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        if isinstance(answer, httpx.Response):
            return answer
        return answer(request)


def _client(api: Api, *, retries: int = 3) -> tuple[Reliquary, list[float]]:
    slept: list[float] = []
    client = Reliquary(
        BASE,
        auth=ClientCredentials("cl-1", "secret"),
        transport=httpx.MockTransport(api),
        retries=RetryPolicy(retries=retries, base_delay=1.0, max_delay=8.0),
        sleep=slept.append,
        rng=random.Random(7),
    )
    return client, slept


# Answers as the service shapes them (docs/openapi.json), for the routes the tests call.
def vault_view(vault_id: str = "v") -> dict[str, object]:
    return {
        "vault_id": vault_id,
        "created_at": 1,
        "current_key_version": 1,
        "recovery_threshold": None,
        "custodian_ids": [],
    }


VAULT = {**vault_view(), "keys": []}
SEAL = {
    "tenant_id": "t",
    "vault_id": "agent-memory",
    "item_id": "m",
    "version": 1,
    "key_version": 1,
    "size": 13,
    "body_location": "inline",
    "content_type": "text/plain",
    "expires_at": None,
}
ROTATE = {"tenant_id": "t", "vault_id": "v", "key_version": 2, "public_key": "cGs="}
HEALTH = {"status": "ok", "version": "1.0"}


def memory_view(memory_id: str) -> dict[str, object]:
    return {
        "memory_id": memory_id,
        "versions": 1,
        "version": 1,
        "state": "live",
        "content_type": "text/plain",
        "size": 1,
        "tags": {},
        "sensitivity": "restricted",
        "key_version": 1,
        "created_at": 1,
        "expires_at": None,
        "shredded_at": None,
    }


def access_view(status: str, **extra: object) -> dict[str, object]:
    return {
        "request_id": "rq-1",
        "status": status,
        "vault_id": "v",
        "memory_id": "m",
        "requested_at": 1,
        "decided_at": None if status == "pending" else 2,
        **extra,
    }


def _problem(status: int, code: str, **headers: str) -> httpx.Response:
    return httpx.Response(status, json={"code": code, "status": status}, headers=headers)


def test_routes_carry_the_token_the_base_path_and_encoded_ids() -> None:
    api = Api(httpx.Response(200, json=VAULT))
    client, _ = _client(api)
    with client:
        assert client.vaults.get("a/b c") == models.VaultDetailView.model_validate(VAULT)
    request = api.requests[0]
    assert request.url.raw_path == b"/Prod/v1/vaults/a%2Fb%20c"
    assert request.headers["Authorization"] == "Bearer tok"
    assert request.headers["User-Agent"].startswith("reliquary-sdk/")


def test_writes_carry_an_idempotency_key_kept_across_retries() -> None:
    api = Api(
        _problem(503, "transient"),
        _problem(502, "internal_error"),
        httpx.Response(201, json=SEAL),
    )
    client, slept = _client(api)
    with client:
        answer = client.memories.add(
            "agent-memory", text="prefers email", user_id="customer-42", tags={"t": "c"}
        )
    assert isinstance(answer, models.SealResult)
    assert answer.item_id == "m"
    keys = {r.headers["Idempotency-Key"] for r in api.requests}
    assert len(api.requests) == 3
    assert len(keys) == 1
    assert json.loads(api.requests[0].content) == {
        "text": "prefers email",
        "user_id": "customer-42",
        "tags": {"t": "c"},
    }
    # Full jitter: each wait is within its exponential ceiling (1 s, then 2 s).
    assert 0 <= slept[0] <= 1.0
    assert 0 <= slept[1] <= 2.0


def test_a_memory_is_text_given_in_place_or_bytes_sent_as_base64() -> None:
    api = Api(httpx.Response(201, json=SEAL), httpx.Response(201, json=SEAL))
    client, _ = _client(api)
    with client:
        client.memories.add("agent-memory", "prefers email", user_id="customer-42")
        client.memories.add(
            "agent-memory", content=b"\x00\xffpdf", content_type="application/pdf", run_id="r1"
        )
    assert json.loads(api.requests[0].content) == {"text": "prefers email", "user_id": "customer-42"}
    assert json.loads(api.requests[1].content) == {
        "content": "AP9wZGY=",
        "content_type": "application/pdf",
        "run_id": "r1",
    }


def test_two_writes_get_two_keys_and_a_given_key_is_sent_as_is() -> None:
    api = Api(httpx.Response(200, json=ROTATE))
    client, _ = _client(api)
    with client:
        client.vaults.rotate_key("v")
        client.vaults.rotate_key("v")
        client.vaults.rotate_key("v", idempotency_key="rotate-1")
    keys = [r.headers["Idempotency-Key"] for r in api.requests]
    assert keys[0] != keys[1]
    assert keys[2] == "rotate-1"


def test_retry_after_is_honoured_on_429() -> None:
    api = Api(_problem(429, "rate_limited", **{"Retry-After": "4"}), httpx.Response(200, json=VAULT))
    client, slept = _client(api)
    with client:
        client.vaults.get("v")
    assert slept == [4.0]


def test_retries_stop_at_the_budget_with_the_last_typed_error() -> None:
    api = Api(_problem(503, "transient"))
    client, slept = _client(api, retries=2)
    with client, pytest.raises(TransientError) as caught:
        client.vaults.get("v")
    assert len(api.requests) == 3
    assert len(slept) == 2
    assert caught.value.status == 503


def test_a_post_without_an_idempotency_key_is_not_retried() -> None:
    api = Api(_problem(503, "transient"))
    client, slept = _client(api)
    with client, pytest.raises(TransientError):
        client.call(Call("POST", "/v1/vaults", json={"vault_id": "v"}))
    assert len(api.requests) == 1
    assert slept == []


def test_client_errors_are_raised_at_once_typed() -> None:
    api = Api(httpx.Response(404, json={"code": "not_found", "request_id": "r-9", "detail": "no such vault"}))
    client, slept = _client(api)
    with client, pytest.raises(NotFoundError) as caught:
        client.memories.get("v", "m")
    assert caught.value.request_id == "r-9"
    assert len(api.requests) == 1
    assert slept == []


def test_timeouts_and_resets_are_retried_then_typed() -> None:
    api = Api(httpx.ReadTimeout("slow"), httpx.ConnectError("reset"), httpx.Response(200, json=HEALTH))
    client, slept = _client(api)
    with client:
        assert client.health().status == "ok"
    assert len(slept) == 2
    api = Api(httpx.ReadTimeout("slow"))
    client, _ = _client(api, retries=1)
    with client, pytest.raises(TimeoutError) as caught:
        client.vaults.get("v")
    assert isinstance(caught.value, TransportError)


def test_lists_iterate_every_page_by_cursor_and_keep_filters() -> None:
    pages = {
        None: {"memories": [memory_view("a"), memory_view("b")], "next_cursor": "c1"},
        "c1": {"memories": [memory_view("c")], "next_cursor": None},
    }
    api = Api(lambda r: httpx.Response(200, json=pages[r.url.params.get("cursor")]))
    client, _ = _client(api)
    with client:
        items = client.memories.list("v", user_id="customer-42", limit=2)
        assert api.requests == []  # nothing is fetched before the iteration starts
        assert [m.memory_id for m in items] == ["a", "b", "c"]
    assert [dict(r.url.params) for r in api.requests] == [
        {"user_id": "customer-42", "limit": "2"},
        {"user_id": "customer-42", "limit": "2", "cursor": "c1"},
    ]


def test_checkpoint_is_the_signed_note_text() -> None:
    note = "reliquary.example/log\n3\nabc=\n\n— key sig\n"
    api = Api(httpx.Response(200, text=note, headers={"Content-Type": "text/plain"}))
    client, _ = _client(api)
    with client:
        assert client.audit.checkpoint() == note
    assert api.requests[0].headers["Accept"] == "text/plain"


def test_access_request_uses_the_request_id_as_key_and_waits_for_the_decision() -> None:
    views = iter(
        [
            httpx.Response(202, json=access_view("pending"), headers={"Retry-After": "1"}),
            httpx.Response(200, json=access_view("pending")),
            httpx.Response(200, json=access_view("approved", grant={"grant": "Zw=="})),
        ]
    )
    api = Api(lambda _r: next(views))
    client, slept = _client(api)
    with client:
        handle = client.access.submit(
            vault_id="v",
            memory_id="m",
            request_id="rq-1",
            requester_public_key="cGs=",
            context_proof={"proof": {}},
            nonce="n",
            purpose="support",
        )
        assert handle.status == "pending"
        view = handle.wait(interval=1.0)
    assert view.status == "approved"
    assert view.grant == {"grant": "Zw=="}
    assert api.requests[0].headers["Idempotency-Key"] == "rq-1"
    assert [r.url.path for r in api.requests[1:]] == ["/Prod/v1/access-requests/rq-1"] * 2
    assert slept == [1.0, 2.0]


def test_wait_gives_up_at_its_deadline_typed() -> None:
    api = Api(httpx.Response(200, json=access_view("pending")))
    client, _ = _client(api)
    with client, pytest.raises(TimeoutError):
        client.access.get("rq-1").wait(timeout=0.5, interval=1.0)


def test_async_client_retries_paginates_and_types_errors() -> None:
    pages = {
        None: {"vaults": [vault_view("a")], "next_cursor": "n"},
        "n": {"vaults": [vault_view("b")], "next_cursor": None},
    }
    api = Api(
        _problem(429, "rate_limited", **{"Retry-After": "2"}),
        lambda r: httpx.Response(200, json=pages[r.url.params.get("cursor")]),
    )
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    async def run() -> list[str]:
        async with AsyncReliquary(
            BASE, auth=ClientCredentials("cl-1", "s"), transport=httpx.MockTransport(api), sleep=sleep
        ) as client:
            names = [v.vault_id async for v in client.vaults.list()]
            api.answers = [_problem(429, "rate_limited")]
            with pytest.raises(RateLimitedError):
                await client.vaults.get("v")
            return names

    assert asyncio.run(run()) == ["a", "b"]
    assert slept[0] == 2.0


def test_answers_are_models_and_a_misshapen_answer_is_typed() -> None:
    api = Api(httpx.Response(200, json={**HEALTH, "region": "eu"}), httpx.Response(200, json={"vault_id": 1}))
    client, _ = _client(api)
    with client:
        health = client.health()
        assert isinstance(health, models.Health)
        assert health.model_extra == {"region": "eu"}  # a newer service's members are kept
        with pytest.raises(UnexpectedResponseError, match="not a VaultDetailView"):
            client.vaults.get("v")


def test_body_members_may_be_models() -> None:
    person = {
        "person_id": "ps-" + "0" * 24,
        "tenant_id": "t",
        "name": "Ada",
        "roles": [{"role": "approver", "vault_id": "v"}],
        "status": "active",
        "created_at": 1,
        "enrollment_expires_at": None,
    }
    api = Api(httpx.Response(200, json=person))
    client, _ = _client(api)
    with client:
        view = client.people.set_roles(
            "ps-" + "0" * 24, [models.PersonRoleIn(role="approver", vault_id="v"), {"role": "auditor"}]
        )
    assert view.roles == [models.RoleIn(role=models.Role.APPROVER, vault_id="v")]
    assert json.loads(api.requests[0].content) == {
        "roles": [{"role": "approver", "vault_id": "v"}, {"role": "auditor"}]
    }


def test_wait_follows_the_services_retry_after_on_every_pending_answer() -> None:
    pending = httpx.Response(200, json=access_view("pending"), headers={"Retry-After": "3"})
    views = iter(
        [
            httpx.Response(202, json=access_view("pending"), headers={"Retry-After": "5"}),
            pending,
            pending,
            httpx.Response(200, json=access_view("denied", reasons=["quorum"])),
        ]
    )
    api = Api(lambda _r: next(views))
    client, slept = _client(api)
    with client:
        handle = client.access.submit(
            vault_id="v",
            memory_id="m",
            request_id="rq-1",
            requester_public_key="cGs=",
            context_proof=models.ContextProof(circuit="context_proof", proof={}, public_signals=["1"]),
            nonce="n",
        )
        assert handle.retry_after == 5.0
        view = handle.wait(interval=0.5)
    assert slept == [5.0, 3.0, 3.0]  # the service's pace, not the 0.5 s backoff
    assert view.status == "denied"
    assert view.reasons == ["quorum"]
    assert handle.retry_after is None
    body = json.loads(api.requests[0].content)
    assert body["context_proof"] == {"circuit": "context_proof", "proof": {}, "public_signals": ["1"]}


def test_a_retry_after_past_the_deadline_gives_up_without_sleeping() -> None:
    api = Api(httpx.Response(200, json=access_view("pending"), headers={"Retry-After": "30"}))
    client, slept = _client(api)
    with client, pytest.raises(TimeoutError):
        client.access.get("rq-1").wait(timeout=10.0, interval=1.0)
    assert slept == []


def test_async_wait_follows_retry_after() -> None:
    views = iter(
        [
            httpx.Response(200, json=access_view("pending"), headers={"Retry-After": "2"}),
            httpx.Response(200, json=access_view("approved", grant={"grant": "Zw=="})),
        ]
    )
    api = Api(lambda _r: next(views))
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    async def run() -> str:
        async with AsyncReliquary(BASE, transport=httpx.MockTransport(api), sleep=sleep) as client:
            handle = await client.access.get("rq-1")
            return (await handle.wait(interval=0.25)).status

    assert asyncio.run(run()) == "approved"
    assert slept == [2.0]


def _history_page(decisions: list[int], cursor: str | None) -> dict[str, object]:
    version = {k: v for k, v in memory_view("m").items() if k not in ("memory_id", "versions")}
    return {
        "memory_id": "m",
        "versions": [version],
        "key_events": [{"kind": "created", "key_version": 1, "at": 1}],
        "decisions": [
            {"index": i, "request_id": f"rq-{i}", "decision": "approve", "at": i} for i in decisions
        ],
        "next_cursor": cursor,
    }


HISTORY = {
    None: _history_page([0, 1], "h1"),
    "h1": _history_page([2, 3], "h2"),
    "h2": _history_page([4], None),
}


def test_history_reads_every_page_and_answers_them_as_one() -> None:
    api = Api(lambda r: httpx.Response(200, json=HISTORY[r.url.params.get("cursor")]))
    client, _ = _client(api)
    with client:
        history = client.memories.history("v", "m", limit=2)
    assert isinstance(history, models.History)
    assert [d.index for d in history.decisions] == [0, 1, 2, 3, 4]
    assert history.next_cursor is None
    assert len(history.versions) == 1  # every page repeats them: kept once
    assert len(history.key_events) == 1
    assert [r.url.params.get("cursor") for r in api.requests] == [None, "h1", "h2"]
    assert {r.url.params["limit"] for r in api.requests} == {"2"}


def test_decisions_iterate_lazily_and_a_repeated_cursor_is_refused() -> None:
    api = Api(lambda r: httpx.Response(200, json=HISTORY[r.url.params.get("cursor")]))
    client, _ = _client(api)
    with client:
        decisions = client.memories.decisions("v", "m")
        assert next(iter(decisions)).index == 0
        assert len(api.requests) == 1
    looping = Api(httpx.Response(200, json=_history_page([0], "same")))
    client, _ = _client(looping)
    with client, pytest.raises(UnexpectedResponseError, match="same page cursor"):
        client.memories.history("v", "m")
    assert len(looping.requests) == 2


def test_async_history_reads_every_page() -> None:
    api = Api(lambda r: httpx.Response(200, json=HISTORY[r.url.params.get("cursor")]))

    async def run() -> list[int]:
        async with AsyncReliquary(BASE, transport=httpx.MockTransport(api)) as client:
            history = await client.memories.history("v", "m")
            return [d.index for d in history.decisions]

    assert asyncio.run(run()) == [0, 1, 2, 3, 4]


def test_passkey_sign_in_needs_no_token_and_enrollment_uses_the_bearer_token() -> None:
    session = {
        "access_token": "person-tok",
        "token_type": "Bearer",
        "expires_in": 900,
        "scope": "approvals:decide",
        "person": {"person_id": PS, "tenant_id": "t", "name": "Ada", "roles": [{"role": "approver"}]},
    }
    api = Api(httpx.Response(200, json=session))
    with Reliquary(BASE, transport=httpx.MockTransport(api)) as anonymous:
        signed_in = anonymous.webauthn.sign_in("0" * 32, {"id": "cred"})
    assert isinstance(signed_in, models.Session)
    assert signed_in.person.roles[0].role is models.Role.APPROVER
    assert "Authorization" not in api.requests[0].headers
    assert api.requests[0].url.path == "/Prod/v1/webauthn/authentication/verify"

    api = Api(httpx.Response(200, json={"challenge_id": "c", "options": {"rp": {"id": "example"}}}))
    with Reliquary(BASE, auth=BearerToken("enroll-tok"), transport=httpx.MockTransport(api)) as person:
        options = person.webauthn.registration_options()
    assert options.options["rp"] == {"id": "example"}
    assert api.requests[0].headers["Authorization"] == "Bearer enroll-tok"
    assert json.loads(api.requests[0].content) == {}


def test_well_known_documents_parse_with_their_aliases() -> None:
    did = {
        "@context": ["https://www.w3.org/ns/did/v1"],
        "id": "did:web:api.example",
        "verificationMethod": [{"id": "#checkpoint"}],
        "assertionMethod": ["#checkpoint"],
        "service": [],
    }
    api = Api(httpx.Response(200, json=did, headers={"Content-Type": "application/did+json"}))
    client, _ = _client(api)
    with client:
        document = client.well_known.did()
    assert document.context == ["https://www.w3.org/ns/did/v1"]
    assert document.verification_method == [{"id": "#checkpoint"}]
    assert document.model_dump(by_alias=True)["@context"] == did["@context"]


def test_client_secret_rotation_is_a_keyed_write() -> None:
    api = Api(httpx.Response(200, json={"client_id": CL, "client_secret": "s2"}))
    client, _ = _client(api)
    with client:
        secret = client.clients.rotate_secret(CL, revoke_tokens=True)
    assert secret.client_secret == "s2"
    assert json.loads(api.requests[0].content) == {"revoke_tokens": True}
    assert "Idempotency-Key" in api.requests[0].headers
