"""did:key (Ed25519, P-256, ML-DSA-65) and did:web: the published did:key test vectors, strict parsing
(every failure a typed InvalidDidError naming its check), documents, signing, and did:web resolution
through an injected fetcher (HTTPS only, no redirects, a size cap, JSON, the document's id)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from reliquary.errors import DidResolutionError, InvalidDidError, InvalidSignatureError
from reliquary.identity.did import (
    MAX_DID_DOCUMENT_BYTES,
    DidKey,
    DidKeySigner,
    KeyType,
    b58decode,
    b58encode,
    decode_varint,
    did_web_url,
    encode_varint,
    resolve,
    resolve_did_web,
    verification_methods,
)
from reliquary.identity.jwk import b64url_decode

VECTORS = json.loads((Path(__file__).parents[1] / "vectors" / "did_key_vectors.json").read_text("utf-8"))


# ------------------------------------------------------------------------------------ the published vectors
@pytest.mark.parametrize("vector", VECTORS["ed25519"], ids=lambda v: v["seed"][-2:])
def test_the_ed25519_vectors_round_trip(vector: dict[str, str]) -> None:
    key = DidKey.parse(vector["did"])
    assert key.key_type is KeyType.ED25519
    assert key.public_key == b58decode(vector["publicKeyBase58"])
    assert key.did == vector["did"]
    assert DidKeySigner.from_ed25519_seed(bytes.fromhex(vector["seed"])).did == vector["did"]
    fragment = vector["did"].removeprefix("did:key:")
    document = key.document()
    assert document["id"] == vector["did"]
    assert document["verificationMethod"] == [
        {
            "id": f"{vector['did']}#{fragment}",
            "type": "Multikey",
            "controller": vector["did"],
            "publicKeyMultibase": fragment,
        }
    ]
    assert document["authentication"] == document["assertionMethod"] == [f"{vector['did']}#{fragment}"]


@pytest.mark.parametrize("vector", VECTORS["p256"], ids=lambda v: v["did"][-6:])
def test_the_p256_vectors_round_trip(vector: dict[str, str]) -> None:
    key = DidKey.parse(vector["did"])
    assert key.key_type is KeyType.P256
    point = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), key.public_key).public_numbers()
    assert point.x.to_bytes(32, "big") == b64url_decode(vector["x"])
    assert point.y.to_bytes(32, "big") == b64url_decode(vector["y"])
    assert key.did == vector["did"]
    assert key.document()["verificationMethod"][0]["publicKeyMultibase"] == vector["did"][8:]


def test_the_multicodec_prefixes_are_the_registered_ones() -> None:
    # multiformats/multicodec table.csv: ed25519-pub 0xed, p256-pub 0x1200, mldsa-65-pub 0x1211.
    assert (encode_varint(0xED), encode_varint(0x1200), encode_varint(0x1211)) == (
        b"\xed\x01",
        b"\x80\x24",
        b"\x91\x24",
    )
    assert DidKey.parse(VECTORS["ed25519"][0]["did"]).did.startswith("did:key:z6Mk")
    assert DidKey.parse(VECTORS["p256"][0]["did"]).did.startswith("did:key:zDn")


# ------------------------------------------------------------------------------------ keys and signatures
@pytest.mark.parametrize("key_type", list(KeyType))
def test_a_generated_key_signs_and_its_did_verifies(key_type: KeyType) -> None:
    signer = DidKeySigner.generate(key_type)
    key = DidKey.parse(signer.did)
    assert key == signer.did_key
    signature = signer.sign(b"message")
    assert len(signature) == key_type.signature_length
    key.verify(b"message", signature)
    with pytest.raises(InvalidSignatureError):
        key.verify(b"messagE", signature)
    with pytest.raises(InvalidSignatureError):
        key.verify(b"message", bytes([signature[0] ^ 1]) + signature[1:])
    with pytest.raises(InvalidSignatureError):
        key.verify(b"message", signature[:-1])
    with pytest.raises(InvalidSignatureError):
        DidKeySigner.generate(key_type).did_key.verify(b"message", signature)
    # The secret comes back only through secret_bytes(), and loads as the same key.
    again = DidKeySigner.load(signer.did, signer.secret_bytes())
    key.verify(b"again", again.sign(b"again"))


@pytest.mark.parametrize("key_type", list(KeyType))
def test_a_secret_of_another_key_does_not_load(key_type: KeyType) -> None:
    signer, other = DidKeySigner.generate(key_type), DidKeySigner.generate(key_type)
    with pytest.raises(InvalidDidError) as refused:
        DidKeySigner.load(signer.did, other.secret_bytes())
    assert refused.value.check == "secret"


def test_a_p256_signature_out_of_range_is_refused() -> None:
    signer = DidKeySigner.generate(KeyType.P256)
    order = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
    signature = signer.sign(b"m")
    s = int.from_bytes(signature[32:], "big")
    with pytest.raises(InvalidSignatureError):  # s + n: the same number modulo n, not a valid encoding
        signer.did_key.verify(b"m", signature[:32] + (s + order).to_bytes(33, "big")[1:])
    with pytest.raises(InvalidSignatureError):
        signer.did_key.verify(b"m", bytes(64))


# ------------------------------------------------------------------------------------ strict parsing
ED = VECTORS["ed25519"][0]["did"]
P256 = VECTORS["p256"][0]["did"]


def _multibase(prefix: bytes, key: bytes) -> str:
    return "did:key:z" + b58encode(prefix + key)


def _p256_point(did: str) -> bytes:
    return DidKey.parse(did).public_key


BAD_DIDS: dict[str, tuple[object, str]] = {
    "not a string": (42, "prefix"),
    "did:web": ("did:web:example.com", "prefix"),
    "upper-case method": ("DID:KEY:" + ED[8:], "prefix"),
    "no multibase z": ("did:key:" + ED[9:], "prefix"),
    "base64 multibase": ("did:key:m" + ED[9:], "prefix"),
    "a fragment": (ED + "#" + ED[8:], "base58"),
    "0 in base58": (ED[:-1] + "0", "base58"),
    "l in base58": (ED[:-1] + "l", "base58"),
    "empty": ("did:key:z", "base58"),
    "too long": ("did:key:z" + "2" * 5000, "prefix"),
    "unknown multicodec (secp256k1-pub)": (_multibase(b"\xe7\x01", bytes(33)), "multicodec"),
    "unknown multicodec (mldsa-44-pub)": (_multibase(b"\x90\x24", bytes(1312)), "multicodec"),
    "non-minimal varint": (_multibase(b"\xed\x81\x00", bytes(32)), "varint"),
    "unterminated varint": (_multibase(b"\xed", b""), "varint"),
    "Ed25519 of 31 bytes": (_multibase(b"\xed\x01", bytes(31)), "length"),
    "Ed25519 of 33 bytes": (_multibase(b"\xed\x01", bytes(33)), "length"),
    "P-256 uncompressed": (_multibase(b"\x80\x24", b"\x04" + bytes(64)), "length"),
    "P-256 bad prefix byte": (_multibase(b"\x80\x24", b"\x04" + _p256_point(P256)[1:]), "point"),
    "P-256 off the curve": (_multibase(b"\x80\x24", b"\x02" + b"\xff" * 32), "point"),
    "ML-DSA-65 of 1951 bytes": (_multibase(b"\x91\x24", bytes(1951)), "length"),
}


@pytest.mark.parametrize("did", BAD_DIDS.values(), ids=list(BAD_DIDS))
def test_a_malformed_did_key_is_a_typed_error_naming_the_check(did: tuple[object, str]) -> None:
    value, check = did
    with pytest.raises(InvalidDidError) as refused:
        DidKey.parse(value)
    assert refused.value.check == check
    assert refused.value.code == "invalid_did"
    if isinstance(value, str) and len(value) > 12:
        assert value[9:] not in refused.value.message  # never echoes the DID


def test_varints_are_minimal_and_bounded() -> None:
    for value in (0, 1, 0x7F, 0x80, 0xED, 0x1200, 0x1211, 2**63 - 1):
        assert decode_varint(encode_varint(value) + b"rest") == (value, len(encode_varint(value)))
    with pytest.raises(InvalidDidError):
        decode_varint(b"\x80" * 9 + b"\x01")  # ten bytes
    with pytest.raises(InvalidDidError):
        decode_varint(b"\x80\x00")


def test_base58_keeps_leading_zeros_and_refuses_other_characters() -> None:
    assert b58encode(b"\x00\x00\x01") == "112"
    assert b58decode("112") == b"\x00\x00\x01"
    for bad in ("", "0", "O", "I", "l", "+", " 2"):
        with pytest.raises(InvalidDidError):
            b58decode(bad)


# ------------------------------------------------------------------------------------ did:web
@pytest.mark.parametrize(
    ("did", "url"),
    [
        ("did:web:example.com", "https://example.com/.well-known/did.json"),
        ("did:web:w3c-ccg.github.io:user:alice", "https://w3c-ccg.github.io/user/alice/did.json"),
        ("did:web:example.com%3A3000", "https://example.com:3000/.well-known/did.json"),
        ("did:web:localhost%3a3000:v1", "https://localhost:3000/v1/did.json"),
        ("did:web:Example.COM", "https://example.com/.well-known/did.json"),
    ],
)
def test_a_did_web_names_an_https_url(did: str, url: str) -> None:
    assert did_web_url(did) == url


@pytest.mark.parametrize(
    ("did", "check"),
    [
        ("did:key:z6Mk", "prefix"),
        ("did:web:", "host"),
        ("did:web:127.0.0.1", "host"),
        ("did:web:[::1]", "host"),
        ("did:web:example.com%3A0", "host"),
        ("did:web:example.com%3A70000", "host"),
        ("did:web:example.com%3Ahttp", "host"),
        ("did:web:exa_mple.com", "host"),
        ("did:web:example.com%2Fevil", "host"),
        ("did:web:user@example.com", "host"),
        ("did:web:example.com:..", "path"),
        ("did:web:example.com:a%2Fb", "path"),
        ("did:web:example.com::x", "path"),
        ("did:web:example.com:a?b", "path"),
    ],
)
def test_a_malformed_did_web_is_refused(did: str, check: str) -> None:
    with pytest.raises(InvalidDidError) as refused:
        did_web_url(did)
    assert refused.value.check == check


WEB_DID = "did:web:example.com%3A8443:tenants:acme"
WEB_KEY = DidKeySigner.from_ed25519_seed(bytes(32)).did_key


def _document(did: str = WEB_DID) -> dict[str, Any]:
    return {
        "@context": ["https://www.w3.org/ns/did/v1"],
        "id": did,
        "verificationMethod": [WEB_KEY.verification_method(did, "#key-1")],
        "assertionMethod": ["#key-1"],
    }


class Fetcher:
    """One canned answer; records the URLs asked for."""

    def __init__(
        self, status: int = 200, headers: Mapping[str, str] | None = None, body: bytes = b""
    ) -> None:
        self.answer = (
            status,
            headers if headers is not None else {"Content-Type": "application/did+json"},
            body,
        )
        self.urls: list[str] = []

    def fetch(self, url: str) -> tuple[int, Mapping[str, str], bytes]:
        self.urls.append(url)
        return self.answer


def test_a_did_web_resolves_through_the_fetcher() -> None:
    fetcher = Fetcher(body=json.dumps(_document()).encode())
    document = resolve_did_web(WEB_DID, fetcher)
    assert fetcher.urls == ["https://example.com:8443/tenants/acme/did.json"]
    assert document == _document()
    method = verification_methods(document)[WEB_DID + "#key-1"]
    assert DidKey.from_multibase(method["publicKeyMultibase"]) == WEB_KEY
    assert resolve(WEB_DID, fetcher) == document
    assert resolve(ED) == DidKey.parse(ED).document()
    with pytest.raises(DidResolutionError):
        resolve(WEB_DID)  # a did:web needs a fetcher


ANSWERS: dict[str, tuple[Fetcher, str]] = {
    "a redirect": (Fetcher(302, {"Location": "https://evil.example/did.json"}), "redirect"),
    "a 304": (Fetcher(304, {}), "redirect"),
    "not found": (Fetcher(404), "status"),
    "a 204": (Fetcher(204), "status"),
    "html": (
        Fetcher(headers={"Content-Type": "text/html"}, body=json.dumps(_document()).encode()),
        "content_type",
    ),
    "no type": (Fetcher(headers={}, body=json.dumps(_document()).encode()), "content_type"),
    "too large": (
        Fetcher(body=json.dumps({**_document(), "pad": "x" * MAX_DID_DOCUMENT_BYTES}).encode()),
        "size",
    ),
    "declared too large": (
        Fetcher(
            headers={"content-type": "application/json", "Content-Length": str(MAX_DID_DOCUMENT_BYTES + 1)},
            body=json.dumps(_document()).encode(),
        ),
        "size",
    ),
    "not json": (Fetcher(body=b"<html>"), "json"),
    "not utf-8": (Fetcher(body=b'{"id": "\xff"}'), "json"),
    "a list": (Fetcher(body=b"[]"), "json"),
    "duplicate members": (Fetcher(body=f'{{"id": "{WEB_DID}", "id": "{WEB_DID}"}}'.encode()), "json"),
    "another id": (Fetcher(body=json.dumps(_document("did:web:evil.example")).encode()), "id"),
    "no id": (Fetcher(body=b"{}"), "id"),
    "a foreign method": (
        Fetcher(
            body=json.dumps(
                {**_document(), "verificationMethod": [WEB_KEY.verification_method("x", "did:web:evil#k")]}
            ).encode()
        ),
        "document",
    ),
    "a malformed method": (
        Fetcher(body=json.dumps({**_document(), "verificationMethod": [1]}).encode()),
        "document",
    ),
}


@pytest.mark.parametrize("answer", ANSWERS.values(), ids=list(ANSWERS))
def test_a_bad_did_web_answer_is_a_typed_error(answer: tuple[Fetcher, str]) -> None:
    fetcher, check = answer
    with pytest.raises(DidResolutionError) as refused:
        resolve_did_web(WEB_DID, fetcher)
    assert refused.value.check == check
    assert refused.value.code == "did_resolution"
    assert fetcher.urls == ["https://example.com:8443/tenants/acme/did.json"]  # one fetch, never a 2nd
