"""Helpers for the extract tests: read what a run committed back out of the lake."""

from __future__ import annotations

import io
import json
import time
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from ingest.extract import ExtractOptions
from runtime.lake import DATA_PREFIX, MANIFEST_PREFIX

# No margin: tests settle the clock themselves (see `settle`) instead of waiting a second.
OPTIONS = ExtractOptions(margin_s=0.0)


def lake(isolated: Any) -> tuple[Any, str]:
    """The S3 client and ingestion bucket of a test's isolated stack."""
    return isolated.s3(), isolated.settings.ingestion_bucket


def manifests(s3: Any, bucket: str) -> list[dict[str, Any]]:
    return [
        json.loads(s3.get_object(Bucket=bucket, Key=k)["Body"].read())
        for k in _keys(s3, bucket, MANIFEST_PREFIX)
    ]


def _keys(s3: Any, bucket: str, prefix: str) -> list[str]:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return sorted(o["Key"] for page in pages for o in page.get("Contents", ()))


def data_keys(s3: Any, bucket: str) -> list[str]:
    return _keys(s3, bucket, DATA_PREFIX)


def entry(manifest: dict[str, Any], table: str) -> dict[str, Any]:
    return next(t for t in manifest["tables"] if t["table"] == table)


def table_rows(s3: Any, bucket: str, manifest: dict[str, Any], table: str) -> pa.Table | None:
    """The rows a manifest committed for a table, as one Arrow table (None: no files)."""
    parts = [
        pq.read_table(io.BytesIO(s3.get_object(Bucket=bucket, Key=f["key"])["Body"].read()))
        for f in entry(manifest, table)["files"]
    ]
    return pa.concat_tables(parts) if parts else None


def versions(s3: Any, bucket: str, table: str, key: str) -> list[tuple[Any, Any]]:
    """(key, last_updated) of every row version in every committed manifest, in order."""
    found = []
    for manifest in manifests(s3, bucket):
        rows = table_rows(s3, bucket, manifest, table)
        if rows is not None:
            found += list(zip(rows[key].to_pylist(), rows["last_updated"].to_pylist(), strict=True))
    return found


def source_versions(conn: Any, table: str, key: str) -> set[tuple[Any, Any]]:
    return {(k, lu) for k, lu in conn.run(f'select "{key}", last_updated from "{table}"')}


def settle(conn: Any) -> None:
    """Wait until the database clock has moved past now, so everything committed so far is
    stamped before the horizon of a run that starts next (tests run with no margin)."""
    [[start]] = conn.run("select clock_timestamp()")
    while conn.run(
        "select clock_timestamp() < cast(:t as timestamptz) + interval '2 milliseconds'", t=start
    )[0][0]:
        time.sleep(0.002)
