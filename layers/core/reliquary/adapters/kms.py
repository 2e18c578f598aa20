"""AWS KMS as the root of trust: vault private keys and service signing keys are encrypted under one
KMS key, with the encryption context binding each blob to its purpose, tenant, vault and version."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError

from reliquary.errors import RootOfTrustError, StorageUnavailableError

if TYPE_CHECKING:
    from mypy_boto3_kms import KMSClient

_TRANSIENT = {
    "ThrottlingException",
    "KMSInternalException",
    "DependencyTimeoutException",
    "LimitExceededException",
}


def kms_failure(exc: ClientError | BotoCoreError) -> Exception:
    if isinstance(exc, BotoCoreError):
        return StorageUnavailableError("KMS did not answer")
    code = exc.response.get("Error", {}).get("Code", "")
    if code in _TRANSIENT:
        return StorageUnavailableError("KMS is unavailable or throttling", aws_code=code)
    return RootOfTrustError("KMS refused the operation", aws_code=code)


class KmsRootOfTrust:
    def __init__(self, client: KMSClient, key_id: str) -> None:
        self._client = client
        self.key_id = key_id

    def _fail(self, exc: ClientError | BotoCoreError) -> Exception:
        return kms_failure(exc)

    def wrap(self, plaintext: bytes, *, context: Mapping[str, str]) -> bytes:
        try:
            response = self._client.encrypt(
                KeyId=self.key_id, Plaintext=plaintext, EncryptionContext=dict(context)
            )
        except (ClientError, BotoCoreError) as exc:
            raise self._fail(exc) from exc
        return response["CiphertextBlob"]

    def unwrap(self, blob: bytes, *, context: Mapping[str, str]) -> bytes:
        try:
            # KeyId pins the key: a blob encrypted under any other KMS key is refused.
            response = self._client.decrypt(
                CiphertextBlob=blob, EncryptionContext=dict(context), KeyId=self.key_id
            )
        except (ClientError, BotoCoreError) as exc:
            raise self._fail(exc) from exc
        return response["Plaintext"]
