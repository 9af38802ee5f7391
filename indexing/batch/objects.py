"""S3 objects by `s3://bucket/key` URI: the few reads and writes the steps need."""

from __future__ import annotations

from typing import Any


class InputNotFound(Exception):
    """The corpus named in the execution input is not in S3 (or not readable)."""


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """(bucket, key) of `s3://bucket/key`."""
    if not uri.startswith("s3://") or "/" not in uri[5:]:
        raise ValueError(f"expected s3://bucket/key, got {uri!r}")
    bucket, key = uri[5:].split("/", 1)
    if not bucket or not key:
        raise ValueError(f"expected s3://bucket/key, got {uri!r}")
    return bucket, key


class ObjectStore:
    """A thin wrapper over an S3 client: bytes in, bytes out."""

    def __init__(self, client: Any) -> None:
        self._s3 = client

    def read(self, bucket: str, key: str) -> bytes:
        """The object's bytes; `InputNotFound` when it is absent or forbidden."""
        from botocore.exceptions import ClientError

        try:
            body: bytes = self._s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in ("NoSuchKey", "404", "AccessDenied", "403", "NoSuchBucket"):
                raise InputNotFound(f"s3://{bucket}/{key}: {code}") from exc
            raise
        return body

    def write(self, bucket: str, key: str, body: bytes, content_type: str) -> None:
        """Put (or overwrite) an object."""
        self._s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType=content_type)
