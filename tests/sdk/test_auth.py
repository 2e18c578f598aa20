"""Token fetching, caching and refresh; client assertions the service's own verifier accepts."""

from __future__ import annotations

import asyncio
import base64
import json
import threading
import urllib.parse
from collections.abc import Callable, Iterator

import httpx
import pytest
from reliquary_sdk.auth import JWT_BEARER, ClientCredentials, DidKeySigner, KeyType, PrivateKeyJwt
from reliquary_sdk.errors import InvalidClientError, RateLimitedError, UnexpectedResponseError

from reliquary.errors import InvalidClientError as CoreInvalidClientError
from reliquary.identity.assertions import verify_assertion
from reliquary.identity.did import DidKey

BASE = "https://api.example"
TOKEN_URL = BASE + "/v1/oauth2/token"


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class TokenServer:
    """A token endpoint and one protected route, recording what they were sent."""

    def __init__(self, *, expires_in: int = 900) -> None:
        self.token_requests: list[httpx.Request] = []
        self.api_requests: list[httpx.Request] = []
        self.expires_in = expires_in
        self.refuse_tokens: set[str] = set()
        self.token_answer: Callable[[], httpx.Response] | None = None
        self._lock = threading.Lock()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        with self._lock:
            if request.url.path == "/v1/oauth2/token":
                self.token_requests.append(request)
                if self.token_answer is not None:
                    return self.token_answer()
                token = f"tok-{len(self.token_requests)}"
                body = {"access_token": token, "token_type": "Bearer", "expires_in": self.expires_in}
                return httpx.Response(200, json=body)
            self.api_requests.append(request)
        if request.headers.get("Authorization", "").removeprefix("Bearer ") in self.refuse_tokens:
            return httpx.Response(
                401, json={"code": "unauthenticated"}, headers={"WWW-Authenticate": "Bearer"}
            )
        return httpx.Response(200, json={"ok": True})

    def form(self, index: int) -> dict[str, str]:
        return dict(urllib.parse.parse_qsl(self.token_requests[index].content.decode()))


def _client(server: TokenServer, auth: httpx.Auth) -> httpx.Client:
    return httpx.Client(transport=httpx.MockTransport(server), auth=auth, base_url=BASE)


def test_client_secret_basic_sends_the_form_urlencoded_pair_and_the_grant() -> None:
    server = TokenServer()
    auth = ClientCredentials("cl-1", "s3cr:et+/", scope="memories:read", token_url=TOKEN_URL)
    with _client(server, auth) as http:
        assert http.get("/v1/vaults").status_code == 200
    basic = server.token_requests[0].headers["Authorization"].removeprefix("Basic ")
    assert base64.b64decode(basic).decode() == "cl-1:s3cr%3Aet%2B%2F"
    assert server.form(0) == {"grant_type": "client_credentials", "scope": "memories:read"}
    assert server.api_requests[0].headers["Authorization"] == "Bearer tok-1"
    assert "s3cr" not in repr(auth)


def test_token_is_cached_then_refreshed_before_it_expires() -> None:
    server, clock = TokenServer(expires_in=900), Clock()
    auth = ClientCredentials("cl-1", "secret", token_url=TOKEN_URL, clock=clock)
    with _client(server, auth) as http:
        http.get("/a")
        clock.now += 800
        http.get("/b")
        assert len(server.token_requests) == 1
        clock.now += 41  # 841 s: inside the last 60 s of its 900 s
        http.get("/c")
    assert len(server.token_requests) == 2
    assert [r.headers["Authorization"] for r in server.api_requests] == ["Bearer tok-1"] * 2 + [
        "Bearer tok-2"
    ]


def test_a_cached_token_refused_with_401_is_fetched_again_once() -> None:
    server = TokenServer()
    auth = ClientCredentials("cl-1", "secret", token_url=TOKEN_URL)
    with _client(server, auth) as http:
        http.get("/a")
        server.refuse_tokens.add("tok-1")
        assert http.get("/b").status_code == 200
        server.refuse_tokens.add("tok-2")
        server.refuse_tokens.add("tok-3")
        assert http.get("/c").status_code == 401  # once only: a fresh token refused is the answer
    assert len(server.token_requests) == 3


def test_token_endpoint_problems_become_typed_errors() -> None:
    server = TokenServer()
    server.token_answer = lambda: httpx.Response(
        401, json={"code": "invalid_client", "error": "invalid_client", "request_id": "r-1"}
    )
    with (
        _client(server, ClientCredentials("cl-1", "bad", token_url=TOKEN_URL)) as http,
        pytest.raises(InvalidClientError) as caught,
    ):
        http.get("/a")
    assert caught.value.request_id == "r-1"
    assert server.api_requests == []
    server.token_answer = lambda: httpx.Response(
        429, json={"code": "rate_limited"}, headers={"Retry-After": "2"}
    )
    with (
        _client(server, ClientCredentials("cl-1", "s", token_url=TOKEN_URL)) as http,
        pytest.raises(RateLimitedError) as limited,
    ):
        http.get("/a")
    assert limited.value.retry_after == 2.0


@pytest.mark.parametrize(
    "body",
    [
        {"token_type": "Bearer", "expires_in": 900},
        {"access_token": "t", "token_type": "Bearer", "expires_in": "900"},
        {"access_token": "t", "token_type": "Bearer", "expires_in": 0},
        {"access_token": "t", "token_type": "mac", "expires_in": 900},
        ["not", "an", "object"],
    ],
)
def test_an_answer_that_is_not_a_token_is_refused(body: object) -> None:
    server = TokenServer()
    server.token_answer = lambda: httpx.Response(200, json=body)
    with (
        _client(server, ClientCredentials("cl-1", "s", token_url=TOKEN_URL)) as http,
        pytest.raises(UnexpectedResponseError),
    ):
        http.get("/a")


def test_concurrent_threads_share_one_token_fetch() -> None:
    server = TokenServer()
    auth = ClientCredentials("cl-1", "secret", token_url=TOKEN_URL)
    with _client(server, auth) as http:
        threads = [threading.Thread(target=http.get, args=(f"/r{i}",)) for i in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert len(server.token_requests) == 1
    assert len(server.api_requests) == 8


def test_async_flow_shares_one_fetch_and_refreshes() -> None:
    server, clock = TokenServer(expires_in=300), Clock()
    auth = ClientCredentials("cl-1", "secret", token_url=TOKEN_URL, clock=clock)

    async def run() -> None:
        async with httpx.AsyncClient(transport=httpx.MockTransport(server), auth=auth, base_url=BASE) as http:
            await asyncio.gather(*(http.get(f"/r{i}") for i in range(6)))
            clock.now += 271  # 30 s (a tenth) before the end
            await http.get("/later")

    asyncio.run(run())
    assert len(server.token_requests) == 2
    assert server.api_requests[-1].headers["Authorization"] == "Bearer tok-2"


@pytest.mark.parametrize("key_type", ["Ed25519", "P-256", "ML-DSA-65"])
def test_private_key_jwt_assertions_pass_the_services_verifier(key_type: KeyType) -> None:
    server, clock = TokenServer(), Clock()
    signer = DidKeySigner.generate(key_type)
    auth = PrivateKeyJwt("cl-agent", signer, token_url=TOKEN_URL, clock=clock)
    with _client(server, auth) as http:
        http.get("/a")
        auth.invalidate()
        http.get("/b")
    forms = [server.form(0), server.form(1)]
    assert all(
        f["client_assertion_type"] == JWT_BEARER and f["grant_type"] == "client_credentials" for f in forms
    )
    key = DidKey.parse(signer.did)  # the SDK's did:key spelling is the service's
    claims = [
        verify_assertion(
            f["client_assertion"], client_id="cl-agent", key=key, audiences={TOKEN_URL}, now=int(clock.now)
        )
        for f in forms
    ]
    assert claims[0].jti != claims[1].jti  # a fresh jti per assertion
    assert claims[0].expires_at - int(clock.now) <= 300
    header = json.loads(base64.urlsafe_b64decode(forms[0]["client_assertion"].split(".")[0] + "=="))
    assert set(header) <= {"alg", "typ", "kid"}
    with pytest.raises(CoreInvalidClientError):  # another audience is refused by the service
        verify_assertion(
            forms[0]["client_assertion"],
            client_id="cl-agent",
            key=key,
            audiences={BASE + "/x"},
            now=int(clock.now),
        )


def test_assertion_signed_by_another_key_is_refused_by_the_service() -> None:
    signer, other = DidKeySigner.generate("P-256"), DidKeySigner.generate("P-256")
    clock = Clock()
    audiences = {TOKEN_URL}
    own = PrivateKeyJwt("cl-agent", signer, clock=clock).assertion(TOKEN_URL)
    verify_assertion(
        own, client_id="cl-agent", key=DidKey.parse(signer.did), audiences=audiences, now=int(clock.now)
    )
    forged = PrivateKeyJwt("cl-agent", other, clock=clock).assertion(TOKEN_URL)
    with pytest.raises(CoreInvalidClientError):
        verify_assertion(
            forged,
            client_id="cl-agent",
            key=DidKey.parse(signer.did),
            audiences=audiences,
            now=int(clock.now),
        )


def test_assertion_lifetime_is_capped_at_five_minutes() -> None:
    with pytest.raises(ValueError, match="300"):
        PrivateKeyJwt("cl-agent", DidKeySigner.generate(), lifetime_seconds=301)


class _Streamed(httpx.SyncByteStream):
    def __init__(self, body: bytes) -> None:
        self._body = body

    def __iter__(self) -> Iterator[bytes]:
        yield self._body


class _StreamingTransport(httpx.BaseTransport):
    """Answers as a real server's connection does: the body still unread when the auth flow sees it."""

    def __init__(self, server: TokenServer) -> None:
        self._server = server

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        answer = self._server(request)
        return httpx.Response(answer.status_code, headers=answer.headers, stream=_Streamed(answer.content))


def test_the_sync_flow_reads_a_streamed_token_answer() -> None:
    server = TokenServer()
    auth = ClientCredentials("cl-1", "secret", token_url=TOKEN_URL)
    with httpx.Client(transport=_StreamingTransport(server), auth=auth, base_url=BASE) as http:
        assert http.get("/a").json() == {"ok": True}
        server.refuse_tokens.add("tok-1")
        assert http.get("/b").status_code == 200  # the refetch after a 401 reads its answer too
    assert len(server.token_requests) == 2
    assert len(server.api_requests) == 3
    assert (
        server.api_requests[0].headers["Authorization"],
        server.api_requests[-1].headers["Authorization"],
    ) == (
        "Bearer tok-1",
        "Bearer tok-2",
    )
