"""Access tokens: ES256 JWTs (RFC 9068 ``at+jwt``) issued through a ``TokenSigner`` and verified here.

The one module that imports python-jose. jose checks the signature, and only that, under a posture that
closes its known weaknesses (docs/identity.md, Verification):

- the algorithm list is fixed to ``["ES256"]``, never None, and the header is checked before jose sees
  the token: exactly ``alg``, ``typ`` and ``kid``, so ``none``, HS256 and every other algorithm are
  refused whatever jose would do with them;
- keys are P-256 JWK dicts, validated and turned into jose EC key objects once, and chosen by ``kid``:
  no raw bytes ever reach jose, so a public key (PEM or DER) can never be taken for an HMAC secret;
- compact JWS only (three base64url segments: a five-segment JWE is refused before any parsing), at most
  ``MAX_TOKEN_BYTES``, JSON without duplicate members.

The claims are checked here rather than by ``jose.jwt.decode``, which reads the wall clock, accepts an
audience list, numeric strings and booleans as times: every claim is required, typed and exact, and
times are checked against the caller's ``now`` with ``LEEWAY_SECONDS``.

Every refusal is one ``AuthenticationError``; its ``__cause__`` (a ``TokenRejected``) names the check
for logs and tests, never for the caller.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, NoReturn

from jose import jwk as jose_jwk
from jose import jws as jose_jws
from jose.backends.base import Key as JoseKey
from jose.exceptions import JOSEError

from reliquary.crypto.scope import validate_id
from reliquary.errors import (
    AuthenticationError,
    ConfigurationError,
    InvalidRequestError,
    InvalidScopeError,
    RootOfTrustError,
)
from reliquary.identity.jwk import (
    ALGORITHM,
    SIGNATURE_BYTES,
    b64url,
    b64url_decode,
    validate_public_jwk,
)
from reliquary.identity.models import is_person_id, is_principal_id
from reliquary.identity.ports import TokenSigner
from reliquary.identity.scopes import Scope, format_scope, parse_scope

TOKEN_TYPE = "at+jwt"  # noqa: S105  (RFC 9068 header type, not a secret)
MAX_TOKEN_BYTES = 8192
LEEWAY_SECONDS = 30
MAX_LIFETIME_SECONDS = 3600
# A person's enrollment token (scope ``webauthn:register`` alone) may live this long: it is mailed to a
# person who registers a passkey with it some time in the next day or days, and it works only while it
# is the person's pending enrollment (IdentityService.authorize), so it is spent by its one use.
MAX_ENROLLMENT_LIFETIME_SECONDS = 7 * 86_400
ENROLLMENT_SCOPES = frozenset({Scope.WEBAUTHN_REGISTER.value})
HEADER_MEMBERS = frozenset({"alg", "typ", "kid"})
CLAIMS = frozenset({"iss", "aud", "sub", "client_id", "tenant", "scope", "exp", "iat", "nbf", "jti"})
_SEGMENT = re.compile(r"[A-Za-z0-9_-]+")
_JTI = re.compile(r"[0-9a-f]{32}")
_MAX_TIME = 1 << 40


class TokenRejected(Exception):  # noqa: N818  (a reason, raised only as an AuthenticationError's cause)
    """Why a token was refused: for logs and tests, never for the caller."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _reject(reason: str) -> NoReturn:
    raise AuthenticationError from TokenRejected(reason)


def _compact_json(value: Mapping[str, Any]) -> bytes:
    return json.dumps(value, separators=(",", ":"), sort_keys=True, ensure_ascii=True).encode("ascii")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        raise ValueError("duplicate member")
    return result


def _no_constants(name: str) -> NoReturn:
    raise ValueError(f"{name} is not JSON")


def _json_object(segment: str, what: str) -> dict[str, Any]:
    try:
        value = json.loads(
            b64url_decode(segment).decode("utf-8"),
            object_pairs_hook=_no_duplicates,
            parse_constant=_no_constants,
        )
    except ValueError:  # base64url, UTF-8 and JSON errors are all ValueErrors
        _reject(f"malformed {what}")
    if not isinstance(value, dict):
        _reject(f"malformed {what}")
    return value


def _time(claims: Mapping[str, Any], name: str) -> int:
    value = claims[name]
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < _MAX_TIME:
        _reject(f"malformed {name}")
    return value


def _text(claims: Mapping[str, Any], name: str) -> str:
    value = claims[name]
    if not isinstance(value, str):
        _reject(f"malformed {name}")
    return value


@dataclass(frozen=True, slots=True)
class VerifiedToken:
    client_id: str
    tenant_id: str
    scopes: frozenset[str]
    jti: str
    issued_at: int
    expires_at: int
    key_id: str


class TokenIssuer:
    """Builds and signs access tokens with a ``TokenSigner`` (KMS in the cloud)."""

    def __init__(self, signer: TokenSigner, *, issuer: str, audience: str, ttl_seconds: int) -> None:
        if not 1 <= ttl_seconds <= MAX_LIFETIME_SECONDS:
            raise ConfigurationError(f"token lifetimes are 1 to {MAX_LIFETIME_SECONDS} seconds")
        self._signer = signer
        self._issuer = issuer
        self._audience = audience
        self.ttl_seconds = ttl_seconds

    def issue(
        self,
        *,
        client_id: str,
        tenant_id: str,
        scopes: Iterable[str],
        issued_at: int,
        ttl_seconds: int | None = None,
    ) -> str:
        """A signed token valid from ``issued_at`` for ``ttl_seconds`` (the issuer's unless given: a
        person's enrollment token, up to MAX_ENROLLMENT_LIFETIME_SECONDS). InvalidScopeError if the
        scopes would make it larger than verifiers accept (the client then asks for fewer)."""
        lifetime = self.ttl_seconds if ttl_seconds is None else ttl_seconds
        if not 1 <= lifetime <= MAX_ENROLLMENT_LIFETIME_SECONDS:
            raise ConfigurationError(f"token lifetimes are 1 to {MAX_ENROLLMENT_LIFETIME_SECONDS} seconds")
        header = {"alg": ALGORITHM, "typ": TOKEN_TYPE, "kid": self._signer.key_id}
        claims = {
            "iss": self._issuer,
            "aud": self._audience,
            "sub": client_id,
            "client_id": client_id,
            "tenant": tenant_id,
            "scope": format_scope(scopes),
            "iat": issued_at,
            "nbf": issued_at,
            "exp": issued_at + lifetime,
            "jti": uuid.uuid4().hex,
        }
        signing_input = f"{b64url(_compact_json(header))}.{b64url(_compact_json(claims))}"
        if len(signing_input) + 1 + len(b64url(bytes(SIGNATURE_BYTES))) > MAX_TOKEN_BYTES:
            raise InvalidScopeError(
                "the scopes asked for do not fit in an access token: ask for fewer", field="scope"
            )
        signature = self._signer.sign(signing_input.encode("ascii"))
        if len(signature) != SIGNATURE_BYTES:
            raise RootOfTrustError("the token signer returned a malformed signature")
        return f"{signing_input}.{b64url(signature)}"


class TokenVerifier:
    """Verifies access tokens against a fixed set of keys (the JWKS: the signing key and the previous
    ones still inside their overlap)."""

    def __init__(
        self,
        keys: Iterable[Mapping[str, Any]],
        *,
        issuer: str,
        audience: str,
        leeway_seconds: int = LEEWAY_SECONDS,
        max_lifetime_seconds: int = MAX_LIFETIME_SECONDS,
        max_enrollment_lifetime_seconds: int = MAX_ENROLLMENT_LIFETIME_SECONDS,
    ) -> None:
        self._keys: dict[str, JoseKey] = {}
        self._jwks: dict[str, dict[str, str]] = {}
        for key in keys:
            try:
                canonical = validate_public_jwk(key)
            except ValueError as exc:
                raise ConfigurationError("a token verification key is not a P-256 public JWK") from exc
            if canonical["kid"] in self._keys:
                continue
            # Built from a validated JWK for ES256 only: whatever a header says, this is an EC key.
            self._keys[canonical["kid"]] = jose_jwk.construct(canonical, ALGORITHM)
            self._jwks[canonical["kid"]] = canonical
        if not self._keys:
            raise ConfigurationError("no token verification key")
        self._issuer = issuer
        self._audience = audience
        self._leeway = leeway_seconds
        self._max_lifetime = max_lifetime_seconds
        self._max_enrollment_lifetime = max_enrollment_lifetime_seconds

    @property
    def key_ids(self) -> frozenset[str]:
        return frozenset(self._keys)

    def jwks(self) -> dict[str, list[dict[str, str]]]:
        """The keys as a JSON Web Key Set (RFC 7517 section 5), in the order given."""
        return {"keys": [dict(key) for key in self._jwks.values()]}

    def verify(self, token: object, *, now: int) -> VerifiedToken:
        """The token's claims if it is a valid access token at ``now``; AuthenticationError otherwise."""
        if not isinstance(token, str) or not token:
            _reject("no token")
        if len(token) > MAX_TOKEN_BYTES:
            _reject("too large")
        segments = token.split(".")
        if len(segments) != 3:  # a JWE has five; anything else is not a compact JWS
            _reject("not a compact JWS")
        if not all(_SEGMENT.fullmatch(segment) for segment in segments):
            _reject("not base64url")
        kid, key = self._key_for(_json_object(segments[0], "header"))
        try:
            signature_ok = len(b64url_decode(segments[2])) == SIGNATURE_BYTES
        except ValueError:
            signature_ok = False
        if not signature_ok:  # one encoding of one 64-byte signature: no malleable variants
            _reject("malformed signature")
        try:
            # The signature only: the header was checked above, the claims are checked below.
            jose_jws.verify(token, key, algorithms=[ALGORITHM])
        except JOSEError:
            _reject("bad signature")
        return self._claims(_json_object(segments[1], "claims"), now=now, key_id=kid)

    def _key_for(self, header: Mapping[str, Any]) -> tuple[str, JoseKey]:
        if set(header) != HEADER_MEMBERS:
            _reject("unexpected header")
        if header["alg"] != ALGORITHM:
            _reject("algorithm")
        if header["typ"] != TOKEN_TYPE:
            _reject("type")
        kid = header["kid"]
        if not isinstance(kid, str) or kid not in self._keys:
            _reject("unknown key")
        return kid, self._keys[kid]

    def _claims(self, claims: Mapping[str, Any], *, now: int, key_id: str) -> VerifiedToken:
        if set(claims) != CLAIMS:
            _reject("missing or unexpected claims")
        if _text(claims, "iss") != self._issuer:
            _reject("issuer")
        if _text(claims, "aud") != self._audience:
            _reject("audience")
        client_id = _text(claims, "sub")
        if not is_principal_id(client_id) or _text(claims, "client_id") != client_id:
            _reject("malformed sub")
        tenant_id = _text(claims, "tenant")
        try:
            validate_id("tenant", tenant_id)
            scopes = parse_scope(_text(claims, "scope"))
        except InvalidRequestError:
            _reject("malformed tenant or scope")
        jti = _text(claims, "jti")
        if _JTI.fullmatch(jti) is None:
            _reject("malformed jti")
        issued_at, not_before, expires_at = _time(claims, "iat"), _time(claims, "nbf"), _time(claims, "exp")
        # Only a person's enrollment token lives longer than an access token.
        enrollment = is_person_id(client_id) and scopes == ENROLLMENT_SCOPES
        max_lifetime = self._max_enrollment_lifetime if enrollment else self._max_lifetime
        if not issued_at <= not_before < expires_at <= issued_at + max_lifetime:
            _reject("lifetime")
        if now >= expires_at + self._leeway:
            _reject("expired")
        if now + self._leeway < not_before:
            _reject("not yet valid")
        return VerifiedToken(
            client_id=client_id,
            tenant_id=tenant_id,
            scopes=scopes,
            jti=jti,
            issued_at=issued_at,
            expires_at=expires_at,
            key_id=key_id,
        )
