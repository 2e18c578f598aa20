"""Authentication over real HTTP: the token endpoint (OAuth2 client credentials, RFC 6749), the JWKS,
and the token regressions on a protected route (issue 13: no token, expired, not yet valid, wrong
audience or issuer, ``alg: none``, HS256 forged with the public key, tampering, another tenant's token,
a revoked client, a rotated secret).

Tokens that must be refused for their claims alone are signed by the stack's own KMS token key (the
adapter the API signs with), so the only thing wrong with them is the claim under test; a control test
shows the same helper's token with the real claims is accepted."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from jose import jwt as jose_jwt

from infra.local.seed import SUPPORT_VAULT, TENANT, UNANIMOUS_VAULT
from reliquary.adapters.token_keys import KmsTokenSigner, kms_public_key
from reliquary.errors import AuthenticationError
from reliquary.identity.scopes import Role, RoleBinding
from reliquary.identity.tokens import TokenRejected, TokenVerifier
from tests.support.api import OTHER_MEMORY, OTHER_TENANT, OTHER_VAULT, ApiClient, ApiWorld

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

TOKEN_PATH = "/v1/oauth2/token"
PROTECTED = "/v1/vaults"
GRANT = {"grant_type": "client_credentials"}
PROBLEM = "application/problem+json"
UNKNOWN_CLIENT = "cl-" + "0" * 24
MARKER_SECRET = "rqs_MARKER-never-echoed-7f3a"
WRITER_SCOPES = {
    f"vaults:read/{SUPPORT_VAULT}",
    f"memories:read/{SUPPORT_VAULT}",
    f"memories:write/{SUPPORT_VAULT}",
}


# ------------------------------------------------------------------------------------ JOSE helpers
def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def b64url_json(value: Mapping[str, Any]) -> str:
    return b64url(json.dumps(value, separators=(",", ":")).encode())


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def parts(token: str) -> tuple[dict[str, Any], dict[str, Any], bytes]:
    header, claims, signature = token.split(".")
    return json.loads(unb64url(header)), json.loads(unb64url(claims)), unb64url(signature)


def kms_signed(signer: KmsTokenSigner, header: Mapping[str, Any], claims: Mapping[str, Any]) -> str:
    """A token signed by the stack's token key, as the API signs them (KMS, ECDSA P-256, raw r || s)."""
    signing_input = f"{b64url_json(header)}.{b64url_json(claims)}"
    return f"{signing_input}.{b64url(signer.sign(signing_input.encode('ascii')))}"


def hs256(header: Mapping[str, Any], claims: Mapping[str, Any], secret: bytes) -> str:
    signing_input = f"{b64url_json(header)}.{b64url_json(claims)}"
    mac = hmac.new(secret, signing_input.encode("ascii"), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(mac)}"


def jwk_public_key(jwk: Mapping[str, str]) -> ec.EllipticCurvePublicKey:
    x, y = (int.from_bytes(unb64url(jwk[c]), "big") for c in ("x", "y"))
    return ec.EllipticCurvePublicNumbers(x, y, ec.SECP256R1()).public_key()


# ------------------------------------------------------------------------------------ HTTP helpers
def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def token_for(world: ApiWorld, client: ApiClient, **form: str) -> httpx.Response:
    return world.http.post(TOKEN_PATH, data={**GRANT, **form}, auth=(client.client_id, client.secret))


def access_token(world: ApiWorld, client: ApiClient, **form: str) -> str:
    answer = token_for(world, client, **form)
    assert answer.status_code == 200, answer.text
    token: str = answer.json()["access_token"]
    return token


def assert_problem(answer: httpx.Response, status: int, code: str, *never: str) -> dict[str, Any]:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == PROBLEM
    body: dict[str, Any] = answer.json()
    assert body["status"] == status
    assert body["code"] == code
    assert body["type"] == f"urn:reliquary:problem:{code}"
    assert body["request_id"] == answer.headers["x-request-id"]
    for text in never:
        assert text not in answer.text
        assert all(text not in value for value in answer.headers.values())
    return body


def assert_unauthenticated(answer: httpx.Response, *never: str) -> None:
    body = assert_problem(answer, 401, "unauthenticated", *never)
    assert body["retryable"] is False
    assert answer.headers["www-authenticate"].startswith("Bearer ")


def assert_oauth_error(answer: httpx.Response, status: int, error: str, *never: str) -> dict[str, Any]:
    """A token endpoint error: a problem with RFC 6749 5.2's ``error``, never cached."""
    body = assert_problem(answer, status, error, *never)
    assert body["error"] == error
    assert isinstance(body["error_description"], str)
    assert body["error_description"]
    assert answer.headers["cache-control"] == "no-store"
    assert answer.headers["pragma"] == "no-cache"
    return body


def vault_ids(world: ApiWorld, token: str) -> list[str]:
    answer = world.http.get(PROTECTED, headers=bearer(token))
    assert answer.status_code == 200, answer.text
    return sorted(v["vault_id"] for v in answer.json()["vaults"])


@pytest.fixture(scope="module")
def signer(world: ApiWorld) -> KmsTokenSigner:
    key_id = world.api.settings.token_signing_key_id
    assert key_id
    return KmsTokenSigner.load(world.stack.client("kms"), key_id)


@pytest.fixture(scope="module")
def writer(world: ApiWorld) -> ApiClient:
    """A client of acme's that these tests alone use (the rate limit is per client)."""
    return world.new_client(TENANT, RoleBinding(Role.WRITER, SUPPORT_VAULT))


@pytest.fixture(scope="module")
def genuine(world: ApiWorld, writer: ApiClient) -> str:
    return access_token(world, writer)


# ------------------------------------------------------------------------------------ the token endpoint
def test_client_secret_basic_issues_a_bearer_token_never_cached(world: ApiWorld, writer: ApiClient) -> None:
    answer = token_for(world, writer)
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/json"
    assert answer.headers["cache-control"] == "no-store"
    assert answer.headers["pragma"] == "no-cache"
    body = answer.json()
    assert set(body) == {"access_token", "token_type", "expires_in", "scope"}
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == world.api.settings.token_ttl_seconds == 900
    assert set(body["scope"].split(" ")) == WRITER_SCOPES
    header, claims, signature = parts(body["access_token"])
    assert header["alg"] == "ES256"
    assert header["typ"] == "at+jwt"
    assert len(signature) == 64
    assert claims["sub"] == claims["client_id"] == writer.client_id
    assert claims["tenant"] == TENANT
    assert claims["iss"] == world.url
    assert claims["aud"] == world.api.settings.token_audience
    assert claims["exp"] - claims["iat"] == 900
    assert claims["iat"] == claims["nbf"]
    assert abs(claims["iat"] - time.time()) < 60
    assert vault_ids(world, body["access_token"]) == [SUPPORT_VAULT]


def test_client_secret_post_issues_a_token_too(world: ApiWorld, writer: ApiClient) -> None:
    answer = world.http.post(
        TOKEN_PATH, data={**GRANT, "client_id": writer.client_id, "client_secret": writer.secret}
    )
    assert answer.status_code == 200, answer.text
    assert answer.headers["cache-control"] == "no-store"
    assert parts(answer.json()["access_token"])[1]["sub"] == writer.client_id
    assert vault_ids(world, answer.json()["access_token"]) == [SUPPORT_VAULT]


def test_each_token_is_new(world: ApiWorld, writer: ApiClient) -> None:
    first, second = access_token(world, writer), access_token(world, writer)
    assert parts(first)[1]["jti"] != parts(second)[1]["jti"]


def test_basic_and_form_credentials_together_are_refused(world: ApiWorld, writer: ApiClient) -> None:
    answer = world.http.post(
        TOKEN_PATH,
        data={**GRANT, "client_id": writer.client_id, "client_secret": writer.secret},
        auth=(writer.client_id, writer.secret),
    )
    assert_oauth_error(answer, 400, "invalid_request", writer.secret)


def _revoked(world: ApiWorld) -> ApiClient:
    client = world.new_client(TENANT, RoleBinding(Role.REQUESTER, SUPPORT_VAULT))
    world.api.runtime.identity.revoke_client(TENANT, client.client_id)
    return client


def _credentials(world: ApiWorld, writer: ApiClient, case: str) -> tuple[str, str]:
    """(client id, secret) that must not authenticate."""
    if case == "wrong secret":
        return writer.client_id, MARKER_SECRET
    if case == "unknown client":
        return UNKNOWN_CLIENT, MARKER_SECRET
    if case == "malformed client id":
        return "MARKER-client", MARKER_SECRET
    if case == "another client's secret":
        return writer.client_id, world.client("writer").secret
    revoked = _revoked(world)
    return revoked.client_id, revoked.secret


CREDENTIALS = ["wrong secret", "unknown client", "malformed client id", "another client's secret", "revoked"]


@pytest.mark.parametrize("case", CREDENTIALS)
@pytest.mark.parametrize("method", ["basic", "post"])
def test_bad_client_credentials_are_one_invalid_client(
    world: ApiWorld, writer: ApiClient, case: str, method: str
) -> None:
    client_id, secret = _credentials(world, writer, case)
    if method == "basic":
        answer = world.http.post(TOKEN_PATH, data=GRANT, auth=(client_id, secret))
    else:
        answer = world.http.post(TOKEN_PATH, data={**GRANT, "client_id": client_id, "client_secret": secret})
    body = assert_oauth_error(answer, 401, "invalid_client", secret, "MARKER")
    # One answer whatever was wrong: nothing tells a guesser which part failed.
    assert body["detail"] == body["error_description"] == "client authentication failed"
    if method == "basic":  # RFC 6749 5.2: a challenge of the scheme the client used
        assert answer.headers["www-authenticate"].startswith("Basic ")
    else:  # credentials in the form: no challenge (and never a Bearer one: no token was involved)
        assert "www-authenticate" not in answer.headers


@pytest.mark.parametrize(
    "authorization",
    [
        "Basic !!!not-base64!!!",
        "Basic " + base64.b64encode(b"no-colon-MARKER").decode(),
        "Basic " + base64.b64encode(b"\xff\xfe:MARKER").decode(),
        "Bearer MARKER",
    ],
)
def test_a_malformed_authorization_header_is_invalid_client(world: ApiWorld, authorization: str) -> None:
    answer = world.http.post(TOKEN_PATH, data=GRANT, headers={"Authorization": authorization})
    assert_oauth_error(answer, 401, "invalid_client", "MARKER")
    assert answer.headers["www-authenticate"].startswith("Basic ")


def test_no_client_credentials_at_all_is_invalid_client(world: ApiWorld) -> None:
    assert_oauth_error(world.http.post(TOKEN_PATH, data=GRANT), 401, "invalid_client")


@pytest.mark.parametrize("grant", ["password", "authorization_code", "refresh_token", "MARKER-grant"])
def test_other_grants_are_unsupported(world: ApiWorld, writer: ApiClient, grant: str) -> None:
    answer = world.http.post(TOKEN_PATH, data={"grant_type": grant}, auth=(writer.client_id, writer.secret))
    assert_oauth_error(answer, 400, "unsupported_grant_type", "MARKER", writer.secret)


def test_a_missing_grant_type_is_invalid_request(world: ApiWorld, writer: ApiClient) -> None:
    answer = world.http.post(
        TOKEN_PATH, data={"scope": "vaults:read"}, auth=(writer.client_id, writer.secret)
    )
    assert_oauth_error(answer, 400, "invalid_request")


@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        (json.dumps({"grant_type": "client_credentials", "note": "MARKER"}), "application/json"),
        ("grant_type=client_credentials&note=MARKER", "text/plain"),
        ("grant_type=client_credentials&note=MARKER", None),
        ("grant_type=client_credentials&grant_type=client_credentials", "application/x-www-form-urlencoded"),
        ("grant_type=client_credentials&MARKER", "application/x-www-form-urlencoded"),
        ("grant_type=client_credentials&x=" + "x" * 21000, "application/x-www-form-urlencoded"),
        ("\u00e9=MARKER", "application/x-www-form-urlencoded; charset=utf-8"),
    ],
    ids=["json", "text", "no type", "repeated", "not a pair", "too large", "not ascii"],
)
def test_a_request_that_is_not_one_form_is_invalid_request(
    world: ApiWorld, writer: ApiClient, content: str, content_type: str | None
) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    answer = world.http.post(
        TOKEN_PATH, content=content.encode(), headers=headers, auth=(writer.client_id, writer.secret)
    )
    assert_oauth_error(answer, 400, "invalid_request", "MARKER")


def test_a_scope_asked_for_narrows_the_token(world: ApiWorld, writer: ApiClient) -> None:
    wanted = f"memories:read/{SUPPORT_VAULT}"
    answer = token_for(world, writer, scope=wanted)
    assert answer.status_code == 200, answer.text
    assert answer.json()["scope"] == wanted
    token = answer.json()["access_token"]
    assert parts(token)[1]["scope"] == wanted
    memories = world.http.get(f"/v1/vaults/{SUPPORT_VAULT}/memories", headers=bearer(token))
    assert memories.status_code == 200, memories.text
    # The client may read the vault, this token may not; nor write.
    assert_problem(world.http.get(f"/v1/vaults/{SUPPORT_VAULT}", headers=bearer(token)), 403, "forbidden")
    sealed = world.http.post(
        f"/v1/vaults/{SUPPORT_VAULT}/memories", json={"text": "x", "user_id": "u"}, headers=bearer(token)
    )
    assert_problem(sealed, 403, "forbidden")


def test_an_empty_scope_is_a_token_that_allows_nothing(world: ApiWorld, writer: ApiClient) -> None:
    answer = token_for(world, writer, scope="")
    assert answer.status_code == 200, answer.text
    assert answer.json()["scope"] == ""
    token = answer.json()["access_token"]
    assert_problem(world.http.get(f"/v1/vaults/{SUPPORT_VAULT}", headers=bearer(token)), 403, "forbidden")


@pytest.mark.parametrize(
    "scope",
    [
        "vaults:admin",  # not granted at all
        f"vaults:admin/{SUPPORT_VAULT}",
        "memories:read",  # every vault: the client has one
        f"memories:read/{UNANIMOUS_VAULT}",  # another vault
        f"memories:read/{OTHER_VAULT}",
        "tenants:manage",
        "MARKER:scope",  # no such scope
        f"audit:read/{SUPPORT_VAULT}",  # a tenant-wide scope cannot name a vault
        f"memories:read/{SUPPORT_VAULT}  vaults:read/{SUPPORT_VAULT}",  # two spaces
        f"memories:read/{SUPPORT_VAULT}/MARKER",
    ],
)
def test_a_scope_beyond_the_clients_roles_is_invalid_scope(
    world: ApiWorld, writer: ApiClient, scope: str
) -> None:
    answer = token_for(world, writer, scope=scope)
    assert_oauth_error(answer, 400, "invalid_scope", "MARKER", writer.secret)


def test_the_token_endpoint_is_post_only(world: ApiWorld) -> None:
    assert_problem(world.http.get(TOKEN_PATH), 405, "method_not_allowed")


# ------------------------------------------------------------------------------------ the JWKS
def test_the_jwks_publishes_the_kms_key_and_a_token_verifies_with_it(world: ApiWorld, genuine: str) -> None:
    answer = world.http.get("/.well-known/jwks.json")
    assert answer.status_code == 200
    assert answer.headers["cache-control"] == "public, max-age=300"
    keys = answer.json()["keys"]
    assert len(keys) == 1
    (jwk,) = keys
    assert set(jwk) == {"kty", "crv", "x", "y", "kid", "alg", "use"}  # no private "d"
    assert (jwk["kty"], jwk["crv"], jwk["alg"], jwk["use"]) == ("EC", "P-256", "ES256", "sig")
    key_id = world.api.settings.token_signing_key_id
    assert key_id
    assert jwk == kms_public_key(world.stack.client("kms"), key_id).jwk
    header, _, signature = parts(genuine)
    assert header["kid"] == jwk["kid"]

    # As a relying party would: python-jose with the JWK, the algorithm pinned.
    claims = jose_jwt.decode(
        genuine,
        jwk,
        algorithms=["ES256"],
        audience=world.api.settings.token_audience,
        issuer=world.url,
    )
    assert claims["tenant"] == TENANT
    # And by hand with cryptography: r || s over the signing input.
    signing_input = genuine.rsplit(".", 1)[0].encode()
    der = encode_dss_signature(int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big"))
    public_key = jwk_public_key(jwk)
    public_key.verify(der, signing_input, ec.ECDSA(hashes.SHA256()))
    with pytest.raises(InvalidSignature):
        public_key.verify(der, signing_input + b"x", ec.ECDSA(hashes.SHA256()))


# ------------------------------------------------------------------------------------ bearer tokens
def test_a_token_signed_by_the_helper_with_genuine_claims_is_accepted(
    world: ApiWorld, signer: KmsTokenSigner, genuine: str
) -> None:
    """The control of the forgeries below: the helper's tokens fail only for what each one changes."""
    header, claims, _ = parts(genuine)
    token = kms_signed(signer, header, {**claims, "jti": "ab" * 16})
    assert rejection(world, token) is None
    assert vault_ids(world, token) == [SUPPORT_VAULT]


@pytest.mark.parametrize(
    "authorization",
    [None, "", "Bearer", "Basic " + base64.b64encode(b"a:b").decode(), "MARKER", "Bearer MARKER"],
)
def test_no_usable_token_is_401(world: ApiWorld, authorization: str | None) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    assert_unauthenticated(world.http.get(PROTECTED, headers=headers), "MARKER")


@dataclass(frozen=True)
class Genuine:
    """A genuine token, its parts, and what a forger may use: the token key (to sign claims that are
    wrong) and the world (its JWKS)."""

    token: str
    header: dict[str, Any]
    claims: dict[str, Any]
    signer: KmsTokenSigner
    world: ApiWorld

    def signed(self, header: Mapping[str, Any] | None = None, **claims: Any) -> str:
        return kms_signed(self.signer, header or self.header, {**self.claims, **claims})


Forgery = Callable[[Genuine], str]


def _now() -> int:
    return int(time.time())


def _resigned(**changes: Any) -> Forgery:
    """The genuine claims with ``changes``, correctly signed by the token key."""
    return lambda g: g.signed(**changes)


def _times(iat_from_now: int, lifetime: int = 900) -> Forgery:
    def make(g: Genuine) -> str:
        iat = _now() + iat_from_now
        return g.signed(iat=iat, nbf=iat, exp=iat + lifetime)

    return make


def _header(**changes: Any) -> Forgery:
    return lambda g: g.signed({**g.header, **changes})


def _alg_none(keep_signature: bool) -> Forgery:
    def make(g: Genuine) -> str:
        signature = g.token.rsplit(".", 1)[1] if keep_signature else ""
        return f"{b64url_json({**g.header, 'alg': 'none'})}.{b64url_json(g.claims)}.{signature}"

    return make


def _hs256_with_public_key(encoding: serialization.Encoding) -> Forgery:
    """The classic confusion: the published public key (PEM or DER) used as an HMAC secret."""

    def make(g: Genuine) -> str:
        jwk = g.world.http.get("/.well-known/jwks.json").json()["keys"][0]
        secret = jwk_public_key(jwk).public_bytes(encoding, serialization.PublicFormat.SubjectPublicKeyInfo)
        return hs256({**g.header, "alg": "HS256"}, g.claims, secret)

    return make


def _flipped_signature(g: Genuine) -> str:
    signing_input, signature = g.token.rsplit(".", 1)
    raw = bytearray(unb64url(signature))
    raw[40] ^= 0x01
    return f"{signing_input}.{b64url(bytes(raw))}"


def _swapped_claims(**changes: Any) -> Forgery:
    """The claims changed after signing: the genuine signature kept."""

    def make(g: Genuine) -> str:
        header, _, signature = g.token.split(".")
        return f"{header}.{b64url_json({**g.claims, **changes})}.{signature}"

    return make


def _without(claim: str) -> Forgery:
    return lambda g: kms_signed(g.signer, g.header, {k: v for k, v in g.claims.items() if k != claim})


def _other_tenants_client(g: Genuine) -> str:
    """A genuine signature over acme's tenant claim for a globex client: the client's row decides."""
    other = g.world.client("writer", OTHER_TENANT).client_id
    return g.signed(sub=other, client_id=other)


# Each forgery, and the check of the token verifier that refuses it (None: the token verifies, and the
# client's row refuses it: an unknown client, or a client of another tenant than the token's claim).
FORGERIES: dict[str, tuple[Forgery, str | None]] = {
    "expired": (_times(-1000), "expired"),
    "expired just past the leeway": (_times(-900 - 31), "expired"),
    "not yet valid": (_times(+300), "not yet valid"),
    "lifetime over an hour": (_times(-10, lifetime=7200), "lifetime"),
    "wrong audience": (_resigned(aud="another-api"), "audience"),
    "audience list": (_resigned(aud=["another-api", "reliquary-api"]), "malformed aud"),
    "wrong issuer": (_resigned(iss="https://issuer.example"), "issuer"),
    "unknown client": (_resigned(sub=UNKNOWN_CLIENT, client_id=UNKNOWN_CLIENT), None),
    "sub and client_id differ": (_resigned(client_id=UNKNOWN_CLIENT), "malformed sub"),
    "string times": (lambda g: g.signed(exp=str(g.claims["exp"])), "malformed exp"),
    "no jti": (_without("jti"), "missing or unexpected claims"),
    "no exp": (_without("exp"), "missing or unexpected claims"),
    "extra claim": (_resigned(admin=True), "missing or unexpected claims"),
    "alg none": (_alg_none(keep_signature=False), "not base64url"),
    "alg none with the signature kept": (_alg_none(keep_signature=True), "algorithm"),
    "alg ES384": (_header(alg="ES384"), "algorithm"),
    "typ JWT": (_header(typ="JWT"), "type"),
    "unknown kid": (_header(kid="k" * 43), "unknown key"),
    "jwk in the header": (_header(jwk={"kty": "EC"}), "unexpected header"),
    "HS256 forged with the PEM public key": (_hs256_with_public_key(serialization.Encoding.PEM), "algorithm"),
    "HS256 forged with the DER public key": (_hs256_with_public_key(serialization.Encoding.DER), "algorithm"),
    "tampered signature": (_flipped_signature, "bad signature"),
    "tenant swapped to globex": (_swapped_claims(tenant=OTHER_TENANT), "bad signature"),
    "scope widened": (_swapped_claims(scope="vaults:read tenant:admin"), "bad signature"),
    "another tenant's client under acme's claim": (_other_tenants_client, None),
    "five segments (JWE)": (lambda g: f"{g.token}.{b64url(b'x')}.{b64url(b'y')}", "not a compact JWS"),
    "oversized": (_swapped_claims(pad="A" * 9000), "too large"),
}


def rejection(world: ApiWorld, token: str) -> str | None:
    """Why a verifier holding the served JWKS refuses ``token`` (None: it verifies)."""
    keys = world.http.get("/.well-known/jwks.json").json()["keys"]
    verifier = TokenVerifier(keys, issuer=world.url, audience=world.api.settings.token_audience)
    try:
        verifier.verify(token, now=_now())
    except AuthenticationError as exc:
        cause = exc.__cause__
    else:
        return None
    assert isinstance(cause, TokenRejected)
    return cause.reason


@pytest.mark.parametrize("name", list(FORGERIES))
def test_a_forged_or_invalid_token_is_401_and_never_echoed(
    world: ApiWorld, signer: KmsTokenSigner, genuine: str, name: str
) -> None:
    header, claims, _ = parts(genuine)
    forge, reason = FORGERIES[name]
    forged = forge(Genuine(genuine, header, claims, signer, world))
    assert rejection(world, forged) == reason
    answer = world.http.get(PROTECTED, headers=bearer(forged))
    assert_unauthenticated(answer, forged.split(".")[1], forged.rsplit(".", 1)[-1] or forged)
    # Nor on a route that writes: the body is never acted on.
    sealed = world.http.post(
        f"/v1/vaults/{OTHER_VAULT}/memories", json={"text": "forged", "user_id": "u"}, headers=bearer(forged)
    )
    assert_unauthenticated(sealed)


def _without_ids(body: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k not in {"request_id", "details"}}


def test_another_tenants_token_sees_only_its_own_tenant(world: ApiWorld) -> None:
    globex = world.token("tenant-admin", OTHER_TENANT)
    assert vault_ids(world, globex) == [OTHER_VAULT]
    for path in (
        f"/v1/vaults/{SUPPORT_VAULT}",
        f"/v1/vaults/{SUPPORT_VAULT}/memories",
        f"/v1/clients/{world.client('writer').client_id}",
    ):
        hidden = assert_problem(world.http.get(path, headers=bearer(globex)), 404, "not_found")
        # Exactly as absent as something that does not exist in any tenant.
        absent_path = path.replace(SUPPORT_VAULT, "no-such-vault").replace(
            world.client("writer").client_id, UNKNOWN_CLIENT
        )
        absent = assert_problem(world.http.get(absent_path, headers=bearer(globex)), 404, "not_found")
        assert _without_ids(hidden) == _without_ids(absent)
    # And the other way round: acme's administrator does not reach globex's memory.
    acme = world.headers("tenant-admin")
    hidden_memory = world.http.get(f"/v1/vaults/{OTHER_VAULT}/memories/{OTHER_MEMORY}", headers=acme)
    assert_problem(hidden_memory, 404, "not_found", "globex only")
    assert OTHER_VAULT not in vault_ids(world, world.token("tenant-admin"))


def test_another_tenants_admin_cannot_revoke_a_client(world: ApiWorld) -> None:
    victim = world.new_client(TENANT, RoleBinding(Role.WRITER, SUPPORT_VAULT))
    token = access_token(world, victim)
    attempt = world.http.delete(
        f"/v1/clients/{victim.client_id}", headers=world.headers("tenant-admin", OTHER_TENANT)
    )
    assert_problem(attempt, 404, "not_found")
    assert vault_ids(world, token) == [SUPPORT_VAULT]


def test_a_revoked_clients_token_is_refused_at_once(world: ApiWorld) -> None:
    client = world.new_client(TENANT, RoleBinding(Role.WRITER, SUPPORT_VAULT))
    token = access_token(world, client)
    assert vault_ids(world, token) == [SUPPORT_VAULT]
    admin = world.headers("tenant-admin")

    revoked = world.http.delete(f"/v1/clients/{client.client_id}", headers=admin)
    assert revoked.status_code == 200, revoked.text
    assert revoked.json()["status"] == "revoked"
    assert_unauthenticated(world.http.get(PROTECTED, headers=bearer(token)), token)
    assert_oauth_error(token_for(world, client), 401, "invalid_client", client.secret)
    # Revoking again changes nothing; the client is listed as revoked.
    again = world.http.delete(f"/v1/clients/{client.client_id}", headers=admin)
    assert again.status_code == 200
    assert again.json()["status"] == "revoked"
    shown = world.http.get(f"/v1/clients/{client.client_id}", headers=admin)
    assert shown.json()["status"] == "revoked"
    assert client.secret not in shown.text


def test_a_client_cannot_revoke_without_tenant_admin(world: ApiWorld) -> None:
    client = world.new_client(TENANT, RoleBinding(Role.WRITER, SUPPORT_VAULT))
    attempt = world.http.delete(f"/v1/clients/{client.client_id}", headers=world.headers("writer"))
    assert_problem(attempt, 403, "forbidden")
    assert vault_ids(world, access_token(world, client)) == [SUPPORT_VAULT]


def _rotate(world: ApiWorld, client: ApiClient, *, revoke_tokens: bool) -> ApiClient:
    answer = world.http.post(
        f"/v1/clients/{client.client_id}/secret",
        json={"revoke_tokens": revoke_tokens},
        headers=world.headers("tenant-admin"),
    )
    assert answer.status_code == 200, answer.text
    assert answer.headers["cache-control"] == "no-store"
    body = answer.json()
    assert body["client_id"] == client.client_id
    assert body["client_secret"] != client.secret
    return ApiClient(client.tenant_id, client.client_id, body["client_secret"])


def test_rotating_a_secret_keeps_tokens_unless_told_to_revoke_them(world: ApiWorld) -> None:
    original = world.new_client(TENANT, RoleBinding(Role.WRITER, SUPPORT_VAULT))
    first_token = access_token(world, original)

    rotated = _rotate(world, original, revoke_tokens=False)
    assert_oauth_error(token_for(world, original), 401, "invalid_client", original.secret)
    assert vault_ids(world, first_token) == [SUPPORT_VAULT]  # runs out its lifetime
    second_token = access_token(world, rotated)

    final = _rotate(world, rotated, revoke_tokens=True)
    for token in (first_token, second_token):
        assert_unauthenticated(world.http.get(PROTECTED, headers=bearer(token)), token)
    assert_oauth_error(token_for(world, rotated), 401, "invalid_client", rotated.secret)
    # The new secret's token, issued in the same second as the rotation, is good.
    assert vault_ids(world, access_token(world, final)) == [SUPPORT_VAULT]
