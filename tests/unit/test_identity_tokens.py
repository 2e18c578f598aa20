"""Access tokens: what the issuer builds, and every token the hardened verifier must refuse.

Each refusal is checked for its reason (the ``TokenRejected`` cause of the one ``AuthenticationError``),
against a baseline built the same way that verifies: a negative test fails if the token is refused for
another reason than the one it is about.
"""

from __future__ import annotations

import ast
import hashlib
import hmac
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from joserfc.jwk import ECKey as JoserfcECKey

from reliquary.errors import AuthenticationError, ConfigurationError, InvalidScopeError
from reliquary.identity.jwk import b64url, b64url_decode, public_jwk, raw_signature, thumbprint
from reliquary.identity.memory import LocalTokenSigner
from reliquary.identity.tokens import (
    CLAIMS,
    MAX_TOKEN_BYTES,
    TokenIssuer,
    TokenRejected,
    TokenVerifier,
)

ROOT = Path(__file__).resolve().parents[2]
ISSUER = "https://reliquary.test"
AUDIENCE = "reliquary-api"
NOW = 1_800_000_000
CLIENT = "cl-0123456789abcdef01234567"
TTL = 900


@pytest.fixture(scope="module")
def signer() -> LocalTokenSigner:
    return LocalTokenSigner.generate()


@pytest.fixture(scope="module")
def verifier(signer: LocalTokenSigner) -> TokenVerifier:
    return TokenVerifier([signer.public_jwk()], issuer=ISSUER, audience=AUDIENCE)


def _segment(value: Any) -> str:
    return b64url(json.dumps(value, separators=(",", ":")).encode())


def claims(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": CLIENT,
        "client_id": CLIENT,
        "tenant": "acme",
        "scope": "memories:read/v1 vaults:read",
        "iat": NOW,
        "nbf": NOW,
        "exp": NOW + TTL,
        "jti": "0123456789abcdef0123456789abcdef",
    }
    base.update(changes)
    return base


def mint(
    signer: LocalTokenSigner,
    *,
    header: dict[str, Any] | None = None,
    body: dict[str, Any] | None = None,
    payload: str | None = None,
    sign: Callable[[bytes], bytes] | None = None,
) -> str:
    """A compact JWS with any header and claims, ES256-signed by ``signer`` unless ``sign`` is given."""
    head = _segment(header if header is not None else {"alg": "ES256", "typ": "at+jwt", "kid": signer.key_id})
    encoded = payload if payload is not None else _segment(body if body is not None else claims())
    signing_input = f"{head}.{encoded}".encode()
    return f"{head}.{encoded}.{b64url((sign or signer.sign)(signing_input))}"


def refused(verifier: TokenVerifier, token: object, *, now: int = NOW) -> str:
    with pytest.raises(AuthenticationError) as caught:
        verifier.verify(token, now=now)
    error = caught.value
    assert error.code == "unauthenticated"
    assert error.http_status == 401
    assert error.message == "a valid access token is required"
    assert error.details == {}
    assert isinstance(error.__cause__, TokenRejected)
    return error.__cause__.reason


# ----------------------------------------------------------------------------------------------- baseline


def test_an_issued_token_verifies(signer: LocalTokenSigner, verifier: TokenVerifier) -> None:
    issuer = TokenIssuer(signer, issuer=ISSUER, audience=AUDIENCE, ttl_seconds=TTL)
    token = issuer.issue(
        client_id=CLIENT, tenant_id="acme", scopes={"vaults:read", "audit:read"}, issued_at=NOW
    )
    verified = verifier.verify(token, now=NOW + 1)
    assert verified.client_id == CLIENT
    assert verified.tenant_id == "acme"
    assert verified.scopes == {"vaults:read", "audit:read"}
    assert (verified.issued_at, verified.expires_at) == (NOW, NOW + TTL)
    assert verified.key_id == signer.key_id
    assert len(verified.jti) == 32


def test_the_issued_token_is_exactly_the_contract(signer: LocalTokenSigner) -> None:
    issuer = TokenIssuer(signer, issuer=ISSUER, audience=AUDIENCE, ttl_seconds=TTL)
    token = issuer.issue(client_id=CLIENT, tenant_id="acme", scopes={"vaults:read"}, issued_at=NOW)
    head, body, signature = token.split(".")
    assert json.loads(b64url_decode(head)) == {"alg": "ES256", "typ": "at+jwt", "kid": signer.key_id}
    payload = json.loads(b64url_decode(body))
    assert set(payload) == CLAIMS
    assert payload["sub"] == payload["client_id"] == CLIENT
    assert payload["scope"] == "vaults:read"
    assert (payload["iat"], payload["nbf"], payload["exp"]) == (NOW, NOW, NOW + TTL)
    # Interoperable: any ES256 verifier holding the JWKS accepts it (here cryptography, without jose).
    jwk = signer.public_jwk()
    key = ec.EllipticCurvePublicNumbers(
        int.from_bytes(b64url_decode(jwk["x"]), "big"),
        int.from_bytes(b64url_decode(jwk["y"]), "big"),
        ec.SECP256R1(),
    ).public_key()
    raw = b64url_decode(signature)
    der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    key.verify(der, f"{head}.{body}".encode(), ec.ECDSA(hashes.SHA256()))


def test_jti_is_unique(signer: LocalTokenSigner, verifier: TokenVerifier) -> None:
    issuer = TokenIssuer(signer, issuer=ISSUER, audience=AUDIENCE, ttl_seconds=TTL)
    jtis = {
        verifier.verify(issuer.issue(client_id=CLIENT, tenant_id="a", scopes=(), issued_at=NOW), now=NOW).jti
        for _ in range(20)
    }
    assert len(jtis) == 20


def test_the_hand_built_baseline_verifies(signer: LocalTokenSigner, verifier: TokenVerifier) -> None:
    verified = verifier.verify(mint(signer), now=NOW)
    assert verified.scopes == {"memories:read/v1", "vaults:read"}


# ---------------------------------------------------------------------------------------- the regressions


@pytest.mark.parametrize("token", [None, "", b"x.y.z", 42, ["a", "b", "c"]])
def test_no_token(verifier: TokenVerifier, token: object) -> None:
    assert refused(verifier, token) == "no token"


def test_expired(signer: LocalTokenSigner, verifier: TokenVerifier) -> None:
    token = mint(signer)
    assert verifier.verify(token, now=NOW + TTL + 29).client_id == CLIENT  # inside the 30 s leeway
    assert refused(verifier, token, now=NOW + TTL + 30) == "expired"
    assert refused(verifier, token, now=NOW + 10 * TTL) == "expired"


def test_not_yet_valid(signer: LocalTokenSigner, verifier: TokenVerifier) -> None:
    later = NOW + 31
    token = mint(signer, body=claims(iat=later, nbf=later, exp=later + TTL))
    assert refused(verifier, token) == "not yet valid"
    assert verifier.verify(token, now=NOW + 1).issued_at == later  # inside the leeway


def test_wrong_audience(signer: LocalTokenSigner, verifier: TokenVerifier) -> None:
    assert refused(verifier, mint(signer, body=claims(aud="another-api"))) == "audience"
    # jose would accept a list holding the audience; an access token of ours has one audience, a string.
    assert refused(verifier, mint(signer, body=claims(aud=[AUDIENCE]))) == "malformed aud"


def test_wrong_issuer(signer: LocalTokenSigner, verifier: TokenVerifier) -> None:
    assert refused(verifier, mint(signer, body=claims(iss="https://evil.test"))) == "issuer"
    assert refused(verifier, mint(signer, body=claims(iss=ISSUER + "/"))) == "issuer"


def test_alg_none(signer: LocalTokenSigner, verifier: TokenVerifier) -> None:
    header = {"alg": "none", "typ": "at+jwt", "kid": signer.key_id}
    unsigned = f"{_segment(header)}.{_segment(claims())}."
    assert refused(verifier, unsigned) == "not base64url"
    assert refused(verifier, mint(signer, header=header)) == "algorithm"
    for alg in ("None", "NONE", "ES384", "RS256", "EdDSA", "", None):
        assert refused(verifier, mint(signer, header={**header, "alg": alg})) == "algorithm"


def _hs256(secret: bytes) -> Callable[[bytes], bytes]:
    return lambda signing_input: hmac.new(secret, signing_input, hashlib.sha256).digest()


def _public_key_bytes(signer: LocalTokenSigner) -> dict[str, bytes]:
    public = signer.public_key
    return {
        "pem": public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
        "der": public.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
    }


@pytest.mark.parametrize("encoding", ["pem", "der"])
def test_hs256_forged_with_the_public_key(
    signer: LocalTokenSigner, verifier: TokenVerifier, encoding: str
) -> None:
    """The key-confusion attack: the attacker signs HS256 with the (public) verification key as the HMAC
    secret, hoping the verifier feeds the same bytes to HMAC."""
    header = {"alg": "HS256", "typ": "at+jwt", "kid": signer.key_id}
    forged = mint(
        signer, header=header, body=claims(tenant="victim"), sign=_hs256(_public_key_bytes(signer)[encoding])
    )
    assert refused(verifier, forged) == "algorithm"


def test_the_der_forgery_is_real_against_jose_used_naively(signer: LocalTokenSigner) -> None:
    """Why the posture matters: python-jose 3.5.0 given the DER public key and no algorithm list accepts
    the forged token (it refuses PEM as an HMAC secret, not DER). The verifier above refuses both."""
    from jose import jws

    header = {"alg": "HS256", "typ": "at+jwt", "kid": signer.key_id}
    der = _public_key_bytes(signer)["der"]
    forged = mint(signer, header=header, body=claims(tenant="victim"), sign=_hs256(der))
    assert json.loads(jws.verify(forged, der, algorithms=None))["tenant"] == "victim"


def test_tampered_signature(signer: LocalTokenSigner, verifier: TokenVerifier) -> None:
    token = mint(signer)
    head, body, signature = token.split(".")
    raw = bytearray(b64url_decode(signature))
    for index in (0, 31, 32, 63):
        flipped = bytearray(raw)
        flipped[index] ^= 0x01
        assert refused(verifier, f"{head}.{body}.{b64url(bytes(flipped))}") == "bad signature"
    assert refused(verifier, f"{head}.{body}.{b64url(bytes(raw[:63]))}") == "malformed signature"
    assert refused(verifier, f"{head}.{body}.{b64url(bytes(raw) + b'0')}") == "malformed signature"
    assert refused(verifier, f"{head}.{body}.{b64url(bytes(64))}") == "bad signature"


def test_a_non_canonical_signature_encoding(signer: LocalTokenSigner, verifier: TokenVerifier) -> None:
    head, body, signature = mint(signer).split(".")
    # 64 bytes are 86 characters with 4 spare bits in the last: setting one is the same signature.
    last = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".index(signature[-1])
    variant = signature[:-1] + "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"[last ^ 1]
    assert refused(verifier, f"{head}.{body}.{variant}") == "malformed signature"


def test_tampered_payload(signer: LocalTokenSigner, verifier: TokenVerifier) -> None:
    head, _, signature = mint(signer).split(".")
    for change in ({"tenant": "victim"}, {"scope": "tenant:admin"}, {"exp": NOW + 10 * TTL}):
        assert refused(verifier, f"{head}.{_segment(claims(**change))}.{signature}") == "bad signature"


def test_tampered_header(signer: LocalTokenSigner, verifier: TokenVerifier) -> None:
    _, body, signature = mint(signer).split(".")
    header = _segment({"kid": signer.key_id, "typ": "at+jwt", "alg": "ES256"})  # same members, other bytes
    assert refused(verifier, f"{header}.{body}.{signature}") == "bad signature"


def test_oversize(signer: LocalTokenSigner, verifier: TokenVerifier) -> None:
    filler = {"scope": " ".join(f"vaults:read/v{i}" for i in range(600))}
    token = mint(signer, body=claims(**filler))
    assert len(token) > MAX_TOKEN_BYTES
    assert refused(verifier, token) == "too large"
    assert refused(verifier, "a" * (MAX_TOKEN_BYTES + 1)) == "too large"


def test_jwe(signer: LocalTokenSigner, verifier: TokenVerifier) -> None:
    header = _segment({"alg": "RSA-OAEP-256", "enc": "A256GCM", "kid": signer.key_id})
    jwe = ".".join([header, b64url(b"k" * 256), b64url(b"iv" * 6), b64url(b"ciphertext"), b64url(b"t" * 16)])
    assert refused(verifier, jwe) == "not a compact JWS"
    dir_jwe = ".".join(
        [_segment({"alg": "dir", "enc": "A256GCM"}), "", b64url(b"i" * 12), "Y2lwaGVy", "dGFn"]
    )
    assert refused(verifier, dir_jwe) == "not a compact JWS"


@pytest.mark.parametrize("token", ["a.b", "a.b.c.d", "....", "a..c", "a.b.c=", "a b.c.d", "é.b.c"])
def test_not_compact_jws(verifier: TokenVerifier, token: str) -> None:
    assert refused(verifier, token) in {"not a compact JWS", "not base64url"}


def test_unknown_kid(signer: LocalTokenSigner, verifier: TokenVerifier) -> None:
    other = LocalTokenSigner.generate()
    token = mint(other, header={"alg": "ES256", "typ": "at+jwt", "kid": other.key_id})
    assert refused(verifier, token) == "unknown key"
    # Another key under our kid: the signature does not verify under the key the kid names.
    assert refused(verifier, mint(other, header={"alg": "ES256", "typ": "at+jwt", "kid": signer.key_id})) == (
        "bad signature"
    )
    assert (
        refused(verifier, mint(signer, header={"alg": "ES256", "typ": "at+jwt", "kid": 7})) == "unknown key"
    )


@pytest.mark.parametrize(
    "header",
    [
        {"alg": "ES256", "typ": "at+jwt"},  # no kid
        {"alg": "ES256", "kid": "k"},  # no typ
        {"alg": "ES256", "typ": "at+jwt", "kid": "k", "jku": "https://evil.test/jwks"},
        {"alg": "ES256", "typ": "at+jwt", "kid": "k", "jwk": {"kty": "EC"}},
        {"alg": "ES256", "typ": "at+jwt", "kid": "k", "crit": ["exp"]},
        {"alg": "ES256", "typ": "at+jwt", "kid": "k", "b64": False},
    ],
)
def test_unexpected_headers(
    signer: LocalTokenSigner, verifier: TokenVerifier, header: dict[str, Any]
) -> None:
    header = {key: (signer.key_id if key == "kid" else value) for key, value in header.items()}
    assert refused(verifier, mint(signer, header=header)) == "unexpected header"


@pytest.mark.parametrize("typ", ["JWT", "AT+JWT", "application/jwt", "", None])
def test_wrong_type(signer: LocalTokenSigner, verifier: TokenVerifier, typ: object) -> None:
    assert (
        refused(verifier, mint(signer, header={"alg": "ES256", "typ": typ, "kid": signer.key_id})) == "type"
    )


@pytest.mark.parametrize("name", sorted(CLAIMS))
def test_missing_claims(signer: LocalTokenSigner, verifier: TokenVerifier, name: str) -> None:
    body = claims()
    del body[name]
    assert refused(verifier, mint(signer, body=body)) == "missing or unexpected claims"


def test_unexpected_claims(signer: LocalTokenSigner, verifier: TokenVerifier) -> None:
    assert refused(verifier, mint(signer, body=claims(admin=True))) == "missing or unexpected claims"


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"exp": str(NOW + TTL)}, "malformed exp"),
        ({"exp": float(NOW + TTL)}, "malformed exp"),
        ({"iat": True}, "malformed iat"),
        ({"nbf": -1}, "malformed nbf"),
        ({"exp": 2**41}, "malformed exp"),
        ({"sub": "cl-0123456789abcdef01234568"}, "malformed sub"),
        ({"sub": "admin", "client_id": "admin"}, "malformed sub"),
        ({"tenant": "a#b"}, "malformed tenant or scope"),
        ({"tenant": 7}, "malformed tenant"),
        ({"scope": "root"}, "malformed tenant or scope"),
        ({"scope": ["vaults:read"]}, "malformed scope"),
        ({"jti": "not-hex"}, "malformed jti"),
        ({"exp": NOW}, "lifetime"),
        ({"exp": NOW + 3601}, "lifetime"),
        ({"nbf": NOW - 1}, "lifetime"),
    ],
)
def test_malformed_claims(
    signer: LocalTokenSigner, verifier: TokenVerifier, change: dict[str, Any], reason: str
) -> None:
    assert refused(verifier, mint(signer, body=claims(**change))) == reason


def test_duplicate_members_are_refused(signer: LocalTokenSigner, verifier: TokenVerifier) -> None:
    text = json.dumps(claims(), separators=(",", ":"))[:-1] + ',"tenant":"victim"}'
    assert refused(verifier, mint(signer, payload=b64url(text.encode()))) == "malformed claims"
    header = '{"alg":"ES256","typ":"at+jwt","kid":"' + signer.key_id + '","alg":"ES256"}'
    token = mint(signer)
    _, body, signature = token.split(".")
    assert refused(verifier, f"{b64url(header.encode())}.{body}.{signature}") == "malformed header"


@pytest.mark.parametrize("payload", [b"[1,2]", b"\xff\xfe", b'{"exp": NaN}', b"", b"null"])
def test_claims_that_are_not_a_json_object(
    signer: LocalTokenSigner, verifier: TokenVerifier, payload: bytes
) -> None:
    assert refused(verifier, mint(signer, payload=b64url(payload) or "e30")) in {
        "malformed claims",
        "missing or unexpected claims",
    }


# -------------------------------------------------------------------------------------- keys and rotation


def test_rotation_overlap() -> None:
    old, new = LocalTokenSigner.generate(), LocalTokenSigner.generate()
    old_token = TokenIssuer(old, issuer=ISSUER, audience=AUDIENCE, ttl_seconds=TTL).issue(
        client_id=CLIENT, tenant_id="acme", scopes=(), issued_at=NOW
    )
    during = TokenVerifier([new.public_jwk(), old.public_jwk()], issuer=ISSUER, audience=AUDIENCE)
    assert during.verify(old_token, now=NOW).key_id == old.key_id
    assert [key["kid"] for key in during.jwks()["keys"]] == [new.key_id, old.key_id]
    after = TokenVerifier([new.public_jwk()], issuer=ISSUER, audience=AUDIENCE)
    assert refused(after, old_token) == "unknown key"


def test_the_kid_is_the_rfc_7638_thumbprint(signer: LocalTokenSigner) -> None:
    jwk = signer.public_jwk()
    independent = JoserfcECKey.import_key({name: jwk[name] for name in ("kty", "crv", "x", "y")})
    assert signer.key_id == jwk["kid"] == thumbprint(jwk) == independent.thumbprint()
    assert jwk == {**jwk, "kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256"}


def _jwk_variants(jwk: dict[str, str]) -> dict[str, Any]:
    private = ec.generate_private_key(ec.SECP256R1())
    d = b64url(private.private_numbers().private_value.to_bytes(32, "big"))
    y = int.from_bytes(b64url_decode(jwk["y"]), "big")
    off_curve = {**jwk, "y": b64url(((y + 1) % 2**256).to_bytes(32, "big"))}
    del off_curve["kid"]
    return {
        "private": {**public_jwk(private.public_key()), "d": d},
        "oct": {"kty": "oct", "k": b64url(b"secret")},
        "rsa": {"kty": "RSA", "n": "AQAB", "e": "AQAB"},
        "p384": {**jwk, "crv": "P-384"},
        "wrong kid": {**jwk, "kid": "someone-else"},
        "off the curve": off_curve,
        "short x": {**jwk, "x": jwk["x"][:-2]},
        "padded x": {**jwk, "x": jwk["x"] + "="},
        "for encryption": {**jwk, "use": "enc"},
        "for HS256": {**jwk, "alg": "HS256"},
        "a certificate chain": {**jwk, "x5c": ["MIIB"]},
        "PEM text": "-----BEGIN PUBLIC KEY-----",
        "DER bytes": b"0Y0\x13\x06\x07*",
    }


VARIANTS = sorted(_jwk_variants(LocalTokenSigner.generate().public_jwk()))


@pytest.mark.parametrize("variant", VARIANTS)
def test_verification_keys_must_be_p256_public_jwks(signer: LocalTokenSigner, variant: str) -> None:
    with pytest.raises(ConfigurationError, match="not a P-256 public JWK"):
        TokenVerifier([_jwk_variants(signer.public_jwk())[variant]], issuer=ISSUER, audience=AUDIENCE)


def test_a_verifier_needs_a_key_and_accepts_a_bare_jwk(signer: LocalTokenSigner) -> None:
    with pytest.raises(ConfigurationError, match="no token verification key"):
        TokenVerifier([], issuer=ISSUER, audience=AUDIENCE)
    bare = {k: v for k, v in signer.public_jwk().items() if k not in {"kid", "use", "alg"}}
    assert TokenVerifier([bare], issuer=ISSUER, audience=AUDIENCE).key_ids == {signer.key_id}


def test_raw_signatures() -> None:
    assert raw_signature(encode_dss_signature(1, 2)) == (1).to_bytes(32, "big") + (2).to_bytes(32, "big")
    order = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
    for r, s in ((0, 1), (1, 0), (order, 1), (1, order)):
        with pytest.raises(ValueError, match="not a P-256"):
            raw_signature(encode_dss_signature(r, s))


# --------------------------------------------------------------------------------------------- the issuer


def test_scopes_too_many_for_a_token_are_refused_before_signing(signer: LocalTokenSigner) -> None:
    signed: list[bytes] = []

    class Recording:
        key_id = signer.key_id

        def public_jwk(self) -> dict[str, str]:
            return signer.public_jwk()

        def sign(self, signing_input: bytes) -> bytes:
            signed.append(signing_input)
            return signer.sign(signing_input)

    issuer = TokenIssuer(Recording(), issuer=ISSUER, audience=AUDIENCE, ttl_seconds=TTL)
    scopes = {f"memories:write/vault-{i:03d}-{'x' * 100}" for i in range(60)}
    with pytest.raises(InvalidScopeError) as caught:
        issuer.issue(client_id=CLIENT, tenant_id="acme", scopes=scopes, issued_at=NOW)
    assert caught.value.code == "invalid_scope"
    assert signed == []


def test_issuer_lifetimes() -> None:
    signer = LocalTokenSigner.generate()
    for ttl in (0, 3601):
        with pytest.raises(ConfigurationError):
            TokenIssuer(signer, issuer=ISSUER, audience=AUDIENCE, ttl_seconds=ttl)


# ------------------------------------------------------------------------------------ the one jose module


def test_only_the_tokens_module_imports_jose() -> None:
    importers = set()
    for folder in (ROOT / "layers" / "core", ROOT / "functions"):
        for path in folder.rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                names = (
                    [alias.name for alias in node.names]
                    if isinstance(node, ast.Import)
                    else [node.module or ""]
                    if isinstance(node, ast.ImportFrom)
                    else []
                )
                if any(name == "jose" or name.startswith("jose.") for name in names):
                    importers.add(path.relative_to(ROOT).as_posix())
    assert importers == {"layers/core/reliquary/identity/tokens.py"}
