"""Test helper: write committed extracts (Parquet files + a manifest) exactly as
docs/CONTRACTS.md describes, so the loader's tests do not depend on the extractor.

`ColumnSpec` pairs a column's source `pg_type` with its Arrow type; `put_extract` writes one
run: a file per table part, then `_manifests/<seq:010d>.json` last, as the extractor does.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from runtime import lake

SALES_ORDER: list[tuple[str, str, pa.DataType, bool]] = [
    ("sales_order_id", "integer", pa.int32(), False),
    ("created_at", "timestamp(3) without time zone", pa.timestamp("ms"), False),
    ("last_updated", "timestamp(3) without time zone", pa.timestamp("ms"), False),
    ("design_id", "integer", pa.int32(), False),
    ("staff_id", "integer", pa.int32(), False),
    ("counterparty_id", "integer", pa.int32(), False),
    ("units_sold", "integer", pa.int32(), False),
    ("unit_price", "numeric(10,2)", pa.decimal128(10, 2), False),
    ("currency_id", "integer", pa.int32(), False),
    ("agreed_delivery_date", "text", pa.string(), False),
    ("agreed_payment_date", "text", pa.string(), False),
    ("agreed_delivery_location_id", "integer", pa.int32(), False),
]
# The day data files are filed under (run ids below are of that day too).
DAY = datetime(2026, 11, 25, tzinfo=UTC)


@dataclass
class TablePart:
    """One table of an extract: its column specs and the Parquet files' contents."""

    table: str
    columns: list[tuple[str, str, pa.DataType, bool]]
    parts: list[pa.Table]
    primary_key: tuple[str, ...] = ()
    watermark_low: str | None = None
    watermark_high: str = "2026-11-25 22:30:00.000"

    @property
    def schema(self) -> pa.Schema:
        return pa.schema([pa.field(n, t, nullable=nullable) for n, _, t, nullable in self.columns])


def arrow_table(
    columns: list[tuple[str, str, pa.DataType, bool]], rows: dict[str, list]
) -> pa.Table:
    schema = pa.schema([pa.field(n, t, nullable=nullable) for n, _, t, nullable in columns])
    return pa.table({n: pa.array(rows[n], t) for n, _, t, _ in columns}, schema=schema)


def parquet_bytes(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


def run_id_for(seq: int) -> str:
    return f"20261125T2230{seq:02d}000000Z-{seq:08x}"


def put_extract(
    s3: Any,
    bucket: str,
    seq: int,
    tables: list[TablePart],
    *,
    run_id: str | None = None,
    file_bytes: dict[str, bytes] | None = None,
    manifest_edit: Any = None,
) -> dict[str, Any]:
    """Write the data files, then the manifest; returns the manifest document.

    `file_bytes` replaces what is uploaded for a key after the manifest recorded the real
    file's size and hash (a corrupt or truncated object); `manifest_edit(doc)` alters the
    manifest before it is written (a schema the file does not have)."""
    run_id = run_id or run_id_for(seq)
    entries = []
    for part in tables:
        files = []
        for number, data in enumerate(part.parts):
            key = lake.part_key(part.table, run_id, DAY, number)
            body = parquet_bytes(data)
            files.append(
                {
                    "key": key,
                    "rows": data.num_rows,
                    "bytes": len(body),
                    "sha256": hashlib.sha256(body).hexdigest(),
                }
            )
            s3.put_object(Bucket=bucket, Key=key, Body=(file_bytes or {}).get(key, body))
        entries.append(
            {
                "table": part.table,
                "primary_key": list(part.primary_key or (part.columns[0][0],)),
                "columns": [
                    {"name": n, "pg_type": pg, "arrow_type": str(t), "nullable": nullable}
                    for n, pg, t, nullable in part.columns
                ],
                "watermark": {"low": part.watermark_low, "high": part.watermark_high},
                "rows": sum(f["rows"] for f in files),
                "files": files,
            }
        )
    doc = {
        "format": lake.FORMAT,
        "seq": seq,
        "run_id": run_id,
        "created_at": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "source": "totesys",
        "tables": entries,
    }
    if manifest_edit is not None:
        manifest_edit(doc)
    s3.put_object(
        Bucket=bucket,
        Key=lake.manifest_key(seq),
        Body=json.dumps(doc).encode(),
        IfNoneMatch="*",
    )
    return doc


def file_keys(doc: dict[str, Any], table: str | None = None) -> list[str]:
    return [f["key"] for t in doc["tables"] if table in (None, t["table"]) for f in t["files"]]
