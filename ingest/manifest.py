"""The commit record: read the latest committed manifest, write the next one last.

`_manifests/<seq:010d>.json`, written with `IfNoneMatch="*"`: of two runs that read the same
latest seq, exactly one creates seq + 1; the other gets PreconditionFailed and has committed
nothing (its data files are never read)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

FORMAT = "totes-manifest/1"
PREFIX = "_manifests/"


def manifest_key(seq: int) -> str:
    return f"{PREFIX}{seq:010d}.json"


def latest_manifest(s3: Any, bucket: str) -> dict[str, Any] | None:
    """The committed manifest with the highest seq, or None before the first run."""
    latest: str | None = None
    # Keys are zero-padded, so the lexical maximum is the highest seq.
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=PREFIX):
        for item in page.get("Contents", ()):
            if item["Key"].endswith(".json") and (latest is None or item["Key"] > latest):
                latest = item["Key"]
    if latest is None:
        return None
    body = s3.get_object(Bucket=bucket, Key=latest)["Body"].read()
    manifest = json.loads(body)
    if manifest.get("format") != FORMAT:
        raise ValueError(f"{latest}: unknown manifest format {manifest.get('format')!r}")
    return manifest


def build_manifest(seq: int, run_id: str, tables: list[dict[str, Any]]) -> dict[str, Any]:
    now = datetime.now(UTC)
    return {
        "format": FORMAT,
        "seq": seq,
        "run_id": run_id,
        "created_at": now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z",
        "source": "totesys",
        "tables": tables,
    }


def commit_manifest(s3: Any, bucket: str, manifest: dict[str, Any]) -> bool:
    """Create the manifest's key if nobody has; False when another run committed that seq."""
    try:
        s3.put_object(
            Bucket=bucket,
            Key=manifest_key(manifest["seq"]),
            Body=json.dumps(manifest, indent=1).encode(),
            ContentType="application/json",
            IfNoneMatch="*",
        )
    except ClientError as err:
        code = err.response.get("Error", {}).get("Code")
        # 409 ConditionalRequestConflict: a concurrent conditional write to the same key.
        if code in ("PreconditionFailed", "ConditionalRequestConflict"):
            return False
        raise
    return True
