"""Writing to the processed bucket the one way the lake allows: create an object, never
overwrite or delete one (`IfNoneMatch="*"`). Light on purpose (boto3's errors only), so the docs
upload that CodeBuild runs does not import the Parquet machinery."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError


class PublishError(RuntimeError):
    """The lake copy could not be written; the message names the table and object."""


def put_once(s3: Any, bucket: str, key: str, body: bytes, content_type: str, run_id: str) -> bool:
    """Create the object unless it exists (never overwrite); False when it was already there."""
    try:
        s3.put_object(
            Bucket=bucket,
            Key=key,
            Body=body,
            ContentType=content_type,
            IfNoneMatch="*",
            Metadata={"run-id": run_id},
        )
    except ClientError as err:
        if err.response.get("Error", {}).get("Code") == "PreconditionFailed":
            return False
        raise PublishError(f"cannot write s3://{bucket}/{key}: {err}") from err
    return True
