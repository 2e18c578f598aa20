"""The service's did:web document: checkpoint keys (Ed25519 and ML-DSA-65 as Multikeys, Falcon-512 as a
ReliquaryFalcon512Key), stage keys and token keys under stable fragment ids, read back into the verifiers'
keys; a key that is not the one its id names, or a method of an unknown type, refuses the document. And
the default service DID, from the token issuer."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from reliquary.audit.note import NoteVerifier
from reliquary.config import Settings, did_for_issuer
from reliquary.crypto.signing import SignatureAlgorithm, SigningKey
from reliquary.errors import DidResolutionError
from reliquary.flow.attestation import Signer, StageKeys
from reliquary.identity.did import DidKey, b58encode
from reliquary.identity.memory import LocalTokenSigner
from reliquary.identity.service_did import FALCON_512_KEY, published_keys, service_document

DID = "did:web:reliquary.example"
NAME = "reliquary.example/audit"
CHECKPOINT = tuple(
    NoteVerifier(NAME, SigningKey.generate(algorithm).verifying_key)
    for algorithm in (SignatureAlgorithm.ED25519, SignatureAlgorithm.ML_DSA_65, SignatureAlgorithm.FALCON_512)
)
STAGE = StageKeys(
    {
        Signer.VERIFY_PROOF: [SigningKey.generate(SignatureAlgorithm.ML_DSA_65).verifying_key],
        Signer.SCORE_TRUST: [SigningKey.generate(SignatureAlgorithm.ML_DSA_65).verifying_key],
        Signer.AGENT_VOTE: [
            SigningKey.generate(SignatureAlgorithm.ML_DSA_65).verifying_key,
            SigningKey.generate(SignatureAlgorithm.FALCON_512).verifying_key,
        ],
    }
)
TOKENS = (LocalTokenSigner.generate().public_jwk(), LocalTokenSigner.generate().public_jwk())


def _document() -> dict[str, Any]:
    return service_document(
        DID,
        log_endpoint="https://reliquary.example/v1/audit",
        checkpoint_keys=CHECKPOINT,
        stage_keys=STAGE.to_json(),
        token_keys=TOKENS,
    )


def test_the_document_names_every_key_and_reads_back() -> None:
    document = _document()
    assert document["id"] == DID
    methods = {m["id"].removeprefix(DID): m for m in document["verificationMethod"]}
    ed, ml, falcon = CHECKPOINT
    assert methods[f"#checkpoint-ed25519-{ed.key_id.hex()}"]["type"] == "Multikey"
    assert methods[f"#checkpoint-ed25519-{ed.key_id.hex()}"]["publicKeyMultibase"].startswith("z6Mk")
    ml_method = methods[f"#checkpoint-ml-dsa-65-{ml.key_id.hex()}"]
    assert DidKey.from_multibase(ml_method["publicKeyMultibase"]).public_key == ml.key.public_key
    falcon_method = methods[f"#checkpoint-falcon-512-{falcon.key_id.hex()}"]
    assert falcon_method["type"] == FALCON_512_KEY
    assert falcon_method["publicKeyMultibase"] == "z" + b58encode(falcon.key.public_key)
    for jwk in TOKENS:
        token = methods[f"#token-{jwk['kid']}"]
        assert token["type"] == "JsonWebKey2020"
        assert token["publicKeyJwk"] == {name: jwk[name] for name in ("kty", "crv", "x", "y")}
    assert len(methods) == 3 + 4 + 2
    assert document["assertionMethod"] == [m["id"] for m in document["verificationMethod"]]
    assert document["service"][0]["checkpointKeyName"] == NAME
    assert _document() == document  # stable

    keys = published_keys(document, DID)
    assert keys.checkpoint_verifiers == CHECKPOINT
    assert sorted(keys.stage_keys.to_json(), key=str) == sorted(STAGE.to_json(), key=str)
    assert keys.token_keys == TOKENS


def _tampered(change: str) -> dict[str, Any]:
    document = copy.deepcopy(_document())
    methods = document["verificationMethod"]
    first, ml, falcon = methods[0], methods[1], methods[2]
    stage = next(m for m in methods if "#stage-" in m["id"])
    token = next(m for m in methods if "#token-" in m["id"])
    if change == "checkpoint key swapped":
        first["publicKeyMultibase"] = DidKey.from_multibase(ml["publicKeyMultibase"]).multibase
    elif change == "stage key swapped":
        stage["publicKeyMultibase"] = ml["publicKeyMultibase"]
    elif change == "falcon as a multikey":
        falcon["type"] = "Multikey"
    elif change == "an unknown type":
        stage["type"] = "EcdsaSecp256k1VerificationKey2019"
    elif change == "a P-256 multikey":
        stage["publicKeyMultibase"] = "zDnaerx9CtbPJ1q36T5Ln5wYt3MQYeGRG5ehnPAmxcf5mDZpv"
    elif change == "token key swapped":
        token["publicKeyJwk"] = (
            methods[-1]["publicKeyJwk"] if token is not methods[-1] else methods[-2]["publicKeyJwk"]
        )
    elif change == "an unknown signer":
        stage["id"] = stage["id"].replace("#stage-", "#stage-encrypt-x")
    elif change == "no key name":
        del document["service"][0]["checkpointKeyName"]
    elif change == "a foreign method":
        first["id"] = "did:web:evil.example" + first["id"].removeprefix(DID)
    elif change == "another id":
        document["id"] = "did:web:evil.example"
    return document


@pytest.mark.parametrize(
    "change",
    [
        "checkpoint key swapped",
        "stage key swapped",
        "falcon as a multikey",
        "an unknown type",
        "a P-256 multikey",
        "token key swapped",
        "an unknown signer",
        "no key name",
        "a foreign method",
        "another id",
    ],
)
def test_a_tampered_document_is_refused(change: str) -> None:
    with pytest.raises(DidResolutionError):
        published_keys(_tampered(change), DID)


@pytest.mark.parametrize(
    ("issuer", "did"),
    [
        ("https://reliquary.local", "did:web:reliquary.local"),
        ("http://127.0.0.1:3000", "did:web:localhost%3A3000"),
        ("http://[::1]:3000", "did:web:localhost%3A3000"),
        ("https://api.example.com:8443/dev", "did:web:api.example.com%3A8443"),
        ("https://Reliquary.123456789012.us-east-1/prod", "did:web:reliquary.123456789012.us-east-1"),
    ],
)
def test_the_service_did_defaults_to_the_issuers_host(issuer: str, did: str) -> None:
    assert did_for_issuer(issuer) == did
    assert Settings(token_issuer=issuer).service_did == did
    assert (
        Settings(token_issuer=issuer, service_did="did:web:other.example").service_did
        == "did:web:other.example"
    )


@pytest.mark.parametrize(
    "issuer", ["https://10.0.0.1", "https://[fe80::1]", "reliquary", "https://a_b.example"]
)
def test_an_issuer_that_names_no_did_web_host_needs_the_setting(issuer: str) -> None:
    with pytest.raises(ValueError, match="RELIQUARY_SERVICE_DID"):
        did_for_issuer(issuer)
    assert (
        Settings(token_issuer=issuer, service_did="did:web:vault.example").service_did
        == "did:web:vault.example"
    )
