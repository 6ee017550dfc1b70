"""Finding committed manifests in the ingestion bucket and parsing them (`totes-manifest/1`).

Manifests live at `_manifests/<seq:010d>.json`; the zero padding makes S3's lexicographic
listing the same as seq order, so listing after the last loaded seq yields exactly the
pending manifests, oldest first.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from lambda_loader.errors import ManifestError

PREFIX = "_manifests/"
FORMAT = "totes-manifest/1"
_KEY = re.compile(r"^_manifests/(\d{10})\.json$")


@dataclass(frozen=True)
class Column:
    name: str
    pg_type: str
    arrow_type: str
    nullable: bool


@dataclass(frozen=True)
class DataFile:
    key: str
    rows: int
    bytes: int
    sha256: str


@dataclass(frozen=True)
class TableEntry:
    table: str
    primary_key: tuple[str, ...]
    columns: tuple[Column, ...]
    watermark_low: str | None
    watermark_high: str | None
    rows: int
    files: tuple[DataFile, ...]


@dataclass(frozen=True)
class Manifest:
    key: str
    seq: int
    run_id: str
    created_at: str
    source: str
    tables: tuple[TableEntry, ...]

    @property
    def rows(self) -> int:
        return sum(t.rows for t in self.tables)


def manifest_key(seq: int) -> str:
    return f"{PREFIX}{seq:010d}.json"


def seq_of(key: str) -> int | None:
    """The seq a manifest key names, or None for anything else under the prefix."""
    match = _KEY.match(key)
    return int(match.group(1)) if match else None


def list_pending(s3: Any, bucket: str, after_seq: int | None) -> list[tuple[int, str]]:
    """(seq, key) of every manifest with a seq above `after_seq`, oldest first."""
    kwargs: dict[str, Any] = {"Bucket": bucket, "Prefix": PREFIX}
    if after_seq is not None:
        kwargs["StartAfter"] = manifest_key(after_seq)
    found: list[tuple[int, str]] = []
    for page in s3.get_paginator("list_objects_v2").paginate(**kwargs):
        for obj in page.get("Contents", []):
            seq = seq_of(obj["Key"])
            if seq is not None and (after_seq is None or seq > after_seq):
                found.append((seq, obj["Key"]))
    return sorted(found)


def read_manifest(s3: Any, bucket: str, key: str) -> Manifest:
    try:
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except Exception as err:  # botocore raises many kinds; each means "cannot read it"
        raise ManifestError(f"manifest {key}: cannot read it: {err}", file=key) from err
    return parse_manifest(key, body)


def parse_manifest(key: str, body: bytes) -> Manifest:
    try:
        doc = json.loads(body)
        if doc.get("format") != FORMAT:
            raise ValueError(f"format is {doc.get('format')!r}, expected {FORMAT!r}")
        manifest = Manifest(
            key=key,
            seq=int(doc["seq"]),
            run_id=str(doc["run_id"]),
            created_at=str(doc.get("created_at", "")),
            source=str(doc.get("source", "")),
            tables=tuple(_table(t) for t in doc["tables"]),
        )
    except (ValueError, KeyError, TypeError) as err:
        raise ManifestError(f"manifest {key} is malformed: {err!r}", file=key) from err
    if seq_of(key) not in (None, manifest.seq):
        raise ManifestError(f"manifest {key} says seq {manifest.seq}", file=key)
    return manifest


def _table(doc: dict[str, Any]) -> TableEntry:
    watermark = doc.get("watermark") or {}
    files = tuple(
        DataFile(str(f["key"]), int(f["rows"]), int(f["bytes"]), str(f["sha256"]).lower())
        for f in doc["files"]
    )
    entry = TableEntry(
        table=str(doc["table"]),
        primary_key=tuple(str(c) for c in doc.get("primary_key", ())),
        columns=tuple(
            Column(str(c["name"]), str(c["pg_type"]), str(c["arrow_type"]), bool(c["nullable"]))
            for c in doc["columns"]
        ),
        watermark_low=watermark.get("low"),
        watermark_high=watermark.get("high"),
        rows=int(doc["rows"]),
        files=files,
    )
    if sum(f.rows for f in files) != entry.rows:
        raise ValueError(f"table {entry.table}: rows {entry.rows} != sum of its files' rows")
    if not entry.columns:
        raise ValueError(f"table {entry.table} lists no columns")
    return entry
