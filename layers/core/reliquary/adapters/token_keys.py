"""The access-token key in KMS: an ECC_NIST_P256 SIGN_VERIFY key that signs, and the public keys of the
JWKS (the signing key and the previous ones), read once per cold start with GetPublicKey.

The private key never leaves KMS. KMS signs the token's signing input itself (``MessageType=RAW``,
``ECDSA_SHA_256``; at most 4096 bytes, which the issuer enforces); RAW rather than a digest because it is
the same on AWS and on moto, whose DIGEST signing hashes the digest again. KMS's DER signature becomes
JWS's raw ``r || s``. Each signature is checked against the public key before it is
used: a token the JWKS cannot verify is never handed out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, NoReturn

from botocore.exceptions import BotoCoreError, ClientError
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_der_public_key

from reliquary.errors import ConfigurationError, InvalidScopeError, RootOfTrustError, StorageUnavailableError
from reliquary.identity.jwk import public_jwk, raw_signature

if TYPE_CHECKING:
    from mypy_boto3_kms import KMSClient

KEY_SPEC = "ECC_NIST_P256"
KEY_USAGE = "SIGN_VERIFY"
SIGNING_ALGORITHM: Final = "ECDSA_SHA_256"
MAX_SIGNING_INPUT: Final = 4096  # KMS Sign's limit for a RAW message
_TRANSIENT = {
    "ThrottlingException",
    "KMSInternalException",
    "DependencyTimeoutException",
    "LimitExceededException",
}


def _kms_failed(exc: ClientError | BotoCoreError) -> NoReturn:
    if isinstance(exc, BotoCoreError):
        raise StorageUnavailableError("KMS did not answer") from exc
    code = exc.response.get("Error", {}).get("Code", "")
    if code in _TRANSIENT:
        raise StorageUnavailableError("KMS is unavailable or throttling", aws_code=code) from exc
    raise RootOfTrustError("KMS refused the token key operation", aws_code=code) from exc


@dataclass(frozen=True, slots=True)
class KmsPublicKey:
    key_arn: str  # what the key id resolved to: pins the key even when the setting names an alias
    public_key: ec.EllipticCurvePublicKey
    jwk: dict[str, str]


def kms_public_key(client: KMSClient, key_id: str) -> KmsPublicKey:
    """The public half of a KMS token key; ConfigurationError unless it is an ECC_NIST_P256 signing key
    with ECDSA_SHA_256."""
    try:
        response = client.get_public_key(KeyId=key_id)
    except (ClientError, BotoCoreError) as exc:
        _kms_failed(exc)
    # KeySpec, or its deprecated name (what moto still answers with).
    key_spec = response.get("KeySpec", response.get("CustomerMasterKeySpec"))
    if (
        key_spec != KEY_SPEC
        or response.get("KeyUsage") != KEY_USAGE
        or SIGNING_ALGORITHM not in response.get("SigningAlgorithms", [])
    ):
        raise ConfigurationError(f"a token key must be a KMS {KEY_SPEC} {KEY_USAGE} key")
    public_key = load_der_public_key(response["PublicKey"])
    if not isinstance(public_key, ec.EllipticCurvePublicKey) or not isinstance(
        public_key.curve, ec.SECP256R1
    ):
        raise ConfigurationError(f"a token key must be a KMS {KEY_SPEC} {KEY_USAGE} key")
    return KmsPublicKey(response["KeyId"], public_key, public_jwk(public_key))


class KmsTokenSigner:
    """``TokenSigner`` over a KMS key (``identity.ports.TokenSigner``)."""

    def __init__(self, client: KMSClient, key: KmsPublicKey) -> None:
        self._client = client
        self._key = key

    @classmethod
    def load(cls, client: KMSClient, key_id: str) -> KmsTokenSigner:
        return cls(client, kms_public_key(client, key_id))

    @property
    def key_id(self) -> str:
        return self._key.jwk["kid"]

    def public_jwk(self) -> dict[str, str]:
        return dict(self._key.jwk)

    def sign(self, signing_input: bytes) -> bytes:
        if len(signing_input) > MAX_SIGNING_INPUT:
            raise InvalidScopeError("the access token would be too large to sign: ask for fewer scopes")
        try:
            response = self._client.sign(
                KeyId=self._key.key_arn,
                Message=signing_input,
                MessageType="RAW",
                SigningAlgorithm=SIGNING_ALGORITHM,
            )
        except (ClientError, BotoCoreError) as exc:
            _kms_failed(exc)
        der = response["Signature"]
        try:
            self._key.public_key.verify(der, signing_input, ec.ECDSA(hashes.SHA256()))
            return raw_signature(der)
        except (InvalidSignature, ValueError):
            raise RootOfTrustError("KMS returned a signature the token key does not verify") from None


@dataclass(frozen=True, slots=True)
class TokenKeys:
    signer: KmsTokenSigner
    previous: tuple[dict[str, str], ...]  # JWKs of the keys that signed before, still in the JWKS


def load_token_keys(client: KMSClient, signing_key_id: str, previous_key_ids: Sequence[str]) -> TokenKeys:
    """The signing key and the previous keys' JWKs: one GetPublicKey each, once per cold start."""
    return TokenKeys(
        KmsTokenSigner.load(client, signing_key_id),
        tuple(kms_public_key(client, key_id).jwk for key_id in previous_key_ids),
    )
