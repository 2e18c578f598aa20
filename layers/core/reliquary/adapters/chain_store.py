"""Attestation chains in the audit bucket: ``chains/<tenant>/<digest>.json``, written once by audit-append
(RecordDecision), read by encrypt (the grant) and by auditors. Immutable, so cached for a year."""

from __future__ import annotations

from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError

from reliquary.adapters.s3 import translate_s3_error
from reliquary.errors import NotFoundError

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

IMMUTABLE = "public, max-age=31536000, immutable"


def chain_key(tenant_id: str, digest: str) -> str:
    return f"chains/{tenant_id}/{digest}.json"


class S3ChainStore:
    def __init__(self, client: S3Client, bucket: str) -> None:
        self._client = client
        self._bucket = bucket

    def put(self, tenant_id: str, digest: str, data: bytes) -> None:
        key = chain_key(tenant_id, digest)
        try:
            self._client.put_object(
                Bucket=self._bucket,
                Key=key,
                Body=data,
                ContentType="application/json",
                CacheControl=IMMUTABLE,
            )
        except (ClientError, BotoCoreError) as exc:
            raise translate_s3_error(exc, key) from exc

    def get(self, tenant_id: str, digest: str) -> bytes | None:
        key = chain_key(tenant_id, digest)
        try:
            return self._client.get_object(Bucket=self._bucket, Key=key)["Body"].read()
        except (ClientError, BotoCoreError) as exc:
            error = translate_s3_error(exc, key)
            if isinstance(error, NotFoundError):
                return None
            raise error from exc
