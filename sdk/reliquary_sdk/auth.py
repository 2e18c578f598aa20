"""How the SDK gets its access tokens: OAuth2 client credentials at ``POST /v1/oauth2/token``.

Two client authentications (docs/api.md "Authentication", docs/identity.md "DIDs and private_key_jwt"):

- ``ClientCredentials``: ``client_secret_basic`` (RFC 6749 2.3.1: id and secret form-urlencoded, then
  HTTP Basic);
- ``PrivateKeyJwt``: RFC 7523 client assertions signed by the client's ``did:key`` (Ed25519 as ``EdDSA``,
  P-256 as ``ES256`` with a 64-byte ``r || s``, ML-DSA-65), ``iss`` = ``sub`` = the client id, ``aud`` the
  token endpoint's URL, ``exp`` at most 5 minutes ahead and a fresh random ``jti`` on every assertion.

Both are ``httpx.Auth`` flows: the token is fetched on first use, cached, and fetched again shortly before
it expires (or once when a cached token is refused with ``401``). One lock per flow (a ``threading.Lock``
for the sync client, an ``asyncio.Lock`` for the async one) makes concurrent callers share one fetch.
"""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
import threading
import time
import urllib.parse
from collections.abc import AsyncGenerator, Callable, Generator
from dataclasses import dataclass
from typing import Any, Literal

import httpx
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, mldsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from reliquary_sdk.errors import InvalidDidError, ReliquaryError, UnexpectedResponseError, error_from_response

__all__ = [
    "JWT_BEARER",
    "BearerToken",
    "ClientCredentials",
    "DidKeySigner",
    "KeyType",
    "OAuth2Auth",
    "PrivateKeyJwt",
]

JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
TOKEN_PATH = "/v1/oauth2/token"  # noqa: S105  (a URL path, not a secret)
ASSERTION_LIFETIME_SECONDS = 120  # the service refuses more than 300 s; short keeps a leaked one useless
KeyType = Literal["Ed25519", "P-256", "ML-DSA-65"]
_ALGORITHMS: dict[str, str] = {"Ed25519": "EdDSA", "P-256": "ES256", "ML-DSA-65": "ML-DSA-65"}
_MULTICODEC_PREFIX: dict[str, bytes] = {
    "Ed25519": b"\xed\x01",
    "P-256": b"\x80\x24",
    "ML-DSA-65": b"\x91\x24",
}
_B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"

_PrivateKey = ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey | mldsa.MLDSA65PrivateKey


def _b58encode(data: bytes) -> str:
    number = int.from_bytes(data, "big")
    out = ""
    while number:
        number, rest = divmod(number, 58)
        out = _B58[rest] + out
    return "1" * (len(data) - len(data.lstrip(b"\0"))) + out


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


class DidKeySigner:
    """A ``did:key`` and the private key that signs for it. Build one with ``generate`` or
    ``from_private_key``; the secret stays inside the ``cryptography`` key object."""

    def __init__(self, private_key: _PrivateKey) -> None:
        if isinstance(private_key, ed25519.Ed25519PrivateKey):
            self.key_type: KeyType = "Ed25519"
            public = private_key.public_key().public_bytes_raw()
        elif isinstance(private_key, ec.EllipticCurvePrivateKey):
            if not isinstance(private_key.curve, ec.SECP256R1):
                raise InvalidDidError("a did:key's EC key is P-256")
            self.key_type = "P-256"
            public = private_key.public_key().public_bytes(
                serialization.Encoding.X962, serialization.PublicFormat.CompressedPoint
            )
        elif isinstance(private_key, mldsa.MLDSA65PrivateKey):
            self.key_type = "ML-DSA-65"
            public = private_key.public_key().public_bytes_raw()
        else:
            raise InvalidDidError("a did:key is an Ed25519, P-256 or ML-DSA-65 key")
        self._key = private_key
        self.did = "did:key:z" + _b58encode(_MULTICODEC_PREFIX[self.key_type] + public)

    @classmethod
    def generate(cls, key_type: KeyType = "Ed25519") -> DidKeySigner:
        if key_type == "Ed25519":
            return cls(ed25519.Ed25519PrivateKey.generate())
        if key_type == "P-256":
            return cls(ec.generate_private_key(ec.SECP256R1()))
        if key_type == "ML-DSA-65":
            return cls(mldsa.MLDSA65PrivateKey.generate())
        raise InvalidDidError("a did:key is an Ed25519, P-256 or ML-DSA-65 key")

    @classmethod
    def from_private_key(cls, private_key: _PrivateKey) -> DidKeySigner:
        return cls(private_key)

    @property
    def algorithm(self) -> str:
        return _ALGORITHMS[self.key_type]

    def sign(self, message: bytes) -> bytes:
        """The JWS signature of ``message``: Ed25519, ES256 as 64 bytes ``r || s``, ML-DSA-65 (no context)."""
        key = self._key
        if isinstance(key, ec.EllipticCurvePrivateKey):
            r, s = decode_dss_signature(key.sign(message, ec.ECDSA(hashes.SHA256())))
            return r.to_bytes(32, "big") + s.to_bytes(32, "big")
        return key.sign(message)

    def sign_jwt(self, claims: dict[str, Any]) -> str:
        """A compact JWS over ``claims`` whose header holds only ``alg`` and ``typ``."""
        header = b64url(json.dumps({"alg": self.algorithm, "typ": "JWT"}, separators=(",", ":")).encode())
        payload = b64url(json.dumps(claims, separators=(",", ":")).encode())
        signing_input = f"{header}.{payload}"
        return f"{signing_input}.{b64url(self.sign(signing_input.encode('ascii')))}"

    def __repr__(self) -> str:
        return f"DidKeySigner({self.key_type})"


@dataclass(frozen=True, slots=True)
class _Token:
    access_token: str
    refresh_at: float
    expires_at: float
    scope: str | None


class OAuth2Auth(httpx.Auth):
    """The shared token cache and flow; subclasses say how the token request authenticates."""

    requires_response_body = True

    def __init__(
        self,
        *,
        scope: str | None = None,
        token_url: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.scope = scope
        self.token_url = token_url
        self._clock = clock
        self._token: _Token | None = None
        self._thread_lock = threading.Lock()
        self._async_lock: asyncio.Lock | None = None

    def bind(self, base_url: str) -> None:
        """Set the token endpoint from the API's base URL, unless one was given."""
        if self.token_url is None:
            self.token_url = base_url.rstrip("/") + TOKEN_PATH

    def invalidate(self) -> None:
        self._token = None

    @property
    def cached_token(self) -> str | None:
        token = self._token
        return token.access_token if token is not None and self._clock() < token.expires_at else None

    # --- what a subclass provides ---------------------------------------------------------------
    def _client_authentication(self, token_url: str) -> tuple[dict[str, str], dict[str, str]]:
        """The form members and headers that authenticate this client at the token endpoint."""
        raise NotImplementedError

    # --- the flow -------------------------------------------------------------------------------
    def _fresh(self) -> str | None:
        token = self._token
        return token.access_token if token is not None and self._clock() < token.refresh_at else None

    def _token_request(self) -> httpx.Request:
        if self.token_url is None:
            raise ReliquaryError(
                "the token endpoint is unknown: pass token_url or use the client", code="sdk"
            )
        form, headers = self._client_authentication(self.token_url)
        form = {"grant_type": "client_credentials", **form}
        if self.scope:
            form["scope"] = self.scope
        return httpx.Request(
            "POST", self.token_url, data=form, headers={"Accept": "application/json", **headers}
        )

    def _store(self, response: httpx.Response, asked_at: float) -> str:
        if response.status_code != httpx.codes.OK:
            raise error_from_response(response)
        try:
            body = response.json()
            access_token = body["access_token"]
            expires_in = body["expires_in"]
            token_type = body.get("token_type", "Bearer")
        except (ValueError, KeyError, TypeError):
            raise UnexpectedResponseError("the token endpoint's answer is not a token") from None
        if (
            not isinstance(access_token, str)
            or not access_token
            or isinstance(expires_in, bool)
            or not isinstance(expires_in, int)
            or expires_in <= 0
            or str(token_type).lower() != "bearer"
        ):
            raise UnexpectedResponseError("the token endpoint's answer is not a token")
        # Refresh before expiry: a tenth of the lifetime, at least 10 s and at most 60 s early, counted
        # from when the token was asked for (the service's clock started no later).
        margin = min(60.0, max(10.0, expires_in / 10))
        scope = body.get("scope")
        self._token = _Token(
            access_token=access_token,
            refresh_at=asked_at + max(expires_in - margin, 0.0),
            expires_at=asked_at + expires_in,
            scope=scope if isinstance(scope, str) else None,
        )
        return access_token

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        with self._thread_lock:
            token = self._fresh()
            reused = token is not None
            if token is None:
                asked_at = self._clock()
                token_response = yield self._token_request()
                token_response.read()  # a streamed answer (a real transport) is read before parsing
                token = self._store(token_response, asked_at)
        request.headers["Authorization"] = f"Bearer {token}"
        response = yield request
        if response.status_code == httpx.codes.UNAUTHORIZED and reused:
            # A cached token the service no longer takes (a revoked client's, a rotated key): fetch once.
            with self._thread_lock:
                if self._token is not None and self._token.access_token == token:
                    self._token = None
                token = self._fresh()
                if token is None:
                    asked_at = self._clock()
                    token_response = yield self._token_request()
                    token_response.read()
                    token = self._store(token_response, asked_at)
            request.headers["Authorization"] = f"Bearer {token}"
            yield request

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        if self._async_lock is None:
            self._async_lock = asyncio.Lock()
        async with self._async_lock:
            token = self._fresh()
            reused = token is not None
            if token is None:
                asked_at = self._clock()
                token_response = yield self._token_request()
                await token_response.aread()
                token = self._store(token_response, asked_at)
        request.headers["Authorization"] = f"Bearer {token}"
        response = yield request
        if response.status_code == httpx.codes.UNAUTHORIZED and reused:
            async with self._async_lock:
                if self._token is not None and self._token.access_token == token:
                    self._token = None
                token = self._fresh()
                if token is None:
                    asked_at = self._clock()
                    token_response = yield self._token_request()
                    await token_response.aread()
                    token = self._store(token_response, asked_at)
            request.headers["Authorization"] = f"Bearer {token}"
            yield request


class ClientCredentials(OAuth2Auth):
    """``client_secret_basic``: the client id and secret, form-urlencoded then HTTP Basic."""

    def __init__(
        self,
        client_id: str,
        client_secret: str,
        *,
        scope: str | None = None,
        token_url: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(scope=scope, token_url=token_url, clock=clock)
        self.client_id = client_id
        self._client_secret = client_secret

    def _client_authentication(self, token_url: str) -> tuple[dict[str, str], dict[str, str]]:  # noqa: ARG002
        # RFC 6749 2.3.1: each part is form-urlencoded before the Basic encoding.
        user = urllib.parse.quote_plus(self.client_id)
        password = urllib.parse.quote_plus(self._client_secret)
        basic = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
        return {}, {"Authorization": f"Basic {basic}"}

    def __repr__(self) -> str:
        return f"ClientCredentials(client_id={self.client_id!r})"


class PrivateKeyJwt(OAuth2Auth):
    """``private_key_jwt`` (RFC 7523): a fresh assertion signed by the client's did:key per token request.

    ``audience`` defaults to the token endpoint's URL; pass the service's issuer when it differs from the
    URL the SDK calls (a proxy in between)."""

    def __init__(
        self,
        client_id: str,
        signer: DidKeySigner,
        *,
        scope: str | None = None,
        token_url: str | None = None,
        audience: str | None = None,
        lifetime_seconds: int = ASSERTION_LIFETIME_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not 0 < lifetime_seconds <= 300:
            raise ValueError("an assertion lives at most 300 seconds")
        super().__init__(scope=scope, token_url=token_url, clock=clock)
        self.client_id = client_id
        self.signer = signer
        self.audience = audience
        self.lifetime_seconds = lifetime_seconds

    def assertion(self, audience: str) -> str:
        now = int(self._clock())
        claims = {
            "iss": self.client_id,
            "sub": self.client_id,
            "aud": audience,
            "iat": now,
            "exp": now + self.lifetime_seconds,
            "jti": secrets.token_urlsafe(24),
        }
        return self.signer.sign_jwt(claims)

    def _client_authentication(self, token_url: str) -> tuple[dict[str, str], dict[str, str]]:
        form = {
            "client_assertion_type": JWT_BEARER,
            "client_assertion": self.assertion(self.audience or token_url),
        }
        return form, {}

    def __repr__(self) -> str:
        return f"PrivateKeyJwt(client_id={self.client_id!r}, {self.signer!r})"


class BearerToken(httpx.Auth):
    """A token held already: a person's enrollment token (``webauthn:register``) or the session a
    passkey sign-in answered (``Session.access_token``). Nothing is fetched or refreshed."""

    def __init__(self, token: str) -> None:
        if not token:
            raise ValueError("a bearer token is a non-empty string")
        self._token = token

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = f"Bearer {self._token}"
        yield request
