"""Compact JWS (RFC 7515) signed and verified with a ``did:key``: EdDSA (Ed25519, RFC 8037), ES256 (P-256,
the 64-byte ``r || s`` of RFC 7518 section 3.4) and ML-DSA-65 (the IETF JOSE ML-DSA draft's ``ML-DSA-65``,
pure ML-DSA with an empty context). For client assertions (``identity.assertions``); python-jose has
neither EdDSA nor ML-DSA, and the access tokens' verifier stays the only module that imports it.

The posture, for a verifier that cannot be talked into another algorithm:
- the algorithm is the key's, never the header's choice: ``alg`` must name exactly the key's algorithm,
  so ``none``, HS256 and every other value are refused;
- the header holds only ``alg``, ``typ`` and ``kid`` (no ``jku``, ``jwk``, ``x5u``, ``crit`` or ``b64``);
- at most ``MAX_JWS_BYTES``, three strict unpadded base64url segments (so a five-segment JWE is refused
  before anything is decoded), JSON objects without duplicate members, and a signature of exactly the
  algorithm's length.
Every refusal is an ``InvalidJwsError`` whose ``check`` names it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from reliquary.errors import InvalidJwsError, InvalidSignatureError
from reliquary.identity.did import DidKey, DidKeySigner, KeyType
from reliquary.identity.jwk import b64url, b64url_decode

# An ML-DSA-65 signature alone is 4412 base64url characters.
MAX_JWS_BYTES = 16 * 1024
HEADER_MEMBERS = frozenset({"alg", "typ", "kid"})
ALGORITHMS = {KeyType.ED25519: "EdDSA", KeyType.P256: "ES256", KeyType.ML_DSA_65: "ML-DSA-65"}
_SEGMENT = re.compile(r"[A-Za-z0-9_-]+")
# A did:key URL (did#multibase) of an ML-DSA-65 key, the longest kid expected, is about 5350 characters.
_MAX_HEADER_VALUE = 8192


@dataclass(frozen=True, slots=True)
class VerifiedJws:
    """A JWS whose signature verified under the key: its header and its payload (still bytes)."""

    header: dict[str, str]
    payload: bytes


def algorithm_for(key: DidKey) -> str:
    return ALGORITHMS[key.key_type]


def sign_compact(
    signer: DidKeySigner, payload: bytes, *, typ: str | None = None, kid: str | None = None
) -> str:
    """A compact JWS of ``payload`` under ``signer``'s key, with the header ``alg`` (the key's) and the
    optional ``typ`` and ``kid``."""
    header: dict[str, str] = {"alg": ALGORITHMS[signer.key_type]}
    if typ is not None:
        header["typ"] = typ
    if kid is not None:
        header["kid"] = kid
    encoded = b64url(json.dumps(header, separators=(",", ":")).encode("utf-8"))
    signing_input = f"{encoded}.{b64url(payload)}"
    return f"{signing_input}.{b64url(signer.sign(signing_input.encode('ascii')))}"


def sign_json(signer: DidKeySigner, claims: Mapping[str, Any], *, typ: str | None = "JWT") -> str:
    """A compact JWS (a JWT) of a JSON object."""
    return sign_compact(signer, json.dumps(dict(claims), separators=(",", ":")).encode("utf-8"), typ=typ)


def unverified_payload(token: object) -> bytes:
    """The payload of a well-formed compact JWS, before its signature is checked: only to find which key
    verifies it (a client assertion's issuer). Nothing read here may be trusted until ``verify_compact``."""
    return _decode(_segments(token)[1], "payload")


def verify_compact(token: object, key: DidKey) -> VerifiedJws:
    """The header and payload of ``token`` if it is a compact JWS signed by ``key`` with ``key``'s
    algorithm; ``InvalidJwsError`` otherwise."""
    header_b64, payload_b64, signature_b64 = _segments(token)
    header = _header(_decode(header_b64, "header"))
    if header["alg"] != ALGORITHMS[key.key_type]:
        raise InvalidJwsError("the JWS's algorithm is not its key's", check="algorithm")
    signature = _decode(signature_b64, "signature")
    try:
        key.verify(f"{header_b64}.{payload_b64}".encode("ascii"), signature)
    except InvalidSignatureError:
        raise InvalidJwsError("the JWS's signature does not verify", check="signature") from None
    return VerifiedJws(header, _decode(payload_b64, "payload"))


def json_object(data: bytes, check: str) -> dict[str, Any]:
    """A UTF-8 JSON object without duplicate members (``InvalidJwsError(check=check)`` otherwise)."""

    def no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        members = dict(pairs)
        if len(members) != len(pairs):
            raise ValueError("duplicate member")
        return members

    try:
        value = json.loads(data.decode("utf-8"), object_pairs_hook=no_duplicates)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise InvalidJwsError(f"the JWS {check} is not a JSON object", check=check) from None
    if not isinstance(value, dict):
        raise InvalidJwsError(f"the JWS {check} is not a JSON object", check=check)
    return value


def _segments(token: object) -> tuple[str, str, str]:
    if not isinstance(token, str) or len(token) > MAX_JWS_BYTES:
        raise InvalidJwsError(f"a JWS is a string of at most {MAX_JWS_BYTES} characters", check="size")
    parts = token.split(".")
    if len(parts) != 3 or not all(_SEGMENT.fullmatch(part) for part in parts):
        raise InvalidJwsError("a JWS is three base64url segments", check="format")
    return parts[0], parts[1], parts[2]


def _decode(segment: str, check: str) -> bytes:
    try:
        return b64url_decode(segment)
    except ValueError:
        raise InvalidJwsError("a JWS segment is not canonical base64url", check=check) from None


def _header(data: bytes) -> dict[str, str]:
    header = json_object(data, "header")
    if not set(header) <= HEADER_MEMBERS or "alg" not in header:
        raise InvalidJwsError("the JWS header holds only alg, typ and kid", check="header")
    if not all(isinstance(value, str) and 0 < len(value) <= _MAX_HEADER_VALUE for value in header.values()):
        raise InvalidJwsError("the JWS header's members are strings", check="header")
    return header
