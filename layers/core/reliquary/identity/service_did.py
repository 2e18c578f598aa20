"""The service's own ``did:web`` document (``GET /.well-known/did.json``): every public key an outsider needs
to check what the service signs, from one well-known place, and the reader that turns it back into keys.

Verification methods, each with a fragment id that stays the same while the key does:

- ``#checkpoint-<algorithm>-<note key id>``: a checkpoint key (Ed25519, ML-DSA-65 and Falcon-512);
- ``#stage-<function>-<key id>``: a flow function's stage attestation key (ML-DSA-65 by default);
- ``#token-<kid>``: an access-token key of the JWKS, a ``JsonWebKey2020`` with its ``publicKeyJwk``.

Ed25519 and ML-DSA-65 keys are ``Multikey`` methods whose ``publicKeyMultibase`` is the key's did:key
multibase (multicodecs ``ed25519-pub`` 0xed and ``mldsa-65-pub`` 0x1211). Falcon-512 has no registered
multicodec, so its method has a type of ours, ``ReliquaryFalcon512Key``, whose ``publicKeyMultibase`` is
``z`` and the base58btc of the raw 897-byte public key (as liboqs and the Falcon specification encode it,
header byte included), with no multicodec prefix. The ids carry the key ids (hex), so a reader checks each
key against the id it is published under. Every method is an ``assertionMethod``: these keys sign
statements, never log in.

The checkpoint keys' note key name (the signed-note ``name`` that every checkpoint's signature lines use,
``RELIQUARY_AUDIT_ORIGIN``) is in the service entry ``#transparency-log`` (``checkpointKeyName``); the log
of tenant ``t`` has the checkpoint origin ``<name>/<t>``.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from reliquary.audit.note import NoteVerifier
from reliquary.crypto.signing import SignatureAlgorithm, VerifyingKey
from reliquary.errors import DidResolutionError, InvalidRequestError
from reliquary.flow.attestation import Signer, StageKeys
from reliquary.identity.did import (
    DID_CONTEXT,
    MULTIBASE_BASE58BTC,
    MULTIKEY,
    MULTIKEY_CONTEXT,
    DidKey,
    KeyType,
    b58decode,
    b58encode,
    verification_methods,
)
from reliquary.identity.jwk import validate_public_jwk

JWS_2020_CONTEXT = "https://w3id.org/security/suites/jws-2020/v1"
JSON_WEB_KEY_2020 = "JsonWebKey2020"
FALCON_512_KEY = "ReliquaryFalcon512Key"
TRANSPARENCY_LOG = "ReliquaryTransparencyLog"
LOG_FRAGMENT = "#transparency-log"
_SLUG = {
    SignatureAlgorithm.ED25519: "ed25519",
    SignatureAlgorithm.ML_DSA_65: "ml-dsa-65",
    SignatureAlgorithm.FALCON_512: "falcon-512",
}
_BY_SLUG = {slug: algorithm for algorithm, slug in _SLUG.items()}
_KEY_TYPES = {SignatureAlgorithm.ED25519: KeyType.ED25519, SignatureAlgorithm.ML_DSA_65: KeyType.ML_DSA_65}
_ALGORITHMS = {key_type: algorithm for algorithm, key_type in _KEY_TYPES.items()}
_CHECKPOINT = re.compile(r"#checkpoint-([a-z0-9-]+)-([0-9a-f]{8})")
_STAGE = re.compile(r"#stage-([a-z-]+)-([0-9a-f]{16})")
_TOKEN = re.compile(r"#token-([A-Za-z0-9_-]{43})")


def _method(did: str, fragment: str, key: VerifyingKey) -> dict[str, str]:
    key_type = _KEY_TYPES.get(key.algorithm)
    if key_type is not None:
        return DidKey(key_type, key.public_key).verification_method(did, did + fragment)
    return {
        "id": did + fragment,
        "type": FALCON_512_KEY,
        "controller": did,
        "publicKeyMultibase": MULTIBASE_BASE58BTC + b58encode(key.public_key),
    }


def service_document(
    did: str,
    *,
    log_endpoint: str,
    checkpoint_keys: Sequence[NoteVerifier],
    stage_keys: Sequence[Mapping[str, str]],
    token_keys: Sequence[Mapping[str, str]],
) -> dict[str, Any]:
    """The DID document of the service ``did``: ``checkpoint_keys`` (one note key name for all),
    ``stage_keys`` as ``StageKeys.to_json`` publishes them, and ``token_keys`` (the JWKS's keys)."""
    names = {verifier.name for verifier in checkpoint_keys}
    if len(names) > 1:
        raise InvalidRequestError("the checkpoint keys have one note key name")
    methods: list[dict[str, Any]] = [
        _method(did, f"#checkpoint-{_SLUG[v.algorithm]}-{v.key_id.hex()}", v.key) for v in checkpoint_keys
    ]
    for signer, keys in sorted(_stage_keys(stage_keys).items()):
        methods.extend(_method(did, f"#stage-{signer.value}-{k.key_id.hex()}", k) for k in keys)
    for jwk in token_keys:
        public = {name: jwk[name] for name in ("kty", "crv", "x", "y")}
        methods.append(
            {
                "id": f"{did}#token-{jwk['kid']}",
                "type": JSON_WEB_KEY_2020,
                "controller": did,
                "publicKeyJwk": public,
            }
        )
    document: dict[str, Any] = {
        "@context": [DID_CONTEXT, MULTIKEY_CONTEXT, JWS_2020_CONTEXT],
        "id": did,
        "verificationMethod": methods,
        "assertionMethod": [method["id"] for method in methods],
        "service": [
            {
                "id": did + LOG_FRAGMENT,
                "type": TRANSPARENCY_LOG,
                "serviceEndpoint": log_endpoint,
                **({"checkpointKeyName": names.pop()} if names else {}),
            }
        ],
    }
    return document


def _token_method(did: str, jwk: Mapping[str, str]) -> dict[str, Any]:
    return {
        "id": f"{did}#token-{jwk['kid']}",
        "type": JSON_WEB_KEY_2020,
        "controller": did,
        "publicKeyJwk": {name: jwk[name] for name in ("kty", "crv", "x", "y")},
    }


def _stage_keys(published: Sequence[Mapping[str, str]]) -> dict[Signer, list[VerifyingKey]]:
    keys: dict[Signer, list[VerifyingKey]] = {}
    for entry in published:
        key = VerifyingKey(
            SignatureAlgorithm.parse(entry["algorithm"]), base64.b64decode(entry["public_key"])
        )
        keys.setdefault(Signer(entry["signer"]), []).append(key)
    return keys


@dataclass(frozen=True, slots=True)
class PublishedKeys:
    """What the service's DID document publishes, as the verifiers of the audit log and the flow take them."""

    checkpoint_verifiers: tuple[NoteVerifier, ...]
    stage_keys: StageKeys
    token_keys: tuple[dict[str, str], ...]


def published_keys(document: Mapping[str, Any], did: str) -> PublishedKeys:
    """The keys of the service ``did``'s document (as ``resolve_did_web`` returns it): each key checked
    against the key id its method's fragment names. ``DidResolutionError(check="document")`` otherwise."""
    if document.get("id") != did:
        raise DidResolutionError("the DID document is not the service's", check="id")
    try:
        return _published(document, did)
    except (InvalidRequestError, KeyError, TypeError, ValueError) as exc:
        raise DidResolutionError("the service's DID document is malformed", check="document") from exc


def _published(document: Mapping[str, Any], did: str) -> PublishedKeys:
    services = [
        s for s in document.get("service", []) if isinstance(s, dict) and s.get("id") == did + LOG_FRAGMENT
    ]
    name = services[0].get("checkpointKeyName") if len(services) == 1 else None
    checkpoints: list[NoteVerifier] = []
    stages: dict[Signer, list[VerifyingKey]] = {}
    tokens: list[dict[str, str]] = []
    for method_id, method in verification_methods(document).items():
        fragment = method_id[len(did) :]
        if found := _CHECKPOINT.fullmatch(fragment):
            if not isinstance(name, str):
                raise ValueError("checkpoint keys without a note key name")
            verifier = NoteVerifier(name, _key(method))
            if verifier.algorithm is not _BY_SLUG[found.group(1)] or verifier.key_id.hex() != found.group(2):
                raise ValueError("a checkpoint key is not the one its id names")
            checkpoints.append(verifier)
        elif found := _STAGE.fullmatch(fragment):
            key = _key(method)
            if key.key_id.hex() != found.group(2):
                raise ValueError("a stage key is not the one its id names")
            stages.setdefault(Signer(found.group(1)), []).append(key)
        elif found := _TOKEN.fullmatch(fragment):
            if method["type"] != JSON_WEB_KEY_2020:
                raise ValueError("a token key is a JsonWebKey2020")
            jwk = validate_public_jwk({**method["publicKeyJwk"], "kid": found.group(1)})
            tokens.append(jwk)
    return PublishedKeys(tuple(checkpoints), StageKeys(stages), tuple(tokens))


def _key(method: Mapping[str, Any]) -> VerifyingKey:
    """The key of a Multikey method (its multicodec names the algorithm: Ed25519 or ML-DSA-65) or of a
    Falcon-512 method."""
    encoded = method["publicKeyMultibase"]
    if method["type"] == MULTIKEY:
        did_key = DidKey.from_multibase(encoded)
        algorithm = _ALGORITHMS.get(did_key.key_type)
        if algorithm is None:
            raise ValueError("a key of an algorithm the service does not sign with")
        return VerifyingKey(algorithm, did_key.public_key)
    if method["type"] != FALCON_512_KEY or not isinstance(encoded, str) or not encoded.startswith("z"):
        raise ValueError("an unknown verification method type")
    return VerifyingKey(SignatureAlgorithm.FALCON_512, b58decode(encoded[1:]))
