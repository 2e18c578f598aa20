"""P-256 public keys as JWKs (RFC 7517/7518), their RFC 7638 thumbprints, and ECDSA signatures in the
JWS form (raw ``r || s``, RFC 7518 section 3.4). No JOSE library: the signers (the KMS adapter, the local
signer) need these without importing the verifier's."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Mapping
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

ALGORITHM = "ES256"
CURVE = "P-256"
COORDINATE_BYTES = 32
SIGNATURE_BYTES = 2 * COORDINATE_BYTES
# The order of the P-256 group: r and s of a valid signature are in [1, n-1].
_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
_B64URL = re.compile(r"[A-Za-z0-9_-]*")
# Members a verification key may carry; anything else (a private "d", certificates, URLs) is refused.
_ALLOWED_MEMBERS = frozenset({"kty", "crv", "x", "y", "kid", "use", "alg"})


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def b64url_decode(text: str) -> bytes:
    """Strict unpadded base64url (RFC 7515 section 2): ValueError for any other character or length."""
    if not isinstance(text, str) or _B64URL.fullmatch(text) is None or len(text) % 4 == 1:
        raise ValueError("not unpadded base64url")
    decoded = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if b64url(decoded) != text:  # non-canonical trailing bits
        raise ValueError("not canonical base64url")
    return decoded


def thumbprint(jwk: Mapping[str, Any]) -> str:
    """The RFC 7638 SHA-256 thumbprint of an EC public key: the key id of our tokens."""
    required = {"crv": jwk["crv"], "kty": jwk["kty"], "x": jwk["x"], "y": jwk["y"]}
    canonical = json.dumps(required, separators=(",", ":"), sort_keys=True, ensure_ascii=True)
    return b64url(hashlib.sha256(canonical.encode("ascii")).digest())


def public_jwk(key: ec.EllipticCurvePublicKey) -> dict[str, str]:
    """The verification JWK of a P-256 public key, with its thumbprint as ``kid``."""
    if not isinstance(key.curve, ec.SECP256R1):
        raise ValueError("token keys are P-256")  # noqa: TRY004  (a wrong key, not a wrong type)
    numbers = key.public_numbers()
    jwk = {
        "kty": "EC",
        "crv": CURVE,
        "x": b64url(numbers.x.to_bytes(COORDINATE_BYTES, "big")),
        "y": b64url(numbers.y.to_bytes(COORDINATE_BYTES, "big")),
    }
    return {**jwk, "kid": thumbprint(jwk), "use": "sig", "alg": ALGORITHM}


def validate_public_jwk(jwk: Mapping[str, Any]) -> dict[str, str]:
    """A verification key as ``public_jwk`` makes it, from a JWK that must be a P-256 public key (a point
    on the curve, no private part, no other members); its ``kid``, if given, must be its thumbprint.
    ValueError otherwise."""
    if not isinstance(jwk, Mapping) or not set(jwk) <= _ALLOWED_MEMBERS:
        raise ValueError("not a P-256 public JWK")
    if jwk.get("kty") != "EC" or jwk.get("crv") != CURVE:
        raise ValueError("not a P-256 public JWK")
    if jwk.get("use", "sig") != "sig" or jwk.get("alg", ALGORITHM) != ALGORITHM:
        raise ValueError("not an ES256 signature key")
    x, y = b64url_decode(jwk.get("x", "")), b64url_decode(jwk.get("y", ""))
    if len(x) != COORDINATE_BYTES or len(y) != COORDINATE_BYTES:
        raise ValueError("not a P-256 public JWK")
    # Refuses a point that is not on the curve (an invalid-curve key).
    key = ec.EllipticCurvePublicNumbers(
        int.from_bytes(x, "big"), int.from_bytes(y, "big"), ec.SECP256R1()
    ).public_key()
    canonical = public_jwk(key)
    if "kid" in jwk and jwk["kid"] != canonical["kid"]:
        raise ValueError("the kid is not the key's thumbprint")
    return canonical


def raw_signature(der: bytes) -> bytes:
    """An ECDSA signature in DER (what KMS and cryptography return) as JWS's fixed 64-byte ``r || s``."""
    r, s = decode_dss_signature(der)
    if not (0 < r < _ORDER and 0 < s < _ORDER):
        raise ValueError("not a P-256 ECDSA signature")
    return r.to_bytes(COORDINATE_BYTES, "big") + s.to_bytes(COORDINATE_BYTES, "big")
