"""Attestation chains in the audit bucket: ``chains/<tenant>/<digest>.json``, written once by audit-append
(RecordDecision), read by encrypt (the grant) and by auditors. Immutable, so cached for a year."""

from __future__ import annotations

from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError

from reliquary.adapters.s3 import IMMUTABLE, get_object_or_none, translate_s3_error

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


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
        return get_object_or_none(self._client, self._bucket, chain_key(tenant_id, digest))
