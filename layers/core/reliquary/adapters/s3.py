"""S3 blob store for the bodies of large items (versioned bucket, SSE-KMS by the bucket's default)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError

from reliquary.errors import NotFoundError, ReliquaryError, StorageUnavailableError

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

# Objects written once and never changed (tiles, entry bundles, attestation chains): cached for a year.
IMMUTABLE = "public, max-age=31536000, immutable"
_TRANSIENT = {"SlowDown", "InternalError", "ServiceUnavailable", "RequestTimeout", "503"}
_MISSING = {"NoSuchKey", "404", "NotFound"}


def translate_s3_error(exc: ClientError | BotoCoreError, key: str) -> ReliquaryError:
    """Map an S3 failure by its error code: missing -> NotFoundError, throttling -> transient."""
    if isinstance(exc, BotoCoreError):
        return StorageUnavailableError("S3 did not answer", key=key)
    code = exc.response.get("Error", {}).get("Code", "")
    if code in _MISSING:
        return NotFoundError("no such object", key=key)
    if code in _TRANSIENT:
        return StorageUnavailableError("S3 is unavailable or throttling", key=key, aws_code=code)
    return ReliquaryError("S3 refused the request", key=key, aws_code=code)


def get_object_or_none(client: S3Client, bucket: str, key: str) -> bytes | None:
    """The object's bytes, or None when there is no such object; other failures as ``translate_s3_error``."""
    try:
        return client.get_object(Bucket=bucket, Key=key)["Body"].read()
    except (ClientError, BotoCoreError) as exc:
        error = translate_s3_error(exc, key)
        if isinstance(error, NotFoundError):
            return None
        raise error from exc


class S3BlobStore:
    def __init__(self, client: S3Client, bucket: str) -> None:
        self._client = client
        self._bucket = bucket

    def put(self, key: str, data: bytes) -> None:
        try:
            self._client.put_object(Bucket=self._bucket, Key=key, Body=data)
        except (ClientError, BotoCoreError) as exc:
            raise translate_s3_error(exc, key) from exc

    def get(self, key: str) -> bytes:
        try:
            return self._client.get_object(Bucket=self._bucket, Key=key)["Body"].read()
        except (ClientError, BotoCoreError) as exc:
            raise translate_s3_error(exc, key) from exc

    def delete(self, key: str) -> None:
        """Remove every version and delete marker of ``key`` (the bucket is versioned): a shredded body
        must not survive as a noncurrent version. (No unversioned delete: it would add a marker.)"""
        self._delete_versions(key, lambda candidate: candidate == key)

    def keys(self, prefix: str) -> list[str]:
        """The keys under ``prefix`` whose latest version is an object (not a delete marker), sorted.
        Listed through ``ListObjectVersions``, the one listing the functions' roles are granted."""
        current: set[str] = set()
        try:
            paginator = self._client.get_paginator("list_object_versions")
            for page in paginator.paginate(Bucket=self._bucket, Prefix=prefix):
                for entry in page.get("Versions", []):
                    if entry.get("IsLatest") and entry.get("Key", "").startswith(prefix):
                        current.add(entry["Key"])
        except (ClientError, BotoCoreError) as exc:
            raise translate_s3_error(exc, prefix) from exc
        return sorted(current)

    def delete_prefix(self, prefix: str) -> int:
        return len(self._delete_versions(prefix, lambda candidate: candidate.startswith(prefix)))

    def _delete_versions(self, prefix: str, matches: Callable[[str], bool]) -> set[str]:
        deleted: set[str] = set()
        try:
            paginator = self._client.get_paginator("list_object_versions")
            for page in paginator.paginate(Bucket=self._bucket, Prefix=prefix):
                for entry in [*page.get("Versions", []), *page.get("DeleteMarkers", [])]:
                    key = entry.get("Key", "")
                    if matches(key) and "VersionId" in entry:
                        self._client.delete_object(Bucket=self._bucket, Key=key, VersionId=entry["VersionId"])
                        deleted.add(key)
        except (ClientError, BotoCoreError) as exc:
            raise translate_s3_error(exc, prefix) from exc
        return deleted
