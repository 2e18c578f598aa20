"""Compact JWS with a did:key: EdDSA, ES256 (raw r || s) and ML-DSA-65 sign and verify; the algorithm is
the key's (the header cannot choose another, `none` included), the header is an allow-list, and size,
segments, base64url and JSON are strict. Every refusal is an InvalidJwsError naming its check."""

from __future__ import annotations

import base64
import json

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from reliquary.errors import InvalidJwsError
from reliquary.identity.did import DidKey, DidKeySigner, KeyType
from reliquary.identity.jwk import b64url, b64url_decode, raw_signature
from reliquary.identity.jws import MAX_JWS_BYTES, sign_compact, sign_json, verify_compact

SIGNERS = {key_type: DidKeySigner.generate(key_type) for key_type in KeyType}
ALG = {KeyType.ED25519: "EdDSA", KeyType.P256: "ES256", KeyType.ML_DSA_65: "ML-DSA-65"}


def _forged(
    signer: DidKeySigner, header: object, payload: bytes = b'{"a":1}', raw_header: bytes | None = None
) -> str:
    """A JWS with any header, correctly signed by ``signer``: what an attacker holding the key could send."""
    encoded = b64url(raw_header if raw_header is not None else json.dumps(header).encode())
    signing_input = f"{encoded}.{b64url(payload)}"
    return f"{signing_input}.{b64url(signer.sign(signing_input.encode()))}"


def _refused(token: object, key: DidKey) -> str:
    with pytest.raises(InvalidJwsError) as refused:
        verify_compact(token, key)
    assert refused.value.code == "invalid_jws"
    return refused.value.check


@pytest.mark.parametrize("key_type", list(KeyType))
def test_a_jws_signed_with_a_did_key_verifies(key_type: KeyType) -> None:
    signer = SIGNERS[key_type]
    token = sign_compact(signer, b"payload \x00 bytes", typ="JWT", kid=signer.did_key.key_id)
    verified = verify_compact(token, DidKey.parse(signer.did))
    assert verified.payload == b"payload \x00 bytes"
    assert verified.header == {"alg": ALG[key_type], "typ": "JWT", "kid": signer.did_key.key_id}
    assert len(b64url_decode(token.split(".")[2])) == key_type.signature_length
    assert len(token) <= MAX_JWS_BYTES


def test_es256_is_interoperable_with_the_jose_form() -> None:
    """ES256 is ECDSA P-256 SHA-256 over the signing input as 64 bytes r || s (RFC 7518 3.4): a signature
    made with cryptography directly verifies, and ours verifies with cryptography."""
    private = ec.generate_private_key(ec.SECP256R1())
    point = private.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.CompressedPoint
    )
    key = DidKey(KeyType.P256, point)
    header = b64url(json.dumps({"alg": "ES256"}).encode())
    signing_input = f"{header}.{b64url(b'hello')}"
    signature = raw_signature(private.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256())))
    assert verify_compact(f"{signing_input}.{b64url(signature)}", key).payload == b"hello"


@pytest.mark.parametrize("key_type", list(KeyType))
@pytest.mark.parametrize(
    "header",
    [
        {"alg": "none"},
        {"alg": "HS256"},
        {"alg": "RS256"},
        {"alg": "ES384"},
        {"alg": "ML-DSA-44"},
        {"alg": "EDDSA"},
    ],
    ids=lambda h: h["alg"],
)
def test_an_algorithm_other_than_the_keys_is_refused(key_type: KeyType, header: dict[str, str]) -> None:
    signer = SIGNERS[key_type]
    assert _refused(_forged(signer, header), signer.did_key) == "algorithm"


def test_the_algorithm_of_another_key_type_is_refused_even_when_it_verifies_elsewhere() -> None:
    ed = SIGNERS[KeyType.ED25519]
    token = sign_json(ed, {"a": 1})
    for key_type in (KeyType.P256, KeyType.ML_DSA_65):
        assert _refused(token, SIGNERS[key_type].did_key) == "algorithm"


@pytest.mark.parametrize("member", ["jku", "jwk", "x5u", "x5c", "crit", "b64", "cty", "zip", "enc"])
def test_a_header_member_outside_the_allow_list_is_refused(member: str) -> None:
    signer = SIGNERS[KeyType.ED25519]
    assert _refused(_forged(signer, {"alg": "EdDSA", member: "x"}), signer.did_key) == "header"


@pytest.mark.parametrize(
    "raw",
    [
        b"[]",
        b'"EdDSA"',
        b'{"alg": "EdDSA", "alg": "EdDSA"}',
        b"\xff",
        b'{"alg": 1}',
        b'{"typ": "JWT"}',
        b'{"alg": ""}',
    ],
    ids=["list", "string", "duplicate alg", "not utf-8", "alg not a string", "no alg", "empty alg"],
)
def test_a_malformed_header_is_refused(raw: bytes) -> None:
    signer = SIGNERS[KeyType.ED25519]
    assert _refused(_forged(signer, None, raw_header=raw), signer.did_key) == "header"


def test_tampering_and_malformed_tokens_are_refused() -> None:
    signer = SIGNERS[KeyType.ED25519]
    key = signer.did_key
    token = sign_json(signer, {"iss": "a"})
    header, payload, signature = token.split(".")
    other_payload = b64url(json.dumps({"iss": "b"}).encode())
    assert _refused(f"{header}.{other_payload}.{signature}", key) == "signature"
    assert _refused(sign_json(DidKeySigner.generate(KeyType.ED25519), {"iss": "a"}), key) == "signature"
    assert _refused(f"{header}.{payload}.{b64url(b64url_decode(signature)[:-1])}", key) == "signature"
    assert _refused(f"{header}.{payload}", key) == "format"
    assert _refused(f"{header}.{payload}.{signature}.x.y", key) == "format"  # a JWE's five segments
    assert _refused(f"{header}.{payload}.", key) == "format"
    assert _refused(f"{header}.{payload}.{signature}=", key) == "format"
    assert _refused(f"{header} .{payload}.{signature}", key) == "format"
    padded = base64.urlsafe_b64encode(b64url_decode(signature)).decode()
    assert _refused(f"{header}.{payload}.{padded}", key) == "format"
    # Non-canonical: the last character's unused low bits set (64 bytes leave 4 unused bits).
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    twin = signature[:-1] + alphabet[alphabet.index(signature[-1]) ^ 1]
    assert _refused(f"{header}.{payload}.{twin}", key) == "signature"
    assert _refused(
        f"{header[:-1]}{alphabet[alphabet.index(header[-1]) ^ 1]}.{payload}.{signature}", key
    ) in {
        "header",
        "signature",
    }
    assert _refused("x" * (MAX_JWS_BYTES + 1), key) == "size"
    assert _refused(42, key) == "size"
    assert _refused(b"a.b.c", key) == "size"
