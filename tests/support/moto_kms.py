"""moto's KMS Sign and Verify with ``MessageType=DIGEST``, as AWS does them.

moto 5.2 parses ``MessageType`` and ignores it: a DIGEST message is hashed again, so its ECDSA signature
is over SHA-256(digest) and fails every verification outside moto (getmoto/moto#10202, open). AWS signs
the digest as given (API_Sign: "DIGEST ... KMS skips the hashing step"). This patch makes moto's ECDSA
keys do the same, and refuses a digest of the wrong length as AWS does; RAW messages are unchanged.
"""

from __future__ import annotations

import contextvars
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

_DIGEST = contextvars.ContextVar("kms_digest_message", default=False)
_HASHES: dict[str, hashes.HashAlgorithm] = {
    "ECDSA_SHA_256": hashes.SHA256(),
    "ECDSA_SHA_384": hashes.SHA384(),
    "ECDSA_SHA_512": hashes.SHA512(),
}


def honour_kms_digest_messages() -> None:
    from moto.kms.exceptions import ValidationException
    from moto.kms.responses import KmsResponse
    from moto.kms.utils import ECDSAPrivateKey

    if getattr(KmsResponse.sign, "_reliquary_patched", False):
        return
    sign_response, verify_response = KmsResponse.sign, KmsResponse.verify
    ecdsa_sign, ecdsa_verify = ECDSAPrivateKey.sign, ECDSAPrivateKey.verify

    def with_message_type(original: Any) -> Any:
        def call(self: KmsResponse) -> str:
            token = _DIGEST.set(self._get_param("MessageType") == "DIGEST")
            try:
                return str(original(self))
            finally:
                _DIGEST.reset(token)

        call._reliquary_patched = True  # type: ignore[attr-defined]
        return call

    def prehashed(key: ECDSAPrivateKey, message: bytes, signing_algorithm: str) -> ec.ECDSA:
        if signing_algorithm not in key.valid_signing_algorithms:
            raise ValidationException(f"Signing algorithm {signing_algorithm} is not valid for this key.")
        algorithm = _HASHES[signing_algorithm]
        if len(message) != algorithm.digest_size:
            raise ValidationException(f"Digest is invalid length for algorithm {signing_algorithm}.")
        return ec.ECDSA(Prehashed(algorithm))

    def sign(self: ECDSAPrivateKey, message: bytes, signing_algorithm: str) -> bytes:
        if not _DIGEST.get():
            return bytes(ecdsa_sign(self, message, signing_algorithm))
        signature: bytes = self.private_key.sign(message, prehashed(self, message, signing_algorithm))
        return signature

    def verify(self: ECDSAPrivateKey, message: bytes, signature: bytes, signing_algorithm: str) -> bool:
        if not _DIGEST.get():
            return bool(ecdsa_verify(self, message, signature, signing_algorithm))
        try:
            self.private_key.public_key().verify(
                signature, message, prehashed(self, message, signing_algorithm)
            )
        except InvalidSignature:
            return False
        return True

    KmsResponse.sign = with_message_type(sign_response)  # type: ignore[method-assign]
    KmsResponse.verify = with_message_type(verify_response)  # type: ignore[method-assign]
    ECDSAPrivateKey.sign = sign  # type: ignore[method-assign]
    ECDSAPrivateKey.verify = verify  # type: ignore[method-assign]
